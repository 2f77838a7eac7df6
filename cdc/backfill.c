/*
 * backfill.c: the initial consistent backfill and its record in dualsync.capture_state.
 *
 * Rows are read with COPY (SELECT ...) TO STDOUT in text format: each value is the type's
 * output function result, as pgoutput sends it (same session settings, see
 * ds_replication_connect_sql), escaped by COPY's text rules, which are undone here in place.
 * COPY streams far faster than a cursor and keeps only one row in memory.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualsync/backfill.h"
#include "dualsync/buf.h"
#include "dualsync/log.h"
#include "dualsync/pgutil.h"
#include "dualsync/replication.h"

/* Seconds between progress lines when stderr is not a terminal, and bar redraws when it is. */
#define PROGRESS_LINE_INTERVAL_US INT64_C(10000000)
#define PROGRESS_BAR_INTERVAL_US  INT64_C(200000)
#define PROGRESS_BAR_WIDTH        30

/* The two int4 keys of the advisory lock: a fixed class and the slot name's hash. */
#define LOCK_SQL                                                                                   \
    "SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtext('dualsync.backfill'), "            \
    "pg_catalog.hashtext($1))"

#define STATE_TABLE_SQL                                                                            \
    "SET LOCAL client_min_messages = warning;" /* no "already exists, skipping" notices */         \
    "CREATE SCHEMA IF NOT EXISTS dualsync;"                                                        \
    "CREATE TABLE IF NOT EXISTS dualsync.capture_state ("                                          \
    " slot_name text PRIMARY KEY,"                                                                 \
    " snapshot_lsn pg_lsn,"                                                                        \
    " backfill_started_at timestamptz NOT NULL,"                                                   \
    " backfill_completed_at timestamptz,"                                                          \
    " backfill_rows bigint);"                                                                      \
    "COMMENT ON TABLE dualsync.capture_state IS 'dualsync capture: the initial backfill of each "  \
    "replication slot; a row whose backfill_completed_at is NULL makes the next capture start "    \
    "redo the backfill with a new slot'"

/* One table as the backfill reads it. */
typedef struct table_read {
    const ds_source_table_t *src; /* the catalog entry: names, replica identity, primary key */
    ds_backfill_table_t desc;     /* columns as pgoutput sends them, select list, FROM clause */
    char *copy_sql;               /* COPY (SELECT cols FROM table ORDER BY key) TO STDOUT */
    int64_t total;                /* rows under the snapshot */
} table_read_t;

/* ---- dualsync.capture_state ---------------------------------------------------------- */

static bool exec_params(PGconn *conn, const char *sql, int nparams, const char *const *params,
                        ExecStatusType expected, PGresult **result, const char *what, char *errstr,
                        size_t errstr_size)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(res) != expected) {
        ds_fail(errstr, errstr_size, "%s: %s", what, ds_pg_error(conn));
        PQclear(res);
        return false;
    }
    if (result)
        *result = res;
    else
        PQclear(res);
    return true;
}

bool ds_backfill_lock(PGconn *conn, const char *slot, char *errstr, size_t errstr_size)
{
    const char *params[1] = {slot};
    PGresult *res;
    bool got;

    if (!exec_params(conn, LOCK_SQL, 1, params, PGRES_TUPLES_OK, &res,
                     "cannot take the backfill lock of the slot", errstr, errstr_size))
        return false;
    got = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!got)
        return ds_fail(errstr, errstr_size,
                       "another capture is preparing slot \"%s\" (it holds the advisory lock "
                       "dualsync takes during the initial backfill); stop it first or set "
                       "source.slot to another name",
                       slot);
    return true;
}

bool ds_backfill_state_read(PGconn *conn, const char *slot, ds_backfill_state_t *state,
                            ds_lsn_t *snapshot_lsn, char *errstr, size_t errstr_size)
{
    const char *params[1] = {slot};
    PGresult *res = NULL;
    bool ok = false;

    *state = DS_BACKFILL_NONE;
    *snapshot_lsn = DS_INVALID_LSN;
    if (!exec_params(conn, "SELECT pg_catalog.to_regclass('dualsync.capture_state') IS NOT NULL", 0,
                     NULL, PGRES_TUPLES_OK, &res, "cannot look for dualsync.capture_state", errstr,
                     errstr_size))
        return false;
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        PQclear(res);
        return true;
    }
    PQclear(res);
    if (!exec_params(conn,
                     "SELECT snapshot_lsn, backfill_completed_at IS NOT NULL "
                     "FROM dualsync.capture_state WHERE slot_name = $1",
                     1, params, PGRES_TUPLES_OK, &res, "cannot read dualsync.capture_state", errstr,
                     errstr_size))
        return false;
    if (PQntuples(res) == 1) {
        if (!PQgetisnull(res, 0, 0) && !ds_lsn_parse(PQgetvalue(res, 0, 0), snapshot_lsn)) {
            ds_fail(errstr, errstr_size,
                    "dualsync.capture_state holds a bad snapshot_lsn \"%s\" for slot \"%s\"",
                    PQgetvalue(res, 0, 0), slot);
            goto done;
        }
        *state =
            strcmp(PQgetvalue(res, 0, 1), "t") == 0 ? DS_BACKFILL_COMPLETED : DS_BACKFILL_STARTED;
    }
    ok = true;
done:
    PQclear(res);
    return ok;
}

bool ds_backfill_state_begin(PGconn *conn, const char *slot, ds_lsn_t snapshot_lsn, char *errstr,
                             size_t errstr_size)
{
    char lsn[DS_LSN_STRLEN];
    const char *params[2] = {slot, snapshot_lsn ? ds_lsn_format(snapshot_lsn, lsn) : NULL};
    PGresult *res;

    /* Two captures of different slots may create the table at once; IF NOT EXISTS alone
     * can still collide on the catalog's unique indexes, so serialise on a lock. */
    res = PQexec(conn, "BEGIN");
    PQclear(res);
    if (!exec_params(conn,
                     "SELECT pg_catalog.pg_advisory_xact_lock("
                     "pg_catalog.hashtext('dualsync.capture_state'))",
                     0, NULL, PGRES_TUPLES_OK, NULL, "cannot lock dualsync.capture_state", errstr,
                     errstr_size))
        goto rollback;
    res = PQexec(conn, STATE_TABLE_SQL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ds_fail(errstr, errstr_size,
                "cannot create dualsync.capture_state in the source database, where capture "
                "records its initial backfill: %s (grant CREATE on the database to the capture "
                "role, or create the schema dualsync with a table capture_state it may write)",
                ds_pg_error(conn));
        PQclear(res);
        goto rollback;
    }
    PQclear(res);
    if (!exec_params(
            conn,
            "INSERT INTO dualsync.capture_state AS s (slot_name, snapshot_lsn, "
            "backfill_started_at) VALUES ($1, $2::pg_lsn, now()) ON CONFLICT (slot_name) DO "
            "UPDATE SET snapshot_lsn = $2::pg_lsn, backfill_started_at = now(), "
            "backfill_completed_at = NULL, backfill_rows = NULL",
            2, params, PGRES_COMMAND_OK, NULL, "cannot write dualsync.capture_state", errstr,
            errstr_size))
        goto rollback;
    return exec_params(conn, "COMMIT", 0, NULL, PGRES_COMMAND_OK, NULL,
                       "cannot commit to dualsync.capture_state", errstr, errstr_size);

rollback:
    res = PQexec(conn, "ROLLBACK");
    PQclear(res);
    return false;
}

bool ds_backfill_state_set_lsn(PGconn *conn, const char *slot, ds_lsn_t snapshot_lsn, char *errstr,
                               size_t errstr_size)
{
    char lsn[DS_LSN_STRLEN];
    const char *params[2] = {slot, ds_lsn_format(snapshot_lsn, lsn)};

    return exec_params(conn,
                       "UPDATE dualsync.capture_state SET snapshot_lsn = $2::pg_lsn "
                       "WHERE slot_name = $1",
                       2, params, PGRES_COMMAND_OK, NULL, "cannot write dualsync.capture_state",
                       errstr, errstr_size);
}

bool ds_backfill_state_complete(PGconn *conn, const char *slot, uint64_t rows, char *errstr,
                                size_t errstr_size)
{
    char count[24];
    const char *params[2] = {slot, count};

    snprintf(count, sizeof(count), "%" PRIu64, rows);
    return exec_params(conn,
                       "UPDATE dualsync.capture_state SET backfill_completed_at = now(), "
                       "backfill_rows = $2::bigint WHERE slot_name = $1",
                       2, params, PGRES_COMMAND_OK, NULL, "cannot write dualsync.capture_state",
                       errstr, errstr_size);
}

/* ---- progress ------------------------------------------------------------------------ */

static void format_eta(char *out, size_t size, double seconds)
{
    long s = (long)(seconds + 0.5);

    if (s >= 3600)
        snprintf(out, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(out, size, "%ld:%02ld", s / 60, s % 60);
}

void ds_backfill_progress_report(ds_backfill_progress_t *p, bool final)
{
    int64_t now = ds_now_us();
    double elapsed, rate, fraction, all_elapsed, all_rate;
    int64_t total;
    char eta[32];

    /* Called for every row: decide first, compute only when a report is due. */
    if (!final &&
        now - p->last_us < (p->bar ? PROGRESS_BAR_INTERVAL_US : PROGRESS_LINE_INTERVAL_US))
        return;
    p->last_us = now;
    /* Rows an earlier run read count toward the fraction done, not toward this run's rate. */
    elapsed = (double)(now - p->table_start_us) / 1e6;
    rate = elapsed > 0 ? (double)(p->table_done - p->table_resumed) / elapsed : 0;
    total = p->table_total > p->table_done ? p->table_total : p->table_done;
    fraction = total > 0 ? (double)p->table_done / (double)total : 1.0;
    all_elapsed = (double)(now - p->start_us) / 1e6;
    all_rate = all_elapsed > 0 ? (double)p->done_rows / all_elapsed : 0;
    /* The ETA is for the whole backfill, at the rate seen so far. */
    format_eta(eta, sizeof(eta),
               all_rate > 0 && p->total_rows > p->done_rows
                   ? (double)(p->total_rows - p->done_rows) / all_rate
                   : 0);
    if (p->bar) {
        int filled = (int)(fraction * PROGRESS_BAR_WIDTH);
        char bar[PROGRESS_BAR_WIDTH + 1];

        for (int i = 0; i < PROGRESS_BAR_WIDTH; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[PROGRESS_BAR_WIDTH] = '\0';
        fprintf(stderr,
                "\r%s %s.%s [%s] %3.0f%% %" PRId64 "/%" PRId64 " rows, %.0f rows/s, "
                "ETA %s   %s",
                p->what, p->schema, p->table, bar, fraction * 100, p->table_done, total, rate,
                eta, final ? "\n" : "");
        fflush(stderr);
        return;
    }
    if (!p->all_tables) {
        ds_info("%s of %s.%s: %" PRId64 "/%" PRId64 " rows (%.0f%%), %.0f rows/s%s%s", p->what,
                p->schema, p->table, p->table_done, total, fraction * 100, rate,
                final ? "" : ", ETA ", final ? "" : eta);
        return;
    }
    ds_info("%s of %s.%s: %" PRId64 "/%" PRId64 " rows (%.0f%%), %.0f rows/s%s%s; all "
            "tables: %" PRId64 "/%" PRId64 " rows",
            p->what, p->schema, p->table, p->table_done, total, fraction * 100, rate,
            final ? "" : ", ETA ", final ? "" : eta, p->done_rows, p->total_rows);
}

/* ---- reading ------------------------------------------------------------------------- */

void ds_backfill_table_clear(ds_backfill_table_t *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->rel.ncolumns; i++)
        free(t->rel.columns[i].name);
    free(t->rel.columns);
    free(t->columns);
    free(t->from);
    memset(t, 0, sizeof(*t));
}

static void table_free(table_read_t *t)
{
    ds_backfill_table_clear(&t->desc);
    free(t->copy_sql);
}

static char *quote_ident(PGconn *conn, const char *name)
{
    return PQescapeIdentifier(conn, name, strlen(name));
}

/* Appends the quoted identifier @name to @out; false when out of memory. */
static bool append_ident(ds_buf_t *out, PGconn *conn, const char *name)
{
    char *q = quote_ident(conn, name);

    if (!q)
        return false;
    ds_buf_append_str(out, q);
    PQfreemem(q);
    return true;
}

/* Columns as pgoutput sends them: not dropped, not generated, in the publication's column
 * list when it has one; key flags as pgoutput sets them (the replica identity's columns,
 * every column under FULL). Read under the snapshot, so they match the rows. */
#define DESCRIBE_SQL                                                                               \
    "SELECT c.oid, c.relkind, a.attname, a.atttypid, a.atttypmod,"                                 \
    "  CASE c.relreplident WHEN 'f' THEN true"                                                     \
    "   WHEN 'd' THEN EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid"        \
    "                         AND i.indisprimary AND a.attnum = ANY (i.indkey))"                   \
    "   WHEN 'i' THEN EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid"        \
    "                         AND i.indisreplident AND a.attnum = ANY (i.indkey))"                 \
    "   ELSE false END"                                                                            \
    " FROM pg_catalog.pg_class c"                                                                  \
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"                                    \
    " JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid"                                        \
    " WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped"             \
    "   AND a.attgenerated = ''"                                                                   \
    "   AND (NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables p"                         \
    "                    WHERE p.pubname = $3 AND p.schemaname = $1 AND p.tablename = $2)"         \
    "        OR a.attname = ANY (SELECT unnest(p.attnames) FROM pg_catalog.pg_publication_tables " \
    "p"                                                                                            \
    "                    WHERE p.pubname = $3 AND p.schemaname = $1 AND p.tablename = $2))"        \
    " ORDER BY a.attnum"

bool ds_backfill_describe(PGconn *conn, const char *publication, const ds_source_table_t *src,
                          ds_backfill_table_t *t, char *errstr, size_t errstr_size)
{
    const char *params[3] = {src->schema, src->table, publication};
    PGresult *res = NULL;
    ds_buf_t cols = DS_BUF_INIT, from = DS_BUF_INIT;
    bool ordinary, ok = false;
    int n;

    memset(t, 0, sizeof(*t));
    if (!exec_params(conn, DESCRIBE_SQL, 3, params, PGRES_TUPLES_OK, &res, "cannot describe table",
                     errstr, errstr_size))
        return false;
    n = PQntuples(res);
    if (n == 0) {
        ds_fail(errstr, errstr_size, "table %s.%s has no columns to publish", src->schema,
                src->table);
        goto done;
    }
    t->rel.relid = (uint32_t)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
    t->rel.schema = src->schema;
    t->rel.table = src->table;
    t->rel.replident = src->replident;
    t->rel.generation = 1;
    t->rel.columns = calloc((size_t)n, sizeof(ds_column_t));
    if (!t->rel.columns)
        goto oom;
    for (int i = 0; i < n; i++) {
        ds_column_t *col = &t->rel.columns[i];

        col->name = strdup(PQgetvalue(res, i, 2));
        if (!col->name)
            goto oom;
        t->rel.ncolumns++;
        col->type_oid = (uint32_t)strtoul(PQgetvalue(res, i, 3), NULL, 10);
        col->typmod = (int32_t)strtol(PQgetvalue(res, i, 4), NULL, 10);
        col->is_key = strcmp(PQgetvalue(res, i, 5), "t") == 0;
    }
    /* A partitioned table is published as itself (publish_via_partition_root): read all its
     * partitions. An ordinary table's inheritance children are tables of their own. */
    ordinary = strcmp(PQgetvalue(res, 0, 1), "p") != 0;

    for (int i = 0; i < t->rel.ncolumns; i++) {
        if (i)
            ds_buf_append_str(&cols, ", ");
        if (!append_ident(&cols, conn, t->rel.columns[i].name))
            goto oom;
    }
    ds_buf_append_str(&from, ordinary ? " FROM ONLY " : " FROM ");
    if (!append_ident(&from, conn, src->schema))
        goto oom;
    ds_buf_append_char(&from, '.');
    if (!append_ident(&from, conn, src->table))
        goto oom;
    t->columns = cols.data;
    cols.data = NULL;
    t->from = from.data;
    from.data = NULL;
    ok = true;
    goto done;
oom:
    ds_fail(errstr, errstr_size, "out of memory describing table %s.%s", src->schema, src->table);
done:
    if (!ok)
        ds_backfill_table_clear(t);
    ds_buf_free(&cols);
    ds_buf_free(&from);
    PQclear(res);
    return ok;
}

static bool describe_table(PGconn *conn, const char *publication, table_read_t *t, char *errstr,
                           size_t errstr_size)
{
    const ds_source_table_t *src = t->src;
    const ds_relation_t *rel = &t->desc.rel;
    ds_buf_t sql = DS_BUF_INIT;

    if (!ds_backfill_describe(conn, publication, src, &t->desc, errstr, errstr_size))
        return false;
    ds_buf_append_str(&sql, "COPY (SELECT ");
    ds_buf_append_str(&sql, t->desc.columns);
    ds_buf_append_str(&sql, t->desc.from);
    /* Key order, as Debezium reads: the primary key, else the replica identity index. */
    if (src->primary_key && src->primary_key[0]) {
        ds_buf_append_str(&sql, " ORDER BY ");
        for (int i = 0; src->primary_key[i]; i++) {
            if (i)
                ds_buf_append_str(&sql, ", ");
            if (!append_ident(&sql, conn, src->primary_key[i]))
                goto oom;
        }
    } else if (src->replident == DS_REPLIDENT_INDEX) {
        bool first = true;

        for (int i = 0; i < rel->ncolumns; i++) {
            if (!rel->columns[i].is_key)
                continue;
            ds_buf_append_str(&sql, first ? " ORDER BY " : ", ");
            first = false;
            if (!append_ident(&sql, conn, rel->columns[i].name))
                goto oom;
        }
    }
    ds_buf_append_str(&sql, ") TO STDOUT");
    t->copy_sql = sql.data;
    return true;
oom:
    ds_buf_free(&sql);
    return ds_fail(errstr, errstr_size, "out of memory describing table %s.%s", src->schema,
                   src->table);
}

static bool count_rows(PGconn *conn, table_read_t *t, char *errstr, size_t errstr_size)
{
    ds_buf_t sql = DS_BUF_INIT;
    PGresult *res = NULL;
    bool ok = false;

    ds_buf_append_str(&sql, "SELECT count(*)");
    ds_buf_append_str(&sql, t->desc.from);
    if (!exec_params(conn, sql.data, 0, NULL, PGRES_TUPLES_OK, &res, "cannot count rows", errstr,
                     errstr_size))
        goto done;
    t->total = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    ok = true;
done:
    PQclear(res);
    ds_buf_free(&sql);
    return ok;
}

/* Undoes COPY's text escaping of one field in place; returns its new length. COPY TO writes
 * backslash, \b \f \n \r \t \v for those control characters, and "\\" for a backslash; the
 * octal and hex forms COPY FROM accepts are decoded too, for completeness. */
static size_t unescape(char *field, size_t len)
{
    size_t r = 0, w = 0;

    while (r < len) {
        char ch = field[r++];

        if (ch != '\\' || r == len) {
            field[w++] = ch;
            continue;
        }
        ch = field[r++];
        switch (ch) {
        case 'b':
            field[w++] = '\b';
            break;
        case 'f':
            field[w++] = '\f';
            break;
        case 'n':
            field[w++] = '\n';
            break;
        case 'r':
            field[w++] = '\r';
            break;
        case 't':
            field[w++] = '\t';
            break;
        case 'v':
            field[w++] = '\v';
            break;
        case '0':
        case '1':
        case '2':
        case '3':
        case '4':
        case '5':
        case '6':
        case '7': {
            int v = ch - '0';

            for (int k = 0; k < 2 && r < len && field[r] >= '0' && field[r] <= '7'; k++)
                v = v * 8 + (field[r++] - '0');
            field[w++] = (char)v;
            break;
        }
        default:
            field[w++] = ch;
            break;
        }
    }
    return w;
}

/* Splits one COPY text row (ending in '\n') into @values. */
static bool parse_row(char *line, int len, const table_read_t *t, ds_value_t *values, char *errstr,
                      size_t errstr_size)
{
    int ncol = 0;
    char *p = line, *end = line + len;

    if (len > 0 && end[-1] == '\n')
        end--;
    for (;;) {
        char *tab = memchr(p, '\t', (size_t)(end - p));
        char *field_end = tab ? tab : end;
        size_t flen = (size_t)(field_end - p);

        if (ncol == t->desc.rel.ncolumns)
            return ds_fail(errstr, errstr_size,
                           "a row of %s.%s read by COPY has more than %d "
                           "columns",
                           t->src->schema, t->src->table, t->desc.rel.ncolumns);
        if (flen == 2 && p[0] == '\\' && p[1] == 'N') {
            values[ncol].kind = DS_VALUE_NULL;
            values[ncol].data = NULL;
            values[ncol].len = 0;
        } else {
            values[ncol].kind = DS_VALUE_TEXT;
            values[ncol].data = p;
            values[ncol].len = (uint32_t)unescape(p, flen);
        }
        ncol++;
        if (!tab)
            break;
        p = tab + 1;
    }
    if (ncol != t->desc.rel.ncolumns)
        return ds_fail(errstr, errstr_size,
                       "a row of %s.%s read by COPY has %d columns, "
                       "expected %d",
                       t->src->schema, t->src->table, ncol, t->desc.rel.ncolumns);
    return true;
}

/* Debezium 2.x markers: the first record of the backfill is "first", the last "last"; the
 * first and last of every other table "first_in_data_collection" and
 * "last_in_data_collection" (the last marker wins for a table of one row). */
static const char *snapshot_marker(int64_t row, int64_t total, bool first_table, bool last_table)
{
    if (row == total - 1)
        return last_table ? "last" : "last_in_data_collection";
    if (row == 0)
        return first_table ? "first" : "first_in_data_collection";
    return "true";
}

static ds_backfill_result_t read_table(PGconn *conn, const ds_backfill_options_t *opt,
                                       ds_changes_t *changes, table_read_t *t, bool first_table,
                                       bool last_table, uint32_t xid, ds_backfill_progress_t *prog,
                                       char *errstr, size_t errstr_size)
{
    ds_value_t *values = calloc((size_t)t->desc.rel.ncolumns, sizeof(ds_value_t));
    ds_tuple_t row = {.nvalues = t->desc.rel.ncolumns, .values = values};
    ds_changes_read_t read = {.lsn = opt->consistent_lsn, .xid = xid};
    ds_backfill_result_t result = DS_BACKFILL_FAILED;
    PGresult *res = NULL;
    char *line = NULL;
    int64_t n = 0;
    int len;
    ds_series_t *done_series = NULL; /* the table's rows read, for the metrics */

    if (!values) {
        ds_fail(errstr, errstr_size, "out of memory");
        return DS_BACKFILL_FAILED;
    }
    if (opt->rows_done) {
        char name[2 * 64 + 2];

        snprintf(name, sizeof(name), "%s.%s", t->src->schema, t->src->table);
        done_series = ds_metric_with(opt->rows_done, name);
        ds_series_set(done_series, 0);
        ds_series_set(ds_metric_with(opt->rows_total, name), (double)t->total);
    }
    prog->schema = t->src->schema;
    prog->table = t->src->table;
    prog->table_total = t->total;
    prog->table_done = 0;
    prog->table_start_us = ds_now_us();
    prog->last_us = prog->table_start_us;
    res = PQexec(conn, t->copy_sql);
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        ds_fail(errstr, errstr_size, "cannot read table %s.%s: %s", t->src->schema, t->src->table,
                ds_pg_error(conn));
        goto done;
    }
    PQclear(res);
    res = NULL;
    while ((len = PQgetCopyData(conn, &line, 0)) > 0) {
        /* The count was taken under the same snapshot, so it is exact (checked below). */
        read.snapshot = snapshot_marker(n, t->total, first_table, last_table);
        if (!parse_row(line, len, t, values, errstr, errstr_size) ||
            !ds_changes_read_row(changes, &t->desc.rel, &row, &read, ds_now_us(), opt->emit, opt->ctx,
                                 errstr, errstr_size))
            goto done;
        PQfreemem(line);
        line = NULL;
        n++;
        prog->table_done = n;
        prog->done_rows++;
        ds_series_set(done_series, (double)n);
        if (!opt->yield(opt->ctx)) {
            result = DS_BACKFILL_STOPPED;
            goto done;
        }
        ds_backfill_progress_report(prog, false);
    }
    if (len == -2) {
        ds_fail(errstr, errstr_size, "reading table %s.%s failed: %s", t->src->schema,
                t->src->table, ds_pg_error(conn));
        goto done;
    }
    res = PQgetResult(conn);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ds_fail(errstr, errstr_size, "reading table %s.%s failed: %s", t->src->schema,
                t->src->table, ds_pg_error(conn));
        goto done;
    }
    if (n != t->total) {
        ds_fail(errstr, errstr_size,
                "table %s.%s gave %" PRId64 " rows but counted %" PRId64 " under the same "
                "snapshot",
                t->src->schema, t->src->table, n, t->total);
        goto done;
    }
    ds_backfill_progress_report(prog, true);
    result = DS_BACKFILL_DONE;
done:
    if (line)
        PQfreemem(line);
    PQclear(res);
    /* Leaving a COPY half read: the caller closes the connection, which ends it. */
    free(values);
    return result;
}

ds_backfill_result_t ds_backfill_run(const ds_backfill_options_t *opt, ds_backfill_stats_t *stats,
                                     char *errstr, size_t errstr_size)
{
    const ds_source_catalog_t *catalog = opt->catalog;
    table_read_t *tables = calloc((size_t)catalog->ntables, sizeof(table_read_t));
    ds_changes_t *changes = ds_changes_new(opt->changes);
    ds_backfill_result_t result = DS_BACKFILL_FAILED;
    ds_backfill_progress_t prog;
    PGconn *conn = NULL;
    PGresult *res = NULL;
    char *snapshot_literal = NULL, *sql = NULL;
    char lsn[DS_LSN_STRLEN];
    uint32_t xid = 0;
    int first_nonempty = -1, last_nonempty = -1;

    memset(stats, 0, sizeof(*stats));
    memset(&prog, 0, sizeof(prog));
    prog.bar = opt->progress_bar;
    prog.what = "backfill";
    prog.all_tables = true;
    if (!tables || !changes) {
        ds_fail(errstr, errstr_size, "out of memory");
        goto done;
    }
    conn = ds_replication_connect_sql(opt->conninfo, errstr, errstr_size);
    if (!conn)
        goto done;
    /* The read may take hours: no statement timeout may cut it; and COPY must send text in
     * the database's encoding, as pgoutput does. */
    res = PQexec(conn, "SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0; "
                       "SELECT pg_catalog.set_config('client_encoding', "
                       "pg_catalog.current_setting('server_encoding'), false)");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ds_fail(errstr, errstr_size, "cannot prepare the backfill session: %s", ds_pg_error(conn));
        goto done;
    }
    PQclear(res);
    res = PQexec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ds_fail(errstr, errstr_size, "cannot begin the backfill transaction: %s",
                ds_pg_error(conn));
        goto done;
    }
    PQclear(res);
    res = NULL;
    if (opt->snapshot_name) {
        snapshot_literal = PQescapeLiteral(conn, opt->snapshot_name, strlen(opt->snapshot_name));
        if (!snapshot_literal ||
            asprintf(&sql, "SET TRANSACTION SNAPSHOT %s", snapshot_literal) < 0) {
            sql = NULL;
            ds_fail(errstr, errstr_size, "out of memory");
            goto done;
        }
        res = PQexec(conn, sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            ds_fail(errstr, errstr_size, "cannot import the slot's snapshot %s: %s",
                    opt->snapshot_name, ds_pg_error(conn));
            goto done;
        }
        PQclear(res);
    }
    res = PQexec(conn, "SELECT pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        ds_fail(errstr, errstr_size, "cannot read the snapshot's xmin: %s", ds_pg_error(conn));
        goto done;
    }
    /* xid8 carries the epoch in its high half; txId is the 32-bit xid, as pgoutput's. */
    xid = (uint32_t)strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    res = NULL;

    prog.start_us = ds_now_us();
    for (int i = 0; i < catalog->ntables; i++) {
        tables[i].src = &catalog->tables[i];
        if (!describe_table(conn, opt->publication, &tables[i], errstr, errstr_size) ||
            !count_rows(conn, &tables[i], errstr, errstr_size))
            goto done;
        prog.total_rows += tables[i].total;
        if (tables[i].total > 0) {
            if (first_nonempty < 0)
                first_nonempty = i;
            last_nonempty = i;
        }
    }
    ds_info("initial backfill: %d tables, %" PRId64 " rows, under the snapshot of consistent "
            "point %s",
            catalog->ntables, prog.total_rows, ds_lsn_format(opt->consistent_lsn, lsn));
    for (int i = 0; i < catalog->ntables; i++) {
        result = read_table(conn, opt, changes, &tables[i], i == first_nonempty, i == last_nonempty,
                            xid, &prog, errstr, errstr_size);
        if (result != DS_BACKFILL_DONE)
            goto done;
        result = DS_BACKFILL_FAILED;
    }
    res = PQexec(conn, "COMMIT");
    PQclear(res);
    res = NULL;
    stats->rows = (uint64_t)prog.done_rows;
    stats->seconds = (double)(ds_now_us() - prog.start_us) / 1e6;
    result = DS_BACKFILL_DONE;

done:
    if (result != DS_BACKFILL_DONE) {
        stats->rows = (uint64_t)prog.done_rows;
        stats->seconds = prog.start_us ? (double)(ds_now_us() - prog.start_us) / 1e6 : 0;
    }
    if (prog.bar && prog.table && result != DS_BACKFILL_DONE)
        fputc('\n', stderr);
    PQclear(res);
    free(sql);
    if (snapshot_literal)
        PQfreemem(snapshot_literal);
    PQfinish(conn);
    if (tables)
        for (int i = 0; i < catalog->ntables; i++)
            table_free(&tables[i]);
    free(tables);
    ds_changes_free(changes);
    return result;
}
