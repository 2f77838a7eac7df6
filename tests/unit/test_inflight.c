/*
 * test_inflight.c: the slot may only move past fully acknowledged transactions, in order.
 */
#include "dualsync/inflight.h"
#include "ds_test.h"

static void test_empty_transaction_completes_at_commit(void)
{
    ds_inflight_t *in = ds_inflight_new();
    uint64_t seq = ds_inflight_begin(in);

    DS_CHECK_INT(ds_inflight_pop_completed(in), 0);
    ds_inflight_commit(in, seq, 100);
    DS_CHECK_INT(ds_inflight_pop_completed(in), 100);
    DS_CHECK_INT(ds_inflight_transactions(in), 0);
    ds_inflight_free(in);
}

static void test_commit_waits_for_every_ack(void)
{
    ds_inflight_t *in = ds_inflight_new();
    uint64_t seq = ds_inflight_begin(in);

    ds_inflight_sent(in, seq, 10);
    ds_inflight_sent(in, seq, 20);
    ds_inflight_commit(in, seq, 200);
    DS_CHECK_INT(ds_inflight_messages(in), 2);
    DS_CHECK_INT(ds_inflight_bytes(in), 30);
    ds_inflight_acked(in, seq, 10);
    DS_CHECK_INT(ds_inflight_pop_completed(in), 0);
    ds_inflight_acked(in, seq, 20);
    DS_CHECK_INT(ds_inflight_pop_completed(in), 200);
    DS_CHECK_INT(ds_inflight_bytes(in), 0);
    ds_inflight_free(in);
}

static void test_later_transaction_acked_first_waits_for_earlier(void)
{
    ds_inflight_t *in = ds_inflight_new();
    uint64_t a = ds_inflight_begin(in);
    ds_inflight_sent(in, a, 1);
    ds_inflight_commit(in, a, 100);
    uint64_t b = ds_inflight_begin(in);
    ds_inflight_sent(in, b, 1);
    ds_inflight_commit(in, b, 200);

    ds_inflight_acked(in, b, 1);
    DS_CHECK_INT(ds_inflight_pop_completed(in), 0);
    ds_inflight_acked(in, a, 1);
    DS_CHECK_INT(ds_inflight_pop_completed(in), 200);
    ds_inflight_free(in);
}

static void test_uncommitted_transaction_blocks_confirmation(void)
{
    ds_inflight_t *in = ds_inflight_new();
    uint64_t a = ds_inflight_begin(in);
    ds_inflight_sent(in, a, 1);
    ds_inflight_acked(in, a, 1);
    DS_CHECK_INT(ds_inflight_pop_completed(in), 0);
    DS_CHECK_INT(ds_inflight_transactions(in), 1);
    ds_inflight_free(in);
}

static void test_ring_grows_past_initial_capacity_keeping_order(void)
{
    ds_inflight_t *in = ds_inflight_new();
    uint64_t seqs[1000];

    /* Pop a few first so the live window wraps around the ring before it grows. */
    for (int i = 0; i < 40; i++) {
        uint64_t s = ds_inflight_begin(in);
        ds_inflight_commit(in, s, (ds_lsn_t)i + 1);
    }
    DS_CHECK_INT(ds_inflight_pop_completed(in), 40);
    for (int i = 0; i < 1000; i++) {
        seqs[i] = ds_inflight_begin(in);
        ds_inflight_sent(in, seqs[i], 1);
        ds_inflight_commit(in, seqs[i], (ds_lsn_t)1000 + i);
    }
    for (int i = 999; i >= 1; i--)
        ds_inflight_acked(in, seqs[i], 1);
    DS_CHECK_INT(ds_inflight_pop_completed(in), 0);
    ds_inflight_acked(in, seqs[0], 1);
    DS_CHECK_INT(ds_inflight_pop_completed(in), 1999);
    DS_CHECK_INT(ds_inflight_transactions(in), 0);
    ds_inflight_free(in);
}

int main(void)
{
    DS_RUN(test_empty_transaction_completes_at_commit);
    DS_RUN(test_commit_waits_for_every_ack);
    DS_RUN(test_later_transaction_acked_first_waits_for_earlier);
    DS_RUN(test_uncommitted_transaction_blocks_confirmation);
    DS_RUN(test_ring_grows_past_initial_capacity_keeping_order);
    return ds_test_report();
}
