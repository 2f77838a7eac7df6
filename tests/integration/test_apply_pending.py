"""apply: a child that arrives before its parent waits in dualsync.pending and converges once
the parent arrives, with no dead letter. Two ways to wait, in two target databases:
  - newdb: doctors.clinic_id has a foreign key to clinics (the write fails with SQLSTATE 23503;
    the batch is redone message by message in savepoints);
  - cards: doctor_cards.clinic_name is a "required" lookup of clinic_names (the statement
    answers applied = false; no error, the batch commits in one go).
The newest change of a waiting key replaces the older one, and a waiting change whose row is
deleted meanwhile is dropped rather than resurrected.
"""

import os

import dstest
from test_apply_changes import FIXTURES

CLINICS_MAPPING = os.path.join(FIXTURES, "apply_clinics.json")
DOCTORS_MAPPING = os.path.join(FIXTURES, "apply_doctors.json")

PENDING = "SELECT target, source_key, value::json->'after'->>'name' FROM dualsync.pending ORDER BY target, source_key"


class ApplyPendingTest(dstest.ApplyTestCase):
    def test_child_before_parent_waits_in_pending_then_converges(self):
        self.psql(
            "CREATE TABLE legacy_clinics (id int PRIMARY KEY, name text);"
            "CREATE TABLE legacy_doctors (id int PRIMARY KEY, clinic_id int, name text);"
        )
        newdb = self.target_database("pending_new")
        cards = self.target_database("pending_cards")
        self.psql(
            "CREATE TABLE clinics (id int PRIMARY KEY, name text);"
            "CREATE TABLE doctors (id int PRIMARY KEY, clinic_id int REFERENCES clinics (id),"
            " name text)",
            db=newdb,
        )
        self.psql(
            "CREATE TABLE clinic_names (id int PRIMARY KEY, name text);"
            "CREATE TABLE doctor_cards (doctor_id int PRIMARY KEY, clinic_name text NOT NULL)",
            db=cards,
        )
        capture_cfg, _ = self.start_streaming_capture(["public.legacy_clinics", "public.legacy_doctors"])
        cfg = self.apply_config(
            {"newdb": newdb, "cards": cards},
            [CLINICS_MAPPING, DOCTORS_MAPPING],
            capture_cfg.topic_prefix,
            apply={"batch_max_ms": 20},
        )
        doctors_topic = capture_cfg.topic("public.legacy_doctors")
        apply = self.start_apply(cfg)

        # Two doctors of clinics that do not exist yet.
        self.psql("INSERT INTO legacy_doctors VALUES (1, 10, 'Ann'), (2, 20, 'Bo')")
        self.wait_rows(
            newdb, PENDING,
            [("apply_doctors/doctors", '{"id":1}', "Ann"), ("apply_doctors/doctors", '{"id":2}', "Bo")],
            what="both doctors to wait for their clinic in newdb",
        )
        self.wait_rows(
            cards, PENDING,
            [("apply_doctors/cards", '{"id":1}', "Ann"), ("apply_doctors/cards", '{"id":2}', "Bo")],
            what="both doctors to wait for their clinic in cards",
        )
        self.assertEqual(self.psql("TABLE doctors", db=newdb), [])
        self.assertEqual(self.psql("TABLE doctor_cards", db=cards), [])
        # Waiting is not failing: the offsets moved past the changes.
        for db in (newdb, cards):
            self.assertEqual(
                dstest.stored_offsets(db, cfg.group_id).get((doctors_topic, 0)), 2
            )

        # A newer change of a waiting doctor replaces the older; a deleted one stops waiting.
        self.psql("UPDATE legacy_doctors SET name = 'Ann B' WHERE id = 1")
        self.psql("DELETE FROM legacy_doctors WHERE id = 2")
        for db, target in ((newdb, "apply_doctors/doctors"), (cards, "apply_doctors/cards")):
            self.wait_rows(db, PENDING, [(target, '{"id":1}', "Ann B")],
                           what=f"the pending rows of {db} to follow the changes")

        # The parents arrive: the waiting doctor converges; the deleted one never appears.
        self.psql("INSERT INTO legacy_clinics VALUES (10, ' North '), (20, 'South')")
        self.wait_rows(newdb, "SELECT id, clinic_id, name FROM doctors", [("1", "10", "Ann B")])
        self.wait_rows(cards, "SELECT doctor_id, clinic_name FROM doctor_cards", [("1", "North")])
        for db in (newdb, cards):
            self.wait_rows(db, PENDING, [], what=f"dualsync.pending of {db} to empty")
        # A parent written by someone else than apply (a backfill) is found too: waiting
        # changes are retried every few seconds even when apply writes nothing there.
        self.psql("INSERT INTO legacy_doctors VALUES (3, 30, 'Cy')")
        for db in (newdb, cards):
            self.wait_rows(db, "SELECT source_key FROM dualsync.pending", [('{"id":3}',)],
                           what=f"doctor 3 to wait in {db}")
        self.psql("INSERT INTO clinics VALUES (30, 'West')", db=newdb)
        self.psql("INSERT INTO clinic_names VALUES (30, 'West')", db=cards)
        self.wait_rows(newdb, "SELECT id, clinic_id, name FROM doctors ORDER BY id",
                       [("1", "10", "Ann B"), ("3", "30", "Cy")], timeout=30)
        self.wait_rows(cards, "SELECT doctor_id, clinic_name FROM doctor_cards ORDER BY 1",
                       [("1", "North"), ("3", "West")], timeout=30)
        for db in (newdb, cards):
            self.wait_rows(db, PENDING, [], what=f"dualsync.pending of {db} to empty again")

        # Nothing went to the dead letters.
        self.assertEqual(
            dstest.consume([cfg.dlq_topic], idle_ms=500, timeout_ms=3000, check=False), []
        )
        self.assertNotIn("dead letter", apply.log_text())
        apply.stop(expect_exit=0)
