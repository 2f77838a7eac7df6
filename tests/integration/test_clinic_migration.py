"""The clinic reference migration (mappings/clinic/), end to end: the legacy schema and the new
schema in one database (as in the users' migration documents), real capture into Kafka, real
apply with the reference mapping files, the seed data, then a write load and a restart of
apply in the middle.

Every expected row is computed in Python from the legacy tables as they are, by the rules of
mappings/README.md (uuid5 names, normalize_phone, parse_period, trim, lower, lookups), and the
new tables must equal it exactly. Beside that, the counts the users' documents talk about are
asserted outright: 7 doctors, 19 global patients for 20 legacy ones, 43 of 43 appointments
linked (the application's own dual-write left 4 of 43 without a doctor), the unparseable
preferred times in the dead-letter queue and nowhere else.

"Caught up" is decided, never slept on: the slot has confirmed the WAL position taken after
the writes (everything is in Kafka), dualsync.offsets says every message of the mapped topics
is applied (the same transaction as the rows), dualsync.pending holds exactly the changes
expected to wait for a parent (none, except an appointment with a former doctor), and a second
look finds the topics unchanged (apply's own in-place writes, committed under the replication
origin "dualsync", were not captured again). `dualsync verify`, which rebuilds every target
from the legacy rows on its own, must agree as well.
"""

import json
import os
import re
import threading
import uuid

import dstest

CLINIC = os.path.join(dstest.SOURCE_DIR, "mappings", "clinic")
MAPPING_FILES = [
    os.path.join(CLINIC, name + ".json")
    for name in ("users", "patients", "appointments", "reservations", "patient_offers")
]
# Every legacy table is captured, as scripts/demo.sh does; apply reads the five it maps.
LEGACY_TABLES = ["clinics", "users", "patients", "appointments", "reservations", "offers",
                 "patient_offers"]
MAPPED_TABLES = ["users", "patients", "appointments", "reservations", "patient_offers"]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def mapping(name):
    with open(os.path.join(CLINIC, name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def target(doc, name):
    (t,) = [t for t in doc["targets"] if t["name"] == name]
    return t


# The uuid5 namespaces, taken from the mapping files themselves.
_users = mapping("users")
_patients = mapping("patients")
NS_GLOBAL_DOCTOR = target(_users, "global_doctors")["columns"]["id"]["uuid5"]["namespace"]
NS_CLINIC_DOCTOR = target(_users, "clinic_doctors")["columns"]["id"]["uuid5"]["namespace"]
NS_GLOBAL_PATIENT = target(_patients, "global_patients")["columns"]["id"]["uuid5"]["namespace"]
NS_CLINIC_PATIENT = target(_patients, "clinic_patients")["columns"]["id"]["uuid5"]["namespace"]


# ---- the mapping functions, as mappings/README.md defines them -----------------------------


def uuid5(namespace, values):
    """uuid5 of the values as a compact JSON array of strings (README: exactly Python's
    json.dumps(values, ensure_ascii=False, separators=(",", ":")))."""
    name = json.dumps(values, ensure_ascii=False, separators=(",", ":"))
    return str(uuid.uuid5(uuid.UUID(namespace), name))


def trim(text):
    return None if text is None else text.strip(" \t\r\n")


def lower(text):
    """ASCII A-Z folded, every other character unchanged."""
    return None if text is None else re.sub(r"[A-Z]", lambda m: m.group(0).lower(), text)


def normalize_phone(text):
    """Digits only; a leading country code 82 becomes the trunk prefix 0 (not 00)."""
    if text is None:
        return None
    digits = re.sub(r"[^0-9]", "", text)
    if not digits:
        return None
    if digits.startswith("82"):
        digits = digits[2:]
        if not digits.startswith("0"):
            digits = "0" + digits
    return digits


class Unparseable(Exception):
    pass


def parse_period(text):
    if text is None:
        return None
    t = trim(text)
    if t.lower() == "morning" or t == "오전":
        return "MORNING"
    if t.lower() == "afternoon" or t == "오후":
        return "AFTERNOON"
    m = re.fullmatch(r"([0-9]{1,2}):([0-5][0-9])", t)
    if m:
        hour = int(m.group(1))
        if hour > 23:
            raise Unparseable(text)
        return "MORNING" if hour < 12 else "AFTERNOON"
    m = re.fullmatch(r"([0-9]{1,2}):([0-5][0-9]) ?([AaPp][Mm])", t)
    if m and 1 <= int(m.group(1)) <= 12:
        return "MORNING" if m.group(3).lower() == "am" else "AFTERNOON"
    raise Unparseable(text)


def global_patient_id(patient):
    identity = normalize_phone(patient["phone"])
    if identity is None:
        identity = lower(trim(patient["email"]))
    return uuid5(NS_GLOBAL_PATIENT, [identity, patient["dateOfBirth"]])


# ---- the expected new tables ----------------------------------------------------------------


def rows_of(db, sql, columns):
    return [dict(zip(columns, r)) for r in dstest.psql(sql, db=db)]


class Legacy:
    """The legacy tables as they are now, read back from the database, and the order in which
    the test last wrote each patient (a merged row takes the values of its first source row
    in key order, whatever the order of writes: patient_order must not matter)."""

    def __init__(self, db, patient_order):
        self.users = rows_of(
            db,
            'SELECT "id", "clinicId", "email", "name", "role", "specialization", '
            '"licenseNumber", "experience", "isActive", "createdAt" FROM users ORDER BY "id"',
            ["id", "clinicId", "email", "name", "role", "specialization", "licenseNumber",
             "experience", "isActive", "createdAt"],
        )
        self.patients = rows_of(
            db,
            'SELECT "id", "clinicId", "name", "phone", "email", "dateOfBirth", "gender" '
            'FROM patients ORDER BY "id"',
            ["id", "clinicId", "name", "phone", "email", "dateOfBirth", "gender"],
        )
        self.appointments = rows_of(
            db,
            'SELECT "id", "clinicId", "doctorId", "patientId" FROM appointments ORDER BY "id"',
            ["id", "clinicId", "doctorId", "patientId"],
        )
        self.reservations = rows_of(
            db,
            'SELECT "id", "serviceType", "preferredTime" FROM reservations ORDER BY "id"',
            ["id", "serviceType", "preferredTime"],
        )
        self.patient_offers = rows_of(
            db,
            'SELECT po."id", o."clinicId" FROM patient_offers po '
            'JOIN offers o ON o."id" = po."offerId" ORDER BY po."id"',
            ["id", "offerClinicId"],
        )
        self.services = {
            r["code"]: r
            for r in rows_of(db, 'SELECT "id", "code", "name", "duration" FROM services',
                             ["id", "code", "name", "duration"])
        }
        self.patient_order = patient_order

    def doctors(self):
        return [u for u in self.users if u["role"] == "DOCTOR"]

    def global_doctors(self):
        return sorted(
            (uuid5(NS_GLOBAL_DOCTOR, [u["id"]]), u["id"], trim(u["name"]), lower(trim(u["email"])),
             u["licenseNumber"], u["createdAt"])
            for u in self.doctors()
        )

    def clinic_doctors(self):
        return sorted(
            (uuid5(NS_CLINIC_DOCTOR, [u["id"], u["clinicId"]]), uuid5(NS_GLOBAL_DOCTOR, [u["id"]]),
             u["clinicId"], u["specialization"], u["licenseNumber"], u["experience"],
             u["isActive"])
            for u in self.doctors()
        )

    def global_patients(self):
        first = {}
        for p in sorted(self.patients, key=lambda p: p["id"], reverse=True):
            first[global_patient_id(p)] = p  # the first source row in key order wins
        return sorted(
            (gid, trim(p["name"]), normalize_phone(p["phone"]), lower(trim(p["email"])),
             p["dateOfBirth"])
            for gid, p in first.items()
        )

    def clinic_patients(self):
        return sorted(
            (uuid5(NS_CLINIC_PATIENT, [p["id"]]), global_patient_id(p), p["clinicId"], p["id"],
             p["name"], p["phone"], p["email"], p["gender"])
            for p in self.patients
        )

    def appointment_links(self):
        """(id, clinicDoctorId, clinicPatientId). A user who is not a DOCTOR (any more) has no
        clinic profile: deleting it set the references to NULL (ON DELETE SET NULL), and a new
        appointment with that user waits for one in dualsync.pending, its doctor link NULL."""
        users = {u["id"]: u for u in self.users}
        out = []
        for a in self.appointments:
            doctor = users[a["doctorId"]]
            doctor_ok = doctor["role"] == "DOCTOR" and doctor["clinicId"] == a["clinicId"]
            out.append(
                (a["id"],
                 uuid5(NS_CLINIC_DOCTOR, [a["doctorId"], a["clinicId"]]) if doctor_ok else None,
                 uuid5(NS_CLINIC_PATIENT, [a["patientId"]]))
            )
        return out

    def reservation_columns(self):
        """(id, serviceId, serviceName, estimatedDuration, period); all NULL for a reservation
        whose preferredTime cannot be read: the whole change is a dead letter."""
        out = []
        for r in self.reservations:
            try:
                period = parse_period(r["preferredTime"])
            except Unparseable:
                out.append((r["id"], None, None, None, None))
                continue
            s = self.services[r["serviceType"]]
            out.append((r["id"], s["id"], s["name"], s["duration"], period))
        return out

    def unparseable_reservations(self):
        out = []
        for r in self.reservations:
            try:
                parse_period(r["preferredTime"])
            except Unparseable:
                out.append((r["id"], r["preferredTime"]))
        return sorted(out)

    def patient_offer_clinics(self):
        return [(po["id"], po["offerClinicId"]) for po in self.patient_offers]


# What the new tables hold, in the same shapes.
NEW_QUERIES = {
    "global_doctors": 'SELECT "id", "legacyUserId", "name", "email", "licenseNumber", "createdAt" '
                      'FROM global_doctors ORDER BY "id"',
    "clinic_doctors": 'SELECT "id", "globalDoctorId", "clinicId", "specialization", '
                      '"licenseNumber", "experience", "isActive" FROM clinic_doctors ORDER BY "id"',
    "global_patients": 'SELECT "id", "name", "phone", "email", "dateOfBirth" FROM global_patients '
                       'ORDER BY "id"',
    "clinic_patients": 'SELECT "id", "globalPatientId", "clinicId", "legacyPatientId", "name", '
                       '"phone", "email", "gender" FROM clinic_patients ORDER BY "id"',
    "appointment_links": 'SELECT "id", "clinicDoctorId", "clinicPatientId" FROM appointments '
                         'ORDER BY "id"',
    "reservation_columns": 'SELECT "id", "serviceId", "serviceName", "estimatedDuration", '
                           '"period" FROM reservations ORDER BY "id"',
    "patient_offer_clinics": 'SELECT "id", "clinicId" FROM patient_offers ORDER BY "id"',
}

# Row versions of every row apply writes: a row rewritten by a replayed change gets a new xmin.
XMIN_QUERY = """
SELECT 'global_doctors', "id"::text, xmin::text FROM global_doctors
UNION ALL SELECT 'clinic_doctors', "id"::text, xmin::text FROM clinic_doctors
UNION ALL SELECT 'global_patients', "id"::text, xmin::text FROM global_patients
UNION ALL SELECT 'clinic_patients', "id"::text, xmin::text FROM clinic_patients
UNION ALL SELECT 'appointments', "id", xmin::text FROM appointments
UNION ALL SELECT 'reservations', "id", xmin::text FROM reservations
UNION ALL SELECT 'patient_offers', "id", xmin::text FROM patient_offers
"""

# ---- the application's writes ---------------------------------------------------------------

# Phase 2, apply running: a doctor stops practising, an admin and a nurse become doctors, and
# patient-19 (the Seoul registration of the person also registered in Busan) is removed.
ROLE_CHANGES_AND_FIRST_DELETE = """
UPDATE users SET "role" = 'ADMIN', "updatedAt" = now() WHERE "id" = 'doctor-7';
UPDATE users SET "role" = 'DOCTOR', "specialization" = 'General', "licenseNumber" = 'LIC-20001',
                 "experience" = 2, "updatedAt" = now() WHERE "id" = 'nurse-1';
UPDATE users SET "role" = 'DOCTOR', "specialization" = 'Family medicine',
                 "licenseNumber" = 'LIC-20002', "experience" = 12, "updatedAt" = now()
 WHERE "id" = 'admin-1';
BEGIN;
DELETE FROM appointments WHERE "patientId" = 'patient-19';
DELETE FROM patients WHERE "id" = 'patient-19';
COMMIT;
"""

# Phase 3, apply stopped: the other registration goes too, a new appointment with a new
# doctor and one with the former doctor (an admin now, with no clinic profile), a phone
# number that makes patient-4 a different person, a reservation whose time the clinic fixed
# by hand, and a new one nobody can read.
WHILE_APPLY_IS_DOWN = """
BEGIN;
DELETE FROM appointments WHERE "patientId" = 'patient-20';
DELETE FROM patients WHERE "id" = 'patient-20';
COMMIT;
INSERT INTO appointments ("id", "clinicId", "doctorId", "patientId", "startsAt", "reason")
VALUES ('appt-44', 'clinic-busan', 'nurse-1', 'patient-1', '2025-03-03 10:30', 'first visit'),
       ('appt-45', 'clinic-busan', 'doctor-7', 'patient-1', '2025-03-04 11:00', 'follow-up');
UPDATE patients SET "phone" = '010-9999-0000' WHERE "id" = 'patient-4';
UPDATE reservations SET "preferredTime" = '10:30' WHERE "id" = 'resv-8';
INSERT INTO reservations ("id", "clinicId", "patientName", "phone", "serviceType",
                          "preferredDate", "preferredTime")
VALUES ('resv-25', 'clinic-seoul', 'Guest 25', '010-7777-0025', 'DENTAL', '2025-03-01',
        'whenever suits');
"""


# Counts the writes of clinic_patients, per legacy patient.
CLINIC_PATIENT_WRITES = """
CREATE TABLE clinic_patient_writes (n bigserial PRIMARY KEY, "legacyPatientId" text NOT NULL);
CREATE FUNCTION count_clinic_patient_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO clinic_patient_writes ("legacyPatientId") VALUES (NEW."legacyPatientId");
    RETURN NULL;
END $$;
CREATE TRIGGER clinic_patient_writes AFTER INSERT OR UPDATE ON clinic_patients
    FOR EACH ROW EXECUTE FUNCTION count_clinic_patient_write();
"""


class ClinicMigrationTest(dstest.ApplyTestCase):
    def setUp(self):
        super().setUp()
        self.psql(read(os.path.join(CLINIC, "legacy_schema.sql")))
        self.psql(read(os.path.join(CLINIC, "new_schema.sql")))
        self.capture_cfg, self.capture = self.start_streaming_capture(
            ["public." + t for t in LEGACY_TABLES]
        )
        self.topics = [self.capture_cfg.topic("public." + t) for t in MAPPED_TABLES]
        self.apply_cfg = self.apply_config(
            {"clinic": self.db}, MAPPING_FILES, self.capture_cfg.topic_prefix,
            apply={"on_error": "dlq"},
        )
        # The order the seed inserts patients in (patient-1 .. patient-18, then 19, then 20).
        self.patient_order = [f"patient-{g}" for g in range(1, 21)]

    # -- waiting --

    def confirm_current_wal(self):
        """Waits until capture has confirmed everything committed so far (it is in Kafka)."""
        lsn = dstest.lsn_to_int(dstest.current_wal_lsn())

        def confirmed():
            info = dstest.slot_info(self.capture_cfg.slot)
            return info and dstest.lsn_to_int(info["confirmed_flush_lsn"]) >= lsn

        dstest.wait_for(confirmed, timeout=60, what=f"slot {self.capture_cfg.slot} to confirm "
                        "the current WAL position")

    def wait_caught_up(self, apply, pending=()):
        """Waits until apply has applied everything committed so far and dualsync.pending holds
        exactly @pending ((target id, source key) pairs: changes waiting for a parent)."""
        pending = sorted(pending)
        self.confirm_current_wal()
        ends = dstest.end_offsets(self.topics)
        self.assertEqual(sorted(t for t, _ in ends), sorted(self.topics))
        last = {}

        def applied_all():
            if not apply.running():
                raise AssertionError(f"apply exited with {apply.exit_code()}:\n{apply.log_tail()}")
            last["offsets"] = dstest.stored_offsets(self.db, self.apply_cfg.group_id)
            last["pending"] = self.psql(
                "SELECT target, source_key, error FROM dualsync.pending ORDER BY 1, 2"
            )
            return last["offsets"] == ends and [r[:2] for r in last["pending"]] == pending

        try:
            dstest.wait_for(applied_all, timeout=90, what="apply to reach the topics' ends")
        except AssertionError as e:
            raise AssertionError(
                f"{e}\nend offsets {ends}\nstored {last.get('offsets')}\n"
                f"pending {last.get('pending')}, expected {pending}"
            ) from None
        # apply's writes (in place on appointments, reservations, patient_offers) were
        # committed under the origin capture skips: nothing new reached the topics.
        self.confirm_current_wal()
        self.assertEqual(dstest.end_offsets(self.topics), ends,
                         "apply's own writes were captured again")

    # -- checking --

    def assert_verify_matches(self):
        """`dualsync verify` (its own rebuild of every target from the legacy rows with apply's
        statements) finds nothing missing, extra or different."""
        path = os.path.splitext(self.apply_cfg.path)[0] + "-verify.json"
        with open(path, "w", encoding="utf-8") as f:
            json.dump(dict(self.apply_cfg.data, source=self.capture_cfg.data["source"]), f)
        proc = dstest.run_dualsync(["verify", "--config", path])
        self.assertEqual(proc.returncode, 0, f"dualsync verify:\n{proc.stdout}\n{proc.stderr}")

    def assert_new_tables(self, legacy):
        for name, sql in NEW_QUERIES.items():
            expected = [tuple(r) for r in getattr(legacy, name)()]
            actual = self.psql(sql)
            if name in ("appointment_links", "reservation_columns", "patient_offer_clinics"):
                actual = sorted(actual)
                expected = sorted(expected)
            missing = [r for r in expected if r not in actual]
            extra = [r for r in actual if r not in expected]
            self.assertEqual(actual, expected, f"{name}: missing {missing}; extra or wrong {extra}")

    def dead_letters(self):
        proc = dstest.run_dualsync(["dlq", "list", "--config", self.apply_cfg.path, "--json"])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        letters = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        for dl in letters:
            self.assertEqual(dl["topic"], self.capture_cfg.topic("public.reservations"), dl)
            self.assertIn("parse_period cannot read", dl["error"])
        return sorted((dl["key"]["id"], dl["value"]["after"]["preferredTime"]) for dl in letters)

    def test_reference_migration_with_write_load_and_restart(self):
        apply = self.start_apply(self.apply_cfg)

        # ---- phase 1: the seed -------------------------------------------------------------
        self.psql(read(os.path.join(CLINIC, "legacy_seed.sql")))
        self.wait_caught_up(apply)
        legacy = Legacy(self.db, self.patient_order)
        self.assert_new_tables(legacy)

        # What the users' documents count, outright.
        doctors = [u["id"] for u in legacy.doctors()]
        self.assertEqual(doctors, [f"doctor-{g}" for g in range(1, 8)])
        self.assertEqual(
            [r[0] for r in self.psql('SELECT "id" FROM global_doctors ORDER BY "id"')],
            sorted(uuid5(NS_GLOBAL_DOCTOR, [d]) for d in doctors),
        )
        self.assertEqual(self.psql_value("SELECT count(*) FROM clinic_doctors"), "7")
        self.assertEqual(self.psql_value("SELECT count(*) FROM clinic_patients"), "20")
        self.assertEqual(self.psql_value("SELECT count(*) FROM global_patients"), "19")
        merged = uuid5(NS_GLOBAL_PATIENT, ["01055551234", "1988-04-12"])
        self.assertEqual(
            self.psql('SELECT "legacyPatientId" FROM clinic_patients '
                      f"WHERE \"globalPatientId\" = '{merged}' ORDER BY 1"),
            [("patient-19",), ("patient-20",)],
        )
        self.assertEqual(
            self.psql('SELECT count(*), count("clinicDoctorId"), count("clinicPatientId") '
                      "FROM appointments"),
            [("43", "43", "43")],
        )
        # Every appointment's profiles are of its own clinic and of its own legacy rows.
        self.assertEqual(
            self.psql('SELECT count(*) FROM appointments a '
                      'JOIN clinic_doctors cd ON cd."id" = a."clinicDoctorId" '
                      'JOIN global_doctors gd ON gd."id" = cd."globalDoctorId" '
                      'JOIN clinic_patients cp ON cp."id" = a."clinicPatientId" '
                      'WHERE cd."clinicId" = a."clinicId" AND gd."legacyUserId" = a."doctorId" '
                      'AND cp."legacyPatientId" = a."patientId" AND cp."clinicId" = a."clinicId"'),
            [("43",)],
        )
        unparseable = legacy.unparseable_reservations()
        self.assertEqual(
            sorted(t for _, t in unparseable),
            ["after lunch maybe", "after lunch maybe", "asap", "asap"],
        )
        self.assertEqual(self.dead_letters(), unparseable)
        self.assertEqual(
            self.psql('SELECT count(*), count("serviceId"), count("period") FROM reservations'),
            [("24", "20", "20")],
        )
        periods = {p for _, _, _, _, p in legacy.reservation_columns()}
        self.assertEqual(periods, {"MORNING", "AFTERNOON", None})
        self.assertEqual(self.psql_value('SELECT count("clinicId") FROM patient_offers'), "12")
        self.assert_verify_matches()

        # ---- phase 2: role changes, half of a merged person removed -----------------------
        self.psql(ROLE_CHANGES_AND_FIRST_DELETE)
        self.patient_order.remove("patient-19")
        self.wait_caught_up(apply)
        legacy = Legacy(self.db, self.patient_order)
        self.assert_new_tables(legacy)
        self.assertEqual(
            self.psql('SELECT "legacyUserId" FROM global_doctors ORDER BY 1'),
            [("admin-1",)] + [(f"doctor-{g}",) for g in range(1, 7)] + [("nurse-1",)],
        )
        self.assertEqual(self.psql_value("SELECT count(*) FROM clinic_doctors"), "8")
        doctor7 = [a["id"] for a in legacy.appointments if a["doctorId"] == "doctor-7"]
        self.assertGreater(len(doctor7), 0)
        self.assertEqual(
            self.psql('SELECT "id" FROM appointments WHERE "doctorId" = \'doctor-7\' '
                      'AND "clinicDoctorId" IS NULL ORDER BY "id"'),
            [(a,) for a in sorted(doctor7)],
        )
        self.assertEqual(self.psql_value("SELECT count(*) FROM global_patients"), "19")
        self.assertEqual(
            self.psql(f"SELECT \"legacyPatientId\" FROM clinic_patients "
                      f"WHERE \"globalPatientId\" = '{merged}'"),
            [("patient-20",)],
        )

        patient4 = [p for p in legacy.patients if p["id"] == "patient-4"][0]
        patient20_appointments = [
            ("appointments", a["id"]) for a in legacy.appointments if a["patientId"] == "patient-20"
        ]
        self.assertEqual(len(patient20_appointments), 2)

        # ---- a restart: SIGTERM, exit 0, changes made meanwhile, start again ---------------
        versions_before = {(t, i): x for t, i, x in self.psql(XMIN_QUERY)}
        self.assertEqual(apply.stop(timeout=60, expect_exit=0), 0)
        self.assertIn("stopped on signal", apply.log_text())

        # ---- phase 3: written while apply is down ------------------------------------------
        self.psql(WHILE_APPLY_IS_DOWN)
        self.patient_order.remove("patient-20")
        self.patient_order.remove("patient-4")
        self.patient_order.append("patient-4")
        apply = self.start_apply(self.apply_cfg)
        # appt-45's doctor link waits for a clinic profile of doctor-7; its patient link,
        # another target, does not wait with it.
        self.wait_caught_up(
            apply, pending=[("appointments/appointment_doctors", '{"id":"appt-45"}')]
        )
        legacy = Legacy(self.db, self.patient_order)
        self.assert_new_tables(legacy)

        self.assertEqual(self.psql_value("SELECT count(*) FROM global_patients"), "18")
        self.assertEqual(
            self.psql_value(f"SELECT count(*) FROM global_patients WHERE \"id\" = '{merged}'"), "0"
        )
        new_identity = uuid5(NS_GLOBAL_PATIENT, ["01099990000", patient4["dateOfBirth"]])
        self.assertEqual(
            self.psql('SELECT cp."globalPatientId", gp."phone" FROM clinic_patients cp '
                      'JOIN global_patients gp ON gp."id" = cp."globalPatientId" '
                      "WHERE cp.\"legacyPatientId\" = 'patient-4'"),
            [(new_identity, "01099990000")],
        )
        self.assertEqual(
            self.psql('SELECT "id", "clinicDoctorId", "clinicPatientId" FROM appointments '
                      "WHERE \"id\" IN ('appt-44', 'appt-45') ORDER BY 1"),
            [("appt-44", uuid5(NS_CLINIC_DOCTOR, ["nurse-1", "clinic-busan"]),
              uuid5(NS_CLINIC_PATIENT, ["patient-1"])),
             ("appt-45", None, uuid5(NS_CLINIC_PATIENT, ["patient-1"]))],
        )
        # The dead letters of the seed stay (resv-8 was fixed since, and is now applied);
        # the new unreadable reservation joined them.
        self.assertEqual(
            self.dead_letters(), sorted(unparseable + [("resv-25", "whenever suits")])
        )
        self.assertEqual(
            self.psql('SELECT "period", "serviceName" FROM reservations WHERE "id" = \'resv-8\''),
            [("MORNING", "Vaccination")],
        )

        # Nothing applied before the restart was applied again: every row the phase-3 changes
        # did not touch is the very row version it was.
        touched = {
            ("clinic_patients", uuid5(NS_CLINIC_PATIENT, ["patient-4"])),
            ("reservations", "resv-8"),
        }
        versions_after = {(t, i): x for t, i, x in self.psql(XMIN_QUERY)}
        rewritten = sorted(
            k for k in versions_before.keys() & versions_after.keys()
            if k not in touched and versions_before[k] != versions_after[k]
        )
        self.assertEqual(rewritten, [], "rows rewritten after the restart")
        self.assertEqual(
            sorted(versions_before.keys() - versions_after.keys()),
            sorted(patient20_appointments + [
                ("clinic_patients", uuid5(NS_CLINIC_PATIENT, ["patient-20"])),
                ("global_patients", merged),
                ("global_patients", global_patient_id(patient4)),  # its old identity
            ]),
        )
        # The rows that moved were written once each after the restart.
        for key in touched:
            self.assertNotEqual(versions_before[key], versions_after[key], key)
        self.assert_verify_matches()

        # ---- phase 4: SIGTERM while apply is busy, restart -----------------------------------
        # Every write of clinic_patients from now on is counted: a change applied twice (before
        # and after the restart) would show even though the rows end up right.
        self.psql(CLINIC_PATIENT_WRITES)
        patients_topic = (self.capture_cfg.topic("public.patients"), 0)
        start = dstest.stored_offsets(self.db, self.apply_cfg.group_id)[patients_topic]
        renames = [(f"patient-{1 + i % 18}", f"Patient {1 + i % 18} v{i}") for i in range(1500)]
        burst = "".join(
            f"UPDATE patients SET \"name\" = '{name}' WHERE \"id\" = '{pid}';\n"
            for pid, name in renames
        )
        writer = threading.Thread(target=self.psql, args=(burst,))
        writer.start()
        try:
            dstest.wait_for(
                lambda: dstest.stored_offsets(self.db, self.apply_cfg.group_id)[patients_topic]
                > start,
                timeout=60, interval=0.02, what="apply to start on the renames",
            )
            self.assertEqual(apply.stop(timeout=60, expect_exit=0), 0)
        finally:
            writer.join()
        applied_before_restart = (
            dstest.stored_offsets(self.db, self.apply_cfg.group_id)[patients_topic] - start
        )
        apply = self.start_apply(self.apply_cfg)
        self.wait_caught_up(
            apply, pending=[("appointments/appointment_doctors", '{"id":"appt-45"}')]
        )
        legacy = Legacy(self.db, self.patient_order)
        self.assert_new_tables(legacy)
        self.assertEqual(
            self.psql('SELECT "legacyPatientId", count(*) FROM clinic_patient_writes '
                      "GROUP BY 1 ORDER BY 1"),
            self.psql('SELECT "legacyPatientId", count(*) FROM (VALUES '
                      + ", ".join(f"('{pid}')" for pid, _ in renames)
                      + ') AS r ("legacyPatientId") GROUP BY 1 ORDER BY 1'),
            f"clinic_patients writes per patient ({applied_before_restart} of the "
            f"{len(renames)} renames were applied before the restart)",
        )
        self.assert_verify_matches()
        apply.stop(expect_exit=0)
