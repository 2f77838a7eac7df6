/*
 * mapping_period.c: parse_period, a free-text preferred time of day → MORNING or AFTERNOON.
 *
 * The grammar (mappings/README.md has the table), after trimming and after reading
 * full-width digits, colon and tilde (１０：００～) as their ASCII forms:
 *
 *   text   := time [sep time]             a range: its start decides, its end must read too
 *   sep    := "~" | "-" | "–"             with optional spaces around
 *   time   := word | korean | clock
 *   word   := morning | afternoon | noon | midnight | 정오 | 자정      (ASCII in any case)
 *   korean := (오전 | 오후) [hour12]  |  hour24 ("시" [MM "분"] | ":" MM [":" SS])
 *   hour12 := H "시" [MM "분"] | H ":" MM [":" SS]                     H in 1..12
 *   clock  := H [":" MM [":" SS]] ampm     H in 1..12, ampm: am pm a.m. p.m. (any case)
 *           | H ":" MM [":" SS]            H in 0..23
 *
 * Minutes and seconds are two digits, 00-59; hours one or two digits. 12 AM (오전 12시) is
 * midnight, 12 PM (오후 12시) noon; noon and later is AFTERNOON. Anything else is rejected,
 * never guessed: "asap", "24:00" (which day?), "13:00 PM" (which clock?), a bare "9".
 */
#include <stdbool.h>
#include <string.h>

#include "mapping_internal.h"

/* Longer texts are no time of day; the limit only bounds the normalised copy. */
#define PERIOD_MAX_LEN 200

#define WORD_MORNING   (9 * 60)  /* where a word puts the time: only its half of the day matters */
#define WORD_AFTERNOON (15 * 60)

typedef struct cursor {
    const char *p;
    const char *end;
} cursor_t;

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void skip_spaces(cursor_t *c)
{
    while (c->p < c->end && is_space(*c->p))
        c->p++;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static char fold(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Consumes @p word (lower-case ASCII or UTF-8, compared with ASCII case folded) if next. */
static bool take(cursor_t *c, const char *word)
{
    size_t n = strlen(word);

    if ((size_t)(c->end - c->p) < n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (fold(c->p[i]) != word[i])
            return false;
    }
    c->p += n;
    return true;
}

/* A word must not run on into letters ("mornings", "9 amish"). */
static bool word_ends(const cursor_t *c)
{
    char ch = c->p < c->end ? fold(*c->p) : '\0';

    return !(ch >= 'a' && ch <= 'z');
}

/* Consumes the whole word @p word if next; leaves the cursor where it was otherwise. */
static bool take_word(cursor_t *c, const char *word)
{
    cursor_t save = *c;

    if (take(c, word) && word_ends(c))
        return true;
    *c = save;
    return false;
}

/* One or two digits. */
static bool take_hour(cursor_t *c, int *hour)
{
    int n = 0, v = 0;

    while (c->p < c->end && is_digit(*c->p) && n < 3) {
        v = v * 10 + (*c->p++ - '0');
        n++;
    }
    *hour = v;
    return n >= 1 && n <= 2;
}

/* Exactly two digits, 00-59. */
static bool take_sixty(cursor_t *c, int *v)
{
    if (c->end - c->p < 2 || !is_digit(c->p[0]) || !is_digit(c->p[1]) || c->p[0] > '5' ||
        (c->end - c->p > 2 && is_digit(c->p[2])))
        return false;
    *v = (c->p[0] - '0') * 10 + (c->p[1] - '0');
    c->p += 2;
    return true;
}

/* ":MM" and an optional ":SS" after an hour. */
static bool take_minutes(cursor_t *c, int *minutes)
{
    int seconds;

    if (!take(c, ":") || !take_sixty(c, minutes))
        return false;
    if (c->p < c->end && *c->p == ':')
        return c->p++, take_sixty(c, &seconds);
    return true;
}

/* "시" [spaces] [MM "분"] after an hour. */
static bool take_korean_hour(cursor_t *c, int *minutes)
{
    cursor_t save;

    if (!take(c, "\xEC\x8B\x9C")) /* 시 */
        return false;
    *minutes = 0;
    save = *c;
    skip_spaces(c);
    if (take_sixty(c, minutes) && take(c, "\xEB\xB6\x84")) /* 분 */
        return true;
    *c = save;
    *minutes = 0;
    return true;
}

/* am, pm, a.m., p.m. (the last dot optional); *pm tells which. */
static bool take_ampm(cursor_t *c, bool *pm)
{
    char ch = c->p < c->end ? fold(*c->p) : '\0';

    if (ch != 'a' && ch != 'p')
        return false;
    *pm = ch == 'p';
    c->p++;
    if (take(c, "m"))
        return word_ends(c);
    if (!take(c, ".m"))
        return false;
    take(c, ".");
    return word_ends(c);
}

/* One time of day: its minute of the day (a word gives one in its half). */
static bool take_time(cursor_t *c, int *at)
{
    int hour, minutes = 0;
    bool pm, half = false, afternoon = false;
    cursor_t save;

    if (take_word(c, "morning")) {
        *at = WORD_MORNING;
        return true;
    }
    if (take_word(c, "afternoon")) {
        *at = WORD_AFTERNOON;
        return true;
    }
    if (take_word(c, "noon") || take(c, "\xEC\xA0\x95\xEC\x98\xA4")) { /* 정오 */
        *at = 12 * 60;
        return true;
    }
    if (take_word(c, "midnight") || take(c, "\xEC\x9E\x90\xEC\xA0\x95")) { /* 자정 */
        *at = 0;
        return true;
    }
    if (take(c, "\xEC\x98\xA4\xEC\xA0\x84")) /* 오전 */
        half = true;
    else if (take(c, "\xEC\x98\xA4\xED\x9B\x84")) /* 오후 */
        half = afternoon = true;
    if (half) {
        save = *c;
        skip_spaces(c);
        if (!(c->p < c->end && is_digit(*c->p))) {
            *c = save; /* 오전 or 오후 alone: the half of the day */
            *at = afternoon ? WORD_AFTERNOON : WORD_MORNING;
            return true;
        }
        if (!take_hour(c, &hour) || hour < 1 || hour > 12)
            return false;
        if (!take_korean_hour(c, &minutes) && !take_minutes(c, &minutes))
            return false;
        /* 오전 12시 is midnight, 오후 12시 noon, as 12 AM and 12 PM. */
        *at = (hour % 12 + (afternoon ? 12 : 0)) * 60 + minutes;
        return true;
    }

    if (!take_hour(c, &hour))
        return false;
    if (take_korean_hour(c, &minutes)) {
        if (hour > 23)
            return false;
        *at = hour * 60 + minutes;
        return true;
    }
    save = *c;
    if (!take_minutes(c, &minutes)) {
        *c = save; /* "9 am": an hour alone needs AM or PM */
        minutes = 0;
        skip_spaces(c);
        if (!take_ampm(c, &pm) || hour < 1 || hour > 12)
            return false;
        *at = (hour % 12 + (pm ? 12 : 0)) * 60;
        return true;
    }
    save = *c;
    skip_spaces(c);
    if (take_ampm(c, &pm)) {
        if (hour < 1 || hour > 12)
            return false; /* 13:00 PM, 0:30 AM: which clock? */
        *at = (hour % 12 + (pm ? 12 : 0)) * 60 + minutes;
        return true;
    }
    *c = save;
    if (hour > 23)
        return false; /* 24:00 is midnight of which day? */
    *at = hour * 60 + minutes;
    return true;
}

/*
 * Copies @p text with full-width digits (U+FF10..FF19), colon (U+FF1A) and tilde (U+FF5E)
 * as ASCII and the en dash (U+2013) as '-'; false when it is too long to be a time.
 */
static bool normalise(const char *text, size_t len, char *out, size_t *out_len)
{
    size_t n = 0;

    if (len > PERIOD_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        const unsigned char *u = (const unsigned char *)text + i;

        if (i + 2 < len && u[0] == 0xEF && u[1] == 0xBC && u[2] >= 0x90 && u[2] <= 0x9A) {
            out[n++] = (char)('0' + (u[2] - 0x90)); /* 0x9A - 0x90 + '0' is ':' */
            i += 2;
        } else if (i + 2 < len && u[0] == 0xEF && u[1] == 0xBD && u[2] == 0x9E) {
            out[n++] = '~';
            i += 2;
        } else if (i + 2 < len && u[0] == 0xE2 && u[1] == 0x80 && u[2] == 0x93) {
            out[n++] = '-';
            i += 2;
        } else {
            out[n++] = text[i];
        }
    }
    *out_len = n;
    return true;
}

const char *ds_mapping_parse_period(const char *text, size_t len)
{
    char buf[PERIOD_MAX_LEN];
    size_t n;
    cursor_t c;
    int start, end;

    if (!normalise(text, len, buf, &n))
        return NULL;
    c = (cursor_t){buf, buf + n};
    while (c.end > c.p && is_space(c.end[-1]))
        c.end--;
    skip_spaces(&c);
    if (!take_time(&c, &start))
        return NULL;
    skip_spaces(&c);
    if (c.p < c.end && (*c.p == '~' || *c.p == '-')) {
        /* A range ("10:00~11:00"): the visit starts at its start. The end must be a time too,
         * or "10:00-ish" would pass as 10:00. */
        c.p++;
        skip_spaces(&c);
        if (!take_time(&c, &end))
            return NULL;
        skip_spaces(&c);
    }
    if (c.p != c.end)
        return NULL;
    return start < 12 * 60 ? "MORNING" : "AFTERNOON";
}
