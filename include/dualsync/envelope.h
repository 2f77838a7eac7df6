/*
 * envelope.h: Debezium PostgreSQL connector JSON for one row change.
 *
 * Key:   {"id":42}  (the key columns, in table order)
 * Value: {"before":{..}|null,"after":{..}|null,
 *         "source":{"version","connector":"postgresql","name","ts_ms","snapshot","db",
 *                   "sequence","ts_us","ts_ns","schema","table","txId","lsn","xmin",
 *                   "origin","origin_lsn"},
 *         "transaction":{"id","total_order","data_collection_order"}|null,
 *         "op":"c"|"u"|"d"|"t"|"r","ts_ms":...,"ts_us":...,"ts_ns":...}
 *
 * Fields in the order Debezium 3.6's schemas list them (docs/debezium.md, "Fields and
 * headers").
 *
 * Written schemaless, as Debezium's JsonConverter writes with schemas.enable=false.
 */
#ifndef DUALSYNC_ENVELOPE_H
#define DUALSYNC_ENVELOPE_H

#include "dualsync/buf.h"
#include "dualsync/common.h"
#include "dualsync/pgoutput.h"
#include "dualsync/value_format.h"

/* The "transaction" block of a data event (provide.transaction.metadata). */
typedef struct ds_envelope_transaction {
    const char *id;                /* "<txId>:<LSN of this event>", as Debezium's PostgreSQL
                                    * connector writes it */
    int64_t total_order;           /* 1-based position among the transaction's events */
    int64_t data_collection_order; /* 1-based position among its events of this table */
} ds_envelope_transaction_t;

/* What "source" says about where a change came from. */
typedef struct ds_envelope_source {
    const char *version;     /* dualsync's version */
    const char *name;        /* logical server name: the config's topic_prefix */
    const char *db;          /* database name */
    const char *snapshot;    /* "false" for streamed changes; "true"/"first"/"last" etc. for
                              * backfill read events, as Debezium */
    int64_t commit_time_us;  /* commit time, microseconds since the Unix epoch -> ts_ms */
    uint32_t xid;            /* txId */
    ds_lsn_t lsn;            /* LSN of this change */
    ds_lsn_t last_commit_lsn; /* end LSN of the previous transaction, for "sequence" */
    const char *origin;       /* the transaction's replication origin, or NULL (null) */
    ds_lsn_t origin_lsn;      /* its commit LSN on the origin, DS_INVALID_LSN for null */
    /* The value's "transaction" block (a sibling of "source" in the value); NULL writes
     * "transaction":null, as Debezium does with the metadata off and for read events. */
    const ds_envelope_transaction_t *transaction;
} ds_envelope_source_t;

typedef struct ds_envelope_options {
    /* Written for DS_VALUE_UNCHANGED_TOAST values so consumers know not to overwrite. */
    const char *unavailable_value_placeholder;
    /* How values are written (Debezium's value settings); NULL: dualsync's defaults. */
    const ds_value_format_t *format;
} ds_envelope_options_t;

/**
 * @brief Writes the message key: a JSON object of the columns where key_mask[i] is true.
 *
 * @param key_mask  rel->ncolumns entries. NULL means "use the relation's is_key flags".
 * @param format    how values are written (borrowed); NULL: dualsync's defaults.
 * @return false when a key column is NULL or unchanged-TOAST in @p tup (errstr names it).
 */
bool ds_envelope_write_key(ds_buf_t *out, const ds_relation_t *rel, const bool *key_mask,
                           const ds_tuple_t *tup, const ds_value_format_t *format, char *errstr,
                           size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief Like ds_envelope_write_key(), but a NULL key column is written as null.
 *
 * For tables keyed by all their columns (REPLICA IDENTITY FULL without a primary key),
 * where NULL is an ordinary value of a nullable column and must not stop capture.
 */
bool ds_envelope_write_key_nullable(ds_buf_t *out, const ds_relation_t *rel,
                                    const bool *key_mask, const ds_tuple_t *tup,
                                    const ds_value_format_t *format, char *errstr,
                                    size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief Writes the message value.
 *
 * @param op      'c', 'u', 'd', 'r' (read: backfill) or 't' (truncate: before/after null).
 * @param before  the old tuple or NULL (written as null). For an old-key tuple ('K'), the
 *                non-key columns are null, as Debezium writes them.
 * @param after   the new tuple or NULL.
 * @param now_us  the time dualsync produced the message -> top-level ts_ms, ts_us, ts_ns.
 */
bool ds_envelope_write_value(ds_buf_t *out, char op, const ds_relation_t *rel,
                             const ds_tuple_t *before, const ds_tuple_t *after,
                             const ds_envelope_source_t *source,
                             const ds_envelope_options_t *options, int64_t now_us,
                             char *errstr, size_t errstr_size) DS_MUST_CHECK;

#endif
