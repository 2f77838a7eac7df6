/*
 * slot_monitor.c: polls the replication slot's retained WAL and confirmed-flush lag for the
 * metrics, on an ordinary connection of its own, without ever blocking capture's loop.
 *
 * The connection is opened with PQconnectStartParams and driven by PQconnectPoll, the query
 * sent with PQsendQueryParams and read with PQconsumeInput, all from an io watcher on the
 * connection's socket: a slow or hung source delays only the next reading of these gauges,
 * never streaming. A query still running at the next tick is left alone (no pile-up); a
 * broken connection is dropped and opened again at a later tick.
 */
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "dualsync/log.h"
#include "dualsync/slot_monitor.h"

typedef enum state { IDLE, CONNECTING, READY, QUERYING } state_t;

struct ds_slot_monitor {
    struct ev_loop *loop;
    char *conninfo;
    char *slot;
    ds_series_t *retained;
    ds_series_t *lag;
    PGconn *conn;
    state_t state;
    ev_timer timer;
    ev_io io;
    bool io_active;
};

static const char query[] =
    "SELECT (pg_current_wal_lsn() - restart_lsn)::float8, "
    "(pg_current_wal_lsn() - confirmed_flush_lsn)::float8 "
    "FROM pg_catalog.pg_replication_slots WHERE slot_name = $1";

static void drop(ds_slot_monitor_t *m, const char *why)
{
    if (m->io_active) {
        ev_io_stop(m->loop, &m->io);
        m->io_active = false;
    }
    if (why && m->conn)
        ds_debug("slot metrics: %s", why);
    PQfinish(m->conn);
    m->conn = NULL;
    m->state = IDLE;
}

static void watch(ds_slot_monitor_t *m, int events)
{
    if (m->io_active)
        ev_io_stop(m->loop, &m->io);
    ev_io_set(&m->io, PQsocket(m->conn), events);
    ev_io_start(m->loop, &m->io);
    m->io_active = true;
}

static void send_query(ds_slot_monitor_t *m)
{
    const char *params[1] = {m->slot};

    if (!PQsendQueryParams(m->conn, query, 1, NULL, params, NULL, NULL, 0)) {
        drop(m, PQerrorMessage(m->conn));
        return;
    }
    m->state = QUERYING;
    /* Flushed by the watcher when the socket is writable; read when results come. */
    watch(m, PQflush(m->conn) == 1 ? EV_READ | EV_WRITE : EV_READ);
}

static void read_results(ds_slot_monitor_t *m)
{
    PGresult *res;

    while ((res = PQgetResult(m->conn))) {
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
            if (!PQgetisnull(res, 0, 0))
                ds_series_set(m->retained, strtod(PQgetvalue(res, 0, 0), NULL));
            if (!PQgetisnull(res, 0, 1))
                ds_series_set(m->lag, strtod(PQgetvalue(res, 0, 1), NULL));
        } else if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            ds_debug("slot metrics: %s", PQresultErrorMessage(res));
        }
        PQclear(res);
    }
    m->state = READY;
    if (m->io_active) {
        ev_io_stop(m->loop, &m->io);
        m->io_active = false;
    }
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    ds_slot_monitor_t *m = w->data;

    if (m->state == CONNECTING) {
        switch (PQconnectPoll(m->conn)) {
        case PGRES_POLLING_READING:
            watch(m, EV_READ);
            return;
        case PGRES_POLLING_WRITING:
            watch(m, EV_WRITE);
            return;
        case PGRES_POLLING_OK:
            if (PQsetnonblocking(m->conn, 1) != 0) {
                drop(m, PQerrorMessage(m->conn));
                return;
            }
            send_query(m);
            return;
        default:
            drop(m, PQerrorMessage(m->conn));
            return;
        }
    }
    if (m->state != QUERYING)
        return;
    if ((revents & EV_WRITE) && PQflush(m->conn) == 0)
        watch(m, EV_READ);
    if (revents & EV_READ) {
        if (!PQconsumeInput(m->conn)) {
            drop(m, PQerrorMessage(m->conn));
            return;
        }
        if (!PQisBusy(m->conn))
            read_results(m);
    }
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    ds_slot_monitor_t *m = w->data;

    switch (m->state) {
    case IDLE: {
        static const char *const keywords[] = {"dbname", "fallback_application_name", NULL};
        const char *values[] = {m->conninfo, "dualsync-capture-metrics", NULL};

        m->conn = PQconnectStartParams(keywords, values, 1);
        if (!m->conn || PQstatus(m->conn) == CONNECTION_BAD) {
            drop(m, m->conn ? PQerrorMessage(m->conn) : "out of memory");
            return;
        }
        m->state = CONNECTING;
        watch(m, EV_WRITE);
        return;
    }
    case READY:
        if (PQstatus(m->conn) != CONNECTION_OK) {
            drop(m, PQerrorMessage(m->conn));
            return;
        }
        send_query(m);
        return;
    default:
        /* Still connecting or querying: the source is slow; try at the next tick. */
        return;
    }
}

ds_slot_monitor_t *ds_slot_monitor_new(struct ev_loop *loop, const char *conninfo,
                                       const char *slot, ds_series_t *retained, ds_series_t *lag,
                                       double interval_s)
{
    ds_slot_monitor_t *m = calloc(1, sizeof(*m));

    if (!m)
        return NULL;
    m->loop = loop;
    m->conninfo = strdup(conninfo);
    m->slot = strdup(slot);
    if (!m->conninfo || !m->slot) {
        ds_slot_monitor_free(m);
        return NULL;
    }
    m->retained = retained;
    m->lag = lag;
    ev_init(&m->io, on_io);
    m->io.data = m;
    ev_timer_init(&m->timer, on_timer, 0.5, interval_s);
    m->timer.data = m;
    ev_timer_start(loop, &m->timer);
    return m;
}

void ds_slot_monitor_free(ds_slot_monitor_t *m)
{
    if (!m)
        return;
    if (m->loop)
        ev_timer_stop(m->loop, &m->timer);
    drop(m, NULL);
    free(m->conninfo);
    free(m->slot);
    free(m);
}
