/*
 * buf.c: the growable buffer and the JSON writing primitives of every captured row.
 *
 * These run once per column of every row, so the escaping loop copies runs of bytes that
 * need no escaping with one memcpy and classifies bytes with a table, not with a call per
 * character.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualsync/buf.h"

/* Smallest allocation: most envelopes fit in a few hundred bytes, so start past that. */
#define BUF_MIN_CAP 256

/* Out of memory: abort() as buf.h promises; there is nothing to return an error through. */
static void buf_oom(size_t want)
{
    fprintf(stderr, "dualsync: out of memory growing a buffer to %zu bytes\n", want);
    abort();
}

/* Cold path of buf_reserve: grows to at least len + extra + 1 bytes, doubling so a run of
 * appends costs amortised O(1) per byte. */
static void buf_grow(ds_buf_t *buf, size_t extra)
{
    size_t need, cap;
    char *data;

    if (extra > SIZE_MAX - buf->len - 1)
        buf_oom(SIZE_MAX);
    need = buf->len + extra + 1;
    cap = buf->cap < BUF_MIN_CAP ? BUF_MIN_CAP : buf->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    data = realloc(buf->data, cap);
    if (!data)
        buf_oom(cap);
    buf->data = data;
    buf->cap = cap;
}

/* Makes room for @p extra more bytes plus the terminator. */
static inline void buf_reserve(ds_buf_t *buf, size_t extra)
{
    if (buf->cap - buf->len <= extra)
        buf_grow(buf, extra);
}

char *ds_buf_extend(ds_buf_t *buf, size_t n)
{
    char *at;

    buf_reserve(buf, n);
    at = buf->data + buf->len;
    buf->len += n;
    buf->data[buf->len] = '\0';
    return at;
}

void ds_buf_free(ds_buf_t *buf)
{
    if (!buf)
        return;
    free(buf->data);
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
}

void ds_buf_append(ds_buf_t *buf, const void *data, size_t len)
{
    buf_reserve(buf, len);
    if (len)
        memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
}

void ds_buf_append_str(ds_buf_t *buf, const char *str)
{
    ds_buf_append(buf, str, strlen(str));
}

void ds_buf_append_char(ds_buf_t *buf, char c)
{
    buf_reserve(buf, 1);
    buf->data[buf->len++] = c;
    buf->data[buf->len] = '\0';
}

void ds_buf_appendf(ds_buf_t *buf, const char *fmt, ...)
{
    va_list ap;
    int n;

    /* Format into the free space first; only a too-long result formats twice. */
    buf_reserve(buf, 64);
    va_start(ap, fmt);
    n = vsnprintf(buf->data + buf->len, buf->cap - buf->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        /* Only an invalid format or a wide-character conversion fails; keep the buffer as
         * it was (terminated at len) rather than appending garbage. */
        buf->data[buf->len] = '\0';
        return;
    }
    if ((size_t)n >= buf->cap - buf->len) {
        buf_reserve(buf, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(buf->data + buf->len, buf->cap - buf->len, fmt, ap);
        va_end(ap);
    }
    buf->len += (size_t)n;
}

/*
 * What the JSON string writer does with each byte value:
 *   0 copy as is (printable ASCII other than '"' and '\\')
 *   1 escape (control characters, '"', '\\')
 *   2 first byte of a UTF-8 sequence, or a byte that cannot start one: validate
 */
enum { JSON_COPY = 0, JSON_ESCAPE = 1, JSON_UTF8 = 2 };

static const unsigned char json_class[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x00 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x10 */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x40 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x50 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x70 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x80 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x90 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xa0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xb0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xc0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xd0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xe0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xf0 */
};

_Static_assert(sizeof(json_class) == 256, "one entry per byte value");

/*
 * Length of the well-formed UTF-8 sequence starting at s (RFC 3629, Table 3-7 of the
 * Unicode standard: no overlong forms, no surrogates, nothing above U+10FFFF), or 0 when
 * the bytes at s do not start one.
 */
static size_t utf8_sequence_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];

    if (c >= 0xc2 && c <= 0xdf) {
        if (avail >= 2 && (s[1] & 0xc0) == 0x80)
            return 2;
        return 0;
    }
    if (c >= 0xe0 && c <= 0xef) {
        unsigned char lo = 0x80, hi = 0xbf;

        if (c == 0xe0)
            lo = 0xa0; /* overlong below U+0800 */
        else if (c == 0xed)
            hi = 0x9f; /* UTF-16 surrogates U+D800..U+DFFF */
        if (avail >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80)
            return 3;
        return 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned char lo = 0x80, hi = 0xbf;

        if (c == 0xf0)
            lo = 0x90; /* overlong below U+10000 */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
        if (avail >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 &&
            (s[3] & 0xc0) == 0x80)
            return 4;
        return 0;
    }
    return 0; /* a continuation byte, 0xc0/0xc1, or 0xf5..0xff */
}

/*
 * Invalid UTF-8 cannot reach a Kafka consumer as is: strict parsers (jansson, Jackson in
 * strict mode) reject the whole message. PostgreSQL only hands out invalid bytes for
 * SQL_ASCII databases, and there every byte that is not part of a well-formed sequence
 * becomes U+FFFD REPLACEMENT CHARACTER, one per byte, so the length of the damage is still
 * visible.
 */
static const char utf8_replacement[3] = {(char)0xef, (char)0xbf, (char)0xbd};

static const char hex_digits[] = "0123456789abcdef";

void ds_buf_append_json_string(ds_buf_t *buf, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    /* Most values need no escaping at all: the quotes plus the bytes, reserved once. */
    buf_reserve(buf, len + 2);
    buf->data[buf->len++] = '"';

    while (i < len) {
        size_t start = i;

        /* The run of bytes that go out unchanged: ASCII, and well-formed UTF-8. */
        for (;;) {
            while (i < len && json_class[s[i]] == JSON_COPY)
                i++;
            if (i < len && json_class[s[i]] == JSON_UTF8) {
                size_t n = utf8_sequence_len(s + i, len - i);

                if (n) {
                    i += n;
                    continue;
                }
            }
            break;
        }
        if (i > start) {
            buf_reserve(buf, i - start + 1);
            memcpy(buf->data + buf->len, s + start, i - start);
            buf->len += i - start;
        }
        if (i >= len)
            break;

        /* s[i] needs escaping or is an invalid UTF-8 byte. At most 6 bytes come out. */
        buf_reserve(buf, 7);
        char *o = buf->data + buf->len;
        unsigned char c = s[i++];

        if (json_class[c] == JSON_UTF8) {
            memcpy(o, utf8_replacement, 3);
            buf->len += 3;
            continue;
        }
        o[0] = '\\';
        switch (c) {
        case '"':
            o[1] = '"';
            break;
        case '\\':
            o[1] = '\\';
            break;
        case '\n':
            o[1] = 'n';
            break;
        case '\t':
            o[1] = 't';
            break;
        case '\r':
            o[1] = 'r';
            break;
        case '\b':
            o[1] = 'b';
            break;
        case '\f':
            o[1] = 'f';
            break;
        default:
            o[1] = 'u';
            o[2] = '0';
            o[3] = '0';
            o[4] = hex_digits[c >> 4];
            o[5] = hex_digits[c & 0xf];
            buf->len += 6;
            continue;
        }
        buf->len += 2;
    }

    buf_reserve(buf, 1);
    buf->data[buf->len++] = '"';
    buf->data[buf->len] = '\0';
}

void ds_buf_append_int(ds_buf_t *buf, int64_t value)
{
    char digits[24];
    char *p = digits + sizeof(digits);
    /* Negate in unsigned arithmetic: -INT64_MIN does not fit an int64_t. */
    uint64_t u = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (value < 0)
        *--p = '-';
    ds_buf_append(buf, p, (size_t)(digits + sizeof(digits) - p));
}

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void ds_buf_append_base64(ds_buf_t *buf, const uint8_t *data, size_t len)
{
    size_t full = len / 3, rest = len % 3, i;
    char *o;

    if (full > (SIZE_MAX - 8) / 4)
        buf_oom(SIZE_MAX);
    buf_reserve(buf, (full + 1) * 4);
    o = buf->data + buf->len;
    for (i = 0; i < full * 3; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];

        o[0] = base64_alphabet[v >> 18];
        o[1] = base64_alphabet[(v >> 12) & 63];
        o[2] = base64_alphabet[(v >> 6) & 63];
        o[3] = base64_alphabet[v & 63];
        o += 4;
    }
    if (rest) {
        uint32_t v = (uint32_t)data[i] << 16 | (rest == 2 ? (uint32_t)data[i + 1] << 8 : 0);

        o[0] = base64_alphabet[v >> 18];
        o[1] = base64_alphabet[(v >> 12) & 63];
        o[2] = rest == 2 ? base64_alphabet[(v >> 6) & 63] : '=';
        o[3] = '=';
        o += 4;
    }
    buf->len = (size_t)(o - buf->data);
    buf->data[buf->len] = '\0';
}

void ds_buf_append_ident(ds_buf_t *buf, const char *name)
{
    ds_buf_append_char(buf, '"');
    for (const char *p = name; *p; p++) {
        if (*p == '"')
            ds_buf_append_char(buf, '"');
        ds_buf_append_char(buf, *p);
    }
    ds_buf_append_char(buf, '"');
}
