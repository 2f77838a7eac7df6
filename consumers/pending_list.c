/*
 * pending_list.c: `dualsync pending list`: the changes waiting in dualsync.pending of every
 * target database, with why each waits (the required lookup that finds no parent, and the
 * value it looks up) and for how long.
 *
 * Read-only: each database is read in a read-only session; the reason is worked out now with
 * the current mappings (ds_mapping_explain_wait), as a retry would see it, and falls back to
 * what apply stored when the change was parked (a foreign-key violation's message, say).
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "dualsync/buf.h"
#include "dualsync/log.h"
#include "dualsync/mapping.h"
#include "dualsync/pending.h"
#include "dualsync/pgutil.h"

#define PENDING_SQL                                                                                \
    "SELECT target, topic, partition, kafka_offset, source_key, value, error,"                     \
    " to_char(first_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"                   \
    " extract(epoch FROM now() - first_seen)::bigint"                                              \
    " FROM dualsync.pending ORDER BY first_seen, id"

/* The reason a stored change waits now, into @p why. */
static void explain(ds_mapping_set_t *set, PGconn *conn, const PGresult *r, int row, ds_buf_t *why)
{
    const char *target = PQgetvalue(r, row, 0), *topic = PQgetvalue(r, row, 1);
    const char *key = PQgetvalue(r, row, 4);
    json_t *value = NULL;
    ds_write_list_t writes;
    char message[1024];
    bool known = false;

    for (int t = 0; t < ds_mapping_set_ntargets(set); t++)
        known = known || strcmp(ds_mapping_set_target(set, t)->id, target) == 0;
    if (!known) {
        ds_buf_appendf(why, "target %s is not in the mappings any more; ", target);
    } else if (!PQgetisnull(r, row, 5) &&
               !(value = json_loadb(PQgetvalue(r, row, 5), (size_t)PQgetlength(r, row, 5), 0,
                                    NULL))) {
        ds_buf_append_str(why, "the stored change is not JSON; ");
    } else if (!ds_mapping_eval(set, topic, key, (size_t)PQgetlength(r, row, 4), value, &writes,
                                message, sizeof(message))) {
        ds_buf_appendf(why, "the change no longer maps (%s); ", message);
    } else {
        for (int w = 0; w < writes.nwrites; w++) {
            if (strcmp(writes.writes[w].target->id, target) == 0 &&
                writes.writes[w].kind == DS_WRITE_UPSERT)
                ds_mapping_explain_wait(set, &writes.writes[w], conn, why);
        }
        if (why->len > 0) {
            json_decref(value);
            return;
        }
    }
    json_decref(value);
    /* What apply stored when it parked the change. */
    ds_buf_append_str(why, PQgetvalue(r, row, 6));
}

static void print_row(FILE *out, bool json, const char *db, const PGresult *r, int row,
                      const char *why)
{
    const char *key = PQgetvalue(r, row, 4);
    int64_t age = strtoll(PQgetvalue(r, row, 8), NULL, 10);

    if (json) {
        json_t *obj = json_object();
        json_t *key_json = json_loadb(key, (size_t)PQgetlength(r, row, 4),
                                      JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
        char *text;

        json_object_set_new(obj, "database", json_string(db));
        json_object_set_new(obj, "target", json_string(PQgetvalue(r, row, 0)));
        json_object_set_new(obj, "topic", json_string(PQgetvalue(r, row, 1)));
        json_object_set_new(obj, "partition", json_integer(atoi(PQgetvalue(r, row, 2))));
        json_object_set_new(obj, "offset",
                            json_integer(strtoll(PQgetvalue(r, row, 3), NULL, 10)));
        json_object_set_new(obj, "key", key_json ? key_json : json_string(key));
        json_object_set_new(obj, "reason", json_string(why));
        json_object_set_new(obj, "waiting_since", json_string(PQgetvalue(r, row, 7)));
        json_object_set_new(obj, "age_s", json_integer(age));
        text = json_dumps(obj, JSON_COMPACT);
        if (text)
            fprintf(out, "%s\n", text);
        free(text);
        json_decref(obj);
    } else {
        fprintf(out, "%s  %s  %s [%s] @%s  key=%s  waiting %" PRId64 "h%02" PRId64 "m%02" PRId64
                     "s (since %s)\n    %s\n",
                db, PQgetvalue(r, row, 0), PQgetvalue(r, row, 1), PQgetvalue(r, row, 2),
                PQgetvalue(r, row, 3), key, age / 3600, age / 60 % 60, age % 60,
                PQgetvalue(r, row, 7), why);
    }
}

/* Lists database @p db's pending changes; -1 on failure (errstr). */
static long list_database(const ds_config_t *config, int db, ds_mapping_set_t *set, bool json,
                          FILE *out, char *errstr, size_t errstr_size)
{
    static const char *const keywords[] = {"dbname", "fallback_application_name", NULL};
    const char *values[] = {config->target_conninfos[db], "dualsync-pending-list", NULL};
    const char *name = config->target_names[db];
    PGconn *conn = PQconnectdbParams(keywords, values, 1);
    PGresult *r = NULL;
    long n = -1;

    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        ds_fail(errstr, errstr_size, "target \"%s\": cannot connect: %s", name,
                conn ? ds_pg_error(conn) : "out of memory");
        goto out;
    }
    /* Reading only, whatever a lookup's SQL says; keys as apply wrote them (UTC). */
    r = PQexec(conn, "SET default_transaction_read_only = on; SET TimeZone = 'UTC'");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        ds_fail(errstr, errstr_size, "target \"%s\": setting a read-only UTC session: %s", name,
                ds_pg_error(conn));
        goto out;
    }
    PQclear(r);
    r = PQexec(conn, "SELECT to_regclass('dualsync.pending') IS NOT NULL");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ds_fail(errstr, errstr_size, "target \"%s\": looking for dualsync.pending: %s", name,
                ds_pg_error(conn));
        goto out;
    }
    if (PQgetvalue(r, 0, 0)[0] != 't') {
        n = 0; /* apply never ran here: nothing waits */
        goto out;
    }
    PQclear(r);
    r = PQexec(conn, PENDING_SQL);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ds_fail(errstr, errstr_size, "target \"%s\": reading dualsync.pending: %s", name,
                ds_pg_error(conn));
        goto out;
    }
    for (int row = 0; row < PQntuples(r); row++) {
        ds_buf_t why = DS_BUF_INIT;

        explain(set, conn, r, row, &why);
        print_row(out, json, name, r, row, why.data ? why.data : "");
        ds_buf_free(&why);
    }
    n = PQntuples(r);

out:
    PQclear(r);
    if (conn)
        PQfinish(conn);
    return n;
}

long ds_pending_list(const ds_config_t *config, bool json, FILE *out, char *errstr,
                     size_t errstr_size, bool *config_error)
{
    ds_mapping_set_t *set = NULL;
    long total = 0;

    *config_error = false;
    if (!ds_mapping_set_load((const char *const *)config->mappings, config->nmappings,
                             config->topic_prefix, (const char *const *)config->target_names,
                             &set, errstr, errstr_size)) {
        *config_error = true;
        return -1;
    }
    if (!ds_mapping_set_unavailable_value(set, config->unavailable_value_placeholder)) {
        ds_mapping_set_free(set);
        ds_fail(errstr, errstr_size, "out of memory");
        return -1;
    }
    for (int db = 0; db < config->ntargets; db++) {
        long n = list_database(config, db, set, json, out, errstr, errstr_size);

        if (n < 0) {
            total = -1;
            break;
        }
        total += n;
    }
    ds_mapping_set_free(set);
    return total;
}
