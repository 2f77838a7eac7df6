/*
 * envelope.c: the Debezium PostgreSQL connector JSON of one row change, written straight
 * into a reused buffer.
 *
 * Field order follows Debezium's (before, after, source, transaction, op, ts_ms, ts_us,
 * ts_ns; source fields as its io.debezium.connector.postgresql.Source schema lists them) so
 * the messages diff cleanly against a Debezium topic.
 */
#include <string.h>

#include "dualsync/envelope.h"
#include "dualsync/typemap.h"

/* Appends a string literal without a strlen at run time: these run once per row. */
#define APPEND_LITERAL(out, lit) ds_buf_append((out), (lit), sizeof(lit) - 1)

/* Debezium's default for unavailable.value.placeholder. */
#define DEFAULT_PLACEHOLDER "__debezium_unavailable_value"

/* Appends "name": for column i. */
static void append_column_name(ds_buf_t *out, const ds_relation_t *rel, int i)
{
    const char *name = rel->columns[i].name;

    ds_buf_append_json_string(out, name, strlen(name));
    ds_buf_append_char(out, ':');
}

/* Appends an unsigned 64-bit number: LSNs are unsigned and ds_buf_append_int is signed. */
static void append_uint64(ds_buf_t *out, uint64_t value)
{
    char digits[24];
    char *p = digits + sizeof(digits);

    do {
        *--p = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    ds_buf_append(out, p, (size_t)(digits + sizeof(digits) - p));
}

/* A JSON string, or null for NULL. */
static void append_string_or_null(ds_buf_t *out, const char *str)
{
    if (str)
        ds_buf_append_json_string(out, str, strlen(str));
    else
        ds_buf_append(out, "null", 4);
}

static bool check_tuple(const ds_relation_t *rel, const ds_tuple_t *tup, char *errstr,
                        size_t errstr_size)
{
    if (tup->nvalues != rel->ncolumns)
        return ds_fail(errstr, errstr_size,
                       "tuple of %s.%s has %d values but the relation has %d columns", rel->schema,
                       rel->table, tup->nvalues, rel->ncolumns);
    return true;
}

/* The JSON value of one column of a before/after image. */
static bool append_column_value(ds_buf_t *out, const ds_relation_t *rel, int i,
                                const ds_value_t *value, const char *placeholder,
                                const ds_value_format_t *format, char *errstr, size_t errstr_size)
{
    char inner[384];

    switch (value->kind) {
    case DS_VALUE_NULL:
        ds_buf_append(out, "null", 4);
        return true;
    case DS_VALUE_UNCHANGED_TOAST:
        ds_buf_append_json_string(out, placeholder, strlen(placeholder));
        return true;
    case DS_VALUE_TEXT:
        if (ds_typemap_append_value(out, rel->columns[i].type_oid, rel->columns[i].typmod, format,
                                    value->data, value->len, inner, sizeof(inner)))
            return true;
        return ds_fail(errstr, errstr_size, "column %s.%s.%s: %s", rel->schema, rel->table,
                       rel->columns[i].name, inner);
    case DS_VALUE_BINARY:
        return ds_fail(errstr, errstr_size,
                       "column %s.%s.%s came in binary format; dualsync requests text format "
                       "and cannot map binary values",
                       rel->schema, rel->table, rel->columns[i].name);
    }
    return ds_fail(errstr, errstr_size, "column %s.%s.%s has an unknown value kind 0x%02x",
                   rel->schema, rel->table, rel->columns[i].name, (unsigned)value->kind);
}

/* {"col":value,...} in table order, or null for no tuple. */
static bool append_tuple(ds_buf_t *out, const ds_relation_t *rel, const ds_tuple_t *tup,
                         const char *placeholder, const ds_value_format_t *format, char *errstr,
                         size_t errstr_size)
{
    if (!tup) {
        ds_buf_append(out, "null", 4);
        return true;
    }
    if (!check_tuple(rel, tup, errstr, errstr_size))
        return false;
    ds_buf_append_char(out, '{');
    for (int i = 0; i < rel->ncolumns; i++) {
        if (i)
            ds_buf_append_char(out, ',');
        append_column_name(out, rel, i);
        if (!append_column_value(out, rel, i, &tup->values[i], placeholder, format, errstr,
                                 errstr_size))
            return false;
    }
    ds_buf_append_char(out, '}');
    return true;
}

static bool write_key(ds_buf_t *out, const ds_relation_t *rel, const bool *key_mask,
                      const ds_tuple_t *tup, const ds_value_format_t *format, bool nulls_allowed,
                      char *errstr, size_t errstr_size)
{
    bool first = true;

    if (!check_tuple(rel, tup, errstr, errstr_size))
        return false;
    ds_buf_append_char(out, '{');
    for (int i = 0; i < rel->ncolumns; i++) {
        const ds_value_t *value = &tup->values[i];
        char inner[384];

        if (!(key_mask ? key_mask[i] : rel->columns[i].is_key))
            continue;
        if (!first)
            ds_buf_append_char(out, ',');
        first = false;
        append_column_name(out, rel, i);
        switch (value->kind) {
        case DS_VALUE_TEXT:
            if (!ds_typemap_append_value(out, rel->columns[i].type_oid, rel->columns[i].typmod,
                                         format, value->data, value->len, inner, sizeof(inner)))
                return ds_fail(errstr, errstr_size, "key column %s.%s.%s: %s", rel->schema,
                               rel->table, rel->columns[i].name, inner);
            break;
        case DS_VALUE_NULL:
            if (nulls_allowed) {
                ds_buf_append(out, "null", 4);
                break;
            }
            return ds_fail(errstr, errstr_size,
                           "key column %s.%s.%s is NULL; a message key needs a value for every "
                           "key column",
                           rel->schema, rel->table, rel->columns[i].name);
        case DS_VALUE_UNCHANGED_TOAST:
            return ds_fail(errstr, errstr_size,
                           "key column %s.%s.%s is an unchanged TOASTed value that PostgreSQL "
                           "did not send, so the message key cannot be written",
                           rel->schema, rel->table, rel->columns[i].name);
        case DS_VALUE_BINARY:
            return ds_fail(errstr, errstr_size,
                           "key column %s.%s.%s came in binary format; dualsync requests text "
                           "format",
                           rel->schema, rel->table, rel->columns[i].name);
        default:
            return ds_fail(errstr, errstr_size,
                           "key column %s.%s.%s has an unknown value kind 0x%02x", rel->schema,
                           rel->table, rel->columns[i].name, (unsigned)value->kind);
        }
    }
    ds_buf_append_char(out, '}');
    return true;
}

bool ds_envelope_write_key(ds_buf_t *out, const ds_relation_t *rel, const bool *key_mask,
                           const ds_tuple_t *tup, const ds_value_format_t *format, char *errstr,
                           size_t errstr_size)
{
    return write_key(out, rel, key_mask, tup, format, false, errstr, errstr_size);
}

bool ds_envelope_write_key_nullable(ds_buf_t *out, const ds_relation_t *rel, const bool *key_mask,
                                    const ds_tuple_t *tup, const ds_value_format_t *format,
                                    char *errstr, size_t errstr_size)
{
    return write_key(out, rel, key_mask, tup, format, true, errstr, errstr_size);
}

/* Milliseconds from microseconds, rounding towards negative infinity as Java's
 * Instant.toEpochMilli() does for times before 1970. */
static int64_t us_to_ms(int64_t us)
{
    return us >= 0 ? us / 1000 : -((-(us + 1)) / 1000) - 1;
}

static void append_source(ds_buf_t *out, const ds_relation_t *rel,
                          const ds_envelope_source_t *source)
{
    APPEND_LITERAL(out, "{\"version\":");
    append_string_or_null(out, source->version);
    APPEND_LITERAL(out, ",\"connector\":\"postgresql\",\"name\":");
    append_string_or_null(out, source->name);
    APPEND_LITERAL(out, ",\"ts_ms\":");
    ds_buf_append_int(out, us_to_ms(source->commit_time_us));
    APPEND_LITERAL(out, ",\"snapshot\":");
    append_string_or_null(out, source->snapshot ? source->snapshot : "false");
    APPEND_LITERAL(out, ",\"db\":");
    append_string_or_null(out, source->db);

    /* Debezium's "sequence" is a string holding a JSON array of two strings, the last
     * commit LSN and this change's LSN in decimal, so that consumers can order and
     * deduplicate events across restarts. Digits need no escaping inside the string. */
    APPEND_LITERAL(out, ",\"sequence\":\"[");
    if (source->last_commit_lsn == DS_INVALID_LSN) {
        ds_buf_append(out, "null", 4);
    } else {
        ds_buf_append(out, "\\\"", 2);
        append_uint64(out, source->last_commit_lsn);
        ds_buf_append(out, "\\\"", 2);
    }
    ds_buf_append(out, ",\\\"", 3);
    append_uint64(out, source->lsn);
    ds_buf_append(out, "\\\"]\"", 4);

    /* The same instant in microseconds and nanoseconds (PostgreSQL's commit time has
     * microseconds: the nanoseconds end in 000, as Debezium's do). */
    APPEND_LITERAL(out, ",\"ts_us\":");
    ds_buf_append_int(out, source->commit_time_us);
    APPEND_LITERAL(out, ",\"ts_ns\":");
    ds_buf_append_int(out, source->commit_time_us * 1000);

    APPEND_LITERAL(out, ",\"schema\":");
    append_string_or_null(out, rel->schema);
    APPEND_LITERAL(out, ",\"table\":");
    append_string_or_null(out, rel->table);
    APPEND_LITERAL(out, ",\"txId\":");
    append_uint64(out, source->xid);
    APPEND_LITERAL(out, ",\"lsn\":");
    append_uint64(out, source->lsn);
    /* xmin is only set by Debezium's xmin.fetch.interval.ms, which dualsync does not have. */
    APPEND_LITERAL(out, ",\"xmin\":null,\"origin\":");
    append_string_or_null(out, source->origin);
    APPEND_LITERAL(out, ",\"origin_lsn\":");
    if (source->origin_lsn == DS_INVALID_LSN)
        ds_buf_append(out, "null", 4);
    else
        append_uint64(out, source->origin_lsn);
    ds_buf_append_char(out, '}');
}

/* {"id":"...","total_order":n,"data_collection_order":m}, or null. */
static void append_transaction(ds_buf_t *out, const ds_envelope_transaction_t *tx)
{
    if (!tx) {
        ds_buf_append(out, "null", 4);
        return;
    }
    APPEND_LITERAL(out, "{\"id\":");
    append_string_or_null(out, tx->id);
    APPEND_LITERAL(out, ",\"total_order\":");
    ds_buf_append_int(out, tx->total_order);
    APPEND_LITERAL(out, ",\"data_collection_order\":");
    ds_buf_append_int(out, tx->data_collection_order);
    ds_buf_append_char(out, '}');
}

bool ds_envelope_write_value(ds_buf_t *out, char op, const ds_relation_t *rel,
                             const ds_tuple_t *before, const ds_tuple_t *after,
                             const ds_envelope_source_t *source,
                             const ds_envelope_options_t *options, int64_t now_us, char *errstr,
                             size_t errstr_size)
{
    const char *placeholder = options && options->unavailable_value_placeholder
                                  ? options->unavailable_value_placeholder
                                  : DEFAULT_PLACEHOLDER;
    const ds_value_format_t *format = options ? options->format : NULL;
    char op_text[3] = {'"', op, '"'};

    if (op != 'c' && op != 'u' && op != 'd' && op != 'r' && op != 't')
        return ds_fail(errstr, errstr_size, "change of %s.%s has unknown op 0x%02x", rel->schema,
                       rel->table, (unsigned char)op);
    if (op == 't')
        before = after = NULL;

    APPEND_LITERAL(out, "{\"before\":");
    if (!append_tuple(out, rel, before, placeholder, format, errstr, errstr_size))
        return false;
    APPEND_LITERAL(out, ",\"after\":");
    if (!append_tuple(out, rel, after, placeholder, format, errstr, errstr_size))
        return false;
    APPEND_LITERAL(out, ",\"source\":");
    append_source(out, rel, source);
    APPEND_LITERAL(out, ",\"transaction\":");
    append_transaction(out, source->transaction);
    APPEND_LITERAL(out, ",\"op\":");
    ds_buf_append(out, op_text, sizeof(op_text));
    APPEND_LITERAL(out, ",\"ts_ms\":");
    ds_buf_append_int(out, us_to_ms(now_us));
    APPEND_LITERAL(out, ",\"ts_us\":");
    ds_buf_append_int(out, now_us);
    APPEND_LITERAL(out, ",\"ts_ns\":");
    ds_buf_append_int(out, now_us * 1000);
    ds_buf_append_char(out, '}');
    return true;
}
