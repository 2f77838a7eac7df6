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


#include "dualsync/consumer.h"
#include "dualsync/log.h"
#include "dualsync/topics.h"
#include "replay_internal.h"

#define ADMIN_TIMEOUT_MS 15000

/* Reads cleanup.policy, retention.ms and delete.retention.ms of every topic (topics.h). */
static bool describe(const ds_config_t *config, ds_replay_topic_t *topics, int ntopics,
                     char *errstr, size_t errstr_size)
{
    ds_topics_t *admin = ds_topics_new(config, errstr, errstr_size);
    ds_topic_history_t *h = calloc((size_t)ntopics + 1, sizeof(*h));
    const char **names = calloc((size_t)ntopics + 1, sizeof(*names));
    bool ok = false;

    if (!admin || !h || !names) {
        if (admin)
            ds_fail(errstr, errstr_size, "out of memory");
        goto done;
    }
    for (int i = 0; i < ntopics; i++)
        names[i] = topics[i].topic;
    if (!ds_topics_check_history(admin, names, ntopics, ADMIN_TIMEOUT_MS, h, errstr, errstr_size))
        goto done;
    for (int i = 0; i < ntopics; i++) {
        if (!h[i].exists || h[i].unreadable) {
            ds_fail(errstr, errstr_size, "cannot read the settings of topic %s: %s",
                    topics[i].topic, h[i].unreadable ? h[i].problem : "no such topic");
            goto done;
        }
        snprintf(topics[i].cleanup_policy, sizeof(topics[i].cleanup_policy), "%s",
                 h[i].cleanup_policy);
        topics[i].retention_ms = h[i].retention_ms;
        topics[i].delete_retention_ms = h[i].delete_retention_ms;
    }
    ok = true;
done:
    free(names);
    free(h);
    ds_topics_free(admin);
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
