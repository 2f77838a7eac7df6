/*
 * kafka_props.h: which of the config's "kafka" properties a producer or a consumer takes.
 *
 * One "kafka" object serves capture's producer and apply's consumer and dead-letter producer.
 * librdkafka warns about every property that does not apply to the client it configures
 * ("acks is a producer property and will be ignored by this consumer instance"). It also
 * knows which is which: rd_kafka_conf_properties_show() marks each property P (producer), C
 * (consumer) or * (both). Reading that table, rather than keeping a list here, stays right
 * for every librdkafka version.
 */
#ifndef DUALSYNC_KAFKA_PROPS_H
#define DUALSYNC_KAFKA_PROPS_H

#include "dualsync/common.h"
#include "dualsync/config.h"

typedef enum ds_kafka_role {
    DS_KAFKA_PRODUCER,
    DS_KAFKA_CONSUMER,
} ds_kafka_role_t;

/**
 * @brief Whether librdkafka property @p name applies to a client of @p role. Names librdkafka
 *        does not know are kept (true), so librdkafka itself reports the typo.
 */
bool ds_kafka_property_applies(const char *name, ds_kafka_role_t role);

/**
 * @brief A copy of @p config whose "kafka" properties are those that apply to @p role, plus
 *        "client.id" = @p client_id when the config does not set one (NULL: none added).
 *
 * Strings are borrowed from @p config, which must outlive the view. NULL when out of memory.
 * Free with ds_kafka_config_view_free(), never ds_config_free().
 */
ds_config_t *ds_kafka_config_view(const ds_config_t *config, ds_kafka_role_t role,
                                  const char *client_id);

/** @brief Accepts NULL. */
void ds_kafka_config_view_free(ds_config_t *view);

#endif
