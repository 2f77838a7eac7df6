/*
 * offsets.h: where each target database stands in each Kafka partition.
 *
 * Every target database stores, in dualsync.offsets and in the same transaction as the rows,
 * the next offset it needs per partition. Databases commit one after another, so after a
 * crash they may disagree; this table holds what each one said:
 *   - a partition starts at the smallest stored offset over the databases (the beginning
 *     when one has nothing stored), so no database misses a message;
 *   - a message below a database's own stored offset is already in that database and is
 *     skipped there, so no database gets a message twice.
 *
 * It also holds, per database and partition, the generation of the claim this process made
 * on the partition's dualsync.offsets row when it was assigned (applier.c, "The fence"):
 * every commit that moves the partition's offset checks that the row still carries it.
 */
#ifndef DUALSYNC_OFFSETS_H
#define DUALSYNC_OFFSETS_H

#include "dualsync/common.h"

/* "This database has nothing stored for the partition." */
#define DS_OFFSET_NONE INT64_C(-1)

/* "This process holds no claim on the partition in that database" (never assigned, or
 * another process claimed it since): nothing of it may be committed there. Claims are >= 1. */
#define DS_GENERATION_NONE INT64_C(-1)

typedef struct ds_offsets ds_offsets_t;

/*
 * Where a change stands in the source's commit order: Debezium's source.sequence, the end LSN
 * of the transaction committed before the change's, then the change's own LSN. Within a
 * partition capture publishes changes in this order, so a change that comes after one with a
 * greater position is a copy of an older one: published again by a capture that lost its
 * slot to another (frozen, then resumed) while it still held messages for Kafka. A zero
 * commit is unknown (the first transaction after a capture started): not compared.
 */
typedef struct ds_source_pos {
    ds_lsn_t commit;
    ds_lsn_t lsn;
} ds_source_pos_t;

/** @brief Whether @p a comes before @p b in the source's commit order. */
static inline bool ds_source_pos_before(ds_source_pos_t a, ds_source_pos_t b)
{
    return a.commit < b.commit || (a.commit == b.commit && a.lsn < b.lsn);
}

/** @brief Positions for @p ndatabases databases (numbered 0..n-1); NULL when out of memory. */
ds_offsets_t *ds_offsets_new(int ndatabases);

/** @brief Accepts NULL. */
void ds_offsets_free(ds_offsets_t *offsets);

/** @brief Records what database @p db has stored (replacing what was known); false only when
 *         out of memory. */
bool ds_offsets_set(ds_offsets_t *offsets, int db, const char *topic, int32_t partition,
                    int64_t next_offset) DS_MUST_CHECK;

/** @brief Moves database @p db forward to @p next_offset (never backward) after it committed. */
bool ds_offsets_advance(ds_offsets_t *offsets, int db, const char *topic, int32_t partition,
                        int64_t next_offset) DS_MUST_CHECK;

/** @brief Database @p db's next offset for the partition, or DS_OFFSET_NONE. */
int64_t ds_offsets_get(const ds_offsets_t *offsets, int db, const char *topic, int32_t partition);

/** @brief Records the generation of this process's claim on the partition in database @p db
 *         (DS_GENERATION_NONE: lost); false only when out of memory. */
bool ds_offsets_set_generation(ds_offsets_t *offsets, int db, const char *topic,
                               int32_t partition, int64_t generation) DS_MUST_CHECK;

/** @brief This process's claim on the partition in database @p db, or DS_GENERATION_NONE. */
int64_t ds_offsets_generation(const ds_offsets_t *offsets, int db, const char *topic,
                              int32_t partition);

/** @brief Whether this process holds a claim on the partition in every database. */
bool ds_offsets_owned(const ds_offsets_t *offsets, const char *topic, int32_t partition);

/** @brief Forgets the partition in every database (before re-reading it, or when revoked). */
void ds_offsets_forget(ds_offsets_t *offsets, const char *topic, int32_t partition);

/**
 * @brief Where reading the partition starts: the smallest next offset over the databases, or
 *        DS_OFFSET_BEGINNING (consumer.h) when a database has nothing stored.
 */
int64_t ds_offsets_start(const ds_offsets_t *offsets, const char *topic, int32_t partition);

/** @brief Whether database @p db already holds the message at @p offset. */
bool ds_offsets_applied(const ds_offsets_t *offsets, int db, const char *topic, int32_t partition,
                        int64_t offset);

/** @brief Whether every database already holds it (nothing at all is left to do for it). */
bool ds_offsets_applied_everywhere(const ds_offsets_t *offsets, const char *topic,
                                   int32_t partition, int64_t offset);

/**
 * @brief Records the newest source position database @p db stored for the partition
 *        ({0, 0}: none); the partition's running position is then read again from the
 *        databases. False only when out of memory.
 */
bool ds_offsets_set_position(ds_offsets_t *offsets, int db, const char *topic, int32_t partition,
                             ds_source_pos_t position) DS_MUST_CHECK;

/**
 * @brief Whether the change at @p position, read next in the partition, is older than one
 *        read before it (then *newest is that one's position); otherwise it becomes the
 *        partition's newest. The partition starts at the oldest position the databases
 *        stored (the one that has applied least). An unknown @p position (zero commit) is
 *        never older and changes nothing. False only when out of memory.
 */
bool ds_offsets_stale(ds_offsets_t *offsets, const char *topic, int32_t partition,
                      ds_source_pos_t position, ds_source_pos_t *newest);

#endif
