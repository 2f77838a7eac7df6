/*
 * test_pgoutput.c: the pgoutput decoder, on messages built byte by byte and on the golden
 * recordings of a real PostgreSQL 15 in tests/golden/pgoutput/.
 *
 * Every valid message a test decodes goes through decode_ok(), which first feeds the decoder
 * every strict prefix of the message and the message with one trailing byte: each must be
 * rejected with a non-empty error and leave the caches untouched. Each attempt gets a heap
 * copy of exactly that many bytes, so under ASan a read past the end is caught.
 */
#include <ctype.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "dualsync/pgoutput.h"
#include "ds_test.h"

#define CHECK_CONTAINS(hay, needle)                                                                \
    do {                                                                                           \
        const char *ds_h_ = (hay), *ds_n_ = (needle);                                              \
        ds_test_checks++;                                                                          \
        if (!strstr(ds_h_, ds_n_)) {                                                               \
            ds_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__, ds_h_,  \
                    ds_n_);                                                                        \
        }                                                                                          \
    } while (0)

/* A text value equal to the bytes of a string literal (which may hold NULs). */
#define CHECK_TEXT(val, lit)                                                                       \
    do {                                                                                           \
        const ds_value_t *ds_v_ = &(val);                                                          \
        ds_test_checks++;                                                                          \
        if (ds_v_->kind != DS_VALUE_TEXT || ds_v_->len != sizeof(lit) - 1 ||                       \
            memcmp(ds_v_->data, lit, sizeof(lit) - 1) != 0) {                                      \
            ds_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: %s is kind %c len %u, want text \"%s\"\n", __FILE__, __LINE__, \
                    #val, (char)ds_v_->kind, ds_v_->len, lit);                                     \
        }                                                                                          \
    } while (0)

/* ---- building messages ------------------------------------------------------------------ */

typedef struct mb {
    uint8_t data[1 << 16]; /* big enough for every hand-built message */
    size_t len;            /* bytes used */
} mb_t;

static mb_t g_mb; /* the message under construction */

static void put(const void *p, size_t n)
{
    if (g_mb.len + n > sizeof(g_mb.data)) {
        fprintf(stderr, "test message buffer overflow\n");
        abort();
    }
    memcpy(g_mb.data + g_mb.len, p, n);
    g_mb.len += n;
}

static void put_u8(unsigned v)
{
    uint8_t b = (uint8_t)v;
    put(&b, 1);
}

static void put_u16(unsigned v)
{
    put_u8(v >> 8);
    put_u8(v);
}

static void put_u32(uint32_t v)
{
    put_u16(v >> 16);
    put_u16(v & 0xffff);
}

static void put_u64(uint64_t v)
{
    put_u32((uint32_t)(v >> 32));
    put_u32((uint32_t)v);
}

static void put_str(const char *s)
{
    put(s, strlen(s) + 1);
}

/* Starts a new message with its type byte. */
static void start(char type)
{
    g_mb.len = 0;
    put_u8((uint8_t)type);
}

static void put_text(const char *s, size_t n)
{
    put_u8('t');
    put_u32((uint32_t)n);
    put(s, n);
}

#define PUT_TEXT_LIT(lit) put_text(lit, sizeof(lit) - 1)

typedef struct col_spec {
    uint8_t flags;
    const char *name;
    uint32_t type_oid;
    int32_t typmod;
} col_spec_t;

static void build_relation(uint32_t relid, const char *ns, const char *name, char replident,
                           int ncols, const col_spec_t *cols)
{
    start('R');
    put_u32(relid);
    put_str(ns);
    put_str(name);
    put_u8((uint8_t)replident);
    put_u16((unsigned)ncols);
    for (int i = 0; i < ncols; i++) {
        put_u8(cols[i].flags);
        put_str(cols[i].name);
        put_u32(cols[i].type_oid);
        put_u32((uint32_t)cols[i].typmod);
    }
}

/* ---- decoding with the prefix and trailing-byte checks --------------------------------- */

static uint8_t *g_copy; /* exact-size copy of the last valid message: msg borrows from it */

static uint8_t *exact_copy(const uint8_t *data, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    if (!p)
        abort();
    if (len)
        memcpy(p, data, len);
    return p;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* What a failed decode must not change: the cache entry a Relation or Type message names. */
typedef struct cache_state {
    const ds_relation_t *rel; /* entry for the Relation's relid, or NULL */
    uint32_t generation;      /* its generation */
    int ncolumns;             /* its column count */
    char type_name[256];      /* cached name for the Type's OID, "" when none */
} cache_state_t;

static void snapshot(const ds_pgoutput_t *dec, const uint8_t *data, size_t len, cache_state_t *st)
{
    memset(st, 0, sizeof(*st));
    if (len < 5)
        return;
    if (data[0] == 'R') {
        st->rel = ds_pgoutput_relation(dec, be32(data + 1));
        if (st->rel) {
            st->generation = st->rel->generation;
            st->ncolumns = st->rel->ncolumns;
        }
    } else if (data[0] == 'Y') {
        const char *n = ds_pgoutput_type_name(dec, be32(data + 1));
        snprintf(st->type_name, sizeof(st->type_name), "%s", n ? n : "");
    }
}

static bool same_state(const ds_pgoutput_t *dec, const uint8_t *data, size_t len,
                       const cache_state_t *before)
{
    cache_state_t now;

    snapshot(dec, data, len, &now);
    return now.rel == before->rel && now.generation == before->generation &&
           now.ncolumns == before->ncolumns && strcmp(now.type_name, before->type_name) == 0;
}

/* Decodes data[0..len) from an exact-size heap copy; the copy is freed before returning. */
static bool try_decode(ds_pgoutput_t *dec, const uint8_t *data, size_t len, char *err,
                       size_t errsize)
{
    ds_pgoutput_msg_t scratch;
    uint8_t *copy = exact_copy(data, len);
    bool ok;

    err[0] = '\0';
    ok = ds_pgoutput_decode(dec, copy, len, &scratch, err, errsize);
    free(copy);
    return ok;
}

static bool decode_ok_at(ds_pgoutput_t *dec, ds_pgoutput_msg_t *msg, int line)
{
    char err[512];
    cache_state_t before;
    uint8_t longer[sizeof(g_mb.data) + 1];
    bool ok;

    snapshot(dec, g_mb.data, g_mb.len, &before);
    for (size_t n = 0; n < g_mb.len; n++) {
        ds_test_checks++;
        if (try_decode(dec, g_mb.data, n, err, sizeof(err)) || err[0] == '\0' ||
            !same_state(dec, g_mb.data, g_mb.len, &before)) {
            ds_test_failures++;
            fprintf(stderr, "%s:%d: prefix of %zu/%zu bytes: accepted, no error or cache changed\n",
                    __FILE__, line, n, g_mb.len);
        }
    }
    memcpy(longer, g_mb.data, g_mb.len);
    longer[g_mb.len] = 0;
    ds_test_checks++;
    if (try_decode(dec, longer, g_mb.len + 1, err, sizeof(err)) || !strstr(err, "trailing") ||
        !same_state(dec, g_mb.data, g_mb.len, &before)) {
        ds_test_failures++;
        fprintf(stderr, "%s:%d: message with a trailing byte: accepted or wrong error \"%s\"\n",
                __FILE__, line, err);
    }

    free(g_copy);
    g_copy = exact_copy(g_mb.data, g_mb.len);
    ok = ds_pgoutput_decode(dec, g_copy, g_mb.len, msg, err, sizeof(err));
    if (!ok)
        fprintf(stderr, "%s:%d: decode failed: %s\n", __FILE__, line, err);
    return ok;
}

/* Decodes the message in g_mb, which must be valid, after the prefix and trailing checks. */
#define DECODE_OK(dec, msg) DS_CHECK(decode_ok_at((dec), (msg), __LINE__))

/* Decodes the message in g_mb, which must be rejected; err receives the message. */
static bool decode_fails(ds_pgoutput_t *dec, char *err, size_t errsize)
{
    return !try_decode(dec, g_mb.data, g_mb.len, err, errsize) && err[0] != '\0';
}

/* ---- fixtures --------------------------------------------------------------------------- */

enum { USERS_RELID = 16384, ORDERS_RELID = 16390, INT4OID = 23, TEXTOID = 25, INT8OID = 20 };

static const col_spec_t users_cols[] = {
    {1, "id", INT4OID, -1},
    {0, "name", TEXTOID, -1},
    {0, "bio", TEXTOID, -1},
};

/* Announces public.users (id int4 key, name text, bio text) as relid USERS_RELID. */
static void announce_users(ds_pgoutput_t *dec)
{
    ds_pgoutput_msg_t msg;

    build_relation(USERS_RELID, "public", "users", 'd', 3, users_cols);
    DECODE_OK(dec, &msg);
}

static void announce_orders(ds_pgoutput_t *dec)
{
    static const col_spec_t cols[] = {{1, "order_id", INT8OID, -1}};
    ds_pgoutput_msg_t msg;

    build_relation(ORDERS_RELID, "shop", "orders", 'i', 1, cols);
    DECODE_OK(dec, &msg);
}

/* ---- valid messages --------------------------------------------------------------------- */

static void test_begin_fields(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_pgoutput_msg_t msg;

    start('B');
    put_u64(UINT64_C(0x00000016B374D848));
    put_u64(UINT64_C(0x0002BD2D6E9C5A10));
    put_u32(0xFFFFFFF0u);
    DECODE_OK(dec, &msg);
    DS_CHECK_INT(msg.type, DS_PGOUTPUT_BEGIN);
    DS_CHECK(msg.u.begin.final_lsn == UINT64_C(0x00000016B374D848));
    DS_CHECK(msg.u.begin.commit_time == INT64_C(0x0002BD2D6E9C5A10));
    DS_CHECK(msg.u.begin.xid == 0xFFFFFFF0u);
    ds_pgoutput_free(dec);
}

static void test_commit_fields_and_pre_epoch_timestamp(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_pgoutput_msg_t msg;

    start('C');
    put_u8(0);
    put_u64(UINT64_C(0x1000));
    put_u64(UINT64_C(0x1038));
    put_u64((uint64_t)INT64_C(-86400000000)); /* 1999-12-31: negative since 2000-01-01 */
    DECODE_OK(dec, &msg);
    DS_CHECK_INT(msg.type, DS_PGOUTPUT_COMMIT);
    DS_CHECK_INT(msg.u.commit.flags, 0);
    DS_CHECK(msg.u.commit.commit_lsn == 0x1000);
    DS_CHECK(msg.u.commit.end_lsn == 0x1038);
    DS_CHECK(msg.u.commit.commit_time == INT64_C(-86400000000));
    ds_pgoutput_free(dec);
}

static void test_origin_fields(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_pgoutput_msg_t msg;

    start('O');
    put_u64(UINT64_C(0x12345678ABCDEF01));
    put_str("dualsync");
    DECODE_OK(dec, &msg);
    DS_CHECK_INT(msg.type, DS_PGOUTPUT_ORIGIN);
    DS_CHECK(msg.u.origin.commit_lsn == UINT64_C(0x12345678ABCDEF01));
    DS_CHECK_STR(msg.u.origin.name, "dualsync");
    ds_pgoutput_free(dec);
}

static void test_message_transactional_with_binary_content(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_pgoutput_msg_t msg;
    static const char content[] = "he\0llo\n";

    start('M');
    put_u8(1);
    put_u64(0xABCDEF);
    put_str("dualsync");
    put_u32(sizeof(content) - 1);
    put(content, sizeof(content) - 1);
    DECODE_OK(dec, &msg);
    DS_CHECK_INT(msg.type, DS_PGOUTPUT_MESSAGE);
    DS_CHECK_INT(msg.u.message.flags, 1);
    DS_CHECK(msg.u.message.lsn == 0xABCDEF);
    DS_CHECK_STR(msg.u.message.prefix, "dualsync");
    DS_CHECK_INT(msg.u.message.content_len, 7);
    DS_CHECK(memcmp(msg.u.message.content, content, 7) == 0);
    ds_pgoutput_free(dec);
}

static void test_message_non_transactional_empty(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_pgoutput_msg_t msg;

    start('M');
    put_u8(0);
    put_u64(1);
    put_str("");
    put_u32(0);
    DECODE_OK(dec, &msg);
    DS_CHECK_INT(msg.u.message.flags, 0);
    DS_CHECK_STR(msg.u.message.prefix, "");
    DS_CHECK_INT(msg.u.message.content_len, 0);
    ds_pgoutput_free(dec);
}

static void test_type_cached_as_schema_dot_name(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_pgoutput_msg_t msg;

    DS_CHECK(ds_pgoutput_type_name(dec, 16400) == NULL);
    start('Y');
    put_u32(16400);
    put_str("public");
    put_str("mood");
    DECODE_OK(dec, &msg);
    DS_CHECK_INT(msg.type, DS_PGOUTPUT_TYPE);
    DS_CHECK_INT(msg.u.type.oid, 16400);
    DS_CHECK_STR(msg.u.type.schema, "public");
    DS_CHECK_STR(msg.u.type.name, "mood");
    DS_CHECK_STR(ds_pgoutput_type_name(dec, 16400), "public.mood");
    DS_CHECK(ds_pgoutput_type_name(dec, 16401) == NULL);

    /* ALTER TYPE ... RENAME: the next Type message for the OID wins. */
    start('Y');
    put_u32(16400);
    put_str("app");
    put_str("feeling");
    DECODE_OK(dec, &msg);
    DS_CHECK_STR(ds_pgoutput_type_name(dec, 16400), "app.feeling");
    ds_pgoutput_free(dec);
}

static void test_type_empty_namespace_is_pg_catalog(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_pgoutput_msg_t msg;

    start('Y');
    put_u32(16500);
    put_str("");
    put_str("custom");
    DECODE_OK(dec, &msg);
    DS_CHECK_STR(msg.u.type.schema, "pg_catalog");
    DS_CHECK_STR(ds_pgoutput_type_name(dec, 16500), "pg_catalog.custom");
    ds_pgoutput_free(dec);
}

static void test_many_types(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_pgoutput_msg_t msg;
    char name[32], want[64];
    char err[256];
    bool all_ok = true;

    for (uint32_t oid = 20000; oid < 22000; oid++) {
        snprintf(name, sizeof(name), "t%u", oid);
        start('Y');
        put_u32(oid);
        put_str("s");
        put_str(name);
        if (!ds_pgoutput_decode(dec, g_mb.data, g_mb.len, &msg, err, sizeof(err)))
            all_ok = false;
    }
    DS_CHECK(all_ok);
    all_ok = true;
    for (uint32_t oid = 20000; oid < 22000; oid++) {
        const char *got = ds_pgoutput_type_name(dec, oid);
        snprintf(want, sizeof(want), "s.t%u", oid);
        if (!got || strcmp(got, want) != 0)
            all_ok = false;
    }
    DS_CHECK(all_ok);
    DS_CHECK(ds_pgoutput_type_name(dec, 19999) == NULL);
    ds_pgoutput_free(dec);
}

static void test_relation_fields(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_pgoutput_msg_t msg;
    static const col_spec_t cols[] = {
        {1, "id", INT8OID, -1},
        {0, "code", 1043, 24}, /* varchar(20): typmod is length + 4 */
        {0, "note \"quoted\"", TEXTOID, -1},
    };
    const ds_relation_t *rel;

    DS_CHECK(ds_pgoutput_relation(dec, 70000) == NULL);
    build_relation(70000, "sales", "Order Items", 'i', 3, cols);
    DECODE_OK(dec, &msg);
    DS_CHECK_INT(msg.type, DS_PGOUTPUT_RELATION);
    rel = msg.u.relation.rel;
    DS_CHECK(rel == ds_pgoutput_relation(dec, 70000));
    DS_CHECK_INT(rel->relid, 70000);
    DS_CHECK_STR(rel->schema, "sales");
    DS_CHECK_STR(rel->table, "Order Items");
    DS_CHECK_INT(rel->replident, DS_REPLIDENT_INDEX);
    DS_CHECK_INT(rel->ncolumns, 3);
    DS_CHECK_INT(rel->generation, 1);
    DS_CHECK_STR(rel->columns[0].name, "id");
    DS_CHECK(rel->columns[0].is_key);
    DS_CHECK_INT(rel->columns[0].type_oid, INT8OID);
    DS_CHECK_INT(rel->columns[0].typmod, -1);
    DS_CHECK_STR(rel->columns[1].name, "code");
    DS_CHECK(!rel->columns[1].is_key);
    DS_CHECK_INT(rel->columns[1].type_oid, 1043);
    DS_CHECK_INT(rel->columns[1].typmod, 24);
    DS_CHECK_STR(rel->columns[2].name, "note \"quoted\"");
    ds_pgoutput_free(dec);
}

static void test_relation_empty_namespace_is_pg_catalog(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_pgoutput_msg_t msg;

    build_relation(1259, "", "pg_class_copy", 'n', 0, NULL);
    DECODE_OK(dec, &msg);
    DS_CHECK_STR(msg.u.relation.rel->schema, "pg_catalog");
    DS_CHECK_INT(msg.u.relation.rel->ncolumns, 0);
    DS_CHECK_INT(msg.u.relation.rel->replident, DS_REPLIDENT_NOTHING);
    ds_pgoutput_free(dec);
}

static void test_relation_replace_bumps_generation(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_pgoutput_msg_t msg;
    char err[512];
    const ds_relation_t *first;
    static const col_spec_t altered[] = {
        {1, "id", INT4OID, -1},
        {0, "name", TEXTOID, -1},
        {0, "bio", TEXTOID, -1},
        {0, "email", TEXTOID, -1},
    };

    announce_users(dec);
    first = ds_pgoutput_relation(dec, USERS_RELID);
    DS_CHECK_INT(first->generation, 1);

    /* ALTER TABLE users ADD COLUMN email text */
    build_relation(USERS_RELID, "public", "users", 'f', 4, altered);
    DECODE_OK(dec, &msg);
    DS_CHECK(msg.u.relation.rel == first); /* same entry, updated in place */
    DS_CHECK_INT(first->generation, 2);
    DS_CHECK_INT(first->ncolumns, 4);
    DS_CHECK_INT(first->replident, DS_REPLIDENT_FULL);
    DS_CHECK_STR(first->columns[3].name, "email");

    /* A 4-column tuple now decodes; a 3-column one is stale. */
    start('I');
    put_u32(USERS_RELID);
    put_u8('N');
    put_u16(4);
    PUT_TEXT_LIT("1");
    PUT_TEXT_LIT("ann");
    put_u8('n');
    PUT_TEXT_LIT("ann@example.com");
    DECODE_OK(dec, &msg);
    DS_CHECK_INT(msg.u.insert.newtup.nvalues, 4);
    CHECK_TEXT(msg.u.insert.newtup.values[3], "ann@example.com");

    start('I');
    put_u32(USERS_RELID);
    put_u8('N');
    put_u16(3);
    PUT_TEXT_LIT("1");
    PUT_TEXT_LIT("ann");
    put_u8('n');
    DS_CHECK(decode_fails(dec, err, sizeof(err)));

    /* ALTER TABLE users DROP COLUMN bio, DROP COLUMN email */
    build_relation(USERS_RELID, "public", "users", 'd', 2, altered);
    DECODE_OK(dec, &msg);
    DS_CHECK_INT(first->generation, 3);
    DS_CHECK_INT(first->ncolumns, 2);
    ds_pgoutput_free(dec);
}

static void test_many_relations_keep_their_entries(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_pgoutput_msg_t msg;
    static const col_spec_t cols[] = {{1, "id", INT4OID, -1}};
    const ds_relation_t *first;
    char name[32], err[256];
    bool all_ok = true;

    for (uint32_t relid = 100000; relid < 105000; relid++) {
        snprintf(name, sizeof(name), "t%u", relid);
        build_relation(relid, "public", name, 'd', 1, cols);
        if (!ds_pgoutput_decode(dec, g_mb.data, g_mb.len, &msg, err, sizeof(err)))
            all_ok = false;
    }
    DS_CHECK(all_ok);
    first = ds_pgoutput_relation(dec, 100000);
    DS_CHECK(first != NULL);
    all_ok = true;
    for (uint32_t relid = 100000; relid < 105000; relid++) {
        const ds_relation_t *rel = ds_pgoutput_relation(dec, relid);
        snprintf(name, sizeof(name), "t%u", relid);
        if (!rel || rel->relid != relid || strcmp(rel->table, name) != 0)
            all_ok = false;
    }
    DS_CHECK(all_ok);
    DS_CHECK(ds_pgoutput_relation(dec, 99999) == NULL);
    DS_CHECK(ds_pgoutput_relation(dec, 105000) == NULL);
    /* Growing the table must not move entries a caller may hold. */
    build_relation(200000, "public", "late", 'd', 1, cols);
    DECODE_OK(dec, &msg);
    DS_CHECK(ds_pgoutput_relation(dec, 100000) == first);
    ds_pgoutput_free(dec);
}

static void test_insert_value_kinds_and_awkward_text(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_pgoutput_msg_t msg;
    static const col_spec_t cols[] = {
        {1, "id", INT4OID, -1},      {0, "nul", TEXTOID, -1},   {0, "quotes", TEXTOID, -1},
        {0, "lines", TEXTOID, -1},   {0, "utf8", TEXTOID, -1},  {0, "empty", TEXTOID, -1},
        {0, "nothing", TEXTOID, -1}, {0, "toast", TEXTOID, -1}, {0, "bin", 17, -1},
    };
    const ds_tuple_t *t;

    build_relation(USERS_RELID, "public", "awkward", 'd', 9, cols);
    DECODE_OK(dec, &msg);

    start('I');
    put_u32(USERS_RELID);
    put_u8('N');
    put_u16(9);
    PUT_TEXT_LIT("42");
    PUT_TEXT_LIT("a\0b");
    PUT_TEXT_LIT("it's \"quoted\" \\ back");
    PUT_TEXT_LIT("line1\nline2\r\n\tx");
    PUT_TEXT_LIT("한국어 😀");
    PUT_TEXT_LIT("");
    put_u8('n');
    put_u8('u');
    put_u8('b');
    put_u32(3);
    put("\x00\xff\x10", 3);
    DECODE_OK(dec, &msg);
    DS_CHECK_INT(msg.type, DS_PGOUTPUT_INSERT);
    DS_CHECK_STR(msg.u.insert.rel->table, "awkward");
    t = &msg.u.insert.newtup;
    DS_CHECK_INT(t->nvalues, 9);
    CHECK_TEXT(t->values[0], "42");
    CHECK_TEXT(t->values[1], "a\0b");
    CHECK_TEXT(t->values[2], "it's \"quoted\" \\ back");
    CHECK_TEXT(t->values[3], "line1\nline2\r\n\tx");
    CHECK_TEXT(t->values[4], "한국어 😀");
    CHECK_TEXT(t->values[5], "");
    DS_CHECK_INT(t->values[6].kind, DS_VALUE_NULL);
    DS_CHECK(t->values[6].data == NULL);
    DS_CHECK_INT(t->values[6].len, 0);
    DS_CHECK_INT(t->values[7].kind, DS_VALUE_UNCHANGED_TOAST);
    DS_CHECK(t->values[7].data == NULL);
    DS_CHECK_INT(t->values[8].kind, DS_VALUE_BINARY);
    DS_CHECK_INT(t->values[8].len, 3);
    DS_CHECK(memcmp(t->values[8].data, "\x00\xff\x10", 3) == 0);
    /* Values borrow from the input buffer rather than copying. */
    DS_CHECK(t->values[0].data >= (const char *)g_copy &&
             t->values[0].data < (const char *)g_copy + g_mb.len);
    ds_pgoutput_free(dec);
}

static void test_row_messages_reuse_value_arrays(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_pgoutput_msg_t msg;
    const ds_value_t *first;

    announce_users(dec);
    start('I');
    put_u32(USERS_RELID);
    put_u8('N');
    put_u16(3);
    PUT_TEXT_LIT("1");
    PUT_TEXT_LIT("a");
    put_u8('n');
    DECODE_OK(dec, &msg);
    first = msg.u.insert.newtup.values;
    start('I');
    put_u32(USERS_RELID);
    put_u8('N');
    put_u16(3);
    PUT_TEXT_LIT("2");
    PUT_TEXT_LIT("b");
    put_u8('n');
    DECODE_OK(dec, &msg);
    DS_CHECK(msg.u.insert.newtup.values == first);
    CHECK_TEXT(msg.u.insert.newtup.values[0], "2");
    ds_pgoutput_free(dec);
}

static void test_update_without_old_tuple(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_pgoutput_msg_t msg;

    announce_users(dec);
    start('U');
    put_u32(USERS_RELID);
    put_u8('N');
    put_u16(3);
    PUT_TEXT_LIT("7");
    PUT_TEXT_LIT("new name");
    put_u8('u');
    DECODE_OK(dec, &msg);
    DS_CHECK_INT(msg.type, DS_PGOUTPUT_UPDATE);
    DS_CHECK_INT(msg.u.update.rel->relid, USERS_RELID);
    DS_CHECK_INT(msg.u.update.old_kind, 0);
    DS_CHECK_INT(msg.u.update.newtup.nvalues, 3);
    CHECK_TEXT(msg.u.update.newtup.values[0], "7");
    CHECK_TEXT(msg.u.update.newtup.values[1], "new name");
    DS_CHECK_INT(msg.u.update.newtup.values[2].kind, DS_VALUE_UNCHANGED_TOAST);
    ds_pgoutput_free(dec);
}

static void test_update_with_old_key(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_pgoutput_msg_t msg;

    announce_users(dec);
    /* UPDATE users SET id = 8 WHERE id = 7: the old key comes first, non-key columns null. */
    start('U');
    put_u32(USERS_RELID);
    put_u8('K');
    put_u16(3);
    PUT_TEXT_LIT("7");
    put_u8('n');
    put_u8('n');
    put_u8('N');
    put_u16(3);
    PUT_TEXT_LIT("8");
    PUT_TEXT_LIT("bob");
    PUT_TEXT_LIT("hi");
    DECODE_OK(dec, &msg);
    DS_CHECK_INT(msg.u.update.old_kind, 'K');
    DS_CHECK_INT(msg.u.update.oldtup.nvalues, 3);
    DS_CHECK_INT(msg.u.update.newtup.nvalues, 3);
    DS_CHECK(msg.u.update.oldtup.values != msg.u.update.newtup.values);
    CHECK_TEXT(msg.u.update.oldtup.values[0], "7");
    DS_CHECK_INT(msg.u.update.oldtup.values[1].kind, DS_VALUE_NULL);
    DS_CHECK_INT(msg.u.update.oldtup.values[2].kind, DS_VALUE_NULL);
    CHECK_TEXT(msg.u.update.newtup.values[0], "8");
    CHECK_TEXT(msg.u.update.newtup.values[1], "bob");
    CHECK_TEXT(msg.u.update.newtup.values[2], "hi");
    ds_pgoutput_free(dec);
}

static void test_update_with_old_full_row(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_pgoutput_msg_t msg;

    announce_users(dec);
    start('U');
    put_u32(USERS_RELID);
    put_u8('O');
    put_u16(3);
    PUT_TEXT_LIT("7");
    PUT_TEXT_LIT("old");
    put_u8('n');
    put_u8('N');
    put_u16(3);
    PUT_TEXT_LIT("7");
    PUT_TEXT_LIT("new");
    put_u8('n');
    DECODE_OK(dec, &msg);
    DS_CHECK_INT(msg.u.update.old_kind, 'O');
    CHECK_TEXT(msg.u.update.oldtup.values[1], "old");
    CHECK_TEXT(msg.u.update.newtup.values[1], "new");
    ds_pgoutput_free(dec);
}

static void test_delete_with_key_and_with_full_row(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_pgoutput_msg_t msg;

    announce_users(dec);
    start('D');
    put_u32(USERS_RELID);
    put_u8('K');
    put_u16(3);
    PUT_TEXT_LIT("7");
    put_u8('n');
    put_u8('n');
    DECODE_OK(dec, &msg);
    DS_CHECK_INT(msg.type, DS_PGOUTPUT_DELETE);
    DS_CHECK_INT(msg.u.delete.rel->relid, USERS_RELID);
    DS_CHECK_INT(msg.u.delete.old_kind, 'K');
    DS_CHECK_INT(msg.u.delete.oldtup.nvalues, 3);
    CHECK_TEXT(msg.u.delete.oldtup.values[0], "7");
    DS_CHECK_INT(msg.u.delete.oldtup.values[1].kind, DS_VALUE_NULL);

    start('D');
    put_u32(USERS_RELID);
    put_u8('O');
    put_u16(3);
    PUT_TEXT_LIT("7");
    PUT_TEXT_LIT("x");
    PUT_TEXT_LIT("y");
    DECODE_OK(dec, &msg);
    DS_CHECK_INT(msg.u.delete.old_kind, 'O');
    CHECK_TEXT(msg.u.delete.oldtup.values[2], "y");
    ds_pgoutput_free(dec);
}

static void test_truncate_several_relations(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_pgoutput_msg_t msg;
    static const col_spec_t cols[] = {{1, "id", INT4OID, -1}};

    announce_users(dec);
    announce_orders(dec);
    build_relation(16400, "public", "third", 'd', 1, cols);
    DECODE_OK(dec, &msg);

    start('T');
    put_u32(3);
    put_u8(DS_TRUNCATE_CASCADE | DS_TRUNCATE_RESTART_IDENTITY);
    put_u32(ORDERS_RELID);
    put_u32(USERS_RELID);
    put_u32(16400);
    DECODE_OK(dec, &msg);
    DS_CHECK_INT(msg.type, DS_PGOUTPUT_TRUNCATE);
    DS_CHECK_INT(msg.u.truncate.options, DS_TRUNCATE_CASCADE | DS_TRUNCATE_RESTART_IDENTITY);
    DS_CHECK_INT(msg.u.truncate.nrelations, 3);
    DS_CHECK_STR(msg.u.truncate.rels[0]->table, "orders");
    DS_CHECK_STR(msg.u.truncate.rels[0]->schema, "shop");
    DS_CHECK_STR(msg.u.truncate.rels[1]->table, "users");
    DS_CHECK_STR(msg.u.truncate.rels[2]->table, "third");

    start('T');
    put_u32(1);
    put_u8(0);
    put_u32(USERS_RELID);
    DECODE_OK(dec, &msg);
    DS_CHECK_INT(msg.u.truncate.options, 0);
    DS_CHECK_INT(msg.u.truncate.nrelations, 1);
    DS_CHECK(msg.u.truncate.rels[0] == ds_pgoutput_relation(dec, USERS_RELID));
    ds_pgoutput_free(dec);
}

/* ---- malformed messages ----------------------------------------------------------------- */

static void test_empty_message_is_rejected(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    char err[256];

    g_mb.len = 0;
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "empty");
    ds_pgoutput_free(dec);
}

static void test_truncated_relation_names_column_and_offset(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    char err[512];

    build_relation(USERS_RELID, "public", "users", 'd', 3, users_cols);
    /* Cut inside the name of column 2 ("name"): 1+4+7+6+1+2 + (1+3+4+4) + 1 + 2 bytes. */
    g_mb.len = 1 + 4 + 7 + 6 + 1 + 2 + (1 + 3 + 4 + 4) + 1 + 2;
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "truncated Relation message for public.users (relid 16384): column 2 "
                        "name not NUL-terminated at offset 34 (message length 36)");
    DS_CHECK(ds_pgoutput_relation(dec, USERS_RELID) == NULL);
    ds_pgoutput_free(dec);
}

static void test_truncated_insert_says_need_and_have(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    char err[512];

    announce_users(dec);
    start('I');
    put_u32(USERS_RELID);
    put_u8('N');
    put_u16(3);
    PUT_TEXT_LIT("1");
    put_u8('t');
    put_u16(0); /* half of column 2's length */
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "truncated Insert message for public.users (relid 16384): new tuple "
                        "column 2 value length needs 4 bytes at offset 15, have 2");
    ds_pgoutput_free(dec);
}

static void test_tuple_column_count_mismatch_names_relation(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    char err[512];

    announce_users(dec);
    start('I');
    put_u32(USERS_RELID);
    put_u8('N');
    put_u16(2);
    PUT_TEXT_LIT("1");
    PUT_TEXT_LIT("a");
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "public.users");
    CHECK_CONTAINS(err, "column count 2");
    CHECK_CONTAINS(err, "3 columns");

    /* Same for the old tuple of an Update. */
    start('U');
    put_u32(USERS_RELID);
    put_u8('O');
    put_u16(4);
    put_u8('n');
    put_u8('n');
    put_u8('n');
    put_u8('n');
    put_u8('N');
    put_u16(3);
    put_u8('n');
    put_u8('n');
    put_u8('n');
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "old tuple column count 4");
    ds_pgoutput_free(dec);
}

static void test_negative_tuple_column_count(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    char err[512];

    announce_users(dec);
    start('I');
    put_u32(USERS_RELID);
    put_u8('N');
    put_u16(0xFFFF);
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "column count -1");
    ds_pgoutput_free(dec);
}

static void test_negative_relation_column_count(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    char err[512];

    build_relation(USERS_RELID, "public", "users", 'd', 0, NULL);
    g_mb.len -= 2;
    put_u16(0x8000);
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "negative column count -32768");
    DS_CHECK(ds_pgoutput_relation(dec, USERS_RELID) == NULL);
    ds_pgoutput_free(dec);
}

static void test_unknown_relid_is_named(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    char err[512];

    announce_users(dec);
    start('I');
    put_u32(99999);
    put_u8('N');
    put_u16(1);
    put_u8('n');
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "unknown relation OID 99999");

    start('D');
    put_u32(12345);
    put_u8('K');
    put_u16(0);
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "Delete");
    CHECK_CONTAINS(err, "12345");

    start('T');
    put_u32(2);
    put_u8(0);
    put_u32(USERS_RELID);
    put_u32(4242);
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "Truncate");
    CHECK_CONTAINS(err, "4242");
    ds_pgoutput_free(dec);
}

static void test_unknown_message_type_is_named(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    char err[512];

    start('x');
    put_u32(1);
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "'x' (0x78)");

    start('\x01');
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "0x01");
    ds_pgoutput_free(dec);
}

static void test_streaming_messages_are_rejected(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    char err[512];
    static const char types[] = {'S', 'E', 'c', 'A'};

    for (size_t i = 0; i < sizeof(types); i++) {
        start(types[i]);
        put_u32(777); /* xid */
        put_u8(1);
        DS_CHECK(decode_fails(dec, err, sizeof(err)));
        CHECK_CONTAINS(err, "streaming");
        CHECK_CONTAINS(err, "not requested");
    }
    start('P');
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "two-phase");
    ds_pgoutput_free(dec);
}

static void test_negative_and_huge_lengths(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    char err[512];

    announce_users(dec);
    start('I');
    put_u32(USERS_RELID);
    put_u8('N');
    put_u16(3);
    put_u8('t');
    put_u32(0xFFFFFFFFu);
    PUT_TEXT_LIT("a");
    put_u8('n');
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "negative value length -1");

    start('I');
    put_u32(USERS_RELID);
    put_u8('N');
    put_u16(3);
    put_u8('t');
    put_u32(0x7FFFFFFFu);
    PUT_TEXT_LIT("a");
    put_u8('n');
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "needs 2147483647 bytes");

    start('M');
    put_u8(1);
    put_u64(1);
    put_str("p");
    put_u32(0xFFFFFFFFu);
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "negative content length -1");

    start('M');
    put_u8(1);
    put_u64(1);
    put_str("p");
    put_u32(0x80000000u);
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "-2147483648");

    /* A relation count that would need gigabytes is checked against the length first. */
    start('T');
    put_u32(0x7FFFFFFFu);
    put_u8(0);
    put_u32(USERS_RELID);
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "needs 8589934588 bytes");

    start('T');
    put_u32(0xFFFFFFFFu);
    put_u8(0);
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "negative relation count -1");
    ds_pgoutput_free(dec);
}

static void test_bad_kind_bytes(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    char err[512];

    announce_users(dec);
    start('I');
    put_u32(USERS_RELID);
    put_u8('K'); /* an Insert carries only a new tuple */
    put_u16(3);
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "unexpected tuple kind 'K'");

    start('U');
    put_u32(USERS_RELID);
    put_u8('X');
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "expected 'K', 'O' or 'N'");

    start('U');
    put_u32(USERS_RELID);
    put_u8('K');
    put_u16(3);
    put_u8('n');
    put_u8('n');
    put_u8('n');
    put_u8('K'); /* the second tuple must be the new one */
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "expected 'N'");

    start('D');
    put_u32(USERS_RELID);
    put_u8('N');
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "expected 'K' or 'O'");

    start('I');
    put_u32(USERS_RELID);
    put_u8('N');
    put_u16(3);
    put_u8('n');
    put_u8('q');
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "column 2 unknown value kind 'q' (0x71)");

    build_relation(USERS_RELID, "public", "users", 'z', 3, users_cols);
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "unknown replica identity 'z'");
    DS_CHECK_INT(ds_pgoutput_relation(dec, USERS_RELID)->generation, 1);
    ds_pgoutput_free(dec);
}

static void test_trailing_bytes_are_rejected(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    char err[512];

    start('B');
    put_u64(1);
    put_u64(2);
    put_u32(3);
    put_u8(0);
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "malformed Begin message: 1 trailing bytes after offset 21");

    /* A Relation with trailing bytes must not replace the cached entry. */
    announce_users(dec);
    build_relation(USERS_RELID, "public", "users", 'd', 1, users_cols);
    put_u8(0);
    DS_CHECK(decode_fails(dec, err, sizeof(err)));
    CHECK_CONTAINS(err, "trailing");
    DS_CHECK_INT(ds_pgoutput_relation(dec, USERS_RELID)->ncolumns, 3);
    DS_CHECK_INT(ds_pgoutput_relation(dec, USERS_RELID)->generation, 1);
    ds_pgoutput_free(dec);
}

static void test_small_errstr_is_not_overrun(void)
{
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_pgoutput_msg_t msg;
    char err[8];

    start('x');
    DS_CHECK(!ds_pgoutput_decode(dec, g_mb.data, g_mb.len, &msg, err, sizeof(err)));
    DS_CHECK_INT(strlen(err), 7);
    /* No room for a message at all: still rejected, nothing written. */
    DS_CHECK(!ds_pgoutput_decode(dec, g_mb.data, g_mb.len, &msg, NULL, 0));
    ds_pgoutput_free(dec);
    ds_pgoutput_free(NULL);
}

/* ---- golden recordings ------------------------------------------------------------------ */

/* What one golden file contained, summed over its messages. */
typedef struct golden_stats {
    int count[128];            /* messages per type byte */
    int update_old[128];       /* Updates per old_kind (0 = none) */
    int delete_old[128];       /* Deletes per old_kind */
    int values[128];           /* tuple values per kind byte */
    bool unpaired;             /* Begin inside a transaction or Commit outside one */
    bool lsn_backwards;        /* a Commit end LSN not after the previous one */
    uint32_t max_generation;   /* highest relation generation seen */
    int max_truncate_rels;     /* most relations in one Truncate */
    int truncate_restart;      /* Truncates with RESTART IDENTITY */
    int max_rels_in_tx;        /* most distinct relations changed in one transaction */
    char origin_name[64];      /* name from the last Origin message */
    ds_lsn_t origin_lsn;       /* its LSN */
    char message_prefix[64];   /* prefix of the last transactional Message */
    char message_content[64];  /* its content */
    int message_transactional; /* Messages flagged transactional */
    int message_outside_tx;    /* Messages between a Commit and the next Begin */
    char type_names[8][128];   /* "schema.name" cached for the first Type messages */
    int ntype_names;           /* entries used in type_names */
    char replidents[16];       /* replica identity of each Relation message, in order */
    int toast_len;             /* longest text value, in bytes */
    int all_null_rows;         /* inserted rows whose values are all NULL but the first */
    char first_row_text[4096]; /* "name=value|..." of the first Insert, for spot checks */
} golden_stats_t;

static void describe_first_row(const ds_relation_t *rel, const ds_tuple_t *t, char *out,
                               size_t size)
{
    size_t used = 0;

    out[0] = '\0';
    for (int i = 0; i < t->nvalues && used < size; i++) {
        const ds_value_t *v = &t->values[i];
        int n;
        if (v->kind == DS_VALUE_TEXT)
            n = snprintf(out + used, size - used, "%s=%.*s|", rel->columns[i].name, (int)v->len,
                         v->data);
        else
            n = snprintf(out + used, size - used, "%s=<%c>|", rel->columns[i].name, v->kind);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

static void count_tuple(golden_stats_t *st, const ds_tuple_t *t)
{
    for (int i = 0; i < t->nvalues; i++) {
        st->values[t->values[i].kind & 127]++;
        if (t->values[i].kind == DS_VALUE_TEXT && (int)t->values[i].len > st->toast_len)
            st->toast_len = (int)t->values[i].len;
    }
}

/* Decodes every message of one golden file; false (with a report) on the first failure. */
static bool decode_golden_file(const char *path, golden_stats_t *st)
{
    FILE *f = fopen(path, "r");
    ds_pgoutput_t *dec = ds_pgoutput_new();
    char *line = NULL, err[512];
    size_t cap = 0, bufcap = 0;
    uint8_t *buf = NULL;
    ssize_t n;
    int lineno = 0, nmessages = 0;
    bool in_tx = false, ok = true;
    ds_lsn_t last_end = 0;
    uint32_t tx_rels[64];
    int ntx_rels = 0;

    memset(st, 0, sizeof(*st));
    if (!f || !dec) {
        fprintf(stderr, "%s: cannot open\n", path);
        ok = false;
        goto done;
    }
    while ((n = getline(&line, &cap, f)) >= 0) {
        char *sp, *hex;
        size_t hexlen, len;
        ds_lsn_t lsn;
        ds_pgoutput_msg_t msg;

        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        sp = strchr(line, ' ');
        if (!sp) {
            fprintf(stderr, "%s:%d: expected \"LSN HEX\"\n", path, lineno);
            ok = false;
            break;
        }
        *sp = '\0';
        hex = sp + 1;
        hexlen = strlen(hex);
        if (!ds_lsn_parse(line, &lsn) || hexlen % 2 != 0 || hexlen == 0) {
            fprintf(stderr, "%s:%d: bad LSN or odd-length hex\n", path, lineno);
            ok = false;
            break;
        }
        len = hexlen / 2;
        if (len > bufcap) {
            free(buf);
            bufcap = len;
            buf = malloc(bufcap);
            if (!buf)
                abort();
        }
        for (size_t i = 0; i < len; i++) {
            int hi = ds_hex_value(hex[2 * i]), lo = ds_hex_value(hex[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                fprintf(stderr, "%s:%d: not lowercase hex at column %zu\n", path, lineno,
                        (size_t)(hex - line) + 2 * i + 1);
                ok = false;
                goto done;
            }
            buf[i] = (uint8_t)(hi << 4 | lo);
        }
        if (!ds_pgoutput_decode(dec, buf, len, &msg, err, sizeof(err))) {
            fprintf(stderr, "%s:%d: %s\n", path, lineno, err);
            ok = false;
            break;
        }
        nmessages++;
        st->count[msg.type & 127]++;
        switch (msg.type) {
        case DS_PGOUTPUT_BEGIN:
            if (in_tx)
                st->unpaired = true;
            in_tx = true;
            ntx_rels = 0;
            break;
        case DS_PGOUTPUT_COMMIT:
            if (!in_tx)
                st->unpaired = true;
            if (msg.u.commit.end_lsn <= last_end)
                st->lsn_backwards = true;
            last_end = msg.u.commit.end_lsn;
            in_tx = false;
            break;
        case DS_PGOUTPUT_ORIGIN:
            snprintf(st->origin_name, sizeof(st->origin_name), "%s", msg.u.origin.name);
            st->origin_lsn = msg.u.origin.commit_lsn;
            break;
        case DS_PGOUTPUT_RELATION: {
            size_t k = strlen(st->replidents);
            if (k + 1 < sizeof(st->replidents))
                st->replidents[k] = msg.u.relation.rel->replident;
            if (msg.u.relation.rel->generation > st->max_generation)
                st->max_generation = msg.u.relation.rel->generation;
            break;
        }
        case DS_PGOUTPUT_TYPE:
            if (st->ntype_names < 8)
                snprintf(st->type_names[st->ntype_names++], sizeof(st->type_names[0]), "%s",
                         ds_pgoutput_type_name(dec, msg.u.type.oid));
            break;
        case DS_PGOUTPUT_INSERT: {
            const ds_tuple_t *t = &msg.u.insert.newtup;
            int nulls = 0;
            count_tuple(st, t);
            for (int i = 1; i < t->nvalues; i++)
                nulls += t->values[i].kind == DS_VALUE_NULL;
            if (t->nvalues > 1 && nulls == t->nvalues - 1)
                st->all_null_rows++;
            if (st->count['I'] == 1)
                describe_first_row(msg.u.insert.rel, t, st->first_row_text,
                                   sizeof(st->first_row_text));
            break;
        }
        case DS_PGOUTPUT_UPDATE:
            st->update_old[(unsigned char)msg.u.update.old_kind]++;
            if (msg.u.update.old_kind)
                count_tuple(st, &msg.u.update.oldtup);
            count_tuple(st, &msg.u.update.newtup);
            break;
        case DS_PGOUTPUT_DELETE:
            st->delete_old[(unsigned char)msg.u.delete.old_kind]++;
            count_tuple(st, &msg.u.delete.oldtup);
            break;
        case DS_PGOUTPUT_TRUNCATE:
            if (msg.u.truncate.nrelations > st->max_truncate_rels)
                st->max_truncate_rels = msg.u.truncate.nrelations;
            if (msg.u.truncate.options & DS_TRUNCATE_RESTART_IDENTITY)
                st->truncate_restart++;
            break;
        case DS_PGOUTPUT_MESSAGE:
            if (msg.u.message.flags & 1) {
                snprintf(st->message_prefix, sizeof(st->message_prefix), "%s",
                         msg.u.message.prefix);
                snprintf(st->message_content, sizeof(st->message_content), "%.*s",
                         (int)msg.u.message.content_len, msg.u.message.content);
            }
            st->message_transactional += msg.u.message.flags & 1;
            st->message_outside_tx += !in_tx;
            break;
        }
        /* Distinct relations changed in this transaction. */
        if (in_tx && (msg.type == DS_PGOUTPUT_INSERT || msg.type == DS_PGOUTPUT_UPDATE ||
                      msg.type == DS_PGOUTPUT_DELETE)) {
            uint32_t relid = msg.type == DS_PGOUTPUT_INSERT   ? msg.u.insert.rel->relid
                             : msg.type == DS_PGOUTPUT_UPDATE ? msg.u.update.rel->relid
                                                              : msg.u.delete.rel->relid;
            int k;
            for (k = 0; k < ntx_rels && tx_rels[k] != relid; k++)
                ;
            if (k == ntx_rels && ntx_rels < 64)
                tx_rels[ntx_rels++] = relid;
            if (ntx_rels > st->max_rels_in_tx)
                st->max_rels_in_tx = ntx_rels;
        }
    }
    if (ok && (in_tx || nmessages == 0)) {
        fprintf(stderr, "%s: %s\n", path,
                nmessages ? "ends inside a transaction" : "holds no messages");
        ok = false;
    }
done:
    if (f)
        fclose(f);
    free(line);
    free(buf);
    ds_pgoutput_free(dec);
    return ok;
}

static const char *golden_dir(char *out, size_t size)
{
    const char *env = getenv("DS_GOLDEN_DIR");
    const char *slash;

    if (env && *env) {
        snprintf(out, size, "%s/pgoutput", env);
        return out;
    }
    /* Run by hand outside ctest: this file is tests/unit/test_pgoutput.c. */
    slash = strrchr(__FILE__, '/');
    snprintf(out, size, "%.*s/../golden/pgoutput", slash ? (int)(slash - __FILE__) : 1,
             slash ? __FILE__ : ".");
    return out;
}

static bool load_golden(const char *scenario, golden_stats_t *st)
{
    char dir[1024], path[1200];
    bool ok;

    snprintf(path, sizeof(path), "%s/%s.in", golden_dir(dir, sizeof(dir)), scenario);
    ok = decode_golden_file(path, st);
    if (ok && (st->unpaired || st->lsn_backwards)) {
        fprintf(stderr, "%s: Begin/Commit unpaired or commit LSNs not increasing\n", path);
        ok = false;
    }
    return ok;
}

static void test_golden_every_file_decodes(void)
{
    char dir[1024], path[1400];
    DIR *d = opendir(golden_dir(dir, sizeof(dir)));
    struct dirent *de;
    int nfiles = 0;
    golden_stats_t st;

    DS_CHECK(d != NULL);
    if (!d)
        return;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 4 || strcmp(de->d_name + n - 3, ".in") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        nfiles++;
        ds_test_checks++;
        if (!decode_golden_file(path, &st)) {
            ds_test_failures++;
            fprintf(stderr, "%s:%d: golden file %s does not decode\n", __FILE__, __LINE__, path);
        }
    }
    closedir(d);
    DS_CHECK(nfiles >= 11);
}

static void test_golden_insert_update_delete(void)
{
    golden_stats_t st;

    DS_CHECK(load_golden("insert_update_delete", &st));
    DS_CHECK_INT(st.count['B'], 3);
    DS_CHECK_INT(st.count['C'], 3);
    DS_CHECK_INT(st.count['I'], 1);
    DS_CHECK_INT(st.count['U'], 1);
    DS_CHECK_INT(st.count['D'], 1);
    DS_CHECK_INT(st.update_old[0], 1); /* non-key update: no old tuple */
    DS_CHECK_INT(st.delete_old['K'], 1);
    DS_CHECK_STR(st.replidents, "d");
}

static void test_golden_type_matrix(void)
{
    golden_stats_t st;

    DS_CHECK(load_golden("type_matrix", &st));
    DS_CHECK_INT(st.count['I'], 2);
    DS_CHECK_INT(st.count['Y'], 1);
    DS_CHECK_STR(st.type_names[0], "public.mood");
    DS_CHECK_INT(st.all_null_rows, 1);
    /* Spot checks: the text forms capture will see under the recorder's session settings. */
    CHECK_CONTAINS(st.first_row_text, "|c_numeric_nan=NaN|");
    CHECK_CONTAINS(st.first_row_text, "|c_numeric_big=123456789012345678901234567890|");
    CHECK_CONTAINS(st.first_row_text, "|c_float8_nan=NaN|c_float8_inf=Infinity|"
                                      "c_float8_ninf=-Infinity|c_float8_small=1.5e-07|");
    CHECK_CONTAINS(st.first_row_text, "|c_bool=t|");
    CHECK_CONTAINS(st.first_row_text, "한국어");
    CHECK_CONTAINS(st.first_row_text, "😀");
    CHECK_CONTAINS(st.first_row_text, "|c_mood=happy|");
    CHECK_CONTAINS(st.first_row_text, "|c_timestamptz=2024-02-29 12:34:56.789012+00|");
    CHECK_CONTAINS(st.first_row_text, "|c_interval=P1Y2M3DT4H5M6.5S|");
    CHECK_CONTAINS(st.first_row_text, "|c_int_arr={1,NULL,3}|c_int_arr_empty={}|");
    CHECK_CONTAINS(st.first_row_text, "|c_bytea=\\x00ff10|");
    CHECK_CONTAINS(st.first_row_text, "|c_char3=ab |");
}

static void test_golden_key_change(void)
{
    golden_stats_t st;

    DS_CHECK(load_golden("key_change", &st));
    DS_CHECK_INT(st.update_old['K'], 1);
}

static void test_golden_replica_identity_full(void)
{
    golden_stats_t st;

    DS_CHECK(load_golden("replica_identity_full", &st));
    DS_CHECK_INT(st.update_old['O'], 1);
    DS_CHECK_INT(st.delete_old['O'], 1);
    DS_CHECK_STR(st.replidents, "f");
}

static void test_golden_no_pk_full(void)
{
    golden_stats_t st;

    DS_CHECK(load_golden("no_pk_full", &st));
    DS_CHECK_INT(st.update_old['O'], 1);
    DS_CHECK_INT(st.delete_old['O'], 1);
    DS_CHECK_STR(st.replidents, "f");
}

static void test_golden_toast_unchanged(void)
{
    golden_stats_t st;

    DS_CHECK(load_golden("toast_unchanged", &st));
    DS_CHECK(st.values['u'] >= 1);
    DS_CHECK(st.toast_len >= 20000);
    DS_CHECK_INT(st.count['U'], 1);
}

static void test_golden_truncate(void)
{
    golden_stats_t st;

    DS_CHECK(load_golden("truncate", &st));
    DS_CHECK(st.count['T'] >= 1);
    DS_CHECK_INT(st.max_truncate_rels, 2);
    DS_CHECK_INT(st.truncate_restart, 1);
}

static void test_golden_origin(void)
{
    golden_stats_t st;

    DS_CHECK(load_golden("origin", &st));
    DS_CHECK_INT(st.count['O'], 1);
    DS_CHECK_STR(st.origin_name, "dualsync");
    DS_CHECK(st.origin_lsn == UINT64_C(0x1234ABCD));
    DS_CHECK_INT(st.count['B'], 2);
}

static void test_golden_alter_table(void)
{
    golden_stats_t st;

    DS_CHECK(load_golden("alter_table", &st));
    DS_CHECK_INT(st.count['I'], 3);
    DS_CHECK_INT(st.count['R'], 3);
    DS_CHECK_INT(st.max_generation, 3);
}

static void test_golden_logical_message(void)
{
    golden_stats_t st;

    DS_CHECK(load_golden("logical_message", &st));
    DS_CHECK_INT(st.count['M'], 2);
    DS_CHECK_INT(st.message_transactional, 1);
    DS_CHECK_INT(st.message_outside_tx, 1);
    DS_CHECK_STR(st.message_prefix, "dualsync");
    DS_CHECK_STR(st.message_content, "hello");
    DS_CHECK_INT(st.count['I'], 2);
}

static void test_golden_multi_statement_tx(void)
{
    golden_stats_t st;

    DS_CHECK(load_golden("multi_statement_tx", &st));
    DS_CHECK_INT(st.count['B'], 1);
    DS_CHECK_INT(st.max_rels_in_tx, 2);
    DS_CHECK(st.count['I'] + st.count['U'] + st.count['D'] >= 5);
}

int main(void)
{
    DS_RUN(test_begin_fields);
    DS_RUN(test_commit_fields_and_pre_epoch_timestamp);
    DS_RUN(test_origin_fields);
    DS_RUN(test_message_transactional_with_binary_content);
    DS_RUN(test_message_non_transactional_empty);
    DS_RUN(test_type_cached_as_schema_dot_name);
    DS_RUN(test_type_empty_namespace_is_pg_catalog);
    DS_RUN(test_many_types);
    DS_RUN(test_relation_fields);
    DS_RUN(test_relation_empty_namespace_is_pg_catalog);
    DS_RUN(test_relation_replace_bumps_generation);
    DS_RUN(test_many_relations_keep_their_entries);
    DS_RUN(test_insert_value_kinds_and_awkward_text);
    DS_RUN(test_row_messages_reuse_value_arrays);
    DS_RUN(test_update_without_old_tuple);
    DS_RUN(test_update_with_old_key);
    DS_RUN(test_update_with_old_full_row);
    DS_RUN(test_delete_with_key_and_with_full_row);
    DS_RUN(test_truncate_several_relations);
    DS_RUN(test_empty_message_is_rejected);
    DS_RUN(test_truncated_relation_names_column_and_offset);
    DS_RUN(test_truncated_insert_says_need_and_have);
    DS_RUN(test_tuple_column_count_mismatch_names_relation);
    DS_RUN(test_negative_tuple_column_count);
    DS_RUN(test_negative_relation_column_count);
    DS_RUN(test_unknown_relid_is_named);
    DS_RUN(test_unknown_message_type_is_named);
    DS_RUN(test_streaming_messages_are_rejected);
    DS_RUN(test_negative_and_huge_lengths);
    DS_RUN(test_bad_kind_bytes);
    DS_RUN(test_trailing_bytes_are_rejected);
    DS_RUN(test_small_errstr_is_not_overrun);
    DS_RUN(test_golden_every_file_decodes);
    DS_RUN(test_golden_insert_update_delete);
    DS_RUN(test_golden_type_matrix);
    DS_RUN(test_golden_key_change);
    DS_RUN(test_golden_replica_identity_full);
    DS_RUN(test_golden_no_pk_full);
    DS_RUN(test_golden_toast_unchanged);
    DS_RUN(test_golden_truncate);
    DS_RUN(test_golden_origin);
    DS_RUN(test_golden_alter_table);
    DS_RUN(test_golden_logical_message);
    DS_RUN(test_golden_multi_statement_tx);
    free(g_copy);
    return ds_test_report();
}
