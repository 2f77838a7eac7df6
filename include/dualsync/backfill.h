/*
 * backfill.h: the initial consistent backfill (Debezium's "initial" snapshot).
 *
 * When capture creates its slot with an exported snapshot, the rows the tables hold at the
 * slot's consistent point are read under that snapshot on an ordinary connection and
 * published as read events (op "r"); streaming from the slot then sends exactly the
 * transactions committed after that point, so every row reaches Kafka once as of the
 * snapshot and every later change after it.
 *
 *   CREATE_REPLICATION_SLOT .. EXPORT_SNAPSHOT --> consistent point + snapshot name
 *        (the replication connection stays idle: the snapshot lives until its next command)
 *   BEGIN REPEATABLE READ; SET TRANSACTION SNAPSHOT --> COPY (SELECT ..) TO STDOUT per table
 *        --> ds_changes_read_row() --> emit (Kafka)
 *   every read event acknowledged --> dualsync.capture_state marks the backfill complete
 *   START_REPLICATION from the consistent point
 *
 * Completion is recorded durably in the source database (dualsync.capture_state, one row
 * per slot), so a capture that died during the backfill is recognised on its next start and
 * the backfill is redone (under a new snapshot, streaming from the slot's consistent point:
 * see prepare_slot in capture.c).
 */
#ifndef DUALSYNC_BACKFILL_H
#define DUALSYNC_BACKFILL_H

#include <libpq-fe.h>

#include "dualsync/changes.h"
#include "dualsync/common.h"
#include "dualsync/metrics.h"
#include "dualsync/preflight.h"

/* What dualsync.capture_state says about the initial backfill of one slot. */
typedef enum ds_backfill_state {
    DS_BACKFILL_NONE,      /* no record: the slot was created without a backfill */
    DS_BACKFILL_STARTED,   /* begun and never completed: read events may be missing */
    DS_BACKFILL_COMPLETED, /* Kafka acknowledged every read event */
} ds_backfill_state_t;

/**
 * @brief Takes the session advisory lock that marks a capture working on @p slot's backfill
 *        (held until @p conn closes), so a second capture started meanwhile does not drop
 *        the slot under the first one.
 * @return false, with an error saying so, when another session holds it.
 */
bool ds_backfill_lock(PGconn *conn, const char *slot, char *errstr,
                      size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief Reads the record of @p slot. A missing dualsync.capture_state table is no record.
 * @param snapshot_lsn  set to the recorded consistent point, 0 when none was recorded.
 */
bool ds_backfill_state_read(PGconn *conn, const char *slot, ds_backfill_state_t *state,
                            ds_lsn_t *snapshot_lsn, char *errstr, size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief Records (committed) that a backfill of @p slot begins, creating the schema and
 *        table when missing. Called before the slot is created, so a crash at any later
 *        point leaves a record that says the backfill is incomplete.
 * @param snapshot_lsn  the slot's consistent point when already known (a redo), else 0.
 */
bool ds_backfill_state_begin(PGconn *conn, const char *slot, ds_lsn_t snapshot_lsn, char *errstr,
                             size_t errstr_size) DS_MUST_CHECK;

/** @brief Records the consistent point of the slot the backfill reads at. */
bool ds_backfill_state_set_lsn(PGconn *conn, const char *slot, ds_lsn_t snapshot_lsn, char *errstr,
                               size_t errstr_size) DS_MUST_CHECK;

/** @brief Records that Kafka acknowledged all @p rows read events of @p slot's backfill. */
bool ds_backfill_state_complete(PGconn *conn, const char *slot, uint64_t rows, char *errstr,
                                size_t errstr_size) DS_MUST_CHECK;

/* A table as pgoutput sends it and how to select it: the column rules the initial backfill
 * and the incremental one (incremental.h) share. */
typedef struct ds_backfill_table {
    ds_relation_t rel; /* columns in pgoutput's order (not dropped, not generated, in the
                        * publication's column list when it has one) with pgoutput's key
                        * flags; owns the column names, borrows schema and table */
    char *columns;     /* the quoted select list, "a", "b" */
    char *from;        /* " FROM [ONLY] schema.table", quoted (ONLY unless partitioned) */
} ds_backfill_table_t;

/**
 * @brief Describes @p src as publication @p publication sends it.
 * @param t  filled; release with ds_backfill_table_clear() (also after a failure).
 */
bool ds_backfill_describe(PGconn *conn, const char *publication, const ds_source_table_t *src,
                          ds_backfill_table_t *t, char *errstr, size_t errstr_size) DS_MUST_CHECK;

/** @brief Frees what ds_backfill_describe() allocated; accepts NULL. */
void ds_backfill_table_clear(ds_backfill_table_t *t);

/* Progress of a backfill on stderr, for a person watching: a bar redrawn in place when stderr
 * is a terminal, an info line every 10 s otherwise. Shared by the initial backfill and
 * `dualsync backfill` (incremental.h). */
typedef struct ds_backfill_progress {
    bool bar;               /* redraw a bar on stderr (a terminal); else log a line now and then */
    bool all_tables;        /* several tables: log lines add the totals over all of them */
    const char *what;       /* the lines' first words: "backfill", "incremental backfill" */
    const char *schema;     /* the table being read (borrowed) */
    const char *table;
    int64_t start_us;       /* when this run began reading */
    int64_t table_start_us; /* when this run began the current table */
    int64_t last_us;        /* last bar redraw or log line */
    int64_t total_rows;     /* rows this run has to read over all tables (may be an estimate) */
    int64_t done_rows;      /* rows this run read over all tables: with total_rows, the ETA */
    int64_t table_total;    /* rows of the current table (may be an estimate) */
    int64_t table_done;     /* its rows done, including those of an earlier, resumed run */
    int64_t table_resumed;  /* of table_done, those an earlier run did: not in the rate */
} ds_backfill_progress_t;

/**
 * @brief Reports @p p if a report is due (cheap to call for every row); @p final always
 *        reports, ending the bar's line.
 */
void ds_backfill_progress_report(ds_backfill_progress_t *p, bool final);

/* Called after each emitted row: serves Kafka, waits while too much is unacknowledged.
 * Returns false to stop the backfill (a signal or a fatal error). */
typedef bool (*ds_backfill_yield_fn)(void *ctx);

typedef struct ds_backfill_options {
    const char *conninfo;                /* source.conninfo (never logged) */
    const char *publication;             /* its column lists decide the columns read */
    const char *snapshot_name;           /* exported by the slot's creation; NULL: read under
                                          * a snapshot taken when the backfill starts */
    ds_lsn_t consistent_lsn;             /* where streaming starts -> source.lsn */
    const ds_source_catalog_t *catalog;  /* the tables, read in this order */
    const ds_changes_options_t *changes; /* topic prefix, db, version, key rules */
    ds_change_emit_fn emit;              /* hands one record to Kafka */
    ds_backfill_yield_fn yield;          /* called after every row */
    void *ctx;                           /* argument of emit and yield */
    bool progress_bar;                   /* draw a bar on stderr (a terminal), else log lines */
    ds_metric_t *rows_done;              /* gauges by table ("schema.table"): rows read and */
    ds_metric_t *rows_total;             /* rows to read; NULL: none */
} ds_backfill_options_t;

typedef struct ds_backfill_stats {
    uint64_t rows;  /* read events emitted */
    double seconds; /* from importing the snapshot to the last row */
} ds_backfill_stats_t;

typedef enum ds_backfill_result {
    DS_BACKFILL_DONE,    /* every row of every table was emitted */
    DS_BACKFILL_STOPPED, /* yield asked to stop */
    DS_BACKFILL_FAILED,  /* errstr says why */
} ds_backfill_result_t;

/**
 * @brief Reads every table of the catalog under the exported snapshot and emits one read
 *        event per row, in primary-key order (table order for tables without one).
 *
 * Rows are counted first under the same snapshot, so progress and the Debezium 2.x
 * source.snapshot markers ("first", "first_in_data_collection", "true",
 * "last_in_data_collection", "last") are exact.
 */
ds_backfill_result_t ds_backfill_run(const ds_backfill_options_t *options,
                                     ds_backfill_stats_t *stats, char *errstr, size_t errstr_size);

#endif
