/*
 * applier.c: one target database: the connection, the replication origin, the bookkeeping
 * schema and the prepared statements, offsets claims. Batches are written by
 * applier_batch.c and applier_slow.c, through applier_pipeline.c; dualsync.pending is retried
 * by applier_pending.c (applier_internal.h).
 *
 * Why two round trips in the fast path rather than one: a write whose required lookup found
 * no parent answers applied = false without failing, and its change must be parked in
 * dualsync.pending in the same transaction as the offsets that move past it. The answers are
 * known only once the writes' results are read, so COMMIT waits for them.
 *
 * Why pipeline mode with a nonblocking socket: a batch is thousands of statements. Sent one
 * round trip at a time they would cost a network latency each; sent blindly in blocking mode,
 * the client could block writing while the server blocks writing results nobody reads. So
 * results are read while statements are still being sent.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "applier_internal.h"
#include "dualsync/applier.h"
#include "dualsync/batchstmt.h"
#include "dualsync/buf.h"
#include "dualsync/log.h"
#include "dualsync/pgutil.h"
#include "dualsync/strset.h"

/* The statements dualsync itself runs, prepared on every connection. */
static const struct {
    const char *name;
    const char *sql;
    int nparams;
} own_statements[] = {
    {"ds_origin_setup", "SELECT pg_catalog.pg_replication_origin_session_setup($1)", 1},
    {"ds_origin_reset", "SELECT pg_catalog.pg_replication_origin_session_reset()", 0},
    {"ds_offsets_get",
     "SELECT topic, partition, next_offset FROM dualsync.offsets WHERE group_id = $1", 1},
    /* The fence (see "The fence" in applier_batch.c). A partition never seen gets its row here,
     * with next_offset -1: nothing stored (DS_OFFSET_NONE; verify and status read a negative offset
     * as nothing applied yet). */
    {"ds_offsets_claim",
     "INSERT INTO dualsync.offsets AS o (group_id, topic, partition, next_offset, generation,"
     " owner) VALUES ($1, $2, $3::int, -1, 1, $4)"
     " ON CONFLICT (group_id, topic, partition) DO UPDATE"
     " SET generation = o.generation + 1, owner = EXCLUDED.owner, updated_at = now()"
     " RETURNING next_offset, generation, coalesce(source_commit_lsn, '0/0')::text,"
     " coalesce(source_lsn, '0/0')::text",
     4},
    /* Fails (division_by_zero, SQLSTATE_FENCED) when the row is not this claim's any more. */
    /* $6, $7: the newest source position applied in the partition, NULL when the batch
     * carries none (apply.c, "Stale copies"). */
    {"ds_offsets_put",
     "WITH moved AS (UPDATE dualsync.offsets SET next_offset = $4::bigint,"
     " source_commit_lsn = coalesce($6::pg_lsn, source_commit_lsn),"
     " source_lsn = coalesce($7::pg_lsn, source_lsn), updated_at = now()"
     " WHERE group_id = $1 AND topic = $2 AND partition = $3::int AND generation = $5::bigint"
     " RETURNING 1) SELECT 1 / count(*) FROM moved",
     7},
    {"ds_offsets_hold",
     "WITH held AS (SELECT 1 FROM dualsync.offsets WHERE group_id = $1 AND topic = $2"
     " AND partition = $3::int AND generation = $4::bigint FOR SHARE) SELECT 1 / count(*) FROM "
     "held",
     4},
    /* The newest change of a key wins; an older one (a re-driven dead letter) does not
     * replace it. */
    {"ds_pending_put",
     "INSERT INTO dualsync.pending AS p"
     " (target, topic, partition, kafka_offset, source_key, value, error)"
     " VALUES ($1, $2, $3::int, $4::bigint, $5, $6, $7)"
     " ON CONFLICT (target, topic, source_key) DO UPDATE"
     " SET partition = EXCLUDED.partition, kafka_offset = EXCLUDED.kafka_offset,"
     " value = EXCLUDED.value, error = EXCLUDED.error"
     " WHERE p.kafka_offset <= EXCLUDED.kafka_offset",
     7},
    {"ds_pending_del",
     "DELETE FROM dualsync.pending WHERE target = $1 AND topic = $2 AND source_key = $3"
     " AND kafka_offset <= $4::bigint",
     4},
    /* A truncate is read from one partition (on a topic of several, capture sends one to
     * each): the changes it makes moot are that partition's older ones. */
    {"ds_pending_del_topic",
     "DELETE FROM dualsync.pending WHERE target = $1 AND topic = $2 AND partition = $4::int"
     " AND kafka_offset < $3::bigint",
     4},
    {"ds_pending_del_id", "DELETE FROM dualsync.pending WHERE id = $1::bigint", 1},
    {"ds_pending_keys", "SELECT target, topic, source_key FROM dualsync.pending", 0},
    {"ds_pending_rows",
     "SELECT id, target, topic, partition, kafka_offset, source_key, value,"
     " extract(epoch FROM now() - first_seen)::float8"
     " FROM dualsync.pending ORDER BY topic, source_key, id", /* a source key's rows together */
     0},
    /* Dead-letter records (see "Dead-letter records" in applier_batch.c). The newest dead letter of
     * a source key and target is the one kept. */
    {"ds_dead_put",
     "INSERT INTO dualsync.dead_letters AS d"
     " (target, topic, partition, kafka_offset, source_key, error)"
     " VALUES ($1, $2, $3::int, $4::bigint, $5, $6)"
     " ON CONFLICT (topic, source_key, target) DO UPDATE"
     " SET partition = EXCLUDED.partition, kafka_offset = EXCLUDED.kafka_offset,"
     " error = EXCLUDED.error, created_at = now()"
     " WHERE d.kafka_offset <= EXCLUDED.kafka_offset",
     6},
    {"ds_dead_supersede",
     "DELETE FROM dualsync.dead_letters WHERE topic = $1 AND source_key = $2"
     " AND kafka_offset < $3::bigint",
     3},
    {"ds_dead_supersede_topic",
     "DELETE FROM dualsync.dead_letters WHERE topic = $1 AND partition = $3::int"
     " AND kafka_offset < $2::bigint",
     3},
    {"ds_dead_check",
     "SELECT 1 FROM dualsync.dead_letters WHERE target = $1 AND topic = $2 AND source_key = $3"
     " AND kafka_offset = $4::bigint",
     4},
    {"ds_dead_done",
     "DELETE FROM dualsync.dead_letters WHERE target = $1 AND topic = $2 AND source_key = $3"
     " AND kafka_offset = $4::bigint",
     4},
    /* The same for a record applier_drop_superseded() saw: gone by now, a newer change was
     * committed since the check (an apply under another origin), and this fails with
     * division_by_zero (SQLSTATE_SUPERSEDED) so that the retry's transaction does not commit. */
    {"ds_dead_done_checked",
     "WITH d AS (DELETE FROM dualsync.dead_letters WHERE target = $1 AND topic = $2"
     " AND source_key = $3 AND kafka_offset = $4::bigint RETURNING 1)"
     " SELECT 1 / count(*) FROM d",
     4},
    {"ds_dead_keys", "SELECT DISTINCT topic, source_key FROM dualsync.dead_letters", 0},
    /* Settling (mapping_sql.c): the touched keys of a target id, locked in order. */
    {"ds_lock_touched", "SELECT pg_temp.ds_lock_touched($1)", 1},
    /* `dualsync replay --in-place` (DS_GATE_SESSION_SQL): $1 this database's target tables. */
    {"ds_gate", "SELECT pg_temp.ds_gate($1::text[])", 1},
};

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------------- */

ds_applier_t *ds_applier_new(const ds_applier_options_t *options)
{
    ds_applier_t *a = calloc(1, sizeof(*a));

    if (!a)
        return NULL;
    a->set = options->set;
    a->row_by_row = options->row_by_row;
    a->dlq_retry = options->dlq_retry;
    a->pending_timeout_s = options->pending_timeout_ms / 1000.0;
    if (!(a->name = strdup(options->name)) || !(a->conninfo = strdup(options->conninfo)) ||
        !(a->origin = strdup(options->origin)) || !(a->group_id = strdup(options->group_id)) ||
        !(a->owner = strdup(options->owner ? options->owner : "")) ||
        (options->schema && !(a->schema = strdup(options->schema))) ||
        !(a->pending = ds_strset_new()) || !(a->decided = ds_strset_new()) ||
        !(a->truncated = ds_strset_new()) || !(a->batched = ds_strset_new()) ||
        !(a->dead_keys = ds_strset_new()) ||
        !(a->written = calloc((size_t)ds_mapping_set_ntargets(a->set) + 1, sizeof(*a->written)))) {
        ds_applier_free(a);
        return NULL;
    }
    return a;
}

void ds_applier_free(ds_applier_t *a)
{
    if (!a)
        return;
    if (a->conn)
        PQfinish(a->conn);
    free(a->name);
    free(a->conninfo);
    free(a->origin);
    free(a->group_id);
    free(a->owner);
    free(a->schema);
    free(a->targets);
    free(a->written);
    free(a->order);
    free(a->gate_tables);
    ds_strset_free(a->pending);
    ds_strset_free(a->decided);
    ds_strset_free(a->truncated);
    ds_strset_free(a->batched);
    ds_strset_free(a->dead_keys);
    free(a->msg_flags);
    ds_batchstmt_free(&a->args);
    free(a->work);
    free(a->ops);
    ds_buf_free(&a->key);
    ds_buf_free(&a->key_text);
    ds_buf_free(&a->value_text);
    free(a);
}

const char *ds_applier_name(const ds_applier_t *a)
{
    return a->name;
}

uint64_t ds_applier_written(const ds_applier_t *a, int target, ds_write_kind_t kind)
{
    return a->written[target][kind];
}

/* Counts work[i] as written by its target and kind, when its statement wrote. */
void applier_count_written(ds_applier_t *a, ds_batch_t *batch, int i)
{
    const work_t *w = &a->work[i];

    if (w->applied)
        a->written[a->targets[w->local].index]
                  [ds_batch_at(batch, w->msg)->writes[w->write].kind]++;
}

size_t ds_applier_pending(const ds_applier_t *a)
{
    return ds_strset_count(a->pending);
}

bool applier_lost(const ds_applier_t *a)
{
    return !a->conn || PQstatus(a->conn) != CONNECTION_OK;
}

bool ds_applier_connected(const ds_applier_t *a)
{
    return !applier_lost(a);
}

bool ds_applier_probe(ds_applier_t *a)
{
    struct pollfd pfd;

    if (applier_lost(a))
        return false;
    /* A server that shuts down or ends the session says so (an error message, then EOF):
     * the socket turns readable. Reading it now lets libpq notice without a query; whatever
     * else is there (results of writes in flight) stays buffered for the applier. */
    pfd.fd = PQsocket(a->conn);
    pfd.events = POLLIN;
    pfd.revents = 0;
    if (pfd.fd >= 0 && poll(&pfd, 1, 0) > 0)
        PQconsumeInput(a->conn);
    return !applier_lost(a);
}

/* "target␟topic" or "target␟topic␟key" into a->key. */
void applier_make_key(ds_applier_t *a, const char *target, const char *topic, const char *key,
                      size_t key_len)
{
    ds_buf_reset(&a->key);
    ds_buf_append_str(&a->key, target);
    ds_buf_append_char(&a->key, KEY_SEP);
    ds_buf_append_str(&a->key, topic);
    if (key) {
        ds_buf_append_char(&a->key, KEY_SEP);
        ds_buf_append(&a->key, key, key_len);
    }
}

/* The key of the truncated set: target, topic and the partition the message came from. */
void applier_make_partition_key(ds_applier_t *a, const char *target, const ds_batch_msg_t *m)
{
    applier_make_key(a, target, m->topic, NULL, 0);
    ds_buf_appendf(&a->key, "%c%d", KEY_SEP, (int)m->partition);
}

/* The message's key as stored in dualsync.pending (source_key is NOT NULL). */
const char *applier_source_key(const ds_batch_msg_t *m, size_t *len)
{
    if (!m->key) {
        *len = 4;
        return "null";
    }
    *len = m->key_len;
    return m->key;
}

/*
 * @p len bytes as a NUL-terminated string in @p buf: libpq takes text parameters as C strings,
 * and Kafka's keys and values are not terminated. Valid until the buffer's next use.
 */
const char *applier_cstr(ds_buf_t *buf, const char *s, size_t len)
{
    ds_buf_reset(buf);
    ds_buf_append(buf, s, len);
    return buf->data ? buf->data : "";
}

int applier_local_index(const ds_applier_t *a, const ds_target_t *target)
{
    for (int i = 0; i < a->ntargets; i++) {
        if (a->targets[i].target == target)
            return i;
    }
    return -1;
}

const char *applier_statement_of(const ds_applier_t *a, int local, ds_write_kind_t kind)
{
    const char *name = a->targets[local].stmt[kind];

    return name[0] ? name : NULL;
}


/*
 * Runs one statement (prepared when @p prepared) and waits. On RUN_OK *out (when given)
 * receives the result, which the caller clears.
 */
run_result_t applier_run(ds_applier_t *a, const char *stmt, bool prepared, int nparams,
                         const char *const *params, PGresult **out, char *sqlstate, char *message,
                         size_t message_size)
{
    PGresult *r;
    ExecStatusType status;

    if (out)
        *out = NULL;
    sqlstate[0] = '\0';
    if (applier_lost(a)) {
        snprintf(message, message_size, "the connection is lost");
        return RUN_LOST;
    }
    if (prepared)
        r = PQexecPrepared(a->conn, stmt, nparams, params, NULL, NULL, 0);
    else if (nparams == 0) /* the simple protocol: DS_APPLY_SCHEMA_SQL is several statements */
        r = PQexec(a->conn, stmt);
    else
        r = PQexecParams(a->conn, stmt, nparams, NULL, params, NULL, NULL, 0);
    status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
        if (out)
            *out = r;
        else
            PQclear(r);
        return RUN_OK;
    }
    ds_pg_result_error(r, a->conn, sqlstate, message, message_size);
    PQclear(r);
    return applier_lost(a) ? RUN_LOST : RUN_SQL_ERROR;
}

/* Runs a statement whose failure is never expected; false with errstr naming the target. */
static ds_applier_status_t run_or_fail(ds_applier_t *a, const char *stmt, bool prepared,
                                       int nparams, const char *const *params, PGresult **out,
                                       const char *what, char *errstr, size_t errstr_size)
{
    char sqlstate[6], message[1024];

    switch (
        applier_run(a, stmt, prepared, nparams, params, out, sqlstate, message, sizeof(message))) {
    case RUN_OK:
        return DS_APPLIER_OK;
    case RUN_LOST:
        ds_fail(errstr, errstr_size, "target \"%s\": connection lost while %s: %s", a->name, what,
                message);
        return DS_APPLIER_RETRY;
    case RUN_SQL_ERROR:
        break;
    }
    ds_fail(errstr, errstr_size, "target \"%s\": %s: %s", a->name, what, message);
    return DS_APPLIER_FAILED;
}

/* The answer of a write statement: its one row's "applied" column (true when absent). */
bool applier_answer_applied(const PGresult *r)
{
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1 || PQnfields(r) < 1)
        return true;
    return !(PQgetisnull(r, 0, 0) == 0 && PQgetvalue(r, 0, 0)[0] == 'f');
}

/* ---------------------------------------------------------------------------------------------
 * Replication origin
 * ------------------------------------------------------------------------------------------- */

static void origin_privilege_hint(const ds_applier_t *a, const char *message, char *errstr,
                                  size_t errstr_size)
{
    ds_fail(errstr, errstr_size,
            "target \"%s\": cannot use replication origin \"%s\": %s. apply commits under this "
            "origin so that capture skips its writes; run it as a superuser, or grant the role: "
            "GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), "
            "pg_replication_origin_session_setup(text), pg_replication_origin_session_reset() "
            "TO <role>, in this database",
            a->name, a->origin, message);
}

/* What a failed origin setup means: busy (retry), lost, or a privilege/other error. */
ds_applier_status_t applier_origin_setup_failed(ds_applier_t *a, const char *sqlstate,
                                                const char *message, char *errstr,
                                                size_t errstr_size)
{
    if (applier_lost(a)) {
        ds_fail(errstr, errstr_size, "target \"%s\": connection lost: %s", a->name, message);
        return DS_APPLIER_RETRY;
    }
    if (strcmp(sqlstate, SQLSTATE_OBJECT_IN_USE) == 0) {
        ds_fail(errstr, errstr_size,
                "target \"%s\": replication origin \"%s\" is held by another session (%s); "
                "waiting for it",
                a->name, a->origin, message);
        return DS_APPLIER_RETRY;
    }
    if (strcmp(sqlstate, SQLSTATE_INSUFFICIENT_PRIV) == 0)
        origin_privilege_hint(a, message, errstr, errstr_size);
    else
        ds_fail(errstr, errstr_size, "target \"%s\": cannot use replication origin \"%s\": %s",
                a->name, a->origin, message);
    return DS_APPLIER_FAILED;
}

ds_applier_status_t applier_origin_setup(ds_applier_t *a, char *errstr, size_t errstr_size)
{
    const char *params[1] = {a->origin};
    char sqlstate[6], message[1024];

    if (a->origin_held)
        return DS_APPLIER_OK;
    if (applier_run(a, "ds_origin_setup", true, 1, params, NULL, sqlstate, message,
                    sizeof(message)) == RUN_OK) {
        a->origin_held = true;
        return DS_APPLIER_OK;
    }
    return applier_origin_setup_failed(a, sqlstate, message, errstr, errstr_size);
}

/* Leaves the session clean after a failure: no transaction, no origin, not in a pipeline. */
void applier_recover(ds_applier_t *a)
{
    char sqlstate[6], message[1024];

    if (applier_lost(a))
        return;
    if (PQpipelineStatus(a->conn) != PQ_PIPELINE_OFF) {
        /* A pipeline left with unread results: the session's state is unknown. Start over
         * with a new one (the caller sees the applier disconnected and reconnects). */
        PQfinish(a->conn);
        a->conn = NULL;
        a->origin_held = false;
        return;
    }
    PQsetnonblocking(a->conn, 0);
    if (PQtransactionStatus(a->conn) != PQTRANS_IDLE)
        applier_run(a, "ROLLBACK", false, 0, NULL, NULL, sqlstate, message, sizeof(message));
    if (a->origin_held && applier_run(a, "ds_origin_reset", true, 0, NULL, NULL, sqlstate, message,
                                      sizeof(message)) == RUN_OK)
        a->origin_held = false;
}

/* ---------------------------------------------------------------------------------------------
 * Connecting
 * ------------------------------------------------------------------------------------------- */

static ds_applier_status_t ensure_origin(ds_applier_t *a, char *errstr, size_t errstr_size)
{
    const char *params[1] = {a->origin};
    char sqlstate[6], message[1024];
    PGresult *r = NULL;
    ds_applier_status_t st;
    bool exists;

    st = run_or_fail(a, "SELECT 1 FROM pg_catalog.pg_replication_origin WHERE roname = $1", false,
                     1, params, &r, "looking up the replication origin", errstr, errstr_size);
    if (st != DS_APPLIER_OK)
        return st;
    exists = PQntuples(r) > 0;
    PQclear(r);
    if (!exists) {
        switch (applier_run(a, "SELECT pg_catalog.pg_replication_origin_create($1)", false, 1,
                            params, NULL, sqlstate, message, sizeof(message))) {
        case RUN_OK:
            ds_info("target \"%s\": created replication origin \"%s\"", a->name, a->origin);
            break;
        case RUN_LOST:
            ds_fail(errstr, errstr_size, "target \"%s\": connection lost: %s", a->name, message);
            return DS_APPLIER_RETRY;
        case RUN_SQL_ERROR:
            /* Origins are cluster-wide: another target database of the same server (or
             * another dualsync) may have created it a moment ago. */
            if (strcmp(sqlstate, SQLSTATE_UNIQUE) != 0)
                return applier_origin_setup_failed(a, sqlstate, message, errstr, errstr_size);
        }
    }
    /* Take it once now, so a missing privilege is reported at start, not at the first
     * change. Held elsewhere is fine: the privilege was checked before that. */
    if (applier_run(a, "ds_origin_setup", true, 1, params, NULL, sqlstate, message,
                    sizeof(message)) != RUN_OK) {
        st = applier_origin_setup_failed(a, sqlstate, message, errstr, errstr_size);
        return st == DS_APPLIER_RETRY && !applier_lost(a) ? DS_APPLIER_OK : st;
    }
    a->origin_held = true;
    st = run_or_fail(a, "ds_origin_reset", true, 0, NULL, NULL, "releasing the origin", errstr,
                     errstr_size);
    if (st == DS_APPLIER_OK)
        a->origin_held = false;
    return st;
}

/*
 * The text of one of dualsync's own statements (or DS_APPLY_SCHEMA_SQL) for this applier's
 * bookkeeping schema: as written, or with "dualsync" replaced by options.schema, so that a
 * runtime writing shadow tables (`dualsync replay`) keeps its links, offsets, pending rows and
 * dead-letter records apart from apply's while running the very same statements. Caller frees;
 * NULL when out of memory.
 */
static char *own_sql(const ds_applier_t *a, const char *sql)
{
    ds_buf_t out = DS_BUF_INIT;
    const char *p = sql, *hit;

    if (!a->schema)
        return strdup(sql);
    while ((hit = strstr(p, "dualsync")) != NULL) {
        ds_buf_append(&out, p, (size_t)(hit - p));
        ds_buf_append_str(&out, a->schema);
        p = hit + strlen("dualsync");
    }
    ds_buf_append_str(&out, p);
    return out.data;
}

static ds_applier_status_t prepare(ds_applier_t *a, const char *name, const char *sql, int nparams,
                                   char *errstr, size_t errstr_size)
{
    PGresult *r = PQprepare(a->conn, name, sql, nparams, NULL);
    ds_applier_status_t st = DS_APPLIER_OK;

    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
        char sqlstate[6], message[1024];

        ds_pg_result_error(r, a->conn, sqlstate, message, sizeof(message));
        ds_fail(errstr, errstr_size, "target \"%s\": cannot prepare statement %s: %s", a->name,
                name, message);
        st = applier_lost(a) ? DS_APPLIER_RETRY : DS_APPLIER_FAILED;
    }
    PQclear(r);
    return st;
}

/* Prepares the batch statement of @p lt (none: the target is written row by row). */
static ds_applier_status_t prepare_batch(ds_applier_t *a, local_target_t *lt, const char *form,
                                         char *errstr, size_t errstr_size)
{
    char name[24], message[1024];

    lt->batch[0] = '\0';
    if (a->row_by_row)
        return DS_APPLIER_OK;
    snprintf(name, sizeof(name), "ds_b%s%d", form, lt->index);
    switch (ds_batchstmt_prepare(a->conn, lt->target, lt->stmt[DS_WRITE_UPSERT], name, message,
                                 sizeof(message))) {
    case DS_BATCHSTMT_READY:
        memcpy(lt->batch, name, sizeof(name));
        return DS_APPLIER_OK;
    case DS_BATCHSTMT_NONE:
        return DS_APPLIER_OK;
    case DS_BATCHSTMT_ERROR:
        break;
    }
    ds_fail(errstr, errstr_size, "target \"%s\": %s", a->name, message);
    return applier_lost(a) ? DS_APPLIER_RETRY : DS_APPLIER_FAILED;
}

/* Prepares the settle statement of @p lt, unless an earlier target shares its links id. */
static ds_applier_status_t prepare_settle(ds_applier_t *a, local_target_t *lt, char *errstr,
                                          size_t errstr_size)
{
    lt->settle[0] = '\0';
    if (!lt->target->settle_sql)
        return DS_APPLIER_OK;
    for (const local_target_t *o = a->targets; o < lt; o++) {
        if (o->settle[0] && strcmp(o->target->links_id, lt->target->links_id) == 0)
            return DS_APPLIER_OK;
    }
    snprintf(lt->settle, sizeof(lt->settle), "ds_s%d", lt->index);
    return prepare(a, lt->settle, lt->target->settle_sql, 1, errstr, errstr_size);
}

/*
 * The order batch statements run in: a target that another target's lookup reads comes
 * first, so a child whose parent is in the same batch finds it (row by row, message order
 * decides; a child before its parent waits in dualsync.pending either way). Lookups that go
 * round in a circle keep file order.
 */
static bool order_targets(ds_applier_t *a)
{
    bool *placed = calloc((size_t)a->ntargets + 1, sizeof(*placed));
    int n = 0;

    free(a->order);
    if (!(a->order = calloc((size_t)a->ntargets + 1, sizeof(*a->order))) || !placed) {
        free(placed);
        return false;
    }
    while (n < a->ntargets) {
        int pick = -1;

        for (int i = 0; i < a->ntargets && pick < 0; i++) {
            bool waits = false;

            if (placed[i])
                continue;
            for (int j = 0; j < a->ntargets && !waits; j++)
                waits = j != i && !placed[j] &&
                        ds_mapping_target_reads(a->set, a->targets[i].index, a->targets[j].index);
            if (!waits)
                pick = i;
        }
        for (int i = 0; i < a->ntargets && pick < 0; i++) {
            if (!placed[i])
                pick = i;
        }
        placed[pick] = true;
        a->order[n++] = pick;
    }
    free(placed);
    return true;
}

/* a->gate_tables: the distinct tables of this database's targets (apply's own applier only:
 * the replay's writes the tables the gate keeps apply from). */
static bool list_gate_tables(ds_applier_t *a)
{
    const char **tables = calloc((size_t)a->ntargets + 1, sizeof(*tables));
    int n = 0;

    free(a->gate_tables);
    a->gate_tables = NULL;
    if (!tables)
        return false;
    for (int i = 0; i < a->ntargets && !a->schema; i++) {
        bool seen = false;

        for (int j = 0; j < n && !seen; j++)
            seen = strcmp(tables[j], a->targets[i].target->table) == 0;
        if (!seen)
            tables[n++] = a->targets[i].target->table;
    }
    if (n > 0)
        a->gate_tables = ds_pg_text_array(tables, n);
    free(tables);
    return n == 0 || a->gate_tables;
}

/*
 * Adds @p t, the set's target @p index (or its form without links), to this database's
 * targets and prepares its statements, named with @p form ("" or "n") and the index.
 */
static ds_applier_status_t prepare_target(ds_applier_t *a, const ds_target_t *t, int index,
                                          const char *form, char *errstr, size_t errstr_size)
{
    local_target_t *lt = &a->targets[a->ntargets++];
    const char *sql[3] = {t->write_sql, t->unlink_sql, t->truncate_sql};
    int nparams[3] = {t->write_nparams, t->unlink_nparams, t->truncate_nparams};
    ds_applier_status_t st;

    lt->target = t;
    lt->index = index;
    for (int k = 0; k < 3; k++) {
        static const char prefix[3] = {'w', 'u', 't'};

        if (!sql[k])
            continue;
        snprintf(lt->stmt[k], sizeof(lt->stmt[k]), "ds_%c%s%d", prefix[k], form, index);
        st = prepare(a, lt->stmt[k], sql[k], nparams[k], errstr, errstr_size);
        if (st != DS_APPLIER_OK)
            return st;
    }
    if ((st = prepare_batch(a, lt, form, errstr, errstr_size)) != DS_APPLIER_OK)
        return st;
    return prepare_settle(a, lt, errstr, errstr_size);
}

static ds_applier_status_t prepare_all(ds_applier_t *a, char *errstr, size_t errstr_size)
{
    int n = ds_mapping_set_ntargets(a->set);
    ds_applier_status_t st;

    free(a->targets);
    a->ntargets = 0;
    if (!(a->targets = calloc((size_t)n * 2 + 1, sizeof(*a->targets)))) {
        ds_fail(errstr, errstr_size, "out of memory");
        return DS_APPLIER_FAILED;
    }
    for (size_t i = 0; i < DS_ARRAY_LEN(own_statements); i++) {
        char *sql = own_sql(a, own_statements[i].sql);

        if (!sql) {
            ds_fail(errstr, errstr_size, "out of memory");
            return DS_APPLIER_FAILED;
        }
        st = prepare(a, own_statements[i].name, sql, own_statements[i].nparams, errstr,
                     errstr_size);
        free(sql);
        if (st != DS_APPLIER_OK)
            return st;
    }
    for (int i = 0; i < n; i++) {
        const ds_target_t *t = ds_mapping_set_target(a->set, i);

        if (strcmp(t->connection, a->name) != 0)
            continue;
        if ((st = prepare_target(a, t, i, "", errstr, errstr_size)) != DS_APPLIER_OK)
            return st;
        /* Its form without links is a target of its own here, with statements of its own. */
        if (t->linkless &&
            (st = prepare_target(a, t->linkless, i, "n", errstr, errstr_size)) != DS_APPLIER_OK)
            return st;
    }
    if (!order_targets(a) || !list_gate_tables(a)) {
        ds_fail(errstr, errstr_size, "out of memory");
        return DS_APPLIER_FAILED;
    }
    return DS_APPLIER_OK;
}

/* "topic␟key" into a->key: a source key as dualsync.dead_letters groups them. */
void applier_make_dead_key(ds_applier_t *a, const char *topic, const char *key, size_t key_len)
{
    ds_buf_reset(&a->key);
    ds_buf_append_str(&a->key, topic);
    ds_buf_append_char(&a->key, KEY_SEP);
    ds_buf_append(&a->key, key, key_len);
}

/*
 * Fills @p set with the rows of prepared statement @p stmt, each row's columns joined by
 * KEY_SEP: the form make_key (target, topic, key) and make_dead_key (topic, key) give.
 */
static ds_applier_status_t load_key_set(ds_applier_t *a, const char *stmt, const char *what,
                                        ds_strset_t *set, char *errstr, size_t errstr_size)
{
    PGresult *r = NULL;
    ds_applier_status_t st = run_or_fail(a, stmt, true, 0, NULL, &r, what, errstr, errstr_size);

    if (st != DS_APPLIER_OK)
        return st;
    ds_strset_clear(set);
    for (int i = 0; i < PQntuples(r); i++) {
        ds_buf_reset(&a->key);
        for (int c = 0; c < PQnfields(r); c++) {
            if (c)
                ds_buf_append_char(&a->key, KEY_SEP);
            ds_buf_append(&a->key, PQgetvalue(r, i, c), (size_t)PQgetlength(r, i, c));
        }
        if (!ds_strset_add(set, a->key.data, a->key.len)) {
            PQclear(r);
            ds_fail(errstr, errstr_size, "out of memory while %s", what);
            return DS_APPLIER_FAILED;
        }
    }
    PQclear(r);
    return DS_APPLIER_OK;
}

ds_applier_status_t applier_load_pending_keys(ds_applier_t *a, char *errstr, size_t errstr_size)
{
    return load_key_set(a, "ds_pending_keys", "reading dualsync.pending", a->pending, errstr,
                        errstr_size);
}

static ds_applier_status_t load_dead_keys(ds_applier_t *a, char *errstr, size_t errstr_size)
{
    return load_key_set(a, "ds_dead_keys", "reading dualsync.dead_letters", a->dead_keys, errstr,
                        errstr_size);
}

/* Server notices ("schema already exists, skipping") are noise on apply's log. */
static void on_notice(void *arg, const char *message)
{
    const ds_applier_t *a = arg;
    size_t len = strlen(message);

    while (len > 0 && message[len - 1] == '\n')
        len--;
    ds_debug("target \"%s\": %.*s", a->name, (int)len, message);
}

/*
 * Creates the dualsync schema when missing. Several apply processes starting together on a
 * new database may race through CREATE ... IF NOT EXISTS (which can then fail with a
 * duplicate catalog row); the loser tries again and finds the objects there.
 */
static ds_applier_status_t create_schema(ds_applier_t *a, char *errstr, size_t errstr_size)
{
    char sqlstate[6], message[1024];
    char *sql = own_sql(a, DS_APPLY_SCHEMA_SQL);
    run_result_t rr;

    if (!sql) {
        ds_fail(errstr, errstr_size, "out of memory");
        return DS_APPLIER_FAILED;
    }
    for (int attempt = 1;; attempt++) {
        rr = applier_run(a, sql, false, 0, NULL, NULL, sqlstate, message, sizeof(message));
        if (rr == RUN_SQL_ERROR && attempt < 3 &&
            (strcmp(sqlstate, SQLSTATE_UNIQUE) == 0 || strcmp(sqlstate, "42P07") == 0 ||
             strcmp(sqlstate, "42710") == 0))
            continue; /* duplicate_table, duplicate_object: created meanwhile */
        free(sql);
        switch (rr) {
        case RUN_OK:
            return DS_APPLIER_OK;
        case RUN_LOST:
            ds_fail(errstr, errstr_size, "target \"%s\": connection lost while creating the "
                    "dualsync schema: %s", a->name, message);
            return DS_APPLIER_RETRY;
        case RUN_SQL_ERROR:
        default:
            ds_fail(errstr, errstr_size,
                    "target \"%s\": creating the dualsync schema (links, offsets, pending, "
                    "dead_letters): %s",
                    a->name, message);
            return DS_APPLIER_FAILED;
        }
    }
}

/*
 * Links on and off. A target written with "links": false keeps no link for its rows, so once
 * it is written with links again a delete, a filter transition or a key change of such a row's
 * source row finds no link and leaves the row behind. dualsync.linkless_targets records every
 * target apply starts writing without links; a target whose mapping keeps links again is
 * refused here (DS_APPLIER_INVALID: exit 2 at start) until `dualsync replay` rebuilds it,
 * whose swap records the form it wrote (replay_swap.c). Turning links off needs nothing: the
 * form without links reads no link.
 */
static ds_applier_status_t check_links_mode(ds_applier_t *a, char *errstr, size_t errstr_size)
{
    int n = ds_mapping_set_ntargets(a->set), nlinkless = 0, nlinked = 0;
    const char **linkless = calloc((size_t)n + 1, sizeof(*linkless));
    const char **linked = calloc((size_t)n + 1, sizeof(*linked));
    char *params[2] = {NULL, NULL};
    char *sql = own_sql(a,
                        "WITH recorded AS (INSERT INTO dualsync.linkless_targets (target)"
                        " SELECT unnest($1::text[]) ON CONFLICT (target) DO NOTHING)"
                        " SELECT target, since FROM dualsync.linkless_targets"
                        " WHERE target = ANY ($2::text[]) ORDER BY target");
    ds_applier_status_t st = DS_APPLIER_FAILED;
    PGresult *r = NULL;

    for (int i = 0; linkless && linked && i < n; i++) {
        const ds_target_t *t = ds_mapping_set_target(a->set, i);

        if (strcmp(t->connection, a->name) != 0 || t->in_place)
            continue;
        if (t->linkless)
            linkless[nlinkless++] = t->id;
        else
            linked[nlinked++] = t->id;
    }
    if (linkless && linked && sql && (params[0] = ds_pg_text_array(linkless, nlinkless)) &&
        (params[1] = ds_pg_text_array(linked, nlinked)))
        st = run_or_fail(a, sql, false, 2, (const char *const *)params, &r,
                         "recording the targets written without links", errstr, errstr_size);
    else
        ds_fail(errstr, errstr_size, "out of memory");
    if (st == DS_APPLIER_OK && PQntuples(r) > 0) {
        ds_buf_t which = DS_BUF_INIT;

        for (int row = 0; row < PQntuples(r); row++) {
            const char *id = PQgetvalue(r, row, 0), *slash = strchr(id, '/');

            ds_buf_appendf(&which,
                           "%starget %s (without links since %s; dualsync replay --config FILE "
                           "--mapping %.*s)",
                           row ? ", " : "", id, PQgetvalue(r, row, 1),
                           slash ? (int)(slash - id) : (int)strlen(id), id);
        }
        ds_fail(errstr, errstr_size,
                "%s: the mapping keeps links, but apply has written it without links "
                "(\"links\": false): rows written since have no link, so a later delete, "
                "filter transition or key change of their source rows would leave them behind. "
                "Rebuild it with the replay given (its swap records the target as linked "
                "again), or set \"links\": false again. If no row was written without links, "
                "deleting its row from dualsync.linkless_targets in this database lets apply "
                "start",
                which.data ? which.data : "out of memory");
        ds_buf_free(&which);
        st = DS_APPLIER_INVALID;
    }
    PQclear(r);
    free(params[0]);
    free(params[1]);
    free(sql);
    free(linkless);
    free(linked);
    return st;
}

ds_applier_status_t ds_applier_connect(ds_applier_t *a, char *errstr, size_t errstr_size)
{
    static const char *const keywords[] = {"dbname", "fallback_application_name", NULL};
    const char *values[] = {a->conninfo, "dualsync-apply", NULL};
    ds_applier_status_t st;

    applier_drop_sent(a);

    if (a->conn)
        PQfinish(a->conn);
    a->origin_held = false; /* a new session holds nothing */
    a->conn = PQconnectdbParams(keywords, values, 1);
    if (!a->conn || PQstatus(a->conn) != CONNECTION_OK) {
        ds_fail(errstr, errstr_size, "target \"%s\": cannot connect: %s", a->name,
                a->conn ? ds_pg_error(a->conn) : "out of memory");
        return DS_APPLIER_RETRY;
    }
    PQsetNoticeProcessor(a->conn, on_notice, a);
    /* Target keys are recorded as text; a timestamptz key must not depend on the server's
     * default TimeZone (mapping.h). */
    st = run_or_fail(a, "SET TimeZone = 'UTC'", false, 0, NULL, NULL, "setting TimeZone", errstr,
                     errstr_size);
    if (st == DS_APPLIER_OK)
        st = create_schema(a, errstr, errstr_size);
    /* The catalog first: a missing table must be reported as a mapping problem (with every
     * other one), not as a statement that cannot be prepared. Checked on the first
     * connection; the compiled statements do not change afterwards. */
    if (st == DS_APPLIER_OK && !a->catalog_checked) {
        if (!ds_mapping_set_check_catalog(a->set, a->name, a->conn, errstr, errstr_size))
            return applier_lost(a) ? DS_APPLIER_RETRY : DS_APPLIER_INVALID;
        if ((st = check_links_mode(a, errstr, errstr_size)) != DS_APPLIER_OK)
            return st;
        a->catalog_checked = true;
    }
    if (st == DS_APPLIER_OK)
        st = prepare_all(a, errstr, errstr_size);
    if (st == DS_APPLIER_OK)
        st = ensure_origin(a, errstr, errstr_size);
    if (st == DS_APPLIER_OK)
        st = applier_load_pending_keys(a, errstr, errstr_size);
    return st;
}

ds_applier_status_t ds_applier_read_offsets(ds_applier_t *a, ds_offsets_t *offsets, int db,
                                            const ds_topic_partition_t *parts, int nparts,
                                            char *errstr, size_t errstr_size)
{
    const char *params[1] = {a->group_id};
    PGresult *r = NULL;
    ds_applier_status_t st;

    applier_drop_sent(a);
    st = run_or_fail(a, "ds_offsets_get", true, 1, params, &r, "reading dualsync.offsets", errstr,
                     errstr_size);

    if (st != DS_APPLIER_OK)
        return st;
    for (int i = 0; i < nparts; i++) {
        int64_t next = DS_OFFSET_NONE;

        for (int row = 0; row < PQntuples(r); row++) {
            if (strcmp(PQgetvalue(r, row, 0), parts[i].topic) == 0 &&
                atoi(PQgetvalue(r, row, 1)) == parts[i].partition)
                next = strtoll(PQgetvalue(r, row, 2), NULL, 10);
        }
        if (!ds_offsets_set(offsets, db, parts[i].topic, parts[i].partition, next)) {
            PQclear(r);
            ds_fail(errstr, errstr_size, "out of memory");
            return DS_APPLIER_FAILED;
        }
    }
    PQclear(r);
    /* Partitions may have come from another apply process, with their dead letters' keys. */
    return load_dead_keys(a, errstr, errstr_size);
}

ds_applier_status_t ds_applier_claim(ds_applier_t *a, ds_offsets_t *offsets, int db,
                                     const ds_topic_partition_t *parts, int nparts, char *errstr,
                                     size_t errstr_size)
{
    applier_drop_sent(a);
    for (int i = 0; i < nparts; i++) {
        char partition[16];
        const char *params[4] = {a->group_id, parts[i].topic, partition, a->owner};
        PGresult *r = NULL;
        ds_applier_status_t st;
        int64_t next, generation;
        ds_source_pos_t position;
        char what[512];

        snprintf(partition, sizeof(partition), "%d", (int)parts[i].partition);
        snprintf(what, sizeof(what), "claiming %s [%d] in dualsync.offsets", parts[i].topic,
                 (int)parts[i].partition);
        /* Autocommit: the claim must be visible to a stale owner's commit at once. */
        st = run_or_fail(a, "ds_offsets_claim", true, 4, params, &r, what, errstr, errstr_size);
        if (st != DS_APPLIER_OK)
            return st;
        next = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        generation = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        if (!ds_lsn_parse(PQgetvalue(r, 0, 2), &position.commit) ||
            !ds_lsn_parse(PQgetvalue(r, 0, 3), &position.lsn))
            position = (ds_source_pos_t){0, 0};
        PQclear(r);
        if (!ds_offsets_set(offsets, db, parts[i].topic, parts[i].partition, next) ||
            !ds_offsets_set_generation(offsets, db, parts[i].topic, parts[i].partition,
                                       generation) ||
            !ds_offsets_set_position(offsets, db, parts[i].topic, parts[i].partition,
                                     position)) {
            ds_fail(errstr, errstr_size, "out of memory");
            return DS_APPLIER_FAILED;
        }
        ds_debug("target \"%s\": claimed %s [%d] (generation %" PRId64 "), next offset %" PRId64,
                 a->name, parts[i].topic, (int)parts[i].partition, generation, next);
    }
    /* Partitions may have come from another apply process, with the keys of their pending
     * changes and dead letters: read once the claims are committed, so that nothing the
     * previous owner parked is missed (a pending change never retried, or one a later delete
     * of its key should have dropped coming back). */
    if (nparts == 0)
        return DS_APPLIER_OK;
    ds_applier_status_t st = applier_load_pending_keys(a, errstr, errstr_size);

    return st == DS_APPLIER_OK ? load_dead_keys(a, errstr, errstr_size) : st;
}

int ds_applier_backend_pid(const ds_applier_t *a)
{
    return a->conn ? PQbackendPID(a->conn) : 0;
}
