/*
 * watermark_rows.c: the rows of a HIGH watermark read without a JSON tree (watermark_rows.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualsync/watermark_rows.h"

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && is_ws(*p))
        p++;
    return p;
}

/* Past the closing quote of the string whose opening quote is at @p p; NULL if unterminated. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* Past the value at @p p, without checking it: brackets are counted (strings skipped), a
 * scalar runs to the next delimiter. NULL if it does not end within the text. */
static const char *skip_value(const char *p, const char *end)
{
    size_t depth = 0;

    if (p >= end)
        return NULL;
    if (*p == '"')
        return skip_string(p, end);
    if (*p != '{' && *p != '[') {
        const char *start = p;

        while (p < end && !is_ws(*p) && *p != ',' && *p != '}' && *p != ']')
            p++;
        return p > start ? p : NULL;
    }
    while (p < end) {
        char c = *p;

        if (c == '"') {
            if (!(p = skip_string(p, end)))
                return NULL;
            continue;
        }
        if (c == '{' || c == '[')
            depth++;
        else if ((c == '}' || c == ']') && --depth == 0)
            return p + 1;
        p++;
    }
    return NULL;
}

bool ds_watermark_rows_find(const char *text, size_t len, size_t *start, size_t *end)
{
    const char *p = text, *stop = text + len;

    p = skip_ws(p, stop);
    if (p >= stop || *p != '{')
        return false;
    p = skip_ws(p + 1, stop);
    while (p < stop && *p == '"') {
        const char *key = p + 1, *key_end = skip_string(p, stop), *value;

        if (!key_end)
            return false;
        p = skip_ws(key_end, stop);
        if (p >= stop || *p != ':')
            return false;
        value = skip_ws(p + 1, stop);
        if (!(p = skip_value(value, stop)))
            return false;
        /* The writer (incremental.c) never escapes this key; a key written "r\u006fws" is
         * not found here, and jansson then reads the whole message. */
        if (key_end - key == 5 && memcmp(key, "rows\"", 5) == 0) {
            *start = (size_t)(value - text);
            *end = (size_t)(p - text);
            return true;
        }
        p = skip_ws(p, stop);
        if (p >= stop || *p != ',')
            return false;
        p = skip_ws(p + 1, stop);
    }
    return false;
}

bool ds_watermark_rows_open(ds_watermark_rows_t *rows, const char *text, size_t len, char *why,
                            size_t why_size)
{
    memset(rows, 0, sizeof(*rows));
    rows->text = malloc(len + 1);
    if (!rows->text) {
        snprintf(why, why_size, "out of memory reading %zu bytes of rows", len);
        return false;
    }
    memcpy(rows->text, text, len);
    rows->text[len] = '\0';
    rows->end = rows->text + len;
    rows->p = (char *)skip_ws(rows->text, rows->end);
    if (rows->p >= rows->end || *rows->p != '[') {
        snprintf(why, why_size, "\"rows\" is not an array");
        ds_watermark_rows_close(rows);
        return false;
    }
    rows->p = (char *)skip_ws(rows->p + 1, rows->end);
    return true;
}

void ds_watermark_rows_close(ds_watermark_rows_t *rows)
{
    free(rows->text);
    memset(rows, 0, sizeof(*rows));
}

/* The length of the well-formed UTF-8 sequence of two or more bytes at @p s, 0 if it is not
 * one (overlong forms, surrogates and code points past U+10FFFF are not). */
static size_t utf8_len(const unsigned char *s, const unsigned char *end)
{
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;

    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        n = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        n = 3;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        n = 4;
    else
        return 0;
    if ((size_t)(end - s) < n)
        return 0;
    /* The second byte's range rules out the overlong, surrogate and too-large forms. */
    if (s[0] == 0xE0)
        lo = 0xA0;
    else if (s[0] == 0xED)
        hi = 0x9F;
    else if (s[0] == 0xF0)
        lo = 0x90;
    else if (s[0] == 0xF4)
        hi = 0x8F;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

static char *put_utf8(char *o, long cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* Decodes the string whose opening quote is at rows->p into the same bytes (every escape is
 * longer than what it stands for, so the output never overtakes the input). */
static bool read_string(ds_watermark_rows_t *rows, ds_value_t *value)
{
    char *r = rows->p + 1, *w = r, *end = rows->end;

    value->kind = DS_VALUE_TEXT;
    value->data = w;
    /* Most values have no escape and are ASCII: leave them where they are. */
    while (r < end && *r != '"' && *r != '\\' && (unsigned char)*r >= 0x20 &&
           (unsigned char)*r < 0x80)
        r++;
    w = r;
    while (r < end) {
        unsigned char c = (unsigned char)*r;

        if (c == '"') {
            value->len = (uint32_t)(w - value->data);
            rows->p = r + 1;
            return true;
        }
        if (c < 0x20)
            return false; /* a control character must be escaped */
        if (c >= 0x80) {
            size_t n = utf8_len((const unsigned char *)r, (const unsigned char *)end);

            if (n == 0)
                return false;
            memmove(w, r, n);
            w += n;
            r += n;
            continue;
        }
        if (c != '\\') {
            *w++ = *r++;
            continue;
        }
        if (++r >= end)
            return false;
        switch (*r++) {
        case '"':
            *w++ = '"';
            break;
        case '\\':
            *w++ = '\\';
            break;
        case '/':
            *w++ = '/';
            break;
        case 'b':
            *w++ = '\b';
            break;
        case 'f':
            *w++ = '\f';
            break;
        case 'n':
            *w++ = '\n';
            break;
        case 'r':
            *w++ = '\r';
            break;
        case 't':
            *w++ = '\t';
            break;
        case 'u': {
            long cp = ds_hex4_value(r, end);

            if (cp < 0)
                return false;
            r += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return false; /* a low surrogate alone */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                long low = end - r >= 6 && r[0] == '\\' && r[1] == 'u'
                               ? ds_hex4_value(r + 2, end)
                               : -1;

                if (low < 0xDC00 || low > 0xDFFF)
                    return false; /* a high surrogate alone */
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                r += 6;
            }
            if (cp == 0)
                return false; /* text values cannot hold NUL; jansson refuses it too */
            w = put_utf8(w, cp);
            break;
        }
        default:
            return false;
        }
    }
    return false;
}

int ds_watermark_rows_next(ds_watermark_rows_t *rows, ds_value_t *values, int nvalues, char *why,
                           size_t why_size)
{
    char *end = rows->end;
    int n = 0;

    if (rows->done)
        return 0;
    if (rows->p < end && *rows->p == ']') {
        rows->p = (char *)skip_ws(rows->p + 1, end);
        if (rows->p != end) {
            snprintf(why, why_size, "text after the rows array");
            return -1;
        }
        rows->done = true;
        return 0;
    }
    if (rows->row > 0) {
        if (rows->p >= end || *rows->p != ',') {
            snprintf(why, why_size, "no comma or closing bracket after row %zu", rows->row - 1);
            return -1;
        }
        rows->p = (char *)skip_ws(rows->p + 1, end);
    }
    if (rows->p >= end || *rows->p != '[') {
        snprintf(why, why_size, "row %zu is not an array", rows->row);
        return -1;
    }
    rows->p = (char *)skip_ws(rows->p + 1, end);
    if (rows->p < end && *rows->p == ']')
        goto count;
    for (;;) {
        ds_value_t value;

        if (rows->p < end && *rows->p == '"') {
            if (!read_string(rows, &value)) {
                snprintf(why, why_size, "row %zu column %d is not a well-formed JSON string",
                         rows->row, n);
                return -1;
            }
        } else if (end - rows->p >= 4 && memcmp(rows->p, "null", 4) == 0) {
            value = (ds_value_t){.kind = DS_VALUE_NULL};
            rows->p += 4;
        } else {
            snprintf(why, why_size, "row %zu column %d is neither text nor null", rows->row, n);
            return -1;
        }
        if (n < nvalues)
            values[n] = value;
        n++;
        rows->p = (char *)skip_ws(rows->p, end);
        if (rows->p < end && *rows->p == ']')
            break;
        if (rows->p >= end || *rows->p != ',') {
            snprintf(why, why_size, "row %zu: no comma or closing bracket after column %d",
                     rows->row, n - 1);
            return -1;
        }
        rows->p = (char *)skip_ws(rows->p + 1, end);
    }
count:
    if (n != nvalues) {
        snprintf(why, why_size, "row %zu does not have %d values", rows->row, nvalues);
        return -1;
    }
    rows->p = (char *)skip_ws(rows->p + 1, end);
    rows->row++;
    return 1;
}
