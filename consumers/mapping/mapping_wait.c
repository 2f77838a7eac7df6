/*
 * mapping_wait.c: why a write waits in dualsync.pending: the "required" lookups of its target
 * that find no row for the change, named with the values they looked up.
 *
 * A write statement only answers applied = false; which lookup found nothing is asked here,
 * for people (`dualsync pending list`, the dead letter of apply.pending_timeout), never on the
 * path of a write. Each lookup whose match values the evaluator computed is run alone, with
 * those values as untyped parameters compared with the match columns, so PostgreSQL gives
 * them the columns' types as the write statement does.
 */
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "mapping_internal.h"

typedef struct explain {
    PGconn *conn;                   /* the target's database */
    const ds_target_write_t *write; /* the write that waits: its parameter values */
    ds_buf_t *out;                  /* the caller's */
    int found;                      /* lookups reported as finding no row */
    ds_buf_t unknown;               /* lookups whose match values the database computes */
} explain_t;

static void separate(ds_buf_t *buf)
{
    if (buf->len > 0)
        ds_buf_append_str(buf, "; ");
}

/* "public"."services" ("code" = 'X9', "clinic_id" = 3) into @p what. */
static void describe(ds_buf_t *what, const ds_mapping_expr_t *e, const char *const *values)
{
    ds_mapping_quote_qualified(what, e->lookup_schema, e->lookup_table);
    ds_buf_append_str(what, " (");
    for (int i = 0; i < e->nargs; i++) {
        if (i)
            ds_buf_append_str(what, ", ");
        ds_buf_append_ident(what, e->match_columns[i]);
        ds_buf_append_str(what, " = ");
        if (values[i])
            ds_mapping_quote_literal(what, values[i]);
        else
            ds_buf_append_str(what, "a value the database computes");
    }
    ds_buf_append_char(what, ')');
}

static void explain_lookup(explain_t *x, const ds_mapping_expr_t *e)
{
    const char **values = calloc((size_t)e->nargs + 1, sizeof(*values));
    ds_buf_t what = DS_BUF_INIT, sql = DS_BUF_INIT;
    bool computed = false;
    PGresult *r;

    if (!values)
        return;
    for (int i = 0; i < e->nargs; i++) {
        const ds_mapping_expr_t *arg = e->args[i];

        if (arg->param <= 0 || arg->param > x->write->nparams) {
            computed = true;
            continue;
        }
        /* A NULL match value has no parent to wait for (mapping_sql.c). */
        if (!(values[i] = x->write->params[arg->param - 1]))
            goto done;
    }
    describe(&what, e, values);
    if (computed) {
        separate(&x->unknown);
        ds_buf_appendf(&x->unknown, "lookup of %s (%s)", what.data, e->where);
        goto done;
    }
    ds_buf_append_str(&sql, "SELECT EXISTS (SELECT 1 FROM ");
    ds_mapping_quote_qualified(&sql, e->lookup_schema, e->lookup_table);
    ds_buf_append_str(&sql, " WHERE ");
    for (int i = 0; i < e->nargs; i++) {
        ds_buf_append_str(&sql, i ? " AND " : "");
        ds_buf_append_ident(&sql, e->match_columns[i]);
        ds_buf_appendf(&sql, " = $%d", i + 1);
    }
    ds_buf_append_char(&sql, ')');
    r = PQexecParams(x->conn, sql.data, e->nargs, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *msg = PQresultErrorMessage(r);

        separate(x->out);
        ds_buf_appendf(x->out, "lookup of %s could not be checked: %.*s (%s)", what.data,
                       (int)strcspn(msg, "\n"), msg, e->where);
        x->found++;
    } else if (PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 'f') {
        separate(x->out);
        ds_buf_appendf(x->out, "required lookup of %s found no row (%s)", what.data, e->where);
        x->found++;
    }
    PQclear(r);

done:
    ds_buf_free(&what);
    ds_buf_free(&sql);
    free(values);
}

static void walk(explain_t *x, const ds_mapping_expr_t *e)
{
    if (!e)
        return;
    for (int i = 0; i < e->nargs; i++)
        walk(x, e->args[i]);
    for (int i = 0; i < e->ncases; i++)
        walk(x, e->case_values[i]);
    walk(x, e->map_default);
    if (e->kind == EXPR_LOOKUP && e->required)
        explain_lookup(x, e);
}

void ds_mapping_explain_wait(const ds_mapping_set_t *set, const ds_target_write_t *write,
                             void *conn, ds_buf_t *out)
{
    explain_t x = {.conn = conn, .write = write, .out = out, .unknown = DS_BUF_INIT};

    for (int i = 0; i < set->ntargets; i++) {
        const ds_mapping_target_t *t = &set->targets[i];

        if (!ds_target_is(write->target, &t->pub))
            continue;
        for (int c = 0; c < t->ncolumns; c++)
            walk(&x, t->columns[c].expr);
    }
    /* Only when no lookup with known values is at fault: one of these must be. */
    if (x.found == 0 && x.unknown.len > 0) {
        separate(out);
        ds_buf_appendf(out, "one of these required lookups found no row: %s", x.unknown.data);
    }
    ds_buf_free(&x.unknown);
}
