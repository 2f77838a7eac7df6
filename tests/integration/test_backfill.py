"""Capture's initial backfill (capture.snapshot_mode "initial"), against a real PostgreSQL 15
and a real Kafka broker.

The rows a table holds when capture creates its slot arrive as Debezium read events (op
"r"), followed by the changes committed after the slot's consistent point. The checks
reconstruct each table from its topic as a consumer would (read, create and update events
are upserts, a delete removes the key, in topic order) and compare with the table itself.
Stop points are real conditions: the backfill record in dualsync.capture_state, a number of
records in Kafka, the slot confirming a WAL position.
"""

import random
import threading
import unittest

import dstest


def backfill_record(db, slot):
    """The slot's row of dualsync.capture_state as {"snapshot_lsn", "completed", "rows"},
    or None when there is none."""
    if dstest.psql_value("SELECT to_regclass('dualsync.capture_state') IS NULL", db=db) == "t":
        return None
    rows = dstest.psql(
        "SELECT snapshot_lsn, backfill_completed_at IS NOT NULL, backfill_rows "
        f"FROM dualsync.capture_state WHERE slot_name = {dstest.quote_literal(slot)}",
        db=db,
    )
    if not rows:
        return None
    lsn, completed, count = rows[0]
    return {"snapshot_lsn": lsn, "completed": completed == "t",
            "rows": int(count) if count is not None else None}


def wait_backfilled_and_streaming(cfg, cap, timeout=120):
    """Waits until capture recorded its backfill complete and streams from its slot."""

    def ready():
        if not cap.running():
            raise AssertionError(f"capture exited with {cap.exit_code()}:\n{cap.log_tail()}")
        rec = backfill_record(cfg.db, cfg.slot)
        info = dstest.slot_info(cfg.slot)
        return rec and rec["completed"] and info and info["active"]

    dstest.wait_for(ready, timeout=timeout, what=f"the backfill of slot {cfg.slot} to complete")
    return backfill_record(cfg.db, cfg.slot)


def wait_confirmed_current(cfg, timeout=120):
    """Waits until the slot confirmed everything committed so far: it is all in Kafka."""
    target = dstest.lsn_to_int(dstest.current_wal_lsn())

    def confirmed():
        info = dstest.slot_info(cfg.slot)
        return info and dstest.lsn_to_int(info["confirmed_flush_lsn"]) >= target

    dstest.wait_for(confirmed, timeout=timeout, what=f"slot {cfg.slot} to confirm the current WAL")


def in_topic_order(messages):
    return sorted(messages, key=lambda m: (m["topic"], m["partition"], m["offset"]))


def reconstruct(messages):
    """{id: after} as a consumer applying the topic ends up with."""
    state = {}
    for m in in_topic_order(messages):
        value = m["value"]
        if value is None:  # tombstone
            continue
        key = m["key"]["id"]
        if value["op"] in ("r", "c", "u"):
            state[key] = value["after"]
        elif value["op"] == "d":
            state.pop(key, None)
        else:
            raise AssertionError(f"unexpected op in {m}")
    return state


def table_state(db, table):
    """{id: {"id", "v", "n"}} of the table, with the JSON types capture writes."""
    return {
        int(i): {"id": int(i), "v": v, "n": int(n)}
        for i, v, n in dstest.psql(f"SELECT id, v, n FROM {table}", db=db)
    }


def assert_same_state(test, topic_state, table):
    missing = sorted(set(table) - set(topic_state))
    extra = sorted(set(topic_state) - set(table))
    wrong = sorted(k for k in set(table) & set(topic_state) if table[k] != topic_state[k])
    test.assertEqual(
        (missing[:10], extra[:10], wrong[:10]), ([], [], []),
        f"topic vs table: {len(missing)} keys missing, {len(extra)} extra, {len(wrong)} with other "
        f"values (first ids shown); e.g. {[(k, topic_state.get(k), table.get(k)) for k in wrong[:3]]}",
    )


class Writer(threading.Thread):
    """A write load on table (id int PRIMARY KEY, v text, n int): batches of inserts of new
    ids, updates and deletes of random ids, each batch one psql run (so a finished batch is
    committed). batches counts the committed ones."""

    def __init__(self, db, table, first_new_id, max_id):
        super().__init__(daemon=True)
        self.db, self.table = db, table
        self.next_id = first_new_id
        self.max_id = max_id
        self.batches = 0
        self.error = None
        self.stop_event = threading.Event()
        self.rng = random.Random(42)

    def batch_sql(self):
        stmts = []
        for _ in range(10):
            kind = self.rng.random()
            key = self.rng.randint(1, self.max_id)
            if kind < 0.3:
                stmts.append(f"INSERT INTO {self.table} VALUES ({self.next_id}, 'new', 0)")
                self.next_id += 1
            elif kind < 0.75:
                stmts.append(
                    f"UPDATE {self.table} SET v = md5(random()::text), n = n + 1 WHERE id = {key}"
                )
            else:
                stmts.append(f"DELETE FROM {self.table} WHERE id = {key}")
        # Two statements share a transaction now and then, like an application would.
        return "BEGIN;\n" + ";\n".join(stmts[:2]) + ";\nCOMMIT;\n" + ";\n".join(stmts[2:]) + ";\n"

    def run(self):
        try:
            while not self.stop_event.is_set():
                dstest.psql(self.batch_sql(), db=self.db)
                self.batches += 1
        except Exception as e:  # reported by stop()
            self.error = e

    def wait_batches(self, count, timeout=60):
        target = self.batches + count
        dstest.wait_for(lambda: self.batches >= target or self.error, timeout=timeout,
                        what=f"{count} more write batches")
        if self.error:
            raise self.error

    def stop(self):
        self.stop_event.set()
        self.join(timeout=120)
        if self.error:
            raise self.error


class BackfillCase(dstest.ServicesTestCase):
    def read_all(self, cfg, tables):
        return self.consume([cfg.topic(t) for t in tables], idle_ms=2000, timeout_ms=60000)


class BackfillEventsTest(BackfillCase):
    """What the read events look like, and that streaming takes over without a gap or an
    overlap."""

    ROWS = 200

    def test_existing_rows_are_read_events_with_the_values_pgoutput_sends(self):
        self.psql(
            """
            CREATE TABLE typed (
              id int PRIMARY KEY, t text, n numeric(20,6), f float8, r real, ts timestamptz,
              tsn timestamp, d date, tm time, iv interval, b bool, j jsonb, js json, ba bytea,
              arr text[], ia int[], u uuid, nothing text);
            INSERT INTO typed
            SELECT g,
                   E'tab\\there\\nnew line \\\\ back ' || g || ' 한국어 "q"',
                   g * 1.5 / 7, CASE g % 50 WHEN 0 THEN 'NaN'::float8 WHEN 1 THEN '-Infinity'
                                ELSE g / 3.0 END,
                   g / 7.0, timestamptz '2024-02-29 23:59:59.123456+09' + g * interval '1 day',
                   timestamp '1999-12-31 12:00' - g * interval '1 hour', date '2024-01-01' + g,
                   time '12:34:56.789' + g * interval '1 second', g * interval '1 day 2 hours',
                   g % 2 = 0, jsonb_build_object('k', g, 'a', jsonb_build_array(1, 'x')),
                   '{"spaced" :  true}', decode(md5(g::text), 'hex'),
                   ARRAY['a', NULL, 'c"d', E'e\\\\f', 'g,h'], ARRAY[g, -g],
                   md5(g::text)::uuid, NULL
              FROM generate_series(1, ROWS) g;
            """.replace("ROWS", str(self.ROWS))
        )
        cfg = self.capture_config(["public.typed"])
        cap = self.start_capture(cfg)
        with cap:
            rec = wait_backfilled_and_streaming(cfg, cap)
            # Rewriting every row unchanged makes pgoutput send each one: its after image is
            # the reference for the read event of the same row.
            self.psql("UPDATE typed SET id = id")
            self.psql("INSERT INTO typed (id, t) VALUES (100000, 'after the snapshot')")
            self.psql("DELETE FROM typed WHERE id = 1")
            msgs = in_topic_order(self.consume([cfg.topic("public.typed")],
                                               count=2 * self.ROWS + 3))
            wait_confirmed_current(cfg)
            extra = self.read_all(cfg, ["public.typed"])
        self.assertEqual(len(extra), len(msgs), "records beyond the expected ones arrived")
        self.assertEqual(rec["rows"], self.ROWS)

        reads = [m for m in msgs if m["value"] and m["value"]["op"] == "r"]
        updates = {m["key"]["id"]: m["value"] for m in msgs
                   if m["value"] and m["value"]["op"] == "u"}
        # Every pre-existing row exactly once, in key order, before any streamed change.
        self.assertEqual([m["key"]["id"] for m in reads], list(range(1, self.ROWS + 1)))
        self.assertEqual([m["value"]["op"] for m in msgs[: self.ROWS]], ["r"] * self.ROWS)
        self.assertEqual(sorted(updates), list(range(1, self.ROWS + 1)))
        for m in reads:
            value = m["value"]
            self.assertIsNone(value["before"])
            self.assertEqual(value["after"], updates[m["key"]["id"]]["after"],
                             f"read event of id {m['key']['id']} differs from pgoutput's row")
            self.assertEqual(list(value), ["before", "after", "source", "transaction", "op",
                                           "ts_ms", "ts_us", "ts_ns"])
            self.assertEqual(value["source"]["lsn"], dstest.lsn_to_int(rec["snapshot_lsn"]))
            self.assertEqual(value["source"]["table"], "typed")
        markers = [m["value"]["source"]["snapshot"] for m in reads]
        self.assertEqual(markers, ["first"] + ["true"] * (self.ROWS - 2) + ["last"])
        # The streamed changes are marked as such and come after the consistent point.
        for v in updates.values():
            self.assertEqual(v["source"]["snapshot"], "false")
            self.assertGreater(v["source"]["lsn"], dstest.lsn_to_int(rec["snapshot_lsn"]))
        tail = [(m["key"]["id"], m["value"] and m["value"]["op"]) for m in msgs[-3:]]
        self.assertEqual(tail, [(100000, "c"), (1, "d"), (1, None)])
        self.assertIn("initial backfill of slot", cap.log_text())

    def test_markers_name_first_and_last_of_each_table_and_of_the_whole_backfill(self):
        self.psql(
            "CREATE TABLE ma (id int PRIMARY KEY); INSERT INTO ma VALUES (1), (2), (3);"
            "CREATE TABLE mb (id int PRIMARY KEY);"
            "CREATE TABLE mc (id int PRIMARY KEY); INSERT INTO mc VALUES (10), (20);"
            "CREATE TABLE md (id int PRIMARY KEY); INSERT INTO md VALUES (7);"
        )
        tables = ["public.ma", "public.mb", "public.mc", "public.md"]
        cfg = self.capture_config(tables)
        cap = self.start_capture(cfg)
        with cap:
            wait_backfilled_and_streaming(cfg, cap)
            msgs = in_topic_order(self.consume([cfg.topic(t) for t in tables], count=6))
        got = [(m["value"]["source"]["table"], m["key"]["id"], m["value"]["source"]["snapshot"])
               for m in msgs]
        self.assertEqual(got, [
            ("ma", 1, "first"), ("ma", 2, "true"), ("ma", 3, "last_in_data_collection"),
            ("mc", 10, "first_in_data_collection"), ("mc", 20, "last_in_data_collection"),
            ("md", 7, "last"),
        ])

    def test_snapshot_mode_never_publishes_no_read_events(self):
        self.psql("CREATE TABLE nev (id int PRIMARY KEY, v text, n int);"
                  "INSERT INTO nev SELECT g, 'old', g FROM generate_series(1, 50) g")
        cfg = self.capture_config(["public.nev"], capture={"snapshot_mode": "never"})
        cap = self.start_capture(cfg)
        with cap:
            def streaming():
                info = dstest.slot_info(cfg.slot)
                return info and info["active"]

            dstest.wait_for(streaming, timeout=30, what="capture to stream")
            self.psql("INSERT INTO nev VALUES (51, 'new', 51)")
            wait_confirmed_current(cfg)
            msgs = self.read_all(cfg, ["public.nev"])
        self.assertEqual([(m["key"]["id"], m["value"]["op"]) for m in msgs], [(51, "c")])
        self.assertIsNone(backfill_record(self.db, cfg.slot))


class BackfillConsistencyTest(BackfillCase):
    """Under concurrent writes and a crash, the topic converges to the table."""

    def create_table(self, name, rows):
        self.psql(f"CREATE TABLE {name} (id int PRIMARY KEY, v text, n int);"
                  f"INSERT INTO {name} SELECT g, md5(g::text), 0 FROM generate_series(1, {rows}) g")

    def test_concurrent_writes_during_the_backfill_converge_to_the_table(self):
        rows = 30000
        self.create_table("busy", rows)
        writer = Writer(self.db, "busy", rows + 1, rows)
        self.addCleanup(writer.stop_event.set)
        writer.start()
        writer.wait_batches(3)
        # At most 100 unacknowledged records: the backfill waits for Kafka every 50 rows,
        # which stretches it over seconds of concurrent writes.
        cfg = self.capture_config(["public.busy"], capture={"max_inflight_messages": 100})
        cap = self.start_capture(cfg)
        with cap:
            dstest.wait_for(lambda: (backfill_record(self.db, cfg.slot) or {}).get("snapshot_lsn"),
                            timeout=60, what="the backfill to start")
            started_at = writer.batches
            wait_backfilled_and_streaming(cfg, cap)
            during = writer.batches - started_at
            writer.wait_batches(5)
            writer.stop()
            wait_confirmed_current(cfg)
            msgs = self.read_all(cfg, ["public.busy"])
        self.assertGreaterEqual(during, 3, "the write load did not overlap the backfill")
        ops = {m["value"]["op"] for m in msgs if m["value"]}
        self.assertEqual(ops, {"r", "c", "u", "d"})
        reads = [m["key"]["id"] for m in msgs if m["value"] and m["value"]["op"] == "r"]
        self.assertEqual(len(reads), len(set(reads)), "a row was read twice")
        assert_same_state(self, reconstruct(msgs), table_state(self.db, "busy"))

    def test_kill_9_during_the_backfill_then_restart_converges_to_the_table(self):
        rows = 200000
        self.create_table("crashy", rows)
        slot = dstest.unique_name("s_crash")
        publication = dstest.unique_name("p_crash")
        prefix = f"ds.{self._test_slug}"
        slow = self.capture_config(["public.crashy"], slot=slot, publication=publication,
                                   topic_prefix=prefix, capture={"max_inflight_messages": 100})
        cap = self.start_capture(slow)
        # Writes start after the slot's consistent point, so each delete is streamed.
        dstest.wait_for(lambda: (backfill_record(self.db, slot) or {}).get("snapshot_lsn"),
                        timeout=60, what="the backfill to start")
        writer = Writer(self.db, "crashy", rows + 1, 2000)
        self.addCleanup(writer.stop_event.set)
        writer.start()
        # Mid-way: a few thousand read events are in Kafka, far from all of them.
        self.consume([slow.topic("public.crashy")], count=3000, timeout_ms=60000)
        cap.kill()
        first = backfill_record(self.db, slot)
        self.assertIsNotNone(first)
        self.assertFalse(first["completed"], "the backfill completed before the kill")
        self.assertEqual(dstest.slot_info(slot)["confirmed_flush_lsn"], first["snapshot_lsn"])
        # While capture is down: rows the first attempt surely published change and go away.
        writer.wait_batches(3)
        self.psql("DELETE FROM crashy WHERE id <= 100; UPDATE crashy SET v = 'moved' "
                  "WHERE id BETWEEN 101 AND 200")

        fast = self.capture_config(["public.crashy"], slot=slot, publication=publication,
                                   topic_prefix=prefix)
        again = self.start_capture(fast)
        with again:
            rec = wait_backfilled_and_streaming(fast, again, timeout=180)
            writer.wait_batches(5)
            writer.stop()
            wait_confirmed_current(fast)
            msgs = self.read_all(fast, ["public.crashy"])
        self.assertIn(f'the initial backfill of slot "{slot}" did not complete', again.log_text())
        # The slot kept its position: the changes since the first snapshot were streamed.
        self.assertEqual(rec["snapshot_lsn"], first["snapshot_lsn"])
        deleted = [m for m in msgs if m["value"] and m["value"]["op"] == "d"
                   and m["key"]["id"] <= 100]
        self.assertEqual(len(deleted), 100, "the deletes made while capture was down")
        assert_same_state(self, reconstruct(msgs), table_state(self.db, "crashy"))


if __name__ == "__main__":
    unittest.main()
