/*
 * cmd_explain.c: `dualsync explain --config FILE [--sql]`: what apply will do with each
 * target of the mappings, without connecting to anything.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "dualsync/apply.h"
#include "dualsync/config.h"
#include "dualsync/mapping.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: dualsync explain --config FILE [--sql]\n"
            "\n"
            "Compiles the configuration's mapping files as apply does and says, for each\n"
            "target: its table, connection, source file and topic, and key; whether its rows\n"
            "are recorded in dualsync.links or written without links (a target whose key is\n"
            "computed from the source key's columns alone, mappings/README.md, \"Targets\n"
            "without links\"), and if kept, why; whether batches write it with one set-based\n"
            "statement and settle its rows before COMMIT. Connects to nothing.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE      configuration file (JSON; see docs/configuration.md)\n"
            "      --sql              also print each target's statements\n"
            "  -l, --log-level LEVEL  debug, info, warning or error (overrides log_level)\n"
            "      --log-format FORMAT text (default) or json (one object per line)\n"
            "  -h, --help             show this help\n"
            "\n"
            "Exit status: 0 on success, 2 on a usage or configuration error (a mapping\n"
            "file's problems are listed, each with its file and JSON path).\n");
}

int ds_cli_explain(int argc, char **argv)
{
    static const struct option options[] = {
        DS_CLI_COMMON_OPTIONS,
        {"sql", no_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    ds_cli_options_t o = {.command = "explain", .usage = usage};
    ds_config_t *config = NULL;
    ds_mapping_set_t *set = NULL;
    ds_buf_t out = DS_BUF_INIT;
    char errstr[65536]; /* every problem of every mapping file */
    bool sql = false;
    int c, status;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:l:h", options, NULL)) != -1) {
        if ((status = ds_cli_option(&o, c, optarg)) != DS_CLI_OWN) {
            if (status != DS_CLI_NEXT)
                return status;
        } else if (c == 's') {
            sql = true;
        }
    }
    if ((status = ds_cli_finish(&o, argc, argv, DS_CONFIG_FOR_APPLY, &config)) != DS_CLI_NEXT)
        return status;
    if (!ds_mapping_set_load((const char *const *)config->mappings, config->nmappings,
                             config->topic_prefix, (const char *const *)config->target_names,
                             &set, errstr, sizeof(errstr))) {
        fprintf(stderr, "dualsync explain: the mappings have problems:\n%s\n", errstr);
        ds_config_free(config);
        return DS_CLI_EXIT_USAGE;
    }
    ds_mapping_set_explain(set, sql, &out);
    if (out.data)
        fputs(out.data, stdout);
    ds_buf_free(&out);
    ds_mapping_set_free(set);
    ds_config_free(config);
    return DS_CLI_EXIT_OK;
}
