/*
 * preflight.h: what capture checks and prepares on the source before it streams.
 *
 * On an ordinary (non-replication) connection: wal_level must be logical; every configured
 * table must exist and be able to publish updates and deletes (a primary key under REPLICA
 * IDENTITY DEFAULT, or an index or FULL identity); the publication is created, or missing
 * tables added to it, when source.create_publication allows. Each failure explains the fix.
 * The slot is checked before the publication is created: a refusal leaves nothing behind.
 */
#ifndef DUALSYNC_PREFLIGHT_H
#define DUALSYNC_PREFLIGHT_H

#include "dualsync/common.h"
#include "dualsync/config.h"
#include "dualsync/connect_schema.h"

typedef struct ds_source_table {
    char *schema;        /* namespace name, unquoted */
    char *table;         /* relation name, unquoted */
    char replident;      /* pg_class.relreplident */
    char **primary_key;  /* NULL-terminated column names in key order; NULL without a PK */
    ds_connect_column_t *columns; /* owned, ncolumns entries in attnum order: NOT NULL, base
                                   * types and enum labels, for the Connect schemas */
    int ncolumns;
} ds_source_table_t;

typedef struct ds_source_catalog {
    int ntables;               /* entries in tables, one per source.tables entry */
    ds_source_table_t *tables; /* owned */
    bool slot_existed;         /* source.slot was there before capture started */
    bool created_publication;  /* this run created the publication (ds_preflight_undo) */
} ds_source_catalog_t;

/**
 * @brief Splits "schema.table" (each part optionally double-quoted, with "" for a quote;
 *        unquoted parts folded to lower case as PostgreSQL does) into its two names.
 * @return false when it is not exactly two non-empty identifiers. *schema and *table are
 *         malloc'ed; the caller frees them.
 */
bool ds_qualified_name_split(const char *qualified, char **schema, char **table) DS_MUST_CHECK;

/**
 * @brief Runs the checks, then prepares the publication: every check (the tables, and the
 *        slot: its plugin, database and owner, free slots, the role's REPLICATION attribute)
 *        comes before anything is created.
 * @param catalog  set to what was learned about each table; free with ds_source_catalog_free.
 * @param config_error  on failure, whether the configuration file is wrong (a table name that
 *                      is not schema-qualified, does not exist or makes no topic name, an
 *                      unparsable conninfo): exit 2 rather than 1.
 * @param slot_held  on failure, whether the only problem is that another session holds the
 *                   slot (every other check passed, nothing was created): a capture of the
 *                   same config then waits as a standby (standby.h).
 */
bool ds_preflight_run(const ds_config_t *config, ds_source_catalog_t **catalog,
                      bool *config_error, bool *slot_held, char *errstr,
                      size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief Drops the publication ds_preflight_run() created, when capture then could not start
 *        (and created no slot, which would need it): nothing is left behind. Does nothing when
 *        the publication was there before.
 */
bool ds_preflight_undo(const ds_config_t *config, ds_source_catalog_t *catalog, char *errstr,
                       size_t errstr_size) DS_MUST_CHECK;

/** @brief Accepts NULL. */
void ds_source_catalog_free(ds_source_catalog_t *catalog);

/** @brief The catalog's columns of schema.table or NULL (a ds_connect_columns_fn; ctx is the
 *         catalog). */
const ds_connect_column_t *ds_source_catalog_columns(void *ctx, const char *schema,
                                                     const char *table, int *ncolumns);

/** @brief The primary key of schema.table or NULL (a ds_primary_key_fn; ctx is the catalog). */
const char *const *ds_source_catalog_primary_key(void *ctx, const char *schema,
                                                 const char *table);

#endif
