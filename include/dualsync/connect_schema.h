/*
 * connect_schema.h: the Kafka Connect schemas of Debezium's PostgreSQL change events, as
 * JsonConverter writes them with schemas.enable=true.
 *
 * With capture.message_format "json-with-schema" every key and value is
 *
 *   {"schema": <Connect schema>, "payload": <the schemaless JSON>}
 *
 * and the schema is exactly the one the Debezium 3.6 PostgreSQL connector emits:
 *
 *   key:   struct "<prefix>.<schema>.<table>.Key" of the key columns
 *   value: struct "<prefix>.<schema>.<table>.Envelope" version 2: before and after (optional
 *          struct "<prefix>.<schema>.<table>.Value"), source
 *          ("io.debezium.connector.postgresql.Source" version 1), transaction (optional
 *          struct "event.block" version 1), op, ts_ms, ts_us, ts_ns
 *
 * Each column's field follows PostgresValueConverter.schemaBuilder() under the value format
 * (time.precision.mode, decimal.handling.mode, binary.handling.mode, interval.handling.mode),
 * and is optional unless the column is NOT NULL. Debezium leaves out the columns whose type it
 * cannot describe (name[], interval[], money[] and the other arrays it has no schema for); so
 * does the schema here (ds_connect_schema_has_field()).
 *
 * The schemas depend only on the relation, the catalog and the format: the change builder
 * writes them once per relation (again after a Relation message) and copies the text into
 * each record.
 */
#ifndef DUALSYNC_CONNECT_SCHEMA_H
#define DUALSYNC_CONNECT_SCHEMA_H

#include "dualsync/buf.h"
#include "dualsync/common.h"
#include "dualsync/pgoutput.h"
#include "dualsync/value_format.h"

/* What the source catalog says of one column beyond pgoutput's Relation message, which
 * carries neither NOT NULL nor what a domain or an enum is. */
typedef struct ds_connect_column {
    char *name;          /* attname */
    bool not_null;       /* attnotnull: the field is not optional */
    uint32_t base_oid;   /* the column's type, a domain replaced by its base type (Debezium
                          * describes a domain column as its base type) */
    int32_t base_typmod; /* the column's typmod, or the domain's when the column has none */
    char *enum_values;   /* the labels, comma-separated in sort order, when the type or the
                          * array's element type is an enum; NULL otherwise */
    bool enum_array;     /* enum_values are those of the element type: an array of an enum */
    char *default_expr;  /* the column's DEFAULT as pg_get_expr() writes it (with DateStyle ISO,
                          * IntervalStyle iso_8601), or NULL */
} ds_connect_column_t;

/* The catalog's columns of schema.table (borrowed, *ncolumns entries), or NULL when the table
 * is unknown. Columns are matched by name; a column missing there is optional, as Debezium
 * has it when it cannot tell. */
typedef const ds_connect_column_t *(*ds_connect_columns_fn)(void *ctx, const char *schema,
                                                            const char *table, int *ncolumns);

/* The key schema of capture's truncate records ({"__dualsync_truncate":"<schema>.<table>"}):
 * Debezium sends a truncate without a key; a compacted topic refuses that. */
#define DS_CONNECT_TRUNCATE_KEY_SCHEMA                                                             \
    "{\"type\":\"struct\",\"fields\":[{\"type\":\"string\",\"optional\":false,"                    \
    "\"field\":\"__dualsync_truncate\"}],\"optional\":false,\"name\":\"io.dualsync.TruncateKey\"," \
    "\"version\":1}"

/* The schemas of the records on the transaction topic (provide.transaction.metadata). */
#define DS_CONNECT_TRANSACTION_KEY_SCHEMA                                                          \
    "{\"type\":\"struct\",\"fields\":[{\"type\":\"string\",\"optional\":false,\"field\":\"id\"}]," \
    "\"optional\":false,\"name\":\"io.debezium.connector.common.TransactionMetadataKey\","         \
    "\"version\":1}"
#define DS_CONNECT_TRANSACTION_VALUE_SCHEMA                                                        \
    "{\"type\":\"struct\",\"fields\":[{\"type\":\"string\",\"optional\":false,\"field\":"          \
    "\"status\"},{\"type\":\"string\",\"optional\":false,\"field\":\"id\"},{\"type\":\"int64\","   \
    "\"optional\":true,\"field\":\"event_count\"},{\"type\":\"array\",\"items\":{\"type\":"        \
    "\"struct\",\"fields\":[{\"type\":\"string\",\"optional\":false,\"field\":"                    \
    "\"data_collection\"},{\"type\":\"int64\",\"optional\":false,\"field\":\"event_count\"}],"     \
    "\"optional\":true,\"name\":\"event.collection\",\"version\":1},\"optional\":true,"            \
    "\"field\":\"data_collections\"},{\"type\":\"int64\",\"optional\":false,\"field\":"            \
    "\"ts_ms\"}],\"optional\":false,"                                                              \
    "\"name\":\"io.debezium.connector.common.TransactionMetadataValue\",\"version\":1}"

/**
 * @brief Whether Debezium gives column @p i of @p rel a field at all (it leaves out the
 *        columns of types it has no schema for, value and schema alike).
 * @param info  the catalog's entry for the column, or NULL.
 */
bool ds_connect_schema_has_field(const ds_relation_t *rel, int i, const ds_connect_column_t *info);

/**
 * @brief Appends the text value that stands for column @p i when the column is NOT NULL but
 *        the change has no value for it (the non-key columns of a delete's old key). Debezium
 *        writes its converter's fallback there (JdbcValueConverters.convertValue()), never
 *        the null the schema forbids: zero, false, "", the epoch, an empty array. This is
 *        that value in PostgreSQL's text output, so it is written like any other under every
 *        value setting.
 * @return false, appending nothing, when the column is optional (null is written) or has no
 *         field.
 */
bool ds_connect_schema_append_null_text(ds_buf_t *out, const ds_relation_t *rel, int i,
                                        const ds_connect_column_t *info);

/**
 * @brief Appends, as a text value of the column's type, the default Debezium puts in the
 *        column's field ("default"), read from info->default_expr as
 *        PostgresDefaultValueConverter reads it: a literal ('abc'::text, 42, true) is that
 *        value (up to its first closing quote, as Debezium's pattern takes it); a function
 *        call or CURRENT_TIMESTAMP and the like stands for a placeholder (0, "", the epoch,
 *        the nil UUID); anything else (an expression, a domain, an unconstrained numeric
 *        under decimal.handling.mode=precise, a type without a default parser) has none.
 * @return false, appending nothing, when the field has no default.
 */
bool ds_connect_schema_append_default_text(ds_buf_t *out, const ds_relation_t *rel, int i,
                                           const ds_connect_column_t *info,
                                           const ds_value_format_t *format);

/**
 * @brief Appends the key schema: struct "<topic>.Key" of the columns where key_mask[i]
 *        (rel->ncolumns entries, not NULL).
 * @param topic  "<prefix>.<schema>.<table>", which Debezium also uses as the schema names'
 *               prefix.
 * @param info      per column of @p rel (same order), NULL entries allowed; or NULL.
 * @param defaults  per column, the JSON of the field's "default" (the default text value
 *                  written as a value), NULL entries for none; or NULL.
 */
void ds_connect_schema_append_key(ds_buf_t *out, const char *topic, const ds_relation_t *rel,
                                  const bool *key_mask, const ds_connect_column_t *const *info,
                                  const char *const *defaults, const ds_value_format_t *format);

/**
 * @brief Appends the value schema: struct "<topic>.Envelope" with the row struct
 *        "<topic>.Value" for before and after, source, transaction, op and the timestamps.
 */
void ds_connect_schema_append_envelope(ds_buf_t *out, const char *topic, const ds_relation_t *rel,
                                       const ds_connect_column_t *const *info,
                                       const char *const *defaults,
                                       const ds_value_format_t *format);

#endif
