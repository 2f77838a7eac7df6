/*
 * log.h: leveled logging to stderr, as text (default) or one JSON object per line:
 *   {"ts":"2026-01-31T12:00:00.123Z","level":"info","process":"capture","message":"..."}
 *
 * The level is checked before the arguments are formatted, so a disabled debug line costs
 * one comparison. Never pass a password or a conninfo string to these functions.
 */
#ifndef DUALSYNC_LOG_H
#define DUALSYNC_LOG_H

#include "dualsync/buf.h"
#include "dualsync/common.h"

typedef enum ds_log_level {
    DS_LOG_DEBUG = 0,
    DS_LOG_INFO = 1,
    DS_LOG_WARNING = 2,
    DS_LOG_ERROR = 3,
} ds_log_level_t;

extern ds_log_level_t ds_log_min_level;

/** @brief Sets the minimum level from "debug", "info", "warning" or "error". */
bool ds_log_set_level(const char *name) DS_MUST_CHECK;

/** @brief Sets the line format from "text" (the default) or "json". */
bool ds_log_set_format(const char *name) DS_MUST_CHECK;

/** @brief Names the process in JSON lines ("capture", "apply", ...; copied, at most 63 bytes). */
void ds_log_set_process(const char *name);

/** @brief Appends one JSON log line (with its newline) to @p buf: every field escaped as a
 *         JSON string, so a message with quotes, backslashes or control characters stays one
 *         line of valid JSON. */
void ds_log_json_line(ds_buf_t *buf, const char *ts, ds_log_level_t level, const char *process,
                      const char *message);

void ds_log_write(ds_log_level_t level, const char *fmt, ...) DS_PRINTF(2, 3);

#define ds_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) >= ds_log_min_level)                                                           \
            ds_log_write((level), __VA_ARGS__);                                                    \
    } while (0)

#define ds_debug(...) ds_log(DS_LOG_DEBUG, __VA_ARGS__)
#define ds_info(...) ds_log(DS_LOG_INFO, __VA_ARGS__)
#define ds_warning(...) ds_log(DS_LOG_WARNING, __VA_ARGS__)
#define ds_error(...) ds_log(DS_LOG_ERROR, __VA_ARGS__)

#endif
