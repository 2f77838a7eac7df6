/*
 * jsonregion.h: parsing apply's Kafka message values with jansson without a malloc and a
 * free per JSON node.
 *
 * jansson allocates every object, member, string and number of a parsed document on its own
 * (a change of the clinic patients table is over a hundred allocations), and apply frees the
 * documents of a whole batch at once, which overflows glibc's per-thread caches: malloc and
 * free were a tenth of apply's instructions. ds_json_region_loadb() parses with jansson as
 * json_loadb() does, but the nodes come from 64 KiB chunks of one address range reserved at
 * first use, bump-allocated; a chunk is reused once every node in it was freed (json_decref
 * as usual). jansson's allocation functions are replaced process-wide by ones that send
 * everything outside a ds_json_region_loadb() call, and every pointer outside the range, to
 * malloc and free, so other jansson users (json_dumps results freed with free() included) see
 * no difference.
 *
 * One thread: the first thread to call ds_json_region_loadb() owns the region; calls from
 * other threads parse with plain json_loadb(). Documents it returns must be freed on that
 * thread too: a free on another thread stops the process (abort) rather than race the chunk
 * counts. Without the reservation (the address space is limited), and in sanitizer
 * builds (so that AddressSanitizer keeps checking jansson's nodes), it is json_loadb().
 */
#ifndef DUALSYNC_JSONREGION_H
#define DUALSYNC_JSONREGION_H

#include <jansson.h>

#include "dualsync/common.h"

/** @brief json_loadb(), with the nodes allocated from the region (the comment above). */
json_t *ds_json_region_loadb(const char *buffer, size_t buflen, size_t flags, json_error_t *error);

/** @brief Chunks of the region in use and in the free list (for tests). */
void ds_json_region_chunks(size_t *used, size_t *free_chunks);

#endif
