/*
 * typemap_classic.c: dualsync's own JSON for a column value, written when the configuration
 * has no "debezium" object (docs/type-mapping.md, "dualsync's classic values"): numbers for
 * integers and floats, base64 for bytea, the JSON document as a string for json/jsonb, a
 * string keeping every digit for numeric, and dates and times as PostgreSQL writes them in
 * ISO 8601, so a person reading a topic sees the values the database holds.
 *
 * These are also the values mappings read: apply decodes topics written under Debezium's
 * value settings into them (consumers/debezium_decode.c), and verify renders the legacy rows
 * with them. They do not change from one release to the next, since a mapping deriving an
 * identity from a date (a uuid5 of the date of birth) would derive another one.
 *
 * Every parser here checks its input: capture must never publish a value that is silently
 * different from the database's, so text that is not what the fixed session settings
 * (DateStyle=ISO, IntervalStyle=iso_8601, TimeZone=UTC, extra_float_digits=3) produce is an
 * error naming the type and the value.
 */
#include <stdio.h>
#include <string.h>

#include "dualsync/typemap.h"
#include "typemap_internal.h"



/* The element types of the arrays mapped element by element; other arrays are the string of
 * their literal. Fixed here: a classic value never changes (typemap.c's list has grown). */
static uint32_t classic_array_element(uint32_t type_oid)
{
    switch (type_oid) {
    case 1000:
        return DS_OID_BOOL;
    case 1001:
        return DS_OID_BYTEA;
    case 1002:
        return DS_OID_CHAR;
    case 1003:
        return DS_OID_NAME;
    case 1005:
        return DS_OID_INT2;
    case 1007:
        return DS_OID_INT4;
    case 1009:
        return DS_OID_TEXT;
    case 1014:
        return DS_OID_BPCHAR;
    case 1015:
        return DS_OID_VARCHAR;
    case 1016:
        return DS_OID_INT8;
    case 1021:
        return DS_OID_FLOAT4;
    case 1022:
        return DS_OID_FLOAT8;
    case 1028:
        return DS_OID_OID;
    case 1115:
        return DS_OID_TIMESTAMP;
    case 1182:
        return DS_OID_DATE;
    case 1183:
        return DS_OID_TIME;
    case 1185:
        return DS_OID_TIMESTAMPTZ;
    case 1187:
        return DS_OID_INTERVAL;
    case 1231:
        return DS_OID_NUMERIC;
    case 199:
        return DS_OID_JSON;
    case 2951:
        return DS_OID_UUID;
    case 3807:
        return DS_OID_JSONB;
    default:
        return 0;
    }
}

static bool is_word(const char *text, size_t len, const char *word)
{
    size_t n = strlen(word);

    return len == n && memcmp(text, word, n) == 0;
}

/* True when text is a JSON number (RFC 8259 section 6). */
static bool is_json_number(const char *text, size_t len)
{
    size_t i = 0;

    if (i < len && text[i] == '-')
        i++;
    if (i >= len || !ds_typemap_is_digit(text[i]))
        return false;
    if (text[i] == '0')
        i++;
    else
        while (i < len && ds_typemap_is_digit(text[i]))
            i++;
    if (i < len && text[i] == '.') {
        i++;
        if (i >= len || !ds_typemap_is_digit(text[i]))
            return false;
        while (i < len && ds_typemap_is_digit(text[i]))
            i++;
    }
    if (i < len && (text[i] == 'e' || text[i] == 'E')) {
        i++;
        if (i < len && (text[i] == '+' || text[i] == '-'))
            i++;
        if (i >= len || !ds_typemap_is_digit(text[i]))
            return false;
        while (i < len && ds_typemap_is_digit(text[i]))
            i++;
    }
    return i == len;
}

/* float4, float8: JSON numbers; the three values JSON has no number for become strings. */
static bool map_float(ds_buf_t *out, uint32_t oid, const char *text, size_t len, char *errstr,
                      size_t errstr_size)
{
    if (is_word(text, len, "NaN") || is_word(text, len, "Infinity") ||
        is_word(text, len, "-Infinity")) {
        ds_typemap_append_quoted(out, text, len);
        return true;
    }
    if (!is_json_number(text, len))
        return ds_typemap_invalid(oid, text, len, "expected a number, NaN, Infinity or -Infinity", errstr,
                       errstr_size);
    ds_buf_append(out, text, len);
    return true;
}

/* numeric: a string with every digit PostgreSQL wrote; a JSON number would go through a
 * double in most consumers and lose precision and trailing zeros. */
static bool map_numeric(ds_buf_t *out, const char *text, size_t len, char *errstr,
                        size_t errstr_size)
{
    size_t i = 0;

    if (is_word(text, len, "NaN") || is_word(text, len, "Infinity") ||
        is_word(text, len, "-Infinity")) {
        ds_typemap_append_quoted(out, text, len);
        return true;
    }
    if (i < len && text[i] == '-')
        i++;
    if (i >= len || !ds_typemap_is_digit(text[i]))
        goto bad;
    while (i < len && ds_typemap_is_digit(text[i]))
        i++;
    if (i < len && text[i] == '.') {
        i++;
        if (i >= len || !ds_typemap_is_digit(text[i]))
            goto bad;
        while (i < len && ds_typemap_is_digit(text[i]))
            i++;
    }
    if (i != len)
        goto bad;
    ds_typemap_append_quoted(out, text, len);
    return true;

bad:
    return ds_typemap_invalid(DS_OID_NUMERIC, text, len, "expected [-]digits[.digits], NaN or Infinity",
                   errstr, errstr_size);
}

/* Reads between min_digits and max_digits digits at text[*pos] into *value. */
static bool parse_number(const char *text, size_t len, size_t *pos, int min_digits, int max_digits,
                         int *value)
{
    int n = 0, v = 0;

    while (*pos < len && n < max_digits && ds_typemap_is_digit(text[*pos])) {
        v = v * 10 + (text[*pos] - '0');
        (*pos)++;
        n++;
    }
    *value = v;
    return n >= min_digits && !(*pos < len && ds_typemap_is_digit(text[*pos]));
}

static bool expect_char(const char *text, size_t len, size_t *pos, char c)
{
    if (*pos < len && text[*pos] == c) {
        (*pos)++;
        return true;
    }
    return false;
}

/* A broken-down date and time, as parsed from PostgreSQL's ISO output. */
typedef struct civil {
    int year;        /* as written, before any BC */
    int month;       /* 1..12 */
    int day;         /* 1..31 */
    int hour;        /* 0..24 (24 only for time: "24:00:00") */
    int minute;      /* 0..59 */
    int second;      /* 0..60 */
    size_t frac;     /* offset of the fraction's '.', or the end of the seconds when none */
    size_t frac_len; /* bytes of ".123456", 0 when none */
} civil_t;

/* "YYYY-MM-DD": ISO DateStyle always writes at least four year digits (and more past 9999;
 * timestamps reach 294276, dates 5874897). */
static bool parse_date(const char *text, size_t len, size_t *pos, civil_t *c)
{
    return parse_number(text, len, pos, 4, 7, &c->year) && expect_char(text, len, pos, '-') &&
           parse_number(text, len, pos, 2, 2, &c->month) && expect_char(text, len, pos, '-') &&
           parse_number(text, len, pos, 2, 2, &c->day) && c->month >= 1 && c->month <= 12 &&
           c->day >= 1 && c->day <= 31;
}

/* "HH:MM:SS[.ffffff]" */
static bool parse_time(const char *text, size_t len, size_t *pos, civil_t *c)
{
    if (!(parse_number(text, len, pos, 2, 2, &c->hour) && expect_char(text, len, pos, ':') &&
          parse_number(text, len, pos, 2, 2, &c->minute) && expect_char(text, len, pos, ':') &&
          parse_number(text, len, pos, 2, 2, &c->second)))
        return false;
    c->frac = *pos;
    c->frac_len = 0;
    if (*pos < len && text[*pos] == '.') {
        (*pos)++;
        if (*pos >= len || !ds_typemap_is_digit(text[*pos]))
            return false;
        while (*pos < len && ds_typemap_is_digit(text[*pos]))
            (*pos)++;
        c->frac_len = *pos - c->frac;
    }
    return c->hour <= 24 && c->minute <= 59 && c->second <= 60;
}

/* True when text ends in " BC" (ISO DateStyle's era marker), which is then cut off *len. */
static bool strip_bc(const char *text, size_t *len)
{
    if (*len >= 3 && memcmp(text + *len - 3, " BC", 3) == 0) {
        *len -= 3;
        return true;
    }
    return false;
}

static bool is_infinity(const char *text, size_t len)
{
    return is_word(text, len, "infinity") || is_word(text, len, "-infinity");
}

/* date: the ISO text as it is ("2024-01-31", "infinity", "0044-03-15 BC"). */
static bool map_date(ds_buf_t *out, const char *text, size_t len, char *errstr, size_t errstr_size)
{
    size_t pos = 0, end = len;
    civil_t c;

    if (!is_infinity(text, len)) {
        strip_bc(text, &end);
        if (!parse_date(text, end, &pos, &c) || pos != end)
            return ds_typemap_invalid(DS_OID_DATE, text, len, "expected YYYY-MM-DD (DateStyle=ISO)", errstr,
                           errstr_size);
    }
    ds_typemap_append_quoted(out, text, len);
    return true;
}

/* time: "10:00:00.123" as it is. */
static bool map_time(ds_buf_t *out, const char *text, size_t len, char *errstr, size_t errstr_size)
{
    size_t pos = 0;
    civil_t c;

    if (!parse_time(text, len, &pos, &c) || pos != len)
        return ds_typemap_invalid(DS_OID_TIME, text, len, "expected HH:MM:SS[.ffffff]", errstr, errstr_size);
    ds_typemap_append_quoted(out, text, len);
    return true;
}

/* timestamp: ISO 8601 with a 'T' for the space. BC and infinite values keep PostgreSQL's
 * text: ISO 8601 years before 1 need astronomical numbering (1 BC is year 0), which would
 * confuse more readers than it helps. */
static bool map_timestamp(ds_buf_t *out, const char *text, size_t len, char *errstr,
                          size_t errstr_size)
{
    size_t pos = 0, end = len, date_end;
    civil_t c;
    bool bc;

    if (is_infinity(text, len)) {
        ds_typemap_append_quoted(out, text, len);
        return true;
    }
    bc = strip_bc(text, &end);
    if (!parse_date(text, end, &pos, &c))
        goto bad;
    date_end = pos;
    if (!expect_char(text, end, &pos, ' ') || !parse_time(text, end, &pos, &c) || pos != end ||
        c.hour > 23)
        goto bad;
    if (bc) {
        ds_typemap_append_quoted(out, text, len);
        return true;
    }
    ds_buf_append_char(out, '"');
    ds_buf_append(out, text, date_end);
    ds_buf_append_char(out, 'T');
    ds_buf_append(out, text + date_end + 1, len - date_end - 1);
    ds_buf_append_char(out, '"');
    return true;

bad:
    return ds_typemap_invalid(DS_OID_TIMESTAMP, text, len, "expected YYYY-MM-DD HH:MM:SS[.ffffff]", errstr,
                   errstr_size);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    int64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/*
 * timestamptz: UTC ISO 8601 ending in 'Z'. With TimeZone=UTC the server always writes
 * "+00"; any other offset (a session that overrode TimeZone) is converted to UTC exactly,
 * so the value is right whatever the session did. BC and infinite values keep their text.
 */
static bool map_timestamptz(ds_buf_t *out, const char *text, size_t len, char *errstr,
                            size_t errstr_size)
{
    size_t pos = 0, end = len, date_end, time_end;
    int off_h = 0, off_m = 0, off_s = 0, sign;
    civil_t c;
    bool bc;

    if (is_infinity(text, len)) {
        ds_typemap_append_quoted(out, text, len);
        return true;
    }
    bc = strip_bc(text, &end);
    if (!parse_date(text, end, &pos, &c))
        goto bad;
    date_end = pos;
    if (!expect_char(text, end, &pos, ' ') || !parse_time(text, end, &pos, &c) || c.hour > 23)
        goto bad;
    time_end = pos;
    if (pos >= end || (text[pos] != '+' && text[pos] != '-'))
        goto bad;
    sign = text[pos++] == '-' ? -1 : 1;
    if (!parse_number(text, end, &pos, 2, 2, &off_h))
        goto bad;
    if (expect_char(text, end, &pos, ':')) {
        if (!parse_number(text, end, &pos, 2, 2, &off_m))
            goto bad;
        if (expect_char(text, end, &pos, ':') && !parse_number(text, end, &pos, 2, 2, &off_s))
            goto bad;
    }
    if (pos != end || off_m > 59 || off_s > 59)
        goto bad;
    if (bc) {
        ds_typemap_append_quoted(out, text, len);
        return true;
    }

    if (off_h == 0 && off_m == 0 && off_s == 0) {
        ds_buf_append_char(out, '"');
        ds_buf_append(out, text, date_end);
        ds_buf_append_char(out, 'T');
        ds_buf_append(out, text + date_end + 1, time_end - date_end - 1);
        ds_buf_append(out, "Z\"", 2);
        return true;
    }

    /* Local time minus the offset is UTC. The fraction is not touched by whole seconds. */
    int64_t secs = days_from_civil(c.year, c.month, c.day) * 86400 + c.hour * 3600 + c.minute * 60 +
                   c.second - sign * ((int64_t)off_h * 3600 + off_m * 60 + off_s);
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int64_t sod = secs - days * 86400, year;
    int month, day;

    civil_from_days(days, &year, &month, &day);
    if (year < 1) {
        /* 0001-01-01 with a positive offset falls into 1 BC in UTC; rather than invent an
         * era format, keep the local time with its ISO offset (still exact). */
        ds_buf_append_char(out, '"');
        ds_buf_append(out, text, date_end);
        ds_buf_append_char(out, 'T');
        ds_buf_append(out, text + date_end + 1, time_end - date_end - 1);
        ds_buf_appendf(out, "%c%02d:%02d", sign < 0 ? '-' : '+', off_h, off_m);
        if (off_s)
            ds_buf_appendf(out, ":%02d", off_s);
        ds_buf_append_char(out, '"');
        return true;
    }
    ds_buf_appendf(out, "\"%04lld-%02d-%02dT%02d:%02d:%02d", (long long)year, month, day,
                   (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60));
    ds_buf_append(out, text + c.frac, c.frac_len);
    ds_buf_append(out, "Z\"", 2);
    return true;

bad:
    return ds_typemap_invalid(DS_OID_TIMESTAMPTZ, text, len, "expected YYYY-MM-DD HH:MM:SS[.ffffff]+HH[:MM]",
                   errstr, errstr_size);
}

/* interval: IntervalStyle=iso_8601 already writes ISO 8601 durations ("P1Y2M3DT4H5M6.5S",
 * "PT0S"); anything else means the session setting was lost, and the value would be in a
 * format consumers cannot parse. */
static bool map_interval(ds_buf_t *out, const char *text, size_t len, char *errstr,
                         size_t errstr_size)
{
    if (len < 2 || text[0] != 'P')
        return ds_typemap_invalid(DS_OID_INTERVAL, text, len,
                       "expected an ISO 8601 duration (IntervalStyle=iso_8601)", errstr,
                       errstr_size);
    ds_buf_append_json_string(out, text, len);
    return true;
}

bool ds_typemap_append_json(ds_buf_t *out, uint32_t type_oid, const char *text, size_t len,
                            char *errstr, size_t errstr_size)
{
    uint32_t elem;

    switch (type_oid) {
    case DS_OID_INT2:
    case DS_OID_INT4:
    case DS_OID_INT8:
    case DS_OID_OID:
        return ds_typemap_integer(out, type_oid, text, len, errstr, errstr_size);
    case DS_OID_FLOAT4:
    case DS_OID_FLOAT8:
        return map_float(out, type_oid, text, len, errstr, errstr_size);
    case DS_OID_NUMERIC:
        return map_numeric(out, text, len, errstr, errstr_size);
    case DS_OID_BOOL:
        return ds_typemap_bool(out, text, len, errstr, errstr_size);
    case DS_OID_BYTEA:
        return ds_typemap_bytea(out, DS_BINARY_BYTES, text, len, errstr, errstr_size);
    case DS_OID_DATE:
        return map_date(out, text, len, errstr, errstr_size);
    case DS_OID_TIME:
        return map_time(out, text, len, errstr, errstr_size);
    case DS_OID_TIMESTAMP:
        return map_timestamp(out, text, len, errstr, errstr_size);
    case DS_OID_TIMESTAMPTZ:
        return map_timestamptz(out, text, len, errstr, errstr_size);
    case DS_OID_INTERVAL:
        return map_interval(out, text, len, errstr, errstr_size);
    default:
        break;
    }
    elem = classic_array_element(type_oid);
    if (elem)
        return ds_typemap_append_array(out, type_oid, elem, -1, NULL, text, len, errstr,
                                       errstr_size);

    /* text, varchar, bpchar, name, char, uuid, money, json, jsonb (the document as a string,
     * as Debezium's io.debezium.data.Json), timetz, enums, domains, unknown types and
     * arrays of them: the text as a JSON string. */
    ds_buf_append_json_string(out, text, len);
    return true;
}
