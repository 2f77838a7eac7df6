"""Merged target rows (several source rows producing one target row) under the merge rule of
mappings/README.md: the first source row in key order gives the row its values, whatever the
order in which changes arrive, and when it leaves the next one's values take its place.

  - a randomised load over many seeds: inserts, updates, deletes, primary key changes, filter
    transitions and identity changes (a phone that moves a person to another merged row),
    with apply killed (SIGKILL) at random points and restarted, row by row and set-based, on a
    topic of one partition or three (a key change then crosses partitions, and a merged row
    is fed from several).
    At the end the target equals what the merge rule gives from the legacy rows (computed
    here, independently) and `dualsync verify` (a from-scratch rebuild) exits 0;
    The three-partition seeds run two apply processes in one consumer group, killed in
    turn: two source rows of one merged row are then written by two processes at once;
  - the deterministic reproduction of that race: one process holds the transaction that
    links a second source row to a merged row open (its offsets row locked by the test),
    while the other deletes the row's first source row. Each sees only its own links; the
    row must still end with the second one's values (mapping_sql.c, "Settling");
  - two source tables declared as one merge ("merge": name) feed one row by the same rule;
  - two files writing the same columns of the same rows without declaring a merge are
    refused before apply reads anything (exit 2, naming both).

DS_MERGE_SEEDS (comma-separated integers) replaces the seeds the suite runs, for a soak:
DS_MERGE_SEEDS=$(seq -s, 1 200) ctest --test-dir build -R test_apply_merges.
"""

import json
import os
import random
import re
import threading
import time
import uuid

import dstest

NS = "6b1f3c0e-2a49-4e0c-9d57-4c1de3f0a8b2"

PHONES = ["010-1111-2222", " 010 1111 2222", "+82 10 1111 2222", "010-3333-4444",
          "01033334444", "010-5555-6666", "no phone", None]
NAMES = ["Ann", " Ann Lee ", "Someone Else", "Kim Minji", "Park", "Lee Jisoo"]
EMAILS = ["ann@x.example", "ANN@X.EXAMPLE", None, "kim@y.example", "park@z.example"]

DEFAULT_SEEDS = [11, 12, 13, 14]


def normalize_phone(text):
    if text is None:
        return None
    digits = "".join(c for c in text if c.isdigit())
    if not digits:
        return None
    if digits.startswith("82"):
        digits = "0" + digits[2:]
    return digits


def trim(text):
    return None if text is None else text.strip(" \t\r\n")


def lower(text):
    return None if text is None else text.lower()


def source_key(id_):
    """The Kafka key text capture writes for a text primary key."""
    return json.dumps({"id": id_}, separators=(",", ":"), ensure_ascii=False)


def sql_text(value):
    return "NULL" if value is None else dstest.quote_literal(value)


def merged_rows(legacy):
    """The target rows the merge rule gives: active rows grouped by normalised phone; each
    group's row is its first member's by key text, in byte order."""
    first = {}
    for id_, name, phone, email, active in legacy:
        if not active:
            continue
        person = normalize_phone(phone)
        if person not in first or source_key(id_).encode() < source_key(first[person][0]).encode():
            first[person] = (id_, name, phone, email)
    return sorted(
        ((trim(name), normalize_phone(phone), lower(email)) for _, name, phone, email in first.values()),
        key=repr,
    )


class Load:
    """A random sequence of transactions over a small set of ids and phones (so that rows merge
    and split all the time), and the legacy rows it leaves."""

    def __init__(self, seed, table):
        self.rng = random.Random(seed)
        self.table = dstest.quote_ident(table)
        self.rows = {}  # id -> [name, phone, email, active]
        self.next_id = 0
        self.ever_active = set()  # ids active after some change: each got a row by_id

    def new_id(self):
        self.next_id += 1
        return f"p{self.next_id:03d}"

    def op(self):
        rng, t = self.rng, self.table
        kinds = ["insert"] * 3 + (["name", "phone", "active", "key", "delete"] if self.rows else [])
        kind = rng.choice(kinds)
        if kind == "insert" or not self.rows:
            id_ = self.new_id()
            row = [rng.choice(NAMES), rng.choice(PHONES), rng.choice(EMAILS), rng.random() < 0.8]
            self.rows[id_] = row
            return (f"INSERT INTO {t} VALUES ({sql_text(id_)}, {sql_text(row[0])}, "
                    f"{sql_text(row[1])}, {sql_text(row[2])}, {str(row[3]).lower()});")
        id_ = rng.choice(sorted(self.rows))
        row = self.rows[id_]
        if kind == "name":
            row[0], row[2] = rng.choice(NAMES), rng.choice(EMAILS)
            return (f"UPDATE {t} SET name = {sql_text(row[0])}, email = {sql_text(row[2])} "
                    f"WHERE id = {sql_text(id_)};")
        if kind == "phone":
            row[1] = rng.choice(PHONES)
            return f"UPDATE {t} SET phone = {sql_text(row[1])} WHERE id = {sql_text(id_)};"
        if kind == "active":
            row[3] = not row[3]
            return f"UPDATE {t} SET active = {str(row[3]).lower()} WHERE id = {sql_text(id_)};"
        if kind == "key":
            new = self.new_id()
            self.rows[new] = self.rows.pop(id_)
            return f"UPDATE {t} SET id = {sql_text(new)} WHERE id = {sql_text(id_)};"
        del self.rows[id_]
        return f"DELETE FROM {t} WHERE id = {sql_text(id_)};"

    def tracked_op(self):
        sql = self.op()
        self.ever_active.update(id_ for id_, row in self.rows.items() if row[3])
        return sql

    def transactions(self, count):
        return ["BEGIN;\n" + "\n".join(self.tracked_op() for _ in range(self.rng.randint(1, 4))) +
                "\nCOMMIT;\n" for _ in range(count)]

    def legacy(self):
        return [(id_, *row) for id_, row in sorted(self.rows.items())]


class MergeRuleRandomTest(dstest.ApplyTestCase):
    """One test per seed; a failure names its seed (run it alone with DS_MERGE_SEEDS)."""

    def run_seed(self, seed):
        rng = random.Random(seed * 7919)
        table = f"people_{seed}"
        self.psql(f"CREATE TABLE {table} (id text PRIMARY KEY, name text, phone text, "
                  "email text, active boolean NOT NULL)")
        newdb = self.target_database(f"merge_{seed}")
        dstest.psql("CREATE TABLE persons (id uuid PRIMARY KEY, name text, phone text, "
                    "email text)", db=newdb)
        # Keyed by the source key alone: written without links ("links": false). A third of the seeds
        # soft-delete its rows instead.
        soft = seed % 3 == 0
        dstest.psql("CREATE TABLE by_id (id uuid PRIMARY KEY, legacy_id text NOT NULL, "
                    "name text, phone text, gone_at timestamptz)", db=newdb)
        # Half the seeds spread the keys over three partitions: a key change moves a row
        # between partitions, and merged rows are fed from several.
        partitions = 1 if seed % 4 < 2 else 3
        capture_cfg, _ = self.start_streaming_capture([f"public.{table}"],
                                                      topics={"partitions": partitions})
        mapping = dstest.write_mapping(os.path.join(self.work_dir, f"{table}.json"), {
            "source": f"public.{table}",
            "filter": {"eq": ["$active", True]},
            "targets": [{
                "name": "persons", "connection": "newdb", "table": "public.persons",
                "key": ["id"],
                "columns": {
                    "id": {"uuid5": {"namespace": NS, "name": [{"normalize_phone": "$phone"}]}},
                    "name": {"trim": "$name"},
                    "phone": {"normalize_phone": "$phone"},
                    "email": {"lower": "$email"},
                },
            }, {
                "name": "by_id", "connection": "newdb", "table": "public.by_id",
                "key": ["id"], "links": False,
                "columns": {
                    "id": {"uuid5": {"namespace": NS, "name": ["$id"]}},
                    "legacy_id": "$id",
                    "name": {"trim": "$name"},
                    "phone": {"normalize_phone": "$phone"},
                    # A row that comes back is live again (the soft delete's column cleared).
                    **({"gone_at": None} if soft else {}),
                },
                **({"on_delete": {"soft_delete": {"column": "gone_at"}}} if soft else {}),
            }],
        })
        set_based = seed % 2 == 1
        batch = rng.choice([1, 7, 50])
        # Over three partitions, two processes of one group share them: the source rows of
        # one merged row are then written by two transactions at once.
        processes = 1 if partitions == 1 else 2
        group = self.new_group(f"merge_{seed}")
        config = self.apply_config(
            {"newdb": newdb}, [mapping], capture_cfg.topic_prefix,
            source=capture_cfg.data["source"],
            apply={"set_based": set_based, "batch_max_messages": batch, "batch_max_ms": 20,
                   "group_id": group},
        )
        load = Load(seed, table)
        script = "SELECT pg_sleep(0.01);\n".join(load.transactions(rng.randint(120, 200)))
        failures = []

        def run_load():
            try:
                self.psql(script, timeout=300)
            except AssertionError as e:
                failures.append(e)

        applies = [self.start_apply(config) for _ in range(processes)]
        loader = threading.Thread(target=run_load, name=f"load-{seed}")
        loader.start()
        kills = []
        try:
            for _ in range(rng.randint(1, 3)):
                time.sleep(rng.uniform(0.2, 1.5))
                victim = rng.randrange(processes)
                kills.append(applies[victim].kill())
                applies[victim] = self.start_apply(config)
        finally:
            loader.join(timeout=300)
        self.assertEqual(failures, [])
        self.assertFalse(loader.is_alive(), "the load did not finish")
        what = (f"seed {seed} ({'set-based' if set_based else 'row by row'}, batches of "
                f"{batch}, {partitions} partition(s), {processes} apply process(es), killed "
                f"{len(kills)} times)")

        self.assertEqual(
            self.psql(f"SELECT id, name, phone, email, active FROM {table} ORDER BY id"),
            [(i, n, p, e, "t" if a else "f") for i, n, p, e, a in load.legacy()], what)
        expected = merged_rows(load.legacy())
        last = []

        def converged():
            last[:] = sorted(dstest.psql("SELECT name, phone, email FROM persons", db=newdb),
                             key=repr)
            return last == expected

        try:
            dstest.wait_for(converged, timeout=120, what=f"the merge rule's rows, {what}")
        except AssertionError:
            self.fail(f"{what}: persons holds\n{last}\nthe merge rule gives\n{expected}")
        # by_id, without links: a live row per active legacy row; soft-deleted, a row for
        # every id active once and not now (a key change leaves its old id behind).
        live = sorted((i, trim(n), normalize_phone(p)) for i, n, p, _, a in load.legacy() if a)
        gone = sorted(load.ever_active - {i for i, *_, a in load.legacy() if a}) if soft else []
        by_id = []

        def by_id_converged():
            by_id[:] = dstest.psql("SELECT legacy_id, name, phone, gone_at IS NOT NULL FROM "
                                   "by_id ORDER BY legacy_id COLLATE \"C\"", db=newdb)
            return ([(i, n, p) for i, n, p, g in by_id if g == "f"] ==
                    [(i, n, p) for i, n, p in live] and
                    sorted(i for i, *_, g in by_id if g == "t") == gone)

        try:
            dstest.wait_for(by_id_converged, timeout=60, what=f"by_id's rows, {what}")
        except AssertionError:
            self.fail(f"{what}: by_id holds\n{by_id}\nwant live\n{live}\nand gone\n{gone}")
        self.assertEqual(dstest.psql("SELECT count(*) FROM dualsync.links WHERE target LIKE "
                                     "'%/by_id'", db=newdb), [("0",)],
                         f"{what}: by_id is keyed by the source key alone and keeps no links")
        proc = dstest.run_dualsync(["verify", "--config", config.path], timeout=120)
        self.assertEqual(proc.returncode, 0, f"{what}: verify:\n{proc.stdout}\n{proc.stderr}")
        for apply in applies:
            apply.stop(expect_exit=0)


def _seed_test(seed):
    def test(self):
        self.run_seed(seed)

    test.__name__ = f"test_seed_{seed}"
    test.__doc__ = f"random merges, key changes, filter transitions and kill -9, seed {seed}"
    return test


for _seed in [int(s) for s in os.environ.get("DS_MERGE_SEEDS", "").split(",") if s.strip()] \
        or DEFAULT_SEEDS:
    setattr(MergeRuleRandomTest, f"test_seed_{_seed}", _seed_test(_seed))


class MergedRowAcrossProcessesTest(dstest.ApplyTestCase):
    """Two source rows of one merged row, in two partitions applied by two processes."""

    def test_a_merged_row_survives_its_first_source_row_leaving_while_another_joins(self):
        self.psql("CREATE TABLE people_race (id text PRIMARY KEY, name text, phone text, "
                  "email text, active boolean NOT NULL)")
        self.addCleanup(self.psql, "DROP TABLE IF EXISTS people_race")
        newdb = self.target_database("merge_race")
        dstest.psql("CREATE TABLE persons (id uuid PRIMARY KEY, name text, phone text, "
                    "email text)", db=newdb)
        capture_cfg, _ = self.start_streaming_capture(["public.people_race"],
                                                      topics={"partitions": 2})
        mapping = dstest.write_mapping(os.path.join(self.work_dir, "people_race.json"), {
            "source": "public.people_race",
            "targets": [{
                "name": "persons", "connection": "newdb", "table": "public.persons",
                "key": ["id"],
                "columns": {
                    "id": {"uuid5": {"namespace": NS, "name": [{"normalize_phone": "$phone"}]}},
                    "name": "$name", "phone": {"normalize_phone": "$phone"}, "email": "$email",
                },
            }],
        })
        group = self.new_group("merge_race")
        config = self.apply_config({"newdb": newdb}, [mapping], capture_cfg.topic_prefix,
                                   source=capture_cfg.data["source"],
                                   apply={"group_id": group, "batch_max_ms": 20})
        first, second = self.apply_pair(config, group, newdb)
        # a1 comes first in the merge order; b1 joins its row from the other partition.
        a_id, b_id = self.ids_in_partitions(newdb, 2)
        self.assertLess(source_key(a_id).encode(), source_key(b_id).encode())
        self.psql(f"INSERT INTO people_race VALUES ({sql_text(a_id)}, 'First', "
                  "'010-1111-2222', 'a@x.example', true)")
        self.wait_rows(newdb, "SELECT name, phone FROM persons", [("First", "01011112222")])
        # The process applying b1 stops with its transaction open, just before it moves its
        # offset: b1's link and the row lock of its upsert are held, uncommitted.
        held = dstest.HeldTransaction(
            "SELECT 1 FROM dualsync.offsets WHERE group_id = "
            f"{dstest.quote_literal(group)} AND partition = 1 FOR UPDATE;", db=newdb)
        try:
            self.psql(f"INSERT INTO people_race VALUES ({sql_text(b_id)}, 'Second', "
                      "'010 1111 2222', 'b@x.example', true)")
            self.wait_waiting(newdb, "the process applying b1 to wait")
            # The other process deletes a1: it sees no link but its own, and b1's process
            # still holds the row it would delete.
            self.psql(f"DELETE FROM people_race WHERE id = {sql_text(a_id)}")
            time.sleep(1.5)
        finally:
            held.release()
        self.wait_rows(newdb, "SELECT name, phone, email FROM persons",
                       [("Second", "01011112222", "b@x.example")],
                       what="the merged row with its remaining source row's values")
        proc = dstest.run_dualsync(["verify", "--config", config.path], timeout=120)
        self.assertEqual(proc.returncode, 0, f"verify:\n{proc.stdout}\n{proc.stderr}")
        first.stop(expect_exit=0)
        second.stop(expect_exit=0)

    def apply_pair(self, config, group, newdb):
        """Two apply processes of one group, once each holds one of the two partitions."""
        first, second = self.start_apply(config), self.start_apply(config)

        def split():
            owners = {self.owner_pid(newdb, group, p) for p in (0, 1)}
            return owners == {first.pid, second.pid}

        dstest.wait_for(split, timeout=90, what="each apply process to hold one partition")
        return first, second

    @staticmethod
    def owner_pid(db, group, partition):
        if dstest.psql_value("SELECT to_regclass('dualsync.offsets') IS NULL", db=db) == "t":
            return None
        owner = dstest.psql_value(
            f"SELECT owner FROM dualsync.offsets WHERE group_id = {dstest.quote_literal(group)}"
            f" AND partition = {partition}", db=db)
        match = re.search(r"\(pid (\d+) on ", owner or "")
        return int(match.group(1)) if match else None

    @staticmethod
    def ids_in_partitions(db, partitions):
        """Two ids whose Kafka keys go to partitions 0 and 1 (the producer's murmur2)."""
        found = {}
        for n in range(1, 200):
            id_ = f"a{n}" if 0 not in found else f"b{n}"
            part = int(dstest.psql_value(
                f"SELECT dualsync.kafka_partition({dstest.quote_literal(source_key(id_))}, "
                f"{partitions})", db=db))
            if part == len(found):
                found[part] = id_
            if len(found) == 2:
                return found[0], found[1]
        raise AssertionError("no ids found for both partitions")

    @staticmethod
    def wait_waiting(db, what):
        """Until a session on @db waits on a lock."""
        dstest.wait_for(
            lambda: dstest.psql_value(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
                f"datname = {dstest.quote_literal(db)}") != "0",
            timeout=30, what=what)


def people_mapping(source, merge=None, name_column="$name"):
    target = {
        "name": "people", "connection": "newdb", "table": "public.people", "key": ["email"],
        "columns": {"email": {"lower": "$email"}, "name": name_column},
    }
    if merge:
        target["merge"] = merge
    return {"source": source, "targets": [target]}


class DeclaredMergeTest(dstest.ApplyTestCase):
    def setUp(self):
        super().setUp()
        self.psql("CREATE TABLE IF NOT EXISTS staff (id int PRIMARY KEY, email text, name text);"
                  "CREATE TABLE IF NOT EXISTS customers (id int PRIMARY KEY, email text, "
                  "full_name text);")
        self.newdb = self.target_database("declared_merge")
        dstest.psql("CREATE TABLE people (email text PRIMARY KEY, name text)", db=self.newdb)

    def test_two_source_tables_declared_as_one_merge_follow_the_merge_rule(self):
        capture_cfg, _ = self.start_streaming_capture(["public.staff", "public.customers"])
        staff = dstest.write_mapping(os.path.join(self.work_dir, "staff.json"),
                                     people_mapping("public.staff", "people"))
        customers = dstest.write_mapping(
            os.path.join(self.work_dir, "customers.json"),
            people_mapping("public.customers", "people", "$full_name"))
        config = self.apply_config({"newdb": self.newdb}, [staff, customers],
                                   capture_cfg.topic_prefix, source=capture_cfg.data["source"])
        self.start_apply(config)
        # The customers topic sorts before the staff topic: a customer row comes first.
        self.assertLess(capture_cfg.topic("public.customers"), capture_cfg.topic("public.staff"))
        self.psql("INSERT INTO staff VALUES (1, 'ann@x.example', 'Dr Ann')")
        self.wait_rows(self.newdb, "SELECT email, name FROM people",
                       [("ann@x.example", "Dr Ann")])
        self.psql("INSERT INTO customers VALUES (7, 'ANN@x.example', 'Ann Customer')")
        self.wait_rows(self.newdb, "SELECT email, name FROM people",
                       [("ann@x.example", "Ann Customer")])
        # The staff row's changes are kept in its link, not written over the customer's.
        self.psql("UPDATE staff SET name = 'Dr Ann Lee' WHERE id = 1")
        self.psql("INSERT INTO staff VALUES (2, 'bob@x.example', 'Bob')")
        self.wait_rows(self.newdb, "SELECT email, name FROM people ORDER BY email",
                       [("ann@x.example", "Ann Customer"), ("bob@x.example", "Bob")])
        # The customer leaves: the staff row's latest values take its place.
        self.psql("DELETE FROM customers WHERE id = 7")
        self.wait_rows(self.newdb, "SELECT email, name FROM people ORDER BY email",
                       [("ann@x.example", "Dr Ann Lee"), ("bob@x.example", "Bob")])
        proc = dstest.run_dualsync(["verify", "--config", config.path])
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

    def test_two_files_writing_the_same_columns_without_a_merge_are_refused(self):
        staff = dstest.write_mapping(os.path.join(self.work_dir, "staff.json"),
                                     people_mapping("public.staff"))
        customers = dstest.write_mapping(os.path.join(self.work_dir, "customers.json"),
                                         people_mapping("public.customers", None, "$full_name"))
        config = self.apply_config({"newdb": self.newdb}, [staff, customers], "ds.refused")
        proc = dstest.run_dualsync(["apply", "--config", config.path], timeout=60)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn(f"{customers}:4:5: $.targets[0]: target customers/people writes column "
                      f"\"name\" of public.people for the same key as staff/people "
                      f"($.targets[0] of {staff})", proc.stderr)
        self.assertIn("the same \"merge\" name", proc.stderr)
