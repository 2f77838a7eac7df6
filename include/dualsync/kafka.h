/*
 * kafka.h: librdkafka glue both sides use (capture's producer, apply's consumer and
 * dead-letter producer).
 */
#ifndef DUALSYNC_KAFKA_H
#define DUALSYNC_KAFKA_H

#include <librdkafka/rdkafka.h>

#include "dualsync/common.h"
#include "dualsync/config.h"

/**
 * @brief rd_kafka_conf_set() with an error naming the property and its value (shown as
 *        <hidden> when ds_config_kafka_name_is_secret() says so).
 */
bool ds_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                       size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief Sets every property of the config's "kafka" object (or of a ds_kafka_config_view())
 *        on @p conf; a property librdkafka refuses is named with the file and its JSON path.
 */
bool ds_kafka_conf_set_file(rd_kafka_conf_t *conf, const ds_config_t *config, char *errstr,
                            size_t errstr_size) DS_MUST_CHECK;

/** @brief A log callback routing librdkafka's syslog levels to dualsync's log. */
void ds_kafka_log(const rd_kafka_t *rk, int level, const char *facility, const char *buf);

/**
 * @brief Whether a broker answers a small metadata request (the topics this client knows)
 *        within @p timeout_ms, which it blocks: how an idle client, which receives nothing,
 *        learns that an outage ended.
 */
bool ds_kafka_broker_answers(rd_kafka_t *rk, int timeout_ms);

#endif
