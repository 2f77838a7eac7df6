/*
 * typemap.h: PostgreSQL text output of a column value to its JSON representation in a
 * Debezium envelope, exactly as Debezium's PostgreSQL connector writes it through
 * JsonConverter under the value settings of ds_value_format_t. The mapping is documented in
 * docs/type-mapping.md; the capture connection sets DateStyle=ISO, IntervalStyle=iso_8601,
 * TimeZone=UTC, extra_float_digits=3 and lc_monetary=C so the text forms parsed here are fixed.
 */
#ifndef DUALSYNC_TYPEMAP_H
#define DUALSYNC_TYPEMAP_H

#include "dualsync/buf.h"
#include "dualsync/common.h"
#include "dualsync/value_format.h"

/* Built-in type OIDs (src/include/catalog/pg_type.dat); stable across releases. */
enum ds_type_oid {
    DS_OID_BOOL = 16,
    DS_OID_BYTEA = 17,
    DS_OID_CHAR = 18,
    DS_OID_NAME = 19,
    DS_OID_INT8 = 20,
    DS_OID_INT2 = 21,
    DS_OID_INT4 = 23,
    DS_OID_TEXT = 25,
    DS_OID_OID = 26,
    DS_OID_JSON = 114,
    DS_OID_FLOAT4 = 700,
    DS_OID_FLOAT8 = 701,
    DS_OID_MONEY = 790,
    DS_OID_BPCHAR = 1042,
    DS_OID_VARCHAR = 1043,
    DS_OID_DATE = 1082,
    DS_OID_TIME = 1083,
    DS_OID_TIMESTAMP = 1114,
    DS_OID_TIMESTAMPTZ = 1184,
    DS_OID_INTERVAL = 1186,
    DS_OID_TIMETZ = 1266,
    DS_OID_NUMERIC = 1700,
    DS_OID_UUID = 2950,
    DS_OID_JSONB = 3802,
};

/**
 * @brief Appends the JSON value for one non-NULL column value given in text form.
 *
 * @param type_oid  the column's type; arrays of known element types become JSON arrays,
 *                  unknown types (enums, domains, extensions) become JSON strings.
 * @param typmod    the column's atttypmod (-1 when none): the precision of time and
 *                  timestamp columns (adaptive modes, ZonedTimestamp's fraction digits) and
 *                  the scale of numeric columns (decimal.handling.mode=precise).
 * @param format    Debezium's value settings (borrowed); NULL, or a format without
 *                  the "debezium" object, writes dualsync's classic values.
 * @return false with errstr set when @p text is not valid output of that type (for instance
 *         a malformed array literal or bytea hex); @p out may hold a partial value then.
 */
bool ds_typemap_append_value(ds_buf_t *out, uint32_t type_oid, int32_t typmod,
                             const ds_value_format_t *format, const char *text, size_t len,
                             char *errstr, size_t errstr_size) DS_MUST_CHECK;

/** @brief dualsync's classic value (typemap_classic.c): what ds_typemap_append_value() writes
 *         without the "debezium" object, and what mappings read (docs/type-mapping.md). */
bool ds_typemap_append_json(ds_buf_t *out, uint32_t type_oid, const char *text, size_t len,
                            char *errstr, size_t errstr_size) DS_MUST_CHECK;

/** @brief The element type of a built-in array type, or 0 when @p type_oid is not one. */
uint32_t ds_typemap_array_element(uint32_t type_oid);

#endif
