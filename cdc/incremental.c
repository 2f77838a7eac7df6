/*
 * incremental.c: the incremental, watermark-based re-backfill of one table (incremental.h).
 *
 * Capture side: windows opened by LOW watermarks, the keys streamed while they are open, and
 * the chunk rows of HIGH watermarks turned into read events. Backfill side: the chunk loop,
 * the wait for the slot to confirm each chunk, and dualsync.backfill_state.
 *
 * Why a chunk row whose key changed inside its window is dropped: the chunk was read under a
 * snapshot taken after the LOW, so every change of that key committed before the snapshot is
 * already in the row, and every change committed after it is streamed before the HIGH; either
 * way the stream carries the key's latest state, and publishing the row at the HIGH would
 * put an older state after it (a deleted row would come back). A key the window did not see
 * change has the same value now as in the chunk, so its read event is exact.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "dualsync/backfill.h"
#include "dualsync/buf.h"
#include "dualsync/incremental.h"
#include "dualsync/log.h"
#include "dualsync/pgutil.h"
#include "dualsync/replication.h"
#include "dualsync/strset.h"
#include "dualsync/watermark_rows.h"

/* A HIGH message is built until it holds this much row data, even with rows left in the
 * chunk: logical decoding keeps the whole message in memory, and so does capture. */
#define HIGH_MAX_BYTES ((size_t)64 * 1024 * 1024)
/* How often the backfill process looks at the slot while waiting for a confirmation. */
#define CONFIRM_POLL_US 20000
/* Chunks in a row redone for slowness before the backfill gives up. */
#define MAX_REDO_IN_A_ROW 3

/* ---- capture side -------------------------------------------------------------------- */

/* One open window: a LOW seen, its HIGH not yet. */
typedef struct window {
    char *id;                       /* the backfill run that wrote the LOW */
    int64_t chunk;                  /* its chunk number */
    const ds_source_table_t *table; /* the catalog entry of the table (borrowed) */
    char *topic;                    /* the table's topic: streamed records are matched by it */
    int64_t low_ts_us;              /* the source's clock when the LOW was written */
    ds_lsn_t low_lsn;               /* where the LOW is in the WAL, for messages */
    uint64_t token;                 /* the hold capture keeps on the slot for it */
    ds_strset_t *keys;              /* keys (JSON) of the table's records streamed since */
    bool truncated;                 /* the table was truncated since: every chunk row is stale */
} window_t;

struct ds_incremental {
    char *slot;                         /* capture's slot: other slots' watermarks are ignored */
    const ds_source_catalog_t *catalog; /* capture's tables (borrowed) */
    char *topic_prefix;                 /* to name a window's topic as changes.c does */
    ds_changes_t *reader;               /* builds the read events (its own relation cache) */
    ds_incremental_hooks_t hooks;       /* hold/emit/release into capture's slot bookkeeping */
    window_t *windows;                  /* open windows, nwindows of them */
    size_t nwindows;
    uint32_t generation; /* bumped per HIGH: each brings its own column list */
    struct publishing *publishing; /* a HIGH whose rows are not all handed to Kafka yet */
};

static void publishing_free(struct publishing *pub);

ds_incremental_t *ds_incremental_new(const char *slot, const ds_source_catalog_t *catalog,
                                     const ds_changes_options_t *changes,
                                     const ds_incremental_hooks_t *hooks)
{
    ds_incremental_t *inc = calloc(1, sizeof(*inc));

    if (!inc)
        return NULL;
    inc->slot = strdup(slot);
    inc->topic_prefix = strdup(changes->topic_prefix);
    inc->reader = ds_changes_new(changes);
    inc->catalog = catalog;
    inc->hooks = *hooks;
    if (!inc->slot || !inc->topic_prefix || !inc->reader) {
        ds_incremental_free(inc);
        return NULL;
    }
    return inc;
}

static void window_clear(window_t *w)
{
    free(w->id);
    free(w->topic);
    ds_strset_free(w->keys);
    memset(w, 0, sizeof(*w));
}

void ds_incremental_free(ds_incremental_t *inc)
{
    if (!inc)
        return;
    publishing_free(inc->publishing);
    for (size_t i = 0; i < inc->nwindows; i++)
        window_clear(&inc->windows[i]);
    free(inc->windows);
    ds_changes_free(inc->reader);
    free(inc->slot);
    free(inc->topic_prefix);
    free(inc);
}

size_t ds_incremental_open_windows(const ds_incremental_t *inc)
{
    return inc->nwindows;
}

/* Closes window @i: releases the slot hold and forgets it. */
static void window_close(ds_incremental_t *inc, size_t i)
{
    inc->hooks.release(inc->hooks.ctx, inc->windows[i].token);
    window_clear(&inc->windows[i]);
    inc->windows[i] = inc->windows[--inc->nwindows];
}

bool ds_incremental_observe(ds_incremental_t *inc, const ds_change_record_t *rec, char *errstr,
                            size_t errstr_size)
{
    for (size_t i = 0; i < inc->nwindows; i++) {
        window_t *w = &inc->windows[i];

        if (strcmp(w->topic, rec->topic) != 0)
            continue;
        /* A truncate: every row the chunk holds may be gone. */
        if (rec->op == 't' || !rec->key) {
            w->truncated = true;
            continue;
        }
        if (!ds_strset_contains(w->keys, rec->key, rec->key_len) &&
            !ds_strset_add(w->keys, rec->key, rec->key_len))
            return ds_fail(errstr, errstr_size,
                           "out of memory recording the keys changed during a backfill chunk "
                           "of %s.%s",
                           w->table->schema, w->table->table);
    }
    return true;
}

void ds_incremental_clock(ds_incremental_t *inc, int64_t commit_time_us)
{
    char lsn[DS_LSN_STRLEN];

    for (size_t i = 0; i < inc->nwindows;) {
        window_t *w = &inc->windows[i];

        if (commit_time_us - w->low_ts_us <= DS_INCREMENTAL_WINDOW_TIMEOUT_US) {
            i++;
            continue;
        }
        ds_warning("backfill of %s.%s: chunk %" PRId64 " (low watermark at %s) has had no high "
                   "watermark for over %d s of committed changes; abandoning it so the slot can "
                   "move (its backfill process died or is stuck; a running one reads the chunk "
                   "again)",
                   w->table->schema, w->table->table, w->chunk, ds_lsn_format(w->low_lsn, lsn),
                   (int)(DS_INCREMENTAL_WINDOW_TIMEOUT_US / 1000000));
        window_close(inc, i);
    }
}

static const ds_source_table_t *catalog_table(const ds_source_catalog_t *catalog,
                                              const char *schema, const char *table)
{
    for (int i = 0; i < catalog->ntables; i++)
        if (strcmp(catalog->tables[i].schema, schema) == 0 &&
            strcmp(catalog->tables[i].table, table) == 0)
            return &catalog->tables[i];
    return NULL;
}

static bool open_window(ds_incremental_t *inc, const ds_source_table_t *table, const char *id,
                        int64_t chunk, int64_t ts_us, ds_lsn_t lsn, char *errstr,
                        size_t errstr_size)
{
    char text[DS_LSN_STRLEN];
    window_t *grown, *w;

    /* One backfill per table at a time (the backfill process holds a lock): a new LOW for a
     * table with an open window means the process that opened it is gone. */
    for (size_t i = 0; i < inc->nwindows; i++) {
        if (inc->windows[i].table == table) {
            ds_info("backfill of %s.%s: chunk %" PRId64 " of run %s was never finished; a new "
                    "run replaces it",
                    table->schema, table->table, inc->windows[i].chunk, inc->windows[i].id);
            window_close(inc, i);
            break;
        }
    }
    grown = realloc(inc->windows, (inc->nwindows + 1) * sizeof(*grown));
    if (!grown)
        return ds_fail(errstr, errstr_size, "out of memory opening a backfill window");
    inc->windows = grown;
    w = &inc->windows[inc->nwindows];
    memset(w, 0, sizeof(*w));
    w->id = strdup(id);
    w->keys = ds_strset_new();
    if (!w->id || !w->keys ||
        asprintf(&w->topic, "%s.%s.%s", inc->topic_prefix, table->schema, table->table) < 0) {
        w->topic = NULL;
        window_clear(w);
        return ds_fail(errstr, errstr_size, "out of memory opening a backfill window");
    }
    w->table = table;
    w->chunk = chunk;
    w->low_ts_us = ts_us;
    w->low_lsn = lsn;
    w->token = inc->hooks.hold(inc->hooks.ctx);
    inc->nwindows++;
    ds_debug("backfill of %s.%s: window of chunk %" PRId64 " opened at %s", table->schema,
             table->table, chunk, ds_lsn_format(lsn, text));
    return true;
}

/* What the emit trampoline needs: the window the rows belong to. */
typedef struct chunk_emit {
    ds_incremental_t *inc;
    window_t *window;
    int64_t published; /* rows handed to Kafka */
    int64_t dropped;   /* rows whose key changed within the window */
} chunk_emit_t;

/*
 * A HIGH being published. Its rows are handed to Kafka as they are read, and the reading
 * stops whenever capture says its in-flight limits are reached (hooks.full), to go on when
 * Kafka has acknowledged enough (ds_incremental_resume): without the stop, a chunk of
 * --chunk-size 65536 put all its read events in the producer's queue at once, whatever
 * capture.max_inflight_bytes said (capture only looks at its limits between WAL messages).
 */
typedef struct publishing {
    size_t window;              /* index of its window in inc->windows */
    json_t *doc;                /* the HIGH without its rows; owns the column names */
    ds_relation_t rel;          /* the columns of the HIGH */
    ds_tuple_t tuple;           /* the row being read (values point into rows) */
    ds_watermark_rows_t rows;   /* the reader over the rows */
    ds_changes_read_t read;     /* what the read events say of their origin */
    ds_lsn_t lsn;               /* the HIGH's position, for messages */
    int64_t now_us;             /* when the HIGH was received, for ts_ms */
    chunk_emit_t emit;          /* counts */
} publishing_t;

static bool emit_chunk_row(void *ctx, const ds_change_record_t *rec, char *errstr,
                           size_t errstr_size)
{
    chunk_emit_t *ce = ctx;

    if (ce->window->truncated ||
        (rec->key && ds_strset_contains(ce->window->keys, rec->key, rec->key_len))) {
        ce->dropped++;
        return true;
    }
    ce->published++;
    return ce->inc->hooks.emit(ce->inc->hooks.ctx, ce->window->token, rec, errstr, errstr_size);
}

/* Fills @rel from the HIGH's "columns": [[name, type_oid, typmod, is_key], ...]. */
static bool parse_columns(json_t *columns, ds_relation_t *rel, char *errstr, size_t errstr_size)
{
    size_t n = json_is_array(columns) ? json_array_size(columns) : 0;

    if (n == 0 || n > 1600)
        return ds_fail(errstr, errstr_size, "\"columns\" is not an array of 1 to 1600 columns");
    rel->columns = calloc(n, sizeof(ds_column_t));
    if (!rel->columns)
        return ds_fail(errstr, errstr_size, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(columns, i);
        json_t *name = json_array_get(c, 0), *oid = json_array_get(c, 1);
        json_t *typmod = json_array_get(c, 2), *key = json_array_get(c, 3);

        if (!json_is_array(c) || !json_is_string(name) || !json_is_integer(oid) ||
            !json_is_integer(typmod) || !json_is_boolean(key))
            return ds_fail(errstr, errstr_size,
                           "column %zu is not [name, type oid, typmod, is key]", i);
        rel->columns[i].name = (char *)json_string_value(name); /* borrowed from the JSON */
        rel->columns[i].type_oid = (uint32_t)json_integer_value(oid);
        rel->columns[i].typmod = (int32_t)json_integer_value(typmod);
        rel->columns[i].is_key = json_is_true(key);
        rel->ncolumns++;
    }
    return true;
}

static void publishing_free(struct publishing *pub)
{
    if (!pub)
        return;
    ds_watermark_rows_close(&pub->rows);
    free(pub->tuple.values);
    free(pub->rel.columns);
    json_decref(pub->doc);
    free(pub);
}

/* Publishes rows of inc->publishing until they are all handed over (the window is then
 * closed and the publishing freed) or capture's in-flight limits are reached. */
static bool publish_rows(ds_incremental_t *inc, char *errstr, size_t errstr_size)
{
    publishing_t *pub = inc->publishing;
    window_t *w = &inc->windows[pub->window];
    char why[256], lsn[DS_LSN_STRLEN];
    int got;

    for (;;) {
        if (inc->hooks.full && inc->hooks.full(inc->hooks.ctx))
            return true; /* ds_incremental_resume goes on */
        got = ds_watermark_rows_next(&pub->rows, pub->tuple.values, pub->rel.ncolumns, why,
                                     sizeof(why));
        if (got <= 0)
            break;
        if (!ds_changes_read_row(inc->reader, &pub->rel, &pub->tuple, &pub->read, pub->now_us,
                                 emit_chunk_row, &pub->emit, errstr, errstr_size))
            return false;
    }
    if (got < 0)
        /* Not fatal for capture (see start_publishing); the rows before it are published,
         * which is harmless: they are exact read events. */
        ds_error("backfill of %s.%s: the high watermark of chunk %" PRId64 " at %s is "
                 "malformed (%s); its rows from there on are not published: run dualsync "
                 "backfill --restart for this table",
                 w->table->schema, w->table->table, w->chunk, ds_lsn_format(pub->lsn, lsn), why);
    else if (pub->emit.dropped > 0)
        ds_info("backfill of %s.%s: chunk %" PRId64 ": %" PRId64 " rows published, %" PRId64
                " dropped (changed while the chunk was read: the stream carries their newer "
                "state)",
                w->table->schema, w->table->table, w->chunk, pub->emit.published,
                pub->emit.dropped);
    else
        ds_debug("backfill of %s.%s: chunk %" PRId64 ": %" PRId64 " rows published",
                 w->table->schema, w->table->table, w->chunk, pub->emit.published);
    inc->publishing = NULL;
    publishing_free(pub);
    window_close(inc, (size_t)(w - inc->windows));
    return true;
}

static bool start_publishing(ds_incremental_t *inc, size_t wi, json_t *doc,
                             const char *rows_text, size_t rows_len, const ds_pgoutput_msg_t *msg,
                             uint32_t xid, int64_t now_us, char *errstr, size_t errstr_size)
{
    window_t *w = &inc->windows[wi];
    json_t *relid = json_object_get(doc, "relid");
    publishing_t *pub = calloc(1, sizeof(*pub));
    char why[256], lsn[DS_LSN_STRLEN];

    if (!pub)
        return ds_fail(errstr, errstr_size, "out of memory publishing a backfill chunk");
    pub->window = wi;
    pub->doc = json_incref(doc);
    pub->lsn = msg->u.message.lsn;
    pub->now_us = now_us;
    pub->read = (ds_changes_read_t){.snapshot = "incremental", .lsn = pub->lsn, .xid = xid};
    pub->emit = (chunk_emit_t){.inc = inc, .window = w};
    pub->rel.schema = w->table->schema;
    pub->rel.table = w->table->table;
    pub->rel.replident = w->table->replident;
    pub->rel.relid = json_is_integer(relid) ? (uint32_t)json_integer_value(relid) : 0;
    /* Each HIGH brings its column list: a new generation makes the builder recompute the
     * key mask instead of trusting one cached for another list. */
    if (++inc->generation == 0)
        inc->generation = 1;
    pub->rel.generation = inc->generation;
    if (pub->rel.relid == 0 || !rows_text) {
        snprintf(why, sizeof(why), "no \"relid\" or \"rows\"");
        goto malformed;
    }
    if (!parse_columns(json_object_get(doc, "columns"), &pub->rel, why, sizeof(why)))
        goto malformed;
    pub->tuple.nvalues = pub->rel.ncolumns;
    pub->tuple.values = calloc((size_t)pub->rel.ncolumns, sizeof(ds_value_t));
    if (!pub->tuple.values) {
        publishing_free(pub);
        return ds_fail(errstr, errstr_size, "out of memory publishing a backfill chunk");
    }
    if (!ds_watermark_rows_open(&pub->rows, rows_text, rows_len, why, sizeof(why)))
        goto malformed;
    inc->publishing = pub;
    return publish_rows(inc, errstr, errstr_size);

malformed:
    /* Not fatal for capture: the message sits in the WAL, and failing on it would stop the
     * pipeline at every restart. The backfill process waits for a confirmation that then
     * comes without its rows, so say loudly what happened. */
    ds_error("backfill of %s.%s: the high watermark of chunk %" PRId64 " at %s is malformed (%s); "
             "its rows are not published: run dualsync backfill --restart for this table",
             w->table->schema, w->table->table, w->chunk, ds_lsn_format(pub->lsn, lsn), why);
    publishing_free(pub);
    window_close(inc, wi);
    return true;
}

bool ds_incremental_publishing(const ds_incremental_t *inc)
{
    return inc->publishing != NULL;
}

bool ds_incremental_resume(ds_incremental_t *inc, char *errstr, size_t errstr_size)
{
    return !inc->publishing || publish_rows(inc, errstr, errstr_size);
}

/* Parses a watermark. A HIGH's rows are left out of the JSON tree (watermark_rows.h): the
 * document jansson parses is the message with the value of "rows" replaced by [], and
 * *rows_text, *rows_len give that value's text. Without a "rows" member, the message is
 * parsed whole and *rows_text is NULL. */
static json_t *parse_watermark(const char *content, size_t len, const char **rows_text,
                               size_t *rows_len, json_error_t *jerr)
{
    size_t start, end;
    char *head;
    json_t *doc;

    *rows_text = NULL;
    *rows_len = 0;
    if (!ds_watermark_rows_find(content, len, &start, &end))
        return json_loadb(content, len, JSON_REJECT_DUPLICATES, jerr);
    head = malloc(start + 2 + (len - end));
    if (!head) {
        snprintf(jerr->text, sizeof(jerr->text), "out of memory");
        return NULL;
    }
    memcpy(head, content, start);
    memcpy(head + start, "[]", 2);
    memcpy(head + start + 2, content + end, len - end);
    /* Duplicates refused: a second "rows" must not hide behind the placeholder. */
    doc = json_loadb(head, start + 2 + (len - end), JSON_REJECT_DUPLICATES, jerr);
    free(head);
    if (doc) {
        *rows_text = content + start;
        *rows_len = end - start;
    }
    return doc;
}

bool ds_incremental_message(ds_incremental_t *inc, const ds_pgoutput_msg_t *msg, uint32_t xid,
                            int64_t now_us, char *errstr, size_t errstr_size)
{
    const ds_source_table_t *table;
    json_t *doc;
    json_error_t jerr;
    const char *kind, *slot, *id, *schema, *name, *rows_text;
    size_t rows_len;
    int64_t chunk;
    char lsn[DS_LSN_STRLEN];
    bool ok = true;

    if (msg->type != DS_PGOUTPUT_MESSAGE)
        return true;
    if (strcmp(msg->u.message.prefix, DS_INCREMENTAL_PREFIX) != 0) {
        ds_debug("ignoring a logical decoding message with prefix \"%s\" at %s",
                 msg->u.message.prefix, ds_lsn_format(msg->u.message.lsn, lsn));
        return true;
    }
    doc = parse_watermark(msg->u.message.content, msg->u.message.content_len, &rows_text,
                          &rows_len, &jerr);
    kind = json_string_value(json_object_get(doc, "watermark"));
    slot = json_string_value(json_object_get(doc, "slot"));
    id = json_string_value(json_object_get(doc, "id"));
    schema = json_string_value(json_object_get(doc, "schema"));
    name = json_string_value(json_object_get(doc, "table"));
    chunk = json_integer_value(json_object_get(doc, "chunk"));
    if (!kind || !slot || !id || !schema || !name) {
        ds_warning("ignoring a \"%s\" message at %s that is not a backfill watermark: %s",
                   DS_INCREMENTAL_PREFIX, ds_lsn_format(msg->u.message.lsn, lsn),
                   doc ? "fields missing" : jerr.text);
        goto done;
    }
    /* Other pipelines on the same database see these messages too. */
    if (strcmp(slot, inc->slot) != 0)
        goto done;
    table = catalog_table(inc->catalog, schema, name);
    if (!table) {
        ds_debug("ignoring a backfill watermark of %s.%s, which this capture does not publish",
                 schema, name);
        goto done;
    }
    if (strcmp(kind, "low") == 0) {
        ok = open_window(inc, table, id, chunk, json_integer_value(json_object_get(doc, "ts")),
                         msg->u.message.lsn, errstr, errstr_size);
        goto done;
    }
    if (strcmp(kind, "high") != 0) {
        ds_warning("ignoring a backfill watermark of kind \"%s\" at %s", kind,
                   ds_lsn_format(msg->u.message.lsn, lsn));
        goto done;
    }
    for (size_t i = 0; i < inc->nwindows; i++) {
        if (inc->windows[i].table == table && inc->windows[i].chunk == chunk &&
            strcmp(inc->windows[i].id, id) == 0) {
            ok = start_publishing(inc, i, doc, rows_text, rows_len, msg, xid, now_us,
                                  errstr, errstr_size);
            goto done;
        }
    }
    /* Its LOW came before where this session started (or the window was abandoned): the
     * changes streamed in between are unknown, so any row may be stale. */
    ds_info("backfill of %s.%s: chunk %" PRId64 " at %s has no open window (its low watermark "
            "came before this capture's start point); dropped: the backfill reads it again",
            schema, name, chunk, ds_lsn_format(msg->u.message.lsn, lsn));
done:
    json_decref(doc);
    return ok;
}

/* ---- the backfill process ------------------------------------------------------------ */

#define STATE_TABLE_SQL                                                                            \
    "SET LOCAL client_min_messages = warning;"                                                     \
    "CREATE SCHEMA IF NOT EXISTS dualsync;"                                                        \
    "CREATE TABLE IF NOT EXISTS dualsync.backfill_state ("                                         \
    " slot_name text NOT NULL,"                                                                    \
    " table_name text NOT NULL,"                                                                   \
    " last_key text,"                                                                              \
    " rows_done bigint NOT NULL DEFAULT 0,"                                                        \
    " rows_total bigint,"                                                                          \
    " started_at timestamptz NOT NULL,"                                                            \
    " updated_at timestamptz NOT NULL,"                                                            \
    " completed_at timestamptz,"                                                                   \
    " PRIMARY KEY (slot_name, table_name));"                                                       \
    "COMMENT ON TABLE dualsync.backfill_state IS 'dualsync backfill --table: per slot and table, " \
    "the last primary key (a JSON array of its text values) whose chunk capture published; an "    \
    "unfinished run resumes after it'"

/* What the backfill process works with. */
typedef struct run {
    const ds_incremental_options_t *opt;
    PGconn *conn; /* the one SQL connection: chunks, watermarks, state */
    char *schema; /* the table's names, unquoted */
    char *table;
    char *qualified;          /* "schema.table" as dualsync.backfill_state names it */
    uint32_t relid;           /* its pg_class OID */
    char replident;           /* its replica identity */
    char **pk;                /* primary key column names, NULL-terminated */
    char **pk_types;          /* their format_type(), for the parameter casts */
    int npk;                  /* primary key columns */
    int *pk_index;            /* their positions in desc.rel.columns */
    ds_backfill_table_t desc; /* the columns as pgoutput sends them */
    char *first_sql;          /* the first chunk: SELECT .. ORDER BY pk LIMIT n */
    char *next_sql;           /* later chunks: .. WHERE (pk) > ($1..) .. */
    ds_buf_t high_head;       /* the HIGH's JSON up to "chunk" (the same for every chunk) */
    char id[64];              /* this run, in the watermarks */
    char **last_key;          /* text values of the last finished key; NULL at the start */
    int64_t rows_done;        /* rows of finished chunks, earlier runs included */
    int64_t rows_total;       /* the estimate */
} run_t;

static PGresult *exec(run_t *r, const char *sql, int nparams, const char *const *params,
                      ExecStatusType expected, const char *what, char *errstr, size_t errstr_size)
{
    PGresult *res = PQexecParams(r->conn, sql, nparams, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(res) == expected)
        return res;
    ds_fail(errstr, errstr_size, "%s: %s", what, ds_pg_error(r->conn));
    PQclear(res);
    return NULL;
}

static bool exec_ok(run_t *r, const char *sql, int nparams, const char *const *params,
                    const char *what, char *errstr, size_t errstr_size)
{
    PGresult *res = exec(r, sql, nparams, params, PGRES_COMMAND_OK, what, errstr, errstr_size);

    PQclear(res);
    return res != NULL;
}

static void rollback(run_t *r)
{
    PQclear(PQexec(r->conn, "ROLLBACK"));
}

static void free_strv(char **v)
{
    if (v)
        for (char **p = v; *p; p++)
            free(*p);
    free(v);
}

static void run_free(run_t *r)
{
    PQfinish(r->conn);
    free(r->schema);
    free(r->table);
    free(r->qualified);
    free_strv(r->pk);
    free_strv(r->pk_types);
    free(r->pk_index);
    ds_backfill_table_clear(&r->desc);
    free(r->first_sql);
    free(r->next_sql);
    ds_buf_free(&r->high_head);
    free_strv(r->last_key);
}

/* The table must be one capture publishes: its watermarks would be ignored otherwise. */
static bool find_table(run_t *r, char *errstr, size_t errstr_size)
{
    const ds_config_t *config = r->opt->config;

    if (!ds_qualified_name_split(r->opt->table, &r->schema, &r->table))
        return ds_fail(errstr, errstr_size,
                       "--table \"%s\" is not a schema-qualified table name (schema.table)",
                       r->opt->table);
    for (int i = 0; i < config->ntables; i++) {
        char *schema = NULL, *table = NULL;
        bool same = ds_qualified_name_split(config->tables[i], &schema, &table) &&
                    strcmp(schema, r->schema) == 0 && strcmp(table, r->table) == 0;

        free(schema);
        free(table);
        if (same)
            return asprintf(&r->qualified, "%s.%s", r->schema, r->table) >= 0 ||
                   ds_fail(errstr, errstr_size, "out of memory");
    }
    return ds_fail(errstr, errstr_size,
                   "table %s.%s is not one of the tables capture publishes (source.tables in "
                   "%s); add it there and restart capture first, so its changes are streamed "
                   "while it is backfilled",
                   r->schema, r->table, config->path ? config->path : "the configuration");
}

static bool setup_session(run_t *r, char *errstr, size_t errstr_size)
{
    PGresult *res;
    bool utf8;

    /* Chunks and the waits between them may take long: no timeout may cut them; values must
     * come in the database's encoding, as pgoutput sends them. */
    res =
        exec(r,
             "SELECT pg_catalog.set_config('application_name', 'dualsync backfill', false),"
             " pg_catalog.set_config('statement_timeout', '0', false),"
             " pg_catalog.set_config('idle_in_transaction_session_timeout', '0', false),"
             " pg_catalog.set_config('synchronous_commit', 'on', false),"
             " pg_catalog.set_config('client_encoding', "
             "pg_catalog.current_setting('server_encoding'), false)",
             0, NULL, PGRES_TUPLES_OK, "cannot prepare the backfill session", errstr, errstr_size);
    if (!res)
        return false;
    utf8 = strcmp(PQgetvalue(res, 0, 4), "UTF8") == 0;
    if (!utf8)
        ds_fail(errstr, errstr_size,
                "the source database's encoding is %s: dualsync backfill carries rows in JSON "
                "watermarks and needs a UTF8 database",
                PQgetvalue(res, 0, 4));
    PQclear(res);
    return utf8;
}

/* The slot must exist (capture created it) and be a pgoutput slot of this database. */
static bool check_slot(run_t *r, char *errstr, size_t errstr_size)
{
    const char *slot = r->opt->config->slot;
    const char *params[1] = {slot};
    PGresult *res = exec(r,
                         "SELECT plugin, database = pg_catalog.current_database(), active "
                         "FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
                         1, params, PGRES_TUPLES_OK, "cannot look up the replication slot", errstr,
                         errstr_size);
    bool ok = false;

    if (!res)
        return false;
    if (PQntuples(res) == 0)
        ds_fail(errstr, errstr_size,
                "replication slot \"%s\" does not exist: start dualsync capture with this "
                "configuration first (dualsync backfill publishes through it)",
                slot);
    else if (strcmp(PQgetvalue(res, 0, 0), "pgoutput") != 0 ||
             strcmp(PQgetvalue(res, 0, 1), "t") != 0)
        ds_fail(errstr, errstr_size,
                "replication slot \"%s\" is not a pgoutput slot of this database: check "
                "source.slot and source.conninfo",
                slot);
    else
        ok = true;
    if (ok && strcmp(PQgetvalue(res, 0, 2), "t") != 0)
        ds_warning("no capture is streaming from slot \"%s\" now: each chunk waits up to %d ms "
                   "for one to publish it",
                   slot, r->opt->confirm_timeout_ms);
    PQclear(res);
    return ok;
}

/* OID, replica identity and primary key (in key order, with its types) of the table. */
static bool describe(run_t *r, char *errstr, size_t errstr_size)
{
    const char *params[2] = {r->schema, r->table};
    char relid[16];
    const char *pparams[1] = {relid};
    ds_source_table_t src;
    PGresult *res;
    int n;

    res = exec(r,
               "SELECT c.oid, c.relreplident FROM pg_catalog.pg_class c "
               "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
               "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
               2, params, PGRES_TUPLES_OK, "cannot look up the table", errstr, errstr_size);
    if (!res)
        return false;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ds_fail(errstr, errstr_size, "table %s.%s does not exist in the source database",
                       r->schema, r->table);
    }
    r->relid = (uint32_t)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
    r->replident = PQgetvalue(res, 0, 1)[0];
    PQclear(res);

    snprintf(relid, sizeof(relid), "%u", r->relid);
    res = exec(r,
               "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) "
               "FROM pg_catalog.pg_index i, "
               " LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
               "JOIN pg_catalog.pg_attribute a ON a.attnum = k.attnum "
               "WHERE i.indrelid = $1::oid AND i.indisprimary AND a.attrelid = i.indrelid "
               "ORDER BY k.ord",
               1, pparams, PGRES_TUPLES_OK, "cannot read the table's primary key", errstr,
               errstr_size);
    if (!res)
        return false;
    n = PQntuples(res);
    if (n == 0) {
        PQclear(res);
        return ds_fail(errstr, errstr_size,
                       "table %s.%s has no primary key: dualsync backfill reads a table in "
                       "primary-key order, chunk by chunk, and keys its rows by it (add a "
                       "primary key, or backfill it with a new slot and capture.snapshot_mode "
                       "\"initial\")",
                       r->schema, r->table);
    }
    r->npk = n;
    r->pk = calloc((size_t)n + 1, sizeof(char *));
    r->pk_types = calloc((size_t)n + 1, sizeof(char *));
    r->pk_index = calloc((size_t)n, sizeof(int));
    if (!r->pk || !r->pk_types || !r->pk_index) {
        PQclear(res);
        return ds_fail(errstr, errstr_size, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        r->pk[i] = strdup(PQgetvalue(res, i, 0));
        r->pk_types[i] = strdup(PQgetvalue(res, i, 1));
        if (!r->pk[i] || !r->pk_types[i]) {
            PQclear(res);
            return ds_fail(errstr, errstr_size, "out of memory");
        }
    }
    PQclear(res);

    /* The same column rules as the initial backfill: what pgoutput would send. */
    src.schema = r->schema;
    src.table = r->table;
    src.replident = r->replident;
    src.primary_key = r->pk;
    if (!ds_backfill_describe(r->conn, r->opt->config->publication, &src, &r->desc, errstr,
                              errstr_size))
        return false;
    for (int k = 0; k < n; k++) {
        r->pk_index[k] = -1;
        for (int i = 0; i < r->desc.rel.ncolumns; i++)
            if (strcmp(r->desc.rel.columns[i].name, r->pk[k]) == 0)
                r->pk_index[k] = i;
        if (r->pk_index[k] < 0)
            return ds_fail(errstr, errstr_size,
                           "primary key column \"%s\" of %s.%s is not among the columns "
                           "publication \"%s\" sends; publish every primary key column",
                           r->pk[k], r->schema, r->table, r->opt->config->publication);
    }
    return true;
}

/* The chunk queries: key order, the key compared as a row, values bound as parameters
 * (cast to the key's types, so any key type compares as itself, not as text). */
static bool build_sql(run_t *r, char *errstr, size_t errstr_size)
{
    ds_buf_t order = DS_BUF_INIT, sql = DS_BUF_INIT;

    ds_buf_append_str(&order, " ORDER BY ");
    for (int k = 0; k < r->npk; k++) {
        if (k)
            ds_buf_append_str(&order, ", ");
        ds_buf_append_ident(&order, r->pk[k]);
    }
    ds_buf_appendf(&order, " LIMIT %d", r->opt->chunk_size);

    ds_buf_appendf(&sql, "SELECT %s%s%s", r->desc.columns, r->desc.from, order.data);
    r->first_sql = strdup(sql.data);
    ds_buf_reset(&sql);
    ds_buf_appendf(&sql, "SELECT %s%s WHERE (", r->desc.columns, r->desc.from);
    for (int k = 0; k < r->npk; k++) {
        if (k)
            ds_buf_append_str(&sql, ", ");
        ds_buf_append_ident(&sql, r->pk[k]);
    }
    ds_buf_append_str(&sql, ") > (");
    for (int k = 0; k < r->npk; k++)
        ds_buf_appendf(&sql, "%s$%d::%s", k ? ", " : "", k + 1, r->pk_types[k]);
    ds_buf_appendf(&sql, ")%s", order.data);
    r->next_sql = strdup(sql.data);
    ds_buf_free(&sql);
    ds_buf_free(&order);
    if (!r->first_sql || !r->next_sql)
        return ds_fail(errstr, errstr_size, "out of memory");

    /* The part of every HIGH that does not change. */
    ds_buf_append_str(&r->high_head, "{\"watermark\":\"high\",\"slot\":");
    ds_buf_append_json_string(&r->high_head, r->opt->config->slot, strlen(r->opt->config->slot));
    ds_buf_append_str(&r->high_head, ",\"id\":");
    ds_buf_append_json_string(&r->high_head, r->id, strlen(r->id));
    ds_buf_append_str(&r->high_head, ",\"schema\":");
    ds_buf_append_json_string(&r->high_head, r->schema, strlen(r->schema));
    ds_buf_append_str(&r->high_head, ",\"table\":");
    ds_buf_append_json_string(&r->high_head, r->table, strlen(r->table));
    ds_buf_appendf(&r->high_head, ",\"relid\":%u,\"columns\":[", r->relid);
    for (int i = 0; i < r->desc.rel.ncolumns; i++) {
        const ds_column_t *col = &r->desc.rel.columns[i];

        ds_buf_append_str(&r->high_head, i ? ",[" : "[");
        ds_buf_append_json_string(&r->high_head, col->name, strlen(col->name));
        ds_buf_appendf(&r->high_head, ",%u,%d,%s]", col->type_oid, (int)col->typmod,
                       col->is_key ? "true" : "false");
    }
    ds_buf_append_str(&r->high_head, "]");
    return true;
}

/* Serialises on an advisory lock: two sessions may create the table at once, and IF NOT
 * EXISTS alone can still collide on the catalog's unique indexes. */
static bool create_state_table(run_t *r, char *errstr, size_t errstr_size)
{
    PGresult *res;

    if (!exec_ok(r, "BEGIN", 0, NULL, "cannot begin", errstr, errstr_size))
        return false;
    res = exec(
        r,
        "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('dualsync.backfill_state'))",
        0, NULL, PGRES_TUPLES_OK, "cannot lock dualsync.backfill_state", errstr, errstr_size);
    if (!res)
        goto fail;
    PQclear(res);
    /* Several statements: only the simple query protocol takes them. */
    res = PQexec(r->conn, STATE_TABLE_SQL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ds_fail(errstr, errstr_size,
                "cannot create dualsync.backfill_state in the source database, where dualsync "
                "backfill records its progress: %s (grant CREATE on the database, or create the "
                "schema dualsync with a table backfill_state the role may write)",
                ds_pg_error(r->conn));
        PQclear(res);
        goto fail;
    }
    PQclear(res);
    return exec_ok(r, "COMMIT", 0, NULL, "cannot commit dualsync.backfill_state", errstr,
                   errstr_size);
fail:
    rollback(r);
    return false;
}

/* Parses a recorded last key: a JSON array of npk strings. */
static bool parse_last_key(run_t *r, const char *text, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    bool ok = json_is_array(doc) && json_array_size(doc) == (size_t)r->npk;

    for (int k = 0; ok && k < r->npk; k++)
        ok = json_is_string(json_array_get(doc, (size_t)k));
    if (ok) {
        r->last_key = calloc((size_t)r->npk + 1, sizeof(char *));
        ok = r->last_key != NULL;
        for (int k = 0; ok && k < r->npk; k++)
            ok = (r->last_key[k] = strdup(json_string_value(json_array_get(doc, (size_t)k)))) !=
                 NULL;
    }
    json_decref(doc);
    if (!ok)
        return ds_fail(errstr, errstr_size,
                       "dualsync.backfill_state holds last_key %s for %s, which is not a JSON "
                       "array of the %d primary key values: run with --restart",
                       text, r->qualified, r->npk);
    return true;
}

/* Resumes an unfinished run, or records a new one. */
static bool load_state(run_t *r, ds_incremental_stats_t *stats, char *errstr, size_t errstr_size)
{
    const char *params[2] = {r->opt->config->slot, r->qualified};
    PGresult *res;
    bool resume;

    if (!create_state_table(r, errstr, errstr_size))
        return false;
    res = exec(r,
               "SELECT last_key, rows_done, completed_at IS NOT NULL FROM dualsync.backfill_state "
               "WHERE slot_name = $1 AND table_name = $2",
               2, params, PGRES_TUPLES_OK, "cannot read dualsync.backfill_state", errstr,
               errstr_size);
    if (!res)
        return false;
    resume = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 2), "f") == 0;
    if (resume && r->opt->restart) {
        ds_info("--restart: backfilling %s from its first row, not from where the unfinished "
                "run stopped",
                r->qualified);
        resume = false;
    }
    if (resume && !PQgetisnull(res, 0, 0)) {
        if (!parse_last_key(r, PQgetvalue(res, 0, 0), errstr, errstr_size)) {
            PQclear(res);
            return false;
        }
        r->rows_done = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        snprintf(stats->last_key, sizeof(stats->last_key), "%s", PQgetvalue(res, 0, 0));
        stats->resumed = true;
        ds_info("resuming the unfinished backfill of %s after key %s (%" PRId64 " rows done)",
                r->qualified, stats->last_key, r->rows_done);
    }
    PQclear(res);
    if (resume)
        return true;
    return exec_ok(r,
                   "INSERT INTO dualsync.backfill_state AS s (slot_name, table_name, started_at, "
                   "updated_at) VALUES ($1, $2, now(), now()) ON CONFLICT (slot_name, table_name) "
                   "DO UPDATE SET last_key = NULL, rows_done = 0, rows_total = NULL, "
                   "started_at = now(), updated_at = now(), completed_at = NULL",
                   2, params, "cannot write dualsync.backfill_state", errstr, errstr_size);
}

/* The planner's row count (of every partition of a partitioned table), else, for a table
 * never analysed, an exact count. */
static bool estimate_rows(run_t *r, char *errstr, size_t errstr_size)
{
    char relid[16];
    const char *params[1] = {relid};
    PGresult *res;
    ds_buf_t sql = DS_BUF_INIT;

    snprintf(relid, sizeof(relid), "%u", r->relid);
    res = exec(r,
               "SELECT coalesce(sum(c.reltuples), 0)::bigint, coalesce(bool_or(c.reltuples < 0), "
               "false) FROM pg_catalog.pg_class c WHERE c.relkind = 'r' AND (c.oid = $1::oid OR "
               "c.oid IN (SELECT relid FROM pg_catalog.pg_partition_tree($1::oid) WHERE isleaf))",
               1, params, PGRES_TUPLES_OK, "cannot estimate the table's rows", errstr, errstr_size);
    if (!res)
        return false;
    r->rows_total = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    if (strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
        /* Never analysed: no estimate; counting once is cheaper than a wrong ETA. */
        PQclear(res);
        ds_buf_appendf(&sql, "SELECT count(*)%s", r->desc.from);
        res = exec(r, sql.data, 0, NULL, PGRES_TUPLES_OK, "cannot count the table's rows", errstr,
                   errstr_size);
        ds_buf_free(&sql);
        if (!res)
            return false;
        r->rows_total = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    }
    PQclear(res);
    return true;
}

/* Appends the key of row @row of @res as a JSON array of its text values. */
static void append_key(run_t *r, ds_buf_t *out, const PGresult *res, int row)
{
    ds_buf_append_char(out, '[');
    for (int k = 0; k < r->npk; k++) {
        if (k)
            ds_buf_append_char(out, ',');
        ds_buf_append_json_string(out, PQgetvalue(res, row, r->pk_index[k]),
                                  (size_t)PQgetlength(res, row, r->pk_index[k]));
    }
    ds_buf_append_char(out, ']');
}

/* One chunk as read and emitted. */
typedef struct chunk {
    int64_t number;  /* 1, 2, .. within this run */
    int rows;        /* rows in its HIGH */
    bool last;       /* the table has no rows after it */
    ds_lsn_t high;   /* the HIGH message's LSN */
    ds_buf_t key;    /* the last row's key, JSON */
    char **key_text; /* the same, as text values for the next chunk's parameters */
    double seconds;  /* from before the LOW to after the COMMIT */
    size_t bytes;    /* its HIGH's size */
} chunk_t;

/*
 * A chunk takes two round trips to the server, each a pipeline of statements (libpq's
 * pipeline mode) that the server runs in order: one for the LOW and the chunk's read, one for
 * the HIGH and its commit. Sent one by one, the six statements cost six round trips, and on a
 * busy server every one of them waits to be scheduled: the backfill spent more time waiting
 * for replies than the server spent working.
 */

/* Sends one statement of a pipeline. */
static bool pipe_send(run_t *r, const char *sql, int nparams, const char *const *params,
                      const char *what, char *errstr, size_t errstr_size)
{
    if (PQsendQueryParams(r->conn, sql, nparams, NULL, params, NULL, NULL, 0))
        return true;
    return ds_fail(errstr, errstr_size, "%s: %s", what, ds_pg_error(r->conn));
}

/* Ends a pipeline's segment: the server commits an implicit transaction there, and the
 * statements sent so far go out. */
static bool pipe_sync(run_t *r, const char *what, char *errstr, size_t errstr_size)
{
    if (PQpipelineSync(r->conn))
        return true;
    return ds_fail(errstr, errstr_size, "%s: %s", what, ds_pg_error(r->conn));
}

/* The result of the next statement of the pipeline, if its status is @expected (NULL
 * otherwise, errstr saying why); the NULL that ends each statement's results is read too. */
static PGresult *pipe_result(run_t *r, ExecStatusType expected, const char *what, char *errstr,
                             size_t errstr_size)
{
    PGresult *res = PQgetResult(r->conn);

    if (PQresultStatus(res) != expected) {
        const char *message = res ? PQresultErrorMessage(res) : "";

        ds_fail(errstr, errstr_size, "%s: %s", what,
                message[0] ? message : ds_pg_error(r->conn));
        PQclear(res);
        return NULL;
    }
    PQclear(PQgetResult(r->conn));
    return res;
}

static bool pipe_ok(run_t *r, ExecStatusType expected, const char *what, char *errstr,
                    size_t errstr_size)
{
    PGresult *res = pipe_result(r, expected, what, errstr, errstr_size);

    PQclear(res);
    return res != NULL;
}

/* Reads a segment's end (PGRES_PIPELINE_SYNC, which is not followed by a NULL). */
static bool pipe_synced(run_t *r, char *errstr, size_t errstr_size)
{
    PGresult *res = PQgetResult(r->conn);
    bool ok = PQresultStatus(res) == PGRES_PIPELINE_SYNC;

    if (!ok)
        ds_fail(errstr, errstr_size, "the server did not end a pipeline as expected: %s",
                ds_pg_error(r->conn));
    PQclear(res);
    return ok;
}

/* Leaves pipeline mode, after an error reading what is still to come: every result up to the
 * last of the @syncs segment ends sent, and a transaction an error left open is rolled back
 * (the process then fails; this only leaves the connection usable). */
static void pipe_leave(run_t *r, int syncs)
{
    while (syncs > 0 && PQstatus(r->conn) == CONNECTION_OK) {
        PGresult *res = PQgetResult(r->conn);

        if (!res)
            continue;
        if (PQresultStatus(res) == PGRES_PIPELINE_SYNC)
            syncs--;
        PQclear(res);
    }
    PQexitPipelineMode(r->conn);
    if (PQtransactionStatus(r->conn) == PQTRANS_INERROR ||
        PQtransactionStatus(r->conn) == PQTRANS_INTRANS)
        rollback(r);
}

/* The LOW, and the chunk read after it under a REPEATABLE READ snapshot: the rows, in
 * *rows, with the chunk's transaction left open for the HIGH. */
static bool read_chunk(run_t *r, int64_t number, PGresult **rows, char *errstr,
                       size_t errstr_size)
{
    ds_buf_t low = DS_BUF_INIT;
    const char *params[1];
    int syncs = 0;
    bool ok = false;

    *rows = NULL;
    ds_buf_append_str(&low, "{\"watermark\":\"low\",\"slot\":");
    ds_buf_append_json_string(&low, r->opt->config->slot, strlen(r->opt->config->slot));
    ds_buf_append_str(&low, ",\"id\":");
    ds_buf_append_json_string(&low, r->id, strlen(r->id));
    ds_buf_append_str(&low, ",\"schema\":");
    ds_buf_append_json_string(&low, r->schema, strlen(r->schema));
    ds_buf_append_str(&low, ",\"table\":");
    ds_buf_append_json_string(&low, r->table, strlen(r->table));
    ds_buf_appendf(&low, ",\"chunk\":%" PRId64, number);
    params[0] = low.data;
    if (!PQenterPipelineMode(r->conn)) {
        ds_fail(errstr, errstr_size, "cannot send the chunk's statements: %s",
                ds_pg_error(r->conn));
        goto done;
    }
    /*
     * The LOW is non-transactional: decoded at its own place in the WAL, ahead of every
     * transaction that commits after it. Stamped with the source's clock, the one capture
     * compares with commit times.
     *
     * A transaction whose commit record precedes the LOW but is still flushing it when the
     * chunk's snapshot is taken would be neither in the chunk (not yet visible) nor in the
     * window (decoded before the LOW). The statement that writes the LOW also takes an xid
     * (pg_current_xact_id), so its commit (synchronous_commit is on in this session) flushes
     * the WAL past the LOW: such a commit has finished its flush (and its synchronous standby
     * wait) before the chunk's snapshot is taken, leaving only the instant between that and
     * leaving the proc array. The sync after it is that commit: the server finishes it before
     * it reads the BEGIN.
     */
    if (!pipe_send(r,
                   "SELECT pg_catalog.pg_logical_emit_message(false, '" DS_INCREMENTAL_PREFIX
                   "', $1 || ',\"ts\":' || (extract(epoch FROM pg_catalog.clock_timestamp()) * "
                   "1000000)::bigint || '}'), pg_catalog.pg_current_xact_id()",
                   1, params, "cannot write the low watermark", errstr, errstr_size) ||
        !pipe_sync(r, "cannot write the low watermark", errstr, errstr_size))
        goto done;
    syncs++;
    /* The snapshot is taken by the SELECT, after the LOW: every change committed before it
     * is in the rows; every one committed after it is streamed inside the window. */
    if (!pipe_send(r, "BEGIN ISOLATION LEVEL REPEATABLE READ", 0, NULL,
                   "cannot begin the chunk transaction", errstr, errstr_size) ||
        !pipe_send(r, r->last_key ? r->next_sql : r->first_sql, r->last_key ? r->npk : 0,
                   (const char *const *)r->last_key, "cannot read the chunk", errstr,
                   errstr_size) ||
        !pipe_sync(r, "cannot read the chunk", errstr, errstr_size))
        goto done;
    syncs++;
    if (!pipe_ok(r, PGRES_TUPLES_OK, "cannot write the low watermark", errstr, errstr_size) ||
        !pipe_synced(r, errstr, errstr_size))
        goto done;
    syncs--;
    if (!pipe_ok(r, PGRES_COMMAND_OK, "cannot begin the chunk transaction", errstr,
                 errstr_size) ||
        !(*rows = pipe_result(r, PGRES_TUPLES_OK, "cannot read the chunk", errstr, errstr_size)) ||
        !pipe_synced(r, errstr, errstr_size))
        goto done;
    syncs--;
    ok = PQexitPipelineMode(r->conn) ||
         ds_fail(errstr, errstr_size, "cannot read the chunk: %s", ds_pg_error(r->conn));
done:
    if (!ok) {
        pipe_leave(r, syncs);
        PQclear(*rows);
        *rows = NULL;
    }
    ds_buf_free(&low);
    return ok;
}

/* The HIGH with the chunk's rows, and the commit of the chunk's transaction; *lsn is the
 * HIGH's position. */
static bool write_high(run_t *r, const char *high, ds_lsn_t *lsn, char *errstr,
                       size_t errstr_size)
{
    const char *params[1] = {high};
    PGresult *msg = NULL;
    int syncs = 0;
    bool ok = false;

    if (!PQenterPipelineMode(r->conn)) {
        ds_fail(errstr, errstr_size, "cannot write the high watermark: %s", ds_pg_error(r->conn));
        rollback(r);
        return false;
    }
    if (!pipe_send(r,
                   "SELECT pg_catalog.pg_logical_emit_message(true, '" DS_INCREMENTAL_PREFIX
                   "', $1)",
                   1, params, "cannot write the high watermark", errstr, errstr_size) ||
        !pipe_send(r, "COMMIT", 0, NULL, "cannot commit the chunk", errstr, errstr_size) ||
        !pipe_sync(r, "cannot commit the chunk", errstr, errstr_size))
        goto done;
    syncs++;
    if (!(msg = pipe_result(r, PGRES_TUPLES_OK, "cannot write the high watermark", errstr,
                            errstr_size)) ||
        !pipe_ok(r, PGRES_COMMAND_OK, "cannot commit the chunk", errstr, errstr_size) ||
        !pipe_synced(r, errstr, errstr_size))
        goto done;
    syncs--;
    if (!PQexitPipelineMode(r->conn)) {
        ds_fail(errstr, errstr_size, "cannot commit the chunk: %s", ds_pg_error(r->conn));
        goto done;
    }
    if (!ds_lsn_parse(PQgetvalue(msg, 0, 0), lsn)) {
        ds_fail(errstr, errstr_size, "pg_logical_emit_message returned \"%s\", not an LSN",
                PQgetvalue(msg, 0, 0));
        goto done;
    }
    ok = true;
done:
    if (!ok && PQpipelineStatus(r->conn) != PQ_PIPELINE_OFF)
        pipe_leave(r, syncs);
    PQclear(msg);
    return ok;
}

/* LOW, then the chunk read and the HIGH in one REPEATABLE READ transaction. */
static bool emit_chunk(run_t *r, chunk_t *ch, char *errstr, size_t errstr_size)
{
    ds_buf_t high = DS_BUF_INIT;
    PGresult *res = NULL;
    int64_t start = ds_now_us();
    int n, used = 0;
    bool ok = false;

    if (!read_chunk(r, ch->number, &res, errstr, errstr_size))
        return false;
    n = PQntuples(res);

    ds_buf_append(&high, r->high_head.data, r->high_head.len);
    ds_buf_appendf(&high, ",\"chunk\":%" PRId64 ",\"rows\":[", ch->number);
    for (; used < n; used++) {
        /* A chunk of very wide rows is cut short: the next one starts after its last row. */
        if (used > 0 && high.len > HIGH_MAX_BYTES)
            break;
        ds_buf_append_str(&high, used ? ",[" : "[");
        for (int i = 0; i < r->desc.rel.ncolumns; i++) {
            if (i)
                ds_buf_append_char(&high, ',');
            if (PQgetisnull(res, used, i))
                ds_buf_append_str(&high, "null");
            else
                ds_buf_append_json_string(&high, PQgetvalue(res, used, i),
                                          (size_t)PQgetlength(res, used, i));
        }
        ds_buf_append_char(&high, ']');
    }
    ds_buf_append_str(&high, "]}");
    if (!write_high(r, high.data, &ch->high, errstr, errstr_size))
        goto done;
    ch->rows = used;
    ch->bytes = high.len;
    ch->last = used == n && n < r->opt->chunk_size;
    ch->seconds = (double)(ds_now_us() - start) / 1e6;
    ds_buf_reset(&ch->key);
    free_strv(ch->key_text);
    ch->key_text = NULL;
    if (used > 0) {
        append_key(r, &ch->key, res, used - 1);
        ch->key_text = calloc((size_t)r->npk + 1, sizeof(char *));
        if (!ch->key_text) {
            ds_fail(errstr, errstr_size, "out of memory");
            goto done;
        }
        for (int k = 0; k < r->npk; k++)
            if (!(ch->key_text[k] = strdup(PQgetvalue(res, used - 1, r->pk_index[k])))) {
                ds_fail(errstr, errstr_size, "out of memory");
                goto done;
            }
    }
    ok = true;
done:
    if (!ok && PQtransactionStatus(r->conn) != PQTRANS_IDLE)
        rollback(r);
    PQclear(res);
    ds_buf_free(&high);
    return ok;
}

/* Waits until the slot is confirmed at or past @lsn. Capture confirms a position only once
 * Kafka acknowledged everything before it, and holds the slot before an open window's LOW
 * until the rows of its HIGH are acknowledged, so reaching the HIGH's LSN means the chunk's
 * read events are in Kafka (or were dropped for a newer streamed state). */
static ds_incremental_result_t wait_confirmed(run_t *r, ds_lsn_t lsn, char *errstr,
                                              size_t errstr_size)
{
    const char *params[1] = {r->opt->config->slot};
    int64_t deadline = ds_now_us() + (int64_t)r->opt->confirm_timeout_ms * 1000;
    char want[DS_LSN_STRLEN], have[DS_LSN_STRLEN];
    ds_lsn_t confirmed = DS_INVALID_LSN;

    for (;;) {
        PGresult *res = exec(r,
                             "SELECT confirmed_flush_lsn FROM pg_catalog.pg_replication_slots "
                             "WHERE slot_name = $1",
                             1, params, PGRES_TUPLES_OK, "cannot read the replication slot", errstr,
                             errstr_size);

        if (!res)
            return DS_INCREMENTAL_FAILED;
        if (PQntuples(res) != 1) {
            PQclear(res);
            ds_fail(errstr, errstr_size,
                    "replication slot \"%s\" was dropped during the backfill; nothing after the "
                    "last recorded chunk is known to be published",
                    r->opt->config->slot);
            return DS_INCREMENTAL_SETUP;
        }
        if (!PQgetisnull(res, 0, 0) && !ds_lsn_parse(PQgetvalue(res, 0, 0), &confirmed))
            confirmed = DS_INVALID_LSN;
        PQclear(res);
        if (confirmed >= lsn)
            return DS_INCREMENTAL_DONE;
        if (ds_now_us() >= deadline)
            break;
        usleep(CONFIRM_POLL_US);
    }
    ds_fail(errstr, errstr_size,
            "replication slot \"%s\" did not confirm LSN %s (the high watermark of this chunk) "
            "within %d ms; it is at %s. Is dualsync capture running with this configuration? "
            "Progress up to the last finished chunk is recorded in dualsync.backfill_state: "
            "run the same command again to resume",
            r->opt->config->slot, ds_lsn_format(lsn, want), r->opt->confirm_timeout_ms,
            confirmed ? ds_lsn_format(confirmed, have) : "no position");
    return DS_INCREMENTAL_SETUP;
}

static bool record_progress(run_t *r, const chunk_t *ch, char *errstr, size_t errstr_size)
{
    char done[24], total[24];
    const char *params[6] = {
        r->opt->config->slot, r->qualified, ch->rows ? ch->key.data : NULL, done, total,
        ch->last ? "t" : "f"};

    snprintf(done, sizeof(done), "%" PRId64, r->rows_done);
    snprintf(total, sizeof(total), "%" PRId64, r->rows_total);
    /* An empty last chunk keeps the key before it. */
    return exec_ok(r,
                   "UPDATE dualsync.backfill_state SET last_key = coalesce($3, last_key), "
                   "rows_done = $4::bigint, rows_total = $5::bigint, updated_at = now(), "
                   "completed_at = CASE WHEN $6::bool THEN now() END "
                   "WHERE slot_name = $1 AND table_name = $2",
                   6, params, "cannot record progress in dualsync.backfill_state", errstr,
                   errstr_size);
}

/*
 * Reads up to CHUNKS_AHEAD chunks past the last one the slot confirmed. Waiting for each
 * chunk's confirmation before reading the next left the source idle for a round trip through
 * capture, Kafka and capture's next status update per chunk. The invariant that makes a
 * resume exact is unchanged: dualsync.backfill_state moves past a chunk only once the slot
 * confirmed its HIGH, i.e. once its read events are in Kafka, and chunks are recorded in
 * order. A crash loses only the chunks read ahead and not yet recorded; the rerun reads them
 * again from the recorded key, under new watermarks, and their read events carry the rows'
 * state at that time, which a consumer applies over the earlier ones like any read event.
 * Capture holds the slot before each open window's LOW, and its in-flight limits
 * (capture.max_inflight_bytes) hold the reads back when Kafka is slower than the source.
 *
 * How far ahead: on a busy machine a chunk's confirmation took 0.3 to 0.5 s (capture, Kafka
 * and the walsender all waiting for a CPU), four chunks of 4096 rows were read in less, and
 * the backfill stalled on every fourth chunk. So up to 16 chunks are read ahead, but no more
 * row text than READ_AHEAD_SHARE of capture.max_inflight_bytes (a row's read event is several
 * times its text): reading past what capture can hold in flight would only keep WAL and rows
 * waiting. Two chunks at least, so that one is read while the other is published.
 */
#define CHUNKS_AHEAD 16
#define READ_AHEAD_SHARE 4

static void chunk_clear(chunk_t *ch)
{
    ds_buf_free(&ch->key);
    free_strv(ch->key_text);
    memset(ch, 0, sizeof(*ch));
}

/* Records the oldest chunk read ahead once the slot confirmed it. */
static ds_incremental_result_t confirm_chunk(run_t *r, chunk_t *ch, ds_incremental_stats_t *stats,
                                             char *errstr, size_t errstr_size)
{
    ds_incremental_result_t result;

    if (ch->rows > 0 &&
        (result = wait_confirmed(r, ch->high, errstr, errstr_size)) != DS_INCREMENTAL_DONE)
        return result;
    r->rows_done += ch->rows;
    if (!record_progress(r, ch, errstr, errstr_size))
        return DS_INCREMENTAL_FAILED;
    if (ch->rows > 0)
        snprintf(stats->last_key, sizeof(stats->last_key), "%s", ch->key.data);
    stats->rows += ch->rows;
    stats->chunks++;
    return DS_INCREMENTAL_DONE;
}

static ds_incremental_result_t run_chunks(run_t *r, ds_incremental_stats_t *stats, char *errstr,
                                          size_t errstr_size)
{
    const ds_incremental_options_t *opt = r->opt;
    ds_backfill_progress_t prog;
    chunk_t ring[CHUNKS_AHEAD];
    int head = 0, count = 0;
    int64_t ahead_bytes = 0; /* the HIGHs of the chunks read ahead, in bytes */
    int64_t number = 0;
    bool all_read = false;
    ds_incremental_result_t result = DS_INCREMENTAL_FAILED;
    int redo_in_a_row = 0;

    memset(&prog, 0, sizeof(prog));
    memset(ring, 0, sizeof(ring));
    prog.bar = opt->progress_bar;
    prog.what = "incremental backfill";
    prog.schema = r->schema;
    prog.table = r->table;
    prog.start_us = prog.table_start_us = prog.last_us = ds_now_us();
    prog.table_total = r->rows_total;
    prog.table_done = prog.table_resumed = r->rows_done;
    prog.total_rows = r->rows_total > r->rows_done ? r->rows_total - r->rows_done : 0;

    for (;;) {
        chunk_t *ch;

        /* Read ahead while there is room: the next chunk starts after the last one read. */
        if (!all_read && count < CHUNKS_AHEAD &&
            (count < 2 || ahead_bytes < opt->config->max_inflight_bytes / READ_AHEAD_SHARE) &&
            !(opt->stop && *opt->stop)) {
            ch = &ring[(head + count) % CHUNKS_AHEAD];
            chunk_clear(ch);
            ch->number = ++number;
            if (!emit_chunk(r, ch, errstr, errstr_size))
                goto done;
            /* Capture abandons a window its HIGH did not close within the timeout, as seen
             * by commit times: such a chunk may not have been published. */
            if (ch->seconds * 1e6 > DS_INCREMENTAL_WINDOW_TIMEOUT_US / 2) {
                stats->redone++;
                if (++redo_in_a_row > MAX_REDO_IN_A_ROW) {
                    ds_fail(errstr, errstr_size,
                            "chunk %" PRId64 " of %s took %.0f s, %d times in a row, longer "
                            "than capture keeps a chunk's window open (%d s); use a smaller "
                            "--chunk-size",
                            ch->number, r->qualified, ch->seconds, MAX_REDO_IN_A_ROW + 1,
                            (int)(DS_INCREMENTAL_WINDOW_TIMEOUT_US / 1000000));
                    result = DS_INCREMENTAL_SETUP;
                    goto done;
                }
                ds_warning("chunk %" PRId64 " of %s took %.0f s, too long to be sure capture "
                           "kept its window open; reading it again",
                           ch->number, r->qualified, ch->seconds);
                continue;
            }
            redo_in_a_row = 0;
            if (ch->rows > 0) {
                free_strv(r->last_key);
                r->last_key = ch->key_text;
                ch->key_text = NULL;
            }
            all_read = ch->last;
            ahead_bytes += (int64_t)ch->bytes;
            count++;
            continue;
        }
        if (count == 0) {
            /* Stopped before reading anything more. */
            if (prog.bar)
                fputc('\n', stderr);
            result = DS_INCREMENTAL_STOPPED;
            goto done;
        }
        ch = &ring[head];
        if ((result = confirm_chunk(r, ch, stats, errstr, errstr_size)) != DS_INCREMENTAL_DONE)
            goto done;
        result = DS_INCREMENTAL_FAILED;
        head = (head + 1) % CHUNKS_AHEAD;
        ahead_bytes -= (int64_t)ch->bytes;
        count--;
        prog.table_done = r->rows_done;
        prog.done_rows = stats->rows;
        if (ch->last) {
            ds_backfill_progress_report(&prog, true);
            result = DS_INCREMENTAL_DONE;
            goto done;
        }
        ds_backfill_progress_report(&prog, false);
        /* On a stop, the chunks read ahead are still confirmed and recorded: they are in
         * Kafka already, or will be once capture catches up. */
    }
done:
    stats->rows_done = r->rows_done;
    for (int i = 0; i < CHUNKS_AHEAD; i++)
        chunk_clear(&ring[i]);
    return result;
}

ds_incremental_result_t ds_incremental_run(const ds_incremental_options_t *opt,
                                           ds_incremental_stats_t *stats, char *errstr,
                                           size_t errstr_size)
{
    run_t r;
    ds_incremental_result_t result = DS_INCREMENTAL_SETUP;
    char lock_key[512];
    const char *params[1] = {lock_key};
    PGresult *res;

    memset(&r, 0, sizeof(r));
    memset(stats, 0, sizeof(*stats));
    r.opt = opt;
    snprintf(r.id, sizeof(r.id), "%d-%" PRId64, (int)getpid(), ds_now_us());
    if (opt->chunk_size <= 0) {
        ds_fail(errstr, errstr_size, "--chunk-size must be positive");
        goto done;
    }
    if (!find_table(&r, errstr, errstr_size))
        goto done;
    r.conn = ds_replication_connect_sql(opt->config->source_conninfo, errstr, errstr_size);
    if (!r.conn) {
        result = DS_INCREMENTAL_FAILED;
        goto done;
    }
    if (!setup_session(&r, errstr, errstr_size) || !check_slot(&r, errstr, errstr_size) ||
        !describe(&r, errstr, errstr_size) || !build_sql(&r, errstr, errstr_size))
        goto done;
    /* One backfill per slot and table: capture keeps one window per table. */
    snprintf(lock_key, sizeof(lock_key), "%s %s", opt->config->slot, r.qualified);
    res = exec(&r,
               "SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtext("
               "'dualsync.backfill_table'), pg_catalog.hashtext($1))",
               1, params, PGRES_TUPLES_OK, "cannot take the backfill lock", errstr, errstr_size);
    if (!res)
        goto done;
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        PQclear(res);
        ds_fail(errstr, errstr_size,
                "another dualsync backfill of %s for slot \"%s\" is running (it holds the "
                "advisory lock); wait for it or stop it first",
                r.qualified, opt->config->slot);
        goto done;
    }
    PQclear(res);
    result = DS_INCREMENTAL_FAILED;
    if (!load_state(&r, stats, errstr, errstr_size) || !estimate_rows(&r, errstr, errstr_size))
        goto done;
    ds_info("incremental backfill of %s through slot \"%s\": about %" PRId64 " rows, chunks of "
            "%d",
            r.qualified, opt->config->slot, r.rows_total, opt->chunk_size);
    result = run_chunks(&r, stats, errstr, errstr_size);
done:
    run_free(&r);
    return result;
}
