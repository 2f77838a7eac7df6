/*
 * log.c: leveled logging to stderr, one line per call, with a UTC timestamp.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dualsync/log.h"

ds_log_level_t ds_log_min_level = DS_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warning", "error"};

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
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;

    /* One fprintf per line keeps lines whole when several threads log. */
    fprintf(stderr, "%s.%03ldZ dualsync %s: %s\n", stamp, ts.tv_nsec / 1000000,
            level_names[level], line);
}
