#!/usr/bin/env python3
"""record.py: records the Debezium goldens in tests/golden/debezium/ from the real Debezium
PostgreSQL connector (3.6.1.Final in a Kafka Connect 3.9.1 worker), one file per settings
combination of combinations.json. Run by hand when the scenario or a combination changes;
the files are committed and tests/integration/test_debezium_goldens.py only reads them.

    tests/golden/debezium/record.py BUILD_DIR [COMBINATION...]

BUILD_DIR holds the built tests/topic_dump. Without COMBINATION every combination is
recorded. For each one, fresh services (PostgreSQL 15, Kafka, a Connect worker: see
tests/harness/services.sh) in a scratch directory, so topics, slot and database start empty
and the names (database "golden", topic prefix "golden") are the same in every recording:

  1. scenario/setup.sql and scenario/snapshot.sql in database "golden";
  2. a connector (snapshot.mode=initial, pgoutput, its own slot and publication, key and
     value converters JsonConverter with schemas.enable=true) with the combination's
     settings; wait until the snapshot events of snapshot.sql are on their topics and the
     connector streams;
  3. scenario/changes.sql; wait until its last change (golden_default id 99) is on its topic
     (and, with transaction metadata, until every BEGIN has its END), then read every topic
     until nothing more arrives;
  4. write <combination>.jsonl: one JSON line per message, topics in name order, each in
     offset order: {"topic","partition","offset","key","value","headers"}, key and value
     parsed JSON (null for a tombstone), headers {name: UTF-8 text}.

Environment: GOLDEN_OUT writes the files elsewhere (to try a change without touching the
committed recordings); GOLDEN_KEEP=1 keeps the scratch directory (services stopped).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SERVICES_SH = os.path.join(SOURCE_DIR, "tests", "harness", "services.sh")
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration"))

import dstest  # noqa: E402  (needs the path above)

DATABASE = "golden"
TOPIC_PREFIX = "golden"
SLOT = "golden"
PUBLICATION = "golden"
TABLES = [
    "public.golden_types",
    "public.golden_arrays",
    "public.golden_default",
    "public.golden_nopk",
    "public.golden_toast",
    "public.golden_truncate",
]
# Rows snapshot.sql inserts: the snapshot ('r') events to wait for.
SNAPSHOT_EVENTS = 11

# Connector properties every recording uses, besides the combination's. skipped.operations:
# Debezium skips truncates by default ("t"), dualsync always publishes them; "none" records
# what Debezium's truncate event looks like.
FIXED_CONNECTOR = {
    "snapshot.mode": "initial",
    "skipped.operations": "none",
    "key.converter": "org.apache.kafka.connect.json.JsonConverter",
    "key.converter.schemas.enable": "true",
    "value.converter": "org.apache.kafka.connect.json.JsonConverter",
    "value.converter.schemas.enable": "true",
}


def load_combinations():
    with open(os.path.join(HERE, "combinations.json"), encoding="utf-8") as f:
        return json.load(f)["combinations"]


def scenario(name):
    with open(os.path.join(HERE, "scenario", name), encoding="utf-8") as f:
        return f.read()


def services(command, work):
    subprocess.run(["bash", SERVICES_SH, command, work], check=True, stdout=sys.stderr)


def topics(combination):
    names = [f"{TOPIC_PREFIX}.{t}" for t in TABLES]
    if combination["connector"].get("provide.transaction.metadata") == "true":
        names.append(transaction_topic(combination))
    return names


def transaction_topic(combination):
    return f"{TOPIC_PREFIX}.{combination['connector'].get('topic.transaction', 'transaction')}"


def golden_line(msg):
    headers = {}
    for name, value in msg.get("headers") or []:
        if name in headers:
            raise AssertionError(f"{msg['topic']} offset {msg['offset']}: header {name} repeats")
        headers[name] = value
    return {
        "topic": msg["topic"],
        "partition": msg["partition"],
        "offset": msg["offset"],
        "key": msg["key"],
        "value": msg["value"],
        "headers": headers,
    }


def record(combination, work, out_dir):
    name = combination["name"]
    started = time.monotonic()
    # Fresh services for every combination: empty topics, no slot, no connector offsets.
    services("start", work)
    dstest._env_cache = None
    try:
        dstest.psql(f"CREATE DATABASE {DATABASE}")
        dstest.psql(scenario("setup.sql") + scenario("snapshot.sql"), db=DATABASE)
        url = dstest.connect_start()
        conn = dstest.DebeziumConnector(
            url, f"golden-{name}", DATABASE, TABLES, slot=SLOT, publication=PUBLICATION,
            topic_prefix=TOPIC_PREFIX, snapshot_mode="initial",
            extra=dict(FIXED_CONNECTOR, **combination["connector"]),
        )
        conn.create()
        table_topics = [f"{TOPIC_PREFIX}.{t}" for t in TABLES]
        dstest.consume(table_topics, count=SNAPSHOT_EVENTS, timeout_ms=120000)
        conn.wait_streaming(timeout=120)
        dstest.psql(scenario("changes.sql"), db=DATABASE)

        def marker_seen():
            msgs = dstest.consume([f"{TOPIC_PREFIX}.public.golden_default"], idle_ms=500,
                                  timeout_ms=5000, check=False)
            return any(m["key"] and m["key"].get("payload", {}).get("id") == 99 for m in msgs)

        dstest.wait_for(marker_seen, timeout=120, what="the last change of changes.sql",
                        interval=1)
        if combination["connector"].get("provide.transaction.metadata") == "true":
            def transactions_closed():
                msgs = dstest.consume([transaction_topic(combination)], idle_ms=500,
                                      timeout_ms=5000, check=False)
                status = [m["value"]["payload"]["status"] for m in msgs]
                return status and status.count("BEGIN") == status.count("END")

            dstest.wait_for(transactions_closed, timeout=60,
                            what="an END for every BEGIN on the transaction topic", interval=1)
        msgs = dstest.consume(topics(combination), idle_ms=3000, timeout_ms=60000, headers=True)
        conn.delete()
    except BaseException:
        sys.stderr.write(f"record.py: {name} failed; Connect log tail:\n"
                         f"{dstest._log_tail(dstest.connect_log_path(), 80)}\n")
        raise
    finally:
        services("stop", work)
    msgs.sort(key=lambda m: (m["topic"], m["partition"], m["offset"]))
    path = os.path.join(out_dir, f"{name}.jsonl")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for m in msgs:
            f.write(json.dumps(golden_line(m), ensure_ascii=False, sort_keys=False) + "\n")
    os.replace(path + ".tmp", path)
    counts = {}
    for m in msgs:
        counts[m["topic"]] = counts.get(m["topic"], 0) + 1
    took = time.monotonic() - started
    sys.stderr.write(f"record.py: {name}: {len(msgs)} messages in {took:.0f}s "
                     f"-> {path}\n" + "".join(f"    {t}: {n}\n" for t, n in sorted(counts.items())))


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    build = os.path.abspath(argv[1])
    topic_dump = os.path.join(build, "tests", "topic_dump")
    if not os.access(topic_dump, os.X_OK):
        sys.stderr.write(f"record.py: {topic_dump} not found: build the topic_dump target\n")
        return 2
    combinations = load_combinations()
    known = {c["name"]: c for c in combinations}
    wanted = argv[2:] or list(known)
    for name in wanted:
        if name not in known:
            sys.stderr.write(f"record.py: no combination {name} in combinations.json "
                             f"(known: {', '.join(known)})\n")
            return 2
    out_dir = os.environ.get("GOLDEN_OUT") or HERE
    os.makedirs(out_dir, exist_ok=True)
    # services.sh runs PostgreSQL as the postgres user when root: a directory under /tmp.
    work = tempfile.mkdtemp(prefix="ds-dbz-golden-")
    os.chmod(work, 0o755)
    os.environ["DS_SERVICES_DIR"] = work
    os.environ["DS_TOPIC_DUMP"] = topic_dump
    started = time.monotonic()
    try:
        for name in wanted:
            record(known[name], work, out_dir)
    finally:
        if os.environ.get("GOLDEN_KEEP") == "1":
            sys.stderr.write(f"record.py: scratch directory kept: {work}\n")
        else:
            shutil.rmtree(work, ignore_errors=True)
    took = time.monotonic() - started
    sys.stderr.write(f"record.py: {len(wanted)} combinations in {took:.0f}s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
