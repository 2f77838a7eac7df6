"""apply: a child that arrives before its parent waits in dualsync.pending and converges once
the parent arrives, with no dead letter. Two ways to wait, in two target databases:
  - newdb: doctors.clinic_id has a foreign key to clinics (the write fails with SQLSTATE 23503;
    the batch is redone message by message in savepoints);
  - cards: doctor_cards.clinic_name is a "required" lookup of clinic_names (the statement
    answers applied = false; no error, the batch commits in one go).
The newest change of a waiting key replaces the older one, and a waiting change whose row is
deleted meanwhile is dropped rather than resurrected.
"""

import json
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


class PendingVisibleTest(dstest.ApplyTestCase):
    """Nothing waits unseen: `dualsync pending list` names each waiting change, why it waits
    (the lookup that finds no parent, with the value it looks up) and for how long;
    apply.pending_timeout turns a change that waits too long into a dead letter; verify
    shows the keys of the rows that wait."""

    def setUp(self):
        super().setUp()
        self.psql(
            "DROP TABLE IF EXISTS legacy_clinics, legacy_doctors;"
            "CREATE TABLE legacy_clinics (id int PRIMARY KEY, name text);"
            "CREATE TABLE legacy_doctors (id int PRIMARY KEY, clinic_id int, name text);"
        )
        self.newdb = self.target_database("pending_new")
        self.cards = self.target_database("pending_cards")
        self.psql(
            "CREATE TABLE clinics (id int PRIMARY KEY, name text);"
            "CREATE TABLE doctors (id int PRIMARY KEY, clinic_id int REFERENCES clinics (id),"
            " name text)",
            db=self.newdb,
        )
        self.psql(
            "CREATE TABLE clinic_names (id int PRIMARY KEY, name text);"
            "CREATE TABLE doctor_cards (doctor_id int PRIMARY KEY, clinic_name text NOT NULL)",
            db=self.cards,
        )
        self.capture_cfg, _ = self.start_streaming_capture(
            ["public.legacy_clinics", "public.legacy_doctors"]
        )
        self.doctors_topic = self.capture_cfg.topic("public.legacy_doctors")

    def config(self, **apply):
        return self.apply_config(
            {"newdb": self.newdb, "cards": self.cards},
            [CLINICS_MAPPING, DOCTORS_MAPPING],
            self.capture_cfg.topic_prefix,
            apply=dict({"batch_max_ms": 20}, **apply),
            source=self.capture_cfg.data["source"],
        )

    def pending_list(self, cfg, *args):
        proc = dstest.run_dualsync(["pending", "list", "--config", cfg.path] + list(args))
        self.assertEqual(proc.returncode, 0, f"dualsync pending list: {proc.stderr}")
        return proc

    def test_pending_list_names_each_waiting_change_its_reason_and_age(self):
        cfg = self.config()
        proc = dstest.run_dualsync(["pending", "list", "--help"])
        self.assertEqual(proc.returncode, 0)
        self.assertIn("Usage: dualsync pending list --config FILE [--json]", proc.stdout)
        self.assertEqual(dstest.run_dualsync(["pending", "list"]).returncode, 2)
        # Nothing has waited yet (no dualsync schema at all): an empty list, at once.
        proc = self.pending_list(cfg)
        self.assertEqual((proc.stdout, proc.stderr.strip()), ("", "0 pending changes"))

        apply = self.start_apply(cfg)
        self.psql("INSERT INTO legacy_doctors VALUES (1, 10, 'Ann')")
        for db in (self.newdb, self.cards):
            self.wait_rows(db, "SELECT source_key FROM dualsync.pending", [('{"id":1}',)],
                           what=f"doctor 1 to wait in {db}")

        lines = [json.loads(l) for l in self.pending_list(cfg, "--json").stdout.splitlines()]
        by_target = {l["target"]: l for l in lines}
        self.assertEqual(sorted(by_target), ["apply_doctors/cards", "apply_doctors/doctors"])
        card = by_target["apply_doctors/cards"]
        self.assertEqual(
            {k: card[k] for k in ("database", "topic", "partition", "offset", "key")},
            {"database": "cards", "topic": self.doctors_topic, "partition": 0, "offset": 0,
             "key": {"id": 1}},
        )
        # Which lookup finds no parent, and the value it looks up.
        self.assertIn('required lookup of "public"."clinic_names" ("id" = \'10\') found no row',
                      card["reason"])
        self.assertIn("apply_doctors.json", card["reason"])
        self.assertIsInstance(card["age_s"], int)
        self.assertGreaterEqual(card["age_s"], 0)
        self.assertRegex(card["waiting_since"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        # A foreign key (no lookup to ask): the database's own words, naming the value.
        doctor = by_target["apply_doctors/doctors"]
        self.assertEqual(doctor["database"], "newdb")
        self.assertIn("clinic_id", doctor["reason"])
        self.assertIn("10", doctor["reason"])

        text = self.pending_list(cfg)
        self.assertIn(
            f"cards  apply_doctors/cards  {self.doctors_topic} [0] @0  key={{\"id\":1}}  waiting ",
            text.stdout,
        )
        self.assertIn('("id" = \'10\') found no row', text.stdout)
        self.assertEqual(text.stderr.strip(), "2 pending changes")

        # verify shows which rows wait, not only how many. (Only the lookup's target: the
        # rebuild's shadow tables have no foreign keys, so the other is not seen waiting.)
        proc = dstest.run_dualsync(["verify", "--config", cfg.path, "--json"])
        targets = {t["target"]: t for t in json.loads(proc.stdout)["targets"]}
        card = targets["apply_doctors/cards"]
        self.assertEqual((card["match"], card["pending"], card["samples"]["pending"]),
                         (True, 1, [{"id": 1}]))
        proc = dstest.run_dualsync(["verify", "--config", cfg.path])
        self.assertIn('    pending (source keys): {"id":1}\n', proc.stdout)
        apply.stop(expect_exit=0)

    def test_pending_timeout_makes_a_waiting_change_a_dead_letter_to_retry(self):
        cfg = self.config(pending_timeout="2s")
        apply = self.start_apply(cfg)
        self.psql("INSERT INTO legacy_doctors VALUES (1, 10, 'Ann')")
        # A parent that never comes: after apply.pending_timeout the change is a dead letter
        # of each target it waited for, and waits no more.
        letters = dstest.consume([cfg.dlq_topic], count=2, idle_ms=60000)
        by_target = {l["value"]["target"]: l["value"] for l in letters}
        self.assertEqual(sorted(by_target), ["apply_doctors/cards", "apply_doctors/doctors"])
        card = by_target["apply_doctors/cards"]
        self.assertEqual((card["topic"], card["offset"], card["key"]),
                         (self.doctors_topic, 0, {"id": 1}))
        self.assertIn("longer than apply.pending_timeout (2 s)", card["error"])
        self.assertIn('required lookup of "public"."clinic_names" ("id" = \'10\') found no row',
                      card["error"])
        self.assertIn("longer than apply.pending_timeout", by_target["apply_doctors/doctors"]["error"])
        for db in (self.newdb, self.cards):
            self.wait_rows(db, "SELECT source_key FROM dualsync.pending", [],
                           what=f"dualsync.pending of {db} to empty")
        self.assertIn("key {\"id\":1} target apply_doctors/cards", apply.log_text())
        listed = dstest.run_dualsync(["dlq", "list", "--config", cfg.path]).stdout
        self.assertIn("target=apply_doctors/cards", listed)

        # The parent arrives later: `dlq retry` writes the change.
        self.psql("INSERT INTO legacy_clinics VALUES (10, 'North')")
        self.wait_rows(self.cards, "SELECT id, name FROM clinic_names", [("10", "North")])
        proc = dstest.run_dualsync(["dlq", "retry", "--config", cfg.path])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout.strip(), "2 dead letters applied, 0 failed again")
        self.assertEqual(self.psql("SELECT doctor_id, clinic_name FROM doctor_cards", db=self.cards),
                         [("1", "North")])
        self.assertEqual(self.psql("SELECT id, clinic_id, name FROM doctors", db=self.newdb),
                         [("1", "10", "Ann")])
        apply.stop(expect_exit=0)
