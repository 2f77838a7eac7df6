/*
 * applier_batch.c: one batch in one target database: its writes (one batch statement per
 * target, or row by row), the settling of merged rows, the fence on the offsets rows, the
 * pending and dead-letter bookkeeping, and the fast path's two round trips. A batch whose
 * fast path fails for one of its changes goes to the slow path (applier_slow.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "applier_internal.h"
#include "dualsync/log.h"
#include "dualsync/pgutil.h"

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
            local = applier_local_index(a, bw->target);
            if (local < 0 || !applier_statement_of(a, local, bw->kind))
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

void applier_format_int(char *buf, size_t size, int64_t v)
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
        key = applier_source_key(ds_batch_at(batch, w->msg), &key_len);
        switch (ds_strset_add_new(a->batched, key, key_len)) {
        case 0:
            return i;
        case -1:
            return -1;
        default:
            break;
        }
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
        applier_pipeline_send(p, OP_BATCH_WRITE, local, a->targets[local].batch, true,
                              t->write_nparams + 2, ds_batchstmt_finish(&a->args, topic));
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
bool applier_send_settle(ds_applier_t *a, pipeline_t *p, ds_batch_t *batch, char *sqlstate,
                         char *message, size_t message_size, run_result_t *result)
{
    for (int o = 0; o < a->ntargets; o++) {
        const local_target_t *lt = &a->targets[a->order[o]];
        const char *params[1] = {lt->target->links_id};

        if (!lt->settle[0] || (batch && !needs_settling(a, batch, a->order[o])))
            continue;
        if (p) {
            if (!applier_pipeline_send(p, OP_BOOKKEEPING, -1, "ds_lock_touched", true, 1, params) ||
                !applier_pipeline_send(p, OP_BOOKKEEPING, -1, lt->settle, true, 1, params))
                return false;
        } else if ((*result = applier_run(a, "ds_lock_touched", true, 1, params, NULL, sqlstate,
                                          message, message_size)) != RUN_OK ||
                   (*result = applier_run(a, lt->settle, true, 1, params, NULL, sqlstate, message,
                                          message_size)) != RUN_OK) {
            return false;
        }
    }
    return true;
}

/* The gate (DS_GATE_SESSION_SQL), at the start of a transaction run statement by statement. */
run_result_t applier_run_gate(ds_applier_t *a, char *sqlstate, char *message, size_t message_size)
{
    if (!a->gate_tables)
        return RUN_OK;
    return applier_run(a, "ds_gate", true, 1, (const char *const *)&a->gate_tables, NULL, sqlstate,
                       message, message_size);
}

/* A failed settle or gate as a status: transient ones (a deadlock with another process
 * settling, a table rebuilt in place by replay) roll the batch back to be tried again. */
ds_applier_status_t applier_retry_or_fail(ds_applier_t *a, run_result_t rr, const char *sqlstate,
                                          const char *message, char *errstr, size_t errstr_size)
{
    if (rr == RUN_SQL_ERROR && transient_sqlstate(sqlstate)) {
        ds_fail(errstr, errstr_size, "target \"%s\": %s; the batch is rolled back and tried "
                "again", a->name, message);
        applier_recover(a);
        return DS_APPLIER_RETRY;
    }
    return applier_slow_failure(a, rr, "settling merged rows or checking the replay gate", message,
                                errstr, errstr_size);
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
ds_applier_status_t applier_fenced(ds_applier_t *a, ds_offsets_t *offsets, int db,
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
bool applier_send_offsets(ds_applier_t *a, pipeline_t *p, int db, const ds_batch_t *batch,
                          const ds_offsets_t *offsets, char *sqlstate, char *message,
                          size_t message_size, run_result_t *result, int *fenced_part)
{
    *fenced_part = -1;
    for (int i = 0; i < ds_batch_npartitions(batch); i++) {
        const ds_batch_partition_t *bp = ds_batch_partition(batch, i);
        char partition[16], next[24], generation[24], commit[DS_LSN_STRLEN], lsn[DS_LSN_STRLEN];
        const char *params[7] = {a->group_id, bp->topic, partition, next, generation, NULL, NULL};
        ds_source_pos_t newest = bp->newest;

        if (bp->last_offset + 1 <= ds_offsets_get(offsets, db, bp->topic, bp->partition))
            continue;
        if (newest.commit != DS_INVALID_LSN) {
            params[5] = ds_lsn_format(newest.commit, commit);
            params[6] = ds_lsn_format(newest.lsn, lsn);
        }
        snprintf(partition, sizeof(partition), "%d", (int)bp->partition);
        applier_format_int(next, sizeof(next), bp->last_offset + 1);
        applier_format_int(generation, sizeof(generation),
                           ds_offsets_generation(offsets, db, bp->topic, bp->partition));
        if (p) {
            if (!applier_pipeline_send(p, OP_FENCE, i, "ds_offsets_put", true, 7, params))
                return false;
        } else if ((*result = applier_run(a, "ds_offsets_put", true, 7, params, NULL, sqlstate,
                                          message, message_size)) != RUN_OK) {
            if (*result == RUN_SQL_ERROR && strcmp(sqlstate, SQLSTATE_FENCED) == 0)
                *fenced_part = i;
            return false;
        }
    }
    return true;
}

bool applier_advance_offsets(ds_offsets_t *offsets, int db, const ds_batch_t *batch)
{
    for (int i = 0; i < ds_batch_npartitions(batch); i++) {
        const ds_batch_partition_t *bp = ds_batch_partition(batch, i);

        if (!ds_offsets_advance(offsets, db, bp->topic, bp->partition, bp->last_offset + 1))
            return false;
    }
    return true;
}

void applier_pending_put_params(ds_applier_t *a, pending_params_t *pp, const char *target,
                                const ds_batch_msg_t *m, const char *error)
{
    size_t key_len;
    const char *key = applier_source_key(m, &key_len);

    snprintf(pp->partition, sizeof(pp->partition), "%d", (int)m->partition);
    applier_format_int(pp->offset, sizeof(pp->offset), m->offset);
    pp->values[0] = target;
    pp->values[1] = m->topic;
    pp->values[2] = pp->partition;
    pp->values[3] = pp->offset;
    pp->values[4] = applier_cstr(&a->key_text, key, key_len); /* JSON text: no NUL inside */
    pp->values[5] =
        m->value_text ? applier_cstr(&a->value_text, m->value_text, m->value_len) : NULL;
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
    /* Nothing waits and every write was applied (the common batch): no key has anything to
     * decide, so no per-write key building and hashing. */
    if (ds_strset_count(a->pending) == 0) {
        int i = 0;

        while (i < a->nwork && a->work[i].applied)
            i++;
        if (i == a->nwork)
            return true;
    }
    for (int i = a->nwork - 1; i >= 0; i--) {
        const work_t *w = &a->work[i];
        const ds_batch_msg_t *m = ds_batch_at(batch, w->msg);
        const ds_batch_write_t *bw = &m->writes[w->write];
        const char *target = bw->target->id;
        size_t key_len;
        const char *key = applier_source_key(m, &key_len);
        char offset[24];

        applier_make_partition_key(a, target, m);
        if (ds_strset_contains(a->truncated, a->key.data, a->key.len))
            continue;
        applier_format_int(offset, sizeof(offset), m->offset);
        if (bw->kind == DS_WRITE_TRUNCATE) {
            char partition[16];
            const char *params[4] = {target, m->topic, offset, partition};

            snprintf(partition, sizeof(partition), "%d", (int)m->partition);
            if (!ds_strset_add(a->truncated, a->key.data, a->key.len))
                return false;
            if (ds_strset_count(a->pending) > 0) {
                *touched = true;
                if (!applier_pipeline_send(p, OP_BOOKKEEPING, -1, "ds_pending_del_topic", true, 4,
                                           params))
                    return false;
            }
            continue;
        }
        applier_make_key(a, target, m->topic, key, key_len);
        if (ds_strset_contains(a->decided, a->key.data, a->key.len))
            continue;
        if (!ds_strset_add(a->decided, a->key.data, a->key.len))
            return false;
        if (!w->applied) {
            pending_params_t pp;

            applier_pending_put_params(a, &pp, target, m, MISSING_PARENT);
            *touched = true;
            stats->pending_added++;
            ds_debug("target \"%s\": %s [%d] @%" PRId64 " waits for its parent (%s)", a->name,
                     m->topic, (int)m->partition, m->offset, target);
            if (!applier_pipeline_send(p, OP_BOOKKEEPING, -1, "ds_pending_put", true, 7, pp.values))
                return false;
        } else if (ds_strset_contains(a->pending, a->key.data, a->key.len)) {
            const char *params[4] = {target, m->topic, applier_cstr(&a->key_text, key, key_len),
                                     offset};

            *touched = true;
            if (!applier_pipeline_send(p, OP_BOOKKEEPING, -1, "ds_pending_del", true, 4, params))
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
        return applier_pipeline_send(p, OP_BOOKKEEPING, -1, stmt, true, nparams, params);
    *result = applier_run(a, stmt, true, nparams, params, NULL, sqlstate, message, message_size);
    return *result == RUN_OK;
}

/* What writing the record of @p m's dead letter for @p target is, for its error message. */
const char *applier_dead_record_what(char *buf, size_t size, const ds_batch_msg_t *m,
                                     const char *target)
{
    snprintf(buf, size, "writing dualsync.dead_letters for %s [%d] @%" PRId64 " target %s",
             m->topic, (int)m->partition, m->offset, target ? target : "-");
    return buf;
}

/* Records the dead letter of @p m for @p target (NULL: the change as a whole). */
bool applier_put_dead_record(ds_applier_t *a, pipeline_t *p, const ds_batch_msg_t *m,
                             const char *target, const char *error, char *sqlstate, char *message,
                             size_t message_size, run_result_t *result)
{
    char partition[16], offset[24];
    size_t key_len;
    const char *key = applier_source_key(m, &key_len);
    const char *params[6];

    applier_make_dead_key(a, m->topic, key, key_len);
    if (!ds_strset_add(a->dead_keys, a->key.data, a->key.len)) {
        snprintf(message, message_size, "out of memory");
        *result = RUN_SQL_ERROR;
        return false;
    }
    snprintf(partition, sizeof(partition), "%d", (int)m->partition);
    applier_format_int(offset, sizeof(offset), m->offset);
    params[0] = target ? target : "";
    params[1] = m->topic;
    params[2] = partition;
    params[3] = offset;
    params[4] = applier_cstr(&a->key_text, key, key_len); /* JSON text: no NUL inside */
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
bool applier_records(const ds_applier_t *a, const ds_batch_msg_t *m)
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
bool applier_send_dead_records(ds_applier_t *a, pipeline_t *p, int db, ds_batch_t *batch,
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
        key = applier_source_key(m, &key_len);
        if (a->dlq_retry) {
            if (flags & (MSG_SUPERSEDED | MSG_DEAD))
                continue; /* nothing written: its record is gone, or was just put again */
            if (!m->error && !rejects(m, m->only_target)) {
                const char *params[4] = {m->only_target ? m->only_target : "", m->topic,
                                         applier_cstr(&a->key_text, key, key_len), offset};

                applier_format_int(offset, sizeof(offset), m->offset);
                if (m->recorded &&
                    !bookkeep(a, p, flags & MSG_CHECKED ? "ds_dead_done_checked" : "ds_dead_done",
                              4, params, sqlstate, message, message_size, result))
                    return false;
                continue;
            }
        } else if (watch) {
            applier_make_dead_key(a, m->topic, key, key_len);
            if (truncates(m)) {
                char partition[16];
                const char *params[3] = {m->topic, offset, partition};

                applier_format_int(offset, sizeof(offset), m->offset);
                snprintf(partition, sizeof(partition), "%d", (int)m->partition);
                if (!bookkeep(a, p, "ds_dead_supersede_topic", 3, params, sqlstate, message,
                              message_size, result))
                    return false;
            } else if (ds_strset_contains(a->dead_keys, a->key.data, a->key.len)) {
                const char *params[3] = {m->topic, applier_cstr(&a->key_text, key, key_len),
                                         offset};

                applier_format_int(offset, sizeof(offset), m->offset);
                if (!bookkeep(a, p, "ds_dead_supersede", 3, params, sqlstate, message,
                              message_size, result))
                    return false;
            }
        }
        if (m->error && applier_records(a, m)) {
            if (!applier_put_dead_record(a, p, m, m->only_target, m->error, sqlstate, message,
                                         message_size, result))
                return false;
        }
        for (int r = 0; r < m->nrejects && applier_records(a, m); r++) {
            const ds_batch_reject_t *rj = &m->rejects[r];

            if (m->only_target && strcmp(m->only_target, rj->target) != 0)
                continue;
            if (!applier_put_dead_record(a, p, m, rj->target, rj->error, sqlstate, message,
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
ds_applier_status_t applier_drop_superseded(ds_applier_t *a, ds_batch_t *batch, char *errstr,
                                            size_t errstr_size)
{
    ds_applier_status_t st = applier_origin_setup(a, errstr, errstr_size);
    int kept = 0, last = -1;

    if (st != DS_APPLIER_OK)
        return st;
    for (int i = 0; i < a->nwork; i++) {
        const work_t *w = &a->work[i];
        ds_batch_msg_t *m = ds_batch_at(batch, w->msg);

        if (w->msg != last && m->recorded && !(a->msg_flags[w->msg] & MSG_SUPERSEDED)) {
            size_t key_len;
            const char *key = applier_source_key(m, &key_len);
            char offset[24], sqlstate[6], message[1024];
            const char *params[4] = {m->only_target ? m->only_target : "", m->topic, NULL, offset};
            PGresult *r = NULL;
            run_result_t rr;

            params[2] = applier_cstr(&a->key_text, key, key_len);
            applier_format_int(offset, sizeof(offset), m->offset);
            rr = applier_run(a, "ds_dead_check", true, 4, params, &r, sqlstate, message,
                             sizeof(message));
            if (rr != RUN_OK)
                return applier_slow_failure(a, rr, "reading dualsync.dead_letters", message, errstr,
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
void applier_drop_sent(ds_applier_t *a)
{
    if (!a->sent_batch)
        return;
    a->sent_batch = NULL;
    if (!a->sent.broken)
        applier_pipeline_wait(&a->sent);
    applier_recover(a);
}

/*
 * Round trip 1 of the fast path, sent up to its sync point: origin setup, BEGIN, the writes
 * of a->work. Returns whether the writes went as batch statements.
 */
static bool send_writes(ds_applier_t *a, pipeline_t *p, ds_batch_t *batch)
{
    const char *origin_params[1] = {a->origin};
    bool set_based = false;

    if (applier_pipeline_begin(p, a)) {
        if (!a->origin_held)
            applier_pipeline_send(p, OP_ORIGIN_SETUP, -1, "ds_origin_setup", true, 1,
                                  origin_params);
        applier_pipeline_send(p, OP_BEGIN, -1, "BEGIN", false, 0, NULL);
        if (a->gate_tables)
            applier_pipeline_send(p, OP_BOOKKEEPING, -1, "ds_gate", true, 1,
                                  (const char *const *)&a->gate_tables);
        if ((set_based = batch_fits(a, batch))) {
            send_batch_writes(a, p, batch);
        } else {
            for (int i = 0; i < a->nwork && !p->broken; i++) {
                const work_t *w = &a->work[i];
                const ds_batch_write_t *bw = &ds_batch_at(batch, w->msg)->writes[w->write];

                applier_pipeline_send(p, OP_WRITE, i, applier_statement_of(a, w->local, bw->kind),
                                      true, bw->nparams, (const char *const *)bw->params);
            }
        }
        /* Deferred constraints are checked now rather than at COMMIT: the same check over
         * the same writes (nothing after this point writes to the targets), but in the
         * round trip the database works through while apply maps the next batch. */
        applier_pipeline_send(p, OP_BOOKKEEPING, -1, "SET CONSTRAINTS ALL IMMEDIATE", false, 0,
                              NULL);
        applier_pipeline_sync(p);
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
        applier_pipeline_wait(&p);
    if (p.broken) {
        ds_fail(errstr, errstr_size, "target \"%s\": connection lost: %s", a->name, p.error);
        *status = DS_APPLIER_RETRY;
        return PATH_STATUS;
    }
    if (p.error_op >= 0) {
        const op_t *op = &a->ops[p.error_op];

        applier_recover(a);
        if (op->kind == OP_ORIGIN_SETUP) {
            *status = applier_origin_setup_failed(a, p.sqlstate, p.error, errstr, errstr_size);
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
        applier_recover(a);
        *status = DS_APPLIER_FAILED;
        return PATH_STATUS;
    }

    /* Round trip 2: the bookkeeping and COMMIT. */
    if (applier_pipeline_begin(&p, a)) {
        char sqlstate[6], message[8];
        run_result_t unused;
        int unused_part;

        complete = applier_send_settle(a, &p, batch, sqlstate, message, sizeof(message), &unused) &&
                   send_pending_decisions(a, &p, batch, stats, &touched) &&
                   applier_send_dead_records(a, &p, db, batch, offsets, sqlstate, message,
                                             sizeof(message), &unused) &&
                   applier_send_offsets(a, &p, db, batch, offsets, sqlstate, message,
                                        sizeof(message), &unused, &unused_part);
        /* Without all its bookkeeping the transaction must not commit. */
        if (complete) {
            applier_pipeline_send(&p, OP_COMMIT, -1, "COMMIT", false, 0, NULL);
            applier_pipeline_send(&p, OP_ORIGIN_RESET, -1, "ds_origin_reset", true, 0, NULL);
        }
        applier_pipeline_finish(&p);
    }
    if (!complete && !p.broken) {
        stats->pending_added = pending_before;
        applier_recover(a);
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
        applier_recover(a);
        *status = applier_fenced(a, offsets, db, bp->topic, bp->partition, errstr, errstr_size);
        if (*status == DS_APPLIER_FENCED && touched) {
            char reload[512];

            /* The decisions sent were rolled back: what is pending is what the table says. */
            if (applier_load_pending_keys(a, reload, sizeof(reload)) != DS_APPLIER_OK)
                ds_warning("%s", reload);
        }
        return PATH_STATUS;
    }
    if (p.error_op >= 0 && transient_sqlstate(p.sqlstate)) {
        /* A deadlock settling with another process (mapping_sql.c, "Settling"), typically:
         * the same batch again, not message by message. */
        stats->pending_added = pending_before;
        applier_recover(a);
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
        applier_recover(a);
        return PATH_SLOW;
    }
    applier_recover(a); /* after a failed origin reset only */
    for (int i = 0; i < a->nwork; i++) {
        stats->writes += a->work[i].applied;
        applier_count_written(a, batch, i);
    }
    stats->transactions++;
    stats->set_based += set_based;
    if (!applier_advance_offsets(offsets, db, batch)) {
        ds_fail(errstr, errstr_size, "out of memory");
        *status = DS_APPLIER_FAILED;
        return PATH_STATUS;
    }
    if (touched)
        *status = applier_load_pending_keys(a, errstr, errstr_size);
    else
        *status = DS_APPLIER_OK;
    return *status == DS_APPLIER_OK ? PATH_DONE : PATH_STATUS;
}

void ds_applier_send(ds_applier_t *a, int db, ds_batch_t *batch, ds_offsets_t *offsets)
{
    applier_drop_sent(a);
    /* dlq retry: which dead letters to write is decided with the origin held, first. */
    if (a->dlq_retry || applier_lost(a) || !collect_work(a, db, batch, offsets) || a->nwork == 0)
        return;
    a->sent_set_based = send_writes(a, &a->sent, batch);
    a->sent_batch = batch;
}

void ds_applier_push_sent(ds_applier_t *a)
{
    if (a->sent_batch && !a->sent.broken)
        applier_pipeline_pump(&a->sent);
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
        applier_drop_sent(a);
        return applier_fenced(a, offsets, db, bp->topic, bp->partition, errstr, errstr_size);
    }
    /* The writes sent for this batch, with a->work as collect_work() left it then. */
    a->sent_batch = NULL;
    if (ds_batch_count(batch) > a->msg_flags_cap) {
        uint8_t *flags = realloc(a->msg_flags, (size_t)ds_batch_count(batch));

        if (!flags) {
            applier_drop_sent(a);
            ds_fail(errstr, errstr_size, "out of memory");
            return DS_APPLIER_FAILED;
        }
        a->msg_flags = flags;
        a->msg_flags_cap = ds_batch_count(batch);
    }
    if (a->msg_flags_cap > 0)
        memset(a->msg_flags, 0, (size_t)a->msg_flags_cap);
    if (!sent) {
        applier_drop_sent(a);
        if (applier_lost(a)) {
            ds_fail(errstr, errstr_size, "target \"%s\": not connected", a->name);
            return DS_APPLIER_RETRY;
        }
        if (!collect_work(a, db, batch, offsets)) {
            ds_fail(errstr, errstr_size, "out of memory");
            return DS_APPLIER_FAILED;
        }
        if (a->nwork == 0 && !moves_offsets(a, db, batch, offsets))
            return DS_APPLIER_OK;
        if (a->dlq_retry &&
            (st = applier_drop_superseded(a, batch, errstr, errstr_size)) != DS_APPLIER_OK)
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
    return applier_slow_path(a, db, batch, offsets, hooks, stats, errstr, errstr_size);
}
