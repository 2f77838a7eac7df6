/*
 * watermark_rows.h: the "rows" of a HIGH watermark (incremental.h), read row by row without
 * building a JSON tree.
 *
 * A HIGH carries a whole chunk: thousands of rows of text values. Parsed by jansson, every
 * value is a node of its own (an allocation for the node, one for the string, and their
 * frees), and that parse and the tree's release were half of capture's CPU during a
 * backfill, more than building and sending the read events. The rows have one fixed shape,
 * an array of arrays of strings or nulls, so they are read here straight from the text: the
 * rest of the message (a few hundred bytes) still goes to jansson, with the rows' place
 * taken by an empty array.
 *
 * The reader is as strict as jansson about the rows: every string is well-formed UTF-8, its
 * escapes are JSON's (a \u escape of a surrogate pair or of U+0000 is refused, as jansson
 * refuses them), and nothing but whitespace separates the tokens.
 */
#ifndef DUALSYNC_WATERMARK_ROWS_H
#define DUALSYNC_WATERMARK_ROWS_H

#include "dualsync/common.h"
#include "dualsync/pgoutput.h"

/**
 * @brief Finds the value of the top-level member "rows" of the JSON object @p text.
 *
 * Only the object's own tokens are looked at: the values of its other members are skipped
 * over, not checked (jansson checks them when it parses the rest). @p start and @p end are
 * byte offsets of the value's first byte and one past its last.
 *
 * @return false when @p text is not an object or has no "rows" member.
 */
bool ds_watermark_rows_find(const char *text, size_t len, size_t *start,
                            size_t *end) DS_MUST_CHECK;

/* A reader over one "rows" array. */
typedef struct ds_watermark_rows {
    char *text; /* a copy of the array, owned: strings are unescaped in it in place, so the
                   values handed out point into it and stay valid until close */
    char *p;    /* next byte to read */
    char *end;  /* one past the array's last byte */
    size_t row; /* rows read so far */
    bool done;  /* the closing bracket was read */
} ds_watermark_rows_t;

/**
 * @brief Starts reading the array of @p len bytes at @p text (copied: @p text may go after).
 * @return false when out of memory (@p why says so) or the text does not start an array.
 */
bool ds_watermark_rows_open(ds_watermark_rows_t *rows, const char *text, size_t len, char *why,
                            size_t why_size) DS_MUST_CHECK;

/**
 * @brief Reads the next row into @p values (@p nvalues of them): DS_VALUE_TEXT pointing into
 *        the reader's copy, or DS_VALUE_NULL.
 * @return 1 for a row, 0 at the end of the array, -1 when the text is malformed (@p why says
 *         where: the row and column).
 */
int ds_watermark_rows_next(ds_watermark_rows_t *rows, ds_value_t *values, int nvalues, char *why,
                           size_t why_size);

/** @brief Frees the copy; accepts a reader never opened (zeroed) or already closed. */
void ds_watermark_rows_close(ds_watermark_rows_t *rows);

#endif
