"""Capture: how each PostgreSQL type reaches Kafka (docs/type-mapping.md), end to end.

One table holds a column per type. The class starts capture once, writes a row of awkward
values (id 1), a row of NULLs (id 2) and a row of edge values (id 3), reads exactly those
three create events, and each test checks the columns of one family against the mapping
the documentation promises.
"""

import base64
import json
import os
import unittest

import dstest

TABLE = "public.type_matrix"

# Column name -> SQL type, in table order.
COLUMNS = [
    ("id", "int PRIMARY KEY"),
    ("c_int2", "int2"),
    ("c_int4", "int4"),
    ("c_int8", "int8"),
    ("c_oid", "oid"),
    ("c_numeric", "numeric(10,3)"),
    ("c_numeric_nan", "numeric"),
    ("c_numeric_big", "numeric"),
    ("c_numeric_tiny", "numeric"),
    ("c_numeric_inf", "numeric"),
    ("c_float4", "float4"),
    ("c_float4_nan", "float4"),
    ("c_float4_inf", "float4"),
    ("c_float4_ninf", "float4"),
    ("c_float8", "float8"),
    ("c_float8_nan", "float8"),
    ("c_float8_inf", "float8"),
    ("c_float8_ninf", "float8"),
    ("c_float8_small", "float8"),
    ("c_float8_max", "float8"),
    ("c_bool_t", "bool"),
    ("c_bool_f", "bool"),
    ("c_text", "text"),
    ("c_text_empty", "text"),
    ("c_varchar", "varchar(20)"),
    ("c_char3", "char(3)"),
    ("c_uuid", "uuid"),
    ("c_mood", "mood"),
    ("c_date", "date"),
    ("c_date_inf", "date"),
    ("c_date_bc", "date"),
    ("c_time", "time"),
    ("c_timetz", "timetz"),
    ("c_timestamp", "timestamp"),
    ("c_timestamp_whole", "timestamp"),
    ("c_timestamp_ninf", "timestamp"),
    ("c_timestamptz", "timestamptz"),
    ("c_timestamptz_offset", "timestamptz"),
    ("c_interval", "interval"),
    ("c_interval_neg", "interval"),
    ("c_json", "json"),
    ("c_jsonb", "jsonb"),
    ("c_bytea", "bytea"),
    ("c_bytea_all", "bytea"),
    ("c_bytea_empty", "bytea"),
    ("c_int_arr", "int[]"),
    ("c_int_arr_empty", "int[]"),
    ("c_int_arr_2d", "int[]"),
    ("c_int_arr_lb", "int[]"),
    ("c_text_arr", "text[]"),
    ("c_numeric_arr", "numeric[]"),
    ("c_float8_arr", "float8[]"),
    ("c_bool_arr", "bool[]"),
    ("c_tstz_arr", "timestamptz[]"),
    ("c_bytea_arr", "bytea[]"),
    ("c_mood_arr", "mood[]"),
]

# The text column: quotes, backslashes, newline, carriage return, tab, a control character,
# Korean and an emoji (a 4-byte UTF-8 sequence, a surrogate pair in JSON's \u escapes).
AWKWARD_TEXT = "it's \"quoted\" \\ back\\slash\nnew line\r\ttab \x01ctl 한국어 😀"

# Row 1: SQL literal per column (id excluded). The INSERT runs in a session whose TimeZone
# is Asia/Seoul (UTC+9), so timestamptz values without an offset are Seoul time.
ROW1_SQL = {
    "c_int2": "-32768",
    "c_int4": "2147483647",
    "c_int8": "-9223372036854775808",
    "c_oid": "4294967295",
    "c_numeric": "1234567.891",
    "c_numeric_nan": "'NaN'",
    "c_numeric_big": "123456789012345678901234567890",
    "c_numeric_tiny": "-0.000000000000000000000000000001",
    "c_numeric_inf": "'Infinity'",
    "c_float4": "3.14",
    "c_float4_nan": "'NaN'",
    "c_float4_inf": "'Infinity'",
    "c_float4_ninf": "'-Infinity'",
    "c_float8": "2.718281828459045",
    "c_float8_nan": "'NaN'",
    "c_float8_inf": "'Infinity'",
    "c_float8_ninf": "'-Infinity'",
    "c_float8_small": "1.5e-7",
    "c_float8_max": "1.7976931348623157e308",
    "c_bool_t": "true",
    "c_bool_f": "false",
    "c_text": "E'" + AWKWARD_TEXT.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    .replace("\r", "\\r").replace("\t", "\\t").replace("\x01", "\\x01") + "'",
    "c_text_empty": "''",
    "c_varchar": "'varchar value'",
    "c_char3": "'ab'",
    "c_uuid": "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
    "c_mood": "'happy'",
    "c_date": "'2024-02-29'",
    "c_date_inf": "'infinity'",
    "c_date_bc": "'0044-03-15 BC'",
    "c_time": "'23:59:59.999999'",
    "c_timetz": "'10:00:00+05:30'",
    "c_timestamp": "'2024-02-29 12:34:56.789012'",
    "c_timestamp_whole": "'2024-01-31 10:00:00'",
    "c_timestamp_ninf": "'-infinity'",
    "c_timestamptz": "'2024-02-29 21:34:56.789012'",  # Seoul time: 12:34:56.789012 UTC
    "c_timestamptz_offset": "'2024-01-31 10:00:00.5+05:30'",
    "c_interval": "'1 year 2 months 3 days 4 hours 5 minutes 6.5 seconds'",
    "c_interval_neg": "'-1 day'",
    "c_json": """'{"a": [1, 2.5, "x"], "b": null}'""",
    "c_jsonb": """'{"b": null, "a": [1, 2.5, "x"]}'""",
    "c_bytea": "'\\x00ff10'",
    "c_bytea_all": "(SELECT decode(string_agg(lpad(to_hex(g), 2, '0'), '' ORDER BY g), 'hex')"
    " FROM generate_series(0, 255) g)",
    "c_bytea_empty": "''::bytea",
    "c_int_arr": "'{1,NULL,3}'",
    "c_int_arr_empty": "'{}'",
    "c_int_arr_2d": "'{{1,2},{3,NULL}}'",
    "c_int_arr_lb": "'[0:1]={7,8}'",
    "c_text_arr": "ARRAY['a,b', 'c d', 'e\"f', E'g\\\\h', 'NULL', NULL, '', '{x}', '한국어']",
    "c_numeric_arr": "'{1.50,NaN,-3}'",
    "c_float8_arr": "'{1.5,NaN,-Infinity}'",
    "c_bool_arr": "'{t,f,NULL}'",
    "c_tstz_arr": "ARRAY['2024-02-29 09:00:00+09', NULL]::timestamptz[]",
    "c_bytea_arr": "ARRAY['\\x0a0b'::bytea, NULL]",
    "c_mood_arr": "'{sad,happy}'",
}

# Row 3: values chosen to sit at the other end of some ranges.
ROW3_SQL = {
    "c_int2": "32767",
    "c_int4": "-2147483648",
    "c_int8": "9223372036854775807",
    "c_oid": "0",
    "c_numeric": "-0.500",
    "c_numeric_big": "-99999999999999999999999999999.999999999",
    "c_float8": "-1e-300",
    "c_float8_small": "0",
    "c_text": "'plain'",
    "c_interval": "'0'",
    "c_json": "'[]'",
    "c_jsonb": """'{"k\\"ey": "한국어", "n": 1.10}'""",
    "c_int_arr": "'{-1}'",
    "c_text_arr": "'{}'",
}


def wait_streaming(cfg, timeout=30):
    """Waits until capture holds its slot with a consistent start point: a change committed
    after this returns is captured."""

    def streaming():
        info = dstest.slot_info(cfg.slot)
        return info is not None and info["active"] and info["confirmed_flush_lsn"] is not None

    return dstest.wait_for(streaming, timeout=timeout, what=f"capture to stream from slot {cfg.slot}")


def insert_sql(row_id, values):
    cols = ["id"] + list(values)
    vals = [str(row_id)] + [values[c] for c in values]
    return f"INSERT INTO {TABLE} ({', '.join(cols)}) VALUES ({', '.join(vals)});\n"


class TypeMatrixCase(dstest.ServicesTestCase):
    """Creates TABLE with COLUMNS in the class database (after DB_SETUP_SQL, where {db} is
    the quoted database name), starts capture once, runs ROWS_SQL in one psql session, reads
    ROWS create events and stops capture (exit 0); self.after[id] is each row's "after".
    DEBEZIUM, when set, is the config's "debezium" object (the value settings)."""

    COLUMNS = None
    DB_SETUP_SQL = ""
    DEBEZIUM = None
    ROWS_SQL = None
    ROWS = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls.DB_SETUP_SQL:
            dstest.psql(cls.DB_SETUP_SQL.format(db=dstest.quote_ident(cls.db)), db=cls.db)
        dstest.psql(
            f"CREATE TABLE {TABLE} (\n  "
            + ",\n  ".join(f"{name} {sqltype}" for name, sqltype in cls.COLUMNS)
            + "\n);",
            db=cls.db,
        )
        token = dstest.unique_name("types")
        cls.cfg = dstest.write_capture_config(
            os.path.join(cls.work_dir, f"{token}.json"),
            cls.db,
            [TABLE],
            slot=token,
            publication=token,
            topic_prefix=f"ds.{token}",
            **({"debezium": cls.DEBEZIUM} if cls.DEBEZIUM else {}),
        )
        cls.capture = dstest.Capture(cls.cfg, os.path.join(cls.work_dir, f"{token}-capture.log"))
        cls.capture.start()
        try:
            wait_streaming(cls.cfg)
            dstest.psql(cls.ROWS_SQL, db=cls.db)
            cls.messages = dstest.consume([cls.cfg.topic(TABLE)], count=cls.ROWS, timeout_ms=60000)
            cls.capture.stop(expect_exit=0)
        except BaseException:
            cls.capture.kill()
            raise
        cls.after = {m["value"]["after"]["id"]: m["value"]["after"] for m in cls.messages}

    def check_columns(self, row_id, expected):
        after = self.after[row_id]
        for column, value in expected.items():
            with self.subTest(column=column):
                self.assertIn(column, after)
                self.assertEqual(after[column], value)
                # 1 == 1.0 == True in Python: the JSON type must match too.
                self.assertIs(type(after[column]), type(value))


class CaptureTypeMappingTest(TypeMatrixCase):
    """Every column of a type matrix table, as it arrives in the "after" of create events."""

    COLUMNS = COLUMNS
    DB_SETUP_SQL = "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')"
    ROWS_SQL = (
        "SET TimeZone = 'Asia/Seoul';\n"
        + insert_sql(1, ROW1_SQL)
        + f"INSERT INTO {TABLE} (id) VALUES (2);\n"
        + insert_sql(3, ROW3_SQL)
    )
    ROWS = 3

    # ---- shape ----

    def test_three_create_events_keyed_by_id(self):
        self.assertEqual([m["key"] for m in self.messages], [{"id": 1}, {"id": 2}, {"id": 3}])
        self.assertEqual([m["value"]["op"] for m in self.messages], ["c", "c", "c"])
        self.assertEqual([m["value"]["before"] for m in self.messages], [None, None, None])

    def test_after_holds_every_column_in_table_order(self):
        names = [name for name, _ in COLUMNS]
        for row_id in (1, 2, 3):
            self.assertEqual(list(self.after[row_id]), names)

    def test_null_row_has_null_in_every_column(self):
        self.assertEqual(
            self.after[2], dict([("id", 2)] + [(name, None) for name, _ in COLUMNS[1:]])
        )

    # ---- numbers ----

    def test_integers_are_json_numbers(self):
        self.check_columns(
            1,
            {
                "id": 1,
                "c_int2": -32768,
                "c_int4": 2147483647,
                "c_int8": -9223372036854775808,
                "c_oid": 4294967295,
            },
        )
        self.check_columns(
            3, {"c_int2": 32767, "c_int4": -2147483648, "c_int8": 9223372036854775807, "c_oid": 0}
        )

    def test_numeric_is_a_string_with_every_digit(self):
        self.check_columns(
            1,
            {
                "c_numeric": "1234567.891",
                "c_numeric_nan": "NaN",
                "c_numeric_big": "123456789012345678901234567890",
                "c_numeric_tiny": "-0.000000000000000000000000000001",
                "c_numeric_inf": "Infinity",
            },
        )
        self.check_columns(
            3,
            {"c_numeric": "-0.500", "c_numeric_big": "-99999999999999999999999999999.999999999"},
        )

    def test_floats_are_numbers_and_special_values_strings(self):
        self.check_columns(
            1,
            {
                "c_float4": 3.14,
                "c_float4_nan": "NaN",
                "c_float4_inf": "Infinity",
                "c_float4_ninf": "-Infinity",
                "c_float8": 2.718281828459045,
                "c_float8_nan": "NaN",
                "c_float8_inf": "Infinity",
                "c_float8_ninf": "-Infinity",
                "c_float8_small": 1.5e-07,
                "c_float8_max": 1.7976931348623157e308,
            },
        )
        self.check_columns(3, {"c_float8": -1e-300})
        # float8 0 is written "0" by PostgreSQL: a JSON integer.
        self.check_columns(3, {"c_float8_small": 0})

    def test_booleans(self):
        self.check_columns(1, {"c_bool_t": True, "c_bool_f": False})

    # ---- text ----

    def test_text_keeps_quotes_control_characters_and_unicode(self):
        self.check_columns(
            1,
            {
                "c_text": AWKWARD_TEXT,
                "c_text_empty": "",
                "c_varchar": "varchar value",
                "c_char3": "ab ",
            },
        )
        self.check_columns(3, {"c_text": "plain"})

    def test_uuid_and_enum_are_strings(self):
        self.check_columns(
            1, {"c_uuid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "c_mood": "happy"}
        )

    # ---- dates and times ----

    def test_dates(self):
        self.check_columns(
            1, {"c_date": "2024-02-29", "c_date_inf": "infinity", "c_date_bc": "0044-03-15 BC"}
        )

    def test_times(self):
        self.check_columns(1, {"c_time": "23:59:59.999999", "c_timetz": "10:00:00+05:30"})

    def test_timestamps_are_iso_8601(self):
        self.check_columns(
            1,
            {
                "c_timestamp": "2024-02-29T12:34:56.789012",
                "c_timestamp_whole": "2024-01-31T10:00:00",
                "c_timestamp_ninf": "-infinity",
            },
        )

    def test_timestamptz_written_in_another_time_zone_is_utc(self):
        self.check_columns(
            1,
            {
                "c_timestamptz": "2024-02-29T12:34:56.789012Z",
                "c_timestamptz_offset": "2024-01-31T04:30:00.5Z",
            },
        )

    def test_intervals_are_iso_8601_durations(self):
        self.check_columns(1, {"c_interval": "P1Y2M3DT4H5M6.5S", "c_interval_neg": "P-1D"})
        self.check_columns(3, {"c_interval": "PT0S"})

    # ---- documents and bytes ----

    def test_json_and_jsonb_are_strings_holding_the_document(self):
        self.check_columns(
            1,
            {
                "c_json": '{"a": [1, 2.5, "x"], "b": null}',  # json keeps the text as written
                "c_jsonb": '{"a": [1, 2.5, "x"], "b": null}',  # jsonb normalizes key order
            },
        )
        self.check_columns(3, {"c_json": "[]", "c_jsonb": '{"n": 1.10, "k\\"ey": "한국어"}'})
        self.assertEqual(json.loads(self.after[3]["c_jsonb"]), {"k\"ey": "한국어", "n": 1.1})

    def test_bytea_is_padded_base64_of_the_bytes(self):
        self.check_columns(1, {"c_bytea": "AP8Q", "c_bytea_empty": ""})
        self.assertEqual(base64.b64decode(self.after[1]["c_bytea"], validate=True), b"\x00\xff\x10")
        self.assertEqual(
            base64.b64decode(self.after[1]["c_bytea_all"], validate=True), bytes(range(256))
        )

    # ---- arrays ----

    def test_int_arrays_nest_per_dimension_with_null_elements(self):
        self.check_columns(
            1,
            {
                "c_int_arr": [1, None, 3],
                "c_int_arr_empty": [],
                "c_int_arr_2d": [[1, 2], [3, None]],
                "c_int_arr_lb": [7, 8],  # the [0:1] lower bound is dropped
            },
        )
        self.check_columns(3, {"c_int_arr": [-1]})

    def test_text_array_unquotes_elements_and_tells_null_from_the_string_null(self):
        self.check_columns(
            1, {"c_text_arr": ["a,b", "c d", 'e"f', "g\\h", "NULL", None, "", "{x}", "한국어"]}
        )
        self.check_columns(3, {"c_text_arr": []})

    def test_array_elements_are_mapped_as_their_type(self):
        self.check_columns(
            1,
            {
                "c_numeric_arr": ["1.50", "NaN", "-3"],
                "c_float8_arr": [1.5, "NaN", "-Infinity"],
                "c_bool_arr": [True, False, None],
                "c_tstz_arr": ["2024-02-29T00:00:00Z", None],
                "c_bytea_arr": ["Cgs=", None],
            },
        )

    def test_enum_array_is_the_array_literal(self):
        self.check_columns(1, {"c_mood_arr": "{sad,happy}"})


class CaptureTypeEdgeValuesTest(TypeMatrixCase):
    """Less common types and values at the edges of the documented forms."""

    COLUMNS = [
        ("id", "int PRIMARY KEY"),
        ("c_name", "name"),
        ("c_char", '"char"'),
        ("c_money", "money"),
        ("c_date_far", "date"),
        ("c_timestamp_far", "timestamp"),
        ("c_timestamp_bc", "timestamp"),
        ("c_timestamptz_inf", "timestamptz"),
        ("c_timestamptz_bc", "timestamptz"),
        ("c_interval_mixed", "interval"),
        ("c_text_2d", "text[]"),
        ("c_bpchar_arr", "char(2)[]"),
        ("c_uuid_arr", "uuid[]"),
        ("c_date_arr", "date[]"),
        ("c_interval_arr", "interval[]"),
        ("c_jsonb_arr", "jsonb[]"),
        ("c_timetz_arr", "timetz[]"),
        ("c_int8_arr", "int8[]"),
        ("c_float4_arr", "float4[]"),
        ("c_domain", "posint"),
        ("c_point", "point"),
        ("c_range", "int4range"),
        ("c_inet", "inet"),
        ("c_bits", "bit(4)"),
    ]
    DB_SETUP_SQL = "CREATE DOMAIN posint AS int CHECK (VALUE > 0)"
    ROWS_SQL = insert_sql(
        1,
        {
            "c_name": "'a name'",
            "c_char": "'x'",
            "c_money": "1234.56",
            "c_date_far": "'12345-06-07'",
            "c_timestamp_far": "'12345-06-07 08:09:10.5'",
            "c_timestamp_bc": "'0044-03-15 10:00:00 BC'",
            "c_timestamptz_inf": "'infinity'",
            "c_timestamptz_bc": "'0044-03-15 10:00:00+00 BC'",
            "c_interval_mixed": "'-1 year -2 mons +3 days -04:05:06.789'",
            "c_text_2d": """'{{"a b",NULL},{"}","\\\\"}}'""",
            "c_bpchar_arr": "'{a,bc}'",
            "c_uuid_arr": "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'",
            "c_date_arr": "'{2024-01-31,infinity}'",
            "c_interval_arr": "'{1 day,-00:00:01}'",
            "c_jsonb_arr": """ARRAY['{"a": 1}'::jsonb, '[1, "two"]', NULL]""",
            "c_timetz_arr": "'{10:00:00+05:30}'",
            "c_int8_arr": "'{-9223372036854775808,9223372036854775807}'",
            "c_float4_arr": "'{3.14,Infinity}'",
            "c_domain": "5",
            "c_point": "'(1,2.5)'",
            "c_range": "'[1,5)'",
            "c_inet": "'10.0.0.1/8'",
            "c_bits": "B'1010'",
        },
    )
    ROWS = 1

    def test_name_char_and_money_are_strings_of_their_text(self):
        money = dstest.psql_value("SELECT 1234.56::money", db=self.db)
        self.check_columns(1, {"c_name": "a name", "c_char": "x", "c_money": money})

    def test_years_past_9999_keep_their_digits(self):
        self.check_columns(
            1, {"c_date_far": "12345-06-07", "c_timestamp_far": "12345-06-07T08:09:10.5"}
        )

    def test_timestamps_before_year_1_keep_the_era_marker(self):
        self.check_columns(
            1,
            {
                "c_timestamp_bc": "0044-03-15 10:00:00 BC",
                "c_timestamptz_bc": "0044-03-15 10:00:00+00 BC",
                "c_timestamptz_inf": "infinity",
            },
        )

    def test_interval_with_mixed_signs(self):
        self.check_columns(1, {"c_interval_mixed": "P-1Y-2M3DT-4H-5M-6.789S"})

    def test_more_arrays_map_their_elements(self):
        self.check_columns(
            1,
            {
                "c_text_2d": [["a b", None], ["}", "\\"]],
                "c_bpchar_arr": ["a ", "bc"],
                "c_uuid_arr": ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"],
                "c_date_arr": ["2024-01-31", "infinity"],
                "c_interval_arr": ["P1D", "PT-1S"],
                "c_jsonb_arr": ['{"a": 1}', '[1, "two"]', None],
                "c_int8_arr": [-9223372036854775808, 9223372036854775807],
                "c_float4_arr": [3.14, "Infinity"],
            },
        )

    def test_domains_and_other_types_are_strings_of_their_text(self):
        # A domain over int is published with the domain's type: its text, as a string.
        self.check_columns(
            1,
            {"c_domain": "5", "c_point": "(1,2.5)", "c_range": "[1,5)", "c_inet": "10.0.0.1/8",
             "c_bits": "1010"},
        )

    def test_array_of_an_unlisted_type_is_the_array_literal(self):
        self.check_columns(1, {"c_timetz_arr": "{10:00:00+05:30}"})


class CaptureDatabaseSettingsTest(TypeMatrixCase):
    """Settings of the database (ALTER DATABASE ... SET) that change how PostgreSQL writes
    values as text do not change the messages: capture sets its own session."""

    COLUMNS = [
        ("id", "int PRIMARY KEY"),
        ("c_bytea", "bytea"),
        ("c_timestamptz", "timestamptz"),
        ("c_timestamp", "timestamp"),
        ("c_date", "date"),
        ("c_interval", "interval"),
        ("c_float8", "float8"),
    ]
    DB_SETUP_SQL = (
        "ALTER DATABASE {db} SET bytea_output = 'escape';"
        "ALTER DATABASE {db} SET TimeZone = 'America/New_York';"
        "ALTER DATABASE {db} SET DateStyle = 'SQL, DMY';"
        "ALTER DATABASE {db} SET IntervalStyle = 'postgres_verbose';"
        "ALTER DATABASE {db} SET extra_float_digits = -3;"
    )
    ROWS_SQL = insert_sql(
        1,
        {
            "c_bytea": "(SELECT decode(string_agg(lpad(to_hex(g), 2, '0'), '' ORDER BY g), 'hex')"
            " FROM generate_series(0, 255) g)",
            "c_timestamptz": "'2024-02-29 12:34:56.789012+00'",
            "c_timestamp": "'2024-02-29 12:34:56.789012'",
            "c_date": "'2024-02-29'",
            "c_interval": "'1 day 2 hours'",
            "c_float8": "2.718281828459045",
        },
    )
    ROWS = 1

    def test_the_sessions_of_this_database_see_the_settings(self):
        # Proof the settings are in force for new sessions, so the test below means something.
        self.assertEqual(dstest.psql_value("SHOW bytea_output", db=self.db), "escape")
        self.assertEqual(dstest.psql_value("SHOW DateStyle", db=self.db), "SQL, DMY")

    def test_bytea_is_still_base64_of_the_bytes(self):
        self.assertEqual(base64.b64decode(self.after[1]["c_bytea"], validate=True), bytes(range(256)))

    def test_dates_times_and_numbers_are_unchanged(self):
        self.check_columns(
            1,
            {
                "c_timestamptz": "2024-02-29T12:34:56.789012Z",
                "c_timestamp": "2024-02-29T12:34:56.789012",
                "c_date": "2024-02-29",
                "c_interval": "P1DT2H",
                "c_float8": 2.718281828459045,
            },
        )


class CaptureDebeziumDefaultSettingsTest(TypeMatrixCase):
    """Debezium's own defaults (adaptive, precise, numeric) and hex bytes, given in the
    "debezium" object: epoch counts by column precision, Connect decimals, microsecond
    intervals, in the key as in the value. Expected values are Debezium 3.6.1's for the same
    rows."""

    COLUMNS = [
        ("id", "int"),
        ("d", "date"),
        ("c_ts3", "timestamp(3)"),
        ("c_ts", "timestamp"),
        ("c_time", "time"),
        ("c_tstz0", "timestamptz(0)"),
        ("c_num", "numeric(10,2)"),
        ("c_num_free", "numeric"),
        ("c_money", "money"),
        ("c_bytea", "bytea"),
        ("c_interval", "interval"),
        ("c_date_arr", "date[]"),
        ("PRIMARY KEY", "(id, d)"),
    ]
    DEBEZIUM = {
        "time.precision.mode": "adaptive",
        "decimal.handling.mode": "precise",
        "binary.handling.mode": "hex",
        "interval.handling.mode": "numeric",
    }
    ROWS_SQL = insert_sql(
        1,
        {
            "d": "'2024-01-31'",
            "c_ts3": "'2024-01-31 10:00:00.123'",
            "c_ts": "'2024-01-31 10:00:00.123456'",
            "c_time": "'10:00:00.123'",
            "c_tstz0": "'2024-01-31 10:00:00+00'",
            "c_num": "1.50",
            "c_num_free": "1.50",
            "c_money": "1234.56",
            "c_bytea": "'\\xfbff'",
            "c_interval": "'1 mon'",
            "c_date_arr": "'{2024-01-31,NULL}'",
        },
    )
    ROWS = 1

    def test_key_columns_follow_the_settings(self):
        # 2024-01-31 is day 19753 since 1970-01-01.
        self.assertEqual(self.messages[0]["key"], {"id": 1, "d": 19753})

    def test_temporal_values_by_column_precision(self):
        self.check_columns(
            1,
            {
                "d": 19753,
                "c_ts3": 1706695200123,  # precision 3: milliseconds
                "c_ts": 1706695200123456,  # no precision (6): microseconds
                "c_time": 36000123000,
                "c_tstz0": "2024-01-31T10:00:00Z",  # ZonedTimestamp, no fraction digits
                "c_date_arr": [19753, None],
            },
        )

    def test_decimals_bytes_and_intervals(self):
        self.check_columns(
            1,
            {
                "c_num": "AJY=",  # unscaled 150 at scale 2
                "c_num_free": {"scale": 1, "value": "Dw=="},  # 15 at scale 1
                "c_money": "AeJA",  # 123456 at money.fraction.digits 2
                "c_bytea": "fbff",
                "c_interval": 2629800000000,  # a month of 365.25 / 12 days, in microseconds
            },
        )


class CaptureSqlAsciiTest(TypeMatrixCase):
    """In a SQL_ASCII database text may hold bytes that are not UTF-8: each becomes U+FFFD,
    so the message stays valid JSON."""

    COLUMNS = [("id", "int PRIMARY KEY"), ("c_text", "text")]
    ROWS_SQL = insert_sql(1, {"c_text": "E'caf\\xe9 ok \\xff\\xfe end'"}) + insert_sql(
        2, {"c_text": "E'\\xc3\\xa9 is UTF-8'"}
    )
    ROWS = 2

    @classmethod
    def setUpClass(cls):
        # The base class's database is UTF-8: make this class's one SQL_ASCII instead.
        cls._orig_create = dstest.create_database
        dstest.create_database = create_sql_ascii_database
        try:
            super().setUpClass()
        finally:
            dstest.create_database = cls._orig_create

    def test_database_is_sql_ascii(self):
        self.assertEqual(dstest.psql_value("SHOW server_encoding", db=self.db), "SQL_ASCII")

    def test_bytes_that_are_not_utf8_become_replacement_characters(self):
        self.check_columns(1, {"c_text": "caf\ufffd ok \ufffd\ufffd end"})

    def test_valid_utf8_passes_through(self):
        self.check_columns(2, {"c_text": "\u00e9 is UTF-8"})


def create_sql_ascii_database(prefix):
    name = dstest.unique_name("ds_" + prefix)
    dstest.psql(
        f"CREATE DATABASE {dstest.quote_ident(name)} ENCODING 'SQL_ASCII' TEMPLATE template0 "
        "LC_COLLATE 'C' LC_CTYPE 'C'"
    )
    return name


if __name__ == "__main__":
    unittest.main()
