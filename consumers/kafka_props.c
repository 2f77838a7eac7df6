/*
 * kafka_props.c: librdkafka's own producer/consumer marks, read once from its property table.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "dualsync/kafka_props.h"

/* One property that applies to one side only. */
typedef struct one_sided {
    char *name;
    char side; /* 'P' or 'C' */
} one_sided_t;

static one_sided_t *one_sided;
static size_t none_sided;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static char *trim(char *s)
{
    char *end;

    while (*s == ' ')
        s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\n'))
        *--end = '\0';
    return s;
}

/*
 * The table is markdown: "name | C/P | range | default | importance | description". Lines
 * that do not look like a row (headings, separators) are skipped. If the table cannot be read
 * at all, every property is kept: librdkafka's warnings are then the worst that happens.
 */
static void read_table(void)
{
    char *text = NULL, *line, *save = NULL;
    size_t size = 0, cap = 0;
    FILE *out = open_memstream(&text, &size);

    if (!out)
        return;
    rd_kafka_conf_properties_show(out);
    fclose(out);
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *bar1 = strchr(line, '|'), *bar2, *name, *side;

        if (!bar1 || !(bar2 = strchr(bar1 + 1, '|')))
            continue;
        *bar1 = '\0';
        *bar2 = '\0';
        name = trim(line);
        side = trim(bar1 + 1);
        if (strcmp(side, "P") != 0 && strcmp(side, "C") != 0)
            continue;
        if (none_sided == cap) {
            size_t bigger = cap ? cap * 2 : 64;
            one_sided_t *grown = realloc(one_sided, bigger * sizeof(*grown));

            if (!grown)
                break;
            one_sided = grown;
            cap = bigger;
        }
        if (!(one_sided[none_sided].name = strdup(name)))
            break;
        one_sided[none_sided++].side = side[0];
    }
    free(text);
}

bool ds_kafka_property_applies(const char *name, ds_kafka_role_t role)
{
    char other = role == DS_KAFKA_PRODUCER ? 'C' : 'P';

    pthread_once(&once, read_table);
    for (size_t i = 0; i < none_sided; i++) {
        if (strcmp(one_sided[i].name, name) == 0)
            return one_sided[i].side != other;
    }
    return true;
}

ds_config_t *ds_kafka_config_view(const ds_config_t *config, ds_kafka_role_t role,
                                  const char *client_id)
{
    ds_config_t *view = malloc(sizeof(*view));
    int n = 0;

    if (!view)
        return NULL;
    *view = *config;
    view->kafka_names = calloc((size_t)config->nkafka + 2, sizeof(char *));
    view->kafka_values = calloc((size_t)config->nkafka + 2, sizeof(char *));
    if (!view->kafka_names || !view->kafka_values) {
        ds_kafka_config_view_free(view);
        return NULL;
    }
    /* The client.id default goes first, so the file's own (if any) would still win. */
    if (client_id && !ds_config_kafka_get(config, "client.id")) {
        view->kafka_names[n] = (char *)"client.id";
        view->kafka_values[n++] = (char *)client_id;
    }
    for (int i = 0; i < config->nkafka; i++) {
        if (!ds_kafka_property_applies(config->kafka_names[i], role))
            continue;
        view->kafka_names[n] = config->kafka_names[i];
        view->kafka_values[n++] = config->kafka_values[i];
    }
    view->nkafka = n;
    return view;
}

void ds_kafka_config_view_free(ds_config_t *view)
{
    if (!view)
        return;
    free(view->kafka_names);
    free(view->kafka_values);
    free(view);
}
