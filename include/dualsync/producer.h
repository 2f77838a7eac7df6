/*
 * producer.h: the Kafka producer capture publishes through.
 *
 * Idempotent (enable.idempotence=true, acks=all) so a retried send is never duplicated or
 * reordered within a partition; keys are hashed with murmur2 as the Java client does, so a
 * key lands on the partition any Kafka tool expects. message.timeout.ms defaults to 0
 * (retry forever): while the broker is down, messages wait and capture stops reading WAL
 * instead of failing them. It never makes the broker create a topic (allow.auto.create.topics
 * defaults to false): ds_topics_ensure() creates them first. Delivery reports are served on
 * the caller's thread, through ds_producer_poll(), and wake an event loop through
 * ds_producer_wakeup_fd().
 */
#ifndef DUALSYNC_PRODUCER_H
#define DUALSYNC_PRODUCER_H

#include "dualsync/common.h"
#include "dualsync/config.h"
#include "dualsync/metrics.h"

typedef struct ds_producer ds_producer_t;

/* One delivery report. err is NULL on success; otherwise a message naming the topic,
 * partition and the broker's error. */
typedef void (*ds_producer_ack_fn)(void *ctx, uint64_t tag, size_t bytes, const char *err);

/* A message Kafka refused for good (pointers borrowed, valid during the callback only). */
typedef struct ds_producer_reject {
    const char *topic;
    int32_t partition;
    const char *key;  /* NULL for a keyless message */
    size_t key_len;
    const char *value; /* NULL for a tombstone */
    size_t value_len;
    bool too_large;     /* the broker refused it for its size (the topic's max.message.bytes) */
    const char *reason; /* librdkafka's text */
} ds_producer_reject_t;

/* Called with the ack callback's ctx just before the ack reporting the same failure. */
typedef void (*ds_producer_reject_fn)(void *ctx, uint64_t tag, const ds_producer_reject_t *r);

/**
 * @brief Creates the producer with the config's "kafka" properties over dualsync's defaults.
 *
 * The user cannot turn idempotence or acks=all off: without them a retry can duplicate or
 * reorder a row change, so such a setting is refused with an error.
 */
ds_producer_t *ds_producer_new(const ds_config_t *config, ds_producer_ack_fn ack, void *ack_ctx,
                               char *errstr, size_t errstr_size);

/**
 * @brief Checks what ds_producer_new() would refuse in @p config's "kafka" properties (an
 *        unknown property, a bad value, a guarantee turned off) without creating anything.
 *        Pass the producer's ds_kafka_config_view(), as to ds_producer_new().
 */
bool ds_producer_check_config(const ds_config_t *config, char *errstr,
                              size_t errstr_size) DS_MUST_CHECK;

/** @brief Waits up to @p timeout_ms for outstanding deliveries, then frees; accepts NULL. */
void ds_producer_free(ds_producer_t *producer, int timeout_ms);

/**
 * @brief Queues one message. @p value NULL sends a tombstone; @p key NULL a keyless message.
 *
 * When librdkafka's queue is full this serves delivery reports and retries (never drops).
 * @return false on a non-retriable error (unknown topic name syntax, message too large,
 *         fatal producer state), with errstr naming the topic.
 */
bool ds_producer_send(ds_producer_t *producer, const char *topic, const char *key,
                      size_t key_len, const char *value, size_t value_len, uint64_t tag,
                      char *errstr, size_t errstr_size) DS_MUST_CHECK;

/* One message header; librdkafka copies it when the message is queued. */
typedef struct ds_producer_header {
    const char *name; /* NUL-terminated */
    const char *value;
    size_t value_len;
} ds_producer_header_t;

/**
 * @brief ds_producer_send_to() with @p nheaders @p headers (none: NULL, 0). The message
 *        keeps them through librdkafka's own retries.
 */
bool ds_producer_send_headers(ds_producer_t *producer, const char *topic, int32_t partition,
                              const char *key, size_t key_len, const char *value, size_t value_len,
                              const ds_producer_header_t *headers, int nheaders, uint64_t tag,
                              char *errstr, size_t errstr_size) DS_MUST_CHECK;

/** @brief ds_producer_send() to partition @p partition (the partitioner's choice: -1). */
bool ds_producer_send_to(ds_producer_t *producer, const char *topic, int32_t partition,
                         const char *key, size_t key_len, const char *value, size_t value_len,
                         uint64_t tag, char *errstr, size_t errstr_size) DS_MUST_CHECK;

/** @brief @p topic's partition count from the brokers' metadata, or -1 (unknown, no answer
 *         within @p timeout_ms). Blocks up to @p timeout_ms. */
int ds_producer_partition_count(ds_producer_t *producer, const char *topic, int timeout_ms);

/**
 * @brief Fetches metadata for @p topics (never creating them: allow.auto.create.topics is
 *        false by default), so the first row change does not wait for a partition leader
 *        lookup.
 * @return false (errstr says why) when the broker did not answer within @p timeout_ms; not
 *         fatal: sends wait for the broker anyway.
 */
bool ds_producer_warm_up(ds_producer_t *producer, const char *const *topics, int ntopics,
                         int timeout_ms, char *errstr, size_t errstr_size);

/** @brief Serves queued delivery reports and errors; returns how many events were served. */
int ds_producer_poll(ds_producer_t *producer, int timeout_ms);

/**
 * @brief Names the process that waits for the producer in its outage messages ("capture":
 *        "...; capture pauses and keeps retrying", "...; capture resumes"); @p owner is
 *        borrowed. Without it the messages name the producer's client.id.
 */
void ds_producer_set_owner(ds_producer_t *producer, const char *owner);

/**
 * @brief Waits up to @p timeout_ms until every message sent is delivered or refused, serving
 *        the delivery reports; true when none is left.
 */
bool ds_producer_flush(ds_producer_t *producer, int timeout_ms);

/** @brief Sets the callback told of each refused message with its key and value. */
void ds_producer_set_reject_cb(ds_producer_t *producer, ds_producer_reject_fn reject);

/** @brief The producer's message.max.bytes: ds_producer_send() refuses larger messages. */
size_t ds_producer_max_message_bytes(const ds_producer_t *producer);

/**
 * @brief During an outage (all brokers down), asks a broker for metadata at most every 5 s,
 *        blocking up to 200 ms, so the outage's end is logged even when nothing is being
 *        sent; a delivery ends it too. Does nothing otherwise. Call it from a timer.
 */
void ds_producer_check_brokers(ds_producer_t *producer);

/** @brief Readable when delivery reports are waiting; drain it, then ds_producer_poll(). */
int ds_producer_wakeup_fd(const ds_producer_t *producer);

/**
 * @brief Counts acknowledged messages in @p acked (label: topic) and errors, of delivery and
 *        of the client, in @p errors (label: reason, librdkafka's error name). NULL: not
 *        counted.
 */
void ds_producer_set_metrics(ds_producer_t *producer, ds_metric_t *acked, ds_metric_t *errors);

/** @brief True while every broker is down (since librdkafka said so, until one answers). */
bool ds_producer_brokers_down(const ds_producer_t *producer);

/** @brief Empties the wakeup descriptor. */
void ds_producer_drain_wakeup(ds_producer_t *producer);

/** @brief A fatal producer error (idempotence state lost), or NULL. Borrowed. */
const char *ds_producer_fatal_error(const ds_producer_t *producer);

#endif
