/*
 * test_apply_dlq.c: the dead-letter message format, exactly, and reading it back.
 */
#include <stdlib.h>
#include <string.h>

#include "dualsync/dlq.h"
#include "ds_test.h"

static ds_dead_letter_t letter(const char *key, const char *value, const char *target,
                               const char *error)
{
    ds_dead_letter_t dl;

    memset(&dl, 0, sizeof(dl));
    dl.topic = "clinic.public.users";
    dl.partition = 2;
    dl.offset = 41;
    dl.key = key;
    dl.key_len = key ? strlen(key) : 0;
    dl.value = value;
    dl.value_len = value ? strlen(value) : 0;
    dl.target = target;
    dl.error = error;
    dl.ts_ms = 1700000000123;
    dl.attempts = 1;
    dl.recorded = true;
    return dl;
}

static void check_format(const ds_dead_letter_t *dl, const char *want)
{
    size_t len = 0;
    char *text = ds_dlq_format(dl, &len);

    DS_CHECK_STR(text, want);
    DS_CHECK_INT(len, strlen(want));
    free(text);
}

static void test_unmappable_change_has_a_null_target(void)
{
    ds_dead_letter_t dl = letter("{\"id\":7}", "{\"after\":{\"id\":7,\"role\":\"X\"},\"op\":\"c\"}",
                                 NULL, "users.json: column \"role\": value \"X\" is not mapped");

    check_format(&dl, "{\"topic\":\"clinic.public.users\",\"partition\":2,\"offset\":41,"
                      "\"key\":{\"id\":7},\"value\":{\"after\":{\"id\":7,\"role\":\"X\"},"
                      "\"op\":\"c\"},\"target\":null,\"error\":\"users.json: column \\\"role\\\": "
                      "value \\\"X\\\" is not mapped\",\"ts_ms\":1700000000123,\"recorded\":true}");
}

static void test_database_error_names_its_target(void)
{
    ds_dead_letter_t dl = letter("{\"id\":7}", "{\"op\":\"u\"}", "users/doctors",
                                 "SQLSTATE 23514: new row violates check constraint \"c\"");

    check_format(&dl, "{\"topic\":\"clinic.public.users\",\"partition\":2,\"offset\":41,"
                      "\"key\":{\"id\":7},\"value\":{\"op\":\"u\"},\"target\":\"users/doctors\","
                      "\"error\":\"SQLSTATE 23514: new row violates check constraint \\\"c\\\"\","
                      "\"ts_ms\":1700000000123,\"recorded\":true}");
}

static void test_original_json_is_kept_digit_for_digit(void)
{
    /* Re-encoding would turn 0.1 into 0.10000000000000001 and drop the spaces' meaning. */
    ds_dead_letter_t dl = letter("{\"id\": 12345678901234567890}", "{\"price\": 0.1}", NULL, "e");

    check_format(&dl, "{\"topic\":\"clinic.public.users\",\"partition\":2,\"offset\":41,"
                      "\"key\":{\"id\": 12345678901234567890},\"value\":{\"price\": 0.1},"
                      "\"target\":null,\"error\":\"e\",\"ts_ms\":1700000000123,\"recorded\":true}");
}

static void test_text_that_is_not_json_becomes_a_string(void)
{
    ds_dead_letter_t dl = letter("plain key", "{not json", NULL, "the value is not JSON");

    check_format(&dl, "{\"topic\":\"clinic.public.users\",\"partition\":2,\"offset\":41,"
                      "\"key\":\"plain key\",\"value\":\"{not json\",\"target\":null,"
                      "\"error\":\"the value is not JSON\",\"ts_ms\":1700000000123,\"recorded\":true}");
}

static void test_missing_key_and_tombstone_are_null(void)
{
    ds_dead_letter_t dl = letter(NULL, NULL, NULL, "e");

    check_format(&dl, "{\"topic\":\"clinic.public.users\",\"partition\":2,\"offset\":41,"
                      "\"key\":null,\"value\":null,\"target\":null,\"error\":\"e\","
                      "\"ts_ms\":1700000000123,\"recorded\":true}");
}

static void test_attempts_appear_from_the_second_failure(void)
{
    ds_dead_letter_t dl = letter("1", "2", NULL, "e");

    dl.attempts = 3;
    check_format(&dl, "{\"topic\":\"clinic.public.users\",\"partition\":2,\"offset\":41,"
                      "\"key\":1,\"value\":2,\"target\":null,\"error\":\"e\","
                      "\"ts_ms\":1700000000123,\"attempts\":3,\"recorded\":true}");
}

static void test_unrecorded_letter_does_not_claim_a_record(void)
{
    /* A retry takes "recorded" without a record for superseded: only say it when true. */
    ds_dead_letter_t dl = letter("1", "2", NULL, "e");

    dl.recorded = false;
    check_format(&dl, "{\"topic\":\"clinic.public.users\",\"partition\":2,\"offset\":41,"
                      "\"key\":1,\"value\":2,\"target\":null,\"error\":\"e\","
                      "\"ts_ms\":1700000000123}");
}

static void test_invalid_utf8_cannot_break_the_json(void)
{
    ds_dead_letter_t dl = letter("\"\xff\"", "x", NULL, "bad \xc3");
    size_t len;
    char *text = ds_dlq_format(&dl, &len);
    ds_dlq_entry_t entry;
    char errstr[256];

    DS_CHECK(text != NULL);
    /* Whatever the bytes were, the dead letter itself is valid JSON and reads back. */
    DS_CHECK(ds_dlq_parse(text, len, &entry, errstr, sizeof(errstr)));
    DS_CHECK(json_is_string(entry.key));
    ds_dlq_entry_clear(&entry);
    free(text);
}

static void test_formatted_letter_reads_back(void)
{
    ds_dead_letter_t dl = letter("{\"id\":7}", "{\"after\":{\"id\":7}}", "users/doctors", "boom");
    size_t len;
    char *text, errstr[256];
    ds_dlq_entry_t entry;

    dl.attempts = 2;
    text = ds_dlq_format(&dl, &len);
    DS_CHECK(ds_dlq_parse(text, len, &entry, errstr, sizeof(errstr)));
    DS_CHECK_STR(entry.topic, "clinic.public.users");
    DS_CHECK_INT(entry.partition, 2);
    DS_CHECK_INT(entry.offset, 41);
    DS_CHECK_INT(json_integer_value(json_object_get(entry.key, "id")), 7);
    DS_CHECK(json_is_object(json_object_get(entry.value, "after")));
    DS_CHECK_STR(entry.target, "users/doctors");
    DS_CHECK_STR(entry.error, "boom");
    DS_CHECK_INT(entry.ts_ms, 1700000000123);
    DS_CHECK_INT(entry.attempts, 2);
    DS_CHECK(entry.recorded);
    ds_dlq_entry_clear(&entry);
    free(text);
}

static void test_first_attempt_reads_back_as_one(void)
{
    const char *text = "{\"topic\":\"t\",\"partition\":0,\"offset\":5,\"key\":null,\"value\":null,"
                       "\"target\":null,\"error\":\"e\",\"ts_ms\":1}";
    ds_dlq_entry_t entry;
    char errstr[256];

    DS_CHECK(ds_dlq_parse(text, strlen(text), &entry, errstr, sizeof(errstr)));
    DS_CHECK_INT(entry.attempts, 1);
    /* Written before dead letters were recorded: a retry cannot check it, only write it. */
    DS_CHECK(!entry.recorded);
    DS_CHECK(entry.target == NULL);
    DS_CHECK(json_is_null(entry.key) && json_is_null(entry.value));
    ds_dlq_entry_clear(&entry);
}

static void expect_not_a_letter(const char *text, const char *want)
{
    ds_dlq_entry_t entry;
    char errstr[256] = "";

    DS_CHECK(!ds_dlq_parse(text, text ? strlen(text) : 0, &entry, errstr, sizeof(errstr)));
    DS_CHECK_STR(errstr, want);
    DS_CHECK(entry.root == NULL);
}

static void test_what_is_not_a_dead_letter_says_why(void)
{
    expect_not_a_letter(NULL, "not a dead letter: the value is empty");
    expect_not_a_letter("[1]", "not a dead letter: not a JSON object");
    expect_not_a_letter("{\"topic\":1}", "not a dead letter: \"topic\" should be a string");
    expect_not_a_letter("{\"topic\":\"t\",\"partition\":-1}",
                        "not a dead letter: \"partition\" should be a partition number");
    expect_not_a_letter("{\"topic\":\"t\",\"partition\":0,\"offset\":1,\"key\":null,"
                        "\"value\":null,\"target\":5,\"error\":\"e\"}",
                        "not a dead letter: \"target\" should be a string or null");
    expect_not_a_letter("{\"topic\":\"t\",\"partition\":0,\"offset\":1,\"key\":null}",
                        "not a dead letter: \"value\" should be present");
}

int main(void)
{
    DS_RUN(test_unmappable_change_has_a_null_target);
    DS_RUN(test_database_error_names_its_target);
    DS_RUN(test_original_json_is_kept_digit_for_digit);
    DS_RUN(test_text_that_is_not_json_becomes_a_string);
    DS_RUN(test_missing_key_and_tombstone_are_null);
    DS_RUN(test_attempts_appear_from_the_second_failure);
    DS_RUN(test_unrecorded_letter_does_not_claim_a_record);
    DS_RUN(test_invalid_utf8_cannot_break_the_json);
    DS_RUN(test_formatted_letter_reads_back);
    DS_RUN(test_first_attempt_reads_back_as_one);
    DS_RUN(test_what_is_not_a_dead_letter_says_why);
    return ds_test_report();
}
