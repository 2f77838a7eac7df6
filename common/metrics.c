/*
 * metrics.c: the metrics registry and its Prometheus text rendering (metrics.h).
 *
 * Series of a family sit in a small chained hash on their label values, so that the first
 * lookup of a series by a hot path costs a hash and a few string comparisons, and later ones
 * nothing (the caller keeps the pointer). Rendering keeps creation order, which makes the
 * output stable for tests.
 */
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dualsync/metrics.h"

#define HASH_BUCKETS 64
#define MAX_COLLECTORS 8

typedef enum metric_type { TYPE_COUNTER, TYPE_GAUGE, TYPE_HISTOGRAM } metric_type_t;

struct ds_series {
    ds_series_t *next_hash;  /* same bucket */
    ds_series_t *next;       /* creation order */
    char *values[DS_METRIC_MAX_LABELS];
    double value;            /* counter, gauge */
    uint64_t *buckets;       /* histogram: non-cumulative counts, nbounds + 1 */
    double sum;
    uint64_t count;
    const ds_metric_t *family;
};

struct ds_metric {
    ds_metric_t *next;
    metric_type_t type;
    char *name;
    char *help;
    char *labels[DS_METRIC_MAX_LABELS];
    int nlabels;
    double *bounds;
    int nbounds;
    ds_series_t *hash[HASH_BUCKETS];
    ds_series_t *first, *last;
};

struct ds_metrics {
    ds_metric_t *first, *last;
    ds_metrics_collect_fn collect[MAX_COLLECTORS];
    void *collect_ctx[MAX_COLLECTORS];
    int ncollect;
    /* process metrics, refreshed at rendering */
    ds_series_t *rss, *vsize, *cpu, *start, *fds;
};

ds_metrics_t *ds_metrics_new(void)
{
    return calloc(1, sizeof(ds_metrics_t));
}

static void series_free(ds_series_t *s)
{
    for (int i = 0; i < DS_METRIC_MAX_LABELS; i++)
        free(s->values[i]);
    free(s->buckets);
    free(s);
}

void ds_metric_clear(ds_metric_t *f)
{
    ds_series_t *s, *next;

    if (!f)
        return;
    for (s = f->first; s; s = next) {
        next = s->next;
        series_free(s);
    }
    f->first = f->last = NULL;
    memset(f->hash, 0, sizeof(f->hash));
}

void ds_metrics_free(ds_metrics_t *m)
{
    ds_metric_t *f, *next;

    if (!m)
        return;
    for (f = m->first; f; f = next) {
        next = f->next;
        ds_metric_clear(f);
        free(f->name);
        free(f->help);
        for (int i = 0; i < f->nlabels; i++)
            free(f->labels[i]);
        free(f->bounds);
        free(f);
    }
    free(m);
}

static ds_metric_t *family_new(ds_metrics_t *m, metric_type_t type, const char *name,
                               const char *help, const char *labels)
{
    ds_metric_t *f;

    if (!m || !(f = calloc(1, sizeof(*f))))
        return NULL;
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help);
    if (!f->name || !f->help)
        goto oom;
    if (labels && *labels) {
        const char *p = labels;

        while (*p && f->nlabels < DS_METRIC_MAX_LABELS) {
            size_t len = strcspn(p, ",");

            if (!(f->labels[f->nlabels++] = strndup(p, len)))
                goto oom;
            p += len;
            if (*p == ',')
                p++;
        }
    }
    if (m->last)
        m->last->next = f;
    else
        m->first = f;
    m->last = f;
    return f;
oom:
    free(f->name);
    free(f->help);
    for (int i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    free(f);
    return NULL;
}

ds_metric_t *ds_metrics_counter(ds_metrics_t *m, const char *name, const char *help,
                                const char *labels)
{
    return family_new(m, TYPE_COUNTER, name, help, labels);
}

ds_metric_t *ds_metrics_gauge(ds_metrics_t *m, const char *name, const char *help,
                              const char *labels)
{
    return family_new(m, TYPE_GAUGE, name, help, labels);
}

ds_metric_t *ds_metrics_histogram(ds_metrics_t *m, const char *name, const char *help,
                                  const char *labels, const double *bounds, int nbounds)
{
    ds_metric_t *f = family_new(m, TYPE_HISTOGRAM, name, help, labels);

    if (!f)
        return NULL;
    /* Registered families are freed with the registry; a failed copy leaves a histogram with
     * the +Inf bucket only. */
    f->bounds = malloc(sizeof(double) * (size_t)(nbounds > 0 ? nbounds : 1));
    if (f->bounds && nbounds > 0) {
        memcpy(f->bounds, bounds, sizeof(double) * (size_t)nbounds);
        f->nbounds = nbounds;
    }
    return f;
}

static unsigned hash_values(const char *const *values, int n)
{
    unsigned h = 2166136261u;

    for (int i = 0; i < n; i++) {
        for (const char *p = values[i]; *p; p++)
            h = (h ^ (unsigned char)*p) * 16777619u;
        h = (h ^ 0x1f) * 16777619u;
    }
    return h % HASH_BUCKETS;
}

static ds_series_t *lookup(ds_metric_t *f, const char *const *values)
{
    unsigned h = hash_values(values, f->nlabels);
    ds_series_t *s;

    for (s = f->hash[h]; s; s = s->next_hash) {
        int i;

        for (i = 0; i < f->nlabels && strcmp(s->values[i], values[i]) == 0; i++)
            ;
        if (i == f->nlabels)
            return s;
    }
    if (!(s = calloc(1, sizeof(*s))))
        return NULL;
    s->family = f;
    for (int i = 0; i < f->nlabels; i++) {
        if (!(s->values[i] = strdup(values[i]))) {
            series_free(s);
            return NULL;
        }
    }
    if (f->type == TYPE_HISTOGRAM &&
        !(s->buckets = calloc((size_t)f->nbounds + 1, sizeof(uint64_t)))) {
        series_free(s);
        return NULL;
    }
    s->next_hash = f->hash[h];
    f->hash[h] = s;
    if (f->last)
        f->last->next = s;
    else
        f->first = s;
    f->last = s;
    return s;
}

ds_series_t *ds_metric_with(ds_metric_t *f, ...)
{
    const char *values[DS_METRIC_MAX_LABELS];
    va_list ap;

    if (!f)
        return NULL;
    va_start(ap, f);
    for (int i = 0; i < f->nlabels; i++) {
        values[i] = va_arg(ap, const char *);
        if (!values[i])
            values[i] = "";
    }
    va_end(ap);
    return lookup(f, values);
}

ds_series_t *ds_metric_series(ds_metric_t *f)
{
    const char *none[1] = {NULL};

    return f ? lookup(f, none) : NULL;
}

void ds_series_add(ds_series_t *s, double delta)
{
    if (s)
        s->value += delta;
}

void ds_series_set(ds_series_t *s, double value)
{
    if (s)
        s->value = value;
}

void ds_series_observe(ds_series_t *s, double value)
{
    const ds_metric_t *f;
    int i;

    if (!s || !s->buckets)
        return;
    f = s->family;
    for (i = 0; i < f->nbounds && value > f->bounds[i]; i++)
        ;
    s->buckets[i]++;
    s->sum += value;
    s->count++;
}

double ds_series_value(const ds_series_t *s)
{
    return s ? (s->family->type == TYPE_HISTOGRAM ? (double)s->count : s->value) : 0;
}

void ds_metrics_on_collect(ds_metrics_t *m, ds_metrics_collect_fn fn, void *ctx)
{
    if (!m || m->ncollect >= MAX_COLLECTORS)
        return;
    m->collect[m->ncollect] = fn;
    m->collect_ctx[m->ncollect++] = ctx;
}

/* ---- process metrics ---- */

static void collect_process(void *ctx)
{
    ds_metrics_t *m = ctx;
    char buf[2048], *p;
    FILE *fp;
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    unsigned long long utime = 0, stime = 0, starttime = 0, vsize = 0, btime = 0;
    long long rss = 0;
    DIR *dir;

    if (ticks <= 0)
        ticks = 100;
    if ((fp = fopen("/proc/self/stat", "r"))) {
        size_t n = fread(buf, 1, sizeof(buf) - 1, fp);

        buf[n] = '\0';
        fclose(fp);
        /* The command name (field 2) may hold spaces and parentheses: fields count from
         * after its last ')'. Field 3 (state) follows it. */
        if ((p = strrchr(buf, ')')) &&
            sscanf(p + 2,
                   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d "
                   "%*d %llu %llu %lld",
                   &utime, &stime, &starttime, &vsize, &rss) == 5) {
            ds_series_set(m->cpu, (double)(utime + stime) / (double)ticks);
            ds_series_set(m->vsize, (double)vsize);
            ds_series_set(m->rss, (double)rss * (double)page);
        }
    }
    if ((fp = fopen("/proc/stat", "r"))) {
        while (fgets(buf, sizeof(buf), fp)) {
            if (sscanf(buf, "btime %llu", &btime) == 1)
                break;
        }
        fclose(fp);
        if (btime)
            ds_series_set(m->start, (double)btime + (double)starttime / (double)ticks);
    }
    if ((dir = opendir("/proc/self/fd"))) {
        struct dirent *de;
        int n = 0;

        while ((de = readdir(dir)))
            n += de->d_name[0] != '.';
        closedir(dir);
        ds_series_set(m->fds, n - 1); /* less the one opendir holds */
    }
}

void ds_metrics_add_process(ds_metrics_t *m)
{
    if (!m)
        return;
    m->rss = ds_metric_series(ds_metrics_gauge(m, "process_resident_memory_bytes",
                                               "Resident memory size in bytes.", NULL));
    m->vsize = ds_metric_series(ds_metrics_gauge(m, "process_virtual_memory_bytes",
                                                 "Virtual memory size in bytes.", NULL));
    m->cpu = ds_metric_series(ds_metrics_counter(m, "process_cpu_seconds_total",
                                                 "Total user and system CPU time spent in "
                                                 "seconds.",
                                                 NULL));
    m->start = ds_metric_series(ds_metrics_gauge(m, "process_start_time_seconds",
                                                 "Start time of the process since unix epoch "
                                                 "in seconds.",
                                                 NULL));
    m->fds = ds_metric_series(ds_metrics_gauge(m, "process_open_fds",
                                               "Number of open file descriptors.", NULL));
    ds_series_set(ds_metric_with(ds_metrics_gauge(m, "dualsync_build_info",
                                                  "dualsync's version; always 1.", "version"),
                                 DUALSYNC_VERSION),
                  1);
    ds_metrics_on_collect(m, collect_process, m);
}

/* ---- rendering ---- */

static void append_number(ds_buf_t *out, double v)
{
    char text[64];

    if (isnan(v)) {
        ds_buf_append_str(out, "NaN");
    } else if (isinf(v)) {
        ds_buf_append_str(out, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        ds_buf_appendf(out, "%.0f", v);
    } else {
        /* The shortest of 15 or 17 digits that reads back as the same double. */
        snprintf(text, sizeof(text), "%.15g", v);
        if (strtod(text, NULL) != v)
            snprintf(text, sizeof(text), "%.17g", v);
        ds_buf_append_str(out, text);
    }
}

/* Label values escape backslash, double quote and line feed; help text the first and last. */
static void append_escaped(ds_buf_t *out, const char *text, bool quote)
{
    for (const char *p = text; *p; p++) {
        if (*p == '\\')
            ds_buf_append_str(out, "\\\\");
        else if (*p == '\n')
            ds_buf_append_str(out, "\\n");
        else if (*p == '"' && quote)
            ds_buf_append_str(out, "\\\"");
        else
            ds_buf_append_char(out, *p);
    }
}

static void append_labels(ds_buf_t *out, const ds_metric_t *f, const ds_series_t *s,
                          const char *le)
{
    if (f->nlabels == 0 && !le)
        return;
    ds_buf_append_char(out, '{');
    for (int i = 0; i < f->nlabels; i++) {
        if (i)
            ds_buf_append_char(out, ',');
        ds_buf_append_str(out, f->labels[i]);
        ds_buf_append_str(out, "=\"");
        append_escaped(out, s->values[i], true);
        ds_buf_append_char(out, '"');
    }
    if (le) {
        if (f->nlabels)
            ds_buf_append_char(out, ',');
        ds_buf_append_str(out, "le=\"");
        ds_buf_append_str(out, le);
        ds_buf_append_char(out, '"');
    }
    ds_buf_append_char(out, '}');
}

static void render_histogram(ds_buf_t *out, const ds_metric_t *f, const ds_series_t *s)
{
    ds_buf_t le = DS_BUF_INIT;
    uint64_t cumulative = 0;

    for (int i = 0; i <= f->nbounds; i++) {
        cumulative += s->buckets[i];
        ds_buf_reset(&le);
        if (i < f->nbounds)
            append_number(&le, f->bounds[i]);
        else
            ds_buf_append_str(&le, "+Inf");
        ds_buf_appendf(out, "%s_bucket", f->name);
        append_labels(out, f, s, le.data);
        ds_buf_appendf(out, " %llu\n", (unsigned long long)cumulative);
    }
    ds_buf_free(&le);
    ds_buf_appendf(out, "%s_sum", f->name);
    append_labels(out, f, s, NULL);
    ds_buf_append_char(out, ' ');
    append_number(out, s->sum);
    ds_buf_appendf(out, "\n%s_count", f->name);
    append_labels(out, f, s, NULL);
    ds_buf_appendf(out, " %llu\n", (unsigned long long)s->count);
}

void ds_metrics_render(ds_metrics_t *m, ds_buf_t *out)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};

    if (!m)
        return;
    for (int i = 0; i < m->ncollect; i++)
        m->collect[i](m->collect_ctx[i]);
    for (const ds_metric_t *f = m->first; f; f = f->next) {
        ds_buf_appendf(out, "# HELP %s ", f->name);
        append_escaped(out, f->help, false);
        ds_buf_appendf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
        for (const ds_series_t *s = f->first; s; s = s->next) {
            if (f->type == TYPE_HISTOGRAM) {
                render_histogram(out, f, s);
                continue;
            }
            ds_buf_append_str(out, f->name);
            append_labels(out, f, s, NULL);
            ds_buf_append_char(out, ' ');
            append_number(out, s->value);
            ds_buf_append_char(out, '\n');
        }
    }
}
