/*
 * cmd_dlq.c: `dualsync dlq list|retry --config FILE`: the dead letters of apply.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "dualsync/apply.h"
#include "dualsync/config.h"
#include "dualsync/dlq.h"

int ds_cli_json_output;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: dualsync dlq list --config FILE [--json]\n"
            "       dualsync dlq retry --config FILE\n"
            "\n"
            "The dead letters of 'dualsync apply': changes it could not write, on the topic\n"
            "apply.dlq_topic (default \"<topic_prefix>.dlq\").\n"
            "\n"
            "  list   prints every dead letter, from the beginning of the topic to its end as\n"
            "         of now: where the change was read (topic [partition] @offset), its key,\n"
            "         the target that failed (- when the change could not be mapped at all),\n"
            "         the attempts so far and the error. With --json: one JSON object per\n"
            "         line, the dead letter as stored plus \"dlq_partition\" and \"dlq_offset\".\n"
            "  retry  re-drives the dead letters after the mappings (or the data) were fixed:\n"
            "         each is mapped again with the current mapping files and written like\n"
            "         apply writes; one that fails again is published to the topic again with\n"
            "         \"attempts\" + 1. A dead letter whose source row changed again since\n"
            "         (and apply handled that newer change) is superseded: not written, so a\n"
            "         stale change never overwrites a newer one (the target databases keep a\n"
            "         record of each dead letter in dualsync.dead_letters). Runs as consumer\n"
            "         group \"<apply.group_id>.dlq-retry\", whose offsets the target databases\n"
            "         keep, so a dead letter is re-driven once; prints how many were applied,\n"
            "         how many failed again and how many were superseded.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE      configuration file (JSON; see docs/configuration.md)\n"
            "  -l, --log-level LEVEL  debug, info, warning or error (overrides log_level)\n"
            "      --log-format FORMAT text (default) or json (one object per line)\n"
            "      --json             list: one JSON object per line\n"
            "  -h, --help             show this help\n"
            "\n"
            "Exit status: 0 on success, 1 on a runtime failure, 2 on a usage or configuration\n"
            "error.\n");
}

int ds_cli_dlq(int argc, char **argv)
{
    ds_config_t *config;
    const char *action;
    char errstr[2048];
    int status;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? DS_APPLY_EXIT_USAGE : DS_APPLY_EXIT_OK;
    }
    action = argv[1];
    if (strcmp(action, "list") != 0 && strcmp(action, "retry") != 0) {
        fprintf(stderr, "dualsync dlq: unknown action \"%s\" (list or retry)\n\n", action);
        usage(stderr);
        return DS_APPLY_EXIT_USAGE;
    }
    status = ds_cli_apply_options(strcmp(action, "list") == 0 ? "dlq list" : "dlq retry", argc - 1,
                                  argv + 1, usage, &config);
    if (status >= 0)
        return status;
    if (strcmp(action, "list") == 0) {
        long n = ds_dlq_list(config, ds_cli_json_output, stdout, errstr, sizeof(errstr));

        if (n < 0) {
            fprintf(stderr, "dualsync dlq list: %s\n", errstr);
            status = DS_APPLY_EXIT_FAILURE;
        } else {
            if (!ds_cli_json_output)
                fprintf(stderr, "%ld dead letters on %s\n", n, config->apply_dlq_topic);
            status = DS_APPLY_EXIT_OK;
        }
    } else if (ds_cli_json_output) {
        fprintf(stderr, "dualsync dlq retry: --json is an option of 'dualsync dlq list'\n");
        status = DS_APPLY_EXIT_USAGE;
    } else {
        status = ds_apply_dlq_retry(config, stdout);
    }
    ds_config_free(config);
    return status;
}
