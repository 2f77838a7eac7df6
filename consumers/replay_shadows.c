/*
 * replay_shadows.c: `dualsync replay`: the shadows, created or kept for a resumed run, or with
 * --in-place the live tables emptied behind the gate
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
 * 2. Shadows
 * ------------------------------------------------------------------------------------------- */

/* What a swap cannot carry over: refused, naming it. */
static bool check_swappable(replay_t *r, const rtable_t *t)
{
    static const char *const checks[][2] = {
        {"SELECT 'view or rule ' || r.ev_class::regclass::text FROM pg_catalog.pg_depend d"
         " JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::regclass"
         " AND d.objid = r.oid WHERE d.refclassid = 'pg_catalog.pg_class'::regclass"
         " AND d.refobjid = $1::regclass AND r.ev_class <> $1::regclass"
         " UNION SELECT 'rule ' || rulename FROM pg_catalog.pg_rewrite"
         " WHERE ev_class = $1::regclass"
         " UNION SELECT 'trigger ' || tgname FROM pg_catalog.pg_trigger"
         " WHERE tgrelid = $1::regclass AND NOT tgisinternal"
         " UNION SELECT 'row-level security policy ' || polname FROM pg_catalog.pg_policy"
         " WHERE polrelid = $1::regclass"
         " UNION SELECT 'publication ' || p.pubname FROM pg_catalog.pg_publication_rel pr"
         " JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid WHERE pr.prrelid = $1::regclass"
         " UNION SELECT 'inheritance or partitioning' FROM pg_catalog.pg_class c"
         " WHERE c.oid = $1::regclass AND (c.relkind <> 'r' OR c.relhassubclass"
         " OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid))",
         NULL},
    };
    const char *params[] = {t->live};
    PGresult *res;
    ds_buf_t what = DS_BUF_INIT;
    bool ok;

    if (!exec(r, checks[0][0], 1, params, PGRES_TUPLES_OK, &res, "inspecting a target table",
              NULL))
        return false;
    for (int i = 0; i < PQntuples(res); i++)
        ds_buf_appendf(&what, "%s%s", i ? ", " : "", PQgetvalue(res, i, 0));
    ok = PQntuples(res) == 0;
    r->refused = !ok;
    if (!ok)
        ds_fail(r->errstr, sizeof(r->errstr),
                "target \"%s\": table %s cannot be swapped for its rebuilt copy: it has %s, which "
                "the swap would not carry over to the new table (a view would keep reading the "
                "old one). Drop it for the replay and create it again after, or leave this "
                "table's mappings out (--mapping)",
                r->dbname, t->live, what.data);
    PQclear(res);
    ds_buf_free(&what);
    return ok;
}

/* Re-issues @p t's grants on its shadow (table and column privileges) and gives it T's owner. */
static bool copy_grants(replay_t *r, const rtable_t *t)
{
    const char *params[] = {t->live};
    PGresult *res;
    ds_buf_t sql = DS_BUF_INIT;
    bool ok = false;

    if (!exec(r,
              "SELECT NULL, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE"
              " quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END, a.privilege_type,"
              " a.is_grantable FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a"
              " WHERE c.oid = $1::regclass AND a.grantee <> c.relowner"
              " UNION ALL SELECT quote_ident(att.attname), CASE WHEN a.grantee = 0 THEN 'PUBLIC'"
              " ELSE quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END, a.privilege_type,"
              " a.is_grantable FROM pg_catalog.pg_attribute att,"
              " pg_catalog.aclexplode(att.attacl) a WHERE att.attrelid = $1::regclass"
              " AND att.attnum > 0 AND NOT att.attisdropped"
              " UNION ALL SELECT '', quote_ident(pg_catalog.pg_get_userbyid(c.relowner)),"
              " NULL, false FROM pg_catalog.pg_class c WHERE c.oid = $1::regclass"
              " AND c.relowner <> (SELECT oid FROM pg_catalog.pg_roles"
              " WHERE rolname = current_user)",
              1, params, PGRES_TUPLES_OK, &res, "reading a target table's privileges", NULL))
        return false;
    for (int i = 0; i < PQntuples(res); i++) {
        ds_buf_reset(&sql);
        if (PQgetisnull(res, i, 2)) /* the owner */
            ds_buf_appendf(&sql, "ALTER TABLE %s OWNER TO %s", t->shadow, PQgetvalue(res, i, 1));
        else if (PQgetisnull(res, i, 0))
            ds_buf_appendf(&sql, "GRANT %s ON %s TO %s%s", PQgetvalue(res, i, 2), t->shadow,
                           PQgetvalue(res, i, 1),
                           strcmp(PQgetvalue(res, i, 3), "t") == 0 ? " WITH GRANT OPTION" : "");
        else
            ds_buf_appendf(&sql, "GRANT %s (%s) ON %s TO %s%s", PQgetvalue(res, i, 2),
                           PQgetvalue(res, i, 0), t->shadow, PQgetvalue(res, i, 1),
                           strcmp(PQgetvalue(res, i, 3), "t") == 0 ? " WITH GRANT OPTION" : "");
        if (!exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, "copying a privilege to a shadow",
                  NULL))
            goto done;
    }
    ok = true;
done:
    PQclear(res);
    ds_buf_free(&sql);
    return ok;
}

/*
 * "FOREIGN KEY (a) REFERENCES x(b) ..." with the referenced table x (as regclass prints it:
 * @p referenced) replaced by @p by. NULL when the text is not of that form.
 */
static char *retarget_fk(const char *def, const char *referenced, const char *by)
{
    ds_buf_t needle = DS_BUF_INIT, out = DS_BUF_INIT;
    const char *hit;

    ds_buf_appendf(&needle, " REFERENCES %s(", referenced);
    hit = strstr(def, needle.data);
    if (!hit) {
        ds_buf_free(&needle);
        return NULL;
    }
    ds_buf_append(&out, def, (size_t)(hit - def));
    ds_buf_appendf(&out, " REFERENCES %s(", by);
    ds_buf_append_str(&out, hit + needle.len);
    ds_buf_free(&needle);
    return out.data;
}

/* The foreign keys @p t holds, on its shadow: towards the shadow of a table also replayed. */
static bool copy_foreign_keys(replay_t *r, const rtable_t *t)
{
    const char *params[] = {t->live};
    PGresult *res;
    ds_buf_t sql = DS_BUF_INIT;
    bool ok = false;

    if (!exec(r,
              "SELECT k.conname, pg_catalog.pg_get_constraintdef(k.oid),"
              " k.confrelid::regclass::text,"
              " n.nspname, c.relname FROM pg_catalog.pg_constraint k"
              " JOIN pg_catalog.pg_class c ON c.oid = k.confrelid"
              " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
              " WHERE k.conrelid = $1::regclass AND k.contype = 'f' ORDER BY conname",
              1, params, PGRES_TUPLES_OK, &res, "reading a target table's foreign keys", NULL))
        return false;
    for (int i = 0; i < PQntuples(res); i++) {
        int ref = ds_replay_find_table(r, r->config->target_names[t->db], PQgetvalue(res, i, 3),
                                       PQgetvalue(res, i, 4));
        char *def = ref >= 0 ? retarget_fk(PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                                           r->tables[ref].shadow)
                             : xstrdup(PQgetvalue(res, i, 1));

        if (!def) {
            ds_fail(r->errstr, sizeof(r->errstr),
                    "target \"%s\": cannot read foreign key %s of %s (%s) to point it at the "
                    "shadow of %s",
                    r->dbname, PQgetvalue(res, i, 0), t->live, PQgetvalue(res, i, 1),
                    PQgetvalue(res, i, 2));
            goto done;
        }
        ds_buf_reset(&sql);
        ds_buf_appendf(&sql, "ALTER TABLE %s ADD CONSTRAINT ", t->shadow);
        ds_buf_append_ident(&sql, PQgetvalue(res, i, 0));
        ds_buf_appendf(&sql, " %s", def);
        free(def);
        if (!exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL,
                  "copying a foreign key to a shadow", NULL))
            goto done;
    }
    ok = true;
done:
    PQclear(res);
    ds_buf_free(&sql);
    return ok;
}

static bool create_shadow(replay_t *r, const rtable_t *t)
{
    const char *params[] = {t->live};
    ds_buf_t sql = DS_BUF_INIT;
    PGresult *res;
    bool ok;

    /* INCLUDING ALL: columns, defaults, identity, generated columns, constraints, indexes,
     * column storage, statistics and comments of columns, constraints and indexes. */
    ds_buf_appendf(&sql, "CREATE UNLOGGED TABLE %s (LIKE %s INCLUDING ALL)", t->shadow, t->live);
    ok = exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, "creating a shadow table", NULL);
    ds_buf_free(&sql);
    if (!ok || !copy_grants(r, t))
        return false;
    if (!exec(r, "SELECT pg_catalog.obj_description($1::regclass, 'pg_class')", 1, params,
              PGRES_TUPLES_OK, &res, "reading a table comment", NULL))
        return false;
    if (!PQgetisnull(res, 0, 0)) {
        char *lit = PQescapeLiteral(r->conn, PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0)));

        sql = (ds_buf_t)DS_BUF_INIT;
        ds_buf_appendf(&sql, "COMMENT ON TABLE %s IS %s", t->shadow, lit ? lit : "NULL");
        PQfreemem(lit);
        ok = exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, "copying a table comment", NULL);
        ds_buf_free(&sql);
    }
    PQclear(res);
    return ok;
}

/* Appends @p column to @p list ("a", "b") unless it is there. */
static void add_column(ds_buf_t *list, const char *column)
{
    ds_buf_t quoted = DS_BUF_INIT;
    const char *p = list->data;

    ds_buf_append_ident(&quoted, column);
    while (p && (p = strstr(p, quoted.data)) != NULL) {
        if ((p == list->data || p[-1] == ' ') &&
            (p[quoted.len] == ',' || p[quoted.len] == '\0')) {
            ds_buf_free(&quoted);
            return;
        }
        p += quoted.len;
    }
    ds_buf_appendf(list, "%s%s", list->len ? ", " : "", quoted.data);
    ds_buf_free(&quoted);
}

/*
 * The columns of an in-place table's shadow: @p keys its primary key and the targets' keys
 * (what finds rows), @p mapped the columns the targets write. The primary key is where the swap
 * joins the shadow to the table.
 */
static bool in_place_columns(replay_t *r, const rtable_t *t, ds_buf_t *pk, ds_buf_t *keys,
                             ds_buf_t *mapped)
{
    const char *params[] = {t->live};
    PGresult *res;

    if (!exec(r,
              "SELECT a.attname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a"
              " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
              " WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY a.attnum",
              1, params, PGRES_TUPLES_OK, &res, "reading a table's primary key", NULL))
        return false;
    if (PQntuples(res) == 0) {
        PQclear(res);
        r->refused = true;
        return ds_fail(r->errstr, sizeof(r->errstr),
                       "target \"%s\": table %s, written in place, has no primary key: replay "
                       "cannot tell its rows apart to copy the recomputed values",
                       r->dbname, t->live);
    }
    for (int i = 0; i < PQntuples(res); i++) {
        add_column(pk, PQgetvalue(res, i, 0));
        add_column(keys, PQgetvalue(res, i, 0));
    }
    PQclear(res);
    for (int i = 0; i < ds_mapping_set_ntargets(r->set); i++) {
        const ds_target_t *target = ds_mapping_set_target(r->set, i);
        ds_target_shape_t shape;

        ds_mapping_target_describe(r->set, i, &shape);
        if (ds_replay_find_table(r, target->connection, shape.schema, shape.table) != t - r->tables)
            continue;
        for (int k = 0; k < shape.nkey; k++)
            add_column(keys, ds_mapping_target_key(r->set, i, k));
        for (int c = 0; c < shape.ncolumns; c++) {
            bool is_key;
            const char *column = ds_mapping_target_column(r->set, i, c, &is_key);

            if (!is_key)
                add_column(mapped, column);
        }
    }
    return true;
}

/*
 * The shadow of a table written in place: its rows' keys as they are now, the mapped columns
 * NULL, for the in-place statements to fill from the stream (as verify does); unique indexes
 * on the keys of the targets that are not fan-out ones.
 */
static bool create_in_place_shadow(replay_t *r, const rtable_t *t)
{
    ds_buf_t pk = DS_BUF_INIT, keys = DS_BUF_INIT, mapped = DS_BUF_INIT, sql = DS_BUF_INIT;
    bool ok = false;

    if (!in_place_columns(r, t, &pk, &keys, &mapped))
        goto done;
    ds_buf_appendf(&sql, "CREATE UNLOGGED TABLE %s AS SELECT %s, %s FROM %s WITH NO DATA; ",
                   t->shadow, keys.data, mapped.data, t->live);
    ds_buf_appendf(&sql, "INSERT INTO %s (%s) SELECT %s FROM %s; ", t->shadow, keys.data,
                   keys.data, t->live);
    ds_buf_appendf(&sql, "CREATE UNIQUE INDEX ON %s (%s)", t->shadow, pk.data);
    if (!exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, "creating an in-place shadow", NULL))
        goto done;
    for (int i = 0; i < ds_mapping_set_ntargets(r->set); i++) {
        const ds_target_t *target = ds_mapping_set_target(r->set, i);
        ds_target_shape_t shape;
        ds_buf_t key = DS_BUF_INIT;
        bool created;

        ds_mapping_target_describe(r->set, i, &shape);
        if (target->fan_out ||
            ds_replay_find_table(r, target->connection, shape.schema, shape.table) != t - r->tables)
            continue;
        for (int k = 0; k < shape.nkey; k++)
            add_column(&key, ds_mapping_target_key(r->set, i, k));
        if (strcmp(key.data, pk.data) == 0) {
            ds_buf_free(&key);
            continue;
        }
        ds_buf_reset(&sql);
        ds_buf_appendf(&sql, "CREATE UNIQUE INDEX ON %s (%s)", t->shadow, key.data);
        ds_buf_free(&key);
        created = exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL,
                       "creating an in-place shadow's index", NULL);
        if (!created)
            goto done;
    }
    ok = true;
done:
    ds_buf_free(&pk);
    ds_buf_free(&keys);
    ds_buf_free(&mapped);
    ds_buf_free(&sql);
    return ok;
}

/*
 * For each column C of @p list (quoted names joined by ", "): @p prefix C, then, when @p infix
 * is not "", @p infix C again ("t.C = s.C"); items joined by @p sep.
 */
static void append_each(ds_buf_t *sql, const char *list, const char *prefix, const char *infix,
                        const char *sep)
{
    for (const char *p = list; *p;) {
        const char *end = strstr(p, ", ");
        size_t len = end ? (size_t)(end - p) : strlen(p);

        ds_buf_append_str(sql, prefix);
        ds_buf_append(sql, p, len);
        if (*infix) {
            ds_buf_append_str(sql, infix);
            ds_buf_append(sql, p, len);
        }
        p += len;
        if (*p) {
            ds_buf_append_str(sql, sep);
            p += 2;
        }
    }
}

/*
 * The swap's last step for a table written in place: the rows whose mapped values differ
 * from the rebuilt ones are written (the others are not touched), then the shadow goes.
 * Inside the swap, under apply's replication origin (capture skips the writes, as apply's):
 * only there do the shadow's values belong to the same point of the stream as the table's.
 */
bool ds_replay_copy_in_place(replay_t *r, const rtable_t *t)
{
    ds_buf_t pk = DS_BUF_INIT, keys = DS_BUF_INIT, mapped = DS_BUF_INIT, sql = DS_BUF_INIT;
    PGresult *res = NULL;
    bool ok = false;

    if (!in_place_columns(r, t, &pk, &keys, &mapped))
        goto done;
    ds_buf_appendf(&sql, "UPDATE %s AS t SET (%s) = ROW(", t->live, mapped.data);
    append_each(&sql, mapped.data, "s.", "", ", ");
    ds_buf_appendf(&sql, ") FROM %s AS s WHERE ", t->shadow);
    append_each(&sql, pk.data, "t.", " = s.", " AND ");
    ds_buf_append_str(&sql, " AND ROW(");
    append_each(&sql, mapped.data, "t.", "", ", ");
    ds_buf_append_str(&sql, ") IS DISTINCT FROM ROW(");
    append_each(&sql, mapped.data, "s.", "", ", ");
    ds_buf_append_char(&sql, ')');
    if (!exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, &res, "writing recomputed values in place",
              NULL))
        goto done;
    ds_info("target \"%s\": %s: %s rows recomputed in place (%s)", r->dbname, t->live,
            PQcmdTuples(res), mapped.data);
    ds_buf_reset(&sql);
    ds_buf_appendf(&sql, "DROP TABLE %s", t->shadow);
    ok = exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, "dropping an in-place shadow", NULL);
done:
    PQclear(res);
    ds_buf_free(&pk);
    ds_buf_free(&keys);
    ds_buf_free(&mapped);
    ds_buf_free(&sql);
    return ok;
}

/*
 * --in-place empties the tables it rebuilds with TRUNCATE, which a foreign key of another
 * table on them forbids (the default mode re-points such keys): refused, naming the key.
 */
static bool check_truncatable(replay_t *r)
{
    const char **names = calloc((size_t)r->ntables + 1, sizeof(*names));
    const char *params[1];
    char *array;
    PGresult *res;
    int n = 0;
    bool ok;

    if (!names)
        return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
    for (int i = 0; i < r->ntables; i++) {
        if (ds_replay_rebuilt_in_place(r, &r->tables[i]))
            names[n++] = r->tables[i].live;
    }
    array = ds_pg_text_array(names, n);
    params[0] = array;
    ok = exec(r,
              "SELECT k.conrelid::regclass::text, k.conname, k.confrelid::regclass::text"
              " FROM pg_catalog.pg_constraint k WHERE k.contype = 'f'"
              " AND k.confrelid = ANY ($1::text[]::regclass[])"
              " AND NOT k.conrelid = ANY ($1::text[]::regclass[]) ORDER BY 1, 2",
              1, params, PGRES_TUPLES_OK, &res, "reading the foreign keys on the tables", NULL);
    free(array);
    free(names);
    if (!ok)
        return false;
    if (PQntuples(res) > 0) {
        r->refused = true;
        ds_fail(r->errstr, sizeof(r->errstr),
                "target \"%s\": --in-place empties %s, and table %s holds a foreign key on it "
                "(%s): replay the mapping that writes %s too (--mapping), or use the default "
                "mode (shadow and swap), which re-points such keys",
                r->dbname, PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
                PQgetvalue(res, 0, 0));
        PQclear(res);
        return false;
    }
    PQclear(res);
    return true;
}

/*
 * --in-place: keeps live apply from writing the tables rebuilt where they are, from now until
 * the end (DS_GATE_SESSION_SQL): an exclusive advisory lock per table, for this session, which
 * waits for apply's transactions in flight. empty_in_place() then records the tables in
 * dualsync.in_place_rebuilds, which keeps apply out after a crash of the replay too.
 */
static bool close_gate(replay_t *r)
{
    for (int i = 0; i < r->ntables; i++) {
        const char *params[] = {r->tables[i].live};

        if (!ds_replay_rebuilt_in_place(r, &r->tables[i]))
            continue;
        if (!exec(r, "SELECT pg_catalog.pg_advisory_lock(pg_catalog.hashtext('ds_in_place'),"
                     " pg_catalog.hashtext($1))",
                  1, params, PGRES_TUPLES_OK, NULL, "waiting for live apply's transactions on "
                  "the tables to end", NULL))
            return false;
    }
    ds_info("target \"%s\": live apply into this database waits until the tables are rebuilt "
            "in place", r->dbname);
    return true;
}

/* --in-place, starting over: records the tables (see close_gate) and empties them. */
static bool empty_in_place(replay_t *r)
{
    ds_buf_t sql = DS_BUF_INIT, owner = DS_BUF_INIT;
    const char **names = calloc((size_t)r->ntables + 1, sizeof(*names));
    const char *params[2];
    char host[256] = "";
    char *array;
    bool first = true, ok;
    int n = 0;

    if (!names)
        return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
    ds_buf_append_str(&sql, "TRUNCATE ");
    for (int i = 0; i < r->ntables; i++) {
        if (!ds_replay_rebuilt_in_place(r, &r->tables[i]))
            continue;
        names[n++] = r->tables[i].live;
        ds_buf_appendf(&sql, "%s%s", first ? "" : ", ", r->tables[i].live);
        first = false;
    }
    gethostname(host, sizeof(host) - 1);
    ds_buf_appendf(&owner, "dualsync replay --in-place, pid %d on %s", (int)getpid(), host);
    array = ds_pg_text_array(names, n);
    params[0] = array;
    params[1] = owner.data;
    ok = n == 0 ||
         (exec(r,
               "INSERT INTO dualsync.in_place_rebuilds (table_name, owner)"
               " SELECT unnest($1::text[]), $2 ON CONFLICT (table_name) DO UPDATE"
               " SET owner = EXCLUDED.owner, started_at = now()",
               2, params, PGRES_COMMAND_OK, NULL, "recording the tables rebuilt in place",
               NULL) &&
          exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, "emptying the tables rebuilt in place",
               NULL));
    if (ok && n > 0)
        ds_info("target \"%s\": emptied %d tables to rebuild in place: readers see them fill "
                "up", r->dbname, n);
    free(array);
    free(names);
    ds_buf_free(&sql);
    ds_buf_free(&owner);
    return ok;
}

/* The swap's (or the in-place rebuild's) end: live apply may write the tables again (its
 * gate reads dualsync.in_place_rebuilds; the advisory locks go with this session). */
bool ds_replay_open_gate(replay_t *r, char *sqlstate)
{
    const char **names = calloc((size_t)r->ntables + 1, sizeof(*names));
    const char *params[1];
    char *array;
    bool ok;
    int n = 0;

    if (!names)
        return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
    for (int i = 0; i < r->ntables; i++) {
        if (r->tables[i].db == r->db)
            names[n++] = r->tables[i].live;
    }
    array = ds_pg_text_array(names, n);
    params[0] = array;
    ok = exec(r, "DELETE FROM dualsync.in_place_rebuilds WHERE table_name = ANY ($1::text[])", 1,
              params, PGRES_COMMAND_OK, NULL, "opening the tables to live apply again", sqlstate);
    free(array);
    free(names);
    return ok;
}

/*
 * Starts or resumes: the state row says which mappings built the shadows there (their
 * ds_replay_fingerprint()); a different one starts over. Returns false on an error.
 */
bool ds_replay_prepare_shadows(replay_t *r)
{
    char fp[17];
    const char *params[] = {fp};
    PGresult *res;
    bool resume = false;
    char *schema_sql = ds_replay_schema_sql();

    ds_replay_fingerprint(r, fp);
    if (!exec(r, schema_sql, 0, NULL, PGRES_COMMAND_OK, NULL, "creating schema " REPLAY_SCHEMA,
              NULL)) {
        free(schema_sql);
        return false;
    }
    free(schema_sql);
    if (!exec(r,
              "CREATE TABLE IF NOT EXISTS " REPLAY_SCHEMA ".state (fingerprint text NOT NULL,"
              " started_at timestamptz NOT NULL DEFAULT now());"
              "CREATE TABLE IF NOT EXISTS " REPLAY_SCHEMA ".fk_validate (child text NOT NULL,"
              " name text NOT NULL)",
              0, NULL, PGRES_COMMAND_OK, NULL, "creating schema " REPLAY_SCHEMA, NULL))
        return false;
    if (!exec(r,
              "SELECT fingerprint, (extract(epoch FROM started_at) * 1000)::bigint"
              " FROM " REPLAY_SCHEMA ".state",
              0, NULL, PGRES_TUPLES_OK, &res, "reading the replay state", NULL))
        return false;
    if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), fp) == 0) {
        resume = true;
        r->started_ms = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    } else if (PQntuples(res) > 0) {
        ds_warning("target \"%s\": an interrupted replay of other mappings (or of mapping files "
                   "changed since) left shadow tables: starting over",
                   r->dbname);
    }
    PQclear(res);
    for (int i = 0; i < r->ntables; i++) {
        const rtable_t *t = &r->tables[i];

        if (ds_replay_swapped(r, t) && !check_swappable(r, t))
            return false;
    }
    if (r->opt->in_place && (!check_truncatable(r) || !close_gate(r)))
        return false;
    if (resume) {
        /* The working tables are unlogged: a server crash empties them (and the replay's
         * offsets with them), and nothing of the interrupted run is left to resume. */
        if (!exec(r, "SELECT count(*) FROM " REPLAY_SCHEMA ".offsets", 0, NULL, PGRES_TUPLES_OK,
                  &res, "reading the replay's offsets", NULL))
            return false;
        resume = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
        PQclear(res);
        if (resume) {
            ds_info("target \"%s\": resuming the interrupted replay", r->dbname);
            return true;
        }
    }
    /* Starting over: every shadow and the replay's bookkeeping go, in one transaction. */
    if (!exec(r, "BEGIN", 0, NULL, PGRES_COMMAND_OK, NULL, "starting", NULL))
        return false;
    for (int i = 0; i < r->ntables; i++) {
        const rtable_t *t = &r->tables[i];
        ds_buf_t sql = DS_BUF_INIT;
        bool ok;

        if (t->db != r->db || ds_replay_rebuilt_in_place(r, t))
            continue;
        ds_buf_appendf(&sql, "DROP TABLE IF EXISTS %s CASCADE", t->shadow);
        ok = exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, "dropping an old shadow", NULL);
        ds_buf_free(&sql);
        if (!ok)
            goto rollback;
    }
    if (!exec(r,
              "TRUNCATE " REPLAY_SCHEMA ".links, " REPLAY_SCHEMA ".offsets, " REPLAY_SCHEMA
              ".pending, " REPLAY_SCHEMA ".dead_letters, " REPLAY_SCHEMA ".state",
              0, NULL, PGRES_COMMAND_OK, NULL, "clearing the replay's bookkeeping", NULL))
        goto rollback;
    if (r->opt->in_place && !empty_in_place(r))
        goto rollback;
    for (int i = 0; i < r->ntables; i++) {
        const rtable_t *t = &r->tables[i];

        if (t->db == r->db && !ds_replay_rebuilt_in_place(r, t) &&
            !(t->in_place ? create_in_place_shadow(r, t) : create_shadow(r, t)))
            goto rollback;
    }
    /* Foreign keys last: one may point at another shadow. */
    for (int i = 0; i < r->ntables; i++) {
        const rtable_t *t = &r->tables[i];

        if (ds_replay_swapped(r, t) && !copy_foreign_keys(r, t))
            goto rollback;
    }
    if (!exec(r, "INSERT INTO " REPLAY_SCHEMA ".state (fingerprint) VALUES ($1)", 1, params,
              PGRES_COMMAND_OK, NULL, "writing the replay state", NULL) ||
        !exec(r, "COMMIT", 0, NULL, PGRES_COMMAND_OK, NULL, "creating the shadows", NULL))
        goto rollback;
    r->started_ms = wall_ms();
    ds_info("target \"%s\": created %d shadow tables", r->dbname, r->ntables);
    return true;
rollback:
    PQclear(PQexec(r->conn, "ROLLBACK"));
    return false;
}

/* Validates the foreign keys a swap re-pointed NOT VALID (also those of a run that crashed
 * right after its swap). */
bool ds_replay_validate_foreign_keys(replay_t *r)
{
    PGresult *res;

    if (!exec(r,
              "SELECT child, name FROM " REPLAY_SCHEMA ".fk_validate"
              " WHERE to_regclass(child) IS NOT NULL",
              0, NULL, PGRES_TUPLES_OK, &res, "reading the foreign keys to validate", NULL))
        return false;
    for (int i = 0; i < PQntuples(res); i++) {
        ds_buf_t sql = DS_BUF_INIT;
        bool ok;

        ds_buf_appendf(&sql, "ALTER TABLE %s VALIDATE CONSTRAINT ", PQgetvalue(res, i, 0));
        ds_buf_append_ident(&sql, PQgetvalue(res, i, 1));
        ok = exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, "validating a foreign key", NULL);
        ds_buf_free(&sql);
        if (!ok) {
            PQclear(res);
            ds_warning("%s; the constraint stays NOT VALID (new rows are checked): fix the rows "
                       "and run ALTER TABLE ... VALIDATE CONSTRAINT",
                       r->errstr);
            r->errstr[0] = '\0';
            return exec(r, "DELETE FROM " REPLAY_SCHEMA ".fk_validate", 0, NULL,
                        PGRES_COMMAND_OK, NULL, "forgetting the foreign keys to validate", NULL);
        }
    }
    PQclear(res);
    return exec(r, "DELETE FROM " REPLAY_SCHEMA ".fk_validate", 0, NULL, PGRES_COMMAND_OK, NULL,
                "forgetting the foreign keys to validate", NULL);
}

