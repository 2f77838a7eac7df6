"""Mapping statements against a real PostgreSQL 15: the SQL the mapping compiler generates for
the fixture mappings of tests/unit/mapping/, executed the way the apply runtime executes it
(text parameters, no parameter types, one transaction per change) by tests/tools/mapping_exec.c,
and the resulting target tables checked.

Covers: a merge of two source rows into one target row, a partial delete that keeps it and the
last delete that removes it, a merged row whose key changes, filter transitions both ways,
soft delete and restore, required lookups (a child before its parent), the sql escape hatch,
unchanged TOASTed values, in-place updates, truncate, and the catalog check.
"""

import json
import os
import subprocess
import unittest

import dstest

MAPPING_DIR = os.path.join(dstest.SOURCE_DIR, "tests", "unit", "mapping")
MAPPINGS = [
    os.path.join(MAPPING_DIR, name)
    for name in ("users.json", "patients.json", "reservations.json", "appointments.json", "offers.json")
]
PLACEHOLDER = "__debezium_unavailable_value"

# uuid5 ids the fixtures compute (checked against Python's uuid.uuid5 in test_mapping_expr.c).
DOCTOR_U1 = "f3480b59-19b9-5a06-9b49-36534a4fc51f"  # uuid5(3f0a1c52-..., '["u1"]')
PHONE_A = "01055551234"
PHONE_B = "01099998888"

TARGET_SCHEMA = """
DROP SCHEMA IF EXISTS dualsync CASCADE;
DROP SCHEMA IF EXISTS booking CASCADE;
DROP TABLE IF EXISTS global_doctors, clinic_doctors, global_patients, appointments, visible_offers;
CREATE TABLE global_doctors (id uuid PRIMARY KEY, legacy_id text UNIQUE NOT NULL, name text,
    email text, specialty text, years integer);
CREATE TABLE clinic_doctors (clinic_id text, doctor_id uuid, license text, deleted_at timestamptz,
    PRIMARY KEY (clinic_id, doctor_id));
CREATE TABLE global_patients (id uuid PRIMARY KEY, phone text NOT NULL, name text, email text,
    birth_date date, notes text, origin text);
CREATE SCHEMA booking;
CREATE TABLE booking.requests (legacy_id text PRIMARY KEY, patient_name text, service text,
    period text, preferred_date date, label text);
CREATE TABLE appointments ("id" text PRIMARY KEY, "doctorId" text, status text,
    "globalDoctorId" uuid, "statusLabel" text, "migratedBy" text);
CREATE TABLE visible_offers (offer_id text PRIMARY KEY);
"""


def mapping_exec_bin():
    path = os.environ.get("DS_MAPPING_EXEC")
    if not path:
        dump = os.environ.get("DS_TOPIC_DUMP") or dstest.env().get("DS_TOPIC_DUMP")
        if not dump:
            raise dstest.HarnessError(
                "DS_MAPPING_EXEC is not set and DS_TOPIC_DUMP (whose directory holds the test "
                "tools) is not either"
            )
        path = os.path.join(os.path.dirname(dump), "mapping_exec")
    if not os.access(path, os.X_OK):
        raise dstest.HarnessError(f"{path} is not an executable: build the mapping_exec target")
    return path


def key(id_):
    return {"id": id_}


def change(table, op, id_, after=None, before=None):
    value = {"before": before, "after": after, "source": {"table": table}, "op": op, "ts_ms": 0}
    return {"topic": f"clinic.public.{table}", "key": key(id_) if id_ is not None else None,
            "value": value}


def create(table, row):
    return change(table, "c", row["id"], after=row)


def update(table, row):
    return change(table, "u", row["id"], after=row)


def delete(table, id_):
    # REPLICA IDENTITY DEFAULT: "before" holds the key only.
    return change(table, "d", id_, before={"id": id_})


def tombstone(table, id_):
    return {"topic": f"clinic.public.{table}", "key": key(id_), "value": None}


def truncate(table):
    return change(table, "t", None)


def doctor(id_="u1", role="DOCTOR", active=True, name=" Ann ", clinic="c1"):
    return {"id": id_, "clinicId": clinic, "email": " Ann@X.com ", "name": name, "role": role,
            "specialization": "Dentistry", "licenseNumber": "L-1", "experience": 7,
            "isActive": active}


def patient(id_, phone, name="Kim", notes="first visit"):
    return {"id": id_, "clinicId": "c1", "name": name, "phone": phone, "email": "KIM@X",
            "dateOfBirth": "1990-01-02", "gender": None, "notes": notes}


class MappingSqlTest(dstest.ServicesTestCase):
    """Every test starts from empty target tables and no links."""

    def setUp(self):
        super().setUp()
        self.psql(TARGET_SCHEMA)

    def apply(self, *changes, mappings=MAPPINGS):
        """Runs the changes through mapping_exec (one transaction each); returns its results."""
        lines = "".join(json.dumps(c) + "\n" for c in changes)
        cmd = [mapping_exec_bin(), "--conninfo", dstest.conninfo(self.db), "--connection", "clinic",
               "--connection", "legacy"] + mappings
        proc = subprocess.run(cmd, input=lines, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise AssertionError(f"mapping_exec exited with {proc.returncode}: {proc.stderr}")
        results = [json.loads(line) for line in proc.stdout.splitlines()]
        self.assertEqual(len(results), len(changes), proc.stdout)
        for r in results:
            self.assertNotIn("sql_error", r)
        return results

    def rows(self, sql):
        return self.psql(sql)

    def links(self, target):
        return self.rows(
            "SELECT source_key, target_key FROM dualsync.links "
            f"WHERE target = {dstest.quote_literal(target)} ORDER BY source_key, target_key"
        )

    # -- merges and deletes ---------------------------------------------------------------

    def test_two_source_rows_merge_into_one_target_row_until_the_last_goes(self):
        self.apply(create("patients", patient("p1", "+82 10-5555-1234", name="Kim")),
                   create("patients", patient("p2", "010 5555 1234", name="Kim Minji")))
        [(id_, phone, name)] = self.rows("SELECT id, phone, name FROM global_patients")
        self.assertEqual(phone, PHONE_A)
        self.assertEqual(name, "Kim")  # p1 comes first in key order, whatever was written last
        self.assertEqual(len(self.links("patients/global_patients")), 2)

        # A partial delete keeps the row: p2 still produces it, and gives it its values.
        self.apply(delete("patients", "p1"), tombstone("patients", "p1"))
        self.assertEqual(self.rows("SELECT id, name FROM global_patients"), [(id_, "Kim Minji")])
        self.assertEqual(self.links("patients/global_patients"),
                         [('{"id":"p2"}', f'["{id_}"]')])

        # The last delete removes it.
        self.apply(delete("patients", "p2"))
        self.assertEqual(self.rows("SELECT id FROM global_patients"), [])
        self.assertEqual(self.links("patients/global_patients"), [])

    def test_a_source_row_leaving_a_merged_row_leaves_the_values_of_those_that_remain(self):
        ann = dict(patient("pa", "010-1111-2222", name="Ann"), email="ann@x.example")
        other = dict(patient("pb", " 010 1111 2222", name="Someone Else"), email=None)
        # Written in either order, the merged row is the first source row's (pa), as the
        # from-scratch rebuild gives it.
        self.apply(create("patients", other), create("patients", ann))
        self.assertEqual(self.rows("SELECT name, phone, email FROM global_patients"),
                         [("Ann", "01011112222", "ann@x.example")])
        self.apply(update("patients", dict(ann, name="Ann Lee")))
        self.assertEqual(self.rows("SELECT name FROM global_patients"), [("Ann Lee",)])
        # pb's own changes do not show while pa comes first ...
        self.apply(update("patients", dict(other, name="Someone Else Again")))
        self.assertEqual(self.rows("SELECT name FROM global_patients"), [("Ann Lee",)])
        # ... and when pb leaves (its phone makes another person), nothing of it stays.
        self.apply(update("patients", dict(other, phone="010-9999-9999")))
        self.assertEqual(
            self.rows("SELECT name, phone, email FROM global_patients ORDER BY phone"),
            [("Ann Lee", "01011112222", "ann@x.example"),
             ("Someone Else", "01099999999", None)])
        # When pa, the first, leaves a merged row, the next one's values take its place.
        self.apply(update("patients", dict(other, phone="010-1111-2222")))
        self.apply(delete("patients", "pa"))
        self.assertEqual(self.rows("SELECT name, phone, email FROM global_patients"),
                         [("Someone Else", "01011112222", None)])

    def test_a_merged_row_whose_key_changes_moves_its_link(self):
        self.apply(create("patients", patient("p1", "010-5555-1234")),
                   create("patients", patient("p2", "01055551234")))
        [(row_a,)] = self.rows("SELECT id FROM global_patients")

        # p1's phone changes: it now produces row B; row A stays, p2 still produces it.
        self.apply(update("patients", patient("p1", "010-9999-8888")))
        self.assertEqual(self.rows("SELECT phone FROM global_patients ORDER BY phone"),
                         [(PHONE_A,), (PHONE_B,)])
        [(row_b,)] = self.rows(f"SELECT id FROM global_patients WHERE phone = '{PHONE_B}'")
        self.assertEqual(self.links("patients/global_patients"),
                         [('{"id":"p1"}', f'["{row_b}"]'), ('{"id":"p2"}', f'["{row_a}"]')])

        # p2 follows: row A loses its last link and goes; row B has both.
        self.apply(update("patients", patient("p2", "+82 10 9999 8888")))
        self.assertEqual(self.rows("SELECT id, phone FROM global_patients"), [(row_b, PHONE_B)])
        self.assertEqual(self.links("patients/global_patients"),
                         [('{"id":"p1"}', f'["{row_b}"]'), ('{"id":"p2"}', f'["{row_b}"]')])

    def test_truncate_removes_every_row_the_topic_produced(self):
        self.apply(create("offers", {"id": "o1", "title": "a", "visible": True}),
                   create("offers", {"id": "o2", "title": "b", "visible": True}))
        self.assertEqual(len(self.rows("SELECT * FROM visible_offers")), 2)
        [result] = self.apply(truncate("offers"))
        # visible_offers is keyed by the source key: its links go, then (written without
        # links) every row of the table (mappings/README.md, "Targets without links").
        self.assertEqual(result["writes"], [{"target": "offers/visible_offers", "kind": "truncate"}] * 2)
        self.assertEqual(self.rows("SELECT * FROM visible_offers"), [])
        self.assertEqual(self.links("offers/visible_offers"), [])

    # -- filters -------------------------------------------------------------------------

    def test_a_filter_transition_removes_and_recreates_the_row(self):
        self.apply(create("offers", {"id": "o1", "title": "draft", "visible": True}))
        self.assertEqual(self.rows("SELECT * FROM visible_offers"), [])
        self.apply(update("offers", {"id": "o1", "title": "Spring", "visible": True}))
        self.assertEqual(self.rows("SELECT * FROM visible_offers"), [("o1",)])
        self.apply(update("offers", {"id": "o1", "title": "Spring", "visible": False}))
        self.assertEqual(self.rows("SELECT * FROM visible_offers"), [])
        self.assertEqual(self.links("offers/visible_offers"), [])
        self.apply(update("offers", {"id": "o1", "title": "Spring", "visible": True}))
        self.assertEqual(self.rows("SELECT * FROM visible_offers"), [("o1",)])

    def test_soft_delete_marks_the_row_and_a_later_upsert_restores_it(self):
        self.apply(create("users", doctor()))
        self.assertEqual(self.rows("SELECT clinic_id, doctor_id::text, license, deleted_at "
                                   "FROM clinic_doctors"),
                         [("c1", DOCTOR_U1, "L-1", None)])
        # isActive false: the target's own filter stops matching; the row is soft-deleted.
        self.apply(update("users", doctor(active=False)))
        [(deleted_at,)] = self.rows("SELECT deleted_at FROM clinic_doctors")
        self.assertIsNotNone(deleted_at)
        self.assertEqual(self.rows("SELECT count(*) FROM global_doctors"), [("1",)])
        # The mapping sets deleted_at (null), so matching again restores the row.
        self.apply(update("users", doctor(active=True)))
        self.assertEqual(self.rows("SELECT deleted_at FROM clinic_doctors"), [(None,)])
        # A role change leaves the file's filter: the doctor row goes, the clinic row is
        # soft-deleted.
        self.apply(update("users", doctor(role="NURSE")))
        self.assertEqual(self.rows("SELECT count(*) FROM global_doctors"), [("0",)])
        [(deleted_at,)] = self.rows("SELECT deleted_at FROM clinic_doctors")
        self.assertIsNotNone(deleted_at)

    # -- database-computed values -------------------------------------------------------

    def test_a_required_lookup_waits_for_its_parent(self):
        # The appointment refers to doctor u1, who has not arrived: nothing is written and
        # the change reports applied = false (the runtime parks it in dualsync.pending).
        self.psql("INSERT INTO appointments VALUES ('a1', 'u1', 'SCHEDULED', NULL, NULL, NULL)")
        [result] = self.apply(update("appointments",
                                     {"id": "a1", "doctorId": "u1", "status": "CONFIRMED"}))
        self.assertEqual(result["writes"], [{"target": "appointments/doctor_ref", "kind": "upsert",
                                             "applied": False}])
        self.assertEqual(self.rows('SELECT "globalDoctorId", "statusLabel" FROM appointments'),
                         [(None, None)])
        # Once the doctor exists, the retried change applies.
        self.apply(create("users", doctor()))
        [result] = self.apply(update("appointments",
                                     {"id": "a1", "doctorId": "u1", "status": "CONFIRMED"}))
        self.assertTrue(result["writes"][0]["applied"])
        self.assertEqual(self.rows('SELECT "globalDoctorId", "statusLabel", "migratedBy", status '
                                   "FROM appointments"),
                         [(DOCTOR_U1, "confirmed", "dualsync", "SCHEDULED")])

    def test_a_lookup_in_the_key_of_an_upsert(self):
        # clinic_doctors' key holds the doctor's new id, looked up from global_doctors, which
        # the first target of the same change just wrote (same transaction, earlier statement).
        [result] = self.apply(create("users", doctor()))
        self.assertEqual([w["applied"] for w in result["writes"]], [True, True])
        self.assertEqual(self.links("users/clinic_doctors"),
                         [('{"id":"u1"}', f'["c1", "{DOCTOR_U1}"]')])

    def test_sql_escape_hatch_cast_and_map(self):
        self.apply(create("reservations", {
            "id": "r1", "clinicId": "c1", "patientName": "  lee min ", "phone": "+82 10-1234-5678",
            "serviceType": "DENTAL", "preferredDate": "2024-05-01", "preferredTime": "2:30 PM",
            "status": "pending", "createdAt": "2024-04-01T10:00:00"}))
        self.assertEqual(self.rows("SELECT legacy_id, patient_name, service, period, "
                                   "preferred_date, label FROM booking.requests"),
                         [("r1", "Lee Min (01012345678)", "dental", "AFTERNOON", "2024-05-01",
                           "PENDING/r1")])

    def test_an_unmappable_value_writes_nothing(self):
        [result] = self.apply(create("reservations", {
            "id": "r2", "clinicId": "c1", "patientName": "x", "phone": "010",
            "serviceType": "DENTAL", "preferredDate": "2024-05-01",
            "preferredTime": "after lunch maybe", "status": "pending"}))
        self.assertIn('column "period": parse_period cannot read "after lunch maybe"',
                      result["error"])
        self.assertEqual(self.rows("SELECT * FROM booking.requests"), [])

    # -- TOAST and in place --------------------------------------------------------------

    def test_unchanged_toasted_values_keep_the_stored_column(self):
        self.apply(create("patients", patient("p1", "010-5555-1234", notes="x" * 5000)))
        self.apply(update("patients", dict(patient("p1", "010-5555-1234", name="Kim Renamed"),
                                           notes=PLACEHOLDER, email=PLACEHOLDER)))
        [(name, email, notes_len)] = self.rows(
            "SELECT name, email, length(notes) FROM global_patients")
        self.assertEqual((name, email, notes_len), ("Kim Renamed", "kim@x", "5000"))

    def test_in_place_update_touches_only_mapped_columns_of_existing_rows(self):
        self.apply(create("users", doctor()))
        self.psql("INSERT INTO appointments VALUES ('a1', 'u1', 'SCHEDULED', NULL, NULL, NULL)")
        results = self.apply(
            update("appointments", {"id": "a1", "doctorId": "u1", "status": "COMPLETED"}),
            # No such row: nothing is inserted, and that is not an error.
            update("appointments", {"id": "a2", "doctorId": "u1", "status": "COMPLETED"}),
            # A delete in place is the legacy row's own: nothing to do.
            delete("appointments", "a1"),
        )
        self.assertEqual([r["writes"] for r in results],
                         [[{"target": "appointments/doctor_ref", "kind": "upsert",
                            "applied": True}]] * 2 + [[]])
        self.assertEqual(self.rows('SELECT id, status, "statusLabel", "globalDoctorId" '
                                   "FROM appointments"),
                         [("a1", "SCHEDULED", "completed", DOCTOR_U1)])
        # An unchanged TOASTed status keeps the label.
        self.apply(update("appointments", {"id": "a1", "doctorId": "u1", "status": PLACEHOLDER}))
        self.assertEqual(self.rows('SELECT "statusLabel" FROM appointments'), [("completed",)])

    def test_a_fan_out_update_reaches_every_child_whose_values_change(self):
        mappings = MAPPINGS + [os.path.join(MAPPING_DIR, "fanout.json")]
        self.apply(create("users", doctor()), mappings=mappings)
        self.psql("""
            INSERT INTO appointments VALUES ('a1', 'u1', 'SCHEDULED', NULL, NULL, NULL),
                                            ('a2', 'u1', 'SCHEDULED', NULL, NULL, NULL),
                                            ('a3', 'u2', 'SCHEDULED', NULL, NULL, NULL);
        """)
        # The doctor changes: every appointment of u1, none of u2.
        self.apply(update("users", doctor(name="Ann Lee")), mappings=mappings)
        self.assertEqual(self.rows('SELECT id, "globalDoctorId", "statusLabel" FROM appointments '
                                   "ORDER BY id"),
                         [("a1", DOCTOR_U1, "doctor"), ("a2", DOCTOR_U1, "doctor"),
                          ("a3", None, None)])
        # A change that leaves the children's values as they are rewrites none of them.
        before = self.rows("SELECT id, xmin::text FROM appointments ORDER BY id")
        self.apply(update("users", doctor(name="Ann Lee-Kim")), mappings=mappings)
        self.assertEqual(self.rows("SELECT id, xmin::text FROM appointments ORDER BY id"), before)
        # A child changed meanwhile is brought back, alone.
        self.psql("UPDATE appointments SET \"statusLabel\" = 'x' WHERE id = 'a2'")
        before = dict(self.rows("SELECT id, xmin::text FROM appointments ORDER BY id"))
        self.apply(update("users", doctor(name="Ann")), mappings=mappings)
        after = dict(self.rows("SELECT id, xmin::text FROM appointments ORDER BY id"))
        self.assertEqual((after["a1"] == before["a1"], after["a2"] == before["a2"]), (True, False))
        self.assertEqual(self.rows('SELECT "statusLabel" FROM appointments WHERE id = \'a2\''),
                         [("doctor",)])

    # -- the catalog check ---------------------------------------------------------------

    def check_catalog(self, connection, mappings):
        cmd = [mapping_exec_bin(), "--conninfo", dstest.conninfo(self.db), "--connection",
               "clinic", "--connection", "legacy", "--check-catalog", connection] + mappings
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        self.assertIn(proc.returncode, (0, 1), proc.stderr)
        return json.loads(proc.stdout)

    def test_the_catalog_check_accepts_the_fixtures_and_leaves_nothing_behind(self):
        # setUp dropped the dualsync schema: the check creates it in its own transaction and
        # rolls it back.
        self.assertEqual(self.check_catalog("clinic", MAPPINGS), {"catalog": "ok"})
        self.assertEqual(self.check_catalog("legacy", MAPPINGS), {"catalog": "ok"})
        self.assertEqual(self.psql_value(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'dualsync'"), "0")

    def test_an_in_place_key_that_is_not_unique_needs_fan_out(self):
        path = os.path.join(self.work_dir, "fan.json")
        fan_out = os.path.join(MAPPING_DIR, "fanout.json")
        with open(fan_out, encoding="utf-8") as f:
            doc = json.load(f)
        del doc["targets"][0]["fan_out"]
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        result = self.check_catalog("legacy", [path])
        self.assertEqual(len(result["catalog_errors"]), 1, result)
        self.assertIn('$.targets[0].key: no unique index or primary key of "public"."appointments"'
                      ' covers exactly the key ("doctorId"); add one, e.g. CREATE UNIQUE INDEX ON '
                      '"public"."appointments" ("doctorId"), or declare "fan_out": true to update '
                      "every row the key matches", result["catalog_errors"][0])
        self.assertEqual(self.check_catalog("legacy", [fan_out]), {"catalog": "ok"})

    def test_the_catalog_check_reports_every_problem(self):
        path = os.path.join(self.work_dir, "broken.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write('{"source": "public.users", "targets": [\n'
                    ' {"connection": "clinic", "table": "public.missing", "key": ["id"],\n'
                    '  "columns": {"id": "$id"}},\n'
                    ' {"name": "b", "connection": "clinic", "table": "public.global_doctors",\n'
                    '  "key": ["name"], "columns": {"name": "$name", "emial": "$email",\n'
                    '  "legacy_id": "$id", "years": "seven"}}\n'
                    ']}\n')
        self.psql("ALTER TABLE global_doctors ALTER COLUMN id SET DEFAULT gen_random_uuid()")
        result = self.check_catalog("clinic", [path])
        self.assertEqual(result["catalog_errors"], [
            f'{path}:2:36: $.targets[0].table: table public.missing does not exist in '
            'connection "clinic"',
            f'{path}:5:49: $.targets[1].columns.emial: column "emial" does not exist in table '
            'public.global_doctors (did you mean "email"?)',
            f'{path}:6:23: $.targets[1].columns.years: the constant "seven" is not a valid '
            'integer: invalid input syntax for type integer: "seven"',
            f'{path}:5:10: $.targets[1].key: no unique index or primary key of '
            '"public"."global_doctors" covers exactly the key ("name"); add one, e.g. CREATE '
            'UNIQUE INDEX ON "public"."global_doctors" ("name")',
        ])


if __name__ == "__main__":
    unittest.main()
