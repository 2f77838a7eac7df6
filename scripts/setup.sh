#!/usr/bin/env bash
# setup.sh: installs what building dualsync and running its tests needs on Debian 12.
#
#   sudo bash scripts/setup.sh
#
# 1. Debian packages: compilers and CMake, the client libraries dualsync links (libpq,
#    librdkafka, jansson, libev, libmicrohttpd for the metrics endpoints), and the servers the
#    integration tests start (PostgreSQL 15, Java 17 for Kafka, Maven to fetch Kafka, and
#    Prometheus, whose server scrapes the daemons in tests/integration/test_metrics.py), and
#    valgrind for bench/apply-profile's instruction counts.
#    apt is skipped entirely when all are installed.
# 2. The Apache Kafka 3.9.1 broker jars, resolved by Maven from Maven Central through
#    scripts/kafka-pom.xml into ${DUALSYNC_CACHE:-<repo>/.cache}/kafka-3.9.1/. Skipped when
#    a previous run completed (the directory holds the marker file .complete).
# 3. The Kafka Connect 3.9.1 worker jars (scripts/connect-pom.xml) into <cache>/connect-3.9.1/
#    and the Debezium 3.6.1.Final PostgreSQL connector with its dependencies
#    (scripts/debezium-pom.xml) into <cache>/debezium-3.6.1/debezium-connector-postgres/, a
#    Connect plugin directory: tests/integration/test_debezium_interop.py runs the real
#    connector beside capture; and the Debezium 3.6.0.Final JDBC sink connector
#    (scripts/debezium-jdbc-pom.xml) into <cache>/debezium-3.6.1/debezium-connector-jdbc/,
#    beside it: tests/integration/test_connect_schema_sink.py runs it on capture's
#    json-with-schema topics. Each skipped when complete, like the broker's jars.
#
# Idempotent: run it as often as you like; when everything is there it only checks.
# Debian's postgresql package creates and may start its own cluster (15/main, port 5432);
# dualsync's tests do not use it: tests/harness/services.sh runs a private cluster. Likewise
# the prometheus package may start its own server on port 9090; the tests start their own,
# with a generated configuration, on a free port.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${DUALSYNC_CACHE:-$REPO_DIR/.cache}"
KAFKA_VERSION=3.9.1
KAFKA_JARS="$CACHE_DIR/kafka-$KAFKA_VERSION"

PACKAGES=(
    build-essential cmake ninja-build pkg-config
    libpq-dev librdkafka-dev libjansson-dev libev-dev libmicrohttpd-dev
    postgresql-15 postgresql-client-15
    openjdk-17-jre-headless maven
    python3 python3-yaml bc
    prometheus
    valgrind
)

say() {
    printf 'setup: %s\n' "$*"
}

die() {
    printf 'setup: error: %s\n' "$*" >&2
    exit 1
}

# --- 1. Debian packages -------------------------------------------------------------------

missing=()
for pkg in "${PACKAGES[@]}"; do
    # "install ok installed" is the only state in which the package is usable; half-installed
    # or config-files states count as missing so apt repairs them.
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    say "all ${#PACKAGES[@]} Debian packages already installed; skipping apt"
else
    say "missing Debian packages: ${missing[*]}"
    if ((EUID != 0)); then
        die "installing packages needs root: run 'sudo bash $0'"
    fi
    export DEBIAN_FRONTEND=noninteractive
    say "apt-get update"
    apt-get update -q
    say "apt-get install ${missing[*]}"
    # </dev/null: CI has no terminal, and no maintainer script may wait for an answer.
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
    for pkg in "${missing[@]}"; do
        status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
        [[ "$status" == "install ok installed" ]] || die "package $pkg is still not installed after apt-get install"
    done
    say "Debian packages installed"
fi

# --- 2. Kafka broker jars --------------------------------------------------------------------

if [[ -f "$KAFKA_JARS/.complete" ]]; then
    say "Kafka $KAFKA_VERSION jars already in $KAFKA_JARS; skipping Maven"
else
    command -v mvn >/dev/null || die "mvn not found (package maven)"
    say "fetching Kafka $KAFKA_VERSION broker jars with Maven into $KAFKA_JARS"
    mkdir -p "$CACHE_DIR"
    # Download into a scratch directory and rename it at the end, so an interrupted run never
    # leaves a half-filled directory that looks complete.
    staging="$(mktemp -d "$CACHE_DIR/kafka-$KAFKA_VERSION.XXXXXX")"
    trap 'rm -rf "$staging"' EXIT
    # Maven's output goes to a log, shown only when it fails.
    if ! mvn -q -B -Dstyle.color=never -f "$REPO_DIR/scripts/kafka-pom.xml" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$staging" \
        </dev/null >"$staging/maven.log" 2>&1; then
        cat "$staging/maven.log" >&2
        die "Maven could not resolve the Kafka jars (its output is above)"
    fi
    rm -f "$staging/maven.log"
    # copy-dependencies may leave the pom's build directory behind next to the pom.
    rm -rf "$REPO_DIR/scripts/target"
    [[ -f "$staging/kafka_2.13-$KAFKA_VERSION.jar" ]] ||
        die "Maven finished but $staging has no kafka_2.13-$KAFKA_VERSION.jar"
    [[ -f "$staging/slf4j-reload4j-1.7.36.jar" ]] ||
        die "Maven finished but $staging has no slf4j-reload4j-1.7.36.jar"
    njars="$(find "$staging" -maxdepth 1 -name '*.jar' | wc -l)"
    date -u +%Y-%m-%dT%H:%M:%SZ >"$staging/.complete"
    rm -rf "$KAFKA_JARS"
    mv "$staging" "$KAFKA_JARS"
    chmod 755 "$KAFKA_JARS"
    trap - EXIT
    say "Kafka $KAFKA_VERSION: $njars jars in $KAFKA_JARS"
fi

# --- 3. Kafka Connect worker and the Debezium PostgreSQL connector -----------------------------

CONNECT_JARS="$CACHE_DIR/connect-$KAFKA_VERSION"
DEBEZIUM_VERSION=3.6.1.Final
DEBEZIUM_PLUGINS="$CACHE_DIR/debezium-${DEBEZIUM_VERSION%.Final}"

# fetch_jars NAME POM DEST SUBDIR CHECK...: copies the runtime dependencies of POM into
# DEST/SUBDIR (SUBDIR may be empty), staged in a scratch directory renamed into place at the
# end (so an interrupted run never leaves a directory that looks complete), then checks that
# each CHECK jar is there. Skipped when DEST/.complete exists.
fetch_jars() {
    local name="$1" pom="$2" dest="$3" subdir="$4"
    shift 4
    if [[ -f "$dest/.complete" ]]; then
        say "$name jars already in $dest; skipping Maven"
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (package maven)"
    say "fetching $name jars with Maven into $dest"
    mkdir -p "$CACHE_DIR"
    staging="$(mktemp -d "$dest.XXXXXX")"
    trap 'rm -rf "$staging"' EXIT
    local out="$staging${subdir:+/$subdir}"
    mkdir -p "$out"
    if ! mvn -q -B -Dstyle.color=never -f "$pom" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$out" \
        </dev/null >"$staging/maven.log" 2>&1; then
        cat "$staging/maven.log" >&2
        die "Maven could not resolve the $name jars (its output is above)"
    fi
    rm -f "$staging/maven.log"
    rm -rf "$REPO_DIR/scripts/target"
    local jar
    for jar in "$@"; do
        [[ -f "$out/$jar" ]] || die "Maven finished but $out has no $jar"
    done
    local njars
    njars="$(find "$out" -maxdepth 1 -name '*.jar' | wc -l)"
    date -u +%Y-%m-%dT%H:%M:%SZ >"$staging/.complete"
    rm -rf "$dest"
    mv "$staging" "$dest"
    chmod -R a+rX "$dest"
    trap - EXIT
    say "$name: $njars jars in $dest${subdir:+/$subdir}"
}

fetch_jars "Kafka Connect $KAFKA_VERSION" "$REPO_DIR/scripts/connect-pom.xml" "$CONNECT_JARS" "" \
    "connect-runtime-$KAFKA_VERSION.jar" "connect-json-$KAFKA_VERSION.jar" \
    "kafka-clients-$KAFKA_VERSION.jar" "slf4j-reload4j-1.7.36.jar"
fetch_jars "Debezium $DEBEZIUM_VERSION PostgreSQL connector" "$REPO_DIR/scripts/debezium-pom.xml" \
    "$DEBEZIUM_PLUGINS" debezium-connector-postgres \
    "debezium-connector-postgres-$DEBEZIUM_VERSION.jar" "debezium-api-$DEBEZIUM_VERSION.jar"
# The JDBC sink, a plugin directory of its own inside the same plugin.path (fetched after the
# PostgreSQL connector, whose refetch replaces the whole directory). 3.6.0.Final: the newest
# release of the sink that Maven Central serves here.
DEBEZIUM_JDBC_VERSION=3.6.0.Final
fetch_jars "Debezium $DEBEZIUM_JDBC_VERSION JDBC sink connector" \
    "$REPO_DIR/scripts/debezium-jdbc-pom.xml" "$DEBEZIUM_PLUGINS/debezium-connector-jdbc" "" \
    "debezium-connector-jdbc-$DEBEZIUM_JDBC_VERSION.jar" "hibernate-agroal-7.2.0.Final.jar"

say "done"
