/*
 * metrics.h: a small registry of counters, gauges and histograms, rendered in the Prometheus
 * text exposition format (version 0.0.4), shared by capture and apply.
 *
 * A family (ds_metric_t) has a name, a help line, a type and up to DS_METRIC_MAX_LABELS label
 * names; a series (ds_series_t) is one set of label values of a family. Series are created on
 * first use and live as long as the registry, so callers look a series up once and keep the
 * pointer: the hot path is then one addition, with no allocation and no lookup.
 *
 * Metrics switched off: every function accepts NULL (a NULL registry gives NULL families, a
 * NULL family NULL series, and updating a NULL series does nothing), so the daemons call
 * them unconditionally.
 *
 * Not thread-safe: capture and apply each update and render from their one thread.
 */
#ifndef DUALSYNC_METRICS_H
#define DUALSYNC_METRICS_H

#include "dualsync/buf.h"
#include "dualsync/common.h"

#define DS_METRIC_MAX_LABELS 4

typedef struct ds_metrics ds_metrics_t;
typedef struct ds_metric ds_metric_t;
typedef struct ds_series ds_series_t;

/* Called just before each rendering, to refresh gauges computed on demand. */
typedef void (*ds_metrics_collect_fn)(void *ctx);

ds_metrics_t *ds_metrics_new(void);

/** @brief Accepts NULL. */
void ds_metrics_free(ds_metrics_t *metrics);

/**
 * @brief Registers a family. @p labels is a comma-separated list of label names ("table,op"),
 *        or NULL for none. Returns NULL when @p metrics is NULL or memory runs out.
 */
ds_metric_t *ds_metrics_counter(ds_metrics_t *metrics, const char *name, const char *help,
                                const char *labels);
ds_metric_t *ds_metrics_gauge(ds_metrics_t *metrics, const char *name, const char *help,
                              const char *labels);
/** @brief @p bounds: @p nbounds increasing upper bounds; +Inf is implicit. */
ds_metric_t *ds_metrics_histogram(ds_metrics_t *metrics, const char *name, const char *help,
                                  const char *labels, const double *bounds, int nbounds);

/**
 * @brief The series of @p family with the given label values (as many as it has label
 *        names), created on first use. NULL when @p family is NULL or memory runs out.
 */
ds_series_t *ds_metric_with(ds_metric_t *family, ...);

/** @brief The family's only series (a family without labels). */
ds_series_t *ds_metric_series(ds_metric_t *family);

/** @brief Removes every series of a family (gauges recomputed at each collection only: a
 *         pointer to a removed series must not be kept). */
void ds_metric_clear(ds_metric_t *family);

void ds_series_add(ds_series_t *series, double delta);
void ds_series_set(ds_series_t *series, double value);
void ds_series_observe(ds_series_t *series, double value);
double ds_series_value(const ds_series_t *series);

/** @brief Calls @p fn(ctx) before every rendering (up to 8 collectors). */
void ds_metrics_on_collect(ds_metrics_t *metrics, ds_metrics_collect_fn fn, void *ctx);

/**
 * @brief Registers the standard process metrics (process_resident_memory_bytes,
 *        process_virtual_memory_bytes, process_cpu_seconds_total, process_start_time_seconds,
 *        process_open_fds, read from /proc at each rendering) and dualsync_build_info.
 */
void ds_metrics_add_process(ds_metrics_t *metrics);

/** @brief Runs the collectors and appends the text exposition of every family to @p out. */
void ds_metrics_render(ds_metrics_t *metrics, ds_buf_t *out);

#endif
