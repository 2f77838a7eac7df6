/*
 * cmd_replay.c: `dualsync replay --config FILE [--mapping M ...]`.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"
#include "dualsync/config.h"
#include "dualsync/log.h"
#include "dualsync/replay.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: dualsync replay --config FILE [--mapping M ...] [--in-place]\n"
            "\n"
            "Rebuilds the new tables of the named mappings (default: every mapping of the\n"
            "configuration) from the beginning of their Kafka topics, while the application,\n"
            "capture and apply keep running. Mapping files whose targets write the same tables\n"
            "as a named one are replayed with it.\n"
            "\n"
            "  1. each target table T is rebuilt into a shadow T__replay (same columns,\n"
            "     defaults, constraints, indexes, comments, grants, owner and foreign keys) by\n"
            "     apply's own statements; the live tables are not touched;\n"
            "  2. the replay never goes past what live apply has applied (its offsets in\n"
            "     dualsync.offsets); once it is close behind, one short transaction locks the\n"
            "     live tables (lock_timeout 2 s, retried with backoff), writes the last\n"
            "     messages, moves the links, pending rows and dead-letter records, re-points\n"
            "     foreign keys other tables hold on T, and renames the shadows into place.\n"
            "     Readers see the old table or the new one; apply's sessions are ended so that\n"
            "     it reconnects and continues on the new ones (the role running replay must be\n"
            "     apply's, or a member of pg_signal_backend).\n"
            "\n"
            "Interrupted (a signal, a crash), it leaves the live tables untouched, and the same\n"
            "command resumes where it stopped. A topic whose first messages were deleted\n"
            "(time retention) cannot rebuild the current rows: replay refuses it, naming it.\n"
            "Tables with views, rules, triggers or policies on them are refused too.\n"
            "In-place targets (mode \"update\", new columns of legacy tables) are rebuilt in\n"
            "a shadow of their keys and columns; the swap writes only the rows whose values\n"
            "differ.\n"
            "\n"
            "With --in-place, for tables nobody reads yet, each target table is emptied\n"
            "(TRUNCATE) and written again where it is instead: no shadow, no swap, views,\n"
            "triggers and rules kept. Readers see the table fill up. Live apply into that\n"
            "database waits meanwhile (it logs why) and goes on from its own offsets after.\n"
            "A table that another table references by foreign key is refused unless that\n"
            "table's mapping is replayed too. Interrupted, the table stays half rebuilt and\n"
            "apply keeps waiting until the same command runs again and finishes it.\n"
            "Details: README.md, \"Replay\".\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE      configuration file (JSON; see docs/configuration.md)\n"
            "  -m, --mapping M        a mapping file to replay (its stem, e.g. \"patients\", or\n"
            "                         its path as the configuration lists it); repeatable\n"
            "      --in-place         empty and rebuild the tables where they are (above)\n"
            "  -l, --log-level LEVEL  debug, info, warning or error (overrides log_level)\n"
            "      --log-format FORMAT text (default) or json (one object per line)\n"
            "  -h, --help             show this help\n"
            "\n"
            "Progress (messages done/total, rate, ETA) goes to stderr: a bar on a terminal,\n"
            "log lines otherwise.\n"
            "\n"
            "Exit status: 0 when the rebuilt tables are swapped in, 1 on a runtime failure\n"
            "(run the same command again to resume), 2 on a usage or configuration error or a\n"
            "refusal.\n");
}

int ds_cli_replay(int argc, char **argv)
{
    static const struct option options[] = {
        DS_CLI_COMMON_OPTIONS,
        {"mapping", required_argument, NULL, 'm'},
        {"in-place", no_argument, NULL, 'I'},
        {NULL, 0, NULL, 0},
    };
    ds_cli_options_t o = {.command = "replay", .usage = usage};
    const char **mappings = calloc((size_t)argc + 1, sizeof(*mappings));
    ds_replay_options_t opt = {0};
    ds_config_t *config = NULL;
    int c, status;

    if (!mappings) {
        fputs("dualsync replay: out of memory\n", stderr);
        return DS_REPLAY_EXIT_FAILURE;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:m:l:h", options, NULL)) != -1) {
        if ((status = ds_cli_option(&o, c, optarg)) != DS_CLI_OWN) {
            if (status != DS_CLI_NEXT) {
                free(mappings);
                return status;
            }
        } else if (c == 'm') {
            mappings[opt.nmappings++] = optarg;
        } else if (c == 'I') {
            opt.in_place = true;
        }
    }
    if ((status = ds_cli_finish(&o, argc, argv, DS_CONFIG_FOR_APPLY, &config)) != DS_CLI_NEXT) {
        free(mappings);
        return status;
    }
    opt.mappings = mappings;
    opt.progress_bar = isatty(STDERR_FILENO);
    status = ds_replay_run(config, &opt);
    ds_config_free(config);
    free(mappings);
    return status;
}
