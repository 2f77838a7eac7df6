"""Topics of several partitions end to end: capture keys each change to the partition Kafka's
default partitioner (murmur2) gives it, a truncate goes to every partition, and two apply
processes in one group, under a write load with truncates in the middle, leave the new table
exactly the mapping of the legacy table. dualsync.kafka_partition (the SQL twin of the partitioner that a partition's
truncate uses to find its keys) agrees with where capture's messages landed."""

import json
import threading
import time
import unittest

import dstest
from test_apply_changes import LEGACY_DDL, NEW_DDL, PEOPLE_MAPPING, PEOPLE_QUERY, PeopleModel

PARTITIONS = 4


class PartitionedTopicTest(dstest.ApplyTestCase):

    def test_truncates_under_load_on_four_partitions_and_two_processes_converge(self):
        self.psql(LEGACY_DDL)
        newdb = self.target_database("people_parts")
        self.psql(NEW_DDL, db=newdb)
        capture_cfg = self.capture_config(["public.legacy_people"])
        topic = capture_cfg.topic("public.legacy_people")
        dstest.create_topic(topic, partitions=PARTITIONS)
        capture = self.start_capture(capture_cfg)
        dstest.wait_for(lambda: (dstest.slot_info(capture_cfg.slot) or {}).get("active"), 60,
                        "capture to hold its slot")
        group = self.new_group("parts")
        apply_cfg = self.apply_config({"newdb": newdb}, [PEOPLE_MAPPING],
                                      capture_cfg.topic_prefix,
                                      apply={"batch_max_messages": 50, "group_id": group})
        applies = [self.start_apply(apply_cfg), self.start_apply(apply_cfg)]

        model = PeopleModel(seed=44)
        stop = threading.Event()
        rounds = []

        def load():
            while not stop.is_set():
                n = len(rounds)
                if n % 15 == 14:
                    # A truncate between two transactions; rows written after it survive.
                    self.psql("TRUNCATE legacy_people")
                    model.rows.clear()
                else:
                    self.psql(model.transactions(count=1, size=15))
                rounds.append(n)
                time.sleep(0.02)

        writer = threading.Thread(target=load)
        writer.start()
        try:
            dstest.wait_for(lambda: len(rounds) >= 50, 120, "50 rounds of load with 3 truncates")
        finally:
            stop.set()
            writer.join()
        # One more round after the last truncate, so that it must keep rows.
        self.psql(model.transactions(count=2, size=15))
        self.assertGreater(len(model.rows), 0)
        self.wait_rows(newdb, PEOPLE_QUERY, model.expected_people(), timeout=120,
                       what="the new table to equal the mapping of the legacy rows")

        # Both processes held partitions (each claim names its process).
        self.assertEqual(self.psql_value(
            "SELECT count(DISTINCT owner) FROM dualsync.offsets WHERE group_id = "
            + dstest.quote_literal(group), db=newdb), "2")
        messages = self.consume(topic)
        truncates = [m for m in messages if isinstance(m["key"], dict)
                     and "__dualsync_truncate" in m["key"]]
        rows = [m for m in messages if m not in truncates]
        # Every truncate reached every partition, saying which one it is for.
        per_partition = {p: sum(1 for m in truncates if m["partition"] == p)
                         for p in range(PARTITIONS)}
        self.assertEqual(len(set(per_partition.values())), 1, per_partition)
        self.assertGreaterEqual(per_partition[0], 3)
        for m in truncates:
            self.assertEqual((m["key"]["partition"], m["key"]["partitions"]),
                             (m["partition"], PARTITIONS))
        # The SQL partitioner agrees with the producer's, on every key.
        keys = sorted({json.dumps(m["key"], separators=(",", ":")) for m in rows})
        where = {json.dumps(m["key"], separators=(",", ":")): m["partition"] for m in rows}
        self.assertGreater(len(set(where.values())), 1, "the keys must spread over partitions")
        computed = dict(self.psql(
            "SELECT k, dualsync.kafka_partition(k, %d) FROM unnest(ARRAY[%s]) AS k"
            % (PARTITIONS, ",".join(dstest.quote_literal(k) for k in keys)), db=newdb))
        self.assertEqual({k: int(v) for k, v in computed.items()}, where)
        self.assertEqual(capture.stop(), 0)
        for apply in applies:
            self.assertEqual(apply.stop(), 0)


if __name__ == "__main__":
    unittest.main()
