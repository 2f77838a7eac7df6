/*
 * consumer.h: the Kafka consumer apply reads change topics with.
 *
 * Two ways to read:
 *   - a consumer group (ds_consumer_new with a group id, then ds_consumer_subscribe): Kafka
 *     balances partitions over the members; on every assignment the caller's assign hook says
 *     where each partition starts (apply reads that from its target databases, not from
 *     Kafka's committed offsets); offsets are committed to Kafka only so that lag tools see
 *     the group;
 *   - a plain reader (group id NULL, then ds_consumer_assign_all): every partition of one
 *     topic from the beginning, no group, nothing committed, and an end-of-partition event
 *     when it catches up (`dualsync dlq list`).
 *
 * The consumer is created with enable.auto.commit=false, enable.auto.offset.store=false,
 * isolation.level=read_committed and auto.offset.reset=earliest, which the config may not
 * change, nor group.id and group.instance.id (apply.group_id, apply.instance_id); and with
 * partition.assignment.strategy=cooperative-sticky, which it may. Of the config's "kafka" properties it takes only those librdkafka marks as consumer
 * or common ones (ds_kafka_props).
 *
 * librdkafka types stay out of this header: a message is handed out as a ds_kafka_msg_t that
 * points into librdkafka's buffer until ds_consumer_release().
 */
#ifndef DUALSYNC_CONSUMER_H
#define DUALSYNC_CONSUMER_H

#include "dualsync/common.h"
#include "dualsync/config.h"

/* Kafka's logical offset "the first message still in the partition". */
#define DS_OFFSET_BEGINNING INT64_C(-2)

/* One partition and an offset (a start position, or the next offset to read). */
typedef struct ds_topic_partition {
    const char *topic; /* borrowed */
    int32_t partition;
    int64_t offset; /* an offset, or DS_OFFSET_BEGINNING */
} ds_topic_partition_t;

/* A consumed message. Pointers are valid until ds_consumer_release(). */
typedef struct ds_kafka_msg {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *key; /* NULL for a keyless message; not NUL-terminated */
    size_t key_len;
    const char *value; /* NULL for a tombstone; not NUL-terminated */
    size_t value_len;
    void *handle; /* the rd_kafka_message_t, owned */
} ds_kafka_msg_t;

/*
 * Called from ds_consumer_poll() when partitions are assigned: set parts[i].offset to where
 * each starts (DS_OFFSET_BEGINNING when nothing is stored). Returning false (errstr says why)
 * leaves the partitions unassigned and makes the next poll fail with that error.
 */
typedef bool (*ds_consumer_assign_fn)(void *ctx, ds_topic_partition_t *parts, int nparts,
                                      char *errstr, size_t errstr_size);

/* Called from ds_consumer_poll() before partitions are taken away: messages of these
 * partitions the caller still holds must be released without being acted on (another
 * member will read them again from the offsets the caller stored). */
typedef void (*ds_consumer_revoke_fn)(void *ctx, const ds_topic_partition_t *parts, int nparts);

typedef struct ds_consumer ds_consumer_t;

/**
 * @brief Creates a consumer.
 * @param group_id  the consumer group, or NULL for a plain reader (ds_consumer_assign_all).
 * @param assign, revoke, hook_ctx  rebalance hooks of a group member; NULL for a reader.
 */
ds_consumer_t *ds_consumer_new(const ds_config_t *config, const char *group_id,
                               ds_consumer_assign_fn assign, ds_consumer_revoke_fn revoke,
                               void *hook_ctx, char *errstr, size_t errstr_size);

/**
 * @brief Like ds_consumer_new() for a group member, as a static member when @p instance_id is
 *        not NULL (group.instance.id: a restart with the same id gets its partitions back at
 *        once; another process joining with it takes this one's place, and this one's next
 *        poll fails, ds_consumer_instance_fenced() true).
 */
ds_consumer_t *ds_consumer_new_member(const ds_config_t *config, const char *group_id,
                                      const char *instance_id, ds_consumer_assign_fn assign,
                                      ds_consumer_revoke_fn revoke, void *hook_ctx, char *errstr,
                                      size_t errstr_size);

/** @brief Whether the consumer failed because another member took its group.instance.id. */
bool ds_consumer_instance_fenced(const ds_consumer_t *consumer);

/**
 * @brief Checks what ds_consumer_new() would refuse in @p config's "kafka" properties (an
 *        unknown property, a bad value, a setting apply owns) without creating anything.
 */
bool ds_consumer_check_config(const ds_config_t *config, char *errstr,
                              size_t errstr_size) DS_MUST_CHECK;

/** @brief Leaves the group cleanly (rd_kafka_consumer_close) and frees; accepts NULL. */
void ds_consumer_free(ds_consumer_t *consumer);

/** @brief Subscribes the group member to @p topics (created by capture; may not exist yet). */
bool ds_consumer_subscribe(ds_consumer_t *consumer, const char *const *topics, int ntopics,
                           char *errstr, size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief Reader: assigns every partition of @p topic from the beginning.
 * @param end  receives, per partition, the offset after the last message present now (the
 *             high watermark); *nend entries, partitions in order; the caller frees *end.
 */
bool ds_consumer_assign_all(ds_consumer_t *consumer, const char *topic, int timeout_ms,
                            ds_topic_partition_t **end, int *nend, char *errstr,
                            size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief The high watermarks of every partition of @p topic (see ds_consumer_assign_all);
 *        a topic that does not exist has none (*nend = 0). With @p low not NULL, *low gets
 *        the low watermarks too, in the same order (caller frees; NULL when *nend = 0).
 */
bool ds_consumer_end_offsets(ds_consumer_t *consumer, const char *topic, int timeout_ms,
                             ds_topic_partition_t **end, int64_t **low, int *nend, char *errstr,
                             size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief Reader: reads exactly @p parts, each from its offset (replacing what was assigned),
 *        for a look at a few messages (dualsync status reads the oldest unapplied one).
 */
bool ds_consumer_assign(ds_consumer_t *consumer, const ds_topic_partition_t *parts, int nparts,
                        char *errstr, size_t errstr_size) DS_MUST_CHECK;

/** @brief The first offset still in a partition (the low watermark) and the one after its
 *         last message (the high watermark). */
bool ds_consumer_watermarks(ds_consumer_t *consumer, const char *topic, int32_t partition,
                            int timeout_ms, int64_t *low, int64_t *high, char *errstr,
                            size_t errstr_size) DS_MUST_CHECK;

typedef enum ds_consumer_poll_result {
    DS_CONSUMER_MESSAGE, /* *msg holds a message; release it */
    DS_CONSUMER_EOF,     /* a reader reached the end of msg->topic [msg->partition]; msg->offset
                          * is the next offset (nothing to release) */
    DS_CONSUMER_NOTHING, /* nothing within the timeout (or a transient error, logged) */
    DS_CONSUMER_FAILED,  /* a fatal error (errstr): stop */
} ds_consumer_poll_result_t;

/** @brief Waits up to @p timeout_ms for one message; serves rebalances and errors. */
ds_consumer_poll_result_t ds_consumer_poll(ds_consumer_t *consumer, int timeout_ms,
                                           ds_kafka_msg_t *msg, char *errstr, size_t errstr_size);

/**
 * @brief Whether every broker is down: from librdkafka's "all brokers down" until a message
 *        arrives or, polled without messages, a metadata request is answered (tried every 5 s).
 */
bool ds_consumer_brokers_down(const ds_consumer_t *consumer);

/** @brief Frees what @p msg points to; accepts a message never filled (handle NULL). */
void ds_consumer_release(ds_kafka_msg_t *msg);

/**
 * @brief Commits @p offsets (the next offset to read, per partition) to Kafka, without
 *        waiting. Only for lag tools: where apply starts comes from the target databases.
 */
void ds_consumer_commit(ds_consumer_t *consumer, const ds_topic_partition_t *offsets, int noffsets);

/* One assigned partition and its low and high watermarks as librdkafka last saw them (-1 when
 * not known yet). */
typedef void (*ds_consumer_partition_fn)(void *ctx, const char *topic, int32_t partition,
                                         int64_t low, int64_t high);

/** @brief Calls @p fn for each partition assigned now, without any request to Kafka. */
void ds_consumer_foreach_partition(ds_consumer_t *consumer, ds_consumer_partition_fn fn,
                                   void *ctx);

#endif
