/*
 * config.c: reads, validates and frees the dualsync configuration file.
 *
 * Every setting is declared once, in settings[] below: its JSON path, type, default, bounds,
 * where it lives in ds_config_t and what it means. Defaults, validation, error messages and
 * freeing are all driven by that table, so a new setting is one new row (plus its field in
 * config.h and its line in docs/configuration.md).
 *
 * The file is walked in file order, so the first problem reported is the first one a reader
 * meets going down the file; required settings that are missing are reported when the walk
 * leaves the object that should have held them.
 *
 * jansson does not remember where values sit in the text, so error positions come from the small
 * tokenizer of jsonpos.h, which walks the already-validated text to a JSON path.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "dualsync/config.h"
#include "dualsync/jsonpos.h"
#include "dualsync/metrics_http.h"

/* ---------------------------------------------------------------------------------------------
 * The settings table
 * ------------------------------------------------------------------------------------------- */

typedef enum setting_type {
    SETTING_STRING,      /* char * */
    SETTING_BOOL,        /* bool */
    SETTING_INT,         /* int, bounded by min..max */
    SETTING_INT64,       /* int64_t, bounded by min..max */
    SETTING_STRING_LIST, /* char ** (NULL-terminated) + int count */
    SETTING_KAFKA,       /* char **names, char **values + int count, in file order */
    SETTING_PROPERTIES,  /* likewise, any names (SETTING_KAFKA also requires bootstrap.servers) */
    SETTING_TARGETS,     /* name -> {"conninfo"}: char **names, char **conninfos + int count */
} setting_type_t;

typedef struct setting {
    const char *path;           /* below the root, sections dotted: "capture.status_interval_ms" */
    setting_type_t type;        /* how the JSON value is checked and stored */
    bool required;              /* no default: the file must set it (within its section when
                                 * the section is present; see needed_by otherwise) */
    unsigned needed_by;         /* DS_CONFIG_FOR_* uses that need a required setting whose
                                 * section is absent; 0: every use */
    const char *default_string; /* SETTING_STRING default, copied */
    int64_t default_number;     /* SETTING_BOOL (0/1), SETTING_INT, SETTING_INT64 default */
    const char *const *default_list; /* SETTING_STRING_LIST default, NULL-terminated */
    int64_t min, max;                /* numbers: inclusive bounds; lists: min = fewest entries */
    bool secret;                     /* the value may hold a password: never shown in messages */
    bool (*valid)(const char *text); /* extra rule for a string or each list entry, or NULL */
    const char *expected;            /* that rule in words, after "expected " */
    const char *list_expected;       /* lists: the whole array in words, after "expected " */
    bool (*same)(const char *a, const char *b); /* lists: entries naming one thing are an error */
    const char *(*check_property)(const char *name, const char *value); /* properties: NULL
                                                 * when accepted, else what is expected */
    bool relative_to_file;                      /* lists: paths resolved against the config
                                                 * file's directory */
    size_t offset;                              /* of the field in ds_config_t */
    size_t count_offset;                        /* lists, kafka: of the int count */
    size_t values_offset;                       /* kafka, targets: of the values (offset is of
                                                 * the names) */
    const char *description;                    /* one line, as in docs/configuration.md */
} setting_t;

static bool valid_publication(const char *text);
static bool valid_slot(const char *text);
static bool valid_table(const char *text);
static bool same_table(const char *a, const char *b);
static bool valid_topic_prefix(const char *text);
static bool valid_nonempty(const char *text);
static bool valid_log_level(const char *text);
static bool valid_log_format(const char *text);
static bool same_string(const char *a, const char *b);
static bool valid_group_id(const char *text);
static bool valid_on_error(const char *text);
static bool valid_origin(const char *text);
static bool valid_instance_id(const char *text);
static bool valid_topic(const char *text);
static bool valid_snapshot_mode(const char *text);
static bool valid_message_format(const char *text);
static bool valid_duration(const char *text);
static bool valid_metrics_address(const char *text);
static bool valid_cleanup_policy(const char *text);

static const char *const default_skip_origins[] = {"dualsync", NULL};

#define MIB INT64_C(1048576)
#define GIB (INT64_C(1024) * MIB)

/* Keep docs/configuration.md in step with this table (the tests load its example file). */
static const setting_t settings[] = {
    {.path = "source.conninfo",
     .type = SETTING_STRING,
     .required = true,
     .needed_by = DS_CONFIG_FOR_CAPTURE,
     .secret = true,
     .expected = "a string (a libpq connection string)",
     .offset = offsetof(ds_config_t, source_conninfo),
     .description = "libpq connection string of the captured database"},
    {.path = "source.publication",
     .type = SETTING_STRING,
     .default_string = "dualsync",
     .valid = valid_publication,
     .expected = "a publication name (1 to 63 bytes)",
     .offset = offsetof(ds_config_t, publication),
     .description = "publication to read; created when missing"},
    {.path = "source.slot",
     .type = SETTING_STRING,
     .default_string = "dualsync",
     .valid = valid_slot,
     .expected = "a replication slot name (1 to 63 lowercase letters, digits and underscores)",
     .offset = offsetof(ds_config_t, slot),
     .description = "logical replication slot; created when missing"},
    {.path = "source.tables",
     .type = SETTING_STRING_LIST,
     .required = true,
     .needed_by = DS_CONFIG_FOR_CAPTURE,
     .min = 1,
     .valid = valid_table,
     .expected = "a schema-qualified table name (\"schema.table\")",
     .list_expected = "a non-empty array of \"schema.table\" names",
     .same = same_table,
     .offset = offsetof(ds_config_t, tables),
     .count_offset = offsetof(ds_config_t, ntables),
     .description = "tables to capture, each \"schema.table\""},
    {.path = "source.create_publication",
     .type = SETTING_BOOL,
     .default_number = 1,
     .offset = offsetof(ds_config_t, create_publication),
     .description = "create the publication, or add missing tables to it"},
    {.path = "kafka",
     .type = SETTING_KAFKA,
     .required = true,
     .offset = offsetof(ds_config_t, kafka_names),
     .values_offset = offsetof(ds_config_t, kafka_values),
     .count_offset = offsetof(ds_config_t, nkafka),
     .description = "librdkafka properties of capture's producer and apply's consumer and "
                    "dead-letter producer, passed through in file order"},
    {.path = "topic_prefix",
     .type = SETTING_STRING,
     .required = true,
     .valid = valid_topic_prefix,
     .expected = "a Kafka topic prefix (1 to 200 characters from a-z A-Z 0-9 . _ -)",
     .offset = offsetof(ds_config_t, topic_prefix),
     .description = "topics are <topic_prefix>.<schema>.<table>"},
    {.path = "topics.partitions",
     .type = SETTING_INT,
     .default_number = 1,
     .min = 1,
     .max = 100000,
     .offset = offsetof(ds_config_t, topics_partitions),
     .description = "partitions of each topic dualsync creates"},
    {.path = "topics.replication_factor",
     .type = SETTING_INT,
     .default_number = -1,
     .min = -1,
     .max = 32767,
     .offset = offsetof(ds_config_t, topics_replication_factor),
     .description = "replicas of each topic dualsync creates; -1: the broker's "
                    "default.replication.factor"},
    {.path = "topics.cleanup_policy",
     .type = SETTING_STRING,
     .default_string = "compact",
     .valid = valid_cleanup_policy,
     .expected = "\"compact\", \"delete\" or \"compact,delete\"",
     .offset = offsetof(ds_config_t, topics_cleanup_policy),
     .description = "cleanup.policy of each change topic dualsync creates"},
    {.path = "topics.config",
     .type = SETTING_PROPERTIES,
     .offset = offsetof(ds_config_t, topics_config_names),
     .values_offset = offsetof(ds_config_t, topics_config_values),
     .count_offset = offsetof(ds_config_t, ntopics_config),
     .description = "more topic settings of each topic dualsync creates, passed as they are"},
    {.path = "capture.tombstones_on_delete",
     .type = SETTING_BOOL,
     .default_number = 1,
     .offset = offsetof(ds_config_t, tombstones_on_delete),
     .description = "follow each delete event with a null-value tombstone"},
    {.path = "capture.unavailable_value_placeholder",
     .type = SETTING_STRING,
     .default_string = "__debezium_unavailable_value",
     .offset = offsetof(ds_config_t, unavailable_value_placeholder),
     .description = "stands for unchanged TOAST values the WAL does not carry"},
    {.path = "capture.skip_origins",
     .type = SETTING_STRING_LIST,
     .default_list = default_skip_origins,
     .valid = valid_nonempty,
     .expected = "a replication origin name (a non-empty string)",
     .list_expected = "an array of replication origin names",
     .offset = offsetof(ds_config_t, skip_origins),
     .count_offset = offsetof(ds_config_t, nskip_origins),
     .description = "transactions replayed under these origins are not published"},
    {.path = "capture.status_interval_ms",
     .type = SETTING_INT,
     .default_number = 1000,
     .min = 100,
     .max = 600000,
     .offset = offsetof(ds_config_t, status_interval_ms),
     .description = "period of standby status updates to the server"},
    {.path = "capture.standby_takeover_ms",
     .type = SETTING_INT,
     .default_number = 10000,
     .min = 1000,
     .max = 3600000,
     .offset = offsetof(ds_config_t, standby_takeover_ms),
     .description = "a standby ends the session holding the slot after this long without a "
                    "status update from it (a lost host, a frozen process)"},
    {.path = "capture.max_inflight_bytes",
     .type = SETTING_INT64,
     .default_number = 32 * MIB,
     .min = 1 * MIB,
     .max = 16 * GIB,
     .offset = offsetof(ds_config_t, max_inflight_bytes),
     .description = "stop reading WAL while more unacknowledged bytes than this are queued"},
    {.path = "capture.max_inflight_messages",
     .type = SETTING_INT,
     .default_number = 100000,
     .min = 100,
     .max = 10000000,
     .offset = offsetof(ds_config_t, max_inflight_messages),
     .description = "likewise, in messages"},
    {.path = "capture.shutdown_timeout_ms",
     .type = SETTING_INT,
     .default_number = 30000,
     .min = 0,
     .max = 3600000,
     .offset = offsetof(ds_config_t, shutdown_timeout_ms),
     .description = "how long SIGTERM waits for Kafka to acknowledge what is queued"},
    {.path = "capture.snapshot_mode",
     .type = SETTING_STRING,
     .default_string = "initial",
     .valid = valid_snapshot_mode,
     .expected = "\"initial\" or \"never\"",
     .offset = offsetof(ds_config_t, snapshot_mode),
     .description = "publish the rows that exist when the slot is created as read events "
                    "(\"initial\"), or only later changes (\"never\")"},
    {.path = "capture.message_format",
     .type = SETTING_STRING,
     .default_string = "json",
     .valid = valid_message_format,
     .expected = "\"json\" or \"json-with-schema\"",
     .offset = offsetof(ds_config_t, message_format),
     .description = "schemaless JSON (\"json\"), or Kafka Connect JsonConverter's schema "
                    "envelope (\"json-with-schema\") for Connect sinks"},
    {.path = "debezium",
     .type = SETTING_PROPERTIES,
     .check_property = ds_value_format_check,
     .offset = offsetof(ds_config_t, debezium_names),
     .values_offset = offsetof(ds_config_t, debezium_values),
     .count_offset = offsetof(ds_config_t, ndebezium),
     .description = "Debezium's settings that shape values, by Debezium's names "
                    "(time.precision.mode, decimal.handling.mode, ...)"},
    {.path = "capture.metrics_address",
     .type = SETTING_STRING,
     .default_string = "127.0.0.1:9187",
     .valid = valid_metrics_address,
     .expected = "\"off\" or HOST:PORT (\"127.0.0.1:9187\", \"[::1]:9187\"), PORT 1 to 65535",
     .offset = offsetof(ds_config_t, capture_metrics_address),
     .description = "where capture serves /metrics and /healthz (docs/metrics.md); \"off\" "
                    "disables them"},
    {.path = "log_level",
     .type = SETTING_STRING,
     .default_string = "info",
     .valid = valid_log_level,
     .expected = "one of \"debug\", \"info\", \"warning\", \"error\"",
     .offset = offsetof(ds_config_t, log_level),
     .description = "least severe level logged"},
    {.path = "log_format",
     .type = SETTING_STRING,
     .default_string = "text",
     .valid = valid_log_format,
     .expected = "\"text\" or \"json\"",
     .offset = offsetof(ds_config_t, log_format),
     .description = "log lines as text, or as one JSON object each (ts, level, process, "
                    "message)"},
    {.path = "targets",
     .type = SETTING_TARGETS,
     .required = true,
     .needed_by = DS_CONFIG_FOR_APPLY,
     .offset = offsetof(ds_config_t, target_names),
     .values_offset = offsetof(ds_config_t, target_conninfos),
     .count_offset = offsetof(ds_config_t, ntargets),
     .description = "databases apply writes: name -> {\"conninfo\": libpq connection string}"},
    {.path = "mappings",
     .type = SETTING_STRING_LIST,
     .required = true,
     .needed_by = DS_CONFIG_FOR_APPLY,
     .min = 1,
     .valid = valid_nonempty,
     .expected = "a mapping file path (a non-empty string)",
     .list_expected = "a non-empty array of mapping file paths",
     .same = same_string,
     .relative_to_file = true,
     .offset = offsetof(ds_config_t, mappings),
     .count_offset = offsetof(ds_config_t, nmappings),
     .description = "mapping files, relative to the configuration file's directory"},
    {.path = "apply.group_id",
     .type = SETTING_STRING,
     .default_string = "dualsync-apply",
     .valid = valid_group_id,
     .expected = "a Kafka consumer group id (1 to 200 characters from a-z A-Z 0-9 . _ -)",
     .offset = offsetof(ds_config_t, apply_group_id),
     .description = "Kafka consumer group; also the key of the offsets kept in each target"},
    {.path = "apply.batch_max_messages",
     .type = SETTING_INT,
     .default_number = 1000,
     .min = 1,
     .max = 1000000,
     .offset = offsetof(ds_config_t, apply_batch_max_messages),
     .description = "most messages applied in one transaction per target database"},
    {.path = "apply.batch_max_ms",
     .type = SETTING_INT,
     .default_number = 100,
     .min = 1,
     .max = 600000,
     .offset = offsetof(ds_config_t, apply_batch_max_ms),
     .description = "longest a batch keeps taking messages that keep arriving (it goes as "
                    "soon as nothing more is queued)"},
    {.path = "apply.set_based",
     .type = SETTING_BOOL,
     .default_number = 1,
     .offset = offsetof(ds_config_t, apply_set_based),
     .description = "write each target of a batch with one set-based statement (false: one "
                    "statement per change, slower; for comparison and diagnosis)"},
    {.path = "apply.on_error",
     .type = SETTING_STRING,
     .default_string = "dlq",
     .valid = valid_on_error,
     .expected = "\"dlq\" or \"stop\"",
     .offset = offsetof(ds_config_t, apply_on_error),
     .description =
         "a change that cannot be applied goes to the dead-letter topic, or stops apply"},
    {.path = "apply.origin",
     .type = SETTING_STRING,
     .default_string = "dualsync",
     .valid = valid_origin,
     .expected = "a replication origin name (1 to 512 bytes)",
     .offset = offsetof(ds_config_t, apply_origin),
     .description = "replication origin of apply's transactions (capture skips it)"},
    {.path = "apply.instance_id",
     .type = SETTING_STRING,
     .valid = valid_instance_id,
     .expected = "an id for this apply process (1 to 200 characters from a-z A-Z 0-9 . _ -)",
     .offset = offsetof(ds_config_t, apply_instance_id),
     .description = "this process's static group membership (group.instance.id) and origin "
                    "suffix; default \"<host name>-<n>\", n the lowest free on this host"},
    {.path = "apply.dlq_topic",
     .type = SETTING_STRING,
     .valid = valid_topic,
     .expected = "a Kafka topic name (1 to 249 characters from a-z A-Z 0-9 . _ -)",
     .offset = offsetof(ds_config_t, apply_dlq_topic),
     .description = "dead-letter topic; default \"<topic_prefix>.dlq\""},
    {.path = "apply.pending_timeout",
     .type = SETTING_STRING,
     .default_string = "off",
     .valid = valid_duration,
     .expected = "\"off\" or a duration of at least one second: a whole number followed by "
                 "s, min, h or d (\"90s\", \"30min\", \"12h\", \"7d\")",
     .offset = offsetof(ds_config_t, apply_pending_timeout),
     .description = "a change waiting longer than this in dualsync.pending for its parent "
                    "becomes a dead letter; \"off\" (default): it waits for ever"},
    {.path = "apply.metrics_address",
     .type = SETTING_STRING,
     .default_string = "127.0.0.1:9188",
     .valid = valid_metrics_address,
     .expected = "\"off\" or HOST:PORT (\"127.0.0.1:9188\", \"[::1]:9188\"), PORT 1 to 65535",
     .offset = offsetof(ds_config_t, apply_metrics_address),
     .description = "where apply serves /metrics and /healthz (docs/metrics.md); \"off\" "
                    "disables them"},
};

#define NSETTINGS DS_ARRAY_LEN(settings)

/* The name librdkafka needs before anything can be produced. */
#define KAFKA_BOOTSTRAP "bootstrap.servers"

#define FIELD(config, offset, type) ((type *)((char *)(config) + (offset)))

/* ---------------------------------------------------------------------------------------------
 * Value rules
 * ------------------------------------------------------------------------------------------- */

/* PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes; a longer name would silently
 * become another one. */
#define PG_MAX_IDENTIFIER 63

static bool valid_publication(const char *text)
{
    size_t len = strlen(text);

    return len >= 1 && len <= PG_MAX_IDENTIFIER;
}

/* ReplicationSlotValidateName(): lowercase letters, digits and underscores only. */
static bool valid_slot(const char *text)
{
    size_t len = strlen(text);

    if (len < 1 || len > PG_MAX_IDENTIFIER)
        return false;
    for (const char *p = text; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    }
    return true;
}

static bool is_ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool is_ident_char(unsigned char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

/*
 * Reads one identifier of a qualified name at *p: either unquoted (folded to lowercase, as the
 * server does) or double-quoted with "" standing for a quote. Writes its canonical form to
 * out (PG_MAX_IDENTIFIER + 1 bytes) when out is not NULL, and moves *p past it.
 */
static bool read_identifier(const char **p, char *out)
{
    const char *s = *p;
    size_t n = 0;

    if (*s == '"') {
        s++;
        for (;;) {
            if (*s == '\0')
                return false;
            if (*s == '"') {
                if (s[1] != '"')
                    break;
                s++;
            }
            if (n == PG_MAX_IDENTIFIER)
                return false;
            if (out)
                out[n] = *s;
            n++;
            s++;
        }
        s++; /* the closing quote */
    } else {
        if (!is_ident_start((unsigned char)*s))
            return false;
        while (is_ident_char((unsigned char)*s)) {
            if (n == PG_MAX_IDENTIFIER)
                return false;
            if (out)
                out[n] = (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a') : *s;
            n++;
            s++;
        }
    }
    if (n == 0)
        return false;
    if (out)
        out[n] = '\0';
    *p = s;
    return true;
}

/* "schema.table": two identifiers joined by one unquoted dot, nothing else. */
static bool parse_table(const char *text, char *schema, char *table)
{
    const char *p = text;

    return read_identifier(&p, schema) && *p++ == '.' && read_identifier(&p, table) && *p == '\0';
}

static bool valid_table(const char *text)
{
    return parse_table(text, NULL, NULL);
}

/* public.users, "public"."users" and Public.Users all name the same table. */
static bool same_table(const char *a, const char *b)
{
    char schema_a[PG_MAX_IDENTIFIER + 1], table_a[PG_MAX_IDENTIFIER + 1];
    char schema_b[PG_MAX_IDENTIFIER + 1], table_b[PG_MAX_IDENTIFIER + 1];

    if (!parse_table(a, schema_a, table_a) || !parse_table(b, schema_b, table_b))
        return strcmp(a, b) == 0;
    return strcmp(schema_a, schema_b) == 0 && strcmp(table_a, table_b) == 0;
}

/* The prefix is joined to ".<schema>.<table>"; Kafka allows [a-zA-Z0-9._-] and 249 bytes. */
static bool valid_topic_prefix(const char *text)
{
    size_t len = strlen(text);

    if (len < 1 || len > 200)
        return false;
    for (const char *p = text; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return false;
    }
    return true;
}

static bool valid_nonempty(const char *text)
{
    return text[0] != '\0';
}

static bool same_string(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

/* Kafka's legal topic characters, [a-zA-Z0-9._-], between min and max of them. */
static bool kafka_name(const char *text, size_t min, size_t max)
{
    size_t len = strlen(text);

    if (len < min || len > max)
        return false;
    for (const char *p = text; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return false;
    }
    return true;
}

static bool valid_topic(const char *text)
{
    return kafka_name(text, 1, 249) && strcmp(text, ".") != 0 && strcmp(text, "..") != 0;
}

/* Kafka's cleanup.policy values; the extra topic settings may not set it (see set_kafka). */
static bool valid_cleanup_policy(const char *text)
{
    return strcmp(text, "compact") == 0 || strcmp(text, "delete") == 0 ||
           strcmp(text, "compact,delete") == 0 || strcmp(text, "delete,compact") == 0;
}

/* Group ids are free text to Kafka; the same characters as topics keep them printable and
 * usable in "<group_id>.dlq-retry". */
static bool valid_group_id(const char *text)
{
    return kafka_name(text, 1, 200);
}

/* Kafka's rule for group.instance.id (the characters of topic names), shorter so that it fits
 * in a replication origin name with the origin and the group. */
static bool valid_instance_id(const char *text)
{
    return kafka_name(text, 1, 200);
}

static bool valid_metrics_address(const char *text)
{
    return ds_metrics_address_valid(text);
}

static bool valid_message_format(const char *text)
{
    return strcmp(text, "json") == 0 || strcmp(text, "json-with-schema") == 0;
}

static bool valid_snapshot_mode(const char *text)
{
    return strcmp(text, "initial") == 0 || strcmp(text, "never") == 0;
}

/* "off" (0), or "<digits><unit>" with unit s, min, h or d; false when it is neither. */
static bool parse_duration(const char *text, int64_t *ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"s", 1000}, {"min", 60000}, {"h", 3600000}, {"d", 86400000}};
    const char *p = text;
    int64_t n = 0;

    *ms = 0;
    if (strcmp(text, "off") == 0)
        return true;
    while (*p >= '0' && *p <= '9') {
        if (n > INT64_C(1000000000))
            return false; /* beyond 30 years in any unit: a typo */
        n = n * 10 + (*p++ - '0');
    }
    if (p == text || n == 0)
        return false;
    for (size_t i = 0; i < DS_ARRAY_LEN(units); i++) {
        if (strcmp(p, units[i].unit) == 0) {
            *ms = n * units[i].ms;
            return true;
        }
    }
    return false;
}

static bool valid_duration(const char *text)
{
    int64_t ms;

    return parse_duration(text, &ms);
}

static bool valid_on_error(const char *text)
{
    return strcmp(text, "dlq") == 0 || strcmp(text, "stop") == 0;
}

/* pg_replication_origin_create() refuses names longer than 512 bytes. */
static bool valid_origin(const char *text)
{
    size_t len = strlen(text);

    return len >= 1 && len <= 512;
}

/* A target's name is what mapping files write as "connection" and what messages show. */
static bool valid_target_name(const char *text)
{
    return kafka_name(text, 1, 63);
}

static bool valid_log_level(const char *text)
{
    static const char *const levels[] = {"debug", "info", "warning", "error"};

    for (size_t i = 0; i < DS_ARRAY_LEN(levels); i++) {
        if (strcmp(text, levels[i]) == 0)
            return true;
    }
    return false;
}

static bool valid_log_format(const char *text)
{
    return strcmp(text, "text") == 0 || strcmp(text, "json") == 0;
}

bool ds_config_kafka_name_is_secret(const char *name)
{
    return strcasestr(name, "password") || strcasestr(name, "secret") || strcasestr(name, "sasl");
}

/* ---------------------------------------------------------------------------------------------
 * Error messages
 * ------------------------------------------------------------------------------------------- */

/* Everything a load needs to walk the document and to say where a problem is. */
typedef struct loader {
    const char *file;                  /* as given by the caller, for messages */
    const char *text;                  /* the file's bytes */
    size_t len;                        /* their number */
    ds_config_t *config;               /* being filled */
    bool seen[DS_ARRAY_LEN(settings)]; /* settings the file sets */
    ds_json_step_t path[4];            /* JSON path of the value being checked */
    unsigned uses;                     /* DS_CONFIG_FOR_* the caller needs */
    int depth;                         /* steps in path */
    char *errstr;                      /* the caller's */
    size_t errstr_size;                /* its size */
} loader_t;

/* Appends like snprintf, never past size. */
static void append(char *buf, size_t size, size_t *used, const char *fmt, ...) DS_PRINTF(4, 5);

static void append(char *buf, size_t size, size_t *used, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*used >= size)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf + *used, size - *used, fmt, ap);
    va_end(ap);
    if (n > 0)
        *used = (size_t)n >= size - *used ? size : *used + (size_t)n;
}

/*
 * The value at the first depth steps of ld->path (its key with at_key), with the extent of its
 * text, which describe_found() quotes; a value whose text cannot be skipped is not found.
 */
static bool locate(const loader_t *ld, int depth, bool at_key, ds_json_pos_t *pos)
{
    return ds_json_locate(ld->text, ld->len, ld->path, depth, at_key, pos) && pos->end;
}

/* "$.source.tables[2]", "$.kafka[\"bootstrap.servers\"]" */
static void format_path(const ds_json_step_t *path, int depth, char *buf, size_t size)
{
    size_t used = 0;

    buf[0] = '\0';
    append(buf, size, &used, "$");
    for (int i = 0; i < depth; i++) {
        if (!path[i].key) {
            append(buf, size, &used, "[%zu]", path[i].index);
        } else if (ds_json_is_plain_key(path[i].key)) {
            append(buf, size, &used, ".%s", path[i].key);
        } else {
            append(buf, size, &used, "[\"");
            for (const unsigned char *p = (const unsigned char *)path[i].key; *p; p++) {
                if (*p == '"' || *p == '\\')
                    append(buf, size, &used, "\\%c", *p);
                else if (*p < 0x20)
                    append(buf, size, &used, "\\u%04x", *p);
                else
                    append(buf, size, &used, "%c", *p);
            }
            append(buf, size, &used, "\"]");
        }
    }
}

/* Longest stretch of a value's text quoted in a message. */
#define MAX_SHOWN 60

/*
 * What was found at the current path, as written in the file: 5000, "fast", [] — or "an
 * object", "an array" for non-empty containers, "<hidden>" for secrets.
 */
static void describe_found(const loader_t *ld, const json_t *value, bool secret, char *buf,
                           size_t size)
{
    ds_json_pos_t pos;
    size_t used = 0, len;

    buf[0] = '\0';
    if (secret) {
        append(buf, size, &used, "<hidden>");
        return;
    }
    if (json_is_object(value) && json_object_size(value) > 0) {
        append(buf, size, &used, "an object");
        return;
    }
    if (json_is_array(value) && json_array_size(value) > 0) {
        append(buf, size, &used, "an array");
        return;
    }
    if (!locate(ld, ld->depth, false, &pos)) {
        append(buf, size, &used, "%s", json_is_string(value) ? "a string" : "another value");
        return;
    }
    len = (size_t)(pos.end - pos.start);
    if (len <= MAX_SHOWN) {
        append(buf, size, &used, "%.*s", (int)len, pos.start);
        return;
    }
    /* Cut at a character boundary, never inside a UTF-8 sequence. */
    len = MAX_SHOWN;
    while (len > 0 && ((unsigned char)pos.start[len] & 0xC0) == 0x80)
        len--;
    append(buf, size, &used, "%.*s...", (int)len, pos.start);
}

/*
 * Reports "FILE:LINE:COL: JPATH: message". The position is that of the value at the first
 * locate_depth steps of ld->path (of its key with at_key); the path shown is all of ld->path.
 */
static bool report(loader_t *ld, int locate_depth, bool at_key, const char *fmt, ...)
    DS_PRINTF(4, 5);

static bool report(loader_t *ld, int locate_depth, bool at_key, const char *fmt, ...)
{
    char jpath[512], message[1024];
    ds_json_pos_t pos;
    va_list ap;

    format_path(ld->path, ld->depth, jpath, sizeof(jpath));
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    if (locate(ld, locate_depth, at_key, &pos))
        return ds_fail(ld->errstr, ld->errstr_size, "%s:%d:%d: %s: %s", ld->file, pos.line,
                       pos.column, jpath, message);
    return ds_fail(ld->errstr, ld->errstr_size, "%s: %s: %s", ld->file, jpath, message);
}

/* "expected <what>, got <what the file says>" about the value at the current path. */
static bool report_expected(loader_t *ld, const json_t *value, bool secret, const char *what)
{
    char found[MAX_SHOWN + 16];

    describe_found(ld, value, secret, found, sizeof(found));
    return report(ld, ld->depth, false, "expected %s, got %s", what, found);
}

static bool out_of_memory(loader_t *ld)
{
    return ds_fail(ld->errstr, ld->errstr_size, "%s: out of memory", ld->file);
}

static const char *leaf_name(const char *path)
{
    const char *dot = strrchr(path, '.');

    return dot ? dot + 1 : path;
}

/* Copies candidate[0..n) into best when it is closer to name than *best_distance. */
static void consider(const char *name, const char *candidate, size_t n, char *best,
                     size_t best_size, size_t *best_distance)
{
    char text[128];
    size_t d;

    if (n >= sizeof(text) || *best_distance == 0)
        return;
    memcpy(text, candidate, n);
    text[n] = '\0';
    d = ds_edit_distance(name, text, *best_distance - 1);
    if (d < *best_distance) {
        snprintf(best, best_size, "%s", text);
        *best_distance = d;
    }
}

/*
 * The known name closest to name (dotted, as "capture.status_intervl_ms") within two edits,
 * into best; false when none is that close.
 */
static bool closest_setting(const char *name, char *best, size_t best_size)
{
    size_t best_distance = 3;

    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *path = settings[i].path;
        const char *dot = strchr(path, '.');

        consider(name, path, strlen(path), best, best_size, &best_distance);
        if (dot) /* a misspelled section: "sorce" -> "source" */
            consider(name, path, (size_t)(dot - path), best, best_size, &best_distance);
    }
    if (best_distance <= 2)
        return true;
    /* A setting put in the wrong object: "status_interval_ms" at the top level. */
    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *path = settings[i].path;
        size_t d = ds_edit_distance(leaf_name(name), leaf_name(path), best_distance - 1);

        if (d < best_distance) {
            snprintf(best, best_size, "%s", path);
            best_distance = d;
        }
    }
    return best_distance <= 2;
}

static bool report_unknown(loader_t *ld, const char *section, const char *key)
{
    char name[256], suggestion[128];

    snprintf(name, sizeof(name), "%s%s%s", section ? section : "", section ? "." : "", key);
    if (!closest_setting(name, suggestion, sizeof(suggestion)))
        return report(ld, ld->depth, true, "unknown setting");
    if (strcmp(suggestion, name) == 0) {
        /* "capture.status_interval_ms" written as one key at the top level. */
        const char *dot = strchr(suggestion, '.');
        return report(ld, ld->depth, true,
                      "unknown setting, did you mean \"%s\" inside the \"%.*s\" object?", dot + 1,
                      (int)(dot - suggestion), suggestion);
    }
    return report(ld, ld->depth, true, "unknown setting, did you mean \"%s\"?", suggestion);
}

/* ---------------------------------------------------------------------------------------------
 * Storing values
 * ------------------------------------------------------------------------------------------- */

static void free_list(char **list, int n)
{
    if (!list)
        return;
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

/* Frees what setting s holds in config and leaves the field empty. */
static void free_setting(ds_config_t *config, const setting_t *s)
{
    switch (s->type) {
    case SETTING_STRING:
        free(*FIELD(config, s->offset, char *));
        *FIELD(config, s->offset, char *) = NULL;
        break;
    case SETTING_STRING_LIST:
        free_list(*FIELD(config, s->offset, char **), *FIELD(config, s->count_offset, int));
        *FIELD(config, s->offset, char **) = NULL;
        *FIELD(config, s->count_offset, int) = 0;
        break;
    case SETTING_KAFKA:
    case SETTING_PROPERTIES:
    case SETTING_TARGETS:
        free_list(*FIELD(config, s->offset, char **), *FIELD(config, s->count_offset, int));
        free_list(*FIELD(config, s->values_offset, char **), *FIELD(config, s->count_offset, int));
        *FIELD(config, s->offset, char **) = NULL;
        *FIELD(config, s->values_offset, char **) = NULL;
        *FIELD(config, s->count_offset, int) = 0;
        break;
    case SETTING_BOOL:
    case SETTING_INT:
    case SETTING_INT64:
        break;
    }
}

/* Copies a NULL-terminated list of n strings; NULL when memory runs out. */
static char **copy_list(const char *const *list, size_t n)
{
    char **copy = calloc(n + 1, sizeof(char *));

    if (!copy)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (!(copy[i] = strdup(list[i]))) {
            free_list(copy, (int)i);
            return NULL;
        }
    }
    return copy;
}

/* The one place defaults are set: every optional setting, from the table. */
static bool apply_defaults(ds_config_t *config)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *s = &settings[i];

        switch (s->type) {
        case SETTING_STRING:
            if (s->default_string &&
                !(*FIELD(config, s->offset, char *) = strdup(s->default_string)))
                return false;
            break;
        case SETTING_BOOL:
            *FIELD(config, s->offset, bool) = s->default_number != 0;
            break;
        case SETTING_INT:
            *FIELD(config, s->offset, int) = (int)s->default_number;
            break;
        case SETTING_INT64:
            *FIELD(config, s->offset, int64_t) = s->default_number;
            break;
        case SETTING_STRING_LIST:
            if (s->default_list) {
                size_t n = 0;
                while (s->default_list[n])
                    n++;
                if (!(*FIELD(config, s->offset, char **) = copy_list(s->default_list, n)))
                    return false;
                *FIELD(config, s->count_offset, int) = (int)n;
            }
            break;
        case SETTING_KAFKA:
        case SETTING_PROPERTIES:
        case SETTING_TARGETS:
            break;
        }
    }
    return true;
}

static void push_key(loader_t *ld, const char *key)
{
    ld->path[ld->depth].key = key;
    ld->path[ld->depth].index = 0;
    ld->depth++;
}

static void push_index(loader_t *ld, size_t index)
{
    ld->path[ld->depth].key = NULL;
    ld->path[ld->depth].index = index;
    ld->depth++;
}

static bool set_string(loader_t *ld, const setting_t *s, const json_t *value)
{
    char *copy;

    if (!json_is_string(value) || (s->valid && !s->valid(json_string_value(value))))
        return report_expected(ld, value, s->secret, s->expected ? s->expected : "a string");
    if (!(copy = strdup(json_string_value(value))))
        return out_of_memory(ld);
    free_setting(ld->config, s);
    *FIELD(ld->config, s->offset, char *) = copy;
    return true;
}

static bool set_number(loader_t *ld, const setting_t *s, const json_t *value)
{
    json_int_t n;
    char what[96];

    snprintf(what, sizeof(what), "an integer between %" PRId64 " and %" PRId64, s->min, s->max);
    if (!json_is_integer(value))
        return report_expected(ld, value, s->secret, what);
    n = json_integer_value(value);
    if (n < s->min || n > s->max)
        return report_expected(ld, value, s->secret, what);
    if (s->type == SETTING_INT)
        *FIELD(ld->config, s->offset, int) = (int)n;
    else
        *FIELD(ld->config, s->offset, int64_t) = (int64_t)n;
    return true;
}

/*
 * path as seen from the directory of the config file: a relative path in the file means
 * "next to this file", wherever the command runs from. NULL when memory runs out.
 */
static char *resolve_path(const char *file, const char *path)
{
    const char *slash = strrchr(file, '/');
    char *joined;

    if (path[0] == '/' || !slash)
        return strdup(path);
    if (asprintf(&joined, "%.*s/%s", (int)(slash - file), file, path) < 0)
        return NULL;
    return joined;
}

static bool set_list(loader_t *ld, const setting_t *s, const json_t *array)
{
    size_t n, i;
    char **list;
    bool ok = true;

    if (!json_is_array(array) || json_array_size(array) < (size_t)s->min)
        return report_expected(ld, array, s->secret, s->list_expected);
    n = json_array_size(array);
    if (n > INT32_MAX)
        return report_expected(ld, array, s->secret, s->list_expected);
    if (!(list = calloc(n + 1, sizeof(char *))))
        return out_of_memory(ld);
    for (i = 0; ok && i < n; i++) {
        const json_t *item = json_array_get(array, i);
        const char *text = json_string_value(item);

        push_index(ld, i);
        if (!text || (s->valid && !s->valid(text))) {
            ok = report_expected(ld, item, s->secret, s->expected);
        } else {
            for (size_t k = 0; ok && s->same && k < i; k++) {
                if (s->same(list[k], text)) {
                    char found[MAX_SHOWN + 16], first[256];

                    describe_found(ld, item, s->secret, found, sizeof(found));
                    ld->path[ld->depth - 1].index = k;
                    format_path(ld->path, ld->depth, first, sizeof(first));
                    ld->path[ld->depth - 1].index = i;
                    ok = report(ld, ld->depth, false, "duplicate entry %s, already listed at %s",
                                found, first);
                }
            }
            if (ok &&
                !(list[i] = s->relative_to_file ? resolve_path(ld->file, text) : strdup(text)))
                ok = out_of_memory(ld);
        }
        ld->depth--;
    }
    if (!ok) {
        free_list(list, (int)n); /* entries not reached are still NULL */
        return false;
    }
    free_setting(ld->config, s);
    *FIELD(ld->config, s->offset, char **) = list;
    *FIELD(ld->config, s->count_offset, int) = (int)n;
    return true;
}

/* A librdkafka property's value as librdkafka wants it: text. NULL when it has no text form. */
static char *kafka_value_text(const json_t *value)
{
    char number[32];

    if (json_is_string(value))
        return strdup(json_string_value(value));
    if (json_is_boolean(value))
        return strdup(json_is_true(value) ? "true" : "false");
    if (json_is_integer(value)) {
        snprintf(number, sizeof(number), "%" JSON_INTEGER_FORMAT, json_integer_value(value));
        return strdup(number);
    }
    return NULL;
}

/*
 * The "kafka" object (librdkafka properties, bootstrap.servers required) or, for
 * SETTING_PROPERTIES, "topics.config" (topic settings, where cleanup.policy has its own key)
 * or "debezium" (Debezium's settings, each checked by s->check_property).
 */
static bool set_kafka(loader_t *ld, const setting_t *s, const json_t *object)
{
    bool kafka = s->type == SETTING_KAFKA;
    bool topic_settings = !kafka && !s->check_property;
    const char *what = kafka             ? "librdkafka property"
                       : topic_settings ? "Kafka topic setting"
                                        : "Debezium setting";
    const char *refusal = NULL;
    size_t n, i = 0;
    char **names, **values;
    const char *name;
    json_t *value;
    bool ok = true, has_bootstrap = false;

    if (!json_is_object(object))
        return report_expected(ld, object, false,
                               kafka            ? "an object of librdkafka properties"
                               : topic_settings ? "an object of Kafka topic settings "
                                                  "(\"name\": \"value\")"
                                                : "an object of Debezium settings "
                                                  "(\"time.precision.mode\": \"adaptive\")");
    n = json_object_size(object);
    names = calloc(n + 1, sizeof(char *));
    values = calloc(n + 1, sizeof(char *));
    if (!names || !values) {
        free(names);
        free(values);
        return out_of_memory(ld);
    }
    /* jansson iterates keys in insertion order, which is file order. */
    json_object_foreach((json_t *)object, name, value)
    {
        bool secret = kafka && ds_config_kafka_name_is_secret(name);

        push_key(ld, name);
        if (name[0] == '\0') {
            ok = report(ld, ld->depth, true, "expected a %s name, got \"\"", what);
        } else if (!json_is_string(value) && !json_is_integer(value) && !json_is_boolean(value)) {
            ok = report_expected(ld, value, secret, "a string, integer or boolean");
        } else if (kafka && strcmp(name, KAFKA_BOOTSTRAP) == 0 &&
                   !(json_is_string(value) && json_string_length(value) > 0)) {
            ok = report_expected(ld, value, secret, "a non-empty string (\"host:port,...\")");
        } else if (s->check_property && json_is_string(value) &&
                   (refusal = s->check_property(name, json_string_value(value)))) {
            if (strncmp(refusal, "expected", 8) == 0)
                ok = report(ld, ld->depth, false, "%s, got \"%s\"", refusal,
                            json_string_value(value));
            else
                ok = report(ld, ld->depth, true, "%s", refusal);
        } else if (s->check_property && !json_is_string(value)) {
            ok = report_expected(ld, value, false, "a string, as in a Debezium connector config");
        } else if (topic_settings && strcmp(name, "cleanup.policy") == 0) {
            /* One place decides it, so the history check and the docs can rely on it. */
            ok = report(ld, ld->depth, true,
                        "cleanup.policy is set by topics.cleanup_policy, not in topics.config: "
                        "move it there");
        } else if (!(names[i] = strdup(name)) || !(values[i] = kafka_value_text(value))) {
            i++; /* free what was copied */
            ok = out_of_memory(ld);
        } else {
            has_bootstrap = has_bootstrap || strcmp(name, KAFKA_BOOTSTRAP) == 0;
            i++;
        }
        ld->depth--;
        if (!ok)
            break;
    }
    if (ok && kafka && !has_bootstrap) {
        push_key(ld, KAFKA_BOOTSTRAP);
        ok = report(ld, ld->depth - 1, false, "required setting is missing");
        ld->depth--;
    }
    if (!ok) {
        free_list(names, (int)i);
        free_list(values, (int)i);
        return false;
    }
    free_setting(ld->config, s);
    *FIELD(ld->config, s->offset, char **) = names;
    *FIELD(ld->config, s->values_offset, char **) = values;
    *FIELD(ld->config, s->count_offset, int) = (int)n;
    return true;
}

/* One entry of "targets": {"conninfo": "..."} and nothing else. */
static bool set_target(loader_t *ld, const json_t *entry, char **conninfo)
{
    const char *key;
    json_t *value;

    if (!json_is_object(entry))
        return report_expected(ld, entry, false, "an object {\"conninfo\": \"...\"}");
    json_object_foreach((json_t *)entry, key, value)
    {
        bool ok;

        push_key(ld, key);
        if (strcmp(key, "conninfo") != 0)
            ok = report(ld, ld->depth, true, "unknown setting (a target has only \"conninfo\")");
        else if (!json_is_string(value))
            ok = report_expected(ld, value, true, "a string (a libpq connection string)");
        else if (!(*conninfo = strdup(json_string_value(value))))
            ok = out_of_memory(ld);
        else
            ok = true;
        ld->depth--;
        if (!ok)
            return false;
    }
    if (!*conninfo) {
        push_key(ld, "conninfo");
        report(ld, ld->depth - 1, false, "required setting is missing");
        ld->depth--;
        return false;
    }
    return true;
}

static bool set_targets(loader_t *ld, const setting_t *s, const json_t *object)
{
    size_t n, i = 0;
    char **names, **conninfos;
    const char *name;
    json_t *value;
    bool ok = true;

    if (!json_is_object(object) || json_object_size(object) == 0)
        return report_expected(ld, object, false,
                               "an object naming at least one target database "
                               "({\"NAME\": {\"conninfo\": \"...\"}})");
    n = json_object_size(object);
    names = calloc(n + 1, sizeof(char *));
    conninfos = calloc(n + 1, sizeof(char *));
    if (!names || !conninfos) {
        free(names);
        free(conninfos);
        return out_of_memory(ld);
    }
    json_object_foreach((json_t *)object, name, value)
    {
        push_key(ld, name);
        if (!valid_target_name(name)) {
            ok = report(ld, ld->depth, true,
                        "expected a target name (1 to 63 characters from a-z A-Z 0-9 . _ -)");
        } else if (!set_target(ld, value, &conninfos[i])) {
            ok = false;
        } else if (!(names[i] = strdup(name))) {
            ok = out_of_memory(ld);
        }
        i++; /* whatever was copied is freed below */
        ld->depth--;
        if (!ok)
            break;
    }
    if (!ok) {
        free_list(names, (int)i);
        free_list(conninfos, (int)i);
        return false;
    }
    free_setting(ld->config, s);
    *FIELD(ld->config, s->offset, char **) = names;
    *FIELD(ld->config, s->values_offset, char **) = conninfos;
    *FIELD(ld->config, s->count_offset, int) = (int)n;
    return true;
}

static bool set_value(loader_t *ld, const setting_t *s, const json_t *value)
{
    ld->seen[s - settings] = true;
    switch (s->type) {
    case SETTING_STRING:
        return set_string(ld, s, value);
    case SETTING_BOOL:
        if (!json_is_boolean(value))
            return report_expected(ld, value, s->secret, "true or false");
        *FIELD(ld->config, s->offset, bool) = json_is_true(value);
        return true;
    case SETTING_INT:
    case SETTING_INT64:
        return set_number(ld, s, value);
    case SETTING_STRING_LIST:
        return set_list(ld, s, value);
    case SETTING_KAFKA:
    case SETTING_PROPERTIES:
        return set_kafka(ld, s, value);
    case SETTING_TARGETS:
        return set_targets(ld, s, value);
    }
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * Walking the document
 * ------------------------------------------------------------------------------------------- */

/* The setting named key inside section (NULL: the top level), or NULL. */
static const setting_t *find_setting(const char *section, const char *key)
{
    size_t section_len = section ? strlen(section) : 0;

    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *path = settings[i].path;

        if (section) {
            if (strncmp(path, section, section_len) == 0 && path[section_len] == '.' &&
                strcmp(path + section_len + 1, key) == 0)
                return &settings[i];
        } else if (!strchr(path, '.') && strcmp(path, key) == 0) {
            return &settings[i];
        }
    }
    return NULL;
}

static bool is_section(const char *key)
{
    size_t len = strlen(key);

    for (size_t i = 0; i < NSETTINGS; i++) {
        if (strncmp(settings[i].path, key, len) == 0 && settings[i].path[len] == '.')
            return true;
    }
    return false;
}

static bool in_section(const setting_t *s, const char *section)
{
    size_t len = strlen(section);

    return strncmp(s->path, section, len) == 0 && s->path[len] == '.';
}

/*
 * The uses whose sections must be complete: those the caller asked for, and any side the file
 * has begun (a "source" without its tables is a mistake even for apply). A file with neither
 * side, when the caller takes either, is reported as lacking the capture side, as before apply
 * existed.
 */
static unsigned uses_required(const loader_t *ld)
{
    unsigned uses = ld->uses;

    for (size_t i = 0; i < NSETTINGS; i++) {
        if (ld->seen[i] && settings[i].needed_by)
            uses |= settings[i].needed_by;
    }
    return uses ? uses : DS_CONFIG_FOR_CAPTURE;
}

/*
 * Reports the first required setting of section (NULL: of any section) that the file does not
 * set, at the position of the object at the current path, which should have held it.
 */
static bool check_required(loader_t *ld, const char *section)
{
    unsigned uses = section ? 0 : uses_required(ld);

    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *s = &settings[i];
        char jpath[256];
        ds_json_pos_t pos;

        if (!s->required || ld->seen[i] || (section && !in_section(s, section)))
            continue;
        /* Inside a present section everything required is; at the top level, only what the
         * uses need (an absent "source" is fine for apply). */
        if (!section && s->needed_by && !(s->needed_by & uses))
            continue;
        /* Setting paths are plain keys, so they extend the JSON path as written. */
        format_path(ld->path, ld->depth, jpath, sizeof(jpath));
        if (!locate(ld, ld->depth, false, &pos))
            return ds_fail(ld->errstr, ld->errstr_size, "%s: %s.%s: required setting is missing",
                           ld->file, jpath, section ? leaf_name(s->path) : s->path);
        return ds_fail(ld->errstr, ld->errstr_size, "%s:%d:%d: %s.%s: required setting is missing",
                       ld->file, pos.line, pos.column, jpath,
                       section ? leaf_name(s->path) : s->path);
    }
    return true;
}

/* Walks one object: the top level (section NULL) or a section such as "capture". */
static bool walk_object(loader_t *ld, const char *section, json_t *object)
{
    const char *key;
    json_t *value;

    if (!json_is_object(object))
        return report_expected(ld, object, false, "an object");
    json_object_foreach(object, key, value)
    {
        const setting_t *s = find_setting(section, key);
        bool ok;

        push_key(ld, key);
        if (s)
            ok = set_value(ld, s, value);
        else if (!section && is_section(key))
            ok = walk_object(ld, key, value);
        else
            ok = report_unknown(ld, section, key);
        ld->depth--;
        if (!ok)
            return false;
    }
    return check_required(ld, section);
}

/* ---------------------------------------------------------------------------------------------
 * Reading the file
 * ------------------------------------------------------------------------------------------- */

/* A configuration file is a few kilobytes; this only stops reading /dev/zero forever. */
#define MAX_FILE_SIZE (16 * 1024 * 1024)

static bool read_file(const char *path, char **text, size_t *len, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t used = 0, size = 0;

    if (!f)
        return ds_fail(errstr, errstr_size, "%s: cannot read: %s", path, strerror(errno));
    for (;;) {
        size_t n;

        if (size - used < 4096) {
            char *bigger;

            if (size >= MAX_FILE_SIZE) {
                free(buf);
                fclose(f);
                return ds_fail(errstr, errstr_size, "%s: cannot read: larger than %d bytes", path,
                               MAX_FILE_SIZE);
            }
            size = size ? size * 2 : 8192;
            if (!(bigger = realloc(buf, size))) {
                free(buf);
                fclose(f);
                return ds_fail(errstr, errstr_size, "%s: out of memory", path);
            }
            buf = bigger;
        }
        n = fread(buf + used, 1, size - used - 1, f);
        used += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        int saved = errno;

        free(buf);
        fclose(f);
        return ds_fail(errstr, errstr_size, "%s: cannot read: %s", path, strerror(saved));
    }
    fclose(f);
    buf[used] = '\0';
    *text = buf;
    *len = used;
    return true;
}

/* Whether a key (possibly mistyped) names a value that must not be shown. */
static bool key_is_secret(const char *raw, size_t raw_len)
{
    char small[256], *key = small;
    bool secret;

    if (raw_len >= sizeof(small) && !(key = malloc(raw_len + 1)))
        return true;
    ds_json_unescape(raw, raw_len, key);
    secret = ds_edit_distance(key, "conninfo", 2) <= 2 || ds_config_kafka_name_is_secret(key);
    if (key != small)
        free(key);
    return secret;
}

/*
 * Whether the syntax error at byte offset error_at may sit inside a secret value. The text is
 * not valid JSON (a colon or a quote may be what is missing), so this reads it leniently and
 * errs towards hiding: any string naming a secret (or a near miss of "conninfo") makes the rest
 * of its object member secret, up to the next comma or closing bracket at its own depth.
 */
static bool error_in_secret(const char *text, size_t len, size_t error_at)
{
    const char *p = text, *end = text + (error_at < len ? error_at : len);
    long depth = 0, secret_depth = -1;

    while (p < end) {
        const char *raw;

        switch (*p) {
        case '{':
        case '[':
            depth++;
            break;
        case '}':
        case ']':
            depth--;
            if (depth < secret_depth)
                secret_depth = -1;
            break;
        case ',':
            if (depth == secret_depth)
                secret_depth = -1;
            break;
        case '"':
            /* A string ends at its quote; one jansson stopped in ends at the line or the error. */
            raw = ++p;
            while (p < end && *p != '"' && *p != '\n') {
                if (*p == '\\' && p + 1 < end)
                    p++;
                p++;
            }
            if (secret_depth < 0 && key_is_secret(raw, (size_t)(p - raw)))
                secret_depth = depth;
            if (p >= end)
                return secret_depth >= 0;
            break;
        default:
            break;
        }
        p++;
    }
    return secret_depth >= 0;
}

static bool report_syntax(const char *file, const char *text, size_t len, const json_error_t *error,
                          char *errstr, size_t errstr_size)
{
    int line = error->line > 0 ? error->line : 1;
    int col = error->column > 0 ? error->column : 1;
    size_t keep = strlen(error->text);

    /*
     * jansson quotes the token it stopped at ("invalid escape near '\"host=db password=x\\q'"),
     * or the escape it could not decode ("invalid Unicode '\\uDC00'"), which may be part of a
     * password. Keep its words, drop the quoted text. A duplicate key is a key, never a secret.
     */
    if (json_error_code(error) != json_error_duplicate_key &&
        error_in_secret(text, len, (size_t)(error->position > 0 ? error->position : 0))) {
        const char *near = strstr(error->text, " near ");
        const char *unicode = strstr(error->text, "invalid Unicode '");

        if (near)
            keep = (size_t)(near - error->text);
        if (unicode && (size_t)(unicode - error->text) + 15 < keep)
            keep = (size_t)(unicode - error->text) + 15; /* "invalid Unicode" */
        return ds_fail(errstr, errstr_size, "%s:%d:%d: invalid JSON: %.*s near <hidden>", file,
                       line, col, (int)keep, error->text);
    }
    return ds_fail(errstr, errstr_size, "%s:%d:%d: invalid JSON: %s", file, line, col, error->text);
}

/* ---------------------------------------------------------------------------------------------
 * Public functions
 * ------------------------------------------------------------------------------------------- */

/*
 * config->value_format from capture.message_format and the "debezium" object, whose names and
 * values walk_object() checked. Debezium's tombstones.on.delete, when given, sets
 * capture.tombstones_on_delete: one setting under two names.
 */
static bool read_value_format(const loader_t *ld)
{
    ds_config_t *config = ld->config;
    bool debezium_given = false;

    for (size_t i = 0; i < NSETTINGS; i++)
        if (strcmp(settings[i].path, "debezium") == 0)
            debezium_given = ld->seen[i];
    ds_value_format_init(&config->value_format);
    config->value_format.message_format = strcmp(config->message_format, "json-with-schema") == 0
                                              ? DS_MESSAGE_JSON_WITH_SCHEMA
                                              : DS_MESSAGE_JSON;
    /* A Connect sink reads the schema's logical types: the values must be Debezium's. */
    config->value_format.debezium =
        debezium_given || config->value_format.message_format == DS_MESSAGE_JSON_WITH_SCHEMA;
    for (int i = 0; i < config->ndebezium; i++) {
        if (!ds_value_format_set(&config->value_format, &config->tombstones_on_delete,
                                 config->debezium_names[i], config->debezium_values[i]))
            return false;
    }
    if (!config->value_format.transaction_topic)
        config->value_format.transaction_topic = strdup(DS_DEFAULT_TRANSACTION_TOPIC);
    return config->value_format.transaction_topic != NULL;
}

bool ds_config_load(const char *path, ds_config_t **config, char *errstr, size_t errstr_size)
{
    return ds_config_load_for(path, DS_CONFIG_FOR_CAPTURE, config, errstr, errstr_size);
}

bool ds_config_load_for(const char *path, unsigned uses, ds_config_t **config, char *errstr,
                        size_t errstr_size)
{
    loader_t ld = {.file = path, .uses = uses, .errstr = errstr, .errstr_size = errstr_size};
    char *text = NULL;
    size_t len = 0;
    json_t *root = NULL;
    json_error_t error;
    bool ok = false;

    *config = NULL;
    if (!read_file(path, &text, &len, errstr, errstr_size))
        return false;
    /* jansson takes one top-level value and refuses duplicate keys, so a repeated setting
     * cannot silently win over the first. */
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &error);
    if (!root) {
        ok = report_syntax(path, text, len, &error, errstr, errstr_size);
        goto done;
    }
    ld.text = text;
    ld.len = len;
    if (!(ld.config = calloc(1, sizeof(*ld.config))) || !(ld.config->path = strdup(path)) ||
        !apply_defaults(ld.config)) {
        ok = out_of_memory(&ld);
        goto done;
    }
    if (!walk_object(&ld, NULL, root))
        goto done;
    /* Checked by valid_duration already. */
    if (!parse_duration(ld.config->apply_pending_timeout, &ld.config->apply_pending_timeout_ms)) {
        ok = out_of_memory(&ld);
        goto done;
    }
    if (!read_value_format(&ld)) {
        ok = out_of_memory(&ld);
        goto done;
    }
    /* The one default computed from another setting. */
    if (!ld.config->apply_dlq_topic &&
        asprintf(&ld.config->apply_dlq_topic, "%s.dlq", ld.config->topic_prefix) < 0) {
        ld.config->apply_dlq_topic = NULL;
        ok = out_of_memory(&ld);
        goto done;
    }
    *config = ld.config;
    ld.config = NULL;
    ok = true;

done:
    ds_config_free(ld.config);
    json_decref(root);
    free(text);
    return ok;
}

void ds_config_free(ds_config_t *config)
{
    if (!config)
        return;
    for (size_t i = 0; i < NSETTINGS; i++)
        free_setting(config, &settings[i]);
    free(config->value_format.transaction_topic);
    free(config->path);
    free(config);
}

const char *ds_config_target_conninfo(const ds_config_t *config, const char *name)
{
    if (!config || !name)
        return NULL;
    for (int i = 0; i < config->ntargets; i++) {
        if (strcmp(config->target_names[i], name) == 0)
            return config->target_conninfos[i];
    }
    return NULL;
}

const char *ds_config_kafka_get(const ds_config_t *config, const char *name)
{
    if (!config || !name)
        return NULL;
    for (int i = 0; i < config->nkafka; i++) {
        if (strcmp(config->kafka_names[i], name) == 0)
            return config->kafka_values[i];
    }
    return NULL;
}
