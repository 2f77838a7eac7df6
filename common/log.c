/*
 * log.c: leveled logging to stderr, one line per call, with a UTC timestamp: plain text for
 * a person, or one JSON object per line for a log shipper (--log-format json).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dualsync/buf.h"
#include "dualsync/log.h"

ds_log_level_t ds_log_min_level = DS_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warning", "error"};

static bool log_json;                        /* --log-format json */
static char process_name[64] = "dualsync";   /* "capture", "apply", ...: who wrote the line */

bool ds_log_set_level(const char *name)
{
    for (size_t i = 0; i < DS_ARRAY_LEN(level_names); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            ds_log_min_level = (ds_log_level_t)i;
            return true;
        }
    }
    return false;
}

bool ds_log_set_format(const char *name)
{
    if (strcmp(name, "text") == 0)
        log_json = false;
    else if (strcmp(name, "json") == 0)
        log_json = true;
    else
        return false;
    return true;
}

void ds_log_set_process(const char *name)
{
    snprintf(process_name, sizeof(process_name), "%s", name);
}

void ds_log_json_line(ds_buf_t *buf, const char *ts, ds_log_level_t level, const char *process,
                      const char *message)
{
    ds_buf_append_str(buf, "{\"ts\":");
    ds_buf_append_json_string(buf, ts, strlen(ts));
    ds_buf_append_str(buf, ",\"level\":");
    ds_buf_append_json_string(buf, level_names[level], strlen(level_names[level]));
    ds_buf_append_str(buf, ",\"process\":");
    ds_buf_append_json_string(buf, process, strlen(process));
    ds_buf_append_str(buf, ",\"message\":");
    ds_buf_append_json_string(buf, message, strlen(message));
    ds_buf_append_str(buf, "}\n");
}

void ds_log_write(ds_log_level_t level, const char *fmt, ...)
{
    char line[4096];
    char stamp[32];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = (int)strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, sizeof(stamp) - (size_t)n, ".%03ldZ", ts.tv_nsec / 1000000);

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;

    /* One write per line keeps lines whole when several threads log. */
    if (log_json) {
        ds_buf_t buf = DS_BUF_INIT;

        ds_log_json_line(&buf, stamp, level, process_name, line);
        if (buf.data)
            fputs(buf.data, stderr);
        ds_buf_free(&buf);
        return;
    }
    fprintf(stderr, "%s dualsync %s: %s\n", stamp, level_names[level], line);
}
