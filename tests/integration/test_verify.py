"""`dualsync verify`: with capture and apply running, the new tables are checked against what
the mappings give from the legacy tables.

  - the clinic reference migration after its seed matches exactly (exit 0), with the counts
    the migration documents give and the seed's unparseable reservations counted as dead
    letters, as many as the dead-letter topic holds;
  - a tampered target (one row deleted, one inserted, one mapped column changed) is reported
    as exactly 1 missing, 1 extra and 1 different, with those rows' keys (exit 1), in the
    table and in --json;
  - legacy and new tables in different databases, with a change committed just before verify
    starts (verify waits for apply to pass it, never sleeps), a lookup of another target, a
    rejected enum value, and timestamptz/numeric/array values (rendered as capture renders
    them, not as row_to_json would).
"""

import json
import os

import dstest

CLINIC = os.path.join(dstest.SOURCE_DIR, "mappings", "clinic")
MAPPING_FILES = [
    os.path.join(CLINIC, name + ".json")
    for name in ("users", "patients", "appointments", "reservations", "patient_offers", "offers")
]
LEGACY_TABLES = ["clinics", "users", "patients", "appointments", "reservations", "offers",
                 "patient_offers"]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def verify(config, *extra, timeout=120):
    return dstest.run_dualsync(["verify", "--config", config.path] + list(extra), timeout=timeout)


def verify_json(test, config, expect_status):
    proc = verify(config, "--json")
    test.assertEqual(proc.returncode, expect_status, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    doc = json.loads(proc.stdout)
    return doc, {t["target"]: t for t in doc["targets"]}


class VerifyClinicTest(dstest.ApplyTestCase):
    def setUp(self):
        super().setUp()
        self.psql(read(os.path.join(CLINIC, "legacy_schema.sql")))
        self.psql(read(os.path.join(CLINIC, "new_schema.sql")))
        self.capture_cfg, self.capture = self.start_streaming_capture(
            ["public." + t for t in LEGACY_TABLES]
        )
        self.config = self.apply_config(
            {"clinic": self.db}, MAPPING_FILES, self.capture_cfg.topic_prefix,
            apply={"on_error": "dlq"}, source=self.capture_cfg.data["source"],
        )

    def dead_letter_count(self):
        proc = dstest.run_dualsync(["dlq", "list", "--config", self.config.path, "--json"])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return len([line for line in proc.stdout.splitlines() if line.strip()])

    def test_seed_matches_then_tampered_rows_are_reported(self):
        self.start_apply(self.config)
        self.psql(read(os.path.join(CLINIC, "legacy_seed.sql")))

        # ---- right after the seed (verify itself waits for apply) ---------------------------
        doc, targets = verify_json(self, self.config, 0)
        self.assertTrue(doc["match"])
        self.assertEqual(
            sorted(targets),
            ["appointments/appointment_doctors", "appointments/appointment_patients",
             "offers/patient_offer_clinics", "patient_offers/patient_offer_clinics",
             "patients/clinic_patients", "patients/global_patients",
             "reservations/reservation_periods", "reservations/reservation_services",
             "users/appointment_doctors", "users/clinic_doctors", "users/global_doctors"],
        )
        for name, t in targets.items():
            self.assertEqual((t["missing"], t["extra"], t["different"]), (0, 0, 0), name)
            self.assertEqual(t["expected"], t["present"], name)
        self.assertEqual(targets["users/global_doctors"]["expected"], 7)
        self.assertEqual(targets["patients/global_patients"]["expected"], 19)
        self.assertEqual(targets["patients/clinic_patients"]["expected"], 20)
        for name in ("appointments/appointment_doctors", "appointments/appointment_patients"):
            self.assertEqual(targets[name]["expected"], 43, name)
            self.assertEqual(targets[name]["pending"], 0, name)
        # The unparseable preferred times: rejected by the mapping, so dead letters of the
        # period target alone (the service target writes them), as many as apply put on the
        # dead-letter topic; not "missing".
        dead = targets["reservations/reservation_periods"]["dead_letters"]
        self.assertGreater(dead, 0)
        self.assertEqual(dead, self.dead_letter_count())
        self.assertEqual(doc["dlq_messages"], dead)
        for name in targets:
            if name != "reservations/reservation_periods":
                self.assertEqual(targets[name]["dead_letters"], 0, name)

        # ---- tamper with global_doctors: one row each missing, extra, different -------------
        ids = [r[0] for r in self.psql('SELECT "id" FROM global_doctors ORDER BY "id"')]
        gone, changed = ids[0], ids[1]
        extra = "00000000-0000-4000-8000-000000000001"
        # Without the foreign keys' triggers, so only global_doctors changes (its clinic
        # profiles would go with it by cascade otherwise).
        self.psql(f"""
            SET session_replication_role = replica;
            DELETE FROM global_doctors WHERE "id" = '{gone}';
            SET session_replication_role = DEFAULT;
            UPDATE global_doctors SET "name" = "name" || ' (edited)' WHERE "id" = '{changed}';
            INSERT INTO global_doctors ("id", "legacyUserId", "name", "email", "createdAt")
            VALUES ('{extra}', 'nobody', 'Nobody', 'nobody@example.com', now());
        """)
        doc, targets = verify_json(self, self.config, 1)
        self.assertFalse(doc["match"])
        gd = targets["users/global_doctors"]
        self.assertFalse(gd["match"])
        self.assertEqual((gd["expected"], gd["present"]), (7, 7))
        self.assertEqual((gd["missing"], gd["extra"], gd["different"]), (1, 1, 1))
        self.assertEqual(gd["samples"], {"missing": [[gone]], "extra": [[extra]],
                                         "different": [[changed]], "pending": []})
        for name, t in targets.items():
            if name != "users/global_doctors":
                self.assertTrue(t["match"], name)

        # The table form says the same.
        proc = verify(self.config)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        line = next(l for l in proc.stdout.splitlines() if l.startswith("users/global_doctors"))
        self.assertEqual(line.split()[1:7], ["7", "7", "1", "1", "1", "0"], proc.stdout)
        self.assertIn("DIFFERS", line)
        self.assertIn(f'missing: ["{gone}"]', proc.stdout)
        self.assertIn(f'extra: ["{extra}"]', proc.stdout)
        self.assertIn(f'different: ["{changed}"]', proc.stdout)


ITEMS_MAPPING = {
    "source": "public.legacy_items",
    "targets": [
        {
            "name": "kinds",
            "connection": "newdb",
            "table": "public.kinds",
            "key": ["code"],
            "columns": {
                "code": {"map": {"value": "$kind", "cases": {"a": "ALPHA", "b": "BETA"}}},
                "label": {"concat": ["kind ", "$kind"]},
            },
        },
        {
            "name": "items",
            "connection": "newdb",
            "table": "public.items",
            "key": ["id"],
            "columns": {
                "id": "$id",
                "name": {"trim": "$name"},
                "price": {"cast": ["$price", "numeric(10,2)"]},
                "kind_label": {"lookup": {"table": "public.kinds",
                                          "match": {"code": {"map": {"value": "$kind",
                                                                     "cases": {"a": "ALPHA",
                                                                               "b": "BETA"}}}},
                                          "column": "label", "required": True}},
                "created_text": "$created",
                "tags_text": "$tags",
            },
        },
    ],
}


class VerifySeparateDatabasesTest(dstest.ApplyTestCase):
    def test_legacy_and_new_tables_in_different_databases(self):
        self.psql("""
            CREATE TABLE legacy_items (
                id int PRIMARY KEY, name text, price numeric(12,4), kind text,
                created timestamptz, tags text[]);
        """)
        newdb = self.target_database("verify_new")
        dstest.psql("""
            CREATE TABLE kinds (code text PRIMARY KEY, label text NOT NULL);
            CREATE TABLE items (
                id int PRIMARY KEY, name text NOT NULL, price numeric(10,2),
                kind_label text, created_text text, tags_text text,
                note text NOT NULL DEFAULT 'unmapped', serial_no bigserial);
        """, db=newdb)
        capture_cfg, _ = self.start_streaming_capture(["public.legacy_items"])
        mapping = dstest.write_mapping(os.path.join(self.work_dir, "items.json"), ITEMS_MAPPING)
        config = self.apply_config({"newdb": newdb}, [mapping], capture_cfg.topic_prefix,
                                   source=capture_cfg.data["source"])
        self.start_apply(config)
        self.psql("""
            INSERT INTO legacy_items VALUES
              (1, ' Lamp ', 12.5, 'a', '2024-01-31 10:00:00.123+00', '{x,y}'),
              (2, 'Desk', 99.999, 'b', '2024-02-01 23:59:59+05:30', '{}'),
              (3, 'Chair', NULL, 'a', NULL, NULL),
              (4, 'Odd', 1, 'z', '2024-03-01 00:00:00+00', '{"q r"}');
        """)
        doc, targets = verify_json(self, config, 0)
        items, kinds = targets["items/items"], targets["items/kinds"]
        self.assertEqual((items["expected"], items["present"]), (3, 3))
        self.assertEqual((kinds["expected"], kinds["present"]), (2, 2))
        # Row 4's kind "z" is not a case of the map: the whole change is a dead letter.
        self.assertEqual((items["dead_letters"], kinds["dead_letters"]), (1, 1))
        (items_file,) = doc["mappings"]
        self.assertEqual((items_file["rows"], items_file["dead_letters"]), (4, 1))
        self.assertIn('"z"', items_file["first_error"])
        self.assertEqual(items_file["first_error_key"], '{"id":4}')
        # What apply wrote is capture's rendering (the rebuild matched it, so it used it too).
        self.assertEqual(
            dstest.psql("SELECT created_text, tags_text FROM items WHERE id = 2", db=newdb),
            [("2024-02-01T18:29:59Z", "[]")],
        )

        # A change committed just before verify: verify waits until apply has it.
        self.psql("UPDATE legacy_items SET name = 'Big desk', price = 120 WHERE id = 2")
        doc, targets = verify_json(self, config, 0)
        self.assertEqual(targets["items/items"]["present"], 3)
        self.assertEqual(
            dstest.psql("SELECT name, price FROM items WHERE id = 2", db=newdb),
            [("Big desk", "120.00")],
        )

        # A price changed behind apply's back differs; nothing else does.
        dstest.psql("UPDATE items SET price = 1 WHERE id = 1", db=newdb)
        doc, targets = verify_json(self, config, 1)
        self.assertEqual(targets["items/items"]["different"], 1)
        self.assertEqual(targets["items/items"]["samples"]["different"], [["1"]])
        self.assertTrue(targets["items/kinds"]["match"])



class VerifyKeptParentTest(dstest.ApplyTestCase):
    """A child whose required lookup found a parent that on_delete soft_delete keeps: apply's
    target is right (the child stays), and verify must rebuild exactly that, not call the
    child pending and extra because the parent's legacy row is gone."""

    def test_child_of_a_soft_deleted_parent_matches(self):
        self.psql("CREATE TABLE accounts (id int PRIMARY KEY, name text);"
                  "CREATE TABLE orders (id int PRIMARY KEY, account_id int);")
        newdb = self.target_database("verify_kept")
        dstest.psql("CREATE TABLE new_accounts (id int PRIMARY KEY, name text, deleted_at "
                    "timestamptz);"
                    "CREATE TABLE new_orders (id int PRIMARY KEY, account_name text);", db=newdb)
        capture_cfg, _ = self.start_streaming_capture(["public.accounts", "public.orders"])
        accounts = dstest.write_mapping(os.path.join(self.work_dir, "accounts.json"), {
            "source": "public.accounts",
            "targets": [{"name": "accounts", "connection": "newdb",
                         "table": "public.new_accounts", "key": ["id"],
                         "columns": {"id": "$id", "name": "$name"},
                         "on_delete": {"soft_delete": {"column": "deleted_at"}}}]})
        orders = dstest.write_mapping(os.path.join(self.work_dir, "orders.json"), {
            "source": "public.orders",
            "targets": [{"name": "orders", "connection": "newdb",
                         "table": "public.new_orders", "key": ["id"],
                         "columns": {"id": "$id",
                                     "account_name": {"lookup": {
                                         "table": "public.new_accounts",
                                         "match": {"id": {"cast": ["$account_id", "int"]}},
                                         "column": "name", "required": True}}}}]})
        config = self.apply_config({"newdb": newdb}, [accounts, orders], capture_cfg.topic_prefix,
                                   source=capture_cfg.data["source"])
        self.start_apply(config)
        self.psql("INSERT INTO accounts VALUES (1, 'Acme')")
        dstest.wait_for(lambda: dstest.psql("SELECT count(*) FROM new_accounts", db=newdb)
                        == [("1",)], 60, "account 1 applied")
        self.psql("INSERT INTO orders VALUES (10, 1)")
        dstest.wait_for(lambda: dstest.psql("SELECT account_name FROM new_orders", db=newdb)
                        == [("Acme",)], 60, "order 10 applied")
        self.psql("DELETE FROM accounts WHERE id = 1")
        doc, targets = verify_json(self, config, 0)
        o, a = targets["orders/orders"], targets["accounts/accounts"]
        self.assertEqual((o["expected"], o["present"], o["extra"], o["pending"]), (1, 1, 0, 0))
        self.assertEqual((a["expected"], a["present"], a["kept"]), (1, 1, 1))
        self.assertEqual(dstest.psql("SELECT count(*) FROM dualsync.pending", db=newdb), [("0",)])


class VerifyLagTest(dstest.ApplyTestCase):
    def items_pipeline(self, prefix, **apply):
        """legacy_items, captured; a target database with kinds and items; apply's config.
        Returns (newdb, capture config, capture, apply config)."""
        self.psql("CREATE TABLE legacy_items (id int PRIMARY KEY, name text, price numeric, "
                  "kind text, created timestamptz, tags text[])")
        self.addCleanup(self.psql, "DROP TABLE IF EXISTS legacy_items")
        newdb = self.target_database(prefix)
        dstest.psql("CREATE TABLE kinds (code text PRIMARY KEY, label text NOT NULL);"
                    "INSERT INTO kinds VALUES ('ALPHA', 'Alpha');"
                    "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, "
                    "price numeric(10,2), kind_label text, created_text text, tags_text text)",
                    db=newdb)
        capture_cfg, capture = self.start_streaming_capture(["public.legacy_items"])
        mapping = dstest.write_mapping(os.path.join(self.work_dir, "items.json"), ITEMS_MAPPING)
        config = self.apply_config({"newdb": newdb}, [mapping], capture_cfg.topic_prefix,
                                   source=capture_cfg.data["source"],
                                   **({"apply": apply} if apply else {}))
        return newdb, capture_cfg, capture, config

    def test_apply_not_caught_up_is_a_setup_error_naming_the_lag(self):
        _, capture_cfg, _, config = self.items_pipeline("verify_lag")
        # No apply running: the change reaches Kafka but never the target.
        self.psql("INSERT INTO legacy_items VALUES (1, 'Lamp', 1, 'a', now(), '{}')")
        proc = verify(config, "--timeout-ms", "20000")
        self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
        self.assertIn(f"topic {capture_cfg.topic('public.legacy_items')} [0]", proc.stderr)
        self.assertIn('target database "newdb": nothing applied yet, end offset 1 (1 behind)',
                      proc.stderr)

    def test_a_stopped_capture_is_caught_up_despite_writes_it_skips_by_origin(self):
        """apply's own writes to a published table (an in-place target's updates, made under
        its replication origin) stay in a stopped capture's slot, which capture skips: they
        are not work left, and verify goes on."""
        newdb, _, capture, config = self.items_pipeline(
            "verify_origin", group_id=self.new_group("verify_origin"))
        apply = self.start_apply(config)
        self.psql("INSERT INTO legacy_items VALUES (1, 'Lamp', 1, 'a', now(), '{}')")
        self.wait_rows(newdb, "SELECT id, name FROM items", [("1", "Lamp")])
        capture.stop()
        # A write under an origin capture skips ("dualsync" and "dualsync.*"), values unchanged.
        origin = f"dualsync.{self.db}"
        self.psql(f"SELECT pg_replication_origin_create('{origin}')")
        self.addCleanup(dstest.psql, f"SELECT pg_replication_origin_drop('{origin}')")
        self.psql(f"SELECT pg_replication_origin_session_setup('{origin}');"
                  "UPDATE legacy_items SET name = name;"
                  "SELECT pg_replication_origin_session_reset();")
        proc = verify(config, "--timeout-ms", "20000")
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        # A change capture would publish is still work left.
        self.psql("UPDATE legacy_items SET name = name")
        proc = verify(config, "--timeout-ms", "5000")
        self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
        self.assertIn("capture has not caught up", proc.stderr)
        apply.stop(expect_exit=0)
