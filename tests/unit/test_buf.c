/*
 * test_buf.c: the growable buffer and its JSON primitives (string escaping per RFC 8259,
 * integers, base64 per RFC 4648).
 */
#include <jansson.h>
#include <stdlib.h>

#include "dualsync/buf.h"
#include "ds_test.h"

/* True when text parses as one JSON value (any type; NUL escapes allowed). */
static bool json_valid(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);

    if (!j) {
        fprintf(stderr, "invalid JSON (%s): %s\n", err.text, text);
        return false;
    }
    json_decref(j);
    return true;
}

/* The escaped form of len bytes of s, as a NUL-terminated string the caller frees. */
static char *escaped(const char *s, size_t len)
{
    ds_buf_t buf = DS_BUF_INIT;

    ds_buf_append_json_string(&buf, s, len);
    return buf.data;
}

/* Parses a JSON string with jansson and checks it decodes to want (want_len bytes). */
static bool decodes_to(const char *json, const char *want, size_t want_len)
{
    json_t *j = json_loads(json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    bool ok = j && json_is_string(j) && json_string_length(j) == want_len &&
              memcmp(json_string_value(j), want, want_len) == 0;

    json_decref(j);
    return ok;
}

static void test_append_grows_and_keeps_terminator(void)
{
    ds_buf_t buf = DS_BUF_INIT;
    char expect[10001];

    for (int i = 0; i < 10000; i++) {
        ds_buf_append_char(&buf, (char)('a' + i % 26));
        expect[i] = (char)('a' + i % 26);
    }
    expect[10000] = '\0';
    DS_CHECK_INT(buf.len, 10000);
    DS_CHECK(buf.cap > buf.len);
    DS_CHECK_INT(buf.data[buf.len], '\0');
    DS_CHECK(memcmp(buf.data, expect, 10001) == 0);
    ds_buf_free(&buf);
}

static void test_append_empty_string_allocates_terminated_buffer(void)
{
    ds_buf_t buf = DS_BUF_INIT;

    ds_buf_append_str(&buf, "");
    DS_CHECK(buf.data != NULL);
    DS_CHECK_STR(buf.data, "");
    DS_CHECK_INT(buf.len, 0);
    ds_buf_free(&buf);
}

static void test_reset_keeps_memory(void)
{
    ds_buf_t buf = DS_BUF_INIT;
    char *data;

    ds_buf_append_str(&buf, "hello");
    data = buf.data;
    ds_buf_reset(&buf);
    DS_CHECK_INT(buf.len, 0);
    DS_CHECK_STR(buf.data, "");
    DS_CHECK(buf.data == data);
    ds_buf_append_str(&buf, "world");
    DS_CHECK_STR(buf.data, "world");
    ds_buf_free(&buf);
}

static void test_extend_grows_by_what_the_caller_writes(void)
{
    ds_buf_t buf = DS_BUF_INIT;
    char *at;

    ds_buf_append_str(&buf, "ab");
    for (int i = 0; i < 100; i++) {
        at = ds_buf_extend(&buf, 10);
        DS_CHECK(at == buf.data + buf.len - 10);
        DS_CHECK_INT(buf.data[buf.len], '\0');
        memcpy(at, "0123456789", 10);
    }
    DS_CHECK_INT(buf.len, 1002);
    DS_CHECK(memcmp(buf.data, "ab0123456789", 12) == 0);
    DS_CHECK(memcmp(buf.data + 992, "0123456789", 10) == 0);
    DS_CHECK_INT(buf.data[buf.len], '\0');
    ds_buf_free(&buf);
}

static void test_free_allows_reuse(void)
{
    ds_buf_t buf = DS_BUF_INIT;

    ds_buf_append_str(&buf, "one");
    ds_buf_free(&buf);
    DS_CHECK(buf.data == NULL);
    DS_CHECK_INT(buf.cap, 0);
    ds_buf_free(&buf);
    ds_buf_append_str(&buf, "two");
    DS_CHECK_STR(buf.data, "two");
    ds_buf_free(&buf);
    ds_buf_free(NULL);
}

static void test_appendf_formats_long_output(void)
{
    ds_buf_t buf = DS_BUF_INIT;
    char want[1100];

    ds_buf_append_str(&buf, "x=");
    ds_buf_appendf(&buf, "%d-%0999d", 7, 1);
    snprintf(want, sizeof(want), "x=%d-%0999d", 7, 1);
    DS_CHECK_STR(buf.data, want);
    DS_CHECK_INT(buf.len, strlen(want));
    ds_buf_appendf(&buf, "%s", "!");
    DS_CHECK_INT(buf.data[buf.len - 1], '!');
    ds_buf_free(&buf);
}

static void test_json_string_plain_text_is_quoted(void)
{
    char *s = escaped("hello world", 11);

    DS_CHECK_STR(s, "\"hello world\"");
    free(s);
}

static void test_json_string_escapes_quote_and_backslash(void)
{
    char *s = escaped("a\"b\\c", 5);

    DS_CHECK_STR(s, "\"a\\\"b\\\\c\"");
    DS_CHECK(decodes_to(s, "a\"b\\c", 5));
    free(s);
}

static void test_json_string_escapes_every_control_character(void)
{
    for (int c = 0; c < 0x20; c++) {
        char in[3] = {'x', (char)c, 'y'}, want[16];
        char *s = escaped(in, 3);

        switch (c) {
        case '\n':
            strcpy(want, "\"x\\ny\"");
            break;
        case '\t':
            strcpy(want, "\"x\\ty\"");
            break;
        case '\r':
            strcpy(want, "\"x\\ry\"");
            break;
        case '\b':
            strcpy(want, "\"x\\by\"");
            break;
        case '\f':
            strcpy(want, "\"x\\fy\"");
            break;
        default:
            snprintf(want, sizeof(want), "\"x\\u%04xy\"", c);
        }
        DS_CHECK_STR(s, want);
        DS_CHECK(json_valid(s));
        DS_CHECK(decodes_to(s, in, 3));
        free(s);
    }
}

static void test_json_string_leaves_del_and_slash_alone(void)
{
    char *s = escaped("/\x7f", 2);

    DS_CHECK_STR(s, "\"/\x7f\"");
    DS_CHECK(json_valid(s));
    free(s);
}

static void test_json_string_passes_valid_utf8(void)
{
    /* U+00E9 (2 bytes), U+20AC (3 bytes), U+1F600 (4 bytes), U+10FFFF (largest). */
    const char in[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf";
    char *s = escaped(in, sizeof(in) - 1);
    char want[64];

    snprintf(want, sizeof(want), "\"%s\"", in);
    DS_CHECK_STR(s, want);
    DS_CHECK(decodes_to(s, in, sizeof(in) - 1));
    free(s);
}

static void test_json_string_replaces_each_invalid_byte(void)
{
    static const struct {
        const char *in;
        size_t len;
        const char *want;
    } cases[] = {
        /* lone continuation byte */
        {"a\x80z", 3, "\"a\xef\xbf\xbdz\""},
        /* overlong encoding of '/' (C0 AF): both bytes invalid */
        {"\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\""},
        /* UTF-16 surrogate U+D800 encoded as ED A0 80 */
        {"\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
        /* above U+10FFFF */
        {"\xf4\x90\x80\x80", 4, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
        /* F5..FF never appear in UTF-8 */
        {"\xff", 1, "\"\xef\xbf\xbd\""},
        /* a 3-byte sequence cut short at the end of the value */
        {"x\xe2\x82", 3, "\"x\xef\xbf\xbd\xef\xbf\xbd\""},
        /* a lead byte followed by ASCII: the ASCII survives */
        {"\xc3(", 2, "\"\xef\xbf\xbd(\""},
        /* overlong 3-byte form of U+007F */
        {"\xe0\x81\xbf", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
    };

    for (size_t i = 0; i < DS_ARRAY_LEN(cases); i++) {
        char *s = escaped(cases[i].in, cases[i].len);

        DS_CHECK_STR(s, cases[i].want);
        DS_CHECK(json_valid(s));
        free(s);
    }
}

static void test_json_string_escapes_embedded_nul(void)
{
    char *s = escaped("a\0b", 3);

    DS_CHECK_STR(s, "\"a\\u0000b\"");
    DS_CHECK(decodes_to(s, "a\0b", 3));
    free(s);
}

static void test_json_string_of_long_mixed_text_round_trips(void)
{
    size_t len = 100000;
    char *in = malloc(len);
    char *s;

    /* Runs of plain text, escapes and multi-byte characters across several buffer growths. */
    for (size_t i = 0; i < len; i++)
        in[i] = "abc\"\\\n\x01z"[i % 9];
    memcpy(in + 500, "\xe2\x82\xac", 3);
    s = escaped(in, len);
    DS_CHECK(json_valid(s));
    DS_CHECK(decodes_to(s, in, len));
    free(s);
    free(in);
}

static void test_json_string_appends_after_existing_content(void)
{
    ds_buf_t buf = DS_BUF_INIT;

    ds_buf_append_str(&buf, "{\"k\":");
    ds_buf_append_json_string(&buf, "v\n", 2);
    ds_buf_append_char(&buf, '}');
    DS_CHECK_STR(buf.data, "{\"k\":\"v\\n\"}");
    DS_CHECK(json_valid(buf.data));
    ds_buf_free(&buf);
}

static void test_int_extremes(void)
{
    ds_buf_t buf = DS_BUF_INIT;

    ds_buf_append_int(&buf, 0);
    ds_buf_append_char(&buf, ' ');
    ds_buf_append_int(&buf, -1);
    ds_buf_append_char(&buf, ' ');
    ds_buf_append_int(&buf, INT64_MAX);
    ds_buf_append_char(&buf, ' ');
    ds_buf_append_int(&buf, INT64_MIN);
    DS_CHECK_STR(buf.data, "0 -1 9223372036854775807 -9223372036854775808");
    ds_buf_free(&buf);
}

static void test_base64_rfc4648_vectors(void)
{
    static const char *const vectors[][2] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };

    for (size_t i = 0; i < DS_ARRAY_LEN(vectors); i++) {
        ds_buf_t buf = DS_BUF_INIT;

        ds_buf_append_base64(&buf, (const uint8_t *)vectors[i][0], strlen(vectors[i][0]));
        DS_CHECK_STR(buf.data ? buf.data : "", vectors[i][1]);
        ds_buf_free(&buf);
    }
}

static void test_base64_uses_plus_and_slash(void)
{
    ds_buf_t buf = DS_BUF_INIT;
    const uint8_t high[] = {0xfb, 0xff, 0xbf};

    ds_buf_append_base64(&buf, high, sizeof(high));
    DS_CHECK_STR(buf.data, "+/+/");
    ds_buf_free(&buf);
}

static void test_base64_appends_after_existing_content(void)
{
    ds_buf_t buf = DS_BUF_INIT;

    ds_buf_append_char(&buf, '"');
    ds_buf_append_base64(&buf, (const uint8_t *)"\x0a\x0b", 2);
    ds_buf_append_char(&buf, '"');
    DS_CHECK_STR(buf.data, "\"Cgs=\"");
    ds_buf_free(&buf);
}

int main(void)
{
    DS_RUN(test_append_grows_and_keeps_terminator);
    DS_RUN(test_append_empty_string_allocates_terminated_buffer);
    DS_RUN(test_reset_keeps_memory);
    DS_RUN(test_free_allows_reuse);
    DS_RUN(test_appendf_formats_long_output);
    DS_RUN(test_json_string_plain_text_is_quoted);
    DS_RUN(test_json_string_escapes_quote_and_backslash);
    DS_RUN(test_json_string_escapes_every_control_character);
    DS_RUN(test_json_string_leaves_del_and_slash_alone);
    DS_RUN(test_json_string_passes_valid_utf8);
    DS_RUN(test_json_string_replaces_each_invalid_byte);
    DS_RUN(test_json_string_escapes_embedded_nul);
    DS_RUN(test_json_string_of_long_mixed_text_round_trips);
    DS_RUN(test_json_string_appends_after_existing_content);
    DS_RUN(test_int_extremes);
    DS_RUN(test_base64_rfc4648_vectors);
    DS_RUN(test_base64_uses_plus_and_slash);
    DS_RUN(test_base64_appends_after_existing_content);
    DS_RUN(test_extend_grows_by_what_the_caller_writes);
    return ds_test_report();
}
