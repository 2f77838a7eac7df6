"""apply's dead letters: a change the mapping rejects (a value the map does not know) and a
change the database rejects (a check constraint) go to the dead-letter topic and the rest goes
on; `dualsync dlq list` shows them; once the mapping (or the table) is fixed, `dualsync dlq
retry` applies them, and one that fails again is published again with "attempts" + 1.
"""

import json
import os
import shutil

import dstest
from test_apply_changes import PEOPLE_MAPPING, ApplyPeopleCase

PEOPLE_ROWS = "SELECT id, full_name, kind, visits FROM people ORDER BY id"


class ApplyDeadLetterTest(ApplyPeopleCase):
    def dlq(self, cfg, *args):
        proc = dstest.run_dualsync(["dlq"] + list(args) + ["--config", cfg.path])
        self.assertEqual(proc.returncode, 0, f"dualsync dlq {' '.join(args)}: {proc.stderr}")
        return proc.stdout

    def test_dead_letters_are_listed_and_retried_after_the_fix(self):
        # A copy of the mapping, to fix later; its stem names the target: "people/people".
        mapping = os.path.join(self.work_dir, "people.json")
        shutil.copyfile(PEOPLE_MAPPING, mapping)
        cfg = self.apply_config(
            {"newdb": self.newdb}, [mapping], self.capture_cfg.topic_prefix,
            apply={"batch_max_ms": 20},
        )
        # No dead-letter topic yet: nothing to list or retry, and both say so at once.
        self.assertEqual(self.dlq(cfg, "list"), "")
        self.assertEqual(self.dlq(cfg, "retry").strip(), "0 dead letters applied, 0 failed again")

        apply = self.start_apply(cfg)
        self.psql(
            "INSERT INTO legacy_people VALUES (1, 'Ann', 'a@x', 'D', 1), (2, 'Bo', 'b@x', 'X', 2),"
            " (3, 'Cy', 'c@x', 'N', 3)"
        )
        self.wait_rows(self.newdb, "SELECT id FROM people ORDER BY id", [("1",), ("3",)])

        # The dead letter: keyed like the change, the change inside, no target (the mapping
        # rejected it as a whole).
        [letter] = dstest.consume([cfg.dlq_topic], count=1)
        self.assertEqual(letter["key"], {"id": 2})
        dead = letter["value"]
        self.assertEqual(dead["topic"], self.topic)
        self.assertEqual(dead["partition"], 0)
        self.assertEqual(dead["offset"], 1)
        self.assertEqual(dead["key"], {"id": 2})
        self.assertEqual(dead["value"]["after"], {"id": 2, "name": "Bo", "email": "b@x",
                                                  "kind": "X", "visits": 2})
        self.assertIsNone(dead["target"])
        self.assertIn('"X"', dead["error"])
        self.assertIn("people.json", dead["error"])
        self.assertIsInstance(dead["ts_ms"], int)
        self.assertNotIn("attempts", dead)
        # Its offset is applied nevertheless: apply went on.
        self.assertEqual(dstest.stored_offsets(self.newdb, cfg.group_id), {(self.topic, 0): 3})

        listed = self.dlq(cfg, "list")
        self.assertIn(f"{self.topic} [0] @1  key={{\"id\":2}}  target=-  attempts=1", listed)
        self.assertIn(dead["error"], listed)
        [as_json] = [json.loads(line) for line in self.dlq(cfg, "list", "--json").splitlines()]
        self.assertEqual(as_json, dict(dead, dlq_partition=0, dlq_offset=0))

        # Fix the mapping (apply keeps running with its own copy of the old one), retry.
        with open(mapping, encoding="utf-8") as f:
            fixed = json.load(f)
        fixed["targets"][0]["columns"]["kind"]["map"]["cases"]["X"] = "EXTERNAL"
        dstest.write_mapping(mapping, fixed)
        self.assertEqual(self.dlq(cfg, "retry").strip(), "1 dead letters applied, 0 failed again")
        self.wait_rows(
            self.newdb,
            PEOPLE_ROWS,
            [("1", "Ann", "DOCTOR", "1"), ("2", "Bo", "EXTERNAL", "2"), ("3", "Cy", "NURSE", "3")],
            timeout=10,
        )
        # A dead letter is re-driven once: the retry group's offsets are in the database.
        self.assertEqual(self.dlq(cfg, "retry").strip(), "0 dead letters applied, 0 failed again")
        self.assertEqual(
            dstest.stored_offsets(self.newdb, f"{cfg.group_id}.dlq-retry"), {(cfg.dlq_topic, 0): 1}
        )
        apply.stop(expect_exit=0)

    def test_database_error_names_the_target_and_counts_attempts(self):
        cfg = self.people_apply_config(batch_max_ms=20)
        self.psql("ALTER TABLE people ADD CONSTRAINT few_visits CHECK (visits < 1000)", db=self.newdb)
        apply = self.start_apply(cfg)
        # One batch: the middle change breaks the constraint, the others must still land.
        self.psql(
            "BEGIN; INSERT INTO legacy_people VALUES (1, 'Ann', 'a@x', 'D', 1);"
            " INSERT INTO legacy_people VALUES (2, 'Bo', 'b@x', 'N', 5000);"
            " INSERT INTO legacy_people VALUES (3, 'Cy', 'c@x', 'P', 3); COMMIT;"
        )
        self.wait_rows(self.newdb, "SELECT id FROM people ORDER BY id", [("1",), ("3",)])
        [letter] = dstest.consume([cfg.dlq_topic], count=1)
        dead = letter["value"]
        self.assertEqual(dead["target"], "apply_people/people")
        self.assertTrue(dead["error"].startswith("SQLSTATE 23514: "), dead["error"])
        self.assertIn("few_visits", dead["error"])
        self.assertEqual(dead["key"], {"id": 2})

        # Not fixed yet: the retry fails again and says so.
        self.assertEqual(
            self.dlq(cfg, "retry").strip(),
            "0 dead letters applied, 1 failed again (published again with attempts + 1)",
        )
        letters = dstest.consume([cfg.dlq_topic], count=2)
        self.assertEqual(letters[1]["value"]["attempts"], 2)
        self.assertEqual(letters[1]["value"]["target"], "apply_people/people")
        self.assertEqual(letters[1]["key"], {"id": 2})
        self.assertIn("attempts=2", self.dlq(cfg, "list"))

        # Fixed: the second copy applies (the first was already handled).
        self.psql("ALTER TABLE people DROP CONSTRAINT few_visits", db=self.newdb)
        self.assertEqual(self.dlq(cfg, "retry").strip(), "1 dead letters applied, 0 failed again")
        self.wait_rows(
            self.newdb, "SELECT id, visits FROM people ORDER BY id",
            [("1", "1"), ("2", "5000"), ("3", "3")], timeout=10,
        )
        apply.stop(expect_exit=0)


class RetrySupersededTest(ApplyPeopleCase):
    """`dlq retry` never writes a dead letter over a newer change of the same source row: each
    target database records the dead letters it moved past (dualsync.dead_letters), a later
    change of the row removes the record, and a retry writes only what is still recorded."""

    def dlq(self, cfg, *args):
        proc = dstest.run_dualsync(["dlq"] + list(args) + ["--config", cfg.path])
        self.assertEqual(proc.returncode, 0, f"dualsync dlq {' '.join(args)}: {proc.stderr}")
        return proc.stdout

    RECORDS = (
        "SELECT target, source_key, kafka_offset FROM dualsync.dead_letters"
        " ORDER BY source_key, target"
    )

    def records(self):
        return self.psql(self.RECORDS, db=self.newdb)

    def wait_records(self, expected):
        # Recorded in the transaction that stores the offsets past the dead letters, which
        # commits just after the dead letters reach Kafka.
        self.wait_rows(self.newdb, self.RECORDS, expected, what="dualsync.dead_letters")

    def test_a_mapping_dead_letter_superseded_by_an_update_or_a_delete_is_not_written(self):
        mapping = os.path.join(self.work_dir, "people.json")
        shutil.copyfile(PEOPLE_MAPPING, mapping)
        cfg = self.apply_config(
            {"newdb": self.newdb}, [mapping], self.capture_cfg.topic_prefix,
            apply={"batch_max_ms": 20},
        )
        apply = self.start_apply(cfg)
        # Three changes the mapping rejects ("X" is not a kind it knows)...
        self.psql(
            "INSERT INTO legacy_people VALUES (2, 'Bo', 'b@x', 'X', 2), (4, 'Di', 'd@x', 'X', 4),"
            " (5, 'Ed', 'e@x', 'X', 5)"
        )
        dstest.consume([cfg.dlq_topic], count=3, idle_ms=30000)
        self.wait_records([("", '{"id":2}', "0"), ("", '{"id":4}', "1"), ("", '{"id":5}', "2")])
        # ...then two of the rows change again, and those changes are applied.
        self.psql("UPDATE legacy_people SET kind = 'N', visits = 20 WHERE id = 2")
        self.psql("DELETE FROM legacy_people WHERE id = 4")
        self.wait_rows(self.newdb, PEOPLE_ROWS, [("2", "Bo", "NURSE", "20")])
        dstest.wait_for(
            lambda: dstest.stored_offsets(self.newdb, cfg.group_id)
            == dstest.end_offsets([self.topic]),
            timeout=30, what="apply to move past the update and the delete",
        )
        self.assertEqual(self.records(), [("", '{"id":5}', "2")])

        # The mapping is fixed: only the dead letter nothing newer replaced is written; the
        # update is not undone and the deleted row does not come back.
        with open(mapping, encoding="utf-8") as f:
            fixed = json.load(f)
        fixed["targets"][0]["columns"]["kind"]["map"]["cases"]["X"] = "EXTERNAL"
        dstest.write_mapping(mapping, fixed)
        self.assertEqual(
            self.dlq(cfg, "retry").strip(),
            "1 dead letters applied, 0 failed again, 2 superseded (a newer change of the same "
            "source row was applied since; not written)",
        )
        self.assertEqual(
            self.psql(PEOPLE_ROWS, db=self.newdb),
            [("2", "Bo", "NURSE", "20"), ("5", "Ed", "EXTERNAL", "5")],
        )
        # Nothing is left to re-drive: the records are gone and a second retry does nothing.
        self.assertEqual(self.records(), [])
        self.assertEqual(self.dlq(cfg, "retry").strip(), "0 dead letters applied, 0 failed again")
        apply.stop(expect_exit=0)

    def test_a_dead_letter_of_one_target_superseded_by_an_update_is_not_written(self):
        """The reservation case: one target of a change rejected (its column unreadable) while
        the others are written, then the row corrected and applied; the fixed mapping's retry
        must not put the stale value back over the newer one."""
        self.psql("CREATE TABLE people_kinds (id int PRIMARY KEY, kind text)", db=self.newdb)
        with open(PEOPLE_MAPPING, encoding="utf-8") as f:
            people = json.load(f)
        people["targets"][0]["columns"]["kind"]["map"]["cases"]["X"] = "EXTERNAL"
        kinds = {"name": "kinds", "connection": "newdb", "table": "public.people_kinds",
                 "key": ["id"],
                 "columns": {"id": "$id", "kind": {"map": {"value": "$kind", "cases": {
                     "D": "DOCTOR", "N": "NURSE", "P": "PATIENT"}}}}}
        people["targets"].append(kinds)
        mapping = dstest.write_mapping(os.path.join(self.work_dir, "people.json"), people)
        cfg = self.apply_config({"newdb": self.newdb}, [mapping], self.capture_cfg.topic_prefix,
                                apply={"batch_max_ms": 20})
        apply = self.start_apply(cfg)
        self.psql("INSERT INTO legacy_people VALUES (2, 'Bo', 'b@x', 'X', 2)")
        [letter] = dstest.consume([cfg.dlq_topic], count=1, idle_ms=30000)
        self.assertEqual(letter["value"]["target"], "people/kinds")
        self.assertIs(letter["value"]["recorded"], True)
        self.wait_records([("people/kinds", '{"id":2}', "0")])
        self.wait_rows(self.newdb, "SELECT id, kind FROM people", [("2", "EXTERNAL")])
        self.assertEqual(self.psql("SELECT * FROM people_kinds", db=self.newdb), [])

        self.psql("UPDATE legacy_people SET kind = 'N' WHERE id = 2")
        self.wait_rows(self.newdb, "SELECT id, kind FROM people_kinds", [("2", "NURSE")])
        self.wait_records([])

        kinds["columns"]["kind"]["map"]["cases"]["X"] = "EXTERNAL"
        dstest.write_mapping(mapping, people)
        self.assertEqual(
            self.dlq(cfg, "retry").strip(),
            "0 dead letters applied, 0 failed again, 1 superseded (a newer change of the same "
            "source row was applied since; not written)",
        )
        self.assertEqual(self.psql("SELECT id, kind FROM people_kinds", db=self.newdb),
                         [("2", "NURSE")])
        apply.stop(expect_exit=0)

    def test_a_database_dead_letter_superseded_by_an_update_is_not_written(self):
        cfg = self.people_apply_config(batch_max_ms=20)
        self.psql("ALTER TABLE people ADD CONSTRAINT few_visits CHECK (visits < 1000)", db=self.newdb)
        apply = self.start_apply(cfg)
        self.psql("INSERT INTO legacy_people VALUES (2, 'Bo', 'b@x', 'N', 5000)")
        [letter] = dstest.consume([cfg.dlq_topic], count=1, idle_ms=30000)
        self.assertEqual(letter["value"]["target"], "apply_people/people")
        self.assertIs(letter["value"]["recorded"], True)
        self.wait_records([("apply_people/people", '{"id":2}', "0")])
        # The row is corrected in the legacy database; that change is applied.
        self.psql("UPDATE legacy_people SET visits = 7 WHERE id = 2")
        self.wait_rows(self.newdb, PEOPLE_ROWS, [("2", "Bo", "NURSE", "7")])
        self.assertEqual(self.records(), [])

        self.psql("ALTER TABLE people DROP CONSTRAINT few_visits", db=self.newdb)
        self.assertEqual(
            self.dlq(cfg, "retry").strip(),
            "0 dead letters applied, 0 failed again, 1 superseded (a newer change of the same "
            "source row was applied since; not written)",
        )
        self.assertEqual(self.psql(PEOPLE_ROWS, db=self.newdb), [("2", "Bo", "NURSE", "7")])
        apply.stop(expect_exit=0)

    def test_retry_counts_applied_and_failed_dead_letters_of_one_run(self):
        mapping = os.path.join(self.work_dir, "people.json")
        shutil.copyfile(PEOPLE_MAPPING, mapping)
        cfg = self.apply_config(
            {"newdb": self.newdb}, [mapping], self.capture_cfg.topic_prefix,
            apply={"batch_max_ms": 20},
        )
        apply = self.start_apply(cfg)
        self.psql("INSERT INTO legacy_people VALUES (2, 'Bo', 'b@x', 'X', 2), (3, 'Cy', 'c@x', 'Y', 3)")
        dstest.consume([cfg.dlq_topic], count=2, idle_ms=30000)
        self.wait_records([("", '{"id":2}', "0"), ("", '{"id":3}', "1")])
        # Only "X" is fixed: one dead letter applies, the other fails again.
        with open(mapping, encoding="utf-8") as f:
            fixed = json.load(f)
        fixed["targets"][0]["columns"]["kind"]["map"]["cases"]["X"] = "EXTERNAL"
        dstest.write_mapping(mapping, fixed)
        self.assertEqual(
            self.dlq(cfg, "retry").strip(),
            "1 dead letters applied, 1 failed again (published again with attempts + 1)",
        )
        self.assertEqual(self.psql(PEOPLE_ROWS, db=self.newdb), [("2", "Bo", "EXTERNAL", "2")])
        # The one that failed again is still recorded, with its own offset.
        self.assertEqual(self.records(), [("", '{"id":3}', "1")])
        apply.stop(expect_exit=0)
