/*
 * typemap_temporal.c: date, time, timetz, timestamp, timestamptz and interval values, as
 * Debezium's PostgreSQL connector writes them under each time.precision.mode and
 * interval.handling.mode (docs/type-mapping.md has the table).
 *
 * Debezium's rules, from its PostgresValueConverter and io.debezium.time classes:
 *   - date: io.debezium.time.Date (int32 days since 1970-01-01) in every mode but isostring,
 *     where it is io.debezium.time.IsoDate "2024-01-31Z"; connect's Date is the same int.
 *   - time / timestamp: the column precision (typmod, 6 when none) picks milliseconds (<= 3)
 *     or microseconds in adaptive; adaptive_time_microseconds always writes microseconds for
 *     time; connect milliseconds; microseconds / nanoseconds as named; isostring
 *     "10:00:00.5Z" / "2024-01-31T10:00:00.5Z" with trailing fraction zeros dropped.
 *   - timestamptz: always io.debezium.time.ZonedTimestamp in UTC with exactly as many
 *     fraction digits as the column precision (6 when none; none for precision 0).
 *   - timetz: always io.debezium.time.ZonedTime converted to UTC, "04:30:00Z".
 *   - years outside 0000..9999 as java.time writes them: "+12345", "-0043" (44 BC).
 *   - interval: "P1Y2M3DT4H5M6.5S" with every field present (io.debezium.time.Interval) or
 *     microseconds with a month of 365.25 / 12 days (io.debezium.time.MicroDuration).
 *
 * Where Debezium garbles a value, dualsync keeps it (listed in docs/type-mapping.md):
 * infinite dates and timestamps stay "infinity" / "-infinity" in string forms (Debezium
 * writes a date 5.8 million years BC for date 'infinity'), time 24:00:00 stays "24:00:00Z"
 * (Debezium wraps it to midnight), and a timestamp out of the int64 nanosecond range under
 * nanoseconds keeps its ISO string (Debezium writes null).
 */
#include <string.h>

#include "typemap_internal.h"

#define US_PER_SEC INT64_C(1000000)
#define US_PER_DAY (INT64_C(86400) * US_PER_SEC)
#define NS_PER_DAY (US_PER_DAY * 1000)

/*
 * What Debezium writes for PostgreSQL's infinite dates and timestamps in its numeric
 * encodings. Dates become LocalDate -5877611-06-21 (infinity) and -22 (-infinity); timestamps
 * pgjdbc's DATE_POSITIVE_INFINITY / DATE_NEGATIVE_INFINITY read as microseconds, except in
 * nanoseconds, which saturates to the int64 extremes.
 */
#define DBZ_DATE_POS_INFINITY INT64_C(-2147472692)
#define DBZ_DATE_NEG_INFINITY INT64_C(-2147472691)
#define DBZ_TS_POS_INFINITY_US INT64_C(9223372036825200000)
#define DBZ_TS_NEG_INFINITY_US INT64_C(-9223372036832400000)

/* Reads between min_digits and max_digits digits at text[*pos] into *value. */
static bool parse_number(const char *text, size_t len, size_t *pos, int min_digits, int max_digits,
                         int64_t *value)
{
    int n = 0;
    int64_t v = 0;

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
    int64_t year;   /* astronomical: 1 BC is 0, 44 BC is -43 */
    int64_t month;  /* 1..12 */
    int64_t day;    /* 1..31 */
    int64_t hour;   /* 0..24 (24 only for time: "24:00:00") */
    int64_t minute; /* 0..59 */
    int64_t second; /* 0..60 */
    int64_t us;     /* the fraction, in microseconds */
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

/* "HH:MM:SS[.ffffff]": PostgreSQL writes at most six fraction digits. */
static bool parse_time(const char *text, size_t len, size_t *pos, civil_t *c)
{
    if (!(parse_number(text, len, pos, 2, 2, &c->hour) && expect_char(text, len, pos, ':') &&
          parse_number(text, len, pos, 2, 2, &c->minute) && expect_char(text, len, pos, ':') &&
          parse_number(text, len, pos, 2, 2, &c->second)))
        return false;
    c->us = 0;
    if (*pos < len && text[*pos] == '.') {
        int digits = 0;

        (*pos)++;
        while (*pos < len && ds_typemap_is_digit(text[*pos]) && digits < 6) {
            c->us = c->us * 10 + (text[*pos] - '0');
            (*pos)++;
            digits++;
        }
        if (digits == 0 || (*pos < len && ds_typemap_is_digit(text[*pos])))
            return false;
        for (; digits < 6; digits++)
            c->us *= 10;
    }
    return c->hour <= 24 && c->minute <= 59 && c->second <= 60;
}

/* "+HH[:MM[:SS]]" (the offset of timestamptz and timetz output) -> signed seconds. */
static bool parse_offset(const char *text, size_t len, size_t *pos, int64_t *offset)
{
    int64_t h = 0, m = 0, s = 0;
    int sign;

    if (*pos >= len || (text[*pos] != '+' && text[*pos] != '-'))
        return false;
    sign = text[(*pos)++] == '-' ? -1 : 1;
    if (!parse_number(text, len, pos, 2, 2, &h))
        return false;
    if (expect_char(text, len, pos, ':')) {
        if (!parse_number(text, len, pos, 2, 2, &m))
            return false;
        if (expect_char(text, len, pos, ':') && !parse_number(text, len, pos, 2, 2, &s))
            return false;
    }
    *offset = sign * (h * 3600 + m * 60 + s);
    return m <= 59 && s <= 59;
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

/* +1 for "infinity", -1 for "-infinity", else 0. */
static int infinity_sign(const char *text, size_t len)
{
    if (ds_typemap_is_word(text, len, "infinity", 8))
        return 1;
    if (ds_typemap_is_word(text, len, "-infinity", 9))
        return -1;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
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
static void civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
    int64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/*
 * The ISO strings are built in a line on the stack and appended to the output at once: one
 * capacity check per value instead of one per character (capture writes millions).
 */
typedef struct line {
    char s[192]; /* the longest: an interval's seven int64 fields and designators */
    size_t n;
} line_t;

static inline void put_char(line_t *l, char c)
{
    l->s[l->n++] = c;
}

static inline void put_mem(line_t *l, const char *text, size_t len)
{
    memcpy(l->s + l->n, text, len);
    l->n += len;
}

/* Writes value as exactly width digits (0 <= value < 10^width). */
static void put_padded(line_t *l, int64_t value, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        l->s[l->n + (size_t)i] = (char)('0' + value % 10);
        value /= 10;
    }
    l->n += (size_t)width;
}

/* Writes a signed decimal integer. */
static void put_int(line_t *l, int64_t value)
{
    char digits[24];
    char *p = digits + sizeof(digits);
    uint64_t u = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (value < 0)
        *--p = '-';
    put_mem(l, p, (size_t)(digits + sizeof(digits) - p));
}

/* The year as java.time's ISO formatters write it: four digits, a '+' past 9999, a '-'
 * before year 0. */
static void put_year(line_t *l, int64_t year)
{
    if (year > 9999) {
        put_char(l, '+');
        put_int(l, year);
    } else if (year < 0) {
        put_char(l, '-');
        if (-year > 9999)
            put_int(l, -year);
        else
            put_padded(l, -year, 4);
    } else {
        put_padded(l, year, 4);
    }
}

static void put_date(line_t *l, int64_t year, int64_t month, int64_t day)
{
    put_year(l, year);
    put_char(l, '-');
    put_padded(l, month, 2);
    put_char(l, '-');
    put_padded(l, day, 2);
}

/* The fraction as java.time's ISO formatters write it: none when zero, else '.' and the
 * digits without trailing zeros. */
static void put_fraction_stripped(line_t *l, int64_t us)
{
    int width = 6;

    if (us == 0)
        return;
    while (us % 10 == 0) {
        us /= 10;
        width--;
    }
    put_char(l, '.');
    put_padded(l, us, width);
}

/* "HH:MM:SS" then the fraction stripped, from microseconds of the day. */
static void put_time_of_day(line_t *l, int64_t us_of_day)
{
    int64_t secs = us_of_day / US_PER_SEC;

    put_padded(l, secs / 3600, 2);
    put_char(l, ':');
    put_padded(l, secs / 60 % 60, 2);
    put_char(l, ':');
    put_padded(l, secs % 60, 2);
    put_fraction_stripped(l, us_of_day % US_PER_SEC);
}

/* Appends the line as a JSON string ending in 'Z' (every ISO form here does). */
static void append_line_z(ds_buf_t *out, line_t *l)
{
    put_mem(l, "Z\"", 2);
    ds_buf_append(out, l->s, l->n);
}

/* Time and timestamp precision: the typmod, or 6 when the column has none (what pgjdbc
 * reports and Debezium's adaptive modes decide by). */
static int32_t precision_of(int32_t typmod)
{
    return typmod >= 0 ? typmod : 6;
}

bool ds_typemap_date(ds_buf_t *out, const ds_value_format_t *format, const char *text,
                     size_t len, char *errstr, size_t errstr_size)
{
    size_t pos = 0, end = len;
    int inf = infinity_sign(text, len);
    civil_t c;

    if (inf != 0) {
        if (format->time_precision == DS_TIME_ISOSTRING)
            ds_typemap_append_quoted(out, text, len);
        else
            ds_buf_append_int(out, inf > 0 ? DBZ_DATE_POS_INFINITY : DBZ_DATE_NEG_INFINITY);
        return true;
    }
    bool bc = strip_bc(text, &end);

    if (!parse_date(text, end, &pos, &c) || pos != end)
        return ds_typemap_invalid(DS_OID_DATE, text, len, "expected YYYY-MM-DD (DateStyle=ISO)",
                                  errstr, errstr_size);
    if (bc)
        c.year = 1 - c.year;
    if (format->time_precision == DS_TIME_ISOSTRING) {
        line_t l = {.n = 0};

        put_char(&l, '"');
        if (!bc && end == 10) /* a four-digit year, not BC: java.time writes the same */
            put_mem(&l, text, 10);
        else
            put_date(&l, c.year, c.month, c.day);
        append_line_z(out, &l);
        return true;
    }
    ds_buf_append_int(out, days_from_civil(c.year, c.month, c.day));
    return true;
}

bool ds_typemap_time(ds_buf_t *out, int32_t typmod, const ds_value_format_t *format,
                     const char *text, size_t len, char *errstr, size_t errstr_size)
{
    size_t pos = 0;
    civil_t c;
    int64_t us;

    if (!parse_time(text, len, &pos, &c) || pos != len)
        return ds_typemap_invalid(DS_OID_TIME, text, len, "expected HH:MM:SS[.ffffff]", errstr,
                                  errstr_size);
    us = (c.hour * 3600 + c.minute * 60 + c.second) * US_PER_SEC + c.us;
    switch (format->time_precision) {
    case DS_TIME_ISOSTRING: {
        line_t l = {.n = 0};

        /* "HH:MM:SS" as PostgreSQL wrote it (24:00:00 included), the fraction stripped */
        put_char(&l, '"');
        put_mem(&l, text, 8);
        put_fraction_stripped(&l, c.us);
        append_line_z(out, &l);
        return true;
    }
    case DS_TIME_ADAPTIVE:
        ds_buf_append_int(out, precision_of(typmod) <= 3 ? us / 1000 : us);
        return true;
    case DS_TIME_CONNECT:
        ds_buf_append_int(out, us / 1000);
        return true;
    case DS_TIME_ADAPTIVE_TIME_MICROSECONDS:
    case DS_TIME_MICROSECONDS:
        ds_buf_append_int(out, us);
        return true;
    case DS_TIME_NANOSECONDS:
        ds_buf_append_int(out, us * 1000);
        return true;
    }
    return ds_fail(errstr, errstr_size, "unknown time.precision.mode %d",
                   (int)format->time_precision);
}

bool ds_typemap_timetz(ds_buf_t *out, const char *text, size_t len, char *errstr,
                       size_t errstr_size)
{
    size_t pos = 0;
    int64_t offset, us;
    civil_t c;

    if (!parse_time(text, len, &pos, &c) || !parse_offset(text, len, &pos, &offset) || pos != len)
        return ds_typemap_invalid(DS_OID_TIMETZ, text, len, "expected HH:MM:SS[.ffffff]+HH[:MM]",
                                  errstr, errstr_size);
    /* Local time minus the offset is UTC, on a 24-hour clock (OffsetTime.withOffsetSameInstant). */
    us = (c.hour * 3600 + c.minute * 60 + c.second - offset) * US_PER_SEC + c.us;
    us = us - floor_div(us, US_PER_DAY) * US_PER_DAY;
    line_t l = {.n = 0};

    put_char(&l, '"');
    put_time_of_day(&l, us);
    append_line_z(out, &l);
    return true;
}

/* A timestamp as days since 1970-01-01 and microseconds into the day: epoch microseconds
 * do not hold PostgreSQL's last years (past 294247), which Debezium still writes. */
typedef struct stamp {
    int64_t days;
    int64_t us; /* 0 .. US_PER_DAY - 1 */
} stamp_t;

/*
 * "YYYY-MM-DDTHH:MM:SSZ" quoted, the fraction stripped or, with width 1..9, written with
 * exactly that many digits (ZonedTimestamp's column-precision form). local_text, when not
 * NULL, is PostgreSQL's text of this very timestamp with a four-digit year and no era
 * ("YYYY-MM-DD HH:MM:SS..."): its date and time are copied rather than recomputed, which is
 * what almost every value takes.
 */
static void append_iso_timestamp(ds_buf_t *out, stamp_t t, int width, const char *local_text)
{
    int64_t year, month, day;
    line_t l = {.n = 0};

    put_char(&l, '"');
    if (local_text) {
        put_mem(&l, local_text, 10);
        put_char(&l, 'T');
        put_mem(&l, local_text + 11, 8);
    } else {
        int64_t secs = t.us / US_PER_SEC;

        civil_from_days(t.days, &year, &month, &day);
        put_date(&l, year, month, day);
        put_char(&l, 'T');
        put_padded(&l, secs / 3600, 2);
        put_char(&l, ':');
        put_padded(&l, secs / 60 % 60, 2);
        put_char(&l, ':');
        put_padded(&l, secs % 60, 2);
    }
    if (width <= 0 || width > 9) {
        put_fraction_stripped(&l, t.us % US_PER_SEC);
    } else {
        put_char(&l, '.');
        if (width <= 6) {
            int64_t frac = t.us % US_PER_SEC;

            for (int i = width; i < 6; i++)
                frac /= 10;
            put_padded(&l, frac, width);
        } else {
            put_padded(&l, t.us % US_PER_SEC, 6);
            put_padded(&l, 0, width - 6);
        }
    }
    append_line_z(out, &l);
}

/* Parses "YYYY-MM-DD HH:MM:SS[.f][ BC]" (with an offset when want_offset) into the local
 * time and the offset in seconds; *simple says the year has four digits and no era. */
static bool parse_timestamp(const char *text, size_t len, bool want_offset, stamp_t *t,
                            int64_t *offset, bool *simple)
{
    size_t pos = 0, end = len;
    bool bc = strip_bc(text, &end);
    civil_t c;

    *offset = 0;
    if (!parse_date(text, end, &pos, &c) || !expect_char(text, end, &pos, ' ') ||
        !parse_time(text, end, &pos, &c) || c.hour > 23)
        return false;
    if (want_offset && !parse_offset(text, end, &pos, offset))
        return false;
    if (pos != end)
        return false;
    *simple = !bc && text[10] == ' ';
    if (bc)
        c.year = 1 - c.year;
    t->days = days_from_civil(c.year, c.month, c.day);
    t->us = (c.hour * 3600 + c.minute * 60 + c.second) * US_PER_SEC + c.us;
    return true;
}

/*
 * Epoch microseconds as Debezium computes them (Conversions.toEpochMicros): seconds times a
 * million saturates at the int64 extremes (TimeUnit), then the fraction is added with
 * wrap-around (long addition). Only the years past 294247 notice.
 */
static int64_t epoch_micros(stamp_t t)
{
    int64_t secs = t.days * 86400 + t.us / US_PER_SEC, us;

    if (__builtin_mul_overflow(secs, US_PER_SEC, &us))
        us = secs < 0 ? INT64_MIN : INT64_MAX;
    return (int64_t)((uint64_t)us + (uint64_t)(t.us % US_PER_SEC));
}

bool ds_typemap_timestamp(ds_buf_t *out, int32_t typmod, const ds_value_format_t *format,
                          const char *text, size_t len, char *errstr, size_t errstr_size)
{
    int inf = infinity_sign(text, len);
    int64_t offset, ns;
    stamp_t t;
    bool simple;
    enum { MS, US, NS, ISO } unit;

    switch (format->time_precision) {
    case DS_TIME_ADAPTIVE:
    case DS_TIME_ADAPTIVE_TIME_MICROSECONDS:
        unit = precision_of(typmod) <= 3 ? MS : US;
        break;
    case DS_TIME_CONNECT:
        unit = MS;
        break;
    case DS_TIME_MICROSECONDS:
        unit = US;
        break;
    case DS_TIME_NANOSECONDS:
        unit = NS;
        break;
    default:
        unit = ISO;
        break;
    }
    if (inf != 0) {
        int64_t us = inf > 0 ? DBZ_TS_POS_INFINITY_US : DBZ_TS_NEG_INFINITY_US;

        if (unit == ISO)
            ds_typemap_append_quoted(out, text, len);
        else if (unit == MS)
            ds_buf_append_int(out, us / 1000); /* exact: both end in 000 */
        else if (unit == US)
            ds_buf_append_int(out, us);
        else
            ds_buf_append_int(out, inf > 0 ? INT64_MAX : INT64_MIN);
        return true;
    }
    if (!parse_timestamp(text, len, false, &t, &offset, &simple))
        return ds_typemap_invalid(DS_OID_TIMESTAMP, text, len,
                                  "expected YYYY-MM-DD HH:MM:SS[.ffffff]", errstr, errstr_size);
    switch (unit) {
    case MS:
        /* Instant.toEpochMilli() rounds towards negative infinity; it fits every year. */
        ds_buf_append_int(out, t.days * 86400000 + t.us / 1000);
        return true;
    case US:
        ds_buf_append_int(out, epoch_micros(t));
        return true;
    case NS:
        /* Debezium multiplies days by nanoseconds per day and adds the time of day, failing
         * (and writing null) outside 1677-09-21..2262-04-11; those keep their ISO form. */
        if (!__builtin_mul_overflow(t.days, NS_PER_DAY, &ns) &&
            !__builtin_add_overflow(ns, t.us * 1000, &ns)) {
            ds_buf_append_int(out, ns);
            return true;
        }
        break;
    case ISO:
        break;
    }
    append_iso_timestamp(out, t, 0, simple ? text : NULL);
    return true;
}

bool ds_typemap_timestamptz(ds_buf_t *out, int32_t typmod, const char *text, size_t len,
                            char *errstr, size_t errstr_size)
{
    int64_t offset;
    stamp_t t;
    bool simple;

    /* Debezium passes PostgreSQL's infinity strings through as they are. */
    if (infinity_sign(text, len) != 0) {
        ds_typemap_append_quoted(out, text, len);
        return true;
    }
    if (!parse_timestamp(text, len, true, &t, &offset, &simple))
        return ds_typemap_invalid(DS_OID_TIMESTAMPTZ, text, len,
                                  "expected YYYY-MM-DD HH:MM:SS[.ffffff]+HH[:MM]", errstr,
                                  errstr_size);
    /* With TimeZone=UTC the offset is always +00; another (a session that overrode
     * TimeZone) is converted exactly: local time minus the offset is UTC. */
    if (offset != 0) {
        int64_t us = t.us - offset * US_PER_SEC, carry = floor_div(us, US_PER_DAY);

        t.days += carry;
        t.us = us - carry * US_PER_DAY;
    }
    append_iso_timestamp(out, t, precision_of(typmod), simple && offset == 0 ? text : NULL);
    return true;
}

/* An interval as IntervalStyle=iso_8601 writes it, split into the fields pgjdbc's PGInterval
 * has (the time fields share one sign, as PostgreSQL derives them from one count). */
typedef struct interval {
    int64_t years, months, days, hours, minutes, seconds, us;
} interval_t;

/* "P[nY][nM][nD][T[nH][nM][n[.f]S]]", each n signed; "PT0S" for zero. */
static bool parse_interval(const char *text, size_t len, interval_t *iv)
{
    size_t pos = 1;
    bool in_time = false, any = false;
    /* Designators in the order they may appear, date part then time part. */
    static const char date_order[] = "YMD", time_order[] = "HMS";
    int next = 0;

    memset(iv, 0, sizeof(*iv));
    if (len < 2 || text[0] != 'P')
        return false;
    while (pos < len) {
        bool negative = false;
        int64_t value = 0, us = 0;
        int digits = 0, frac_digits = 0;

        if (text[pos] == 'T') {
            if (in_time)
                return false;
            in_time = true;
            next = 0;
            pos++;
            continue;
        }
        if (text[pos] == '-') {
            negative = true;
            pos++;
        }
        while (pos < len && ds_typemap_is_digit(text[pos])) {
            if (digits++ > 18)
                return false;
            value = value * 10 + (text[pos++] - '0');
        }
        if (digits == 0)
            return false;
        if (pos < len && text[pos] == '.') {
            pos++;
            while (pos < len && ds_typemap_is_digit(text[pos])) {
                if (frac_digits++ >= 6)
                    return false;
                us = us * 10 + (text[pos++] - '0');
            }
            if (frac_digits == 0)
                return false;
            for (int i = frac_digits; i < 6; i++)
                us *= 10;
        }
        if (pos >= len)
            return false;
        const char *order = in_time ? time_order : date_order;
        const char *slot = memchr(order + next, text[pos], (size_t)(3 - next));

        if (!slot || (frac_digits > 0 && !(in_time && text[pos] == 'S')))
            return false;
        next = (int)(slot - order) + 1;
        if (negative) {
            value = -value;
            us = -us;
        }
        switch (text[pos]) {
        case 'Y':
            iv->years = value;
            break;
        case 'D':
            iv->days = value;
            break;
        case 'H':
            iv->hours = value;
            break;
        case 'S':
            iv->seconds = value;
            iv->us = us;
            break;
        case 'M':
            if (in_time)
                iv->minutes = value;
            else
                iv->months = value;
            break;
        }
        any = true;
        pos++;
    }
    return any;
}

bool ds_typemap_interval(ds_buf_t *out, const ds_value_format_t *format, const char *text,
                         size_t len, char *errstr, size_t errstr_size)
{
    interval_t iv;

    if (!parse_interval(text, len, &iv))
        return ds_typemap_invalid(DS_OID_INTERVAL, text, len,
                                  "expected an ISO 8601 duration (IntervalStyle=iso_8601)", errstr,
                                  errstr_size);
    if (format->interval_handling == DS_INTERVAL_NUMERIC) {
        /* io.debezium.time.MicroDuration.durationMicros, operation for operation in double
         * precision so the result is Debezium's to the last microsecond: a month is
         * 365.25 / 12 days, seconds are PGInterval's whole + micros / 1e6, and the result is
         * truncated towards zero (saturating, as Java's (long) cast). */
        volatile double seconds = (double)iv.seconds + (double)iv.us / 1000000.0;
        volatile double days = (double)(int32_t)(iv.years * 12 + iv.months) * (365.25 / 12.0) +
                               (double)iv.days;
        volatile double total = ((days * 24 + (double)iv.hours) * 60 + (double)iv.minutes) * 60 +
                                seconds;
        volatile double micros = total * 1e6 + 0.0;
        int64_t result;

        if (micros != micros)
            result = 0;
        else if (micros >= 9223372036854775807.0)
            result = INT64_MAX;
        else if (micros <= -9223372036854775808.0)
            result = INT64_MIN;
        else
            result = (int64_t)micros;
        ds_buf_append_int(out, result);
        return true;
    }

    /* io.debezium.time.Interval: every field, seconds as a plain decimal without trailing
     * zeros ("0" when zero). */
    line_t l = {.n = 0};

    put_mem(&l, "\"P", 2);
    put_int(&l, iv.years);
    put_char(&l, 'Y');
    put_int(&l, iv.months);
    put_char(&l, 'M');
    put_int(&l, iv.days);
    put_mem(&l, "DT", 2);
    put_int(&l, iv.hours);
    put_char(&l, 'H');
    put_int(&l, iv.minutes);
    put_char(&l, 'M');
    if (iv.seconds < 0 || iv.us < 0)
        put_char(&l, '-');
    put_int(&l, iv.seconds < 0 ? -iv.seconds : iv.seconds);
    put_fraction_stripped(&l, iv.us < 0 ? -iv.us : iv.us);
    put_mem(&l, "S\"", 2);
    ds_buf_append(out, l.s, l.n);
    return true;
}
