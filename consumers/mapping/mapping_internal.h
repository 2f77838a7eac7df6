/*
 * mapping_internal.h: what the mapping sources share (not an interface for other modules).
 *
 *   mapping_load.c     reads and validates mapping files into the structures below
 *   mapping_expr.c     evaluates expressions and filters in C (and the functions they call)
 *   mapping_sql.c      compiles each target into its statements and parameter plan
 *   mapping_eval.c     maps one Debezium change to target writes (ds_mapping_eval)
 *   mapping_catalog.c  checks targets against a database catalog
 *
 * Allocation failures abort, as ds_buf's do: the loader and the evaluator have no useful way
 * to go on without memory, and the Kafka offset has not moved past the change.
 */
#ifndef DUALSYNC_MAPPING_INTERNAL_H
#define DUALSYNC_MAPPING_INTERNAL_H

#include <jansson.h>

#include "dualsync/buf.h"
#include "dualsync/debezium_decode.h"
#include "dualsync/mapping.h"

/* ---------------------------------------------------------------------------------------------
 * Memory
 * ------------------------------------------------------------------------------------------- */

void *ds_mapping_xmalloc(size_t size);
void *ds_mapping_xcalloc(size_t n, size_t size);
void *ds_mapping_xrealloc(void *p, size_t size);
char *ds_mapping_xstrdup(const char *s);
char *ds_mapping_xasprintf(const char *fmt, ...) DS_PRINTF(1, 2);

/*
 * Scratch memory for one change: values computed while evaluating live here until the next
 * ds_mapping_eval(). Blocks are kept across resets, so a steady stream of changes allocates
 * nothing once the blocks are large enough.
 */
typedef struct ds_mapping_block ds_mapping_block_t;
typedef struct ds_mapping_arena {
    ds_mapping_block_t *first;   /* all blocks, in allocation order */
    ds_mapping_block_t *current; /* the block allocations are taken from */
} ds_mapping_arena_t;

void *ds_mapping_arena_alloc(ds_mapping_arena_t *arena, size_t size);
void ds_mapping_arena_reset(ds_mapping_arena_t *arena);
void ds_mapping_arena_free(ds_mapping_arena_t *arena);

/* ---------------------------------------------------------------------------------------------
 * Expressions and filters
 * ------------------------------------------------------------------------------------------- */

typedef enum ds_mapping_expr_kind {
    EXPR_COLUMN,          /* "$col" */
    EXPR_CONST,           /* "text", 42, true, null, {"const": X}, "$$text" */
    EXPR_LOWER,           /* {"lower": e} */
    EXPR_UPPER,           /* {"upper": e} */
    EXPR_TRIM,            /* {"trim": e} */
    EXPR_CONCAT,          /* {"concat": [e, ...]} */
    EXPR_COALESCE,        /* {"coalesce": [e, ...]} */
    EXPR_MAP,             /* {"map": {"value": e, "cases": {...}, "default": d}} */
    EXPR_UUID5,           /* {"uuid5": {"namespace": "UUID", "name": [e, ...]}} */
    EXPR_NORMALIZE_PHONE, /* {"normalize_phone": e} */
    EXPR_PARSE_PERIOD,    /* {"parse_period": e} */
    EXPR_CAST,            /* {"cast": [e, "type"]}: by the database */
    EXPR_LOOKUP,          /* {"lookup": {...}}: by the database */
    EXPR_SQL,             /* {"sql": "...", "args": [...]}: by the database */
} ds_mapping_expr_kind_t;

typedef struct ds_mapping_expr ds_mapping_expr_t;
struct ds_mapping_expr {
    ds_mapping_expr_kind_t kind;     /* which expression */
    bool in_db;                      /* this node or one below is computed by the database, so the
                                      * node becomes SQL text rather than a parameter */
    bool has_refs;                   /* this node or one below reads a source column */
    char *text;                      /* CONST: the value (NULL for SQL NULL); COLUMN: the source
                                      * column; CAST: the type as written; SQL: the SQL as written */
    size_t text_len;                 /* CONST: bytes of text */
    ds_mapping_expr_t **args;        /* operands: the one argument of lower, upper, trim,
                                      * normalize_phone, parse_period and cast; the parts of concat
                                      * and coalesce; the names of uuid5; the value of map; the
                                      * match values of lookup; the args of sql */
    int nargs;                       /* entries in args */
    char **case_keys;                /* MAP: the case labels */
    ds_mapping_expr_t **case_values; /* MAP: their values */
    int ncases;                      /* MAP: entries in both */
    ds_mapping_expr_t *map_default;  /* MAP: the default, or NULL (unmapped values rejected) */
    uint8_t ns[16];                  /* UUID5: the namespace */
    char *lookup_schema;             /* LOOKUP: the table's schema, unquoted */
    char *lookup_table;              /* LOOKUP: the table, unquoted */
    char *lookup_column;             /* LOOKUP: the column returned, unquoted */
    char **match_columns;            /* LOOKUP: the columns compared with args[i] */
    bool required;                   /* LOOKUP: no row found means the write waits */
    char *where;                     /* "FILE:LINE:COL: $.path" of this node, for messages */
    char *table_where;               /* LOOKUP: of "table"; CAST: of the type string */
    char *column_where;              /* LOOKUP: of "column" */
    char **match_where;              /* LOOKUP: of each match key */

    /* Filled by the compiler (mapping_sql.c). */
    int param;    /* a C-evaluated node read by the statement: its parameter number, else 0 */
    char *sql;    /* the node's SQL fragment in the write statement */
    char *exists; /* LOOKUP with required: the condition "a row was found, or a match value
                   * is NULL" */
};

typedef enum ds_mapping_filter_kind {
    FILTER_EQ,
    FILTER_NE,
    FILTER_IN,
    FILTER_IS_NULL,
    FILTER_NOT_NULL,
    FILTER_AND,
    FILTER_OR,
    FILTER_NOT,
} ds_mapping_filter_kind_t;

typedef struct ds_mapping_filter ds_mapping_filter_t;
struct ds_mapping_filter {
    ds_mapping_filter_kind_t kind; /* which condition */
    ds_mapping_expr_t *a, *b;      /* EQ, NE: both operands; IN, IS_NULL, NOT_NULL: a */
    char **in_values;              /* IN: the constants as text, NULL for null */
    int nin;                       /* IN: entries */
    ds_mapping_filter_t **subs;    /* AND, OR: the conditions; NOT: subs[0] */
    int nsubs;                     /* AND, OR, NOT: entries */
};

/* A computed value: p == NULL is SQL NULL (distinct from the empty string). */
typedef struct ds_mapping_value {
    const char *p; /* the bytes; not necessarily NUL-terminated (trim returns a middle part) */
    size_t len;    /* their number */
} ds_mapping_value_t;

/* What evaluating one expression needs, and what to name in a message. */
typedef struct ds_mapping_eval_ctx {
    ds_mapping_arena_t *arena; /* where computed values go */
    const json_t *row;         /* the source row (after, or before for deletes) */
    const char *placeholder;   /* capture's text for unchanged TOASTed values */
    const char *file;          /* the mapping file, for messages */
    const char *target;        /* the target id, for messages; NULL for the file's filter */
    const char *column;        /* the target column, for messages; NULL for a filter */
    char *errstr;              /* the caller's */
    size_t errstr_size;        /* its size */
} ds_mapping_eval_ctx_t;

/** @brief Evaluates a C-evaluated expression (in_db false) on ctx->row. */
bool ds_mapping_expr_eval(const ds_mapping_expr_t *e, ds_mapping_eval_ctx_t *ctx,
                          ds_mapping_value_t *out) DS_MUST_CHECK;

/** @brief Evaluates a filter on ctx->row. */
bool ds_mapping_filter_eval(const ds_mapping_filter_t *f, ds_mapping_eval_ctx_t *ctx,
                            bool *match) DS_MUST_CHECK;

/** @brief A NUL-terminated copy of the value in the arena; NULL for SQL NULL. */
const char *ds_mapping_value_copy(ds_mapping_arena_t *arena, ds_mapping_value_t v);

/**
 * @brief A source value as text: strings as they are, integers in decimal, reals in the
 *        shortest form that reads back to the same double, booleans "true"/"false", objects
 *        and arrays as compact JSON, null as SQL NULL.
 */
void ds_mapping_json_text(const json_t *json, ds_mapping_arena_t *arena, ds_mapping_value_t *out);

/** @brief The shortest "%.Ng" text of @p d that reads back as @p d. */
void ds_mapping_format_real(double d, char out[32]);

void ds_mapping_expr_free(ds_mapping_expr_t *e);
void ds_mapping_filter_free(ds_mapping_filter_t *f);

/* The functions behind the expressions, exposed for the unit tests. */

/** @brief SHA-1 (RFC 3174) of @p len bytes. */
void ds_mapping_sha1(const void *data, size_t len, uint8_t digest[20]);

/** @brief Parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (either case). */
bool ds_mapping_parse_uuid(const char *text, uint8_t out[16]) DS_MUST_CHECK;

/** @brief RFC 4122 version-5 UUID of @p ns and @p name, lowercase with hyphens. */
void ds_mapping_uuid5(const uint8_t ns[16], const char *name, size_t len, char out[37]);

/**
 * @brief Makes (in the arena) the JSON array text uuid5 hashes: the values as strings (NULL as
 * null), no spaces, only '"', '\\' and control characters escaped (\b \f \n \r \t, others \u00xx) —
 * the same text as Python's json.dumps(names, ensure_ascii=False, separators=(",", ":")).
 */
size_t ds_mapping_uuid5_name(const ds_mapping_value_t *values, int n, ds_mapping_arena_t *arena,
                             const char **out);

/**
 * @brief Keeps the digits; a leading country code 82 becomes the trunk prefix 0.
 * @return the number of digits written to @p out (which holds at least @p len bytes); 0 when
 *         the text has no digit.
 */
size_t ds_mapping_normalize_phone(const char *text, size_t len, char *out);

/** @brief "MORNING" or "AFTERNOON" for a preferred-time text, NULL when it is none of the
 *         accepted forms (mappings/README.md). */
const char *ds_mapping_parse_period(const char *text, size_t len);

/* ---------------------------------------------------------------------------------------------
 * Files, targets, the set
 * ------------------------------------------------------------------------------------------- */

typedef enum ds_mapping_on_delete {
    ON_DELETE_DELETE, /* delete the target row */
    ON_DELETE_IGNORE, /* keep it */
    ON_DELETE_SOFT,   /* set soft_column = now() */
} ds_mapping_on_delete_t;

typedef struct ds_mapping_column {
    char *name;              /* the target column, as written */
    ds_mapping_expr_t *expr; /* its value */
    bool is_key;             /* listed in "key" */
    char **refs;             /* the source columns it reads (each once) */
    int nrefs;               /* entries in refs */
    int keep_param;          /* parameter saying "keep the stored value" (an unchanged TOASTed
                              * source value); 0 when the column reads no source column */
    char *where;             /* "FILE:LINE:COL: $.targets[i].columns.NAME" */
} ds_mapping_column_t;

/* What one parameter of a target's write statement holds. */
typedef enum ds_mapping_param_kind {
    PARAM_TARGET_ID,   /* the target id */
    PARAM_TOPIC,       /* the source topic */
    PARAM_SOURCE_KEY,  /* the message key text */
    PARAM_VALUE,       /* a C-evaluated expression's value */
    PARAM_KEEP,        /* "true" when the column keeps its stored value, else "false" */
    PARAM_COPY_MODE,   /* how the change counts copies: 'c', 'r' or NULL (mapping_eval.c) */
    PARAM_COPY_COMMIT, /* source.sequence's commit LSN of a counted create, else NULL */
    PARAM_COPY_LSN,    /* source.lsn of a counted create, else NULL */
} ds_mapping_param_kind_t;

typedef struct ds_mapping_param {
    ds_mapping_param_kind_t kind;  /* what it holds */
    const ds_mapping_expr_t *expr; /* PARAM_VALUE: the expression */
    int column;                    /* PARAM_VALUE, PARAM_KEEP: index in the target's columns */
} ds_mapping_param_t;

typedef struct ds_mapping_file ds_mapping_file_t;

typedef struct ds_mapping_target {
    ds_target_t pub;                  /* what the runtime reads (ids, statements) */
    ds_mapping_file_t *file;          /* the file it comes from */
    int index;                        /* its index in the file's "targets" */
    char *name;                       /* unique in the file */
    char *schema;                     /* the target table's schema, unquoted */
    char *table;                      /* the target table, unquoted */
    ds_mapping_column_t *columns;     /* in file order */
    int ncolumns;                     /* entries in columns */
    int *key;                         /* indexes in columns of the key columns, in key order */
    int nkey;                         /* entries in key */
    ds_mapping_on_delete_t on_delete; /* what happens to rows left without links */
    char *soft_column;                /* ON_DELETE_SOFT: the column set to now() */
    ds_mapping_filter_t *filter;      /* the target's own filter, or NULL */
    ds_mapping_param_t *params;       /* the write statement's parameters, $1 first */
    const char **values;              /* their values for the current change */
    bool *keep;                       /* per column: keep the stored value (current change) */
    char *where;                      /* "FILE:LINE:COL: $.targets[i]" */
    char *table_where;                /* of "table" */
    char *key_where;                  /* of "key" */
    char *soft_where;                 /* of the soft_delete column */
    char *connection_name;            /* owned copy behind pub.connection */
    char *merge;                      /* "merge": targets of one name feed the same rows and
                                       * share their links (pub.links_id); NULL when absent */
    char *merge_where;                /* of "merge" */
    char *batch_body_plain;           /* pub.batch_body with key texts made from the key values
                                       * directly, for key types whose text form a column's
                                       * typmod cannot change (ds_mapping_batch_statement) */
    struct ds_mapping_target *linkless_form; /* owned: pub.linkless, a copy of this target
                                       * sharing everything but its statements */
    bool links_off;                   /* "links": false: write it without links where
                                       * the source key allows (mapping_sql.c) */
    char *links_where;                /* of "links" */
} ds_mapping_target_t;

struct ds_mapping_file {
    char *path;                  /* as given */
    char *stem;                  /* the file name without directory and extension */
    char *source_schema;         /* the source table's schema, unquoted */
    char *source_table;          /* the source table, unquoted */
    char *topic;                 /* <topic_prefix>.<schema>.<table> */
    ds_mapping_filter_t *filter; /* the file's filter, or NULL */
    int first_target;            /* index of its first target in the set */
    int ntargets;                /* its targets */
};

struct ds_mapping_set {
    ds_mapping_file_t *files;     /* in load order */
    int nfiles;                   /* entries in files */
    ds_mapping_target_t *targets; /* all targets, file after file */
    int ntargets;                 /* entries in targets */
    char **topics;                /* distinct source topics */
    int ntopics;                  /* entries in topics */
    int **topic_files;            /* per topic: indexes of the files reading it, -1 ended */
    char *placeholder;            /* unchanged-TOAST text */
    ds_mapping_arena_t arena;     /* values of the current change */
    ds_target_write_t *writes;    /* the current change's writes (ntargets at most) */
    ds_target_reject_t *rejects;  /* the current change's rejected targets (ntargets at most) */
    const char *copy_mode;        /* the current change's copy parameters (mapping_eval.c, */
    const char *copy_commit;      /* "Copies"): all NULL unless its source row is keyed by */
    const char *copy_lsn;         /* every column; in the arena */
    ds_debezium_decoder_t *decoder; /* reads the topics' value settings (debezium_decode.c) */
};

/** @brief Why target @p t keeps links (mapping_explain.c): a phrase after "since". */
const char *ds_mapping_links_reason(const ds_mapping_target_t *t);

/** @brief Frees t->linkless_form (mapping_sql.c), if any. */
void ds_mapping_free_linkless_form(ds_mapping_target_t *t);

/** @brief Compiles one target's statements and parameter plan (after a successful load). */
void ds_mapping_compile_target(ds_mapping_target_t *t);

/** @brief Appends "schema"."table". */
void ds_mapping_quote_qualified(ds_buf_t *buf, const char *schema, const char *table);

/** @brief Appends @p text as a SQL string literal ('...' with quotes doubled; E'...' with
 *         backslashes doubled too when it holds a backslash, as PQescapeLiteral does). */
void ds_mapping_quote_literal(ds_buf_t *buf, const char *text);

/**
 * @brief Rewrites the $1..$n of an {"sql": ...} text through @p map (map[k-1] is the text
 *        that replaces $k), leaving quoted strings, quoted identifiers, dollar-quoted strings
 *        and comments alone. With @p map NULL, only checks.
 * @return false with a message when the text holds a ';', unbalanced parentheses, an
 *         unterminated quote or comment, or a $k outside 1..nargs; *used gets a bit per
 *         argument referenced (bit k-1; arguments past 64 always count as used).
 */
bool ds_mapping_sql_rewrite(const char *sql, int nargs, const char *const *map, ds_buf_t *out,
                            uint64_t *used, char *errstr, size_t errstr_size) DS_MUST_CHECK;

/**
 * @brief The closest of @p candidates (NULL-terminated) to @p name: within two edits (and
 *        fewer edits than @p name has characters), or one being a prefix of the other (3
 *        characters at least). NULL when none is close.
 */
const char *ds_mapping_suggest(const char *name, const char *const *candidates);

#endif
