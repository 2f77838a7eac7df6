/*
 * pgutil.h: small libpq helpers both sides use.
 */
#ifndef DUALSYNC_PGUTIL_H
#define DUALSYNC_PGUTIL_H

#include <libpq-fe.h>

#include "dualsync/common.h"

/**
 * @brief libpq's last error for @p conn as one line (trailing newlines and spaces cut), in
 *        a per-thread buffer valid until the next call on the same thread.
 */
const char *ds_pg_error(const PGconn *conn);

/**
 * @brief Describes a failed result: @p sqlstate (6 bytes) gets its SQLSTATE ("" when none),
 *        @p message "SQLSTATE 23505: primary message (detail)", or the connection's error
 *        when the result carries none (a lost connection, out of memory).
 */
void ds_pg_result_error(const PGresult *r, const PGconn *conn, char *sqlstate, char *message,
                        size_t message_size);

/**
 * @brief Whether @p conninfo parses as a libpq connection string; if not, errstr says why,
 *        naming it as @p what ("source.conninfo"), with every quoted piece of it hidden (it
 *        may hold the password).
 */
bool ds_pg_conninfo_check(const char *conninfo, const char *what, char *errstr,
                          size_t errstr_size);

/**
 * @brief A text[] literal of @p n strings, for a parameter such as "= ANY($1::text[])".
 *        Caller frees; NULL when out of memory.
 */
char *ds_pg_text_array(const char *const *items, int n);

#endif
