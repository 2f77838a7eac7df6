/*
 * preflight.c: source checks and publication setup before capture streams.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "dualsync/buf.h"
#include "dualsync/log.h"
#include "dualsync/pgutil.h"
#include "dualsync/preflight.h"

/* Reads one identifier at *p (quoted or not) into a new string; advances *p. */
static char *read_identifier(const char **p)
{
    const char *s = *p;
    ds_buf_t out = DS_BUF_INIT;

    if (*s == '"') {
        s++;
        for (;;) {
            if (*s == '\0')
                goto bad;
            if (*s == '"') {
                if (s[1] == '"') {
                    ds_buf_append_char(&out, '"');
                    s += 2;
                    continue;
                }
                s++;
                break;
            }
            ds_buf_append_char(&out, *s++);
        }
    } else {
        while (*s && *s != '.' && *s != ',' && *s != '"')
            ds_buf_append_char(&out, (char)tolower((unsigned char)*s++));
    }
    if (out.len == 0)
        goto bad;
    *p = s;
    return out.data;
bad:
    ds_buf_free(&out);
    return NULL;
}

bool ds_qualified_name_split(const char *qualified, char **schema, char **table)
{
    const char *p = qualified;

    *schema = *table = NULL;
    *schema = read_identifier(&p);
    if (!*schema || *p != '.')
        goto bad;
    p++;
    *table = read_identifier(&p);
    if (!*table || *p != '\0')
        goto bad;
    return true;
bad:
    free(*schema);
    free(*table);
    *schema = *table = NULL;
    return false;
}

void ds_source_catalog_free(ds_source_catalog_t *catalog)
{
    if (!catalog)
        return;
    for (int i = 0; i < catalog->ntables; i++) {
        ds_source_table_t *t = &catalog->tables[i];

        free(t->schema);
        free(t->table);
        if (t->primary_key) {
            for (char **c = t->primary_key; *c; c++)
                free(*c);
            free(t->primary_key);
        }
        for (int c = 0; c < t->ncolumns; c++) {
            free(t->columns[c].name);
            free(t->columns[c].enum_values);
            free(t->columns[c].default_expr);
        }
        free(t->columns);
    }
    free(catalog->tables);
    free(catalog);
}

const ds_connect_column_t *ds_source_catalog_columns(void *ctx, const char *schema,
                                                     const char *table, int *ncolumns)
{
    const ds_source_catalog_t *catalog = ctx;

    *ncolumns = 0;
    for (int i = 0; i < catalog->ntables; i++) {
        if (strcmp(catalog->tables[i].schema, schema) == 0 &&
            strcmp(catalog->tables[i].table, table) == 0) {
            *ncolumns = catalog->tables[i].ncolumns;
            return catalog->tables[i].columns;
        }
    }
    return NULL;
}

const char *const *ds_source_catalog_primary_key(void *ctx, const char *schema,
                                                 const char *table)
{
    const ds_source_catalog_t *catalog = ctx;

    for (int i = 0; i < catalog->ntables; i++) {
        if (strcmp(catalog->tables[i].schema, schema) == 0 &&
            strcmp(catalog->tables[i].table, table) == 0)
            return (const char *const *)catalog->tables[i].primary_key;
    }
    return NULL;
}


/* Kafka takes topic names of at most 249 characters from a-z A-Z 0-9 . _ -; PostgreSQL
 * names may hold anything. A name Kafka refuses would stop capture at the table's first
 * change, with the slot already holding WAL, so it is refused before anything is created. */
static bool topic_name_ok(const char *prefix, const char *schema, const char *table)
{
    const char *parts[] = {schema, table};
    size_t len = strlen(prefix) + strlen(schema) + strlen(table) + 2;

    for (size_t i = 0; i < 2; i++)
        for (const char *p = parts[i]; *p; p++)
            if (!(isalnum((unsigned char)*p) && (unsigned char)*p < 0x80) && *p != '.' &&
                *p != '_' && *p != '-')
                return false;
    return len <= 249;
}

static bool check_wal_level(PGconn *conn, char *errstr, size_t errstr_size)
{
    PGresult *res = PQexec(conn, "SHOW wal_level");
    bool ok;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ds_fail(errstr, errstr_size, "cannot read wal_level: %s", ds_pg_error(conn));
        PQclear(res);
        return false;
    }
    ok = strcmp(PQgetvalue(res, 0, 0), "logical") == 0;
    if (!ok)
        ds_fail(errstr, errstr_size,
                "the source server runs with wal_level=%s, but logical replication needs "
                "wal_level=logical: run ALTER SYSTEM SET wal_level = logical (or set it in "
                "postgresql.conf) and restart the server",
                PQgetvalue(res, 0, 0));
    PQclear(res);
    return ok;
}

/* Fills @p t from the catalog: existence, kind, replica identity, primary key. */
static bool inspect_table(PGconn *conn, const ds_config_t *config, int index,
                          ds_source_table_t *t, bool *config_error, char *errstr,
                          size_t errstr_size)
{
    static const char *const sql =
        "SELECT c.relkind, c.relreplident, "
        "       (SELECT string_agg(quote_ident(a.attname), ',' "
        "                          ORDER BY array_position(i.indkey::int2[], a.attnum)) "
        "          FROM pg_catalog.pg_index i "
        "          JOIN pg_catalog.pg_attribute a "
        "            ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[]) "
        "         WHERE i.indrelid = c.oid AND i.indisprimary), "
        "       EXISTS (SELECT 1 FROM pg_catalog.pg_index i "
        "                WHERE i.indrelid = c.oid AND i.indisreplident) "
        "  FROM pg_catalog.pg_class c "
        "  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        " WHERE n.nspname = $1 AND c.relname = $2";
    const char *params[2] = {t->schema, t->table};
    const char *name = config->tables[index];
    PGresult *res = PQexecParams(conn, sql, 2, NULL, params, NULL, NULL, 0);
    bool ok = false;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ds_fail(errstr, errstr_size, "cannot inspect table %s: %s", name, ds_pg_error(conn));
        goto done;
    }
    if (PQntuples(res) == 0) {
        *config_error = true;
        ds_fail(errstr, errstr_size,
                "%s: $.source.tables[%d]: table %s does not exist in the source database",
                config->path, index, name);
        goto done;
    }
    if (strchr("rp", PQgetvalue(res, 0, 0)[0]) == NULL) {
        *config_error = true;
        ds_fail(errstr, errstr_size,
                "%s: $.source.tables[%d]: %s is not a table (relkind '%s'); only tables can be "
                "published",
                config->path, index, name, PQgetvalue(res, 0, 0));
        goto done;
    }
    t->replident = PQgetvalue(res, 0, 1)[0];

    if (!PQgetisnull(res, 0, 2)) {
        /* The names came back quote_ident()ed and comma-separated; split them. */
        const char *p = PQgetvalue(res, 0, 2);
        size_t n = 1;

        for (const char *q = p; *q; q++)
            n += *q == ',';
        t->primary_key = calloc(n + 1, sizeof(char *));
        if (!t->primary_key) {
            ds_fail(errstr, errstr_size, "out of memory");
            goto done;
        }
        for (size_t k = 0; k < n; k++) {
            t->primary_key[k] = read_identifier(&p);
            if (!t->primary_key[k] || (*p != ',' && *p != '\0')) {
                ds_fail(errstr, errstr_size, "cannot parse the primary key of %s", name);
                goto done;
            }
            if (*p == ',')
                p++;
        }
    }

    switch (t->replident) {
    case 'n':
        ds_fail(errstr, errstr_size,
                "table %s has REPLICA IDENTITY NOTHING, so PostgreSQL cannot publish its updates "
                "and deletes: run ALTER TABLE %s REPLICA IDENTITY DEFAULT (it needs a primary "
                "key) or REPLICA IDENTITY FULL",
                name, name);
        goto done;
    case 'd':
        if (!t->primary_key) {
            ds_fail(errstr, errstr_size,
                    "table %s has no primary key and REPLICA IDENTITY DEFAULT, so PostgreSQL "
                    "would reject its UPDATE and DELETE once published: add a primary key, or "
                    "run ALTER TABLE %s REPLICA IDENTITY FULL",
                    name, name);
            goto done;
        }
        break;
    case 'i':
        if (strcmp(PQgetvalue(res, 0, 3), "t") != 0) {
            ds_fail(errstr, errstr_size,
                    "table %s has REPLICA IDENTITY USING INDEX but the index is gone: run ALTER "
                    "TABLE %s REPLICA IDENTITY DEFAULT or FULL",
                    name, name);
            goto done;
        }
        break;
    default:
        break;
    }
    ok = true;
done:
    PQclear(res);
    return ok;
}

/*
 * What the Connect schemas need of each column and pgoutput's Relation message does not say:
 * NOT NULL (Debezium makes every other field optional), a domain's base type (Debezium
 * describes a domain column as its base type) and an enum's labels (io.debezium.data.Enum's
 * "allowed"), also for an array of an enum. Read once, here: a column added later is
 * described from the Relation message alone, as optional.
 */
static bool inspect_columns(PGconn *conn, const char *name, ds_source_table_t *t, char *errstr,
                            size_t errstr_size)
{
    static const char *const sql =
        "SELECT a.attname, a.attnotnull, "
        "       CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.oid END, "
        "       CASE WHEN ty.typtype = 'd' THEN ty.typtypmod ELSE -1 END, "
        "       (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) "
        "          FROM pg_catalog.pg_enum e "
        "         WHERE e.enumtypid = CASE WHEN ty.typtype = 'e' THEN ty.oid "
        "                                  WHEN el.typtype = 'e' THEN el.oid END), "
        "       el.typtype = 'e', "
        "       CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) "
        "       END "
        "  FROM pg_catalog.pg_attribute a "
        "  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
        "  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "  JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid "
        "  LEFT JOIN pg_catalog.pg_type el ON el.oid = ty.typelem AND ty.typcategory = 'A' "
        "  LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum "
        " WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped "
        " ORDER BY a.attnum";
    const char *params[2] = {t->schema, t->table};
    PGresult *res;
    bool ok = false;
    int n;

    /* pg_get_expr() writes a default's constants in the session's styles: the ones capture
     * reads values in, so a default parses as a value. */
    res = PQexec(conn, "SET DateStyle = ISO; SET IntervalStyle = iso_8601; SET TimeZone = 'UTC'; "
                       "SET extra_float_digits = 3");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ds_fail(errstr, errstr_size, "cannot set the session's date styles: %s", ds_pg_error(conn));
        PQclear(res);
        return false;
    }
    PQclear(res);
    res = PQexecParams(conn, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ds_fail(errstr, errstr_size, "cannot read the columns of table %s: %s", name,
                ds_pg_error(conn));
        goto done;
    }
    n = PQntuples(res);
    t->columns = calloc(n > 0 ? (size_t)n : 1, sizeof(*t->columns));
    if (!t->columns) {
        ds_fail(errstr, errstr_size, "out of memory");
        goto done;
    }
    t->ncolumns = n;
    for (int r = 0; r < n; r++) {
        ds_connect_column_t *col = &t->columns[r];

        col->name = strdup(PQgetvalue(res, r, 0));
        col->not_null = strcmp(PQgetvalue(res, r, 1), "t") == 0;
        col->base_oid = (uint32_t)strtoul(PQgetvalue(res, r, 2), NULL, 10);
        col->base_typmod = (int32_t)strtol(PQgetvalue(res, r, 3), NULL, 10);
        if (!PQgetisnull(res, r, 4))
            col->enum_values = strdup(PQgetvalue(res, r, 4));
        col->enum_array = strcmp(PQgetvalue(res, r, 5), "t") == 0;
        if (!PQgetisnull(res, r, 6))
            col->default_expr = strdup(PQgetvalue(res, r, 6));
        if (!col->name || (!PQgetisnull(res, r, 4) && !col->enum_values) ||
            (!PQgetisnull(res, r, 6) && !col->default_expr)) {
            ds_fail(errstr, errstr_size, "out of memory");
            goto done;
        }
    }
    ok = true;
done:
    PQclear(res);
    return ok;
}

/*
 * The replication slot as far as an ordinary connection can tell, checked before the
 * publication is created: a slot capture cannot use must stop it with nothing created.
 * *exists says whether the slot is there already.
 */
static bool check_slot(PGconn *conn, const ds_config_t *config, bool *exists, bool *held,
                       char *errstr, size_t errstr_size)
{
    const char *params[1] = {config->slot};
    PGresult *res = PQexecParams(
        conn,
        "SELECT s.plugin, s.slot_type, s.database, s.active_pid, current_database(), "
        "       (SELECT rolsuper OR rolreplication FROM pg_catalog.pg_roles "
        "         WHERE rolname = current_user), "
        "       (SELECT count(*) FROM pg_catalog.pg_replication_slots), "
        "       current_setting('max_replication_slots')::int, current_user "
        "  FROM (SELECT 1) one "
        "  LEFT JOIN pg_catalog.pg_replication_slots s ON s.slot_name = $1",
        1, NULL, params, NULL, NULL, 0);
    bool ok = false;

    *exists = false;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        ds_fail(errstr, errstr_size, "cannot look up replication slot \"%s\": %s", config->slot,
                ds_pg_error(conn));
        goto done;
    }
    if (strcmp(PQgetvalue(res, 0, 5), "t") != 0) {
        ds_fail(errstr, errstr_size,
                "role \"%s\" may not use replication (it has neither the REPLICATION attribute "
                "nor superuser): run ALTER ROLE %s REPLICATION, or connect as a role that has it",
                PQgetvalue(res, 0, 8), PQgetvalue(res, 0, 8));
        goto done;
    }
    *exists = !PQgetisnull(res, 0, 1);
    if (!*exists) {
        if (atoi(PQgetvalue(res, 0, 6)) >= atoi(PQgetvalue(res, 0, 7))) {
            ds_fail(errstr, errstr_size,
                    "replication slot \"%s\" cannot be created: all %s replication slots of the "
                    "server (max_replication_slots) are in use; drop an unused slot, or raise "
                    "max_replication_slots and restart the server",
                    config->slot, PQgetvalue(res, 0, 7));
            goto done;
        }
        ok = true;
        goto done;
    }
    if (strcmp(PQgetvalue(res, 0, 1), "logical") != 0 ||
        strcmp(PQgetvalue(res, 0, 0), "pgoutput") != 0) {
        ds_fail(errstr, errstr_size,
                "replication slot \"%s\" exists but is not a logical pgoutput slot (plugin "
                "\"%s\"); drop it or set source.slot to another name",
                config->slot, PQgetvalue(res, 0, 0));
        goto done;
    }
    if (strcmp(PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 4)) != 0) {
        ds_fail(errstr, errstr_size,
                "replication slot \"%s\" belongs to database \"%s\", not \"%s\"; set "
                "source.slot to another name",
                config->slot, PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 4));
        goto done;
    }
    if (!PQgetisnull(res, 0, 3)) {
        *held = true;
        ds_fail(errstr, errstr_size,
                "replication slot \"%s\" is in use by process %s (another capture of this slot, "
                "or another client): stop it first, or set source.slot to another name",
                config->slot, PQgetvalue(res, 0, 3));
        goto done;
    }
    ok = true;
done:
    PQclear(res);
    return ok;
}

/* Creates the publication, or adds the configured tables it lacks. */
static bool prepare_publication(PGconn *conn, const ds_config_t *config,
                                ds_source_catalog_t *catalog, char *errstr, size_t errstr_size)
{
    const char *pub = config->publication;
    const char *params[3] = {pub, NULL, NULL};
    PGresult *res = NULL;
    ds_buf_t sql = DS_BUF_INIT;
    char *pub_ident = PQescapeIdentifier(conn, pub, strlen(pub));
    bool exists, ok = false;
    int added = 0;

    if (!pub_ident) {
        ds_fail(errstr, errstr_size, "out of memory");
        goto done;
    }
    res = PQexecParams(conn,
                       "SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate "
                       "  FROM pg_catalog.pg_publication WHERE pubname = $1",
                       1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ds_fail(errstr, errstr_size, "cannot look up publication \"%s\": %s", pub,
                ds_pg_error(conn));
        goto done;
    }
    exists = PQntuples(res) == 1;
    if (exists && (strcmp(PQgetvalue(res, 0, 2), "t") != 0 ||
                   strcmp(PQgetvalue(res, 0, 3), "t") != 0 ||
                   strcmp(PQgetvalue(res, 0, 1), "t") != 0))
        ds_warning("publication \"%s\" does not publish every insert, update and delete; "
                   "changes it leaves out never reach Kafka",
                   pub);
    PQclear(res);
    res = NULL;

    for (int i = 0; i < catalog->ntables; i++) {
        const ds_source_table_t *t = &catalog->tables[i];
        char *schema_ident = PQescapeIdentifier(conn, t->schema, strlen(t->schema));
        char *table_ident = PQescapeIdentifier(conn, t->table, strlen(t->table));
        bool member = false;

        if (exists) {
            params[1] = t->schema;
            params[2] = t->table;
            /* pg_publication_tables lists a partitioned table's partitions instead of the
             * table itself unless publish_via_partition_root is set; pg_publication_rel holds
             * the table as it was added. */
            res = PQexecParams(conn,
                               "SELECT 1 FROM pg_catalog.pg_publication_tables "
                               " WHERE pubname = $1 AND schemaname = $2 AND tablename = $3 "
                               "UNION ALL "
                               "SELECT 1 FROM pg_catalog.pg_publication_rel pr "
                               "  JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid "
                               "  JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid "
                               "  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                               " WHERE p.pubname = $1 AND n.nspname = $2 AND c.relname = $3",
                               3, NULL, params, NULL, NULL, 0);
            if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                ds_fail(errstr, errstr_size, "cannot read publication \"%s\": %s", pub,
                        ds_pg_error(conn));
                PQfreemem(schema_ident);
                PQfreemem(table_ident);
                goto done;
            }
            member = PQntuples(res) > 0;
            PQclear(res);
            res = NULL;
        }
        if (!member) {
            if (!schema_ident || !table_ident) {
                PQfreemem(schema_ident);
                PQfreemem(table_ident);
                ds_fail(errstr, errstr_size, "out of memory");
                goto done;
            }
            ds_buf_appendf(&sql, "%s%s.%s", added ? ", " : "", schema_ident, table_ident);
            added++;
        }
        PQfreemem(schema_ident);
        PQfreemem(table_ident);
    }
    if (added == 0) {
        ok = true;
        goto done;
    }
    if (!config->create_publication) {
        ds_fail(errstr, errstr_size,
                "publication \"%s\" %s: create it (or add the tables: %s), or set "
                "source.create_publication to true",
                pub, exists ? "lacks some configured tables" : "does not exist", sql.data);
        goto done;
    }
    {
        char *stmt = NULL;

        /* publish_via_partition_root: changes of a partitioned table are published as the
         * table's own (its topic, its name in source.table), not as its partitions'. It
         * changes nothing for other tables. */
        if (asprintf(&stmt,
                     exists ? "ALTER PUBLICATION %s ADD TABLE %s"
                            : "CREATE PUBLICATION %s FOR TABLE %s "
                              "WITH (publish_via_partition_root = true)",
                     pub_ident, sql.data) < 0) {
            ds_fail(errstr, errstr_size, "out of memory");
            goto done;
        }
        res = PQexec(conn, stmt);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            ds_fail(errstr, errstr_size, "%s failed: %s", stmt, ds_pg_error(conn));
            free(stmt);
            goto done;
        }
        ds_info("%s", stmt);
        free(stmt);
        catalog->created_publication = !exists;
    }
    ok = true;
done:
    PQclear(res);
    PQfreemem(pub_ident);
    ds_buf_free(&sql);
    return ok;
}

bool ds_preflight_run(const ds_config_t *config, ds_source_catalog_t **catalog_out,
                      bool *config_error, bool *slot_held, char *errstr, size_t errstr_size)
{
    ds_source_catalog_t *catalog = calloc(1, sizeof(*catalog));
    PGconn *conn = NULL;
    bool ok = false;

    *catalog_out = NULL;
    *slot_held = false;
    /* Until the connection, every failure is the file's. */
    *config_error = true;
    if (!catalog || !(catalog->tables = calloc((size_t)config->ntables, sizeof(*catalog->tables)))) {
        ds_fail(errstr, errstr_size, "out of memory");
        goto done;
    }
    catalog->ntables = config->ntables;
    for (int i = 0; i < config->ntables; i++) {
        if (!ds_qualified_name_split(config->tables[i], &catalog->tables[i].schema,
                                     &catalog->tables[i].table)) {
            ds_fail(errstr, errstr_size,
                    "%s: $.source.tables[%d]: \"%s\" is not a schema-qualified table name",
                    config->path, i, config->tables[i]);
            goto done;
        }
        if (!topic_name_ok(config->topic_prefix, catalog->tables[i].schema,
                           catalog->tables[i].table)) {
            ds_fail(errstr, errstr_size,
                    "%s: $.source.tables[%d]: topic \"%s.%s.%s\" is not a name Kafka accepts "
                    "(at most 249 of a-z A-Z 0-9 . _ -), so %s cannot be captured under its "
                    "current name",
                    config->path, i, config->topic_prefix, catalog->tables[i].schema,
                    catalog->tables[i].table, config->tables[i]);
            goto done;
        }
    }

    if (!ds_pg_conninfo_check(config->source_conninfo, "source.conninfo", errstr, errstr_size))
        goto done;
    *config_error = false;
    conn = PQconnectdb(config->source_conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        ds_fail(errstr, errstr_size, "cannot connect to the source database: %s",
                ds_pg_error(conn));
        goto done;
    }
    if (!check_wal_level(conn, errstr, errstr_size))
        goto done;
    for (int i = 0; i < catalog->ntables; i++) {
        if (!inspect_table(conn, config, i, &catalog->tables[i], config_error, errstr,
                           errstr_size) ||
            !inspect_columns(conn, config->tables[i], &catalog->tables[i], errstr, errstr_size))
            goto done;
    }
    /* Every check before the publication is created: a capture that refuses to start
     * leaves nothing behind. */
    if (!check_slot(conn, config, &catalog->slot_existed, slot_held, errstr, errstr_size) ||
        !prepare_publication(conn, config, catalog, errstr, errstr_size))
        goto done;
    ok = true;
done:
    PQfinish(conn);
    if (ok)
        *catalog_out = catalog;
    else
        ds_source_catalog_free(catalog);
    return ok;
}

bool ds_preflight_undo(const ds_config_t *config, ds_source_catalog_t *catalog, char *errstr,
                       size_t errstr_size)
{
    PGconn *conn;
    PGresult *res;
    char *pub_ident, *stmt = NULL;
    bool ok;

    if (!catalog || !catalog->created_publication)
        return true;
    conn = PQconnectdb(config->source_conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        ds_fail(errstr, errstr_size, "cannot connect to the source database: %s",
                ds_pg_error(conn));
        PQfinish(conn);
        return false;
    }
    pub_ident = PQescapeIdentifier(conn, config->publication, strlen(config->publication));
    if (!pub_ident || asprintf(&stmt, "DROP PUBLICATION IF EXISTS %s", pub_ident) < 0) {
        PQfreemem(pub_ident);
        PQfinish(conn);
        return ds_fail(errstr, errstr_size, "out of memory");
    }
    res = PQexec(conn, stmt);
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (ok) {
        ds_info("%s (capture created it, and did not start)", stmt);
        catalog->created_publication = false;
    } else {
        ds_fail(errstr, errstr_size, "%s failed: %s", stmt, ds_pg_error(conn));
    }
    PQclear(res);
    free(stmt);
    PQfreemem(pub_ident);
    PQfinish(conn);
    return ok;
}
