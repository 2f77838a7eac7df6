/*
 * kafka_admin.c: the integration tests' Kafka admin client (topics of several partitions or
 * replicas, and who leads them), with librdkafka's admin API: the Kafka jars the harness uses
 * carry the broker, not the command-line tools.
 *
 *   kafka_admin -b BOOTSTRAP create TOPIC PARTITIONS REPLICAS [NAME=VALUE...]
 *       Creates TOPIC with those topic settings; exits 0 when created or already there.
 *   kafka_admin -b BOOTSTRAP describe TOPIC
 *       One JSON line per partition: {"partition","leader","replicas":[...],"isr":[...]}
 *       (broker node ids; leader -1 while the partition has none).
 *   kafka_admin -b BOOTSTRAP configs TOPIC
 *       One JSON object of the topic's settings as the broker reports them.
 *
 * Exits 1 with the broker's error on stderr when a request fails, 2 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#define TIMEOUT_MS 30000

static int usage(void)
{
    fprintf(stderr, "usage: kafka_admin -b BOOTSTRAP create TOPIC PARTITIONS REPLICAS "
                    "[NAME=VALUE...]\n"
                    "       kafka_admin -b BOOTSTRAP describe TOPIC\n"
                    "       kafka_admin -b BOOTSTRAP configs TOPIC\n");
    return 2;
}

static rd_kafka_t *client(const char *bootstrap)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[512];
    rd_kafka_t *rk;

    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) !=
        RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kafka_admin: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)))) {
        fprintf(stderr, "kafka_admin: %s\n", err);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* Waits for the answer of an admin request of @p type on @p queue. */
static rd_kafka_event_t *await(rd_kafka_queue_t *queue, rd_kafka_event_type_t type)
{
    for (;;) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(queue, TIMEOUT_MS);

        if (!ev) {
            fprintf(stderr, "kafka_admin: no answer within %d ms\n", TIMEOUT_MS);
            return NULL;
        }
        if (rd_kafka_event_type(ev) == type)
            return ev;
        rd_kafka_event_destroy(ev);
    }
}

static int create(rd_kafka_t *rk, const char *topic, int partitions, int replicas, char **settings,
                  int nsettings)
{
    char err[512];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, replicas, err, sizeof(err));
    rd_kafka_queue_t *queue = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev;
    const rd_kafka_topic_result_t **results;
    size_t n = 0;
    int rc = 1;

    if (!nt) {
        fprintf(stderr, "kafka_admin: %s\n", err);
        return 2;
    }
    for (int i = 0; i < nsettings; i++) {
        char *eq = strchr(settings[i], '=');

        if (!eq) {
            fprintf(stderr, "kafka_admin: expected NAME=VALUE, got \"%s\"\n", settings[i]);
            rd_kafka_NewTopic_destroy(nt);
            return 2;
        }
        *eq = '\0';
        rd_kafka_NewTopic_set_config(nt, settings[i], eq + 1);
    }
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, queue);
    if ((ev = await(queue, RD_KAFKA_EVENT_CREATETOPICS_RESULT))) {
        results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        if (rd_kafka_event_error(ev))
            fprintf(stderr, "kafka_admin: creating %s: %s\n", topic, rd_kafka_event_error_string(ev));
        else if (n == 1 && rd_kafka_topic_result_error(results[0]) &&
                 rd_kafka_topic_result_error(results[0]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            fprintf(stderr, "kafka_admin: creating %s: %s\n", topic,
                    rd_kafka_topic_result_error_string(results[0]));
        else
            rc = 0;
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(queue);
    return rc;
}

static json_t *int_array(const int32_t *values, int n)
{
    json_t *a = json_array();

    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_integer(values[i]));
    return a;
}

static int describe(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, TIMEOUT_MS);
    int rc = 1;

    if (err) {
        fprintf(stderr, "kafka_admin: metadata of %s: %s\n", topic, rd_kafka_err2str(err));
    } else if (md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "kafka_admin: metadata of %s: %s\n", topic,
                md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "no such topic");
    } else {
        for (int p = 0; p < md->topics[0].partition_cnt; p++) {
            const rd_kafka_metadata_partition_t *mp = &md->topics[0].partitions[p];
            json_t *line = json_pack("{s:i, s:i, s:o, s:o}", "partition", (int)mp->id, "leader",
                                     (int)mp->leader, "replicas",
                                     int_array(mp->replicas, mp->replica_cnt), "isr",
                                     int_array(mp->isrs, mp->isr_cnt));
            char *text = json_dumps(line, JSON_COMPACT);

            puts(text);
            free(text);
            json_decref(line);
        }
        rc = 0;
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return rc;
}

static int configs(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    rd_kafka_queue_t *queue = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev;
    int rc = 1;

    rd_kafka_DescribeConfigs(rk, &res, 1, NULL, queue);
    if ((ev = await(queue, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT))) {
        size_t nres = 0, nentries = 0;
        const rd_kafka_ConfigResource_t **out = rd_kafka_DescribeConfigs_result_resources(
            rd_kafka_event_DescribeConfigs_result(ev), &nres);

        if (rd_kafka_event_error(ev) || nres != 1 || rd_kafka_ConfigResource_error(out[0])) {
            fprintf(stderr, "kafka_admin: configs of %s: %s\n", topic,
                    rd_kafka_event_error(ev) ? rd_kafka_event_error_string(ev)
                    : nres == 1              ? rd_kafka_ConfigResource_error_string(out[0])
                                             : "no answer");
        } else {
            const rd_kafka_ConfigEntry_t **entries =
                rd_kafka_ConfigResource_configs(out[0], &nentries);
            json_t *obj = json_object();
            char *text;

            for (size_t i = 0; i < nentries; i++) {
                const char *value = rd_kafka_ConfigEntry_value(entries[i]);

                json_object_set_new(obj, rd_kafka_ConfigEntry_name(entries[i]),
                                    value ? json_string(value) : json_null());
            }
            text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
            puts(text);
            free(text);
            json_decref(obj);
            rc = 0;
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_ConfigResource_destroy(res);
    rd_kafka_queue_destroy(queue);
    return rc;
}

int main(int argc, char **argv)
{
    rd_kafka_t *rk;
    int rc;

    if (argc < 5 || strcmp(argv[1], "-b") != 0)
        return usage();
    if (!(rk = client(argv[2])))
        return 1;
    if (strcmp(argv[3], "create") == 0 && argc >= 7)
        rc = create(rk, argv[4], atoi(argv[5]), atoi(argv[6]), argv + 7, argc - 7);
    else if (strcmp(argv[3], "describe") == 0 && argc == 5)
        rc = describe(rk, argv[4]);
    else if (strcmp(argv[3], "configs") == 0 && argc == 5)
        rc = configs(rk, argv[4]);
    else
        rc = usage();
    rd_kafka_destroy(rk);
    return rc;
}
