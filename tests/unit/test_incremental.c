/*
 * test_incremental.c: capture's side of `dualsync backfill` without a database: the rows of a
 * HIGH watermark read without a JSON tree (watermark_rows.c) exactly as jansson would read
 * them, and a HIGH's read events handed over only while capture's in-flight limits allow,
 * the rest when it resumes (incremental.c).
 */
#include <stdlib.h>
#include <string.h>

#include "dualsync/incremental.h"
#include "dualsync/watermark_rows.h"
#include "ds_test.h"

static char why[256];

/* ---- watermark_rows ---------------------------------------------------------------------- */

/* Reads every row of @rows_json (2 columns) into @out as "a|b;" (null as "~"); returns the
 * status of the last ds_watermark_rows_next call. */
static int read_all(const char *rows_json, char *out, size_t out_size)
{
    ds_watermark_rows_t rows;
    ds_value_t values[2];
    int got;

    out[0] = '\0';
    why[0] = '\0';
    if (!ds_watermark_rows_open(&rows, rows_json, strlen(rows_json), why, sizeof(why)))
        return -2;
    while ((got = ds_watermark_rows_next(&rows, values, 2, why, sizeof(why))) > 0) {
        for (int i = 0; i < 2; i++) {
            size_t used = strlen(out);

            if (values[i].kind == DS_VALUE_NULL)
                snprintf(out + used, out_size - used, "~%s", i ? ";" : "|");
            else
                snprintf(out + used, out_size - used, "%.*s%s", (int)values[i].len,
                         values[i].data, i ? ";" : "|");
        }
    }
    ds_watermark_rows_close(&rows);
    return got;
}

static void test_rows_are_found_among_the_other_members(void)
{
    const char *doc = "{\"watermark\":\"high\",\"columns\":[[\"id\",23,-1,true]],"
                      "\"note\":\"a \\\"rows\\\": [] inside\",\"rows\":[[\"1\",null]] ,\"z\":{}}";
    size_t start = 0, end = 0;

    DS_CHECK(ds_watermark_rows_find(doc, strlen(doc), &start, &end));
    DS_CHECK_INT(end - start, strlen("[[\"1\",null]]"));
    DS_CHECK(strncmp(doc + start, "[[\"1\",null]]", end - start) == 0);
    DS_CHECK(!ds_watermark_rows_find("{\"watermark\":\"low\",\"chunk\":3}", 29, &start, &end));
    DS_CHECK(!ds_watermark_rows_find("[1,2]", 5, &start, &end));
    DS_CHECK(!ds_watermark_rows_find("{\"rows\":", 8, &start, &end));
}

static void test_rows_values_decode_as_json_strings(void)
{
    char out[256];

    DS_CHECK_INT(read_all("[]", out, sizeof(out)), 0);
    DS_CHECK_STR(out, "");
    DS_CHECK_INT(read_all(" [ [\"a\", null] , [ \"\" ,\"b\"] ] ", out, sizeof(out)), 0);
    DS_CHECK_STR(out, "a|~;|b;");
    /* Every escape JSON has, a surrogate pair, and UTF-8 as it stands. */
    DS_CHECK_INT(read_all("[[\"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t\","
                          "\"\\u00e9\\ud83d\\ude00\xed\x95\x9c\"]]",
                          out, sizeof(out)),
                 0);
    DS_CHECK_STR(out, "q\"b\\s/\b\f\n\r\t|\xc3\xa9\xf0\x9f\x98\x80\xed\x95\x9c;");
}

static void test_malformed_rows_are_refused_as_jansson_refuses_them(void)
{
    static const char *const bad[] = {
        "[[\"a\\q\",\"b\"]]",         /* unknown escape */
        "[[\"\\ud800\",\"b\"]]",      /* a high surrogate alone */
        "[[\"\\udc00\",\"b\"]]",      /* a low surrogate alone */
        "[[\"\\u0000\",\"b\"]]",      /* NUL */
        "[[\"\\u12\",\"b\"]]",        /* short \u */
        "[[\"a\tb\",\"b\"]]",         /* a raw control character */
        "[[\"\xc3\",\"b\"]]",         /* a truncated UTF-8 sequence */
        "[[\"\xed\xa0\x80\",\"b\"]]", /* a surrogate in UTF-8 */
        "[[\"\xc0\xaf\",\"b\"]]",     /* an overlong form */
        "[[\"a\",\"b\"",              /* unterminated */
        "[[\"a\",1]]",                /* a number */
        "[[\"a\"]]",                  /* too few values */
        "[[\"a\",\"b\",\"c\"]]",      /* too many */
        "[[\"a\",\"b\"]] x",          /* text after the array */
        "[[\"a\",\"b\"][\"c\",\"d\"]]", /* no comma between rows */
        "[[\"a\" \"b\"]]",            /* no comma between values */
        "[\"a\"]",                    /* a row that is not an array */
    };
    char out[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int got = read_all(bad[i], out, sizeof(out));

        if (got != -1)
            fprintf(stderr, "accepted: %s\n", bad[i]);
        DS_CHECK_INT(got, -1);
        DS_CHECK(why[0] != '\0');
    }
    DS_CHECK_INT(read_all("{\"a\":1}", out, sizeof(out)), -2);
    DS_CHECK_STR(why, "\"rows\" is not an array");
}

/* ---- a HIGH handed over within capture's in-flight limits ------------------------------- */

/* A stand-in for capture: in flight = emitted - acknowledged, full at `limit`. */
typedef struct fake_capture {
    int holds, releases;
    int emitted, acked, limit;
    char last_value[512];
} fake_capture_t;

static uint64_t fake_hold(void *ctx)
{
    fake_capture_t *fc = ctx;

    return (uint64_t)++fc->holds;
}

static bool fake_emit(void *ctx, uint64_t token, const ds_change_record_t *rec, char *errstr,
                      size_t errstr_size)
{
    fake_capture_t *fc = ctx;

    fc->emitted++;
    snprintf(fc->last_value, sizeof(fc->last_value), "%.*s", (int)rec->value_len, rec->value);
    return true;
}

static void fake_release(void *ctx, uint64_t token)
{
    fake_capture_t *fc = ctx;

    fc->releases++;
}

static bool fake_full(void *ctx)
{
    fake_capture_t *fc = ctx;

    return fc->emitted - fc->acked >= fc->limit;
}

static char *item_pk[] = {"id", NULL};

static ds_pgoutput_msg_t watermark(const char *content, ds_lsn_t lsn)
{
    ds_pgoutput_msg_t m;

    memset(&m, 0, sizeof(m));
    m.type = DS_PGOUTPUT_MESSAGE;
    m.u.message.lsn = lsn;
    m.u.message.prefix = DS_INCREMENTAL_PREFIX;
    m.u.message.content = content;
    m.u.message.content_len = (uint32_t)strlen(content);
    return m;
}

/* The low watermark of chunk 1 of run "run" on public.items. */
#define ITEMS_LOW                                                                                  \
    "{\"watermark\":\"low\",\"slot\":\"slot1\",\"id\":\"run\",\"chunk\":1,"                        \
    "\"schema\":\"public\",\"table\":\"items\",\"ts\":1700000000000000}"

/* A tracker of slot1 over public.items, publishing into @p fc. */
static ds_incremental_t *items_tracker(fake_capture_t *fc)
{
    static ds_source_table_t table = {.schema = "public",
                                      .table = "items",
                                      .replident = 'd',
                                      .primary_key = item_pk};
    static ds_source_catalog_t catalog = {.ntables = 1, .tables = &table};
    static ds_changes_options_t options = {.topic_prefix = "shop", .db = "shopdb",
                                           .version = "9.9.9"};
    ds_incremental_hooks_t hooks = {fake_hold, fake_emit, fake_release, fake_full, fc};

    return ds_incremental_new("slot1", &catalog, &options, &hooks);
}

static void test_a_high_waits_while_capture_is_at_its_limits(void)
{
    fake_capture_t fc = {.limit = 3};
    ds_incremental_t *inc = items_tracker(&fc);
    const char *low = ITEMS_LOW;
    char high[2048];
    ds_pgoutput_msg_t m;
    char errstr[512];
    size_t used;

    used = (size_t)snprintf(high, sizeof(high),
                            "{\"watermark\":\"high\",\"slot\":\"slot1\",\"id\":\"run\","
                            "\"schema\":\"public\",\"table\":\"items\",\"relid\":16500,"
                            "\"columns\":[[\"id\",23,-1,true],[\"name\",25,-1,false]],"
                            "\"chunk\":1,\"rows\":[");
    for (int i = 1; i <= 10; i++)
        used += (size_t)snprintf(high + used, sizeof(high) - used, "%s[\"%d\",\"n\\\"%d\"]",
                                 i > 1 ? "," : "", i, i);
    snprintf(high + used, sizeof(high) - used, "]}");

    DS_CHECK(inc != NULL);
    m = watermark(low, 0x1000);
    DS_CHECK(ds_incremental_message(inc, &m, 0, 1700000000000000, errstr, sizeof(errstr)));
    DS_CHECK_INT(ds_incremental_open_windows(inc), 1);
    m = watermark(high, 0x2000);
    DS_CHECK(ds_incremental_message(inc, &m, 77, 1700000000000000, errstr, sizeof(errstr)));
    /* Three read events, then the limit: the window stays open and its hold kept. */
    DS_CHECK_INT(fc.emitted, 3);
    DS_CHECK(ds_incremental_publishing(inc));
    DS_CHECK_INT(fc.releases, 0);
    DS_CHECK_INT(ds_incremental_open_windows(inc), 1);
    /* Nothing acknowledged: resuming hands over nothing. */
    DS_CHECK(ds_incremental_resume(inc, errstr, sizeof(errstr)));
    DS_CHECK_INT(fc.emitted, 3);
    /* Acknowledgements make room; the rows go on where they stopped. */
    while (ds_incremental_publishing(inc)) {
        fc.acked = fc.emitted;
        DS_CHECK(ds_incremental_resume(inc, errstr, sizeof(errstr)));
    }
    DS_CHECK_INT(fc.emitted, 10);
    DS_CHECK_INT(fc.releases, 1);
    DS_CHECK_INT(ds_incremental_open_windows(inc), 0);
    DS_CHECK(strstr(fc.last_value, "\"name\":\"n\\\"10\"") != NULL);
    DS_CHECK(strstr(fc.last_value, "\"op\":\"r\"") != NULL);
    DS_CHECK(ds_incremental_resume(inc, errstr, sizeof(errstr)));
    DS_CHECK_INT(fc.emitted, 10);
    ds_incremental_free(inc);
}

static void test_a_freed_tracker_drops_a_high_half_handed_over(void)
{
    fake_capture_t fc = {.limit = 1};
    ds_incremental_t *inc = items_tracker(&fc);
    const char *low = ITEMS_LOW;
    const char *high = "{\"watermark\":\"high\",\"slot\":\"slot1\",\"id\":\"run\","
                       "\"schema\":\"public\",\"table\":\"items\",\"relid\":16500,"
                       "\"columns\":[[\"id\",23,-1,true]],\"chunk\":1,"
                       "\"rows\":[[\"1\"],[\"2\"]]}";
    ds_pgoutput_msg_t m;
    char errstr[512];

    m = watermark(low, 0x1000);
    DS_CHECK(ds_incremental_message(inc, &m, 0, 1700000000000000, errstr, sizeof(errstr)));
    m = watermark(high, 0x2000);
    DS_CHECK(ds_incremental_message(inc, &m, 77, 1700000000000000, errstr, sizeof(errstr)));
    DS_CHECK(ds_incremental_publishing(inc));
    DS_CHECK_INT(fc.emitted, 1);
    /* A lost session: the hold is the ring's, not released here (valgrind/ASan: no leak). */
    ds_incremental_free(inc);
    DS_CHECK_INT(fc.releases, 0);
}

int main(void)
{
    DS_RUN(test_rows_are_found_among_the_other_members);
    DS_RUN(test_rows_values_decode_as_json_strings);
    DS_RUN(test_malformed_rows_are_refused_as_jansson_refuses_them);
    DS_RUN(test_a_high_waits_while_capture_is_at_its_limits);
    DS_RUN(test_a_freed_tracker_drops_a_high_half_handed_over);
    return ds_test_report();
}
