/*
 * replay.c: `dualsync replay` (design in include/dualsync/replay.h).
 *
 * Per target database, in turn:
 *   1. refuse what a swap would lose (views, rules, triggers, policies, publications on a
 *      target table; in-place targets) and topics that cannot rebuild the current state
 *      (replay_topics.c);
 *   2. create the shadows (or keep those of an interrupted run of the same mappings);
 *   3. rebuild: read every mapped partition from the replay's stored offsets up to live
 *      apply's stored offsets (L), in batches written by apply's applier into the shadows,
 *      and again while live apply moves on, until the shadows are close behind;
 *   4. swap, in one transaction on the control connection, retried when a lock is not granted
 *      within lock_timeout (see swap()).
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

#define REPLAY_SCHEMA  "dualsync_replay"
#define SHADOW_SUFFIX  "__replay"
#define OLD_SUFFIX     "__replay_old"
#define POLL_MS        200
/* The swap starts once a rebuild pass leaves fewer messages than this behind live apply:
 * the tail the swap writes while it holds the locks stays short. */
#define SWAP_MAX_TAIL  2000
/* How long the swap waits for each lock before it lets go and tries again (pg_repack and
 * pg-osc do the same): the application's readers queue behind a waiting ACCESS EXCLUSIVE. */
#define LOCK_TIMEOUT   "2s"
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 10000
#define MAX_SWAP_TRIES 30

static volatile sig_atomic_t stop_signals;

static void on_signal(int signo)
{
    (void)signo;
    stop_signals++;
}

/* A replayed target table (an upsert target's table) of one target database. */
typedef struct rtable {
    int db;            /* index in config->target_names */
    char *schema;      /* unquoted */
    char *table;       /* unquoted */
    char *live;        /* "schema"."table" */
    char *shadow_name; /* table__replay, unquoted */
    char *shadow;      /* "schema"."table__replay" */
    char *old_name;    /* table__replay_old, unquoted */
    char *old;         /* "schema"."table__replay_old" */
    bool in_place;     /* written by in-place targets (mode "update"): a legacy table, never
                        * swapped; its shadow holds its primary key, the targets' keys and
                        * mapped columns, and the swap copies the values that differ */
} rtable_t;

/* A partition of a mapped topic. */
typedef struct rpart {
    const char *topic; /* borrowed from the set */
    int32_t partition;
    int64_t bound;   /* live apply's next offset (L): the replay stops below it */
    int64_t reached; /* the highest bound a pass read up to (gaps: compaction, markers) */
    bool done;       /* this pass: nothing more below bound */
} rpart_t;

typedef struct replay {
    const ds_config_t *config;
    const ds_replay_options_t *opt;
    const char **paths;    /* the mapping files replayed (borrowed from config) */
    int npaths;
    ds_mapping_set_t *set; /* compiled against the shadows */
    rtable_t *tables;      /* every replayed table, all databases */
    int ntables;
    char *group_id;        /* "<apply.group_id>.replay": the key of the replay's offsets (in its
                            * own schema; distinct from live apply's group all the same, so that
                            * nothing keyed by group ever mixes the two) */
    char *origin;          /* "<apply.origin>.replay": never held by live apply, skipped by
                            * capture as every "<apply.origin>.<anything>" */

    /* The target database being replayed. */
    int db;
    const char *dbname;
    PGconn *conn; /* the control connection: state, shadows, the swap */
    ds_applier_t *applier;
    ds_offsets_t *offsets; /* the replay's stored offsets (one database: 0) */
    ds_consumer_t *consumer;
    ds_dlq_t *dlq;
    ds_batch_t *batch;    /* the batch being read */
    ds_batch_t *inflight; /* the one before: writes sent (ds_applier_send), not committed */
    ds_batch_t *spare;    /* an empty batch to read into next */
    ds_applier_hooks_t hooks;
    ds_applier_stats_t stats;
    rpart_t *parts;
    int nparts;
    ds_backfill_progress_t prog;
    uint64_t messages;     /* messages written to the shadows by this run */
    uint64_t dead_letters; /* published by this run */
    int64_t started_ms; /* when this replay (maybe an earlier, interrupted run) began: Unix ms */
    bool refused;          /* errstr is a refusal (a table the swap cannot carry over): exit 2 */
    bool whole_links;      /* the replay's links table was made logged, to be moved whole */
    char errstr[8192];
} replay_t;

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------------- */

static char *xstrdup(const char *s)
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

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_signals)
        ;
}

/*
 * Runs @p sql on the control connection; false (r->errstr names @p what and the server's
 * message, @p sqlstate the SQLSTATE when not NULL) unless it answers @p ok.
 */
static bool exec(replay_t *r, const char *sql, int nparams, const char *const *params,
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
static char *replay_schema_sql(void)
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

static int find_table(const replay_t *r, const char *connection, const char *schema,
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
    int i = find_table(r, target->connection, schema, table);

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
        if ((k = find_table(r, t->connection, shape.schema, shape.table)) >= 0) {
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
static void fingerprint(const replay_t *r, char out[17])
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

/* Whether table @p t of this database is rebuilt in a shadow and swapped in (not an in-place
 * target's legacy table, not a table --in-place rebuilds where it is). */
static bool swapped(const replay_t *r, const rtable_t *t)
{
    return t->db == r->db && !t->in_place && !r->opt->in_place;
}

/* Whether table @p t of this database is emptied and rebuilt where it is (--in-place). */
static bool rebuilt_in_place(const replay_t *r, const rtable_t *t)
{
    return t->db == r->db && !t->in_place && r->opt->in_place;
}

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
        int ref = find_table(r, r->config->target_names[t->db], PQgetvalue(res, i, 3),
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
        if (find_table(r, target->connection, shape.schema, shape.table) != t - r->tables)
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
            find_table(r, target->connection, shape.schema, shape.table) != t - r->tables)
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
static bool copy_in_place(replay_t *r, const rtable_t *t)
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
        if (rebuilt_in_place(r, &r->tables[i]))
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

        if (!rebuilt_in_place(r, &r->tables[i]))
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
        if (!rebuilt_in_place(r, &r->tables[i]))
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
static bool open_gate(replay_t *r, char *sqlstate)
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
 * fingerprint); a different one starts over. Returns false on an error.
 */
static bool prepare_shadows(replay_t *r)
{
    char fp[17];
    const char *params[] = {fp};
    PGresult *res;
    bool resume = false;
    char *schema_sql = replay_schema_sql();

    fingerprint(r, fp);
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
    if (!exec(r, "SELECT fingerprint, (extract(epoch FROM started_at) * 1000)::bigint FROM " REPLAY_SCHEMA
                 ".state",
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

        if (swapped(r, t) && !check_swappable(r, t))
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

        if (t->db != r->db || rebuilt_in_place(r, t))
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

        if (t->db == r->db && !rebuilt_in_place(r, t) &&
            !(t->in_place ? create_in_place_shadow(r, t) : create_shadow(r, t)))
            goto rollback;
    }
    /* Foreign keys last: one may point at another shadow. */
    for (int i = 0; i < r->ntables; i++) {
        const rtable_t *t = &r->tables[i];

        if (swapped(r, t) && !copy_foreign_keys(r, t))
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
static bool validate_foreign_keys(replay_t *r)
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

/* ---------------------------------------------------------------------------------------------
 * 3. Rebuilding
 * ------------------------------------------------------------------------------------------- */

static bool give_up(void *ctx)
{
    (void)ctx;
    return stop_signals >= 2;
}

static bool hook_dead_letter(void *ctx, const ds_dead_letter_t *dl, char *errstr,
                             size_t errstr_size)
{
    replay_t *r = ctx;

    ds_warning("dead letter: %s [%d] @%" PRId64 "%s%s: %s", dl->topic, (int)dl->partition,
               dl->offset, dl->target ? " target " : "", dl->target ? dl->target : "", dl->error);
    if (!ds_dlq_send(r->dlq, dl, errstr, errstr_size))
        return false;
    r->dead_letters++;
    return true;
}

static bool hook_before_commit(void *ctx, char *errstr, size_t errstr_size)
{
    replay_t *r = ctx;

    return ds_dlq_flush(r->dlq, give_up, NULL, errstr, errstr_size);
}

/* Evaluates one message as apply does (prepare_message in apply.c). */
static bool prepare_message(replay_t *r, ds_batch_msg_t *m)
{
    ds_write_list_t writes;
    json_error_t jerr;
    char why[2048], errstr[4096];
    ds_dead_letter_t dl;

    if (m->value_text && !(m->value = json_loadb(m->value_text, m->value_len, 0, &jerr))) {
        snprintf(why, sizeof(why), "the message value is not JSON: %s (line %d, column %d)",
                 jerr.text, jerr.line, jerr.column);
    } else if (ds_mapping_eval(r->set, m->topic, m->key ? m->key : "null", m->key ? m->key_len : 4,
                               m->value, &writes, why, sizeof(why))) {
        if (!ds_batch_set_writes(m, &writes) || !ds_batch_set_rejects(m, &writes))
            return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
        for (int i = 0; i < m->nrejects; i++) {
            dl = ds_batch_dead_letter(m, m->rejects[i].target, m->rejects[i].error);
            dl.recorded = true;
            if (!hook_dead_letter(r, &dl, errstr, sizeof(errstr)))
                return ds_fail(r->errstr, sizeof(r->errstr), "%s", errstr);
        }
        return true;
    }
    if (!ds_batch_set_error(m, why))
        return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
    dl = ds_batch_dead_letter(m, NULL, m->error);
    dl.recorded = true;
    if (!hook_dead_letter(r, &dl, errstr, sizeof(errstr)))
        return ds_fail(r->errstr, sizeof(r->errstr), "%s", errstr);
    return true;
}

/* Runs an applier step until it succeeds, reconnecting with backoff. */
typedef enum { STEP_APPLY, STEP_PENDING } step_t;

static bool applier_step(replay_t *r, step_t step, ds_batch_t *batch)
{
    int backoff = BACKOFF_MIN_MS;
    char errstr[4096];

    for (;;) {
        ds_applier_status_t st =
            step == STEP_APPLY ? ds_applier_apply(r->applier, 0, batch, r->offsets, &r->hooks,
                                                  &r->stats, errstr, sizeof(errstr))
                               : ds_applier_retry_pending(r->applier, 0, r->offsets, &r->hooks, &r->stats,
                                                          errstr, sizeof(errstr));

        if (st == DS_APPLIER_OK)
            return true;
        if (st != DS_APPLIER_RETRY || stop_signals)
            return ds_fail(r->errstr, sizeof(r->errstr), "%s", errstr);
        ds_warning("%s; retrying in %d ms", errstr, backoff);
        pause_ms(backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
        if (!ds_applier_connected(r->applier)) {
            ds_topic_partition_t *tp = calloc((size_t)r->nparts + 1, sizeof(*tp));

            if (!tp)
                return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
            for (int i = 0; i < r->nparts; i++)
                tp[i] = (ds_topic_partition_t){r->parts[i].topic, r->parts[i].partition, 0};
            st = ds_applier_connect(r->applier, errstr, sizeof(errstr));
            if (st == DS_APPLIER_OK)
                st = ds_applier_claim(r->applier, r->offsets, 0, tp, r->nparts, errstr,
                                             sizeof(errstr));
            free(tp);
            if (st != DS_APPLIER_OK && st != DS_APPLIER_RETRY)
                return ds_fail(r->errstr, sizeof(r->errstr), "%s", errstr);
        }
    }
}

/* Commits the batch whose writes flush_batch() sent, then retries the pending changes a parent
 * of it may have freed. */
static bool finish_inflight(replay_t *r)
{
    ds_batch_t *batch = r->inflight;
    uint64_t before = r->stats.writes;
    bool ok;

    if (!batch)
        return true;
    r->inflight = NULL;
    ok = applier_step(r, STEP_APPLY, batch);
    if (ok)
        r->messages += (uint64_t)ds_batch_count(batch);
    ds_batch_clear(batch);
    if (!r->spare)
        r->spare = batch;
    else
        ds_batch_free(batch);
    if (ok && r->stats.writes > before && ds_applier_pending(r->applier) > 0)
        ok = applier_step(r, STEP_PENDING, NULL);
    return ok;
}

/*
 * Maps the batch read so far and sends its writes, after committing the one before (as apply
 * does): the database writes one batch while the next is read and mapped. @p wait: commit it
 * too (the end of a pass, or nothing more to read for now).
 */
static bool flush_batch(replay_t *r, bool wait)
{
    int count = ds_batch_count(r->batch);

    if (count == 0)
        return !wait || finish_inflight(r);
    for (int i = 0; i < count; i++) {
        if (!prepare_message(r, ds_batch_at(r->batch, i)))
            return false;
    }
    if (!finish_inflight(r))
        return false;
    if (!r->spare && !(r->spare = ds_batch_new()))
        return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
    ds_applier_send(r->applier, 0, r->batch, r->offsets);
    r->inflight = r->batch;
    r->batch = r->spare;
    r->spare = NULL;
    return !wait || finish_inflight(r);
}

static rpart_t *find_part(replay_t *r, const char *topic, int32_t partition)
{
    for (int i = 0; i < r->nparts; i++) {
        if (r->parts[i].partition == partition && strcmp(r->parts[i].topic, topic) == 0)
            return &r->parts[i];
    }
    return NULL;
}

/* Where the replay stands in @p p: its stored next offset, or the bound a pass reached. */
static int64_t position(const replay_t *r, const rpart_t *p)
{
    int64_t stored = ds_offsets_get(r->offsets, 0, p->topic, p->partition);

    if (stored < 0)
        stored = 0;
    return stored > p->reached ? stored : p->reached;
}

static int64_t behind(const replay_t *r)
{
    int64_t n = 0;

    for (int i = 0; i < r->nparts; i++) {
        int64_t pos = position(r, &r->parts[i]);

        n += r->parts[i].bound > pos ? r->parts[i].bound - pos : 0;
    }
    return n;
}

/*
 * Reads live apply's next offsets (L) into the parts' bounds; with @p lock, FOR UPDATE (the
 * swap: live apply cannot store offsets of these topics until it commits). A partition live
 * apply has not written yet has bound 0: nothing of it is in the live tables.
 */
static bool read_bounds(replay_t *r, bool lock)
{
    const char **topics = calloc((size_t)ds_mapping_set_ntopics(r->set) + 1, sizeof(*topics));
    char *array;
    const char *params[2];
    PGresult *res;
    bool ok;

    if (!topics)
        return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
    for (int i = 0; i < ds_mapping_set_ntopics(r->set); i++)
        topics[i] = ds_mapping_set_topic(r->set, i);
    array = ds_pg_text_array(topics, ds_mapping_set_ntopics(r->set));
    free(topics);
    params[0] = r->config->apply_group_id;
    params[1] = array;
    ok = exec(r,
              lock ? "SELECT topic, partition, next_offset FROM dualsync.offsets"
                     " WHERE group_id = $1 AND topic = ANY($2::text[])"
                     " ORDER BY topic, partition FOR UPDATE"
                   : "SELECT topic, partition, next_offset FROM dualsync.offsets"
                     " WHERE group_id = $1 AND topic = ANY($2::text[])",
              2, params, PGRES_TUPLES_OK, &res, "reading live apply's offsets", NULL);
    free(array);
    if (!ok)
        return false;
    for (int i = 0; i < r->nparts; i++)
        r->parts[i].bound = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        rpart_t *p = find_part(r, PQgetvalue(res, i, 0), atoi(PQgetvalue(res, i, 1)));

        if (p)
            p->bound = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        else
            ds_warning("target \"%s\": live apply has offsets for %s [%s], which the topic does "
                       "not have (any more)",
                       r->dbname, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
    }
    PQclear(res);
    return true;
}

/* Reads every partition from where the replay stands up to its bound into the shadows. */
static bool consume_to_bounds(replay_t *r)
{
    ds_topic_partition_t *assign = calloc((size_t)r->nparts + 1, sizeof(*assign));
    int nassign = 0, remaining;
    char errstr[1024];
    bool ok = false;

    if (!assign)
        return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
    for (int i = 0; i < r->nparts; i++) {
        rpart_t *p = &r->parts[i];
        int64_t pos = position(r, p);

        p->done = pos >= p->bound;
        if (p->done) {
            if (p->reached < p->bound)
                p->reached = p->bound;
            continue;
        }
        assign[nassign++] = (ds_topic_partition_t){p->topic, p->partition, pos};
    }
    remaining = nassign;
    if (remaining == 0) {
        free(assign);
        return true;
    }
    if (!ds_consumer_assign(r->consumer, assign, nassign, errstr, sizeof(errstr))) {
        free(assign);
        return ds_fail(r->errstr, sizeof(r->errstr), "%s", errstr);
    }
    free(assign);
    while (remaining > 0) {
        ds_kafka_msg_t msg;
        rpart_t *p;

        if (stop_signals) {
            ds_fail(r->errstr, sizeof(r->errstr),
                    "stopped on signal; the live tables are untouched, and the same command "
                    "resumes the replay");
            goto done;
        }
        switch (ds_consumer_poll(r->consumer, POLL_MS, &msg, errstr, sizeof(errstr))) {
        case DS_CONSUMER_MESSAGE:
            p = find_part(r, msg.topic, msg.partition);
            if (!p || p->done || msg.offset >= p->bound) {
                /* Past live apply: not for the shadows (yet). */
                if (p && !p->done) {
                    p->done = true;
                    p->reached = p->bound;
                    remaining--;
                }
                ds_consumer_release(&msg);
                break;
            }
            if (msg.offset + 1 >= p->bound) {
                p->done = true;
                p->reached = p->bound;
                remaining--;
            }
            if (!ds_batch_add(r->batch, &msg)) {
                ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
                goto done;
            }
            r->prog.done_rows++;
            r->prog.table_done++;
            ds_backfill_progress_report(&r->prog, false);
            if (ds_batch_count(r->batch) >= r->config->apply_batch_max_messages &&
                !flush_batch(r, false))
                goto done;
            break;
        case DS_CONSUMER_EOF:
            /* The partition's end: nothing below the bound is left to come. */
            p = find_part(r, msg.topic, msg.partition);
            if (p && !p->done) {
                p->done = true;
                p->reached = p->bound;
                remaining--;
            }
            break;
        case DS_CONSUMER_NOTHING:
            if (!flush_batch(r, true))
                goto done;
            break;
        case DS_CONSUMER_FAILED:
            ds_fail(r->errstr, sizeof(r->errstr), "%s", errstr);
            goto done;
        }
    }
    ok = flush_batch(r, true);
done:
    if (!ok) {
        /* Sent writes are rolled back by the applier's next call, or when it closes. */
        ds_batch_clear(r->batch);
        if (r->inflight) {
            ds_batch_free(r->spare);
            r->spare = r->inflight;
            ds_batch_clear(r->spare);
            r->inflight = NULL;
        }
    }
    return ok;
}

/* The mapped partitions, and the replay's stored offsets in them. */
static bool list_partitions(replay_t *r)
{
    ds_topic_partition_t *tp;
    char errstr[1024];
    ds_applier_status_t st;

    for (int t = 0; t < ds_mapping_set_ntopics(r->set); t++) {
        const char *topic = ds_mapping_set_topic(r->set, t);
        ds_topic_partition_t *end = NULL;
        int nend = 0;

        if (!ds_consumer_end_offsets(r->consumer, topic, 10000, &end, NULL, &nend, errstr,
                                     sizeof(errstr)))
            return ds_fail(r->errstr, sizeof(r->errstr), "%s", errstr);
        r->parts = realloc(r->parts, sizeof(*r->parts) * (size_t)(r->nparts + nend + 1));
        if (!r->parts) {
            free(end);
            return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
        }
        for (int i = 0; i < nend; i++)
            r->parts[r->nparts++] = (rpart_t){topic, end[i].partition, 0, 0, false};
        free(end);
    }
    if (!(tp = calloc((size_t)r->nparts + 1, sizeof(*tp))))
        return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
    for (int i = 0; i < r->nparts; i++)
        tp[i] = (ds_topic_partition_t){r->parts[i].topic, r->parts[i].partition, 0};
    st = ds_applier_claim(r->applier, r->offsets, 0, tp, r->nparts, r->errstr,
                                 sizeof(r->errstr));
    free(tp);
    return st == DS_APPLIER_OK;
}

/* Rebuild passes until the shadows are close behind live apply. */
static bool rebuild(replay_t *r)
{
    int64_t total;

    if (!read_bounds(r, false))
        return false;
    total = behind(r);
    r->prog = (ds_backfill_progress_t){
        .bar = r->opt->progress_bar,
        .what = "replay",
        .schema = r->dbname,
        .table = "messages",
        .start_us = ds_now_us(),
        .table_start_us = ds_now_us(),
        .total_rows = total,
        .table_total = total,
    };
    for (;;) {
        int64_t left;

        if (!consume_to_bounds(r) || !read_bounds(r, false))
            return false;
        left = behind(r);
        /* Live apply moved on meanwhile: that much more to read. */
        r->prog.total_rows = r->prog.done_rows + left;
        r->prog.table_total = r->prog.total_rows;
        if (left <= SWAP_MAX_TAIL)
            break;
    }
    ds_backfill_progress_report(&r->prog, true);
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * 4. The swap
 * ------------------------------------------------------------------------------------------- */

/* The ids of this database's replayed targets (pending, dead letters) and their links ids. */
static void target_ids(const replay_t *r, const char ***ids, int *nids, const char ***links,
                       int *nlinks)
{
    int n = ds_mapping_set_ntargets(r->set);

    *ids = calloc((size_t)n + 1, sizeof(**ids));
    *links = calloc((size_t)n + 1, sizeof(**links));
    *nids = *nlinks = 0;
    if (!*ids || !*links) {
        fputs("dualsync replay: out of memory\n", stderr);
        abort();
    }
    for (int i = 0; i < n; i++) {
        const ds_target_t *t = ds_mapping_set_target(r->set, i);
        bool seen = false;

        if (strcmp(t->connection, r->dbname) != 0)
            continue;
        (*ids)[(*nids)++] = t->id;
        for (int j = 0; j < *nlinks && !seen; j++)
            seen = strcmp((*links)[j], t->links_id) == 0;
        if (!seen)
            (*links)[(*nlinks)++] = t->links_id;
    }
}

/* An index of a table: what pairs an old index with its copy on the shadow. */
static const char *INDEX_SQL =
    "SELECT c.relname, i.indisunique, i.indisprimary,"
    " regexp_replace(pg_catalog.pg_get_indexdef(i.indexrelid), '^.* USING ', ''),"
    " (SELECT k.conname FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid"
    "  AND k.conrelid = i.indrelid LIMIT 1)"
    " FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid"
    " WHERE i.indrelid = $1::regclass ORDER BY c.relname";

/* After the old table is dropped: the new table's indexes and their constraints take the old
 * names (@p old: INDEX_SQL on the old table), so nothing names "…__replay" afterwards. */
static bool rename_indexes(replay_t *r, const rtable_t *t, PGresult *old)
{
    const char *params[] = {t->live};
    PGresult *cur;
    bool *used = calloc((size_t)PQntuples(old) + 1, sizeof(bool));
    bool ok = false;

    if (!used)
        return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");
    if (!exec(r, INDEX_SQL, 1, params, PGRES_TUPLES_OK, &cur, "reading the new table's indexes",
              NULL)) {
        free(used);
        return false;
    }
    for (int i = 0; i < PQntuples(cur); i++) {
        for (int j = 0; j < PQntuples(old); j++) {
            ds_buf_t sql = DS_BUF_INIT;
            bool done;

            if (used[j] || strcmp(PQgetvalue(cur, i, 1), PQgetvalue(old, j, 1)) != 0 ||
                strcmp(PQgetvalue(cur, i, 2), PQgetvalue(old, j, 2)) != 0 ||
                strcmp(PQgetvalue(cur, i, 3), PQgetvalue(old, j, 3)) != 0)
                continue;
            used[j] = true;
            if (strcmp(PQgetvalue(cur, i, 0), PQgetvalue(old, j, 0)) == 0)
                break;
            if (!PQgetisnull(cur, i, 4)) {
                ds_buf_appendf(&sql, "ALTER TABLE %s RENAME CONSTRAINT ", t->live);
                ds_buf_append_ident(&sql, PQgetvalue(cur, i, 4));
                ds_buf_append_str(&sql, " TO ");
            } else {
                ds_buf_append_str(&sql, "ALTER INDEX ");
                ds_buf_append_ident(&sql, t->schema);
                ds_buf_append_char(&sql, '.');
                ds_buf_append_ident(&sql, PQgetvalue(cur, i, 0));
                ds_buf_append_str(&sql, " RENAME TO ");
            }
            ds_buf_append_ident(&sql, PQgetvalue(old, j, 0));
            done = exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, "naming an index", NULL);
            ds_buf_free(&sql);
            if (!done)
                goto out;
            break;
        }
    }
    ok = true;
out:
    PQclear(cur);
    free(used);
    return ok;
}

/* What the swap keeps of a live table between renaming it and finishing the new one. */
typedef struct swapped {
    PGresult *fks;     /* foreign keys other tables hold on it: child, name, definition */
    PGresult *old_idx; /* its indexes (INDEX_SQL) */
} swapped_t;

/*
 * Renames @p t's shadow into place, inside the swap transaction; the old table becomes
 * "…__replay_old" (dropped with the others once all are renamed: they may reference each
 * other). Foreign keys other (not replayed) tables hold on it are dropped here and added again
 * by swap_finish(); sequences the old table owns (serial columns whose defaults the new one
 * shares) move to the new table.
 */
static bool swap_rename(replay_t *r, const rtable_t *t, const char *replayed_oids, swapped_t *sw)
{
    const char *params[] = {t->live, replayed_oids};
    PGresult *seqs = NULL;
    ds_buf_t sql = DS_BUF_INIT;
    bool ok = false;

    if (!exec(r,
              "SELECT conrelid::regclass::text, conname, pg_catalog.pg_get_constraintdef(oid)"
              " FROM pg_catalog.pg_constraint WHERE contype = 'f' AND confrelid = $1::regclass"
              " AND NOT conrelid = ANY($2::oid[]) ORDER BY 1, 2",
              2, params, PGRES_TUPLES_OK, &sw->fks, "reading the foreign keys on a target table",
              NULL) ||
        !exec(r,
              "SELECT s.oid::regclass::text, quote_ident(a.attname) FROM pg_catalog.pg_depend d"
              " JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
              " JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid"
              " AND a.attnum = d.refobjsubid"
              " WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refobjid = $1::regclass"
              " AND d.deptype = 'a'",
              1, params, PGRES_TUPLES_OK, &seqs, "reading the sequences of a target table",
              NULL) ||
        !exec(r, INDEX_SQL, 1, params, PGRES_TUPLES_OK, &sw->old_idx,
              "reading a table's indexes", NULL))
        goto done;
    for (int i = 0; i < PQntuples(sw->fks); i++) {
        ds_buf_reset(&sql);
        ds_buf_appendf(&sql, "ALTER TABLE %s DROP CONSTRAINT ", PQgetvalue(sw->fks, i, 0));
        ds_buf_append_ident(&sql, PQgetvalue(sw->fks, i, 1));
        if (!exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, "dropping a foreign key", NULL))
            goto done;
    }
    for (int i = 0; i < PQntuples(seqs); i++) {
        ds_buf_reset(&sql);
        ds_buf_appendf(&sql, "ALTER SEQUENCE %s OWNED BY %s.%s", PQgetvalue(seqs, i, 0),
                       t->shadow, PQgetvalue(seqs, i, 1));
        if (!exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, "moving a sequence", NULL))
            goto done;
    }
    ds_buf_reset(&sql);
    ds_buf_appendf(&sql, "ALTER TABLE %s RENAME TO ", t->live);
    ds_buf_append_ident(&sql, t->old_name);
    ds_buf_appendf(&sql, "; ALTER TABLE %s RENAME TO ", t->shadow);
    ds_buf_append_ident(&sql, t->table);
    ok = exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, "swapping a table", NULL);
done:
    PQclear(seqs);
    ds_buf_free(&sql);
    return ok;
}

/* After the old tables are dropped: foreign keys on the new table (NOT VALID, validated after
 * the commit, outside the locks), and the old index names. */
static bool swap_finish(replay_t *r, const rtable_t *t, swapped_t *sw)
{
    ds_buf_t sql = DS_BUF_INIT;
    bool ok = false;

    for (int i = 0; i < PQntuples(sw->fks); i++) {
        const char *def = PQgetvalue(sw->fks, i, 2);
        const char *fk_params[] = {PQgetvalue(sw->fks, i, 0), PQgetvalue(sw->fks, i, 1)};
        size_t len = strlen(def);

        ds_buf_reset(&sql);
        ds_buf_appendf(&sql, "ALTER TABLE %s ADD CONSTRAINT ", PQgetvalue(sw->fks, i, 0));
        ds_buf_append_ident(&sql, PQgetvalue(sw->fks, i, 1));
        /* The definition names the table, which is the new one now. */
        ds_buf_appendf(&sql, " %s%s", def,
                       len >= 10 && strcmp(def + len - 10, " NOT VALID") == 0 ? "" : " NOT VALID");
        if (!exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, "re-pointing a foreign key",
                  NULL) ||
            !exec(r, "INSERT INTO " REPLAY_SCHEMA ".fk_validate (child, name) VALUES ($1, $2)", 2,
                  fk_params, PGRES_COMMAND_OK, NULL, "recording a foreign key to validate", NULL))
            goto done;
    }
    ok = rename_indexes(r, t, sw->old_idx);
done:
    ds_buf_free(&sql);
    return ok;
}

/*
 * Whether every link in dualsync.links belongs to a target replayed here (a replay of every
 * mapping of the database): the swap then moves the replay's links table in whole (renaming,
 * no row copied) instead of copying its rows, which takes time in proportion to the links.
 */
static bool links_all_replayed(replay_t *r, bool *all)
{
    const char **ids, **links;
    int nids, nlinks;
    char *links_array;
    const char *params[1];
    PGresult *res;
    bool ok;

    target_ids(r, &ids, &nids, &links, &nlinks);
    links_array = ds_pg_text_array(links, nlinks);
    params[0] = links_array;
    ok = exec(r,
              "SELECT NOT EXISTS (SELECT 1 FROM dualsync.links WHERE NOT target = ANY($1::text[]))",
              1, params, PGRES_TUPLES_OK, &res, "reading dualsync.links", NULL);
    if (ok) {
        *all = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
    }
    free(ids);
    free(links);
    free(links_array);
    return ok;
}

/* Moves the replay's links, pending rows and dead-letter records of the replayed targets over
 * live apply's (which the rebuilt tables no longer match). */
static bool move_bookkeeping(replay_t *r, bool whole_links)
{
    const char **ids, **links;
    int nids, nlinks;
    char *id_array, *links_array;
    const char *p_ids[1], *p_links[1];
    bool ok;

    target_ids(r, &ids, &nids, &links, &nlinks);
    id_array = ds_pg_text_array(ids, nids);
    links_array = ds_pg_text_array(links, nlinks);
    p_ids[0] = id_array;
    p_links[0] = links_array;
    if (whole_links) {
        ok = exec(r,
                  "DROP TABLE dualsync.links; ALTER TABLE " REPLAY_SCHEMA ".links SET SCHEMA"
                  " dualsync",
                  0, NULL, PGRES_COMMAND_OK, NULL, "swapping the links table", NULL);
        if (ok)
            ds_info("target \"%s\": swap: the replay's links table replaces dualsync.links "
                    "(every target with links there is replayed)",
                    r->dbname);
    } else
        ok = exec(r, "DELETE FROM dualsync.links WHERE target = ANY($1::text[])", 1, p_links,
                  PGRES_COMMAND_OK, NULL, "swapping links", NULL) &&
             exec(r,
                  "INSERT INTO dualsync.links (target, source_topic, source_key, target_key,"
                  " vals, copies, copy_commit, copy_lsn) SELECT target, source_topic,"
                  " source_key, target_key, vals, copies, copy_commit, copy_lsn FROM " REPLAY_SCHEMA
                  ".links WHERE target = ANY($1::text[])",
                  1, p_links, PGRES_COMMAND_OK, NULL, "swapping links", NULL);
    ok = ok &&
         exec(r, "DELETE FROM dualsync.pending WHERE target = ANY($1::text[])", 1, p_ids,
              PGRES_COMMAND_OK, NULL, "swapping pending rows", NULL) &&
         exec(r,
              "INSERT INTO dualsync.pending (target, topic, partition, kafka_offset, source_key,"
              " value, error, first_seen) SELECT target, topic, partition, kafka_offset,"
              " source_key, value, error, first_seen FROM " REPLAY_SCHEMA ".pending"
              " WHERE target = ANY($1::text[])",
              1, p_ids, PGRES_COMMAND_OK, NULL, "swapping pending rows", NULL) &&
         exec(r, "DELETE FROM dualsync.dead_letters WHERE target = ANY($1::text[])", 1, p_ids,
              PGRES_COMMAND_OK, NULL, "swapping dead-letter records", NULL) &&
         exec(r,
              "INSERT INTO dualsync.dead_letters (target, topic, source_key, partition,"
              " kafka_offset, error, created_at) SELECT target, topic, source_key, partition,"
              " kafka_offset, error, created_at FROM " REPLAY_SCHEMA ".dead_letters"
              " WHERE target = ANY($1::text[])"
              " ON CONFLICT (topic, source_key, target) DO UPDATE"
              " SET partition = EXCLUDED.partition,"
              " kafka_offset = EXCLUDED.kafka_offset, error = EXCLUDED.error",
              1, p_ids, PGRES_COMMAND_OK, NULL, "swapping dead-letter records", NULL);
    free(ids);
    free(links);
    free(id_array);
    free(links_array);
    return ok;
}

/*
 * Unlogged while rebuilding. The shadows and the replay's bookkeeping are UNLOGGED tables: no
 * WAL while the bulk of the rows is written, which readers never see. A server crash empties
 * them all together (and prepare_shadows() then starts over). Before the swap makes a shadow
 * the live table it becomes logged (a rewrite with its WAL, outside the swap's locks), tables a
 * shadow references first: a logged table may not reference an unlogged one. The replay's
 * links, pending rows and dead-letter records are copied into dualsync's logged tables by the
 * swap; an in-place shadow is dropped by it.
 */
static bool set_logged(replay_t *r, bool whole_links)
{
    if (whole_links &&
        !exec(r, "ALTER TABLE " REPLAY_SCHEMA ".links SET LOGGED", 0, NULL, PGRES_COMMAND_OK, NULL,
              "making the replay's links logged", NULL))
        return false;
    for (bool progress = true; progress;) {
        PGresult *res;
        int left = 0;

        progress = false;
        for (int i = 0; i < r->ntables; i++) {
            const rtable_t *t = &r->tables[i];
            const char *params[] = {t->shadow};
            ds_buf_t sql = DS_BUF_INIT;
            bool ok, ready, logged;

            if (t->db != r->db || t->in_place)
                continue;
            if (!exec(r,
                      "SELECT c.relpersistence = 'p', NOT EXISTS (SELECT 1 FROM"
                      " pg_catalog.pg_constraint k"
                      " JOIN pg_catalog.pg_class f ON f.oid = k.confrelid"
                      " WHERE k.conrelid = c.oid AND k.contype = 'f' AND f.oid <> c.oid"
                      " AND f.relpersistence = 'u') FROM pg_catalog.pg_class c"
                      " WHERE c.oid = $1::regclass",
                      1, params, PGRES_TUPLES_OK, &res, "reading a shadow's persistence", NULL))
                return false;
            logged = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
            ready = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
            PQclear(res);
            if (logged)
                continue;
            if (!ready) {
                left++;
                continue;
            }
            ds_buf_appendf(&sql, "ALTER TABLE %s SET LOGGED", t->shadow);
            ok = exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, "making a shadow logged", NULL);
            ds_buf_free(&sql);
            if (!ok)
                return false;
            progress = true;
        }
        if (left && !progress)
            return ds_fail(r->errstr, sizeof(r->errstr),
                           "target \"%s\": the shadows reference each other in a cycle of "
                           "foreign keys and cannot be made logged one by one",
                           r->dbname);
    }
    return true;
}

/* One attempt; *retry says whether a failure was a lock not granted in time (or a deadlock). */
static bool swap_once(replay_t *r, bool *retry)
{
    ds_buf_t sql = DS_BUF_INIT, oids = DS_BUF_INIT;
    char sqlstate[6] = "";
    PGresult *res;
    int64_t tail_from = r->prog.done_rows;
    bool first = true, ok = false, origin_held = false, whole_links = false;
    int nswapped = 0, nin_place = 0;
    swapped_t *sw = calloc((size_t)r->ntables + 1, sizeof(*sw));

    if (!sw)
        return ds_fail(r->errstr, sizeof(r->errstr), "out of memory");

    *retry = false;
    /* Tables first, in name order, then live apply's offsets: apply's batch writes tables and
     * stores its offsets last, so the other order would deadlock with every batch in flight.
     * EXCLUSIVE lets the application read on while the tail is written and the bookkeeping
     * moves; only the renames take ACCESS EXCLUSIVE, at the end. */
    ds_buf_append_str(&sql, "BEGIN; SET LOCAL lock_timeout = '" LOCK_TIMEOUT "'");
    for (int i = 0; i < r->ntables; i++) {
        if (!swapped(r, &r->tables[i]))
            continue;
        ds_buf_appendf(&sql, "%s%s", first ? "; LOCK TABLE " : ", ", r->tables[i].live);
        first = false;
        nswapped++;
    }
    if (nswapped)
        ds_buf_append_str(&sql, " IN EXCLUSIVE MODE");
    if (!exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, "locking the live tables", sqlstate))
        goto fail;
    if (!read_bounds(r, true))
        goto fail;
    /* Live apply keeps, in memory, which source keys have pending rows and dead-letter records
     * (to delete them when a newer change of the key is applied); the swap replaces those rows.
     * Its sessions end here: apply reconnects, re-reads them with its offsets, and prepares its
     * statements again, on the new tables. Its connect starts with DS_APPLY_SCHEMA_SQL, whose
     * ALTER TABLE dualsync.links waits for the lock taken just before, so it reads them only
     * after this commits. Ended before the tail, its batch in flight (waiting for the live tables,
     * maybe holding rows the tail's or the bookkeeping's writes need) is rolled back, and
     * applied again from its offsets: nothing below waits for a transaction that waits for this
     * one (the replay's writer runs on another connection, where PostgreSQL could not see such
     * a cycle). */
    if (!exec(r, "LOCK TABLE dualsync.links IN ROW EXCLUSIVE MODE", 0, NULL, PGRES_COMMAND_OK,
              NULL, "locking dualsync.links", sqlstate))
        goto fail;
    /* Moved whole only when made logged before (set_logged) and still all replayed ones. */
    if (r->whole_links && !links_all_replayed(r, &whole_links))
        goto fail;
    whole_links = whole_links && r->whole_links;
    {
        char pid[16];
        const char *params[] = {pid};
        PGresult *killed;

        snprintf(pid, sizeof(pid), "%d", ds_applier_backend_pid(r->applier));
        if (!exec(r,
                  "SELECT count(*) FILTER (WHERE pg_catalog.pg_terminate_backend(pid, 10000))"
                  " FROM pg_catalog.pg_stat_activity WHERE datname = current_database()"
                  " AND application_name = 'dualsync-apply' AND pid <> $1::int"
                  " AND pid <> pg_catalog.pg_backend_pid()",
                  1, params, PGRES_TUPLES_OK, &killed,
                  "ending live apply's sessions so that it reloads its state (the replay's role "
                  "needs to be apply's, or a member of pg_signal_backend)",
                  sqlstate))
            goto fail;
        ds_info("target \"%s\": swap: ended %s sessions of live apply (they reconnect)",
                r->dbname, PQgetvalue(killed, 0, 0));
        PQclear(killed);
    }
    /* The tail, written by the replay's own connection: the shadows end exactly at L. */
    if (!consume_to_bounds(r))
        goto fail;
    ds_info("target \"%s\": swap: wrote the last %" PRId64 " messages to the shadows", r->dbname,
            r->prog.done_rows - tail_from);

    if (!move_bookkeeping(r, whole_links))
        goto fail;
    ds_buf_append_str(&oids, "{");
    first = true;
    for (int i = 0; i < r->ntables; i++) {
        const char *params[] = {r->tables[i].live};

        if (!swapped(r, &r->tables[i]))
            continue;
        if (!exec(r, "SELECT $1::regclass::oid", 1, params, PGRES_TUPLES_OK, &res,
                  "reading a table's oid", sqlstate))
            goto fail;
        ds_buf_appendf(&oids, "%s%s", first ? "" : ",", PQgetvalue(res, 0, 0));
        first = false;
        PQclear(res);
    }
    ds_buf_append_char(&oids, '}');
    for (int i = 0; i < r->ntables; i++) {
        if (swapped(r, &r->tables[i]) && !swap_rename(r, &r->tables[i], oids.data, &sw[i]))
            goto fail;
    }
    ds_buf_reset(&sql);
    ds_buf_append_str(&sql, "DROP TABLE ");
    first = true;
    for (int i = 0; i < r->ntables; i++) {
        if (!swapped(r, &r->tables[i]))
            continue;
        ds_buf_appendf(&sql, "%s%s", first ? "" : ", ", r->tables[i].old);
        first = false;
    }
    /* Not CASCADE: whatever still depends on an old table fails the swap, naming it. */
    if (nswapped &&
        !exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, "dropping the old tables", sqlstate))
        goto fail;
    for (int i = 0; i < r->ntables; i++) {
        if (swapped(r, &r->tables[i]) && !swap_finish(r, &r->tables[i], &sw[i]))
            goto fail;
    }
    /* In place last: its values may look rows up in the tables just swapped in. The writes
     * go to legacy tables: under the replay's replication origin, which capture skips by
     * default (capture.skip_origins), as it skips apply's. */
    for (int i = 0; i < r->ntables; i++)
        nin_place += r->tables[i].db == r->db && r->tables[i].in_place;
    if (nin_place) {
        const char *params[] = {r->origin};

        if (!exec(r, "SELECT pg_catalog.pg_replication_origin_session_setup($1)", 1, params,
                  PGRES_TUPLES_OK, NULL, "taking the replay's replication origin", sqlstate))
            goto fail;
        origin_held = true;
    }
    for (int i = 0; i < r->ntables; i++) {
        if (r->tables[i].db == r->db && r->tables[i].in_place &&
            !copy_in_place(r, &r->tables[i]))
            goto fail;
    }

    if (!open_gate(r, sqlstate))
        goto fail;
    if (!exec(r,
              whole_links ? "DELETE FROM " REPLAY_SCHEMA ".offsets; TRUNCATE " REPLAY_SCHEMA
                            ".pending, " REPLAY_SCHEMA ".dead_letters, " REPLAY_SCHEMA ".state"
                          : "DELETE FROM " REPLAY_SCHEMA ".offsets; TRUNCATE " REPLAY_SCHEMA
                            ".links, " REPLAY_SCHEMA ".pending, " REPLAY_SCHEMA
                            ".dead_letters, " REPLAY_SCHEMA ".state",
              0, NULL, PGRES_COMMAND_OK, NULL, "clearing the replay's bookkeeping", sqlstate) ||
        !exec(r, "COMMIT", 0, NULL, PGRES_COMMAND_OK, NULL, "committing the swap", sqlstate))
        goto fail;
    ok = true;
    goto out;
fail:
    /* A lock_timeout or deadlock anywhere in the transaction: let go and try again. */
    {
        PGresult *last = PQexec(r->conn, "ROLLBACK");
        PQclear(last);
    }
    if (!sqlstate[0] && strstr(r->errstr, "lock timeout"))
        strcpy(sqlstate, "55P03");
    *retry = strcmp(sqlstate, "55P03") == 0 || strncmp(sqlstate, "40", 2) == 0 ||
             strstr(r->errstr, "canceling statement due to lock timeout") != NULL ||
             strstr(r->errstr, "deadlock detected") != NULL;
out:
    if (origin_held)
        PQclear(PQexec(r->conn, "SELECT pg_catalog.pg_replication_origin_session_reset()"));
    for (int i = 0; i < r->ntables; i++) {
        PQclear(sw[i].fks);
        PQclear(sw[i].old_idx);
    }
    free(sw);
    ds_buf_free(&sql);
    ds_buf_free(&oids);
    return ok;
}

static bool swap(replay_t *r)
{
    int backoff = BACKOFF_MIN_MS;

    for (int attempt = 1;; attempt++) {
        bool retry = false;

        if (swap_once(r, &retry))
            return true;
        if (!retry || attempt >= MAX_SWAP_TRIES || stop_signals)
            return false;
        ds_warning("%s; swap attempt %d of %d let go of its locks, trying again in %d ms",
                   r->errstr, attempt, MAX_SWAP_TRIES, backoff);
        pause_ms(backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
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
        !prepare_shadows(r) || !validate_foreign_keys(r)) {
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
    r->hooks = (ds_applier_hooks_t){hook_dead_letter, hook_before_commit, r};
    if (!(r->dlq = ds_dlq_new(r->config, errstr, sizeof(errstr))) ||
        !(r->consumer = ds_consumer_new(r->config, NULL, NULL, NULL, NULL, errstr,
                                        sizeof(errstr)))) {
        ds_error("%s", errstr);
        status = DS_REPLAY_EXIT_USAGE;
        goto done;
    }
    if (!list_partitions(r) || !rebuild(r))
        goto failed;
    ds_info("target \"%s\": the shadows are %" PRId64 " messages behind live apply: swapping",
            r->dbname, behind(r));
    if (!links_all_replayed(r, &r->whole_links) || !set_logged(r, r->whole_links) || !swap(r))
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
    if (!validate_foreign_keys(r))
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
    stop_signals = 0;
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
