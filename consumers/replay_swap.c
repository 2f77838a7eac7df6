/*
 * replay_swap.c: `dualsync replay`: one transaction that puts the shadows in place of the
 * live tables
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
bool ds_replay_links_all_replayed(replay_t *r, bool *all)
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

/*
 * Records which replayed targets the rebuilt tables hold without links (dualsync.
 * linkless_targets, consumers/applier.c, check_links_mode): a target the replay wrote with
 * links is linked again, whatever live apply wrote before.
 */
static bool record_links_mode(replay_t *r, const char *id_array)
{
    int n = ds_mapping_set_ntargets(r->set), nlinkless = 0;
    const char **linkless = calloc((size_t)n + 1, sizeof(*linkless));
    const char *params[2] = {id_array, NULL};
    char *linkless_array;
    bool ok;

    for (int i = 0; linkless && i < n; i++) {
        const ds_target_t *t = ds_mapping_set_target(r->set, i);

        if (strcmp(t->connection, r->dbname) == 0 && t->linkless)
            linkless[nlinkless++] = t->id;
    }
    if (!linkless || !(linkless_array = ds_pg_text_array(linkless, nlinkless))) {
        fputs("dualsync replay: out of memory\n", stderr);
        abort();
    }
    params[1] = linkless_array;
    ok = exec(r,
              "WITH gone AS (DELETE FROM dualsync.linkless_targets"
              " WHERE target = ANY ($1::text[]) AND NOT target = ANY ($2::text[]))"
              " INSERT INTO dualsync.linkless_targets (target) SELECT unnest($2::text[])"
              " ON CONFLICT (target) DO NOTHING",
              2, params, PGRES_COMMAND_OK, NULL, "recording the targets without links", NULL);
    free(linkless);
    free(linkless_array);
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
              1, p_ids, PGRES_COMMAND_OK, NULL, "swapping dead-letter records", NULL) &&
         record_links_mode(r, id_array);
    free(ids);
    free(links);
    free(id_array);
    free(links_array);
    return ok;
}

/*
 * Unlogged while rebuilding. The shadows and the replay's bookkeeping are UNLOGGED tables: no
 * WAL while the bulk of the rows is written, which readers never see. A server crash empties
 * them all together (and ds_replay_prepare_shadows() then starts over). Before the swap makes
 * a shadow the live table it becomes logged (a rewrite with its WAL, outside the swap's locks),
 * tables a shadow references first: a logged table may not reference an unlogged one. The
 * replay's links, pending rows and dead-letter records are copied into dualsync's logged tables
 * by the swap; an in-place shadow is dropped by it.
 */
bool ds_replay_set_logged(replay_t *r, bool whole_links)
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
        if (!ds_replay_swapped(r, &r->tables[i]))
            continue;
        ds_buf_appendf(&sql, "%s%s", first ? "; LOCK TABLE " : ", ", r->tables[i].live);
        first = false;
        nswapped++;
    }
    if (nswapped)
        ds_buf_append_str(&sql, " IN EXCLUSIVE MODE");
    if (!exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, "locking the live tables", sqlstate))
        goto fail;
    if (!ds_replay_read_bounds(r, true))
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
    /* Moved whole only when made logged before (ds_replay_set_logged) and still all replayed
     * ones. */
    if (r->whole_links && !ds_replay_links_all_replayed(r, &whole_links))
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
    if (!ds_replay_consume_to_bounds(r))
        goto fail;
    ds_info("target \"%s\": swap: wrote the last %" PRId64 " messages to the shadows", r->dbname,
            r->prog.done_rows - tail_from);

    if (!move_bookkeeping(r, whole_links))
        goto fail;
    ds_buf_append_str(&oids, "{");
    first = true;
    for (int i = 0; i < r->ntables; i++) {
        const char *params[] = {r->tables[i].live};

        if (!ds_replay_swapped(r, &r->tables[i]))
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
        if (ds_replay_swapped(r, &r->tables[i]) &&
            !swap_rename(r, &r->tables[i], oids.data, &sw[i]))
            goto fail;
    }
    ds_buf_reset(&sql);
    ds_buf_append_str(&sql, "DROP TABLE ");
    first = true;
    for (int i = 0; i < r->ntables; i++) {
        if (!ds_replay_swapped(r, &r->tables[i]))
            continue;
        ds_buf_appendf(&sql, "%s%s", first ? "" : ", ", r->tables[i].old);
        first = false;
    }
    /* Not CASCADE: whatever still depends on an old table fails the swap, naming it. */
    if (nswapped &&
        !exec(r, sql.data, 0, NULL, PGRES_COMMAND_OK, NULL, "dropping the old tables", sqlstate))
        goto fail;
    for (int i = 0; i < r->ntables; i++) {
        if (ds_replay_swapped(r, &r->tables[i]) && !swap_finish(r, &r->tables[i], &sw[i]))
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
            !ds_replay_copy_in_place(r, &r->tables[i]))
            goto fail;
    }

    if (!ds_replay_open_gate(r, sqlstate))
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

bool ds_replay_swap(replay_t *r)
{
    int backoff = BACKOFF_MIN_MS;

    for (int attempt = 1;; attempt++) {
        bool retry = false;

        if (swap_once(r, &retry))
            return true;
        if (!retry || attempt >= MAX_SWAP_TRIES || ds_replay_stop_signals)
            return false;
        ds_warning("%s; swap attempt %d of %d let go of its locks, trying again in %d ms",
                   r->errstr, attempt, MAX_SWAP_TRIES, backoff);
        pause_ms(backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
}

