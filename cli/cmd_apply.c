/*
 * cmd_apply.c: `dualsync apply --config FILE`.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "dualsync/apply.h"
#include "dualsync/config.h"
#include "dualsync/log.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: dualsync apply --config FILE [--log-level LEVEL] [--metrics-address ADDR]\n"
            "\n"
            "Reads the change topics capture writes, or the Debezium connector's under the\n"
            "\"debezium\" settings it declares (docs/debezium.md), as Kafka consumer group\n"
            "apply.group_id,\n"
            "maps every change with the mapping files of the configuration and writes the new\n"
            "tables of the target databases, exactly once in effect: each target database\n"
            "stores the offsets it has applied in the transaction that writes the rows\n"
            "(dualsync.offsets), and reading resumes from there after any crash.\n"
            "\n"
            "A change the mappings reject, or whose write fails, goes to the dead-letter topic\n"
            "(apply.dlq_topic, created at start when missing, keeping every dead letter; see\n"
            "'dualsync dlq'), or stops apply with apply.on_error \"stop\".\n"
            "A change whose parent row has not arrived yet waits in dualsync.pending and is\n"
            "retried after later batches that write its database, and every 5 s.\n"
            "\n"
            "Several apply processes may run with the same configuration: Kafka shares the\n"
            "partitions among them (cooperative-sticky), each process claims a partition in\n"
            "dualsync.offsets before it reads it and commits only while its claim holds, and\n"
            "each commits under a replication origin of its own. A process restarted with its\n"
            "apply.instance_id (default: host name and a number free on the host) gets its\n"
            "partitions back at once. See docs/configuration.md, \"Several apply processes\".\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE      configuration file (JSON; see docs/configuration.md)\n"
            "  -l, --log-level LEVEL  debug, info, warning or error (overrides log_level)\n"
            "      --log-format FORMAT text (default) or json (one object per line)\n"
            "  -m, --metrics-address HOST:PORT\n"
            "                         serve /metrics and /healthz there (default\n"
            "                         apply.metrics_address, 127.0.0.1:9188); \"off\": none.\n"
            "                         See docs/metrics.md\n"
            "  -h, --help             show this help\n"
            "\n"
            "SIGINT/SIGTERM: commit the batch being read, close the consumer, exit 0 (Kafka\n"
            "keeps the partitions of a process for session.timeout.ms, expecting it back).\n"
            "While a target database is unreachable, the first signal stops apply after the\n"
            "connection attempt under way, without committing (exit 1; a restart applies the\n"
            "batch). A second signal stops waiting for an unreachable broker.\n"
            "\n"
            "Exit status: 0 on a clean stop, 1 on a runtime failure (see the log; a restart\n"
            "resumes from the target databases' offsets), 2 on a usage, configuration, mapping\n"
            "or catalog error, or when another process joined the group with this one's\n"
            "apply.instance_id.\n");
}

/* Parses the options every apply-side command shares; returns -1 to go on, else a status. */
int ds_cli_apply_options(const char *command, int argc, char **argv, void (*help)(FILE *),
                         ds_config_t **config)
{
    static const struct option options[] = {
        DS_CLI_COMMON_OPTIONS,
        {"json", no_argument, NULL, 'j'},
        {"metrics-address", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    ds_cli_options_t o = {.command = command, .usage = help};
    const char *metrics_address = NULL;
    int c, status;

    *config = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:l:m:h", options, NULL)) != -1) {
        if ((status = ds_cli_option(&o, c, optarg)) != DS_CLI_OWN) {
            if (status != DS_CLI_NEXT)
                return status;
        } else if (c == 'j') {
            ds_cli_json_output = 1;
        } else if (c == 'm') {
            metrics_address = optarg;
        }
    }
    if ((status = ds_cli_finish(&o, argc, argv, DS_CONFIG_FOR_APPLY, config)) != DS_CLI_NEXT)
        return status;
    /* Only apply serves metrics; dlq list and dlq retry accept and ignore the option. */
    if (metrics_address &&
        !ds_cli_metrics_address(command, metrics_address, &(*config)->apply_metrics_address)) {
        ds_config_free(*config);
        *config = NULL;
        return DS_APPLY_EXIT_USAGE;
    }
    return -1;
}

int ds_cli_apply(int argc, char **argv)
{
    ds_config_t *config;
    int status = ds_cli_apply_options("apply", argc, argv, usage, &config);

    if (status >= 0)
        return status;
    if (ds_cli_json_output) {
        fprintf(stderr, "dualsync apply: --json is an option of 'dualsync dlq list'\n");
        ds_config_free(config);
        return DS_APPLY_EXIT_USAGE;
    }
    status = ds_apply_run(config);
    ds_config_free(config);
    return status;
}
