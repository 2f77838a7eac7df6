"""apply: several processes in one consumer group, against a real PostgreSQL 15 and Kafka.

- A process frozen (SIGSTOP) past its session timeout, while it holds a change it has read
  but not written, must not write it over what the partition's new owner applied since: the
  fence in dualsync.offsets rolls its commit back (consumers/applier.c, "The fence").
- Freezing either of two processes again and again under a write load changes nothing in
  the result: `dualsync verify` finds the targets equal to the mapping of the legacy rows.
- Two processes apply their own partitions at once, each under a replication origin of its
  own (none waits for the other's).
- A process killed with SIGKILL and restarted gets its partitions back in seconds (static
  group membership), not after the 45 s session timeout.
"""

import json
import os
import re
import signal
import threading
import time

import dstest
from test_apply_changes import LEGACY_DDL, NEW_DDL, PEOPLE_MAPPING, PEOPLE_QUERY, PeopleModel

OWNER_PID = re.compile(r"\(pid (\d+) on ")


class ApplyGroupCase(dstest.ApplyTestCase):
    """legacy_people captured into a topic of PARTITIONS partitions (created beforehand),
    applied into its own database by processes of one consumer group of its own."""

    PARTITIONS = 3

    def setUp(self):
        super().setUp()
        self.psql(LEGACY_DDL)
        self.newdb = self.target_database("people_group")
        self.psql(NEW_DDL, db=self.newdb)
        self.group = self.new_group("group")
        prefix = f"ds.{self._test_slug}"
        self.topic = f"{prefix}.public.legacy_people"
        dstest.create_topic(self.topic, partitions=self.PARTITIONS)
        self.capture_cfg, self.capture = self.start_streaming_capture(
            ["public.legacy_people"], topic_prefix=prefix
        )

    def group_config(self, kafka=None, log_level="info", **apply):
        return self.apply_config(
            {"newdb": self.newdb}, [PEOPLE_MAPPING], self.capture_cfg.topic_prefix,
            apply=dict({"group_id": self.group}, **apply), kafka=kafka, log_level=log_level,
        )

    def owners(self):
        """{partition: (pid of the process whose claim the row carries, next_offset)}."""
        if dstest.psql_value("SELECT to_regclass('dualsync.offsets') IS NULL", db=self.newdb) == "t":
            return {}
        rows = dstest.psql(
            "SELECT partition, owner, next_offset FROM dualsync.offsets "
            f"WHERE group_id = {dstest.quote_literal(self.group)}",
            db=self.newdb,
        )
        result = {}
        for partition, owner, next_offset in rows:
            match = OWNER_PID.search(owner or "")
            result[int(partition)] = (int(match.group(1)) if match else None, int(next_offset))
        return result

    def wait_owners(self, predicate, what, timeout=60):
        last = {}

        def check():
            last.clear()
            last.update(self.owners())
            return predicate({p: pid for p, (pid, _) in last.items()})

        try:
            dstest.wait_for(check, timeout=timeout, what=what, interval=0.2)
        except AssertionError as e:
            raise AssertionError(f"{e}; dualsync.offsets (partition: (owner pid, next)): {last}")

    def wait_both_own(self, a, b):
        self.wait_owners(
            lambda o: len(o) == self.PARTITIONS and {a.pid, b.pid} <= set(o.values()),
            f"processes {a.pid} and {b.pid} to hold partitions of {self.topic} each",
        )

    def assert_verify_counts_every_row(self, cfg, rows):
        """`dualsync verify` exits 0 and counts every legacy row in the target."""
        path = os.path.splitext(cfg.path)[0] + "-verify.json"
        with open(path, "w", encoding="utf-8") as f:
            json.dump(dict(cfg.data, source=self.capture_cfg.data["source"]), f)
        proc = dstest.run_dualsync(["verify", "--config", path, "--json", "--timeout-ms", "120000"],
                                   timeout=240)
        self.assertEqual(proc.returncode, 0, f"dualsync verify:\n{proc.stdout}\n{proc.stderr}")
        report = json.loads(proc.stdout)
        self.assertTrue(report["match"], proc.stdout)
        [target] = report["targets"]
        self.assertEqual(
            (target["expected"], target["present"], target["missing"], target["extra"],
             target["different"]),
            (rows, rows, 0, 0, 0),
            proc.stdout,
        )
        [mapping] = report["mappings"]
        self.assertEqual(mapping["rows"], rows, proc.stdout)


class FrozenProcessFenceTest(ApplyGroupCase):
    """The deterministic reproduction: A holds an update to v2 it has read and mapped but not
    written; frozen, it loses the partition to B, which applies v2 and then v3; A resumes and
    must not put v2 back.

    A is held at that point by apply's test hook DS_TEST_PAUSE_BEFORE_WRITE_MS (apply.c): a
    row lock cannot do it, since a process waiting on the database holds an open transaction
    whose row locks the new owner's writes would wait for."""

    PARTITIONS = 1

    def row(self):
        return self.psql("SELECT full_name FROM people WHERE id = 1", db=self.newdb)

    def start_with_env(self, cfg, **env):
        saved = dict(os.environ)
        os.environ.update(env)
        try:
            return self.start_apply(cfg)
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def sessions_idle(self, application_name):
        """Whether every session of @application_name on the target is out of a transaction."""
        states = dstest.psql(
            "SELECT state FROM pg_stat_activity WHERE application_name = "
            f"{dstest.quote_literal(application_name)} AND datname = {dstest.quote_literal(self.newdb)}"
        )
        return bool(states) and all(state == "idle" for (state,) in states)

    def test_a_frozen_process_cannot_commit_over_the_partitions_new_owner(self):
        cfg = self.group_config(log_level="debug", batch_max_ms=20)
        self.psql("INSERT INTO legacy_people VALUES (1, 'v1', 'a@x', 'D', 1)")
        # PGAPPNAME names A's sessions, to see when A is out of a transaction.
        a = self.start_with_env(cfg, DS_TEST_PAUSE_BEFORE_WRITE_MS="2000", PGAPPNAME="fence-a")
        self.wait_rows(self.newdb, "SELECT full_name FROM people", [("v1",)])
        dstest.wait_for(
            lambda: dstest.stored_offsets(self.newdb, self.group) == {(self.topic, 0): 1},
            timeout=30, what="A to commit offset 1",
        )

        # 1. A has the update to v2 in flight: read and mapped, not written yet.
        self.psql("UPDATE legacy_people SET name = 'v2' WHERE id = 1")
        dstest.wait_for(
            lambda: f"pausing 2000 ms before writing the batch from {self.topic} [0] @1"
            in a.log_text(),
            timeout=30, what="A to hold the update to v2",
        )
        # 2. Freeze A; B takes the partition once A's session (6 s) times out.
        os.kill(a.pid, signal.SIGSTOP)
        try:
            b = self.start_apply(cfg)
            dstest.wait_for(lambda: f"assigned {self.topic} [0]" in b.log_text(), timeout=60,
                            what="B to be assigned the partition of frozen A")
            # 3. v3; B applies v2, then v3.
            self.psql("UPDATE legacy_people SET name = 'v3' WHERE id = 1")
            self.wait_rows(self.newdb, "SELECT full_name FROM people", [("v3",)])
            dstest.wait_for(
                lambda: dstest.stored_offsets(self.newdb, self.group) == {(self.topic, 0): 3},
                timeout=30, what="B to commit offset 3",
            )
            resumed_at = len(a.log_text())
        finally:
            # 4. Resume A: it writes v2 (its pause is over), then learns it lost the partition.
            os.kill(a.pid, signal.SIGCONT)
        dstest.wait_for(
            lambda: f"revoked {self.topic} [0]" in a.log_text()[resumed_at:]
            and self.sessions_idle("fence-a"),
            timeout=60, what="A to learn that its partition was revoked, and finish with it",
        )
        after = a.log_text()[resumed_at:]
        self.assertEqual(self.row(), [("v3",)], f"A wrote its stale v2 over v3. A's log since:\n{after}")
        self.assertEqual(dstest.stored_offsets(self.newdb, self.group), {(self.topic, 0): 3})
        # A did try, and the fence stopped it: its commit was rolled back, and it says so.
        self.assertIn("was claimed by another apply process", after)
        self.assertIn(f"{self.topic} [0]: this apply process lost the partition", after)

        # Both go on: a later change is applied, by whichever holds the partition.
        self.psql("UPDATE legacy_people SET name = 'v4' WHERE id = 1")
        self.wait_rows(self.newdb, "SELECT full_name FROM people", [("v4",)])
        a.stop(expect_exit=0)
        b.stop(expect_exit=0)
        self.assertEqual(self.row(), [("v4",)])
        self.assertEqual(dstest.stored_offsets(self.newdb, self.group), {(self.topic, 0): 4})


class FreezeUnderLoadTest(ApplyGroupCase):
    def test_freezing_either_process_under_load_loses_nothing(self):
        cfg = self.group_config(batch_max_messages=50, batch_max_ms=50)
        a = self.start_apply(cfg)
        b = self.start_apply(cfg)
        self.wait_both_own(a, b)

        model = PeopleModel(seed=8128)
        stop = threading.Event()
        failures = []

        def load():
            try:
                while not stop.is_set():
                    self.psql(model.transactions(count=1, size=10))
            except AssertionError as e:
                failures.append(e)

        loader = threading.Thread(target=load, name="load")
        loader.start()
        try:
            for victim, other in ((a, b), (b, a), (a, b)):
                frozen_at = time.monotonic()
                os.kill(victim.pid, signal.SIGSTOP)
                try:
                    self.wait_owners(
                        lambda o, pid=other.pid: len(o) == self.PARTITIONS
                        and set(o.values()) == {pid},
                        f"process {other.pid} to claim every partition of frozen {victim.pid}",
                    )
                    # The freeze itself lasts 10 s (the scenario, not a wait for a result).
                    time.sleep(max(0.0, frozen_at + 10 - time.monotonic()))
                finally:
                    os.kill(victim.pid, signal.SIGCONT)
                # Back in the group, it is given partitions again (cooperative-sticky).
                self.wait_both_own(a, b)
        finally:
            stop.set()
            loader.join(timeout=120)
        self.assertEqual(failures, [])
        self.assertFalse(loader.is_alive(), "the load did not stop")

        self.assertEqual(self.psql("SELECT * FROM legacy_people ORDER BY id"), model.legacy_rows())
        self.wait_rows(self.newdb, PEOPLE_QUERY, model.expected_people(), timeout=120)
        self.assert_verify_counts_every_row(cfg, len(model.rows))
        self.assertTrue(a.running() and b.running(), "an apply process stopped")
        a.stop(expect_exit=0)
        b.stop(expect_exit=0)


class TwoProcessesTest(ApplyGroupCase):
    def test_two_processes_apply_their_partitions_at_once_under_origins_of_their_own(self):
        cfg = self.group_config(log_level="debug", batch_max_messages=20, batch_max_ms=20)
        a = self.start_apply(cfg)
        b = self.start_apply(cfg)
        self.wait_both_own(a, b)

        model = PeopleModel(seed=99)
        self.psql(model.transactions(count=30, size=10))
        self.wait_rows(self.newdb, PEOPLE_QUERY, model.expected_people(), timeout=120)
        ends = dstest.end_offsets([self.topic])
        owners = self.owners()
        # Every partition is applied to its end, each by one of the two, and both have some.
        self.assertEqual({(self.topic, p): n for p, (_, n) in owners.items()}, ends)
        self.assertEqual({pid for pid, _ in owners.values()}, {a.pid, b.pid})
        a.stop(expect_exit=0)
        b.stop(expect_exit=0)

        origins = set()
        for proc in (a, b):
            log = proc.log_text()
            match = re.search(r'replication origin "([^"]+)"', log)
            self.assertIsNotNone(match, log)
            origins.add(match.group(1))
            # Neither waited for the other's origin.
            self.assertNotIn("is held by another session", log)
            # Each committed batches of its own.
            applied = re.findall(r"progress: (\d+) messages applied in (\d+) batches", log)
            self.assertTrue(applied and int(applied[-1][1]) > 0, f"no batch committed:\n{log}")
        self.assertEqual(len(origins), 2, origins)
        for origin in origins:
            self.assertTrue(origin.startswith(f"dualsync.{self.group}."), origin)
        self.assertEqual(
            dstest.psql(
                "SELECT count(*) FROM pg_replication_origin WHERE roname IN ("
                + ", ".join(dstest.quote_literal(o) for o in sorted(origins)) + ")"
            ),
            [("2",)],
        )
        # Exactly once: one write of the new table per change.
        writes = int(dstest.psql_value("SELECT count(*) FROM people_writes", db=self.newdb))
        self.assertEqual(writes, model.changes)


class RestartTest(ApplyGroupCase):
    def test_a_process_killed_and_restarted_gets_its_partitions_back_in_seconds(self):
        # Kafka's default session timeout: without static membership (an apply.instance_id
        # of each process's own) a restarted process would wait this long for the dead
        # member's partitions.
        ids = dstest.unique_name("fast")
        cfg_a, cfg = (self.group_config(kafka={"session.timeout.ms": 45000}, batch_max_ms=20,
                                        instance_id=f"{ids}-{n}") for n in "ab")
        a = self.start_apply(cfg_a)
        b = self.start_apply(cfg)
        self.wait_both_own(a, b)
        model = PeopleModel(seed=4242)
        self.psql(model.transactions(count=5, size=10))
        self.wait_rows(self.newdb, PEOPLE_QUERY, model.expected_people(), timeout=60)

        held = {p for p, (pid, _) in self.owners().items() if pid == b.pid}
        instance = re.search(r'apply instance "([^"]+)"', b.log_text()).group(1)
        self.assertEqual(b.kill(), -9)
        self.psql(model.transactions(count=5, size=10))
        started = time.monotonic()
        b2 = self.start_apply(cfg)
        self.wait_owners(
            lambda o: {p for p, pid in o.items() if pid == b2.pid} == held,
            f"the restarted process to claim partitions {sorted(held)} back",
            timeout=40,
        )
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, 20, "the restarted process waited for the session timeout")
        self.assertIn(f'apply instance "{instance}"', b2.log_text())

        self.wait_rows(self.newdb, PEOPLE_QUERY, model.expected_people(), timeout=60)
        writes = int(dstest.psql_value("SELECT count(*) FROM people_writes", db=self.newdb))
        self.assertEqual(writes, model.changes)
        a.stop(expect_exit=0)
        b2.stop(expect_exit=0)


class InstanceIdTest(ApplyGroupCase):
    PARTITIONS = 1

    def test_two_processes_given_one_instance_id_stop_the_older_with_exit_2(self):
        cfg = self.group_config(instance_id="shared-id")
        first = self.start_apply(cfg)
        dstest.wait_for(lambda: f"assigned {self.topic} [0]" in first.log_text(), timeout=60,
                        what="the first process to be assigned the partition")
        second = self.start_apply(cfg)
        # Kafka gives the newcomer the older member's place; the older one says why and stops.
        self.assertEqual(first.wait_exit(timeout=60), 2, first.log_tail())
        log = first.log_text()
        # The member id is the instance id and a hash of the topics read.
        self.assertRegex(log, f'another process joined consumer group "{self.group}" with this '
                              'one\'s group.instance.id "shared-id\\.[0-9a-f]{8}" \\(apply.instance_id\\)')
        self.assertIn(f'replication origin "dualsync.{self.group}.shared-id"', log)
        self.psql("INSERT INTO legacy_people VALUES (1, 'Ann', 'a@x', 'D', 1)")
        self.wait_rows(self.newdb, "SELECT full_name FROM people", [("Ann",)])
        second.stop(expect_exit=0)

    def test_group_instance_id_in_the_kafka_properties_is_refused(self):
        cfg = self.group_config(kafka={"group.instance.id": "x"})
        proc = dstest.run_dualsync(["apply", "--config", cfg.path], timeout=60)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn('$.kafka["group.instance.id"]: apply sets this itself', proc.stderr)
        self.assertIn("set apply.instance_id instead", proc.stderr)


if __name__ == "__main__":
    import unittest

    unittest.main()
