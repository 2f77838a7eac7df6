/*
 * ds_test.h: the few assertions the unit tests need. A failed check prints file:line and
 * the values, counts, and the test goes on; main() returns ds_test_report().
 */
#ifndef DS_TEST_H
#define DS_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int ds_test_checks, ds_test_failures;

#define DS_CHECK(cond)                                                                             \
    do {                                                                                           \
        ds_test_checks++;                                                                          \
        if (!(cond)) {                                                                             \
            ds_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define DS_CHECK_INT(got, want)                                                                    \
    do {                                                                                           \
        long long ds_g_ = (long long)(got), ds_w_ = (long long)(want);                             \
        ds_test_checks++;                                                                          \
        if (ds_g_ != ds_w_) {                                                                      \
            ds_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: %s is %lld, want %lld\n", __FILE__, __LINE__, #got, ds_g_,     \
                    ds_w_);                                                                        \
        }                                                                                          \
    } while (0)

#define DS_CHECK_STR(got, want)                                                                    \
    do {                                                                                           \
        const char *ds_g_ = (got), *ds_w_ = (want);                                                \
        ds_test_checks++;                                                                          \
        if (!ds_g_ || !ds_w_ || strcmp(ds_g_, ds_w_) != 0) {                                       \
            ds_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: %s is \"%s\", want \"%s\"\n", __FILE__, __LINE__, #got,        \
                    ds_g_ ? ds_g_ : "(null)", ds_w_ ? ds_w_ : "(null)");                           \
        }                                                                                          \
    } while (0)

/* Runs one test function and names it in the output. */
#define DS_RUN(fn)                                                                                 \
    do {                                                                                           \
        int ds_before_ = ds_test_failures;                                                         \
        fn();                                                                                      \
        printf("%s %s\n", ds_test_failures == ds_before_ ? "ok  " : "FAIL", #fn);                  \
    } while (0)

static inline int ds_test_report(void)
{
    printf("%d checks, %d failed\n", ds_test_checks, ds_test_failures);
    return ds_test_failures ? 1 : 0;
}

#endif
