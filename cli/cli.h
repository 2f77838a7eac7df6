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

int ds_cli_capture(int argc, char **argv);

#endif
