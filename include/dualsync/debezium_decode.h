/*
 * debezium_decode.h: reads change messages written under any Debezium value setting (by
 * dualsync capture or by Debezium itself) into the values apply binds.
 *
 * Apply's mappings, statements and `dualsync verify` work on one form of each value:
 * dualsync's classic values, which capture writes without the "debezium" object
 * (docs/type-mapping.md: ISO 8601 dates and times as PostgreSQL writes them, numerics as
 * strings, bytea base64, intervals ISO 8601). A message without a schema passes untouched. A
 * message in the JsonConverter schema envelope ({"schema": ..., "payload": ...},
 * schemas.enable=true) is unwrapped, and each value whose field schema names a Debezium or
 * Kafka Connect logical type (io.debezium.time.Date, MicroTimestamp, ...,
 * org.apache.kafka.connect.data.Decimal, io.debezium.data.VariableScaleDecimal, ...) is
 * rewritten into that form, so that the rest of apply never sees an encoding.
 *
 * Without the schema, an epoch count, an unscaled decimal or a microsecond duration cannot be
 * told from an integer or a string column: ds_debezium_decode_check() refuses those settings
 * at start, and a message that arrives without its schema where the settings need one is an
 * error of that message (a dead letter), never a value bound as read. Schemaless values under
 * the string settings (isostring, string) are read as Debezium wrote them ("2024-01-31Z"),
 * which PostgreSQL reads into typed columns.
 */
#ifndef DUALSYNC_DEBEZIUM_DECODE_H
#define DUALSYNC_DEBEZIUM_DECODE_H

#include <jansson.h>

#include "dualsync/common.h"
#include "dualsync/value_format.h"

typedef struct ds_debezium_decoder ds_debezium_decoder_t;

/**
 * @brief Whether apply can read topics written under @p format.
 *
 * @param have_types  the columns' types of every topic were read from the source catalog
 * @return false with a configuration error naming the setting and what to do when values
 *         written that way cannot be decoded (schemaless messages under a setting whose
 *         values need the column type, without @p have_types; binary.handling.mode hex or
 *         base64-url-safe, whose bytea values are plain strings even in the schema).
 */
bool ds_debezium_decode_check(const ds_value_format_t *format, bool have_types, char *errstr,
                              size_t errstr_size) DS_MUST_CHECK;

/** @brief Whether schemaless topics written under @p format need the columns' types (read
 *         from the source catalog: ds_debezium_catalog_read()). */
bool ds_debezium_needs_types(const ds_value_format_t *format);

/** @brief A decoder for topics written under @p format (copied; NULL: dualsync's defaults). */
ds_debezium_decoder_t *ds_debezium_decoder_new(const ds_value_format_t *format);

/** @brief Accepts NULL. */
void ds_debezium_decoder_free(ds_debezium_decoder_t *decoder);

/**
 * @brief Unwraps and decodes one change message in place of the caller's pointers.
 *
 * @param value    in: the parsed message value (borrowed; NULL for a tombstone); out: the
 *                 change's Debezium value with its before/after in apply's form (the same
 *                 pointer when nothing needed decoding, NULL for an enveloped tombstone)
 * @param key      in/out: the message key text (may be unterminated) and its length, as
 *                 for @p value; a decoded key is compact JSON of the key payload
 * @return false with @p errstr naming the field and why when a value does not fit its
 *         schema or the declared settings. Results are owned by @p decoder and stay valid
 *         until its next call.
 */
bool ds_debezium_decode_change(ds_debezium_decoder_t *decoder, const char *topic,
                               const json_t **value, const char **key, size_t *key_len,
                               char *errstr, size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief Gives the decoder the Connect struct schema of the rows of @p topic (taken), which
 *        Debezium would have sent with schemas.enable=true: schemaless messages of that
 *        topic are then decoded by it, and a column it lacks is an error of the message.
 * @return false only when memory runs out.
 */
bool ds_debezium_decoder_add_table(ds_debezium_decoder_t *decoder, const char *topic,
                                   json_t *schema) DS_MUST_CHECK;

/**
 * @brief The Connect field schema Debezium writes for a column of type @p oid (a domain's
 *        base type) with @p typmod under @p format; @p elem is the element type of an array
 *        type, else 0. A new reference.
 */
json_t *ds_debezium_column_schema(uint32_t oid, int32_t typmod, uint32_t elem,
                                  const ds_value_format_t *format);

/**
 * @brief Reads the columns of the source table @p schema.@p table through @p conn and gives
 *        the decoder their schema for @p topic (ds_debezium_decoder_add_table()).
 * @return false with a message naming the table when it cannot be read.
 */
bool ds_debezium_catalog_read(ds_debezium_decoder_t *decoder, void *conn, const char *topic,
                              const char *schema, const char *table,
                              const ds_value_format_t *format, char *errstr,
                              size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief PostgreSQL's text of one value whose Connect field schema @p schema names a logical
 *        type (DateStyle ISO, IntervalStyle iso_8601, TimeZone UTC, as the capture session).
 *
 * @param out  a new string, or NULL when the schema names no type to decode (plain types,
 *             Json, Uuid, ...: the value is already what PostgreSQL wrote)
 * @param oid  the PostgreSQL type the text is of (0 with @p out NULL)
 */
bool ds_debezium_decode_text(const json_t *schema, const json_t *value, json_t **out, uint32_t *oid,
                             const char *field, char *errstr, size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief Decodes one value by its Connect field schema @p schema, into its classic value
 *        (ds_debezium_decode_text(), then ds_typemap_append_json()).
 *
 * @param out  a new reference to the decoded value, or NULL when @p value is already in
 *             apply's form (the common case: no allocation)
 * @param field the field's path, for messages
 */
bool ds_debezium_decode_value(const json_t *schema, const json_t *value, json_t **out,
                              const char *field, char *errstr, size_t errstr_size) DS_MUST_CHECK;

#endif
