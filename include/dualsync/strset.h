/*
 * strset.h: a set of byte strings (hash table), for apply's small bookkeeping sets: the keys
 * waiting in dualsync.pending, the keys a batch has already decided.
 */
#ifndef DUALSYNC_STRSET_H
#define DUALSYNC_STRSET_H

#include "dualsync/common.h"

typedef struct ds_strset ds_strset_t;

/** @brief An empty set, or NULL when out of memory. */
ds_strset_t *ds_strset_new(void);

/** @brief Accepts NULL. */
void ds_strset_free(ds_strset_t *set);

/** @brief Adds a copy of the @p len bytes at @p s; false only when out of memory. */
bool ds_strset_add(ds_strset_t *set, const char *s, size_t len) DS_MUST_CHECK;

/** @brief Adds the bytes unless the set holds them, hashing them once: 1 when added, 0 when
 *         they were there already, -1 when out of memory. */
int ds_strset_add_new(ds_strset_t *set, const char *s, size_t len) DS_MUST_CHECK;

/** @brief Whether the set holds those bytes. */
bool ds_strset_contains(const ds_strset_t *set, const char *s, size_t len);

/** @brief Removes them; false when they were not there. */
bool ds_strset_remove(ds_strset_t *set, const char *s, size_t len);

/** @brief Number of strings held. */
size_t ds_strset_count(const ds_strset_t *set);

/** @brief Empties the set, keeping its table. */
void ds_strset_clear(ds_strset_t *set);

#endif
