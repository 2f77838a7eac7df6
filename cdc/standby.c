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
    PGconn *conn;
};

ds_standby_t *ds_standby_new(const char *conninfo, const char *slot)
{
    ds_standby_t *s = calloc(1, sizeof(*s));

    if (!s || !(s->conninfo = strdup(conninfo)) || !(s->slot = strdup(slot))) {
        ds_standby_free(s);
        return NULL;
    }
    return s;
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
    r = PQexecParams(s->conn,
                     "SELECT s.active_pid, coalesce(nullif(a.application_name, ''), '?'), "
                     "       coalesce(host(a.client_addr), 'local socket') "
                     "  FROM pg_catalog.pg_replication_slots s "
                     "  LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = s.active_pid "
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
    }
    PQclear(r);
    return state;
}
