/*
 * topic_dump.c: the integration tests' window on Kafka.
 *
 *   topic_dump -b BOOTSTRAP -t TOPIC [-t TOPIC...] [-n COUNT] [-i IDLE_MS] [-T TIMEOUT_MS]
 *       Prints every message of the topics, from the beginning of every partition, as one
 *       JSON line: {"topic","partition","offset","key","value"}. A key or value that is valid
 *       JSON is embedded as JSON, anything else as a string; an absent key and a tombstone's
 *       value are null. Stops with 0 after COUNT messages; when every partition is at its end
 *       and nothing arrived for IDLE_MS, stops with 0 (no COUNT) or 1 (COUNT not reached);
 *       after TIMEOUT_MS stops with 1. Topics that do not exist yet are waited for. With
 *       --headers each line also has "headers": [[NAME, VALUE], ...] in the message's order
 *       (a value as UTF-8 text, U+FFFD for bytes that are not; null for a null value).
 *   topic_dump -b BOOTSTRAP --probe [-T TIMEOUT_MS]
 *       Exits 0 when the broker answers a metadata request listing a live broker.
 *   topic_dump -b BOOTSTRAP -t TOPIC [-t TOPIC...] --committed GROUP [-T TIMEOUT_MS]
 *       Prints the offsets consumer group GROUP committed to Kafka for every partition of
 *       the topics, one JSON line each: {"topic","partition","offset"} (-1001: none).
 *   topic_dump -b BOOTSTRAP -t TOPIC --produce [-T TIMEOUT_MS]
 *       Produces stdin lines "KEY<TAB>VALUE" (a line without a TAB is a tombstone for KEY)
 *       with acks=all; exits 0 only when every message was acknowledged.
 *   topic_dump -b BOOTSTRAP -t TOPIC [-t TOPIC...] --describe [-T TIMEOUT_MS]
 *       Prints one JSON line per topic: {"topic","exists","partitions","leaders","config":
 *       {NAME:VALUE}} with every setting the broker reports for it (admin API
 *       DescribeConfigs) and the broker node leading each partition (-1: none now).
 *   topic_dump -b BOOTSTRAP -t TOPIC [-t TOPIC...] --create [--partitions N] [--replicas N]
 *              [-c NAME=VALUE...] [-T TIMEOUT_MS]
 *       Creates the topics (replication factor 1 unless given) with those settings (admin
 *       API CreateTopics); exits 0 when every one was created.
 *
 * -X NAME=VALUE passes any librdkafka property. Consuming uses librdkafka's simple
 * (partition) consumer: it needs no group.id, so reading never creates a consumer group or
 * the __consumer_offsets topic, and never commits anything a test could trip over.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#define DEFAULT_IDLE_MS          2000
#define DEFAULT_TIMEOUT_MS       30000
#define DEFAULT_PROBE_TIMEOUT_MS 5000
/* How often metadata is asked again for a topic that does not exist yet. */
#define TOPIC_RETRY_MS 250
#define MAX_TOPICS     64
#define MAX_PROPERTIES 64

typedef enum tool_mode {
    MODE_CONSUME,
    MODE_PROBE,
    MODE_PRODUCE,
    MODE_COMMITTED,
    MODE_DESCRIBE,
    MODE_CREATE,
} tool_mode_t;

typedef struct tool_options {
    tool_mode_t mode;                       /* what to do */
    const char *bootstrap;                  /* bootstrap.servers */
    const char *topics[MAX_TOPICS];         /* -t, in command-line order */
    int ntopics;                            /* entries used in topics */
    long count;                             /* -n; -1 when not given */
    int idle_ms;                            /* -i */
    int timeout_ms;                         /* -T */
    const char *properties[MAX_PROPERTIES]; /* -X NAME=VALUE, passed to librdkafka */
    int nproperties;                        /* entries used in properties */
    const char *group;                      /* --committed: the consumer group */
    bool headers;                           /* --headers: print each message's headers */
    int partitions;                         /* --create: partitions per topic */
    int replicas;                           /* --create: replication factor */
    const char *configs[MAX_PROPERTIES];    /* --create: -c NAME=VALUE topic settings */
    int nconfigs;                           /* entries used in configs */
} tool_options_t;

/* One topic being consumed. */
typedef struct consumed_topic {
    const char *name;      /* borrowed from the options */
    rd_kafka_topic_t *rkt; /* NULL until the topic exists and its partitions are started */
    int npartitions;       /* partitions started */
    bool *at_eof;          /* per partition: at the end, and no message since */
} consumed_topic_t;

/* Set by SIGINT/SIGTERM; the loops check it. */
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: topic_dump -b BOOTSTRAP -t TOPIC [-t TOPIC...] [-n COUNT] [-i IDLE_MS] "
            "[-T TIMEOUT_MS] [-X NAME=VALUE...] [--headers]\n"
            "       topic_dump -b BOOTSTRAP --probe [-T TIMEOUT_MS]\n"
            "       topic_dump -b BOOTSTRAP -t TOPIC --produce [-T TIMEOUT_MS] < KEY<TAB>VALUE "
            "lines\n"
            "       topic_dump -b BOOTSTRAP -t TOPIC [-t TOPIC...] --committed GROUP "
            "[-T TIMEOUT_MS]\n"
            "       topic_dump -b BOOTSTRAP -t TOPIC [-t TOPIC...] --describe [-T TIMEOUT_MS]\n"
            "       topic_dump -b BOOTSTRAP -t TOPIC [-t TOPIC...] --create [--partitions N] "
            "[--replicas N] "
            "[-c NAME=VALUE...] [-T TIMEOUT_MS]\n");
}

static bool parse_int(const char *text, const char *what, long min, long max, long *out)
{
    char *end;
    long value;

    errno = 0;
    value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
        fprintf(stderr, "topic_dump: %s must be an integer in [%ld, %ld], got \"%s\"\n", what, min,
                max, text);
        return false;
    }
    *out = value;
    return true;
}

static bool parse_options(int argc, char **argv, tool_options_t *opts)
{
    static const struct option long_options[] = {
        {"bootstrap", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'n'},
        {"idle", required_argument, NULL, 'i'},
        {"timeout", required_argument, NULL, 'T'},
        {"property", required_argument, NULL, 'X'},
        {"probe", no_argument, NULL, 'P'},
        {"produce", no_argument, NULL, 'p'},
        {"committed", required_argument, NULL, 'C'},
        {"describe", no_argument, NULL, 'D'},
        {"create", no_argument, NULL, 'R'},
        {"partitions", required_argument, NULL, 'N'},
        {"replicas", required_argument, NULL, 'r'},
        {"config", required_argument, NULL, 'c'},
        {"headers", no_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool timeout_given = false;
    long value;
    int c;

    memset(opts, 0, sizeof(*opts));
    opts->mode = MODE_CONSUME;
    opts->count = -1;
    opts->idle_ms = DEFAULT_IDLE_MS;
    opts->timeout_ms = DEFAULT_TIMEOUT_MS;
    opts->partitions = 1;

    while ((c = getopt_long(argc, argv, "b:t:n:i:T:X:c:h", long_options, NULL)) != -1) {
        switch (c) {
        case 'b':
            opts->bootstrap = optarg;
            break;
        case 't':
            if (opts->ntopics == MAX_TOPICS) {
                fprintf(stderr, "topic_dump: at most %d topics\n", MAX_TOPICS);
                return false;
            }
            /* Starting a partition twice is an error in librdkafka; a repeated -t adds nothing. */
            for (int i = 0; i < opts->ntopics; i++) {
                if (strcmp(opts->topics[i], optarg) == 0)
                    optarg = NULL;
            }
            if (optarg)
                opts->topics[opts->ntopics++] = optarg;
            break;
        case 'n':
            if (!parse_int(optarg, "-n COUNT", 0, 1000000000L, &value))
                return false;
            opts->count = value;
            break;
        case 'i':
            if (!parse_int(optarg, "-i IDLE_MS", 0, 3600000L, &value))
                return false;
            opts->idle_ms = (int)value;
            break;
        case 'T':
            if (!parse_int(optarg, "-T TIMEOUT_MS", 1, 3600000L, &value))
                return false;
            opts->timeout_ms = (int)value;
            timeout_given = true;
            break;
        case 'X':
            if (!strchr(optarg, '=')) {
                fprintf(stderr, "topic_dump: -X wants NAME=VALUE, got \"%s\"\n", optarg);
                return false;
            }
            if (opts->nproperties == MAX_PROPERTIES) {
                fprintf(stderr, "topic_dump: at most %d -X properties\n", MAX_PROPERTIES);
                return false;
            }
            opts->properties[opts->nproperties++] = optarg;
            break;
        case 'P':
            opts->mode = MODE_PROBE;
            break;
        case 'p':
            opts->mode = MODE_PRODUCE;
            break;
        case 'C':
            opts->mode = MODE_COMMITTED;
            opts->group = optarg;
            break;
        case 'D':
            opts->mode = MODE_DESCRIBE;
            break;
        case 'R':
            opts->mode = MODE_CREATE;
            break;
        case 'H':
            opts->headers = true;
            break;
        case 'N':
            if (!parse_int(optarg, "--partitions N", 1, 10000L, &value))
                return false;
            opts->partitions = (int)value;
            break;
        case 'r':
            if (!parse_int(optarg, "--replicas N", 1, 100L, &value))
                return false;
            opts->replicas = (int)value;
            break;
        case 'c':
            if (!strchr(optarg, '=') || opts->nconfigs == MAX_PROPERTIES) {
                fprintf(stderr, "topic_dump: -c wants NAME=VALUE (at most %d), got \"%s\"\n",
                        MAX_PROPERTIES, optarg);
                return false;
            }
            opts->configs[opts->nconfigs++] = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return false;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "topic_dump: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return false;
    }
    if (!opts->bootstrap) {
        fprintf(stderr, "topic_dump: -b BOOTSTRAP is required\n");
        usage(stderr);
        return false;
    }
    if (opts->mode == MODE_PROBE && !timeout_given)
        opts->timeout_ms = DEFAULT_PROBE_TIMEOUT_MS;
    if ((opts->mode == MODE_CONSUME || opts->mode == MODE_COMMITTED ||
         opts->mode == MODE_DESCRIBE || opts->mode == MODE_CREATE) &&
        opts->ntopics == 0) {
        fprintf(stderr, "topic_dump: at least one -t TOPIC is required\n");
        return false;
    }
    if (opts->mode == MODE_PRODUCE && opts->ntopics != 1) {
        fprintf(stderr, "topic_dump: --produce wants exactly one -t TOPIC\n");
        return false;
    }
    return true;
}

static bool conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char errstr[512];

    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "topic_dump: librdkafka property %s=%s: %s\n", name, value, errstr);
        return false;
    }
    return true;
}

/* The common configuration: bootstrap, the -X properties, then the mode's own settings. */
static rd_kafka_conf_t *conf_new(const tool_options_t *opts)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    if (!conf_set(conf, "bootstrap.servers", opts->bootstrap))
        goto error;
    for (int i = 0; i < opts->nproperties; i++) {
        char name[256];
        const char *eq = strchr(opts->properties[i], '=');
        size_t len = (size_t)(eq - opts->properties[i]);

        if (len >= sizeof(name)) {
            fprintf(stderr, "topic_dump: property name too long in \"%s\"\n", opts->properties[i]);
            goto error;
        }
        memcpy(name, opts->properties[i], len);
        name[len] = '\0';
        if (!conf_set(conf, name, eq + 1))
            goto error;
    }
    return conf;

error:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* Takes @p conf (destroyed on failure too, as rd_kafka_new does not on failure). */
static rd_kafka_t *client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));

    if (!rk) {
        fprintf(stderr, "topic_dump: cannot create the Kafka client: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* ---- probe ---------------------------------------------------------------------------- */

/* The probe runs in a loop while a broker starts: connection refusals are expected noise. */
static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    (void)level;
    (void)fac;
    (void)buf;
}

static void quiet_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)err;
    (void)reason;
    (void)opaque;
}

static int run_probe(const tool_options_t *opts)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_conf_t *conf = conf_new(opts);
    rd_kafka_resp_err_t err;
    rd_kafka_t *rk;
    int brokers;

    if (!conf)
        return 1;
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    rd_kafka_conf_set_error_cb(conf, quiet_error);
    rk = client_new(RD_KAFKA_PRODUCER, conf);
    if (!rk)
        return 1;

    /* No topics asked: the answer lists the brokers only. A KRaft broker that is still
     * fenced is not listed, so zero brokers means "not ready yet". */
    err = rd_kafka_metadata(rk, 0, NULL, &md, opts->timeout_ms);
    brokers = err == RD_KAFKA_RESP_ERR_NO_ERROR ? md->broker_cnt : 0;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);

    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "topic_dump: probe: no metadata from %s within %d ms: %s\n",
                opts->bootstrap, opts->timeout_ms, rd_kafka_err2str(err));
        return 1;
    }
    if (brokers == 0) {
        fprintf(stderr, "topic_dump: probe: %s answered but lists no live broker yet\n",
                opts->bootstrap);
        return 1;
    }
    return 0;
}

/* ---- produce -------------------------------------------------------------------------- */

/* Delivery counts, updated by on_delivery from rd_kafka_poll/flush on this thread. */
typedef struct delivery_counts {
    long acknowledged; /* messages the broker confirmed with acks=all */
    long failed;       /* messages librdkafka gave up on */
} delivery_counts_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    delivery_counts_t *counts = opaque;

    (void)rk;
    if (rkm->err) {
        counts->failed++;
        fprintf(stderr, "topic_dump: delivery to %s failed: %s\n", rd_kafka_topic_name(rkm->rkt),
                rd_kafka_err2str(rkm->err));
    } else {
        counts->acknowledged++;
    }
}

static int run_produce(const tool_options_t *opts)
{
    delivery_counts_t counts = {0, 0};
    const char *topic = opts->topics[0];
    int64_t deadline = now_ms() + opts->timeout_ms;
    rd_kafka_conf_t *conf = conf_new(opts);
    char timeout_text[32];
    char *line = NULL;
    size_t line_size = 0;
    ssize_t len;
    long produced = 0;
    int status = 1;
    rd_kafka_t *rk;

    if (!conf)
        return 1;
    snprintf(timeout_text, sizeof(timeout_text), "%d", opts->timeout_ms);
    /* enable.idempotence implies acks=all; both are spelled out because the exit status
     * promises that every message is on every in-sync replica. */
    if (!conf_set(conf, "acks", "all") || !conf_set(conf, "enable.idempotence", "true") ||
        !conf_set(conf, "message.timeout.ms", timeout_text)) {
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_conf_set_opaque(conf, &counts);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rk = client_new(RD_KAFKA_PRODUCER, conf);
    if (!rk)
        return 1;

    while (!stop_requested && (len = getline(&line, &line_size, stdin)) != -1) {
        char *tab;
        rd_kafka_resp_err_t err;

        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        tab = memchr(line, '\t', (size_t)len);
        for (;;) {
            if (tab)
                err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                        RD_KAFKA_V_KEY(line, (size_t)(tab - line)),
                                        RD_KAFKA_V_VALUE(tab + 1, (size_t)(len - (tab + 1 - line))),
                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            else
                err =
                    rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                      RD_KAFKA_V_KEY(line, (size_t)len), RD_KAFKA_V_VALUE(NULL, 0),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                break;
            /* The local queue is full: serve delivery reports to make room, never drop. */
            rd_kafka_poll(rk, 100);
        }
        if (err) {
            fprintf(stderr, "topic_dump: cannot produce line %ld to %s: %s\n", produced + 1, topic,
                    rd_kafka_err2str(err));
            goto done;
        }
        produced++;
        rd_kafka_poll(rk, 0);
    }
    if (ferror(stdin)) {
        fprintf(stderr, "topic_dump: reading stdin: %s\n", strerror(errno));
        goto done;
    }

    {
        int64_t left = deadline - now_ms();

        rd_kafka_flush(rk, left > 0 ? (int)left : 0);
    }
    if (counts.acknowledged == produced && counts.failed == 0) {
        fprintf(stderr, "topic_dump: %ld messages acknowledged by %s\n", produced, topic);
        status = 0;
    } else {
        fprintf(stderr,
                "topic_dump: %s: %ld produced, %ld acknowledged, %ld failed, %d still in flight "
                "after %d ms\n",
                topic, produced, counts.acknowledged, counts.failed, rd_kafka_outq_len(rk),
                opts->timeout_ms);
    }

done:
    free(line);
    /* Unacknowledged messages are abandoned on purpose: the exit status already says so.
     * Polling serves their (failed) delivery reports so destroy finds nothing queued. */
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(rk, 0);
    rd_kafka_destroy(rk);
    return status;
}

/* ---- consume -------------------------------------------------------------------------- */

/* Makes bytes into a JSON string, replacing each byte that is not part of valid UTF-8 with
 * U+FFFD: a test must see something rather than lose the whole message. */
static json_t *string_from_bytes(const char *data, size_t len)
{
    json_t *result;
    char *text;
    size_t out = 0;

    result = json_stringn(data, len);
    if (result)
        return result;

    text = malloc(len * 3 + 1);
    if (!text)
        return NULL;
    for (size_t i = 0; i < len;) {
        const unsigned char *p = (const unsigned char *)data + i;
        size_t need = p[0] < 0x80             ? 1
                      : (p[0] & 0xE0) == 0xC0 ? 2
                      : (p[0] & 0xF0) == 0xE0 ? 3
                      : (p[0] & 0xF8) == 0xF0 ? 4
                                              : 0;
        bool valid = need > 0 && i + need <= len;

        for (size_t k = 1; valid && k < need; k++)
            valid = (p[k] & 0xC0) == 0x80;
        if (valid && need > 1) {
            /* json_stringn also rejects overlong forms and surrogates; let it judge. */
            json_t *probe = json_stringn((const char *)p, need);

            valid = probe != NULL;
            json_decref(probe);
        }
        if (valid) {
            memcpy(text + out, p, need);
            out += need;
            i += need;
        } else {
            memcpy(text + out, "\xEF\xBF\xBD", 3);
            out += 3;
            i++;
        }
    }
    result = json_stringn(text, out);
    free(text);
    return result;
}

/* A key or value as the tests want it: JSON when it parses, a string otherwise, null when
 * absent (no key, or a tombstone's value). */
static json_t *payload_to_json(const void *data, size_t len)
{
    json_error_t error;
    json_t *parsed;

    if (!data)
        return json_null();
    parsed = json_loadb(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
    if (parsed)
        return parsed;
    return string_from_bytes(data, len);
}

/* The message's headers as [[NAME, VALUE], ...]: a list, not an object, because Kafka allows
 * a name to repeat and the order to matter. NULL when out of memory. */
static json_t *headers_to_json(const rd_kafka_message_t *rkm)
{
    rd_kafka_headers_t *hdrs = NULL;
    json_t *list = json_array();
    const char *name;
    const void *value;
    size_t size;

    if (!list)
        return NULL;
    if (rd_kafka_message_headers(rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return list; /* no headers */
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) ==
                       RD_KAFKA_RESP_ERR_NO_ERROR;
         i++) {
        json_t *pair = json_pack("[so]", name, value ? string_from_bytes(value, size) : json_null());

        if (!pair || json_array_append_new(list, pair) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

static bool print_message(const rd_kafka_message_t *rkm, bool with_headers)
{
    json_t *line = json_object();
    bool ok;

    ok = line &&
         json_object_set_new(line, "topic", json_string(rd_kafka_topic_name(rkm->rkt))) == 0 &&
         json_object_set_new(line, "partition", json_integer(rkm->partition)) == 0 &&
         json_object_set_new(line, "offset", json_integer(rkm->offset)) == 0 &&
         json_object_set_new(line, "key", payload_to_json(rkm->key, rkm->key_len)) == 0 &&
         json_object_set_new(line, "value", payload_to_json(rkm->payload, rkm->len)) == 0 &&
         (!with_headers || json_object_set_new(line, "headers", headers_to_json(rkm)) == 0) &&
         json_dumpf(line, stdout, JSON_COMPACT) == 0 && fputc('\n', stdout) != EOF;
    json_decref(line);
    if (!ok)
        fprintf(stderr, "topic_dump: cannot print %s [%" PRId32 "] at offset %" PRId64 "\n",
                rd_kafka_topic_name(rkm->rkt), rkm->partition, rkm->offset);
    return ok;
}

/*
 * Starts every partition of @p topic from its beginning once the broker knows the topic and
 * every partition has a leader. Returns false only on a hard error; a topic that does not
 * exist yet leaves topic->rkt NULL, to be tried again.
 */
static bool start_topic(rd_kafka_t *rk, rd_kafka_queue_t *queue, consumed_topic_t *topic,
                        int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    const struct rd_kafka_metadata_topic *mt;
    rd_kafka_topic_t *rkt;
    rd_kafka_resp_err_t err;
    bool ok = true;

    rkt = rd_kafka_topic_new(rk, topic->name, NULL);
    if (!rkt) {
        fprintf(stderr, "topic_dump: topic %s: %s\n", topic->name,
                rd_kafka_err2str(rd_kafka_last_error()));
        return false;
    }
    err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1)
        goto not_yet;
    mt = &md->topics[0];
    if (mt->err != RD_KAFKA_RESP_ERR_NO_ERROR || mt->partition_cnt == 0)
        goto not_yet;
    for (int i = 0; i < mt->partition_cnt; i++) {
        if (mt->partitions[i].err != RD_KAFKA_RESP_ERR_NO_ERROR || mt->partitions[i].leader < 0)
            goto not_yet;
    }

    topic->at_eof = calloc((size_t)mt->partition_cnt, sizeof(bool));
    if (!topic->at_eof) {
        fprintf(stderr, "topic_dump: out of memory\n");
        ok = false;
        goto not_yet;
    }
    for (int i = 0; i < mt->partition_cnt; i++) {
        int32_t partition = mt->partitions[i].id;

        if (partition < 0 || partition >= mt->partition_cnt) {
            fprintf(stderr, "topic_dump: %s: unexpected partition id %" PRId32 "\n", topic->name,
                    partition);
            ok = false;
        } else if (rd_kafka_consume_start_queue(rkt, partition, RD_KAFKA_OFFSET_BEGINNING, queue) ==
                   -1) {
            fprintf(stderr, "topic_dump: cannot start %s [%" PRId32 "]: %s\n", topic->name,
                    partition, rd_kafka_err2str(rd_kafka_last_error()));
            ok = false;
        } else {
            topic->npartitions++;
        }
    }
    if (!ok)
        goto not_yet;
    topic->rkt = rkt;
    rd_kafka_metadata_destroy(md);
    return true;

not_yet:
    for (int32_t p = 0; p < topic->npartitions; p++)
        rd_kafka_consume_stop(rkt, p);
    topic->npartitions = 0;
    free(topic->at_eof);
    topic->at_eof = NULL;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return ok;
}

static consumed_topic_t *find_topic(consumed_topic_t *topics, int ntopics,
                                    const rd_kafka_topic_t *rkt)
{
    const char *name = rd_kafka_topic_name(rkt);

    for (int i = 0; i < ntopics; i++) {
        if (strcmp(topics[i].name, name) == 0)
            return &topics[i];
    }
    return NULL;
}

/* True when every topic exists and every partition is at its end. */
static bool all_at_eof(const consumed_topic_t *topics, int ntopics)
{
    for (int i = 0; i < ntopics; i++) {
        if (!topics[i].rkt)
            return false;
        for (int p = 0; p < topics[i].npartitions; p++) {
            if (!topics[i].at_eof[p])
                return false;
        }
    }
    return true;
}

static void describe_missing(const consumed_topic_t *topics, int ntopics)
{
    bool any = false;

    for (int i = 0; i < ntopics; i++) {
        if (!topics[i].rkt) {
            fprintf(stderr, "%s%s", any ? ", " : "; topics that never appeared: ", topics[i].name);
            any = true;
        }
    }
}

static int run_consume(const tool_options_t *opts)
{
    consumed_topic_t topics[MAX_TOPICS];
    int64_t start = now_ms();
    int64_t deadline = start + opts->timeout_ms;
    int64_t last_message = start;
    int64_t next_metadata = start;
    rd_kafka_queue_t *queue = NULL;
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk = NULL;
    long printed = 0;
    int status = 1;

    memset(topics, 0, sizeof(topics));
    for (int i = 0; i < opts->ntopics; i++)
        topics[i].name = opts->topics[i];

    conf = conf_new(opts);
    if (!conf)
        return 1;
    /* EOF events tell "read everything there is" apart from "the broker is slow". The
     * consumer must never create a topic: that is the producer's job, and a topic created
     * here would hide a producer that never wrote. */
    if (!conf_set(conf, "enable.partition.eof", "true") ||
        !conf_set(conf, "allow.auto.create.topics", "false")) {
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rk = client_new(RD_KAFKA_CONSUMER, conf);
    if (!rk)
        return 1;
    queue = rd_kafka_queue_new(rk);

    for (;;) {
        int64_t now = now_ms();
        rd_kafka_message_t *rkm;
        int wait_ms;

        if (opts->count >= 0 && printed >= opts->count) {
            status = 0;
            goto done;
        }
        if (stop_requested) {
            fprintf(stderr, "topic_dump: interrupted after %ld messages\n", printed);
            goto done;
        }
        if (now >= deadline) {
            fprintf(stderr, "topic_dump: timed out after %d ms having read %ld messages",
                    opts->timeout_ms, printed);
            if (opts->count >= 0)
                fprintf(stderr, " of the %ld expected", opts->count);
            describe_missing(topics, opts->ntopics);
            fputc('\n', stderr);
            goto done;
        }

        if (now >= next_metadata) {
            for (int i = 0; i < opts->ntopics; i++) {
                int64_t left = deadline - now_ms();

                if (topics[i].rkt || left <= 0)
                    continue;
                if (!start_topic(rk, queue, &topics[i], left < 1000 ? (int)left : 1000))
                    goto done;
            }
            next_metadata = now_ms() + TOPIC_RETRY_MS;
        }

        if (all_at_eof(topics, opts->ntopics) && now - last_message >= opts->idle_ms) {
            if (opts->count < 0) {
                status = 0;
            } else {
                fprintf(stderr,
                        "topic_dump: read %ld of the %ld expected messages; every partition is "
                        "at its end and none arrived for %d ms\n",
                        printed, opts->count, opts->idle_ms);
            }
            goto done;
        }

        wait_ms = (int)(deadline - now);
        if (wait_ms > 100)
            wait_ms = 100;
        rkm = rd_kafka_consume_queue(queue, wait_ms);
        if (!rkm)
            continue;

        {
            consumed_topic_t *topic = rkm->rkt ? find_topic(topics, opts->ntopics, rkm->rkt) : NULL;
            bool known = topic && topic->at_eof && rkm->partition >= 0 &&
                         rkm->partition < topic->npartitions;

            if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (known)
                    topic->at_eof[rkm->partition] = true;
            } else if (rkm->err) {
                /* Transient (a broker restarting): report it and let the deadline decide. */
                fprintf(stderr, "topic_dump: %s [%" PRId32 "]: %s\n",
                        rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : "-", rkm->partition,
                        rd_kafka_message_errstr(rkm));
            } else {
                if (known)
                    topic->at_eof[rkm->partition] = false;
                last_message = now_ms();
                if (!print_message(rkm, opts->headers)) {
                    rd_kafka_message_destroy(rkm);
                    goto done;
                }
                printed++;
            }
        }
        rd_kafka_message_destroy(rkm);
    }

done:
    if (fflush(stdout) != 0) {
        fprintf(stderr, "topic_dump: writing stdout: %s\n", strerror(errno));
        status = 1;
    }
    for (int i = 0; i < opts->ntopics; i++) {
        if (!topics[i].rkt)
            continue;
        for (int32_t p = 0; p < topics[i].npartitions; p++)
            rd_kafka_consume_stop(topics[i].rkt, p);
        rd_kafka_topic_destroy(topics[i].rkt);
        free(topics[i].at_eof);
    }
    if (queue)
        rd_kafka_queue_destroy(queue);
    rd_kafka_destroy(rk);
    return status;
}

/* ---- committed offsets ---------------------------------------------------------------- */

static int run_committed(const tool_options_t *opts)
{
    rd_kafka_conf_t *conf = conf_new(opts);
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_resp_err_t err;
    rd_kafka_t *rk;
    int status = 1;

    /* A consumer that never subscribes: it only asks the group's coordinator. */
    if (!conf || !conf_set(conf, "group.id", opts->group) ||
        !conf_set(conf, "enable.auto.commit", "false")) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        return 1;
    }
    if (!(rk = client_new(RD_KAFKA_CONSUMER, conf)))
        return 1;
    parts = rd_kafka_topic_partition_list_new(opts->ntopics);
    for (int i = 0; i < opts->ntopics; i++) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, opts->topics[i], NULL);

        err = rkt ? rd_kafka_metadata(rk, 0, rkt, &md, opts->timeout_ms)
                  : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        if (err || md->topic_cnt != 1 || md->topics[0].err) {
            fprintf(stderr, "topic_dump: no partitions for %s: %s\n", opts->topics[i],
                    rd_kafka_err2str(err ? err : md->topic_cnt ? md->topics[0].err : err));
            if (md)
                rd_kafka_metadata_destroy(md);
            if (rkt)
                rd_kafka_topic_destroy(rkt);
            goto done;
        }
        for (int p = 0; p < md->topics[0].partition_cnt; p++)
            rd_kafka_topic_partition_list_add(parts, opts->topics[i],
                                              md->topics[0].partitions[p].id);
        rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
    }
    if ((err = rd_kafka_committed(rk, parts, opts->timeout_ms))) {
        fprintf(stderr, "topic_dump: committed offsets of group %s: %s\n", opts->group,
                rd_kafka_err2str(err));
        goto done;
    }
    for (int i = 0; i < parts->cnt; i++)
        printf("{\"topic\":\"%s\",\"partition\":%d,\"offset\":%" PRId64 "}\n",
               parts->elems[i].topic, (int)parts->elems[i].partition, parts->elems[i].offset);
    status = 0;
done:
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_destroy(rk);
    return status;
}

/* ---- admin: describe and create topics ------------------------------------------------- */

/* An admin client that never makes the broker create a topic by asking about it. */
static rd_kafka_t *admin_new(const tool_options_t *opts)
{
    rd_kafka_conf_t *conf = conf_new(opts);

    if (!conf || !conf_set(conf, "allow.auto.create.topics", "false")) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return client_new(RD_KAFKA_PRODUCER, conf);
}

static rd_kafka_AdminOptions_t *admin_options(rd_kafka_t *rk, rd_kafka_admin_op_t op,
                                              int timeout_ms)
{
    rd_kafka_AdminOptions_t *options = rd_kafka_AdminOptions_new(rk, op);
    char errstr[256];

    rd_kafka_AdminOptions_set_request_timeout(options, timeout_ms, errstr, sizeof(errstr));
    if (op == RD_KAFKA_ADMIN_OP_CREATETOPICS)
        rd_kafka_AdminOptions_set_operation_timeout(options, timeout_ms, errstr, sizeof(errstr));
    return options;
}

/* The partition count of @p topic from the metadata, or -1 when it does not exist. */
/* The topic's partition count (-1 when unknown), and into @p leaders the leader node of each
 * partition in order. */
static int partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms, json_t *leaders)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int n = -1;

    if (rkt && rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1 && !md->topics[0].err) {
        n = md->topics[0].partition_cnt;
        for (int p = 0; p < n; p++) {
            for (int i = 0; i < n; i++) {
                if (md->topics[0].partitions[i].id == p)
                    json_array_append_new(leaders,
                                          json_integer(md->topics[0].partitions[i].leader));
            }
        }
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    return n;
}

static int run_describe(const tool_options_t *opts)
{
    rd_kafka_t *rk = admin_new(opts);
    rd_kafka_queue_t *queue;
    rd_kafka_ConfigResource_t *resources[MAX_TOPICS];
    rd_kafka_AdminOptions_t *options;
    const rd_kafka_ConfigResource_t **results;
    rd_kafka_event_t *ev;
    size_t nresults;
    int status = 1;

    if (!rk)
        return 1;
    queue = rd_kafka_queue_new(rk);
    for (int i = 0; i < opts->ntopics; i++)
        resources[i] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, opts->topics[i]);
    options = admin_options(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, opts->timeout_ms);
    rd_kafka_DescribeConfigs(rk, resources, (size_t)opts->ntopics, options, queue);
    ev = rd_kafka_queue_poll(queue, opts->timeout_ms + 5000);
    if (!ev || rd_kafka_event_error(ev)) {
        fprintf(stderr, "topic_dump: describing topics: %s\n",
                ev ? rd_kafka_event_error_string(ev) : "no answer");
        goto done;
    }
    results = rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev),
                                                        &nresults);
    for (size_t r = 0; r < nresults; r++) {
        const char *name = rd_kafka_ConfigResource_name(results[r]);
        rd_kafka_resp_err_t err = rd_kafka_ConfigResource_error(results[r]);
        json_t *line = json_object(), *config = json_object();
        char *text;

        json_object_set_new(line, "topic", json_string(name));
        if (err && err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            fprintf(stderr, "topic_dump: describing %s: %s\n", name, rd_kafka_err2str(err));
            json_decref(line);
            json_decref(config);
            goto done;
        }
        json_object_set_new(line, "exists", json_boolean(!err));
        if (!err) {
            const rd_kafka_ConfigEntry_t **entries;
            size_t nentries;

            entries = rd_kafka_ConfigResource_configs(results[r], &nentries);
            for (size_t e = 0; e < nentries; e++) {
                const char *value = rd_kafka_ConfigEntry_value(entries[e]);

                json_object_set_new(config, rd_kafka_ConfigEntry_name(entries[e]),
                                    value ? json_string(value) : json_null());
            }
            json_t *leaders = json_array();

            json_object_set_new(line, "partitions",
                                json_integer(partition_count(rk, name, opts->timeout_ms, leaders)));
            json_object_set_new(line, "leaders", leaders);
        }
        json_object_set_new(line, "config", config);
        text = json_dumps(line, JSON_COMPACT);
        printf("%s\n", text);
        free(text);
        json_decref(line);
    }
    status = 0;
done:
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(options);
    for (int i = 0; i < opts->ntopics; i++)
        rd_kafka_ConfigResource_destroy(resources[i]);
    rd_kafka_queue_destroy(queue);
    rd_kafka_destroy(rk);
    return status;
}

static int run_create(const tool_options_t *opts)
{
    rd_kafka_t *rk = admin_new(opts);
    rd_kafka_queue_t *queue;
    rd_kafka_NewTopic_t *topics[MAX_TOPICS];
    rd_kafka_AdminOptions_t *options;
    const rd_kafka_topic_result_t **results;
    rd_kafka_event_t *ev;
    size_t nresults;
    char errstr[512];
    int status = 1;

    if (!rk)
        return 1;
    queue = rd_kafka_queue_new(rk);
    for (int i = 0; i < opts->ntopics; i++) {
        topics[i] = rd_kafka_NewTopic_new(opts->topics[i], opts->partitions,
                                          opts->replicas ? opts->replicas : 1, errstr,
                                          sizeof(errstr));
        for (int c = 0; c < opts->nconfigs; c++) {
            char name[256];
            const char *eq = strchr(opts->configs[c], '=');

            snprintf(name, sizeof(name), "%.*s", (int)(eq - opts->configs[c]), opts->configs[c]);
            rd_kafka_NewTopic_set_config(topics[i], name, eq + 1);
        }
    }
    options = admin_options(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS, opts->timeout_ms);
    rd_kafka_CreateTopics(rk, topics, (size_t)opts->ntopics, options, queue);
    ev = rd_kafka_queue_poll(queue, opts->timeout_ms + 5000);
    if (!ev || rd_kafka_event_error(ev)) {
        fprintf(stderr, "topic_dump: creating topics: %s\n",
                ev ? rd_kafka_event_error_string(ev) : "no answer");
        goto done;
    }
    results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &nresults);
    status = 0;
    for (size_t r = 0; r < nresults; r++) {
        if (rd_kafka_topic_result_error(results[r])) {
            fprintf(stderr, "topic_dump: creating %s: %s\n", rd_kafka_topic_result_name(results[r]),
                    rd_kafka_topic_result_error_string(results[r]));
            status = 1;
        }
    }
done:
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(options);
    for (int i = 0; i < opts->ntopics; i++)
        rd_kafka_NewTopic_destroy(topics[i]);
    rd_kafka_queue_destroy(queue);
    rd_kafka_destroy(rk);
    return status;
}

int main(int argc, char **argv)
{
    tool_options_t opts;
    struct sigaction sa;

    if (!parse_options(argc, argv, &opts))
        return 2;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    switch (opts.mode) {
    case MODE_PROBE:
        return run_probe(&opts);
    case MODE_PRODUCE:
        return run_produce(&opts);
    case MODE_CONSUME:
        return run_consume(&opts);
    case MODE_COMMITTED:
        return run_committed(&opts);
    case MODE_DESCRIBE:
        return run_describe(&opts);
    case MODE_CREATE:
        return run_create(&opts);
    }
    return 2;
}
