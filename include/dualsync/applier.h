/*
 * applier.h: writes batches into one target database, exactly once in effect.
 *
 * One applier owns one libpq connection to one entry of the config's "targets". For a batch
 * it runs one transaction that holds the rows of every message not yet in this database and
 * the next offsets of every partition of the batch (dualsync.offsets), so the database always
 * says exactly which messages it has:
 *
 *   fast path (libpq pipeline mode, one round trip for the writes and one for the commit):
 *     origin setup, BEGIN, the writes (prepared statements, text parameters)   | sync
 *     pending bookkeeping, offsets, COMMIT, origin reset                       | sync
 *   the writes are one batch statement per target (mapping.h, "Batches"), targets that others
 *   look up in first; row by row (one statement per change and target, in message order) when
 *   a write of the batch has no batch form: a truncate, a kept TOASTed value, a target whose
 *   key is computed by the database;
 *   slow path, when the fast path hit an error: the batch again, message by message, each
 *   inside a SAVEPOINT, with constraints checked at once; a message whose write to a target
 *   fails goes to dualsync.pending (a missing parent: foreign-key violation 23503, or the
 *   statement's "applied" = false from a required lookup) or to the dead letters (any other
 *   error), and the rest of the batch commits.
 *
 * Dead letters are recorded in dualsync.dead_letters in the transaction that moves past them,
 * and a later change of the same source key removes the records of older ones; `dlq retry`
 * writes a dead letter only while its record is there (applier.c, "Dead-letter records").
 *
 * The replication origin (this process's own, which capture skips: apply.c, "Origins") is
 * taken for each transaction and given back after it: PostgreSQL 15 lets one session hold an
 * origin at a time in the whole cluster, and several target databases of one server share it.
 *
 * Several apply processes may share a group's partitions: every commit checks that this
 * process still holds the partitions it moves (applier.c, "The fence").
 */
#ifndef DUALSYNC_APPLIER_H
#define DUALSYNC_APPLIER_H

#include "dualsync/batch.h"
#include "dualsync/common.h"
#include "dualsync/consumer.h"
#include "dualsync/dlq.h"
#include "dualsync/mapping.h"
#include "dualsync/offsets.h"

typedef struct ds_applier ds_applier_t;

typedef enum ds_applier_status {
    DS_APPLIER_OK,
    DS_APPLIER_RETRY,   /* the connection was lost, the origin is held by another session, or
                         * a transient error (deadlock, serialization failure) rolled the batch
                         * back: nothing is known to be committed past what the database's
                         * offsets say; reconnect if ds_applier_connected() says so (then
                         * re-read them), call again */
    DS_APPLIER_FAILED,  /* fatal (errstr): a privilege, an unexpected error, on_error "stop" */
    DS_APPLIER_INVALID, /* ds_applier_connect: the mappings do not fit this database's
                         * catalog (errstr: every problem, one per line) */
    DS_APPLIER_FENCED,  /* another apply process claimed a partition of the batch (or of the
                         * pending rows) in this database: nothing was committed, the
                         * partition's generation is DS_GENERATION_NONE in the offsets; drop
                         * what is held of it and call again with the rest */
} ds_applier_status_t;

typedef struct ds_applier_options {
    const char *name;      /* the config's "targets" key: what targets' connection says */
    const char *conninfo;  /* its libpq connection string (never logged) */
    const char *origin;    /* this process's replication origin (apply.c, "Origins") */
    const char *group_id;  /* the consumer group: the key of dualsync.offsets rows */
    const char *owner;     /* who claims partitions, for dualsync.offsets.owner */
    const char *schema;    /* the schema of the bookkeeping tables (links are the mappings'
                            * affair: ds_mapping_set_rename_tables), a plain lower-case name;
                            * NULL: "dualsync". `dualsync replay` keeps its own */
    ds_mapping_set_t *set; /* the compiled mappings (pending rows are re-evaluated) */
    bool row_by_row;       /* never use the batch statements (apply.set_based false) */
    bool dlq_retry;        /* the batches are dead letters re-driven by `dlq retry`: one whose
                            * dualsync.dead_letters record is gone is superseded (not written) */
    int64_t pending_timeout_ms; /* apply.pending_timeout: a change waiting longer in
                                 * dualsync.pending becomes a dead letter; 0: never */
} ds_applier_options_t;

/*
 * What the applier asks of the runtime. dead_letter() is called for a change that cannot be
 * written (its error names the SQLSTATE); returning false (errstr) aborts the transaction
 * (on_error "stop"). before_commit() runs before every COMMIT: dead letters must be durable
 * in Kafka before the offsets that skip their changes are.
 */
typedef struct ds_applier_hooks {
    bool (*dead_letter)(void *ctx, const ds_dead_letter_t *dl, char *errstr, size_t errstr_size);
    bool (*before_commit)(void *ctx, char *errstr, size_t errstr_size);
    void *ctx;
} ds_applier_hooks_t;

/* Counters, added to by each call. */
typedef struct ds_applier_stats {
    uint64_t writes;        /* statements executed that wrote */
    uint64_t pending_added; /* changes parked in dualsync.pending */
    uint64_t pending_done;  /* pending changes applied later */
    uint64_t dead_letters;  /* changes handed to dead_letter() */
    uint64_t transactions;  /* committed */
    uint64_t slow_paths;    /* batches redone message by message */
    uint64_t set_based;     /* transactions whose writes were batch statements */
} ds_applier_stats_t;

/** @brief Copies the options (strings included; the set is borrowed). NULL when out of memory. */
ds_applier_t *ds_applier_new(const ds_applier_options_t *options);

/** @brief Closes the connection and frees; accepts NULL. */
void ds_applier_free(ds_applier_t *applier);

/** @brief The target name, for messages. */
const char *ds_applier_name(const ds_applier_t *applier);

/**
 * @brief Connects (again): creates the dualsync schema, checks the mappings' targets against
 *        the catalog (first connection only), prepares every statement of the targets of this
 *        database, creates the replication origin when missing and checks the privileges on
 *        it, loads the keys waiting in dualsync.pending.
 * @return DS_APPLIER_RETRY when the server cannot be reached; DS_APPLIER_INVALID when the
 *         catalog does not fit the mappings; DS_APPLIER_FAILED on a missing privilege or
 *         another error a retry would not fix.
 */
ds_applier_status_t ds_applier_connect(ds_applier_t *applier, char *errstr, size_t errstr_size);

/**
 * @brief Reads this database's stored next offsets for @p parts into @p offsets as database
 *        @p db (a partition without a row is DS_OFFSET_NONE there).
 */
ds_applier_status_t ds_applier_read_offsets(ds_applier_t *applier, ds_offsets_t *offsets, int db,
                                            const ds_topic_partition_t *parts, int nparts,
                                            char *errstr, size_t errstr_size);

/**
 * @brief Claims @p parts for this process in this database (applier.c, "The fence"): raises
 *        each partition's generation in dualsync.offsets (creating the row, next_offset -1 for
 *        nothing stored, when missing) and records it, with the stored next offset, in @p offsets as database
 *        @p db. Must run before anything of the partitions is read; from then on a commit of
 *        another process that held them fails its check.
 */
ds_applier_status_t ds_applier_claim(ds_applier_t *applier, ds_offsets_t *offsets, int db,
                                     const ds_topic_partition_t *parts, int nparts, char *errstr,
                                     size_t errstr_size);

/**
 * @brief Starts writing @p batch into this database without waiting for it: sends the writes
 *        (the fast path's first round trip), so the database works on them while the caller
 *        prepares the next batch. The next call on this applier must be ds_applier_apply() of
 *        the same batch, which finishes the job (any other call first rolls the sent writes
 *        back). Does nothing when the applier is not connected or the batch has nothing to
 *        write here; ds_applier_apply() then does it all itself.
 */
void ds_applier_send(ds_applier_t *applier, int db, ds_batch_t *batch, ds_offsets_t *offsets);

/**
 * @brief Pushes on the writes ds_applier_send() sent, without blocking: libpq keeps what the
 *        socket did not take at once (a batch statement's arrays are hundreds of kilobytes),
 *        and the database can only run a statement it has whole. Call it while preparing the
 *        next batch; it also reads the results that arrived.
 */
void ds_applier_push_sent(ds_applier_t *applier);

/**
 * @brief Writes @p batch into this database (database number @p db in @p offsets): the
 *        messages it does not hold yet, and the batch's next offsets. Messages with an error
 *        (dead letters) are not written; their offsets are.
 *
 * On DS_APPLIER_OK @p offsets is advanced for @p db.
 */
ds_applier_status_t ds_applier_apply(ds_applier_t *applier, int db, ds_batch_t *batch,
                                     ds_offsets_t *offsets, const ds_applier_hooks_t *hooks,
                                     ds_applier_stats_t *stats, char *errstr, size_t errstr_size);

/**
 * @brief Retries the changes waiting in dualsync.pending: each is re-evaluated with the
 *        current mappings and written in its own savepoint; done ones are deleted, ones still
 *        missing their parent stay (or, waiting longer than pending_timeout_ms, become dead
 *        letters), others become dead letters. Only the rows of partitions this process
 *        holds in @p offsets (database @p db): another process's are its own to retry.
 */
ds_applier_status_t ds_applier_retry_pending(ds_applier_t *applier, int db, ds_offsets_t *offsets,
                                             const ds_applier_hooks_t *hooks,
                                             ds_applier_stats_t *stats, char *errstr,
                                             size_t errstr_size);

/**
 * @brief Statements of kind @p kind of the set's target @p target (0..ds_mapping_set_ntargets-1)
 *        that wrote here, since the applier was made (its target must be of this database).
 */
uint64_t ds_applier_written(const ds_applier_t *applier, int target, ds_write_kind_t kind);

/** @brief Changes waiting in this database's dualsync.pending (as last read or written). */
size_t ds_applier_pending(const ds_applier_t *applier);

/** @brief Whether the connection is up (after DS_APPLIER_RETRY: reconnect, or only wait). */
bool ds_applier_connected(const ds_applier_t *applier);

/**
 * @brief ds_applier_connected(), after reading what the server may have sent meanwhile
 *        (without waiting): a server that went away while the connection was idle is noticed.
 */
bool ds_applier_probe(ds_applier_t *applier);

/** @brief The server process of the connection (pg_stat_activity.pid), 0 when not connected. */
int ds_applier_backend_pid(const ds_applier_t *applier);

#endif
