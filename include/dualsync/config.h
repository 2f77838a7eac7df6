/*
 * config.h: the dualsync configuration file (one JSON document).
 *
 *   {
 *     "source": {
 *       "conninfo": "host=db1 dbname=clinic user=dualsync",
 *       "publication": "dualsync", "slot": "dualsync",
 *       "tables": ["public.users", "public.patients"]
 *     },
 *     "kafka": { "bootstrap.servers": "127.0.0.1:9092", "...": "any librdkafka property" },
 *     "topic_prefix": "clinic",
 *     "capture": { "tombstones_on_delete": true, ... }
 *   }
 *
 * Every setting is declared once, with its type, default and bounds, in the table in
 * common/config.c; README.md documents them. Unknown keys are errors (a typo must not
 * silently fall back to a default). Passwords belong in the environment (PGPASSWORD,
 * PGSERVICE, ~/.pgpass); the conninfo is never logged.
 */
#ifndef DUALSYNC_CONFIG_H
#define DUALSYNC_CONFIG_H

#include "dualsync/common.h"

typedef struct ds_config {
    char *path; /* the file it was read from, for messages */

    /* "source" */
    char *source_conninfo;  /* libpq connection string of the captured database */
    char *publication;      /* publication name; created when missing */
    char *slot;             /* logical replication slot name; created when missing */
    char **tables;          /* "schema.table", ntables entries, each schema-qualified */
    int ntables;
    bool create_publication; /* create the publication / add missing tables (default true) */

    /* "kafka": librdkafka properties, passed through in file order */
    char **kafka_names;
    char **kafka_values;
    int nkafka;

    char *topic_prefix; /* topics are <topic_prefix>.<schema>.<table> */

    /* "capture" */
    bool tombstones_on_delete;            /* default true */
    char *unavailable_value_placeholder;  /* default "__debezium_unavailable_value" */
    char **skip_origins;                  /* default ["dualsync"]; NULL-terminated too */
    int nskip_origins;
    int status_interval_ms;               /* standby status update period, default 1000 */
    int64_t max_inflight_bytes;           /* stop reading WAL above this, default 32 MiB */
    int max_inflight_messages;            /* likewise, default 100000 */
    int shutdown_timeout_ms;              /* how long SIGTERM waits for Kafka, default 30000 */

    char *log_level; /* "debug", "info" (default), "warning", "error" */
} ds_config_t;

/**
 * @brief Reads and validates @p path.
 *
 * Reports the first problem as "FILE:LINE:COL: JSON.PATH: what was expected, what was
 * found" (LINE:COL of the offending value where it can be located).
 */
bool ds_config_load(const char *path, ds_config_t **config, char *errstr,
                    size_t errstr_size) DS_MUST_CHECK;

/** @brief Accepts NULL. */
void ds_config_free(ds_config_t *config);

/** @brief The value of librdkafka property @p name, or NULL when not set. Borrowed. */
const char *ds_config_kafka_get(const ds_config_t *config, const char *name);

#endif
