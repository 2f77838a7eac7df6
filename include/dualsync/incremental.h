/*
 * incremental.h: `dualsync backfill --table T`, the incremental, watermark-based re-backfill
 * of one table into a running pipeline (the DBLog / Debezium incremental-snapshot technique).
 *
 * Two halves, one protocol. Everything travels through the WAL, so capture sees the
 * watermarks and the rows in exactly the order of the changes around them, and a restarted
 * capture sees them again:
 *
 *   backfill process (ds_incremental_run)           capture (ds_incremental_t)
 *   ------------------------------------            --------------------------------------
 *   pg_logical_emit_message(false, LOW) ----WAL---> opens a window for the chunk; holds the
 *                                                   slot before it; records the key of every
 *                                                   streamed change of the table
 *   BEGIN REPEATABLE READ
 *   SELECT .. WHERE (pk) > (last) ORDER BY pk LIMIT n
 *   pg_logical_emit_message(true, HIGH + the rows)
 *   COMMIT  --------------------------------WAL---> drops the rows whose key the window saw
 *                                                   (the stream carries a newer state), sends
 *                                                   the rest as read events (op "r",
 *                                                   source.snapshot "incremental"), and lets
 *                                                   the slot move once Kafka has them
 *   waits for the slot's confirmed_flush_lsn to pass the HIGH message's LSN, records the
 *   chunk in dualsync.backfill_state, goes on with the next chunk
 *
 * Both watermarks are logical decoding messages with the prefix DS_INCREMENTAL_PREFIX and a
 * JSON body:
 *   LOW   {"watermark":"low","slot":S,"id":RUN,"chunk":N,"schema":..,"table":..,"ts":US}
 *   HIGH  {"watermark":"high","slot":S,"id":RUN,"chunk":N,"schema":..,"table":..,
 *          "relid":OID,"columns":[[name,type_oid,typmod,is_key],..],"rows":[[text|null,..],..]}
 * "ts" is the source's clock when the LOW was written (microseconds since the Unix epoch).
 */
#ifndef DUALSYNC_INCREMENTAL_H
#define DUALSYNC_INCREMENTAL_H

#include <signal.h>

#include "dualsync/changes.h"
#include "dualsync/common.h"
#include "dualsync/config.h"
#include "dualsync/pgoutput.h"
#include "dualsync/preflight.h"

/* The prefix of the watermark messages; messages with other prefixes are not dualsync's. */
#define DS_INCREMENTAL_PREFIX "dualsync.backfill"

/* A window whose HIGH has not come while the stream reached transactions committed this
 * long after its LOW is abandoned (the backfill process died, or is far too slow), so the
 * slot is not held forever. The backfill process redoes a chunk that took more than half of
 * it, so a chunk it records is never one capture abandoned. */
#define DS_INCREMENTAL_WINDOW_TIMEOUT_US INT64_C(120000000)

/* ---- capture side -------------------------------------------------------------------- */

typedef struct ds_incremental ds_incremental_t;

/* How capture ties a window to its slot bookkeeping (the in-flight ring). */
typedef struct ds_incremental_hooks {
    /* A window opened at a LOW watermark: until release() the slot must not be confirmed at
     * or past the LOW. Returns a token naming the hold. */
    uint64_t (*hold)(void *ctx);
    /* Hands one read event of the window held by @token to Kafka: the hold's release must
     * not let the slot move before Kafka acknowledged it. */
    bool (*emit)(void *ctx, uint64_t token, const ds_change_record_t *rec, char *errstr,
                 size_t errstr_size);
    /* The window held by @token is closed (its rows handed over, or abandoned). */
    void (*release)(void *ctx, uint64_t token);
    /* Whether capture's in-flight limits are reached: the rows of a HIGH then wait for
     * ds_incremental_resume. NULL: never. */
    bool (*full)(void *ctx);
    void *ctx; /* their first argument */
} ds_incremental_hooks_t;

/**
 * @brief A tracker of the open windows of capture's slot.
 * @param slot     capture's slot: watermarks of backfills for other slots are ignored.
 * @param catalog  capture's tables (borrowed): watermarks of other tables are ignored.
 * @param changes  the options of capture's record builder (copied by ds_changes_new), so read
 *                 events are keyed, named and rendered exactly like streamed changes.
 * @return NULL when out of memory.
 */
ds_incremental_t *ds_incremental_new(const char *slot, const ds_source_catalog_t *catalog,
                                     const ds_changes_options_t *changes,
                                     const ds_incremental_hooks_t *hooks);

/** @brief Accepts NULL. Does not call release(): the caller drops its holds itself (a new
 *         replication session starts with a new tracker: the slot was held before every open
 *         window's LOW, so the new session receives it again). */
void ds_incremental_free(ds_incremental_t *inc);

/** @brief Open windows. */
size_t ds_incremental_open_windows(const ds_incremental_t *inc);

/**
 * @brief Records a streamed record: while a window of its topic is open, its key (or, for a
 *        keyless truncate, the whole table) is marked as changed. Cheap when no window is
 *        open.
 * @return false only when out of memory (errstr says so).
 */
bool ds_incremental_observe(ds_incremental_t *inc, const ds_change_record_t *rec, char *errstr,
                            size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief Notes the commit time of a streamed transaction (Begin), microseconds since the
 *        Unix epoch: windows whose LOW is older than DS_INCREMENTAL_WINDOW_TIMEOUT_US are
 *        abandoned (released, with a warning).
 */
void ds_incremental_clock(ds_incremental_t *inc, int64_t commit_time_us);

/**
 * @brief Handles one logical decoding message (pgoutput 'M').
 *
 * A LOW opens a window (replacing an older one of the same table: its backfill process is
 * gone). A HIGH with its window open emits the chunk rows the window did not see change and
 * closes it; a HIGH without one is dropped (its LOW came before this session's start point),
 * and the backfill process redoes the chunk. Other prefixes, other slots and tables that are
 * not capture's are ignored.
 *
 * A HIGH's rows are handed over until hooks.full says capture's in-flight limits are
 * reached; the rest wait (ds_incremental_publishing is then true) for ds_incremental_resume,
 * and the caller reads no more WAL until they are all handed over: they come before it.
 *
 * @param xid     the transaction of a transactional message (source.txId of the read events).
 * @param now_us  the time, for ts_ms.
 * @return false when a read event cannot be built or emitted, or a dualsync message is
 *         malformed (errstr names the table, chunk and LSN).
 */
bool ds_incremental_message(ds_incremental_t *inc, const ds_pgoutput_msg_t *msg, uint32_t xid,
                            int64_t now_us, char *errstr, size_t errstr_size) DS_MUST_CHECK;

/** @brief Whether rows of a HIGH still wait to be handed to Kafka (ds_incremental_message). */
bool ds_incremental_publishing(const ds_incremental_t *inc);

/**
 * @brief Hands over more of the waiting rows of a HIGH, until they are all handed over
 *        (the window then closes) or hooks.full says the limits are reached again.
 * @return false when a read event cannot be built or emitted (errstr says why).
 */
bool ds_incremental_resume(ds_incremental_t *inc, char *errstr, size_t errstr_size) DS_MUST_CHECK;

/* ---- the backfill process ------------------------------------------------------------ */

typedef struct ds_incremental_options {
    const ds_config_t *config;   /* capture's configuration: source, slot, publication */
    const char *table;           /* "schema.table", one of config->tables */
    int chunk_size;              /* rows per chunk (> 0) */
    bool restart;                /* ignore a recorded unfinished run: start from the start */
    int confirm_timeout_ms;      /* how long a chunk waits for capture to confirm it */
    bool progress_bar;           /* a bar on stderr (a terminal), else log lines */
    volatile sig_atomic_t *stop; /* set by SIGINT/SIGTERM: stop after the current chunk */
} ds_incremental_options_t;

typedef enum ds_incremental_result {
    DS_INCREMENTAL_DONE,    /* every row was published */
    DS_INCREMENTAL_STOPPED, /* *stop was set; the state says where to resume */
    DS_INCREMENTAL_SETUP,   /* a usage or setup error (unknown table, no primary key, no
                             * slot) or capture did not confirm a chunk in time */
    DS_INCREMENTAL_FAILED,  /* a runtime failure (connection lost); resumable */
} ds_incremental_result_t;

typedef struct ds_incremental_stats {
    int64_t rows;        /* rows read by this run */
    int64_t rows_done;   /* rows done in all, including an earlier run's */
    int64_t chunks;      /* chunks this run finished */
    int64_t redone;      /* chunks read again because capture might not have published them */
    bool resumed;        /* this run continued an earlier one */
    char last_key[1024]; /* the last finished key as JSON (empty before the first chunk) */
} ds_incremental_stats_t;

/**
 * @brief Re-backfills one table chunk by chunk, beside a running capture of the same
 *        configuration, resuming an unfinished earlier run from dualsync.backfill_state.
 */
ds_incremental_result_t ds_incremental_run(const ds_incremental_options_t *options,
                                           ds_incremental_stats_t *stats, char *errstr,
                                           size_t errstr_size);

#endif
