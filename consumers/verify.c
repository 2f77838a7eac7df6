/*
 * verify.c: `dualsync verify` (design in include/dualsync/verify.h).
 *
 * Why rebuild with apply's own statements instead of recomputing targets in SQL or in C:
 * lookups, casts and sql expressions are computed by the target database inside the write
 * statements, merges and key changes live in the links bookkeeping of those statements, and
 * a required lookup that finds no parent makes the write wait. Running the same statements
 * (ds_mapping_set_rename_tables() points them at temporary shadow tables) is the only way
 * the expected rows cannot drift from what apply writes.
 *
 * Why rows are rendered through cdc/typemap.c: a mapping reads the values capture published,
 * so a timestamp must read "2024-01-31T10:00:00" and a bytea its base64, not row_to_json's
 * forms. The source session uses capture's settings (DateStyle, IntervalStyle, TimeZone,
 * extra_float_digits), the columns pgoutput sends (no generated columns) and the types
 * pgoutput names (pg_attribute.atttypid: a domain keeps its own OID, as in the WAL stream).
 *
 * Order. Several source rows may write one target row (a merge); the statements give it the
 * values of its first source row in key order, whatever the order of the writes, so the
 * rebuild's order does not matter. Rows are still rebuilt file by file in the order of their
 * last write (the age of xmin, oldest first), the order apply saw them within one table.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "dualsync/batchstmt.h"
#include "dualsync/buf.h"
#include "dualsync/consumer.h"
#include "dualsync/mapping.h"
#include "dualsync/pgutil.h"
#include "dualsync/typemap.h"
#include "dualsync/verify.h"

#define SAMPLES    5         /* sample keys per kind of difference */
#define FETCH_ROWS "500"     /* legacy rows per FETCH */
#define POLL_NS    100000000 /* 100 ms between two looks at the slot or the offsets */

/* A target database. */
typedef struct vdb {
    const char *name; /* the config's "targets" key (borrowed) */
    PGconn *conn;     /* its connection, in the verification transaction */
} vdb_t;

/* One shadow table: a temporary copy of a target table in its database. */
typedef struct shadow {
    int db;             /* index in dbs */
    const char *schema; /* the target table (borrowed from the set) */
    const char *table;  /* likewise */
    bool in_place;      /* written by "mode": "update" targets */
    char *name;         /* pg_temp."ds_verify_N", as statements write it */
    char **columns;     /* union of the mapped columns of its targets */
    int ncolumns;       /* entries in columns */
} shadow_t;

/* Keys of one kind of difference: how many, and the first few. */
typedef struct diff {
    long count;          /* rows */
    char *keys[SAMPLES]; /* json_build_array(key::text)::text of the first ones, in order */
    int nkeys;           /* entries in keys */
} diff_t;

/* What is known about one target. */
typedef struct vtarget {
    const ds_target_t *pub;  /* the set's target */
    ds_target_shape_t shape; /* its shape */
    int db;                  /* index in dbs */
    int shadow;              /* index in shadows */
    long expected;           /* rows the mappings give (shadow rows) */
    long present;            /* rows of the target table */
    diff_t missing;          /* in the shadow, not in the target */
    diff_t extra;            /* in the target, not in the shadow (and not kept by on_delete) */
    diff_t different;        /* both, mapped columns differ */
    long kept;               /* target rows no source produces that on_delete keeps */
    long failed;             /* writes that failed (would be dead letters of this target) */
    long pending;            /* writes still waiting for a parent at the end */
    diff_t waiting;          /* the first of them: their source keys (message key texts) */
    char *first_error;       /* the first failed write's error */
    bool batch;              /* its batch statement "ds_verify_bN" is prepared */
} vtarget_t;

/* One write of a legacy row, kept until its chunk is written (owned copies). */
typedef struct vwrite {
    int target;     /* index in targets */
    bool upsert;    /* DS_WRITE_UPSERT; else an unlink, which does nothing here */
    int nparams;    /* entries in params */
    char **params;  /* the statement's parameters, NULL for SQL NULL */
} vwrite_t;

/* One mapped legacy row of a chunk. */
typedef struct vrow {
    char *key;        /* the message key text, or NULL */
    char *value;      /* the message value text */
    vwrite_t *writes; /* what it maps to, in target order */
    int nwrites;      /* entries in writes */
} vrow_t;

/* A write that waits for a parent (applied = false): retried after every row is written. */
typedef struct vpending {
    int target;            /* index in targets */
    char *key;             /* the message key text, or NULL */
    char *value;           /* the message value text */
    struct vpending *next; /* the next one, in arrival order */
} vpending_t;

/* Per mapping file. */
typedef struct vfile {
    long rows;         /* legacy rows read */
    long dead;         /* rows ds_mapping_eval() rejects (dead letters of the file) */
    char *first_error; /* the first rejection */
    char *first_key;   /* its key */
} vfile_t;

typedef struct verify {
    const ds_config_t *config;      /* borrowed */
    const ds_verify_options_t *opt; /* borrowed */
    FILE *err;                      /* where problems go */
    ds_mapping_set_t *set;          /* the mappings, renamed to the shadows */
    PGconn *source;                 /* the legacy database */
    vdb_t *dbs;                     /* target databases the mappings write */
    int ndbs;
    shadow_t *shadows;
    int nshadows;
    vtarget_t *targets; /* one per set target, same order */
    int ntargets;
    vfile_t *files; /* one per mapping file */
    int nfiles;
    vpending_t *pending, **pending_tail; /* waiting writes, in arrival order */
    vrow_t *chunk;                       /* mapped rows of the FETCH being rebuilt */
    int nchunk;                          /* entries used in chunk */
    int chunk_cap;                       /* entries allocated in chunk */
    ds_batchstmt_args_t args;            /* a batch statement's parameters being built */
    char lsn[DS_LSN_STRLEN];             /* the source position apply had to pass */
    int64_t dlq_messages;                /* messages on the dead-letter topic, -1 unknown */
    char errstr[4096];                   /* the setup error */
} verify_t;

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------------- */

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);

    if (!p) {
        fputs("dualsync verify: out of memory\n", stderr);
        abort();
    }
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = s ? strdup(s) : NULL;

    if (s && !p) {
        fputs("dualsync verify: out of memory\n", stderr);
        abort();
    }
    return p;
}

static void quote_qualified(ds_buf_t *buf, const char *schema, const char *table)
{
    ds_buf_append_ident(buf, schema);
    ds_buf_append_char(buf, '.');
    ds_buf_append_ident(buf, table);
}

/* Runs @p sql; false (errstr names @p what and the server's message) unless it answers @p ok. */
static bool run(PGconn *conn, const char *sql, int nparams, const char *const *params,
                ExecStatusType ok, PGresult **res, const char *what, char *errstr,
                size_t errstr_size)
{
    /* Without parameters, the simple protocol: it takes several statements at once. */
    PGresult *r = nparams == 0 ? PQexec(conn, sql)
                               : PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(r) != ok) {
        const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;

        ds_fail(errstr, errstr_size, "%s: %s", what, msg ? msg : ds_pg_error(conn));
        PQclear(r);
        return false;
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return true;
}

static void sleep_poll(void)
{
    struct timespec ts = {0, POLL_NS};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static PGconn *connect_db(const char *conninfo, const char *what, char *errstr, size_t errstr_size)
{
    PGconn *conn = PQconnectdb(conninfo);

    if (PQstatus(conn) != CONNECTION_OK) {
        ds_fail(errstr, errstr_size, "cannot connect to %s: %s", what, ds_pg_error(conn));
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* ---------------------------------------------------------------------------------------------
 * 1. Catching up
 * ------------------------------------------------------------------------------------------- */

/*
 * Whether a stopped capture has nothing left to publish up to @p upto: its initial backfill
 * is complete (an unfinished one is redone from a new snapshot when capture starts again, and
 * while it runs the slot is idle too), and the slot holds no row change and no logical message
 * (an incremental backfill's watermarks) up to there. pgoutput decodes the slot without
 * consuming anything (peek). This is how a stopped capture counts as caught up, since the slot
 * confirms positions only while capture streams.
 */
static bool slot_holds_no_changes(verify_t *v, const char *upto, bool *none)
{
    const char *params[] = {v->config->slot, upto, v->config->publication, NULL};
    PGresult *r;
    char *origins;
    bool ok;

    *none = false;
    /* Two statements: a name in a query must exist when it is parsed. */
    if (!run(v->source, "SELECT pg_catalog.to_regclass('dualsync.capture_state') IS NOT NULL", 0,
             NULL, PGRES_TUPLES_OK, &r, "reading dualsync.capture_state", v->errstr,
             sizeof(v->errstr)))
        return false;
    bool has_state = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (has_state) {
        if (!run(v->source,
                 "SELECT count(*) FROM dualsync.capture_state WHERE slot_name = $1"
                 " AND backfill_completed_at IS NULL",
                 1, params, PGRES_TUPLES_OK, &r, "reading dualsync.capture_state", v->errstr,
                 sizeof(v->errstr)))
            return false;
        bool unfinished = strcmp(PQgetvalue(r, 0, 0), "0") != 0;
        PQclear(r);
        if (unfinished)
            return true;
    }
    /* I, U, D, T: row changes; M: a logical message. Not those of transactions capture
     * skips by their replication origin (O: the origin's commit LSN, then its name): apply's
     * own writes, such as an in-place target's updates of a published table. */
    origins = ds_pg_text_array((const char *const *)v->config->skip_origins,
                               v->config->nskip_origins);
    if (!origins)
        return ds_fail(v->errstr, sizeof(v->errstr), "out of memory");
    params[3] = origins;
    ok = run(v->source,
             "WITH c AS (SELECT xid, data FROM pg_catalog.pg_logical_slot_peek_binary_changes("
             "$1, $2::pg_lsn, NULL, 'proto_version', '1', 'publication_names', "
             "pg_catalog.quote_ident($3), 'messages', 'true')),"
             " skipped AS (SELECT c.xid FROM c,"
             "  LATERAL (SELECT pg_catalog.substr(c.data, 10) AS rest) AS r,"
             "  LATERAL (SELECT pg_catalog.convert_from(pg_catalog.substr(r.rest, 1,"
             "   pg_catalog.position(r.rest, pg_catalog.decode('00', 'hex')) - 1), 'UTF8')"
             "   AS name) AS o"
             "  WHERE pg_catalog.get_byte(c.data, 0) = 79 AND EXISTS (SELECT 1 FROM"
             "   pg_catalog.unnest($4::text[]) AS p(prefix) WHERE o.name = p.prefix"
             "   OR pg_catalog.starts_with(o.name, p.prefix || '.')))"
             " SELECT count(*) FROM c WHERE pg_catalog.get_byte(c.data, 0) IN (73, 85, 68, 84, 77)"
             " AND NOT EXISTS (SELECT 1 FROM skipped AS s WHERE s.xid = c.xid)",
             4, params, PGRES_TUPLES_OK, &r, "reading the changes the stopped capture's slot holds",
             v->errstr, sizeof(v->errstr));
    free(origins);
    if (!ok)
        return false;
    *none = strcmp(PQgetvalue(r, 0, 0), "0") == 0;
    PQclear(r);
    return true;
}

static bool slot_confirmed(verify_t *v, ds_lsn_t lsn, int64_t deadline)
{
    const char *params[] = {v->config->slot};

    for (;;) {
        PGresult *r;
        ds_lsn_t confirmed = DS_INVALID_LSN;
        bool found, active = true, none;
        char upto[DS_LSN_STRLEN];

        if (!run(v->source,
                 "SELECT confirmed_flush_lsn::text, active FROM pg_catalog.pg_replication_slots "
                 "WHERE slot_name = $1",
                 1, params, PGRES_TUPLES_OK, &r, "reading the capture slot", v->errstr,
                 sizeof(v->errstr)))
            return false;
        found = PQntuples(r) == 1;
        if (found && !PQgetisnull(r, 0, 0) && !ds_lsn_parse(PQgetvalue(r, 0, 0), &confirmed))
            confirmed = DS_INVALID_LSN;
        if (found)
            active = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
        PQclear(r);
        if (!found)
            return ds_fail(v->errstr, sizeof(v->errstr),
                           "replication slot \"%s\" (source.slot) does not exist: is "
                           "'dualsync capture' set up for this configuration?",
                           v->config->slot);
        if (confirmed >= lsn)
            return true;
        if (!active) {
            if (!slot_holds_no_changes(v, ds_lsn_format(lsn, upto), &none))
                return false;
            if (none)
                return true;
        }
        if (now_ms() >= deadline) {
            char have[DS_LSN_STRLEN];

            return ds_fail(v->errstr, sizeof(v->errstr),
                           "capture has not caught up within %d ms: slot \"%s\" confirmed %s, "
                           "the source was at %s when verify started (%" PRIu64
                           " bytes behind); is 'dualsync capture' running?",
                           v->opt->timeout_ms, v->config->slot, ds_lsn_format(confirmed, have),
                           v->lsn, (uint64_t)(lsn - confirmed));
        }
        sleep_poll();
    }
}

/* The end offsets of every mapped topic (a topic nobody wrote has none). */
typedef struct vend {
    const char *topic;
    int32_t partition;
    int64_t end;
} vend_t;

static bool db_reads_topic(const verify_t *v, int db, const char *topic)
{
    for (int i = 0; i < v->ntargets; i++) {
        if (v->targets[i].db == db && strcmp(v->targets[i].shape.topic, topic) == 0)
            return true;
    }
    return false;
}

/* Whether database @p db has applied every end; otherwise describes the lag in @p lag. */
static bool db_caught_up(verify_t *v, int db, const vend_t *ends, int nends, ds_buf_t *lag,
                         bool *ok)
{
    const char *params[] = {v->config->apply_group_id};
    PGresult *r;

    *ok = true;
    if (!run(v->dbs[db].conn, "SELECT to_regclass('dualsync.offsets') IS NOT NULL", 0, NULL,
             PGRES_TUPLES_OK, &r, "reading dualsync.offsets", v->errstr, sizeof(v->errstr)))
        return false;
    bool exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    r = NULL;
    if (exists &&
        !run(v->dbs[db].conn,
             "SELECT topic, partition, next_offset FROM dualsync.offsets WHERE group_id = $1", 1,
             params, PGRES_TUPLES_OK, &r, "reading dualsync.offsets", v->errstr, sizeof(v->errstr)))
        return false;
    for (int i = 0; i < nends; i++) {
        int64_t stored = -1;

        if (ends[i].end <= 0 || !db_reads_topic(v, db, ends[i].topic))
            continue;
        for (int j = 0; r && j < PQntuples(r); j++) {
            if (strcmp(PQgetvalue(r, j, 0), ends[i].topic) == 0 &&
                atoi(PQgetvalue(r, j, 1)) == ends[i].partition)
                stored = strtoll(PQgetvalue(r, j, 2), NULL, 10);
        }
        if (stored < ends[i].end) {
            *ok = false;
            if (stored < 0)
                ds_buf_appendf(lag,
                               "\n  topic %s [%d] in target database \"%s\": nothing applied "
                               "yet, end offset %" PRId64 " (%" PRId64 " behind)",
                               ends[i].topic, (int)ends[i].partition, v->dbs[db].name, ends[i].end,
                               ends[i].end);
            else
                ds_buf_appendf(lag,
                               "\n  topic %s [%d] in target database \"%s\": applied up to "
                               "offset %" PRId64 ", end offset %" PRId64 " (%" PRId64 " behind)",
                               ends[i].topic, (int)ends[i].partition, v->dbs[db].name, stored,
                               ends[i].end, ends[i].end - stored);
        }
    }
    PQclear(r);
    return true;
}

/* The dead-letter topic's size, for the report: read once apply has caught up, since apply
 * flushes a batch's dead letters before it stores the batch's offsets. -1 when unknown. */
static void read_dlq_size(verify_t *v, ds_consumer_t *consumer)
{
    ds_topic_partition_t *end = NULL;
    int64_t *low = NULL;
    int nend = 0;
    char errstr[512];

    v->dlq_messages = -1;
    if (!ds_consumer_end_offsets(consumer, v->config->apply_dlq_topic, 10000, &end, &low, &nend,
                                 errstr, sizeof(errstr)))
        return;
    v->dlq_messages = 0;
    for (int i = 0; i < nend; i++)
        v->dlq_messages += end[i].offset - low[i];
    free(end);
    free(low);
}

/* How long verify waits for the changes waiting in dualsync.pending once apply has caught up:
 * apply retries them after every batch and every 5 s (apply.c), so two rounds. */
#define PENDING_SETTLE_MS 12000

/*
 * Once apply's offsets passed the source position, changes it parked in dualsync.pending
 * (a child read before its parent) may still be waiting for the retry that follows the batch
 * which brought their parent: comparing at that moment would report their rows as different.
 * Waits until no target database holds pending rows, or PENDING_SETTLE_MS (or the deadline)
 * passed: rows still waiting then are truly waiting, and are reported as such.
 */
static bool pending_settled(verify_t *v, int64_t deadline)
{
    int64_t until = now_ms() + PENDING_SETTLE_MS;

    if (until > deadline)
        until = deadline;
    for (;;) {
        long waiting = 0;

        for (int db = 0; db < v->ndbs; db++) {
            PGresult *r;

            if (!run(v->dbs[db].conn,
                     "SELECT CASE WHEN to_regclass('dualsync.pending') IS NULL THEN 0"
                     " ELSE (SELECT count(*) FROM dualsync.pending) END",
                     0, NULL, PGRES_TUPLES_OK, &r, "reading dualsync.pending", v->errstr,
                     sizeof(v->errstr)))
                return false;
            waiting += strtol(PQgetvalue(r, 0, 0), NULL, 10);
            PQclear(r);
        }
        if (waiting == 0 || now_ms() >= until)
            return true;
        sleep_poll();
    }
}

static bool catch_up(verify_t *v)
{
    int64_t deadline = now_ms() + v->opt->timeout_ms;
    ds_consumer_t *consumer;
    vend_t *ends = NULL;
    int nends = 0;
    PGresult *r;
    ds_lsn_t lsn;
    bool ok = false;

    if (!run(v->source, "SELECT pg_catalog.pg_current_wal_lsn()::text", 0, NULL, PGRES_TUPLES_OK,
             &r, "reading the source's WAL position", v->errstr, sizeof(v->errstr)))
        return false;
    if (!ds_lsn_parse(PQgetvalue(r, 0, 0), &lsn)) {
        PQclear(r);
        return ds_fail(v->errstr, sizeof(v->errstr), "the source answered no WAL position");
    }
    PQclear(r);
    ds_lsn_format(lsn, v->lsn);
    if (!slot_confirmed(v, lsn, deadline))
        return false;

    /* Everything up to lsn is in Kafka now: the topics' ends are what apply must reach. */
    consumer = ds_consumer_new(v->config, NULL, NULL, NULL, NULL, v->errstr, sizeof(v->errstr));
    if (!consumer)
        return false;
    for (int t = 0; t < ds_mapping_set_ntopics(v->set); t++) {
        const char *topic = ds_mapping_set_topic(v->set, t);
        ds_topic_partition_t *end = NULL;
        int nend = 0;

        if (!ds_consumer_end_offsets(consumer, topic, 10000, &end, NULL, &nend, v->errstr,
                                     sizeof(v->errstr)))
            goto done;
        ends = realloc(ends, sizeof(*ends) * (size_t)(nends + nend + 1));
        if (!ends) {
            free(end);
            ds_fail(v->errstr, sizeof(v->errstr), "out of memory");
            goto done;
        }
        for (int i = 0; i < nend; i++)
            ends[nends++] = (vend_t){topic, end[i].partition, end[i].offset};
        free(end);
    }
    for (;;) {
        ds_buf_t lag = DS_BUF_INIT;
        bool all = true;

        for (int db = 0; db < v->ndbs; db++) {
            bool db_ok;

            if (!db_caught_up(v, db, ends, nends, &lag, &db_ok)) {
                ds_buf_free(&lag);
                goto done;
            }
            all = all && db_ok;
        }
        if (all) {
            ds_buf_free(&lag);
            ok = true;
            break;
        }
        if (now_ms() >= deadline) {
            ds_fail(v->errstr, sizeof(v->errstr),
                    "apply (group \"%s\") has not caught up with source position %s within %d "
                    "ms:%s",
                    v->config->apply_group_id, v->lsn, v->opt->timeout_ms, lag.data);
            ds_buf_free(&lag);
            break;
        }
        ds_buf_free(&lag);
        sleep_poll();
    }
    if (ok && !(ok = pending_settled(v, deadline)))
        goto done;
    if (ok)
        read_dlq_size(v, consumer);
done:
    free(ends);
    ds_consumer_free(consumer);
    return ok;
}

/* ---------------------------------------------------------------------------------------------
 * 2. Shadows
 * ------------------------------------------------------------------------------------------- */

static int find_db(verify_t *v, const char *name)
{
    for (int i = 0; i < v->ndbs; i++) {
        if (strcmp(v->dbs[i].name, name) == 0)
            return i;
    }
    return -1;
}

static int find_shadow(const verify_t *v, int db, const char *schema, const char *table,
                       bool in_place)
{
    for (int i = 0; i < v->nshadows; i++) {
        const shadow_t *s = &v->shadows[i];

        if (s->db == db && s->in_place == in_place && strcmp(s->schema, schema) == 0 &&
            strcmp(s->table, table) == 0)
            return i;
    }
    return -1;
}

static void shadow_add_column(shadow_t *s, const char *column)
{
    for (int i = 0; i < s->ncolumns; i++) {
        if (strcmp(s->columns[i], column) == 0)
            return;
    }
    s->columns = realloc(s->columns, sizeof(char *) * (size_t)(s->ncolumns + 1));
    if (!s->columns) {
        fputs("dualsync verify: out of memory\n", stderr);
        abort();
    }
    s->columns[s->ncolumns++] = xstrdup(column);
}

/* Targets → databases and shadow tables (one per target table and mode). */
static void plan_shadows(verify_t *v)
{
    v->ntargets = ds_mapping_set_ntargets(v->set);
    v->targets = xcalloc((size_t)v->ntargets, sizeof(*v->targets));
    v->shadows = xcalloc((size_t)v->ntargets, sizeof(*v->shadows));
    v->dbs = xcalloc((size_t)v->ntargets, sizeof(*v->dbs));
    for (int i = 0; i < v->ntargets; i++) {
        vtarget_t *t = &v->targets[i];

        t->pub = ds_mapping_set_target(v->set, i);
        ds_mapping_target_describe(v->set, i, &t->shape);
        t->db = find_db(v, t->pub->connection);
        if (t->db < 0) {
            t->db = v->ndbs++;
            v->dbs[t->db].name = t->pub->connection;
        }
        t->shadow = find_shadow(v, t->db, t->shape.schema, t->shape.table, t->pub->in_place);
        if (t->shadow < 0) {
            shadow_t *s = &v->shadows[v->nshadows];
            ds_buf_t name = DS_BUF_INIT;

            t->shadow = v->nshadows++;
            s->db = t->db;
            s->schema = t->shape.schema;
            s->table = t->shape.table;
            s->in_place = t->pub->in_place;
            ds_buf_appendf(&name, "pg_temp.\"ds_verify_%d\"", t->shadow);
            s->name = name.data;
        }
        for (int c = 0; c < t->shape.ncolumns; c++)
            shadow_add_column(&v->shadows[t->shadow], ds_mapping_target_column(v->set, i, c, NULL));
    }
}

/*
 * The rename hook: a target's own table is its shadow; a lookup of a table that upsert
 * targets of the same database write reads that shadow (it sees what the rebuild wrote, as a
 * lookup in apply sees what apply wrote). Other tables are read as they are.
 */
static const char *shadow_name(void *arg, const ds_target_t *target, const char *schema,
                               const char *table)
{
    verify_t *v = arg;

    for (int i = 0; i < v->ntargets; i++) {
        const vtarget_t *t = &v->targets[i];

        if (t->pub == target) {
            int s;

            if (strcmp(t->shape.schema, schema) == 0 && strcmp(t->shape.table, table) == 0)
                return v->shadows[t->shadow].name;
            s = find_shadow(v, t->db, schema, table, false);
            return s >= 0 ? v->shadows[s].name : NULL;
        }
    }
    return NULL;
}

/* Creates shadow @p s in its database (inside the verification transaction). */
static bool create_shadow(verify_t *v, int si)
{
    shadow_t *s = &v->shadows[si];
    PGconn *conn = v->dbs[s->db].conn;
    ds_buf_t sql = DS_BUF_INIT, real = DS_BUF_INIT;
    PGresult *r = NULL;
    bool ok = false;
    char what[512];

    quote_qualified(&real, s->schema, s->table);
    snprintf(what, sizeof(what), "creating the shadow of %s in target database \"%s\"", real.data,
             v->dbs[s->db].name);
    if (s->in_place) {
        /* Key and mapped columns of the rows as they are, the mapped ones NULL: the in-place
         * updates fill them as apply's fill the real table. */
        bool first = true;

        ds_buf_appendf(&sql, "CREATE TEMP TABLE %s AS SELECT ", s->name + strlen("pg_temp."));
        for (int c = 0; c < s->ncolumns; c++) {
            ds_buf_append_str(&sql, c ? ", " : "");
            ds_buf_append_ident(&sql, s->columns[c]);
        }
        ds_buf_appendf(&sql, " FROM %s WITH NO DATA", real.data);
        if (!run(conn, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, what, v->errstr,
                 sizeof(v->errstr)))
            goto done;
        /* The key columns of every target writing it: a fan-out target (a parent's update
         * of its children) finds its rows by columns that are not the table's key. */
        ds_buf_t keys = DS_BUF_INIT;

        for (int i = 0; i < v->ntargets; i++) {
            const vtarget_t *t = &v->targets[i];

            if (t->shadow != si)
                continue;
            for (int k = 0; k < t->shape.nkey; k++) {
                const char *key = ds_mapping_target_key(v->set, i, k);
                bool seen = false;

                for (int j = 0; j < i && !seen; j++) {
                    if (v->targets[j].shadow != si)
                        continue;
                    for (int kk = 0; kk < v->targets[j].shape.nkey && !seen; kk++)
                        seen = strcmp(ds_mapping_target_key(v->set, j, kk), key) == 0;
                }
                for (int kk = 0; kk < k && !seen; kk++)
                    seen = strcmp(ds_mapping_target_key(v->set, i, kk), key) == 0;
                if (seen)
                    continue;
                ds_buf_append_str(&keys, first ? "" : ", ");
                ds_buf_append_ident(&keys, key);
                first = false;
            }
        }
        ds_buf_reset(&sql);
        ds_buf_appendf(&sql, "INSERT INTO %s (%s) SELECT %s FROM %s", s->name, keys.data,
                       keys.data, real.data);
        ds_buf_free(&keys);
        if (!run(conn, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, what, v->errstr,
                 sizeof(v->errstr)))
            goto done;
    } else {
        const char *params[] = {real.data};

        ds_buf_appendf(&sql,
                       "CREATE TEMP TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                       "INCLUDING GENERATED)",
                       s->name + strlen("pg_temp."), real.data);
        if (!run(conn, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, what, v->errstr,
                 sizeof(v->errstr)))
            goto done;
        /* Columns no mapping sets are not compared; without their defaults and NOT NULL the
         * rebuild never draws from the target's sequences (nextval is not transactional). */
        if (!run(conn,
                 "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = $1::regclass "
                 "AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
                 1, params, PGRES_TUPLES_OK, &r, what, v->errstr, sizeof(v->errstr)))
            goto done;
        for (int i = 0; i < PQntuples(r); i++) {
            const char *col = PQgetvalue(r, i, 0);
            bool mapped = false;

            for (int c = 0; c < s->ncolumns && !mapped; c++)
                mapped = strcmp(s->columns[c], col) == 0;
            if (mapped)
                continue;
            ds_buf_reset(&sql);
            ds_buf_appendf(&sql, "ALTER TABLE %s ALTER COLUMN ", s->name);
            ds_buf_append_ident(&sql, col);
            ds_buf_append_str(&sql, " DROP DEFAULT, ALTER COLUMN ");
            ds_buf_append_ident(&sql, col);
            ds_buf_append_str(&sql, " DROP NOT NULL");
            if (!run(conn, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, what, v->errstr,
                     sizeof(v->errstr)))
                goto done;
        }
    }
    /* The unique index ON CONFLICT names, per target writing this table (a fan-out key is
     * not unique). */
    for (int i = 0; i < v->ntargets; i++) {
        const vtarget_t *t = &v->targets[i];

        if (t->shadow != si || t->pub->fan_out)
            continue;
        ds_buf_reset(&sql);
        ds_buf_appendf(&sql, "CREATE UNIQUE INDEX ON %s (", s->name);
        for (int k = 0; k < t->shape.nkey; k++) {
            ds_buf_append_str(&sql, k ? ", " : "");
            ds_buf_append_ident(&sql, ds_mapping_target_key(v->set, i, k));
        }
        ds_buf_append_char(&sql, ')');
        if (!run(conn, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, what, v->errstr,
                 sizeof(v->errstr)))
            goto done;
    }
    ok = true;
done:
    PQclear(r);
    ds_buf_free(&sql);
    ds_buf_free(&real);
    return ok;
}

/*
 * Rows of target @p ti that on_delete keeps although no source row produces them any more
 * (soft-deleted, or left by "ignore"): rows without links, and for soft_delete with the column
 * set. Appends the condition on the target table's row "r".
 */
static void append_kept_condition(ds_buf_t *buf, const verify_t *v, int ti)
{
    const vtarget_t *t = &v->targets[ti];

    if (t->shape.soft_column) {
        ds_buf_append_str(buf, "r.");
        ds_buf_append_ident(buf, t->shape.soft_column);
        ds_buf_append_str(buf, " IS NOT NULL AND ");
    }
    ds_buf_append_str(buf, "NOT EXISTS (SELECT 1 FROM dualsync.links AS x WHERE x.target = $1 "
                           "AND x.target_key = json_build_array(");
    for (int k = 0; k < t->shape.nkey; k++) {
        ds_buf_append_str(buf, k ? ", r." : "r.");
        ds_buf_append_ident(buf, ds_mapping_target_key(v->set, ti, k));
        ds_buf_append_str(buf, "::text");
    }
    ds_buf_append_str(buf, ")::text)");
}

/*
 * Copies into the shadow of upsert target @p ti the rows on_delete keeps: apply left them on
 * purpose, and a child's required lookup may have found its parent among them (an order of a
 * soft-deleted account). A rebuild from the legacy rows alone would make that child wait,
 * and report a correct target as different; seeded, the rebuild sees what apply saw. Sets
 * t->kept to the number of rows copied.
 */
static bool seed_kept_rows(verify_t *v, int ti)
{
    vtarget_t *t = &v->targets[ti];
    const shadow_t *s = &v->shadows[t->shadow];
    const char *params[] = {t->pub->links_id};
    ds_buf_t sql = DS_BUF_INIT, cols = DS_BUF_INIT, what = DS_BUF_INIT;
    PGresult *r = NULL;
    bool ok;

    if (t->pub->in_place || (!t->shape.soft_column && !t->shape.on_delete_ignore))
        return true;
    for (int c = 0; c < t->shape.ncolumns; c++) {
        ds_buf_append_str(&cols, c ? ", " : "");
        ds_buf_append_ident(&cols, ds_mapping_target_column(v->set, ti, c, NULL));
    }
    ds_buf_appendf(&sql, "INSERT INTO %s (%s) SELECT %s FROM ", s->name, cols.data, cols.data);
    quote_qualified(&sql, t->shape.schema, t->shape.table);
    ds_buf_append_str(&sql, " AS r WHERE ");
    append_kept_condition(&sql, v, ti);
    ds_buf_append_str(&sql, " ON CONFLICT DO NOTHING");
    ds_buf_appendf(&what, "target %s: copying the rows on_delete keeps into its shadow",
                   t->pub->id);
    ok = run(v->dbs[t->db].conn, sql.data, 1, params, PGRES_COMMAND_OK, &r, what.data, v->errstr,
             sizeof(v->errstr));
    if (ok)
        t->kept = strtol(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    ds_buf_free(&sql);
    ds_buf_free(&cols);
    ds_buf_free(&what);
    return ok;
}

/* Opens the verification transaction of every target database and creates its shadows. */
static bool begin_targets(verify_t *v)
{
    for (int db = 0; db < v->ndbs; db++) {
        char what[256];

        snprintf(what, sizeof(what), "starting the verification of target database \"%s\"",
                 v->dbs[db].name);
        /* The shadows are temporary tables as large as the targets: with the default 8 MB
         * of temp_buffers every page of them goes to disk and back (local buffers spill),
         * which made a rebuild of a million rows take longer than its verification is worth.
         * Local buffers are taken only as needed, and only before the first temporary table
         * of the session can the setting change. */
        if (!run(v->dbs[db].conn, "SET temp_buffers = '1GB'", 0, NULL, PGRES_COMMAND_OK, NULL,
                 what, v->errstr, sizeof(v->errstr)))
            return false;
        /* The snapshot is taken by the first query and kept to the end: the target tables
         * are compared as of that instant, however apply goes on meanwhile. */
        if (!run(v->dbs[db].conn, "BEGIN ISOLATION LEVEL REPEATABLE READ", 0, NULL,
                 PGRES_COMMAND_OK, NULL, what, v->errstr, sizeof(v->errstr)) ||
            !run(v->dbs[db].conn, "SELECT 1", 0, NULL, PGRES_TUPLES_OK, NULL, what, v->errstr,
                 sizeof(v->errstr)) ||
            !run(v->dbs[db].conn,
                 "CREATE TEMP TABLE ds_verify_links ("
                 " target text COLLATE \"C\" NOT NULL, source_topic text COLLATE \"C\" NOT NULL,"
                 " source_key text COLLATE \"C\" NOT NULL, target_key text COLLATE \"C\" NOT NULL,"
                 " vals jsonb, copies int NOT NULL DEFAULT 1,"
                 " copy_commit pg_lsn, copy_lsn pg_lsn,"
                 " PRIMARY KEY (target, source_topic, source_key, target_key));"
                 "CREATE INDEX ON ds_verify_links (target, target_key)",
                 0, NULL, PGRES_COMMAND_OK, NULL, what, v->errstr, sizeof(v->errstr)))
            return false;
    }
    for (int s = 0; s < v->nshadows; s++) {
        if (!create_shadow(v, s))
            return false;
    }
    for (int i = 0; i < v->ntargets; i++) {
        if (!seed_kept_rows(v, i))
            return false;
    }
    /* Prepared once per target, as apply does (the plans are then reused row after row). */
    for (int i = 0; i < v->ntargets; i++) {
        char name[32], what[512];
        PGresult *r;

        snprintf(name, sizeof(name), "ds_verify_w%d", i);
        snprintf(what, sizeof(what), "preparing the write of target %s", v->targets[i].pub->id);
        r = PQprepare(v->dbs[v->targets[i].db].conn, name, v->targets[i].pub->write_sql, 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            ds_fail(v->errstr, sizeof(v->errstr), "%s: %s", what,
                    ds_pg_error(v->dbs[v->targets[i].db].conn));
            PQclear(r);
            return false;
        }
        PQclear(r);
        /* And its batch statement, as apply writes: a chunk of rows at a time. */
        {
            char batch[32], error[1024];

            snprintf(batch, sizeof(batch), "ds_verify_b%d", i);
            switch (ds_batchstmt_prepare(v->dbs[v->targets[i].db].conn, v->targets[i].pub, name,
                                         batch, error, sizeof(error))) {
            case DS_BATCHSTMT_READY:
                v->targets[i].batch = true;
                break;
            case DS_BATCHSTMT_NONE:
                break;
            case DS_BATCHSTMT_ERROR:
                ds_fail(v->errstr, sizeof(v->errstr), "%s: %s", what, error);
                return false;
            }
        }
    }
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * 2b. Rebuilding: every legacy row as a snapshot read
 * ------------------------------------------------------------------------------------------- */

static int target_index(const verify_t *v, const ds_target_t *target)
{
    for (int i = 0; i < v->ntargets; i++) {
        if (ds_target_is(target, v->targets[i].pub))
            return i;
    }
    return -1;
}

static void add_pending(verify_t *v, int target, const char *key, const char *value)
{
    vpending_t *p = xcalloc(1, sizeof(*p));

    p->target = target;
    p->key = xstrdup(key);
    p->value = xstrdup(value);
    *v->pending_tail = p;
    v->pending_tail = &p->next;
}

typedef enum wr { WR_APPLIED, WR_WAITS, WR_FAILED, WR_LOST } wr_t;

/* Executes one write; WR_LOST (errstr set) only when the connection is gone. */
static wr_t exec_write(verify_t *v, const ds_target_write_t *w, int ti, char *error,
                       size_t error_size)
{
    PGconn *conn = v->dbs[v->targets[ti].db].conn;
    char name[32];
    PGresult *r;
    wr_t res;

    snprintf(name, sizeof(name), "ds_verify_w%d", ti);
    r = PQexecPrepared(conn, name, w->nparams, w->params, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        res = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0 ? WR_APPLIED : WR_WAITS;
    } else if (PQstatus(conn) == CONNECTION_BAD) {
        ds_fail(v->errstr, sizeof(v->errstr), "target database \"%s\": connection lost: %s",
                v->dbs[v->targets[ti].db].name, ds_pg_error(conn));
        res = WR_LOST;
    } else {
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);

        snprintf(error, error_size, "%s", msg ? msg : ds_pg_error(conn));
        res = WR_FAILED;
    }
    PQclear(r);
    return res;
}

static bool simple(verify_t *v, int db, const char *sql)
{
    return run(v->dbs[db].conn, sql, 0, NULL, PGRES_COMMAND_OK, NULL, sql, v->errstr,
               sizeof(v->errstr));
}

/*
 * Writes one change's upserts, database by database, as apply's slow path does: inside a
 * savepoint; a target whose write fails (a dead letter) or waits for a parent is dropped,
 * the savepoint undone and the rest written again.
 */
static bool write_change(verify_t *v, const ds_write_list_t *writes, const char *key,
                         const char *value)
{
    bool *excluded = xcalloc((size_t)writes->nwrites, sizeof(bool));
    bool *done_db = xcalloc((size_t)v->ndbs, sizeof(bool));
    bool ok = false;

    for (int first = 0; first < writes->nwrites; first++) {
        int db = v->targets[target_index(v, writes->writes[first].target)].db;

        if (done_db[db])
            continue;
        done_db[db] = true;
        for (;;) {
            bool failed = false;

            if (!simple(v, db, "SAVEPOINT ds_verify_change"))
                goto done;
            for (int i = first; i < writes->nwrites && !failed; i++) {
                const ds_target_write_t *w = &writes->writes[i];
                int ti = target_index(v, w->target);
                char error[1024];

                /* An unlink of a row that never linked anything does nothing. */
                if (excluded[i] || w->kind != DS_WRITE_UPSERT || v->targets[ti].db != db)
                    continue;
                switch (exec_write(v, w, ti, error, sizeof(error))) {
                case WR_APPLIED:
                    continue;
                case WR_WAITS:
                    add_pending(v, ti, key, value);
                    break;
                case WR_FAILED:
                    v->targets[ti].failed++;
                    if (!v->targets[ti].first_error)
                        v->targets[ti].first_error = xstrdup(error);
                    break;
                case WR_LOST:
                    goto done;
                }
                excluded[i] = true;
                failed = true;
            }
            if (!failed)
                break;
            if (!simple(v, db, "ROLLBACK TO SAVEPOINT ds_verify_change"))
                goto done;
        }
        if (!simple(v, db, "RELEASE SAVEPOINT ds_verify_change"))
            goto done;
    }
    ok = true;
done:
    free(excluded);
    free(done_db);
    return ok;
}

/* Maps one change; a rejection counts as a dead letter of the file (of a target, when only
 * that target is rejected). */
static bool map_change(verify_t *v, int file, const char *topic, const char *key, const char *value,
                       ds_write_list_t *writes, bool *mapped)
{
    json_error_t jerr;
    json_t *json = json_loads(value, 0, &jerr);
    char error[2048];

    *mapped = false;
    if (!json)
        return ds_fail(v->errstr, sizeof(v->errstr), "internal error: row JSON unreadable: %s",
                       jerr.text);
    if (ds_mapping_eval(v->set, topic, key, key ? strlen(key) : 0, json, writes, error,
                        sizeof(error))) {
        *mapped = true;
        /* A target rejected alone: a dead letter of that target, the others are written. */
        for (int i = 0; i < writes->nrejects; i++) {
            vtarget_t *t = &v->targets[target_index(v, writes->rejects[i].target)];

            t->failed++;
            if (!t->first_error)
                t->first_error = xstrdup(writes->rejects[i].error);
        }
    } else {
        v->files[file].dead++;
        if (!v->files[file].first_error) {
            v->files[file].first_error = xstrdup(error);
            v->files[file].first_key = xstrdup(key ? key : "null");
        }
    }
    json_decref(json);
    return true;
}

/* The columns of a legacy table as pgoutput sends them, and which form the message key. */
static bool source_columns(verify_t *v, const char *table, PGresult **res)
{
    const char *params[] = {table};

    return run(v->source,
               "SELECT a.attname, a.atttypid::int8, CASE c.relreplident"
               "  WHEN 'n' THEN false"
               "  WHEN 'i' THEN EXISTS (SELECT 1 FROM pg_catalog.pg_index i"
               "    WHERE i.indrelid = c.oid AND i.indisreplident AND a.attnum = ANY (i.indkey))"
               "  WHEN 'f' THEN CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_index i"
               "      WHERE i.indrelid = c.oid AND i.indisprimary)"
               "    THEN EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid"
               "      AND i.indisprimary AND a.attnum = ANY (i.indkey)) ELSE true END"
               "  ELSE EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid"
               "    AND i.indisprimary AND a.attnum = ANY (i.indkey)) END"
               " FROM pg_catalog.pg_class c"
               " JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid"
               " WHERE c.oid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped"
               "   AND a.attgenerated = ''"
               " ORDER BY a.attnum",
               1, params, PGRES_TUPLES_OK, res, "reading the columns of a legacy table", v->errstr,
               sizeof(v->errstr));
}

/* Renders column @p c of row @p i as capture would; false (error set) when it cannot. */
static bool render_value(ds_buf_t *buf, PGresult *rows, int i, int c, uint32_t oid, char *error,
                         size_t error_size)
{
    if (PQgetisnull(rows, i, c)) {
        ds_buf_append_str(buf, "null");
        return true;
    }
    return ds_typemap_append_json(buf, oid, PQgetvalue(rows, i, c), (size_t)PQgetlength(rows, i, c),
                                  error, error_size);
}

/* Keeps a mapped row (its writes copied: ds_mapping_eval's are borrowed) for its chunk. */
static void chunk_add(verify_t *v, const char *key, const char *value,
                      const ds_write_list_t *writes)
{
    vrow_t *row;

    if (v->nchunk == v->chunk_cap) {
        v->chunk_cap = v->chunk_cap ? v->chunk_cap * 2 : 512; /* a FETCH is 500 rows */
        v->chunk = realloc(v->chunk, (size_t)v->chunk_cap * sizeof(*v->chunk));
        if (!v->chunk) {
            fputs("dualsync verify: out of memory\n", stderr);
            abort();
        }
    }
    row = &v->chunk[v->nchunk++];
    row->key = xstrdup(key);
    row->value = xstrdup(value);
    row->nwrites = writes->nwrites;
    row->writes = xcalloc((size_t)writes->nwrites, sizeof(*row->writes));
    for (int i = 0; i < writes->nwrites; i++) {
        const ds_target_write_t *w = &writes->writes[i];
        vwrite_t *c = &row->writes[i];

        c->target = target_index(v, w->target);
        c->upsert = w->kind == DS_WRITE_UPSERT;
        c->nparams = w->nparams;
        c->params = xcalloc((size_t)w->nparams, sizeof(*c->params));
        for (int k = 0; k < w->nparams; k++)
            c->params[k] = xstrdup(w->params[k]);
    }
}

static void chunk_clear(verify_t *v)
{
    for (int r = 0; r < v->nchunk; r++) {
        for (int i = 0; i < v->chunk[r].nwrites; i++) {
            for (int k = 0; k < v->chunk[r].writes[i].nparams; k++)
                free(v->chunk[r].writes[i].params[k]);
            free(v->chunk[r].writes[i].params);
        }
        free(v->chunk[r].writes);
        free(v->chunk[r].key);
        free(v->chunk[r].value);
    }
    v->nchunk = 0;
}

/* Drops the waiting writes added after @p tail (a chunk written again row by row). */
static void pending_truncate(verify_t *v, vpending_t **tail)
{
    vpending_t *p = *tail;

    *tail = NULL;
    v->pending_tail = tail;
    while (p) {
        vpending_t *next = p->next;

        free(p->key);
        free(p->value);
        free(p);
        p = next;
    }
}

/* Row by row, each row inside a savepoint (write_change): the way every row goes when the
 * chunk cannot go set-based. */
static bool chunk_write_rows(verify_t *v)
{
    for (int r = 0; r < v->nchunk; r++) {
        const vrow_t *row = &v->chunk[r];
        ds_target_write_t *writes = xcalloc((size_t)row->nwrites, sizeof(*writes));
        ds_write_list_t list = {row->nwrites, writes, 0, NULL};
        bool ok;

        for (int i = 0; i < row->nwrites; i++) {
            writes[i].target = v->targets[row->writes[i].target].pub;
            writes[i].kind = row->writes[i].upsert ? DS_WRITE_UPSERT : DS_WRITE_UNLINK;
            writes[i].nparams = row->writes[i].nparams;
            writes[i].params = (const char *const *)row->writes[i].params;
        }
        ok = write_change(v, &list, row->key, row->value);
        free(writes);
        if (!ok)
            return false;
    }
    return true;
}

/*
 * Writes the chunk set-based: one batch statement per target, the rows in the order they
 * were read (a merged target row takes the last one's values, as row by row). A chunk with a
 * target without a batch statement, or whose statement fails (a row that would be a dead
 * letter), is rolled back and written row by row instead, as apply's slow path does.
 */
static bool write_chunk(verify_t *v)
{
    bool *used = xcalloc((size_t)v->ndbs, sizeof(bool)), ok = false, set_based = true;
    vpending_t **tail = v->pending_tail;

    for (int r = 0; r < v->nchunk && set_based; r++) {
        for (int i = 0; i < v->chunk[r].nwrites; i++) {
            const vwrite_t *w = &v->chunk[r].writes[i];

            if (w->upsert && !v->targets[w->target].batch)
                set_based = false;
            /* Identical legacy rows count copies, one row at a time (mapping.h). */
            if (ds_mapping_write_counts_copies(v->targets[w->target].pub,
                                               w->upsert ? DS_WRITE_UPSERT : DS_WRITE_UNLINK,
                                               (const char *const *)w->params, w->nparams))
                set_based = false;
            used[v->targets[w->target].db] = true;
        }
    }
    for (int db = 0; db < v->ndbs && set_based; db++) {
        if (used[db] && !simple(v, db, "SAVEPOINT ds_verify_chunk"))
            goto done;
    }
    for (int ti = 0; ti < v->ntargets && set_based; ti++) {
        vtarget_t *t = &v->targets[ti];
        PGconn *conn = v->dbs[t->db].conn;
        char name[32];
        PGresult *res;

        ds_batchstmt_begin(&v->args, t->pub);
        for (int r = 0; r < v->nchunk; r++) {
            for (int i = 0; i < v->chunk[r].nwrites; i++) {
                const vwrite_t *w = &v->chunk[r].writes[i];

                /* An unlink of a row that never linked anything does nothing. */
                if (w->target == ti && w->upsert)
                    ds_batchstmt_add(&v->args, (const char *const *)w->params, w->nparams, r,
                                     true);
            }
        }
        if (v->args.nrows == 0)
            continue;
        snprintf(name, sizeof(name), "ds_verify_b%d", ti);
        res = PQexecPrepared(conn, name, t->pub->write_nparams + 2,
                             ds_batchstmt_finish(&v->args, t->shape.topic), NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            /* The rows whose required lookup found no parent: they wait. */
            for (int k = 0; k < PQntuples(res); k++) {
                long r = strtol(PQgetvalue(res, k, 0), NULL, 10);

                if (r >= 0 && r < v->nchunk)
                    add_pending(v, ti, v->chunk[r].key, v->chunk[r].value);
            }
        } else if (PQstatus(conn) == CONNECTION_BAD) {
            ds_fail(v->errstr, sizeof(v->errstr), "target database \"%s\": connection lost: %s",
                    v->dbs[t->db].name, ds_pg_error(conn));
            PQclear(res);
            goto done;
        } else {
            set_based = false;
            for (int db = 0; db < v->ndbs; db++) {
                if (used[db] && (!simple(v, db, "ROLLBACK TO SAVEPOINT ds_verify_chunk") ||
                                 !simple(v, db, "RELEASE SAVEPOINT ds_verify_chunk")))
                    goto done;
            }
            pending_truncate(v, tail);
        }
        PQclear(res);
    }
    if (set_based) {
        for (int db = 0; db < v->ndbs; db++) {
            if (used[db] && !simple(v, db, "RELEASE SAVEPOINT ds_verify_chunk"))
                goto done;
        }
    } else if (!chunk_write_rows(v)) {
        goto done;
    }
    ok = true;
done:
    free(used);
    chunk_clear(v);
    return ok;
}

static bool rebuild_file(verify_t *v, int file, const ds_target_shape_t *shape)
{
    ds_buf_t table = DS_BUF_INIT, sql = DS_BUF_INIT, value = DS_BUF_INIT, key = DS_BUF_INIT;
    PGresult *cols = NULL, *rows = NULL;
    bool ok = false;
    int ncols;
    uint32_t *oids = NULL;
    bool *is_key = NULL, any_key = false;

    quote_qualified(&table, shape->source_schema, shape->source_table);
    if (!source_columns(v, table.data, &cols))
        goto done;
    ncols = PQntuples(cols);
    oids = xcalloc((size_t)ncols, sizeof(*oids));
    is_key = xcalloc((size_t)ncols, sizeof(*is_key));
    ds_buf_append_str(&sql, "DECLARE ds_verify_rows NO SCROLL CURSOR FOR SELECT ");
    for (int c = 0; c < ncols; c++) {
        oids[c] = (uint32_t)strtoul(PQgetvalue(cols, c, 1), NULL, 10);
        is_key[c] = strcmp(PQgetvalue(cols, c, 2), "t") == 0;
        any_key = any_key || is_key[c];
        ds_buf_append_str(&sql, c ? ", t." : "t.");
        ds_buf_append_ident(&sql, PQgetvalue(cols, c, 0));
    }
    if (ncols == 0)
        ds_buf_append_str(&sql, "NULL");
    /* Oldest last write first: a merged target row ends with the newest source row's
     * values, as in apply (frozen rows, xmin 2, are the oldest of all). */
    ds_buf_appendf(&sql, " FROM %s AS t ORDER BY age(t.xmin) DESC, t.ctid", table.data);
    if (!run(v->source, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, "reading a legacy table",
             v->errstr, sizeof(v->errstr)))
        goto done;
    for (;;) {
        int n;

        if (!run(v->source, "FETCH " FETCH_ROWS " FROM ds_verify_rows", 0, NULL, PGRES_TUPLES_OK,
                 &rows, "reading a legacy table", v->errstr, sizeof(v->errstr)))
            goto done;
        n = PQntuples(rows);
        if (n == 0)
            break;
        for (int i = 0; i < n; i++) {
            char error[1024];
            bool rendered = true, mapped, first = true;
            ds_write_list_t writes;

            v->files[file].rows++;
            ds_buf_reset(&value);
            ds_buf_reset(&key);
            ds_buf_append_str(&value, "{\"op\":\"r\",\"before\":null,\"after\":{");
            ds_buf_append_char(&key, '{');
            for (int c = 0; c < ncols && rendered; c++) {
                const char *name = PQgetvalue(cols, c, 0);

                ds_buf_append_str(&value, c ? "," : "");
                ds_buf_append_json_string(&value, name, strlen(name));
                ds_buf_append_char(&value, ':');
                rendered = render_value(&value, rows, i, c, oids[c], error, sizeof(error));
                if (rendered && is_key[c]) {
                    ds_buf_append_str(&key, first ? "" : ",");
                    first = false;
                    ds_buf_append_json_string(&key, name, strlen(name));
                    ds_buf_append_char(&key, ':');
                    rendered = render_value(&key, rows, i, c, oids[c], error, sizeof(error));
                }
            }
            ds_buf_append_str(&value, "}}");
            ds_buf_append_char(&key, '}');
            if (!rendered) {
                /* Capture would stop on such a value; apply never sees the row. */
                v->files[file].dead++;
                if (!v->files[file].first_error) {
                    v->files[file].first_error = xstrdup(error);
                    v->files[file].first_key = xstrdup(any_key ? key.data : "null");
                }
                continue;
            }
            if (!map_change(v, file, shape->topic, any_key ? key.data : NULL, value.data, &writes,
                            &mapped))
                goto done;
            if (mapped)
                chunk_add(v, any_key ? key.data : NULL, value.data, &writes);
        }
        if (!write_chunk(v))
            goto done;
        PQclear(rows);
        rows = NULL;
    }
    if (!run(v->source, "CLOSE ds_verify_rows", 0, NULL, PGRES_COMMAND_OK, NULL,
             "reading a legacy table", v->errstr, sizeof(v->errstr)))
        goto done;
    ok = true;
done:
    if (!ok && v->errstr[0]) {
        char copy[sizeof(v->errstr)];

        snprintf(copy, sizeof(copy), "%s", v->errstr);
        ds_fail(v->errstr, sizeof(v->errstr), "%s (legacy table %s)", copy, table.data);
    }
    PQclear(cols);
    PQclear(rows);
    free(oids);
    free(is_key);
    ds_buf_free(&table);
    ds_buf_free(&sql);
    ds_buf_free(&value);
    ds_buf_free(&key);
    return ok;
}

/* Writes that waited for a parent, again and again while some get through (apply retries
 * dualsync.pending after every batch). What still waits stays out of the shadow, as it
 * stays out of the target. */
static bool retry_pending(verify_t *v)
{
    bool progress = true;

    while (progress && v->pending) {
        vpending_t **pp = &v->pending;

        progress = false;
        while (*pp) {
            vpending_t *p = *pp;
            const ds_target_write_t *w = NULL;
            ds_write_list_t writes;
            json_t *json = json_loads(p->value, 0, NULL);
            char error[1024];
            bool drop = false;
            int db = v->targets[p->target].db;

            if (json &&
                ds_mapping_eval(v->set, v->targets[p->target].shape.topic, p->key,
                                p->key ? strlen(p->key) : 0, json, &writes, error, sizeof(error))) {
                for (int i = 0; i < writes.nwrites && !w; i++) {
                    if (ds_target_is(writes.writes[i].target, v->targets[p->target].pub) &&
                        writes.writes[i].kind == DS_WRITE_UPSERT)
                        w = &writes.writes[i];
                }
            }
            if (w) {
                if (!simple(v, db, "SAVEPOINT ds_verify_change")) {
                    json_decref(json);
                    return false;
                }
                wr_t wr = exec_write(v, w, p->target, error, sizeof(error));

                switch (wr) {
                case WR_APPLIED:
                    drop = true;
                    break;
                case WR_WAITS:
                    break;
                case WR_FAILED:
                    v->targets[p->target].failed++;
                    if (!v->targets[p->target].first_error)
                        v->targets[p->target].first_error = xstrdup(error);
                    drop = true;
                    break;
                case WR_LOST:
                    json_decref(json);
                    return false;
                }
                if (!simple(v, db,
                            wr == WR_APPLIED ? "RELEASE SAVEPOINT ds_verify_change"
                                             : "ROLLBACK TO SAVEPOINT ds_verify_change")) {
                    json_decref(json);
                    return false;
                }
            } else {
                drop = true; /* cannot happen: it mapped before */
            }
            json_decref(json);
            if (drop) {
                *pp = p->next;
                free(p->key);
                free(p->value);
                free(p);
                progress = true;
            } else {
                pp = &p->next;
            }
        }
        /* The tail pointer must follow the list's last element. */
        v->pending_tail = &v->pending;
        while (*v->pending_tail)
            v->pending_tail = &(*v->pending_tail)->next;
    }
    for (vpending_t *p = v->pending; p; p = p->next) {
        diff_t *d = &v->targets[p->target].waiting;

        v->targets[p->target].pending++;
        /* A count alone says nothing of which rows wait; the first keys, in arrival order. */
        d->count++;
        if (d->nkeys < SAMPLES)
            d->keys[d->nkeys++] = xstrdup(p->key ? p->key : "null");
    }
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * 3. Comparing
 * ------------------------------------------------------------------------------------------- */

/* json_build_array(a."k1"::text, ...)::text */
static void append_key_text(ds_buf_t *buf, const verify_t *v, int ti, const char *alias)
{
    ds_buf_append_str(buf, "json_build_array(");
    for (int k = 0; k < v->targets[ti].shape.nkey; k++) {
        ds_buf_appendf(buf, "%s%s.", k ? ", " : "", alias);
        ds_buf_append_ident(buf, ds_mapping_target_key(v->set, ti, k));
        ds_buf_append_str(buf, "::text");
    }
    ds_buf_append_str(buf, ")::text");
}

/* s."k1" = r."k1" AND ... */
static void append_key_join(ds_buf_t *buf, const verify_t *v, int ti)
{
    for (int k = 0; k < v->targets[ti].shape.nkey; k++) {
        const char *name = ds_mapping_target_key(v->set, ti, k);

        ds_buf_append_str(buf, k ? " AND s." : "s.");
        ds_buf_append_ident(buf, name);
        ds_buf_append_str(buf, " = r.");
        ds_buf_append_ident(buf, name);
    }
}

/* Counts the rows of "SELECT key FROM @p from_where" and keeps the first SAMPLES keys. */
static bool diff_query(verify_t *v, int ti, const char *alias, const char *from_where, diff_t *d)
{
    ds_buf_t sql = DS_BUF_INIT;
    PGresult *r;
    bool ok;

    ds_buf_append_str(&sql, "SELECT k, count(*) OVER () FROM (SELECT ");
    append_key_text(&sql, v, ti, alias);
    ds_buf_appendf(&sql, " AS k FROM %s) AS d ORDER BY k LIMIT %d", from_where, SAMPLES);
    ok = run(v->dbs[v->targets[ti].db].conn, sql.data, 0, NULL, PGRES_TUPLES_OK, &r,
             "comparing a target with its shadow", v->errstr, sizeof(v->errstr));
    ds_buf_free(&sql);
    if (!ok)
        return false;
    d->count = PQntuples(r) > 0 ? strtol(PQgetvalue(r, 0, 1), NULL, 10) : 0;
    for (int i = 0; i < PQntuples(r) && i < SAMPLES; i++)
        d->keys[d->nkeys++] = xstrdup(PQgetvalue(r, i, 0));
    PQclear(r);
    return true;
}

static bool count_query(verify_t *v, int ti, const char *sql, long *out)
{
    PGresult *r;

    if (!run(v->dbs[v->targets[ti].db].conn, sql, 0, NULL, PGRES_TUPLES_OK, &r, "counting rows",
             v->errstr, sizeof(v->errstr)))
        return false;
    *out = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return true;
}

/* The key and mapped columns of target @p ti: "a.k1, a.c1, ..." */
static void append_columns(ds_buf_t *buf, const verify_t *v, int ti, const char *alias)
{
    for (int c = 0; c < v->targets[ti].shape.ncolumns; c++) {
        ds_buf_appendf(buf, "%s%s.", c ? ", " : "", alias);
        ds_buf_append_ident(buf, ds_mapping_target_column(v->set, ti, c, NULL));
    }
}

/*
 * A fan-out target's key matches many rows, so rows cannot be paired by it: the shadow and
 * the table are compared as multisets of (key, mapped columns). A row with a wrong value
 * counts as one missing (the value it should have) and one extra (the value it has); the
 * samples are their keys.
 */
static bool compare_fan_out(verify_t *v, int ti, const char *shadow, const char *real)
{
    vtarget_t *t = &v->targets[ti];
    ds_buf_t q = DS_BUF_INIT, cols_s = DS_BUF_INIT, cols_r = DS_BUF_INIT;
    bool ok;

    append_columns(&cols_s, v, ti, "s");
    append_columns(&cols_r, v, ti, "r");
    ds_buf_appendf(&q, "(SELECT %s FROM %s AS s EXCEPT ALL SELECT %s FROM %s AS r) AS s",
                   cols_s.data, shadow, cols_r.data, real);
    ok = diff_query(v, ti, "s", q.data, &t->missing);
    ds_buf_reset(&q);
    ds_buf_appendf(&q, "(SELECT %s FROM %s AS r EXCEPT ALL SELECT %s FROM %s AS s) AS r",
                   cols_r.data, real, cols_s.data, shadow);
    ok = ok && diff_query(v, ti, "r", q.data, &t->extra);
    ds_buf_free(&q);
    ds_buf_free(&cols_s);
    ds_buf_free(&cols_r);
    return ok;
}

static bool compare_target(verify_t *v, int ti)
{
    vtarget_t *t = &v->targets[ti];
    const char *shadow = v->shadows[t->shadow].name;
    ds_buf_t real = DS_BUF_INIT, q = DS_BUF_INIT, kept_cond = DS_BUF_INIT;
    bool ok = false;
    int nvalue = 0;

    quote_qualified(&real, t->shape.schema, t->shape.table);
    /* Rows no source produces that on_delete leaves behind on purpose. */
    if (t->shape.on_delete_ignore) {
        ds_buf_append_str(&kept_cond, "true");
    } else if (t->shape.soft_column) {
        ds_buf_append_str(&kept_cond, "r.");
        ds_buf_append_ident(&kept_cond, t->shape.soft_column);
        ds_buf_append_str(&kept_cond, " IS NOT NULL");
    } else {
        ds_buf_append_str(&kept_cond, "false");
    }

    ds_buf_appendf(&q, "SELECT count(*) FROM %s", shadow);
    if (!count_query(v, ti, q.data, &t->expected))
        goto done;
    ds_buf_reset(&q);
    ds_buf_appendf(&q, "SELECT count(*) FROM %s", real.data);
    if (!count_query(v, ti, q.data, &t->present))
        goto done;
    if (t->pub->fan_out) {
        ok = compare_fan_out(v, ti, shadow, real.data);
        goto done;
    }

    ds_buf_reset(&q);
    ds_buf_appendf(&q, "%s AS s WHERE NOT EXISTS (SELECT 1 FROM %s AS r WHERE ", shadow, real.data);
    append_key_join(&q, v, ti);
    ds_buf_append_char(&q, ')');
    if (!diff_query(v, ti, "s", q.data, &t->missing))
        goto done;

    ds_buf_reset(&q);
    ds_buf_appendf(&q, "%s AS r WHERE NOT (%s) AND NOT EXISTS (SELECT 1 FROM %s AS s WHERE ",
                   real.data, kept_cond.data, shadow);
    append_key_join(&q, v, ti);
    ds_buf_append_char(&q, ')');
    if (!diff_query(v, ti, "r", q.data, &t->extra))
        goto done;


    ds_buf_reset(&q);
    ds_buf_appendf(&q, "%s AS s JOIN %s AS r ON ", shadow, real.data);
    append_key_join(&q, v, ti);
    ds_buf_append_str(&q, " WHERE ROW(");
    for (int side = 0; side < 2; side++) {
        int n = 0;

        for (int c = 0; c < t->shape.ncolumns; c++) {
            bool is_key;
            const char *name = ds_mapping_target_column(v->set, ti, c, &is_key);

            if (is_key)
                continue;
            ds_buf_appendf(&q, "%s%s.", n++ ? ", " : "", side ? "r" : "s");
            ds_buf_append_ident(&q, name);
        }
        nvalue = n;
        ds_buf_append_str(&q, side ? ")" : ") IS DISTINCT FROM ROW(");
    }
    if (nvalue > 0 && !diff_query(v, ti, "s", q.data, &t->different))
        goto done;
    ok = true;
done:
    if (!ok) {
        char copy[sizeof(v->errstr)];

        snprintf(copy, sizeof(copy), "%s", v->errstr);
        ds_fail(v->errstr, sizeof(v->errstr), "target %s: %s", t->pub->id, copy);
    }
    ds_buf_free(&real);
    ds_buf_free(&q);
    ds_buf_free(&kept_cond);
    return ok;
}

/* ---------------------------------------------------------------------------------------------
 * Reports
 * ------------------------------------------------------------------------------------------- */

static long dead_letters(const verify_t *v, const vtarget_t *t)
{
    return v->files[t->shape.file_index].dead + t->failed;
}

static bool target_matches(const vtarget_t *t)
{
    return t->missing.count == 0 && t->extra.count == 0 && t->different.count == 0;
}

static json_t *diff_json(const diff_t *d)
{
    json_t *keys = json_array();

    for (int i = 0; i < d->nkeys; i++) {
        json_t *k = json_loads(d->keys[i], JSON_DECODE_ANY, NULL);

        json_array_append_new(keys, k ? k : json_string(d->keys[i]));
    }
    return keys;
}

static void report_json(const verify_t *v, bool match, FILE *out)
{
    json_t *doc = json_object(), *targets = json_array(), *files = json_array();

    json_object_set_new(doc, "match", json_boolean(match));
    json_object_set_new(doc, "source_lsn", json_string(v->lsn));
    json_object_set_new(doc, "dlq_messages",
                        v->dlq_messages < 0 ? json_null() : json_integer(v->dlq_messages));
    for (int i = 0; i < v->ntargets; i++) {
        const vtarget_t *t = &v->targets[i];
        json_t *o = json_object(), *samples = json_object();

        json_object_set_new(o, "target", json_string(t->pub->id));
        json_object_set_new(o, "database", json_string(t->pub->connection));
        json_object_set_new(o, "table", json_string(t->pub->table));
        json_object_set_new(o, "mode", json_string(t->pub->in_place ? "update" : "upsert"));
        json_object_set_new(o, "match", json_boolean(target_matches(t)));
        json_object_set_new(o, "expected", json_integer(t->expected));
        json_object_set_new(o, "present", json_integer(t->present));
        json_object_set_new(o, "missing", json_integer(t->missing.count));
        json_object_set_new(o, "extra", json_integer(t->extra.count));
        json_object_set_new(o, "different", json_integer(t->different.count));
        json_object_set_new(o, "kept", json_integer(t->kept));
        json_object_set_new(o, "dead_letters", json_integer(dead_letters(v, t)));
        json_object_set_new(o, "failed_writes", json_integer(t->failed));
        json_object_set_new(o, "pending", json_integer(t->pending));
        json_object_set_new(samples, "missing", diff_json(&t->missing));
        json_object_set_new(samples, "extra", diff_json(&t->extra));
        json_object_set_new(samples, "different", diff_json(&t->different));
        json_object_set_new(samples, "pending", diff_json(&t->waiting));
        json_object_set_new(o, "samples", samples);
        json_object_set_new(o, "first_write_error",
                            t->first_error ? json_string(t->first_error) : json_null());
        json_array_append_new(targets, o);
    }
    for (int f = 0; f < v->nfiles; f++) {
        json_t *o = json_object();
        const char *path = NULL;

        for (int i = 0; i < v->ntargets && !path; i++) {
            if (v->targets[i].shape.file_index == f)
                path = v->targets[i].shape.file;
        }
        json_object_set_new(o, "mapping", json_string(path ? path : ""));
        json_object_set_new(o, "rows", json_integer(v->files[f].rows));
        json_object_set_new(o, "dead_letters", json_integer(v->files[f].dead));
        json_object_set_new(o, "first_error",
                            v->files[f].first_error ? json_string(v->files[f].first_error)
                                                    : json_null());
        json_object_set_new(o, "first_error_key",
                            v->files[f].first_key ? json_string(v->files[f].first_key)
                                                  : json_null());
        json_array_append_new(files, o);
    }
    json_object_set_new(doc, "targets", targets);
    json_object_set_new(doc, "mappings", files);
    json_dumpf(doc, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', out);
    json_decref(doc);
}

static void print_samples(const char *kind, const diff_t *d, FILE *out)
{
    if (d->nkeys == 0)
        return;
    fprintf(out, "    %s:", kind);
    for (int i = 0; i < d->nkeys; i++)
        fprintf(out, " %s", d->keys[i]);
    if (d->count > d->nkeys)
        fprintf(out, " ... (%ld in all)", d->count);
    fputc('\n', out);
}

static void report_text(const verify_t *v, bool match, FILE *out)
{
    int width = (int)strlen("target");

    for (int i = 0; i < v->ntargets; i++) {
        int w = (int)strlen(v->targets[i].pub->id);
        width = w > width ? w : width;
    }
    fprintf(out, "source position %s applied in every target database\n\n", v->lsn);
    fprintf(out, "%-*s %9s %9s %8s %8s %10s %13s %8s\n", width, "target", "expected", "present",
            "missing", "extra", "different", "dead_letters", "pending");
    for (int i = 0; i < v->ntargets; i++) {
        const vtarget_t *t = &v->targets[i];

        fprintf(out, "%-*s %9ld %9ld %8ld %8ld %10ld %13ld %8ld%s\n", width, t->pub->id,
                t->expected, t->present, t->missing.count, t->extra.count, t->different.count,
                dead_letters(v, t), t->pending, target_matches(t) ? "" : "  DIFFERS");
        print_samples("missing", &t->missing, out);
        print_samples("extra", &t->extra, out);
        print_samples("different", &t->different, out);
        print_samples("pending (source keys)", &t->waiting, out);
        if (t->kept)
            fprintf(out, "    kept by on_delete: %ld rows no legacy row produces\n", t->kept);
        if (t->first_error)
            fprintf(out, "    first failed write: %s\n", t->first_error);
    }
    for (int f = 0; f < v->nfiles; f++) {
        if (v->files[f].dead == 0)
            continue;
        for (int i = 0; i < v->ntargets; i++) {
            if (v->targets[i].shape.file_index == f) {
                fprintf(out,
                        "\n%s: %ld of %ld legacy rows cannot be mapped (dead letters), "
                        "first: key %s: %s\n",
                        v->targets[i].shape.file, v->files[f].dead, v->files[f].rows,
                        v->files[f].first_key, v->files[f].first_error);
                break;
            }
        }
    }
    if (v->dlq_messages >= 0)
        fprintf(out, "\ndead-letter topic %s holds %" PRId64 " messages\n",
                v->config->apply_dlq_topic, v->dlq_messages);
    fprintf(out, "\n%s\n",
            match ? "every target is what the mappings give from the legacy tables"
                  : "some targets differ from what the mappings give from the legacy tables");
}

/* ---------------------------------------------------------------------------------------------
 * The run
 * ------------------------------------------------------------------------------------------- */

static void verify_free(verify_t *v)
{
    ds_mapping_set_free(v->set);
    PQfinish(v->source);
    for (int i = 0; i < v->ndbs; i++)
        PQfinish(v->dbs[i].conn);
    free(v->dbs);
    for (int i = 0; i < v->nshadows; i++) {
        free(v->shadows[i].name);
        for (int c = 0; c < v->shadows[i].ncolumns; c++)
            free(v->shadows[i].columns[c]);
        free(v->shadows[i].columns);
    }
    free(v->shadows);
    for (int i = 0; i < v->ntargets; i++) {
        diff_t *d[] = {&v->targets[i].missing, &v->targets[i].extra, &v->targets[i].different,
                       &v->targets[i].waiting};

        for (size_t j = 0; j < DS_ARRAY_LEN(d); j++) {
            for (int k = 0; k < d[j]->nkeys; k++)
                free(d[j]->keys[k]);
        }
        free(v->targets[i].first_error);
    }
    free(v->targets);
    for (int f = 0; f < v->nfiles; f++) {
        free(v->files[f].first_error);
        free(v->files[f].first_key);
    }
    free(v->files);
    while (v->pending) {
        vpending_t *p = v->pending;

        v->pending = p->next;
        free(p->key);
        free(p->value);
        free(p);
    }
    chunk_clear(v);
    free(v->chunk);
    ds_batchstmt_free(&v->args);
}

static bool setup(verify_t *v)
{
    const ds_config_t *config = v->config;
    const char **names = xcalloc((size_t)config->ntargets + 1, sizeof(char *));
    bool ok;

    for (int i = 0; i < config->ntargets; i++)
        names[i] = config->target_names[i];
    ok = ds_mapping_set_load((const char *const *)config->mappings, config->nmappings,
                             config->topic_prefix, names, &v->set, v->errstr, sizeof(v->errstr));
    free(names);
    if (!ok)
        return false;
    if (!ds_mapping_set_unavailable_value(v->set, config->unavailable_value_placeholder))
        return ds_fail(v->errstr, sizeof(v->errstr), "out of memory");
    v->nfiles = ds_mapping_set_nfiles(v->set);
    v->files = xcalloc((size_t)v->nfiles, sizeof(*v->files));
    plan_shadows(v);

    v->source = connect_db(config->source_conninfo, "the source database (source.conninfo)",
                           v->errstr, sizeof(v->errstr));
    if (!v->source)
        return false;
    for (int db = 0; db < v->ndbs; db++) {
        char what[256];

        snprintf(what, sizeof(what), "target database \"%s\"", v->dbs[db].name);
        v->dbs[db].conn = connect_db(ds_config_target_conninfo(config, v->dbs[db].name), what,
                                     v->errstr, sizeof(v->errstr));
        if (!v->dbs[db].conn)
            return false;
        /* The same checks apply makes before it starts: a missing table or column is
         * reported as a configuration problem, not as a difference. */
        if (!ds_mapping_set_check_catalog(v->set, v->dbs[db].name, v->dbs[db].conn, v->errstr,
                                          sizeof(v->errstr)))
            return false;
    }
    return true;
}

static bool rebuild(verify_t *v)
{
    ds_mapping_set_rename_tables(v->set, shadow_name, v, "pg_temp.ds_verify_links");
    if (!begin_targets(v))
        return false;
    /* One snapshot of every legacy table, read with capture's session settings. */
    if (!run(v->source,
             "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
             "SET LOCAL DateStyle = ISO; SET LOCAL IntervalStyle = iso_8601;"
             "SET LOCAL TimeZone = 'UTC'; SET LOCAL extra_float_digits = 3;"
             "SET LOCAL bytea_output = hex",
             0, NULL, PGRES_COMMAND_OK, NULL, "starting to read the legacy tables", v->errstr,
             sizeof(v->errstr)))
        return false;
    for (int f = 0; f < v->nfiles; f++) {
        for (int i = 0; i < v->ntargets; i++) {
            if (v->targets[i].shape.file_index == f) {
                if (!rebuild_file(v, f, &v->targets[i].shape))
                    return false;
                break;
            }
        }
    }
    return retry_pending(v);
}

int ds_verify_run(const ds_config_t *config, const ds_verify_options_t *options, FILE *out,
                  FILE *err)
{
    verify_t v = {.config = config, .opt = options, .err = err, .dlq_messages = -1};
    bool match = true;
    int status = DS_VERIFY_EXIT_SETUP;

    v.pending_tail = &v.pending;
    if (!setup(&v) || !catch_up(&v) || !rebuild(&v))
        goto done;
    for (int i = 0; i < v.ntargets; i++) {
        if (!compare_target(&v, i))
            goto done;
        match = match && target_matches(&v.targets[i]);
    }
    if (options->json)
        report_json(&v, match, out);
    else
        report_text(&v, match, out);
    status = match ? DS_VERIFY_EXIT_MATCH : DS_VERIFY_EXIT_DIFFERS;
done:
    if (status == DS_VERIFY_EXIT_SETUP)
        fprintf(err, "dualsync verify: %s\n", v.errstr);
    /* Nothing of the rebuild may stay: the shadows are temporary and the transactions are
     * rolled back (closing the connections would do it too; saying so is clearer). */
    for (int db = 0; db < v.ndbs; db++) {
        if (v.dbs && v.dbs[db].conn && PQtransactionStatus(v.dbs[db].conn) != PQTRANS_IDLE)
            PQclear(PQexec(v.dbs[db].conn, "ROLLBACK"));
    }
    if (v.source && PQtransactionStatus(v.source) != PQTRANS_IDLE)
        PQclear(PQexec(v.source, "ROLLBACK"));
    verify_free(&v);
    return status;
}
