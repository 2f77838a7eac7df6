/*
 * main.c: the dualsync command line: one binary, one subcommand per job.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const ds_cli_command_t commands[] = {
    {"capture", "stream committed changes of the legacy tables to Kafka", ds_cli_capture},
    {"apply", "write the changes from Kafka into the new tables, exactly once", ds_cli_apply},
    {"dlq", "list or retry the changes apply could not write (dead letters)", ds_cli_dlq},
    {"pending", "list the changes waiting for a parent row, and why", ds_cli_pending},
    {"verify", "check that the new tables are exactly what the mappings give", ds_cli_verify},
    {"explain", "say what apply does with each target: links or none, batches, settling",
     ds_cli_explain},
    {"status", "show the slot, the apply lag per partition, pending rows and dead letters",
     ds_cli_status},
    {"backfill", "re-backfill one table into the running pipeline, chunk by chunk", ds_cli_backfill},
    {"replay", "rebuild the new tables from the Kafka topics, then swap them in", ds_cli_replay},
    {"teardown", "end a migration: remove the slot, publication, bookkeeping (and topics)",
     ds_cli_teardown},
};

static void usage(FILE *out)
{
    fprintf(out,
            "dualsync %s: keeps new tables in sync with legacy ones during a schema migration,\n"
            "with no change to the application.\n"
            "\n"
            "Usage: dualsync COMMAND [OPTIONS]\n"
            "\n"
            "Commands:\n",
            DUALSYNC_VERSION);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n"
                 "Run 'dualsync COMMAND --help' for a command's options.\n"
                 "The configuration file is documented in docs/configuration.md.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("dualsync %s\n", DUALSYNC_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "dualsync: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
