/*
 * teardown.h: `dualsync teardown`: the end of a migration. Removes what dualsync put on the
 * databases (the capture slot, the publication it manages, the dualsync bookkeeping schema
 * of the source and of every target, apply's replication origins) and, when asked, the Kafka
 * topics, so that no forgotten slot holds WAL until the source's disk is full.
 *
 * Before removing anything it checks, unless forced, that nothing is lost by it: no capture
 * or apply process is connected, the slot holds no change that is not in Kafka, apply has
 * applied every change in Kafka, and `dualsync verify` finds the new tables exactly what
 * the mappings give. It prints what it will remove and asks, unless told yes.
 *
 * Every step is idempotent. The first step records the teardown in the source's dualsync
 * schema (dualsync.teardown) and the last one drops that schema, so a teardown killed half
 * way finishes when run again, without checks that what was already removed would fail.
 */
#ifndef DUALSYNC_TEARDOWN_H
#define DUALSYNC_TEARDOWN_H

#include <stdio.h>

#include "dualsync/common.h"
#include "dualsync/config.h"

/* Exit statuses of `dualsync teardown`. */
#define DS_TEARDOWN_EXIT_DONE    0 /* removed, or there was nothing to remove */
#define DS_TEARDOWN_EXIT_REFUSED 1 /* a check failed, or the user did not confirm */
#define DS_TEARDOWN_EXIT_SETUP   2 /* usage, configuration or connection error */

typedef struct ds_teardown_options {
    bool topics;    /* also delete the change, dead-letter and transaction topics */
    bool force;     /* skip the checks; end a capture session still holding the slot */
    bool yes;       /* do not ask for confirmation */
    int timeout_ms; /* how long the verification waits for capture and apply */
} ds_teardown_options_t;

/**
 * @brief Runs a teardown of what @p config describes (both sides: "source" and the apply
 *        side). Reads the confirmation from @p in, reports on @p out, problems on @p err.
 * @return DS_TEARDOWN_EXIT_DONE, DS_TEARDOWN_EXIT_REFUSED or DS_TEARDOWN_EXIT_SETUP.
 */
int ds_teardown_run(const ds_config_t *config, const ds_teardown_options_t *options, FILE *in,
                    FILE *out, FILE *err);

#endif
