"""A child and its parent on different topics (and partitions) still converge exactly when two
apply processes of one consumer group share the partitions.

Legacy owners and pets are captured into two topics of three partitions each; pets map to
new_pets, whose owner_ref is a `required` lookup of the owner's row in new_owners. A pet
inserted before its owner (earlier in the same transaction, or a transaction or more before)
or moved to an owner not written yet waits in dualsync.pending. Only the process holding the
pet's partition retries that row (applier.c, "The fence"), and the partitions move from one
process to the other as the processes are killed (SIGKILL) and restarted under a random load
that also renames, moves and deletes pets and renames and deletes owners (an owner is
deleted once its pets are moved away or deleted, in the same transaction).

Even seeds add a foreign key new_pets.owner_ref -> new_owners (DEFERRABLE INITIALLY
DEFERRED): an owner's delete applied before the move of its last pet then waits in
dualsync.pending too, for the child to leave.

At the end the targets equal what the mapping gives from the legacy rows (computed here),
dualsync.pending is empty, nothing was dead-lettered, and `dualsync verify` exits 0.

The deterministic reproductions (topics of one partition): a pet parked by the process
holding its partition, which is then killed; the other process, running since before the
pet was parked, takes the partition over. It must write the pet once its owner arrives, and
must drop the waiting change when it applies the pet's delete (never write it afterwards).

DS_PARENT_CHILD_SEEDS (comma-separated integers) replaces the seeds the suite runs, for a
soak: DS_PARENT_CHILD_SEEDS=$(seq -s, 1 50) ctest --test-dir build -R test_apply_parent_child.
"""

import json
import os
import random
import re
import threading
import time
import uuid

import dstest

NS = "0d7c5a8e-41b2-4f6a-9e3d-8a1b2c3d4e5f"
PARTITIONS = 3
DEFAULT_SEEDS = [1, 2, 3]

OWNER_NAMES = ["Ann", " Bo ", "Cy", "Dee Lee", "Eun"]
PET_NAMES = ["Rex", " Tom", "Nabi ", "Coco", "Bori", "Max"]

OWNER_PID = re.compile(r"\(pid (\d+) on ")


def owner_uuid(owner_id):
    """new_owners.id: uuid5 of the legacy id's text (mappings/README.md, uuid5)."""
    return str(uuid.uuid5(uuid.UUID(NS), json.dumps([str(owner_id)], separators=(",", ":"))))


class Load:
    """A random sequence of transactions over owners and pets, and the legacy rows it leaves.
    Owners the load has referenced (a pet of theirs exists) but not inserted yet are owed:
    inserted by a later transaction, at the latest by the last one."""

    def __init__(self, seed, owners_table, pets_table):
        self.rng = random.Random(seed)
        self.o = dstest.quote_ident(owners_table)
        self.p = dstest.quote_ident(pets_table)
        self.owners = {}  # id -> name
        self.pets = {}  # id -> [owner_id, name]
        self.owed = set()  # owner ids referenced by pets, not inserted yet
        self.next_owner = 0
        self.next_pet = 0
        self.waits = 0  # changes that reference an owner not committed yet

    def new_owner_id(self):
        self.next_owner += 1
        return self.next_owner

    def insert_owner(self, id_):
        name = self.rng.choice(OWNER_NAMES)
        self.owners[id_] = name
        self.owed.discard(id_)
        return f"INSERT INTO {self.o} VALUES ({id_}, {dstest.quote_literal(name)});"

    def insert_pet(self, owner_id):
        self.next_pet += 1
        name = self.rng.choice(PET_NAMES)
        self.pets[self.next_pet] = [owner_id, name]
        return (f"INSERT INTO {self.p} VALUES ({self.next_pet}, {owner_id}, "
                f"{dstest.quote_literal(name)});")

    def op(self):
        rng = self.rng
        kinds = ["owner"] * 2 + ["pet_then_owner"] * 2 + ["pet_early"] * 2
        if self.owed:
            kinds += ["owed"] * 3
        if self.owners:
            kinds += ["pet"] * 2 + ["rename_owner", "delete_owner"]
        if self.pets:
            kinds += ["rename_pet"] * 2 + ["move_pet"] * 3 + ["delete_pet"]
        kind = rng.choice(kinds)
        if kind == "owner":
            return self.insert_owner(self.new_owner_id())
        if kind == "pet_then_owner":
            # The child first, its parent later in the same transaction.
            id_ = self.new_owner_id()
            self.waits += 1
            return self.insert_pet(id_) + "\n" + self.insert_owner(id_)
        if kind == "pet_early":
            # The child commits before its parent exists at all.
            id_ = self.new_owner_id()
            self.owed.add(id_)
            self.waits += 1
            return self.insert_pet(id_)
        if kind == "owed":
            return self.insert_owner(rng.choice(sorted(self.owed)))
        if kind == "pet":
            return self.insert_pet(rng.choice(sorted(self.owners)))
        if kind == "rename_owner":
            id_ = rng.choice(sorted(self.owners))
            self.owners[id_] = rng.choice(OWNER_NAMES)
            return (f"UPDATE {self.o} SET name = {dstest.quote_literal(self.owners[id_])} "
                    f"WHERE id = {id_};")
        if kind == "delete_owner":
            id_ = rng.choice(sorted(self.owners))
            others = sorted(set(self.owners) - {id_})
            sql = []
            for pet_id in sorted(p for p, (owner, _) in self.pets.items() if owner == id_):
                if others and rng.random() < 0.7:
                    self.pets[pet_id][0] = rng.choice(others)
                    sql.append(f"UPDATE {self.p} SET owner_id = {self.pets[pet_id][0]} "
                               f"WHERE id = {pet_id};")
                else:
                    del self.pets[pet_id]
                    sql.append(f"DELETE FROM {self.p} WHERE id = {pet_id};")
            del self.owners[id_]
            sql.append(f"DELETE FROM {self.o} WHERE id = {id_};")
            return "\n".join(sql)
        pet_id = rng.choice(sorted(self.pets))
        pet = self.pets[pet_id]
        if kind == "rename_pet":
            pet[1] = rng.choice(PET_NAMES)
            return (f"UPDATE {self.p} SET name = {dstest.quote_literal(pet[1])} "
                    f"WHERE id = {pet_id};")
        if kind == "move_pet":
            if not self.owners or rng.random() < 0.3:
                # To an owner inserted later: the pet waits again.
                pet[0] = self.new_owner_id()
                self.owed.add(pet[0])
                self.waits += 1
            else:
                pet[0] = rng.choice(sorted(self.owners))
            pet[1] = rng.choice(PET_NAMES)
            return (f"UPDATE {self.p} SET owner_id = {pet[0]}, "
                    f"name = {dstest.quote_literal(pet[1])} WHERE id = {pet_id};")
        del self.pets[pet_id]
        return f"DELETE FROM {self.p} WHERE id = {pet_id};"

    def transactions(self, count):
        txns = ["BEGIN;\n" + "\n".join(self.op() for _ in range(self.rng.randint(1, 4))) +
                "\nCOMMIT;\n" for _ in range(count)]
        # The owners still owed arrive last.
        txns.append("BEGIN;\n" + "\n".join(self.insert_owner(i) for i in sorted(self.owed)) +
                    "\nCOMMIT;\n")
        return txns

    def legacy_owners(self):
        return [(str(i), n) for i, n in sorted(self.owners.items())]

    def legacy_pets(self):
        return [(str(i), str(o), n) for i, (o, n) in sorted(self.pets.items())]

    def expected_owners(self):
        return sorted((owner_uuid(i), str(i), n.strip()) for i, n in self.owners.items())

    def expected_pets(self):
        return sorted((str(i), owner_uuid(o), n.strip()) for i, (o, n) in self.pets.items())


class ParentChildCase(dstest.ApplyTestCase):
    """Legacy owners and pets captured into topics created beforehand, mapped into a fresh
    target database by apply processes of one consumer group of its own."""

    def start_parent_child(self, name, partitions, foreign_key, apply=None):
        """Creates the tables, topics and mappings of @name, starts capture; returns
        (target database, apply config, group, {"owners": topic, "pets": topic}, legacy
        owners table, legacy pets table)."""
        owners_table, pets_table = f"owners_{name}", f"pets_{name}"
        self.psql(f"CREATE TABLE {owners_table} (id int PRIMARY KEY, name text);"
                  f"CREATE TABLE {pets_table} (id int PRIMARY KEY, owner_id int NOT NULL, "
                  "name text)")
        self.addCleanup(self.psql, f"DROP TABLE IF EXISTS {owners_table}, {pets_table}")
        newdb = self.target_database(f"parent_child_{name}")
        dstest.psql(
            "CREATE TABLE new_owners (id uuid PRIMARY KEY, legacy_id int NOT NULL UNIQUE, "
            "name text);"
            "CREATE TABLE new_pets (id int PRIMARY KEY, owner_ref uuid NOT NULL"
            + (" REFERENCES new_owners (id) DEFERRABLE INITIALLY DEFERRED" if foreign_key else "")
            + ", name text)", db=newdb)

        prefix = f"ds.{self._test_slug}"
        topics = {"owners": f"{prefix}.public.{owners_table}",
                  "pets": f"{prefix}.public.{pets_table}"}
        for topic in topics.values():
            dstest.create_topic(topic, partitions=partitions)
        capture_cfg, _ = self.start_streaming_capture(
            [f"public.{owners_table}", f"public.{pets_table}"], topic_prefix=prefix)
        owners_mapping = dstest.write_mapping(os.path.join(self.work_dir, f"{owners_table}.json"), {
            "source": f"public.{owners_table}",
            "targets": [{
                "name": "new_owners", "connection": "newdb", "table": "public.new_owners",
                "key": ["id"],
                "columns": {
                    "id": {"uuid5": {"namespace": NS, "name": ["$id"]}},
                    "legacy_id": "$id",
                    "name": {"trim": "$name"},
                },
            }],
        })
        pets_mapping = dstest.write_mapping(os.path.join(self.work_dir, f"{pets_table}.json"), {
            "source": f"public.{pets_table}",
            "targets": [{
                "name": "new_pets", "connection": "newdb", "table": "public.new_pets",
                "key": ["id"],
                "columns": {
                    "id": "$id",
                    "owner_ref": {"lookup": {"table": "public.new_owners",
                                             "match": {"legacy_id": "$owner_id"},
                                             "column": "id", "required": True}},
                    "name": {"trim": "$name"},
                },
            }],
        })
        group = self.new_group(f"parent_child_{name}")
        config = self.apply_config(
            {"newdb": newdb}, [owners_mapping, pets_mapping], capture_cfg.topic_prefix,
            source=capture_cfg.data["source"],
            apply=dict({"group_id": group, "batch_max_ms": 20}, **(apply or {})),
        )
        return newdb, config, group, topics, owners_table, pets_table

    def assert_verify(self, config, what):
        proc = dstest.run_dualsync(["verify", "--config", config.path], timeout=120)
        self.assertEqual(proc.returncode, 0, f"{what}: verify:\n{proc.stdout}\n{proc.stderr}")

    @staticmethod
    def offsets(db, group):
        """{(topic, partition): (owner pid, next_offset)} of @group in @db."""
        if dstest.psql_value("SELECT to_regclass('dualsync.offsets') IS NULL", db=db) == "t":
            return {}
        result = {}
        for topic, partition, owner, next_offset in dstest.psql(
                "SELECT topic, partition, owner, next_offset FROM dualsync.offsets "
                f"WHERE group_id = {dstest.quote_literal(group)}", db=db):
            match = OWNER_PID.search(owner or "")
            result[(topic, int(partition))] = (int(match.group(1)) if match else None,
                                               int(next_offset))
        return result

    def wait_offsets(self, db, group, predicate, what, timeout=60):
        """Until @predicate holds of offsets(@db, @group)."""
        last = {}

        def check():
            last.clear()
            last.update(self.offsets(db, group))
            return predicate(last)

        try:
            dstest.wait_for(check, timeout=timeout, interval=0.2, what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}; dualsync.offsets (owner pid, next offset): {last}") from None

    def wait_both_own(self, db, group, applies, partitions):
        """Until every partition is claimed and each of @applies holds some."""
        pids = {a.pid for a in applies}
        self.wait_offsets(
            db, group,
            lambda o: len(o) == partitions and pids <= {pid for pid, _ in o.values()},
            f"processes {sorted(pids)} to hold partitions each")


class ParentChildAcrossProcessesTest(ParentChildCase):
    """One test per seed; a failure names its seed (run it alone with DS_PARENT_CHILD_SEEDS)."""

    def run_seed(self, seed):
        rng = random.Random(seed * 104729)
        foreign_key = seed % 2 == 0
        batch = rng.choice([1, 10, 50])
        newdb, config, group, topics, owners_table, pets_table = self.start_parent_child(
            str(seed), PARTITIONS, foreign_key, apply={"batch_max_messages": batch})
        applies = [self.start_apply(config), self.start_apply(config)]
        self.wait_both_own(newdb, group, applies, len(topics) * PARTITIONS)

        load = Load(seed, owners_table, pets_table)
        script = "SELECT pg_sleep(0.02);\n".join(load.transactions(rng.randint(150, 220)))
        failures = []

        def run_load():
            try:
                self.psql(script, timeout=300)
            except AssertionError as e:
                failures.append(e)

        loader = threading.Thread(target=run_load, name=f"load-{seed}")
        started = time.monotonic()
        loader.start()
        kills = []
        try:
            for _ in range(rng.randint(2, 3)):
                time.sleep(rng.uniform(0.5, 2.0))
                victim = rng.randrange(2)
                kills.append((round(time.monotonic() - started, 1), applies[victim].pid))
                applies[victim].kill()
                applies[victim] = self.start_apply(config)
        finally:
            loader.join(timeout=300)
        self.assertEqual(failures, [])
        self.assertFalse(loader.is_alive(), "the load did not finish")
        what = (f"seed {seed} (batches of {batch}, {'a foreign key and ' if foreign_key else ''}"
                f"a required lookup, {load.waits} changes of a pet before its owner, "
                f"{len(load.owners)} owners and {len(load.pets)} pets left, apply killed at "
                f"(s, pid) {kills}, running {[a.pid for a in applies]})")

        self.assertEqual(self.psql(f"SELECT id, name FROM {owners_table} ORDER BY id"),
                         load.legacy_owners(), what)
        self.assertEqual(self.psql(f"SELECT id, owner_id, name FROM {pets_table} ORDER BY id"),
                         load.legacy_pets(), what)
        expected = (load.expected_owners(), load.expected_pets(), [])
        last = []

        def converged():
            last[:] = [
                sorted(dstest.psql("SELECT id, legacy_id, name FROM new_owners", db=newdb)),
                sorted(dstest.psql("SELECT id, owner_ref, name FROM new_pets", db=newdb)),
                dstest.psql("SELECT target, topic, partition, kafka_offset, source_key, error "
                            "FROM dualsync.pending ORDER BY id", db=newdb),
            ]
            return tuple(last) == expected

        try:
            dstest.wait_for(converged, timeout=60, interval=0.3,
                            what=f"the mapping's rows and an empty dualsync.pending, {what}")
        except AssertionError as e:
            self.fail(f"{e}\n{self.difference(last, expected)}\n"
                      f"dualsync.offsets: {self.offsets(newdb, group)}")
        for apply in applies:
            self.assertTrue(apply.running(), f"apply {apply.pid} stopped:\n{apply.log_tail()}")
        self.assert_verify(config, what)
        for apply in applies:
            apply.stop(expect_exit=0)
        # Waiting is not failing: nothing became a dead letter, in any process.
        for proc in self._captures:
            self.assertNotRegex(proc.log_text(), r"dead letter: |becomes a dead letter",
                                f"{what}: {proc.log_path}")

    @staticmethod
    def difference(last, expected):
        out = []
        for name, got, want in zip(("new_owners", "new_pets", "dualsync.pending"), last, expected):
            missing = [r for r in want if r not in got]
            extra = [r for r in got if r not in want]
            if missing or extra:
                out.append(f"{name}: {len(got)} rows, {len(want)} expected; missing: "
                           f"{missing[:10]}; extra or stale: {extra[:10]}")
        return "\n".join(out)


class PendingRowOfAMovedPartitionTest(ParentChildCase):
    """The deterministic reproductions: a pet waits in dualsync.pending, written there by the
    process that held its partition (H); H dies and the other process (O), which was running
    already, takes the partition over. O must retry the waiting change once its owner
    arrives, and drop it when it applies a newer change of the pet (here its delete)."""

    def park_then_move(self):
        """Pet 1 waits for owner 10, parked by H; H is killed and O claims the pets
        partition. Returns (target database, config, owners table, pets table, H, O)."""
        newdb, config, group, topics, owners_table, pets_table = self.start_parent_child(
            "moved", 1, foreign_key=False)
        pets = (topics["pets"], 0)
        first = self.start_apply(config)
        self.wait_offsets(newdb, group, lambda o: len(o) == 2,
                          "the first process to claim both partitions")
        second = self.start_apply(config)
        self.wait_both_own(newdb, group, [first, second], 2)
        holder_pid = self.offsets(newdb, group)[pets][0]
        holder, other = (first, second) if holder_pid == first.pid else (second, first)

        # Pet 1 before its owner: H parks it, after O started.
        self.psql(f"INSERT INTO {pets_table} VALUES (1, 10, 'Rex')")
        self.wait_rows(newdb, "SELECT source_key FROM dualsync.pending", [('{"id":1}',)],
                       what="pet 1 to wait for owner 10")
        # H dies; O takes the pets partition once H's session times out.
        holder.kill()
        self.wait_offsets(newdb, group, lambda o: o.get(pets, (None,))[0] == other.pid,
                          f"process {other.pid} to claim {pets[0]} [0] of killed {holder.pid}")
        return newdb, config, owners_table, pets_table, holder, other

    def test_a_change_parked_by_the_partitions_previous_owner_is_retried_by_the_new_one(self):
        newdb, config, owners_table, _, holder, other = self.park_then_move()
        self.psql(f"INSERT INTO {owners_table} VALUES (10, 'Ann')")
        self.wait_rows(newdb, "SELECT id, owner_ref, name FROM new_pets",
                       [("1", owner_uuid(10), "Rex")], timeout=30,
                       what=f"pet 1 (parked by process {holder.pid}) to be written by process "
                            f"{other.pid}, which took its partition over, once owner 10 is")
        self.wait_rows(newdb, "SELECT source_key FROM dualsync.pending", [])
        self.assert_verify(config, "after owner 10 arrived")
        other.stop(expect_exit=0)

    def test_a_change_parked_by_the_partitions_previous_owner_is_dropped_by_a_later_delete(self):
        newdb, config, owners_table, pets_table, holder, other = self.park_then_move()
        # O applies pet 1's delete, and parks pet 2 (another change waiting, so that O
        # retries dualsync.pending when owners arrive).
        self.psql(f"DELETE FROM {pets_table} WHERE id = 1;"
                  f"INSERT INTO {pets_table} VALUES (2, 20, 'Tom')")
        # Pet 2 comes after pet 1's delete in the partition: once it waits, the delete was
        # applied.
        self.wait_rows(newdb, "SELECT count(*) FROM dualsync.pending WHERE source_key = "
                       "'{\"id\":2}'", [("1",)], what="pet 2 to wait for owner 20")
        waiting = self.psql("SELECT source_key, kafka_offset FROM dualsync.pending ORDER BY id",
                            db=newdb)
        # The owners arrive: only pet 2 is written.
        self.psql(f"INSERT INTO {owners_table} VALUES (10, 'Ann'), (20, 'Bo')")
        self.wait_rows(newdb, "SELECT source_key FROM dualsync.pending", [],
                       what="dualsync.pending to empty once the owners arrive")
        why = (f"pet 1 was deleted (offset 1, applied by process {other.pid}, which took the "
               f"partition over), but its insert (offset 0, parked by process {holder.pid}) "
               f"still waited after the delete: dualsync.pending (source_key, kafka_offset) "
               f"held {waiting}")
        self.assertEqual(self.psql("SELECT id, owner_ref, name FROM new_pets ORDER BY id",
                                   db=newdb),
                         [("2", owner_uuid(20), "Tom")], why)
        self.assertEqual(waiting, [('{"id":2}', "3")], why)
        self.assert_verify(config, "after pet 1's delete")
        other.stop(expect_exit=0)


def _seed_test(seed):
    def test(self):
        self.run_seed(seed)

    test.__name__ = f"test_seed_{seed}"
    test.__doc__ = (f"pets before their owners, two apply processes killed in turn, seed {seed}"
                    + (" (with a foreign key)" if seed % 2 == 0 else ""))
    return test


for _seed in [int(s) for s in os.environ.get("DS_PARENT_CHILD_SEEDS", "").split(",")
              if s.strip()] or DEFAULT_SEEDS:
    setattr(ParentChildAcrossProcessesTest, f"test_seed_{_seed}", _seed_test(_seed))


if __name__ == "__main__":
    import unittest

    unittest.main()
