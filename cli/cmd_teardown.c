/*
 * cmd_teardown.c: `dualsync teardown --config FILE [--topics] [--force] [--yes]`.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "dualsync/config.h"
#include "dualsync/teardown.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: dualsync teardown --config FILE [--topics] [--force] [--yes]\n"
            "                         [--timeout-ms N]\n"
            "\n"
            "Ends a migration: removes what dualsync put on the databases, so that no\n"
            "forgotten replication slot holds WAL until the source's disk is full:\n"
            "  - the capture slot (source.slot) and, when dualsync manages it\n"
            "    (source.create_publication), the publication;\n"
            "  - the dualsync schema of the source database (backfill state) and of every\n"
            "    target database (apply's offsets, links, pending rows, dead letters);\n"
            "  - apply's replication origins (\"<apply.origin>.<apply.group_id>.*\");\n"
            "  - with --topics, the change topics, the dead-letter topic and the transaction\n"
            "    topic.\n"
            "The tables themselves, legacy and new, are never touched.\n"
            "\n"
            "Stop every capture and apply of the configuration first. Unless --force is\n"
            "given, teardown refuses while any of them is connected, while the slot holds a\n"
            "change not yet in Kafka or Kafka holds one not yet applied, and while\n"
            "'dualsync verify' finds a difference. It then prints what it will remove and\n"
            "asks for \"yes\", unless --yes is given. Every step can be repeated: a teardown\n"
            "stopped half way finishes when run again.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE      configuration file (both sides; see docs/configuration.md)\n"
            "      --topics           also delete the Kafka topics\n"
            "      --force            skip the checks; end a capture session holding the slot\n"
            "  -y, --yes              do not ask for confirmation\n"
            "  -t, --timeout-ms N     how long verify waits for capture and apply (default\n"
            "                         30000)\n"
            "  -l, --log-level LEVEL  debug, info, warning or error (overrides log_level)\n"
            "      --log-format FORMAT text (default) or json (one object per line)\n"
            "  -h, --help             show this help\n"
            "\n"
            "Exit status: 0 when removed (or nothing was left), 1 when refused or not\n"
            "confirmed, 2 on a usage, configuration or connection error.\n");
}

int ds_cli_teardown(int argc, char **argv)
{
    static const struct option options[] = {
        DS_CLI_COMMON_OPTIONS,
        {"topics", no_argument, NULL, 'T'},
        {"force", no_argument, NULL, 'f'},
        {"yes", no_argument, NULL, 'y'},
        {"timeout-ms", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    ds_cli_options_t o = {.command = "teardown", .usage = usage};
    ds_teardown_options_t opt = {.timeout_ms = 30000};
    ds_config_t *config = NULL;
    long timeout;
    int c, status;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:yt:l:h", options, NULL)) != -1) {
        if ((status = ds_cli_option(&o, c, optarg)) != DS_CLI_OWN) {
            if (status != DS_CLI_NEXT)
                return status;
        } else if (c == 'T') {
            opt.topics = true;
        } else if (c == 'f') {
            opt.force = true;
        } else if (c == 'y') {
            opt.yes = true;
        } else if (c == 't') {
            if (!ds_cli_number(&o, "timeout-ms", optarg, 0, 86400000,
                               "milliseconds from 0 to 86400000", &timeout))
                return DS_TEARDOWN_EXIT_SETUP;
            opt.timeout_ms = (int)timeout;
        }
    }
    if ((status = ds_cli_finish(&o, argc, argv, DS_CONFIG_FOR_CAPTURE | DS_CONFIG_FOR_APPLY,
                                &config)) != DS_CLI_NEXT)
        return status;
    status = ds_teardown_run(config, &opt, stdin, stdout, stderr);
    ds_config_free(config);
    return status;
}
