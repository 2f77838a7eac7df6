/*
 * test_mapping_expr.c: the expressions and filters dualsync computes in C, text in and text
 * out (NULL distinct from ""), and the functions behind them: SHA-1 (RFC 3174 vectors),
 * version-5 UUIDs (checked against Python's uuid.uuid5), normalize_phone, parse_period, and
 * the $k rewriting of {"sql": ...} texts.
 *
 * Expressions are evaluated the way apply does: a one-target mapping whose column "v" holds
 * the expression is loaded from a temporary file and a create event is mapped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../consumers/mapping/mapping_internal.h"
#include "ds_test.h"

static const char *const connections[] = {"clinic", NULL};
static char temp_dir[256];
static char temp_path[512];

static const char *write_temp(const char *text)
{
    FILE *f;

    if (!temp_dir[0]) {
        snprintf(temp_dir, sizeof(temp_dir), "/tmp/ds_test_mapping_expr_XXXXXX");
        if (!mkdtemp(temp_dir)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    snprintf(temp_path, sizeof(temp_path), "%s/m.json", temp_dir);
    f = fopen(temp_path, "w");
    if (!f) {
        perror(temp_path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    return temp_path;
}

/* A set of one target, key column "k" = "key", column "v" = @p expr, filter @p filter. */
static ds_mapping_set_t *load(const char *expr, const char *filter)
{
    char text[8192], errstr[4096];
    const char *path;
    ds_mapping_set_t *set = NULL;

    snprintf(text, sizeof(text),
             "{\"source\": \"public.t\",%s%s%s \"targets\": [{\"connection\": \"clinic\", "
             "\"table\": \"public.t\", \"key\": [\"k\"], \"columns\": {\"k\": \"key\", "
             "\"v\": %s}}]}",
             filter ? " \"filter\": " : "", filter ? filter : "", filter ? "," : "", expr);
    path = write_temp(text);
    if (!ds_mapping_set_load(&path, 1, "clinic", connections, &set, errstr, sizeof(errstr)))
        fprintf(stderr, "load failed: %s\n", errstr);
    return set;
}

/* The write of a create event with "after" @p after (JSON), or NULL with errstr. */
static const ds_target_write_t *create(ds_mapping_set_t *set, const char *after, char *errstr,
                                       size_t errstr_size)
{
    char text[8192];
    json_t *value;
    ds_write_list_t writes;
    bool ok;

    snprintf(text, sizeof(text), "{\"before\": null, \"after\": %s, \"op\": \"c\"}", after);
    value = json_loads(text, 0, NULL);
    if (!value) {
        snprintf(errstr, errstr_size, "bad test JSON %.200s", text);
        return NULL;
    }
    ok = ds_mapping_eval(set, "clinic.public.t", "{\"k\":1}", 7, value, &writes, errstr,
                         errstr_size);
    json_decref(value);
    return ok && writes.nwrites == 1 ? &writes.writes[0] : NULL;
}

/*
 * Evaluates @p expr on @p after. Returns true with the value of "v" in *out (NULL for SQL
 * NULL, borrowed until the next call), or false with the error in errstr.
 */
static ds_mapping_set_t *set; /* of the last eval() */

static bool eval(const char *expr, const char *after, const char **out, char *errstr,
                 size_t errstr_size)
{
    const ds_target_write_t *w;
    const ds_mapping_target_t *t;

    ds_mapping_set_free(set);
    errstr[0] = '\0';
    if (!(set = load(expr, NULL))) {
        snprintf(errstr, errstr_size, "(load failed)");
        return false;
    }
    if (!(w = create(set, after, errstr, errstr_size)))
        return false;
    t = &set->targets[0];
    for (int j = 0; j < t->pub.write_nparams; j++) {
        if (t->params[j].kind == PARAM_VALUE && t->params[j].column == 1) {
            *out = w->params[j];
            return true;
        }
    }
    snprintf(errstr, errstr_size, "(no parameter for v)");
    return false;
}

/* Checks that @p expr on @p after gives @p want (NULL: SQL NULL). */
#define CHECK_EXPR(expr, after, want)                                                              \
    do {                                                                                           \
        const char *got_ = NULL, *want_ = (want);                                                  \
        char err_[2048];                                                                           \
        bool ok_ = eval((expr), (after), &got_, err_, sizeof(err_));                               \
        DS_CHECK(ok_);                                                                             \
        if (!ok_)                                                                                  \
            fprintf(stderr, "  %s on %s: %s\n", (expr), (after), err_);                            \
        else if (want_)                                                                            \
            DS_CHECK_STR(got_, want_);                                                             \
        else                                                                                       \
            DS_CHECK(got_ == NULL);                                                                \
    } while (0)

/* Checks that @p expr on @p after fails with "<mapping path>: " + @p want. */
static void check_expr_error(const char *expr, const char *after, const char *want)
{
    const char *got;
    char errstr[2048], full[4096];

    DS_CHECK(!eval(expr, after, &got, errstr, sizeof(errstr)));
    snprintf(full, sizeof(full), "%s: %s", temp_path, want);
    DS_CHECK_STR(errstr, full);
}

/* ---------------------------------------------------------------------------------------------
 * The functions
 * ------------------------------------------------------------------------------------------- */

static void hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void test_sha1_matches_the_rfc_3174_vectors(void)
{
    uint8_t digest[20];
    char text[41];
    char *million = malloc(1000000);
    ds_buf_t rep = DS_BUF_INIT;

    ds_mapping_sha1("abc", 3, digest);
    hex(digest, 20, text);
    DS_CHECK_STR(text, "a9993e364706816aba3e25717850c26c9cd0d89d");
    ds_mapping_sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, digest);
    hex(digest, 20, text);
    DS_CHECK_STR(text, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    memset(million, 'a', 1000000);
    ds_mapping_sha1(million, 1000000, digest);
    hex(digest, 20, text);
    DS_CHECK_STR(text, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    for (int i = 0; i < 10; i++)
        ds_buf_append_str(&rep, "0123456701234567012345670123456701234567012345670123456701234567");
    ds_mapping_sha1(rep.data, rep.len, digest);
    hex(digest, 20, text);
    DS_CHECK_STR(text, "dea356a2cddd90c7a7ecedc5ebb563934f460452");
    ds_mapping_sha1("", 0, digest);
    hex(digest, 20, text);
    DS_CHECK_STR(text, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    /* 55, 56 and 64 bytes: the padding spills into a second block at 56. */
    ds_mapping_sha1(million, 55, digest);
    hex(digest, 20, text);
    DS_CHECK_STR(text, "c1c8bbdc22796e28c0e15163d20899b65621d65a");
    ds_mapping_sha1(million, 64, digest);
    hex(digest, 20, text);
    DS_CHECK_STR(text, "0098ba824b5c16427bd7a1122a5a442a25ec644d");
    free(million);
    ds_buf_free(&rep);
}

static void test_uuid5_matches_python(void)
{
    /* python3 -c 'import uuid; print(uuid.uuid5(uuid.NAMESPACE_DNS, "python.org"))' */
    uint8_t dns[16], ns[16];
    char out[37];

    DS_CHECK(ds_mapping_parse_uuid("6ba7b810-9dad-11d1-80b4-00c04fd430c8", dns));
    ds_mapping_uuid5(dns, "python.org", 10, out);
    DS_CHECK_STR(out, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
    DS_CHECK(ds_mapping_parse_uuid("3F0A1C52-7D4E-4B8A-9A61-2C8F5E0D9B11", ns));
    ds_mapping_uuid5(ns, "[\"42\",\"clinic-1\"]", 17, out);
    DS_CHECK_STR(out, "f53f9df9-4616-5a95-9990-7ff981041206");
    ds_mapping_uuid5(ns, "", 0, out);
    DS_CHECK_STR(out, "60893a4e-6387-5563-b13f-846469aca983");
    DS_CHECK(!ds_mapping_parse_uuid("3f0a1c52-7d4e-4b8a-9a61-2c8f5e0d9b1", ns));
    DS_CHECK(!ds_mapping_parse_uuid("3f0a1c52-7d4e-4b8a-9a61-2c8f5e0d9b111", ns));
    DS_CHECK(!ds_mapping_parse_uuid("3f0a1c527d4e-4b8a-9a61-2c8f5e0d9b11-", ns));
    DS_CHECK(!ds_mapping_parse_uuid("3f0a1c52-7d4e-4b8a-9a61-2c8f5e0d9bxx", ns));
}

static void test_uuid5_name_is_the_json_python_writes(void)
{
    /* json.dumps(['a"b\\c', '\n\t\x01\x1f/', '한글 é', None, ''], ensure_ascii=False,
     *            separators=(',', ':')) */
    ds_mapping_value_t values[5] = {
        {"a\"b\\c", 5}, {"\n\t\x01\x1f/", 5}, {"한글 é", strlen("한글 é")}, {NULL, 0}, {"", 0},
    };
    ds_mapping_arena_t arena = {0};
    const char *name;
    size_t len = ds_mapping_uuid5_name(values, 5, &arena, &name);
    uint8_t ns[16];
    char out[37];

    DS_CHECK_STR(name, "[\"a\\\"b\\\\c\",\"\\n\\t\\u0001\\u001f/\",\"한글 é\",null,\"\"]");
    DS_CHECK_INT(len, strlen(name));
    DS_CHECK(ds_mapping_parse_uuid("3f0a1c52-7d4e-4b8a-9a61-2c8f5e0d9b11", ns));
    ds_mapping_uuid5(ns, name, len, out);
    DS_CHECK_STR(out, "c1da1e3c-00fe-5a91-af93-525d160a2d1c");
    ds_mapping_arena_free(&arena);
}

static void test_uuid5_expression(void)
{
    /* The source integer 42 is the text "42": uuid5(ns, '["42","clinic-1"]'). */
    CHECK_EXPR("{\"uuid5\": {\"namespace\": \"3f0a1c52-7d4e-4b8a-9a61-2c8f5e0d9b11\", "
               "\"name\": [\"$id\", \"clinic-1\"]}}",
               "{\"id\": 42}", "f53f9df9-4616-5a95-9990-7ff981041206");
    CHECK_EXPR("{\"uuid5\": {\"namespace\": \"3f0a1c52-7d4e-4b8a-9a61-2c8f5e0d9b11\", "
               "\"name\": [\"$id\"]}}",
               "{\"id\": \"u1\"}", "f3480b59-19b9-5a06-9b49-36534a4fc51f");
    CHECK_EXPR("{\"uuid5\": {\"namespace\": \"3f0a1c52-7d4e-4b8a-9a61-2c8f5e0d9b11\", "
               "\"name\": [\"$a\", \"$b\"]}}",
               "{\"a\": null, \"b\": \"x\"}", "94900c3f-b6d1-5586-b0a5-cc542d0e9211");
}

static void test_normalize_phone(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"+82 10 5555 1234", "01055551234"},
        {"+82 010-5555-1234", "01055551234"},
        {"010-5555-1234", "01055551234"},
        {"(02) 123-4567", "021234567"},
        {"82", "0"},
        {"8210", "010"},
        {"  0 1 0 ", "010"},
        {"+1 415 555 0000", "14155550000"},
        {"tel: 010.1234.5678 ext", "01012345678"},
    };
    char out[64];

    for (size_t i = 0; i < DS_ARRAY_LEN(cases); i++) {
        size_t n = ds_mapping_normalize_phone(cases[i].in, strlen(cases[i].in), out);
        out[n] = '\0';
        DS_CHECK_STR(out, cases[i].want);
    }
    DS_CHECK_INT(ds_mapping_normalize_phone("n/a", 3, out), 0);
    DS_CHECK_INT(ds_mapping_normalize_phone("", 0, out), 0);
    CHECK_EXPR("{\"normalize_phone\": \"$p\"}", "{\"p\": \"+82 10-5555-1234\"}", "01055551234");
    /* No digit at all is no number: NULL, not "". */
    CHECK_EXPR("{\"normalize_phone\": \"$p\"}", "{\"p\": \"none\"}", NULL);
    CHECK_EXPR("{\"normalize_phone\": \"$p\"}", "{\"p\": null}", NULL);
}

static void test_parse_period(void)
{
    static const struct {
        const char *in, *want; /* want NULL: rejected */
    } cases[] = {
        /* 24-hour clock, with or without seconds */
        {"09:30", "MORNING"},
        {"9:30", "MORNING"},
        {"00:00", "MORNING"},
        {"11:59", "MORNING"},
        {"12:00", "AFTERNOON"},
        {"23:59", "AFTERNOON"},
        {" 14:05 ", "AFTERNOON"},
        {"09:00:00", "MORNING"},
        {"13:30:59", "AFTERNOON"},
        /* 12-hour clock */
        {"9:15 AM", "MORNING"},
        {"9:15AM", "MORNING"},
        {"9:30  AM", "MORNING"},
        {"12:30 am", "MORNING"},
        {"12:30 PM", "AFTERNOON"},
        {"1:00 pm", "AFTERNOON"},
        {"11:45 Pm", "AFTERNOON"},
        {"9 am", "MORNING"},
        {"9am", "MORNING"},
        {"9 AM", "MORNING"},
        {"12 pm", "AFTERNOON"},
        {"12 am", "MORNING"},
        {"3 p.m.", "AFTERNOON"},
        {"9:00 a.m.", "MORNING"},
        {"9:30 A.M.", "MORNING"},
        {"9:00 a.m", "MORNING"},
        {"2:00 P.M.", "AFTERNOON"},
        {"09:00:00 AM", "MORNING"},
        /* words */
        {"morning", "MORNING"},
        {"Morning", "MORNING"},
        {"AFTERNOON", "AFTERNOON"},
        {"\tafternoon\n", "AFTERNOON"},
        {"noon", "AFTERNOON"},
        {"Noon", "AFTERNOON"},
        {"midnight", "MORNING"},
        {"MIDNIGHT", "MORNING"},
        /* Korean */
        {"오전", "MORNING"},
        {"오후", "AFTERNOON"},
        {" 오후 ", "AFTERNOON"},
        {"오전 10시", "MORNING"},
        {"오전10시", "MORNING"},
        {"오후 12시", "AFTERNOON"},
        {"오전 12시", "MORNING"},
        {"오후 3시", "AFTERNOON"},
        {"오후 3시 30분", "AFTERNOON"},
        {"오전 10:00", "MORNING"},
        {"오후 2:30", "AFTERNOON"},
        {"10시", "MORNING"},
        {"14시", "AFTERNOON"},
        {"10시 30분", "MORNING"},
        {"정오", "AFTERNOON"},
        {"자정", "MORNING"},
        /* full-width digits, colon, tilde */
        {"１０:００", "MORNING"},
        {"１４：３０", "AFTERNOON"},
        {"오후 ３시", "AFTERNOON"},
        {"１０:００～１１:００", "MORNING"},
        /* ranges: the start decides, the end must read too */
        {"10:00~11:00", "MORNING"},
        {"10:00-11:00", "MORNING"},
        {"10:00 - 11:00", "MORNING"},
        {"11:00~13:00", "MORNING"},
        {"14:00~15:00", "AFTERNOON"},
        {"10:00–11:00", "MORNING"},
        {"10시~11시", "MORNING"},
        {"오후 2시~4시", "AFTERNOON"},
        {"9 am - 11 am", "MORNING"},
        /* rejected: unreadable or ambiguous, never guessed */
        {"asap", NULL},
        {"ASAP", NULL},
        {"25:00", NULL},
        {"24:00", NULL},
        {"24:00:00", NULL},
        {"after lunch maybe", NULL},
        {"", NULL},
        {"   ", NULL},
        {"9", NULL},
        {"9:5", NULL},
        {"09:60", NULL},
        {"09:00:60", NULL},
        {"09:00:0", NULL},
        {"123:00", NULL},
        {"13:00 PM", NULL},
        {"0:30 AM", NULL},
        {"0 am", NULL},
        {"13 pm", NULL},
        {"9:30 AM later", NULL},
        {"9 amish", NULL},
        {"9 a", NULL},
        {"evening", NULL},
        {"mornings", NULL},
        {"noonish", NULL},
        {"오전 13시", NULL},
        {"오후 0시", NULL},
        {"24시", NULL},
        {"10:00~", NULL},
        {"10:00~later", NULL},
        {"~10:00", NULL},
        {"10:00~11:00~12:00", NULL},
        {"9-11", NULL},
        {"１０", NULL},
    };

    for (size_t i = 0; i < DS_ARRAY_LEN(cases); i++) {
        const char *got = ds_mapping_parse_period(cases[i].in, strlen(cases[i].in));

        if (cases[i].want)
            DS_CHECK_STR(got, cases[i].want);
        else if (got)
            DS_CHECK_STR(got, "(rejected)");
    }
    CHECK_EXPR("{\"parse_period\": \"$t\"}", "{\"t\": \"2:30 PM\"}", "AFTERNOON");
    CHECK_EXPR("{\"parse_period\": \"$t\"}", "{\"t\": null}", NULL);
    check_expr_error("{\"parse_period\": \"$t\"}", "{\"t\": \"asap\"}",
                     "target m/t, column \"v\": parse_period cannot read \"asap\" as a time of "
                     "day (expected a time such as 14:30, 09:00:00, 2:30 PM, 9 am, 9:00 a.m., "
                     "noon, midnight, 오전 10시, a range 10:00~11:00, or morning, afternoon, "
                     "오전, 오후; see mappings/README.md)");
    check_expr_error("{\"parse_period\": \"$t\"}", "{\"t\": \"\"}",
                     "target m/t, column \"v\": parse_period cannot read \"\" as a time of day "
                     "(expected a time such as 14:30, 09:00:00, 2:30 PM, 9 am, 9:00 a.m., noon, "
                     "midnight, 오전 10시, a range 10:00~11:00, or morning, afternoon, 오전, "
                     "오후; see mappings/README.md)");
}

/* ---------------------------------------------------------------------------------------------
 * Values and expressions
 * ------------------------------------------------------------------------------------------- */

static void test_source_values_as_text(void)
{
    CHECK_EXPR("\"$c\"", "{\"c\": \"O'Brien\"}", "O'Brien");
    CHECK_EXPR("\"$c\"", "{\"c\": \"\"}", "");
    CHECK_EXPR("\"$c\"", "{\"c\": null}", NULL);
    CHECK_EXPR("\"$c\"", "{\"c\": 42}", "42");
    CHECK_EXPR("\"$c\"", "{\"c\": -9223372036854775807}", "-9223372036854775807");
    CHECK_EXPR("\"$c\"", "{\"c\": 0.1}", "0.1");
    CHECK_EXPR("\"$c\"", "{\"c\": 1.5e-07}", "1.5e-07");
    CHECK_EXPR("\"$c\"", "{\"c\": 1e+20}", "1e+20");
    CHECK_EXPR("\"$c\"", "{\"c\": -2.5}", "-2.5");
    CHECK_EXPR("\"$c\"", "{\"c\": true}", "true");
    CHECK_EXPR("\"$c\"", "{\"c\": false}", "false");
    CHECK_EXPR("\"$c\"", "{\"c\": [[1, 2.25], [3, null], \"a\\\"b\"]}",
               "[[1,2.25],[3,null],\"a\\\"b\"]");
    CHECK_EXPR("\"$c\"", "{\"c\": {\"b\": 0.1, \"a\": [true]}}", "{\"b\":0.1,\"a\":[true]}");
    CHECK_EXPR("\"$my col\"", "{\"my col\": \"x\"}", "x");
    check_expr_error("\"$c\"", "{\"d\": 1}",
                     "target m/t, column \"v\": source column \"c\" is not in the change (a "
                     "mistyped name in the mapping, or a column the source table no longer "
                     "has)");
}

static void test_format_real_is_the_shortest_exact_text(void)
{
    char out[32];

    ds_mapping_format_real(0.1, out);
    DS_CHECK_STR(out, "0.1");
    ds_mapping_format_real(1.0 / 3.0, out);
    DS_CHECK_STR(out, "0.3333333333333333");
    ds_mapping_format_real(123456789.125, out);
    DS_CHECK_STR(out, "123456789.125");
    ds_mapping_format_real(5e-324, out);
    DS_CHECK_STR(out, "5e-324"); /* the smallest denormal reads back from one digit */
    ds_mapping_format_real(1.7976931348623157e308, out);
    DS_CHECK_STR(out, "1.7976931348623157e+308");
}

static void test_constants(void)
{
    CHECK_EXPR("\"DOCTOR\"", "{}", "DOCTOR");
    CHECK_EXPR("\"\"", "{}", "");
    CHECK_EXPR("42", "{}", "42");
    CHECK_EXPR("2.5", "{}", "2.5");
    CHECK_EXPR("true", "{}", "true");
    CHECK_EXPR("null", "{}", NULL);
    CHECK_EXPR("\"$$5 off\"", "{}", "$5 off");
    CHECK_EXPR("\"$$\"", "{}", "$");
    CHECK_EXPR("{\"const\": \"$x\"}", "{}", "$x");
    CHECK_EXPR("{\"const\": {\"a\": [1, 0.5, null]}}", "{}", "{\"a\":[1,0.5,null]}");
    CHECK_EXPR("{\"const\": [\"x\"]}", "{}", "[\"x\"]");
    CHECK_EXPR("{\"const\": null}", "{}", NULL);
}

static void test_case_folding_changes_ascii_letters_only(void)
{
    CHECK_EXPR("{\"lower\": \"$c\"}", "{\"c\": \"AbC-Éé-XYZ\"}", "abc-Éé-xyz");
    CHECK_EXPR("{\"upper\": \"$c\"}", "{\"c\": \"AbC-Éé-xyz\"}", "ABC-Éé-XYZ");
    CHECK_EXPR("{\"lower\": \"$c\"}", "{\"c\": null}", NULL);
    CHECK_EXPR("{\"upper\": \"$c\"}", "{\"c\": 1.5}", "1.5");
}

static void test_trim(void)
{
    CHECK_EXPR("{\"trim\": \"$c\"}", "{\"c\": \" \\t a  b \\r\\n\"}", "a  b");
    CHECK_EXPR("{\"trim\": \"$c\"}", "{\"c\": \"   \"}", "");
    CHECK_EXPR("{\"trim\": \"$c\"}", "{\"c\": null}", NULL);
    /* A trimmed middle of a value, then folded: the parameter is still a whole string. */
    CHECK_EXPR("{\"lower\": {\"trim\": \"$c\"}}", "{\"c\": \" Ann@X.COM \"}", "ann@x.com");
    CHECK_EXPR("{\"trim\": \"$c\"}", "{\"c\": \" Ann \"}", "Ann");
}

static void test_concat_skips_nulls_and_is_never_null(void)
{
    CHECK_EXPR("{\"concat\": [\"$a\", \"-\", \"$b\"]}", "{\"a\": \"x\", \"b\": 7}", "x-7");
    CHECK_EXPR("{\"concat\": [\"$a\", \"$$-\", \"$b\"]}", "{\"a\": \"x\", \"b\": 7}", "x$-7");
    CHECK_EXPR("{\"concat\": [\"$a\", \"-\", \"$b\"]}", "{\"a\": null, \"b\": \"y\"}", "-y");
    CHECK_EXPR("{\"concat\": [\"$a\", \"$b\"]}", "{\"a\": null, \"b\": null}", "");
}

static void test_coalesce_takes_the_first_non_null(void)
{
    CHECK_EXPR("{\"coalesce\": [\"$a\", \"$b\", \"none\"]}", "{\"a\": null, \"b\": \"\"}", "");
    CHECK_EXPR("{\"coalesce\": [\"$a\", \"$b\", \"none\"]}", "{\"a\": null, \"b\": null}", "none");
    CHECK_EXPR("{\"coalesce\": [\"$a\", \"$b\"]}", "{\"a\": null, \"b\": null}", NULL);
    /* Later parts are not evaluated once one is found: a missing column there is no error. */
    CHECK_EXPR("{\"coalesce\": [\"$a\", \"$missing\"]}", "{\"a\": \"x\"}", "x");
}

static void test_map(void)
{
    const char *with_default =
        "{\"map\": {\"value\": \"$r\", \"cases\": {\"DOCTOR\": \"doc\", \"NURSE\": "
        "{\"upper\": \"$n\"}}, \"default\": \"other\"}}";
    const char *without_default =
        "{\"map\": {\"value\": \"$r\", \"cases\": {\"DOCTOR\": \"doc\", \"NURSE\": \"nurse\"}}}";

    CHECK_EXPR(with_default, "{\"r\": \"DOCTOR\", \"n\": \"x\"}", "doc");
    CHECK_EXPR(with_default, "{\"r\": \"NURSE\", \"n\": \"x\"}", "X");
    CHECK_EXPR(with_default, "{\"r\": \"ADMIN\", \"n\": \"x\"}", "other");
    CHECK_EXPR(with_default, "{\"r\": null, \"n\": \"x\"}", NULL);
    CHECK_EXPR(without_default, "{\"r\": \"NURSE\"}", "nurse");
    CHECK_EXPR(without_default, "{\"r\": null}", NULL);
    /* Cases match exactly: case and spaces count. */
    check_expr_error(without_default, "{\"r\": \"doctor\"}",
                     "target m/t, column \"v\": value \"doctor\" is not one of the map's cases "
                     "(DOCTOR, NURSE) and the map has no default");
    check_expr_error(without_default, "{\"r\": \"JANITOR\\n\"}",
                     "target m/t, column \"v\": value \"JANITOR\\n\" is not one of the map's "
                     "cases (DOCTOR, NURSE) and the map has no default");
    CHECK_EXPR("{\"map\": {\"value\": \"$b\", \"cases\": {\"true\": \"Y\", \"false\": \"N\"}}}",
               "{\"b\": false}", "N");
}

/* ---------------------------------------------------------------------------------------------
 * Filters
 * ------------------------------------------------------------------------------------------- */

/* Whether @p filter matches @p after: the create becomes an upsert, else an unlink. */
static int matches(const char *filter, const char *after)
{
    ds_mapping_set_t *fset = load("\"$v\"", filter);
    const ds_target_write_t *w;
    char errstr[2048];
    int result = -1;

    if (!fset)
        return -1;
    w = create(fset, after, errstr, sizeof(errstr));
    if (w)
        result = w->kind == DS_WRITE_UPSERT ? 1 : w->kind == DS_WRITE_UNLINK ? 0 : -1;
    else
        fprintf(stderr, "  filter %s on %s: %s\n", filter, after, errstr);
    ds_mapping_set_free(fset);
    return result;
}

static void test_eq_and_ne_treat_null_as_a_value(void)
{
    static const struct {
        const char *a, *b;
        int eq;
    } rows[] = {
        {"\"x\"", "\"x\"", 1}, {"\"x\"", "\"y\"", 0},   {"\"x\"", "null", 0},
        {"null", "\"x\"", 0},  {"null", "null", 1},     {"\"\"", "null", 0},
        {"42", "\"42\"", 1},   {"true", "\"true\"", 1}, {"1.50", "\"1.5\"", 1},
    };
    char after[256];

    for (size_t i = 0; i < DS_ARRAY_LEN(rows); i++) {
        snprintf(after, sizeof(after), "{\"v\": 1, \"a\": %s, \"b\": %s}", rows[i].a, rows[i].b);
        DS_CHECK_INT(matches("{\"eq\": [\"$a\", \"$b\"]}", after), rows[i].eq);
        DS_CHECK_INT(matches("{\"ne\": [\"$a\", \"$b\"]}", after), !rows[i].eq);
    }
    DS_CHECK_INT(matches("{\"eq\": [\"$a\", true]}", "{\"v\": 1, \"a\": true}"), 1);
    DS_CHECK_INT(matches("{\"eq\": [\"$a\", true]}", "{\"v\": 1, \"a\": false}"), 0);
    DS_CHECK_INT(
        matches("{\"eq\": [{\"lower\": \"$a\"}, \"doctor\"]}", "{\"v\": 1, \"a\": \"DOCTOR\"}"), 1);
}

static void test_in_is_null_and_not_null(void)
{
    const char *in = "{\"in\": [\"$a\", [\"A\", 7, null, true]]}";

    DS_CHECK_INT(matches(in, "{\"v\": 1, \"a\": \"A\"}"), 1);
    DS_CHECK_INT(matches(in, "{\"v\": 1, \"a\": 7}"), 1);
    DS_CHECK_INT(matches(in, "{\"v\": 1, \"a\": \"7\"}"), 1);
    DS_CHECK_INT(matches(in, "{\"v\": 1, \"a\": null}"), 1);
    DS_CHECK_INT(matches(in, "{\"v\": 1, \"a\": true}"), 1);
    DS_CHECK_INT(matches(in, "{\"v\": 1, \"a\": \"a\"}"), 0);
    DS_CHECK_INT(matches("{\"in\": [\"$a\", []]}", "{\"v\": 1, \"a\": \"a\"}"), 0);
    DS_CHECK_INT(matches("{\"is_null\": \"$a\"}", "{\"v\": 1, \"a\": null}"), 1);
    DS_CHECK_INT(matches("{\"is_null\": \"$a\"}", "{\"v\": 1, \"a\": \"\"}"), 0);
    DS_CHECK_INT(matches("{\"not_null\": \"$a\"}", "{\"v\": 1, \"a\": \"\"}"), 1);
    DS_CHECK_INT(matches("{\"not_null\": \"$a\"}", "{\"v\": 1, \"a\": null}"), 0);
    DS_CHECK_INT(
        matches("{\"not_null\": {\"normalize_phone\": \"$a\"}}", "{\"v\": 1, \"a\": \"n/a\"}"), 0);
}

static void test_and_or_not_truth_tables(void)
{
    static const char *const t = "{\"eq\": [1, 1]}", *const f = "{\"eq\": [1, 2]}";
    char filter[512];

    for (int a = 0; a < 2; a++) {
        for (int b = 0; b < 2; b++) {
            snprintf(filter, sizeof(filter), "{\"and\": [%s, %s]}", a ? t : f, b ? t : f);
            DS_CHECK_INT(matches(filter, "{\"v\": 1}"), a && b);
            snprintf(filter, sizeof(filter), "{\"or\": [%s, %s]}", a ? t : f, b ? t : f);
            DS_CHECK_INT(matches(filter, "{\"v\": 1}"), a || b);
        }
        snprintf(filter, sizeof(filter), "{\"not\": %s}", a ? t : f);
        DS_CHECK_INT(matches(filter, "{\"v\": 1}"), !a);
    }
    snprintf(filter, sizeof(filter), "{\"and\": [%s, %s, %s]}", t, t, f);
    DS_CHECK_INT(matches(filter, "{\"v\": 1}"), 0);
    snprintf(filter, sizeof(filter), "{\"or\": [%s, %s, %s]}", f, f, t);
    DS_CHECK_INT(matches(filter, "{\"v\": 1}"), 1);
    /* Short-circuit: once decided, later operands are not evaluated (a missing column there
     * would fail the change). */
    snprintf(filter, sizeof(filter), "{\"or\": [%s, {\"eq\": [\"$missing\", 1]}]}", t);
    DS_CHECK_INT(matches(filter, "{\"v\": 1}"), 1);
    snprintf(filter, sizeof(filter), "{\"and\": [%s, {\"eq\": [\"$missing\", 1]}]}", f);
    DS_CHECK_INT(matches(filter, "{\"v\": 1}"), 0);
}

/* ---------------------------------------------------------------------------------------------
 * {"sql": ...}
 * ------------------------------------------------------------------------------------------- */

static void check_rewrite(const char *sql, int nargs, const char *want)
{
    static const char *const map[] = {"$11", "$12", "$13"};
    ds_buf_t out = DS_BUF_INIT;
    uint64_t used;
    char errstr[256] = "";

    DS_CHECK(ds_mapping_sql_rewrite(sql, nargs, map, &out, &used, errstr, sizeof(errstr)));
    DS_CHECK_STR(out.data ? out.data : "", want);
    if (errstr[0])
        fprintf(stderr, "  %s: %s\n", sql, errstr);
    ds_buf_free(&out);
}

static void check_rewrite_error(const char *sql, int nargs, const char *want)
{
    uint64_t used;
    char errstr[256] = "";

    DS_CHECK(!ds_mapping_sql_rewrite(sql, nargs, NULL, NULL, &used, errstr, sizeof(errstr)));
    DS_CHECK_STR(errstr, want);
}

static void test_sql_parameters_are_renumbered_outside_quotes_and_comments(void)
{
    uint64_t used;
    char errstr[256];

    check_rewrite("lower($1) || $2", 2, "lower($11) || $12");
    check_rewrite("$2+$1*$2", 2, "$12+$11*$12");
    check_rewrite("'$1' || $1", 1, "'$1' || $11");
    check_rewrite("'it''s $1' || $1", 1, "'it''s $1' || $11");
    check_rewrite("E'\\' $1' || $1", 1, "E'\\' $1' || $11");
    check_rewrite("\"$1\" || $1", 1, "\"$1\" || $11");
    check_rewrite("$$ $1 $$ || $tag$ $1 $ $tag$ || $1", 1, "$$ $1 $$ || $tag$ $1 $ $tag$ || $11");
    check_rewrite("$1 -- $1", 1, "$11 -- $1\n");
    check_rewrite("$1 -- $1\n+ $1", 1, "$11 -- $1\n+ $11");
    check_rewrite("/* $1 /* $1 */ $1 */ $1", 1, "/* $1 /* $1 */ $1 */ $11");
    check_rewrite("a$1 + $1", 1, "a$1 + $11");
    check_rewrite("coalesce($1, $3)", 3, "coalesce($11, $13)");
    DS_CHECK(ds_mapping_sql_rewrite("$1 || $3", 3, NULL, NULL, &used, errstr, sizeof(errstr)));
    DS_CHECK_INT(used, 5);
    check_rewrite_error("$1; DROP TABLE x", 1, "the SQL text is one expression: no \";\"");
    check_rewrite_error("$0", 1, "$0 in the SQL text has no argument (args has 1 entry)");
    check_rewrite_error("$2", 1, "$2 in the SQL text has no argument (args has 1 entry)");
    check_rewrite_error("$1a", 1, "trailing junk after parameter $1 in the SQL text");
    check_rewrite_error("'abc", 0, "unterminated string literal in the SQL text");
    check_rewrite_error("\"abc", 0, "unterminated quoted identifier in the SQL text");
    check_rewrite_error("/* a /* b */", 0, "unterminated comment in the SQL text");
    check_rewrite_error("$q$ abc", 0, "unterminated dollar-quoted string in the SQL text");
    check_rewrite_error("(1", 0, "unbalanced \"(\" in the SQL text");
    check_rewrite_error("1) + (2", 0, "unbalanced \")\" in the SQL text");
}

int main(void)
{
    DS_RUN(test_sha1_matches_the_rfc_3174_vectors);
    DS_RUN(test_uuid5_matches_python);
    DS_RUN(test_uuid5_name_is_the_json_python_writes);
    DS_RUN(test_uuid5_expression);
    DS_RUN(test_normalize_phone);
    DS_RUN(test_parse_period);
    DS_RUN(test_source_values_as_text);
    DS_RUN(test_format_real_is_the_shortest_exact_text);
    DS_RUN(test_constants);
    DS_RUN(test_case_folding_changes_ascii_letters_only);
    DS_RUN(test_trim);
    DS_RUN(test_concat_skips_nulls_and_is_never_null);
    DS_RUN(test_coalesce_takes_the_first_non_null);
    DS_RUN(test_map);
    DS_RUN(test_eq_and_ne_treat_null_as_a_value);
    DS_RUN(test_in_is_null_and_not_null);
    DS_RUN(test_and_or_not_truth_tables);
    DS_RUN(test_sql_parameters_are_renumbered_outside_quotes_and_comments);
    ds_mapping_set_free(set);
    unlink(temp_path);
    rmdir(temp_dir);
    return ds_test_report();
}
