/*
 * mapping_load.c: reads mapping files (format: mappings/README.md), validates every field and
 * builds the structures of mapping_internal.h; then has mapping_sql.c compile each target.
 *
 * Every problem of every file is collected before failing, each as
 * "FILE:LINE:COL: JSON.PATH: what is wrong", so one run shows everything to fix. jansson does
 * not remember where values sit in the text, so positions come from the small tokenizer of
 * jsonpos.h, which walks the already-parsed text to a JSON path.
 *
 * Names (schemas, tables, columns) are taken as written, case included, and always quoted in
 * SQL: "public.Users" is the table "Users", as the catalog spells it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualsync/jsonpos.h"
#include <libpq-fe.h>

#include "mapping_internal.h"

/* ---------------------------------------------------------------------------------------------
 * Suggestions
 * ------------------------------------------------------------------------------------------- */

const char *ds_mapping_suggest(const char *name, const char *const *candidates)
{
    const char *best = NULL;
    size_t best_distance = 3;

    for (int i = 0; candidates[i]; i++) {
        size_t d = ds_edit_distance(name, candidates[i], best_distance - 1);

        /* Two edits turn "x" into "id": a suggestion must keep most of what was typed. */
        if (d < best_distance && d < strlen(name)) {
            best = candidates[i];
            best_distance = d;
        }
    }
    if (best)
        return best;
    /* "lowercase" for "lower", "soft" for "soft_delete": one is the start of the other. */
    for (int i = 0; candidates[i]; i++) {
        size_t ln = strlen(name), lc = strlen(candidates[i]);
        size_t shorter = ln < lc ? ln : lc;

        if (shorter >= 3 && strncmp(name, candidates[i], shorter) == 0)
            return candidates[i];
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * The loader and its messages
 * ------------------------------------------------------------------------------------------- */

typedef struct loader {
    const char *file;               /* as given, for messages */
    const char *text;               /* the file's bytes */
    size_t len;                     /* their number */
    const char *const *connections; /* the config's target names, NULL-terminated */
    ds_json_step_t *path;           /* JSON path of the value being checked */
    int depth;                      /* steps in path */
    int path_cap;                   /* allocated steps */
    ds_buf_t *problems;             /* every problem so far, one per line */
    int *nproblems;                 /* their number */
} loader_t;

static void push_key(loader_t *ld, const char *key)
{
    if (ld->depth == ld->path_cap) {
        ld->path_cap = ld->path_cap ? ld->path_cap * 2 : 16;
        ld->path = ds_mapping_xrealloc(ld->path, sizeof(*ld->path) * (size_t)ld->path_cap);
    }
    ld->path[ld->depth++] = (ds_json_step_t){key, 0};
}

static void push_index(loader_t *ld, size_t index)
{
    push_key(ld, NULL);
    ld->path[ld->depth - 1].index = index;
}

static void pop(loader_t *ld)
{
    ld->depth--;
}

/* "$.targets[0].columns.email", "$.targets[0].columns[\"e-mail\"]" */
static void format_path(ds_buf_t *buf, const ds_json_step_t *path, int depth)
{
    ds_buf_append_char(buf, '$');
    for (int i = 0; i < depth; i++) {
        if (!path[i].key) {
            ds_buf_appendf(buf, "[%zu]", path[i].index);
        } else if (ds_json_is_plain_key(path[i].key)) {
            ds_buf_appendf(buf, ".%s", path[i].key);
        } else {
            ds_buf_append_char(buf, '[');
            ds_buf_append_json_string(buf, path[i].key, strlen(path[i].key));
            ds_buf_append_char(buf, ']');
        }
    }
}

/*
 * "FILE:LINE:COL: PATH" for the value at the current path (with at_key: the position of its
 * key), the path shown without its last shown_drop steps.
 */
static void append_where(loader_t *ld, ds_buf_t *buf, bool at_key, int shown_drop)
{
    ds_json_pos_t pos;

    if (ds_json_locate(ld->text, ld->len, ld->path, ld->depth, at_key, &pos))
        ds_buf_appendf(buf, "%s:%d:%d: ", ld->file, pos.line, pos.column);
    else
        ds_buf_appendf(buf, "%s: ", ld->file);
    format_path(buf, ld->path, ld->depth - shown_drop);
}

static char *where(loader_t *ld, bool at_key)
{
    ds_buf_t buf = DS_BUF_INIT;

    append_where(ld, &buf, at_key, 0);
    return buf.data;
}

static void vproblem(loader_t *ld, bool at_key, int shown_drop, const char *fmt, va_list ap)
{
    char message[2048];

    vsnprintf(message, sizeof(message), fmt, ap);
    if (ld->problems->len)
        ds_buf_append_char(ld->problems, '\n');
    append_where(ld, ld->problems, at_key, shown_drop);
    ds_buf_appendf(ld->problems, ": %s", message);
    (*ld->nproblems)++;
}

/* A problem with the value at the current path. Returns false, so callers can return it. */
static bool problem(loader_t *ld, const char *fmt, ...) DS_PRINTF(2, 3);

static bool problem(loader_t *ld, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vproblem(ld, false, 0, fmt, ap);
    va_end(ap);
    return false;
}

/* A problem with key @p key of the object at the current path, shown at the key. */
static bool problem_key(loader_t *ld, const char *key, int shown_drop, const char *fmt, ...)
    DS_PRINTF(4, 5);

static bool problem_key(loader_t *ld, const char *key, int shown_drop, const char *fmt, ...)
{
    va_list ap;

    push_key(ld, key);
    va_start(ap, fmt);
    vproblem(ld, true, shown_drop, fmt, ap);
    va_end(ap);
    pop(ld);
    return false;
}

/* How a JSON value reads in a message: "abc", 42, true, null, an object, an array. */
static void describe(const json_t *j, char *out, size_t size)
{
    ds_mapping_arena_t arena = {0};
    ds_mapping_value_t v;

    switch (json_typeof(j)) {
    case JSON_OBJECT:
        snprintf(out, size, "%s", json_object_size(j) ? "an object" : "{}");
        return;
    case JSON_ARRAY:
        snprintf(out, size, "%s", json_array_size(j) ? "an array" : "[]");
        return;
    case JSON_STRING: {
        ds_buf_t buf = DS_BUF_INIT;
        size_t len = json_string_length(j);
        bool cut = len > 60;

        if (cut) {
            len = 60;
            while (len > 0 && ((unsigned char)json_string_value(j)[len] & 0xC0) == 0x80)
                len--;
        }
        ds_buf_append_json_string(&buf, json_string_value(j), len);
        snprintf(out, size, "%s%s", buf.data, cut ? "..." : "");
        ds_buf_free(&buf);
        return;
    }
    default:
        ds_mapping_json_text(j, &arena, &v);
        snprintf(out, size, "%s", v.p ? v.p : "null");
        ds_mapping_arena_free(&arena);
        return;
    }
}

static bool expected(loader_t *ld, const json_t *j, const char *what)
{
    char found[128];

    describe(j, found, sizeof(found));
    return problem(ld, "expected %s, got %s", what, found);
}

/* ", did you mean \"x\"?" or " (expected one of a, b, c)" after an unknown name. */
static void hint(char *out, size_t size, const char *name, const char *const *candidates,
                 const char *list_intro)
{
    const char *close = ds_mapping_suggest(name, candidates);
    ds_buf_t buf = DS_BUF_INIT;

    if (close) {
        snprintf(out, size, ", did you mean \"%s\"?", close);
        return;
    }
    for (int i = 0; candidates[i]; i++)
        ds_buf_appendf(&buf, "%s%s", i ? ", " : "", candidates[i]);
    snprintf(out, size, " (%s %s)", list_intro, buf.data ? buf.data : "none");
    ds_buf_free(&buf);
}

/* Reports every key of @p obj not in @p known; true when there is none. */
static bool check_fields(loader_t *ld, const json_t *obj, const char *const *known,
                         const char *what)
{
    const char *key;
    json_t *value;
    bool ok = true;
    char intro[128], h[512];

    snprintf(intro, sizeof(intro), "%s has", what);
    json_object_foreach((json_t *)obj, key, value)
    {
        bool found = false;

        for (int i = 0; known[i] && !found; i++)
            found = strcmp(key, known[i]) == 0;
        if (!found) {
            hint(h, sizeof(h), key, known, intro);
            ok = problem_key(ld, key, 0, "unknown field%s", h);
        }
    }
    return ok;
}

static bool require_field(loader_t *ld, const json_t *obj, const char *key, const char *what)
{
    if (json_object_get(obj, key))
        return true;
    return problem(ld, "%s needs the field \"%s\"", what, key);
}

/*
 * "schema.table" → its two names. A part may be double-quoted (with "" for a quote) to hold
 * a dot; otherwise it is taken as written.
 */
static bool parse_qualified(const char *text, char **schema, char **table)
{
    char *parts[2] = {NULL, NULL};
    const char *p = text;

    for (int i = 0; i < 2; i++) {
        ds_buf_t buf = DS_BUF_INIT;

        if (*p == '"') {
            for (p++;; p++) {
                if (*p == '\0')
                    goto fail_buf;
                if (*p == '"') {
                    if (p[1] != '"')
                        break;
                    p++;
                }
                ds_buf_append_char(&buf, *p);
            }
            p++;
        } else {
            while (*p && *p != '.' && *p != '"')
                ds_buf_append_char(&buf, *p++);
        }
        if (!buf.len)
            goto fail_buf;
        parts[i] = buf.data;
        if (i == 0 && *p++ != '.')
            goto fail;
        continue;
    fail_buf:
        ds_buf_free(&buf);
        goto fail;
    }
    if (*p != '\0')
        goto fail;
    *schema = parts[0];
    *table = parts[1];
    return true;

fail:
    free(parts[0]);
    free(parts[1]);
    return false;
}

static bool get_qualified(loader_t *ld, const json_t *j, char **schema, char **table)
{
    if (!json_is_string(j) || !parse_qualified(json_string_value(j), schema, table))
        return expected(ld, j, "\"schema.table\"");
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Expressions
 * ------------------------------------------------------------------------------------------- */

static ds_mapping_expr_t *parse_expr(loader_t *ld, const json_t *j);

static const char *const function_names[] = {
    "const", "lower",           "upper",        "trim", "concat", "coalesce", "map",
    "uuid5", "normalize_phone", "parse_period", "cast", "lookup", "sql",      NULL,
};

static ds_mapping_expr_t *new_expr(ds_mapping_expr_kind_t kind)
{
    ds_mapping_expr_t *e = ds_mapping_xcalloc(1, sizeof(*e));

    e->kind = kind;
    return e;
}

static ds_mapping_expr_t *const_expr(const char *text, size_t len)
{
    ds_mapping_expr_t *e = new_expr(EXPR_CONST);

    if (text) {
        e->text = ds_mapping_xmalloc(len + 1);
        memcpy(e->text, text, len);
        e->text[len] = '\0';
        e->text_len = len;
    }
    return e;
}

/* A JSON value as a constant: strings as they are, other scalars as their text, objects and
 * arrays as compact JSON, null as SQL NULL. */
static ds_mapping_expr_t *json_const(const json_t *j)
{
    ds_mapping_arena_t arena = {0};
    ds_mapping_value_t v;
    ds_mapping_expr_t *e;

    ds_mapping_json_text(j, &arena, &v);
    e = const_expr(v.p, v.len);
    ds_mapping_arena_free(&arena);
    return e;
}

/* Adds child's flags to parent and stores it as the next argument. */
static void add_arg(ds_mapping_expr_t *parent, ds_mapping_expr_t *child)
{
    parent->args =
        ds_mapping_xrealloc(parent->args, sizeof(*parent->args) * (size_t)(parent->nargs + 1));
    parent->args[parent->nargs++] = child;
    parent->in_db |= child->in_db;
    parent->has_refs |= child->has_refs;
}

/* The argument of a function computed in C must be computed in C too. */
static bool c_operand(loader_t *ld, const ds_mapping_expr_t *e, const char *function)
{
    if (!e->in_db)
        return true;
    return problem(ld,
                   "%s is computed by dualsync, but this value comes from the database "
                   "(cast, lookup or sql); compute the whole expression in SQL instead, e.g. "
                   "{\"sql\": ..., \"args\": [...]}",
                   function);
}

static bool valid_column_ref(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || name[0] == ' ' || name[len - 1] == ' ')
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p < 0x20 || *p == 0x7F)
            return false;
    }
    return true;
}

static ds_mapping_expr_t *parse_string_expr(loader_t *ld, const json_t *j)
{
    const char *s = json_string_value(j);
    ds_mapping_expr_t *e;

    if (s[0] != '$')
        return const_expr(s, json_string_length(j));
    if (s[1] == '$')
        return const_expr(s + 1, json_string_length(j) - 1);
    if (!valid_column_ref(s + 1)) {
        problem(ld,
                "\"%s\" is not a source column reference: \"$\" is followed by a column name "
                "(no leading or trailing spaces, no control characters); write \"$$...\" for a "
                "text starting with \"$\"",
                s);
        return NULL;
    }
    e = new_expr(EXPR_COLUMN);
    e->text = ds_mapping_xstrdup(s + 1);
    e->has_refs = true;
    return e;
}

/* lower, upper, trim, normalize_phone, parse_period: one argument computed in C. */
static ds_mapping_expr_t *parse_unary(loader_t *ld, const char *name, const json_t *arg,
                                      ds_mapping_expr_kind_t kind)
{
    ds_mapping_expr_t *e, *a;

    push_key(ld, name);
    a = parse_expr(ld, arg);
    if (a && !c_operand(ld, a, name)) {
        ds_mapping_expr_free(a);
        a = NULL;
    }
    pop(ld);
    if (!a)
        return NULL;
    e = new_expr(kind);
    add_arg(e, a);
    return e;
}

/* concat, coalesce: a non-empty array of C-computed values. */
static ds_mapping_expr_t *parse_list(loader_t *ld, const char *name, const json_t *arg,
                                     ds_mapping_expr_kind_t kind)
{
    ds_mapping_expr_t *e;
    bool ok = true;

    push_key(ld, name);
    if (!json_is_array(arg) || json_array_size(arg) == 0) {
        expected(ld, arg, "a non-empty array of expressions");
        pop(ld);
        return NULL;
    }
    e = new_expr(kind);
    for (size_t i = 0; i < json_array_size(arg); i++) {
        ds_mapping_expr_t *a;

        push_index(ld, i);
        a = parse_expr(ld, json_array_get(arg, i));
        if (a && !c_operand(ld, a, name)) {
            ds_mapping_expr_free(a);
            a = NULL;
        }
        if (a)
            add_arg(e, a);
        else
            ok = false;
        pop(ld);
    }
    pop(ld);
    if (!ok) {
        ds_mapping_expr_free(e);
        return NULL;
    }
    return e;
}

static ds_mapping_expr_t *parse_map(loader_t *ld, const json_t *arg)
{
    static const char *const fields[] = {"value", "cases", "default", NULL};
    ds_mapping_expr_t *e = new_expr(EXPR_MAP), *a;
    const json_t *cases;
    const char *key;
    json_t *value;
    bool ok = true;

    push_key(ld, "map");
    if (!json_is_object(arg)) {
        expected(ld, arg, "an object with \"value\", \"cases\" and optionally \"default\"");
        goto fail;
    }
    ok &= check_fields(ld, arg, fields, "a map");
    ok &= require_field(ld, arg, "value", "a map");
    ok &= require_field(ld, arg, "cases", "a map");
    if (json_object_get(arg, "value")) {
        push_key(ld, "value");
        a = parse_expr(ld, json_object_get(arg, "value"));
        if (a && c_operand(ld, a, "map"))
            add_arg(e, a);
        else {
            ds_mapping_expr_free(a);
            ok = false;
        }
        pop(ld);
    }
    cases = json_object_get(arg, "cases");
    if (cases) {
        push_key(ld, "cases");
        if (!json_is_object(cases) || json_object_size(cases) == 0) {
            ok = expected(ld, cases, "a non-empty object of value → result");
        } else {
            json_object_foreach((json_t *)cases, key, value)
            {
                push_key(ld, key);
                a = parse_expr(ld, value);
                if (a && c_operand(ld, a, "map")) {
                    size_t n = (size_t)e->ncases + 1;
                    e->case_keys = ds_mapping_xrealloc(e->case_keys, sizeof(char *) * n);
                    e->case_values = ds_mapping_xrealloc(e->case_values, sizeof(a) * n);
                    e->case_keys[e->ncases] = ds_mapping_xstrdup(key);
                    e->case_values[e->ncases++] = a;
                    e->has_refs |= a->has_refs;
                } else {
                    ds_mapping_expr_free(a);
                    ok = false;
                }
                pop(ld);
            }
        }
        pop(ld);
    }
    if (json_object_get(arg, "default")) {
        push_key(ld, "default");
        a = parse_expr(ld, json_object_get(arg, "default"));
        if (a && c_operand(ld, a, "map")) {
            e->map_default = a;
            e->has_refs |= a->has_refs;
        } else {
            ds_mapping_expr_free(a);
            ok = false;
        }
        pop(ld);
    }
    pop(ld);
    if (ok && e->nargs == 1)
        return e;
    ds_mapping_expr_free(e);
    return NULL;

fail:
    pop(ld);
    ds_mapping_expr_free(e);
    return NULL;
}

static ds_mapping_expr_t *parse_uuid5(loader_t *ld, const json_t *arg)
{
    static const char *const fields[] = {"namespace", "name", NULL};
    ds_mapping_expr_t *e = new_expr(EXPR_UUID5);
    const json_t *ns, *names;
    bool ok = true;

    push_key(ld, "uuid5");
    if (!json_is_object(arg)) {
        expected(ld, arg, "an object with \"namespace\" and \"name\"");
        pop(ld);
        ds_mapping_expr_free(e);
        return NULL;
    }
    ok &= check_fields(ld, arg, fields, "uuid5");
    ok &= require_field(ld, arg, "namespace", "uuid5");
    ok &= require_field(ld, arg, "name", "uuid5");
    if ((ns = json_object_get(arg, "namespace"))) {
        push_key(ld, "namespace");
        if (!json_is_string(ns) || !ds_mapping_parse_uuid(json_string_value(ns), e->ns))
            ok = expected(ld, ns, "a UUID (\"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx\")");
        pop(ld);
    }
    if ((names = json_object_get(arg, "name"))) {
        push_key(ld, "name");
        if (!json_is_array(names) || json_array_size(names) == 0) {
            ok = expected(ld, names, "a non-empty array of expressions");
        } else {
            for (size_t i = 0; i < json_array_size(names); i++) {
                ds_mapping_expr_t *a;

                push_index(ld, i);
                a = parse_expr(ld, json_array_get(names, i));
                if (a && c_operand(ld, a, "uuid5")) {
                    add_arg(e, a);
                } else {
                    ds_mapping_expr_free(a);
                    ok = false;
                }
                pop(ld);
            }
        }
        pop(ld);
    }
    pop(ld);
    if (ok)
        return e;
    ds_mapping_expr_free(e);
    return NULL;
}

/*
 * A type name safe to paste after "::": words of [a-z_][a-z0-9_]* or "quoted" names (no
 * quote inside), separated by single spaces or a dot, each optionally followed by (n) or
 * (n,m), and a trailing [] at most. "numeric(12,2)", "timestamp(3) with time zone",
 * "character varying", public."UserRole", "text[]".
 */
static bool valid_type_name(const char *t)
{
    const char *p = t;

    for (;;) {
        if (*p == '"') {
            const char *start = ++p;
            while (*p && *p != '"')
                p++;
            if (*p != '"' || p == start)
                return false;
            p++;
        } else {
            if (!((*p >= 'a' && *p <= 'z') || *p == '_'))
                return false;
            while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')
                p++;
        }
        if (*p == '(') {
            int numbers = 0;
            p++;
            for (;;) {
                if (!(*p >= '0' && *p <= '9'))
                    return false;
                while (*p >= '0' && *p <= '9')
                    p++;
                numbers++;
                if (*p == ',' && numbers == 1) {
                    p++;
                    continue;
                }
                break;
            }
            if (*p++ != ')')
                return false;
        }
        if (*p == ' ' || *p == '.') {
            p++;
            continue;
        }
        break;
    }
    if (p[0] == '[' && p[1] == ']')
        p += 2;
    return *p == '\0';
}

static ds_mapping_expr_t *parse_cast(loader_t *ld, const json_t *arg)
{
    ds_mapping_expr_t *e, *a;
    const json_t *type;

    push_key(ld, "cast");
    if (!json_is_array(arg) || json_array_size(arg) != 2) {
        expected(ld, arg, "[expression, \"type\"]");
        pop(ld);
        return NULL;
    }
    push_index(ld, 0);
    a = parse_expr(ld, json_array_get(arg, 0));
    pop(ld);
    push_index(ld, 1);
    type = json_array_get(arg, 1);
    if (!json_is_string(type) || !valid_type_name(json_string_value(type))) {
        expected(ld, type,
                 "a type name (lowercase words, \"quoted\" names, an optional schema, (n) or "
                 "(n,m) and a trailing [], e.g. \"numeric(12,2)\" or \"public.\\\"UserRole\\\"\")");
        pop(ld);
        pop(ld);
        ds_mapping_expr_free(a);
        return NULL;
    }
    if (!a) {
        pop(ld);
        pop(ld);
        return NULL;
    }
    e = new_expr(EXPR_CAST);
    add_arg(e, a);
    e->in_db = true;
    e->text = ds_mapping_xstrdup(json_string_value(type));
    e->table_where = where(ld, false);
    pop(ld);
    e->where = where(ld, false);
    pop(ld);
    return e;
}

static ds_mapping_expr_t *parse_lookup(loader_t *ld, const json_t *arg)
{
    static const char *const fields[] = {"table", "match", "column", "required", NULL};
    ds_mapping_expr_t *e = new_expr(EXPR_LOOKUP);
    const json_t *j, *match;
    const char *key;
    json_t *value;
    bool ok = true;

    e->in_db = true;
    push_key(ld, "lookup");
    if (!json_is_object(arg)) {
        expected(ld, arg, "an object with \"table\", \"match\" and \"column\"");
        pop(ld);
        ds_mapping_expr_free(e);
        return NULL;
    }
    e->where = where(ld, false);
    ok &= check_fields(ld, arg, fields, "a lookup");
    ok &= require_field(ld, arg, "table", "a lookup");
    ok &= require_field(ld, arg, "match", "a lookup");
    ok &= require_field(ld, arg, "column", "a lookup");
    if ((j = json_object_get(arg, "table"))) {
        push_key(ld, "table");
        ok &= get_qualified(ld, j, &e->lookup_schema, &e->lookup_table);
        e->table_where = where(ld, false);
        pop(ld);
    }
    if ((j = json_object_get(arg, "column"))) {
        push_key(ld, "column");
        if (!json_is_string(j) || json_string_length(j) == 0)
            ok = expected(ld, j, "a column name");
        else
            e->lookup_column = ds_mapping_xstrdup(json_string_value(j));
        e->column_where = where(ld, false);
        pop(ld);
    }
    if ((j = json_object_get(arg, "required"))) {
        push_key(ld, "required");
        if (!json_is_boolean(j))
            ok = expected(ld, j, "true or false");
        else
            e->required = json_is_true(j);
        pop(ld);
    }
    if ((match = json_object_get(arg, "match"))) {
        push_key(ld, "match");
        if (!json_is_object(match) || json_object_size(match) == 0) {
            ok = expected(ld, match, "a non-empty object of lookup column → expression");
        } else {
            size_t n = json_object_size(match);
            e->match_columns = ds_mapping_xcalloc(n, sizeof(char *));
            e->match_where = ds_mapping_xcalloc(n, sizeof(char *));
            json_object_foreach((json_t *)match, key, value)
            {
                ds_mapping_expr_t *a;

                if (!*key) {
                    ok = problem_key(ld, key, 0, "a lookup column name cannot be empty");
                    continue;
                }
                push_key(ld, key);
                a = parse_expr(ld, value);
                if (a) {
                    e->match_columns[e->nargs] = ds_mapping_xstrdup(key);
                    e->match_where[e->nargs] = where(ld, true);
                    add_arg(e, a);
                } else {
                    ok = false;
                }
                pop(ld);
            }
        }
        pop(ld);
    }
    pop(ld);
    if (ok)
        return e;
    ds_mapping_expr_free(e);
    return NULL;
}

static ds_mapping_expr_t *parse_sql(loader_t *ld, const json_t *obj)
{
    static const char *const fields[] = {"sql", "args", NULL};
    ds_mapping_expr_t *e = new_expr(EXPR_SQL);
    const json_t *sql = json_object_get(obj, "sql"), *args = json_object_get(obj, "args");
    bool ok = check_fields(ld, obj, fields, "an sql expression");
    char message[512];
    uint64_t used = 0;

    e->in_db = true;
    e->where = where(ld, false);
    if (args) {
        push_key(ld, "args");
        if (!json_is_array(args)) {
            ok = expected(ld, args, "an array of expressions");
        } else {
            for (size_t i = 0; i < json_array_size(args); i++) {
                ds_mapping_expr_t *a;

                push_index(ld, i);
                a = parse_expr(ld, json_array_get(args, i));
                if (a)
                    add_arg(e, a);
                else
                    ok = false;
                pop(ld);
            }
        }
        pop(ld);
    }
    push_key(ld, "sql");
    if (!json_is_string(sql) || json_string_length(sql) == 0) {
        ok = expected(ld, sql, "a SQL expression over $1, $2, ... (the args)");
    } else if (ok) {
        e->text = ds_mapping_xstrdup(json_string_value(sql));
        if (!ds_mapping_sql_rewrite(e->text, e->nargs, NULL, NULL, &used, message,
                                    sizeof(message))) {
            ok = problem(ld, "%s", message);
        } else {
            for (int i = 0; i < e->nargs && i < 64; i++) {
                if (!(used & ((uint64_t)1 << i)))
                    ok = problem(ld, "args[%d] is not used: the SQL text has no $%d", i, i + 1);
            }
        }
    }
    pop(ld);
    if (ok)
        return e;
    ds_mapping_expr_free(e);
    return NULL;
}

static ds_mapping_expr_t *parse_function(loader_t *ld, const json_t *obj)
{
    const char *name;
    json_t *arg;
    char h[512];

    if (json_object_get(obj, "sql"))
        return parse_sql(ld, obj);
    if (json_object_size(obj) != 1) {
        problem(ld,
                "expected an expression object with exactly one key, the function name "
                "(or \"sql\" with \"args\"), got %zu keys",
                json_object_size(obj));
        return NULL;
    }
    json_object_foreach((json_t *)obj, name, arg)
    {
        if (strcmp(name, "const") == 0)
            return json_const(arg);
        if (strcmp(name, "lower") == 0)
            return parse_unary(ld, name, arg, EXPR_LOWER);
        if (strcmp(name, "upper") == 0)
            return parse_unary(ld, name, arg, EXPR_UPPER);
        if (strcmp(name, "trim") == 0)
            return parse_unary(ld, name, arg, EXPR_TRIM);
        if (strcmp(name, "normalize_phone") == 0)
            return parse_unary(ld, name, arg, EXPR_NORMALIZE_PHONE);
        if (strcmp(name, "parse_period") == 0)
            return parse_unary(ld, name, arg, EXPR_PARSE_PERIOD);
        if (strcmp(name, "concat") == 0)
            return parse_list(ld, name, arg, EXPR_CONCAT);
        if (strcmp(name, "coalesce") == 0)
            return parse_list(ld, name, arg, EXPR_COALESCE);
        if (strcmp(name, "map") == 0)
            return parse_map(ld, arg);
        if (strcmp(name, "uuid5") == 0)
            return parse_uuid5(ld, arg);
        if (strcmp(name, "cast") == 0)
            return parse_cast(ld, arg);
        if (strcmp(name, "lookup") == 0)
            return parse_lookup(ld, arg);
        hint(h, sizeof(h), name, function_names, "expected one of");
        problem_key(ld, name, 1, "unknown function \"%s\"%s", name, h);
    }
    return NULL;
}

/* Parses the expression at the current path; NULL after reporting its problems. */
static ds_mapping_expr_t *parse_expr(loader_t *ld, const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_STRING:
        return parse_string_expr(ld, j);
    case JSON_INTEGER:
    case JSON_REAL:
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_NULL:
        return json_const(j);
    case JSON_OBJECT:
        return parse_function(ld, j);
    case JSON_ARRAY:
        break;
    }
    problem(ld, "an array is not an expression: write {\"const\": [...]} for its JSON text or "
                "{\"concat\": [...]} to join texts");
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Filters
 * ------------------------------------------------------------------------------------------- */

static const char *const filter_names[] = {"eq",  "ne", "in",  "is_null", "not_null",
                                           "and", "or", "not", NULL};

static ds_mapping_filter_t *parse_filter(loader_t *ld, const json_t *j);

static ds_mapping_expr_t *filter_operand(loader_t *ld, const json_t *j, const char *name)
{
    ds_mapping_expr_t *e = parse_expr(ld, j);

    if (e && e->in_db) {
        problem(ld,
                "%s compares values computed by dualsync; cast, lookup and sql are computed "
                "by the database and cannot appear in a filter",
                name);
        ds_mapping_expr_free(e);
        return NULL;
    }
    return e;
}

static ds_mapping_filter_t *parse_filter_op(loader_t *ld, const char *name, const json_t *arg)
{
    ds_mapping_filter_t *f = ds_mapping_xcalloc(1, sizeof(*f));
    bool ok = true;

    push_key(ld, name);
    if (strcmp(name, "eq") == 0 || strcmp(name, "ne") == 0) {
        f->kind = name[0] == 'e' ? FILTER_EQ : FILTER_NE;
        if (!json_is_array(arg) || json_array_size(arg) != 2) {
            ok = expected(ld, arg, "[expression, expression]");
        } else {
            push_index(ld, 0);
            f->a = filter_operand(ld, json_array_get(arg, 0), name);
            pop(ld);
            push_index(ld, 1);
            f->b = filter_operand(ld, json_array_get(arg, 1), name);
            pop(ld);
            ok = f->a && f->b;
        }
    } else if (strcmp(name, "in") == 0) {
        const json_t *list;

        f->kind = FILTER_IN;
        if (!json_is_array(arg) || json_array_size(arg) != 2 ||
            !json_is_array(json_array_get(arg, 1))) {
            ok = expected(ld, arg, "[expression, [constant, ...]]");
        } else {
            push_index(ld, 0);
            f->a = filter_operand(ld, json_array_get(arg, 0), name);
            ok = f->a != NULL;
            pop(ld);
            push_index(ld, 1);
            list = json_array_get(arg, 1);
            f->in_values = ds_mapping_xcalloc(json_array_size(list) + 1, sizeof(char *));
            for (size_t i = 0; i < json_array_size(list); i++) {
                const json_t *c = json_array_get(list, i);

                push_index(ld, i);
                if (json_is_object(c) || json_is_array(c)) {
                    ok = expected(ld, c, "a constant (string, number, true, false or null)");
                } else {
                    ds_mapping_expr_t *k = json_const(c);
                    f->in_values[f->nin++] = k->text;
                    k->text = NULL;
                    ds_mapping_expr_free(k);
                }
                pop(ld);
            }
            pop(ld);
        }
    } else if (strcmp(name, "is_null") == 0 || strcmp(name, "not_null") == 0) {
        f->kind = name[0] == 'i' ? FILTER_IS_NULL : FILTER_NOT_NULL;
        f->a = filter_operand(ld, arg, name);
        ok = f->a != NULL;
    } else if (strcmp(name, "and") == 0 || strcmp(name, "or") == 0) {
        f->kind = name[0] == 'a' ? FILTER_AND : FILTER_OR;
        if (!json_is_array(arg) || json_array_size(arg) == 0) {
            ok = expected(ld, arg, "a non-empty array of filters");
        } else {
            f->subs = ds_mapping_xcalloc(json_array_size(arg), sizeof(*f->subs));
            for (size_t i = 0; i < json_array_size(arg); i++) {
                ds_mapping_filter_t *sub;

                push_index(ld, i);
                sub = parse_filter(ld, json_array_get(arg, i));
                pop(ld);
                if (sub)
                    f->subs[f->nsubs++] = sub;
                else
                    ok = false;
            }
        }
    } else {
        f->kind = FILTER_NOT;
        f->subs = ds_mapping_xcalloc(1, sizeof(*f->subs));
        if ((f->subs[0] = parse_filter(ld, arg)))
            f->nsubs = 1;
        else
            ok = false;
    }
    pop(ld);
    if (ok)
        return f;
    ds_mapping_filter_free(f);
    return NULL;
}

static ds_mapping_filter_t *parse_filter(loader_t *ld, const json_t *j)
{
    const char *name;
    json_t *arg;
    char h[512];

    if (!json_is_object(j) || json_object_size(j) != 1) {
        expected(ld, j,
                 "a filter: an object with one key, one of eq, ne, in, is_null, "
                 "not_null, and, or, not");
        return NULL;
    }
    json_object_foreach((json_t *)j, name, arg)
    {
        for (int i = 0; filter_names[i]; i++) {
            if (strcmp(name, filter_names[i]) == 0)
                return parse_filter_op(ld, name, arg);
        }
        hint(h, sizeof(h), name, filter_names, "expected one of");
        problem_key(ld, name, 1, "unknown filter \"%s\"%s", name, h);
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Targets and files
 * ------------------------------------------------------------------------------------------- */

/* Every set, as loading goes. */
typedef struct builder {
    ds_mapping_target_t *targets; /* growing */
    int ntargets;                 /* used */
    int cap;                      /* allocated */
} builder_t;

static void free_target(ds_mapping_target_t *t)
{
    free((char *)t->pub.id);
    free(t->merge);
    free(t->merge_where);
    free(t->links_where);
    free((char *)t->pub.table);
    free((char *)t->pub.write_sql);
    free((char *)t->pub.unlink_sql);
    free((char *)t->pub.truncate_sql);
    free((char *)t->pub.batch_body);
    free((char *)t->pub.settle_sql);
    free((char **)t->pub.key_source_columns);
    free((int *)t->pub.keep_params);
    free(t->batch_body_plain);
    ds_mapping_free_linkless_form(t);
    free(t->connection_name);
    free(t->name);
    free(t->schema);
    free(t->table);
    for (int i = 0; i < t->ncolumns; i++) {
        free(t->columns[i].name);
        ds_mapping_expr_free(t->columns[i].expr);
        for (int k = 0; k < t->columns[i].nrefs; k++)
            free(t->columns[i].refs[k]);
        free(t->columns[i].refs);
        free(t->columns[i].where);
    }
    free(t->columns);
    free(t->key);
    free(t->soft_column);
    ds_mapping_filter_free(t->filter);
    free(t->params);
    free(t->values);
    free(t->keep);
    free(t->where);
    free(t->table_where);
    free(t->key_where);
    free(t->soft_where);
}

/* Collects the source columns an expression reads, each once. */
static void collect_refs(const ds_mapping_expr_t *e, ds_mapping_column_t *c)
{
    if (!e)
        return;
    if (e->kind == EXPR_COLUMN) {
        for (int i = 0; i < c->nrefs; i++) {
            if (strcmp(c->refs[i], e->text) == 0)
                return;
        }
        c->refs = ds_mapping_xrealloc(c->refs, sizeof(char *) * (size_t)(c->nrefs + 1));
        c->refs[c->nrefs++] = ds_mapping_xstrdup(e->text);
        return;
    }
    for (int i = 0; i < e->nargs; i++)
        collect_refs(e->args[i], c);
    for (int i = 0; i < e->ncases; i++)
        collect_refs(e->case_values[i], c);
    collect_refs(e->map_default, c);
}

static bool parse_on_delete(loader_t *ld, const json_t *j, ds_mapping_target_t *t)
{
    static const char *const fields[] = {"soft_delete", NULL};
    static const char *const words[] = {"delete", "ignore", "soft_delete", NULL};
    const json_t *soft, *column;
    char h[512];

    if (json_is_string(j)) {
        const char *s = json_string_value(j);

        if (strcmp(s, "delete") == 0) {
            t->on_delete = ON_DELETE_DELETE;
            return true;
        }
        if (strcmp(s, "ignore") == 0) {
            t->on_delete = ON_DELETE_IGNORE;
            return true;
        }
        if (strcmp(s, "soft_delete") == 0)
            return problem(ld, "soft_delete names its column: {\"soft_delete\": {\"column\": "
                               "\"deletedAt\"}}");
        hint(h, sizeof(h), s, words, "expected");
        return problem(ld, "unknown on_delete \"%s\"%s", s, h);
    }
    if (!json_is_object(j))
        return expected(ld, j, "\"delete\", \"ignore\" or {\"soft_delete\": {\"column\": ...}}");
    if (!check_fields(ld, j, fields, "on_delete"))
        return false;
    if (!(soft = json_object_get(j, "soft_delete")))
        return problem(ld, "expected \"delete\", \"ignore\" or {\"soft_delete\": {\"column\": "
                           "...}}, got {}");
    push_key(ld, "soft_delete");
    if (!json_is_object(soft) || !(column = json_object_get(soft, "column")) ||
        json_object_size(soft) != 1) {
        expected(ld, soft, "{\"column\": \"name of the column set to now()\"}");
        pop(ld);
        return false;
    }
    push_key(ld, "column");
    if (!json_is_string(column) || json_string_length(column) == 0) {
        expected(ld, column, "a column name");
        pop(ld);
        pop(ld);
        return false;
    }
    t->on_delete = ON_DELETE_SOFT;
    t->soft_column = ds_mapping_xstrdup(json_string_value(column));
    t->soft_where = where(ld, false);
    pop(ld);
    pop(ld);
    return true;
}

static bool parse_columns(loader_t *ld, const json_t *j, ds_mapping_target_t *t)
{
    const char *key;
    json_t *value;
    bool ok = true;

    if (!json_is_object(j) || json_object_size(j) == 0)
        return expected(ld, j, "a non-empty object of target column → expression");
    t->columns = ds_mapping_xcalloc(json_object_size(j), sizeof(*t->columns));
    json_object_foreach((json_t *)j, key, value)
    {
        ds_mapping_expr_t *e;

        if (!*key) {
            ok = problem_key(ld, key, 0, "a target column name cannot be empty");
            continue;
        }
        push_key(ld, key);
        if ((e = parse_expr(ld, value))) {
            ds_mapping_column_t *c = &t->columns[t->ncolumns++];
            c->name = ds_mapping_xstrdup(key);
            c->expr = e;
            c->where = where(ld, true);
            collect_refs(e, c);
        } else {
            ok = false;
        }
        pop(ld);
    }
    return ok;
}

static bool parse_key(loader_t *ld, const json_t *j, ds_mapping_target_t *t, const json_t *columns)
{
    bool ok = true;

    if (!json_is_array(j) || json_array_size(j) == 0)
        return expected(ld, j, "a non-empty array of target column names");
    t->key_where = where(ld, false);
    t->key = ds_mapping_xcalloc(json_array_size(j), sizeof(int));
    for (size_t i = 0; i < json_array_size(j); i++) {
        const json_t *k = json_array_get(j, i);
        int found = -1;

        push_index(ld, i);
        if (!json_is_string(k)) {
            ok = expected(ld, k, "a target column name");
            pop(ld);
            continue;
        }
        for (int c = 0; c < t->ncolumns; c++) {
            if (strcmp(t->columns[c].name, json_string_value(k)) == 0)
                found = c;
        }
        for (int n = 0; n < t->nkey && found >= 0; n++) {
            if (t->key[n] == found) {
                ok = problem(ld, "key column \"%s\" is listed twice", json_string_value(k));
                found = -2;
            }
        }
        /* A column that is in the file but failed to parse is reported already. */
        if (found == -1 && !json_object_get(columns, json_string_value(k)))
            ok = problem(ld,
                         "key column \"%s\" is not in columns (every key column needs a "
                         "value)",
                         json_string_value(k));
        else if (found == -1)
            ok = false;
        if (found >= 0) {
            t->key[t->nkey++] = found;
            t->columns[found].is_key = true;
        }
        pop(ld);
    }
    return ok;
}

static bool valid_connection(const char *const *connections, const char *name)
{
    for (int i = 0; connections && connections[i]; i++) {
        if (strcmp(connections[i], name) == 0)
            return true;
    }
    return false;
}

static bool parse_target(loader_t *ld, const json_t *j, ds_mapping_target_t *t)
{
    static const char *const fields[] = {"name",    "connection", "table",  "key",   "columns",
                                         "mode",    "fan_out",    "on_delete", "filter",
                                         "merge",   "links",      NULL};
    static const char *const modes[] = {"upsert", "update", NULL};
    const json_t *v;
    bool ok = true;
    char h[512];

    if (!json_is_object(j))
        return expected(ld, j, "a target object");
    t->where = where(ld, false);
    ok &= check_fields(ld, j, fields, "a target");
    ok &= require_field(ld, j, "connection", "a target");
    ok &= require_field(ld, j, "table", "a target");
    ok &= require_field(ld, j, "key", "a target");
    ok &= require_field(ld, j, "columns", "a target");

    if ((v = json_object_get(j, "table"))) {
        push_key(ld, "table");
        ok &= get_qualified(ld, v, &t->schema, &t->table);
        t->table_where = where(ld, false);
        pop(ld);
    }
    if ((v = json_object_get(j, "name"))) {
        push_key(ld, "name");
        if (!json_is_string(v) || json_string_length(v) == 0 || strchr(json_string_value(v), '/'))
            ok = expected(ld, v, "a non-empty name without \"/\"");
        else
            t->name = ds_mapping_xstrdup(json_string_value(v));
        pop(ld);
    } else if (t->table) {
        t->name = ds_mapping_xstrdup(t->table);
    }
    if ((v = json_object_get(j, "connection"))) {
        push_key(ld, "connection");
        if (!json_is_string(v)) {
            ok = expected(ld, v, "the name of one of the config's targets");
        } else if (!valid_connection(ld->connections, json_string_value(v))) {
            static const char *const none[] = {NULL};
            hint(h, sizeof(h), json_string_value(v), ld->connections ? ld->connections : none,
                 "the config's targets are");
            ok = problem(ld, "unknown connection \"%s\"%s", json_string_value(v), h);
        } else {
            t->connection_name = ds_mapping_xstrdup(json_string_value(v));
        }
        pop(ld);
    }
    if ((v = json_object_get(j, "columns"))) {
        push_key(ld, "columns");
        ok &= parse_columns(ld, v, t);
        pop(ld);
    }
    if ((v = json_object_get(j, "key"))) {
        push_key(ld, "key");
        ok &= parse_key(ld, v, t, json_object_get(j, "columns"));
        pop(ld);
    }
    if ((v = json_object_get(j, "mode"))) {
        push_key(ld, "mode");
        if (json_is_string(v) && strcmp(json_string_value(v), "upsert") == 0) {
            t->pub.in_place = false;
        } else if (json_is_string(v) && strcmp(json_string_value(v), "update") == 0) {
            t->pub.in_place = true;
        } else if (json_is_string(v)) {
            hint(h, sizeof(h), json_string_value(v), modes, "expected");
            ok = problem(ld, "unknown mode \"%s\"%s", json_string_value(v), h);
        } else {
            ok = expected(ld, v, "\"upsert\" or \"update\"");
        }
        pop(ld);
    }
    if ((v = json_object_get(j, "fan_out"))) {
        push_key(ld, "fan_out");
        if (!json_is_boolean(v))
            ok = expected(ld, v, "true or false");
        else if (json_is_true(v) && !t->pub.in_place)
            ok = problem(ld, "fan_out needs \"mode\": \"update\" (an upsert's key names one row)");
        else
            t->pub.fan_out = json_is_true(v);
        pop(ld);
    }
    if ((v = json_object_get(j, "on_delete"))) {
        push_key(ld, "on_delete");
        if (t->pub.in_place)
            ok = problem(ld, "an in-place target (mode \"update\") never deletes rows, so it has "
                             "no on_delete");
        else
            ok &= parse_on_delete(ld, v, t);
        pop(ld);
    }
    if ((v = json_object_get(j, "filter"))) {
        push_key(ld, "filter");
        if (!(t->filter = parse_filter(ld, v)))
            ok = false;
        pop(ld);
    }
    if ((v = json_object_get(j, "merge"))) {
        push_key(ld, "merge");
        if (!json_is_string(v) || json_string_length(v) == 0 || strchr(json_string_value(v), '/'))
            ok = expected(ld, v, "a non-empty merge name without \"/\"");
        else if (t->pub.in_place)
            ok = problem(ld, "an in-place target (mode \"update\") writes the row its key names "
                             "and merges nothing; \"merge\" is for upsert targets");
        else
            t->merge = ds_mapping_xstrdup(json_string_value(v));
        t->merge_where = where(ld, false);
        pop(ld);
    }
    if ((v = json_object_get(j, "links"))) {
        push_key(ld, "links");
        if (!json_is_boolean(v))
            ok = expected(ld, v, "true (the default: record the rows in dualsync.links) or false "
                                 "(write them without links, for a target keyed by the source "
                                 "key alone)");
        else if (t->pub.in_place)
            ok = problem(ld, "an in-place target (mode \"update\") keeps no links; \"links\" "
                             "is for upsert targets");
        t->links_off = json_is_false(v);
        t->links_where = where(ld, false);
        pop(ld);
    }
    if (ok && t->pub.in_place && t->nkey == t->ncolumns)
        ok = problem(ld, "an in-place target (mode \"update\") updates columns besides its key; "
                         "this one lists only key columns");
    return ok;
}

/* "mappings/clinic/users.json" → "users" */
static char *file_stem(const char *path)
{
    const char *base = strrchr(path, '/');
    const char *dot;
    char *stem;

    base = base ? base + 1 : path;
    dot = strrchr(base, '.');
    if (!dot || dot == base)
        dot = base + strlen(base);
    stem = ds_mapping_xmalloc((size_t)(dot - base) + 1);
    memcpy(stem, base, (size_t)(dot - base));
    stem[dot - base] = '\0';
    return stem;
}

static bool read_file(const char *path, char **text, size_t *len, char *msg, size_t msg_size)
{
    FILE *f = fopen(path, "rb");
    ds_buf_t buf = DS_BUF_INIT;
    char chunk[8192];
    size_t n;

    if (!f) {
        snprintf(msg, msg_size, "%s: cannot open: %s", path, strerror(errno));
        return false;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        ds_buf_append(&buf, chunk, n);
    if (ferror(f)) {
        snprintf(msg, msg_size, "%s: cannot read: %s", path, strerror(errno));
        fclose(f);
        ds_buf_free(&buf);
        return false;
    }
    fclose(f);
    if (!buf.data)
        ds_buf_append(&buf, "", 0);
    *text = buf.data;
    *len = buf.len;
    return true;
}

static void add_problem_line(loader_t *ld, const char *line)
{
    if (ld->problems->len)
        ds_buf_append_char(ld->problems, '\n');
    ds_buf_append_str(ld->problems, line);
    (*ld->nproblems)++;
}

/* Loads one file into f and appends its targets to b; problems go to ld. */
static void load_file(loader_t *ld, const char *topic_prefix, ds_mapping_file_t *f, builder_t *b)
{
    static const char *const fields[] = {"source", "filter", "targets", NULL};
    char *text = NULL, msg[1024];
    size_t len = 0;
    json_t *root;
    json_error_t error;
    const json_t *v;
    int before = *ld->nproblems;

    f->path = ds_mapping_xstrdup(ld->file);
    f->stem = file_stem(ld->file);
    f->first_target = b->ntargets;
    if (!read_file(ld->file, &text, &len, msg, sizeof(msg))) {
        add_problem_line(ld, msg);
        return;
    }
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &error);
    if (!root) {
        snprintf(msg, sizeof(msg), "%s:%d:%d: invalid JSON: %s", ld->file,
                 error.line > 0 ? error.line : 1, error.column > 0 ? error.column : 1, error.text);
        add_problem_line(ld, msg);
        free(text);
        return;
    }
    ld->text = text;
    ld->len = len;
    ld->depth = 0;
    if (!json_is_object(root)) {
        expected(ld, root, "a mapping object with \"source\" and \"targets\"");
        goto done;
    }
    (void)check_fields(ld, root, fields, "a mapping file");
    (void)require_field(ld, root, "source", "a mapping file");
    (void)require_field(ld, root, "targets", "a mapping file");
    if ((v = json_object_get(root, "source"))) {
        push_key(ld, "source");
        if (get_qualified(ld, v, &f->source_schema, &f->source_table))
            f->topic =
                ds_mapping_xasprintf("%s.%s.%s", topic_prefix, f->source_schema, f->source_table);
        pop(ld);
    }
    if ((v = json_object_get(root, "filter"))) {
        push_key(ld, "filter");
        f->filter = parse_filter(ld, v);
        pop(ld);
    }
    if ((v = json_object_get(root, "targets"))) {
        push_key(ld, "targets");
        if (!json_is_array(v) || json_array_size(v) == 0) {
            expected(ld, v, "a non-empty array of targets");
        } else {
            for (size_t i = 0; i < json_array_size(v); i++) {
                ds_mapping_target_t *t;

                if (b->ntargets == b->cap) {
                    b->cap = b->cap ? b->cap * 2 : 8;
                    b->targets =
                        ds_mapping_xrealloc(b->targets, sizeof(*b->targets) * (size_t)b->cap);
                }
                t = &b->targets[b->ntargets++];
                memset(t, 0, sizeof(*t));
                t->file = f;
                t->index = (int)i;
                push_index(ld, i);
                (void)parse_target(ld, json_array_get(v, i), t);
                /* Names unique in the file: they make the target ids. */
                for (int k = f->first_target; t->name && k < b->ntargets - 1; k++) {
                    if (b->targets[k].name && strcmp(b->targets[k].name, t->name) == 0) {
                        if (json_object_get(json_array_get(v, i), "name"))
                            push_key(ld, "name");
                        else
                            push_key(ld, "table");
                        problem(ld, "target name \"%s\" is also the name of $.targets[%d]%s",
                                t->name, b->targets[k].index,
                                json_object_get(json_array_get(v, i), "name")
                                    ? ""
                                    : " (a target without \"name\" is named after its table; "
                                      "give one of them a distinct \"name\")");
                        pop(ld);
                        break;
                    }
                }
                pop(ld);
            }
        }
        pop(ld);
    }
    f->ntargets = b->ntargets - f->first_target;
    if (*ld->nproblems == before) {
        for (int k = f->first_target; k < b->ntargets; k++) {
            ds_mapping_target_t *t = &b->targets[k];
            ds_buf_t table = DS_BUF_INIT;

            t->pub.id = ds_mapping_xasprintf("%s/%s", f->stem, t->name);
            t->pub.links_id = t->merge ? t->merge : t->pub.id;
            t->pub.file = f->path;
            t->pub.connection = t->connection_name;
            ds_mapping_quote_qualified(&table, t->schema, t->table);
            t->pub.table = table.data;
        }
    }

done:
    json_decref(root);
    free(text);
    ld->text = NULL;
    ld->len = 0;
}

/* ---------------------------------------------------------------------------------------------
 * The set
 * ------------------------------------------------------------------------------------------- */

static void free_file(ds_mapping_file_t *f)
{
    free(f->path);
    free(f->stem);
    free(f->source_schema);
    free(f->source_table);
    free(f->topic);
    ds_mapping_filter_free(f->filter);
}

void ds_mapping_set_free(ds_mapping_set_t *set)
{
    if (!set)
        return;
    for (int i = 0; i < set->ntargets; i++)
        free_target(&set->targets[i]);
    free(set->targets);
    for (int i = 0; i < set->nfiles; i++)
        free_file(&set->files[i]);
    free(set->files);
    for (int i = 0; i < set->ntopics; i++) {
        free(set->topics[i]);
        free(set->topic_files[i]);
    }
    free(set->topics);
    free(set->topic_files);
    free(set->placeholder);
    ds_debezium_decoder_free(set->decoder);
    ds_mapping_arena_free(&set->arena);
    free(set->writes);
    free(set->rejects);
    free(set);
}

/* Copies the problems into errstr, whole lines only, saying how many did not fit. */
static bool fail_with_problems(const ds_buf_t *problems, int nproblems, char *errstr,
                               size_t errstr_size)
{
    size_t cut;
    int shown = 0;
    char tail[64];

    if (!errstr || errstr_size == 0)
        return false;
    if (problems->len < errstr_size) {
        memcpy(errstr, problems->data, problems->len + 1);
        return false;
    }
    /* Keep as many whole lines as fit with room for the tail. */
    cut = 0;
    for (size_t i = 0; i < problems->len; i++) {
        if (problems->data[i] == '\n') {
            /* Room for the tail as it will read: a shorter one would let a line in that
             * the real tail then pushes out, and every line with it. */
            snprintf(tail, sizeof(tail), "\n(%d problems; the first %d shown)", nproblems,
                     shown + 1);
            if (i + strlen(tail) >= errstr_size)
                break;
            cut = i;
            shown++;
        }
    }
    snprintf(tail, sizeof(tail), "%s(%d problems; the first %d shown)", cut ? "\n" : "", nproblems,
             shown);
    if (cut + strlen(tail) >= errstr_size)
        cut = 0;
    memcpy(errstr, problems->data, cut);
    snprintf(errstr + cut, errstr_size - cut, "%s", tail);
    return false;
}

/* Whether targets @p a and @p b write the same table of the same connection with the same key. */
static bool same_rows(const ds_mapping_target_t *a, const ds_mapping_target_t *b)
{
    if (strcmp(a->pub.connection, b->pub.connection) != 0 || strcmp(a->schema, b->schema) != 0 ||
        strcmp(a->table, b->table) != 0 || a->nkey != b->nkey)
        return false;
    for (int k = 0; k < a->nkey; k++) {
        if (strcmp(a->columns[a->key[k]].name, b->columns[b->key[k]].name) != 0)
            return false;
    }
    return true;
}

/* The index of @p t's column @p name, or -1. */
static int column_index(const ds_mapping_target_t *t, const char *name)
{
    for (int i = 0; i < t->ncolumns; i++) {
        if (strcmp(t->columns[i].name, name) == 0)
            return i;
    }
    return -1;
}

/*
 * Two targets writing the same columns of the same rows would each keep their own links and
 * overwrite each other's values, in an order no rebuild can reproduce; verify would find
 * each of them matching while the table holds one. That is refused unless both declare the
 * same "merge" name, which makes them one set of contributors under the merge rule; and
 * targets sharing a merge name must write the same rows and the same columns, since the first
 * contributor, from whichever file, gives the row every column.
 */
static void check_shared_rows(ds_mapping_set_t *set, loader_t *ld)
{
    for (int i = 0; i < set->ntargets; i++) {
        const ds_mapping_target_t *t = &set->targets[i];

        for (int k = 0; k < i; k++) {
            const ds_mapping_target_t *o = &set->targets[k];
            ds_buf_t line = DS_BUF_INIT, shared = DS_BUF_INIT;
            bool same_columns = t->ncolumns == o->ncolumns;

            if (t->merge && o->merge && strcmp(t->merge, o->merge) == 0) {
                for (int c = 0; c < t->ncolumns && same_columns; c++)
                    same_columns = column_index(o, t->columns[c].name) >= 0;
                if (!same_rows(t, o) || !same_columns)
                    ds_buf_appendf(&line,
                                   "%s: target %s shares the merge name \"%s\" with %s ($.targets"
                                   "[%d] of %s), so both must write the same table of the same "
                                   "connection, with the same key and the same columns",
                                   t->merge_where, t->pub.id, t->merge, o->pub.id, o->index,
                                   o->file->path);
            } else if (same_rows(t, o)) {
                for (int c = 0; c < t->ncolumns; c++) {
                    if (t->columns[c].is_key || column_index(o, t->columns[c].name) < 0)
                        continue;
                    ds_buf_appendf(&shared, "%s\"%s\"", shared.len ? ", " : "",
                                   t->columns[c].name);
                }
                if (shared.len)
                    ds_buf_appendf(&line,
                                   "%s: target %s writes column%s %s of %s.%s for the same key "
                                   "as %s ($.targets[%d] of %s): each would overwrite the other. "
                                   "Map distinct columns, or, if several source tables feed one "
                                   "row, give both targets the same \"merge\" name",
                                   t->where, t->pub.id, strchr(shared.data, ',') ? "s" : "",
                                   shared.data, t->schema, t->table, o->pub.id, o->index,
                                   o->file->path);
            }
            if (line.len)
                add_problem_line(ld, line.data);
            ds_buf_free(&line);
            ds_buf_free(&shared);
        }
    }
}

bool ds_mapping_set_load(const char *const *paths, int npaths, const char *topic_prefix,
                         const char *const *connections, ds_mapping_set_t **setp, char *errstr,
                         size_t errstr_size)
{
    ds_mapping_set_t *set = ds_mapping_xcalloc(1, sizeof(*set));
    ds_buf_t problems = DS_BUF_INIT;
    int nproblems = 0;
    bool file_problems;
    loader_t ld = {.connections = connections, .problems = &problems, .nproblems = &nproblems};
    builder_t b = {0};

    *setp = NULL;
    set->files = ds_mapping_xcalloc((size_t)(npaths > 0 ? npaths : 1), sizeof(*set->files));
    set->placeholder = ds_mapping_xstrdup(DS_MAPPING_UNAVAILABLE_VALUE);
    for (int i = 0; i < npaths; i++) {
        ld.file = paths[i];
        load_file(&ld, topic_prefix ? topic_prefix : "", &set->files[i], &b);
        set->nfiles++;
    }
    free(ld.path);
    file_problems = nproblems > 0; /* ids are only made for files without problems */
    set->targets = b.targets;
    set->ntargets = b.ntargets;

    /* Target ids are unique across files: two users.json in different directories need
     * different target names. */
    for (int i = 0; i < set->ntargets && !file_problems; i++) {
        for (int k = 0; k < i; k++) {
            if (strcmp(set->targets[i].pub.id, set->targets[k].pub.id) == 0) {
                ds_buf_t line = DS_BUF_INIT;
                ds_buf_appendf(&line,
                               "%s: target id \"%s\" is also the id of %s $.targets[%d]: "
                               "files with the same name need distinct target names",
                               set->targets[i].where, set->targets[i].pub.id,
                               set->targets[k].file->path, set->targets[k].index);
                ld.problems = &problems;
                add_problem_line(&ld, line.data);
                ds_buf_free(&line);
                break;
            }
        }
    }
    if (nproblems == 0) /* files that load, with unique ids: their targets can be compared */
        check_shared_rows(set, &ld);
    if (nproblems > 0) {
        fail_with_problems(&problems, nproblems, errstr, errstr_size);
        ds_buf_free(&problems);
        ds_mapping_set_free(set);
        return false;
    }
    ds_buf_free(&problems);

    for (int i = 0; i < set->ntargets; i++) {
        ds_mapping_target_t *t = &set->targets[i];

        ds_mapping_compile_target(t);
        if (t->links_off && !t->pub.linkless) {
            ds_buf_t line = DS_BUF_INIT;

            ds_buf_appendf(&line,
                           "%s: \"links\": false needs a key computed from the source "
                           "columns alone (source columns, uuid5s of them); target %s keeps "
                           "links since %s: remove \"links\": false",
                           t->links_where, t->pub.id, ds_mapping_links_reason(t));
            ld.problems = &problems;
            add_problem_line(&ld, line.data);
            ds_buf_free(&line);
        }
    }
    if (nproblems > 0) {
        fail_with_problems(&problems, nproblems, errstr, errstr_size);
        ds_buf_free(&problems);
        ds_mapping_set_free(set);
        return false;
    }

    /* Distinct topics, and which files read each. */
    set->topics = ds_mapping_xcalloc((size_t)set->nfiles + 1, sizeof(char *));
    set->topic_files = ds_mapping_xcalloc((size_t)set->nfiles + 1, sizeof(int *));
    for (int i = 0; i < set->nfiles; i++) {
        int t = 0, n = 0;

        while (t < set->ntopics && strcmp(set->topics[t], set->files[i].topic) != 0)
            t++;
        if (t == set->ntopics) {
            set->topics[t] = ds_mapping_xstrdup(set->files[i].topic);
            set->topic_files[t] = ds_mapping_xcalloc((size_t)set->nfiles + 1, sizeof(int));
            set->topic_files[t][0] = -1;
            set->ntopics++;
        }
        while (set->topic_files[t][n] >= 0)
            n++;
        set->topic_files[t][n] = i;
        set->topic_files[t][n + 1] = -1;
    }
    /* A truncate writes a target twice: with links and without (mapping_eval.c). */
    set->writes = ds_mapping_xcalloc((size_t)set->ntargets * 2 + 1, sizeof(*set->writes));
    set->rejects = ds_mapping_xcalloc((size_t)set->ntargets + 1, sizeof(*set->rejects));
    set->decoder = ds_debezium_decoder_new(NULL);
    if (!set->decoder) {
        ds_mapping_set_free(set);
        return ds_fail(errstr, errstr_size, "out of memory");
    }
    *setp = set;
    return true;
}

bool ds_mapping_set_unavailable_value(ds_mapping_set_t *set, const char *placeholder)
{
    char *copy = strdup(placeholder ? placeholder : DS_MAPPING_UNAVAILABLE_VALUE);

    if (!copy)
        return false;
    free(set->placeholder);
    set->placeholder = copy;
    return true;
}

bool ds_mapping_set_value_format(ds_mapping_set_t *set, const ds_value_format_t *format,
                                 const char *source_conninfo, char *errstr, size_t errstr_size)
{
    ds_debezium_decoder_t *decoder;
    bool types = source_conninfo && ds_debezium_needs_types(format);
    PGconn *conn = NULL;

    if (!ds_debezium_decode_check(format, types, errstr, errstr_size))
        return false;
    if (!(decoder = ds_debezium_decoder_new(format)))
        return ds_fail(errstr, errstr_size, "out of memory");
    if (types) {
        static const char *const keywords[] = {"dbname", "fallback_application_name", NULL};
        const char *values[] = {source_conninfo, "dualsync-apply", NULL};

        conn = PQconnectdbParams(keywords, values, 1);
        if (!conn || PQstatus(conn) != CONNECTION_OK) {
            ds_fail(errstr, errstr_size,
                    "cannot connect to the source database (source.conninfo) to read the "
                    "column types the \"debezium\" settings need without schemas: %s",
                    conn ? PQerrorMessage(conn) : "out of memory");
            PQfinish(conn);
            ds_debezium_decoder_free(decoder);
            return false;
        }
        for (int i = 0; i < set->nfiles; i++) {
            const ds_mapping_file_t *f = &set->files[i];

            if (!ds_debezium_catalog_read(decoder, conn, f->topic, f->source_schema,
                                          f->source_table, format, errstr, errstr_size)) {
                PQfinish(conn);
                ds_debezium_decoder_free(decoder);
                return false;
            }
        }
        PQfinish(conn);
    }
    ds_debezium_decoder_free(set->decoder);
    set->decoder = decoder;
    return true;
}

int ds_mapping_set_ntopics(const ds_mapping_set_t *set)
{
    return set ? set->ntopics : 0;
}

const char *ds_mapping_set_topic(const ds_mapping_set_t *set, int i)
{
    return set && i >= 0 && i < set->ntopics ? set->topics[i] : NULL;
}

int ds_mapping_set_ntargets(const ds_mapping_set_t *set)
{
    return set ? set->ntargets : 0;
}

const ds_target_t *ds_mapping_set_target(const ds_mapping_set_t *set, int i)
{
    return set && i >= 0 && i < set->ntargets ? &set->targets[i].pub : NULL;
}
