/*
 * replication.h: a logical replication connection (libpq, replication=database).
 *
 * Wraps the walsender protocol: IDENTIFY_SYSTEM, slot creation, START_REPLICATION with
 * pgoutput, reading CopyData (XLogData 'w' and keepalive 'k', each length-checked before it
 * is read) and sending standby status updates ('r').
 */
#ifndef DUALSYNC_REPLICATION_H
#define DUALSYNC_REPLICATION_H

#include <libpq-fe.h>

#include "dualsync/common.h"

typedef struct ds_replication ds_replication_t;

typedef enum ds_repl_msg_type {
    DS_REPL_XLOGDATA = 'w',
    DS_REPL_KEEPALIVE = 'k',
} ds_repl_msg_type_t;

/* One message of the replication stream. data borrows from the connection and is valid
 * until the next ds_replication_read(). */
typedef struct ds_repl_msg {
    ds_repl_msg_type_t type;
    ds_lsn_t wal_start;   /* XLogData: LSN of the data; 0 for keepalives */
    ds_lsn_t wal_end;     /* the server's current end of WAL */
    int64_t send_time;    /* server clock, microseconds since 2000-01-01 */
    bool reply_requested; /* keepalive: answer at once or the walsender times us out */
    const uint8_t *data;  /* XLogData payload: one pgoutput message */
    size_t len;
} ds_repl_msg_t;

typedef enum ds_repl_read_status {
    DS_REPL_READ_MESSAGE,    /* *msg holds a message */
    DS_REPL_READ_WOULDBLOCK, /* nothing buffered; wait for the socket to be readable */
    DS_REPL_READ_END,        /* the server ended the stream */
    DS_REPL_READ_ERROR,      /* errstr says why; the connection is unusable */
} ds_repl_read_status_t;

/** @brief What IDENTIFY_SYSTEM said. */
typedef struct ds_repl_identity {
    char systemid[32];  /* cluster system identifier */
    int timeline;       /* current timeline */
    ds_lsn_t xlogpos;   /* current flush position */
    char dbname[128];   /* database the connection is bound to */
} ds_repl_identity_t;

/**
 * @brief Opens a replication connection to @p conninfo (replication=database is added).
 *
 * The session settings that fix the text forms the type mapping parses (DateStyle=ISO,
 * IntervalStyle=iso_8601, TimeZone=UTC, extra_float_digits=3) are added to "options".
 * Errors never include the conninfo (it may hold a password).
 */
ds_replication_t *ds_replication_connect(const char *conninfo, ds_repl_identity_t *identity,
                                         char *errstr, size_t errstr_size);

/** @brief Closes the connection; accepts NULL. */
void ds_replication_free(ds_replication_t *repl);

/**
 * @brief Opens an ordinary (non-replication) connection to @p conninfo with the same session
 *        settings as ds_replication_connect(), so values read over it (the initial backfill)
 *        have exactly the text forms pgoutput sends. The caller PQfinish()es it.
 */
PGconn *ds_replication_connect_sql(const char *conninfo, char *errstr, size_t errstr_size);

/**
 * @brief Looks up logical slot @p slot. Fails when a slot of that name exists for another
 *        plugin or database.
 * @param exists           set to whether it exists.
 * @param confirmed_flush  may be NULL; set to the slot's confirmed_flush_lsn (0 when none).
 */
bool ds_replication_slot_lookup(ds_replication_t *repl, const char *slot, const char *dbname,
                                bool *exists, ds_lsn_t *confirmed_flush, char *errstr,
                                size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief CREATE_REPLICATION_SLOT slot LOGICAL pgoutput, with EXPORT_SNAPSHOT or not.
 *
 * An exported snapshot stays importable (SET TRANSACTION SNAPSHOT on other connections) only
 * until this connection runs its next command, so the caller keeps it idle until every
 * reader imported it.
 * @param consistent_point  may be NULL; set to the slot's consistent point: the snapshot
 *                          sees exactly the transactions committed before it, and streaming
 *                          from the slot sends exactly those committed after.
 * @param snapshot_name     with @p export_snapshot, receives the snapshot's name.
 */
bool ds_replication_create_slot(ds_replication_t *repl, const char *slot, bool export_snapshot,
                                ds_lsn_t *consistent_point, char *snapshot_name,
                                size_t snapshot_name_size, char *errstr,
                                size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief Creates logical slot @p slot with pgoutput unless it exists. Fails when a slot of
 *        that name exists for another plugin or database.
 * @param created  set to whether it was created now.
 */
bool ds_replication_ensure_slot(ds_replication_t *repl, const char *slot, const char *dbname,
                                bool *created, char *errstr, size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief START_REPLICATION SLOT slot LOGICAL start (proto_version '1', publication_names,
 *        messages 'true': logical decoding messages, the watermarks of `dualsync backfill`,
 *        are sent too).
 * @param start  0 to resume from the slot's confirmed position.
 */
bool ds_replication_start(ds_replication_t *repl, const char *slot, const char *publication,
                          ds_lsn_t start, char *errstr, size_t errstr_size) DS_MUST_CHECK;

/** @brief Reads one message without blocking. */
ds_repl_read_status_t ds_replication_read(ds_replication_t *repl, ds_repl_msg_t *msg,
                                          char *errstr, size_t errstr_size);

/**
 * @brief Sends a standby status update. @p flush is what the slot may be confirmed to.
 */
bool ds_replication_send_status(ds_replication_t *repl, ds_lsn_t write, ds_lsn_t flush,
                                bool reply_requested, char *errstr,
                                size_t errstr_size) DS_MUST_CHECK;

/** @brief Ends the COPY stream cleanly (CopyDone, then drain until the server ends it). */
void ds_replication_stop(ds_replication_t *repl);

/** @brief The socket to wait on for readability. */
int ds_replication_socket(const ds_replication_t *repl);

/** @brief Flushes libpq's output buffer; false on a broken connection. */
bool ds_replication_flush(ds_replication_t *repl, char *errstr, size_t errstr_size) DS_MUST_CHECK;

#endif
