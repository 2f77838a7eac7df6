/*
 * cli_config.c: what every subcommand does once its options are parsed: load the
 * configuration for the sides it uses and apply the log level.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dualsync/consumer.h"
#include "dualsync/kafka_props.h"
#include "dualsync/log.h"
#include "dualsync/metrics_http.h"
#include "dualsync/producer.h"

/*
 * The "kafka" properties as the clients of @p uses will take them: capture's producer, apply's
 * consumer and dead-letter producer. A property librdkafka does not know, a bad value, or a
 * setting dualsync must own is a configuration error like any other in the file (exit 2),
 * found before anything is connected or created.
 */
static bool check_kafka(const ds_config_t *config, unsigned uses, char *errstr,
                        size_t errstr_size)
{
    ds_config_t *view = ds_kafka_config_view(config, DS_KAFKA_PRODUCER, NULL);
    bool ok;

    if (!view)
        return ds_fail(errstr, errstr_size, "out of memory");
    ok = ds_producer_check_config(view, errstr, errstr_size);
    ds_kafka_config_view_free(view);
    if (ok && (uses & DS_CONFIG_FOR_APPLY))
        ok = ds_consumer_check_config(config, errstr, errstr_size);
    return ok;
}

const char *ds_cli_log_format;

bool ds_cli_load_config(const char *command, const char *config_path, unsigned uses,
                        const char *log_level, ds_config_t **config)
{
    char errstr[4096];

    *config = NULL;
    if (!ds_config_load_for(config_path, uses, config, errstr, sizeof(errstr))) {
        fprintf(stderr, "dualsync %s: %s\n", command, errstr);
        return false;
    }
    if (!check_kafka(*config, uses, errstr, sizeof(errstr))) {
        fprintf(stderr, "dualsync %s: %s\n", command, errstr);
        ds_config_free(*config);
        *config = NULL;
        return false;
    }
    /* The file's log_level is validated by the loader; only --log-level can be wrong. */
    if (!ds_log_set_level(log_level ? log_level : (*config)->log_level)) {
        fprintf(stderr, "dualsync %s: --log-level: unknown level \"%s\" (debug, info, warning, "
                        "error)\n",
                command, log_level);
        ds_config_free(*config);
        *config = NULL;
        return false;
    }
    if (!ds_log_set_format(ds_cli_log_format ? ds_cli_log_format : (*config)->log_format)) {
        fprintf(stderr, "dualsync %s: --log-format: unknown format \"%s\" (text, json)\n",
                command, ds_cli_log_format);
        ds_config_free(*config);
        *config = NULL;
        return false;
    }
    ds_log_set_process(command);
    return true;
}

bool ds_cli_metrics_address(const char *command, const char *address, char **setting)
{
    char *copy;

    if (!ds_metrics_address_valid(address)) {
        fprintf(stderr,
                "dualsync %s: --metrics-address: \"%s\" is not an address: expected \"off\" "
                "or HOST:PORT (\"127.0.0.1:9187\", \"[::1]:9187\"), PORT 1 to 65535\n",
                command, address);
        return false;
    }
    if (!(copy = strdup(address))) {
        fprintf(stderr, "dualsync %s: out of memory\n", command);
        return false;
    }
    free(*setting);
    *setting = copy;
    return true;
}
