"""Capture beside the real Debezium PostgreSQL connector (3.6.1.Final in a Kafka Connect 3.9.1
worker): the same changes to one table, read from both topics and compared message by
message.

Both run at once on their own slots and publications of the same table, so they see the same
transactions. Asserted identical: the keys, the order of events, `op`, tombstones after
deletes (and the delete, tombstone, create of a primary-key change), and the `before`/`after`
values of the columns whose mapping matches Debezium's today (integers, floats, booleans, text,
uuid, enum, json/jsonb, bytea, int[] and text[], numerics as strings: Debezium runs with
decimal.handling.mode=string). Compared loosely: the `source` block (connector, db, schema,
table, an LSN). Not asserted: the date and time columns, whose mapping is known to differ;
their values are written side by side, with the Debezium schema type of each, to
<work dir>/debezium-temporal-differences.txt and printed, followed by the envelope and
`source` fields only one side sends. <work dir>/messages.json keeps both sides' messages.
A second table, left at REPLICA IDENTITY DEFAULT, checks that `before` (null on updates, only
the key on deletes) is the same on both sides.
"""

import datetime
import json
import os
import unittest

import dstest

TABLE = "public.interop"
# A table left at REPLICA IDENTITY DEFAULT: what `before` holds on updates and deletes.
TABLE_DEFAULT = "public.interop_default"

# Columns compared for equality: name -> SQL type, in table order.
EQUAL_COLUMNS = [
    ("id", "int PRIMARY KEY"),
    ("c_int", "int"),
    ("c_smallint", "smallint"),
    ("c_bigint", "bigint"),
    ("c_numeric", "numeric(12,3)"),
    ("c_numeric_free", "numeric"),
    ("c_real", "real"),
    ("c_double", "double precision"),
    ("c_bool", "boolean"),
    ("c_text", "text"),
    ("c_varchar", "varchar(20)"),
    ("c_uuid", "uuid"),
    ("c_mood", "mood"),
    ("c_json", "json"),
    ("c_jsonb", "jsonb"),
    ("c_bytea", "bytea"),
    ("c_int_arr", "int[]"),
    ("c_text_arr", "text[]"),
]

# Columns whose values are reported, not compared.
TEMPORAL_COLUMNS = [
    ("c_date", "date"),
    ("c_time", "time"),
    ("c_timetz", "timetz"),
    ("c_timestamp", "timestamp"),
    ("c_timestamptz", "timestamptz"),
    ("c_interval", "interval"),
]

COLUMNS = EQUAL_COLUMNS + TEMPORAL_COLUMNS
SQL_TYPES = dict(COLUMNS)

AWKWARD_TEXT = "it's \"quoted\" \\ back\\slash\nnew line\ttab \x01ctl 한국어 😀"


def e_string(text):
    """An E'' literal of @text."""
    return "E'" + (
        text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
        .replace("\t", "\\t").replace("\x01", "\\x01")
    ) + "'"


ROW1 = {
    "c_int": "2147483647",
    "c_smallint": "-32768",
    "c_bigint": "-9223372036854775808",
    "c_numeric": "1234567.891",
    "c_numeric_free": "123456789012345678901234567890.5",
    "c_real": "3.14",
    "c_double": "2.718281828459045",
    "c_bool": "true",
    "c_text": e_string(AWKWARD_TEXT),
    "c_varchar": "'varchar value'",
    "c_uuid": "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
    "c_mood": "'happy'",
    "c_json": """'{"a": [1, 2.5, "x"], "b": null}'""",
    "c_jsonb": """'{"b": null, "a": [1, 2.5, "x"]}'""",
    "c_bytea": "'\\x00ff10'",
    "c_int_arr": "'{1,NULL,3}'",
    "c_text_arr": "ARRAY['a,b', 'c d', 'e\"f', 'NULL', NULL, '', '한국어']",
    "c_date": "'2024-02-29'",
    "c_time": "'23:59:59.999999'",
    "c_timetz": "'10:00:00+05:30'",
    "c_timestamp": "'2024-02-29 12:34:56.789012'",
    "c_timestamptz": "'2024-02-29 21:34:56.789012+09'",
    "c_interval": "'1 year 2 months 3 days 04:05:06.5'",
}

ROW3 = {
    "c_int": "-1",
    "c_smallint": "32767",
    "c_bigint": "9223372036854775807",
    "c_numeric": "-0.500",
    "c_numeric_free": "0.000001",
    "c_real": "-1.5",
    "c_double": "-1e-300",
    "c_bool": "false",
    "c_text": "'plain'",
    "c_varchar": "''",
    "c_uuid": "'00000000-0000-0000-0000-000000000000'",
    "c_mood": "'sad'",
    "c_json": "'[]'",
    "c_jsonb": """'{"k\\"ey": "한국어", "n": 1.10}'""",
    "c_bytea": "''::bytea",
    "c_int_arr": "'{}'",
    "c_text_arr": "'{}'",
    "c_date": "'1969-12-31'",
    "c_time": "'00:00:00'",
    "c_timetz": "'00:00:00-03'",
    "c_timestamp": "'1969-12-31 23:59:59.5'",
    "c_timestamptz": "'2000-01-01 00:00:00+00'",
    "c_interval": "'-1 day -02:00:00'",
}


def insert_sql(row_id, values):
    cols = ["id"] + list(values)
    vals = [str(row_id)] + list(values.values())
    return f"INSERT INTO {TABLE} ({', '.join(cols)}) VALUES ({', '.join(vals)});\n"


# The changes, each statement its own transaction, in one session whose TimeZone is not UTC.
CHANGES_SQL = (
    "SET TimeZone = 'Asia/Seoul';\n"
    + insert_sql(1, ROW1)
    + f"INSERT INTO {TABLE} (id) VALUES (2);\n"
    + insert_sql(3, ROW3)
    + f"UPDATE {TABLE} SET c_text = 'changed', c_numeric = 0.001, c_bool = false, "
    "c_int_arr = '{4,5}', c_jsonb = '{\"x\": 1}', c_timestamptz = '2030-06-15 08:00:00+02', "
    "c_date = '2030-06-15', c_interval = '90 minutes' WHERE id = 1;\n"
    + f"UPDATE {TABLE} SET id = 30 WHERE id = 3;\n"
    + f"DELETE FROM {TABLE} WHERE id = 2;\n"
)

# (key, op) of each message the changes make, tombstones as op None, in order.
EXPECTED_EVENTS = [
    ({"id": 1}, "c"),
    ({"id": 2}, "c"),
    ({"id": 3}, "c"),
    ({"id": 1}, "u"),
    ({"id": 3}, "d"),
    ({"id": 3}, None),
    ({"id": 30}, "c"),
    ({"id": 2}, "d"),
    ({"id": 2}, None),
]


def event_label(index, msg):
    value = msg["value"]
    op = "tombstone" if value is None else value["op"]
    return f"#{index} {op} key={json.dumps(msg['key'])}"


def show(value):
    return "null" if value is None else json.dumps(value, ensure_ascii=False)


def decode_debezium(schema_name, value):
    """What a Debezium temporal value stands for, from its logical type: a readable form for
    the report, not a claim about what dualsync should send."""
    if value is None or schema_name is None:
        return ""
    epoch = datetime.datetime(1970, 1, 1)
    try:
        if schema_name == "io.debezium.time.Date":
            return (datetime.date(1970, 1, 1) + datetime.timedelta(days=value)).isoformat()
        if schema_name == "io.debezium.time.MicroTime":
            return (epoch + datetime.timedelta(microseconds=value)).time().isoformat()
        if schema_name == "io.debezium.time.MicroTimestamp":
            return (epoch + datetime.timedelta(microseconds=value)).isoformat()
        if schema_name == "io.debezium.time.Timestamp":
            return (epoch + datetime.timedelta(milliseconds=value)).isoformat()
        if schema_name == "io.debezium.time.MicroDuration":
            # Debezium counts a month as 365.25 / 12 = 30.4375 days.
            return f"{value / 1e6:.6f}".rstrip("0").rstrip(".") + " s (month = 30.4375 days)"
    except (TypeError, OverflowError, ValueError):
        return ""
    return ""


def format_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines.append("-+-".join("-" * w for w in widths))
    for r in rows:
        lines.append(" | ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines)


class DebeziumInteropTest(dstest.ServicesTestCase):
    """One table with a column per type family; capture and the Debezium connector both
    stream it while one session makes the changes of CHANGES_SQL."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        dstest.psql(
            "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');\n"
            + f"CREATE TABLE {TABLE} (\n  "
            + ",\n  ".join(f"{name} {sqltype}" for name, sqltype in COLUMNS)
            + "\n);\n"
            # Whole old rows in `before` for both (under DEFAULT, Debezium and capture
            # both leave it null on updates).
            + f"ALTER TABLE {TABLE} REPLICA IDENTITY FULL;\n"
            + f"CREATE TABLE {TABLE_DEFAULT} (id int PRIMARY KEY, v text, n bigint);",
            db=cls.db,
        )

    def start_both(self, tables, extra=None):
        """A Debezium connector and a capture on @tables, both streaming."""
        dbz = self.start_debezium(tables, extra=dict({"decimal.handling.mode": "string"},
                                                     **(extra or {})))
        cfg = self.capture_config(tables)
        cap = self.start_capture(cfg)

        def capture_streaming():
            info = dstest.slot_info(cfg.slot)
            return info and info["active"] and info["confirmed_flush_lsn"]

        dstest.wait_for(capture_streaming, timeout=30, what=f"capture to stream from slot {cfg.slot}")
        return dbz, cfg, cap

    def test_default_replica_identity_before_is_the_same(self):
        # Updates carry no old row, deletes only the key: both sides must say so alike.
        dbz, cfg, cap = self.start_both([TABLE_DEFAULT])
        self.psql(
            f"INSERT INTO {TABLE_DEFAULT} VALUES (1, 'a', 10), (2, 'b', NULL);\n"
            f"UPDATE {TABLE_DEFAULT} SET v = 'c' WHERE id = 1;\n"
            f"UPDATE {TABLE_DEFAULT} SET id = 3 WHERE id = 2;\n"
            f"DELETE FROM {TABLE_DEFAULT} WHERE id = 1;\n"
        )
        expected = [({"id": 1}, "c"), ({"id": 2}, "c"), ({"id": 1}, "u"), ({"id": 2}, "d"),
                    ({"id": 2}, None), ({"id": 3}, "c"), ({"id": 1}, "d"), ({"id": 1}, None)]
        ds_msgs = self.consume([cfg.topic(TABLE_DEFAULT)], count=len(expected), timeout_ms=60000)
        dbz_msgs = self.consume([dbz.topic(TABLE_DEFAULT)], count=len(expected), timeout_ms=60000)
        cap.stop(expect_exit=0)
        with open(os.path.join(self.work_dir, "messages-default-identity.json"), "w",
                  encoding="utf-8") as f:
            json.dump({"dualsync": ds_msgs, "debezium": dbz_msgs}, f, indent=1)
        for name, msgs in (("dualsync", ds_msgs), ("debezium", dbz_msgs)):
            with self.subTest(side=name):
                self.assertEqual(
                    [(m["key"], None if m["value"] is None else m["value"]["op"]) for m in msgs],
                    expected,
                )
        for i, (d, z) in enumerate(zip(ds_msgs, dbz_msgs)):
            with self.subTest(event=event_label(i, z)):
                self.assertEqual(d["key"], z["key"])
                if d["value"] is None or z["value"] is None:
                    self.assertEqual(d["value"], z["value"])
                    continue
                self.assertEqual(d["value"]["before"], z["value"]["before"])
                self.assertEqual(d["value"]["after"], z["value"]["after"])

    def test_same_changes_as_debezium(self):
        n = len(EXPECTED_EVENTS)
        # A second connector with the same settings but the value schema inlined: only read
        # for the logical type of each temporal column, named in the report.
        dbz_schema = self.start_debezium(
            [TABLE],
            extra={
                "decimal.handling.mode": "string",
                "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                "value.converter.schemas.enable": "true",
            },
        )
        dbz, cfg, cap = self.start_both([TABLE])
        self.psql(CHANGES_SQL)

        ds_msgs = self.consume([cfg.topic(TABLE)], count=n, timeout_ms=60000)
        dbz_msgs = self.consume([dbz.topic(TABLE)], count=n, timeout_ms=60000)
        dbz_schema_msgs = self.consume([dbz_schema.topic(TABLE)], count=1, timeout_ms=60000)
        # Nothing more than expected on either side.
        self.assertEqual(len(self.consume([cfg.topic(TABLE)], idle_ms=1500)), n)
        self.assertEqual(len(self.consume([dbz.topic(TABLE)], idle_ms=1500)), n)
        cap.stop(expect_exit=0)

        with open(os.path.join(self.work_dir, "messages.json"), "w", encoding="utf-8") as f:
            json.dump({"dualsync": ds_msgs, "debezium": dbz_msgs}, f, indent=1, ensure_ascii=False)

        self.check_events(ds_msgs, dbz_msgs)
        self.check_equal_columns(ds_msgs, dbz_msgs)
        self.check_source(ds_msgs, dbz_msgs, cfg, dbz)
        report = self.report_temporal(ds_msgs, dbz_msgs, dbz_schema_msgs[0]["value"]["schema"])
        report += "\n" + self.report_envelope(ds_msgs, dbz_msgs)
        path = os.path.join(self.work_dir, "debezium-temporal-differences.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(report)
        print(f"\n{report}\n(written to {path})", flush=True)

    # ---- checks ----

    def check_events(self, ds_msgs, dbz_msgs):
        for name, msgs in (("dualsync", ds_msgs), ("debezium", dbz_msgs)):
            with self.subTest(side=name):
                got = [
                    (m["key"], None if m["value"] is None else m["value"]["op"]) for m in msgs
                ]
                self.assertEqual(got, EXPECTED_EVENTS)
        for i, (d, z) in enumerate(zip(ds_msgs, dbz_msgs)):
            with self.subTest(event=event_label(i, z)):
                self.assertEqual(d["key"], z["key"])
                self.assertEqual(d["value"] is None, z["value"] is None)
                if d["value"] is not None and z["value"] is not None:
                    self.assertEqual(d["value"]["op"], z["value"]["op"])
                    for part in ("before", "after"):
                        self.assertEqual(d["value"][part] is None, z["value"][part] is None, part)
                        if d["value"][part] is not None:
                            self.assertEqual(list(d["value"][part]), list(z["value"][part]),
                                             f"{part}: the columns and their order")

    def check_equal_columns(self, ds_msgs, dbz_msgs):
        for i, (d, z) in enumerate(zip(ds_msgs, dbz_msgs)):
            if d["value"] is None or z["value"] is None:
                continue
            for part in ("before", "after"):
                dv, zv = d["value"][part], z["value"][part]
                if dv is None or zv is None:
                    continue
                for column, _ in EQUAL_COLUMNS:
                    with self.subTest(event=event_label(i, z), part=part, column=column):
                        self.assertIn(column, dv)
                        self.assertIn(column, zv)
                        self.assertEqual(dv[column], zv[column])
                        # 1 == 1.0 == True in Python: the JSON type must match too.
                        self.assertIs(type(dv[column]), type(zv[column]))

    def check_source(self, ds_msgs, dbz_msgs, cfg, dbz):
        for i, (d, z) in enumerate(zip(ds_msgs, dbz_msgs)):
            if d["value"] is None or z["value"] is None:
                continue
            for name, msg in (("dualsync", d), ("debezium", z)):
                with self.subTest(event=event_label(i, z), side=name):
                    src = msg["value"]["source"]
                    self.assertEqual(src.get("connector"), "postgresql")
                    self.assertEqual(src.get("db"), self.db)
                    self.assertEqual(src.get("schema"), "public")
                    self.assertEqual(src.get("table"), "interop")
                    self.assertIsNotNone(src.get("lsn"))

    # ---- the report ----

    def report_temporal(self, ds_msgs, dbz_msgs, value_schema):
        # The logical type of each column of Debezium's `after`, from the inlined schema.
        types = {}
        for field in value_schema["fields"]:
            if field["field"] == "after":
                for col in field["fields"]:
                    types[col["field"]] = (col.get("name"), col["type"])
        rows, seen = [], set()
        for i, (d, z) in enumerate(zip(ds_msgs, dbz_msgs)):
            if d["value"] is None or z["value"] is None:
                continue
            for part in ("before", "after"):
                dv, zv = d["value"][part], z["value"][part]
                if dv is None or zv is None:
                    continue
                for column, sqltype in TEMPORAL_COLUMNS:
                    ds_value, dbz_value = dv.get(column), zv.get(column)
                    if (column, show(ds_value), show(dbz_value)) in seen:
                        continue
                    seen.add((column, show(ds_value), show(dbz_value)))
                    name, kind = types.get(column, (None, "?"))
                    rows.append((
                        column,
                        sqltype,
                        f"{event_label(i, z).split(' key=')[0]} {part} id={zv.get('id')}",
                        show(ds_value),
                        show(dbz_value),
                        f"{name or '(none)'} ({kind})",
                        decode_debezium(name, dbz_value),
                        "same" if ds_value == dbz_value else "DIFFERS",
                    ))
        rows.sort(key=lambda r: [c for c, _ in TEMPORAL_COLUMNS].index(r[0]))
        table = format_table(
            ("column", "type", "first seen in", "dualsync", "Debezium 3.6.1", "Debezium schema",
             "Debezium value decoded", ""),
            rows,
        )
        self.assertTrue(rows)
        return (
            "Temporal columns: dualsync capture vs the Debezium PostgreSQL connector 3.6.1.Final\n"
            "(defaults: time.precision.mode=adaptive, interval.handling.mode=numeric; JSON "
            "without schemas; the changes were written in a session with TimeZone=Asia/Seoul)\n\n"
            + table + "\n"
        )

    def report_envelope(self, ds_msgs, dbz_msgs):
        """The fields of the envelope and of `source` that only one side sends, and the
        shared ones whose values differ in some event (informational: not asserted)."""
        rows = {}
        for i, (d, z) in enumerate(zip(ds_msgs, dbz_msgs)):
            if d["value"] is None or z["value"] is None:
                continue
            for where, dv, zv in (
                ("value", d["value"], z["value"]),
                ("source", d["value"]["source"], z["value"]["source"]),
            ):
                for field in list(dv) + [f for f in zv if f not in dv]:
                    if where == "value" and field in ("before", "after", "source"):
                        continue
                    if field not in zv:
                        verdict = "dualsync only"
                    elif field not in dv:
                        verdict = "Debezium only"
                    elif dv[field] == zv[field]:
                        verdict = "same"
                    else:
                        verdict = "differs"
                    prev = rows.get((where, field))
                    if prev is None or (prev[2] == "same" and verdict != "same"):
                        rows[(where, field)] = (
                            show(dv.get(field)) if field in dv else "-",
                            show(zv.get(field)) if field in zv else "-",
                            verdict,
                        )
        table = format_table(
            ("in", "field", "dualsync (an example)", "Debezium 3.6.1 (the same event)", ""),
            [(w, f, a, b, v) for (w, f), (a, b, v) in rows.items()],
        )
        return "Envelope and source fields (not asserted)\n\n" + table + "\n"


if __name__ == "__main__":
    unittest.main()
