/*
 * test_mapping_golden.c: the exact SQL the mapping compiler emits for the fixture mappings in
 * tests/unit/mapping/, diffed against tests/golden/mapping/<case>.sql. Each golden file lists
 * every target's write, unlink and truncate statements with what each parameter holds.
 *
 * DS_GOLDEN_UPDATE=1 rewrites the golden files from the current output (then review the
 * diff before committing).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../consumers/mapping/mapping_internal.h"
#include "ds_test.h"

static const char *const connections[] = {"clinic", "legacy", NULL};

static void describe_param(ds_buf_t *out, const ds_mapping_target_t *t, int j)
{
    const ds_mapping_param_t *p = &t->params[j];

    switch (p->kind) {
    case PARAM_TARGET_ID:
        ds_buf_appendf(out, "--   $%d target id\n", j + 1);
        break;
    case PARAM_TOPIC:
        ds_buf_appendf(out, "--   $%d source topic\n", j + 1);
        break;
    case PARAM_SOURCE_KEY:
        ds_buf_appendf(out, "--   $%d source key (the message key text)\n", j + 1);
        break;
    case PARAM_KEEP:
        ds_buf_appendf(out, "--   $%d keep the stored \"%s\" (unchanged TOASTed source value)\n",
                       j + 1, t->columns[p->column].name);
        break;
    case PARAM_COPY_MODE:
        ds_buf_appendf(out, "--   $%d copy mode ('c', 'r' or NULL)\n", j + 1);
        break;
    case PARAM_COPY_COMMIT:
        ds_buf_appendf(out, "--   $%d copy commit LSN\n", j + 1);
        break;
    case PARAM_COPY_LSN:
        ds_buf_appendf(out, "--   $%d copy LSN\n", j + 1);
        break;
    case PARAM_VALUE:
        ds_buf_appendf(out, "--   $%d %s of column \"%s\"\n", j + 1,
                       p->expr == t->columns[p->column].expr ? "value" : "a value inside",
                       t->columns[p->column].name);
        break;
    }
}

/* The target's form without links, when it has one: its statements, on write_sql's
 * parameters (truncate: truncate_sql's). */
static void render_linkless(ds_buf_t *out, const ds_mapping_target_t *t)
{
    const ds_target_t *lf = t->pub.linkless;
    const char **types;
    char (*names)[16];
    char *sql;

    if (!lf) {
        ds_buf_append_str(out, "\n-- no form without links\n");
        return;
    }
    ds_buf_appendf(out, "\n-- without links (the key is computed from source key columns:");
    for (int i = 0; i < t->pub.nkey_source_columns; i++)
        ds_buf_appendf(out, " %s", t->pub.key_source_columns[i]);
    ds_buf_appendf(out, "), write_sql's parameters:\n%s;\n", lf->write_sql);
    if (lf->unlink_sql)
        ds_buf_appendf(out, "-- unlink without links:\n%s;\n", lf->unlink_sql);
    if (lf->truncate_sql)
        ds_buf_appendf(out, "-- truncate without links:\n%s;\n", lf->truncate_sql);
    types = calloc((size_t)lf->write_nparams + 1, sizeof(*types));
    names = calloc((size_t)lf->write_nparams + 1, sizeof(*names));
    for (int j = 0; j < lf->write_nparams; j++) {
        snprintf(names[j], sizeof(names[j]), "T%d", j + 1);
        types[j] = names[j];
    }
    sql = ds_mapping_batch_statement(lf, types);
    ds_buf_appendf(out, "-- batch statement without links:\n%s;\n", sql ? sql : "(none)");
    free(sql);
    free(names);
    free(types);
}

/* Everything the compiler made of one mapping file, as the golden file holds it. */
static bool render(const char *name, ds_buf_t *out)
{
    char path[4096], errstr[8192] = "";
    const char *root = getenv("DS_SOURCE_DIR");
    const char *paths[1] = {path};
    ds_mapping_set_t *set = NULL;

    snprintf(path, sizeof(path), "%s/tests/unit/mapping/%s.json", root ? root : ".", name);
    if (!ds_mapping_set_load(paths, 1, "clinic", connections, &set, errstr, sizeof(errstr))) {
        fprintf(stderr, "%s: %s\n", name, errstr);
        return false;
    }
    ds_buf_appendf(out, "-- Generated from tests/unit/mapping/%s.json (topic %s).\n", name,
                   ds_mapping_set_topic(set, 0));
    for (int i = 0; i < ds_mapping_set_ntargets(set); i++) {
        const ds_mapping_target_t *t = &set->targets[i];

        ds_buf_appendf(out, "\n-- target %s: table %s, connection %s%s\n", t->pub.id, t->pub.table,
                       t->pub.connection, t->pub.in_place ? ", in place" : "");
        ds_buf_appendf(out, "-- write_sql, %d parameters:\n", t->pub.write_nparams);
        for (int j = 0; j < t->pub.write_nparams; j++)
            describe_param(out, t, j);
        ds_buf_appendf(out, "%s;\n", t->pub.write_sql);
        if (t->pub.unlink_sql)
            ds_buf_appendf(out,
                           "\n-- unlink_sql, %d parameters ($1 target id, $2 source topic, "
                           "$3 source key, $4 copy mode ('d' or NULL), $5 copy commit LSN, "
                           "$6 copy LSN):\n%s;\n",
                           t->pub.unlink_nparams, t->pub.unlink_sql);
        if (t->pub.truncate_sql)
            ds_buf_appendf(out,
                           "\n-- truncate_sql, %d parameters ($1 target id, $2 source "
                           "topic, $3 partition, $4 partitions):\n%s;\n",
                           t->pub.truncate_nparams, t->pub.truncate_sql);
        if (t->pub.settle_sql)
            ds_buf_appendf(out, "\n-- settle_sql, 1 parameter ($1 target id):\n%s;\n",
                           t->pub.settle_sql);
        if (t->pub.batch_body) {
            /* Typed by what PostgreSQL infers for write_sql; "T$k" stands for those here. */
            const char **types = calloc((size_t)t->pub.write_nparams + 1, sizeof(*types));
            char (*names)[16] = calloc((size_t)t->pub.write_nparams + 1, sizeof(*names));
            char *sql;

            for (int j = 0; j < t->pub.write_nparams; j++) {
                snprintf(names[j], sizeof(names[j]), "T%d", j + 1);
                types[j] = names[j];
            }
            sql = ds_mapping_batch_statement(&t->pub, types);
            ds_buf_appendf(out,
                           "\n-- batch statement (%s$%d..$%d arrays of write_sql's $%d..$%d, "
                           "$%d ord, $%d op):\n%s;\n",
                           t->pub.in_place ? "" : "$1 target id, $2 source topic, ",
                           t->pub.in_place ? 1 : 3, t->pub.write_nparams,
                           t->pub.in_place ? 1 : 3, t->pub.write_nparams,
                           t->pub.write_nparams + 1, t->pub.write_nparams + 2, sql);
            free(sql);
            free(names);
            free(types);
        } else {
            ds_buf_append_str(out, "\n-- no batch statement (a key column is computed by the "
                                   "database)\n");
        }
        render_linkless(out, t);
    }
    ds_mapping_set_free(set);
    return true;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    ds_buf_t buf = DS_BUF_INIT;
    char chunk[4096];
    size_t n;

    if (!f)
        return NULL;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        ds_buf_append(&buf, chunk, n);
    fclose(f);
    if (!buf.data)
        ds_buf_append(&buf, "", 0);
    return buf.data;
}

/* Prints the first differing line of want and got. */
static void show_difference(const char *name, const char *want, const char *got)
{
    int line = 1;
    const char *w = want, *g = got;

    while (*w && *g && *w == *g) {
        if (*w == '\n')
            line++;
        w++;
        g++;
    }
    while (w > want && w[-1] != '\n')
        w--, g--;
    fprintf(stderr, "%s.sql differs at line %d:\n  want: %.*s\n  got:  %.*s\n", name, line,
            (int)strcspn(w, "\n"), w, (int)strcspn(g, "\n"), g);
}

static void check_case(const char *name)
{
    char path[4096];
    const char *dir = getenv("DS_GOLDEN_DIR");
    const char *update = getenv("DS_GOLDEN_UPDATE");
    ds_buf_t got = DS_BUF_INIT;
    char *want;

    DS_CHECK(render(name, &got));
    if (!got.data)
        return;
    snprintf(path, sizeof(path), "%s/mapping/%s.sql", dir ? dir : "tests/golden", name);
    if (update && strcmp(update, "1") == 0) {
        FILE *f = fopen(path, "wb");

        DS_CHECK(f != NULL);
        if (f) {
            fwrite(got.data, 1, got.len, f);
            fclose(f);
            printf("rewrote %s\n", path);
        }
    }
    want = read_all(path);
    DS_CHECK(want != NULL);
    if (want) {
        bool same = strcmp(want, got.data) == 0;

        DS_CHECK(same);
        if (!same)
            show_difference(name, want, got.data);
    }
    free(want);
    ds_buf_free(&got);
}

static void test_doctor_upsert_with_links_and_required_lookup(void)
{
    check_case("users");
}

static void test_merged_patients_keep_flags_and_cast(void)
{
    check_case("patients");
}

static void test_ignore_on_delete_sql_escape_hatch_and_map(void)
{
    check_case("reservations");
}

static void test_in_place_update_with_required_lookup(void)
{
    check_case("appointments");
}

static void test_key_only_target_inserts_or_does_nothing(void)
{
    check_case("offers");
}

/* A fan-out update: every row of its (not unique) key, and only those whose values change. */
static void test_fan_out_update_writes_only_changed_children(void)
{
    check_case("fanout");
}

static void test_identifiers_and_literals_are_quoted(void)
{
    check_case("quoting");
}

int main(void)
{
    DS_RUN(test_doctor_upsert_with_links_and_required_lookup);
    DS_RUN(test_merged_patients_keep_flags_and_cast);
    DS_RUN(test_ignore_on_delete_sql_escape_hatch_and_map);
    DS_RUN(test_in_place_update_with_required_lookup);
    DS_RUN(test_key_only_target_inserts_or_does_nothing);
    DS_RUN(test_fan_out_update_writes_only_changed_children);
    DS_RUN(test_identifiers_and_literals_are_quoted);
    return ds_test_report();
}
