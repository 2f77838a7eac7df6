/*
 * mapping_exec: runs the statements the mapping compiler generates, the way the apply runtime
 * does, for the integration tests (tests/integration/test_mapping_sql.py).
 *
 *   mapping_exec --conninfo CONNINFO [--topic-prefix P] [--connection NAME]...
 *                [--placeholder TEXT] [--check-catalog NAME] MAPPING.json...
 *
 * Loads the mappings (connections default to "clinic"), creates the dualsync schema
 * (DS_APPLY_SCHEMA_SQL), then reads JSON lines {"topic", "key", "value"} from stdin: key is
 * the message key as JSON (null for none), value the Debezium value (null for a tombstone).
 * Each line is evaluated with ds_mapping_eval() and its writes executed in one transaction,
 * with text parameters and no parameter types, as the runtime executes them. One JSON line
 * per input line goes to stdout:
 *
 *   {"writes":[{"target":"users/doctors","kind":"upsert","applied":true}, ...]}
 *       with "rejected":[{"target":"...","error":"..."}] when some targets were rejected alone
 *   {"error":"..."}       the change cannot be mapped (nothing written; a dead letter)
 *   {"sql_error":"...","target":"..."}  a statement failed (the transaction rolled back)
 *
 * With --check-catalog NAME it only runs ds_mapping_set_check_catalog() for that connection
 * and prints {"catalog":"ok"} or {"catalog_errors":[...]} (exit 0 or 1).
 *
 * Exit status: 0 done, 1 catalog problems, 2 usage or mapping errors (stderr), 3 database
 * connection errors.
 */
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualsync/mapping.h"

static const char *kind_name(ds_write_kind_t kind)
{
    switch (kind) {
    case DS_WRITE_UPSERT:
        return "upsert";
    case DS_WRITE_UNLINK:
        return "unlink";
    case DS_WRITE_TRUNCATE:
        return "truncate";
    }
    return "?";
}

static void print_json(json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);

    puts(text ? text : "{\"error\":\"out of memory\"}");
    fflush(stdout);
    free(text);
    json_decref(j);
}

static bool exec_simple(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

    if (!ok)
        fprintf(stderr, "mapping_exec: %s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    return ok;
}

/* Executes the writes of one change in one transaction and reports them. */
static int run_writes(PGconn *conn, const ds_write_list_t *writes)
{
    json_t *out = json_object(), *list = json_array();

    if (!exec_simple(conn, "BEGIN"))
        return 3;
    for (int i = 0; i < writes->nwrites; i++) {
        const ds_target_write_t *w = &writes->writes[i];
        const char *sql = w->kind == DS_WRITE_UPSERT   ? w->target->write_sql
                          : w->kind == DS_WRITE_UNLINK ? w->target->unlink_sql
                                                       : w->target->truncate_sql;
        PGresult *res = PQexecParams(conn, sql, w->nparams, NULL, w->params, NULL, NULL, 0);
        json_t *item = json_pack("{s:s,s:s}", "target", w->target->id, "kind", kind_name(w->kind));

        if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
            json_t *err = json_pack("{s:s,s:s,s:o}", "sql_error", PQresultErrorMessage(res),
                                    "target", w->target->id, "writes", list);
            PQclear(res);
            json_decref(item);
            json_decref(out);
            exec_simple(conn, "ROLLBACK");
            print_json(err);
            return PQstatus(conn) == CONNECTION_OK ? 0 : 3;
        }
        if (w->kind == DS_WRITE_UPSERT) {
            /* The convention of mapping.h: one row, column "applied". */
            int col = PQfnumber(res, "applied");
            if (PQntuples(res) != 1 || col < 0)
                json_object_set_new(item, "applied", json_string("no applied row"));
            else
                json_object_set_new(item, "applied",
                                    json_boolean(PQgetvalue(res, 0, col)[0] == 't'));
        }
        json_array_append_new(list, item);
        PQclear(res);
    }
    if (!exec_simple(conn, "COMMIT"))
        return 3;
    json_object_set_new(out, "writes", list);
    if (writes->nrejects > 0) {
        /* Targets rejected alone: the others above were written. */
        json_t *rejected = json_array();

        for (int i = 0; i < writes->nrejects; i++)
            json_array_append_new(rejected,
                                  json_pack("{s:s,s:s}", "target", writes->rejects[i].target->id,
                                            "error", writes->rejects[i].error));
        json_object_set_new(out, "rejected", rejected);
    }
    print_json(out);
    return 0;
}

int main(int argc, char **argv)
{
    const char *conninfo = NULL, *prefix = "clinic", *placeholder = NULL, *check = NULL;
    const char *connections[32] = {0}, *paths[64];
    int nconnections = 0, npaths = 0, status = 0;
    static char errstr[65536];
    ds_mapping_set_t *set = NULL;
    PGconn *conn = NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;

    for (int i = 1; i < argc; i++) {
        bool has_value = i + 1 < argc;

        if (strcmp(argv[i], "--conninfo") == 0 && has_value)
            conninfo = argv[++i];
        else if (strcmp(argv[i], "--topic-prefix") == 0 && has_value)
            prefix = argv[++i];
        else if (strcmp(argv[i], "--connection") == 0 && has_value && nconnections < 31)
            connections[nconnections++] = argv[++i];
        else if (strcmp(argv[i], "--placeholder") == 0 && has_value)
            placeholder = argv[++i];
        else if (strcmp(argv[i], "--check-catalog") == 0 && has_value)
            check = argv[++i];
        else if (argv[i][0] != '-' && npaths < 64)
            paths[npaths++] = argv[i];
        else {
            fprintf(stderr, "usage: mapping_exec --conninfo CONNINFO [--topic-prefix P] "
                            "[--connection NAME]... [--placeholder TEXT] [--check-catalog NAME] "
                            "MAPPING.json...\n");
            return 2;
        }
    }
    if (!conninfo || npaths == 0) {
        fprintf(stderr, "mapping_exec: --conninfo and at least one mapping file are needed\n");
        return 2;
    }
    if (nconnections == 0)
        connections[nconnections++] = "clinic";
    if (!ds_mapping_set_load(paths, npaths, prefix, connections, &set, errstr, sizeof(errstr))) {
        fprintf(stderr, "%s\n", errstr);
        return 2;
    }
    if (placeholder && !ds_mapping_set_unavailable_value(set, placeholder)) {
        ds_mapping_set_free(set);
        return 2;
    }
    conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "mapping_exec: cannot connect: %s", PQerrorMessage(conn));
        status = 3;
        goto done;
    }
    if (check) {
        json_t *out = json_object();

        if (ds_mapping_set_check_catalog(set, check, conn, errstr, sizeof(errstr))) {
            json_object_set_new(out, "catalog", json_string("ok"));
        } else {
            json_t *lines = json_array();
            for (char *p = errstr; *p;) {
                size_t n = strcspn(p, "\n");
                json_array_append_new(lines, json_stringn(p, n));
                p += n + (p[n] == '\n');
            }
            json_object_set_new(out, "catalog_errors", lines);
            status = 1;
        }
        print_json(out);
        goto done;
    }
    if (!exec_simple(conn, "SET client_min_messages = warning") ||
        !exec_simple(conn, DS_APPLY_SCHEMA_SQL)) {
        status = 3;
        goto done;
    }
    while ((len = getline(&line, &cap, stdin)) > 0) {
        json_error_t error;
        json_t *msg, *key, *value;
        const char *topic;
        char *key_text = NULL;
        ds_write_list_t writes;

        if (len <= 1)
            continue;
        msg = json_loads(line, 0, &error);
        topic = json_string_value(json_object_get(msg, "topic"));
        if (!msg || !topic) {
            fprintf(stderr, "mapping_exec: bad input line: %s", line);
            json_decref(msg);
            status = 2;
            break;
        }
        key = json_object_get(msg, "key");
        value = json_object_get(msg, "value");
        if (key && !json_is_null(key))
            key_text = json_dumps(key, JSON_COMPACT | JSON_ENCODE_ANY);
        if (json_is_null(value))
            value = NULL;
        if (!ds_mapping_eval(set, topic, key_text, key_text ? strlen(key_text) : 0, value, &writes,
                             errstr, sizeof(errstr))) {
            print_json(json_pack("{s:s}", "error", errstr));
        } else {
            status = run_writes(conn, &writes);
        }
        free(key_text);
        json_decref(msg);
        if (status)
            break;
    }

done:
    free(line);
    PQfinish(conn);
    ds_mapping_set_free(set);
    return status;
}
