/*
 * cmd_pending.c: `dualsync pending list --config FILE [--json]`: the changes apply parked in
 * dualsync.pending until their parent row exists.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "dualsync/apply.h"
#include "dualsync/config.h"
#include "dualsync/pending.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: dualsync pending list --config FILE [--json]\n"
            "\n"
            "The changes 'dualsync apply' parked in dualsync.pending of each target database:\n"
            "a child whose \"required\" lookup found no parent row (or whose foreign key\n"
            "failed). apply retries them after every batch and every few seconds; they are\n"
            "written once the parent exists, or become dead letters after\n"
            "apply.pending_timeout (off by default: they wait for ever).\n"
            "\n"
            "  list   prints every waiting change, oldest first: the database and target,\n"
            "         where the change was read (topic [partition] @offset), its key, how\n"
            "         long it has waited and since when, and why: each required lookup that\n"
            "         finds no row now, with the values it looks up (worked out with the\n"
            "         current mapping files), else the error stored when it was parked.\n"
            "         With --json: one JSON object per line, with \"database\", \"target\",\n"
            "         \"topic\", \"partition\", \"offset\", \"key\", \"reason\", \"waiting_since\"\n"
            "         (UTC) and \"age_s\". Reads only.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE      configuration file (JSON; see docs/configuration.md)\n"
            "  -l, --log-level LEVEL  debug, info, warning or error (overrides log_level)\n"
            "      --log-format FORMAT text (default) or json (one object per line)\n"
            "      --json             one JSON object per line\n"
            "  -h, --help             show this help\n"
            "\n"
            "Exit status: 0 on success (waiting changes are no failure), 1 when a database\n"
            "cannot be read, 2 on a usage or configuration error.\n");
}

int ds_cli_pending(int argc, char **argv)
{
    ds_config_t *config;
    char errstr[65536]; /* every problem of every mapping file */
    bool config_error;
    long n;
    int status;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? DS_APPLY_EXIT_USAGE : DS_APPLY_EXIT_OK;
    }
    if (strcmp(argv[1], "list") != 0) {
        fprintf(stderr, "dualsync pending: unknown action \"%s\" (list)\n\n", argv[1]);
        usage(stderr);
        return DS_APPLY_EXIT_USAGE;
    }
    status = ds_cli_apply_options("pending list", argc - 1, argv + 1, usage, &config);
    if (status >= 0)
        return status;
    n = ds_pending_list(config, ds_cli_json_output, stdout, errstr, sizeof(errstr),
                        &config_error);
    if (n < 0) {
        fprintf(stderr, "dualsync pending list: %s\n", errstr);
        status = config_error ? DS_APPLY_EXIT_USAGE : DS_APPLY_EXIT_FAILURE;
    } else {
        if (!ds_cli_json_output)
            fprintf(stderr, "%ld pending changes\n", n);
        status = DS_APPLY_EXIT_OK;
    }
    ds_config_free(config);
    return status;
}
