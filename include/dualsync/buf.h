/*
 * buf.h: a growable byte buffer and the JSON writing primitives built on it.
 *
 * The envelope of every captured row is written with these rather than with jansson:
 * building a jansson tree per row and dumping it costs several allocations per column,
 * and capture's per-row budget is a few microseconds.
 */
#ifndef DUALSYNC_BUF_H
#define DUALSYNC_BUF_H

#include "dualsync/common.h"

typedef struct ds_buf {
    char *data; /* owned; always NUL-terminated when cap > 0 */
    size_t len; /* bytes used, not counting the terminator */
    size_t cap; /* bytes allocated */
} ds_buf_t;

#define DS_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/** @brief Empties the buffer, keeping its memory. */
static inline void ds_buf_reset(ds_buf_t *buf)
{
    buf->len = 0;
    if (buf->cap)
        buf->data[0] = '\0';
}

/** @brief Releases the memory; the buffer may be reused afterwards. */
void ds_buf_free(ds_buf_t *buf);

/* The append functions abort the process on out-of-memory: there is no sane way to go on
 * without the row, and the slot has not moved past it, so a restart loses nothing. */
void ds_buf_append(ds_buf_t *buf, const void *data, size_t len);
void ds_buf_append_str(ds_buf_t *buf, const char *str);
void ds_buf_append_char(ds_buf_t *buf, char c);
void ds_buf_appendf(ds_buf_t *buf, const char *fmt, ...) DS_PRINTF(2, 3);

/** @brief Grows the buffer by @p n bytes, which the caller writes: where they start. For a
 *         value whose size is known, one call instead of one per piece. */
char *ds_buf_extend(ds_buf_t *buf, size_t n);

/** @brief Appends @p len bytes of @p str as a quoted, escaped JSON string (RFC 8259). */
void ds_buf_append_json_string(ds_buf_t *buf, const char *str, size_t len);

/** @brief Appends @p name as a quoted SQL identifier: double-quoted, inner quotes doubled. */
void ds_buf_append_ident(ds_buf_t *buf, const char *name);

/** @brief Appends a signed integer in decimal. */
void ds_buf_append_int(ds_buf_t *buf, int64_t value);

/** @brief Appends @p len bytes of @p data encoded as standard base64 with padding, unquoted. */
void ds_buf_append_base64(ds_buf_t *buf, const uint8_t *data, size_t len);

#endif
