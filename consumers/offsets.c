/*
 * offsets.c: per-database positions, one row per partition.
 *
 * A consumer holds tens of partitions, so a linear table is as fast as hashing and simpler.
 */
#include <stdlib.h>
#include <string.h>

#include "dualsync/consumer.h"
#include "dualsync/offsets.h"

typedef struct row {
    char *topic;       /* owned */
    int32_t partition; /* of topic */
    int64_t *next;     /* per database: its next offset, or DS_OFFSET_NONE */
    int64_t *generation; /* per database: this process's claim, or DS_GENERATION_NONE */
    ds_source_pos_t *stored; /* per database: the newest source position it stored */
    ds_source_pos_t newest;  /* of the changes read so far (ds_offsets_stale) */
    bool newest_known;       /* newest was set from stored since the last claim */
} row_t;

struct ds_offsets {
    int ndatabases; /* entries of each row's next */
    row_t *rows;    /* nrows live rows, cap allocated */
    int nrows;
    int cap;
};

ds_offsets_t *ds_offsets_new(int ndatabases)
{
    ds_offsets_t *offsets = calloc(1, sizeof(*offsets));

    if (!offsets)
        return NULL;
    offsets->ndatabases = ndatabases;
    return offsets;
}

void ds_offsets_free(ds_offsets_t *offsets)
{
    if (!offsets)
        return;
    for (int i = 0; i < offsets->nrows; i++) {
        free(offsets->rows[i].topic);
        free(offsets->rows[i].next);
        free(offsets->rows[i].generation);
        free(offsets->rows[i].stored);
    }
    free(offsets->rows);
    free(offsets);
}

static row_t *find(const ds_offsets_t *offsets, const char *topic, int32_t partition)
{
    for (int i = 0; i < offsets->nrows; i++) {
        row_t *row = &offsets->rows[i];

        if (row->partition == partition && strcmp(row->topic, topic) == 0)
            return row;
    }
    return NULL;
}

static row_t *find_or_add(ds_offsets_t *offsets, const char *topic, int32_t partition)
{
    row_t *row = find(offsets, topic, partition);

    if (row)
        return row;
    if (offsets->nrows == offsets->cap) {
        int cap = offsets->cap ? offsets->cap * 2 : 16;
        row_t *rows = realloc(offsets->rows, (size_t)cap * sizeof(*rows));

        if (!rows)
            return NULL;
        offsets->rows = rows;
        offsets->cap = cap;
    }
    row = &offsets->rows[offsets->nrows];
    row->partition = partition;
    row->topic = strdup(topic);
    row->next =
        malloc((size_t)(offsets->ndatabases > 0 ? offsets->ndatabases : 1) * sizeof(*row->next));
    row->generation = malloc((size_t)(offsets->ndatabases > 0 ? offsets->ndatabases : 1) *
                             sizeof(*row->generation));
    row->stored = calloc((size_t)(offsets->ndatabases > 0 ? offsets->ndatabases : 1),
                         sizeof(*row->stored));
    row->newest_known = false;
    if (!row->topic || !row->next || !row->generation || !row->stored) {
        free(row->topic);
        free(row->next);
        free(row->generation);
        free(row->stored);
        return NULL;
    }
    for (int db = 0; db < offsets->ndatabases; db++) {
        row->next[db] = DS_OFFSET_NONE;
        row->generation[db] = DS_GENERATION_NONE;
    }
    offsets->nrows++;
    return row;
}

bool ds_offsets_set(ds_offsets_t *offsets, int db, const char *topic, int32_t partition,
                    int64_t next_offset)
{
    row_t *row;

    if (db < 0 || db >= offsets->ndatabases)
        return false;
    if (!(row = find_or_add(offsets, topic, partition)))
        return false;
    row->next[db] = next_offset;
    return true;
}

bool ds_offsets_advance(ds_offsets_t *offsets, int db, const char *topic, int32_t partition,
                        int64_t next_offset)
{
    row_t *row;

    if (db < 0 || db >= offsets->ndatabases)
        return false;
    if (!(row = find_or_add(offsets, topic, partition)))
        return false;
    if (next_offset > row->next[db])
        row->next[db] = next_offset;
    return true;
}

int64_t ds_offsets_get(const ds_offsets_t *offsets, int db, const char *topic, int32_t partition)
{
    const row_t *row = find(offsets, topic, partition);

    if (!row || db < 0 || db >= offsets->ndatabases)
        return DS_OFFSET_NONE;
    return row->next[db];
}

bool ds_offsets_set_generation(ds_offsets_t *offsets, int db, const char *topic,
                               int32_t partition, int64_t generation)
{
    row_t *row;

    if (db < 0 || db >= offsets->ndatabases)
        return false;
    if (!(row = find_or_add(offsets, topic, partition)))
        return false;
    row->generation[db] = generation;
    return true;
}

int64_t ds_offsets_generation(const ds_offsets_t *offsets, int db, const char *topic,
                              int32_t partition)
{
    const row_t *row = find(offsets, topic, partition);

    if (!row || db < 0 || db >= offsets->ndatabases)
        return DS_GENERATION_NONE;
    return row->generation[db];
}

bool ds_offsets_owned(const ds_offsets_t *offsets, const char *topic, int32_t partition)
{
    const row_t *row = find(offsets, topic, partition);

    if (!row || offsets->ndatabases == 0)
        return false;
    for (int db = 0; db < offsets->ndatabases; db++) {
        if (row->generation[db] == DS_GENERATION_NONE)
            return false;
    }
    return true;
}

void ds_offsets_forget(ds_offsets_t *offsets, const char *topic, int32_t partition)
{
    row_t *row = find(offsets, topic, partition);

    if (!row)
        return;
    free(row->topic);
    free(row->next);
    free(row->generation);
    free(row->stored);
    *row = offsets->rows[--offsets->nrows];
}

int64_t ds_offsets_start(const ds_offsets_t *offsets, const char *topic, int32_t partition)
{
    const row_t *row = find(offsets, topic, partition);
    int64_t start = DS_OFFSET_NONE;

    if (!row || offsets->ndatabases == 0)
        return DS_OFFSET_BEGINNING;
    for (int db = 0; db < offsets->ndatabases; db++) {
        if (row->next[db] == DS_OFFSET_NONE)
            return DS_OFFSET_BEGINNING;
        if (start == DS_OFFSET_NONE || row->next[db] < start)
            start = row->next[db];
    }
    return start;
}

bool ds_offsets_applied(const ds_offsets_t *offsets, int db, const char *topic, int32_t partition,
                        int64_t offset)
{
    int64_t next = ds_offsets_get(offsets, db, topic, partition);

    return next != DS_OFFSET_NONE && offset < next;
}

bool ds_offsets_applied_everywhere(const ds_offsets_t *offsets, const char *topic,
                                   int32_t partition, int64_t offset)
{
    for (int db = 0; db < offsets->ndatabases; db++) {
        if (!ds_offsets_applied(offsets, db, topic, partition, offset))
            return false;
    }
    return offsets->ndatabases > 0;
}

bool ds_offsets_set_position(ds_offsets_t *offsets, int db, const char *topic, int32_t partition,
                             ds_source_pos_t position)
{
    row_t *row;

    if (db < 0 || db >= offsets->ndatabases)
        return false;
    if (!(row = find_or_add(offsets, topic, partition)))
        return false;
    row->stored[db] = position;
    row->newest_known = false;
    return true;
}

bool ds_offsets_stale(ds_offsets_t *offsets, const char *topic, int32_t partition,
                      ds_source_pos_t position, ds_source_pos_t *newest)
{
    row_t *row = find_or_add(offsets, topic, partition);

    if (!row)
        return false;
    if (!row->newest_known) {
        /* The database that applied least stored the oldest position: reading resumes at
         * its offset, and every later change is read again from there. */
        row->newest = offsets->ndatabases > 0 ? row->stored[0] : (ds_source_pos_t){0, 0};
        for (int db = 1; db < offsets->ndatabases; db++) {
            if (ds_source_pos_before(row->stored[db], row->newest))
                row->newest = row->stored[db];
        }
        row->newest_known = true;
    }
    if (position.commit == DS_INVALID_LSN)
        return false;
    if (ds_source_pos_before(position, row->newest)) {
        *newest = row->newest;
        return true;
    }
    row->newest = position;
    return false;
}
