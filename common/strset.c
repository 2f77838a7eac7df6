/*
 * strset.c: a chained hash set of byte strings (FNV-1a), grown at load factor 1.
 */
#include <stdlib.h>
#include <string.h>

#include "dualsync/strset.h"

typedef struct entry {
    struct entry *next; /* next entry of the same bucket */
    uint64_t hash;      /* of the bytes, kept to grow without rehashing them */
    size_t len;         /* bytes in s */
    char s[];           /* the bytes, NUL-terminated for debugging */
} entry_t;

struct ds_strset {
    entry_t **buckets; /* nbuckets chains */
    size_t nbuckets;   /* a power of two */
    size_t count;      /* entries */
};

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = UINT64_C(14695981039346656037);

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

ds_strset_t *ds_strset_new(void)
{
    ds_strset_t *set = calloc(1, sizeof(*set));

    if (!set)
        return NULL;
    set->nbuckets = 16;
    if (!(set->buckets = calloc(set->nbuckets, sizeof(*set->buckets)))) {
        free(set);
        return NULL;
    }
    return set;
}

void ds_strset_clear(ds_strset_t *set)
{
    for (size_t i = 0; i < set->nbuckets; i++) {
        entry_t *e = set->buckets[i];

        while (e) {
            entry_t *next = e->next;

            free(e);
            e = next;
        }
        set->buckets[i] = NULL;
    }
    set->count = 0;
}

void ds_strset_free(ds_strset_t *set)
{
    if (!set)
        return;
    ds_strset_clear(set);
    free(set->buckets);
    free(set);
}

static entry_t **find(const ds_strset_t *set, const char *s, size_t len, uint64_t hash)
{
    entry_t **link = &set->buckets[hash & (set->nbuckets - 1)];

    for (; *link; link = &(*link)->next) {
        if ((*link)->hash == hash && (*link)->len == len && memcmp((*link)->s, s, len) == 0)
            break;
    }
    return link;
}

static void grow(ds_strset_t *set)
{
    size_t n = set->nbuckets * 2;
    entry_t **buckets = calloc(n, sizeof(*buckets));

    if (!buckets)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < set->nbuckets; i++) {
        entry_t *e = set->buckets[i];

        while (e) {
            entry_t *next = e->next;

            e->next = buckets[e->hash & (n - 1)];
            buckets[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(set->buckets);
    set->buckets = buckets;
    set->nbuckets = n;
}

int ds_strset_add_new(ds_strset_t *set, const char *s, size_t len)
{
    uint64_t hash = hash_bytes(s, len);
    entry_t **link = find(set, s, len, hash), *e;

    if (*link)
        return 0;
    if (!(e = malloc(sizeof(*e) + len + 1)))
        return -1;
    e->hash = hash;
    e->len = len;
    memcpy(e->s, s, len);
    e->s[len] = '\0';
    e->next = NULL;
    *link = e;
    if (++set->count > set->nbuckets)
        grow(set);
    return 1;
}

bool ds_strset_add(ds_strset_t *set, const char *s, size_t len)
{
    return ds_strset_add_new(set, s, len) >= 0;
}

bool ds_strset_contains(const ds_strset_t *set, const char *s, size_t len)
{
    /* Most sets asked per change (the pending keys, the batch's truncates) are empty: no
     * hashing then. */
    return set->count > 0 && *find(set, s, len, hash_bytes(s, len)) != NULL;
}

bool ds_strset_remove(ds_strset_t *set, const char *s, size_t len)
{
    entry_t **link = find(set, s, len, hash_bytes(s, len)), *e = *link;

    if (!e)
        return false;
    *link = e->next;
    free(e);
    set->count--;
    return true;
}

size_t ds_strset_count(const ds_strset_t *set)
{
    return set->count;
}
