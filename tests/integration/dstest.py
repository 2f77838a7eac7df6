"""dstest: what dualsync's integration tests share (Python standard library only).

The tests run against the real PostgreSQL 15 and Kafka that tests/harness/services.sh
started; ctest passes:

    DS_SERVICES_DIR  where services.sh wrote env.json (ports, paths)
    DS_TOPIC_DUMP    the topic_dump helper (tests/tools/topic_dump.c)
    DS_BIN           the dualsync binary (absent until it is built)
    DS_SOURCE_DIR    the source tree

A missing service or binary is a failure, never a skip. Waiting is always for a real
condition with a deadline (wait_for, topic_dump's count/idle/timeout), never a bare sleep.

Typical use:

    class CaptureInsertTest(dstest.ServicesTestCase):
        def test_insert_is_published(self):
            self.psql("CREATE TABLE t (id int PRIMARY KEY, v text)")
            cfg = self.capture_config(["public.t"])
            with self.start_capture(cfg):
                self.psql("INSERT INTO t VALUES (1, 'a')")
                msgs = self.consume([cfg.topic("public.t")], count=1)
            self.assertEqual(msgs[0]["value"]["after"]["v"], "a")
"""

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request
import uuid

SOURCE_DIR = os.environ.get("DS_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
SERVICES_SH = os.path.join(SOURCE_DIR, "tests", "harness", "services.sh")

# psql prints SQL NULL as this, so rows can tell NULL from an empty string.
_NULL_MARKER = "\x1aNULL\x1a"

_env_cache = None


class HarnessError(AssertionError):
    """The test environment is broken: reported as a test failure, never a skip."""


# ---- environment -------------------------------------------------------------------------


def services_dir():
    path = os.environ.get("DS_SERVICES_DIR")
    if not path:
        raise HarnessError(
            "DS_SERVICES_DIR is not set: run the tests through ctest, or start the services "
            "with tests/harness/services.sh start DIR and export DS_SERVICES_DIR=DIR"
        )
    return path


def env():
    """The services' settings (PGPORT, DS_KAFKA_BOOTSTRAP, ...) from env.json."""
    global _env_cache
    if _env_cache is None:
        path = os.path.join(services_dir(), "env.json")
        try:
            with open(path, encoding="utf-8") as f:
                _env_cache = json.load(f)
        except OSError as e:
            raise HarnessError(
                f"cannot read {path} ({e.strerror}): did 'services.sh start' (the ctest fixture "
                "integration.services.start) succeed?"
            ) from None
    return _env_cache


def _executable(var, what):
    path = os.environ.get(var) or env().get(var)
    if not path:
        raise HarnessError(f"{var} is not set: it names the {what}")
    if not os.access(path, os.X_OK):
        raise HarnessError(f"{var}={path} is not an executable {what}: build it first")
    return path


def ds_bin():
    """The dualsync binary under test."""
    return _executable("DS_BIN", "dualsync binary")


def topic_dump_bin():
    return _executable("DS_TOPIC_DUMP", "topic_dump helper (tests/tools/topic_dump.c)")


def kafka_bootstrap():
    return env()["DS_KAFKA_BOOTSTRAP"]


def conninfo(db=None):
    """A libpq connection string for database @db (default: postgres)."""
    e = env()
    return (
        f"host={e['PGHOST']} port={e['PGPORT']} user={e['PGUSER']} "
        f"dbname={db or e['PGDATABASE']}"
    )


def unique_name(prefix, max_len=63):
    """A lowercase identifier (letters, digits, _) unique to this call: prefix_<hex>."""
    slug = re.sub(r"[^a-z0-9_]+", "_", prefix.lower()).strip("_") or "ds"
    suffix = uuid.uuid4().hex[:10]
    return f"{slug[: max_len - len(suffix) - 1]}_{suffix}"


def quote_ident(name):
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text):
    return "'" + text.replace("'", "''") + "'"


def lsn_to_int(lsn):
    """'16/B374D848' -> 0x16B374D848; None stays None."""
    if lsn is None:
        return None
    hi, lo = lsn.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


# ---- PostgreSQL --------------------------------------------------------------------------


def psql(sql, db=None, timeout=120, check=True):
    """Runs @sql (any number of statements, each in its own transaction unless the SQL says
    BEGIN) and returns the rows of every result as tuples of str, None for NULL.

    Raises AssertionError with psql's message when a statement fails (ON_ERROR_STOP)."""
    e = env()
    cmd = [
        os.path.join(e["DS_PG_BIN"], "psql"),
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-t",
        "--csv",
        "-P",
        "null=" + _NULL_MARKER,
        "-h",
        e["PGHOST"],
        "-p",
        str(e["PGPORT"]),
        "-U",
        e["PGUSER"],
        "-d",
        db or e["PGDATABASE"],
        "-f",
        "-",
    ]
    child_env = dict(os.environ, PGCONNECT_TIMEOUT="10", PGAPPNAME="dstest")
    try:
        proc = subprocess.run(
            cmd,
            input=sql,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=child_env,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"psql on database {db}: no answer within {timeout}s to:\n{sql}")
    if proc.returncode != 0:
        if not check:
            return None
        raise AssertionError(
            f"psql on database {db or e['PGDATABASE']} failed (exit {proc.returncode}):\n"
            f"{proc.stderr.strip()}\nSQL:\n{sql}"
        )
    rows = []
    for row in csv.reader(io.StringIO(proc.stdout)):
        rows.append(tuple(None if v == _NULL_MARKER else v for v in row))
    return rows


def psql_value(sql, db=None):
    """The single value of a one-row, one-column query."""
    rows = psql(sql, db=db)
    if len(rows) != 1 or len(rows[0]) != 1:
        raise AssertionError(f"expected one value from {sql!r}, got {rows!r}")
    return rows[0][0]


class HeldTransaction:
    """A psql session holding a transaction open (its locks with it) until release()."""

    def __init__(self, sql, db=None):
        e = env()
        self.app = unique_name("held")
        self.proc = subprocess.Popen(
            [os.path.join(e["DS_PG_BIN"], "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
             "-h", e["PGHOST"], "-p", str(e["PGPORT"]), "-U", e["PGUSER"],
             "-d", db or e["PGDATABASE"], "-f", "-"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            text=True, env=dict(os.environ, PGAPPNAME=self.app))
        self.proc.stdin.write("BEGIN;\n" + sql + "\n")
        self.proc.stdin.flush()
        wait_for(
            lambda: psql_value(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                f"{quote_literal(self.app)} AND state = 'idle in transaction'") == "1",
            timeout=30, what="the held transaction to take its locks")

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("COMMIT;\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        return self.proc.returncode


def create_database(prefix):
    """Creates a fresh database named prefix_<hex> and returns its name."""
    name = unique_name("ds_" + prefix)
    psql(f"CREATE DATABASE {quote_ident(name)}")
    return name


def drop_replication_slots(db):
    """Drops every replication slot of database @db, ending any walsender still using one."""
    lit = quote_literal(db)
    psql(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
        f"WHERE database = {lit} AND active_pid IS NOT NULL"
    )

    def dropped():
        # A terminated walsender releases its slot asynchronously; drop what is free.
        psql(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            f"WHERE database = {lit} AND NOT active"
        )
        return psql_value(f"SELECT count(*) FROM pg_replication_slots WHERE database = {lit}") == "0"

    wait_for(dropped, timeout=30, what=f"the replication slots of database {db} to be dropped")


def drop_database(db):
    """Drops @db and its replication slots (slots would otherwise hold WAL forever)."""
    drop_replication_slots(db)
    psql(f"DROP DATABASE IF EXISTS {quote_ident(db)} WITH (FORCE)")


def slot_info(slot):
    """The state of replication slot @slot, or None when it does not exist:
    {"confirmed_flush_lsn", "restart_lsn" (as text, None when unset), "retained_wal_bytes"
    (WAL the server keeps for it: current WAL position minus restart_lsn), "active",
    "active_pid"}."""
    rows = psql(
        "SELECT confirmed_flush_lsn, restart_lsn, "
        "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, active, active_pid "
        f"FROM pg_replication_slots WHERE slot_name = {quote_literal(slot)}"
    )
    if not rows:
        return None
    confirmed, restart, retained, active, pid = rows[0]
    return {
        "confirmed_flush_lsn": confirmed,
        "restart_lsn": restart,
        "retained_wal_bytes": int(retained) if retained is not None else None,
        "active": active == "t",
        "active_pid": int(pid) if pid is not None else None,
    }


def current_wal_lsn():
    return psql_value("SELECT pg_current_wal_lsn()")


# ---- waiting -----------------------------------------------------------------------------


def wait_for(predicate, timeout, what, interval=0.1):
    """Polls @predicate until it returns a true value, which is returned. Fails with
    "timed out after Ns waiting for <what>" when @timeout seconds pass first. Exceptions
    from @predicate propagate: a broken check must not look like a slow one."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ---- Kafka -------------------------------------------------------------------------------


def consume(topics, count=None, idle_ms=2000, timeout_ms=60000, check=True, headers=False):
    """Reads @topics from the beginning with topic_dump and returns the messages as dicts
    {"topic", "partition", "offset", "key", "value"} (key/value parsed JSON, or a string,
    or None). With @count: stops after that many and fails when fewer arrive. Without:
    returns when every partition is at its end and nothing arrived for @idle_ms. A topic
    that does not exist yet is waited for until @timeout_ms. With @headers each dict also
    has "headers": [[name, text or None], ...] in the message's order."""
    if isinstance(topics, str):
        topics = [topics]
    cmd = [topic_dump_bin(), "-b", kafka_bootstrap(), "-i", str(idle_ms), "-T", str(timeout_ms)]
    if headers:
        cmd.append("--headers")
    for t in topics:
        cmd += ["-t", t]
    if count is not None:
        cmd += ["-n", str(count)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_ms / 1000 + 60
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"topic_dump did not stop within {timeout_ms / 1000 + 60}s: {cmd}")
    messages = [json.loads(line) for line in proc.stdout.splitlines() if line]
    if proc.returncode != 0 and check:
        shown = "\n".join(json.dumps(m) for m in messages[:20])
        raise AssertionError(
            f"reading {', '.join(topics)} failed (topic_dump exit {proc.returncode}): "
            f"{proc.stderr.strip()}\n{len(messages)} messages read"
            + (f", the first ones:\n{shown}" if messages else "")
        )
    return messages


def produce(topic, pairs, timeout_ms=30000):
    """Produces (key, value) pairs (value None: a tombstone) with acks=all; fails unless the
    broker acknowledged all. Keys and values must not contain TAB or newline."""
    lines = []
    for key, value in pairs:
        for part in (key, value):
            if part is not None and ("\t" in part or "\n" in part):
                raise ValueError(f"produce: {part!r} contains a TAB or newline")
        lines.append(key if value is None else f"{key}\t{value}")
    proc = subprocess.run(
        [topic_dump_bin(), "-b", kafka_bootstrap(), "-t", topic, "--produce", "-T", str(timeout_ms)],
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=timeout_ms / 1000 + 60,
    )
    if proc.returncode != 0:
        raise AssertionError(f"producing to {topic} failed: {proc.stderr.strip()}")


def describe_topics(topics, timeout_ms=30000, bootstrap=None):
    """{topic: {"exists", "partitions", "leaders", "config": {name: value}}} as the broker
    reports them (admin API DescribeConfigs and metadata, through topic_dump --describe;
    "leaders": the node leading each partition, -1 for none). A missing topic has
    "exists": False."""
    if isinstance(topics, str):
        topics = [topics]
    cmd = [topic_dump_bin(), "-b", bootstrap or kafka_bootstrap(), "--describe",
           "-T", str(timeout_ms)]
    for t in topics:
        cmd += ["-t", t]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_ms / 1000 + 60)
    if proc.returncode != 0:
        raise AssertionError(f"describing {', '.join(topics)} failed: {proc.stderr.strip()}")
    return {d["topic"]: d for d in (json.loads(line) for line in proc.stdout.splitlines() if line)}


def create_topic(topic, partitions=1, config=None, timeout_ms=30000, bootstrap=None, replicas=1):
    """Creates @topic with topic settings @config {name: value}, as an operator would before
    dualsync runs; fails unless the broker created it."""
    cmd = [topic_dump_bin(), "-b", bootstrap or kafka_bootstrap(), "-t", topic, "--create",
           "--partitions", str(partitions), "--replicas", str(replicas), "-T", str(timeout_ms)]
    for name, value in (config or {}).items():
        cmd += ["-c", f"{name}={value}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_ms / 1000 + 60)
    if proc.returncode != 0:
        raise AssertionError(f"creating topic {topic} failed: {proc.stderr.strip()}")


def kafka_probe(timeout_ms=2000):
    """True when the broker answers a metadata request."""
    proc = subprocess.run(
        [topic_dump_bin(), "-b", kafka_bootstrap(), "--probe", "-T", str(timeout_ms)],
        capture_output=True,
        timeout=timeout_ms / 1000 + 30,
    )
    return proc.returncode == 0


def _services(command, *args):
    proc = subprocess.run(
        ["bash", SERVICES_SH, command, services_dir(), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=180,
    )
    if proc.returncode != 0:
        raise HarnessError(
            f"services.sh {command} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )
    return proc.stdout


def kafka_stop():
    """Stops the broker (SIGTERM, SIGKILL after a deadline), keeping its data."""
    _services("kafka-stop")


def kafka_start():
    """Starts the broker again on the same port with the same data; returns once it answers."""
    _services("kafka-start")


def pg_stop():
    _services("pg-stop")


def pg_start():
    _services("pg-start")


# ---- the three-broker cluster (services.sh cluster-*) --------------------------------------


def cluster_start():
    """Starts the three-broker KRaft cluster (a fresh one the first time; its stopped nodes
    later) and returns its bootstrap list once it takes an acks=all write."""
    _services("cluster-start")
    with open(os.path.join(services_dir(), "cluster", "env.json"), encoding="utf-8") as f:
        return json.load(f)["DS_CLUSTER_BOOTSTRAP"]


def cluster_stop():
    """Stops every node of the cluster, keeping its data."""
    _services("cluster-stop")


def broker_kill(node):
    """kill -9 cluster node @node (1..3)."""
    _services("broker-kill", str(node))


def broker_start(node):
    _services("broker-start", str(node))


def partition_leaders(bootstrap, topic):
    """{partition: leader node id} of @topic."""
    return dict(enumerate(describe_topics(topic, bootstrap=bootstrap)[topic]["leaders"]))


# ---- Kafka Connect and the real Debezium PostgreSQL connector (services.sh connect-*) -------


def connect_start():
    """Starts the harness's Kafka Connect worker (standalone, with the Debezium PostgreSQL
    connector plugin; a no-op when it runs) and returns its REST URL. Fails, never skips, when
    the worker cannot start (missing jars: run scripts/setup.sh)."""
    _services("connect-start")
    path = os.path.join(services_dir(), "connect", "env.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)["DS_CONNECT_URL"]


def connect_stop():
    _services("connect-stop")


def connect_log_path():
    return os.path.join(services_dir(), "connect", "connect.log")


def connect_request(url, method, path, body=None, timeout=30):
    """One call to the Connect REST API at @url: returns (HTTP status, parsed JSON body or
    None). Connection errors raise HarnessError."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url + path, data=data, method=method,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        raise HarnessError(f"Kafka Connect REST API {method} {url}{path}: {e}") from None
    text = raw.decode("utf-8", errors="replace")
    try:
        return status, (json.loads(text) if text.strip() else None)
    except ValueError:
        return status, text


def drop_replication_slot(slot):
    """Drops replication slot @slot if it exists, ending the walsender that holds it."""
    lit = quote_literal(slot)
    psql(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
        f"WHERE slot_name = {lit} AND active_pid IS NOT NULL"
    )

    def dropped():
        psql(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            f"WHERE slot_name = {lit} AND NOT active"
        )
        return psql_value(f"SELECT count(*) FROM pg_replication_slots WHERE slot_name = {lit}") == "0"

    wait_for(dropped, timeout=30, what=f"replication slot {slot} to be dropped")


class DebeziumConnector:
    """A Debezium PostgreSQL connector in the harness's Connect worker: .name, .url, .db,
    .slot, .publication, .topic_prefix, .config (what was sent)."""

    CLASS = "io.debezium.connector.postgresql.PostgresConnector"

    def __init__(self, url, name, db, tables, slot, publication, topic_prefix,
                 snapshot_mode="no_data", extra=None):
        self.url = url
        self.name = name
        self.db = db
        self.slot = slot
        self.publication = publication
        self.topic_prefix = topic_prefix
        e = env()
        self.config = {
            "connector.class": self.CLASS,
            "tasks.max": "1",
            "database.hostname": e["PGHOST"],
            "database.port": str(e["PGPORT"]),
            "database.user": e["PGUSER"],
            # The test cluster trusts every local connection; Debezium requires the setting.
            "database.password": "unused",
            "database.dbname": db,
            "topic.prefix": topic_prefix,
            "plugin.name": "pgoutput",
            "slot.name": slot,
            "publication.name": publication,
            # A publication of the listed tables only, as capture creates its own.
            "publication.autocreate.mode": "filtered",
            "table.include.list": ",".join(re.escape(t) for t in tables),
            "snapshot.mode": snapshot_mode,
            # Deleting the connector leaves the slot; cleanup() drops it.
            "slot.drop.on.stop": "false",
            "status.update.interval.ms": "1000",
        }
        self.config.update({k: str(v) for k, v in (extra or {}).items()})

    def topic(self, table):
        """The topic of "schema.table": <topic.prefix>.<schema>.<table>, as capture's."""
        return f"{self.topic_prefix}.{table}"

    def create(self):
        status, body = connect_request(self.url, "POST", "/connectors",
                                       {"name": self.name, "config": self.config})
        if status != 201:
            raise AssertionError(
                f"creating Debezium connector {self.name} failed (HTTP {status}): {body}"
            )
        return self

    def status(self):
        """The REST API's status document, or None when the connector does not exist."""
        status, body = connect_request(self.url, "GET", f"/connectors/{self.name}/status")
        if status == 404:
            return None
        if status != 200:
            raise AssertionError(f"status of connector {self.name}: HTTP {status}: {body}")
        return body

    def _check_not_failed(self, st):
        states = [st["connector"]] + st.get("tasks", [])
        for s in states:
            if s.get("state") == "FAILED":
                raise AssertionError(
                    f"Debezium connector {self.name} FAILED:\n{s.get('trace', '(no trace)')}\n"
                    f"Connect log tail:\n{self.log_tail()}"
                )

    def wait_streaming(self, timeout=60):
        """Waits until the connector and its task run and hold the slot with a consistent
        start point: a change committed after this returns is captured."""

        def streaming():
            st = self.status()
            if st is None:
                return False
            self._check_not_failed(st)
            tasks = st.get("tasks", [])
            if st["connector"]["state"] != "RUNNING" or not tasks or any(
                t["state"] != "RUNNING" for t in tasks
            ):
                return False
            rows = psql(
                "SELECT active, confirmed_flush_lsn FROM pg_replication_slots "
                f"WHERE slot_name = {quote_literal(self.slot)}"
            )
            return bool(rows) and rows[0][0] == "t" and rows[0][1] is not None

        try:
            wait_for(streaming, timeout=timeout, what=f"Debezium connector {self.name} to stream "
                     f"from slot {self.slot}", interval=0.25)
        except AssertionError as e:
            raise AssertionError(f"{e}\nConnect log tail:\n{self.log_tail()}") from None
        return self

    def delete(self):
        """Deletes the connector and waits until the worker forgot it (its task stopped)."""
        status, body = connect_request(self.url, "DELETE", f"/connectors/{self.name}")
        if status not in (204, 404):
            raise AssertionError(f"deleting connector {self.name}: HTTP {status}: {body}")
        wait_for(lambda: self.status() is None, timeout=30,
                 what=f"connector {self.name} to be deleted")

    def cleanup(self):
        """Deletes the connector, then drops its slot and publication (nothing holds WAL)."""
        try:
            self.delete()
        finally:
            drop_replication_slot(self.slot)
            psql(f"DROP PUBLICATION IF EXISTS {quote_ident(self.publication)}", db=self.db)

    @property
    def log_path(self):
        return connect_log_path()

    def log_tail(self, lines=60):
        return _log_tail(connect_log_path(), lines)


# ---- configuration and the capture process -----------------------------------------------


class CaptureConfig:
    """A capture configuration file: .path, .topic_prefix, .slot, .publication, .db, and
    .data (the JSON written)."""

    def __init__(self, path, data, db):
        self.path = path
        self.data = data
        self.db = db
        self.topic_prefix = data["topic_prefix"]
        self.slot = data["source"]["slot"]
        self.publication = data["source"]["publication"]

    def topic(self, table):
        """The topic of "schema.table": <topic_prefix>.<schema>.<table>."""
        return f"{self.topic_prefix}.{table}"


def write_capture_config(
    path, db, tables, slot, publication, topic_prefix, kafka=None, capture=None, **top_level
):
    """Writes a capture configuration (see include/dualsync/config.h) to @path and returns a
    CaptureConfig. @kafka adds librdkafka properties, @capture the "capture" section,
    @top_level other top-level keys (log_level, ...). The metrics endpoint is "off" unless
    @capture sets "metrics_address": tests run several captures at once, which must not
    compete for the default port."""
    data = {
        "source": {
            "conninfo": conninfo(db),
            "publication": publication,
            "slot": slot,
            "tables": list(tables),
        },
        "kafka": dict({"bootstrap.servers": kafka_bootstrap()}, **(kafka or {})),
        "topic_prefix": topic_prefix,
    }
    data["capture"] = dict({"metrics_address": "off"}, **(capture or {}))
    data.update(top_level)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    return CaptureConfig(path, data, db)


def _log_tail(path, lines=60):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"(cannot read {path}: {e.strerror})\n"


class Capture:
    """`dualsync capture --config FILE` as a child process; its stdout and stderr go to
    @log_path. Use as a context manager, or start()/stop()."""

    def __init__(self, config, log_path, extra_args=()):
        self.config_path = config.path if isinstance(config, CaptureConfig) else config
        self.log_path = log_path
        self.extra_args = list(extra_args)
        self.proc = None

    def start(self):
        if self.proc and self.proc.poll() is None:
            raise AssertionError("capture is already running")
        cmd = [ds_bin(), "capture", "--config", self.config_path] + self.extra_args
        log = open(self.log_path, "ab")
        try:
            log.write(f"==== {time.strftime('%H:%M:%S')} start: {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self):
        """The exit status, or None while running."""
        return self.proc.poll() if self.proc else None

    def stop(self, timeout=60, expect_exit=0):
        """SIGTERM and wait; fails unless it exits with @expect_exit (None: any) in time.
        Returns the exit status."""
        if self.proc is None:
            raise AssertionError("capture was never started")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"capture (pid {self.proc.pid}) did not exit within {timeout}s of SIGTERM; "
                    f"killed. Log tail:\n{self.log_tail()}"
                )
        code = self.proc.returncode
        if expect_exit is not None and code != expect_exit:
            raise AssertionError(
                f"capture exited with {code}, expected {expect_exit}. Log tail:\n{self.log_tail()}"
            )
        return code

    def kill(self):
        """SIGKILL: a crash, nothing flushed or confirmed. Returns the exit status."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(timeout=30) if self.proc else None

    def wait_exit(self, timeout):
        """Waits for the process to exit on its own; returns the status."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"capture still running after {timeout}s") from None

    def log_tail(self, lines=60):
        return _log_tail(self.log_path, lines)

    def log_text(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def __enter__(self):
        if not self.running():
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        # On a failing test there is nothing to wait for: make sure nothing is left behind.
        if exc_type is not None:
            self.kill()
        elif self.running():
            self.stop()
        return False


# ---- the test case base ------------------------------------------------------------------


class ServicesTestCase(unittest.TestCase):
    """A test class with its own fresh database (self.db), dropped with its replication
    slots after the class; set DS_KEEP_DATABASES=1 to keep it for a post-mortem. When a test
    fails, the tails of the logs of the captures it started, of PostgreSQL and of Kafka are
    printed to stderr."""

    db = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.db = create_database(cls.__name__)
        cls.work_dir = os.path.join(services_dir(), "tests", cls.db)
        os.makedirs(cls.work_dir, exist_ok=True)
        cls.addClassCleanup(cls._drop_database)

    @classmethod
    def _drop_database(cls):
        if os.environ.get("DS_KEEP_DATABASES") == "1":
            drop_replication_slots(cls.db)
        else:
            drop_database(cls.db)

    def setUp(self):
        super().setUp()
        self._captures = []
        self._connectors = []
        self._test_slug = unique_name(self._testMethodName, max_len=40)

    def run(self, result=None):
        result = result if result is not None else self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        super().run(result)
        if len(result.failures) + len(result.errors) > before:
            self._print_logs()
        return result

    def _print_logs(self):
        out = [f"\n======== logs of failed test {self.id()} ========\n"]
        for cap in getattr(self, "_captures", []):
            out.append(f"---- capture log {cap.log_path} (last 80 lines)\n{cap.log_tail(80)}")
        if getattr(self, "_connectors", []):
            path = connect_log_path()
            out.append(f"---- Kafka Connect log {path} (last 80 lines)\n{_log_tail(path, 80)}")
        e = _env_cache or {}
        for key, name in (("DS_PG_LOG", "PostgreSQL"), ("DS_KAFKA_LOG", "Kafka")):
            if e.get(key):
                out.append(f"---- {name} log {e[key]} (last 30 lines)\n{_log_tail(e[key], 30)}")
        sys.stderr.write("".join(out))
        sys.stderr.flush()

    # -- conveniences bound to this class's database --

    def psql(self, sql, db=None, **kw):
        return psql(sql, db=db or self.db, **kw)

    def psql_value(self, sql, db=None):
        return psql_value(sql, db=db or self.db)

    def capture_config(self, tables, slot=None, publication=None, topic_prefix=None, **kw):
        """Writes a capture configuration for this class's database with a slot, a
        publication and a topic prefix unique to this call (unless given)."""
        token = uuid.uuid4().hex[:8]
        slot = slot or unique_name(f"s_{self._testMethodName}")
        publication = publication or unique_name(f"p_{self._testMethodName}")
        topic_prefix = topic_prefix or f"ds.{self._test_slug}.{token}"
        path = os.path.join(self.work_dir, f"{self._test_slug}-{token}.json")
        return write_capture_config(
            path, self.db, tables, slot, publication, topic_prefix, **kw
        )

    def start_capture(self, config, extra_args=()):
        """Starts capture; the process is killed at the end of the test if still running."""
        log_path = os.path.splitext(config.path)[0] + f"-capture{len(self._captures) + 1}.log"
        cap = Capture(config, log_path, extra_args)
        self._captures.append(cap)
        self.addCleanup(cap.kill)
        return cap.start()

    def consume(self, topics, **kw):
        return consume(topics, **kw)

    def start_debezium(self, tables, snapshot_mode="no_data", extra=None, wait=True):
        """Starts the Connect worker if needed and creates a real Debezium PostgreSQL
        connector on this class's database for @tables (pgoutput; its own slot, publication
        and topic prefix, unique to this call), with connector properties @extra (for example
        {"decimal.handling.mode": "string"}). With @wait, returns once it streams. At the end
        of the test the connector is deleted and its slot and publication dropped."""
        url = connect_start()
        name = unique_name(f"dbz_{self._testMethodName}", max_len=40)
        conn = DebeziumConnector(
            url, name, self.db, tables, slot=name, publication=name,
            topic_prefix=f"dbz.{self._test_slug}.{uuid.uuid4().hex[:8]}",
            snapshot_mode=snapshot_mode, extra=extra,
        )
        self._connectors.append(conn)
        self.addCleanup(conn.cleanup)
        conn.create()
        if wait:
            conn.wait_streaming()
        return conn


# ---- apply: configuration, mapping files, the apply process ------------------------------
#
# Added for the apply tests (tests/integration/test_apply_*.py); nothing above depends on it.


class ApplyConfig:
    """An apply configuration file: .path, .data (the JSON written), .group_id, .dlq_topic,
    .topic_prefix and .targets (target name -> database name)."""

    def __init__(self, path, data, targets):
        self.path = path
        self.data = data
        self.targets = dict(targets)
        self.topic_prefix = data["topic_prefix"]
        self.group_id = data.get("apply", {}).get("group_id", "dualsync-apply")
        self.dlq_topic = data.get("apply", {}).get("dlq_topic", f"{self.topic_prefix}.dlq")

    def topic(self, table):
        return f"{self.topic_prefix}.{table}"


# The broker's smallest session timeout: a member killed with SIGKILL is noticed after 6 s
# instead of librdkafka's default 45 s, so a restarted apply gets its partitions back fast.
APPLY_TEST_KAFKA = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


def write_apply_config(path, targets, mappings, topic_prefix, apply=None, kafka=None, **top_level):
    """Writes an apply configuration to @path and returns an ApplyConfig. @targets maps target
    names to database names (on the test server); @mappings are mapping file paths (relative
    ones are relative to @path's directory); @apply is the "apply" section; @kafka adds
    librdkafka properties; @top_level adds other keys (log_level, source, ...). The metrics
    endpoint is "off" unless @apply sets "metrics_address" (see write_capture_config)."""
    kafka_properties = {"bootstrap.servers": kafka_bootstrap()}
    kafka_properties.update(APPLY_TEST_KAFKA)
    kafka_properties.update(kafka or {})
    data = {
        "kafka": kafka_properties,
        "topic_prefix": topic_prefix,
        "targets": {name: {"conninfo": conninfo(db)} for name, db in targets.items()},
        "mappings": list(mappings),
    }
    data["apply"] = dict({"metrics_address": "off"}, **(apply or {}))
    data.update(top_level)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    return ApplyConfig(path, data, targets)


def write_mapping(path, mapping):
    """Writes a mapping file (mappings/README.md) from the dict @mapping; returns @path."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(mapping, f, indent=2)
        f.write("\n")
    return path


class Apply(Capture):
    """`dualsync apply --config FILE` as a child process (same controls as Capture)."""

    command = ["apply"]

    def start(self):
        if self.proc and self.proc.poll() is None:
            raise AssertionError("apply is already running")
        cmd = [ds_bin()] + self.command + ["--config", self.config_path] + self.extra_args
        log = open(self.log_path, "ab")
        try:
            log.write(f"==== {time.strftime('%H:%M:%S')} start: {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()
        return self


def run_dualsync(args, timeout=120):
    """Runs `dualsync ARGS...` to completion; returns the CompletedProcess (text output)."""
    try:
        return subprocess.run(
            [ds_bin()] + list(args), capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"dualsync {' '.join(args)} did not finish within {timeout}s")


def stored_offsets(db, group_id):
    """dualsync.offsets of database @db for @group_id: {(topic, partition): next_offset};
    empty before apply created the table. A row whose next_offset is negative (a partition
    an apply process claimed before anything of it was applied) stores nothing: left out."""
    if psql_value("SELECT to_regclass('dualsync.offsets') IS NULL", db=db) == "t":
        return {}
    rows = psql(
        "SELECT topic, partition, next_offset FROM dualsync.offsets "
        f"WHERE group_id = {quote_literal(group_id)}",
        db=db,
    )
    return {(t, int(p)): int(n) for t, p, n in rows if int(n) >= 0}


def committed_offsets(group_id, topics, timeout_ms=10000):
    """{(topic, partition): offset} consumer group @group_id committed to Kafka (what lag
    tools read); -1001 for a partition without a commit."""
    cmd = [topic_dump_bin(), "-b", kafka_bootstrap(), "-T", str(timeout_ms), "--committed", group_id]
    for t in topics:
        cmd += ["-t", t]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_ms / 1000 + 30)
    if proc.returncode != 0:
        raise AssertionError(f"reading the offsets of group {group_id} failed: {proc.stderr.strip()}")
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line]
    return {(r["topic"], r["partition"]): r["offset"] for r in rows}


def end_offsets(topics):
    """{(topic, partition): offset after the last message} of what @topics hold now."""
    ends = {}
    for m in consume(topics, idle_ms=1000):
        key = (m["topic"], m["partition"])
        ends[key] = max(ends.get(key, 0), m["offset"] + 1)
    return ends


class ApplyTestCase(ServicesTestCase):
    """ServicesTestCase plus apply: configurations in the class's work directory, apply
    processes killed at the end of the test and logged (with the captures') when it fails."""

    def apply_config(self, targets, mappings, topic_prefix, **kw):
        token = uuid.uuid4().hex[:8]
        path = os.path.join(self.work_dir, f"{self._test_slug}-{token}-apply.json")
        return write_apply_config(path, targets, mappings, topic_prefix, **kw)

    def new_group(self, prefix):
        """A consumer group name unique to this call, whose replication origins
        (<apply.origin>.<group>.<instance>, cluster-wide and kept by apply: apply.c, "Origins")
        are dropped after the test, once its processes are gone (cleanups run last first)."""
        group = unique_name(prefix)
        self.addCleanup(
            psql,
            "SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin "
            f"WHERE roname LIKE {quote_literal('dualsync.' + group + '.%')}",
        )
        return group

    def start_apply(self, config, extra_args=(), wait_ready=True):
        """Starts apply; with @wait_ready, returns once it has set up every target database
        (dualsync schema, mappings checked) and subscribed."""
        log_path = os.path.splitext(config.path)[0] + f"-{len(self._captures) + 1}.log"
        proc = Apply(config.path, log_path, extra_args)
        self._captures.append(proc)
        self.addCleanup(proc.kill)
        proc.start()
        if wait_ready:

            def ready():
                if not proc.running():
                    raise AssertionError(
                        f"apply exited with {proc.exit_code()} while starting:\n{proc.log_tail()}"
                    )
                return "as consumer group" in proc.log_text()

            wait_for(ready, timeout=60, what="apply to set up its target databases")
        return proc

    def start_streaming_capture(self, tables, **kw):
        """Writes a capture configuration for @tables, starts capture and waits until it
        holds its slot (a change committed after this returns is captured). Returns
        (config, capture)."""
        cfg = self.capture_config(tables, **kw)
        cap = self.start_capture(cfg)

        def streaming():
            info = slot_info(cfg.slot)
            return info and info["active"] and info["confirmed_flush_lsn"]

        wait_for(streaming, timeout=30, what=f"capture to stream from slot {cfg.slot}")
        return cfg, cap

    def target_database(self, prefix):
        """A fresh database for apply to write, dropped after the test."""
        db = create_database(prefix)
        self.addCleanup(drop_database, db)
        return db

    def wait_rows(self, db, sql, expected, timeout=60, what=None):
        """Waits until @sql on @db returns exactly @expected (a list of tuples of str/None, in
        the query's order). On timeout fails with the rows missing and the rows extra."""
        expected = [tuple(r) for r in expected]
        last = []

        def same():
            last[:] = psql(sql, db=db)
            return last == expected

        try:
            wait_for(same, timeout=timeout, what=what or f"{sql} on {db}")
        except AssertionError as e:
            missing = [r for r in expected if r not in last]
            extra = [r for r in last if r not in expected]
            raise AssertionError(
                f"{e}\n{len(last)} rows, {len(expected)} expected; missing (first 10): "
                f"{missing[:10]}; extra or stale (first 10): {extra[:10]}"
            ) from None
