/*
 * inflight.h: which transactions still have messages Kafka has not acknowledged.
 *
 * The slot's confirmed flush LSN may move past a commit only when every message of that
 * transaction and of every earlier one is acknowledged (bottledwater's rule). Transactions
 * are kept in commit order in a ring; each counts its pending deliveries. A delivery report
 * names its transaction by the sequence number ds_inflight_begin() returned, passed to Kafka
 * as the message's opaque, so a report never holds a pointer into the ring (which grows).
 */
#ifndef DUALSYNC_INFLIGHT_H
#define DUALSYNC_INFLIGHT_H

#include "dualsync/common.h"

typedef struct ds_inflight ds_inflight_t;

/** @brief An empty tracker, or NULL when out of memory. */
ds_inflight_t *ds_inflight_new(void);

/** @brief Accepts NULL. */
void ds_inflight_free(ds_inflight_t *inflight);

/** @brief Opens a transaction; its sequence number tags its messages. */
uint64_t ds_inflight_begin(ds_inflight_t *inflight);

/** @brief Counts one more message of transaction @p seq handed to Kafka. */
void ds_inflight_sent(ds_inflight_t *inflight, uint64_t seq, size_t bytes);

/** @brief Marks @p seq committed; it completes once its messages are acknowledged. */
void ds_inflight_commit(ds_inflight_t *inflight, uint64_t seq, ds_lsn_t end_lsn);

/** @brief Counts the acknowledgement of one message of @p seq. */
void ds_inflight_acked(ds_inflight_t *inflight, uint64_t seq, size_t bytes);

/**
 * @brief Drops the completed transactions at the head of the ring.
 * @return the end LSN of the last one dropped, or DS_INVALID_LSN when none completed.
 */
ds_lsn_t ds_inflight_pop_completed(ds_inflight_t *inflight);

/** @brief Messages handed to Kafka and not yet acknowledged. */
size_t ds_inflight_messages(const ds_inflight_t *inflight);

/** @brief Bytes (key + value) of those messages. */
size_t ds_inflight_bytes(const ds_inflight_t *inflight);

/** @brief Transactions still tracked (open, or committed with pending messages). */
size_t ds_inflight_transactions(const ds_inflight_t *inflight);

/* Told the commit time of each transaction ds_inflight_pop_completed() removes. */
typedef void (*ds_inflight_done_fn)(void *ctx, int64_t commit_us);

/** @brief Records transaction @p seq's commit time at the source (Unix microseconds). */
void ds_inflight_set_commit_time(ds_inflight_t *inflight, uint64_t seq, int64_t commit_us);

/** @brief Calls @p done for each completed transaction that has a commit time. */
void ds_inflight_on_done(ds_inflight_t *inflight, ds_inflight_done_fn done, void *ctx);

/**
 * @brief The commit time of the oldest committed transaction not yet acknowledged (and so
 *        not confirmed), or 0 when there is none.
 */
int64_t ds_inflight_oldest_commit_us(const ds_inflight_t *inflight);

#endif
