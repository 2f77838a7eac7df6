"""`dualsync teardown`: the end of a migration.

  - With the legacy and new tables in one database (the clinic migration): refused while
    capture and apply are connected; refused once they are stopped while Kafka holds a
    change apply has not written, and while the slot holds a change capture has not
    published; once both caught up and stopped, it removes the slot, the publication, the
    dualsync schema, apply's replication origins and (--topics) the topics, and leaves the
    legacy and new tables as they were. Run again, it has nothing to remove.
  - With the new tables in another database: a teardown killed with SIGKILL half way (held
    at the target's DROP SCHEMA by a reader of dualsync.offsets) finishes when run again,
    without checking again what it already removed.
  - Without --yes on a standard input that is not a terminal, nothing is removed (exit 2).
"""

import os
import signal
import subprocess
import time

import dstest
from test_verify import CLINIC, LEGACY_TABLES, MAPPING_FILES, read


def teardown(config, *extra, timeout=180):
    return dstest.run_dualsync(["teardown", "--config", config.path] + list(extra),
                               timeout=timeout)


def origins(prefix):
    return [r[0] for r in dstest.psql(
        "SELECT roname FROM pg_replication_origin WHERE starts_with(roname, "
        f"{dstest.quote_literal(prefix)}) ORDER BY 1")]


def schema_exists(db):
    return dstest.psql_value("SELECT to_regnamespace('dualsync') IS NOT NULL", db=db) == "t"


def publication_exists(db, name):
    return dstest.psql_value(
        f"SELECT count(*) FROM pg_publication WHERE pubname = {dstest.quote_literal(name)}",
        db=db) == "1"


class TeardownClinicTest(dstest.ApplyTestCase):
    def test_refused_while_running_or_behind_then_removes_everything(self):
        self.psql(read(os.path.join(CLINIC, "legacy_schema.sql")))
        self.psql(read(os.path.join(CLINIC, "new_schema.sql")))
        tables = ["public." + t for t in LEGACY_TABLES]
        capture_cfg, capture = self.start_streaming_capture(tables)
        group = self.new_group("teardown")
        config = self.apply_config(
            {"clinic": self.db}, MAPPING_FILES, capture_cfg.topic_prefix,
            apply={"on_error": "dlq", "group_id": group}, source=capture_cfg.data["source"],
        )
        apply = self.start_apply(config)
        self.psql(read(os.path.join(CLINIC, "legacy_seed.sql")))
        slot, publication = capture_cfg.slot, capture_cfg.data["source"]["publication"]
        topics = [f"{capture_cfg.topic_prefix}.{t}" for t in tables]

        # ---- capture and apply connected ------------------------------------------------
        proc = teardown(config, "--yes", "--timeout-ms", "3000")
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        self.assertIn("still connected", proc.stderr)
        self.assertIn("capture: pid", proc.stderr)
        self.assertIn("apply: pid", proc.stderr)
        self.assertIsNotNone(dstest.slot_info(slot))

        # ---- both stopped, Kafka holds a change apply has not written --------------------
        apply.stop()
        self.psql("UPDATE users SET name = name || ' Jr' WHERE id = (SELECT min(id) FROM users)")
        target_lsn = dstest.lsn_to_int(dstest.current_wal_lsn())
        dstest.wait_for(
            lambda: dstest.lsn_to_int(dstest.slot_info(slot)["confirmed_flush_lsn"]) >= target_lsn,
            timeout=30, what="capture to publish the update")
        capture.stop()
        proc = teardown(config, "--yes", "--timeout-ms", "3000")
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        self.assertIn("has not caught up", proc.stderr)
        self.assertIn("refused", proc.stderr)
        self.assertIsNotNone(dstest.slot_info(slot))
        self.assertTrue(schema_exists(self.db))

        # ---- apply caught up, the slot holds a change capture has not published ----------
        apply = self.start_apply(config)
        proc = dstest.run_dualsync(["verify", "--config", config.path], timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        apply.stop()
        self.psql("UPDATE users SET name = name || ' Sr' WHERE id = (SELECT min(id) FROM users)")
        proc = teardown(config, "--yes", "--timeout-ms", "3000")
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        self.assertIn("capture has not caught up", proc.stderr)
        self.assertIsNotNone(dstest.slot_info(slot))

        # ---- everything caught up and stopped: removed -----------------------------------
        capture = self.start_capture(capture_cfg)
        apply = self.start_apply(config)
        proc = dstest.run_dualsync(["verify", "--config", config.path], timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        apply.stop()
        capture.stop()
        counts = {t: self.psql(f"SELECT count(*) FROM {t}")[0][0]
                  for t in ["users", "patients", "global_patients", "clinic_patients"]}
        self.assertTrue(origins(f"dualsync.{group}."))
        # Nothing is left in the slot, so a stopped capture counts as caught up.
        proc = teardown(config, "--yes", "--topics", "--timeout-ms", "30000")
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn(f'removed replication slot "{slot}"', proc.stdout)
        self.assertIn("Teardown complete.", proc.stdout)
        self.assertIsNone(dstest.slot_info(slot))
        self.assertFalse(publication_exists(self.db, publication))
        self.assertFalse(schema_exists(self.db))
        self.assertEqual(origins(f"dualsync.{group}."), [])
        described = dstest.describe_topics(topics + [config.dlq_topic])
        self.assertEqual([t for t, info in described.items() if info["exists"]], [], described)
        # The tables themselves are untouched.
        for t, n in counts.items():
            self.assertEqual(self.psql(f"SELECT count(*) FROM {t}")[0][0], n, t)

        # ---- again: nothing to remove -------------------------------------------------------
        proc = teardown(config, "--yes", "--topics")
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("Nothing to remove", proc.stdout)


class TeardownResumeTest(dstest.ApplyTestCase):
    def test_a_teardown_killed_half_way_finishes_when_run_again(self):
        self.psql("CREATE TABLE legacy_items (id int PRIMARY KEY, name text)")
        newdb = self.target_database("teardown_new")
        dstest.psql("CREATE TABLE items (id int PRIMARY KEY, name text)", db=newdb)
        capture_cfg, capture = self.start_streaming_capture(["public.legacy_items"])
        mapping = dstest.write_mapping(os.path.join(self.work_dir, "items.json"), {
            "source": "public.legacy_items",
            "targets": [{"name": "items", "connection": "newdb", "table": "public.items",
                         "key": ["id"], "columns": {"id": "$id", "name": "$name"}}]})
        group = self.new_group("teardown_resume")
        config = self.apply_config({"newdb": newdb}, [mapping], capture_cfg.topic_prefix,
                                   apply={"group_id": group}, source=capture_cfg.data["source"])
        apply = self.start_apply(config)
        self.psql("INSERT INTO legacy_items SELECT g, 'item ' || g FROM generate_series(1, 50) g")
        self.wait_rows(newdb, "SELECT count(*) FROM items", [("50",)])

        # Not a terminal and no --yes: nothing is removed.
        apply.stop()
        capture.stop()
        proc = subprocess.run([dstest.ds_bin(), "teardown", "--config", config.path],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=180)
        self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
        self.assertIn("pass --yes", proc.stderr)
        self.assertIsNotNone(dstest.slot_info(capture_cfg.slot))

        # A reader of the target's dualsync.offsets holds the teardown at its DROP SCHEMA,
        # after the record and the origins; there it is killed.
        held = dstest.HeldTransaction("SELECT count(*) FROM dualsync.offsets;", db=newdb)
        try:
            log = open(os.path.join(self.work_dir, "teardown-killed.log"), "wb")
            killed = subprocess.Popen([dstest.ds_bin(), "teardown", "--config", config.path,
                                       "--yes"], stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=subprocess.STDOUT)
            self.addCleanup(lambda: killed.poll() is None and killed.kill())

            def waiting_on_lock():
                return dstest.psql_value(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                    "'dualsync-teardown' AND wait_event_type = 'Lock' "
                    "AND query LIKE 'DROP SCHEMA%'", db=newdb) == "1"

            dstest.wait_for(waiting_on_lock, timeout=120,
                            what="teardown to wait for the target's DROP SCHEMA")
            killed.send_signal(signal.SIGKILL)
            killed.wait(timeout=30)
            log.close()
            # A server does not notice a lost client while its statement waits for a lock:
            # end the sessions, so that the DROP SCHEMA dies with its process, as in a crash
            # of the host.
            dstest.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = 'dualsync-teardown'")
            dstest.wait_for(lambda: dstest.psql_value(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = 'dualsync-teardown'") == "0",
                timeout=30, what="the killed teardown's sessions to end")
        finally:
            held.release()
        self.assertEqual(origins(f"dualsync.{group}."), [])
        self.assertTrue(schema_exists(newdb))
        self.assertIsNotNone(dstest.slot_info(capture_cfg.slot))

        # Run again: it finishes without checking (the slot alone could no longer be
        # verified once the targets' offsets were gone).
        proc = teardown(config, "--yes")
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("did not finish: finishing it", proc.stdout)
        self.assertNotIn("Verifying", proc.stdout)
        self.assertIsNone(dstest.slot_info(capture_cfg.slot))
        self.assertFalse(schema_exists(newdb))
        self.assertFalse(schema_exists(self.db))
        self.assertEqual(dstest.psql("SELECT count(*) FROM items", db=newdb), [("50",)])
