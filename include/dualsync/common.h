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

/** @brief Fills errstr like snprintf and returns false, so callers can `return ds_fail(...)`. */
bool ds_fail(char *errstr, size_t errstr_size, const char *fmt, ...) DS_PRINTF(3, 4);

#endif
