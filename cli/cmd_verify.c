/*
 * cmd_verify.c: `dualsync verify --config FILE [--json] [--timeout-ms N]`.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "dualsync/config.h"
#include "dualsync/log.h"
#include "dualsync/verify.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: dualsync verify --config FILE [--json] [--timeout-ms N]\n"
            "\n"
            "Checks, while capture and apply run, that the new tables are exactly what the\n"
            "mappings give from the legacy tables:\n"
            "  1. waits until every change committed on the source before verify started is\n"
            "     in Kafka (the capture slot confirmed it) and applied in every target\n"
            "     database (dualsync.offsets of apply.group_id reached the topics' ends);\n"
            "  2. maps every legacy row with the mapping files, as a snapshot read, and writes\n"
            "     it with apply's own statements into temporary shadow copies of the targets,\n"
            "     in a transaction that is rolled back (nothing is changed);\n"
            "  3. compares each shadow with its target by key: rows missing, extra, and\n"
            "     different in a mapped column, with up to 5 sample keys each. Legacy rows\n"
            "     the mappings reject (dead letters) are counted per mapping, not missing.\n"
            "\n"
            "The configuration needs \"source\" (the legacy database and the slot) and the\n"
            "apply side (\"targets\", \"mappings\").\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE      configuration file (JSON; see docs/configuration.md)\n"
            "      --json             one JSON document instead of the table\n"
            "  -t, --timeout-ms N     how long to wait for capture and apply (default 60000)\n"
            "  -l, --log-level LEVEL  debug, info, warning or error (overrides log_level)\n"
            "      --log-format FORMAT text (default) or json (one object per line)\n"
            "  -h, --help             show this help\n"
            "\n"
            "Exit status: 0 when every target matches, 1 when any differs, 2 on a usage,\n"
            "configuration or connection error, or when apply did not catch up in time.\n");
}

int ds_cli_verify(int argc, char **argv)
{
    static const struct option options[] = {
        DS_CLI_COMMON_OPTIONS,
        {"json", no_argument, NULL, 'j'},
        {"timeout-ms", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    ds_cli_options_t o = {.command = "verify", .usage = usage};
    ds_verify_options_t opt = {.timeout_ms = 60000, .json = false};
    ds_config_t *config = NULL;
    long timeout;
    int c, status;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:t:l:h", options, NULL)) != -1) {
        if ((status = ds_cli_option(&o, c, optarg)) != DS_CLI_OWN) {
            if (status != DS_CLI_NEXT)
                return status;
        } else if (c == 'j') {
            opt.json = true;
        } else if (c == 't') {
            if (!ds_cli_number(&o, "timeout-ms", optarg, 0, 86400000,
                               "milliseconds from 0 to 86400000", &timeout))
                return DS_VERIFY_EXIT_SETUP;
            opt.timeout_ms = (int)timeout;
        }
    }
    if ((status = ds_cli_finish(&o, argc, argv, DS_CONFIG_FOR_CAPTURE | DS_CONFIG_FOR_APPLY,
                                &config)) != DS_CLI_NEXT)
        return status;
    status = ds_verify_run(config, &opt, stdout, stderr);
    ds_config_free(config);
    return status;
}
