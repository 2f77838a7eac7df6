/*
 * dlq.c: dead letters: their JSON form, their producer, and `dualsync dlq list`.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualsync/buf.h"
#include "dualsync/consumer.h"
#include "dualsync/dlq.h"
#include "dualsync/kafka_props.h"
#include "dualsync/log.h"
#include "dualsync/producer.h"
#include "dualsync/topics.h"

/* ---- the JSON form ---- */

/*
 * Appends the original key or value. JSON text is copied as it is, not re-encoded, so numbers
 * keep their exact digits; anything else becomes a JSON string.
 */
static void append_original(ds_buf_t *buf, const char *text, size_t len)
{
    json_t *parsed;

    if (!text) {
        ds_buf_append_str(buf, "null");
        return;
    }
    /* INT_AS_REAL: an integer beyond 64 bits is still JSON, only not one jansson keeps. */
    parsed = json_loadb(text, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
    if (parsed) {
        json_decref(parsed);
        ds_buf_append(buf, text, len);
    } else {
        ds_buf_append_json_string(buf, text, len);
    }
}

char *ds_dlq_format(const ds_dead_letter_t *dl, size_t *len)
{
    ds_buf_t buf = DS_BUF_INIT;
    char *text;

    ds_buf_append_str(&buf, "{\"topic\":");
    ds_buf_append_json_string(&buf, dl->topic, strlen(dl->topic));
    ds_buf_appendf(&buf, ",\"partition\":%d,\"offset\":%" PRId64 ",\"key\":", (int)dl->partition,
                   dl->offset);
    append_original(&buf, dl->key, dl->key_len);
    ds_buf_append_str(&buf, ",\"value\":");
    append_original(&buf, dl->value, dl->value_len);
    ds_buf_append_str(&buf, ",\"target\":");
    if (dl->target)
        ds_buf_append_json_string(&buf, dl->target, strlen(dl->target));
    else
        ds_buf_append_str(&buf, "null");
    ds_buf_append_str(&buf, ",\"error\":");
    ds_buf_append_json_string(&buf, dl->error, strlen(dl->error));
    ds_buf_appendf(&buf, ",\"ts_ms\":%" PRId64, dl->ts_ms);
    if (dl->attempts > 1)
        ds_buf_appendf(&buf, ",\"attempts\":%d", dl->attempts);
    /* Only where the caller knows the databases record it (applier.c): a dead letter that
     * says so but has no record would be taken for superseded and never retried. */
    if (dl->recorded)
        ds_buf_append_str(&buf, ",\"recorded\":true");
    ds_buf_append_char(&buf, '}');
    /* The buffer's memory becomes the caller's. */
    text = buf.data;
    *len = buf.len;
    return text;
}

void ds_dlq_entry_clear(ds_dlq_entry_t *entry)
{
    json_decref(entry->root);
    memset(entry, 0, sizeof(*entry));
}

bool ds_dlq_parse(const char *text, size_t len, ds_dlq_entry_t *entry, char *errstr,
                  size_t errstr_size)
{
    json_error_t error;
    json_t *field;

    memset(entry, 0, sizeof(*entry));
    if (!text)
        return ds_fail(errstr, errstr_size, "not a dead letter: the value is empty");
    entry->root = json_loadb(text, len, 0, &error);
    if (!entry->root)
        return ds_fail(errstr, errstr_size, "not a dead letter: invalid JSON: %s", error.text);
    if (!json_is_object(entry->root)) {
        ds_dlq_entry_clear(entry);
        return ds_fail(errstr, errstr_size, "not a dead letter: not a JSON object");
    }
#define REQUIRE(name, test, what)                                                                  \
    do {                                                                                           \
        field = json_object_get(entry->root, name);                                                \
        if (!field || !(test)) {                                                                   \
            ds_dlq_entry_clear(entry);                                                             \
            return ds_fail(errstr, errstr_size, "not a dead letter: \"%s\" should be %s", name,    \
                           what);                                                                  \
        }                                                                                          \
    } while (0)
    REQUIRE("topic", json_is_string(field), "a string");
    entry->topic = json_string_value(field);
    REQUIRE("partition", json_is_integer(field) && json_integer_value(field) >= 0,
            "a partition number");
    entry->partition = (int32_t)json_integer_value(field);
    REQUIRE("offset", json_is_integer(field) && json_integer_value(field) >= 0, "an offset");
    entry->offset = json_integer_value(field);
    REQUIRE("key", 1, "present");
    entry->key = field;
    REQUIRE("value", 1, "present");
    entry->value = field;
    REQUIRE("target", json_is_string(field) || json_is_null(field), "a string or null");
    entry->target = json_string_value(field);
    REQUIRE("error", json_is_string(field), "a string");
    entry->error = json_string_value(field);
#undef REQUIRE
    field = json_object_get(entry->root, "ts_ms");
    entry->ts_ms = json_is_integer(field) ? json_integer_value(field) : 0;
    field = json_object_get(entry->root, "attempts");
    entry->attempts = json_is_integer(field) && json_integer_value(field) > 0
                          ? (int)json_integer_value(field)
                          : 1;
    entry->recorded = json_is_true(json_object_get(entry->root, "recorded"));
    return true;
}

/* ---- the producer ---- */

/* How long creating the dead-letter topic may take. */
#define TOPIC_TIMEOUT_MS 10000

struct ds_dlq {
    ds_producer_t *producer; /* idempotent, acks=all, retries for ever */
    char *topic;             /* apply.dlq_topic */
    ds_topics_t *topics;     /* admin client that creates it */
    bool topic_ready;        /* it exists: created, or found */
    uint64_t sent;           /* dead letters queued */
    uint64_t acked;          /* acknowledged (or failed: see failed) */
    uint64_t delivered;      /* acknowledged successfully */
    char failed[512];        /* the first delivery failure since the last flush */
};

static void on_ack(void *ctx, uint64_t tag, size_t bytes, const char *err)
{
    ds_dlq_t *dlq = ctx;

    dlq->acked++;
    if (err) {
        if (!dlq->failed[0])
            snprintf(dlq->failed, sizeof(dlq->failed), "%s", err);
    } else {
        dlq->delivered++;
    }
}

/* Creates the dead-letter topic when it is missing (common/topics.c). */
static bool ensure_topic(ds_dlq_t *dlq, bool *config_error, char *errstr, size_t errstr_size)
{
    const char *name = dlq->topic;
    ds_topic_kind_t kind = DS_TOPIC_DEAD_LETTERS;

    if (!dlq->topic_ready &&
        ds_topics_ensure(dlq->topics, &name, &kind, 1, ds_producer_max_message_bytes(dlq->producer),
                         TOPIC_TIMEOUT_MS, config_error, errstr, errstr_size))
        dlq->topic_ready = true;
    return dlq->topic_ready;
}

ds_dlq_t *ds_dlq_new(const ds_config_t *config, char *errstr, size_t errstr_size)
{
    ds_dlq_t *dlq = calloc(1, sizeof(*dlq));
    ds_config_t *view = NULL;
    bool config_error = false;

    if (!dlq || !(dlq->topic = strdup(config->apply_dlq_topic)) ||
        !(view = ds_kafka_config_view(config, DS_KAFKA_PRODUCER, "dualsync-apply-dlq"))) {
        ds_fail(errstr, errstr_size, "out of memory creating the dead-letter producer");
        goto error;
    }
    dlq->producer = ds_producer_new(view, on_ack, dlq, errstr, errstr_size);
    ds_kafka_config_view_free(view);
    if (!dlq->producer || !(dlq->topics = ds_topics_new(config, errstr, errstr_size)))
        goto error;
    /* Before any dead letter, so the broker never auto-creates the topic with a retention
     * that deletes them. A broker that does not answer now is not fatal: the first dead
     * letter tries again. */
    if (!ensure_topic(dlq, &config_error, errstr, errstr_size)) {
        if (config_error)
            goto error;
        ds_warning("%s; the first dead letter tries again", errstr);
    }
    return dlq;

error:
    ds_dlq_free(dlq, 0);
    return NULL;
}

void ds_dlq_free(ds_dlq_t *dlq, int timeout_ms)
{
    if (!dlq)
        return;
    ds_producer_free(dlq->producer, timeout_ms);
    ds_topics_free(dlq->topics);
    free(dlq->topic);
    free(dlq);
}

bool ds_dlq_send(ds_dlq_t *dlq, const ds_dead_letter_t *dl, char *errstr, size_t errstr_size)
{
    size_t len;
    char *value = ds_dlq_format(dl, &len);
    bool ok;

    if (!value)
        return ds_fail(errstr, errstr_size, "out of memory formatting a dead letter");
    if (!ensure_topic(dlq, NULL, errstr, errstr_size)) {
        free(value);
        return false;
    }
    ok = ds_producer_send(dlq->producer, dlq->topic, dl->key, dl->key_len, value, len, 0, errstr,
                          errstr_size);
    free(value);
    if (ok)
        dlq->sent++;
    return ok;
}

bool ds_dlq_flush(ds_dlq_t *dlq, bool (*abort)(void *ctx), void *abort_ctx, char *errstr,
                  size_t errstr_size)
{
    int64_t warn_at = ds_now_us() + 10 * 1000000;
    const char *fatal;

    while (dlq->acked < dlq->sent) {
        if (abort && abort(abort_ctx))
            return ds_fail(errstr, errstr_size,
                           "stopped while %llu dead letters were not yet acknowledged by Kafka",
                           (unsigned long long)(dlq->sent - dlq->acked));
        ds_producer_poll(dlq->producer, 100);
        if ((fatal = ds_producer_fatal_error(dlq->producer)))
            return ds_fail(errstr, errstr_size, "dead-letter topic %s: %s", dlq->topic, fatal);
        if (ds_now_us() > warn_at) {
            ds_warning("waiting for Kafka to acknowledge %llu dead letters on %s",
                       (unsigned long long)(dlq->sent - dlq->acked), dlq->topic);
            warn_at = ds_now_us() + 30 * 1000000;
        }
    }
    ds_producer_poll(dlq->producer, 0);
    if (dlq->failed[0]) {
        ds_fail(errstr, errstr_size, "dead-letter topic %s: %s", dlq->topic, dlq->failed);
        dlq->failed[0] = '\0';
        return false;
    }
    return true;
}

uint64_t ds_dlq_delivered(const ds_dlq_t *dlq)
{
    return dlq->delivered;
}

/* ---- dualsync dlq list ---- */

static void print_entry(FILE *out, const ds_dlq_entry_t *e, const ds_kafka_msg_t *msg, bool json)
{
    if (json) {
        json_t *copy = json_deep_copy(e->root);
        char *text;

        if (!copy)
            return;
        json_object_set_new(copy, "dlq_partition", json_integer(msg->partition));
        json_object_set_new(copy, "dlq_offset", json_integer(msg->offset));
        text = json_dumps(copy, JSON_COMPACT);
        if (text)
            fprintf(out, "%s\n", text);
        free(text);
        json_decref(copy);
    } else {
        char *key = json_dumps(e->key, JSON_COMPACT | JSON_ENCODE_ANY);

        fprintf(out, "%s [%d] @%" PRId64 "  key=%s  target=%s  attempts=%d\n    %s\n", e->topic,
                (int)e->partition, e->offset, key ? key : "?", e->target ? e->target : "-",
                e->attempts, e->error);
        free(key);
    }
}

long ds_dlq_list(const ds_config_t *config, bool json, FILE *out, char *errstr, size_t errstr_size)
{
    ds_consumer_t *consumer = ds_consumer_new(config, NULL, NULL, NULL, NULL, errstr, errstr_size);
    ds_topic_partition_t *end = NULL;
    bool *done = NULL;
    int nend = 0, ndone = 0;
    long printed = -1, count = 0;

    if (!consumer)
        return -1;
    if (!ds_consumer_assign_all(consumer, config->apply_dlq_topic, 10000, &end, &nend, errstr,
                                errstr_size))
        goto out;
    if (!(done = calloc((size_t)nend + 1, sizeof(*done)))) {
        ds_fail(errstr, errstr_size, "out of memory");
        goto out;
    }
    for (int i = 0; i < nend; i++) {
        if (end[i].offset <= 0) {
            done[i] = true;
            ndone++;
        }
    }
    /* Up to the end as it was when listing started: a dead letter added meanwhile is for the
     * next listing, and a busy topic cannot keep this from finishing. */
    while (ndone < nend) {
        ds_kafka_msg_t msg;
        ds_consumer_poll_result_t r = ds_consumer_poll(consumer, 1000, &msg, errstr, errstr_size);
        int i;

        if (r == DS_CONSUMER_FAILED)
            goto out;
        if (r == DS_CONSUMER_NOTHING)
            continue;
        for (i = 0; i < nend && end[i].partition != msg.partition; i++)
            ;
        if (r == DS_CONSUMER_MESSAGE && i < nend && msg.offset < end[i].offset) {
            ds_dlq_entry_t entry;
            char why[256];

            if (ds_dlq_parse(msg.value, msg.value_len, &entry, why, sizeof(why))) {
                print_entry(out, &entry, &msg, json);
                ds_dlq_entry_clear(&entry);
                count++;
            } else {
                ds_warning("%s [%d] @%" PRId64 ": %s", config->apply_dlq_topic, (int)msg.partition,
                           msg.offset, why);
            }
        }
        /* EOF carries the next offset; a message its own. */
        if (i < nend && !done[i] &&
            (r == DS_CONSUMER_EOF ? msg.offset : msg.offset + 1) >= end[i].offset) {
            done[i] = true;
            ndone++;
        }
        if (r == DS_CONSUMER_MESSAGE)
            ds_consumer_release(&msg);
    }
    printed = count;

out:
    free(done);
    free(end);
    ds_consumer_free(consumer);
    return printed;
}
