/*
 * batch.c: the messages of one batch, their copied writes and the partitions they cover.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dualsync/batch.h"

struct ds_batch {
    ds_batch_msg_t *msgs; /* nmsgs entries, cap allocated */
    int nmsgs;
    int cap;
    ds_batch_partition_t *parts; /* nparts entries, parts_cap allocated */
    int nparts;
    int parts_cap;
    int64_t started_us; /* monotonic time of the first message */
};

static int64_t monotonic_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

ds_batch_t *ds_batch_new(void)
{
    return calloc(1, sizeof(ds_batch_t));
}

static void free_writes(ds_batch_msg_t *m)
{
    free(m->writes); /* one block with the parameters (ds_batch_set_writes) */
    m->writes = NULL;
    m->nwrites = 0;
    for (int i = 0; i < m->nrejects; i++) {
        free(m->rejects[i].target);
        free(m->rejects[i].error);
    }
    free(m->rejects);
    m->rejects = NULL;
    m->nrejects = 0;
}

static void free_msg(ds_batch_msg_t *m)
{
    free_writes(m);
    json_decref(m->value);
    free(m->error);
    free(m->storage);
    ds_consumer_release(&m->kafka);
}

void ds_batch_clear(ds_batch_t *batch)
{
    for (int i = 0; i < batch->nmsgs; i++)
        free_msg(&batch->msgs[i]);
    batch->nmsgs = 0;
    batch->nparts = 0;
    batch->started_us = 0;
}

void ds_batch_free(ds_batch_t *batch)
{
    if (!batch)
        return;
    ds_batch_clear(batch);
    free(batch->msgs);
    free(batch->parts);
    free(batch);
}

/* The entry of a partition, or NULL. Searched from the end: messages come in runs of one
 * partition. */
static ds_batch_partition_t *find_partition(ds_batch_t *batch, const char *topic,
                                            int32_t partition)
{
    for (int i = batch->nparts - 1; i >= 0; i--) {
        ds_batch_partition_t *p = &batch->parts[i];

        if (p->partition == partition && strcmp(p->topic, topic) == 0)
            return p;
    }
    return NULL;
}

static void note_position(ds_batch_partition_t *p, ds_source_pos_t position)
{
    if (position.commit != DS_INVALID_LSN && ds_source_pos_before(p->newest, position))
        p->newest = position;
}

static bool note_partition(ds_batch_t *batch, const char *topic, int32_t partition, int64_t offset,
                           ds_source_pos_t position)
{
    ds_batch_partition_t *p = find_partition(batch, topic, partition);

    if (p) {
        if (offset < p->first_offset)
            p->first_offset = offset;
        if (offset > p->last_offset)
            p->last_offset = offset;
        note_position(p, position);
        return true;
    }
    if (batch->nparts == batch->parts_cap) {
        int cap = batch->parts_cap ? batch->parts_cap * 2 : 8;
        ds_batch_partition_t *parts = realloc(batch->parts, (size_t)cap * sizeof(*parts));

        if (!parts)
            return false;
        batch->parts = parts;
        batch->parts_cap = cap;
    }
    p = &batch->parts[batch->nparts++];
    p->topic = topic;
    p->partition = partition;
    p->first_offset = p->last_offset = offset;
    p->newest = (ds_source_pos_t){0, 0};
    note_position(p, position);
    return true;
}

void ds_batch_note_position(ds_batch_t *batch, const ds_batch_msg_t *m)
{
    ds_batch_partition_t *p = find_partition(batch, m->kafka.topic, m->kafka.partition);

    if (p)
        note_position(p, m->position);
}

ds_batch_msg_t *ds_batch_add(ds_batch_t *batch, ds_kafka_msg_t *msg)
{
    ds_batch_msg_t *m;

    if (batch->nmsgs == batch->cap) {
        int cap = batch->cap ? batch->cap * 2 : 64;
        ds_batch_msg_t *msgs = realloc(batch->msgs, (size_t)cap * sizeof(*msgs));

        if (!msgs) {
            ds_consumer_release(msg);
            return NULL;
        }
        batch->msgs = msgs;
        batch->cap = cap;
    }
    /* The partition's topic name points into the message, which the batch keeps. */
    if (!note_partition(batch, msg->topic, msg->partition, msg->offset, (ds_source_pos_t){0, 0})) {
        ds_consumer_release(msg);
        return NULL;
    }
    m = &batch->msgs[batch->nmsgs++];
    memset(m, 0, sizeof(*m));
    m->kafka = *msg;
    msg->handle = NULL; /* the batch has it now */
    m->topic = m->kafka.topic;
    m->partition = m->kafka.partition;
    m->offset = m->kafka.offset;
    m->key = m->kafka.key;
    m->key_len = m->kafka.key_len;
    m->value_text = m->kafka.value;
    m->value_len = m->kafka.value_len;
    if (batch->nmsgs == 1)
        batch->started_us = monotonic_us();
    return m;
}

bool ds_batch_set_source(ds_batch_msg_t *m, const char *topic, int32_t partition, int64_t offset,
                         const char *key, size_t key_len, const char *value_text, size_t value_len,
                         const char *only_target)
{
    size_t topic_len = strlen(topic), target_len = only_target ? strlen(only_target) : 0;
    char *storage = malloc(topic_len + 1 + key_len + 1 + value_len + 1 + target_len + 1), *p;

    if (!storage)
        return false;
    p = storage;
    memcpy(p, topic, topic_len + 1);
    m->topic = p;
    p += topic_len + 1;
    if (key) {
        memcpy(p, key, key_len);
        p[key_len] = '\0';
        m->key = p;
        m->key_len = key_len;
        p += key_len + 1;
    } else {
        m->key = NULL;
        m->key_len = 0;
    }
    if (value_text) {
        memcpy(p, value_text, value_len);
        p[value_len] = '\0';
        m->value_text = p;
        m->value_len = value_len;
        p += value_len + 1;
    } else {
        m->value_text = NULL;
        m->value_len = 0;
    }
    if (only_target) {
        memcpy(p, only_target, target_len + 1);
        m->only_target = p;
    } else {
        m->only_target = NULL;
    }
    free(m->storage);
    m->storage = storage;
    m->partition = partition;
    m->offset = offset;
    return true;
}

/* The writes, their parameter arrays and the parameter texts in one block: one allocation
 * and one free per change instead of one per parameter. */
bool ds_batch_set_writes(ds_batch_msg_t *m, const ds_write_list_t *writes)
{
    size_t size = ((size_t)writes->nwrites + 1) * sizeof(ds_batch_write_t), text = 0;
    ds_batch_write_t *copy;
    char **slots;
    char *p;

    for (int i = 0; i < writes->nwrites; i++) {
        const ds_target_write_t *w = &writes->writes[i];

        size += ((size_t)w->nparams + 1) * sizeof(char *);
        for (int k = 0; k < w->nparams; k++)
            text += w->params[k] ? strlen(w->params[k]) + 1 : 0;
    }
    if (!(copy = malloc(size + text)))
        return false;
    slots = (char **)(copy + writes->nwrites + 1);
    p = (char *)copy + size;
    for (int i = 0; i < writes->nwrites; i++) {
        const ds_target_write_t *w = &writes->writes[i];

        copy[i].target = w->target;
        copy[i].kind = w->kind;
        copy[i].sole_source = w->sole_source;
        copy[i].nparams = w->nparams;
        copy[i].params = slots;
        for (int k = 0; k < w->nparams; k++) {
            size_t len;

            if (!w->params[k]) {
                slots[k] = NULL;
                continue;
            }
            len = strlen(w->params[k]) + 1;
            slots[k] = memcpy(p, w->params[k], len);
            p += len;
        }
        slots[w->nparams] = NULL;
        slots += w->nparams + 1;
    }
    memset(&copy[writes->nwrites], 0, sizeof(*copy));
    free_writes(m);
    m->writes = copy;
    m->nwrites = writes->nwrites;
    return true;
}

bool ds_batch_set_rejects(ds_batch_msg_t *m, const ds_write_list_t *writes)
{
    if (writes->nrejects == 0)
        return true;
    m->rejects = calloc((size_t)writes->nrejects, sizeof(*m->rejects));
    if (!m->rejects)
        return false;
    for (; m->nrejects < writes->nrejects; m->nrejects++) {
        ds_batch_reject_t *r = &m->rejects[m->nrejects];

        r->target = strdup(writes->rejects[m->nrejects].target->id);
        r->error = strdup(writes->rejects[m->nrejects].error);
        if (!r->target || !r->error) {
            m->nrejects++; /* freed with the others */
            return false;
        }
    }
    return true;
}

bool ds_batch_set_error(ds_batch_msg_t *m, const char *error)
{
    char *copy = strdup(error);

    if (!copy)
        return false;
    free(m->error);
    m->error = copy;
    free_writes(m);
    return true;
}

int ds_batch_count(const ds_batch_t *batch)
{
    return batch->nmsgs;
}

ds_batch_msg_t *ds_batch_at(ds_batch_t *batch, int i)
{
    return &batch->msgs[i];
}

int ds_batch_npartitions(const ds_batch_t *batch)
{
    return batch->nparts;
}

const ds_batch_partition_t *ds_batch_partition(const ds_batch_t *batch, int i)
{
    return &batch->parts[i];
}

int ds_batch_drop_partition(ds_batch_t *batch, const char *topic, int32_t partition)
{
    int kept = 0, dropped = 0;

    for (int i = 0; i < batch->nmsgs; i++) {
        ds_batch_msg_t *m = &batch->msgs[i];

        if (m->kafka.partition == partition && strcmp(m->kafka.topic, topic) == 0) {
            free_msg(m);
            dropped++;
        } else {
            batch->msgs[kept++] = *m;
        }
    }
    batch->nmsgs = kept;
    /* Partition entries point at topic names inside messages: rebuild them from the rest. */
    batch->nparts = 0;
    for (int i = 0; i < batch->nmsgs; i++)
        (void)note_partition(batch, batch->msgs[i].kafka.topic, batch->msgs[i].kafka.partition,
                             batch->msgs[i].kafka.offset,
                             batch->msgs[i].position); /* only shrinks: cannot fail */
    if (batch->nmsgs == 0)
        batch->started_us = 0;
    return dropped;
}

int64_t ds_batch_started_us(const ds_batch_t *batch)
{
    return batch->started_us;
}

ds_dead_letter_t ds_batch_dead_letter(const ds_batch_msg_t *m, const char *target,
                                      const char *error)
{
    ds_dead_letter_t dl;

    memset(&dl, 0, sizeof(dl));
    dl.topic = m->topic;
    dl.partition = m->partition;
    dl.offset = m->offset;
    dl.key = m->key;
    dl.key_len = m->key_len;
    dl.value = m->value_text;
    dl.value_len = m->value_len;
    dl.target = target;
    dl.error = error;
    dl.ts_ms = ds_now_us() / 1000;
    dl.attempts = m->attempts + 1;
    return dl;
}
