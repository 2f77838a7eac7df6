"""apply: a stale copy of a change, sent after newer changes of the same row (what a capture
frozen with messages for Kafka sends when it resumes after a standby took its slot over and
republished them), does not put the row back in its older state; an exact copy of the newest
change is applied again harmlessly; after apply is killed with SIGKILL and restarted, the
partition's newest source position comes back from dualsync.offsets and a stale copy sent
then is skipped too. Copies are re-produced byte for byte from the topic itself, as the
resumed capture would send them.
"""

import json
import os

import dstest


class StaleCopyTest(dstest.ApplyTestCase):
    def test_an_older_copy_after_newer_changes_is_skipped(self):
        self.psql("CREATE TABLE legacy_notes (id int PRIMARY KEY, body text)")
        newdb = self.target_database("stale_new")
        dstest.psql("CREATE TABLE notes (id int PRIMARY KEY, body text)", db=newdb)
        capture_cfg, _ = self.start_streaming_capture(["public.legacy_notes"])
        mapping = dstest.write_mapping(os.path.join(self.work_dir, "notes.json"), {
            "source": "public.legacy_notes",
            "targets": [{"name": "notes", "connection": "newdb", "table": "public.notes",
                         "key": ["id"], "columns": {"id": "$id", "body": "$body"}}]})
        group = self.new_group("stale")
        config = self.apply_config({"newdb": newdb}, [mapping], capture_cfg.topic_prefix,
                                   apply={"group_id": group})
        apply = self.start_apply(config)
        topic = capture_cfg.topic("public.legacy_notes")

        for sql in ("INSERT INTO legacy_notes VALUES (1, 'first')",
                    "UPDATE legacy_notes SET body = 'second' WHERE id = 1",
                    "UPDATE legacy_notes SET body = 'third' WHERE id = 1"):
            self.psql(sql)
        self.wait_rows(newdb, "SELECT id, body FROM notes", [("1", "third")])

        messages = [m for m in dstest.consume(topic) if m["value"] is not None]
        by_body = {m["value"]["after"]["body"]: m for m in messages}

        def copy(body):
            m = by_body[body]
            return (json.dumps(m["key"], separators=(",", ":")),
                    json.dumps(m["value"], separators=(",", ":"), ensure_ascii=False))

        # An older copy, then an exact copy of the newest change, then a new row as a marker:
        # once the marker is applied, both copies were read.
        dstest.produce(topic, [copy("second"), copy("third")])
        self.psql("INSERT INTO legacy_notes VALUES (2, 'marker')")
        self.wait_rows(newdb, "SELECT id, body FROM notes ORDER BY id",
                       [("1", "third"), ("2", "marker")])
        self.assertIn("skipped a stale copy of a change", apply.log_text())
        stored = dstest.psql(
            "SELECT source_commit_lsn IS NOT NULL, source_lsn IS NOT NULL FROM dualsync.offsets "
            f"WHERE group_id = {dstest.quote_literal(group)} AND topic = {dstest.quote_literal(topic)}",
            db=newdb)
        self.assertEqual(stored, [("t", "t")])

        # After a crash the newest position comes back from dualsync.offsets.
        apply.kill()
        dstest.produce(topic, [copy("first")])
        self.psql("INSERT INTO legacy_notes VALUES (3, 'marker')")
        apply = self.start_apply(config)
        self.wait_rows(newdb, "SELECT id, body FROM notes ORDER BY id",
                       [("1", "third"), ("2", "marker"), ("3", "marker")])
        self.assertIn("skipped a stale copy of a change", apply.log_text())

        # Later changes of the row are applied as ever.
        self.psql("UPDATE legacy_notes SET body = 'fourth' WHERE id = 1")
        self.wait_rows(newdb, "SELECT id, body FROM notes WHERE id = 1", [("1", "fourth")])
