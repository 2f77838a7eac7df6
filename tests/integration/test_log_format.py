"""Logs for log shippers: a daemon started with --log-format json (or with "log_format": "json"
in its configuration) writes one JSON object per line, with ts, level, process and message;
text stays the default."""

import json
import os

import dstest

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
PEOPLE_MAPPING = os.path.join(FIXTURES, "apply_people.json")


def log_lines(proc):
    """The lines the process wrote (the harness's own "==== start" lines left out)."""
    return [line for line in proc.log_text().splitlines()
            if line and not line.startswith("==== ")]


class LogFormatTest(dstest.ApplyTestCase):
    def assert_json_lines(self, proc, process):
        lines = log_lines(proc)
        self.assertTrue(lines, "the daemon logged nothing")
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                self.fail(f"not a JSON line: {line!r}")
            self.assertEqual(sorted(obj), ["level", "message", "process", "ts"], line)
            self.assertRegex(obj["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(obj["level"], ("debug", "info", "warning", "error"))
            self.assertEqual(obj["process"], process)
            self.assertIsInstance(obj["message"], str)

    def test_capture_and_apply_write_json_lines(self):
        self.psql("CREATE TABLE legacy_people (id int PRIMARY KEY, name text, email text, "
                  "kind text, visits int)")
        newdb = self.target_database("logfmt_new")
        self.psql("CREATE TABLE people (id int PRIMARY KEY, full_name text, email text, "
                  "kind text NOT NULL, visits int)", db=newdb)
        cfg = self.capture_config(["public.legacy_people"])
        cap = self.start_capture(cfg, extra_args=["--log-format", "json"])
        dstest.wait_for(lambda: (dstest.slot_info(cfg.slot) or {}).get("active"),
                        timeout=30, what="capture to stream")
        # From the file this time, with a name that needs escaping in the data.
        apply_cfg = self.apply_config({"newdb": newdb}, [PEOPLE_MAPPING], cfg.topic_prefix,
                                      log_format="json")
        apply = self.start_apply(apply_cfg)
        self.psql("INSERT INTO legacy_people VALUES (1, 'A \"quoted\" \\ name', 'a@x', 'D', 1)")
        self.wait_rows(newdb, "SELECT id FROM people", [("1",)])
        self.assertEqual(apply.stop(timeout=60, expect_exit=0), 0)
        self.assertEqual(cap.stop(timeout=60, expect_exit=0), 0)
        self.assert_json_lines(cap, "capture")
        self.assert_json_lines(apply, "apply")

    def test_text_is_the_default(self):
        self.psql("CREATE TABLE legacy_text (id int PRIMARY KEY)")
        cfg = self.capture_config(["public.legacy_text"])
        cap = self.start_capture(cfg)
        dstest.wait_for(lambda: (dstest.slot_info(cfg.slot) or {}).get("active"),
                        timeout=30, what="capture to stream")
        self.assertEqual(cap.stop(timeout=60, expect_exit=0), 0)
        lines = log_lines(cap)
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z dualsync "
                                   r"(debug|info|warning|error): ")

    def test_unknown_format_is_a_configuration_error(self):
        cfg = self.capture_config(["public.nothing"])
        proc = dstest.run_dualsync(["capture", "--config", cfg.path, "--log-format", "xml"])
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn('--log-format: unknown format "xml"', proc.stderr)
        cfg = self.capture_config(["public.nothing"], log_format="xml")
        proc = dstest.run_dualsync(["capture", "--config", cfg.path])
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("log_format", proc.stderr)
