/*
 * teardown.c: `dualsync teardown`, the end of a migration (include/dualsync/teardown.h).
 *
 * Order of the removal, each step safe to repeat:
 *   1. dualsync.teardown in the source: the record that a teardown passed its checks and
 *      began, so that a rerun after a crash finishes instead of checking again;
 *   2. every target: apply's replication origins, then the dualsync schema (offsets, links,
 *      pending rows, dead letters), except in a target that is the source database itself;
 *   3. the capture slot (after ending the session holding it, when forced);
 *   4. the publication, when dualsync manages it (source.create_publication);
 *   5. with --topics, the change, dead-letter and transaction topics;
 *   6. the source's dualsync schema, record of step 1 included.
 * The slot goes after the targets' bookkeeping: while it exists, capture could be started
 * again from where it was and nothing is lost; once it is gone, the pipeline cannot resume.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "dualsync/log.h"
#include "dualsync/pgutil.h"
#include "dualsync/teardown.h"
#include "dualsync/topics.h"
#include "dualsync/verify.h"

/* How long a forced teardown waits for the slot to be released after ending its session. */
#define RELEASE_TIMEOUT_MS 10000

/* Sessions of dualsync processes, by the application_name each sets. */
#define CAPTURE_SESSIONS "'dualsync', 'dualsync backfill', 'dualsync-capture-metrics'"
#define APPLY_SESSIONS "'dualsync-apply'"

typedef struct target_db {
    const char *name; /* the config's target name */
    PGconn *conn;
    bool has_schema;  /* the dualsync schema exists */
    char **origins;   /* apply's replication origins in its cluster */
    int norigins;
} target_db_t;

typedef struct teardown {
    const ds_config_t *config;
    const ds_teardown_options_t *opt;
    FILE *out, *err;
    PGconn *source;
    bool slot_exists;
    char slot_pid[16]; /* the pid holding the slot, "" when inactive */
    char slot_database[128]; /* the database the slot decodes */
    bool publication_exists;
    bool source_schema;   /* the source's dualsync schema exists */
    bool resuming;        /* dualsync.teardown exists: a teardown began and did not finish */
    char started_at[64];  /* when it began */
    target_db_t *dbs;
    int ndbs;
    char **topics; /* the topics to delete that exist (--topics) */
    int ntopics;
    char errstr[4096];
} teardown_t;

static PGconn *connect_db(teardown_t *t, const char *conninfo, const char *what)
{
    static const char *const keywords[] = {"dbname", "fallback_application_name", NULL};
    const char *values[] = {conninfo, "dualsync-teardown", NULL};
    PGconn *conn = PQconnectdbParams(keywords, values, 1);

    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        ds_fail(t->errstr, sizeof(t->errstr), "cannot connect to %s: %s", what,
                conn ? ds_pg_error(conn) : "out of memory");
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* Runs @p sql; false with t->errstr saying @p what failed. */
static bool run(teardown_t *t, PGconn *conn, const char *sql, int nparams,
                const char *const *params, ExecStatusType want, PGresult **out, const char *what)
{
    /* Without parameters, the simple protocol: it takes several statements. */
    PGresult *r = nparams ? PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0)
                          : PQexec(conn, sql);

    if (!r || PQresultStatus(r) != want) {
        ds_fail(t->errstr, sizeof(t->errstr), "%s: %s", what,
                r ? PQresultErrorMessage(r) : ds_pg_error(conn));
        /* libpq's messages end with a newline; one line reads better. */
        t->errstr[strcspn(t->errstr, "\n")] = '\0';
        PQclear(r);
        return false;
    }
    if (out)
        *out = r;
    else
        PQclear(r);
    return true;
}

static bool is_true(const PGresult *r, int row, int col)
{
    return strcmp(PQgetvalue(r, row, col), "t") == 0;
}

static char **column_list(const PGresult *r, int col, int *n)
{
    char **list = calloc((size_t)PQntuples(r) + 1, sizeof(char *));

    *n = 0;
    if (!list)
        return NULL;
    for (int i = 0; i < PQntuples(r); i++) {
        if (!(list[i] = strdup(PQgetvalue(r, i, col))))
            break;
        (*n)++;
    }
    return list;
}

static void free_list(char **list, int n)
{
    for (int i = 0; list && i < n; i++)
        free(list[i]);
    free(list);
}

/* ---------------------------------------------------------------------------------------------
 * What there is
 * ------------------------------------------------------------------------------------------- */

static bool inspect_source(teardown_t *t)
{
    const char *params[] = {t->config->slot, t->config->publication};
    PGresult *r;

    if (!run(t, t->source,
             "SELECT s.slot_name IS NOT NULL, coalesce(s.active_pid::text, ''), "
             "coalesce(s.database::text, ''), "
             "EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $2), "
             "pg_catalog.to_regnamespace('dualsync') IS NOT NULL, "
             "pg_catalog.to_regclass('dualsync.teardown') IS NOT NULL "
             "FROM (SELECT 1) AS one LEFT JOIN pg_catalog.pg_replication_slots s "
             "ON s.slot_name = $1",
             2, params, PGRES_TUPLES_OK, &r, "reading the source database's slot and schema"))
        return false;
    t->slot_exists = is_true(r, 0, 0);
    snprintf(t->slot_pid, sizeof(t->slot_pid), "%s", PQgetvalue(r, 0, 1));
    snprintf(t->slot_database, sizeof(t->slot_database), "%s", PQgetvalue(r, 0, 2));
    t->publication_exists = is_true(r, 0, 3);
    t->source_schema = is_true(r, 0, 4);
    t->resuming = is_true(r, 0, 5);
    PQclear(r);
    if (t->slot_exists && strcmp(t->slot_database, PQdb(t->source)) != 0)
        return ds_fail(t->errstr, sizeof(t->errstr),
                       "replication slot \"%s\" (source.slot) decodes database \"%s\", not the "
                       "source database \"%s\": it is not this configuration's, and teardown "
                       "does not remove it. Check source.slot and source.conninfo",
                       t->config->slot, t->slot_database, PQdb(t->source));
    if (t->resuming) {
        if (!run(t, t->source, "SELECT coalesce(min(started_at)::text, '') FROM dualsync.teardown",
                 0, NULL, PGRES_TUPLES_OK, &r, "reading dualsync.teardown"))
            return false;
        snprintf(t->started_at, sizeof(t->started_at), "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    return true;
}

/* The prefix of every replication origin apply's processes of this group commit under:
 * "<apply.origin>.<group>." (apply.c, choose_identity). */
static char *origin_prefix(const ds_config_t *config)
{
    char *prefix;

    if (asprintf(&prefix, "%s.%s.", config->apply_origin, config->apply_group_id) < 0)
        return NULL;
    return prefix;
}

static bool inspect_targets(teardown_t *t)
{
    char *prefix = origin_prefix(t->config);
    const char *params[] = {prefix};
    bool ok = true;

    if (!prefix)
        return ds_fail(t->errstr, sizeof(t->errstr), "out of memory");
    t->dbs = calloc((size_t)t->config->ntargets, sizeof(*t->dbs));
    if (!t->dbs) {
        free(prefix);
        return ds_fail(t->errstr, sizeof(t->errstr), "out of memory");
    }
    for (int i = 0; ok && i < t->config->ntargets; i++) {
        target_db_t *db = &t->dbs[i];
        char what[256];
        PGresult *r;

        db->name = t->config->target_names[i];
        t->ndbs = i + 1;
        snprintf(what, sizeof(what), "target database \"%s\"", db->name);
        if (!(db->conn = connect_db(t, t->config->target_conninfos[i], what))) {
            ok = false;
            break;
        }
        ok = run(t, db->conn, "SELECT pg_catalog.to_regnamespace('dualsync') IS NOT NULL", 0,
                 NULL, PGRES_TUPLES_OK, &r, "reading the target's dualsync schema");
        if (ok) {
            db->has_schema = is_true(r, 0, 0);
            PQclear(r);
        }
        ok = ok && run(t, db->conn,
                       "SELECT roname FROM pg_catalog.pg_replication_origin "
                       "WHERE pg_catalog.starts_with(roname, $1) ORDER BY roname",
                       1, params, PGRES_TUPLES_OK, &r, "reading apply's replication origins");
        if (ok) {
            db->origins = column_list(r, 0, &db->norigins);
            PQclear(r);
        }
    }
    free(prefix);
    return ok;
}

/* The topics teardown --topics deletes: each table's change topic, the dead-letter topic,
 * and the transaction topic. */
static char **planned_topics(const ds_config_t *config, int *n)
{
    char **names = calloc((size_t)config->ntables + 3, sizeof(char *));
    int k = 0;

    *n = 0;
    if (!names)
        return NULL;
    for (int i = 0; i < config->ntables; i++) {
        const char *table = config->tables[i];
        char *name;

        /* source.tables are "schema.table", quoted where needed; topics use the bare names. */
        if (asprintf(&name, "%s.%s", config->topic_prefix, table) < 0)
            goto oom;
        for (char *r = name, *w = name; ; r++) {
            if (*r != '"')
                *w++ = *r;
            if (!*r)
                break;
        }
        names[k++] = name;
    }
    if (!(names[k] = strdup(config->apply_dlq_topic)))
        goto oom;
    k++;
    if (config->value_format.provide_transaction_metadata) {
        if (asprintf(&names[k], "%s.%s", config->topic_prefix,
                     config->value_format.transaction_topic) < 0)
            goto oom;
        k++;
    }
    *n = k;
    return names;
oom:
    free_list(names, k);
    return NULL;
}

static bool inspect_topics(teardown_t *t, ds_topics_t *admin)
{
    int n = 0;
    char **names = planned_topics(t->config, &n);
    ds_topic_history_t *h;

    if (!names)
        return ds_fail(t->errstr, sizeof(t->errstr), "out of memory");
    if (!(h = calloc((size_t)n, sizeof(*h))) ||
        !(t->topics = calloc((size_t)n + 1, sizeof(char *)))) {
        free(h);
        free_list(names, n);
        return ds_fail(t->errstr, sizeof(t->errstr), "out of memory");
    }
    if (!ds_topics_check_history(admin, (const char *const *)names, n, 10000, h, t->errstr,
                                 sizeof(t->errstr))) {
        free(h);
        free_list(names, n);
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (h[i].exists)
            t->topics[t->ntopics++] = names[i];
        else
            free(names[i]);
    }
    free(names);
    free(h);
    return true;
}

static bool anything_left(const teardown_t *t)
{
    bool left = t->slot_exists || t->source_schema || t->ntopics > 0 ||
                (t->publication_exists && t->config->create_publication);

    for (int i = 0; i < t->ndbs; i++)
        left = left || t->dbs[i].has_schema || t->dbs[i].norigins > 0;
    return left;
}

static void print_plan(const teardown_t *t)
{
    FILE *out = t->out;

    fprintf(out, "dualsync teardown will remove:\n");
    fprintf(out, "  source database \"%s\":\n", PQdb(t->source));
    if (t->slot_exists)
        fprintf(out, "    replication slot \"%s\"%s%s%s\n", t->config->slot,
                t->slot_pid[0] ? " (held by pid " : "", t->slot_pid,
                t->slot_pid[0] ? ": its session is ended first)" : "");
    if (t->publication_exists && t->config->create_publication)
        fprintf(out, "    publication \"%s\"\n", t->config->publication);
    if (t->source_schema)
        fprintf(out, "    schema dualsync (capture's backfill state and bookkeeping)\n");
    for (int i = 0; i < t->ndbs; i++) {
        const target_db_t *db = &t->dbs[i];

        if (!db->has_schema && db->norigins == 0)
            continue;
        fprintf(out, "  target \"%s\" (database \"%s\"):\n", db->name, PQdb(db->conn));
        if (db->has_schema)
            fprintf(out, "    schema dualsync (apply's offsets, links, pending rows, dead "
                         "letters)\n");
        for (int o = 0; o < db->norigins; o++)
            fprintf(out, "    replication origin \"%s\"\n", db->origins[o]);
    }
    if (t->ntopics > 0) {
        fprintf(out, "  Kafka topics:\n");
        for (int i = 0; i < t->ntopics; i++)
            fprintf(out, "    %s\n", t->topics[i]);
    }
    if (t->publication_exists && !t->config->create_publication)
        fprintf(out, "Kept: publication \"%s\" (source.create_publication is false: it is "
                     "yours).\n",
                t->config->publication);
    if (!t->opt->topics)
        fprintf(out, "Kept: the Kafka topics (pass --topics to delete them).\n");
}

/* ---------------------------------------------------------------------------------------------
 * Checks
 * ------------------------------------------------------------------------------------------- */

/* Sessions of dualsync processes in @p conn's database, as "pid N (name) from HOST" lines. */
static bool running_sessions(teardown_t *t, PGconn *conn, const char *names, const char *what,
                             ds_buf_t *found)
{
    char sql[512];
    PGresult *r;

    snprintf(sql, sizeof(sql),
             "SELECT pid, application_name, coalesce(client_addr::text, 'a local socket') "
             "FROM pg_catalog.pg_stat_activity WHERE datname = pg_catalog.current_database() "
             "AND pid <> pg_catalog.pg_backend_pid() AND application_name IN (%s) ORDER BY pid",
             names);
    if (!run(t, conn, sql, 0, NULL, PGRES_TUPLES_OK, &r, "reading pg_stat_activity"))
        return false;
    for (int i = 0; i < PQntuples(r); i++)
        ds_buf_appendf(found, "\n  %s: pid %s (\"%s\") from %s in database \"%s\"", what,
                       PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQdb(conn));
    PQclear(r);
    return true;
}

/* DS_TEARDOWN_EXIT_DONE when every check passes, else why not on err. */
static int check(teardown_t *t)
{
    ds_buf_t found = DS_BUF_INIT;
    ds_verify_options_t vopt = {.timeout_ms = t->opt->timeout_ms, .json = false};
    int status;

    if (!running_sessions(t, t->source, CAPTURE_SESSIONS, "capture", &found))
        goto setup_error;
    for (int i = 0; i < t->ndbs; i++) {
        if (!running_sessions(t, t->dbs[i].conn, APPLY_SESSIONS, "apply", &found))
            goto setup_error;
    }
    if (t->slot_pid[0] && !strstr(found.data ? found.data : "", t->slot_pid))
        ds_buf_appendf(&found, "\n  capture: pid %s holds replication slot \"%s\"", t->slot_pid,
                       t->config->slot);
    if (found.len > 0) {
        fprintf(t->err,
                "dualsync teardown: refused: dualsync processes are still connected:%s\n"
                "Stop every 'dualsync capture' (and its standbys) and 'dualsync apply' of this "
                "configuration first: a capture would create the slot again, an apply the "
                "bookkeeping. --force ends the capture session and removes anyway.\n",
                found.data);
        ds_buf_free(&found);
        return DS_TEARDOWN_EXIT_REFUSED;
    }
    ds_buf_free(&found);

    /* Capture stopped: verify counts it caught up when its slot holds no row change. */
    fprintf(t->out, "Verifying that the new tables are complete before removing anything:\n");
    fflush(t->out);
    status = ds_verify_run(t->config, &vopt, t->out, t->err);
    if (status != DS_VERIFY_EXIT_MATCH) {
        fprintf(t->err,
                "dualsync teardown: refused: %s. Removing now would lose what the new tables "
                "lack. Run capture and apply until verify is clean, or pass --force to remove "
                "anyway.\n",
                status == DS_VERIFY_EXIT_DIFFERS
                    ? "verify found the new tables different from what the mappings give "
                      "(above)"
                    : "verify could not show that every change is applied (above)");
        return DS_TEARDOWN_EXIT_REFUSED;
    }
    return DS_TEARDOWN_EXIT_DONE;

setup_error:
    ds_buf_free(&found);
    fprintf(t->err, "dualsync teardown: %s\n", t->errstr);
    return DS_TEARDOWN_EXIT_SETUP;
}

/* Whether the user typed yes. */
static int confirm(teardown_t *t, FILE *in)
{
    char line[64];

    if (!isatty(fileno(in))) {
        fprintf(t->err, "dualsync teardown: not asking on a standard input that is not a "
                        "terminal: pass --yes to remove the above\n");
        return DS_TEARDOWN_EXIT_SETUP;
    }
    fprintf(t->out, "Type \"yes\" to remove all of the above: ");
    fflush(t->out);
    if (!fgets(line, sizeof(line), in) || strcmp(line, "yes\n") != 0) {
        fprintf(t->out, "Nothing was removed.\n");
        return DS_TEARDOWN_EXIT_REFUSED;
    }
    return DS_TEARDOWN_EXIT_DONE;
}

/* ---------------------------------------------------------------------------------------------
 * Removal
 * ------------------------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Step 1: the record that this teardown began, and its token (to recognise the source
 * database from a target's connection). */
static bool begin_record(teardown_t *t, char *token, size_t size)
{
    PGresult *r;

    if (!run(t, t->source,
             "CREATE SCHEMA IF NOT EXISTS dualsync;"
             "CREATE TABLE IF NOT EXISTS dualsync.teardown ("
             " token text NOT NULL DEFAULT pg_catalog.md5(pg_catalog.random()::text),"
             " started_at timestamptz NOT NULL DEFAULT pg_catalog.now());"
             "INSERT INTO dualsync.teardown SELECT WHERE NOT EXISTS "
             "(SELECT 1 FROM dualsync.teardown)",
             0, NULL, PGRES_COMMAND_OK, NULL, "recording the teardown in the source database"))
        return false;
    if (!run(t, t->source, "SELECT min(token) FROM dualsync.teardown", 0, NULL, PGRES_TUPLES_OK,
             &r, "reading dualsync.teardown"))
        return false;
    snprintf(token, size, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return true;
}

/* Step 2, one target. */
static bool remove_target(teardown_t *t, target_db_t *db, const char *token)
{
    const char *params[] = {token};
    char *prefix = origin_prefix(t->config);
    const char *oparams[] = {prefix};
    PGresult *r;
    bool is_source;

    if (!prefix)
        return ds_fail(t->errstr, sizeof(t->errstr), "out of memory");
    /* An origin in use by a session cannot be dropped; none is, the checks said (or
     * --force). */
    if (!run(t, db->conn,
             "SELECT pg_catalog.pg_replication_origin_drop(roname) "
             "FROM pg_catalog.pg_replication_origin WHERE pg_catalog.starts_with(roname, $1)",
             1, oparams, PGRES_TUPLES_OK, NULL, "dropping apply's replication origins")) {
        free(prefix);
        return false;
    }
    free(prefix);
    for (int o = 0; o < db->norigins; o++)
        fprintf(t->out, "removed replication origin \"%s\"\n", db->origins[o]);
    /* Two statements: a name in a query must exist when it is parsed. */
    if (!run(t, db->conn, "SELECT pg_catalog.to_regclass('dualsync.teardown') IS NOT NULL", 0,
             NULL, PGRES_TUPLES_OK, &r, "reading the target's dualsync schema"))
        return false;
    is_source = is_true(r, 0, 0);
    PQclear(r);
    if (is_source) {
        if (!run(t, db->conn, "SELECT EXISTS (SELECT 1 FROM dualsync.teardown WHERE token = $1)",
                 1, params, PGRES_TUPLES_OK, &r, "reading the target's dualsync.teardown"))
            return false;
        is_source = is_true(r, 0, 0);
        PQclear(r);
    }
    if (is_source) {
        fprintf(t->out, "target \"%s\" is the source database: its dualsync schema goes last\n",
                db->name);
        return true;
    }
    if (!run(t, db->conn, "DROP SCHEMA IF EXISTS dualsync CASCADE", 0, NULL, PGRES_COMMAND_OK,
             NULL, "dropping the target's dualsync schema"))
        return false;
    if (db->has_schema)
        fprintf(t->out, "removed schema dualsync of target \"%s\"\n", db->name);
    return true;
}

/* Step 3. */
static bool remove_slot(teardown_t *t)
{
    const char *params[] = {t->config->slot};
    int64_t deadline = now_ms() + RELEASE_TIMEOUT_MS;
    PGresult *r;

    for (;;) {
        char pid[16];
        bool exists;

        if (!run(t, t->source,
                 "SELECT count(*) > 0, coalesce(max(active_pid)::text, '') "
                 "FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
                 1, params, PGRES_TUPLES_OK, &r, "reading the capture slot"))
            return false;
        exists = is_true(r, 0, 0);
        snprintf(pid, sizeof(pid), "%s", PQgetvalue(r, 0, 1));
        PQclear(r);
        if (!exists)
            return true;
        if (!pid[0])
            break;
        if (!t->opt->force)
            return ds_fail(t->errstr, sizeof(t->errstr),
                           "replication slot \"%s\" is held by pid %s again: a capture was "
                           "started during the teardown; stop it and run teardown again",
                           t->config->slot, pid);
        if (now_ms() >= deadline)
            return ds_fail(t->errstr, sizeof(t->errstr),
                           "replication slot \"%s\" is still held by pid %s %d ms after its "
                           "session was ended: stop that capture and run teardown again",
                           t->config->slot, pid, RELEASE_TIMEOUT_MS);
        {
            const char *kparams[] = {pid};

            if (!run(t, t->source, "SELECT pg_catalog.pg_terminate_backend($1::int)", 1,
                     kparams, PGRES_TUPLES_OK, NULL, "ending the session holding the slot"))
                return false;
        }
        usleep(100 * 1000);
    }
    if (!run(t, t->source,
             "SELECT pg_catalog.pg_drop_replication_slot(slot_name) "
             "FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
             1, params, PGRES_TUPLES_OK, NULL, "dropping the capture slot"))
        return false;
    fprintf(t->out, "removed replication slot \"%s\"\n", t->config->slot);
    return true;
}

/* Step 4. */
static bool remove_publication(teardown_t *t)
{
    char *quoted;
    char sql[600];
    bool ok;

    if (!t->config->create_publication || !t->publication_exists)
        return true;
    quoted = PQescapeIdentifier(t->source, t->config->publication,
                                strlen(t->config->publication));
    if (!quoted)
        return ds_fail(t->errstr, sizeof(t->errstr), "out of memory");
    snprintf(sql, sizeof(sql), "DROP PUBLICATION IF EXISTS %s", quoted);
    PQfreemem(quoted);
    ok = run(t, t->source, sql, 0, NULL, PGRES_COMMAND_OK, NULL, "dropping the publication");
    if (ok)
        fprintf(t->out, "removed publication \"%s\"\n", t->config->publication);
    return ok;
}

static int remove_all(teardown_t *t, ds_topics_t *admin)
{
    char token[64];

    if (!begin_record(t, token, sizeof(token)))
        goto failed;
    for (int i = 0; i < t->ndbs; i++) {
        if (!remove_target(t, &t->dbs[i], token))
            goto failed;
    }
    if (!remove_slot(t) || !remove_publication(t))
        goto failed;
    if (t->ntopics > 0) {
        int deleted = 0;

        if (!ds_topics_delete(admin, (const char *const *)t->topics, t->ntopics, 30000, &deleted,
                              t->errstr, sizeof(t->errstr)))
            goto failed;
        fprintf(t->out, "removed %d Kafka topic(s)\n", deleted);
    }
    if (!run(t, t->source, "DROP SCHEMA IF EXISTS dualsync CASCADE", 0, NULL, PGRES_COMMAND_OK,
             NULL, "dropping the source's dualsync schema"))
        goto failed;
    fprintf(t->out, "removed schema dualsync of the source database\nTeardown complete.\n");
    return DS_TEARDOWN_EXIT_DONE;

failed:
    fprintf(t->err,
            "dualsync teardown: %s\nWhat was removed stays removed; run teardown again to "
            "finish (it does not check again).\n",
            t->errstr);
    return DS_TEARDOWN_EXIT_SETUP;
}

int ds_teardown_run(const ds_config_t *config, const ds_teardown_options_t *options, FILE *in,
                    FILE *out, FILE *err)
{
    teardown_t t = {.config = config, .opt = options, .out = out, .err = err};
    ds_topics_t *admin = NULL;
    int status = DS_TEARDOWN_EXIT_SETUP;

    if (!(t.source = connect_db(&t, config->source_conninfo,
                                "the source database (source.conninfo)")) ||
        !inspect_source(&t) || !inspect_targets(&t))
        goto setup_error;
    if (options->topics) {
        if (!(admin = ds_topics_new(config, t.errstr, sizeof(t.errstr))) ||
            !inspect_topics(&t, admin))
            goto setup_error;
    }
    if (!anything_left(&t)) {
        fprintf(out, "Nothing to remove: no slot \"%s\", no dualsync schema, no replication "
                     "origin%s.\n",
                config->slot, options->topics ? ", no topic" : "");
        status = DS_TEARDOWN_EXIT_DONE;
        goto done;
    }
    if (t.resuming)
        fprintf(out, "A teardown began at %s and did not finish: finishing it (its checks "
                     "passed then).\n",
                t.started_at);
    else if (!options->force && (status = check(&t)) != DS_TEARDOWN_EXIT_DONE)
        goto done;
    print_plan(&t);
    if (!options->yes && (status = confirm(&t, in)) != DS_TEARDOWN_EXIT_DONE)
        goto done;
    status = remove_all(&t, admin);
    goto done;

setup_error:
    fprintf(err, "dualsync teardown: %s\n", t.errstr);
    status = DS_TEARDOWN_EXIT_SETUP;
done:
    for (int i = 0; i < t.ndbs; i++) {
        PQfinish(t.dbs[i].conn);
        free_list(t.dbs[i].origins, t.dbs[i].norigins);
    }
    free(t.dbs);
    free_list(t.topics, t.ntopics);
    ds_topics_free(admin);
    PQfinish(t.source);
    return status;
}
