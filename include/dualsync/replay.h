/*
 * replay.h: `dualsync replay`: rebuilds the new tables from the beginning of their topics,
 * while the application, capture and apply keep running.
 *
 * Shadow and swap. Each target table T of the replayed mappings is rebuilt into a shadow
 * "T__replay" (same schema; columns, defaults, constraints, indexes, comments, grants, owner
 * and the foreign keys T holds) by apply's own statements, aimed at the shadows
 * (ds_mapping_set_rename_tables), with apply's own applier, whose bookkeeping (links, offsets,
 * pending rows, dead-letter records) lives in schema "dualsync_replay" instead of "dualsync".
 * The replay reads the topics with its own consumer (assigned partitions, no group) and never
 * goes past live apply's stored offsets (dualsync.offsets of apply.group_id): once the shadows
 * are there, one short transaction takes the live tables (lock_timeout, retried with backoff),
 * freezes live apply's offsets, writes the last tail to the shadows, moves the links, pending
 * rows and dead-letter records, re-points the foreign keys other tables hold, and renames.
 * Live apply then continues on the new tables from its own offsets: no gap, no double apply.
 * A crash leaves the live tables untouched; the same command resumes (replay.c).
 *
 * In place (--in-place), for tables nobody reads yet: each target table is emptied
 * (TRUNCATE) and written again where it is, from offset 0 up to live apply's offsets, while
 * live apply into that database waits (DS_GATE_SESSION_SQL); readers see the table fill up. No
 * shadow, no rename: views, triggers and rules on the table are kept. A crash leaves the table
 * half rebuilt and live apply waiting; the same command resumes and finishes it.
 */
#ifndef DUALSYNC_REPLAY_H
#define DUALSYNC_REPLAY_H

#include "dualsync/common.h"
#include "dualsync/config.h"

#define DS_REPLAY_EXIT_OK      0
#define DS_REPLAY_EXIT_FAILURE 1 /* a runtime failure; the same command resumes */
#define DS_REPLAY_EXIT_USAGE   2 /* bad command line, configuration, mappings, or a table or
                                  * topic replay refuses (the message says why and what to do) */

typedef struct ds_replay_options {
    const char *const *mappings; /* --mapping: file stems or paths as the config lists them;
                                  * NULL-terminated; empty: every mapping of the config */
    int nmappings;
    bool progress_bar; /* draw a bar on stderr (a terminal), else log lines */
    bool in_place;     /* --in-place: empty each target table and write it again where it is,
                        * live apply into its database held back meanwhile (replay.c,
                        * close_gate), instead of a shadow swapped in */
} ds_replay_options_t;

/** @brief Runs a replay to the end (the swap). Returns a DS_REPLAY_EXIT_* status. */
int ds_replay_run(const ds_config_t *config, const ds_replay_options_t *options);

#endif
