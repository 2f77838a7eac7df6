/*
 * mapping_eval.c: maps one Debezium change message to the writes of the targets reading its
 * topic (ds_mapping_eval).
 *
 *   create, update, snapshot read   per target: the filters match → upsert (or in-place
 *                                   update) with the row's values; they do not → unlink
 *                                   (the row may have matched before: a filter transition);
 *                                   in-place targets write nothing then; a target whose
 *                                   filter or values cannot be computed → rejected alone
 *   delete                          unlink, from the message key alone (the "before" of a
 *                                   REPLICA IDENTITY DEFAULT table holds only the key)
 *   truncate                        truncate: every link from the topic goes
 *   tombstone (NULL value)          nothing: the delete before it did the work
 *
 * Only an update can carry capture's placeholder for an unchanged TOASTed value: pgoutput
 * sends such a column as "unchanged" only in an UPDATE's new tuple, since an INSERT (or a
 * snapshot read) always has the whole row. In a create or a read, a value equal to the
 * placeholder is therefore real data and is mapped like any other text.
 *
 * Copies. Capture keys a table without a primary key (REPLICA IDENTITY FULL) by all its
 * columns, so identical rows share one message key, and one link per target row they produce.
 * The link counts them (dualsync.links.copies): a source row whose message key has as many
 * members as the row has columns (every column is a key column) passes copy parameters,
 * which make
 *   create  one more copy of a linked row, unless it is not newer than the last change the
 *           link counted (capture is at least once: after a crash it sends the last changes
 *           again, with the same source.sequence);
 *   read    one more copy, always: the rows of the initial backfill all carry its consistent
 *           point, identical rows alike (an incremental backfill reads rows that were
 *           counted already: not counted, like an update);
 *   delete  one copy fewer when newer; the link goes (and on_delete or a refill follows) only
 *           with the last copy.
 * An update of such a row changes its key, which capture sends as a delete and a create. A
 * source with a real key never has two rows of one key, so its changes pass NULL copy
 * parameters, and the statements keep every link at one copy as before. Changes that count
 * copies have no batch form (ds_mapping_write_counts_copies).
 *
 * Every value lives in the set's arena and the write list in the set, both reused from one
 * change to the next; the results stay valid until the next call.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapping_internal.h"

/* The placeholder capture writes for an unchanged TOASTed value: does column @p name hold it?
 * @p placeholder is NULL for changes that cannot carry one (creates and reads). */
static bool unavailable(const json_t *row, const char *name, const char *placeholder)
{
    const json_t *v;

    if (!placeholder) /* a create or a read: no lookup (this runs per column reference) */
        return false;
    v = json_object_get(row, name);
    return v && json_is_string(v) && strcmp(json_string_value(v), placeholder) == 0;
}

/* Fills t->values for the write statement from @p row; @p placeholder as for unavailable(). */
static bool fill_write(ds_mapping_set_t *set, ds_mapping_target_t *t, const json_t *row,
                       const char *key, const char *placeholder, char *errstr,
                       size_t errstr_size)
{
    ds_mapping_eval_ctx_t ctx = {
        .arena = &set->arena,
        .row = row,
        .placeholder = placeholder,
        .file = t->file->path,
        .target = t->pub.id,
        .errstr = errstr,
        .errstr_size = errstr_size,
    };

    for (int i = 0; i < t->ncolumns; i++) {
        const ds_mapping_column_t *col = &t->columns[i];

        t->keep[i] = false;
        for (int r = 0; r < col->nrefs && !t->keep[i]; r++)
            t->keep[i] = unavailable(row, col->refs[r], placeholder);
        if (t->keep[i] && col->is_key)
            return ds_fail(errstr, errstr_size,
                           "%s: target %s, key column \"%s\": source column \"%s\" holds an "
                           "unchanged TOASTed value, which the WAL does not carry (%s); give "
                           "the source table REPLICA IDENTITY FULL, or compute the key from "
                           "other columns",
                           t->file->path, t->pub.id, col->name, col->refs[0], placeholder);
    }
    for (int j = 0; j < t->pub.write_nparams; j++) {
        const ds_mapping_param_t *p = &t->params[j];
        const ds_mapping_column_t *col = p->column >= 0 ? &t->columns[p->column] : NULL;
        ds_mapping_value_t v;

        switch (p->kind) {
        case PARAM_TARGET_ID:
            t->values[j] = t->pub.links_id;
            break;
        case PARAM_TOPIC:
            t->values[j] = t->file->topic;
            break;
        case PARAM_SOURCE_KEY:
            t->values[j] = key;
            break;
        case PARAM_KEEP:
            t->values[j] = t->keep[p->column] ? "true" : "false";
            break;
        case PARAM_COPY_MODE:
            t->values[j] = set->copy_mode;
            break;
        case PARAM_COPY_COMMIT:
            t->values[j] = set->copy_commit;
            break;
        case PARAM_COPY_LSN:
            t->values[j] = set->copy_lsn;
            break;
        case PARAM_VALUE:
            /* A kept column's value is not used (the CASE keeps the stored one), and computing
             * it from the placeholder could only fail (a map, parse_period) or mislead. */
            if (t->keep[p->column]) {
                t->values[j] = NULL;
                break;
            }
            ctx.column = col->name;
            if (!ds_mapping_expr_eval(p->expr, &ctx, &v))
                return false;
            if (!v.p && col->is_key && p->expr == col->expr)
                return ds_fail(errstr, errstr_size,
                               "%s: target %s, key column \"%s\": the value is NULL, and a "
                               "target row needs its whole key",
                               t->file->path, t->pub.id, col->name);
            /* Copied: a source string belongs to the message, which the caller may free
             * before it executes the statement. */
            t->values[j] = ds_mapping_value_copy(&set->arena, v);
            break;
        }
    }
    return true;
}

static bool filter_matches(ds_mapping_set_t *set, const ds_mapping_filter_t *f,
                           const ds_mapping_file_t *file, const char *target, const json_t *row,
                           const char *placeholder, bool *match, char *errstr,
                           size_t errstr_size)
{
    ds_mapping_eval_ctx_t ctx = {
        .arena = &set->arena,
        .row = row,
        .placeholder = placeholder,
        .file = file->path,
        .target = target,
        .errstr = errstr,
        .errstr_size = errstr_size,
    };

    *match = true;
    return !f || ds_mapping_filter_eval(f, &ctx, match);
}

/*
 * The partition a truncate is for, on a topic of several: capture sends one to every
 * partition, keyed {"__dualsync_truncate": "<table>", "partition": P, "partitions": N}
 * (mapping_sql.c, truncate). NULL and NULL otherwise: the truncate covers every key.
 */
static void truncate_partition(ds_mapping_set_t *set, const char *key, const char **partition,
                               const char **partitions)
{
    json_t *doc = key ? json_loads(key, 0, NULL) : NULL;
    json_t *p = json_object_get(doc, "partition"), *n = json_object_get(doc, "partitions");

    *partition = *partitions = NULL;
    if (json_is_integer(p) && json_is_integer(n) && json_integer_value(n) > 1 &&
        json_integer_value(p) >= 0 && json_integer_value(p) < json_integer_value(n)) {
        char *text = ds_mapping_arena_alloc(&set->arena, 48);

        snprintf(text, 24, "%" JSON_INTEGER_FORMAT, json_integer_value(p));
        snprintf(text + 24, 24, "%" JSON_INTEGER_FORMAT, json_integer_value(n));
        *partition = text;
        *partitions = text + 24;
    }
    json_decref(doc);
}

/*
 * Whether the message key text @p key has exactly the members @p cols at its top level, in one
 * pass over it (no parse: this runs per change). A member name with an escape never matches.
 */
static bool key_has_exactly(const char *key, const char *const *cols, int ncols)
{
    int depth = 0, n = 0;
    bool expect_name = false;

    for (const char *p = key; *p; p++) {
        if (*p == '"') {
            const char *start = ++p;

            for (; *p && *p != '"'; p++) {
                if (*p == '\\') {
                    if (depth == 1 && expect_name)
                        return false;
                    if (p[1])
                        p++;
                }
            }
            if (!*p)
                return false;
            if (depth == 1 && expect_name) {
                size_t len = (size_t)(p - start);
                bool found = false;

                for (int i = 0; i < ncols && !found; i++)
                    found = strlen(cols[i]) == len && memcmp(cols[i], start, len) == 0;
                if (!found)
                    return false;
                n++;
                expect_name = false;
            }
            continue;
        }
        if (*p == '{' || *p == '[')
            expect_name = ++depth == 1 && *p == '{';
        else if (*p == '}' || *p == ']')
            depth--;
        else if (*p == ',' && depth == 1)
            expect_name = true;
    }
    return n == ncols;
}

/* The links statements start with $1 target id, $2 topic, $3 source key (as the upsert);
 * unlink_sql then takes the copy parameters: @p copies for a delete that counts copies. */
static void fill_link_params(ds_mapping_set_t *set, ds_mapping_target_t *t, const char *key,
                             bool copies)
{
    t->values[0] = t->pub.links_id;
    t->values[1] = t->file->topic;
    t->values[2] = key;
    if (t->pub.unlink_nparams >= 6) {
        t->values[3] = copies ? set->copy_mode : NULL;
        t->values[4] = copies ? set->copy_commit : NULL;
        t->values[5] = copies ? set->copy_lsn : NULL;
    }
}

/*
 * Whether a change of @p t keyed @p key, whose row is @p row, takes the target's form without
 * links (mapping_sql.c, "Targets without links"): its message key is exactly the source
 * columns the target key reads, and the row has columns besides them (one keyed by all its
 * columns counts copies, which need links). Both depend on the table's replica identity
 * only, not on the change, so every change of one table takes the same form.
 */
static bool takes_linkless(const ds_mapping_target_t *t, const char *key, const json_t *row)
{
    return t->pub.linkless && key && json_is_object(row) &&
           json_object_size(row) > (size_t)t->pub.nkey_source_columns &&
           key_has_exactly(key, t->pub.key_source_columns, t->pub.nkey_source_columns);
}

static void add_write(ds_mapping_set_t *set, ds_write_list_t *writes, ds_mapping_target_t *t,
                      ds_write_kind_t kind, bool linkless)
{
    ds_target_write_t *w = &set->writes[writes->nwrites++];

    w->target = linkless ? t->pub.linkless : &t->pub;
    w->kind = kind;
    w->nparams = kind == DS_WRITE_UPSERT   ? w->target->write_nparams
                 : kind == DS_WRITE_UNLINK ? w->target->unlink_nparams
                                           : w->target->truncate_nparams;
    w->params = t->values;
    /* values[2] is the source key of an upsert or unlink (fill_link_params). */
    w->sole_source = kind != DS_WRITE_TRUNCATE && !t->pub.in_place &&
                     (linkless || (t->pub.nkey_source_columns > 0 && t->values[2] &&
                                   key_has_exactly(t->values[2], t->pub.key_source_columns,
                                                   t->pub.nkey_source_columns)));
}

/*
 * The parameters of an unlink without links: write_sql's, with the key columns computed from
 * @p row (the delete's "before", where the key columns are, or the row a filter no longer
 * matches) and everything else NULL but the target id, topic and source key.
 */
static bool fill_linkless_unlink(ds_mapping_set_t *set, ds_mapping_target_t *t, const json_t *row,
                                 const char *key, char *errstr, size_t errstr_size)
{
    ds_mapping_eval_ctx_t ctx = {
        .arena = &set->arena,
        .row = row,
        .file = t->file->path,
        .target = t->pub.id,
        .errstr = errstr,
        .errstr_size = errstr_size,
    };

    for (int j = 0; j < t->pub.write_nparams; j++)
        t->values[j] = NULL;
    t->values[0] = t->pub.links_id;
    t->values[1] = t->file->topic;
    t->values[2] = key;
    for (int i = 0; i < t->nkey; i++) {
        const ds_mapping_column_t *col = &t->columns[t->key[i]];
        ds_mapping_value_t v;

        ctx.column = col->name;
        if (!ds_mapping_expr_eval(col->expr, &ctx, &v))
            return false;
        if (!v.p)
            return ds_fail(errstr, errstr_size,
                           "%s: target %s, key column \"%s\": the value is NULL in the row "
                           "the change removes, so the target row it produced cannot be found",
                           t->file->path, t->pub.id, col->name);
        t->values[col->expr->param - 1] = ds_mapping_value_copy(&set->arena, v);
    }
    return true;
}

/*
 * "Source row @p key, whose row is @p row, no longer produces a row of @p t": an unlink in
 * the form the change takes. @p copies as for fill_link_params. False (errstr set) when the
 * key columns cannot be computed; nothing was added then.
 */
static bool add_unlink(ds_mapping_set_t *set, ds_write_list_t *writes, ds_mapping_target_t *t,
                       const char *key, const json_t *row, bool copies, char *errstr,
                       size_t errstr_size)
{
    if (takes_linkless(t, key, row)) {
        if (!fill_linkless_unlink(set, t, row, key, errstr, errstr_size))
            return false;
        add_write(set, writes, t, DS_WRITE_UNLINK, true);
        return true;
    }
    fill_link_params(set, t, key, copies);
    add_write(set, writes, t, DS_WRITE_UNLINK, false);
    return true;
}

/* The number of members of the JSON object text @p key, at its top level. */
static size_t key_members(const char *key)
{
    size_t n = 0;
    int depth = 0;
    bool in_string = false;

    for (const char *p = key; *p; p++) {
        if (in_string) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                in_string = false;
            continue;
        }
        switch (*p) {
        case '"':
            in_string = true;
            if (depth == 1 && n == 0)
                n = 1;
            break;
        case '{':
        case '[':
            depth++;
            break;
        case '}':
        case ']':
            depth--;
            break;
        case ',':
            if (depth == 1)
                n++;
            break;
        default:
            break;
        }
    }
    return n;
}

/* @p lsn as pg_lsn text, in the arena. */
static const char *lsn_text(ds_mapping_set_t *set, uint64_t lsn)
{
    char *text = ds_mapping_arena_alloc(&set->arena, 24);

    snprintf(text, 24, "%" PRIX64 "/%" PRIX64, lsn >> 32, lsn & 0xFFFFFFFFu);
    return text;
}

/*
 * Sets the copy parameters of the change (the comment at the top, "Copies"): NULL unless
 * @p row (its whole row) has no column outside the message key @p key. @p op is 'c', 'r'
 * or 'd'.
 */
static void set_copies(ds_mapping_set_t *set, const json_t *value, const char *key,
                       const json_t *row, char op)
{
    const json_t *source, *lsn;
    const char *sequence, *snapshot;
    size_t ncolumns = json_is_object(row) ? json_object_size(row) : 0;

    /* A keyed source (the common case) costs one pass over its short key text. */
    set->copy_mode = set->copy_commit = set->copy_lsn = NULL;
    if (!key || ncolumns == 0 || key_members(key) != ncolumns)
        return;
    source = json_object_get(value, "source");
    sequence = json_string_value(json_object_get(source, "sequence"));
    lsn = json_object_get(source, "lsn");
    snapshot = json_string_value(json_object_get(source, "snapshot"));
    if (op == 'r') {
        /* An incremental backfill reads rows the stream counted already. */
        if (!(snapshot && strcmp(snapshot, "incremental") == 0))
            set->copy_mode = "r";
        return;
    }
    set->copy_mode = op == 'c' ? "c" : "d";
    if (json_is_integer(lsn) && json_integer_value(lsn) >= 0)
        set->copy_lsn = lsn_text(set, (uint64_t)json_integer_value(lsn));
    /* source.sequence: "[\"<last commit LSN>\",\"<LSN>\"]", the first null when unknown. */
    if (sequence && strncmp(sequence, "[\"", 2) == 0) {
        char *end;
        unsigned long long commit = strtoull(sequence + 2, &end, 10);

        if (end != sequence + 2 && *end == '"')
            set->copy_commit = lsn_text(set, (uint64_t)commit);
    }
}

bool ds_mapping_write_counts_copies(const ds_target_t *t, ds_write_kind_t kind,
                                    const char *const *params, int nparams)
{
    int k = kind == DS_WRITE_UPSERT ? t->copy_param : kind == DS_WRITE_UNLINK ? 4 : 0;

    if (t->keeps_no_links)
        return false; /* never chosen for a change that counts copies (takes_linkless) */
    return k > 0 && k <= nparams && params[k - 1] != NULL;
}

static bool no_key(const ds_mapping_target_t *t, const char *topic, char *errstr,
                   size_t errstr_size)
{
    return ds_fail(errstr, errstr_size,
                   "%s: target %s: the message on %s has no key, which the target's links "
                   "need (the source table has no primary key or replica identity index; "
                   "Debezium sends the updates of such a table keyless, and apply cannot tell "
                   "which row they change: give the table a primary key)",
                   t->file->path, t->pub.id, topic);
}

/* Target @p t writes nothing for this change, because of @p error (copied to the arena). */
static void add_reject(ds_mapping_set_t *set, ds_write_list_t *writes, ds_mapping_target_t *t,
                       const char *error)
{
    ds_target_reject_t *r = &set->rejects[writes->nrejects++];
    size_t len = strlen(error);
    char *copy = ds_mapping_arena_alloc(&set->arena, len + 1);

    memcpy(copy, error, len + 1);
    r->target = &t->pub;
    r->error = copy;
}

/*
 * Each target on its own: one whose filter or values cannot be computed is rejected alone, so
 * that an unreadable column of one target does not cost the change its other targets (a
 * reservation keeps its service when only its preferred time cannot be read).
 * @p placeholder: the unchanged-TOAST text, or NULL when the change cannot carry one.
 */
static bool map_row(ds_mapping_set_t *set, const int *files, const char *topic, const char *key,
                    const json_t *row, const char *placeholder, ds_write_list_t *writes,
                    char *errstr, size_t errstr_size)
{
    for (int k = 0; files[k] >= 0; k++) {
        ds_mapping_file_t *f = &set->files[files[k]];
        bool file_match, file_ok;

        file_ok = filter_matches(set, f->filter, f, NULL, row, placeholder, &file_match, errstr,
                                 errstr_size);
        for (int i = 0; i < f->ntargets; i++) {
            ds_mapping_target_t *t = &set->targets[f->first_target + i];
            bool match = file_match;

            if (!t->pub.in_place && !key)
                return no_key(t, topic, errstr, errstr_size);
            if (!file_ok) {
                add_reject(set, writes, t, errstr);
                continue;
            }
            if (match && !filter_matches(set, t->filter, f, t->pub.id, row, placeholder, &match,
                                         errstr, errstr_size)) {
                add_reject(set, writes, t, errstr);
                continue;
            }
            if (match) {
                if (!fill_write(set, t, row, key, placeholder, errstr, errstr_size)) {
                    add_reject(set, writes, t, errstr);
                    continue;
                }
                add_write(set, writes, t, DS_WRITE_UPSERT, takes_linkless(t, key, row));
            } else if (!t->pub.in_place) {
                /* Identical rows match alike: their link, if any, counts none of them. */
                if (!add_unlink(set, writes, t, key, row, false, errstr, errstr_size))
                    add_reject(set, writes, t, errstr);
            }
        }
    }
    /* Nothing to write and something rejected: the change is rejected whole, as one dead
     * letter (its first target's error), not as a dead letter per target. */
    if (writes->nwrites == 0 && writes->nrejects > 0) {
        snprintf(errstr, errstr_size, "%s", writes->rejects[0].error);
        return false;
    }
    return true;
}

/*
 * A truncate of @p t's source table: every link from the topic goes (from @p partition of
 * @p partitions, both NULL for a topic of one partition), and when the target can be written
 * without links, every row of the table, since those rows have no links to go by. That needs
 * the whole topic in one partition: false (errstr set) otherwise, after the links' part.
 */
static bool add_truncate(ds_mapping_set_t *set, ds_write_list_t *writes, ds_mapping_target_t *t,
                         const char *topic, const char *partition, const char *partitions,
                         char *errstr, size_t errstr_size)
{
    fill_link_params(set, t, NULL, false);
    t->values[2] = partition;
    t->values[3] = partitions;
    add_write(set, writes, t, DS_WRITE_TRUNCATE, false);
    if (!t->pub.linkless)
        return true;
    if (partition)
        return ds_fail(errstr, errstr_size,
                       "%s: target %s keeps no links (its key is computed from the source "
                       "key alone), and a truncate on %s, a topic of %s partitions, cannot tell "
                       "which of its rows came through partition %s: its rows are left as they "
                       "are. Empty the target table by hand once every partition is applied "
                       "past the truncate (or give the target \"links\": true and replay it)",
                       t->file->path, t->pub.id, topic, partitions, partition);
    add_write(set, writes, t, DS_WRITE_TRUNCATE, true);
    return true;
}

/* Puts "change on <topic>: " before the message in @p errstr; returns false. */
static bool prefix_topic(const char *topic, char *errstr, size_t errstr_size)
{
    char why[1024];

    snprintf(why, sizeof(why), "%s", errstr);
    return ds_fail(errstr, errstr_size, "change on %s: %s", topic, why);
}

/*
 * The key of a keyless change. Debezium sends the changes of a table without a primary key
 * (REPLICA IDENTITY FULL) with a null key, where capture keys them by all their columns: the
 * whole row, whose text is that key (the row's members come in table order). A create or a
 * read has it in "after", a delete in "before". An update may change the row, and so its key,
 * which would need an unlink and an upsert of one target in one change: it stays keyless,
 * which only in-place targets accept (no_key). A truncate needs no key.
 */
static bool row_key(ds_mapping_set_t *set, const json_t *value, char op, const char **key_text,
                    char *errstr, size_t errstr_size)
{
    const json_t *row = json_object_get(value, op == 'd' ? "before" : "after");
    char *text, *copy;
    size_t len;

    if (op == 't' || op == 'u' || !json_is_object(row) || json_object_size(row) == 0)
        return true;
    if (!(text = json_dumps(row, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        return ds_fail(errstr, errstr_size, "out of memory");
    len = strlen(text);
    copy = ds_mapping_arena_alloc(&set->arena, len + 1);
    memcpy(copy, text, len + 1);
    free(text);
    *key_text = copy;
    return true;
}

static bool eval_change(ds_mapping_set_t *set, const char *topic, const char *key, size_t key_len,
                        const json_t *value, ds_write_list_t *writes, char *errstr,
                        size_t errstr_size)
{
    const int *files = NULL;
    const json_t *op_json, *row;
    const char *op, *key_text = NULL, *partition = NULL, *partitions = NULL;

    writes->nwrites = 0;
    writes->writes = set->writes;
    writes->nrejects = 0;
    writes->rejects = set->rejects;
    ds_mapping_arena_reset(&set->arena);
    set->copy_mode = set->copy_commit = set->copy_lsn = NULL;
    for (int i = 0; i < set->ntopics && !files; i++) {
        if (strcmp(set->topics[i], topic) == 0)
            files = set->topic_files[i];
    }
    if (!files)
        return ds_fail(errstr, errstr_size, "topic %s is not the source of any mapping", topic);
    if (set->decoder && !ds_debezium_decode_change(set->decoder, topic, &value, &key, &key_len,
                                                   errstr, errstr_size))
        return prefix_topic(topic, errstr, errstr_size);
    if (!value)
        return true; /* a tombstone: the delete before it unlinked the row */
    if (key && !(key_len == 4 && memcmp(key, "null", 4) == 0)) {
        char *copy = ds_mapping_arena_alloc(&set->arena, key_len + 1);
        memcpy(copy, key, key_len);
        copy[key_len] = '\0';
        key_text = copy;
    }

    op_json = json_object_get(value, "op");
    op = json_string_value(op_json);
    if (!json_is_object(value) || !op || strlen(op) != 1)
        return ds_fail(errstr, errstr_size,
                       "malformed change on %s: expected a Debezium value with \"op\" one of "
                       "c, u, d, r, t",
                       topic);
    if (!key_text && !row_key(set, value, op[0], &key_text, errstr, errstr_size))
        return false;
    switch (op[0]) {
    case 'c':
    case 'u':
    case 'r':
        row = json_object_get(value, "after");
        if (!json_is_object(row))
            return ds_fail(errstr, errstr_size,
                           "malformed change on %s: op \"%s\" without an \"after\" object", topic,
                           op);
        if (op[0] != 'u')
            set_copies(set, value, key_text, row, op[0]);
        return map_row(set, files, topic, key_text, row, op[0] == 'u' ? set->placeholder : NULL,
                       writes, errstr, errstr_size);
    case 'd':
    case 't':
        if (op[0] == 'd')
            set_copies(set, value, key_text, json_object_get(value, "before"), 'd');
        else
            truncate_partition(set, key_text, &partition, &partitions);
        for (int k = 0; files[k] >= 0; k++) {
            ds_mapping_file_t *f = &set->files[files[k]];

            for (int i = 0; i < f->ntargets; i++) {
                ds_mapping_target_t *t = &set->targets[f->first_target + i];

                /* In place, the row belongs to the legacy table: its delete is its own. */
                if (t->pub.in_place)
                    continue;
                if (op[0] == 'd') {
                    if (!key_text)
                        return no_key(t, topic, errstr, errstr_size);
                    if (!add_unlink(set, writes, t, key_text, json_object_get(value, "before"),
                                    true, errstr, errstr_size))
                        return prefix_topic(topic, errstr, errstr_size);
                    continue;
                }
                if (!add_truncate(set, writes, t, topic, partition, partitions, errstr,
                                  errstr_size))
                    add_reject(set, writes, t, errstr);
            }
        }
        return true;
    default:
        return ds_fail(errstr, errstr_size,
                       "malformed change on %s: unknown op \"%s\" (expected c, u, d, r or t)",
                       topic, op);
    }
}

bool ds_mapping_eval(ds_mapping_set_t *set, const char *topic, const char *key, size_t key_len,
                     const json_t *value, ds_write_list_t *writes, char *errstr, size_t errstr_size)
{
    if (!eval_change(set, topic, key, key_len, value, writes, errstr, errstr_size)) {
        /* Nothing of a change that cannot be mapped may be written. */
        writes->nwrites = 0;
        writes->nrejects = 0;
        return false;
    }
    return true;
}
