/*
 * cmd_backfill.c: `dualsync backfill --config FILE --table schema.table`.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dualsync/capture.h"
#include "dualsync/config.h"
#include "dualsync/incremental.h"
#include "dualsync/log.h"

#define DEFAULT_CHUNK_SIZE         4096
#define DEFAULT_CONFIRM_TIMEOUT_MS 300000

/* Set by SIGINT/SIGTERM: finish the chunk under way, record it, stop. */
static volatile sig_atomic_t stop_requested;

static void on_signal(int signum)
{
    (void)signum;
    stop_requested = 1;
}

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: dualsync backfill --config FILE --table SCHEMA.TABLE [--chunk-size N]\n"
        "                         [--restart] [--confirm-timeout-ms MS] [--log-level LEVEL]\n"
        "\n"
        "Re-backfills one table into a running pipeline: every row of the table is\n"
        "published as a Debezium read event (op \"r\", source.snapshot \"incremental\") on\n"
        "the table's topic, while dualsync capture keeps streaming, without a new slot.\n"
        "Use it for a table added to source.tables later, or to repair a table whose new\n"
        "rows were damaged. Runs beside `dualsync capture` with the same configuration.\n"
        "\n"
        "The table is read in primary-key chunks. Each chunk is framed by watermarks in the\n"
        "WAL (pg_logical_emit_message), so capture drops the chunk rows that changed while\n"
        "the chunk was read (the stream carries their newer state): the topic read in order\n"
        "ends with each row's current state, and no deleted row comes back. A chunk is\n"
        "recorded in dualsync.backfill_state once the slot confirms it (Kafka has it); after\n"
        "a crash or a stop, the same command resumes after the last recorded chunk.\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE           configuration file (the one capture runs with)\n"
        "  -t, --table SCHEMA.TABLE    the table; one of source.tables, with a primary key\n"
        "  -n, --chunk-size N          rows per chunk (default %d)\n"
        "      --restart               start from the first row even if an earlier run of\n"
        "                              this table did not finish\n"
        "      --confirm-timeout-ms MS how long a chunk waits for capture to confirm it\n"
        "                              (default %d)\n"
        "  -l, --log-level LEVEL       debug, info, warning or error (overrides log_level)\n"
        "      --log-format FORMAT     text (default) or json (one object per line)\n"
        "  -h, --help                  show this help\n"
        "\n"
        "Progress (rows done/total, rate, ETA) goes to stderr: a bar on a terminal, log\n"
        "lines otherwise. SIGINT/SIGTERM: finish the current chunk, record it, exit 0.\n"
        "\n"
        "Exit status: 0 when every row was published (or on a stop: run it again to\n"
        "resume), 1 on a runtime failure (resumable), 2 on a usage or setup error, or when\n"
        "capture did not confirm a chunk in time (is it running?). Details: docs/backfill.md.\n",
        DEFAULT_CHUNK_SIZE, DEFAULT_CONFIRM_TIMEOUT_MS);
}

int ds_cli_backfill(int argc, char **argv)
{
    static const struct option options[] = {
        DS_CLI_COMMON_OPTIONS,
        {"table", required_argument, NULL, 't'},
        {"chunk-size", required_argument, NULL, 'n'},
        {"restart", no_argument, NULL, 'r'},
        {"confirm-timeout-ms", required_argument, NULL, 'T'},
        {NULL, 0, NULL, 0},
    };
    ds_cli_options_t o = {.command = "backfill", .usage = usage};
    ds_incremental_options_t opt;
    ds_incremental_stats_t stats;
    struct sigaction sa;
    ds_config_t *config = NULL;
    char errstr[2048];
    long n;
    int c, status;

    memset(&opt, 0, sizeof(opt));
    opt.chunk_size = DEFAULT_CHUNK_SIZE;
    opt.confirm_timeout_ms = DEFAULT_CONFIRM_TIMEOUT_MS;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:t:n:l:h", options, NULL)) != -1) {
        if ((status = ds_cli_option(&o, c, optarg)) != DS_CLI_OWN) {
            if (status != DS_CLI_NEXT)
                return status;
        } else if (c == 't') {
            opt.table = optarg;
        } else if (c == 'n') {
            if (!ds_cli_number(&o, "chunk-size", optarg, 1, 1000000000,
                               "a positive number of rows", &n))
                return DS_EXIT_USAGE;
            opt.chunk_size = (int)n;
        } else if (c == 'r') {
            opt.restart = true;
        } else if (c == 'T') {
            if (!ds_cli_number(&o, "confirm-timeout-ms", optarg, 1, 1000000000,
                               "a positive number of milliseconds", &n))
                return DS_EXIT_USAGE;
            opt.confirm_timeout_ms = (int)n;
        }
    }
    if (o.config_path && !opt.table && optind >= argc) {
        fprintf(stderr, "dualsync backfill: --table SCHEMA.TABLE is required\n\n");
        usage(stderr);
        return DS_EXIT_USAGE;
    }
    if ((status = ds_cli_finish(&o, argc, argv, DS_CONFIG_FOR_CAPTURE, &config)) != DS_CLI_NEXT)
        return status;

    /* The flag is read between chunks: the chunk under way completes and is recorded. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    opt.config = config;
    opt.progress_bar = isatty(STDERR_FILENO);
    opt.stop = &stop_requested;

    switch (ds_incremental_run(&opt, &stats, errstr, sizeof(errstr))) {
    case DS_INCREMENTAL_DONE:
        ds_info("backfill of %s complete: %lld rows read in %lld chunks by this run (%lld in "
                "all)%s",
                opt.table, (long long)stats.rows, (long long)stats.chunks,
                (long long)stats.rows_done, stats.resumed ? ", resumed from an earlier run" : "");
        status = DS_EXIT_OK;
        break;
    case DS_INCREMENTAL_STOPPED:
        ds_info("stopped: backfill of %s recorded up to key %s (%lld rows done, %lld by this "
                "run); run the same command again to resume after it",
                opt.table, stats.last_key[0] ? stats.last_key : "(none)",
                (long long)stats.rows_done, (long long)stats.rows);
        status = DS_EXIT_OK;
        break;
    case DS_INCREMENTAL_SETUP:
        ds_error("%s", errstr);
        status = DS_EXIT_USAGE;
        break;
    default:
        ds_error("%s; the chunks finished so far are recorded: run the same command again to "
                 "resume after them",
                 errstr);
        status = DS_EXIT_FAILURE;
        break;
    }
    ds_config_free(config);
    return status;
}
