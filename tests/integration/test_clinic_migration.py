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
look finds the topics unchanged (apply's own in-place writes, committed under its process's
replication origin "dualsync.<group>.<instance id>", were not captured again). `dualsync verify`, which rebuilds every target
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
    for name in ("users", "patients", "appointments", "reservations", "patient_offers", "offers")
]
# Every legacy table is captured, as scripts/demo.sh does; apply reads the five it maps.
LEGACY_TABLES = ["clinics", "users", "patients", "appointments", "reservations", "offers",
                 "patient_offers"]
MAPPED_TABLES = ["users", "patients", "appointments", "reservations", "patient_offers", "offers"]


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
# The person rule (patients.json): a patient with a phone or an email and a date of birth is
# uuid5(NS_GLOBAL_PATIENT, [phone or else email, date of birth]); one without either is a
# person of their own, uuid5(NS_PATIENT_ALONE, [legacy id]).
_person = target(_patients, "global_patients")["columns"]["id"]["map"]
NS_PATIENT_ALONE = _person["cases"][""]["uuid5"]["namespace"]
NS_GLOBAL_PATIENT = _person["default"]["map"]["default"]["uuid5"]["namespace"]
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


# parse_period's grammar (mappings/README.md), for the seed's forms and the ones the tests use.
_CLOCK = re.compile(r"([0-9]{1,2}):([0-5][0-9])(?::[0-5][0-9])?")
_AMPM = re.compile(r"([0-9]{1,2})(?::([0-5][0-9])(?::[0-5][0-9])?)? *([ap])\.?m\.?", re.I)
_KOREAN = re.compile(r"(오전|오후) *([0-9]{1,2})(?:시(?: *[0-5][0-9]분)?|:[0-5][0-9](?::[0-5][0-9])?)")
_HOUR_SI = re.compile(r"([0-9]{1,2})시(?: *[0-5][0-9]분)?")
_WORDS = {"morning": "MORNING", "afternoon": "AFTERNOON", "noon": "AFTERNOON",
          "midnight": "MORNING", "오전": "MORNING", "오후": "AFTERNOON", "정오": "AFTERNOON",
          "자정": "MORNING"}


def _time_of_day(t):
    """Minutes since midnight (a word: one in its half of the day), or None."""
    if t.lower() in _WORDS:
        return 9 * 60 if _WORDS[t.lower()] == "MORNING" else 15 * 60
    m = _AMPM.fullmatch(t)
    if m:
        hour = int(m.group(1))
        if not 1 <= hour <= 12:
            return None
        return (hour % 12 + (12 if m.group(3).lower() == "p" else 0)) * 60
    m = _KOREAN.fullmatch(t)
    if m:
        hour = int(m.group(2))
        if not 1 <= hour <= 12:
            return None
        return (hour % 12 + (12 if m.group(1) == "오후" else 0)) * 60
    m = _HOUR_SI.fullmatch(t) or _CLOCK.fullmatch(t)
    if m:
        hour = int(m.group(1))
        return hour * 60 if hour <= 23 else None
    return None


def parse_period(text):
    if text is None:
        return None
    t = text.translate({0xFF10 + d: ord("0") + d for d in range(10)} | {0xFF1A: ":", 0xFF5E: "~",
                                                                       0x2013: "-"})
    t = trim(t)
    parts = [trim(p) for p in re.split(r"[~-]", t)]
    times = [_time_of_day(p) for p in parts]
    if len(parts) > 2 or any(x is None for x in times):
        raise Unparseable(text)
    return "MORNING" if times[0] < 12 * 60 else "AFTERNOON"


def global_patient_id(patient):
    phone = normalize_phone(patient["phone"])
    email = lower(trim(patient["email"]))
    if not phone and not email or patient["dateOfBirth"] is None:
        return uuid5(NS_PATIENT_ALONE, [patient["id"]])
    return uuid5(NS_GLOBAL_PATIENT, [phone if phone is not None else email,
                                     patient["dateOfBirth"]])


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
        appointment with that user waits for one in dualsync.pending, its doctor link NULL.
        The patient link is the profile, in the appointment's clinic, of the person its
        patient row belongs to (seed 000's findClinicPatientForGlobal), NULL when there is
        none (the appointment waits)."""
        users = {u["id"]: u for u in self.users}
        patients = {p["id"]: p for p in self.patients}
        out = []
        for a in self.appointments:
            doctor = users[a["doctorId"]]
            doctor_ok = doctor["role"] == "DOCTOR" and doctor["clinicId"] == a["clinicId"]
            person = global_patient_id(patients[a["patientId"]])
            profiles = [p["id"] for p in self.patients
                        if global_patient_id(p) == person and p["clinicId"] == a["clinicId"]]
            out.append(
                (a["id"],
                 uuid5(NS_CLINIC_DOCTOR, [a["doctorId"], a["clinicId"]]) if doctor_ok else None,
                 uuid5(NS_CLINIC_PATIENT, profiles) if len(profiles) == 1 else None)
            )
        return out

    def reservation_columns(self):
        """(id, serviceId, serviceName, estimatedDuration, period); the period NULL for a
        reservation whose preferredTime cannot be read (only that target is a dead letter),
        its service written all the same."""
        out = []
        for r in self.reservations:
            try:
                period = parse_period(r["preferredTime"])
            except Unparseable:
                period = None
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


class ClinicTestCase(dstest.ApplyTestCase):
    """The two schemas, capture of every legacy table, an apply configuration with the
    reference mapping files (apply not started), and the helpers to wait and check."""

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
        # A topic exists once a change of its table was published (the small datasets leave
        # some tables empty); everything committed is in Kafka by now.
        self.assertLessEqual({t for t, _ in ends}, set(self.topics))
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
            # Only the period is sent to review: the dead letter names its target and column.
            self.assertEqual(dl["target"], "reservations/reservation_periods", dl)
            self.assertIn('column "period": parse_period cannot read', dl["error"])
        return sorted((dl["key"]["id"], dl["value"]["after"]["preferredTime"]) for dl in letters)


class ClinicMigrationTest(ClinicTestCase):
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
        # Every appointment's profiles are of its own clinic (the isolation checks of seed 000)
        # and of its own doctor and its patient's person.
        self.assertEqual(
            self.psql('SELECT count(*) FROM appointments a '
                      'JOIN clinic_doctors cd ON cd."id" = a."clinicDoctorId" '
                      'JOIN global_doctors gd ON gd."id" = cd."globalDoctorId" '
                      'JOIN clinic_patients cp ON cp."id" = a."clinicPatientId" '
                      'JOIN clinic_patients own ON own."legacyPatientId" = a."patientId" '
                      'WHERE cd."clinicId" = a."clinicId" AND gd."legacyUserId" = a."doctorId" '
                      'AND cp."globalPatientId" = own."globalPatientId" '
                      'AND cp."clinicId" = a."clinicId"'),
            [("43",)],
        )
        unparseable = legacy.unparseable_reservations()
        self.assertEqual(
            sorted(t for _, t in unparseable),
            ["after lunch maybe", "after lunch maybe", "asap", "asap"],
        )
        self.assertEqual(self.dead_letters(), unparseable)
        self.assertEqual(
            self.psql('SELECT count(*), count("serviceId"), count("serviceName"), '
                      'count("estimatedDuration"), count("period") FROM reservations'),
            [("24", "24", "24", "24", "20")],
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


# ---- the cases the reference migration once got wrong, each on its own small dataset --------

CLINICS = """
INSERT INTO clinics VALUES ('clinic-seoul', 'Seoul Central Clinic', 'seoul'),
                           ('clinic-busan', 'Busan Harbor Clinic', 'busan');
"""


def person(phone_or_email, birth_date):
    return uuid5(NS_GLOBAL_PATIENT, [phone_or_email, birth_date])


def alone(legacy_id):
    return uuid5(NS_PATIENT_ALONE, [legacy_id])


def clinic_patient(legacy_id):
    return uuid5(NS_CLINIC_PATIENT, [legacy_id])


def clinic_doctor(user_id, clinic_id):
    return uuid5(NS_CLINIC_DOCTOR, [user_id, clinic_id])


class ClinicIdentityTest(ClinicTestCase):
    """Who is one person: the same normalised phone (or, without one, the same email) and the
    same date of birth. Without a phone or an email, or without a birth date, a patient is a
    person of their own: strangers' records are never joined."""

    PATIENTS = """
    INSERT INTO patients ("id", "clinicId", "name", "phone", "email", "dateOfBirth", "gender")
    VALUES
        -- no phone, no email, the same birth date: two people
        ('anon-1', 'clinic-seoul', 'Kim Ah-reum', NULL, NULL, '1990-01-01', 'F'),
        ('anon-2', 'clinic-busan', 'Lee Bo-ra', NULL, NULL, '1990-01-01', 'F'),
        -- a phone without digits and a blank email are no contact data either
        ('blank-1', 'clinic-seoul', 'Park Chan', ' - ', '   ', '1990-01-01', 'M'),
        -- nothing at all: two people
        ('none-1', 'clinic-seoul', 'Choi Da-eun', NULL, NULL, NULL, NULL),
        ('none-2', 'clinic-busan', 'Jung Eun-ho', NULL, NULL, NULL, NULL),
        -- a family phone, no birth dates: two people
        ('nodob-1', 'clinic-seoul', 'Kang Father', '010-3333-4444', NULL, NULL, 'M'),
        ('nodob-2', 'clinic-busan', 'Kang Son', '010-3333-4444', NULL, NULL, 'M'),
        -- twins sharing a phone: one person under the documents' rule (a known limit)
        ('twin-1', 'clinic-seoul', 'Yoon Ha-na', '010-2222-3333', NULL, '2001-05-05', 'F'),
        ('twin-2', 'clinic-seoul', 'Yoon Du-na', '010-2222-3333', NULL, '2001-05-05', 'F'),
        -- one person registered in two clinics, the phone written two ways
        ('song-1', 'clinic-seoul', 'Song Yu-na', '010-5555-1234', NULL, '1988-04-12', 'F'),
        ('song-2', 'clinic-busan', 'Song Yuna', '+82 10 5555 1234', NULL, '1988-04-12', 'F'),
        -- without a phone, the email decides
        ('mail-1', 'clinic-seoul', 'Han Mi', NULL, 'Han.Mi@mail.example', '1970-07-07', 'F'),
        ('mail-2', 'clinic-busan', 'Han Mi', '', ' han.mi@mail.example ', '1970-07-07', 'F');
    """

    EXPECTED = [
        ("anon-1", alone("anon-1")),
        ("anon-2", alone("anon-2")),
        ("blank-1", alone("blank-1")),
        ("mail-1", person("han.mi@mail.example", "1970-07-07")),
        ("mail-2", person("han.mi@mail.example", "1970-07-07")),
        ("nodob-1", alone("nodob-1")),
        ("nodob-2", alone("nodob-2")),
        ("none-1", alone("none-1")),
        ("none-2", alone("none-2")),
        ("song-1", person("01055551234", "1988-04-12")),
        ("song-2", person("01055551234", "1988-04-12")),
        ("twin-1", person("01022223333", "2001-05-05")),
        ("twin-2", person("01022223333", "2001-05-05")),
    ]

    def test_patients_without_contact_data_never_merge(self):
        # The rule is written once per target that needs it; both must stay the same.
        self.assertEqual(target(_patients, "global_patients")["columns"]["id"],
                         target(_patients, "clinic_patients")["columns"]["globalPatientId"])
        apply = self.start_apply(self.apply_cfg)
        self.psql(CLINICS + self.PATIENTS)
        self.wait_caught_up(apply)
        self.assertEqual(
            self.psql('SELECT "legacyPatientId", "globalPatientId"::text FROM clinic_patients '
                      'ORDER BY 1'),
            self.EXPECTED,
        )
        self.assertEqual(
            self.psql('SELECT "id"::text FROM global_patients ORDER BY 1'),
            sorted({(gid,) for _, gid in self.EXPECTED}),
        )
        self.assertEqual(self.psql_value("SELECT count(*) FROM global_patients"), "10")

        # anon-1 gives an email: a person now, no longer alone; anon-2 stays alone.
        self.psql("UPDATE patients SET \"email\" = 'kim.ar@mail.example' WHERE \"id\" = 'anon-1'")
        self.wait_caught_up(apply)
        expected = dict(self.EXPECTED)
        expected["anon-1"] = person("kim.ar@mail.example", "1990-01-01")
        self.assertEqual(
            self.psql('SELECT "legacyPatientId", "globalPatientId"::text FROM clinic_patients '
                      'ORDER BY 1'),
            sorted(expected.items()),
        )
        self.assertEqual(
            self.psql('SELECT "id"::text FROM global_patients ORDER BY 1'),
            sorted({(gid,) for gid in expected.values()}),
        )
        self.assert_verify_matches()


class ClinicMergedPatientTest(ClinicTestCase):
    """A global patient merged from two clinic registrations holds the values of its first
    source row by key (pa before pb), whatever the order they were written in; when pb's phone
    makes it another person, nothing of pb stays on Ann's row."""

    ROWS = 'SELECT "name", "phone", "email", "dateOfBirth"::text FROM global_patients ORDER BY 2'

    def test_a_patient_who_leaves_a_merged_row_takes_their_values_along(self):
        apply = self.start_apply(self.apply_cfg)
        # pb is written first: the row still reads pa's values once pa arrives.
        self.psql(CLINICS + """
            INSERT INTO patients ("id", "clinicId", "name", "phone", "email", "dateOfBirth")
            VALUES ('pb', 'clinic-busan', 'Someone Else', ' 010 1111 2222', NULL, '1990-01-01');
            INSERT INTO patients ("id", "clinicId", "name", "phone", "email", "dateOfBirth")
            VALUES ('pa', 'clinic-seoul', 'Ann', '010-1111-2222', 'ann@x.example', '1990-01-01');
        """)
        self.wait_caught_up(apply)
        self.assertEqual(self.psql(self.ROWS),
                         [("Ann", "01011112222", "ann@x.example", "1990-01-01")])
        self.psql("UPDATE patients SET \"name\" = 'Someone Else Again' WHERE \"id\" = 'pb'")
        self.wait_caught_up(apply)
        self.assertEqual(self.psql(self.ROWS),
                         [("Ann", "01011112222", "ann@x.example", "1990-01-01")])

        self.psql("UPDATE patients SET \"phone\" = '010-9999-9999' WHERE \"id\" = 'pb'")
        self.wait_caught_up(apply)
        self.assertEqual(self.psql(self.ROWS), [
            ("Ann", "01011112222", "ann@x.example", "1990-01-01"),
            ("Someone Else Again", "01099999999", None, "1990-01-01"),
        ])
        self.assert_verify_matches()

        # pb comes back to Ann's phone, then pa, the first, is deleted: pb's values remain.
        self.psql("UPDATE patients SET \"phone\" = '+82 10 1111 2222' WHERE \"id\" = 'pb';"
                  "DELETE FROM patients WHERE \"id\" = 'pa';")
        self.wait_caught_up(apply)
        self.assertEqual(self.psql(self.ROWS),
                         [("Someone Else Again", "01011112222", None, "1990-01-01")])
        self.assert_verify_matches()


class ClinicIsolationTest(ClinicTestCase):
    """An appointment points at the clinic profile, in its own clinic, of its patient's person
    (seed 000's findClinicPatientForGlobal(globalPatientId, clinicId)); without one it waits
    in dualsync.pending, never filled with another clinic's profile."""

    ROWS = """
    INSERT INTO users ("id", "clinicId", "email", "name", "role")
    VALUES ('doc-s', 'clinic-seoul', 'doc-s@clinic.example', 'Kim Seoul', 'DOCTOR'),
           ('doc-b', 'clinic-busan', 'doc-b@clinic.example', 'Lee Busan', 'DOCTOR');
    INSERT INTO patients ("id", "clinicId", "name", "phone", "email", "dateOfBirth")
    VALUES ('kim-seoul', 'clinic-seoul', 'Kim Ji-su', '010-1234-0001', NULL, '1980-02-02'),
           ('kim-busan', 'clinic-busan', 'Kim Jisu', '01012340001', NULL, '1980-02-02'),
           ('lee-seoul', 'clinic-seoul', 'Lee Min', '010-1234-0002', NULL, '1975-03-03');
    INSERT INTO appointments ("id", "clinicId", "doctorId", "patientId", "startsAt")
    VALUES ('ap-1', 'clinic-busan', 'doc-b', 'kim-seoul', '2025-03-01 10:00'),
           ('ap-2', 'clinic-seoul', 'doc-s', 'kim-seoul', '2025-03-02 10:00'),
           ('ap-3', 'clinic-busan', 'doc-b', 'lee-seoul', '2025-03-03 10:00');
    """

    LINKS = ('SELECT "id", "clinicDoctorId"::text, "clinicPatientId"::text FROM appointments '
             'ORDER BY 1')

    def test_appointments_take_the_profile_of_their_own_clinic(self):
        apply = self.start_apply(self.apply_cfg)
        self.psql(CLINICS + self.ROWS)
        # Lee has no Busan profile: ap-3's patient link waits, shown in dualsync.pending.
        self.wait_caught_up(
            apply, pending=[("appointments/appointment_patients", '{"id":"ap-3"}')]
        )
        self.assertEqual(self.psql(self.LINKS), [
            ("ap-1", clinic_doctor("doc-b", "clinic-busan"), clinic_patient("kim-busan")),
            ("ap-2", clinic_doctor("doc-s", "clinic-seoul"), clinic_patient("kim-seoul")),
            ("ap-3", clinic_doctor("doc-b", "clinic-busan"), None),
        ])
        # The isolation check: no appointment points at a profile of another clinic.
        self.assertEqual(
            self.psql_value('SELECT count(*) FROM appointments a JOIN clinic_patients cp '
                            'ON cp."id" = a."clinicPatientId" WHERE cp."clinicId" <> a."clinicId"'),
            "0",
        )

        # Lee registers in Busan: the waiting appointment gets that profile.
        self.psql("""
            INSERT INTO patients ("id", "clinicId", "name", "phone", "email", "dateOfBirth")
            VALUES ('lee-busan', 'clinic-busan', 'Lee Min', '010 1234 0002', NULL, '1975-03-03');
        """)
        self.wait_caught_up(apply)
        self.assertEqual(self.psql(self.LINKS), [
            ("ap-1", clinic_doctor("doc-b", "clinic-busan"), clinic_patient("kim-busan")),
            ("ap-2", clinic_doctor("doc-s", "clinic-seoul"), clinic_patient("kim-seoul")),
            ("ap-3", clinic_doctor("doc-b", "clinic-busan"), clinic_patient("lee-busan")),
        ])
        self.assert_verify_matches()

        # Kim registered twice in Busan: which Busan profile a new appointment means cannot be
        # told, so its patient link is a dead letter for review, never a guess.
        # (The second profile is applied first: patients and appointments are read side by
        # side, and an appointment read before it would find one profile only.)
        self.psql("""
            INSERT INTO patients ("id", "clinicId", "name", "phone", "email", "dateOfBirth")
            VALUES ('kim-busan-2', 'clinic-busan', 'Kim J.', '010-1234-0001', NULL, '1980-02-02');
        """)
        self.wait_caught_up(apply)
        self.psql("""
            INSERT INTO appointments ("id", "clinicId", "doctorId", "patientId", "startsAt")
            VALUES ('ap-4', 'clinic-busan', 'doc-b', 'kim-seoul', '2025-03-04 10:00');
        """)
        self.wait_caught_up(apply)
        self.assertEqual(
            self.psql('SELECT "clinicDoctorId"::text, "clinicPatientId"::text FROM appointments '
                      "WHERE \"id\" = 'ap-4'"),
            [(clinic_doctor("doc-b", "clinic-busan"), None)],
        )
        proc = dstest.run_dualsync(["dlq", "list", "--config", self.apply_cfg.path, "--json"])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        letters = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        self.assertEqual([(dl["key"], dl["target"]) for dl in letters],
                         [({"id": "ap-4"}, "appointments/appointment_patients")])
        self.assertIn("more than one row returned by a subquery", letters[0]["error"])


class ClinicDoctorRoleTest(ClinicTestCase):
    """A doctor who becomes an admin and then a doctor again gets their appointments back."""

    ROWS = """
    INSERT INTO users ("id", "clinicId", "email", "name", "role")
    VALUES ('doc-1', 'clinic-seoul', 'doc-1@clinic.example', 'Kim Min-jun', 'DOCTOR'),
           ('doc-2', 'clinic-seoul', 'doc-2@clinic.example', 'Lee Seo-yeon', 'DOCTOR');
    INSERT INTO patients ("id", "clinicId", "name", "phone", "email", "dateOfBirth")
    VALUES ('p-1', 'clinic-seoul', 'Park Ji-ho', '010-4444-0001', NULL, '1985-05-05');
    INSERT INTO appointments ("id", "clinicId", "doctorId", "patientId", "startsAt")
    VALUES ('a-1', 'clinic-seoul', 'doc-1', 'p-1', '2025-03-01 10:00'),
           ('a-2', 'clinic-seoul', 'doc-1', 'p-1', '2025-03-02 10:00'),
           ('a-3', 'clinic-seoul', 'doc-2', 'p-1', '2025-03-03 10:00');
    """

    DOCTORS = 'SELECT "id", "clinicDoctorId"::text FROM appointments ORDER BY 1'

    def test_a_doctor_again_gets_their_appointments_back(self):
        apply = self.start_apply(self.apply_cfg)
        self.psql(CLINICS + self.ROWS)
        self.wait_caught_up(apply)
        doc1 = clinic_doctor("doc-1", "clinic-seoul")
        doc2 = clinic_doctor("doc-2", "clinic-seoul")
        self.assertEqual(self.psql(self.DOCTORS), [("a-1", doc1), ("a-2", doc1), ("a-3", doc2)])

        self.psql("UPDATE users SET \"role\" = 'ADMIN' WHERE \"id\" = 'doc-1'")
        self.wait_caught_up(apply)
        self.assertEqual(self.psql(self.DOCTORS), [("a-1", None), ("a-2", None), ("a-3", doc2)])

        self.psql("UPDATE users SET \"role\" = 'DOCTOR' WHERE \"id\" = 'doc-1'")
        self.wait_caught_up(apply)
        self.assertEqual(self.psql(self.DOCTORS), [("a-1", doc1), ("a-2", doc1), ("a-3", doc2)])
        self.assert_verify_matches()

        # A change of the doctor that changes no appointment rewrites none.
        before = self.psql('SELECT "id", xmin::text FROM appointments ORDER BY 1')
        self.psql("UPDATE users SET \"name\" = 'Kim Min-jun (Dr.)' WHERE \"id\" = 'doc-1'")
        self.wait_caught_up(apply)
        self.assertEqual(self.psql('SELECT "id", xmin::text FROM appointments ORDER BY 1'), before)


class ClinicOfferMoveTest(ClinicTestCase):
    """patient_offers.clinicId follows its offer when the offer moves to another clinic."""

    ROWS = """
    INSERT INTO patients ("id", "clinicId", "name", "phone", "email", "dateOfBirth")
    VALUES ('p-1', 'clinic-seoul', 'Park Ji-ho', '010-4444-0001', NULL, '1985-05-05'),
           ('p-2', 'clinic-busan', 'Choi Ha-eun', '010-4444-0002', NULL, '1986-06-06');
    INSERT INTO offers VALUES ('o-1', 'clinic-seoul', 'Spring checkup', true),
                              ('o-2', 'clinic-seoul', 'Flu vaccination', true);
    INSERT INTO patient_offers ("id", "patientId", "offerId")
    VALUES ('po-1', 'p-1', 'o-1'), ('po-2', 'p-2', 'o-1'), ('po-3', 'p-1', 'o-2');
    """

    CLINIC_IDS = 'SELECT "id", "clinicId" FROM patient_offers ORDER BY 1'

    def test_patient_offers_follow_their_offer(self):
        apply = self.start_apply(self.apply_cfg)
        self.psql(CLINICS + self.ROWS)
        self.wait_caught_up(apply)
        self.assertEqual(self.psql(self.CLINIC_IDS), [
            ("po-1", "clinic-seoul"), ("po-2", "clinic-seoul"), ("po-3", "clinic-seoul"),
        ])
        self.psql("UPDATE offers SET \"clinicId\" = 'clinic-busan' WHERE \"id\" = 'o-1'")
        self.wait_caught_up(apply)
        self.assertEqual(self.psql(self.CLINIC_IDS), [
            ("po-1", "clinic-busan"), ("po-2", "clinic-busan"), ("po-3", "clinic-seoul"),
        ])
        self.assert_verify_matches()

        # verify compares a fan-out target (its key, offerId, matches several rows) as a
        # multiset: one patient offer left on the old clinic is one row missing and one extra.
        # Written under apply's replication origin (its process's own, named in its log),
        # which capture skips, with apply stopped.
        self.assertEqual(apply.stop(timeout=60, expect_exit=0), 0)
        origin = re.search(r'replication origin "([^"]+)"', apply.log_text()).group(1)
        self.psql(f"""
            SELECT pg_replication_origin_session_setup({dstest.quote_literal(origin)});
            UPDATE patient_offers SET "clinicId" = 'clinic-seoul' WHERE "id" = 'po-2';
            SELECT pg_replication_origin_session_reset();
        """)
        path = os.path.splitext(self.apply_cfg.path)[0] + "-verify.json"
        with open(path, "w", encoding="utf-8") as f:
            json.dump(dict(self.apply_cfg.data, source=self.capture_cfg.data["source"]), f)
        proc = dstest.run_dualsync(["verify", "--config", path, "--json"])
        self.assertEqual(proc.returncode, 1, f"{proc.stdout}\n{proc.stderr}")
        fan_out = {t["target"]: t for t in json.loads(proc.stdout)["targets"]}[
            "offers/patient_offer_clinics"]
        self.assertEqual((fan_out["expected"], fan_out["present"], fan_out["missing"],
                          fan_out["extra"], fan_out["different"]), (3, 3, 1, 1, 0))
        self.assertEqual(fan_out["samples"], {"missing": [["o-1"]], "extra": [["o-1"]],
                                              "different": [], "pending": []})


class ClinicReservationTest(ClinicTestCase):
    """Free-text preferred times as people write them are read; an unreadable one sends only
    the period to review (a dead letter of reservations/reservation_periods naming the
    column), the service columns are written all the same (seed 002 wants them on 100 %)."""

    TIMES = [
        ("r-01", "9 am", "MORNING"),
        ("r-02", "9:00 a.m.", "MORNING"),
        ("r-03", "noon", "AFTERNOON"),
        ("r-04", "midnight", "MORNING"),
        ("r-05", "오전 10시", "MORNING"),
        ("r-06", "오후 12시", "AFTERNOON"),
        ("r-07", "１０:００", "MORNING"),
        ("r-08", "09:00:00", "MORNING"),
        ("r-09", "10:00~11:00", "MORNING"),
        ("r-10", "10:00-11:00", "MORNING"),
        ("r-11", "10시~11시", "MORNING"),
        ("r-12", "2:30 PM", "AFTERNOON"),
        ("r-13", "14:30", "AFTERNOON"),
        ("r-14", "오후", "AFTERNOON"),
        ("r-15", "ASAP", None),
        ("r-16", "24:00", None),
        ("r-17", "13:00 PM", None),
    ]
    SERVICE = ("5b0c9a8e-0b4e-4f55-9a49-1f3d8c7a0004", "Dental care", "60")

    def test_an_unreadable_time_costs_only_the_period(self):
        apply = self.start_apply(self.apply_cfg)
        self.psql(CLINICS + "".join(
            "INSERT INTO reservations (\"id\", \"clinicId\", \"patientName\", \"phone\", "
            "\"serviceType\", \"preferredDate\", \"preferredTime\") VALUES "
            f"('{rid}', 'clinic-seoul', 'Guest', '010-7777-0000', 'DENTAL', '2025-03-01', "
            f"{dstest.quote_literal(text)});\n"
            for rid, text, _ in self.TIMES
        ))
        self.wait_caught_up(apply)
        rows = 'SELECT "id", "serviceId"::text, "serviceName", "estimatedDuration"::text, ' \
               '"period"::text FROM reservations ORDER BY 1'
        self.assertEqual(self.psql(rows), [(rid,) + self.SERVICE + (period,)
                                           for rid, _, period in self.TIMES])
        self.assertEqual(self.dead_letters(),
                         [("r-15", "ASAP"), ("r-16", "24:00"), ("r-17", "13:00 PM")])

        # The clinic corrects one by hand: applied like any other change.
        self.psql("UPDATE reservations SET \"preferredTime\" = '3:00 p.m.' WHERE \"id\" = 'r-15'")
        self.wait_caught_up(apply)
        self.assertEqual(self.psql('SELECT "period"::text FROM reservations WHERE "id" = \'r-15\''),
                         [("AFTERNOON",)])
        self.assert_verify_matches()

        # Then the mapping is fixed to read "ASAP" as a morning, and the dead letters retried:
        # r-15's is older than the correction applied since, so it must not put MORNING back
        # over AFTERNOON; the two others still cannot be read and fail again.
        fixed_doc = mapping("reservations")
        target(fixed_doc, "reservation_periods")["columns"]["period"] = {"map": {
            "value": {"upper": {"trim": "$preferredTime"}}, "cases": {"ASAP": "MORNING"},
            "default": {"parse_period": "$preferredTime"}}}
        fixed = dstest.write_mapping(os.path.join(self.work_dir, "reservations.json"), fixed_doc)
        cfg = self.apply_config(
            {"clinic": self.db}, [fixed if p.endswith("/reservations.json") else p
                                  for p in MAPPING_FILES],
            self.capture_cfg.topic_prefix, apply={"on_error": "dlq"})
        proc = dstest.run_dualsync(["dlq", "retry", "--config", cfg.path])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout.strip(),
                         "0 dead letters applied, 2 failed again (published again with attempts "
                         "+ 1), 1 superseded (a newer change of the same source row was applied "
                         "since; not written)")
        self.assertEqual(self.psql('SELECT "id", "period"::text FROM reservations '
                                   'WHERE "id" IN (\'r-15\', \'r-16\', \'r-17\') ORDER BY 1'),
                         [("r-15", "AFTERNOON"), ("r-16", None), ("r-17", None)])
