/*
 * replay_rebuild.c: `dualsync replay`: the topics read into the shadows with apply's applier,
 * never past live apply
 * (design in include/dualsync/replay.h, the run in replay.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "dualsync/applier.h"
#include "dualsync/backfill.h"
#include "dualsync/batch.h"
#include "dualsync/buf.h"
#include "dualsync/consumer.h"
#include "dualsync/dlq.h"
#include "dualsync/log.h"
#include "dualsync/mapping.h"
#include "dualsync/offsets.h"
#include "dualsync/pgutil.h"
#include "dualsync/replay.h"
#include "replay_internal.h"

#include "replay_internal.h"

/* ---------------------------------------------------------------------------------------------
 * 3. Rebuilding
 * ------------------------------------------------------------------------------------------- */

static bool give_up(void *ctx)
{
    (void)ctx;
    return ds_replay_stop_signals >= 2;
}

bool ds_replay_hook_dead_letter(void *ctx, const ds_dead_letter_t *dl, char *errstr,
                                size_t errstr_size)
{
    replay_t *r = ctx;

    ds_warning("dead letter: %s [%d] @%" PRId64 "%s%s: %s", dl->topic, (int)dl->partition,
               dl->offset, dl->target ? " target " : "", dl->target ? dl->target : "", dl->error);
    if (!ds_dlq_send(r->dlq, dl, errstr, errstr_size))
        return false;
    r->dead_letters++;
    return true;
}

bool ds_replay_hook_before_commit(void *ctx, char *errstr, size_t errstr_size)
{
    replay_t *r = ctx;

    return ds_dlq_flush(r->dlq, give_up, NULL, errstr, errstr_size);
}

/* Evaluates one message as apply does (prepare_message in apply.c). */
static bool prepare_message(replay_t *r, ds_batch_msg_t *m)
{
    ds_write_list_t writes;
    json_error_t jerr;
    char why[2048], errstr[4096];
    ds_dead_letter_t dl;

    if (m->value_text && !(m->value = json_loadb(m->value_text, m->value_len, 0, &jerr))) {
        snprintf(why, sizeof(why), "the message value is not JSON: %s (line %d, column %d)",
                 jerr.text, jerr.line, jerr.column);
    } else if (ds_mapping_eval(r->set, m->topic, m->key ? m->key : "null", m->key ? m->key_len : 4,
                               m->value, &writes, why, sizeof(why))) {
        if (!ds_batch_set_writes(m, &writes) || !ds_batch_set_rejects(m, &writes))
            return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
        for (int i = 0; i < m->nrejects; i++) {
            dl = ds_batch_dead_letter(m, m->rejects[i].target, m->rejects[i].error);
            dl.recorded = true;
            if (!ds_replay_hook_dead_letter(r, &dl, errstr, sizeof(errstr)))
                return ds_fail(r->errstr, sizeof(r->errstr), "%s", errstr);
        }
        return true;
    }
    if (!ds_batch_set_error(m, why))
        return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
    dl = ds_batch_dead_letter(m, NULL, m->error);
    dl.recorded = true;
    if (!ds_replay_hook_dead_letter(r, &dl, errstr, sizeof(errstr)))
        return ds_fail(r->errstr, sizeof(r->errstr), "%s", errstr);
    return true;
}

/* Runs an applier step until it succeeds, reconnecting with backoff. */
typedef enum { STEP_APPLY, STEP_PENDING } step_t;

static bool applier_step(replay_t *r, step_t step, ds_batch_t *batch)
{
    int backoff = BACKOFF_MIN_MS;
    char errstr[4096];

    for (;;) {
        ds_applier_status_t st =
            step == STEP_APPLY ? ds_applier_apply(r->applier, 0, batch, r->offsets, &r->hooks,
                                                  &r->stats, errstr, sizeof(errstr))
                               : ds_applier_retry_pending(r->applier, 0, r->offsets, &r->hooks,
                                                          &r->stats, errstr, sizeof(errstr));

        if (st == DS_APPLIER_OK)
            return true;
        if (st != DS_APPLIER_RETRY || ds_replay_stop_signals)
            return ds_fail(r->errstr, sizeof(r->errstr), "%s", errstr);
        ds_warning("%s; retrying in %d ms", errstr, backoff);
        pause_ms(backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
        if (!ds_applier_connected(r->applier)) {
            ds_topic_partition_t *tp = calloc((size_t)r->nparts + 1, sizeof(*tp));

            if (!tp)
                return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
            for (int i = 0; i < r->nparts; i++)
                tp[i] = (ds_topic_partition_t){r->parts[i].topic, r->parts[i].partition, 0};
            st = ds_applier_connect(r->applier, errstr, sizeof(errstr));
            if (st == DS_APPLIER_OK)
                st = ds_applier_claim(r->applier, r->offsets, 0, tp, r->nparts, errstr,
                                             sizeof(errstr));
            free(tp);
            if (st != DS_APPLIER_OK && st != DS_APPLIER_RETRY)
                return ds_fail(r->errstr, sizeof(r->errstr), "%s", errstr);
        }
    }
}

/* Commits the batch whose writes flush_batch() sent, then retries the pending changes a parent
 * of it may have freed. */
static bool finish_inflight(replay_t *r)
{
    ds_batch_t *batch = r->inflight;
    uint64_t before = r->stats.writes;
    bool ok;

    if (!batch)
        return true;
    r->inflight = NULL;
    ok = applier_step(r, STEP_APPLY, batch);
    if (ok)
        r->messages += (uint64_t)ds_batch_count(batch);
    ds_batch_clear(batch);
    if (!r->spare)
        r->spare = batch;
    else
        ds_batch_free(batch);
    if (ok && r->stats.writes > before && ds_applier_pending(r->applier) > 0)
        ok = applier_step(r, STEP_PENDING, NULL);
    return ok;
}

/*
 * Maps the batch read so far and sends its writes, after committing the one before (as apply
 * does): the database writes one batch while the next is read and mapped. @p wait: commit it
 * too (the end of a pass, or nothing more to read for now).
 */
static bool flush_batch(replay_t *r, bool wait)
{
    int count = ds_batch_count(r->batch);

    if (count == 0)
        return !wait || finish_inflight(r);
    for (int i = 0; i < count; i++) {
        if (!prepare_message(r, ds_batch_at(r->batch, i)))
            return false;
    }
    if (!finish_inflight(r))
        return false;
    if (!r->spare && !(r->spare = ds_batch_new()))
        return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
    ds_applier_send(r->applier, 0, r->batch, r->offsets);
    r->inflight = r->batch;
    r->batch = r->spare;
    r->spare = NULL;
    return !wait || finish_inflight(r);
}

static rpart_t *find_part(replay_t *r, const char *topic, int32_t partition)
{
    for (int i = 0; i < r->nparts; i++) {
        if (r->parts[i].partition == partition && strcmp(r->parts[i].topic, topic) == 0)
            return &r->parts[i];
    }
    return NULL;
}

/* Where the replay stands in @p p: its stored next offset, or the bound a pass reached. */
static int64_t position(const replay_t *r, const rpart_t *p)
{
    int64_t stored = ds_offsets_get(r->offsets, 0, p->topic, p->partition);

    if (stored < 0)
        stored = 0;
    return stored > p->reached ? stored : p->reached;
}

int64_t ds_replay_behind(const replay_t *r)
{
    int64_t n = 0;

    for (int i = 0; i < r->nparts; i++) {
        int64_t pos = position(r, &r->parts[i]);

        n += r->parts[i].bound > pos ? r->parts[i].bound - pos : 0;
    }
    return n;
}

/*
 * Reads live apply's next offsets (L) into the parts' bounds; with @p lock, FOR UPDATE (the
 * swap: live apply cannot store offsets of these topics until it commits). A partition live
 * apply has not written yet has bound 0: nothing of it is in the live tables.
 */
bool ds_replay_read_bounds(replay_t *r, bool lock)
{
    const char **topics = calloc((size_t)ds_mapping_set_ntopics(r->set) + 1, sizeof(*topics));
    char *array;
    const char *params[2];
    PGresult *res;
    bool ok;

    if (!topics)
        return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
    for (int i = 0; i < ds_mapping_set_ntopics(r->set); i++)
        topics[i] = ds_mapping_set_topic(r->set, i);
    array = ds_pg_text_array(topics, ds_mapping_set_ntopics(r->set));
    free(topics);
    params[0] = r->config->apply_group_id;
    params[1] = array;
    ok = exec(r,
              lock ? "SELECT topic, partition, next_offset FROM dualsync.offsets"
                     " WHERE group_id = $1 AND topic = ANY($2::text[])"
                     " ORDER BY topic, partition FOR UPDATE"
                   : "SELECT topic, partition, next_offset FROM dualsync.offsets"
                     " WHERE group_id = $1 AND topic = ANY($2::text[])",
              2, params, PGRES_TUPLES_OK, &res, "reading live apply's offsets", NULL);
    free(array);
    if (!ok)
        return false;
    for (int i = 0; i < r->nparts; i++)
        r->parts[i].bound = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        rpart_t *p = find_part(r, PQgetvalue(res, i, 0), atoi(PQgetvalue(res, i, 1)));

        if (p)
            p->bound = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        else
            ds_warning("target \"%s\": live apply has offsets for %s [%s], which the topic does "
                       "not have (any more)",
                       r->dbname, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
    }
    PQclear(res);
    return true;
}

/* Reads every partition from where the replay stands up to its bound into the shadows. */
bool ds_replay_consume_to_bounds(replay_t *r)
{
    ds_topic_partition_t *assign = calloc((size_t)r->nparts + 1, sizeof(*assign));
    int nassign = 0, remaining;
    char errstr[1024];
    bool ok = false;

    if (!assign)
        return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
    for (int i = 0; i < r->nparts; i++) {
        rpart_t *p = &r->parts[i];
        int64_t pos = position(r, p);

        p->done = pos >= p->bound;
        if (p->done) {
            if (p->reached < p->bound)
                p->reached = p->bound;
            continue;
        }
        assign[nassign++] = (ds_topic_partition_t){p->topic, p->partition, pos};
    }
    remaining = nassign;
    if (remaining == 0) {
        free(assign);
        return true;
    }
    if (!ds_consumer_assign(r->consumer, assign, nassign, errstr, sizeof(errstr))) {
        free(assign);
        return ds_fail(r->errstr, sizeof(r->errstr), "%s", errstr);
    }
    free(assign);
    while (remaining > 0) {
        ds_kafka_msg_t msg;
        rpart_t *p;

        if (ds_replay_stop_signals) {
            ds_fail(r->errstr, sizeof(r->errstr),
                    "stopped on signal; the live tables are untouched, and the same command "
                    "resumes the replay");
            goto done;
        }
        switch (ds_consumer_poll(r->consumer, POLL_MS, &msg, errstr, sizeof(errstr))) {
        case DS_CONSUMER_MESSAGE:
            p = find_part(r, msg.topic, msg.partition);
            if (!p || p->done || msg.offset >= p->bound) {
                /* Past live apply: not for the shadows (yet). */
                if (p && !p->done) {
                    p->done = true;
                    p->reached = p->bound;
                    remaining--;
                }
                ds_consumer_release(&msg);
                break;
            }
            if (msg.offset + 1 >= p->bound) {
                p->done = true;
                p->reached = p->bound;
                remaining--;
            }
            if (!ds_batch_add(r->batch, &msg)) {
                ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
                goto done;
            }
            r->prog.done_rows++;
            r->prog.table_done++;
            ds_backfill_progress_report(&r->prog, false);
            if (ds_batch_count(r->batch) >= r->config->apply_batch_max_messages &&
                !flush_batch(r, false))
                goto done;
            break;
        case DS_CONSUMER_EOF:
            /* The partition's end: nothing below the bound is left to come. */
            p = find_part(r, msg.topic, msg.partition);
            if (p && !p->done) {
                p->done = true;
                p->reached = p->bound;
                remaining--;
            }
            break;
        case DS_CONSUMER_NOTHING:
            if (!flush_batch(r, true))
                goto done;
            break;
        case DS_CONSUMER_FAILED:
            ds_fail(r->errstr, sizeof(r->errstr), "%s", errstr);
            goto done;
        }
    }
    ok = flush_batch(r, true);
done:
    if (!ok) {
        /* Sent writes are rolled back by the applier's next call, or when it closes. */
        ds_batch_clear(r->batch);
        if (r->inflight) {
            ds_batch_free(r->spare);
            r->spare = r->inflight;
            ds_batch_clear(r->spare);
            r->inflight = NULL;
        }
    }
    return ok;
}

/* The mapped partitions, and the replay's stored offsets in them. */
bool ds_replay_list_partitions(replay_t *r)
{
    ds_topic_partition_t *tp;
    char errstr[1024];
    ds_applier_status_t st;

    for (int t = 0; t < ds_mapping_set_ntopics(r->set); t++) {
        const char *topic = ds_mapping_set_topic(r->set, t);
        ds_topic_partition_t *end = NULL;
        int nend = 0;

        if (!ds_consumer_end_offsets(r->consumer, topic, 10000, &end, NULL, &nend, errstr,
                                     sizeof(errstr)))
            return ds_fail(r->errstr, sizeof(r->errstr), "%s", errstr);
        r->parts = realloc(r->parts, sizeof(*r->parts) * (size_t)(r->nparts + nend + 1));
        if (!r->parts) {
            free(end);
            return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
        }
        for (int i = 0; i < nend; i++)
            r->parts[r->nparts++] = (rpart_t){topic, end[i].partition, 0, 0, false};
        free(end);
    }
    if (!(tp = calloc((size_t)r->nparts + 1, sizeof(*tp))))
        return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
    for (int i = 0; i < r->nparts; i++)
        tp[i] = (ds_topic_partition_t){r->parts[i].topic, r->parts[i].partition, 0};
    st = ds_applier_claim(r->applier, r->offsets, 0, tp, r->nparts, r->errstr,
                                 sizeof(r->errstr));
    free(tp);
    return st == DS_APPLIER_OK;
}

/* Rebuild passes until the shadows are close behind live apply. */
bool ds_replay_rebuild(replay_t *r)
{
    int64_t total;

    if (!ds_replay_read_bounds(r, false))
        return false;
    total = ds_replay_behind(r);
    r->prog = (ds_backfill_progress_t){
        .bar = r->opt->progress_bar,
        .what = "replay",
        .schema = r->dbname,
        .table = "messages",
        .start_us = ds_now_us(),
        .table_start_us = ds_now_us(),
        .total_rows = total,
        .table_total = total,
    };
    for (;;) {
        int64_t left;

        if (!ds_replay_consume_to_bounds(r) || !ds_replay_read_bounds(r, false))
            return false;
        left = ds_replay_behind(r);
        /* Live apply moved on meanwhile: that much more to read. */
        r->prog.total_rows = r->prog.done_rows + left;
        r->prog.table_total = r->prog.total_rows;
        if (left <= SWAP_MAX_TAIL)
            break;
    }
    ds_backfill_progress_report(&r->prog, true);
    return true;
}

