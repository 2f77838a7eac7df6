/*
 * test_typemap_classic.c: PostgreSQL text output -> JSON, one behaviour per test, for the inputs the
 * capture session settings produce (DateStyle=ISO, IntervalStyle=iso_8601, TimeZone=UTC,
 * extra_float_digits=3). docs/type-mapping.md documents the same table.
 */
#include <jansson.h>
#include <stdlib.h>

#include "dualsync/typemap.h"
#include "ds_test.h"

/* Array type OIDs (pg_type.dat). */
enum {
    OID_BOOL_ARRAY = 1000,
    OID_BYTEA_ARRAY = 1001,
    OID_INT4_ARRAY = 1007,
    OID_TEXT_ARRAY = 1009,
    OID_FLOAT8_ARRAY = 1022,
    OID_NUMERIC_ARRAY = 1231,
    OID_UUID_ARRAY = 2951,
    OID_DATE_ARRAY = 1182,
    OID_TIMESTAMPTZ_ARRAY = 1185,
    OID_JSONB_ARRAY = 3807,
    OID_SOME_ENUM = 16390,       /* a user-defined type: not built in */
    OID_SOME_ENUM_ARRAY = 16389, /* its array type */
};

static ds_buf_t out = DS_BUF_INIT;
static char errstr[512];

/* The JSON for one value, or NULL when the mapping fails (errstr then says why). Every
 * successful result is also checked to parse as JSON. */
static const char *map_len(uint32_t oid, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *j;

    ds_buf_reset(&out);
    errstr[0] = '\0';
    if (!ds_typemap_append_json(&out, oid, text, len, errstr, sizeof(errstr)))
        return NULL;
    j = json_loads(out.data, JSON_DECODE_ANY, &jerr);
    if (!j) {
        fprintf(stderr, "mapping of \"%s\" is not JSON (%s): %s\n", text, jerr.text, out.data);
        return "(invalid JSON)";
    }
    json_decref(j);
    return out.data;
}

static const char *map(uint32_t oid, const char *text)
{
    return map_len(oid, text, strlen(text));
}

/* The mapping fails and the message contains each of the given fragments. */
static bool rejects(uint32_t oid, const char *text, const char *fragment1, const char *fragment2)
{
    if (map(oid, text) != NULL) {
        fprintf(stderr, "\"%s\" was accepted as %s\n", text, out.data);
        return false;
    }
    if ((fragment1 && !strstr(errstr, fragment1)) || (fragment2 && !strstr(errstr, fragment2))) {
        fprintf(stderr, "error \"%s\" lacks \"%s\" / \"%s\"\n", errstr, fragment1,
                fragment2 ? fragment2 : "");
        return false;
    }
    return true;
}

/* ---- numbers ------------------------------------------------------------------------- */

static void test_integers_become_numbers(void)
{
    DS_CHECK_STR(map(DS_OID_INT4, "42"), "42");
    DS_CHECK_STR(map(DS_OID_INT2, "-7"), "-7");
    DS_CHECK_STR(map(DS_OID_INT8, "9223372036854775807"), "9223372036854775807");
    DS_CHECK_STR(map(DS_OID_INT8, "-9223372036854775808"), "-9223372036854775808");
    DS_CHECK_STR(map(DS_OID_OID, "4294967295"), "4294967295");
    DS_CHECK_STR(map(DS_OID_INT4, "0"), "0");
}

static void test_integer_plus_sign_and_leading_zeros_are_normalised(void)
{
    DS_CHECK_STR(map(DS_OID_INT4, "+5"), "5");
    DS_CHECK_STR(map(DS_OID_INT4, "007"), "7");
    DS_CHECK_STR(map(DS_OID_INT4, "-00"), "-0");
}

static void test_malformed_integer_is_rejected(void)
{
    DS_CHECK(rejects(DS_OID_INT4, "4x2", "int4", "\"4x2\""));
    DS_CHECK(rejects(DS_OID_INT8, "", "int8", NULL));
    DS_CHECK(rejects(DS_OID_INT2, "-", "int2", NULL));
    DS_CHECK(rejects(DS_OID_INT4, "1.5", "int4", NULL));
    DS_CHECK(rejects(DS_OID_OID, " 1", "oid", NULL));
}

static void test_floats_become_numbers(void)
{
    DS_CHECK_STR(map(DS_OID_FLOAT8, "1.5e-07"), "1.5e-07");
    DS_CHECK_STR(map(DS_OID_FLOAT8, "1e+100"), "1e+100");
    DS_CHECK_STR(map(DS_OID_FLOAT4, "3.4028235e+38"), "3.4028235e+38");
    DS_CHECK_STR(map(DS_OID_FLOAT8, "-0"), "-0");
    DS_CHECK_STR(map(DS_OID_FLOAT8, "0.1"), "0.1");
    DS_CHECK_STR(map(DS_OID_FLOAT4, "123456"), "123456");
}

static void test_float_nan_and_infinities_become_strings(void)
{
    DS_CHECK_STR(map(DS_OID_FLOAT8, "NaN"), "\"NaN\"");
    DS_CHECK_STR(map(DS_OID_FLOAT8, "Infinity"), "\"Infinity\"");
    DS_CHECK_STR(map(DS_OID_FLOAT4, "-Infinity"), "\"-Infinity\"");
}

static void test_malformed_float_is_rejected(void)
{
    DS_CHECK(rejects(DS_OID_FLOAT8, "1.", "float8", NULL));
    DS_CHECK(rejects(DS_OID_FLOAT8, ".5", "float8", NULL));
    DS_CHECK(rejects(DS_OID_FLOAT8, "inf", "float8", NULL));
    DS_CHECK(rejects(DS_OID_FLOAT4, "1e", "float4", NULL));
    DS_CHECK(rejects(DS_OID_FLOAT8, "01", "float8", NULL));
}

static void test_numeric_keeps_exact_text_as_string(void)
{
    DS_CHECK_STR(map(DS_OID_NUMERIC, "123.4500"), "\"123.4500\"");
    DS_CHECK_STR(map(DS_OID_NUMERIC, "-0.5"), "\"-0.5\"");
    DS_CHECK_STR(map(DS_OID_NUMERIC, "100000000000000000000000000000001"),
                 "\"100000000000000000000000000000001\"");
    DS_CHECK_STR(map(DS_OID_NUMERIC, "NaN"), "\"NaN\"");
    DS_CHECK_STR(map(DS_OID_NUMERIC, "Infinity"), "\"Infinity\"");
}

static void test_malformed_numeric_is_rejected(void)
{
    DS_CHECK(rejects(DS_OID_NUMERIC, "1e5", "numeric", NULL));
    DS_CHECK(rejects(DS_OID_NUMERIC, "abc", "numeric", "\"abc\""));
    DS_CHECK(rejects(DS_OID_NUMERIC, "1.", "numeric", NULL));
}

static void test_money_is_a_string(void)
{
    DS_CHECK_STR(map(DS_OID_MONEY, "$1,234.56"), "\"$1,234.56\"");
}

/* ---- bool, bytea, json ------------------------------------------------------------------ */

static void test_bool_becomes_true_false(void)
{
    DS_CHECK_STR(map(DS_OID_BOOL, "t"), "true");
    DS_CHECK_STR(map(DS_OID_BOOL, "f"), "false");
}

static void test_malformed_bool_is_rejected(void)
{
    DS_CHECK(rejects(DS_OID_BOOL, "true", "bool", NULL));
    DS_CHECK(rejects(DS_OID_BOOL, "", "bool", NULL));
}

static void test_bytea_hex_becomes_base64(void)
{
    DS_CHECK_STR(map(DS_OID_BYTEA, "\\x0a0b"), "\"Cgs=\"");
    DS_CHECK_STR(map(DS_OID_BYTEA, "\\x666f6f626172"), "\"Zm9vYmFy\"");
    DS_CHECK_STR(map(DS_OID_BYTEA, "\\xFBFFBF"), "\"+/+/\"");
    DS_CHECK_STR(map(DS_OID_BYTEA, "\\x"), "\"\"");
}

static void test_large_bytea_matches_base64_of_its_bytes(void)
{
    /* Longer than the decoder's chunk, and not a multiple of 3 bytes. */
    enum { NBYTES = 2000 };
    uint8_t bytes[NBYTES];
    char text[2 + 2 * NBYTES + 1];
    ds_buf_t want = DS_BUF_INIT;

    strcpy(text, "\\x");
    for (int i = 0; i < NBYTES; i++) {
        bytes[i] = (uint8_t)(i * 7 + 3);
        snprintf(text + 2 + 2 * i, 3, "%02x", bytes[i]);
    }
    ds_buf_append_char(&want, '"');
    ds_buf_append_base64(&want, bytes, NBYTES);
    ds_buf_append_char(&want, '"');
    DS_CHECK_STR(map(DS_OID_BYTEA, text), want.data);
    ds_buf_free(&want);
}

static void test_bytea_escape_format_is_decoded(void)
{
    /* bytes 'a', '\', 0x01, 0xff -> base64 "YVwB/w==" */
    DS_CHECK_STR(map(DS_OID_BYTEA, "a\\\\\\001\\377"), "\"YVwB/w==\"");
    DS_CHECK_STR(map(DS_OID_BYTEA, ""), "\"\"");
}

static void test_malformed_bytea_is_rejected(void)
{
    DS_CHECK(rejects(DS_OID_BYTEA, "\\x0a0", "bytea", "odd"));
    DS_CHECK(rejects(DS_OID_BYTEA, "\\x0g", "bytea", "hex"));
    DS_CHECK(rejects(DS_OID_BYTEA, "a\\q", "bytea", NULL));
    DS_CHECK(rejects(DS_OID_BYTEA, "\\400", "bytea", NULL));
}

static void test_json_and_jsonb_become_strings_holding_the_document(void)
{
    DS_CHECK_STR(map(DS_OID_JSONB, "{\"a\": 1, \"b\": [true, null]}"),
                 "\"{\\\"a\\\": 1, \\\"b\\\": [true, null]}\"");
    DS_CHECK_STR(map(DS_OID_JSON, "[1,\n2]"), "\"[1,\\n2]\"");
}

/* ---- dates and times -------------------------------------------------------------------- */

static void test_date_is_kept(void)
{
    DS_CHECK_STR(map(DS_OID_DATE, "2024-01-31"), "\"2024-01-31\"");
    DS_CHECK_STR(map(DS_OID_DATE, "10000-01-01"), "\"10000-01-01\"");
}

static void test_date_infinity_and_bc_are_kept(void)
{
    DS_CHECK_STR(map(DS_OID_DATE, "infinity"), "\"infinity\"");
    DS_CHECK_STR(map(DS_OID_DATE, "-infinity"), "\"-infinity\"");
    DS_CHECK_STR(map(DS_OID_DATE, "0044-03-15 BC"), "\"0044-03-15 BC\"");
}

static void test_malformed_date_is_rejected(void)
{
    DS_CHECK(rejects(DS_OID_DATE, "2024/01/31", "date", "DateStyle"));
    DS_CHECK(rejects(DS_OID_DATE, "01-31-2024", "date", NULL));
    DS_CHECK(rejects(DS_OID_DATE, "2024-13-01", "date", NULL));
    DS_CHECK(rejects(DS_OID_DATE, "2024-01-31x", "date", NULL));
}

static void test_time_is_kept(void)
{
    DS_CHECK_STR(map(DS_OID_TIME, "10:00:00.123"), "\"10:00:00.123\"");
    DS_CHECK_STR(map(DS_OID_TIME, "24:00:00"), "\"24:00:00\"");
}

static void test_malformed_time_is_rejected(void)
{
    DS_CHECK(rejects(DS_OID_TIME, "10:00", "time", NULL));
    DS_CHECK(rejects(DS_OID_TIME, "10:00:00.", "time", NULL));
}

static void test_timetz_is_a_string(void)
{
    DS_CHECK_STR(map(DS_OID_TIMETZ, "10:00:00.5+05:30"), "\"10:00:00.5+05:30\"");
}

static void test_timestamp_gets_iso_t_separator(void)
{
    DS_CHECK_STR(map(DS_OID_TIMESTAMP, "2024-01-31 10:00:00.123456"),
                 "\"2024-01-31T10:00:00.123456\"");
    DS_CHECK_STR(map(DS_OID_TIMESTAMP, "2024-01-31 10:00:00"), "\"2024-01-31T10:00:00\"");
}

static void test_timestamp_infinity_and_bc_are_kept(void)
{
    DS_CHECK_STR(map(DS_OID_TIMESTAMP, "infinity"), "\"infinity\"");
    DS_CHECK_STR(map(DS_OID_TIMESTAMP, "-infinity"), "\"-infinity\"");
    DS_CHECK_STR(map(DS_OID_TIMESTAMP, "0044-03-15 10:00:00 BC"), "\"0044-03-15 10:00:00 BC\"");
}

static void test_malformed_timestamp_is_rejected(void)
{
    DS_CHECK(rejects(DS_OID_TIMESTAMP, "2024-01-31T10:00:00", "timestamp", NULL));
    DS_CHECK(rejects(DS_OID_TIMESTAMP, "2024-01-31", "timestamp", NULL));
    DS_CHECK(rejects(DS_OID_TIMESTAMP, "2024-01-31 10:00:00+00", "timestamp", NULL));
}

static void test_timestamptz_in_utc_ends_in_z(void)
{
    DS_CHECK_STR(map(DS_OID_TIMESTAMPTZ, "2024-01-31 10:00:00.123456+00"),
                 "\"2024-01-31T10:00:00.123456Z\"");
    DS_CHECK_STR(map(DS_OID_TIMESTAMPTZ, "2024-01-31 10:00:00+00:00"), "\"2024-01-31T10:00:00Z\"");
}

static void test_timestamptz_with_offset_is_converted_to_utc(void)
{
    DS_CHECK_STR(map(DS_OID_TIMESTAMPTZ, "2024-01-31 10:00:00.5+05:30"),
                 "\"2024-01-31T04:30:00.5Z\"");
    /* across midnight, into a leap day */
    DS_CHECK_STR(map(DS_OID_TIMESTAMPTZ, "2024-03-01 01:00:00+02"), "\"2024-02-29T23:00:00Z\"");
    /* across a year end, negative offset */
    DS_CHECK_STR(map(DS_OID_TIMESTAMPTZ, "2023-12-31 23:30:00.25-01"),
                 "\"2024-01-01T00:30:00.25Z\"");
    /* local mean time offsets carry seconds (Amsterdam before 1937: +00:19:32) */
    DS_CHECK_STR(map(DS_OID_TIMESTAMPTZ, "1900-01-01 00:00:00+00:19:32"),
                 "\"1899-12-31T23:40:28Z\"");
    DS_CHECK_STR(map(DS_OID_TIMESTAMPTZ, "20000-06-15 12:00:00-10"), "\"20000-06-15T22:00:00Z\"");
}

static void test_timestamptz_falling_before_year_one_keeps_its_offset(void)
{
    DS_CHECK_STR(map(DS_OID_TIMESTAMPTZ, "0001-01-01 00:30:00+01"),
                 "\"0001-01-01T00:30:00+01:00\"");
}

static void test_timestamptz_infinity_and_bc_are_kept(void)
{
    DS_CHECK_STR(map(DS_OID_TIMESTAMPTZ, "infinity"), "\"infinity\"");
    DS_CHECK_STR(map(DS_OID_TIMESTAMPTZ, "0044-03-15 10:00:00+00 BC"),
                 "\"0044-03-15 10:00:00+00 BC\"");
}

static void test_malformed_timestamptz_is_rejected(void)
{
    DS_CHECK(rejects(DS_OID_TIMESTAMPTZ, "2024-01-31 10:00:00", "timestamptz", NULL));
    DS_CHECK(rejects(DS_OID_TIMESTAMPTZ, "2024-01-31 10:00:00+5", "timestamptz", NULL));
    DS_CHECK(rejects(DS_OID_TIMESTAMPTZ, "2024-01-31 10:00:00+05:99", "timestamptz", NULL));
}

static void test_interval_is_kept_as_iso_8601(void)
{
    DS_CHECK_STR(map(DS_OID_INTERVAL, "P1Y2M3DT4H5M6.5S"), "\"P1Y2M3DT4H5M6.5S\"");
    DS_CHECK_STR(map(DS_OID_INTERVAL, "PT0S"), "\"PT0S\"");
    DS_CHECK_STR(map(DS_OID_INTERVAL, "P-1Y-2M3DT-4H"), "\"P-1Y-2M3DT-4H\"");
}

static void test_non_iso_interval_is_rejected(void)
{
    DS_CHECK(rejects(DS_OID_INTERVAL, "1 year 2 mons", "interval", "IntervalStyle"));
}

/* ---- strings and unknown types ------------------------------------------------------------ */

static void test_text_types_become_escaped_strings(void)
{
    DS_CHECK_STR(map(DS_OID_TEXT, "say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
    DS_CHECK_STR(map(DS_OID_VARCHAR, "caf\xc3\xa9"), "\"caf\xc3\xa9\"");
    DS_CHECK_STR(map(DS_OID_BPCHAR, "ab  "), "\"ab  \"");
    DS_CHECK_STR(map(DS_OID_NAME, "pg_class"), "\"pg_class\"");
    DS_CHECK_STR(map(DS_OID_CHAR, "x"), "\"x\"");
    DS_CHECK_STR(map(DS_OID_TEXT, ""), "\"\"");
}

static void test_uuid_is_a_string(void)
{
    DS_CHECK_STR(map(DS_OID_UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
                 "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"");
}

static void test_unknown_type_is_a_string(void)
{
    DS_CHECK_STR(map(OID_SOME_ENUM, "active"), "\"active\"");
}

/* ---- arrays --------------------------------------------------------------------------- */

static void test_array_element_types_of_builtin_arrays(void)
{
    static const uint32_t pairs[][2] = {
        {1005, DS_OID_INT2},     {1007, DS_OID_INT4},      {1016, DS_OID_INT8},
        {1009, DS_OID_TEXT},     {1015, DS_OID_VARCHAR},   {1014, DS_OID_BPCHAR},
        {1021, DS_OID_FLOAT4},   {1022, DS_OID_FLOAT8},    {1000, DS_OID_BOOL},
        {1231, DS_OID_NUMERIC},  {2951, DS_OID_UUID},      {1182, DS_OID_DATE},
        {1183, DS_OID_TIME},     {1115, DS_OID_TIMESTAMP}, {1185, DS_OID_TIMESTAMPTZ},
        {1187, DS_OID_INTERVAL}, {199, DS_OID_JSON},       {3807, DS_OID_JSONB},
        {1001, DS_OID_BYTEA},    {1028, DS_OID_OID},       {1003, DS_OID_NAME},
        {1002, DS_OID_CHAR},
    };

    for (size_t i = 0; i < DS_ARRAY_LEN(pairs); i++)
        DS_CHECK_INT(ds_typemap_array_element(pairs[i][0]), pairs[i][1]);
    DS_CHECK_INT(ds_typemap_array_element(DS_OID_INT4), 0);
    DS_CHECK_INT(ds_typemap_array_element(OID_SOME_ENUM_ARRAY), 0);
}

static void test_int_array_with_null(void)
{
    DS_CHECK_STR(map(OID_INT4_ARRAY, "{1,2,NULL}"), "[1,2,null]");
}

static void test_text_array_with_quotes_escapes_and_null(void)
{
    DS_CHECK_STR(map(OID_TEXT_ARRAY, "{\"a b\",\"x\\\"y\",NULL,plain,\"back\\\\slash\"}"),
                 "[\"a b\",\"x\\\"y\",null,\"plain\",\"back\\\\slash\"]");
}

static void test_quoted_null_in_array_is_the_string(void)
{
    DS_CHECK_STR(map(OID_TEXT_ARRAY, "{\"NULL\",null}"), "[\"NULL\",null]");
    DS_CHECK_STR(map(OID_TEXT_ARRAY, "{\"\"}"), "[\"\"]");
}

static void test_empty_array(void)
{
    DS_CHECK_STR(map(OID_INT4_ARRAY, "{}"), "[]");
}

static void test_multidimensional_array_nests(void)
{
    DS_CHECK_STR(map(OID_INT4_ARRAY, "{{1,2},{3,4}}"), "[[1,2],[3,4]]");
    DS_CHECK_STR(map(OID_TEXT_ARRAY, "{{{a},{NULL}}}"), "[[[\"a\"],[null]]]");
}

static void test_array_dimension_decoration_is_skipped(void)
{
    DS_CHECK_STR(map(OID_INT4_ARRAY, "[0:1]={1,2}"), "[1,2]");
    DS_CHECK_STR(map(OID_INT4_ARRAY, "[-1:0][1:1]={{1},{2}}"), "[[1],[2]]");
}

static void test_array_elements_use_the_element_mapping(void)
{
    DS_CHECK_STR(map(OID_FLOAT8_ARRAY, "{1.5,NaN,-Infinity}"), "[1.5,\"NaN\",\"-Infinity\"]");
    DS_CHECK_STR(map(OID_BOOL_ARRAY, "{t,f,NULL}"), "[true,false,null]");
    DS_CHECK_STR(map(OID_NUMERIC_ARRAY, "{1.50,NaN}"), "[\"1.50\",\"NaN\"]");
    DS_CHECK_STR(map(OID_TIMESTAMPTZ_ARRAY, "{\"2024-01-31 10:00:00+00\",NULL}"),
                 "[\"2024-01-31T10:00:00Z\",null]");
    DS_CHECK_STR(map(OID_DATE_ARRAY, "{2024-01-31,infinity}"), "[\"2024-01-31\",\"infinity\"]");
    DS_CHECK_STR(map(OID_UUID_ARRAY, "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"),
                 "[\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"]");
}

static void test_bytea_array_elements_become_base64(void)
{
    /* array_out quotes the element and doubles its backslash: {"\\x0a0b"} */
    DS_CHECK_STR(map(OID_BYTEA_ARRAY, "{\"\\\\x0a0b\",NULL}"), "[\"Cgs=\",null]");
}

static void test_jsonb_array_elements_become_strings(void)
{
    DS_CHECK_STR(map(OID_JSONB_ARRAY, "{\"{\\\"a\\\": 1}\",\"[]\"}"),
                 "[\"{\\\"a\\\": 1}\",\"[]\"]");
}

static void test_unknown_array_type_is_the_literal_as_string(void)
{
    DS_CHECK_STR(map(OID_SOME_ENUM_ARRAY, "{a,\"b c\"}"), "\"{a,\\\"b c\\\"}\"");
}

static void test_malformed_arrays_are_rejected(void)
{
    DS_CHECK(rejects(OID_INT4_ARRAY, "{1,2", "int4[]", "unexpected end"));
    DS_CHECK(rejects(OID_INT4_ARRAY, "1,2}", "int4[]", "'{'"));
    DS_CHECK(rejects(OID_INT4_ARRAY, "{1,,2}", "int4[]", "empty"));
    DS_CHECK(rejects(OID_TEXT_ARRAY, "{\"abc}", "text[]", "unterminated"));
    DS_CHECK(rejects(OID_INT4_ARRAY, "{1,2}x", "int4[]", "after"));
    DS_CHECK(rejects(OID_INT4_ARRAY, "{{1},2}", "int4[]", "among"));
    DS_CHECK(rejects(OID_INT4_ARRAY, "{1,{2}}", "int4[]", NULL));
    DS_CHECK(rejects(OID_INT4_ARRAY, "[0:1{1,2}", "int4[]", "dimension"));
    DS_CHECK(rejects(OID_INT4_ARRAY, "[0:1]{1,2}", "int4[]", "'='"));
    DS_CHECK(rejects(OID_INT4_ARRAY, "{{{{{{{1}}}}}}}", "int4[]", "dimensions"));
    DS_CHECK(rejects(OID_TEXT_ARRAY, "{a\"b}", "text[]", "unquoted"));
    DS_CHECK(rejects(OID_INT4_ARRAY, "", "int4[]", NULL));
}

static void test_bad_array_element_names_array_and_element_type(void)
{
    DS_CHECK(rejects(OID_INT4_ARRAY, "{1,x}", "int4[]", "invalid int4 value \"x\""));
    DS_CHECK(rejects(OID_BOOL_ARRAY, "{t,yes}", "bool[]", "invalid bool value \"yes\""));
}

static void test_error_excerpt_is_shortened(void)
{
    char text[200];

    memset(text, '9', sizeof(text) - 2);
    text[sizeof(text) - 2] = 'x';
    text[sizeof(text) - 1] = '\0';
    DS_CHECK(rejects(DS_OID_INT8, text, "int8", "...\""));
    DS_CHECK(strlen(errstr) < 120);
}

int main(void)
{
    DS_RUN(test_integers_become_numbers);
    DS_RUN(test_integer_plus_sign_and_leading_zeros_are_normalised);
    DS_RUN(test_malformed_integer_is_rejected);
    DS_RUN(test_floats_become_numbers);
    DS_RUN(test_float_nan_and_infinities_become_strings);
    DS_RUN(test_malformed_float_is_rejected);
    DS_RUN(test_numeric_keeps_exact_text_as_string);
    DS_RUN(test_malformed_numeric_is_rejected);
    DS_RUN(test_money_is_a_string);
    DS_RUN(test_bool_becomes_true_false);
    DS_RUN(test_malformed_bool_is_rejected);
    DS_RUN(test_bytea_hex_becomes_base64);
    DS_RUN(test_large_bytea_matches_base64_of_its_bytes);
    DS_RUN(test_bytea_escape_format_is_decoded);
    DS_RUN(test_malformed_bytea_is_rejected);
    DS_RUN(test_json_and_jsonb_become_strings_holding_the_document);
    DS_RUN(test_date_is_kept);
    DS_RUN(test_date_infinity_and_bc_are_kept);
    DS_RUN(test_malformed_date_is_rejected);
    DS_RUN(test_time_is_kept);
    DS_RUN(test_malformed_time_is_rejected);
    DS_RUN(test_timetz_is_a_string);
    DS_RUN(test_timestamp_gets_iso_t_separator);
    DS_RUN(test_timestamp_infinity_and_bc_are_kept);
    DS_RUN(test_malformed_timestamp_is_rejected);
    DS_RUN(test_timestamptz_in_utc_ends_in_z);
    DS_RUN(test_timestamptz_with_offset_is_converted_to_utc);
    DS_RUN(test_timestamptz_falling_before_year_one_keeps_its_offset);
    DS_RUN(test_timestamptz_infinity_and_bc_are_kept);
    DS_RUN(test_malformed_timestamptz_is_rejected);
    DS_RUN(test_interval_is_kept_as_iso_8601);
    DS_RUN(test_non_iso_interval_is_rejected);
    DS_RUN(test_text_types_become_escaped_strings);
    DS_RUN(test_uuid_is_a_string);
    DS_RUN(test_unknown_type_is_a_string);
    DS_RUN(test_array_element_types_of_builtin_arrays);
    DS_RUN(test_int_array_with_null);
    DS_RUN(test_text_array_with_quotes_escapes_and_null);
    DS_RUN(test_quoted_null_in_array_is_the_string);
    DS_RUN(test_empty_array);
    DS_RUN(test_multidimensional_array_nests);
    DS_RUN(test_array_dimension_decoration_is_skipped);
    DS_RUN(test_array_elements_use_the_element_mapping);
    DS_RUN(test_bytea_array_elements_become_base64);
    DS_RUN(test_jsonb_array_elements_become_strings);
    DS_RUN(test_unknown_array_type_is_the_literal_as_string);
    DS_RUN(test_malformed_arrays_are_rejected);
    DS_RUN(test_bad_array_element_names_array_and_element_type);
    DS_RUN(test_error_excerpt_is_shortened);
    ds_buf_free(&out);
    return ds_test_report();
}
