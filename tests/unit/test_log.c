/*
 * test_log.c: --log-format json: each log line is one JSON object with ts, level, process and
 * message, whatever the message holds.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "dualsync/log.h"
#include "ds_test.h"

/* The line for @p message, parsed; NULL (and a failed check) when it is not one JSON object
 * on one line. */
static json_t *line_for(ds_log_level_t level, const char *process, const char *message)
{
    ds_buf_t buf = DS_BUF_INIT;
    json_error_t err;
    json_t *doc;

    ds_log_json_line(&buf, "2026-01-31T12:00:00.123Z", level, process, message);
    DS_CHECK(buf.len > 0 && buf.data[buf.len - 1] == '\n');
    DS_CHECK(memchr(buf.data, '\n', buf.len - 1) == NULL); /* one line */
    doc = json_loads(buf.data, 0, &err);
    if (!doc)
        fprintf(stderr, "not JSON (%s): %s", err.text, buf.data);
    DS_CHECK(json_is_object(doc));
    ds_buf_free(&buf);
    return doc;
}

static void test_fields_are_ts_level_process_message(void)
{
    json_t *doc = line_for(DS_LOG_WARNING, "capture", "slot \"dualsync\" created");

    if (!doc)
        return;
    DS_CHECK_INT(json_object_size(doc), 4);
    DS_CHECK_STR(json_string_value(json_object_get(doc, "ts")), "2026-01-31T12:00:00.123Z");
    DS_CHECK_STR(json_string_value(json_object_get(doc, "level")), "warning");
    DS_CHECK_STR(json_string_value(json_object_get(doc, "process")), "capture");
    DS_CHECK_STR(json_string_value(json_object_get(doc, "message")), "slot \"dualsync\" created");
    json_decref(doc);
}

static void test_quotes_backslashes_and_newlines_are_escaped(void)
{
    const char *message = "a \"quoted\" C:\\path\nsecond line\ttab \x01 end";
    json_t *doc = line_for(DS_LOG_ERROR, "apply", message);

    if (!doc)
        return;
    DS_CHECK_STR(json_string_value(json_object_get(doc, "message")), message);
    DS_CHECK_STR(json_string_value(json_object_get(doc, "level")), "error");
    json_decref(doc);
}

static void test_utf8_passes_and_invalid_bytes_are_replaced(void)
{
    json_t *doc = line_for(DS_LOG_INFO, "apply", "Émile \xff ok");

    if (!doc)
        return;
    DS_CHECK_STR(json_string_value(json_object_get(doc, "message")), "Émile \xef\xbf\xbd ok");
    json_decref(doc);
}

static void test_format_names(void)
{
    DS_CHECK(ds_log_set_format("json"));
    DS_CHECK(ds_log_set_format("text"));
    DS_CHECK(!ds_log_set_format("JSON"));
    DS_CHECK(!ds_log_set_format("logfmt"));
}

int main(void)
{
    DS_RUN(test_fields_are_ts_level_process_message);
    DS_RUN(test_quotes_backslashes_and_newlines_are_escaped);
    DS_RUN(test_utf8_passes_and_invalid_bytes_are_replaced);
    DS_RUN(test_format_names);
    return ds_test_report();
}
