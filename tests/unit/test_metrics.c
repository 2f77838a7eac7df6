/*
 * test_metrics.c: the metrics registry and its Prometheus text exposition: HELP/TYPE lines,
 * label values escaped, histograms with cumulative buckets, +Inf, _sum and _count, the
 * process metrics, and NULL (metrics off) accepted everywhere.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dualsync/metrics.h"
#include "ds_test.h"

static char *render(ds_metrics_t *m)
{
    ds_buf_t out = DS_BUF_INIT;

    ds_metrics_render(m, &out);
    return out.data ? out.data : strdup("");
}

static void test_counter_and_gauge_golden(void)
{
    ds_metrics_t *m = ds_metrics_new();
    ds_metric_t *changes = ds_metrics_counter(m, "dualsync_capture_changes_total",
                                              "Row changes read.", "table,op");
    ds_metric_t *inflight = ds_metrics_gauge(m, "dualsync_capture_inflight_messages",
                                             "Messages in flight.", NULL);
    ds_series_t *users_c = ds_metric_with(changes, "public.users", "c");
    char *text;

    ds_series_add(users_c, 1);
    ds_series_add(users_c, 2);
    ds_series_add(ds_metric_with(changes, "public.users", "d"), 1);
    /* The same label values give the same series. */
    DS_CHECK(ds_metric_with(changes, "public.users", "c") == users_c);
    ds_series_set(ds_metric_series(inflight), 12.5);
    text = render(m);
    DS_CHECK_STR(text, "# HELP dualsync_capture_changes_total Row changes read.\n"
                       "# TYPE dualsync_capture_changes_total counter\n"
                       "dualsync_capture_changes_total{table=\"public.users\",op=\"c\"} 3\n"
                       "dualsync_capture_changes_total{table=\"public.users\",op=\"d\"} 1\n"
                       "# HELP dualsync_capture_inflight_messages Messages in flight.\n"
                       "# TYPE dualsync_capture_inflight_messages gauge\n"
                       "dualsync_capture_inflight_messages 12.5\n");
    free(text);
    ds_metrics_free(m);
}

static void test_label_values_and_help_are_escaped(void)
{
    ds_metrics_t *m = ds_metrics_new();
    ds_metric_t *f = ds_metrics_counter(m, "x_total", "a \\ help\nline", "t");
    char *text;

    ds_series_add(ds_metric_with(f, "we\"ird\\na\nme"), 1);
    text = render(m);
    DS_CHECK_STR(text, "# HELP x_total a \\\\ help\\nline\n"
                       "# TYPE x_total counter\n"
                       "x_total{t=\"we\\\"ird\\\\na\\nme\"} 1\n");
    free(text);
    ds_metrics_free(m);
}

static void test_histogram_golden(void)
{
    static const double bounds[] = {0.005, 0.1, 1};
    ds_metrics_t *m = ds_metrics_new();
    ds_metric_t *h =
        ds_metrics_histogram(m, "lat_seconds", "Latency.", "topic", bounds, 3);
    ds_series_t *s = ds_metric_with(h, "a");
    char *text;

    ds_series_observe(s, 0.001);
    ds_series_observe(s, 0.1); /* on a bound: counted in that bucket (le) */
    ds_series_observe(s, 0.5);
    ds_series_observe(s, 7);
    text = render(m);
    DS_CHECK_STR(text, "# HELP lat_seconds Latency.\n"
                       "# TYPE lat_seconds histogram\n"
                       "lat_seconds_bucket{topic=\"a\",le=\"0.005\"} 1\n"
                       "lat_seconds_bucket{topic=\"a\",le=\"0.1\"} 2\n"
                       "lat_seconds_bucket{topic=\"a\",le=\"1\"} 3\n"
                       "lat_seconds_bucket{topic=\"a\",le=\"+Inf\"} 4\n"
                       "lat_seconds_sum{topic=\"a\"} 7.601\n"
                       "lat_seconds_count{topic=\"a\"} 4\n");
    DS_CHECK(ds_series_value(s) == 4);
    free(text);
    ds_metrics_free(m);
}

static void test_histogram_without_labels(void)
{
    static const double bounds[] = {1};
    ds_metrics_t *m = ds_metrics_new();
    ds_series_t *s = ds_metric_series(ds_metrics_histogram(m, "h", "H.", NULL, bounds, 1));
    char *text;

    ds_series_observe(s, 2);
    text = render(m);
    DS_CHECK_STR(text, "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 0\n"
                       "h_bucket{le=\"+Inf\"} 1\nh_sum 2\nh_count 1\n");
    free(text);
    ds_metrics_free(m);
}

static void test_clear_removes_series(void)
{
    ds_metrics_t *m = ds_metrics_new();
    ds_metric_t *f = ds_metrics_gauge(m, "lag", "Lag.", "topic,partition");
    char *text;

    ds_series_set(ds_metric_with(f, "t", "0"), 5);
    ds_metric_clear(f);
    ds_series_set(ds_metric_with(f, "t", "1"), 7);
    text = render(m);
    DS_CHECK_STR(text, "# HELP lag Lag.\n# TYPE lag gauge\nlag{topic=\"t\",partition=\"1\"} 7\n");
    free(text);
    ds_metrics_free(m);
}

static void test_process_metrics_and_build_info(void)
{
    ds_metrics_t *m = ds_metrics_new();
    char *text, *p;
    double start;

    ds_metrics_add_process(m);
    text = render(m);
    DS_CHECK(strstr(text, "# TYPE process_cpu_seconds_total counter\n") != NULL);
    DS_CHECK(strstr(text, "dualsync_build_info{version=\"" DUALSYNC_VERSION "\"} 1\n") != NULL);
    p = strstr(text, "\nprocess_resident_memory_bytes ");
    DS_CHECK(p && strtod(p + 31, NULL) > 100000);
    p = strstr(text, "\nprocess_start_time_seconds ");
    DS_CHECK(p != NULL);
    if (p) {
        start = strtod(p + 28, NULL);
        /* Started within the last hour, not in the future. */
        DS_CHECK(start > (double)time(NULL) - 3600 && start <= (double)time(NULL) + 1);
    }
    DS_CHECK(strstr(text, "\nprocess_open_fds ") != NULL);
    free(text);
    ds_metrics_free(m);
}

static void test_null_registry_is_harmless(void)
{
    ds_buf_t out = DS_BUF_INIT;
    ds_metric_t *f = ds_metrics_counter(NULL, "x", "X.", "a");
    ds_series_t *s = ds_metric_with(f, "v");

    DS_CHECK(f == NULL);
    DS_CHECK(s == NULL);
    ds_series_add(s, 1);
    ds_series_observe(s, 1);
    ds_metrics_add_process(NULL);
    ds_metrics_render(NULL, &out);
    DS_CHECK_INT(out.len, 0);
    ds_metrics_free(NULL);
}

int main(void)
{
    DS_RUN(test_counter_and_gauge_golden);
    DS_RUN(test_label_values_and_help_are_escaped);
    DS_RUN(test_histogram_golden);
    DS_RUN(test_histogram_without_labels);
    DS_RUN(test_clear_removes_series);
    DS_RUN(test_process_metrics_and_build_info);
    DS_RUN(test_null_registry_is_harmless);
    return ds_test_report();
}
