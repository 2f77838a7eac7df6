/*
 * status.h: `dualsync status`, the state of a migration read straight from PostgreSQL and
 * Kafka (the replication slot, the apply group's offsets against the topics' ends, pending
 * rows, dead letters, backfill progress), so that it answers while the daemons are down.
 */
#ifndef DUALSYNC_STATUS_H
#define DUALSYNC_STATUS_H

#include <stdio.h>

#include "dualsync/common.h"
#include "dualsync/config.h"

#define DS_STATUS_EXIT_HEALTHY   0 /* nothing below is wrong */
#define DS_STATUS_EXIT_UNHEALTHY 1 /* a problem is named in the output */
#define DS_STATUS_EXIT_CONFIG    2 /* usage or configuration error (mapping files included) */

typedef struct ds_status_options {
    bool json;                /* one JSON document instead of the text view */
    int64_t max_lag_messages; /* unhealthy when a partition lags more; -1: no threshold */
    int64_t max_retained_wal; /* unhealthy when the slot retains more bytes; -1: none */
    int64_t max_seconds_behind; /* unhealthy when a target database's oldest unapplied change
                                 * was committed longer ago; -1: none */
    int timeout_ms;           /* how long one Kafka request may take */
} ds_status_options_t;

typedef struct ds_status ds_status_t;

/**
 * @brief Loads what @p config names for a status view: the mapping files, when the file has
 *        the apply side. @p config is borrowed and must outlive the result.
 * @return NULL with errstr set on a configuration error (exit DS_STATUS_EXIT_CONFIG).
 */
ds_status_t *ds_status_new(const ds_config_t *config, const ds_status_options_t *options,
                           char *errstr, size_t errstr_size);

/** @brief Accepts NULL. */
void ds_status_free(ds_status_t *status);

/**
 * @brief Reads the state once and writes it to @p out (text, or one JSON document).
 *        A database or Kafka that cannot be reached is a problem like the others.
 * @return DS_STATUS_EXIT_HEALTHY or DS_STATUS_EXIT_UNHEALTHY.
 */
int ds_status_report(ds_status_t *status, FILE *out);

#endif
