/*
 * test_apply_offsets.c: where each target database stands: the start of a partition is the
 * smallest stored offset over the databases, and a database skips what it already has.
 */
#include <stdio.h>

#include "dualsync/consumer.h"
#include "dualsync/offsets.h"
#include "ds_test.h"

static void test_nothing_stored_starts_at_the_beginning(void)
{
    ds_offsets_t *o = ds_offsets_new(2);

    DS_CHECK(o != NULL);
    DS_CHECK_INT(ds_offsets_start(o, "t", 0), DS_OFFSET_BEGINNING);
    DS_CHECK_INT(ds_offsets_get(o, 0, "t", 0), DS_OFFSET_NONE);
    DS_CHECK(!ds_offsets_applied(o, 0, "t", 0, 0));
    ds_offsets_free(o);
}

static void test_start_is_the_smallest_stored_offset(void)
{
    ds_offsets_t *o = ds_offsets_new(3);

    DS_CHECK(ds_offsets_set(o, 0, "t", 1, 120));
    DS_CHECK(ds_offsets_set(o, 1, "t", 1, 80));
    DS_CHECK(ds_offsets_set(o, 2, "t", 1, 100));
    DS_CHECK_INT(ds_offsets_start(o, "t", 1), 80);
    /* Another partition of the same topic is separate. */
    DS_CHECK_INT(ds_offsets_start(o, "t", 0), DS_OFFSET_BEGINNING);
    ds_offsets_free(o);
}

static void test_a_database_without_a_row_sends_reading_to_the_beginning(void)
{
    ds_offsets_t *o = ds_offsets_new(2);

    /* Database 1 was added to the config later: it needs every message. */
    DS_CHECK(ds_offsets_set(o, 0, "t", 0, 500));
    DS_CHECK(ds_offsets_set(o, 1, "t", 0, DS_OFFSET_NONE));
    DS_CHECK_INT(ds_offsets_start(o, "t", 0), DS_OFFSET_BEGINNING);
    ds_offsets_free(o);
}

static void test_each_database_skips_only_what_it_has(void)
{
    ds_offsets_t *o = ds_offsets_new(2);

    /* A crash between the two commits: database 0 has offsets up to 99, database 1 up to 49. */
    DS_CHECK(ds_offsets_set(o, 0, "t", 0, 100));
    DS_CHECK(ds_offsets_set(o, 1, "t", 0, 50));
    DS_CHECK(ds_offsets_applied(o, 0, "t", 0, 60));
    DS_CHECK(!ds_offsets_applied(o, 1, "t", 0, 60));
    DS_CHECK(ds_offsets_applied(o, 1, "t", 0, 49));
    DS_CHECK(!ds_offsets_applied(o, 0, "t", 0, 100));
    DS_CHECK(!ds_offsets_applied_everywhere(o, "t", 0, 60));
    DS_CHECK(ds_offsets_applied_everywhere(o, "t", 0, 49));
    ds_offsets_free(o);
}

static void test_advance_never_moves_backward(void)
{
    ds_offsets_t *o = ds_offsets_new(1);

    DS_CHECK(ds_offsets_set(o, 0, "t", 0, 100));
    /* A batch starting at the other databases' smaller offset ends before 100. */
    DS_CHECK(ds_offsets_advance(o, 0, "t", 0, 81));
    DS_CHECK_INT(ds_offsets_get(o, 0, "t", 0), 100);
    DS_CHECK(ds_offsets_advance(o, 0, "t", 0, 130));
    DS_CHECK_INT(ds_offsets_get(o, 0, "t", 0), 130);
    /* set replaces: it is what the database says after a reconnect. */
    DS_CHECK(ds_offsets_set(o, 0, "t", 0, 90));
    DS_CHECK_INT(ds_offsets_get(o, 0, "t", 0), 90);
    ds_offsets_free(o);
}

static void test_forget_drops_the_partition_everywhere(void)
{
    ds_offsets_t *o = ds_offsets_new(2);

    DS_CHECK(ds_offsets_set(o, 0, "a", 0, 10));
    DS_CHECK(ds_offsets_set(o, 1, "a", 0, 10));
    DS_CHECK(ds_offsets_set(o, 0, "b", 3, 7));
    ds_offsets_forget(o, "a", 0);
    DS_CHECK_INT(ds_offsets_get(o, 0, "a", 0), DS_OFFSET_NONE);
    DS_CHECK_INT(ds_offsets_start(o, "a", 0), DS_OFFSET_BEGINNING);
    DS_CHECK_INT(ds_offsets_get(o, 0, "b", 3), 7);
    ds_offsets_forget(o, "nothing", 9); /* harmless */
    ds_offsets_free(o);
}

static void test_many_partitions_keep_their_own_offsets(void)
{
    ds_offsets_t *o = ds_offsets_new(2);
    char topic[32];

    for (int i = 0; i < 100; i++) {
        snprintf(topic, sizeof(topic), "topic%d", i % 7);
        DS_CHECK(ds_offsets_set(o, i % 2, topic, i, i * 10));
    }
    for (int i = 0; i < 100; i++) {
        snprintf(topic, sizeof(topic), "topic%d", i % 7);
        DS_CHECK_INT(ds_offsets_get(o, i % 2, topic, i), i * 10);
        DS_CHECK_INT(ds_offsets_get(o, 1 - i % 2, topic, i), DS_OFFSET_NONE);
    }
    ds_offsets_free(o);
}

static void test_out_of_range_database_is_refused(void)
{
    ds_offsets_t *o = ds_offsets_new(1);

    DS_CHECK(!ds_offsets_set(o, 1, "t", 0, 5));
    DS_CHECK(!ds_offsets_set(o, -1, "t", 0, 5));
    DS_CHECK_INT(ds_offsets_get(o, 3, "t", 0), DS_OFFSET_NONE);
    ds_offsets_free(o);
    ds_offsets_free(NULL);
}

/* A partition is this process's only while it holds a claim on it in every database. */
static void test_a_partition_is_owned_only_with_a_claim_in_every_database(void)
{
    ds_offsets_t *o = ds_offsets_new(2);

    DS_CHECK(!ds_offsets_owned(o, "t", 0));
    DS_CHECK(ds_offsets_set(o, 0, "t", 0, 10));
    DS_CHECK_INT(ds_offsets_generation(o, 0, "t", 0), DS_GENERATION_NONE);
    DS_CHECK(ds_offsets_set_generation(o, 0, "t", 0, 4));
    DS_CHECK(!ds_offsets_owned(o, "t", 0));
    DS_CHECK(ds_offsets_set_generation(o, 1, "t", 0, 1));
    DS_CHECK(ds_offsets_owned(o, "t", 0));
    /* Setting the offset (a reconnection re-reads it) keeps the claim. */
    DS_CHECK(ds_offsets_set(o, 1, "t", 0, 12));
    DS_CHECK_INT(ds_offsets_generation(o, 1, "t", 0), 1);
    /* A fence failed in database 1: lost, whatever database 0 says. */
    DS_CHECK(ds_offsets_set_generation(o, 1, "t", 0, DS_GENERATION_NONE));
    DS_CHECK(!ds_offsets_owned(o, "t", 0));
    ds_offsets_forget(o, "t", 0);
    DS_CHECK_INT(ds_offsets_generation(o, 0, "t", 0), DS_GENERATION_NONE);
    ds_offsets_free(o);
}

static void test_a_change_older_than_one_read_before_it_is_stale(void)
{
    ds_offsets_t *o = ds_offsets_new(2);
    ds_source_pos_t newest = {0, 0};

    /* The database that applied least stored the oldest position: reading starts there. */
    DS_CHECK(ds_offsets_set_position(o, 0, "t", 0, (ds_source_pos_t){200, 250}));
    DS_CHECK(ds_offsets_set_position(o, 1, "t", 0, (ds_source_pos_t){100, 150}));
    DS_CHECK(!ds_offsets_stale(o, "t", 0, (ds_source_pos_t){200, 250}, &newest));
    DS_CHECK(ds_offsets_stale(o, "t", 0, (ds_source_pos_t){100, 150}, &newest));
    DS_CHECK_INT((long long)newest.commit, 200);
    DS_CHECK_INT((long long)newest.lsn, 250);
    /* Same commit, earlier change: stale; the same position again: a copy applied again. */
    DS_CHECK(ds_offsets_stale(o, "t", 0, (ds_source_pos_t){200, 240}, &newest));
    DS_CHECK(!ds_offsets_stale(o, "t", 0, (ds_source_pos_t){200, 250}, &newest));
    /* An unknown position (no commit LSN) is never stale and moves nothing. */
    DS_CHECK(!ds_offsets_stale(o, "t", 0, (ds_source_pos_t){0, 10}, &newest));
    DS_CHECK(ds_offsets_stale(o, "t", 0, (ds_source_pos_t){200, 249}, &newest));
    /* Another partition keeps its own. */
    DS_CHECK(!ds_offsets_stale(o, "t", 1, (ds_source_pos_t){1, 1}, &newest));
    /* A new claim reads the stored positions again. */
    DS_CHECK(ds_offsets_set_position(o, 0, "t", 0, (ds_source_pos_t){300, 300}));
    DS_CHECK(ds_offsets_set_position(o, 1, "t", 0, (ds_source_pos_t){300, 300}));
    DS_CHECK(ds_offsets_stale(o, "t", 0, (ds_source_pos_t){200, 260}, &newest));
    DS_CHECK(!ds_offsets_stale(o, "t", 0, (ds_source_pos_t){300, 310}, &newest));
    ds_offsets_free(o);
}

int main(void)
{
    DS_RUN(test_nothing_stored_starts_at_the_beginning);
    DS_RUN(test_start_is_the_smallest_stored_offset);
    DS_RUN(test_a_database_without_a_row_sends_reading_to_the_beginning);
    DS_RUN(test_each_database_skips_only_what_it_has);
    DS_RUN(test_advance_never_moves_backward);
    DS_RUN(test_forget_drops_the_partition_everywhere);
    DS_RUN(test_many_partitions_keep_their_own_offsets);
    DS_RUN(test_out_of_range_database_is_refused);
    DS_RUN(test_a_partition_is_owned_only_with_a_claim_in_every_database);
    DS_RUN(test_a_change_older_than_one_read_before_it_is_stale);
    return ds_test_report();
}
