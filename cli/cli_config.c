/*
 * cli_config.c: what every subcommand does once its options are parsed: load the
 * configuration for the sides it uses and apply the log level.
 */
#include <stdio.h>

#include "cli.h"
#include "dualsync/log.h"

bool ds_cli_load_config(const char *command, const char *config_path, unsigned uses,
                        const char *log_level, ds_config_t **config)
{
    char errstr[4096];

    *config = NULL;
    if (!ds_config_load_for(config_path, uses, config, errstr, sizeof(errstr))) {
        fprintf(stderr, "dualsync %s: %s\n", command, errstr);
        return false;
    }
    /* The file's log_level is validated by the loader; only --log-level can be wrong. */
    if (!ds_log_set_level(log_level ? log_level : (*config)->log_level)) {
        fprintf(stderr, "dualsync %s: --log-level: unknown level \"%s\" (debug, info, warning, "
                        "error)\n",
                command, log_level);
        ds_config_free(*config);
        *config = NULL;
        return false;
    }
    return true;
}
