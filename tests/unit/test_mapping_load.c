/*
 * test_mapping_load.c: loading mapping files: what a valid set holds, and the exact message
 * (file:line:col, JSON path, what is wrong) for each kind of mistake, every problem of every
 * file reported at once. Fixtures are in tests/unit/mapping/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../consumers/mapping/mapping_internal.h"
#include "ds_test.h"

static const char *const connections[] = {"clinic", "legacy", NULL};

/* $DS_SOURCE_DIR/tests/unit/mapping/<name>, in one of 8 rotating buffers. */
static const char *fixture(const char *name)
{
    static char paths[8][4096];
    static int next;
    const char *root = getenv("DS_SOURCE_DIR");
    char *path = paths[next++ % 8];

    snprintf(path, 4096, "%s/tests/unit/mapping/%s", root ? root : ".", name);
    return path;
}

static char temp_dir[256]; /* made on first use, removed at the end */

/* Writes @p text to <temp_dir>/<stem>.json and returns the path (valid until the next call). */
static const char *temp_file(const char *stem, const char *text)
{
    static char path[512];
    char *dir = temp_dir;
    FILE *f;

    if (!dir[0]) {
        snprintf(dir, sizeof(temp_dir), "/tmp/ds_test_mapping_load_XXXXXX");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    snprintf(path, sizeof(path), "%s/%s.json", dir, stem);
    f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    return path;
}

/* Loads @p text (as m.json) and expects failure with @p want, each line after "<path>:". */
static void expect_text_error(const char *text, const char *want)
{
    const char *path = temp_file("m", text);
    char errstr[4096] = "";
    ds_mapping_set_t *set = (ds_mapping_set_t *)1;
    ds_buf_t full = DS_BUF_INIT;

    for (const char *p = want; *p;) {
        size_t n = strcspn(p, "\n");
        ds_buf_appendf(&full, "%s%s:%.*s", full.len ? "\n" : "", path, (int)n, p);
        p += n + (p[n] == '\n');
    }
    DS_CHECK(!ds_mapping_set_load(&path, 1, "clinic", connections, &set, errstr, sizeof(errstr)));
    DS_CHECK(set == NULL);
    DS_CHECK_STR(errstr, full.data);
    ds_buf_free(&full);
    unlink(path);
}

static ds_mapping_set_t *load_text(const char *text)
{
    const char *path = temp_file("m", text);
    char errstr[4096] = "";
    ds_mapping_set_t *set = NULL;

    if (!ds_mapping_set_load(&path, 1, "clinic", connections, &set, errstr, sizeof(errstr)))
        fprintf(stderr, "unexpected load error: %s\n", errstr);
    unlink(path);
    return set;
}

static void test_every_problem_of_every_file_is_reported(void)
{
    const char *paths[3] = {fixture("bad/many.json"), fixture("bad/syntax.json"),
                            fixture("bad/duplicate.json")};
    static const char *const lines[] = {
        "bad/many.json:4:3: $.tragets: unknown field, did you mean \"targets\"?",
        "bad/many.json:2:13: $.source: expected \"schema.table\", got \"users\"",
        "bad/many.json:3:14: $.filter: unknown filter \"equals\" (expected one of eq, ne, in, "
        "is_null, not_null, and, or, not)",
        "bad/many.json:8:21: $.targets[0].connection: unknown connection \"clinc\", did you mean "
        "\"clinic\"?",
        "bad/many.json:12:39: $.targets[0].columns.id.uuid5.namespace: expected a UUID "
        "(\"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx\"), got \"not-a-uuid\"",
        "bad/many.json:13:19: $.targets[0].columns.email: unknown function \"lowercase\", did you "
        "mean \"lower\"?",
        "bad/many.json:14:65: $.targets[0].columns.role.map.defualt: unknown field, did you mean "
        "\"default\"?",
        "bad/many.json:15:43: $.targets[0].columns.years.cast[1]: expected a type name "
        "(lowercase words, \"quoted\" names, an optional schema, (n) or (n,m) and a trailing "
        "[], e.g. \"numeric(12,2)\" or \"public.\\\"UserRole\\\"\"), got \"int; DROP TABLE x\"",
        "bad/many.json:16:16: $.targets[0].columns.ref: \"$\" is not a source column reference: "
        "\"$\" is followed by a column name (no leading or trailing spaces, no control "
        "characters); write \"$$...\" for a text starting with \"$\"",
        "bad/many.json:17:25: $.targets[0].columns.up.upper: upper is computed by dualsync, but "
        "this value comes from the database (cast, lookup or sql); compute the whole expression "
        "in SQL instead, e.g. {\"sql\": ..., \"args\": [...]}",
        "bad/many.json:18:22: $.targets[0].columns.s.sql: the SQL text is one expression: no "
        "\";\"",
        "bad/many.json:19:23: $.targets[0].columns.s2.sql: $3 in the SQL text has no argument "
        "(args has 2 entries)",
        "bad/many.json:20:23: $.targets[0].columns.s3.sql: args[1] is not used: the SQL text has "
        "no $2",
        "bad/many.json:21:17: $.targets[0].columns.list: an array is not an expression: write "
        "{\"const\": [...]} for its JSON text or {\"concat\": [...]} to join texts",
        "bad/many.json:10:15: $.targets[0].key[0]: key column \"uid\" is not in columns (every "
        "key column needs a value)",
        "bad/many.json:23:15: $.targets[0].mode: unknown mode \"upsrt\", did you mean "
        "\"upsert\"?",
        "bad/many.json:24:36: $.targets[0].on_delete.soft_delete: expected {\"column\": \"name of "
        "the column set to now()\"}, got {}",
        "bad/many.json:32:24: $.targets[1].filter.in: expected [expression, [constant, ...]], "
        "got an array",
        "bad/many.json:27:15: $.targets[1].name: target name \"doctors\" is also the name of "
        "$.targets[0]",
        "bad/many.json:40:20: $.targets[2].on_delete: an in-place target (mode \"update\") never "
        "deletes rows, so it has no on_delete",
        "bad/many.json:42:5: $.targets[3]: a target needs the field \"table\"",
        "bad/many.json:42:5: $.targets[3]: a target needs the field \"key\"",
        "bad/many.json:44:37: $.targets[3].columns.x.coalesce: expected a non-empty array of "
        "expressions, got []",
        "bad/many.json:44:47: $.targets[3].columns.y: expected an expression object with exactly "
        "one key, the function name (or \"sql\" with \"args\"), got 2 keys",
        "bad/many.json:45:33: $.targets[3].filter.and[0].eq: expected [expression, expression], "
        "got an array",
        "bad/many.json:45:51: $.targets[3].filter.and[1].not: unknown filter \"is_nul\", did you "
        "mean \"is_null\"?",
        "bad/many.json:45:77: $.targets[3].filter.and[2].eq[0]: eq compares values computed by "
        "dualsync; cast, lookup and sql are computed by the database and cannot appear in a "
        "filter",
        "bad/syntax.json:4:35: invalid JSON: '}' expected near '\"table\"'",
        "bad/duplicate.json:3:10: invalid JSON: duplicate object key near '\"source\"'",
    };
    static char errstr[16384];
    const char *root = getenv("DS_SOURCE_DIR");
    ds_buf_t want = DS_BUF_INIT;
    ds_mapping_set_t *set = (ds_mapping_set_t *)1;

    for (size_t i = 0; i < DS_ARRAY_LEN(lines); i++)
        ds_buf_appendf(&want, "%s%s/tests/unit/mapping/%s", i ? "\n" : "", root ? root : ".",
                       lines[i]);
    DS_CHECK(!ds_mapping_set_load(paths, 3, "clinic", connections, &set, errstr, sizeof(errstr)));
    DS_CHECK(set == NULL);
    DS_CHECK_STR(errstr, want.data);
    ds_buf_free(&want);
}

static void test_a_short_errstr_keeps_whole_lines_and_counts_the_rest(void)
{
    const char *path = fixture("bad/many.json");
    char errstr[400], tail[64];
    ds_mapping_set_t *set;
    char *last;
    int lines = 0;

    DS_CHECK(!ds_mapping_set_load(&path, 1, "clinic", connections, &set, errstr, sizeof(errstr)));
    for (char *p = errstr; *p; p++)
        lines += *p == '\n';
    snprintf(tail, sizeof(tail), "\n(27 problems; the first %d shown)", lines);
    last = strrchr(errstr, '\n');
    DS_CHECK(lines >= 1);
    if (last)
        DS_CHECK_STR(last, tail);
    /* Each shown line is whole: the first ends where the second problem starts. */
    DS_CHECK(strncmp(errstr, path, strlen(path)) == 0);
    DS_CHECK(strstr(errstr, "unknown field, did you mean \"targets\"?\n") != NULL);
}

static void test_target_ids_are_unique_across_files(void)
{
    const char *paths[2] = {fixture("users.json"), fixture("other/users.json")};
    char errstr[4096], want[8192];
    ds_mapping_set_t *set;

    snprintf(want, sizeof(want),
             "%s:5:5: $.targets[0]: target id \"users/doctors\" is also the id of %s "
             "$.targets[0]: files with the same name need distinct target names\n"
             "%s:22:5: $.targets[1]: target id \"users/clinic_doctors\" is also the id of %s "
             "$.targets[1]: files with the same name need distinct target names",
             paths[1], paths[0], paths[1], paths[0]);
    DS_CHECK(!ds_mapping_set_load(paths, 2, "clinic", connections, &set, errstr, sizeof(errstr)));
    DS_CHECK_STR(errstr, want);
}

static void test_two_files_writing_the_same_columns_of_one_row_are_refused(void)
{
    const char *paths[2] = {fixture("shared/staff.json"), fixture("shared/customers.json")};
    char errstr[4096], want[8192];
    ds_mapping_set_t *set;

    snprintf(want, sizeof(want),
             "%s:4:5: $.targets[0]: target customers/people writes column \"name\" of "
             "public.people for the same key as staff/people ($.targets[0] of %s): each would "
             "overwrite the other. Map distinct columns, or, if several source tables feed one "
             "row, give both targets the same \"merge\" name",
             paths[1], paths[0]);
    DS_CHECK(!ds_mapping_set_load(paths, 2, "clinic", connections, &set, errstr, sizeof(errstr)));
    DS_CHECK_STR(errstr, want);
}

static void test_targets_of_one_merge_name_share_links_and_columns(void)
{
    const char *paths[2] = {fixture("shared/staff_merge.json"),
                            fixture("shared/customers_merge.json")};
    const char *bad[2] = {fixture("shared/staff_merge.json"), fixture("shared/customers.json")};
    char errstr[4096];
    ds_mapping_set_t *set;

    DS_CHECK(ds_mapping_set_load(paths, 2, "clinic", connections, &set, errstr, sizeof(errstr)));
    if (set) {
        DS_CHECK_STR(ds_mapping_set_target(set, 0)->links_id, "people");
        DS_CHECK_STR(ds_mapping_set_target(set, 1)->links_id, "people");
        DS_CHECK_STR(ds_mapping_set_target(set, 1)->id, "customers_merge/people");
        ds_mapping_set_free(set);
    }
    /* One side declares the merge, the other does not: still two writers of "name". */
    DS_CHECK(!ds_mapping_set_load(bad, 2, "clinic", connections, &set, errstr, sizeof(errstr)));
    DS_CHECK(strstr(errstr, "writes column \"name\" of public.people") != NULL);
}

static void test_a_missing_file_is_reported_with_the_others(void)
{
    const char *paths[2] = {"/nonexistent/users.json", fixture("bad/duplicate.json")};
    char errstr[4096], want[8192];
    ds_mapping_set_t *set;

    snprintf(want, sizeof(want),
             "/nonexistent/users.json: cannot open: No such file or directory\n"
             "%s:3:10: invalid JSON: duplicate object key near '\"source\"'",
             paths[1]);
    DS_CHECK(!ds_mapping_set_load(paths, 2, "clinic", connections, &set, errstr, sizeof(errstr)));
    DS_CHECK_STR(errstr, want);
}

static void test_valid_files_make_targets_topics_and_statements(void)
{
    const char *paths[5] = {fixture("users.json"), fixture("patients.json"),
                            fixture("appointments.json"), fixture("offers.json"),
                            fixture("reservations.json")};
    char errstr[4096] = "";
    ds_mapping_set_t *set = NULL;
    const ds_target_t *t;

    DS_CHECK(ds_mapping_set_load(paths, 5, "clinic", connections, &set, errstr, sizeof(errstr)));
    DS_CHECK_STR(errstr, "");
    if (!set)
        return;
    DS_CHECK_INT(ds_mapping_set_ntopics(set), 5);
    DS_CHECK_STR(ds_mapping_set_topic(set, 0), "clinic.public.users");
    DS_CHECK_STR(ds_mapping_set_topic(set, 4), "clinic.public.reservations");
    DS_CHECK(ds_mapping_set_topic(set, 5) == NULL);
    DS_CHECK_INT(ds_mapping_set_ntargets(set), 6);

    t = ds_mapping_set_target(set, 0);
    DS_CHECK_STR(t->id, "users/doctors");
    DS_CHECK_STR(t->file, paths[0]);
    DS_CHECK_STR(t->connection, "clinic");
    DS_CHECK_STR(t->table, "\"public\".\"global_doctors\"");
    DS_CHECK(!t->in_place);
    DS_CHECK_INT(t->write_nparams, 17);
    DS_CHECK_INT(t->copy_param, 15);
    DS_CHECK_INT(t->unlink_nparams, 6);
    DS_CHECK_INT(t->truncate_nparams, 4);
    DS_CHECK(t->write_sql && t->unlink_sql && t->truncate_sql);

    t = ds_mapping_set_target(set, 3);
    DS_CHECK_STR(t->id, "appointments/doctor_ref");
    DS_CHECK_STR(t->connection, "legacy");
    DS_CHECK(t->in_place);
    DS_CHECK(t->unlink_sql == NULL);
    DS_CHECK(t->truncate_sql == NULL);

    /* Without "name", a target is named after its table. */
    t = ds_mapping_set_target(set, 5);
    DS_CHECK_STR(t->id, "reservations/requests");
    DS_CHECK(ds_mapping_set_target(set, 6) == NULL);
    ds_mapping_set_free(set);
}

static void test_two_files_of_one_source_share_its_topic(void)
{
    const char *paths[2] = {fixture("users.json"),
                            temp_file("doctor_names", "{\"source\": \"public.users\", "
                                                      "\"targets\": [{\"connection\": "
                                                      "\"clinic\", \"table\": \"public.n\", "
                                                      "\"key\": [\"id\"], \"columns\": "
                                                      "{\"id\": \"$id\"}}]}")};
    char errstr[4096] = "";
    ds_mapping_set_t *set = NULL;

    DS_CHECK(ds_mapping_set_load(paths, 2, "clinic", connections, &set, errstr, sizeof(errstr)));
    DS_CHECK_STR(errstr, "");
    DS_CHECK_INT(ds_mapping_set_ntopics(set), 1);
    DS_CHECK_INT(ds_mapping_set_ntargets(set), 3);
    DS_CHECK_STR(ds_mapping_set_target(set, 2)->id, "doctor_names/n");
    ds_mapping_set_free(set);
    unlink(paths[1]);
}

static void test_an_unknown_connection_far_from_any_lists_the_names(void)
{
    expect_text_error("{\"source\": \"public.x\", \"targets\": [{\"connection\": \"billing\", "
                      "\"table\": \"public.y\", \"key\": [\"id\"], \"columns\": {\"id\": "
                      "\"$id\"}}]}",
                      "1:51: $.targets[0].connection: unknown connection \"billing\" (the "
                      "config's targets are clinic, legacy)");
}

static void test_an_unknown_function_far_from_any_lists_them(void)
{
    expect_text_error("{\"source\": \"public.x\", \"targets\": [{\"connection\": \"clinic\",\n"
                      "  \"table\": \"public.y\", \"key\": [\"id\"],\n"
                      "  \"columns\": {\"id\": {\"frobnicate\": \"$id\"}}}]}",
                      "3:22: $.targets[0].columns.id: unknown function \"frobnicate\" (expected "
                      "one of const, lower, upper, trim, concat, coalesce, map, uuid5, "
                      "normalize_phone, parse_period, cast, lookup, sql)");
}

static void test_positions_count_characters_not_bytes(void)
{
    /* "é" is two bytes, one column. */
    expect_text_error("{\"source\": \"public.x\", \"targets\": [{\"connection\": \"clinic\", "
                      "\"table\": \"public.y\", \"key\": [\"é\"], \"columns\": {\"é\": \"$\"}}]}",
                      "1:113: $.targets[0].columns[\"é\"]: \"$\" is not a source column "
                      "reference: \"$\" is followed by a column name (no leading or trailing "
                      "spaces, no control characters); write \"$$...\" for a text starting with "
                      "\"$\"");
}

static void test_an_in_place_target_needs_a_column_besides_its_key(void)
{
    expect_text_error("{\"source\": \"public.x\", \"targets\": [{\"connection\": \"clinic\", "
                      "\"table\": \"public.x\", \"mode\": \"update\", \"key\": [\"id\"], "
                      "\"columns\": {\"id\": \"$id\"}}]}",
                      "1:36: $.targets[0]: an in-place target (mode \"update\") updates columns "
                      "besides its key; this one lists only key columns");
}

static void test_fan_out_needs_an_in_place_target_and_a_boolean(void)
{
    expect_text_error("{\"source\": \"public.x\", \"targets\": [{\"connection\": \"clinic\", "
                      "\"table\": \"public.y\", \"fan_out\": true, \"key\": [\"id\"], "
                      "\"columns\": {\"id\": \"$id\", \"v\": \"$v\"}}]}",
                      "1:93: $.targets[0].fan_out: fan_out needs \"mode\": \"update\" (an upsert's "
                      "key names one row)");
    expect_text_error("{\"source\": \"public.x\", \"targets\": [{\"connection\": \"clinic\", "
                      "\"table\": \"public.y\", \"mode\": \"update\", \"fan_out\": \"yes\", "
                      "\"key\": [\"id\"], \"columns\": {\"id\": \"$id\", \"v\": \"$v\"}}]}",
                      "1:111: $.targets[0].fan_out: expected true or false, got \"yes\"");
}

static void test_a_map_without_value_or_cases_is_rejected(void)
{
    expect_text_error("{\"source\": \"public.x\", \"targets\": [{\"connection\": \"clinic\", "
                      "\"table\": \"public.y\", \"key\": [\"id\"], \"columns\": {\"id\": \"$id\", "
                      "\"r\": {\"map\": {\"cases\": {}}}}}]}",
                      "1:135: $.targets[0].columns.r.map: a map needs the field \"value\"\n"
                      "1:145: $.targets[0].columns.r.map.cases: expected a non-empty object of "
                      "value → result, got {}");
}

static void test_target_names_have_no_slash_and_keys_no_repeats(void)
{
    expect_text_error(
        "{\"source\": \"public.x\", \"targets\": [{\"name\": \"a/b\", \"connection\": "
        "\"clinic\", \"table\": \"public.y\", \"key\": [\"id\", \"id\"], "
        "\"columns\": {\"id\": \"$id\"}}]}",
        "1:45: $.targets[0].name: expected a non-empty name without \"/\", got "
        "\"a/b\"\n"
        "1:111: $.targets[0].key[1]: key column \"id\" is listed twice");
}

static void test_empty_column_names_are_rejected_at_their_key(void)
{
    expect_text_error(
        "{\"source\": \"public.x\", \"targets\": [{\"connection\": \"clinic\", "
        "\"table\": \"public.y\", \"key\": [\"id\"], \"columns\": {\"id\": {\"lookup\": "
        "{\"table\": \"public.z\", \"match\": {\"\": \"$a\"}, \"column\": \"b\"}}, "
        "\"\": 1}}]}",
        "1:158: $.targets[0].columns.id.lookup.match[\"\"]: a lookup column name "
        "cannot be empty\n"
        "1:186: $.targets[0].columns[\"\"]: a target column name cannot be empty");
}

static void test_cast_type_names(void)
{
    static const char *const good[] = {
        "integer",
        "numeric(12,2)",
        "timestamp(3) with time zone",
        "character varying(20)",
        "public.\\\"UserRole\\\"",
        "text[]",
        "\\\"Odd Type\\\"[]",
        "double precision",
    };
    static const char *const bad[] = {
        "Integer", "int;", "text[][]", "numeric(1,2,3)", "numeric()",   "\\\"\\\"",
        "a  b",    " int", "int ",     "varchar(x)",     "pg_catalog.",
    };
    char text[1024];

    for (size_t i = 0; i < DS_ARRAY_LEN(good); i++) {
        ds_mapping_set_t *set;

        snprintf(text, sizeof(text),
                 "{\"source\": \"public.x\", \"targets\": [{\"connection\": \"clinic\", "
                 "\"table\": \"public.y\", \"key\": [\"id\"], \"columns\": {\"id\": \"$id\", "
                 "\"v\": {\"cast\": [\"$v\", \"%s\"]}}}]}",
                 good[i]);
        set = load_text(text);
        DS_CHECK(set != NULL);
        if (!set)
            fprintf(stderr, "  type %s\n", good[i]);
        ds_mapping_set_free(set);
    }
    for (size_t i = 0; i < DS_ARRAY_LEN(bad); i++) {
        const char *path;
        char errstr[4096];
        ds_mapping_set_t *set;

        snprintf(text, sizeof(text),
                 "{\"source\": \"public.x\", \"targets\": [{\"connection\": \"clinic\", "
                 "\"table\": \"public.y\", \"key\": [\"id\"], \"columns\": {\"id\": \"$id\", "
                 "\"v\": {\"cast\": [\"$v\", \"%s\"]}}}]}",
                 bad[i]);
        path = temp_file("m", text);
        DS_CHECK(
            !ds_mapping_set_load(&path, 1, "clinic", connections, &set, errstr, sizeof(errstr)));
        DS_CHECK(strstr(errstr, "$.targets[0].columns.v.cast[1]: expected a type name") != NULL);
    }
}

static void test_qualified_names(void)
{
    ds_mapping_set_t *set = load_text(
        "{\"source\": \"\\\"a.b\\\".\\\"C\\\"\\\"d\\\"\", \"targets\": [{\"connection\": "
        "\"clinic\", \"table\": \"Sales.Orders\", \"key\": [\"id\"], \"columns\": {\"id\": "
        "\"$id\"}}]}");

    DS_CHECK(set != NULL);
    if (!set)
        return;
    /* Quoted parts may hold dots and quotes; names keep their case. */
    DS_CHECK_STR(ds_mapping_set_topic(set, 0), "clinic.a.b.C\"d");
    DS_CHECK_STR(ds_mapping_set_target(set, 0)->table, "\"Sales\".\"Orders\"");
    DS_CHECK_STR(ds_mapping_set_target(set, 0)->id, "m/Orders");
    ds_mapping_set_free(set);

    expect_text_error("{\"source\": \"a.b.c\", \"targets\": []}",
                      "1:12: $.source: expected \"schema.table\", got \"a.b.c\"\n"
                      "1:32: $.targets: expected a non-empty array of targets, got []");
}

static void test_suggestions(void)
{
    static const char *const names[] = {"lower", "upper", "trim", "soft_delete", NULL};

    DS_CHECK_STR(ds_mapping_suggest("lowr", names), "lower");
    DS_CHECK_STR(ds_mapping_suggest("lowercase", names), "lower");
    DS_CHECK_STR(ds_mapping_suggest("soft", names), "soft_delete");
    DS_CHECK(ds_mapping_suggest("frobnicate", names) == NULL);
    DS_CHECK(ds_mapping_suggest("lo", names) == NULL);
    DS_CHECK(ds_mapping_suggest("x", (const char *const[]){"id", NULL}) == NULL);
    DS_CHECK_STR(ds_mapping_suggest("xd", (const char *const[]){"id", NULL}), "id");
    DS_CHECK_INT(ds_edit_distance("kitten", "sitting", 5), 3);
    DS_CHECK_INT(ds_edit_distance("kitten", "sitting", 2), 3);
}

int main(void)
{
    DS_RUN(test_every_problem_of_every_file_is_reported);
    DS_RUN(test_a_short_errstr_keeps_whole_lines_and_counts_the_rest);
    DS_RUN(test_target_ids_are_unique_across_files);
    DS_RUN(test_two_files_writing_the_same_columns_of_one_row_are_refused);
    DS_RUN(test_targets_of_one_merge_name_share_links_and_columns);
    DS_RUN(test_a_missing_file_is_reported_with_the_others);
    DS_RUN(test_valid_files_make_targets_topics_and_statements);
    DS_RUN(test_two_files_of_one_source_share_its_topic);
    DS_RUN(test_an_unknown_connection_far_from_any_lists_the_names);
    DS_RUN(test_an_unknown_function_far_from_any_lists_them);
    DS_RUN(test_positions_count_characters_not_bytes);
    DS_RUN(test_an_in_place_target_needs_a_column_besides_its_key);
    DS_RUN(test_fan_out_needs_an_in_place_target_and_a_boolean);
    DS_RUN(test_a_map_without_value_or_cases_is_rejected);
    DS_RUN(test_target_names_have_no_slash_and_keys_no_repeats);
    DS_RUN(test_empty_column_names_are_rejected_at_their_key);
    DS_RUN(test_cast_type_names);
    DS_RUN(test_qualified_names);
    DS_RUN(test_suggestions);
    if (temp_dir[0]) {
        unlink(temp_file("m", ""));
        rmdir(temp_dir);
    }
    return ds_test_report();
}
