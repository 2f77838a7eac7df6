/*
 * test_envelope.c: the Debezium key and value JSON, compared as whole texts.
 */
#include <jansson.h>

#include "dualsync/envelope.h"
#include "dualsync/typemap.h"
#include "ds_test.h"

/* public.users (id int4 key, name text, active bool, created timestamptz) */
static ds_column_t user_columns[] = {
    {"id", DS_OID_INT4, -1, true},
    {"name", DS_OID_TEXT, -1, false},
    {"active", DS_OID_BOOL, -1, false},
    {"created", DS_OID_TIMESTAMPTZ, -1, false},
};
static const ds_relation_t users = {16384, "public",     "users", DS_REPLIDENT_DEFAULT,
                                    4,     user_columns, 1};

/* public.pairs (a int4 key, b text key, note text): a composite key */
static ds_column_t pair_columns[] = {
    {"a", DS_OID_INT4, -1, true},
    {"b", DS_OID_TEXT, -1, true},
    {"note", DS_OID_TEXT, -1, false},
};
static const ds_relation_t pairs = {16390, "public",     "pairs", DS_REPLIDENT_DEFAULT,
                                    3,     pair_columns, 1};

#define TEXT(s)                                                                                    \
    {                                                                                              \
        DS_VALUE_TEXT, (s), sizeof(s) - 1                                                          \
    }
#define NULLV                                                                                      \
    {                                                                                              \
        DS_VALUE_NULL, NULL, 0                                                                     \
    }
#define TOAST                                                                                      \
    {                                                                                              \
        DS_VALUE_UNCHANGED_TOAST, NULL, 0                                                          \
    }

static ds_value_t row_values[] = {TEXT("42"), TEXT("Ann \"A\""), TEXT("t"),
                                  TEXT("2024-01-31 10:00:00.5+00")};
static const ds_tuple_t row = {4, row_values};

static ds_value_t row2_values[] = {TEXT("42"), TEXT("Ann B"), TEXT("f"), NULLV};
static const ds_tuple_t row2 = {4, row2_values};

/* What pgoutput sends as the old key under REPLICA IDENTITY DEFAULT. */
static ds_value_t oldkey_values[] = {TEXT("42"), NULLV, NULLV, NULLV};
static const ds_tuple_t oldkey = {4, oldkey_values};

static const ds_envelope_source_t source = {
    .version = "1.2.3",
    .name = "clinic",
    .db = "clinicdb",
    .snapshot = "false",
    .commit_time_us = INT64_C(1706695200123456),
    .xid = 770,
    .lsn = 23803720, /* 0/16B3748 */
    .last_commit_lsn = 0,
};

#define NOW_US INT64_C(1706695201999999)

/* The source object the tests expect for `source`. */
#define SOURCE_JSON                                                                                \
    "{\"version\":\"1.2.3\",\"connector\":\"postgresql\",\"name\":\"clinic\","                     \
    "\"ts_ms\":1706695200123,\"snapshot\":\"false\",\"db\":\"clinicdb\","                          \
    "\"sequence\":\"[null,\\\"23803720\\\"]\",\"ts_us\":1706695200123456,"                         \
    "\"ts_ns\":1706695200123456000,\"schema\":\"public\",\"table\":\"users\","                     \
    "\"txId\":770,\"lsn\":23803720,\"xmin\":null,\"origin\":null,\"origin_lsn\":null}"

/* What follows the source object when there is no transaction block, op aside. */
#define TS_JSON ",\"ts_ms\":1706695201999,\"ts_us\":1706695201999999,\"ts_ns\":1706695201999999000}"

#define ROW_JSON                                                                                   \
    "{\"id\":42,\"name\":\"Ann "                                                                   \
    "\\\"A\\\"\",\"active\":true,\"created\":\"2024-01-31T10:00:00.5Z\"}"
#define ROW2_JSON "{\"id\":42,\"name\":\"Ann B\",\"active\":false,\"created\":null}"

static ds_buf_t out = DS_BUF_INIT;
static char errstr[512];

/* Integers are read as reals: jansson rejects numbers beyond int64, which JSON allows. */
static bool json_valid(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_DECODE_INT_AS_REAL, &err);

    if (!j) {
        fprintf(stderr, "invalid JSON (%s): %s\n", err.text, text);
        return false;
    }
    json_decref(j);
    return true;
}

/* The key JSON, or NULL on failure (errstr set). */
static const char *key(const ds_relation_t *rel, const bool *mask, const ds_tuple_t *tup)
{
    ds_buf_reset(&out);
    errstr[0] = '\0';
    if (!ds_envelope_write_key(&out, rel, mask, tup, NULL, errstr, sizeof(errstr)))
        return NULL;
    DS_CHECK(json_valid(out.data));
    return out.data;
}

/* The value JSON, or NULL on failure (errstr set). */
static const char *value(char op, const ds_relation_t *rel, const ds_tuple_t *before,
                         const ds_tuple_t *after, const ds_envelope_source_t *src,
                         const char *placeholder)
{
    ds_envelope_options_t opts = {.unavailable_value_placeholder = placeholder};

    ds_buf_reset(&out);
    errstr[0] = '\0';
    if (!ds_envelope_write_value(&out, op, rel, before, after, src, &opts, NOW_US, errstr,
                                 sizeof(errstr)))
        return NULL;
    DS_CHECK(json_valid(out.data));
    return out.data;
}

/* ---- key ----------------------------------------------------------------------------- */

static void test_key_uses_is_key_flags_by_default(void)
{
    DS_CHECK_STR(key(&users, NULL, &row), "{\"id\":42}");
}

static void test_key_uses_mask_when_given(void)
{
    const bool mask[] = {true, false, true, false};

    DS_CHECK_STR(key(&users, mask, &row), "{\"id\":42,\"active\":true}");
}

static void test_composite_key_in_table_order(void)
{
    ds_value_t v[] = {TEXT("7"), TEXT("x y"), TEXT("n")};
    ds_tuple_t t = {3, v};

    DS_CHECK_STR(key(&pairs, NULL, &t), "{\"a\":7,\"b\":\"x y\"}");
}

static void test_key_from_old_key_tuple(void)
{
    DS_CHECK_STR(key(&users, NULL, &oldkey), "{\"id\":42}");
}

static void test_null_key_column_is_an_error_naming_it(void)
{
    ds_value_t v[] = {NULLV, TEXT("n"), TEXT("t"), NULLV};
    ds_tuple_t t = {4, v};

    DS_CHECK(key(&users, NULL, &t) == NULL);
    DS_CHECK(strstr(errstr, "public.users.id") != NULL);
    DS_CHECK(strstr(errstr, "NULL") != NULL);
}

static void test_unchanged_toast_key_column_is_an_error(void)
{
    ds_value_t v[] = {TOAST, TEXT("n"), TEXT("t"), NULLV};
    ds_tuple_t t = {4, v};

    DS_CHECK(key(&users, NULL, &t) == NULL);
    DS_CHECK(strstr(errstr, "public.users.id") != NULL);
    DS_CHECK(strstr(errstr, "TOAST") != NULL);
}

static void test_binary_key_column_is_an_error(void)
{
    ds_value_t v[] = {{DS_VALUE_BINARY, "\0\0\0\x2a", 4}, TEXT("n"), TEXT("t"), NULLV};
    ds_tuple_t t = {4, v};

    DS_CHECK(key(&users, NULL, &t) == NULL);
    DS_CHECK(strstr(errstr, "public.users.id") != NULL);
    DS_CHECK(strstr(errstr, "binary") != NULL);
}

static void test_malformed_key_value_is_an_error_naming_column(void)
{
    ds_value_t v[] = {TEXT("4x"), TEXT("n"), TEXT("t"), NULLV};
    ds_tuple_t t = {4, v};

    DS_CHECK(key(&users, NULL, &t) == NULL);
    DS_CHECK(strstr(errstr, "public.users.id") != NULL);
    DS_CHECK(strstr(errstr, "invalid int4 value \"4x\"") != NULL);
}

static void test_nullable_key_writes_null(void)
{
    const bool mask[] = {true, true, true, true};

    ds_buf_reset(&out);
    DS_CHECK(ds_envelope_write_key_nullable(&out, &users, mask, &row2, NULL, errstr, sizeof(errstr)));
    DS_CHECK_STR(out.data, ROW2_JSON);
}

static void test_key_of_tuple_with_wrong_width_is_an_error(void)
{
    ds_tuple_t t = {2, row_values};

    DS_CHECK(key(&users, NULL, &t) == NULL);
    DS_CHECK(strstr(errstr, "public.users") != NULL);
}

/* ---- value --------------------------------------------------------------------------- */

static void test_insert_value(void)
{
    DS_CHECK_STR(value('c', &users, NULL, &row, &source, NULL),
                 "{\"before\":null,\"after\":" ROW_JSON ",\"source\":" SOURCE_JSON
                 ",\"transaction\":null,\"op\":\"c\"" TS_JSON);
}

static void test_update_value_with_before(void)
{
    DS_CHECK_STR(value('u', &users, &row, &row2, &source, NULL),
                 "{\"before\":" ROW_JSON ",\"after\":" ROW2_JSON ",\"source\":" SOURCE_JSON
                 ",\"transaction\":null,\"op\":\"u\"" TS_JSON);
}

static void test_delete_value_with_old_key_before(void)
{
    DS_CHECK_STR(value('d', &users, &oldkey, NULL, &source, NULL),
                 "{\"before\":{\"id\":42,\"name\":null,\"active\":null,\"created\":null},"
                 "\"after\":null,\"source\":" SOURCE_JSON
                 ",\"transaction\":null,\"op\":\"d\"" TS_JSON);
}

static void test_read_value_for_backfill(void)
{
    ds_envelope_source_t src = source;

    src.snapshot = "true";
    DS_CHECK(value('r', &users, NULL, &row, &src, NULL) != NULL);
    DS_CHECK(strstr(out.data, "\"snapshot\":\"true\"") != NULL);
    DS_CHECK(strstr(out.data, "\"op\":\"r\"") != NULL);
}

static void test_truncate_value_has_no_images(void)
{
    DS_CHECK_STR(value('t', &users, &row, &row, &source, NULL),
                 "{\"before\":null,\"after\":null,\"source\":" SOURCE_JSON
                 ",\"transaction\":null,\"op\":\"t\"" TS_JSON);
}

static void test_sequence_holds_last_commit_lsn(void)
{
    ds_envelope_source_t src = source;

    src.last_commit_lsn = 23800000;
    DS_CHECK(value('c', &users, NULL, &row, &src, NULL) != NULL);
    DS_CHECK(strstr(out.data, ",\"sequence\":\"[\\\"23800000\\\",\\\"23803720\\\"]\",") != NULL);
}

static void test_lsn_above_int64_is_written_unsigned(void)
{
    ds_envelope_source_t src = source;

    src.lsn = UINT64_MAX;
    DS_CHECK(value('c', &users, NULL, &row, &src, NULL) != NULL);
    DS_CHECK(strstr(out.data, "\"lsn\":18446744073709551615,") != NULL);
}

static void test_missing_source_strings_are_null_and_snapshot_defaults_false(void)
{
    ds_envelope_source_t src = source;

    src.db = NULL;
    src.snapshot = NULL;
    DS_CHECK(value('c', &users, NULL, &row, &src, NULL) != NULL);
    DS_CHECK(strstr(out.data, "\"snapshot\":\"false\",\"db\":null,") != NULL);
}

static void test_unchanged_toast_gets_default_placeholder(void)
{
    ds_value_t v[] = {TEXT("42"), TOAST, TEXT("t"), NULLV};
    ds_tuple_t t = {4, v};

    DS_CHECK(value('u', &users, NULL, &t, &source, NULL) != NULL);
    DS_CHECK(strstr(out.data, "\"after\":{\"id\":42,\"name\":\"__debezium_unavailable_value\","
                              "\"active\":true,\"created\":null}") != NULL);
}

static void test_unchanged_toast_gets_custom_placeholder(void)
{
    ds_value_t v[] = {TEXT("42"), TOAST, TEXT("t"), NULLV};
    ds_tuple_t t = {4, v};

    DS_CHECK(value('u', &users, NULL, &t, &source, "<toast \"kept\">") != NULL);
    DS_CHECK(strstr(out.data, "\"name\":\"<toast \\\"kept\\\">\"") != NULL);
}

static void test_binary_value_is_an_error(void)
{
    ds_value_t v[] = {TEXT("42"), {DS_VALUE_BINARY, "abc", 3}, TEXT("t"), NULLV};
    ds_tuple_t t = {4, v};

    DS_CHECK(value('c', &users, NULL, &t, &source, NULL) == NULL);
    DS_CHECK(strstr(errstr, "public.users.name") != NULL);
    DS_CHECK(strstr(errstr, "binary") != NULL);
}

static void test_malformed_value_is_an_error_naming_column(void)
{
    ds_value_t v[] = {TEXT("42"), TEXT("n"), TEXT("yes"), NULLV};
    ds_tuple_t t = {4, v};

    DS_CHECK(value('c', &users, NULL, &t, &source, NULL) == NULL);
    DS_CHECK(strstr(errstr, "column public.users.active") != NULL);
    DS_CHECK(strstr(errstr, "invalid bool value \"yes\"") != NULL);
}

static void test_unknown_op_is_an_error(void)
{
    DS_CHECK(value('x', &users, NULL, &row, &source, NULL) == NULL);
    DS_CHECK(strstr(errstr, "public.users") != NULL);
}

static void test_value_tuple_with_wrong_width_is_an_error(void)
{
    ds_tuple_t t = {3, row_values};

    DS_CHECK(value('c', &users, NULL, &t, &source, NULL) == NULL);
    DS_CHECK(strstr(errstr, "3 values") != NULL);
}

static void test_names_needing_escapes_are_escaped(void)
{
    ds_column_t cols[] = {{"we\"ird", DS_OID_INT4, -1, true}};
    ds_relation_t rel = {1, "my schema", "t\\x", DS_REPLIDENT_DEFAULT, 1, cols, 1};
    ds_value_t v[] = {TEXT("1")};
    ds_tuple_t t = {1, v};

    DS_CHECK_STR(key(&rel, NULL, &t), "{\"we\\\"ird\":1}");
    DS_CHECK(value('c', &rel, NULL, &t, &source, NULL) != NULL);
    DS_CHECK(strstr(out.data, "\"schema\":\"my schema\",\"table\":\"t\\\\x\"") != NULL);
}

static void test_commit_time_before_1970_rounds_down(void)
{
    ds_envelope_source_t src = source;

    src.commit_time_us = -1500;
    DS_CHECK(value('c', &users, NULL, &row, &src, NULL) != NULL);
    DS_CHECK(strstr(out.data, "\"ts_ms\":-2,") != NULL);
}

/* public.readings (at timestamp(3) key, amount numeric(10,2), raw bytea): columns whose
 * values depend on the value settings and on the column's typmod. */
static ds_column_t reading_columns[] = {
    {"at", DS_OID_TIMESTAMP, 3, true},
    {"amount", DS_OID_NUMERIC, ((10 << 16) | 2) + 4, false},
    {"raw", DS_OID_BYTEA, -1, false},
};
static const ds_relation_t readings = {16400, "public",        "readings", DS_REPLIDENT_DEFAULT,
                                       3,     reading_columns, 1};
static ds_value_t reading_values[] = {TEXT("2024-01-31 10:00:00.123"), TEXT("1.50"),
                                      TEXT("\\xfbff")};
static const ds_tuple_t reading = {3, reading_values};

static void test_value_settings_shape_key_and_value_columns(void)
{
    ds_value_format_t format;
    ds_envelope_options_t opts = {.format = &format};

    ds_value_format_init(&format);

    format.debezium = true;
    format.time_precision = DS_TIME_ADAPTIVE;
    format.decimal_handling = DS_DECIMAL_PRECISE;
    format.binary_handling = DS_BINARY_HEX;

    /* timestamp(3) under adaptive: epoch milliseconds; numeric(10,2) precise: unscaled 150 */
    ds_buf_reset(&out);
    DS_CHECK(ds_envelope_write_key(&out, &readings, NULL, &reading, &format, errstr,
                                   sizeof(errstr)));
    DS_CHECK_STR(out.data, "{\"at\":1706695200123}");
    ds_buf_reset(&out);
    DS_CHECK(ds_envelope_write_value(&out, 'c', &readings, NULL, &reading, &source, &opts, NOW_US,
                                     errstr, sizeof(errstr)));
    DS_CHECK(strstr(out.data, "\"after\":{\"at\":1706695200123,\"amount\":\"AJY=\","
                              "\"raw\":\"fbff\"}") != NULL);
}

/* Without the "debezium" object: dualsync's classic values (typemap_classic.c). */
static void test_no_value_settings_means_classic_values(void)
{
    ds_buf_reset(&out);
    DS_CHECK(ds_envelope_write_key_nullable(&out, &readings, NULL, &reading, NULL, errstr,
                                            sizeof(errstr)));
    DS_CHECK_STR(out.data, "{\"at\":\"2024-01-31T10:00:00.123\"}");
    DS_CHECK_STR(value('c', &readings, NULL, &reading, &source, NULL) ? "" : errstr, "");
    DS_CHECK(strstr(out.data, "\"after\":{\"at\":\"2024-01-31T10:00:00.123\","
                              "\"amount\":\"1.50\",\"raw\":\"+/8=\"}") != NULL);
}

int main(void)
{
    DS_RUN(test_value_settings_shape_key_and_value_columns);
    DS_RUN(test_no_value_settings_means_classic_values);
    DS_RUN(test_key_uses_is_key_flags_by_default);
    DS_RUN(test_key_uses_mask_when_given);
    DS_RUN(test_composite_key_in_table_order);
    DS_RUN(test_key_from_old_key_tuple);
    DS_RUN(test_null_key_column_is_an_error_naming_it);
    DS_RUN(test_unchanged_toast_key_column_is_an_error);
    DS_RUN(test_binary_key_column_is_an_error);
    DS_RUN(test_malformed_key_value_is_an_error_naming_column);
    DS_RUN(test_nullable_key_writes_null);
    DS_RUN(test_key_of_tuple_with_wrong_width_is_an_error);
    DS_RUN(test_insert_value);
    DS_RUN(test_update_value_with_before);
    DS_RUN(test_delete_value_with_old_key_before);
    DS_RUN(test_read_value_for_backfill);
    DS_RUN(test_truncate_value_has_no_images);
    DS_RUN(test_sequence_holds_last_commit_lsn);
    DS_RUN(test_lsn_above_int64_is_written_unsigned);
    DS_RUN(test_missing_source_strings_are_null_and_snapshot_defaults_false);
    DS_RUN(test_unchanged_toast_gets_default_placeholder);
    DS_RUN(test_unchanged_toast_gets_custom_placeholder);
    DS_RUN(test_binary_value_is_an_error);
    DS_RUN(test_malformed_value_is_an_error_naming_column);
    DS_RUN(test_unknown_op_is_an_error);
    DS_RUN(test_value_tuple_with_wrong_width_is_an_error);
    DS_RUN(test_names_needing_escapes_are_escaped);
    DS_RUN(test_commit_time_before_1970_rounds_down);
    ds_buf_free(&out);
    return ds_test_report();
}
