/*
 * batchstmt.c: preparing and filling batch statements (design in include/dualsync/batchstmt.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "dualsync/batchstmt.h"
#include "dualsync/log.h"
#include "dualsync/pgutil.h"

ds_batchstmt_prepared_t ds_batchstmt_prepare(void *pgconn, const ds_target_t *t,
                                             const char *write_name, const char *batch_name,
                                             char *errstr, size_t errstr_size)
{
    PGconn *conn = pgconn;
    PGresult *d, *r = NULL, *p = NULL;
    ds_buf_t oids = DS_BUF_INIT;
    const char **types = NULL;
    const char *params[1];
    char *sql = NULL, sqlstate[6], message[1024];
    int n;
    ds_batchstmt_prepared_t result = DS_BATCHSTMT_NONE;

    if (!t->batch_body)
        return DS_BATCHSTMT_NONE;
    d = PQdescribePrepared(conn, write_name);
    if (!d || PQresultStatus(d) != PGRES_COMMAND_OK) {
        ds_pg_result_error(d, conn, sqlstate, message, sizeof(message));
        PQclear(d);
        ds_fail(errstr, errstr_size, "cannot describe statement %s: %s", write_name, message);
        return DS_BATCHSTMT_ERROR;
    }
    n = PQnparams(d);
    ds_buf_append_char(&oids, '{');
    for (int k = 0; k < n; k++)
        ds_buf_appendf(&oids, "%s%u", k ? "," : "", (unsigned)PQparamtype(d, k));
    ds_buf_append_char(&oids, '}');
    PQclear(d);
    params[0] = oids.data;
    /* Array parameters need an array type; an element that is an array itself would be
     * flattened by unnest. */
    r = PQexecParams(conn,
                     "SELECT format_type(t.oid, NULL), t.typarray <> 0 AND t.typcategory <> 'A'"
                     " FROM unnest($1::oid[]) WITH ORDINALITY AS p(oid, n) JOIN pg_type AS t"
                     " ON t.oid = p.oid ORDER BY p.n",
                     1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ds_pg_result_error(r, conn, sqlstate, message, sizeof(message));
        ds_fail(errstr, errstr_size, "reading the parameter types of %s: %s", write_name,
                message);
        result = DS_BATCHSTMT_ERROR;
        goto done;
    }
    if (PQntuples(r) != n || n != t->write_nparams) {
        ds_warning("%s: the parameter types of its write are not all known; written row by row",
                   t->id);
        goto done;
    }
    types = calloc((size_t)n + 1, sizeof(*types));
    if (!types) {
        ds_fail(errstr, errstr_size, "out of memory");
        result = DS_BATCHSTMT_ERROR;
        goto done;
    }
    for (int k = 0; k < n; k++) {
        if (strcmp(PQgetvalue(r, k, 1), "t") != 0) {
            ds_info("%s: parameter $%d is of type %s, which has no array form; written row by row",
                    t->id, k + 1, PQgetvalue(r, k, 0));
            goto done;
        }
        types[k] = PQgetvalue(r, k, 0);
    }
    if (!(sql = ds_mapping_batch_statement(t, types))) {
        ds_fail(errstr, errstr_size, "out of memory");
        result = DS_BATCHSTMT_ERROR;
        goto done;
    }
    p = PQprepare(conn, batch_name, sql, n + 2, NULL);
    if (PQresultStatus(p) == PGRES_COMMAND_OK) {
        result = DS_BATCHSTMT_READY;
    } else if (PQstatus(conn) != CONNECTION_OK) {
        ds_pg_result_error(p, conn, sqlstate, message, sizeof(message));
        ds_fail(errstr, errstr_size, "cannot prepare statement %s: %s", batch_name, message);
        result = DS_BATCHSTMT_ERROR;
    } else {
        /* Only speed is lost: a bug worth reporting, not a reason to stop. */
        ds_pg_result_error(p, conn, sqlstate, message, sizeof(message));
        ds_warning("%s: its batch statement does not prepare (%s); written row by row", t->id,
                   message);
    }
done:
    PQclear(p);
    PQclear(r);
    free(types);
    free(sql);
    ds_buf_free(&oids);
    return result;
}

/* Appends one element of an array literal: "text" with " and \ escaped, or NULL. The buffer
 * grows once per element, by the most it can take: these run for every parameter of every row.
 */
static void array_element(ds_buf_t *buf, const char *value)
{
    size_t len, plain, room;
    char *out, *start;

    if (!value) {
        const char *text = buf->len > 1 ? ",NULL" : "NULL";
        size_t n = buf->len > 1 ? 5 : 4;

        memcpy(ds_buf_extend(buf, n), text, n);
        return;
    }
    len = strlen(value);
    plain = strcspn(value, "\"\\"); /* most values: all of it */
    room = plain == len ? len + 3 : 2 * len + 3;
    start = out = ds_buf_extend(buf, room);
    if (out > buf->data + 1)
        *out++ = ',';
    *out++ = '"';
    memcpy(out, value, plain);
    out += plain;
    for (const char *p = value + plain; *p; p++) {
        if (*p == '"' || *p == '\\')
            *out++ = '\\';
        *out++ = *p;
    }
    *out++ = '"';
    /* Give back what the comma and the escapes did not use. */
    buf->len -= room - (size_t)(out - start);
    buf->data[buf->len] = '\0';
}

/* Appends the element "<n>" (n >= 0): the row's ord. */
static void array_ord(ds_buf_t *buf, int64_t n)
{
    char digits[24], *p = digits + sizeof(digits);
    size_t len;
    char *out;

    do {
        *--p = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    len = (size_t)(digits + sizeof(digits) - p);
    out = ds_buf_extend(buf, (buf->len > 1) + len + 2);
    if (out > buf->data + 1)
        *out++ = ',';
    *out++ = '"';
    memcpy(out, p, len);
    out[len] = '"';
}

/* Arrays from write_sql's $3 ($1 and $2 are the target id and the topic), or from $1 for an
 * in-place target, whose statement has neither (mapping.h). */
static int first_array(const ds_target_t *t)
{
    return t->in_place ? 0 : 2;
}

void ds_batchstmt_begin(ds_batchstmt_args_t *b, const ds_target_t *t)
{
    int n = t->write_nparams + 2;

    if (n > b->cap) {
        b->arrays = realloc(b->arrays, (size_t)n * sizeof(*b->arrays));
        b->params = realloc(b->params, (size_t)n * sizeof(*b->params));
        if (!b->arrays || !b->params) {
            fprintf(stderr, "dualsync: out of memory\n");
            abort();
        }
        for (int k = b->cap; k < n; k++)
            b->arrays[k] = (ds_buf_t)DS_BUF_INIT;
        b->cap = n;
    }
    b->target = t;
    b->nrows = 0;
    for (int k = first_array(t); k < n; k++) {
        ds_buf_reset(&b->arrays[k]);
        ds_buf_append_char(&b->arrays[k], '{');
    }
}

void ds_batchstmt_add(ds_batchstmt_args_t *b, const char *const *params, int nparams, int64_t ord,
                      bool upsert)
{
    int n = b->target->write_nparams;

    /* An unlink row has only the first three (mapping.h): unlink_sql's other parameters are
     * not write_sql's, except in a target's form without links, whose unlink takes
     * write_sql's (its key columns set). */
    if (!upsert && nparams > 3 && !b->target->keeps_no_links)
        nparams = 3;
    for (int k = first_array(b->target); k < n; k++)
        array_element(&b->arrays[k], k < nparams ? params[k] : NULL);
    array_ord(&b->arrays[n], ord);
    array_element(&b->arrays[n + 1], upsert ? "u" : "d");
    b->nrows++;
}

const char *const *ds_batchstmt_finish(ds_batchstmt_args_t *b, const char *topic)
{
    const ds_target_t *t = b->target;
    int n = t->write_nparams;

    for (int k = first_array(t); k < n + 2; k++) {
        ds_buf_append_char(&b->arrays[k], '}');
        b->params[k] = b->arrays[k].data;
    }
    if (!t->in_place) {
        b->params[0] = t->links_id;
        b->params[1] = topic;
    }
    return b->params;
}

void ds_batchstmt_free(ds_batchstmt_args_t *b)
{
    for (int k = 0; k < b->cap; k++)
        ds_buf_free(&b->arrays[k]);
    free(b->arrays);
    free(b->params);
    *b = (ds_batchstmt_args_t)DS_BATCHSTMT_ARGS_INIT;
}
