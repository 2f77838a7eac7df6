"""A standby capture: a second `dualsync capture` of the same config waits while the first
holds the replication slot, serving its metrics and a healthy /healthz that says "standby",
and takes over when the first dies (kill -9) under a write load, from the slot's confirmed
position: every committed change reaches Kafka. A first capture that is frozen (SIGSTOP, what
a lost host looks like to the server) is ended by the standby after
capture.standby_takeover_ms without a status update, rather than after the server's 60 s
wal_sender_timeout."""

import signal
import threading
import time
import unittest

import dstest
from test_metrics import free_port, http_get, scrape


class CaptureStandbyTest(dstest.ServicesTestCase):

    def setUp(self):
        super().setUp()
        self.psql("DROP TABLE IF EXISTS items; CREATE TABLE items (id int PRIMARY KEY, note text)")

    def start_on_port(self, cfg):
        port = free_port()
        cap = self.start_capture(cfg, extra_args=["--metrics-address", f"127.0.0.1:{port}"])
        dstest.wait_for(lambda: scrape(port) is not None or not cap.running(), 30,
                        "the metrics endpoint to answer")
        self.assertTrue(cap.running(), cap.log_tail())
        return cap, port

    def slot_pid(self, cfg):
        info = dstest.slot_info(cfg.slot)
        return info["active_pid"] if info and info["active"] else None

    def ids_in_topic_once_confirmed(self, cfg):
        """The ids of the rows in the items topic, once the slot confirmed everything committed
        so far (at least once: changes after the slot's confirmed position are sent again)."""
        end = dstest.current_wal_lsn()

        def confirmed():
            info = dstest.slot_info(cfg.slot)
            return info and info["confirmed_flush_lsn"] and \
                dstest.lsn_to_int(info["confirmed_flush_lsn"]) >= dstest.lsn_to_int(end)

        dstest.wait_for(confirmed, 60, f"the slot to confirm past {end}")
        return {m["value"]["after"]["id"] for m in self.consume(cfg.topic("public.items"))
                if isinstance(m["value"], dict) and m["value"].get("after")}

    def test_standby_waits_then_takes_over_after_kill_9_losing_nothing(self):
        cfg = self.capture_config(["public.items"])
        first, first_port = self.start_on_port(cfg)
        dstest.wait_for(lambda: self.slot_pid(cfg), 60, "the first capture to hold the slot")
        held_by = self.slot_pid(cfg)

        second, second_port = self.start_on_port(cfg)
        dstest.wait_for(lambda: "standby: replication slot" in second.log_text(), 30,
                        "the second capture to say it waits as a standby")
        status, body, _ = http_get(second_port, "/healthz")
        self.assertEqual(status, 200, body)
        self.assertTrue(body.startswith("ok: standby"), body)
        self.assertEqual(scrape(second_port)[("dualsync_capture_active", frozenset())], 0)
        self.assertEqual(scrape(first_port)[("dualsync_capture_active", frozenset())], 1)
        self.assertEqual(http_get(first_port, "/healthz")[:2], (200, "ok\n"))
        # The standby serves the slot's gauges too: it is where they stay visible.
        dstest.wait_for(lambda: ("dualsync_capture_slot_retained_wal_bytes", frozenset())
                        in (scrape(second_port) or {}), 30, "the standby's slot gauges")
        self.assertEqual(self.slot_pid(cfg), held_by, "the standby must not disturb the slot")

        # A write load across the takeover: one row per transaction.
        written = []
        stop = threading.Event()

        def load():
            i = 0
            while not stop.is_set():
                dstest.psql(f"INSERT INTO items VALUES ({i}, 'n{i}')", db=self.db)
                written.append(i)
                i += 1
                time.sleep(0.01)

        writer = threading.Thread(target=load)
        writer.start()
        try:
            dstest.wait_for(lambda: len(written) > 50, 30, "the load to start")
            first.kill()
            dstest.wait_for(lambda: "is now the active capture" in second.log_text(), 30,
                            "the standby to take over")
            dstest.wait_for(lambda: self.slot_pid(cfg) not in (None, held_by), 30,
                            "the standby's walsender to hold the slot")
            at_takeover = len(written)
            dstest.wait_for(lambda: len(written) > at_takeover + 50, 30,
                            "more of the load after the takeover")
        finally:
            stop.set()
            writer.join()
        self.assertEqual(scrape(second_port)[("dualsync_capture_active", frozenset())], 1)
        self.assertEqual(http_get(second_port, "/healthz")[:2], (200, "ok\n"))

        # Every committed row is in the topic (at least once: changes after the slot's
        # confirmed position are sent again).
        ids = self.ids_in_topic_once_confirmed(cfg)
        missing = sorted(set(written) - ids)
        self.assertEqual(missing, [], f"{len(missing)} of {len(written)} rows never reached Kafka")
        self.assertEqual(second.stop(), 0)

    def test_a_standby_stops_cleanly_on_sigterm(self):
        cfg = self.capture_config(["public.items"])
        self.start_on_port(cfg)
        dstest.wait_for(lambda: self.slot_pid(cfg), 60, "the first capture to hold the slot")
        standby, _ = self.start_on_port(cfg)
        dstest.wait_for(lambda: "standby: replication slot" in standby.log_text(), 30,
                        "the second capture to wait as a standby")
        self.assertEqual(standby.stop(timeout=30), 0)



    def test_a_frozen_holder_is_ended_after_the_takeover_time_losing_nothing(self):
        cfg = self.capture_config(["public.items"], capture={"standby_takeover_ms": 3000})
        first, _ = self.start_on_port(cfg)
        dstest.wait_for(lambda: self.slot_pid(cfg), 60, "the first capture to hold the slot")
        held_by = self.slot_pid(cfg)
        second, _ = self.start_on_port(cfg)
        dstest.wait_for(lambda: "standby: replication slot" in second.log_text(), 30,
                        "the second capture to say it waits as a standby")
        # Healthy, the first keeps the slot well past the takeover time.
        time.sleep(5)
        self.assertEqual(self.slot_pid(cfg), held_by, "a healthy holder must keep the slot")
        for i in range(100):
            dstest.psql(f"INSERT INTO items VALUES ({i}, 'before')", db=self.db)
        first.proc.send_signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            for i in range(100, 200):
                dstest.psql(f"INSERT INTO items VALUES ({i}, 'frozen')", db=self.db)
            dstest.wait_for(lambda: "is now the active capture" in second.log_text(), 30,
                            "the standby to take over from the frozen holder")
            took = time.monotonic() - frozen_at
            self.assertIn("ended its session to take over", second.log_text())
            self.assertLess(took, 20, "the takeover must not wait for wal_sender_timeout")
        finally:
            first.proc.send_signal(signal.SIGCONT)
        for i in range(200, 300):
            dstest.psql(f"INSERT INTO items VALUES ({i}, 'after')", db=self.db)
        ids = self.ids_in_topic_once_confirmed(cfg)
        self.assertEqual(sorted(set(range(300)) - ids), [])
        # The resumed first process lost its session: it becomes the new one's standby.
        dstest.wait_for(lambda: "standby: replication slot" in first.log_text(), 30,
                        "the resumed first capture to wait as a standby")
        self.assertNotEqual(self.slot_pid(cfg), held_by)
        self.assertTrue(first.running(), first.log_tail())
        self.assertEqual(first.stop(), 0)
        self.assertEqual(second.stop(), 0)


if __name__ == "__main__":
    unittest.main()
