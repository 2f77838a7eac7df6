"""The initial backfill of the clinic migration with the application writing throughout and
capture killed (SIGKILL) half way, then restarted: once apply has caught up, `dualsync verify`
finds every target exactly what the mappings give from the legacy tables (exit 0).

The topic-level guarantees (every row read once per attempt, deletes not resurrected) are
checked in test_backfill.py; this test checks the end result a user sees, through apply and
verify, with the clinic mappings' merges (a phone change moves a patient to another global
patient) in the write load.
"""

import os
import random
import threading

import dstest
from test_backfill import backfill_record
from test_verify import CLINIC, LEGACY_TABLES, MAPPING_FILES, read, verify

PATIENTS = 20000


class PatientWriter(threading.Thread):
    """The application: small transactions inserting, updating (names, phones: a new phone
    means another global patient) and deleting patients, until stopped."""

    def __init__(self, db):
        super().__init__(name="patient-writer", daemon=True)
        self.db = db
        self.rng = random.Random(5150)
        self.stop_event = threading.Event()
        self.batches = 0
        self.error = None
        self.next_id = 1

    def run(self):
        try:
            while not self.stop_event.is_set():
                self.one_transaction()
                self.batches += 1
        except Exception as e:  # reported by the test, not lost in the thread
            self.error = e

    def one_transaction(self):
        rng = self.rng
        sql = ["BEGIN;"]
        for _ in range(5):
            n = self.next_id
            self.next_id += 1
            sql.append(
                'INSERT INTO patients ("id", "clinicId", "name", "phone", "email", "dateOfBirth")'
                f" VALUES ('w-{n}', 'clinic-busan', 'Writer {n}', '010-7{n:03d}-{n % 10000:04d}',"
                f" 'w{n}@example.com', DATE '1990-01-01' + {n % 3000});"
            )
        for _ in range(5):
            g = rng.randint(1, PATIENTS)
            sql.append(
                f"UPDATE patients SET \"name\" = 'Renamed {g}', \"phone\" = '010-9{g:04d}-"
                f"{rng.randint(0, 9999):04d}' WHERE \"id\" = 'g-{g}';"
            )
        if self.next_id > 20:
            victim = rng.randint(1, self.next_id - 10)
            sql.append(f"DELETE FROM patients WHERE \"id\" = 'w-{victim}';")
        sql.append("COMMIT;")
        dstest.psql("\n".join(sql), db=self.db)

    def wait_batches(self, count, timeout=60):
        target = self.batches + count
        dstest.wait_for(lambda: self.batches >= target or self.error, timeout=timeout,
                        what=f"{count} more writer transactions")

    def stop(self):
        self.stop_event.set()
        self.join(timeout=60)


class BackfillVerifyTest(dstest.ApplyTestCase):
    def test_writes_and_a_kill_9_during_the_initial_backfill_then_verify_matches(self):
        self.psql(read(os.path.join(CLINIC, "legacy_schema.sql")))
        self.psql(read(os.path.join(CLINIC, "new_schema.sql")))
        self.psql(read(os.path.join(CLINIC, "legacy_seed.sql")))
        self.psql(
            'INSERT INTO patients ("id", "clinicId", "name", "phone", "email", "dateOfBirth")'
            " SELECT 'g-' || g, (ARRAY['clinic-seoul', 'clinic-busan', 'clinic-incheon'])[1 + g % 3],"
            " 'Patient ' || g, '010-5' || lpad(g::text, 4, '0') || '-' || lpad((g * 7 % 10000)::text, 4, '0'),"
            " 'p' || g || '@example.com', DATE '1950-01-01' + g % 20000"
            f" FROM generate_series(1, {PATIENTS}) g"
        )
        tables = ["public." + t for t in LEGACY_TABLES]
        slot = dstest.unique_name("s_bfv")
        publication = dstest.unique_name("p_bfv")
        prefix = f"ds.{self._test_slug}"
        # At most 100 unacknowledged records: the backfill waits for Kafka every 50 rows, so
        # it lasts long enough to be written to and killed in the middle.
        slow = self.capture_config(tables, slot=slot, publication=publication, topic_prefix=prefix,
                                   capture={"max_inflight_messages": 100})
        cap = self.start_capture(slow)
        dstest.wait_for(lambda: (backfill_record(self.db, slot) or {}).get("snapshot_lsn"),
                        timeout=60, what="the backfill to start")
        writer = PatientWriter(self.db)
        self.addCleanup(writer.stop_event.set)
        writer.start()
        apply_cfg = self.apply_config({"clinic": self.db}, MAPPING_FILES, prefix,
                                      apply={"on_error": "dlq"}, source=slow.data["source"])
        apply = self.start_apply(apply_cfg)

        self.consume([slow.topic("public.patients")], count=3000, timeout_ms=60000)
        cap.kill()
        first = backfill_record(self.db, slot)
        self.assertIsNotNone(first)
        self.assertFalse(first["completed"], "the backfill completed before the kill")
        writer.wait_batches(3)

        fast = self.capture_config(tables, slot=slot, publication=publication, topic_prefix=prefix)
        again = self.start_capture(fast)
        dstest.wait_for(lambda: (backfill_record(self.db, slot) or {}).get("completed"),
                        timeout=180, what="the backfill to complete after the restart")
        writer.wait_batches(5)
        writer.stop()
        self.assertIsNone(writer.error)
        self.assertIn(f'the initial backfill of slot "{slot}" did not complete', again.log_text())

        # verify waits for apply to pass the source's current position by itself.
        proc = verify(apply_cfg, timeout=240)
        self.assertEqual(proc.returncode, 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        self.assertIn("every target is what the mappings give", proc.stdout)
        patients = int(self.psql_value("SELECT count(*) FROM patients"))
        self.assertEqual(int(self.psql_value("SELECT count(*) FROM clinic_patients")), patients)
        self.assertGreater(patients, PATIENTS)
        apply.stop(expect_exit=0)
        again.stop(expect_exit=0)
