/*
 * cmd_capture.c: `dualsync capture --config FILE`.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "dualsync/capture.h"
#include "dualsync/config.h"
#include "dualsync/log.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: dualsync capture --config FILE [--log-level LEVEL] [--metrics-address ADDR]\n"
            "\n"
            "Streams every committed change of the configured tables from PostgreSQL logical\n"
            "replication (pgoutput) to Kafka, one Debezium-format JSON message per row change,\n"
            "on topics <topic_prefix>.<schema>.<table>. Values are dualsync's classic ones;\n"
            "with the \"debezium\" object (Debezium's own settings: time.precision.mode,\n"
            "decimal.handling.mode, ...) or capture.message_format \"json-with-schema\" (the\n"
            "JsonConverter schema envelope, for Kafka Connect sinks), exactly the Debezium\n"
            "connector's messages (docs/type-mapping.md). With the \"debezium\" setting\n"
            "provide.transaction.metadata, also Debezium's BEGIN/END records on\n"
            "<topic_prefix>.<topic.transaction> (docs/debezium.md).\n"
            "\n"
            "On start it checks wal_level=logical and each table's replica identity, and creates\n"
            "the publication and the replication slot when they are missing (reusing them when\n"
            "present), and creates the missing topics (those of the tables, apply.dlq_topic and\n"
            "the transaction topic)\n"
            "with the \"topics\" settings: compacted by default, so they keep the latest change\n"
            "of every row. It warns about an existing topic that deletes by time.\n"
            "The slot's confirmed position moves only past transactions whose messages\n"
            "Kafka has acknowledged, so after any crash capture resumes with nothing lost; only\n"
            "the unacknowledged tail may be sent again.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE      configuration file (JSON; see docs/configuration.md)\n"
            "  -l, --log-level LEVEL  debug, info, warning or error (overrides log_level)\n"
            "      --log-format FORMAT text (default) or json (one object per line)\n"
            "  -m, --metrics-address HOST:PORT\n"
            "                         serve /metrics and /healthz there (default\n"
            "                         capture.metrics_address, 127.0.0.1:9187); \"off\": none.\n"
            "                         See docs/metrics.md\n"
            "  -h, --help             show this help\n"
            "\n"
            "Passwords: use PGPASSWORD, PGSERVICE or ~/.pgpass rather than the conninfo.\n"
            "SIGINT/SIGTERM: wait for Kafka to acknowledge what was sent, confirm it, exit 0.\n"
            "\n"
            "Exit status: 0 on a clean stop, 1 on a runtime failure (see the log; a restart\n"
            "resumes from the slot), 2 on a usage or configuration error (a setting or Kafka\n"
            "property the file gets wrong, a listed table that does not exist, a topic setting\n"
            "Kafka refuses). A capture that\n"
            "refuses to start leaves no publication or slot behind.\n");
}

int ds_cli_capture(int argc, char **argv)
{
    static const struct option options[] = {
        DS_CLI_COMMON_OPTIONS,
        {"metrics-address", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    ds_cli_options_t o = {.command = "capture", .usage = usage};
    const char *metrics_address = NULL;
    ds_config_t *config = NULL;
    int c, status;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:l:m:h", options, NULL)) != -1) {
        if ((status = ds_cli_option(&o, c, optarg)) != DS_CLI_OWN) {
            if (status != DS_CLI_NEXT)
                return status;
        } else if (c == 'm') {
            metrics_address = optarg;
        }
    }
    if ((status = ds_cli_finish(&o, argc, argv, DS_CONFIG_FOR_CAPTURE, &config)) != DS_CLI_NEXT)
        return status;
    if (metrics_address &&
        !ds_cli_metrics_address("capture", metrics_address, &config->capture_metrics_address)) {
        ds_config_free(config);
        return DS_EXIT_USAGE;
    }
    status = ds_capture_run(config);
    ds_config_free(config);
    return status;
}
