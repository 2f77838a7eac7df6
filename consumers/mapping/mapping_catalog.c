/*
 * mapping_catalog.c: checks the targets of one connection against that database's catalog
 * before apply starts, reporting every problem with the file position and JSON path of the
 * mapping field it comes from.
 *
 * First the specific checks, each with its own message: the table exists and is a table;
 * every mapped column exists and can be written; NOT NULL columns without a default are set;
 * a unique index (or the primary key) covers exactly the key columns; constants read as their
 * column's type; cast types exist; lookup tables and columns exist. Then, for targets that
 * passed, the generated statements are prepared, which catches what only the planner knows
 * (a value whose type does not fit its column, a mistake inside an {"sql": ...}).
 *
 * Everything runs in one transaction that is rolled back: the dualsync schema the statements
 * refer to is created inside it when missing, and nothing stays behind.
 */
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapping_internal.h"

typedef struct attribute {
    char *name;       /* attname */
    char *type;       /* format_type(): "timestamp(3) without time zone", "\"UserRole\"" */
    int attnum;       /* its number */
    bool not_null;    /* attnotnull */
    bool has_default; /* atthasdef, an identity or a generated column */
    bool generated;   /* a generated column: cannot be written */
} attribute_t;

typedef struct checker {
    PGconn *conn;             /* the connection checked */
    const char *connection;   /* its name in the config */
    ds_buf_t problems;        /* one per line */
    int nproblems;            /* their number */
    bool broken;              /* the connection failed: stop */
    char broken_message[512]; /* why */
    bool schema_ready;        /* the dualsync schema exists in this transaction */
    bool schema_failed;       /* creating it failed: statements cannot be prepared */
} checker_t;

static void problem(checker_t *ck, const char *where, const char *fmt, ...) DS_PRINTF(3, 4);

static void problem(checker_t *ck, const char *where, const char *fmt, ...)
{
    char message[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    if (ck->problems.len)
        ds_buf_append_char(&ck->problems, '\n');
    ds_buf_appendf(&ck->problems, "%s: %s", where, message);
    ck->nproblems++;
}

static const char *primary_message(const PGresult *res, PGconn *conn)
{
    const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

    return m ? m : PQerrorMessage(conn);
}

/* Runs a statement that must succeed (transaction control); false marks the check broken. */
static bool command(checker_t *ck, const char *sql)
{
    PGresult *res;

    if (ck->broken)
        return false;
    res = PQexec(ck->conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(ck->broken_message, sizeof(ck->broken_message), "%s failed: %s", sql,
                 primary_message(res, ck->conn));
        ck->broken = true;
        PQclear(res);
        return false;
    }
    PQclear(res);
    return true;
}

/*
 * Runs a query that may fail on its own (a bad constant, an unknown type) inside a savepoint,
 * so the failure does not end the transaction. Returns the result (caller clears), or NULL
 * with *message set (borrowed until the next call).
 */
static PGresult *attempt(checker_t *ck, const char *sql, int nparams, const char *const *values,
                         char *message, size_t message_size)
{
    PGresult *res;

    snprintf(message, message_size, "the connection failed");
    if (!command(ck, "SAVEPOINT ds_mapping_check"))
        return NULL;
    /* Without parameters, the simple protocol, which takes several statements. */
    res = nparams ? PQexecParams(ck->conn, sql, nparams, NULL, values, NULL, NULL, 0)
                  : PQexec(ck->conn, sql);
    if (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK) {
        command(ck, "RELEASE SAVEPOINT ds_mapping_check");
        return res;
    }
    snprintf(message, message_size, "%s", primary_message(res, ck->conn));
    PQclear(res);
    if (PQstatus(ck->conn) != CONNECTION_OK) {
        snprintf(ck->broken_message, sizeof(ck->broken_message), "%s", message);
        ck->broken = true;
        return NULL;
    }
    command(ck, "ROLLBACK TO SAVEPOINT ds_mapping_check");
    return NULL;
}

/* Prepares @p sql as the unnamed statement inside a savepoint. */
static bool prepares(checker_t *ck, const char *sql, char *message, size_t message_size)
{
    PGresult *res;
    bool ok;

    if (!command(ck, "SAVEPOINT ds_mapping_check"))
        return true; /* reported as broken */
    res = PQprepare(ck->conn, "", sql, 0, NULL);
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(message, message_size, "%s", primary_message(res, ck->conn));
    PQclear(res);
    command(ck,
            ok ? "RELEASE SAVEPOINT ds_mapping_check" : "ROLLBACK TO SAVEPOINT ds_mapping_check");
    return ok;
}

/* The table's oid and relkind; false when it does not exist. */
static bool find_relation(checker_t *ck, const char *schema, const char *table, char *oid,
                          size_t oid_size, char *relkind)
{
    const char *values[2] = {schema, table};
    char message[512];
    PGresult *res = attempt(ck,
                            "SELECT c.oid, c.relkind FROM pg_catalog.pg_class c "
                            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = $1 AND c.relname = $2",
                            2, values, message, sizeof(message));
    bool found = res && PQntuples(res) == 1;

    if (found) {
        snprintf(oid, oid_size, "%s", PQgetvalue(res, 0, 0));
        *relkind = PQgetvalue(res, 0, 1)[0];
    }
    PQclear(res);
    return found;
}

static int load_attributes(checker_t *ck, const char *oid, attribute_t **out)
{
    const char *values[1] = {oid};
    char message[512];
    PGresult *res = attempt(ck,
                            "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), "
                            "a.attnum, a.attnotnull, a.atthasdef OR a.attidentity <> '' OR "
                            "a.attgenerated <> '', a.attgenerated <> '' "
                            "FROM pg_catalog.pg_attribute a "
                            "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped "
                            "ORDER BY a.attnum",
                            1, values, message, sizeof(message));
    int n = res ? PQntuples(res) : 0;

    *out = ds_mapping_xcalloc((size_t)n + 1, sizeof(**out));
    for (int i = 0; i < n; i++) {
        (*out)[i].name = ds_mapping_xstrdup(PQgetvalue(res, i, 0));
        (*out)[i].type = ds_mapping_xstrdup(PQgetvalue(res, i, 1));
        (*out)[i].attnum = atoi(PQgetvalue(res, i, 2));
        (*out)[i].not_null = PQgetvalue(res, i, 3)[0] == 't';
        (*out)[i].has_default = PQgetvalue(res, i, 4)[0] == 't';
        (*out)[i].generated = PQgetvalue(res, i, 5)[0] == 't';
    }
    PQclear(res);
    return n;
}

static void free_attributes(attribute_t *a, int n)
{
    for (int i = 0; i < n; i++) {
        free(a[i].name);
        free(a[i].type);
    }
    free(a);
}

static const attribute_t *find_attribute(const attribute_t *a, int n, const char *name)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(a[i].name, name) == 0)
            return &a[i];
    }
    return NULL;
}

/* " (did you mean \"x\"?)" for a column name close to one of the table's, or "". */
static void column_hint(const attribute_t *a, int n, const char *name, char *out, size_t size)
{
    const char **names = ds_mapping_xcalloc((size_t)n + 1, sizeof(char *));
    const char *close;

    for (int i = 0; i < n; i++)
        names[i] = a[i].name;
    close = ds_mapping_suggest(name, names);
    snprintf(out, size, close ? " (did you mean \"%s\"?)" : "", close);
    free(names);
}

static void check_column_exists(checker_t *ck, const attribute_t *a, int n, const char *where,
                                const char *schema, const char *table, const char *column)
{
    char h[256];

    if (find_attribute(a, n, column))
        return;
    column_hint(a, n, column, h, sizeof(h));
    problem(ck, where, "column \"%s\" does not exist in table %s.%s%s", column, schema, table, h);
}

/* Walks an expression for lookups and casts to check. */
static void check_expr(checker_t *ck, const ds_mapping_expr_t *e)
{
    char message[512];

    if (!e)
        return;
    if (e->kind == EXPR_LOOKUP) {
        char oid[32], relkind;

        if (!find_relation(ck, e->lookup_schema, e->lookup_table, oid, sizeof(oid), &relkind)) {
            if (!ck->broken)
                problem(ck, e->table_where,
                        "lookup table %s.%s does not exist in connection \"%s\"", e->lookup_schema,
                        e->lookup_table, ck->connection);
        } else {
            attribute_t *a;
            int n = load_attributes(ck, oid, &a);

            check_column_exists(ck, a, n, e->column_where, e->lookup_schema, e->lookup_table,
                                e->lookup_column);
            for (int i = 0; i < e->nargs; i++)
                check_column_exists(ck, a, n, e->match_where[i], e->lookup_schema, e->lookup_table,
                                    e->match_columns[i]);
            free_attributes(a, n);
        }
    }
    if (e->kind == EXPR_CAST) {
        const char *values[1] = {e->text};
        PGresult *res =
            attempt(ck, "SELECT pg_catalog.to_regtype($1)", 1, values, message, sizeof(message));

        if (!res && !ck->broken)
            problem(ck, e->table_where, "type \"%s\" is not a type name: %s", e->text, message);
        else if (res && PQgetisnull(res, 0, 0))
            problem(ck, e->table_where, "type \"%s\" does not exist in connection \"%s\"", e->text,
                    ck->connection);
        PQclear(res);
    }
    for (int i = 0; i < e->nargs; i++)
        check_expr(ck, e->args[i]);
}

/* Whether some valid unique index of @p oid covers exactly the key columns (any order). */
static void check_unique_key(checker_t *ck, const ds_mapping_target_t *t, const char *oid,
                             const attribute_t *a, int n)
{
    const char *values[1] = {oid};
    char message[512];
    int attnums[64], nattnums = 0;
    bool found = false, deferrable = false;
    PGresult *res;
    ds_buf_t cols = DS_BUF_INIT;

    for (int i = 0; i < t->nkey; i++) {
        const attribute_t *att = find_attribute(a, n, t->columns[t->key[i]].name);

        if (!att || nattnums == (int)DS_ARRAY_LEN(attnums))
            return; /* the missing column is reported already */
        attnums[nattnums++] = att->attnum;
    }
    res = attempt(ck,
                  "SELECT i.indkey::text, i.indimmediate FROM pg_catalog.pg_index i "
                  "WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid "
                  "AND i.indpred IS NULL AND i.indexprs IS NULL",
                  1, values, message, sizeof(message));
    for (int r = 0; res && r < PQntuples(res) && !found; r++) {
        /* indkey reads "2 1": the index's column numbers. */
        int count = 0, matched = 0;
        char *p = PQgetvalue(res, r, 0), *end;

        for (;;) {
            long attnum = strtol(p, &end, 10);
            if (end == p)
                break;
            count++;
            for (int k = 0; k < nattnums; k++)
                matched += attnums[k] == attnum;
            p = end;
        }
        if (count == nattnums && matched == nattnums) {
            if (PQgetvalue(res, r, 1)[0] == 't' || t->pub.in_place)
                found = true;
            else
                deferrable = true;
        }
    }
    PQclear(res);
    /* A fan-out update is meant to reach every row its key matches. */
    if (found || ck->broken || t->pub.fan_out)
        return;
    for (int i = 0; i < t->nkey; i++) {
        if (i)
            ds_buf_append_str(&cols, ", ");
        ds_buf_append_ident(&cols, t->columns[t->key[i]].name);
    }
    if (deferrable)
        problem(ck, t->key_where,
                "the unique index on exactly (%s) of %s is deferrable, which ON CONFLICT cannot "
                "use; make it NOT DEFERRABLE",
                cols.data, t->pub.table);
    else if (t->pub.in_place)
        problem(ck, t->key_where,
                "no unique index or primary key of %s covers exactly the key (%s); add one, "
                "e.g. CREATE UNIQUE INDEX ON %s (%s), or declare \"fan_out\": true to update "
                "every row the key matches",
                t->pub.table, cols.data, t->pub.table, cols.data);
    else
        problem(ck, t->key_where,
                "no unique index or primary key of %s covers exactly the key (%s); add one, "
                "e.g. CREATE UNIQUE INDEX ON %s (%s)",
                t->pub.table, cols.data, t->pub.table, cols.data);
    ds_buf_free(&cols);
}

static void check_statements(checker_t *ck, const ds_mapping_target_t *t)
{
    struct {
        const char *what;
        const char *sql;
    } statements[] = {
        {t->pub.in_place ? "in-place update" : "upsert", t->pub.write_sql},
        {"unlink", t->pub.unlink_sql},
        {"truncate", t->pub.truncate_sql},
        {"settle", t->pub.settle_sql},
    };
    char message[1024];

    if (!ck->schema_ready && !ck->schema_failed) {
        PGresult *res = attempt(ck, DS_APPLY_SCHEMA_SQL, 0, NULL, message, sizeof(message));

        if (res) {
            ck->schema_ready = true;
        } else if (!ck->broken) {
            ck->schema_failed = true;
            problem(ck, t->where,
                    "cannot create the dualsync schema in connection \"%s\" to check the "
                    "statements: %s",
                    ck->connection, message);
        }
        PQclear(res);
    }
    if (!ck->schema_ready)
        return;
    for (size_t i = 0; i < DS_ARRAY_LEN(statements); i++) {
        if (statements[i].sql && !prepares(ck, statements[i].sql, message, sizeof(message)) &&
            !ck->broken)
            problem(ck, t->where, "the generated %s statement does not prepare: %s",
                    statements[i].what, message);
    }
}

static void check_target(checker_t *ck, const ds_mapping_target_t *t)
{
    char oid[32], relkind, message[512];
    attribute_t *a = NULL;
    int n = 0, before = ck->nproblems;

    for (int i = 0; i < t->ncolumns; i++)
        check_expr(ck, t->columns[i].expr);
    if (!find_relation(ck, t->schema, t->table, oid, sizeof(oid), &relkind)) {
        if (!ck->broken)
            problem(ck, t->table_where, "table %s.%s does not exist in connection \"%s\"",
                    t->schema, t->table, ck->connection);
        return;
    }
    if (relkind != 'r' && relkind != 'p') {
        problem(ck, t->table_where, "%s.%s is not a table (relkind '%c')", t->schema, t->table,
                relkind);
        return;
    }
    n = load_attributes(ck, oid, &a);
    for (int i = 0; i < t->ncolumns; i++) {
        const ds_mapping_column_t *col = &t->columns[i];
        const attribute_t *att = find_attribute(a, n, col->name);
        char h[256];

        if (!att) {
            column_hint(a, n, col->name, h, sizeof(h));
            problem(ck, col->where, "column \"%s\" does not exist in table %s.%s%s", col->name,
                    t->schema, t->table, h);
            continue;
        }
        if (att->generated) {
            problem(ck, col->where,
                    "column \"%s\" of %s.%s is a generated column, which "
                    "cannot be written",
                    col->name, t->schema, t->table);
            continue;
        }
        if (col->expr->kind == EXPR_CONST && col->expr->text) {
            /* A constant must read as the column's type, or every write would fail. */
            char *sql = ds_mapping_xasprintf("SELECT $1::%s", att->type);
            const char *values[1] = {col->expr->text};
            PGresult *res = attempt(ck, sql, 1, values, message, sizeof(message));

            if (!res && !ck->broken)
                problem(ck, col->where, "the constant \"%s\" is not a valid %s: %s",
                        col->expr->text, att->type, message);
            PQclear(res);
            free(sql);
        }
    }
    if (t->on_delete == ON_DELETE_SOFT) {
        const attribute_t *att = find_attribute(a, n, t->soft_column);

        if (!att)
            check_column_exists(ck, a, n, t->soft_where, t->schema, t->table, t->soft_column);
        else if (strncmp(att->type, "timestamp", 9) != 0 && strcmp(att->type, "date") != 0)
            problem(ck, t->soft_where,
                    "soft_delete column \"%s\" is of type %s; now() needs a timestamp or date "
                    "column",
                    t->soft_column, att->type);
    }
    if (!t->pub.in_place) {
        for (int i = 0; i < n; i++) {
            bool mapped = false;

            for (int c = 0; c < t->ncolumns && !mapped; c++)
                mapped = strcmp(t->columns[c].name, a[i].name) == 0;
            if (!mapped && a[i].not_null && !a[i].has_default)
                problem(ck, t->where,
                        "column \"%s\" of %s is NOT NULL without a default, and the target does "
                        "not set it: every insert would fail",
                        a[i].name, t->pub.table);
        }
    }
    check_unique_key(ck, t, oid, a, n);
    free_attributes(a, n);
    if (ck->nproblems == before && !ck->broken)
        check_statements(ck, t);
}

bool ds_mapping_set_check_catalog(const ds_mapping_set_t *set, const char *connection, void *conn,
                                  char *errstr, size_t errstr_size)
{
    checker_t ck = {.conn = conn, .connection = connection};
    bool ok;

    if (!conn || PQstatus(ck.conn) != CONNECTION_OK)
        return ds_fail(errstr, errstr_size, "catalog check of connection \"%s\": not connected",
                       connection);
    if (PQtransactionStatus(ck.conn) != PQTRANS_IDLE)
        return ds_fail(errstr, errstr_size,
                       "catalog check of connection \"%s\": the connection is inside a "
                       "transaction; the check runs (and rolls back) its own",
                       connection);
    /* IF NOT EXISTS notices about the dualsync schema would reach the runtime's stderr. */
    if (command(&ck, "BEGIN") && command(&ck, "SET LOCAL client_min_messages = warning")) {
        for (int i = 0; i < set->ntargets && !ck.broken; i++) {
            if (strcmp(set->targets[i].pub.connection, connection) == 0)
                check_target(&ck, &set->targets[i]);
        }
    }
    if (PQtransactionStatus(ck.conn) != PQTRANS_IDLE) {
        bool was_broken = ck.broken;
        ck.broken = false;
        command(&ck, "ROLLBACK");
        ck.broken |= was_broken;
    }
    if (ck.broken) {
        ds_fail(errstr, errstr_size, "catalog check of connection \"%s\": %s", connection,
                ck.broken_message);
        ds_buf_free(&ck.problems);
        return false;
    }
    ok = ck.nproblems == 0;
    if (!ok)
        snprintf(errstr, errstr_size, "%s", ck.problems.data);
    ds_buf_free(&ck.problems);
    return ok;
}
