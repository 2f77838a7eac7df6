"""apply: inserts, updates and deletes of a legacy table converge into its new table, exactly
once, against a real PostgreSQL 15 and Kafka with real capture feeding the topic.

The expected new table is computed in Python from the operations the test makes (and the
model is checked against the legacy table itself); every write to the new table is counted by
a trigger, so a change applied twice would show even when the final rows look right.
"""

import json
import os
import random

import dstest

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
PEOPLE_MAPPING = os.path.join(FIXTURES, "apply_people.json")
KINDS = {"D": "DOCTOR", "N": "NURSE", "P": "PATIENT"}

LEGACY_DDL = """
DROP TABLE IF EXISTS legacy_people;
CREATE TABLE legacy_people (id int PRIMARY KEY, name text, email text, kind text, visits int);
"""

# The new table, and a trigger that counts every row written to it.
NEW_DDL = """
CREATE TABLE people (id int PRIMARY KEY, full_name text, email text, kind text NOT NULL,
                     visits int);
CREATE TABLE people_writes (n bigserial PRIMARY KEY, op text NOT NULL, id int NOT NULL);
CREATE FUNCTION count_people_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO people_writes (op, id) VALUES (TG_OP, COALESCE(NEW.id, OLD.id));
    RETURN NULL;
END $$;
CREATE TRIGGER people_writes AFTER INSERT OR UPDATE OR DELETE ON people
    FOR EACH ROW EXECUTE FUNCTION count_people_write();
"""

PEOPLE_QUERY = "SELECT id, full_name, email, kind, visits FROM people ORDER BY id"


def lit(value):
    return "NULL" if value is None else dstest.quote_literal(str(value))


class PeopleModel:
    """The legacy table as the test changed it, and the SQL that changed it."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.rows = {}
        self.next_id = 1
        self.changes = 0  # row changes made: one Kafka message each (tombstones aside)

    def _values(self):
        rng = self.rng
        # Quotes, backslashes, braces and commas: values travel inside array literals when
        # apply writes set-based.
        name = rng.choice(["Ann", "Bo", "Chen Li", "Dana", "Émile", 'O"Neil \\ {x,y}']) + str(
            rng.randint(1, 999)
        )
        # ASCII: the mapping's lower() folds ASCII letters only.
        email = f"User{rng.randint(1, 9999)}@Clinic.Example"
        return {
            "name": " " * rng.randint(0, 2) + name + " " * rng.randint(0, 2),
            "email": " " + email.upper() if rng.random() < 0.3 else email,
            "kind": rng.choice(sorted(KINDS)),
            "visits": None if rng.random() < 0.2 else rng.randint(0, 50),
        }

    def insert(self):
        row_id = self.next_id
        self.next_id += 1
        v = self._values()
        self.rows[row_id] = v
        self.changes += 1
        return (
            "INSERT INTO legacy_people VALUES "
            f"({row_id}, {lit(v['name'])}, {lit(v['email'])}, {lit(v['kind'])}, {lit(v['visits'])});"
        )

    def update(self):
        row_id = self.rng.choice(sorted(self.rows))
        v = self._values()
        self.rows[row_id] = v
        self.changes += 1
        return (
            f"UPDATE legacy_people SET name = {lit(v['name'])}, email = {lit(v['email'])}, "
            f"kind = {lit(v['kind'])}, visits = {lit(v['visits'])} WHERE id = {row_id};"
        )

    def delete(self):
        row_id = self.rng.choice(sorted(self.rows))
        del self.rows[row_id]
        self.changes += 1
        return f"DELETE FROM legacy_people WHERE id = {row_id};"

    def transactions(self, count, size):
        """SQL for @count transactions of @size random changes each."""
        script = []
        for _ in range(count):
            script.append("BEGIN;")
            for _ in range(size):
                r = self.rng.random()
                if not self.rows or r < 0.5:
                    script.append(self.insert())
                elif r < 0.85:
                    script.append(self.update())
                else:
                    script.append(self.delete())
            script.append("COMMIT;")
        return "\n".join(script) + "\n"

    def legacy_rows(self):
        return [
            (str(i), v["name"], v["email"], v["kind"], None if v["visits"] is None else str(v["visits"]))
            for i, v in sorted(self.rows.items())
        ]

    def expected_people(self):
        """The new table as apply_people.json maps the legacy rows."""
        return [
            (
                str(i),
                v["name"].strip(" "),
                v["email"].strip(" ").lower(),
                KINDS[v["kind"]],
                None if v["visits"] is None else str(v["visits"]),
            )
            for i, v in sorted(self.rows.items())
        ]


class ApplyPeopleCase(dstest.ApplyTestCase):
    """A legacy table, its new table in a database of its own, capture and apply."""

    def setUp(self):
        super().setUp()
        self.psql(LEGACY_DDL)
        self.newdb = self.target_database("people_new")
        self.psql(NEW_DDL, db=self.newdb)
        self.capture_cfg, self.capture = self.start_streaming_capture(["public.legacy_people"])
        self.topic = self.capture_cfg.topic("public.legacy_people")

    def people_apply_config(self, **apply):
        return self.apply_config(
            {"newdb": self.newdb}, [PEOPLE_MAPPING], self.capture_cfg.topic_prefix, apply=apply
        )

    def assert_offsets_at_end(self, config):
        """dualsync.offsets says the whole topic is applied, nothing more, nothing less."""
        ends = dstest.end_offsets([self.topic])
        self.assertEqual(dstest.stored_offsets(self.newdb, config.group_id), ends)


class ApplyConvergesTest(ApplyPeopleCase):
    def test_inserts_updates_and_deletes_converge_and_resume_after_sigterm(self):
        model = PeopleModel(seed=20240611)
        cfg = self.people_apply_config(batch_max_messages=50)
        apply = self.start_apply(cfg)

        self.psql(model.transactions(count=20, size=25))
        self.assertEqual(self.psql("SELECT * FROM legacy_people ORDER BY id"), model.legacy_rows())
        self.wait_rows(self.newdb, PEOPLE_QUERY, model.expected_people(), timeout=90)
        self.assert_offsets_at_end(cfg)
        # The same positions are committed to Kafka, where lag tools look (asynchronously:
        # they follow the database commits).
        ends = dstest.end_offsets([self.topic])
        dstest.wait_for(
            lambda: dstest.committed_offsets(cfg.group_id, [self.topic]) == ends,
            timeout=30,
            what="the group's offsets committed to Kafka to reach the end of the topic",
        )

        # SIGTERM: exit 0, having left nothing half done.
        self.assertEqual(apply.stop(timeout=60, expect_exit=0), 0)
        self.assertIn("stopped on signal", apply.log_text())
        self.assert_offsets_at_end(cfg)

        # Changes made while apply is down are applied after a restart, and only they.
        self.psql(model.transactions(count=5, size=20))
        apply2 = self.start_apply(cfg)
        self.wait_rows(self.newdb, PEOPLE_QUERY, model.expected_people(), timeout=90)
        self.assert_offsets_at_end(cfg)
        apply2.stop(expect_exit=0)

        # Exactly once: one write of the new table per change, none repeated by the restart.
        writes = int(dstest.psql_value("SELECT count(*) FROM people_writes", db=self.newdb))
        self.assertEqual(writes, model.changes)
        links = int(dstest.psql_value("SELECT count(*) FROM dualsync.links", db=self.newdb))
        self.assertEqual(links, len(model.rows))
        self.assertEqual(dstest.psql("TABLE dualsync.pending", db=self.newdb), [])


class ApplyRowByRowTest(ApplyPeopleCase):
    """The same load written both ways (apply.set_based): the expected rows, one write per
    change seen by the trigger, and the log says which way the transactions went."""

    def run_load(self, set_based):
        model = PeopleModel(seed=777)
        cfg = self.people_apply_config(batch_max_messages=200, set_based=set_based)
        apply = self.start_apply(cfg)
        self.psql(model.transactions(count=30, size=30))
        self.wait_rows(self.newdb, PEOPLE_QUERY, model.expected_people(), timeout=90)
        self.assert_offsets_at_end(cfg)
        apply.stop(expect_exit=0)
        writes = dstest.psql(
            "SELECT op, count(*) FROM people_writes GROUP BY op ORDER BY op", db=self.newdb
        )
        self.assertEqual(sum(int(n) for _, n in writes), model.changes)
        progress = [line for line in apply.log_text().splitlines() if "progress:" in line][-1]
        return writes, progress

    def test_set_based(self):
        _, progress = self.run_load(True)
        self.assertRegex(progress, r"; [1-9][0-9]* of [1-9][0-9]* transactions set-based")

    def test_row_by_row(self):
        _, progress = self.run_load(False)
        self.assertRegex(progress, r"; 0 of [1-9][0-9]* transactions set-based")


class ApplyStopOnErrorTest(ApplyPeopleCase):
    def test_on_error_stop_exits_1_without_committing_the_batch(self):
        cfg = self.people_apply_config(on_error="stop", batch_max_ms=20)
        apply = self.start_apply(cfg)
        self.psql(
            "INSERT INTO legacy_people VALUES (1, 'Ann', 'ann@x', 'D', 1), (2, 'Bo', 'bo@x', 'N', 2)"
        )
        self.wait_rows(self.newdb, "SELECT id FROM people ORDER BY id", [("1",), ("2",)])
        dstest.wait_for(
            lambda: dstest.stored_offsets(self.newdb, cfg.group_id).get((self.topic, 0)) == 2,
            timeout=30,
            what="the offsets of the first two changes",
        )

        # "X" is not a case of the kind map, which has no default.
        self.psql(
            "BEGIN; INSERT INTO legacy_people VALUES (3, 'Cy', 'cy@x', 'X', 3);"
            " INSERT INTO legacy_people VALUES (4, 'Di', 'di@x', 'P', 4); COMMIT;"
        )
        code = apply.wait_exit(timeout=60)
        self.assertEqual(code, 1, apply.log_tail())
        log = apply.log_text()
        self.assertIn(f"{self.topic} [0] @2", log)
        self.assertIn('apply.on_error is "stop"', log)
        self.assertIn('value "X"', log)
        # Nothing of that batch was committed: neither the bad change nor the good one after it.
        self.assertEqual(self.psql("SELECT id FROM people ORDER BY id", db=self.newdb), [("1",), ("2",)])
        self.assertEqual(dstest.stored_offsets(self.newdb, cfg.group_id), {(self.topic, 0): 2})
        # And no dead letter either.
        self.assertEqual(dstest.consume([cfg.dlq_topic], idle_ms=500, timeout_ms=3000, check=False), [])


class ApplyPrivilegesTest(dstest.ApplyTestCase):
    def test_missing_origin_privilege_is_reported_with_the_grant_that_fixes_it(self):
        role = dstest.unique_name("ds_apply_role")
        dstest.psql(f"CREATE ROLE {role} LOGIN")
        self.addCleanup(dstest.psql, f"DROP ROLE IF EXISTS {role}")
        # Created after the role, so dropped before it (cleanups run last first).
        newdb = self.target_database("people_priv")
        self.psql(LEGACY_DDL)
        self.psql(NEW_DDL, db=newdb)
        self.psql(
            f"GRANT CREATE ON DATABASE {newdb} TO {role};"
            f"GRANT ALL ON people, people_writes, people_writes_n_seq TO {role}",
            db=newdb,
        )
        capture_cfg, _ = self.start_streaming_capture(["public.legacy_people"])
        cfg = self.apply_config({"newdb": newdb}, [PEOPLE_MAPPING], capture_cfg.topic_prefix)
        # The same database, as the unprivileged role (the last "user" of a conninfo wins).
        cfg.data["targets"]["newdb"]["conninfo"] += f" user={role}"
        with open(cfg.path, "w", encoding="utf-8") as f:
            json.dump(cfg.data, f)

        refused = dstest.run_dualsync(["apply", "--config", cfg.path], timeout=60)
        self.assertEqual(refused.returncode, 1, refused.stderr)
        # Each process has an origin of its own: "<apply.origin>.<group>.<instance id>".
        self.assertIn(
            'target "newdb": cannot use replication origin "dualsync.dualsync-apply.', refused.stderr
        )
        self.assertIn("permission denied for function pg_replication_origin_", refused.stderr)
        self.assertIn(
            "GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), "
            "pg_replication_origin_session_setup(text), pg_replication_origin_session_reset() "
            "TO <role>, in this database",
            refused.stderr,
        )

        # The grant the message gives is enough.
        self.psql(
            "GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), "
            f"pg_replication_origin_session_setup(text), pg_replication_origin_session_reset() TO {role}",
            db=newdb,
        )
        apply = self.start_apply(cfg)
        self.psql("INSERT INTO legacy_people VALUES (1, ' Ann ', 'A@X', 'N', 7)")
        self.wait_rows(newdb, PEOPLE_QUERY, [("1", "Ann", "a@x", "NURSE", "7")])
        apply.stop(expect_exit=0)


class ApplySetupErrorsTest(dstest.ApplyTestCase):
    """Mistakes found before apply reads anything: exit 2 and a message naming the place."""

    def run_apply(self, cfg):
        proc = dstest.run_dualsync(["apply", "--config", cfg.path], timeout=60)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        return proc.stderr

    def test_capture_only_file_lacks_targets(self):
        cfg = self.capture_config(["public.whatever"])
        proc = dstest.run_dualsync(["apply", "--config", cfg.path], timeout=60)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertEqual(
            proc.stderr.strip(),
            f"dualsync apply: {cfg.path}:1:1: $.targets: required setting is missing",
        )

    def test_mapping_table_missing_in_the_target_is_reported_before_reading(self):
        newdb = self.target_database("setup_errors")
        cfg = self.apply_config({"newdb": newdb}, [PEOPLE_MAPPING], "ds.setup")
        stderr = self.run_apply(cfg)
        self.assertIn('the mappings do not fit the tables of target "newdb"', stderr)
        self.assertIn("apply_people.json", stderr)
        self.assertIn("public.people", stderr)

    def test_consumer_setting_apply_owns_is_refused(self):
        newdb = self.target_database("setup_errors")
        self.psql(NEW_DDL, db=newdb)
        cfg = self.apply_config(
            {"newdb": newdb}, [PEOPLE_MAPPING], "ds.setup", kafka={"enable.auto.commit": True}
        )
        stderr = self.run_apply(cfg)
        self.assertIn(f'{cfg.path}: $.kafka["enable.auto.commit"]: apply sets this itself', stderr)

    def test_file_problems_and_catalog_problems_are_reported_together(self):
        newdb = self.target_database("setup_errors")
        self.psql(NEW_DDL, db=newdb)
        # One file with a problem of its own (an unknown function)...
        broken = json.loads(open(PEOPLE_MAPPING, encoding="utf-8").read())
        broken["targets"][0]["columns"]["email"] = {"lowercase": "$email"}
        broken_path = dstest.write_mapping(os.path.join(self.work_dir, "broken_people.json"), broken)
        # ...and one that loads but does not fit the target: a missing table, and a missing
        # column of an existing one.
        other = {
            "source": "public.legacy_other",
            "targets": [
                {"name": "gone", "connection": "newdb", "table": "public.no_such_table",
                 "key": ["id"], "columns": {"id": "$id"}},
                {"name": "typo", "connection": "newdb", "table": "public.people",
                 "key": ["id"], "columns": {"id": "$id", "kind": "$kind", "fulname": "$name"}},
            ],
        }
        other_path = dstest.write_mapping(os.path.join(self.work_dir, "other.json"), other)
        cfg = self.apply_config({"newdb": newdb}, [broken_path, other_path], "ds.setup")
        stderr = self.run_apply(cfg)
        self.assertIn('unknown function "lowercase"', stderr)
        self.assertIn('the mappings do not fit the tables of target "newdb"', stderr)
        self.assertIn("table public.no_such_table does not exist", stderr)
        self.assertIn('column "fulname" does not exist in table public.people', stderr)
        # The check created nothing in the target.
        self.assertEqual(
            dstest.psql_value("SELECT count(*) FROM pg_namespace WHERE nspname = 'dualsync'", db=newdb), "0"
        )

    def test_malformed_target_conninfo_exits_2_without_showing_the_password(self):
        cfg = self.apply_config({"newdb": "x"}, [PEOPLE_MAPPING], "ds.setup")
        cfg.data["targets"]["newdb"]["conninfo"] = "postgresql://alice:secret123@[::1/db"
        with open(cfg.path, "w", encoding="utf-8") as f:
            json.dump(cfg.data, f)
        stderr = self.run_apply(cfg)
        self.assertIn(f"{cfg.path}: $.targets.newdb.conninfo is not a valid connection string", stderr)
        self.assertNotIn("secret123", stderr)

    def test_kafka_settings_librdkafka_or_dualsync_refuse_exit_2_before_connecting(self):
        # No target database exists: the Kafka settings are refused before any connection.
        cases = [
            # The dead-letter producer needs acks=all as capture's does.
            ({"acks": "1"}, '$.kafka["acks"]: is "1" but must be "all"'),
            ({"no.such.property": "x"}, '$.kafka["no.such.property"] = "x": No such configuration property'),
            ({"session.timeout.ms": "long"}, '$.kafka["session.timeout.ms"] = "long": Invalid value'),
        ]
        for kafka, message in cases:
            with self.subTest(kafka=kafka):
                cfg = self.apply_config({"newdb": "no_such_database"}, [PEOPLE_MAPPING], "ds.setup", kafka=kafka)
                stderr = self.run_apply(cfg)
                self.assertIn(f"dualsync apply: {cfg.path}: {message}", stderr)
                for command in (["dlq", "list"], ["dlq", "retry"]):
                    proc = dstest.run_dualsync(command + ["--config", cfg.path], timeout=60)
                    self.assertEqual(proc.returncode, 2, proc.stderr)
                    self.assertIn(message, proc.stderr)


PLACEHOLDER = "__debezium_unavailable_value"


class ApplyPlaceholderTextTest(ApplyPeopleCase):
    def test_placeholder_text_in_an_insert_is_real_data_and_an_unchanged_toast_is_kept(self):
        # The source table gets its own placeholder text in a create: capture sends it as it
        # is (an INSERT carries every value), and apply must write it, not NULL.
        self.psql("ALTER TABLE legacy_people ALTER COLUMN email SET STORAGE EXTERNAL")
        cfg = self.people_apply_config(batch_max_ms=20)
        apply = self.start_apply(cfg)
        # Row 2's email is stored out of line (EXTERNAL: not compressed), so an update of
        # another column sends it as unchanged.
        big = "x" * 9000 + "@clinic.example"
        self.psql(
            f"INSERT INTO legacy_people VALUES (1, '{PLACEHOLDER}', '{PLACEHOLDER}', 'D', 1);"
            f" INSERT INTO legacy_people VALUES (2, 'Bo', '{big}', 'N', 1);"
        )
        self.wait_rows(
            self.newdb,
            PEOPLE_QUERY,
            [("1", PLACEHOLDER, PLACEHOLDER, "DOCTOR", "1"), ("2", "Bo", big, "NURSE", "1")],
        )
        # The update of row 2 carries the placeholder for its email: the stored value stays.
        self.psql("UPDATE legacy_people SET visits = 2 WHERE id = 2")
        self.wait_rows(
            self.newdb,
            PEOPLE_QUERY,
            [("1", PLACEHOLDER, PLACEHOLDER, "DOCTOR", "1"), ("2", "Bo", big, "NURSE", "2")],
        )
        ops = [
            (m["value"]["op"], m["value"]["after"]["id"], m["value"]["after"]["email"])
            for m in dstest.consume([self.topic])
        ]
        self.assertEqual(
            ops, [("c", 1, PLACEHOLDER), ("c", 2, big), ("u", 2, PLACEHOLDER)],
            "capture was expected to send row 2's TOASTed email as unchanged in the update",
        )
        apply.stop(expect_exit=0)
        self.assertEqual(dstest.consume([cfg.dlq_topic], idle_ms=500, timeout_ms=3000, check=False), [])
