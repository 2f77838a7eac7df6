/*
 * test_apply_support.c: apply's small helpers: the string set, and which shared Kafka
 * properties reach the consumer and which the producers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualsync/kafka_props.h"
#include "dualsync/strset.h"
#include "ds_test.h"

static void test_strset_holds_bytes_not_c_strings(void)
{
    ds_strset_t *set = ds_strset_new();

    DS_CHECK(ds_strset_add(set,
                           "a\x1f"
                           "b",
                           3));
    DS_CHECK(ds_strset_add(set, "a\0b", 3)); /* a NUL inside is part of the key */
    DS_CHECK(ds_strset_contains(set,
                                "a\x1f"
                                "b",
                                3));
    DS_CHECK(ds_strset_contains(set, "a\0b", 3));
    DS_CHECK(!ds_strset_contains(set, "a", 1));
    DS_CHECK_INT(ds_strset_count(set), 2);
    DS_CHECK(ds_strset_add(set, "a\0b", 3)); /* again: no duplicate */
    DS_CHECK_INT(ds_strset_count(set), 2);
    DS_CHECK(ds_strset_remove(set, "a\0b", 3));
    DS_CHECK(!ds_strset_remove(set, "a\0b", 3));
    DS_CHECK_INT(ds_strset_count(set), 1);
    ds_strset_free(set);
    ds_strset_free(NULL);
}

static void test_strset_add_new_says_whether_it_added(void)
{
    ds_strset_t *set = ds_strset_new();

    DS_CHECK(!ds_strset_contains(set, "", 0)); /* empty set */
    DS_CHECK_INT(ds_strset_add_new(set, "k\0x", 3), 1);
    DS_CHECK_INT(ds_strset_add_new(set, "k\0x", 3), 0);
    DS_CHECK_INT(ds_strset_add_new(set, "k", 1), 1);
    DS_CHECK_INT(ds_strset_count(set), 2);
    DS_CHECK(ds_strset_remove(set, "k\0x", 3));
    DS_CHECK_INT(ds_strset_add_new(set, "k\0x", 3), 1);
    ds_strset_clear(set);
    DS_CHECK(!ds_strset_contains(set, "k", 1));
    DS_CHECK_INT(ds_strset_add_new(set, "k", 1), 1);
    ds_strset_free(set);
}

static void test_strset_grows_and_clears(void)
{
    ds_strset_t *set = ds_strset_new();
    char key[32];

    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "users/doctors\x1f%d", i);
        DS_CHECK(ds_strset_add(set, key, strlen(key)));
    }
    DS_CHECK_INT(ds_strset_count(set), 5000);
    for (int i = 0; i < 5000; i += 499) {
        snprintf(key, sizeof(key), "users/doctors\x1f%d", i);
        DS_CHECK(ds_strset_contains(set, key, strlen(key)));
    }
    DS_CHECK(!ds_strset_contains(set,
                                 "users/doctors\x1f"
                                 "5000",
                                 18));
    ds_strset_clear(set);
    DS_CHECK_INT(ds_strset_count(set), 0);
    DS_CHECK(!ds_strset_contains(set,
                                 "users/doctors\x1f"
                                 "1",
                                 15));
    DS_CHECK(ds_strset_add(set, "x", 1));
    ds_strset_free(set);
}

static void test_property_sides_follow_librdkafka(void)
{
    DS_CHECK(ds_kafka_property_applies("linger.ms", DS_KAFKA_PRODUCER));
    DS_CHECK(!ds_kafka_property_applies("linger.ms", DS_KAFKA_CONSUMER));
    DS_CHECK(!ds_kafka_property_applies("acks", DS_KAFKA_CONSUMER));
    DS_CHECK(ds_kafka_property_applies("fetch.min.bytes", DS_KAFKA_CONSUMER));
    DS_CHECK(!ds_kafka_property_applies("fetch.min.bytes", DS_KAFKA_PRODUCER));
    DS_CHECK(!ds_kafka_property_applies("session.timeout.ms", DS_KAFKA_PRODUCER));
    /* Both sides. */
    DS_CHECK(ds_kafka_property_applies("bootstrap.servers", DS_KAFKA_PRODUCER));
    DS_CHECK(ds_kafka_property_applies("bootstrap.servers", DS_KAFKA_CONSUMER));
    DS_CHECK(ds_kafka_property_applies("security.protocol", DS_KAFKA_CONSUMER));
    /* Unknown names are kept: librdkafka reports the typo itself. */
    DS_CHECK(ds_kafka_property_applies("lingr.ms", DS_KAFKA_CONSUMER));
}

static void test_config_view_keeps_each_side_its_properties(void)
{
    char *names[] = {"bootstrap.servers", "linger.ms", "fetch.min.bytes", "client.id", NULL};
    char *values[] = {"k:9092", "5", "1000", "mine", NULL};
    ds_config_t config;
    ds_config_t *producer, *consumer;

    memset(&config, 0, sizeof(config));
    config.kafka_names = names;
    config.kafka_values = values;
    config.nkafka = 4;
    config.topic_prefix = "clinic";
    producer = ds_kafka_config_view(&config, DS_KAFKA_PRODUCER, "dualsync-apply-dlq");
    consumer = ds_kafka_config_view(&config, DS_KAFKA_CONSUMER, "dualsync-apply");
    DS_CHECK(producer && consumer);
    if (producer && consumer) {
        DS_CHECK_INT(producer->nkafka, 3);
        DS_CHECK_STR(ds_config_kafka_get(producer, "linger.ms"), "5");
        DS_CHECK(ds_config_kafka_get(producer, "fetch.min.bytes") == NULL);
        DS_CHECK_INT(consumer->nkafka, 3);
        DS_CHECK_STR(ds_config_kafka_get(consumer, "fetch.min.bytes"), "1000");
        DS_CHECK(ds_config_kafka_get(consumer, "linger.ms") == NULL);
        /* The file's client.id wins over the default. */
        DS_CHECK_STR(ds_config_kafka_get(consumer, "client.id"), "mine");
        DS_CHECK_STR(consumer->topic_prefix, "clinic");
    }
    ds_kafka_config_view_free(producer);
    ds_kafka_config_view_free(consumer);
    /* Without a client.id in the file, the default is added. */
    config.nkafka = 3;
    consumer = ds_kafka_config_view(&config, DS_KAFKA_CONSUMER, "dualsync-apply");
    DS_CHECK(consumer && consumer->nkafka == 3);
    if (consumer)
        DS_CHECK_STR(ds_config_kafka_get(consumer, "client.id"), "dualsync-apply");
    ds_kafka_config_view_free(consumer);
    ds_kafka_config_view_free(NULL);
}

int main(void)
{
    DS_RUN(test_strset_holds_bytes_not_c_strings);
    DS_RUN(test_strset_add_new_says_whether_it_added);
    DS_RUN(test_strset_grows_and_clears);
    DS_RUN(test_property_sides_follow_librdkafka);
    DS_RUN(test_config_view_keeps_each_side_its_properties);
    return ds_test_report();
}
