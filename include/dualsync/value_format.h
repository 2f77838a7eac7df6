/*
 * value_format.h: the Debezium settings that shape the values of change events.
 *
 * The config's "debezium" object takes the Debezium PostgreSQL connector's own property
 * names and values, so a team moving from Debezium pastes its settings and gets the same
 * messages:
 *
 *   "debezium": { "time.precision.mode": "adaptive", "decimal.handling.mode": "precise" }
 *
 * Capture writes values by these settings; apply reads topics written by them (dualsync's
 * or Debezium's own). docs/type-mapping.md shows every type under every mode.
 *
 * Two worlds. With the "debezium" object (even empty), or with capture.message_format
 * "json-with-schema", messages are exactly Debezium's under those settings, a setting not
 * given taking Debezium's default (adaptive, precise, bytes, numeric). Without it, capture
 * writes dualsync's classic values (cdc/typemap_classic.c): ISO strings for dates and times
 * as PostgreSQL writes them, numerics as strings, ISO 8601 intervals, which a person reads
 * as the database holds them and a consumer decodes without a schema. The classic values
 * are also what mappings read whatever the topics hold, so that a mapping's results (an id
 * derived from a date of birth) do not depend on how the topics were written.
 */
#ifndef DUALSYNC_VALUE_FORMAT_H
#define DUALSYNC_VALUE_FORMAT_H

#include "dualsync/common.h"

/* time.precision.mode */
typedef enum ds_time_precision {
    DS_TIME_ISOSTRING = 0,             /* "isostring": ISO 8601 strings ("2024-01-31Z") */
    DS_TIME_ADAPTIVE,                  /* "adaptive" (Debezium's default): epoch counts in the
                                        * column's precision (ms up to 3 digits, else us) */
    DS_TIME_ADAPTIVE_TIME_MICROSECONDS, /* "adaptive_time_microseconds": time always in us */
    DS_TIME_CONNECT,                   /* "connect": Kafka Connect's Date/Time/Timestamp, ms */
    DS_TIME_MICROSECONDS,              /* "microseconds": time and timestamp in us */
    DS_TIME_NANOSECONDS,               /* "nanoseconds": time and timestamp in ns */
} ds_time_precision_t;

/* decimal.handling.mode: numeric and money */
typedef enum ds_decimal_handling {
    DS_DECIMAL_STRING = 0, /* "string": every digit, as text */
    DS_DECIMAL_PRECISE,    /* "precise" (Debezium's default): Connect Decimal, base64 of the
                            * unscaled big-endian two's complement; unconstrained numeric as
                            * io.debezium.data.VariableScaleDecimal {"scale","value"} */
    DS_DECIMAL_DOUBLE,     /* "double": a JSON number (may lose digits) */
} ds_decimal_handling_t;

/* binary.handling.mode: bytea */
typedef enum ds_binary_handling {
    DS_BINARY_BYTES = 0,       /* "bytes" (both defaults): JsonConverter writes bytes base64 */
    DS_BINARY_BASE64,          /* "base64": a base64 string */
    DS_BINARY_BASE64_URL_SAFE, /* "base64-url-safe" */
    DS_BINARY_HEX,             /* "hex": lowercase base16 */
} ds_binary_handling_t;

/* interval.handling.mode */
typedef enum ds_interval_handling {
    DS_INTERVAL_STRING = 0, /* "string": P<y>Y<m>M<d>DT<h>H<m>M<s>S */
    DS_INTERVAL_NUMERIC,    /* "numeric" (Debezium's default): microseconds, a month being
                             * 365.25 / 12 days (io.debezium.time.MicroDuration) */
} ds_interval_handling_t;

/* Debezium's "topic.transaction" default. */
#define DS_DEFAULT_TRANSACTION_TOPIC "transaction"

/* capture.message_format */
typedef enum ds_message_format {
    DS_MESSAGE_JSON = 0,         /* "json": schemaless, as JsonConverter schemas.enable=false */
    DS_MESSAGE_JSON_WITH_SCHEMA, /* "json-with-schema": {"schema":...,"payload":...} */
} ds_message_format_t;

typedef struct ds_value_format {
    bool debezium; /* Debezium's messages (above); false: dualsync's classic values, and the
                    * settings below are not used */
    ds_time_precision_t time_precision;
    ds_decimal_handling_t decimal_handling;
    ds_binary_handling_t binary_handling;
    ds_interval_handling_t interval_handling;
    int money_fraction_digits;         /* money.fraction.digits, default 2 */
    bool provide_transaction_metadata; /* provide.transaction.metadata, default false */
    char *transaction_topic;           /* topic.transaction, default "transaction" (set by
                                        * the config loader): BEGIN/END records go to
                                        * <topic_prefix>.<this> */
    ds_message_format_t message_format;
    bool extended_headers;             /* extended.headers.enabled, default true (Debezium's):
                                        * the __debezium.context.* headers on every change */
} ds_value_format_t;

/** @brief Sets @p format to dualsync's classic values, and the settings to Debezium's
 *         defaults for when debezium is set (no allocation; transaction_topic NULL). */
void ds_value_format_init(ds_value_format_t *format);

/**
 * @brief Checks one property of the "debezium" object.
 *
 * @return NULL when @p name and @p value are accepted, else a static message saying what
 *         is expected (the known names, or the values @p name takes).
 */
const char *ds_value_format_check(const char *name, const char *value);

/**
 * @brief Sets the field @p name names (already checked by ds_value_format_check()).
 *
 * tombstones.on.delete is not a value format: it is written to @p tombstones_on_delete.
 * @return false only when memory runs out.
 */
bool ds_value_format_set(ds_value_format_t *format, bool *tombstones_on_delete,
                         const char *name, const char *value) DS_MUST_CHECK;

/** @brief The Debezium value of each setting, for messages and `--help`. */
const char *ds_time_precision_name(ds_time_precision_t mode);
const char *ds_decimal_handling_name(ds_decimal_handling_t mode);
const char *ds_binary_handling_name(ds_binary_handling_t mode);
const char *ds_interval_handling_name(ds_interval_handling_t mode);

#endif
