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

#include <stdio.h>

#include "dualsync/config.h"

/* Loads @p config_path for the sides in @p uses (DS_CONFIG_FOR_*) and sets the log level
 * (@p log_level from --log-level, or NULL for the file's), the log format (ds_cli_log_format,
 * else the file's log_format), and names the process @p command in JSON log lines. On failure prints
 * "dualsync COMMAND: ..." and returns false with *config NULL. */
bool ds_cli_load_config(const char *command, const char *config_path, unsigned uses,
                        const char *log_level, ds_config_t **config);

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
