/*
 * pgutil.h: small libpq helpers both sides use.
 */
#ifndef DUALSYNC_PGUTIL_H
#define DUALSYNC_PGUTIL_H

#include <libpq-fe.h>

/**
 * @brief libpq's last error for @p conn as one line (trailing newlines and spaces cut), in
 *        a per-thread buffer valid until the next call on the same thread.
 */
const char *ds_pg_error(const PGconn *conn);

#endif
