"""Capture and apply on a three-broker Kafka cluster (KRaft, from the harness's jars): the topic
has three partitions, three replicas and min.insync.replicas=2. Under a write load, the
broker leading partition 0 is killed with kill -9 and restarted, then the whole cluster is
stopped for 30 s and started again. Both daemons carry on by themselves, and the new table
ends up exactly the mapping of the legacy table: nothing lost, nothing applied twice."""

import threading
import time
import unittest

import dstest
from test_apply_changes import LEGACY_DDL, NEW_DDL, PEOPLE_MAPPING, PEOPLE_QUERY, PeopleModel


class KafkaClusterTest(dstest.ApplyTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bootstrap = dstest.cluster_start()
        cls.addClassCleanup(dstest.cluster_stop)

    def leader_of_0(self, topic):
        """The node leading partition 0, or None while a broker that is gone keeps the
        cluster's answer from coming (a request sent to it fails)."""
        try:
            return dstest.partition_leaders(self.bootstrap, topic)[0]
        except AssertionError:
            return None

    def test_broker_loss_and_cluster_restart_under_load_lose_nothing(self):
        self.psql(LEGACY_DDL)
        newdb = self.target_database("people_cluster")
        self.psql(NEW_DDL, db=newdb)
        kafka = {"bootstrap.servers": self.bootstrap}
        capture_cfg = self.capture_config(["public.legacy_people"], kafka=kafka)
        topic = capture_cfg.topic("public.legacy_people")
        dstest.create_topic(topic, partitions=3, replicas=3, bootstrap=self.bootstrap,
                            config={"min.insync.replicas": "2"})
        capture = self.start_capture(capture_cfg)
        dstest.wait_for(lambda: (dstest.slot_info(capture_cfg.slot) or {}).get("active"), 60,
                        "capture to hold its slot")
        apply_cfg = self.apply_config({"newdb": newdb}, [PEOPLE_MAPPING],
                                      capture_cfg.topic_prefix, kafka=kafka)
        apply = self.start_apply(apply_cfg)

        model = PeopleModel(seed=3)
        stop = threading.Event()
        batches = []

        def load():
            while not stop.is_set():
                self.psql(model.transactions(count=1, size=10))
                batches.append(1)
                time.sleep(0.05)

        writer = threading.Thread(target=load)
        writer.start()
        try:
            dstest.wait_for(lambda: len(batches) >= 20, 60, "the load to start")
            victim = dstest.partition_leaders(self.bootstrap, topic)[0]
            self.assertIn(victim, (1, 2, 3))
            dstest.broker_kill(victim)
            # The partition moves to another in-sync replica; writes go on meanwhile.
            dstest.wait_for(lambda: self.leader_of_0(topic) not in (None, victim, -1), 60,
                            "partition 0 to get a new leader")
            at_kill = len(batches)
            dstest.wait_for(lambda: len(batches) >= at_kill + 50, 60, "load with a broker down")
            dstest.broker_start(victim)

            # The whole cluster away for 30 s.
            dstest.cluster_stop()
            time.sleep(30)
            dstest.cluster_start()
            at_restart = len(batches)
            dstest.wait_for(lambda: len(batches) >= at_restart + 20, 60, "load after the restart")
        finally:
            stop.set()
            writer.join()

        self.assertTrue(capture.running(), capture.log_tail())
        self.assertTrue(apply.running(), apply.log_tail())
        self.wait_rows(newdb, PEOPLE_QUERY, model.expected_people(), timeout=180,
                       what="the new table to equal the mapping of every legacy row")
        self.assertEqual(capture.stop(), 0)
        self.assertEqual(apply.stop(), 0)


if __name__ == "__main__":
    unittest.main()
