/*
 * test_mapping_eval.c: which writes a Debezium change becomes, with which parameters: creates
 * and updates (upserts), deletes (unlinks from the key alone), truncates, tombstones, filter
 * transitions both ways, unchanged TOASTed values (keep flags), in-place targets, and the
 * changes that cannot be mapped. Mappings are the fixtures in tests/unit/mapping/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dualsync/mapping.h"
#include "ds_test.h"

static const char *const connections[] = {"clinic", "legacy", NULL};
static char errstr[4096];

static const char *fixture(const char *name)
{
    static char paths[8][4096];
    static int next;
    const char *root = getenv("DS_SOURCE_DIR");
    char *path = paths[next++ % 8];

    snprintf(path, 4096, "%s/tests/unit/mapping/%s", root ? root : ".", name);
    return path;
}

static ds_mapping_set_t *load(void)
{
    const char *paths[5] = {fixture("users.json"), fixture("patients.json"),
                            fixture("appointments.json"), fixture("offers.json"),
                            fixture("reservations.json")};
    ds_mapping_set_t *set = NULL;

    if (!ds_mapping_set_load(paths, 5, "clinic", connections, &set, errstr, sizeof(errstr)))
        fprintf(stderr, "load failed: %s\n", errstr);
    return set;
}

/* Maps one change; value is JSON text or NULL (a tombstone), key JSON text or NULL. */
static bool eval(ds_mapping_set_t *set, const char *topic, const char *key, const char *value,
                 ds_write_list_t *writes)
{
    json_t *v = NULL;
    bool ok;

    errstr[0] = '\0';
    if (value && !(v = json_loads(value, 0, NULL))) {
        fprintf(stderr, "bad test JSON: %s\n", value);
        return false;
    }
    ok = ds_mapping_eval(set, topic, key, key ? strlen(key) : 0, v, writes, errstr, sizeof(errstr));
    /* Freed before the parameters are read: they must not point into the message. */
    json_decref(v);
    return ok;
}

/* Checks a write's kind, target and every parameter ("\x01" stands for SQL NULL) but the
 * copy parameters (the last three of an upsert, $4..$6 of an unlink), which must be NULL: the
 * source rows of these tests have a key of their own. */
static void check_write(const ds_target_write_t *w, ds_write_kind_t kind, const char *target,
                        int nparams, const char *const *params)
{
    int copies = kind == DS_WRITE_UNLINK || (kind == DS_WRITE_UPSERT && !w->target->in_place)
                     ? 3
                     : 0;

    DS_CHECK_INT(w->kind, kind);
    DS_CHECK_STR(w->target->id, target);
    DS_CHECK_INT(w->nparams, nparams + copies);
    if (w->nparams != nparams + copies)
        return;
    DS_CHECK(!ds_mapping_write_counts_copies(w->target, w->kind, w->params, w->nparams));
    for (int i = nparams; i < nparams + copies; i++)
        DS_CHECK(w->params[i] == NULL);
    for (int i = 0; i < nparams; i++) {
        if (params[i][0] == '\x01') {
            DS_CHECK(w->params[i] == NULL);
            if (w->params[i])
                fprintf(stderr, "  $%d is \"%s\", want NULL\n", i + 1, w->params[i]);
        } else {
            DS_CHECK_STR(w->params[i], params[i]);
        }
    }
}

/*
 * Checks an unlink of a target's form without links (mapping_sql.c, "Targets without
 * links"): write_sql's @p nparams parameters, the target id, topic and source key first, the
 * key column's ($@p key_param) @p key_value, and every other one NULL.
 */
static void check_linkless_unlink(const ds_target_write_t *w, const char *target, int nparams,
                                  const char *topic, const char *key, int key_param,
                                  const char *key_value)
{
    DS_CHECK_INT(w->kind, DS_WRITE_UNLINK);
    DS_CHECK_STR(w->target->id, target);
    DS_CHECK(w->target->keeps_no_links);
    DS_CHECK(w->sole_source);
    DS_CHECK_INT(w->nparams, nparams);
    if (w->nparams != nparams)
        return;
    DS_CHECK(!ds_mapping_write_counts_copies(w->target, w->kind, w->params, w->nparams));
    DS_CHECK_STR(w->params[1], topic);
    DS_CHECK_STR(w->params[2], key);
    for (int i = 3; i < nparams; i++) {
        if (i == key_param - 1)
            DS_CHECK_STR(w->params[i], key_value);
        else
            DS_CHECK(w->params[i] == NULL);
    }
}

#define USERS      "clinic.public.users"
#define DOCTOR_KEY "{\"id\":\"u1\"}"
#define DOCTOR_ROW(role, active)                                                                   \
    "{\"id\": \"u1\", \"clinicId\": \"c1\", \"email\": \" Ann@X.com \", \"name\": \" Ann \", "     \
    "\"role\": \"" role "\", \"specialization\": \"Dentistry\", \"licenseNumber\": null, "         \
    "\"experience\": 7, \"isActive\": " active "}"
/* uuid5(3f0a1c52-..., '["u1"]') */
#define DOCTOR_UUID "f3480b59-19b9-5a06-9b49-36534a4fc51f"
#define NUL         "\x01"

static void test_create_upserts_every_matching_target(void)
{
    ds_mapping_set_t *set = load();
    ds_write_list_t writes;
    static const char *const doctor[] = {
        "users/doctors", USERS, DOCTOR_KEY, DOCTOR_UUID, "u1",    "Ann",   "ann@x.com",
        "DENTAL",        "7",   "false",    "false",     "false", "false", "false",
    };
    static const char *const clinic_doctor[] = {
        "users/clinic_doctors", USERS, DOCTOR_KEY, "c1", "u1", "$unknown", NUL, "false",
    };

    if (!set)
        return;
    DS_CHECK(eval(set, USERS, DOCTOR_KEY,
                  "{\"before\": null, \"after\": " DOCTOR_ROW("DOCTOR", "true") ", \"op\": \"c\"}",
                  &writes));
    DS_CHECK_INT(writes.nwrites, 2);
    if (writes.nwrites == 2) {
        check_write(&writes.writes[0], DS_WRITE_UPSERT, "users/doctors", 14, doctor);
        check_write(&writes.writes[1], DS_WRITE_UPSERT, "users/clinic_doctors", 8, clinic_doctor);
    }
    /* A snapshot read and an update map the same way. */
    DS_CHECK(eval(set, USERS, DOCTOR_KEY,
                  "{\"before\": null, \"after\": " DOCTOR_ROW("DOCTOR", "true") ", \"op\": \"r\"}",
                  &writes));
    DS_CHECK_INT(writes.nwrites, 2);
    if (writes.nwrites == 2)
        check_write(&writes.writes[0], DS_WRITE_UPSERT, "users/doctors", 14, doctor);
    DS_CHECK(eval(set, USERS, DOCTOR_KEY,
                  "{\"before\": null, \"after\": " DOCTOR_ROW("DOCTOR", "true") ", \"op\": \"u\"}",
                  &writes));
    DS_CHECK_INT(writes.nwrites, 2);
    if (writes.nwrites == 2)
        check_write(&writes.writes[1], DS_WRITE_UPSERT, "users/clinic_doctors", 8, clinic_doctor);
    ds_mapping_set_free(set);
}

/* The users row of DOCTOR_ROW as its own message key: a table keyed by all its columns (no
 * primary key, REPLICA IDENTITY FULL), whose identical rows share one key. */
#define WHOLE_ROW_KEY                                                                              \
    "{\"id\":\"u1\",\"clinicId\":\"c1\",\"email\":\" Ann@X.com \",\"name\":\" Ann \","             \
    "\"role\":\"DOCTOR\",\"specialization\":\"Dentistry\",\"licenseNumber\":null,"                 \
    "\"experience\":7,\"isActive\":true}"
#define SOURCE(snapshot, seq, lsn)                                                                 \
    ", \"source\": {\"snapshot\": \"" snapshot "\", \"sequence\": \"" seq "\", \"lsn\": " lsn "}"

/* Checks the copy parameters of write @p w (mode, commit LSN, LSN; NULL for "\x01"). */
static void check_copies(const ds_target_write_t *w, const char *mode, const char *commit,
                         const char *lsn)
{
    const char *want[3] = {mode, commit, lsn};
    int first = w->kind == DS_WRITE_UPSERT ? w->target->copy_param : 4;

    DS_CHECK(first > 0 && first + 2 <= w->nparams);
    if (!(first > 0 && first + 2 <= w->nparams))
        return;
    for (int i = 0; i < 3; i++) {
        if (want[i][0] == '\x01')
            DS_CHECK(w->params[first - 1 + i] == NULL);
        else
            DS_CHECK_STR(w->params[first - 1 + i], want[i]);
    }
    DS_CHECK(ds_mapping_write_counts_copies(w->target, w->kind, w->params, w->nparams) ==
             (mode[0] != '\x01'));
}

static void test_rows_keyed_by_every_column_count_copies(void)
{
    ds_mapping_set_t *set = load();
    ds_write_list_t writes;

    if (!set)
        return;
    /* A create: counted, with source.sequence to recognise it when capture sends it again. */
    DS_CHECK(eval(set, USERS, WHOLE_ROW_KEY,
                  "{\"before\": null, \"after\": " DOCTOR_ROW("DOCTOR", "true") ", \"op\": \"c\""
                  SOURCE("false", "[\\\"4294967296\\\",\\\"4294967311\\\"]", "4294967311") "}",
                  &writes));
    DS_CHECK_INT(writes.nwrites, 2);
    if (writes.nwrites == 2) {
        check_copies(&writes.writes[0], "c", "1/0", "1/F");
        check_copies(&writes.writes[1], "c", "1/0", "1/F");
    }
    /* The first transaction after a restart: no commit LSN. */
    DS_CHECK(eval(set, USERS, WHOLE_ROW_KEY,
                  "{\"before\": null, \"after\": " DOCTOR_ROW("DOCTOR", "true") ", \"op\": \"c\""
                  SOURCE("false", "[null,\\\"100\\\"]", "100") "}",
                  &writes));
    if (writes.nwrites == 2)
        check_copies(&writes.writes[0], "c", NUL, "0/64");
    /* A read of the initial backfill always counts; one of an incremental backfill never. */
    DS_CHECK(eval(set, USERS, WHOLE_ROW_KEY,
                  "{\"before\": null, \"after\": " DOCTOR_ROW("DOCTOR", "true") ", \"op\": \"r\""
                  SOURCE("true", "[null,\\\"100\\\"]", "100") "}",
                  &writes));
    if (writes.nwrites == 2)
        check_copies(&writes.writes[0], "r", NUL, NUL);
    DS_CHECK(eval(set, USERS, WHOLE_ROW_KEY,
                  "{\"before\": null, \"after\": " DOCTOR_ROW("DOCTOR", "true") ", \"op\": \"r\""
                  SOURCE("incremental", "[null,\\\"100\\\"]", "100") "}",
                  &writes));
    if (writes.nwrites == 2)
        check_copies(&writes.writes[0], NUL, NUL, NUL);
    /* A read verify makes from a legacy row carries no source: counted. */
    DS_CHECK(eval(set, USERS, WHOLE_ROW_KEY,
                  "{\"before\": null, \"after\": " DOCTOR_ROW("DOCTOR", "true") ", \"op\": \"r\"}",
                  &writes));
    if (writes.nwrites == 2)
        check_copies(&writes.writes[0], "r", NUL, NUL);
    /* An update keeps its key (a changed row is a delete and a create): not counted. */
    DS_CHECK(eval(set, USERS, WHOLE_ROW_KEY,
                  "{\"before\": null, \"after\": " DOCTOR_ROW("DOCTOR", "true") ", \"op\": \"u\""
                  SOURCE("false", "[\\\"1\\\",\\\"100\\\"]", "100") "}",
                  &writes));
    if (writes.nwrites == 2)
        check_copies(&writes.writes[0], NUL, NUL, NUL);
    /* A delete takes one copy off. */
    DS_CHECK(eval(set, USERS, WHOLE_ROW_KEY,
                  "{\"before\": " DOCTOR_ROW("DOCTOR", "true") ", \"after\": null, \"op\": \"d\""
                  SOURCE("false", "[\\\"16\\\",\\\"32\\\"]", "32") "}",
                  &writes));
    DS_CHECK_INT(writes.nwrites, 2);
    if (writes.nwrites == 2) {
        DS_CHECK_INT(writes.writes[0].kind, DS_WRITE_UNLINK);
        check_copies(&writes.writes[0], "d", "0/10", "0/20");
    }
    /* A row that does not match the filter: its identical copies never linked anything. */
    DS_CHECK(eval(set, USERS, WHOLE_ROW_KEY,
                  "{\"before\": null, \"after\": " DOCTOR_ROW("NURSE", "true") ", \"op\": \"c\""
                  SOURCE("false", "[\\\"1\\\",\\\"100\\\"]", "100") "}",
                  &writes));
    if (writes.nwrites == 2) {
        DS_CHECK_INT(writes.writes[0].kind, DS_WRITE_UNLINK);
        check_copies(&writes.writes[0], NUL, NUL, NUL);
    }
    /* A key with fewer members than the row: a real key, nothing counted (doctors, keyed by
     * the source key alone, goes without links). */
    DS_CHECK(eval(set, USERS, DOCTOR_KEY,
                  "{\"before\": " DOCTOR_ROW("DOCTOR", "true") ", \"after\": null, \"op\": \"d\""
                  SOURCE("false", "[\\\"16\\\",\\\"32\\\"]", "32") "}",
                  &writes));
    DS_CHECK_INT(writes.nwrites, 2);
    if (writes.nwrites == 2) {
        DS_CHECK(writes.writes[0].target->keeps_no_links);
        DS_CHECK(!ds_mapping_write_counts_copies(writes.writes[0].target, writes.writes[0].kind,
                                                 writes.writes[0].params,
                                                 writes.writes[0].nparams));
        check_copies(&writes.writes[1], NUL, NUL, NUL);
    }
    ds_mapping_set_free(set);
}

static void test_a_row_that_stops_matching_unlinks(void)
{
    ds_mapping_set_t *set = load();
    ds_write_list_t writes;
    static const char *const clinic_doctors[] = {"users/clinic_doctors", USERS, DOCTOR_KEY};

    if (!set)
        return;
    /* The file's filter (role = DOCTOR) fails: both targets lose what the row produced;
     * doctors, keyed by uuid5 of the source key, by its key, without links. */
    DS_CHECK(eval(set, USERS, DOCTOR_KEY,
                  "{\"before\": null, \"after\": " DOCTOR_ROW("NURSE", "true") ", \"op\": \"u\"}",
                  &writes));
    DS_CHECK_INT(writes.nwrites, 2);
    if (writes.nwrites == 2) {
        check_linkless_unlink(&writes.writes[0], "users/doctors", 17, USERS, DOCTOR_KEY, 4,
                              DOCTOR_UUID);
        check_write(&writes.writes[1], DS_WRITE_UNLINK, "users/clinic_doctors", 3, clinic_doctors);
    }
    /* Only the target's own filter (isActive) fails: only that target unlinks. */
    DS_CHECK(eval(set, USERS, DOCTOR_KEY,
                  "{\"before\": null, \"after\": " DOCTOR_ROW("DOCTOR", "false") ", \"op\": \"u\"}",
                  &writes));
    DS_CHECK_INT(writes.nwrites, 2);
    if (writes.nwrites == 2) {
        DS_CHECK_INT(writes.writes[0].kind, DS_WRITE_UPSERT);
        check_write(&writes.writes[1], DS_WRITE_UNLINK, "users/clinic_doctors", 3, clinic_doctors);
    }
    ds_mapping_set_free(set);
}

static void test_a_row_that_starts_matching_upserts(void)
{
    ds_mapping_set_t *set = load();
    ds_write_list_t writes;
    static const char *const shown[] = {"offers/visible_offers", "clinic.public.offers",
                                        "{\"id\":\"o1\"}", "o1"};

    if (!set)
        return;
    DS_CHECK(eval(set, "clinic.public.offers", "{\"id\":\"o1\"}",
                  "{\"after\": {\"id\": \"o1\", \"title\": \"draft\", \"visible\": true}, "
                  "\"op\": \"c\"}",
                  &writes));
    DS_CHECK_INT(writes.nwrites, 1);
    if (writes.nwrites == 1)
        check_linkless_unlink(&writes.writes[0], "offers/visible_offers", 7,
                              "clinic.public.offers", "{\"id\":\"o1\"}", 4, "o1");
    DS_CHECK(eval(set, "clinic.public.offers", "{\"id\":\"o1\"}",
                  "{\"after\": {\"id\": \"o1\", \"title\": \"Spring\", \"visible\": true}, "
                  "\"op\": \"u\"}",
                  &writes));
    DS_CHECK_INT(writes.nwrites, 1);
    if (writes.nwrites == 1)
        check_write(&writes.writes[0], DS_WRITE_UPSERT, "offers/visible_offers", 4, shown);
    DS_CHECK(eval(set, "clinic.public.offers", "{\"id\":\"o1\"}",
                  "{\"after\": {\"id\": \"o1\", \"title\": \"Spring\", \"visible\": false}, "
                  "\"op\": \"u\"}",
                  &writes));
    DS_CHECK_INT(writes.nwrites, 1);
    if (writes.nwrites == 1)
        check_linkless_unlink(&writes.writes[0], "offers/visible_offers", 7,
                              "clinic.public.offers", "{\"id\":\"o1\"}", 4, "o1");
    ds_mapping_set_free(set);
}

static void test_delete_unlinks_from_the_key_alone(void)
{
    ds_mapping_set_t *set = load();
    ds_write_list_t writes;
    static const char *const clinic_doctors[] = {"users/clinic_doctors", USERS, DOCTOR_KEY};

    if (!set)
        return;
    /* REPLICA IDENTITY DEFAULT: "before" holds only the key (capture writes the other
     * columns as null), so no filter could be read. */
    DS_CHECK(eval(set, USERS, DOCTOR_KEY,
                  "{\"before\": {\"id\": \"u1\", \"clinicId\": null, \"email\": null, "
                  "\"name\": null, \"role\": null, \"specialization\": null, "
                  "\"licenseNumber\": null, \"experience\": null, \"isActive\": null}, "
                  "\"after\": null, \"op\": \"d\"}",
                  &writes));
    DS_CHECK_INT(writes.nwrites, 2);
    if (writes.nwrites == 2) {
        /* doctors' key, uuid5 of the source key, comes from "before" without links. */
        check_linkless_unlink(&writes.writes[0], "users/doctors", 17, USERS, DOCTOR_KEY, 4,
                              DOCTOR_UUID);
        check_write(&writes.writes[1], DS_WRITE_UNLINK, "users/clinic_doctors", 3, clinic_doctors);
    }
    ds_mapping_set_free(set);
}

static void test_truncate_and_tombstone(void)
{
    ds_mapping_set_t *set = load();
    ds_write_list_t writes;
    /* $3 and $4: the partition and the topic's partition count, NULL ("\x01") on a topic of
     * one partition. */
    static const char *const doctors[] = {"users/doctors", USERS, "\x01", "\x01"};
    static const char *const clinic_doctors[] = {"users/clinic_doctors", USERS, "\x01", "\x01"};
    static const char *const doctors_p2[] = {"users/doctors", USERS, "2", "4"};

    if (!set)
        return;
    /* A truncate record has no key. */
    DS_CHECK(eval(set, USERS, NULL, "{\"before\": null, \"after\": null, \"op\": \"t\"}", &writes));
    /* doctors, written without links for such keys, truncates twice: its links, then every
     * row of its table (only its form without links has that truncate). */
    DS_CHECK_INT(writes.nwrites, 3);
    if (writes.nwrites == 3) {
        check_write(&writes.writes[0], DS_WRITE_TRUNCATE, "users/doctors", 4, doctors);
        DS_CHECK(!writes.writes[0].target->keeps_no_links);
        check_write(&writes.writes[1], DS_WRITE_TRUNCATE, "users/doctors", 4, doctors);
        DS_CHECK(writes.writes[1].target->keeps_no_links);
        check_write(&writes.writes[2], DS_WRITE_TRUNCATE, "users/clinic_doctors", 4,
                    clinic_doctors);
    }
    /* One of the truncates capture sends to each partition of a topic of several. */
    DS_CHECK(eval(set, USERS,
                  "{\"__dualsync_truncate\":\"public.users\",\"partition\":2,\"partitions\":4}",
                  "{\"before\": null, \"after\": null, \"op\": \"t\"}", &writes));
    DS_CHECK_INT(writes.nwrites, 2);
    if (writes.nwrites == 2)
        check_write(&writes.writes[0], DS_WRITE_TRUNCATE, "users/doctors", 4, doctors_p2);
    /* Without links, nothing tells which of doctors' rows came through partition 2: that
     * part is refused, by name (a dead letter), and the links' part goes on. */
    DS_CHECK_INT(writes.nrejects, 1);
    if (writes.nrejects == 1) {
        DS_CHECK_STR(writes.rejects[0].target->id, "users/doctors");
        DS_CHECK(strstr(writes.rejects[0].error, "keeps no links") != NULL);
        DS_CHECK(strstr(writes.rejects[0].error, "partition 2") != NULL);
    }
    writes.nwrites = 99;
    DS_CHECK(eval(set, USERS, DOCTOR_KEY, NULL, &writes));
    DS_CHECK_INT(writes.nwrites, 0);
    ds_mapping_set_free(set);
}

#define PATIENTS "clinic.public.patients"
/* uuid5(9c4b7e2a-..., '["01055551234"]') */
#define PATIENT_UUID "3d139496-9e8c-5a83-98da-9ae8b7a62311"

static void test_unchanged_toasted_values_keep_the_stored_column(void)
{
    ds_mapping_set_t *set = load();
    ds_write_list_t writes;
    /* id, phone, name, email, birth_date, notes, origin; keeps: phone..notes (not the key id,
     * not the constant origin). */
    static const char *const kept[] = {
        "patients/global_patients",
        PATIENTS,
        "{\"id\":\"p1\"}",
        PATIENT_UUID,
        "01055551234",
        "Kim",
        NUL,
        "1990-01-02",
        NUL,
        "legacy",
        "false",
        "false",
        "true",
        "false",
        "true",
    };
    static const char *const custom[] = {
        "patients/global_patients",
        PATIENTS,
        "{\"id\":\"p1\"}",
        PATIENT_UUID,
        "01055551234",
        "Kim",
        "k@x",
        "1990-01-02",
        "__debezium_unavailable_value",
        "legacy",
        "false",
        "false",
        "false",
        "false",
        "false",
    };

    if (!set)
        return;
    DS_CHECK(
        eval(set, PATIENTS, "{\"id\":\"p1\"}",
             "{\"after\": {\"id\": \"p1\", \"name\": \"Kim\", \"phone\": \"+82 10-5555-1234\", "
             "\"email\": \"__debezium_unavailable_value\", \"dateOfBirth\": \"1990-01-02\", "
             "\"notes\": \"__debezium_unavailable_value\"}, \"op\": \"u\"}",
             &writes));
    DS_CHECK_INT(writes.nwrites, 1);
    if (writes.nwrites == 1)
        check_write(&writes.writes[0], DS_WRITE_UPSERT, "patients/global_patients", 15, kept);

    /* capture.unavailable_value_placeholder set to another text. */
    DS_CHECK(ds_mapping_set_unavailable_value(set, "<toast>"));
    DS_CHECK(
        eval(set, PATIENTS, "{\"id\":\"p1\"}",
             "{\"after\": {\"id\": \"p1\", \"name\": \"Kim\", \"phone\": \"+82 10-5555-1234\", "
             "\"email\": \"k@x\", \"dateOfBirth\": \"1990-01-02\", "
             "\"notes\": \"__debezium_unavailable_value\"}, \"op\": \"u\"}",
             &writes));
    DS_CHECK_INT(writes.nwrites, 1);
    if (writes.nwrites == 1)
        check_write(&writes.writes[0], DS_WRITE_UPSERT, "patients/global_patients", 15, custom);
    ds_mapping_set_free(set);
}

static void test_an_unchanged_toasted_key_or_filter_value_cannot_be_mapped(void)
{
    ds_mapping_set_t *set = load();
    ds_write_list_t writes;
    char want[8192];

    if (!set)
        return;
    /* phone feeds the key (uuid5) and the file's filter; the filter reads it first. */
    DS_CHECK(!eval(set, PATIENTS, "{\"id\":\"p1\"}",
                   "{\"after\": {\"id\": \"p1\", \"name\": \"Kim\", "
                   "\"phone\": \"__debezium_unavailable_value\", \"email\": null, "
                   "\"dateOfBirth\": null, \"notes\": null}, \"op\": \"u\"}",
                   &writes));
    snprintf(want, sizeof(want),
             "%s: filter: source column \"phone\" holds an unchanged TOASTed value, which the "
             "WAL does not carry (__debezium_unavailable_value); give the source table REPLICA "
             "IDENTITY FULL, or do not compute keys or filters from this column",
             fixture("patients.json"));
    DS_CHECK_STR(errstr, want);
    DS_CHECK_INT(writes.nwrites, 0);

    /* The offers key is computed from id alone: feed it the placeholder. */
    DS_CHECK(!eval(set, "clinic.public.offers", "{\"id\":\"o1\"}",
                   "{\"after\": {\"id\": \"__debezium_unavailable_value\", \"title\": \"t\", "
                   "\"visible\": true}, \"op\": \"u\"}",
                   &writes));
    snprintf(want, sizeof(want),
             "%s: target offers/visible_offers, key column \"offer_id\": source column \"id\" "
             "holds an unchanged TOASTed value, which the WAL does not carry "
             "(__debezium_unavailable_value); give the source table REPLICA IDENTITY FULL, or "
             "compute the key from other columns",
             fixture("offers.json"));
    DS_CHECK_STR(errstr, want);
    ds_mapping_set_free(set);
}

static void test_the_placeholder_text_in_a_create_or_read_is_real_data(void)
{
    ds_mapping_set_t *set = load();
    ds_write_list_t writes;
    static const char *const real[] = {
        "patients/global_patients",
        PATIENTS,
        "{\"id\":\"p1\"}",
        PATIENT_UUID,
        "01055551234",
        "Kim",
        "__debezium_unavailable_value",
        "1990-01-02",
        "__debezium_unavailable_value",
        "legacy",
        "false",
        "false",
        "false",
        "false",
        "false",
    };
    static const char *const ops[] = {"c", "r"};

    if (!set)
        return;
    /* Only an update's new tuple can leave a TOASTed column out: an INSERT and a snapshot row
     * carry every value, so the text here is what the row holds. */
    for (int i = 0; i < 2; i++) {
        char value[1024];

        snprintf(value, sizeof(value),
                 "{\"after\": {\"id\": \"p1\", \"name\": \"Kim\", \"phone\": \"+82 10-5555-1234\", "
                 "\"email\": \"__debezium_unavailable_value\", \"dateOfBirth\": \"1990-01-02\", "
                 "\"notes\": \"__debezium_unavailable_value\"}, \"op\": \"%s\"}",
                 ops[i]);
        DS_CHECK(eval(set, PATIENTS, "{\"id\":\"p1\"}", value, &writes));
        DS_CHECK_INT(writes.nwrites, 1);
        if (writes.nwrites == 1)
            check_write(&writes.writes[0], DS_WRITE_UPSERT, "patients/global_patients", 15, real);

        /* Nor does a key or a filter computed from that text make the change unmappable. */
        snprintf(value, sizeof(value),
                 "{\"after\": {\"id\": \"__debezium_unavailable_value\", \"title\": \"t\", "
                 "\"visible\": true}, \"op\": \"%s\"}",
                 ops[i]);
        DS_CHECK(eval(set, "clinic.public.offers", "{\"id\":\"o1\"}", value, &writes));
        if (errstr[0])
            fprintf(stderr, "  %s\n", errstr);
    }
    ds_mapping_set_free(set);
}

static void test_in_place_targets_update_and_never_unlink(void)
{
    ds_mapping_set_t *set = load();
    ds_write_list_t writes;
    static const char *const update[] = {"false", "u1", "false", "confirmed", "dualsync", "a1"};
    static const char *const kept[] = {"false", "u1", "true", NUL, "dualsync", "a1"};

    if (!set)
        return;
    DS_CHECK(eval(set, "clinic.public.appointments", "{\"id\":\"a1\"}",
                  "{\"after\": {\"id\": \"a1\", \"doctorId\": \"u1\", \"status\": \"CONFIRMED\"}, "
                  "\"op\": \"u\"}",
                  &writes));
    DS_CHECK_INT(writes.nwrites, 1);
    if (writes.nwrites == 1) {
        check_write(&writes.writes[0], DS_WRITE_UPSERT, "appointments/doctor_ref", 6, update);
        DS_CHECK(writes.writes[0].target->in_place);
    }
    DS_CHECK(eval(set, "clinic.public.appointments", "{\"id\":\"a1\"}",
                  "{\"after\": {\"id\": \"a1\", \"doctorId\": \"u1\", "
                  "\"status\": \"__debezium_unavailable_value\"}, \"op\": \"u\"}",
                  &writes));
    DS_CHECK_INT(writes.nwrites, 1);
    if (writes.nwrites == 1)
        check_write(&writes.writes[0], DS_WRITE_UPSERT, "appointments/doctor_ref", 6, kept);
    DS_CHECK(eval(set, "clinic.public.appointments", "{\"id\":\"a1\"}",
                  "{\"before\": {\"id\": \"a1\"}, \"after\": null, \"op\": \"d\"}", &writes));
    DS_CHECK_INT(writes.nwrites, 0);
    DS_CHECK(eval(set, "clinic.public.appointments", NULL, "{\"op\": \"t\"}", &writes));
    DS_CHECK_INT(writes.nwrites, 0);
    ds_mapping_set_free(set);
}

static void test_changes_that_cannot_be_mapped(void)
{
    ds_mapping_set_t *set = load();
    ds_write_list_t writes;
    char want[8192];

    if (!set)
        return;
    DS_CHECK(!eval(set, "clinic.public.nothing", "{}", "{\"op\": \"c\", \"after\": {}}", &writes));
    DS_CHECK_STR(errstr, "topic clinic.public.nothing is not the source of any mapping");
    DS_CHECK(!eval(set, USERS, DOCTOR_KEY, "{\"after\": {}}", &writes));
    DS_CHECK_STR(errstr, "malformed change on clinic.public.users: expected a Debezium value with "
                         "\"op\" one of c, u, d, r, t");
    DS_CHECK(!eval(set, USERS, DOCTOR_KEY, "[1]", &writes));
    DS_CHECK_STR(errstr, "malformed change on clinic.public.users: expected a Debezium value with "
                         "\"op\" one of c, u, d, r, t");
    DS_CHECK(!eval(set, USERS, DOCTOR_KEY, "{\"op\": \"x\"}", &writes));
    DS_CHECK_STR(errstr, "malformed change on clinic.public.users: unknown op \"x\" (expected c, "
                         "u, d, r or t)");
    DS_CHECK(!eval(set, USERS, DOCTOR_KEY, "{\"op\": \"u\", \"after\": null}", &writes));
    DS_CHECK_STR(errstr, "malformed change on clinic.public.users: op \"u\" without an \"after\" "
                         "object");
    /* A keyless create or delete is keyed by its whole row, as capture keys a table without
     * a primary key (Debezium sends such changes keyless; apply passes "null" for no key);
     * a keyless update cannot be, since it may change that row. */
    DS_CHECK(eval(set, USERS, "null",
                  "{\"after\": " DOCTOR_ROW("DOCTOR", "true") ", \"op\": \"c\"}", &writes));
    DS_CHECK(writes.nwrites > 0 && writes.writes[0].nparams > 2);
    if (writes.nwrites > 0)
        DS_CHECK_STR(
            writes.writes[0].params[2],
            "{\"id\":\"u1\",\"clinicId\":\"c1\",\"email\":\" Ann@X.com \",\"name\":\" Ann \","
            "\"role\":\"DOCTOR\",\"specialization\":\"Dentistry\",\"licenseNumber\":null,"
            "\"experience\":7,\"isActive\":true}");
    DS_CHECK(eval(set, USERS, NULL, "{\"before\": " DOCTOR_ROW("DOCTOR", "true") ", \"op\": \"d\"}",
                  &writes));
    DS_CHECK(writes.nwrites > 0 && writes.writes[0].kind == DS_WRITE_UNLINK);
    if (writes.nwrites > 0)
        DS_CHECK(strncmp(writes.writes[0].params[2], "{\"id\":\"u1\",\"clinicId\":", 22) == 0);
    DS_CHECK(!eval(set, USERS, NULL, "{\"after\": " DOCTOR_ROW("DOCTOR", "true") ", \"op\": \"u\"}",
                   &writes));
    snprintf(want, sizeof(want),
             "%s: target users/doctors: the message on clinic.public.users has no key, which the "
             "target's links need (the source table has no primary key or replica identity "
             "index; Debezium sends the updates of such a table keyless, and apply cannot tell "
             "which row they change: give the table a primary key)",
             fixture("users.json"));
    DS_CHECK_STR(errstr, want);

    /* An enum value the map does not know: named with file, target, column and value. */
    DS_CHECK(!eval(set, "clinic.public.reservations", "{\"id\":\"r1\"}",
                   "{\"after\": {\"id\": \"r1\", \"patientName\": \"Lee\", \"phone\": \"010\", "
                   "\"serviceType\": \"VACCINATION\", \"preferredDate\": \"2024-05-01\", "
                   "\"preferredTime\": \"morning\", \"status\": \"PENDING\"}, \"op\": \"c\"}",
                   &writes));
    snprintf(want, sizeof(want),
             "%s: target reservations/requests, column \"service\": value \"VACCINATION\" is not "
             "one of the map's cases (CONSULTATION, CHECKUP, DENTAL) and the map has no default",
             fixture("reservations.json"));
    DS_CHECK_STR(errstr, want);
    DS_CHECK_INT(writes.nwrites, 0);

    DS_CHECK(!eval(set, "clinic.public.offers", "{\"id\":null}",
                   "{\"after\": {\"id\": null, \"title\": \"t\", \"visible\": true}, \"op\": "
                   "\"c\"}",
                   &writes));
    snprintf(want, sizeof(want),
             "%s: target offers/visible_offers, key column \"offer_id\": the value is NULL, and a "
             "target row needs its whole key",
             fixture("offers.json"));
    DS_CHECK_STR(errstr, want);
    ds_mapping_set_free(set);
}

/* A target whose column cannot be computed is rejected alone; the change's other targets are
 * written. When no target is left to write, the change is rejected whole. */
static void test_one_unreadable_column_rejects_only_its_target(void)
{
    char path[] = "/tmp/ds_test_mapping_XXXXXX.json";
    const char *paths[1] = {path};
    ds_mapping_set_t *set = NULL;
    ds_write_list_t writes;
    char want[8192];
    FILE *f;
    int fd = mkstemps(path, 5);

    DS_CHECK(fd >= 0);
    if (fd < 0)
        return;
    f = fdopen(fd, "w");
    fputs("{\"source\": \"public.reservations\", \"targets\": ["
          " {\"name\": \"services\", \"connection\": \"clinic\", \"table\": \"public.r\","
          "  \"mode\": \"update\", \"key\": [\"id\"],"
          "  \"columns\": {\"id\": \"$id\", \"service\": {\"lower\": \"$serviceType\"}}},"
          " {\"name\": \"periods\", \"connection\": \"clinic\", \"table\": \"public.r\","
          "  \"mode\": \"update\", \"key\": [\"id\"],"
          "  \"columns\": {\"id\": \"$id\", \"period\": {\"parse_period\": \"$preferredTime\"}}}"
          "]}",
          f);
    fclose(f);
    if (!ds_mapping_set_load(paths, 1, "clinic", connections, &set, errstr, sizeof(errstr))) {
        fprintf(stderr, "load failed: %s\n", errstr);
        DS_CHECK(false);
        unlink(path);
        return;
    }
    DS_CHECK(eval(set, "clinic.public.reservations", "{\"id\":\"r1\"}",
                  "{\"after\": {\"id\": \"r1\", \"serviceType\": \"DENTAL\", "
                  "\"preferredTime\": \"asap\"}, \"op\": \"c\"}",
                  &writes));
    DS_CHECK_INT(writes.nwrites, 1);
    DS_CHECK_INT(writes.nrejects, 1);
    if (writes.nwrites == 1 && writes.nrejects == 1) {
        static const char *const services[] = {"false", "dental", "r1"};
        char stem[64], id[128];

        snprintf(stem, sizeof(stem), "%.*s", (int)(strlen(path) - strlen("/tmp/.json")),
                 path + strlen("/tmp/"));
        snprintf(id, sizeof(id), "%s/services", stem);
        check_write(&writes.writes[0], DS_WRITE_UPSERT, id, 3, services);
        snprintf(id, sizeof(id), "%s/periods", stem);
        DS_CHECK_STR(writes.rejects[0].target->id, id);
        snprintf(want, sizeof(want), "%s: target %s, column \"period\": parse_period cannot read "
                 "\"asap\"", path, id);
        DS_CHECK(strncmp(writes.rejects[0].error, want, strlen(want)) == 0);
    }
    /* Both readable: both written, nothing rejected. */
    DS_CHECK(eval(set, "clinic.public.reservations", "{\"id\":\"r1\"}",
                  "{\"after\": {\"id\": \"r1\", \"serviceType\": \"DENTAL\", "
                  "\"preferredTime\": \"9 am\"}, \"op\": \"u\"}",
                  &writes));
    DS_CHECK_INT(writes.nwrites, 2);
    DS_CHECK_INT(writes.nrejects, 0);
    /* Every target rejected: the change is rejected whole, with the first error. */
    DS_CHECK(!eval(set, "clinic.public.reservations", "{\"id\":\"r1\"}",
                   "{\"after\": {\"id\": \"r1\"}, \"op\": \"u\"}", &writes));
    DS_CHECK(strstr(errstr, "/services, column \"service\"") != NULL);
    DS_CHECK_INT(writes.nwrites, 0);
    DS_CHECK_INT(writes.nrejects, 0);
    ds_mapping_set_free(set);
    unlink(path);
}

/* A write whose message key has exactly the source columns its target's key is an injective
 * function of says so (its row has no other source row: no settling); others do not. */
static void test_sole_source_follows_the_message_key(void)
{
    ds_mapping_set_t *set = load();
    ds_write_list_t writes;
    static const struct {
        const char *key;
        bool sole;
    } cases[] = {
        {DOCTOR_KEY, true},
        {"{\"id\": \"a\\\",\\\"x\\\":1\"}", true}, /* quotes inside the value */
        {"{\"id\":\"u1\",\"x\":1}", false},       /* a member the key does not read */
        {"{\"x\":{\"id\":1}}", false},            /* "id" only below the top level */
        {"{\"i\\u0064\":\"u1\"}", false},         /* an escaped name never matches */
    };

    if (!set)
        return;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        DS_CHECK(eval(set, USERS, cases[i].key,
                      "{\"before\": null, \"after\": " DOCTOR_ROW("DOCTOR", "true")
                      ", \"op\": \"c\"}",
                      &writes));
        DS_CHECK_INT(writes.nwrites, 2);
        if (writes.nwrites != 2)
            continue;
        /* users/doctors: uuid5 of $id; users/clinic_doctors: a lookup, never sole. */
        DS_CHECK(writes.writes[0].sole_source == cases[i].sole);
        if (writes.writes[0].sole_source != cases[i].sole)
            fprintf(stderr, "  key %s: sole_source %d\n", cases[i].key,
                    (int)writes.writes[0].sole_source);
        DS_CHECK(!writes.writes[1].sole_source);
        /* The same decides whether doctors goes without links. */
        DS_CHECK(writes.writes[0].target->keeps_no_links == cases[i].sole);
        DS_CHECK(!writes.writes[1].target->keeps_no_links);
    }
    /* A delete unlinks by the same key. */
    DS_CHECK(eval(set, USERS, DOCTOR_KEY,
                  "{\"before\": " DOCTOR_ROW("DOCTOR", "true") ", \"after\": null, \"op\": \"d\"}",
                  &writes));
    DS_CHECK(writes.nwrites >= 1 && writes.writes[0].kind == DS_WRITE_UNLINK &&
             writes.writes[0].sole_source);
    ds_mapping_set_free(set);
}

static void test_write_lists_and_parameters_are_reused(void)
{
    ds_mapping_set_t *set = load();
    ds_write_list_t first, second;
    const char *const *params;

    if (!set)
        return;
    DS_CHECK(eval(set, "clinic.public.offers", "{\"id\":\"o1\"}",
                  "{\"after\": {\"id\": \"o1\", \"title\": \"a\", \"visible\": true}, \"op\": "
                  "\"c\"}",
                  &first));
    params = first.writes[0].params;
    DS_CHECK_STR(params[3], "o1");
    DS_CHECK(eval(set, "clinic.public.offers", "{\"id\":\"o2\"}",
                  "{\"after\": {\"id\": \"o2\", \"title\": \"a\", \"visible\": true}, \"op\": "
                  "\"c\"}",
                  &second));
    DS_CHECK(first.writes == second.writes);
    DS_CHECK(second.writes[0].params == params);
    DS_CHECK_STR(params[2], "{\"id\":\"o2\"}");
    DS_CHECK_STR(params[3], "o2");
    ds_mapping_set_free(set);
}

/* A change in the schema envelope is unwrapped (key and value) and mapped as capture's; a
 * value that does not fit its schema makes the change fail, naming topic and field. */
static void test_enveloped_changes_are_unwrapped(void)
{
    ds_mapping_set_t *set = load();
    ds_write_list_t writes;
    ds_value_format_t format;
    const char *key = "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"string\","
                      "\"field\":\"id\"}]},\"payload\":{\"id\":\"u1\"}}";

    if (!set)
        return;
    ds_value_format_init(&format);
    format.debezium = true;
    format.time_precision = DS_TIME_ADAPTIVE;
    format.message_format = DS_MESSAGE_JSON_WITH_SCHEMA;
    DS_CHECK(ds_mapping_set_value_format(set, &format, NULL, errstr, sizeof(errstr)));
    DS_CHECK(eval(set, USERS, key,
                  "{\"schema\":{\"type\":\"struct\",\"fields\":[]},\"payload\":{\"before\":"
                  "null,\"after\":" DOCTOR_ROW("DOCTOR", "true") ",\"op\":\"c\",\"ts_us\":1}}",
                  &writes));
    DS_CHECK(writes.nwrites > 0 && writes.writes[0].nparams > 2);
    if (writes.nwrites > 0)
        DS_CHECK_STR(writes.writes[0].params[2], DOCTOR_KEY);
    DS_CHECK(!eval(set, USERS, key,
                   "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"struct\","
                   "\"field\":\"after\",\"fields\":[{\"type\":\"int32\",\"name\":"
                   "\"io.debezium.time.Date\",\"field\":\"email\"}]}]},\"payload\":{"
                   "\"before\":null,\"after\":" DOCTOR_ROW("DOCTOR", "true") ",\"op\":\"c\"}}",
                   &writes));
    DS_CHECK(strncmp(errstr,
                     "change on clinic.public.users: field after.email "
                     "(io.debezium.time.Date): ",
                     74) == 0);
    /* Without its envelope, where the declared settings need one: refused, never guessed. */
    DS_CHECK(!eval(set, USERS, DOCTOR_KEY,
                   "{\"after\": " DOCTOR_ROW("DOCTOR", "true") ", \"op\": \"c\"}", &writes));
    DS_CHECK(strstr(errstr, "no schema envelope") != NULL);
    /* Settings apply cannot read are refused. */
    format.binary_handling = DS_BINARY_HEX;
    DS_CHECK(!ds_mapping_set_value_format(set, &format, NULL, errstr, sizeof(errstr)));
    ds_mapping_set_free(set);
}

int main(void)
{
    DS_RUN(test_create_upserts_every_matching_target);
    DS_RUN(test_a_row_that_stops_matching_unlinks);
    DS_RUN(test_a_row_that_starts_matching_upserts);
    DS_RUN(test_delete_unlinks_from_the_key_alone);
    DS_RUN(test_truncate_and_tombstone);
    DS_RUN(test_unchanged_toasted_values_keep_the_stored_column);
    DS_RUN(test_an_unchanged_toasted_key_or_filter_value_cannot_be_mapped);
    DS_RUN(test_the_placeholder_text_in_a_create_or_read_is_real_data);
    DS_RUN(test_in_place_targets_update_and_never_unlink);
    DS_RUN(test_changes_that_cannot_be_mapped);
    DS_RUN(test_one_unreadable_column_rejects_only_its_target);
    DS_RUN(test_sole_source_follows_the_message_key);
    DS_RUN(test_write_lists_and_parameters_are_reused);
    DS_RUN(test_rows_keyed_by_every_column_count_copies);
    DS_RUN(test_enveloped_changes_are_unwrapped);
    return ds_test_report();
}
