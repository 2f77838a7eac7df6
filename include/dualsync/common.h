/*
 * common.h: small definitions every dualsync module uses.
 */
#ifndef DUALSYNC_COMMON_H
#define DUALSYNC_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Fallible functions return bool; ignoring the answer is a bug. */
#define DS_MUST_CHECK __attribute__((warn_unused_result))
#define DS_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

#define DS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A WAL position (PostgreSQL's XLogRecPtr). */
typedef uint64_t ds_lsn_t;
#define DS_INVALID_LSN ((ds_lsn_t)0)

/* "%X/%X" needs at most 17 bytes plus the terminator. */
#define DS_LSN_STRLEN 20

/** @brief Formats @p lsn as PostgreSQL does ("16/B374D848") into @p out. */
const char *ds_lsn_format(ds_lsn_t lsn, char out[DS_LSN_STRLEN]);

/** @brief Parses "X/X"; false when @p text is not an LSN. */
bool ds_lsn_parse(const char *text, ds_lsn_t *lsn) DS_MUST_CHECK;

/* Microseconds between the Unix epoch and PostgreSQL's (2000-01-01). */
#define DS_PG_EPOCH_OFFSET_US INT64_C(946684800000000)

/** @brief Wall-clock time in microseconds since the Unix epoch. */
int64_t ds_now_us(void);

/**
 * @brief Levenshtein distance between @p a and @p b, or limit + 1 once it is certainly above
 *        @p limit (also for strings over 127 bytes). Used for "did you mean" suggestions.
 */
size_t ds_edit_distance(const char *a, const char *b, size_t limit);

/** @brief The value of hex digit @p c (either case), or -1 when it is not one. */
static inline int ds_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/** @brief The value of the four hex digits at @p p (those of a JSON string's backslash-u
 *        escape), or -1 when the text before @p end does not start with four. */
static inline long ds_hex4_value(const char *p, const char *end)
{
    long v = 0;

    if (end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        int d = ds_hex_value(p[i]);

        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/** @brief Fills errstr like snprintf and returns false, so callers can `return ds_fail(...)`. */
bool ds_fail(char *errstr, size_t errstr_size, const char *fmt, ...) DS_PRINTF(3, 4);

#endif
