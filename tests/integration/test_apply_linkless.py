"""apply: a target keyed by the source key alone, given "links": false, is written without
dualsync.links (mappings/README.md, "Targets without links"), and gives the same rows as with
links:

  - inserts, updates, a primary key change, a filter transition both ways and a delete reach
    the target; such a target records no link, while the same target with "links": true (a
    second table fed by the same source) records one per row and ends identical;
  - a TRUNCATE of the source on a topic of one partition empties the target;
  - on a topic of two partitions the truncate's part without links is refused as a dead
    letter naming the target and the partition, while the target that keeps links is
    emptied of that partition's rows;
  - a target whose rows were written with links goes on without them after a restart with
    "links": false: its row is updated and deleted by key;
  - "links": false on a target whose key does not come from source columns alone is refused
    (exit 2, naming the file and JSON path), by apply and by `dualsync explain`, which says
    which targets keep links and why.
The randomised load over many seeds, kill -9 included, is test_apply_merges (its by_id
target)."""

import os

import dstest

NS = "0b7e5a52-8f1e-4d55-a6a8-3f6f0e5e2c11"
ROWS = "SELECT legacy_id, name FROM {} ORDER BY legacy_id"


class LinklessTest(dstest.ApplyTestCase):
    def setup_pipeline(self, table, partitions=1, links_first=False):
        """A legacy table, two targets of it (by_id without links, linked with
        "links": true), capture and apply. Returns (newdb, config, apply, topic, mapping)."""
        self.psql(f"CREATE TABLE {table} (id int PRIMARY KEY, name text, active boolean)")
        self.addCleanup(self.psql, f"DROP TABLE IF EXISTS {table}")
        newdb = self.target_database(table)
        for target in ("by_id", "linked"):
            dstest.psql(f"CREATE TABLE {target} (id uuid PRIMARY KEY, legacy_id int NOT NULL, "
                        "name text)", db=newdb)
        capture_cfg, _ = self.start_streaming_capture([f"public.{table}"],
                                                      topics={"partitions": partitions})

        def target(name, links):
            return {"name": name, "connection": "newdb", "table": f"public.{name}",
                    "key": ["id"], "filter": {"eq": ["$active", True]}, "links": links,
                    "columns": {"id": {"uuid5": {"namespace": NS, "name": ["$id"]}},
                                "legacy_id": "$id", "name": "$name"}}

        def write(links_by_id):
            return dstest.write_mapping(os.path.join(self.work_dir, f"{table}.json"), {
                "source": f"public.{table}",
                "targets": [target("by_id", links_by_id), target("linked", True)]})

        mapping = write(links_first)
        group = self.new_group(table)
        config = self.apply_config({"newdb": newdb}, [mapping], capture_cfg.topic_prefix,
                                   source=capture_cfg.data["source"],
                                   apply={"group_id": group, "batch_max_ms": 20})
        apply = self.start_apply(config)
        return newdb, config, apply, capture_cfg.topic(f"public.{table}"), write

    def links_of(self, newdb, target):
        return dstest.psql("SELECT count(*) FROM dualsync.links WHERE target LIKE "
                           f"'%/{target}'", db=newdb)[0][0]

    def test_changes_reach_a_target_without_links_as_with_them(self):
        newdb, config, apply, _, _ = self.setup_pipeline("people_ll")
        self.assertRegex(apply.log_text(), r"target people_ll/by_id keeps no links for "
                                           r"changes whose message key is \(id\)")
        self.assertNotIn("people_ll/linked keeps no links", apply.log_text())
        self.psql("INSERT INTO people_ll SELECT g, 'n' || g, true FROM generate_series(1, 6) g")
        self.psql("UPDATE people_ll SET name = 'renamed' WHERE id = 2")
        self.psql("UPDATE people_ll SET id = 60 WHERE id = 6")  # a key change
        self.psql("UPDATE people_ll SET active = false WHERE id IN (3, 4)")  # stop matching
        self.psql("UPDATE people_ll SET active = true WHERE id = 4")  # matches again
        self.psql("DELETE FROM people_ll WHERE id = 5")
        want = [("1", "n1"), ("2", "renamed"), ("4", "n4"), ("60", "n6")]
        self.wait_rows(newdb, ROWS.format("linked"), want)
        self.wait_rows(newdb, ROWS.format("by_id"), want)
        self.assertEqual(self.links_of(newdb, "by_id"), "0")
        self.assertEqual(self.links_of(newdb, "linked"), "4")
        # The same uuid5 keys in both.
        self.assertEqual(dstest.psql("SELECT count(*) FROM by_id JOIN linked USING (id, "
                                     "legacy_id, name)", db=newdb), [("4",)])
        proc = dstest.run_dualsync(["verify", "--config", config.path], timeout=120)
        self.assertEqual(proc.returncode, 0, f"verify:\n{proc.stdout}\n{proc.stderr}")

        # TRUNCATE on a topic of one partition: every row goes, then new rows come.
        self.psql("TRUNCATE people_ll")
        self.psql("INSERT INTO people_ll VALUES (7, 'after', true)")
        self.wait_rows(newdb, ROWS.format("linked"), [("7", "after")])
        self.wait_rows(newdb, ROWS.format("by_id"), [("7", "after")])
        apply.stop(expect_exit=0)

    def test_a_truncate_over_several_partitions_is_a_dead_letter_without_links(self):
        newdb, _, apply, topic, _ = self.setup_pipeline("people_lp", partitions=2)
        self.psql("INSERT INTO people_lp SELECT g, 'n' || g, true FROM generate_series(1, 4) g")
        want = [(str(i), f"n{i}") for i in range(1, 5)]
        self.wait_rows(newdb, ROWS.format("by_id"), want)
        self.psql("TRUNCATE people_lp")
        self.psql("INSERT INTO people_lp VALUES (9, 'marker', true)")
        self.wait_rows(newdb, ROWS.format("linked"), [("9", "marker")])
        # Both partitions' truncates refused for by_id, by name; its rows stay.
        records = self.wait_dead_letters(newdb, 2)
        for target, error in records:
            self.assertEqual(target, "people_lp/by_id")
            self.assertIn("keeps no links", error)
            self.assertIn(f"a truncate on {topic}, a topic of 2 partitions", error)
        self.wait_rows(newdb, ROWS.format("by_id"), want + [("9", "marker")])
        apply.stop(expect_exit=0)

    def wait_dead_letters(self, newdb, count):
        rows = []

        def enough():
            rows[:] = dstest.psql("SELECT target, error FROM dualsync.dead_letters "
                                  "ORDER BY partition", db=newdb)
            return len(rows) >= count

        dstest.wait_for(enough, timeout=60, what=f"{count} dead letters")
        self.assertEqual(len(rows), count, rows)
        return rows

    def test_links_false_on_a_target_that_needs_links_is_refused(self):
        newdb = self.target_database("people_lr")
        mapping = dstest.write_mapping(os.path.join(self.work_dir, "people_lr.json"), {
            "source": "public.people_lr",
            "targets": [{"name": "by_phone", "connection": "newdb", "table": "public.by_phone",
                         "key": ["id"], "links": False,
                         "columns": {"id": {"normalize_phone": "$phone"}, "name": "$name"}}]})
        config = self.apply_config({"newdb": newdb}, [mapping], "ds_refused")
        for command in (["explain"], ["apply"]):
            proc = dstest.run_dualsync(command + ["--config", config.path], timeout=60)
            self.assertEqual(proc.returncode, 2, f"{command}: {proc.stdout}\n{proc.stderr}")
            self.assertRegex(proc.stderr, r"people_lr\.json:\d+:\d+: \$\.targets\[0\]\.links: "
                                          r"\"links\": false needs a key computed from the source "
                                          r"columns alone")
            self.assertIn("its key is not computed from source columns alone", proc.stderr)

    def test_explain_says_which_targets_keep_links_and_why(self):
        self.psql("CREATE TABLE people_le (id int PRIMARY KEY, name text, phone text)")
        self.addCleanup(self.psql, "DROP TABLE IF EXISTS people_le")
        newdb = self.target_database("people_le")

        def target(name, key_name, **extra):
            return {"name": name, "connection": "newdb", "table": f"public.{name}",
                    "key": ["id"], **extra,
                    "columns": {"id": {"uuid5": {"namespace": NS, "name": [key_name]}},
                                "name": "$name"}}

        mapping = dstest.write_mapping(os.path.join(self.work_dir, "people_le.json"), {
            "source": "public.people_le",
            "targets": [target("by_id", "$id", links=False), target("forced", "$id", links=True),
                        target("by_phone", {"normalize_phone": "$phone"})]})
        config = self.apply_config({"newdb": newdb}, [mapping], "ds_explain")
        proc = dstest.run_dualsync(["explain", "--config", config.path], timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        blocks = {b.split(":", 1)[0]: b for b in proc.stdout.split("\npeople_le/")}
        self.assertIn('links: none ("links": false) when the source table\'s key (the Kafka '
                      "message key) is exactly (id)", blocks["people_le/by_id"])
        self.assertIn('links: kept in dualsync.links (the default); its key is computed from '
                      '(id) alone, so "links": false can write it without them', blocks["forced"])
        self.assertIn("links: kept in dualsync.links, since its key is not computed from "
                      "source columns alone", blocks["by_phone"])
        self.assertIn("its rows are settled before each COMMIT", blocks["by_phone"])
        proc = dstest.run_dualsync(["explain", "--config", config.path, "--sql"], timeout=30)
        self.assertIn("-- upsert without links", proc.stdout)
        # A mapping problem: exit 2, naming the file and the JSON path.
        with open(mapping) as f:
            broken = f.read().replace('"links": true', '"links": "no"')
        with open(mapping, "w") as f:
            f.write(broken)
        proc = dstest.run_dualsync(["explain", "--config", config.path], timeout=30)
        self.assertEqual(proc.returncode, 2, proc.stdout)
        self.assertRegex(proc.stderr, r"people_le\.json:\d+:\d+: \$\.targets\[1\]\.links")

    def test_rows_written_with_links_go_on_without_them(self):
        newdb, config, apply, _, write = self.setup_pipeline("people_lu", links_first=True)
        self.psql("INSERT INTO people_lu SELECT g, 'n' || g, true FROM generate_series(1, 3) g")
        self.wait_rows(newdb, ROWS.format("by_id"), [("1", "n1"), ("2", "n2"), ("3", "n3")])
        self.assertEqual(self.links_of(newdb, "by_id"), "3")
        self.assertNotIn("people_lu/by_id keeps no links", apply.log_text())
        apply.stop(expect_exit=0)

        write(False)  # "links": false: by_id goes without links from now on
        apply = self.start_apply(config)
        self.assertIn("people_lu/by_id keeps no links", apply.log_text())
        self.psql("UPDATE people_lu SET name = 'renamed' WHERE id = 1")
        self.psql("DELETE FROM people_lu WHERE id = 2")
        self.psql("INSERT INTO people_lu VALUES (4, 'n4', true)")
        want = [("1", "renamed"), ("3", "n3"), ("4", "n4")]
        self.wait_rows(newdb, ROWS.format("linked"), want)
        self.wait_rows(newdb, ROWS.format("by_id"), want)
        proc = dstest.run_dualsync(["verify", "--config", config.path], timeout=120)
        self.assertEqual(proc.returncode, 0, f"verify:\n{proc.stdout}\n{proc.stderr}")
        apply.stop(expect_exit=0)

    def test_links_turned_back_on_are_refused_until_a_replay_rebuilds_them(self):
        newdb, config, apply, _, write = self.setup_pipeline("people_lb")
        self.psql("INSERT INTO people_lb SELECT g, 'n' || g, true FROM generate_series(1, 3) g")
        self.wait_rows(newdb, ROWS.format("by_id"), [("1", "n1"), ("2", "n2"), ("3", "n3")])
        self.assertEqual(self.links_of(newdb, "by_id"), "0")
        apply.stop(expect_exit=0)

        # Links on again: the rows written without them have none, so a delete would find
        # nothing to remove. Refused at start, naming the target and the way out.
        write(True)
        proc = dstest.run_dualsync(["apply", "--config", config.path], timeout=60)
        self.assertEqual(proc.returncode, 2, f"{proc.stdout}\n{proc.stderr}")
        self.assertIn("target people_lb/by_id (without links since ", proc.stderr)
        self.assertIn("dualsync replay --config FILE --mapping people_lb", proc.stderr)
        self.assertNotIn("people_lb/linked", proc.stderr)

        # The replay rebuilds the targets with links, and its swap records them linked.
        proc = dstest.run_dualsync(["replay", "--config", config.path, "--mapping", "people_lb"],
                                   timeout=180)
        self.assertEqual(proc.returncode, 0, f"replay:\n{proc.stdout}\n{proc.stderr}")
        self.assertEqual(self.links_of(newdb, "by_id"), "3")
        self.assertEqual(dstest.psql("SELECT count(*) FROM dualsync.linkless_targets",
                                     db=newdb), [("0",)])
        apply = self.start_apply(config)
        self.psql("DELETE FROM people_lb WHERE id = 2")
        self.psql("UPDATE people_lb SET name = 'renamed' WHERE id = 3")
        want = [("1", "n1"), ("3", "renamed")]
        self.wait_rows(newdb, ROWS.format("linked"), want)
        self.wait_rows(newdb, ROWS.format("by_id"), want)
        apply.stop(expect_exit=0)

        # Links off once more: recorded again, and nothing is refused.
        write(False)
        apply = self.start_apply(config)
        self.assertEqual(dstest.psql("SELECT target FROM dualsync.linkless_targets", db=newdb),
                         [("people_lb/by_id",)])
        apply.stop(expect_exit=0)
