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

void ds_pg_result_error(const PGresult *r, const PGconn *conn, char *sqlstate, char *message,
                        size_t message_size)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : NULL;

    snprintf(sqlstate, 6, "%s", state ? state : "");
    if (primary)
        snprintf(message, message_size, "SQLSTATE %s: %s%s%s%s", state ? state : "?????", primary,
                 detail ? " (" : "", detail ? detail : "", detail ? ")" : "");
    else
        snprintf(message, message_size, "%s", ds_pg_error(conn));
}
