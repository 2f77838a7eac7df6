/*
 * applier_internal.h: what the files of one target database's applier share (applier.h is
 * its interface): the applier's state, the pipeline's, and the functions one file of it
 * calls in another.
 *   applier.c           the connection, the replication origin, the bookkeeping schema and
 *                       the prepared statements, offsets claims;
 *   applier_pipeline.c  statements pipelined on a nonblocking connection, results read as
 *                       they come;
 *   applier_batch.c     a batch: its writes (batch statements or row by row), settling, the
 *                       fence on the offsets, pending and dead-letter bookkeeping, the fast
 *                       path's two round trips;
 *   applier_slow.c      the savepoint slow path: each message alone, each target of it
 *                       alone when it fails, dead letters and pending parents;
 *   applier_pending.c   the retry of the changes waiting in dualsync.pending.
 */
#ifndef DUALSYNC_APPLIER_INTERNAL_H
#define DUALSYNC_APPLIER_INTERNAL_H

#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "dualsync/applier.h"
#include "dualsync/batchstmt.h"
#include "dualsync/buf.h"
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
static inline bool transient_sqlstate(const char *sqlstate)
{
    return strncmp(sqlstate, "40", 2) == 0 || strncmp(sqlstate, "53", 2) == 0 ||
           strcmp(sqlstate, "55P03") == 0;
}

/* Why a change waits in dualsync.pending when its statement said applied = false. */
#define MISSING_PARENT "a required lookup found no row (the parent has not arrived yet)"

/* Separates the parts of a pending key: never inside a topic or a target id. */
#define KEY_SEP '\x1f'

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
                             * with the offsets (after every connect and assignment), added to by
                             * each record put; a superset (keys whose records went, batches rolled
                             * back), which costs only a needless DELETE */
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

typedef enum run_result run_result_t;

enum run_result {
    RUN_OK,
    RUN_SQL_ERROR, /* the statement failed: sqlstate and message say why */
    RUN_LOST,      /* the connection is gone */
};

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

/* The params of a pending row for message m and target id. */
typedef struct pending_params {
    char partition[16];
    char offset[24];
    const char *values[7];
} pending_params_t;

/* applier.c */
void applier_count_written(ds_applier_t *a, ds_batch_t *batch, int i);
bool applier_lost(const ds_applier_t *a);
void applier_make_key(ds_applier_t *a, const char *target, const char *topic, const char *key,
                      size_t key_len);
void applier_make_partition_key(ds_applier_t *a, const char *target, const ds_batch_msg_t *m);
const char *applier_source_key(const ds_batch_msg_t *m, size_t *len);
const char *applier_cstr(ds_buf_t *buf, const char *s, size_t len);
int applier_local_index(const ds_applier_t *a, const ds_target_t *target);
const char *applier_statement_of(const ds_applier_t *a, int local, ds_write_kind_t kind);
run_result_t applier_run(ds_applier_t *a, const char *stmt, bool prepared, int nparams,
                         const char *const *params, PGresult **out, char *sqlstate, char *message,
                         size_t message_size);
bool applier_answer_applied(const PGresult *r);
ds_applier_status_t applier_origin_setup_failed(ds_applier_t *a, const char *sqlstate,
                                                const char *message, char *errstr,
                                                size_t errstr_size);
ds_applier_status_t applier_origin_setup(ds_applier_t *a, char *errstr, size_t errstr_size);
void applier_recover(ds_applier_t *a);
void applier_make_dead_key(ds_applier_t *a, const char *topic, const char *key, size_t key_len);
ds_applier_status_t applier_load_pending_keys(ds_applier_t *a, char *errstr, size_t errstr_size);

/* applier_pipeline.c */
bool applier_pipeline_begin(pipeline_t *p, ds_applier_t *a);
bool applier_pipeline_send(pipeline_t *p, op_kind_t kind, int work, const char *stmt, bool prepared,
                           int nparams, const char *const *params);
void applier_pipeline_pump(pipeline_t *p);
void applier_pipeline_sync(pipeline_t *p);
void applier_pipeline_wait(pipeline_t *p);
void applier_pipeline_finish(pipeline_t *p);

/* applier_batch.c */
void applier_format_int(char *buf, size_t size, int64_t v);
bool applier_send_settle(ds_applier_t *a, pipeline_t *p, ds_batch_t *batch, char *sqlstate,
                         char *message, size_t message_size, run_result_t *result);
run_result_t applier_run_gate(ds_applier_t *a, char *sqlstate, char *message, size_t message_size);
ds_applier_status_t applier_retry_or_fail(ds_applier_t *a, run_result_t rr, const char *sqlstate,
                                          const char *message, char *errstr, size_t errstr_size);
ds_applier_status_t applier_fenced(ds_applier_t *a, ds_offsets_t *offsets, int db,
                                   const char *topic, int32_t partition, char *errstr,
                                   size_t errstr_size);
bool applier_send_offsets(ds_applier_t *a, pipeline_t *p, int db, const ds_batch_t *batch,
                          const ds_offsets_t *offsets, char *sqlstate, char *message,
                          size_t message_size, run_result_t *result, int *fenced_part);
bool applier_advance_offsets(ds_offsets_t *offsets, int db, const ds_batch_t *batch);
void applier_pending_put_params(ds_applier_t *a, pending_params_t *pp, const char *target,
                                const ds_batch_msg_t *m, const char *error);
const char *applier_dead_record_what(char *buf, size_t size, const ds_batch_msg_t *m,
                                     const char *target);
bool applier_put_dead_record(ds_applier_t *a, pipeline_t *p, const ds_batch_msg_t *m,
                             const char *target, const char *error, char *sqlstate, char *message,
                             size_t message_size, run_result_t *result);
bool applier_records(const ds_applier_t *a, const ds_batch_msg_t *m);
bool applier_send_dead_records(ds_applier_t *a, pipeline_t *p, int db, ds_batch_t *batch,
                               const ds_offsets_t *offsets, char *sqlstate, char *message,
                               size_t message_size, run_result_t *result);
ds_applier_status_t applier_drop_superseded(ds_applier_t *a, ds_batch_t *batch, char *errstr,
                                            size_t errstr_size);
void applier_drop_sent(ds_applier_t *a);

/* applier_slow.c */
ds_applier_status_t applier_slow_failure(ds_applier_t *a, run_result_t rr, const char *what,
                                         const char *message, char *errstr, size_t errstr_size);
void applier_exclude(unit_t *u, const char *sqlstate, const char *message);
ds_applier_status_t applier_write_units(ds_applier_t *a, unit_t *units, int nunits,
                                        units_writer_t writer, void *ctx, const char *retried,
                                        uint64_t *writes, char *errstr, size_t errstr_size);
ds_applier_status_t applier_slow_path(ds_applier_t *a, int db, ds_batch_t *batch,
                                      ds_offsets_t *offsets, const ds_applier_hooks_t *hooks,
                                      ds_applier_stats_t *stats, char *errstr, size_t errstr_size);

#endif
