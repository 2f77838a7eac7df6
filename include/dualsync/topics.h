/*
 * topics.h: creates the topics dualsync writes, and tells whether a topic keeps its history.
 *
 * Capture creates the change topics of its tables and the dead-letter topic, apply its
 * dead-letter topic, with Kafka's admin API before anything is produced to them, so no topic
 * is left to the broker's auto-creation and its time-based retention (7 days by default),
 * which would delete the history a replay needs. A topic that exists is never changed.
 *
 * What a created topic gets (config "topics" section, docs/configuration.md):
 *   - change topics: topics.partitions, topics.replication_factor,
 *     cleanup.policy = topics.cleanup_policy ("compact" by default: the latest change per key
 *     is kept for ever, a delete's tombstone removes the key);
 *   - the dead-letter topic: cleanup.policy=delete with retention.ms=-1 and
 *     retention.bytes=-1 (dead letters are distinct failures, not a state per key:
 *     compaction would drop an earlier dead letter of the same key and refuse keyless ones);
 *   - the transaction topic (debezium.provide.transaction.metadata): one partition (a
 *     transaction's BEGIN and END have different keys, and must stay in order with the other
 *     transactions'), cleanup.policy=delete with the broker's default retention, as the
 *     topic Debezium's Kafka Connect would create: every key is new, so compaction would keep
 *     all of it for ever; it is not part of a replay, so its time-based retention is not
 *     warned about;
 *   - all: max.message.bytes as large as the producer's message.max.bytes (at least Kafka's
 *     default, 1048588), then every entry of topics.config as it is.
 */
#ifndef DUALSYNC_TOPICS_H
#define DUALSYNC_TOPICS_H

#include "dualsync/common.h"
#include "dualsync/config.h"

typedef struct ds_topics ds_topics_t;

/* What a topic holds, which decides how it is created and which retention keeps it whole. */
typedef enum ds_topic_kind {
    DS_TOPIC_CHANGES,      /* row changes of one table */
    DS_TOPIC_DEAD_LETTERS, /* apply's dead letters */
    DS_TOPIC_TRANSACTIONS, /* BEGIN/END records (provide.transaction.metadata) */
} ds_topic_kind_t;

/* Whether a topic keeps its history, from its settings as the broker reports them. */
typedef struct ds_topic_history {
    char topic[256];              /* the topic's name */
    bool exists;                  /* false: the broker does not know it (nothing below is set) */
    bool unreadable;              /* the broker refused to describe it (problem says why): it
                                   * may exist, and whether it keeps its history is unknown */
    bool keeps_history;           /* nothing is deleted by time or by size: cleanup.policy is
                                   * "compact" alone, or retention.ms and retention.bytes are
                                   * both -1 */
    char cleanup_policy[32];      /* "compact", "delete" or "compact,delete" */
    int64_t retention_ms;         /* -1: unlimited */
    int64_t retention_bytes;      /* -1: unlimited */
    int64_t delete_retention_ms;  /* how long a tombstone outlives compaction (a reader from
                                   * offset 0 must get past it within this time) */
    int64_t min_compaction_lag_ms; /* a record stays uncompacted at least this long */
    char problem[256];            /* when !keeps_history: the setting that deletes and its
                                   * value, "cleanup.policy=delete, retention.ms=604800000
                                   * (7 days)", or why it could not be read; else "" */
} ds_topic_history_t;

/**
 * @brief An admin client for @p config's "kafka" properties (those of a producer) and its
 *        "topics" section; @p config is borrowed and must outlive it. NULL with errstr set
 *        when librdkafka refuses the properties.
 */
ds_topics_t *ds_topics_new(const ds_config_t *config, char *errstr, size_t errstr_size);

/** @brief Accepts NULL. */
void ds_topics_free(ds_topics_t *topics);

/**
 * @brief Creates those of the @p n topics @p names (each of kind @p kinds[i]) the broker does
 *        not have, then checks them all and logs a WARNING for each that deletes by time or
 *        size (ds_topics_check_history()), naming the topic, the setting and the command that
 *        fixes it. A topic that exists is not changed.
 *
 * @param max_message_bytes  the producer's message.max.bytes (0: unknown, Kafka's default).
 * @param timeout_ms         for each admin request.
 * @param config_error       on failure, whether the broker refused the settings of the
 *                           "topics" section (a replication factor above the number of
 *                           brokers, a topic setting it does not know): exit 2 rather than 1.
 *                           May be NULL.
 * @return false with errstr naming the topic, the broker's error and what to do when a topic
 *         cannot be created, or naming the brokers when Kafka did not answer in time.
 */
bool ds_topics_ensure(ds_topics_t *topics, const char *const *names, const ds_topic_kind_t *kinds,
                      int n, size_t max_message_bytes, int timeout_ms, bool *config_error,
                      char *errstr, size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief Describes the @p n topics @p names and fills @p out[i] for each (caller-owned, n
 *        entries): whether it exists and whether it keeps its history. A replay calls this to
 *        refuse a topic that cannot rebuild the current state (!keeps_history: see problem).
 *        A topic the broker refuses to describe (no DescribeConfigs permission) is
 *        unreadable, not an error: exists and !keeps_history, problem naming the error.
 * @return false with errstr set when Kafka did not answer within @p timeout_ms.
 */
bool ds_topics_check_history(ds_topics_t *topics, const char *const *names, int n,
                             int timeout_ms, ds_topic_history_t *out, char *errstr,
                             size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief The command that makes @p h's topic keep its history, into @p buf:
 *        "kafka-configs.sh --bootstrap-server B --alter --entity-type topics --entity-name T
 *        --add-config cleanup.policy=compact" (for a dead-letter topic:
 *        "retention.ms=-1,retention.bytes=-1").
 */
void ds_topics_fix_command(const ds_topics_t *topics, const ds_topic_history_t *h,
                           ds_topic_kind_t kind, char *buf, size_t size);

/**
 * @brief Deletes those of the @p n topics @p names that exist; one that does not is not an
 *        error (teardown reruns after a crash). @p deleted (may be NULL) counts the topics
 *        deleted by this call.
 * @return false with errstr naming the topic and the broker's answer (a missing DELETE
 *         permission, delete.topic.enable=false), or the brokers when they did not answer.
 */
bool ds_topics_delete(ds_topics_t *topics, const char *const *names, int n, int timeout_ms,
                      int *deleted, char *errstr, size_t errstr_size) DS_MUST_CHECK;

#endif
