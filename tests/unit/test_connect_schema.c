/*
 * test_connect_schema.c: the Kafka Connect schemas of json-with-schema messages equal those
 * the real Debezium 3.6.1 PostgreSQL connector emitted for the same tables under the same
 * settings, byte for byte. The expected texts in tests/golden/connect_schema/<settings>/ are
 * the "schema" members of the Debezium goldens' records (tests/golden/debezium/, the tables of
 * its scenario/setup.sql), written compactly; the relations below describe those tables as
 * pgoutput's Relation message and capture's catalog query do.
 *
 * Then the change builder: keys and values wrapped as {"schema":...,"payload":...} with the
 * payload unchanged, tombstones still null, truncate keys with their own schema.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "dualsync/changes.h"
#include "dualsync/connect_schema.h"
#include "dualsync/typemap.h"
#include "ds_test.h"

/* numeric(p, s) as atttypmod. */
#define NUMERIC_TYPMOD(p, s) ((((p) << 16) | (s)) + 4)

/* OIDs of the scenario's own types: any value above the built-in range does. */
#define OID_GOLDEN_MOOD       16500
#define OID_GOLDEN_MOOD_ARRAY 16499
#define OID_GOLDEN_POSITIVE   16510

/* ---- the scenario's tables ------------------------------------------------------------- */

static ds_column_t types_cols[] = {
    {"id", DS_OID_INT4, -1, true},
    {"c_smallint", DS_OID_INT2, -1, true},
    {"c_integer", DS_OID_INT4, -1, true},
    {"c_bigint", DS_OID_INT8, -1, true},
    {"c_oid", DS_OID_OID, -1, true},
    {"c_real", DS_OID_FLOAT4, -1, true},
    {"c_double", DS_OID_FLOAT8, -1, true},
    {"c_numeric", DS_OID_NUMERIC, NUMERIC_TYPMOD(12, 3), true},
    {"c_numeric_free", DS_OID_NUMERIC, -1, true},
    {"c_money", DS_OID_MONEY, -1, true},
    {"c_bool", DS_OID_BOOL, -1, true},
    {"c_bytea", DS_OID_BYTEA, -1, true},
    {"c_json", DS_OID_JSON, -1, true},
    {"c_jsonb", DS_OID_JSONB, -1, true},
    {"c_date", DS_OID_DATE, -1, true},
    {"c_time", DS_OID_TIME, -1, true},
    {"c_time3", DS_OID_TIME, 3, true},
    {"c_timetz", DS_OID_TIMETZ, -1, true},
    {"c_timestamp", DS_OID_TIMESTAMP, -1, true},
    {"c_timestamp3", DS_OID_TIMESTAMP, 3, true},
    {"c_timestamp0", DS_OID_TIMESTAMP, 0, true},
    {"c_timestamptz", DS_OID_TIMESTAMPTZ, -1, true},
    {"c_timestamptz3", DS_OID_TIMESTAMPTZ, 3, true},
    {"c_interval", DS_OID_INTERVAL, -1, true},
    {"c_uuid", DS_OID_UUID, -1, true},
    {"c_text", DS_OID_TEXT, -1, true},
    {"c_varchar", DS_OID_VARCHAR, 24, true},
    {"c_char", DS_OID_BPCHAR, 9, true},
    {"c_qchar", DS_OID_CHAR, -1, true},
    {"c_name", DS_OID_NAME, -1, true},
    {"c_enum", OID_GOLDEN_MOOD, -1, true},
    {"c_domain", OID_GOLDEN_POSITIVE, -1, true},
};
static ds_relation_t golden_types = {16600,      "public", "golden_types", DS_REPLIDENT_FULL, 32,
                                     types_cols, 1};

static ds_column_t arrays_cols[] = {
    {"id", DS_OID_INT4, -1, true},
    {"a_int2", 1005, -1, false},
    {"a_int4", 1007, -1, false},
    {"a_int8", 1016, -1, false},
    {"a_oid", 1028, -1, false},
    {"a_float4", 1021, -1, false},
    {"a_float8", 1022, -1, false},
    {"a_numeric", 1231, -1, false},
    {"a_bool", 1000, -1, false},
    {"a_text", 1009, -1, false},
    {"a_varchar", 1015, 14, false},
    {"a_bpchar", 1014, 7, false},
    {"a_name", 1003, -1, false},
    {"a_qchar", 1002, -1, false},
    {"a_uuid", 2951, -1, false},
    {"a_date", 1182, -1, false},
    {"a_time", 1183, -1, false},
    {"a_timestamp", 1115, -1, false},
    {"a_timestamptz", 1185, -1, false},
    {"a_interval", 1187, -1, false},
    {"a_json", 199, -1, false},
    {"a_jsonb", 3807, -1, false},
    {"a_bytea", 1001, -1, false},
    {"a_int4_2d", 1007, -1, false},
    {"a_enum", OID_GOLDEN_MOOD_ARRAY, -1, false},
};
static ds_relation_t golden_arrays = {
    16610, "public", "golden_arrays", DS_REPLIDENT_DEFAULT, 25, arrays_cols, 1};

static ds_column_t default_cols[] = {
    {"id", DS_OID_INT4, -1, true}, {"v", DS_OID_TEXT, -1, false}, {"n", DS_OID_INT8, -1, false}};
static ds_relation_t golden_default = {
    16620, "public", "golden_default", DS_REPLIDENT_DEFAULT, 3, default_cols, 1};

static ds_column_t nopk_cols[] = {{"a", DS_OID_INT4, -1, true}, {"b", DS_OID_TEXT, -1, true}};
static ds_relation_t golden_nopk = {16630,     "public", "golden_nopk", DS_REPLIDENT_FULL, 2,
                                    nopk_cols, 1};

static ds_column_t toast_cols[] = {
    {"id", DS_OID_INT4, -1, true}, {"big", DS_OID_TEXT, -1, false}, {"n", DS_OID_INT4, -1, false}};
static ds_relation_t golden_toast = {16640,      "public", "golden_toast", DS_REPLIDENT_DEFAULT, 3,
                                     toast_cols, 1};

/* What capture's catalog query returns for the columns that need more than pgoutput says: the
 * primary keys are NOT NULL, c_domain is an integer, and the enums have labels. */
static ds_connect_column_t catalog_id = {"id", true, DS_OID_INT4, -1, NULL, false, NULL};
static ds_connect_column_t catalog_enum = {"c_enum", false, OID_GOLDEN_MOOD, -1, "sad,ok,happy",
                                           false,    NULL};
static ds_connect_column_t catalog_domain = {"c_domain", false, DS_OID_INT4, -1, NULL, false, NULL};
static ds_connect_column_t catalog_enum_array = {
    "a_enum", false, OID_GOLDEN_MOOD_ARRAY, -1, "sad,ok,happy", true, NULL};

/* Per column of rel: the catalog entries above by name, NULL for the others (which then are
 * optional and typed from the Relation message alone). */
static const ds_connect_column_t **catalog_for(const ds_relation_t *rel)
{
    static const ds_connect_column_t *info[64];

    for (int i = 0; i < rel->ncolumns; i++) {
        const char *name = rel->columns[i].name;

        info[i] = strcmp(name, "id") == 0         ? &catalog_id
                  : strcmp(name, "c_enum") == 0   ? &catalog_enum
                  : strcmp(name, "c_domain") == 0 ? &catalog_domain
                  : strcmp(name, "a_enum") == 0   ? &catalog_enum_array
                                                  : NULL;
    }
    return info;
}

/* ---- the settings of the goldens (tests/golden/debezium/combinations.json) ------------- */

typedef struct combination {
    const char *name;
    ds_time_precision_t time;
    ds_decimal_handling_t decimal;
    ds_binary_handling_t binary;
    ds_interval_handling_t interval;
} combination_t;

static const combination_t combinations[] = {
    {"debezium-defaults", DS_TIME_ADAPTIVE, DS_DECIMAL_PRECISE, DS_BINARY_BYTES,
     DS_INTERVAL_NUMERIC},
    {"dualsync-defaults", DS_TIME_ISOSTRING, DS_DECIMAL_STRING, DS_BINARY_BYTES,
     DS_INTERVAL_STRING},
    {"connect-double-hex-numeric-txmeta", DS_TIME_CONNECT, DS_DECIMAL_DOUBLE, DS_BINARY_HEX,
     DS_INTERVAL_NUMERIC},
    {"adaptivemicro-precise-base64url-string-notombstones", DS_TIME_ADAPTIVE_TIME_MICROSECONDS,
     DS_DECIMAL_PRECISE, DS_BINARY_BASE64_URL_SAFE, DS_INTERVAL_STRING},
    {"microseconds-string-base64-numeric", DS_TIME_MICROSECONDS, DS_DECIMAL_STRING,
     DS_BINARY_BASE64, DS_INTERVAL_NUMERIC},
};

static ds_value_format_t format_of(const combination_t *c, ds_message_format_t message_format)
{
    ds_value_format_t f;

    ds_value_format_init(&f);

    f.debezium = true;
    f.time_precision = c->time;
    f.decimal_handling = c->decimal;
    f.binary_handling = c->binary;
    f.interval_handling = c->interval;
    f.message_format = message_format;
    return f;
}

/* ---- comparing with the expected files -------------------------------------------------- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *data;
    long len;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)len + 1);
    if (data && fread(data, 1, (size_t)len, f) != (size_t)len) {
        free(data);
        data = NULL;
    }
    if (data) {
        data[len] = '\0';
        while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
            data[--len] = '\0';
    }
    fclose(f);
    return data;
}

/* Compares got with tests/golden/connect_schema/<dir>/<file>; says where they part. */
static void check_golden(const char *dir, const char *file, const char *got)
{
    const char *root = getenv("DS_GOLDEN_DIR");
    char path[1024];
    char *want;
    size_t at = 0;

    ds_test_checks++;
    snprintf(path, sizeof(path), "%s/connect_schema/%s/%s", root ? root : "tests/golden", dir,
             file);
    want = read_file(path);
    if (!want) {
        ds_test_failures++;
        fprintf(stderr, "%s: cannot read it\n", path);
        return;
    }
    if (strcmp(want, got) != 0) {
        while (want[at] && want[at] == got[at])
            at++;
        ds_test_failures++;
        fprintf(stderr, "%s: differs at byte %zu:\n  want ...%.160s\n  got  ...%.160s\n", path, at,
                want + (at > 60 ? at - 60 : 0), got + (at > 60 ? at - 60 : 0));
    }
    free(want);
}

static bool *primary_key_mask(const ds_relation_t *rel)
{
    static bool mask[64];

    for (int i = 0; i < rel->ncolumns; i++)
        mask[i] = strcmp(rel->columns[i].name, "id") == 0;
    return mask;
}

static void check_table(const combination_t *c, const ds_relation_t *rel, bool keyed)
{
    ds_value_format_t f = format_of(c, DS_MESSAGE_JSON_WITH_SCHEMA);
    const ds_connect_column_t **info = catalog_for(rel);
    ds_buf_t out = DS_BUF_INIT;
    char topic[128], file[128];

    snprintf(topic, sizeof(topic), "golden.%s.%s", rel->schema, rel->table);
    ds_connect_schema_append_envelope(&out, topic, rel, info, NULL, &f);
    snprintf(file, sizeof(file), "%s.value.json", rel->table);
    check_golden(c->name, file, out.data);
    if (keyed) {
        ds_buf_reset(&out);
        ds_connect_schema_append_key(&out, topic, rel, primary_key_mask(rel), info, NULL, &f);
        snprintf(file, sizeof(file), "%s.key.json", rel->table);
        check_golden(c->name, file, out.data);
    }
    ds_buf_free(&out);
}

/* ---- the schemas ------------------------------------------------------------------------ */

static void test_every_type_as_debezium_describes_it_under_each_setting(void)
{
    for (size_t k = 0; k < sizeof(combinations) / sizeof(combinations[0]); k++)
        check_table(&combinations[k], &golden_types, true);
}

static void test_arrays_and_the_arrays_debezium_leaves_out(void)
{
    for (size_t k = 0; k < sizeof(combinations) / sizeof(combinations[0]); k++)
        check_table(&combinations[k], &golden_arrays, true);
}

static void test_tables_of_each_replica_identity(void)
{
    for (size_t k = 0; k < sizeof(combinations) / sizeof(combinations[0]); k++) {
        check_table(&combinations[k], &golden_default, true);
        check_table(&combinations[k], &golden_toast, true);
        check_table(&combinations[k], &golden_nopk, false);
    }
}

static void test_columns_debezium_gives_no_field(void)
{
    const ds_connect_column_t **info = catalog_for(&golden_arrays);

    for (int i = 0; i < golden_arrays.ncolumns; i++) {
        const char *name = golden_arrays.columns[i].name;
        bool left_out = strcmp(name, "a_name") == 0 || strcmp(name, "a_interval") == 0;

        DS_CHECK(ds_connect_schema_has_field(&golden_arrays, i, info[i]) == !left_out);
    }
}

static void test_transaction_topic_schemas(void)
{
    /* The goldens' transaction topic records, with the schema of each (json_object_get of a
     * parsed record equals these texts once parsed). */
    json_error_t err;
    json_t *key = json_loads(DS_CONNECT_TRANSACTION_KEY_SCHEMA, 0, &err);
    json_t *value = json_loads(DS_CONNECT_TRANSACTION_VALUE_SCHEMA, 0, &err);

    DS_CHECK(key != NULL);
    DS_CHECK(value != NULL);
    check_golden("connect-double-hex-numeric-txmeta", "transaction.key.json",
                 DS_CONNECT_TRANSACTION_KEY_SCHEMA);
    check_golden("connect-double-hex-numeric-txmeta", "transaction.value.json",
                 DS_CONNECT_TRANSACTION_VALUE_SCHEMA);
    json_decref(key);
    json_decref(value);
}

/* ---- the change builder ----------------------------------------------------------------- */

typedef struct record {
    char *key;
    char *value;
    char op;
} record_t;

typedef struct sink {
    record_t recs[8];
    int n;
} sink_t;

static bool collect(void *ctx, const ds_change_record_t *rec, char *errstr, size_t errstr_size)
{
    sink_t *s = ctx;

    (void)errstr;
    (void)errstr_size;
    if (s->n == 8)
        return false;
    s->recs[s->n].key = rec->key ? strndup(rec->key, rec->key_len) : NULL;
    s->recs[s->n].value = rec->value ? strndup(rec->value, rec->value_len) : NULL;
    s->recs[s->n].op = rec->op;
    s->n++;
    return true;
}

static void sink_free(sink_t *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->recs[i].key);
        free(s->recs[i].value);
    }
    s->n = 0;
}

static const ds_connect_column_t *catalog_columns(void *ctx, const char *schema, const char *table,
                                                  int *ncolumns)
{
    static ds_connect_column_t cols[1];

    (void)schema;
    (void)table;
    (*(int *)ctx)++;
    cols[0] = catalog_id;
    *ncolumns = 1;
    return cols;
}

/* Runs Begin, the message, Commit through a builder of @p format. */
static void run(ds_changes_t *ch, const ds_pgoutput_msg_t *msg, sink_t *s)
{
    ds_pgoutput_msg_t begin = {.type = DS_PGOUTPUT_BEGIN}, commit = {.type = DS_PGOUTPUT_COMMIT};
    char err[256] = "";

    begin.u.begin.xid = 700;
    begin.u.begin.commit_time = INT64_C(760010400123456);
    commit.u.commit.end_lsn = 0x2000;
    DS_CHECK(ds_changes_handle(ch, &begin, 0x1000, 0, collect, s, err, sizeof(err)));
    DS_CHECK(ds_changes_handle(ch, msg, 0x1000, INT64_C(1706695201999999), collect, s, err,
                               sizeof(err)));
    if (err[0])
        fprintf(stderr, "error: %s\n", err);
    DS_CHECK(ds_changes_handle(ch, &commit, 0x1000, 0, collect, s, err, sizeof(err)));
}

static ds_changes_t *builder(ds_message_format_t message_format, int *catalog_calls)
{
    static ds_value_format_t f;
    ds_changes_options_t opt = {.topic_prefix = "golden", .db = "db", .version = "1"};

    f = format_of(&combinations[0], message_format);
    opt.tombstones_on_delete = true;
    opt.value_format = &f;
    opt.columns = catalog_columns;
    opt.columns_ctx = catalog_calls;
    return ds_changes_new(&opt);
}

/* The member @p name of the JSON text @p text, dumped compactly (NULL when absent). */
static char *member(const char *text, const char *name)
{
    json_error_t err;
    json_t *root = json_loads(text, 0, &err);
    json_t *m = root ? json_object_get(root, name) : NULL;
    char *out = m ? json_dumps(m, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER) : NULL;

    json_decref(root);
    return out;
}

static char *compact(const char *text)
{
    json_error_t err;
    json_t *root = json_loads(text, JSON_DECODE_ANY, &err);
    char *out =
        root ? json_dumps(root, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER) : NULL;

    json_decref(root);
    return out;
}

static void test_records_wrap_the_schemaless_payload(void)
{
    ds_value_t vals[] = {
        {DS_VALUE_TEXT, "4", 1}, {DS_VALUE_TEXT, "four", 4}, {DS_VALUE_TEXT, "40", 2}};
    ds_pgoutput_msg_t ins = {.type = DS_PGOUTPUT_INSERT};
    sink_t plain = {.n = 0}, wrapped = {.n = 0};
    int calls = 0;
    ds_changes_t *a = builder(DS_MESSAGE_JSON, &calls);
    ds_changes_t *b = builder(DS_MESSAGE_JSON_WITH_SCHEMA, &calls);
    ds_buf_t schema = DS_BUF_INIT;
    ds_value_format_t f = format_of(&combinations[0], DS_MESSAGE_JSON_WITH_SCHEMA);
    bool mask[3] = {true, false, false};
    const ds_connect_column_t *info[3] = {&catalog_id, NULL, NULL};

    ins.u.insert.rel = &golden_default;
    ins.u.insert.newtup.nvalues = 3;
    ins.u.insert.newtup.values = vals;
    run(a, &ins, &plain);
    run(b, &ins, &wrapped);
    DS_CHECK_INT(plain.n, 1);
    DS_CHECK_INT(wrapped.n, 1);
    if (plain.n == 1 && wrapped.n == 1) {
        char *key_payload = member(wrapped.recs[0].key, "payload");
        char *key_schema = member(wrapped.recs[0].key, "schema");
        char *value_payload = member(wrapped.recs[0].value, "payload");
        char *value_schema = member(wrapped.recs[0].value, "schema");
        char *plain_key = compact(plain.recs[0].key);
        char *plain_value = compact(plain.recs[0].value);
        char *want_key_schema, *want_value_schema;

        DS_CHECK_STR(key_payload, plain_key);
        DS_CHECK_STR(value_payload, plain_value);
        ds_connect_schema_append_key(&schema, "golden.public.golden_default", &golden_default, mask,
                                     info, NULL, &f);
        want_key_schema = compact(schema.data);
        DS_CHECK_STR(key_schema, want_key_schema);
        ds_buf_reset(&schema);
        ds_connect_schema_append_envelope(&schema, "golden.public.golden_default", &golden_default,
                                          info, NULL, &f);
        want_value_schema = compact(schema.data);
        DS_CHECK_STR(value_schema, want_value_schema);
        free(key_payload);
        free(key_schema);
        free(value_payload);
        free(value_schema);
        free(plain_key);
        free(plain_value);
        free(want_key_schema);
        free(want_value_schema);
    }
    ds_buf_free(&schema);
    sink_free(&plain);
    sink_free(&wrapped);
    ds_changes_free(a);
    ds_changes_free(b);
}

static void test_tombstone_value_stays_null_and_truncate_key_has_its_schema(void)
{
    ds_value_t vals[] = {
        {DS_VALUE_TEXT, "3", 1}, {DS_VALUE_NULL, NULL, 0}, {DS_VALUE_NULL, NULL, 0}};
    ds_pgoutput_msg_t del = {.type = DS_PGOUTPUT_DELETE}, trunc = {.type = DS_PGOUTPUT_TRUNCATE};
    const ds_relation_t *rels[1] = {&golden_default};
    sink_t s = {.n = 0};
    int calls = 0;
    ds_changes_t *ch = builder(DS_MESSAGE_JSON_WITH_SCHEMA, &calls);

    del.u.delete.rel = &golden_default;
    del.u.delete.oldtup.nvalues = 3;
    del.u.delete.oldtup.values = vals;
    run(ch, &del, &s);
    DS_CHECK_INT(s.n, 2);
    if (s.n == 2) {
        char *payload = member(s.recs[1].key, "payload");

        DS_CHECK(s.recs[1].value == NULL);
        DS_CHECK_INT(s.recs[1].op, 0);
        DS_CHECK_STR(payload, "{\"id\":3}");
        free(payload);
    }
    sink_free(&s);

    trunc.u.truncate.nrelations = 1;
    trunc.u.truncate.rels = rels;
    run(ch, &trunc, &s);
    DS_CHECK_INT(s.n, 1);
    if (s.n == 1) {
        char *schema = member(s.recs[0].key, "schema");
        char *payload = member(s.recs[0].key, "payload");
        char *want = compact(DS_CONNECT_TRUNCATE_KEY_SCHEMA);

        DS_CHECK_STR(schema, want);
        DS_CHECK_STR(payload, "{\"__dualsync_truncate\":\"public.golden_default\"}");
        free(schema);
        free(payload);
        free(want);
    }
    sink_free(&s);
    ds_changes_free(ch);
}

static void test_schema_is_written_once_per_relation_and_again_after_a_relation_message(void)
{
    ds_value_t vals[] = {
        {DS_VALUE_TEXT, "5", 1}, {DS_VALUE_NULL, NULL, 0}, {DS_VALUE_NULL, NULL, 0}};
    ds_pgoutput_msg_t ins = {.type = DS_PGOUTPUT_INSERT}, relmsg = {.type = DS_PGOUTPUT_RELATION};
    sink_t s = {.n = 0};
    int calls = 0;
    ds_changes_t *ch = builder(DS_MESSAGE_JSON_WITH_SCHEMA, &calls);

    ins.u.insert.rel = &golden_default;
    ins.u.insert.newtup.nvalues = 3;
    ins.u.insert.newtup.values = vals;
    for (int i = 0; i < 3; i++) {
        run(ch, &ins, &s);
        sink_free(&s);
    }
    DS_CHECK_INT(calls, 1);
    relmsg.u.relation.rel = &golden_default;
    run(ch, &relmsg, &s);
    run(ch, &ins, &s);
    sink_free(&s);
    DS_CHECK_INT(calls, 2);

    /* Schemaless messages never ask the catalog. */
    ds_changes_free(ch);
    calls = 0;
    ch = builder(DS_MESSAGE_JSON, &calls);
    run(ch, &ins, &s);
    sink_free(&s);
    DS_CHECK_INT(calls, 0);
    ds_changes_free(ch);
}

/* public.notnulls (id int4 PK, n int8 NOT NULL, t text NOT NULL, d numeric(6,2) NOT NULL,
 * ts timestamptz NOT NULL, o text), REPLICA IDENTITY DEFAULT. */
static ds_column_t notnull_cols[] = {
    {"id", DS_OID_INT4, -1, true},         {"n", DS_OID_INT8, -1, false},
    {"t", DS_OID_TEXT, -1, false},         {"d", DS_OID_NUMERIC, NUMERIC_TYPMOD(6, 2), false},
    {"ts", DS_OID_TIMESTAMPTZ, -1, false}, {"o", DS_OID_TEXT, -1, false}};
static ds_relation_t notnulls = {16650, "public",     "notnulls", DS_REPLIDENT_DEFAULT,
                                 6,     notnull_cols, 1};

static const ds_connect_column_t *notnull_catalog(void *ctx, const char *schema, const char *table,
                                                  int *ncolumns)
{
    static ds_connect_column_t cols[] = {
        {"id", true, DS_OID_INT4, -1, NULL, false, NULL},
        {"n", true, DS_OID_INT8, -1, NULL, false, NULL},
        {"t", true, DS_OID_TEXT, -1, NULL, false, NULL},
        {"d", true, DS_OID_NUMERIC, NUMERIC_TYPMOD(6, 2), NULL, false, NULL},
        {"ts", true, DS_OID_TIMESTAMPTZ, -1, NULL, false, NULL},
        {"o", false, DS_OID_TEXT, -1, NULL, false, NULL},
    };

    (void)ctx;
    (void)schema;
    (void)table;
    *ncolumns = 6;
    return cols;
}

/* The "before" (or "after") member of a record's payload, compactly. */
static char *payload_member(const char *value, const char *name)
{
    char *payload = member(value, "payload");
    json_error_t err;
    json_t *p = payload ? json_loads(payload, 0, &err) : NULL;
    char *out = p ? json_dumps(json_object_get(p, name), JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

    json_decref(p);
    free(payload);
    return out;
}

static void test_delete_of_old_key_writes_debeziums_fallback_for_not_null_columns(void)
{
    /* The delete's old key carries the key only; the insert carries, as values, what Debezium
     * falls back to for the other columns: 0, "", 0 at the column's scale, the epoch. Written
     * under the same settings they must read the same, and the optional column stays null. */
    ds_value_t old_key[] = {{DS_VALUE_TEXT, "7", 1},  {DS_VALUE_NULL, NULL, 0},
                            {DS_VALUE_NULL, NULL, 0}, {DS_VALUE_NULL, NULL, 0},
                            {DS_VALUE_NULL, NULL, 0}, {DS_VALUE_NULL, NULL, 0}};
    ds_value_t fallbacks[] = {{DS_VALUE_TEXT, "7", 1},
                              {DS_VALUE_TEXT, "0", 1},
                              {DS_VALUE_TEXT, "", 0},
                              {DS_VALUE_TEXT, "0.00", 4},
                              {DS_VALUE_TEXT, "1970-01-01 00:00:00+00", 22},
                              {DS_VALUE_NULL, NULL, 0}};
    ds_pgoutput_msg_t del = {.type = DS_PGOUTPUT_DELETE}, ins = {.type = DS_PGOUTPUT_INSERT};
    static ds_value_format_t f;
    ds_changes_options_t opt = {.topic_prefix = "golden", .db = "db", .version = "1"};
    sink_t s = {.n = 0};
    ds_changes_t *ch;

    for (size_t k = 0; k < sizeof(combinations) / sizeof(combinations[0]); k++) {
        f = format_of(&combinations[k], DS_MESSAGE_JSON_WITH_SCHEMA);
        opt.value_format = &f;
        opt.columns = notnull_catalog;
        ch = ds_changes_new(&opt);
        del.u.delete.rel = &notnulls;
        del.u.delete.oldtup.nvalues = 6;
        del.u.delete.oldtup.values = old_key;
        ins.u.insert.rel = &notnulls;
        ins.u.insert.newtup.nvalues = 6;
        ins.u.insert.newtup.values = fallbacks;
        run(ch, &del, &s);
        run(ch, &ins, &s);
        DS_CHECK_INT(s.n, 2);
        if (s.n == 2) {
            char *before = payload_member(s.recs[0].value, "before");
            char *after = payload_member(s.recs[1].value, "after");

            DS_CHECK_STR(before, after);
            DS_CHECK(before && strstr(before, "\"o\":null") != NULL);
            free(before);
            free(after);
        }
        sink_free(&s);
        ds_changes_free(ch);
    }
}

/* The default text Debezium's PostgresDefaultValueConverter would take from @p expr for a
 * column of type @p oid / @p typmod; "(none)" when it has none. */
static const char *default_text(uint32_t oid, int32_t typmod, const char *expr, bool precise)
{
    static char out[128];
    ds_column_t col = {"c", oid, typmod, false};
    ds_relation_t rel = {1, "public", "t", DS_REPLIDENT_DEFAULT, 1, &col, 1};
    ds_connect_column_t info = {"c", false, oid, typmod, NULL, false, (char *)expr};
    ds_value_format_t f;
    ds_buf_t buf = DS_BUF_INIT;

    ds_value_format_init(&f);
    f.debezium = true;
    f.time_precision = DS_TIME_ISOSTRING;
    f.interval_handling = DS_INTERVAL_STRING;
    f.decimal_handling = precise ? DS_DECIMAL_PRECISE : DS_DECIMAL_STRING;
    if (!ds_connect_schema_append_default_text(&buf, &rel, 0, &info, &f))
        snprintf(out, sizeof(out), "(none)");
    else
        snprintf(out, sizeof(out), "%s", buf.data ? buf.data : "");
    ds_buf_free(&buf);
    return out;
}

static void test_defaults_read_as_debezium_reads_them(void)
{
    /* Literals, as pg_get_expr() writes them under DateStyle ISO, IntervalStyle iso_8601. */
    DS_CHECK_STR(default_text(DS_OID_INT4, -1, "42", false), "42");
    DS_CHECK_STR(default_text(DS_OID_INT8, -1, "'9223372036854775807'::bigint", false),
                 "9223372036854775807");
    DS_CHECK_STR(default_text(DS_OID_TEXT, -1, "'hello'::text", false), "hello");
    DS_CHECK_STR(default_text(DS_OID_VARCHAR, 14, "'it''s'::character varying", false), "it");
    DS_CHECK_STR(default_text(DS_OID_BOOL, -1, "true", false), "t");
    DS_CHECK_STR(default_text(DS_OID_BOOL, -1, "false", false), "f");
    DS_CHECK_STR(default_text(DS_OID_NUMERIC, NUMERIC_TYPMOD(6, 2), "12.5", false), "12.50");
    DS_CHECK_STR(default_text(DS_OID_NUMERIC, NUMERIC_TYPMOD(6, 2), "7", false), "7.00");
    DS_CHECK_STR(default_text(DS_OID_NUMERIC, -1, "3.25", false), "3.25");
    DS_CHECK_STR(default_text(DS_OID_DATE, -1, "'2024-01-31'::date", false), "2024-01-31");
    DS_CHECK_STR(default_text(DS_OID_TIMESTAMPTZ, -1,
                              "'2024-01-31 08:00:00+00'::timestamp with time zone", false),
                 "2024-01-31 08:00:00+00");
    DS_CHECK_STR(default_text(DS_OID_INTERVAL, -1, "'PT1H'::interval", false), "PT1H");
    /* Generated values: the type's placeholder. */
    DS_CHECK_STR(default_text(DS_OID_INT4, -1, "nextval('t_id_seq'::regclass)", false), "0");
    DS_CHECK_STR(default_text(DS_OID_TIMESTAMPTZ, -1, "now()", false), "1970-01-01 00:00:00+00");
    DS_CHECK_STR(default_text(DS_OID_TIMESTAMP, -1, "CURRENT_TIMESTAMP", false),
                 "1970-01-01 00:00:00");
    DS_CHECK_STR(default_text(DS_OID_DATE, -1, "CURRENT_DATE", false), "1970-01-01");
    DS_CHECK_STR(default_text(DS_OID_UUID, -1, "gen_random_uuid()", false),
                 "00000000-0000-0000-0000-000000000000");
    /* None: an expression, a typed NULL, an unconstrained numeric as a struct, a type with
     * no parser, an array. */
    DS_CHECK_STR(default_text(DS_OID_INT4, -1, "(1 + 2)", false), "(none)");
    DS_CHECK_STR(default_text(DS_OID_TEXT, -1, "NULL::text", false), "(none)");
    DS_CHECK_STR(default_text(DS_OID_NUMERIC, -1, "3.25", true), "(none)");
    DS_CHECK_STR(default_text(DS_OID_BYTEA, -1, "'\\x00'::bytea", false), "(none)");
    DS_CHECK_STR(default_text(1007, -1, "'{1,2}'::integer[]", false), "(none)");
}

int main(void)
{
    DS_RUN(test_every_type_as_debezium_describes_it_under_each_setting);
    DS_RUN(test_arrays_and_the_arrays_debezium_leaves_out);
    DS_RUN(test_tables_of_each_replica_identity);
    DS_RUN(test_columns_debezium_gives_no_field);
    DS_RUN(test_transaction_topic_schemas);
    DS_RUN(test_records_wrap_the_schemaless_payload);
    DS_RUN(test_tombstone_value_stays_null_and_truncate_key_has_its_schema);
    DS_RUN(test_schema_is_written_once_per_relation_and_again_after_a_relation_message);
    DS_RUN(test_delete_of_old_key_writes_debeziums_fallback_for_not_null_columns);
    DS_RUN(test_defaults_read_as_debezium_reads_them);
    return ds_test_report();
}
