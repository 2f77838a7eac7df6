/*
 * consumer.c: librdkafka high-level consumer: group membership, rebalances, polling, commits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "dualsync/consumer.h"
#include "dualsync/kafka_props.h"
#include "dualsync/kafka.h"
#include "dualsync/log.h"

struct ds_consumer {
    rd_kafka_t *rk;               /* the client */
    bool subscribed;              /* a group member (closing leaves the group) */
    ds_consumer_assign_fn assign; /* rebalance hooks, NULL for a reader */
    ds_consumer_revoke_fn revoke;
    void *hook_ctx;
    char failed[1024]; /* a fatal error seen in a callback; the next poll says it */
    bool brokers_down;     /* every broker is down: the outage was logged, not its end */
    int64_t down_since_us; /* when that was logged */
    int64_t last_probe_us; /* the last metadata request that looked for a broker */
    bool instance_fenced; /* that error: another member took this one's group.instance.id */
    char *group_id;       /* the group and the static member id, for messages (NULL: none) */
    char *instance_id;
};

/* Between two metadata requests of an idle group member or of any consumer during an outage
 * (each blocks the poll up to PROBE_TIMEOUT_MS): see probe_brokers(). */
#define PROBE_INTERVAL_US (5 * 1000000)
#define PROBE_TIMEOUT_MS  1000

/* Consumer settings the exactly-once bookkeeping relies on; the file may not change them. */
static const struct {
    const char *name;
    const char *value; /* NULL: set from another setting */
    const char *why;
    const char *fix; /* what to do instead */
} consumer_locked[] = {
    {"enable.auto.commit", "false", "offsets are committed after the target databases commit",
     "remove it"},
    {"enable.auto.offset.store", "false", "offsets are stored only for applied batches",
     "remove it"},
    {"isolation.level", "read_committed", "aborted transactional messages must not be applied",
     "remove it"},
    {"auto.offset.reset", "earliest", "a partition with nothing stored starts at its beginning",
     "remove it"},
    {"group.id", NULL, "the group is apply.group_id", "set apply.group_id instead"},
    {"group.instance.id", NULL,
     "each process's static membership id is apply.instance_id, which also names its "
     "replication origin",
     "set apply.instance_id instead"},
};

/* Consumer defaults the file may change. */
static const struct {
    const char *name;
    const char *value;
} consumer_defaults[] = {
    /* A mapped table's topic may appear after apply starts (capture creates it): look for
     * it every 10 s rather than librdkafka's 5 minutes. */
    {"topic.metadata.refresh.interval.ms", "10000"},
    /* Several apply processes share a group: a member joining or leaving moves only the
     * partitions that change hands, and the others keep applying meanwhile (the rebalance
     * hooks use incremental assign and unassign under this protocol). */
    {"partition.assignment.strategy", "cooperative-sticky"},
    /* librdkafka prefetches up to 64 MB per partition by default; apply takes at most
     * apply.batch_max_messages at a time, and 16 MB (tens of thousands of changes) keeps the
     * next batches ready while keeping a backlog from filling apply's memory. */
    {"queued.max.messages.kbytes", "16384"},
};

/* Records the client's fatal error (librdkafka says it through error_cb or as a message,
 * whichever comes first) as the consumer's failure. */
static void note_fatal(ds_consumer_t *consumer, rd_kafka_t *rk)
{
    char fatal_reason[512];
    rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, fatal_reason, sizeof(fatal_reason));

    if (consumer->failed[0])
        return;
    if (orig == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID) {
        consumer->instance_fenced = true;
        snprintf(consumer->failed, sizeof(consumer->failed),
                 "another process joined consumer group \"%s\" with this one's "
                 "group.instance.id \"%s\" (apply.instance_id) and Kafka gave it this one's "
                 "place: every apply process of a group needs an apply.instance_id of its own "
                 "(or none: the default differs per process); stopping (%s)",
                 consumer->group_id ? consumer->group_id : "?",
                 consumer->instance_id ? consumer->instance_id : "?", fatal_reason);
        return;
    }
    snprintf(consumer->failed, sizeof(consumer->failed), "fatal Kafka consumer error: %s: %s",
             rd_kafka_err2name(orig), fatal_reason);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    ds_consumer_t *consumer = opaque;

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        note_fatal(consumer, rk);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        /* Said again at every failed round of reconnections: once is enough. */
        if (consumer->brokers_down)
            return;
        consumer->brokers_down = true;
        consumer->down_since_us = consumer->last_probe_us = ds_now_us();
        ds_warning("Kafka: all brokers are down (%s); apply waits and keeps retrying", reason);
        return;
    }
    ds_warning("Kafka: %s: %s (retrying)", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* The partitions of a librdkafka list as ds_topic_partition_t (topic names borrowed). */
static ds_topic_partition_t *to_parts(const rd_kafka_topic_partition_list_t *list)
{
    ds_topic_partition_t *parts = calloc((size_t)list->cnt + 1, sizeof(*parts));

    if (!parts)
        return NULL;
    for (int i = 0; i < list->cnt; i++) {
        parts[i].topic = list->elems[i].topic;
        parts[i].partition = list->elems[i].partition;
        parts[i].offset = list->elems[i].offset;
    }
    return parts;
}

static bool cooperative(rd_kafka_t *rk)
{
    const char *protocol = rd_kafka_rebalance_protocol(rk);

    return protocol && strcmp(protocol, "COOPERATIVE") == 0;
}

static void assign_partitions(ds_consumer_t *consumer, rd_kafka_t *rk,
                              rd_kafka_topic_partition_list_t *list)
{
    ds_topic_partition_t *parts = to_parts(list);
    char errstr[1024] = "";
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

    if (!parts) {
        snprintf(consumer->failed, sizeof(consumer->failed), "out of memory on assignment");
        return;
    }
    if (!consumer->assign(consumer->hook_ctx, parts, list->cnt, errstr, sizeof(errstr))) {
        snprintf(consumer->failed, sizeof(consumer->failed), "%s", errstr);
        free(parts);
        /* Take nothing: reading from a wrong position is worse than not reading. */
        if (!cooperative(rk))
            rd_kafka_assign(rk, NULL);
        return;
    }
    /* The start offsets come from the target databases; Kafka's committed ones are ignored. */
    for (int i = 0; i < list->cnt; i++) {
        list->elems[i].offset = parts[i].offset;
        if (parts[i].offset == DS_OFFSET_BEGINNING)
            ds_info("assigned %s [%d], starting at its beginning", parts[i].topic,
                    (int)parts[i].partition);
        else
            ds_info("assigned %s [%d], starting at offset %lld", parts[i].topic,
                    (int)parts[i].partition, (long long)parts[i].offset);
    }
    free(parts);
    if (cooperative(rk))
        error = rd_kafka_incremental_assign(rk, list);
    else
        err = rd_kafka_assign(rk, list);
    if (error) {
        snprintf(consumer->failed, sizeof(consumer->failed), "cannot assign partitions: %s",
                 rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (err) {
        snprintf(consumer->failed, sizeof(consumer->failed), "cannot assign partitions: %s",
                 rd_kafka_err2str(err));
    }
}

static void revoke_partitions(ds_consumer_t *consumer, rd_kafka_t *rk,
                              rd_kafka_topic_partition_list_t *list)
{
    ds_topic_partition_t *parts = to_parts(list);

    if (parts) {
        for (int i = 0; i < list->cnt; i++)
            ds_info("revoked %s [%d]", parts[i].topic, (int)parts[i].partition);
        if (consumer->revoke)
            consumer->revoke(consumer->hook_ctx, parts, list->cnt);
        free(parts);
    }
    if (cooperative(rk)) {
        rd_kafka_error_t *error = rd_kafka_incremental_unassign(rk, list);

        if (error)
            rd_kafka_error_destroy(error);
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *list, void *opaque)
{
    ds_consumer_t *consumer = opaque;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
        assign_partitions(consumer, rk, list);
    else
        revoke_partitions(consumer, rk, list);
}

/* The consumer's librdkafka configuration without its group: dualsync's defaults and locked
 * settings, then the file's consumer properties. NULL (errstr says which property and why)
 * when the file's settings cannot be used. */
static rd_kafka_conf_t *build_conf(const ds_config_t *config, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = NULL;
    ds_config_t *view = NULL;

    for (int i = 0; i < config->nkafka; i++) {
        for (size_t j = 0; j < DS_ARRAY_LEN(consumer_locked); j++) {
            if (strcmp(config->kafka_names[i], consumer_locked[j].name) == 0 &&
                (!consumer_locked[j].value ||
                 strcmp(config->kafka_values[i], consumer_locked[j].value) != 0)) {
                ds_fail(errstr, errstr_size, "%s: $.kafka[\"%s\"]: apply sets this itself (%s); %s",
                        config->path, consumer_locked[j].name, consumer_locked[j].why,
                        consumer_locked[j].fix);
                return NULL;
            }
        }
    }
    view = ds_kafka_config_view(config, DS_KAFKA_CONSUMER, "dualsync-apply");
    if (!view) {
        ds_fail(errstr, errstr_size, "out of memory creating the Kafka consumer");
        return NULL;
    }
    conf = rd_kafka_conf_new();
    for (size_t j = 0; j < DS_ARRAY_LEN(consumer_defaults); j++) {
        if (!ds_kafka_conf_set(conf, consumer_defaults[j].name, consumer_defaults[j].value, errstr,
                               errstr_size))
            goto error;
    }
    for (size_t j = 0; j < DS_ARRAY_LEN(consumer_locked); j++) {
        if (consumer_locked[j].value &&
            !ds_kafka_conf_set(conf, consumer_locked[j].name, consumer_locked[j].value, errstr,
                               errstr_size))
            goto error;
    }
    if (!ds_kafka_conf_set_file(conf, view, errstr, errstr_size))
        goto error;
    ds_kafka_config_view_free(view);
    return conf;

error:
    rd_kafka_conf_destroy(conf);
    ds_kafka_config_view_free(view);
    return NULL;
}

bool ds_consumer_check_config(const ds_config_t *config, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = build_conf(config, errstr, errstr_size);

    if (!conf)
        return false;
    rd_kafka_conf_destroy(conf);
    return true;
}

ds_consumer_t *ds_consumer_new(const ds_config_t *config, const char *group_id,
                               ds_consumer_assign_fn assign, ds_consumer_revoke_fn revoke,
                               void *hook_ctx, char *errstr, size_t errstr_size)
{
    return ds_consumer_new_member(config, group_id, NULL, assign, revoke, hook_ctx, errstr,
                                  errstr_size);
}

ds_consumer_t *ds_consumer_new_member(const ds_config_t *config, const char *group_id,
                                      const char *instance_id, ds_consumer_assign_fn assign,
                                      ds_consumer_revoke_fn revoke, void *hook_ctx, char *errstr,
                                      size_t errstr_size)
{
    ds_consumer_t *consumer = calloc(1, sizeof(*consumer));
    rd_kafka_conf_t *conf = NULL;
    char rderr[512];

    if (!consumer) {
        ds_fail(errstr, errstr_size, "out of memory creating the Kafka consumer");
        return NULL;
    }
    consumer->assign = assign;
    consumer->revoke = revoke;
    consumer->hook_ctx = hook_ctx;
    if ((group_id && !(consumer->group_id = strdup(group_id))) ||
        (instance_id && !(consumer->instance_id = strdup(instance_id)))) {
        ds_fail(errstr, errstr_size, "out of memory creating the Kafka consumer");
        goto error;
    }

    if (!(conf = build_conf(config, errstr, errstr_size)))
        goto error;
    if (group_id && !ds_kafka_conf_set(conf, "group.id", group_id, errstr, errstr_size))
        goto error;
    /* Static membership: a member restarted with the same id takes its partitions back at
     * once; without it the group waits for the dead member's session to expire first. */
    if (group_id && instance_id &&
        !ds_kafka_conf_set(conf, "group.instance.id", instance_id, errstr, errstr_size))
        goto error;
    if (!group_id) {
        char reader_group[64];

        /* librdkafka refuses rd_kafka_assign() without a group id, although a reader never
         * joins it (no subscribe) nor commits to it (auto commit is off). */
        snprintf(reader_group, sizeof(reader_group), "dualsync-reader-%ld-%lld", (long)getpid(),
                 (long long)ds_now_us());
        if (!ds_kafka_conf_set(conf, "group.id", reader_group, errstr, errstr_size) ||
            !ds_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, errstr_size))
            goto error;
    }
    rd_kafka_conf_set_opaque(conf, consumer);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, ds_kafka_log);
    if (group_id)
        rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);

    consumer->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rderr, sizeof(rderr));
    if (!consumer->rk) {
        ds_fail(errstr, errstr_size, "cannot create the Kafka consumer: %s", rderr);
        goto error;
    }
    conf = NULL; /* owned by rk now */
    /* Messages and rebalance events all come through rd_kafka_consumer_poll(). */
    rd_kafka_poll_set_consumer(consumer->rk);
    return consumer;

error:
    if (conf)
        rd_kafka_conf_destroy(conf);
    ds_consumer_free(consumer);
    return NULL;
}

void ds_consumer_free(ds_consumer_t *consumer)
{
    if (!consumer)
        return;
    if (consumer->rk) {
        /* Leaves the group at once (the revoke hook runs) instead of after the session
         * timeout, so another member takes the partitions over promptly - unless it is a
         * static member (group.instance.id): Kafka keeps its partitions for it until its
         * session times out, expecting it back (docs/configuration.md, "Several apply processes"). */
        rd_kafka_resp_err_t err = rd_kafka_consumer_close(consumer->rk);

        if (err)
            ds_warning("Kafka: closing the consumer: %s", rd_kafka_err2str(err));
        rd_kafka_destroy(consumer->rk);
    }
    free(consumer->group_id);
    free(consumer->instance_id);
    free(consumer);
}

bool ds_consumer_instance_fenced(const ds_consumer_t *consumer)
{
    return consumer && consumer->instance_fenced;
}

bool ds_consumer_subscribe(ds_consumer_t *consumer, const char *const *topics, int ntopics,
                           char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(ntopics);
    rd_kafka_resp_err_t err;

    for (int i = 0; i < ntopics; i++)
        rd_kafka_topic_partition_list_add(list, topics[i], RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(consumer->rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (err)
        return ds_fail(errstr, errstr_size, "cannot subscribe to the change topics: %s",
                       rd_kafka_err2str(err));
    consumer->subscribed = true;
    return true;
}

bool ds_consumer_end_offsets(ds_consumer_t *consumer, const char *topic, int timeout_ms,
                             ds_topic_partition_t **end, int64_t **low, int *nend, char *errstr,
                             size_t errstr_size)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(consumer->rk, topic, NULL);
    rd_kafka_resp_err_t err;
    ds_topic_partition_t *parts = NULL;
    int64_t *lows = NULL;
    int n = 0;
    bool ok = false;

    *end = NULL;
    *nend = 0;
    if (low)
        *low = NULL;
    if (!rkt)
        return ds_fail(errstr, errstr_size, "topic %s: %s", topic,
                       rd_kafka_err2str(rd_kafka_last_error()));
    err = rd_kafka_metadata(consumer->rk, 0, rkt, &md, timeout_ms);
    if (err) {
        ds_fail(errstr, errstr_size, "no metadata for topic %s: %s", topic, rd_kafka_err2str(err));
        goto done;
    }
    if (md->topic_cnt != 1 || md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        ok = true; /* no such topic: nothing in it */
        goto done;
    }
    if (md->topics[0].err) {
        ds_fail(errstr, errstr_size, "topic %s: %s", topic, rd_kafka_err2str(md->topics[0].err));
        goto done;
    }
    n = md->topics[0].partition_cnt;
    if (!(parts = calloc((size_t)n + 1, sizeof(*parts))) ||
        !(lows = calloc((size_t)n + 1, sizeof(*lows)))) {
        ds_fail(errstr, errstr_size, "out of memory reading the watermarks of topic %s", topic);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        int64_t high;

        parts[i].topic = topic;
        parts[i].partition = md->topics[0].partitions[i].id;
        err = rd_kafka_query_watermark_offsets(consumer->rk, topic, parts[i].partition, &lows[i],
                                               &high, timeout_ms);
        if (err) {
            ds_fail(errstr, errstr_size, "cannot read the end of %s [%d]: %s", topic,
                    (int)parts[i].partition, rd_kafka_err2str(err));
            goto done;
        }
        parts[i].offset = high;
    }
    *end = parts;
    *nend = n;
    parts = NULL;
    if (low) {
        *low = lows;
        lows = NULL;
    }
    ok = true;

done:
    free(parts);
    free(lows);
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return ok;
}

bool ds_consumer_assign_all(ds_consumer_t *consumer, const char *topic, int timeout_ms,
                            ds_topic_partition_t **end, int *nend, char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *list;
    rd_kafka_resp_err_t err;

    if (!ds_consumer_end_offsets(consumer, topic, timeout_ms, end, NULL, nend, errstr,
                                 errstr_size))
        return false;
    list = rd_kafka_topic_partition_list_new(*nend > 0 ? *nend : 1);
    for (int i = 0; i < *nend; i++)
        rd_kafka_topic_partition_list_add(list, topic, (*end)[i].partition)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    err = rd_kafka_assign(consumer->rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (err) {
        free(*end);
        *end = NULL;
        *nend = 0;
        return ds_fail(errstr, errstr_size, "cannot assign the partitions of %s: %s", topic,
                       rd_kafka_err2str(err));
    }
    return true;
}

bool ds_consumer_assign(ds_consumer_t *consumer, const ds_topic_partition_t *parts, int nparts,
                        char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *list =
        rd_kafka_topic_partition_list_new(nparts > 0 ? nparts : 1);
    rd_kafka_resp_err_t err;

    for (int i = 0; i < nparts; i++)
        rd_kafka_topic_partition_list_add(list, parts[i].topic, parts[i].partition)->offset =
            parts[i].offset;
    err = rd_kafka_assign(consumer->rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (err)
        return ds_fail(errstr, errstr_size, "cannot assign %d partitions: %s", nparts,
                       rd_kafka_err2str(err));
    return true;
}

bool ds_consumer_watermarks(ds_consumer_t *consumer, const char *topic, int32_t partition,
                            int timeout_ms, int64_t *low, int64_t *high, char *errstr,
                            size_t errstr_size)
{
    rd_kafka_resp_err_t err =
        rd_kafka_query_watermark_offsets(consumer->rk, topic, partition, low, high, timeout_ms);

    if (err)
        return ds_fail(errstr, errstr_size, "cannot read the offsets of %s [%d]: %s", topic,
                       (int)partition, rd_kafka_err2str(err));
    return true;
}

static void brokers_back(ds_consumer_t *consumer)
{
    if (!consumer->brokers_down)
        return;
    consumer->brokers_down = false;
    ds_info("Kafka: a broker answers again after %.0f s",
            (double)(ds_now_us() - consumer->down_since_us) / 1e6);
}

/* During an outage, asks for metadata now and then: an answer ends it. */
/* When no message comes, asks for metadata now and then: an answer ends an outage, and (for a
 * group member, whose health apply reports) none starts one, in case librdkafka's "all
 * brokers down" did not come (it reports a transition of the connections it holds). */
static void probe_brokers(ds_consumer_t *consumer)
{
    int64_t now = ds_now_us();

    if ((!consumer->brokers_down && !consumer->subscribed) ||
        now - consumer->last_probe_us < PROBE_INTERVAL_US)
        return;
    consumer->last_probe_us = now;
    if (ds_kafka_broker_answers(consumer->rk, PROBE_TIMEOUT_MS)) {
        brokers_back(consumer);
    } else if (!consumer->brokers_down) {
        consumer->brokers_down = true;
        consumer->down_since_us = now;
        /* Worded as librdkafka's report is, which may come at the same moment: one line to
         * look for whichever noticed first. */
        ds_warning("Kafka: all brokers are down (no broker answered a metadata request within "
                   "%d ms); apply waits and keeps retrying",
                   PROBE_TIMEOUT_MS);
    }
}

bool ds_consumer_brokers_down(const ds_consumer_t *consumer)
{
    return consumer->brokers_down;
}

ds_consumer_poll_result_t ds_consumer_poll(ds_consumer_t *consumer, int timeout_ms,
                                           ds_kafka_msg_t *msg, char *errstr, size_t errstr_size)
{
    rd_kafka_message_t *m;

    memset(msg, 0, sizeof(*msg));
    if (consumer->failed[0]) {
        ds_fail(errstr, errstr_size, "%s", consumer->failed);
        return DS_CONSUMER_FAILED;
    }
    m = rd_kafka_consumer_poll(consumer->rk, timeout_ms);
    if (consumer->failed[0]) {
        if (m)
            rd_kafka_message_destroy(m);
        ds_fail(errstr, errstr_size, "%s", consumer->failed);
        return DS_CONSUMER_FAILED;
    }
    if (!m) {
        probe_brokers(consumer);
        return DS_CONSUMER_NOTHING;
    }
    if (m->err) {
        ds_consumer_poll_result_t result = DS_CONSUMER_NOTHING;

        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            /* readers only (enable.partition.eof) */
            msg->topic = m->rkt ? rd_kafka_topic_name(m->rkt) : NULL;
            msg->partition = m->partition;
            msg->offset = m->offset;
            result = msg->topic ? DS_CONSUMER_EOF : DS_CONSUMER_NOTHING;
        } else if (m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                   m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
            /* A mapped table whose topic capture has not created yet: it is subscribed
             * and is picked up when it appears. */
            ds_debug("Kafka: %s: %s", m->rkt ? rd_kafka_topic_name(m->rkt) : "?",
                     rd_kafka_message_errstr(m));
        } else if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
            note_fatal(consumer, consumer->rk);
            ds_fail(errstr, errstr_size, "%s", consumer->failed);
            result = DS_CONSUMER_FAILED;
        } else {
            ds_warning("Kafka consumer: %s%s%s", m->rkt ? rd_kafka_topic_name(m->rkt) : "",
                       m->rkt ? ": " : "", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
        return result;
    }
    brokers_back(consumer);
    msg->topic = rd_kafka_topic_name(m->rkt);
    msg->partition = m->partition;
    msg->offset = m->offset;
    msg->key = m->key;
    msg->key_len = m->key_len;
    msg->value = m->payload;
    msg->value_len = m->len;
    msg->handle = m;
    return DS_CONSUMER_MESSAGE;
}

void ds_consumer_release(ds_kafka_msg_t *msg)
{
    if (msg && msg->handle) {
        rd_kafka_message_destroy(msg->handle);
        msg->handle = NULL;
    }
}

void ds_consumer_commit(ds_consumer_t *consumer, const ds_topic_partition_t *offsets, int noffsets)
{
    rd_kafka_topic_partition_list_t *list;
    rd_kafka_resp_err_t err;

    if (noffsets <= 0 || !consumer->subscribed)
        return;
    list = rd_kafka_topic_partition_list_new(noffsets);
    for (int i = 0; i < noffsets; i++)
        rd_kafka_topic_partition_list_add(list, offsets[i].topic, offsets[i].partition)->offset =
            offsets[i].offset;
    err = rd_kafka_commit(consumer->rk, list, 1);
    if (err)
        ds_debug("Kafka: offset commit not queued: %s", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(list);
}

void ds_consumer_foreach_partition(ds_consumer_t *consumer, ds_consumer_partition_fn fn,
                                   void *ctx)
{
    rd_kafka_topic_partition_list_t *list = NULL;

    if (!consumer || rd_kafka_assignment(consumer->rk, &list) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    for (int i = 0; i < list->cnt; i++) {
        int64_t low = -1, high = -1;

        /* librdkafka's cached figures, updated by every fetch: no request, no wait. */
        if (rd_kafka_get_watermark_offsets(consumer->rk, list->elems[i].topic,
                                           list->elems[i].partition, &low,
                                           &high) != RD_KAFKA_RESP_ERR_NO_ERROR)
            low = high = -1;
        fn(ctx, list->elems[i].topic, list->elems[i].partition, low, high);
    }
    rd_kafka_topic_partition_list_destroy(list);
}
