/*
 * applier_pipeline.c: statements pipelined on one target database's nonblocking connection
 * (libpq pipeline mode), their results read while more are sent, each matched to the op
 * that sent it.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "applier_internal.h"
#include "dualsync/log.h"
#include "dualsync/pgutil.h"

/* ---------------------------------------------------------------------------------------------
 * The pipeline
 * ------------------------------------------------------------------------------------------- */


bool applier_pipeline_begin(pipeline_t *p, ds_applier_t *a)
{
    memset(p, 0, sizeof(*p));
    p->a = a;
    p->error_op = -1;
    a->nops = 0;
    if (applier_lost(a) || !PQenterPipelineMode(a->conn) || PQsetnonblocking(a->conn, 1) != 0) {
        p->broken = true;
        snprintf(p->error, sizeof(p->error), "%s", ds_pg_error(a->conn));
        return false;
    }
    return true;
}

static void pl_handle(pipeline_t *p, PGresult *r)
{
    ds_applier_t *a = p->a;
    const op_t *op = p->done < a->nops ? &a->ops[p->done] : NULL;
    ExecStatusType status = PQresultStatus(r);

    if (!op)
        return;
    if (status == PGRES_FATAL_ERROR) {
        if (p->error_op < 0) {
            p->error_op = p->done;
            ds_pg_result_error(r, a->conn, p->sqlstate, p->error, sizeof(p->error));
        }
        return;
    }
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK)
        return; /* PGRES_PIPELINE_ABORTED: skipped after the error */
    switch (op->kind) {
    case OP_ORIGIN_SETUP:
        a->origin_held = true;
        break;
    case OP_ORIGIN_RESET:
        a->origin_held = false;
        break;
    case OP_WRITE:
        a->work[op->work].applied = applier_answer_applied(r);
        break;
    case OP_BATCH_WRITE:
        /* The rows it did not apply (a required lookup found nothing), by ord. */
        for (int i = 0; i < PQntuples(r); i++) {
            long ord = strtol(PQgetvalue(r, i, 0), NULL, 10);

            if (ord >= 0 && ord < a->nwork)
                a->work[ord].applied = false;
        }
        break;
    default:
        break;
    }
}

/* Reads every result that is complete, without blocking. */
static void pl_read(pipeline_t *p)
{
    PGconn *conn = p->a->conn;

    while (!p->synced && !p->broken) {
        PGresult *r;

        if (PQisBusy(conn))
            return;
        r = PQgetResult(conn);
        if (!r) {
            /* NULL ends one statement's results; with nothing read yet, nothing is ready. */
            if (!p->has_result)
                return;
            p->done++;
            p->has_result = false;
            continue;
        }
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            p->synced = true;
        } else {
            pl_handle(p, r);
            p->has_result = true;
        }
        PQclear(r);
        if (applier_lost(p->a))
            p->broken = true;
    }
}

/*
 * Sends what libpq buffered and reads what arrived. With @p wait, blocks until the sync
 * point's result is read (or the connection fails).
 */
static void pl_pump(pipeline_t *p, bool wait)
{
    PGconn *conn = p->a->conn;

    while (!p->broken) {
        int flushed = PQflush(conn);
        struct pollfd pfd;

        if (flushed < 0 || !PQconsumeInput(conn)) {
            p->broken = true;
            break;
        }
        pl_read(p);
        if (p->synced || p->broken || !wait)
            break;
        pfd.fd = PQsocket(conn);
        pfd.events = POLLIN | (flushed ? POLLOUT : 0);
        pfd.revents = 0;
        if (poll(&pfd, 1, 1000) < 0 && errno != EINTR) {
            p->broken = true;
            break;
        }
    }
    if (p->broken && !p->error[0])
        snprintf(p->error, sizeof(p->error), "%s", ds_pg_error(conn));
}

static bool pl_push(pipeline_t *p, op_kind_t kind, int work)
{
    ds_applier_t *a = p->a;

    if (a->nops == a->ops_cap) {
        int cap = a->ops_cap ? a->ops_cap * 2 : 256;
        op_t *ops = realloc(a->ops, (size_t)cap * sizeof(*ops));

        if (!ops)
            return false;
        a->ops = ops;
        a->ops_cap = cap;
    }
    a->ops[a->nops].kind = kind;
    a->ops[a->nops].work = work;
    a->nops++;
    return true;
}

/* Queues one statement (prepared when @p prepared); false once the pipeline is broken. */
bool applier_pipeline_send(pipeline_t *p, op_kind_t kind, int work, const char *stmt, bool prepared,
                           int nparams, const char *const *params)
{
    PGconn *conn = p->a->conn;
    int sent;

    if (p->broken)
        return false;
    if (!pl_push(p, kind, work)) {
        p->broken = true;
        snprintf(p->error, sizeof(p->error), "out of memory");
        return false;
    }
    sent = prepared ? PQsendQueryPrepared(conn, stmt, nparams, params, NULL, NULL, 0)
                    : PQsendQueryParams(conn, stmt, nparams, NULL, params, NULL, NULL, 0);
    if (!sent) {
        p->a->nops--;
        p->broken = true;
        snprintf(p->error, sizeof(p->error), "%s", ds_pg_error(conn));
        return false;
    }
    /* Read as we go, so neither side's buffers fill up (see the top of the file). */
    if (p->a->nops % 64 == 0)
        pl_pump(p, false);
    return !p->broken;
}

/* Sends what libpq still holds and reads what arrived, without blocking. */
void applier_pipeline_pump(pipeline_t *p)
{
    pl_pump(p, false);
}

/* Ends what the pipeline sends: the sync point, flushed as far as the socket takes it. */
void applier_pipeline_sync(pipeline_t *p)
{
    PGconn *conn = p->a->conn;

    if (!p->broken && !PQpipelineSync(conn)) {
        p->broken = true;
        snprintf(p->error, sizeof(p->error), "%s", ds_pg_error(conn));
    }
    pl_pump(p, false);
}

/* Reads every result up to the sync point, leaves pipeline mode. */
void applier_pipeline_wait(pipeline_t *p)
{
    PGconn *conn = p->a->conn;

    pl_pump(p, true);
    if (!p->broken) {
        PQexitPipelineMode(conn);
        PQsetnonblocking(conn, 0);
    }
}

/* Ends the pipeline: sync, read every result, leave pipeline mode. */
void applier_pipeline_finish(pipeline_t *p)
{
    applier_pipeline_sync(p);
    applier_pipeline_wait(p);
}
