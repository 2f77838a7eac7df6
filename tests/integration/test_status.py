"""`dualsync status`: the slot, the apply group's lag per partition, pending rows and dead
letters, read from PostgreSQL and Kafka directly (so it answers while the daemons are down).

  - with capture and apply running and a write load, every partition's lag is 0 once apply
    has caught up, and status exits 0; --watch repeats the view until SIGINT;
  - with apply stopped and more writes, the lag is exactly the number of new messages, and
    --max-lag-messages 0 makes it exit 1 naming the partition; seconds behind (the age of the
    oldest unapplied change, 0 when caught up) grows, and --max-seconds-behind 1 exits 1;
  - with capture stopped the slot is inactive (exit 1, named) and the WAL it retains grows
    as the source writes more;
  - a bad configuration or option exits 2.
"""

import json
import os
import pty
import select
import signal
import subprocess
import time

import dstest

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
PEOPLE_MAPPING = os.path.join(FIXTURES, "apply_people.json")

LEGACY_DDL = """
CREATE TABLE legacy_people (id int PRIMARY KEY, name text, email text, kind text, visits int);
"""
NEW_DDL = """
CREATE TABLE people (id int PRIMARY KEY, full_name text, email text, kind text NOT NULL,
                     visits int);
"""


def insert_people(first, count):
    """One transaction inserting @count people from id @first: @count messages."""
    return (
        "INSERT INTO legacy_people SELECT i, 'name ' || i, 'p' || i || '@example.com', 'D', i "
        f"FROM generate_series({first}, {first + count - 1}) AS i"
    )


class StatusTest(dstest.ApplyTestCase):
    def setUp(self):
        super().setUp()
        self.psql(LEGACY_DDL)
        self.newdb = self.target_database("status_new")
        self.psql(NEW_DDL, db=self.newdb)
        self.capture_cfg, self.capture = self.start_streaming_capture(["public.legacy_people"])
        self.topic = self.capture_cfg.topic("public.legacy_people")
        # One file with both sides, as an operator would keep it.
        self.config = self.apply_config(
            {"newdb": self.newdb}, [PEOPLE_MAPPING], self.capture_cfg.topic_prefix,
            source=self.capture_cfg.data["source"],
        )

    def status(self, *extra):
        proc = dstest.run_dualsync(["status", "--config", self.config.path, "--json"] + list(extra))
        try:
            doc = json.loads(proc.stdout)
        except ValueError:
            self.fail(f"status --json printed no JSON (exit {proc.returncode}):\n"
                      f"{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc.returncode, doc

    def topic_lags(self, doc):
        return [p["lag_messages"] for p in doc["partitions"] if p["topic"] == self.topic]

    def test_lag_is_zero_after_apply_catches_up_then_counts_new_messages(self):
        apply = self.start_apply(self.config)
        for n in range(5):
            self.psql(insert_people(1 + n * 10, 10))
        self.wait_rows(self.newdb, "SELECT count(*) FROM people", [("50",)], timeout=90)

        def caught_up():
            rc, doc = self.status()
            return doc if doc["partitions"] and all(l == 0 for l in self.topic_lags(doc)) else None

        dstest.wait_for(caught_up, timeout=60, what="status to show every lag at 0")
        rc, doc = self.status()
        self.assertEqual(rc, 0, doc)
        self.assertTrue(doc["healthy"])
        self.assertEqual(doc["problems"], [])
        self.assertTrue(doc["slot"]["exists"])
        self.assertTrue(doc["slot"]["active"])
        self.assertEqual(doc["group_id"], self.config.group_id)
        parts = [p for p in doc["partitions"] if p["topic"] == self.topic]
        self.assertEqual(sum(p["high_watermark"] for p in parts), 50)
        self.assertEqual({(p["topic"], p["partition"]): p["next_offset"] for p in parts
                          if p["next_offset"] is not None},
                         dstest.stored_offsets(self.newdb, self.config.group_id))
        self.assertEqual(len(doc["databases"]), 1)
        db = doc["databases"][0]
        self.assertEqual((db["name"], db["pending_rows"], db["dead_letter_records"]),
                         ("newdb", 0, 0))
        self.assertEqual(db["seconds_behind"], 0)
        self.assertEqual(doc["dead_letter_topic"]["topic"], self.config.dlq_topic)
        self.assertEqual(doc["dead_letter_topic"]["messages"], 0)

        # A file with one side shows that side alone.
        proc = dstest.run_dualsync(["status", "--config", self.capture_cfg.path, "--json"])
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        doc = json.loads(proc.stdout)
        self.assertTrue(doc["slot"]["active"])
        self.assertNotIn("partitions", doc)
        apply_only = self.apply_config({"newdb": self.newdb}, [PEOPLE_MAPPING],
                                       self.capture_cfg.topic_prefix)
        proc = dstest.run_dualsync(["status", "--config", apply_only.path, "--json"])
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        doc = json.loads(proc.stdout)
        self.assertNotIn("slot", doc)
        self.assertEqual(sum(self.topic_lags(doc)), 0)

        # --watch on a pipe: plain repeated documents until SIGINT, then the last status.
        out_path = os.path.join(self.work_dir, f"{self._test_slug}-watch.out")
        with open(out_path, "wb") as out:
            watch = subprocess.Popen(
                [dstest.ds_bin(), "status", "--config", self.config.path, "--watch", "1"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: watch.poll() is None and watch.kill())

        def views():
            with open(out_path, encoding="utf-8") as f:
                return f.read().count("dualsync status at ") >= 2

        dstest.wait_for(views, timeout=30, what="status --watch to show the view twice")
        watch.send_signal(signal.SIGINT)
        self.assertEqual(watch.wait(timeout=30), 0)

        # --watch on a terminal: each view redraws the screen in place (cursor home, clear).
        master, slave = pty.openpty()
        self.addCleanup(os.close, master)
        tty_watch = subprocess.Popen(
            [dstest.ds_bin(), "status", "--config", self.config.path, "--watch", "1"],
            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
        os.close(slave)
        self.addCleanup(lambda: tty_watch.poll() is None and tty_watch.kill())
        screen = bytearray()

        def redrawn_twice():
            while select.select([master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the other side closed
                    break
                if not chunk:
                    break
                screen.extend(chunk)
            return screen.count(b"\033[H\033[2J") >= 2

        dstest.wait_for(redrawn_twice, timeout=30, what="status --watch to redraw a terminal twice")
        last_view = bytes(screen).rsplit(b"\033[H\033[2J", 1)[1].decode("utf-8", "replace")
        self.assertTrue(last_view.startswith("dualsync status at "), last_view[:200])
        tty_watch.send_signal(signal.SIGINT)
        self.assertEqual(tty_watch.wait(timeout=30), 0)

        # ---- apply stopped: the new messages are the lag --------------------------------------
        self.assertEqual(apply.stop(timeout=60, expect_exit=0), 0)
        committed = time.time()
        self.psql(insert_people(1000, 7))
        dstest.wait_for(
            lambda: sum(dstest.end_offsets([self.topic]).values()) == 57,
            timeout=60, what="capture to publish the 7 new messages")
        rc, doc = self.status()
        self.assertEqual(rc, 0, doc)  # no threshold given: lag alone is not unhealthy
        self.assertEqual(sum(self.topic_lags(doc)), 7)
        rc, doc = self.status("--max-lag-messages", "0")
        self.assertEqual(rc, 1, doc)
        self.assertFalse(doc["healthy"])
        self.assertTrue(any("--max-lag-messages 0" in p and self.topic in p
                            for p in doc["problems"]), doc["problems"])
        rc, doc = self.status("--max-lag-messages", "7")
        self.assertEqual(rc, 0, doc)

        # Seconds behind: how long ago the oldest unapplied change was committed, so it grows
        # while apply is stopped (and was exactly 0 above, when nothing lagged).
        def behind():
            rc, doc = self.status()
            return doc["databases"][0]["seconds_behind"]

        dstest.wait_for(lambda: behind() >= 2, timeout=30, what="seconds behind to reach 2")
        self.assertLessEqual(behind(), time.time() - committed + 1)
        rc, doc = self.status("--max-seconds-behind", "1")
        self.assertEqual(rc, 1, doc)
        self.assertTrue(any('target database "newdb"' in p and "--max-seconds-behind 1" in p
                            for p in doc["problems"]), doc["problems"])
        rc, doc = self.status("--max-seconds-behind", "3600")
        self.assertEqual(rc, 0, doc)

        # ---- capture stopped: the slot is inactive and holds ever more WAL ---------------------
        self.assertEqual(self.capture.stop(timeout=60, expect_exit=0), 0)
        dstest.wait_for(lambda: not dstest.slot_info(self.capture_cfg.slot)["active"],
                        timeout=30, what="the slot to become inactive")
        rc, doc = self.status()
        self.assertEqual(rc, 1, doc)
        self.assertFalse(doc["slot"]["active"])
        self.assertTrue(any("inactive" in p and self.capture_cfg.slot in p
                            for p in doc["problems"]), doc["problems"])
        before = doc["slot"]["retained_wal_bytes"]
        self.assertIsInstance(before, int)
        self.psql(insert_people(2000, 2000))
        rc, doc = self.status()
        self.assertEqual(rc, 1, doc)
        self.assertGreater(doc["slot"]["retained_wal_bytes"], before + 100000)
        # The lag in messages did not change: nothing new reached Kafka.
        self.assertEqual(sum(self.topic_lags(doc)), 7)

        # The text view names the same problems.
        proc = dstest.run_dualsync(["status", "--config", self.config.path])
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        self.assertIn("UNHEALTHY", proc.stdout)
        self.assertIn(f'Replication slot "{self.capture_cfg.slot}": INACTIVE', proc.stdout)

        # A retained-WAL threshold above what the slot holds passes that check alone.
        rc, doc = self.status("--max-retained-wal", "1TB")
        self.assertFalse(any("--max-retained-wal" in p for p in doc["problems"]))
        rc, doc = self.status("--max-retained-wal", "1kB")
        self.assertTrue(any("--max-retained-wal 1024" in p for p in doc["problems"]),
                        doc["problems"])


class StatusConfigErrorTest(dstest.ServicesTestCase):
    def run_status(self, *args):
        return dstest.run_dualsync(["status"] + list(args))

    def test_bad_configuration_or_option_exits_2(self):
        proc = self.run_status("--config", os.path.join(self.work_dir, "no-such-file.json"))
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("no-such-file.json", proc.stderr)

        cfg = self.capture_config(["public.t"], capture={"no_such_setting": 1})
        proc = self.run_status("--config", cfg.path)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("no_such_setting", proc.stderr)

        missing_mapping = os.path.join(self.work_dir, "missing-mapping.json")
        apply_cfg = dstest.write_apply_config(
            os.path.join(self.work_dir, "status-apply.json"), {"newdb": self.db},
            [missing_mapping], "ds.status.bad")
        proc = self.run_status("--config", apply_cfg.path)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("missing-mapping.json", proc.stderr)

        good = self.capture_config(["public.t"])
        for option in (["--max-lag-messages", "many"], ["--max-retained-wal", "2 potatoes"],
                       ["--max-seconds-behind", "-1"],
                       ["--watch=0"], ["--no-such-option"]):
            proc = self.run_status("--config", good.path, *option)
            self.assertEqual(proc.returncode, 2, (option, proc.stderr))
