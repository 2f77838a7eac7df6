/*
 * replay.c: `dualsync replay` (design in include/dualsync/replay.h).
 *
 * Per target database, in turn:
 *   1. refuse what a swap would lose (views, rules, triggers, policies, publications on a
 *      target table; in-place targets) and topics that cannot rebuild the current state
 *      (replay_topics.c);
 *   2. create the shadows (or keep those of an interrupted run of the same mappings), or with
 *      --in-place empty the live tables behind the gate (replay_shadows.c);
 *   3. rebuild (replay_rebuild.c): read every mapped partition from the replay's stored offsets up to live
 *      apply's stored offsets (L), in batches written by apply's applier into the shadows,
 *      and again while live apply moves on, until the shadows are close behind;
 *   4. swap, in one transaction on the control connection, retried when a lock is not granted
 *      within lock_timeout (see replay_swap.c).
 *
 * Why never past L: live apply stores in dualsync.offsets, with its rows, the next offset it
 * needs; the shadows hold exactly the messages below L when they are swapped in, so live apply
 * goes on from L on the new tables. A message past L written to the shadows would be applied
 * twice; one below L missing would be a gap.
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

volatile sig_atomic_t ds_replay_stop_signals;

static void on_signal(int signo)
{
    (void)signo;
    ds_replay_stop_signals++;
}

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------------- */

char *ds_replay_xstrdup(const char *s)
{
    char *p = strdup(s);

    if (!p) {
        fputs("dualsync replay: out of memory\n", stderr);
        abort();
    }
    return p;
}

static char *qualified(const char *schema, const char *table)
{
    ds_buf_t buf = DS_BUF_INIT;

    ds_buf_append_ident(&buf, schema);
    ds_buf_append_char(&buf, '.');
    ds_buf_append_ident(&buf, table);
    return buf.data;
}

int64_t ds_replay_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ds_replay_pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !ds_replay_stop_signals)
        ;
}

/*
 * Runs @p sql on the control connection; false (r->errstr names @p what and the server's
 * message, @p sqlstate the SQLSTATE when not NULL) unless it answers @p ok.
 */
bool ds_replay_exec(replay_t *r, const char *sql, int nparams, const char *const *params,
                    ExecStatusType ok, PGresult **res, const char *what, char *sqlstate)
{
    PGresult *pr = nparams == 0 ? PQexec(r->conn, sql)
                                : PQexecParams(r->conn, sql, nparams, NULL, params, NULL, NULL, 0);

    if (sqlstate)
        sqlstate[0] = '\0';
    if (PQresultStatus(pr) != ok) {
        char state[6], message[2048];

        ds_pg_result_error(pr, r->conn, state, message, sizeof(message));
        if (sqlstate)
            memcpy(sqlstate, state, sizeof(state));
        ds_fail(r->errstr, sizeof(r->errstr), "target \"%s\": %s: %s", r->dbname, what, message);
        PQclear(pr);
        return false;
    }
    if (res)
        *res = pr;
    else
        PQclear(pr);
    return true;
}


/* DS_APPLY_SCHEMA_SQL for the replay's schema (as the applier does with options.schema). */
char *ds_replay_schema_sql(void)
{
    ds_buf_t out = DS_BUF_INIT;
    const char *p = DS_APPLY_SCHEMA_SQL, *hit;

    while ((hit = strstr(p, "dualsync")) != NULL) {
        ds_buf_append(&out, p, (size_t)(hit - p));
        /* Unlogged: see "Unlogged while rebuilding" below. */
        if (hit - p >= 27 && strncmp(hit - 27, "CREATE TABLE IF NOT EXISTS ", 27) == 0) {
            out.len -= 27;
            ds_buf_append_str(&out, "CREATE UNLOGGED TABLE IF NOT EXISTS ");
        }
        ds_buf_append_str(&out, REPLAY_SCHEMA);
        p = hit + strlen("dualsync");
    }
    ds_buf_append_str(&out, p);
    return out.data;
}

/* ---------------------------------------------------------------------------------------------
 * 1. What is replayed
 * ------------------------------------------------------------------------------------------- */

static const char *file_stem(const char *path, size_t *len)
{
    const char *base = strrchr(path, '/');
    const char *dot;

    base = base ? base + 1 : path;
    dot = strrchr(base, '.');
    *len = dot && dot > base ? (size_t)(dot - base) : strlen(base);
    return base;
}

static bool names_file(const char *name, const char *path)
{
    size_t len;
    const char *stem = file_stem(path, &len);

    return strcmp(name, path) == 0 || (strlen(name) == len && strncmp(name, stem, len) == 0);
}

/*
 * The files to load: those named (all without --mapping), and every file with a target
 * writing a table one of them writes in the same database: targets sharing rows (a "merge"
 * name, or in-place columns of the same table) must be rebuilt together, or the rebuilt table
 * would lose the other file's rows.
 */
static int select_files(replay_t *r)
{
    const ds_config_t *config = r->config;
    static char errstr[65536];
    ds_mapping_set_t *all = NULL;
    bool *chosen = calloc((size_t)config->nmappings + 1, sizeof(bool));
    int status = DS_REPLAY_EXIT_USAGE;
    bool grew = true;

    if (!chosen)
        return DS_REPLAY_EXIT_FAILURE;
    for (int i = 0; i < r->opt->nmappings; i++) {
        bool found = false;

        for (int f = 0; f < config->nmappings; f++) {
            if (names_file(r->opt->mappings[i], config->mappings[f]))
                found = chosen[f] = true;
        }
        if (!found) {
            ds_error("--mapping %s: no such mapping file in %s's \"mappings\" (give the file "
                     "stem, e.g. \"patients\", or the path as the configuration lists it)",
                     r->opt->mappings[i], config->path);
            goto done;
        }
    }
    if (r->opt->nmappings == 0) {
        for (int f = 0; f < config->nmappings; f++)
            chosen[f] = true;
    }
    if (!ds_mapping_set_load((const char *const *)config->mappings, config->nmappings,
                             config->topic_prefix, (const char *const *)config->target_names, &all,
                             errstr, sizeof(errstr))) {
        ds_error("the mappings have problems:\n%s", errstr);
        goto done;
    }
    while (grew) {
        grew = false;
        for (int i = 0; i < ds_mapping_set_ntargets(all); i++) {
            ds_target_shape_t a;

            ds_mapping_target_describe(all, i, &a);
            if (!chosen[a.file_index])
                continue;
            for (int j = 0; j < ds_mapping_set_ntargets(all); j++) {
                ds_target_shape_t b;

                ds_mapping_target_describe(all, j, &b);
                if (chosen[b.file_index] ||
                    strcmp(ds_mapping_set_target(all, i)->connection,
                           ds_mapping_set_target(all, j)->connection) != 0 ||
                    strcmp(a.schema, b.schema) != 0 || strcmp(a.table, b.table) != 0)
                    continue;
                ds_info("replaying %s too: its target %s writes %s.%s as %s does", b.file,
                        ds_mapping_set_target(all, j)->id, b.schema, b.table,
                        ds_mapping_set_target(all, i)->id);
                chosen[b.file_index] = grew = true;
            }
        }
    }
    r->paths = calloc((size_t)config->nmappings + 1, sizeof(*r->paths));
    if (!r->paths) {
        status = DS_REPLAY_EXIT_FAILURE;
        goto done;
    }
    for (int f = 0; f < config->nmappings; f++) {
        if (chosen[f])
            r->paths[r->npaths++] = config->mappings[f];
    }
    status = DS_REPLAY_EXIT_OK;
done:
    ds_mapping_set_free(all);
    free(chosen);
    return status;
}

int ds_replay_find_table(const replay_t *r, const char *connection, const char *schema,
                         const char *table)
{
    for (int i = 0; i < r->ntables; i++) {
        const rtable_t *t = &r->tables[i];

        if (strcmp(r->config->target_names[t->db], connection) == 0 &&
            strcmp(t->schema, schema) == 0 && strcmp(t->table, table) == 0)
            return i;
    }
    return -1;
}

static int config_db(const ds_config_t *config, const char *name)
{
    for (int i = 0; i < config->ntargets; i++) {
        if (strcmp(config->target_names[i], name) == 0)
            return i;
    }
    return -1;
}

/* The rename hook: a replayed table, as a target's own table or as a lookup, is its shadow. */
static const char *shadow_of(void *arg, const ds_target_t *target, const char *schema,
                             const char *table)
{
    replay_t *r = arg;
    int i = ds_replay_find_table(r, target->connection, schema, table);

    return i >= 0 ? r->tables[i].shadow : NULL;
}

/* Loads the selected files, lists their tables, refuses in-place targets, renames. */
static int load_set(replay_t *r)
{
    static char errstr[65536];
    bool refused = false;

    if (!ds_mapping_set_load(r->paths, r->npaths, r->config->topic_prefix,
                             (const char *const *)r->config->target_names, &r->set, errstr,
                             sizeof(errstr))) {
        ds_error("the mappings have problems:\n%s", errstr);
        return DS_REPLAY_EXIT_USAGE;
    }
    if (!ds_mapping_set_unavailable_value(r->set, r->config->unavailable_value_placeholder))
        return DS_REPLAY_EXIT_FAILURE;
    if (!ds_mapping_set_value_format(r->set, &r->config->value_format, r->config->source_conninfo,
                                     errstr, sizeof(errstr))) {
        ds_error("%s: %s", r->config->path, errstr);
        return DS_REPLAY_EXIT_USAGE;
    }
    r->tables = calloc((size_t)ds_mapping_set_ntargets(r->set) + 1, sizeof(*r->tables));
    if (!r->tables)
        return DS_REPLAY_EXIT_FAILURE;
    for (int i = 0; i < ds_mapping_set_ntargets(r->set); i++) {
        const ds_target_t *t = ds_mapping_set_target(r->set, i);
        ds_target_shape_t shape;
        rtable_t *rt;
        ds_buf_t name = DS_BUF_INIT;
        int k;

        ds_mapping_target_describe(r->set, i, &shape);
        if ((k = ds_replay_find_table(r, t->connection, shape.schema, shape.table)) >= 0) {
            if (r->tables[k].in_place != t->in_place) {
                ds_error("%s: target %s writes %s in place, and another target writes whole "
                         "rows of it: replay cannot rebuild such a table",
                         t->file, t->id, t->table);
                refused = true;
            }
            continue;
        }
        if (strlen(shape.table) + strlen(OLD_SUFFIX) > 63) {
            ds_error("%s: target %s: table name %s is too long for its shadow %s%s (PostgreSQL "
                     "names have at most 63 bytes)",
                     t->file, t->id, t->table, shape.table, SHADOW_SUFFIX);
            refused = true;
            continue;
        }
        rt = &r->tables[r->ntables++];
        rt->in_place = t->in_place;
        rt->db = config_db(r->config, t->connection);
        rt->schema = xstrdup(shape.schema);
        rt->table = xstrdup(shape.table);
        rt->live = qualified(shape.schema, shape.table);
        /* --in-place: the table is emptied and written again where it is. */
        ds_buf_appendf(&name, "%s%s", shape.table,
                       r->opt->in_place && !t->in_place ? "" : SHADOW_SUFFIX);
        rt->shadow_name = name.data;
        rt->shadow = qualified(shape.schema, rt->shadow_name);
        name = (ds_buf_t)DS_BUF_INIT;
        ds_buf_appendf(&name, "%s%s", shape.table, OLD_SUFFIX);
        rt->old_name = name.data;
        rt->old = qualified(shape.schema, rt->old_name);
    }
    if (refused)
        return DS_REPLAY_EXIT_USAGE;
    ds_mapping_set_rename_tables(r->set, shadow_of, r, REPLAY_SCHEMA ".links");
    return DS_REPLAY_EXIT_OK;
}

/* FNV-1a of the replayed files' contents: an interrupted replay resumes only with the same
 * mappings (its shadows were written by them). */
void ds_replay_fingerprint(const replay_t *r, char out[17])
{
    uint64_t h = UINT64_C(14695981039346656037);

    for (int i = 0; i < r->npaths; i++) {
        FILE *f = fopen(r->paths[i], "rb");
        int c;

        for (const char *p = r->paths[i]; *p; p++)
            h = (h ^ (uint8_t)*p) * UINT64_C(1099511628211);
        while (f && (c = fgetc(f)) != EOF)
            h = (h ^ (uint8_t)c) * UINT64_C(1099511628211);
        if (f)
            fclose(f);
        h = (h ^ 0xff) * UINT64_C(1099511628211);
    }
    /* A run of the other mode left nothing this one can resume. */
    h = (h ^ (r->opt->in_place ? 'i' : 's')) * UINT64_C(1099511628211);
    snprintf(out, 17, "%016" PRIx64, h);
}

/* ---------------------------------------------------------------------------------------------
 * Running
 * ------------------------------------------------------------------------------------------- */

static void close_db(replay_t *r)
{
    ds_batch_free(r->batch);
    ds_batch_free(r->inflight);
    ds_batch_free(r->spare);
    r->inflight = r->spare = NULL;
    ds_consumer_free(r->consumer);
    ds_dlq_free(r->dlq, 10000);
    ds_applier_free(r->applier);
    ds_offsets_free(r->offsets);
    PQfinish(r->conn);
    free(r->parts);
    r->batch = NULL;
    r->consumer = NULL;
    r->dlq = NULL;
    r->applier = NULL;
    r->offsets = NULL;
    r->conn = NULL;
    r->parts = NULL;
    r->nparts = 0;
}

/* Warns when the replay took longer than a topic keeps its tombstones. */
static void warn_tombstones(replay_t *r, const ds_replay_topic_t *topics, int ntopics)
{
    int64_t took_ms = wall_ms() - r->started_ms;

    for (int i = 0; i < ntopics; i++) {
        /* Only compaction removes tombstones (after delete.retention.ms). */
        if (strstr(topics[i].cleanup_policy, "compact") && topics[i].delete_retention_ms >= 0 &&
            took_ms > topics[i].delete_retention_ms)
            ds_warning("target \"%s\": the replay took %.1f s, longer than topic %s keeps "
                       "tombstones (delete.retention.ms %" PRId64 "): deletes compacted away "
                       "meanwhile may be missing from the rebuilt tables; run `dualsync verify`",
                       r->dbname, (double)took_ms / 1000, topics[i].topic,
                       topics[i].delete_retention_ms);
    }
}

static int replay_db(replay_t *r, int db, const ds_replay_topic_t *topics, int ntopics)
{
    static const char *const keywords[] = {"dbname", "fallback_application_name", NULL};
    const char *values[] = {r->config->target_conninfos[db], "dualsync-replay", NULL};
    ds_applier_options_t options = {
        .name = r->config->target_names[db],
        .conninfo = r->config->target_conninfos[db],
        .origin = r->origin,
        .group_id = r->group_id,
        .schema = REPLAY_SCHEMA,
        .set = r->set,
        .row_by_row = !r->config->apply_set_based,
        .pending_timeout_ms = r->config->apply_pending_timeout_ms,
    };
    PGresult *res;
    char errstr[4096];
    int status = DS_REPLAY_EXIT_FAILURE;

    r->db = db;
    r->dbname = r->config->target_names[db];
    r->conn = PQconnectdbParams(keywords, values, 1);
    if (!r->conn || PQstatus(r->conn) != CONNECTION_OK) {
        ds_error("target \"%s\": cannot connect: %s", r->dbname,
                 r->conn ? ds_pg_error(r->conn) : "out of memory");
        goto done;
    }
    PQclear(PQexec(r->conn, "SET TimeZone = 'UTC'; SET client_min_messages = warning"));
    /* One replay per database at a time: two would write the same shadows. */
    if (!exec(r, "SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtext('dualsync replay'))",
              0, NULL, PGRES_TUPLES_OK, &res, "taking the replay lock", NULL))
        goto failed;
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        PQclear(res);
        ds_error("target \"%s\": another `dualsync replay` is running on this database", r->dbname);
        goto done;
    }
    PQclear(res);
    if (!exec(r, DS_APPLY_SCHEMA_SQL, 0, NULL, PGRES_COMMAND_OK, NULL,
              "creating the dualsync schema", NULL) ||
        !ds_replay_prepare_shadows(r) || !ds_replay_validate_foreign_keys(r)) {
        status = r->refused ? DS_REPLAY_EXIT_USAGE : DS_REPLAY_EXIT_FAILURE;
        goto failed;
    }
    if (!(r->applier = ds_applier_new(&options)) || !(r->offsets = ds_offsets_new(1)) ||
        !(r->batch = ds_batch_new())) {
        ds_error("out of memory");
        goto done;
    }
    switch (ds_applier_connect(r->applier, errstr, sizeof(errstr))) {
    case DS_APPLIER_OK:
        break;
    case DS_APPLIER_INVALID:
        ds_error("the mappings do not fit the tables of target \"%s\":\n%s", r->dbname, errstr);
        status = DS_REPLAY_EXIT_USAGE;
        goto done;
    default:
        ds_error("%s", errstr);
        goto done;
    }
    r->hooks = (ds_applier_hooks_t){ds_replay_hook_dead_letter, ds_replay_hook_before_commit, r};
    if (!(r->dlq = ds_dlq_new(r->config, errstr, sizeof(errstr))) ||
        !(r->consumer = ds_consumer_new(r->config, NULL, NULL, NULL, NULL, errstr,
                                        sizeof(errstr)))) {
        ds_error("%s", errstr);
        status = DS_REPLAY_EXIT_USAGE;
        goto done;
    }
    if (!ds_replay_list_partitions(r) || !ds_replay_rebuild(r))
        goto failed;
    ds_info("target \"%s\": the shadows are %" PRId64 " messages behind live apply: swapping",
            r->dbname, ds_replay_behind(r));
    if (!ds_replay_links_all_replayed(r, &r->whole_links) ||
        !ds_replay_set_logged(r, r->whole_links) || !ds_replay_swap(r))
        goto failed;
    {
        int n = 0;

        for (int i = 0; i < r->ntables; i++)
            n += r->tables[i].db == db;
        ds_info("target \"%s\": %s %d rebuilt tables (%" PRIu64 " messages replayed by "
                "this run, %" PRIu64 " dead letters)",
                r->dbname, r->opt->in_place ? "live apply resumes on" : "swapped in", n,
                r->messages, r->dead_letters);
    }
    warn_tombstones(r, topics, ntopics);
    if (!ds_replay_validate_foreign_keys(r))
        goto failed;
    status = DS_REPLAY_EXIT_OK;
    goto done;
failed:
    ds_error("%s", r->errstr);
done:
    close_db(r);
    return status;
}

static void replay_free(replay_t *r)
{
    ds_mapping_set_free(r->set);
    for (int i = 0; i < r->ntables; i++) {
        rtable_t *t = &r->tables[i];

        free(t->schema);
        free(t->table);
        free(t->live);
        free(t->shadow_name);
        free(t->shadow);
        free(t->old_name);
        free(t->old);
    }
    free(r->tables);
    free(r->paths);
    free(r->group_id);
    free(r->origin);
}

int ds_replay_run(const ds_config_t *config, const ds_replay_options_t *opt)
{
    replay_t r;
    struct sigaction sa;
    ds_replay_topic_t *topics = NULL;
    int ntopics = 0, status;

    memset(&r, 0, sizeof(r));
    r.config = config;
    r.opt = opt;
    ds_replay_stop_signals = 0;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (asprintf(&r.group_id, "%s.replay", config->apply_group_id) < 0) {
        ds_error("out of memory");
        return DS_REPLAY_EXIT_FAILURE;
    }
    if (asprintf(&r.origin, "%s.replay", config->apply_origin) < 0) {
        ds_error("out of memory");
        return DS_REPLAY_EXIT_FAILURE;
    }
    if ((status = select_files(&r)) != DS_REPLAY_EXIT_OK ||
        (status = load_set(&r)) != DS_REPLAY_EXIT_OK)
        goto done;
    /* Before anything is written: topics that cannot give the current state are refused. */
    if (!ds_replay_check_topics(config, r.set, &topics, &ntopics, r.errstr, sizeof(r.errstr))) {
        ds_error("%s", r.errstr);
        status = DS_REPLAY_EXIT_USAGE;
        goto done;
    }
    for (int db = 0; db < config->ntargets && status == DS_REPLAY_EXIT_OK; db++) {
        bool used = false;

        for (int i = 0; i < r.ntables; i++)
            used = used || r.tables[i].db == db;
        if (used)
            status = replay_db(&r, db, topics, ntopics);
    }
done:
    free(topics);
    replay_free(&r);
    return status;
}
