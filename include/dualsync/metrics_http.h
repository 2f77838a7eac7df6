/*
 * metrics_http.h: the /metrics and /healthz endpoints of capture and apply, served by
 * libmicrohttpd driven from the daemon's own loop (no thread, no thread per request).
 *
 * Routes: GET /metrics (the registry in the Prometheus text format, version 0.0.4) and
 * GET /healthz (200 "ok", or 503 with the one-line reason the daemon's health callback gives).
 * HEAD works like GET; any other method gets 405, any other path 404. A connection idle for
 * CONNECTION_TIMEOUT_S is closed, a request larger than the per-connection memory limit gets
 * 414 or 431 from libmicrohttpd, malformed requests 400, and connections beyond a small cap
 * are refused: nothing a client does can hold the daemon's loop.
 *
 * Every socket operation is non-blocking. libmicrohttpd runs with its own epoll descriptor,
 * which becomes readable when any of its sockets needs service: the daemon watches that one
 * descriptor (ds_metrics_http_attach_ev for a libev loop, ds_metrics_http_wait for a loop
 * without one) and calls back into libmicrohttpd when it is readable or its timeout passes.
 */
#ifndef DUALSYNC_METRICS_HTTP_H
#define DUALSYNC_METRICS_HTTP_H

#include <ev.h>

#include "dualsync/common.h"
#include "dualsync/metrics.h"

typedef struct ds_metrics_http ds_metrics_http_t;

/* NULL when healthy; otherwise a one-line reason (borrowed until the next call). A reason
 * that starts with "ok" is healthy with a note (a standby: "ok: standby, ..."), answered 200. */
typedef const char *(*ds_metrics_health_fn)(void *ctx);

/**
 * @brief Checks the syntax of a metrics address: "off", or HOST:PORT with PORT 1..65535 and
 *        HOST a name, an IPv4 address or a bracketed IPv6 address ("[::1]:9187").
 */
bool ds_metrics_address_valid(const char *text);

/**
 * @brief Listens on @p address (HOST:PORT) and serves @p metrics. NULL on failure, with
 *        errstr naming the address and the cause (a port in use, a name that does not
 *        resolve). @p address "off" is not accepted: the caller does not start it then.
 */
ds_metrics_http_t *ds_metrics_http_start(const char *address, ds_metrics_t *metrics,
                                         ds_metrics_health_fn health, void *health_ctx,
                                         char *errstr, size_t errstr_size);

/** @brief Serves from @p loop: an io watcher on the epoll descriptor and a timer. */
void ds_metrics_http_attach_ev(ds_metrics_http_t *http, struct ev_loop *loop);

/**
 * @brief For a loop without libev: waits at most @p timeout_ms (0: only checks) for HTTP
 *        work, and does what is ready. Each call handles what is ready once; it never waits
 *        longer than asked. Accepts NULL (then only sleeps @p timeout_ms).
 */
void ds_metrics_http_wait(ds_metrics_http_t *http, int timeout_ms);

/** @brief Closes every connection and the listening socket. Accepts NULL. */
void ds_metrics_http_stop(ds_metrics_http_t *http);

#endif
