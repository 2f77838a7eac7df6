/*
 * test_golden_capture.c: recorded pgoutput streams through the decoder and the envelope
 * builder, diffed against the exact expected Kafka records.
 *
 * Inputs are tests/golden/pgoutput/NAME.in (one XLogData payload per line, "LSN HEX",
 * recorded from PostgreSQL 15 by tests/golden/record.sh); expected outputs are
 * tests/golden/capture/NAME.expected, one record per line:
 *   {"topic":"...","key":<key JSON or null>,"value":<value JSON or null>}
 * followed, for a record with headers, by "headers":{"<name>":"<value as text>",...}.
 * The clock is fixed (ts_ms = 1700000000000), so the output is byte-for-byte stable.
 * A line "#! primary_key SCHEMA.TABLE COL[,COL...]" in an input declares a table's primary
 * key, which capture otherwise reads from the catalog (needed for REPLICA IDENTITY FULL).
 *
 * DS_GOLDEN_UPDATE=1 rewrites the expected files from the current output; review the diff.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dualsync/changes.h"
#include "dualsync/pgoutput.h"
#include "ds_test.h"

#define FIXED_NOW_US INT64_C(1700000000000000)
#define MAX_PK 8

typedef struct golden_pk {
    char qualified[256];     /* "schema.table" */
    char *columns[MAX_PK + 1];
} golden_pk_t;

typedef struct golden_run {
    ds_buf_t out;            /* the records, one JSON line each */
    golden_pk_t pks[16];     /* from "#! primary_key" lines */
    int npks;
} golden_run_t;

static const char *const *golden_primary_key(void *ctx, const char *schema, const char *table)
{
    golden_run_t *run = ctx;
    char qualified[256];

    snprintf(qualified, sizeof(qualified), "%s.%s", schema, table);
    for (int i = 0; i < run->npks; i++) {
        if (strcmp(run->pks[i].qualified, qualified) == 0)
            return (const char *const *)run->pks[i].columns;
    }
    return NULL;
}

static bool golden_emit(void *ctx, const ds_change_record_t *rec, char *errstr,
                        size_t errstr_size)
{
    golden_run_t *run = ctx;

    ds_buf_append_str(&run->out, "{\"topic\":");
    ds_buf_append_json_string(&run->out, rec->topic, strlen(rec->topic));
    ds_buf_append_str(&run->out, ",\"key\":");
    if (rec->key)
        ds_buf_append(&run->out, rec->key, rec->key_len);
    else
        ds_buf_append_str(&run->out, "null");
    ds_buf_append_str(&run->out, ",\"value\":");
    if (rec->value)
        ds_buf_append(&run->out, rec->value, rec->value_len);
    else
        ds_buf_append_str(&run->out, "null");
    /* Headers (a primary-key change's) as {"name":"value as text"}, only where there are. */
    for (int i = 0; i < rec->nheaders; i++) {
        ds_buf_append_str(&run->out, i ? "," : ",\"headers\":{");
        ds_buf_append_json_string(&run->out, rec->headers[i].name, strlen(rec->headers[i].name));
        ds_buf_append_char(&run->out, ':');
        ds_buf_append_json_string(&run->out, rec->headers[i].value, rec->headers[i].value_len);
        if (i == rec->nheaders - 1)
            ds_buf_append_char(&run->out, '}');
    }
    ds_buf_append_str(&run->out, "}\n");
    return true;
}

static void parse_pk_line(golden_run_t *run, char *line)
{
    golden_pk_t *pk = &run->pks[run->npks++];
    char *table = strtok(line + strlen("#! primary_key "), " \n");
    char *cols = strtok(NULL, " \n");
    int n = 0;

    snprintf(pk->qualified, sizeof(pk->qualified), "%s", table ? table : "");
    for (char *col = cols ? strtok(cols, ",") : NULL; col && n < MAX_PK; col = strtok(NULL, ","))
        pk->columns[n++] = strdup(col);
    pk->columns[n] = NULL;
}

/* Feeds one .in file through decoder and builder; false on any error (printed). */
static bool run_input(const char *path, golden_run_t *run)
{
    static const char *const skip_origins[] = {"dualsync", NULL};
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0;
    uint8_t *bytes = NULL;
    bool ok = true;
    ds_pgoutput_t *dec = ds_pgoutput_new();
    ds_changes_t *changes = NULL;
    ds_changes_options_t options = {
        .topic_prefix = "golden",
        .db = "golden",
        .version = "test",
        .tombstones_on_delete = true,
        .unavailable_value_placeholder = "__debezium_unavailable_value",
        .skip_origins = skip_origins,
        .primary_key = golden_primary_key,
        .primary_key_ctx = run,
    };

    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        ds_pgoutput_free(dec);
        return false;
    }
    /* Primary-key declarations come first in the header; read them before decoding. */
    while ((n = getline(&line, &cap, f)) > 0) {
        if (strncmp(line, "#! primary_key ", 15) == 0 && run->npks < 16)
            parse_pk_line(run, line);
    }
    rewind(f);
    changes = ds_changes_new(&options);

    while (ok && (n = getline(&line, &cap, f)) > 0) {
        char *space, errstr[1024];
        ds_lsn_t lsn;
        ds_pgoutput_msg_t msg;
        size_t hexlen, len;

        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        space = strchr(line, ' ');
        if (!space) {
            fprintf(stderr, "%s:%d: expected \"LSN HEX\"\n", path, lineno);
            ok = false;
            break;
        }
        *space = '\0';
        if (!ds_lsn_parse(line, &lsn)) {
            fprintf(stderr, "%s:%d: bad LSN \"%s\"\n", path, lineno, line);
            ok = false;
            break;
        }
        hexlen = strcspn(space + 1, "\r\n");
        len = hexlen / 2;
        free(bytes);
        bytes = malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++) {
            int hi = ds_hex_value(space[1 + 2 * i]), lo = ds_hex_value(space[2 + 2 * i]);

            if (hi < 0 || lo < 0) {
                fprintf(stderr, "%s:%d: bad hex\n", path, lineno);
                ok = false;
                break;
            }
            bytes[i] = (uint8_t)(hi << 4 | lo);
        }
        if (!ok)
            break;
        if (!ds_pgoutput_decode(dec, bytes, len, &msg, errstr, sizeof(errstr)) ||
            !ds_changes_handle(changes, &msg, lsn, FIXED_NOW_US, golden_emit, run, errstr,
                               sizeof(errstr))) {
            fprintf(stderr, "%s:%d: %s\n", path, lineno, errstr);
            ok = false;
        }
    }
    free(bytes);
    free(line);
    fclose(f);
    ds_changes_free(changes);
    ds_pgoutput_free(dec);
    return ok;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    ds_buf_t buf = DS_BUF_INIT;
    char chunk[4096];
    size_t n;

    if (!f)
        return NULL;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        ds_buf_append(&buf, chunk, n);
    fclose(f);
    if (!buf.data)
        ds_buf_append_str(&buf, "");
    return buf.data;
}

/* Every record line must be valid JSON: a cheap guard on the writer. */
static void check_lines_parse(const char *name, const char *text)
{
    const char *p = text;

    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        json_error_t jerr;
        json_t *doc = json_loadb(p, len, 0, &jerr);

        DS_CHECK(doc != NULL);
        if (!doc)
            fprintf(stderr, "%s: invalid JSON record: %s: %.*s\n", name, jerr.text, (int)len, p);
        json_decref(doc);
        p += len + (nl ? 1 : 0);
    }
}

static void test_golden_files(void)
{
    const char *golden = getenv("DS_GOLDEN_DIR");
    bool update = getenv("DS_GOLDEN_UPDATE") != NULL;
    char dir[1024];
    struct dirent **entries;
    int n, ran = 0;

    DS_CHECK(golden != NULL);
    if (!golden)
        return;
    snprintf(dir, sizeof(dir), "%s/pgoutput", golden);
    n = scandir(dir, &entries, NULL, alphasort);
    DS_CHECK(n > 0);
    for (int i = 0; i < n; i++) {
        const char *name = entries[i]->d_name;
        size_t len = strlen(name);
        char in_path[2048], expected_path[2048];
        golden_run_t run;

        if (len < 4 || strcmp(name + len - 3, ".in") != 0) {
            free(entries[i]);
            continue;
        }
        memset(&run, 0, sizeof(run));
        snprintf(in_path, sizeof(in_path), "%s/%s", dir, name);
        snprintf(expected_path, sizeof(expected_path), "%s/capture/%.*s.expected", golden,
                 (int)(len - 3), name);
        ran++;
        bool ok = run_input(in_path, &run);
        DS_CHECK(ok);
        if (!run.out.data)
            ds_buf_append_str(&run.out, "");
        check_lines_parse(name, run.out.data);

        if (update) {
            FILE *f = fopen(expected_path, "w");

            DS_CHECK(f != NULL);
            if (f) {
                fputs(run.out.data, f);
                fclose(f);
            }
            printf("updated %s\n", expected_path);
        } else {
            char *expected = read_file(expected_path);

            DS_CHECK(expected != NULL);
            if (!expected)
                fprintf(stderr, "%s: missing (run with DS_GOLDEN_UPDATE=1 to create it)\n",
                        expected_path);
            else if (strcmp(expected, run.out.data) != 0) {
                DS_CHECK(!"output differs from the golden file");
                fprintf(stderr, "%s differs.\n--- expected\n%s--- actual\n%s", expected_path,
                        expected, run.out.data);
            } else {
                printf("ok   %s\n", name);
            }
            free(expected);
        }
        ds_buf_free(&run.out);
        for (int p = 0; p < run.npks; p++)
            for (char **c = run.pks[p].columns; *c; c++)
                free(*c);
        free(entries[i]);
    }
    free(entries);
    DS_CHECK(ran >= 5);
}

int main(void)
{
    DS_RUN(test_golden_files);
    return ds_test_report();
}
