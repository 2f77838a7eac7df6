/*
 * test_typemap.c: PostgreSQL text output -> JSON, one behaviour per test, for the inputs the
 * capture session settings produce (DateStyle=ISO, IntervalStyle=iso_8601, TimeZone=UTC,
 * extra_float_digits=3, lc_monetary=C), under dualsync's defaults and under each of
 * Debezium's value settings. docs/type-mapping.md documents the same table.
 *
 * The expected values are Debezium 3.6.1.Final's output for the same input (its
 * PostgresValueConverter through JsonConverter), and each is also worked out by hand in a
 * comment: day counts from 1970-01-01, unscaled values in two's complement, and so on.
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
    OID_TIMESTAMP_ARRAY = 1115,
    OID_INTERVAL_ARRAY = 1187,
    OID_TIMETZ_ARRAY = 1270,
    OID_JSONB_ARRAY = 3807,
    OID_SOME_ENUM = 16390,       /* a user-defined type: not built in */
    OID_SOME_ENUM_ARRAY = 16389, /* its array type */
};

static ds_buf_t out = DS_BUF_INIT;
static char errstr[512];

/* Value settings for the mode tests: Debezium's messages under the settings a test sets. */
static ds_value_format_t fmt(ds_time_precision_t time, ds_decimal_handling_t decimal,
                             ds_binary_handling_t binary, ds_interval_handling_t interval)
{
    ds_value_format_t f;

    ds_value_format_init(&f);

    f.debezium = true;
    f.time_precision = time;
    f.decimal_handling = decimal;
    f.binary_handling = binary;
    f.interval_handling = interval;
    return f;
}

/* The JSON of one value under format f for a column of that typmod, or NULL on failure. */
static const char *map_as(ds_value_format_t f, uint32_t oid, int32_t typmod, const char *text)
{
    json_error_t jerr;
    json_t *j;

    ds_buf_reset(&out);
    errstr[0] = '\0';
    if (!ds_typemap_append_value(&out, oid, typmod, &f, text, strlen(text), errstr,
                                 sizeof(errstr)))
        return NULL;
    j = json_loads(out.data, JSON_DECODE_ANY, &jerr);
    if (!j) {
        fprintf(stderr, "mapping of \"%s\" is not JSON (%s): %s\n", text, jerr.text, out.data);
        return "(invalid JSON)";
    }
    json_decref(j);
    return out.data;
}

#define TIME(mode) fmt(mode, DS_DECIMAL_STRING, DS_BINARY_BYTES, DS_INTERVAL_STRING)
#define DECIMAL(mode) fmt(DS_TIME_ISOSTRING, mode, DS_BINARY_BYTES, DS_INTERVAL_STRING)
#define BINARY(mode) fmt(DS_TIME_ISOSTRING, DS_DECIMAL_STRING, mode, DS_INTERVAL_STRING)
#define INTERVAL(mode) fmt(DS_TIME_ISOSTRING, DS_DECIMAL_STRING, DS_BINARY_BYTES, mode)

/* The typmod of numeric(p,s) (PostgreSQL's make_numeric_typmod). */
#define NUMERIC_TYPMOD(p, s) ((((p) << 16) | (s)) + 4)

/* Debezium's messages under isostring, string, bytes and string: the forms most tests below
 * check (dualsync's classic values are tested in test_typemap_classic.c). */
static const ds_value_format_t debezium_strings = {
    .debezium = true,
    .time_precision = DS_TIME_ISOSTRING,
    .decimal_handling = DS_DECIMAL_STRING,
    .binary_handling = DS_BINARY_BYTES,
    .interval_handling = DS_INTERVAL_STRING,
    .money_fraction_digits = 2,
};

/* The JSON for one value under debezium_strings, or NULL when the mapping fails (errstr then
 * says why). Every successful result is also checked to parse as JSON. */
static const char *map_len(uint32_t oid, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *j;

    ds_buf_reset(&out);
    errstr[0] = '\0';
    if (!ds_typemap_append_value(&out, oid, -1, &debezium_strings, text, len, errstr,
                                 sizeof(errstr)))
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

static void test_floats_become_numbers_as_java_writes_them(void)
{
    /* Double.toString / Float.toString: plain with at least one fraction digit from 10^-3 up
     * to 10^7, else d.dddE<n>. The digits are PostgreSQL's (both shortest round-trip). */
    DS_CHECK_STR(map(DS_OID_FLOAT8, "1.5e-07"), "1.5E-7");
    DS_CHECK_STR(map(DS_OID_FLOAT8, "1e+100"), "1.0E100");
    DS_CHECK_STR(map(DS_OID_FLOAT4, "3.4028235e+38"), "3.4028235E38");
    DS_CHECK_STR(map(DS_OID_FLOAT8, "-0"), "-0.0");
    DS_CHECK_STR(map(DS_OID_FLOAT8, "0.1"), "0.1");
    DS_CHECK_STR(map(DS_OID_FLOAT4, "123456"), "123456.0");
    DS_CHECK_STR(map(DS_OID_FLOAT8, "12345678"), "1.2345678E7");
    DS_CHECK_STR(map(DS_OID_FLOAT8, "0.001"), "0.001");
    DS_CHECK_STR(map(DS_OID_FLOAT8, "0.0001"), "1.0E-4");
    DS_CHECK_STR(map(DS_OID_FLOAT8, "-2.718281828459045"), "-2.718281828459045");
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
}

static void test_numeric_nan_and_infinities_are_named_as_debezium_names_them(void)
{
    DS_CHECK_STR(map(DS_OID_NUMERIC, "NaN"), "\"NAN\"");
    DS_CHECK_STR(map(DS_OID_NUMERIC, "Infinity"), "\"POSITIVE_INFINITY\"");
    DS_CHECK_STR(map(DS_OID_NUMERIC, "-Infinity"), "\"NEGATIVE_INFINITY\"");
}

static void test_numeric_double_is_a_java_double(void)
{
    ds_value_format_t f = DECIMAL(DS_DECIMAL_DOUBLE);

    DS_CHECK_STR(map_as(f, DS_OID_NUMERIC, -1, "123.4500"), "123.45");
    DS_CHECK_STR(map_as(f, DS_OID_NUMERIC, -1, "100"), "100.0");
    DS_CHECK_STR(map_as(f, DS_OID_NUMERIC, -1, "123456789012345678901234567890"),
                 "1.2345678901234568E29");
    DS_CHECK_STR(map_as(f, DS_OID_NUMERIC, -1, "-0.000001"), "-1.0E-6");
    /* Double.NaN and the infinities, which Jackson writes as strings */
    DS_CHECK_STR(map_as(f, DS_OID_NUMERIC, -1, "NaN"), "\"NaN\"");
    DS_CHECK_STR(map_as(f, DS_OID_NUMERIC, -1, "-Infinity"), "\"-Infinity\"");
}

static void test_numeric_precise_with_scale_is_a_connect_decimal(void)
{
    ds_value_format_t f = DECIMAL(DS_DECIMAL_PRECISE);
    int32_t typmod = NUMERIC_TYPMOD(10, 2);

    /* unscaled 150 = 0x0096: a leading 00 keeps it positive -> "AJY=" */
    DS_CHECK_STR(map_as(f, DS_OID_NUMERIC, typmod, "1.50"), "\"AJY=\"");
    /* -150 = 0xff6a -> "/2o=" */
    DS_CHECK_STR(map_as(f, DS_OID_NUMERIC, typmod, "-1.50"), "\"/2o=\"");
    /* 128 = 0x0080, -128 = 0x80 (one byte), -129 = 0xff7f */
    DS_CHECK_STR(map_as(f, DS_OID_NUMERIC, typmod, "1.28"), "\"AIA=\"");
    DS_CHECK_STR(map_as(f, DS_OID_NUMERIC, typmod, "-1.28"), "\"gA==\"");
    DS_CHECK_STR(map_as(f, DS_OID_NUMERIC, typmod, "-1.29"), "\"/38=\"");
    DS_CHECK_STR(map_as(f, DS_OID_NUMERIC, typmod, "0.00"), "\"AA==\"");
    /* fewer fraction digits than the scale: padded (1.5 at scale 2 is 150) */
    DS_CHECK_STR(map_as(f, DS_OID_NUMERIC, typmod, "1.5"), "\"AJY=\"");
    DS_CHECK(map_as(f, DS_OID_NUMERIC, typmod, "1.505") == NULL);
}

static void test_numeric_precise_without_scale_is_a_variable_scale_decimal(void)
{
    ds_value_format_t f = DECIMAL(DS_DECIMAL_PRECISE);

    /* trailing zeros stripped: 1.50 -> 15 at scale 1 (0x0f) */
    DS_CHECK_STR(map_as(f, DS_OID_NUMERIC, -1, "1.50"), "{\"scale\":1,\"value\":\"Dw==\"}");
    DS_CHECK_STR(map_as(f, DS_OID_NUMERIC, -1, "100"), "{\"scale\":0,\"value\":\"ZA==\"}");
    DS_CHECK_STR(map_as(f, DS_OID_NUMERIC, -1, "-0.000001"),
                 "{\"scale\":6,\"value\":\"/w==\"}");
    DS_CHECK_STR(map_as(f, DS_OID_NUMERIC, -1, "0.00"), "{\"scale\":0,\"value\":\"AA==\"}");
    /* 123456789012345678901234567890 = 0x018ee90ff6c373e0ee4e3f0ad2 */
    DS_CHECK_STR(map_as(f, DS_OID_NUMERIC, -1, "123456789012345678901234567890"),
                 "{\"scale\":0,\"value\":\"AY7pD/bDc+DuTj8K0g==\"}");
}

static void test_numeric_precise_keeps_nan_as_string_where_debezium_writes_null(void)
{
    ds_value_format_t f = DECIMAL(DS_DECIMAL_PRECISE);

    DS_CHECK_STR(map_as(f, DS_OID_NUMERIC, -1, "NaN"), "\"NAN\"");
    DS_CHECK_STR(map_as(f, DS_OID_NUMERIC, NUMERIC_TYPMOD(10, 2), "Infinity"),
                 "\"POSITIVE_INFINITY\"");
}

static void test_large_unscaled_value_is_encoded_whole(void)
{
    /* 10^400 - 1 needs 1329 bits: more than the stack buffers hold. Its two's complement is
     * 0x00 then 166 bytes; its negation starts 0xff. */
    char digits[402];
    ds_value_format_t f = DECIMAL(DS_DECIMAL_PRECISE);

    memset(digits, '9', 400);
    digits[400] = '\0';
    DS_CHECK(map_as(f, DS_OID_NUMERIC, -1, digits) != NULL);
    DS_CHECK(strncmp(out.data, "{\"scale\":0,\"value\":\"", 20) == 0);
    /* base64 of 167 bytes is 224 characters */
    DS_CHECK_INT(out.len, 20 + 224 + 2);
}

static void test_malformed_numeric_is_rejected(void)
{
    DS_CHECK(rejects(DS_OID_NUMERIC, "1e5", "numeric", NULL));
    DS_CHECK(rejects(DS_OID_NUMERIC, "abc", "numeric", "\"abc\""));
    DS_CHECK(rejects(DS_OID_NUMERIC, "1.", "numeric", NULL));
}

static void test_money_is_a_decimal_string(void)
{
    DS_CHECK_STR(map(DS_OID_MONEY, "$1,234.56"), "\"1234.56\"");
    DS_CHECK_STR(map(DS_OID_MONEY, "-$1,234.50"), "\"-1234.50\"");
    DS_CHECK_STR(map(DS_OID_MONEY, "$0.05"), "\"0.05\"");
}

static void test_money_double_and_precise(void)
{
    ds_value_format_t f = DECIMAL(DS_DECIMAL_PRECISE);

    DS_CHECK_STR(map_as(DECIMAL(DS_DECIMAL_DOUBLE), DS_OID_MONEY, -1, "-$1,234.50"), "-1234.5");
    /* 123456 = 0x01e240 */
    DS_CHECK_STR(map_as(f, DS_OID_MONEY, -1, "$1,234.56"), "\"AeJA\"");
    /* money.fraction.digits 0 rounds half up: 1235 = 0x04d3, -0.50 -> -1 = 0xff */
    f.money_fraction_digits = 0;
    DS_CHECK_STR(map_as(f, DS_OID_MONEY, -1, "$1,234.56"), "\"BNM=\"");
    DS_CHECK_STR(map_as(f, DS_OID_MONEY, -1, "-$0.50"), "\"/w==\"");
    /* 4 digits: 0.05 -> 500 = 0x01f4 */
    f.money_fraction_digits = 4;
    DS_CHECK_STR(map_as(f, DS_OID_MONEY, -1, "$0.05"), "\"AfQ=\"");
}

static void test_malformed_money_is_rejected(void)
{
    DS_CHECK(rejects(DS_OID_MONEY, "1.234,56 EUR", "money", "lc_monetary"));
    DS_CHECK(rejects(DS_OID_MONEY, "$", "money", NULL));
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

static void test_bytea_binary_handling_modes(void)
{
    /* bytes 0xfb 0xff: base64 "+/8=", URL-safe "-_8=" */
    DS_CHECK_STR(map_as(BINARY(DS_BINARY_BYTES), DS_OID_BYTEA, -1, "\\xfbff"), "\"+/8=\"");
    DS_CHECK_STR(map_as(BINARY(DS_BINARY_BASE64), DS_OID_BYTEA, -1, "\\xfbff"), "\"+/8=\"");
    DS_CHECK_STR(map_as(BINARY(DS_BINARY_BASE64_URL_SAFE), DS_OID_BYTEA, -1, "\\xfbff"),
                 "\"-_8=\"");
    DS_CHECK_STR(map_as(BINARY(DS_BINARY_HEX), DS_OID_BYTEA, -1, "\\xFBFF0a"), "\"fbff0a\"");
    DS_CHECK_STR(map_as(BINARY(DS_BINARY_HEX), DS_OID_BYTEA, -1, "a\\\\"), "\"615c\"");
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

static void test_date_is_an_iso_date(void)
{
    DS_CHECK_STR(map(DS_OID_DATE, "2024-01-31"), "\"2024-01-31Z\"");
    DS_CHECK_STR(map(DS_OID_DATE, "10000-01-01"), "\"+10000-01-01Z\"");
}

static void test_bc_date_uses_astronomical_years(void)
{
    /* 44 BC is year -43, 1 BC year 0 */
    DS_CHECK_STR(map(DS_OID_DATE, "0044-03-15 BC"), "\"-0043-03-15Z\"");
    DS_CHECK_STR(map(DS_OID_DATE, "0001-01-01 BC"), "\"0000-01-01Z\"");
}

static void test_date_infinity_is_kept_as_a_string(void)
{
    DS_CHECK_STR(map(DS_OID_DATE, "infinity"), "\"infinity\"");
    DS_CHECK_STR(map(DS_OID_DATE, "-infinity"), "\"-infinity\"");
}

static void test_date_is_days_since_1970_in_other_modes(void)
{
    static const ds_time_precision_t modes[] = {
        DS_TIME_ADAPTIVE,     DS_TIME_ADAPTIVE_TIME_MICROSECONDS, DS_TIME_CONNECT,
        DS_TIME_MICROSECONDS, DS_TIME_NANOSECONDS,
    };

    for (size_t i = 0; i < DS_ARRAY_LEN(modes); i++) {
        /* 54 years with 13 leap days: 54 * 365 + 13 + 30 = 19753 */
        DS_CHECK_STR(map_as(TIME(modes[i]), DS_OID_DATE, -1, "2024-01-31"), "19753");
        DS_CHECK_STR(map_as(TIME(modes[i]), DS_OID_DATE, -1, "1969-12-31"), "-1");
        /* proleptic Gregorian: 2013 years before 1970 back to year -43, March 15 */
        DS_CHECK_STR(map_as(TIME(modes[i]), DS_OID_DATE, -1, "0044-03-15 BC"), "-735160");
    }
}

static void test_date_infinity_is_debeziums_sentinel_in_day_counts(void)
{
    /* LocalDate -5877611-06-21 and -22, what Debezium writes for them */
    DS_CHECK_STR(map_as(TIME(DS_TIME_ADAPTIVE), DS_OID_DATE, -1, "infinity"), "-2147472692");
    DS_CHECK_STR(map_as(TIME(DS_TIME_CONNECT), DS_OID_DATE, -1, "-infinity"), "-2147472691");
}

static void test_malformed_date_is_rejected(void)
{
    DS_CHECK(rejects(DS_OID_DATE, "2024/01/31", "date", "DateStyle"));
    DS_CHECK(rejects(DS_OID_DATE, "01-31-2024", "date", NULL));
    DS_CHECK(rejects(DS_OID_DATE, "2024-13-01", "date", NULL));
    DS_CHECK(rejects(DS_OID_DATE, "2024-01-31x", "date", NULL));
}

static void test_time_is_an_iso_time(void)
{
    DS_CHECK_STR(map(DS_OID_TIME, "10:00:00.123"), "\"10:00:00.123Z\"");
    DS_CHECK_STR(map(DS_OID_TIME, "10:00:00.120"), "\"10:00:00.12Z\"");
    DS_CHECK_STR(map(DS_OID_TIME, "00:00:00"), "\"00:00:00Z\"");
}

static void test_time_24_00_is_kept_where_debezium_wraps_it(void)
{
    DS_CHECK_STR(map(DS_OID_TIME, "24:00:00"), "\"24:00:00Z\"");
    DS_CHECK_STR(map_as(TIME(DS_TIME_MICROSECONDS), DS_OID_TIME, -1, "24:00:00"), "86400000000");
}

static void test_time_by_precision_mode(void)
{
    /* 10:00:00.123 is 36000 seconds and 123 ms past midnight */
    DS_CHECK_STR(map_as(TIME(DS_TIME_ADAPTIVE), DS_OID_TIME, 3, "10:00:00.123"), "36000123");
    DS_CHECK_STR(map_as(TIME(DS_TIME_ADAPTIVE), DS_OID_TIME, 6, "10:00:00.123"), "36000123000");
    /* no typmod: precision 6 */
    DS_CHECK_STR(map_as(TIME(DS_TIME_ADAPTIVE), DS_OID_TIME, -1, "10:00:00.123"), "36000123000");
    DS_CHECK_STR(map_as(TIME(DS_TIME_ADAPTIVE_TIME_MICROSECONDS), DS_OID_TIME, 3, "10:00:00.123"),
                 "36000123000");
    DS_CHECK_STR(map_as(TIME(DS_TIME_CONNECT), DS_OID_TIME, -1, "10:00:00.123456"), "36000123");
    DS_CHECK_STR(map_as(TIME(DS_TIME_MICROSECONDS), DS_OID_TIME, 3, "10:00:00.123"),
                 "36000123000");
    DS_CHECK_STR(map_as(TIME(DS_TIME_NANOSECONDS), DS_OID_TIME, -1, "10:00:00.123456"),
                 "36000123456000");
}

static void test_malformed_time_is_rejected(void)
{
    DS_CHECK(rejects(DS_OID_TIME, "10:00", "time", NULL));
    DS_CHECK(rejects(DS_OID_TIME, "10:00:00.", "time", NULL));
}

static void test_timetz_is_converted_to_utc(void)
{
    DS_CHECK_STR(map(DS_OID_TIMETZ, "10:00:00.5+05:30"), "\"04:30:00.5Z\"");
    /* past midnight, both ways */
    DS_CHECK_STR(map(DS_OID_TIMETZ, "23:00:00.250-05"), "\"04:00:00.25Z\"");
    DS_CHECK_STR(map(DS_OID_TIMETZ, "01:00:00+02"), "\"23:00:00Z\"");
    /* the same in every time.precision.mode */
    DS_CHECK_STR(map_as(TIME(DS_TIME_ADAPTIVE), DS_OID_TIMETZ, -1, "00:00:00-03"),
                 "\"03:00:00Z\"");
    DS_CHECK(rejects(DS_OID_TIMETZ, "10:00:00", "timetz", NULL));
}

static void test_timestamp_is_an_iso_timestamp(void)
{
    DS_CHECK_STR(map(DS_OID_TIMESTAMP, "2024-01-31 10:00:00.123456"),
                 "\"2024-01-31T10:00:00.123456Z\"");
    DS_CHECK_STR(map(DS_OID_TIMESTAMP, "2024-01-31 10:00:00.500"), "\"2024-01-31T10:00:00.5Z\"");
    DS_CHECK_STR(map(DS_OID_TIMESTAMP, "2024-01-31 10:00:00"), "\"2024-01-31T10:00:00Z\"");
    DS_CHECK_STR(map(DS_OID_TIMESTAMP, "10000-01-01 00:00:00"), "\"+10000-01-01T00:00:00Z\"");
}

static void test_timestamp_infinity_is_kept_and_bc_is_astronomical(void)
{
    DS_CHECK_STR(map(DS_OID_TIMESTAMP, "infinity"), "\"infinity\"");
    DS_CHECK_STR(map(DS_OID_TIMESTAMP, "-infinity"), "\"-infinity\"");
    DS_CHECK_STR(map(DS_OID_TIMESTAMP, "0044-03-15 10:00:00 BC"), "\"-0043-03-15T10:00:00Z\"");
}

static void test_timestamp_by_precision_mode(void)
{
    /* 2024-01-31 is day 19753: 19753 * 86400 + 36000 = 1706695200 seconds */
    DS_CHECK_STR(map_as(TIME(DS_TIME_ADAPTIVE), DS_OID_TIMESTAMP, 3, "2024-01-31 10:00:00.123"),
                 "1706695200123");
    DS_CHECK_STR(
        map_as(TIME(DS_TIME_ADAPTIVE), DS_OID_TIMESTAMP, -1, "2024-01-31 10:00:00.123456"),
        "1706695200123456");
    DS_CHECK_STR(map_as(TIME(DS_TIME_ADAPTIVE_TIME_MICROSECONDS), DS_OID_TIMESTAMP, 0,
                        "2024-01-31 10:00:00"),
                 "1706695200000");
    DS_CHECK_STR(
        map_as(TIME(DS_TIME_NANOSECONDS), DS_OID_TIMESTAMP, -1, "2024-01-31 10:00:00.123456"),
        "1706695200123456000");
    /* before 1970 milliseconds round down, as Instant.toEpochMilli() */
    DS_CHECK_STR(
        map_as(TIME(DS_TIME_CONNECT), DS_OID_TIMESTAMP, -1, "1969-12-31 23:59:59.9995"), "-1");
    DS_CHECK_STR(
        map_as(TIME(DS_TIME_MICROSECONDS), DS_OID_TIMESTAMP, 3, "1969-12-31 23:59:59.9995"),
        "-500");
    /* day -735160 (44 BC March 15) * 86400 + 36000.5 seconds */
    DS_CHECK_STR(map_as(TIME(DS_TIME_MICROSECONDS), DS_OID_TIMESTAMP, -1,
                        "0044-03-15 10:00:00.5 BC"),
                 "-63517787999500000");
}

static void test_timestamp_infinity_is_debeziums_sentinel_in_epoch_counts(void)
{
    /* pgjdbc's DATE_POSITIVE_INFINITY / DATE_NEGATIVE_INFINITY read as microseconds */
    DS_CHECK_STR(map_as(TIME(DS_TIME_ADAPTIVE), DS_OID_TIMESTAMP, -1, "infinity"),
                 "9223372036825200000");
    DS_CHECK_STR(map_as(TIME(DS_TIME_ADAPTIVE), DS_OID_TIMESTAMP, 3, "-infinity"),
                 "-9223372036832400");
    DS_CHECK_STR(map_as(TIME(DS_TIME_NANOSECONDS), DS_OID_TIMESTAMP, -1, "infinity"),
                 "9223372036854775807");
    DS_CHECK_STR(map_as(TIME(DS_TIME_NANOSECONDS), DS_OID_TIMESTAMP, -1, "-infinity"),
                 "-9223372036854775808");
}

static void test_timestamp_beyond_int64_nanoseconds_keeps_its_iso_form(void)
{
    ds_value_format_t f = TIME(DS_TIME_NANOSECONDS);

    /* the last representable microsecond, and the next one */
    DS_CHECK_STR(map_as(f, DS_OID_TIMESTAMP, -1, "2262-04-11 23:47:16.854775"),
                 "9223372036854775000");
    DS_CHECK_STR(map_as(f, DS_OID_TIMESTAMP, -1, "2262-04-11 23:47:16.854776"),
                 "\"2262-04-11T23:47:16.854776Z\"");
    DS_CHECK_STR(map_as(f, DS_OID_TIMESTAMP, -1, "1677-09-21 00:12:43.145224"),
                 "\"1677-09-21T00:12:43.145224Z\"");
}

static void test_timestamp_in_the_last_years_wraps_as_debezium_does(void)
{
    /* past 294247 AD, epoch microseconds pass INT64_MAX: Java saturates the seconds then
     * wraps on adding the fraction; milliseconds still fit */
    DS_CHECK_STR(map_as(TIME(DS_TIME_MICROSECONDS), DS_OID_TIMESTAMP, -1,
                        "294276-12-31 23:59:59.999999"),
                 "-9223372036853775810");
    DS_CHECK_STR(map_as(TIME(DS_TIME_CONNECT), DS_OID_TIMESTAMP, -1,
                        "294276-12-31 23:59:59.999999"),
                 "9224318015999999");
    DS_CHECK_STR(map(DS_OID_TIMESTAMP, "294276-12-31 23:59:59.999999"),
                 "\"+294276-12-31T23:59:59.999999Z\"");
}

static void test_malformed_timestamp_is_rejected(void)
{
    DS_CHECK(rejects(DS_OID_TIMESTAMP, "2024-01-31T10:00:00", "timestamp", NULL));
    DS_CHECK(rejects(DS_OID_TIMESTAMP, "2024-01-31", "timestamp", NULL));
    DS_CHECK(rejects(DS_OID_TIMESTAMP, "2024-01-31 10:00:00+00", "timestamp", NULL));
}

static void test_timestamptz_has_the_column_precision_in_fraction_digits(void)
{
    /* no typmod: 6 digits, zeros included */
    DS_CHECK_STR(map(DS_OID_TIMESTAMPTZ, "2024-01-31 10:00:00.123456+00"),
                 "\"2024-01-31T10:00:00.123456Z\"");
    DS_CHECK_STR(map(DS_OID_TIMESTAMPTZ, "2024-01-31 10:00:00+00:00"),
                 "\"2024-01-31T10:00:00.000000Z\"");
    DS_CHECK_STR(map_as(TIME(DS_TIME_ADAPTIVE), DS_OID_TIMESTAMPTZ, 3, "2024-01-31 10:00:00.1+00"),
                 "\"2024-01-31T10:00:00.100Z\"");
    /* precision 0: no fraction */
    DS_CHECK_STR(map_as(TIME(DS_TIME_CONNECT), DS_OID_TIMESTAMPTZ, 0, "2024-01-31 10:00:00+00"),
                 "\"2024-01-31T10:00:00Z\"");
}

static void test_timestamptz_with_offset_is_converted_to_utc(void)
{
    DS_CHECK_STR(map(DS_OID_TIMESTAMPTZ, "2024-01-31 10:00:00.5+05:30"),
                 "\"2024-01-31T04:30:00.500000Z\"");
    /* across midnight, into a leap day */
    DS_CHECK_STR(map(DS_OID_TIMESTAMPTZ, "2024-03-01 01:00:00+02"),
                 "\"2024-02-29T23:00:00.000000Z\"");
    /* across a year end, negative offset */
    DS_CHECK_STR(map(DS_OID_TIMESTAMPTZ, "2023-12-31 23:30:00.25-01"),
                 "\"2024-01-01T00:30:00.250000Z\"");
    /* local mean time offsets carry seconds (Amsterdam before 1937: +00:19:32) */
    DS_CHECK_STR(map(DS_OID_TIMESTAMPTZ, "1900-01-01 00:00:00+00:19:32"),
                 "\"1899-12-31T23:40:28.000000Z\"");
    DS_CHECK_STR(map(DS_OID_TIMESTAMPTZ, "20000-06-15 12:00:00-10"),
                 "\"+20000-06-15T22:00:00.000000Z\"");
    /* into 1 BC, year 0 */
    DS_CHECK_STR(map(DS_OID_TIMESTAMPTZ, "0001-01-01 00:30:00+01"),
                 "\"0000-12-31T23:30:00.000000Z\"");
}

static void test_timestamptz_infinity_is_kept_and_bc_is_astronomical(void)
{
    DS_CHECK_STR(map(DS_OID_TIMESTAMPTZ, "infinity"), "\"infinity\"");
    DS_CHECK_STR(map_as(TIME(DS_TIME_ADAPTIVE), DS_OID_TIMESTAMPTZ, -1, "-infinity"),
                 "\"-infinity\"");
    DS_CHECK_STR(map(DS_OID_TIMESTAMPTZ, "0044-03-15 10:00:00.5+00 BC"),
                 "\"-0043-03-15T10:00:00.500000Z\"");
}

static void test_malformed_timestamptz_is_rejected(void)
{
    DS_CHECK(rejects(DS_OID_TIMESTAMPTZ, "2024-01-31 10:00:00", "timestamptz", NULL));
    DS_CHECK(rejects(DS_OID_TIMESTAMPTZ, "2024-01-31 10:00:00+5", "timestamptz", NULL));
    DS_CHECK(rejects(DS_OID_TIMESTAMPTZ, "2024-01-31 10:00:00+05:99", "timestamptz", NULL));
}

static void test_interval_string_has_every_field(void)
{
    DS_CHECK_STR(map(DS_OID_INTERVAL, "P1Y2M3DT4H5M6.5S"), "\"P1Y2M3DT4H5M6.5S\"");
    DS_CHECK_STR(map(DS_OID_INTERVAL, "PT0S"), "\"P0Y0M0DT0H0M0S\"");
    DS_CHECK_STR(map(DS_OID_INTERVAL, "P-1Y-2M3DT-4H"), "\"P-1Y-2M3DT-4H0M0S\"");
    DS_CHECK_STR(map(DS_OID_INTERVAL, "PT-0.5S"), "\"P0Y0M0DT0H0M-0.5S\"");
    DS_CHECK_STR(map(DS_OID_INTERVAL, "P-1DT-2H"), "\"P0Y0M-1DT-2H0M0S\"");
    DS_CHECK_STR(map(DS_OID_INTERVAL, "PT100H0.000001S"), "\"P0Y0M0DT100H0M0.000001S\"");
}

static void test_interval_numeric_is_microseconds_with_average_months(void)
{
    ds_value_format_t f = INTERVAL(DS_INTERVAL_NUMERIC);

    /* a month is 365.25 / 12 = 30.4375 days = 2629800 seconds */
    DS_CHECK_STR(map_as(f, DS_OID_INTERVAL, -1, "P1M"), "2629800000000");
    /* 14 months + 3 days + 4:05:06.5 = 36817200 + 259200 + 14706.5 seconds */
    DS_CHECK_STR(map_as(f, DS_OID_INTERVAL, -1, "P1Y2M3DT4H5M6.5S"), "37091106500000");
    DS_CHECK_STR(map_as(f, DS_OID_INTERVAL, -1, "P1Y2M3DT4H5M6.123456S"), "37091106123456");
    /* -1 day - 2 hours = -26 hours */
    DS_CHECK_STR(map_as(f, DS_OID_INTERVAL, -1, "P-1DT-2H"), "-93600000000");
    DS_CHECK_STR(map_as(f, DS_OID_INTERVAL, -1, "PT0.000001S"), "1");
    DS_CHECK_STR(map_as(f, DS_OID_INTERVAL, -1, "PT0S"), "0");
}

static void test_malformed_interval_is_rejected(void)
{
    DS_CHECK(rejects(DS_OID_INTERVAL, "P", "interval", NULL));
    DS_CHECK(rejects(DS_OID_INTERVAL, "P1D2M", "interval", NULL));
    DS_CHECK(rejects(DS_OID_INTERVAL, "P1.5D", "interval", NULL));
    DS_CHECK(rejects(DS_OID_INTERVAL, "PT1S2H", "interval", NULL));
    DS_CHECK(rejects(DS_OID_INTERVAL, "P1Y1Y", "interval", NULL));
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
        {1002, DS_OID_CHAR},     {1270, DS_OID_TIMETZ},
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
    DS_CHECK_STR(map(OID_NUMERIC_ARRAY, "{1.50,NaN}"), "[\"1.50\",\"NAN\"]");
    DS_CHECK_STR(map(OID_TIMESTAMPTZ_ARRAY, "{\"2024-01-31 10:00:00+00\",NULL}"),
                 "[\"2024-01-31T10:00:00.000000Z\",null]");
    DS_CHECK_STR(map(OID_DATE_ARRAY, "{2024-01-31,infinity}"), "[\"2024-01-31Z\",\"infinity\"]");
    DS_CHECK_STR(map(OID_TIMETZ_ARRAY, "{10:00:00+01}"), "[\"09:00:00Z\"]");
    DS_CHECK_STR(map(OID_UUID_ARRAY, "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"),
                 "[\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"]");
}

static void test_array_elements_follow_the_value_settings(void)
{
    ds_value_format_t f =
        fmt(DS_TIME_ADAPTIVE, DS_DECIMAL_PRECISE, DS_BINARY_HEX, DS_INTERVAL_NUMERIC);

    DS_CHECK_STR(map_as(f, OID_DATE_ARRAY, -1, "{2024-01-31,NULL}"), "[19753,null]");
    DS_CHECK_STR(map_as(f, OID_NUMERIC_ARRAY, NUMERIC_TYPMOD(10, 2), "{1.50}"), "[\"AJY=\"]");
    DS_CHECK_STR(map_as(f, OID_NUMERIC_ARRAY, -1, "{1.50}"),
                 "[{\"scale\":1,\"value\":\"Dw==\"}]");
    DS_CHECK_STR(map_as(f, OID_BYTEA_ARRAY, -1, "{\"\\\\x0a0b\"}"), "[\"0a0b\"]");
    DS_CHECK_STR(map_as(f, OID_INTERVAL_ARRAY, -1, "{P1M}"), "[2629800000000]");
    DS_CHECK_STR(map_as(f, OID_TIMESTAMP_ARRAY, 3, "{\"2024-01-31 10:00:00.123\"}"),
                 "[1706695200123]");
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
    DS_RUN(test_floats_become_numbers_as_java_writes_them);
    DS_RUN(test_float_nan_and_infinities_become_strings);
    DS_RUN(test_malformed_float_is_rejected);
    DS_RUN(test_numeric_keeps_exact_text_as_string);
    DS_RUN(test_numeric_nan_and_infinities_are_named_as_debezium_names_them);
    DS_RUN(test_numeric_double_is_a_java_double);
    DS_RUN(test_numeric_precise_with_scale_is_a_connect_decimal);
    DS_RUN(test_numeric_precise_without_scale_is_a_variable_scale_decimal);
    DS_RUN(test_numeric_precise_keeps_nan_as_string_where_debezium_writes_null);
    DS_RUN(test_large_unscaled_value_is_encoded_whole);
    DS_RUN(test_malformed_numeric_is_rejected);
    DS_RUN(test_money_is_a_decimal_string);
    DS_RUN(test_money_double_and_precise);
    DS_RUN(test_malformed_money_is_rejected);
    DS_RUN(test_bool_becomes_true_false);
    DS_RUN(test_malformed_bool_is_rejected);
    DS_RUN(test_bytea_hex_becomes_base64);
    DS_RUN(test_large_bytea_matches_base64_of_its_bytes);
    DS_RUN(test_bytea_escape_format_is_decoded);
    DS_RUN(test_bytea_binary_handling_modes);
    DS_RUN(test_malformed_bytea_is_rejected);
    DS_RUN(test_json_and_jsonb_become_strings_holding_the_document);
    DS_RUN(test_date_is_an_iso_date);
    DS_RUN(test_bc_date_uses_astronomical_years);
    DS_RUN(test_date_infinity_is_kept_as_a_string);
    DS_RUN(test_date_is_days_since_1970_in_other_modes);
    DS_RUN(test_date_infinity_is_debeziums_sentinel_in_day_counts);
    DS_RUN(test_malformed_date_is_rejected);
    DS_RUN(test_time_is_an_iso_time);
    DS_RUN(test_time_24_00_is_kept_where_debezium_wraps_it);
    DS_RUN(test_time_by_precision_mode);
    DS_RUN(test_malformed_time_is_rejected);
    DS_RUN(test_timetz_is_converted_to_utc);
    DS_RUN(test_timestamp_is_an_iso_timestamp);
    DS_RUN(test_timestamp_infinity_is_kept_and_bc_is_astronomical);
    DS_RUN(test_timestamp_by_precision_mode);
    DS_RUN(test_timestamp_infinity_is_debeziums_sentinel_in_epoch_counts);
    DS_RUN(test_timestamp_beyond_int64_nanoseconds_keeps_its_iso_form);
    DS_RUN(test_timestamp_in_the_last_years_wraps_as_debezium_does);
    DS_RUN(test_malformed_timestamp_is_rejected);
    DS_RUN(test_timestamptz_has_the_column_precision_in_fraction_digits);
    DS_RUN(test_timestamptz_with_offset_is_converted_to_utc);
    DS_RUN(test_timestamptz_infinity_is_kept_and_bc_is_astronomical);
    DS_RUN(test_malformed_timestamptz_is_rejected);
    DS_RUN(test_interval_string_has_every_field);
    DS_RUN(test_interval_numeric_is_microseconds_with_average_months);
    DS_RUN(test_malformed_interval_is_rejected);
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
    DS_RUN(test_array_elements_follow_the_value_settings);
    DS_RUN(test_bytea_array_elements_become_base64);
    DS_RUN(test_jsonb_array_elements_become_strings);
    DS_RUN(test_unknown_array_type_is_the_literal_as_string);
    DS_RUN(test_malformed_arrays_are_rejected);
    DS_RUN(test_bad_array_element_names_array_and_element_type);
    DS_RUN(test_error_excerpt_is_shortened);
    ds_buf_free(&out);
    return ds_test_report();
}
