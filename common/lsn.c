/*
 * lsn.c: WAL positions, time, and the error-string helper.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
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
