/*
 * metrics_http.c: the /metrics and /healthz endpoints on libmicrohttpd (metrics_http.h).
 *
 * libmicrohttpd rather than a hand-written server: it parses HTTP/1.1 with its corner cases
 * (malformed request lines, oversized headers, pipelining, slow senders) and is packaged by
 * Debian. It runs in "external" mode: no thread of its own; MHD_USE_EPOLL gives one epoll
 * descriptor for all its sockets, which fits both capture's libev loop (one io watcher) and
 * apply's poll loop (one poll() of that descriptor per turn).
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "dualsync/log.h"
#include "dualsync/metrics_http.h"

/* An idle or slowly sending client is dropped after this long. */
#define CONNECTION_TIMEOUT_S 5
/* Per connection: the request line and headers must fit (a scrape needs under 1 KiB). */
#define CONNECTION_MEMORY_LIMIT (16 * 1024)
/* Prometheus needs one connection; a few more for people and health checks. */
#define CONNECTION_LIMIT 16
#define PER_IP_CONNECTION_LIMIT 8

struct ds_metrics_http {
    struct MHD_Daemon *daemon;
    int epoll_fd;
    int listen_fd;
    ds_metrics_t *metrics;
    ds_metrics_health_fn health;
    void *health_ctx;
    struct ev_loop *loop;
    ev_io io_watcher;
    ev_timer timer;
};

bool ds_metrics_address_valid(const char *text)
{
    const char *colon, *host_end;
    char *end;
    long port;

    if (!text || !*text)
        return false;
    if (strcmp(text, "off") == 0)
        return true;
    if (text[0] == '[') {
        host_end = strchr(text, ']');
        if (!host_end || host_end == text + 1 || host_end[1] != ':')
            return false;
        colon = host_end + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon || colon == text || memchr(text, ':', (size_t)(colon - text)))
            return false;
    }
    if (!colon[1] || colon[1] < '0' || colon[1] > '9')
        return false;
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    return errno == 0 && *end == '\0' && port >= 1 && port <= 65535;
}

/* Splits HOST:PORT ("[v6]:PORT" too) into @p host and @p port. */
static void split_address(const char *text, char *host, size_t host_size, char *port,
                          size_t port_size)
{
    const char *colon = strrchr(text, ':');
    const char *start = text, *stop = colon;

    if (text[0] == '[') {
        start = text + 1;
        stop = strchr(text, ']');
    }
    snprintf(host, host_size, "%.*s", (int)(stop - start), start);
    snprintf(port, port_size, "%s", colon + 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    size_t len;

    vsnprintf(line, sizeof(line), fmt, ap);
    len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    ds_debug("metrics endpoint: %s", line);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type,
                             char *body, size_t len, bool owned)
{
    struct MHD_Response *response = MHD_create_response_from_buffer(
        len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    if (!response) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    ret = MHD_queue_response(conn, status, response);
    MHD_destroy_response(response);
    return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    char *body = NULL;
    int len = asprintf(&body, "%s\n", text);

    if (len < 0)
        return MHD_NO;
    return reply(conn, status, "text/plain; charset=utf-8", body, (size_t)len, true);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    ds_metrics_http_t *http = cls;

    (void)version;
    (void)upload_data;
    (void)con_cls;
    /* Answered on the first call, before any body is read: no route takes one, and a body
     * that is never read makes libmicrohttpd close the connection after the reply. */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        *upload_data_size = 0;
        return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use GET");
    }
    if (strcmp(url, "/metrics") == 0) {
        ds_buf_t out = DS_BUF_INIT;

        ds_metrics_render(http->metrics, &out);
        if (!out.data)
            return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", "", 0,
                         false);
        return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", out.data,
                     out.len, true);
    }
    if (strcmp(url, "/healthz") == 0) {
        const char *reason = http->health ? http->health(http->health_ctx) : NULL;

        if (!reason)
            return reply_text(conn, MHD_HTTP_OK, "ok");
        if (strncmp(reason, "ok", 2) == 0)
            return reply_text(conn, MHD_HTTP_OK, reason);
        return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, reason);
    }
    return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found: the paths are /metrics and /healthz");
}

/* A listening socket of our own: bind's errno says why an address cannot be used, which
 * MHD_start_daemon's NULL does not. */
static int listen_on(const char *address, char *errstr, size_t errstr_size)
{
    struct addrinfo hints, *res = NULL;
    char host[256], port[16];
    int fd, rc, one = 1;

    split_address(address, host, sizeof(host), port, sizeof(port));
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
        ds_fail(errstr, errstr_size, "metrics address %s: cannot resolve \"%s\": %s", address,
                host, gai_strerror(rc));
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 16) != 0) {
        int err = errno;

        ds_fail(errstr, errstr_size,
                "cannot serve metrics on %s: %s%s", address, strerror(err),
                err == EADDRINUSE ? " (another process listens there: set another "
                                    "--metrics-address or metrics_address in the "
                                    "configuration, or \"off\")"
                                  : "");
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

ds_metrics_http_t *ds_metrics_http_start(const char *address, ds_metrics_t *metrics,
                                         ds_metrics_health_fn health, void *health_ctx,
                                         char *errstr, size_t errstr_size)
{
    ds_metrics_http_t *http = calloc(1, sizeof(*http));
    const union MHD_DaemonInfo *info;

    if (!http) {
        ds_fail(errstr, errstr_size, "out of memory");
        return NULL;
    }
    http->metrics = metrics;
    http->health = health;
    http->health_ctx = health_ctx;
    http->epoll_fd = -1;
    if ((http->listen_fd = listen_on(address, errstr, errstr_size)) < 0) {
        free(http);
        return NULL;
    }
    http->daemon = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, http,
        MHD_OPTION_LISTEN_SOCKET, http->listen_fd, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)CONNECTION_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CONNECTION_MEMORY_LIMIT, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)CONNECTION_LIMIT, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned int)PER_IP_CONNECTION_LIMIT, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_END);
    if (!http->daemon) {
        close(http->listen_fd);
        free(http);
        ds_fail(errstr, errstr_size, "cannot serve metrics on %s: libmicrohttpd did not start",
                address);
        return NULL;
    }
    info = MHD_get_daemon_info(http->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    http->epoll_fd = info ? info->epoll_fd : -1;
    if (http->epoll_fd < 0) {
        ds_metrics_http_stop(http);
        ds_fail(errstr, errstr_size, "cannot serve metrics on %s: libmicrohttpd has no epoll "
                                     "descriptor",
                address);
        return NULL;
    }
    ds_info("metrics on http://%s/metrics, health on http://%s/healthz", address, address);
    return http;
}

/* How long libmicrohttpd may wait before it must run again (a connection timing out);
 * -1: only when its descriptor is readable. */
static int next_timeout_ms(ds_metrics_http_t *http)
{
    MHD_UNSIGNED_LONG_LONG ms;

    if (MHD_get_timeout(http->daemon, &ms) != MHD_YES)
        return -1;
    return ms > 60000 ? 60000 : (int)ms;
}

static void ev_rearm(ds_metrics_http_t *http)
{
    int ms = next_timeout_ms(http);

    ev_timer_stop(http->loop, &http->timer);
    if (ms >= 0) {
        ev_timer_set(&http->timer, ms / 1000.0, 0.);
        ev_timer_start(http->loop, &http->timer);
    }
}

static void on_ev_io(struct ev_loop *loop, ev_io *w, int revents)
{
    ds_metrics_http_t *http = w->data;

    MHD_run(http->daemon);
    ev_rearm(http);
}

static void on_ev_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    ds_metrics_http_t *http = w->data;

    MHD_run(http->daemon);
    ev_rearm(http);
}

void ds_metrics_http_attach_ev(ds_metrics_http_t *http, struct ev_loop *loop)
{
    if (!http)
        return;
    http->loop = loop;
    ev_io_init(&http->io_watcher, on_ev_io, http->epoll_fd, EV_READ);
    http->io_watcher.data = http;
    ev_io_start(loop, &http->io_watcher);
    ev_timer_init(&http->timer, on_ev_timer, 0., 0.);
    http->timer.data = http;
    ev_rearm(http);
}

void ds_metrics_http_wait(ds_metrics_http_t *http, int timeout_ms)
{
    struct pollfd pfd;
    int wait_ms = timeout_ms, own_ms;
    bool own_due = false;

    if (!http) {
        if (timeout_ms > 0) {
            struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000};

            nanosleep(&ts, NULL);
        }
        return;
    }
    /* libmicrohttpd's own deadline (a connection timing out) needs a run when it passes,
     * readable or not. */
    own_ms = next_timeout_ms(http);
    if (own_ms >= 0 && own_ms <= timeout_ms) {
        wait_ms = own_ms;
        own_due = true;
    }
    pfd.fd = http->epoll_fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    if (poll(&pfd, 1, wait_ms) > 0 || own_due)
        MHD_run(http->daemon);
}

void ds_metrics_http_stop(ds_metrics_http_t *http)
{
    if (!http)
        return;
    if (http->loop) {
        ev_io_stop(http->loop, &http->io_watcher);
        ev_timer_stop(http->loop, &http->timer);
    }
    if (http->daemon)
        MHD_stop_daemon(http->daemon);
    /* MHD_OPTION_LISTEN_SOCKET: MHD_stop_daemon closes it. */
    free(http);
}
