"""apply on the topics of the real Debezium PostgreSQL connector (3.6.1.Final in a Kafka Connect
3.9.1 worker), not on capture's: a team already running Debezium points `dualsync apply` at its
topics, declares Debezium's settings in the "debezium" object, and gets its new table.

A source table with the common types (date, time, timestamp(3), timestamp, timestamptz,
numeric(p,s), numeric, bytea, interval, uuid, text, int, bool) is changed by inserts, updates,
a delete and a primary-key change. Debezium captures it; apply writes a one-to-one new table
in another database. A table without a primary key (REPLICA IDENTITY FULL, whose changes
Debezium sends keyless) gets identical rows and deletes. Asserted: the new tables equal the
source rows (both read by the same server, so the same text), `dualsync verify` finds
nothing missing, extra or different, nothing went to the dead-letter topic, and Debezium's
truncate record (keyless, op "t") empties the new table.

- Debezium's defaults (time.precision.mode=adaptive, decimal.handling.mode=precise,
  binary.handling.mode=bytes, interval.handling.mode=numeric) with its converters' schemas
  enabled (JsonConverter schemas.enable=true: the schema envelope), which those settings
  need: epoch counts, unscaled decimals and durations are read by their logical types.
- Debezium set to the string settings (isostring, string, bytes, string) without schemas:
  their ISO strings read like text, so the column types come from the source catalog too,
  and mappings get dualsync's classic values.
- Debezium's defaults without schemas, the column types read from the source catalog (the
  config's "source" section).
- Debezium's defaults without schemas and without a "source" section are refused when apply
  starts (exit 2), naming the setting and what to do, before anything is read.
"""

import json
import os

import dstest

TABLE = "public.dbz_apply_types"
# Debezium confirms its slot only past the changes it reads: a heartbeat query writing to a
# captured table gives it one every half second, so `dualsync verify`'s catch-up (the slot
# past the source's position when it started) ends. Its topic has no mapping: apply does
# not read it, nor Debezium's heartbeat topic.
HEARTBEAT_TABLE = "public.dbz_apply_heartbeat"
# Besides: Debezium skips truncates unless told not to.
CONNECTOR_COMMON = {
    "skipped.operations": "none",
    "heartbeat.interval.ms": "500",
    "heartbeat.action.query": f"INSERT INTO {HEARTBEAT_TABLE} (id, at) VALUES (1, now()) "
    "ON CONFLICT (id) DO UPDATE SET at = now()",
}
TARGET = "public.dbz_apply_new"

COLUMNS = [
    ("id", "int PRIMARY KEY"),
    ("c_date", "date"),
    ("c_time", "time"),
    ("c_ts3", "timestamp(3)"),
    ("c_ts", "timestamp"),
    ("c_tstz", "timestamptz"),
    ("c_num", "numeric(12,3)"),
    ("c_numfree", "numeric"),
    ("c_bytea", "bytea"),
    ("c_interval", "interval"),
    ("c_uuid", "uuid"),
    ("c_text", "text"),
    ("c_int", "int"),
    ("c_bool", "boolean"),
]
NAMES = [name for name, _ in COLUMNS]

ROW1 = {
    "c_date": "'2024-02-29'",
    "c_time": "'23:59:59.999999'",
    "c_ts3": "'2024-02-29 12:34:56.789'",
    "c_ts": "'2024-02-29 12:34:56.789012'",
    "c_tstz": "'2024-02-29 21:34:56.789012+09'",
    "c_num": "1234567.891",
    "c_numfree": "123456789012345678901234567890.123456789",
    "c_bytea": "'\\x00ff10'",
    "c_interval": "'1 year 2 months 3 days 04:05:06.5'",
    "c_uuid": "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
    "c_text": "E'it''s \"quoted\" \\\\ back\\\\slash\\nnew line 한국어'",
    "c_int": "2147483647",
    "c_bool": "true",
}

ROW3 = {
    "c_date": "'1969-12-31'",
    "c_time": "'24:00:00'",
    "c_ts3": "'1969-12-31 23:59:59.5'",
    "c_ts": "'1900-01-01 00:00:00'",
    "c_tstz": "'infinity'",
    "c_num": "-0.500",
    "c_numfree": "0.000001",
    "c_bytea": "''::bytea",
    "c_interval": "'-1 day -02:00:00'",
    "c_uuid": "'00000000-0000-0000-0000-000000000000'",
    "c_text": "''",
    "c_int": "-2147483648",
    "c_bool": "false",
}


def insert(row_id, values):
    cols = ["id"] + list(values)
    vals = [str(row_id)] + list(values.values())
    return f"INSERT INTO {TABLE} ({', '.join(cols)}) VALUES ({', '.join(vals)});\n"


# Infinities: without a schema, Debezium's isostring stand-ins for them ("-5877611-06-21Z")
# cannot be told from text, so they are exercised with the schema only (as are years before
# 1, below). Nor does isostring have 24:00:00 (java.time.LocalTime): Debezium writes
# "00:00:00Z".
ROW3_PLAIN = dict(ROW3, c_tstz="'1900-01-01 00:00:00+00'", c_time="'23:00:00'")
ROW4 = dict(ROW1, c_date="'infinity'", c_ts3="'-infinity'", c_numfree="-7.10")
ROW4_PLAIN = dict(ROW4, c_date="'2100-01-01'", c_ts3="'2100-01-01 00:00:00'")


def changes_sql(extremes):
    """Each statement its own transaction, in a session whose TimeZone is not UTC."""
    return (
        "SET TimeZone = 'Asia/Seoul';\n"
        + insert(1, ROW1)
        + f"INSERT INTO {TABLE} (id) VALUES (2);\n"
        + insert(3, ROW3 if extremes else ROW3_PLAIN)
        + insert(4, ROW4 if extremes else ROW4_PLAIN)
        + f"UPDATE {TABLE} SET c_text = 'changed', c_num = 0.001, c_bool = false, "
        "c_tstz = '2030-06-15 08:00:00+02', c_date = '2030-06-15', c_interval = '90 minutes', "
        "c_bytea = '\\xdeadbeef' WHERE id = 1;\n"
        + f"UPDATE {TABLE} SET id = 30 WHERE id = 3;\n"
        + f"DELETE FROM {TABLE} WHERE id = 2;\n"
        + f"UPDATE {TABLE} SET c_time = '00:00:00.000001', c_ts = '2000-01-01 00:00:00' "
        "WHERE id = 4;\n"
    )

# One-to-one; bytea arrives base64 (capture's form, and Debezium's bytes), decoded by the
# target database.
# A table without a primary key, REPLICA IDENTITY FULL: Debezium sends its changes with a
# null key; apply keys them by the whole row, as capture does, counting identical rows.
NOPK = "public.dbz_apply_nopk"
NOPK_TARGET = "public.dbz_apply_nopk_new"
NOPK_MAPPING = {
    "source": NOPK,
    "targets": [
        {
            "name": "dbz_apply_nopk_new",
            "connection": "newdb",
            "table": NOPK_TARGET,
            "key": ["a", "b"],
            "columns": {"a": "$a", "b": "$b"},
        }
    ],
}
NOPK_QUERY = "SELECT a, b FROM {} ORDER BY a, b"
NOPK_SQL = (
    f"INSERT INTO {NOPK} VALUES (1, 'x'), (1, 'x'), (2, 'y');\n"
    # One of two identical rows: the target row stays for the other.
    f"DELETE FROM {NOPK} WHERE ctid = (SELECT min(ctid) FROM {NOPK} WHERE a = 1);\n"
    f"INSERT INTO {NOPK} VALUES (3, 'z');\n"
    f"DELETE FROM {NOPK} WHERE a = 3;\n"
)

MAPPING = {
    "source": TABLE,
    "targets": [
        {
            "name": "dbz_apply_new",
            "connection": "newdb",
            "table": TARGET,
            "key": ["id"],
            "columns": dict(
                {name: f"${name}" for name in NAMES if name != "c_bytea"},
                c_bytea={"sql": "decode($1, 'base64')", "args": ["$c_bytea"]},
            ),
        }
    ],
}

# Debezium's VariableScaleDecimal drops an unconstrained numeric's trailing zeros (-7.10
# arrives as -7.1): equal numbers, which verify compares as equal; the text is compared
# without them.
ROWS_QUERY = "SELECT {} FROM {{}} ORDER BY id".format(
    ", ".join("trim_scale(c_numfree)" if n == "c_numfree" else n for n in NAMES)
)

DEBEZIUM_DEFAULTS = {
    "time.precision.mode": "adaptive",
    "decimal.handling.mode": "precise",
    "binary.handling.mode": "bytes",
    "interval.handling.mode": "numeric",
}
STRING_SETTINGS = {
    "time.precision.mode": "isostring",
    "decimal.handling.mode": "string",
    "binary.handling.mode": "bytes",
    "interval.handling.mode": "string",
}
SCHEMAS_ENABLED = {
    "key.converter": "org.apache.kafka.connect.json.JsonConverter",
    "key.converter.schemas.enable": "true",
    "value.converter": "org.apache.kafka.connect.json.JsonConverter",
    "value.converter.schemas.enable": "true",
}


class ApplyOnDebeziumTopicsTest(dstest.ApplyTestCase):
    def setUp(self):
        super().setUp()
        ddl = ",\n  ".join(f"{name} {sqltype}" for name, sqltype in COLUMNS)
        self.psql(
            f"DROP TABLE IF EXISTS {TABLE}, {HEARTBEAT_TABLE}, {NOPK};\n"
            f"CREATE TABLE {TABLE} (\n  {ddl}\n);\n"
            f"CREATE TABLE {NOPK} (a int NOT NULL, b text NOT NULL);\n"
            f"ALTER TABLE {NOPK} REPLICA IDENTITY FULL;\n"
            f"CREATE TABLE {HEARTBEAT_TABLE} (id int PRIMARY KEY, at timestamptz);"
        )
        self.newdb = self.target_database("dbz_apply_new")
        self.psql(
            f"CREATE TABLE {TARGET} (\n  {ddl}\n);\n"
            f"CREATE TABLE {NOPK_TARGET} (a int, b text, PRIMARY KEY (a, b));",
            db=self.newdb,
        )
        self.mappings = [
            dstest.write_mapping(
                os.path.join(self.work_dir, f"{self._test_slug}-{name}.json"), mapping
            )
            for name, mapping in (("mapping", MAPPING), ("nopk", NOPK_MAPPING))
        ]

    def config(self, dbz, settings, message_format, source=False):
        group = self.new_group("dbz_apply")
        extra = {"source": self.source_section(dbz)} if source else {}
        return self.apply_config(
            {"newdb": self.newdb},
            self.mappings,
            dbz.topic_prefix,
            apply={"group_id": group},
            debezium=settings,
            capture={"message_format": message_format},
            **extra,
        )

    def source_section(self, dbz):
        return {
            "conninfo": dstest.conninfo(self.db),
            "tables": [TABLE, NOPK],
            "slot": dbz.slot,
            "publication": dbz.publication,
            "create_publication": False,
        }

    def run_debezium_and_apply(self, connector_settings, settings, message_format, extremes,
                               source=False):
        dbz = self.start_debezium(
            [TABLE, NOPK, HEARTBEAT_TABLE], extra=dict(connector_settings, **CONNECTOR_COMMON)
        )
        cfg = self.config(dbz, settings, message_format, source)
        apply = self.start_apply(cfg)
        self.psql(changes_sql(extremes))
        self.psql(NOPK_SQL)

        source_rows = self.psql(ROWS_QUERY.format(TABLE))
        self.assertEqual([r[0] for r in source_rows], ["1", "4", "30"])
        self.wait_rows(self.newdb, ROWS_QUERY.format(TARGET), source_rows, timeout=90,
                       what="the new table to equal the source table")
        self.assertEqual(self.psql(NOPK_QUERY.format(NOPK)), [("1", "x"), ("2", "y")])
        self.wait_rows(self.newdb, NOPK_QUERY.format(NOPK_TARGET), [("1", "x"), ("2", "y")],
                       what="the table without a primary key to be applied")
        # Nothing was refused on the way.
        self.assertEqual(
            dstest.consume([cfg.dlq_topic], idle_ms=500, timeout_ms=2000, check=False), []
        )
        self.assert_verify_clean(cfg, dbz)
        if extremes:
            # Years before 1: decoded into PostgreSQL's own text ("0044-03-15 BC"), since
            # capture's ISO form of them ("-0043-03-15Z") is one PostgreSQL does not read
            # (which is also why verify, rendering the source as capture does, is run before).
            self.psql(f"UPDATE {TABLE} SET c_date = '0044-03-15 BC', "
                      "c_ts = '0044-03-15 10:00:00 BC' WHERE id = 30")
            self.wait_rows(self.newdb, ROWS_QUERY.format(TARGET), self.psql(ROWS_QUERY.format(TABLE)),
                           what="the years before 1")
        # Debezium's truncate record (op "t", keyless) empties the new table.
        self.psql(f"TRUNCATE {TABLE}")
        self.wait_rows(self.newdb, ROWS_QUERY.format(TARGET), [], what="the truncate")
        apply.stop(expect_exit=0)
        return dbz, cfg

    def assert_verify_clean(self, cfg, dbz):
        path = os.path.splitext(cfg.path)[0] + "-verify.json"
        with open(path, "w", encoding="utf-8") as f:
            json.dump(dict(cfg.data, source=self.source_section(dbz)), f)
        proc = dstest.run_dualsync(["verify", "--config", path])
        self.assertEqual(proc.returncode, 0, f"dualsync verify:\n{proc.stdout}\n{proc.stderr}")

    def test_debezium_defaults_with_schemas(self):
        dbz, _ = self.run_debezium_and_apply(
            # The connector left at its value defaults, and so "debezium": {}.
            SCHEMAS_ENABLED, {}, "json-with-schema", extremes=True
        )
        # The topic was really in Debezium's default encodings, in the envelope.
        first = dstest.consume([dbz.topic(TABLE)], count=1)[0]
        self.assertEqual(set(first["value"]), {"schema", "payload"})
        self.assertEqual(first["value"]["payload"]["after"]["c_date"], 19782)

    def test_debezium_defaults_without_schemas_read_by_source_types(self):
        # The connector at its defaults, schemaless (the worker's converters); apply reads
        # the column types from the source catalog (the config's "source" section).
        dbz, cfg = self.run_debezium_and_apply({}, {}, "json", extremes=True, source=True)
        first = dstest.consume([dbz.topic(TABLE)], count=1)[0]
        self.assertEqual(first["value"]["after"]["c_date"], 19782)
        self.assertIn("op", first["value"])

    def test_string_settings_without_schemas_read_by_source_types(self):
        # Even the string settings' values need the column types: an IsoDate reads like
        # text, and mappings get dualsync's classic values.
        dbz, _ = self.run_debezium_and_apply(
            STRING_SETTINGS, STRING_SETTINGS, "json", extremes=False, source=True
        )
        first = dstest.consume([dbz.topic(TABLE)], count=1)[0]
        self.assertIn("op", first["value"])

    def test_debezium_defaults_without_schemas_refused_at_start(self):
        # Given, or taken by default with the object: refused before anything is read.
        for settings in (DEBEZIUM_DEFAULTS, {}):
            with self.subTest(debezium=settings):
                cfg = self.apply_config(
                    {"newdb": self.newdb}, self.mappings, "dbz.unused", debezium=settings
                )
                proc = dstest.run_dualsync(["apply", "--config", cfg.path])
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertIn('time.precision.mode "adaptive"', proc.stderr)
                self.assertIn('capture.message_format "json-with-schema"', proc.stderr)
                self.assertIn(cfg.path, proc.stderr)
        # Without the object: classic values, nothing to refuse (apply starts).
        cfg = self.apply_config({"newdb": self.newdb}, self.mappings, "dbz.unused")
        self.start_apply(cfg).stop(expect_exit=0)
