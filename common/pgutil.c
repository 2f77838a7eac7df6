/*
 * pgutil.c: small libpq helpers both sides use.
 */
#include <stdio.h>
#include <string.h>

#include "dualsync/buf.h"
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

/* libpq's messages about a malformed connection string quote pieces of it: the whole URI,
 * a percent-encoded token, the word after an unquoted value. Any of them may hold the
 * password, so every quoted span longer than one character is replaced by <hidden>. */
static void hide_quoted(const char *msg, char *out, size_t out_size)
{
    size_t used = 0;

    for (const char *p = msg; *p && used + 1 < out_size;) {
        const char *close = *p == '"' ? strchr(p + 1, '"') : NULL;

        if (close && close - p > 2) {
            used += (size_t)snprintf(out + used, out_size - used, "<hidden>");
            p = close + 1;
            continue;
        }
        /* A short span ("=", "x") is copied whole, so its closing quote opens nothing. */
        for (const char *end = close ? close + 1 : p + 1; p < end && used + 1 < out_size;)
            out[used++] = *p++;
    }
    if (used >= out_size)
        used = out_size - 1;
    while (used > 0 && (out[used - 1] == '\n' || out[used - 1] == ' '))
        used--;
    out[used] = '\0';
}

bool ds_pg_conninfo_check(const char *conninfo, const char *what, char *errstr,
                          size_t errstr_size)
{
    char *parse_err = NULL;
    PQconninfoOption *parsed = PQconninfoParse(conninfo, &parse_err);
    char shown[512];

    if (parsed) {
        PQconninfoFree(parsed);
        return true;
    }
    hide_quoted(parse_err ? parse_err : "out of memory", shown, sizeof(shown));
    PQfreemem(parse_err);
    return ds_fail(errstr, errstr_size, "%s is not a valid connection string: %s", what, shown);
}

char *ds_pg_text_array(const char *const *items, int n)
{
    ds_buf_t buf = DS_BUF_INIT;

    ds_buf_append_char(&buf, '{');
    for (int i = 0; i < n; i++) {
        ds_buf_append_str(&buf, i ? ",\"" : "\"");
        for (const char *p = items[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                ds_buf_append_char(&buf, '\\');
            ds_buf_append_char(&buf, *p);
        }
        ds_buf_append_char(&buf, '"');
    }
    ds_buf_append_char(&buf, '}');
    return buf.data;
}
