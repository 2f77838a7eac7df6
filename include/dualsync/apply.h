/*
 * apply.h: the apply side of a migration: change topics -> new tables, exactly once in effect.
 *
 *   Kafka (consumer group) --batch--> mapping (ds_mapping_eval) --> target database 1 --+
 *        ^                                       |                  target database 2 --+
 *        |                                       +--> dead letters (Kafka)              |
 *        +---- offsets, committed for lag tools after every database committed <-------+
 *
 * Each target database stores its own next offsets in the transaction that writes the rows
 * (dualsync.offsets); those, not Kafka's, say where reading starts. A crash at any point
 * loses and doubles nothing: a database skips what it already has.
 */
#ifndef DUALSYNC_APPLY_H
#define DUALSYNC_APPLY_H

#include <stdio.h>

#include "dualsync/common.h"
#include "dualsync/config.h"

/* Exit codes: the same as capture's (capture.h). */
#define DS_APPLY_EXIT_OK 0
#define DS_APPLY_EXIT_FAILURE                                                                      \
    1                         /* a runtime failure; a restart resumes from the databases'          \
                               * offsets */
#define DS_APPLY_EXIT_USAGE 2 /* bad command line, configuration, mappings or catalog */

/**
 * @brief `dualsync apply`: runs until SIGINT/SIGTERM (the current batch is committed, the
 *        consumer leaves the group, exit 0) or a fatal error.
 */
int ds_apply_run(const ds_config_t *config);

/**
 * @brief `dualsync dlq retry`: re-drives the dead letters present in apply.dlq_topic now,
 *        with the current mappings, as consumer group "<apply.group_id>.dlq-retry" (whose
 *        offsets every target database keeps, so a dead letter is re-driven once). One that
 *        fails again is published to the topic again with "attempts" + 1. Prints the counts
 *        to @p out.
 */
int ds_apply_dlq_retry(const ds_config_t *config, FILE *out);

#endif
