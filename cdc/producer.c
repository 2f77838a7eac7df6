/*
 * producer.c: librdkafka producer setup, sends, and delivery reports.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "dualsync/kafka.h"
#include "dualsync/log.h"
#include "dualsync/producer.h"

struct ds_producer {
    rd_kafka_t *rk;          /* the client */
    rd_kafka_queue_t *mainq; /* its main queue, where delivery reports arrive */
    int wakeup_pipe[2];      /* librdkafka writes a byte to [1] when mainq gets an event */
    ds_producer_ack_fn ack;  /* called once per delivery report */
    void *ack_ctx;
    char fatal[512]; /* set by the error callback on a fatal error */
    char client_id[128];     /* its client.id, to name it in the log */
    const char *owner;       /* the process that waits for it ("capture"), or NULL */
    ds_producer_reject_fn reject; /* told first of a message Kafka refused, or NULL */
    size_t max_message_bytes; /* message.max.bytes: librdkafka refuses larger messages */
    bool brokers_down;       /* every broker is down: the outage was logged, not its end */
    ds_metric_t *acked_metric;  /* messages acknowledged, by topic; NULL: not counted */
    char acked_topic[256];      /* the topic of acked_series: acknowledgements come in runs of */
    ds_series_t *acked_series;  /* one topic, so its series is kept, not looked up per ack */
    ds_metric_t *errors_metric; /* errors, by reason; NULL: not counted */
    int64_t down_since_us;   /* when that was logged */
    int64_t last_probe_us;   /* the last metadata request that looked for a broker */
};

/* Between two metadata requests looking for a broker during an outage, when nothing is sent
 * (each blocks the caller up to PROBE_TIMEOUT_MS). */
#define PROBE_INTERVAL_US (5 * 1000000)
#define PROBE_TIMEOUT_MS  200

/* dualsync's defaults, applied before the user's properties. */
static const struct {
    const char *name;
    const char *value;
} producer_defaults[] = {
    {"enable.idempotence", "true"},
    {"acks", "all"},
    /* Retry forever: a broker outage must pause capture, not fail messages. */
    {"message.timeout.ms", "0"},
    /* The Java client's partitioner, so keys map to the same partitions as other tools. */
    {"partitioner", "murmur2_random"},
    {"linger.ms", "5"},
    {"compression.type", "lz4"},
    /* Capture bounds what is in flight itself (capture.max_inflight_*); keep librdkafka's
     * own queue above that so a send never has to block. */
    {"queue.buffering.max.messages", "2000000"},
    {"queue.buffering.max.kbytes", "4194304"},
    {"client.id", "dualsync-capture"},
    /* dualsync creates its topics itself (common/topics.c), with the settings that keep
     * their history; a topic missing when a message is sent must not be made by the broker
     * with its time-based retention. */
    {"allow.auto.create.topics", "false"},
};

/* Settings whose user value would break the delivery guarantees; "same" is another spelling
 * librdkafka takes for the required value. */
static const struct {
    const char *name;
    const char *required;
    const char *same;
} producer_locked[] = {
    {"enable.idempotence", "true", NULL},
    {"acks", "all", "-1"},
};

/* The end of an outage, once: a delivery or a metadata answer came from a broker. */
static void brokers_back(ds_producer_t *producer)
{
    double seconds = (double)(ds_now_us() - producer->down_since_us) / 1e6;

    if (!producer->brokers_down)
        return;
    producer->brokers_down = false;
    if (producer->owner)
        ds_info("Kafka: a broker answers again after %.0f s; %s resumes", seconds,
                producer->owner);
    else
        ds_info("Kafka: a broker answers again after %.0f s (producer \"%s\")", seconds,
                producer->client_id);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    ds_producer_t *producer = opaque;
    size_t bytes = msg->len + msg->key_len;
    char err[512];

    if (msg->err) {
        ds_series_add(ds_metric_with(producer->errors_metric, rd_kafka_err2name(msg->err)), 1);
        if (producer->reject) {
            ds_producer_reject_t r = {
                .topic = rd_kafka_topic_name(msg->rkt),
                .partition = msg->partition,
                .key = msg->key,
                .key_len = msg->key_len,
                .value = msg->payload,
                .value_len = msg->len,
                .too_large = msg->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
                .reason = rd_kafka_err2str(msg->err),
            };
            producer->reject(producer->ack_ctx, (uint64_t)(uintptr_t)msg->_private, &r);
        }
        snprintf(err, sizeof(err), "delivery to topic %s partition %d failed: %s",
                 rd_kafka_topic_name(msg->rkt), (int)msg->partition, rd_kafka_err2str(msg->err));
        producer->ack(producer->ack_ctx, (uint64_t)(uintptr_t)msg->_private, bytes, err);
    } else {
        const char *topic = rd_kafka_topic_name(msg->rkt);

        brokers_back(producer);
        if (producer->acked_metric && strcmp(topic, producer->acked_topic) != 0) {
            snprintf(producer->acked_topic, sizeof(producer->acked_topic), "%s", topic);
            producer->acked_series = ds_metric_with(producer->acked_metric, topic);
        }
        ds_series_add(producer->acked_series, 1);
        producer->ack(producer->ack_ctx, (uint64_t)(uintptr_t)msg->_private, bytes, NULL);
    }
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    ds_producer_t *producer = opaque;

    ds_series_add(ds_metric_with(producer->errors_metric, rd_kafka_err2name(err)), 1);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal_reason[400];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, fatal_reason, sizeof(fatal_reason));

        snprintf(producer->fatal, sizeof(producer->fatal), "fatal Kafka producer error: %s: %s",
                 rd_kafka_err2name(orig), fatal_reason);
        ds_error("%s", producer->fatal);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        /* librdkafka says so again at every failed round of reconnections: once is enough,
         * and brokers_back() says when it ends. */
        if (producer->brokers_down)
            return;
        producer->brokers_down = true;
        producer->down_since_us = producer->last_probe_us = ds_now_us();
        if (producer->owner)
            ds_warning("Kafka: all brokers are down (%s); %s pauses and keeps retrying", reason,
                       producer->owner);
        else
            ds_warning("Kafka: all brokers are down (%s); producer \"%s\" keeps its messages "
                       "and retries",
                       reason, producer->client_id);
        return;
    }
    /* Transport errors are retried by librdkafka itself; say so once per event. */
    ds_warning("Kafka: %s: %s (retrying)", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* The producer's librdkafka configuration: dualsync's defaults, then the file's properties.
 * NULL (errstr says which property and why) when the file's settings cannot be used. */
static rd_kafka_conf_t *build_conf(const ds_config_t *config, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf;

    for (int i = 0; i < config->nkafka; i++) {
        for (size_t j = 0; j < DS_ARRAY_LEN(producer_locked); j++) {
            if (strcmp(config->kafka_names[i], producer_locked[j].name) == 0 &&
                strcmp(config->kafka_values[i], producer_locked[j].required) != 0 &&
                (!producer_locked[j].same ||
                 strcmp(config->kafka_values[i], producer_locked[j].same) != 0)) {
                ds_fail(errstr, errstr_size,
                        "%s: $.kafka[\"%s\"]: is \"%s\" but must be \"%s\": without it a "
                        "retried send can duplicate or reorder row changes; remove it",
                        config->path, producer_locked[j].name, config->kafka_values[i],
                        producer_locked[j].required);
                return NULL;
            }
        }
    }
    conf = rd_kafka_conf_new();
    for (size_t i = 0; i < DS_ARRAY_LEN(producer_defaults); i++) {
        if (!ds_kafka_conf_set(conf, producer_defaults[i].name, producer_defaults[i].value, errstr,
                               errstr_size)) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (!ds_kafka_conf_set_file(conf, config, errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

bool ds_producer_check_config(const ds_config_t *config, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = build_conf(config, errstr, errstr_size);

    if (!conf)
        return false;
    rd_kafka_conf_destroy(conf);
    return true;
}

ds_producer_t *ds_producer_new(const ds_config_t *config, ds_producer_ack_fn ack, void *ack_ctx,
                               char *errstr, size_t errstr_size)
{
    ds_producer_t *producer = calloc(1, sizeof(*producer));
    rd_kafka_conf_t *conf = NULL;
    char rderr[512];

    if (!producer) {
        ds_fail(errstr, errstr_size, "out of memory creating the Kafka producer");
        return NULL;
    }
    producer->wakeup_pipe[0] = producer->wakeup_pipe[1] = -1;
    producer->ack = ack;
    producer->ack_ctx = ack_ctx;

    if (!(conf = build_conf(config, errstr, errstr_size)))
        goto error;
    {
        size_t size = sizeof(producer->client_id);

        char max[32];

        if (rd_kafka_conf_get(conf, "client.id", producer->client_id, &size) != RD_KAFKA_CONF_OK)
            snprintf(producer->client_id, sizeof(producer->client_id), "rdkafka");
        size = sizeof(max);
        producer->max_message_bytes =
            rd_kafka_conf_get(conf, "message.max.bytes", max, &size) == RD_KAFKA_CONF_OK
                ? (size_t)strtoull(max, NULL, 10)
                : 0;
    }
    rd_kafka_conf_set_opaque(conf, producer);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, ds_kafka_log);

    producer->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rderr, sizeof(rderr));
    if (!producer->rk) {
        ds_fail(errstr, errstr_size, "cannot create the Kafka producer: %s", rderr);
        goto error; /* conf is still ours when rd_kafka_new fails */
    }
    conf = NULL; /* owned by rk now */

    if (pipe2(producer->wakeup_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        ds_fail(errstr, errstr_size, "cannot create the Kafka wakeup pipe: %s", strerror(errno));
        goto error;
    }
    producer->mainq = rd_kafka_queue_get_main(producer->rk);
    rd_kafka_queue_io_event_enable(producer->mainq, producer->wakeup_pipe[1], "1", 1);
    return producer;

error:
    if (conf)
        rd_kafka_conf_destroy(conf);
    ds_producer_free(producer, 0);
    return NULL;
}

void ds_producer_free(ds_producer_t *producer, int timeout_ms)
{
    if (!producer)
        return;
    if (producer->rk) {
        if (timeout_ms > 0)
            rd_kafka_flush(producer->rk, timeout_ms);
        if (producer->mainq) {
            rd_kafka_queue_io_event_enable(producer->mainq, -1, NULL, 0);
            rd_kafka_queue_destroy(producer->mainq);
        }
        rd_kafka_destroy(producer->rk);
    }
    for (int i = 0; i < 2; i++) {
        if (producer->wakeup_pipe[i] >= 0)
            close(producer->wakeup_pipe[i]);
    }
    free(producer);
}

bool ds_producer_send(ds_producer_t *producer, const char *topic, const char *key, size_t key_len,
                      const char *value, size_t value_len, uint64_t tag, char *errstr,
                      size_t errstr_size)
{
    return ds_producer_send_to(producer, topic, RD_KAFKA_PARTITION_UA, key, key_len, value,
                               value_len, tag, errstr, errstr_size);
}

int ds_producer_partition_count(ds_producer_t *producer, const char *topic, int timeout_ms)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(producer->rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int n = -1;

    if (rkt && rd_kafka_metadata(producer->rk, 0, rkt, &md, timeout_ms) ==
                   RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1 && !md->topics[0].err)
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    return n;
}

bool ds_producer_send_to(ds_producer_t *producer, const char *topic, int32_t partition,
                         const char *key, size_t key_len, const char *value, size_t value_len,
                         uint64_t tag, char *errstr, size_t errstr_size)
{
    return ds_producer_send_headers(producer, topic, partition, key, key_len, value, value_len,
                                    NULL, 0, tag, errstr, errstr_size);
}

bool ds_producer_send_headers(ds_producer_t *producer, const char *topic, int32_t partition,
                              const char *key, size_t key_len, const char *value, size_t value_len,
                              const ds_producer_header_t *headers, int nheaders, uint64_t tag,
                              char *errstr, size_t errstr_size)
{
    /* librdkafka owns the headers once a message is queued, the caller until then: one list
     * serves every attempt of a full queue, and is freed only when no attempt took it. */
    rd_kafka_headers_t *hdrs = NULL;

    if (nheaders > 0) {
        hdrs = rd_kafka_headers_new((size_t)nheaders);
        for (int i = 0; i < nheaders; i++) {
            rd_kafka_resp_err_t err = rd_kafka_header_add(
                hdrs, headers[i].name, -1, headers[i].value, (ssize_t)headers[i].value_len);

            if (err) {
                rd_kafka_headers_destroy(hdrs);
                return ds_fail(errstr, errstr_size,
                               "cannot add header %s to a message for topic %s: %s",
                               headers[i].name, topic, rd_kafka_err2str(err));
            }
        }
    }
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            producer->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_HEADERS(hdrs),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)tag), RD_KAFKA_V_END);

        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            return true;
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            /* Never drop: serve delivery reports until the queue has room. */
            rd_kafka_poll(producer->rk, 100);
            continue;
        }
        if (hdrs)
            rd_kafka_headers_destroy(hdrs);
        return ds_fail(errstr, errstr_size, "cannot queue a message for topic %s: %s", topic,
                       rd_kafka_err2str(err));
    }
}

bool ds_producer_warm_up(ds_producer_t *producer, const char *const *topics, int ntopics,
                         int timeout_ms, char *errstr, size_t errstr_size)
{
    for (int i = 0; i < ntopics; i++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(producer->rk, topics[i], NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err;

        if (!rkt)
            return ds_fail(errstr, errstr_size, "topic %s: %s", topics[i],
                           rd_kafka_err2str(rd_kafka_last_error()));
        err = rd_kafka_metadata(producer->rk, 0, rkt, &md, timeout_ms);
        if (md)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        if (err)
            return ds_fail(errstr, errstr_size, "no metadata for topic %s yet: %s", topics[i],
                           rd_kafka_err2str(err));
    }
    return true;
}

int ds_producer_poll(ds_producer_t *producer, int timeout_ms)
{
    return rd_kafka_poll(producer->rk, timeout_ms);
}

bool ds_producer_flush(ds_producer_t *producer, int timeout_ms)
{
    return rd_kafka_flush(producer->rk, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

void ds_producer_set_owner(ds_producer_t *producer, const char *owner)
{
    producer->owner = owner;
}

void ds_producer_set_reject_cb(ds_producer_t *producer, ds_producer_reject_fn reject)
{
    producer->reject = reject;
}

size_t ds_producer_max_message_bytes(const ds_producer_t *producer)
{
    return producer->max_message_bytes;
}

void ds_producer_check_brokers(ds_producer_t *producer)
{
    int64_t now = ds_now_us();

    if (!producer->brokers_down || now - producer->last_probe_us < PROBE_INTERVAL_US)
        return;
    producer->last_probe_us = now;
    if (ds_kafka_broker_answers(producer->rk, PROBE_TIMEOUT_MS))
        brokers_back(producer);
}

void ds_producer_set_metrics(ds_producer_t *producer, ds_metric_t *acked, ds_metric_t *errors)
{
    producer->acked_metric = acked;
    producer->errors_metric = errors;
}

bool ds_producer_brokers_down(const ds_producer_t *producer)
{
    return producer->brokers_down;
}

int ds_producer_wakeup_fd(const ds_producer_t *producer)
{
    return producer->wakeup_pipe[0];
}

void ds_producer_drain_wakeup(ds_producer_t *producer)
{
    char junk[256];

    while (read(producer->wakeup_pipe[0], junk, sizeof(junk)) > 0)
        ;
}

const char *ds_producer_fatal_error(const ds_producer_t *producer)
{
    return producer->fatal[0] ? producer->fatal : NULL;
}
