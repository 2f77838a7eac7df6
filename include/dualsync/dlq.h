/*
 * dlq.h: dead letters: changes apply could not write, kept on a Kafka topic.
 *
 * A dead letter's key is the change's own Kafka key; its value is one JSON object:
 *
 *   {"topic": "clinic.public.users", "partition": 0, "offset": 42,
 *    "key": {"id": 7}, "value": {"before": null, "after": {...}, "op": "c", ...},
 *    "target": "users/global_doctors", "error": "...", "ts_ms": 1700000000000,
 *    "attempts": 2, "recorded": true}
 *
 * "key" and "value" are the original JSON (a text that is not JSON is kept as a string);
 * "target" is the target whose write failed, or null when the change could not be mapped at
 * all; "attempts" (how many times applying it failed) is written from the second one on, by
 * `dualsync dlq retry`; "recorded" says the target databases keep a record of it
 * (dualsync.dead_letters, see applier.h), so `dlq retry` can tell whether a newer change of
 * the same source row was applied since (dead letters written before that record existed
 * have no "recorded" and are retried unchecked).
 *
 * Dead letters are produced idempotently and flushed before the offsets of their batch are
 * committed, so a crash can duplicate a dead letter but never lose one.
 */
#ifndef DUALSYNC_DLQ_H
#define DUALSYNC_DLQ_H

#include <stdio.h>

#include <jansson.h>

#include "dualsync/common.h"
#include "dualsync/config.h"

/* A dead letter to write. Everything is borrowed. */
typedef struct ds_dead_letter {
    const char *topic; /* where the change was read first */
    int32_t partition;
    int64_t offset;
    const char *key; /* the change's key text (JSON), or NULL */
    size_t key_len;
    const char *value; /* the change's value text (JSON), or NULL for a tombstone */
    size_t value_len;
    const char *target; /* the target id whose write failed, or NULL */
    const char *error;  /* why */
    int64_t ts_ms;      /* when it was dead-lettered */
    int attempts;       /* failed attempts, at least 1 */
    bool recorded;      /* every target database records it (dualsync.dead_letters) in the
                         * transaction that moves past it: written as "recorded": true */
} ds_dead_letter_t;

/** @brief The dead letter's value as JSON text (malloc'd, NUL-terminated; aborts when out of
 *         memory, as ds_buf does). */
char *ds_dlq_format(const ds_dead_letter_t *dl, size_t *len);

/* A dead letter read back. Strings and JSON values are borrowed from root. */
typedef struct ds_dlq_entry {
    json_t *root;      /* the parsed value, owned */
    const char *topic; /* as written */
    int32_t partition;
    int64_t offset;
    json_t *key;        /* the original key (JSON null when there was none) */
    json_t *value;      /* the original value (JSON null for a tombstone) */
    const char *target; /* NULL when null */
    const char *error;
    int64_t ts_ms;
    int attempts; /* 1 when the field is absent */
    bool recorded; /* "recorded": true (false when absent: an older dead letter) */
} ds_dlq_entry_t;

/** @brief Parses a dead letter; false (errstr says which field) when it is not one. */
bool ds_dlq_parse(const char *text, size_t len, ds_dlq_entry_t *entry, char *errstr,
                  size_t errstr_size) DS_MUST_CHECK;

/** @brief Frees what ds_dlq_parse() allocated; accepts a zeroed entry. */
void ds_dlq_entry_clear(ds_dlq_entry_t *entry);

/* The dead-letter producer. */
typedef struct ds_dlq ds_dlq_t;

/** @brief An idempotent producer for apply.dlq_topic (ds_producer, producer properties only). */
ds_dlq_t *ds_dlq_new(const ds_config_t *config, char *errstr, size_t errstr_size);

/** @brief Waits up to @p timeout_ms for what is outstanding, then frees; accepts NULL. */
void ds_dlq_free(ds_dlq_t *dlq, int timeout_ms);

/** @brief Queues one dead letter (keyed by the change's key). */
bool ds_dlq_send(ds_dlq_t *dlq, const ds_dead_letter_t *dl, char *errstr,
                 size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief Waits until Kafka acknowledged every dead letter sent. The producer retries for
 *        ever while the broker is away; @p abort (polled every 100 ms, may be NULL) ends the
 *        wait early.
 * @return false when a delivery failed, or on abort, with errstr saying which.
 */
bool ds_dlq_flush(ds_dlq_t *dlq, bool (*abort)(void *ctx), void *abort_ctx, char *errstr,
                  size_t errstr_size) DS_MUST_CHECK;

/** @brief Dead letters acknowledged by Kafka since the start. */
uint64_t ds_dlq_delivered(const ds_dlq_t *dlq);

/**
 * @brief `dualsync dlq list`: prints every dead letter of apply.dlq_topic, from the beginning
 *        to what is there now, to @p out: one line each ("topic [partition] @offset key=...
 *        target=... error"), or with @p json one JSON object per line (the dead letter plus
 *        "dlq_partition" and "dlq_offset").
 * @return the number printed, or -1 on failure (errstr).
 */
long ds_dlq_list(const ds_config_t *config, bool json, FILE *out, char *errstr, size_t errstr_size);

#endif
