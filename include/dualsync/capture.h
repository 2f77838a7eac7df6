/*
 * capture.h: the capture pipeline, PostgreSQL logical replication to Kafka.
 *
 *   replication stream --(pgoutput)--> decoder --> changes (Debezium JSON) --> producer
 *        ^                                                                       |
 *        +------ standby status: flush = last commit whose messages are all acked <-+
 */
#ifndef DUALSYNC_CAPTURE_H
#define DUALSYNC_CAPTURE_H

#include "dualsync/common.h"
#include "dualsync/config.h"

/* Exit codes of `dualsync capture`. */
#define DS_EXIT_OK 0
#define DS_EXIT_FAILURE 1 /* a runtime failure: the message says what, nothing was confirmed
                           * past it, a restart resumes from the slot */
#define DS_EXIT_USAGE 2   /* bad command line or configuration */

/**
 * @brief Runs capture until SIGINT/SIGTERM or a fatal error.
 *
 * Checks the source (wal_level, tables, replica identity), creates the publication and the
 * slot when missing, streams, and reconnects with backoff when the PostgreSQL connection is
 * lost. On a signal it waits (up to capture.shutdown_timeout_ms) for Kafka to acknowledge
 * what was sent, confirms it, and returns DS_EXIT_OK.
 */
int ds_capture_run(const ds_config_t *config);

#endif
