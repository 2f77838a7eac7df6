/*
 * typemap_internal.h: what the type mapping's files share (cdc/typemap.c dispatches and
 * maps strings, integers, booleans, bytea and arrays; cdc/typemap_temporal.c dates, times
 * and intervals; cdc/typemap_number.c floats, numeric and money; cdc/typemap_classic.c the
 * classic values). Not for use outside them.
 */
#ifndef DUALSYNC_TYPEMAP_INTERNAL_H
#define DUALSYNC_TYPEMAP_INTERNAL_H

#include "dualsync/typemap.h"

/* Reports "invalid <type> value "<excerpt>": <why>" into errstr and returns false. */
bool ds_typemap_invalid(uint32_t oid, const char *text, size_t len, const char *why,
                        char *errstr, size_t errstr_size);

static inline bool ds_typemap_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static inline bool ds_typemap_is_word(const char *text, size_t len, const char *word, size_t n)
{
    return len == n && memcmp(text, word, n) == 0;
}

/* Appends text known to need no JSON escaping, in quotes. */
static inline void ds_typemap_append_quoted(ds_buf_t *out, const char *text, size_t len)
{
    ds_buf_append_char(out, '"');
    ds_buf_append(out, text, len);
    ds_buf_append_char(out, '"');
}

/* Integers, booleans and bytea (cdc/typemap.c): the same in the classic values (bytea under
 * DS_BINARY_BYTES, base64). */
bool ds_typemap_integer(ds_buf_t *out, uint32_t oid, const char *text, size_t len, char *errstr,
                        size_t errstr_size);
bool ds_typemap_bool(ds_buf_t *out, const char *text, size_t len, char *errstr, size_t errstr_size);
bool ds_typemap_bytea(ds_buf_t *out, ds_binary_handling_t mode, const char *text, size_t len,
                      char *errstr, size_t errstr_size);

/* The temporal types (cdc/typemap_temporal.c). */
bool ds_typemap_date(ds_buf_t *out, const ds_value_format_t *format, const char *text,
                     size_t len, char *errstr, size_t errstr_size);
bool ds_typemap_time(ds_buf_t *out, int32_t typmod, const ds_value_format_t *format,
                     const char *text, size_t len, char *errstr, size_t errstr_size);
bool ds_typemap_timetz(ds_buf_t *out, const char *text, size_t len, char *errstr,
                       size_t errstr_size);
bool ds_typemap_timestamp(ds_buf_t *out, int32_t typmod, const ds_value_format_t *format,
                          const char *text, size_t len, char *errstr, size_t errstr_size);
bool ds_typemap_timestamptz(ds_buf_t *out, int32_t typmod, const char *text, size_t len,
                            char *errstr, size_t errstr_size);
bool ds_typemap_interval(ds_buf_t *out, const ds_value_format_t *format, const char *text,
                         size_t len, char *errstr, size_t errstr_size);

/* The numbers (cdc/typemap_number.c). */
bool ds_typemap_float(ds_buf_t *out, uint32_t oid, const char *text, size_t len, char *errstr,
                      size_t errstr_size);
bool ds_typemap_numeric(ds_buf_t *out, int32_t typmod, const ds_value_format_t *format,
                        const char *text, size_t len, char *errstr, size_t errstr_size);
bool ds_typemap_money(ds_buf_t *out, const ds_value_format_t *format, const char *text,
                      size_t len, char *errstr, size_t errstr_size);

/*
 * An array literal as a JSON array, each element mapped as @p elem_oid by
 * ds_typemap_append_value() under @p format (NULL: the classic values, which
 * typemap_classic.c passes).
 */
bool ds_typemap_append_array(ds_buf_t *out, uint32_t array_oid, uint32_t elem_oid, int32_t typmod,
                             const ds_value_format_t *format, const char *text, size_t len,
                             char *errstr, size_t errstr_size);

#endif
