"""Capture against the Debezium goldens: for every settings combination recorded from the real
Debezium PostgreSQL connector (tests/golden/debezium/, see tests/golden/README.md), the same
scenario runs through `dualsync capture` with the matching "debezium" settings and
capture.message_format "json-with-schema", and every message is compared with the recorded
one, topic by topic in order, field by field: the key (schema and payload), the value (schema
and payload, tombstones included) and the headers; with transaction metadata, the
transaction topic too. One more run of one combination with message_format "json" compares
its messages with the recorded payloads (the schema stripped).

Needs PostgreSQL and Kafka only: Debezium and Kafka Connect ran when the goldens were
recorded, not now.

The only fields not compared are those that differ by construction, named in EXEMPT below
with the reason; for those, presence and JSON type are still compared. Everything else that
differs is collected (nothing stops at the first difference) and reported in one failure,
grouped by combination, topic and JSON path, and written in full to
<work dir>/golden-differences.txt (one line per message and path) and
golden-differences.json, a to-do list for whoever makes capture match. Each run's messages
are kept in <work dir>/<combination>.dualsync.jsonl, beside the golden's layout.

DS_GOLDEN_ONLY=NAME[,NAME...] runs only those combinations (the names in
tests/golden/debezium/combinations.json; "schemaless" for the "json" run), for quick
iteration; the other combinations are then reported as not run, and the test still fails
unless everything that ran matches.
"""

import difflib
import json
import os
import re
import time
import unittest
import uuid

import dstest

GOLDEN_DIR = os.path.join(dstest.SOURCE_DIR, "tests", "golden", "debezium")
SCENARIO_DIR = os.path.join(GOLDEN_DIR, "scenario")
# What record.py used: the topic prefix in the golden topics, schema names and source.name.
GOLDEN_PREFIX = "golden"
# The tables in the order record.py listed them to Debezium (table.include.list): the
# snapshot visits them in this order, which source.snapshot ("first", "last") reflects.
TABLES = [
    "public.golden_types",
    "public.golden_arrays",
    "public.golden_default",
    "public.golden_nopk",
    "public.golden_toast",
    "public.golden_truncate",
]
# Rows of snapshot.sql: the snapshot events to wait for before changes.sql runs.
SNAPSHOT_EVENTS = 11
# The combination also run with message_format "json" against the golden payloads.
SCHEMALESS_OF = "dualsync-defaults"
SCHEMALESS = "schemaless"

# Fields whose values differ between any two runs by construction, by JSON path ("*" is one
# array index or member name). Only their presence and JSON type are compared.
EXEMPT = {
    "value.payload.source.lsn": "a WAL position of the recording server",
    "value.payload.source.sequence": "WAL positions of the recording server",
    "value.payload.source.txId": "a transaction id of the recording server",
    "value.payload.source.xmin": "a transaction id of the recording server (null in both today)",
    "value.payload.source.ts_ms": "the commit time of the recorded transaction",
    "value.payload.source.ts_us": "the commit time of the recorded transaction",
    "value.payload.source.ts_ns": "the commit time of the recorded transaction",
    "value.payload.source.version": "the producing software's version (Debezium 3.6.1.Final)",
    "value.payload.ts_ms": "the time the event was processed",
    "value.payload.ts_us": "the time the event was processed",
    "value.payload.ts_ns": "the time the event was processed",
    "value.payload.transaction.id": "txid:lsn of the recording server",
    "headers.__debezium.context.runId": "a random id of each connector run",
}
# The same on the transaction topic only (on a table's topic, key.payload.id is a key column).
EXEMPT_TRANSACTION_TOPIC = {
    "key.payload.id": "txid:lsn of the recording server",
    "value.payload.id": "txid:lsn of the recording server",
    "value.payload.ts_ms": "the commit time of the recorded transaction",
}
TRANSACTION_TOPIC = f"{GOLDEN_PREFIX}.transaction"
# Fields that name the run's topic prefix or database: compared with this run's own
# (GOLDEN_PREFIX and database "golden" in the recording).
PREFIX_FIELDS = {
    "value.payload.source.name": "topic.prefix",
    "headers.__debezium.context.connectorLogicalName": "topic.prefix",
}
DB_FIELDS = {"value.payload.source.db": "the database (unique per test run)"}
# Paths whose string values are schema names, which start with the topic prefix
# ("golden.public.golden_types.Envelope"): the run's prefix is replaced by GOLDEN_PREFIX.
SCHEMA_NAME_PATH = re.compile(r"^(key|value)\.schema(\.fields\[[^]]*\])*\.name$")

SHOW_MAX = 160


def golden_path(name):
    return os.path.join(GOLDEN_DIR, f"{name}.jsonl")


def load_combinations():
    with open(os.path.join(GOLDEN_DIR, "combinations.json"), encoding="utf-8") as f:
        return json.load(f)["combinations"]


def read_scenario(name):
    with open(os.path.join(SCENARIO_DIR, name), encoding="utf-8") as f:
        return f.read()


def load_golden(name):
    """{golden topic: [message, ...]} in offset order."""
    by_topic = {}
    with open(golden_path(name), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                m = json.loads(line)
                by_topic.setdefault(m["topic"], []).append(m)
    for msgs in by_topic.values():
        msgs.sort(key=lambda m: (m["partition"], m["offset"]))
    return by_topic


def show(value):
    text = json.dumps(value, ensure_ascii=False) if value is not ABSENT else "(absent)"
    return text if len(text) <= SHOW_MAX else text[: SHOW_MAX - 20] + f"... ({len(text)} chars)"


class _Absent:
    def __repr__(self):
        return "(absent)"


ABSENT = _Absent()


def json_type(value):
    if value is ABSENT:
        return "absent"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def generic_path(path):
    """The path with array indexes collapsed ("[3]" -> "[*]"), for EXEMPT lookups and the
    grouped report; schema fields, matched by name ("fields[after]"), stay as they are."""
    return re.sub(r"\[\d+\]", "[*]", path)


def message_label(index, msg):
    """#N op key=... of a golden message, for the report."""
    value = msg.get("value") if msg else None
    key = msg.get("key") if msg else None
    if isinstance(key, dict) and "payload" in key:
        key = key["payload"]
    if value is None:
        op = "tombstone"
    elif isinstance(value, dict) and isinstance(value.get("payload"), dict):
        op = value["payload"].get("op") or value["payload"].get("status") or "?"
    elif isinstance(value, dict):
        op = value.get("op") or value.get("status") or "?"
    else:
        op = "?"
    return f"#{index} {op} key={json.dumps(key, ensure_ascii=False)}"


class Differences:
    """Every difference found: (combination, topic, message label, path, golden, dualsync)."""

    def __init__(self):
        self.items = []

    def add(self, combination, topic, label, path, golden, dualsync, note=""):
        self.items.append({
            "combination": combination,
            "topic": topic,
            "message": label,
            "path": path,
            "golden": golden if golden is not ABSENT else "(absent)",
            "dualsync": dualsync if dualsync is not ABSENT else "(absent)",
            "note": note,
        })

    def __len__(self):
        return len(self.items)

    def full_text(self):
        lines = []
        for d in self.items:
            lines.append(
                f"{d['combination']} | {d['topic']} | {d['message']} | {d['path']} | "
                f"golden {show(d['golden'])} | dualsync {show(d['dualsync'])}"
                + (f" | {d['note']}" if d["note"] else "")
            )
        return "\n".join(lines) + "\n"

    def summary_text(self):
        """One line per JSON path (array indexes collapsed), over every combination and
        topic: how many differences, in which combinations."""
        paths = {}
        for d in self.items:
            entry = paths.setdefault(generic_path(d["path"]), [0, []])
            entry[0] += 1
            if d["combination"] not in entry[1]:
                entry[1].append(d["combination"])
        width = max((len(p) for p in paths), default=0)
        return "".join(f"  {p.ljust(width)}  {n:5d}  {', '.join(combs)}\n"
                       for p, (n, combs) in sorted(paths.items(), key=lambda kv: -kv[1][0]))

    def grouped_text(self, max_lines=None):
        """Grouped by combination, topic and path; each group lists its messages and shows
        the first difference as an example."""
        groups = {}
        for d in self.items:
            groups.setdefault((d["combination"], d["topic"]), {}).setdefault(
                generic_path(d["path"]), []).append(d)
        lines = []
        last_comb = None
        for (comb, topic), paths in groups.items():
            if comb != last_comb:
                n = sum(1 for d in self.items if d["combination"] == comb)
                lines.append(f"== {comb}: {n} differences")
                last_comb = comb
            lines.append(f"  -- {topic}")
            for path, ds in paths.items():
                # "#3" is golden message 3, "dualsync#4" dualsync's 4th that Debezium lacks.
                msgs = ", ".join(sorted({d["message"].split(" ")[0] for d in ds},
                                        key=lambda m: (m.startswith("dualsync"),
                                                       int(m.rpartition("#")[2] or -1)
                                                       if m.rpartition("#")[2].isdigit() else -1)))
                first = ds[0]
                lines.append(f"    {path}  [{len(ds)}x: {msgs}]")
                lines.append(f"        e.g. {first['message']}: golden {show(first['golden'])}")
                pad = " " * len("e.g. " + first["message"])
                lines.append(f"        {pad}  dualsync {show(first['dualsync'])}"
                             + (f"  ({first['note']})" if first["note"] else ""))
        if max_lines is not None and len(lines) > max_lines:
            lines = lines[:max_lines] + [f"... ({len(lines) - max_lines} more lines in the file)"]
        return "\n".join(lines) + "\n"


class Comparer:
    """Compares one run's messages with the golden ones, adding to a Differences."""

    def __init__(self, diffs, combination, prefix, db, schemaless):
        self.diffs = diffs
        self.combination = combination
        self.prefix = prefix
        self.db = db
        self.schemaless = schemaless

    def compare_topic(self, topic, golden_msgs, ds_msgs):
        if len(golden_msgs) != len(ds_msgs):
            self.diffs.add(self.combination, topic, "(topic)", "message count",
                           len(golden_msgs), len(ds_msgs),
                           "golden: " + sequence_text(golden_msgs)
                           + " || dualsync: " + sequence_text(ds_msgs))
        # Messages are paired by their place in the sequence of (op, row) signatures, so one
        # extra or missing message is reported as such instead of shifting every later
        # pairing.
        matcher = difflib.SequenceMatcher(None, signatures(golden_msgs), signatures(ds_msgs),
                                          autojunk=False)
        for tag, g0, g1, d0, d1 in matcher.get_opcodes():
            paired = min(g1 - g0, d1 - d0) if tag in ("equal", "replace") else 0
            for k in range(paired):
                self.compare_message(topic, message_label(g0 + k, golden_msgs[g0 + k]),
                                     golden_msgs[g0 + k], ds_msgs[d0 + k])
            for i in range(g0 + paired, g1):
                self.diffs.add(self.combination, topic, message_label(i, golden_msgs[i]),
                               "(message)", "present", ABSENT, "only Debezium sent this message")
            for i in range(d0 + paired, d1):
                self.diffs.add(self.combination, topic,
                               "dualsync" + message_label(i, ds_msgs[i]), "(message)", ABSENT,
                               "present", "only dualsync sent this message")

    def compare_message(self, topic, label, g, d):
        gk, gv = g["key"], g["value"]
        if self.schemaless:
            # JsonConverter with schemas.enable=false writes the payload alone.
            gk = gk["payload"] if isinstance(gk, dict) and "payload" in gk else gk
            gv = gv["payload"] if isinstance(gv, dict) and "payload" in gv else gv
        for part, gpart, dpart in (("key", gk, d["key"]), ("value", gv, d["value"])):
            if (not self.schemaless and is_envelope(gpart) and isinstance(dpart, dict)
                    and not is_envelope(dpart)):
                # One difference for the missing envelope, then the payload against the
                # whole message, so value differences still show.
                self.diffs.add(self.combination, topic, label, f"{part} (envelope)",
                               "{schema, payload}", sorted(dpart),
                               "no JsonConverter schema envelope; the golden payload is "
                               "compared with the whole message")
                self.walk(topic, label, f"{part}.payload", gpart["payload"], dpart)
            else:
                self.walk(topic, label, part, gpart, dpart)
        self.walk(topic, label, "headers", g.get("headers") or {},
                  headers_dict(d.get("headers")))
        if g["partition"] != d["partition"]:
            self.diffs.add(self.combination, topic, label, "partition", g["partition"],
                           d["partition"])

    def walk(self, topic, label, path, g, d):
        gp = generic_path(path)
        # In schemaless mode the paths lack ".payload": look the exemptions up as if present.
        lookup = gp
        if self.schemaless and (gp.startswith("value.") or gp.startswith("key.")):
            head, _, rest = gp.partition(".")
            lookup = f"{head}.payload.{rest}"
        exempt = EXEMPT_TRANSACTION_TOPIC if topic == TRANSACTION_TOPIC else EXEMPT
        if lookup in exempt:
            if json_type(g) != json_type(d):
                self.diffs.add(self.combination, topic, label, path, g, d,
                               f"JSON type differs ({json_type(g)} vs {json_type(d)}); the value "
                               f"itself is not compared: {exempt[lookup]}")
            return
        if lookup in PREFIX_FIELDS:
            if g is not ABSENT and d is not ABSENT:
                g = self.prefix if g == GOLDEN_PREFIX else g
        if lookup in DB_FIELDS:
            if g is not ABSENT and d is not ABSENT:
                g = self.db if g == "golden" else g
        if (not self.schemaless and isinstance(d, str)
                and SCHEMA_NAME_PATH.match(re.sub(r"\[[^]]*\]", "[x]", path))
                and d.startswith(self.prefix + ".")):
            d = GOLDEN_PREFIX + d[len(self.prefix):]
        if isinstance(g, dict) and isinstance(d, dict):
            for k in list(g) + [k for k in d if k not in g]:
                self.walk(topic, label, f"{path}.{k}", g.get(k, ABSENT), d.get(k, ABSENT))
            common = [k for k in g if k in d]
            if [k for k in d if k in g] != common:
                self.diffs.add(self.combination, topic, label, path + " (member order)",
                               list(g), list(d))
            return
        if isinstance(g, list) and isinstance(d, list):
            if is_field_list(g) and is_field_list(d):
                # A Connect schema's fields: matched by name, so one missing field does not
                # make every later one differ.
                gf = {f["field"]: f for f in g}
                df = {f["field"]: f for f in d}
                for name in list(gf) + [n for n in df if n not in gf]:
                    self.walk(topic, label, f"{path}[{name}]", gf.get(name, ABSENT),
                              df.get(name, ABSENT))
                common = [n for n in gf if n in df]
                if [n for n in df if n in gf] != common:
                    self.diffs.add(self.combination, topic, label, path + " (field order)",
                                   list(gf), list(df))
                return
            for i in range(max(len(g), len(d))):
                self.walk(topic, label, f"{path}[{i}]", g[i] if i < len(g) else ABSENT,
                          d[i] if i < len(d) else ABSENT)
            return
        if json_type(g) != json_type(d) or g != d:
            self.diffs.add(self.combination, topic, label, path, g, d)


def sequence_text(msgs):
    return "; ".join(message_label(i, m) for i, m in enumerate(msgs))


def signatures(msgs):
    """(op, row) of each message: op as message_label has it, row the first column of the
    after (else before) image, a tombstone the row of the message before it, a transaction
    event its event count. Comparable across value modes and message formats."""
    out, last_row = [], None
    for m in msgs:
        value = m.get("value")
        if isinstance(value, dict) and isinstance(value.get("payload"), dict):
            value = value["payload"]
        if value is None:
            out.append(("tombstone", json.dumps(last_row)))
            continue
        image = (value.get("after") or value.get("before")) if isinstance(value, dict) else None
        if isinstance(image, dict) and image:
            row = next(iter(image.values()))
        elif isinstance(value, dict) and "status" in value:
            row = value.get("event_count")
        else:
            row = None
        last_row = row
        op = value.get("op") or value.get("status") if isinstance(value, dict) else None
        out.append((op, json.dumps(row)))
    return out


def is_envelope(value):
    return isinstance(value, dict) and set(value) == {"schema", "payload"}


def is_field_list(items):
    return bool(items) and all(isinstance(f, dict) and "field" in f for f in items)


def headers_dict(pairs):
    out = {}
    for name, value in pairs or []:
        out[name] = value
    return out


def key_id(key):
    if isinstance(key, dict) and isinstance(key.get("payload"), dict):
        key = key["payload"]
    return key.get("id") if isinstance(key, dict) else None


class DebeziumGoldensTest(dstest.ServicesTestCase):
    """Every recorded combination, then the schemaless run; one failure lists everything."""

    def test_capture_matches_debezium_goldens(self):
        combinations = load_combinations()
        runs = [(c, False) for c in combinations]
        runs.append((next(c for c in combinations if c["name"] == SCHEMALESS_OF), True))
        only = [n for n in os.environ.get("DS_GOLDEN_ONLY", "").split(",") if n]
        known = [c["name"] for c in combinations] + [SCHEMALESS]
        unknown = [n for n in only if n not in known]
        self.assertFalse(unknown, f"DS_GOLDEN_ONLY names unknown combinations {unknown}; "
                         f"known: {', '.join(known)}")
        diffs = Differences()
        ran, skipped = [], []
        for combination, schemaless in runs:
            name = SCHEMALESS if schemaless else combination["name"]
            if only and name not in only:
                skipped.append(name)
                continue
            started = time.monotonic()
            self.run_combination(combination, schemaless, name, diffs)
            ran.append(f"{name} ({time.monotonic() - started:.0f}s)")

        report_path = os.path.join(self.work_dir, "golden-differences.txt")
        header = (
            f"dualsync capture vs the Debezium 3.6.1.Final goldens ({GOLDEN_DIR})\n"
            f"ran: {', '.join(ran)}"
            + (f"; not run (DS_GOLDEN_ONLY): {', '.join(skipped)}" if skipped else "")
            + f"\n{len(diffs)} differences. Not compared (by construction): "
            + "; ".join(f"{p} ({why})" for p, why in EXEMPT.items())
            + "; on the transaction topic: "
            + "; ".join(f"{p} ({why})" for p, why in EXEMPT_TRANSACTION_TOPIC.items()) + "\n\n"
        )
        with open(report_path, "w", encoding="utf-8") as f:
            f.write(header + "By JSON path (count, combinations):\n" + diffs.summary_text()
                    + "\nGrouped:\n" + diffs.grouped_text() + "\nEvery difference:\n"
                    + diffs.full_text())
        with open(os.path.join(self.work_dir, "golden-differences.json"), "w",
                  encoding="utf-8") as f:
            json.dump(diffs.items, f, indent=1, ensure_ascii=False)
        if diffs:
            self.fail(f"{len(diffs)} differences from the Debezium goldens (every one in "
                      f"{report_path}):\n" + header + diffs.grouped_text(max_lines=400))

    # ---- one run ----

    def run_combination(self, combination, schemaless, name, diffs):
        golden = load_golden(combination["name"])
        db = dstest.create_database(f"golden_{name}")
        self.addCleanup(dstest.drop_database, db)
        self.psql(read_scenario("setup.sql") + read_scenario("snapshot.sql"), db=db)
        token = uuid.uuid4().hex[:8]
        prefix = f"dsg.{token}"
        capture = {"snapshot_mode": "initial",
                   "message_format": "json" if schemaless else "json-with-schema"}
        path = os.path.join(self.work_dir, f"{name}-{token}.json")
        cfg = dstest.write_capture_config(
            path, db, TABLES, dstest.unique_name(f"s_golden_{token}"),
            dstest.unique_name(f"p_golden_{token}"), prefix, capture=capture,
            debezium=dict(combination["dualsync"]))
        topic_map = {t: f"{prefix}.{t[len(GOLDEN_PREFIX) + 1:]}" for t in golden}
        table_topics = [cfg.topic(t) for t in TABLES]
        cap = self.start_capture(cfg)

        def problem(what, detail=""):
            diffs.add(name, "(run)", "-", what, "", detail)

        def count(topics):
            return len(dstest.consume(topics, idle_ms=300, timeout_ms=3000, check=False))

        # The snapshot first, as record.py waited for Debezium's: changes made during it
        # could otherwise come in another order.
        deadline = time.monotonic() + 30
        while cap.running() and count(table_topics) < SNAPSHOT_EVENTS:
            if time.monotonic() >= deadline:
                problem("snapshot", f"fewer than {SNAPSHOT_EVENTS} snapshot events within 30s")
                break
        if not cap.running():
            problem("capture exited", f"status {cap.exit_code()} before changes.sql; log tail:\n"
                    + cap.log_tail(15))
            return
        self.psql(read_scenario("changes.sql"), db=db)

        # Until the last change of changes.sql is on its topic, then until every topic holds
        # as many messages as the golden one (a missing message is a difference to report,
        # not a reason to stop: short deadlines).
        marker_topic = topic_map[f"{GOLDEN_PREFIX}.public.golden_default"]

        def marker_seen():
            msgs = dstest.consume([marker_topic], idle_ms=300, timeout_ms=3000, check=False)
            return any(key_id(m["key"]) == 99 for m in msgs)

        deadline = time.monotonic() + 30
        while cap.running() and not marker_seen():
            if time.monotonic() >= deadline:
                problem("incomplete", "the last change of changes.sql (golden_default id 99) "
                        "was not on its topic within 30s")
                break

        def complete():
            return all(count([topic_map[t]]) >= len(msgs) for t, msgs in golden.items())

        deadline = time.monotonic() + 10
        while cap.running() and not complete() and time.monotonic() < deadline:
            pass
        ds_by_topic = {}
        for t in golden:
            ds_by_topic[t] = dstest.consume([topic_map[t]], idle_ms=1500, timeout_ms=5000,
                                            check=False, headers=True)
        # A transaction topic nobody asked for is a difference too.
        txn_topic = f"{prefix}.{combination['dualsync'].get('topic.transaction', 'transaction')}"
        if f"{GOLDEN_PREFIX}.transaction" not in golden:
            if dstest.describe_topics([txn_topic])[txn_topic].get("exists"):
                problem("transaction topic", f"{txn_topic} exists, Debezium wrote none")
        if cap.running():
            code = cap.stop(expect_exit=None)
            if code != 0:
                problem("capture exit status", f"{code} after SIGTERM")
        else:
            problem("capture exited", f"status {cap.exit_code()} during changes.sql; log tail:\n"
                    + cap.log_tail(15))
        with open(os.path.join(self.work_dir, f"{name}.dualsync.jsonl"), "w",
                  encoding="utf-8") as f:
            for t in golden:
                for m in ds_by_topic[t]:
                    f.write(json.dumps(m, ensure_ascii=False) + "\n")
        comparer = Comparer(diffs, name, prefix, db, schemaless)
        for t, msgs in golden.items():
            comparer.compare_topic(t, msgs, ds_by_topic[t])


if __name__ == "__main__":
    unittest.main()
