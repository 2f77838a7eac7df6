/*
 * pgoutput.c: decoder for pgoutput protocol version 1 messages, with the relation and type
 * caches the row messages refer to.
 *
 * Every read goes through the reader below, which checks the remaining length first and
 * names, on failure, the message, the relation (when known), the tuple and column, the byte
 * offset, and how many bytes were needed and available. A message is decoded completely and
 * checked for trailing bytes before any cache is changed, so a rejected message leaves the
 * decoder exactly as it was.
 *
 * The row path (Insert/Update/Delete) allocates nothing: relation lookup is a hash probe and
 * the tuple value arrays live in the decoder, sized when a Relation message announces a
 * wider table. Values point into the caller's buffer.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualsync/pgoutput.h"

/*
 * One relation cache entry. The public part comes first and is handed out by address, so
 * the entry is updated in place when a Relation message replaces it: a caller holding the
 * pointer (and its generation) across messages sees the generation change instead of a
 * dangling pointer.
 */
typedef struct rel_entry {
    ds_relation_t rel; /* what callers see; schema, table and column names point into strings */
    char *strings;     /* one block holding schema, table and every column name */
} rel_entry_t;

/* One type cache entry; an empty slot has name == NULL. */
typedef struct type_entry {
    uint32_t oid; /* pg_type OID */
    char *name;   /* owned "schema.name" */
} type_entry_t;

struct ds_pgoutput {
    rel_entry_t **rels;  /* open-addressing table keyed by relid; NULL marks an empty slot */
    size_t rels_cap;     /* slots in rels, a power of two (0 before the first Relation) */
    size_t rels_count;   /* occupied slots */
    type_entry_t *types; /* open-addressing table keyed by type OID */
    size_t types_cap;    /* slots in types, a power of two (0 before the first Type) */
    size_t types_count;  /* occupied slots */
    ds_value_t *oldvals; /* values of the old tuple ('K'/'O') of the current message */
    ds_value_t *newvals; /* values of the new tuple ('N') of the current message */
    int vals_cap;        /* entries in oldvals and newvals: the widest relation seen */
    const ds_relation_t **trunc_rels; /* relations of the current Truncate message */
    int trunc_cap;                    /* entries in trunc_rels */
};

/* pgoutput writes an empty namespace for pg_catalog (logicalrep_write_namespace). */
static const char pg_catalog_name[] = "pg_catalog";

/* ---- hashing ---------------------------------------------------------------------------- */

/* murmur3's finalizer: relids are allocated sequentially, so mix them before masking. */
static size_t hash_oid(uint32_t oid, size_t cap)
{
    oid ^= oid >> 16;
    oid *= 0x85ebca6bu;
    oid ^= oid >> 13;
    oid *= 0xc2b2ae35u;
    oid ^= oid >> 16;
    return (size_t)oid & (cap - 1);
}

static rel_entry_t *rel_lookup(const ds_pgoutput_t *dec, uint32_t relid)
{
    if (dec->rels_cap == 0)
        return NULL;
    for (size_t i = hash_oid(relid, dec->rels_cap);; i = (i + 1) & (dec->rels_cap - 1)) {
        rel_entry_t *e = dec->rels[i];
        if (!e)
            return NULL;
        if (e->rel.relid == relid)
            return e;
    }
}

/* Makes room for one more relation, keeping the load factor at or below one half. */
static bool rel_reserve(ds_pgoutput_t *dec)
{
    size_t newcap;
    rel_entry_t **slots;

    if ((dec->rels_count + 1) * 2 <= dec->rels_cap)
        return true;
    newcap = dec->rels_cap ? dec->rels_cap * 2 : 64;
    slots = calloc(newcap, sizeof(*slots));
    if (!slots)
        return false;
    for (size_t i = 0; i < dec->rels_cap; i++) {
        rel_entry_t *e = dec->rels[i];
        size_t j;
        if (!e)
            continue;
        for (j = hash_oid(e->rel.relid, newcap); slots[j]; j = (j + 1) & (newcap - 1))
            ;
        slots[j] = e;
    }
    free(dec->rels);
    dec->rels = slots;
    dec->rels_cap = newcap;
    return true;
}

/* The caller has called rel_reserve() and checked the relid is absent. */
static void rel_insert(ds_pgoutput_t *dec, rel_entry_t *e)
{
    size_t i;

    for (i = hash_oid(e->rel.relid, dec->rels_cap); dec->rels[i]; i = (i + 1) & (dec->rels_cap - 1))
        ;
    dec->rels[i] = e;
    dec->rels_count++;
}

static type_entry_t *type_slot(const ds_pgoutput_t *dec, uint32_t oid)
{
    size_t i;

    for (i = hash_oid(oid, dec->types_cap); dec->types[i].name; i = (i + 1) & (dec->types_cap - 1))
        if (dec->types[i].oid == oid)
            break;
    return &dec->types[i];
}

static bool type_reserve(ds_pgoutput_t *dec)
{
    size_t newcap;
    type_entry_t *slots;

    if ((dec->types_count + 1) * 2 <= dec->types_cap)
        return true;
    newcap = dec->types_cap ? dec->types_cap * 2 : 32;
    slots = calloc(newcap, sizeof(*slots));
    if (!slots)
        return false;
    for (size_t i = 0; i < dec->types_cap; i++) {
        size_t j;
        if (!dec->types[i].name)
            continue;
        for (j = hash_oid(dec->types[i].oid, newcap); slots[j].name; j = (j + 1) & (newcap - 1))
            ;
        slots[j] = dec->types[i];
    }
    free(dec->types);
    dec->types = slots;
    dec->types_cap = newcap;
    return true;
}

/* ---- bounds-checked reader -------------------------------------------------------------- */

typedef struct reader {
    const uint8_t *buf;       /* the message, type byte included */
    size_t len;               /* bytes in buf */
    size_t pos;               /* next byte to read */
    const char *msgname;      /* "Insert", for errors */
    const ds_relation_t *rel; /* relation the message is about, named in errors when set */
    const char *part;         /* "new tuple", "old key tuple", ... or NULL */
    int column;               /* 1-based column being read, 0 when none */
    char *errstr;             /* where errors go */
    size_t errstr_size;       /* size of errstr */
} reader_t;

/* "'x' (0x78)" for a printable byte, "0x01" otherwise. */
static const char *describe_byte(uint8_t b, char out[16])
{
    if (b >= 0x20 && b < 0x7f)
        snprintf(out, 16, "'%c' (0x%02x)", b, b);
    else
        snprintf(out, 16, "0x%02x", b);
    return out;
}

/*
 * Formats "<problem> <Msg> message [for s.t (relid N)]: [part ][column N ]<detail> (message
 * length L)" and returns false.
 */
static bool rd_error(reader_t *r, const char *problem, const char *fmt, ...) DS_PRINTF(3, 4);

static bool rd_error(reader_t *r, const char *problem, const char *fmt, ...)
{
    char detail[256];
    char relname[200] = "";
    char column[32] = "";
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    if (r->rel)
        snprintf(relname, sizeof(relname), " for %s.%s (relid %" PRIu32 ")", r->rel->schema,
                 r->rel->table, r->rel->relid);
    if (r->column > 0)
        snprintf(column, sizeof(column), "column %d ", r->column);
    return ds_fail(r->errstr, r->errstr_size, "%s %s message%s: %s%s%s%s (message length %zu)",
                   problem, r->msgname, relname, r->part ? r->part : "", r->part ? " " : "", column,
                   detail, r->len);
}

static bool rd_need(reader_t *r, size_t n, const char *what)
{
    if (r->len - r->pos >= n)
        return true;
    return rd_error(r, "truncated", "%s needs %zu bytes at offset %zu, have %zu", what, n, r->pos,
                    r->len - r->pos);
}

static bool rd_u8(reader_t *r, uint8_t *v, const char *what)
{
    if (!rd_need(r, 1, what))
        return false;
    *v = r->buf[r->pos++];
    return true;
}

static bool rd_u16(reader_t *r, uint16_t *v, const char *what)
{
    const uint8_t *p = r->buf + r->pos;

    if (!rd_need(r, 2, what))
        return false;
    *v = (uint16_t)((unsigned)p[0] << 8 | p[1]);
    r->pos += 2;
    return true;
}

static bool rd_u32(reader_t *r, uint32_t *v, const char *what)
{
    const uint8_t *p = r->buf + r->pos;

    if (!rd_need(r, 4, what))
        return false;
    *v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    r->pos += 4;
    return true;
}

static bool rd_u64(reader_t *r, uint64_t *v, const char *what)
{
    uint32_t hi = 0, lo = 0; /* set below; initialised for -O3's flow analysis */

    if (!rd_need(r, 8, what))
        return false;
    (void)rd_u32(r, &hi, what); /* cannot fail after rd_need */
    (void)rd_u32(r, &lo, what);
    *v = (uint64_t)hi << 32 | lo;
    return true;
}

/* Two's complement reinterpretation without implementation-defined conversions. */
static int32_t as_i32(uint32_t v)
{
    return v <= INT32_MAX ? (int32_t)v : -(int32_t)(~v) - 1;
}

static int64_t as_i64(uint64_t v)
{
    return v <= INT64_MAX ? (int64_t)v : -(int64_t)(~v) - 1;
}

static int16_t as_i16(uint16_t v)
{
    return v <= INT16_MAX ? (int16_t)v : (int16_t)(-(int)(uint16_t)~v - 1);
}

/* A NUL-terminated string; *s points into the buffer. */
static bool rd_str(reader_t *r, const char **s, const char *what)
{
    const uint8_t *start = r->buf + r->pos;
    const uint8_t *nul = memchr(start, '\0', r->len - r->pos);

    if (!nul)
        return rd_error(r, "truncated", "%s not NUL-terminated at offset %zu", what, r->pos);
    *s = (const char *)start;
    r->pos += (size_t)(nul - start) + 1;
    return true;
}

/* An Int32 byte count followed by that many bytes; negative counts are rejected. */
static bool rd_counted(reader_t *r, const char **data, uint32_t *len, const char *what_len,
                       const char *what)
{
    uint32_t raw;
    int32_t n;

    if (!rd_u32(r, &raw, what_len))
        return false;
    n = as_i32(raw);
    if (n < 0)
        return rd_error(r, "malformed", "negative %s %" PRId32 " at offset %zu", what_len, n,
                        r->pos - 4);
    if (!rd_need(r, (size_t)n, what))
        return false;
    *data = (const char *)r->buf + r->pos;
    *len = (uint32_t)n;
    r->pos += (size_t)n;
    return true;
}

/* Every message must be consumed exactly: trailing bytes mean we misread its layout. */
static bool rd_end(reader_t *r)
{
    r->part = NULL;
    r->column = 0;
    if (r->pos == r->len)
        return true;
    return rd_error(r, "malformed", "%zu trailing bytes after offset %zu", r->len - r->pos, r->pos);
}

/* ---- message bodies --------------------------------------------------------------------- */

static bool decode_begin(reader_t *r, ds_pgoutput_msg_t *msg)
{
    uint64_t ts;

    if (!rd_u64(r, &msg->u.begin.final_lsn, "final LSN") || !rd_u64(r, &ts, "commit timestamp") ||
        !rd_u32(r, &msg->u.begin.xid, "xid"))
        return false;
    msg->u.begin.commit_time = as_i64(ts);
    return rd_end(r);
}

static bool decode_commit(reader_t *r, ds_pgoutput_msg_t *msg)
{
    uint64_t ts;

    if (!rd_u8(r, &msg->u.commit.flags, "flags") ||
        !rd_u64(r, &msg->u.commit.commit_lsn, "commit LSN") ||
        !rd_u64(r, &msg->u.commit.end_lsn, "end LSN") || !rd_u64(r, &ts, "commit timestamp"))
        return false;
    msg->u.commit.commit_time = as_i64(ts);
    return rd_end(r);
}

static bool decode_origin(reader_t *r, ds_pgoutput_msg_t *msg)
{
    if (!rd_u64(r, &msg->u.origin.commit_lsn, "origin commit LSN") ||
        !rd_str(r, &msg->u.origin.name, "origin name"))
        return false;
    return rd_end(r);
}

static bool decode_message(reader_t *r, ds_pgoutput_msg_t *msg)
{
    if (!rd_u8(r, &msg->u.message.flags, "flags") || !rd_u64(r, &msg->u.message.lsn, "LSN") ||
        !rd_str(r, &msg->u.message.prefix, "prefix") ||
        !rd_counted(r, &msg->u.message.content, &msg->u.message.content_len, "content length",
                    "content"))
        return false;
    return rd_end(r);
}

static bool decode_type(ds_pgoutput_t *dec, reader_t *r, ds_pgoutput_msg_t *msg)
{
    const char *schema = NULL, *name = NULL; /* set by rd_str; -O3 cannot tell */
    type_entry_t *slot;
    size_t slen, nlen;
    char *full;

    if (!rd_u32(r, &msg->u.type.oid, "type OID") || !rd_str(r, &schema, "type namespace") ||
        !rd_str(r, &name, "type name") || !rd_end(r))
        return false;
    if (schema[0] == '\0')
        schema = pg_catalog_name;
    msg->u.type.schema = schema;
    msg->u.type.name = name;

    slen = strlen(schema);
    nlen = strlen(name);
    full = malloc(slen + 1 + nlen + 1);
    if (!full || !type_reserve(dec)) {
        free(full);
        return ds_fail(r->errstr, r->errstr_size,
                       "out of memory caching Type message for %s.%s (OID %" PRIu32 ")", schema,
                       name, msg->u.type.oid);
    }
    memcpy(full, schema, slen);
    full[slen] = '.';
    memcpy(full + slen + 1, name, nlen + 1);

    slot = type_slot(dec, msg->u.type.oid);
    if (slot->name) {
        free(slot->name); /* the type was renamed or moved: the latest name wins */
    } else {
        slot->oid = msg->u.type.oid;
        dec->types_count++;
    }
    slot->name = full;
    return true;
}

/* Grows the value arrays so every tuple of a relation with @p ncols columns fits. */
static bool reserve_values(ds_pgoutput_t *dec, int ncols)
{
    ds_value_t *v;

    if (ncols <= dec->vals_cap)
        return true;
    v = realloc(dec->oldvals, (size_t)ncols * sizeof(*v));
    if (!v)
        return false;
    dec->oldvals = v;
    v = realloc(dec->newvals, (size_t)ncols * sizeof(*v));
    if (!v)
        return false;
    dec->newvals = v;
    dec->vals_cap = ncols;
    return true;
}

static bool decode_relation(ds_pgoutput_t *dec, reader_t *r, ds_pgoutput_msg_t *msg)
{
    uint32_t relid;
    const char *schema = NULL, *table = NULL; /* set by rd_str; -O3 cannot tell */
    uint8_t replident;
    uint16_t raw_ncols;
    int ncols;
    ds_column_t *columns = NULL;
    char *strings = NULL, *p;
    size_t total, slen, tlen;
    rel_entry_t *e;
    ds_relation_t named;
    char desc[16];

    if (!rd_u32(r, &relid, "relation OID") || !rd_str(r, &schema, "namespace") ||
        !rd_str(r, &table, "relation name") || !rd_u8(r, &replident, "replica identity") ||
        !rd_u16(r, &raw_ncols, "column count"))
        return false;
    if (schema[0] == '\0')
        schema = pg_catalog_name;
    /* Only for error messages from here on: name the relation being announced. */
    named = (ds_relation_t){.relid = relid, .schema = (char *)schema, .table = (char *)table};
    r->rel = &named;
    if (replident != DS_REPLIDENT_DEFAULT && replident != DS_REPLIDENT_NOTHING &&
        replident != DS_REPLIDENT_FULL && replident != DS_REPLIDENT_INDEX)
        return rd_error(r, "malformed", "unknown replica identity %s at offset %zu",
                        describe_byte(replident, desc), r->pos - 3);
    ncols = as_i16(raw_ncols);
    if (ncols < 0)
        return rd_error(r, "malformed", "negative column count %d at offset %zu", ncols,
                        r->pos - 2);

    slen = strlen(schema);
    tlen = strlen(table);
    total = slen + 1 + tlen + 1;
    if (ncols > 0) {
        columns = calloc((size_t)ncols, sizeof(*columns));
        if (!columns)
            goto oom;
    }
    for (int i = 0; i < ncols; i++) {
        uint8_t flags;
        const char *name = NULL;
        uint32_t typmod;

        r->column = i + 1;
        if (!rd_u8(r, &flags, "flags") || !rd_str(r, &name, "name") ||
            !rd_u32(r, &columns[i].type_oid, "type OID") || !rd_u32(r, &typmod, "type modifier"))
            goto error;
        columns[i].is_key = (flags & 1) != 0;
        columns[i].typmod = as_i32(typmod);
        /* Borrowed from the buffer until the string block is built below. */
        columns[i].name = (char *)name;
        total += strlen(name) + 1;
    }
    r->column = 0;
    if (!rd_end(r))
        goto error;
    r->rel = NULL;

    /* The message is valid; from here on only memory can fail, and the cache is untouched
     * until everything is allocated. */
    strings = malloc(total);
    if (!strings || !reserve_values(dec, ncols))
        goto oom;
    p = strings;
    memcpy(p, schema, slen + 1);
    schema = p;
    p += slen + 1;
    memcpy(p, table, tlen + 1);
    table = p;
    p += tlen + 1;
    for (int i = 0; i < ncols; i++) {
        size_t n = strlen(columns[i].name) + 1;
        memcpy(p, columns[i].name, n);
        columns[i].name = p;
        p += n;
    }

    e = rel_lookup(dec, relid);
    if (e) {
        /* ALTER TABLE (or a cache invalidation on the server): replace in place. */
        free(e->rel.columns);
        free(e->strings);
        e->rel.generation++;
    } else {
        if (!rel_reserve(dec))
            goto oom;
        e = calloc(1, sizeof(*e));
        if (!e)
            goto oom;
        e->rel.relid = relid;
        e->rel.generation = 1; /* 0 stays free for callers meaning "never seen" */
        rel_insert(dec, e);
    }
    e->rel.schema = (char *)schema;
    e->rel.table = (char *)table;
    e->rel.replident = (char)replident;
    e->rel.ncolumns = ncols;
    e->rel.columns = columns;
    e->strings = strings;
    msg->u.relation.rel = &e->rel;
    return true;

oom:
    ds_fail(r->errstr, r->errstr_size,
            "out of memory caching Relation message for %s.%s (relid %" PRIu32 ", %d columns)",
            schema, table, relid, ncols);
error:
    free(columns);
    free(strings);
    return false;
}

/* Reads a relation OID and finds it in the cache; later errors name the relation. */
static bool read_relation_ref(ds_pgoutput_t *dec, reader_t *r, const ds_relation_t **rel)
{
    uint32_t relid;
    rel_entry_t *e;

    if (!rd_u32(r, &relid, "relation OID"))
        return false;
    e = rel_lookup(dec, relid);
    if (!e)
        return rd_error(r, "malformed",
                        "unknown relation OID %" PRIu32 " at offset %zu (no Relation message "
                        "announced it)",
                        relid, r->pos - 4);
    *rel = &e->rel;
    r->rel = *rel;
    return true;
}

/* TupleData: Int16 column count, then a kind byte and (for 't'/'b') a counted value each. */
static bool read_tuple(reader_t *r, const char *part, ds_value_t *vals, ds_tuple_t *tup)
{
    const ds_relation_t *rel = r->rel;
    uint16_t raw;
    int ncols;
    char desc[16];

    r->part = part;
    r->column = 0;
    if (!rd_u16(r, &raw, "column count"))
        return false;
    ncols = as_i16(raw);
    if (ncols != rel->ncolumns)
        return rd_error(r, "malformed",
                        "column count %d at offset %zu differs from the %d columns of the "
                        "cached relation (a Relation message should have announced the change)",
                        ncols, r->pos - 2, rel->ncolumns);
    for (int i = 0; i < ncols; i++) {
        uint8_t kind;

        r->column = i + 1;
        if (!rd_u8(r, &kind, "value kind"))
            return false;
        switch (kind) {
        case DS_VALUE_NULL:
        case DS_VALUE_UNCHANGED_TOAST:
            vals[i].kind = (ds_value_kind_t)kind;
            vals[i].data = NULL;
            vals[i].len = 0;
            break;
        case DS_VALUE_TEXT:
        case DS_VALUE_BINARY:
            vals[i].kind = (ds_value_kind_t)kind;
            if (!rd_counted(r, &vals[i].data, &vals[i].len, "value length", "value"))
                return false;
            break;
        default:
            return rd_error(r, "malformed", "unknown value kind %s at offset %zu",
                            describe_byte(kind, desc), r->pos - 1);
        }
    }
    r->part = NULL;
    r->column = 0;
    tup->nvalues = ncols;
    tup->values = vals;
    return true;
}

static bool expect_tuple_kind(reader_t *r, uint8_t kind, const char *expected)
{
    char desc[16];

    return rd_error(r, "malformed", "unexpected tuple kind %s at offset %zu, expected %s",
                    describe_byte(kind, desc), r->pos - 1, expected);
}

static bool decode_insert(ds_pgoutput_t *dec, reader_t *r, ds_pgoutput_msg_t *msg)
{
    uint8_t kind;

    if (!read_relation_ref(dec, r, &msg->u.insert.rel) || !rd_u8(r, &kind, "tuple kind"))
        return false;
    if (kind != 'N')
        return expect_tuple_kind(r, kind, "'N'");
    if (!read_tuple(r, "new tuple", dec->newvals, &msg->u.insert.newtup))
        return false;
    return rd_end(r);
}

static bool decode_update(ds_pgoutput_t *dec, reader_t *r, ds_pgoutput_msg_t *msg)
{
    uint8_t kind;

    if (!read_relation_ref(dec, r, &msg->u.update.rel) || !rd_u8(r, &kind, "tuple kind"))
        return false;
    msg->u.update.old_kind = 0;
    if (kind == 'K' || kind == 'O') {
        msg->u.update.old_kind = (char)kind;
        if (!read_tuple(r, kind == 'K' ? "old key tuple" : "old tuple", dec->oldvals,
                        &msg->u.update.oldtup) ||
            !rd_u8(r, &kind, "new tuple kind"))
            return false;
        if (kind != 'N')
            return expect_tuple_kind(r, kind, "'N'");
    } else if (kind != 'N') {
        return expect_tuple_kind(r, kind, "'K', 'O' or 'N'");
    }
    if (!read_tuple(r, "new tuple", dec->newvals, &msg->u.update.newtup))
        return false;
    return rd_end(r);
}

static bool decode_delete(ds_pgoutput_t *dec, reader_t *r, ds_pgoutput_msg_t *msg)
{
    uint8_t kind;

    if (!read_relation_ref(dec, r, &msg->u.delete.rel) || !rd_u8(r, &kind, "tuple kind"))
        return false;
    if (kind != 'K' && kind != 'O')
        return expect_tuple_kind(r, kind, "'K' or 'O'");
    msg->u.delete.old_kind = (char)kind;
    if (!read_tuple(r, kind == 'K' ? "old key tuple" : "old tuple", dec->oldvals,
                    &msg->u.delete.oldtup))
        return false;
    return rd_end(r);
}

static bool decode_truncate(ds_pgoutput_t *dec, reader_t *r, ds_pgoutput_msg_t *msg)
{
    uint32_t raw;
    int32_t nrels;

    if (!rd_u32(r, &raw, "relation count") || !rd_u8(r, &msg->u.truncate.options, "options"))
        return false;
    nrels = as_i32(raw);
    if (nrels < 0)
        return rd_error(r, "malformed", "negative relation count %" PRId32 " at offset %zu", nrels,
                        r->pos - 5);
    /* Check the length before sizing the array, so garbage cannot make us allocate 8 GB. */
    if (!rd_need(r, (size_t)nrels * 4, "relation OIDs"))
        return false;
    if (nrels > dec->trunc_cap) {
        const ds_relation_t **v = realloc(dec->trunc_rels, (size_t)nrels * sizeof(*v));
        if (!v)
            return ds_fail(r->errstr, r->errstr_size,
                           "out of memory decoding a Truncate message of %" PRId32 " relations",
                           nrels);
        dec->trunc_rels = v;
        dec->trunc_cap = nrels;
    }
    for (int32_t i = 0; i < nrels; i++) {
        r->rel = NULL;
        if (!read_relation_ref(dec, r, &dec->trunc_rels[i]))
            return false;
    }
    r->rel = NULL;
    msg->u.truncate.nrelations = nrels;
    msg->u.truncate.rels = dec->trunc_rels;
    return rd_end(r);
}

/* ---- public ----------------------------------------------------------------------------- */

ds_pgoutput_t *ds_pgoutput_new(void)
{
    return calloc(1, sizeof(ds_pgoutput_t));
}

void ds_pgoutput_free(ds_pgoutput_t *dec)
{
    if (!dec)
        return;
    for (size_t i = 0; i < dec->rels_cap; i++) {
        rel_entry_t *e = dec->rels[i];
        if (!e)
            continue;
        free(e->rel.columns);
        free(e->strings);
        free(e);
    }
    free(dec->rels);
    for (size_t i = 0; i < dec->types_cap; i++)
        free(dec->types[i].name);
    free(dec->types);
    free(dec->oldvals);
    free(dec->newvals);
    free(dec->trunc_rels);
    free(dec);
}

static const char *message_name(uint8_t type)
{
    switch (type) {
    case 'B':
        return "Begin";
    case 'C':
        return "Commit";
    case 'O':
        return "Origin";
    case 'R':
        return "Relation";
    case 'Y':
        return "Type";
    case 'I':
        return "Insert";
    case 'U':
        return "Update";
    case 'D':
        return "Delete";
    case 'T':
        return "Truncate";
    case 'M':
        return "Message";
    case 'S':
        return "Stream Start";
    case 'E':
        return "Stream Stop";
    case 'c':
        return "Stream Commit";
    case 'A':
        return "Stream Abort";
    case 'b':
        return "Begin Prepare";
    case 'P':
        return "Prepare";
    case 'K':
        return "Commit Prepared";
    case 'r':
        return "Rollback Prepared";
    case 'p':
        return "Stream Prepare";
    default:
        return NULL;
    }
}

bool ds_pgoutput_decode(ds_pgoutput_t *dec, const uint8_t *buf, size_t len, ds_pgoutput_msg_t *msg,
                        char *errstr, size_t errstr_size)
{
    reader_t r;
    uint8_t type;
    char desc[16];

    if (!dec || !msg || (!buf && len > 0))
        return ds_fail(errstr, errstr_size, "ds_pgoutput_decode: NULL decoder, message or buffer");
    if (len == 0)
        return ds_fail(errstr, errstr_size, "empty pgoutput message (length 0)");
    type = buf[0];
    memset(msg, 0, sizeof(*msg));
    msg->type = (ds_pgoutput_msg_type_t)type;
    r = (reader_t){.buf = buf,
                   .len = len,
                   .pos = 1,
                   .msgname = message_name(type),
                   .errstr = errstr,
                   .errstr_size = errstr_size};

    switch (type) {
    case DS_PGOUTPUT_BEGIN:
        return decode_begin(&r, msg);
    case DS_PGOUTPUT_COMMIT:
        return decode_commit(&r, msg);
    case DS_PGOUTPUT_ORIGIN:
        return decode_origin(&r, msg);
    case DS_PGOUTPUT_RELATION:
        return decode_relation(dec, &r, msg);
    case DS_PGOUTPUT_TYPE:
        return decode_type(dec, &r, msg);
    case DS_PGOUTPUT_INSERT:
        return decode_insert(dec, &r, msg);
    case DS_PGOUTPUT_UPDATE:
        return decode_update(dec, &r, msg);
    case DS_PGOUTPUT_DELETE:
        return decode_delete(dec, &r, msg);
    case DS_PGOUTPUT_TRUNCATE:
        return decode_truncate(dec, &r, msg);
    case DS_PGOUTPUT_MESSAGE:
        return decode_message(&r, msg);
    case 'S':
    case 'E':
    case 'c':
    case 'A':
        return ds_fail(errstr, errstr_size,
                       "pgoutput %s message %s (length %zu): streaming of in-progress "
                       "transactions is not requested by dualsync (protocol version 1, no "
                       "'streaming' option); check the replication connection's options",
                       r.msgname, describe_byte(type, desc), len);
    case 'b':
    case 'P':
    case 'K':
    case 'r':
    case 'p':
        return ds_fail(errstr, errstr_size,
                       "pgoutput %s message %s (length %zu): two-phase commit decoding is not "
                       "requested by dualsync (protocol version 1, no 'two_phase' option)",
                       r.msgname, describe_byte(type, desc), len);
    default:
        return ds_fail(errstr, errstr_size,
                       "unknown pgoutput message type %s (length %zu); dualsync decodes "
                       "protocol version 1",
                       describe_byte(type, desc), len);
    }
}

const ds_relation_t *ds_pgoutput_relation(const ds_pgoutput_t *dec, uint32_t relid)
{
    rel_entry_t *e = rel_lookup(dec, relid);

    return e ? &e->rel : NULL;
}

const char *ds_pgoutput_type_name(const ds_pgoutput_t *dec, uint32_t oid)
{
    if (dec->types_cap == 0)
        return NULL;
    return type_slot(dec, oid)->name;
}
