/*
 * batch.h: the messages apply writes in one transaction per target database.
 *
 * A batch owns its Kafka messages until it is cleared, and keeps for each one the change it
 * carries (source topic, key, parsed value), why it cannot be mapped (a dead letter), or the
 * target writes ds_mapping_eval() computed, copied: the evaluator's own buffers last only
 * until its next call, and each write is executed once per target database, in the fast path
 * and perhaps again in the slow path. It also tracks, per partition, the offsets it covers,
 * which become the next offsets stored in every database.
 */
#ifndef DUALSYNC_BATCH_H
#define DUALSYNC_BATCH_H

#include <jansson.h>

#include "dualsync/common.h"
#include "dualsync/consumer.h"
#include "dualsync/dlq.h"
#include "dualsync/mapping.h"
#include "dualsync/offsets.h"

/* One statement execution, copied from a ds_target_write_t. */
typedef struct ds_batch_write {
    const ds_target_t *target; /* borrowed from the mapping set */
    ds_write_kind_t kind;      /* which of the target's statements */
    int nparams;
    char **params;    /* copies, in the block of the message's writes; NULL entries are SQL
                       * NULLs */
    bool sole_source; /* ds_target_write_t's */
} ds_batch_write_t;

/* One message of the batch. */
/* A target the mappings rejected for one change (owned copies). */
typedef struct ds_batch_reject {
    char *target; /* the target id */
    char *error;  /* why */
} ds_batch_reject_t;

typedef struct ds_batch_msg {
    ds_kafka_msg_t kafka; /* as read: its partition and offset are what the offsets count;
                           * owned (released by ds_batch_clear) */
    const char *topic;    /* the change's source topic: kafka.topic, or for a re-driven dead
                           * letter the topic it was read from first */
    int32_t partition;    /* likewise, for dead letters and pending rows */
    int64_t offset;
    const char *key; /* the change's key (JSON text; the links' source key), or NULL */
    size_t key_len;
    const char *value_text; /* the change's value text, NULL for a tombstone */
    size_t value_len;
    json_t *value;            /* value_text parsed; NULL for a tombstone or when unparseable */
    const char *only_target;  /* a re-driven dead letter: the one target id to write, or NULL */
    bool skip;                /* nothing to write (already in every database, a stale copy, or
                               * not a change at all); only its offset counts */
    ds_source_pos_t position; /* its source.sequence; commit 0 when unknown (apply.c, "Stale
                               * copies") */
    int attempts;             /* a re-driven dead letter: failed attempts so far; else 0 */
    bool recorded;            /* a re-driven dead letter the target databases recorded in
                               * dualsync.dead_letters (so a retry can tell it superseded) */
    bool superseded;          /* dlq retry: a newer change of its source row was applied
                               * since (a database found its record gone): not written */
    bool failed_again;        /* a database dead-lettered a write of it (the slow path) */
    char *error;              /* why the change cannot be mapped: a dead letter; owned */
    ds_batch_write_t *writes; /* what it maps to, in target order; owned */
    int nwrites;
    ds_batch_reject_t *rejects; /* targets the mappings rejected while the others are written:
                                 * each a dead letter of its own, recorded as such; owned */
    int nrejects;
    char *storage; /* owned copies behind topic/key/value_text when they are not kafka's */
} ds_batch_msg_t;

/* The offsets a batch covers in one partition. */
typedef struct ds_batch_partition {
    const char *topic; /* borrowed from a message of the batch */
    int32_t partition;
    int64_t first_offset; /* smallest offset of the batch in it */
    int64_t last_offset;  /* largest: the next offset to store is last_offset + 1 */
    ds_source_pos_t newest; /* the newest source position of its changes, {0, 0} if none:
                             * stored with the offsets (apply.c, "Stale copies") */
} ds_batch_partition_t;

typedef struct ds_batch ds_batch_t;

/** @brief An empty batch; NULL when out of memory. */
ds_batch_t *ds_batch_new(void);

/** @brief Releases the messages and frees; accepts NULL. */
void ds_batch_free(ds_batch_t *batch);

/** @brief Releases every message (ds_consumer_release) and empties the batch. */
void ds_batch_clear(ds_batch_t *batch);

/**
 * @brief Appends @p msg, taking it (its handle is released with the batch). The change fields
 *        start as the Kafka message's own: source topic, key and value text.
 * @return the new entry, or NULL when out of memory (msg is then released).
 */
ds_batch_msg_t *ds_batch_add(ds_batch_t *batch, ds_kafka_msg_t *msg);

/**
 * @brief Replaces the change fields of @p m with copies (a dead letter re-driven: the change
 *        is inside the Kafka message), and sets only_target (copied, may be NULL). false only
 *        when out of memory.
 */
bool ds_batch_set_source(ds_batch_msg_t *m, const char *topic, int32_t partition, int64_t offset,
                         const char *key, size_t key_len, const char *value_text, size_t value_len,
                         const char *only_target) DS_MUST_CHECK;

/** @brief Copies @p writes into @p m (replacing any). false only when out of memory. */
bool ds_batch_set_writes(ds_batch_msg_t *m, const ds_write_list_t *writes) DS_MUST_CHECK;

/** @brief Copies the targets @p writes rejects into @p m->rejects; false when out of memory. */
bool ds_batch_set_rejects(ds_batch_msg_t *m, const ds_write_list_t *writes) DS_MUST_CHECK;

/** @brief Marks @p m a dead letter because of @p error (copied); drops its writes. */
bool ds_batch_set_error(ds_batch_msg_t *m, const char *error) DS_MUST_CHECK;

/** @brief Messages in the batch, in the order read. */
int ds_batch_count(const ds_batch_t *batch);
ds_batch_msg_t *ds_batch_at(ds_batch_t *batch, int i);

/** @brief The partitions the batch covers, in order of first appearance. */
int ds_batch_npartitions(const ds_batch_t *batch);
const ds_batch_partition_t *ds_batch_partition(const ds_batch_t *batch, int i);

/**
 * @brief Removes (and releases) the messages of one partition: it was revoked, and whoever
 *        gets it reads them again from the offsets the databases stored.
 * @return how many messages were removed.
 */
int ds_batch_drop_partition(ds_batch_t *batch, const char *topic, int32_t partition);

/** @brief Monotonic time (microseconds) the first message was added; 0 when empty. */
int64_t ds_batch_started_us(const ds_batch_t *batch);

/**
 * @brief The dead letter for message @p m: its place in Kafka, key and value (borrowed from
 *        @p m), @p target (NULL when the change could not be mapped at all) and @p error.
 */
ds_dead_letter_t ds_batch_dead_letter(const ds_batch_msg_t *m, const char *target,
                                      const char *error);

/** @brief Counts @p m's source position (set by apply once the change is known not to be a
 *         stale copy) in its partition's newest. */
void ds_batch_note_position(ds_batch_t *batch, const ds_batch_msg_t *m);

#endif
