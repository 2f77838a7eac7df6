/*
 * jsonpos.c: a minimal JSON tokenizer that walks text jansson already parsed to a JSON path, so
 * that error messages can name the line and column of a value (jansson does not keep them).
 *
 * It trusts what jansson checked (balanced brackets, valid tokens, no duplicate keys) and so
 * only tells tokens apart; it never validates. The recursion in scan_value() is bounded by
 * jansson's own depth limit, which the text already passed.
 */
#include <stdlib.h>
#include <string.h>

#include "dualsync/jsonpos.h"

/* A cursor over the text that keeps the line and column of the next byte. */
typedef struct scanner {
    const char *p;   /* next byte */
    const char *end; /* end of the text */
    int line;        /* of p, 1-based */
    int col;         /* of p, 1-based, in characters */
} scanner_t;

static void scan_advance(scanner_t *sc)
{
    unsigned char c = (unsigned char)*sc->p++;

    if (c == '\n') {
        sc->line++;
        sc->col = 1;
    } else if ((c & 0xC0) != 0x80) {
        /* UTF-8 continuation bytes belong to the character already counted. */
        sc->col++;
    }
}

static void scan_ws(scanner_t *sc)
{
    while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n' || *sc->p == '\r'))
        scan_advance(sc);
}

static bool scan_expect(scanner_t *sc, char c)
{
    if (sc->p >= sc->end || *sc->p != c)
        return false;
    scan_advance(sc);
    return true;
}

/* Skips a string token; *raw and *raw_len receive its content between the quotes. */
static bool scan_string(scanner_t *sc, const char **raw, size_t *raw_len)
{
    if (!scan_expect(sc, '"'))
        return false;
    *raw = sc->p;
    while (sc->p < sc->end && *sc->p != '"') {
        if (*sc->p == '\\') {
            scan_advance(sc);
            if (sc->p >= sc->end)
                return false;
        }
        scan_advance(sc);
    }
    *raw_len = (size_t)(sc->p - *raw);
    return scan_expect(sc, '"');
}

/* Skips an object member's key and its colon, up to the start of its value. */
static bool scan_member_key(scanner_t *sc, const char **raw, size_t *raw_len)
{
    if (!scan_string(sc, raw, raw_len))
        return false;
    scan_ws(sc);
    if (!scan_expect(sc, ':'))
        return false;
    scan_ws(sc);
    return true;
}

/* Lenient (see jsonpos.h) because config.c also decodes keys of text jansson rejected, to tell
 * whether a syntax error sits inside a secret. */
void ds_json_unescape(const char *raw, size_t len, char *out)
{
    const char *p = raw, *end = raw + len;
    char *o = out;

    while (p < end) {
        if (*p != '\\' || p + 1 >= end) {
            *o++ = *p++;
            continue;
        }
        p++;
        switch (*p) {
        case 'b':
            *o++ = '\b';
            p++;
            break;
        case 'f':
            *o++ = '\f';
            p++;
            break;
        case 'n':
            *o++ = '\n';
            p++;
            break;
        case 'r':
            *o++ = '\r';
            p++;
            break;
        case 't':
            *o++ = '\t';
            p++;
            break;
        case 'u': {
            long cp = ds_hex4_value(p + 1, end);
            if (cp < 0) {
                *o++ = *p++;
                break;
            }
            p += 5;
            if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                long lo = ds_hex4_value(p + 2, end);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
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
            break;
        }
        default:
            *o++ = *p++;
            break; /* \" \\ \/ and, in rejected text, anything */
        }
    }
    *o = '\0';
}

/* Whether a string token's content decodes to key. Out of memory it answers "no", so the
 * position is not found and the message goes without it: never an abort for a message. */
static bool string_equals(const char *raw, size_t raw_len, const char *key)
{
    char small[256], *buf = small;
    bool equal;

    /* Without escapes the text is the key; most keys take this way. */
    if (!memchr(raw, '\\', raw_len))
        return strlen(key) == raw_len && memcmp(raw, key, raw_len) == 0;
    if (raw_len >= sizeof(small) && !(buf = malloc(raw_len + 1)))
        return false;
    ds_json_unescape(raw, raw_len, buf);
    equal = strcmp(buf, key) == 0;
    if (buf != small)
        free(buf);
    return equal;
}

static bool scan_value(scanner_t *sc);

static bool scan_container(scanner_t *sc, char open, char close)
{
    if (!scan_expect(sc, open))
        return false;
    scan_ws(sc);
    if (scan_expect(sc, close))
        return true;
    for (;;) {
        if (open == '{') {
            const char *raw;
            size_t raw_len;

            if (!scan_member_key(sc, &raw, &raw_len))
                return false;
        }
        if (!scan_value(sc))
            return false;
        scan_ws(sc);
        if (scan_expect(sc, close))
            return true;
        if (!scan_expect(sc, ','))
            return false;
        scan_ws(sc);
    }
}

/* Skips one value (the text was accepted by jansson, whose depth limit bounds the recursion). */
static bool scan_value(scanner_t *sc)
{
    const char *raw;
    size_t raw_len;

    if (sc->p >= sc->end)
        return false;
    switch (*sc->p) {
    case '{':
        return scan_container(sc, '{', '}');
    case '[':
        return scan_container(sc, '[', ']');
    case '"':
        return scan_string(sc, &raw, &raw_len);
    default: {
        const char *start = sc->p;
        while (sc->p < sc->end && !strchr(" \t\r\n,:]}", *sc->p))
            scan_advance(sc);
        return sc->p > start;
    }
    }
}

/* Skips a value that is not the one sought, and the comma that must then follow it. */
static bool skip_element(scanner_t *sc)
{
    if (!scan_value(sc))
        return false;
    scan_ws(sc);
    if (!scan_expect(sc, ','))
        return false;
    scan_ws(sc);
    return true;
}

bool ds_json_locate(const char *text, size_t len, const ds_json_step_t *path, int depth,
                    bool at_key, ds_json_pos_t *pos)
{
    scanner_t sc = {.p = text, .end = text + len, .line = 1, .col = 1};
    scanner_t key_sc = sc;

    scan_ws(&sc);
    for (int i = 0; i < depth; i++) {
        if (path[i].key) {
            bool found = false;

            if (!scan_expect(&sc, '{'))
                return false;
            scan_ws(&sc);
            while (!found) {
                const char *raw;
                size_t raw_len;

                key_sc = sc;
                if (!scan_member_key(&sc, &raw, &raw_len))
                    return false;
                /* jansson rejected duplicate keys, so the first match is the one. */
                if (string_equals(raw, raw_len, path[i].key))
                    found = true;
                else if (!skip_element(&sc))
                    return false;
            }
        } else {
            if (!scan_expect(&sc, '['))
                return false;
            scan_ws(&sc);
            for (size_t k = 0; k < path[i].index; k++) {
                if (!skip_element(&sc))
                    return false;
            }
        }
    }
    if (at_key && depth > 0 && path[depth - 1].key)
        sc = key_sc; /* the key is a string value as far as extent goes */
    pos->start = sc.p;
    pos->line = sc.line;
    pos->column = sc.col;
    pos->end = scan_value(&sc) ? sc.p : NULL;
    return true;
}

bool ds_json_is_plain_key(const char *key)
{
    if (!(*key == '_' || (*key >= 'a' && *key <= 'z') || (*key >= 'A' && *key <= 'Z')))
        return false;
    for (const char *p = key; *p; p++) {
        if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9')))
            return false;
    }
    return true;
}
