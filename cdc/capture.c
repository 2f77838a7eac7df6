/*
 * capture.c: the capture loop.
 *
 * One thread, one libev loop, three event sources:
 *   - the replication socket: read XLogData, decode, build envelopes, hand them to Kafka;
 *   - librdkafka's wakeup pipe: serve delivery reports, which complete transactions and
 *     move the confirmed position;
 *   - a timer: standby status updates (write = what we received, flush = what Kafka holds).
 * Reading stops (the socket watcher is stopped) while more than capture.max_inflight_* is
 * unacknowledged, which bounds memory when the broker is slow or down.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "dualsync/backfill.h"
#include "dualsync/capture.h"
#include "dualsync/changes.h"
#include "dualsync/incremental.h"
#include "dualsync/inflight.h"
#include "dualsync/kafka_props.h"
#include "dualsync/log.h"
#include "dualsync/metrics.h"
#include "dualsync/metrics_http.h"
#include "dualsync/pgoutput.h"
#include "dualsync/preflight.h"
#include "dualsync/standby.h"
#include "dualsync/producer.h"
#include "dualsync/replication.h"
#include "dualsync/slot_monitor.h"
#include "dualsync/strset.h"
#include "dualsync/topics.h"

/* Messages handled per socket callback before delivery reports get a turn. */
#define MESSAGES_PER_POLL 1000
/* Reading resumes once in-flight work falls below this fraction of the limits. */
#define RESUME_PERCENT 50
#define RECONNECT_BACKOFF_MAX_MS 30000
#define PROGRESS_LOG_INTERVAL_S 30.0
#define STATUS_MIN_INTERVAL_S 0.1
/* How long a truncate waits for its topic's partition count. */
#define TRUNCATE_METADATA_TIMEOUT_MS 30000
/* librdkafka's bound on a v2 record's framing, counted against message.max.bytes. */
#define RECORD_OVERHEAD_BYTES 64
/* Headers a change record can carry (changes.h: one on a primary-key change's records). */
#define MAX_RECORD_HEADERS 4
/* Debezium's context headers (extended.headers.enabled), on every change record. */
#define CONTEXT_HEADERS 4
/* How long each admin request that creates or describes topics may take. */
#define TOPICS_TIMEOUT_MS 30000
/* The longest wait for Kafka to acknowledge what preceded a failure. */
#define FAILURE_FLUSH_MS 5000
/* How often the slot's size is read for the metrics. */
#define SLOT_METRICS_INTERVAL_S 5.0

typedef struct capture {
    const ds_config_t *config;
    struct ev_loop *loop;
    ds_source_catalog_t *catalog; /* replica identity and primary keys of the tables */
    ds_replication_t *repl;       /* NULL between sessions */
    ds_repl_identity_t identity;  /* what IDENTIFY_SYSTEM said */
    ds_pgoutput_t *decoder;       /* relation cache; rebuilt for each session */
    ds_changes_t *changes;        /* transaction state; rebuilt for each session */
    ds_producer_t *producer;
    ds_inflight_t *inflight;      /* unacknowledged transactions */
    ds_incremental_t *incremental; /* open windows of `dualsync backfill`; rebuilt per session */
    ds_topics_t *topics;          /* admin client: creates a topic before its first message */
    ds_strset_t *topics_ready;    /* topics known to exist (created or checked) */
    char ready_topic[256];        /* the last of them a record went to: records come in runs of
                                   * one topic, so the set is not searched per record */

    uint64_t tx_seq;          /* in-flight sequence of the open transaction */
    uint32_t tx_xid;          /* its xid (source.txId of incremental read events) */
    bool in_tx;               /* between Begin and Commit */
    ds_lsn_t received_lsn;    /* furthest WAL position the server reported */
    ds_lsn_t confirmed_lsn;   /* every change before it is acknowledged by Kafka */
    ds_lsn_t last_msg_lsn;    /* LSN of the last XLogData, for error messages */
    ds_lsn_t keepalive_lsn;   /* furthest keepalive position seen outside a transaction */

    bool paused;              /* socket watcher stopped for back-pressure */
    bool stopping;            /* SIGINT/SIGTERM received */
    bool stop_now;            /* a second signal: do not wait for Kafka */
    bool failed;              /* a fatal error; error says what */
    bool session_lost;        /* the replication connection failed (retriable) */
    bool slot_prepared;       /* the first session settled the slot and its backfill */
    bool created_slot;        /* this run created the slot */
    uint64_t backfill_calls;  /* rows the backfill handed over, to pace its Kafka service */
    char error[1024];

    uint64_t messages_sent;   /* totals, for the progress line */
    uint64_t messages_acked;
    uint64_t bytes_sent;
    ev_tstamp last_progress;  /* when the progress line was last written */
    ev_tstamp last_status;    /* when a standby status update was last sent */
    ds_lsn_t reported_lsn;    /* the flush position that update carried */

    ev_io repl_watcher;       /* the replication socket */
    ev_io kafka_watcher;      /* librdkafka's wakeup pipe */
    ev_timer status_timer;    /* standby status updates */
    ev_idle resume_idle;      /* re-drains libpq's buffer after a pause ends */
    ev_signal sigint_watcher;
    ev_signal sigterm_watcher;

    /* Metrics (docs/metrics.md); all NULL when capture.metrics_address is "off". */
    ds_metrics_t *metrics;
    ds_metrics_http_t *http;
    ds_slot_monitor_t *slot_monitor;
    int64_t tx_commit_us;          /* the open transaction's commit time (Unix us) */
    ds_metric_t *m_changes;        /* table, op */
    char m_changes_topic[256];     /* the topic and op of m_changes_series (a copy: a topic */
    char m_changes_op;             /* string is freed when its relation changes). Changes */
    ds_series_t *m_changes_series; /* come in runs of one table and op, so the series of the
                                    * last one is kept instead of looked up per change */
    ds_series_t *m_inflight_messages, *m_inflight_bytes, *m_seconds_behind;
    ds_series_t *m_source_connected, *m_kafka_connected;
    ds_series_t *m_latency;        /* commit to acknowledgement, seconds */
    ds_series_t *m_slot_retained, *m_slot_lag;
    ds_metric_t *m_backfill_done, *m_backfill_total; /* table */
    ds_series_t *m_active;         /* 1 the active capture, 0 a standby */
    char health[256];
    bool backfilling;              /* the initial backfill reads the tables (no stream yet) */
    bool standby;                  /* waiting for another process to release the slot */
    bool producer_broken;          /* the producer hit a fatal error while streaming: the
                                    * session ends and a new producer resends from the slot */
    ds_metric_t *m_acked, *m_produce_errors; /* the producer's, kept for a new producer */

    /* Debezium's __debezium.context.* headers, when debezium.extended.headers.enabled. */
    int ncontext;                                  /* 0 when disabled */
    ds_producer_header_t context[CONTEXT_HEADERS]; /* values point into the config and below */
    char run_id[37];                               /* this process's run: a UUID (version 7) */
} capture_t;

static void fail(capture_t *c, const char *fmt, ...) DS_PRINTF(2, 3);

/*
 * A UUID of version 7 (RFC 9562: 48 bits of Unix milliseconds, then random bits), as
 * Debezium's runId: a consumer can tell one run of capture from the next, and order them.
 */
static void make_run_id(char out[37])
{
    uint8_t b[16];
    uint64_t ms = (uint64_t)(ds_now_us() / 1000);
    FILE *f = fopen("/dev/urandom", "rb");

    if (!f || fread(b, 1, sizeof(b), f) != sizeof(b)) {
        /* Unique enough without the random part: the time and the process id. */
        uint64_t mix = ((uint64_t)getpid() << 32) ^ (uint64_t)ds_now_us();

        for (size_t i = 0; i < sizeof(b); i++)
            b[i] = (uint8_t)(mix >> (8 * (i % 8)));
    }
    if (f)
        fclose(f);
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (8 * (5 - i)));
    b[6] = (uint8_t)(0x70 | (b[6] & 0x0F));
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3F));
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

/*
 * The headers Debezium's extended.headers.enabled (on by default) puts on every change
 * record: the logical name (topic_prefix), the task (capture is one task: "0"), the
 * connector ("postgresql") and the run.
 */
static void init_context_headers(capture_t *c)
{
    static const char *const names[CONTEXT_HEADERS] = {
        "__debezium.context.connectorLogicalName", "__debezium.context.taskId",
        "__debezium.context.connectorName", "__debezium.context.runId"};
    const char *values[CONTEXT_HEADERS];

    c->ncontext = 0;
    if (!c->config->value_format.extended_headers)
        return;
    make_run_id(c->run_id);
    values[0] = c->config->topic_prefix;
    values[1] = "0";
    values[2] = "postgresql";
    values[3] = c->run_id;
    for (int i = 0; i < CONTEXT_HEADERS; i++) {
        c->context[i].name = names[i];
        c->context[i].value = values[i];
        c->context[i].value_len = strlen(values[i]);
    }
    c->ncontext = CONTEXT_HEADERS;
}

static void fail(capture_t *c, const char *fmt, ...)
{
    va_list ap;

    if (c->failed)
        return; /* keep the first error: later ones are usually its consequences */
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof(c->error), fmt, ap);
    va_end(ap);
    c->failed = true;
    ev_break(c->loop, EVBREAK_ALL);
}

static bool over_limits(const capture_t *c, int percent)
{
    return ds_inflight_bytes(c->inflight) * 100 >
               (size_t)c->config->max_inflight_bytes * (size_t)percent ||
           ds_inflight_messages(c->inflight) * 100 >
               (size_t)c->config->max_inflight_messages * (size_t)percent;
}

static bool send_status(capture_t *c, bool reply_requested);

static void advance_confirmed(capture_t *c)
{
    ds_lsn_t lsn = ds_inflight_pop_completed(c->inflight);

    if (lsn > c->confirmed_lsn)
        c->confirmed_lsn = lsn;
    /* A keepalive that came while transactions were unacknowledged: they are now, so all the
     * server had sent before it is in Kafka. The walsender sends no other keepalive while
     * we report having received its position, so without this an idle slot would stay
     * short of the last unpublished WAL until the next write. */
    if (!c->in_tx && ds_inflight_transactions(c->inflight) == 0 &&
        c->keepalive_lsn > c->confirmed_lsn)
        c->confirmed_lsn = c->keepalive_lsn;
    /* Tell the server soon rather than at the next timer tick, so the slot (and anyone
     * watching it) follows Kafka closely; at most every STATUS_MIN_INTERVAL_S, as each
     * update costs the walsender a round of slot bookkeeping. */
    if (c->confirmed_lsn > c->reported_lsn && c->repl &&
        ev_now(c->loop) - c->last_status >= STATUS_MIN_INTERVAL_S)
        send_status(c, false);
}

static bool send_status(capture_t *c, bool reply_requested)
{
    char errstr[512];

    if (!c->repl)
        return true;
    c->last_status = ev_now(c->loop);
    c->reported_lsn = c->confirmed_lsn;
    if (!ds_replication_send_status(c->repl, c->received_lsn, c->confirmed_lsn, reply_requested,
                                    errstr, sizeof(errstr))) {
        snprintf(c->error, sizeof(c->error), "%s", errstr);
        c->session_lost = true;
        ev_break(c->loop, EVBREAK_ALL);
        return false;
    }
    return true;
}

/* ---- Kafka side ---- */

/*
 * The error for a change too large for Kafka: its table, key, LSN and size, which limit it
 * exceeds, and what to do. Kafka has two limits: the producer's message.max.bytes (checked
 * by librdkafka before sending) and the topic's max.message.bytes (by the broker; its default
 * is the broker's message.max.bytes). @p partition < 0: the producer's limit.
 */
static void too_large(const capture_t *c, char *out, size_t out_size, const char *topic,
                      const char *key, size_t key_len, size_t bytes, ds_lsn_t lsn, int partition,
                      const char *reason)
{
    size_t prefix_len = strlen(c->config->topic_prefix);
    const char *table = strncmp(topic, c->config->topic_prefix, prefix_len) == 0 &&
                                topic[prefix_len] == '.'
                            ? topic + prefix_len + 1
                            : topic;
    int shown = key ? (int)(key_len > 200 ? 200 : key_len) : 4;
    char lsn_text[DS_LSN_STRLEN], slot_text[DS_LSN_STRLEN], what[160], fix[640], topic_fix[400];

    snprintf(topic_fix, sizeof(topic_fix),
             "the topic's max.message.bytes (kafka-configs.sh --alter --entity-type topics "
             "--entity-name %s --add-config max.message.bytes=N; a topic without it takes the "
             "broker's message.max.bytes)",
             topic);
    if (partition < 0) {
        snprintf(what, sizeof(what), "over the producer's message.max.bytes (%zu)",
                 ds_producer_max_message_bytes(c->producer));
        snprintf(fix, sizeof(fix),
                 "Raise \"message.max.bytes\" in the configuration's \"kafka\" object above "
                 "%zu, and %s to match",
                 bytes, topic_fix);
    } else {
        snprintf(what, sizeof(what),
                 "refused by the broker on partition %d (%s): over the topic's "
                 "max.message.bytes",
                 partition, reason);
        snprintf(fix, sizeof(fix), "Raise %s above %zu (the producer's message.max.bytes, %zu, "
                                   "allows it)",
                 topic_fix, bytes, ds_producer_max_message_bytes(c->producer));
    }
    snprintf(out, out_size,
             "change too large for Kafka: table %s, key %.*s%s, LSN %s: a message of %zu bytes "
             "on topic %s, %s. %s, then start capture again. Until then every start stops at "
             "this change with this error (exit 1): the slot stays at %s, so nothing after it "
             "is confirmed, skipped or lost",
             table, shown, key ? key : "null", key && key_len > 200 ? "..." : "",
             lsn == DS_INVALID_LSN ? "unknown" : ds_lsn_format(lsn, lsn_text), bytes, topic, what,
             fix, ds_lsn_format(c->confirmed_lsn, slot_text));
}

/* source.lsn of a Debezium value capture wrote: the last "lsn" member, since the source block
 * follows the row images (where a column may be named lsn). */
static ds_lsn_t value_lsn(const char *value, size_t len)
{
    static const char needle[] = "\"lsn\":";
    const char *found = NULL, *p = value, *end = value + len;

    while (p && (size_t)(end - p) >= sizeof(needle) - 1) {
        const char *hit = memmem(p, (size_t)(end - p), needle, sizeof(needle) - 1);

        if (!hit)
            break;
        found = hit;
        p = hit + 1;
    }
    if (!found)
        return DS_INVALID_LSN;
    {
        ds_lsn_t lsn = 0;

        for (p = found + sizeof(needle) - 1; p < end && *p >= '0' && *p <= '9'; p++)
            lsn = lsn * 10 + (ds_lsn_t)(*p - '0');
        return lsn;
    }
}

/* Kafka refused a message for good: when for its size, say which change it was. */
static void on_reject(void *ctx, uint64_t tag, const ds_producer_reject_t *r)
{
    capture_t *c = ctx;
    char message[2048];

    (void)tag;
    if (!r->too_large)
        return; /* on_ack reports it */
    too_large(c, message, sizeof(message), r->topic, r->key, r->key_len,
              r->key_len + r->value_len, r->value ? value_lsn(r->value, r->value_len)
                                                  : DS_INVALID_LSN,
              r->partition, r->reason);
    fail(c, "%s", message);
}

static void on_ack(void *ctx, uint64_t tag, size_t bytes, const char *err)
{
    capture_t *c = ctx;
    char lsn[DS_LSN_STRLEN];

    if (err) {
        /* With message.timeout.ms=0 librdkafka retries transient failures forever; what
         * reaches us is permanent (message too large, authorization). The slot stays before
         * this transaction, so nothing is lost: a restart sends it again. */
        fail(c, "%s; the slot stays at %s, so this change is sent again after the cause is "
                "fixed and capture restarted",
             err, ds_lsn_format(c->confirmed_lsn, lsn));
        return;
    }
    ds_inflight_acked(c->inflight, tag, bytes);
    c->messages_acked++;
    advance_confirmed(c);

    if (c->paused && c->repl && !over_limits(c, RESUME_PERCENT) && !c->stopping) {
        /* The rest of a backfill chunk comes before the WAL after it; it is handed over from
         * the loop, not from within this delivery report. */
        if (c->incremental && ds_incremental_publishing(c->incremental)) {
            ev_idle_start(c->loop, &c->resume_idle);
            return;
        }
        c->paused = false;
        ev_io_start(c->loop, &c->repl_watcher);
        /* libpq may already hold data the socket will not signal again. */
        ev_idle_start(c->loop, &c->resume_idle);
        ds_debug("in-flight below %d%% of the limits; reading WAL again", RESUME_PERCENT);
    }
}

static void serve_kafka(capture_t *c)
{
    const char *fatal;

    if (c->producer_broken)
        return;
    while (ds_producer_poll(c->producer, 0) > 0)
        ;
    fatal = ds_producer_fatal_error(c->producer);
    if (!fatal)
        return;
    /* While streaming, the slot can give every unconfirmed change again: end the session
     * and resend them with a new producer (main loop). An idempotent producer's fatal errors
     * (a sequence gap after a cluster lost its in-sync replicas, an unknown producer id) end
     * that producer, not the data. The initial backfill fails instead; it is redone. */
    if (c->repl && !c->backfilling) {
        c->producer_broken = true;
        snprintf(c->error, sizeof(c->error), "%s", fatal);
        c->session_lost = true;
        ev_break(c->loop, EVBREAK_ALL);
        return;
    }
    fail(c, "%s", fatal);
}

static void on_kafka_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    capture_t *c = w->data;

    ds_producer_drain_wakeup(c->producer);
    serve_kafka(c);
}

/*
 * Makes sure @p topic exists before a message goes to it. The tables' topics were created at
 * start; a table renamed since (its Relation message names a new topic) gets its topic here,
 * created like the others instead of by the broker's auto-creation.
 */
static bool ensure_topic(capture_t *c, const char *topic, ds_topic_kind_t kind, char *errstr,
                         size_t errstr_size)
{
    size_t len = strlen(topic);

    if (!ds_strset_contains(c->topics_ready, topic, len)) {
        if (!ds_topics_ensure(c->topics, &topic, &kind, 1,
                              ds_producer_max_message_bytes(c->producer), TOPICS_TIMEOUT_MS, NULL,
                              errstr, errstr_size))
            return false;
        if (!ds_strset_add(c->topics_ready, topic, len))
            return ds_fail(errstr, errstr_size, "out of memory");
    }
    snprintf(c->ready_topic, sizeof(c->ready_topic), "%s", topic);
    return true;
}

/* Hands one record to Kafka as a message of in-flight entry @seq. */
/*
 * A truncate goes to every partition of its topic: each partition's consumers then remove the
 * rows of the keys that partition carries, in that partition's order, and no partition waits
 * for another (mapping_sql.c, truncate). On a topic of several partitions its key also says
 * which partition it is for and how many there are:
 * {"__dualsync_truncate":"<schema>.<table>","partition":P,"partitions":N}.
 */
static bool send_truncate(capture_t *c, uint64_t seq, const ds_change_record_t *rec,
                          const ds_producer_header_t *headers, int nheaders, char *errstr,
                          size_t errstr_size)
{
    int n = ds_producer_partition_count(c->producer, rec->topic, TRUNCATE_METADATA_TIMEOUT_MS);
    char key[512];

    if (n < 1)
        return ds_fail(errstr, errstr_size,
                       "cannot send the truncate of %s at LSN %X/%X: the partition count of "
                       "topic %s is unknown (no broker answered within %d ms); capture stops "
                       "before it and sends it again when restarted",
                       rec->topic, (unsigned)(rec->lsn >> 32), (unsigned)rec->lsn, rec->topic,
                       TRUNCATE_METADATA_TIMEOUT_MS);
    if (n == 1) {
        if (!ds_producer_send_headers(c->producer, rec->topic, -1, rec->key, rec->key_len,
                                      rec->value, rec->value_len, headers, nheaders, seq, errstr,
                                      errstr_size))
            return false;
        ds_inflight_sent(c->inflight, seq, rec->key_len + rec->value_len);
        return true;
    }
    for (int p = 0; p < n; p++) {
        /* The record's key is the JSON object {"__dualsync_truncate":"..."}: extended. */
        int len = snprintf(key, sizeof(key), "%.*s,\"partition\":%d,\"partitions\":%d}",
                           (int)rec->key_len - 1, rec->key, p, n);

        if (len < 0 || (size_t)len >= sizeof(key))
            return ds_fail(errstr, errstr_size,
                           "cannot send the truncate of %s at LSN %X/%X: its key for partition "
                           "%d of %d would exceed %zu bytes (a table name this long is not "
                           "supported on a topic of several partitions; use one partition)",
                           rec->topic, (unsigned)(rec->lsn >> 32), (unsigned)rec->lsn, p, n,
                           sizeof(key) - 1);
        if (!ds_producer_send_headers(c->producer, rec->topic, p, key, (size_t)len, rec->value,
                                      rec->value_len, headers, nheaders, seq, errstr, errstr_size))
            return false;
        ds_inflight_sent(c->inflight, seq, (size_t)len + rec->value_len);
    }
    return true;
}

static bool send_record(capture_t *c, uint64_t seq, const ds_change_record_t *rec, char *errstr,
                        size_t errstr_size)
{
    size_t bytes = rec->key_len + rec->value_len;
    size_t header_bytes = 0;
    ds_producer_header_t headers[MAX_RECORD_HEADERS + CONTEXT_HEADERS];
    int nheaders = 0;

    /* The record's own headers first, then the context ones, in Debezium's order. BEGIN and
     * END records have none: Debezium's transaction monitor sends them without. */
    for (int i = 0; i < rec->nheaders && nheaders < MAX_RECORD_HEADERS; i++, nheaders++) {
        headers[nheaders].name = rec->headers[i].name;
        headers[nheaders].value = rec->headers[i].value;
        headers[nheaders].value_len = rec->headers[i].value_len;
    }
    for (int i = 0; !rec->is_transaction && i < c->ncontext; i++)
        headers[nheaders++] = c->context[i];
    for (int i = 0; i < nheaders; i++)
        header_bytes += strlen(headers[i].name) + headers[i].value_len;
    /* librdkafka would refuse it with "Message size too large" alone. It counts the record's
     * framing and headers too (the framing is at most a few dozen bytes in the v2 format): a
     * margin covers it. */
    if (bytes + header_bytes + RECORD_OVERHEAD_BYTES > ds_producer_max_message_bytes(c->producer)) {
        too_large(c, errstr, errstr_size, rec->topic, rec->key, rec->key_len, bytes + header_bytes,
                  rec->lsn, -1, NULL);
        return false;
    }
    if (strcmp(rec->topic, c->ready_topic) != 0 &&
        !ensure_topic(c, rec->topic, rec->is_transaction ? DS_TOPIC_TRANSACTIONS : DS_TOPIC_CHANGES,
                      errstr, errstr_size))
        return false;
    if (rec->op == 't') {
        if (!send_truncate(c, seq, rec, headers, nheaders, errstr, errstr_size))
            return false;
    } else {
        /* -1: the partitioner's choice (murmur2 of the key). */
        if (!ds_producer_send_headers(c->producer, rec->topic, -1, rec->key, rec->key_len,
                                      rec->value, rec->value_len, headers, nheaders, seq, errstr,
                                      errstr_size))
            return false;
        ds_inflight_sent(c->inflight, seq, bytes);
    }
    if (c->m_changes && rec->op &&
        (rec->op != c->m_changes_op || strcmp(rec->topic, c->m_changes_topic) != 0)) {
        static const char *const ops[] = {"c", "u", "d", "t", "r"};
        const char *op = strchr("cudtr", rec->op);
        size_t prefix_len = strlen(c->config->topic_prefix);
        const char *table = strncmp(rec->topic, c->config->topic_prefix, prefix_len) == 0 &&
                                    rec->topic[prefix_len] == '.'
                                ? rec->topic + prefix_len + 1
                                : rec->topic;

        snprintf(c->m_changes_topic, sizeof(c->m_changes_topic), "%s", rec->topic);
        c->m_changes_op = rec->op;
        c->m_changes_series = op ? ds_metric_with(c->m_changes, table, ops[op - "cudtr"]) : NULL;
    }
    if (c->m_changes && rec->op)
        ds_series_add(c->m_changes_series, 1);
    c->messages_sent++;
    c->bytes_sent += rec->key_len + rec->value_len;
    return true;
}

static bool emit_record(void *ctx, const ds_change_record_t *rec, char *errstr,
                        size_t errstr_size)
{
    capture_t *c = ctx;

    /* A streamed change inside an incremental backfill window supersedes the chunk's row. */
    if (c->incremental && !ds_incremental_observe(c->incremental, rec, errstr, errstr_size))
        return false;
    return send_record(c, c->tx_seq, rec, errstr, errstr_size);
}

/* ---- incremental backfill windows (incremental.h) ---- */

/* A window is an in-flight entry of its own, begun at its LOW: the ring lets the slot move
 * only past completed entries in order, so nothing after the LOW is confirmed before the
 * window is released and its read events (counted on that entry) are acknowledged. It ends
 * at no LSN of its own: the transactions after it carry the positions. */
static uint64_t window_hold(void *ctx)
{
    capture_t *c = ctx;

    return ds_inflight_begin(c->inflight);
}

static bool window_emit(void *ctx, uint64_t token, const ds_change_record_t *rec, char *errstr,
                        size_t errstr_size)
{
    return send_record(ctx, token, rec, errstr, errstr_size);
}

/* A chunk's rows wait while capture is at its in-flight limits, like the WAL after them. */
static bool window_full(void *ctx)
{
    return over_limits(ctx, 100);
}

static void window_release(void *ctx, uint64_t token)
{
    capture_t *c = ctx;

    ds_inflight_commit(c->inflight, token, DS_INVALID_LSN);
    advance_confirmed(c);
}

/* ---- PostgreSQL side ---- */

static void handle_xlogdata(capture_t *c, const ds_repl_msg_t *msg)
{
    ds_pgoutput_msg_t decoded;
    char errstr[1024];
    char lsn[DS_LSN_STRLEN];

    c->last_msg_lsn = msg->wal_start;
    if (msg->wal_end > c->received_lsn)
        c->received_lsn = msg->wal_end;

    if (!ds_pgoutput_decode(c->decoder, msg->data, msg->len, &decoded, errstr,
                            sizeof(errstr))) {
        fail(c, "cannot decode the pgoutput message at LSN %s: %s",
             ds_lsn_format(msg->wal_start, lsn), errstr);
        return;
    }
    if (decoded.type == DS_PGOUTPUT_BEGIN) {
        c->tx_seq = ds_inflight_begin(c->inflight);
        c->tx_xid = decoded.u.begin.xid;
        c->tx_commit_us = decoded.u.begin.commit_time + DS_PG_EPOCH_OFFSET_US;
        c->in_tx = true;
        ds_incremental_clock(c->incremental,
                             decoded.u.begin.commit_time + DS_PG_EPOCH_OFFSET_US);
    }
    if (!ds_changes_handle(c->changes, &decoded, msg->wal_start, ds_now_us(), emit_record, c,
                           errstr, sizeof(errstr))) {
        fail(c, "%s", errstr);
        return;
    }
    if (decoded.type == DS_PGOUTPUT_MESSAGE &&
        !ds_incremental_message(c->incremental, &decoded, c->in_tx ? c->tx_xid : 0, ds_now_us(),
                                errstr, sizeof(errstr))) {
        fail(c, "%s", errstr);
        return;
    }
    if (decoded.type == DS_PGOUTPUT_COMMIT) {
        if (!c->in_tx) {
            fail(c, "Commit without Begin at LSN %s", ds_lsn_format(msg->wal_start, lsn));
            return;
        }
        ds_inflight_commit(c->inflight, c->tx_seq, decoded.u.commit.end_lsn);
        if (c->metrics)
            ds_inflight_set_commit_time(c->inflight, c->tx_seq, c->tx_commit_us);
        c->in_tx = false;
        advance_confirmed(c);
    }
}

static void handle_keepalive(capture_t *c, const ds_repl_msg_t *msg)
{
    if (msg->wal_end > c->received_lsn)
        c->received_lsn = msg->wal_end;
    /* Nothing in flight and no open transaction: everything the server sent up to wal_end
     * is in Kafka (or was not published at all), so the slot may move there. Without this a
     * busy database whose published tables are idle would make the slot retain WAL. With
     * work still in flight, advance_confirmed moves there once Kafka acknowledged it. */
    if (!c->in_tx && msg->wal_end > c->keepalive_lsn)
        c->keepalive_lsn = msg->wal_end;
    if (!c->in_tx && ds_inflight_transactions(c->inflight) == 0 &&
        msg->wal_end > c->confirmed_lsn)
        c->confirmed_lsn = msg->wal_end;
    if (msg->reply_requested)
        send_status(c, false);
}

static void process_stream(capture_t *c)
{
    ds_repl_msg_t msg;
    char errstr[1024];
    int handled = 0;

    while (!c->paused && !c->stopping && !c->failed && !c->session_lost) {
        switch (ds_replication_read(c->repl, &msg, errstr, sizeof(errstr))) {
        case DS_REPL_READ_MESSAGE:
            if (msg.type == DS_REPL_XLOGDATA)
                handle_xlogdata(c, &msg);
            else
                handle_keepalive(c, &msg);
            break;
        case DS_REPL_READ_WOULDBLOCK:
            return;
        case DS_REPL_READ_END:
            snprintf(c->error, sizeof(c->error), "the server ended the replication stream");
            c->session_lost = true;
            ev_break(c->loop, EVBREAK_ALL);
            return;
        case DS_REPL_READ_ERROR:
            snprintf(c->error, sizeof(c->error), "%s", errstr);
            c->session_lost = true;
            ev_break(c->loop, EVBREAK_ALL);
            return;
        }
        if (++handled % MESSAGES_PER_POLL == 0)
            serve_kafka(c);
        if (over_limits(c, 100)) {
            c->paused = true;
            ev_io_stop(c->loop, &c->repl_watcher);
            ds_debug("%zu messages (%zu bytes) in flight; pausing WAL reading",
                     ds_inflight_messages(c->inflight), ds_inflight_bytes(c->inflight));
        }
    }
}

static void on_repl_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    process_stream(w->data);
}

static void on_resume_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
    capture_t *c = w->data;

    ev_idle_stop(loop, w);
    if (!c->repl)
        return;
    if (c->paused) {
        char errstr[1024];

        /* Started by on_ack for the rest of a backfill chunk (process_stream paused on it). */
        if (c->stopping || !c->incremental || !ds_incremental_publishing(c->incremental))
            return;
        if (!ds_incremental_resume(c->incremental, errstr, sizeof(errstr))) {
            fail(c, "%s", errstr);
            return;
        }
        /* Still at the limits: the next acknowledgements come back here or resume reading. */
        if (ds_incremental_publishing(c->incremental) || over_limits(c, RESUME_PERCENT))
            return;
        c->paused = false;
        ev_io_start(loop, &c->repl_watcher);
    }
    process_stream(c);
}

static void log_progress(capture_t *c)
{
    char confirmed[DS_LSN_STRLEN], received[DS_LSN_STRLEN];

    ds_info("progress: %llu messages sent (%.1f MB), %llu acknowledged, %zu in flight; "
            "received %s, confirmed %s",
            (unsigned long long)c->messages_sent, (double)c->bytes_sent / 1e6,
            (unsigned long long)c->messages_acked, ds_inflight_messages(c->inflight),
            ds_lsn_format(c->received_lsn, received), ds_lsn_format(c->confirmed_lsn, confirmed));
}

static void on_status_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    capture_t *c = w->data;

    serve_kafka(c);
    ds_producer_check_brokers(c->producer);
    /* The timer ticks every STATUS_MIN_INTERVAL_S: a confirmation held back by that
     * spacing goes out now; otherwise the server hears from us every status interval. */
    if (c->confirmed_lsn > c->reported_lsn ||
        ev_now(loop) - c->last_status >= c->config->status_interval_ms / 1000.0)
        send_status(c, false);
    if (ev_now(loop) - c->last_progress >= PROGRESS_LOG_INTERVAL_S) {
        c->last_progress = ev_now(loop);
        log_progress(c);
    }
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    capture_t *c = w->data;

    if (c->stopping) {
        ds_warning("second signal: stopping without waiting for Kafka; unacknowledged "
                   "changes will be sent again on the next start");
        c->stop_now = true;
    } else {
        ds_info("signal %d: finishing: waiting for Kafka to acknowledge what was sent", w->signum);
        c->stopping = true;
    }
    ev_break(loop, EVBREAK_ALL);
}

/* ---- metrics ---- */

static void on_tx_done(void *ctx, int64_t commit_us)
{
    capture_t *c = ctx;
    int64_t age = ds_now_us() - commit_us;

    ds_series_observe(c->m_latency, age > 0 ? (double)age / 1e6 : 0);
}

/* A new ring (each session after a loss gets one) reports completions like the first. */
static void watch_inflight(capture_t *c)
{
    if (c->metrics && c->inflight)
        ds_inflight_on_done(c->inflight, on_tx_done, c);
}

static void collect(void *ctx)
{
    capture_t *c = ctx;
    int64_t oldest = c->inflight ? ds_inflight_oldest_commit_us(c->inflight) : 0;
    int64_t age = oldest ? ds_now_us() - oldest : 0;

    ds_series_set(c->m_inflight_messages, c->inflight ? ds_inflight_messages(c->inflight) : 0);
    ds_series_set(c->m_inflight_bytes, c->inflight ? ds_inflight_bytes(c->inflight) : 0);
    /* Exactly 0 when nothing committed waits for Kafka, however long the tables are idle. */
    ds_series_set(c->m_seconds_behind, age > 0 ? (double)age / 1e6 : 0);
    ds_series_set(c->m_source_connected,
                  (c->repl && !c->session_lost) || c->backfilling ? 1 : 0);
    ds_series_set(c->m_kafka_connected, ds_producer_brokers_down(c->producer) ? 0 : 1);
}

static const char *health(void *ctx)
{
    capture_t *c = ctx;

    /* Waiting is a standby's job, not an outage (a liveness probe must not restart it). */
    if (c->standby) {
        snprintf(c->health, sizeof(c->health), "ok: standby, waiting for replication slot "
                 "\"%.100s\" to be released", c->config->slot);
        return c->health;
    }
    /* A backfill may read for hours before streaming starts: it is progress, not an outage
     * (a liveness probe must not restart it). */
    if ((!c->repl || c->session_lost) && !c->backfilling) {
        snprintf(c->health, sizeof(c->health), "not streaming from the source database%s%.200s",
                 c->error[0] ? ": " : "", c->error);
        /* One line. */
        c->health[strcspn(c->health, "\n")] = '\0';
        return c->health;
    }
    if (ds_producer_brokers_down(c->producer))
        return "Kafka: all brokers are down";
    return NULL;
}

/* Registers capture's metrics and starts the endpoint; false with errstr when the address
 * cannot be used (a configuration error). */
static bool start_metrics(capture_t *c, const char *address, char *errstr, size_t errstr_size)
{
    static const double latency_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                            1,     2.5,  5,     10,   30,  60,  300};
    ds_metrics_t *m;

    if (strcmp(address, "off") == 0)
        return true;
    if (!(m = c->metrics = ds_metrics_new()))
        return ds_fail(errstr, errstr_size, "out of memory");
    ds_metrics_add_process(m);
    c->m_changes = ds_metrics_counter(m, "dualsync_capture_changes_total",
                                      "Row changes read from the source and sent to Kafka, by "
                                      "table and Debezium op (c, u, d, t; r for backfill rows).",
                                      "table,op");
    c->m_acked = ds_metrics_counter(m, "dualsync_capture_messages_acknowledged_total",
                                    "Messages Kafka acknowledged, by topic.", "topic");
    c->m_produce_errors = ds_metrics_counter(m, "dualsync_capture_produce_errors_total",
                                             "Kafka producer errors (failed deliveries and "
                                             "client errors), by librdkafka error name.",
                                             "reason");
    ds_producer_set_metrics(c->producer, c->m_acked, c->m_produce_errors);
    c->m_inflight_messages = ds_metric_series(ds_metrics_gauge(
        m, "dualsync_capture_inflight_messages", "Messages sent to Kafka and not acknowledged.",
        NULL));
    c->m_inflight_bytes = ds_metric_series(ds_metrics_gauge(
        m, "dualsync_capture_inflight_bytes",
        "Bytes (keys and values) sent to Kafka and not acknowledged.", NULL));
    c->m_latency = ds_metric_series(ds_metrics_histogram(
        m, "dualsync_capture_commit_to_ack_seconds",
        "Time from a transaction's commit at the source to Kafka's acknowledgement of all its "
        "messages.",
        NULL, latency_bounds, (int)DS_ARRAY_LEN(latency_bounds)));
    c->m_seconds_behind = ds_metric_series(ds_metrics_gauge(
        m, "dualsync_capture_seconds_behind_source",
        "Age of the oldest transaction committed at the source and not yet acknowledged by "
        "Kafka; 0 when capture has caught up.",
        NULL));
    c->m_source_connected = ds_metric_series(ds_metrics_gauge(
        m, "dualsync_capture_source_connected",
        "1 while capture streams from the source's replication slot (or runs its initial "
        "backfill), else 0.",
        NULL));
    c->m_kafka_connected = ds_metric_series(ds_metrics_gauge(
        m, "dualsync_capture_kafka_connected", "0 while every Kafka broker is down, else 1.",
        NULL));
    c->m_active = ds_metric_series(ds_metrics_gauge(
        m, "dualsync_capture_active",
        "1 while this process is the active capture of the slot, 0 while it waits as a standby "
        "for the process holding the slot.",
        NULL));
    ds_series_set(c->m_active, 1);
    c->m_slot_retained = ds_metric_series(ds_metrics_gauge(
        m, "dualsync_capture_slot_retained_wal_bytes",
        "WAL the replication slot retains on the source: pg_current_wal_lsn() - restart_lsn.",
        NULL));
    c->m_slot_lag = ds_metric_series(ds_metrics_gauge(
        m, "dualsync_capture_slot_confirmed_lag_bytes",
        "pg_current_wal_lsn() - confirmed_flush_lsn of the replication slot.", NULL));
    c->m_backfill_done = ds_metrics_gauge(
        m, "dualsync_capture_backfill_rows_done",
        "Rows the initial backfill has read from the table (in this run).", "table");
    c->m_backfill_total = ds_metrics_gauge(
        m, "dualsync_capture_backfill_rows_total",
        "Rows the initial backfill reads from the table (counted under its snapshot).", "table");
    ds_metrics_on_collect(m, collect, c);
    watch_inflight(c);
    if (!(c->http = ds_metrics_http_start(address, m, health, c, errstr, errstr_size)))
        return false;
    ds_metrics_http_attach_ev(c->http, c->loop);
    return true;
}

static void on_wait_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_break(loop, EVBREAK_ONE);
}

/* Waits @p seconds in the loop, so that the metrics endpoint, Kafka's delivery reports and
 * signals are served meanwhile (a signal ends the wait). */
static void wait_in_loop(capture_t *c, double seconds)
{
    ev_timer timer;

    ev_timer_init(&timer, on_wait_timer, seconds, 0.);
    ev_timer_start(c->loop, &timer);
    ev_run(c->loop, 0);
    ev_timer_stop(c->loop, &timer);
}

/* ---- sessions ---- */

/* Waits until Kafka acknowledged everything sent, a deadline passes, or a second signal. */
static bool drain_inflight(capture_t *c, int timeout_ms)
{
    ev_tstamp deadline = ev_time() + timeout_ms / 1000.0;

    while (ds_inflight_messages(c->inflight) > 0 && !c->stop_now && !c->failed) {
        if (timeout_ms >= 0 && ev_time() >= deadline)
            break;
        /* The unbounded wait between sessions ends at the first signal, so that a stop
         * while Kafka is down still takes at most capture.shutdown_timeout_ms. */
        if (timeout_ms < 0 && c->stopping)
            break;
        ds_producer_poll(c->producer, 100);
        serve_kafka(c);
        /* Keep the walsender from timing us out while we wait. */
        if (c->repl)
            send_status(c, false);
        ev_run(c->loop, EVRUN_NOWAIT); /* lets a second signal through */
    }
    advance_confirmed(c);
    return ds_inflight_messages(c->inflight) == 0;
}

static void end_session(capture_t *c)
{
    if (!c->repl)
        return;
    ev_io_stop(c->loop, &c->repl_watcher);
    ev_idle_stop(c->loop, &c->resume_idle);
    if (!c->session_lost) {
        send_status(c, false);
        ds_replication_stop(c->repl);
    }
    ds_replication_free(c->repl);
    c->repl = NULL;
}

/* Called by the backfill after each row: delivery reports, signals, and back-pressure. The
 * Kafka service costs a system call, so it runs every MESSAGES_PER_POLL rows unless the
 * in-flight limits are reached; then reading waits until half of them is acknowledged. */
static bool backfill_yield(void *ctx)
{
    capture_t *c = ctx;

    if (++c->backfill_calls % MESSAGES_PER_POLL != 0 && !over_limits(c, 100))
        return !c->stopping && !c->failed;
    serve_kafka(c);
    ev_run(c->loop, EVRUN_NOWAIT); /* signals and the status timer */
    while (over_limits(c, RESUME_PERCENT) && !c->stopping && !c->failed) {
        ds_producer_poll(c->producer, 100);
        serve_kafka(c);
        ev_run(c->loop, EVRUN_NOWAIT);
    }
    return !c->stopping && !c->failed;
}

/* Publishes every row of the tables as a read event, under the exported snapshot
 * @snapshot (NULL: a snapshot of its own, taken now), and records the backfill complete once
 * Kafka holds them all. The whole backfill is one in-flight "transaction" ending at
 * @resume_lsn, where streaming then starts, so the slot is never confirmed past a backfill
 * that is not in Kafka. */
static bool backfill(capture_t *c, PGconn *state_conn, const char *snapshot, ds_lsn_t resume_lsn,
                     char *errstr, size_t errstr_size)
{
    const ds_config_t *config = c->config;
    ds_changes_options_t options;
    ds_backfill_options_t bopt;
    ds_backfill_stats_t stats;
    ds_backfill_result_t result;
    char lsn[DS_LSN_STRLEN];
    uint64_t seq;
    bool ok;

    memset(&options, 0, sizeof(options));
    options.topic_prefix = config->topic_prefix;
    options.db = c->identity.dbname;
    options.version = DUALSYNC_VERSION;
    options.tombstones_on_delete = config->tombstones_on_delete;
    options.unavailable_value_placeholder = config->unavailable_value_placeholder;
    options.primary_key = ds_source_catalog_primary_key;
    options.primary_key_ctx = c->catalog;
    options.columns = ds_source_catalog_columns;
    options.columns_ctx = c->catalog;
    options.value_format = &c->config->value_format;
    memset(&bopt, 0, sizeof(bopt));
    bopt.conninfo = config->source_conninfo;
    bopt.publication = config->publication;
    bopt.snapshot_name = snapshot;
    bopt.consistent_lsn = resume_lsn;
    bopt.catalog = c->catalog;
    bopt.changes = &options;
    bopt.emit = emit_record;
    bopt.yield = backfill_yield;
    bopt.ctx = c;
    bopt.progress_bar = isatty(STDERR_FILENO);
    bopt.rows_done = c->m_backfill_done;
    bopt.rows_total = c->m_backfill_total;

    seq = c->tx_seq = ds_inflight_begin(c->inflight);
    c->backfilling = true;
    result = ds_backfill_run(&bopt, &stats, errstr, errstr_size);
    if (result == DS_BACKFILL_FAILED) {
        c->backfilling = false;
        return false;
    }
    /* An unfinished backfill is never committed, so it can never let the slot move. */
    if (result == DS_BACKFILL_DONE) {
        ds_inflight_commit(c->inflight, seq, resume_lsn);
        ds_info("backfill read %llu rows in %.1f s (%.0f rows/s); waiting for Kafka to "
                "acknowledge them",
                (unsigned long long)stats.rows, stats.seconds,
                stats.seconds > 0 ? (double)stats.rows / stats.seconds : 0.0);
    }
    ok = result == DS_BACKFILL_DONE && drain_inflight(c, -1);
    c->backfilling = false;
    if (!ok) {
        if (c->failed)
            return ds_fail(errstr, errstr_size, "%s", c->error);
        return ds_fail(errstr, errstr_size,
                       "stopped during the initial backfill of slot \"%s\" after %llu rows; the "
                       "next start backfills again",
                       config->slot, (unsigned long long)stats.rows);
    }
    if (!ds_backfill_state_complete(state_conn, config->slot, stats.rows, errstr, errstr_size))
        return false;
    ds_info("initial backfill of slot \"%s\" complete: %llu read events acknowledged; streaming "
            "the changes committed after %s",
            config->slot, (unsigned long long)stats.rows, ds_lsn_format(resume_lsn, lsn));
    return true;
}

/* Makes sure the slot exists; with snapshot_mode "initial", that the rows which existed when
 * it was created are in Kafka, redoing a backfill an earlier run did not complete.
 *
 * A redo keeps the slot rather than making a new one: an interrupted backfill may already
 * have published rows that were deleted or changed after the slot's consistent point C, and
 * only the slot still holds those changes. So the redo reads the tables under a fresh
 * snapshot S (later than C) and then streams from C: the changes between C and S arrive
 * after read events that already show their result, but the last event of every key is its
 * current state, and no delete is lost. (A new slot at S would have left the rows the first
 * attempt published and that were deleted before S in the topic forever.) */
static bool prepare_slot(capture_t *c, ds_replication_t *repl, char *errstr, size_t errstr_size)
{
    const ds_config_t *config = c->config;
    ds_backfill_state_t state = DS_BACKFILL_NONE;
    ds_lsn_t confirmed, snapshot_lsn = DS_INVALID_LSN, consistent;
    char lsn1[DS_LSN_STRLEN], lsn2[DS_LSN_STRLEN];
    char snapshot[128];
    PGconn *state_conn = NULL;
    bool exists, ok = false;

    if (!ds_replication_slot_lookup(repl, config->slot, c->identity.dbname, &exists, &confirmed,
                                    errstr, errstr_size))
        return false;
    if (c->slot_prepared || strcmp(config->snapshot_mode, "never") == 0) {
        if (exists)
            return true;
        if (!ds_replication_create_slot(repl, config->slot, false, NULL, NULL, 0, errstr,
                                        errstr_size))
            return false;
        c->created_slot = true;
        ds_info("created logical replication slot \"%s\" (pgoutput)", config->slot);
        return true;
    }

    state_conn = ds_replication_connect_sql(config->source_conninfo, errstr, errstr_size);
    if (!state_conn || !ds_backfill_lock(state_conn, config->slot, errstr, errstr_size))
        goto done;
    if (exists) {
        if (!ds_backfill_state_read(state_conn, config->slot, &state, &snapshot_lsn, errstr,
                                    errstr_size))
            goto done;
        if (state == DS_BACKFILL_NONE)
            ds_info("slot \"%s\" exists without a backfill record in dualsync.capture_state: "
                    "streaming from it without an initial backfill",
                    config->slot);
        if (state != DS_BACKFILL_STARTED) {
            ok = true;
            goto done;
        }
        /* The redo is complete only if the slot still starts at its consistent point: a
         * position past it would skip changes the read events of the first attempt need.
         * (With no recorded point the first attempt died before reading anything.) */
        if (snapshot_lsn != DS_INVALID_LSN && confirmed != snapshot_lsn) {
            ds_fail(errstr, errstr_size,
                    "the initial backfill of slot \"%s\" never completed, yet the slot was "
                    "confirmed up to %s, not at its consistent point %s: something else "
                    "streamed from it, so a new backfill could miss changes. To backfill again "
                    "from scratch, drop the slot (SELECT pg_drop_replication_slot('%s')); to "
                    "stream from it as it is, delete its row from dualsync.capture_state",
                    config->slot, ds_lsn_format(confirmed, lsn1),
                    ds_lsn_format(snapshot_lsn, lsn2), config->slot);
            goto done;
        }
        ds_warning("the initial backfill of slot \"%s\" did not complete (capture stopped or "
                   "crashed during it); backfilling again under a new snapshot, then streaming "
                   "from the slot's consistent point %s, so the changes committed since then "
                   "follow the read events",
                   config->slot, ds_lsn_format(confirmed, lsn1));
        if (!ds_backfill_state_begin(state_conn, config->slot, confirmed, errstr, errstr_size))
            goto done;
        ok = backfill(c, state_conn, NULL, confirmed, errstr, errstr_size);
        goto done;
    }

    /* Recorded before the slot exists, so a crash at any later point leaves an incomplete
     * record behind. */
    if (!ds_backfill_state_begin(state_conn, config->slot, DS_INVALID_LSN, errstr, errstr_size) ||
        !ds_replication_create_slot(repl, config->slot, true, &consistent, snapshot,
                                    sizeof(snapshot), errstr, errstr_size))
        goto done;
    c->created_slot = true;
    ds_info("created logical replication slot \"%s\" (pgoutput) at consistent point %s with "
            "snapshot %s; backfilling the existing rows",
            config->slot, ds_lsn_format(consistent, lsn1), snapshot);
    /* From here to START_REPLICATION @repl stays idle: its next command would end the
     * exported snapshot. */
    if (!ds_backfill_state_set_lsn(state_conn, config->slot, consistent, errstr, errstr_size))
        goto done;
    ok = backfill(c, state_conn, snapshot, consistent, errstr, errstr_size);

done:
    PQfinish(state_conn);
    if (ok)
        c->slot_prepared = true;
    return ok;
}

static bool start_session(capture_t *c, char *errstr, size_t errstr_size)
{
    ds_incremental_hooks_t hooks = {window_hold, window_emit, window_release, window_full, c};
    ds_changes_options_t options;
    ds_replication_t *repl;
    ds_lsn_t resume;
    bool exists;
    char lsn[DS_LSN_STRLEN];

    /* Each session gets its Relation messages again, and any transaction the last session
     * left open is resent whole, so decoder and builder start fresh. */
    ds_pgoutput_free(c->decoder);
    ds_changes_free(c->changes);
    c->changes = NULL;
    /* The slot was held before every open window's LOW, so the new session receives it
     * again; the ring holding the old windows was replaced after the loss. */
    ds_incremental_free(c->incremental);
    c->incremental = NULL;
    c->in_tx = false;
    c->decoder = ds_pgoutput_new();
    memset(&options, 0, sizeof(options));
    options.topic_prefix = c->config->topic_prefix;
    options.version = DUALSYNC_VERSION;
    options.tombstones_on_delete = c->config->tombstones_on_delete;
    options.unavailable_value_placeholder = c->config->unavailable_value_placeholder;
    options.skip_origins = (const char *const *)c->config->skip_origins;
    options.primary_key = ds_source_catalog_primary_key;
    options.primary_key_ctx = c->catalog;
    options.columns = ds_source_catalog_columns;
    options.columns_ctx = c->catalog;
    options.value_format = &c->config->value_format;

    /* The connection becomes c->repl only when it streams: until then (a backfill may run
     * for hours) it must stay idle, and the status updates the timer sends need a stream. */
    repl = ds_replication_connect(c->config->source_conninfo, &c->identity, errstr, errstr_size);
    if (!repl)
        return false;
    options.db = c->identity.dbname;
    c->changes = ds_changes_new(&options);
    c->incremental = ds_incremental_new(c->config->slot, c->catalog, &options, &hooks);
    if (!c->decoder || !c->changes || !c->incremental) {
        ds_replication_free(repl);
        return ds_fail(errstr, errstr_size, "out of memory");
    }
    if (!prepare_slot(c, repl, errstr, errstr_size)) {
        ds_replication_free(repl);
        return false;
    }
    resume = c->confirmed_lsn;
    if (resume == DS_INVALID_LSN &&
        !ds_replication_slot_lookup(repl, c->config->slot, c->identity.dbname, &exists, &resume,
                                    errstr, errstr_size)) {
        ds_replication_free(repl);
        return false;
    }
    ds_changes_resume_at(c->changes, resume);
    c->repl = repl;
    if (!ds_replication_start(c->repl, c->config->slot, c->config->publication, c->confirmed_lsn,
                              errstr, errstr_size))
        return false;
    ds_info("streaming from slot \"%s\" of database \"%s\" (publication \"%s\") from %s",
            c->config->slot, c->identity.dbname, c->config->publication,
            c->confirmed_lsn ? ds_lsn_format(c->confirmed_lsn, lsn) : "its confirmed position");

    c->session_lost = false;
    c->paused = false;
    ev_io_init(&c->repl_watcher, on_repl_readable, ds_replication_socket(c->repl), EV_READ);
    c->repl_watcher.data = c;
    ev_io_start(c->loop, &c->repl_watcher);
    /* The startup exchange may have left stream data in libpq's buffer already. */
    ev_idle_start(c->loop, &c->resume_idle);
    return true;
}

/*
 * Creates the tables' topics and the dead-letter topic where missing (the broker's
 * auto-creation would give them its time-based retention, and the history a replay needs
 * would be deleted), warns about existing ones that delete by time, then looks them up in the
 * producer so the first changes do not wait for partition leaders. @p config_error: the
 * broker refused the "topics" settings.
 */
static bool prepare_topics(capture_t *c, bool *config_error, char *errstr, size_t errstr_size)
{
    const ds_source_catalog_t *catalog = c->catalog;
    const ds_value_format_t *format = &c->config->value_format;
    int n = catalog->ntables + 1 + (format->provide_transaction_metadata ? 1 : 0);
    char **names = calloc((size_t)n, sizeof(char *));
    ds_topic_kind_t *kinds = calloc((size_t)n, sizeof(*kinds));
    char warm[512];
    bool ok = false;
    int i;

    *config_error = false;
    if (!names || !kinds) {
        ds_fail(errstr, errstr_size, "out of memory");
        goto done;
    }
    for (i = 0; i < catalog->ntables; i++) {
        if (asprintf(&names[i], "%s.%s.%s", c->config->topic_prefix, catalog->tables[i].schema,
                     catalog->tables[i].table) < 0) {
            names[i] = NULL;
            ds_fail(errstr, errstr_size, "out of memory");
            goto done;
        }
        kinds[i] = DS_TOPIC_CHANGES;
    }
    /* apply.dlq_topic of this file (by default <topic_prefix>.dlq); apply creates its own too,
     * in case its file names another. */
    if (!(names[i] = strdup(c->config->apply_dlq_topic))) {
        ds_fail(errstr, errstr_size, "out of memory");
        goto done;
    }
    kinds[i] = DS_TOPIC_DEAD_LETTERS;
    /* The BEGIN/END records' topic, <topic_prefix>.<topic.transaction> as Debezium names it. */
    if (format->provide_transaction_metadata) {
        if (asprintf(&names[++i], "%s.%s", c->config->topic_prefix,
                     format->transaction_topic ? format->transaction_topic
                                               : DS_DEFAULT_TRANSACTION_TOPIC) < 0) {
            names[i] = NULL;
            ds_fail(errstr, errstr_size, "out of memory");
            goto done;
        }
        kinds[i] = DS_TOPIC_TRANSACTIONS;
    }
    if (!ds_topics_ensure(c->topics, (const char *const *)names, kinds, n,
                          ds_producer_max_message_bytes(c->producer), TOPICS_TIMEOUT_MS,
                          config_error, errstr, errstr_size))
        goto done;
    for (i = 0; i < n; i++) {
        if (!ds_strset_add(c->topics_ready, names[i], strlen(names[i]))) {
            ds_fail(errstr, errstr_size, "out of memory");
            goto done;
        }
    }
    /* Not fatal: sends wait for the broker anyway. */
    if (!ds_producer_warm_up(c->producer, (const char *const *)names, catalog->ntables, 10000,
                             warm, sizeof(warm)))
        ds_warning("Kafka: %s; changes wait for the broker", warm);
    ok = true;

done:
    for (i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
    free(kinds);
    return ok;
}

/* Creates capture's producer (c->producer); false (errstr) when librdkafka refuses the
 * settings. Only the producer's properties: a file shared with apply holds consumer ones too,
 * which librdkafka would warn about. */
static bool new_producer(capture_t *c, char *errstr, size_t errstr_size)
{
    ds_config_t *view = ds_kafka_config_view(c->config, DS_KAFKA_PRODUCER, NULL);

    if (!view)
        return ds_fail(errstr, errstr_size, "out of memory");
    c->producer = ds_producer_new(view, on_ack, c, errstr, errstr_size);
    ds_kafka_config_view_free(view);
    if (!c->producer)
        return false;
    ds_producer_set_owner(c->producer, "capture");
    ds_producer_set_reject_cb(c->producer, on_reject);
    if (c->m_acked)
        ds_producer_set_metrics(c->producer, c->m_acked, c->m_produce_errors);
    return true;
}

/* Replaces a producer that hit a fatal error by a new one (a new producer id). What the old
 * one had not delivered is dropped with it: the next session resends it from the slot. */
static bool renew_producer(capture_t *c)
{
    char errstr[512];

    ds_warning("Kafka producer failed (%s); a new producer sends again every change after the "
               "slot's confirmed position (apply skips what it already has)",
               c->error);
    ev_io_stop(c->loop, &c->kafka_watcher);
    ds_producer_free(c->producer, 0);
    c->producer = NULL;
    c->producer_broken = false;
    if (!new_producer(c, errstr, sizeof(errstr))) {
        fail(c, "%s", errstr);
        return false;
    }
    ev_io_set(&c->kafka_watcher, ds_producer_wakeup_fd(c->producer), EV_READ);
    ev_io_start(c->loop, &c->kafka_watcher);
    return true;
}

static void capture_free(capture_t *c)
{
    end_session(c);
    ds_slot_monitor_free(c->slot_monitor);
    ds_metrics_http_stop(c->http);
    ds_producer_free(c->producer, 0);
    ds_topics_free(c->topics);
    ds_strset_free(c->topics_ready);
    ds_changes_free(c->changes);
    ds_incremental_free(c->incremental);
    ds_pgoutput_free(c->decoder);
    ds_inflight_free(c->inflight);
    ds_source_catalog_free(c->catalog);
    if (c->loop)
        ev_loop_destroy(c->loop);
    ds_metrics_free(c->metrics);
}

/*
 * A standby: while another session holds the slot (a capture of the same config on this or
 * another host), waits, asking every second, serving metrics and signals meanwhile. Returns
 * false when a stop signal came first. When the source cannot be asked, returns true at once
 * if this process never waited (preflight then reports the problem), else keeps waiting.
 */
static bool wait_while_slot_held(capture_t *c)
{
    /* Never less than three status intervals: a healthy holder must not look silent. */
    int takeover_ms = c->config->standby_takeover_ms > 3 * c->config->status_interval_ms
                          ? c->config->standby_takeover_ms
                          : 3 * c->config->status_interval_ms;
    ds_standby_t *standby =
        ds_standby_new(c->config->source_conninfo, c->config->slot, takeover_ms);
    char holder[256], errstr[512], last_error[512] = "";

    if (!standby) {
        fail(c, "out of memory");
        return false;
    }
    while (!c->stopping) {
        ds_slot_state_t state = ds_standby_check(standby, holder, sizeof(holder), errstr,
                                                 sizeof(errstr));

        if (state == DS_SLOT_FREE || (state == DS_SLOT_UNKNOWN && !c->standby))
            break;
        if (state == DS_SLOT_ENDED) {
            ds_warning("standby: replication slot \"%s\" is held by %s, which %s (a lost host "
                       "or a frozen process): ended its session to take over",
                       c->config->slot, holder, errstr);
            wait_in_loop(c, 0.2);
            continue;
        }
        if (state == DS_SLOT_UNKNOWN && strcmp(errstr, last_error) != 0) {
            ds_warning("standby: %s; still waiting", errstr);
            snprintf(last_error, sizeof(last_error), "%s", errstr);
        }
        if (state == DS_SLOT_HELD && !c->standby) {
            ds_info("standby: replication slot \"%s\" is held by %s; waiting to take over "
                    "when it is released (checked every second)",
                    c->config->slot, holder);
            c->standby = true;
            ds_series_set(c->m_active, 0);
        }
        wait_in_loop(c, 1.0);
    }
    ds_standby_free(standby);
    if (c->stopping)
        return false;
    if (c->standby)
        ds_info("replication slot \"%s\" was released: this process is now the active capture",
                c->config->slot);
    c->standby = false;
    ds_series_set(c->m_active, 1);
    return true;
}

int ds_capture_run(const ds_config_t *config)
{
    capture_t c;
    char errstr[1024];
    char lsn[DS_LSN_STRLEN];
    int backoff_ms = 500;
    int status = DS_EXIT_FAILURE;
    bool config_error;

    memset(&c, 0, sizeof(c));
    c.config = config;
    init_context_headers(&c);
    signal(SIGPIPE, SIG_IGN);

    /* The producer first: a mistyped Kafka property must be refused before preflight
     * creates a publication on the source. */
    c.loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    c.inflight = ds_inflight_new();
    if (!c.loop || !c.inflight) {
        ds_error("out of memory");
        capture_free(&c);
        return DS_EXIT_FAILURE;
    }
    if (!new_producer(&c, errstr, sizeof(errstr))) {
        /* The command line checked the properties; what librdkafka still refuses when it
         * creates the client (a combination of settings, a missing certificate file) is a
         * configuration error too. */
        ds_error("%s", errstr);
        capture_free(&c);
        return DS_EXIT_USAGE;
    }
    /* Before preflight too: an address in use must not leave a new publication behind. */
    if (!start_metrics(&c, config->capture_metrics_address, errstr, sizeof(errstr))) {
        ds_error("%s", errstr);
        capture_free(&c);
        return DS_EXIT_USAGE;
    }
    if (!(c.topics = ds_topics_new(config, errstr, sizeof(errstr))) ||
        !(c.topics_ready = ds_strset_new())) {
        /* What librdkafka refuses in the properties is a configuration error. */
        int code = c.topics ? DS_EXIT_FAILURE : DS_EXIT_USAGE;

        ds_error("%s", c.topics ? "out of memory" : errstr);
        capture_free(&c);
        return code;
    }
    ev_io_init(&c.kafka_watcher, on_kafka_readable, ds_producer_wakeup_fd(c.producer), EV_READ);
    c.kafka_watcher.data = &c;
    ev_io_start(c.loop, &c.kafka_watcher);
    ev_timer_init(&c.status_timer, on_status_timer, STATUS_MIN_INTERVAL_S, STATUS_MIN_INTERVAL_S);
    c.status_timer.data = &c;
    ev_timer_start(c.loop, &c.status_timer);
    ev_idle_init(&c.resume_idle, on_resume_idle);
    c.resume_idle.data = &c;
    ev_signal_init(&c.sigint_watcher, on_signal, SIGINT);
    c.sigint_watcher.data = &c;
    ev_signal_start(c.loop, &c.sigint_watcher);
    ev_signal_init(&c.sigterm_watcher, on_signal, SIGTERM);
    c.sigterm_watcher.data = &c;
    ev_signal_start(c.loop, &c.sigterm_watcher);
    c.last_progress = ev_now(c.loop);
    if (c.metrics)
        c.slot_monitor = ds_slot_monitor_new(c.loop, config->source_conninfo, config->slot,
                                             c.m_slot_retained, c.m_slot_lag,
                                             SLOT_METRICS_INTERVAL_S);

    /* Every check first, so that a standby with a wrong file says so at once; then, while
     * another session holds the slot, a standby waits, and checks again once it is free
     * (another standby may have taken it in between: this one waits again). */
    for (;;) {
        bool slot_held;

        if (ds_preflight_run(config, &c.catalog, &config_error, &slot_held, errstr,
                             sizeof(errstr)))
            break;
        if (!slot_held) {
            ds_error("%s", errstr);
            capture_free(&c);
            return config_error ? DS_EXIT_USAGE : DS_EXIT_FAILURE;
        }
        if (!wait_while_slot_held(&c)) {
            status = c.failed ? DS_EXIT_FAILURE : DS_EXIT_OK;
            if (c.failed)
                ds_error("%s", c.error);
            capture_free(&c);
            return status;
        }
    }
    if (!prepare_topics(&c, &config_error, errstr, sizeof(errstr))) {
        char undo[512];

        ds_error("%s", errstr);
        /* No slot was made yet: the publication this run created goes again. */
        if (!ds_preflight_undo(config, c.catalog, undo, sizeof(undo)))
            ds_warning("publication \"%s\" was created and is left behind: %s",
                       config->publication, undo);
        capture_free(&c);
        return config_error ? DS_EXIT_USAGE : DS_EXIT_FAILURE;
    }

    /* The first session must start: a wrong host or a missing privilege is a setup error
     * to report now, not to retry forever. Later losses are retried with backoff. */
    if (!start_session(&c, errstr, sizeof(errstr))) {
        /* A stop signal during the initial backfill is a clean stop: the next start redoes
         * the backfill. */
        if (!c.stopping || c.failed) {
            ds_error("%s", errstr);
            /* A publication this run created goes again, unless a slot now needs it (a
             * backfill that failed is redone on the next start, with both). */
            if (!c.created_slot && !ds_preflight_undo(config, c.catalog, errstr, sizeof(errstr)))
                ds_warning("publication \"%s\" was created and is left behind: %s",
                           config->publication, errstr);
            capture_free(&c);
            return DS_EXIT_FAILURE;
        }
        ds_warning("%s", errstr);
    }

    while (c.repl) {
        ev_run(c.loop, 0);
        if (c.failed || c.stopping)
            break;
        if (c.session_lost) {
            /* Let Kafka confirm what this session sent, so the next one starts after it. */
            ds_warning("replication connection lost at LSN %s: %s; reconnecting",
                       ds_lsn_format(c.last_msg_lsn, lsn), c.error);
            end_session(&c);
            if (c.producer_broken ? !renew_producer(&c) : !drain_inflight(&c, -1))
                break;
            /* Messages of a transaction left open were acknowledged but never committed:
             * forget them; the new session resends that transaction whole. */
            ds_inflight_free(c.inflight);
            c.inflight = ds_inflight_new();
            if (!c.inflight) {
                fail(&c, "out of memory");
                break;
            }
            watch_inflight(&c);
            while (!c.stopping && !c.failed) {
                wait_in_loop(&c, backoff_ms / 1000.0);
                if (c.stopping)
                    break;
                /* Another capture took the slot meanwhile (a standby that ended this one's
                 * session while it was frozen or cut off): this one becomes its standby. */
                if (!wait_while_slot_held(&c))
                    break;
                if (start_session(&c, errstr, sizeof(errstr))) {
                    backoff_ms = 500;
                    break;
                }
                end_session(&c);
                /* What /healthz reports while the source is away. */
                snprintf(c.error, sizeof(c.error), "%s", errstr);
                ds_warning("%s; retrying in %d ms", errstr, backoff_ms * 2);
                backoff_ms = backoff_ms * 2 > RECONNECT_BACKOFF_MAX_MS ? RECONNECT_BACKOFF_MAX_MS
                                                                      : backoff_ms * 2;
            }
            if (c.stopping || c.failed)
                break;
        }
    }

    if (c.failed) {
        ds_error("%s", c.error);
        /* Let Kafka acknowledge what was sent before the failure (briefly: Kafka may be its
         * cause) and confirm it, so that a restart resends as little as possible: after a
         * change Kafka refuses, it starts at that change. */
        ds_producer_flush(c.producer, config->shutdown_timeout_ms < FAILURE_FLUSH_MS
                                          ? config->shutdown_timeout_ms
                                          : FAILURE_FLUSH_MS);
        drain_inflight(&c, 0);
        status = DS_EXIT_FAILURE;
    } else if (drain_inflight(&c, config->shutdown_timeout_ms)) {
        status = DS_EXIT_OK;
    } else {
        ds_error("%zu messages were not acknowledged by Kafka within %d ms; they are sent again "
                 "on the next start",
                 ds_inflight_messages(c.inflight), config->shutdown_timeout_ms);
        status = DS_EXIT_FAILURE;
    }
    log_progress(&c);
    if (c.confirmed_lsn == DS_INVALID_LSN)
        ds_info("stopped; slot \"%s\" was not moved", config->slot);
    else
        ds_info("stopped; slot \"%s\" confirmed up to %s", config->slot,
                ds_lsn_format(c.confirmed_lsn, lsn));
    capture_free(&c);
    return status;
}
