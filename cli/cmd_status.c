/*
 * cmd_status.c: `dualsync status --config FILE [--json] [--watch [SECONDS]] [thresholds]`.
 */
#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "dualsync/config.h"
#include "dualsync/log.h"
#include "dualsync/status.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: dualsync status --config FILE [--json] [--watch [SECONDS]]\n"
            "                       [--max-lag-messages N] [--max-retained-wal BYTES]\n"
            "                       [--max-seconds-behind S]\n"
            "\n"
            "Shows where the migration stands, asking PostgreSQL and Kafka directly (it works\n"
            "while capture and apply are down). What it shows depends on the file:\n"
            "  with \"source\":   the replication slot (active or not, the WAL it retains:\n"
            "                   current WAL position - restart_lsn, and its confirmed lag:\n"
            "                   current position - confirmed_flush_lsn), and the progress of\n"
            "                   'dualsync backfill --table' runs;\n"
            "  with \"targets\" and \"mappings\": per partition of every mapped topic, the next\n"
            "                   offset apply.group_id stored in each target database against\n"
            "                   the topic's end (the lag in messages), and how long ago the\n"
            "                   source committed the oldest change not applied yet (seconds\n"
            "                   behind: 0 when nothing lags, even on idle tables); rows in\n"
            "                   dualsync.pending waiting for a parent (and the oldest one's\n"
            "                   age); dead-letter records in dualsync.dead_letters and\n"
            "                   messages in the dead-letter topic.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE           configuration file (see docs/configuration.md)\n"
            "      --json                  one JSON document instead of the text view\n"
            "  -w, --watch [SECONDS]       show it again every SECONDS (default 2) until\n"
            "                              interrupted; redrawn in place on a terminal\n"
            "      --max-lag-messages N    unhealthy when a partition lags more than N\n"
            "      --max-retained-wal BYTES  unhealthy when the slot retains more WAL\n"
            "                              (a number of bytes, or with kB, MB, GB, TB)\n"
            "      --max-seconds-behind S  unhealthy when a target database is more than S\n"
            "                              seconds behind the source\n"
            "  -l, --log-level LEVEL       debug, info, warning or error (overrides log_level)\n"
            "      --log-format FORMAT     text (default) or json (one object per line)\n"
            "  -h, --help                  show this help\n"
            "\n"
            "Exit status: 0 healthy; 1 unhealthy: the slot is missing or inactive, a database\n"
            "or Kafka cannot be reached, or a threshold given above is exceeded (each problem\n"
            "is named in the output); 2 on a usage or configuration error. With --watch, the\n"
            "status of the last view.\n");
}

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* A count with an optional binary unit ("512MB" = 512 * 2^20); -1 when malformed. */
static int64_t parse_bytes(const char *text)
{
    static const struct {
        const char *suffix;
        int64_t factor;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"kB", INT64_C(1) << 10},
                 {"KB", INT64_C(1) << 10},
                 {"MB", INT64_C(1) << 20},
                 {"GB", INT64_C(1) << 30},
                 {"TB", INT64_C(1) << 40}};
    char *end;
    long long n;

    errno = 0;
    n = strtoll(text, &end, 10);
    if (end == text || n < 0 || errno)
        return -1;
    while (*end == ' ')
        end++;
    for (size_t i = 0; i < DS_ARRAY_LEN(units); i++) {
        if (strcmp(end, units[i].suffix) == 0)
            return n > INT64_MAX / units[i].factor ? -1 : n * units[i].factor;
    }
    return -1;
}

/* Sleeps @p seconds unless SIGINT or SIGTERM comes first. */
static void wait_interrupted(int seconds)
{
    struct timespec ts = {seconds, 0};

    while (!interrupted && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int ds_cli_status(int argc, char **argv)
{
    enum { OPT_JSON = 256, OPT_MAX_LAG, OPT_MAX_WAL, OPT_MAX_BEHIND };
    static const struct option options[] = {
        DS_CLI_COMMON_OPTIONS,
        {"json", no_argument, NULL, OPT_JSON},
        {"watch", optional_argument, NULL, 'w'},
        {"max-lag-messages", required_argument, NULL, OPT_MAX_LAG},
        {"max-retained-wal", required_argument, NULL, OPT_MAX_WAL},
        {"max-seconds-behind", required_argument, NULL, OPT_MAX_BEHIND},
        {NULL, 0, NULL, 0},
    };
    ds_cli_options_t o = {.command = "status", .usage = usage};
    ds_status_options_t opt = {.json = false,
                               .max_lag_messages = -1,
                               .max_retained_wal = -1,
                               .max_seconds_behind = -1,
                               .timeout_ms = 10000};
    ds_config_t *config = NULL;
    ds_status_t *status;
    char errstr[65536]; /* every problem of every mapping file */
    int watch = 0, c, rc;
    long n;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:w::l:h", options, NULL)) != -1) {
        if ((rc = ds_cli_option(&o, c, optarg)) != DS_CLI_OWN) {
            if (rc != DS_CLI_NEXT)
                return rc;
        } else if (c == OPT_JSON) {
            opt.json = true;
        } else if (c == 'w') {
            /* "--watch 5" as well as "--watch=5": take a following number as the period. */
            if (!optarg && optind < argc && argv[optind][0] >= '0' && argv[optind][0] <= '9')
                optarg = argv[optind++];
            watch = 2;
            if (optarg) {
                if (!ds_cli_number(&o, "watch", optarg, 1, 86400, "seconds from 1 to 86400", &n))
                    return DS_STATUS_EXIT_CONFIG;
                watch = (int)n;
            }
        } else if (c == OPT_MAX_LAG) {
            if (!ds_cli_number(&o, "max-lag-messages", optarg, 0, LONG_MAX,
                               "a number of messages (0 or more)", &n))
                return DS_STATUS_EXIT_CONFIG;
            opt.max_lag_messages = n;
        } else if (c == OPT_MAX_BEHIND) {
            if (!ds_cli_number(&o, "max-seconds-behind", optarg, 0, LONG_MAX,
                               "a number of seconds (0 or more)", &n))
                return DS_STATUS_EXIT_CONFIG;
            opt.max_seconds_behind = n;
        } else if (c == OPT_MAX_WAL) {
            opt.max_retained_wal = parse_bytes(optarg);
            if (opt.max_retained_wal < 0) {
                fprintf(stderr,
                        "dualsync status: --max-retained-wal: expected bytes (\"1073741824\", "
                        "\"512MB\", \"2GB\"), got \"%s\"\n",
                        optarg);
                return DS_STATUS_EXIT_CONFIG;
            }
        }
    }
    /* 0: either side, or both; a side that is present is validated completely. */
    if ((rc = ds_cli_finish(&o, argc, argv, 0, &config)) != DS_CLI_NEXT)
        return rc;
    status = ds_status_new(config, &opt, errstr, sizeof(errstr));
    if (!status) {
        fprintf(stderr, "dualsync status: %s\n", errstr);
        ds_config_free(config);
        return DS_STATUS_EXIT_CONFIG;
    }
    if (watch) {
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal; /* no SA_RESTART: the sleep ends at once */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    for (;;) {
        bool redraw = watch && !opt.json && isatty(STDOUT_FILENO);

        if (redraw)
            fputs("\033[H\033[2J", stdout); /* cursor home, clear the screen */
        rc = ds_status_report(status, stdout);
        if (!watch || interrupted)
            break;
        if (!redraw)
            fputc('\n', stdout);
        fflush(stdout);
        wait_interrupted(watch);
        if (interrupted)
            break;
    }
    ds_status_free(status);
    ds_config_free(config);
    return rc;
}
