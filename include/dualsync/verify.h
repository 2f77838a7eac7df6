/*
 * verify.h: `dualsync verify`: are the new tables exactly what the mappings give from the
 * legacy tables, while live sync runs?
 *
 *   1. Catch up: take the source's WAL position, wait until the capture slot has confirmed it
 *      (every change up to it is in Kafka), read the mapped topics' end offsets, and wait
 *      until every target database's dualsync.offsets of the apply group reached them.
 *   2. Rebuild: read every legacy row of every mapped table under one REPEATABLE READ
 *      snapshot of the source, render it exactly as capture would (cdc/typemap.c), map it as
 *      a snapshot read ("op": "r") with the apply mappings, and execute the very statements
 *      apply executes, recompiled to write temporary shadow copies of the targets (and a
 *      temporary links table), in one REPEATABLE READ transaction per target database that
 *      is rolled back at the end. Lookups, casts and sql expressions are thus computed by the
 *      target database as apply computes them.
 *   3. Compare each shadow with its target by key: missing, extra, different (mapped
 *      columns only, IS DISTINCT FROM), with sample keys.
 */
#ifndef DUALSYNC_VERIFY_H
#define DUALSYNC_VERIFY_H

#include <stdio.h>

#include "dualsync/common.h"
#include "dualsync/config.h"

/* Exit statuses of `dualsync verify`. */
#define DS_VERIFY_EXIT_MATCH   0 /* every target is what the mappings give */
#define DS_VERIFY_EXIT_DIFFERS 1 /* some target has a missing, extra or different row */
#define DS_VERIFY_EXIT_SETUP   2 /* usage, configuration, connection, or apply did not catch up */

/* How to run a verification. */
typedef struct ds_verify_options {
    int timeout_ms; /* how long catching up may take (default 60000) */
    bool json;      /* one JSON document on out instead of the table */
} ds_verify_options_t;

/**
 * @brief Runs a verification with @p config (which needs both "source" and the apply side),
 *        writing the report to @p out and problems to @p err.
 * @return DS_VERIFY_EXIT_MATCH, DS_VERIFY_EXIT_DIFFERS or DS_VERIFY_EXIT_SETUP.
 */
int ds_verify_run(const ds_config_t *config, const ds_verify_options_t *options, FILE *out,
                  FILE *err);

#endif
