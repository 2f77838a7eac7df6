/*
 * pgoutput_record.c: records the pgoutput stream of a logical replication slot as a golden
 * input file (see tests/golden/README.md).
 *
 *   pgoutput_record "CONNINFO" SLOT PUBLICATION END_LSN > out.in
 *
 * Streams the slot with protocol version 1 and writes one line per XLogData message,
 * "<dataStart LSN> <payload as lowercase hex>", until it has written a Commit whose end LSN
 * is at or past END_LSN, or the server reports (in a keepalive) that it has sent WAL up to
 * END_LSN while no transaction is open. The session options match what capture sets, so the
 * text values in the recording are the ones capture sees.
 *
 * Exit status: 0 when the stop point was reached, 1 on any error (message on stderr).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include <libpq-fe.h>

#include "dualsync/common.h"

/* The session settings capture uses: text output of dates, intervals and floats. */
#define SESSION_OPTIONS                                                                            \
    "-c DateStyle=ISO -c IntervalStyle=iso_8601 -c TimeZone=UTC -c extra_float_digits=3"

/* Seconds without any message from the server before giving up (the server sends a
 * keepalive at least every wal_sender_timeout / 2, 30 s by default). */
#define IDLE_TIMEOUT_S 120

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* Microseconds since 2000-01-01, as the standby status update wants. */
static int64_t pg_now(void)
{
    return ds_now_us() - DS_PG_EPOCH_OFFSET_US;
}

/* Standby status update: write/flush/apply positions, clock, no reply requested. */
static bool send_feedback(PGconn *conn, ds_lsn_t lsn)
{
    uint8_t msg[1 + 8 + 8 + 8 + 8 + 1];

    msg[0] = 'r';
    put_u64(msg + 1, lsn);
    put_u64(msg + 9, lsn);
    put_u64(msg + 17, lsn);
    put_u64(msg + 25, (uint64_t)pg_now());
    msg[33] = 0;
    if (PQputCopyData(conn, (const char *)msg, sizeof(msg)) <= 0 || PQflush(conn) != 0) {
        fprintf(stderr, "pgoutput_record: sending feedback failed: %s", PQerrorMessage(conn));
        return false;
    }
    return true;
}

/* A replication-protocol string literal: repl_scanner knows only '' doubling, not E''. */
static char *quote_literal(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(2 * n + 3), *p = out;

    if (!out)
        return NULL;
    *p++ = '\'';
    for (; *s; s++) {
        if (*s == '\'')
            *p++ = '\'';
        *p++ = *s;
    }
    *p++ = '\'';
    *p = '\0';
    return out;
}

/* Connects with replication=database and the session options, keeping the caller's own
 * "options" (if the conninfo has any) in front of ours. */
static PGconn *connect_replication(const char *conninfo)
{
    PQconninfoOption *parsed;
    char *err = NULL;
    char options[1024];
    const char *keywords[] = {"dbname", "replication", "options", NULL};
    const char *values[] = {conninfo, "database", options, NULL};
    PGconn *conn;

    snprintf(options, sizeof(options), "%s", SESSION_OPTIONS);
    parsed = PQconninfoParse(conninfo, &err);
    if (!parsed) {
        fprintf(stderr, "pgoutput_record: bad conninfo: %s", err ? err : "out of memory\n");
        PQfreemem(err);
        return NULL;
    }
    for (PQconninfoOption *o = parsed; o->keyword; o++)
        if (strcmp(o->keyword, "options") == 0 && o->val && *o->val)
            snprintf(options, sizeof(options), "%s %s", o->val, SESSION_OPTIONS);
    PQconninfoFree(parsed);

    /* expand_dbname: the conninfo string is expanded in place of "dbname", and the later
     * keywords override what it says about replication and options. */
    conn = PQconnectdbParams(keywords, values, 1);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "pgoutput_record: connection failed: %s",
                conn ? PQerrorMessage(conn) : "out of memory\n");
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

static bool start_replication(PGconn *conn, const char *slot, const char *publication)
{
    char *slot_ident = PQescapeIdentifier(conn, slot, strlen(slot));
    /* publication_names is a list of identifiers inside a string literal. */
    char *pub_ident = PQescapeIdentifier(conn, publication, strlen(publication));
    char *pub_lit = pub_ident ? quote_literal(pub_ident) : NULL;
    char *sql = NULL;
    PGresult *res = NULL;
    bool ok = false;
    int n;

    if (!slot_ident || !pub_lit) {
        fprintf(stderr, "pgoutput_record: quoting failed: %s", PQerrorMessage(conn));
        goto done;
    }
    n = snprintf(NULL, 0,
                 "START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '1', publication_names "
                 "%s, messages 'true')",
                 slot_ident, pub_lit);
    sql = malloc((size_t)n + 1);
    if (!sql)
        goto done;
    snprintf(sql, (size_t)n + 1,
             "START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '1', publication_names "
             "%s, messages 'true')",
             slot_ident, pub_lit);
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_BOTH) {
        fprintf(stderr, "pgoutput_record: %s failed: %s", sql, PQerrorMessage(conn));
        goto done;
    }
    ok = true;
done:
    PQclear(res);
    free(sql);
    free(pub_lit);
    PQfreemem(pub_ident);
    PQfreemem(slot_ident);
    return ok;
}

/* Waits until the socket is readable; false on timeout or error. */
static bool wait_readable(PGconn *conn)
{
    fd_set fds;
    struct timeval tv = {.tv_sec = IDLE_TIMEOUT_S, .tv_usec = 0};
    int sock = PQsocket(conn), rc;

    if (sock < 0) {
        fprintf(stderr, "pgoutput_record: connection has no socket\n");
        return false;
    }
    FD_ZERO(&fds);
    FD_SET(sock, &fds);
    do
        rc = select(sock + 1, &fds, NULL, NULL, &tv);
    while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        perror("pgoutput_record: select");
        return false;
    }
    if (rc == 0) {
        fprintf(stderr, "pgoutput_record: nothing from the server for %d s\n", IDLE_TIMEOUT_S);
        return false;
    }
    if (!PQconsumeInput(conn)) {
        fprintf(stderr, "pgoutput_record: %s", PQerrorMessage(conn));
        return false;
    }
    return true;
}

static void write_line(ds_lsn_t lsn, const uint8_t *payload, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    char lsnbuf[DS_LSN_STRLEN];

    fputs(ds_lsn_format(lsn, lsnbuf), stdout);
    putchar(' ');
    for (size_t i = 0; i < len; i++) {
        putchar(digits[payload[i] >> 4]);
        putchar(digits[payload[i] & 15]);
    }
    putchar('\n');
}

/* Streams until the stop point; true when it was reached. */
static bool record(PGconn *conn, ds_lsn_t end_lsn)
{
    ds_lsn_t confirmed = 0; /* end LSN of the last Commit written and flushed to stdout */
    bool in_tx = false;

    for (;;) {
        char *copybuf = NULL;
        const uint8_t *data;
        int len = PQgetCopyData(conn, &copybuf, 1);

        if (len == 0) {
            if (!wait_readable(conn))
                return false;
            continue;
        }
        if (len == -1) {
            char lsnbuf[DS_LSN_STRLEN];
            fprintf(stderr, "pgoutput_record: the server ended the stream before %s\n",
                    ds_lsn_format(end_lsn, lsnbuf));
            return false;
        }
        if (len < 0) {
            fprintf(stderr, "pgoutput_record: %s", PQerrorMessage(conn));
            return false;
        }
        data = (const uint8_t *)copybuf;

        if (data[0] == 'w') {
            /* XLogData: 'w', dataStart, walEnd, sendTime, then one pgoutput message. */
            const uint8_t *payload = data + 25;
            size_t plen;

            if (len < 26) {
                fprintf(stderr, "pgoutput_record: XLogData of %d bytes is too short\n", len);
                PQfreemem(copybuf);
                return false;
            }
            plen = (size_t)len - 25;
            write_line(get_u64(data + 1), payload, plen);
            if (payload[0] == 'B') {
                in_tx = true;
            } else if (payload[0] == 'C') {
                ds_lsn_t commit_end;

                if (plen < 26) {
                    fprintf(stderr, "pgoutput_record: Commit of %zu bytes is too short\n", plen);
                    PQfreemem(copybuf);
                    return false;
                }
                in_tx = false;
                commit_end = get_u64(payload + 10);
                if (fflush(stdout) != 0) {
                    perror("pgoutput_record: stdout");
                    PQfreemem(copybuf);
                    return false;
                }
                confirmed = commit_end;
                if (commit_end >= end_lsn) {
                    PQfreemem(copybuf);
                    return true;
                }
            }
        } else if (data[0] == 'k') {
            /* Keepalive: 'k', walEnd, sendTime, replyRequested. */
            ds_lsn_t wal_end;

            if (len < 18) {
                fprintf(stderr, "pgoutput_record: keepalive of %d bytes is too short\n", len);
                PQfreemem(copybuf);
                return false;
            }
            wal_end = get_u64(data + 1);
            if (wal_end >= end_lsn && !in_tx) {
                /* Everything up to END_LSN has been decoded and sent. */
                PQfreemem(copybuf);
                return true;
            }
            /* Confirm only what is written, so the server keeps sending keepalives while it
             * waits for WAL, and the stop condition above gets its chance. */
            if (data[17] && !send_feedback(conn, confirmed)) {
                PQfreemem(copybuf);
                return false;
            }
        } else {
            fprintf(stderr, "pgoutput_record: unexpected CopyData message type 0x%02x\n", data[0]);
            PQfreemem(copybuf);
            return false;
        }
        PQfreemem(copybuf);
    }
}

/* Ends COPY BOTH cleanly: the server answers CopyDone after sending what it had in flight,
 * and until that is read PQgetResult keeps returning PGRES_COPY_BOTH. */
static bool finish_stream(PGconn *conn)
{
    char *copybuf;
    PGresult *res;
    bool ok = true;
    int len;

    if (PQputCopyEnd(conn, NULL) <= 0 || PQflush(conn) != 0) {
        fprintf(stderr, "pgoutput_record: ending the stream failed: %s", PQerrorMessage(conn));
        return false;
    }
    while ((len = PQgetCopyData(conn, &copybuf, 0)) >= 0)
        PQfreemem(copybuf);
    if (len == -2) {
        fprintf(stderr, "pgoutput_record: draining the stream failed: %s", PQerrorMessage(conn));
        return false;
    }
    while ((res = PQgetResult(conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
            fprintf(stderr, "pgoutput_record: stream ended with %s: %s",
                    PQresStatus(PQresultStatus(res)), PQresultErrorMessage(res));
            ok = false;
        }
        PQclear(res);
    }
    return ok;
}

int main(int argc, char **argv)
{
    ds_lsn_t end_lsn;
    PGconn *conn;
    bool ok;

    if (argc != 5) {
        fprintf(stderr, "usage: %s CONNINFO SLOT PUBLICATION END_LSN > out.in\n", argv[0]);
        return 2;
    }
    if (!ds_lsn_parse(argv[4], &end_lsn)) {
        fprintf(stderr, "pgoutput_record: END_LSN \"%s\" is not an LSN (X/X)\n", argv[4]);
        return 2;
    }
    conn = connect_replication(argv[1]);
    if (!conn)
        return 1;
    ok = start_replication(conn, argv[2], argv[3]) && record(conn, end_lsn);
    if (ok)
        ok = finish_stream(conn);
    PQfinish(conn);
    if (fflush(stdout) != 0) {
        perror("pgoutput_record: stdout");
        ok = false;
    }
    return ok ? 0 : 1;
}
