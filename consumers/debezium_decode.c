/*
 * debezium_decode.c: change messages written under Debezium's value settings, read into the
 * form apply binds (design in include/dualsync/debezium_decode.h).
 *
 * Two steps per value. First PostgreSQL's own text of it, from its logical type: an epoch
 * count becomes "2024-02-29 12:34:56.789012", an unscaled decimal "1234567.891", a duration
 * PostgreSQL's iso_8601 interval, as the capture session (DateStyle ISO, TimeZone UTC) would
 * have read it from the database. Then ds_typemap_append_json() writes that text as
 * dualsync's classic value, because `dualsync verify` renders the source rows through the
 * same code: a decoded value equals, as text, what classic capture would have written for the
 * same database value, so mappings (a uuid5 of a date, a concat) and verify agree whoever
 * wrote the topic.
 *
 * Cost. A message without a schema (capture's classic default) is checked by the member count
 * of its value and the first bytes of its key, and passes untouched. Decoding copies only the
 * row objects it changes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualsync/buf.h"
#include "dualsync/debezium_decode.h"
#include "dualsync/typemap.h"

#define OID_BIT 1560 /* bit(n); typemap writes its text as it is */

#define US_PER_SEC INT64_C(1000000)
#define US_PER_DAY (INT64_C(86400) * US_PER_SEC)
/* Debezium's MicroDuration counts a month as 365.25 / 12 = 30.4375 days. */
#define US_PER_MONTH (INT64_C(2629800) * US_PER_SEC)

/*
 * Debezium's stand-ins for PostgreSQL's infinity (PostgresValueConverter, from pgjdbc's
 * PGStatement.DATE_POSITIVE_INFINITY and DATE_NEGATIVE_INFINITY read as microseconds):
 * out of PostgreSQL's range, so never real data. A date's are the days of -5877611-06-21
 * (infinity) and the day after (-infinity); the ISO strings of isostring mode follow.
 */
#define DATE_POSITIVE_INFINITY      INT64_C(-2147472692)
#define TIMESTAMP_POSITIVE_INFINITY INT64_C(9223372036825200000)
#define TIMESTAMP_NEGATIVE_INFINITY INT64_C(-9223372036832400000)

/* JsonConverter writes the schema first: `{"schema":` starts every enveloped key. */
#define ENVELOPE_PREFIX     "{\"schema\":"
#define ENVELOPE_PREFIX_LEN (sizeof(ENVELOPE_PREFIX) - 1)

struct ds_debezium_decoder {
    ds_value_format_t format; /* as declared (transaction_topic not kept) */
    bool schema_needed;       /* schemaless values under these settings cannot be read */
    json_t *value;            /* the last decoded change value (owned), or NULL */
    json_t *key_doc;          /* the last parsed enveloped key (owned), or NULL */
    ds_buf_t key;             /* the last decoded key text */
    json_t *tables;           /* topic -> {"schema": row struct schema, "columns": name ->
                               * field schema}, from the source catalog, for schemaless
                               * messages (ds_debezium_decoder_add_table); NULL when none */
};

/* The setting that makes schemaless values unreadable, or NULL. Without the "debezium"
 * object the topics hold capture's classic values, which need no decoding. */
static const char *schemaless_blocker(const ds_value_format_t *f)
{
    if (!f->debezium)
        return NULL;
    if (f->time_precision != DS_TIME_ISOSTRING)
        return "time.precision.mode";
    if (f->decimal_handling == DS_DECIMAL_PRECISE)
        return "decimal.handling.mode";
    if (f->interval_handling == DS_INTERVAL_NUMERIC)
        return "interval.handling.mode";
    return NULL;
}

static const char *setting_value(const ds_value_format_t *f, const char *name)
{
    if (strcmp(name, "time.precision.mode") == 0)
        return ds_time_precision_name(f->time_precision);
    if (strcmp(name, "decimal.handling.mode") == 0)
        return ds_decimal_handling_name(f->decimal_handling);
    return ds_interval_handling_name(f->interval_handling);
}

/* Schemaless messages under any "debezium" settings: even the string settings' values need
 * the column type, since an IsoDate ("2024-02-29Z") reads like text, and mappings must get
 * dualsync's classic values ("2024-02-29") whoever wrote the topic. */
bool ds_debezium_needs_types(const ds_value_format_t *format)
{
    return format->message_format == DS_MESSAGE_JSON && format->debezium;
}

bool ds_debezium_decode_check(const ds_value_format_t *format, bool have_types, char *errstr,
                              size_t errstr_size)
{
    const char *blocker = have_types ? NULL : schemaless_blocker(format);

    if (format->debezium && (format->binary_handling == DS_BINARY_HEX ||
                             format->binary_handling == DS_BINARY_BASE64_URL_SAFE))
        return ds_fail(errstr, errstr_size,
                       "\"debezium\": binary.handling.mode \"%s\": Debezium writes bytea values "
                       "as plain strings under this mode, even in the schema envelope, so apply "
                       "cannot tell them from text columns; have the topics written with "
                       "binary.handling.mode \"bytes\" or \"base64\"",
                       ds_binary_handling_name(format->binary_handling));
    if (blocker && format->message_format == DS_MESSAGE_JSON)
        return ds_fail(errstr, errstr_size,
                       "\"debezium\": %s \"%s\" writes values that only the column type "
                       "explains (an epoch count, an unscaled decimal, a duration in "
                       "microseconds), and capture.message_format \"json\" says the topics "
                       "carry no schema: have them written with the schema envelope (Kafka "
                       "Connect's JsonConverter with schemas.enable=true, or capture.message_"
                       "format \"json-with-schema\") and set capture.message_format "
                       "\"json-with-schema\", or give the config its \"source\" section "
                       "(source.conninfo), whose catalog apply then reads the column types "
                       "from, or have the topics written with %s \"%s\"",
                       blocker, setting_value(format, blocker), blocker,
                       strcmp(blocker, "time.precision.mode") == 0 ? "isostring" : "string");
    if (!have_types && ds_debezium_needs_types(format))
        return ds_fail(errstr, errstr_size,
                       "\"debezium\": under these settings a date is written \"2024-02-29Z\" "
                       "and a numeric \"NAN\", strings that only the column type tells from "
                       "text, while mappings read dualsync's classic values (\"2024-02-29\"), "
                       "and capture.message_format \"json\" says the topics carry no schema: "
                       "give the config its \"source\" section (source.conninfo), whose "
                       "catalog apply then reads the column types from, or have the topics "
                       "written with the schema envelope and set capture.message_format "
                       "\"json-with-schema\"");
    return true;
}

ds_debezium_decoder_t *ds_debezium_decoder_new(const ds_value_format_t *format)
{
    ds_debezium_decoder_t *d = calloc(1, sizeof(*d));

    if (!d)
        return NULL;
    if (format)
        d->format = *format;
    else
        ds_value_format_init(&d->format);
    d->format.transaction_topic = NULL;
    d->schema_needed =
        schemaless_blocker(&d->format) != NULL || ds_debezium_needs_types(&d->format);
    d->key = (ds_buf_t)DS_BUF_INIT;
    return d;
}

void ds_debezium_decoder_free(ds_debezium_decoder_t *d)
{
    if (!d)
        return;
    json_decref(d->value);
    json_decref(d->key_doc);
    json_decref(d->tables);
    ds_buf_free(&d->key);
    free(d);
}

/* ---- text forms ------------------------------------------------------------------------ */

/* Floor division and its remainder, for values before 1970. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The proleptic Gregorian date @p days after 1970-01-01 (H. Hinnant's civil_from_days). */
static void civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
    int64_t z = days + 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;

    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* Appends ".ffffff" with trailing zeros trimmed (nothing for 0), as PostgreSQL writes. */
static void append_fraction(ds_buf_t *b, int64_t us)
{
    char frac[8];
    int n = 6;

    if (us == 0)
        return;
    snprintf(frac, sizeof(frac), "%06" PRId64, us);
    while (n > 0 && frac[n - 1] == '0')
        n--;
    ds_buf_append_char(b, '.');
    ds_buf_append(b, frac, (size_t)n);
}

/* PostgreSQL's date range: 4714-11-24 BC to 5874897-12-31. */
static bool date_in_range(int64_t days)
{
    return days >= -2440588 && days <= 2145031948;
}

/* Appends the date @p days after 1970-01-01; *bc says whether it is before year 1, whose
 * text carries PostgreSQL's era marker, appended by the caller after any time. */
static void append_date(ds_buf_t *b, int64_t days, bool *bc)
{
    int64_t y;
    int m, d;

    civil_from_days(days, &y, &m, &d);
    *bc = y <= 0;
    ds_buf_appendf(b, "%04" PRId64 "-%02d-%02d", *bc ? 1 - y : y, m, d);
}

/* Appends the time of day @p us (0 to 24:00:00 inclusive, as PostgreSQL's time allows). */
static void append_time(ds_buf_t *b, int64_t us)
{
    int64_t secs = us / US_PER_SEC;

    ds_buf_appendf(b, "%02" PRId64 ":%02" PRId64 ":%02" PRId64, secs / 3600, secs / 60 % 60,
                   secs % 60);
    append_fraction(b, us % US_PER_SEC);
}

/* Appends the timestamp @p us after the epoch, as PostgreSQL writes a timestamp. */
static bool append_timestamp(ds_buf_t *b, int64_t us)
{
    int64_t days = floor_div(us, US_PER_DAY);
    bool bc;

    if (!date_in_range(days))
        return false;
    append_date(b, days, &bc);
    if (bc) {
        /* PostgreSQL's own text for these: "0044-03-15 10:00:00 BC". */
        ds_buf_append_char(b, ' ');
        append_time(b, us - days * US_PER_DAY);
        ds_buf_append_str(b, " BC");
        return true;
    }
    ds_buf_append_char(b, ' ');
    append_time(b, us - days * US_PER_DAY);
    return true;
}

/* PostgreSQL's iso_8601 IntervalStyle output of an interval of @p months, @p days and
 * @p us: zero parts left out, every part carrying its own sign, "PT0S" for zero. */
static void append_interval(ds_buf_t *b, int64_t months, int64_t days, int64_t us)
{
    int64_t years = months / 12, hours = us / (3600 * US_PER_SEC);
    int64_t mins = us / (60 * US_PER_SEC) % 60, secs = us / US_PER_SEC % 60, frac = us % US_PER_SEC;

    months %= 12;
    if (years == 0 && months == 0 && days == 0 && us == 0) {
        ds_buf_append_str(b, "PT0S");
        return;
    }
    ds_buf_append_char(b, 'P');
    if (years)
        ds_buf_appendf(b, "%" PRId64 "Y", years);
    if (months)
        ds_buf_appendf(b, "%" PRId64 "M", months);
    if (days)
        ds_buf_appendf(b, "%" PRId64 "D", days);
    if (us == 0)
        return;
    ds_buf_append_char(b, 'T');
    if (hours)
        ds_buf_appendf(b, "%" PRId64 "H", hours);
    if (mins)
        ds_buf_appendf(b, "%" PRId64 "M", mins);
    if (secs || frac) {
        if (us < 0 && secs == 0)
            ds_buf_append_char(b, '-');
        ds_buf_appendf(b, "%" PRId64, secs);
        append_fraction(b, frac < 0 ? -frac : frac);
        ds_buf_append_char(b, 'S');
    }
}

static int base64_digit(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Standard padded base64 (what JsonConverter writes for bytes) into @p out (len * 3 / 4
 * bytes at least). Returns the byte count, or -1 when @p text is not base64. */
static long base64_decode(const char *text, size_t len, uint8_t *out)
{
    long n = 0;
    uint32_t acc = 0;
    int bits = 0;
    size_t pad = 0;

    if (len % 4 != 0)
        return -1;
    while (pad < 2 && len > pad && text[len - 1 - pad] == '=')
        pad++;
    for (size_t i = 0; i < len - pad; i++) {
        int v = base64_digit((unsigned char)text[i]);

        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return n;
}

/*
 * Appends the decimal of the big-endian two's complement @p bytes (Kafka Connect's Decimal,
 * BigInteger.toByteArray) scaled by 10^-@p scale, every digit of the scale kept, as
 * BigDecimal.toPlainString() and PostgreSQL's numeric output write it.
 */
static bool append_unscaled(ds_buf_t *b, uint8_t *bytes, long n, int64_t scale)
{
    bool negative = n > 0 && (bytes[0] & 0x80);
    uint32_t *limbs; /* base 10^9, least significant first */
    size_t nlimbs = 0;
    ds_buf_t digits = DS_BUF_INIT;

    if (scale < -1000000 || scale > 1000000)
        return false;
    if (negative) { /* the magnitude: invert and add one */
        int carry = 1;

        for (long i = n - 1; i >= 0; i--) {
            int v = (uint8_t)~bytes[i] + carry;

            bytes[i] = (uint8_t)v;
            carry = v >> 8;
        }
    }
    limbs = calloc((size_t)n / 4 + 2, sizeof(*limbs));
    if (!limbs)
        return false;
    for (long i = 0; i < n; i++) {
        uint64_t carry = bytes[i];

        for (size_t k = 0; k < nlimbs; k++) {
            uint64_t v = (uint64_t)limbs[k] * 256 + carry;

            limbs[k] = (uint32_t)(v % 1000000000u);
            carry = v / 1000000000u;
        }
        if (carry)
            limbs[nlimbs++] = (uint32_t)carry;
    }
    if (nlimbs == 0)
        ds_buf_append_char(&digits, '0');
    else {
        ds_buf_appendf(&digits, "%" PRIu32, limbs[nlimbs - 1]);
        for (size_t k = nlimbs - 1; k-- > 0;)
            ds_buf_appendf(&digits, "%09" PRIu32, limbs[k]);
    }
    free(limbs);
    if (negative && nlimbs > 0)
        ds_buf_append_char(b, '-');
    if (scale <= 0) {
        ds_buf_append(b, digits.data, digits.len);
        for (int64_t i = 0; i < -scale && nlimbs > 0; i++)
            ds_buf_append_char(b, '0');
    } else if ((int64_t)digits.len <= scale) {
        ds_buf_append_str(b, "0.");
        for (int64_t i = (int64_t)digits.len; i < scale; i++)
            ds_buf_append_char(b, '0');
        ds_buf_append(b, digits.data, digits.len);
    } else {
        size_t point = digits.len - (size_t)scale;

        ds_buf_append(b, digits.data, point);
        ds_buf_append_char(b, '.');
        ds_buf_append(b, digits.data + point, (size_t)scale);
    }
    ds_buf_free(&digits);
    return true;
}

/* ---- values by schema ------------------------------------------------------------------ */

typedef enum unit { UNIT_MS, UNIT_US, UNIT_NS } unit_t;

static bool fail_value(const char *field, const char *name, const char *expected,
                       const json_t *value, char *errstr, size_t errstr_size)
{
    char *text = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);

    ds_fail(errstr, errstr_size, "field %s (%s): %s expected, found %.60s", field, name, expected,
            text ? text : "?");
    free(text);
    return false;
}

/* @p value in microseconds, from @p unit; false when it overflows or, in nanoseconds, is
 * finer than PostgreSQL's microseconds (a misread, never rounded). */
static bool to_us(int64_t value, unit_t unit, int64_t *us)
{
    switch (unit) {
    case UNIT_MS:
        if (value > INT64_MAX / 1000 || value < INT64_MIN / 1000)
            return false;
        *us = value * 1000;
        return true;
    case UNIT_US:
        *us = value;
        return true;
    case UNIT_NS:
        if (value % 1000 != 0)
            return false;
        *us = value / 1000;
        return true;
    }
    return false;
}

static json_t *buf_string(ds_buf_t *b)
{
    json_t *s = json_stringn(b->data ? b->data : "", b->len);

    ds_buf_free(b);
    return s;
}

static bool decode_date(const json_t *value, json_t **out, const char *field, const char *name,
                        char *errstr, size_t errstr_size)
{
    ds_buf_t b = DS_BUF_INIT;
    bool bc;

    if (json_is_integer(value) && json_integer_value(value) == DATE_POSITIVE_INFINITY) {
        *out = json_string("infinity");
        return true;
    }
    if (json_is_integer(value) && json_integer_value(value) == DATE_POSITIVE_INFINITY + 1) {
        *out = json_string("-infinity");
        return true;
    }
    if (!json_is_integer(value) || !date_in_range(json_integer_value(value)))
        return fail_value(field, name, "days since 1970-01-01 within PostgreSQL's date range",
                          value, errstr, errstr_size);
    append_date(&b, json_integer_value(value), &bc);
    if (bc)
        ds_buf_append_str(&b, " BC");
    *out = buf_string(&b);
    return true;
}

static bool decode_time(const json_t *value, unit_t unit, json_t **out, const char *field,
                        const char *name, char *errstr, size_t errstr_size)
{
    ds_buf_t b = DS_BUF_INIT;
    int64_t us;

    if (!json_is_integer(value) || !to_us(json_integer_value(value), unit, &us) || us < 0 ||
        us > US_PER_DAY)
        return fail_value(field, name, "a time of day since midnight (up to 24:00:00)", value,
                          errstr, errstr_size);
    append_time(&b, us);
    *out = buf_string(&b);
    return true;
}

static bool decode_timestamp(const json_t *value, unit_t unit, json_t **out, const char *field,
                             const char *name, char *errstr, size_t errstr_size)
{
    ds_buf_t b = DS_BUF_INIT;
    int64_t us;

    if (json_is_integer(value) && to_us(json_integer_value(value), unit, &us) &&
        (us == TIMESTAMP_POSITIVE_INFINITY || us == TIMESTAMP_NEGATIVE_INFINITY)) {
        *out = json_string(us > 0 ? "infinity" : "-infinity");
        return true;
    }
    if (!json_is_integer(value) || !to_us(json_integer_value(value), unit, &us) ||
        !append_timestamp(&b, us)) {
        ds_buf_free(&b);
        return fail_value(field, name,
                          "an epoch count within PostgreSQL's timestamp range (Debezium writes "
                          "infinity out of it)",
                          value, errstr, errstr_size);
    }
    *out = buf_string(&b);
    return true;
}

static bool decode_duration(const json_t *value, json_t **out, const char *field, const char *name,
                            char *errstr, size_t errstr_size)
{
    ds_buf_t b = DS_BUF_INIT;
    int64_t us, months, days;

    if (!json_is_integer(value))
        return fail_value(field, name, "a duration in microseconds", value, errstr, errstr_size);
    /* Debezium folded months (30.4375 days) and days (24 h) into one count: taking them out
     * again, largest first, gives back every interval whose days and time stay under a
     * month's 30.4375 days (docs/debezium.md, "Apply on Debezium's topics"). */
    us = json_integer_value(value);
    months = us / US_PER_MONTH;
    us %= US_PER_MONTH;
    days = us / US_PER_DAY;
    us %= US_PER_DAY;
    append_interval(&b, months, days, us);
    *out = buf_string(&b);
    return true;
}

/* A Connect Decimal (base64 unscaled) or a VariableScaleDecimal's "value" at @p scale. */
static bool decode_unscaled(const json_t *value, int64_t scale, json_t **out, const char *field,
                            const char *name, char *errstr, size_t errstr_size)
{
    const char *text = json_string_value(value);
    size_t len = json_string_length(value);
    uint8_t *bytes;
    long n;
    ds_buf_t b = DS_BUF_INIT;

    if (!text || len == 0)
        return fail_value(field, name, "base64 of an unscaled big-endian integer", value, errstr,
                          errstr_size);
    bytes = malloc(len);
    if (!bytes)
        return ds_fail(errstr, errstr_size, "out of memory");
    n = base64_decode(text, len, bytes);
    if (n <= 0 || !append_unscaled(&b, bytes, n, scale)) {
        free(bytes);
        ds_buf_free(&b);
        return fail_value(field, name, "base64 of an unscaled big-endian integer", value, errstr,
                          errstr_size);
    }
    free(bytes);
    *out = buf_string(&b);
    return true;
}

/* The integer parameter @p key of a field schema ("parameters" values are strings). */
static bool schema_parameter(const json_t *schema, const char *key, int64_t *value)
{
    const char *text =
        json_string_value(json_object_get(json_object_get(schema, "parameters"), key));
    char *end;

    if (!text || !*text)
        return false;
    *value = strtoll(text, &end, 10);
    return *end == '\0';
}

/* io.debezium.data.Bits: BitSet.toByteArray() (bit i of the text's last character first,
 * little-endian), "length" bits of bit(n). */
static bool decode_bits(const json_t *schema, const json_t *value, json_t **out, const char *field,
                        const char *name, char *errstr, size_t errstr_size)
{
    const char *text = json_string_value(value);
    size_t len = json_string_length(value);
    int64_t length;
    uint8_t *bytes;
    long n;
    ds_buf_t b = DS_BUF_INIT;

    if (!schema_parameter(schema, "length", &length) || length < 1 || length > 83886080)
        return ds_fail(errstr, errstr_size, "field %s (%s): the schema has no \"length\"", field,
                       name);
    if (!text)
        return fail_value(field, name, "base64 of the bits", value, errstr, errstr_size);
    bytes = malloc(len + 1);
    if (!bytes)
        return ds_fail(errstr, errstr_size, "out of memory");
    n = base64_decode(text, len, bytes);
    if (n < 0 || (int64_t)n * 8 > length + 7) {
        free(bytes);
        return fail_value(field, name, "base64 of at most \"length\" bits", value, errstr,
                          errstr_size);
    }
    for (int64_t i = length - 1; i >= 0; i--)
        ds_buf_append_char(&b, i / 8 < n && (bytes[i / 8] >> (i % 8)) & 1 ? '1' : '0');
    free(bytes);
    *out = buf_string(&b);
    return true;
}

/*
 * An IsoDate or IsoTimestamp with a signed year: java.time's astronomical years (-0043 is
 * 44 BC), or Debezium's renderings of its infinity stand-ins, back into capture's text.
 */
static bool decode_signed_iso(const char *text, size_t len, json_t **out, const char *field,
                              const char *name, char *errstr, size_t errstr_size)
{
    static const char *const infinities[][2] = {
        {"-5877611-06-21", "infinity"},
        {"-5877611-06-22", "-infinity"},
        {"+294247-01-10T04:00:25.2", "infinity"},
        {"-290308-12-21T19:59:27.6", "-infinity"},
    };
    size_t end = len > 0 && text[len - 1] == 'Z' ? len - 1 : len, digits = 1;
    long year;
    ds_buf_t b = DS_BUF_INIT;

    for (size_t i = 0; i < sizeof(infinities) / sizeof(infinities[0]); i++) {
        if (strlen(infinities[i][0]) == end && memcmp(text, infinities[i][0], end) == 0) {
            *out = json_string(infinities[i][1]);
            return true;
        }
    }
    while (digits < end && text[digits] >= '0' && text[digits] <= '9')
        digits++;
    year = strtol(text + 1, NULL, 10);
    if (text[0] != '-' || digits < 5 || digits >= end || text[digits] != '-' || year > 4713)
        return ds_fail(errstr, errstr_size, "field %s (%s): \"%.40s\" is out of PostgreSQL's range",
                       field, name, text);
    ds_buf_appendf(&b, "%04ld", year + 1);
    for (size_t i = digits; i < end; i++)
        ds_buf_append_char(&b, text[i] == 'T' ? ' ' : text[i]);
    ds_buf_append_str(&b, " BC");
    *out = buf_string(&b);
    return true;
}

/* Debezium's ISO strings (IsoDate, IsoTime, IsoTimestamp of time.precision.mode isostring;
 * ZonedTimestamp; ZonedTime) in PostgreSQL's text: the "Z" dropped (a zoneless type) or
 * written "+00" (Debezium converts to UTC), "T" a space, the fraction's trailing zeros
 * trimmed. */
static bool decode_iso(const json_t *value, bool zoned, bool timetz, json_t **out,
                       const char *field, const char *name, char *errstr, size_t errstr_size)
{
    const char *text = json_string_value(value);
    size_t len = json_string_length(value), end, dot = 0;
    ds_buf_t b = DS_BUF_INIT;

    if (!text)
        return fail_value(field, name, "an ISO 8601 string", value, errstr, errstr_size);
    if (!zoned && len > 0 && (text[0] == '-' || text[0] == '+'))
        return decode_signed_iso(text, len, out, field, name, errstr, errstr_size);
    if (len == 0 || text[len - 1] != 'Z')
        return true; /* infinity, or an offset PostgreSQL reads as it is */
    end = len - 1;
    for (size_t i = end; i > 0; i--) {
        if (text[i - 1] == '.') {
            dot = i - 1;
            break;
        }
        if (text[i - 1] < '0' || text[i - 1] > '9')
            break;
    }
    if (dot) {
        while (end > dot + 1 && text[end - 1] == '0')
            end--;
        if (end == dot + 1)
            end = dot;
    }
    for (size_t i = 0; i < end; i++)
        ds_buf_append_char(&b, text[i] == 'T' ? ' ' : text[i]);
    if (zoned || timetz)
        ds_buf_append_str(&b, "+00");
    *out = buf_string(&b);
    return true;
}

/*
 * interval.handling.mode string: Debezium writes every part ("P0Y0M-1DT-2H0M0S"), PostgreSQL
 * and capture only the parts that are not zero ("P-1DT-2H"): parsed, then written as capture
 * does. Each part keeps its own sign; only seconds have a fraction.
 */
static bool decode_iso_interval(const json_t *value, json_t **out, const char *field,
                                const char *name, char *errstr, size_t errstr_size)
{
    const char *text = json_string_value(value), *p;
    int64_t months = 0, days = 0, us = 0;
    bool time = false;
    ds_buf_t b = DS_BUF_INIT;

    if (!text || text[0] != 'P' || !text[1])
        return fail_value(field, name, "an ISO 8601 duration", value, errstr, errstr_size);
    for (p = text + 1; *p;) {
        char *end;
        long long n;
        int64_t frac = 0;

        if (*p == 'T' && !time) {
            time = true;
            p++;
            continue;
        }
        n = strtoll(p, &end, 10);
        if (end == p || (end - p == 1 && (*p == '-' || *p == '+')))
            return fail_value(field, name, "an ISO 8601 duration", value, errstr, errstr_size);
        if (*end == '.' && time) {
            int digits = 0;

            for (end++; *end >= '0' && *end <= '9'; end++, digits++) {
                if (digits < 6)
                    frac = frac * 10 + (*end - '0');
            }
            for (; digits < 6; digits++)
                frac *= 10;
            if (*p == '-')
                frac = -frac;
        }
        switch (time ? *end | 0x100 : *end) {
        case 'Y':
            months += 12 * (int64_t)n;
            break;
        case 'M':
            months += n;
            break;
        case 'W':
            days += 7 * (int64_t)n;
            break;
        case 'D':
            days += n;
            break;
        case 'H' | 0x100:
            us += n * 3600 * US_PER_SEC;
            break;
        case 'M' | 0x100:
            us += n * 60 * US_PER_SEC;
            break;
        case 'S' | 0x100:
            us += n * US_PER_SEC + frac;
            break;
        default:
            return fail_value(field, name, "an ISO 8601 duration", value, errstr, errstr_size);
        }
        if (frac && *end != 'S')
            return fail_value(field, name, "an ISO 8601 duration", value, errstr, errstr_size);
        p = end + 1;
    }
    append_interval(&b, months, days, us);
    *out = buf_string(&b);
    return true;
}

static bool decode_struct(const json_t *schema, const json_t *obj, json_t **out, const char *path,
                          char *errstr, size_t errstr_size);

static bool decode_array(const json_t *schema, const json_t *value, json_t **out, const char *field,
                         char *errstr, size_t errstr_size)
{
    const json_t *items = json_object_get(schema, "items");
    size_t i;
    json_t *element;

    if (!json_is_array(value))
        return fail_value(field, "array", "an array", value, errstr, errstr_size);
    json_array_foreach(value, i, element)
    {
        json_t *decoded = NULL;

        if (!ds_debezium_decode_value(items, element, &decoded, field, errstr, errstr_size)) {
            json_decref(*out);
            *out = NULL;
            return false;
        }
        if (!decoded)
            continue;
        if (!*out && !(*out = json_copy((json_t *)value))) {
            json_decref(decoded);
            return ds_fail(errstr, errstr_size, "out of memory");
        }
        json_array_set_new(*out, i, decoded);
    }
    return true;
}

/* The logical types of dates, times and durations, and how each is decoded. */
typedef enum temporal_kind {
    TEMPORAL_DATE,         /* days since 1970-01-01 */
    TEMPORAL_TIME,         /* time of day in unit */
    TEMPORAL_TIMESTAMP,    /* since the epoch in unit */
    TEMPORAL_DURATION,     /* MicroDuration */
    TEMPORAL_ISO,          /* an ISO string (Zoned* in UTC, Iso*) */
    TEMPORAL_ISO_INTERVAL, /* Debezium's P<y>Y<m>M<d>DT<h>H<m>M<s>S */
} temporal_kind_t;

typedef struct temporal_type {
    const char *name;
    uint32_t oid; /* what the value is */
    temporal_kind_t kind;
    unit_t unit;
} temporal_type_t;

static const temporal_type_t temporal_types[] = {
    {"io.debezium.time.Date", DS_OID_DATE, TEMPORAL_DATE, UNIT_MS},
    {"io.debezium.time.Time", DS_OID_TIME, TEMPORAL_TIME, UNIT_MS},
    {"io.debezium.time.MicroTime", DS_OID_TIME, TEMPORAL_TIME, UNIT_US},
    {"io.debezium.time.NanoTime", DS_OID_TIME, TEMPORAL_TIME, UNIT_NS},
    {"io.debezium.time.Timestamp", DS_OID_TIMESTAMP, TEMPORAL_TIMESTAMP, UNIT_MS},
    {"io.debezium.time.MicroTimestamp", DS_OID_TIMESTAMP, TEMPORAL_TIMESTAMP, UNIT_US},
    {"io.debezium.time.NanoTimestamp", DS_OID_TIMESTAMP, TEMPORAL_TIMESTAMP, UNIT_NS},
    {"io.debezium.time.MicroDuration", DS_OID_INTERVAL, TEMPORAL_DURATION, UNIT_US},
    {"io.debezium.time.ZonedTimestamp", DS_OID_TIMESTAMPTZ, TEMPORAL_ISO, UNIT_US},
    {"io.debezium.time.ZonedTime", DS_OID_TIMETZ, TEMPORAL_ISO, UNIT_US},
    {"io.debezium.time.IsoDate", DS_OID_DATE, TEMPORAL_ISO, UNIT_US},
    {"io.debezium.time.IsoTime", DS_OID_TIME, TEMPORAL_ISO, UNIT_US},
    {"io.debezium.time.IsoTimestamp", DS_OID_TIMESTAMP, TEMPORAL_ISO, UNIT_US},
    {"io.debezium.time.Interval", DS_OID_INTERVAL, TEMPORAL_ISO_INTERVAL, UNIT_US},
    {"org.apache.kafka.connect.data.Date", DS_OID_DATE, TEMPORAL_DATE, UNIT_MS},
    {"org.apache.kafka.connect.data.Time", DS_OID_TIME, TEMPORAL_TIME, UNIT_MS},
    {"org.apache.kafka.connect.data.Timestamp", DS_OID_TIMESTAMP, TEMPORAL_TIMESTAMP, UNIT_MS},
};

bool ds_debezium_decode_text(const json_t *schema, const json_t *value, json_t **out, uint32_t *oid,
                             const char *field, char *errstr, size_t errstr_size)
{
    const char *type = json_string_value(json_object_get(schema, "type"));
    const char *name = json_string_value(json_object_get(schema, "name"));

    *out = NULL;
    *oid = 0;
    if (!value || json_is_null(value) || !type || !name)
        return true;
    for (size_t i = 0; i < sizeof(temporal_types) / sizeof(temporal_types[0]); i++) {
        const temporal_type_t *t = &temporal_types[i];

        if (strcmp(name, t->name) != 0)
            continue;
        *oid = t->oid;
        switch (t->kind) {
        case TEMPORAL_DATE:
            return decode_date(value, out, field, name, errstr, errstr_size);
        case TEMPORAL_TIME:
            return decode_time(value, t->unit, out, field, name, errstr, errstr_size);
        case TEMPORAL_TIMESTAMP:
            return decode_timestamp(value, t->unit, out, field, name, errstr, errstr_size);
        case TEMPORAL_DURATION:
            return decode_duration(value, out, field, name, errstr, errstr_size);
        case TEMPORAL_ISO:
            return decode_iso(value, t->oid == DS_OID_TIMESTAMPTZ || t->oid == DS_OID_TIMETZ,
                              t->oid == DS_OID_TIMETZ, out, field, name, errstr, errstr_size);
        case TEMPORAL_ISO_INTERVAL:
            return decode_iso_interval(value, out, field, name, errstr, errstr_size);
        }
    }
    if (strncmp(name, "io.debezium.time.", 17) == 0)
        return true; /* a time type this version does not know: left as it is */
    if (strcmp(name, "org.apache.kafka.connect.data.Decimal") == 0) {
        int64_t scale;

        if (!schema_parameter(schema, "scale", &scale))
            return ds_fail(errstr, errstr_size,
                           "field %s (%s): the schema has no integer \"scale\" parameter", field,
                           name);
        *oid = DS_OID_NUMERIC;
        return decode_unscaled(value, scale, out, field, name, errstr, errstr_size);
    }
    if (strcmp(name, "io.debezium.data.VariableScaleDecimal") == 0) {
        const json_t *scale = json_object_get(value, "scale");

        if (!json_is_object(value) || !json_is_integer(scale))
            return fail_value(field, name, "{\"scale\": integer, \"value\": base64}", value, errstr,
                              errstr_size);
        *oid = DS_OID_NUMERIC;
        return decode_unscaled(json_object_get(value, "value"), json_integer_value(scale), out,
                               field, name, errstr, errstr_size);
    }
    if (strcmp(name, "io.debezium.data.Bits") == 0)
        return *oid = OID_BIT, decode_bits(schema, value, out, field, name, errstr, errstr_size);
    return true; /* Json, Uuid, Enum, Xml, ...: the text PostgreSQL wrote */
}

/* @p text, PostgreSQL's text of a value of type @p oid, as capture's classic values write it
 * (what mappings read, and what `dualsync verify` renders the source rows with). */
static bool render(uint32_t oid, json_t *text, json_t **out, const char *field, char *errstr,
                   size_t errstr_size)
{
    ds_buf_t b = DS_BUF_INIT;
    char why[512];

    if (!ds_typemap_append_json(&b, oid, json_string_value(text), json_string_length(text), why,
                                sizeof(why))) {
        ds_buf_free(&b);
        json_decref(text);
        return ds_fail(errstr, errstr_size, "field %s: %s", field, why);
    }
    json_decref(text);
    *out = json_loadb(b.data, b.len, JSON_DECODE_ANY, NULL);
    ds_buf_free(&b);
    return *out ? true : ds_fail(errstr, errstr_size, "out of memory");
}

bool ds_debezium_decode_value(const json_t *schema, const json_t *value, json_t **out,
                              const char *field, char *errstr, size_t errstr_size)
{
    const char *type = json_string_value(json_object_get(schema, "type"));
    const char *name = json_string_value(json_object_get(schema, "name"));
    json_t *text;
    uint32_t oid;

    *out = NULL;
    if (!value || json_is_null(value) || !type)
        return true;
    if (strcmp(type, "array") == 0)
        return decode_array(schema, value, out, field, errstr, errstr_size);
    if (!ds_debezium_decode_text(schema, value, &text, &oid, field, errstr, errstr_size))
        return false;
    if (text)
        return render(oid, text, out, field, errstr, errstr_size);
    if (strcmp(type, "struct") == 0 && json_is_object(value) &&
        !(name && strcmp(name, "io.debezium.data.VariableScaleDecimal") == 0))
        return decode_struct(schema, value, out, field, errstr, errstr_size);
    return true; /* integers, floats, booleans, strings, bytes (base64 both ways) */
}

/* Decodes each member of @p obj by its field in the struct @p schema; *out is a copy with the
 * decoded members, or NULL when none changed. */
static bool decode_struct(const json_t *schema, const json_t *obj, json_t **out, const char *path,
                          char *errstr, size_t errstr_size)
{
    const json_t *fields = json_object_get(schema, "fields");
    size_t i;
    const json_t *f;

    *out = NULL;
    json_array_foreach(fields, i, f)
    {
        const char *name = json_string_value(json_object_get(f, "field"));
        const json_t *v = name ? json_object_get(obj, name) : NULL;
        json_t *decoded = NULL;
        char field[512];

        if (!v || json_is_null(v))
            continue;
        snprintf(field, sizeof(field), "%s%s%s", path, *path ? "." : "", name);
        if (!ds_debezium_decode_value(f, v, &decoded, field, errstr, errstr_size)) {
            json_decref(*out);
            *out = NULL;
            return false;
        }
        if (!decoded)
            continue;
        /* A shallow copy keeps the members' order, which a key's text depends on. */
        if (!*out && !(*out = json_copy((json_t *)obj))) {
            json_decref(decoded);
            return ds_fail(errstr, errstr_size, "out of memory");
        }
        json_object_set_new(*out, name, decoded);
    }
    return true;
}

/* ---- messages -------------------------------------------------------------------------- */

/* The field schema named @p name among the fields of the struct @p schema. */
static const json_t *field_schema(const json_t *schema, const char *name)
{
    const json_t *fields = json_object_get(schema, "fields"), *f;
    size_t i;

    json_array_foreach(fields, i, f)
    {
        const char *n = json_string_value(json_object_get(f, "field"));

        if (n && strcmp(n, name) == 0)
            return f;
    }
    return NULL;
}

/* {"schema": ..., "payload": ...}: JsonConverter's two members, nothing else. A Debezium
 * change value has op, source, ts_ms... besides, so the member count decides at once. */
static bool is_envelope(const json_t *doc)
{
    return json_is_object(doc) && json_object_size(doc) == 2 && json_object_get(doc, "payload") &&
           json_object_get(doc, "schema");
}

static bool decode_key(ds_debezium_decoder_t *d, const char **key, size_t *key_len, char *errstr,
                       size_t errstr_size)
{
    json_error_t jerr;
    const json_t *payload;
    json_t *decoded = NULL;

    json_decref(d->key_doc);
    d->key_doc = json_loadb(*key, *key_len, 0, &jerr);
    if (!is_envelope(d->key_doc))
        return true; /* a key whose first member happens to be "schema" */
    payload = json_object_get(d->key_doc, "payload");
    if (json_is_null(payload)) {
        *key = NULL;
        *key_len = 0;
        return true;
    }
    if (!json_is_object(payload))
        return ds_fail(errstr, errstr_size, "the message key's payload is not an object");
    if (!decode_struct(json_object_get(d->key_doc, "schema"), payload, &decoded, "key", errstr,
                       errstr_size))
        return false;
    ds_buf_reset(&d->key);
    {
        /* Compact, in the key's order: the text capture writes for the same key. */
        char *text = json_dumps(decoded ? decoded : payload, JSON_COMPACT | JSON_PRESERVE_ORDER);

        json_decref(decoded);
        if (!text)
            return ds_fail(errstr, errstr_size, "out of memory");
        ds_buf_append_str(&d->key, text);
        free(text);
    }
    *key = d->key.data;
    *key_len = d->key.len;
    return true;
}

bool ds_debezium_decoder_add_table(ds_debezium_decoder_t *d, const char *topic, json_t *schema)
{
    const json_t *fields = json_object_get(schema, "fields"), *f;
    json_t *columns = json_object(), *entry = json_object();
    size_t i;
    bool ok = columns && entry && (d->tables || (d->tables = json_object()));

    json_array_foreach(fields, i, f)
    {
        const char *name = json_string_value(json_object_get(f, "field"));

        ok = ok && name && json_object_set(columns, name, (json_t *)f) == 0;
    }
    ok = ok && json_object_set(entry, "schema", schema) == 0;
    /* json_object_set_new takes the reference, on failure too. */
    if (ok) {
        ok = json_object_set_new(entry, "columns", columns) == 0;
        columns = NULL;
    }
    if (ok) {
        ok = json_object_set_new(d->tables, topic, entry) == 0;
        entry = NULL;
    }
    json_decref(columns);
    json_decref(entry);
    json_decref(schema);
    return ok;
}

/* Decodes the before and after of @p payload by @p row_schema (NULL: each by its field of
 * the envelope schema @p schema); *value becomes the decoded copy when anything changed. */
static bool decode_rows(ds_debezium_decoder_t *d, const json_t *schema, const json_t *table,
                        const json_t *payload, const json_t **value, char *errstr,
                        size_t errstr_size)
{
    static const char *const rows[] = {"before", "after"};
    json_t *copy = NULL;

    for (int r = 0; r < 2; r++) {
        const json_t *row = json_object_get(payload, rows[r]);
        const json_t *columns = json_object_get(table, "columns");
        const char *name;
        json_t *decoded = NULL, *v;

        if (!json_is_object(row))
            continue;
        /* A column the catalog read at start does not have (added since) could hold any
         * encoding: not read as it is. */
        json_object_foreach((json_t *)row, name, v)
        {
            if (table && !json_object_get(columns, name)) {
                json_decref(copy);
                return ds_fail(errstr, errstr_size,
                               "field %s.%s is not a column of the source table as apply read "
                               "its catalog at start (a column added since?): restart apply",
                               rows[r], name);
            }
        }
        if (!decode_struct(table ? json_object_get(table, "schema") : field_schema(schema, rows[r]),
                           row, &decoded, rows[r], errstr, errstr_size)) {
            json_decref(copy);
            return false;
        }
        if (!decoded)
            continue;
        if (!copy && !(copy = json_copy((json_t *)payload))) {
            json_decref(decoded);
            return ds_fail(errstr, errstr_size, "out of memory");
        }
        json_object_set_new(copy, rows[r], decoded);
    }
    json_decref(d->value);
    d->value = copy;
    *value = copy ? copy : payload;
    return true;
}

/* A schemaless key of a table whose types the catalog gave: its members decoded. */
static bool decode_plain_key(ds_debezium_decoder_t *d, const json_t *table, const char **key,
                             size_t *key_len, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    json_t *decoded = NULL;
    char *text;

    json_decref(d->key_doc);
    d->key_doc = json_loadb(*key, *key_len, 0, &jerr);
    if (!json_is_object(d->key_doc))
        return true;
    if (!decode_struct(json_object_get(table, "schema"), d->key_doc, &decoded, "key", errstr,
                       errstr_size))
        return false;
    if (!decoded)
        return true;
    text = json_dumps(decoded, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(decoded);
    if (!text)
        return ds_fail(errstr, errstr_size, "out of memory");
    ds_buf_reset(&d->key);
    ds_buf_append_str(&d->key, text);
    free(text);
    *key = d->key.data;
    *key_len = d->key.len;
    return true;
}

bool ds_debezium_decode_change(ds_debezium_decoder_t *d, const char *topic, const json_t **value,
                               const char **key, size_t *key_len, char *errstr, size_t errstr_size)
{
    const json_t *payload, *table;

    if (*key && *key_len > ENVELOPE_PREFIX_LEN &&
        memcmp(*key, ENVELOPE_PREFIX, ENVELOPE_PREFIX_LEN) == 0 &&
        !decode_key(d, key, key_len, errstr, errstr_size))
        return false;
    if (!*value)
        return true;
    if (is_envelope(*value)) {
        payload = json_object_get(*value, "payload");
        if (json_is_null(payload)) {
            *value = NULL; /* a tombstone written with a schema */
            return true;
        }
        if (!json_is_object(payload))
            return ds_fail(errstr, errstr_size, "the message value's payload is not an object");
        return decode_rows(d, json_object_get(*value, "schema"), NULL, payload, value, errstr,
                           errstr_size);
    }
    if (!d->schema_needed)
        return true;
    if (!d->tables || !(table = json_object_get(d->tables, topic)))
        return ds_fail(errstr, errstr_size,
                       "the message has no schema envelope ({\"schema\":...,\"payload\":...}), "
                       "and the source catalog has no table for topic %s: under the "
                       "\"debezium\" settings (%s \"%s\") its values cannot be read without "
                       "their types",
                       topic,
                       schemaless_blocker(&d->format) ? schemaless_blocker(&d->format)
                                                      : "time.precision.mode",
                       setting_value(&d->format, schemaless_blocker(&d->format)
                                                     ? schemaless_blocker(&d->format)
                                                     : "time.precision.mode"));
    if (*key && !decode_plain_key(d, table, key, key_len, errstr, errstr_size))
        return false;
    return decode_rows(d, NULL, table, *value, value, errstr, errstr_size);
}
