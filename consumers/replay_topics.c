/*
 * replay_topics.c: whether the change topics can rebuild the current state (replay_internal.h).
 *
 * A topic rebuilds the current state when it still holds, for every source row, its latest
 * change: a compacted topic keeps that by design; a topic that deletes by time (the broker's
 * default, cleanup.policy=delete, retention.ms 7 days) lost the older rows once its first
 * offset moved past 0. The check reads each partition's earliest offset (the low watermark)
 * and the topic's retention settings (DescribeConfigs).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "dualsync/consumer.h"
#include "dualsync/kafka.h"
#include "dualsync/log.h"
#include "replay_internal.h"

#define ADMIN_TIMEOUT_MS 15000

/* Reads cleanup.policy, retention.ms and delete.retention.ms of every topic. */
static bool describe(const ds_config_t *config, ds_replay_topic_t *topics, int ntopics,
                     char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    rd_kafka_ConfigResource_t **res = calloc((size_t)ntopics + 1, sizeof(*res));
    rd_kafka_queue_t *queue = NULL;
    rd_kafka_AdminOptions_t *options = NULL;
    rd_kafka_event_t *ev = NULL;
    char rderr[512];
    bool ok = false;

    if (!res || !conf || !ds_kafka_conf_set_file(conf, config, errstr, errstr_size)) {
        free(res);
        if (conf)
            rd_kafka_conf_destroy(conf);
        return res ? false : ds_fail(errstr, errstr_size, "out of memory");
    }
    rd_kafka_conf_set_log_cb(conf, ds_kafka_log);
    if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rderr, sizeof(rderr)))) {
        rd_kafka_conf_destroy(conf);
        free(res);
        return ds_fail(errstr, errstr_size, "cannot create a Kafka client: %s", rderr);
    }
    queue = rd_kafka_queue_new(rk);
    options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_AdminOptions_set_request_timeout(options, ADMIN_TIMEOUT_MS, rderr, sizeof(rderr));
    for (int i = 0; i < ntopics; i++)
        res[i] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topics[i].topic);
    rd_kafka_DescribeConfigs(rk, res, (size_t)ntopics, options, queue);
    ev = rd_kafka_queue_poll(queue, ADMIN_TIMEOUT_MS + 5000);
    if (!ev) {
        ds_fail(errstr, errstr_size, "Kafka did not describe the topics' settings within %d s",
                (ADMIN_TIMEOUT_MS + 5000) / 1000);
        goto done;
    }
    if (rd_kafka_event_error(ev)) {
        ds_fail(errstr, errstr_size, "cannot read the topics' settings: %s",
                rd_kafka_event_error_string(ev));
        goto done;
    }
    {
        const rd_kafka_DescribeConfigs_result_t *result = rd_kafka_event_DescribeConfigs_result(ev);
        size_t nres = 0;
        const rd_kafka_ConfigResource_t **described =
            rd_kafka_DescribeConfigs_result_resources(result, &nres);

        for (size_t i = 0; i < nres; i++) {
            const char *name = rd_kafka_ConfigResource_name(described[i]);
            ds_replay_topic_t *t = NULL;
            const rd_kafka_ConfigEntry_t **entries;
            size_t nentries = 0;

            for (int k = 0; k < ntopics && !t; k++) {
                if (strcmp(topics[k].topic, name) == 0)
                    t = &topics[k];
            }
            if (!t)
                continue;
            if (rd_kafka_ConfigResource_error(described[i])) {
                ds_fail(errstr, errstr_size, "cannot read the settings of topic %s: %s", name,
                        rd_kafka_ConfigResource_error_string(described[i]));
                goto done;
            }
            entries = rd_kafka_ConfigResource_configs(described[i], &nentries);
            for (size_t e = 0; e < nentries; e++) {
                const char *key = rd_kafka_ConfigEntry_name(entries[e]);
                const char *value = rd_kafka_ConfigEntry_value(entries[e]);

                if (!value)
                    continue;
                if (strcmp(key, "cleanup.policy") == 0)
                    snprintf(t->cleanup_policy, sizeof(t->cleanup_policy), "%s", value);
                else if (strcmp(key, "retention.ms") == 0)
                    t->retention_ms = strtoll(value, NULL, 10);
                else if (strcmp(key, "delete.retention.ms") == 0)
                    t->delete_retention_ms = strtoll(value, NULL, 10);
            }
        }
    }
    ok = true;
done:
    if (ev)
        rd_kafka_event_destroy(ev);
    for (int i = 0; i < ntopics; i++) {
        if (res[i])
            rd_kafka_ConfigResource_destroy(res[i]);
    }
    free(res);
    if (options)
        rd_kafka_AdminOptions_destroy(options);
    if (queue)
        rd_kafka_queue_destroy(queue);
    rd_kafka_destroy(rk);
    return ok;
}

/* The source table a topic carries ("<topic_prefix>.<schema>.<table>"), for the fix. */
static const char *source_of(const ds_config_t *config, const char *topic)
{
    size_t len = strlen(config->topic_prefix);

    if (strncmp(topic, config->topic_prefix, len) == 0 && topic[len] == '.')
        return topic + len + 1;
    return topic;
}

bool ds_replay_check_topics(const ds_config_t *config, ds_mapping_set_t *set,
                            ds_replay_topic_t **topics, int *ntopics, char *errstr,
                            size_t errstr_size)
{
    int n = ds_mapping_set_ntopics(set);
    ds_replay_topic_t *t = calloc((size_t)n + 1, sizeof(*t));
    ds_consumer_t *consumer;
    bool ok = false;

    *topics = NULL;
    *ntopics = 0;
    if (!t)
        return ds_fail(errstr, errstr_size, "out of memory");
    for (int i = 0; i < n; i++) {
        t[i].topic = ds_mapping_set_topic(set, i);
        t[i].retention_ms = -1;
        t[i].delete_retention_ms = -1;
    }
    if (!describe(config, t, n, errstr, errstr_size)) {
        free(t);
        return false;
    }
    consumer = ds_consumer_new(config, NULL, NULL, NULL, NULL, errstr, errstr_size);
    if (!consumer) {
        free(t);
        return false;
    }
    for (int i = 0; i < n; i++) {
        ds_topic_partition_t *end = NULL;
        int64_t *low = NULL;
        int nend = 0;
        bool by_time = strstr(t[i].cleanup_policy, "delete") != NULL;

        if (!ds_consumer_end_offsets(consumer, t[i].topic, 10000, &end, &low, &nend, errstr,
                                     errstr_size))
            goto done;
        for (int p = 0; p < nend; p++) {
            if (low[p] > 0) {
                ds_fail(errstr, errstr_size,
                        "topic %s [%d] starts at offset %" PRId64 ": its first %" PRId64
                        " messages were deleted (cleanup.policy=%s, retention.ms=%" PRId64
                        "), so it cannot rebuild the current rows of %s: replay needs every "
                        "row's latest change from offset 0. Make the topic keep history "
                        "(cleanup.policy=compact), and re-emit the table's current rows with "
                        "`dualsync backfill --table %s` into topics that start at 0 (a new "
                        "topic_prefix for capture, apply and replay)",
                        t[i].topic, (int)end[p].partition, low[p], low[p],
                        t[i].cleanup_policy[0] ? t[i].cleanup_policy : "?", t[i].retention_ms,
                        source_of(config, t[i].topic), source_of(config, t[i].topic));
                free(end);
                free(low);
                goto done;
            }
        }
        free(end);
        free(low);
        if (by_time)
            ds_warning("topic %s deletes by time (cleanup.policy=%s, retention.ms=%" PRId64
                       "): it still holds its whole history, but will not once retention "
                       "starts deleting; make it compacted to keep replays possible",
                       t[i].topic, t[i].cleanup_policy, t[i].retention_ms);
    }
    ok = true;
done:
    ds_consumer_free(consumer);
    if (ok) {
        *topics = t;
        *ntopics = n;
    } else {
        free(t);
    }
    return ok;
}
