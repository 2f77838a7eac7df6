"""Fault tolerance of `dualsync capture`: crashes, broker outages, lost replication
connections, PostgreSQL restarts and idle slots, each under a real write load.

Every test drives a deterministic load (LoadWriter): one writer, many small transactions,
each changing exactly one row of a published table and recording that change in an
unpublished audit table in the same transaction. The audit table is therefore exactly the
list of committed changes, in commit order (one writer: commit order is iteration order),
and the topic is checked against it (check_topic): every committed change is present, and
per key the changes appear in commit order; the only repetition allowed is a resent tail
(after a restart capture resends what the slot had not confirmed).

Stop points are row counts of the audit table, message counts in Kafka and slot LSNs. The
writer waits at a gate (a row of a control table) whenever it reaches the limit the test set,
so no wait can race the end of the load.
"""

import json
import os
import re
import signal
import time
import subprocess
import unittest

import dstest

MIB = 1024 * 1024


def rss_bytes(pid):
    """The resident set size of process @pid (VmRSS of /proc/PID/status)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def lsn_text(value):
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


class LoadWriter:
    """A background psql running a DO block that commits once per iteration i: it picks key
    1 + (i * 7919) % nkeys (7919 is prime, so keys are visited in a fixed permutation),
    inserts it when absent, deletes it when i is a multiple of @delete_every, and otherwise
    updates it, setting v = i (so per key, v only grows). Each change is recorded in the
    audit table (i, xid, k, v, op) in the same transaction. Before iteration i it waits while
    i exceeds gate.lim."""

    def __init__(self, case, name, nkeys, pad_bytes=200, delete_every=7, pause_every=10):
        self.case = case
        self.table = dstest.unique_name(f"load_{name}")
        self.audit = self.table + "_audit"
        self.gate = self.table + "_gate"
        self.nkeys = nkeys
        self.pad_blocks = max(1, pad_bytes // 32)  # md5 hex strings are 32 characters
        self.delete_every = delete_every
        # A 5 ms pause every @pause_every iterations keeps the writer near 2,000 transactions a
        # second here, so a load of 20,000 lasts long enough to be interrupted mid-way.
        self.pause_every = pause_every
        self.proc = None
        self.log_path = os.path.join(case.work_dir, f"{self.table}-writer.log")
        case.psql(
            f"CREATE TABLE {self.table} (k int PRIMARY KEY, v int NOT NULL, pad text NOT NULL);"
            f"CREATE TABLE {self.audit} (i int PRIMARY KEY, xid bigint NOT NULL, k int NOT NULL,"
            "  v int NOT NULL, op char(1) NOT NULL);"
            f"CREATE TABLE {self.gate} (lim int NOT NULL);"
            f"INSERT INTO {self.gate} VALUES (0);"
        )

    @property
    def qualified(self):
        return f"public.{self.table}"

    def set_limit(self, lim):
        """Lets the writer run up to iteration @lim (inclusive)."""
        self.case.psql(f"UPDATE {self.gate} SET lim = {int(lim)}")

    def start(self, first, last, limit=None):
        """Runs iterations @first..@last in the background; the gate is set to @limit (default
        @last) first."""
        if self.proc is not None and self.proc.poll() is None:
            raise AssertionError("the writer is already running")
        self.set_limit(last if limit is None else limit)
        pad = f"repeat(md5(i::text), {self.pad_blocks})"
        xid = "pg_current_xact_id()::text::bigint"
        sql = f"""
DO $load$
DECLARE
    cur int;
    kk int;
BEGIN
    FOR i IN {int(first)}..{int(last)} LOOP
        WHILE i > (SELECT lim FROM {self.gate}) LOOP
            PERFORM pg_sleep(0.01);
        END LOOP;
        kk := 1 + (i * 7919) % {self.nkeys};
        SELECT v INTO cur FROM {self.table} WHERE k = kk;
        IF NOT FOUND THEN
            INSERT INTO {self.table} VALUES (kk, i, {pad});
            INSERT INTO {self.audit} VALUES (i, {xid}, kk, i, 'c');
        ELSIF i % {self.delete_every} = 0 THEN
            DELETE FROM {self.table} WHERE k = kk;
            INSERT INTO {self.audit} VALUES (i, {xid}, kk, cur, 'd');
        ELSE
            UPDATE {self.table} SET v = i, pad = {pad} WHERE k = kk;
            INSERT INTO {self.audit} VALUES (i, {xid}, kk, i, 'u');
        END IF;
        COMMIT;
        IF i % {self.pause_every} = 0 THEN
            PERFORM pg_sleep(0.005);
        END IF;
    END LOOP;
END
$load$;
"""
        e = dstest.env()
        cmd = [
            os.path.join(e["DS_PG_BIN"], "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
            "-h", e["PGHOST"], "-p", str(e["PGPORT"]), "-U", e["PGUSER"], "-d", self.case.db,
            "-c", sql,
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=dict(os.environ, PGAPPNAME="dstest-writer"),
            )
        self.case.addCleanup(self.kill)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.running():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def wait(self, timeout=120, expect_success=True):
        """Waits for the writer to finish; fails unless it succeeded (when @expect_success)."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the writer did not finish within {timeout}s ({self.committed()} committed)"
            ) from None
        if expect_success and code != 0:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                raise AssertionError(f"the writer failed (exit {code}):\n{f.read()[-3000:]}")
        return code

    def committed(self):
        """How many iterations committed."""
        return int(self.case.psql_value(f"SELECT count(*) FROM {self.audit}"))

    def last_committed(self):
        return int(self.case.psql_value(f"SELECT coalesce(max(i), 0) FROM {self.audit}"))

    def wait_committed(self, n, timeout=120):
        dstest.wait_for(
            lambda: self.committed() >= n, timeout, f"{n} committed iterations of the writer",
            interval=0.05,
        )

    def audit_rows(self):
        """The committed changes in commit order: [(i, xid, k, v, op)]."""
        rows = self.case.psql(f"SELECT i, xid, k, v, op FROM {self.audit} ORDER BY i")
        return [(int(i), int(x), int(k), int(v), op) for i, x, k, v, op in rows]


def change_of_message(m):
    """The identity of a data message: (txId, key, op, v), v None for a delete (whose
    before image holds only the key under the default replica identity)."""
    value = m["value"]
    src = value["source"]
    op = value["op"]
    if op == "d":
        v = None
        if value["before"]["k"] != m["key"]["k"]:
            raise AssertionError(f"delete message key and before image disagree: {m}")
    else:
        v = value["after"]["v"]
        if value["after"]["k"] != m["key"]["k"]:
            raise AssertionError(f"message key and after image disagree: {m}")
    return (src["txId"], m["key"]["k"], op, v)


class CaptureFaultTest(dstest.ServicesTestCase):
    # ---- helpers --------------------------------------------------------------------------

    def start_load_capture(self, writer, kafka=None, session_options=None, **capture):
        """A configuration for @writer's table (@kafka: librdkafka properties, @capture: the
        capture section, @session_options: server settings for capture's sessions, as
        "-c name=value"), capture started, its slot streaming. The slot is dropped when the
        test ends."""
        cfg = self.capture_config([writer.qualified], kafka=kafka, capture=capture or None)
        if session_options:
            cfg.data["source"]["conninfo"] += f" options='{session_options}'"
            with open(cfg.path, "w", encoding="utf-8") as f:
                json.dump(cfg.data, f, indent=2)
        self.addCleanup(self.drop_slot, cfg.slot)
        cap = self.start_capture(cfg)
        self.wait_streaming(cfg, cap)
        return cfg, cap

    def wait_streaming(self, cfg, cap, not_pid=None):
        """Waits until capture's walsender holds the slot (a different walsender than
        @not_pid, when given)."""

        def streaming():
            if not cap.running():
                raise AssertionError(
                    f"capture exited with {cap.exit_code()}:\n{cap.log_tail()}"
                )
            info = dstest.slot_info(cfg.slot)
            return info and info["active"] and info["active_pid"] != not_pid and info

        return dstest.wait_for(streaming, 60, f"capture to stream from slot {cfg.slot}")

    def drop_slot(self, slot):
        lit = dstest.quote_literal(slot)

        def dropped():
            self.psql(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                f"WHERE slot_name = {lit} AND active_pid IS NOT NULL"
            )
            self.psql(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                f"WHERE slot_name = {lit} AND NOT active"
            )
            return dstest.slot_info(slot) is None

        dstest.wait_for(dropped, 30, f"slot {slot} to be dropped")

    def confirmed(self, cfg):
        return dstest.lsn_to_int(dstest.slot_info(cfg.slot)["confirmed_flush_lsn"])

    def wait_caught_up(self, cfg, cap, timeout=120):
        """Waits until the slot confirmed everything written so far: its confirmed_flush_lsn
        reaches the current WAL position (read now, after the writes of interest)."""
        target = dstest.lsn_to_int(dstest.current_wal_lsn())

        def caught_up():
            if not cap.running():
                raise AssertionError(f"capture exited with {cap.exit_code()}:\n{cap.log_tail()}")
            return self.confirmed(cfg) >= target

        dstest.wait_for(caught_up, timeout, f"slot {cfg.slot} to confirm {lsn_text(target)}")
        return target

    def commit_records(self, since):
        """{xid: (start, end)} of every COMMIT record from LSN @since to the flushed end of
        the WAL (pg_walinspect). A slot at X sends again, after a restart, exactly the
        transactions whose COMMIT record starts at or after X."""
        self.psql("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        rows = self.psql(
            "SELECT xid, start_lsn, end_lsn FROM pg_get_wal_records_info("
            f"'{lsn_text(since)}', pg_current_wal_flush_lsn()) "
            "WHERE resource_manager = 'Transaction' AND record_type = 'COMMIT'"
        )
        return {int(x): (dstest.lsn_to_int(a), dstest.lsn_to_int(b)) for x, a, b in rows}

    def commit_start(self, writer, i, since):
        """Where the COMMIT record of the writer's iteration @i starts."""
        xid = int(self.psql_value(f"SELECT xid FROM {writer.audit} WHERE i = {i}"))
        return self.commit_records(since)[xid & 0xFFFFFFFF][0]

    def data_messages(self, cfg, writer, count=None):
        msgs = self.consume([cfg.topic(writer.qualified)], count=count, idle_ms=1500,
                            timeout_ms=90000)
        return [m for m in msgs if m["value"] is not None]

    def wait_messages(self, cfg, writer, n):
        """Waits until Kafka holds at least @n messages of the load's topic."""
        self.consume([cfg.topic(writer.qualified)], count=n, timeout_ms=90000)

    def check_topic(self, cfg, writer):
        """Reads the whole topic and checks it against the audit table:
          - the set of changes in Kafka is exactly the set of committed changes;
          - per key, the messages are the key's committed changes in commit order with
            strictly increasing source.lsn, except that a restart may resend a suffix of
            what the key already had (a replay must continue in order until it catches up
            or is itself cut short by the next restart);
        Returns {"messages": data messages read, "distinct": distinct changes, "resent":
        messages that repeat an earlier one}."""
        audit = writer.audit_rows()
        expected = {}  # key -> [change] in commit order
        for i, xid, k, v, op in audit:
            expected.setdefault(k, []).append((xid & 0xFFFFFFFF, k, op, None if op == "d" else v))
        msgs = self.data_messages(cfg, writer)

        accepted = {}  # key -> [change] first occurrences, in topic order
        lsns = {}  # key -> source.lsn of each accepted change
        position = {}  # key -> {change: index in accepted}
        replay = {}  # key -> index in accepted the next resent message must match
        resent = 0
        for m in msgs:
            change = change_of_message(m)
            k = change[1]
            lsn = m["value"]["source"]["lsn"]
            acc = accepted.setdefault(k, [])
            index = position.setdefault(k, {})
            where = f"key {k}, offset {m['offset']}, change {change}"
            if change in index:
                # A resend: the start of a replay, or its next message, or (after a second
                # restart) the start of a new replay no later than where the last one was.
                at = index[change]
                pos = replay.get(k)
                if pos is not None and at != pos and at > pos:
                    self.fail(f"{where}: a replay skipped {acc[pos]} (resent out of order)")
                resent += 1
                replay[k] = at + 1 if at + 1 < len(acc) else None
                continue
            if replay.get(k) is not None:
                self.fail(f"{where}: a new change while a replay has not yet resent "
                          f"{acc[replay[k]]}: the replay lost messages")
            if acc and lsn <= lsns[k][-1]:
                self.fail(f"{where}: source.lsn {lsn} is not after the key's previous change "
                          f"{acc[-1]} at lsn {lsns[k][-1]}")
            index[change] = len(acc)
            acc.append(change)
            lsns.setdefault(k, []).append(lsn)

        missing = [(k, c) for k, changes in expected.items() for c in changes
                   if c not in position.get(k, {})]
        unexpected = [(k, c) for k, changes in accepted.items() for c in changes
                      if c not in set(expected.get(k, []))]
        if missing:
            self.fail(f"{len(missing)} of {len(audit)} committed changes are not in Kafka, "
                      f"the first ones (key, (txId, key, op, v)): {missing[:10]}")
        if unexpected:
            self.fail(f"{len(unexpected)} changes in Kafka were never committed: {unexpected[:10]}")
        for k, changes in expected.items():
            self.assertEqual(accepted[k], changes, f"key {k}: changes out of commit order")
        distinct = sum(len(c) for c in accepted.values())
        self.assertEqual(distinct, len(audit))
        self.log(f"{len(msgs)} data messages, {distinct} distinct changes, {resent} resent")
        return {"messages": len(msgs), "distinct": distinct, "resent": resent}

    def log(self, text):
        print(f"  [{self._testMethodName}] {text}", flush=True)

    # ---- 1. SIGKILL -----------------------------------------------------------------------

    def test_kill_9_under_load_loses_nothing_and_keeps_per_key_order(self):
        writer = LoadWriter(self, "kill", nkeys=3000)
        cfg, cap = self.start_load_capture(writer)
        writer.start(1, 20000, limit=8000)

        # Kill 1, with librdkafka's default 5 ms linger: Kafka acknowledges within
        # milliseconds, so what it holds usually runs ahead of the slot (confirmed at most
        # every 100 ms) and the restart resends that tail.
        self.wait_messages(cfg, writer, 1500)
        at_kill = writer.committed()
        cap.kill()
        self.log(f"kill 1 at {at_kill} committed")
        self.assertLess(at_kill, 8000, "the writer is at its gate: the kill is not under load")
        # Changes keep coming while capture is down.
        writer.set_limit(16000)
        writer.wait_committed(at_kill + 1000)

        # Kill 2, with messages waiting up to a second in librdkafka before they are sent
        # (as with a slow broker): at any moment about a second of received commits is
        # unacknowledged, so the kill would lose changes if capture confirmed a commit
        # before Kafka acknowledged its messages. It comes once the restarted capture has
        # confirmed everything written before it started (the replay is over), while the
        # writer still runs.
        cfg.data["kafka"]["linger.ms"] = "1000"
        with open(cfg.path, "w", encoding="utf-8") as f:
            json.dump(cfg.data, f, indent=2)
        cap.start()
        self.wait_streaming(cfg, cap)
        self.wait_caught_up(cfg, cap)
        self.wait_messages(cfg, writer, at_kill + 1500)
        at_kill = writer.committed()
        cap.kill()
        self.log(f"kill 2 at {at_kill} committed")
        self.assertLess(at_kill, 16000, "the writer is at its gate: the kill is not under load")
        writer.set_limit(20000)
        writer.wait_committed(min(at_kill + 1000, 20000))
        cap.start()
        self.wait_streaming(cfg, cap)

        writer.wait()
        self.wait_caught_up(cfg, cap)
        self.assertEqual(self.check_topic(cfg, writer)["distinct"], 20000)
        cap.stop()

    def test_kill_9_inside_a_large_transaction_resends_it_whole(self):
        # One transaction of 30,000 rows, 30 times capture.max_inflight_messages: capture
        # pauses and resumes many times inside it. A kill in its middle leaves Kafka with
        # the start of it and the slot before it; the restart sends it again whole, in
        # order. Messages linger 200 ms in librdkafka, so delivering the transaction takes
        # several seconds and the kill lands inside it.
        rows = 30000
        self.psql("CREATE TABLE big_tx (id int PRIMARY KEY, pad text NOT NULL)")
        cfg = self.capture_config(["public.big_tx"], kafka={"linger.ms": "200"},
                                  capture={"max_inflight_messages": 1000})
        self.addCleanup(self.drop_slot, cfg.slot)
        cap = self.start_capture(cfg)
        self.wait_streaming(cfg, cap)
        topic = cfg.topic("public.big_tx")
        start_lsn = dstest.lsn_to_int(dstest.current_wal_lsn())
        self.psql("INSERT INTO big_tx SELECT g, repeat(md5(g::text), 4) "
                  f"FROM generate_series(1, {rows}) g")
        self.consume([topic], count=5000, timeout_ms=90000)
        cap.kill()
        confirmed = self.confirmed(cfg)
        first = self.consume([topic], idle_ms=1000, timeout_ms=90000)
        self.assertLess(len(first), rows, "the whole transaction was delivered before the kill")
        # What Kafka got is the start of the transaction, in order, and the slot is at or
        # before its commit. (It may be past its first changes: while the INSERT ran, the
        # walsender, with nothing to send until the commit, reported its position in
        # keepalives, and capture, with nothing in flight, confirmed it.)
        self.assertEqual([m["key"]["id"] for m in first], list(range(1, len(first) + 1)))
        xid = first[0]["value"]["source"]["txId"]
        self.assertLessEqual(confirmed, self.commit_records(start_lsn)[xid][0])

        cap.start()
        self.wait_streaming(cfg, cap)
        self.wait_caught_up(cfg, cap)
        msgs = self.consume([topic], idle_ms=1000, timeout_ms=90000)
        self.log(f"kill after {len(first)} of {rows} messages; {len(msgs)} in the end")
        # The partial first delivery, then the whole transaction again, in order.
        self.assertEqual([m["key"]["id"] for m in msgs[: len(first)]],
                         [m["key"]["id"] for m in first])
        self.assertEqual([m["key"]["id"] for m in msgs[len(first):]], list(range(1, rows + 1)))
        cap.stop()

    # ---- 2. Kafka outage ------------------------------------------------------------------

    def test_kafka_outage_pauses_capture_with_bounded_memory_and_loses_nothing(self):
        # 4,000-byte rows: TOAST compresses them in the WAL, but each message carries the
        # whole value, so the 30,000 changes made during the outage are about 130 MB of
        # messages: far more than the RSS bound, were capture to buffer them.
        writer = LoadWriter(self, "outage", nkeys=2000, pad_bytes=4000, pause_every=1000)
        # The walsender gives up on a receiver silent for 2 s: capture, paused, must keep
        # telling it where it stands (an outage of 20 s would otherwise cost the session).
        cfg, cap = self.start_load_capture(
            writer, session_options="-c wal_sender_timeout=2s", max_inflight_bytes=4 * MIB,
            status_interval_ms=200
        )
        before, during, after = 2000, 30000, 2000
        writer.start(1, before + during + after, limit=before)
        writer.wait_committed(before)
        self.wait_caught_up(cfg, cap)
        rss_before = rss_bytes(cap.pid)
        walsender = dstest.slot_info(cfg.slot)["active_pid"]
        outage_lsn = dstest.lsn_to_int(dstest.current_wal_lsn())

        dstest.kafka_stop()
        outage_start = time.monotonic()
        try:
            writer.set_limit(before + during)
            confirmed = []  # (phase B finished, slot's confirmed_flush_lsn)
            rss_max = 0
            while time.monotonic() - outage_start < 20 or not confirmed or not confirmed[-1][0]:
                self.assertTrue(cap.running(), f"capture exited during the outage:\n{cap.log_tail()}")
                rss_max = max(rss_max, rss_bytes(cap.pid))
                done = writer.committed() >= before + during
                confirmed.append((done, self.confirmed(cfg)))
                time.sleep(0.25)  # the outage lasts 20 s by design; this samples it
            info = dstest.slot_info(cfg.slot)
            behind = self.psql_value(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), write_lsn)::bigint "
                f"FROM pg_stat_replication WHERE pid = {info['active_pid']}")
        finally:
            dstest.kafka_start()
        self.log(f"RSS {rss_before / MIB:.1f} MiB before the outage, at most "
                 f"{rss_max / MIB:.1f} MiB during it ({len(confirmed)} samples); slot held "
                 f"{info['retained_wal_bytes'] / MIB:.1f} MiB of WAL; capture had read up to "
                 f"{int(behind) / MIB:.1f} MiB before the end of the WAL")
        self.assertLess(rss_max, 100 * MIB)
        # Once the writes of the outage were done, the slot stood still.
        held = {lsn for done, lsn in confirmed if done}
        self.assertEqual(len(held), 1, f"the slot moved while Kafka was down: {confirmed}")
        self.assertEqual(info["active_pid"], walsender, "the replication session was replaced")

        writer.set_limit(before + during + after)
        writer.wait()
        self.wait_caught_up(cfg, cap, timeout=180)
        self.assertTrue(cap.running())
        self.assertNotIn("replication connection lost", cap.log_text())
        result = self.check_topic(cfg, writer)
        self.assertEqual(result["distinct"], before + during + after)
        # Nothing written during the outage was ever confirmed during it: every position the
        # slot had is at or before the commit of the first change made while Kafka was down.
        self.assertLessEqual(max(lsn for _, lsn in confirmed),
                             self.commit_start(writer, before + 1, outage_lsn))
        cap.stop()

    # ---- 3. idle slot ---------------------------------------------------------------------

    def test_idle_published_table_does_not_make_the_slot_retain_wal(self):
        self.psql("CREATE TABLE idle_pub (id int PRIMARY KEY, v text);"
                  "CREATE TABLE busy_unpublished (id int, pad text)")
        cfg = self.capture_config(["public.idle_pub"])
        self.addCleanup(self.drop_slot, cfg.slot)
        cap = self.start_capture(cfg)
        self.wait_streaming(cfg, cap)

        start = dstest.lsn_to_int(dstest.current_wal_lsn())
        for n in range(4):
            self.psql(
                "INSERT INTO busy_unpublished SELECT g, repeat(md5(g::text), 31) "
                f"FROM generate_series({n * 25000 + 1}, {(n + 1) * 25000}) g"
            )
        written = dstest.lsn_to_int(dstest.current_wal_lsn()) - start
        self.assertGreater(written, 100 * MIB)

        # Why CHECKPOINT, and why possibly twice: the slot's restart_lsn moves only to an
        # xl_running_xacts record the walsender has decoded (the point where it serialized a
        # snapshot), and only once confirmed_flush_lsn has passed that record. The bgwriter
        # logs such a record after 15 s of activity; CHECKPOINT logs one at once. Having
        # decoded it and found nothing published to send, the walsender reaches the end of
        # the WAL and sends capture a keepalive with its position; capture, with nothing in
        # flight, confirms that position in its next status update, and the server moves
        # restart_lsn up to the record. One catch: the server keeps a single pending
        # restart candidate and ignores newer ones until that one is confirmed, so if a
        # bgwriter record decoded during the inserts was still pending when the checkpoint's
        # record was decoded, the slot only moves up to the older one. Once the slot has
        # confirmed the first checkpoint, nothing is pending, so a second round must work.
        for rounds in (1, 2):
            self.psql("CHECKPOINT")
            target = self.wait_caught_up(cfg, cap, timeout=30)
            info = dstest.slot_info(cfg.slot)
            if info["retained_wal_bytes"] < 16 * MIB:
                break
        self.log(f"{written / MIB:.1f} MiB of WAL written; after {rounds} CHECKPOINT round(s) "
                 f"the slot retains {info['retained_wal_bytes'] / MIB:.2f} MiB")
        self.assertLess(info["retained_wal_bytes"], 16 * MIB)
        # Confirmed at the end of the WAL as it was after the checkpoint (nothing was written
        # since but what the server writes by itself).
        self.assertLess(
            dstest.lsn_to_int(dstest.current_wal_lsn())
            - dstest.lsn_to_int(info["confirmed_flush_lsn"]), MIB)
        self.assertGreaterEqual(dstest.lsn_to_int(info["confirmed_flush_lsn"]), target)
        self.assertTrue(cap.running())
        self.assertEqual(self.consume([cfg.topic("public.idle_pub")], idle_ms=500,
                                      timeout_ms=1000, check=False), [])
        cap.stop()

    def test_slot_reaches_unpublished_wal_that_follows_unacknowledged_changes(self):
        # A published change, then at once an unpublished transaction. The walsender sends
        # the first, skips the second and, idle, sends a keepalive with its position while
        # the first change is still unacknowledged (messages linger 500 ms in librdkafka).
        # Once Kafka acknowledges it, the slot must move to that position: the walsender
        # sends no further keepalive while capture reports having received it, so nothing
        # else would tell capture the WAL it has seen ends there.
        self.psql("CREATE TABLE tail_pub (id int PRIMARY KEY); CREATE TABLE tail_unpub (id int)")
        cfg = self.capture_config(["public.tail_pub"], kafka={"linger.ms": "500"})
        self.addCleanup(self.drop_slot, cfg.slot)
        cap = self.start_capture(cfg)
        self.wait_streaming(cfg, cap)
        self.psql("INSERT INTO tail_pub VALUES (1); INSERT INTO tail_unpub VALUES (1)")
        target = dstest.lsn_to_int(dstest.current_wal_lsn())
        self.consume([cfg.topic("public.tail_pub")], count=1)
        # Nothing is written any more; the position must follow within a few status rounds
        # (without the fix it waits for the next WAL the server writes by itself).
        dstest.wait_for(lambda: self.confirmed(cfg) >= target, 5,
                        f"slot {cfg.slot} to confirm {lsn_text(target)}")
        cap.stop()

    # ---- 4. SIGTERM -----------------------------------------------------------------------

    def test_sigterm_under_load_exits_0_and_confirms_exactly_what_kafka_holds(self):
        writer = LoadWriter(self, "term", nkeys=2000)
        shutdown_ms = 10000
        cfg, cap = self.start_load_capture(writer, shutdown_timeout_ms=shutdown_ms)
        start_lsn = dstest.lsn_to_int(dstest.current_wal_lsn())
        writer.start(1, 12000, limit=9000)
        self.wait_messages(cfg, writer, 1500)

        before_stop = writer.committed()
        self.assertLess(before_stop, 9000, "the writer is at its gate: the stop is not under load")
        t0 = time.monotonic()
        cap.proc.send_signal(signal.SIGTERM)
        code = cap.wait_exit(timeout=shutdown_ms / 1000 + 10)
        elapsed = time.monotonic() - t0
        self.assertEqual(code, 0, cap.log_tail())
        self.assertLess(elapsed, shutdown_ms / 1000)
        self.log(f"SIGTERM at {before_stop} committed; exited 0 after {elapsed:.2f}s")

        # What Kafka holds now is all capture ever sent; the slot must be exactly as far as
        # that allows. The slot's position is made of commit end LSNs; each load
        # transaction's COMMIT record comes from the WAL.
        confirmed = self.confirmed(cfg)
        in_kafka = {m["value"]["source"]["txId"] for m in self.data_messages(cfg, writer)}
        audit = writer.audit_rows()
        # (Read after the audit rows: each of those has its COMMIT record flushed by now.)
        records = self.commit_records(start_lsn)
        commits = [(i, xid & 0xFFFFFFFF) + records[xid & 0xFFFFFFFF] for i, xid, _, _, _ in audit]
        delivered = [c for c in commits if c[1] in in_kafka]
        self.assertEqual(len(delivered), len(in_kafka))
        # Kafka holds the first n load transactions, no gap.
        self.assertEqual(delivered, commits[: len(delivered)])
        # Nothing the slot will not send again is missing from Kafka ...
        self.assertEqual([c for c in commits if c[2] < confirmed and c[1] not in in_kafka], [])
        # ... and the slot is at (or past) the end of every delivered transaction but the last:
        # capture stops reading at once, so it may have the last one's changes but not yet
        # its Commit message; that one is then sent again after the restart. The slot may be
        # further than the last delivered commit when nothing published followed it (a
        # keepalive told capture the server's position).
        self.assertGreaterEqual(confirmed, delivered[-2][3])
        last = delivered[-1]
        self.log(f"slot at {lsn_text(confirmed)}; {len(delivered)} transactions in Kafka, the "
                 f"last ends at {lsn_text(last[3])} ({'' if confirmed >= last[3] else 'not '}"
                 "confirmed)")

        # A restart delivers the rest: nothing missing.
        cap.start()
        self.wait_streaming(cfg, cap)
        writer.set_limit(12000)
        writer.wait()
        self.wait_caught_up(cfg, cap)
        self.assertEqual(self.check_topic(cfg, writer)["distinct"], 12000)
        cap.stop()

    def test_sigterm_while_reconnecting_with_kafka_down_exits_within_the_shutdown_timeout(self):
        # Between two replication sessions capture waits for Kafka to acknowledge what the
        # lost one sent, however long that takes; a stop signal must still end that wait.
        writer = LoadWriter(self, "term_down", nkeys=1000)
        shutdown_ms = 3000
        cfg, cap = self.start_load_capture(writer, shutdown_timeout_ms=shutdown_ms)
        writer.start(1, 4000, limit=2000)
        writer.wait_committed(2000)
        self.wait_caught_up(cfg, cap)
        outage_lsn = dstest.lsn_to_int(dstest.current_wal_lsn())

        dstest.kafka_stop()
        try:
            writer.set_limit(4000)
            writer.wait()
            # Capture has received every change (its reported write position is the end of
            # the WAL) and holds them unacknowledged.
            target = dstest.current_wal_lsn()
            pid = dstest.slot_info(cfg.slot)["active_pid"]
            dstest.wait_for(
                lambda: self.psql_value(
                    f"SELECT write_lsn >= '{target}' FROM pg_stat_replication WHERE pid = {pid}"
                ) == "t", 30, "capture to receive the changes made while Kafka is down")
            self.psql(f"SELECT pg_terminate_backend({pid})")
            dstest.wait_for(lambda: "replication connection lost" in cap.log_text(), 30,
                            "capture to notice the lost connection")
            t0 = time.monotonic()
            cap.proc.send_signal(signal.SIGTERM)
            code = cap.wait_exit(timeout=shutdown_ms / 1000 + 30)
            elapsed = time.monotonic() - t0
            held = self.confirmed(cfg)
        finally:
            dstest.kafka_start()
        self.log(f"exited {code} {elapsed:.2f}s after SIGTERM")
        self.assertLess(elapsed, shutdown_ms / 1000 + 5)
        # Unacknowledged messages remained: that is a failure to report, not a clean stop.
        self.assertEqual(code, 1)
        self.assertIn("were not acknowledged", cap.log_text())

        cap.start()
        self.wait_streaming(cfg, cap)
        self.wait_caught_up(cfg, cap)
        result = self.check_topic(cfg, writer)
        self.assertEqual(result["distinct"], 4000)
        self.assertLessEqual(held, self.commit_start(writer, 2001, outage_lsn),
                             "the slot passed changes Kafka never acknowledged")
        cap.stop()

    # ---- 5. replication connection lost ---------------------------------------------------

    def test_terminated_walsender_is_reconnected_and_nothing_is_lost(self):
        writer = LoadWriter(self, "term_ws", nkeys=2000)
        cfg, cap = self.start_load_capture(writer)
        info = dstest.slot_info(cfg.slot)
        writer.start(1, 12000, limit=6000)
        self.wait_messages(cfg, writer, 1500)

        at_cut = writer.committed()
        self.psql(f"SELECT pg_terminate_backend({info['active_pid']})")
        self.wait_streaming(cfg, cap, not_pid=info["active_pid"])
        self.assertIn("replication connection lost", cap.log_text())
        self.log(f"walsender {info['active_pid']} terminated at {at_cut} committed")
        writer.set_limit(12000)
        writer.wait()
        self.wait_caught_up(cfg, cap)
        self.assertTrue(cap.running())
        self.assertEqual(self.check_topic(cfg, writer)["distinct"], 12000)
        cap.stop()

    # ---- 6. PostgreSQL restart ------------------------------------------------------------

    def test_postgresql_restart_is_survived_with_nothing_lost(self):
        writer = LoadWriter(self, "pg_restart", nkeys=2000)
        cfg, cap = self.start_load_capture(writer)
        writer.start(1, 12000, limit=12000)
        self.wait_messages(cfg, writer, 1500)

        # The writer's session dies with the server; its last transaction rolls back with its
        # audit row, so the audit table still lists exactly what committed. PostgreSQL stays
        # down until capture has failed to reconnect twice, so the backoff is exercised.
        dstest.pg_stop()
        try:
            self.assertNotEqual(writer.wait(expect_success=False), 0)

            def retries():
                self.assertTrue(cap.running(), f"capture exited with PostgreSQL down:\n{cap.log_tail()}")
                return [int(ms) for ms in re.findall(r"retrying in (\d+) ms", cap.log_text())]

            delays = dstest.wait_for(lambda: len(retries()) >= 2 and retries(), 60,
                                     "capture to fail to reconnect twice")
        finally:
            dstest.pg_start()
        self.assertLess(delays[0], delays[1], f"no backoff between reconnection attempts: {delays}")
        at_stop = writer.last_committed()
        self.log(f"PostgreSQL restarted at {at_stop} committed")
        self.assertLess(at_stop, 12000)
        self.wait_streaming(cfg, cap)
        writer.start(at_stop + 1, 15000)
        writer.wait()
        self.wait_caught_up(cfg, cap)
        self.assertEqual(self.check_topic(cfg, writer)["distinct"], 15000)
        self.assertIn("replication connection lost", cap.log_text())
        cap.stop()


class CaptureKafkaLogTest(dstest.ServicesTestCase):
    """What capture says about Kafka: an outage once, its end once, and no warnings about
    properties meant for apply's consumer."""

    def wait_streaming(self, cfg):
        dstest.wait_for(
            lambda: (dstest.slot_info(cfg.slot) or {}).get("active")
            and dstest.slot_info(cfg.slot)["confirmed_flush_lsn"] is not None,
            timeout=30,
            what=f"capture to stream from slot {cfg.slot}",
        )

    def test_the_end_of_a_kafka_outage_is_logged_once_even_when_idle(self):
        self.psql("CREATE TABLE outage_log (id int PRIMARY KEY)")
        cfg = self.capture_config(["public.outage_log"])
        cap = self.start_capture(cfg)
        self.wait_streaming(cfg)
        self.psql("INSERT INTO outage_log VALUES (1)")
        self.consume([cfg.topic("public.outage_log")], count=1)

        dstest.kafka_stop()
        try:
            dstest.wait_for(
                lambda: "all brokers are down" in cap.log_text(),
                timeout=60,
                what="capture to log the outage",
            )
        finally:
            dstest.kafka_start()
        # Nothing is sent: capture looks for a broker itself.
        dstest.wait_for(
            lambda: "Kafka: a broker answers again after" in cap.log_text(),
            timeout=60,
            what="capture to log the end of the outage",
        )
        self.psql("INSERT INTO outage_log VALUES (2)")
        self.consume([cfg.topic("public.outage_log")], count=2)
        cap.stop()
        log = cap.log_text()
        self.assertEqual(log.count("all brokers are down"), 1, log)
        self.assertEqual(log.count("a broker answers again"), 1, log)
        self.assertRegex(log, r"Kafka: a broker answers again after \d+ s; capture resumes")

    def test_consumer_properties_of_a_shared_file_cause_no_librdkafka_warning(self):
        self.psql("CREATE TABLE shared_props (id int PRIMARY KEY)")
        cfg = self.capture_config(
            ["public.shared_props"],
            kafka={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
                   "fetch.min.bytes": 1, "linger.ms": 5},
        )
        cap = self.start_capture(cfg)
        self.wait_streaming(cfg)
        self.psql("INSERT INTO shared_props VALUES (1)")
        self.consume([cfg.topic("public.shared_props")], count=1)
        cap.stop()
        log = cap.log_text()
        self.assertNotIn("CONFWARN", log)
        self.assertNotIn("will be ignored", log)


if __name__ == "__main__":
    unittest.main()
