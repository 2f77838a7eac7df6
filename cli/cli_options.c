/*
 * cli_options.c: the options every subcommand shares (--config, --log-level, --log-format,
 * --help), the checks after getopt, and bounded numbers, so that each command's parser only
 * says what is its own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

int ds_cli_option(ds_cli_options_t *o, int c, const char *arg)
{
    switch (c) {
    case 'c':
        o->config_path = arg;
        return DS_CLI_NEXT;
    case 'l':
        o->log_level = arg;
        return DS_CLI_NEXT;
    case 'F':
        ds_cli_log_format = arg;
        return DS_CLI_NEXT;
    case 'h':
        o->usage(stdout);
        return DS_CLI_EXIT_OK;
    case '?':
    case ':':
        /* getopt has said what was wrong. */
        o->usage(stderr);
        return DS_CLI_EXIT_USAGE;
    default:
        return DS_CLI_OWN;
    }
}

int ds_cli_finish(ds_cli_options_t *o, int argc, char **argv, unsigned uses, ds_config_t **config)
{
    *config = NULL;
    if (optind < argc) {
        fprintf(stderr, "dualsync %s: unexpected argument \"%s\"\n", o->command, argv[optind]);
        return DS_CLI_EXIT_USAGE;
    }
    if (!o->config_path) {
        fprintf(stderr, "dualsync %s: --config FILE is required\n\n", o->command);
        o->usage(stderr);
        return DS_CLI_EXIT_USAGE;
    }
    if (!ds_cli_load_config(o->command, o->config_path, uses, o->log_level, config))
        return DS_CLI_EXIT_USAGE;
    return DS_CLI_NEXT;
}

bool ds_cli_number(const ds_cli_options_t *o, const char *option, const char *arg, long min,
                   long max, const char *expected, long *out)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || errno || n < min || n > max) {
        fprintf(stderr, "dualsync %s: --%s: expected %s, got \"%s\"\n", o->command, option,
                expected, arg);
        return false;
    }
    *out = n;
    return true;
}
