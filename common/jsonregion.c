/*
 * jsonregion.c: jansson's nodes for apply's message values, bump-allocated from chunks of one
 * reserved address range (design in include/dualsync/jsonregion.h).
 *
 * Whether a pointer is the region's is one subtraction and a comparison against the range,
 * never a read of memory around it: jansson's free function gets every pointer jansson frees,
 * including ones malloc gave long before the region existed. A chunk counts its nodes not yet
 * freed; when that reaches zero the whole chunk is free again (the one being filled starts
 * over, another goes to the free list). Apply frees a batch's documents together, so chunks
 * empty together, and the nodes of a batch cost a bump each instead of a malloc and a free.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "dualsync/jsonregion.h"

#define CHUNK_SHIFT 16
#define CHUNK_SIZE  ((size_t)1 << CHUNK_SHIFT)
/* Address space, not memory: only the chunks used are ever touched. A region that runs out
 * (a batch of huge documents) sends the rest to malloc. */
#define REGION_SIZE ((size_t)1 << 30)
#define NCHUNKS     (REGION_SIZE >> CHUNK_SHIFT)
/* Larger nodes (a long text value) go to malloc: a few of them would fill a chunk. */
#define LARGEST (CHUNK_SIZE / 8)
#define ALIGN   16

/* Off under AddressSanitizer, which then checks jansson's nodes as malloc's. */
#if defined(__SANITIZE_ADDRESS__)
#define REGION_ENABLED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REGION_ENABLED 0
#endif
#endif
#ifndef REGION_ENABLED
#define REGION_ENABLED 1
#endif

static char *base;                  /* the range, NULL when it could not be reserved */
static pthread_t owner;             /* the thread that reserved it: the only one using it */
static uint32_t live[NCHUNKS];      /* per chunk: nodes allocated and not freed */
static uint32_t free_list[NCHUNKS]; /* chunks whose nodes were all freed */
static size_t nfree;
static size_t used;               /* chunks handed out so far (the range's used prefix) */
static size_t current = SIZE_MAX; /* the chunk being filled */
static size_t fill;               /* its next free byte */
static __thread int parsing;      /* inside ds_json_region_loadb() on this thread */
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* The chunk to fill next: the current one again when every node in it was freed. */
static bool next_chunk(void)
{
    if (current != SIZE_MAX && live[current] == 0) {
        fill = 0;
        return true;
    }
    if (nfree > 0)
        current = free_list[--nfree];
    else if (used < NCHUNKS)
        current = used++;
    else
        return false;
    fill = 0;
    return true;
}

static void *region_malloc(size_t size)
{
    size_t need = size ? (size + ALIGN - 1) & ~(size_t)(ALIGN - 1) : ALIGN;
    void *p;

    if (!parsing || need > LARGEST)
        return malloc(size);
    if ((current == SIZE_MAX || fill + need > CHUNK_SIZE) && !next_chunk())
        return malloc(size);
    p = base + (current << CHUNK_SHIFT) + fill;
    fill += need;
    live[current]++;
    return p;
}

static void region_free(void *p)
{
    uintptr_t off = (uintptr_t)p - (uintptr_t)base;
    size_t chunk;

    if (!base || off >= REGION_SIZE) {
        free(p);
        return;
    }
    /* The counts are the owner's alone: a document parsed into the region and freed by
     * another thread would race them and reuse a chunk still in use. A bug, never data. */
    if (!pthread_equal(pthread_self(), owner)) {
        fputs("dualsync: a JSON document of apply's parse region was freed by another thread\n",
              stderr);
        abort();
    }
    chunk = off >> CHUNK_SHIFT;
    if (--live[chunk] > 0)
        return;
    if (chunk == current)
        fill = 0;
    else
        free_list[nfree++] = (uint32_t)chunk;
}

static void reserve(void)
{
    void *range;

    if (!REGION_ENABLED)
        return;
    range = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (range == MAP_FAILED)
        return; /* json_loadb() as usual */
    owner = pthread_self();
    base = range;
    json_set_alloc_funcs(region_malloc, region_free);
}

json_t *ds_json_region_loadb(const char *buffer, size_t buflen, size_t flags, json_error_t *error)
{
    json_t *doc;

    pthread_once(&once, reserve);
    if (!base || !pthread_equal(pthread_self(), owner))
        return json_loadb(buffer, buflen, flags, error);
    parsing = 1;
    doc = json_loadb(buffer, buflen, flags, error);
    parsing = 0;
    return doc;
}

void ds_json_region_chunks(size_t *in_use, size_t *free_chunks)
{
    *in_use = used - nfree;
    *free_chunks = nfree;
}
