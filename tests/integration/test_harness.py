"""The integration harness itself: the real PostgreSQL and Kafka are up and configured as
dualsync needs them, and the helpers the other tests rely on tell the truth."""

import json
import os
import subprocess
import unittest
import uuid

import dstest


class PostgresTest(dstest.ServicesTestCase):
    def test_answers_in_the_class_database(self):
        self.assertEqual(self.psql_value("SELECT current_database()"), self.db)

    def test_wal_level_is_logical(self):
        self.assertEqual(self.psql_value("SHOW wal_level"), "logical")

    def test_allows_enough_slots_and_senders(self):
        self.assertEqual(self.psql_value("SHOW max_replication_slots"), "20")
        self.assertEqual(self.psql_value("SHOW max_wal_senders"), "20")
        self.assertEqual(self.psql_value("SHOW synchronous_commit"), "on")

    def test_server_does_not_run_as_root(self):
        # The postmaster (first line of postmaster.pid) and a long-lived child of it.
        with open(os.path.join(dstest.env()["DS_PG_DATA"], "postmaster.pid")) as f:
            postmaster = int(f.readline())
        checkpointer = int(
            self.psql_value("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
        )
        for pid in (postmaster, checkpointer):
            self.assertNotEqual(os.stat(f"/proc/{pid}").st_uid, 0, f"PostgreSQL pid {pid} runs as root")

    def test_psql_returns_rows_and_tells_null_from_empty(self):
        rows = self.psql(
            "CREATE TABLE h (id int, v text);"
            "INSERT INTO h VALUES (1, 'a|b'), (2, ''), (3, NULL), (4, E'two\\nlines,\"q\"');"
            "SELECT id, v FROM h ORDER BY id;"
        )
        self.assertEqual(rows, [("1", "a|b"), ("2", ""), ("3", None), ("4", 'two\nlines,"q"')])

    def test_psql_failure_is_an_assertion_with_the_server_message(self):
        with self.assertRaisesRegex(AssertionError, "does_not_exist"):
            self.psql("SELECT * FROM does_not_exist")

    def test_slot_info_reports_positions_and_retained_wal(self):
        slot = dstest.unique_name("harness_slot")
        self.psql(f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')")
        info = dstest.slot_info(slot)
        self.assertIsNotNone(info["confirmed_flush_lsn"])
        self.assertIsNotNone(info["restart_lsn"])
        self.assertFalse(info["active"])
        before = info["retained_wal_bytes"]
        self.assertGreaterEqual(before, 0)
        # WAL written after the slot was created is held for it.
        self.psql("CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 5000) g")
        after = dstest.slot_info(slot)["retained_wal_bytes"]
        self.assertGreater(after, before + 1_000_000)
        self.assertIsNone(dstest.slot_info("no_such_slot_" + uuid.uuid4().hex[:8]))

    def test_drop_replication_slots_drops_the_databases_slots(self):
        slot = dstest.unique_name("harness_drop")
        self.psql(f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')")
        dstest.drop_replication_slots(self.db)
        self.assertIsNone(dstest.slot_info(slot))

    def test_wait_for_returns_the_value_or_fails_naming_what(self):
        self.assertEqual(dstest.wait_for(lambda: 42, timeout=1, what="forty-two"), 42)
        with self.assertRaisesRegex(AssertionError, "waiting for the impossible"):
            dstest.wait_for(lambda: False, timeout=0.3, what="the impossible")


class KafkaTest(dstest.ServicesTestCase):
    def setUp(self):
        super().setUp()
        self.topic = f"harness.{uuid.uuid4().hex[:12]}"

    def produce_three(self):
        dstest.produce(
            self.topic,
            [('{"id":1}', '{"op":"c","n":[1,2]}'), ("plain-key", "plain value"), ('{"id":1}', None)],
        )

    def check_three(self, messages):
        self.assertEqual(len(messages), 3, messages)
        self.assertEqual([m["offset"] for m in messages], [0, 1, 2])
        self.assertTrue(all(m["topic"] == self.topic and m["partition"] == 0 for m in messages))
        self.assertEqual(messages[0]["key"], {"id": 1})
        self.assertEqual(messages[0]["value"], {"op": "c", "n": [1, 2]})
        self.assertEqual(messages[1]["key"], "plain-key")
        self.assertEqual(messages[1]["value"], "plain value")
        self.assertEqual(messages[2]["key"], {"id": 1})
        self.assertIsNone(messages[2]["value"])  # a tombstone

    def test_round_trip_with_count(self):
        self.produce_three()
        self.check_three(dstest.consume([self.topic], count=3, timeout_ms=30000))

    def test_round_trip_until_idle_reads_everything_and_no_more(self):
        self.produce_three()
        self.check_three(dstest.consume([self.topic], idle_ms=500, timeout_ms=30000))

    def test_bytes_that_are_not_utf8_are_replaced_not_lost(self):
        proc = subprocess.run(
            [dstest.topic_dump_bin(), "-b", dstest.kafka_bootstrap(), "-t", self.topic, "--produce"],
            input=b"bin\t\xff\xfeabc\xc3\xa9\xe2\x82\n",
            capture_output=True,
            timeout=60,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr)
        [message] = dstest.consume([self.topic], count=1, timeout_ms=30000)
        self.assertEqual(message["key"], "bin")
        self.assertEqual(message["value"], "\ufffd\ufffdabc\u00e9\ufffd\ufffd")

    def test_missing_messages_fail_the_read(self):
        self.produce_three()
        with self.assertRaisesRegex(AssertionError, "read 3 of the 4 expected"):
            dstest.consume([self.topic], count=4, idle_ms=500, timeout_ms=30000)

    def test_a_topic_that_never_appears_times_out(self):
        with self.assertRaisesRegex(AssertionError, "never appeared"):
            dstest.consume([self.topic], timeout_ms=1500)

    def test_waits_for_a_topic_created_later(self):
        # topic_dump must already be waiting when the topic is created: start it first.
        reader = subprocess.Popen(
            [dstest.topic_dump_bin(), "-b", dstest.kafka_bootstrap(), "-t", self.topic,
             "-n", "3", "-T", "30000"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            self.produce_three()
            out, err = reader.communicate(timeout=60)
        finally:
            if reader.poll() is None:
                reader.kill()
                reader.wait()
        self.assertEqual(reader.returncode, 0, err)
        self.check_three([json.loads(line) for line in out.splitlines()])

    def test_restart_keeps_data_on_the_same_port(self):
        self.produce_three()
        self.assertTrue(dstest.kafka_probe())
        dstest.kafka_stop()
        try:
            self.assertFalse(dstest.kafka_probe(timeout_ms=1000), "Kafka still answers after kafka-stop")
        finally:
            dstest.kafka_start()
        self.assertTrue(dstest.kafka_probe())
        self.check_three(dstest.consume([self.topic], count=3, timeout_ms=30000))


if __name__ == "__main__":
    unittest.main()
