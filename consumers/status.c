/*
 * status.c: `dualsync status`: the migration's state asked of PostgreSQL and Kafka directly.
 *
 * Nothing here talks to the daemons, so the view also answers while capture or apply is
 * down, which is when it matters most: a slot nobody reads retains WAL until the source's
 * disk fills. Each report opens its own connections and closes them, so that --watch sees a
 * database come back; the Kafka client is kept between reports (it reconnects by itself).
 *
 * One report is built as a JSON document first; the text view is rendered from it, so the
 * two never disagree.
 */
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dualsync/config.h"
#include "dualsync/consumer.h"
#include "dualsync/log.h"
#include "dualsync/mapping.h"
#include "dualsync/pgutil.h"
#include "dualsync/status.h"

struct ds_status {
    const ds_config_t *config;   /* borrowed */
    ds_status_options_t opt;     /* thresholds and output */
    ds_mapping_set_t *set;       /* the mapping files (apply side only), for the topics */
    ds_consumer_t *consumer;     /* plain reader for watermarks; created at first use */
    json_t *problems;            /* this report's problems, one sentence each */
};

static bool has_capture(const ds_config_t *config)
{
    return config->source_conninfo != NULL;
}

static bool has_apply(const ds_config_t *config)
{
    return config->ntargets > 0 && config->nmappings > 0;
}

ds_status_t *ds_status_new(const ds_config_t *config, const ds_status_options_t *options,
                           char *errstr, size_t errstr_size)
{
    ds_status_t *status = calloc(1, sizeof(*status));

    if (!status) {
        ds_fail(errstr, errstr_size, "out of memory");
        return NULL;
    }
    status->config = config;
    status->opt = *options;
    if (!has_capture(config) && !has_apply(config)) {
        ds_fail(errstr, errstr_size,
                "%s: nothing to show: the file has neither \"source\" (capture) nor "
                "\"targets\" and \"mappings\" (apply)",
                config->path);
        goto error;
    }
    if (!has_apply(config))
        return status;
    if (!ds_mapping_set_load((const char *const *)config->mappings, config->nmappings,
                             config->topic_prefix, (const char *const *)config->target_names,
                             &status->set, errstr, errstr_size))
        goto error;
    return status;

error:
    ds_status_free(status);
    return NULL;
}

void ds_status_free(ds_status_t *status)
{
    if (!status)
        return;
    ds_mapping_set_free(status->set);
    ds_consumer_free(status->consumer);
    json_decref(status->problems);
    free(status);
}

static void problem(ds_status_t *status, const char *fmt, ...) DS_PRINTF(2, 3);

static void problem(ds_status_t *status, const char *fmt, ...)
{
    char text[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    json_array_append_new(status->problems, json_string(text));
}

static PGconn *connect_db(ds_status_t *status, const char *conninfo, const char *what)
{
    PGconn *conn = PQconnectdb(conninfo);

    if (PQstatus(conn) != CONNECTION_OK) {
        problem(status, "cannot connect to %s: %s", what, ds_pg_error(conn));
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* Runs one query; NULL after naming @p what as a problem. */
static PGresult *query(ds_status_t *status, PGconn *conn, const char *what, const char *sql,
                       int nparams, const char *const *params)
{
    PGresult *r = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char sqlstate[6], message[1024];

        ds_pg_result_error(r, conn, sqlstate, message, sizeof(message));
        problem(status, "%s: %s", what, message);
        PQclear(r);
        return NULL;
    }
    return r;
}

/* Whether @p table (schema-qualified) exists; -1 after a problem. */
static int table_exists(ds_status_t *status, PGconn *conn, const char *table, const char *what)
{
    const char *params[] = {table};
    PGresult *r = query(status, conn, what, "SELECT to_regclass($1) IS NOT NULL", 1, params);
    int exists;

    if (!r)
        return -1;
    exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return exists;
}

static json_t *int_or_null(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? json_null()
                                    : json_integer(strtoll(PQgetvalue(r, row, col), NULL, 10));
}

static json_t *text_or_null(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? json_null() : json_string(PQgetvalue(r, row, col));
}

/* ---- the source: slot and backfill ----------------------------------------------------- */

static json_t *read_slot(ds_status_t *status, PGconn *conn)
{
    const char *params[] = {status->config->slot};
    json_t *slot = json_object();
    PGresult *r;

    json_object_set_new(slot, "name", json_string(status->config->slot));
    /* restart_lsn bounds the WAL the server keeps for the slot; confirmed_flush_lsn is what
     * capture confirmed (Kafka acknowledged). Both are NULL on a slot never used. */
    r = query(status, conn, "reading pg_replication_slots on the source",
              "SELECT active, active_pid, restart_lsn::text, confirmed_flush_lsn::text,"
              " pg_catalog.pg_current_wal_lsn()::text,"
              " pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), restart_lsn)::bigint,"
              " pg_catalog.pg_size_pretty(pg_catalog.pg_wal_lsn_diff("
              "  pg_catalog.pg_current_wal_lsn(), restart_lsn)),"
              " pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(),"
              "  confirmed_flush_lsn)::bigint,"
              " pg_catalog.pg_size_pretty(pg_catalog.pg_wal_lsn_diff("
              "  pg_catalog.pg_current_wal_lsn(), confirmed_flush_lsn)),"
              " (SELECT coalesce(host(a.client_addr), 'local socket')"
              "    FROM pg_catalog.pg_stat_activity a WHERE a.pid = active_pid)"
              " FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
              1, params);
    if (!r) {
        json_object_set_new(slot, "exists", json_null());
        return slot;
    }
    json_object_set_new(slot, "exists", json_boolean(PQntuples(r) == 1));
    if (PQntuples(r) != 1) {
        problem(status,
                "replication slot \"%s\" does not exist on the source: start 'dualsync capture' "
                "(it creates the slot)",
                status->config->slot);
        json_object_set_new(slot, "active", json_false());
        PQclear(r);
        return slot;
    }
    json_object_set_new(slot, "active", json_boolean(strcmp(PQgetvalue(r, 0, 0), "t") == 0));
    json_object_set_new(slot, "active_pid", int_or_null(r, 0, 1));
    json_object_set_new(slot, "restart_lsn", text_or_null(r, 0, 2));
    json_object_set_new(slot, "confirmed_flush_lsn", text_or_null(r, 0, 3));
    json_object_set_new(slot, "current_lsn", text_or_null(r, 0, 4));
    json_object_set_new(slot, "retained_wal_bytes", int_or_null(r, 0, 5));
    json_object_set_new(slot, "retained_wal", text_or_null(r, 0, 6));
    json_object_set_new(slot, "confirmed_lag_bytes", int_or_null(r, 0, 7));
    json_object_set_new(slot, "confirmed_lag", text_or_null(r, 0, 8));
    /* Where the active capture runs (standbys of the same config wait for the slot). */
    json_object_set_new(slot, "active_client", text_or_null(r, 0, 9));
    if (strcmp(PQgetvalue(r, 0, 0), "t") != 0)
        problem(status,
                "replication slot \"%s\" is inactive: no capture is streaming from it, and it "
                "retains the source's WAL (%s) until one does",
                status->config->slot, PQgetisnull(r, 0, 6) ? "?" : PQgetvalue(r, 0, 6));
    if (status->opt.max_retained_wal >= 0 && !PQgetisnull(r, 0, 5) &&
        strtoll(PQgetvalue(r, 0, 5), NULL, 10) > status->opt.max_retained_wal)
        problem(status,
                "replication slot \"%s\" retains %s of WAL (%s bytes), more than "
                "--max-retained-wal %" PRId64,
                status->config->slot, PQgetvalue(r, 0, 6), PQgetvalue(r, 0, 5),
                status->opt.max_retained_wal);
    PQclear(r);
    return slot;
}

static json_t *read_backfill(ds_status_t *status, PGconn *conn)
{
    const char *params[] = {status->config->slot};
    json_t *list = json_array();
    PGresult *r;
    int exists = table_exists(status, conn, "dualsync.backfill_state",
                              "reading dualsync.backfill_state on the source");

    if (exists <= 0)
        return list;
    r = query(status, conn, "reading dualsync.backfill_state on the source",
              "SELECT table_name, rows_done, rows_total, completed_at IS NOT NULL,"
              " to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
              " FROM dualsync.backfill_state WHERE slot_name = $1 ORDER BY table_name",
              1, params);
    for (int i = 0; r && i < PQntuples(r); i++) {
        json_t *row = json_object();

        json_object_set_new(row, "table", json_string(PQgetvalue(r, i, 0)));
        json_object_set_new(row, "rows_done", int_or_null(r, i, 1));
        json_object_set_new(row, "rows_total", int_or_null(r, i, 2));
        json_object_set_new(row, "completed", json_boolean(strcmp(PQgetvalue(r, i, 3), "t") == 0));
        json_object_set_new(row, "updated_at", json_string(PQgetvalue(r, i, 4)));
        json_array_append_new(list, row);
    }
    PQclear(r);
    return list;
}

static void report_source(ds_status_t *status, json_t *doc)
{
    PGconn *conn = connect_db(status, status->config->source_conninfo,
                              "the source database (source.conninfo)");

    if (!conn) {
        json_object_set_new(doc, "slot", json_null());
        return;
    }
    json_object_set_new(doc, "slot", read_slot(status, conn));
    json_object_set_new(doc, "backfill", read_backfill(status, conn));
    PQfinish(conn);
}

/* ---- Kafka and the targets: offsets, pending rows, dead letters ------------------------ */

static ds_consumer_t *consumer(ds_status_t *status)
{
    char errstr[1024];

    if (!status->consumer) {
        status->consumer =
            ds_consumer_new(status->config, NULL, NULL, NULL, NULL, errstr, sizeof(errstr));
        if (!status->consumer)
            problem(status, "Kafka: %s", errstr);
    }
    return status->consumer;
}

/* The partitions of @p topic with their low and high watermarks, appended to @p parts as
 * {"topic", "partition", "low", "high"}; false after a problem. */
static bool read_watermarks(ds_status_t *status, const char *topic, json_t *parts)
{
    ds_consumer_t *c = consumer(status);
    ds_topic_partition_t *end = NULL;
    int64_t *low = NULL;
    int nend = 0;
    char errstr[1024];

    if (!c)
        return false;
    if (!ds_consumer_end_offsets(c, topic, status->opt.timeout_ms, &end, &low, &nend, errstr,
                                 sizeof(errstr))) {
        problem(status, "Kafka: watermarks of topic %s: %s", topic, errstr);
        return false;
    }
    for (int i = 0; i < nend; i++) {
        json_t *p = json_object();

        json_object_set_new(p, "topic", json_string(topic));
        json_object_set_new(p, "partition", json_integer(end[i].partition));
        json_object_set_new(p, "low", json_integer(low[i]));
        json_object_set_new(p, "high", json_integer(end[i].offset));
        json_array_append_new(parts, p);
    }
    free(end);
    free(low);
    return true;
}

static bool db_reads_topic(const ds_status_t *status, const char *db, const char *topic)
{
    for (int i = 0; i < ds_mapping_set_ntargets(status->set); i++) {
        ds_target_shape_t shape;

        ds_mapping_target_describe(status->set, i, &shape);
        if (strcmp(ds_mapping_set_target(status->set, i)->connection, db) == 0 &&
            strcmp(shape.topic, topic) == 0)
            return true;
    }
    return false;
}

/* The offset stored for topic [partition] in @p offsets (rows topic, partition, next), or -1. */
static int64_t stored_offset(PGresult *offsets, const char *topic, int64_t partition)
{
    for (int j = 0; offsets && j < PQntuples(offsets); j++) {
        if (strcmp(PQgetvalue(offsets, j, 0), topic) == 0 &&
            strtoll(PQgetvalue(offsets, j, 1), NULL, 10) == partition)
            return strtoll(PQgetvalue(offsets, j, 2), NULL, 10);
    }
    return -1;
}

/* The source commit time (ms since the epoch) of a Debezium change event, or -1. */
static int64_t commit_ms(const char *value, size_t len)
{
    json_t *doc = json_loadb(value, len, 0, NULL);
    json_t *payload = json_object_get(doc, "payload"); /* with a schema envelope */
    json_t *ts = json_object_get(json_object_get(payload ? payload : doc, "source"), "ts_ms");
    int64_t ms = json_is_integer(ts) ? json_integer_value(ts) : -1;

    json_decref(doc);
    return ms;
}

/*
 * Seconds since the source committed the oldest change @p db has not applied: the first
 * message at each lagging partition's next offset (@p parts), read from Kafka. 0 when nothing
 * lags, so that it does not freeze at a stale value while the tables are idle. NULL when
 * Kafka did not answer in time (a problem says so).
 */
static json_t *seconds_behind(ds_status_t *status, const char *db, ds_topic_partition_t *parts,
                              int nparts)
{
    int64_t deadline = ds_now_us() + (int64_t)status->opt.timeout_ms * 1000, oldest = -1;
    bool *done = NULL;
    ds_consumer_t *c;
    char errstr[1024];
    int left = nparts;

    if (nparts == 0)
        return json_integer(0);
    if (!(c = consumer(status)))
        return json_null();
    if (!ds_consumer_assign(c, parts, nparts, errstr, sizeof(errstr))) {
        problem(status, "Kafka: reading the oldest unapplied messages of target database "
                        "\"%s\": %s", db, errstr);
        return json_null();
    }
    if (!(done = calloc((size_t)nparts, sizeof(*done)))) {
        problem(status, "target database \"%s\": out of memory", db);
        return json_null();
    }
    while (left > 0 && ds_now_us() < deadline) {
        ds_kafka_msg_t msg = {0};
        ds_consumer_poll_result_t r = ds_consumer_poll(c, 200, &msg, errstr, sizeof(errstr));
        int i;

        if (r == DS_CONSUMER_FAILED) {
            problem(status, "Kafka: reading the oldest unapplied messages of target database "
                            "\"%s\": %s", db, errstr);
            break;
        }
        if (r == DS_CONSUMER_NOTHING)
            continue;
        for (i = 0; i < nparts; i++) {
            if (!done[i] && parts[i].partition == msg.partition &&
                strcmp(parts[i].topic, msg.topic) == 0)
                break;
        }
        /* A tombstone carries no source time: the delete event before it did, or the next
         * message will. */
        if (i < nparts && (r == DS_CONSUMER_EOF || msg.value)) {
            int64_t ms = r == DS_CONSUMER_EOF ? -1 : commit_ms(msg.value, msg.value_len);

            if (ms >= 0 && (oldest < 0 || ms < oldest))
                oldest = ms;
            done[i] = true;
            left--;
        }
        if (r == DS_CONSUMER_MESSAGE)
            ds_consumer_release(&msg);
    }
    free(done);
    if (left > 0) {
        problem(status,
                "Kafka: the oldest unapplied messages of target database \"%s\" could not be "
                "read within %d ms",
                db, status->opt.timeout_ms);
        return json_null();
    }
    if (oldest < 0)
        return json_integer(0);
    return json_integer(ds_now_us() / 1000 > oldest ? (ds_now_us() / 1000 - oldest) / 1000 : 0);
}

/* One target database: its partitions' lag (appended to @p lags), pending rows, dead-letter
 * records. @p ends holds every mapped topic's watermarks, or is NULL when Kafka failed. */
static json_t *report_database(ds_status_t *status, const char *db, const json_t *ends,
                               json_t *lags)
{
    const ds_config_t *config = status->config;
    const char *params[] = {config->apply_group_id};
    json_t *out = json_object();
    PGresult *offsets = NULL, *r;
    char what[256];
    ds_topic_partition_t *lagging = calloc(json_array_size(ends) + 1, sizeof(*lagging));
    int nlagging = 0;
    json_t *behind;
    PGconn *conn;
    int exists;
    size_t i;
    json_t *end;

    json_object_set_new(out, "name", json_string(db));
    snprintf(what, sizeof(what), "target database \"%s\"", db);
    conn = connect_db(status, ds_config_target_conninfo(config, db), what);
    if (conn && !lagging)
        problem(status, "target database \"%s\": out of memory", db);
    if (!conn || !lagging) {
        json_object_set_new(out, "reachable", json_boolean(conn != NULL));
        PQfinish(conn);
        free(lagging);
        return out;
    }
    json_object_set_new(out, "reachable", json_true());

    snprintf(what, sizeof(what), "reading dualsync.offsets in target database \"%s\"", db);
    exists = table_exists(status, conn, "dualsync.offsets", what);
    if (exists > 0)
        offsets = query(status, conn, what,
                        "SELECT topic, partition, next_offset FROM dualsync.offsets"
                        " WHERE group_id = $1",
                        1, params);
    json_array_foreach(ends, i, end)
    {
        const char *topic = json_string_value(json_object_get(end, "topic"));
        int64_t partition = json_integer_value(json_object_get(end, "partition"));
        int64_t low = json_integer_value(json_object_get(end, "low"));
        int64_t high = json_integer_value(json_object_get(end, "high"));
        int64_t next, from, lag;
        json_t *p;

        if (!db_reads_topic(status, db, topic))
            continue;
        next = stored_offset(offsets, topic, partition);
        /* With no stored offset apply starts at the oldest message still in the partition;
         * an offset below it was removed by retention and cannot be read either. */
        from = next < low ? low : next;
        lag = high > from ? high - from : 0;
        p = json_object();
        json_object_set_new(p, "database", json_string(db));
        json_object_set_new(p, "topic", json_string(topic));
        json_object_set_new(p, "partition", json_integer(partition));
        json_object_set_new(p, "next_offset", next < 0 ? json_null() : json_integer(next));
        json_object_set_new(p, "high_watermark", json_integer(high));
        json_object_set_new(p, "lag_messages", json_integer(lag));
        json_array_append_new(lags, p);
        if (lag > 0)
            lagging[nlagging++] = (ds_topic_partition_t){topic, (int32_t)partition, from};
        if (status->opt.max_lag_messages >= 0 && lag > status->opt.max_lag_messages)
            problem(status,
                    "apply group \"%s\" in target database \"%s\" is %" PRId64
                    " messages behind on %s [%d] (next offset %" PRId64 ", end %" PRId64
                    "), more than --max-lag-messages %" PRId64,
                    config->apply_group_id, db, lag, topic, (int)partition, from, high,
                    status->opt.max_lag_messages);
    }
    PQclear(offsets);
    behind = ends ? seconds_behind(status, db, lagging, nlagging) : json_null();
    free(lagging);
    if (status->opt.max_seconds_behind >= 0 && json_is_integer(behind) &&
        json_integer_value(behind) > status->opt.max_seconds_behind)
        problem(status,
                "target database \"%s\" is %" JSON_INTEGER_FORMAT
                " s behind the source (the oldest change not applied yet was committed that long "
                "ago), more than --max-seconds-behind %" PRId64,
                db, json_integer_value(behind), status->opt.max_seconds_behind);
    json_object_set_new(out, "seconds_behind", behind);

    snprintf(what, sizeof(what), "reading dualsync.pending in target database \"%s\"", db);
    exists = table_exists(status, conn, "dualsync.pending", what);
    if (exists == 0) {
        json_object_set_new(out, "pending_rows", json_integer(0));
        json_object_set_new(out, "oldest_pending_age_s", json_null());
    } else if (exists > 0 &&
               (r = query(status, conn, what,
                          "SELECT count(*), extract(epoch FROM now() - min(first_seen))::bigint"
                          " FROM dualsync.pending",
                          0, NULL))) {
        json_object_set_new(out, "pending_rows", int_or_null(r, 0, 0));
        json_object_set_new(out, "oldest_pending_age_s", int_or_null(r, 0, 1));
        PQclear(r);
    }

    snprintf(what, sizeof(what), "reading dualsync.dead_letters in target database \"%s\"", db);
    exists = table_exists(status, conn, "dualsync.dead_letters", what);
    if (exists == 0) {
        json_object_set_new(out, "dead_letter_records", json_null());
    } else if (exists > 0 &&
               (r = query(status, conn, what, "SELECT count(*) FROM dualsync.dead_letters", 0,
                          NULL))) {
        json_object_set_new(out, "dead_letter_records", int_or_null(r, 0, 0));
        PQclear(r);
    }
    PQfinish(conn);
    return out;
}

static void report_apply(ds_status_t *status, json_t *doc)
{
    const ds_config_t *config = status->config;
    json_t *ends = json_array(), *dlq = json_array(), *lags = json_array(),
           *dbs = json_array(), *dlq_obj = json_object();
    bool kafka_ok = true;
    int64_t dlq_messages = 0;
    size_t i;
    json_t *p;

    for (int t = 0; kafka_ok && t < ds_mapping_set_ntopics(status->set); t++)
        kafka_ok = read_watermarks(status, ds_mapping_set_topic(status->set, t), ends);
    for (int db = 0; db < config->ntargets; db++)
        json_array_append_new(dbs, report_database(status, config->target_names[db],
                                                   kafka_ok ? ends : NULL, lags));
    json_object_set_new(doc, "group_id", json_string(config->apply_group_id));
    json_object_set_new(doc, "partitions", kafka_ok ? lags : json_null());
    if (!kafka_ok)
        json_decref(lags);
    json_object_set_new(doc, "databases", dbs);

    /* The dead-letter topic is not compacted: every message ever dead-lettered that
     * retention kept, whether or not `dlq retry` wrote it since. */
    json_object_set_new(dlq_obj, "topic", json_string(config->apply_dlq_topic));
    if (kafka_ok && read_watermarks(status, config->apply_dlq_topic, dlq)) {
        json_array_foreach(dlq, i, p)
            dlq_messages += json_integer_value(json_object_get(p, "high")) -
                            json_integer_value(json_object_get(p, "low"));
        json_object_set_new(dlq_obj, "messages", json_integer(dlq_messages));
    } else {
        json_object_set_new(dlq_obj, "messages", json_null());
    }
    json_object_set_new(doc, "dead_letter_topic", dlq_obj);
    json_decref(dlq);
    json_decref(ends);
}

/* ---- output ------------------------------------------------------------------------------ */

static const char *jstr(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s ? s : "?";
}

static void print_text(const json_t *doc, FILE *out)
{
    const json_t *slot = json_object_get(doc, "slot");
    const json_t *problems = json_object_get(doc, "problems");
    size_t i;
    json_t *v;

    fprintf(out, "dualsync status at %s: %s\n", jstr(doc, "time"),
            json_is_true(json_object_get(doc, "healthy")) ? "healthy" : "UNHEALTHY");
    json_array_foreach(problems, i, v)
        fprintf(out, "  PROBLEM: %s\n", json_string_value(v));

    if (json_is_object(slot)) {
        fprintf(out, "\nReplication slot \"%s\": ", jstr(slot, "name"));
        if (!json_is_true(json_object_get(slot, "exists")))
            fprintf(out, "missing\n");
        else {
            if (json_is_true(json_object_get(slot, "active")))
                fprintf(out, "active (walsender pid %" JSON_INTEGER_FORMAT ", capture from %s)\n",
                        json_integer_value(json_object_get(slot, "active_pid")),
                        jstr(slot, "active_client"));
            else
                fprintf(out, "INACTIVE\n");
            fprintf(out, "  retained WAL    %-10s (%" JSON_INTEGER_FORMAT
                         " bytes; restart_lsn %s, current %s)\n",
                    jstr(slot, "retained_wal"),
                    json_integer_value(json_object_get(slot, "retained_wal_bytes")),
                    jstr(slot, "restart_lsn"), jstr(slot, "current_lsn"));
            fprintf(out, "  confirmed lag   %-10s (%" JSON_INTEGER_FORMAT
                         " bytes; confirmed_flush_lsn %s)\n",
                    jstr(slot, "confirmed_lag"),
                    json_integer_value(json_object_get(slot, "confirmed_lag_bytes")),
                    jstr(slot, "confirmed_flush_lsn"));
        }
    }
    if (json_array_size(json_object_get(doc, "backfill")) > 0) {
        fprintf(out, "\nBackfill (dualsync backfill --table):\n");
        json_array_foreach(json_object_get(doc, "backfill"), i, v)
        {
            json_t *total = json_object_get(v, "rows_total");

            fprintf(out, "  %-30s %" JSON_INTEGER_FORMAT, jstr(v, "table"),
                    json_integer_value(json_object_get(v, "rows_done")));
            if (json_is_integer(total))
                fprintf(out, " of ~%" JSON_INTEGER_FORMAT, json_integer_value(total));
            fprintf(out, " rows, %s (updated %s)\n",
                    json_is_true(json_object_get(v, "completed")) ? "done" : "in progress",
                    jstr(v, "updated_at"));
        }
    }
    if (json_object_get(doc, "group_id")) {
        fprintf(out, "\nApply group \"%s\":\n", jstr(doc, "group_id"));
        if (json_is_array(json_object_get(doc, "partitions"))) {
            fprintf(out, "  %-16s %-40s %9s %12s %12s %10s\n", "DATABASE", "TOPIC", "PARTITION",
                    "NEXT OFFSET", "END", "LAG");
            json_array_foreach(json_object_get(doc, "partitions"), i, v)
            {
                json_t *next = json_object_get(v, "next_offset");
                char next_text[32];

                if (json_is_integer(next))
                    snprintf(next_text, sizeof(next_text), "%" JSON_INTEGER_FORMAT,
                             json_integer_value(next));
                else
                    snprintf(next_text, sizeof(next_text), "none");
                fprintf(out,
                        "  %-16s %-40s %9" JSON_INTEGER_FORMAT " %12s %12" JSON_INTEGER_FORMAT
                        " %10" JSON_INTEGER_FORMAT "\n",
                        jstr(v, "database"), jstr(v, "topic"),
                        json_integer_value(json_object_get(v, "partition")), next_text,
                        json_integer_value(json_object_get(v, "high_watermark")),
                        json_integer_value(json_object_get(v, "lag_messages")));
            }
        }
        json_array_foreach(json_object_get(doc, "databases"), i, v)
        {
            json_t *pending = json_object_get(v, "pending_rows");
            json_t *age = json_object_get(v, "oldest_pending_age_s");
            json_t *dead = json_object_get(v, "dead_letter_records");

            fprintf(out, "  target database \"%s\": ", jstr(v, "name"));
            if (!json_is_true(json_object_get(v, "reachable"))) {
                fprintf(out, "unreachable\n");
                continue;
            }
            if (json_is_integer(json_object_get(v, "seconds_behind")))
                fprintf(out, "%" JSON_INTEGER_FORMAT " s behind the source, ",
                        json_integer_value(json_object_get(v, "seconds_behind")));
            if (json_is_integer(pending))
                fprintf(out, "%" JSON_INTEGER_FORMAT " pending rows", json_integer_value(pending));
            else
                fprintf(out, "pending rows unknown");
            if (json_is_integer(age))
                fprintf(out, " (oldest waits %" JSON_INTEGER_FORMAT " s)", json_integer_value(age));
            if (json_is_integer(dead))
                fprintf(out, ", %" JSON_INTEGER_FORMAT " dead-letter records",
                        json_integer_value(dead));
            fprintf(out, "\n");
        }
        v = json_object_get(doc, "dead_letter_topic");
        if (json_is_integer(json_object_get(v, "messages")))
            fprintf(out, "  dead-letter topic %s: %" JSON_INTEGER_FORMAT " messages\n",
                    jstr(v, "topic"), json_integer_value(json_object_get(v, "messages")));
        else
            fprintf(out, "  dead-letter topic %s: unknown\n", jstr(v, "topic"));
    }
}

int ds_status_report(ds_status_t *status, FILE *out)
{
    json_t *doc = json_object();
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    bool healthy;

    json_decref(status->problems);
    status->problems = json_array();
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_set_new(doc, "time", json_string(stamp));
    if (has_capture(status->config))
        report_source(status, doc);
    if (has_apply(status->config))
        report_apply(status, doc);
    healthy = json_array_size(status->problems) == 0;
    json_object_set_new(doc, "healthy", json_boolean(healthy));
    json_object_set(doc, "problems", status->problems);
    if (status->opt.json) {
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

        if (text)
            fprintf(out, "%s\n", text);
        free(text);
    } else {
        print_text(doc, out);
    }
    fflush(out);
    json_decref(doc);
    return healthy ? DS_STATUS_EXIT_HEALTHY : DS_STATUS_EXIT_UNHEALTHY;
}
