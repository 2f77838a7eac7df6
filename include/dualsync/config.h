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
 *     "topics": { "partitions": 1, "cleanup_policy": "compact", "config": {"...": "..."} },
 *     "capture": { "tombstones_on_delete": true, "message_format": "json", ... },
 *     "debezium": { "time.precision.mode": "adaptive", "...": "Debezium's value settings" },
 *     "targets": { "clinic": { "conninfo": "host=db2 dbname=clinic_new" } },
 *     "mappings": ["mappings/users.json"],
 *     "apply": { "group_id": "dualsync-apply", "on_error": "dlq", ... }
 *   }
 *
 * `dualsync capture` needs "source"; `dualsync apply` needs "targets" and "mappings". One file
 * may hold both sides; each command asks ds_config_load_for() for the sections it needs, so a
 * missing one is reported with the file and its JSON path.
 *
 * Every setting is declared once, with its type, default and bounds, in the table in
 * common/config.c; README.md documents them. Unknown keys are errors (a typo must not
 * silently fall back to a default). Passwords belong in the environment (PGPASSWORD,
 * PGSERVICE, ~/.pgpass); the conninfo is never logged.
 */
#ifndef DUALSYNC_CONFIG_H
#define DUALSYNC_CONFIG_H

#include "dualsync/common.h"
#include "dualsync/value_format.h"

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

    /* "topics": how dualsync creates the topics it writes (common/topics.c) */
    int topics_partitions;          /* default 1 */
    int topics_replication_factor;  /* default -1: the broker's default.replication.factor */
    char *topics_cleanup_policy;    /* of the change topics: "compact" (default), "delete",
                                     * "compact,delete" */
    char **topics_config_names;     /* "topics.config": more topic settings, in file order */
    char **topics_config_values;    /* their values, as text */
    int ntopics_config;

    /* "capture" */
    bool tombstones_on_delete;            /* default true */
    char *unavailable_value_placeholder;  /* default "__debezium_unavailable_value" */
    char **skip_origins;                  /* default ["dualsync"]; NULL-terminated too */
    int nskip_origins;
    int status_interval_ms;               /* standby status update period, default 1000 */
    int standby_takeover_ms;              /* a standby ends a slot holder silent this long */
    int64_t max_inflight_bytes;           /* stop reading WAL above this, default 32 MiB */
    int max_inflight_messages;            /* likewise, default 100000 */
    int shutdown_timeout_ms;              /* how long SIGTERM waits for Kafka, default 30000 */
    char *snapshot_mode;                  /* "initial" (default): backfill the existing rows
                                           * when the slot is created; "never" */
    char *capture_metrics_address;        /* HOST:PORT of /metrics and /healthz, or "off";
                                           * default "127.0.0.1:9187" */
    char *message_format;                 /* "json" (default) or "json-with-schema" */

    /* "debezium": Debezium's own settings that shape values, by Debezium's names, as
     * given (checked by ds_value_format_check) and as read into value_format */
    char **debezium_names;
    char **debezium_values;
    int ndebezium;
    ds_value_format_t value_format; /* how capture writes, and apply reads, the topics */

    char *log_level;  /* "debug", "info" (default), "warning", "error" */
    char *log_format; /* "text" (default) or "json": one JSON object per line */

    /* "targets": the databases apply writes, name -> conninfo, in file order */
    char **target_names;     /* keys of "targets" (what a mapping's "connection" names) */
    char **target_conninfos; /* their libpq connection strings (never logged) */
    int ntargets;

    /* "mappings": mapping files, resolved against the config file's directory */
    char **mappings; /* NULL-terminated too */
    int nmappings;

    /* "apply" */
    char *apply_group_id;          /* Kafka consumer group, default "dualsync-apply" */
    int apply_batch_max_messages;  /* messages per database transaction, default 1000 */
    int apply_batch_max_ms;        /* longest a batch waits to fill, default 100 */
    bool apply_set_based;          /* one set-based statement per target and batch, default
                                    * true (false: row by row) */
    char *apply_on_error;          /* "dlq" (default) or "stop" */
    char *apply_origin;            /* replication origin of apply's writes, default "dualsync" */
    char *apply_instance_id;       /* static group membership id and origin suffix; NULL:
                                    * derived at start (apply.c, "Origins") */
    char *apply_dlq_topic;         /* dead-letter topic, default "<topic_prefix>.dlq" */
    char *apply_pending_timeout;   /* "off" (default) or a duration ("90s", "30min", "12h") */
    int64_t apply_pending_timeout_ms; /* apply_pending_timeout in ms; 0 when "off" */
    char *apply_metrics_address;   /* HOST:PORT of /metrics and /healthz, or "off"; default
                                    * "127.0.0.1:9188" */
} ds_config_t;

/* What a command needs from the file (ds_config_load_for's uses, a bit mask). */
#define DS_CONFIG_FOR_CAPTURE 0x1u /* "source" */
#define DS_CONFIG_FOR_APPLY 0x2u   /* "targets" and "mappings" */

/**
 * @brief Reads and validates @p path for capture: ds_config_load_for(DS_CONFIG_FOR_CAPTURE).
 *
 * Reports the first problem as "FILE:LINE:COL: JSON.PATH: what was expected, what was
 * found" (LINE:COL of the offending value where it can be located).
 */
bool ds_config_load(const char *path, ds_config_t **config, char *errstr,
                    size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief Reads and validates @p path, requiring the sections @p uses names.
 *
 * @param uses  DS_CONFIG_FOR_CAPTURE and/or DS_CONFIG_FOR_APPLY; 0 accepts a file with either
 *              side (or both), and a side that is present must be complete.
 * A side's section that is present is always validated completely, needed or not.
 */
bool ds_config_load_for(const char *path, unsigned uses, ds_config_t **config, char *errstr,
                        size_t errstr_size) DS_MUST_CHECK;

/** @brief The conninfo of target database @p name, or NULL. Borrowed. */
const char *ds_config_target_conninfo(const ds_config_t *config, const char *name);

/** @brief Accepts NULL. */
void ds_config_free(ds_config_t *config);

/**
 * @brief True when the values of librdkafka property @p name are credentials or close to
 *        them (names containing password, secret or sasl, any case): never print them.
 */
bool ds_config_kafka_name_is_secret(const char *name);

/** @brief The value of librdkafka property @p name, or NULL when not set. Borrowed. */
const char *ds_config_kafka_get(const ds_config_t *config, const char *name);

#endif
