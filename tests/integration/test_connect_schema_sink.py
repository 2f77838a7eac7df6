"""A real Kafka Connect sink on capture's json-with-schema topics: Debezium's JDBC sink
connector (io.debezium:debezium-connector-jdbc, scripts/debezium-jdbc-pom.xml) in the harness's
Connect worker copies a table into ANOTHER database, from nothing but what capture wrote, and
the copy equals the source row for row after the initial backfill's read events, inserts,
updates (one of the primary key) and deletes.

The sink reads the records with JsonConverter schemas.enable=true (set in its own config: the
worker's converters are schemaless), so it types every column from the schema capture put in
each message: Decimal/string numerics, IsoTimestamp/ZonedTimestamp/IsoDate, Uuid, Json,
bytes. It runs with primary.key.mode=record_key (the key struct's fields are the target's
primary key), insert.mode=upsert and delete.enabled=true (a delete removes the row; its
tombstone is skipped).

Capture runs without a "debezium" object, so json-with-schema writes Debezium's default
values (adaptive, precise, bytes, numeric). stringtype=unspecified on the sink's JDBC URL, the
usual setting for Connect JDBC sinks writing PostgreSQL, lets the server type a string
parameter from its column, as the string settings (isostring, string) need.
"""

import unittest

import dstest

TABLE = "public.sink_rows"
COLUMNS = (
    "id integer PRIMARY KEY, "
    "c_numeric numeric(12,3), "
    "c_numeric_free numeric, "
    "c_bigint bigint NOT NULL, "
    "c_double double precision, "
    "c_bool boolean, "
    "c_text text, "
    "c_varchar varchar(20), "
    "c_uuid uuid, "
    "c_bytea bytea, "
    "c_jsonb jsonb, "
    "c_date date, "
    "c_timestamp timestamp, "
    "c_timestamp3 timestamp(3), "
    "c_timestamptz timestamptz"
)
ROWS_SQL = (
    "SELECT id, c_numeric, c_numeric_free, c_bigint, c_double, c_bool, c_text, c_varchar, "
    "c_uuid, encode(c_bytea, 'hex'), c_jsonb, c_date, c_timestamp, c_timestamp3, "
    f"c_timestamptz FROM {TABLE} ORDER BY id"
)
# Rows there before capture starts: published as read events by its initial backfill.
BACKFILL_SQL = f"""
INSERT INTO {TABLE} (id, c_numeric, c_bigint, c_text, c_timestamptz, c_bytea) VALUES
  (100, 100.001, 100, 'backfilled', '2001-02-03 04:05:06.789+00', '\\x0102'),
  (101, 101.000, 101, 'backfilled too', NULL, NULL);
"""
CHANGES_SQL = f"""
SET TimeZone = 'Asia/Kolkata';
UPDATE {TABLE} SET c_text = 'backfilled, then updated' WHERE id = 100;
DELETE FROM {TABLE} WHERE id = 101;
INSERT INTO {TABLE} VALUES
  (1, 1234567.891, 3.14159265358979323846264338327950288, 9223372036854775807, 1.5, true,
   E'it''s "quoted" \\\\ back\\\\slash\\nnew line 한국어 😀', 'short',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff10', '{{"k": [1, 2.5, null]}}',
   '2024-02-29', '2024-01-31 10:00:00.123456', '1999-12-31 23:59:59.999',
   '2024-01-31 10:00:00.5+05:30'),
  (2, -0.001, -1e-20, -9223372036854775808, -2.25e-300, false, '', '',
   '00000000-0000-0000-0000-000000000000', '', '[]', '1970-01-01', '1970-01-01 00:00:00',
   '1970-01-01 00:00:00', '1970-01-01 00:00:00+00'),
  (3, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO {TABLE} (id, c_bigint, c_text) VALUES (4, 4, 'four');
UPDATE {TABLE} SET c_text = 'changed', c_numeric = 0.5, c_bool = NULL,
  c_timestamptz = '2030-06-15 08:00:00+02', c_bytea = '\\xdeadbeef' WHERE id = 1;
UPDATE {TABLE} SET c_numeric = 99.999, c_date = '2000-01-01' WHERE id = 3;
UPDATE {TABLE} SET id = 30 WHERE id = 3;
DELETE FROM {TABLE} WHERE id = 2;
BEGIN;
INSERT INTO {TABLE} (id, c_bigint, c_numeric_free) VALUES (5, 5, 12345678901234567890.0123456789);
DELETE FROM {TABLE} WHERE id = 4;
COMMIT;
"""

JDBC_SINK_CLASS = "io.debezium.connector.jdbc.JdbcSinkConnector"


class ConnectSchemaSinkTest(dstest.ApplyTestCase):
    def start_jdbc_sink(self, url, topic, target_db, table_name):
        """Creates Debezium's JDBC sink connector writing @topic into @table_name of
        @target_db; deleted at the end of the test."""
        status, plugins = dstest.connect_request(url, "GET", "/connector-plugins")
        self.assertEqual(status, 200, plugins)
        self.assertIn(
            JDBC_SINK_CLASS, [p.get("class") for p in plugins],
            "the Debezium JDBC sink connector is not in the Connect worker's plugin.path: run "
            "'bash scripts/setup.sh' (it fetches scripts/debezium-jdbc-pom.xml)",
        )
        e = dstest.env()
        name = dstest.unique_name(f"jdbc_{self._testMethodName}", max_len=40)
        config = {
            "connector.class": JDBC_SINK_CLASS,
            "tasks.max": "1",
            "topics": topic,
            "connection.url": f"jdbc:postgresql://{e['PGHOST']}:{e['PGPORT']}/{target_db}"
                              "?stringtype=unspecified",
            "connection.username": e["PGUSER"],
            # The test cluster trusts every local connection; the sink requires the setting.
            "connection.password": "unused",
            "insert.mode": "upsert",
            "delete.enabled": "true",
            "primary.key.mode": "record_key",
            "schema.evolution": "none",
            "collection.name.format": table_name,
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "true",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "true",
            "consumer.override.auto.offset.reset": "earliest",
        }
        status, body = dstest.connect_request(url, "POST", "/connectors",
                                              {"name": name, "config": config})
        self.assertEqual(status, 201, f"creating the JDBC sink failed: {body}")

        def delete():
            dstest.connect_request(url, "DELETE", f"/connectors/{name}")

        self.addCleanup(delete)
        self._connectors.append(name)
        return name

    def sink_failure(self, url, name):
        """The trace of a FAILED connector or task, or None."""
        status, body = dstest.connect_request(url, "GET", f"/connectors/{name}/status")
        if status != 200:
            return None
        for s in [body["connector"]] + body.get("tasks", []):
            if s.get("state") == "FAILED":
                return s.get("trace", "(no trace)")
        return None

    def test_jdbc_sink_copies_the_table_from_the_schema_envelope(self):
        self.psql(f"CREATE TABLE {TABLE} ({COLUMNS})")
        target = self.target_database("sink_target")
        dstest.psql(f"CREATE TABLE {TABLE} ({COLUMNS})", db=target)
        self.psql(BACKFILL_SQL)

        cfg, _cap = self.start_streaming_capture(
            [TABLE], capture={"message_format": "json-with-schema"})
        self.psql(CHANGES_SQL)

        # Every key and value capture wrote is JsonConverter's envelope; tombstones are null.
        msgs = self.consume([cfg.topic(TABLE)], count=19, timeout_ms=60000)
        self.assertEqual([m["value"]["payload"]["op"] for m in msgs[:2]], ["r", "r"])
        for m in msgs:
            self.assertEqual(set(m["key"]), {"schema", "payload"}, m)
            self.assertEqual(m["key"]["schema"]["name"], f"{cfg.topic(TABLE)}.Key")
            if m["value"] is not None:
                self.assertEqual(set(m["value"]), {"schema", "payload"}, m)
                self.assertEqual(m["value"]["schema"]["name"], f"{cfg.topic(TABLE)}.Envelope")

        url = dstest.connect_start()
        name = self.start_jdbc_sink(url, cfg.topic(TABLE), target, "sink_rows")
        expected = self.psql(ROWS_SQL)
        self.assertEqual([r[0] for r in expected], ["1", "5", "30", "100"])

        last = []

        def copied():
            failure = self.sink_failure(url, name)
            if failure:
                raise AssertionError(f"the JDBC sink FAILED:\n{failure}")
            last[:] = dstest.psql(ROWS_SQL, db=target)
            return last == expected

        try:
            dstest.wait_for(copied, timeout=120, what="the JDBC sink to copy the table",
                            interval=0.5)
        except AssertionError as e:
            raise AssertionError(f"{e}\nsource: {expected}\ntarget: {last}") from None


if __name__ == "__main__":
    unittest.main()
