/*
 * lsn.c: WAL positions, time, the error-string helper and edit distance.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dualsync/common.h"

const char *ds_lsn_format(ds_lsn_t lsn, char out[DS_LSN_STRLEN])
{
    snprintf(out, DS_LSN_STRLEN, "%X/%X", (uint32_t)(lsn >> 32), (uint32_t)lsn);
    return out;
}

bool ds_lsn_parse(const char *text, ds_lsn_t *lsn)
{
    unsigned int hi, lo;
    int consumed = 0;

    if (sscanf(text, "%X/%X%n", &hi, &lo, &consumed) != 2 || text[consumed] != '\0')
        return false;
    *lsn = ((ds_lsn_t)hi << 32) | lo;
    return true;
}

int64_t ds_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

bool ds_fail(char *errstr, size_t errstr_size, const char *fmt, ...)
{
    va_list ap;

    if (errstr && errstr_size) {
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return false;
}

size_t ds_edit_distance(const char *a, const char *b, size_t limit)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[128];

    if (la >= DS_ARRAY_LEN(row) || lb >= DS_ARRAY_LEN(row) || (la > lb ? la - lb : lb - la) > limit)
        return limit + 1;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0], best;

        row[0] = i;
        best = row[0];
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t v = diag + (a[i - 1] == b[j - 1] ? 0 : 1);

            if (row[j] + 1 < v)
                v = row[j] + 1;
            if (row[j - 1] + 1 < v)
                v = row[j - 1] + 1;
            row[j] = v;
            diag = up;
            if (v < best)
                best = v;
        }
        /* Every later row is at least this row's minimum. */
        if (best > limit)
            return limit + 1;
    }
    return row[lb] > limit ? limit + 1 : row[lb];
}
