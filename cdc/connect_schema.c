/*
 * connect_schema.c: the Kafka Connect schemas of Debezium's PostgreSQL change events, written
 * as JsonConverter writes them.
 *
 * JsonConverter.asJsonSchema() writes a schema's members in a fixed order: type, then fields
 * (struct) or items (array), optional, name, version, doc, parameters, default; a struct's
 * field adds "field" last. Parameters keep the order they were set in (a LinkedHashMap).
 * Everything here keeps that order so the text equals Debezium's byte for byte.
 *
 * The per-type rules are PostgresValueConverter.schemaBuilder() of Debezium 3.6 (falling back
 * to JdbcValueConverters for the plain JDBC types), with the column's length and scale as
 * pgjdbc derives them from the type modifier.
 */
#include <string.h>
#include <strings.h>

#include "dualsync/connect_schema.h"
#include "dualsync/typemap.h"

#define APPEND_LITERAL(out, lit) ds_buf_append((out), (lit), sizeof(lit) - 1)

/* Type OIDs Debezium names that typemap.h does not (src/include/catalog/pg_type.dat). */
enum {
    OID_XML = 142,
    OID_POINT = 600,
    OID_CIDR = 650,
    OID_MACADDR8 = 774,
    OID_MACADDR = 829,
    OID_INET = 869,
    OID_BIT = 1560,
    OID_VARBIT = 1562,
    OID_INT4RANGE = 3904,
    OID_NUMRANGE = 3906,
    OID_TSRANGE = 3908,
    OID_TSTZRANGE = 3910,
    OID_DATERANGE = 3912,
    OID_INT8RANGE = 3926,

    OID_BOOL_ARRAY = 1000,
    OID_BYTEA_ARRAY = 1001,
    OID_CHAR_ARRAY = 1002,
    OID_NAME_ARRAY = 1003,
    OID_INT2_ARRAY = 1005,
    OID_INT4_ARRAY = 1007,
    OID_TEXT_ARRAY = 1009,
    OID_BPCHAR_ARRAY = 1014,
    OID_VARCHAR_ARRAY = 1015,
    OID_INT8_ARRAY = 1016,
    OID_POINT_ARRAY = 1017,
    OID_FLOAT4_ARRAY = 1021,
    OID_FLOAT8_ARRAY = 1022,
    OID_OID_ARRAY = 1028,
    OID_MACADDR_ARRAY = 1040,
    OID_INET_ARRAY = 1041,
    OID_TIMESTAMP_ARRAY = 1115,
    OID_DATE_ARRAY = 1182,
    OID_TIME_ARRAY = 1183,
    OID_TIMESTAMPTZ_ARRAY = 1185,
    OID_INTERVAL_ARRAY = 1187,
    OID_NUMERIC_ARRAY = 1231,
    OID_TIMETZ_ARRAY = 1270,
    OID_BIT_ARRAY = 1561,
    OID_VARBIT_ARRAY = 1563,
    OID_CIDR_ARRAY = 651,
    OID_MACADDR8_ARRAY = 775,
    OID_MONEY_ARRAY = 791,
    OID_XML_ARRAY = 143,
    OID_JSON_ARRAY = 199,
    OID_REFCURSOR_ARRAY = 2201,
    OID_UUID_ARRAY = 2951,
    OID_JSONB_ARRAY = 3807,
    OID_INT4RANGE_ARRAY = 3905,
    OID_NUMRANGE_ARRAY = 3907,
    OID_TSRANGE_ARRAY = 3909,
    OID_TSTZRANGE_ARRAY = 3911,
    OID_DATERANGE_ARRAY = 3913,
    OID_INT8RANGE_ARRAY = 3927,
};

/* pgjdbc's length of an unconstrained numeric (TypeInfoCache.getDisplaySize), which
 * Debezium takes as "variable scale". */
#define VARIABLE_SCALE_DECIMAL_LENGTH 131089

/* One Connect schema, enough of it to write. */
typedef struct ctype {
    const char *type;          /* "int32", "string", "struct", "array", ... */
    const char *name;          /* logical name, or NULL */
    int version;               /* 0: none */
    const char *doc;           /* or NULL */
    bool variable_scale;       /* io.debezium.data.VariableScaleDecimal: its two fields */
    int decimal_scale;         /* Decimal "scale" parameter; -1: none */
    int decimal_precision;     /* "connect.decimal.precision" parameter; -1: none */
    const char *allowed;       /* Enum "allowed" parameter, or NULL */
    int bits_length;           /* Bits "length" parameter; 0: none */
    const struct ctype *items; /* array element, or NULL */
    bool items_optional;       /* whether the element schema is optional */
} ctype_t;

static ctype_t plain(const char *type)
{
    ctype_t t = {.type = type, .decimal_scale = -1, .decimal_precision = -1};

    return t;
}

static ctype_t named(const char *type, const char *name)
{
    ctype_t t = plain(type);

    t.name = name;
    t.version = 1;
    return t;
}

/* pgjdbc's scale of a time type (TypeInfoCache.getScale): the fractional digits, 6 when the
 * column does not say. */
static int time_precision(int32_t typmod)
{
    return typmod < 0 ? 6 : typmod;
}

static ctype_t date_type(const ds_value_format_t *f)
{
    switch (f->time_precision) {
    case DS_TIME_ISOSTRING:
        return named("string", "io.debezium.time.IsoDate");
    case DS_TIME_CONNECT:
        return named("int32", "org.apache.kafka.connect.data.Date");
    default:
        return named("int32", "io.debezium.time.Date");
    }
}

/* TemporalPrecisionMode.getTimeBuilder(precision) */
static ctype_t time_type(const ds_value_format_t *f, int32_t typmod)
{
    int p = time_precision(typmod);

    switch (f->time_precision) {
    case DS_TIME_ISOSTRING:
        return named("string", "io.debezium.time.IsoTime");
    case DS_TIME_CONNECT:
        return named("int32", "org.apache.kafka.connect.data.Time");
    case DS_TIME_ADAPTIVE_TIME_MICROSECONDS:
    case DS_TIME_MICROSECONDS:
        return named("int64", "io.debezium.time.MicroTime");
    case DS_TIME_NANOSECONDS:
        return named("int64", "io.debezium.time.NanoTime");
    case DS_TIME_ADAPTIVE:
        break;
    }
    return p <= 3   ? named("int32", "io.debezium.time.Time")
           : p <= 6 ? named("int64", "io.debezium.time.MicroTime")
                    : named("int64", "io.debezium.time.NanoTime");
}

/* TemporalPrecisionMode.getTimestampBuilder(precision) */
static ctype_t timestamp_type(const ds_value_format_t *f, int32_t typmod)
{
    int p = time_precision(typmod);

    switch (f->time_precision) {
    case DS_TIME_ISOSTRING:
        return named("string", "io.debezium.time.IsoTimestamp");
    case DS_TIME_CONNECT:
        return named("int64", "org.apache.kafka.connect.data.Timestamp");
    case DS_TIME_MICROSECONDS:
        return named("int64", "io.debezium.time.MicroTimestamp");
    case DS_TIME_NANOSECONDS:
        return named("int64", "io.debezium.time.NanoTimestamp");
    case DS_TIME_ADAPTIVE:
    case DS_TIME_ADAPTIVE_TIME_MICROSECONDS:
        break;
    }
    return p <= 3   ? named("int64", "io.debezium.time.Timestamp")
           : p <= 6 ? named("int64", "io.debezium.time.MicroTimestamp")
                    : named("int64", "io.debezium.time.NanoTimestamp");
}

/* numericSchema(): numeric's precision and scale are packed in the typmod as
 * ((precision << 16) | scale) + 4; an unconstrained numeric has none. */
static ctype_t numeric_type(const ds_value_format_t *f, int32_t typmod)
{
    int precision = typmod < 0 ? VARIABLE_SCALE_DECIMAL_LENGTH : ((typmod - 4) >> 16) & 0xffff;
    int scale = typmod < 0 ? 0 : (typmod - 4) & 0xffff;
    ctype_t t;

    switch (f->decimal_handling) {
    case DS_DECIMAL_DOUBLE:
        return plain("double");
    case DS_DECIMAL_STRING:
        return plain("string");
    case DS_DECIMAL_PRECISE:
        break;
    }
    if (precision == VARIABLE_SCALE_DECIMAL_LENGTH && scale == 0) {
        t = named("struct", "io.debezium.data.VariableScaleDecimal");
        t.doc = "Variable scaled decimal";
        t.variable_scale = true;
        return t;
    }
    t = named("bytes", "org.apache.kafka.connect.data.Decimal");
    t.decimal_scale = scale;
    t.decimal_precision = precision;
    return t;
}

static ctype_t money_type(const ds_value_format_t *f)
{
    ctype_t t;

    switch (f->decimal_handling) {
    case DS_DECIMAL_DOUBLE:
        return plain("double");
    case DS_DECIMAL_STRING:
        return plain("string");
    case DS_DECIMAL_PRECISE:
        break;
    }
    t = named("bytes", "org.apache.kafka.connect.data.Decimal");
    t.decimal_scale = f->money_fraction_digits;
    return t;
}

/* binary.handling.mode: only "bytes" keeps Connect bytes; the others are strings. */
static ctype_t binary_type(const ds_value_format_t *f)
{
    return plain(f->binary_handling == DS_BINARY_BYTES ? "bytes" : "string");
}

/* bit(n) and varbit(n): one bit is a boolean, more are io.debezium.data.Bits. */
static ctype_t bits_type(int32_t typmod)
{
    ctype_t t;

    if (typmod >= 0 && typmod <= 1)
        return plain("boolean");
    t = named("bytes", "io.debezium.data.Bits");
    t.bits_length = typmod < 0 ? 2147483647 : typmod;
    return t;
}

/*
 * The schema of a scalar (non-array) type; false when Debezium has none and leaves the
 * column out. Types Debezium knows by name only (extension types such as citext or ltree)
 * and any other type dualsync writes as a string are strings here.
 */
static bool scalar_type(uint32_t oid, int32_t typmod, const ds_connect_column_t *info,
                        const ds_value_format_t *f, ctype_t *t)
{
    if (info && info->enum_values && !info->enum_array) {
        *t = named("string", "io.debezium.data.Enum");
        t->allowed = info->enum_values;
        return true;
    }
    switch (oid) {
    case DS_OID_BOOL:
        *t = plain("boolean");
        return true;
    case DS_OID_INT2:
        *t = plain("int16");
        return true;
    case DS_OID_INT4:
        *t = plain("int32");
        return true;
    case DS_OID_INT8:
    case DS_OID_OID:
        *t = plain("int64");
        return true;
    case DS_OID_FLOAT4:
        *t = plain("float");
        return true;
    case DS_OID_FLOAT8:
        *t = plain("double");
        return true;
    case DS_OID_NUMERIC:
        *t = numeric_type(f, typmod);
        return true;
    case DS_OID_MONEY:
        *t = money_type(f);
        return true;
    case DS_OID_BYTEA:
        *t = binary_type(f);
        return true;
    case DS_OID_JSON:
    case DS_OID_JSONB:
        *t = named("string", "io.debezium.data.Json");
        return true;
    case DS_OID_UUID:
        *t = named("string", "io.debezium.data.Uuid");
        return true;
    case OID_XML:
        *t = named("string", "io.debezium.data.Xml");
        return true;
    case DS_OID_DATE:
        *t = date_type(f);
        return true;
    case DS_OID_TIME:
        *t = time_type(f, typmod);
        return true;
    case DS_OID_TIMESTAMP:
        *t = timestamp_type(f, typmod);
        return true;
    case DS_OID_TIMETZ:
        *t = named("string", "io.debezium.time.ZonedTime");
        return true;
    case DS_OID_TIMESTAMPTZ:
        *t = named("string", "io.debezium.time.ZonedTimestamp");
        return true;
    case DS_OID_INTERVAL:
        *t = f->interval_handling == DS_INTERVAL_STRING
                 ? named("string", "io.debezium.time.Interval")
                 : named("int64", "io.debezium.time.MicroDuration");
        return true;
    case OID_BIT:
    case OID_VARBIT:
        *t = bits_type(typmod);
        return true;
    default:
        /* text, varchar, bpchar, name, "char", inet, cidr, macaddr, ranges, and the types
         * dualsync writes as strings. */
        *t = plain("string");
        return true;
    }
}

/* Arrays Debezium has no schema for: their columns are left out. */
static bool array_omitted(uint32_t oid)
{
    switch (oid) {
    case OID_MONEY_ARRAY:
    case OID_NAME_ARRAY:
    case OID_INTERVAL_ARRAY:
    case OID_VARBIT_ARRAY:
    case OID_XML_ARRAY:
    case OID_POINT_ARRAY:
    case OID_REFCURSOR_ARRAY:
        return true;
    default:
        return false;
    }
}

/* The element type of the arrays Debezium describes as arrays, 0 for any other type. */
static uint32_t array_element(uint32_t oid)
{
    switch (oid) {
    case OID_INT2_ARRAY:
        return DS_OID_INT2;
    case OID_INT4_ARRAY:
        return DS_OID_INT4;
    case OID_INT8_ARRAY:
        return DS_OID_INT8;
    case OID_OID_ARRAY:
        return DS_OID_OID;
    case OID_CHAR_ARRAY:
    case OID_VARCHAR_ARRAY:
    case OID_TEXT_ARRAY:
    case OID_BPCHAR_ARRAY:
    case OID_INET_ARRAY:
    case OID_CIDR_ARRAY:
    case OID_MACADDR_ARRAY:
    case OID_MACADDR8_ARRAY:
    case OID_TSRANGE_ARRAY:
    case OID_TSTZRANGE_ARRAY:
    case OID_DATERANGE_ARRAY:
    case OID_INT4RANGE_ARRAY:
    case OID_NUMRANGE_ARRAY:
    case OID_INT8RANGE_ARRAY:
        return DS_OID_TEXT;
    case OID_NUMERIC_ARRAY:
        return DS_OID_NUMERIC;
    case OID_FLOAT4_ARRAY:
        return DS_OID_FLOAT4;
    case OID_FLOAT8_ARRAY:
        return DS_OID_FLOAT8;
    case OID_BOOL_ARRAY:
        return DS_OID_BOOL;
    case OID_DATE_ARRAY:
        return DS_OID_DATE;
    case OID_UUID_ARRAY:
        return DS_OID_UUID;
    case OID_JSON_ARRAY:
        return DS_OID_JSON;
    case OID_JSONB_ARRAY:
        return DS_OID_JSONB;
    case OID_TIME_ARRAY:
        return DS_OID_TIME;
    case OID_TIMETZ_ARRAY:
        return DS_OID_TIMETZ;
    case OID_TIMESTAMP_ARRAY:
        return DS_OID_TIMESTAMP;
    case OID_TIMESTAMPTZ_ARRAY:
        return DS_OID_TIMESTAMPTZ;
    case OID_BYTEA_ARRAY:
        return DS_OID_BYTEA;
    default:
        return 0;
    }
}

/* The column's type and typmod: the catalog's (a domain resolved to its base) when known. */
static void column_type(const ds_relation_t *rel, int i, const ds_connect_column_t *info,
                        uint32_t *oid, int32_t *typmod)
{
    *oid = rel->columns[i].type_oid;
    *typmod = rel->columns[i].typmod;
    if (info && info->base_oid) {
        *oid = info->base_oid;
        if (*typmod < 0)
            *typmod = info->base_typmod;
    }
}

/* The schema of column i; false when Debezium leaves the column out. @p elem receives the
 * element schema of an array. */
static bool column_ctype(const ds_relation_t *rel, int i, const ds_connect_column_t *info,
                         const ds_value_format_t *f, ctype_t *t, ctype_t *elem)
{
    uint32_t oid, elem_oid;
    int32_t typmod;

    column_type(rel, i, info, &oid, &typmod);
    if (info && info->enum_values && info->enum_array) {
        /* SchemaBuilder.array(Enum.builder(...)): the element is not made optional. */
        *elem = named("string", "io.debezium.data.Enum");
        elem->allowed = info->enum_values;
        *t = plain("array");
        t->items = elem;
        t->items_optional = false;
        return true;
    }
    if (array_omitted(oid))
        return false;
    if (oid == OID_BIT_ARRAY) /* grouped with bit and varbit in Debezium's switch */
        return *t = bits_type(typmod), true;
    elem_oid = array_element(oid);
    if (elem_oid == 0)
        return scalar_type(oid, typmod, info, f, t);
    /* The element inherits the array column's typmod, as Debezium's element column takes
     * the array column's length and scale. */
    if (!scalar_type(elem_oid, typmod, NULL, f, elem))
        return false;
    *t = plain("array");
    t->items = elem;
    t->items_optional = true;
    return true;
}

bool ds_connect_schema_has_field(const ds_relation_t *rel, int i, const ds_connect_column_t *info)
{
    ds_value_format_t f;
    ctype_t t, elem;

    ds_value_format_init(&f);
    return column_ctype(rel, i, info, &f, &t, &elem);
}

bool ds_connect_schema_append_null_text(ds_buf_t *out, const ds_relation_t *rel, int i,
                                        const ds_connect_column_t *info)
{
    ds_value_format_t defaults;
    ctype_t t, elem;
    uint32_t oid;
    int32_t typmod;
    int scale;

    if (!info || !info->not_null)
        return false;
    ds_value_format_init(&defaults);
    if (!column_ctype(rel, i, info, &defaults, &t, &elem))
        return false;
    column_type(rel, i, info, &oid, &typmod);
    if (t.items || (info->enum_values && info->enum_array)) {
        ds_buf_append_str(out, "{}");
        return true;
    }
    switch (oid) {
    case DS_OID_INT2:
    case DS_OID_INT4:
    case DS_OID_INT8:
    case DS_OID_OID:
    case DS_OID_FLOAT4:
    case DS_OID_FLOAT8:
        ds_buf_append_str(out, "0");
        break;
    case DS_OID_NUMERIC:
        /* Zero at the column's scale, as BigDecimal.ZERO.setScale(scale) is. */
        scale = typmod < 4 ? 0 : (typmod - 4) & 0xffff;
        ds_buf_append_char(out, '0');
        if (scale > 0)
            ds_buf_append_char(out, '.');
        for (int k = 0; k < scale; k++)
            ds_buf_append_char(out, '0');
        break;
    case DS_OID_MONEY:
        ds_buf_append_str(out, "$0.00");
        break;
    case DS_OID_BOOL:
        ds_buf_append_str(out, "f");
        break;
    case DS_OID_BYTEA:
        ds_buf_append_str(out, "\\x");
        break;
    case DS_OID_DATE:
        ds_buf_append_str(out, "1970-01-01");
        break;
    case DS_OID_TIME:
        ds_buf_append_str(out, "00:00:00");
        break;
    case DS_OID_TIMETZ:
        ds_buf_append_str(out, "00:00:00+00");
        break;
    case DS_OID_TIMESTAMP:
        ds_buf_append_str(out, "1970-01-01 00:00:00");
        break;
    case DS_OID_TIMESTAMPTZ:
        ds_buf_append_str(out, "1970-01-01 00:00:00+00");
        break;
    case DS_OID_INTERVAL:
        ds_buf_append_str(out, "PT0S"); /* IntervalStyle iso_8601, as capture sets it */
        break;
    case OID_BIT:
    case OID_VARBIT:
        ds_buf_append_str(out, "0");
        break;
    default:
        /* text and the other string types, uuid, json, enums: "" */
        break;
    }
    return true;
}

/* Debezium's FUNCTION_DEFAULT_PATTERN, ^[(]?[A-Za-z0-9_.]+\((?:.+(?:, ?.+)*)?\) (the optional
 * group amounts to "anything, or nothing"), and its CURRENT_DATE_TIMES. */
static bool generated_default(const char *expr)
{
    static const char *const current[] = {"current_timestamp", "current_time", "current_date",
                                          "localtime", "localtimestamp"};
    const char *p = expr;
    const char *name;

    for (size_t k = 0; k < sizeof(current) / sizeof(current[0]); k++)
        if (strcasecmp(expr, current[k]) == 0)
            return true;
    if (*p == '(')
        p++;
    name = p;
    while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
           *p == '_' || *p == '.')
        p++;
    return p > name && *p == '(' && strchr(p + 1, ')') != NULL;
}

/* The placeholder Debezium's mapper of each type uses for a generated default, or NULL when
 * it has no mapper for the type (then the field has no default). */
static const char *generated_placeholder(uint32_t oid)
{
    switch (oid) {
    case OID_BIT:
        return "00";
    case OID_VARBIT:
        return "0";
    case DS_OID_BOOL:
        return "false";
    case DS_OID_BPCHAR:
    case DS_OID_VARCHAR:
    case DS_OID_TEXT:
    case OID_XML:
        return "";
    case DS_OID_NUMERIC:
    case DS_OID_FLOAT4:
    case DS_OID_FLOAT8:
        return "0.0";
    case DS_OID_INT2:
    case DS_OID_INT4:
    case DS_OID_INT8:
        return "0";
    case DS_OID_JSON:
    case DS_OID_JSONB:
        return "{}";
    case DS_OID_UUID:
        return "00000000-0000-0000-0000-000000000000";
    /* In PostgreSQL's output form, as the values are: Debezium's "1970-01-01" and "00:00". */
    case DS_OID_DATE:
        return "1970-01-01";
    case DS_OID_TIMESTAMP:
        return "1970-01-01 00:00:00";
    case DS_OID_TIMESTAMPTZ:
        return "1970-01-01 00:00:00+00";
    case DS_OID_TIME:
        return "00:00:00";
    case DS_OID_INTERVAL:
        return "PT0S";
    default:
        return NULL;
    }
}

/* Whether text is what Java's parse of the type accepts: Integer.parseInt and the like for
 * integers, Double.parseDouble / new BigDecimal for the others. A default Debezium cannot
 * parse has no field default. */
static bool parses_as(uint32_t oid, const char *text)
{
    const char *p = text;
    bool digits = false, dot = false;

    switch (oid) {
    case DS_OID_INT2:
    case DS_OID_INT4:
    case DS_OID_INT8:
        if (*p == '-' || *p == '+')
            p++;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return false;
            digits = true;
        }
        return digits;
    case DS_OID_NUMERIC:
    case DS_OID_FLOAT4:
    case DS_OID_FLOAT8:
        if (*p == '-' || *p == '+')
            p++;
        for (; *p; p++) {
            if (*p == '.' && !dot)
                dot = true;
            else if (*p == 'e' || *p == 'E')
                return digits && (p[1] != '\0');
            else if (*p < '0' || *p > '9')
                return false;
            else
                digits = true;
        }
        return digits;
    default:
        return true;
    }
}

bool ds_connect_schema_append_default_text(ds_buf_t *out, const ds_relation_t *rel, int i,
                                           const ds_connect_column_t *info,
                                           const ds_value_format_t *format)
{
    const char *expr = info ? info->default_expr : NULL;
    uint32_t oid = rel->columns[i].type_oid;
    int32_t typmod = rel->columns[i].typmod;
    const char *start, *end, *placeholder;
    ds_buf_t text = DS_BUF_INIT;
    const char *value;
    bool ok = false;
    ctype_t t, elem;
    ds_value_format_t default_format;

    if (!expr)
        return false;
    if (!format) {
        ds_value_format_init(&default_format);
        format = &default_format;
    }
    /* Debezium looks its default parser up by the column's own type name: a domain has none,
     * an enum has its labels'. Arrays and the types it has no parser for have no default. */
    if (info->base_oid && info->base_oid != oid)
        return false;
    if (!column_ctype(rel, i, info, format, &t, &elem) || t.items)
        return false;
    /* A Struct cannot be a default (KAFKA-12694): VariableScaleDecimal has none. */
    if (t.variable_scale)
        return false;
    if (info->enum_values && !info->enum_array) {
        /* extractEnumDefault: the quoted literal before the last "::". */
        const char *cast = NULL;

        for (const char *p = strstr(expr, "::"); p; p = strstr(p + 2, "::"))
            cast = p;
        if (!cast || cast - expr < 2 || expr[0] != '\'' || cast[-1] != '\'')
            return false;
        ds_buf_append(out, expr + 1, (size_t)(cast - expr - 2));
        return true;
    }
    placeholder = generated_placeholder(oid);
    if (!placeholder)
        return false;
    if (generated_default(expr)) {
        ds_buf_append_str(&text, placeholder);
    } else if (!strchr(expr, '\'')) {
        if (strncmp(expr, "NULL::", 6) == 0)
            return false;
        ds_buf_append_str(&text, expr);
    } else {
        /* LITERAL_DEFAULT_PATTERN '(.*?)': up to the first quote after the opening one, so
         * 'it''s' gives "it", as Debezium reads it. */
        start = strchr(expr, '\'') + 1;
        end = strchr(start, '\'');
        if (!end)
            return false;
        ds_buf_append(&text, start, (size_t)(end - start));
    }
    value = text.data ? text.data : "";

    switch (oid) {
    case DS_OID_BOOL:
        /* Boolean.parseBoolean: "true" in any case is true, anything else false. */
        ds_buf_append_str(out, strcasecmp(value, "true") == 0 ? "t" : "f");
        ok = true;
        break;
    case DS_OID_NUMERIC:
        /* new BigDecimal(text), its scale raised to the column's. */
        if (!parses_as(oid, value) || strpbrk(value, "eE"))
            break;
        ds_buf_append_str(out, value);
        if (typmod >= 4) {
            int scale = (typmod - 4) & 0xffff;
            const char *dot = strchr(value, '.');
            int have = dot ? (int)strlen(dot + 1) : 0;

            if (have < scale && !dot)
                ds_buf_append_char(out, '.');
            for (int k = have; k < scale; k++)
                ds_buf_append_char(out, '0');
        }
        ok = true;
        break;
    default:
        if (!parses_as(oid, value))
            break;
        ds_buf_append_str(out, value);
        ok = true;
        break;
    }
    ds_buf_free(&text);
    return ok;
}

static void append_bool(ds_buf_t *out, bool value)
{
    if (value)
        APPEND_LITERAL(out, "true");
    else
        APPEND_LITERAL(out, "false");
}

/* One schema, as a struct field when @p field is not NULL. */
static void append_ctype(ds_buf_t *out, const ctype_t *t, bool optional, const char *dflt,
                         const char *field)
{
    APPEND_LITERAL(out, "{\"type\":\"");
    ds_buf_append_str(out, t->type);
    ds_buf_append_char(out, '"');
    if (t->variable_scale)
        APPEND_LITERAL(out, ",\"fields\":[{\"type\":\"int32\",\"optional\":false,\"field\":"
                            "\"scale\"},{\"type\":\"bytes\",\"optional\":false,\"field\":"
                            "\"value\"}]");
    if (t->items) {
        APPEND_LITERAL(out, ",\"items\":");
        append_ctype(out, t->items, t->items_optional, NULL, NULL);
    }
    APPEND_LITERAL(out, ",\"optional\":");
    append_bool(out, optional);
    if (t->name) {
        APPEND_LITERAL(out, ",\"name\":\"");
        ds_buf_append_str(out, t->name);
        ds_buf_append_char(out, '"');
    }
    if (t->version) {
        APPEND_LITERAL(out, ",\"version\":");
        ds_buf_append_int(out, t->version);
    }
    if (t->doc) {
        APPEND_LITERAL(out, ",\"doc\":");
        ds_buf_append_json_string(out, t->doc, strlen(t->doc));
    }
    if (t->decimal_scale >= 0 || t->allowed || t->bits_length) {
        APPEND_LITERAL(out, ",\"parameters\":{");
        if (t->decimal_scale >= 0) {
            APPEND_LITERAL(out, "\"scale\":\"");
            ds_buf_append_int(out, t->decimal_scale);
            ds_buf_append_char(out, '"');
            if (t->decimal_precision >= 0) {
                APPEND_LITERAL(out, ",\"connect.decimal.precision\":\"");
                ds_buf_append_int(out, t->decimal_precision);
                ds_buf_append_char(out, '"');
            }
        } else if (t->allowed) {
            APPEND_LITERAL(out, "\"allowed\":");
            ds_buf_append_json_string(out, t->allowed, strlen(t->allowed));
        } else {
            APPEND_LITERAL(out, "\"length\":\"");
            ds_buf_append_int(out, t->bits_length);
            ds_buf_append_char(out, '"');
        }
        ds_buf_append_char(out, '}');
    }
    if (dflt) {
        APPEND_LITERAL(out, ",\"default\":");
        ds_buf_append_str(out, dflt);
    }
    if (field) {
        APPEND_LITERAL(out, ",\"field\":");
        ds_buf_append_json_string(out, field, strlen(field));
    }
    ds_buf_append_char(out, '}');
}

/* The fields of the columns where mask[i] (all when mask is NULL), comma-separated. */
static void append_column_fields(ds_buf_t *out, const ds_relation_t *rel, const bool *mask,
                                 const ds_connect_column_t *const *info,
                                 const char *const *defaults, const ds_value_format_t *f)
{
    bool first = true;

    for (int i = 0; i < rel->ncolumns; i++) {
        const ds_connect_column_t *ci = info ? info[i] : NULL;
        ctype_t t, elem;

        if (mask && !mask[i])
            continue;
        if (!column_ctype(rel, i, ci, f, &t, &elem))
            continue;
        if (!first)
            ds_buf_append_char(out, ',');
        first = false;
        /* Debezium makes a field optional unless the catalog says NOT NULL; a column it
         * could not find there is optional. */
        append_ctype(out, &t, !(ci && ci->not_null), defaults ? defaults[i] : NULL,
                     rel->columns[i].name);
    }
}

/* The struct's name: the topic and a suffix, as a JSON string. */
static void append_name(ds_buf_t *out, const char *topic, const char *suffix)
{
    ds_buf_t name = DS_BUF_INIT;

    ds_buf_append_str(&name, topic);
    ds_buf_append_str(&name, suffix);
    ds_buf_append_json_string(out, name.data, name.len);
    ds_buf_free(&name);
}

void ds_connect_schema_append_key(ds_buf_t *out, const char *topic, const ds_relation_t *rel,
                                  const bool *key_mask, const ds_connect_column_t *const *info,
                                  const char *const *defaults, const ds_value_format_t *format)
{
    ds_value_format_t default_format;

    if (!format) {
        ds_value_format_init(&default_format);
        format = &default_format;
    }
    APPEND_LITERAL(out, "{\"type\":\"struct\",\"fields\":[");
    append_column_fields(out, rel, key_mask, info, defaults, format);
    APPEND_LITERAL(out, "],\"optional\":false,\"name\":");
    append_name(out, topic, ".Key");
    ds_buf_append_char(out, '}');
}

/* SchemaFactory.sourceInfoSchemaBuilder() and PostgresSourceInfoStructMaker. */
#define SOURCE_SCHEMA                                                                              \
    "{\"type\":\"struct\",\"fields\":["                                                            \
    "{\"type\":\"string\",\"optional\":false,\"field\":\"version\"},"                              \
    "{\"type\":\"string\",\"optional\":false,\"field\":\"connector\"},"                            \
    "{\"type\":\"string\",\"optional\":false,\"field\":\"name\"},"                                 \
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"ts_ms\"},"                                 \
    "{\"type\":\"string\",\"optional\":true,\"name\":\"io.debezium.data.Enum\",\"version\":1,"     \
    "\"parameters\":{\"allowed\":\"true,first,first_in_data_collection,last_in_data_collection,"   \
    "last,false,incremental\"},\"default\":\"false\",\"field\":\"snapshot\"},"                     \
    "{\"type\":\"string\",\"optional\":false,\"field\":\"db\"},"                                   \
    "{\"type\":\"string\",\"optional\":true,\"field\":\"sequence\"},"                              \
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_us\"},"                                  \
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ns\"},"                                  \
    "{\"type\":\"string\",\"optional\":false,\"field\":\"schema\"},"                               \
    "{\"type\":\"string\",\"optional\":false,\"field\":\"table\"},"                                \
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"txId\"},"                                   \
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"lsn\"},"                                    \
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"xmin\"},"                                   \
    "{\"type\":\"string\",\"optional\":true,\"field\":\"origin\"},"                                \
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"origin_lsn\"}],"                            \
    "\"optional\":false,\"name\":\"io.debezium.connector.postgresql.Source\",\"version\":1,"       \
    "\"field\":\"source\"}"

/* SchemaFactory.transactionBlockSchema(), then the fields Envelope.Builder.build() adds. */
#define ENVELOPE_TAIL                                                                              \
    "{\"type\":\"struct\",\"fields\":["                                                            \
    "{\"type\":\"string\",\"optional\":false,\"field\":\"id\"},"                                   \
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"total_order\"},"                           \
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"data_collection_order\"}],"                \
    "\"optional\":true,\"name\":\"event.block\",\"version\":1,\"field\":\"transaction\"},"         \
    "{\"type\":\"string\",\"optional\":false,\"field\":\"op\"},"                                   \
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ms\"},"                                  \
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_us\"},"                                  \
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ns\"}]"

void ds_connect_schema_append_envelope(ds_buf_t *out, const char *topic, const ds_relation_t *rel,
                                       const ds_connect_column_t *const *info,
                                       const char *const *defaults, const ds_value_format_t *format)
{
    ds_value_format_t default_format;
    size_t row_start, row_len;

    if (!format) {
        ds_value_format_init(&default_format);
        format = &default_format;
    }
    APPEND_LITERAL(out, "{\"type\":\"struct\",\"fields\":[");

    /* before: the row struct, written once and copied for after. */
    row_start = out->len;
    APPEND_LITERAL(out, "{\"type\":\"struct\",\"fields\":[");
    append_column_fields(out, rel, NULL, info, defaults, format);
    APPEND_LITERAL(out, "],\"optional\":true,\"name\":");
    append_name(out, topic, ".Value");
    APPEND_LITERAL(out, ",\"field\":\"");
    row_len = out->len - row_start;
    APPEND_LITERAL(out, "before\"},");
    /* Byte by byte from offsets: the buffer may move as it grows. Once per relation. */
    for (size_t k = 0; k < row_len; k++)
        ds_buf_append_char(out, out->data[row_start + k]);
    APPEND_LITERAL(out, "after\"},");

    APPEND_LITERAL(out, SOURCE_SCHEMA ",");
    APPEND_LITERAL(out, ENVELOPE_TAIL);
    APPEND_LITERAL(out, ",\"optional\":false,\"name\":");
    append_name(out, topic, ".Envelope");
    APPEND_LITERAL(out, ",\"version\":2}");
}
