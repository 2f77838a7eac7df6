/*
 * test_apply_batch.c: a batch's bookkeeping: the partitions and offset ranges it covers, the
 * copies of the writes, the source of a re-driven dead letter, dropping a revoked partition.
 */
#include <stdlib.h>
#include <string.h>

#include "dualsync/batch.h"
#include "ds_test.h"

/* A message as the consumer hands it out, without a librdkafka handle. */
static ds_kafka_msg_t message(const char *topic, int32_t partition, int64_t offset, const char *key,
                              const char *value)
{
    ds_kafka_msg_t m;

    memset(&m, 0, sizeof(m));
    m.topic = topic;
    m.partition = partition;
    m.offset = offset;
    m.key = key;
    m.key_len = key ? strlen(key) : 0;
    m.value = value;
    m.value_len = value ? strlen(value) : 0;
    return m;
}

static void add(ds_batch_t *b, const char *topic, int32_t partition, int64_t offset)
{
    ds_kafka_msg_t m = message(topic, partition, offset, "{\"id\":1}", "{}");

    DS_CHECK(ds_batch_add(b, &m) != NULL);
}

static const ds_batch_partition_t *find(const ds_batch_t *b, const char *topic, int32_t partition)
{
    for (int i = 0; i < ds_batch_npartitions(b); i++) {
        const ds_batch_partition_t *p = ds_batch_partition(b, i);

        if (p->partition == partition && strcmp(p->topic, topic) == 0)
            return p;
    }
    return NULL;
}

static void test_empty_batch_covers_nothing(void)
{
    ds_batch_t *b = ds_batch_new();

    DS_CHECK_INT(ds_batch_count(b), 0);
    DS_CHECK_INT(ds_batch_npartitions(b), 0);
    DS_CHECK_INT(ds_batch_started_us(b), 0);
    ds_batch_free(b);
    ds_batch_free(NULL);
}

static void test_partitions_track_first_and_last_offset(void)
{
    ds_batch_t *b = ds_batch_new();
    const ds_batch_partition_t *p;

    add(b, "users", 0, 10);
    add(b, "users", 1, 4);
    add(b, "users", 0, 11);
    add(b, "orders", 0, 7);
    add(b, "users", 0, 12);
    DS_CHECK_INT(ds_batch_count(b), 5);
    DS_CHECK_INT(ds_batch_npartitions(b), 3);
    DS_CHECK(ds_batch_started_us(b) > 0);
    p = find(b, "users", 0);
    DS_CHECK(p && p->first_offset == 10 && p->last_offset == 12);
    p = find(b, "users", 1);
    DS_CHECK(p && p->first_offset == 4 && p->last_offset == 4);
    /* Same partition number, other topic: its own entry. */
    p = find(b, "orders", 0);
    DS_CHECK(p && p->first_offset == 7 && p->last_offset == 7);
    ds_batch_free(b);
}

static void test_message_starts_as_its_own_change(void)
{
    ds_batch_t *b = ds_batch_new();
    ds_kafka_msg_t km = message("users", 2, 99, "{\"id\":5}", "{\"op\":\"c\"}");
    ds_batch_msg_t *m = ds_batch_add(b, &km);

    DS_CHECK(m != NULL);
    DS_CHECK(km.handle == NULL); /* taken */
    DS_CHECK_STR(m->topic, "users");
    DS_CHECK_INT(m->partition, 2);
    DS_CHECK_INT(m->offset, 99);
    DS_CHECK(m->key_len == 8 && memcmp(m->key, "{\"id\":5}", 8) == 0);
    DS_CHECK(m->value_len == 10 && memcmp(m->value_text, "{\"op\":\"c\"}", 10) == 0);
    DS_CHECK(m->only_target == NULL && !m->skip && !m->error && m->nwrites == 0);
    ds_batch_free(b);
}

static void test_dead_letter_source_is_copied(void)
{
    ds_batch_t *b = ds_batch_new();
    ds_kafka_msg_t km = message("clinic.dlq", 0, 3, "{\"id\":5}", "{...}");
    ds_batch_msg_t *m = ds_batch_add(b, &km);
    char key[] = "{\"id\":5}", value[] = "{\"after\":{}}", target[] = "users/doctors";

    DS_CHECK(ds_batch_set_source(m, "clinic.public.users", 4, 1234, key, strlen(key), value,
                                 strlen(value), target));
    /* The caller's buffers may go: the batch holds copies. */
    memset(key, 'x', sizeof(key) - 1);
    memset(value, 'x', sizeof(value) - 1);
    memset(target, 'x', sizeof(target) - 1);
    DS_CHECK_STR(m->topic, "clinic.public.users");
    DS_CHECK_INT(m->partition, 4);
    DS_CHECK_INT(m->offset, 1234);
    DS_CHECK_STR(m->key, "{\"id\":5}");
    DS_CHECK_STR(m->value_text, "{\"after\":{}}");
    DS_CHECK_STR(m->only_target, "users/doctors");
    /* The offsets still count where it was read. */
    DS_CHECK_STR(m->kafka.topic, "clinic.dlq");
    DS_CHECK_INT(m->kafka.offset, 3);
    DS_CHECK(find(b, "clinic.dlq", 0) != NULL);
    DS_CHECK(find(b, "clinic.public.users", 4) == NULL);
    /* A tombstone and no target. */
    DS_CHECK(ds_batch_set_source(m, "t", 0, 1, NULL, 0, NULL, 0, NULL));
    DS_CHECK(m->key == NULL && m->value_text == NULL && m->only_target == NULL);
    ds_batch_free(b);
}

static void test_writes_are_copied_with_their_nulls(void)
{
    ds_batch_t *b = ds_batch_new();
    ds_kafka_msg_t km = message("users", 0, 1, "{\"id\":1}", "{}");
    ds_batch_msg_t *m = ds_batch_add(b, &km);
    ds_target_t target = {.id = "users/doctors", .connection = "clinic"};
    char p0[] = "users/doctors", p2[] = "Ann";
    const char *params[3] = {p0, NULL, p2};
    ds_target_write_t w[2] = {
        {.target = &target, .kind = DS_WRITE_UPSERT, .nparams = 3, .params = params},
        {.target = &target, .kind = DS_WRITE_UNLINK, .nparams = 1, .params = params},
    };
    ds_write_list_t list = {.nwrites = 2, .writes = w};

    DS_CHECK(ds_batch_set_writes(m, &list));
    memset(p2, 'x', 3); /* the evaluator reuses its buffers */
    DS_CHECK_INT(m->nwrites, 2);
    DS_CHECK(m->writes[0].target == &target);
    DS_CHECK_INT(m->writes[0].kind, DS_WRITE_UPSERT);
    DS_CHECK_INT(m->writes[0].nparams, 3);
    DS_CHECK_STR(m->writes[0].params[0], "users/doctors");
    DS_CHECK(m->writes[0].params[1] == NULL);
    DS_CHECK_STR(m->writes[0].params[2], "Ann");
    DS_CHECK_INT(m->writes[1].kind, DS_WRITE_UNLINK);
    /* A dead letter has no writes. */
    DS_CHECK(ds_batch_set_error(m, "value \"X\" is not mapped"));
    DS_CHECK_STR(m->error, "value \"X\" is not mapped");
    DS_CHECK_INT(m->nwrites, 0);
    DS_CHECK(m->writes == NULL);
    ds_batch_free(b);
}

static void test_dropping_a_revoked_partition_keeps_the_rest(void)
{
    ds_batch_t *b = ds_batch_new();

    add(b, "users", 0, 10);
    add(b, "users", 1, 20);
    add(b, "users", 0, 11);
    add(b, "users", 1, 21);
    DS_CHECK_INT(ds_batch_drop_partition(b, "users", 0), 2);
    DS_CHECK_INT(ds_batch_count(b), 2);
    DS_CHECK_INT(ds_batch_npartitions(b), 1);
    DS_CHECK(find(b, "users", 0) == NULL);
    DS_CHECK(find(b, "users", 1) && find(b, "users", 1)->first_offset == 20 &&
             find(b, "users", 1)->last_offset == 21);
    DS_CHECK_INT(ds_batch_at(b, 0)->offset, 20);
    DS_CHECK_INT(ds_batch_at(b, 1)->offset, 21);
    DS_CHECK_INT(ds_batch_drop_partition(b, "users", 1), 2);
    DS_CHECK_INT(ds_batch_count(b), 0);
    DS_CHECK_INT(ds_batch_started_us(b), 0);
    DS_CHECK_INT(ds_batch_drop_partition(b, "users", 1), 0);
    ds_batch_free(b);
}

static void test_clear_empties_for_the_next_batch(void)
{
    ds_batch_t *b = ds_batch_new();

    for (int i = 0; i < 1000; i++)
        add(b, "users", i % 3, i);
    DS_CHECK_INT(ds_batch_count(b), 1000);
    ds_batch_clear(b);
    DS_CHECK_INT(ds_batch_count(b), 0);
    DS_CHECK_INT(ds_batch_npartitions(b), 0);
    add(b, "users", 0, 1000);
    DS_CHECK_INT(ds_batch_count(b), 1);
    DS_CHECK(find(b, "users", 0)->first_offset == 1000);
    ds_batch_free(b);
}

int main(void)
{
    DS_RUN(test_empty_batch_covers_nothing);
    DS_RUN(test_partitions_track_first_and_last_offset);
    DS_RUN(test_message_starts_as_its_own_change);
    DS_RUN(test_dead_letter_source_is_copied);
    DS_RUN(test_writes_are_copied_with_their_nulls);
    DS_RUN(test_dropping_a_revoked_partition_keeps_the_rest);
    DS_RUN(test_clear_empties_for_the_next_batch);
    return ds_test_report();
}
