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

/* PostgreSQL's MAXDIM: arrays have at most 6 dimensions. */
#define ARRAY_MAX_DEPTH 6

/* Bytes of a value quoted in an error message. */
#define EXCERPT_MAX 40


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

/* The SQL name of a type for error messages. */
static const char *scalar_type_name(uint32_t oid)
{
    switch (oid) {
    case DS_OID_BOOL:
        return "bool";
    case DS_OID_BYTEA:
        return "bytea";
    case DS_OID_CHAR:
        return "char";
    case DS_OID_NAME:
        return "name";
    case DS_OID_INT8:
        return "int8";
    case DS_OID_INT2:
        return "int2";
    case DS_OID_INT4:
        return "int4";
    case DS_OID_TEXT:
        return "text";
    case DS_OID_OID:
        return "oid";
    case DS_OID_JSON:
        return "json";
    case DS_OID_FLOAT4:
        return "float4";
    case DS_OID_FLOAT8:
        return "float8";
    case DS_OID_MONEY:
        return "money";
    case DS_OID_BPCHAR:
        return "bpchar";
    case DS_OID_VARCHAR:
        return "varchar";
    case DS_OID_DATE:
        return "date";
    case DS_OID_TIME:
        return "time";
    case DS_OID_TIMESTAMP:
        return "timestamp";
    case DS_OID_TIMESTAMPTZ:
        return "timestamptz";
    case DS_OID_INTERVAL:
        return "interval";
    case DS_OID_TIMETZ:
        return "timetz";
    case DS_OID_NUMERIC:
        return "numeric";
    case DS_OID_UUID:
        return "uuid";
    case DS_OID_JSONB:
        return "jsonb";
    default:
        return NULL;
    }
}

static const char *type_name(uint32_t oid, char out[32])
{
    const char *name = scalar_type_name(oid);
    uint32_t elem;

    if (name)
        return name;
    elem = classic_array_element(oid);
    if (elem) {
        snprintf(out, 32, "%s[]", scalar_type_name(elem));
        return out;
    }
    snprintf(out, 32, "type %u", oid);
    return out;
}

/* The first EXCERPT_MAX bytes of a value, control characters shown as '?', for a message. */
static const char *excerpt(const char *text, size_t len, char out[EXCERPT_MAX + 4])
{
    size_t n = len > EXCERPT_MAX ? EXCERPT_MAX : len, i;

    /* Do not cut a UTF-8 sequence in half. */
    if (n < len)
        while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
            n--;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];

        out[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (n < len) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

/* Reports "invalid <type> value "<excerpt>": <why>" and returns false. */
static bool invalid(uint32_t oid, const char *text, size_t len, const char *why, char *errstr,
                    size_t errstr_size)
{
    char name[32], ex[EXCERPT_MAX + 4];

    return ds_fail(errstr, errstr_size, "invalid %s value \"%s\": %s", type_name(oid, name),
                   excerpt(text, len, ex), why);
}

static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Text known to hold only characters JSON strings take as they are: quoted, not escaped. */
static void append_quoted_plain(ds_buf_t *out, const char *text, size_t len)
{
    ds_buf_append_char(out, '"');
    ds_buf_append(out, text, len);
    ds_buf_append_char(out, '"');
}

static bool is_word(const char *text, size_t len, const char *word)
{
    size_t n = strlen(word);

    return len == n && memcmp(text, word, n) == 0;
}

/* int2, int4, int8, oid: the digits become a JSON number as they are. */
static bool map_integer(ds_buf_t *out, uint32_t oid, const char *text, size_t len, char *errstr,
                        size_t errstr_size)
{
    size_t i = 0, first;

    if (len > 0 && (text[0] == '-' || text[0] == '+'))
        i = 1;
    first = i;
    if (i == len)
        return invalid(oid, text, len, "expected digits", errstr, errstr_size);
    for (; i < len; i++)
        if (!is_digit(text[i]))
            return invalid(oid, text, len, "expected digits", errstr, errstr_size);

    /* PostgreSQL writes neither '+' nor leading zeros, but JSON forbids both, so drop them
     * rather than publish an unparsable number should some other source produce them. */
    while (first + 1 < len && text[first] == '0')
        first++;
    if (text[0] == '-')
        ds_buf_append_char(out, '-');
    ds_buf_append(out, text + first, len - first);
    return true;
}

/* True when text is a JSON number (RFC 8259 section 6). */
static bool is_json_number(const char *text, size_t len)
{
    size_t i = 0;

    if (i < len && text[i] == '-')
        i++;
    if (i >= len || !is_digit(text[i]))
        return false;
    if (text[i] == '0')
        i++;
    else
        while (i < len && is_digit(text[i]))
            i++;
    if (i < len && text[i] == '.') {
        i++;
        if (i >= len || !is_digit(text[i]))
            return false;
        while (i < len && is_digit(text[i]))
            i++;
    }
    if (i < len && (text[i] == 'e' || text[i] == 'E')) {
        i++;
        if (i < len && (text[i] == '+' || text[i] == '-'))
            i++;
        if (i >= len || !is_digit(text[i]))
            return false;
        while (i < len && is_digit(text[i]))
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
        append_quoted_plain(out, text, len);
        return true;
    }
    if (!is_json_number(text, len))
        return invalid(oid, text, len, "expected a number, NaN, Infinity or -Infinity", errstr,
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
        append_quoted_plain(out, text, len);
        return true;
    }
    if (i < len && text[i] == '-')
        i++;
    if (i >= len || !is_digit(text[i]))
        goto bad;
    while (i < len && is_digit(text[i]))
        i++;
    if (i < len && text[i] == '.') {
        i++;
        if (i >= len || !is_digit(text[i]))
            goto bad;
        while (i < len && is_digit(text[i]))
            i++;
    }
    if (i != len)
        goto bad;
    append_quoted_plain(out, text, len);
    return true;

bad:
    return invalid(DS_OID_NUMERIC, text, len, "expected [-]digits[.digits], NaN or Infinity",
                   errstr, errstr_size);
}

static bool map_bool(ds_buf_t *out, const char *text, size_t len, char *errstr, size_t errstr_size)
{
    if (len == 1 && text[0] == 't') {
        ds_buf_append(out, "true", 4);
        return true;
    }
    if (len == 1 && text[0] == 'f') {
        ds_buf_append(out, "false", 5);
        return true;
    }
    return invalid(DS_OID_BOOL, text, len, "expected t or f", errstr, errstr_size);
}

static inline bool is_octal(char c)
{
    return c >= '0' && c <= '7';
}

/*
 * bytea: base64 of the bytes, as Debezium's default binary.handling.mode=bytes writes them.
 * The bytes are decoded in chunks of a multiple of three and each chunk is encoded at once,
 * so a large value needs no allocation and base64 padding only appears at the very end.
 */
static bool map_bytea(ds_buf_t *out, const char *text, size_t len, char *errstr, size_t errstr_size)
{
    uint8_t chunk[3 * 256];
    size_t n = 0, i;

    ds_buf_append_char(out, '"');
    if (len >= 2 && text[0] == '\\' && text[1] == 'x') {
        /* bytea_output=hex (the default since 9.0): "\x" then two hex digits per byte. */
        if ((len - 2) % 2 != 0)
            return invalid(DS_OID_BYTEA, text, len, "odd number of hex digits", errstr,
                           errstr_size);
        for (i = 2; i < len; i += 2) {
            int hi = ds_hex_value(text[i]), lo = ds_hex_value(text[i + 1]);

            if (hi < 0 || lo < 0)
                return invalid(DS_OID_BYTEA, text, len, "expected hex digits after \\x", errstr,
                               errstr_size);
            chunk[n++] = (uint8_t)(hi << 4 | lo);
            if (n == sizeof(chunk)) {
                ds_buf_append_base64(out, chunk, n);
                n = 0;
            }
        }
    } else {
        /* bytea_output=escape, accepted in case a session overrides the setting: bytes as
         * they are, "\\" for a backslash, "\ooo" octal for the rest. Because a backslash is
         * always doubled here, "\x" cannot start an escape-format value. */
        for (i = 0; i < len;) {
            uint8_t byte;

            if (text[i] != '\\') {
                byte = (uint8_t)text[i++];
            } else if (i + 1 < len && text[i + 1] == '\\') {
                byte = '\\';
                i += 2;
            } else if (i + 3 < len && text[i + 1] >= '0' && text[i + 1] <= '3' &&
                       is_octal(text[i + 2]) && is_octal(text[i + 3])) {
                byte = (uint8_t)((text[i + 1] - '0') << 6 | (text[i + 2] - '0') << 3 |
                                 (text[i + 3] - '0'));
                i += 4;
            } else {
                return invalid(DS_OID_BYTEA, text, len,
                               "expected \\x hex format or a valid escape-format value", errstr,
                               errstr_size);
            }
            chunk[n++] = byte;
            if (n == sizeof(chunk)) {
                ds_buf_append_base64(out, chunk, n);
                n = 0;
            }
        }
    }
    ds_buf_append_base64(out, chunk, n);
    ds_buf_append_char(out, '"');
    return true;
}

/* Reads between min_digits and max_digits digits at text[*pos] into *value. */
static bool parse_number(const char *text, size_t len, size_t *pos, int min_digits, int max_digits,
                         int *value)
{
    int n = 0, v = 0;

    while (*pos < len && n < max_digits && is_digit(text[*pos])) {
        v = v * 10 + (text[*pos] - '0');
        (*pos)++;
        n++;
    }
    *value = v;
    return n >= min_digits && !(*pos < len && is_digit(text[*pos]));
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
        if (*pos >= len || !is_digit(text[*pos]))
            return false;
        while (*pos < len && is_digit(text[*pos]))
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
            return invalid(DS_OID_DATE, text, len, "expected YYYY-MM-DD (DateStyle=ISO)", errstr,
                           errstr_size);
    }
    append_quoted_plain(out, text, len);
    return true;
}

/* time: "10:00:00.123" as it is. */
static bool map_time(ds_buf_t *out, const char *text, size_t len, char *errstr, size_t errstr_size)
{
    size_t pos = 0;
    civil_t c;

    if (!parse_time(text, len, &pos, &c) || pos != len)
        return invalid(DS_OID_TIME, text, len, "expected HH:MM:SS[.ffffff]", errstr, errstr_size);
    append_quoted_plain(out, text, len);
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
        append_quoted_plain(out, text, len);
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
        append_quoted_plain(out, text, len);
        return true;
    }
    ds_buf_append_char(out, '"');
    ds_buf_append(out, text, date_end);
    ds_buf_append_char(out, 'T');
    ds_buf_append(out, text + date_end + 1, len - date_end - 1);
    ds_buf_append_char(out, '"');
    return true;

bad:
    return invalid(DS_OID_TIMESTAMP, text, len, "expected YYYY-MM-DD HH:MM:SS[.ffffff]", errstr,
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
        append_quoted_plain(out, text, len);
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
        append_quoted_plain(out, text, len);
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
    return invalid(DS_OID_TIMESTAMPTZ, text, len, "expected YYYY-MM-DD HH:MM:SS[.ffffff]+HH[:MM]",
                   errstr, errstr_size);
}

/* interval: IntervalStyle=iso_8601 already writes ISO 8601 durations ("P1Y2M3DT4H5M6.5S",
 * "PT0S"); anything else means the session setting was lost, and the value would be in a
 * format consumers cannot parse. */
static bool map_interval(ds_buf_t *out, const char *text, size_t len, char *errstr,
                         size_t errstr_size)
{
    if (len < 2 || text[0] != 'P')
        return invalid(DS_OID_INTERVAL, text, len,
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
        return map_integer(out, type_oid, text, len, errstr, errstr_size);
    case DS_OID_FLOAT4:
    case DS_OID_FLOAT8:
        return map_float(out, type_oid, text, len, errstr, errstr_size);
    case DS_OID_NUMERIC:
        return map_numeric(out, text, len, errstr, errstr_size);
    case DS_OID_BOOL:
        return map_bool(out, text, len, errstr, errstr_size);
    case DS_OID_BYTEA:
        return map_bytea(out, text, len, errstr, errstr_size);
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
