/*
 * pgoutput.h: decoder for the messages of PostgreSQL's pgoutput logical decoding plugin.
 *
 * Input is the payload of one XLogData ('w') CopyData message, after its 25-byte header:
 * exactly one pgoutput message (protocol version 1, text tuple format). Every read is
 * length-checked; a short or malformed message is reported through errstr, never read past.
 *
 * The decoder keeps the relation cache (Relation messages) and the type cache (Type
 * messages) that later row messages refer to. Pointers in a decoded ds_pgoutput_msg_t
 * borrow from the input buffer and from the decoder, and stay valid until the next call to
 * ds_pgoutput_decode() or ds_pgoutput_free().
 *
 * Protocol reference: PostgreSQL 15 docs, "Logical Replication Message Formats".
 */
#ifndef DUALSYNC_PGOUTPUT_H
#define DUALSYNC_PGOUTPUT_H

#include "dualsync/common.h"

/* Replica identity settings, as in pg_class.relreplident. */
#define DS_REPLIDENT_DEFAULT 'd'
#define DS_REPLIDENT_NOTHING 'n'
#define DS_REPLIDENT_FULL 'f'
#define DS_REPLIDENT_INDEX 'i'

typedef struct ds_column {
    char *name;       /* column name, owned by the relation */
    uint32_t type_oid; /* pg_type OID of the column's type */
    int32_t typmod;   /* atttypmod, -1 when none */
    bool is_key;      /* flag bit 1: part of the replica identity (all columns under FULL) */
} ds_column_t;

typedef struct ds_relation {
    uint32_t relid;        /* pg_class OID; the key of the relation cache */
    char *schema;          /* namespace name; "pg_catalog" when pgoutput sends "" */
    char *table;           /* relation name */
    char replident;        /* one of DS_REPLIDENT_* */
    int ncolumns;          /* number of entries in columns */
    ds_column_t *columns;  /* owned array, in the order tuples carry their values */
    uint32_t generation;   /* bumped each time a Relation message replaces this entry, so
                            * callers caching derived data (key masks) can tell it is stale */
} ds_relation_t;

/* The kind byte of one tuple value. */
typedef enum ds_value_kind {
    DS_VALUE_NULL = 'n',
    DS_VALUE_UNCHANGED_TOAST = 'u', /* a TOASTed value the change did not touch: not sent */
    DS_VALUE_TEXT = 't',            /* data holds the type's text output, not NUL-terminated */
    DS_VALUE_BINARY = 'b',          /* data holds the type's binary send output */
} ds_value_kind_t;

typedef struct ds_value {
    ds_value_kind_t kind;
    const char *data; /* borrowed from the input buffer; NULL unless TEXT or BINARY */
    uint32_t len;     /* bytes in data */
} ds_value_t;

typedef struct ds_tuple {
    int nvalues;        /* equals the relation's ncolumns (checked by the decoder) */
    ds_value_t *values; /* borrowed from the decoder */
} ds_tuple_t;

typedef enum ds_pgoutput_msg_type {
    DS_PGOUTPUT_BEGIN = 'B',
    DS_PGOUTPUT_COMMIT = 'C',
    DS_PGOUTPUT_ORIGIN = 'O',
    DS_PGOUTPUT_RELATION = 'R',
    DS_PGOUTPUT_TYPE = 'Y',
    DS_PGOUTPUT_INSERT = 'I',
    DS_PGOUTPUT_UPDATE = 'U',
    DS_PGOUTPUT_DELETE = 'D',
    DS_PGOUTPUT_TRUNCATE = 'T',
    DS_PGOUTPUT_MESSAGE = 'M', /* pg_logical_emit_message(), sent when messages 'true' */
} ds_pgoutput_msg_type_t;

/* Truncate option bits. */
#define DS_TRUNCATE_CASCADE 1
#define DS_TRUNCATE_RESTART_IDENTITY 2

typedef struct ds_pgoutput_msg {
    ds_pgoutput_msg_type_t type;
    union {
        struct {
            ds_lsn_t final_lsn;   /* LSN of the commit record */
            int64_t commit_time;  /* microseconds since 2000-01-01 (PostgreSQL epoch) */
            uint32_t xid;
        } begin;
        struct {
            uint8_t flags;        /* currently always 0 */
            ds_lsn_t commit_lsn;  /* LSN of the commit record */
            ds_lsn_t end_lsn;     /* end of the commit record: where a restart resumes */
            int64_t commit_time;  /* microseconds since 2000-01-01 */
        } commit;
        struct {
            ds_lsn_t commit_lsn;  /* commit LSN on the origin server */
            const char *name;     /* borrowed; NUL-terminated */
        } origin;
        struct {
            const ds_relation_t *rel; /* the cache entry, already updated */
        } relation;
        struct {
            uint32_t oid;
            const char *schema; /* borrowed; NUL-terminated */
            const char *name;   /* borrowed; NUL-terminated */
        } type;
        struct {
            const ds_relation_t *rel;
            ds_tuple_t newtup;
        } insert;
        struct {
            const ds_relation_t *rel;
            char old_kind;      /* 0 when no old tuple; 'K' old key (key changed), 'O' old
                                 * row (REPLICA IDENTITY FULL) */
            ds_tuple_t oldtup;  /* valid when old_kind != 0 */
            ds_tuple_t newtup;
        } update;
        struct {
            const ds_relation_t *rel;
            char old_kind;      /* 'K' or 'O' */
            ds_tuple_t oldtup;
        } delete;
        struct {
            uint8_t options;    /* DS_TRUNCATE_* bits */
            int nrelations;
            const ds_relation_t *const *rels; /* borrowed from the decoder */
        } truncate;
        struct {
            uint8_t flags;      /* 1: transactional */
            ds_lsn_t lsn;
            const char *prefix; /* borrowed; NUL-terminated */
            const char *content; /* borrowed; not NUL-terminated */
            uint32_t content_len;
        } message;
    } u;
} ds_pgoutput_msg_t;

typedef struct ds_pgoutput ds_pgoutput_t;

/** @brief A decoder with empty caches, or NULL when out of memory. */
ds_pgoutput_t *ds_pgoutput_new(void);

/** @brief Frees the decoder and its caches; accepts NULL. */
void ds_pgoutput_free(ds_pgoutput_t *dec);

/**
 * @brief Decodes one pgoutput message.
 *
 * A Relation message replaces the cache entry for its OID (and bumps its generation) before
 * returning. A row message for a relation OID with no cache entry is an error (the server
 * always sends the Relation first). Streaming-protocol messages (protocol v2: 'S','E','c','A')
 * are rejected: dualsync requests protocol version 1.
 *
 * @return false with errstr set ("truncated Insert message: need 4 bytes at offset 9,
 *         have 2") when the message is malformed; the caller adds the LSN.
 */
bool ds_pgoutput_decode(ds_pgoutput_t *dec, const uint8_t *buf, size_t len,
                        ds_pgoutput_msg_t *msg, char *errstr, size_t errstr_size) DS_MUST_CHECK;

/** @brief The cached relation for @p relid, or NULL. Borrowed. */
const ds_relation_t *ds_pgoutput_relation(const ds_pgoutput_t *dec, uint32_t relid);

/** @brief "schema.name" of a type announced by a Type message, or NULL. Borrowed. */
const char *ds_pgoutput_type_name(const ds_pgoutput_t *dec, uint32_t oid);

#endif
