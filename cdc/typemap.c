/*
 * typemap.c: PostgreSQL text output of a column value -> its JSON form in the envelope, as
 * Debezium's PostgreSQL connector writes it through JsonConverter under the configured value
 * settings (docs/type-mapping.md). This file dispatches by type and maps integers, booleans,
 * strings, bytea and arrays; typemap_temporal.c maps dates, times and intervals and
 * typemap_number.c floats, numeric and money.
 *
 * Every parser checks its input: capture must never publish a value that is silently
 * different from the database's, so text that is not what the fixed session settings
 * (DateStyle=ISO, IntervalStyle=iso_8601, TimeZone=UTC, extra_float_digits=3, lc_monetary=C)
 * produce is an error naming the type and the value.
 */
#include <stdio.h>
#include <string.h>

#include "typemap_internal.h"

/* PostgreSQL's MAXDIM: arrays have at most 6 dimensions. */
#define ARRAY_MAX_DEPTH 6

/* Bytes of a value quoted in an error message. */
#define EXCERPT_MAX 40

uint32_t ds_typemap_array_element(uint32_t type_oid)
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
    case 1270:
        return DS_OID_TIMETZ;
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
    elem = ds_typemap_array_element(oid);
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

bool ds_typemap_invalid(uint32_t oid, const char *text, size_t len, const char *why,
                        char *errstr, size_t errstr_size)
{
    char name[32], ex[EXCERPT_MAX + 4];

    return ds_fail(errstr, errstr_size, "invalid %s value \"%s\": %s", type_name(oid, name),
                   excerpt(text, len, ex), why);
}

#define invalid ds_typemap_invalid
#define is_digit ds_typemap_is_digit

/* int2, int4, int8, oid: the digits become a JSON number as they are. */
bool ds_typemap_integer(ds_buf_t *out, uint32_t oid, const char *text, size_t len, char *errstr,
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

bool ds_typemap_bool(ds_buf_t *out, const char *text, size_t len, char *errstr, size_t errstr_size)
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

/* Encodes decoded bytea bytes by binary.handling.mode. Chunks are a multiple of three bytes
 * long, so base64 padding only appears after the last one. */
static void encode_bytes(ds_buf_t *out, ds_binary_handling_t mode, const uint8_t *bytes, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = out->len;

    switch (mode) {
    case DS_BINARY_HEX:
        /* Debezium's HexConverter: two lowercase digits per byte. */
        for (size_t i = 0; i < n; i++) {
            char pair[2] = {hex[bytes[i] >> 4], hex[bytes[i] & 0x0f]};

            ds_buf_append(out, pair, 2);
        }
        return;
    case DS_BINARY_BASE64_URL_SAFE:
        /* java.util.Base64.getUrlEncoder(): RFC 4648 section 5 alphabet, padded. */
        ds_buf_append_base64(out, bytes, n);
        for (size_t i = start; i < out->len; i++) {
            if (out->data[i] == '+')
                out->data[i] = '-';
            else if (out->data[i] == '/')
                out->data[i] = '_';
        }
        return;
    case DS_BINARY_BYTES:  /* JsonConverter writes Connect bytes as base64 */
    case DS_BINARY_BASE64: /* java.util.Base64.getEncoder() */
        break;
    }
    ds_buf_append_base64(out, bytes, n);
}

/*
 * bytea: the bytes encoded by binary.handling.mode (base64 for bytes and base64, as
 * JsonConverter and Debezium write them). The bytes are decoded in chunks and each chunk is
 * encoded at once, so a large value needs no allocation.
 */
bool ds_typemap_bytea(ds_buf_t *out, ds_binary_handling_t mode, const char *text, size_t len,
                      char *errstr, size_t errstr_size)
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
                encode_bytes(out, mode, chunk, n);
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
                encode_bytes(out, mode, chunk, n);
                n = 0;
            }
        }
    }
    encode_bytes(out, mode, chunk, n);
    ds_buf_append_char(out, '"');
    return true;
}

/*
 * Array literals, as array_out writes them: "{a,b}", nested "{{1,2},{3,4}}", "{}" when
 * empty, an optional "[lb:ub]...=" prefix when a lower bound is not 1. Elements that are
 * empty, contain delimiters, quotes, backslashes or whitespace, or spell NULL are
 * double-quoted with '"' and '\' backslash-escaped; an unquoted NULL is the null element.
 */
typedef struct array_parser {
    const char *text;   /* the whole literal, for messages */
    size_t len;         /* its length */
    size_t pos;         /* the next byte to read */
    uint32_t array_oid; /* the array type, for messages */
    uint32_t elem_oid;  /* what each element is mapped as */
    int32_t typmod;     /* the column's typmod, which is its elements' */
    const ds_value_format_t *format; /* the value settings, for each element */
    ds_buf_t scratch;   /* unescaped copy of a quoted element that has backslashes */
    ds_buf_t *out;      /* where the JSON goes */
    char *errstr;       /* the caller's error buffer */
    size_t errstr_size; /* its size */
} array_parser_t;

static bool array_error(array_parser_t *p, const char *why)
{
    char name[32], ex[EXCERPT_MAX + 4];

    return ds_fail(p->errstr, p->errstr_size, "invalid %s value \"%s\": %s at offset %zu",
                   type_name(p->array_oid, name), excerpt(p->text, p->len, ex), why, p->pos);
}

static inline bool array_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static void array_skip_space(array_parser_t *p)
{
    while (p->pos < p->len && array_is_space(p->text[p->pos]))
        p->pos++;
}

/* Maps one element's text by the element type, naming the array in an error. */
static bool array_map_element(array_parser_t *p, const char *elem, size_t elem_len)
{
    char inner[256], name[32], ex[EXCERPT_MAX + 4];

    if (ds_typemap_append_value(p->out, p->elem_oid, p->typmod, p->format, elem, elem_len, inner,
                                sizeof(inner)))
        return true;
    return ds_fail(p->errstr, p->errstr_size, "invalid element in %s value \"%s\": %s",
                   type_name(p->array_oid, name), excerpt(p->text, p->len, ex), inner);
}

static bool array_parse_element(array_parser_t *p)
{
    const char *s = p->text;
    size_t start;

    if (s[p->pos] == '"') {
        bool escaped = false;

        start = ++p->pos;
        while (p->pos < p->len && s[p->pos] != '"') {
            if (s[p->pos] == '\\') {
                escaped = true;
                p->pos++;
                if (p->pos >= p->len)
                    break;
            }
            p->pos++;
        }
        if (p->pos >= p->len)
            return array_error(p, "unterminated quoted element");
        size_t end = p->pos++;

        if (!escaped)
            return array_map_element(p, s + start, end - start);

        /* Rare (elements holding '"' or '\'): unescape into the scratch buffer. */
        ds_buf_reset(&p->scratch);
        for (size_t i = start; i < end; i++) {
            if (s[i] == '\\')
                i++;
            ds_buf_append_char(&p->scratch, s[i]);
        }
        return array_map_element(p, p->scratch.data, p->scratch.len);
    }

    start = p->pos;
    while (p->pos < p->len && s[p->pos] != ',' && s[p->pos] != '}') {
        char c = s[p->pos];

        if (c == '"' || c == '{' || c == '\\')
            return array_error(p, "unexpected character in unquoted element");
        p->pos++;
    }
    size_t end = p->pos;

    /* array_in trims whitespace around unquoted elements; array_out never writes any. */
    while (end > start && array_is_space(s[end - 1]))
        end--;
    if (end == start)
        return array_error(p, "empty unquoted element");
    if (end - start == 4 && (s[start] == 'N' || s[start] == 'n') &&
        (s[start + 1] == 'U' || s[start + 1] == 'u') &&
        (s[start + 2] == 'L' || s[start + 2] == 'l') &&
        (s[start + 3] == 'L' || s[start + 3] == 'l')) {
        ds_buf_append(p->out, "null", 4);
        return true;
    }
    return array_map_element(p, s + start, end - start);
}

/* One "{...}" level, p->pos at its '{'. A level holds either sub-arrays or elements. */
static bool array_parse_level(array_parser_t *p, int depth)
{
    enum { EMPTY, SUBARRAYS, ELEMENTS } holds = EMPTY;

    if (depth > ARRAY_MAX_DEPTH)
        return array_error(p, "more than 6 dimensions");
    p->pos++; /* '{' */
    ds_buf_append_char(p->out, '[');
    array_skip_space(p);
    if (p->pos < p->len && p->text[p->pos] == '}') {
        p->pos++;
        ds_buf_append_char(p->out, ']');
        return true;
    }
    for (;;) {
        array_skip_space(p);
        if (p->pos >= p->len)
            return array_error(p, "unexpected end");
        if (p->text[p->pos] == '{') {
            if (holds == ELEMENTS)
                return array_error(p, "sub-array among elements");
            holds = SUBARRAYS;
            if (!array_parse_level(p, depth + 1))
                return false;
        } else {
            if (holds == SUBARRAYS)
                return array_error(p, "element among sub-arrays");
            holds = ELEMENTS;
            if (!array_parse_element(p))
                return false;
        }
        array_skip_space(p);
        if (p->pos >= p->len)
            return array_error(p, "unexpected end");
        if (p->text[p->pos] == ',') {
            p->pos++;
            ds_buf_append_char(p->out, ',');
            continue;
        }
        if (p->text[p->pos] == '}') {
            p->pos++;
            ds_buf_append_char(p->out, ']');
            return true;
        }
        return array_error(p, "expected ',' or '}'");
    }
}

/* "[lb:ub]" per dimension then '='. JSON arrays have no lower bound, so the bounds are read
 * only to be skipped: the elements come out in order, and a consumer that needs the bounds
 * cannot get them from JSON anyway (documented in docs/type-mapping.md). */
static bool array_skip_dimensions(array_parser_t *p)
{
    const char *s = p->text;
    int ndims = 0;

    while (p->pos < p->len && s[p->pos] == '[') {
        for (int part = 0; part < 2; part++) {
            size_t digits;

            p->pos++; /* '[' or ':' */
            if (p->pos < p->len && (s[p->pos] == '-' || s[p->pos] == '+'))
                p->pos++;
            digits = p->pos;
            while (p->pos < p->len && is_digit(s[p->pos]))
                p->pos++;
            if (p->pos == digits)
                return array_error(p, "expected a dimension bound");
            if (p->pos >= p->len || s[p->pos] != (part == 0 ? ':' : ']'))
                return array_error(p, "malformed dimension decoration");
        }
        p->pos++; /* ']' */
        ndims++;
    }
    if (ndims == 0)
        return true;
    if (p->pos >= p->len || s[p->pos] != '=')
        return array_error(p, "expected '=' after dimensions");
    p->pos++;
    return true;
}

bool ds_typemap_append_array(ds_buf_t *out, uint32_t array_oid, uint32_t elem_oid, int32_t typmod,
                             const ds_value_format_t *format, const char *text, size_t len,
                             char *errstr, size_t errstr_size)
{
    array_parser_t p = {
        .text = text,
        .len = len,
        .pos = 0,
        .array_oid = array_oid,
        .elem_oid = elem_oid,
        .typmod = typmod,
        .format = format,
        .scratch = DS_BUF_INIT,
        .out = out,
        .errstr = errstr,
        .errstr_size = errstr_size,
    };
    bool ok = false;

    if (!array_skip_dimensions(&p))
        goto done;
    array_skip_space(&p);
    if (p.pos >= len || text[p.pos] != '{') {
        array_error(&p, "expected '{'");
        goto done;
    }
    if (!array_parse_level(&p, 1))
        goto done;
    array_skip_space(&p);
    if (p.pos != len) {
        array_error(&p, "unexpected text after the closing '}'");
        goto done;
    }
    ok = true;

done:
    ds_buf_free(&p.scratch);
    return ok;
}


bool ds_typemap_append_value(ds_buf_t *out, uint32_t type_oid, int32_t typmod,
                             const ds_value_format_t *format, const char *text, size_t len,
                             char *errstr, size_t errstr_size)
{
    uint32_t elem;

    /* Without the "debezium" object: dualsync's classic values (typemap_classic.c). */
    if (!format || !format->debezium)
        return ds_typemap_append_json(out, type_oid, text, len, errstr, errstr_size);
    switch (type_oid) {
    case DS_OID_INT2:
    case DS_OID_INT4:
    case DS_OID_INT8:
    case DS_OID_OID:
        return ds_typemap_integer(out, type_oid, text, len, errstr, errstr_size);
    case DS_OID_FLOAT4:
    case DS_OID_FLOAT8:
        return ds_typemap_float(out, type_oid, text, len, errstr, errstr_size);
    case DS_OID_NUMERIC:
        return ds_typemap_numeric(out, typmod, format, text, len, errstr, errstr_size);
    case DS_OID_MONEY:
        return ds_typemap_money(out, format, text, len, errstr, errstr_size);
    case DS_OID_BOOL:
        return ds_typemap_bool(out, text, len, errstr, errstr_size);
    case DS_OID_BYTEA:
        return ds_typemap_bytea(out, format->binary_handling, text, len, errstr, errstr_size);
    case DS_OID_DATE:
        return ds_typemap_date(out, format, text, len, errstr, errstr_size);
    case DS_OID_TIME:
        return ds_typemap_time(out, typmod, format, text, len, errstr, errstr_size);
    case DS_OID_TIMETZ:
        return ds_typemap_timetz(out, text, len, errstr, errstr_size);
    case DS_OID_TIMESTAMP:
        return ds_typemap_timestamp(out, typmod, format, text, len, errstr, errstr_size);
    case DS_OID_TIMESTAMPTZ:
        return ds_typemap_timestamptz(out, typmod, text, len, errstr, errstr_size);
    case DS_OID_INTERVAL:
        return ds_typemap_interval(out, format, text, len, errstr, errstr_size);
    default:
        break;
    }
    elem = ds_typemap_array_element(type_oid);
    if (elem)
        return ds_typemap_append_array(out, type_oid, elem, typmod, format, text, len, errstr,
                                       errstr_size);

    /* text, varchar, bpchar, name, char, uuid, json, jsonb (the document as a string, as
     * Debezium's io.debezium.data.Json), enums, domains, unknown types and arrays of them:
     * the text as a JSON string. */
    ds_buf_append_json_string(out, text, len);
    return true;
}

