/*
 * pending.h: `dualsync pending list`: the changes waiting in dualsync.pending for a parent
 * row, in every target database, with why and how long each waits.
 */
#ifndef DUALSYNC_PENDING_H
#define DUALSYNC_PENDING_H

#include <stdio.h>

#include "dualsync/common.h"
#include "dualsync/config.h"

/**
 * @brief Prints every pending change of every target database to @p out, oldest first: one
 *        entry per change (the database, the target, where the change was read: topic
 *        [partition] @offset, its key, how long it has waited and since when, and the reason:
 *        each required lookup that finds no row now, with the values it looks up, or the
 *        error stored when it was parked), or with @p json one JSON object per line
 *        ("database", "target", "topic", "partition", "offset", "key", "reason",
 *        "waiting_since", "age_s").
 * @return how many were printed, or -1 (errstr) with *config_error set when the mappings do
 *         not load, unset when a database cannot be read.
 */
long ds_pending_list(const ds_config_t *config, bool json, FILE *out, char *errstr,
                     size_t errstr_size, bool *config_error);

#endif
