"""apply: SIGKILL in the middle of a write load, then a restart: the new table ends exactly
equal to the expected rows (none missing, extra or stale), every change was written exactly
once (a trigger counts the writes), and dualsync.offsets points at the end of the topic.
"""

import json
import signal
import threading

import dstest
from test_apply_changes import PEOPLE_QUERY, ApplyPeopleCase, PeopleModel


class ApplyCrashTest(ApplyPeopleCase):
    def test_kill_9_during_a_write_load_then_restart_converges_exactly_once(self):
        model = PeopleModel(seed=424242)
        cfg = self.people_apply_config(batch_max_messages=40, batch_max_ms=20)
        # The whole load is generated up front, so the expected rows are known; it is run
        # slowly enough (a short sleep between transactions) to still be going on when apply
        # is killed.
        transactions = model.transactions(count=150, size=20).split("COMMIT;\n")
        script = "COMMIT;\nSELECT pg_sleep(0.015);\n".join(transactions)
        failures = []

        def load():
            try:
                self.psql(script, timeout=300)
            except AssertionError as e:
                failures.append(e)

        apply = self.start_apply(cfg)
        loader = threading.Thread(target=load, name="load")
        loader.start()
        applied_at_kill = []
        try:
            for round_ in range(2):
                floor = applied_at_kill[-1] if applied_at_kill else 0

                def progressed():
                    stored = dstest.stored_offsets(self.newdb, cfg.group_id).get((self.topic, 0), 0)
                    return stored if stored > floor else None

                applied_at_kill.append(
                    dstest.wait_for(progressed, timeout=60, what="apply to commit more batches")
                )
                self.assertEqual(apply.kill(), -9)
                apply = self.start_apply(cfg)
        finally:
            loader.join(timeout=300)
        self.assertEqual(failures, [])
        self.assertFalse(loader.is_alive(), "the load did not finish")

        self.assertEqual(self.psql("SELECT * FROM legacy_people ORDER BY id"), model.legacy_rows())
        self.wait_rows(self.newdb, PEOPLE_QUERY, model.expected_people(), timeout=120)
        self.assert_offsets_at_end(cfg)
        writes = int(dstest.psql_value("SELECT count(*) FROM people_writes", db=self.newdb))
        self.assertEqual(
            writes,
            model.changes,
            f"{writes} writes for {model.changes} changes (killed at offsets {applied_at_kill})",
        )
        self.assertEqual(
            int(dstest.psql_value("SELECT count(*) FROM dualsync.links", db=self.newdb)),
            len(model.rows),
        )
        apply.stop(expect_exit=0)

    def test_postgres_restart_is_survived_without_loss_or_repeat(self):
        model = PeopleModel(seed=31337)
        cfg = self.people_apply_config(batch_max_messages=50)
        apply = self.start_apply(cfg)
        self.psql(model.transactions(count=5, size=20))
        self.wait_rows(self.newdb, PEOPLE_QUERY, model.expected_people(), timeout=60)

        # Capture must have confirmed what it sent, or its reconnection would send the last
        # transactions again (capture is at least once; this test is about apply).
        lsn = dstest.lsn_to_int(dstest.current_wal_lsn())
        dstest.wait_for(
            lambda: dstest.lsn_to_int(dstest.slot_info(self.capture_cfg.slot)["confirmed_flush_lsn"])
            >= lsn,
            timeout=30,
            what="capture to confirm everything it sent",
        )
        # Every connection (apply's and capture's) is cut; both reconnect on their own.
        dstest.pg_stop()
        dstest.pg_start()
        self.psql(model.transactions(count=5, size=20))
        self.wait_rows(self.newdb, PEOPLE_QUERY, model.expected_people(), timeout=90)
        self.assert_offsets_at_end(cfg)
        self.assertTrue(apply.running())
        self.assertIn("connected again", apply.log_text())
        writes = int(dstest.psql_value("SELECT count(*) FROM people_writes", db=self.newdb))
        self.assertEqual(writes, model.changes)
        apply.stop(expect_exit=0)


class ApplySignalWhileTargetDownTest(ApplyPeopleCase):
    def test_first_sigterm_while_the_target_is_down_stops_apply_saying_so(self):
        cfg = self.people_apply_config(batch_max_ms=20)
        apply = self.start_apply(cfg)
        self.psql("INSERT INTO legacy_people VALUES (1, 'Ann', 'ann@x', 'D', 1)")
        self.wait_rows(self.newdb, "SELECT id FROM people", [("1",)])

        dstest.pg_stop()
        self.addCleanup(dstest.pg_start)  # a no-op when the test started it already
        # A change arrives while the target database is down: apply holds it in a batch and
        # waits for the database.
        after = {"id": 2, "name": "Bo", "email": "bo@x", "kind": "N", "visits": 2}
        dstest.produce(self.topic, [('{"id":2}', json.dumps({"op": "c", "before": None, "after": after}))])
        dstest.wait_for(
            lambda: 'target "newdb"' in apply.log_text() and "retrying in" in apply.log_text(),
            timeout=60,
            what="apply to wait for the target database",
        )
        apply.proc.send_signal(signal.SIGTERM)
        # The first signal ends the wait: no second one is needed.
        self.assertEqual(apply.wait_exit(timeout=30), 1, apply.log_tail())
        log = apply.log_text()
        self.assertIn(
            'stopping on signal while target "newdb" is unreachable: the batch being applied is '
            "not committed, and is applied after a restart",
            log,
        )
        self.assertIn("stopped on signal", log)

        # Nothing was lost: after the outage a restart applies the change.
        dstest.pg_start()
        apply2 = self.start_apply(cfg)
        self.wait_rows(self.newdb, "SELECT id FROM people ORDER BY id", [("1",), ("2",)])
        apply2.stop(expect_exit=0)


class ApplyKafkaOutageLogTest(ApplyPeopleCase):
    def test_apply_names_itself_not_capture_when_the_brokers_are_down(self):
        cfg = self.people_apply_config(batch_max_ms=20)
        apply = self.start_apply(cfg)
        # Once it holds its partition: a member still joining (the group may wait for a
        # member of an earlier test to time out) is not yet reading anything.
        dstest.wait_for(lambda: f"assigned {self.topic} [0]" in apply.log_text(), timeout=60,
                        what="apply to be assigned its partition")
        dstest.kafka_stop()
        try:
            dstest.wait_for(
                lambda: "all brokers are down" in apply.log_text(),
                timeout=60,
                what="apply's consumer to log the outage",
            )
        finally:
            dstest.kafka_start()
        # A dead letter after the outage: the dead-letter producer, polled for it, reports
        # the outage it saw too.
        self.psql("INSERT INTO legacy_people VALUES (1, 'Ann', 'ann@x', 'X', 1), (2, 'Bo', 'bo@x', 'D', 2)")
        self.wait_rows(self.newdb, "SELECT id FROM people", [("2",)], timeout=90)
        self.assertEqual(len(dstest.consume([cfg.dlq_topic], count=1)), 1)
        lines = [l for l in apply.log_text().splitlines() if "all brokers are down" in l]
        self.assertTrue(any("apply waits and keeps retrying" in l for l in lines), lines)
        for line in lines:
            self.assertNotIn("capture", line)
        apply.stop(expect_exit=0)
