/*
 * changes.h: turns decoded pgoutput messages into Kafka records (topic, key, value).
 *
 * This is the pure core of capture: no sockets, no clock (the caller passes the time), so
 * the golden tests can feed it recorded streams and diff its output. It tracks the current
 * transaction (xid, commit time, origin), applies the Debezium rules (a delete is followed by
 * a tombstone; an update that changes the key is a delete of the old key, its tombstone, then
 * a create of the new one; truncate is op "t"), and skips transactions whose replication
 * origin is configured to be skipped.
 *
 * With provide.transaction.metadata (value_format) every data event gets its "transaction"
 * block and each published transaction a BEGIN and an END record on the transaction topic,
 * as Debezium's PostgreSQL connector writes them (docs/debezium.md, "Transaction metadata").
 *
 * Where Debezium sends a truncate keyless, dualsync keys it {"__dualsync_truncate":
 * "<schema>.<table>"} (DS_TRUNCATE_KEY_FIELD), since a compacted topic refuses a record
 * without a key; consumers recognise a truncate by its op, as before.
 *
 * With the value format's message_format DS_MESSAGE_JSON_WITH_SCHEMA, every key and value is
 * JsonConverter's {"schema":...,"payload":...} (connect_schema.h); the schemas are written
 * once per relation and copied into each record. A tombstone's value stays null.
 */
#ifndef DUALSYNC_CHANGES_H
#define DUALSYNC_CHANGES_H

#include "dualsync/buf.h"
#include "dualsync/common.h"
#include "dualsync/connect_schema.h"
#include "dualsync/envelope.h"
#include "dualsync/pgoutput.h"
#include "dualsync/value_format.h"

/* The one member of a truncate's key; a row key never has it (reserved). */
#define DS_TRUNCATE_KEY_FIELD "__dualsync_truncate"

/* Kafka record headers Debezium sets on the records of a primary-key change: the delete of
 * the old key (and its tombstone) carries the new key, the create of the new key the old
 * one, each as the key's JSON. */
#define DS_HEADER_OLDKEY "__debezium.oldkey"
#define DS_HEADER_NEWKEY "__debezium.newkey"

/* One Kafka record header. */
typedef struct ds_change_header {
    const char *name; /* NUL-terminated */
    const char *value;
    size_t value_len;
} ds_change_header_t;

/* One record to publish. All pointers are borrowed and valid only during the callback. */
typedef struct ds_change_record {
    const char *topic;     /* "<topic_prefix>.<schema>.<table>", or the transaction topic
                            * "<topic_prefix>.<topic.transaction>"; NUL-terminated */
    const char *key;       /* JSON; a truncate's is {"__dualsync_truncate":"schema.table"} */
    size_t key_len;
    const char *value;     /* JSON, or NULL for a tombstone */
    size_t value_len;
    ds_lsn_t lsn;          /* LSN of the change, for error messages */
    char op;               /* 'c','u','d','t','r'; 0 for a tombstone and for a transaction's
                            * BEGIN or END record (is_transaction) */
    bool is_transaction;   /* a BEGIN or END record on the transaction topic */
    const ds_change_header_t *headers; /* nheaders entries, NULL when none */
    int nheaders;
} ds_change_record_t;

/* Called once per record, in stream order. Returning false stops ds_changes_handle(), which
 * then returns false with the callback's errstr. */
typedef bool (*ds_change_emit_fn)(void *ctx, const ds_change_record_t *rec, char *errstr,
                                  size_t errstr_size);

/* Key columns of a table whose replica identity is FULL, where pgoutput flags every column
 * as identity: Debezium keys such rows by the primary key. Returns a borrowed NULL-terminated
 * list of column names, or NULL when the table has no primary key (then all columns are the
 * key). */
typedef const char *const *(*ds_primary_key_fn)(void *ctx, const char *schema, const char *table);

typedef struct ds_changes_options {
    const char *topic_prefix;       /* required */
    const char *db;                 /* database name for source.db */
    const char *version;            /* source.version */
    bool tombstones_on_delete;      /* default true */
    const char *unavailable_value_placeholder; /* default "__debezium_unavailable_value" */
    const char *const *skip_origins; /* NULL-terminated origin names whose transactions are
                                      * dropped; NULL for none */
    ds_primary_key_fn primary_key;  /* may be NULL: FULL tables are then keyed by all columns */
    void *primary_key_ctx;
    const ds_value_format_t *value_format; /* borrowed, must outlive the ds_changes_t; NULL:
                                            * dualsync's defaults */
    ds_connect_columns_fn columns;         /* the catalog's NOT NULL, domains and enums, for the
                                            * json-with-schema message format; may be NULL (every
                                            * field optional, domains and enums as pgoutput says) */
    void *columns_ctx;                     /* its argument */
} ds_changes_options_t;

typedef struct ds_changes ds_changes_t;

/** @brief A new builder; copies what it needs from @p options. NULL when out of memory. */
ds_changes_t *ds_changes_new(const ds_changes_options_t *options);

/** @brief Accepts NULL. */
void ds_changes_free(ds_changes_t *changes);

/**
 * @brief Handles one decoded message.
 *
 * @param wal_start  the XLogData header's dataStart: the change's LSN (source.lsn).
 * @param now_us     the current time, microseconds since the Unix epoch (top-level ts_ms).
 * @return false with errstr set when a record cannot be built (a NULL key column, a value
 *         the type mapping rejects) or when @p emit fails. Errors name the table and LSN.
 */
bool ds_changes_handle(ds_changes_t *changes, const ds_pgoutput_msg_t *msg, ds_lsn_t wal_start,
                       int64_t now_us, ds_change_emit_fn emit, void *emit_ctx, char *errstr,
                       size_t errstr_size) DS_MUST_CHECK;

/* Where a read event of the initial backfill comes from: its "source" fields. */
typedef struct ds_changes_read {
    const char *snapshot; /* source.snapshot: "first", "first_in_data_collection", "true",
                           * "last_in_data_collection" or "last" (Debezium 2.x markers) */
    ds_lsn_t lsn;         /* source.lsn: the slot's consistent point, where streaming resumes */
    uint32_t xid;         /* source.txId: the xmin of the exported snapshot */
} ds_changes_read_t;

/**
 * @brief Emits a Debezium read event (op "r", before null, after = @p row) for one row read
 *        by the initial backfill, keyed by the same rules as streamed changes.
 *
 * @param rel     the table as pgoutput would describe it: columns in the order pgoutput
 *                sends them, is_key set on the replica identity columns (all under FULL);
 *                relid and a non-zero generation identify it in the builder's cache.
 * @param row     text values exactly as the type output functions write them (the same
 *                session settings as the replication connection), NULL where NULL.
 * @param now_us  the time the row was read: source.ts_ms and the top-level ts_ms, as
 *                Debezium stamps snapshot records.
 * @return false with errstr set when the record cannot be built or @p emit fails.
 */
bool ds_changes_read_row(ds_changes_t *changes, const ds_relation_t *rel, const ds_tuple_t *row,
                         const ds_changes_read_t *read, int64_t now_us, ds_change_emit_fn emit,
                         void *emit_ctx, char *errstr, size_t errstr_size) DS_MUST_CHECK;

/** @brief True between a Begin and its Commit. */
bool ds_changes_in_transaction(const ds_changes_t *changes);

/** @brief True when the current transaction is being skipped (origin filter). */
bool ds_changes_skipping(const ds_changes_t *changes);

/**
 * @brief Streaming resumes at @p lsn (the slot's confirmed position): the first transaction's
 *        source.sequence starts from it rather than from nothing, so that it is ordered after
 *        what was published before (apply tells stale copies by the sequence; see
 *        consumers/apply.c, "Stale copies"). Every transaction streamed from the slot commits
 *        past it. Never moves the position back.
 */
void ds_changes_resume_at(ds_changes_t *changes, ds_lsn_t lsn);

#endif
