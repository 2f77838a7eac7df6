/*
 * replication.c: the walsender protocol over libpq.
 */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "dualsync/log.h"
#include "dualsync/pgutil.h"
#include "dualsync/replication.h"

/* XLogData: 'w' + dataStart + walEnd + sendTime; keepalive: 'k' + walEnd + sendTime + reply. */
#define XLOGDATA_HEADER_LEN (1 + 8 + 8 + 8)
#define KEEPALIVE_LEN (1 + 8 + 8 + 1)

/* The session settings the type mapping relies on (see typemap.h); lc_monetary=C fixes
 * money's text to "-$1,234.56" whatever the server's locale. */
#define CAPTURE_SESSION_OPTIONS                                                                    \
    "-c DateStyle=ISO -c IntervalStyle=iso_8601 -c TimeZone=UTC -c extra_float_digits=3 "         \
    "-c lc_monetary=C"

struct ds_replication {
    PGconn *conn;  /* the replication connection */
    char *copybuf; /* last buffer PQgetCopyData returned; freed on the next read */
};

static uint64_t read_u64(const char *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return be64toh(v);
}

static void write_u64(char *p, uint64_t v)
{
    v = htobe64(v);
    memcpy(p, &v, 8);
}

/* Opens a connection to @conninfo with the capture session options added to the user's
 * "options", as a replication connection (replication=database) or an ordinary one. */
static PGconn *open_connection(const char *conninfo, bool replication, char *errstr,
                               size_t errstr_size)
{
    PQconninfoOption *parsed = NULL;
    const char **keywords = NULL;
    const char **values = NULL;
    char *options = NULL;
    char *parse_err = NULL;
    PGconn *conn = NULL;
    int n = 0, count = 0;

    /* Parse the user's conninfo so our session options are added to theirs, not swapped. */
    parsed = PQconninfoParse(conninfo, &parse_err);
    if (!parsed) {
        ds_fail(errstr, errstr_size, "source.conninfo is not a valid connection string: %s",
                parse_err ? parse_err : "out of memory");
        goto done;
    }
    for (PQconninfoOption *o = parsed; o->keyword; o++)
        count++;
    keywords = calloc((size_t)count + 4, sizeof(*keywords));
    values = calloc((size_t)count + 4, sizeof(*values));
    if (!keywords || !values) {
        ds_fail(errstr, errstr_size, "out of memory");
        goto done;
    }
    for (PQconninfoOption *o = parsed; o->keyword; o++) {
        if (!o->val || strcmp(o->keyword, "replication") == 0 ||
            strcmp(o->keyword, "options") == 0)
            continue;
        keywords[n] = o->keyword;
        values[n++] = o->val;
    }
    for (PQconninfoOption *o = parsed; o->keyword; o++) {
        if (strcmp(o->keyword, "options") == 0 && o->val && o->val[0]) {
            if (asprintf(&options, "%s %s", o->val, CAPTURE_SESSION_OPTIONS) < 0)
                options = NULL;
        }
    }
    keywords[n] = "options";
    values[n++] = options ? options : CAPTURE_SESSION_OPTIONS;
    if (replication) {
        keywords[n] = "replication";
        values[n++] = "database";
    }
    keywords[n] = "fallback_application_name";
    values[n++] = "dualsync";
    keywords[n] = NULL;
    values[n] = NULL;

    conn = PQconnectdbParams(keywords, values, 0);
    if (PQstatus(conn) != CONNECTION_OK) {
        ds_fail(errstr, errstr_size, "cannot open a %sconnection to the source: %s",
                replication ? "replication " : "", ds_pg_error(conn));
        PQfinish(conn);
        conn = NULL;
    }

done:
    PQconninfoFree(parsed);
    PQfreemem(parse_err);
    free(keywords);
    free(values);
    free(options);
    return conn;
}

ds_replication_t *ds_replication_connect(const char *conninfo, ds_repl_identity_t *identity,
                                         char *errstr, size_t errstr_size)
{
    ds_replication_t *repl = calloc(1, sizeof(*repl));
    PGresult *res = NULL;

    if (!repl) {
        ds_fail(errstr, errstr_size, "out of memory");
        return NULL;
    }
    repl->conn = open_connection(conninfo, true, errstr, errstr_size);
    if (!repl->conn)
        goto error;

    res = PQexec(repl->conn, "IDENTIFY_SYSTEM");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) < 4) {
        ds_fail(errstr, errstr_size, "IDENTIFY_SYSTEM failed: %s", ds_pg_error(repl->conn));
        goto error;
    }
    if (identity) {
        memset(identity, 0, sizeof(*identity));
        snprintf(identity->systemid, sizeof(identity->systemid), "%s", PQgetvalue(res, 0, 0));
        identity->timeline = atoi(PQgetvalue(res, 0, 1));
        if (!ds_lsn_parse(PQgetvalue(res, 0, 2), &identity->xlogpos)) {
            ds_fail(errstr, errstr_size, "IDENTIFY_SYSTEM returned a bad xlogpos \"%s\"",
                    PQgetvalue(res, 0, 2));
            goto error;
        }
        if (PQgetisnull(res, 0, 3)) {
            ds_fail(errstr, errstr_size,
                    "the replication connection is not bound to a database; source.conninfo "
                    "must name one (dbname=...)");
            goto error;
        }
        snprintf(identity->dbname, sizeof(identity->dbname), "%s", PQgetvalue(res, 0, 3));
    }
    PQclear(res);
    return repl;

error:
    PQclear(res);
    ds_replication_free(repl);
    return NULL;
}

PGconn *ds_replication_connect_sql(const char *conninfo, char *errstr, size_t errstr_size)
{
    return open_connection(conninfo, false, errstr, errstr_size);
}

void ds_replication_free(ds_replication_t *repl)
{
    if (!repl)
        return;
    if (repl->copybuf)
        PQfreemem(repl->copybuf);
    PQfinish(repl->conn);
    free(repl);
}

bool ds_replication_slot_lookup(ds_replication_t *repl, const char *slot, const char *dbname,
                                bool *exists, ds_lsn_t *confirmed_flush, char *errstr,
                                size_t errstr_size)
{
    char *slot_literal = PQescapeLiteral(repl->conn, slot, strlen(slot));
    char *sql = NULL;
    PGresult *res = NULL;
    bool ok = false;

    *exists = false;
    if (confirmed_flush)
        *confirmed_flush = DS_INVALID_LSN;
    if (!slot_literal ||
        asprintf(&sql,
                 "SELECT plugin, database, slot_type, confirmed_flush_lsn "
                 "FROM pg_catalog.pg_replication_slots WHERE slot_name = %s",
                 slot_literal) < 0) {
        sql = NULL;
        ds_fail(errstr, errstr_size, "out of memory");
        goto done;
    }
    res = PQexec(repl->conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ds_fail(errstr, errstr_size, "cannot look up replication slot \"%s\": %s", slot,
                ds_pg_error(repl->conn));
        goto done;
    }
    if (PQntuples(res) == 1) {
        const char *plugin = PQgetvalue(res, 0, 0);
        const char *database = PQgetvalue(res, 0, 1);

        if (strcmp(PQgetvalue(res, 0, 2), "logical") != 0 || strcmp(plugin, "pgoutput") != 0) {
            ds_fail(errstr, errstr_size,
                    "replication slot \"%s\" exists but is not a logical pgoutput slot (plugin "
                    "\"%s\"); drop it or set source.slot to another name",
                    slot, plugin);
            goto done;
        }
        if (strcmp(database, dbname) != 0) {
            ds_fail(errstr, errstr_size,
                    "replication slot \"%s\" belongs to database \"%s\", not \"%s\"; set "
                    "source.slot to another name",
                    slot, database, dbname);
            goto done;
        }
        if (confirmed_flush && !PQgetisnull(res, 0, 3) &&
            !ds_lsn_parse(PQgetvalue(res, 0, 3), confirmed_flush)) {
            ds_fail(errstr, errstr_size, "replication slot \"%s\" has a bad confirmed_flush_lsn "
                                         "\"%s\"",
                    slot, PQgetvalue(res, 0, 3));
            goto done;
        }
        *exists = true;
    }
    ok = true;

done:
    PQclear(res);
    free(sql);
    PQfreemem(slot_literal);
    return ok;
}

bool ds_replication_create_slot(ds_replication_t *repl, const char *slot, bool export_snapshot,
                                ds_lsn_t *consistent_point, char *snapshot_name,
                                size_t snapshot_name_size, char *errstr, size_t errstr_size)
{
    char *slot_ident = PQescapeIdentifier(repl->conn, slot, strlen(slot));
    char *sql = NULL;
    PGresult *res = NULL;
    bool ok = false;

    if (snapshot_name && snapshot_name_size)
        snapshot_name[0] = '\0';
    if (!slot_ident ||
        asprintf(&sql, "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput %s", slot_ident,
                 export_snapshot ? "EXPORT_SNAPSHOT" : "NOEXPORT_SNAPSHOT") < 0) {
        sql = NULL;
        ds_fail(errstr, errstr_size, "out of memory");
        goto done;
    }
    res = PQexec(repl->conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) < 4) {
        ds_fail(errstr, errstr_size, "cannot create replication slot \"%s\": %s", slot,
                ds_pg_error(repl->conn));
        goto done;
    }
    /* Result: slot_name, consistent_point, snapshot_name, output_plugin. */
    if (consistent_point && !ds_lsn_parse(PQgetvalue(res, 0, 1), consistent_point)) {
        ds_fail(errstr, errstr_size, "CREATE_REPLICATION_SLOT returned a bad consistent point "
                                     "\"%s\"",
                PQgetvalue(res, 0, 1));
        goto done;
    }
    if (export_snapshot && snapshot_name) {
        if (PQgetisnull(res, 0, 2) || strlen(PQgetvalue(res, 0, 2)) >= snapshot_name_size) {
            ds_fail(errstr, errstr_size,
                    "CREATE_REPLICATION_SLOT on slot \"%s\" exported no usable snapshot", slot);
            goto done;
        }
        snprintf(snapshot_name, snapshot_name_size, "%s", PQgetvalue(res, 0, 2));
    }
    ok = true;

done:
    PQclear(res);
    free(sql);
    PQfreemem(slot_ident);
    return ok;
}

bool ds_replication_ensure_slot(ds_replication_t *repl, const char *slot, const char *dbname,
                                bool *created, char *errstr, size_t errstr_size)
{
    bool exists;

    *created = false;
    if (!ds_replication_slot_lookup(repl, slot, dbname, &exists, NULL, errstr, errstr_size))
        return false;
    if (exists)
        return true;
    if (!ds_replication_create_slot(repl, slot, false, NULL, NULL, 0, errstr, errstr_size))
        return false;
    *created = true;
    return true;
}

bool ds_replication_start(ds_replication_t *repl, const char *slot, const char *publication,
                          ds_lsn_t start, char *errstr, size_t errstr_size)
{
    char *slot_ident = PQescapeIdentifier(repl->conn, slot, strlen(slot));
    /* publication_names is a comma-separated list of identifiers inside a string literal. */
    char *pub_ident = PQescapeIdentifier(repl->conn, publication, strlen(publication));
    char *pub_literal = pub_ident ? PQescapeLiteral(repl->conn, pub_ident, strlen(pub_ident))
                                  : NULL;
    char *sql = NULL;
    PGresult *res = NULL;
    bool ok = false;

    if (!slot_ident || !pub_literal ||
        asprintf(&sql,
                 "START_REPLICATION SLOT %s LOGICAL %X/%X (proto_version '1', "
                 "publication_names %s, messages 'true')",
                 slot_ident, (uint32_t)(start >> 32), (uint32_t)start, pub_literal) < 0) {
        sql = NULL;
        ds_fail(errstr, errstr_size, "out of memory");
        goto done;
    }
    res = PQexec(repl->conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_BOTH) {
        ds_fail(errstr, errstr_size, "START_REPLICATION on slot \"%s\" failed: %s", slot,
                ds_pg_error(repl->conn));
        goto done;
    }
    if (PQsetnonblocking(repl->conn, 1) != 0) {
        ds_fail(errstr, errstr_size, "cannot make the replication connection non-blocking: %s",
                ds_pg_error(repl->conn));
        goto done;
    }
    ok = true;

done:
    PQclear(res);
    free(sql);
    PQfreemem(slot_ident);
    PQfreemem(pub_ident);
    PQfreemem(pub_literal);
    return ok;
}

/* After the server ends COPY, its final result says whether that was an error. */
static ds_repl_read_status_t stream_ended(ds_replication_t *repl, char *errstr,
                                          size_t errstr_size)
{
    PGresult *res = PQgetResult(repl->conn);
    ds_repl_read_status_t status = DS_REPL_READ_END;

    if (res && PQresultStatus(res) != PGRES_COMMAND_OK) {
        ds_fail(errstr, errstr_size, "replication stream ended: %s", ds_pg_error(repl->conn));
        status = DS_REPL_READ_ERROR;
    }
    PQclear(res);
    while ((res = PQgetResult(repl->conn)) != NULL)
        PQclear(res);
    return status;
}

ds_repl_read_status_t ds_replication_read(ds_replication_t *repl, ds_repl_msg_t *msg,
                                          char *errstr, size_t errstr_size)
{
    int len;

    if (repl->copybuf) {
        PQfreemem(repl->copybuf);
        repl->copybuf = NULL;
    }
    len = PQgetCopyData(repl->conn, &repl->copybuf, 1);
    if (len == 0) {
        if (!PQconsumeInput(repl->conn)) {
            ds_fail(errstr, errstr_size, "replication connection lost: %s",
                    ds_pg_error(repl->conn));
            return DS_REPL_READ_ERROR;
        }
        len = PQgetCopyData(repl->conn, &repl->copybuf, 1);
        if (len == 0)
            return DS_REPL_READ_WOULDBLOCK;
    }
    if (len == -1)
        return stream_ended(repl, errstr, errstr_size);
    if (len < 0) {
        ds_fail(errstr, errstr_size, "reading the replication stream failed: %s",
                ds_pg_error(repl->conn));
        return DS_REPL_READ_ERROR;
    }

    memset(msg, 0, sizeof(*msg));
    switch (repl->copybuf[0]) {
    case 'w':
        if (len < XLOGDATA_HEADER_LEN) {
            ds_fail(errstr, errstr_size, "XLogData message of %d bytes is shorter than its "
                                         "%d-byte header", len, XLOGDATA_HEADER_LEN);
            return DS_REPL_READ_ERROR;
        }
        msg->type = DS_REPL_XLOGDATA;
        msg->wal_start = read_u64(repl->copybuf + 1);
        msg->wal_end = read_u64(repl->copybuf + 9);
        msg->send_time = (int64_t)read_u64(repl->copybuf + 17);
        msg->data = (const uint8_t *)repl->copybuf + XLOGDATA_HEADER_LEN;
        msg->len = (size_t)len - XLOGDATA_HEADER_LEN;
        return DS_REPL_READ_MESSAGE;
    case 'k':
        if (len < KEEPALIVE_LEN) {
            ds_fail(errstr, errstr_size, "keepalive message of %d bytes, expected %d", len,
                    KEEPALIVE_LEN);
            return DS_REPL_READ_ERROR;
        }
        msg->type = DS_REPL_KEEPALIVE;
        msg->wal_end = read_u64(repl->copybuf + 1);
        msg->send_time = (int64_t)read_u64(repl->copybuf + 9);
        msg->reply_requested = repl->copybuf[17] != 0;
        return DS_REPL_READ_MESSAGE;
    default:
        ds_fail(errstr, errstr_size, "unexpected replication message type 0x%02x (%d bytes)",
                (unsigned char)repl->copybuf[0], len);
        return DS_REPL_READ_ERROR;
    }
}

bool ds_replication_send_status(ds_replication_t *repl, ds_lsn_t write, ds_lsn_t flush,
                                bool reply_requested, char *errstr, size_t errstr_size)
{
    char msg[1 + 8 + 8 + 8 + 8 + 1];

    msg[0] = 'r';
    write_u64(msg + 1, write);
    write_u64(msg + 9, flush);
    /* Nothing is "applied" downstream in PostgreSQL's sense; report the durable position. */
    write_u64(msg + 17, flush);
    write_u64(msg + 25, (uint64_t)(ds_now_us() - DS_PG_EPOCH_OFFSET_US));
    msg[33] = reply_requested ? 1 : 0;

    if (PQputCopyData(repl->conn, msg, sizeof(msg)) <= 0)
        return ds_fail(errstr, errstr_size, "cannot send a standby status update: %s",
                       ds_pg_error(repl->conn));
    return ds_replication_flush(repl, errstr, errstr_size);
}

bool ds_replication_flush(ds_replication_t *repl, char *errstr, size_t errstr_size)
{
    /* 1 means data remains queued; the next flush (or status update) sends it. */
    if (PQflush(repl->conn) < 0)
        return ds_fail(errstr, errstr_size, "cannot send to the replication connection: %s",
                       ds_pg_error(repl->conn));
    return true;
}

void ds_replication_stop(ds_replication_t *repl)
{
    PGresult *res;
    char *buf = NULL;

    if (!repl || PQstatus(repl->conn) != CONNECTION_OK)
        return;
    if (repl->copybuf) {
        PQfreemem(repl->copybuf);
        repl->copybuf = NULL;
    }
    PQsetnonblocking(repl->conn, 0);
    if (PQputCopyEnd(repl->conn, NULL) <= 0 || PQflush(repl->conn) != 0)
        return;
    /* Until the server ends its side, PQgetResult would spin on COPY_BOTH; drain first. */
    while (PQgetCopyData(repl->conn, &buf, 0) >= 0) {
        PQfreemem(buf);
        buf = NULL;
    }
    while ((res = PQgetResult(repl->conn)) != NULL)
        PQclear(res);
}

int ds_replication_socket(const ds_replication_t *repl)
{
    return PQsocket(repl->conn);
}
