/*
 * applier_slow.c: the savepoint slow path. Each message of a batch is written alone inside
 * a savepoint; when it fails, each of its targets alone, so that only the failing targets'
 * writes become dead letters or wait in dualsync.pending for their parent.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "applier_internal.h"
#include "dualsync/log.h"
#include "dualsync/pgutil.h"

/* Turns an applier_run() failure in the slow path into a status. */
ds_applier_status_t applier_slow_failure(ds_applier_t *a, run_result_t rr, const char *what,
                                         const char *message, char *errstr, size_t errstr_size)
{
    ds_fail(errstr, errstr_size, "target \"%s\": %s: %s", a->name, what, message);
    if (rr == RUN_LOST)
        return DS_APPLIER_RETRY;
    applier_recover(a);
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


/* Fires the deferred checks queued so far, then defers again (see above). */
static run_result_t check_deferred(ds_applier_t *a, char *sqlstate, char *message,
                                   size_t message_size)
{
    run_result_t rr = applier_run(a, "SET CONSTRAINTS ALL IMMEDIATE", false, 0, NULL, NULL,
                                  sqlstate, message, message_size);

    if (rr != RUN_OK)
        return rr;
    return applier_run(a, "SET CONSTRAINTS ALL DEFERRED", false, 0, NULL, NULL, sqlstate, message,
                       message_size);
}

void applier_exclude(unit_t *u, const char *sqlstate, const char *message)
{
    u->excluded = true;
    u->pending = strcmp(sqlstate, SQLSTATE_FOREIGN_KEY) == 0;
    snprintf(u->error, sizeof(u->error), "%s", message);
}

/* Undoes what was written since SAVEPOINT ds_message (and restores the constraint modes). */
static ds_applier_status_t rollback_units(ds_applier_t *a, char *errstr, size_t errstr_size)
{
    char sqlstate[6], message[1024];
    run_result_t rr = applier_run(a, "ROLLBACK TO SAVEPOINT ds_message", false, 0, NULL, NULL,
                                  sqlstate, message, sizeof(message));

    return rr == RUN_OK
               ? DS_APPLIER_OK
               : applier_slow_failure(a, rr, "ROLLBACK TO SAVEPOINT", message, errstr, errstr_size);
}

/* A write or check failed with something other than "this change is wrong". */
static ds_applier_status_t units_stop(ds_applier_t *a, run_result_t rr, const char *message,
                                      const char *retried, char *errstr, size_t errstr_size)
{
    if (rr == RUN_LOST)
        return applier_slow_failure(a, rr, "writing", message, errstr, errstr_size);
    applier_recover(a);
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
            applier_exclude(&units[u], state, why);
            found = true;
        }
        if ((st = rollback_units(a, errstr, errstr_size)) != DS_APPLIER_OK)
            return st;
    }
    for (int u = 0; u < nunits && !found; u++) {
        if (!units[u].excluded)
            applier_exclude(&units[u], sqlstate, message);
    }
    return DS_APPLIER_OK;
}

/*
 * Writes the units inside SAVEPOINT ds_message with deferred constraints checked at the end,
 * excluding the units that cannot be written now until the rest succeeds as a whole.
 * @p retried says what happens after a transient error ("the batch is retried").
 */
ds_applier_status_t applier_write_units(ds_applier_t *a, unit_t *units, int nunits,
                                        units_writer_t writer, void *ctx, const char *retried,
                                        uint64_t *writes, char *errstr, size_t errstr_size)
{
    char sqlstate[6], message[1024];
    ds_applier_status_t st;
    run_result_t rr;

    if ((rr = applier_run(a, "SAVEPOINT ds_message", false, 0, NULL, NULL, sqlstate, message,
                          sizeof(message))) != RUN_OK)
        return applier_slow_failure(a, rr, "SAVEPOINT", message, errstr, errstr_size);
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
            applier_exclude(&units[failed], sqlstate, message);
        if ((st = rollback_units(a, errstr, errstr_size)) != DS_APPLIER_OK)
            return st;
        if (failed < 0 && (st = probe_units(a, units, nunits, writer, ctx, sqlstate, message,
                                            retried, errstr, errstr_size)) != DS_APPLIER_OK)
            return st;
    }
    if ((rr = applier_run(a, "RELEASE SAVEPOINT ds_message", false, 0, NULL, NULL, sqlstate,
                          message, sizeof(message))) != RUN_OK)
        return applier_slow_failure(a, rr, "RELEASE SAVEPOINT", message, errstr, errstr_size);
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
        rr = applier_run(a, applier_statement_of(a, w->local, bw->kind), true, bw->nparams,
                 (const char *const *)bw->params, &r, sqlstate, message, message_size);
        *failed = u;
        if (rr != RUN_OK)
            return rr;
        w->applied = applier_answer_applied(r);
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
    const char *key = applier_source_key(m, &key_len);
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
    applier_format_int(offset, sizeof(offset), m->offset);
    st = applier_write_units(a, units, mu.nunits, write_message_units, &mu, "the batch is retried",
                             &stats->writes, errstr, errstr_size);
    if (st != DS_APPLIER_OK)
        goto done;
    for (int i = first; i < end; i++) {
        if (!units[unit_of_local(&mu, a->work[i].local)].excluded)
            applier_count_written(a, batch, i);
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

                applier_pending_put_params(a, &pp, target, m, e->error);
                rr = applier_run(a, "ds_pending_put", true, 7, pp.values, NULL, sqlstate, message,
                                 sizeof(message));
                if (rr != RUN_OK) {
                    st = applier_slow_failure(a, rr, "writing dualsync.pending", message, errstr,
                                              errstr_size);
                    goto done;
                }
                *pended = true;
                stats->pending_added++;
                ds_debug("target \"%s\": %s [%d] @%" PRId64 " waits for its parent (%s): %s",
                         a->name, m->topic, (int)m->partition, m->offset, target, e->error);
            } else {
                ds_dead_letter_t dl = ds_batch_dead_letter(m, target, e->error);

                dl.recorded = applier_records(
                    a, m); /* applier_put_dead_record() below, in this transaction */
                stats->dead_letters++;
                if (!hooks->dead_letter(hooks->ctx, &dl, errstr, errstr_size)) {
                    applier_recover(a);
                    st = DS_APPLIER_FAILED;
                    goto done;
                }
                a->msg_flags[a->work[first].msg] |= MSG_DEAD;
                m->failed_again = true;
                if (dl.recorded && !applier_put_dead_record(a, NULL, m, target, e->error, sqlstate,
                                                            message, sizeof(message), &rr)) {
                    char what[512];

                    st = applier_slow_failure(
                        a, rr, applier_dead_record_what(what, sizeof(what), m, target), message,
                        errstr, errstr_size);
                    goto done;
                }
            }
        } else if (*pended || ds_strset_count(a->pending) > 0) {
            const char *params[4] = {target, m->topic, applier_cstr(&a->key_text, key, key_len),
                                     offset};
            bool truncate = bw->kind == DS_WRITE_TRUNCATE;
            char partition[16];

            if (truncate) {
                snprintf(partition, sizeof(partition), "%d", (int)m->partition);
                params[2] = offset;
                params[3] = partition;
            }
            rr = applier_run(a, truncate ? "ds_pending_del_topic" : "ds_pending_del", true, 4,
                             params, NULL, sqlstate, message, sizeof(message));
            if (rr != RUN_OK) {
                st = applier_slow_failure(a, rr, "cleaning dualsync.pending", message, errstr,
                                          errstr_size);
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

ds_applier_status_t applier_slow_path(ds_applier_t *a, int db, ds_batch_t *batch,
                                      ds_offsets_t *offsets, const ds_applier_hooks_t *hooks,
                                      ds_applier_stats_t *stats, char *errstr, size_t errstr_size)
{
    char sqlstate[6], message[1024];
    run_result_t rr = RUN_OK;
    ds_applier_status_t st;
    bool pended = false;
    int fenced_part;

    stats->slow_paths++;
    if ((st = applier_origin_setup(a, errstr, errstr_size)) != DS_APPLIER_OK)
        return st;
    /* The origin was given back after the fast path: check again while it is held. */
    if (a->dlq_retry &&
        (st = applier_drop_superseded(a, batch, errstr, errstr_size)) != DS_APPLIER_OK)
        return st;
    if ((rr = applier_run(a, "BEGIN", false, 0, NULL, NULL, sqlstate, message, sizeof(message))) !=
            RUN_OK ||
        /* Deferred checks run at the end of each message (see write_units). */
        (rr = applier_run(a, "SET CONSTRAINTS ALL DEFERRED", false, 0, NULL, NULL, sqlstate,
                          message, sizeof(message))) != RUN_OK)
        return applier_slow_failure(a, rr, "BEGIN", message, errstr, errstr_size);
    if ((rr = applier_run_gate(a, sqlstate, message, sizeof(message))) != RUN_OK)
        return applier_retry_or_fail(a, rr, sqlstate, message, errstr, errstr_size);
    for (int first = 0; first < a->nwork;) {
        int end = first + 1;

        while (end < a->nwork && a->work[end].msg == a->work[first].msg)
            end++;
        st = slow_message(a, batch, first, end, hooks, stats, &pended, errstr, errstr_size);
        if (st != DS_APPLIER_OK)
            return st;
        first = end;
    }
    if (!applier_send_settle(a, NULL, batch, sqlstate, message, sizeof(message), &rr))
        return applier_retry_or_fail(a, rr, sqlstate, message, errstr, errstr_size);
    if (!applier_send_dead_records(a, NULL, db, batch, offsets, sqlstate, message, sizeof(message),
                                   &rr)) {
        if (rr == RUN_SQL_ERROR && strcmp(sqlstate, SQLSTATE_SUPERSEDED) == 0) {
            applier_recover(a);
            ds_fail(errstr, errstr_size,
                    "target \"%s\": a newer change of a dead letter's source row was applied "
                    "while it was being retried; the batch is redone",
                    a->name);
            return DS_APPLIER_RETRY;
        }
        return applier_slow_failure(a, rr, "writing dualsync.dead_letters", message, errstr,
                                    errstr_size);
    }
    if (!applier_send_offsets(a, NULL, db, batch, offsets, sqlstate, message, sizeof(message), &rr,
                              &fenced_part)) {
        if (fenced_part >= 0) {
            const ds_batch_partition_t *bp = ds_batch_partition(batch, fenced_part);

            applier_recover(a);
            st = applier_fenced(a, offsets, db, bp->topic, bp->partition, errstr, errstr_size);
            if (pended && st == DS_APPLIER_FENCED) {
                char reload[512];

                if (applier_load_pending_keys(a, reload, sizeof(reload)) != DS_APPLIER_OK)
                    ds_warning("%s", reload);
            }
            return st;
        }
        return applier_slow_failure(a, rr, "writing dualsync.offsets", message, errstr,
                                    errstr_size);
    }
    if (hooks->before_commit && !hooks->before_commit(hooks->ctx, errstr, errstr_size)) {
        applier_recover(a);
        return DS_APPLIER_FAILED;
    }
    if ((rr = applier_run(a, "COMMIT", false, 0, NULL, NULL, sqlstate, message, sizeof(message))) !=
        RUN_OK)
        return applier_slow_failure(a, rr, "COMMIT", message, errstr, errstr_size);
    stats->transactions++;
    applier_recover(a); /* gives the origin back */
    if (!applier_advance_offsets(offsets, db, batch)) {
        ds_fail(errstr, errstr_size, "out of memory");
        return DS_APPLIER_FAILED;
    }
    return pended ? applier_load_pending_keys(a, errstr, errstr_size) : DS_APPLIER_OK;
}
