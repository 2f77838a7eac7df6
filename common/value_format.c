/*
 * value_format.c: the "debezium" object of the config, read by Debezium's property names.
 *
 * Only settings that shape messages are taken. A connection or filter property of
 * Debezium's (database.hostname, table.include.list, ...) has its own dualsync setting, and
 * is refused here by name so that a pasted connector config does not half-apply silently.
 */
#include <stdlib.h>
#include <string.h>

#include "dualsync/value_format.h"

static const char *const time_precision_names[] = {
    [DS_TIME_ISOSTRING] = "isostring",
    [DS_TIME_ADAPTIVE] = "adaptive",
    [DS_TIME_ADAPTIVE_TIME_MICROSECONDS] = "adaptive_time_microseconds",
    [DS_TIME_CONNECT] = "connect",
    [DS_TIME_MICROSECONDS] = "microseconds",
    [DS_TIME_NANOSECONDS] = "nanoseconds",
};

static const char *const decimal_handling_names[] = {
    [DS_DECIMAL_STRING] = "string",
    [DS_DECIMAL_PRECISE] = "precise",
    [DS_DECIMAL_DOUBLE] = "double",
};

static const char *const binary_handling_names[] = {
    [DS_BINARY_BYTES] = "bytes",
    [DS_BINARY_BASE64] = "base64",
    [DS_BINARY_BASE64_URL_SAFE] = "base64-url-safe",
    [DS_BINARY_HEX] = "hex",
};

static const char *const interval_handling_names[] = {
    [DS_INTERVAL_STRING] = "string",
    [DS_INTERVAL_NUMERIC] = "numeric",
};

/* The index of value in names[n], or -1. Debezium compares its enum values ignoring case. */
static int lookup(const char *const *names, size_t n, const char *value)
{
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(names[i], value) == 0)
            return (int)i;
    }
    return -1;
}

#define LOOKUP(names, value) lookup((names), sizeof(names) / sizeof((names)[0]), (value))

static bool is_boolean(const char *value)
{
    return strcasecmp(value, "true") == 0 || strcasecmp(value, "false") == 0;
}

/* A money.fraction.digits value: 0..(numeric's largest scale). */
static bool parse_fraction_digits(const char *value, int *digits)
{
    char *end;
    long n;

    if (!*value)
        return false;
    n = strtol(value, &end, 10);
    if (*end || n < 0 || n > 1000)
        return false;
    *digits = (int)n;
    return true;
}

static bool valid_topic_name(const char *value)
{
    size_t len = strlen(value);

    if (len == 0 || len > 200)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = value[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

void ds_value_format_init(ds_value_format_t *format)
{
    memset(format, 0, sizeof(*format));
    format->time_precision = DS_TIME_ADAPTIVE;
    format->decimal_handling = DS_DECIMAL_PRECISE;
    format->binary_handling = DS_BINARY_BYTES;
    format->interval_handling = DS_INTERVAL_NUMERIC;
    format->money_fraction_digits = 2;
    format->extended_headers = true;
}

const char *ds_value_format_check(const char *name, const char *value)
{
    int digits;

    if (strcmp(name, "time.precision.mode") == 0)
        return LOOKUP(time_precision_names, value) >= 0
                   ? NULL
                   : "expected \"adaptive\" (Debezium's default), \"adaptive_time_microseconds\", "
                     "\"connect\", \"isostring\", \"microseconds\" or \"nanoseconds\"";
    if (strcmp(name, "decimal.handling.mode") == 0)
        return LOOKUP(decimal_handling_names, value) >= 0
                   ? NULL
                   : "expected \"precise\" (Debezium's default), \"double\" or \"string\"";
    if (strcmp(name, "binary.handling.mode") == 0)
        return LOOKUP(binary_handling_names, value) >= 0
                   ? NULL
                   : "expected \"bytes\" (the default), \"base64\", \"base64-url-safe\" or "
                     "\"hex\"";
    if (strcmp(name, "interval.handling.mode") == 0)
        return LOOKUP(interval_handling_names, value) >= 0
                   ? NULL
                   : "expected \"numeric\" (Debezium's default) or \"string\"";
    if (strcmp(name, "tombstones.on.delete") == 0 ||
        strcmp(name, "provide.transaction.metadata") == 0 ||
        strcmp(name, "extended.headers.enabled") == 0)
        return is_boolean(value) ? NULL : "expected \"true\" or \"false\"";
    if (strcmp(name, "money.fraction.digits") == 0)
        return parse_fraction_digits(value, &digits) ? NULL
                                                     : "expected a whole number from 0 to 1000";
    if (strcmp(name, "topic.transaction") == 0)
        return valid_topic_name(value)
                   ? NULL
                   : "expected a topic name suffix (letters, digits, '.', '_', '-')";
    return "not a Debezium setting dualsync takes: the settings that shape messages are "
           "time.precision.mode, decimal.handling.mode, binary.handling.mode, "
           "interval.handling.mode, money.fraction.digits, tombstones.on.delete, "
           "provide.transaction.metadata, topic.transaction and extended.headers.enabled "
           "(connections, tables and "
           "topics have their own dualsync settings: see docs/configuration.md)";
}

bool ds_value_format_set(ds_value_format_t *format, bool *tombstones_on_delete, const char *name,
                         const char *value)
{
    if (strcmp(name, "time.precision.mode") == 0)
        format->time_precision = (ds_time_precision_t)LOOKUP(time_precision_names, value);
    else if (strcmp(name, "decimal.handling.mode") == 0)
        format->decimal_handling = (ds_decimal_handling_t)LOOKUP(decimal_handling_names, value);
    else if (strcmp(name, "binary.handling.mode") == 0)
        format->binary_handling = (ds_binary_handling_t)LOOKUP(binary_handling_names, value);
    else if (strcmp(name, "interval.handling.mode") == 0)
        format->interval_handling =
            (ds_interval_handling_t)LOOKUP(interval_handling_names, value);
    else if (strcmp(name, "tombstones.on.delete") == 0)
        *tombstones_on_delete = strcasecmp(value, "true") == 0;
    else if (strcmp(name, "provide.transaction.metadata") == 0)
        format->provide_transaction_metadata = strcasecmp(value, "true") == 0;
    else if (strcmp(name, "extended.headers.enabled") == 0)
        format->extended_headers = strcasecmp(value, "true") == 0;
    else if (strcmp(name, "money.fraction.digits") == 0)
        (void)parse_fraction_digits(value, &format->money_fraction_digits);
    else if (strcmp(name, "topic.transaction") == 0) {
        char *copy = strdup(value);

        if (!copy)
            return false;
        free(format->transaction_topic);
        format->transaction_topic = copy;
    }
    return true;
}

const char *ds_time_precision_name(ds_time_precision_t mode)
{
    return time_precision_names[mode];
}

const char *ds_decimal_handling_name(ds_decimal_handling_t mode)
{
    return decimal_handling_names[mode];
}

const char *ds_binary_handling_name(ds_binary_handling_t mode)
{
    return binary_handling_names[mode];
}

const char *ds_interval_handling_name(ds_interval_handling_t mode)
{
    return interval_handling_names[mode];
}
