"""Topics that keep history: capture creates the topics it writes (the change topics of its
tables and the dead-letter topic) with the admin API, compacted by default, before it
produces; apply creates its dead-letter topic; an existing topic that deletes by time is left
as it is and warned about; a truncate is a keyed record a compacted topic accepts, and apply
still applies it. Against a real PostgreSQL 15 and Kafka (whose broker would auto-create a
topic with its time-based retention if dualsync let it).
"""

import os

import dstest

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
PEOPLE_MAPPING = os.path.join(FIXTURES, "apply_people.json")

USAGE = 2


def wait_streaming(cfg, cap):
    def streaming():
        if not cap.running():
            raise AssertionError(f"capture exited with {cap.exit_code()}:\n{cap.log_tail()}")
        info = dstest.slot_info(cfg.slot)
        return info and info["active"] and info["confirmed_flush_lsn"]

    dstest.wait_for(streaming, timeout=60, what=f"capture to stream from slot {cfg.slot}")


class CaptureCreatesTopicsTest(dstest.ServicesTestCase):
    def test_topics_are_created_with_the_configured_partitions_policy_and_settings(self):
        self.psql(
            "CREATE TABLE tp_a (id int PRIMARY KEY, v text);"
            "CREATE TABLE tp_b (id int PRIMARY KEY, v text)"
        )
        cfg = self.capture_config(
            ["public.tp_a", "public.tp_b"],
            kafka={"message.max.bytes": 3000000},
            topics={
                "partitions": 3,
                "config": {"min.compaction.lag.ms": "60000", "segment.ms": 3600000},
            },
        )
        topics = [cfg.topic("public.tp_a"), cfg.topic("public.tp_b")]
        dlq = f"{cfg.topic_prefix}.dlq"
        # Nothing has made them yet (a test tool that asks about a topic must not create it).
        before = dstest.describe_topics(topics + [dlq])
        self.assertEqual([before[t]["exists"] for t in topics + [dlq]], [False, False, False])

        cap = self.start_capture(cfg)
        wait_streaming(cfg, cap)
        described = dstest.describe_topics(topics + [dlq])
        for t in topics:
            d = described[t]
            self.assertTrue(d["exists"], t)
            self.assertEqual(d["partitions"], 3, t)
            self.assertEqual(d["config"]["cleanup.policy"], "compact", t)
            self.assertEqual(d["config"]["min.compaction.lag.ms"], "60000", t)
            self.assertEqual(d["config"]["segment.ms"], "3600000", t)
            # As large as the producer's message.max.bytes, not the broker's 1048588.
            self.assertEqual(d["config"]["max.message.bytes"], "3000000", t)
            self.assertIn(f"created topic {t}: 3 partitions, cleanup.policy=compact", cap.log_text())
        # The dead-letter topic keeps every dead letter, keyed or not, for ever.
        d = described[dlq]
        self.assertTrue(d["exists"])
        self.assertEqual(d["partitions"], 3)
        self.assertEqual(
            (d["config"]["cleanup.policy"], d["config"]["retention.ms"], d["config"]["retention.bytes"]),
            ("delete", "-1", "-1"),
        )
        self.assertNotIn("warning:", cap.log_text())

        # A message above the broker's default topic limit but within the producer's is
        # accepted: the topic's limit follows the producer's.
        self.psql(
            "INSERT INTO tp_a SELECT 1, string_agg(md5(g::text || random()::text), '') "
            "FROM generate_series(1, 40000) g"
        )
        self.psql("INSERT INTO tp_b VALUES (1, 'small')")
        [big] = self.consume([topics[0]], count=1)
        self.assertEqual(big["key"], {"id": 1})
        self.assertGreater(len(big["value"]["after"]["v"]), 1048588)
        [small] = self.consume([topics[1]], count=1)
        self.assertEqual(small["value"]["after"], {"id": 1, "v": "small"})
        cap.stop()

    def test_existing_topic_that_deletes_by_time_is_left_alone_and_warned_about(self):
        self.psql("CREATE TABLE tp_old (id int PRIMARY KEY); CREATE TABLE tp_new (id int PRIMARY KEY)")
        cfg = self.capture_config(["public.tp_old", "public.tp_new"])
        old, new = cfg.topic("public.tp_old"), cfg.topic("public.tp_new")
        # As the broker's auto-creation would have made it.
        dstest.create_topic(old, config={"cleanup.policy": "delete", "retention.ms": "3600000"})

        cap = self.start_capture(cfg)
        wait_streaming(cfg, cap)
        log = cap.log_text()
        [warning] = [line for line in log.splitlines() if "warning:" in line]
        self.assertIn(f"topic {old} deletes by time or size "
                      "(cleanup.policy=delete, retention.ms=3600000 (1 hour))", warning)
        self.assertIn("history is then not replayable", warning)
        self.assertIn(f"fix: kafka-configs.sh --bootstrap-server {dstest.kafka_bootstrap()} --alter "
                      f"--entity-type topics --entity-name {old} --add-config cleanup.policy=compact",
                      warning)
        self.assertNotIn(f"created topic {old}", log)
        self.assertIn(f"created topic {new}: 1 partitions, cleanup.policy=compact", log)
        described = dstest.describe_topics([old, new])
        # Not changed: its owner decides.
        self.assertEqual(described[old]["config"]["cleanup.policy"], "delete")
        self.assertEqual(described[old]["config"]["retention.ms"], "3600000")
        self.assertEqual(described[new]["config"]["cleanup.policy"], "compact")
        self.assertEqual(described[new]["partitions"], 1)
        # It is still written to.
        self.psql("INSERT INTO tp_old VALUES (1)")
        [msg] = self.consume([old], count=1)
        self.assertEqual(msg["key"], {"id": 1})
        cap.stop()


class TopicSettingsErrorsTest(dstest.ServicesTestCase):
    def run_capture(self, cfg):
        proc = dstest.run_dualsync(["capture", "--config", cfg.path])
        return proc.returncode, proc.stderr

    def test_out_of_bounds_partitions_exit_2_naming_the_setting(self):
        self.psql("CREATE TABLE tp_bad (id int PRIMARY KEY)")
        cfg = self.capture_config(["public.tp_bad"], topics={"partitions": 0})
        code, err = self.run_capture(cfg)
        self.assertEqual(code, USAGE, err)
        self.assertIn("$.topics.partitions: expected an integer between 1 and 100000, got 0", err)

    def test_setting_the_broker_refuses_exits_2_naming_the_topic_and_leaves_nothing(self):
        self.psql("CREATE TABLE tp_refused (id int PRIMARY KEY)")
        cfg = self.capture_config(["public.tp_refused"], topics={"config": {"retention.ms": "soon"}})
        topic = cfg.topic("public.tp_refused")
        code, err = self.run_capture(cfg)
        self.assertEqual(code, USAGE, err)
        self.assertIn(f"cannot create topic {topic} (1 partitions, replication factor -1: the "
                      "broker's default): INVALID_CONFIG", err)
        self.assertIn("retention.ms", err)
        self.assertFalse(dstest.describe_topics([topic])[topic]["exists"])
        # The publication this run created went again, and no slot was made.
        self.assertEqual(
            self.psql_value(f"SELECT count(*) FROM pg_publication WHERE pubname = '{cfg.publication}'"),
            "0")
        self.assertIsNone(dstest.slot_info(cfg.slot))

    def test_replication_factor_above_the_brokers_exits_2(self):
        self.psql("CREATE TABLE tp_rf (id int PRIMARY KEY)")
        cfg = self.capture_config(["public.tp_rf"], topics={"replication_factor": 3})
        code, err = self.run_capture(cfg)
        self.assertEqual(code, USAGE, err)
        self.assertIn(f"cannot create topic {cfg.topic('public.tp_rf')} (1 partitions, replication "
                      "factor 3): INVALID_REPLICATION_FACTOR", err)


class ApplyTopicsTest(dstest.ApplyTestCase):
    def setUp(self):
        super().setUp()
        self.psql(
            "DROP TABLE IF EXISTS legacy_people;"
            "CREATE TABLE legacy_people (id int PRIMARY KEY, name text, email text, kind text,"
            " visits int)"
        )
        self.newdb = self.target_database("people_topics")
        self.psql(
            "CREATE TABLE people (id int PRIMARY KEY, full_name text, email text,"
            " kind text NOT NULL, visits int)",
            db=self.newdb,
        )

    def test_apply_creates_its_dead_letter_topic_keeping_everything(self):
        dlq = f"ds.{self._test_slug}.own-dlq"
        cfg = self.apply_config({"newdb": self.newdb}, [PEOPLE_MAPPING], f"ds.{self._test_slug}",
                                apply={"dlq_topic": dlq})
        self.assertFalse(dstest.describe_topics([dlq])[dlq]["exists"])
        apply = self.start_apply(cfg)
        d = dstest.describe_topics([dlq])[dlq]
        self.assertTrue(d["exists"], apply.log_tail())
        self.assertEqual(
            (d["config"]["cleanup.policy"], d["config"]["retention.ms"], d["config"]["retention.bytes"]),
            ("delete", "-1", "-1"),
        )
        self.assertIn(f"created topic {dlq}: 1 partitions, cleanup.policy=delete", apply.log_text())
        apply.stop()

    def test_truncate_on_a_compacted_topic_is_accepted_and_applied(self):
        capture_cfg, capture = self.start_streaming_capture(["public.legacy_people"])
        topic = capture_cfg.topic("public.legacy_people")
        self.assertEqual(dstest.describe_topics([topic])[topic]["config"]["cleanup.policy"], "compact")
        cfg = self.apply_config({"newdb": self.newdb}, [PEOPLE_MAPPING], capture_cfg.topic_prefix)
        apply = self.start_apply(cfg)
        self.psql("INSERT INTO legacy_people VALUES (1, 'Ann', 'a@x', 'D', 1), (2, 'Bo', 'b@x', 'N', 2)")
        self.wait_rows(self.newdb, "SELECT id FROM people ORDER BY id", [("1",), ("2",)])

        self.psql("TRUNCATE legacy_people")
        self.wait_rows(self.newdb, "SELECT id FROM people ORDER BY id", [])
        self.psql("INSERT INTO legacy_people VALUES (3, 'Cy', 'c@x', 'P', 3)")
        self.wait_rows(self.newdb, "SELECT id, full_name FROM people ORDER BY id", [("3", "Cy")])

        # Kafka took the truncate, keyed, between the rows before and after it.
        msgs = self.consume([topic], count=4)
        self.assertEqual(
            [(m["key"], m["value"]["op"]) for m in msgs],
            [({"id": 1}, "c"), ({"id": 2}, "c"),
             ({"__dualsync_truncate": "public.legacy_people"}, "t"), ({"id": 3}, "c")],
        )
        self.assertTrue(capture.running(), capture.log_tail())
        self.assertNotIn("delivery to topic", capture.log_text())
        self.assertEqual(dstest.consume([cfg.dlq_topic], idle_ms=500, timeout_ms=5000, check=False), [])
        apply.stop()
        capture.stop()


if __name__ == "__main__":
    import unittest

    unittest.main()
