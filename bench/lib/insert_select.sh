# bench/lib/insert_select.sh: the limit bench/apply and bench/backfill measure apply against:
# mappings/clinic/patients.json's transformation done by PostgreSQL itself, one set-based
# INSERT ... SELECT per target, into copies of the targets (sql_global_patients,
# sql_clinic_patients: same columns, keys, unique index and deferred foreign key).
#   - uuid5 by uuid-ossp's uuid_generate_v5 (SHA-1, as dualsync) over the same compact JSON
#     name; normalize_phone by regexp_replace + CASE; trim/lower by btrim/lower;
#   - the merge (the first source row by key wins) by DISTINCT ON.
# Sourced; needs q (runs one statement in the database "bench"), now, $here and $svc.
#   insert_select_setup   creates the extension and the tables (once)
#   insert_select_run     empties them, runs the two statements in one transaction and prints
#                         "<wall seconds> <its backend's CPU seconds>"

insert_select_setup() {
    q "CREATE EXTENSION \"uuid-ossp\""
    q "CREATE TABLE sql_global_patients (LIKE global_patients INCLUDING ALL)"
    q "CREATE TABLE sql_clinic_patients (LIKE clinic_patients INCLUDING ALL,
         FOREIGN KEY (\"globalPatientId\") REFERENCES sql_global_patients (\"id\") DEFERRABLE INITIALLY DEFERRED,
         FOREIGN KEY (\"clinicId\") REFERENCES clinics (\"id\"))"
    # The person namespace: patients.json's id is uuid5 of it for a patient with a phone or an
    # email and a birth date, which every patient here has (the other branch, a person of their
    # own, never applies).
    ns_global=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["targets"][0]["columns"]["id"]["map"]["default"]["map"]["default"]["uuid5"]["namespace"])' "$here/mappings/clinic/patients.json")
    ns_clinic=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["targets"][1]["columns"]["id"]["uuid5"]["namespace"])' "$here/mappings/clinic/patients.json")
    # The expressions of patients.json, row by row, in SQL. The uuid5 name is the compact JSON
    # array dualsync hashes: ["<identity>","<date of birth>"] and ["<legacy id>"].
    mapped_sql="
      SELECT p.*, ph.phone_n, uuid_generate_v5('$ns_global'::uuid,
               '[' || coalesce(to_json(coalesce(ph.phone_n, lower(btrim(p.\"email\", E' \\t\\r\\n'))))::text, 'null')
               || ',' || coalesce(to_json(p.\"dateOfBirth\"::text)::text, 'null') || ']') AS gid
        FROM patients p,
             LATERAL (SELECT regexp_replace(p.\"phone\", '[^0-9]', '', 'g') AS digits) dg,
             LATERAL (SELECT CASE WHEN dg.digits = '' THEN NULL
                                  WHEN left(dg.digits, 2) = '82' THEN
                                      CASE WHEN substr(dg.digits, 3, 1) = '0' THEN substr(dg.digits, 3)
                                           ELSE '0' || substr(dg.digits, 3) END
                                  ELSE dg.digits END AS phone_n) ph"
}

insert_select_run() {
    q "TRUNCATE sql_clinic_patients, sql_global_patients"
    q "CHECKPOINT"
    local t0 t1
    t0=$(now)
    psql -X -q -v ON_ERROR_STOP=1 -d bench >/dev/null <<SQL
SELECT pg_backend_pid() AS bpid \\gset
BEGIN;
INSERT INTO sql_global_patients ("id", "name", "phone", "email", "dateOfBirth")
SELECT DISTINCT ON (m.gid) m.gid, btrim(m."name", E' \\t\\r\\n'), m.phone_n,
       lower(btrim(m."email", E' \\t\\r\\n')), m."dateOfBirth"
  FROM ($mapped_sql) m
 ORDER BY m.gid, m."id" COLLATE "C";  -- the merge rule: the first source key wins
INSERT INTO sql_clinic_patients ("id", "globalPatientId", "clinicId", "legacyPatientId", "name",
                                 "phone", "email", "gender")
SELECT uuid_generate_v5('$ns_clinic'::uuid, '[' || to_json(m."id")::text || ']'), m.gid,
       m."clinicId", m."id", m."name", m."phone", m."email", m."gender"
  FROM ($mapped_sql) m;
COMMIT;
\\setenv BPID :bpid
\\! awk '{ print \$14 + \$15 }' "/proc/\$BPID/stat" > "$svc/sql_ticks"
SQL
    t1=$(now)
    echo "$(echo "$t1 - $t0" | bc -l) $(echo "$(cat "$svc/sql_ticks") / $(getconf CLK_TCK)" | bc -l)"
}
