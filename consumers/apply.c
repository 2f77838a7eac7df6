/*
 * apply.c: the apply loop (and `dlq retry`, the same loop over the dead-letter topic).
 *
 * One thread, no event loop: apply only ever waits for one thing at a time (the next message,
 * or one database's answer), so the loop is a plain poll - batch - commit cycle. Signals only
 * set a flag (pg_recvlogical's rule) that the loop checks between polls, at most
 * POLL_MS apart.
 *
 * One batch:
 *   1. every message is evaluated once (ds_mapping_eval); one the mappings reject becomes a
 *      dead letter (or stops apply, with on_error "stop") - unless every database already has
 *      it, in which case nothing at all is done with it;
 *   2. each target database in turn writes the batch and its offsets in one transaction
 *      (applier.c); dead letters are flushed to Kafka before each COMMIT;
 *   3. the offsets are committed to Kafka (for lag tools only);
 *   4. databases that were written retry their dualsync.pending rows.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "dualsync/applier.h"
#include "dualsync/apply.h"
#include "dualsync/batch.h"
#include "dualsync/buf.h"
#include "dualsync/consumer.h"
#include "dualsync/dlq.h"
#include "dualsync/jsonregion.h"
#include "dualsync/log.h"
#include "dualsync/mapping.h"
#include "dualsync/metrics.h"
#include "dualsync/metrics_http.h"
#include "dualsync/offsets.h"
#include "dualsync/pgutil.h"

#define POLL_MS                   200
/* How often the loop serves the metrics endpoint while messages keep coming. */
#define HTTP_CHECK_INTERVAL_US    INT64_C(10000)
#define PROGRESS_INTERVAL_US      INT64_C(30000000)
#define PENDING_RETRY_INTERVAL_US INT64_C(5000000)
#define RECONNECT_BACKOFF_MIN_MS  200
#define RECONNECT_BACKOFF_MAX_MS  30000
/* dlq retry: how long to wait for the group to hand out the dead-letter partitions. */
#define DLQ_RETRY_ASSIGN_TIMEOUT_US INT64_C(60000000)

/* SIGINT/SIGTERM received (a count: the second one gives up waiting for a database). */
static volatile sig_atomic_t stop_signals;

/*
 * The metrics endpoint, or NULL. Apply has no event loop to hang it on, and its waits are
 * few and bounded: the poll of Kafka (at most POLL_MS), pause_ms (backoff while a database
 * is away), and the databases' answers. So libmicrohttpd runs without a thread, "external"
 * style: its epoll descriptor is checked without waiting by the loop (one poll() at most every
 * HTTP_CHECK_INTERVAL_US, libmicrohttpd runs only when it is readable or its own timeout is
 * due), and pause_ms waits on it instead of sleeping. A request therefore waits at most
 * POLL_MS, or one database round trip, and costs apply about nothing when there is none. A
 * libev loop would change apply's structure for no gain here.
 */
static ds_metrics_http_t *serving;

/*
 * Test hook, for the integration tests only (tests/integration/test_apply_group.py): with
 * DS_TEST_PAUSE_BEFORE_WRITE_MS=N in the environment, apply says so and waits N ms between
 * mapping a batch and sending its writes, so that a test can freeze the process at exactly
 * that point (a change read and mapped, nothing of it written yet). 0: no pause.
 */
static int test_pause_before_write_ms;

static void on_signal(int signo)
{
    (void)signo;
    stop_signals++;
}

typedef enum run_mode {
    MODE_APPLY,     /* the change topics */
    MODE_DLQ_RETRY, /* the dead-letter topic, until its end as of the start */
} run_mode_t;

/* dlq retry: how far one dead-letter partition has been handled. */
typedef struct dlq_progress {
    int32_t partition;
    int64_t end;      /* its high watermark when the run started */
    int64_t position; /* next offset to handle; -1 until assigned */
} dlq_progress_t;

typedef struct apply {
    const ds_config_t *config;
    run_mode_t mode;
    char *group_id;     /* apply.group_id, or "<apply.group_id>.dlq-retry" */
    char *instance_id;  /* apply.instance_id, or derived (see "Origins") */
    char *member_id;    /* group.instance.id: instance_id and a hash of the topics read */
    int instance_lock;  /* the lock file descriptor behind a derived instance_id, or -1 */
    char *origin;       /* this process's replication origin */
    char *owner;        /* dualsync.offsets.owner of this process's claims */
    bool stop_on_error; /* apply.on_error = "stop" (apply mode only) */
    ds_mapping_set_t *set;
    ds_applier_t **dbs; /* one per config target, in config order */
    int ndbs;
    ds_offsets_t *offsets; /* what each database has stored */
    ds_consumer_t *consumer;
    ds_dlq_t *dlq;
    ds_batch_t *batch;    /* the batch being read from Kafka */
    ds_batch_t *inflight; /* the batch before it: writes sent (ds_applier_send), not committed
                           * yet; NULL when there is none */
    ds_batch_t *spare;    /* an empty batch, to read into once the current one is sent */
    ds_batch_t *applying; /* the batch the database steps work on */
    ds_applier_hooks_t hooks;

    dlq_progress_t *progress; /* dlq retry: per dead-letter partition */
    int nprogress;
    bool assigned; /* dlq retry: the partitions were handed out */

    bool failed; /* a fatal error: stop, exit 1 */
    char error[4096];

    uint64_t messages; /* totals, for the progress line */
    uint64_t batches;
    uint64_t dead_letters; /* published */
    uint64_t skipped;      /* already in every database */
    uint64_t stale;        /* stale copies skipped ("Stale copies") */
    uint64_t retried;      /* dlq retry: dead letters written */
    uint64_t failed_again; /* dlq retry: dead letters that failed again (published again) */
    uint64_t superseded;   /* dlq retry: dead letters a newer change of their row superseded */
    ds_applier_stats_t stats;
    int64_t last_progress_us;
    int64_t *pending_retried_us; /* per database: when its pending rows were last retried */

    /* Metrics (docs/metrics.md); all NULL when apply.metrics_address is "off". */
    ds_metrics_t *metrics;
    ds_metric_t *m_lag;          /* topic, partition; recomputed at each collection */
    ds_metric_t *m_behind;       /* target */
    ds_metric_t *m_rows;         /* target, mapping, op; recomputed at each collection */
    ds_metric_t *m_retries;      /* target, reason */
    ds_metric_t *m_dead_letters; /* target */
    ds_metric_t *m_pending;      /* target */
    ds_series_t *m_kafka_connected;
    ds_series_t *m_latency, *m_batches, *m_batch_seconds, *m_rebalances, *m_messages;
    int applying_db;             /* while ap->applying: the database being written */
    int64_t *applied_ts_ms;      /* per database: source ts_ms of the newest change committed */
    int64_t lag_total;           /* messages behind, as of the last collection */
    char health[512];
} apply_t;

static void fail(apply_t *ap, const char *fmt, ...) DS_PRINTF(2, 3);

static void fail(apply_t *ap, const char *fmt, ...)
{
    va_list args;

    if (ap->failed)
        return; /* the first error is the cause */
    va_start(args, fmt);
    vsnprintf(ap->error, sizeof(ap->error), fmt, args);
    va_end(args);
    ap->failed = true;
}

static int64_t monotonic_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Sleeps @p ms, waking early on a signal. */
static void pause_ms(int ms)
{
    int64_t until = monotonic_us() + (int64_t)ms * 1000;
    int seen = stop_signals;

    while (monotonic_us() < until && stop_signals == seen) {
        /* Serves the metrics endpoint meanwhile (a plain 20 ms sleep without one). */
        ds_metrics_http_wait(serving, 20);
    }
}

/* A second signal: stop waiting for a database or for Kafka. */
static bool give_up(void *ctx)
{
    (void)ctx;
    return stop_signals >= 2;
}

/* ---- hooks the applier calls ---- */

static bool hook_dead_letter(void *ctx, const ds_dead_letter_t *dl, char *errstr,
                             size_t errstr_size)
{
    apply_t *ap = ctx;

    if (ap->stop_on_error)
        return ds_fail(errstr, errstr_size,
                       "%s [%d] @%" PRId64 "%s%s: %s; apply.on_error is \"stop\": stopping "
                       "without committing this batch",
                       dl->topic, (int)dl->partition, dl->offset, dl->target ? " target " : "",
                       dl->target ? dl->target : "", dl->error);
    ds_warning("dead letter: %s [%d] @%" PRId64 "%s%s: %s", dl->topic, (int)dl->partition,
               dl->offset, dl->target ? " target " : "", dl->target ? dl->target : "", dl->error);
    if (!ds_dlq_send(ap->dlq, dl, errstr, errstr_size))
        return false;
    ap->dead_letters++;
    ds_series_add(ds_metric_with(ap->m_dead_letters, dl->target ? dl->target : ""), 1);
    return true;
}

static bool hook_before_commit(void *ctx, char *errstr, size_t errstr_size)
{
    apply_t *ap = ctx;

    return ds_dlq_flush(ap->dlq, give_up, NULL, errstr, errstr_size);
}

/* ---- databases ---- */

/*
 * A stop signal ends the wait for a database that is down, after the attempt it arrived
 * during: how long the outage lasts is unknown, and nothing is lost by stopping (the batch is
 * not committed, nor are its offsets: a restart reads it again). Says so, and fails apply.
 */
static bool stopped_while_down(apply_t *ap, int db, const char *errstr)
{
    if (!stop_signals)
        return false;
    fail(ap, "%s; stopping on signal while target \"%s\" is unreachable: %s", errstr,
         ds_applier_name(ap->dbs[db]),
         ap->applying && ds_batch_count(ap->applying) > 0
             ? "the batch being applied is not committed, and is applied after a restart"
             : "what was not committed is applied after a restart");
    return true;
}

/*
 * Reconnects database @p db with backoff until it answers (or a signal asks to stop), then
 * re-reads its offsets for @p parts: a COMMIT whose answer was lost may have happened.
 */
static bool reconnect(apply_t *ap, int db, const ds_topic_partition_t *parts, int nparts)
{
    int backoff = RECONNECT_BACKOFF_MIN_MS;
    char errstr[2048];

    for (;;) {
        ds_applier_status_t st = ds_applier_connect(ap->dbs[db], errstr, sizeof(errstr));

        if (st == DS_APPLIER_OK)
            st = ds_applier_read_offsets(ap->dbs[db], ap->offsets, db, parts, nparts, errstr,
                                         sizeof(errstr));
        if (st == DS_APPLIER_OK) {
            ds_info("target \"%s\": connected again", ds_applier_name(ap->dbs[db]));
            return true;
        }
        if (st != DS_APPLIER_RETRY) {
            fail(ap, "%s", errstr);
            return false;
        }
        /* The backoff pause wakes on a signal: no further attempt is made then. */
        if (stopped_while_down(ap, db, errstr))
            return false;
        ds_warning("%s; retrying in %d ms", errstr, backoff);
        pause_ms(backoff);
        if (stopped_while_down(ap, db, errstr))
            return false;
        backoff = backoff * 2 > RECONNECT_BACKOFF_MAX_MS ? RECONNECT_BACKOFF_MAX_MS : backoff * 2;
    }
}

/* The batch's partitions as a list (topic names borrowed from the batch). */
static ds_topic_partition_t *batch_parts(const ds_batch_t *batch, int *n)
{
    ds_topic_partition_t *parts;

    *n = ds_batch_npartitions(batch);
    if (!(parts = calloc((size_t)*n + 1, sizeof(*parts))))
        return NULL;
    for (int i = 0; i < *n; i++) {
        const ds_batch_partition_t *bp = ds_batch_partition(batch, i);

        parts[i].topic = bp->topic;
        parts[i].partition = bp->partition;
        parts[i].offset = bp->last_offset + 1;
    }
    return parts;
}

/* Runs @p step on database @p db until it succeeds, reconnecting or waiting as needed. */
typedef ds_applier_status_t (*db_step_fn)(apply_t *ap, int db, char *errstr, size_t errstr_size);

/*
 * Returns DS_APPLIER_OK, DS_APPLIER_FENCED (logged: the caller drops the partitions this
 * process lost, see drop_unowned) or DS_APPLIER_FAILED (apply fails).
 */
static ds_applier_status_t with_retries(apply_t *ap, int db, db_step_fn step,
                                        const ds_topic_partition_t *parts, int nparts)
{
    int busy_wait = 50;
    char errstr[2048];

    for (;;) {
        ds_applier_status_t st = step(ap, db, errstr, sizeof(errstr));

        if (st == DS_APPLIER_OK)
            return DS_APPLIER_OK;
        if (st == DS_APPLIER_FENCED) {
            ds_warning("%s", errstr);
            return DS_APPLIER_FENCED;
        }
        if (st != DS_APPLIER_RETRY) {
            fail(ap, "%s", errstr);
            return DS_APPLIER_FAILED;
        }
        if (stop_signals >= 2) {
            fail(ap, "%s; stopping on the second signal without committing this batch", errstr);
            return DS_APPLIER_FAILED;
        }
        ds_series_add(ds_metric_with(ap->m_retries, ds_applier_name(ap->dbs[db]),
                                     ds_applier_connected(ap->dbs[db]) ? "conflict"
                                                                       : "disconnected"),
                      1);
        if (!ds_applier_connected(ap->dbs[db])) {
            ds_warning("%s; reconnecting", errstr);
            if (!reconnect(ap, db, parts, nparts))
                return DS_APPLIER_FAILED;
        } else {
            /* The origin is held by another session (a process with the same origin: see
             * "Origins"), or a deadlock or serialization failure rolled the batch back. */
            if (busy_wait >= 400)
                ds_warning("%s", errstr);
            else
                ds_debug("%s", errstr);
            pause_ms(busy_wait);
            busy_wait = busy_wait * 2 > 2000 ? 2000 : busy_wait * 2;
        }
    }
}

static ds_applier_status_t step_apply(apply_t *ap, int db, char *errstr, size_t errstr_size)
{
    return ds_applier_apply(ap->dbs[db], db, ap->applying, ap->offsets, &ap->hooks, &ap->stats,
                            errstr, errstr_size);
}

static ds_applier_status_t step_pending(apply_t *ap, int db, char *errstr, size_t errstr_size)
{
    return ds_applier_retry_pending(ap->dbs[db], db, ap->offsets, &ap->hooks, &ap->stats, errstr,
                                    errstr_size);
}

/*
 * Drops from @p batch (and from the batch being read) the messages of partitions this process
 * does not hold in every database any more: a database's fence said another process claimed
 * them (applier.c, "The fence"). Nothing of them was committed where the fence said so; the
 * new owner reads them again from the offsets stored there. Returns how many were dropped.
 */
static int drop_unowned(apply_t *ap, ds_batch_t *batch)
{
    int total = 0;

    for (int i = 0; batch && i < ds_batch_npartitions(batch);) {
        const ds_batch_partition_t *bp = ds_batch_partition(batch, i);
        char *topic;
        int32_t partition = bp->partition;
        int dropped;

        if (ds_offsets_owned(ap->offsets, bp->topic, partition)) {
            i++;
            continue;
        }
        /* The partition entry points into a message about to be freed. */
        if (!(topic = strdup(bp->topic))) {
            fail(ap, "out of memory");
            return total;
        }
        dropped = ds_batch_drop_partition(batch, topic, partition);
        if (ap->batch != batch)
            dropped += ds_batch_drop_partition(ap->batch, topic, partition);
        ds_warning("%s [%d]: this apply process lost the partition; %d messages of it dropped "
                   "without being committed (its new owner applies them)",
                   topic, (int)partition, dropped);
        ds_offsets_forget(ap->offsets, topic, partition);
        free(topic);
        total += dropped;
        i = 0; /* the partition entries were rebuilt */
    }
    return total;
}

/* ---- preparing messages ---- */

/* dlq retry: the change inside a dead letter becomes the message's change. */
static bool unwrap_dead_letter(apply_t *ap, ds_batch_msg_t *m)
{
    ds_dlq_entry_t entry;
    char why[512], *key_text = NULL, *value_text = NULL;
    const char *key = m->kafka.key;
    size_t key_len = m->kafka.key_len;
    bool ok;

    if (!ds_dlq_parse(m->kafka.value, m->kafka.value_len, &entry, why, sizeof(why))) {
        /* Not something dualsync wrote: nothing to re-drive, and publishing it again would
         * only move it. */
        ds_warning("%s [%d] @%" PRId64 ": %s; skipped", m->kafka.topic, (int)m->kafka.partition,
                   m->kafka.offset, why);
        m->skip = true;
        return true;
    }
    /* The dead letter's Kafka key is the change's key, byte for byte (links record it). */
    if (!key && !json_is_null(entry.key)) {
        key_text = json_dumps(entry.key, JSON_COMPACT | JSON_ENCODE_ANY);
        key = key_text;
        key_len = key_text ? strlen(key_text) : 0;
    }
    if (!json_is_null(entry.value))
        value_text = json_dumps(entry.value, JSON_COMPACT | JSON_ENCODE_ANY);
    ok = ds_batch_set_source(m, entry.topic, entry.partition, entry.offset, key, key_len,
                             value_text, value_text ? strlen(value_text) : 0, entry.target);
    m->attempts = entry.attempts;
    m->recorded = entry.recorded;
    free(key_text);
    free(value_text);
    ds_dlq_entry_clear(&entry);
    if (!ok)
        fail(ap, "out of memory");
    return ok;
}

static bool target_exists(const ds_mapping_set_t *set, const char *id)
{
    for (int i = 0; i < ds_mapping_set_ntargets(set); i++) {
        if (strcmp(ds_mapping_set_target(set, i)->id, id) == 0)
            return true;
    }
    return false;
}

/*
 * Publishes the dead letter of a change the mappings rejected (@p target NULL: as a whole).
 * Every target database records it with the batch (m->error, m->rejects; see applier.c's
 * "Dead-letter records"), so a later `dlq retry` can tell whether it was superseded.
 */
static bool publish_rejected(apply_t *ap, ds_batch_msg_t *m, const char *target,
                             const char *error)
{
    ds_dead_letter_t dl = ds_batch_dead_letter(m, target, error);
    char errstr[4096];

    dl.recorded = ap->mode == MODE_APPLY || m->recorded;
    if (!hook_dead_letter(ap, &dl, errstr, sizeof(errstr))) {
        fail(ap, "%s", errstr);
        return false;
    }
    return true;
}

/*
 * The targets the mappings rejected while the change's others are written: a dead letter
 * each, naming its target, which `dlq retry` re-drives alone. A re-driven dead letter of one
 * target only cares about that one (the others were written when it was first read).
 */
static void reject_targets(apply_t *ap, ds_batch_msg_t *m)
{
    for (int i = 0; i < m->nrejects; i++) {
        const ds_batch_reject_t *r = &m->rejects[i];

        if (m->only_target && strcmp(m->only_target, r->target) != 0)
            continue;
        if (!publish_rejected(ap, m, r->target, r->error))
            return;
        /* A re-driven dead letter published again is not one applied. */
        if (ap->mode == MODE_DLQ_RETRY)
            m->failed_again = true;
    }
}

/*
 * Stale copies.
 *
 * A capture frozen while it held messages for Kafka can resume after a standby took its slot
 * over and republished the same changes, and send its copies after newer changes of the same
 * rows (cdc/standby.c). Applied, they would put rows back in an older state. Within a
 * partition capture publishes changes in the source's commit order, Debezium's
 * source.sequence (the previous transaction's commit LSN, then the change's LSN): a change
 * whose sequence is below one read before it in its partition is such a copy, and is skipped;
 * its offset counts as applied. The newest sequence of each partition is stored with its
 * offsets in dualsync.offsets, so a restart or the partition's next owner goes on telling
 * them. Copies with the same sequence (a capture restarting from its slot sends the changes
 * Kafka acknowledged but the slot had not confirmed) are the same change, applied again in
 * order, as before. Read events (op "r") and changes whose sequence has no commit LSN (the
 * first transaction a capture sends after it starts) are not compared.
 */

/* The digits of one element of a sequence string ("[\"123\",\"456\"]"), or 0 for null. */
static const char *sequence_element(const char *p, ds_lsn_t *out)
{
    while (*p == ' ' || *p == '[' || *p == ',')
        p++;
    *out = 0;
    if (*p != '"')
        return strncmp(p, "null", 4) == 0 ? p + 4 : NULL;
    for (p++; *p >= '0' && *p <= '9'; p++)
        *out = *out * 10 + (ds_lsn_t)(*p - '0');
    return *p == '"' ? p + 1 : NULL;
}

/* The change's source position, {0, 0} when it has none to compare. */
static ds_source_pos_t source_position(const json_t *value)
{
    const json_t *payload = json_object_get(value, "payload"), *op, *sequence;
    ds_source_pos_t pos = {0, 0};
    const char *p;

    /* The JsonConverter schema envelope carries the change in its payload. */
    if (json_is_object(payload) && json_object_get(value, "schema"))
        value = payload;
    op = json_object_get(value, "op");
    sequence = json_object_get(json_object_get(value, "source"), "sequence");
    if (!json_is_string(op) || strcmp(json_string_value(op), "r") == 0 || !json_is_string(sequence))
        return pos;
    p = json_string_value(sequence);
    if (!(p = sequence_element(p, &pos.commit)) || !sequence_element(p, &pos.lsn))
        return (ds_source_pos_t){0, 0};
    return pos;
}

/* Whether @p m is a stale copy (above), said once it is known; otherwise its position counts
 * in its partition's newest, stored with the batch's offsets. */
static bool stale_copy(apply_t *ap, ds_batch_t *batch, ds_batch_msg_t *m)
{
    ds_source_pos_t newest;
    char c1[DS_LSN_STRLEN], l1[DS_LSN_STRLEN], c2[DS_LSN_STRLEN], l2[DS_LSN_STRLEN];

    m->position = source_position(m->value);
    if (!ds_offsets_stale(ap->offsets, m->kafka.topic, m->kafka.partition, m->position, &newest)) {
        ds_batch_note_position(batch, m);
        return false;
    }
    /* A frozen capture sends its copies in a burst: the first ones say what happens. */
    if (++ap->stale <= 20)
        ds_warning("%s [%d] @%" PRId64 ": skipped a stale copy of a change (source sequence "
                   "%s/%s, older than %s/%s applied before it in this partition): a capture that "
                   "lost its slot to another sent it again after newer changes; the rows keep "
                   "their newer state%s",
                   m->kafka.topic, (int)m->kafka.partition, m->kafka.offset,
                   ds_lsn_format(m->position.commit, c1), ds_lsn_format(m->position.lsn, l1),
                   ds_lsn_format(newest.commit, c2), ds_lsn_format(newest.lsn, l2),
                   ap->stale == 20 ? " (further ones are counted in the progress line)" : "");
    m->position = (ds_source_pos_t){0, 0};
    return true;
}

/* Evaluates one message: its writes (and dead letters of the targets it rejects), or a dead
 * letter. */
static void prepare_message(apply_t *ap, ds_batch_t *batch, ds_batch_msg_t *m)
{
    ds_write_list_t writes;
    json_error_t jerr;
    char why[2048];

    if (ds_offsets_applied_everywhere(ap->offsets, m->kafka.topic, m->kafka.partition,
                                      m->kafka.offset)) {
        m->skip = true;
        ap->skipped++;
        return;
    }
    if (ap->mode == MODE_DLQ_RETRY && !unwrap_dead_letter(ap, m))
        return;
    if (m->skip)
        return;
    if (m->value_text &&
        !(m->value = ds_json_region_loadb(m->value_text, m->value_len, 0, &jerr))) {
        snprintf(why, sizeof(why), "the message value is not JSON: %s (line %d, column %d)",
                 jerr.text, jerr.line, jerr.column);
    } else if (ap->mode == MODE_APPLY && m->value && stale_copy(ap, batch, m)) {
        m->skip = true;
        return;
    } else if (m->only_target && !target_exists(ap->set, m->only_target)) {
        /* Writing nothing would drop the change without a word. */
        snprintf(why, sizeof(why), "target %s is not in the mappings any more", m->only_target);
    } else if (ds_mapping_eval(ap->set, m->topic, m->key ? m->key : "null", m->key ? m->key_len : 4,
                               m->value, &writes, why, sizeof(why))) {
        if (!ds_batch_set_writes(m, &writes) || !ds_batch_set_rejects(m, &writes))
            fail(ap, "out of memory");
        else
            reject_targets(ap, m);
        return;
    }
    if (!ds_batch_set_error(m, why)) {
        fail(ap, "out of memory");
        return;
    }
    publish_rejected(ap, m, m->only_target, m->error);
}

/* ---- batches ---- */

static void log_progress(apply_t *ap)
{
    size_t pending = 0;

    for (int db = 0; db < ap->ndbs; db++)
        pending += ds_applier_pending(ap->dbs[db]);
    ds_info("progress: %" PRIu64 " messages applied in %" PRIu64 " batches (%" PRIu64
            " rows written, %" PRIu64 " already applied, %" PRIu64 " stale copies; %" PRIu64
            " of %" PRIu64 " transactions set-based), %" PRIu64 " dead letters, %zu pending (%" PRIu64
            " resolved)",
            ap->messages, ap->batches, ap->stats.writes, ap->skipped, ap->stale,
            ap->stats.set_based, ap->stats.transactions, ap->dead_letters, pending,
            ap->stats.pending_done);
}

/* dlq retry: the partitions a batch moved past. */
static void note_progress(apply_t *ap, const ds_topic_partition_t *parts, int nparts)
{
    for (int i = 0; i < nparts; i++) {
        for (int k = 0; k < ap->nprogress; k++) {
            if (ap->progress[k].partition == parts[i].partition &&
                parts[i].offset > ap->progress[k].position)
                ap->progress[k].position = parts[i].offset;
        }
    }
}

static void finish_batch(apply_t *ap);

/* ---- metrics ---- */

/* The change's source.ts_ms (its commit time at the source), or 0. */
static int64_t source_ts_ms(const ds_batch_msg_t *m)
{
    json_t *source = m->value ? json_object_get(m->value, "source") : NULL;

    if (!source && m->value) /* in the schema envelope */
        source = json_object_get(json_object_get(m->value, "payload"), "source");
    json_t *ts = source ? json_object_get(source, "ts_ms") : NULL;

    return json_is_integer(ts) ? (int64_t)json_integer_value(ts) : 0;
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A batch committed in every database: its end-to-end latencies and duration. */
static void observe_batch(apply_t *ap, ds_batch_t *batch, int64_t started_us)
{
    int64_t now = wall_ms(), newest = 0;
    int count = ds_batch_count(batch);

    for (int i = 0; i < count; i++) {
        const ds_batch_msg_t *m = ds_batch_at(batch, i);
        int64_t ts;

        if (m->skip || m->error || !(ts = source_ts_ms(m)))
            continue;
        ds_series_observe(ap->m_latency, now > ts ? (double)(now - ts) / 1000.0 : 0);
        if (ts > newest)
            newest = ts;
    }
    for (int db = 0; db < ap->ndbs; db++) {
        if (newest > ap->applied_ts_ms[db])
            ap->applied_ts_ms[db] = newest;
    }
    ds_series_add(ap->m_messages, count);
    ds_series_add(ap->m_batches, 1);
    ds_series_observe(ap->m_batch_seconds, (double)(monotonic_us() - started_us) / 1e6);
}

static void on_partition(void *ctx, const char *topic, int32_t partition, int64_t low,
                         int64_t high)
{
    apply_t *ap = ctx;
    int64_t next = ds_offsets_start(ap->offsets, topic, partition);
    char text[16];

    if (next < 0)
        next = low;
    if (high < 0 || next < 0)
        return;
    snprintf(text, sizeof(text), "%d", (int)partition);
    ds_series_set(ds_metric_with(ap->m_lag, topic, text), high > next ? (double)(high - next) : 0);
    ap->lag_total += high > next ? high - next : 0;
}

/* The oldest source ts_ms among @p batch's changes, or INT64_MAX. */
static int64_t oldest_in(ds_batch_t *batch)
{
    int64_t oldest = INT64_MAX;
    int count = batch ? ds_batch_count(batch) : 0;

    for (int i = 0; i < count; i++) {
        const ds_batch_msg_t *m = ds_batch_at(batch, i);
        int64_t ts = m->skip ? 0 : source_ts_ms(m);

        if (ts && ts < oldest)
            oldest = ts;
    }
    return oldest;
}

/*
 * Says which targets are written without dualsync.links (mapping_sql.c, "Targets without
 * links"), and on which condition: their cost per row differs by about half.
 */
static void log_links(const ds_mapping_set_t *set)
{
    for (int i = 0; i < ds_mapping_set_ntargets(set); i++) {
        const ds_target_t *t = ds_mapping_set_target(set, i);
        char cols[512] = "";
        size_t len = 0;

        if (!t->linkless)
            continue;
        for (int k = 0; k < t->nkey_source_columns && len < sizeof(cols); k++)
            len += (size_t)snprintf(cols + len, sizeof(cols) - len, "%s%s", k ? ", " : "",
                                    t->key_source_columns[k]);
        ds_info("target %s keeps no links for changes whose message key is (%s): its key is "
                "computed from those columns alone (\"links\": false)",
                t->id, cols);
    }
}

/* dualsync_apply_rows_written_total from the appliers' counts, by target database, mapping
 * target and op (the statement kind: an in-place target's write is an update). */
static void collect_rows_written(apply_t *ap)
{
    int n = ds_mapping_set_ntargets(ap->set);

    for (int db = 0; db < ap->ndbs && ap->dbs; db++) {
        const char *name = ds_applier_name(ap->dbs[db]);

        for (int i = 0; i < n; i++) {
            const ds_target_t *t = ds_mapping_set_target(ap->set, i);
            const char *sql[3] = {t->write_sql, t->unlink_sql, t->truncate_sql};
            const char *op[3] = {t->in_place ? "update" : "upsert", "delete", "truncate"};

            if (strcmp(t->connection, name) != 0)
                continue;
            for (int k = 0; k < 3; k++) {
                if (sql[k])
                    ds_series_set(ds_metric_with(ap->m_rows, name, t->id, op[k]),
                                  (double)ds_applier_written(ap->dbs[db], i, (ds_write_kind_t)k));
            }
        }
    }
}

static void collect(void *ctx)
{
    apply_t *ap = ctx;
    int64_t now = wall_ms();
    /* Sent to the first database and not committed; read and not mapped yet (no ts). */
    int64_t inflight = oldest_in(ap->inflight), applying = oldest_in(ap->applying);

    collect_rows_written(ap);
    ds_series_set(ap->m_kafka_connected,
                  ap->consumer && !ds_consumer_brokers_down(ap->consumer) ? 1 : 0);
    ds_metric_clear(ap->m_lag);
    ap->lag_total = 0;
    ds_consumer_foreach_partition(ap->consumer, on_partition, ap);
    for (int db = 0; db < ap->ndbs && ap->dbs && ap->applied_ts_ms; db++) {
        int64_t oldest = inflight;

        /* finish_batch commits database by database: the ones before applying_db have it. */
        if (ap->applying && db >= ap->applying_db && applying < oldest)
            oldest = applying;
        /* Messages wait in Kafka or in the batch being read, none mapped yet: the next one
         * is newer than the newest this database committed, so that bounds the age. */
        if (oldest == INT64_MAX && (ap->lag_total > 0 || ds_batch_count(ap->batch) > 0) &&
            ap->applied_ts_ms[db])
            oldest = ap->applied_ts_ms[db];
        ds_series_set(ds_metric_with(ap->m_behind, ds_applier_name(ap->dbs[db])),
                      oldest != INT64_MAX && now > oldest ? (double)(now - oldest) / 1000.0 : 0);
        ds_series_set(ds_metric_with(ap->m_pending, ds_applier_name(ap->dbs[db])),
                      (double)ds_applier_pending(ap->dbs[db]));
    }
}

static const char *health(void *ctx)
{
    apply_t *ap = ctx;

    if (ap->consumer && ds_consumer_brokers_down(ap->consumer))
        return "Kafka: all brokers are down";
    for (int db = 0; db < ap->ndbs; db++) {
        if (ap->dbs && ap->dbs[db] && !ds_applier_probe(ap->dbs[db])) {
            snprintf(ap->health, sizeof(ap->health), "target \"%s\" is not connected",
                     ds_applier_name(ap->dbs[db]));
            return ap->health;
        }
    }
    return NULL;
}

/* Registers apply's metrics and starts the endpoint; false (errstr) when the address cannot
 * be used. */
static bool start_metrics(apply_t *ap, const char *address, char *errstr, size_t errstr_size)
{
    static const double latency_bounds[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,   2.5,
                                            5,    10,    30,   60,  300,  900, 3600};
    static const double batch_bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                          0.25,  0.5,   1,    2.5,   5,    10};
    ds_metrics_t *m;

    if (strcmp(address, "off") == 0)
        return true;
    if (!(m = ap->metrics = ds_metrics_new()))
        return ds_fail(errstr, errstr_size, "out of memory");
    ds_metrics_add_process(m);
    ap->m_lag = ds_metrics_gauge(m, "dualsync_apply_consumer_lag_messages",
                                 "Messages not applied yet: the partition's high watermark "
                                 "minus the next offset to apply (the smallest over the target "
                                 "databases).",
                                 "topic,partition");
    ap->m_behind = ds_metrics_gauge(m, "dualsync_apply_seconds_behind_source",
                                    "Age of the oldest change committed at the source and not "
                                    "yet committed in this target database; 0 when caught up.",
                                    "target");
    ap->m_latency = ds_metric_series(ds_metrics_histogram(
        m, "dualsync_apply_end_to_end_seconds",
        "Time from a change's commit at the source (source.ts_ms) to its commit in every "
        "target database.",
        NULL, latency_bounds, (int)DS_ARRAY_LEN(latency_bounds)));
    ap->m_rows = ds_metrics_counter(m, "dualsync_apply_rows_written_total",
                                    "Row writes (statements that wrote), by target database, "
                                    "mapping target (file/target) and op (upsert, update, "
                                    "delete, truncate).",
                                    "target,mapping,op");
    ap->m_messages = ds_metric_series(ds_metrics_counter(
        m, "dualsync_apply_messages_total", "Kafka messages handled in committed batches.",
        NULL));
    ap->m_batches = ds_metric_series(ds_metrics_counter(
        m, "dualsync_apply_batches_total", "Batches committed in every target database.", NULL));
    ap->m_batch_seconds = ds_metric_series(ds_metrics_histogram(
        m, "dualsync_apply_batch_duration_seconds",
        "Time to commit a batch in every target database.", NULL, batch_bounds,
        (int)DS_ARRAY_LEN(batch_bounds)));
    ap->m_retries = ds_metrics_counter(m, "dualsync_apply_retries_total",
                                       "Database steps retried, by target database and reason "
                                       "(disconnected, conflict).",
                                       "target,reason");
    ap->m_rebalances = ds_metric_series(ds_metrics_counter(
        m, "dualsync_apply_rebalances_total", "Partition assignments received from the group.",
        NULL));
    ap->m_dead_letters = ds_metrics_counter(m, "dualsync_apply_dead_letters_total",
                                            "Changes published to the dead-letter topic, by the "
                                            "mapping target that rejected them (\"\" when no "
                                            "mapping could read the change).",
                                            "target");
    ap->m_pending = ds_metrics_gauge(m, "dualsync_apply_pending_rows",
                                     "Changes waiting in dualsync.pending for their parent row, "
                                     "by target database.",
                                     "target");
    ap->m_kafka_connected = ds_metric_series(ds_metrics_gauge(
        m, "dualsync_apply_kafka_connected", "0 while every Kafka broker is down, else 1.",
        NULL));
    ds_metrics_on_collect(m, collect, ap);
    if (!(serving = ds_metrics_http_start(address, m, health, ap, errstr, errstr_size)))
        return false;
    return true;
}

/*
 * Retries database @p db's dualsync.pending, when it has rows. Not in dlq retry: apply does
 * it, and a dead letter made of a pending change here could not be recorded where apply
 * looks (applier.c, "Dead-letter records").
 */
static void retry_pending(apply_t *ap, int db)
{
    if (ap->mode == MODE_DLQ_RETRY || ds_applier_pending(ap->dbs[db]) == 0)
        return;
    finish_batch(ap);
    ap->pending_retried_us[db] = monotonic_us();
    if (with_retries(ap, db, step_pending, NULL, 0) == DS_APPLIER_FENCED)
        drop_unowned(ap, ap->batch);
}

/*
 * Commits the batch in flight (its writes were sent by process_batch) in every database, one
 * after another: a crash between two commits is safe, each database's offsets say what it
 * has. Then its offsets go to Kafka, for lag tools.
 */
static void finish_batch(apply_t *ap)
{
    ds_batch_t *batch = ap->inflight;
    ds_topic_partition_t *parts;
    int nparts, count;
    uint64_t *writes_before;
    bool ok = true;
    int64_t started_us = monotonic_us();

    if (!batch)
        return;
    ap->inflight = NULL;
    if (ap->failed) {
        /* Nothing more is committed; the sent writes roll back when the connections close. */
        ds_batch_clear(batch);
        ds_batch_free(ap->spare);
        ap->spare = batch;
        return;
    }
    count = ds_batch_count(batch);
    if (!(parts = batch_parts(batch, &nparts)) ||
        !(writes_before = calloc((size_t)ap->ndbs + 1, sizeof(*writes_before)))) {
        free(parts);
        fail(ap, "out of memory");
        ap->inflight = batch;
        return;
    }
    ap->applying = batch;
    for (int db = 0; db < ap->ndbs && !ap->failed && ok; db++) {
        uint64_t before = ap->stats.writes + ap->stats.pending_added;
        ds_applier_status_t st;

        ap->applying_db = db;
        st = with_retries(ap, db, step_apply, parts, nparts);
        if (st == DS_APPLIER_FENCED) {
            /* Rolled back here; the databases before this one committed while the
             * partitions were still this process's there. The rest goes on. */
            if (drop_unowned(ap, batch) == 0 && !ap->failed)
                fail(ap, "target \"%s\": fenced, yet no partition of the batch was lost",
                     ds_applier_name(ap->dbs[db]));
            free(parts);
            if (!ap->failed && !(parts = batch_parts(batch, &nparts)))
                fail(ap, "out of memory");
            if (ap->failed) {
                parts = NULL;
                break;
            }
            db--;
            continue;
        }
        ok = st == DS_APPLIER_OK;
        writes_before[db] = ap->stats.writes + ap->stats.pending_added - before;
    }
    ap->applying = NULL;
    count = ds_batch_count(batch);
    if (ap->failed || !ok) {
        ap->inflight = batch; /* freed with the rest; never committed */
        free(parts);
        free(writes_before);
        return;
    }
    ds_consumer_commit(ap->consumer, parts, nparts);
    if (ap->metrics)
        observe_batch(ap, batch, started_us);
    for (int i = 0; i < count; i++) {
        const ds_batch_msg_t *m = ds_batch_at(batch, i);

        ap->messages += !m->skip && !m->error;
        /* Each dead letter counts once, whatever each database did with it. */
        if (m->skip)
            continue;
        if (m->error || m->failed_again)
            ap->failed_again++;
        else if (m->superseded)
            ap->superseded++;
        else
            ap->retried++;
    }
    ap->batches++;
    if (ap->mode == MODE_DLQ_RETRY)
        note_progress(ap, parts, nparts);
    ds_batch_clear(batch);
    ds_batch_free(ap->spare);
    ap->spare = batch;
    /* A parent written by this batch may be what a pending change waits for. */
    for (int db = 0; db < ap->ndbs && !ap->failed; db++) {
        if (writes_before[db] > 0)
            retry_pending(ap, db);
    }
    free(parts);
    free(writes_before);
}

/*
 * Maps the batch read so far and sends its writes, after committing the one before. The
 * mapping (JSON parsing, expressions: most of apply's own CPU) runs while the databases
 * still work on the previous batch's writes, and the databases work on this batch's while
 * the next is read and mapped: the two overlap instead of taking turns.
 */
static void process_batch(apply_t *ap)
{
    ds_batch_t *batch = ap->batch;
    int count = ds_batch_count(batch);

    if (count == 0)
        return;
    /* Read before this process learnt it lost them (a fence failed meanwhile). */
    if (drop_unowned(ap, batch) > 0 && (count = ds_batch_count(batch)) == 0)
        return;
    for (int i = 0; i < count && !ap->failed; i++) {
        prepare_message(ap, batch, ds_batch_at(batch, i));
        /* The batch in flight may still be partly in libpq's buffer: keep it going. */
        if (ap->inflight && i % 64 == 63)
            ds_applier_push_sent(ap->dbs[0]);
    }
    finish_batch(ap);
    if (ap->failed)
        return;
    if (!ap->spare && !(ap->spare = ds_batch_new())) {
        fail(ap, "out of memory");
        return;
    }
    if (test_pause_before_write_ms > 0) {
        const ds_batch_msg_t *first = ds_batch_at(batch, 0);

        ds_info("test hook: pausing %d ms before writing the batch from %s [%d] @%" PRId64,
                test_pause_before_write_ms, first->kafka.topic, (int)first->kafka.partition,
                first->kafka.offset);
        pause_ms(test_pause_before_write_ms);
    }
    /* Only the first database's: a sent transaction holds the replication origin, which
     * PostgreSQL 15 gives one session of the cluster at a time, and the other databases may
     * well share the cluster. They are written when the batch is finished. */
    ds_applier_send(ap->dbs[0], 0, batch, ap->offsets);
    ap->inflight = batch;
    ap->batch = ap->spare;
    ap->spare = NULL;
    /* dlq retry reads to an end it checks between batches: nothing may stay in flight. */
    if (ap->mode == MODE_DLQ_RETRY)
        finish_batch(ap);
}

/* ---- rebalances ---- */

static bool on_assign(void *ctx, ds_topic_partition_t *parts, int nparts, char *errstr,
                      size_t errstr_size)
{
    apply_t *ap = ctx;

    ds_series_add(ap->m_rebalances, 1);
    /* The connections are needed to read offsets: the batch in flight goes first. */
    finish_batch(ap);
    if (ap->failed)
        return ds_fail(errstr, errstr_size, "%s", ap->error);

    /* Claimed in every database before anything of them is read (applier.c, "The fence"):
     * from here on a process that held them before cannot commit them any more. */
    for (int db = 0; db < ap->ndbs; db++) {
        ds_applier_status_t st;

        for (;;) {
            st = ds_applier_claim(ap->dbs[db], ap->offsets, db, parts, nparts, errstr,
                                  errstr_size);
            if (st != DS_APPLIER_RETRY)
                break;
            ds_warning("%s; reconnecting", errstr);
            if (!reconnect(ap, db, parts, nparts))
                return ds_fail(errstr, errstr_size, "%s", ap->error);
        }
        if (st != DS_APPLIER_OK)
            return false;
    }
    for (int i = 0; i < nparts; i++) {
        parts[i].offset = ds_offsets_start(ap->offsets, parts[i].topic, parts[i].partition);
        for (int k = 0; k < ap->nprogress; k++) {
            if (ap->progress[k].partition != parts[i].partition)
                continue;
            if (parts[i].offset == DS_OFFSET_BEGINNING) {
                int64_t low = 0, high = 0;

                if (!ds_consumer_watermarks(ap->consumer, parts[i].topic, parts[i].partition, 10000,
                                            &low, &high, errstr, errstr_size))
                    return false;
                ap->progress[k].position = low;
            } else {
                ap->progress[k].position = parts[i].offset;
            }
        }
    }
    ap->assigned = true;
    return true;
}

static void on_revoke(void *ctx, const ds_topic_partition_t *parts, int nparts)
{
    apply_t *ap = ctx;

    /* The batch in flight was read while the partitions were ours: it commits (its offsets
     * with it, so whoever gets them next starts after it) - if they still are. A process
     * that learns late that it lost them (it was frozen past its session timeout, and the
     * group gave them to another that claimed them) is stopped by the fence: that commit
     * fails and is rolled back (applier.c, "The fence"). The batch being read is dropped. */
    finish_batch(ap);
    for (int i = 0; i < nparts; i++) {
        int dropped = ds_batch_drop_partition(ap->batch, parts[i].topic, parts[i].partition);

        if (dropped)
            ds_debug("dropped %d unapplied messages of %s [%d]", dropped, parts[i].topic,
                     (int)parts[i].partition);
        ds_offsets_forget(ap->offsets, parts[i].topic, parts[i].partition);
    }
}

/* ---- origins and instance ids ----
 *
 * Origins. Each apply process commits under a replication origin of its own,
 * "<apply.origin>.<group>.<instance id>": PostgreSQL lets one session of the cluster hold an
 * origin at a time, so processes sharing one would take turns at every transaction. Capture
 * skips every origin named "<skipped>" or "<skipped>.<anything>" (capture.skip_origins,
 * default ["dualsync"]), so all of them stay out of the change topics.
 *
 * An origin is never dropped by apply: pgoutput names a transaction's origin when capture
 * decodes it, which may be long after the commit, and a transaction whose origin was dropped
 * by then would be captured like the application's own (a loop). So the names must not grow
 * with every start: they are stable per instance id. Each origin takes one of the cluster's
 * max_replication_slots origin states once used; drop one of a retired instance with
 * pg_replication_origin_drop() once capture has passed its transactions (docs/configuration.md, "Several apply processes").
 *
 * Instance ids. An id set in apply.instance_id also names the consumer's static group
 * membership (group.instance.id, with a hash of the topics read: see choose_member_id): a
 * process restarted with its id and its mappings takes its partitions back at once, instead of
 * after the dead member's session timeout. A derived id does not (dynamic membership): Kafka
 * may fence a static member by its own rejoin when the coordinator fails over. Two live processes of a group must not share one (Kafka
 * gives the newcomer the other's place, and the other stops with a message saying so). The
 * default, "<host name>-<n>", is stable across restarts and distinct on one host: n is the
 * lowest number whose lock file, $TMPDIR/dualsync-apply.<group>.<n>.lock (/tmp by default),
 * this process can lock. The kernel releases the lock when a process dies, kill -9 included,
 * so a restarted process gets its predecessor's id. Hosts whose name changes with each start
 * (containers) should set apply.instance_id (a StatefulSet's pod name, say).
 */

/* A host name in the characters Kafka allows in ids: the others become '-'. */
static void host_name(char *out, size_t size)
{
    if (gethostname(out, size) != 0 || !out[0])
        snprintf(out, size, "localhost");
    out[size - 1] = '\0';
    for (char *p = out; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            *p = '-';
    }
}

/* The default instance id (see above); false (errstr) when no lock file can be used. */
static bool derive_instance_id(apply_t *ap, char *errstr, size_t errstr_size)
{
    const char *dir = getenv("TMPDIR");
    char host[128];

    if (!dir || !dir[0])
        dir = "/tmp";
    host_name(host, sizeof(host));
    for (int n = 0; n < 1000; n++) {
        char path[4096];
        int fd, err;

        snprintf(path, sizeof(path), "%s/dualsync-apply.%s.%d.lock", dir, ap->group_id, n);
        /* Read-only is enough to lock, and lets another user's process use the same file. */
        fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return ds_fail(errstr, errstr_size,
                           "cannot open %s to choose this process's apply.instance_id (%s): set "
                           "apply.instance_id, or TMPDIR to a writable directory",
                           path, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            ap->instance_lock = fd;
            if (asprintf(&ap->instance_id, "%s-%d", host, n) < 0) {
                ap->instance_id = NULL;
                return ds_fail(errstr, errstr_size, "out of memory");
            }
            return true;
        }
        err = errno;
        close(fd);
        if (err != EWOULDBLOCK)
            return ds_fail(errstr, errstr_size,
                           "cannot lock %s to choose this process's apply.instance_id (%s): set "
                           "apply.instance_id",
                           path, strerror(err));
    }
    return ds_fail(errstr, errstr_size,
                   "1000 apply processes of group \"%s\" already run on this host (lock files "
                   "%s/dualsync-apply.%s.*.lock): set apply.instance_id",
                   ap->group_id, dir, ap->group_id);
}

/* The instance id, origin and owner of this process; false (errstr) on a configuration
 * problem. */
static bool choose_identity(apply_t *ap, char *errstr, size_t errstr_size)
{
    const ds_config_t *config = ap->config;
    char host[128];

    if (config->apply_instance_id) {
        if (!(ap->instance_id = strdup(config->apply_instance_id)))
            return ds_fail(errstr, errstr_size, "out of memory");
    } else if (!derive_instance_id(ap, errstr, errstr_size)) {
        return false;
    }
    if (asprintf(&ap->origin, "%s.%s.%s", config->apply_origin, ap->group_id, ap->instance_id) <
        0) {
        ap->origin = NULL;
        return ds_fail(errstr, errstr_size, "out of memory");
    }
    /* pg_replication_origin_create() refuses longer names. */
    if (strlen(ap->origin) > 512)
        return ds_fail(errstr, errstr_size,
                       "%s: this process's replication origin \"<apply.origin>.<group>.<instance "
                       "id>\" would be %zu bytes long, PostgreSQL takes 512 at most: shorten "
                       "apply.origin, apply.group_id or apply.instance_id",
                       config->path, strlen(ap->origin));
    host_name(host, sizeof(host));
    if (asprintf(&ap->owner, "%s (pid %ld on %s)", ap->instance_id, (long)getpid(), host) < 0) {
        ap->owner = NULL;
        return ds_fail(errstr, errstr_size, "out of memory");
    }
    ds_info("apply instance \"%s\" of group \"%s\", replication origin \"%s\"",
            ap->instance_id, ap->group_id, ap->origin);
    return true;
}

/* Orders topic names for subscription_hash(). */
static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * The static member id: the instance id, '.', and a hash (FNV-1a, 32 bits) of the sorted
 * topics this process reads. Kafka hands a static member that rejoins its previous assignment
 * without a rebalance, even when it now subscribes to other topics: a process restarted with
 * other mappings would be given partitions of topics it no longer reads. With the topics in
 * the id it joins as a new member instead (the old one's partitions wait for its session
 * timeout, as after any stop for good).
 */
static bool choose_member_id(apply_t *ap)
{
    int ntopics = ap->mode == MODE_APPLY ? ds_mapping_set_ntopics(ap->set) : 0;
    const char **topics = calloc((size_t)ntopics + 1, sizeof(*topics));
    uint32_t hash = 2166136261u;

    if (!topics)
        return false;
    for (int i = 0; i < ntopics; i++)
        topics[i] = ds_mapping_set_topic(ap->set, i);
    qsort(topics, (size_t)ntopics, sizeof(*topics), compare_names);
    for (int i = 0; i < ntopics; i++) {
        for (const char *p = topics[i];; p++) {
            hash = (hash ^ (uint8_t)*p) * 16777619u; /* the NUL separates the names */
            if (!*p)
                break;
        }
    }
    free(topics);
    if (asprintf(&ap->member_id, "%s.%08x", ap->instance_id, (unsigned)hash) < 0) {
        ap->member_id = NULL;
        return false;
    }
    return true;
}

/* ---- setup and the loop ---- */

/* Every dead-letter partition handled up to where it ended at the start (a topic that does
 * not exist, or only empty partitions: nothing to wait for). */
static bool dlq_retry_done(const apply_t *ap)
{
    for (int k = 0; k < ap->nprogress; k++) {
        if (ap->progress[k].position < ap->progress[k].end)
            return false;
    }
    return true;
}

static void apply_free(apply_t *ap)
{
    /* The consumer first: closing it runs the revoke hook, which touches the batch. */
    ds_consumer_free(ap->consumer);
    ds_batch_free(ap->batch);
    ds_batch_free(ap->inflight);
    ds_batch_free(ap->spare);
    ds_dlq_free(ap->dlq, 10000);
    for (int db = 0; db < ap->ndbs; db++)
        ds_applier_free(ap->dbs[db]);
    free(ap->dbs);
    ds_offsets_free(ap->offsets);
    ds_mapping_set_free(ap->set);
    free(ap->progress);
    free(ap->pending_retried_us);
    free(ap->group_id);
    free(ap->instance_id);
    free(ap->member_id);
    free(ap->origin);
    free(ap->owner);
    /* The lock last: the id is free for the next process once this one is gone. */
    if (ap->instance_lock >= 0)
        close(ap->instance_lock);
    ds_metrics_http_stop(serving);
    serving = NULL;
    ds_metrics_free(ap->metrics);
    free(ap->applied_ts_ms);
}

/*
 * When some mapping file has problems the set does not load, yet the files without problems
 * can still be checked against the target databases: every problem is reported at once, not
 * the catalog's only after the files are fixed. Each such file is loaded alone and checked on
 * a plain connection (the check runs in a transaction it rolls back: nothing is created).
 */
static void check_loadable_files(const ds_config_t *config)
{
    static char errstr[65536];
    ds_mapping_set_t **sets = calloc((size_t)config->nmappings + 1, sizeof(*sets));

    if (!sets)
        return;
    for (int i = 0; i < config->nmappings; i++) {
        const char *path = config->mappings[i];

        if (!ds_mapping_set_load(&path, 1, config->topic_prefix,
                                 (const char *const *)config->target_names, &sets[i], errstr,
                                 sizeof(errstr)))
            sets[i] = NULL; /* its problems are reported already */
    }
    for (int db = 0; db < config->ntargets; db++) {
        static const char *const keywords[] = {"dbname", "fallback_application_name", NULL};
        const char *values[] = {config->target_conninfos[db], "dualsync-apply", NULL};
        const char *name = config->target_names[db];
        PGconn *conn = PQconnectdbParams(keywords, values, 1);
        ds_buf_t problems = DS_BUF_INIT;

        if (!conn || PQstatus(conn) != CONNECTION_OK) {
            ds_warning("target \"%s\": cannot connect (%s): its tables are checked once the "
                       "mappings load",
                       name, conn ? ds_pg_error(conn) : "out of memory");
            PQfinish(conn);
            continue;
        }
        PQclear(PQexec(conn, "SET TimeZone = 'UTC'"));
        for (int i = 0; i < config->nmappings; i++) {
            if (!sets[i] ||
                ds_mapping_set_check_catalog(sets[i], name, conn, errstr, sizeof(errstr)))
                continue;
            if (problems.len)
                ds_buf_append_char(&problems, '\n');
            ds_buf_append_str(&problems, errstr);
        }
        if (problems.len)
            ds_error("the mappings do not fit the tables of target \"%s\":\n%s", name,
                     problems.data);
        ds_buf_free(&problems);
        PQfinish(conn);
    }
    for (int i = 0; i < config->nmappings; i++)
        ds_mapping_set_free(sets[i]);
    free(sets);
}

/* Loads the mappings, connects every database, checks catalogs. Returns an exit code. */
static int setup(apply_t *ap)
{
    const ds_config_t *config = ap->config;
    static char errstr[65536]; /* every problem of every mapping file */
    bool catalog_ok = true, conninfo_ok = true;

    /* A connection string libpq cannot parse is the file's mistake, and libpq's message
     * would quote it, password included. */
    for (int db = 0; db < config->ntargets; db++) {
        char what[256];

        snprintf(what, sizeof(what), "%s: $.targets.%s.conninfo", config->path,
                 config->target_names[db]);
        if (!ds_pg_conninfo_check(config->target_conninfos[db], what, errstr, sizeof(errstr))) {
            ds_error("%s", errstr);
            conninfo_ok = false;
        }
    }
    if (!conninfo_ok)
        return DS_APPLY_EXIT_USAGE;
    if (!choose_identity(ap, errstr, sizeof(errstr))) {
        ds_error("%s", errstr);
        return DS_APPLY_EXIT_USAGE;
    }

    if (!ds_mapping_set_load((const char *const *)config->mappings, config->nmappings,
                             config->topic_prefix, (const char *const *)config->target_names,
                             &ap->set, errstr, sizeof(errstr))) {
        ds_error("the mappings have problems:\n%s", errstr);
        check_loadable_files(config);
        return DS_APPLY_EXIT_USAGE;
    }
    if (!ds_mapping_set_unavailable_value(ap->set, config->unavailable_value_placeholder)) {
        ds_error("out of memory");
        return DS_APPLY_EXIT_FAILURE;
    }
    log_links(ap->set);
    if (!ds_mapping_set_value_format(ap->set, &config->value_format, config->source_conninfo,
                                     errstr, sizeof(errstr))) {
        ds_error("%s: %s", config->path, errstr);
        return DS_APPLY_EXIT_USAGE;
    }
    ap->ndbs = config->ntargets;
    ap->dbs = calloc((size_t)ap->ndbs + 1, sizeof(*ap->dbs));
    ap->offsets = ds_offsets_new(ap->ndbs);
    ap->batch = ds_batch_new();
    ap->pending_retried_us = calloc((size_t)ap->ndbs + 1, sizeof(*ap->pending_retried_us));
    ap->applied_ts_ms = calloc((size_t)ap->ndbs + 1, sizeof(*ap->applied_ts_ms));
    if (!ap->dbs || !ap->offsets || !ap->batch || !ap->pending_retried_us || !ap->applied_ts_ms) {
        ds_error("out of memory");
        return DS_APPLY_EXIT_FAILURE;
    }
    for (int db = 0; db < ap->ndbs; db++) {
        ds_applier_options_t options = {
            .name = config->target_names[db],
            .conninfo = config->target_conninfos[db],
            .origin = ap->origin,
            .group_id = ap->group_id,
            .owner = ap->owner,
            .set = ap->set,
            .row_by_row = !config->apply_set_based,
            .dlq_retry = ap->mode == MODE_DLQ_RETRY,
            .pending_timeout_ms = config->apply_pending_timeout_ms,
        };

        if (!(ap->dbs[db] = ds_applier_new(&options))) {
            ds_error("out of memory");
            return DS_APPLY_EXIT_FAILURE;
        }
        /* The first connection must work: a wrong host or a missing privilege is a setup
         * error to report now, not to retry for ever. Later losses are retried. */
        switch (ds_applier_connect(ap->dbs[db], errstr, sizeof(errstr))) {
        case DS_APPLIER_OK:
            break;
        case DS_APPLIER_INVALID:
            /* Go on to the other databases: every problem is reported at once. */
            ds_error("the mappings do not fit the tables of target \"%s\":\n%s",
                     config->target_names[db], errstr);
            catalog_ok = false;
            break;
        default:
            ds_error("%s", errstr);
            return DS_APPLY_EXIT_FAILURE;
        }
    }
    if (!catalog_ok)
        return DS_APPLY_EXIT_USAGE;
    ap->hooks.dead_letter = hook_dead_letter;
    ap->hooks.before_commit = hook_before_commit;
    ap->hooks.ctx = ap;
    if (!(ap->dlq = ds_dlq_new(config, errstr, sizeof(errstr)))) {
        /* Its properties were checked with the file; what librdkafka still refuses when it
         * creates the client is a configuration error too. */
        ds_error("%s", errstr);
        return DS_APPLY_EXIT_USAGE;
    }
    /* Static membership only for an id the user chose: a static member can be fenced by its
     * own rejoin when the group coordinator fails over (seen when a whole cluster restarts),
     * which stops it; a default id must not put every installation at that risk. */
    if (ap->mode == MODE_APPLY && ap->config->apply_instance_id && !choose_member_id(ap)) {
        ds_error("out of memory");
        return DS_APPLY_EXIT_FAILURE;
    }
    /* dlq retry runs once to an end: a static member would keep its partitions after it. */
    ap->consumer = ds_consumer_new_member(config, ap->group_id, ap->member_id, on_assign,
                                          on_revoke, ap, errstr, sizeof(errstr));
    if (!ap->consumer) {
        ds_error("%s", errstr);
        return DS_APPLY_EXIT_USAGE;
    }
    return DS_APPLY_EXIT_OK;
}

static bool subscribe(apply_t *ap)
{
    char errstr[1024];
    int ntopics = ap->mode == MODE_APPLY ? ds_mapping_set_ntopics(ap->set) : 1;
    const char **topics = calloc((size_t)ntopics + 1, sizeof(*topics));
    bool ok;

    if (!topics) {
        fail(ap, "out of memory");
        return false;
    }
    for (int i = 0; i < ntopics; i++) {
        topics[i] =
            ap->mode == MODE_APPLY ? ds_mapping_set_topic(ap->set, i) : ap->config->apply_dlq_topic;
        ds_info("reading %s as consumer group \"%s\"", topics[i], ap->group_id);
    }
    ok = ds_consumer_subscribe(ap->consumer, topics, ntopics, errstr, sizeof(errstr));
    free(topics);
    if (!ok)
        fail(ap, "%s", errstr);
    return ok;
}

/* dlq retry: where the dead-letter topic ends now. */
static bool read_dlq_end(apply_t *ap)
{
    ds_topic_partition_t *end = NULL;
    int nend = 0;
    char errstr[1024];

    if (!ds_consumer_end_offsets(ap->consumer, ap->config->apply_dlq_topic, 10000, &end, NULL,
                                 &nend, errstr, sizeof(errstr))) {
        fail(ap, "%s", errstr);
        return false;
    }
    ap->progress = calloc((size_t)nend + 1, sizeof(*ap->progress));
    if (!ap->progress) {
        free(end);
        fail(ap, "out of memory");
        return false;
    }
    for (int i = 0; i < nend; i++) {
        ap->progress[i].partition = end[i].partition;
        ap->progress[i].end = end[i].offset;
        /* Unknown until assigned, unless there is nothing in it at all. */
        ap->progress[i].position = end[i].offset == 0 ? 0 : -1;
    }
    ap->nprogress = nend;
    free(end);
    return true;
}

static void run_loop(apply_t *ap)
{
    int64_t started = monotonic_us(), http_checked = 0;

    ap->last_progress_us = started;
    while (!stop_signals && !ap->failed) {
        int64_t now = monotonic_us(), batch_start = ds_batch_started_us(ap->batch);
        int timeout = POLL_MS;
        bool idle;
        ds_kafka_msg_t msg;
        char errstr[1024];

        /* Every few milliseconds rather than per message: one poll() of the endpoint's
         * descriptor per turn would be a system call per message under load. */
        if (serving && now - http_checked >= HTTP_CHECK_INTERVAL_US) {
            http_checked = now;
            ds_metrics_http_wait(serving, 0);
        }
        if (ap->mode == MODE_DLQ_RETRY) {
            if (ds_batch_count(ap->batch) == 0 && dlq_retry_done(ap))
                break;
            if (!ap->assigned && now - started > DLQ_RETRY_ASSIGN_TIMEOUT_US &&
                !dlq_retry_done(ap)) {
                fail(ap,
                     "the group \"%s\" was not given the partitions of %s within %d s; is "
                     "another dlq retry running?",
                     ap->group_id, ap->config->apply_dlq_topic,
                     (int)(DLQ_RETRY_ASSIGN_TIMEOUT_US / 1000000));
                break;
            }
        }
        /* Natural batching (group commit): a batch takes what has arrived and goes as soon
         * as nothing more is queued, rather than waiting apply.batch_max_ms for messages that
         * are not coming; under load the queue refills while the previous batch commits, so
         * batches stay large. */
        if (batch_start)
            timeout = 0;
        idle = false;
        switch (ds_consumer_poll(ap->consumer, timeout, &msg, errstr, sizeof(errstr))) {
        case DS_CONSUMER_MESSAGE:
            /* Once per batch: where a batch starts tells what a process held when it stopped. */
            if (ds_batch_count(ap->batch) == 0)
                ds_debug("batch started at %s [%d] @%" PRId64, msg.topic, (int)msg.partition,
                         msg.offset);
            if (!ds_batch_add(ap->batch, &msg))
                fail(ap, "out of memory");
            else if (ap->inflight && ds_batch_count(ap->batch) % 64 == 0)
                ds_applier_push_sent(ap->dbs[0]);
            break;
        case DS_CONSUMER_FAILED:
            fail(ap, "%s", errstr);
            break;
        case DS_CONSUMER_EOF:
        case DS_CONSUMER_NOTHING:
            /* Nothing more to read for now: the batch in flight commits without waiting
             * for the next one to fill. */
            idle = true;
            finish_batch(ap);
            break;
        }
        if (ap->failed)
            break;
        now = monotonic_us();
        batch_start = ds_batch_started_us(ap->batch);
        if (ds_batch_count(ap->batch) >= ap->config->apply_batch_max_messages ||
            (batch_start && (idle || now - batch_start >= (int64_t)ap->config->apply_batch_max_ms *
                                                               1000)))
            process_batch(ap);
        if (now - ap->last_progress_us >= PROGRESS_INTERVAL_US) {
            ap->last_progress_us = now;
            log_progress(ap);
        }
        /* A parent may also come from elsewhere than apply (a backfill, the application):
         * waiting changes are retried every so often even when their database gets nothing. */
        for (int db = 0; db < ap->ndbs && !ap->failed && ds_batch_count(ap->batch) == 0; db++) {
            if (now - ap->pending_retried_us[db] >= PENDING_RETRY_INTERVAL_US)
                retry_pending(ap, db);
        }
    }
    /* On a signal the batch read so far is still applied: it is the "current batch". */
    if (!ap->failed && ds_batch_count(ap->batch) > 0)
        process_batch(ap);
    finish_batch(ap);
}

static int run(const ds_config_t *config, run_mode_t mode, FILE *out)
{
    apply_t ap;
    struct sigaction sa;
    int status;

    memset(&ap, 0, sizeof(ap));
    ap.instance_lock = -1;
    ap.config = config;
    ap.mode = mode;
    ap.stop_on_error = mode == MODE_APPLY && strcmp(config->apply_on_error, "stop") == 0;
    if (mode == MODE_APPLY)
        ap.group_id = strdup(config->apply_group_id);
    else if (asprintf(&ap.group_id, "%s.dlq-retry", config->apply_group_id) < 0)
        ap.group_id = NULL;
    if (!ap.group_id) {
        ds_error("out of memory");
        return DS_APPLY_EXIT_FAILURE;
    }
    stop_signals = 0;
    test_pause_before_write_ms = getenv("DS_TEST_PAUSE_BEFORE_WRITE_MS")
                                     ? atoi(getenv("DS_TEST_PAUSE_BEFORE_WRITE_MS"))
                                     : 0;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Before anything else: an address in use is a configuration error. */
    if (mode == MODE_APPLY) {
        char errstr[1024];

        if (!start_metrics(&ap, config->apply_metrics_address, errstr, sizeof(errstr))) {
            ds_error("%s", errstr);
            apply_free(&ap);
            return DS_APPLY_EXIT_USAGE;
        }
    }
    status = setup(&ap);
    if (status != DS_APPLY_EXIT_OK) {
        apply_free(&ap);
        return status;
    }
    if ((mode == MODE_APPLY || read_dlq_end(&ap)) && subscribe(&ap))
        run_loop(&ap);

    if (ap.failed) {
        ds_error("%s", ap.error);
        /* Two processes given one apply.instance_id: the configuration's mistake. */
        status = ds_consumer_instance_fenced(ap.consumer) ? DS_APPLY_EXIT_USAGE
                                                          : DS_APPLY_EXIT_FAILURE;
    } else {
        status = DS_APPLY_EXIT_OK;
    }
    log_progress(&ap);
    /* Counted per dead letter from what the databases did with it: the number published
     * cannot say how many were applied (a change that cannot be mapped again is published
     * but is no message written). */
    if (mode == MODE_DLQ_RETRY && out) {
        fprintf(out, "%" PRIu64 " dead letters applied, %" PRIu64 " failed again%s", ap.retried,
                ap.failed_again, ap.failed_again ? " (published again with attempts + 1)" : "");
        if (ap.superseded)
            fprintf(out,
                    ", %" PRIu64 " superseded (a newer change of the same source row was "
                    "applied since; not written)",
                    ap.superseded);
        fputc('\n', out);
    }
    ds_info("stopped%s", stop_signals ? " on signal" : "");
    apply_free(&ap);
    return status;
}

int ds_apply_run(const ds_config_t *config)
{
    return run(config, MODE_APPLY, NULL);
}

int ds_apply_dlq_retry(const ds_config_t *config, FILE *out)
{
    return run(config, MODE_DLQ_RETRY, out);
}
