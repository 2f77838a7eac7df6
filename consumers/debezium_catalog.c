/*
 * debezium_catalog.c: the Connect schema Debezium would have sent with a schemaless topic,
 * rebuilt from the source table's catalog, so that apply reads Debezium's epoch counts,
 * unscaled decimals and durations without the schema envelope (include/dualsync/
 * debezium_decode.h).
 *
 * The rules are Debezium 3.6.1's (PostgresValueConverter.schemaBuilder and the
 * time.precision.mode table of docs/type-mapping.md): a column's type and typmod decide its
 * logical type. A domain counts as its base type, as Debezium resolves it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "dualsync/debezium_decode.h"
#include "dualsync/typemap.h"

#define OID_BIT 1560

static json_t *named(const char *type, const char *name)
{
    return json_pack("{s:s, s:s}", "type", type, "name", name);
}

static json_t *time_schema(int32_t typmod, const ds_value_format_t *f, bool timestamp)
{
    int precision = typmod < 0 ? 6 : typmod;

    switch (f->time_precision) {
    case DS_TIME_ISOSTRING:
        return named("string",
                     timestamp ? "io.debezium.time.IsoTimestamp" : "io.debezium.time.IsoTime");
    case DS_TIME_ADAPTIVE:
    case DS_TIME_ADAPTIVE_TIME_MICROSECONDS:
        if (!timestamp && f->time_precision == DS_TIME_ADAPTIVE_TIME_MICROSECONDS)
            return named("int64", "io.debezium.time.MicroTime");
        if (precision <= 3)
            return timestamp ? named("int64", "io.debezium.time.Timestamp")
                             : named("int32", "io.debezium.time.Time");
        return timestamp ? named("int64", "io.debezium.time.MicroTimestamp")
                         : named("int64", "io.debezium.time.MicroTime");
    case DS_TIME_CONNECT:
        return timestamp ? named("int64", "org.apache.kafka.connect.data.Timestamp")
                         : named("int32", "org.apache.kafka.connect.data.Time");
    case DS_TIME_MICROSECONDS:
        return timestamp ? named("int64", "io.debezium.time.MicroTimestamp")
                         : named("int64", "io.debezium.time.MicroTime");
    case DS_TIME_NANOSECONDS:
        return timestamp ? named("int64", "io.debezium.time.NanoTimestamp")
                         : named("int64", "io.debezium.time.NanoTime");
    }
    return json_pack("{s:s}", "type", "string");
}

static json_t *decimal_schema(int scale)
{
    char text[16];

    snprintf(text, sizeof(text), "%d", scale);
    return json_pack("{s:s, s:s, s:{s:s}}", "type", "bytes", "name",
                     "org.apache.kafka.connect.data.Decimal", "parameters", "scale", text);
}

json_t *ds_debezium_column_schema(uint32_t oid, int32_t typmod, uint32_t elem,
                                  const ds_value_format_t *f)
{
    char length[16];

    if (elem)
        return json_pack("{s:s, s:o}", "type", "array", "items",
                         ds_debezium_column_schema(elem, typmod, 0, f));
    switch (oid) {
    case DS_OID_DATE:
        return f->time_precision == DS_TIME_ISOSTRING ? named("string", "io.debezium.time.IsoDate")
                                                      : named("int32", "io.debezium.time.Date");
    case DS_OID_TIME:
        return time_schema(typmod, f, false);
    case DS_OID_TIMESTAMP:
        return time_schema(typmod, f, true);
    case DS_OID_TIMESTAMPTZ:
        return named("string", "io.debezium.time.ZonedTimestamp");
    case DS_OID_TIMETZ:
        return named("string", "io.debezium.time.ZonedTime");
    case DS_OID_INTERVAL:
        return f->interval_handling == DS_INTERVAL_NUMERIC
                   ? named("int64", "io.debezium.time.MicroDuration")
                   : named("string", "io.debezium.time.Interval");
    case DS_OID_NUMERIC:
        if (f->decimal_handling != DS_DECIMAL_PRECISE)
            break;
        /* numeric(p,s): typmod is ((p << 16) | s) + VARHDRSZ; without one, any scale. */
        if (typmod >= 4)
            return decimal_schema((typmod - 4) & 0xffff);
        return json_pack("{s:s, s:s}", "type", "struct", "name",
                         "io.debezium.data.VariableScaleDecimal");
    case DS_OID_MONEY:
        if (f->decimal_handling == DS_DECIMAL_PRECISE)
            return decimal_schema(f->money_fraction_digits);
        break;
    case OID_BIT:
        if (typmod > 1) {
            snprintf(length, sizeof(length), "%d", typmod);
            return json_pack("{s:s, s:s, s:{s:s}}", "type", "bytes", "name",
                             "io.debezium.data.Bits", "parameters", "length", length);
        }
        break;
    default:
        break;
    }
    return json_pack("{s:s}", "type", "string"); /* read as it is */
}

bool ds_debezium_catalog_read(ds_debezium_decoder_t *decoder, void *conn, const char *topic,
                              const char *schema, const char *table,
                              const ds_value_format_t *format, char *errstr, size_t errstr_size)
{
    /* A domain as its base type and typmod; an array's element type (typcategory 'A'). */
    static const char *const sql =
        "SELECT a.attname,"
        "       CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END,"
        "       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,"
        "       CASE WHEN b.typcategory = 'A' THEN b.typelem ELSE 0 END"
        "  FROM pg_catalog.pg_attribute a"
        "  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
        "  JOIN pg_catalog.pg_type b"
        "    ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END"
        " WHERE a.attrelid = pg_catalog.format('%I.%I', $1::text, $2::text)::regclass"
        "   AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum";
    const char *params[2] = {schema, table};
    PGresult *r = PQexecParams(conn, sql, 2, NULL, params, NULL, NULL, 0);
    json_t *fields = json_array(), *row_schema;

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) == 0) {
        ds_fail(errstr, errstr_size,
                "source table %s.%s: cannot read its columns' types from the source catalog "
                "(%s)",
                schema, table,
                PQresultStatus(r) == PGRES_TUPLES_OK ? "no columns" : PQerrorMessage(conn));
        PQclear(r);
        json_decref(fields);
        return false;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *f =
            ds_debezium_column_schema((uint32_t)strtoul(PQgetvalue(r, i, 1), NULL, 10),
                                      (int32_t)strtol(PQgetvalue(r, i, 2), NULL, 10),
                                      (uint32_t)strtoul(PQgetvalue(r, i, 3), NULL, 10), format);

        json_object_set_new(f, "field", json_string(PQgetvalue(r, i, 0)));
        json_array_append_new(fields, f);
    }
    PQclear(r);
    row_schema = json_pack("{s:s, s:o}", "type", "struct", "fields", fields);
    if (!row_schema || !ds_debezium_decoder_add_table(decoder, topic, row_schema))
        return ds_fail(errstr, errstr_size, "out of memory");
    return true;
}
