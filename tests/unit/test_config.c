/*
 * test_config.c: loading the configuration file: every setting, every default, and the exact
 * message (with line:column) for each kind of mistake. Fixtures are in tests/unit/config/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dualsync/config.h"
#include "ds_test.h"

/* The fixture's path: $DS_SOURCE_DIR/tests/unit/config/<name>. */
static const char *fixture(const char *name)
{
    static char path[4096];
    const char *root = getenv("DS_SOURCE_DIR");

    snprintf(path, sizeof(path), "%s/tests/unit/config/%s", root ? root : ".", name);
    return path;
}

/* Loads a fixture that must fail and checks the whole message: "<path>:" + rest. */
static void expect_error(const char *name, const char *rest)
{
    char errstr[1024] = "", want[4096 + 1024];
    ds_config_t *config = (ds_config_t *)1;
    const char *path = fixture(name);

    snprintf(want, sizeof(want), "%s:%s", path, rest);
    DS_CHECK(!ds_config_load(path, &config, errstr, sizeof(errstr)));
    DS_CHECK(config == NULL);
    DS_CHECK_STR(errstr, want);
}

/* Loads a fixture that must succeed; NULL (and a printed reason) when it does not. */
static ds_config_t *load_ok(const char *name)
{
    char errstr[1024] = "";
    ds_config_t *config = NULL;

    if (!ds_config_load(fixture(name), &config, errstr, sizeof(errstr))) {
        fprintf(stderr, "unexpected error: %s\n", errstr);
        return NULL;
    }
    return config;
}

static void test_full_file_sets_every_setting(void)
{
    ds_config_t *c = load_ok("full.json");

    DS_CHECK(c != NULL);
    if (!c)
        return;
    DS_CHECK_STR(c->path, fixture("full.json"));
    DS_CHECK_STR(c->source_conninfo, "host=db1 dbname=clinic user=dualsync");
    DS_CHECK_STR(c->publication, "clinic_pub");
    DS_CHECK_STR(c->slot, "clinic_slot_2");
    DS_CHECK_INT(c->ntables, 3);
    if (c->ntables == 3) {
        DS_CHECK_STR(c->tables[0], "public.users");
        DS_CHECK_STR(c->tables[1], "billing.invoices");
        /* Stored as written, quotes included. */
        DS_CHECK_STR(c->tables[2], "\"My Schema\".\"Users\"");
    }
    DS_CHECK(!c->create_publication);
    DS_CHECK_INT(c->nkafka, 5);
    DS_CHECK_STR(ds_config_kafka_get(c, "bootstrap.servers"), "k1:9092,k2:9092");
    DS_CHECK_STR(ds_config_kafka_get(c, "acks"), "all");
    DS_CHECK_STR(ds_config_kafka_get(c, "linger.ms"), "5");
    DS_CHECK_STR(ds_config_kafka_get(c, "enable.idempotence"), "true");
    DS_CHECK_STR(ds_config_kafka_get(c, "compression.type"), "zstd");
    DS_CHECK_STR(c->topic_prefix, "clinic.prod-1");
    DS_CHECK_INT(c->topics_partitions, 3);
    DS_CHECK_INT(c->topics_replication_factor, 2);
    DS_CHECK_STR(c->topics_cleanup_policy, "compact,delete");
    DS_CHECK_INT(c->ntopics_config, 2);
    if (c->ntopics_config == 2) {
        DS_CHECK_STR(c->topics_config_names[0], "min.compaction.lag.ms");
        DS_CHECK_STR(c->topics_config_values[0], "60000");
        DS_CHECK_STR(c->topics_config_names[1], "retention.ms");
        DS_CHECK_STR(c->topics_config_values[1], "-1"); /* an integer, as text */
    }
    DS_CHECK(!c->tombstones_on_delete);
    DS_CHECK_STR(c->unavailable_value_placeholder, "__unavailable");
    DS_CHECK_INT(c->nskip_origins, 2);
    if (c->nskip_origins == 2) {
        DS_CHECK_STR(c->skip_origins[0], "dualsync");
        DS_CHECK_STR(c->skip_origins[1], "pglogical");
        DS_CHECK(c->skip_origins[2] == NULL);
    }
    DS_CHECK_INT(c->status_interval_ms, 5000);
    DS_CHECK_INT(c->max_inflight_bytes, INT64_C(8589934592)); /* above INT32_MAX */
    DS_CHECK_INT(c->max_inflight_messages, 500000);
    DS_CHECK_INT(c->shutdown_timeout_ms, 0);
    DS_CHECK_STR(c->log_level, "debug");
    ds_config_free(c);
}

static void test_minimal_file_gets_every_default(void)
{
    ds_config_t *c = load_ok("minimal.json");

    DS_CHECK(c != NULL);
    if (!c)
        return;
    DS_CHECK_STR(c->source_conninfo, "dbname=clinic");
    DS_CHECK_STR(c->publication, "dualsync");
    DS_CHECK_STR(c->slot, "dualsync");
    DS_CHECK_INT(c->ntables, 1);
    DS_CHECK_STR(c->tables[0], "public.users");
    DS_CHECK(c->create_publication);
    DS_CHECK_INT(c->nkafka, 1);
    DS_CHECK_STR(ds_config_kafka_get(c, "bootstrap.servers"), "127.0.0.1:9092");
    DS_CHECK_STR(c->topic_prefix, "clinic");
    DS_CHECK_INT(c->topics_partitions, 1);
    DS_CHECK_INT(c->topics_replication_factor, -1);
    DS_CHECK_STR(c->topics_cleanup_policy, "compact");
    DS_CHECK_INT(c->ntopics_config, 0);
    DS_CHECK(c->tombstones_on_delete);
    DS_CHECK_STR(c->unavailable_value_placeholder, "__debezium_unavailable_value");
    DS_CHECK_INT(c->nskip_origins, 1);
    DS_CHECK_STR(c->skip_origins[0], "dualsync");
    DS_CHECK(c->skip_origins[1] == NULL);
    DS_CHECK_INT(c->status_interval_ms, 1000);
    DS_CHECK_INT(c->max_inflight_bytes, 32 * 1024 * 1024);
    DS_CHECK_INT(c->max_inflight_messages, 100000);
    DS_CHECK_INT(c->shutdown_timeout_ms, 30000);
    DS_CHECK_STR(c->log_level, "info");
    DS_CHECK_STR(c->log_format, "text");
    DS_CHECK_STR(c->message_format, "json");
    DS_CHECK_INT(c->value_format.message_format, DS_MESSAGE_JSON);
    /* No "debezium" object: dualsync's classic values; the settings are Debezium's
     * defaults, for when the object is given. */
    DS_CHECK(!c->value_format.debezium);
    DS_CHECK_INT(c->value_format.time_precision, DS_TIME_ADAPTIVE);
    DS_CHECK_INT(c->value_format.decimal_handling, DS_DECIMAL_PRECISE);
    DS_CHECK_INT(c->value_format.binary_handling, DS_BINARY_BYTES);
    DS_CHECK_INT(c->value_format.interval_handling, DS_INTERVAL_NUMERIC);
    DS_CHECK_INT(c->value_format.money_fraction_digits, 2);
    DS_CHECK(!c->value_format.provide_transaction_metadata);
    DS_CHECK(c->value_format.extended_headers);
    DS_CHECK_STR(c->value_format.transaction_topic, "transaction");
    ds_config_free(c);
}

static void test_kafka_values_become_text_in_file_order(void)
{
    ds_config_t *c = load_ok("kafka_values.json");
    static const char *const names[] = {"linger.ms", "bootstrap.servers", "enable.idempotence",
                                        "socket.nagle.disable", "acks"};
    static const char *const values[] = {"5", "127.0.0.1:9092", "true", "false", "all"};

    DS_CHECK(c != NULL);
    if (!c)
        return;
    DS_CHECK_INT(c->nkafka, 5);
    for (int i = 0; i < c->nkafka && i < 5; i++) {
        DS_CHECK_STR(c->kafka_names[i], names[i]);
        DS_CHECK_STR(c->kafka_values[i], values[i]);
    }
    ds_config_free(c);
}

static void test_kafka_get_returns_null_when_unset(void)
{
    ds_config_t *c = load_ok("minimal.json");

    DS_CHECK(c != NULL);
    DS_CHECK(ds_config_kafka_get(c, "acks") == NULL);
    DS_CHECK(ds_config_kafka_get(NULL, "acks") == NULL);
    ds_config_free(c);
}

static void test_free_accepts_null(void)
{
    ds_config_free(NULL);
    DS_CHECK(1);
}

static void test_syntax_error_names_line_and_column(void)
{
    expect_error("syntax_error.json", "6:9: invalid JSON: '}' expected near '\"kafka\"'");
}

static void test_missing_file_says_why(void)
{
    expect_error("no_such_file.json", " cannot read: No such file or directory");
}

static void test_missing_required_setting_points_at_its_object(void)
{
    expect_error("missing_required.json", "2:13: $.source.conninfo: required setting is missing");
}

static void test_missing_section_points_at_top_level(void)
{
    expect_error("missing_section.json", "1:1: $.source.conninfo: required setting is missing");
}

static void test_wrong_type_shows_value_found(void)
{
    expect_error("wrong_type.json", "7:27: $.capture.status_interval_ms: expected an integer "
                                    "between 100 and 600000, got \"fast\"");
}

static void test_out_of_bounds_number_shows_bounds(void)
{
    expect_error("out_of_bounds.json", "5:38: $.capture.max_inflight_bytes: expected an integer "
                                       "between 1048576 and 17179869184, got 1000");
}

static void test_topic_settings_are_checked(void)
{
    expect_error("topics_bad_partitions.json",
                 "5:29: $.topics.partitions: expected an integer between 1 and 100000, got 0");
    expect_error("topics_bad_cleanup_policy.json",
                 "5:33: $.topics.cleanup_policy: expected \"compact\", \"delete\" or "
                 "\"compact,delete\", got \"forever\"");
    /* One place sets it, so the retention check and the docs can rely on it. */
    expect_error("topics_config_cleanup_policy.json",
                 "5:52: $.topics.config[\"cleanup.policy\"]: cleanup.policy is set by "
                 "topics.cleanup_policy, not in topics.config: move it there");
}

static void test_unknown_key_suggests_closest_name(void)
{
    expect_error("unknown_key.json", "6:5: $.capture.status_intervl_ms: unknown setting, did you "
                                     "mean \"capture.status_interval_ms\"?");
}

static void test_unknown_key_without_close_name(void)
{
    expect_error("unknown_key_unrelated.json", "5:3: $.replicas: unknown setting");
}

static void test_key_in_wrong_object_suggests_its_place(void)
{
    expect_error("misplaced_key.json", "5:3: $.status_interval_ms: unknown setting, did you mean "
                                       "\"capture.status_interval_ms\"?");
}

static void test_unqualified_table_is_rejected(void)
{
    expect_error("unqualified_table.json",
                 "4:35: $.source.tables[1]: expected a schema-qualified table name "
                 "(\"schema.table\"), got \"users\"");
}

static void test_duplicate_table_spelled_differently_is_rejected(void)
{
    expect_error("duplicate_table.json",
                 "7:7: $.source.tables[2]: duplicate entry \"\\\"public\\\".\\\"users\\\"\", "
                 "already listed at $.source.tables[0]");
}

static void test_duplicate_key_is_a_syntax_error(void)
{
    expect_error("duplicate_key.json",
                 "5:16: invalid JSON: duplicate object key near '\"topic_prefix\"'");
}

static void test_kafka_object_value_is_rejected(void)
{
    expect_error("kafka_object_value.json",
                 "5:13: $.kafka.acks: expected a string, integer or boolean, got an object");
}

static void test_kafka_without_bootstrap_servers_is_rejected(void)
{
    expect_error("kafka_no_bootstrap.json",
                 "3:12: $.kafka[\"bootstrap.servers\"]: required setting is missing");
}

static void test_bad_topic_prefix_character_is_rejected(void)
{
    expect_error("bad_topic_prefix.json",
                 "4:19: $.topic_prefix: expected a Kafka topic prefix (1 to 200 characters from "
                 "a-z A-Z 0-9 . _ -), got \"clinic/prod\"");
}

static void test_bad_slot_name_is_rejected(void)
{
    expect_error("bad_slot.json",
                 "4:13: $.source.slot: expected a replication slot name (1 to 63 "
                 "lowercase letters, digits and underscores), got \"Clinic-Slot\"");
}

static void test_kafka_password_value_is_not_echoed(void)
{
    char errstr[1024] = "";
    ds_config_t *config = NULL;

    expect_error("kafka_password_hidden.json", "5:22: $.kafka[\"sasl.password\"]: expected a "
                                               "string, integer or boolean, got <hidden>");
    DS_CHECK(
        !ds_config_load(fixture("kafka_password_hidden.json"), &config, errstr, sizeof(errstr)));
    DS_CHECK(strstr(errstr, "271828") == NULL);
}

static void test_kafka_password_in_syntax_error_is_not_echoed(void)
{
    char errstr[1024] = "";
    ds_config_t *config = NULL;

    expect_error("kafka_password_syntax.json", "5:31: invalid JSON: invalid escape near <hidden>");
    DS_CHECK(
        !ds_config_load(fixture("kafka_password_syntax.json"), &config, errstr, sizeof(errstr)));
    DS_CHECK(strstr(errstr, "hunter") == NULL);
}

static void test_conninfo_in_syntax_error_is_not_echoed(void)
{
    char errstr[1024] = "";
    ds_config_t *config = NULL;

    expect_error("conninfo_syntax.json", "3:39: invalid JSON: invalid escape near <hidden>");
    DS_CHECK(!ds_config_load(fixture("conninfo_syntax.json"), &config, errstr, sizeof(errstr)));
    DS_CHECK(strstr(errstr, "password=") == NULL);
}

static void test_column_counts_characters_not_bytes(void)
{
    /* "état" is 4 characters in 5 bytes before the offending value. */
    expect_error("utf8_column.json", "4:79: $.capture.status_interval_ms: expected an integer "
                                     "between 100 and 600000, got 1");
}

/* ---- the apply side: "targets", "mappings", "apply" ---- */

/* Like expect_error, for a load that asks for @uses. */
static void expect_error_for(const char *name, unsigned uses, const char *rest)
{
    char errstr[1024] = "", want[4096 + 1024];
    ds_config_t *config = (ds_config_t *)1;
    const char *path = fixture(name);

    snprintf(want, sizeof(want), "%s:%s", path, rest);
    DS_CHECK(!ds_config_load_for(path, uses, &config, errstr, sizeof(errstr)));
    DS_CHECK(config == NULL);
    DS_CHECK_STR(errstr, want);
}

static ds_config_t *load_ok_for(const char *name, unsigned uses)
{
    char errstr[1024] = "";
    ds_config_t *config = NULL;

    if (!ds_config_load_for(fixture(name), uses, &config, errstr, sizeof(errstr))) {
        fprintf(stderr, "unexpected error: %s\n", errstr);
        return NULL;
    }
    return config;
}

static void test_apply_file_sets_every_apply_setting(void)
{
    ds_config_t *c = load_ok_for("apply_full.json", DS_CONFIG_FOR_APPLY);
    char want[4200];

    DS_CHECK(c != NULL);
    if (!c)
        return;
    DS_CHECK(c->source_conninfo == NULL);
    DS_CHECK_INT(c->ntables, 0);
    DS_CHECK_INT(c->ntargets, 2);
    if (c->ntargets == 2) {
        /* File order, which is also the order databases are committed in. */
        DS_CHECK_STR(c->target_names[0], "clinic_new");
        DS_CHECK_STR(c->target_conninfos[0], "host=db2 dbname=clinic_new");
        DS_CHECK_STR(c->target_names[1], "billing");
        DS_CHECK_STR(c->target_conninfos[1], "host=db3 dbname=billing");
    }
    DS_CHECK_STR(ds_config_target_conninfo(c, "billing"), "host=db3 dbname=billing");
    DS_CHECK(ds_config_target_conninfo(c, "nope") == NULL);
    DS_CHECK_INT(c->nmappings, 2);
    if (c->nmappings == 2) {
        /* Relative to the configuration file's directory; absolute paths stay. */
        snprintf(want, sizeof(want), "%s", fixture("mappings/users.json"));
        DS_CHECK_STR(c->mappings[0], want);
        DS_CHECK_STR(c->mappings[1], "/etc/dualsync/invoices.json");
        DS_CHECK(c->mappings[2] == NULL);
    }
    DS_CHECK_STR(c->apply_group_id, "clinic-apply-2");
    DS_CHECK_INT(c->apply_batch_max_messages, 250);
    DS_CHECK_INT(c->apply_batch_max_ms, 40);
    DS_CHECK_STR(c->apply_on_error, "stop");
    DS_CHECK_STR(c->apply_origin, "dualsync_apply");
    DS_CHECK_STR(c->apply_dlq_topic, "clinic.dead-letters");
    DS_CHECK_STR(c->apply_pending_timeout, "12h");
    DS_CHECK_INT(c->apply_pending_timeout_ms, INT64_C(12) * 3600 * 1000);
    ds_config_free(c);
}

static void test_apply_file_gets_every_apply_default(void)
{
    ds_config_t *c = load_ok_for("apply_minimal.json", DS_CONFIG_FOR_APPLY);

    DS_CHECK(c != NULL);
    if (!c)
        return;
    DS_CHECK_INT(c->ntargets, 1);
    DS_CHECK_STR(c->apply_group_id, "dualsync-apply");
    DS_CHECK_INT(c->apply_batch_max_messages, 1000);
    DS_CHECK_INT(c->apply_batch_max_ms, 100);
    DS_CHECK_STR(c->apply_on_error, "dlq");
    DS_CHECK_STR(c->apply_origin, "dualsync");
    /* Derived from topic_prefix. */
    DS_CHECK_STR(c->apply_dlq_topic, "clinic.dlq");
    /* A waiting change waits for ever unless asked otherwise. */
    DS_CHECK_STR(c->apply_pending_timeout, "off");
    DS_CHECK_INT(c->apply_pending_timeout_ms, 0);
    ds_config_free(c);
}

static void test_duration_without_unit_is_rejected(void)
{
    /* "30" could be seconds or milliseconds: the unit is required. */
    expect_error_for("apply_bad_duration.json", DS_CONFIG_FOR_APPLY,
                     "6:33: $.apply.pending_timeout: expected \"off\" or a duration of at least "
                     "one second: a whole number followed by s, min, h or d (\"90s\", "
                     "\"30min\", \"12h\", \"7d\"), got \"30\"");
}

static void test_capture_file_has_no_targets(void)
{
    ds_config_t *c = load_ok("minimal.json");

    DS_CHECK(c != NULL);
    if (!c)
        return;
    DS_CHECK_INT(c->ntargets, 0);
    DS_CHECK(c->target_names == NULL);
    DS_CHECK_INT(c->nmappings, 0);
    DS_CHECK_STR(c->apply_dlq_topic, "clinic.dlq");
    ds_config_free(c);
}

static void test_apply_file_is_refused_for_capture(void)
{
    /* ds_config_load() is capture's: the source is required. */
    expect_error("apply_minimal.json", "1:1: $.source.conninfo: required setting is missing");
    expect_error_for("apply_minimal.json", DS_CONFIG_FOR_CAPTURE,
                     "1:1: $.source.conninfo: required setting is missing");
}

static void test_capture_file_is_refused_for_apply(void)
{
    expect_error_for("minimal.json", DS_CONFIG_FOR_APPLY,
                     "1:1: $.targets: required setting is missing");
}

static void test_file_with_both_sides_serves_both(void)
{
    ds_config_t *c = load_ok_for("both_sides.json", DS_CONFIG_FOR_CAPTURE | DS_CONFIG_FOR_APPLY);

    DS_CHECK(c != NULL);
    if (c) {
        DS_CHECK_STR(c->source_conninfo, "dbname=clinic");
        DS_CHECK_INT(c->ntargets, 1);
    }
    ds_config_free(c);
}

static void test_either_side_is_enough_when_any_use_will_do(void)
{
    ds_config_t *capture = load_ok_for("minimal.json", 0);
    ds_config_t *apply = load_ok_for("apply_minimal.json", 0);

    DS_CHECK(capture != NULL);
    DS_CHECK(apply != NULL);
    ds_config_free(capture);
    ds_config_free(apply);
    /* Neither side: reported as before apply existed. */
    expect_error_for("missing_section.json", 0,
                     "1:1: $.source.conninfo: required setting is missing");
}

static void test_begun_apply_side_must_be_complete(void)
{
    /* "mappings" without "targets" is a mistake whichever command reads the file. */
    expect_error_for("apply_missing_targets.json", 0,
                     "1:1: $.targets: required setting is missing");
    expect_error_for("apply_missing_targets.json", DS_CONFIG_FOR_APPLY,
                     "1:1: $.targets: required setting is missing");
}

static void test_targets_must_be_a_non_empty_object(void)
{
    expect_error("unknown_key_far.json",
                 "5:14: $.targets: expected an object naming at least one target database "
                 "({\"NAME\": {\"conninfo\": \"...\"}}), got []");
}

static void test_target_unknown_key_is_rejected(void)
{
    expect_error_for("target_unknown_key.json", DS_CONFIG_FOR_APPLY,
                     "5:54: $.targets.clinic_new.schema: unknown setting (a target has only "
                     "\"conninfo\")");
}

static void test_target_without_conninfo_points_at_it(void)
{
    expect_error_for("target_missing_conninfo.json", DS_CONFIG_FOR_APPLY,
                     "5:19: $.targets.clinic_new.conninfo: required setting is missing");
}

static void test_target_conninfo_is_never_shown(void)
{
    char errstr[1024] = "";
    ds_config_t *config = NULL;

    expect_error_for("target_conninfo_hidden.json", DS_CONFIG_FOR_APPLY,
                     "5:33: $.targets.clinic_new.conninfo: expected a string (a libpq connection "
                     "string), got <hidden>");
    DS_CHECK(!ds_config_load_for(fixture("target_conninfo_hidden.json"), DS_CONFIG_FOR_APPLY,
                                 &config, errstr, sizeof(errstr)));
    DS_CHECK(strstr(errstr, "swordfish") == NULL);
}

static void test_target_name_must_be_simple(void)
{
    expect_error_for("target_bad_name.json", DS_CONFIG_FOR_APPLY,
                     "5:5: $.targets[\"clinic new\"]: expected a target name (1 to 63 characters "
                     "from a-z A-Z 0-9 . _ -)");
}

static void test_on_error_takes_dlq_or_stop(void)
{
    expect_error_for("bad_on_error.json", DS_CONFIG_FOR_APPLY,
                     "6:26: $.apply.on_error: expected \"dlq\" or \"stop\", got \"ignore\"");
}

static void test_mappings_must_not_be_empty(void)
{
    expect_error_for("empty_mappings.json", DS_CONFIG_FOR_APPLY,
                     "5:15: $.mappings: expected a non-empty array of mapping file paths, got []");
}

/*
 * docs/configuration.md's complete example (the first ```json block after "## Complete
 * example") must load: every key in it is a real setting with a valid value.
 */
static void test_debezium_settings_by_debezium_names(void)
{
    ds_config_t *c = load_ok_for("debezium_settings.json", DS_CONFIG_FOR_CAPTURE);

    DS_CHECK(c != NULL);
    if (!c)
        return;
    DS_CHECK_INT(c->value_format.message_format, DS_MESSAGE_JSON_WITH_SCHEMA);
    DS_CHECK(c->value_format.debezium);
    /* Debezium compares its enum values ignoring case. */
    DS_CHECK_INT(c->value_format.time_precision, DS_TIME_ADAPTIVE_TIME_MICROSECONDS);
    DS_CHECK_INT(c->value_format.decimal_handling, DS_DECIMAL_PRECISE);
    DS_CHECK_INT(c->value_format.binary_handling, DS_BINARY_BASE64_URL_SAFE);
    DS_CHECK_INT(c->value_format.interval_handling, DS_INTERVAL_NUMERIC);
    DS_CHECK_INT(c->value_format.money_fraction_digits, 4);
    DS_CHECK(c->value_format.provide_transaction_metadata);
    DS_CHECK_STR(c->value_format.transaction_topic, "tx");
    DS_CHECK(!c->value_format.extended_headers);
    /* Debezium's tombstones.on.delete is capture.tombstones_on_delete. */
    DS_CHECK(!c->tombstones_on_delete);
    ds_config_free(c);
}

static void test_debezium_value_is_checked(void)
{
    expect_error_for("debezium_bad_mode.json", DS_CONFIG_FOR_CAPTURE,
                     "5:42: $.debezium[\"decimal.handling.mode\"]: expected \"precise\" "
                     "(Debezium's default), \"double\" or \"string\", got \"exact\"");
}

static void test_debezium_setting_dualsync_does_not_take_is_refused(void)
{
    ds_config_t *config = NULL;
    char errstr[1024] = "";

    DS_CHECK(!ds_config_load_for(fixture("debezium_unknown_setting.json"),
                                 DS_CONFIG_FOR_CAPTURE, &config, errstr, sizeof(errstr)));
    DS_CHECK(strstr(errstr, "$.debezium[\"table.include.list\"]: not a Debezium setting "
                            "dualsync takes") != NULL);
}

static void test_documented_example_loads(void)
{
    char docs[4096], tmp[] = "/tmp/ds_config_example_XXXXXX", line[1024], errstr[1024] = "";
    const char *root = getenv("DS_SOURCE_DIR");
    ds_config_t *config = NULL;
    FILE *in, *out;
    int fd, state = 0; /* 0 before the heading, 1 before the block, 2 in it, 3 after */

    snprintf(docs, sizeof(docs), "%s/docs/configuration.md", root ? root : ".");
    in = fopen(docs, "r");
    DS_CHECK(in != NULL);
    if (!in)
        return;
    fd = mkstemp(tmp);
    DS_CHECK(fd >= 0);
    if (fd < 0 || !(out = fdopen(fd, "w"))) {
        fclose(in);
        return;
    }
    while (state < 3 && fgets(line, sizeof(line), in)) {
        if (state == 0 && strncmp(line, "## Complete example", 19) == 0)
            state = 1;
        else if (state == 1 && strncmp(line, "```json", 7) == 0)
            state = 2;
        else if (state == 2 && strncmp(line, "```", 3) == 0)
            state = 3;
        else if (state == 2)
            fputs(line, out);
    }
    fclose(in);
    fclose(out);
    DS_CHECK_INT(state, 3);
    /* The example shows both sides, so it serves both commands. */
    if (!ds_config_load_for(tmp, DS_CONFIG_FOR_CAPTURE | DS_CONFIG_FOR_APPLY, &config, errstr,
                            sizeof(errstr)))
        fprintf(stderr, "docs example: %s\n", errstr);
    DS_CHECK(config != NULL);
    ds_config_free(config);
    unlink(tmp);
}

int main(void)
{
    DS_RUN(test_full_file_sets_every_setting);
    DS_RUN(test_minimal_file_gets_every_default);
    DS_RUN(test_topic_settings_are_checked);
    DS_RUN(test_kafka_values_become_text_in_file_order);
    DS_RUN(test_kafka_get_returns_null_when_unset);
    DS_RUN(test_free_accepts_null);
    DS_RUN(test_syntax_error_names_line_and_column);
    DS_RUN(test_missing_file_says_why);
    DS_RUN(test_missing_required_setting_points_at_its_object);
    DS_RUN(test_missing_section_points_at_top_level);
    DS_RUN(test_wrong_type_shows_value_found);
    DS_RUN(test_out_of_bounds_number_shows_bounds);
    DS_RUN(test_unknown_key_suggests_closest_name);
    DS_RUN(test_unknown_key_without_close_name);
    DS_RUN(test_key_in_wrong_object_suggests_its_place);
    DS_RUN(test_unqualified_table_is_rejected);
    DS_RUN(test_duplicate_table_spelled_differently_is_rejected);
    DS_RUN(test_duplicate_key_is_a_syntax_error);
    DS_RUN(test_kafka_object_value_is_rejected);
    DS_RUN(test_kafka_without_bootstrap_servers_is_rejected);
    DS_RUN(test_bad_topic_prefix_character_is_rejected);
    DS_RUN(test_bad_slot_name_is_rejected);
    DS_RUN(test_kafka_password_value_is_not_echoed);
    DS_RUN(test_kafka_password_in_syntax_error_is_not_echoed);
    DS_RUN(test_conninfo_in_syntax_error_is_not_echoed);
    DS_RUN(test_column_counts_characters_not_bytes);
    DS_RUN(test_apply_file_sets_every_apply_setting);
    DS_RUN(test_apply_file_gets_every_apply_default);
    DS_RUN(test_duration_without_unit_is_rejected);
    DS_RUN(test_capture_file_has_no_targets);
    DS_RUN(test_apply_file_is_refused_for_capture);
    DS_RUN(test_capture_file_is_refused_for_apply);
    DS_RUN(test_file_with_both_sides_serves_both);
    DS_RUN(test_either_side_is_enough_when_any_use_will_do);
    DS_RUN(test_begun_apply_side_must_be_complete);
    DS_RUN(test_targets_must_be_a_non_empty_object);
    DS_RUN(test_target_unknown_key_is_rejected);
    DS_RUN(test_target_without_conninfo_points_at_it);
    DS_RUN(test_target_conninfo_is_never_shown);
    DS_RUN(test_target_name_must_be_simple);
    DS_RUN(test_on_error_takes_dlq_or_stop);
    DS_RUN(test_mappings_must_not_be_empty);
    DS_RUN(test_debezium_settings_by_debezium_names);
    DS_RUN(test_debezium_value_is_checked);
    DS_RUN(test_debezium_setting_dualsync_does_not_take_is_refused);
    DS_RUN(test_documented_example_loads);
    return ds_test_report();
}
