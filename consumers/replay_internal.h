/*
 * replay_internal.h: between the files of `dualsync replay`: replay.c (what is replayed, the
 * run), replay_shadows.c (the shadows, the in-place gate), replay_rebuild.c (reading the topics
 * into them), replay_swap.c (the swap) and replay_topics.c (the topics' retention).
 */
#ifndef DUALSYNC_REPLAY_INTERNAL_H
#define DUALSYNC_REPLAY_INTERNAL_H

#include <signal.h>

#include <libpq-fe.h>

#include "dualsync/applier.h"
#include "dualsync/backfill.h"
#include "dualsync/batch.h"
#include "dualsync/config.h"
#include "dualsync/consumer.h"
#include "dualsync/dlq.h"
#include "dualsync/mapping.h"
#include "dualsync/offsets.h"
#include "dualsync/replay.h"

#define REPLAY_SCHEMA  "dualsync_replay"
#define SHADOW_SUFFIX  "__replay"
#define OLD_SUFFIX     "__replay_old"
#define POLL_MS        200
/* The swap starts once a rebuild pass leaves fewer messages than this behind live apply:
 * the tail the swap writes while it holds the locks stays short. */
#define SWAP_MAX_TAIL  2000
/* How long the swap waits for each lock before it lets go and tries again (pg_repack and
 * pg-osc do the same): the application's readers queue behind a waiting ACCESS EXCLUSIVE. */
#define LOCK_TIMEOUT   "2s"
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 10000
#define MAX_SWAP_TRIES 30

/* SIGINT and SIGTERM received (replay.c): the first stops at the next safe point, the second
 * gives up waiting for a database. */
extern volatile sig_atomic_t ds_replay_stop_signals;

/* A replayed target table (an upsert target's table) of one target database. */
typedef struct rtable {
    int db;            /* index in config->target_names */
    char *schema;      /* unquoted */
    char *table;       /* unquoted */
    char *live;        /* "schema"."table" */
    char *shadow_name; /* table__replay, unquoted */
    char *shadow;      /* "schema"."table__replay" */
    char *old_name;    /* table__replay_old, unquoted */
    char *old;         /* "schema"."table__replay_old" */
    bool in_place;     /* written by in-place targets (mode "update"): a legacy table, never
                        * swapped; its shadow holds its primary key, the targets' keys and
                        * mapped columns, and the swap copies the values that differ */
} rtable_t;

/* A partition of a mapped topic. */
typedef struct rpart {
    const char *topic; /* borrowed from the set */
    int32_t partition;
    int64_t bound;   /* live apply's next offset (L): the replay stops below it */
    int64_t reached; /* the highest bound a pass read up to (gaps: compaction, markers) */
    bool done;       /* this pass: nothing more below bound */
} rpart_t;

typedef struct replay {
    const ds_config_t *config;
    const ds_replay_options_t *opt;
    const char **paths;    /* the mapping files replayed (borrowed from config) */
    int npaths;
    ds_mapping_set_t *set; /* compiled against the shadows */
    rtable_t *tables;      /* every replayed table, all databases */
    int ntables;
    char *group_id;        /* "<apply.group_id>.replay": the key of the replay's offsets (in its
                            * own schema; distinct from live apply's group all the same, so that
                            * nothing keyed by group ever mixes the two) */
    char *origin;          /* "<apply.origin>.replay": never held by live apply, skipped by
                            * capture as every "<apply.origin>.<anything>" */

    /* The target database being replayed. */
    int db;
    const char *dbname;
    PGconn *conn; /* the control connection: state, shadows, the swap */
    ds_applier_t *applier;
    ds_offsets_t *offsets; /* the replay's stored offsets (one database: 0) */
    ds_consumer_t *consumer;
    ds_dlq_t *dlq;
    ds_batch_t *batch;    /* the batch being read */
    ds_batch_t *inflight; /* the one before: writes sent (ds_applier_send), not committed */
    ds_batch_t *spare;    /* an empty batch to read into next */
    ds_applier_hooks_t hooks;
    ds_applier_stats_t stats;
    rpart_t *parts;
    int nparts;
    ds_backfill_progress_t prog;
    uint64_t messages;     /* messages written to the shadows by this run */
    uint64_t dead_letters; /* published by this run */
    int64_t started_ms; /* when this replay (maybe an earlier, interrupted run) began: Unix ms */
    bool refused;          /* errstr is a refusal (a table the swap cannot carry over): exit 2 */
    bool whole_links;      /* the replay's links table was made logged, to be moved whole */
    char errstr[8192];
} replay_t;

/* Whether table @p t of this database is rebuilt in a shadow and swapped in (not an in-place
 * target's legacy table, not a table --in-place rebuilds where it is). */
static inline bool ds_replay_swapped(const replay_t *r, const rtable_t *t)
{
    return t->db == r->db && !t->in_place && !r->opt->in_place;
}

/* Whether table @p t of this database is emptied and rebuilt where it is (--in-place). */
static inline bool ds_replay_rebuilt_in_place(const replay_t *r, const rtable_t *t)
{
    return t->db == r->db && !t->in_place && r->opt->in_place;
}

/* ---- replay.c: helpers ---- */

/*
 * Runs @p sql on the control connection; false (r->errstr names @p what and the server's
 * message, @p sqlstate the SQLSTATE when not NULL) unless it answers @p ok.
 */
bool ds_replay_exec(replay_t *r, const char *sql, int nparams, const char *const *params,
                    ExecStatusType ok, PGresult **res, const char *what, char *sqlstate);

/* strdup that aborts when out of memory. */
char *ds_replay_xstrdup(const char *s);

/* Unix time in milliseconds. */
int64_t ds_replay_wall_ms(void);

/* Sleeps @p ms, cut short by a stop signal. */
void ds_replay_pause_ms(int ms);

/* The short names every file of the replay writes its statements and waits with. */
static inline bool exec(replay_t *r, const char *sql, int nparams, const char *const *params,
                        ExecStatusType ok, PGresult **res, const char *what, char *sqlstate)
{
    return ds_replay_exec(r, sql, nparams, params, ok, res, what, sqlstate);
}

static inline char *xstrdup(const char *s)
{
    return ds_replay_xstrdup(s);
}

static inline int64_t wall_ms(void)
{
    return ds_replay_wall_ms();
}

static inline void pause_ms(int ms)
{
    ds_replay_pause_ms(ms);
}

/* ---- replay.c: what is replayed ---- */

/* DS_APPLY_SCHEMA_SQL for the replay's own schema; caller frees. */
char *ds_replay_schema_sql(void);

/* A hash of the replayed files and the mode: a run resumes only what the same ones began. */
void ds_replay_fingerprint(const replay_t *r, char out[17]);

/* The index in r->tables of a table of a target database, or -1. */
int ds_replay_find_table(const replay_t *r, const char *connection, const char *schema,
                         const char *table);

/* ---- replay_shadows.c ---- */

/* Creates the shadows (or keeps those of an interrupted run of the same mappings); with
 * --in-place closes the gate and empties the live tables instead. */
bool ds_replay_prepare_shadows(replay_t *r);

/* Validates the foreign keys a swap re-pointed NOT VALID. */
bool ds_replay_validate_foreign_keys(replay_t *r);

/* In the swap: writes an in-place table's recomputed values that differ. */
bool ds_replay_copy_in_place(replay_t *r, const rtable_t *t);

/* In the swap: lets live apply write the tables again (dualsync.in_place_rebuilds). */
bool ds_replay_open_gate(replay_t *r, char *sqlstate);

/* ---- replay_rebuild.c ---- */

/* The applier's hooks: dead letters go to the dead-letter topic, durable before COMMIT. */
bool ds_replay_hook_dead_letter(void *ctx, const ds_dead_letter_t *dl, char *errstr,
                                size_t errstr_size);

bool ds_replay_hook_before_commit(void *ctx, char *errstr, size_t errstr_size);

/* Lists the partitions of the mapped topics. */
bool ds_replay_list_partitions(replay_t *r);

/* Reads every partition into the shadows up to live apply's offsets, again and again
 * while live apply moves on, until they are close behind. */
bool ds_replay_rebuild(replay_t *r);

/* Messages between the shadows and live apply's offsets. */
int64_t ds_replay_behind(const replay_t *r);

/* Reads live apply's offsets (the bounds); with @p lock, FOR UPDATE (the swap). */
bool ds_replay_read_bounds(replay_t *r, bool lock);

/* Writes everything up to the bounds into the shadows. */
bool ds_replay_consume_to_bounds(replay_t *r);

/* ---- replay_swap.c ---- */

/* Whether every target with links in this database is replayed (*all). */
bool ds_replay_links_all_replayed(replay_t *r, bool *all);

/* Makes the shadows (and with @p whole_links the replay's links) logged, before the
 * swap. */
bool ds_replay_set_logged(replay_t *r, bool whole_links);

/* The swap, retried with backoff when a lock is not granted in time. */
bool ds_replay_swap(replay_t *r);

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
