/*
 * test_changes.c: decoded pgoutput messages -> Kafka records, with Debezium's rules for
 * deletes, tombstones, key changes, truncates and skipped origins. Messages are built by hand
 * here; the decoder has its own tests.
 */
#include <jansson.h>
#include <stdlib.h>

#include "dualsync/changes.h"
#include "dualsync/typemap.h"
#include "ds_test.h"

#define TEXT(s)                                                                                    \
    {                                                                                              \
        DS_VALUE_TEXT, (s), sizeof(s) - 1                                                          \
    }
#define NULLV                                                                                      \
    {                                                                                              \
        DS_VALUE_NULL, NULL, 0                                                                     \
    }
#define TOAST                                                                                      \
    {                                                                                              \
        DS_VALUE_UNCHANGED_TOAST, NULL, 0                                                          \
    }

/* Unix 2024-01-31T10:00:00.123456Z as PostgreSQL-epoch microseconds. */
#define COMMIT_TIME_PG INT64_C(760010400123456)
#define COMMIT_TS_MS   "1706695200123"
#define NOW_US         INT64_C(1706695201999999)
#define LSN1           ((ds_lsn_t)0x16B3748) /* 23803720 */

/* public.users (id int4, name text), REPLICA IDENTITY DEFAULT with id the primary key. */
static ds_column_t user_cols[] = {{"id", DS_OID_INT4, -1, true}, {"name", DS_OID_TEXT, -1, false}};
static ds_relation_t users = {16384, "public", "users", DS_REPLIDENT_DEFAULT, 2, user_cols, 1};

/* public.accounts (id int4, owner text), REPLICA IDENTITY FULL, primary key id. */
static ds_column_t account_cols[] = {{"id", DS_OID_INT4, -1, true},
                                     {"owner", DS_OID_TEXT, -1, true}};
static ds_relation_t accounts = {16400, "public",     "accounts", DS_REPLIDENT_FULL,
                                 2,     account_cols, 1};

/* public.logs (msg text, n int4), REPLICA IDENTITY FULL, no primary key. */
static ds_column_t log_cols[] = {{"msg", DS_OID_TEXT, -1, true}, {"n", DS_OID_INT4, -1, true}};
static ds_relation_t logs = {16410, "public", "logs", DS_REPLIDENT_FULL, 2, log_cols, 1};

/* public.events (payload text), REPLICA IDENTITY NOTHING: inserts only, no key. */
static ds_column_t event_cols[] = {{"payload", DS_OID_TEXT, -1, false}};
static ds_relation_t events = {16420, "public", "events", DS_REPLIDENT_NOTHING, 1, event_cols, 1};

/* public.broken (id int4, v text), FULL, whose "primary key" names a column not published. */
static ds_column_t broken_cols[] = {{"id", DS_OID_INT4, -1, true}, {"v", DS_OID_TEXT, -1, true}};
static ds_relation_t broken = {16430, "public", "broken", DS_REPLIDENT_FULL, 2, broken_cols, 1};

/* ---- primary key callback ---------------------------------------------------------------- */

static int pk_calls;

static const char *const *primary_key(void *ctx, const char *schema, const char *table)
{
    static const char *const accounts_pk[] = {"id", NULL};
    static const char *const broken_pk[] = {"id", "missing_col", NULL};

    DS_CHECK(ctx == &pk_calls);
    pk_calls++;
    if (strcmp(schema, "public") == 0 && strcmp(table, "accounts") == 0)
        return accounts_pk;
    if (strcmp(schema, "public") == 0 && strcmp(table, "broken") == 0)
        return broken_pk;
    return NULL;
}

/* ---- the record sink ------------------------------------------------------------------- */

typedef struct record {
    char *topic;
    char *key;   /* NULL when the record has no key */
    char *value; /* NULL for a tombstone */
    char op;
    ds_lsn_t lsn;
    bool is_transaction;
    char *headers; /* "name=value" lines, NULL when the record has none */
} record_t;

static record_t recs[32];
static int nrecs;
static bool fail_emit;

static bool json_valid(const char *text, size_t len)
{
    json_error_t err;
    json_t *j = json_loadb(text, len, 0, &err);

    if (!j) {
        fprintf(stderr, "invalid JSON (%s): %.*s\n", err.text, (int)len, text);
        return false;
    }
    json_decref(j);
    return true;
}

static bool sink(void *ctx, const ds_change_record_t *rec, char *errstr, size_t errstr_size)
{
    record_t *r;

    if (fail_emit)
        return ds_fail(errstr, errstr_size, "broker said no");
    if (nrecs == (int)DS_ARRAY_LEN(recs))
        return ds_fail(errstr, errstr_size, "test sink full");
    r = &recs[nrecs++];
    r->topic = strdup(rec->topic);
    r->key = rec->key ? strndup(rec->key, rec->key_len) : NULL;
    r->value = rec->value ? strndup(rec->value, rec->value_len) : NULL;
    r->op = rec->op;
    r->lsn = rec->lsn;
    r->is_transaction = rec->is_transaction;
    r->headers = NULL;
    if (rec->nheaders > 0) {
        ds_buf_t h = DS_BUF_INIT;

        for (int i = 0; i < rec->nheaders; i++) {
            ds_buf_appendf(&h, "%s%s=", i ? "\n" : "", rec->headers[i].name);
            ds_buf_append(&h, rec->headers[i].value, rec->headers[i].value_len);
        }
        r->headers = h.data;
    }
    DS_CHECK(ctx == recs);
    DS_CHECK(rec->key == NULL || strlen(r->key) == rec->key_len);
    if (rec->key)
        DS_CHECK(json_valid(rec->key, rec->key_len));
    if (rec->value)
        DS_CHECK(json_valid(rec->value, rec->value_len));
    return true;
}

static void clear_records(void)
{
    for (int i = 0; i < nrecs; i++) {
        free(recs[i].topic);
        free(recs[i].key);
        free(recs[i].value);
        free(recs[i].headers);
    }
    nrecs = 0;
    fail_emit = false;
}

/* ---- messages ------------------------------------------------------------------------ */

static ds_pgoutput_msg_t begin_msg(uint32_t xid)
{
    ds_pgoutput_msg_t m = {.type = DS_PGOUTPUT_BEGIN};

    m.u.begin.xid = xid;
    m.u.begin.commit_time = COMMIT_TIME_PG;
    m.u.begin.final_lsn = 0x2000000;
    return m;
}

static ds_pgoutput_msg_t commit_msg(ds_lsn_t end_lsn)
{
    ds_pgoutput_msg_t m = {.type = DS_PGOUTPUT_COMMIT};

    m.u.commit.commit_lsn = end_lsn - 8;
    m.u.commit.end_lsn = end_lsn;
    m.u.commit.commit_time = COMMIT_TIME_PG;
    return m;
}

static ds_pgoutput_msg_t origin_msg(const char *name)
{
    ds_pgoutput_msg_t m = {.type = DS_PGOUTPUT_ORIGIN};

    m.u.origin.name = name;
    m.u.origin.commit_lsn = 0x99;
    return m;
}

static ds_pgoutput_msg_t relation_msg(const ds_relation_t *rel)
{
    ds_pgoutput_msg_t m = {.type = DS_PGOUTPUT_RELATION};

    m.u.relation.rel = rel;
    return m;
}

static ds_pgoutput_msg_t insert_msg(const ds_relation_t *rel, ds_value_t *vals)
{
    ds_pgoutput_msg_t m = {.type = DS_PGOUTPUT_INSERT};

    m.u.insert.rel = rel;
    m.u.insert.newtup = (ds_tuple_t){rel->ncolumns, vals};
    return m;
}

static ds_pgoutput_msg_t update_msg(const ds_relation_t *rel, char old_kind, ds_value_t *oldvals,
                                    ds_value_t *newvals)
{
    ds_pgoutput_msg_t m = {.type = DS_PGOUTPUT_UPDATE};

    m.u.update.rel = rel;
    m.u.update.old_kind = old_kind;
    if (old_kind)
        m.u.update.oldtup = (ds_tuple_t){rel->ncolumns, oldvals};
    m.u.update.newtup = (ds_tuple_t){rel->ncolumns, newvals};
    return m;
}

static ds_pgoutput_msg_t delete_msg(const ds_relation_t *rel, char old_kind, ds_value_t *oldvals)
{
    ds_pgoutput_msg_t m = {.type = DS_PGOUTPUT_DELETE};

    m.u.delete.rel = rel;
    m.u.delete.old_kind = old_kind;
    m.u.delete.oldtup = (ds_tuple_t){rel->ncolumns, oldvals};
    return m;
}

/* ---- builder --------------------------------------------------------------------------- */

static char errstr[512];

static ds_changes_options_t default_options(void)
{
    ds_changes_options_t o = {
        .topic_prefix = "clinic",
        .db = "clinicdb",
        .version = "9.9.9",
        .tombstones_on_delete = true,
        .unavailable_value_placeholder = NULL,
        .skip_origins = NULL,
        .primary_key = primary_key,
        .primary_key_ctx = &pk_calls,
    };
    return o;
}

static bool handle(ds_changes_t *ch, ds_pgoutput_msg_t m, ds_lsn_t lsn)
{
    errstr[0] = '\0';
    return ds_changes_handle(ch, &m, lsn, NOW_US, sink, recs, errstr, sizeof(errstr));
}

/* Feeds Begin(xid), the one row message, Commit; true when all succeeded. */
static bool one_row_tx(ds_changes_t *ch, uint32_t xid, ds_pgoutput_msg_t row, ds_lsn_t lsn)
{
    return handle(ch, begin_msg(xid), lsn) && handle(ch, row, lsn) &&
           handle(ch, commit_msg(lsn + 0x100), lsn + 0x100);
}

static bool contains(const char *haystack, const char *needle)
{
    if (haystack && strstr(haystack, needle))
        return true;
    fprintf(stderr, "\"%s\" not found in \"%s\"\n", needle, haystack ? haystack : "(null)");
    return false;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_insert_emits_create_record(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t v[] = {TEXT("1"), TEXT("Ann")};

    DS_CHECK(one_row_tx(ch, 770, insert_msg(&users, v), LSN1));
    DS_CHECK_INT(nrecs, 1);
    DS_CHECK_STR(recs[0].topic, "clinic.public.users");
    DS_CHECK_STR(recs[0].key, "{\"id\":1}");
    DS_CHECK_STR(recs[0].value,
                 "{\"before\":null,\"after\":{\"id\":1,\"name\":\"Ann\"},\"source\":{"
                 "\"version\":\"9.9.9\",\"connector\":\"postgresql\",\"name\":\"clinic\","
                 "\"ts_ms\":" COMMIT_TS_MS ",\"snapshot\":\"false\",\"db\":\"clinicdb\","
                 "\"sequence\":\"[null,\\\"23803720\\\"]\",\"ts_us\":" COMMIT_TS_MS "456,"
                 "\"ts_ns\":" COMMIT_TS_MS "456000,\"schema\":\"public\","
                 "\"table\":\"users\",\"txId\":770,\"lsn\":23803720,\"xmin\":null,"
                 "\"origin\":null,\"origin_lsn\":null},\"transaction\":null,"
                 "\"op\":\"c\",\"ts_ms\":1706695201999,\"ts_us\":1706695201999999,"
                 "\"ts_ns\":1706695201999999000}");
    DS_CHECK_INT(recs[0].op, 'c');
    DS_CHECK_INT(recs[0].lsn, LSN1);
    clear_records();
    ds_changes_free(ch);
}

static void test_update_under_default_identity_has_null_before(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t v[] = {TEXT("1"), TEXT("Bob")};

    DS_CHECK(one_row_tx(ch, 771, update_msg(&users, 0, NULL, v), LSN1));
    DS_CHECK_INT(nrecs, 1);
    DS_CHECK_INT(recs[0].op, 'u');
    DS_CHECK_STR(recs[0].key, "{\"id\":1}");
    DS_CHECK(contains(recs[0].value,
                      "{\"before\":null,\"after\":{\"id\":1,\"name\":\"Bob\"},\"source\":"));
    DS_CHECK(contains(recs[0].value, "\"op\":\"u\""));
    clear_records();
    ds_changes_free(ch);
}

static void test_update_under_full_identity_has_before_and_primary_key_key(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t old[] = {TEXT("5"), TEXT("ann")};
    ds_value_t v[] = {TEXT("5"), TEXT("bob")};

    DS_CHECK(one_row_tx(ch, 772, update_msg(&accounts, 'O', old, v), LSN1));
    DS_CHECK_INT(nrecs, 1);
    DS_CHECK_INT(recs[0].op, 'u');
    DS_CHECK_STR(recs[0].topic, "clinic.public.accounts");
    DS_CHECK_STR(recs[0].key, "{\"id\":5}");
    DS_CHECK(contains(recs[0].value, "{\"before\":{\"id\":5,\"owner\":\"ann\"},"
                                     "\"after\":{\"id\":5,\"owner\":\"bob\"},"));
    clear_records();
    ds_changes_free(ch);
}

static void test_delete_emits_delete_then_tombstone(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t old[] = {TEXT("1"), NULLV};

    DS_CHECK(one_row_tx(ch, 773, delete_msg(&users, 'K', old), LSN1));
    DS_CHECK_INT(nrecs, 2);
    DS_CHECK_INT(recs[0].op, 'd');
    DS_CHECK_STR(recs[0].key, "{\"id\":1}");
    DS_CHECK(
        contains(recs[0].value, "{\"before\":{\"id\":1,\"name\":null},\"after\":null,\"source\":"));
    DS_CHECK(contains(recs[0].value, "\"op\":\"d\""));
    DS_CHECK_INT(recs[1].op, 0);
    DS_CHECK_STR(recs[1].topic, "clinic.public.users");
    DS_CHECK_STR(recs[1].key, "{\"id\":1}");
    DS_CHECK(recs[1].value == NULL);
    DS_CHECK_INT(recs[1].lsn, LSN1);
    clear_records();
    ds_changes_free(ch);
}

static void test_delete_without_tombstone_when_disabled(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch;
    ds_value_t old[] = {TEXT("1"), NULLV};

    o.tombstones_on_delete = false;
    ch = ds_changes_new(&o);
    DS_CHECK(one_row_tx(ch, 774, delete_msg(&users, 'K', old), LSN1));
    DS_CHECK_INT(nrecs, 1);
    DS_CHECK_INT(recs[0].op, 'd');
    clear_records();
    ds_changes_free(ch);
}

static void test_key_change_with_old_key_emits_delete_tombstone_create(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t old[] = {TEXT("1"), NULLV};
    ds_value_t v[] = {TEXT("2"), TEXT("Ann")};

    DS_CHECK(one_row_tx(ch, 775, update_msg(&users, 'K', old, v), LSN1));
    DS_CHECK_INT(nrecs, 3);
    DS_CHECK_INT(recs[0].op, 'd');
    DS_CHECK_STR(recs[0].key, "{\"id\":1}");
    /* As Debezium: the delete and its tombstone name the new key, the create the old one. */
    DS_CHECK_STR(recs[0].headers, "__debezium.newkey={\"id\":2}");
    DS_CHECK_STR(recs[1].headers, "__debezium.newkey={\"id\":2}");
    DS_CHECK_STR(recs[2].headers, "__debezium.oldkey={\"id\":1}");
    DS_CHECK(contains(recs[0].value, "{\"before\":{\"id\":1,\"name\":null},\"after\":null,"));
    DS_CHECK_INT(recs[1].op, 0);
    DS_CHECK_STR(recs[1].key, "{\"id\":1}");
    DS_CHECK(recs[1].value == NULL);
    DS_CHECK_INT(recs[2].op, 'c');
    DS_CHECK_STR(recs[2].key, "{\"id\":2}");
    DS_CHECK(contains(recs[2].value, "{\"before\":null,\"after\":{\"id\":2,\"name\":\"Ann\"},"));
    DS_CHECK(contains(recs[2].value, "\"op\":\"c\""));
    clear_records();
    ds_changes_free(ch);
}

static void test_key_change_without_tombstones_emits_delete_then_create(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch;
    ds_value_t old[] = {TEXT("1"), NULLV};
    ds_value_t v[] = {TEXT("2"), TEXT("Ann")};

    o.tombstones_on_delete = false;
    ch = ds_changes_new(&o);
    DS_CHECK(one_row_tx(ch, 776, update_msg(&users, 'K', old, v), LSN1));
    DS_CHECK_INT(nrecs, 2);
    DS_CHECK_INT(recs[0].op, 'd');
    DS_CHECK_INT(recs[1].op, 'c');
    DS_CHECK_STR(recs[1].key, "{\"id\":2}");
    clear_records();
    ds_changes_free(ch);
}

static void test_old_key_equal_to_new_key_is_a_plain_update(void)
{
    /* pgoutput also sends the old key when a key column holds TOASTed data. */
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t old[] = {TEXT("1"), NULLV};
    ds_value_t v[] = {TEXT("1"), TEXT("Ann")};

    DS_CHECK(one_row_tx(ch, 777, update_msg(&users, 'K', old, v), LSN1));
    DS_CHECK_INT(nrecs, 1);
    DS_CHECK_INT(recs[0].op, 'u');
    DS_CHECK(recs[0].headers == NULL);
    DS_CHECK(contains(recs[0].value, "{\"before\":null,"));
    clear_records();
    ds_changes_free(ch);
}

static void test_key_change_under_full_identity_keyed_by_primary_key(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t old[] = {TEXT("5"), TEXT("ann")};
    ds_value_t v[] = {TEXT("6"), TEXT("ann")};

    DS_CHECK(one_row_tx(ch, 778, update_msg(&accounts, 'O', old, v), LSN1));
    DS_CHECK_INT(nrecs, 3);
    DS_CHECK_INT(recs[0].op, 'd');
    DS_CHECK_STR(recs[0].key, "{\"id\":5}");
    DS_CHECK(contains(recs[0].value, "{\"before\":{\"id\":5,\"owner\":\"ann\"},\"after\":null,"));
    DS_CHECK_INT(recs[1].op, 0);
    DS_CHECK_STR(recs[1].key, "{\"id\":5}");
    DS_CHECK_INT(recs[2].op, 'c');
    DS_CHECK_STR(recs[2].key, "{\"id\":6}");
    DS_CHECK(contains(recs[2].value, "{\"before\":null,\"after\":{\"id\":6,\"owner\":\"ann\"},"));
    clear_records();
    ds_changes_free(ch);
}

static void test_full_update_of_non_primary_key_column_is_a_plain_update(void)
{
    /* Every column is flagged as identity under FULL; only the primary key decides. */
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t old[] = {TEXT("5"), TEXT("ann")};
    ds_value_t v[] = {TEXT("5"), TEXT("bob")};

    DS_CHECK(one_row_tx(ch, 779, update_msg(&accounts, 'O', old, v), LSN1));
    DS_CHECK_INT(nrecs, 1);
    DS_CHECK_INT(recs[0].op, 'u');
    clear_records();
    ds_changes_free(ch);
}

static void test_full_table_without_primary_key_is_keyed_by_all_columns(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t v[] = {TEXT("boot"), NULLV};

    DS_CHECK(one_row_tx(ch, 780, insert_msg(&logs, v), LSN1));
    DS_CHECK_INT(nrecs, 1);
    DS_CHECK_STR(recs[0].key, "{\"msg\":\"boot\",\"n\":null}");
    clear_records();
    ds_changes_free(ch);
}

static void test_full_table_without_callback_is_keyed_by_all_columns(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch;
    ds_value_t v[] = {TEXT("5"), TEXT("ann")};

    o.primary_key = NULL;
    ch = ds_changes_new(&o);
    DS_CHECK(one_row_tx(ch, 781, insert_msg(&accounts, v), LSN1));
    DS_CHECK_INT(nrecs, 1);
    DS_CHECK_STR(recs[0].key, "{\"id\":5,\"owner\":\"ann\"}");
    clear_records();
    ds_changes_free(ch);
}

static void test_full_update_with_unchanged_toast_in_all_column_key(void)
{
    /* The new tuple omits an unchanged TOASTed column; it is part of the all-columns key, so
     * the key takes the old value and the update is not a key change. */
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t old[] = {TEXT("long text"), TEXT("1")};
    ds_value_t v[] = {TOAST, TEXT("1")};

    DS_CHECK(one_row_tx(ch, 782, update_msg(&logs, 'O', old, v), LSN1));
    DS_CHECK_INT(nrecs, 1);
    DS_CHECK_INT(recs[0].op, 'u');
    DS_CHECK_STR(recs[0].key, "{\"msg\":\"long text\",\"n\":1}");
    DS_CHECK(
        contains(recs[0].value, "\"after\":{\"msg\":\"__debezium_unavailable_value\",\"n\":1}"));
    clear_records();
    ds_changes_free(ch);
}

static void test_primary_key_column_not_published_is_an_error(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t v[] = {TEXT("1"), TEXT("x")};

    DS_CHECK(handle(ch, begin_msg(783), LSN1));
    DS_CHECK(!handle(ch, insert_msg(&broken, v), LSN1));
    DS_CHECK(contains(errstr, "\"missing_col\""));
    DS_CHECK(contains(errstr, "public.broken"));
    DS_CHECK(contains(errstr, "0/16B3748"));
    DS_CHECK_INT(nrecs, 0);
    clear_records();
    ds_changes_free(ch);
}

static void test_keyless_table_insert_has_null_key(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t v[] = {TEXT("hello")};

    DS_CHECK(one_row_tx(ch, 784, insert_msg(&events, v), LSN1));
    DS_CHECK_INT(nrecs, 1);
    DS_CHECK(recs[0].key == NULL);
    DS_CHECK(contains(recs[0].value, "\"after\":{\"payload\":\"hello\"}"));
    clear_records();
    ds_changes_free(ch);
}

static void test_truncate_emits_one_record_per_table_keyed_by_its_name(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    const ds_relation_t *rels[] = {&users, &accounts};
    ds_pgoutput_msg_t m = {.type = DS_PGOUTPUT_TRUNCATE};

    m.u.truncate.nrelations = 2;
    m.u.truncate.rels = rels;
    DS_CHECK(one_row_tx(ch, 785, m, LSN1));
    DS_CHECK_INT(nrecs, 2);
    DS_CHECK_STR(recs[0].topic, "clinic.public.users");
    DS_CHECK_STR(recs[1].topic, "clinic.public.accounts");
    for (int i = 0; i < 2; i++) {
        DS_CHECK_INT(recs[i].op, 't');
        /* A compacted topic refuses a keyless record. */
        DS_CHECK(recs[i].key != NULL);
        DS_CHECK(contains(recs[i].value, "{\"before\":null,\"after\":null,\"source\":"));
        DS_CHECK(contains(recs[i].value, "\"op\":\"t\""));
    }
    DS_CHECK_STR(recs[0].key, "{\"__dualsync_truncate\":\"public.users\"}");
    DS_CHECK_STR(recs[1].key, "{\"__dualsync_truncate\":\"public.accounts\"}");
    DS_CHECK(contains(recs[1].value, "\"table\":\"accounts\""));
    clear_records();
    ds_changes_free(ch);
}

static void test_skipped_origin_drops_its_transaction_only(void)
{
    static const char *const skip[] = {"other", "dualsync", NULL};
    ds_changes_options_t o = default_options();
    ds_changes_t *ch;
    ds_value_t v[] = {TEXT("1"), TEXT("Ann")};
    ds_value_t old[] = {TEXT("1"), NULLV};

    o.skip_origins = skip;
    ch = ds_changes_new(&o);
    DS_CHECK(handle(ch, begin_msg(790), LSN1));
    DS_CHECK(handle(ch, origin_msg("dualsync"), LSN1));
    DS_CHECK(ds_changes_skipping(ch));
    DS_CHECK(handle(ch, insert_msg(&users, v), LSN1));
    DS_CHECK(handle(ch, delete_msg(&users, 'K', old), LSN1 + 1));
    DS_CHECK(handle(ch, commit_msg(0x3000000), LSN1 + 2));
    DS_CHECK(!ds_changes_skipping(ch));
    DS_CHECK_INT(nrecs, 0);

    DS_CHECK(one_row_tx(ch, 791, insert_msg(&users, v), LSN1 + 0x1000));
    DS_CHECK_INT(nrecs, 1);
    DS_CHECK(contains(recs[0].value, "\"txId\":791"));
    clear_records();
    ds_changes_free(ch);
}

static void test_origin_not_in_skip_list_is_emitted(void)
{
    static const char *const skip[] = {"dualsync", NULL};
    ds_changes_options_t o = default_options();
    ds_changes_t *ch;
    ds_value_t v[] = {TEXT("1"), TEXT("Ann")};

    o.skip_origins = skip;
    ch = ds_changes_new(&o);
    DS_CHECK(handle(ch, begin_msg(792), LSN1));
    DS_CHECK(handle(ch, origin_msg("dualsync_other"), LSN1));
    DS_CHECK(!ds_changes_skipping(ch));
    DS_CHECK(handle(ch, insert_msg(&users, v), LSN1));
    DS_CHECK(handle(ch, commit_msg(0x3000000), LSN1));
    DS_CHECK_INT(nrecs, 1);
    clear_records();
    ds_changes_free(ch);
}

/* Each apply process commits under "<apply.origin>.<group>.<instance>": all are skipped. */
static void test_per_process_origins_under_a_skipped_name_are_skipped(void)
{
    static const char *const skip[] = {"dualsync", NULL};
    ds_changes_options_t o = default_options();
    ds_changes_t *ch;
    ds_value_t v[] = {TEXT("1"), TEXT("Ann")};

    o.skip_origins = skip;
    ch = ds_changes_new(&o);
    DS_CHECK(handle(ch, begin_msg(793), LSN1));
    DS_CHECK(handle(ch, origin_msg("dualsync.dualsync-apply.host-1"), LSN1));
    DS_CHECK(ds_changes_skipping(ch));
    DS_CHECK(handle(ch, insert_msg(&users, v), LSN1));
    DS_CHECK(handle(ch, commit_msg(0x3000000), LSN1));
    DS_CHECK_INT(nrecs, 0);
    /* A name that merely starts alike is someone else's. */
    DS_CHECK(handle(ch, begin_msg(794), LSN1 + 0x1000));
    DS_CHECK(handle(ch, origin_msg("dualsyncer"), LSN1 + 0x1000));
    DS_CHECK(!ds_changes_skipping(ch));
    DS_CHECK(handle(ch, insert_msg(&users, v), LSN1 + 0x1000));
    DS_CHECK(handle(ch, commit_msg(0x3001000), LSN1 + 0x1000));
    DS_CHECK_INT(nrecs, 1);
    clear_records();
    ds_changes_free(ch);
}

static void test_row_outside_transaction_is_an_error(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t v[] = {TEXT("1"), TEXT("Ann")};

    DS_CHECK(!handle(ch, insert_msg(&users, v), LSN1));
    DS_CHECK(contains(errstr, "public.users"));
    DS_CHECK(contains(errstr, "0/16B3748"));
    DS_CHECK(contains(errstr, "outside a transaction"));
    DS_CHECK_INT(nrecs, 0);
    ds_changes_free(ch);
}

static void test_commit_without_begin_is_an_error(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);

    DS_CHECK(!handle(ch, commit_msg(0x3000000), LSN1));
    DS_CHECK(contains(errstr, "0/16B3748"));
    ds_changes_free(ch);
}

static void test_in_transaction_follows_begin_and_commit(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);

    DS_CHECK(!ds_changes_in_transaction(ch));
    DS_CHECK(handle(ch, begin_msg(793), LSN1));
    DS_CHECK(ds_changes_in_transaction(ch));
    DS_CHECK(handle(ch, commit_msg(0x3000000), LSN1));
    DS_CHECK(!ds_changes_in_transaction(ch));
    ds_changes_free(ch);
}

static void test_unchanged_toast_gets_default_placeholder(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t v[] = {TEXT("1"), TOAST};

    DS_CHECK(one_row_tx(ch, 794, update_msg(&users, 0, NULL, v), LSN1));
    DS_CHECK_INT(nrecs, 1);
    DS_CHECK(
        contains(recs[0].value, "\"after\":{\"id\":1,\"name\":\"__debezium_unavailable_value\"}"));
    clear_records();
    ds_changes_free(ch);
}

static void test_unchanged_toast_gets_custom_placeholder(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch;
    ds_value_t v[] = {TEXT("1"), TOAST};

    o.unavailable_value_placeholder = "(unchanged)";
    ch = ds_changes_new(&o);
    DS_CHECK(one_row_tx(ch, 795, update_msg(&users, 0, NULL, v), LSN1));
    DS_CHECK_INT(nrecs, 1);
    DS_CHECK(contains(recs[0].value, "\"after\":{\"id\":1,\"name\":\"(unchanged)\"}"));
    clear_records();
    ds_changes_free(ch);
}

static void test_sequence_carries_previous_commit_end_lsn(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t v[] = {TEXT("1"), TEXT("Ann")};

    /* one_row_tx commits with end LSN lsn + 0x100 = 23803976 */
    DS_CHECK(one_row_tx(ch, 796, insert_msg(&users, v), LSN1));
    DS_CHECK(one_row_tx(ch, 797, insert_msg(&users, v), LSN1 + 0x200));
    DS_CHECK_INT(nrecs, 2);
    DS_CHECK(contains(recs[0].value, "\"sequence\":\"[null,\\\"23803720\\\"]\""));
    DS_CHECK(contains(recs[1].value, "\"sequence\":\"[\\\"23803976\\\",\\\"23804232\\\"]\""));
    clear_records();
    ds_changes_free(ch);
}

static void test_source_fields_come_from_begin_and_wal_start(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t v[] = {TEXT("1"), TEXT("Ann")};

    DS_CHECK(one_row_tx(ch, 4000000000u, insert_msg(&users, v), 0x100000000ull));
    DS_CHECK_INT(nrecs, 1);
    DS_CHECK(contains(recs[0].value, "\"ts_ms\":" COMMIT_TS_MS ",\"snapshot\":\"false\""));
    DS_CHECK(contains(recs[0].value, "\"txId\":4000000000,\"lsn\":4294967296,\"xmin\":null,"));
    DS_CHECK(contains(recs[0].value, "\"op\":\"c\",\"ts_ms\":1706695201999,"));
    DS_CHECK_INT(recs[0].lsn, 0x100000000ull);
    clear_records();
    ds_changes_free(ch);
}

static void test_relation_message_refreshes_topic_and_key(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_column_t cols[] = {{"id", DS_OID_INT4, -1, true}, {"name", DS_OID_TEXT, -1, false}};
    ds_relation_t rel = {17000, "public", "people", DS_REPLIDENT_DEFAULT, 2, cols, 1};
    ds_value_t v[] = {TEXT("1"), TEXT("Ann")};

    DS_CHECK(handle(ch, relation_msg(&rel), LSN1));
    DS_CHECK(one_row_tx(ch, 798, insert_msg(&rel, v), LSN1));

    /* ALTER TABLE people RENAME TO persons, and the key moves to name. The decoder updates
     * its entry in place and bumps the generation. */
    rel.table = "persons";
    cols[0].is_key = false;
    cols[1].is_key = true;
    rel.generation = 2;
    DS_CHECK(handle(ch, relation_msg(&rel), LSN1 + 0x200));
    DS_CHECK(one_row_tx(ch, 799, insert_msg(&rel, v), LSN1 + 0x200));

    DS_CHECK_INT(nrecs, 2);
    DS_CHECK_STR(recs[0].topic, "clinic.public.people");
    DS_CHECK_STR(recs[0].key, "{\"id\":1}");
    DS_CHECK_STR(recs[1].topic, "clinic.public.persons");
    DS_CHECK_STR(recs[1].key, "{\"name\":\"Ann\"}");
    clear_records();
    ds_changes_free(ch);
}

static void test_primary_key_is_asked_once_per_relation_generation(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t v[] = {TEXT("5"), TEXT("ann")};
    int before = pk_calls;

    DS_CHECK(one_row_tx(ch, 800, insert_msg(&accounts, v), LSN1));
    DS_CHECK(one_row_tx(ch, 801, insert_msg(&accounts, v), LSN1 + 0x200));
    DS_CHECK_INT(pk_calls - before, 1);
    DS_CHECK(handle(ch, relation_msg(&accounts), LSN1 + 0x400));
    DS_CHECK(one_row_tx(ch, 802, insert_msg(&accounts, v), LSN1 + 0x400));
    DS_CHECK_INT(pk_calls - before, 2);
    clear_records();
    ds_changes_free(ch);
}

static void test_emit_failure_stops_with_the_callback_error(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t old[] = {TEXT("1"), NULLV};

    DS_CHECK(handle(ch, begin_msg(803), LSN1));
    fail_emit = true;
    DS_CHECK(!handle(ch, delete_msg(&users, 'K', old), LSN1));
    DS_CHECK_STR(errstr, "broker said no");
    clear_records();
    ds_changes_free(ch);
}

static void test_bad_column_value_error_names_table_and_lsn(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t v[] = {TEXT("1"), TEXT("Ann")};
    ds_value_t bad[] = {TEXT("x1"), TEXT("Ann")};

    DS_CHECK(handle(ch, begin_msg(804), LSN1));
    DS_CHECK(!handle(ch, update_msg(&users, 'K', v, bad), LSN1));
    DS_CHECK(contains(errstr, "public.users.id"));
    DS_CHECK(contains(errstr, "invalid int4 value \"x1\""));
    DS_CHECK(contains(errstr, "0/16B3748"));
    clear_records();
    ds_changes_free(ch);
}

static void test_null_key_column_error_names_table_and_lsn(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t v[] = {NULLV, TEXT("Ann")};

    DS_CHECK(handle(ch, begin_msg(805), LSN1));
    DS_CHECK(!handle(ch, insert_msg(&users, v), LSN1));
    DS_CHECK(contains(errstr, "public.users.id is NULL"));
    DS_CHECK(contains(errstr, "0/16B3748"));
    DS_CHECK_INT(nrecs, 0);
    ds_changes_free(ch);
}

static void test_new_requires_topic_prefix_and_free_accepts_null(void)
{
    ds_changes_options_t o = default_options();

    o.topic_prefix = NULL;
    DS_CHECK(ds_changes_new(&o) == NULL);
    ds_changes_free(NULL);
}

static void test_many_relations_keep_their_own_topics(void)
{
    /* More relations than the cache's first size, so it grows and rehashes. */
    enum { NREL = 100 };
    static ds_relation_t rels[NREL];
    static char names[NREL][16];
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t v[] = {TEXT("1"), TEXT("Ann")};
    bool ok = true;

    for (int i = 0; i < NREL; i++) {
        snprintf(names[i], sizeof(names[i]), "t%d", i);
        rels[i] = users;
        rels[i].relid = 20000 + (uint32_t)i;
        rels[i].table = names[i];
    }
    DS_CHECK(handle(ch, begin_msg(806), LSN1));
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < NREL; i++) {
            char want[64];

            ok = ok && handle(ch, insert_msg(&rels[i], v), LSN1);
            snprintf(want, sizeof(want), "clinic.public.t%d", i);
            ok = ok && nrecs == 1 && strcmp(recs[0].topic, want) == 0;
            clear_records();
        }
    }
    DS_CHECK(ok);
    ds_changes_free(ch);
}

/* ---- transaction metadata ------------------------------------------------------------- */

static char txmeta_topic[] = "txmeta";

static ds_changes_t *txmeta_builder(const char *const *skip_origins)
{
    static ds_value_format_t format;
    ds_changes_options_t o = default_options();

    ds_value_format_init(&format);
    format.provide_transaction_metadata = true;
    format.transaction_topic = txmeta_topic;
    o.value_format = &format;
    o.skip_origins = skip_origins;
    return ds_changes_new(&o);
}

/* The "transaction" member of a record's value, as compact JSON ("null" when null). */
static char *transaction_of(const char *value)
{
    json_t *v = json_loads(value, 0, NULL);
    char *out = v ? json_dumps(json_object_get(v, "transaction"),
                               JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY)
                  : NULL;

    json_decref(v);
    return out ? out : strdup("(invalid)");
}

static void check_transaction(const record_t *r, const char *want)
{
    char *got = transaction_of(r->value);

    DS_CHECK_STR(got, want);
    free(got);
}

static void test_transaction_metadata_of_a_multi_table_transaction(void)
{
    ds_changes_t *ch = txmeta_builder(NULL);
    ds_value_t u1[] = {TEXT("1"), TEXT("Ann")};
    ds_value_t l1[] = {TEXT("hello"), TEXT("1")};
    ds_value_t a1[] = {TEXT("7"), TEXT("Bo")};
    ds_value_t old[] = {TEXT("1"), NULLV};
    ds_value_t u2[] = {TEXT("2"), TEXT("Ann")};

    /* Begin at 0x100 (its XLogData LSN), events at 0x200.., Commit at 0x900. */
    DS_CHECK(handle(ch, begin_msg(900), 0x100));
    DS_CHECK(handle(ch, insert_msg(&users, u1), 0x200));
    DS_CHECK(handle(ch, insert_msg(&logs, l1), 0x300));
    DS_CHECK(handle(ch, insert_msg(&accounts, a1), 0x400));
    DS_CHECK(handle(ch, update_msg(&users, 'K', old, u2), 0x500));
    DS_CHECK(handle(ch, commit_msg(0x900), 0x900));

    /* BEGIN, 3 inserts, delete + tombstone + create, END. */
    DS_CHECK_INT(nrecs, 8);
    DS_CHECK_STR(recs[0].topic, "clinic.txmeta");
    DS_CHECK(recs[0].is_transaction);
    DS_CHECK_INT(recs[0].op, 0);
    DS_CHECK_STR(recs[0].key, "{\"id\":\"900:256\"}");
    DS_CHECK_STR(recs[0].value, "{\"status\":\"BEGIN\",\"id\":\"900:256\",\"event_count\":null,"
                                "\"data_collections\":null,\"ts_ms\":" COMMIT_TS_MS "}");
    DS_CHECK_INT(recs[0].lsn, 0x100);
    /* Each event's id ends with its own LSN, as Debezium's PostgreSQL connector writes it. */
    check_transaction(&recs[1],
                      "{\"id\":\"900:512\",\"total_order\":1,\"data_collection_order\":1}");
    check_transaction(&recs[2],
                      "{\"id\":\"900:768\",\"total_order\":2,\"data_collection_order\":1}");
    check_transaction(&recs[3],
                      "{\"id\":\"900:1024\",\"total_order\":3,\"data_collection_order\":1}");
    DS_CHECK_INT(recs[4].op, 'd');
    check_transaction(&recs[4],
                      "{\"id\":\"900:1280\",\"total_order\":4,\"data_collection_order\":2}");
    /* The tombstone is not an event of the transaction. */
    DS_CHECK(recs[5].value == NULL);
    DS_CHECK(!recs[5].is_transaction);
    DS_CHECK_INT(recs[6].op, 'c');
    check_transaction(&recs[6],
                      "{\"id\":\"900:1280\",\"total_order\":5,\"data_collection_order\":3}");
    DS_CHECK_STR(recs[7].topic, "clinic.txmeta");
    DS_CHECK(recs[7].is_transaction);
    DS_CHECK_STR(recs[7].key, "{\"id\":\"900:2304\"}");
    /* data_collections in java.util.HashMap's order, as Debezium lists them. */
    DS_CHECK_STR(recs[7].value,
                 "{\"status\":\"END\",\"id\":\"900:2304\",\"event_count\":5,\"data_collections\":["
                 "{\"data_collection\":\"public.users\",\"event_count\":3},"
                 "{\"data_collection\":\"public.accounts\",\"event_count\":1},"
                 "{\"data_collection\":\"public.logs\",\"event_count\":1}],"
                 "\"ts_ms\":" COMMIT_TS_MS "}");
    clear_records();

    /* The next transaction starts its counts over. */
    DS_CHECK(one_row_tx(ch, 901, insert_msg(&logs, l1), 0x1000));
    DS_CHECK_INT(nrecs, 3);
    check_transaction(&recs[1],
                      "{\"id\":\"901:4096\",\"total_order\":1,\"data_collection_order\":1}");
    DS_CHECK(contains(recs[2].value, "\"event_count\":1,\"data_collections\":[{\"data_collection\":"
                                     "\"public.logs\",\"event_count\":1}]"));
    clear_records();
    ds_changes_free(ch);
}

static void test_transaction_metadata_lists_many_tables_in_hashmap_order(void)
{
    /* 13 tables: java.util.HashMap grows from 16 to 32 buckets past 12 entries. */
    enum { NREL = 13 };
    ds_changes_t *ch = txmeta_builder(NULL);
    ds_relation_t rels[NREL];
    char names[NREL][8];
    ds_value_t v[] = {TEXT("1"), TEXT("x")};
    bool ok = true;

    for (int i = 0; i < NREL; i++) {
        snprintf(names[i], sizeof(names[i]), "t%d", i + 1);
        rels[i] = users;
        rels[i].relid = 30000 + (uint32_t)i;
        rels[i].table = names[i];
    }
    DS_CHECK(handle(ch, begin_msg(902), 0x100));
    for (int i = 0; i < NREL; i++)
        ok = ok && handle(ch, insert_msg(&rels[i], v), 0x200 + (ds_lsn_t)i);
    DS_CHECK(ok);
    DS_CHECK(handle(ch, commit_msg(0x900), 0x900));
    DS_CHECK_INT(nrecs, NREL + 2);
    /* The order java.util.HashMap<String, Long> iterates these names in (checked with Java). */
    DS_CHECK(contains(recs[NREL + 1].value,
                      "\"public.t12\",\"event_count\":1},{\"data_collection\":\"public.t13\","
                      "\"event_count\":1},{\"data_collection\":\"public.t8\",\"event_count\":1},"
                      "{\"data_collection\":\"public.t7\",\"event_count\":1},{\"data_collection\":"
                      "\"public.t9\",\"event_count\":1},{\"data_collection\":\"public.t4\","
                      "\"event_count\":1},{\"data_collection\":\"public.t3\",\"event_count\":1},"
                      "{\"data_collection\":\"public.t6\",\"event_count\":1},{\"data_collection\":"
                      "\"public.t5\",\"event_count\":1},{\"data_collection\":\"public.t10\","
                      "\"event_count\":1},{\"data_collection\":\"public.t11\",\"event_count\":1},"
                      "{\"data_collection\":\"public.t2\",\"event_count\":1},{\"data_collection\":"
                      "\"public.t1\",\"event_count\":1}]"));
    clear_records();
    ds_changes_free(ch);
}

static void test_transaction_metadata_skipped_and_empty_transactions(void)
{
    static const char *const skip[] = {"dualsync", NULL};
    ds_changes_t *ch = txmeta_builder(skip);
    ds_value_t v[] = {TEXT("1"), TEXT("Ann")};

    /* A skipped transaction sends nothing, no BEGIN or END either. */
    DS_CHECK(handle(ch, begin_msg(903), 0));
    DS_CHECK(handle(ch, origin_msg("dualsync"), 0x100));
    DS_CHECK(handle(ch, insert_msg(&users, v), 0x100));
    DS_CHECK(handle(ch, commit_msg(0x200), 0x200));
    DS_CHECK_INT(nrecs, 0);

    /* An empty one gets its BEGIN and END, as Debezium sends them. */
    DS_CHECK(handle(ch, begin_msg(904), 0x300));
    DS_CHECK(handle(ch, commit_msg(0x400), 0x400));
    DS_CHECK_INT(nrecs, 2);
    DS_CHECK(contains(recs[0].value, "{\"status\":\"BEGIN\",\"id\":\"904:768\","));
    DS_CHECK_STR(recs[1].value, "{\"status\":\"END\",\"id\":\"904:1024\",\"event_count\":0,"
                                "\"data_collections\":[],\"ts_ms\":" COMMIT_TS_MS "}");
    clear_records();

    /* A Begin resent after a stream restart inside a transaction starts its counts over. */
    DS_CHECK(handle(ch, begin_msg(905), 0x500));
    DS_CHECK(handle(ch, insert_msg(&users, v), 0x500));
    DS_CHECK(handle(ch, begin_msg(905), 0x500));
    DS_CHECK(handle(ch, insert_msg(&users, v), 0x500));
    DS_CHECK(handle(ch, commit_msg(0x600), 0x600));
    DS_CHECK_INT(nrecs, 5);
    DS_CHECK_STR(recs[2].value, recs[0].value);
    check_transaction(&recs[3],
                      "{\"id\":\"905:1280\",\"total_order\":1,\"data_collection_order\":1}");
    DS_CHECK(contains(recs[4].value, "\"event_count\":1,"));
    clear_records();
    ds_changes_free(ch);
}

static void test_transaction_metadata_truncate_is_an_event_and_reads_have_none(void)
{
    ds_changes_t *ch = txmeta_builder(NULL);
    const ds_relation_t *rels[] = {&users, &logs};
    ds_pgoutput_msg_t t = {.type = DS_PGOUTPUT_TRUNCATE};
    ds_value_t v[] = {TEXT("1"), TEXT("Ann")};
    ds_tuple_t row = {2, v};
    ds_changes_read_t read = {.snapshot = "true", .lsn = 0x700, .xid = 906};

    t.u.truncate.nrelations = 2;
    t.u.truncate.rels = rels;
    DS_CHECK(handle(ch, begin_msg(906), 0x100));
    DS_CHECK(handle(ch, t, 0x100));
    DS_CHECK(handle(ch, commit_msg(0x200), 0x200));
    DS_CHECK_INT(nrecs, 4);
    check_transaction(&recs[1],
                      "{\"id\":\"906:256\",\"total_order\":1,\"data_collection_order\":1}");
    check_transaction(&recs[2],
                      "{\"id\":\"906:256\",\"total_order\":2,\"data_collection_order\":1}");
    DS_CHECK(contains(recs[3].value, "\"event_count\":2,"));
    clear_records();

    /* Debezium's snapshot events carry no transaction block and no BEGIN/END. */
    DS_CHECK(
        ds_changes_read_row(ch, &users, &row, &read, NOW_US, sink, recs, errstr, sizeof(errstr)));
    DS_CHECK_INT(nrecs, 1);
    check_transaction(&recs[0], "null");
    clear_records();
    ds_changes_free(ch);
}

static void test_transaction_records_under_the_schema_envelope(void)
{
    /* The schemas as the Debezium goldens recorded them (tests/golden/debezium). */
    static const char key_schema[] =
        "{\"type\": \"struct\", \"fields\": [{\"type\": \"string\", \"optional\": false, "
        "\"field\": \"id\"}], \"optional\": false, "
        "\"name\": \"io.debezium.connector.common.TransactionMetadataKey\", \"version\": 1}";
    static const char value_schema[] =
        "{\"type\": \"struct\", \"fields\": [{\"type\": \"string\", \"optional\": false, "
        "\"field\": \"status\"}, {\"type\": \"string\", \"optional\": false, \"field\": \"id\"}, "
        "{\"type\": \"int64\", \"optional\": true, \"field\": \"event_count\"}, {\"type\": "
        "\"array\", \"items\": {\"type\": \"struct\", \"fields\": [{\"type\": \"string\", "
        "\"optional\": false, \"field\": \"data_collection\"}, {\"type\": \"int64\", "
        "\"optional\": false, \"field\": \"event_count\"}], \"optional\": true, \"name\": "
        "\"event.collection\", \"version\": 1}, \"optional\": true, \"field\": "
        "\"data_collections\"}, {\"type\": \"int64\", \"optional\": false, \"field\": "
        "\"ts_ms\"}], \"optional\": false, \"name\": "
        "\"io.debezium.connector.common.TransactionMetadataValue\", \"version\": 1}";
    static ds_value_format_t format;
    ds_changes_options_t o = default_options();
    ds_changes_t *ch;
    ds_value_t v[] = {TEXT("1"), TEXT("Ann")};
    json_t *want_key = json_loads(key_schema, 0, NULL);
    json_t *want_value = json_loads(value_schema, 0, NULL);

    ds_value_format_init(&format);
    format.provide_transaction_metadata = true;
    format.message_format = DS_MESSAGE_JSON_WITH_SCHEMA;
    o.value_format = &format;
    ch = ds_changes_new(&o);
    DS_CHECK(want_key && want_value);
    DS_CHECK(handle(ch, begin_msg(909), 0x100));
    DS_CHECK(handle(ch, insert_msg(&users, v), 0x100));
    DS_CHECK(handle(ch, commit_msg(0x200), 0x200));
    DS_CHECK(nrecs >= 2);
    for (int i = 0; i < nrecs; i++) {
        json_t *key, *value;

        if (!recs[i].is_transaction)
            continue;
        DS_CHECK_STR(recs[i].topic, "clinic.transaction");
        key = json_loads(recs[i].key, 0, NULL);
        value = json_loads(recs[i].value, 0, NULL);
        DS_CHECK(json_equal(json_object_get(key, "schema"), want_key));
        DS_CHECK(json_equal(json_object_get(value, "schema"), want_value));
        DS_CHECK_STR(json_string_value(json_object_get(json_object_get(key, "payload"), "id")),
                     json_string_value(json_object_get(json_object_get(value, "payload"), "id")));
        DS_CHECK(json_object_size(json_object_get(value, "payload")) == 5);
        json_decref(key);
        json_decref(value);
    }
    json_decref(want_key);
    json_decref(want_value);
    clear_records();
    ds_changes_free(ch);
}

static void test_origin_fills_source_origin_fields(void)
{
    ds_changes_options_t o = default_options();
    ds_changes_t *ch = ds_changes_new(&o);
    ds_value_t v[] = {TEXT("1"), TEXT("Ann")};

    DS_CHECK(handle(ch, begin_msg(907), 0));
    DS_CHECK(handle(ch, origin_msg("upstream"), LSN1));
    DS_CHECK(handle(ch, insert_msg(&users, v), LSN1));
    DS_CHECK(handle(ch, commit_msg(LSN1 + 0x100), LSN1 + 0x100));
    /* The origin belongs to its transaction only. */
    DS_CHECK(one_row_tx(ch, 908, insert_msg(&users, v), LSN1 + 0x200));
    DS_CHECK_INT(nrecs, 2);
    DS_CHECK(contains(recs[0].value, "\"xmin\":null,\"origin\":\"upstream\",\"origin_lsn\":153}"));
    DS_CHECK(contains(recs[1].value, "\"xmin\":null,\"origin\":null,\"origin_lsn\":null}"));
    clear_records();
    ds_changes_free(ch);
}

int main(void)
{
    DS_RUN(test_insert_emits_create_record);
    DS_RUN(test_update_under_default_identity_has_null_before);
    DS_RUN(test_update_under_full_identity_has_before_and_primary_key_key);
    DS_RUN(test_delete_emits_delete_then_tombstone);
    DS_RUN(test_delete_without_tombstone_when_disabled);
    DS_RUN(test_key_change_with_old_key_emits_delete_tombstone_create);
    DS_RUN(test_key_change_without_tombstones_emits_delete_then_create);
    DS_RUN(test_old_key_equal_to_new_key_is_a_plain_update);
    DS_RUN(test_key_change_under_full_identity_keyed_by_primary_key);
    DS_RUN(test_full_update_of_non_primary_key_column_is_a_plain_update);
    DS_RUN(test_full_table_without_primary_key_is_keyed_by_all_columns);
    DS_RUN(test_full_table_without_callback_is_keyed_by_all_columns);
    DS_RUN(test_full_update_with_unchanged_toast_in_all_column_key);
    DS_RUN(test_primary_key_column_not_published_is_an_error);
    DS_RUN(test_keyless_table_insert_has_null_key);
    DS_RUN(test_truncate_emits_one_record_per_table_keyed_by_its_name);
    DS_RUN(test_skipped_origin_drops_its_transaction_only);
    DS_RUN(test_origin_not_in_skip_list_is_emitted);
    DS_RUN(test_per_process_origins_under_a_skipped_name_are_skipped);
    DS_RUN(test_row_outside_transaction_is_an_error);
    DS_RUN(test_commit_without_begin_is_an_error);
    DS_RUN(test_in_transaction_follows_begin_and_commit);
    DS_RUN(test_unchanged_toast_gets_default_placeholder);
    DS_RUN(test_unchanged_toast_gets_custom_placeholder);
    DS_RUN(test_sequence_carries_previous_commit_end_lsn);
    DS_RUN(test_source_fields_come_from_begin_and_wal_start);
    DS_RUN(test_relation_message_refreshes_topic_and_key);
    DS_RUN(test_primary_key_is_asked_once_per_relation_generation);
    DS_RUN(test_emit_failure_stops_with_the_callback_error);
    DS_RUN(test_bad_column_value_error_names_table_and_lsn);
    DS_RUN(test_null_key_column_error_names_table_and_lsn);
    DS_RUN(test_new_requires_topic_prefix_and_free_accepts_null);
    DS_RUN(test_many_relations_keep_their_own_topics);
    DS_RUN(test_transaction_metadata_of_a_multi_table_transaction);
    DS_RUN(test_transaction_metadata_lists_many_tables_in_hashmap_order);
    DS_RUN(test_transaction_metadata_skipped_and_empty_transactions);
    DS_RUN(test_transaction_metadata_truncate_is_an_event_and_reads_have_none);
    DS_RUN(test_transaction_records_under_the_schema_envelope);
    DS_RUN(test_origin_fills_source_origin_fields);
    return ds_test_report();
}
