/*
 * test_jsonregion.c: documents parsed into the region (common/jsonregion.c) read as jansson's
 * own, their chunks are reused once freed, and every other jansson allocation (before the
 * region, json_dumps results freed with free(), other threads, large values) is malloc's.
 * In a sanitizer build the region is off and the chunk counts stay zero.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dualsync/jsonregion.h"
#include "ds_test.h"

#define NDOCS 2000

static const char *change(char *text, size_t size, int i)
{
    snprintf(text, size,
             "{\"before\":null,\"after\":{\"id\":\"bp-%d\",\"name\":\"Patient %d\","
             "\"phone\":\"010-1234-%04d\",\"email\":\"p%d@mail.example\",\"n\":%d,\"x\":1.5},"
             "\"source\":{\"ts_ms\":1700000000000,\"sequence\":\"[\\\"1\\\",\\\"2\\\"]\","
             "\"lsn\":123456,\"snapshot\":\"false\",\"tags\":[1,2,\"three\",null,true]},"
             "\"op\":\"c\"}",
             i, i, i % 10000, i, i);
    return text;
}

static bool holds(const json_t *doc, int i)
{
    char id[32];
    const json_t *after = json_object_get(doc, "after");

    snprintf(id, sizeof(id), "bp-%d", i);
    return strcmp(json_string_value(json_object_get(after, "id")), id) == 0 &&
           json_integer_value(json_object_get(after, "n")) == i &&
           json_array_size(json_object_get(json_object_get(doc, "source"), "tags")) == 5 &&
           strcmp(json_string_value(json_object_get(doc, "op")), "c") == 0;
}

static void test_documents_read_as_parsed_and_chunks_are_reused(void)
{
    static json_t *docs[NDOCS];
    json_t *before = json_pack("{s:s}", "made", "before the region");
    char text[1024];
    size_t in_use, free_chunks, total = 0;
    json_error_t err;
    bool all = true;

    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < NDOCS; i++) {
            const char *t = change(text, sizeof(text), i);

            docs[i] = ds_json_region_loadb(t, strlen(t), 0, &err);
            all = all && docs[i] && holds(docs[i], i);
        }
        for (int i = 0; i < NDOCS; i++)
            all = all && holds(docs[i], i); /* none overwrote another */
        ds_json_region_chunks(&in_use, &free_chunks);
        if (round == 0) {
            total = in_use + free_chunks;
#ifndef __SANITIZE_ADDRESS__
            DS_CHECK(in_use > 1); /* two thousand documents do not fit one chunk */
#endif
        } else {
            DS_CHECK_INT(in_use + free_chunks, total); /* the freed chunks again */
        }
        for (int i = 0; i < NDOCS; i++)
            json_decref(docs[i]);
    }
    DS_CHECK(all);
    ds_json_region_chunks(&in_use, &free_chunks);
    DS_CHECK(in_use <= 1); /* at most the one being filled */

    /* Outside a parse, jansson allocates with malloc: json_dumps' text is free()d. */
    {
        const char *t = change(text, sizeof(text), 7);
        json_t *doc = ds_json_region_loadb(t, strlen(t), 0, &err);
        char *dumped = json_dumps(json_object_get(doc, "after"), JSON_COMPACT);

        DS_CHECK(dumped && strstr(dumped, "\"id\":\"bp-7\"") != NULL);
        free(dumped);
        /* A node added to a parsed document outside the parse, freed with it. */
        json_object_set_new(doc, "added", json_string("later"));
        DS_CHECK_STR(json_string_value(json_object_get(doc, "added")), "later");
        json_decref(doc);
    }
    DS_CHECK_STR(json_string_value(json_object_get(before, "made")), "before the region");
    json_decref(before);
}

static void test_large_values_and_errors(void)
{
    size_t n = 300000;
    char *text = malloc(n + 32);
    json_error_t err;
    json_t *doc;

    memcpy(text, "{\"big\":\"", 8);
    memset(text + 8, 'x', n);
    memcpy(text + 8 + n, "\",\"n\":1}", 9);
    doc = ds_json_region_loadb(text, strlen(text), 0, &err);
    DS_CHECK(doc != NULL);
    DS_CHECK_INT(strlen(json_string_value(json_object_get(doc, "big"))), n);
    json_decref(doc);
    free(text);

    /* A document that does not parse: jansson frees what it built, the error is its own. */
    doc = ds_json_region_loadb("{\"a\":[1,2,{\"b\":", 16, 0, &err);
    DS_CHECK(doc == NULL);
    DS_CHECK(err.text[0] != '\0');
}

static void *parse_elsewhere(void *arg)
{
    char text[1024];
    const char *t = change(text, sizeof(text), 42);
    json_t *doc = ds_json_region_loadb(t, strlen(t), 0, NULL);

    *(bool *)arg = doc && holds(doc, 42);
    json_decref(doc);
    return NULL;
}

static void test_other_threads_parse_with_malloc(void)
{
    pthread_t thread;
    bool ok = false;
    size_t in_use, free_chunks, in_use_after, free_after;

    ds_json_region_chunks(&in_use, &free_chunks);
    DS_CHECK_INT(pthread_create(&thread, NULL, parse_elsewhere, &ok), 0);
    pthread_join(thread, NULL);
    DS_CHECK(ok);
    ds_json_region_chunks(&in_use_after, &free_after);
    DS_CHECK_INT(in_use_after, in_use);
    DS_CHECK_INT(free_after, free_chunks);
}

#ifndef __SANITIZE_ADDRESS__
static void *free_elsewhere(void *doc)
{
    json_decref(doc);
    return NULL;
}
#endif

/* A document of the region freed on another thread would race the owner's chunk counts: the
 * process stops with a message instead (in a child, which the test then examines). In a
 * sanitizer build there is no region. */
static void test_a_region_document_freed_elsewhere_stops_the_process(void)
{
#ifndef __SANITIZE_ADDRESS__
    int status = 0;
    pid_t child = fork();

    DS_CHECK(child >= 0);
    if (child == 0) {
        char text[1024];
        const char *t = change(text, sizeof(text), 5);
        json_t *doc = ds_json_region_loadb(t, strlen(t), 0, NULL);
        pthread_t thread;

        if (!freopen("/dev/null", "w", stderr) || !doc || pthread_create(&thread, NULL, free_elsewhere, doc) != 0)
            _exit(3);
        pthread_join(thread, NULL);
        _exit(0); /* not reached when the free is refused */
    }
    DS_CHECK(waitpid(child, &status, 0) == child);
    DS_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
#endif
}

int main(void)
{
    DS_RUN(test_documents_read_as_parsed_and_chunks_are_reused);
    DS_RUN(test_large_values_and_errors);
    DS_RUN(test_other_threads_parse_with_malloc);
    DS_RUN(test_a_region_document_freed_elsewhere_stops_the_process);
    return ds_test_report();
}
