"""Identical rows of a legacy table without a primary key (REPLICA IDENTITY FULL), against a
real PostgreSQL 15 and Kafka with real capture and apply.

Capture keys such a table by all its columns, so two identical rows share one message key
and one link. The target row they produce must stay while any copy of it remains:
  - deleting one of two identical rows (read by the initial backfill, or inserted while
    capture streams) keeps the target row; deleting the last one removes it;
  - an update of one copy moves one copy: the old row stays while its other copy remains;
  - identical rows inserted by interleaved transactions (the first to insert commits last,
    so its change has the smaller LSN but comes second) both count;
  - capture killed and restarted from a slot position before changes it had already
    published sends them again, as new messages with the same content: they are not
    counted twice;
and `dualsync verify` (a from-scratch rebuild) exits 0 at every step.
"""

import os
import subprocess

import dstest

ROWS_QUERY = "SELECT n, msg FROM dup_rows ORDER BY n, msg"


class KeylessDuplicatesTest(dstest.ApplyTestCase):
    def setUp(self):
        super().setUp()
        self.table = dstest.unique_name(f"dups_{self._testMethodName}"[:40])
        self.psql(f"CREATE TABLE {self.table} (n int, msg text);"
                  f"ALTER TABLE {self.table} REPLICA IDENTITY FULL")
        self.newdb = self.target_database("dups")
        dstest.psql("CREATE TABLE dup_rows (n int, msg text, PRIMARY KEY (n, msg))",
                    db=self.newdb)
        self.mapping = dstest.write_mapping(
            os.path.join(self.work_dir, f"{self.table}.json"), {
                "source": f"public.{self.table}",
                "targets": [{
                    "name": "rows", "connection": "newdb", "table": "public.dup_rows",
                    "key": ["n", "msg"], "columns": {"n": "$n", "msg": "$msg"},
                }],
            })

    def apply_config_for(self, capture_cfg, set_based=True):
        return self.apply_config({"newdb": self.newdb}, [self.mapping], capture_cfg.topic_prefix,
                                 source=capture_cfg.data["source"],
                                 apply={"set_based": set_based, "batch_max_ms": 20})

    def verify(self, config, what):
        """Runs verify, which first waits until apply has passed the source's current
        position: after it the target holds every change made so far."""
        proc = dstest.run_dualsync(["verify", "--config", config.path], timeout=180)
        self.assertEqual(proc.returncode, 0, f"{what}: verify:\n{proc.stdout}\n{proc.stderr}")

    def delete_one(self, n, msg):
        self.psql(f"DELETE FROM {self.table} WHERE ctid = (SELECT ctid FROM {self.table} "
                  f"WHERE n = {n} AND msg = '{msg}' LIMIT 1)")

    def copies(self, n, msg):
        return int(dstest.psql_value(
            f"SELECT count(*) FROM {self.table} WHERE n = {n} AND msg = '{msg}'", db=self.db))

    def step(self, config, what, expected):
        self.verify(config, what)
        self.assertEqual(dstest.psql(ROWS_QUERY, db=self.newdb), expected, what)

    def run_copies(self, set_based):
        # Two identical rows read by the initial backfill, then more inserted while streaming.
        self.psql(f"INSERT INTO {self.table} VALUES (3, 'z'), (3, 'z')")
        capture_cfg = self.capture_config([f"public.{self.table}"])
        self.start_capture(capture_cfg)
        config = self.apply_config_for(capture_cfg, set_based)
        self.start_apply(config)
        self.psql(f"INSERT INTO {self.table} VALUES (1, 'x'), (1, 'x'), (2, 'y')")
        self.step(config, "inserted", [("1", "x"), ("2", "y"), ("3", "z")])

        self.delete_one(1, "x")
        self.assertEqual(self.copies(1, "x"), 1)
        self.step(config, "one of two (1, x) deleted", [("1", "x"), ("2", "y"), ("3", "z")])
        self.delete_one(1, "x")
        self.step(config, "both (1, x) deleted", [("2", "y"), ("3", "z")])

        # Copies read by the backfill count as copies too.
        self.delete_one(3, "z")
        self.step(config, "one of two (3, z) deleted", [("2", "y"), ("3", "z")])
        self.psql(f"INSERT INTO {self.table} VALUES (3, 'z')")
        # An update of one copy moves that copy only.
        self.psql(f"UPDATE {self.table} SET n = 4, msg = 'w' WHERE ctid = "
                  f"(SELECT ctid FROM {self.table} WHERE n = 3 LIMIT 1)")
        self.step(config, "one of two (3, z) updated to (4, w)",
                  [("2", "y"), ("3", "z"), ("4", "w")])
        self.psql(f"UPDATE {self.table} SET n = 4, msg = 'w' WHERE n = 3")
        self.step(config, "the other (3, z) updated to (4, w)", [("2", "y"), ("4", "w")])
        self.delete_one(4, "w")
        self.step(config, "one of two (4, w) deleted", [("2", "y"), ("4", "w")])
        self.delete_one(4, "w")
        self.step(config, "both (4, w) deleted", [("2", "y")])

    def test_identical_rows_keep_their_target_row_until_the_last_goes_row_by_row(self):
        self.run_copies(set_based=False)

    def test_identical_rows_keep_their_target_row_until_the_last_goes_set_based(self):
        self.run_copies(set_based=True)

    def insert_interleaved(self, n, msg):
        """Transaction A inserts (n, msg) first but commits after B inserts it: A's change has
        the smaller LSN and comes second in the topic."""
        e = dstest.env()
        a = subprocess.Popen(
            [os.path.join(e["DS_PG_BIN"], "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
             "-h", e["PGHOST"], "-p", str(e["PGPORT"]), "-U", e["PGUSER"], "-d", self.db],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, PGAPPNAME="dups_first_in"))
        self.addCleanup(a.kill)
        a.stdin.write(f"BEGIN;\nINSERT INTO {self.table} VALUES ({n}, '{msg}');\n")
        a.stdin.flush()
        dstest.wait_for(lambda: dstest.psql_value(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dups_first_in' "
            "AND backend_xid IS NOT NULL") == "1", timeout=30, what="transaction A to insert")
        self.psql(f"INSERT INTO {self.table} VALUES ({n}, '{msg}')")
        a.stdin.write("COMMIT;\n")
        a.stdin.close()
        self.assertEqual(a.wait(timeout=30), 0, a.stderr.read())
        self.assertEqual(self.copies(n, msg), 2)

    def test_identical_rows_of_interleaved_transactions_both_count(self):
        # A copy all the same, not a change sent again: once as capture's first transaction
        # (no previous commit LSN in source.sequence), once later.
        capture_cfg = self.capture_config([f"public.{self.table}"])
        self.start_capture(capture_cfg)
        config = self.apply_config_for(capture_cfg)
        self.start_apply(config)
        self.insert_interleaved(5, "v")
        self.step(config, "two copies of (5, v)", [("5", "v")])
        self.insert_interleaved(6, "u")
        self.step(config, "two copies of (6, u)", [("5", "v"), ("6", "u")])
        for n, msg in ((5, "v"), (6, "u")):
            self.delete_one(n, msg)
            self.step(config, f"one of two ({n}, {msg}) deleted", [("5", "v"), ("6", "u")])
        self.delete_one(5, "v")
        self.delete_one(6, "u")
        self.step(config, "every copy deleted", [])

    def test_changes_capture_sends_again_after_kill_9_are_not_counted_twice(self):
        capture_cfg = self.capture_config([f"public.{self.table}"])
        cap = self.start_capture(capture_cfg)
        config = self.apply_config_for(capture_cfg)
        self.start_apply(config)
        self.psql(f"INSERT INTO {self.table} VALUES (2, 'y')")
        self.step(config, "started", [("2", "y")])

        # A slot at capture's position now: a capture restarted on it sends everything after
        # it again, as capture does after kill -9 when the slot had not confirmed it yet.
        replay = dstest.unique_name(f"r_{self._testMethodName}")
        self.psql(f"SELECT pg_copy_logical_replication_slot('{capture_cfg.slot}', '{replay}')")
        self.psql(f"INSERT INTO {self.table} VALUES (1, 'x')")
        self.psql(f"INSERT INTO {self.table} VALUES (1, 'x')")
        self.psql(f"INSERT INTO {self.table} VALUES (1, 'x'), (1, 'x')")
        self.delete_one(1, "x")
        self.step(config, "three copies of (1, x)", [("1", "x"), ("2", "y")])
        topic = capture_cfg.topic(f"public.{self.table}")
        sent = len(dstest.consume([topic], idle_ms=1000))

        cap.kill()
        replay_cfg = self.capture_config([f"public.{self.table}"], slot=replay,
                                         publication=capture_cfg.data["source"]["publication"],
                                         topic_prefix=capture_cfg.topic_prefix)
        self.start_capture(replay_cfg)
        replay_config = self.apply_config_for(replay_cfg)
        # Wait for the resent messages: 4 creates and a delete (with its tombstone) again.
        dstest.wait_for(lambda: len(dstest.consume([topic], idle_ms=1000)) >= sent + 6,
                        timeout=60, what="capture to send the changes again")
        self.step(replay_config, "changes sent again", [("1", "x"), ("2", "y")])

        self.assertEqual(self.copies(1, "x"), 3)
        for left in (2, 1):
            self.delete_one(1, "x")
            self.step(replay_config, f"{left} copies of (1, x) left", [("1", "x"), ("2", "y")])
        self.delete_one(1, "x")
        self.step(replay_config, "every copy of (1, x) deleted", [("2", "y")])


if __name__ == "__main__":
    import unittest

    unittest.main()
