"""capture's Connect schemas against the real Debezium PostgreSQL connector's, live: both run
on the same table (capture with capture.message_format "json-with-schema", Debezium with
JsonConverter schemas.enable=true in its own converter settings), one row is inserted, and the
key and value schemas of the two messages must be equal once the topic prefix in their names
is set aside.

The table holds what the recorded goldens (tests/golden/connect_schema/) do not: NOT NULL
columns beyond the key, a column comment (which Debezium's schema of a streamed change does not
carry), and column defaults, which Debezium puts in each field ("default"):
literals, serial's nextval() and other function calls (a placeholder: 0, the nil UUID), an
expression it does not evaluate (none), a domain's (none). Both run with dualsync's value
defaults (isostring, string, bytes, string), so the defaults are written as capture writes
values under them.
"""

import json
import unittest

import dstest

TABLE = "public.schema_defaults"
SETUP_SQL = f"""
CREATE TYPE schema_mood AS ENUM ('sad', 'ok');
CREATE DOMAIN schema_positive AS integer CHECK (VALUE > 0);
CREATE TABLE {TABLE} (
    id serial PRIMARY KEY,
    big bigserial,
    i integer NOT NULL DEFAULT 42,
    s smallint DEFAULT -3,
    b boolean DEFAULT true,
    bf boolean NOT NULL DEFAULT false,
    t text DEFAULT 'hello',
    v varchar(10) DEFAULT 'it''s',
    c char(3) DEFAULT 'ab',
    n numeric(6,2) DEFAULT 12.5,
    nf numeric DEFAULT 3.25,
    f double precision DEFAULT 1.5,
    r real DEFAULT 2.5,
    u uuid DEFAULT '76019d1a-ad2e-4b22-96e9-1a6d6543c818',
    un uuid DEFAULT gen_random_uuid(),
    j jsonb DEFAULT '{{}}',
    m schema_mood DEFAULT 'ok',
    dom schema_positive DEFAULT 5,
    e integer DEFAULT (1 + 2),
    tn text NOT NULL DEFAULT '',
    nn bigint NOT NULL,
    x text
);
COMMENT ON COLUMN {TABLE}.x IS 'what the row says';
""".replace("{{}}", "{}")

# dualsync's value defaults, by Debezium's names, for the Debezium connector.
DUALSYNC_DEFAULTS = {
    "time.precision.mode": "isostring",
    "decimal.handling.mode": "string",
    "binary.handling.mode": "bytes",
    "interval.handling.mode": "string",
}
SCHEMA_CONVERTERS = {
    "key.converter": "org.apache.kafka.connect.json.JsonConverter",
    "key.converter.schemas.enable": "true",
    "value.converter": "org.apache.kafka.connect.json.JsonConverter",
    "value.converter.schemas.enable": "true",
}


def without_prefix(schema, prefix):
    """@schema with "<prefix>." taken off the start of every "name"."""
    text = json.dumps(schema)
    return json.loads(text.replace(f'"name": "{prefix}.', '"name": "<prefix>.'))


class ConnectSchemaDebeziumTest(dstest.ServicesTestCase):
    def test_not_null_and_defaults_as_debezium_has_them(self):
        self.psql(SETUP_SQL)
        dbz = self.start_debezium([TABLE], extra=dict(SCHEMA_CONVERTERS, **DUALSYNC_DEFAULTS))
        cfg = self.capture_config([TABLE], capture={"message_format": "json-with-schema"})
        cap = self.start_capture(cfg)
        dstest.wait_for(lambda: (dstest.slot_info(cfg.slot) or {}).get("active"), timeout=30,
                        what=f"capture to stream from slot {cfg.slot}")
        del cap
        self.psql(f"INSERT INTO {TABLE} (nn, x) VALUES (7, 'row')")

        ds = self.consume([cfg.topic(TABLE)], count=1, timeout_ms=60000)[0]
        db = self.consume([dbz.topic(TABLE)], count=1, timeout_ms=60000)[0]
        for part in ("key", "value"):
            want = without_prefix(db[part]["schema"], dbz.topic_prefix)
            got = without_prefix(ds[part]["schema"], cfg.topic_prefix)
            if part == "value":
                want_fields = {f["field"]: f for f in want["fields"][0]["fields"]}
                got_fields = {f["field"]: f for f in got["fields"][0]["fields"]}
                for name in want_fields.keys() | got_fields.keys():
                    self.assertEqual(got_fields.get(name), want_fields.get(name),
                                     f"field {name} of {TABLE}")
            self.assertEqual(got, want, f"the {part} schema of {TABLE}")


if __name__ == "__main__":
    unittest.main()
