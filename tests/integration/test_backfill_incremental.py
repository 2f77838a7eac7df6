"""`dualsync backfill --table T`: the incremental, watermark-based re-backfill of one table
beside a running capture, against a real PostgreSQL 15 and a real Kafka broker.

  - every row becomes a read event (op "r", source.snapshot "incremental") with the values
    pgoutput sends; with apply running, verify goes from "missing rows" (exit 1) to exit 0;
  - a row updated or deleted between a chunk's low and high watermark is not published from
    the (stale) chunk: the table is locked so the chunk's snapshot is taken, the row changed
    and committed, and only then read;
  - concurrent writers during the backfill: the topic replayed in order is the table, and
    verify agrees;
  - SIGTERM stops after a chunk (exit 0, says how to resume); kill -9 mid-way and a rerun
    resume after the recorded chunk, not from the first row;
  - kill -9 of capture while a window is open: the restarted capture sees the low watermark
    again (the slot was held before it) and the backfill completes correctly;
  - errors: a table capture does not publish, a table without a primary key, no capture
    running (a timeout naming the slot and the LSN, the state left resumable).

Stop points are real conditions (dualsync.backfill_state, pg_stat_activity lock waits, log
lines, the slot's confirmed position), never sleeps.
"""

import json
import os
import pty
import select
import signal
import subprocess
import time

import dstest
import test_backfill as tb

APP_NAME = "dualsync backfill"


def backfill_state(db, slot, table):
    """The row of dualsync.backfill_state for @slot and @table as a dict, or None."""
    if dstest.psql_value("SELECT to_regclass('dualsync.backfill_state') IS NULL", db=db) == "t":
        return None
    rows = dstest.psql(
        "SELECT last_key, rows_done, rows_total, completed_at IS NOT NULL "
        "FROM dualsync.backfill_state "
        f"WHERE slot_name = {dstest.quote_literal(slot)} AND table_name = {dstest.quote_literal(table)}",
        db=db,
    )
    if not rows:
        return None
    key, done, total, completed = rows[0]
    return {"last_key": json.loads(key) if key else None, "rows_done": int(done),
            "rows_total": int(total) if total is not None else None,
            "completed": completed == "t"}


def backfill_sessions(db):
    return int(dstest.psql_value(
        "SELECT count(*) FROM pg_stat_activity "
        f"WHERE application_name = {dstest.quote_literal(APP_NAME)} "
        f"AND datname = {dstest.quote_literal(db)}"))


def reads(msgs):
    return [m for m in tb.in_topic_order(msgs) if m["value"] and m["value"]["op"] == "r"]


class PsqlSession:
    """One psql session kept open, for holding locks and transactions across steps."""

    def __init__(self, db):
        e = dstest.env()
        self.proc = subprocess.Popen(
            [os.path.join(e["DS_PG_BIN"], "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At",
             "-h", e["PGHOST"], "-p", str(e["PGPORT"]), "-U", e["PGUSER"], "-d", db],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=dict(os.environ, PGAPPNAME="dstest session"),
        )
        self.count = 0
        self.buffer = b""

    def run(self, sql, timeout=60):
        """Runs @sql and returns its output once psql has finished it."""
        self.count += 1
        marker = f"__session_done_{self.count}__".encode()
        self.proc.stdin.write(sql.encode() + b"\n\\echo " + marker + b"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while marker not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise AssertionError(f"psql session: no end of {sql!r}: {self.buffer!r}")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"psql session ended: {self.buffer!r}")
                self.buffer += chunk
        out, _, self.buffer = self.buffer.partition(marker + b"\n")
        return out.decode()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


class Backfill(dstest.Apply):
    """`dualsync backfill --config FILE ARGS...` in the background (Capture's controls)."""

    command = ["backfill"]


class IncrementalCase(dstest.ApplyTestCase):
    def streaming(self, tables, **kw):
        """Capture of @tables without an initial backfill, logging its windows (debug)."""
        return self.start_streaming_capture(tables, capture={"snapshot_mode": "never"},
                                            log_level="debug", **kw)

    def backfill(self, cfg, table, *args, timeout=120):
        return dstest.run_dualsync(["backfill", "--config", cfg.path, "--table", table]
                                   + list(args), timeout=timeout)

    def start_backfill(self, cfg, table, *args):
        log_path = os.path.splitext(cfg.path)[0] + f"-backfill{len(self._captures) + 1}.log"
        proc = Backfill(cfg.path, log_path, ["--table", table] + list(args))
        self._captures.append(proc)
        self.addCleanup(proc.kill)
        return proc.start()

    def assert_ok(self, proc):
        self.assertEqual(proc.returncode, 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")

    def session(self):
        s = PsqlSession(self.db)
        self.addCleanup(s.close)
        return s

    def wait_backfill_blocked_on_lock(self, bf):
        def blocked():
            if not bf.running():
                raise AssertionError(f"backfill exited with {bf.exit_code()}:\n{bf.log_tail()}")
            return dstest.psql_value(
                "SELECT count(*) FROM pg_stat_activity "
                f"WHERE application_name = {dstest.quote_literal(APP_NAME)} "
                "AND wait_event_type = 'Lock'") == "1"

        dstest.wait_for(blocked, timeout=30,
                        what="the backfill's chunk read to wait for the table lock")

    def items_pipeline(self, cfg, table):
        """apply of @table (id, v, n) into a new database; returns the apply config."""
        newdb = self.target_database("bf_new")
        dstest.psql("CREATE TABLE items (id int PRIMARY KEY, v text, n int)", db=newdb)
        mapping = dstest.write_mapping(
            os.path.join(self.work_dir, f"{self._test_slug}-items.json"),
            {"source": table,
             "targets": [{"name": "items", "connection": "newdb", "table": "public.items",
                          "key": ["id"], "columns": {"id": "$id", "v": "$v", "n": "$n"}}]})
        config = self.apply_config({"newdb": newdb}, [mapping], cfg.topic_prefix,
                                   source=cfg.data["source"])
        self.start_apply(config)
        return config

    def verify(self, config):
        return dstest.run_dualsync(["verify", "--config", config.path, "--json"], timeout=120)


class IncrementalEventsTest(IncrementalCase):
    def test_every_row_is_a_read_event_and_verify_then_matches(self):
        rows = 3000
        self.psql("CREATE TABLE bf_items (id int PRIMARY KEY, v text, n int);"
                  f"INSERT INTO bf_items SELECT g, md5(g::text), g FROM generate_series(1, {rows}) g;"
                  "ANALYZE bf_items")
        cfg, cap = self.streaming(["public.bf_items"])
        config = self.items_pipeline(cfg, "public.bf_items")
        # Rows written before capture started are nowhere in Kafka yet.
        self.psql("UPDATE bf_items SET v = 'streamed' WHERE id = 7")
        before = self.verify(config)
        self.assertEqual(before.returncode, 1, before.stdout + before.stderr)
        self.assertEqual(json.loads(before.stdout)["targets"][0]["missing"], rows - 1)

        proc = self.backfill(cfg, "public.bf_items", "--chunk-size", "700")
        self.assert_ok(proc)
        self.assertIn(f"incremental backfill of public.bf_items: {rows}/{rows} rows (100%)",
                      proc.stderr)
        self.assertIn(f"backfill of public.bf_items complete: {rows} rows read in 5 chunks",
                      proc.stderr)
        state = backfill_state(self.db, cfg.slot, "public.bf_items")
        self.assertEqual(state, {"last_key": [str(rows)], "rows_done": rows,
                                 "rows_total": rows, "completed": True})

        msgs = self.consume([cfg.topic("public.bf_items")], count=rows + 1)
        got = reads(msgs)
        self.assertEqual([m["key"] for m in got], [{"id": i} for i in range(1, rows + 1)])
        for m in got:
            self.assertEqual(m["value"]["source"]["snapshot"], "incremental")
            self.assertIsNone(m["value"]["before"])
        # Row 7 was read after its streamed update: the read event has the same state.
        self.assertEqual(got[6]["value"]["after"], {"id": 7, "v": "streamed", "n": 7})
        after = self.verify(config)
        self.assertEqual(after.returncode, 0, after.stdout + after.stderr)
        self.assertNotIn("dropped", cap.log_text())

    def test_read_events_carry_the_values_pgoutput_sends_and_a_bar_on_a_terminal(self):
        self.psql("""
            CREATE TABLE bf_typed (
              a text, id int, t text, n numeric(20,6), f float8, ts timestamptz, d date,
              iv interval, j jsonb, ba bytea, arr text[], u uuid, nothing text,
              PRIMARY KEY (a, id));
            INSERT INTO bf_typed
            SELECT CASE WHEN g % 2 = 0 THEN 'k"ey' ELSE 'k\\ey' END, g,
                   E'tab\\there\\nnew line \\\\ ' || g || ' 한국어 "q"', g * 1.5 / 7,
                   CASE g % 9 WHEN 0 THEN 'NaN'::float8 ELSE g / 3.0 END,
                   timestamptz '2024-02-29 23:59:59.123456+09' + g * interval '1 day',
                   date '2024-01-01' + g, g * interval '1 day 2 hours',
                   jsonb_build_object('k', g), decode(md5(g::text), 'hex'),
                   ARRAY['a', NULL, 'c"d'], md5(g::text)::uuid, NULL
              FROM generate_series(1, 40) g;
        """)
        cfg, cap = self.streaming(["public.bf_typed"])
        primary, replica = pty.openpty()
        terminal = b""
        try:
            proc = subprocess.Popen(
                [dstest.ds_bin(), "backfill", "--config", cfg.path, "--table", "public.bf_typed",
                 "--chunk-size", "7"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=replica)
            os.close(replica)
            replica = None
            # Read while it runs: a full terminal buffer would block its writes.
            while True:
                if select.select([primary], [], [], 1.0)[0]:
                    try:
                        chunk = os.read(primary, 65536)
                    except OSError:  # EIO: the other side is closed and drained
                        chunk = b""
                    terminal += chunk
                    if not chunk:
                        break
                elif proc.poll() is not None:
                    break
            proc.wait(timeout=60)
        finally:
            os.close(primary)
            if replica is not None:
                os.close(replica)
        self.assertEqual(proc.returncode, 0, terminal.decode(errors="replace"))
        self.assertIn(b"\rincremental backfill public.bf_typed [" + b"#" * 30 + b"] 100% 40/40",
                      terminal)
        # pgoutput's own rendering of every row: rewrite each row unchanged.
        self.psql("UPDATE bf_typed SET id = id")
        msgs = tb.in_topic_order(self.consume([cfg.topic("public.bf_typed")], count=80))
        got = reads(msgs)
        updates = {json.dumps(m["key"], sort_keys=True): m["value"]["after"]
                   for m in msgs if m["value"]["op"] == "u"}
        self.assertEqual(len(got), 40)
        self.assertEqual(len(updates), 40)
        # Composite key order, as the table sorts it.
        self.assertEqual([(m["key"]["a"], str(m["key"]["id"])) for m in got],
                         self.psql("SELECT a, id FROM bf_typed ORDER BY a, id"))
        for m in got:
            self.assertEqual(m["value"]["after"], updates[json.dumps(m["key"], sort_keys=True)])


class IncrementalWatermarkTest(IncrementalCase):
    def test_a_row_changed_between_low_and_high_is_not_published_from_the_chunk(self):
        self.psql("CREATE TABLE bf_wm (id int PRIMARY KEY, v text, n int);"
                  "INSERT INTO bf_wm SELECT g, 'old', g FROM generate_series(1, 10) g;"
                  "ANALYZE bf_wm")
        cfg, cap = self.streaming(["public.bf_wm"])
        lock = self.session()
        lock.run("BEGIN; LOCK TABLE bf_wm IN ACCESS EXCLUSIVE MODE;")
        bf = self.start_backfill(cfg, "public.bf_wm", "--chunk-size", "100")
        # The chunk's snapshot is taken when its SELECT starts, before it waits for the lock,
        # and after the low watermark: what commits now is inside the window, not the chunk.
        self.wait_backfill_blocked_on_lock(bf)
        lock.run("UPDATE bf_wm SET v = 'new' WHERE id = 3; DELETE FROM bf_wm WHERE id = 5;"
                 "INSERT INTO bf_wm VALUES (11, 'inserted', 11); COMMIT;")
        self.assertEqual(bf.wait_exit(60), 0, bf.log_tail())
        tb.wait_confirmed_current(cfg)
        msgs = self.consume([cfg.topic("public.bf_wm")], idle_ms=1500)
        # The chunk held the old row 3 and the deleted row 5: both dropped at the high
        # watermark, since the stream already carried their newer state.
        self.assertEqual([m["key"]["id"] for m in reads(msgs)], [1, 2, 4, 6, 7, 8, 9, 10])
        self.assertIn("chunk 1: 8 rows published, 2 dropped", cap.log_text())
        topic = {k: v for k, v in tb.reconstruct(msgs).items()}
        table = {int(i): {"id": int(i), "v": v, "n": int(n)}
                 for i, v, n in self.psql("SELECT id, v, n FROM bf_wm")}
        self.assertEqual(topic, table)
        self.assertNotIn(5, topic)
        self.assertEqual(topic[3]["v"], "new")

    def test_kill_9_of_capture_while_a_window_is_open_then_restart_completes(self):
        self.psql("CREATE TABLE bf_cap (id int PRIMARY KEY, v text, n int);"
                  "INSERT INTO bf_cap SELECT g, 'old', g FROM generate_series(1, 250) g;"
                  "ANALYZE bf_cap")
        cfg, cap = self.streaming(["public.bf_cap"])
        lock = self.session()
        lock.run("BEGIN; LOCK TABLE bf_cap IN ACCESS EXCLUSIVE MODE;")
        bf = self.start_backfill(cfg, "public.bf_cap", "--chunk-size", "100")
        self.wait_backfill_blocked_on_lock(bf)
        dstest.wait_for(lambda: "window of chunk 1 opened" in cap.log_text(), timeout=30,
                        what="capture to open the window of chunk 1")
        cap.kill()
        dstest.wait_for(lambda: not dstest.slot_info(cfg.slot)["active"], timeout=30,
                        what="the killed capture's walsender to release the slot")
        held = dstest.slot_info(cfg.slot)["confirmed_flush_lsn"]
        again = self.start_capture(cfg)
        dstest.wait_for(lambda: "window of chunk 1 opened" in again.log_text(), timeout=30,
                        what="the restarted capture to receive the low watermark again")
        lock.run("UPDATE bf_cap SET v = 'new' WHERE id = 2; COMMIT;")
        self.assertEqual(bf.wait_exit(60), 0, bf.log_tail())
        with again:
            tb.wait_confirmed_current(cfg)
            msgs = self.consume([cfg.topic("public.bf_cap")], idle_ms=1500)
        self.assertGreater(dstest.lsn_to_int(dstest.slot_info(cfg.slot)["confirmed_flush_lsn"]),
                           dstest.lsn_to_int(held))
        self.assertEqual([m["key"]["id"] for m in reads(msgs)],
                         [1] + list(range(3, 251)))
        table = {int(i): {"id": int(i), "v": v, "n": int(n)}
                 for i, v, n in self.psql("SELECT id, v, n FROM bf_cap")}
        self.assertEqual(tb.reconstruct(msgs), table)
        self.assertTrue(backfill_state(self.db, cfg.slot, "public.bf_cap")["completed"])


class IncrementalConsistencyTest(IncrementalCase):
    def test_concurrent_writers_converge_to_the_table_and_verify_matches(self):
        rows = 20000
        self.psql("CREATE TABLE bf_busy (id int PRIMARY KEY, v text, n int);"
                  f"INSERT INTO bf_busy SELECT g, md5(g::text), 0 FROM generate_series(1, {rows}) g;"
                  "ANALYZE bf_busy")
        cfg, cap = self.streaming(["public.bf_busy"])
        config = self.items_pipeline(cfg, "public.bf_busy")
        writer = tb.Writer(self.db, "bf_busy", rows + 1, rows)
        self.addCleanup(writer.stop_event.set)
        writer.start()
        writer.wait_batches(2)
        started = writer.batches
        proc = self.backfill(cfg, "public.bf_busy", "--chunk-size", "1000")
        during = writer.batches - started
        writer.stop()
        self.assert_ok(proc)
        self.assertGreaterEqual(during, 3, "the write load did not overlap the backfill")
        tb.wait_confirmed_current(cfg)
        msgs = self.consume([cfg.topic("public.bf_busy")], idle_ms=2000)
        self.assertEqual({m["value"]["op"] for m in msgs if m["value"]}, {"r", "c", "u", "d"})
        tb.assert_same_state(self, tb.reconstruct(msgs), tb.table_state(self.db, "bf_busy"))
        result = self.verify(config)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_sigterm_then_kill_9_mid_way_resume_after_the_recorded_chunk(self):
        # Enough rows that both signals land mid-way: the backfill reads 16 chunks ahead, and
        # 5,000 rows were once done before the SIGTERM that followed the 500th arrived.
        rows = 50000
        table = "public.bf_crash"
        self.psql("CREATE TABLE bf_crash (id int PRIMARY KEY, v text, n int);"
                  f"INSERT INTO bf_crash SELECT g, md5(g::text), g FROM generate_series(1, {rows}) g;"
                  "ANALYZE bf_crash")
        cfg, cap = self.streaming([table])

        def done_at_least(count):
            def check():
                st = backfill_state(self.db, cfg.slot, table)
                return st and st["rows_done"] >= count and st
            return check

        # SIGTERM: the chunk under way is finished and recorded, then a clean exit.
        first = self.start_backfill(cfg, table, "--chunk-size", "100")
        dstest.wait_for(done_at_least(500), timeout=60, what="500 rows backfilled")
        first.proc.send_signal(signal.SIGTERM)
        self.assertEqual(first.wait_exit(60), 0, first.log_tail())
        stopped = backfill_state(self.db, cfg.slot, table)
        self.assertFalse(stopped["completed"])
        self.assertEqual(stopped["last_key"], [str(stopped["rows_done"])])
        self.assertIn(f'recorded up to key ["{stopped["rows_done"]}"] '
                      f'({stopped["rows_done"]} rows done', first.log_text())
        self.assertIn("run the same command again to resume", first.log_text())

        # kill -9 mid-way through the second run.
        second = self.start_backfill(cfg, table, "--chunk-size", "100")
        dstest.wait_for(done_at_least(stopped["rows_done"] + 1000), timeout=60,
                        what="1000 more rows backfilled")
        second.kill()
        crashed = backfill_state(self.db, cfg.slot, table)
        self.assertFalse(crashed["completed"])
        self.assertLess(crashed["rows_done"], rows)
        self.assertIn(f'resuming the unfinished backfill of {table} after key '
                      f'["{stopped["rows_done"]}"]', second.log_text())
        dstest.wait_for(lambda: backfill_sessions(self.db) == 0, timeout=30,
                        what="the killed backfill's session to end")

        proc = self.backfill(cfg, table, "--chunk-size", "100")
        self.assert_ok(proc)
        done = crashed["rows_done"]
        self.assertIn(f'after key ["{done}"] ({done} rows done)', proc.stderr)
        self.assertIn(f"complete: {rows - done} rows read", proc.stderr)
        self.assertEqual(backfill_state(self.db, cfg.slot, table)["rows_done"], rows)

        tb.wait_confirmed_current(cfg)
        msgs = self.consume([cfg.topic(table)], idle_ms=1500)
        keys = [m["key"]["id"] for m in reads(msgs)]
        self.assertEqual(sorted(set(keys)), list(range(1, rows + 1)))
        # Only the chunks read ahead of the slot's confirmation at the kill (at most 16:
        # CHUNKS_AHEAD in cdc/incremental.c) can have been published twice.
        self.assertLessEqual(len(keys), rows + 16 * 100)
        self.assertEqual(tb.reconstruct(msgs),
                         {i: {"id": i, "v": v, "n": i} for i, v in
                          ((int(a), b) for a, b in self.psql("SELECT id, v FROM bf_crash"))})


class IncrementalLimitsTest(IncrementalCase):
    def test_a_chunk_larger_than_the_inflight_limit_is_handed_to_kafka_within_it(self):
        rows, limit = 2500, 100
        table = "public.bf_wide_chunk"
        self.psql("CREATE TABLE bf_wide_chunk (id int PRIMARY KEY, v text);"
                  f"INSERT INTO bf_wide_chunk SELECT g, md5(g::text) FROM generate_series(1, {rows}) g;"
                  "ANALYZE bf_wide_chunk")
        cfg, cap = self.start_streaming_capture(
            [table], capture={"snapshot_mode": "never", "max_inflight_messages": limit},
            log_level="debug")

        proc = self.backfill(cfg, table, "--chunk-size", str(2 * rows))
        self.assert_ok(proc)
        self.assertIn(f"complete: {rows} rows read in 1 chunks", proc.stderr)

        msgs = self.consume([cfg.topic(table)], count=rows)
        self.assertEqual([m["key"] for m in reads(msgs)], [{"id": i} for i in range(1, rows + 1)])
        # Capture stopped handing the chunk's read events over at its limit, and went on as
        # Kafka acknowledged them: it never held the whole chunk in flight.
        paused = [int(line.split(" messages (")[0].split()[-1])
                  for line in cap.log_text().splitlines() if "pausing WAL reading" in line]
        self.assertTrue(paused, cap.log_tail())
        self.assertLessEqual(max(paused), limit + 1, cap.log_tail())


class IncrementalErrorsTest(IncrementalCase):
    def test_unknown_table_no_primary_key_and_no_capture_are_errors(self):
        self.psql("CREATE TABLE bf_ok (id int PRIMARY KEY, v text);"
                  "INSERT INTO bf_ok SELECT g, 'x' FROM generate_series(1, 30) g;"
                  "CREATE TABLE bf_nopk (v text); ALTER TABLE bf_nopk REPLICA IDENTITY FULL;"
                  "CREATE TABLE bf_other (id int PRIMARY KEY)")
        help_text = dstest.run_dualsync(["backfill", "--help"])
        self.assertEqual(help_text.returncode, 0)
        self.assertIn("--chunk-size N", help_text.stdout)
        self.assertIn("backfill", dstest.run_dualsync(["--help"]).stdout)

        cfg, cap = self.streaming(["public.bf_ok", "public.bf_nopk"])
        proc = self.backfill(cfg, "public.bf_other")
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("table public.bf_other is not one of the tables capture publishes",
                      proc.stderr)
        proc = self.backfill(cfg, "public.bf_nopk")
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("table public.bf_nopk has no primary key", proc.stderr)

        cap.stop()
        proc = self.backfill(cfg, "public.bf_ok", "--confirm-timeout-ms", "1500")
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn(f'replication slot "{cfg.slot}" did not confirm LSN ', proc.stderr)
        self.assertIn("within 1500 ms", proc.stderr)
        self.assertIn("run the same command again to resume", proc.stderr)
        state = backfill_state(self.db, cfg.slot, "public.bf_ok")
        self.assertEqual((state["rows_done"], state["completed"]), (0, False))

        # With capture back, the same command finishes the job.
        again = self.start_capture(cfg)
        with again:
            proc = self.backfill(cfg, "public.bf_ok")
            self.assert_ok(proc)
            tb.wait_confirmed_current(cfg)
            msgs = self.consume([cfg.topic("public.bf_ok")], idle_ms=1500)
        self.assertEqual(sorted({m["key"]["id"] for m in reads(msgs)}), list(range(1, 31)))
        self.assertTrue(backfill_state(self.db, cfg.slot, "public.bf_ok")["completed"])


if __name__ == "__main__":
    import unittest

    unittest.main()
