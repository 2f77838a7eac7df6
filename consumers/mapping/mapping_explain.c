/*
 * mapping_explain.c: what the compiler made of each target, in words (`dualsync explain`):
 * the table and key, whether its rows are written with links or without them and why, and
 * how a batch writes them. With the statements on request.
 */
#include <stdio.h>
#include <string.h>

#include "mapping_internal.h"

/* Whether a key column of target @p t is computed by the target database. */
static bool key_in_db(const ds_mapping_target_t *t)
{
    for (int i = 0; i < t->nkey; i++) {
        if (t->columns[t->key[i]].expr->in_db)
            return true;
    }
    return false;
}

/* Whether target @p t's key is computed from source columns alone. */
static bool keyed_by_source(const ds_mapping_target_t *t)
{
    return !key_in_db(t) && t->pub.nkey_source_columns > 0;
}

const char *ds_mapping_links_reason(const ds_mapping_target_t *t)
{
    if (key_in_db(t))
        return "a key column is computed by the target database";
    if (t->merge)
        return "it shares the merge name of other targets: its rows take several tables' rows";
    if (!keyed_by_source(t))
        return "its key is not computed from source columns alone (only source columns and "
               "uuid5s of them are): several source rows may produce one row";
    return "that is the default";
}

static void append_statement(ds_buf_t *out, const char *what, const char *sql)
{
    if (sql)
        ds_buf_appendf(out, "    -- %s\n    %s;\n", what, sql);
}

void ds_mapping_set_explain(const ds_mapping_set_t *set, bool sql, ds_buf_t *out)
{
    for (int i = 0; i < set->ntargets; i++) {
        const ds_mapping_target_t *t = &set->targets[i];
        const ds_target_t *lf = t->pub.linkless;

        ds_buf_appendf(out, "%s: %s, connection \"%s\", from %s (topic %s), key (", t->pub.id,
                       t->pub.table, t->pub.connection, t->file->path, t->file->topic);
        for (int k = 0; k < t->nkey; k++)
            ds_buf_appendf(out, "%s%s", k ? ", " : "", t->columns[t->key[k]].name);
        ds_buf_append_str(out, ")\n");
        if (t->pub.in_place) {
            ds_buf_appendf(out, "  in place: updates the row its key names, %s; no links\n",
                           t->pub.fan_out ? "every row it matches (fan_out)" : "if it exists");
        } else if (lf) {
            ds_buf_append_str(out, "  links: none (\"links\": false) when the source table's "
                                   "key (the Kafka message key) is exactly (");
            for (int k = 0; k < t->pub.nkey_source_columns; k++)
                ds_buf_appendf(out, "%s%s", k ? ", " : "", t->pub.key_source_columns[k]);
            ds_buf_append_str(out, "), the columns this key is computed from; kept otherwise\n");
        } else if (keyed_by_source(t) && !t->merge) {
            ds_buf_append_str(out, "  links: kept in dualsync.links (the default); its key is "
                                   "computed from (");
            for (int k = 0; k < t->pub.nkey_source_columns; k++)
                ds_buf_appendf(out, "%s%s", k ? ", " : "", t->pub.key_source_columns[k]);
            ds_buf_append_str(out, ") alone, so \"links\": false can write it without them "
                                   "(mappings/README.md, \"Targets without links\")\n");
        } else {
            ds_buf_appendf(out, "  links: kept in dualsync.links, since %s\n",
                           ds_mapping_links_reason(t));
        }
        ds_buf_appendf(out, "  batches: %s%s\n",
                       t->pub.batch_body ? "one set-based statement per batch"
                                         : "row by row (a key column is computed by the "
                                           "target database)",
                       !t->pub.settle_sql ? ""
                       : lf ? "; rows written with links are settled before each COMMIT"
                            : "; its rows are settled before each COMMIT (several source rows "
                              "may share one)");
        if (!sql)
            continue;
        append_statement(out, "upsert", t->pub.write_sql);
        append_statement(out, "unlink", t->pub.unlink_sql);
        append_statement(out, "truncate", t->pub.truncate_sql);
        append_statement(out, "settle", t->pub.settle_sql);
        if (lf) {
            append_statement(out, "upsert without links", lf->write_sql);
            append_statement(out, "unlink without links", lf->unlink_sql);
            append_statement(out, "truncate without links", lf->truncate_sql);
        }
    }
}
