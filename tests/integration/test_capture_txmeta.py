"""Capture: Debezium's transaction metadata (provide.transaction.metadata) and the headers of
a primary-key change, against a real PostgreSQL 15 and a real Kafka broker.

With the metadata on, each transaction gets a BEGIN and an END record on
<topic_prefix>.transaction and each of its events a "transaction" block, exactly as
Debezium's PostgreSQL connector writes them (docs/debezium.md, "Transaction metadata").
"""

import unittest

import dstest
from test_capture_changes import CaptureCase


def tx_number(tx_id):
    """The "<txId>" part of a Debezium PostgreSQL transaction id "<txId>:<LSN>"."""
    number, _, lsn = tx_id.partition(":")
    assert number.isdigit() and lsn.isdigit(), tx_id
    return int(number)


class TransactionMetadataTest(CaptureCase):
    def test_multi_statement_multi_table_transaction(self):
        self.psql("CREATE TABLE tx_a (id int PRIMARY KEY, v text);"
                  "CREATE TABLE tx_b (id int PRIMARY KEY, n int)")
        cfg, cap = self.stream(["public.tx_a", "public.tx_b"],
                               debezium={"provide.transaction.metadata": "true"})
        tx_topic = f"{cfg.topic_prefix}.transaction"
        with cap:
            self.psql("INSERT INTO tx_b VALUES (1, 1)")
            self.psql("BEGIN;"
                      "INSERT INTO tx_a VALUES (1, 'one'), (2, 'two');"
                      "UPDATE tx_b SET n = 2 WHERE id = 1;"
                      "INSERT INTO tx_a VALUES (3, 'three');"
                      "DELETE FROM tx_b WHERE id = 1;"
                      "COMMIT")
            self.psql("INSERT INTO tx_a VALUES (4, 'four')")
            a = self.read(cfg, "public.tx_a", 4)
            b = self.read(cfg, "public.tx_b", 4)[1:]  # insert; update, delete, tombstone
            txs = self.consume([tx_topic], count=6, timeout_ms=60000, headers=True)[2:]

        # BEGIN, END of each transaction in turn, on one partition.
        self.assertEqual([m["value"]["status"] for m in txs], ["BEGIN", "END", "BEGIN", "END"])
        self.assertEqual({m["partition"] for m in txs}, {0})
        self.assertEqual([m["headers"] for m in txs], [[]] * 4)  # as Debezium's
        begin, end = txs[0], txs[1]
        first = [a[0], a[1], b[0], a[2], b[1]]  # in commit order
        xid = first[0]["value"]["source"]["txId"]

        # Ids are "<txId>:<LSN>", the LSN that of the BEGIN, of each event, of the END.
        for m in first:
            self.assertEqual(m["value"]["transaction"]["id"],
                             f"{xid}:{m['value']['source']['lsn']}")
        self.assertEqual(tx_number(begin["value"]["id"]), xid)
        self.assertEqual(begin["key"], {"id": begin["value"]["id"]})
        self.assertEqual(begin["value"]["id"], first[0]["value"]["transaction"]["id"])
        self.assertEqual(list(begin["value"]),
                         ["status", "id", "event_count", "data_collections", "ts_ms"])
        self.assertIsNone(begin["value"]["event_count"])
        self.assertIsNone(begin["value"]["data_collections"])
        self.assertEqual(begin["value"]["ts_ms"], first[0]["value"]["source"]["ts_ms"])

        self.assertEqual([m["value"]["transaction"]["total_order"] for m in first],
                         [1, 2, 3, 4, 5])
        self.assertEqual([m["value"]["transaction"]["data_collection_order"] for m in first],
                         [1, 2, 1, 3, 2])
        self.assertIsNone(b[2]["value"])  # the tombstone is no event of the transaction

        self.assertEqual(tx_number(end["value"]["id"]), xid)
        self.assertEqual(end["key"], {"id": end["value"]["id"]})
        self.assertGreater(int(end["value"]["id"].split(":")[1]),
                           first[-1]["value"]["source"]["lsn"])
        self.assertEqual(end["value"]["event_count"], 5)
        self.assertEqual(sorted(end["value"]["data_collections"], key=lambda d: d["data_collection"]),
                         [{"data_collection": "public.tx_a", "event_count": 3},
                          {"data_collection": "public.tx_b", "event_count": 2}])
        self.assertEqual(end["value"]["ts_ms"], first[0]["value"]["source"]["ts_ms"])

        # The second transaction counts from 1 again.
        second = a[3]["value"]
        self.assertEqual(second["transaction"]["total_order"], 1)
        self.assertEqual(second["transaction"]["data_collection_order"], 1)
        self.assertEqual(txs[3]["value"]["event_count"], 1)
        self.assertEqual(tx_number(txs[2]["value"]["id"]), second["source"]["txId"])

        # Field order as Debezium's envelope: transaction between source and op.
        self.assertEqual(list(second), ["before", "after", "source", "transaction", "op",
                                        "ts_ms", "ts_us", "ts_ns"])

        # The transaction topic: one partition, deleted by time as Debezium's is.
        desc = dstest.describe_topics([tx_topic])[tx_topic]
        self.assertEqual(desc["partitions"], 1, desc)
        self.assertEqual(desc["config"].get("cleanup.policy"), "delete", desc)

    def test_transaction_resent_after_a_crash_repeats_identical_records(self):
        """A transaction PostgreSQL resends after a crash of capture (its END, or some of its
        events, were not acknowledged and confirmed) comes with the same BEGIN, the same ids
        and orders and the same END: a consumer can drop the repeats by id and total_order."""
        rows = 3000
        self.psql("CREATE TABLE tx_crash (id int PRIMARY KEY, v text)")
        # At most 100 messages in flight, each batch lingering 200 ms: the transaction takes
        # seconds to send, and the crash lands in its middle.
        cfg, cap = self.stream(["public.tx_crash"],
                               debezium={"provide.transaction.metadata": "true"},
                               capture={"max_inflight_messages": 100},
                               kafka={"linger.ms": "200"})
        tx_topic = f"{cfg.topic_prefix}.transaction"
        self.psql(f"INSERT INTO tx_crash SELECT g, repeat('x', 200) FROM generate_series(1, {rows}) g")
        # Crash once the BEGIN is out: the slot is confirmed only past a wholly acknowledged
        # transaction, so PostgreSQL sends this one again from its Begin.
        self.consume([tx_topic], count=1, timeout_ms=60000)
        cap.kill()
        self.start_capture(cfg)
        with_end = lambda: [m for m in self.consume([tx_topic], timeout_ms=60000, idle_ms=500)
                            if m["value"]["status"] == "END"]
        dstest.wait_for(with_end, timeout=60, what="the transaction's END after the restart")
        txs = self.consume([tx_topic], timeout_ms=60000, idle_ms=1000)
        events = self.consume([cfg.topic("public.tx_crash")], timeout_ms=60000, idle_ms=1000)

        begins = [m for m in txs if m["value"]["status"] == "BEGIN"]
        ends = [m for m in txs if m["value"]["status"] == "END"]
        self.assertEqual(len(begins), 2, "the crash did not land inside the transaction")
        self.assertTrue(all(b == begins[0] | {"offset": b["offset"]} for b in begins), begins)
        self.assertTrue(all(e["key"] == ends[0]["key"] and e["value"] == ends[0]["value"]
                            for e in ends), ends)
        self.assertEqual(ends[0]["value"]["event_count"], rows)
        by_order = {}
        for m in events:
            tx = m["value"]["transaction"]
            seen = by_order.setdefault(tx["total_order"], (m["key"], tx))
            # A repeat is the same event: same key, same id and orders.
            self.assertEqual(seen, (m["key"], tx))
        self.assertEqual(sorted(by_order), list(range(1, rows + 1)))
        self.assertGreater(len(events), rows)  # some events twice
        print(f"after the crash: {len(begins)} BEGIN, {len(ends)} END, {len(events)} events "
                 f"for {rows} rows")

    def test_without_metadata_transaction_is_null_and_no_topic(self):
        self.psql("CREATE TABLE tx_off (id int PRIMARY KEY)")
        cfg, cap = self.stream(["public.tx_off"])
        with cap:
            self.psql("INSERT INTO tx_off VALUES (1)")
            [m] = self.read(cfg, "public.tx_off", 1)
        self.assertIn("transaction", m["value"])
        self.assertIsNone(m["value"]["transaction"])
        src = m["value"]["source"]
        self.assertEqual(src["ts_us"] // 1000, src["ts_ms"])
        self.assertEqual(src["ts_ns"], src["ts_us"] * 1000)
        self.assertEqual(m["value"]["ts_us"] // 1000, m["value"]["ts_ms"])
        self.assertEqual(list(src)[-2:], ["origin", "origin_lsn"])
        self.assertIsNone(src["origin"])


CONTEXT = ["__debezium.context.connectorLogicalName", "__debezium.context.taskId",
           "__debezium.context.connectorName", "__debezium.context.runId"]


class KeyChangeHeadersTest(CaptureCase):
    def key_change(self, table, **kw):
        """Insert, primary-key change, update of @table: its 5 records, with their headers."""
        self.psql(f"CREATE TABLE {table} (id int PRIMARY KEY, v text)")
        cfg, cap = self.stream([f"public.{table}"], **kw)
        with cap:
            self.psql(f"INSERT INTO {table} VALUES (1, 'x')")
            self.psql(f"UPDATE {table} SET id = 2 WHERE id = 1")
            self.psql(f"UPDATE {table} SET v = 'y' WHERE id = 2")
            msgs = self.consume([cfg.topic(f"public.{table}")], count=5, timeout_ms=60000,
                                headers=True)
        return cfg, msgs

    def test_primary_key_change_records_carry_the_other_key(self):
        cfg, msgs = self.key_change("kh_plain", debezium={"extended.headers.enabled": "false"})
        msgs = msgs[1:]
        ops = [(m["key"], m["value"]["op"] if m["value"] else None) for m in msgs]
        self.assertEqual(ops, [({"id": 1}, "d"), ({"id": 1}, None), ({"id": 2}, "c"),
                               ({"id": 2}, "u")])
        # Debezium's headers: the delete and its tombstone name the new key, the create the
        # old one, as the key's JSON; other records have none of them.
        self.assertEqual(msgs[0]["headers"], [["__debezium.newkey", '{"id":2}']])
        self.assertEqual(msgs[1]["headers"], [["__debezium.newkey", '{"id":2}']])
        self.assertEqual(msgs[2]["headers"], [["__debezium.oldkey", '{"id":1}']])
        self.assertEqual(msgs[3]["headers"], [])

    def test_context_headers_on_every_change_record(self):
        cfg, msgs = self.key_change("kh_context")
        run_ids = set()
        for m in msgs:
            names = [h[0] for h in m["headers"]]
            self.assertEqual(names[-4:], CONTEXT, m)
            context = dict(m["headers"][-4:])
            self.assertEqual(context["__debezium.context.connectorLogicalName"], cfg.topic_prefix)
            self.assertEqual(context["__debezium.context.taskId"], "0")
            self.assertEqual(context["__debezium.context.connectorName"], "postgresql")
            run_ids.add(context["__debezium.context.runId"])
        # The key headers come first, as Debezium adds the context after them.
        self.assertEqual(msgs[1]["headers"][0], ["__debezium.newkey", '{"id":2}'])
        self.assertEqual(msgs[3]["headers"][0], ["__debezium.oldkey", '{"id":1}'])
        # One run: one UUID, of version 7.
        self.assertEqual(len(run_ids), 1)
        [run_id] = run_ids
        self.assertRegex(run_id, r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


if __name__ == "__main__":
    unittest.main()
