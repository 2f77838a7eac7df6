#!/usr/bin/env bash
# services.sh: the real PostgreSQL 15 and Apache Kafka 3.9.1 (KRaft) the integration tests use.
#
#   services.sh start DIR        fresh PostgreSQL cluster + fresh Kafka broker under DIR
#   services.sh stop DIR         stops both (keeps their data and logs); safe to repeat
#   services.sh pg-stop DIR      stops PostgreSQL only
#   services.sh pg-start DIR     starts it again: same port, same data
#   services.sh kafka-stop DIR   stops Kafka only (SIGTERM, SIGKILL after a deadline)
#   services.sh kafka-start DIR  starts it again: same port, same data
#   services.sh status DIR       says what runs
#   services.sh cluster-start DIR       a fresh three-broker KRaft cluster under DIR/cluster
#                                       (needs `start DIR` first), or starts its stopped nodes
#   services.sh cluster-stop DIR        stops every node (SIGTERM), keeping the data
#   services.sh broker-kill DIR N       kill -9 node N (1..3) of the cluster
#   services.sh broker-start DIR N      starts node N again: same ports, same data
#   services.sh connect-start DIR       a Kafka Connect 3.9.1 worker (standalone) with the
#                                       Debezium PostgreSQL connector plugin, on the broker
#                                       of `start DIR`; REST on 127.0.0.1, its URL in
#                                       DIR/connect/env.json (DS_CONNECT_URL)
#   services.sh connect-stop DIR        stops it (SIGTERM, SIGKILL after a deadline)
#
# `start` writes DIR/env.sh (for shells: `. DIR/env.sh`) and DIR/env.json (for Python) with
# PGHOST, PGPORT, PGUSER, PGDATABASE, DS_KAFKA_BOOTSTRAP and the paths below. Ports are free
# ones outside the kernel's ephemeral range, so a client's outgoing connection cannot take
# Kafka's port while a test holds the broker stopped.
#
# Layout: DIR/pg/{data,sock,log} (owned by the postgres user when run as root: PostgreSQL
# refuses to run as root), DIR/kafka/{data,server.properties,log4j.properties,server.log,
# kafka.pid}. Anything that does not come up in time is an error (exit 1) with the tail of
# its log: a test that cannot reach its server must fail, never skip.
#
# Environment: DS_TOPIC_DUMP (the topic_dump binary, used to probe Kafka; required by start
# and kafka-start unless DIR/env.sh recorded it), DS_KAFKA_JARS (default
# ${DUALSYNC_CACHE:-<repo>/.cache}/kafka-3.9.1, filled by scripts/setup.sh), DS_PG_BIN
# (default /usr/lib/postgresql/15/bin), DS_KAFKA_START_TIMEOUT (seconds, default 60),
# DS_KAFKA_STOP_TIMEOUT (seconds, default 30), DS_CONNECT_JARS (default <cache>/connect-3.9.1)
# and DS_DEBEZIUM_PLUGINS (default <cache>/debezium-3.6.1), both filled by scripts/setup.sh,
# DS_CONNECT_START_TIMEOUT (seconds, default 60).
set -euo pipefail

HARNESS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$HARNESS_DIR/../.." && pwd)"
PG_BIN="${DS_PG_BIN:-/usr/lib/postgresql/15/bin}"
KAFKA_JARS="${DS_KAFKA_JARS:-${DUALSYNC_CACHE:-$REPO_DIR/.cache}/kafka-3.9.1}"
KAFKA_START_TIMEOUT="${DS_KAFKA_START_TIMEOUT:-60}"
KAFKA_STOP_TIMEOUT="${DS_KAFKA_STOP_TIMEOUT:-30}"
PG_TIMEOUT=60
CONNECT_JARS="${DS_CONNECT_JARS:-${DUALSYNC_CACHE:-$REPO_DIR/.cache}/connect-3.9.1}"
DEBEZIUM_PLUGINS="${DS_DEBEZIUM_PLUGINS:-${DUALSYNC_CACHE:-$REPO_DIR/.cache}/debezium-3.6.1}"
CONNECT_START_TIMEOUT="${DS_CONNECT_START_TIMEOUT:-60}"

say() {
    printf 'services: %s\n' "$*"
}

die() {
    printf 'services: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# Prints the last lines of a log file, indented, to stderr.
log_tail() {
    local file="$1"
    if [[ -s "$file" ]]; then
        printf 'services: last lines of %s:\n' "$file" >&2
        tail -n 40 "$file" | sed 's/^/    /' >&2
    else
        printf 'services: %s is empty or missing\n' "$file" >&2
    fi
}

# ---- who runs PostgreSQL ------------------------------------------------------------------

if ((EUID == 0)); then
    PG_OS_USER=postgres
else
    PG_OS_USER="$(id -un)"
fi

# Runs a command as the PostgreSQL OS user, from /, whose permissions it always has.
as_pg() {
    if ((EUID == 0)); then
        (cd / && runuser -u "$PG_OS_USER" -- "$@")
    else
        (cd / && "$@")
    fi
}

ensure_pg_user() {
    ((EUID == 0)) || return 0
    if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
        say "creating system user $PG_OS_USER"
        useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home \
            --shell /usr/sbin/nologin "$PG_OS_USER" || die "cannot create the $PG_OS_USER user"
    fi
}

# ---- processes ----------------------------------------------------------------------------

# True when PID names a live process (a zombie counts as gone: in a container nobody may
# reap a daemon whose parent exited).
alive() {
    local pid="$1" state
    [[ -n "$pid" && -r "/proc/$pid/stat" ]] || return 1
    state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [[ -n "$state" && "$state" != Z ]]
}

# True when PID is alive and its command line contains TEXT (guards against a recycled pid).
alive_with() {
    local pid="$1" text="$2"
    alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$text"
}

# Picks N free TCP ports on 127.0.0.1 in [20000, 32000), below the kernel's ephemeral range
# (usually from 32768), so no outgoing connection can hold one while its server is down.
free_ports() {
    python3 - "$1" <<'EOF'
import random, socket, sys
want = int(sys.argv[1])
low, high = 20000, 32000
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral_low = int(f.read().split()[0])
    if ephemeral_low > low + 1000:
        high = min(high, ephemeral_low)
except (OSError, ValueError, IndexError):
    pass
rng = random.SystemRandom()
ports = []
for _ in range(1000):
    if len(ports) == want:
        break
    port = rng.randrange(low, high)
    if port in ports:
        continue
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # No SO_REUSEADDR: a port in TIME_WAIT is refused too, which is what we want.
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    ports.append(port)
if len(ports) != want:
    sys.exit("no free ports found")
print(" ".join(map(str, ports)))
EOF
}

# ---- the environment files ----------------------------------------------------------------

ENV_KEYS=(DS_SERVICES_DIR PGHOST PGPORT PGUSER PGDATABASE DS_PG_SOCKET_DIR DS_PG_BIN DS_PG_DATA
    DS_PG_LOG DS_PG_OS_USER DS_KAFKA_BOOTSTRAP DS_KAFKA_PORT DS_KAFKA_CONTROLLER_PORT
    DS_KAFKA_JARS DS_KAFKA_DIR DS_KAFKA_LOG DS_TOPIC_DUMP)

write_env() {
    local key tmp
    tmp="$DIR/env.sh.tmp"
    {
        echo "# Written by tests/harness/services.sh start; source it to reach the test services."
        for key in "${ENV_KEYS[@]}"; do
            printf 'export %s=%q\n' "$key" "${!key-}"
        done
    } >"$tmp"
    mv "$tmp" "$DIR/env.sh"
    for key in "${ENV_KEYS[@]}"; do
        printf '%s\0%s\0' "$key" "${!key-}"
    done | python3 -c '
import json, sys
items = sys.stdin.buffer.read().decode().split("\0")[:-1]
env = dict(zip(items[0::2], items[1::2]))
with open(sys.argv[1] + ".tmp", "w") as f:
    json.dump(env, f, indent=2)
    f.write("\n")
' "$DIR/env.json"
    mv "$DIR/env.json.tmp" "$DIR/env.json"
}

load_env() {
    [[ -f "$DIR/env.sh" ]] || die "$DIR/env.sh does not exist: run 'services.sh start $DIR' first"
    local saved_topic_dump="${DS_TOPIC_DUMP-}"
    # shellcheck disable=SC1091
    . "$DIR/env.sh"
    # The caller's topic_dump wins over the recorded one (a rebuilt tree, another build dir).
    if [[ -n "$saved_topic_dump" ]]; then
        DS_TOPIC_DUMP="$saved_topic_dump"
    fi
}

# ---- PostgreSQL ---------------------------------------------------------------------------

pg_running() {
    [[ -f "$DS_PG_DATA/postmaster.pid" ]] || return 1
    alive "$(head -n 1 "$DS_PG_DATA/postmaster.pid" 2>/dev/null)"
}

pg_init() {
    ensure_pg_user
    [[ -x "$PG_BIN/initdb" ]] || die "$PG_BIN/initdb not found: install postgresql-15 (scripts/setup.sh)"
    mkdir -p "$DIR/pg/data" "$DIR/pg/sock" "$DIR/pg/log"
    chmod 700 "$DIR/pg/data"
    if ((EUID == 0)); then
        chown -R "$PG_OS_USER:" "$DIR/pg"
    fi
    # PostgreSQL runs as $PG_OS_USER: every directory above DIR must let it through.
    if ! as_pg test -x "$DIR/pg" -a -w "$DIR/pg/data"; then
        die "user $PG_OS_USER cannot reach $DIR/pg (a parent directory is not traversable): use a DIR under /tmp"
    fi
    say "initdb $DS_PG_DATA (as $PG_OS_USER)"
    if ! as_pg "$PG_BIN/initdb" -D "$DS_PG_DATA" -U postgres --auth=trust -E UTF8 \
        --locale=C.UTF-8 --no-sync >"$DIR/pg/log/initdb.log" 2>&1; then
        log_tail "$DIR/pg/log/initdb.log"
        die "initdb failed"
    fi
    # Appended settings override initdb's. fsync=off only risks this throwaway cluster on an
    # OS crash; synchronous_commit stays on so commit order and durability semantics that
    # dualsync relies on (confirmed LSNs) are the real ones.
    cat >>"$DS_PG_DATA/postgresql.conf" <<EOF

# ---- dualsync integration tests (tests/harness/services.sh) ----
port = $PGPORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DS_PG_SOCKET_DIR'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
max_connections = 100
fsync = off
synchronous_commit = on
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
EOF
}

pg_start() {
    [[ -f "$DS_PG_DATA/PG_VERSION" ]] || die "no PostgreSQL cluster in $DS_PG_DATA: run 'services.sh start $DIR'"
    if pg_running; then
        say "PostgreSQL already running on port $PGPORT"
        return 0
    fi
    say "starting PostgreSQL 15 on 127.0.0.1:$PGPORT"
    if ! as_pg "$PG_BIN/pg_ctl" -D "$DS_PG_DATA" -l "$DS_PG_LOG" -w -t "$PG_TIMEOUT" start \
        >"$DIR/pg/log/pg_ctl.log" 2>&1; then
        cat "$DIR/pg/log/pg_ctl.log" >&2
        log_tail "$DS_PG_LOG"
        die "PostgreSQL did not start on port $PGPORT"
    fi
    local deadline=$((SECONDS + PG_TIMEOUT))
    until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres; do
        if ((SECONDS >= deadline)); then
            log_tail "$DS_PG_LOG"
            die "PostgreSQL on 127.0.0.1:$PGPORT is not ready after ${PG_TIMEOUT}s"
        fi
        sleep 0.2
    done
    say "PostgreSQL ready (pid $(head -n 1 "$DS_PG_DATA/postmaster.pid"), log $DS_PG_LOG)"
}

pg_stop() {
    if ! pg_running; then
        say "PostgreSQL not running"
        return 0
    fi
    local pid
    pid="$(head -n 1 "$DS_PG_DATA/postmaster.pid")"
    say "stopping PostgreSQL (pid $pid)"
    # fast: roll back sessions and shut down cleanly; immediate if that hangs.
    if ! as_pg "$PG_BIN/pg_ctl" -D "$DS_PG_DATA" -m fast -w -t "$PG_TIMEOUT" stop >/dev/null 2>&1; then
        say "fast shutdown did not finish; immediate shutdown"
        as_pg "$PG_BIN/pg_ctl" -D "$DS_PG_DATA" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
    fi
    local deadline=$((SECONDS + 10))
    while alive "$pid"; do
        if ((SECONDS >= deadline)); then
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            alive "$pid" && die "cannot stop PostgreSQL (pid $pid)"
            break
        fi
        sleep 0.1
    done
    say "PostgreSQL stopped"
}

# ---- Kafka --------------------------------------------------------------------------------

KAFKA_JAVA_OPTS=(-Xms256m -Xmx768m -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true)

kafka_pid() {
    cat "$DS_KAFKA_DIR/kafka.pid" 2>/dev/null || true
}

kafka_running() {
    alive_with "$(kafka_pid)" "$DS_KAFKA_DIR/server.properties"
}

check_jars() {
    [[ -f "$DS_KAFKA_JARS/kafka_2.13-3.9.1.jar" ]] ||
        die "Kafka jars not found in $DS_KAFKA_JARS: run 'bash scripts/setup.sh' (or set DS_KAFKA_JARS)"
    command -v java >/dev/null || die "java not found: install openjdk-17-jre-headless (scripts/setup.sh)"
}

check_topic_dump() {
    [[ -n "${DS_TOPIC_DUMP-}" ]] ||
        die "DS_TOPIC_DUMP is not set: point it at the topic_dump binary (build target topic_dump)"
    [[ -x "$DS_TOPIC_DUMP" ]] || die "DS_TOPIC_DUMP=$DS_TOPIC_DUMP is not an executable"
}

# kafka_init [UUID]: formats the node in DS_KAFKA_DIR (with cluster id UUID, else a new one).
# KAFKA_NODE_ID, KAFKA_VOTERS and KAFKA_REPLICAS make it a node of a cluster (defaults: the
# single broker, node 1, its own only voter, everything one replica).
kafka_init() {
    check_jars
    mkdir -p "$DS_KAFKA_DIR/data"
    local node_id="${KAFKA_NODE_ID:-1}" replicas="${KAFKA_REPLICAS:-1}"
    local voters="${KAFKA_VOTERS:-1@127.0.0.1:$DS_KAFKA_CONTROLLER_PORT}"
    local min_isr=$((replicas > 1 ? 2 : 1))
    cat >"$DS_KAFKA_DIR/server.properties" <<EOF
# Written by tests/harness/services.sh: broker and KRaft controller in one JVM, node $node_id.
process.roles=broker,controller
node.id=$node_id
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$DS_KAFKA_PORT,CONTROLLER://127.0.0.1:$DS_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$DS_KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DS_KAFKA_DIR/data
num.partitions=1
default.replication.factor=$replicas
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$replicas
# One partition instead of 50: the first consumer group of a test then waits for one
# partition to be created, not fifty.
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true
num.network.threads=2
num.io.threads=4
EOF
    cat >"$DS_KAFKA_DIR/log4j.properties" <<EOF
# Warnings and errors only, to $DS_KAFKA_LOG; plus the broker's own "started" line.
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$DS_KAFKA_LOG
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
EOF
    local uuid="${1-}"
    [[ -n "$uuid" ]] || uuid="$(java -Xmx256m -cp "$DS_KAFKA_JARS/*" \
        -Dlog4j.configuration="file:$DS_KAFKA_DIR/log4j.properties" \
        kafka.tools.StorageTool random-uuid 2>>"$DS_KAFKA_LOG")" || {
        log_tail "$DS_KAFKA_LOG"
        die "kafka.tools.StorageTool random-uuid failed"
    }
    say "formatting Kafka storage $DS_KAFKA_DIR/data (cluster id $uuid)"
    if ! java -Xmx256m -cp "$DS_KAFKA_JARS/*" \
        -Dlog4j.configuration="file:$DS_KAFKA_DIR/log4j.properties" \
        kafka.tools.StorageTool format -t "$uuid" -c "$DS_KAFKA_DIR/server.properties" \
        >>"$DS_KAFKA_LOG" 2>&1; then
        log_tail "$DS_KAFKA_LOG"
        die "formatting Kafka storage failed"
    fi
}

kafka_start() {
    check_jars
    check_topic_dump
    [[ -f "$DS_KAFKA_DIR/data/meta.properties" ]] ||
        die "no formatted Kafka storage in $DS_KAFKA_DIR/data: run 'services.sh start $DIR'"
    if kafka_running; then
        say "Kafka already running on port $DS_KAFKA_PORT"
        return 0
    fi
    kafka_launch
    kafka_wait_ready "$DS_KAFKA_BOOTSTRAP" "$(kafka_pid)"
}

# Starts the JVM of the node in DS_KAFKA_DIR, without waiting for it.
kafka_launch() {
    say "starting Kafka 3.9.1 (KRaft) on $DS_KAFKA_BOOTSTRAP"
    # setsid: the broker is a daemon; it must not share the caller's process group (ctest,
    # a test's Python process) or get its terminal's signals. Only the log file is inherited,
    # so no caller waits on a pipe the broker holds open.
    setsid java "${KAFKA_JAVA_OPTS[@]}" -cp "$DS_KAFKA_JARS/*" \
        -Dlog4j.configuration="file:$DS_KAFKA_DIR/log4j.properties" \
        kafka.Kafka "$DS_KAFKA_DIR/server.properties" </dev/null >>"$DS_KAFKA_LOG" 2>&1 &
    echo "$!" >"$DS_KAFKA_DIR/kafka.pid"
}

# kafka_wait_ready BOOTSTRAP PID: until BOOTSTRAP answers a metadata request (PID, the node
# started last, must stay alive meanwhile).
kafka_wait_ready() {
    local bootstrap="$1" pid="$2"
    local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    until "$DS_TOPIC_DUMP" -b "$bootstrap" --probe -T 2000 2>/dev/null; do
        if ! alive "$pid"; then
            log_tail "$DS_KAFKA_LOG"
            die "Kafka (pid $pid) exited during startup"
        fi
        if ((SECONDS >= deadline)); then
            log_tail "$DS_KAFKA_LOG"
            (kafka_stop) >&2 || true
            die "Kafka on $bootstrap did not answer a metadata request within ${KAFKA_START_TIMEOUT}s"
        fi
        sleep 0.2
    done
    say "Kafka ready on $bootstrap (pid $pid, log $DS_KAFKA_LOG)"
}

# One acknowledged write (acks=all) before the first test: proves the broker takes writes,
# not only metadata requests, and makes it hand out its first block of producer ids now
# (until then every idempotent producer is told "coordinator load in progress" and retries).
kafka_warm_up() {
    local topic=dualsync.harness.warmup bootstrap="${1:-$DS_KAFKA_BOOTSTRAP}"
    if ! printf 'warmup\tready\n' |
        "$DS_TOPIC_DUMP" -b "$bootstrap" -t "$topic" --produce -T 30000 \
            >>"$DS_KAFKA_DIR/warmup.log" 2>&1; then
        cat "$DS_KAFKA_DIR/warmup.log" >&2
        log_tail "$DS_KAFKA_LOG"
        die "Kafka on $bootstrap answers metadata requests but did not acknowledge a write to $topic"
    fi
    say "Kafka acknowledged a write to $topic"
}

kafka_stop() {
    local pid
    pid="$(kafka_pid)"
    if ! kafka_running; then
        say "Kafka not running"
        return 0
    fi
    say "stopping Kafka (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
    while alive "$pid"; do
        if ((SECONDS >= deadline)); then
            say "Kafka did not stop within ${KAFKA_STOP_TIMEOUT}s of SIGTERM; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            local kill_deadline=$((SECONDS + 10))
            while alive "$pid"; do
                ((SECONDS < kill_deadline)) || die "cannot stop Kafka (pid $pid)"
                sleep 0.1
            done
            break
        fi
        sleep 0.1
    done
    say "Kafka stopped"
}

# ---- a three-broker cluster ----------------------------------------------------------------
#
# DIR/cluster/node{1,2,3}: each a broker and KRaft controller in one JVM, all three voters;
# topics default to 3 replicas and min.insync.replicas=2, so a write acknowledged with acks=all
# survives the loss of any one node. DIR/cluster/env.sh and env.json hold
# DS_CLUSTER_BOOTSTRAP (the three brokers) and DS_CLUSTER_PORTS (node N's port is the Nth).

CLUSTER_NODES=3

# Points the DS_KAFKA_* variables the functions above use at cluster node $1.
cluster_node() {
    local n="$1" ports controller_ports
    read -r -a ports <<<"$DS_CLUSTER_PORTS"
    read -r -a controller_ports <<<"$DS_CLUSTER_CONTROLLER_PORTS"
    ((n >= 1 && n <= CLUSTER_NODES)) || die "no cluster node $n (1..$CLUSTER_NODES)"
    DS_KAFKA_DIR="$DIR/cluster/node$n"
    DS_KAFKA_LOG="$DS_KAFKA_DIR/server.log"
    DS_KAFKA_PORT="${ports[n - 1]}"
    DS_KAFKA_CONTROLLER_PORT="${controller_ports[n - 1]}"
    DS_KAFKA_BOOTSTRAP="127.0.0.1:$DS_KAFKA_PORT"
}

cluster_load_env() {
    [[ -f "$DIR/cluster/env.sh" ]] || die "no cluster in $DIR/cluster: run 'services.sh cluster-start $DIR'"
    # shellcheck disable=SC1091
    . "$DIR/cluster/env.sh"
}

cluster_init() {
    local ports uuid voters="" n
    ports="$(free_ports $((2 * CLUSTER_NODES)))" || die "cannot find free TCP ports"
    read -r -a ports <<<"$ports"
    DS_CLUSTER_PORTS="${ports[*]:0:CLUSTER_NODES}"
    DS_CLUSTER_CONTROLLER_PORTS="${ports[*]:CLUSTER_NODES}"
    DS_CLUSTER_BOOTSTRAP=""
    for ((n = 1; n <= CLUSTER_NODES; n++)); do
        cluster_node "$n"
        voters+="${voters:+,}$n@127.0.0.1:$DS_KAFKA_CONTROLLER_PORT"
        DS_CLUSTER_BOOTSTRAP+="${DS_CLUSTER_BOOTSTRAP:+,}$DS_KAFKA_BOOTSTRAP"
    done
    mkdir -p "$DIR/cluster"
    uuid="$(java -Xmx256m -cp "$DS_KAFKA_JARS/*" kafka.tools.StorageTool random-uuid 2>/dev/null)" ||
        die "kafka.tools.StorageTool random-uuid failed"
    for ((n = 1; n <= CLUSTER_NODES; n++)); do
        cluster_node "$n"
        KAFKA_NODE_ID="$n" KAFKA_VOTERS="$voters" KAFKA_REPLICAS=3 kafka_init "$uuid"
    done
    {
        echo "# Written by tests/harness/services.sh cluster-start."
        for key in DS_CLUSTER_BOOTSTRAP DS_CLUSTER_PORTS DS_CLUSTER_CONTROLLER_PORTS; do
            printf 'export %s=%q\n' "$key" "${!key}"
        done
    } >"$DIR/cluster/env.sh"
    python3 -c 'import json, sys; json.dump(dict(zip(["DS_CLUSTER_BOOTSTRAP", "DS_CLUSTER_PORTS"], sys.argv[2:])), open(sys.argv[1], "w"), indent=2)' \
        "$DIR/cluster/env.json" "$DS_CLUSTER_BOOTSTRAP" "$DS_CLUSTER_PORTS"
}

cmd_cluster_start() {
    load_env
    check_jars
    check_topic_dump
    [[ -f "$DIR/cluster/env.sh" ]] || cluster_init
    cluster_load_env
    local n last_pid=""
    # Every node first: a controller quorum needs two of the three voters before any of them
    # answers.
    for ((n = 1; n <= CLUSTER_NODES; n++)); do
        cluster_node "$n"
        if ! kafka_running; then
            kafka_launch
        fi
        last_pid="$(kafka_pid)"
    done
    kafka_wait_ready "$DS_CLUSTER_BOOTSTRAP" "$last_pid"
    kafka_warm_up "$DS_CLUSTER_BOOTSTRAP"
    say "cluster ready on $DS_CLUSTER_BOOTSTRAP; environment in $DIR/cluster/env.json"
}

cmd_cluster_stop() {
    [[ -f "$DIR/cluster/env.sh" ]] || { say "no cluster in $DIR"; return 0; }
    load_env
    cluster_load_env
    local n failed=0
    for ((n = 1; n <= CLUSTER_NODES; n++)); do
        cluster_node "$n"
        kafka_running && kill -TERM "$(kafka_pid)" 2>/dev/null || true
    done
    for ((n = 1; n <= CLUSTER_NODES; n++)); do
        cluster_node "$n"
        (kafka_stop) || failed=1
    done
    ((failed == 0)) || die "could not stop every node of the cluster"
}

cmd_broker_kill() {
    load_env
    cluster_load_env
    cluster_node "$1"
    local pid
    pid="$(kafka_pid)"
    kafka_running || die "cluster node $1 is not running"
    kill -KILL "$pid"
    while alive "$pid"; do sleep 0.05; done
    say "cluster node $1 (pid $pid) killed"
}

cmd_broker_start() {
    load_env
    cluster_load_env
    cluster_node "$1"
    if kafka_running; then
        say "cluster node $1 already running"
        return 0
    fi
    kafka_launch
    kafka_wait_ready "$DS_KAFKA_BOOTSTRAP" "$(kafka_pid)"
}

# ---- a Kafka Connect worker with the Debezium PostgreSQL connector ----------------------------
#
# DIR/connect: worker.properties, log4j.properties, connect.log, offsets (the standalone
# worker's source offsets), connect.pid, and env.sh/env.json with DS_CONNECT_URL (its REST
# API). Standalone mode: no internal topics or group to join, so it is ready in seconds; the
# REST API still creates and deletes connectors. Converters are JsonConverter without schemas
# (Debezium's JSON as dualsync writes it); a connector may override them in its own config.

CONNECT_ENV_KEYS=(DS_CONNECT_URL DS_CONNECT_PORT DS_CONNECT_DIR DS_CONNECT_LOG DS_CONNECT_PLUGIN_PATH)

connect_load_env() {
    [[ -f "$DIR/connect/env.sh" ]] || die "no Connect worker in $DIR/connect: run 'services.sh connect-start $DIR'"
    # shellcheck disable=SC1091
    . "$DIR/connect/env.sh"
}

connect_pid() {
    cat "$DIR/connect/connect.pid" 2>/dev/null || true
}

connect_running() {
    alive_with "$(connect_pid)" "$DIR/connect/worker.properties"
}

connect_check_jars() {
    [[ -f "$CONNECT_JARS/connect-runtime-3.9.1.jar" ]] ||
        die "Kafka Connect jars not found in $CONNECT_JARS: run 'bash scripts/setup.sh' (or set DS_CONNECT_JARS)"
    compgen -G "$DEBEZIUM_PLUGINS/debezium-connector-postgres/debezium-connector-postgres-*.jar" >/dev/null ||
        die "the Debezium PostgreSQL connector is not in $DEBEZIUM_PLUGINS/debezium-connector-postgres: run 'bash scripts/setup.sh' (or set DS_DEBEZIUM_PLUGINS)"
    command -v java >/dev/null || die "java not found: install openjdk-17-jre-headless (scripts/setup.sh)"
}

# shellcheck disable=SC2034 # DS_CONNECT_* are read through ${!key}
connect_init() {
    local port key
    port="$(free_ports 1)" || die "cannot find a free TCP port"
    DS_CONNECT_PORT="$port"
    DS_CONNECT_URL="http://127.0.0.1:$port"
    DS_CONNECT_DIR="$DIR/connect"
    DS_CONNECT_LOG="$DIR/connect/connect.log"
    DS_CONNECT_PLUGIN_PATH="$DEBEZIUM_PLUGINS"
    mkdir -p "$DS_CONNECT_DIR"
    cat >"$DS_CONNECT_DIR/worker.properties" <<EOF
# Written by tests/harness/services.sh connect-start: a standalone Kafka Connect worker.
bootstrap.servers=$DS_KAFKA_BOOTSTRAP
listeners=http://127.0.0.1:$port
rest.advertised.host.name=127.0.0.1
rest.advertised.port=$port
plugin.path=$DEBEZIUM_PLUGINS
# Only plugin.path is scanned for plugins, not the worker's own class path: faster, and what
# an installation with connectors in plugin directories does.
plugin.discovery=only_scan
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=false
value.converter.schemas.enable=false
offset.storage.file.filename=$DS_CONNECT_DIR/offsets
# Source offsets (the LSN Debezium then confirms to its slot) are committed every second,
# not every minute.
offset.flush.interval.ms=1000
EOF
    cat >"$DS_CONNECT_DIR/log4j.properties" <<EOF
# Connect's INFO lines (connector and task life cycle, Debezium's progress) to $DS_CONNECT_LOG.
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$DS_CONNECT_LOG
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.org.reflections=ERROR
log4j.logger.org.apache.kafka.clients=WARN
log4j.logger.org.apache.kafka.common.config.AbstractConfig=WARN
log4j.logger.org.eclipse.jetty=WARN
EOF
    {
        echo "# Written by tests/harness/services.sh connect-start."
        for key in "${CONNECT_ENV_KEYS[@]}"; do
            printf 'export %s=%q\n' "$key" "${!key}"
        done
    } >"$DS_CONNECT_DIR/env.sh"
    for key in "${CONNECT_ENV_KEYS[@]}"; do
        printf '%s\0%s\0' "$key" "${!key}"
    done | python3 -c '
import json, sys
items = sys.stdin.buffer.read().decode().split("\0")[:-1]
with open(sys.argv[1] + ".tmp", "w") as f:
    json.dump(dict(zip(items[0::2], items[1::2])), f, indent=2)
    f.write("\n")
' "$DS_CONNECT_DIR/env.json"
    mv "$DS_CONNECT_DIR/env.json.tmp" "$DS_CONNECT_DIR/env.json"
}

# True when the worker's REST API lists the Debezium PostgreSQL connector among its plugins.
connect_has_plugin() {
    python3 - "$DS_CONNECT_URL" <<'PYEOF'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/connector-plugins", timeout=5) as r:
        plugins = json.load(r)
except Exception:
    sys.exit(1)
sys.exit(0 if any(p.get("class") == "io.debezium.connector.postgresql.PostgresConnector"
                  for p in plugins) else 1)
PYEOF
}

cmd_connect_start() {
    load_env
    connect_check_jars
    kafka_running || die "Kafka is not running: run 'services.sh start $DIR' (or kafka-start) first"
    [[ -f "$DIR/connect/env.sh" ]] || connect_init
    connect_load_env
    if connect_running; then
        say "Connect worker already running on $DS_CONNECT_URL"
        return 0
    fi
    say "starting a Kafka Connect 3.9.1 worker (standalone) on $DS_CONNECT_URL"
    # setsid and only the log inherited: a daemon, as the broker is.
    setsid java -Xms128m -Xmx768m -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -cp "$CONNECT_JARS/*" -Dlog4j.configuration="file:$DS_CONNECT_DIR/log4j.properties" \
        org.apache.kafka.connect.cli.ConnectStandalone "$DS_CONNECT_DIR/worker.properties" \
        </dev/null >>"$DS_CONNECT_LOG" 2>&1 &
    local pid=$!
    echo "$pid" >"$DS_CONNECT_DIR/connect.pid"
    local deadline=$((SECONDS + CONNECT_START_TIMEOUT))
    until connect_has_plugin; do
        if ! alive "$pid"; then
            log_tail "$DS_CONNECT_LOG"
            die "the Connect worker (pid $pid) exited during startup"
        fi
        if ((SECONDS >= deadline)); then
            log_tail "$DS_CONNECT_LOG"
            (connect_stop) >&2 || true
            die "the Connect worker on $DS_CONNECT_URL did not list the Debezium PostgreSQL connector within ${CONNECT_START_TIMEOUT}s"
        fi
        sleep 0.2
    done
    say "Connect worker ready on $DS_CONNECT_URL (pid $pid, log $DS_CONNECT_LOG); environment in $DS_CONNECT_DIR/env.json"
}

connect_stop() {
    local pid
    pid="$(connect_pid)"
    if ! connect_running; then
        say "Connect worker not running"
        return 0
    fi
    say "stopping the Connect worker (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
    while alive "$pid"; do
        if ((SECONDS >= deadline)); then
            say "the Connect worker did not stop within ${KAFKA_STOP_TIMEOUT}s of SIGTERM; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            local kill_deadline=$((SECONDS + 10))
            while alive "$pid"; do
                ((SECONDS < kill_deadline)) || die "cannot stop the Connect worker (pid $pid)"
                sleep 0.1
            done
            break
        fi
        sleep 0.1
    done
    say "Connect worker stopped"
}

cmd_connect_stop() {
    [[ -f "$DIR/connect/env.sh" ]] || { say "no Connect worker in $DIR"; return 0; }
    connect_stop
}

# ---- commands -----------------------------------------------------------------------------

# shellcheck disable=SC2034 # all read through ${!key} in write_env
set_paths() {
    DS_SERVICES_DIR="$DIR"
    DS_PG_BIN="$PG_BIN"
    DS_PG_DATA="$DIR/pg/data"
    DS_PG_SOCKET_DIR="$DIR/pg/sock"
    DS_PG_LOG="$DIR/pg/log/postgres.log"
    DS_PG_OS_USER="$PG_OS_USER"
    DS_KAFKA_JARS="$KAFKA_JARS"
    DS_KAFKA_DIR="$DIR/kafka"
    DS_KAFKA_LOG="$DIR/kafka/server.log"
    PGHOST=127.0.0.1
    PGUSER=postgres
    PGDATABASE=postgres
}

START_DONE=0

# When `start` fails half-way, nothing it started may keep running.
on_start_exit() {
    if ((START_DONE == 0)); then
        printf 'services: start failed; stopping what was started\n' >&2
        (kafka_stop) >&2 || true
        (pg_stop) >&2 || true
    fi
}

cmd_start() {
    # Leftovers of an earlier run in the same DIR (a crashed test run) go first.
    if [[ -f "$DIR/env.sh" ]]; then
        (
            load_env
            cmd_connect_stop
            kafka_stop
            cmd_cluster_stop
            pg_stop
        ) || die "cannot stop the services an earlier run left in $DIR"
    fi
    set_paths
    check_jars
    check_topic_dump
    rm -rf "$DIR/pg" "$DIR/kafka" "$DIR/cluster" "$DIR/connect" "$DIR/env.sh" "$DIR/env.json"
    mkdir -p "$DIR"
    chmod 755 "$DIR"

    local ports
    ports="$(free_ports 3)" || die "cannot find free TCP ports"
    read -r PGPORT DS_KAFKA_PORT DS_KAFKA_CONTROLLER_PORT <<<"$ports"
    DS_KAFKA_BOOTSTRAP="127.0.0.1:$DS_KAFKA_PORT"
    DS_TOPIC_DUMP="$(realpath "$DS_TOPIC_DUMP")"
    mkdir -p "$DS_KAFKA_DIR"
    write_env

    trap on_start_exit EXIT
    pg_init
    pg_start
    kafka_init
    kafka_start
    kafka_warm_up
    START_DONE=1
    trap - EXIT
    say "ready; environment in $DIR/env.sh and $DIR/env.json"
}

cmd_stop() {
    if [[ ! -f "$DIR/env.sh" ]]; then
        say "nothing to stop in $DIR"
        return 0
    fi
    load_env
    local failed=0
    # Subshells: a failure (die) in one must not keep the other from being stopped.
    (cmd_connect_stop) || failed=1
    (kafka_stop) || failed=1
    (cmd_cluster_stop) || failed=1
    (pg_stop) || failed=1
    ((failed == 0)) || die "could not stop everything in $DIR"
}

cmd_status() {
    load_env
    if pg_running; then say "PostgreSQL running on 127.0.0.1:$PGPORT"; else say "PostgreSQL stopped"; fi
    if kafka_running; then say "Kafka running on $DS_KAFKA_BOOTSTRAP"; else say "Kafka stopped"; fi
    if [[ -f "$DIR/connect/env.sh" ]]; then
        connect_load_env
        if connect_running; then say "Connect worker running on $DS_CONNECT_URL"; else say "Connect worker stopped"; fi
    fi
}

(($# == 2 || $# == 3)) || usage
COMMAND="$1"
DIR="$(realpath -m "$2")"
NODE="${3-}"

case "$COMMAND" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
pg-start) load_env; pg_start ;;
pg-stop) load_env; pg_stop ;;
kafka-start) load_env; kafka_start ;;
kafka-stop) load_env; kafka_stop ;;
cluster-start) cmd_cluster_start ;;
cluster-stop) cmd_cluster_stop ;;
broker-kill) [[ -n "$NODE" ]] || usage; cmd_broker_kill "$NODE" ;;
broker-start) [[ -n "$NODE" ]] || usage; cmd_broker_start "$NODE" ;;
connect-start) cmd_connect_start ;;
connect-stop) cmd_connect_stop ;;
*) usage ;;
esac
