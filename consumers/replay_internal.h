/*
 * replay_internal.h: between replay.c and replay_topics.c.
 */
#ifndef DUALSYNC_REPLAY_INTERNAL_H
#define DUALSYNC_REPLAY_INTERNAL_H

#include "dualsync/config.h"
#include "dualsync/mapping.h"

/* What a replay needs to know of one topic's retention. */
typedef struct ds_replay_topic {
    const char *topic;           /* borrowed from the set */
    char cleanup_policy[64];     /* cleanup.policy: "compact", "delete", "compact,delete" */
    int64_t retention_ms;        /* retention.ms (-1: for ever) */
    int64_t delete_retention_ms; /* delete.retention.ms: how long tombstones stay; -1 unknown */
} ds_replay_topic_t;

/**
 * @brief Checks that every topic of @p set can rebuild the current state: each partition still
 *        starts at offset 0 (nothing was deleted by retention or delete-records). On success
 *        *topics (caller frees) holds each topic's retention settings; warns about topics that
 *        delete by time (complete now, not for long). On failure errstr names the topic, the
 *        partition, what is missing, and the fix.
 */
bool ds_replay_check_topics(const ds_config_t *config, ds_mapping_set_t *set,
                            ds_replay_topic_t **topics, int *ntopics, char *errstr,
                            size_t errstr_size) DS_MUST_CHECK;

#endif
