/*
 * topics.c: creates the topics dualsync writes and checks that they keep their history, with
 * librdkafka's admin API (CreateTopics, DescribeConfigs).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "dualsync/kafka.h"
#include "dualsync/kafka_props.h"
#include "dualsync/log.h"
#include "dualsync/topics.h"

struct ds_topics {
    rd_kafka_t *rk;               /* a producer-type client, used only for admin requests */
    rd_kafka_queue_t *queue;      /* where the admin results arrive */
    const ds_config_t *config;    /* borrowed: the "topics" section and the brokers */
};

/* Kafka's default max.message.bytes of a topic (the broker's message.max.bytes). */
#define KAFKA_DEFAULT_MAX_MESSAGE_BYTES 1048588

/* What the admin requests wait beyond their own timeout before giving up on the result. */
#define RESULT_GRACE_MS 5000

ds_topics_t *ds_topics_new(const ds_config_t *config, char *errstr, size_t errstr_size)
{
    ds_topics_t *topics = calloc(1, sizeof(*topics));
    ds_config_t *view = ds_kafka_config_view(config, DS_KAFKA_PRODUCER, "dualsync-admin");
    rd_kafka_conf_t *conf = NULL;
    char rderr[512];

    if (!topics || !view) {
        ds_fail(errstr, errstr_size, "out of memory creating the Kafka admin client");
        goto error;
    }
    topics->config = config;
    conf = rd_kafka_conf_new();
    /* Its metadata requests must never make the broker create a topic with its defaults. */
    if (!ds_kafka_conf_set(conf, "allow.auto.create.topics", "false", errstr, errstr_size) ||
        !ds_kafka_conf_set_file(conf, view, errstr, errstr_size))
        goto error;
    rd_kafka_conf_set_log_cb(conf, ds_kafka_log);
    topics->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rderr, sizeof(rderr));
    if (!topics->rk) {
        ds_fail(errstr, errstr_size, "cannot create the Kafka admin client: %s", rderr);
        goto error;
    }
    conf = NULL; /* owned by rk now */
    topics->queue = rd_kafka_queue_new(topics->rk);
    ds_kafka_config_view_free(view);
    return topics;

error:
    if (conf)
        rd_kafka_conf_destroy(conf);
    ds_kafka_config_view_free(view);
    ds_topics_free(topics);
    return NULL;
}

void ds_topics_free(ds_topics_t *topics)
{
    if (!topics)
        return;
    if (topics->queue)
        rd_kafka_queue_destroy(topics->queue);
    if (topics->rk)
        rd_kafka_destroy(topics->rk);
    free(topics);
}

/* The configured brokers, for messages. */
static const char *brokers(const ds_topics_t *topics)
{
    const char *b = ds_config_kafka_get(topics->config, "bootstrap.servers");

    return b ? b : "?";
}

/*
 * Waits for the result event of the request just sent; NULL with errstr set (naming the
 * brokers and @p what) when none came or the request as a whole failed.
 */
static rd_kafka_event_t *wait_result(ds_topics_t *topics, rd_kafka_event_type_t type,
                                     int timeout_ms, const char *what, char *errstr,
                                     size_t errstr_size)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(topics->queue, timeout_ms + RESULT_GRACE_MS);

    if (!ev) {
        ds_fail(errstr, errstr_size,
                "Kafka (%s) did not answer within %d ms when %s: start again once a broker is "
                "reachable",
                brokers(topics), timeout_ms, what);
        return NULL;
    }
    if (rd_kafka_event_type(ev) != type || rd_kafka_event_error(ev)) {
        ds_fail(errstr, errstr_size, "Kafka (%s) could not answer when %s: %s%s", brokers(topics),
                what,
                rd_kafka_event_error(ev) ? rd_kafka_event_error_string(ev) : "unexpected event",
                rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR__TIMED_OUT
                    ? "; start again once a broker is reachable"
                    : "");
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

static rd_kafka_AdminOptions_t *admin_options(ds_topics_t *topics, rd_kafka_admin_op_t op,
                                              int timeout_ms)
{
    rd_kafka_AdminOptions_t *options = rd_kafka_AdminOptions_new(topics->rk, op);
    char rderr[256];

    if (!options)
        return NULL;
    /* Neither fails for a positive timeout. */
    (void)rd_kafka_AdminOptions_set_request_timeout(options, timeout_ms, rderr, sizeof(rderr));
    if (op == RD_KAFKA_ADMIN_OP_CREATETOPICS)
        (void)rd_kafka_AdminOptions_set_operation_timeout(options, timeout_ms, rderr,
                                                          sizeof(rderr));
    return options;
}

/* "604800000 (7 days)": a retention in milliseconds as a person reads it. */
static void describe_ms(int64_t ms, char *buf, size_t size)
{
    if (ms >= 86400000 && ms % 86400000 == 0)
        snprintf(buf, size, "%" PRId64 " (%" PRId64 " day%s)", ms, ms / 86400000,
                 ms == 86400000 ? "" : "s");
    else if (ms >= 3600000 && ms % 3600000 == 0)
        snprintf(buf, size, "%" PRId64 " (%" PRId64 " hour%s)", ms, ms / 3600000,
                 ms == 3600000 ? "" : "s");
    else
        snprintf(buf, size, "%" PRId64, ms);
}

static int64_t entry_int(const rd_kafka_ConfigEntry_t *entry)
{
    const char *value = rd_kafka_ConfigEntry_value(entry);

    return value ? strtoll(value, NULL, 10) : 0;
}

/* Fills @p h from the settings the broker reported for its topic. */
static void read_history(const rd_kafka_ConfigResource_t *resource, ds_topic_history_t *h)
{
    const rd_kafka_ConfigEntry_t **entries;
    size_t count;
    char ms[64];

    h->exists = true;
    /* Kafka's defaults, in case an entry is missing. */
    snprintf(h->cleanup_policy, sizeof(h->cleanup_policy), "delete");
    h->retention_ms = 604800000;
    h->retention_bytes = -1;
    h->delete_retention_ms = 86400000;
    h->min_compaction_lag_ms = 0;
    entries = rd_kafka_ConfigResource_configs(resource, &count);
    for (size_t i = 0; i < count; i++) {
        const char *name = rd_kafka_ConfigEntry_name(entries[i]);
        const char *value = rd_kafka_ConfigEntry_value(entries[i]);

        if (strcmp(name, "cleanup.policy") == 0 && value)
            snprintf(h->cleanup_policy, sizeof(h->cleanup_policy), "%s", value);
        else if (strcmp(name, "retention.ms") == 0)
            h->retention_ms = entry_int(entries[i]);
        else if (strcmp(name, "retention.bytes") == 0)
            h->retention_bytes = entry_int(entries[i]);
        else if (strcmp(name, "delete.retention.ms") == 0)
            h->delete_retention_ms = entry_int(entries[i]);
        else if (strcmp(name, "min.compaction.lag.ms") == 0)
            h->min_compaction_lag_ms = entry_int(entries[i]);
    }
    /* Retention applies only with "delete" in the policy; compaction alone deletes no record
     * that is the latest of its key (tombstones aside). */
    h->keeps_history = !strstr(h->cleanup_policy, "delete") ||
                       (h->retention_ms == -1 && h->retention_bytes == -1);
    h->problem[0] = '\0';
    if (h->keeps_history)
        return;
    if (h->retention_ms != -1) {
        describe_ms(h->retention_ms, ms, sizeof(ms));
        snprintf(h->problem, sizeof(h->problem), "cleanup.policy=%s, retention.ms=%s",
                 h->cleanup_policy, ms);
    } else {
        snprintf(h->problem, sizeof(h->problem), "cleanup.policy=%s, retention.bytes=%" PRId64,
                 h->cleanup_policy, h->retention_bytes);
    }
}

bool ds_topics_check_history(ds_topics_t *topics, const char *const *names, int n,
                             int timeout_ms, ds_topic_history_t *out, char *errstr,
                             size_t errstr_size)
{
    rd_kafka_ConfigResource_t **resources = calloc((size_t)n + 1, sizeof(*resources));
    rd_kafka_AdminOptions_t *options = NULL;
    const rd_kafka_ConfigResource_t **results;
    rd_kafka_event_t *ev = NULL;
    size_t nresults;
    bool ok = false;

    if (!resources)
        return ds_fail(errstr, errstr_size, "out of memory describing topics");
    for (int i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        snprintf(out[i].topic, sizeof(out[i].topic), "%s", names[i]);
        if (!(resources[i] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, names[i]))) {
            ds_fail(errstr, errstr_size, "out of memory describing topic %s", names[i]);
            goto done;
        }
    }
    if (n == 0) {
        ok = true;
        goto done;
    }
    if (!(options = admin_options(topics, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, timeout_ms))) {
        ds_fail(errstr, errstr_size, "out of memory describing topics");
        goto done;
    }
    rd_kafka_DescribeConfigs(topics->rk, resources, (size_t)n, options, topics->queue);
    ev = wait_result(topics, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT, timeout_ms,
                     "describing the topics", errstr, errstr_size);
    if (!ev)
        goto done;
    results = rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev),
                                                        &nresults);
    for (size_t r = 0; r < nresults; r++) {
        const char *name = rd_kafka_ConfigResource_name(results[r]);
        rd_kafka_resp_err_t err = rd_kafka_ConfigResource_error(results[r]);
        int i;

        for (i = 0; i < n && strcmp(names[i], name) != 0; i++)
            ;
        if (i == n)
            continue;
        if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            continue; /* out[i].exists stays false */
        if (err) {
            const char *text = rd_kafka_ConfigResource_error_string(results[r]);

            /* Not fatal here: the topic may well exist; callers decide (capture warns, a
             * replay refuses). */
            out[i].exists = out[i].unreadable = true;
            snprintf(out[i].problem, sizeof(out[i].problem),
                     "its settings cannot be read: %s: %s", rd_kafka_err2name(err),
                     text ? text : rd_kafka_err2str(err));
            continue;
        }
        read_history(results[r], &out[i]);
    }
    ok = true;

done:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (options)
        rd_kafka_AdminOptions_destroy(options);
    for (int i = 0; i < n; i++) {
        if (resources[i])
            rd_kafka_ConfigResource_destroy(resources[i]);
    }
    free(resources);
    return ok;
}

void ds_topics_fix_command(const ds_topics_t *topics, const ds_topic_history_t *h,
                           ds_topic_kind_t kind, char *buf, size_t size)
{
    snprintf(buf, size,
             "kafka-configs.sh --bootstrap-server %s --alter --entity-type topics --entity-name "
             "%s --add-config %s",
             brokers(topics), h->topic,
             kind == DS_TOPIC_DEAD_LETTERS ? "retention.ms=-1,retention.bytes=-1"
                                           : "cleanup.policy=compact");
}

/* Sets one setting of a topic to create; false with errstr naming the topic and the setting. */
static bool set_topic_config(rd_kafka_NewTopic_t *nt, const char *topic, const char *name,
                             const char *value, char *errstr, size_t errstr_size)
{
    rd_kafka_resp_err_t err = rd_kafka_NewTopic_set_config(nt, name, value);

    if (err)
        return ds_fail(errstr, errstr_size, "topic %s: cannot set %s=%s: %s", topic, name, value,
                       rd_kafka_err2str(err));
    return true;
}

/* The settings a topic of @p kind is created with, as in topics.h; false with errstr set. */
static rd_kafka_NewTopic_t *new_topic(const ds_topics_t *topics, const char *name,
                                      ds_topic_kind_t kind, size_t max_message_bytes,
                                      char *errstr, size_t errstr_size)
{
    const ds_config_t *config = topics->config;
    char rderr[512], max_bytes[32];
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(name, kind == DS_TOPIC_TRANSACTIONS ? 1 : config->topics_partitions,
                              config->topics_replication_factor, rderr, sizeof(rderr));
    bool ok;

    if (!nt) {
        ds_fail(errstr, errstr_size, "topic %s: %s", name, rderr);
        return NULL;
    }
    /* A topic limit below the producer's would refuse messages the producer accepts. */
    snprintf(max_bytes, sizeof(max_bytes), "%zu",
             max_message_bytes > KAFKA_DEFAULT_MAX_MESSAGE_BYTES ? max_message_bytes
                                                                 : KAFKA_DEFAULT_MAX_MESSAGE_BYTES);
    ok = set_topic_config(nt, name, "max.message.bytes", max_bytes, errstr, errstr_size);
    if (kind == DS_TOPIC_DEAD_LETTERS) {
        ok = ok && set_topic_config(nt, name, "cleanup.policy", "delete", errstr, errstr_size) &&
             set_topic_config(nt, name, "retention.ms", "-1", errstr, errstr_size) &&
             set_topic_config(nt, name, "retention.bytes", "-1", errstr, errstr_size);
    } else if (kind == DS_TOPIC_TRANSACTIONS) {
        ok = ok && set_topic_config(nt, name, "cleanup.policy", "delete", errstr, errstr_size);
    } else {
        ok = ok && set_topic_config(nt, name, "cleanup.policy", config->topics_cleanup_policy,
                                    errstr, errstr_size);
    }
    /* The file's settings last: the broker takes the last value given for a name. */
    for (int i = 0; ok && i < config->ntopics_config; i++)
        ok = set_topic_config(nt, name, config->topics_config_names[i],
                              config->topics_config_values[i], errstr, errstr_size);
    if (!ok) {
        rd_kafka_NewTopic_destroy(nt);
        return NULL;
    }
    return nt;
}

/* Creates the @p n topics (missing ones); one already there (made meanwhile) is fine. */
static bool create_topics(ds_topics_t *topics, const char *const *names,
                          const ds_topic_kind_t *kinds, int n, size_t max_message_bytes,
                          int timeout_ms, bool *config_error, char *errstr, size_t errstr_size)
{
    rd_kafka_NewTopic_t **nts = calloc((size_t)n + 1, sizeof(*nts));
    rd_kafka_AdminOptions_t *options = NULL;
    const rd_kafka_topic_result_t **results;
    rd_kafka_event_t *ev = NULL;
    size_t nresults;
    bool ok = false;

    if (!nts)
        return ds_fail(errstr, errstr_size, "out of memory creating topics");
    for (int i = 0; i < n; i++) {
        if (!(nts[i] = new_topic(topics, names[i], kinds[i], max_message_bytes, errstr,
                                 errstr_size)))
            goto done;
    }
    if (!(options = admin_options(topics, RD_KAFKA_ADMIN_OP_CREATETOPICS, timeout_ms))) {
        ds_fail(errstr, errstr_size, "out of memory creating topics");
        goto done;
    }
    rd_kafka_CreateTopics(topics->rk, nts, (size_t)n, options, topics->queue);
    ev = wait_result(topics, RD_KAFKA_EVENT_CREATETOPICS_RESULT, timeout_ms, "creating topics",
                     errstr, errstr_size);
    if (!ev)
        goto done;
    results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev),
                                                  &nresults);
    for (size_t r = 0; r < nresults; r++) {
        const char *name = rd_kafka_topic_result_name(results[r]);
        rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[r]);
        const char *text = rd_kafka_topic_result_error_string(results[r]);
        int i;

        for (i = 0; i < n && strcmp(names[i], name) != 0; i++)
            ;
        if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            ds_info("topic %s was created meanwhile by someone else; it is left as it is", name);
            continue;
        }
        if (err) {
            *config_error = err == RD_KAFKA_RESP_ERR_INVALID_CONFIG ||
                            err == RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR ||
                            err == RD_KAFKA_RESP_ERR_INVALID_PARTITIONS ||
                            err == RD_KAFKA_RESP_ERR_POLICY_VIOLATION;
            ds_fail(errstr, errstr_size,
                    "cannot create topic %s (%d partitions, replication factor %d%s): %s: %s. "
                    "Fix the cause (the brokers' answer above: a replication factor above the "
                    "number of brokers, a topic setting the broker refuses in topics.config, a "
                    "missing CREATE permission), or create the topic yourself with "
                    "kafka-topics.sh --bootstrap-server %s --create --topic %s, then start again",
                    name, topics->config->topics_partitions,
                    topics->config->topics_replication_factor,
                    topics->config->topics_replication_factor == -1 ? ": the broker's default"
                                                                     : "",
                    rd_kafka_err2name(err), text ? text : rd_kafka_err2str(err), brokers(topics),
                    name);
            goto done;
        }
        if (i < n && kinds[i] == DS_TOPIC_TRANSACTIONS)
            ds_info("created topic %s: 1 partition, cleanup.policy=delete (the broker's "
                    "retention)",
                    name);
        else if (i < n && kinds[i] == DS_TOPIC_DEAD_LETTERS)
            ds_info("created topic %s: %d partitions, cleanup.policy=delete, retention.ms=-1, "
                    "retention.bytes=-1",
                    name, topics->config->topics_partitions);
        else if (i < n)
            ds_info("created topic %s: %d partitions, cleanup.policy=%s", name,
                    topics->config->topics_partitions, topics->config->topics_cleanup_policy);
    }
    ok = true;

done:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (options)
        rd_kafka_AdminOptions_destroy(options);
    for (int i = 0; i < n; i++) {
        if (nts[i])
            rd_kafka_NewTopic_destroy(nts[i]);
    }
    free(nts);
    return ok;
}

/* Logs the warning for a topic that deletes by time or size. */
static void warn_history(const ds_topics_t *topics, const ds_topic_history_t *h,
                         ds_topic_kind_t kind)
{
    char fix[768];

    if (h->unreadable) {
        ds_warning("topic %s: %s; whether it keeps its history is not checked (allow "
                   "DescribeConfigs on it to this client)",
                   h->topic, h->problem);
        return;
    }
    ds_topics_fix_command(topics, h, kind, fix, sizeof(fix));
    if (kind == DS_TOPIC_DEAD_LETTERS)
        ds_warning("dead-letter topic %s deletes by time or size (%s): dead letters older than "
                   "that are lost before anyone retries them; fix: %s",
                   h->topic, h->problem, fix);
    else
        ds_warning("topic %s deletes by time or size (%s): its history is then not replayable "
                   "(a replay cannot rebuild rows whose changes were deleted); fix: %s",
                   h->topic, h->problem, fix);
}

bool ds_topics_ensure(ds_topics_t *topics, const char *const *names, const ds_topic_kind_t *kinds,
                      int n, size_t max_message_bytes, int timeout_ms, bool *config_error,
                      char *errstr, size_t errstr_size)
{
    bool refused = false;
    ds_topic_history_t *history = calloc((size_t)n + 1, sizeof(*history));
    const char **missing = calloc((size_t)n + 1, sizeof(*missing));
    ds_topic_kind_t *missing_kinds = calloc((size_t)n + 1, sizeof(*missing_kinds));
    int nmissing = 0;
    bool ok = false;

    if (!history || !missing || !missing_kinds) {
        ds_fail(errstr, errstr_size, "out of memory checking topics");
        goto done;
    }
    if (!ds_topics_check_history(topics, names, n, timeout_ms, history, errstr, errstr_size))
        goto done;
    for (int i = 0; i < n; i++) {
        if (!history[i].exists) {
            missing[nmissing] = names[i];
            missing_kinds[nmissing++] = kinds[i];
        }
    }
    if (nmissing > 0) {
        if (!create_topics(topics, missing, missing_kinds, nmissing, max_message_bytes,
                           timeout_ms, &refused, errstr, errstr_size))
            goto done;
        /* What the broker made of them (topics.config may hold a retention, or the topic
         * existed already), checked like the others. */
        if (!ds_topics_check_history(topics, names, n, timeout_ms, history, errstr, errstr_size))
            goto done;
    }
    for (int i = 0; i < n; i++) {
        /* The transaction topic is meant to expire: no replay reads it. */
        if (history[i].exists && !history[i].keeps_history && kinds[i] != DS_TOPIC_TRANSACTIONS)
            warn_history(topics, &history[i], kinds[i]);
    }
    ok = true;

done:
    if (config_error)
        *config_error = refused;
    free(history);
    free(missing);
    free(missing_kinds);
    return ok;
}

bool ds_topics_delete(ds_topics_t *topics, const char *const *names, int n, int timeout_ms,
                      int *deleted, char *errstr, size_t errstr_size)
{
    rd_kafka_DeleteTopic_t **dts = calloc((size_t)n + 1, sizeof(*dts));
    rd_kafka_AdminOptions_t *options = NULL;
    const rd_kafka_topic_result_t **results;
    rd_kafka_event_t *ev = NULL;
    size_t nresults;
    bool ok = false;

    if (deleted)
        *deleted = 0;
    if (!dts)
        return ds_fail(errstr, errstr_size, "out of memory deleting topics");
    if (n == 0) {
        free(dts);
        return true;
    }
    for (int i = 0; i < n; i++) {
        if (!(dts[i] = rd_kafka_DeleteTopic_new(names[i]))) {
            ds_fail(errstr, errstr_size, "out of memory deleting topics");
            goto done;
        }
    }
    if (!(options = admin_options(topics, RD_KAFKA_ADMIN_OP_DELETETOPICS, timeout_ms))) {
        ds_fail(errstr, errstr_size, "out of memory deleting topics");
        goto done;
    }
    rd_kafka_DeleteTopics(topics->rk, dts, (size_t)n, options, topics->queue);
    ev = wait_result(topics, RD_KAFKA_EVENT_DELETETOPICS_RESULT, timeout_ms, "deleting topics",
                     errstr, errstr_size);
    if (!ev)
        goto done;
    results = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev),
                                                  &nresults);
    for (size_t r = 0; r < nresults; r++) {
        const char *name = rd_kafka_topic_result_name(results[r]);
        rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[r]);
        const char *text = rd_kafka_topic_result_error_string(results[r]);

        if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            continue;
        if (err) {
            ds_fail(errstr, errstr_size,
                    "cannot delete topic %s: %s: %s. Give the user DELETE permission on it (and "
                    "check the brokers' delete.topic.enable), or delete it with kafka-topics.sh "
                    "--bootstrap-server %s --delete --topic %s",
                    name, rd_kafka_err2name(err), text ? text : rd_kafka_err2str(err),
                    brokers(topics), name);
            goto done;
        }
        if (deleted)
            (*deleted)++;
        ds_info("deleted topic %s", name);
    }
    ok = true;

done:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (options)
        rd_kafka_AdminOptions_destroy(options);
    for (int i = 0; i < n; i++) {
        if (dts[i])
            rd_kafka_DeleteTopic_destroy(dts[i]);
    }
    free(dts);
    return ok;
}
