/*
 * applier.c: one target database: connection, bookkeeping schema, pipelined batches, the
 * savepoint slow path, dualsync.pending.
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

#include "dualsync/applier.h"
#include "dualsync/batchstmt.h"
#include "dualsync/buf.h"
#include "dualsync/log.h"
#include "dualsync/pgutil.h"
#include "dualsync/strset.h"

/* SQLSTATEs apply tells apart. */
#define SQLSTATE_FOREIGN_KEY       "23503" /* foreign_key_violation: a parent is missing */
#define SQLSTATE_OBJECT_IN_USE     "55006" /* the origin is held by another session */
#define SQLSTATE_INSUFFICIENT_PRIV "42501" /* insufficient_privilege */
#define SQLSTATE_UNIQUE            "23505" /* unique_violation (origin created concurrently) */
#define SQLSTATE_SUPERSEDED        "22012" /* ds_dead_done_checked: the record went meanwhile */
#define SQLSTATE_FENCED            "22012" /* ds_offsets_put/hold: another process claimed */

/*
 * Errors that say "try again", not "this change is wrong": serialization failures and
 * deadlocks (class 40), a lock not available (55P03), insufficient resources (class 53).
 * A batch that meets one is rolled back and retried whole, never dead-lettered.
 */
static bool transient_sqlstate(const char *sqlstate)
{
    return strncmp(sqlstate, "40", 2) == 0 || strncmp(sqlstate, "53", 2) == 0 ||
           strcmp(sqlstate, "55P03") == 0;
}

/* Why a change waits in dualsync.pending when its statement said applied = false. */
#define MISSING_PARENT "a required lookup found no row (the parent has not arrived yet)"

/* Separates the parts of a pending key: never inside a topic or a target id. */
#define KEY_SEP '\x1f'

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
    /* The fence (see "The fence" below). A partition never seen gets its row here, with
     * next_offset -1: nothing stored (DS_OFFSET_NONE; verify and status read a negative
     * offset as nothing applied yet). */
    {"ds_offsets_claim",
     "INSERT INTO dualsync.offsets AS o (group_id, topic, partition, next_offset, generation,"
     " owner) VALUES ($1, $2, $3::int, -1, 1, $4)"
     " ON CONFLICT (group_id, topic, partition) DO UPDATE"
     " SET generation = o.generation + 1, owner = EXCLUDED.owner, updated_at = now()"
     " RETURNING next_offset, generation",
     4},
    /* Fails (division_by_zero, SQLSTATE_FENCED) when the row is not this claim's any more. */
    {"ds_offsets_put",
     "WITH moved AS (UPDATE dualsync.offsets SET next_offset = $4::bigint, updated_at = now()"
     " WHERE group_id = $1 AND topic = $2 AND partition = $3::int AND generation = $5::bigint"
     " RETURNING 1) SELECT 1 / count(*) FROM moved",
     5},
    {"ds_offsets_hold",
     "WITH held AS (SELECT 1 FROM dualsync.offsets WHERE group_id = $1 AND topic = $2"
     " AND partition = $3::int AND generation = $4::bigint FOR SHARE) SELECT 1 / count(*) FROM held",
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
    /* Dead-letter records (see "Dead-letter records" below). The newest dead letter of a
     * source key and target is the one kept. */
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
    /* The same for a record drop_superseded() saw: gone by now, a newer change was committed
     * since the check (an apply under another origin), and this fails with division_by_zero
     * (SQLSTATE_SUPERSEDED) so that the retry's transaction does not commit. */
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

/* A target of this database and the names of its prepared statements. */
typedef struct local_target {
    const ds_target_t *target; /* borrowed from the set */
    int index;                 /* its index in the set */
    char stmt[3][24];          /* by ds_write_kind_t: upsert, unlink, truncate ("" if none) */
    char batch[24];            /* its batch statement, "" if none (written row by row) */
    char settle[24];           /* its settle statement, "" if none or if an earlier target of
                                * the same links id (a shared "merge" name) settles them */
} local_target_t;

/* One write of one message, as this database runs it. */
typedef struct work {
    int msg;      /* index in the batch */
    int write;    /* index in the message's writes */
    int local;    /* index in local_targets */
    bool applied; /* the statement's answer (unlink and truncate: true) */
} work_t;

typedef enum op_kind {
    OP_ORIGIN_SETUP,
    OP_BEGIN,
    OP_WRITE,
    OP_BATCH_WRITE,
    OP_BOOKKEEPING,
    OP_FENCE, /* ds_offsets_put; work: the partition's index in the batch */
    OP_COMMIT,
    OP_ORIGIN_RESET,
} op_kind_t;

/* One statement sent in a pipeline, in order. */
typedef struct op {
    op_kind_t kind;
    int work; /* OP_WRITE: index in work; OP_BATCH_WRITE: index in targets */
} op_t;

/* One pipeline of statements: what was sent, what came back. */
typedef struct pipeline {
    ds_applier_t *a;
    int done;         /* ops whose results were read completely */
    bool has_result;  /* ops[done] produced a result already */
    bool synced;      /* the sync point's result arrived */
    bool broken;      /* the connection failed */
    int error_op;     /* the first op that failed, or -1 */
    char sqlstate[6]; /* its SQLSTATE */
    char error[1024]; /* its message */
} pipeline_t;

struct ds_applier {
    char *name;     /* the config's targets key */
    char *conninfo; /* never logged */
    char *origin;
    char *group_id;
    char *owner;             /* dualsync.offsets.owner of this process's claims */
    char *schema;            /* the bookkeeping schema (options.schema), NULL: "dualsync" */
    ds_mapping_set_t *set;   /* borrowed */
    bool row_by_row;         /* never use batch statements */
    bool dlq_retry;          /* the batches are re-driven dead letters (`dlq retry`) */
    double pending_timeout_s; /* apply.pending_timeout in seconds; 0: wait for ever */
    PGconn *conn;            /* NULL while disconnected */
    bool origin_held;        /* this session has the origin set up */
    bool catalog_checked;    /* the mappings were checked against this database's catalog */
    local_target_t *targets; /* the set's targets whose connection is this database */
    int ntargets;
    int *order;              /* targets' indexes, targets looked up in by others first */
    ds_strset_t *batched;    /* per target and batch: source keys given a batch row */
    ds_batchstmt_args_t args; /* a batch statement's parameters being built */
    ds_strset_t *pending;   /* "target␟topic␟key" of the rows in dualsync.pending */
    ds_strset_t *decided;   /* per batch: pending keys already decided (newest first) */
    ds_strset_t *truncated; /* per batch: "target␟topic" truncated later in the batch */
    ds_strset_t *dead_keys; /* "topic␟key" of the rows in dualsync.dead_letters: read
                             * with the offsets (after every connect and assignment), added to by each record put;
                             * a superset (keys whose records went, batches rolled back),
                             * which costs only a needless DELETE */
    uint8_t *msg_flags;     /* per message of the batch being applied: MSG_* below */
    int msg_flags_cap;
    work_t *work;           /* this batch's writes here */
    int nwork, work_cap;
    op_t *ops; /* the pipeline's statements */
    int nops, ops_cap;
    ds_buf_t key;        /* scratch for pending keys */
    ds_buf_t key_text;   /* scratch: a message key as a C string (libpq's text params) */
    ds_buf_t value_text; /* scratch: a message value as a C string */
    ds_batch_t *sent_batch; /* the batch whose writes ds_applier_send() sent, or NULL */
    pipeline_t sent;        /* that pipeline, synced, its results not read yet */
    bool sent_set_based;    /* its writes were batch statements */
    uint64_t (*written)[3]; /* per target of the set and ds_write_kind_t: statements that wrote,
                             * as stats->writes counts them (kept across reconnects) */
    char *gate_tables;      /* this database's target tables, a text[] literal for ds_gate;
                             * NULL when not gated (the replay's own applier) */
};

/* What this database decided about a message of the batch being applied. */
#define MSG_SUPERSEDED 1 /* dlq retry: its record is gone, a newer change was applied */
#define MSG_DEAD       2 /* a write of it became a dead letter here (slow path) */
#define MSG_CHECKED    4 /* dlq retry: drop_superseded() found its record */

static void drop_sent(ds_applier_t *a);
typedef enum run_result run_result_t;
static ds_applier_status_t slow_failure(ds_applier_t *a, run_result_t rr, const char *what,
                                        const char *message, char *errstr, size_t errstr_size);

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
static void count_written(ds_applier_t *a, ds_batch_t *batch, int i)
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

static bool lost(const ds_applier_t *a)
{
    return !a->conn || PQstatus(a->conn) != CONNECTION_OK;
}

bool ds_applier_connected(const ds_applier_t *a)
{
    return !lost(a);
}

bool ds_applier_probe(ds_applier_t *a)
{
    struct pollfd pfd;

    if (lost(a))
        return false;
    /* A server that shuts down or ends the session says so (an error message, then EOF):
     * the socket turns readable. Reading it now lets libpq notice without a query; whatever
     * else is there (results of writes in flight) stays buffered for the applier. */
    pfd.fd = PQsocket(a->conn);
    pfd.events = POLLIN;
    pfd.revents = 0;
    if (pfd.fd >= 0 && poll(&pfd, 1, 0) > 0)
        PQconsumeInput(a->conn);
    return !lost(a);
}

/* "target␟topic" or "target␟topic␟key" into a->key. */
static void make_key(ds_applier_t *a, const char *target, const char *topic, const char *key,
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
static void make_partition_key(ds_applier_t *a, const char *target, const ds_batch_msg_t *m)
{
    make_key(a, target, m->topic, NULL, 0);
    ds_buf_appendf(&a->key, "%c%d", KEY_SEP, (int)m->partition);
}

/* The message's key as stored in dualsync.pending (source_key is NOT NULL). */
static const char *source_key(const ds_batch_msg_t *m, size_t *len)
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
static const char *cstr(ds_buf_t *buf, const char *s, size_t len)
{
    ds_buf_reset(buf);
    ds_buf_append(buf, s, len);
    return buf->data ? buf->data : "";
}

static int local_index(const ds_applier_t *a, const ds_target_t *target)
{
    for (int i = 0; i < a->ntargets; i++) {
        if (a->targets[i].target == target)
            return i;
    }
    return -1;
}

static const char *statement_of(const ds_applier_t *a, int local, ds_write_kind_t kind)
{
    const char *name = a->targets[local].stmt[kind];

    return name[0] ? name : NULL;
}

enum run_result {
    RUN_OK,
    RUN_SQL_ERROR, /* the statement failed: sqlstate and message say why */
    RUN_LOST,      /* the connection is gone */
};

/*
 * Runs one statement (prepared when @p prepared) and waits. On RUN_OK *out (when given)
 * receives the result, which the caller clears.
 */
static run_result_t run(ds_applier_t *a, const char *stmt, bool prepared, int nparams,
                        const char *const *params, PGresult **out, char *sqlstate, char *message,
                        size_t message_size)
{
    PGresult *r;
    ExecStatusType status;

    if (out)
        *out = NULL;
    sqlstate[0] = '\0';
    if (lost(a)) {
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
    return lost(a) ? RUN_LOST : RUN_SQL_ERROR;
}

/* Runs a statement whose failure is never expected; false with errstr naming the target. */
static ds_applier_status_t run_or_fail(ds_applier_t *a, const char *stmt, bool prepared,
                                       int nparams, const char *const *params, PGresult **out,
                                       const char *what, char *errstr, size_t errstr_size)
{
    char sqlstate[6], message[1024];

    switch (run(a, stmt, prepared, nparams, params, out, sqlstate, message, sizeof(message))) {
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
static bool answer_applied(const PGresult *r)
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
static ds_applier_status_t origin_setup_failed(ds_applier_t *a, const char *sqlstate,
                                               const char *message, char *errstr,
                                               size_t errstr_size)
{
    if (lost(a)) {
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

static ds_applier_status_t origin_setup(ds_applier_t *a, char *errstr, size_t errstr_size)
{
    const char *params[1] = {a->origin};
    char sqlstate[6], message[1024];

    if (a->origin_held)
        return DS_APPLIER_OK;
    if (run(a, "ds_origin_setup", true, 1, params, NULL, sqlstate, message, sizeof(message)) ==
        RUN_OK) {
        a->origin_held = true;
        return DS_APPLIER_OK;
    }
    return origin_setup_failed(a, sqlstate, message, errstr, errstr_size);
}

/* Leaves the session clean after a failure: no transaction, no origin, not in a pipeline. */
static void recover(ds_applier_t *a)
{
    char sqlstate[6], message[1024];

    if (lost(a))
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
        run(a, "ROLLBACK", false, 0, NULL, NULL, sqlstate, message, sizeof(message));
    if (a->origin_held && run(a, "ds_origin_reset", true, 0, NULL, NULL, sqlstate, message,
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
        switch (run(a, "SELECT pg_catalog.pg_replication_origin_create($1)", false, 1, params, NULL,
                    sqlstate, message, sizeof(message))) {
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
                return origin_setup_failed(a, sqlstate, message, errstr, errstr_size);
        }
    }
    /* Take it once now, so a missing privilege is reported at start, not at the first
     * change. Held elsewhere is fine: the privilege was checked before that. */
    if (run(a, "ds_origin_setup", true, 1, params, NULL, sqlstate, message, sizeof(message)) !=
        RUN_OK) {
        st = origin_setup_failed(a, sqlstate, message, errstr, errstr_size);
        return st == DS_APPLIER_RETRY && !lost(a) ? DS_APPLIER_OK : st;
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
        st = lost(a) ? DS_APPLIER_RETRY : DS_APPLIER_FAILED;
    }
    PQclear(r);
    return st;
}

/* Prepares the batch statement of @p lt (none: the target is written row by row). */
static ds_applier_status_t prepare_batch(ds_applier_t *a, local_target_t *lt, char *errstr,
                                         size_t errstr_size)
{
    char name[24], message[1024];

    lt->batch[0] = '\0';
    if (a->row_by_row)
        return DS_APPLIER_OK;
    snprintf(name, sizeof(name), "ds_b%d", lt->index);
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
    return lost(a) ? DS_APPLIER_RETRY : DS_APPLIER_FAILED;
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

static ds_applier_status_t prepare_all(ds_applier_t *a, char *errstr, size_t errstr_size)
{
    int n = ds_mapping_set_ntargets(a->set);
    ds_applier_status_t st;

    free(a->targets);
    a->ntargets = 0;
    if (!(a->targets = calloc((size_t)n + 1, sizeof(*a->targets)))) {
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
        local_target_t *lt;
        const char *sql[3];
        int nparams[3];

        if (strcmp(t->connection, a->name) != 0)
            continue;
        lt = &a->targets[a->ntargets++];
        lt->target = t;
        lt->index = i;
        sql[DS_WRITE_UPSERT] = t->write_sql;
        nparams[DS_WRITE_UPSERT] = t->write_nparams;
        sql[DS_WRITE_UNLINK] = t->unlink_sql;
        nparams[DS_WRITE_UNLINK] = t->unlink_nparams;
        sql[DS_WRITE_TRUNCATE] = t->truncate_sql;
        nparams[DS_WRITE_TRUNCATE] = t->truncate_nparams;
        for (int k = 0; k < 3; k++) {
            static const char prefix[3] = {'w', 'u', 't'};

            if (!sql[k])
                continue;
            snprintf(lt->stmt[k], sizeof(lt->stmt[k]), "ds_%c%d", prefix[k], i);
            st = prepare(a, lt->stmt[k], sql[k], nparams[k], errstr, errstr_size);
            if (st != DS_APPLIER_OK)
                return st;
        }
        if ((st = prepare_batch(a, lt, errstr, errstr_size)) != DS_APPLIER_OK)
            return st;
        if ((st = prepare_settle(a, lt, errstr, errstr_size)) != DS_APPLIER_OK)
            return st;
    }
    if (!order_targets(a) || !list_gate_tables(a)) {
        ds_fail(errstr, errstr_size, "out of memory");
        return DS_APPLIER_FAILED;
    }
    return DS_APPLIER_OK;
}

/* "topic␟key" into a->key: a source key as dualsync.dead_letters groups them. */
static void make_dead_key(ds_applier_t *a, const char *topic, const char *key, size_t key_len)
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

static ds_applier_status_t load_pending_keys(ds_applier_t *a, char *errstr, size_t errstr_size)
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
        rr = run(a, sql, false, 0, NULL, NULL, sqlstate, message, sizeof(message));
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

ds_applier_status_t ds_applier_connect(ds_applier_t *a, char *errstr, size_t errstr_size)
{
    static const char *const keywords[] = {"dbname", "fallback_application_name", NULL};
    const char *values[] = {a->conninfo, "dualsync-apply", NULL};
    ds_applier_status_t st;

    drop_sent(a);

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
            return lost(a) ? DS_APPLIER_RETRY : DS_APPLIER_INVALID;
        a->catalog_checked = true;
    }
    if (st == DS_APPLIER_OK)
        st = prepare_all(a, errstr, errstr_size);
    if (st == DS_APPLIER_OK)
        st = ensure_origin(a, errstr, errstr_size);
    if (st == DS_APPLIER_OK)
        st = load_pending_keys(a, errstr, errstr_size);
    return st;
}

ds_applier_status_t ds_applier_read_offsets(ds_applier_t *a, ds_offsets_t *offsets, int db,
                                            const ds_topic_partition_t *parts, int nparts,
                                            char *errstr, size_t errstr_size)
{
    const char *params[1] = {a->group_id};
    PGresult *r = NULL;
    ds_applier_status_t st;

    drop_sent(a);
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
    drop_sent(a);
    for (int i = 0; i < nparts; i++) {
        char partition[16];
        const char *params[4] = {a->group_id, parts[i].topic, partition, a->owner};
        PGresult *r = NULL;
        ds_applier_status_t st;
        int64_t next, generation;
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
        PQclear(r);
        if (!ds_offsets_set(offsets, db, parts[i].topic, parts[i].partition, next) ||
            !ds_offsets_set_generation(offsets, db, parts[i].topic, parts[i].partition,
                                       generation)) {
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
    ds_applier_status_t st = load_pending_keys(a, errstr, errstr_size);

    return st == DS_APPLIER_OK ? load_dead_keys(a, errstr, errstr_size) : st;
}

/* ---------------------------------------------------------------------------------------------
 * The pipeline
 * ------------------------------------------------------------------------------------------- */


static bool pl_begin(pipeline_t *p, ds_applier_t *a)
{
    memset(p, 0, sizeof(*p));
    p->a = a;
    p->error_op = -1;
    a->nops = 0;
    if (lost(a) || !PQenterPipelineMode(a->conn) || PQsetnonblocking(a->conn, 1) != 0) {
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
        a->work[op->work].applied = answer_applied(r);
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
        if (lost(p->a))
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
static bool pl_send(pipeline_t *p, op_kind_t kind, int work, const char *stmt, bool prepared,
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

/* Ends what the pipeline sends: the sync point, flushed as far as the socket takes it. */
static void pl_sync(pipeline_t *p)
{
    PGconn *conn = p->a->conn;

    if (!p->broken && !PQpipelineSync(conn)) {
        p->broken = true;
        snprintf(p->error, sizeof(p->error), "%s", ds_pg_error(conn));
    }
    pl_pump(p, false);
}

/* Reads every result up to the sync point, leaves pipeline mode. */
static void pl_wait(pipeline_t *p)
{
    PGconn *conn = p->a->conn;

    pl_pump(p, true);
    if (!p->broken) {
        PQexitPipelineMode(conn);
        PQsetnonblocking(conn, 0);
    }
}

/* Ends the pipeline: sync, read every result, leave pipeline mode. */
static void pl_finish(pipeline_t *p)
{
    pl_sync(p);
    pl_wait(p);
}

/* ---------------------------------------------------------------------------------------------
 * Batches
 * ------------------------------------------------------------------------------------------- */

/* Collects, in order, the writes of the batch this database must run. */
static bool collect_work(ds_applier_t *a, int db, ds_batch_t *batch, const ds_offsets_t *offsets)
{
    a->nwork = 0;
    for (int i = 0; i < ds_batch_count(batch); i++) {
        ds_batch_msg_t *m = ds_batch_at(batch, i);

        if (m->error ||
            ds_offsets_applied(offsets, db, m->kafka.topic, m->kafka.partition, m->kafka.offset))
            continue;
        for (int w = 0; w < m->nwrites; w++) {
            const ds_batch_write_t *bw = &m->writes[w];
            int local;

            if (strcmp(bw->target->connection, a->name) != 0)
                continue;
            if (m->only_target && strcmp(bw->target->id, m->only_target) != 0)
                continue;
            local = local_index(a, bw->target);
            if (local < 0 || !statement_of(a, local, bw->kind))
                continue; /* not prepared: the mapping gives no statement for that kind */
            if (a->nwork == a->work_cap) {
                int cap = a->work_cap ? a->work_cap * 2 : 1024;
                work_t *work = realloc(a->work, (size_t)cap * sizeof(*work));

                if (!work)
                    return false;
                a->work = work;
                a->work_cap = cap;
            }
            a->work[a->nwork].msg = i;
            a->work[a->nwork].write = w;
            a->work[a->nwork].local = local;
            a->work[a->nwork].applied = true;
            a->nwork++;
        }
    }
    return true;
}

static void format_int(char *buf, size_t size, int64_t v)
{
    snprintf(buf, size, "%" PRId64, v);
}

/*
 * Whether every write of the batch has a batch form (mapping.h, "Batches"): a batch
 * statement for its target, not a truncate, no kept TOASTed value, no counted copy, the
 * target's topic.
 */
static bool batch_fits(const ds_applier_t *a, ds_batch_t *batch)
{
    if (a->nwork == 0)
        return false;
    for (int i = 0; i < a->nwork; i++) {
        const work_t *w = &a->work[i];
        const local_target_t *lt = &a->targets[w->local];
        const ds_batch_write_t *bw = &ds_batch_at(batch, w->msg)->writes[w->write];

        if (!lt->batch[0] || bw->kind == DS_WRITE_TRUNCATE)
            return false;
        if (!lt->target->in_place && (bw->nparams < 3 || !bw->params[1] || !bw->params[2]))
            return false;
        /* Identical source rows sharing a key count copies, one change at a time. */
        if (ds_mapping_write_counts_copies(lt->target, bw->kind, (const char *const *)bw->params,
                                           bw->nparams))
            return false;
        if (bw->kind != DS_WRITE_UPSERT)
            continue;
        for (int k = 0; k < lt->target->nkeep_params; k++) {
            const char *keep = bw->params[lt->target->keep_params[k] - 1];

            if (keep && strcmp(keep, "true") == 0)
                return false;
        }
    }
    return true;
}

/*
 * Where the segment of target @p local's writes starting at a->work[from] ends: before the
 * first write of a source key the segment already holds. Row by row, a key's later change
 * sees its earlier one's effect (and a trigger sees both); in one set-based statement it
 * would not. Returns -1 when out of memory.
 */
static int batch_segment_end(ds_applier_t *a, ds_batch_t *batch, int local, int from)
{
    int i;

    ds_strset_clear(a->batched);
    for (i = from; i < a->nwork; i++) {
        const work_t *w = &a->work[i];
        size_t key_len;
        const char *key;

        if (w->local != local)
            continue;
        key = source_key(ds_batch_at(batch, w->msg), &key_len);
        if (ds_strset_contains(a->batched, key, key_len))
            break;
        if (!ds_strset_add(a->batched, key, key_len))
            return -1;
    }
    return i;
}

/* Sends target @p local's batch statement for its writes among a->work[from, to). */
static void send_batch_segment(ds_applier_t *a, pipeline_t *p, ds_batch_t *batch, int local,
                               int from, int to)
{
    const ds_target_t *t = a->targets[local].target;
    const char *topic = NULL;

    ds_batchstmt_begin(&a->args, t);
    for (int i = from; i < to; i++) {
        const work_t *w = &a->work[i];
        const ds_batch_write_t *bw;

        if (w->local != local)
            continue;
        bw = &ds_batch_at(batch, w->msg)->writes[w->write];
        if (!t->in_place)
            topic = bw->params[1];
        ds_batchstmt_add(&a->args, (const char *const *)bw->params, bw->nparams, i,
                         bw->kind == DS_WRITE_UPSERT);
    }
    if (a->args.nrows > 0)
        pl_send(p, OP_BATCH_WRITE, local, a->targets[local].batch, true, t->write_nparams + 2,
                ds_batchstmt_finish(&a->args, topic));
}

/*
 * Sends the batch's writes as batch statements: target after target in dependency order,
 * each target's writes in as few statements as its repeated source keys allow.
 */
static void send_batch_writes(ds_applier_t *a, pipeline_t *p, ds_batch_t *batch)
{
    for (int o = 0; o < a->ntargets && !p->broken; o++) {
        int local = a->order[o];

        for (int from = 0, to; from < a->nwork && !p->broken; from = to) {
            if ((to = batch_segment_end(a, batch, local, from)) < 0) {
                p->broken = true;
                snprintf(p->error, sizeof(p->error), "out of memory");
                break;
            }
            send_batch_segment(a, p, batch, local, from, to);
        }
    }
}

/*
 * Whether target @p local's rows written by @p batch need settling: it wrote to the target,
 * and one of its writes has a source row that may share its target row with another (the
 * evaluator tells: ds_target_write_t.sole_source).
 */
static bool needs_settling(ds_applier_t *a, ds_batch_t *batch, int local)
{
    for (int i = 0; i < a->nwork; i++) {
        const work_t *w = &a->work[i];

        if (w->local == local && !ds_batch_at(batch, w->msg)->writes[w->write].sole_source)
            return true;
    }
    return false;
}

/*
 * Sends (pipeline) or runs, before COMMIT and after every write, the settling of the target
 * rows the transaction's statements linked or unlinked (mapping_sql.c, "Settling"): for each
 * target, in the order batches write them (the same in every process), lock its touched keys,
 * then settle them on a snapshot taken once the locks are held.
 */
static bool send_settle(ds_applier_t *a, pipeline_t *p, ds_batch_t *batch, char *sqlstate,
                        char *message, size_t message_size, run_result_t *result)
{
    for (int o = 0; o < a->ntargets; o++) {
        const local_target_t *lt = &a->targets[a->order[o]];
        const char *params[1] = {lt->target->links_id};

        if (!lt->settle[0] || (batch && !needs_settling(a, batch, a->order[o])))
            continue;
        if (p) {
            if (!pl_send(p, OP_BOOKKEEPING, -1, "ds_lock_touched", true, 1, params) ||
                !pl_send(p, OP_BOOKKEEPING, -1, lt->settle, true, 1, params))
                return false;
        } else if ((*result = run(a, "ds_lock_touched", true, 1, params, NULL, sqlstate, message,
                                  message_size)) != RUN_OK ||
                   (*result = run(a, lt->settle, true, 1, params, NULL, sqlstate, message,
                                  message_size)) != RUN_OK) {
            return false;
        }
    }
    return true;
}

/* The gate (DS_GATE_SESSION_SQL), at the start of a transaction run statement by statement. */
static run_result_t run_gate(ds_applier_t *a, char *sqlstate, char *message, size_t message_size)
{
    if (!a->gate_tables)
        return RUN_OK;
    return run(a, "ds_gate", true, 1, (const char *const *)&a->gate_tables, NULL, sqlstate,
               message, message_size);
}

/* A failed settle or gate as a status: transient ones (a deadlock with another process
 * settling, a table rebuilt in place by replay) roll the batch back to be tried again. */
static ds_applier_status_t retry_or_fail(ds_applier_t *a, run_result_t rr, const char *sqlstate,
                                         const char *message, char *errstr, size_t errstr_size)
{
    if (rr == RUN_SQL_ERROR && transient_sqlstate(sqlstate)) {
        ds_fail(errstr, errstr_size, "target \"%s\": %s; the batch is rolled back and tried "
                "again", a->name, message);
        recover(a);
        return DS_APPLIER_RETRY;
    }
    return slow_failure(a, rr, "settling merged rows or checking the replay gate", message, errstr,
                        errstr_size);
}

/* Whether the batch moves this database's position in any partition. */
static bool moves_offsets(const ds_applier_t *a, int db, const ds_batch_t *batch,
                          const ds_offsets_t *offsets)
{
    for (int i = 0; i < ds_batch_npartitions(batch); i++) {
        const ds_batch_partition_t *p = ds_batch_partition(batch, i);

        if (p->last_offset + 1 > ds_offsets_get(offsets, db, p->topic, p->partition))
            return true;
    }
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * The fence
 *
 * Several apply processes share a group's partitions, and Kafka cannot stop one that lost a
 * partition from writing it: a process frozen past its session timeout (SIGSTOP, a stalled VM,
 * a long pause) does not know that the group gave its partitions to another, and when it
 * resumes it would commit the batch it had in flight over the newer changes the new owner
 * applied meanwhile. So the target database, where the rows are, decides who owns a partition:
 *
 *   - on assignment, before anything of a partition is read, the process claims the
 *     partition's dualsync.offsets row in every target database (ds_applier_claim): one
 *     autocommit statement that raises the row's generation, records the owner, and returns
 *     the new generation with next_offset, where reading resumes;
 *   - every transaction that moves a partition's offset ends, before COMMIT, with
 *     UPDATE ... WHERE generation = <its claim> (ds_offsets_put). Finding no row means another
 *     process claimed the partition since: the statement fails (1 / count(*)), so nothing of
 *     the transaction can commit. It is rolled back whole and the process drops what it holds
 *     of the partition (DS_APPLIER_FENCED).
 *
 * Both statements lock the row, which orders them. A stale transaction whose UPDATE came
 * first holds the lock until it commits: the claim waits for it and returns the next_offset
 * it wrote, so the new owner resumes after that batch. A claim that came first leaves a
 * generation the stale UPDATE does not match (under READ COMMITTED the UPDATE re-reads the
 * row once the claim commits). Either way no change is applied twice, or over a newer one.
 * The writes before the UPDATE need no such lock: nothing of them is visible before COMMIT,
 * and a target row both processes write is serialized by its own row lock (the new owner's
 * write waits for the stale transaction to roll back).
 *
 * The offset is set, not maximized: with one writer per partition at a time, a smaller value
 * than the row's would be a bug to see, not to hide.
 *
 * Pending retries (ds_applier_retry_pending) touch only the pending rows of partitions the
 * process holds, and first take their offsets rows FOR SHARE with the same check
 * (ds_offsets_hold), so a claim waits for the retry or the retry sees the claim.
 * ------------------------------------------------------------------------------------------- */

/* Marks the partition lost in this database and says so in errstr. */
static ds_applier_status_t fenced(ds_applier_t *a, ds_offsets_t *offsets, int db,
                                  const char *topic, int32_t partition, char *errstr,
                                  size_t errstr_size)
{
    int64_t generation = ds_offsets_generation(offsets, db, topic, partition);

    if (!ds_offsets_set_generation(offsets, db, topic, partition, DS_GENERATION_NONE)) {
        ds_fail(errstr, errstr_size, "out of memory");
        return DS_APPLIER_FAILED;
    }
    if (generation == DS_GENERATION_NONE)
        ds_fail(errstr, errstr_size,
                "target \"%s\": %s [%d] is not assigned to this apply process; its changes "
                "are not written here",
                a->name, topic, (int)partition);
    else
        ds_fail(errstr, errstr_size,
                "target \"%s\": %s [%d] was claimed by another apply process since this one "
                "claimed it (generation %" PRId64 " in dualsync.offsets); the transaction is "
                "rolled back and nothing of the partition is committed by this process: its new "
                "owner applies it from the offset stored there",
                a->name, topic, (int)partition, generation);
    return DS_APPLIER_FENCED;
}

/* The first partition of the batch that moves here without a claim of this process, or -1. */
static int unclaimed_partition(int db, const ds_batch_t *batch, const ds_offsets_t *offsets)
{
    for (int i = 0; i < ds_batch_npartitions(batch); i++) {
        const ds_batch_partition_t *bp = ds_batch_partition(batch, i);

        if (bp->last_offset + 1 > ds_offsets_get(offsets, db, bp->topic, bp->partition) &&
            ds_offsets_generation(offsets, db, bp->topic, bp->partition) == DS_GENERATION_NONE)
            return i;
    }
    return -1;
}

/*
 * Sends (pipeline) or runs the offsets rows of the batch, fenced. In the slow path a fenced
 * partition sets *fenced_part to its index in the batch (-1 otherwise).
 */
static bool send_offsets(ds_applier_t *a, pipeline_t *p, int db, const ds_batch_t *batch,
                         const ds_offsets_t *offsets, char *sqlstate, char *message,
                         size_t message_size, run_result_t *result, int *fenced_part)
{
    *fenced_part = -1;
    for (int i = 0; i < ds_batch_npartitions(batch); i++) {
        const ds_batch_partition_t *bp = ds_batch_partition(batch, i);
        char partition[16], next[24], generation[24];
        const char *params[5] = {a->group_id, bp->topic, partition, next, generation};

        if (bp->last_offset + 1 <= ds_offsets_get(offsets, db, bp->topic, bp->partition))
            continue;
        snprintf(partition, sizeof(partition), "%d", (int)bp->partition);
        format_int(next, sizeof(next), bp->last_offset + 1);
        format_int(generation, sizeof(generation),
                   ds_offsets_generation(offsets, db, bp->topic, bp->partition));
        if (p) {
            if (!pl_send(p, OP_FENCE, i, "ds_offsets_put", true, 5, params))
                return false;
        } else if ((*result = run(a, "ds_offsets_put", true, 5, params, NULL, sqlstate, message,
                                  message_size)) != RUN_OK) {
            if (*result == RUN_SQL_ERROR && strcmp(sqlstate, SQLSTATE_FENCED) == 0)
                *fenced_part = i;
            return false;
        }
    }
    return true;
}

static bool advance_offsets(ds_offsets_t *offsets, int db, const ds_batch_t *batch)
{
    for (int i = 0; i < ds_batch_npartitions(batch); i++) {
        const ds_batch_partition_t *bp = ds_batch_partition(batch, i);

        if (!ds_offsets_advance(offsets, db, bp->topic, bp->partition, bp->last_offset + 1))
            return false;
    }
    return true;
}

/* The params of a pending row for message m and target id. */
typedef struct pending_params {
    char partition[16];
    char offset[24];
    const char *values[7];
} pending_params_t;

static void pending_put_params(ds_applier_t *a, pending_params_t *pp, const char *target,
                               const ds_batch_msg_t *m, const char *error)
{
    size_t key_len;
    const char *key = source_key(m, &key_len);

    snprintf(pp->partition, sizeof(pp->partition), "%d", (int)m->partition);
    format_int(pp->offset, sizeof(pp->offset), m->offset);
    pp->values[0] = target;
    pp->values[1] = m->topic;
    pp->values[2] = pp->partition;
    pp->values[3] = pp->offset;
    pp->values[4] = cstr(&a->key_text, key, key_len); /* JSON text: no NUL inside */
    pp->values[5] = m->value_text ? cstr(&a->value_text, m->value_text, m->value_len) : NULL;
    pp->values[6] = error;
}

/*
 * Decides, newest write first, what dualsync.pending must say after this batch: a key whose
 * last write was not applied waits there (with that message); a key whose last write was
 * applied no longer waits; a truncate makes every earlier change of its topic moot.
 */
static bool send_pending_decisions(ds_applier_t *a, pipeline_t *p, ds_batch_t *batch,
                                   ds_applier_stats_t *stats, bool *touched)
{
    ds_strset_clear(a->decided);
    ds_strset_clear(a->truncated);
    *touched = false;
    for (int i = a->nwork - 1; i >= 0; i--) {
        const work_t *w = &a->work[i];
        const ds_batch_msg_t *m = ds_batch_at(batch, w->msg);
        const ds_batch_write_t *bw = &m->writes[w->write];
        const char *target = bw->target->id;
        size_t key_len;
        const char *key = source_key(m, &key_len);
        char offset[24];

        make_partition_key(a, target, m);
        if (ds_strset_contains(a->truncated, a->key.data, a->key.len))
            continue;
        format_int(offset, sizeof(offset), m->offset);
        if (bw->kind == DS_WRITE_TRUNCATE) {
            char partition[16];
            const char *params[4] = {target, m->topic, offset, partition};

            snprintf(partition, sizeof(partition), "%d", (int)m->partition);
            if (!ds_strset_add(a->truncated, a->key.data, a->key.len))
                return false;
            if (ds_strset_count(a->pending) > 0) {
                *touched = true;
                if (!pl_send(p, OP_BOOKKEEPING, -1, "ds_pending_del_topic", true, 4, params))
                    return false;
            }
            continue;
        }
        make_key(a, target, m->topic, key, key_len);
        if (ds_strset_contains(a->decided, a->key.data, a->key.len))
            continue;
        if (!ds_strset_add(a->decided, a->key.data, a->key.len))
            return false;
        if (!w->applied) {
            pending_params_t pp;

            pending_put_params(a, &pp, target, m, MISSING_PARENT);
            *touched = true;
            stats->pending_added++;
            ds_debug("target \"%s\": %s [%d] @%" PRId64 " waits for its parent (%s)", a->name,
                     m->topic, (int)m->partition, m->offset, target);
            if (!pl_send(p, OP_BOOKKEEPING, -1, "ds_pending_put", true, 7, pp.values))
                return false;
        } else if (ds_strset_contains(a->pending, a->key.data, a->key.len)) {
            const char *params[4] = {target, m->topic, cstr(&a->key_text, key, key_len), offset};

            *touched = true;
            if (!pl_send(p, OP_BOOKKEEPING, -1, "ds_pending_del", true, 4, params))
                return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Dead-letter records
 *
 * `dlq retry` must never write a dead letter over a newer change of the same source row
 * (a reservation dead-lettered as 'ASAP', then applied as '3:00 PM': retrying the first after
 * the mapping is fixed would put the morning back). Whether a newer change was applied since
 * is known only to the target database, so each database keeps, in dualsync.dead_letters,
 * one row per dead letter it moved past (source topic, key, target, partition, offset),
 * written in the transaction that stores the offsets past it. The newest change of that
 * source key applied later (written, parked in dualsync.pending, dead-lettered itself, or a
 * truncate of the topic) deletes the rows of older offsets in its own transaction; a retry
 * writes a dead letter only while its row is still there, and deletes it once written.
 *
 * Why this and not a position per link row or per source key: those would cost a write for
 * every change applied, to answer a question asked only about dead letters. Here the hot
 * path pays one hash lookup per change while dead letters are outstanding (nothing at all
 * when there are none), and a DELETE only for a change of a source key that has one. Nor
 * reading the source topic at retry time for a later message of the key: retention may have
 * removed it, and apply could commit a newer change between the scan and the retry's write.
 * The retry checks the rows while it holds the replication origin, which every apply
 * transaction takes first (the origin is held by one session of the cluster at a time), so
 * no apply transaction can commit between the check and the retry's writes; and, should an
 * apply run under another origin, the retry's transaction deletes the rows it checked and
 * does not commit when one is gone (ds_dead_done_checked): it is redone, and the check then
 * finds the dead letter superseded.
 *
 * apply keeps the keys that have records in memory (a->dead_keys), so it must see every
 * record of its partitions' keys: records are put only by apply itself, and by `dlq retry`
 * for a dead letter that has a record already (it failed again, for the same target or, a
 * change that could not be mapped at all, for one target), whose key apply knows. Dead
 * letters `dlq retry` makes of others (written before records existed) are published again
 * without "recorded", and it leaves dualsync.pending to apply. The set is read again on every
 * partition assignment, so a partition that moves between apply processes brings its keys.
 *
 * Offsets are compared within a key's partition: a source key stays in one partition (its
 * order depends on it anyway).
 * ------------------------------------------------------------------------------------------- */

/* Runs one bookkeeping statement: sent in the pipeline @p p, or at once when @p p is NULL. */
static bool bookkeep(ds_applier_t *a, pipeline_t *p, const char *stmt, int nparams,
                     const char *const *params, char *sqlstate, char *message,
                     size_t message_size, run_result_t *result)
{
    if (p)
        return pl_send(p, OP_BOOKKEEPING, -1, stmt, true, nparams, params);
    *result = run(a, stmt, true, nparams, params, NULL, sqlstate, message, message_size);
    return *result == RUN_OK;
}

/* What writing the record of @p m's dead letter for @p target is, for its error message. */
static const char *dead_record_what(char *buf, size_t size, const ds_batch_msg_t *m,
                                    const char *target)
{
    snprintf(buf, size, "writing dualsync.dead_letters for %s [%d] @%" PRId64 " target %s",
             m->topic, (int)m->partition, m->offset, target ? target : "-");
    return buf;
}

/* Records the dead letter of @p m for @p target (NULL: the change as a whole). */
static bool put_dead_record(ds_applier_t *a, pipeline_t *p, const ds_batch_msg_t *m,
                            const char *target, const char *error, char *sqlstate, char *message,
                            size_t message_size, run_result_t *result)
{
    char partition[16], offset[24];
    size_t key_len;
    const char *key = source_key(m, &key_len);
    const char *params[6];

    make_dead_key(a, m->topic, key, key_len);
    if (!ds_strset_add(a->dead_keys, a->key.data, a->key.len)) {
        snprintf(message, message_size, "out of memory");
        *result = RUN_SQL_ERROR;
        return false;
    }
    snprintf(partition, sizeof(partition), "%d", (int)m->partition);
    format_int(offset, sizeof(offset), m->offset);
    params[0] = target ? target : "";
    params[1] = m->topic;
    params[2] = partition;
    params[3] = offset;
    params[4] = cstr(&a->key_text, key, key_len); /* JSON text: no NUL inside */
    params[5] = error;
    return bookkeep(a, p, "ds_dead_put", 6, params, sqlstate, message, message_size, result);
}

static bool truncates(const ds_batch_msg_t *m)
{
    for (int w = 0; w < m->nwrites; w++) {
        if (m->writes[w].kind == DS_WRITE_TRUNCATE)
            return true;
    }
    return false;
}

/* Whether the mappings rejected target @p target of @p m (NULL: none asked, false). */
static bool rejects(const ds_batch_msg_t *m, const char *target)
{
    for (int r = 0; target && r < m->nrejects; r++) {
        if (strcmp(m->rejects[r].target, target) == 0)
            return true;
    }
    return false;
}

/* Whether a dead letter made of @p m is recorded (see above). */
static bool records(const ds_applier_t *a, const ds_batch_msg_t *m)
{
    return !a->dlq_retry || m->recorded;
}

/*
 * The dead-letter records the batch changes in database @p db (pipeline @p p, or at once):
 * apply: a change of a source key with records supersedes the older ones, and a change that
 * could not be mapped is recorded; dlq retry: a dead letter written leaves, one that could
 * not be mapped again is recorded again. (Dead letters of the slow path and of
 * dualsync.pending are recorded where they are made.)
 */
static bool send_dead_records(ds_applier_t *a, pipeline_t *p, int db, ds_batch_t *batch,
                              const ds_offsets_t *offsets, char *sqlstate, char *message,
                              size_t message_size, run_result_t *result)
{
    bool watch = a->dlq_retry || ds_strset_count(a->dead_keys) > 0;

    for (int i = 0; i < ds_batch_count(batch); i++) {
        const ds_batch_msg_t *m = ds_batch_at(batch, i);
        uint8_t flags = i < a->msg_flags_cap ? a->msg_flags[i] : 0;
        size_t key_len;
        const char *key;
        char offset[24];

        if (m->skip || (!watch && !m->error && m->nrejects == 0) ||
            ds_offsets_applied(offsets, db, m->kafka.topic, m->kafka.partition, m->kafka.offset))
            continue;
        key = source_key(m, &key_len);
        if (a->dlq_retry) {
            if (flags & (MSG_SUPERSEDED | MSG_DEAD))
                continue; /* nothing written: its record is gone, or was just put again */
            if (!m->error && !rejects(m, m->only_target)) {
                const char *params[4] = {m->only_target ? m->only_target : "", m->topic,
                                         cstr(&a->key_text, key, key_len), offset};

                format_int(offset, sizeof(offset), m->offset);
                if (m->recorded &&
                    !bookkeep(a, p, flags & MSG_CHECKED ? "ds_dead_done_checked" : "ds_dead_done",
                              4, params, sqlstate, message, message_size, result))
                    return false;
                continue;
            }
        } else if (watch) {
            make_dead_key(a, m->topic, key, key_len);
            if (truncates(m)) {
                char partition[16];
                const char *params[3] = {m->topic, offset, partition};

                format_int(offset, sizeof(offset), m->offset);
                snprintf(partition, sizeof(partition), "%d", (int)m->partition);
                if (!bookkeep(a, p, "ds_dead_supersede_topic", 3, params, sqlstate, message,
                              message_size, result))
                    return false;
            } else if (ds_strset_contains(a->dead_keys, a->key.data, a->key.len)) {
                const char *params[3] = {m->topic, cstr(&a->key_text, key, key_len), offset};

                format_int(offset, sizeof(offset), m->offset);
                if (!bookkeep(a, p, "ds_dead_supersede", 3, params, sqlstate, message,
                              message_size, result))
                    return false;
            }
        }
        if (m->error && records(a, m)) {
            if (!put_dead_record(a, p, m, m->only_target, m->error, sqlstate, message,
                                 message_size, result))
                return false;
        }
        for (int r = 0; r < m->nrejects && records(a, m); r++) {
            const ds_batch_reject_t *rj = &m->rejects[r];

            if (m->only_target && strcmp(m->only_target, rj->target) != 0)
                continue;
            if (!put_dead_record(a, p, m, rj->target, rj->error, sqlstate, message,
                                 message_size, result))
                return false;
        }
    }
    return true;
}

/*
 * dlq retry: drops from a->work the dead letters this database has no record of any more (a
 * newer change of their source row was applied since: see above). Takes the replication
 * origin first and keeps it for the transaction that follows.
 */
static ds_applier_status_t drop_superseded(ds_applier_t *a, ds_batch_t *batch, char *errstr,
                                           size_t errstr_size)
{
    ds_applier_status_t st = origin_setup(a, errstr, errstr_size);
    int kept = 0, last = -1;

    if (st != DS_APPLIER_OK)
        return st;
    for (int i = 0; i < a->nwork; i++) {
        const work_t *w = &a->work[i];
        ds_batch_msg_t *m = ds_batch_at(batch, w->msg);

        if (w->msg != last && m->recorded && !(a->msg_flags[w->msg] & MSG_SUPERSEDED)) {
            size_t key_len;
            const char *key = source_key(m, &key_len);
            char offset[24], sqlstate[6], message[1024];
            const char *params[4] = {m->only_target ? m->only_target : "", m->topic, NULL, offset};
            PGresult *r = NULL;
            run_result_t rr;

            params[2] = cstr(&a->key_text, key, key_len);
            format_int(offset, sizeof(offset), m->offset);
            rr = run(a, "ds_dead_check", true, 4, params, &r, sqlstate, message, sizeof(message));
            if (rr != RUN_OK)
                return slow_failure(a, rr, "reading dualsync.dead_letters", message, errstr,
                                    errstr_size);
            a->msg_flags[w->msg] |= MSG_CHECKED;
            if (PQntuples(r) == 0) {
                a->msg_flags[w->msg] |= MSG_SUPERSEDED;
                m->superseded = true;
                ds_info("target \"%s\": dead letter %s [%d] @%" PRId64 " key %.*s%s%s: a newer "
                        "change of the same source row was applied since; superseded, not "
                        "written",
                        a->name, m->topic, (int)m->partition, m->offset, (int)key_len, key,
                        m->only_target ? " target " : "", m->only_target ? m->only_target : "");
            }
            PQclear(r);
        }
        last = w->msg;
        if (!(a->msg_flags[w->msg] & MSG_SUPERSEDED))
            a->work[kept++] = *w;
    }
    a->nwork = kept;
    return DS_APPLIER_OK;
}

typedef enum path_result {
    PATH_DONE,   /* committed */
    PATH_SLOW,   /* a statement failed: rolled back, redo message by message */
    PATH_STATUS, /* return the status given */
} path_result_t;

/*
 * Forgets writes sent by ds_applier_send() that nobody came to finish (the batch was given
 * up: its partitions revoked, apply stopping): their transaction must not commit, so the
 * pipeline is read to its end and rolled back.
 */
static void drop_sent(ds_applier_t *a)
{
    if (!a->sent_batch)
        return;
    a->sent_batch = NULL;
    if (!a->sent.broken)
        pl_wait(&a->sent);
    recover(a);
}

/*
 * Round trip 1 of the fast path, sent up to its sync point: origin setup, BEGIN, the writes
 * of a->work. Returns whether the writes went as batch statements.
 */
static bool send_writes(ds_applier_t *a, pipeline_t *p, ds_batch_t *batch)
{
    const char *origin_params[1] = {a->origin};
    bool set_based = false;

    if (pl_begin(p, a)) {
        if (!a->origin_held)
            pl_send(p, OP_ORIGIN_SETUP, -1, "ds_origin_setup", true, 1, origin_params);
        pl_send(p, OP_BEGIN, -1, "BEGIN", false, 0, NULL);
        if (a->gate_tables)
            pl_send(p, OP_BOOKKEEPING, -1, "ds_gate", true, 1,
                    (const char *const *)&a->gate_tables);
        if ((set_based = batch_fits(a, batch))) {
            send_batch_writes(a, p, batch);
        } else {
            for (int i = 0; i < a->nwork && !p->broken; i++) {
                const work_t *w = &a->work[i];
                const ds_batch_write_t *bw = &ds_batch_at(batch, w->msg)->writes[w->write];

                pl_send(p, OP_WRITE, i, statement_of(a, w->local, bw->kind), true, bw->nparams,
                        (const char *const *)bw->params);
            }
        }
        /* Deferred constraints are checked now rather than at COMMIT: the same check over
         * the same writes (nothing after this point writes to the targets), but in the
         * round trip the database works through while apply maps the next batch. */
        pl_send(p, OP_BOOKKEEPING, -1, "SET CONSTRAINTS ALL IMMEDIATE", false, 0, NULL);
        pl_sync(p);
    }
    return set_based;
}

/* With @p sent, round trip 1 was sent by ds_applier_send() (a->sent). */
static path_result_t fast_path(ds_applier_t *a, int db, ds_batch_t *batch, ds_offsets_t *offsets,
                               bool sent, const ds_applier_hooks_t *hooks,
                               ds_applier_stats_t *stats, ds_applier_status_t *status,
                               char *errstr, size_t errstr_size)
{
    pipeline_t p;
    bool touched = false, complete = false, set_based;
    uint64_t pending_before = stats->pending_added;

    /* Round trip 1: the writes. */
    if (sent) {
        p = a->sent;
        set_based = a->sent_set_based;
    } else {
        set_based = send_writes(a, &p, batch);
    }
    if (!p.broken)
        pl_wait(&p);
    if (p.broken) {
        ds_fail(errstr, errstr_size, "target \"%s\": connection lost: %s", a->name, p.error);
        *status = DS_APPLIER_RETRY;
        return PATH_STATUS;
    }
    if (p.error_op >= 0) {
        const op_t *op = &a->ops[p.error_op];

        recover(a);
        if (op->kind == OP_ORIGIN_SETUP) {
            *status = origin_setup_failed(a, p.sqlstate, p.error, errstr, errstr_size);
            return PATH_STATUS;
        }
        if (transient_sqlstate(p.sqlstate)) {
            /* A replay rebuilding a table in place (the gate), a deadlock: the batch again
             * later, not message by message. */
            ds_fail(errstr, errstr_size, "target \"%s\": %s; the batch is tried again", a->name,
                    p.error);
            *status = DS_APPLIER_RETRY;
            return PATH_STATUS;
        }
        if (op->kind == OP_WRITE) {
            const ds_batch_msg_t *m = ds_batch_at(batch, a->work[op->work].msg);

            ds_debug("target \"%s\": %s [%d] @%" PRId64 ": %s; redoing the batch message by "
                     "message",
                     a->name, m->kafka.topic, (int)m->kafka.partition, m->kafka.offset, p.error);
        } else if (op->kind == OP_BATCH_WRITE) {
            ds_debug("target \"%s\": batch statement of %s: %s; redoing the batch message by "
                     "message",
                     a->name, a->targets[op->work].target->id, p.error);
        }
        return PATH_SLOW;
    }

    /* Dead letters of this batch become durable before its offsets do. */
    if (hooks->before_commit && !hooks->before_commit(hooks->ctx, errstr, errstr_size)) {
        recover(a);
        *status = DS_APPLIER_FAILED;
        return PATH_STATUS;
    }

    /* Round trip 2: the bookkeeping and COMMIT. */
    if (pl_begin(&p, a)) {
        char sqlstate[6], message[8];
        run_result_t unused;
        int unused_part;

        complete = send_settle(a, &p, batch, sqlstate, message, sizeof(message), &unused) &&
                   send_pending_decisions(a, &p, batch, stats, &touched) &&
                   send_dead_records(a, &p, db, batch, offsets, sqlstate, message,
                                     sizeof(message), &unused) &&
                   send_offsets(a, &p, db, batch, offsets, sqlstate, message, sizeof(message),
                                &unused, &unused_part);
        /* Without all its bookkeeping the transaction must not commit. */
        if (complete) {
            pl_send(&p, OP_COMMIT, -1, "COMMIT", false, 0, NULL);
            pl_send(&p, OP_ORIGIN_RESET, -1, "ds_origin_reset", true, 0, NULL);
        }
        pl_finish(&p);
    }
    if (!complete && !p.broken) {
        stats->pending_added = pending_before;
        recover(a);
        ds_fail(errstr, errstr_size, "target \"%s\": out of memory", a->name);
        *status = DS_APPLIER_FAILED;
        return PATH_STATUS;
    }
    if (p.broken) {
        /* COMMIT may or may not have happened: the caller re-reads the offsets. */
        stats->pending_added = pending_before;
        ds_fail(errstr, errstr_size, "target \"%s\": connection lost while committing: %s", a->name,
                p.error);
        *status = DS_APPLIER_RETRY;
        return PATH_STATUS;
    }
    if (p.error_op >= 0 && a->ops[p.error_op].kind == OP_FENCE &&
        strcmp(p.sqlstate, SQLSTATE_FENCED) == 0) {
        const ds_batch_partition_t *bp = ds_batch_partition(batch, a->ops[p.error_op].work);

        stats->pending_added = pending_before;
        recover(a);
        *status = fenced(a, offsets, db, bp->topic, bp->partition, errstr, errstr_size);
        if (*status == DS_APPLIER_FENCED && touched) {
            char reload[512];

            /* The decisions sent were rolled back: what is pending is what the table says. */
            if (load_pending_keys(a, reload, sizeof(reload)) != DS_APPLIER_OK)
                ds_warning("%s", reload);
        }
        return PATH_STATUS;
    }
    if (p.error_op >= 0 && transient_sqlstate(p.sqlstate)) {
        /* A deadlock settling with another process (mapping_sql.c, "Settling"), typically:
         * the same batch again, not message by message. */
        stats->pending_added = pending_before;
        recover(a);
        ds_fail(errstr, errstr_size, "target \"%s\": %s; the batch is rolled back and tried "
                "again", a->name, p.error);
        *status = DS_APPLIER_RETRY;
        return PATH_STATUS;
    }
    if (p.error_op >= 0 && a->ops[p.error_op].kind != OP_ORIGIN_RESET) {
        /* A deferred constraint at COMMIT, typically: the slow path checks each message. */
        stats->pending_added = pending_before;
        ds_debug("target \"%s\": committing the batch failed: %s; redoing it message by message",
                 a->name, p.error);
        recover(a);
        return PATH_SLOW;
    }
    recover(a); /* after a failed origin reset only */
    for (int i = 0; i < a->nwork; i++) {
        stats->writes += a->work[i].applied;
        count_written(a, batch, i);
    }
    stats->transactions++;
    stats->set_based += set_based;
    if (!advance_offsets(offsets, db, batch)) {
        ds_fail(errstr, errstr_size, "out of memory");
        *status = DS_APPLIER_FAILED;
        return PATH_STATUS;
    }
    if (touched)
        *status = load_pending_keys(a, errstr, errstr_size);
    else
        *status = DS_APPLIER_OK;
    return *status == DS_APPLIER_OK ? PATH_DONE : PATH_STATUS;
}

/* Turns a run() failure in the slow path into a status. */
static ds_applier_status_t slow_failure(ds_applier_t *a, run_result_t rr, const char *what,
                                        const char *message, char *errstr, size_t errstr_size)
{
    ds_fail(errstr, errstr_size, "target \"%s\": %s: %s", a->name, what, message);
    if (rr == RUN_LOST)
        return DS_APPLIER_RETRY;
    recover(a);
    return DS_APPLIER_FAILED;
}

/*
 * Why deferred constraints are checked at the end of each message, not at each statement:
 * one change may write several targets that reference each other through a DEFERRABLE
 * INITIALLY DEFERRED foreign key (clinic: a new phone number moves a clinic patient to a new
 * global patient, and the old global row, left without a link, is deleted a statement before
 * the clinic row stops pointing to it). Each statement alone breaks the reference; the change
 * as a whole does not. Checked per statement, such a change could never be applied in the
 * slow path or from dualsync.pending. So the writes of a message run with constraints
 * deferred inside its savepoint, and SET CONSTRAINTS ALL IMMEDIATE at the end of the message
 * fires the checks it queued (failing inside the savepoint, which undoes just this message);
 * SET CONSTRAINTS ALL DEFERRED then defers again for the next message. A deferrable
 * constraint declared INITIALLY IMMEDIATE is therefore checked at the end of the message too:
 * a message is applied or refused as a whole, so the outcome is the same (PostgreSQL has no
 * command to go back to each constraint's declared mode). The checks fired at the end of a
 * message that is kept stay done: later messages and COMMIT do not repeat them. A ROLLBACK TO
 * SAVEPOINT drops the checks its writes queued and restores the constraint modes.
 *
 * Only when the message as a whole fails a deferred check is it not clear which target is at
 * fault; then each target is tried alone (and undone) to find the ones that fail alone.
 */

/* One part of a change that is written, or given up on, as a whole: a target of a message in
 * the slow path, a pending row in the retry of dualsync.pending. */
typedef struct unit {
    bool excluded;    /* given up on: not written */
    bool pending;     /* excluded because a parent is missing (else a dead letter) */
    char error[1024]; /* why it was excluded */
} unit_t;

/*
 * Runs, in order, the writes of the units not excluded (of unit @p only alone when it is
 * >= 0), adding to *writes the ones applied. Anything but RUN_OK stops at the failing write;
 * on RUN_SQL_ERROR *failed names its unit. A write answering applied = false fails with
 * SQLSTATE_FOREIGN_KEY and MISSING_PARENT: its change must wait.
 */
typedef run_result_t (*units_writer_t)(ds_applier_t *a, void *ctx, const unit_t *units, int only,
                                       int *failed, uint64_t *writes, char *sqlstate, char *message,
                                       size_t message_size);

/* Fires the deferred checks queued so far, then defers again (see above). */
static run_result_t check_deferred(ds_applier_t *a, char *sqlstate, char *message,
                                   size_t message_size)
{
    run_result_t rr = run(a, "SET CONSTRAINTS ALL IMMEDIATE", false, 0, NULL, NULL, sqlstate,
                          message, message_size);

    if (rr != RUN_OK)
        return rr;
    return run(a, "SET CONSTRAINTS ALL DEFERRED", false, 0, NULL, NULL, sqlstate, message,
               message_size);
}

static void exclude(unit_t *u, const char *sqlstate, const char *message)
{
    u->excluded = true;
    u->pending = strcmp(sqlstate, SQLSTATE_FOREIGN_KEY) == 0;
    snprintf(u->error, sizeof(u->error), "%s", message);
}

/* Undoes what was written since SAVEPOINT ds_message (and restores the constraint modes). */
static ds_applier_status_t rollback_units(ds_applier_t *a, char *errstr, size_t errstr_size)
{
    char sqlstate[6], message[1024];
    run_result_t rr = run(a, "ROLLBACK TO SAVEPOINT ds_message", false, 0, NULL, NULL, sqlstate,
                          message, sizeof(message));

    return rr == RUN_OK
               ? DS_APPLIER_OK
               : slow_failure(a, rr, "ROLLBACK TO SAVEPOINT", message, errstr, errstr_size);
}

/* A write or check failed with something other than "this change is wrong". */
static ds_applier_status_t units_stop(ds_applier_t *a, run_result_t rr, const char *message,
                                      const char *retried, char *errstr, size_t errstr_size)
{
    if (rr == RUN_LOST)
        return slow_failure(a, rr, "writing", message, errstr, errstr_size);
    recover(a);
    ds_fail(errstr, errstr_size, "target \"%s\": %s; %s", a->name, message, retried);
    return DS_APPLIER_RETRY;
}

/*
 * The units together failed a deferred check (@p sqlstate, @p message): tries each alone,
 * undoing it, and excludes the ones that fail alone; when each passes alone, all of them, as
 * the check cannot be pinned on one.
 */
static ds_applier_status_t probe_units(ds_applier_t *a, unit_t *units, int nunits,
                                       units_writer_t writer, void *ctx, const char *sqlstate,
                                       const char *message, const char *retried, char *errstr,
                                       size_t errstr_size)
{
    bool found = false;
    ds_applier_status_t st;

    for (int u = 0; u < nunits; u++) {
        char state[6], why[1024];
        uint64_t unused = 0;
        int failed = -1;
        run_result_t rr;

        if (units[u].excluded)
            continue;
        rr = writer(a, ctx, units, u, &failed, &unused, state, why, sizeof(why));
        if (rr == RUN_OK)
            rr = check_deferred(a, state, why, sizeof(why));
        if (rr == RUN_LOST || (rr == RUN_SQL_ERROR && transient_sqlstate(state)))
            return units_stop(a, rr, why, retried, errstr, errstr_size);
        if (rr == RUN_SQL_ERROR) {
            exclude(&units[u], state, why);
            found = true;
        }
        if ((st = rollback_units(a, errstr, errstr_size)) != DS_APPLIER_OK)
            return st;
    }
    for (int u = 0; u < nunits && !found; u++) {
        if (!units[u].excluded)
            exclude(&units[u], sqlstate, message);
    }
    return DS_APPLIER_OK;
}

/*
 * Writes the units inside SAVEPOINT ds_message with deferred constraints checked at the end,
 * excluding the units that cannot be written now until the rest succeeds as a whole.
 * @p retried says what happens after a transient error ("the batch is retried").
 */
static ds_applier_status_t write_units(ds_applier_t *a, unit_t *units, int nunits,
                                       units_writer_t writer, void *ctx, const char *retried,
                                       uint64_t *writes, char *errstr, size_t errstr_size)
{
    char sqlstate[6], message[1024];
    ds_applier_status_t st;
    run_result_t rr;

    if ((rr = run(a, "SAVEPOINT ds_message", false, 0, NULL, NULL, sqlstate, message,
                  sizeof(message))) != RUN_OK)
        return slow_failure(a, rr, "SAVEPOINT", message, errstr, errstr_size);
    for (;;) {
        uint64_t n = 0;
        int failed = -1;
        bool any = false;

        for (int u = 0; u < nunits; u++)
            any = any || !units[u].excluded;
        if (!any)
            break;
        rr = writer(a, ctx, units, -1, &failed, &n, sqlstate, message, sizeof(message));
        if (rr == RUN_OK) {
            failed = -1;
            rr = check_deferred(a, sqlstate, message, sizeof(message));
        }
        if (rr == RUN_OK) {
            *writes += n;
            break;
        }
        if (rr == RUN_LOST || transient_sqlstate(sqlstate))
            return units_stop(a, rr, message, retried, errstr, errstr_size);
        /* A write failed: its unit cannot be written now. The end-of-message check failed:
         * find out which units fail alone. Either way, undo and try the rest again. */
        if (failed >= 0)
            exclude(&units[failed], sqlstate, message);
        if ((st = rollback_units(a, errstr, errstr_size)) != DS_APPLIER_OK)
            return st;
        if (failed < 0 && (st = probe_units(a, units, nunits, writer, ctx, sqlstate, message,
                                            retried, errstr, errstr_size)) != DS_APPLIER_OK)
            return st;
    }
    if ((rr = run(a, "RELEASE SAVEPOINT ds_message", false, 0, NULL, NULL, sqlstate, message,
                  sizeof(message))) != RUN_OK)
        return slow_failure(a, rr, "RELEASE SAVEPOINT", message, errstr, errstr_size);
    return DS_APPLIER_OK;
}

/* The slow path's units: the distinct targets of the message whose writes are work[first..end). */
typedef struct message_units {
    const ds_batch_msg_t *m;
    int first, end;
    int *local; /* by unit: its local target index */
    int nunits;
} message_units_t;

static int unit_of_local(const message_units_t *mu, int local)
{
    for (int u = 0; u < mu->nunits; u++) {
        if (mu->local[u] == local)
            return u;
    }
    return -1;
}

static run_result_t write_message_units(ds_applier_t *a, void *ctx, const unit_t *units, int only,
                                        int *failed, uint64_t *writes, char *sqlstate,
                                        char *message, size_t message_size)
{
    const message_units_t *mu = ctx;

    for (int i = mu->first; i < mu->end; i++) {
        work_t *w = &a->work[i];
        const ds_batch_write_t *bw = &mu->m->writes[w->write];
        int u = unit_of_local(mu, w->local);
        PGresult *r = NULL;
        run_result_t rr;

        if (units[u].excluded || (only >= 0 && u != only))
            continue;
        rr = run(a, statement_of(a, w->local, bw->kind), true, bw->nparams,
                 (const char *const *)bw->params, &r, sqlstate, message, message_size);
        *failed = u;
        if (rr != RUN_OK)
            return rr;
        w->applied = answer_applied(r);
        PQclear(r);
        if (!w->applied) {
            snprintf(message, message_size, "%s", MISSING_PARENT);
            snprintf(sqlstate, 6, "%s", SQLSTATE_FOREIGN_KEY);
            return RUN_SQL_ERROR;
        }
        (*writes)++;
    }
    *failed = -1;
    return RUN_OK;
}

/*
 * Writes the message whose writes are work[first..end) (see write_units), then records for
 * each of its targets what dualsync.pending must say, or its dead letter.
 */
static ds_applier_status_t slow_message(ds_applier_t *a, ds_batch_t *batch, int first, int end,
                                        const ds_applier_hooks_t *hooks, ds_applier_stats_t *stats,
                                        bool *pended, char *errstr, size_t errstr_size)
{
    ds_batch_msg_t *m = ds_batch_at(batch, a->work[first].msg);
    unit_t *units = calloc((size_t)(end - first) + 1, sizeof(*units));
    int *locals = calloc((size_t)(end - first) + 1, sizeof(*locals));
    message_units_t mu = {m, first, end, locals, 0};
    char sqlstate[6], message[1024];
    ds_applier_status_t st = DS_APPLIER_OK;
    run_result_t rr;
    size_t key_len;
    const char *key = source_key(m, &key_len);
    char offset[24];

    if (!units || !locals) {
        free(units);
        free(locals);
        ds_fail(errstr, errstr_size, "out of memory");
        return DS_APPLIER_FAILED;
    }
    for (int i = first; i < end; i++) {
        if (unit_of_local(&mu, a->work[i].local) < 0)
            locals[mu.nunits++] = a->work[i].local;
    }
    format_int(offset, sizeof(offset), m->offset);
    st = write_units(a, units, mu.nunits, write_message_units, &mu, "the batch is retried",
                     &stats->writes, errstr, errstr_size);
    if (st != DS_APPLIER_OK)
        goto done;
    for (int i = first; i < end; i++) {
        if (!units[unit_of_local(&mu, a->work[i].local)].excluded)
            count_written(a, batch, i);
    }
    /* What dualsync.pending says for each target of this message. */
    for (int i = first; i < end; i++) {
        const work_t *w = &a->work[i];
        const ds_batch_write_t *bw = &m->writes[w->write];
        const char *target = bw->target->id;
        int u = unit_of_local(&mu, w->local);
        bool done_before = false;

        for (int j = first; j < i; j++)
            done_before = done_before || a->work[j].local == w->local;
        if (done_before)
            continue; /* one decision per target */
        if (units[u].excluded) {
            const unit_t *e = &units[u];

            if (e->pending) {
                pending_params_t pp;

                pending_put_params(a, &pp, target, m, e->error);
                rr = run(a, "ds_pending_put", true, 7, pp.values, NULL, sqlstate, message,
                         sizeof(message));
                if (rr != RUN_OK) {
                    st = slow_failure(a, rr, "writing dualsync.pending", message, errstr,
                                      errstr_size);
                    goto done;
                }
                *pended = true;
                stats->pending_added++;
                ds_debug("target \"%s\": %s [%d] @%" PRId64 " waits for its parent (%s): %s",
                         a->name, m->topic, (int)m->partition, m->offset, target, e->error);
            } else {
                ds_dead_letter_t dl = ds_batch_dead_letter(m, target, e->error);

                dl.recorded = records(a, m); /* put_dead_record() below, in this transaction */
                stats->dead_letters++;
                if (!hooks->dead_letter(hooks->ctx, &dl, errstr, errstr_size)) {
                    recover(a);
                    st = DS_APPLIER_FAILED;
                    goto done;
                }
                a->msg_flags[a->work[first].msg] |= MSG_DEAD;
                m->failed_again = true;
                if (dl.recorded && !put_dead_record(a, NULL, m, target, e->error, sqlstate,
                                                    message, sizeof(message), &rr)) {
                    char what[512];

                    st = slow_failure(a, rr, dead_record_what(what, sizeof(what), m, target),
                                      message, errstr, errstr_size);
                    goto done;
                }
            }
        } else if (*pended || ds_strset_count(a->pending) > 0) {
            const char *params[4] = {target, m->topic, cstr(&a->key_text, key, key_len), offset};
            bool truncate = bw->kind == DS_WRITE_TRUNCATE;
            char partition[16];

            if (truncate) {
                snprintf(partition, sizeof(partition), "%d", (int)m->partition);
                params[2] = offset;
                params[3] = partition;
            }
            rr = run(a, truncate ? "ds_pending_del_topic" : "ds_pending_del", true, 4, params,
                     NULL, sqlstate, message, sizeof(message));
            if (rr != RUN_OK) {
                st = slow_failure(a, rr, "cleaning dualsync.pending", message, errstr, errstr_size);
                goto done;
            }
            *pended = true; /* the set must be read again */
        }
    }

done:
    free(units);
    free(locals);
    return st;
}

static ds_applier_status_t slow_path(ds_applier_t *a, int db, ds_batch_t *batch,
                                     ds_offsets_t *offsets, const ds_applier_hooks_t *hooks,
                                     ds_applier_stats_t *stats, char *errstr, size_t errstr_size)
{
    char sqlstate[6], message[1024];
    run_result_t rr = RUN_OK;
    ds_applier_status_t st;
    bool pended = false;
    int fenced_part;

    stats->slow_paths++;
    if ((st = origin_setup(a, errstr, errstr_size)) != DS_APPLIER_OK)
        return st;
    /* The origin was given back after the fast path: check again while it is held. */
    if (a->dlq_retry && (st = drop_superseded(a, batch, errstr, errstr_size)) != DS_APPLIER_OK)
        return st;
    if ((rr = run(a, "BEGIN", false, 0, NULL, NULL, sqlstate, message, sizeof(message))) !=
            RUN_OK ||
        /* Deferred checks run at the end of each message (see write_units). */
        (rr = run(a, "SET CONSTRAINTS ALL DEFERRED", false, 0, NULL, NULL, sqlstate, message,
                  sizeof(message))) != RUN_OK)
        return slow_failure(a, rr, "BEGIN", message, errstr, errstr_size);
    if ((rr = run_gate(a, sqlstate, message, sizeof(message))) != RUN_OK)
        return retry_or_fail(a, rr, sqlstate, message, errstr, errstr_size);
    for (int first = 0; first < a->nwork;) {
        int end = first + 1;

        while (end < a->nwork && a->work[end].msg == a->work[first].msg)
            end++;
        st = slow_message(a, batch, first, end, hooks, stats, &pended, errstr, errstr_size);
        if (st != DS_APPLIER_OK)
            return st;
        first = end;
    }
    if (!send_settle(a, NULL, batch, sqlstate, message, sizeof(message), &rr))
        return retry_or_fail(a, rr, sqlstate, message, errstr, errstr_size);
    if (!send_dead_records(a, NULL, db, batch, offsets, sqlstate, message, sizeof(message),
                           &rr)) {
        if (rr == RUN_SQL_ERROR && strcmp(sqlstate, SQLSTATE_SUPERSEDED) == 0) {
            recover(a);
            ds_fail(errstr, errstr_size,
                    "target \"%s\": a newer change of a dead letter's source row was applied "
                    "while it was being retried; the batch is redone",
                    a->name);
            return DS_APPLIER_RETRY;
        }
        return slow_failure(a, rr, "writing dualsync.dead_letters", message, errstr, errstr_size);
    }
    if (!send_offsets(a, NULL, db, batch, offsets, sqlstate, message, sizeof(message), &rr,
                      &fenced_part)) {
        if (fenced_part >= 0) {
            const ds_batch_partition_t *bp = ds_batch_partition(batch, fenced_part);

            recover(a);
            st = fenced(a, offsets, db, bp->topic, bp->partition, errstr, errstr_size);
            if (pended && st == DS_APPLIER_FENCED) {
                char reload[512];

                if (load_pending_keys(a, reload, sizeof(reload)) != DS_APPLIER_OK)
                    ds_warning("%s", reload);
            }
            return st;
        }
        return slow_failure(a, rr, "writing dualsync.offsets", message, errstr, errstr_size);
    }
    if (hooks->before_commit && !hooks->before_commit(hooks->ctx, errstr, errstr_size)) {
        recover(a);
        return DS_APPLIER_FAILED;
    }
    if ((rr = run(a, "COMMIT", false, 0, NULL, NULL, sqlstate, message, sizeof(message))) != RUN_OK)
        return slow_failure(a, rr, "COMMIT", message, errstr, errstr_size);
    stats->transactions++;
    recover(a); /* gives the origin back */
    if (!advance_offsets(offsets, db, batch)) {
        ds_fail(errstr, errstr_size, "out of memory");
        return DS_APPLIER_FAILED;
    }
    return pended ? load_pending_keys(a, errstr, errstr_size) : DS_APPLIER_OK;
}

void ds_applier_send(ds_applier_t *a, int db, ds_batch_t *batch, ds_offsets_t *offsets)
{
    drop_sent(a);
    /* dlq retry: which dead letters to write is decided with the origin held, first. */
    if (a->dlq_retry || lost(a) || !collect_work(a, db, batch, offsets) || a->nwork == 0)
        return;
    a->sent_set_based = send_writes(a, &a->sent, batch);
    a->sent_batch = batch;
}

ds_applier_status_t ds_applier_apply(ds_applier_t *a, int db, ds_batch_t *batch,
                                     ds_offsets_t *offsets, const ds_applier_hooks_t *hooks,
                                     ds_applier_stats_t *stats, char *errstr, size_t errstr_size)
{
    ds_applier_status_t st = DS_APPLIER_OK;
    bool sent = a->sent_batch == batch;
    int unclaimed = unclaimed_partition(db, batch, offsets);

    if (unclaimed >= 0) {
        const ds_batch_partition_t *bp = ds_batch_partition(batch, unclaimed);

        /* Known lost already: not worth a transaction that would be fenced. */
        drop_sent(a);
        return fenced(a, offsets, db, bp->topic, bp->partition, errstr, errstr_size);
    }
    /* The writes sent for this batch, with a->work as collect_work() left it then. */
    a->sent_batch = NULL;
    if (ds_batch_count(batch) > a->msg_flags_cap) {
        uint8_t *flags = realloc(a->msg_flags, (size_t)ds_batch_count(batch));

        if (!flags) {
            drop_sent(a);
            ds_fail(errstr, errstr_size, "out of memory");
            return DS_APPLIER_FAILED;
        }
        a->msg_flags = flags;
        a->msg_flags_cap = ds_batch_count(batch);
    }
    if (a->msg_flags_cap > 0)
        memset(a->msg_flags, 0, (size_t)a->msg_flags_cap);
    if (!sent) {
        drop_sent(a);
        if (lost(a)) {
            ds_fail(errstr, errstr_size, "target \"%s\": not connected", a->name);
            return DS_APPLIER_RETRY;
        }
        if (!collect_work(a, db, batch, offsets)) {
            ds_fail(errstr, errstr_size, "out of memory");
            return DS_APPLIER_FAILED;
        }
        if (a->nwork == 0 && !moves_offsets(a, db, batch, offsets))
            return DS_APPLIER_OK;
        if (a->dlq_retry && (st = drop_superseded(a, batch, errstr, errstr_size)) != DS_APPLIER_OK)
            return st;
    }
    switch (fast_path(a, db, batch, offsets, sent, hooks, stats, &st, errstr, errstr_size)) {
    case PATH_DONE:
        return DS_APPLIER_OK;
    case PATH_STATUS:
        return st;
    case PATH_SLOW:
        break;
    }
    return slow_path(a, db, batch, offsets, hooks, stats, errstr, errstr_size);
}

/* ---------------------------------------------------------------------------------------------
 * dualsync.pending
 * ------------------------------------------------------------------------------------------- */

/* One pending row of a source key, as a unit of write_units. */
typedef struct pending_unit {
    int row;                   /* in the rows read */
    int order;                 /* its target's index in the set: writes in target order */
    const ds_target_t *target; /* borrowed from the set */
    ds_batch_msg_t m;          /* the stored change, pointing into the rows */
    json_t *value;             /* the parsed value, NULL for a tombstone */
    uint64_t written[3];       /* by ds_write_kind_t, in the unit's last run */
} pending_unit_t;

/* The pending rows of one source key (same topic and source_key). */
typedef struct pending_group {
    ds_mapping_set_t *set; /* borrowed */
    pending_unit_t *pu;    /* by unit */
    int nunits;
} pending_group_t;

/* Re-evaluates the stored change of unit @p u (the write list lives until the next eval). */
static bool eval_pending(ds_mapping_set_t *set, const pending_unit_t *pu, ds_write_list_t *list,
                         char *why, size_t why_size)
{
    return ds_mapping_eval(set, pu->m.topic, pu->m.key, pu->m.key_len, pu->value, list, why,
                           why_size);
}

static run_result_t write_pending_units(ds_applier_t *a, void *ctx, const unit_t *units, int only,
                                        int *failed, uint64_t *writes, char *sqlstate,
                                        char *message, size_t message_size)
{
    const pending_group_t *g = ctx;

    for (int u = 0; u < g->nunits; u++) {
        ds_write_list_t list;

        if (units[u].excluded || (only >= 0 && u != only))
            continue;
        *failed = u;
        memset(g->pu[u].written, 0, sizeof(g->pu[u].written));
        if (!eval_pending(g->set, &g->pu[u], &list, message, message_size)) {
            sqlstate[0] = '\0';
            return RUN_SQL_ERROR;
        }
        for (int w = 0; w < list.nwrites; w++) {
            const ds_target_write_t *tw = &list.writes[w];
            int local = local_index(a, tw->target);
            PGresult *r = NULL;
            run_result_t rr;
            bool applied;

            if (tw->target != g->pu[u].target || local < 0 || !statement_of(a, local, tw->kind))
                continue;
            rr = run(a, statement_of(a, local, tw->kind), true, tw->nparams, tw->params, &r,
                     sqlstate, message, message_size);
            if (rr != RUN_OK)
                return rr;
            applied = answer_applied(r);
            PQclear(r);
            if (!applied) {
                snprintf(message, message_size, "%s", MISSING_PARENT);
                snprintf(sqlstate, 6, "%s", SQLSTATE_FOREIGN_KEY);
                return RUN_SQL_ERROR;
            }
            (*writes)++;
            g->pu[u].written[tw->kind]++;
        }
    }
    *failed = -1;
    return RUN_OK;
}

/*
 * A change waited in dualsync.pending longer than apply.pending_timeout: it becomes a dead
 * letter (for review, and `dlq retry` once its parent exists) whose error says how long it
 * waited and which lookup found nothing, with the value it looked up.
 */
static void timed_out(ds_applier_t *a, const pending_unit_t *pu, double waited, unit_t *un)
{
    ds_buf_t why = DS_BUF_INIT, text = DS_BUF_INIT;
    ds_write_list_t list;
    char ignored[256];

    char sqlstate[6], message[256];

    /* In a savepoint: a lookup that cannot be run must not abort the retry's transaction. */
    if (eval_pending(a->set, pu, &list, ignored, sizeof(ignored)) &&
        run(a, "SAVEPOINT ds_explain", false, 0, NULL, NULL, sqlstate, message,
            sizeof(message)) == RUN_OK) {
        for (int w = 0; w < list.nwrites; w++) {
            if (list.writes[w].target == pu->target && list.writes[w].kind == DS_WRITE_UPSERT)
                ds_mapping_explain_wait(a->set, &list.writes[w], a->conn, &why);
        }
        run(a,
            PQtransactionStatus(a->conn) == PQTRANS_INERROR ? "ROLLBACK TO SAVEPOINT ds_explain"
                                                             : "RELEASE SAVEPOINT ds_explain",
            false, 0, NULL, NULL, sqlstate, message, sizeof(message));
    }
    /* Composed apart: un->error may itself be the reason (snprintf must not read what it
     * writes), and the whole may be longer than un->error holds. */
    if (!why.len)
        ds_buf_append_str(&why, un->error);
    ds_buf_appendf(&text,
                   "waited %.0f s in dualsync.pending for its parent, longer than "
                   "apply.pending_timeout (%.0f s): %s",
                   waited, a->pending_timeout_s, why.data);
    snprintf(un->error, sizeof(un->error), "%.*s", (int)sizeof(un->error) - 1, text.data);
    ds_buf_free(&text);
    un->pending = false;
    ds_warning("target \"%s\": %s [%d] @%" PRId64 " key %.*s target %s: %s; it becomes a dead "
               "letter",
               a->name, pu->m.topic, (int)pu->m.partition, pu->m.offset, (int)pu->m.key_len,
               pu->m.key, pu->target->id, un->error);
    ds_buf_free(&why);
}

/*
 * Retries the pending rows [first, end) of @p rows, which share topic and source_key,
 * together (see write_units): targets of one change that reference each other wait together
 * and can only be written together. Applied rows and dead letters leave dualsync.pending.
 */
static ds_applier_status_t retry_group(ds_applier_t *a, const PGresult *rows, int first, int end,
                                       const ds_applier_hooks_t *hooks, ds_applier_stats_t *stats,
                                       int *resolved, char *errstr, size_t errstr_size)
{
    pending_group_t g = {a->set, calloc((size_t)(end - first) + 1, sizeof(pending_unit_t)), 0};
    unit_t *units = calloc((size_t)(end - first) + 1, sizeof(*units));
    char sqlstate[6], message[1024];
    ds_applier_status_t st = DS_APPLIER_OK;
    uint64_t writes = 0;

    if (!g.pu || !units) {
        ds_fail(errstr, errstr_size, "out of memory");
        st = DS_APPLIER_FAILED;
        goto done;
    }
    for (int i = first; i < end; i++) {
        const char *target_id = PQgetvalue(rows, i, 1);
        pending_unit_t *pu = &g.pu[g.nunits];
        unit_t *un = &units[g.nunits];
        json_error_t jerr;
        ds_write_list_t list;

        pu->row = i;
        pu->order = -1;
        for (int t = 0; t < ds_mapping_set_ntargets(a->set); t++) {
            if (strcmp(ds_mapping_set_target(a->set, t)->id, target_id) == 0 &&
                local_index(a, ds_mapping_set_target(a->set, t)) >= 0) {
                pu->target = ds_mapping_set_target(a->set, t);
                pu->order = t;
            }
        }
        if (!pu->target) {
            ds_warning("target \"%s\": dualsync.pending row %s is for target %s, which the "
                       "mappings no longer have; it stays until removed by hand",
                       a->name, PQgetvalue(rows, i, 0), target_id);
            continue;
        }
        pu->m.topic = PQgetvalue(rows, i, 2);
        pu->m.partition = atoi(PQgetvalue(rows, i, 3));
        pu->m.offset = strtoll(PQgetvalue(rows, i, 4), NULL, 10);
        pu->m.key = PQgetvalue(rows, i, 5);
        pu->m.key_len = (size_t)PQgetlength(rows, i, 5);
        pu->m.value_text = PQgetisnull(rows, i, 6) ? NULL : PQgetvalue(rows, i, 6);
        pu->m.value_len = pu->m.value_text ? (size_t)PQgetlength(rows, i, 6) : 0;
        /* A change that no longer evaluates is a dead letter, written or not. */
        if (pu->m.value_text &&
            !(pu->value = json_loadb(pu->m.value_text, pu->m.value_len, 0, &jerr))) {
            snprintf(message, sizeof(message), "the stored value is not JSON: %s", jerr.text);
            exclude(un, "", message);
        } else if (!eval_pending(a->set, pu, &list, message, sizeof(message))) {
            exclude(un, "", message);
        }
        g.nunits++;
    }
    /* In target order, as the change's own writes run. */
    for (int i = 1; i < g.nunits; i++) {
        for (int j = i; j > 0 && g.pu[j - 1].order > g.pu[j].order; j--) {
            pending_unit_t tp = g.pu[j];
            unit_t tu = units[j];

            g.pu[j] = g.pu[j - 1];
            g.pu[j - 1] = tp;
            units[j] = units[j - 1];
            units[j - 1] = tu;
        }
    }
    st = write_units(a, units, g.nunits, write_pending_units, &g, "retrying the pending changes",
                     &writes, errstr, errstr_size);
    if (st != DS_APPLIER_OK)
        goto done;
    for (int u = 0; u < g.nunits; u++) {
        const pending_unit_t *pu = &g.pu[u];
        const char *params[1] = {PQgetvalue(rows, pu->row, 0)};
        run_result_t rr;

        if (units[u].excluded && units[u].pending) {
            double waited = strtod(PQgetvalue(rows, pu->row, 7), NULL);

            if (a->pending_timeout_s <= 0 || waited < a->pending_timeout_s)
                continue; /* still waiting */
            timed_out(a, pu, waited, &units[u]);
        }
        if (units[u].excluded) {
            ds_dead_letter_t dl = ds_batch_dead_letter(&pu->m, pu->target->id, units[u].error);

            dl.recorded = !a->dlq_retry; /* put_dead_record() below, in this transaction */
            stats->dead_letters++;
            if (!hooks->dead_letter(hooks->ctx, &dl, errstr, errstr_size)) {
                recover(a);
                st = DS_APPLIER_FAILED;
                goto done;
            }
            if (dl.recorded && !put_dead_record(a, NULL, &pu->m, pu->target->id, units[u].error,
                                                sqlstate, message, sizeof(message), &rr)) {
                char what[512];

                st = slow_failure(a, rr,
                                  dead_record_what(what, sizeof(what), &pu->m, pu->target->id),
                                  message, errstr, errstr_size);
                goto done;
            }
        } else {
            stats->pending_done++;
            for (int k = 0; k < 3; k++)
                a->written[pu->order][k] += pu->written[k];
        }
        (*resolved)++;
        if ((rr = run(a, "ds_pending_del_id", true, 1, params, NULL, sqlstate, message,
                      sizeof(message))) != RUN_OK) {
            st = slow_failure(a, rr, "cleaning dualsync.pending", message, errstr, errstr_size);
            goto done;
        }
    }

done:
    for (int u = 0; g.pu && u < g.nunits; u++)
        json_decref(g.pu[u].value);
    free(g.pu);
    free(units);
    return st;
}

/* Whether pending rows i and j are changes of the same source key. */
static bool same_source_key(const PGresult *rows, int i, int j)
{
    return strcmp(PQgetvalue(rows, i, 2), PQgetvalue(rows, j, 2)) == 0 &&
           PQgetlength(rows, i, 5) == PQgetlength(rows, j, 5) &&
           memcmp(PQgetvalue(rows, i, 5), PQgetvalue(rows, j, 5),
                  (size_t)PQgetlength(rows, i, 5)) == 0;
}

/* Passes over dualsync.pending while each resolves something (a chain of parents). */
#define MAX_PENDING_PASSES 8

/* Whether this process holds the partition of pending row @p i here. */
static bool pending_row_held(const PGresult *rows, int i, const ds_offsets_t *offsets, int db)
{
    return ds_offsets_generation(offsets, db, PQgetvalue(rows, i, 2),
                                 (int32_t)atoi(PQgetvalue(rows, i, 3))) != DS_GENERATION_NONE;
}

/*
 * Takes the offsets rows of the partitions of @p rows this process holds FOR SHARE, checking
 * its claims (see "The fence"): DS_APPLIER_FENCED, rolled back, when one was claimed since.
 */
static ds_applier_status_t hold_pending_partitions(ds_applier_t *a, ds_offsets_t *offsets,
                                                   int db, const PGresult *rows, char *errstr,
                                                   size_t errstr_size)
{
    for (int i = 0; i < PQntuples(rows); i++) {
        const char *topic = PQgetvalue(rows, i, 2), *partition = PQgetvalue(rows, i, 3);
        char generation[24], sqlstate[6], message[1024];
        const char *params[4] = {a->group_id, topic, partition, generation};
        bool seen = false;
        run_result_t rr;

        if (!pending_row_held(rows, i, offsets, db))
            continue;
        for (int j = 0; j < i && !seen; j++)
            seen = strcmp(PQgetvalue(rows, j, 2), topic) == 0 &&
                   strcmp(PQgetvalue(rows, j, 3), partition) == 0;
        if (seen)
            continue;
        format_int(generation, sizeof(generation),
                   ds_offsets_generation(offsets, db, topic, (int32_t)atoi(partition)));
        rr = run(a, "ds_offsets_hold", true, 4, params, NULL, sqlstate, message, sizeof(message));
        if (rr == RUN_SQL_ERROR && strcmp(sqlstate, SQLSTATE_FENCED) == 0) {
            recover(a);
            return fenced(a, offsets, db, topic, (int32_t)atoi(partition), errstr, errstr_size);
        }
        if (rr != RUN_OK)
            return slow_failure(a, rr, "checking the claims of the pending rows' partitions",
                                message, errstr, errstr_size);
    }
    return DS_APPLIER_OK;
}

ds_applier_status_t ds_applier_retry_pending(ds_applier_t *a, int db, ds_offsets_t *offsets,
                                             const ds_applier_hooks_t *hooks,
                                             ds_applier_stats_t *stats, char *errstr,
                                             size_t errstr_size)
{
    drop_sent(a);
    for (int pass = 0; pass < MAX_PENDING_PASSES && ds_strset_count(a->pending) > 0; pass++) {
        PGresult *rows = NULL;
        char sqlstate[6], message[1024];
        run_result_t rr;
        ds_applier_status_t st;
        int resolved = 0;

        if (lost(a)) {
            ds_fail(errstr, errstr_size, "target \"%s\": not connected", a->name);
            return DS_APPLIER_RETRY;
        }
        if ((st = origin_setup(a, errstr, errstr_size)) != DS_APPLIER_OK)
            return st;
        if ((rr = run(a, "BEGIN", false, 0, NULL, NULL, sqlstate, message, sizeof(message))) !=
                RUN_OK ||
            /* Deferred checks run at the end of each source key's changes (write_units). */
            (rr = run(a, "SET CONSTRAINTS ALL DEFERRED", false, 0, NULL, NULL, sqlstate, message,
                      sizeof(message))) != RUN_OK ||
            (rr = run(a, "ds_pending_rows", true, 0, NULL, &rows, sqlstate, message,
                      sizeof(message))) != RUN_OK)
            return slow_failure(a, rr, "reading dualsync.pending", message, errstr, errstr_size);
        if ((rr = run_gate(a, sqlstate, message, sizeof(message))) != RUN_OK) {
            PQclear(rows);
            return retry_or_fail(a, rr, sqlstate, message, errstr, errstr_size);
        }
        if ((st = hold_pending_partitions(a, offsets, db, rows, errstr, errstr_size)) !=
            DS_APPLIER_OK) {
            PQclear(rows);
            return st;
        }
        for (int first = 0; first < PQntuples(rows);) {
            int end = first + 1;

            while (end < PQntuples(rows) && same_source_key(rows, first, end))
                end++;
            /* Another apply process's partition: its owner retries it. */
            if (!pending_row_held(rows, first, offsets, db)) {
                first = end;
                continue;
            }
            st = retry_group(a, rows, first, end, hooks, stats, &resolved, errstr, errstr_size);
            if (st != DS_APPLIER_OK) {
                PQclear(rows);
                return st;
            }
            first = end;
        }
        PQclear(rows);
        if (!send_settle(a, NULL, NULL, sqlstate, message, sizeof(message), &rr))
            return retry_or_fail(a, rr, sqlstate, message, errstr, errstr_size);
        if (hooks->before_commit && !hooks->before_commit(hooks->ctx, errstr, errstr_size)) {
            recover(a);
            return DS_APPLIER_FAILED;
        }
        if ((rr = run(a, "COMMIT", false, 0, NULL, NULL, sqlstate, message, sizeof(message))) !=
            RUN_OK)
            return slow_failure(a, rr, "COMMIT", message, errstr, errstr_size);
        recover(a);
        if ((st = load_pending_keys(a, errstr, errstr_size)) != DS_APPLIER_OK)
            return st;
        if (resolved == 0)
            break;
        ds_debug("target \"%s\": %d pending changes resolved, %zu still waiting", a->name, resolved,
                 ds_strset_count(a->pending));
    }
    return DS_APPLIER_OK;
}

int ds_applier_backend_pid(const ds_applier_t *a)
{
    return a->conn ? PQbackendPID(a->conn) : 0;
}
