/*
 * standby.c: asks the source which session holds capture's replication slot (standby.h).
 *
 * A blocking query once a second is fine here: a standby has nothing else to do but serve its
 * metrics, and the connection's connect_timeout (from the conninfo) bounds a hung source.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "dualsync/common.h"
#include "dualsync/pgutil.h"
#include "dualsync/standby.h"

struct ds_standby {
    char *conninfo;
    char *slot;
    int takeover_ms;
    PGconn *conn;
};

ds_standby_t *ds_standby_new(const char *conninfo, const char *slot, int takeover_ms)
{
    ds_standby_t *s = calloc(1, sizeof(*s));

    if (!s || !(s->conninfo = strdup(conninfo)) || !(s->slot = strdup(slot))) {
        ds_standby_free(s);
        return NULL;
    }
    s->takeover_ms = takeover_ms;
    return s;
}

/* Ends the session @p pid holding the slot (same role, or pg_signal_backend). */
static ds_slot_state_t end_holder(ds_standby_t *s, const char *pid, const char *silent_ms,
                                  char *errstr, size_t errstr_size)
{
    const char *params[1] = {pid};
    PGresult *r = PQexecParams(s->conn, "SELECT pg_catalog.pg_terminate_backend($1::int)", 1,
                               NULL, params, NULL, NULL, 0);
    ds_slot_state_t state = DS_SLOT_ENDED;

    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ds_fail(errstr, errstr_size,
                "cannot end the silent session %s holding replication slot \"%s\": %s (the "
                "role needs to be the holder's, or a member of pg_signal_backend); the server "
                "ends it after its wal_sender_timeout",
                pid, s->slot, ds_pg_error(s->conn));
        state = DS_SLOT_UNKNOWN;
    } else {
        ds_fail(errstr, errstr_size, "sent no status update for %s ms", silent_ms);
    }
    PQclear(r);
    return state;
}

void ds_standby_free(ds_standby_t *s)
{
    if (!s)
        return;
    PQfinish(s->conn);
    free(s->conninfo);
    free(s->slot);
    free(s);
}

ds_slot_state_t ds_standby_check(ds_standby_t *s, char *holder, size_t holder_size, char *errstr,
                                 size_t errstr_size)
{
    const char *params[1] = {s->slot};
    ds_slot_state_t state;
    PGresult *r;

    if (s->conn && PQstatus(s->conn) != CONNECTION_OK) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
    if (!s->conn) {
        s->conn = PQconnectdb(s->conninfo);
        if (PQstatus(s->conn) != CONNECTION_OK) {
            ds_fail(errstr, errstr_size, "cannot connect to the source database: %s",
                    ds_pg_error(s->conn));
            PQfinish(s->conn);
            s->conn = NULL;
            return DS_SLOT_UNKNOWN;
        }
    }
    /* Silence: since the holder's last status update, or since its session started when it
     * sent none yet. */
    r = PQexecParams(s->conn,
                     "SELECT s.active_pid, coalesce(nullif(a.application_name, ''), '?'), "
                     "       coalesce(host(a.client_addr), 'local socket'), "
                     "       (extract(epoch FROM now() - coalesce(w.reply_time, a.backend_start,"
                     "        now())) * 1000)::bigint "
                     "  FROM pg_catalog.pg_replication_slots s "
                     "  LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = s.active_pid "
                     "  LEFT JOIN pg_catalog.pg_stat_replication w ON w.pid = s.active_pid "
                     " WHERE s.slot_name = $1 AND s.active",
                     1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ds_fail(errstr, errstr_size, "cannot look up replication slot \"%s\": %s", s->slot,
                ds_pg_error(s->conn));
        state = DS_SLOT_UNKNOWN;
    } else if (PQntuples(r) == 0) {
        state = DS_SLOT_FREE;
    } else {
        snprintf(holder, holder_size, "process %s (%s, from %s)", PQgetvalue(r, 0, 0),
                 PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
        state = DS_SLOT_HELD;
        if (strtoll(PQgetvalue(r, 0, 3), NULL, 10) >= s->takeover_ms)
            state = end_holder(s, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 3), errstr, errstr_size);
    }
    PQclear(r);
    return state;
}
