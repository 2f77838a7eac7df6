/*
 * mapping.h: declarative mappings from a captured legacy table to new tables.
 *
 * A mapping file (format: mappings/README.md) names one source table and one or more
 * targets. At start every file is loaded and compiled: expressions into evaluation trees,
 * each target into two or three prepared statements whose text is fixed for the life of the
 * process. Per change, ds_mapping_eval() computes, in C, the parameter values of those
 * statements; the apply runtime only executes them. Everything a target write needs beyond
 * its own row (the links that make merges and filter transitions work, deletes of rows no
 * source produces any more) is inside the generated SQL, so the runtime never builds SQL.
 *
 * Row values only ever travel as statement parameters; identifiers are quoted.
 */
#ifndef DUALSYNC_MAPPING_H
#define DUALSYNC_MAPPING_H

#include <jansson.h>

#include "dualsync/buf.h"
#include "dualsync/common.h"
#include "dualsync/value_format.h"

/*
 * The bookkeeping dualsync keeps in every target database (schema "dualsync"), created by
 * the apply runtime at start; the generated statements read and write dualsync.links.
 *   links:   which source row (topic + Kafka key text) produced which target row (target id
 *            + target key as a JSON array text), and what it contributes (vals: the mapped
 *            columns' values as a jsonb object). A target row is deleted (or soft-deleted)
 *            only when its last link goes: that is how merged rows survive a partial delete
 *            and how a row that stops matching a filter removes what it produced. The first
 *            link of a row by (source_topic, source_key) in byte order gives the row its
 *            values; when it goes, the next one's vals are written (mappings/README.md).
 *            copies: how many identical source rows share the link (a table without a primary
 *            key, whose message key is the whole row: mapping_eval.c, "Copies"); the link
 *            goes only with the last one. copy_commit, copy_lsn: source.sequence of the last
 *            change counted, so a change capture sends again is not counted twice.
 *            The text columns compare in byte order (COLLATE "C"): keys are only ever matched
 *            and ordered by bytes, and the index comparisons of a linguistic collation (the
 *            database's default, often en_US.UTF-8 or ICU) cost several times as much. A links
 *            table created before keeps its collation (and works the same, only slower).
 *   offsets: the next Kafka offset to apply per consumer group/topic/partition, written in
 *            the same transaction as the rows (exactly once in effect). generation and owner:
 *            the last claim an apply process made on the partition when it was assigned it
 *            (owner: its apply.instance_id and pid, for people); a batch commits only while
 *            the row still carries its process's claim (consumers/applier.c, "The fence"). These two columns
 *            are added only when missing: ALTER TABLE locks the table even when there is
 *            nothing to add, which would queue every apply process's commits behind one that
 *            is starting.
 *   pending: changes waiting for a parent row (child before parent), retried after batches.
 *   dead_letters: the dead letters apply moved past and no newer change of their source key
 *            superseded yet (target '' when the change could not be mapped at all); `dlq
 *            retry` writes only those (consumers/applier.c, "Dead-letter records").
 *   in_place_rebuilds: tables `dualsync replay --in-place` emptied and is writing again;
 *            apply does not write a database holding one (DS_GATE_SESSION_SQL), even after
 *            the replay died, until the same replay finishes it.
 *   linkless_targets: targets that apply has written without links ("links": false) since
 *            the time given; apply refuses to write such a target with links again, whose rows
 *            would have none, until `dualsync replay` rebuilds it (consumers/applier.c,
 *            check_links_mode).
 */
#define DS_APPLY_SCHEMA_SQL                                                                        \
    "CREATE SCHEMA IF NOT EXISTS dualsync;"                                                        \
    "CREATE TABLE IF NOT EXISTS dualsync.links ("                                                  \
    " target text COLLATE \"C\" NOT NULL, source_topic text COLLATE \"C\" NOT NULL,"             \
    " source_key text COLLATE \"C\" NOT NULL, target_key text COLLATE \"C\" NOT NULL, vals jsonb,"  \
    " PRIMARY KEY (target, source_topic, source_key, target_key));"                                \
    "ALTER TABLE dualsync.links ADD COLUMN IF NOT EXISTS vals jsonb,"                              \
    " ADD COLUMN IF NOT EXISTS copies int NOT NULL DEFAULT 1,"                                     \
    " ADD COLUMN IF NOT EXISTS copy_commit pg_lsn, ADD COLUMN IF NOT EXISTS copy_lsn pg_lsn;"       \
    "CREATE INDEX IF NOT EXISTS links_by_target_key ON dualsync.links (target, target_key);"       \
    "CREATE TABLE IF NOT EXISTS dualsync.offsets ("                                                \
    " group_id text NOT NULL, topic text NOT NULL, partition int NOT NULL,"                        \
    " next_offset bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),"                 \
    " PRIMARY KEY (group_id, topic, partition));"                                                  \
    "DO $ds$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute"                             \
    " WHERE attrelid = 'dualsync.offsets'::regclass AND attname = 'generation') THEN"              \
    " ALTER TABLE dualsync.offsets ADD COLUMN IF NOT EXISTS generation bigint NOT NULL DEFAULT 0," \
    " ADD COLUMN IF NOT EXISTS owner text; END IF; END $ds$;"                                      \
    "DO $ds$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute"                             \
    " WHERE attrelid = 'dualsync.offsets'::regclass AND attname = 'source_lsn') THEN"              \
    " ALTER TABLE dualsync.offsets ADD COLUMN IF NOT EXISTS source_commit_lsn pg_lsn,"             \
    " ADD COLUMN IF NOT EXISTS source_lsn pg_lsn; END IF; END $ds$;"                               \
    "CREATE TABLE IF NOT EXISTS dualsync.pending ("                                                \
    " id bigserial PRIMARY KEY, target text NOT NULL, topic text NOT NULL, partition int NOT NULL,"\
    " kafka_offset bigint NOT NULL, source_key text NOT NULL, value text,"                         \
    " error text NOT NULL, first_seen timestamptz NOT NULL DEFAULT now(),"                         \
    " UNIQUE (target, topic, source_key));"                                                        \
    "CREATE TABLE IF NOT EXISTS dualsync.dead_letters ("                                           \
    " target text NOT NULL, topic text NOT NULL, source_key text NOT NULL,"                        \
    " partition int NOT NULL, kafka_offset bigint NOT NULL, error text NOT NULL,"                  \
    " created_at timestamptz NOT NULL DEFAULT now(),"                                              \
    " PRIMARY KEY (topic, source_key, target));"                                                   \
    "CREATE TABLE IF NOT EXISTS dualsync.in_place_rebuilds ("                                       \
    " table_name text PRIMARY KEY, owner text NOT NULL,"                                           \
    " started_at timestamptz NOT NULL DEFAULT now());"                                             \
    "CREATE TABLE IF NOT EXISTS dualsync.linkless_targets ("                                       \
    " target text PRIMARY KEY, since timestamptz NOT NULL DEFAULT now());"                          \
    DS_KAFKA_PARTITION_SQL DS_SETTLE_SESSION_SQL DS_GATE_SESSION_SQL

/*
 * pg_temp.ds_gate(tables): run by apply at the start of each transaction with the target
 * tables of its database. `dualsync replay --in-place` empties tables and writes them again
 * from offset 0 while live apply must not write them: it holds, on its own session, an
 * exclusive advisory lock per table (waiting for apply's transactions in flight), and records
 * the table in dualsync.in_place_rebuilds, which outlives a crash of the replay (the table is
 * then half rebuilt until the same command runs again). The gate takes the same locks shared
 * for the transaction and checks the table, and fails with lock_not_available (55P03: apply
 * rolls back and tries again later) naming the table and why.
 */
#define DS_GATE_SESSION_SQL                                                                        \
    "CREATE OR REPLACE FUNCTION pg_temp.ds_gate(p_tables text[]) RETURNS void"                     \
    " LANGUAGE plpgsql AS $$"                                                                      \
    " DECLARE t text; o text;"                                                                     \
    " BEGIN"                                                                                       \
    "  FOREACH t IN ARRAY p_tables LOOP"                                                           \
    "   IF NOT pg_try_advisory_xact_lock_shared(hashtext('ds_in_place'), hashtext(t)) THEN"        \
    "    RAISE EXCEPTION USING ERRCODE = '55P03', MESSAGE = format('table %s is being rebuilt'"    \
    "     || ' in place by `dualsync replay --in-place`: apply waits for it to finish', t);"       \
    "   END IF;"                                                                                   \
    "  END LOOP;"                                                                                  \
    "  SELECT r.table_name, r.owner INTO t, o FROM dualsync.in_place_rebuilds r"                    \
    "   WHERE r.table_name = ANY (p_tables) LIMIT 1;"                                              \
    "  IF FOUND THEN"                                                                              \
    "   RAISE EXCEPTION USING ERRCODE = '55P03', MESSAGE = format('table %s is half rebuilt by'"   \
    "    || ' an interrupted `dualsync replay --in-place` (%s): apply waits until the same'"       \
    "    || ' command runs again and finishes it', t, o);"                                         \
    "  END IF;"                                                                                    \
    " END $$;"

/*
 * What a session that runs the mappings' statements needs for settling (mapping_sql.c,
 * "Settling"): pg_temp.ds_touched, where the statements record the target keys they linked
 * or unlinked (emptied at every commit), and pg_temp.ds_lock_touched(target), which locks
 * them for the transaction in key order, or the whole target past 256 keys, so that no
 * transaction holds more than a few hundred locks (the server's lock table is shared and
 * sized by max_locks_per_transaction). Session objects: every connection creates its own.
 * (No "dualsync" in the text: `dualsync replay` renames that schema in this SQL.)
 */
#define DS_SETTLE_SESSION_SQL                                                                      \
    "CREATE TEMP TABLE IF NOT EXISTS ds_touched (target text COLLATE \"C\" NOT NULL,"             \
    " target_key text COLLATE \"C\" NOT NULL) ON COMMIT DELETE ROWS;"                              \
    "CREATE OR REPLACE FUNCTION pg_temp.ds_lock_touched(p_target text) RETURNS bigint"             \
    " LANGUAGE plpgsql AS $$"                                                                      \
    " DECLARE n bigint; k text;"                                                                   \
    " BEGIN"                                                                                       \
    "  SELECT count(DISTINCT target_key) INTO n FROM pg_temp.ds_touched WHERE target = p_target;" \
    "  IF n = 0 THEN RETURN 0; END IF;"                                                            \
    "  IF n > 256 THEN"                                                                            \
    "   PERFORM pg_advisory_xact_lock(hashtext('ds_links'), hashtext(p_target)); RETURN n;"        \
    "  END IF;"                                                                                    \
    "  PERFORM pg_advisory_xact_lock_shared(hashtext('ds_links'), hashtext(p_target));"            \
    "  FOR k IN SELECT DISTINCT target_key COLLATE \"C\" FROM pg_temp.ds_touched"                  \
    "   WHERE target = p_target ORDER BY 1 LOOP"                                                   \
    "   PERFORM pg_advisory_xact_lock(hashtext(p_target), hashtext(k));"                           \
    "  END LOOP;"                                                                                  \
    "  RETURN n;"                                                                                  \
    " END $$;"

/*
 * dualsync.kafka_partition(key, partitions): the partition Kafka's default partitioner (the
 * Java client's murmur2, which capture uses) gives a message key, so that a truncate sent to
 * every partition of a topic removes, on each, the links of the keys that partition carries
 * (mapping_sql.c, truncate). 32-bit arithmetic in bigint: a product is split so that it never
 * overflows, then masked to 32 bits. Created once (a CREATE OR REPLACE at every start would
 * race with another apply process starting at the same moment).
 */
#define DS_KAFKA_PARTITION_SQL                                                                     \
    "DO $do$ BEGIN"                                                                                \
    " IF to_regprocedure('dualsync.kafka_partition(text,integer)') IS NULL THEN"                   \
    " CREATE FUNCTION dualsync.mul32(a bigint, b bigint) RETURNS bigint"                           \
    "  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS"                                             \
    "  $$ SELECT (a * (b & 65535) + (((a * (b >> 16)) & 65535) << 16)) & 4294967295 $$;"           \
    " CREATE FUNCTION dualsync.kafka_partition(key text, partitions int)"                          \
    "  RETURNS int LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$"                          \
    "  DECLARE d bytea := convert_to(key, 'UTF8'); n int := length(d);"                            \
    "   m bigint := 1540483477; h bigint; k bigint; i int := 0;"                                   \
    "  BEGIN"                                                                                      \
    "   h := (2538058380 # n) & 4294967295;"                                                       \
    "   WHILE i + 4 <= n LOOP"                                                                     \
    "    k := get_byte(d, i)::bigint | (get_byte(d, i + 1)::bigint << 8)"                          \
    "         | (get_byte(d, i + 2)::bigint << 16) | (get_byte(d, i + 3)::bigint << 24);"          \
    "    k := dualsync.mul32(k, m); k := k # (k >> 24); k := dualsync.mul32(k, m);"                \
    "    h := dualsync.mul32(h, m) # k; i := i + 4;"                                               \
    "   END LOOP;"                                                                                 \
    "   IF n - i = 3 THEN h := h # (get_byte(d, i + 2)::bigint << 16); END IF;"                    \
    "   IF n - i >= 2 THEN h := h # (get_byte(d, i + 1)::bigint << 8); END IF;"                    \
    "   IF n - i >= 1 THEN h := dualsync.mul32(h # get_byte(d, i)::bigint, m); END IF;"            \
    "   h := h # (h >> 13); h := dualsync.mul32(h, m); h := h # (h >> 15);"                        \
    "   RETURN ((h & 2147483647) % partitions)::int;"                                              \
    "  END $$;"                                                                                    \
    " END IF; END $do$;"

typedef struct ds_mapping_set ds_mapping_set_t;

/*
 * How the runtime executes the statements of a ds_target_t (consumers/mapping/mapping_sql.c writes
 * them; tests/golden/mapping/ shows them in full):
 *
 *   - Parameters are text-format values (PQexecPrepared/PQsendQueryPrepared with paramTypes,
 *     paramLengths and paramFormats NULL); the statements carry the casts PostgreSQL needs.
 *   - write_sql returns exactly one row with one column, "applied" (boolean).
 *       applied = true:  the row was written (or, in place, there was no row to update).
 *       applied = false: a "required" lookup found no row, so NOTHING was written and no link
 *                        changed; park the change in dualsync.pending and retry it later
 *                        (a child that arrived before its parent).
 *     Targets without required lookups always answer true.
 *   - unlink_sql and truncate_sql return no rows (command status only).
 *   - Copies: write_sql's parameters $copy_param..$copy_param+2 and unlink_sql's $4..$6 say how
 *     a change counts the identical source rows sharing a link (mapping_eval.c, "Copies"):
 *     the mode ('c' a create counted when newer than the last counted change, 'r' a read
 *     always counted, 'd' a delete, NULL not counted: every source with a real key), then
 *     source.sequence's commit LSN and LSN (pg_lsn text, NULL when unknown).
 *   - Upsert, unlink and truncate statements start with the same parameters: $1 the target
 *     id, $2 the source topic, $3 the message key text (truncate: $3 the partition it was
 *     read from and $4 the topic's partition count, both NULL for a topic of one partition;
 *     mapping_sql.c).
 *   - A target's form without links (ds_target_t.linkless) takes write_sql's parameters for
 *     its upsert and unlink alike (an unlink sets the target id, topic, source key and key
 *     columns, the rest NULL), and truncate_sql's for its truncate; it reads no links.
 *   - Each statement reads dualsync.links and decides in one snapshot whether a target row
 *     lost its last link. Changes to one target database are expected to be applied by one
 *     connection at a time; a runtime that writes one target from several connections at
 *     once must serialize them per target (e.g. pg_advisory_xact_lock(hashtext(target id))
 *     taken before the statement, in the same transaction), or two transactions dropping the
 *     last two links of a merged row could each see the other's link and both keep the row.
 *   - Key text: a target row's key is recorded as json_build_array(key columns::text)::text,
 *     so key columns should be of types whose text form is stable (text, integers, uuid,
 *     dates); a timestamptz key would depend on the session's TimeZone.
 */

/* One compiled target of one mapping. Fields are read-only for the runtime. */
typedef struct ds_target {
    const char *id;           /* "<file stem>/<target name>", names the target in messages,
                               * dead letters and dualsync.pending */
    const char *links_id;     /* the statements' $1, stored in dualsync.links: the id, or the
                               * "merge" name that targets of several files share (one set of
                               * contributors per row, whichever file they come from) */
    const char *file;         /* the mapping file, for messages */
    const char *connection;   /* name of the config's "targets" entry (a database) */
    const char *table;        /* quoted, qualified table name, for messages */
    bool in_place;            /* mode "update": only UPDATE the mapped columns of an
                               * existing row; no links, never insert or delete */
    bool fan_out;             /* in place with "fan_out": true: the key need not be unique,
                               * every row it matches is updated (children of a parent) */
    const char *write_sql;    /* upsert (or in-place update) statement, $1..$write_nparams */
    int write_nparams;
    const char *unlink_sql;   /* "this source row no longer produces a row here": drop its
                               * links, then apply on_delete to target rows left without
                               * any; NULL for in-place targets */
    int unlink_nparams;
    const char *truncate_sql; /* every link from the source topic goes (TRUNCATE); NULL for
                               * in-place targets */
    int truncate_nparams;
    const char *batch_body;   /* the set-based form of write_sql and unlink_sql for many source
                               * rows at once, without its input (ds_mapping_batch_statement
                               * completes it); NULL when the target has none (a key column
                               * computed by the database) */
    const char *settle_sql;   /* $1 the target id (links_id): makes the rows of the keys the
                               * transaction's statements linked or unlinked what their links
                               * give, after pg_temp.ds_lock_touched($1) locked them; run before
                               * COMMIT (mapping_sql.c, "Settling"); NULL when the target needs
                               * none (in place, or only key columns with on_delete "ignore") */
    const char *const *key_source_columns; /* the source columns the key is an injective
                               * function of (plain columns, uuid5 of columns): when they are
                               * the message key's fields, a target row has one source row and
                               * settling it is needless; NULL when the key is anything else or
                               * the target shares a "merge" name */
    int nkey_source_columns;
    const int *keep_params;   /* the write_sql parameters that are keep flags ("true": keep the
                               * stored value of an unchanged TOASTed column) */
    int nkeep_params;
    int copy_param;           /* the write_sql parameter of the copy mode (unlink_sql's is $4;
                               * see "Copies" above); 0 for in-place targets. A write whose mode
                               * is not NULL has no batch form */
    const struct ds_target *linkless; /* the same target written without dualsync.links, for
                               * the changes whose message key is exactly key_source_columns
                               * (mapping_sql.c, "Targets without links"); NULL when the target
                               * always keeps links */
    bool keeps_no_links;      /* this is such a form: its upsert, unlink and batch statements
                               * take write_sql's parameters (an unlink sets the key columns'
                               * and leaves the rest NULL), and none reads or writes links */
} ds_target_t;

/** @brief Whether @p form is target @p t itself or its form without links. */
static inline bool ds_target_is(const ds_target_t *form, const ds_target_t *t)
{
    return form == t || (t && form && form == t->linkless);
}

typedef enum ds_write_kind {
    DS_WRITE_UPSERT,   /* run target->write_sql (an upsert, or the in-place update) */
    DS_WRITE_UNLINK,   /* run target->unlink_sql */
    DS_WRITE_TRUNCATE, /* run target->truncate_sql */
} ds_write_kind_t;

/* One statement execution a change asks for. */
typedef struct ds_target_write {
    const ds_target_t *target;
    ds_write_kind_t kind;
    int nparams;
    const char *const *params; /* text-format values, NULL for SQL NULL; borrowed from the
                                * set, valid until the next ds_mapping_eval() */
    bool sole_source;          /* the change's key has exactly the target's key_source_columns:
                                * the row it writes has no other source row, and needs no
                                * settling (mapping_sql.c, "Settling") */
} ds_target_write_t;

/* A target whose values one change cannot give (an unmapped enum value, an unreadable time):
 * it writes nothing for that change; the change's other targets are written. */
typedef struct ds_target_reject {
    const ds_target_t *target;
    const char *error; /* names the file, the target, the column and the value; borrowed from
                        * the set, valid until the next ds_mapping_eval() */
} ds_target_reject_t;

/** @brief What one change maps to: writes in target order, and the targets it rejects.
 *         Borrowed from the set. */
typedef struct ds_write_list {
    int nwrites;
    const ds_target_write_t *writes;
    int nrejects;
    const ds_target_reject_t *rejects;
} ds_write_list_t;

/*
 * Batches. Applying a batch row by row costs a statement per change and target; the batch
 * statement writes every change of a batch to one target in one set-based statement:
 *
 *   - Parameters: $1 the target id, $2 the source topic (as in write_sql), then one array per
 *     write_sql parameter $3..$n (same numbers: $k holds every row's value of write_sql's $k),
 *     then $n+1 bigint[] "ord" (the row's number in the batch) and $n+2 text[] "op" ('u': the
 *     change's write is write_sql, 'd': it is unlink_sql, whose parameters are the first
 *     three; its other array entries are NULL). Arrays are text-format array literals.
 *     In-place targets (whose write_sql has no target id, topic or source key) take arrays
 *     for every parameter $1..$n, then ord and op (always 'u').
 *   - The types of the arrays are those PostgreSQL gave write_sql's parameters (the runtime
 *     learns them from the prepared write_sql: PQdescribePrepared).
 *   - The runtime sends at most one row per source key in one statement, never a truncate,
 *     never a row whose keep flag is "true" and never a row whose copy mode is not NULL (those
 *     take write_sql or unlink_sql, one by one). A batch
 *     where a source key comes back is sent as several statements, in message order, so each
 *     change of a key is written (a trigger on the target sees each one).
 *   - Rows of different source keys giving the same target key (a merge) are written once,
 *     with the values of the first of them in source key order, and only if no link from
 *     outside the batch comes before it (the merge rule, as row by row).
 *   - The statement returns one row, "ord", per 'u' row that was NOT applied because a
 *     required lookup found no row (applied = false in write_sql's terms): nothing was
 *     written and no link changed for those. Every other row was applied.
 */

/**
 * @brief The complete batch statement of @p t (NULL when t->batch_body is NULL): its input
 *        (unnest of the arrays, typed by @p param_types, the SQL type names of write_sql's
 *        parameters $1..$n as format_type() gives them) and its body. Caller frees.
 */
char *ds_mapping_batch_statement(const ds_target_t *t, const char *const *param_types);

/**
 * @brief Whether a write of @p kind with @p params (@p nparams of them) counts copies of
 *        identical source rows (its copy mode is set), so that it has no batch form.
 */
bool ds_mapping_write_counts_copies(const ds_target_t *t, ds_write_kind_t kind,
                                    const char *const *params, int nparams);

/**
 * @brief Whether target @p reader's statements read the table target @p written writes (a
 *        lookup): a runtime writing targets in turn writes @p written first.
 */
bool ds_mapping_target_reads(const ds_mapping_set_t *set, int reader, int written);

/**
 * @brief What the compiler made of each target of @p set, in words, appended to @p out: its
 *        table and key, whether it keeps links (and why), how batches write it; with @p sql
 *        the statements too. For `dualsync explain`.
 */
void ds_mapping_set_explain(const ds_mapping_set_t *set, bool sql, ds_buf_t *out);

/**
 * @brief Loads and compiles mapping files.
 *
 * @param paths         mapping files (JSON).
 * @param topic_prefix  capture's topic prefix: a mapping of source "public.users" reads
 *                      topic "<topic_prefix>.public.users".
 * @param connections   names of the config's "targets" entries, NULL-terminated; a target
 *                      naming another connection is an error.
 * @return false with errstr holding EVERY problem found, one per line, each as
 *         "FILE:LINE:COL: JSON.PATH: what is wrong" (all files are checked before failing).
 */
bool ds_mapping_set_load(const char *const *paths, int npaths, const char *topic_prefix,
                         const char *const *connections, ds_mapping_set_t **set, char *errstr,
                         size_t errstr_size) DS_MUST_CHECK;

/** @brief Accepts NULL. */
void ds_mapping_set_free(ds_mapping_set_t *set);

/*
 * The text capture writes for an unchanged TOASTed value (capture.unavailable_value_placeholder
 * in the config). Default "__debezium_unavailable_value".
 */
#define DS_MAPPING_UNAVAILABLE_VALUE "__debezium_unavailable_value"

/**
 * @brief Sets the placeholder text of unchanged TOASTed values (copied). In an update, a
 *        target column computed from such a value keeps its stored value, and a filter or a
 *        target key that reads one makes ds_mapping_eval() fail; in a create or a read (which
 *        always carry the whole row) the text is data like any other. Returns false only
 *        when out of memory.
 */
bool ds_mapping_set_unavailable_value(ds_mapping_set_t *set, const char *placeholder) DS_MUST_CHECK;

/**
 * @brief Declares the value settings the topics were written under (the config's
 *        "debezium" object and capture.message_format; copied): ds_mapping_eval() then reads
 *        their values (include/dualsync/debezium_decode.h). Without it, dualsync's classic
 *        values, and messages in the schema envelope are read by their schema. Schemaless
 *        topics under settings whose values need the column type are read by the types of
 *        the source tables, read once here through @p source_conninfo (NULL: refused).
 * @return false with a configuration error when apply cannot read values so written.
 */
bool ds_mapping_set_value_format(ds_mapping_set_t *set, const ds_value_format_t *format,
                                 const char *source_conninfo, char *errstr,
                                 size_t errstr_size) DS_MUST_CHECK;

/** @brief The distinct source topics the set reads, for the consumer's subscription. */
int ds_mapping_set_ntopics(const ds_mapping_set_t *set);
const char *ds_mapping_set_topic(const ds_mapping_set_t *set, int i);

/** @brief All compiled targets, in file order. */
int ds_mapping_set_ntargets(const ds_mapping_set_t *set);
const ds_target_t *ds_mapping_set_target(const ds_mapping_set_t *set, int i);

/**
 * @brief Checks every target against its database's catalog: table exists, every mapped
 *        column exists, the key columns carry a unique index (or primary key), types of
 *        constants and casts fit. Collects all problems (with file and JSON path) into
 *        errstr, one per line.
 * @param conn  a libpq PGconn * for @p connection (void * keeps libpq out of this header).
 */
bool ds_mapping_set_check_catalog(const ds_mapping_set_t *set, const char *connection,
                                  void *conn, char *errstr, size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief Maps one Debezium change message to target writes.
 *
 * @param topic  the message's topic; @p key the message key as JSON text (the source key
 *               recorded in links); @p value the parsed value (NULL for a tombstone, which
 *               maps to nothing).
 * Targets are evaluated one by one: a target whose values cannot be computed (an unmapped
 * enum value, an unreadable time, a filter or key reading an unchanged TOASTed value) is
 * listed in writes->rejects with its error and writes nothing, while the change's other
 * targets are written. The runtime sends each rejected target to the dead-letter topic on
 * its own (a dead letter naming that target, which `dlq retry` re-drives alone).
 *
 * @return false with errstr (naming the mapping file, the target column and the value)
 *         when nothing of the change can be mapped: a malformed message, or every target it
 *         maps to rejected (errstr is then the first one's error, and writes is empty). The
 *         runtime sends such a change to the dead-letter topic whole.
 */
bool ds_mapping_eval(ds_mapping_set_t *set, const char *topic, const char *key, size_t key_len,
                     const json_t *value, ds_write_list_t *writes, char *errstr,
                     size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief Why @p write (from the last ds_mapping_eval()) waits for a parent: each "required"
 *        lookup of its target that finds no row in @p conn (a libpq PGconn * to the target's
 *        database), as 'required lookup of "public"."services" ("code" = 'X9') found no row
 *        (FILE:LINE:COL: $.path)', joined by "; ", appended to @p out. Appends nothing when
 *        every lookup finds its row now (the parent arrived). Runs one query per lookup: for
 *        people reading dualsync.pending, not for the path of a write.
 */
void ds_mapping_explain_wait(const ds_mapping_set_t *set, const ds_target_write_t *write,
                             void *conn, ds_buf_t *out);

/* ---------------------------------------------------------------------------------------------
 * For tools that rebuild targets from the legacy tables (dualsync verify): what a target
 * looks like, and the same statements aimed at other tables.
 * ------------------------------------------------------------------------------------------- */

/* The shape of one target. Strings are borrowed from the set. */
typedef struct ds_target_shape {
    const char *schema;        /* the target table's schema, unquoted */
    const char *table;         /* the target table, unquoted */
    const char *source_schema; /* the mapping file's source table's schema, unquoted */
    const char *source_table;  /* the source table, unquoted */
    const char *topic;         /* the source topic */
    const char *file;          /* the mapping file */
    int file_index;            /* its index among the set's files (0..ds_mapping_set_nfiles-1) */
    int ncolumns;              /* mapped columns (ds_mapping_target_column) */
    int nkey;                  /* key columns (ds_mapping_target_key) */
    bool on_delete_ignore;     /* on_delete "ignore": rows no source produces are kept */
    const char *soft_column;   /* on_delete soft_delete: the column, else NULL */
} ds_target_shape_t;

/** @brief Describes target @p i (0..ds_mapping_set_ntargets-1). */
void ds_mapping_target_describe(const ds_mapping_set_t *set, int i, ds_target_shape_t *shape);

/** @brief Mapped column @p column of target @p i (unquoted); *is_key (may be NULL) says
 *         whether it is a key column. */
const char *ds_mapping_target_column(const ds_mapping_set_t *set, int i, int column,
                                     bool *is_key);

/** @brief Key column @p k of target @p i (unquoted), in key order. */
const char *ds_mapping_target_key(const ds_mapping_set_t *set, int i, int k);

/** @brief The number of mapping files loaded. */
int ds_mapping_set_nfiles(const ds_mapping_set_t *set);

/**
 * @brief Says which SQL name a statement of @p target uses for the table @p schema.@p table
 *        (the target's own table, or a lookup's): a complete, quoted SQL name, or NULL to keep
 *        "schema"."table". The text is copied at once.
 */
typedef const char *(*ds_mapping_table_name_fn)(void *arg, const ds_target_t *target,
                                                const char *schema, const char *table);

/**
 * @brief Compiles every target's statements again, naming tables through @p fn and the links
 *        table @p links (a SQL name; NULL keeps dualsync.links). The parameter plan does not
 *        change, so ds_mapping_eval() fills them as before. The previous statement texts are
 *        freed: pointers taken from ds_target_t before the call are invalid after it.
 */
void ds_mapping_set_rename_tables(ds_mapping_set_t *set, ds_mapping_table_name_fn fn, void *arg,
                                  const char *links);

#endif
