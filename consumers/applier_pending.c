/*
 * applier_pending.c: the retry of the changes waiting in dualsync.pending for a parent row,
 * after every batch and on a timer, one source key at a time, in its partition's order.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "applier_internal.h"
#include "dualsync/log.h"
#include "dualsync/pgutil.h"

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
            int local = applier_local_index(a, tw->target);
            PGresult *r = NULL;
            run_result_t rr;
            bool applied;

            if (!ds_target_is(tw->target, g->pu[u].target) || local < 0 ||
                !applier_statement_of(a, local, tw->kind))
                continue;
            rr = applier_run(a, applier_statement_of(a, local, tw->kind), true, tw->nparams,
                             tw->params, &r, sqlstate, message, message_size);
            if (rr != RUN_OK)
                return rr;
            applied = applier_answer_applied(r);
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
        applier_run(a, "SAVEPOINT ds_explain", false, 0, NULL, NULL, sqlstate, message,
                    sizeof(message)) == RUN_OK) {
        for (int w = 0; w < list.nwrites; w++) {
            if (ds_target_is(list.writes[w].target, pu->target) &&
                list.writes[w].kind == DS_WRITE_UPSERT)
                ds_mapping_explain_wait(a->set, &list.writes[w], a->conn, &why);
        }
        applier_run(a,
                    PQtransactionStatus(a->conn) == PQTRANS_INERROR
                        ? "ROLLBACK TO SAVEPOINT ds_explain"
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
                applier_local_index(a, ds_mapping_set_target(a->set, t)) >= 0) {
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
            applier_exclude(un, "", message);
        } else if (!eval_pending(a->set, pu, &list, message, sizeof(message))) {
            applier_exclude(un, "", message);
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
    st = applier_write_units(a, units, g.nunits, write_pending_units, &g,
                             "retrying the pending changes", &writes, errstr, errstr_size);
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

            dl.recorded = !a->dlq_retry; /* applier_put_dead_record() below, in this transaction */
            stats->dead_letters++;
            if (!hooks->dead_letter(hooks->ctx, &dl, errstr, errstr_size)) {
                applier_recover(a);
                st = DS_APPLIER_FAILED;
                goto done;
            }
            if (dl.recorded &&
                !applier_put_dead_record(a, NULL, &pu->m, pu->target->id, units[u].error, sqlstate,
                                         message, sizeof(message), &rr)) {
                char what[512];

                st = applier_slow_failure(
                    a, rr, applier_dead_record_what(what, sizeof(what), &pu->m, pu->target->id),
                    message, errstr, errstr_size);
                goto done;
            }
        } else {
            stats->pending_done++;
            for (int k = 0; k < 3; k++)
                a->written[pu->order][k] += pu->written[k];
        }
        (*resolved)++;
        if ((rr = applier_run(a, "ds_pending_del_id", true, 1, params, NULL, sqlstate, message,
                              sizeof(message))) != RUN_OK) {
            st = applier_slow_failure(a, rr, "cleaning dualsync.pending", message, errstr,
                                      errstr_size);
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
        applier_format_int(generation, sizeof(generation),
                           ds_offsets_generation(offsets, db, topic, (int32_t)atoi(partition)));
        rr = applier_run(a, "ds_offsets_hold", true, 4, params, NULL, sqlstate, message,
                         sizeof(message));
        if (rr == RUN_SQL_ERROR && strcmp(sqlstate, SQLSTATE_FENCED) == 0) {
            applier_recover(a);
            return applier_fenced(a, offsets, db, topic, (int32_t)atoi(partition), errstr,
                                  errstr_size);
        }
        if (rr != RUN_OK)
            return applier_slow_failure(a, rr,
                                        "checking the claims of the pending rows' partitions",
                                        message, errstr, errstr_size);
    }
    return DS_APPLIER_OK;
}

ds_applier_status_t ds_applier_retry_pending(ds_applier_t *a, int db, ds_offsets_t *offsets,
                                             const ds_applier_hooks_t *hooks,
                                             ds_applier_stats_t *stats, char *errstr,
                                             size_t errstr_size)
{
    applier_drop_sent(a);
    for (int pass = 0; pass < MAX_PENDING_PASSES && ds_strset_count(a->pending) > 0; pass++) {
        PGresult *rows = NULL;
        char sqlstate[6], message[1024];
        run_result_t rr;
        ds_applier_status_t st;
        int resolved = 0;

        if (applier_lost(a)) {
            ds_fail(errstr, errstr_size, "target \"%s\": not connected", a->name);
            return DS_APPLIER_RETRY;
        }
        if ((st = applier_origin_setup(a, errstr, errstr_size)) != DS_APPLIER_OK)
            return st;
        if ((rr = applier_run(a, "BEGIN", false, 0, NULL, NULL, sqlstate, message,
                              sizeof(message))) != RUN_OK ||
            /* Deferred checks run at the end of each source key's changes (write_units). */
            (rr = applier_run(a, "SET CONSTRAINTS ALL DEFERRED", false, 0, NULL, NULL, sqlstate,
                              message, sizeof(message))) != RUN_OK ||
            (rr = applier_run(a, "ds_pending_rows", true, 0, NULL, &rows, sqlstate, message,
                              sizeof(message))) != RUN_OK)
            return applier_slow_failure(a, rr, "reading dualsync.pending", message, errstr,
                                        errstr_size);
        if ((rr = applier_run_gate(a, sqlstate, message, sizeof(message))) != RUN_OK) {
            PQclear(rows);
            return applier_retry_or_fail(a, rr, sqlstate, message, errstr, errstr_size);
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
        if (!applier_send_settle(a, NULL, NULL, sqlstate, message, sizeof(message), &rr))
            return applier_retry_or_fail(a, rr, sqlstate, message, errstr, errstr_size);
        if (hooks->before_commit && !hooks->before_commit(hooks->ctx, errstr, errstr_size)) {
            applier_recover(a);
            return DS_APPLIER_FAILED;
        }
        if ((rr = applier_run(a, "COMMIT", false, 0, NULL, NULL, sqlstate, message,
                              sizeof(message))) != RUN_OK)
            return applier_slow_failure(a, rr, "COMMIT", message, errstr, errstr_size);
        applier_recover(a);
        if ((st = applier_load_pending_keys(a, errstr, errstr_size)) != DS_APPLIER_OK)
            return st;
        if (resolved == 0)
            break;
        ds_debug("target \"%s\": %d pending changes resolved, %zu still waiting", a->name, resolved,
                 ds_strset_count(a->pending));
    }
    return DS_APPLIER_OK;
}
