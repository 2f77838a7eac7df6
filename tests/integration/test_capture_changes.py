"""Capture: which Kafka records each kind of committed change becomes, against a real
PostgreSQL 15 and a real Kafka broker.

Every test creates its own tables and its own slot, publication and topic prefix, starts
capture, waits until capture holds its slot (a change committed after that is captured),
makes its changes and reads back an exact number of records. Absence is proven by order:
a marker change made after the one that must not appear is the next record read.
"""

import signal
import subprocess
import time
import unittest

import dstest

PLACEHOLDER = "__debezium_unavailable_value"


def wait_streaming(cfg, timeout=30):
    """Waits until capture holds its slot with a consistent start point: a change committed
    after this returns is captured."""

    def streaming():
        info = dstest.slot_info(cfg.slot)
        return info is not None and info["active"] and info["confirmed_flush_lsn"] is not None

    return dstest.wait_for(streaming, timeout=timeout, what=f"capture to stream from slot {cfg.slot}")


def wait_confirmed(cfg, lsn, timeout=60):
    """Waits until the slot's confirmed_flush_lsn is at or past @lsn ("X/X")."""
    target = dstest.lsn_to_int(lsn)

    def confirmed():
        info = dstest.slot_info(cfg.slot)
        return info and dstest.lsn_to_int(info["confirmed_flush_lsn"]) >= target

    dstest.wait_for(confirmed, timeout=timeout, what=f"slot {cfg.slot} to confirm {lsn}")


def summary(messages):
    """(key, op or None for a tombstone) per message: the shape of a stream at a glance."""
    return [(m["key"], m["value"]["op"] if m["value"] is not None else None) for m in messages]


class CaptureCase(dstest.ServicesTestCase):
    """Starting capture for a test and reading its topics."""

    def stream(self, tables, **kw):
        """Writes a configuration for @tables, starts capture and waits until it streams.
        Returns (config, capture); use the capture as a context manager to stop it (exit 0)."""
        cfg = self.capture_config(tables, **kw)
        cap = self.start_capture(cfg)
        wait_streaming(cfg)
        return cfg, cap

    def read(self, cfg, table, count):
        return self.consume([cfg.topic(table)], count=count, timeout_ms=60000)


class CaptureRowEventsTest(CaptureCase):
    """Insert, update and delete become Debezium create, update and delete events."""

    def test_insert_is_a_create_event_keyed_by_the_primary_key(self):
        self.psql("CREATE TABLE ins (id int PRIMARY KEY, name text, qty int)")
        cfg, cap = self.stream(["public.ins"])
        with cap:
            self.psql("INSERT INTO ins VALUES (1, 'first', 10)")
            [msg] = self.read(cfg, "public.ins", 1)
        self.assertEqual(msg["topic"], cfg.topic("public.ins"))
        self.assertEqual(msg["key"], {"id": 1})
        self.assertEqual(msg["value"]["op"], "c")
        self.assertIsNone(msg["value"]["before"])
        self.assertEqual(msg["value"]["after"], {"id": 1, "name": "first", "qty": 10})
        self.assertEqual(list(msg["value"]), ["before", "after", "source", "transaction", "op",
                                              "ts_ms", "ts_us", "ts_ns"])

    def test_update_is_an_update_event_with_the_new_row(self):
        self.psql("CREATE TABLE upd (id int PRIMARY KEY, name text, qty int)")
        cfg, cap = self.stream(["public.upd"])
        with cap:
            self.psql("INSERT INTO upd VALUES (1, 'first', 10); UPDATE upd SET qty = 11 WHERE id = 1")
            msgs = self.read(cfg, "public.upd", 2)
        self.assertEqual(summary(msgs), [({"id": 1}, "c"), ({"id": 1}, "u")])
        self.assertEqual(msgs[1]["value"]["after"], {"id": 1, "name": "first", "qty": 11})

    def test_delete_is_a_delete_event_then_a_tombstone(self):
        self.psql("CREATE TABLE del (id int PRIMARY KEY, name text)")
        cfg, cap = self.stream(["public.del"])
        with cap:
            self.psql("INSERT INTO del VALUES (7, 'gone'); DELETE FROM del WHERE id = 7")
            msgs = self.read(cfg, "public.del", 3)
        self.assertEqual(summary(msgs), [({"id": 7}, "c"), ({"id": 7}, "d"), ({"id": 7}, None)])
        self.assertIsNone(msgs[1]["value"]["after"])
        self.assertIsNone(msgs[2]["value"])

    def test_tombstones_on_delete_false_sends_no_tombstone(self):
        self.psql("CREATE TABLE notomb (id int PRIMARY KEY, name text)")
        cfg, cap = self.stream(["public.notomb"], capture={"tombstones_on_delete": False})
        with cap:
            self.psql(
                "INSERT INTO notomb VALUES (1, 'a'); DELETE FROM notomb WHERE id = 1;"
                "INSERT INTO notomb VALUES (2, 'marker')"
            )
            msgs = self.read(cfg, "public.notomb", 3)
        # Had a tombstone followed the delete, it would be the third record.
        self.assertEqual(summary(msgs), [({"id": 1}, "c"), ({"id": 1}, "d"), ({"id": 2}, "c")])

    def test_primary_key_update_is_delete_tombstone_create_in_that_order(self):
        self.psql("CREATE TABLE pkchg (id int PRIMARY KEY, email text)")
        cfg, cap = self.stream(["public.pkchg"])
        with cap:
            self.psql(
                "INSERT INTO pkchg VALUES (1, 'a@example.com');"
                "UPDATE pkchg SET id = 2 WHERE id = 1;"
                "UPDATE pkchg SET email = 'b@example.com' WHERE id = 2"
            )
            msgs = self.read(cfg, "public.pkchg", 5)
        self.assertEqual(
            summary(msgs),
            [({"id": 1}, "c"), ({"id": 1}, "d"), ({"id": 1}, None), ({"id": 2}, "c"), ({"id": 2}, "u")],
        )
        delete, create = msgs[1]["value"], msgs[3]["value"]
        self.assertEqual(delete["before"], {"id": 1, "email": None})
        self.assertIsNone(delete["after"])
        self.assertIsNone(create["before"])
        self.assertEqual(create["after"], {"id": 2, "email": "a@example.com"})
        # All three come from the one UPDATE: same transaction, same LSN.
        self.assertEqual(delete["source"]["txId"], create["source"]["txId"])
        self.assertEqual(delete["source"]["lsn"], create["source"]["lsn"])
        self.assertEqual(msgs[4]["value"]["after"], {"id": 2, "email": "b@example.com"})


    def test_quoted_schema_table_and_column_names_keep_their_spelling(self):
        self.psql(
            'CREATE SCHEMA "Sales";'
            'CREATE TABLE "Sales"."Orders" ("Id" int PRIMARY KEY, "we""ird\\col" text, "한국어" text)'
        )
        cfg, cap = self.stream(['"Sales"."Orders"'])
        with cap:
            self.psql("""INSERT INTO "Sales"."Orders" VALUES (1, 'a', '값')""")
            [msg] = self.read(cfg, "Sales.Orders", 1)
        self.assertEqual(msg["topic"], f"{cfg.topic_prefix}.Sales.Orders")
        self.assertEqual(msg["key"], {"Id": 1})
        self.assertEqual(msg["value"]["after"], {"Id": 1, 'we"ird\\col': "a", "한국어": "값"})
        self.assertEqual((msg["value"]["source"]["schema"], msg["value"]["source"]["table"]), ("Sales", "Orders"))

class CaptureReplicaIdentityTest(CaptureCase):
    """What "before" holds depends on the table's REPLICA IDENTITY."""

    def test_default_identity_update_has_null_before_and_delete_only_the_key(self):
        self.psql("CREATE TABLE ri_default (id int PRIMARY KEY, bio text, score int)")
        cfg, cap = self.stream(["public.ri_default"])
        with cap:
            self.psql(
                "INSERT INTO ri_default VALUES (1, 'hello', 10);"
                "UPDATE ri_default SET bio = 'updated', score = NULL WHERE id = 1;"
                "DELETE FROM ri_default WHERE id = 1"
            )
            msgs = self.read(cfg, "public.ri_default", 4)
        self.assertEqual(
            summary(msgs), [({"id": 1}, "c"), ({"id": 1}, "u"), ({"id": 1}, "d"), ({"id": 1}, None)]
        )
        update, delete = msgs[1]["value"], msgs[2]["value"]
        self.assertIsNone(update["before"])
        self.assertEqual(update["after"], {"id": 1, "bio": "updated", "score": None})
        # The WAL carries only the key: the other columns are null, as in Debezium.
        self.assertEqual(delete["before"], {"id": 1, "bio": None, "score": None})
        self.assertIsNone(delete["after"])

    def test_full_identity_update_and_delete_carry_the_whole_old_row(self):
        self.psql(
            "CREATE TABLE ri_full (id int PRIMARY KEY, bio text, score int);"
            "ALTER TABLE ri_full REPLICA IDENTITY FULL"
        )
        cfg, cap = self.stream(["public.ri_full"])
        with cap:
            self.psql(
                "INSERT INTO ri_full VALUES (1, 'hello', 10);"
                "UPDATE ri_full SET bio = 'updated', score = NULL WHERE id = 1;"
                "DELETE FROM ri_full WHERE id = 1"
            )
            msgs = self.read(cfg, "public.ri_full", 4)
        # Keyed by the primary key, not by the whole row.
        self.assertEqual(
            summary(msgs), [({"id": 1}, "c"), ({"id": 1}, "u"), ({"id": 1}, "d"), ({"id": 1}, None)]
        )
        update, delete = msgs[1]["value"], msgs[2]["value"]
        self.assertEqual(update["before"], {"id": 1, "bio": "hello", "score": 10})
        self.assertEqual(update["after"], {"id": 1, "bio": "updated", "score": None})
        self.assertEqual(delete["before"], {"id": 1, "bio": "updated", "score": None})
        self.assertIsNone(delete["after"])


    def test_using_index_identity_keys_by_the_index_columns(self):
        self.psql(
            "CREATE TABLE ri_index (id int PRIMARY KEY, email text NOT NULL, v text);"
            "CREATE UNIQUE INDEX ri_index_email ON ri_index (email);"
            "ALTER TABLE ri_index REPLICA IDENTITY USING INDEX ri_index_email"
        )
        cfg, cap = self.stream(["public.ri_index"])
        with cap:
            self.psql(
                "INSERT INTO ri_index VALUES (1, 'a@example.com', 'v');"
                "UPDATE ri_index SET v = 'w';"
                "UPDATE ri_index SET email = 'b@example.com';"
                "DELETE FROM ri_index"
            )
            msgs = self.read(cfg, "public.ri_index", 7)
        a, b = {"email": "a@example.com"}, {"email": "b@example.com"}
        # A change of the identity column is a change of the key: delete, tombstone, create.
        self.assertEqual(
            summary(msgs), [(a, "c"), (a, "u"), (a, "d"), (a, None), (b, "c"), (b, "d"), (b, None)]
        )
        self.assertEqual(msgs[2]["value"]["before"], {"id": None, "email": "a@example.com", "v": None})
        self.assertEqual(msgs[4]["value"]["after"], {"id": 1, "email": "b@example.com", "v": "w"})

    def test_full_identity_primary_key_change_deletes_the_whole_old_row(self):
        self.psql(
            "CREATE TABLE ri_full_pk (a int, b int, v text, PRIMARY KEY (b, a));"
            "ALTER TABLE ri_full_pk REPLICA IDENTITY FULL"
        )
        cfg, cap = self.stream(["public.ri_full_pk"])
        with cap:
            self.psql("INSERT INTO ri_full_pk VALUES (1, 2, 'x'); UPDATE ri_full_pk SET a = 5")
            msgs = self.read(cfg, "public.ri_full_pk", 4)
        # The key holds the primary key columns in table order, whatever the PK's own order.
        old, new = {"a": 1, "b": 2}, {"a": 5, "b": 2}
        self.assertEqual(summary(msgs), [(old, "c"), (old, "d"), (old, None), (new, "c")])
        self.assertEqual(msgs[1]["value"]["before"], {"a": 1, "b": 2, "v": "x"})
        self.assertEqual(msgs[3]["value"]["after"], {"a": 5, "b": 2, "v": "x"})

class CaptureToastTest(CaptureCase):
    """A TOASTed value an update leaves untouched is not in the WAL: a placeholder stands in."""

    def toast_scenario(self, table, expected_placeholder, **kw):
        self.psql(
            f"CREATE TABLE {table} (id int PRIMARY KEY, title text, body text);"
            f"ALTER TABLE {table} ALTER COLUMN body SET STORAGE EXTERNAL"
        )
        cfg, cap = self.stream([f"public.{table}"], **kw)
        with cap:
            # 20 kB of random hex: stored out of line (EXTERNAL: uncompressed).
            self.psql(
                f"INSERT INTO {table} SELECT 1, 'draft', string_agg(md5(random()::text), '') "
                "FROM generate_series(1, 640);"
                f"UPDATE {table} SET title = 'final' WHERE id = 1"
            )
            msgs = self.read(cfg, f"public.{table}", 2)
        body = self.psql_value(f"SELECT body FROM {table} WHERE id = 1")
        self.assertEqual(len(body), 20480)
        self.assertGreater(
            int(self.psql_value(f"SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = '{table}'")),
            0,
            "the body was not TOASTed",
        )
        self.assertEqual(summary(msgs), [({"id": 1}, "c"), ({"id": 1}, "u")])
        # The insert carries the whole value.
        self.assertEqual(msgs[0]["value"]["after"], {"id": 1, "title": "draft", "body": body})
        self.assertIsNone(msgs[1]["value"]["before"])
        self.assertEqual(
            msgs[1]["value"]["after"], {"id": 1, "title": "final", "body": expected_placeholder}
        )

    def test_unchanged_toasted_column_is_the_default_placeholder(self):
        self.toast_scenario("toast_default", PLACEHOLDER)

    def test_unavailable_value_placeholder_setting_replaces_it(self):
        self.toast_scenario(
            "toast_custom", "<not sent>", capture={"unavailable_value_placeholder": "<not sent>"}
        )


class CaptureTruncateAndDdlTest(CaptureCase):
    def test_truncate_is_a_t_event_per_table_keyed_by_the_table(self):
        self.psql(
            "CREATE TABLE tr_a (id int PRIMARY KEY, name text);"
            "CREATE TABLE tr_b (id int PRIMARY KEY, note text)"
        )
        cfg, cap = self.stream(["public.tr_a", "public.tr_b"])
        with cap:
            self.psql(
                "INSERT INTO tr_a VALUES (1, 'p1'); INSERT INTO tr_b VALUES (1, 'c1');"
                "TRUNCATE tr_a, tr_b;"
                "INSERT INTO tr_a VALUES (2, 'after')"
            )
            a = self.read(cfg, "public.tr_a", 3)
            b = self.read(cfg, "public.tr_b", 2)
        # Keyed, where Debezium sends it keyless: a compacted topic refuses a keyless record.
        self.assertEqual(summary(a), [({"id": 1}, "c"),
                                      ({"__dualsync_truncate": "public.tr_a"}, "t"),
                                      ({"id": 2}, "c")])
        self.assertEqual(summary(b), [({"id": 1}, "c"),
                                      ({"__dualsync_truncate": "public.tr_b"}, "t")])
        for msg, table in ((a[1], "tr_a"), (b[1], "tr_b")):
            self.assertIsNone(msg["value"]["before"])
            self.assertIsNone(msg["value"]["after"])
            self.assertEqual(msg["value"]["source"]["table"], table)
        # One TRUNCATE statement: one transaction.
        self.assertEqual(a[1]["value"]["source"]["txId"], b[1]["value"]["source"]["txId"])

    def test_add_and_drop_column_while_streaming_change_the_row_shape(self):
        self.psql("CREATE TABLE widgets (id int PRIMARY KEY, name text)")
        cfg, cap = self.stream(["public.widgets"])
        with cap:
            self.psql("INSERT INTO widgets VALUES (1, 'a')")
            first = self.read(cfg, "public.widgets", 1)
            # Capture has already sent a row with the old shape before the DDL runs.
            self.psql(
                "ALTER TABLE widgets ADD COLUMN color text DEFAULT 'none';"
                "INSERT INTO widgets VALUES (2, 'b', 'blue');"
                "UPDATE widgets SET color = 'red' WHERE id = 1;"
                "ALTER TABLE widgets DROP COLUMN name;"
                "INSERT INTO widgets VALUES (3, 'green');"
                "UPDATE widgets SET color = 'pink' WHERE id = 2"
            )
            msgs = self.read(cfg, "public.widgets", 5)
        self.assertEqual(first[0]["value"]["after"], {"id": 1, "name": "a"})
        self.assertEqual(
            [(m["value"]["op"], m["value"]["after"]) for m in msgs],
            [
                ("c", {"id": 1, "name": "a"}),
                ("c", {"id": 2, "name": "b", "color": "blue"}),
                ("u", {"id": 1, "name": "a", "color": "red"}),
                ("c", {"id": 3, "color": "green"}),
                ("u", {"id": 2, "color": "pink"}),
            ],
        )
        self.assertEqual(list(msgs[1]["value"]["after"]), ["id", "name", "color"])


class CapturePartitionedTableTest(CaptureCase):
    def test_partitioned_table_publishes_under_its_own_topic_and_restarts(self):
        self.psql(
            "CREATE TABLE measurements (id int, at date, v text, PRIMARY KEY (id, at)) "
            "PARTITION BY RANGE (at);"
            "CREATE TABLE measurements_2024 PARTITION OF measurements "
            "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');"
            "CREATE TABLE measurements_2025 PARTITION OF measurements "
            "FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')"
        )
        cfg, cap = self.stream(["public.measurements"])
        self.psql(
            "INSERT INTO measurements VALUES (1, '2024-02-01', 'a'), (2, '2025-03-01', 'b');"
            # Moves the row to the other partition: a delete there, an insert here.
            "UPDATE measurements SET at = '2025-02-01' WHERE id = 1"
        )
        first = self.read(cfg, "public.measurements", 5)
        self.assertEqual(cap.stop(expect_exit=0), 0)
        cap.start()
        wait_streaming(cfg)
        with cap:
            self.psql("INSERT INTO measurements VALUES (3, '2024-12-31', 'c')")
            msgs = self.read(cfg, "public.measurements", 6)
        self.assertEqual(msgs[:5], first)
        self.assertEqual(
            summary(msgs),
            [
                ({"id": 1, "at": "2024-02-01"}, "c"),
                ({"id": 2, "at": "2025-03-01"}, "c"),
                ({"id": 1, "at": "2024-02-01"}, "d"),
                ({"id": 1, "at": "2024-02-01"}, None),
                ({"id": 1, "at": "2025-02-01"}, "c"),
                ({"id": 3, "at": "2024-12-31"}, "c"),
            ],
        )
        self.assertEqual({m["value"]["source"]["table"] for m in msgs if m["value"]}, {"measurements"})
        self.assertNotIn(" error:", cap.log_text())


class CaptureOriginTest(CaptureCase):
    """Transactions replayed under a replication origin in capture.skip_origins (default:
    "dualsync", the origin the apply side writes under) are not published."""

    def use_origin(self, name):
        created = self.psql_value(
            f"SELECT count(pg_replication_origin_create({dstest.quote_literal(name)})) "
            f"FROM (SELECT WHERE NOT EXISTS (SELECT FROM pg_replication_origin "
            f"WHERE roname = {dstest.quote_literal(name)})) AS missing"
        )
        if created == "1":
            self.addCleanup(
                dstest.psql, f"SELECT pg_replication_origin_drop({dstest.quote_literal(name)})"
            )

    def test_transaction_from_the_dualsync_origin_is_skipped(self):
        self.psql("CREATE TABLE replicated (id int PRIMARY KEY, source text)")
        self.use_origin("dualsync")
        cfg, cap = self.stream(["public.replicated"])
        with cap:
            # Session setup and the changes in one psql session, so they carry the origin.
            self.psql(
                "SELECT pg_replication_origin_session_setup('dualsync');"
                "INSERT INTO replicated VALUES (1, 'replayed');"
                "BEGIN; UPDATE replicated SET source = 'replayed again'; "
                "INSERT INTO replicated VALUES (3, 'replayed'); COMMIT;"
                "SELECT pg_replication_origin_session_reset();"
            )
            self.psql("INSERT INTO replicated VALUES (2, 'local')")
            msgs = self.read(cfg, "public.replicated", 1)
            end = dstest.current_wal_lsn()
            # The skipped transactions do not hold the slot back.
            wait_confirmed(cfg, end)
        self.assertEqual(summary(msgs), [({"id": 2}, "c")])
        self.assertEqual(msgs[0]["value"]["after"], {"id": 2, "source": "local"})

    def test_transaction_from_another_origin_is_published(self):
        self.psql("CREATE TABLE other_origin (id int PRIMARY KEY, source text)")
        origin = dstest.unique_name("other_origin")
        self.use_origin(origin)
        cfg, cap = self.stream(["public.other_origin"])
        with cap:
            self.psql(
                f"SELECT pg_replication_origin_session_setup({dstest.quote_literal(origin)});"
                "INSERT INTO other_origin VALUES (1, 'replayed');"
                "SELECT pg_replication_origin_session_reset();"
            )
            msgs = self.read(cfg, "public.other_origin", 1)
        self.assertEqual(msgs[0]["value"]["after"], {"id": 1, "source": "replayed"})


class CaptureSourceBlockTest(CaptureCase):
    def test_source_block_describes_the_transaction_and_position(self):
        self.psql("CREATE TABLE src (id int PRIMARY KEY, v text)")
        version = subprocess.run(
            [dstest.ds_bin(), "--version"], capture_output=True, text=True, check=True
        ).stdout.split()[-1]
        cfg, cap = self.stream(["public.src"])
        with cap:
            lsn_before = dstest.lsn_to_int(dstest.current_wal_lsn())
            wall_before_ms = time.time() * 1000
            rows = self.psql(
                "BEGIN; INSERT INTO src VALUES (1, 'a'); INSERT INTO src VALUES (2, 'b');"
                "SELECT txid_current(); COMMIT;"
            )
            wall_after_ms = time.time() * 1000
            lsn_after = dstest.lsn_to_int(dstest.current_wal_lsn())
            msgs = self.read(cfg, "public.src", 2)
        txid = int(rows[0][0])
        for msg in msgs:
            source = msg["value"]["source"]
            self.assertEqual(
                list(source),
                ["version", "connector", "name", "ts_ms", "snapshot", "db", "sequence", "ts_us",
                 "ts_ns", "schema", "table", "txId", "lsn", "xmin", "origin", "origin_lsn"],
            )
            self.assertEqual(source["version"], version)
            self.assertEqual(source["connector"], "postgresql")
            self.assertEqual(source["name"], cfg.topic_prefix)
            self.assertEqual(source["snapshot"], "false")
            self.assertEqual(source["db"], self.db)
            self.assertEqual(source["schema"], "public")
            self.assertEqual(source["table"], "src")
            self.assertEqual(source["txId"], txid)
            self.assertIsNone(source["xmin"])
            self.assertIs(type(source["lsn"]), int)
            self.assertTrue(lsn_before <= source["lsn"] < lsn_after, (lsn_before, source, lsn_after))
            # ts_ms is the commit time, the same for both rows; the envelope's is when capture
            # built the event, no earlier.
            self.assertTrue(wall_before_ms - 1000 <= source["ts_ms"] <= wall_after_ms + 1000, source)
            self.assertGreaterEqual(msg["value"]["ts_ms"], source["ts_ms"])
            self.assertLess(msg["value"]["ts_ms"] - source["ts_ms"], 30000)
            self.assertEqual(source["sequence"].split(",")[-1], f'"{source["lsn"]}"]')
        self.assertEqual(msgs[0]["value"]["source"]["ts_ms"], msgs[1]["value"]["source"]["ts_ms"])
        self.assertLess(msgs[0]["value"]["source"]["lsn"], msgs[1]["value"]["source"]["lsn"])


class CaptureOrderingTest(CaptureCase):
    def test_many_updates_of_the_same_keys_arrive_in_commit_order(self):
        keys, rounds = 5, 60
        self.psql("CREATE TABLE counters (id int PRIMARY KEY, n int)")
        cfg, cap = self.stream(["public.counters"])
        statements = [f"INSERT INTO counters SELECT g, 0 FROM generate_series(1, {keys}) g;"]
        for n in range(1, rounds + 1):
            if n % 3 == 0:
                # Some rounds in one transaction, the others one transaction per update.
                statements.append(f"UPDATE counters SET n = {n};")
            else:
                statements += [f"UPDATE counters SET n = {n} WHERE id = {k};" for k in range(1, keys + 1)]
        with cap:
            self.psql("\n".join(statements))
            msgs = self.read(cfg, "public.counters", keys * (rounds + 1))
        for k in range(1, keys + 1):
            seen = [m["value"]["after"]["n"] for m in msgs if m["key"] == {"id": k}]
            self.assertEqual(seen, list(range(rounds + 1)), f"key {k}")

    def test_one_transaction_on_two_tables_reaches_both_topics(self):
        self.psql(
            "CREATE TABLE customers (id int PRIMARY KEY, name text);"
            "CREATE TABLE orders (id int PRIMARY KEY, customer_id int, total numeric(8,2))"
        )
        cfg, cap = self.stream(["public.customers", "public.orders"])
        with cap:
            rows = self.psql(
                "BEGIN;"
                "INSERT INTO customers VALUES (1, 'ann');"
                "INSERT INTO orders VALUES (10, 1, 9.99);"
                "INSERT INTO customers VALUES (2, 'bob');"
                "UPDATE orders SET total = 10.99 WHERE id = 10;"
                "SELECT txid_current();"
                "COMMIT;"
            )
            customers = self.read(cfg, "public.customers", 2)
            orders = self.read(cfg, "public.orders", 2)
        self.assertEqual(
            [m["value"]["after"] for m in customers], [{"id": 1, "name": "ann"}, {"id": 2, "name": "bob"}]
        )
        self.assertEqual(
            [(m["value"]["op"], m["value"]["after"]) for m in orders],
            [("c", {"id": 10, "customer_id": 1, "total": "9.99"}),
             ("u", {"id": 10, "customer_id": 1, "total": "10.99"})],
        )
        self.assertEqual({m["topic"] for m in customers}, {cfg.topic("public.customers")})
        self.assertEqual({m["topic"] for m in orders}, {cfg.topic("public.orders")})
        self.assertEqual(
            {m["value"]["source"]["txId"] for m in customers + orders}, {int(rows[0][0])}
        )

    def test_transaction_of_200000_rows_arrives_whole_and_is_confirmed(self):
        total = 200_000
        self.psql("CREATE TABLE bulk (id int PRIMARY KEY)")
        cfg, cap = self.stream(["public.bulk"])
        with cap:
            rows = self.psql(
                f"BEGIN; INSERT INTO bulk SELECT generate_series(1, {total}); "
                "SELECT txid_current(); COMMIT; SELECT pg_current_wal_lsn();"
            )
            txid, after_commit = int(rows[0][0]), rows[1][0]
            msgs = self.consume([cfg.topic("public.bulk")], count=total, timeout_ms=120000)
            wait_confirmed(cfg, after_commit)
        self.assertEqual(len(msgs), total)
        ids = sorted(m["key"]["id"] for m in msgs)
        self.assertEqual(ids, list(range(1, total + 1)))
        self.assertTrue(all(m["value"]["op"] == "c" for m in msgs))
        self.assertEqual({m["value"]["source"]["txId"] for m in msgs}, {txid})
        # Nothing after the last row either: the topic holds exactly the transaction.
        self.assertEqual(
            len(self.consume([cfg.topic("public.bulk")], idle_ms=1000, timeout_ms=60000)), total
        )


    def test_one_transaction_on_forty_tables_reaches_forty_topics(self):
        tables = [f"many_{i:02d}" for i in range(40)]
        self.psql(";".join(f"CREATE TABLE {t} (id int PRIMARY KEY, t text)" for t in tables))
        cfg, cap = self.stream([f"public.{t}" for t in tables])
        with cap:
            self.psql(
                "BEGIN;"
                + "".join(f"INSERT INTO {t} VALUES (1, '{t}');" for t in tables)
                + "".join(f"UPDATE {t} SET t = '{t} again';" for t in reversed(tables))
                + "COMMIT;"
            )
            msgs = self.consume([cfg.topic(f"public.{t}") for t in tables], count=80, timeout_ms=60000)
        for t in tables:
            with self.subTest(table=t):
                mine = [m for m in msgs if m["topic"] == cfg.topic(f"public.{t}")]
                self.assertEqual(
                    [(m["value"]["op"], m["value"]["after"], m["value"]["source"]["table"]) for m in mine],
                    [("c", {"id": 1, "t": t}, t), ("u", {"id": 1, "t": f"{t} again"}, t)],
                )

    def test_changes_of_tables_not_configured_are_not_published_and_do_not_hold_the_slot(self):
        self.psql(
            "CREATE TABLE watched (id int PRIMARY KEY);"
            "CREATE TABLE unwatched (id int PRIMARY KEY, pad text)"
        )
        cfg, cap = self.stream(["public.watched"])
        with cap:
            self.psql("INSERT INTO watched VALUES (1)")
            self.read(cfg, "public.watched", 1)
            self.psql(
                "INSERT INTO unwatched SELECT g, repeat('x', 500) FROM generate_series(1, 20000) g;"
                "INSERT INTO watched VALUES (2)"
            )
            msgs = self.read(cfg, "public.watched", 2)
            # The slot moves past the unpublished WAL too (an idle keepalive confirms it).
            end = dstest.current_wal_lsn()
            wait_confirmed(cfg, end)
        self.assertEqual([m["key"] for m in msgs], [{"id": 1}, {"id": 2}])
        self.assertEqual(
            self.psql_value(f"SELECT count(*) FROM pg_publication_tables WHERE pubname = '{cfg.publication}'"),
            "1",
        )

class CaptureRestartTest(CaptureCase):
    """Stopping with SIGTERM and starting again with the same configuration resumes where the
    slot was confirmed: nothing is created twice, nothing already confirmed is sent again."""

    def log_section(self, cap, start_number):
        """The lines the @start_number-th start (1-based) of @cap wrote to its log."""
        sections = cap.log_text().split("==== ")
        return sections[start_number]

    def test_restart_reuses_slot_and_publication_and_sends_nothing_twice(self):
        self.psql("CREATE TABLE rs (id int PRIMARY KEY, v text)")
        cfg, cap = self.stream(["public.rs"])
        self.psql("INSERT INTO rs VALUES (1, 'a'); INSERT INTO rs VALUES (2, 'b'); UPDATE rs SET v = 'c' WHERE id = 1")
        self.assertEqual(len(self.read(cfg, "public.rs", 3)), 3)
        wait_confirmed(cfg, dstest.current_wal_lsn())
        self.assertEqual(cap.stop(expect_exit=0), 0)
        slot_before = dstest.slot_info(cfg.slot)
        self.assertFalse(slot_before["active"])

        cap.start()
        wait_streaming(cfg)
        self.psql("INSERT INTO rs VALUES (3, 'after restart')")
        msgs = self.read(cfg, "public.rs", 4)
        with cap:
            # Read until idle too: a duplicate after the new row would show here.
            everything = self.consume([cfg.topic("public.rs")], idle_ms=1000, timeout_ms=60000)
        self.assertEqual(
            summary(msgs), [({"id": 1}, "c"), ({"id": 2}, "c"), ({"id": 1}, "u"), ({"id": 3}, "c")]
        )
        self.assertEqual(len(everything), 4)
        self.assertEqual(msgs[3]["value"]["after"], {"id": 3, "v": "after restart"})

        first, second = self.log_section(cap, 1), self.log_section(cap, 2)
        self.assertIn("CREATE PUBLICATION", first)
        self.assertIn(f'created logical replication slot "{cfg.slot}"', first)
        self.assertNotIn("PUBLICATION", second)
        self.assertNotIn("created logical replication slot", second)
        self.assertNotIn(" error:", second)
        self.assertIn(f'streaming from slot "{cfg.slot}"', second)
        self.assertEqual(
            self.psql_value(f"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{cfg.slot}'"), "1"
        )
        self.assertEqual(
            self.psql_value(f"SELECT count(*) FROM pg_publication WHERE pubname = '{cfg.publication}'"), "1"
        )

    def test_changes_made_while_stopped_arrive_on_restart_with_their_columns(self):
        self.psql("CREATE TABLE downtime (id int PRIMARY KEY, v text)")
        cfg, cap = self.stream(["public.downtime"])
        self.psql("INSERT INTO downtime VALUES (1, 'before stop')")
        self.read(cfg, "public.downtime", 1)
        self.assertEqual(cap.stop(expect_exit=0), 0)
        self.psql(
            "INSERT INTO downtime VALUES (2, 'while stopped');"
            "ALTER TABLE downtime ADD COLUMN extra int;"
            "INSERT INTO downtime VALUES (3, 'after alter', 42);"
            "DELETE FROM downtime WHERE id = 1"
        )
        with cap:  # starts it again
            msgs = self.read(cfg, "public.downtime", 5)
        # Each change is decoded with the table as it was when the change was made.
        self.assertEqual(
            [(m["key"], m["value"] and m["value"]["op"], m["value"] and m["value"]["after"]) for m in msgs],
            [
                ({"id": 1}, "c", {"id": 1, "v": "before stop"}),
                ({"id": 2}, "c", {"id": 2, "v": "while stopped"}),
                ({"id": 3}, "c", {"id": 3, "v": "after alter", "extra": 42}),
                ({"id": 1}, "d", None),
                ({"id": 1}, None, None),
            ],
        )
        self.assertEqual(msgs[3]["value"]["before"], {"id": 1, "v": None, "extra": None})

    def test_sigint_stops_cleanly_like_sigterm(self):
        self.psql("CREATE TABLE interrupted (id int PRIMARY KEY)")
        cfg, cap = self.stream(["public.interrupted"])
        self.psql("INSERT INTO interrupted VALUES (1)")
        self.read(cfg, "public.interrupted", 1)
        cap.proc.send_signal(signal.SIGINT)
        self.assertEqual(cap.wait_exit(timeout=60), 0)
        self.assertIn("signal 2: finishing", cap.log_text())
        self.assertFalse(dstest.slot_info(cfg.slot)["active"])

    def test_table_added_to_the_config_joins_the_publication_on_restart(self):
        self.psql(
            "CREATE TABLE first_t (id int PRIMARY KEY, v text);"
            "CREATE TABLE second_t (id int PRIMARY KEY, v text)"
        )
        cfg, cap = self.stream(["public.first_t"])
        self.psql("INSERT INTO first_t VALUES (1, 'one')")
        self.read(cfg, "public.first_t", 1)
        self.assertEqual(cap.stop(expect_exit=0), 0)
        published = f"SELECT tablename FROM pg_publication_tables WHERE pubname = '{cfg.publication}' ORDER BY 1"
        self.assertEqual(self.psql(published), [("first_t",)])

        dstest.write_capture_config(
            cfg.path, self.db, ["public.first_t", "public.second_t"], cfg.slot, cfg.publication,
            cfg.topic_prefix,
        )
        cap.start()
        wait_streaming(cfg)
        self.assertEqual(self.psql(published), [("first_t",), ("second_t",)])
        with cap:
            self.psql("INSERT INTO second_t VALUES (1, 'new table'); INSERT INTO first_t VALUES (2, 'two')")
            second = self.read(cfg, "public.second_t", 1)
            first = self.read(cfg, "public.first_t", 2)
        self.assertEqual(second[0]["value"]["after"], {"id": 1, "v": "new table"})
        self.assertEqual([m["key"] for m in first], [{"id": 1}, {"id": 2}])
        self.assertIn(
            f'ALTER PUBLICATION "{cfg.publication}" ADD TABLE "public"."second_t"',
            self.log_section(cap, 2),
        )


if __name__ == "__main__":
    unittest.main()
