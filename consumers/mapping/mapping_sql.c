/*
 * mapping_sql.c: compiles each target into the statements the apply runtime prepares once and
 * executes per change (the shapes are in the .sql files in tests/golden/mapping/).
 *
 * Parameters. Row values only ever travel as text parameters; the runtime passes no types,
 * so every parameter must get its type from its first use: a value in the INSERT's SELECT
 * list takes the target column's type (INSERT ... SELECT resolves unknown outputs to the
 * target columns, not to text), a lookup match value the lookup column's, and the rest carry
 * an explicit cast ($1::text, $7::boolean). Expressions computed in C become one parameter
 * each; cast, lookup and sql become SQL text around the parameters of their C-computed parts.
 *
 * Links. An upsert writes the target row and records "source row S produced target row K" in
 * dualsync.links, in one statement of data-modifying CTEs. All CTEs of a statement run on the
 * same snapshot and none sees another's changes, so the statement is written to need only the
 * snapshot:
 *   up      the upsert: inserts the row, or updates it only when this source row S comes
 *           first among the row's contributors (the merge rule, mappings/README.md);
 *   k       the row's key text K (json_build_array of the key columns as text, read as the
 *           columns read them) and S's contribution (every mapped value, jsonb);
 *   old     deletes S's links to any other key (the target key changed: a merged patient's
 *           phone changed), returning those keys;
 *   link    inserts (S, K) with its contribution, or updates the contribution;
 *   orphan  the old keys no other source row links: links in the snapshot to that key, minus
 *           S's own (which "old" deletes, unseen by this CTE). The new link is to K, never to
 *           an old key, so not seeing it changes nothing;
 *   gone    applies on_delete to the orphans (DELETE, or UPDATE ... SET column = now());
 *   refill  old keys still linked whose first contributor was S get the next one's values.
 * Unlink and truncate are the same old/orphan/gone/refill chain without the upsert.
 *
 * Link keys are text; turning them back into typed key values for the DELETE uses
 * json_populate_record(NULL::table, ...), which reads each key column's text with the
 * column's own type, so the statement needs no knowledge of the column types and the join
 * on the key columns can use the target's unique index.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapping_internal.h"

/* ---------------------------------------------------------------------------------------------
 * Quoting
 * ------------------------------------------------------------------------------------------- */

void ds_mapping_quote_qualified(ds_buf_t *buf, const char *schema, const char *table)
{
    ds_buf_append_ident(buf, schema);
    ds_buf_append_char(buf, '.');
    ds_buf_append_ident(buf, table);
}

void ds_mapping_quote_literal(ds_buf_t *buf, const char *text)
{
    /* With a backslash, E'' says how to read it whatever standard_conforming_strings is. */
    bool backslash = strchr(text, '\\') != NULL;

    if (backslash)
        ds_buf_append_char(buf, 'E');
    ds_buf_append_char(buf, '\'');
    for (const char *p = text; *p; p++) {
        if (*p == '\'' || (*p == '\\' && backslash))
            ds_buf_append_char(buf, *p);
        ds_buf_append_char(buf, *p);
    }
    ds_buf_append_char(buf, '\'');
}

/* ---------------------------------------------------------------------------------------------
 * The {"sql": ...} escape hatch: finding $k outside quotes and comments
 * ------------------------------------------------------------------------------------------- */

static bool ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (c & 0x80);
}

static bool ident_char(char c)
{
    return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

bool ds_mapping_sql_rewrite(const char *sql, int nargs, const char *const *map, ds_buf_t *out,
                            uint64_t *used, char *errstr, size_t errstr_size)
{
    const char *p = sql;
    int depth = 0;

    *used = 0;
    while (*p) {
        const char *start = p;

        if (*p == '\'' ||
            ((*p == 'E' || *p == 'e') && p[1] == '\'' && (p == sql || !ident_char(p[-1])))) {
            /* 'text' ('' is a quote); E'text' also takes backslash escapes. */
            bool escapes = *p != '\'';
            p += escapes ? 2 : 1;
            for (;;) {
                if (!*p)
                    return ds_fail(errstr, errstr_size,
                                   "unterminated string literal in the SQL "
                                   "text");
                if (escapes && *p == '\\' && p[1]) {
                    p += 2;
                    continue;
                }
                if (*p == '\'') {
                    if (p[1] == '\'') {
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                p++;
            }
        } else if (*p == '"') {
            for (p++;; p++) {
                if (!*p)
                    return ds_fail(errstr, errstr_size,
                                   "unterminated quoted identifier in the "
                                   "SQL text");
                if (*p == '"') {
                    if (p[1] == '"') {
                        p++;
                        continue;
                    }
                    p++;
                    break;
                }
            }
        } else if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                p++;
            /* A comment ending the text would swallow what the statement puts after it. */
            if (!*p && map) {
                ds_buf_append(out, start, (size_t)(p - start));
                ds_buf_append_char(out, '\n');
                continue;
            }
        } else if (p[0] == '/' && p[1] == '*') {
            int nest = 1;
            for (p += 2; nest > 0; p++) {
                if (!*p)
                    return ds_fail(errstr, errstr_size, "unterminated comment in the SQL text");
                if (p[0] == '/' && p[1] == '*') {
                    nest++;
                    p++;
                } else if (p[0] == '*' && p[1] == '/') {
                    nest--;
                    p++;
                }
            }
        } else if (*p == '$' && p[1] >= '0' && p[1] <= '9' && (p == sql || !ident_char(p[-1]))) {
            long k = 0;

            for (p++; *p >= '0' && *p <= '9'; p++) {
                if (k < 100000)
                    k = k * 10 + (*p - '0');
            }
            if (ident_char(*p))
                return ds_fail(errstr, errstr_size,
                               "trailing junk after parameter $%ld in the "
                               "SQL text",
                               k);
            if (k < 1 || k > nargs)
                return ds_fail(errstr, errstr_size,
                               "$%ld in the SQL text has no argument (args has %d %s)", k, nargs,
                               nargs == 1 ? "entry" : "entries");
            if (k <= 64)
                *used |= (uint64_t)1 << (k - 1);
            if (map) {
                ds_buf_append_str(out, map[k - 1]);
            }
            continue;
        } else if (*p == '$' && (p == sql || !ident_char(p[-1])) &&
                   (p[1] == '$' || ident_start(p[1]))) {
            /* A dollar-quoted string: $tag$ ... $tag$. */
            const char *tag = p, *close;
            size_t tag_len;

            for (p++; *p && *p != '$' && ident_char(*p); p++)
                ;
            if (*p != '$') {
                p = tag + 1; /* not a tag after all: "$name" outside a quote */
                if (map)
                    ds_buf_append(out, start, (size_t)(p - start));
                continue;
            }
            p++;
            tag_len = (size_t)(p - tag);
            for (close = p; *close; close++) {
                if (strncmp(close, tag, tag_len) == 0)
                    break;
            }
            if (!*close)
                return ds_fail(errstr, errstr_size,
                               "unterminated dollar-quoted string in the SQL "
                               "text");
            p = close + tag_len;
        } else if (*p == ';') {
            return ds_fail(errstr, errstr_size, "the SQL text is one expression: no \";\"");
        } else {
            if (*p == '(')
                depth++;
            if (*p == ')' && --depth < 0)
                return ds_fail(errstr, errstr_size, "unbalanced \")\" in the SQL text");
            p++;
        }
        if (map)
            ds_buf_append(out, start, (size_t)(p - start));
    }
    if (depth != 0)
        return ds_fail(errstr, errstr_size, "unbalanced \"(\" in the SQL text");
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Compiling expressions
 * ------------------------------------------------------------------------------------------- */

/*
 * Which names the statements use for tables. NULL (the apply runtime's statements) means the
 * names the mapping gives; ds_mapping_set_rename_tables() asks a hook instead, so a tool can
 * run the very same statements against other tables (dualsync verify's shadow copies).
 */
typedef struct sql_names {
    ds_mapping_table_name_fn fn; /* the hook: a quoted SQL name, or NULL to keep the mapping's */
    void *arg;                   /* passed to fn */
    const char *links;           /* the links table to use instead, or NULL */
    const ds_target_t *target;   /* the target being compiled, passed to fn */
} sql_names_t;

/* Appends the name a statement uses for table schema.table. */
static void append_table(ds_buf_t *buf, const sql_names_t *names, const char *schema,
                         const char *table)
{
    const char *to =
        names && names->fn ? names->fn(names->arg, names->target, schema, table) : NULL;

    if (to)
        ds_buf_append_str(buf, to);
    else
        ds_mapping_quote_qualified(buf, schema, table);
}

/* The links table the statements read and write. */
static const char *links_table(const sql_names_t *names)
{
    return names && names->links ? names->links : "dualsync.links";
}

typedef struct compiler {
    ds_mapping_target_t *target; /* being compiled */
    int column;                  /* the column whose expression is compiled */
    int nparams;                 /* parameters so far */
    int cap;                     /* allocated in target->params */
    int nlookups;                /* lookup aliases handed out: lk1, lk2, ... */
    ds_buf_t required;           /* conditions of required lookups, joined by AND */
    const sql_names_t *names;    /* table names to write instead of the mapping's, or NULL */
    bool batch;                  /* compiling the batch statement: parameter $k is the column
                                  * pk of the input row "i", not a statement parameter */
} compiler_t;

static int add_param(compiler_t *c, ds_mapping_param_kind_t kind, const ds_mapping_expr_t *e,
                     int column)
{
    if (c->nparams == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->target->params =
            ds_mapping_xrealloc(c->target->params, sizeof(*c->target->params) * (size_t)c->cap);
    }
    c->target->params[c->nparams] = (ds_mapping_param_t){kind, e, column};
    return ++c->nparams;
}

/* Gives the expression its SQL text (e->sql), adding the parameters it needs. */
static void compile_expr(compiler_t *c, ds_mapping_expr_t *e)
{
    ds_buf_t buf = DS_BUF_INIT;

    if (!e->in_db) {
        e->param = add_param(c, PARAM_VALUE, e, c->column);
        e->sql = ds_mapping_xasprintf(c->batch ? "i.p%d" : "$%d", e->param);
        return;
    }
    for (int i = 0; i < e->nargs; i++)
        compile_expr(c, e->args[i]);
    switch (e->kind) {
    case EXPR_CAST:
        /* A parameter cast directly takes the type: $n::type. */
        if (e->args[0]->param)
            ds_buf_appendf(&buf, "%s::%s", e->args[0]->sql, e->text);
        else
            ds_buf_appendf(&buf, "CAST(%s AS %s)", e->args[0]->sql, e->text);
        break;
    case EXPR_LOOKUP: {
        int alias = ++c->nlookups;
        ds_buf_t from = DS_BUF_INIT;

        /* Qualified by an alias: an unqualified name could resolve to the outer table. */
        append_table(&from, c->names, e->lookup_schema, e->lookup_table);
        ds_buf_appendf(&from, " AS lk%d WHERE ", alias);
        for (int i = 0; i < e->nargs; i++) {
            ds_buf_appendf(&from, "%slk%d.", i ? " AND " : "", alias);
            ds_buf_append_ident(&from, e->match_columns[i]);
            ds_buf_appendf(&from, " = %s", e->args[i]->sql);
        }
        ds_buf_appendf(&buf, "(SELECT lk%d.", alias);
        ds_buf_append_ident(&buf, e->lookup_column);
        ds_buf_appendf(&buf, " FROM %s)", from.data);
        if (e->required) {
            /* A NULL match value has no parent to wait for: it yields NULL and goes on. */
            ds_buf_t cond = DS_BUF_INIT;
            ds_buf_appendf(&cond, "(EXISTS (SELECT 1 FROM %s)", from.data);
            for (int i = 0; i < e->nargs; i++)
                ds_buf_appendf(&cond, " OR %s IS NULL", e->args[i]->sql);
            ds_buf_append_char(&cond, ')');
            e->exists = cond.data;
            ds_buf_appendf(&c->required, "%s%s", c->required.len ? " AND " : "", e->exists);
        }
        ds_buf_free(&from);
        break;
    }
    case EXPR_SQL: {
        const char **map = ds_mapping_xcalloc((size_t)e->nargs + 1, sizeof(char *));
        char **owned = ds_mapping_xcalloc((size_t)e->nargs + 1, sizeof(char *));
        uint64_t used;
        char errstr[256];

        for (int i = 0; i < e->nargs; i++) {
            if (e->args[i]->param) {
                map[i] = e->args[i]->sql;
            } else {
                owned[i] = ds_mapping_xasprintf("(%s)", e->args[i]->sql);
                map[i] = owned[i];
            }
        }
        ds_buf_append_char(&buf, '(');
        /* The loader checked the text with the same function, so this cannot fail. */
        if (!ds_mapping_sql_rewrite(e->text, e->nargs, map, &buf, &used, errstr, sizeof(errstr)))
            ds_buf_appendf(&buf, "%s", e->text);
        ds_buf_append_char(&buf, ')');
        for (int i = 0; i < e->nargs; i++)
            free(owned[i]);
        free(owned);
        free(map);
        break;
    }
    default:
        /* Only the three kinds above are computed by the database; the loader made sure a
         * C function never holds one. */
        ds_buf_append_str(&buf, "NULL");
        break;
    }
    e->sql = buf.data;
}

/* ---------------------------------------------------------------------------------------------
 * Statements
 * ------------------------------------------------------------------------------------------- */

static void append_column(ds_buf_t *buf, const char *alias, const char *name)
{
    ds_buf_appendf(buf, "%s.", alias);
    ds_buf_append_ident(buf, name);
}

/* t."k1" = o."k1" AND t."k2" = o."k2" */
static void append_key_join(ds_buf_t *buf, const ds_mapping_target_t *t)
{
    for (int i = 0; i < t->nkey; i++) {
        const char *name = t->columns[t->key[i]].name;

        if (i)
            ds_buf_append_str(buf, " AND ");
        append_column(buf, "t", name);
        ds_buf_append_str(buf, " = ");
        append_column(buf, "o", name);
    }
}

/*
 * The head of the "orphan" CTE: the target's key columns of the keys @p from gives (a CTE or
 * subquery with a target_key column), each read back from the link's key text with the
 * column's own type (json_populate_record), so the DELETE can use the target's unique index.
 */
/*
 * json_populate_record(NULL::table,@p sep json_build_object('k1', @p alias.target_key::json->>0,
 * ...)): a link's key text read back as the key columns, each with the column's own type.
 */
static void append_key_record(ds_buf_t *buf, const ds_mapping_target_t *t,
                              const sql_names_t *names, const char *alias, const char *sep)
{
    ds_buf_append_str(buf, "json_populate_record(NULL::");
    append_table(buf, names, t->schema, t->table);
    ds_buf_appendf(buf, ",%sjson_build_object(", sep);
    for (int i = 0; i < t->nkey; i++) {
        if (i)
            ds_buf_append_str(buf, ", ");
        ds_mapping_quote_literal(buf, t->columns[t->key[i]].name);
        ds_buf_appendf(buf, ", %s.target_key::json->>%d", alias, i);
    }
    ds_buf_append_str(buf, "))");
}

static void append_orphan_keys(ds_buf_t *buf, const ds_mapping_target_t *t,
                               const sql_names_t *names, const char *from)
{
    ds_buf_append_str(buf, "orphan AS (\n    SELECT ");
    for (int i = 0; i < t->nkey; i++) {
        if (i)
            ds_buf_append_str(buf, ", ");
        append_column(buf, "r", t->columns[t->key[i]].name);
    }
    ds_buf_appendf(buf, "\n    FROM %s AS o CROSS JOIN LATERAL ", from);
    append_key_record(buf, t, names, "o", "\n        ");
    ds_buf_append_str(buf, " AS r\n");
}

/*
 * A truncate's $3 and $4: the partition the truncate was read from and the topic's partition
 * count, when the topic has several. Capture then sends the truncate to every partition, and
 * each removes the links of the keys its partition carries (dualsync.kafka_partition, the
 * producer's murmur2), in that partition's order: rows of the other partitions go with their
 * own partition's truncate, so no partition waits for another. NULL: every key of the topic.
 */
#define TRUNCATED_KEY_OF(alias)                                                                    \
    "($3::int IS NULL OR dualsync.kafka_partition(" alias ".source_key, $4::int) = $3::int)"
#define TRUNCATED_KEY TRUNCATED_KEY_OF("x")

/*
 * The "orphan" CTE (keys of old links no other source row holds) and the statement applying
 * on_delete to them. truncate: every source row of the topic goes, so only links from other
 * topics keep a row.
 */
static void append_orphan_cte(ds_buf_t *buf, const ds_mapping_target_t *t, bool truncate,
                              const sql_names_t *names)
{
    append_orphan_keys(buf, t, names, "old");
    ds_buf_appendf(buf,
                   "    WHERE NOT EXISTS (SELECT 1 FROM %s AS x\n"
                   "        WHERE x.target = $1::text AND x.target_key = o.target_key\n",
                   links_table(names));
    if (truncate)
        ds_buf_append_str(buf, "          AND NOT (x.source_topic = $2::text AND " TRUNCATED_KEY
                               "))\n)");
    else
        ds_buf_append_str(buf, "          AND NOT (x.source_topic = $2::text AND x.source_key = "
                               "$3::text))\n)");
}

/*
 * on_delete for the rows of "t" the condition that follows selects: "DELETE FROM t AS t
 * USING <from> WHERE ", or the soft delete's UPDATE ... FROM <from> WHERE; @p indent goes
 * before USING or FROM. With @p keep_soft_time a row soft-deleted already keeps its time.
 */
static void append_on_delete(ds_buf_t *buf, const ds_mapping_target_t *t, const sql_names_t *names,
                             const char *indent, const char *from, bool keep_soft_time)
{
    if (t->on_delete == ON_DELETE_SOFT) {
        ds_buf_append_str(buf, "UPDATE ");
        append_table(buf, names, t->schema, t->table);
        ds_buf_append_str(buf, " AS t SET ");
        ds_buf_append_ident(buf, t->soft_column);
        ds_buf_appendf(buf, " = now()%sFROM %s WHERE ", indent, from);
        if (keep_soft_time) {
            append_column(buf, "t", t->soft_column);
            ds_buf_append_str(buf, " IS NULL AND ");
        }
    } else {
        ds_buf_append_str(buf, "DELETE FROM ");
        append_table(buf, names, t->schema, t->table);
        ds_buf_appendf(buf, " AS t%sUSING %s WHERE ", indent, from);
    }
}

static void append_gone(ds_buf_t *buf, const ds_mapping_target_t *t, const char *indent,
                        const sql_names_t *names)
{
    char sep[64];

    snprintf(sep, sizeof(sep), "\n%s", indent);
    append_on_delete(buf, t, names, sep, "orphan AS o", false);
    append_key_join(buf, t);
}

/* Whether the target has columns besides its key (what a merged row's contributors decide). */
static bool has_value_columns(const ds_mapping_target_t *t)
{
    for (int i = 0; i < t->ncolumns; i++) {
        if (!t->columns[i].is_key)
            return true;
    }
    return false;
}

/*
 * Whether the target's rows are settled before COMMIT (see "Settling" below): any target
 * with links whose rows a departing contributor can change (refill) or remove (on_delete),
 * in the statements apply runs. Renamed statements (@p names: verify's and replay's shadows)
 * have one writer and need none.
 */
static bool settles(const ds_mapping_target_t *t, const sql_names_t *names)
{
    return !names && !t->pub.in_place &&
           (has_value_columns(t) || t->on_delete != ON_DELETE_IGNORE);
}

/*
 * The "touched" CTE: records in the session's pg_temp.ds_touched every target key the
 * statement links or unlinks, for the settle statement run before COMMIT. @p keys is a
 * query giving target_key (possibly NULL).
 */
static void append_touched(ds_buf_t *buf, const ds_mapping_target_t *t,
                           const sql_names_t *names, const char *keys)
{
    if (!settles(t, names))
        return;
    ds_buf_appendf(buf,
                   ", touched AS (\n"
                   "    INSERT INTO pg_temp.ds_touched (target, target_key)\n"
                   "    SELECT $1::text, g.target_key FROM (%s) AS g"
                   " WHERE g.target_key IS NOT NULL\n"
                   ")",
                   keys);
}

/*
 * The merge order: of the source rows producing one target row, the first by (source topic,
 * source key text) in byte order gives the row its values (mappings/README.md, "Merges").
 * "(x.source_topic, x.source_key) sorts before (topic, key)".
 */
static void append_link_precedes(ds_buf_t *buf, const char *alias, const char *topic,
                                 const char *key)
{
    ds_buf_appendf(buf, "(%s.source_topic COLLATE \"C\", %s.source_key COLLATE \"C\") < (%s, %s)",
                   alias, alias, topic, key);
}

/*
 * jsonb_build_object('col', value, ...) over every mapped column: what one source row
 * contributes to its target row, kept in its link so that the row can be computed again from
 * the contributors that remain when one leaves. @p values[i] is column i's value SQL.
 * jsonb_build_object takes at most 100 arguments, hence the chunks joined by ||.
 */
static void append_contribution(ds_buf_t *buf, const ds_mapping_target_t *t,
                                const char *const *values)
{
    for (int i = 0; i < t->ncolumns; i++) {
        if (i % 40 == 0)
            ds_buf_append_str(buf, i ? ") || jsonb_build_object(" : "jsonb_build_object(");
        else
            ds_buf_append_str(buf, ", ");
        ds_mapping_quote_literal(buf, t->columns[i].name);
        ds_buf_appendf(buf, ", %s", values[i]);
    }
    ds_buf_append_char(buf, ')');
}

/*
 * The "refill" UPDATE: target rows of the keys @p keys gives (a CTE or subquery with a target_key
 * column) that keep contributors after some left get the values of the first remaining one
 * (the merge order), read back from its link with the columns' own types. @p others selects
 * the links still contributing (alias x); @p when further limits the rows rewritten (a
 * condition on n, the new first contributor), or is NULL.
 */
static void append_refill(ds_buf_t *buf, const ds_mapping_target_t *t, const sql_names_t *names,
                          const char *keys, const char *others, const char *when)
{
    bool first = true;

    ds_buf_append_str(buf, "UPDATE ");
    append_table(buf, names, t->schema, t->table);
    ds_buf_append_str(buf, " AS t SET");
    for (int i = 0; i < t->ncolumns; i++) {
        if (t->columns[i].is_key)
            continue;
        ds_buf_append_str(buf, first ? " " : ", ");
        first = false;
        ds_buf_append_ident(buf, t->columns[i].name);
        ds_buf_append_str(buf, " = ");
        append_column(buf, "o", t->columns[i].name);
    }
    ds_buf_appendf(buf,
                   "\n    FROM (SELECT DISTINCT ON (x.target_key) x.target_key, x.source_topic,"
                   " x.source_key, x.vals\n"
                   "        FROM %s AS g CROSS JOIN LATERAL (\n"
                   "            SELECT x.* FROM %s AS x\n"
                   "            WHERE x.target = $1::text AND x.target_key = g.target_key"
                   " AND x.vals IS NOT NULL\n"
                   "              AND %s OFFSET 0) AS x\n"
                   "        ORDER BY x.target_key, x.source_topic COLLATE \"C\","
                   " x.source_key COLLATE \"C\") AS n\n"
                   "    CROSS JOIN LATERAL jsonb_populate_record(NULL::",
                   keys, links_table(names), others);
    append_table(buf, names, t->schema, t->table);
    ds_buf_append_str(buf, ", n.vals) AS o\n    WHERE ");
    append_key_join(buf, t);
    if (when)
        ds_buf_appendf(buf, " AND %s", when);
}


/* Links of this target from this source row (or, truncating, from this topic). */
static void append_links_where(ds_buf_t *buf, bool truncate)
{
    ds_buf_append_str(buf, "l.target = $1::text AND l.source_topic = $2::text");
    if (!truncate)
        ds_buf_append_str(buf, " AND l.source_key = $3::text");
    else
        ds_buf_append_str(buf, " AND " TRUNCATED_KEY_OF("l"));
}

/*
 * Copies (mapping_eval.c, "Copies"): "the change whose source.sequence is ($commit, $lsn)
 * comes after the last one counted on link @p alias". Within one capture session the pair
 * (the previous transaction's commit LSN, the change's LSN) orders changes as the topic does
 * (commit order, then WAL order inside a transaction), even when two transactions inserting
 * identical rows interleave, which the change's LSN alone does not. The first transaction of
 * a session has no commit LSN (capture does not know the previous one). A later change of
 * that session follows a commit made after it, so it is newer when its commit LSN is past
 * the stored LSN; the first transaction itself is ordered by its own LSN. A change without
 * an LSN, or a link without one, always counts.
 */
static void append_copy_newer(ds_buf_t *buf, const char *alias, int commit, int lsn)
{
    ds_buf_appendf(buf,
                   "CASE WHEN %s.copy_lsn IS NULL OR $%d::pg_lsn IS NULL THEN true"
                   " WHEN $%d::pg_lsn IS NULL THEN $%d::pg_lsn > %s.copy_lsn"
                   " WHEN %s.copy_commit IS NULL THEN $%d::pg_lsn > %s.copy_lsn"
                   " ELSE ($%d::pg_lsn, $%d::pg_lsn) > (%s.copy_commit, %s.copy_lsn) END",
                   alias, lsn, commit, lsn, alias, alias, commit, alias, commit, lsn, alias,
                   alias);
}

/* The "dec" CTE of unlink_sql: a delete of one of several identical source rows ($4 'd')
 * only takes one copy off the link; the link (and the row's on_delete) goes with the last. */
static void append_copy_dec(ds_buf_t *buf, const sql_names_t *names)
{
    ds_buf_appendf(buf,
                   "dec AS (\n"
                   "    UPDATE %s AS l SET copies = l.copies - 1, copy_commit = $5::pg_lsn,"
                   " copy_lsn = $6::pg_lsn\n"
                   "    WHERE ",
                   links_table(names));
    append_links_where(buf, false);
    ds_buf_append_str(buf, "\n      AND $4::text = 'd' AND l.copies > 1 AND ");
    append_copy_newer(buf, "l", 5, 6);
    ds_buf_append_str(buf, "\n)");
}

/* The condition under which unlink_sql deletes a link of the source row: always, unless
 * the change counts copies; then only the last copy's newer delete does. */
static void append_copy_last(ds_buf_t *buf)
{
    ds_buf_append_str(buf, "\n      AND ($4::text IS NULL OR (l.copies <= 1 AND ");
    append_copy_newer(buf, "l", 5, 6);
    ds_buf_append_str(buf, "))");
}

/* Which links still contribute to a row after this source row (or topic) left, and when a
 * row must be given the values of its new first contributor n: the leaving row was first. */
#define OTHERS_THAN_SOURCE "NOT (x.source_topic = $2::text AND x.source_key = $3::text)"
#define OTHERS_THAN_TOPIC  "NOT (x.source_topic = $2::text AND " TRUNCATED_KEY ")"
#define LEAVER_WAS_FIRST                                                                           \
    "($2::text COLLATE \"C\", $3::text COLLATE \"C\") < (n.source_topic, n.source_key)"

/* unlink_sql and truncate_sql. */
static char *unlink_statement(const ds_mapping_target_t *t, bool truncate,
                              const sql_names_t *names)
{
    ds_buf_t buf = DS_BUF_INIT;
    bool refill = has_value_columns(t);
    const char *others = truncate ? OTHERS_THAN_TOPIC : OTHERS_THAN_SOURCE;
    const char *when = truncate ? NULL : LEAVER_WAS_FIRST;

    if (t->on_delete == ON_DELETE_IGNORE && !refill) {
        if (!truncate) {
            ds_buf_append_str(&buf, "WITH ");
            append_copy_dec(&buf, names);
            ds_buf_append_char(&buf, '\n');
        }
        ds_buf_appendf(&buf, "DELETE FROM %s AS l\nWHERE ", links_table(names));
        append_links_where(&buf, truncate);
        if (!truncate)
            append_copy_last(&buf);
        return buf.data;
    }
    ds_buf_append_str(&buf, "WITH ");
    if (!truncate) {
        append_copy_dec(&buf, names);
        ds_buf_append_str(&buf, ", ");
    }
    ds_buf_appendf(&buf, "old AS (\n    DELETE FROM %s AS l\n    WHERE ", links_table(names));
    append_links_where(&buf, truncate);
    if (!truncate)
        append_copy_last(&buf);
    ds_buf_append_str(&buf, "\n    RETURNING l.target_key\n)");
    append_touched(&buf, t, names, "SELECT target_key FROM old");
    if (t->on_delete == ON_DELETE_IGNORE) {
        ds_buf_append_str(&buf, "\n");
        append_refill(&buf, t, names, "(SELECT DISTINCT target_key FROM old)", others, when);
        return buf.data;
    }
    ds_buf_append_str(&buf, ", ");
    append_orphan_cte(&buf, t, truncate, names);
    if (refill) {
        ds_buf_append_str(&buf, ", refill AS (\n    ");
        append_refill(&buf, t, names, "(SELECT DISTINCT target_key FROM old)", others, when);
        ds_buf_append_str(&buf, "\n)");
    }
    ds_buf_append_str(&buf, "\n");
    append_gone(&buf, t, "", names);
    return buf.data;
}

/* INSERT INTO "schema"."table" AS t ("col", ...): every mapped column. */
static void append_insert_into(ds_buf_t *buf, const compiler_t *c, const ds_mapping_target_t *t)
{
    ds_buf_append_str(buf, "INSERT INTO ");
    append_table(buf, c->names, t->schema, t->table);
    ds_buf_append_str(buf, " AS t (");
    for (int i = 0; i < t->ncolumns; i++) {
        if (i)
            ds_buf_append_str(buf, ", ");
        ds_buf_append_ident(buf, t->columns[i].name);
    }
    ds_buf_append_char(buf, ')');
}

/*
 * "ON CONFLICT (key) DO UPDATE SET" every non-key column to its new value (DO NOTHING when the
 * target has only key columns). With @p keep_unless non-NULL, a column whose keep flag is true
 * (an unchanged TOASTed source value; the batch statement never gets such rows, mapping.h)
 * keeps the row's value, unless @p keep_unless (a condition appended with AND NOT) holds: ""
 * always keeps. @p where, if not NULL, limits the update to rows it holds for (alias t).
 */
static void append_conflict_update(ds_buf_t *buf, const ds_mapping_target_t *t,
                                   const char *keep_unless, const char *where)
{
    bool first = true;

    ds_buf_append_str(buf, "\n    ON CONFLICT (");
    for (int i = 0; i < t->nkey; i++) {
        if (i)
            ds_buf_append_str(buf, ", ");
        ds_buf_append_ident(buf, t->columns[t->key[i]].name);
    }
    if (!has_value_columns(t)) {
        ds_buf_append_str(buf, ") DO NOTHING");
        return;
    }
    ds_buf_append_str(buf, ") DO UPDATE SET");
    for (int i = 0; i < t->ncolumns; i++) {
        const ds_mapping_column_t *col = &t->columns[i];

        if (col->is_key)
            continue;
        ds_buf_append_str(buf, first ? "\n        " : ",\n        ");
        first = false;
        ds_buf_append_ident(buf, col->name);
        if (keep_unless && col->keep_param) {
            ds_buf_appendf(buf, " = CASE WHEN $%d::boolean%s%s THEN ", col->keep_param,
                           keep_unless[0] ? " AND NOT " : "", keep_unless);
            append_column(buf, "t", col->name);
            ds_buf_append_str(buf, " ELSE ");
            append_column(buf, "EXCLUDED", col->name);
            ds_buf_append_str(buf, " END");
        } else {
            ds_buf_append_str(buf, " = ");
            append_column(buf, "EXCLUDED", col->name);
        }
    }
    if (where)
        ds_buf_appendf(buf, "\n    WHERE %s", where);
}

/* json_build_array(t."k1"::text, ...)::text: a row's key text, as links record it. */
static void append_key_text(ds_buf_t *buf, const ds_mapping_target_t *t, const char *alias)
{
    ds_buf_append_str(buf, "json_build_array(");
    for (int i = 0; i < t->nkey; i++) {
        if (i)
            ds_buf_append_str(buf, ", ");
        append_column(buf, alias, t->columns[t->key[i]].name);
        ds_buf_append_str(buf, "::text");
    }
    ds_buf_append_str(buf, ")::text");
}

/*
 * FROM json_populate_record(NULL::table, json_build_object('k1', e1, ...)) AS r: the key
 * values @p e (one SQL text per key column, or the key columns' own expressions when NULL)
 * read as the key columns read them, typmods included (numeric(10,2) stores 1.0 as 1.00), so
 * that append_key_text(r) gives the text the stored row's key would.
 */
static void append_typed_key(ds_buf_t *buf, const ds_mapping_target_t *t, const sql_names_t *names)
{
    ds_buf_append_str(buf, "json_populate_record(NULL::");
    append_table(buf, names, t->schema, t->table);
    ds_buf_append_str(buf, ", json_build_object(");
    for (int i = 0; i < t->nkey; i++) {
        if (i)
            ds_buf_append_str(buf, ", ");
        ds_mapping_quote_literal(buf, t->columns[t->key[i]].name);
        ds_buf_appendf(buf, ", %s", t->columns[t->key[i]].expr->sql);
    }
    ds_buf_append_str(buf, ")) AS r");
}

/* ---------------------------------------------------------------------------------------------
 * Settling
 *
 * The statements above each work on one snapshot, which is exact while one transaction at a
 * time changes the links of a target row. Several apply processes (a group sharing a topic's
 * partitions), or apply beside `dlq retry`, can change the links of one row at once: two
 * legacy patients of one global patient sit in different partitions. Each transaction then
 * misses the other's uncommitted link. One deleting the last contributor it sees removes a
 * row the other's new link still produces; one whose source row sorts after the other's
 * writes its values over those of the row's true first contributor.
 *
 * So every statement records the target keys whose links it changed (pg_temp.ds_touched,
 * "touched" above; a batch statement leaves out the rows it inserted, UNSETTLED_KEYS), and before
 * COMMIT the transaction settles them, in two statements:
 *   1. pg_temp.ds_lock_touched($1) takes a transaction-level advisory lock on each touched
 *      key, in key order (or one lock on the whole target past 256 keys: a truncate, a large
 *      batch), so two transactions touching one key settle and commit one after the other;
 *   2. the settle statement, on a snapshot taken once the locks are held, sees every link
 *      committed before and the transaction's own, and makes each touched row what the merge
 *      rule gives: the first contributor's values, or on_delete when none is left. It writes
 *      only rows that differ, so without concurrency it reads and writes nothing more.
 * The later of two transactions touching a row settles it after the earlier one committed,
 * with both sets of links in view: the row converges whatever the interleaving. The advisory
 * locks live in the two-integer space (hashtext of the target id, of the key), apart from the
 * bigint space applications use most.
 * ------------------------------------------------------------------------------------------- */

/* The settle statement ($1 the target id, as the others' $1): see "Settling". */
static char *compile_settle(const ds_mapping_target_t *t, const sql_names_t *names)
{
    ds_buf_t buf = DS_BUF_INIT;
    const char *links = links_table(names);
    bool values = has_value_columns(t);

    /* k: the touched keys, less those whose only link and whose row this transaction wrote
     * itself (both xmin its xid). Such a row is what its link gives: another transaction's
     * link to it would be there too, and another's write of the row would be its xmin. Rows
     * written under a savepoint (the slow path) carry a subtransaction's xid and are checked
     * in full. */
    ds_buf_appendf(&buf,
                   "WITH me AS (\n"
                   "    SELECT pg_current_xact_id()::xid AS xid\n"
                   "), k AS (\n"
                   "    SELECT g.target_key FROM (SELECT DISTINCT target_key FROM pg_temp.ds_touched"
                   " WHERE target = $1::text) AS g, me\n"
                   "    WHERE NOT EXISTS (SELECT 1 FROM (SELECT count(*) AS n,"
                   " bool_and(x.xmin = me.xid) AS own\n"
                   "            FROM %s AS x WHERE x.target = $1::text"
                   " AND x.target_key = g.target_key) AS l\n"
                   "        WHERE l.n = 1 AND l.own AND EXISTS (SELECT 1 FROM ",
                   links);
    append_table(&buf, names, t->schema, t->table);
    ds_buf_append_str(&buf, " AS t, ");
    append_key_record(&buf, t, names, "g", " ");
    ds_buf_append_str(&buf, " AS o\n            WHERE ");
    append_key_join(&buf, t);
    ds_buf_appendf(&buf,
                   " AND t.xmin = me.xid))\n"
                   "), n AS (\n"
                   "    SELECT DISTINCT ON (x.target_key) x.target_key, x.vals\n"
                   "    FROM k CROSS JOIN LATERAL (\n"
                   "        SELECT x.* FROM %s AS x\n"
                   "        WHERE x.target = $1::text AND x.target_key = k.target_key"
                   " AND x.vals IS NOT NULL OFFSET 0) AS x\n"
                   "    ORDER BY x.target_key, x.source_topic COLLATE \"C\","
                   " x.source_key COLLATE \"C\"\n"
                   "), up AS (\n    INSERT INTO ",
                   links);
    append_table(&buf, names, t->schema, t->table);
    ds_buf_append_str(&buf, " AS t (");
    for (int i = 0; i < t->ncolumns; i++) {
        if (i)
            ds_buf_append_str(&buf, ", ");
        ds_buf_append_ident(&buf, t->columns[i].name);
    }
    ds_buf_append_str(&buf, ")\n    SELECT ");
    for (int i = 0; i < t->ncolumns; i++) {
        if (i)
            ds_buf_append_str(&buf, ", ");
        append_column(&buf, "o", t->columns[i].name);
    }
    ds_buf_append_str(&buf, "\n    FROM n CROSS JOIN LATERAL jsonb_populate_record(NULL::");
    append_table(&buf, names, t->schema, t->table);
    /* Only rows missing or differing: an unchanged row is not even locked. Compared as jsonb,
     * which every column type has (json or point have no equality). */
    ds_buf_append_str(&buf, ", n.vals) AS o\n    WHERE NOT EXISTS (SELECT 1 FROM ");
    append_table(&buf, names, t->schema, t->table);
    ds_buf_append_str(&buf, " AS t WHERE ");
    append_key_join(&buf, t);
    if (values) {
        bool first = true;

        ds_buf_append_str(&buf, "\n        AND jsonb_build_array(");
        for (int i = 0; i < t->ncolumns; i++) {
            if (t->columns[i].is_key)
                continue;
            ds_buf_append_str(&buf, first ? "" : ", ");
            append_column(&buf, "t", t->columns[i].name);
            first = false;
        }
        ds_buf_append_str(&buf, ") = jsonb_build_array(");
        first = true;
        for (int i = 0; i < t->ncolumns; i++) {
            if (t->columns[i].is_key)
                continue;
            ds_buf_append_str(&buf, first ? "" : ", ");
            append_column(&buf, "o", t->columns[i].name);
            first = false;
        }
        ds_buf_append_char(&buf, ')');
    }
    ds_buf_append_char(&buf, ')');
    append_conflict_update(&buf, t, NULL, NULL);
    ds_buf_append_str(&buf, "\n    RETURNING 1\n)");
    if (t->on_delete != ON_DELETE_IGNORE) {
        ds_buf_append_str(&buf, ", ");
        append_orphan_keys(&buf, t, names, "k");
        ds_buf_appendf(&buf,
                       "    WHERE NOT EXISTS (SELECT 1 FROM %s AS x\n"
                       "        WHERE x.target = $1::text AND x.target_key = o.target_key)\n"
                       "), gone AS (\n    ",
                       links);
        append_gone(&buf, t, "    ", names);
        /* A row soft-deleted already keeps the time it went. */
        if (t->on_delete == ON_DELETE_SOFT) {
            ds_buf_append_str(&buf, " AND ");
            append_column(&buf, "t", t->soft_column);
            ds_buf_append_str(&buf, " IS NULL");
        }
        ds_buf_append_str(&buf, "\n    RETURNING 1\n)");
        ds_buf_append_str(&buf, "\nSELECT (SELECT count(*) FROM up) + (SELECT count(*) FROM gone)"
                                " AS settled");
    } else {
        ds_buf_append_str(&buf, "\nSELECT (SELECT count(*) FROM up) AS settled");
    }
    return buf.data;
}

/*
 * The upsert. Its CTEs (all on one snapshot, none seeing another's writes):
 *   prev    (targets with keep flags) this source row's recorded contribution, the values of
 *           columns whose source value is an unchanged TOASTed one;
 *   up      inserts the row, or updates it unless another source row producing it comes
 *           first in the merge order (then that one's values stay);
 *   k       the row's key text and this source row's contribution (every mapped value);
 *   old     deletes this source row's links to any other key (its target key changed);
 *   link    records (or updates) its link and contribution;
 *   orphan  old keys no other source row links;
 *   gone    on_delete for them;
 *   refill  old keys still linked, whose first contributor was this source row: the values
 *           of the new first one.
 */
static void compile_upsert(compiler_t *c, ds_mapping_target_t *t)
{
    ds_buf_t buf = DS_BUF_INIT, precedes = DS_BUF_INIT;
    const char *links = links_table(c->names);
    ds_buf_t counted = DS_BUF_INIT;
    char **values;
    bool keeps = false;
    int copy;

    add_param(c, PARAM_TARGET_ID, NULL, -1);
    add_param(c, PARAM_TOPIC, NULL, -1);
    add_param(c, PARAM_SOURCE_KEY, NULL, -1);
    for (int i = 0; i < t->ncolumns; i++) {
        c->column = i;
        compile_expr(c, t->columns[i].expr);
    }
    /* Keep flags: only for non-key columns that read the source row. */
    for (int i = 0; i < t->ncolumns; i++) {
        if (!t->columns[i].is_key && t->columns[i].nrefs > 0) {
            t->columns[i].keep_param = add_param(c, PARAM_KEEP, NULL, i);
            keeps = true;
        }
    }
    /* Copies: last, so that the batch statement (which ignores them) numbers the rest alike. */
    copy = add_param(c, PARAM_COPY_MODE, NULL, -1);
    add_param(c, PARAM_COPY_COMMIT, NULL, -1);
    add_param(c, PARAM_COPY_LSN, NULL, -1);
    /* Each column's value: a kept one comes from this source row's last contribution. */
    values = ds_mapping_xcalloc((size_t)t->ncolumns + 1, sizeof(*values));
    for (int i = 0; i < t->ncolumns; i++) {
        const ds_mapping_column_t *col = &t->columns[i];

        if (col->keep_param) {
            ds_buf_t v = DS_BUF_INIT;

            ds_buf_appendf(&v, "CASE WHEN $%d::boolean THEN (SELECT ", col->keep_param);
            append_column(&v, "p", col->name);
            ds_buf_appendf(&v, " FROM prev AS p) ELSE %s END", col->expr->sql);
            values[i] = v.data;
        } else {
            values[i] = ds_mapping_xasprintf("%s", col->expr->sql);
        }
    }

    ds_buf_append_str(&buf, "WITH ");
    if (keeps) {
        ds_buf_appendf(&buf,
                       "prev AS (\n"
                       "    SELECT r.* FROM %s AS l CROSS JOIN LATERAL jsonb_populate_record(NULL::",
                       links);
        append_table(&buf, c->names, t->schema, t->table);
        ds_buf_append_str(&buf, ", l.vals) AS r\n    WHERE ");
        append_links_where(&buf, false);
        ds_buf_append_str(&buf, " AND l.vals IS NOT NULL\n    LIMIT 1\n), ");
    }
    ds_buf_append_str(&buf, "up AS (\n    ");
    append_insert_into(&buf, c, t);
    ds_buf_append_str(&buf, "\n    SELECT ");
    for (int i = 0; i < t->ncolumns; i++)
        ds_buf_appendf(&buf, "%s%s", i ? ", " : "", values[i]);
    if (c->required.len)
        ds_buf_appendf(&buf, "\n    WHERE %s", c->required.data);
    ds_buf_appendf(&precedes,
                   "NOT EXISTS (SELECT 1 FROM %s AS x\n"
                   "        WHERE x.target = $1::text AND x.target_key = ",
                   links);
    append_key_text(&precedes, t, "t");
    ds_buf_append_str(&precedes, " AND x.vals IS NOT NULL\n          AND ");
    append_link_precedes(&precedes, "x", "$2::text", "$3::text");
    ds_buf_append_char(&precedes, ')');
    append_conflict_update(&buf, t, "EXISTS (SELECT 1 FROM prev)", precedes.data);
    ds_buf_append_str(&buf, "\n), k AS (\n    SELECT ");
    append_key_text(&buf, t, "r");
    ds_buf_append_str(&buf, " AS target_key,\n        ");
    append_contribution(&buf, t, (const char *const *)values);
    ds_buf_append_str(&buf, " AS vals\n    FROM ");
    append_typed_key(&buf, t, c->names);
    if (c->required.len)
        ds_buf_appendf(&buf, "\n    WHERE %s", c->required.data);
    ds_buf_appendf(&buf,
                   "\n), old AS (\n"
                   "    DELETE FROM %s AS l USING k\n"
                   "    WHERE ",
                   links);
    append_links_where(&buf, false);
    /* A create of a row identical to one already linked is one more copy, unless capture sent
     * it again (not newer); a read always is (mapping_eval.c, "Copies"). */
    ds_buf_appendf(&counted, "$%d::text = 'c' AND ", copy);
    append_copy_newer(&counted, "l", copy + 1, copy + 2);
    ds_buf_appendf(&buf,
                   "\n      AND l.target_key <> k.target_key\n"
                   "    RETURNING l.target_key\n"
                   "), link AS (\n"
                   "    INSERT INTO %s AS l (target, source_topic, source_key, target_key, vals,"
                   " copy_commit, copy_lsn)\n"
                   "    SELECT $1::text, $2::text, $3::text, k.target_key, k.vals, $%d::pg_lsn,"
                   " $%d::pg_lsn FROM k\n"
                   "    ON CONFLICT (target, source_topic, source_key, target_key)\n"
                   "        DO UPDATE SET vals = EXCLUDED.vals,\n"
                   "            copies = l.copies + CASE WHEN $%d::text = 'r' OR (%s) THEN 1"
                   " ELSE 0 END,\n"
                   "            copy_commit = CASE WHEN %s THEN EXCLUDED.copy_commit"
                   " ELSE l.copy_commit END,\n"
                   "            copy_lsn = CASE WHEN %s THEN EXCLUDED.copy_lsn"
                   " ELSE l.copy_lsn END\n"
                   ")",
                   links, copy + 1, copy + 2, copy, counted.data, counted.data, counted.data);
    append_touched(&buf, t, c->names,
                   "SELECT target_key FROM k UNION ALL SELECT target_key FROM old");
    if (t->on_delete != ON_DELETE_IGNORE) {
        ds_buf_append_str(&buf, ", ");
        append_orphan_cte(&buf, t, false, c->names);
        ds_buf_append_str(&buf, ", gone AS (\n    ");
        append_gone(&buf, t, "    ", c->names);
        ds_buf_append_str(&buf, "\n)");
    }
    if (has_value_columns(t)) {
        ds_buf_append_str(&buf, ", refill AS (\n    ");
        append_refill(&buf, t, c->names, "old", OTHERS_THAN_SOURCE, LEAVER_WAS_FIRST);
        ds_buf_append_str(&buf, "\n)");
    }
    ds_buf_appendf(&buf, "\nSELECT %s AS applied", c->required.len ? c->required.data : "true");
    for (int i = 0; i < t->ncolumns; i++)
        free(values[i]);
    free(values);
    ds_buf_free(&precedes);
    ds_buf_free(&counted);
    t->pub.write_sql = buf.data;
    t->pub.copy_param = copy;
    t->pub.settle_sql = settles(t, c->names) ? compile_settle(t, c->names) : NULL;
    t->pub.unlink_sql = unlink_statement(t, false, c->names);
    t->pub.unlink_nparams = 6;
    t->pub.truncate_sql = unlink_statement(t, true, c->names);
    t->pub.truncate_nparams = 4;
}

/*
 * A fan-out update reaches every child row of a parent on each change of the parent: only
 * the rows whose values change are written, so an unrelated change of the parent rewrites
 * nothing. @p now holds the new values (the SET expressions), in column order.
 */
static void append_fan_out_changed(ds_buf_t *buf, const ds_mapping_target_t *t, const ds_buf_t *now)
{
    bool first = true;

    ds_buf_append_str(buf, "ROW(");
    for (int i = 0; i < t->ncolumns; i++) {
        if (t->columns[i].is_key)
            continue;
        ds_buf_append_str(buf, first ? "" : ", ");
        first = false;
        append_column(buf, "t", t->columns[i].name);
    }
    ds_buf_appendf(buf, ") IS DISTINCT FROM ROW(%s)", now->data);
}

static void compile_in_place(compiler_t *c, ds_mapping_target_t *t)
{
    ds_buf_t buf = DS_BUF_INIT, now = DS_BUF_INIT;
    bool first = true;

    ds_buf_append_str(&buf, "WITH up AS (\n    UPDATE ");
    append_table(&buf, c->names, t->schema, t->table);
    ds_buf_append_str(&buf, " AS t SET");
    /* Parameters in text order: each column's keep flag, then its value. */
    for (int i = 0; i < t->ncolumns; i++) {
        ds_mapping_column_t *col = &t->columns[i];

        if (col->is_key)
            continue;
        c->column = i;
        if (col->nrefs > 0)
            col->keep_param = add_param(c, PARAM_KEEP, NULL, i);
        compile_expr(c, col->expr);
        ds_buf_append_str(&buf, first ? "\n        " : ",\n        ");
        ds_buf_append_str(&now, first ? "" : ", ");
        first = false;
        ds_buf_append_ident(&buf, col->name);
        if (col->keep_param) {
            ds_buf_appendf(&buf, " = CASE WHEN $%d::boolean THEN ", col->keep_param);
            append_column(&buf, "t", col->name);
            ds_buf_appendf(&buf, " ELSE %s END", col->expr->sql);
            ds_buf_appendf(&now, "CASE WHEN $%d::boolean THEN ", col->keep_param);
            append_column(&now, "t", col->name);
            ds_buf_appendf(&now, " ELSE %s END", col->expr->sql);
        } else {
            ds_buf_appendf(&buf, " = %s", col->expr->sql);
            ds_buf_append_str(&now, col->expr->sql);
        }
    }
    ds_buf_append_str(&buf, "\n    WHERE ");
    for (int i = 0; i < t->nkey; i++) {
        ds_mapping_column_t *col = &t->columns[t->key[i]];

        c->column = t->key[i];
        compile_expr(c, col->expr);
        if (i)
            ds_buf_append_str(&buf, " AND ");
        append_column(&buf, "t", col->name);
        ds_buf_appendf(&buf, " = %s", col->expr->sql);
    }
    if (c->required.len)
        ds_buf_appendf(&buf, "\n      AND %s", c->required.data);
    if (t->pub.fan_out) {
        ds_buf_append_str(&buf, "\n      AND ");
        append_fan_out_changed(&buf, t, &now);
    }
    ds_buf_appendf(&buf, "\n)\nSELECT %s AS applied", c->required.len ? c->required.data : "true");
    ds_buf_free(&now);
    t->pub.write_sql = buf.data;
}

/* ---------------------------------------------------------------------------------------------
 * Batch statements (mapping.h: "Batches")
 *
 * The same expressions, reading the input row "i" (columns p3..pn, ord, op) instead of
 * parameters, in the same parameter order as write_sql, so pk is write_sql's $k. The runtime
 * puts the input in front (ds_mapping_batch_statement). Row by row, each statement saw the
 * links the previous one left; here every CTE sees the snapshot before the statement, so the
 * link bookkeeping is written over the whole set at once:
 *   w       the 'u' rows, with "ok" (their required lookups found their rows) and the text
 *           of the target key they give, exactly as row by row RETURNING would record it;
 *   moved   every source key whose links change: ok upserts (with the key they now produce)
 *           and unlinks (no key);
 *   head    per target key, the first of the batch's rows producing it (source key order);
 *   win     those no link from outside the batch comes before (the merge rule);
 *   up      writes them: one upsert per target key;
 *   old     deletes the moved keys' links to any other key;
 *   link    inserts the new ones, or updates their contributions;
 *   orphan  old keys that no moved source key produces now and that no link from a source
 *           key outside the batch holds;
 *   gone    on_delete for the orphans;
 *   refill  old keys still linked from outside the batch whose first contributor is such a
 *           link (not a row of "win"): its contribution's values.
 * "up" and "refill" never touch one row twice: a key is in "win" or refilled, not both.
 * Plans must not depend on statistics: CTEs have none, and dualsync.links grows from empty,
 * so the planner believes it tiny long after it is not. Joins that would scan it are
 * written as lookups it cannot plan otherwise: "old" finds each moved key's links through
 * the primary key in a LATERAL subquery that OFFSET 0 keeps from being flattened into a
 * join, and deletes them by ctid (a TID scan). A plain join with "moved" was planned as a
 * nested loop over every link of the topic, per batch.
 * ------------------------------------------------------------------------------------------- */

/*
 * The keys a batch statement records for settling ("Settling"): its rows' keys, less those
 * whose row it inserted, rather than updated, and that one row of the batch produces. When "up" inserts row K, no
 * other transaction had row K, committed or in progress (an insert in progress makes ours wait
 * for it, then update). Every statement that links a key also inserts or locks its row (ON
 * CONFLICT DO UPDATE locks the row even when its WHERE leaves it alone), and a row is deleted
 * with its last link, so no other transaction held a link to K either; one that links K after
 * us waits on our row until we commit, then settles K itself, seeing our link. So after our
 * locks K's links would still be only our own, and its row ours: exactly the keys the settle
 * statement leaves out (its "k"), found here without probing links or rows again, and not
 * recorded, so not locked. (Written with a window count and a hashed NOT IN: a join of the
 * two CTEs, which have no statistics, was planned as a nested loop.) A row deleted by hand under its links breaks the premise: then
 * `dualsync verify` reports the row.
 */
#define UNSETTLED_KEYS                                                                             \
    "SELECT g.target_key FROM (SELECT i.target_key, count(*) OVER (PARTITION BY i.target_key)"    \
    " AS n FROM w AS i WHERE i.ok) AS g WHERE g.n > 1 OR g.target_key NOT IN"                     \
    " (SELECT u.target_key FROM up AS u WHERE u.fresh)"

/* The key columns of the target, as "i.pk" references: "i.p4, i.p5". */
static void append_key_params(ds_buf_t *buf, const ds_mapping_target_t *t)
{
    for (int i = 0; i < t->nkey; i++)
        ds_buf_appendf(buf, "%s%s", i ? ", " : "", t->columns[t->key[i]].expr->sql);
}

/* Whether every key column is a plain parameter (computed in C): the batch statement
 * deduplicates rows and finds their stored row by the key values before writing. */
static bool batchable(const ds_mapping_target_t *t)
{
    for (int i = 0; i < t->nkey; i++) {
        if (t->columns[t->key[i]].expr->in_db)
            return false;
    }
    return true;
}

static char *compile_upsert_batch(compiler_t *c, ds_mapping_target_t *t)
{
    ds_buf_t buf = DS_BUF_INIT, plain = DS_BUF_INIT;
    const char *links = links_table(c->names);
    const char **values;
    size_t rest;

    add_param(c, PARAM_TARGET_ID, NULL, -1);
    add_param(c, PARAM_TOPIC, NULL, -1);
    add_param(c, PARAM_SOURCE_KEY, NULL, -1);
    for (int i = 0; i < t->ncolumns; i++) {
        c->column = i;
        compile_expr(c, t->columns[i].expr);
    }

    /* The key text of each row: its key values read as the key columns read them (with their
     * typmods: numeric(10,2) stores 1.0 as 1.00), then as text, as the row's own would be.
     * The plain variant takes the values' text directly, for types no typmod changes. */
    ds_buf_appendf(&plain, "w AS (\n    SELECT i.*, %s AS ok, json_build_array(",
                   c->required.len ? c->required.data : "true");
    for (int i = 0; i < t->nkey; i++)
        ds_buf_appendf(&plain, "%s%s::text", i ? ", " : "", t->columns[t->key[i]].expr->sql);
    ds_buf_append_str(&plain, ")::text AS target_key\n    FROM i WHERE i.op = 'u'\n), ");
    ds_buf_appendf(&buf, "w AS (\n    SELECT i.*, %s AS ok, json_build_array(",
                   c->required.len ? c->required.data : "true");
    for (int i = 0; i < t->nkey; i++) {
        if (i)
            ds_buf_append_str(&buf, ", ");
        append_column(&buf, "r", t->columns[t->key[i]].name);
        ds_buf_append_str(&buf, "::text");
    }
    ds_buf_append_str(&buf, ")::text AS target_key\n    FROM i CROSS JOIN LATERAL "
                            "json_populate_record(NULL::");
    append_table(&buf, c->names, t->schema, t->table);
    ds_buf_append_str(&buf, ", json_build_object(");
    for (int i = 0; i < t->nkey; i++) {
        if (i)
            ds_buf_append_str(&buf, ", ");
        ds_mapping_quote_literal(&buf, t->columns[t->key[i]].name);
        ds_buf_appendf(&buf, ", %s", t->columns[t->key[i]].expr->sql);
    }
    ds_buf_append_str(&buf, ")) AS r\n    WHERE i.op = 'u'\n), ");
    rest = buf.len;
    values = ds_mapping_xcalloc((size_t)t->ncolumns + 1, sizeof(*values));
    for (int i = 0; i < t->ncolumns; i++)
        values[i] = t->columns[i].expr->sql;
    ds_buf_appendf(&buf,
                   "moved AS (\n"
                   "    SELECT i.p3 AS source_key, i.target_key FROM w AS i WHERE i.ok\n"
                   "    UNION ALL SELECT i.p3, NULL FROM i WHERE i.op = 'd'\n"
                   "), head AS (\n"
                   "    SELECT DISTINCT ON (i.target_key) i.* FROM w AS i WHERE i.ok\n"
                   "    ORDER BY i.target_key, i.p3 COLLATE \"C\"\n"
                   "), win AS (\n"
                   "    SELECT i.* FROM head AS i WHERE NOT EXISTS (SELECT 1 FROM %s AS x\n"
                   "        WHERE x.target = $1::text AND x.target_key = i.target_key"
                   " AND x.vals IS NOT NULL\n"
                   "          AND ",
                   links);
    append_link_precedes(&buf, "x", "$2::text", "i.p3");
    ds_buf_append_str(&buf, "\n          AND NOT (x.source_topic = $2::text AND x.source_key IN "
                            "(SELECT m.source_key FROM moved AS m)))\n), up AS (\n    ");
    append_insert_into(&buf, c, t);
    ds_buf_append_str(&buf, "\n    SELECT ");
    for (int i = 0; i < t->ncolumns; i++)
        ds_buf_appendf(&buf, "%s%s", i ? ", " : "", values[i]);
    ds_buf_append_str(&buf, "\n    FROM win AS i");
    append_conflict_update(&buf, t, NULL, NULL);
    if (settles(t, c->names)) {
        /* Which rows were inserted rather than updated (an updated row version carries the
         * updater in xmax; a conflict left alone returns nothing): see UNSETTLED_KEYS. */
        ds_buf_append_str(&buf, "\n    RETURNING ");
        append_key_text(&buf, t, "t");
        ds_buf_append_str(&buf, " AS target_key, t.xmax = 0 AS fresh");
    }
    ds_buf_appendf(&buf,
                   "\n), old AS (\n"
                   "    DELETE FROM %s AS l\n"
                   "    WHERE l.ctid = ANY (ARRAY(\n"
                   "        SELECT x.ctid FROM moved AS m CROSS JOIN LATERAL (\n"
                   "            SELECT x.ctid FROM %s AS x\n"
                   "            WHERE x.target = $1::text AND x.source_topic = $2::text"
                   " AND x.source_key = m.source_key\n"
                   "              AND x.target_key IS DISTINCT FROM m.target_key OFFSET 0) AS x))\n"
                   "    RETURNING l.target_key\n"
                   "), link AS (\n"
                   "    INSERT INTO %s AS l (target, source_topic, source_key, target_key, vals)\n"
                   "    SELECT $1::text, $2::text, i.p3, i.target_key,\n        ",
                   links, links, links);
    append_contribution(&buf, t, values);
    ds_buf_append_str(&buf, "\n    FROM w AS i WHERE i.ok\n"
                            "    ON CONFLICT (target, source_topic, source_key, target_key)\n"
                            "        DO UPDATE SET vals = EXCLUDED.vals\n)");
    append_touched(&buf, t, c->names, UNSETTLED_KEYS " UNION ALL SELECT target_key FROM old");
    if (t->on_delete != ON_DELETE_IGNORE) {
        ds_buf_append_str(&buf, ", ");
        append_orphan_keys(&buf, t, c->names, "(SELECT DISTINCT target_key FROM old)");
        ds_buf_appendf(&buf,
                       "    WHERE NOT EXISTS (SELECT 1 FROM moved AS m"
                       " WHERE m.target_key = o.target_key)\n"
                       "      AND NOT EXISTS (SELECT 1 FROM %s AS x\n"
                       "        WHERE x.target = $1::text AND x.target_key = o.target_key\n"
                       "          AND NOT (x.source_topic = $2::text AND x.source_key IN "
                       "(SELECT m.source_key FROM moved AS m)))\n"
                       "), gone AS (\n    ",
                       links);
        append_gone(&buf, t, "    ", c->names);
        ds_buf_append_str(&buf, "\n)");
    }
    if (has_value_columns(t)) {
        /* A key some rows left: the first remaining contributor outside the batch gives the
         * values, unless a row of the batch comes before it (then "up" wrote that row's). */
        ds_buf_append_str(&buf, ", refill AS (\n    ");
        append_refill(&buf, t, c->names, "(SELECT DISTINCT target_key FROM old)",
                      "NOT (x.source_topic = $2::text AND x.source_key IN "
                      "(SELECT m.source_key FROM moved AS m))",
                      "NOT EXISTS (SELECT 1 FROM win WHERE win.target_key = n.target_key)");
        ds_buf_append_str(&buf, "\n)");
    }
    free(values);
    ds_buf_append_str(&buf, "\nSELECT i.ord FROM w AS i WHERE NOT i.ok");
    ds_buf_append_str(&plain, buf.data + rest);
    t->batch_body_plain = plain.data;
    return buf.data;
}

static char *compile_in_place_batch(compiler_t *c, ds_mapping_target_t *t)
{
    ds_buf_t buf = DS_BUF_INIT, set = DS_BUF_INIT, now = DS_BUF_INIT;
    bool first = true;

    /* Parameters in write_sql's order: each column's keep flag, then its value; the keys. */
    for (int i = 0; i < t->ncolumns; i++) {
        ds_mapping_column_t *col = &t->columns[i];
        int keep = 0;

        if (col->is_key)
            continue;
        c->column = i;
        if (col->nrefs > 0)
            keep = add_param(c, PARAM_KEEP, NULL, i);
        compile_expr(c, col->expr);
        ds_buf_append_str(&set, first ? "\n        " : ",\n        ");
        ds_buf_append_str(&now, first ? "" : ", ");
        first = false;
        ds_buf_append_ident(&set, col->name);
        if (keep) {
            ds_buf_appendf(&set, " = CASE WHEN i.p%d THEN ", keep);
            append_column(&set, "t", col->name);
            ds_buf_appendf(&set, " ELSE %s END", col->expr->sql);
            ds_buf_appendf(&now, "CASE WHEN i.p%d THEN ", keep);
            append_column(&now, "t", col->name);
            ds_buf_appendf(&now, " ELSE %s END", col->expr->sql);
        } else {
            ds_buf_appendf(&set, " = %s", col->expr->sql);
            ds_buf_append_str(&now, col->expr->sql);
        }
    }
    for (int i = 0; i < t->nkey; i++) {
        c->column = t->key[i];
        compile_expr(c, t->columns[t->key[i]].expr);
    }
    ds_buf_appendf(&buf, "w AS (\n    SELECT i.*, %s AS ok FROM i\n), up AS (\n    UPDATE ",
                   c->required.len ? c->required.data : "true");
    append_table(&buf, c->names, t->schema, t->table);
    ds_buf_appendf(&buf, " AS t SET%s\n    FROM (SELECT DISTINCT ON (", set.data);
    append_key_params(&buf, t);
    ds_buf_append_str(&buf, ") * FROM w AS i WHERE i.ok ORDER BY ");
    append_key_params(&buf, t);
    ds_buf_append_str(&buf, ", i.ord DESC) AS i\n    WHERE ");
    for (int i = 0; i < t->nkey; i++) {
        ds_mapping_column_t *col = &t->columns[t->key[i]];

        if (i)
            ds_buf_append_str(&buf, " AND ");
        append_column(&buf, "t", col->name);
        ds_buf_appendf(&buf, " = %s", col->expr->sql);
    }
    if (t->pub.fan_out) {
        ds_buf_append_str(&buf, " AND ");
        append_fan_out_changed(&buf, t, &now);
    }
    ds_buf_append_str(&buf, "\n)\nSELECT i.ord FROM w AS i WHERE NOT i.ok");
    ds_buf_free(&set);
    ds_buf_free(&now);
    return buf.data;
}

/* Types whose values' text is the same whatever the typmod of the column holding them. */
static bool typmod_free(const char *type)
{
    static const char *const types[] = {"uuid",     "text", "integer", "bigint",
                                        "smallint", "date", "boolean", "character varying"};

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(type, types[i]) == 0)
            return true;
    }
    return false;
}

char *ds_mapping_batch_statement(const ds_target_t *pub, const char *const *param_types)
{
    /* pub is the first member of the compiled target. */
    const ds_mapping_target_t *t = (const ds_mapping_target_t *)pub;
    const char *body = pub->batch_body;
    ds_buf_t buf = DS_BUF_INIT;
    int n = pub->write_nparams;
    int first = pub->in_place ? 1 : 3;

    if (!pub->batch_body)
        return NULL;
    ds_buf_append_str(&buf, "WITH i AS (\n    SELECT * FROM unnest(");
    for (int k = first; k <= n + 2; k++) {
        const char *type = k <= n ? param_types[k - 1] : k == n + 1 ? "bigint" : "text";

        ds_buf_appendf(&buf, "%s$%d::%s[]", k > first ? ", " : "", k, type);
    }
    ds_buf_append_str(&buf, ")\n        AS i(");
    for (int k = first; k <= n; k++)
        ds_buf_appendf(&buf, "p%d, ", k);
    if (t->batch_body_plain) {
        bool plain = true;

        for (int k = 0; k < t->nkey; k++)
            plain = plain && typmod_free(param_types[t->columns[t->key[k]].expr->param - 1]);
        if (plain)
            body = t->batch_body_plain;
    }
    ds_buf_appendf(&buf, "ord, op)\n), %s", body);
    return buf.data;
}

/* The tables an expression tree looks up in: does one of them equal schema.table? */
static bool expr_reads(const ds_mapping_expr_t *e, const char *schema, const char *table)
{
    if (!e)
        return false;
    if (e->kind == EXPR_LOOKUP && strcmp(e->lookup_schema, schema) == 0 &&
        strcmp(e->lookup_table, table) == 0)
        return true;
    for (int i = 0; i < e->nargs; i++) {
        if (expr_reads(e->args[i], schema, table))
            return true;
    }
    for (int i = 0; i < e->ncases; i++) {
        if (expr_reads(e->case_values[i], schema, table))
            return true;
    }
    return expr_reads(e->map_default, schema, table);
}

bool ds_mapping_target_reads(const ds_mapping_set_t *set, int reader, int written)
{
    const ds_mapping_target_t *r = &set->targets[reader], *w = &set->targets[written];

    for (int i = 0; i < r->ncolumns; i++) {
        if (expr_reads(r->columns[i].expr, w->schema, w->table))
            return true;
    }
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * Targets without links
 *
 * A target whose key is an injective function of the source row's key (find_key_source_columns:
 * source columns, and uuid5s of them) takes each of its rows from one source row, and the
 * source key says which row that is. Links then record nothing the key does not give: no
 * merge to rule, no old key to find (a key change comes as a delete and a create), no
 * contribution to refill from. Such a target, when its mapping says "links": false (links
 * stay the default because of the truncate below), gets a second form (pub.linkless), written
 * without dualsync.links, which costs an upsert what the plain INSERT ... SELECT costs:
 *   upsert    INSERT ... ON CONFLICT DO UPDATE; a column holding an unchanged TOASTed value
 *             keeps the row's (the row is this source row's alone);
 *   unlink    on_delete for the row the key columns give: the evaluator computes them from
 *             the delete's "before" (the key columns are there) or the update's row;
 *   batch     both for a segment of rows at once ("up" the 'u' rows, "gone" the 'd' rows; a
 *             segment holds each source key once, so no row is written twice);
 *   truncate  on_delete for every row of the table: a one-partition topic only; over several
 *             partitions the evaluator refuses it (nothing tells which rows came through
 *             which partition).
 * The statements take write_sql's parameters (truncate: truncate_sql's), so that the evaluator
 * and the batch fill both forms alike; a parameter a statement does not read is typed in a
 * one-row "unread" subquery, since PostgreSQL must know the type of every parameter.
 * Which form a change takes is decided per change (mapping_eval.c, add_write): its message key
 * must be exactly key_source_columns and count no copies. Both depend on the source table's
 * replica identity only, so all of a target's changes take the same form.
 * ------------------------------------------------------------------------------------------- */

/* Whether target @p t gets a form without links. */
static bool goes_without_links(const ds_mapping_target_t *t)
{
    return !t->pub.in_place && t->links_off && t->pub.nkey_source_columns > 0 &&
           batchable(t);
}

/* Whether parameter @p k (1-based) of write_sql is one of the key columns'. */
static bool is_key_param(const ds_mapping_target_t *t, int k)
{
    for (int i = 0; i < t->nkey; i++) {
        if (t->columns[t->key[i]].expr->param == k)
            return true;
    }
    return false;
}

/* ", (SELECT $1::text, ...) AS unread": write_sql's parameters @p from..@p n, typed, except
 * the key columns' when @p skip_key and those in @p read (a list of 1-based numbers, 0 ended). */
static void append_unread(ds_buf_t *buf, const ds_mapping_target_t *t, int n, bool skip_key,
                          bool skip_values)
{
    bool first = true;

    for (int k = 1; k <= n; k++) {
        const char *type = "text";

        if (skip_key && is_key_param(t, k))
            continue;
        switch (t->params[k - 1].kind) {
        case PARAM_VALUE:
            if (skip_values)
                continue;
            break;
        case PARAM_KEEP:
            if (skip_values)
                continue;
            type = "boolean";
            break;
        case PARAM_COPY_COMMIT:
        case PARAM_COPY_LSN:
            type = "pg_lsn";
            break;
        default:
            break;
        }
        ds_buf_appendf(buf, "%s$%d::%s", first ? "(SELECT " : ", ", k, type);
        first = false;
    }
    if (!first)
        ds_buf_append_str(buf, ") AS unread");
}

/* "t.k1 = <key expression> AND ...": the key columns as the compiled expressions give them. */
static void append_key_match(ds_buf_t *buf, const ds_mapping_target_t *t)
{
    for (int i = 0; i < t->nkey; i++) {
        const ds_mapping_column_t *col = &t->columns[t->key[i]];

        if (i)
            ds_buf_append_str(buf, " AND ");
        append_column(buf, "t", col->name);
        ds_buf_appendf(buf, " = %s", col->expr->sql);
    }
}

/* The batch body of the form without links; @p c has just compiled the linked one. */
static char *compile_linkless_batch(compiler_t *c, ds_mapping_target_t *t)
{
    ds_buf_t buf = DS_BUF_INIT;

    ds_buf_appendf(&buf,
                   "w AS (\n"
                   "    SELECT i.*, %s AS ok FROM i, (SELECT $1::text, $2::text) AS unread\n"
                   "    WHERE i.op = 'u'\n"
                   "), up AS (\n    ",
                   c->required.len ? c->required.data : "true");
    append_insert_into(&buf, c, t);
    ds_buf_append_str(&buf, "\n    SELECT ");
    for (int i = 0; i < t->ncolumns; i++)
        ds_buf_appendf(&buf, "%s%s", i ? ", " : "", t->columns[i].expr->sql);
    ds_buf_append_str(&buf, "\n    FROM w AS i WHERE i.ok");
    append_conflict_update(&buf, t, NULL, NULL);
    ds_buf_append_str(&buf, "\n)");
    if (t->on_delete != ON_DELETE_IGNORE) {
        ds_buf_append_str(&buf, ", gone AS (\n    ");
        append_on_delete(&buf, t, c->names, " ", "i", true);
        ds_buf_append_str(&buf, "i.op = 'd' AND ");
        append_key_match(&buf, t);
        ds_buf_append_str(&buf, "\n)");
    }
    ds_buf_append_str(&buf, "\nSELECT i.ord FROM w AS i WHERE NOT i.ok");
    return buf.data;
}

/* The upsert without links; @p c has just compiled write_sql (its parameter numbers). */
static char *compile_linkless_upsert(compiler_t *c, ds_mapping_target_t *t)
{
    ds_buf_t buf = DS_BUF_INIT;

    ds_buf_append_str(&buf, "WITH up AS (\n    ");
    append_insert_into(&buf, c, t);
    ds_buf_append_str(&buf, "\n    SELECT ");
    for (int i = 0; i < t->ncolumns; i++)
        ds_buf_appendf(&buf, "%s%s", i ? ", " : "", t->columns[i].expr->sql);
    if (c->required.len)
        ds_buf_appendf(&buf, "\n    WHERE %s", c->required.data);
    /* A kept column keeps the row's value: the row is this source row's alone. */
    append_conflict_update(&buf, t, "", NULL);
    ds_buf_appendf(&buf, "\n)\nSELECT %s AS applied FROM ",
                   c->required.len ? c->required.data : "true");
    append_unread(&buf, t, c->nparams, true, true);
    return buf.data;
}

/* The unlink without links: write_sql's parameters, of which it reads the key columns'. */
static char *compile_linkless_unlink(compiler_t *c, ds_mapping_target_t *t)
{
    ds_buf_t buf = DS_BUF_INIT, unread = DS_BUF_INIT;

    if (t->on_delete == ON_DELETE_IGNORE)
        return NULL;
    append_unread(&unread, t, c->nparams, true, false);
    append_on_delete(&buf, t, c->names, " ", unread.data, true);
    append_key_match(&buf, t);
    ds_buf_free(&unread);
    return buf.data;
}

/* The truncate without links: every row of the table; $1..$4 as truncate_sql's. */
static char *compile_linkless_truncate(const ds_mapping_target_t *t, const sql_names_t *names)
{
    ds_buf_t buf = DS_BUF_INIT;

    if (t->on_delete == ON_DELETE_IGNORE)
        return NULL;
    append_on_delete(&buf, t, names, " ",
                     "(SELECT $1::text, $2::text, $3::text, $4::text) AS unread", true);
    ds_buf_append_str(&buf, "true");
    return buf.data;
}

/* t->linkless_form from what compiling @p t left: @p batch_body (owned; NULL when none) and,
 * in @p c, the row form's expressions. */
static void build_linkless_form(compiler_t *c, ds_mapping_target_t *t, char *batch_body)
{
    ds_mapping_target_t *lf = ds_mapping_xmalloc(sizeof(*lf));

    *lf = *t;
    lf->linkless_form = NULL;
    lf->batch_body_plain = NULL;
    lf->pub.linkless = NULL;
    lf->pub.keeps_no_links = true;
    lf->pub.settle_sql = NULL;
    lf->pub.copy_param = 0;
    lf->pub.write_sql = compile_linkless_upsert(c, t);
    lf->pub.unlink_sql = compile_linkless_unlink(c, t);
    lf->pub.unlink_nparams = t->pub.write_nparams;
    lf->pub.truncate_sql = compile_linkless_truncate(t, c->names);
    lf->pub.batch_body = batch_body;
    t->linkless_form = lf;
    t->pub.linkless = &lf->pub;
}

void ds_mapping_free_linkless_form(ds_mapping_target_t *t)
{
    ds_mapping_target_t *lf = t->linkless_form;

    if (!lf)
        return;
    free((char *)lf->pub.write_sql);
    free((char *)lf->pub.unlink_sql);
    free((char *)lf->pub.truncate_sql);
    free((char *)lf->pub.batch_body);
    free(lf);
    t->linkless_form = NULL;
    t->pub.linkless = NULL;
}

/* Frees what compiling gave an expression tree (SQL fragments, parameter numbers). */
static void uncompile_expr(ds_mapping_expr_t *e)
{
    if (!e)
        return;
    free(e->sql);
    free(e->exists);
    e->sql = NULL;
    e->exists = NULL;
    e->param = 0;
    for (int i = 0; i < e->nargs; i++)
        uncompile_expr(e->args[i]);
    for (int i = 0; i < e->ncases; i++)
        uncompile_expr(e->case_values[i]);
    uncompile_expr(e->map_default);
}

static void compile_target(ds_mapping_target_t *t, const sql_names_t *names)
{
    compiler_t c = {.target = t, .names = names};
    bool linkless = goes_without_links(t);
    char *linkless_batch = NULL;
    int nkeep = 0;
    int *keep;

    /* The batch statement first: it leaves the expressions compiled its way, so they are
     * compiled again for write_sql, which the evaluator's parameter plan (t->params) and
     * everything else reads. Both walks number the parameters identically. */
    if (batchable(t)) {
        compiler_t b = {.target = t, .names = names, .batch = true};

        t->pub.batch_body = t->pub.in_place ? compile_in_place_batch(&b, t)
                                            : compile_upsert_batch(&b, t);
        if (linkless)
            linkless_batch = compile_linkless_batch(&b, t);
        ds_buf_free(&b.required);
        free(t->params);
        t->params = NULL;
        for (int j = 0; j < t->ncolumns; j++)
            uncompile_expr(t->columns[j].expr);
    }
    if (t->pub.in_place)
        compile_in_place(&c, t);
    else
        compile_upsert(&c, t);
    t->pub.write_nparams = c.nparams;
    /* The values serve unlink_sql and truncate_sql too (up to $6; mapping_eval.c). */
    t->values = ds_mapping_xcalloc((size_t)(c.nparams > 6 ? c.nparams : 6) + 1,
                                   sizeof(*t->values));
    t->keep = ds_mapping_xcalloc((size_t)t->ncolumns + 1, sizeof(*t->keep));
    keep = ds_mapping_xcalloc((size_t)c.nparams + 1, sizeof(*keep));
    for (int k = 0; k < c.nparams; k++) {
        if (t->params[k].kind == PARAM_KEEP)
            keep[nkeep++] = k + 1;
    }
    t->pub.keep_params = keep;
    t->pub.nkeep_params = nkeep;
    if (linkless)
        build_linkless_form(&c, t, linkless_batch);

    ds_buf_free(&c.required);
}

/* Adds expression @p e's column to @p cols when it is a plain column or a uuid5 of plain
 * columns and constants (both injective); returns false for anything else. */
static bool add_key_source_columns(const ds_mapping_expr_t *e, const char **cols, int *n, int cap)
{
    if (e->kind == EXPR_UUID5) {
        for (int i = 0; i < e->nargs; i++) {
            if (e->args[i]->kind == EXPR_CONST)
                continue;
            if (e->args[i]->kind != EXPR_COLUMN ||
                !add_key_source_columns(e->args[i], cols, n, cap))
                return false;
        }
        return true;
    }
    if (e->kind != EXPR_COLUMN)
        return false;
    for (int i = 0; i < *n; i++) {
        if (strcmp(cols[i], e->text) == 0)
            return true;
    }
    if (*n >= cap)
        return false;
    cols[(*n)++] = e->text;
    return true;
}

/*
 * pub.key_source_columns: when every key column is a source column or a uuid5 of source
 * columns and constants, the source columns the key reads. If they are exactly the source
 * row's key (the message key's fields: the applier checks), each target row has one source
 * row, and no two transactions can change its links at once: its rows need no settling.
 * Targets of a shared "merge" name never qualify (their rows take several topics' rows).
 */
static void find_key_source_columns(ds_mapping_target_t *t)
{
    int cap = 0, n = 0;
    const char **cols;

    for (int i = 0; i < t->nkey; i++)
        cap += 1 + t->columns[t->key[i]].expr->nargs;
    cols = ds_mapping_xcalloc((size_t)cap + 1, sizeof(*cols));
    for (int i = 0; i < t->nkey && !t->merge; i++) {
        if (!add_key_source_columns(t->columns[t->key[i]].expr, cols, &n, cap)) {
            n = 0;
            break;
        }
    }
    if (n == 0) {
        free(cols);
        cols = NULL;
    }
    t->pub.key_source_columns = cols;
    t->pub.nkey_source_columns = n;
}

void ds_mapping_compile_target(ds_mapping_target_t *t)
{
    find_key_source_columns(t);
    compile_target(t, NULL);
}

void ds_mapping_set_rename_tables(ds_mapping_set_t *set, ds_mapping_table_name_fn fn, void *arg,
                                  const char *links)
{
    for (int i = 0; i < set->ntargets; i++) {
        ds_mapping_target_t *t = &set->targets[i];
        sql_names_t names = {.fn = fn, .arg = arg, .links = links, .target = &t->pub};

        free((char *)t->pub.write_sql);
        free((char *)t->pub.unlink_sql);
        free((char *)t->pub.truncate_sql);
        free((char *)t->pub.batch_body);
        free((char *)t->pub.settle_sql);
        free((int *)t->pub.keep_params);
        free(t->batch_body_plain);
        ds_mapping_free_linkless_form(t);
        t->batch_body_plain = NULL;
        t->pub.write_sql = t->pub.unlink_sql = t->pub.truncate_sql = t->pub.batch_body = NULL;
        t->pub.settle_sql = NULL;
        t->pub.keep_params = NULL;
        free(t->params);
        free(t->values);
        free(t->keep);
        t->params = NULL;
        t->values = NULL;
        t->keep = NULL;
        for (int j = 0; j < t->ncolumns; j++) {
            t->columns[j].keep_param = 0;
            uncompile_expr(t->columns[j].expr);
        }
        /* The same compiler with other names: the parameter plan comes out identical, so
         * ds_mapping_eval() fills the renamed statements exactly as it fills apply's. */
        compile_target(t, &names);
    }
}

void ds_mapping_target_describe(const ds_mapping_set_t *set, int i, ds_target_shape_t *shape)
{
    const ds_mapping_target_t *t = &set->targets[i];

    shape->schema = t->schema;
    shape->table = t->table;
    shape->source_schema = t->file->source_schema;
    shape->source_table = t->file->source_table;
    shape->topic = t->file->topic;
    shape->file = t->file->path;
    shape->file_index = (int)(t->file - set->files);
    shape->ncolumns = t->ncolumns;
    shape->nkey = t->nkey;
    shape->on_delete_ignore = t->on_delete == ON_DELETE_IGNORE;
    shape->soft_column = t->on_delete == ON_DELETE_SOFT ? t->soft_column : NULL;
}

const char *ds_mapping_target_column(const ds_mapping_set_t *set, int i, int column, bool *is_key)
{
    const ds_mapping_column_t *col = &set->targets[i].columns[column];

    if (is_key)
        *is_key = col->is_key;
    return col->name;
}

const char *ds_mapping_target_key(const ds_mapping_set_t *set, int i, int k)
{
    const ds_mapping_target_t *t = &set->targets[i];

    return t->columns[t->key[k]].name;
}

int ds_mapping_set_nfiles(const ds_mapping_set_t *set)
{
    return set->nfiles;
}
