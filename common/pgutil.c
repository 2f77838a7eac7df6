/*
 * pgutil.c: small libpq helpers both sides use.
 */
#include <stdio.h>
#include <string.h>

#include "dualsync/pgutil.h"

const char *ds_pg_error(const PGconn *conn)
{
    static __thread char msg[1024];
    size_t len;

    snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
    len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
        msg[--len] = '\0';
    return msg;
}
