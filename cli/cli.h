/*
 * cli.h: the subcommands of the dualsync binary. Each parses its own options and returns
 * the process exit status.
 */
#ifndef DUALSYNC_CLI_H
#define DUALSYNC_CLI_H

typedef struct ds_cli_command {
    const char *name;    /* as typed after "dualsync" */
    const char *summary; /* one line for `dualsync --help` */
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
} ds_cli_command_t;

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "dualsync/config.h"

/* Loads @p config_path for the sides in @p uses (DS_CONFIG_FOR_*) and sets the log level
 * (@p log_level from --log-level, or NULL for the file's), the log format (ds_cli_log_format,
 * else the file's log_format), and names the process @p command in JSON log lines. On failure prints
 * "dualsync COMMAND: ..." and returns false with *config NULL. */
bool ds_cli_load_config(const char *command, const char *config_path, unsigned uses,
                        const char *log_level, ds_config_t **config);

/* Exit statuses every command shares: 0 after --help, 2 on a usage or configuration error. */
#define DS_CLI_EXIT_OK 0
#define DS_CLI_EXIT_USAGE 2

/* The long options every command takes, for its getopt_long table (short: "c:l:h"). */
#define DS_CLI_COMMON_OPTIONS                                                                      \
    {"config", required_argument, NULL, 'c'}, {"log-level", required_argument, NULL, 'l'},         \
        {"log-format", required_argument, NULL, 'F'}, {"help", no_argument, NULL, 'h'}

/* What the shared options said, and how to report on them. */
typedef struct ds_cli_options {
    const char *command;        /* "verify", "dlq list": after "dualsync " in messages */
    void (*usage)(FILE *out);   /* the command's --help text */
    const char *config_path;    /* --config */
    const char *log_level;      /* --log-level, or NULL for the file's */
} ds_cli_options_t;

/* ds_cli_option() and ds_cli_finish() results besides an exit status. */
#define DS_CLI_NEXT (-1) /* handled: go on */
#define DS_CLI_OWN (-2)  /* the command's own option: its parser handles it */

/* One result @p c of getopt_long (with @p arg, its optarg): a shared option is recorded
 * (DS_CLI_NEXT), --help prints the usage (DS_CLI_EXIT_OK), an unknown or incomplete option
 * prints it to stderr (DS_CLI_EXIT_USAGE); anything else is DS_CLI_OWN. */
int ds_cli_option(ds_cli_options_t *o, int c, const char *arg);

/* After getopt_long: no operand may be left and --config is required; then the configuration
 * is loaded for @p uses (ds_cli_load_config). DS_CLI_NEXT with *config set, or the exit status. */
int ds_cli_finish(ds_cli_options_t *o, int argc, char **argv, unsigned uses,
                  ds_config_t **config);

/* @p arg as a whole number from @p min to @p max, or false after printing
 * "dualsync COMMAND: --OPTION: expected EXPECTED, got "ARG"". */
bool ds_cli_number(const ds_cli_options_t *o, const char *option, const char *arg, long min,
                   long max, const char *expected, long *out);

/* --metrics-address: checks @p address and replaces *@p setting with it. On a bad value prints
 * "dualsync COMMAND: ..." and returns false. */
bool ds_cli_metrics_address(const char *command, const char *address, char **setting);

int ds_cli_capture(int argc, char **argv);
int ds_cli_apply(int argc, char **argv);
int ds_cli_dlq(int argc, char **argv);
int ds_cli_pending(int argc, char **argv);
int ds_cli_verify(int argc, char **argv);
int ds_cli_backfill(int argc, char **argv);
int ds_cli_replay(int argc, char **argv);
int ds_cli_status(int argc, char **argv);
int ds_cli_teardown(int argc, char **argv);
int ds_cli_explain(int argc, char **argv);

/* The options apply, dlq list and dlq retry share (cmd_apply.c): loads the config for apply.
 * Returns -1 to go on with *config set, or the exit status to return. */
int ds_cli_apply_options(const char *command, int argc, char **argv, void (*help)(FILE *),
                         ds_config_t **config);

/* --log-format FORMAT as given on the command line ("text", "json"), or NULL for the
 * file's log_format; ds_cli_load_config() applies it. */
extern const char *ds_cli_log_format;

/* --json was given (dlq list, pending list). */
extern int ds_cli_json_output;

#endif
