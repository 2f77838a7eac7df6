/*
 * typemap_number.c: float4, float8, numeric and money values, as Debezium's PostgreSQL
 * connector writes them through JsonConverter (docs/type-mapping.md has the table).
 *
 *   - float4 / float8: JSON numbers as Java's Float.toString / Double.toString write them
 *     ("100.0", "1.5E-7"); NaN and the infinities as the strings "NaN", "Infinity",
 *     "-Infinity" (Jackson quotes non-finite numbers).
 *   - numeric by decimal.handling.mode: string writes the digits as PostgreSQL does and
 *     "NAN" / "POSITIVE_INFINITY" / "NEGATIVE_INFINITY"; double a JSON number (Java's
 *     Double.toString of the nearest double); precise the Connect Decimal of the column's
 *     scale (base64 of the unscaled value's big-endian two's complement, as BigInteger's
 *     toByteArray) or, for numeric without a scale, io.debezium.data.VariableScaleDecimal
 *     {"scale":n,"value":"<base64>"} with trailing zeros stripped.
 *   - money: the same three forms, the amount read from lc_monetary=C output ("-$1,234.56");
 *     precise rounds it half up to money.fraction.digits.
 *
 * Debezium stops with an error on numeric NaN and infinities under precise; dualsync writes
 * the string form then, so no row is lost (a deliberate difference).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "typemap_internal.h"

/* A decimal number spelled out: sign, its digits, and where the decimal point goes. */
typedef struct decimal {
    bool negative;
    const char *int_digits; /* the digits before the point (may be empty) */
    size_t int_len;
    const char *frac_digits; /* the digits after it (may be empty) */
    size_t frac_len;
} decimal_t;

/* Parses "[-]digits[.digits]" (PostgreSQL's numeric output). */
static bool parse_decimal(const char *text, size_t len, decimal_t *d)
{
    size_t i = 0;

    d->negative = false;
    if (i < len && text[i] == '-') {
        d->negative = true;
        i++;
    }
    d->int_digits = text + i;
    while (i < len && ds_typemap_is_digit(text[i]))
        i++;
    d->int_len = (size_t)(text + i - d->int_digits);
    d->frac_digits = text + i;
    d->frac_len = 0;
    if (i < len && text[i] == '.') {
        i++;
        d->frac_digits = text + i;
        while (i < len && ds_typemap_is_digit(text[i]))
            i++;
        d->frac_len = (size_t)(text + i - d->frac_digits);
        if (d->frac_len == 0)
            return false;
    }
    return i == len && d->int_len > 0;
}

/*
 * Java's Double.toString / Float.toString layout of the shortest digits (no leading or
 * trailing zeros) of a value 0.DIGITS x 10^exp10: plain "123.0" / "0.001" for magnitudes in
 * [10^-3, 10^7), else "1.5E-7" / "1.0E10".
 */
static void append_java_number(ds_buf_t *out, bool negative, const char *digits, size_t n,
                               int exp10)
{
    /* Built on the stack and appended at once; n is at most 63 (the callers' buffers). */
    char line[160];
    size_t k = 0;
    int e = exp10 - 1; /* the exponent of the first digit */

    if (negative)
        line[k++] = '-';
    if (n == 0) {
        memcpy(line + k, "0.0", 3);
        k += 3;
    } else if (e >= -3 && e < 7) {
        if (e >= 0) {
            size_t int_len = (size_t)e + 1;

            if (n <= int_len) {
                memcpy(line + k, digits, n);
                k += n;
                for (size_t i = n; i < int_len; i++)
                    line[k++] = '0';
                line[k++] = '.';
                line[k++] = '0';
            } else {
                memcpy(line + k, digits, int_len);
                k += int_len;
                line[k++] = '.';
                memcpy(line + k, digits + int_len, n - int_len);
                k += n - int_len;
            }
        } else {
            line[k++] = '0';
            line[k++] = '.';
            for (int i = -1; i > e; i--)
                line[k++] = '0';
            memcpy(line + k, digits, n);
            k += n;
        }
    } else {
        int ue = e < 0 ? -e : e;
        char edigits[8];
        size_t en = 0;

        line[k++] = digits[0];
        line[k++] = '.';
        if (n > 1) {
            memcpy(line + k, digits + 1, n - 1);
            k += n - 1;
        } else {
            line[k++] = '0';
        }
        line[k++] = 'E';
        if (e < 0)
            line[k++] = '-';
        do {
            edigits[en++] = (char)('0' + ue % 10);
            ue /= 10;
        } while (ue && en < sizeof(edigits));
        while (en > 0)
            line[k++] = edigits[--en];
    }
    ds_buf_append(out, line, k);
}

/* True when text is a JSON number (RFC 8259 section 6), as float output always is. */
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

/*
 * Reads "[-]d[.ddd][e[+-]dd]" (any JSON number) into its significant digits, without
 * leading or trailing zeros, and the exponent of 0.DIGITS. digits must hold len bytes.
 */
static bool split_number(const char *text, size_t len, bool *negative, char *digits, size_t *n,
                         int *exp10)
{
    size_t i = 0, count = 0;
    int point = 0, exp = 0, seen = 0;
    bool after_point = false;

    *negative = false;
    if (i < len && text[i] == '-') {
        *negative = true;
        i++;
    }
    /* point counts the digits before the decimal point, less the leading zeros after it. */
    for (; i < len; i++) {
        char c = text[i];

        if (ds_typemap_is_digit(c)) {
            seen++;
            if (count == 0 && c == '0') {
                if (after_point)
                    point--;
                continue;
            }
            digits[count++] = c;
            if (!after_point)
                point++;
        } else if (c == '.' && !after_point && seen > 0) {
            after_point = true;
        } else {
            break;
        }
    }
    if (seen == 0)
        return false;
    if (i < len && (text[i] == 'e' || text[i] == 'E')) {
        int sign = 1, edigits = 0;

        i++;
        if (i < len && (text[i] == '+' || text[i] == '-'))
            sign = text[i++] == '-' ? -1 : 1;
        for (; i < len && ds_typemap_is_digit(text[i]); i++, edigits++)
            if (exp < 100000)
                exp = exp * 10 + (text[i] - '0');
        if (edigits == 0)
            return false;
        exp *= sign;
    }
    if (i != len)
        return false;
    while (count > 0 && digits[count - 1] == '0')
        count--;
    *n = count;
    *exp10 = point + exp;
    return true;
}

/*
 * The common case, without splitting digits: PostgreSQL's plain notation of a nonzero
 * magnitude in Java's plain range [10^-3, 10^7) is Java's text, with ".0" added to a whole
 * number. False (nothing written) for anything else.
 */
static bool append_plain_float(ds_buf_t *out, const char *text, size_t len)
{
    size_t i = text[0] == '-' ? 1 : 0, int_len, point;

    if (memchr(text, 'e', len) || memchr(text, 'E', len))
        return false;
    point = i;
    while (point < len && text[point] != '.')
        point++;
    int_len = point - i;
    if (int_len > 7)
        return false;
    if (text[i] == '0') {
        /* "0.00d...": at most two zeros after the point; "0" itself is not plain */
        size_t zeros = 0;

        if (point == len)
            return false;
        while (point + 1 + zeros < len && text[point + 1 + zeros] == '0')
            zeros++;
        if (zeros > 2 || point + 1 + zeros == len)
            return false;
    }
    ds_buf_append(out, text, len);
    if (point == len)
        ds_buf_append(out, ".0", 2);
    return true;
}

bool ds_typemap_float(ds_buf_t *out, uint32_t oid, const char *text, size_t len, char *errstr,
                      size_t errstr_size)
{
    char digits[64];
    bool negative;
    size_t n;
    int exp10;

    if (ds_typemap_is_word(text, len, "NaN", 3) || ds_typemap_is_word(text, len, "Infinity", 8) ||
        ds_typemap_is_word(text, len, "-Infinity", 9)) {
        ds_typemap_append_quoted(out, text, len);
        return true;
    }
    /* extra_float_digits=3 makes PostgreSQL write the shortest digits that read back as the
     * same value, which are the digits Java writes: only the layout differs. */
    if (len >= sizeof(digits) || !is_json_number(text, len))
        return ds_typemap_invalid(oid, text, len, "expected a number, NaN, Infinity or -Infinity",
                                  errstr, errstr_size);
    if (append_plain_float(out, text, len))
        return true;
    if (!split_number(text, len, &negative, digits, &n, &exp10))
        return ds_typemap_invalid(oid, text, len, "expected a number, NaN, Infinity or -Infinity",
                                  errstr, errstr_size);
    append_java_number(out, negative, digits, n, exp10);
    return true;
}

/* A double as Java's Double.toString writes it: the shortest digits that read back as it. */
static void append_java_double(ds_buf_t *out, double value)
{
    char text[40], digits[40];
    bool negative;
    size_t n;
    int exp10;

    if (isnan(value)) {
        ds_buf_append(out, "\"NaN\"", 5);
        return;
    }
    if (isinf(value)) {
        if (value > 0)
            ds_buf_append(out, "\"Infinity\"", 10);
        else
            ds_buf_append(out, "\"-Infinity\"", 11);
        return;
    }
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(text, sizeof(text), "%.*e", precision - 1, value);
        if (strtod(text, NULL) == value)
            break;
    }
    if (!split_number(text, strlen(text), &negative, digits, &n, &exp10)) {
        ds_buf_append_str(out, text); /* unreachable: printf wrote a number */
        return;
    }
    append_java_number(out, negative, digits, n, exp10);
}

/* The nearest double to "[-]int.frac" (BigDecimal.doubleValue()). */
static double decimal_to_double(const decimal_t *d)
{
    char small[128];
    size_t need = 1 + d->int_len + 1 + d->frac_len + 1;
    char *text = need <= sizeof(small) ? small : malloc(need);
    double value;
    size_t n = 0;

    if (!text)
        return NAN; /* out of memory, as everywhere in dualsync, is not recovered from */
    if (d->negative)
        text[n++] = '-';
    memcpy(text + n, d->int_digits, d->int_len);
    n += d->int_len;
    if (d->frac_len) {
        text[n++] = '.';
        memcpy(text + n, d->frac_digits, d->frac_len);
        n += d->frac_len;
    }
    text[n] = '\0';
    value = strtod(text, NULL);
    if (text != small)
        free(text);
    return value;
}

/*
 * Appends, base64 and quoted, the minimal big-endian two's complement of the integer whose
 * decimal digits are hi then lo then zeros more zeros (BigInteger.toByteArray()).
 */
static void append_unscaled_base64(ds_buf_t *out, bool negative, const char *hi, size_t hi_len,
                                   const char *lo, size_t lo_len, size_t zeros)
{
    size_t ndigits = hi_len + lo_len + zeros;
    /* 32-bit limbs, least significant first: log2(10) / 32 < 0.104 limbs per digit. */
    size_t cap = ndigits / 9 + 2;
    uint32_t small[160];
    uint32_t *limbs = cap <= sizeof(small) / sizeof(small[0]) ? small : calloc(cap, 4);
    size_t nlimbs = 0, nbytes, i;
    uint8_t small_bytes[sizeof(small) + 1];
    uint8_t *bytes;

    if (!limbs)
        return;
    for (i = 0; i < ndigits;) {
        uint32_t chunk = 0, scale = 1;
        uint64_t carry;

        for (int k = 0; k < 9 && i < ndigits; k++, i++) {
            char c = i < hi_len ? hi[i] : i < hi_len + lo_len ? lo[i - hi_len] : '0';

            chunk = chunk * 10 + (uint32_t)(c - '0');
            scale *= 10;
        }
        carry = chunk;
        for (size_t l = 0; l < nlimbs; l++) {
            uint64_t v = (uint64_t)limbs[l] * scale + carry;

            limbs[l] = (uint32_t)v;
            carry = v >> 32;
        }
        if (carry)
            limbs[nlimbs++] = (uint32_t)carry;
    }

    /* Big-endian, one spare byte in front for the sign. */
    nbytes = nlimbs * 4 + 1;
    bytes = nbytes <= sizeof(small_bytes) ? small_bytes : malloc(nbytes);
    if (!bytes) {
        if (limbs != small)
            free(limbs);
        return;
    }
    bytes[0] = 0;
    for (size_t l = 0; l < nlimbs; l++)
        for (int b = 0; b < 4; b++)
            bytes[nbytes - 1 - l * 4 - (size_t)b] = (uint8_t)(limbs[l] >> (8 * b));
    if (negative) {
        unsigned carry = 1;

        for (size_t b = nbytes; b-- > 0;) {
            unsigned v = (uint8_t)~bytes[b] + carry;

            bytes[b] = (uint8_t)v;
            carry = v >> 8;
        }
    }
    /* Drop sign-extension bytes the next byte's top bit already says. */
    i = 0;
    while (nbytes - i > 1 && ((bytes[i] == 0x00 && !(bytes[i + 1] & 0x80)) ||
                              (bytes[i] == 0xff && (bytes[i + 1] & 0x80))))
        i++;
    ds_buf_append_char(out, '"');
    ds_buf_append_base64(out, bytes + i, nbytes - i);
    ds_buf_append_char(out, '"');
    if (bytes != small_bytes)
        free(bytes);
    if (limbs != small)
        free(limbs);
}

/* NaN and the infinities as Debezium's SpecialValueDecimal names them in string mode. */
static bool append_special_string(ds_buf_t *out, const char *text, size_t len)
{
    if (ds_typemap_is_word(text, len, "NaN", 3))
        ds_buf_append(out, "\"NAN\"", 5);
    else if (ds_typemap_is_word(text, len, "Infinity", 8))
        ds_buf_append(out, "\"POSITIVE_INFINITY\"", 19);
    else if (ds_typemap_is_word(text, len, "-Infinity", 9))
        ds_buf_append(out, "\"NEGATIVE_INFINITY\"", 19);
    else
        return false;
    return true;
}

bool ds_typemap_numeric(ds_buf_t *out, int32_t typmod, const ds_value_format_t *format,
                        const char *text, size_t len, char *errstr, size_t errstr_size)
{
    decimal_t d;
    bool special = ds_typemap_is_word(text, len, "NaN", 3) ||
                   ds_typemap_is_word(text, len, "Infinity", 8) ||
                   ds_typemap_is_word(text, len, "-Infinity", 9);

    if (!special && !parse_decimal(text, len, &d))
        return ds_typemap_invalid(DS_OID_NUMERIC, text, len,
                                  "expected [-]digits[.digits], NaN or Infinity", errstr,
                                  errstr_size);
    switch (format->decimal_handling) {
    case DS_DECIMAL_STRING:
        if (special)
            return append_special_string(out, text, len);
        /* BigDecimal.toPlainString() of PostgreSQL's output is that output. */
        ds_typemap_append_quoted(out, text, len);
        return true;
    case DS_DECIMAL_DOUBLE:
        if (special) {
            /* Double.NaN etc., which Jackson writes as strings. */
            ds_typemap_append_quoted(out, text, len);
            return true;
        }
        append_java_double(out, decimal_to_double(&d));
        return true;
    case DS_DECIMAL_PRECISE:
        break;
    }

    /* Debezium fails the connector here; dualsync keeps the row with string mode's value. */
    if (special)
        return append_special_string(out, text, len);
    if (typmod >= 4) {
        /* numeric(p,s): a Connect Decimal of scale s, which pgjdbc reads from the typmod. */
        size_t scale = (size_t)((typmod - 4) & 0xffff);

        if (d.frac_len > scale)
            return ds_typemap_invalid(DS_OID_NUMERIC, text, len,
                                      "more fraction digits than the column's scale", errstr,
                                      errstr_size);
        append_unscaled_base64(out, d.negative, d.int_digits, d.int_len, d.frac_digits,
                               d.frac_len, scale - d.frac_len);
        return true;
    }
    /* numeric without a typmod: VariableScaleDecimal of the value with trailing zeros
     * stripped (BigDecimal.stripTrailingZeros(), the scale kept at 0 or more). */
    while (d.frac_len > 0 && d.frac_digits[d.frac_len - 1] == '0')
        d.frac_len--;
    ds_buf_append(out, "{\"scale\":", 9);
    ds_buf_append_int(out, (int64_t)d.frac_len);
    ds_buf_append(out, ",\"value\":", 9);
    append_unscaled_base64(out, d.negative, d.int_digits, d.int_len, d.frac_digits, d.frac_len,
                           0);
    ds_buf_append_char(out, '}');
    return true;
}

bool ds_typemap_money(ds_buf_t *out, const ds_value_format_t *format, const char *text,
                      size_t len, char *errstr, size_t errstr_size)
{
    /* cash_out under lc_monetary=C: "$1,234.56", "-$1,234.56". money is an int64 of cents,
     * so 32 digits hold any amount. */
    char digits[40];
    size_t i = 0, n = 0, int_len, frac_len = 0;
    bool negative = false;

    if (i < len && text[i] == '-') {
        negative = true;
        i++;
    }
    if (i < len && text[i] == '$')
        i++;
    for (; i < len && n < sizeof(digits); i++) {
        if (ds_typemap_is_digit(text[i]))
            digits[n++] = text[i];
        else if (text[i] != ',' || n == 0)
            break;
    }
    int_len = n;
    if (i < len && text[i] == '.') {
        for (i++; i < len && n < sizeof(digits) && ds_typemap_is_digit(text[i]); i++)
            digits[n++] = text[i];
        frac_len = n - int_len;
        if (frac_len == 0)
            int_len = 0; /* "1." is not money output; fail below */
    }
    if (i != len || int_len == 0)
        return ds_typemap_invalid(DS_OID_MONEY, text, len,
                                  "expected -$1,234.56 (the capture session sets lc_monetary=C)",
                                  errstr, errstr_size);
    /* BigDecimal's plain string never has leading zeros. */
    size_t skip = 0;

    while (skip + 1 < int_len && digits[skip] == '0')
        skip++;

    switch (format->decimal_handling) {
    case DS_DECIMAL_STRING:
        ds_buf_append_char(out, '"');
        if (negative)
            ds_buf_append_char(out, '-');
        ds_buf_append(out, digits + skip, int_len - skip);
        if (frac_len) {
            ds_buf_append_char(out, '.');
            ds_buf_append(out, digits + int_len, frac_len);
        }
        ds_buf_append_char(out, '"');
        return true;
    case DS_DECIMAL_DOUBLE: {
        decimal_t d = {negative, digits, int_len, digits + int_len, frac_len};

        append_java_double(out, decimal_to_double(&d));
        return true;
    }
    case DS_DECIMAL_PRECISE:
        break;
    }

    /* setScale(money.fraction.digits, RoundingMode.HALF_UP), then a Connect Decimal. */
    size_t target = format->money_fraction_digits > 0 ? (size_t)format->money_fraction_digits : 0;

    if (target >= frac_len) {
        append_unscaled_base64(out, negative, digits, int_len, digits + int_len, frac_len,
                               target - frac_len);
        return true;
    }
    /* Fewer digits: cut, and round the magnitude up when the first cut digit is 5 or more. */
    size_t keep = int_len + target;
    bool round_up = digits[keep] >= '5';
    char rounded[sizeof(digits) + 1];

    rounded[0] = '0';
    memcpy(rounded + 1, digits, keep);
    if (round_up)
        for (size_t k = keep + 1; k-- > 0;) {
            if (rounded[k] == '9') {
                rounded[k] = '0';
                continue;
            }
            rounded[k]++;
            break;
        }
    append_unscaled_base64(out, negative, rounded, keep + 1, NULL, 0, 0);
    return true;
}
