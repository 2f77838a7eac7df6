/*
 * changes.c: decoded pgoutput messages -> Kafka records, with Debezium's rules.
 *
 * Per relation the builder caches the topic name and the key mask, recomputed when the
 * decoder's generation of the relation changes (a Relation message after DDL). The row path
 * allocates nothing: the key and value are written into buffers the builder keeps.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualsync/changes.h"

#define DEFAULT_PLACEHOLDER "__debezium_unavailable_value"

/* What the builder knows about one relation. */
typedef struct rel_entry {
    uint32_t relid;      /* pg_class OID; 0 marks an empty slot (no relation has OID 0) */
    uint32_t generation; /* the decoder's generation this entry was computed for; 0: stale */
    char *topic;         /* owned "<topic_prefix>.<schema>.<table>" */
    ds_buf_t key_head;   /* json-with-schema only: {"schema":<key schema>,"payload": */
    ds_buf_t value_head; /* json-with-schema only: {"schema":<envelope schema>,"payload": */
    char **null_text;    /* json-with-schema only: per column, the text value written for a
                          * NULL of a NOT NULL column (Debezium's fallback), or NULL; owned */
    int nnull_text;      /* entries in null_text; 0 when no column has one */
    bool *key_mask;      /* owned, mask_cap entries; the first ncolumns are in use */
    int mask_cap;        /* entries allocated in key_mask */
    int nkeys;           /* key columns; 0 means the table is keyless: records get a null key */
    bool nullable_key;   /* keyed by all columns (FULL, no primary key): NULLs are values */
    uint64_t tx_number;  /* the transaction tx_index refers to (ds_changes.tx_number); 0: none */
    size_t tx_index;     /* this table's entry in ds_changes.tx_tables during tx_number */
} rel_entry_t;

/* Events of one table in the current transaction (the END record's data_collections). */
typedef struct tx_table {
    ds_buf_t name; /* "<schema>.<table>", Debezium's data collection id; memory reused */
    int64_t count; /* events so far: the last one's data_collection_order */
    int32_t hash;  /* Java's String.hashCode() of name, for the END record's order */
} tx_table_t;

struct ds_changes {
    /* Options, copied. */
    char *topic_prefix;            /* first part of every topic */
    char *db;                      /* source.db, may be NULL */
    char *version;                 /* source.version */
    char *placeholder;             /* written for unchanged TOASTed values */
    char **skip_origins;           /* NULL-terminated, owned */
    bool tombstones;               /* a tombstone follows every delete */
    ds_primary_key_fn primary_key; /* key columns of FULL tables, may be NULL */
    void *primary_key_ctx;         /* its argument */
    ds_value_format_t format;      /* how values are written (transaction_topic borrowed) */
    ds_connect_columns_fn columns; /* the catalog's columns, for the schemas; may be NULL */
    void *columns_ctx;             /* its argument */
    ds_buf_t schema_key;           /* json-with-schema: the record's key in its envelope */
    ds_value_t *filled;            /* json-with-schema: a tuple's values with null_text */
    int filled_cap;                /* entries in filled */

    /* The current transaction. */
    bool in_tx;               /* between Begin and Commit */
    bool skipping;            /* its origin is in skip_origins: drop its rows */
    uint32_t xid;             /* source.txId */
    int64_t commit_time_us;   /* Begin's commit time, microseconds since the Unix epoch */
    ds_lsn_t last_commit_lsn; /* end LSN of the previous Commit, 0 before the first */
    bool has_origin;          /* an Origin message came: source.origin, origin_lsn */
    ds_buf_t origin;          /* its name */
    ds_lsn_t origin_lsn;      /* its commit LSN on the origin server */

    /* Transaction metadata (format.provide_transaction_metadata). */
    char *tx_topic;        /* "<topic_prefix>.<transaction_topic>", NULL when off */
    uint64_t tx_number;    /* counts Begins, so rel entries know whose tx_index they hold */
    ds_lsn_t begin_lsn;    /* the Begin message's LSN: the BEGIN record's id */
    bool tx_begun;         /* the current transaction's BEGIN record is sent */
    int64_t tx_total;      /* its events so far: the last one's total_order */
    tx_table_t *tx_tables; /* its tables, in the order of their first event */
    size_t tx_ntables;     /* entries in use */
    size_t tx_tables_cap;  /* entries allocated (names kept for reuse) */
    size_t *tx_order;      /* tx_tables_cap entries: the END record's order */
    ds_buf_t tx_key;       /* a BEGIN or END record's key */
    ds_buf_t tx_value;     /* and value */

    /* Relation cache: open addressing keyed by relid, never shrinks (one entry per table). */
    rel_entry_t *rels; /* rels_cap slots */
    size_t rels_cap;   /* a power of two, or 0 before the first relation */
    size_t rels_count; /* occupied slots */

    /* Reused for every record. */
    ds_buf_t key;       /* the key JSON */
    ds_buf_t value;     /* the value JSON */
    ds_buf_t hdr_key;   /* the other key of a primary-key change, for its header */
    ds_value_t *merged; /* new tuple with unchanged-TOAST key values taken from the old */
    int merged_cap;     /* entries in merged */
};

static char *dup_or_null(const char *s, bool *ok)
{
    char *copy;

    if (!s)
        return NULL;
    copy = strdup(s);
    if (!copy)
        *ok = false;
    return copy;
}

ds_changes_t *ds_changes_new(const ds_changes_options_t *options)
{
    ds_changes_t *ch;
    bool ok = true;
    size_t n = 0;

    /* A missing topic_prefix is a caller bug, reported the same way as out of memory. */
    if (!options || !options->topic_prefix)
        return NULL;
    ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    ch->topic_prefix = dup_or_null(options->topic_prefix, &ok);
    ch->db = dup_or_null(options->db, &ok);
    ch->version = dup_or_null(options->version ? options->version : DUALSYNC_VERSION, &ok);
    ch->placeholder =
        dup_or_null(options->unavailable_value_placeholder ? options->unavailable_value_placeholder
                                                           : DEFAULT_PLACEHOLDER,
                    &ok);
    ch->tombstones = options->tombstones_on_delete;
    ch->primary_key = options->primary_key;
    ch->primary_key_ctx = options->primary_key_ctx;
    ch->columns = options->columns;
    ch->columns_ctx = options->columns_ctx;
    if (options->value_format)
        ch->format = *options->value_format;
    else
        ds_value_format_init(&ch->format);
    if (options->skip_origins)
        while (options->skip_origins[n])
            n++;
    ch->skip_origins = calloc(n + 1, sizeof(char *));
    if (!ch->skip_origins)
        ok = false;
    for (size_t i = 0; ok && i < n; i++)
        ch->skip_origins[i] = dup_or_null(options->skip_origins[i], &ok);
    if (ok && ch->format.provide_transaction_metadata) {
        const char *name = ch->format.transaction_topic ? ch->format.transaction_topic
                                                        : DS_DEFAULT_TRANSACTION_TOPIC;

        if (asprintf(&ch->tx_topic, "%s.%s", ch->topic_prefix, name) < 0) {
            ch->tx_topic = NULL;
            ok = false;
        }
    }
    /* The copy must not outlive the caller's string: the topic is built above. */
    ch->format.transaction_topic = NULL;
    if (!ok) {
        ds_changes_free(ch);
        return NULL;
    }
    return ch;
}

static void free_null_texts(rel_entry_t *e)
{
    for (int i = 0; i < e->nnull_text; i++)
        free(e->null_text[i]);
    free(e->null_text);
    e->null_text = NULL;
    e->nnull_text = 0;
}

void ds_changes_free(ds_changes_t *changes)
{
    if (!changes)
        return;
    free(changes->topic_prefix);
    free(changes->db);
    free(changes->version);
    free(changes->placeholder);
    if (changes->skip_origins)
        for (char **o = changes->skip_origins; *o; o++)
            free(*o);
    free(changes->skip_origins);
    ds_buf_free(&changes->schema_key);
    free(changes->filled);
    for (size_t i = 0; i < changes->rels_cap; i++) {
        free(changes->rels[i].topic);
        free(changes->rels[i].key_mask);
        ds_buf_free(&changes->rels[i].key_head);
        ds_buf_free(&changes->rels[i].value_head);
        free_null_texts(&changes->rels[i]);
    }
    free(changes->rels);
    for (size_t i = 0; i < changes->tx_tables_cap; i++)
        ds_buf_free(&changes->tx_tables[i].name);
    free(changes->tx_tables);
    free(changes->tx_order);
    free(changes->tx_topic);
    ds_buf_free(&changes->tx_key);
    ds_buf_free(&changes->tx_value);
    ds_buf_free(&changes->origin);
    ds_buf_free(&changes->hdr_key);
    ds_buf_free(&changes->key);
    ds_buf_free(&changes->value);
    free(changes->merged);
    free(changes);
}

bool ds_changes_in_transaction(const ds_changes_t *changes)
{
    return changes->in_tx;
}

bool ds_changes_skipping(const ds_changes_t *changes)
{
    return changes->skipping;
}

/* ---- relation cache ------------------------------------------------------------------- */

/* Relation OIDs are handed out sequentially: mix them before masking (murmur3 finalizer). */
static size_t hash_relid(uint32_t relid, size_t cap)
{
    relid ^= relid >> 16;
    relid *= 0x85ebca6bu;
    relid ^= relid >> 13;
    relid *= 0xc2b2ae35u;
    relid ^= relid >> 16;
    return (size_t)relid & (cap - 1);
}

static rel_entry_t *rel_slot(rel_entry_t *rels, size_t cap, uint32_t relid)
{
    size_t i = hash_relid(relid, cap);

    while (rels[i].relid != 0 && rels[i].relid != relid)
        i = (i + 1) & (cap - 1);
    return &rels[i];
}

/* The entry for relid, created empty (stale) when missing; NULL when out of memory. */
static rel_entry_t *rel_entry(ds_changes_t *ch, uint32_t relid)
{
    rel_entry_t *e;

    /* Keep the load under one half so probes stay short. */
    if ((ch->rels_count + 1) * 2 > ch->rels_cap) {
        size_t cap = ch->rels_cap ? ch->rels_cap * 2 : 32;
        rel_entry_t *rels = calloc(cap, sizeof(*rels));

        if (!rels)
            return NULL;
        for (size_t i = 0; i < ch->rels_cap; i++)
            if (ch->rels[i].relid != 0)
                *rel_slot(rels, cap, ch->rels[i].relid) = ch->rels[i];
        free(ch->rels);
        ch->rels = rels;
        ch->rels_cap = cap;
    }
    e = rel_slot(ch->rels, ch->rels_cap, relid);
    if (e->relid == 0) {
        e->relid = relid;
        ch->rels_count++;
    }
    return e;
}

/* Fills e->key_mask / nkeys / nullable_key for rel. */
static bool compute_key(ds_changes_t *ch, rel_entry_t *e, const ds_relation_t *rel, char *errstr,
                        size_t errstr_size)
{
    const char *const *pk = NULL;

    if (rel->ncolumns > e->mask_cap) {
        bool *mask = realloc(e->key_mask, (size_t)rel->ncolumns * sizeof(bool));

        if (!mask)
            return ds_fail(errstr, errstr_size, "out of memory caching the key of %s.%s",
                           rel->schema, rel->table);
        e->key_mask = mask;
        e->mask_cap = rel->ncolumns;
    }
    e->nkeys = 0;
    e->nullable_key = false;

    /* Under REPLICA IDENTITY FULL pgoutput flags every column as identity; Debezium keys such
     * tables by their primary key, so ask for it. */
    if (rel->replident == DS_REPLIDENT_FULL && ch->primary_key)
        pk = ch->primary_key(ch->primary_key_ctx, rel->schema, rel->table);

    if (pk && pk[0]) {
        for (int i = 0; i < rel->ncolumns; i++)
            e->key_mask[i] = false;
        for (const char *const *name = pk; *name; name++) {
            int i;

            for (i = 0; i < rel->ncolumns; i++)
                if (strcmp(rel->columns[i].name, *name) == 0)
                    break;
            if (i == rel->ncolumns)
                return ds_fail(errstr, errstr_size,
                               "primary key column \"%s\" of %s.%s is not among the columns "
                               "the publication sends; publish every primary key column",
                               *name, rel->schema, rel->table);
            if (!e->key_mask[i]) {
                e->key_mask[i] = true;
                e->nkeys++;
            }
        }
        return true;
    }
    if (rel->replident == DS_REPLIDENT_FULL) {
        /* FULL without a primary key (or without a way to ask): the whole row is the key,
         * and a NULL in it is just a value. */
        for (int i = 0; i < rel->ncolumns; i++)
            e->key_mask[i] = true;
        e->nkeys = rel->ncolumns;
        e->nullable_key = true;
        return true;
    }
    for (int i = 0; i < rel->ncolumns; i++) {
        e->key_mask[i] = rel->columns[i].is_key;
        e->nkeys += rel->columns[i].is_key;
    }
    return true;
}

static bool with_schema(const ds_changes_t *ch)
{
    return ch->format.message_format == DS_MESSAGE_JSON_WITH_SCHEMA;
}

/* The JSON of default text @p text as a value of column i, written by the envelope writer
 * itself (one column, the others left out), so a field's "default" reads like its values
 * under every value setting. NULL when the writer refuses the text. */
static char *default_json(ds_changes_t *ch, const ds_relation_t *rel, int i,
                          const ds_connect_column_t *info, const char *text)
{
    ds_column_t col = rel->columns[i];
    ds_relation_t one = *rel;
    ds_value_t value = {DS_VALUE_TEXT, text, (uint32_t)strlen(text)};
    ds_tuple_t tup = {1, &value};
    ds_envelope_source_t src = {.version = "", .name = "", .db = "", .snapshot = "false"};
    ds_envelope_options_t opts = {.unavailable_value_placeholder = ch->placeholder,
                                  .format = &ch->format};
    ds_buf_t out = DS_BUF_INIT, prefix = DS_BUF_INIT;
    char err[256];
    char *json = NULL;
    const char *start, *end;

    if (info && info->base_oid) {
        col.type_oid = info->base_oid;
        if (col.typmod < 0)
            col.typmod = info->base_typmod;
    }
    one.ncolumns = 1;
    one.columns = &col;
    ds_buf_append_str(&prefix, "\"after\":{");
    ds_buf_append_json_string(&prefix, col.name, strlen(col.name));
    ds_buf_append_char(&prefix, ':');
    if (ds_envelope_write_value(&out, 'c', &one, NULL, &tup, &src, &opts, 0, err, sizeof(err)) &&
        (start = strstr(out.data, prefix.data)) != NULL) {
        /* A JSON string cannot hold an unescaped quote, so the value ends at the first
         * "}," followed by the source member. */
        start += prefix.len;
        end = strstr(start, "},\"source\":");
        if (end)
            json = strndup(start, (size_t)(end - start));
    }
    ds_buf_free(&out);
    ds_buf_free(&prefix);
    return json;
}

/* The JsonConverter heads of the relation's keys and values: {"schema":...,"payload":
 * Written here, once per relation, so that a record costs a copy of them. */
static bool build_schemas(ds_changes_t *ch, rel_entry_t *e, const ds_relation_t *rel, char *errstr,
                          size_t errstr_size)
{
    const ds_connect_column_t *catalog = NULL;
    const ds_connect_column_t **info;
    char **defaults;
    int ncatalog = 0;

    info = calloc(rel->ncolumns > 0 ? (size_t)rel->ncolumns : 1, sizeof(*info));
    defaults = calloc(rel->ncolumns > 0 ? (size_t)rel->ncolumns : 1, sizeof(*defaults));
    if (!info || !defaults) {
        free(info);
        free(defaults);
        return ds_fail(errstr, errstr_size, "out of memory writing the schema of %s.%s",
                       rel->schema, rel->table);
    }
    if (ch->columns)
        catalog = ch->columns(ch->columns_ctx, rel->schema, rel->table, &ncatalog);
    for (int i = 0; i < rel->ncolumns; i++)
        for (int k = 0; catalog && k < ncatalog; k++)
            if (strcmp(catalog[k].name, rel->columns[i].name) == 0) {
                info[i] = &catalog[k];
                break;
            }
    for (int i = 0; i < rel->ncolumns; i++) {
        ds_buf_t text = DS_BUF_INIT;

        if (ds_connect_schema_append_default_text(&text, rel, i, info[i], &ch->format))
            defaults[i] = default_json(ch, rel, i, info[i], text.data ? text.data : "");
        ds_buf_free(&text);
    }
    ds_buf_reset(&e->key_head);
    ds_buf_append_str(&e->key_head, "{\"schema\":");
    ds_connect_schema_append_key(&e->key_head, e->topic, rel, e->key_mask, info,
                                 (const char *const *)defaults, &ch->format);
    ds_buf_append_str(&e->key_head, ",\"payload\":");
    ds_buf_reset(&e->value_head);
    ds_buf_append_str(&e->value_head, "{\"schema\":");
    ds_connect_schema_append_envelope(&e->value_head, e->topic, rel, info,
                                      (const char *const *)defaults, &ch->format);
    ds_buf_append_str(&e->value_head, ",\"payload\":");
    for (int i = 0; i < rel->ncolumns; i++)
        free(defaults[i]);
    free(defaults);

    /* A NULL where the schema says NOT NULL would make JsonConverter refuse the record. */
    free_null_texts(e);
    for (int i = 0; i < rel->ncolumns; i++) {
        ds_buf_t text = DS_BUF_INIT;

        if (!ds_connect_schema_append_null_text(&text, rel, i, info[i]))
            continue;
        if (!e->null_text) {
            e->null_text = calloc((size_t)rel->ncolumns, sizeof(char *));
            if (!e->null_text) {
                ds_buf_free(&text);
                free(info);
                return ds_fail(errstr, errstr_size, "out of memory writing the schema of %s.%s",
                               rel->schema, rel->table);
            }
            e->nnull_text = rel->ncolumns;
        }
        /* An empty text is still a value: keep a string even when nothing was appended. */
        e->null_text[i] = text.data ? text.data : strdup("");
        if (!e->null_text[i]) {
            free(info);
            return ds_fail(errstr, errstr_size, "out of memory writing the schema of %s.%s",
                           rel->schema, rel->table);
        }
    }
    free(info);
    return true;
}

/* The key of rec inside JsonConverter's envelope, in ch->schema_key: rec is pointed at it. */
static void wrap_key(ds_changes_t *ch, const rel_entry_t *e, char op, ds_change_record_t *rec)
{
    if (!with_schema(ch) || !rec->key)
        return;
    ds_buf_reset(&ch->schema_key);
    if (op == 't')
        ds_buf_append_str(&ch->schema_key,
                          "{\"schema\":" DS_CONNECT_TRUNCATE_KEY_SCHEMA ",\"payload\":");
    else
        ds_buf_append(&ch->schema_key, e->key_head.data, e->key_head.len);
    ds_buf_append(&ch->schema_key, rec->key, rec->key_len);
    ds_buf_append_char(&ch->schema_key, '}');
    rec->key = ch->schema_key.data;
    rec->key_len = ch->schema_key.len;
}

/* tup, or a copy in ch->filled whose NULLs in NOT NULL columns hold Debezium's fallback. */
static const ds_tuple_t *fill_not_null(ds_changes_t *ch, const rel_entry_t *e,
                                       const ds_tuple_t *tup, ds_tuple_t *filled)
{
    bool needed = false;

    if (!tup || !e->null_text || tup->nvalues != e->nnull_text)
        return tup;
    for (int i = 0; i < tup->nvalues && !needed; i++)
        needed = e->null_text[i] && tup->values[i].kind == DS_VALUE_NULL;
    if (!needed)
        return tup;
    if (tup->nvalues > ch->filled_cap) {
        ds_value_t *vals = realloc(ch->filled, (size_t)tup->nvalues * sizeof(ds_value_t));

        if (!vals)
            return tup; /* null then: the sink refuses the record and says which */
        ch->filled = vals;
        ch->filled_cap = tup->nvalues;
    }
    for (int i = 0; i < tup->nvalues; i++) {
        ch->filled[i] = tup->values[i];
        if (e->null_text[i] && tup->values[i].kind == DS_VALUE_NULL) {
            ch->filled[i].kind = DS_VALUE_TEXT;
            ch->filled[i].data = e->null_text[i];
            ch->filled[i].len = (uint32_t)strlen(e->null_text[i]);
        }
    }
    filled->nvalues = tup->nvalues;
    filled->values = ch->filled;
    return filled;
}

/* The cache entry for rel, recomputed when the decoder replaced the relation. */
static rel_entry_t *rel_prepare(ds_changes_t *ch, const ds_relation_t *rel, char *errstr,
                                size_t errstr_size)
{
    rel_entry_t *e = rel_entry(ch, rel->relid);
    size_t prefix_len, schema_len, table_len;
    char *topic;

    if (!e) {
        ds_fail(errstr, errstr_size, "out of memory caching relation %s.%s", rel->schema,
                rel->table);
        return NULL;
    }
    if (e->generation == rel->generation && e->generation != 0)
        return e;

    /* A Relation message may rename the table, so the topic is rebuilt too. */
    prefix_len = strlen(ch->topic_prefix);
    schema_len = strlen(rel->schema);
    table_len = strlen(rel->table);
    topic = malloc(prefix_len + schema_len + table_len + 3);
    if (!topic) {
        ds_fail(errstr, errstr_size, "out of memory caching relation %s.%s", rel->schema,
                rel->table);
        return NULL;
    }
    memcpy(topic, ch->topic_prefix, prefix_len);
    topic[prefix_len] = '.';
    memcpy(topic + prefix_len + 1, rel->schema, schema_len);
    topic[prefix_len + 1 + schema_len] = '.';
    memcpy(topic + prefix_len + 2 + schema_len, rel->table, table_len + 1);
    free(e->topic);
    e->topic = topic;

    e->generation = 0;
    /* A renamed table is another data collection, counted apart from its old name. */
    e->tx_number = 0;
    if (!compute_key(ch, e, rel, errstr, errstr_size))
        return NULL;
    if (with_schema(ch) && !build_schemas(ch, e, rel, errstr, errstr_size))
        return NULL;
    e->generation = rel->generation;
    return e;
}

/* ---- records -------------------------------------------------------------------------- */

/* Appends " (LSN X/X)" to an error from a lower layer, so every error says where it was. */
static bool fail_at(char *errstr, size_t errstr_size, ds_lsn_t lsn)
{
    char lsn_text[DS_LSN_STRLEN];
    size_t used;

    if (!errstr || !errstr_size)
        return false;
    used = strnlen(errstr, errstr_size);
    if (used + 1 < errstr_size)
        snprintf(errstr + used, errstr_size - used, " (LSN %s)", ds_lsn_format(lsn, lsn_text));
    return false;
}

static void fill_source(const ds_changes_t *ch, ds_lsn_t lsn, ds_envelope_source_t *src)
{
    src->version = ch->version;
    src->name = ch->topic_prefix;
    src->db = ch->db;
    src->snapshot = "false";
    src->commit_time_us = ch->commit_time_us;
    src->xid = ch->xid;
    src->lsn = lsn;
    src->last_commit_lsn = ch->last_commit_lsn;
    src->origin = ch->has_origin ? ch->origin.data : NULL;
    src->origin_lsn = ch->has_origin ? ch->origin_lsn : DS_INVALID_LSN;
    src->transaction = NULL;
}

/* Writes the key of tup into out (emptied first); false with errstr set on failure.
 * *has_key is false for a keyless table. */
static bool write_key_into(ds_buf_t *out, const rel_entry_t *e, const ds_relation_t *rel,
                           const ds_tuple_t *tup, const ds_value_format_t *format, bool *has_key,
                           char *errstr, size_t errstr_size)
{
    ds_buf_reset(out);
    *has_key = e->nkeys > 0;
    if (!*has_key)
        return true;
    if (e->nullable_key)
        return ds_envelope_write_key_nullable(out, rel, e->key_mask, tup, format, errstr,
                                              errstr_size);
    return ds_envelope_write_key(out, rel, e->key_mask, tup, format, errstr, errstr_size);
}

/* Writes the key of tup into ch->key. */
static bool build_key(ds_changes_t *ch, const rel_entry_t *e, const ds_relation_t *rel,
                      const ds_tuple_t *tup, bool *has_key, char *errstr, size_t errstr_size)
{
    return write_key_into(&ch->key, e, rel, tup, &ch->format, has_key, errstr, errstr_size);
}

/* ---- transaction metadata ------------------------------------------------------------- */

/* "<txId>:<LSN in decimal>": Debezium's PostgreSQL connector suffixes the transaction id with
 * the LSN of the message at hand, so the BEGIN record, each event and the END record of one
 * transaction carry different ids with the same "<txId>:" part. */
#define TX_ID_STRLEN 32

static void format_tx_id(char out[TX_ID_STRLEN], uint32_t xid, ds_lsn_t lsn)
{
    snprintf(out, TX_ID_STRLEN, "%" PRIu32 ":%" PRIu64, xid, (uint64_t)lsn);
}

/* Milliseconds from microseconds, rounding towards negative infinity as Java's
 * Instant.toEpochMilli() does. */
static int64_t us_to_ms(int64_t us)
{
    return us >= 0 ? us / 1000 : -((-(us + 1)) / 1000) - 1;
}

/* Java's String.hashCode() of UTF-8 text, computed over its UTF-16 code units as Java does;
 * a byte that starts no valid sequence counts as U+FFFD, as Java's decoder reads it. */
static int32_t java_string_hash(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    uint32_t h = 0;
    size_t i = 0;

    while (i < len) {
        uint32_t cp = 0xFFFD;
        size_t n = 1;

        if (s[i] < 0x80) {
            cp = s[i];
        } else if ((s[i] & 0xE0) == 0xC0 && i + 1 < len) {
            cp = (uint32_t)(s[i] & 0x1F) << 6 | (s[i + 1] & 0x3F);
            n = 2;
        } else if ((s[i] & 0xF0) == 0xE0 && i + 2 < len) {
            cp = (uint32_t)(s[i] & 0x0F) << 12 | (uint32_t)(s[i + 1] & 0x3F) << 6 |
                 (s[i + 2] & 0x3F);
            n = 3;
        } else if ((s[i] & 0xF8) == 0xF0 && i + 3 < len) {
            cp = (uint32_t)(s[i] & 0x07) << 18 | (uint32_t)(s[i + 1] & 0x3F) << 12 |
                 (uint32_t)(s[i + 2] & 0x3F) << 6 | (s[i + 3] & 0x3F);
            n = 4;
        }
        i += n;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            h = 31 * h + (0xD800 + (cp >> 10));
            h = 31 * h + (0xDC00 + (cp & 0x3FF));
        } else {
            h = 31 * h + cp;
        }
    }
    return (int32_t)h;
}

/*
 * Fills ch->tx_order with the tables of the transaction in the order Debezium's END record
 * lists them: it iterates a java.util.HashMap keyed by the table names, so the order is by
 * bucket (the spread hash masked by the table size, which starts at 16 and doubles whenever
 * the entries exceed three quarters of it) and by insertion within a bucket.
 */
static void tx_end_order(ds_changes_t *ch)
{
    size_t n = ch->tx_ntables;
    uint32_t cap = 16;

    while (n > (size_t)cap / 4 * 3)
        cap *= 2;
    for (size_t i = 0; i < n; i++) {
        uint32_t h = (uint32_t)ch->tx_tables[i].hash;
        uint32_t bucket = (h ^ (h >> 16)) & (cap - 1);
        size_t j = i;

        /* Insertion sort by bucket: stable, and transactions touch few tables. */
        while (j > 0) {
            uint32_t hp = (uint32_t)ch->tx_tables[ch->tx_order[j - 1]].hash;

            if (((hp ^ (hp >> 16)) & (cap - 1)) <= bucket)
                break;
            ch->tx_order[j] = ch->tx_order[j - 1];
            j--;
        }
        ch->tx_order[j] = i;
    }
}

/* Counts one event of e's table in the current transaction; *order gets its
 * data_collection_order. */
static bool tx_count(ds_changes_t *ch, rel_entry_t *e, const ds_relation_t *rel, int64_t *order,
                     char *errstr, size_t errstr_size)
{
    tx_table_t *t;

    if (e->tx_number != ch->tx_number) {
        size_t i;

        ds_buf_reset(&ch->tx_value);
        ds_buf_appendf(&ch->tx_value, "%s.%s", rel->schema, rel->table);
        /* The same name may be counted already: the table changed shape (a Relation message)
         * since its first event. */
        for (i = 0; i < ch->tx_ntables; i++)
            if (strcmp(ch->tx_tables[i].name.data, ch->tx_value.data) == 0)
                break;
        if (i == ch->tx_ntables) {
            if (ch->tx_ntables == ch->tx_tables_cap) {
                size_t cap = ch->tx_tables_cap ? ch->tx_tables_cap * 2 : 8;
                tx_table_t *tables = realloc(ch->tx_tables, cap * sizeof(*tables));
                size_t *end_order;

                if (!tables)
                    return ds_fail(errstr, errstr_size,
                                   "out of memory counting the tables of "
                                   "transaction %" PRIu32,
                                   ch->xid);
                memset(tables + ch->tx_tables_cap, 0, (cap - ch->tx_tables_cap) * sizeof(*tables));
                ch->tx_tables = tables;
                ch->tx_tables_cap = cap;
                end_order = realloc(ch->tx_order, cap * sizeof(*end_order));
                if (!end_order)
                    return ds_fail(errstr, errstr_size,
                                   "out of memory counting the tables of "
                                   "transaction %" PRIu32,
                                   ch->xid);
                ch->tx_order = end_order;
            }
            t = &ch->tx_tables[ch->tx_ntables++];
            ds_buf_reset(&t->name);
            ds_buf_append(&t->name, ch->tx_value.data, ch->tx_value.len);
            t->count = 0;
            t->hash = java_string_hash(t->name.data, t->name.len);
        }
        e->tx_number = ch->tx_number;
        e->tx_index = i;
    }
    t = &ch->tx_tables[e->tx_index];
    ch->tx_total++;
    *order = ++t->count;
    return true;
}

/* The Kafka Connect schemas of the BEGIN and END records, as Debezium's JsonConverter writes
 * them with schemas.enable (capture.message_format "json-with-schema"): fixed, whatever the
 * tables. */
#define TX_KEY_SCHEMA                                                                              \
    "{\"type\":\"struct\",\"fields\":[{\"type\":\"string\",\"optional\":false,\"field\":\"id\"}]," \
    "\"optional\":false,\"name\":\"io.debezium.connector.common.TransactionMetadataKey\","         \
    "\"version\":1}"
#define TX_VALUE_SCHEMA                                                                            \
    "{\"type\":\"struct\",\"fields\":[{\"type\":\"string\",\"optional\":false,\"field\":"          \
    "\"status\"},"                                                                                 \
    "{\"type\":\"string\",\"optional\":false,\"field\":\"id\"},"                                   \
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"event_count\"},"                            \
    "{\"type\":\"array\",\"items\":{\"type\":\"struct\",\"fields\":[{\"type\":\"string\","         \
    "\"optional\":false,\"field\":\"data_collection\"},{\"type\":\"int64\",\"optional\":false,"    \
    "\"field\":\"event_count\"}],\"optional\":true,\"name\":\"event.collection\",\"version\":1},"  \
    "\"optional\":true,\"field\":\"data_collections\"},"                                           \
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"ts_ms\"}],\"optional\":false,"             \
    "\"name\":\"io.debezium.connector.common.TransactionMetadataValue\",\"version\":1}"

/* Emits the transaction topic record in ch->tx_key / ch->tx_value. */
static bool tx_emit(ds_changes_t *ch, ds_lsn_t lsn, ds_change_emit_fn emit, void *emit_ctx,
                    char *errstr, size_t errstr_size)
{
    ds_change_record_t rec;

    if (ch->format.message_format == DS_MESSAGE_JSON_WITH_SCHEMA) {
        ds_buf_append_char(&ch->tx_key, '}');
        ds_buf_append_char(&ch->tx_value, '}');
    }
    rec = (ds_change_record_t){.topic = ch->tx_topic,
                               .key = ch->tx_key.data,
                               .key_len = ch->tx_key.len,
                               .value = ch->tx_value.data,
                               .value_len = ch->tx_value.len,
                               .lsn = lsn,
                               .op = 0,
                               .is_transaction = true};

    return emit(emit_ctx, &rec, errstr, errstr_size);
}

/* Starts the transaction topic record with id @p id: its key, and its value up to the id
 * (under the schema envelope, its schema first; tx_emit() closes it). */
static void tx_start_record(ds_changes_t *ch, const char *status, const char *id)
{
    bool schema = ch->format.message_format == DS_MESSAGE_JSON_WITH_SCHEMA;

    ds_buf_reset(&ch->tx_key);
    if (schema)
        ds_buf_append_str(&ch->tx_key, "{\"schema\":" TX_KEY_SCHEMA ",\"payload\":");
    ds_buf_append_str(&ch->tx_key, "{\"id\":");
    ds_buf_append_json_string(&ch->tx_key, id, strlen(id));
    ds_buf_append_char(&ch->tx_key, '}');
    ds_buf_reset(&ch->tx_value);
    if (schema)
        ds_buf_append_str(&ch->tx_value, "{\"schema\":" TX_VALUE_SCHEMA ",\"payload\":");
    ds_buf_appendf(&ch->tx_value, "{\"status\":\"%s\",\"id\":", status);
    ds_buf_append_json_string(&ch->tx_value, id, strlen(id));
}

/*
 * The BEGIN record, sent before the transaction's first event (or at its Commit when it has
 * none): Debezium sends it at the Begin message, but dualsync learns only later (from an
 * Origin message) whether the transaction is skipped, and a skipped one has no BEGIN.
 */
static bool tx_emit_begin(ds_changes_t *ch, ds_change_emit_fn emit, void *emit_ctx, char *errstr,
                          size_t errstr_size)
{
    char id[TX_ID_STRLEN];

    ch->tx_begun = true;
    format_tx_id(id, ch->xid, ch->begin_lsn);
    tx_start_record(ch, "BEGIN", id);
    ds_buf_appendf(&ch->tx_value,
                   ",\"event_count\":null,\"data_collections\":null,\"ts_ms\":%" PRId64 "}",
                   us_to_ms(ch->commit_time_us));
    return tx_emit(ch, ch->begin_lsn, emit, emit_ctx, errstr, errstr_size);
}

/* The END record, at the Commit message (LSN @p lsn, commit time @p commit_time_us). */
static bool tx_emit_end(ds_changes_t *ch, ds_lsn_t lsn, int64_t commit_time_us,
                        ds_change_emit_fn emit, void *emit_ctx, char *errstr, size_t errstr_size)
{
    char id[TX_ID_STRLEN];

    format_tx_id(id, ch->xid, lsn);
    tx_start_record(ch, "END", id);
    ds_buf_appendf(&ch->tx_value, ",\"event_count\":%" PRId64 ",\"data_collections\":[",
                   ch->tx_total);
    tx_end_order(ch);
    for (size_t i = 0; i < ch->tx_ntables; i++) {
        const tx_table_t *t = &ch->tx_tables[ch->tx_order[i]];

        if (i)
            ds_buf_append_char(&ch->tx_value, ',');
        ds_buf_append_str(&ch->tx_value, "{\"data_collection\":");
        ds_buf_append_json_string(&ch->tx_value, t->name.data, t->name.len);
        ds_buf_appendf(&ch->tx_value, ",\"event_count\":%" PRId64 "}", t->count);
    }
    ds_buf_appendf(&ch->tx_value, "],\"ts_ms\":%" PRId64 "}", us_to_ms(commit_time_us));
    return tx_emit(ch, lsn, emit, emit_ctx, errstr, errstr_size);
}

/* Builds the value for op and emits one record with the key already in ch->key, and with
 * @p nheaders @p headers. */
static bool emit_change(ds_changes_t *ch, rel_entry_t *e, const ds_relation_t *rel, char op,
                        bool has_key, const ds_tuple_t *before, const ds_tuple_t *after,
                        ds_lsn_t lsn, int64_t now_us, const ds_change_header_t *headers,
                        int nheaders, ds_change_emit_fn emit, void *emit_ctx, char *errstr,
                        size_t errstr_size)
{
    ds_envelope_source_t src;
    ds_envelope_options_t opts = {.unavailable_value_placeholder = ch->placeholder,
                                  .format = &ch->format};
    ds_envelope_transaction_t tx;
    char tx_id[TX_ID_STRLEN];
    ds_change_record_t rec;
    ds_tuple_t filled;

    fill_source(ch, lsn, &src);
    if (ch->tx_topic) {
        if (!ch->tx_begun && !tx_emit_begin(ch, emit, emit_ctx, errstr, errstr_size))
            return false;
        if (!tx_count(ch, e, rel, &tx.data_collection_order, errstr, errstr_size))
            return fail_at(errstr, errstr_size, lsn);
        format_tx_id(tx_id, ch->xid, lsn);
        tx.id = tx_id;
        tx.total_order = ch->tx_total;
        src.transaction = &tx;
    }
    ds_buf_reset(&ch->value);
    if (with_schema(ch))
        ds_buf_append(&ch->value, e->value_head.data, e->value_head.len);
    before = fill_not_null(ch, e, before, &filled);
    if (!ds_envelope_write_value(&ch->value, op, rel, before, after, &src, &opts, now_us, errstr,
                                 errstr_size))
        return fail_at(errstr, errstr_size, lsn);
    if (with_schema(ch))
        ds_buf_append_char(&ch->value, '}');
    rec.topic = e->topic;
    rec.key = has_key ? ch->key.data : NULL;
    rec.key_len = has_key ? ch->key.len : 0;
    wrap_key(ch, e, op, &rec);
    rec.value = ch->value.data;
    rec.value_len = ch->value.len;
    rec.lsn = lsn;
    rec.op = op;
    rec.is_transaction = false;
    rec.headers = nheaders ? headers : NULL;
    rec.nheaders = nheaders;
    return emit(emit_ctx, &rec, errstr, errstr_size);
}

/* Debezium follows every delete with a tombstone (same key, null value) so log compaction
 * can drop the key. A keyless table has nothing to compact. The tombstone carries the
 * delete's headers, as Debezium copies them. */
static bool emit_tombstone(ds_changes_t *ch, const rel_entry_t *e, bool has_key, ds_lsn_t lsn,
                           const ds_change_header_t *headers, int nheaders, ds_change_emit_fn emit,
                           void *emit_ctx, char *errstr, size_t errstr_size)
{
    ds_change_record_t rec;

    if (!ch->tombstones || !has_key)
        return true;
    rec.topic = e->topic;
    rec.key = ch->key.data;
    rec.key_len = ch->key.len;
    wrap_key(ch, e, 0, &rec);
    rec.value = NULL;
    rec.value_len = 0;
    rec.lsn = lsn;
    rec.op = 0;
    rec.is_transaction = false;
    rec.headers = nheaders ? headers : NULL;
    rec.nheaders = nheaders;
    return emit(emit_ctx, &rec, errstr, errstr_size);
}

/* Two values of the same column are the same datum. An unchanged-TOAST value was not sent
 * because it did not change, so it equals whatever the other side holds. */
static bool same_value(const ds_value_t *a, const ds_value_t *b)
{
    if (a->kind == DS_VALUE_UNCHANGED_TOAST || b->kind == DS_VALUE_UNCHANGED_TOAST)
        return true;
    if (a->kind != b->kind)
        return false;
    if (a->kind == DS_VALUE_NULL)
        return true;
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static bool key_changed(const rel_entry_t *e, const ds_relation_t *rel, const ds_tuple_t *old,
                        const ds_tuple_t *new)
{
    for (int i = 0; i < rel->ncolumns; i++)
        if (e->key_mask[i] && !same_value(&old->values[i], &new->values[i]))
            return true;
    return false;
}

/* The new tuple, with key columns pgoutput left out as unchanged TOAST filled in from the
 * old tuple so the key can be written. Returns newtup itself when nothing needs filling. */
static const ds_tuple_t *fill_key_from_old(ds_changes_t *ch, const rel_entry_t *e,
                                           const ds_relation_t *rel, const ds_tuple_t *old,
                                           const ds_tuple_t *newtup, ds_tuple_t *merged,
                                           char *errstr, size_t errstr_size)
{
    bool needed = false;

    if (!old || old->nvalues != rel->ncolumns || newtup->nvalues != rel->ncolumns)
        return newtup;
    for (int i = 0; i < rel->ncolumns && !needed; i++)
        needed = e->key_mask[i] && newtup->values[i].kind == DS_VALUE_UNCHANGED_TOAST;
    if (!needed)
        return newtup;
    if (rel->ncolumns > ch->merged_cap) {
        ds_value_t *vals = realloc(ch->merged, (size_t)rel->ncolumns * sizeof(ds_value_t));

        if (!vals) {
            ds_fail(errstr, errstr_size, "out of memory merging the key of %s.%s", rel->schema,
                    rel->table);
            return NULL;
        }
        ch->merged = vals;
        ch->merged_cap = rel->ncolumns;
    }
    for (int i = 0; i < rel->ncolumns; i++)
        ch->merged[i] = e->key_mask[i] && newtup->values[i].kind == DS_VALUE_UNCHANGED_TOAST
                            ? old->values[i]
                            : newtup->values[i];
    merged->nvalues = rel->ncolumns;
    merged->values = ch->merged;
    return merged;
}

/* ---- messages ------------------------------------------------------------------------- */

/* Row messages only make sense inside a transaction: source.txId and ts_ms come from its
 * Begin. */
static bool require_tx(const ds_changes_t *ch, const char *what, const ds_relation_t *rel,
                       ds_lsn_t lsn, char *errstr, size_t errstr_size)
{
    char lsn_text[DS_LSN_STRLEN];

    if (ch->in_tx)
        return true;
    return ds_fail(errstr, errstr_size,
                   "%s for %s.%s at LSN %s outside a transaction (no Begin before it)", what,
                   rel ? rel->schema : "?", rel ? rel->table : "?", ds_lsn_format(lsn, lsn_text));
}

static bool handle_insert(ds_changes_t *ch, const ds_pgoutput_msg_t *msg, ds_lsn_t lsn,
                          int64_t now_us, ds_change_emit_fn emit, void *emit_ctx, char *errstr,
                          size_t errstr_size)
{
    const ds_relation_t *rel = msg->u.insert.rel;
    rel_entry_t *e = rel_prepare(ch, rel, errstr, errstr_size);
    bool has_key;

    if (!e)
        return fail_at(errstr, errstr_size, lsn);
    if (!build_key(ch, e, rel, &msg->u.insert.newtup, &has_key, errstr, errstr_size))
        return fail_at(errstr, errstr_size, lsn);
    return emit_change(ch, e, rel, 'c', has_key, NULL, &msg->u.insert.newtup, lsn, now_us, NULL, 0,
                       emit, emit_ctx, errstr, errstr_size);
}

static bool handle_update(ds_changes_t *ch, const ds_pgoutput_msg_t *msg, ds_lsn_t lsn,
                          int64_t now_us, ds_change_emit_fn emit, void *emit_ctx, char *errstr,
                          size_t errstr_size)
{
    const ds_relation_t *rel = msg->u.update.rel;
    rel_entry_t *e = rel_prepare(ch, rel, errstr, errstr_size);
    const ds_tuple_t *old = msg->u.update.old_kind ? &msg->u.update.oldtup : NULL;
    const ds_tuple_t *newtup = &msg->u.update.newtup;
    const ds_tuple_t *keytup;
    ds_tuple_t merged;
    bool has_key;

    if (!e)
        return fail_at(errstr, errstr_size, lsn);
    if (old && (old->nvalues != rel->ncolumns || newtup->nvalues != rel->ncolumns)) {
        char lsn_text[DS_LSN_STRLEN];

        return ds_fail(errstr, errstr_size,
                       "update of %s.%s at LSN %s: old and new tuples do not match the "
                       "relation's %d columns",
                       rel->schema, rel->table, ds_lsn_format(lsn, lsn_text), rel->ncolumns);
    }
    keytup = fill_key_from_old(ch, e, rel, old, newtup, &merged, errstr, errstr_size);
    if (!keytup)
        return fail_at(errstr, errstr_size, lsn);

    /* pgoutput sends the old key ('K') when the replica identity changed (or held TOASTed
     * values), and the whole old row ('O') under FULL. When the message key changes,
     * Debezium writes a delete of the old key, its tombstone and a create of the new key, so
     * compaction and consumers keyed by the old key see the row leave. Each names the other
     * key in a header, as Debezium's do: the delete (and its tombstone) __debezium.newkey,
     * the create __debezium.oldkey. */
    if (old && e->nkeys > 0 && key_changed(e, rel, old, newtup)) {
        ds_change_header_t header = {.name = DS_HEADER_NEWKEY};

        if (!write_key_into(&ch->hdr_key, e, rel, keytup, &ch->format, &has_key, errstr,
                            errstr_size) ||
            !build_key(ch, e, rel, old, &has_key, errstr, errstr_size))
            return fail_at(errstr, errstr_size, lsn);
        header.value = ch->hdr_key.data;
        header.value_len = ch->hdr_key.len;
        if (!emit_change(ch, e, rel, 'd', has_key, old, NULL, lsn, now_us, &header, 1, emit,
                         emit_ctx, errstr, errstr_size))
            return false;
        if (!emit_tombstone(ch, e, has_key, lsn, &header, 1, emit, emit_ctx, errstr, errstr_size))
            return false;
        if (!write_key_into(&ch->hdr_key, e, rel, old, &ch->format, &has_key, errstr,
                            errstr_size) ||
            !build_key(ch, e, rel, keytup, &has_key, errstr, errstr_size))
            return fail_at(errstr, errstr_size, lsn);
        header.name = DS_HEADER_OLDKEY;
        header.value = ch->hdr_key.data;
        header.value_len = ch->hdr_key.len;
        return emit_change(ch, e, rel, 'c', has_key, NULL, newtup, lsn, now_us, &header, 1, emit,
                           emit_ctx, errstr, errstr_size);
    }

    if (!build_key(ch, e, rel, keytup, &has_key, errstr, errstr_size))
        return fail_at(errstr, errstr_size, lsn);
    return emit_change(ch, e, rel, 'u', has_key, msg->u.update.old_kind == 'O' ? old : NULL, newtup,
                       lsn, now_us, NULL, 0, emit, emit_ctx, errstr, errstr_size);
}

static bool handle_delete(ds_changes_t *ch, const ds_pgoutput_msg_t *msg, ds_lsn_t lsn,
                          int64_t now_us, ds_change_emit_fn emit, void *emit_ctx, char *errstr,
                          size_t errstr_size)
{
    const ds_relation_t *rel = msg->u.delete.rel;
    rel_entry_t *e = rel_prepare(ch, rel, errstr, errstr_size);
    const ds_tuple_t *old = &msg->u.delete.oldtup;
    bool has_key;

    if (!e)
        return fail_at(errstr, errstr_size, lsn);
    if (!build_key(ch, e, rel, old, &has_key, errstr, errstr_size))
        return fail_at(errstr, errstr_size, lsn);
    if (!emit_change(ch, e, rel, 'd', has_key, old, NULL, lsn, now_us, NULL, 0, emit, emit_ctx,
                     errstr, errstr_size))
        return false;
    return emit_tombstone(ch, e, has_key, lsn, NULL, 0, emit, emit_ctx, errstr, errstr_size);
}

/*
 * One record per table, op "t", before and after null, as Debezium sends it; but keyed
 * {"__dualsync_truncate":"<schema>.<table>"}, where Debezium sends it keyless: a compacted
 * topic refuses a record without a key. The key is the same for every truncate of the table,
 * so compaction keeps the latest one, which is the one a replay must apply; it is never a
 * tombstone, so compaction cannot drop it while keeping the rows written before it. Apply
 * reads the op, not the key.
 */
static bool handle_truncate(ds_changes_t *ch, const ds_pgoutput_msg_t *msg, ds_lsn_t lsn,
                            int64_t now_us, ds_change_emit_fn emit, void *emit_ctx, char *errstr,
                            size_t errstr_size)
{
    for (int i = 0; i < msg->u.truncate.nrelations; i++) {
        const ds_relation_t *rel = msg->u.truncate.rels[i];
        rel_entry_t *e = rel_prepare(ch, rel, errstr, errstr_size);
        /* PostgreSQL names are at most 63 bytes. */
        char name[2 * 64 + 2];
        int len;

        if (!e)
            return fail_at(errstr, errstr_size, lsn);
        len = snprintf(name, sizeof(name), "%s.%s", rel->schema, rel->table);
        ds_buf_reset(&ch->key);
        ds_buf_append_str(&ch->key, "{\"" DS_TRUNCATE_KEY_FIELD "\":");
        ds_buf_append_json_string(&ch->key, name,
                                  len < (int)sizeof(name) ? (size_t)len : sizeof(name) - 1);
        ds_buf_append_str(&ch->key, "}");
        if (!emit_change(ch, e, rel, 't', true, NULL, NULL, lsn, now_us, NULL, 0, emit, emit_ctx,
                         errstr, errstr_size))
            return false;
    }
    return true;
}

/*
 * A skipped name covers the origin itself and every "<name>.<suffix>": each apply process
 * commits under an origin of its own, "<apply.origin>.<group>.<instance id>" (consumers/
 * apply.c, "Origins"), and all of them must stay out of the topics.
 */
static bool origin_skipped(const ds_changes_t *ch, const char *name)
{
    if (!name)
        return false;
    for (char **o = ch->skip_origins; *o; o++) {
        size_t len = strlen(*o);

        if (strncmp(*o, name, len) == 0 && (name[len] == '\0' || name[len] == '.'))
            return true;
    }
    return false;
}

bool ds_changes_handle(ds_changes_t *changes, const ds_pgoutput_msg_t *msg, ds_lsn_t wal_start,
                       int64_t now_us, ds_change_emit_fn emit, void *emit_ctx, char *errstr,
                       size_t errstr_size)
{
    ds_changes_t *ch = changes;
    char lsn_text[DS_LSN_STRLEN];
    rel_entry_t *e;

    switch (msg->type) {
    case DS_PGOUTPUT_BEGIN:
        /* A Begin while one is open can only follow a stream restart in the middle of a
         * transaction; the server resends it whole, so start over. */
        ch->in_tx = true;
        ch->skipping = false;
        ch->xid = msg->u.begin.xid;
        ch->commit_time_us = msg->u.begin.commit_time + DS_PG_EPOCH_OFFSET_US;
        ch->has_origin = false;
        ch->tx_number++;
        ch->begin_lsn = wal_start;
        ch->tx_begun = false;
        ch->tx_total = 0;
        ch->tx_ntables = 0;
        return true;

    case DS_PGOUTPUT_COMMIT:
        if (!ch->in_tx)
            return ds_fail(errstr, errstr_size, "Commit at LSN %s without a Begin",
                           ds_lsn_format(wal_start, lsn_text));
        /* Debezium sends a BEGIN and an END for every transaction it streams, an empty one
         * too; none for one dualsync skips. */
        if (ch->tx_topic && !ch->skipping) {
            if (!ch->tx_begun && !tx_emit_begin(ch, emit, emit_ctx, errstr, errstr_size))
                return false;
            if (!tx_emit_end(ch, wal_start, msg->u.commit.commit_time + DS_PG_EPOCH_OFFSET_US, emit,
                             emit_ctx, errstr, errstr_size))
                return false;
        }
        /* The next transaction's source.sequence starts with where this one ended. */
        ch->last_commit_lsn = msg->u.commit.end_lsn;
        ch->in_tx = false;
        ch->skipping = false;
        return true;

    case DS_PGOUTPUT_ORIGIN:
        if (!ch->in_tx)
            return ds_fail(errstr, errstr_size, "Origin \"%s\" at LSN %s outside a transaction",
                           msg->u.origin.name ? msg->u.origin.name : "",
                           ds_lsn_format(wal_start, lsn_text));
        if (origin_skipped(ch, msg->u.origin.name))
            ch->skipping = true;
        /* source.origin and origin_lsn of the transaction's events, as Debezium 3.6 writes. */
        ds_buf_reset(&ch->origin);
        ds_buf_append_str(&ch->origin, msg->u.origin.name ? msg->u.origin.name : "");
        ch->has_origin = ch->origin.data != NULL;
        ch->origin_lsn = msg->u.origin.commit_lsn;
        return true;

    case DS_PGOUTPUT_RELATION:
        /* Recompute lazily, at the relation's next row: the key lookup may query the
         * catalog, and a table whose rows are all skipped never needs it. Forcing the
         * generation to 0 also covers a decoder that restarted its generations. */
        e = rel_entry(ch, msg->u.relation.rel->relid);
        if (!e)
            return ds_fail(errstr, errstr_size, "out of memory caching relation %s.%s",
                           msg->u.relation.rel->schema, msg->u.relation.rel->table);
        e->generation = 0;
        return true;

    case DS_PGOUTPUT_TYPE:
    case DS_PGOUTPUT_MESSAGE:
        return true;

    case DS_PGOUTPUT_INSERT:
        if (!require_tx(ch, "Insert", msg->u.insert.rel, wal_start, errstr, errstr_size))
            return false;
        return ch->skipping ||
               handle_insert(ch, msg, wal_start, now_us, emit, emit_ctx, errstr, errstr_size);

    case DS_PGOUTPUT_UPDATE:
        if (!require_tx(ch, "Update", msg->u.update.rel, wal_start, errstr, errstr_size))
            return false;
        return ch->skipping ||
               handle_update(ch, msg, wal_start, now_us, emit, emit_ctx, errstr, errstr_size);

    case DS_PGOUTPUT_DELETE:
        if (!require_tx(ch, "Delete", msg->u.delete.rel, wal_start, errstr, errstr_size))
            return false;
        return ch->skipping ||
               handle_delete(ch, msg, wal_start, now_us, emit, emit_ctx, errstr, errstr_size);

    case DS_PGOUTPUT_TRUNCATE:
        if (!require_tx(ch, "Truncate",
                        msg->u.truncate.nrelations > 0 ? msg->u.truncate.rels[0] : NULL, wal_start,
                        errstr, errstr_size))
            return false;
        return ch->skipping ||
               handle_truncate(ch, msg, wal_start, now_us, emit, emit_ctx, errstr, errstr_size);
    }
    return ds_fail(errstr, errstr_size, "unexpected pgoutput message type '%c' at LSN %s",
                   (char)msg->type, ds_lsn_format(wal_start, lsn_text));
}

bool ds_changes_read_row(ds_changes_t *changes, const ds_relation_t *rel, const ds_tuple_t *row,
                         const ds_changes_read_t *read, int64_t now_us, ds_change_emit_fn emit,
                         void *emit_ctx, char *errstr, size_t errstr_size)
{
    ds_changes_t *ch = changes;
    rel_entry_t *e = rel_prepare(ch, rel, errstr, errstr_size);
    ds_envelope_options_t opts = {.unavailable_value_placeholder = ch->placeholder,
                                  .format = &ch->format};
    ds_envelope_source_t src;
    ds_change_record_t rec;
    bool has_key;

    if (!e)
        return fail_at(errstr, errstr_size, read->lsn);
    if (!build_key(ch, e, rel, row, &has_key, errstr, errstr_size))
        return fail_at(errstr, errstr_size, read->lsn);
    /* Debezium stamps a snapshot record with the time it was read, and every read event of
     * one snapshot with the same position: where streaming takes over. */
    fill_source(ch, read->lsn, &src);
    src.snapshot = read->snapshot ? read->snapshot : "true";
    src.commit_time_us = now_us;
    src.xid = read->xid;
    src.last_commit_lsn = DS_INVALID_LSN;
    src.origin = NULL;
    src.origin_lsn = DS_INVALID_LSN;
    ds_buf_reset(&ch->value);
    if (with_schema(ch))
        ds_buf_append(&ch->value, e->value_head.data, e->value_head.len);
    if (!ds_envelope_write_value(&ch->value, 'r', rel, NULL, row, &src, &opts, now_us, errstr,
                                 errstr_size))
        return fail_at(errstr, errstr_size, read->lsn);
    if (with_schema(ch))
        ds_buf_append_char(&ch->value, '}');
    rec.topic = e->topic;
    rec.key = has_key ? ch->key.data : NULL;
    rec.key_len = has_key ? ch->key.len : 0;
    wrap_key(ch, e, 'r', &rec);
    rec.value = ch->value.data;
    rec.value_len = ch->value.len;
    rec.lsn = read->lsn;
    rec.op = 'r';
    rec.is_transaction = false;
    rec.headers = NULL;
    rec.nheaders = 0;
    return emit(emit_ctx, &rec, errstr, errstr_size);
}

void ds_changes_resume_at(ds_changes_t *changes, ds_lsn_t lsn)
{
    if (lsn > changes->last_commit_lsn)
        changes->last_commit_lsn = lsn;
}
