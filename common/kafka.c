/*
 * kafka.c: librdkafka glue both sides use.
 */
#include <string.h>

#include "dualsync/config.h"
#include "dualsync/kafka.h"
#include "dualsync/log.h"

bool ds_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                       size_t errstr_size)
{
    char rderr[512];

    if (rd_kafka_conf_set(conf, name, value, rderr, sizeof(rderr)) != RD_KAFKA_CONF_OK)
        return ds_fail(errstr, errstr_size, "kafka property \"%s\" = \"%s\": %s", name,
                       ds_config_kafka_name_is_secret(name) ? "<hidden>" : value, rderr);
    return true;
}

bool ds_kafka_conf_set_file(rd_kafka_conf_t *conf, const ds_config_t *config, char *errstr,
                            size_t errstr_size)
{
    char rderr[512];

    for (int i = 0; i < config->nkafka; i++) {
        const char *name = config->kafka_names[i];

        if (rd_kafka_conf_set(conf, name, config->kafka_values[i], rderr, sizeof(rderr)) !=
            RD_KAFKA_CONF_OK)
            return ds_fail(errstr, errstr_size,
                           "%s: $.kafka[\"%s\"] = \"%s\": %s (see librdkafka's CONFIGURATION.md)",
                           config->path, name,
                           ds_config_kafka_name_is_secret(name) ? "<hidden>"
                                                                : config->kafka_values[i],
                           rderr);
    }
    return true;
}

void ds_kafka_log(const rd_kafka_t *rk, int level, const char *facility, const char *buf)
{
    /* A failed broker connection is also reported through the error callback, which says
     * what dualsync does about it; at error level here it would be said twice. */
    if (strcmp(facility, "FAIL") == 0 && level <= 4)
        level = 7;
    /* syslog levels: 0-3 errors, 4 warning, 5-6 info, 7 debug. */
    if (level <= 3)
        ds_error("librdkafka %s: %s", facility, buf);
    else if (level == 4)
        ds_warning("librdkafka %s: %s", facility, buf);
    else
        ds_debug("librdkafka %s: %s", facility, buf);
}

bool ds_kafka_broker_answers(rd_kafka_t *rk, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;

    if (rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return false;
    rd_kafka_metadata_destroy(md);
    return true;
}
