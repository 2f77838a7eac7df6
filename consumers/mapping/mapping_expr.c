/*
 * mapping_expr.c: evaluates mapping expressions and filters in C, text in, text out.
 *
 * A value is a byte string or SQL NULL (ds_mapping_value_t with p == NULL), never confused
 * with the empty string. Values computed for one change live in the set's arena until the
 * next change, so evaluation allocates nothing once the arena has grown to its working size.
 *
 * Also here: the functions behind the expressions (SHA-1 and version-5 UUIDs, phone number
 * normalization; preferred times are read in mapping_period.c), and the small allocation
 * helpers the mapping files share.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapping_internal.h"

/* ---------------------------------------------------------------------------------------------
 * Memory
 * ------------------------------------------------------------------------------------------- */

static void out_of_memory(size_t size)
{
    fprintf(stderr, "dualsync: out of memory (%zu bytes) in the mapping module\n", size);
    abort();
}

void *ds_mapping_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);

    if (!p)
        out_of_memory(size);
    return p;
}

void *ds_mapping_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (!p)
        out_of_memory(n * size);
    return p;
}

void *ds_mapping_xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);

    if (!q)
        out_of_memory(size);
    return q;
}

char *ds_mapping_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = ds_mapping_xmalloc(n);

    memcpy(p, s, n);
    return p;
}

char *ds_mapping_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *p;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        out_of_memory(0);
    p = ds_mapping_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

struct ds_mapping_block {
    ds_mapping_block_t *next; /* the block after this one */
    size_t size;              /* bytes in data */
    size_t used;              /* bytes handed out since the last reset */
    char data[];              /* the memory */
};

#define ARENA_BLOCK_MIN 8192

void *ds_mapping_arena_alloc(ds_mapping_arena_t *arena, size_t size)
{
    ds_mapping_block_t *b = arena->current, *last = NULL;
    size_t want;

    /* Aligned for the arrays of values kept here too. */
    size = (size + 7) & ~(size_t)7;

    /* Reuse the blocks kept from earlier changes before making a new one. */
    for (; b; b = b->next) {
        if (b->size - b->used >= size) {
            arena->current = b;
            b->used += size;
            return b->data + b->used - size;
        }
        last = b;
    }
    if (!last)
        for (last = arena->first; last && last->next; last = last->next)
            ;
    want = size > ARENA_BLOCK_MIN ? size : ARENA_BLOCK_MIN;
    if (last && last->size * 2 > want)
        want = last->size * 2;
    b = ds_mapping_xmalloc(sizeof(*b) + want);
    b->next = NULL;
    b->size = want;
    b->used = size;
    if (last)
        last->next = b;
    else
        arena->first = b;
    arena->current = b;
    return b->data;
}

void ds_mapping_arena_reset(ds_mapping_arena_t *arena)
{
    for (ds_mapping_block_t *b = arena->first; b; b = b->next)
        b->used = 0;
    arena->current = arena->first;
}

void ds_mapping_arena_free(ds_mapping_arena_t *arena)
{
    ds_mapping_block_t *b = arena->first;

    while (b) {
        ds_mapping_block_t *next = b->next;
        free(b);
        b = next;
    }
    arena->first = arena->current = NULL;
}

static ds_mapping_value_t arena_copy(ds_mapping_arena_t *arena, const char *p, size_t len)
{
    char *q = ds_mapping_arena_alloc(arena, len + 1);

    memcpy(q, p, len);
    q[len] = '\0';
    return (ds_mapping_value_t){q, len};
}

const char *ds_mapping_value_copy(ds_mapping_arena_t *arena, ds_mapping_value_t v)
{
    return v.p ? arena_copy(arena, v.p, v.len).p : NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Source values as text
 * ------------------------------------------------------------------------------------------- */

void ds_mapping_format_real(double d, char out[32])
{
    if (!isfinite(d)) {
        /* JSON has no such numbers; capture writes them as strings. */
        snprintf(out, 32, "%s", isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity");
        return;
    }
    /* PostgreSQL (extra_float_digits > 0) writes the shortest text that reads back exactly;
     * so does this, so a real reaches the target as the source database wrote it. */
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(out, 32, "%.*g", precision, d);
        if (strtod(out, NULL) == d)
            return;
    }
}

/*
 * The escaping of uuid5 names and of JSON text made here (see ds_mapping_uuid5_name): the
 * escape of byte c, or NULL when it goes out as it is. hex holds at least 7 bytes.
 */
static const char *escape_of(unsigned char c, char *hex)
{
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    default:
        if (c >= 0x20)
            return NULL;
        snprintf(hex, 7, "\\u%04x", c);
        return hex;
    }
}

static void append_json_string(ds_buf_t *buf, const char *s, size_t len)
{
    size_t start = 0;
    char hex[8];

    ds_buf_append_char(buf, '"');
    for (size_t i = 0; i < len; i++) {
        const char *esc = escape_of((unsigned char)s[i], hex);

        if (esc) {
            ds_buf_append(buf, s + start, i - start);
            ds_buf_append_str(buf, esc);
            start = i + 1;
        }
    }
    ds_buf_append(buf, s + start, len - start);
    ds_buf_append_char(buf, '"');
}

/* Like append_json_string into out, which holds 6 * len + 2 bytes; returns the bytes written. */
static size_t write_json_string(char *out, const char *s, size_t len)
{
    size_t n = 0;
    char hex[8];

    out[n++] = '"';
    for (size_t i = 0; i < len; i++) {
        const char *esc = escape_of((unsigned char)s[i], hex);

        if (esc) {
            size_t elen = strlen(esc);
            memcpy(out + n, esc, elen);
            n += elen;
        } else {
            out[n++] = s[i];
        }
    }
    out[n++] = '"';
    return n;
}

/* Compact JSON with reals written as the source wrote them (jansson's dumper would write
 * 0.1 as 0.10000000000000001). */
static void dump_json(ds_buf_t *buf, const json_t *json)
{
    char num[32];

    switch (json_typeof(json)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *member;
        bool first = true;

        ds_buf_append_char(buf, '{');
        json_object_foreach((json_t *)json, key, member)
        {
            if (!first)
                ds_buf_append_char(buf, ',');
            first = false;
            append_json_string(buf, key, strlen(key));
            ds_buf_append_char(buf, ':');
            dump_json(buf, member);
        }
        ds_buf_append_char(buf, '}');
        break;
    }
    case JSON_ARRAY:
        ds_buf_append_char(buf, '[');
        for (size_t i = 0; i < json_array_size(json); i++) {
            if (i)
                ds_buf_append_char(buf, ',');
            dump_json(buf, json_array_get(json, i));
        }
        ds_buf_append_char(buf, ']');
        break;
    case JSON_STRING:
        append_json_string(buf, json_string_value(json), json_string_length(json));
        break;
    case JSON_INTEGER:
        ds_buf_append_int(buf, (int64_t)json_integer_value(json));
        break;
    case JSON_REAL:
        ds_mapping_format_real(json_real_value(json), num);
        ds_buf_append_str(buf, num);
        break;
    case JSON_TRUE:
        ds_buf_append_str(buf, "true");
        break;
    case JSON_FALSE:
        ds_buf_append_str(buf, "false");
        break;
    case JSON_NULL:
        ds_buf_append_str(buf, "null");
        break;
    }
}

void ds_mapping_json_text(const json_t *json, ds_mapping_arena_t *arena, ds_mapping_value_t *out)
{
    char num[32];

    switch (json ? json_typeof(json) : JSON_NULL) {
    case JSON_STRING:
        *out = (ds_mapping_value_t){json_string_value(json), json_string_length(json)};
        return;
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(json));
        *out = arena_copy(arena, num, strlen(num));
        return;
    case JSON_REAL:
        ds_mapping_format_real(json_real_value(json), num);
        *out = arena_copy(arena, num, strlen(num));
        return;
    case JSON_TRUE:
        *out = (ds_mapping_value_t){"true", 4};
        return;
    case JSON_FALSE:
        *out = (ds_mapping_value_t){"false", 5};
        return;
    case JSON_NULL:
        *out = (ds_mapping_value_t){NULL, 0};
        return;
    case JSON_OBJECT:
    case JSON_ARRAY: {
        ds_buf_t buf = DS_BUF_INIT;

        /* Rare (json columns arrive as strings): one temporary buffer is acceptable. */
        dump_json(&buf, json);
        *out = arena_copy(arena, buf.data, buf.len);
        ds_buf_free(&buf);
        return;
    }
    }
}

/* ---------------------------------------------------------------------------------------------
 * SHA-1 (RFC 3174) and version-5 UUIDs (RFC 4122 section 4.3)
 * ------------------------------------------------------------------------------------------- */

static uint32_t rol32(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

/* Twenty rounds of one function and constant: sha1_block runs four of them, with no branch
 * per round (a merge mapping computes two uuid5 per change). */
#define SHA1_ROUNDS(from, f, k)                                                                    \
    for (int t = (from); t < (from) + 20; t++) {                                                   \
        uint32_t tmp = rol32(a, 5) + (f) + e + w[t] + (k);                                         \
        e = d;                                                                                     \
        d = c;                                                                                     \
        c = rol32(b, 30);                                                                          \
        b = a;                                                                                     \
        a = tmp;                                                                                   \
    }

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
    uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];

    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | (uint32_t)p[4 * t + 3];
    for (int t = 16; t < 80; t++)
        w[t] = rol32(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    SHA1_ROUNDS(0, d ^ (b & (c ^ d)), 0x5A827999)
    SHA1_ROUNDS(20, b ^ c ^ d, 0x6ED9EBA1)
    SHA1_ROUNDS(40, (b & c) | (d & (b | c)), 0x8F1BBCDC)
    SHA1_ROUNDS(60, b ^ c ^ d, 0xCA62C1D6)
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

/* SHA-1 over two pieces (namespace + name) without copying them together. */
static void sha1_two(const void *a, size_t alen, const void *b, size_t blen, uint8_t digest[20])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    uint8_t block[64];
    size_t fill = 0;
    uint64_t bits = ((uint64_t)alen + (uint64_t)blen) * 8;
    const uint8_t *pieces[2] = {a, b};
    size_t lens[2] = {alen, blen};

    for (int k = 0; k < 2; k++) {
        const uint8_t *p = pieces[k];
        size_t n = lens[k];

        while (n > 0) {
            size_t take = 64 - fill < n ? 64 - fill : n;

            memcpy(block + fill, p, take);
            fill += take;
            p += take;
            n -= take;
            if (fill == 64) {
                sha1_block(h, block);
                fill = 0;
            }
        }
    }
    /* Padding: 0x80, zeros, then the message length in bits, big-endian. */
    block[fill++] = 0x80;
    if (fill > 56) {
        memset(block + fill, 0, 64 - fill);
        sha1_block(h, block);
        fill = 0;
    }
    memset(block + fill, 0, 56 - fill);
    for (int i = 0; i < 8; i++)
        block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    sha1_block(h, block);
    for (int i = 0; i < 5; i++) {
        digest[4 * i] = (uint8_t)(h[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(h[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(h[i] >> 8);
        digest[4 * i + 3] = (uint8_t)h[i];
    }
}

void ds_mapping_sha1(const void *data, size_t len, uint8_t digest[20])
{
    sha1_two(data, len, "", 0, digest);
}

bool ds_mapping_parse_uuid(const char *text, uint8_t out[16])
{
    int n = 0;

    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;

        if (dash) {
            if (text[i] != '-')
                return false;
            continue;
        }
        int hi = ds_hex_value(text[i]);
        int lo = hi < 0 ? -1 : ds_hex_value(text[i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[n++] = (uint8_t)(hi << 4 | lo);
        i++;
    }
    return text[36] == '\0';
}

void ds_mapping_uuid5(const uint8_t ns[16], const char *name, size_t len, char out[37])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t digest[20];
    int o = 0;

    sha1_two(ns, 16, name, len, digest);
    digest[6] = (uint8_t)((digest[6] & 0x0F) | 0x50); /* version 5 */
    digest[8] = (uint8_t)((digest[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[digest[i] >> 4];
        out[o++] = hex[digest[i] & 0x0F];
    }
    out[o] = '\0';
}

size_t ds_mapping_uuid5_name(const ds_mapping_value_t *values, int n, ds_mapping_arena_t *arena,
                             const char **out)
{
    size_t size = 3, len = 0;
    char *q;

    for (int i = 0; i < n; i++)
        size += values[i].p ? 6 * values[i].len + 3 : 5;
    q = ds_mapping_arena_alloc(arena, size);
    q[len++] = '[';
    for (int i = 0; i < n; i++) {
        if (i)
            q[len++] = ',';
        if (values[i].p) {
            len += write_json_string(q + len, values[i].p, values[i].len);
        } else {
            memcpy(q + len, "null", 4);
            len += 4;
        }
    }
    q[len++] = ']';
    q[len] = '\0';
    *out = q;
    return len;
}

/* ---------------------------------------------------------------------------------------------
 * Phone numbers
 * ------------------------------------------------------------------------------------------- */

size_t ds_mapping_normalize_phone(const char *text, size_t len, char *out)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        if (text[i] >= '0' && text[i] <= '9')
            out[n++] = text[i];
    }
    /* Korean numbers: +82 10-5555-1234 is 010-5555-1234 at home. People also write the
     * trunk 0 after the country code (+82 010 ...), which must not become 00. */
    if (n >= 2 && out[0] == '8' && out[1] == '2') {
        memmove(out, out + 2, n - 2);
        n -= 2;
        if (n == 0 || out[0] != '0') {
            memmove(out + 1, out, n);
            out[0] = '0';
            n++;
        }
    }
    return n;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* ---------------------------------------------------------------------------------------------
 * Evaluation
 * ------------------------------------------------------------------------------------------- */

/* How a value appears in a message: quoted, cut after 60 bytes, control characters escaped. */
static void show_value(ds_mapping_value_t v, char *out, size_t size)
{
    ds_buf_t buf = DS_BUF_INIT;
    size_t len;

    if (!v.p) {
        snprintf(out, size, "NULL");
        return;
    }
    len = v.len;
    if (len > 60) {
        len = 60;
        while (len > 0 && ((unsigned char)v.p[len] & 0xC0) == 0x80)
            len--;
    }
    append_json_string(&buf, v.p, len);
    snprintf(out, size, "%s%s", buf.data, len < v.len ? "..." : "");
    ds_buf_free(&buf);
}

static bool eval_fail(ds_mapping_eval_ctx_t *ctx, const char *fmt, ...) DS_PRINTF(2, 3);

static bool eval_fail(ds_mapping_eval_ctx_t *ctx, const char *fmt, ...)
{
    char message[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    if (ctx->target && ctx->column)
        return ds_fail(ctx->errstr, ctx->errstr_size, "%s: target %s, column \"%s\": %s", ctx->file,
                       ctx->target, ctx->column, message);
    if (ctx->target)
        return ds_fail(ctx->errstr, ctx->errstr_size, "%s: target %s, filter: %s", ctx->file,
                       ctx->target, message);
    return ds_fail(ctx->errstr, ctx->errstr_size, "%s: filter: %s", ctx->file, message);
}

static bool eval_column(const ds_mapping_expr_t *e, ds_mapping_eval_ctx_t *ctx,
                        ds_mapping_value_t *out)
{
    const json_t *json = json_object_get(ctx->row, e->text);

    if (!json)
        return eval_fail(ctx,
                         "source column \"%s\" is not in the change (a mistyped name in the "
                         "mapping, or a column the source table no longer has)",
                         e->text);
    if (json_is_string(json) && ctx->placeholder &&
        strcmp(json_string_value(json), ctx->placeholder) == 0)
        return eval_fail(ctx,
                         "source column \"%s\" holds an unchanged TOASTed value, which the WAL "
                         "does not carry (%s); give the source table REPLICA IDENTITY FULL, or "
                         "do not compute keys or filters from this column",
                         e->text, ctx->placeholder);
    ds_mapping_json_text(json, ctx->arena, out);
    return true;
}

static bool eval_case(const ds_mapping_expr_t *e, ds_mapping_eval_ctx_t *ctx,
                      ds_mapping_value_t *out)
{
    ds_mapping_value_t in;
    char *q;

    if (!ds_mapping_expr_eval(e->args[0], ctx, &in))
        return false;
    if (!in.p) {
        *out = in;
        return true;
    }
    q = ds_mapping_arena_alloc(ctx->arena, in.len + 1);
    for (size_t i = 0; i < in.len; i++) {
        char c = in.p[i];
        /* ASCII letters only: other characters (and every UTF-8 byte) stay as they are. */
        if (e->kind == EXPR_LOWER && c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        else if (e->kind == EXPR_UPPER && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        q[i] = c;
    }
    q[in.len] = '\0';
    *out = (ds_mapping_value_t){q, in.len};
    return true;
}

static bool eval_trim(const ds_mapping_expr_t *e, ds_mapping_eval_ctx_t *ctx,
                      ds_mapping_value_t *out)
{
    ds_mapping_value_t in;
    size_t start = 0, end;

    if (!ds_mapping_expr_eval(e->args[0], ctx, &in))
        return false;
    if (!in.p) {
        *out = in;
        return true;
    }
    end = in.len;
    while (start < end && is_space(in.p[start]))
        start++;
    while (end > start && is_space(in.p[end - 1]))
        end--;
    *out = (ds_mapping_value_t){in.p + start, end - start};
    return true;
}

static bool eval_concat(const ds_mapping_expr_t *e, ds_mapping_eval_ctx_t *ctx,
                        ds_mapping_value_t *out)
{
    ds_mapping_value_t *parts =
        ds_mapping_arena_alloc(ctx->arena, sizeof(*parts) * (size_t)(e->nargs + 1));
    size_t total = 0;
    char *q;

    for (int i = 0; i < e->nargs; i++) {
        if (!ds_mapping_expr_eval(e->args[i], ctx, &parts[i]))
            return false;
        total += parts[i].len;
    }
    /* Like PostgreSQL's concat(): NULL parts add nothing, and the result is never NULL. */
    q = ds_mapping_arena_alloc(ctx->arena, total + 1);
    total = 0;
    for (int i = 0; i < e->nargs; i++) {
        if (parts[i].p) {
            memcpy(q + total, parts[i].p, parts[i].len);
            total += parts[i].len;
        }
    }
    q[total] = '\0';
    *out = (ds_mapping_value_t){q, total};
    return true;
}

static bool eval_map(const ds_mapping_expr_t *e, ds_mapping_eval_ctx_t *ctx,
                     ds_mapping_value_t *out)
{
    ds_mapping_value_t in;
    char shown[128];
    ds_buf_t cases = DS_BUF_INIT;

    if (!ds_mapping_expr_eval(e->args[0], ctx, &in))
        return false;
    if (!in.p) {
        *out = in;
        return true;
    }
    for (int i = 0; i < e->ncases; i++) {
        if (strlen(e->case_keys[i]) == in.len && memcmp(e->case_keys[i], in.p, in.len) == 0)
            return ds_mapping_expr_eval(e->case_values[i], ctx, out);
    }
    if (e->map_default)
        return ds_mapping_expr_eval(e->map_default, ctx, out);
    show_value(in, shown, sizeof(shown));
    for (int i = 0; i < e->ncases && i < 12; i++)
        ds_buf_appendf(&cases, "%s%s", i ? ", " : "", e->case_keys[i]);
    if (e->ncases > 12)
        ds_buf_append_str(&cases, ", ...");
    eval_fail(ctx, "value %s is not one of the map's cases (%s) and the map has no default", shown,
              cases.data ? cases.data : "");
    ds_buf_free(&cases);
    return false;
}

static bool eval_uuid5(const ds_mapping_expr_t *e, ds_mapping_eval_ctx_t *ctx,
                       ds_mapping_value_t *out)
{
    ds_mapping_value_t *names =
        ds_mapping_arena_alloc(ctx->arena, sizeof(*names) * (size_t)(e->nargs + 1));
    const char *name;
    size_t name_len;
    char *q = ds_mapping_arena_alloc(ctx->arena, 37);

    for (int i = 0; i < e->nargs; i++) {
        if (!ds_mapping_expr_eval(e->args[i], ctx, &names[i]))
            return false;
    }
    name_len = ds_mapping_uuid5_name(names, e->nargs, ctx->arena, &name);
    ds_mapping_uuid5(e->ns, name, name_len, q);
    *out = (ds_mapping_value_t){q, 36};
    return true;
}

static bool eval_phone(const ds_mapping_expr_t *e, ds_mapping_eval_ctx_t *ctx,
                       ds_mapping_value_t *out)
{
    ds_mapping_value_t in;
    char *q;
    size_t n;

    if (!ds_mapping_expr_eval(e->args[0], ctx, &in))
        return false;
    if (!in.p) {
        *out = in;
        return true;
    }
    q = ds_mapping_arena_alloc(ctx->arena, in.len + 2);
    n = ds_mapping_normalize_phone(in.p, in.len, q);
    /* No digit at all ("-", "none"): there is no number, which is NULL rather than "". */
    if (n == 0) {
        *out = (ds_mapping_value_t){NULL, 0};
        return true;
    }
    q[n] = '\0';
    *out = (ds_mapping_value_t){q, n};
    return true;
}

static bool eval_period(const ds_mapping_expr_t *e, ds_mapping_eval_ctx_t *ctx,
                        ds_mapping_value_t *out)
{
    ds_mapping_value_t in;
    const char *period;
    char shown[128];

    if (!ds_mapping_expr_eval(e->args[0], ctx, &in))
        return false;
    if (!in.p) {
        *out = in;
        return true;
    }
    period = ds_mapping_parse_period(in.p, in.len);
    if (!period) {
        show_value(in, shown, sizeof(shown));
        return eval_fail(ctx,
                         "parse_period cannot read %s as a time of day (expected a time such as "
                         "14:30, 09:00:00, 2:30 PM, 9 am, 9:00 a.m., noon, midnight, 오전 10시, "
                         "a range 10:00~11:00, or morning, afternoon, 오전, 오후; see "
                         "mappings/README.md)",
                         shown);
    }
    *out = (ds_mapping_value_t){period, strlen(period)};
    return true;
}

bool ds_mapping_expr_eval(const ds_mapping_expr_t *e, ds_mapping_eval_ctx_t *ctx,
                          ds_mapping_value_t *out)
{
    switch (e->kind) {
    case EXPR_COLUMN:
        return eval_column(e, ctx, out);
    case EXPR_CONST:
        *out = (ds_mapping_value_t){e->text, e->text_len};
        return true;
    case EXPR_LOWER:
    case EXPR_UPPER:
        return eval_case(e, ctx, out);
    case EXPR_TRIM:
        return eval_trim(e, ctx, out);
    case EXPR_CONCAT:
        return eval_concat(e, ctx, out);
    case EXPR_COALESCE:
        for (int i = 0; i < e->nargs; i++) {
            if (!ds_mapping_expr_eval(e->args[i], ctx, out))
                return false;
            if (out->p)
                return true;
        }
        *out = (ds_mapping_value_t){NULL, 0};
        return true;
    case EXPR_MAP:
        return eval_map(e, ctx, out);
    case EXPR_UUID5:
        return eval_uuid5(e, ctx, out);
    case EXPR_NORMALIZE_PHONE:
        return eval_phone(e, ctx, out);
    case EXPR_PARSE_PERIOD:
        return eval_period(e, ctx, out);
    case EXPR_CAST:
    case EXPR_LOOKUP:
    case EXPR_SQL:
        break;
    }
    /* The loader rejects C functions over database-computed values, so this is a bug. */
    return eval_fail(ctx, "internal error: expression computed by the database reached the C "
                          "evaluator");
}

static bool same(ds_mapping_value_t a, ds_mapping_value_t b)
{
    if (!a.p || !b.p)
        return !a.p && !b.p;
    return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

bool ds_mapping_filter_eval(const ds_mapping_filter_t *f, ds_mapping_eval_ctx_t *ctx, bool *match)
{
    ds_mapping_value_t a, b;

    switch (f->kind) {
    case FILTER_EQ:
    case FILTER_NE:
        if (!ds_mapping_expr_eval(f->a, ctx, &a) || !ds_mapping_expr_eval(f->b, ctx, &b))
            return false;
        /* NULL equals NULL and nothing else (IS NOT DISTINCT FROM): a filter always decides. */
        *match = same(a, b) == (f->kind == FILTER_EQ);
        return true;
    case FILTER_IN:
        if (!ds_mapping_expr_eval(f->a, ctx, &a))
            return false;
        *match = false;
        for (int i = 0; i < f->nin && !*match; i++) {
            ds_mapping_value_t c = {f->in_values[i], f->in_values[i] ? strlen(f->in_values[i]) : 0};
            *match = same(a, c);
        }
        return true;
    case FILTER_IS_NULL:
    case FILTER_NOT_NULL:
        if (!ds_mapping_expr_eval(f->a, ctx, &a))
            return false;
        *match = (a.p == NULL) == (f->kind == FILTER_IS_NULL);
        return true;
    case FILTER_AND:
    case FILTER_OR:
        /* Short-circuits: a later operand is not evaluated (and cannot fail) once decided. */
        for (int i = 0; i < f->nsubs; i++) {
            if (!ds_mapping_filter_eval(f->subs[i], ctx, match))
                return false;
            if (*match == (f->kind == FILTER_OR))
                return true;
        }
        *match = f->kind == FILTER_AND;
        return true;
    case FILTER_NOT:
        if (!ds_mapping_filter_eval(f->subs[0], ctx, match))
            return false;
        *match = !*match;
        return true;
    }
    return eval_fail(ctx, "internal error: unknown filter");
}

/* ---------------------------------------------------------------------------------------------
 * Freeing
 * ------------------------------------------------------------------------------------------- */

void ds_mapping_expr_free(ds_mapping_expr_t *e)
{
    if (!e)
        return;
    for (int i = 0; i < e->nargs; i++)
        ds_mapping_expr_free(e->args[i]);
    free(e->args);
    for (int i = 0; i < e->ncases; i++) {
        free(e->case_keys[i]);
        ds_mapping_expr_free(e->case_values[i]);
    }
    free(e->case_keys);
    free(e->case_values);
    ds_mapping_expr_free(e->map_default);
    if (e->match_columns || e->match_where) {
        for (int i = 0; i < e->nargs; i++) {
            if (e->match_columns)
                free(e->match_columns[i]);
            if (e->match_where)
                free(e->match_where[i]);
        }
    }
    free(e->match_columns);
    free(e->match_where);
    free(e->text);
    free(e->lookup_schema);
    free(e->lookup_table);
    free(e->lookup_column);
    free(e->where);
    free(e->table_where);
    free(e->column_where);
    free(e->sql);
    free(e->exists);
    free(e);
}

void ds_mapping_filter_free(ds_mapping_filter_t *f)
{
    if (!f)
        return;
    ds_mapping_expr_free(f->a);
    ds_mapping_expr_free(f->b);
    for (int i = 0; i < f->nin; i++)
        free(f->in_values[i]);
    free(f->in_values);
    for (int i = 0; i < f->nsubs; i++)
        ds_mapping_filter_free(f->subs[i]);
    free(f->subs);
    free(f);
}
