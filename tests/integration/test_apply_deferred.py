"""apply: one change that writes two targets referencing each other through a DEFERRABLE
INITIALLY DEFERRED foreign key is applied as a whole wherever it is written one message at a
time: in the slow path (a batch redone message by message) and in the retry of
dualsync.pending.

The fixture is the clinic's global/clinic patients in small: legacy_members rows write
"globals" (keyed by the phone number: a new phone moves the member to another globals row, and
the old one, left without a link, is deleted) and "members" (whose phone references globals,
deferred). Alone, each of the two writes of a phone change breaks the reference (the old
globals row is deleted while the member still points to it; the member points to a globals row
written by the other target); together they do not.
"""

import os

import dstest

PENDING = "SELECT target, source_key FROM dualsync.pending ORDER BY target, source_key"
GLOBALS = "SELECT phone, name FROM globals ORDER BY phone"
MEMBERS = "SELECT id, phone, club_id, name FROM members ORDER BY id"
SCORES = "SELECT member_id, score FROM scores ORDER BY member_id"

TARGET_SCHEMA = (
    "CREATE TABLE globals (phone text PRIMARY KEY, name text NOT NULL);"
    "CREATE TABLE clubs (id int PRIMARY KEY, name text);"
    "CREATE TABLE members (id int PRIMARY KEY,"
    " phone text NOT NULL REFERENCES globals (phone) DEFERRABLE INITIALLY DEFERRED,"
    " club_id int REFERENCES clubs (id), name text);"
    "CREATE TABLE scores (member_id int PRIMARY KEY,"
    " score int CONSTRAINT low_score CHECK (score < 1000));"
)

MEMBERS_MAPPING = {
    "source": "public.legacy_members",
    "targets": [
        {
            "name": "globals",
            "connection": "newdb",
            "table": "public.globals",
            "key": ["phone"],
            "columns": {"phone": "$phone", "name": "$name"},
        },
        {
            "name": "members",
            "connection": "newdb",
            "table": "public.members",
            "key": ["id"],
            "columns": {"id": "$id", "phone": "$phone", "club_id": "$club_id", "name": "$name"},
        },
        {
            "name": "scores",
            "connection": "newdb",
            "table": "public.scores",
            "key": ["member_id"],
            "columns": {"member_id": "$id", "score": "$score"},
        },
    ],
}

CLUBS_MAPPING = {
    "source": "public.legacy_clubs",
    "targets": [
        {
            "name": "clubs",
            "connection": "newdb",
            "table": "public.clubs",
            "key": ["id"],
            "columns": {"id": "$id", "name": "$name"},
        }
    ],
}


class ApplyDeferredTest(dstest.ApplyTestCase):
    def setUp(self):
        super().setUp()
        self.psql(
            "DROP TABLE IF EXISTS legacy_members, legacy_clubs;"
            "CREATE TABLE legacy_members (id int PRIMARY KEY, phone text, name text, score int,"
            " club_id int);"
            "CREATE TABLE legacy_clubs (id int PRIMARY KEY, name text);"
        )
        self.newdb = self.target_database("deferred_new")
        self.psql(TARGET_SCHEMA, db=self.newdb)
        # The stems name the targets: "dmembers/globals", ...
        self.mappings = [
            dstest.write_mapping(os.path.join(self.work_dir, "dmembers.json"), MEMBERS_MAPPING),
            dstest.write_mapping(os.path.join(self.work_dir, "dclubs.json"), CLUBS_MAPPING),
        ]
        self.capture_cfg, _ = self.start_streaming_capture(
            ["public.legacy_members", "public.legacy_clubs"]
        )
        self.members_topic = self.capture_cfg.topic("public.legacy_members")

    def config(self, **apply):
        return self.apply_config(
            {"newdb": self.newdb}, self.mappings, self.capture_cfg.topic_prefix, apply=apply
        )

    def test_slow_path_applies_both_targets_of_a_phone_change_together(self):
        cfg = self.config(batch_max_messages=100000, batch_max_ms=1000)
        self.psql(
            "INSERT INTO legacy_clubs VALUES (10, 'Chess');"
            "INSERT INTO legacy_members VALUES (1, '111', 'Ann', 5, 10), (2, '222', 'Bo', 7, 10)"
        )
        apply = self.start_apply(cfg)
        self.wait_rows(self.newdb, GLOBALS, [("111", "Ann"), ("222", "Bo")])
        self.wait_rows(self.newdb, MEMBERS, [("1", "111", "10", "Ann"), ("2", "222", "10", "Bo")])
        apply.stop(expect_exit=0)
        self.assertEqual(
            dstest.stored_offsets(self.newdb, cfg.group_id).get((self.members_topic, 0)), 2
        )

        # One source transaction: Ann's new phone, and Bo's score that breaks low_score. Both
        # are in Kafka before apply starts, so they arrive in one batch: the batch fails on the
        # score and is redone message by message.
        self.psql(
            "BEGIN; UPDATE legacy_members SET phone = '333' WHERE id = 1;"
            " UPDATE legacy_members SET score = 5000 WHERE id = 2; COMMIT"
        )
        dstest.wait_for(
            lambda: dstest.end_offsets([self.members_topic]).get((self.members_topic, 0)) == 4,
            timeout=30, what="both changes to be in Kafka",
        )
        apply = self.start_apply(cfg)

        # The batch's offsets committed with the slow path's work: everything is decided.
        dstest.wait_for(
            lambda: dstest.stored_offsets(self.newdb, cfg.group_id).get((self.members_topic, 0))
            == 4,
            timeout=60, what="apply to commit the batch",
        )
        self.assertEqual(self.psql(PENDING, db=self.newdb), [])
        self.assertEqual(self.psql(GLOBALS, db=self.newdb), [("222", "Bo"), ("333", "Ann")])
        self.assertEqual(
            self.psql(MEMBERS, db=self.newdb),
            [("1", "333", "10", "Ann"), ("2", "222", "10", "Bo")],
        )
        # Bo's change: its globals and members writes applied, its scores write dead-lettered.
        self.assertEqual(self.psql(SCORES, db=self.newdb), [("1", "5"), ("2", "7")])
        [letter] = dstest.consume([cfg.dlq_topic], count=1)
        dead = letter["value"]
        self.assertEqual(letter["key"], {"id": 2})
        self.assertEqual(dead["target"], "dmembers/scores")
        self.assertTrue(dead["error"].startswith("SQLSTATE 23514: "), dead["error"])
        self.assertIn("low_score", dead["error"])
        self.assertEqual(dead["offset"], 3)
        apply.stop(expect_exit=0)

    def test_pending_targets_of_one_change_are_retried_together(self):
        cfg = self.config(batch_max_ms=20)
        self.psql("INSERT INTO legacy_members VALUES (1, '111', 'Ann', 5, NULL)")
        apply = self.start_apply(cfg)
        self.wait_rows(self.newdb, MEMBERS, [("1", "111", None, "Ann")])

        # A new phone and a club that has not arrived: the members write waits for its club
        # (an immediate foreign key); the globals write alone would delete the row the member
        # still points to, so it waits too.
        self.psql("UPDATE legacy_members SET phone = '333', club_id = 20 WHERE id = 1")
        self.wait_rows(
            self.newdb, PENDING,
            [("dmembers/globals", '{"id":1}'), ("dmembers/members", '{"id":1}')],
            what="both targets of the phone change to wait",
        )
        self.assertEqual(self.psql(GLOBALS, db=self.newdb), [("111", "Ann")])
        self.assertEqual(self.psql(MEMBERS, db=self.newdb), [("1", "111", None, "Ann")])

        # The club arrives: the two waiting targets are written together and converge.
        self.psql("INSERT INTO legacy_clubs VALUES (20, 'Go')")
        self.wait_rows(self.newdb, MEMBERS, [("1", "333", "20", "Ann")],
                       what="the waiting member to converge")
        self.assertEqual(self.psql(GLOBALS, db=self.newdb), [("333", "Ann")])
        self.wait_rows(self.newdb, PENDING, [], what="dualsync.pending to empty")
        self.assertEqual(dstest.consume([cfg.dlq_topic], timeout_ms=3000, check=False), [])
        apply.stop(expect_exit=0)
