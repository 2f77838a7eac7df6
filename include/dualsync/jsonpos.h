/*
 * jsonpos.h: where a value sits in JSON text, for messages that say "FILE:LINE:COL: $.path".
 *
 * jansson does not remember where values sit in the text it parsed, so the configuration and
 * mapping loaders find positions again with this small tokenizer: it walks the text of a
 * document jansson already accepted to a JSON path (object keys, array indexes). Lines and
 * columns are 1-based; columns count characters (UTF-8 sequences), as jansson's own do.
 */
#ifndef DUALSYNC_JSONPOS_H
#define DUALSYNC_JSONPOS_H

#include "dualsync/common.h"

/* One step of a JSON path: an object key, or an array index when key is NULL. */
typedef struct ds_json_step {
    const char *key; /* member name, borrowed (usually from the json_t being walked); NULL for an
                        array element */
    size_t index;    /* element index when key is NULL; ignored otherwise */
} ds_json_step_t;

/* Where a value (or key) starts in the text, and where its text ends. */
typedef struct ds_json_pos {
    const char *start; /* its first byte, inside the text given */
    const char *end;   /* one past its last byte; NULL when its text could not be skipped over
                          (text jansson would have rejected) */
    int line;          /* of start, 1-based */
    int column;        /* of start, 1-based, in characters */
} ds_json_pos_t;

/**
 * @brief Finds the value at the first @p depth steps of @p path in @p text (of @p len bytes).
 *
 * With @p at_key and a last step that is an object key, finds that key (its opening quote)
 * instead of the value it names; with @p depth 0, the top-level value. Meant for paths that
 * exist in the document jansson parsed from this very text (duplicate keys rejected, so the
 * first matching key is the one).
 *
 * @return false when the path is not found or the text does not tokenize up to it; @p pos is
 *         then unspecified. True fills @p pos (its end may still be NULL, see ds_json_pos_t).
 */
bool ds_json_locate(const char *text, size_t len, const ds_json_step_t *path, int depth,
                    bool at_key, ds_json_pos_t *pos) DS_MUST_CHECK;

/**
 * @brief Decodes the content of a JSON string (between its quotes, escapes included) into
 *        @p out, NUL-terminated.
 *
 * @p out holds at least @p len + 1 bytes: no escape decodes to more bytes than it is written
 * with. Lenient, because it also reads text jansson rejected: of a bad escape ("\q", "\u12")
 * the backslash is dropped and the rest copied; a lone surrogate is encoded as it stands.
 */
void ds_json_unescape(const char *raw, size_t len, char *out);

/**
 * @brief Whether a key can be shown as ".key" in a JSON path (an identifier: letters, digits,
 *        underscores, not starting with a digit); other keys are shown as ["key"].
 */
bool ds_json_is_plain_key(const char *key);

#endif
