/*
 * test_batchstmt.c: the array parameters of batch statements (consumers/batchstmt.c). Every
 * row value of a set-based write travels inside one of these literals, so quoting must hold
 * for any text: quotes, backslashes, braces, commas, the word NULL, and SQL NULL itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualsync/batchstmt.h"
#include "ds_test.h"

static void test_upsert_arrays_quote_every_value_and_keep_sql_null(void)
{
    ds_target_t t = {.id = "people/people", .links_id = "people/people", .write_nparams = 5};
    ds_batchstmt_args_t b = DS_BATCHSTMT_ARGS_INIT;
    const char *row1[] = {"people/people", "topic", "{\"id\":1}", "O\"Brien \\ {a,b}", NULL};
    const char *row2[] = {"people/people", "topic", "{\"id\":2}", "NULL", ""};
    const char *unlink[] = {"people/people", "topic", "{\"id\":3}"};
    const char *const *params;

    ds_batchstmt_begin(&b, &t);
    ds_batchstmt_add(&b, row1, 5, 0, true);
    ds_batchstmt_add(&b, row2, 5, 7, true);
    ds_batchstmt_add(&b, unlink, 3, 9, false); /* an unlink has only the first three */
    DS_CHECK_INT(b.nrows, 3);
    params = ds_batchstmt_finish(&b, "clinic.public.people");
    DS_CHECK_STR(params[0], "people/people");
    DS_CHECK_STR(params[1], "clinic.public.people");
    DS_CHECK_STR(params[2], "{\"{\\\"id\\\":1}\",\"{\\\"id\\\":2}\",\"{\\\"id\\\":3}\"}");
    DS_CHECK_STR(params[3], "{\"O\\\"Brien \\\\ {a,b}\",\"NULL\",NULL}");
    DS_CHECK_STR(params[4], "{NULL,\"\",NULL}");
    DS_CHECK_STR(params[5], "{\"0\",\"7\",\"9\"}");
    DS_CHECK_STR(params[6], "{\"u\",\"u\",\"d\"}");

    /* Reused for the next statement: nothing of the previous one remains. */
    ds_batchstmt_begin(&b, &t);
    ds_batchstmt_add(&b, row2, 5, 1, true);
    params = ds_batchstmt_finish(&b, "clinic.public.people");
    DS_CHECK_STR(params[3], "{\"NULL\"}");
    DS_CHECK_STR(params[5], "{\"1\"}");
    ds_batchstmt_free(&b);
}

static void test_in_place_arrays_start_at_the_first_parameter(void)
{
    ds_target_t t = {.id = "appointments/links", .write_nparams = 2, .in_place = true};
    ds_batchstmt_args_t b = DS_BATCHSTMT_ARGS_INIT;
    const char *row[] = {"false", "appt-1"};
    const char *const *params;

    ds_batchstmt_begin(&b, &t);
    ds_batchstmt_add(&b, row, 2, 4, true);
    params = ds_batchstmt_finish(&b, NULL);
    DS_CHECK_STR(params[0], "{\"false\"}");
    DS_CHECK_STR(params[1], "{\"appt-1\"}");
    DS_CHECK_STR(params[2], "{\"4\"}");
    DS_CHECK_STR(params[3], "{\"u\"}");
    ds_batchstmt_free(&b);
}

/* Many rows: the literals grow past their first allocation, ords run to several digits, and a
 * value is escaped wherever its quote or backslash falls. */
static void test_many_rows_grow_the_literals(void)
{
    ds_target_t t = {.id = "people/people", .links_id = "people/people", .write_nparams = 4};
    ds_batchstmt_args_t b = DS_BATCHSTMT_ARGS_INIT;
    ds_buf_t keys = DS_BUF_INIT, values = DS_BUF_INIT, ords = DS_BUF_INIT;
    const char *const *params;
    char key[32], value[32];

    ds_batchstmt_begin(&b, &t);
    ds_buf_append_char(&keys, '{');
    ds_buf_append_char(&values, '{');
    ds_buf_append_char(&ords, '{');
    for (int i = 0; i < 1000; i++) {
        const char *row[] = {"people/people", "topic", key, i % 3 ? value : NULL};

        snprintf(key, sizeof(key), "{\"id\":%d}", i);
        snprintf(value, sizeof(value), "%d%s", i, i % 2 ? "\"" : "\\x");
        ds_batchstmt_add(&b, row, 4, i, true);
        ds_buf_appendf(&keys, "%s\"{\\\"id\\\":%d}\"", i ? "," : "", i);
        if (i % 3)
            ds_buf_appendf(&values, "%s\"%d%s\"", i ? "," : "", i, i % 2 ? "\\\"" : "\\\\x");
        else
            ds_buf_appendf(&values, "%sNULL", i ? "," : "");
        ds_buf_appendf(&ords, "%s\"%d\"", i ? "," : "", i);
    }
    ds_buf_append_char(&keys, '}');
    ds_buf_append_char(&values, '}');
    ds_buf_append_char(&ords, '}');
    params = ds_batchstmt_finish(&b, "t");
    DS_CHECK_STR(params[2], keys.data);
    DS_CHECK_STR(params[3], values.data);
    DS_CHECK_STR(params[4], ords.data);
    ds_buf_free(&keys);
    ds_buf_free(&values);
    ds_buf_free(&ords);
    ds_batchstmt_free(&b);
}

int main(void)
{
    DS_RUN(test_many_rows_grow_the_literals);
    DS_RUN(test_upsert_arrays_quote_every_value_and_keep_sql_null);
    DS_RUN(test_in_place_arrays_start_at_the_first_parameter);
    return ds_test_report();
}
