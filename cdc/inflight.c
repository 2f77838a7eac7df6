/*
 * inflight.c: the ring of transactions awaiting Kafka acknowledgements.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualsync/inflight.h"

typedef struct inflight_tx {
    ds_lsn_t end_lsn; /* commit end LSN; valid once committed */
    size_t pending;   /* messages sent and not acknowledged */
    bool committed;   /* the Commit message was seen */
    int64_t commit_us; /* the source's commit time (Unix microseconds); 0: none (a backfill or
                        * a window) */
} inflight_tx_t;

struct ds_inflight {
    inflight_tx_t *ring; /* cap entries; the live ones are head .. head+count-1 (mod cap) */
    size_t cap;          /* a power of two, so a sequence maps to a slot with a mask */
    size_t head;         /* slot of the oldest live transaction */
    size_t count;        /* live transactions */
    uint64_t head_seq;   /* sequence number of the oldest live transaction */
    size_t messages;     /* pending messages over all transactions */
    size_t bytes;        /* their size */
    ds_inflight_done_fn done; /* told each completed transaction's commit time */
    void *done_ctx;
};

ds_inflight_t *ds_inflight_new(void)
{
    ds_inflight_t *inflight = calloc(1, sizeof(*inflight));

    if (!inflight)
        return NULL;
    inflight->cap = 64;
    inflight->ring = calloc(inflight->cap, sizeof(*inflight->ring));
    if (!inflight->ring) {
        free(inflight);
        return NULL;
    }
    inflight->head_seq = 1;
    return inflight;
}

void ds_inflight_free(ds_inflight_t *inflight)
{
    if (!inflight)
        return;
    free(inflight->ring);
    free(inflight);
}

static inflight_tx_t *tx_of(ds_inflight_t *inflight, uint64_t seq)
{
    /* A sequence outside the live window is a bookkeeping bug that would move the slot past
     * unacknowledged data; stop rather than risk it. */
    if (seq < inflight->head_seq || seq - inflight->head_seq >= inflight->count) {
        fprintf(stderr, "dualsync: internal error: transaction sequence %llu outside the "
                        "in-flight window [%llu, %llu)\n",
                (unsigned long long)seq, (unsigned long long)inflight->head_seq,
                (unsigned long long)(inflight->head_seq + inflight->count));
        abort();
    }
    return &inflight->ring[(inflight->head + (seq - inflight->head_seq)) & (inflight->cap - 1)];
}

uint64_t ds_inflight_begin(ds_inflight_t *inflight)
{
    if (inflight->count == inflight->cap) {
        size_t new_cap = inflight->cap * 2;
        inflight_tx_t *ring = calloc(new_cap, sizeof(*ring));

        if (!ring) {
            fprintf(stderr, "dualsync: out of memory growing the in-flight ring to %zu\n",
                    new_cap);
            abort();
        }
        for (size_t i = 0; i < inflight->count; i++)
            ring[i] = inflight->ring[(inflight->head + i) & (inflight->cap - 1)];
        free(inflight->ring);
        inflight->ring = ring;
        inflight->cap = new_cap;
        inflight->head = 0;
    }
    inflight->count++;
    inflight_tx_t *tx = tx_of(inflight, inflight->head_seq + inflight->count - 1);
    memset(tx, 0, sizeof(*tx));
    return inflight->head_seq + inflight->count - 1;
}

void ds_inflight_sent(ds_inflight_t *inflight, uint64_t seq, size_t bytes)
{
    tx_of(inflight, seq)->pending++;
    inflight->messages++;
    inflight->bytes += bytes;
}

void ds_inflight_commit(ds_inflight_t *inflight, uint64_t seq, ds_lsn_t end_lsn)
{
    inflight_tx_t *tx = tx_of(inflight, seq);

    tx->committed = true;
    tx->end_lsn = end_lsn;
}

void ds_inflight_acked(ds_inflight_t *inflight, uint64_t seq, size_t bytes)
{
    inflight_tx_t *tx = tx_of(inflight, seq);

    tx->pending--;
    inflight->messages--;
    inflight->bytes -= bytes;
}

ds_lsn_t ds_inflight_pop_completed(ds_inflight_t *inflight)
{
    ds_lsn_t last = DS_INVALID_LSN;

    while (inflight->count > 0) {
        inflight_tx_t *tx = &inflight->ring[inflight->head];

        if (!tx->committed || tx->pending > 0)
            break;
        last = tx->end_lsn;
        if (tx->commit_us && inflight->done)
            inflight->done(inflight->done_ctx, tx->commit_us);
        inflight->head = (inflight->head + 1) & (inflight->cap - 1);
        inflight->head_seq++;
        inflight->count--;
    }
    return last;
}

size_t ds_inflight_messages(const ds_inflight_t *inflight)
{
    return inflight->messages;
}

size_t ds_inflight_bytes(const ds_inflight_t *inflight)
{
    return inflight->bytes;
}

size_t ds_inflight_transactions(const ds_inflight_t *inflight)
{
    return inflight->count;
}

void ds_inflight_set_commit_time(ds_inflight_t *inflight, uint64_t seq, int64_t commit_us)
{
    tx_of(inflight, seq)->commit_us = commit_us;
}

void ds_inflight_on_done(ds_inflight_t *inflight, ds_inflight_done_fn done, void *ctx)
{
    inflight->done = done;
    inflight->done_ctx = ctx;
}

int64_t ds_inflight_oldest_commit_us(const ds_inflight_t *inflight)
{
    /* Committed transactions leave the ring as soon as they and those before them are
     * acknowledged, so the first committed one with a time is the oldest unacknowledged one:
     * the scan stops there, and usually at the head. */
    for (size_t i = 0; i < inflight->count; i++) {
        const inflight_tx_t *tx = &inflight->ring[(inflight->head + i) & (inflight->cap - 1)];

        if (tx->committed && tx->commit_us)
            return tx->commit_us;
    }
    return 0;
}
