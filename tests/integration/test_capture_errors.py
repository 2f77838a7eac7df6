"""Capture: how it refuses to run. Each test runs `dualsync` to its exit and checks the exit
status and the one message a person reads on stderr: what is wrong, where, and what to do.
Exit status 2 is a usage or configuration-file error (anything the file names wrongly: a
setting, a Kafka property, a table that does not exist or cannot make a topic name), 1 a
failure found at run time (see `dualsync capture --help`)."""

import json
import os
import random
import re
import shutil
import socket
import subprocess
import unittest

import dstest

USAGE, FAILURE = 2, 1


def run_dualsync(*args, timeout=60):
    """Runs dualsync with @args to its exit; returns (status, stdout, stderr)."""
    try:
        proc = subprocess.run(
            [dstest.ds_bin(), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"dualsync {' '.join(args)} still running after {timeout}s: {e.stderr}")
    return proc.returncode, proc.stdout, proc.stderr


def wait_streaming(cfg, timeout=30):
    """Waits until capture holds its slot: a change committed after this is captured."""

    def streaming():
        info = dstest.slot_info(cfg.slot)
        return info is not None and info["active"] and info["confirmed_flush_lsn"] is not None

    return dstest.wait_for(streaming, timeout=timeout, what=f"capture to stream from slot {cfg.slot}")


def write_file(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


class CaptureCommandLineTest(dstest.ServicesTestCase):
    """The command line and the configuration file, before any connection is made."""

    def path(self, name):
        return os.path.join(self.work_dir, f"{self._test_slug}-{name}")

    def test_help_exits_0_and_lists_the_capture_command(self):
        status, out, err = run_dualsync("--help")
        self.assertEqual(status, 0, err)
        self.assertIn("Usage: dualsync COMMAND", out)
        self.assertRegex(out, r"\n  capture +stream committed changes")
        self.assertEqual(err, "")

    def test_capture_help_exits_0_and_documents_config(self):
        status, out, err = run_dualsync("capture", "--help")
        self.assertEqual(status, 0, err)
        self.assertIn("Usage: dualsync capture --config FILE", out)
        self.assertIn("-c, --config FILE", out)
        self.assertEqual(err, "")

    def test_unknown_command_exits_2_naming_it(self):
        status, out, err = run_dualsync("captur")
        self.assertEqual(status, USAGE)
        self.assertTrue(err.startswith('dualsync: unknown command "captur"\n'), err)
        self.assertIn("Usage: dualsync COMMAND", err)
        self.assertEqual(out, "")

    def test_capture_without_config_exits_2(self):
        status, _, err = run_dualsync("capture")
        self.assertEqual(status, USAGE)
        self.assertTrue(err.startswith("dualsync capture: --config FILE is required\n"), err)

    def test_missing_config_file_exits_2_naming_it(self):
        path = self.path("absent.json")
        status, _, err = run_dualsync("capture", "--config", path)
        self.assertEqual(status, USAGE)
        self.assertEqual(err, f"dualsync capture: {path}: cannot read: No such file or directory\n")

    def test_json_syntax_error_exits_2_with_file_line_and_column(self):
        path = write_file(
            self.path("syntax.json"),
            '{\n  "source": {\n    "conninfo": "dbname=x",\n    "tables": ["public.t"]\n  }\n'
            '  "kafka": {"bootstrap.servers": "127.0.0.1:1"},\n  "topic_prefix": "p"\n}\n',
        )
        status, _, err = run_dualsync("capture", "--config", path)
        self.assertEqual(status, USAGE)
        # The missing comma after line 5: jansson stops at the next key, line 6 column 9.
        self.assertEqual(
            err, f"dualsync capture: {path}:6:9: invalid JSON: '}}' expected near '\"kafka\"'\n"
        )

    def test_wrong_type_exits_2_with_file_position_and_json_path(self):
        path = write_file(
            self.path("type.json"),
            '{\n  "source": {"conninfo": "dbname=x", "tables": ["public.t"]},\n'
            '  "kafka": {"bootstrap.servers": "127.0.0.1:1"},\n  "topic_prefix": "p",\n'
            '  "capture": {"status_interval_ms": "fast"}\n}\n',
        )
        status, _, err = run_dualsync("capture", "--config", path)
        self.assertEqual(status, USAGE)
        self.assertEqual(
            err,
            f"dualsync capture: {path}:5:37: $.capture.status_interval_ms: expected an integer "
            'between 100 and 600000, got "fast"\n',
        )

    def test_kafka_settings_librdkafka_or_dualsync_refuse_exit_2_naming_the_property(self):
        cases = [
            # JSON string "1" and number 1 alike: acks=1 could lose an acknowledged change.
            ({"acks": "1"}, '$.kafka["acks"]: is "1" but must be "all"'),
            ({"acks": 1}, '$.kafka["acks"]: is "1" but must be "all"'),
            ({"no.such.property": "x"}, '$.kafka["no.such.property"] = "x": No such configuration property'),
            ({"linger.ms": "soon"}, '$.kafka["linger.ms"] = "soon": Invalid value'),
        ]
        for kafka, message in cases:
            with self.subTest(kafka=kafka):
                path = write_file(
                    self.path("kafka.json"),
                    json.dumps({
                        "source": {"conninfo": dstest.conninfo(self.db), "tables": ["public.t"]},
                        "kafka": dict({"bootstrap.servers": "127.0.0.1:1"}, **kafka),
                        "topic_prefix": "p",
                    }),
                )
                status, _, err = run_dualsync("capture", "--config", path)
                self.assertEqual(status, USAGE, err)
                self.assertIn(f"dualsync capture: {path}: {message}", err)

    def test_acks_minus_one_is_all_and_accepted(self):
        path = write_file(
            self.path("acks.json"),
            json.dumps({
                "source": {"conninfo": "host=/nonexistent dbname=x connect_timeout=2", "tables": ["public.t"]},
                "kafka": {"bootstrap.servers": "127.0.0.1:1", "acks": -1},
                "topic_prefix": "p",
                "capture": {"metrics_address": "off"},
            }),
        )
        status, _, err = run_dualsync("capture", "--config", path)
        # Past the Kafka settings, it fails on the connection (a runtime failure).
        self.assertEqual(status, FAILURE, err)
        self.assertIn("cannot connect to the source database", err)

    def test_syntax_error_inside_conninfo_does_not_show_it(self):
        path = write_file(
            self.path("secret.json"),
            '{\n  "source": {"conninfo": "host=x password=secret123\\q", "tables": ["public.t"]},\n'
            '  "kafka": {"bootstrap.servers": "127.0.0.1:1"},\n  "topic_prefix": "p"\n}\n',
        )
        status, _, err = run_dualsync("capture", "--config", path)
        self.assertEqual(status, USAGE)
        self.assertIn(f"{path}:2:", err)
        self.assertIn("<hidden>", err)
        self.assertNotIn("secret123", err)


class CaptureSourceErrorsTest(dstest.ServicesTestCase):
    """Problems with the source database that capture finds before streaming: it exits 1 (2
    when the configuration file names something that is not there) and leaves no slot and no
    publication behind."""

    def setUp(self):
        super().setUp()
        self.psql("CREATE TABLE IF NOT EXISTS good (id int PRIMARY KEY, v text)")

    def run_capture(self, cfg, timeout=60):
        status, out, err = run_dualsync("capture", "--config", cfg.path, timeout=timeout)
        return status, out + err

    def assert_no_slot(self, cfg):
        self.assertIsNone(dstest.slot_info(cfg.slot), f"capture left slot {cfg.slot} behind")

    def assert_no_publication(self, cfg):
        self.assertEqual(
            self.psql_value(f"SELECT count(*) FROM pg_publication WHERE pubname = '{cfg.publication}'"),
            "0",
            f"capture left publication {cfg.publication} behind",
        )

    def test_table_that_does_not_exist_is_named_with_its_json_path(self):
        cfg = self.capture_config(["public.good", "public.no_such_table"])
        status, err = self.run_capture(cfg)
        self.assertEqual(status, USAGE, err)
        self.assertIn(
            f"{cfg.path}: $.source.tables[1]: table public.no_such_table does not exist in the "
            "source database",
            err,
        )
        self.assert_no_slot(cfg)

    def test_table_without_primary_key_under_default_identity_says_how_to_fix_it(self):
        self.psql("CREATE TABLE nopk (a int, b text)")
        cfg = self.capture_config(["public.good", "public.nopk"])
        status, err = self.run_capture(cfg)
        self.assertEqual(status, FAILURE, err)
        self.assertIn("table public.nopk has no primary key and REPLICA IDENTITY DEFAULT", err)
        self.assertIn("add a primary key", err)
        self.assertIn("ALTER TABLE public.nopk REPLICA IDENTITY FULL", err)
        self.assert_no_slot(cfg)
        # Nothing was created for a configuration that cannot run.
        self.assertEqual(
            self.psql_value(f"SELECT count(*) FROM pg_publication WHERE pubname = '{cfg.publication}'"), "0"
        )

    def test_table_without_primary_key_under_full_identity_is_accepted(self):
        self.psql("CREATE TABLE nopk_full (a int, b text); ALTER TABLE nopk_full REPLICA IDENTITY FULL")
        cfg = self.capture_config(["public.nopk_full"])
        with self.start_capture(cfg):
            wait_streaming(cfg)
            self.psql("INSERT INTO nopk_full VALUES (1, NULL)")
            [msg] = self.consume([cfg.topic("public.nopk_full")], count=1)
        # Keyed by the whole row, NULL included.
        self.assertEqual(msg["key"], {"a": 1, "b": None})

    def test_table_name_kafka_cannot_take_as_a_topic_is_refused_before_anything_is_created(self):
        self.psql('CREATE TABLE "Order Lines" (id int PRIMARY KEY)')
        cfg = self.capture_config(["public.good", 'public."Order Lines"'])
        status, err = self.run_capture(cfg)
        self.assertEqual(status, USAGE, err)
        self.assertIn(f'{cfg.path}: $.source.tables[1]: topic "{cfg.topic_prefix}.public.Order Lines"', err)
        self.assertIn("a-z A-Z 0-9 . _ -", err)
        self.assert_no_slot(cfg)
        self.assertEqual(
            self.psql_value(f"SELECT count(*) FROM pg_publication WHERE pubname = '{cfg.publication}'"), "0"
        )

    def test_existing_slot_of_another_plugin_is_refused_and_left_alone(self):
        cfg = self.capture_config(["public.good"])
        self.psql(f"SELECT pg_create_logical_replication_slot('{cfg.slot}', 'test_decoding')")
        status, err = self.run_capture(cfg)
        self.assertEqual(status, FAILURE, err)
        self.assertIn(
            f'replication slot "{cfg.slot}" exists but is not a logical pgoutput slot (plugin '
            f'"test_decoding"); drop it or set source.slot to another name',
            err,
        )
        self.assertEqual(
            self.psql_value(f"SELECT plugin FROM pg_replication_slots WHERE slot_name = '{cfg.slot}'"),
            "test_decoding",
        )
        # The slot was checked before the publication was created: nothing is left behind.
        self.assert_no_publication(cfg)

    def test_slot_of_another_database_is_refused_before_the_publication_is_created(self):
        cfg = self.capture_config(["public.good"])
        dstest.psql(f"SELECT pg_create_logical_replication_slot('{cfg.slot}', 'pgoutput')", db="postgres")
        self.addCleanup(dstest.psql, f"SELECT pg_drop_replication_slot('{cfg.slot}')", db="postgres")
        status, err = self.run_capture(cfg)
        self.assertEqual(status, FAILURE, err)
        self.assertIn(
            f'replication slot "{cfg.slot}" belongs to database "postgres", not "{self.db}"', err
        )
        self.assert_no_publication(cfg)

    def test_role_without_replication_is_refused_before_anything_is_created(self):
        role = dstest.unique_name("ds_norepl")
        dstest.psql(f"CREATE ROLE {role} LOGIN; GRANT CREATE ON DATABASE {self.db} TO {role}")
        self.addCleanup(dstest.psql, f"DROP OWNED BY {role}; DROP ROLE IF EXISTS {role}", db=self.db)
        self.psql(f"ALTER TABLE good OWNER TO {role}")
        self.addCleanup(self.psql, "ALTER TABLE good OWNER TO postgres")
        cfg = self.capture_config(["public.good"])
        cfg.data["source"]["conninfo"] = dstest.conninfo(self.db) + f" user={role}"
        write_file(cfg.path, json.dumps(cfg.data))
        status, err = self.run_capture(cfg)
        self.assertEqual(status, FAILURE, err)
        self.assertIn(f'role "{role}" may not use replication', err)
        self.assertIn(f"ALTER ROLE {role} REPLICATION", err)
        self.assert_no_publication(cfg)
        self.assert_no_slot(cfg)

    def test_publication_created_by_a_start_that_fails_before_its_slot_is_dropped(self):
        # A role that may create the publication but not record the backfill: capture fails
        # after creating the publication, before the slot.
        role = dstest.unique_name("ds_undo")
        dstest.psql(f"CREATE ROLE {role} LOGIN REPLICATION; GRANT CREATE ON DATABASE {self.db} TO {role}")
        self.addCleanup(dstest.psql, f"DROP OWNED BY {role}; DROP ROLE IF EXISTS {role}", db=self.db)
        self.psql(
            "CREATE SCHEMA IF NOT EXISTS dualsync;"
            "CREATE TABLE IF NOT EXISTS dualsync.capture_state (slot_name text PRIMARY KEY,"
            " snapshot_lsn pg_lsn, backfill_started_at timestamptz NOT NULL,"
            " backfill_completed_at timestamptz, backfill_rows bigint);"
            f"CREATE TABLE undo_t (id int PRIMARY KEY); ALTER TABLE undo_t OWNER TO {role}"
        )
        cfg = self.capture_config(["public.undo_t"])
        cfg.data["source"]["conninfo"] = dstest.conninfo(self.db) + f" user={role}"
        write_file(cfg.path, json.dumps(cfg.data))
        status, err = self.run_capture(cfg)
        self.assertEqual(status, FAILURE, err)
        self.assertIn("cannot create dualsync.capture_state", err)
        self.assertIn(f'DROP PUBLICATION IF EXISTS "{cfg.publication}" (capture created it, and did not start)', err)
        self.assert_no_publication(cfg)
        self.assert_no_slot(cfg)

    def test_missing_publication_with_create_publication_false_names_the_fix(self):
        cfg = self.capture_config(["public.good"])
        cfg.data["source"]["create_publication"] = False
        write_file(cfg.path, json.dumps(cfg.data))
        status, err = self.run_capture(cfg)
        self.assertEqual(status, FAILURE, err)
        self.assertIn(f'publication "{cfg.publication}" does not exist', err)
        self.assertIn("source.create_publication", err)
        self.assert_no_slot(cfg)

    def test_unknown_host_error_does_not_show_the_conninfo(self):
        cfg = self.capture_config(["public.good"])
        cfg.data["source"]["conninfo"] = (
            "host=no-such-host.invalid port=5432 user=postgres password=secret123 dbname=x "
            "connect_timeout=5"
        )
        write_file(cfg.path, json.dumps(cfg.data))
        status, err = self.run_capture(cfg)
        self.assertEqual(status, FAILURE, err)
        self.assertIn("cannot connect to the source database", err)
        self.assertIn("no-such-host.invalid", err)
        self.assertNotIn("secret123", err)

    def test_malformed_conninfo_error_does_not_show_the_password(self):
        # libpq's own messages for these quote the whole URI, or the word after a password
        # written without quotes.
        for conninfo in (
            "postgresql://alice:secret123@[::1]x/db",
            "postgresql://alice:secret123@[::1/db",
            "postgresql://alice:secret123%zz@localhost/db",
            "host=127.0.0.1 password=my secret123 dbname=x",
        ):
            with self.subTest(conninfo=conninfo):
                cfg = self.capture_config(["public.good"])
                cfg.data["source"]["conninfo"] = conninfo
                write_file(cfg.path, json.dumps(cfg.data))
                status, err = self.run_capture(cfg)
                self.assertEqual(status, USAGE, err)
                self.assertIn("source.conninfo is not a valid connection string", err)
                self.assertNotIn("secret123", err)

    def test_password_in_conninfo_is_not_logged_by_a_running_capture(self):
        cfg = self.capture_config(["public.good"], log_level="debug")
        # The test server trusts every local connection: the password is ignored.
        cfg.data["source"]["conninfo"] = dstest.conninfo(self.db) + " password=secret123"
        write_file(cfg.path, json.dumps(cfg.data))
        cap = self.start_capture(cfg)
        with cap:
            wait_streaming(cfg)
            self.psql("INSERT INTO good VALUES (1, 'x')")
            self.consume([cfg.topic("public.good")], count=1)
        self.assertNotIn("secret123", cap.log_text())


class CaptureRuntimeErrorsTest(dstest.ServicesTestCase):
    def assert_too_large(self, text, cfg, table, key, lsn, size, limit):
        """The error names the table, key, LSN and size, the limit and what to raise."""
        # @size None: any (a resent change's source.sequence may differ by a few bytes).
        self.assertRegex(
            text,
            re.escape(f"change too large for Kafka: table {table}, key {key}, LSN {lsn}: a message of ")
            + (str(size) if size is not None else r"\d+")
            + re.escape(f" bytes on topic {cfg.topic(table)}, {limit}"),
        )
        if "producer's" in limit:
            self.assertIn('Raise "message.max.bytes" in the configuration\'s "kafka" object above', text)
        self.assertIn(f"--entity-name {cfg.topic(table)} --add-config max.message.bytes=N", text)
        self.assertIn("every start stops at this change with this error (exit 1)", text)

    def huge_row(self, table, row_id, md5s):
        """Inserts a row of @md5s * 32 bytes of incompressible text; returns (LSN of the
        change as capture names it, message size in bytes) once it is known."""
        self.psql(
            f"INSERT INTO {table} SELECT {row_id}, string_agg(md5(g::text || random()::text), '') "
            f"FROM generate_series(1, {md5s}) g"
        )

    def test_change_over_the_producer_limit_names_table_key_lsn_and_size_on_every_start(self):
        self.psql("CREATE TABLE big_rows (id int PRIMARY KEY, v text)")
        # A small producer limit keeps the test fast: 100 kB, and a 160 kB row.
        cfg = self.capture_config(["public.big_rows"], kafka={"message.max.bytes": 100000})
        cap = self.start_capture(cfg)
        wait_streaming(cfg)
        before = dstest.lsn_to_int(dstest.current_wal_lsn())
        self.psql("INSERT INTO big_rows VALUES (1, 'small')")
        self.huge_row("big_rows", 2, 5000)
        self.assertEqual(cap.wait_exit(timeout=60), FAILURE)
        log = cap.log_text()
        [line] = [l for l in log.splitlines() if "change too large for Kafka" in l]
        size = int(re.search(r"a message of (\d+) bytes", line).group(1))
        lsn = re.search(r"LSN ([0-9A-F]+/[0-9A-F]+)", line).group(1)
        self.assertGreater(size, 160000)
        self.assertGreater(dstest.lsn_to_int(lsn), before)
        self.assert_too_large(log, cfg, "public.big_rows", '{"id":2}', lsn, size,
                              "over the producer's message.max.bytes (100000)")
        # The row before it was delivered and confirmed; the slot stays before the big one.
        [msg] = self.consume([cfg.topic("public.big_rows")], count=1)
        self.assertEqual(msg["key"], {"id": 1})
        confirmed = dstest.lsn_to_int(dstest.slot_info(cfg.slot)["confirmed_flush_lsn"])
        self.assertLessEqual(confirmed, dstest.lsn_to_int(lsn))
        # Every start meets the same change and says the same, instead of skipping it.
        for _ in range(2):
            status, out, err = run_dualsync("capture", "--config", cfg.path)
            self.assertEqual(status, FAILURE, err)
            self.assert_too_large(err, cfg, "public.big_rows", '{"id":2}', lsn, None,
                                  "over the producer's message.max.bytes (100000)")
        self.assertEqual(dstest.lsn_to_int(dstest.slot_info(cfg.slot)["confirmed_flush_lsn"]), confirmed)

    def test_change_over_the_topic_limit_names_table_key_lsn_and_size(self):
        self.psql("CREATE TABLE huge (id int PRIMARY KEY, v text)")
        # The producer takes 5 MB; the topic, made before capture with the broker's default
        # limit (about 1 MB), does not (a topic capture creates follows the producer's limit).
        cfg = self.capture_config(["public.huge"], kafka={"message.max.bytes": 5000000})
        dstest.create_topic(cfg.topic("public.huge"))
        cap = self.start_capture(cfg)
        wait_streaming(cfg)
        before = dstest.lsn_to_int(dstest.current_wal_lsn())
        self.huge_row("huge", 1, 70000)  # 2.2 MB
        self.assertEqual(cap.wait_exit(timeout=60), FAILURE)
        log = cap.log_text()
        [line] = [l for l in log.splitlines() if "change too large for Kafka" in l]
        size = int(re.search(r"a message of (\d+) bytes", line).group(1))
        lsn = re.search(r"LSN ([0-9A-F]+/[0-9A-F]+)", line).group(1)
        self.assertGreater(dstest.lsn_to_int(lsn), before)
        self.assert_too_large(log, cfg, "public.huge", '{"id":1}', lsn, size,
                              "refused by the broker on partition 0 (Broker: Message size too large)")
        # The slot stays before the change, so nothing is lost.
        self.assertLessEqual(dstest.lsn_to_int(dstest.slot_info(cfg.slot)["confirmed_flush_lsn"]),
                             dstest.lsn_to_int(lsn))


    def test_second_capture_on_the_same_slot_waits_as_a_standby_creating_nothing(self):
        self.psql("CREATE TABLE shared (id int PRIMARY KEY)")
        cfg = self.capture_config(["public.shared"])
        with self.start_capture(cfg) as first:
            wait_streaming(cfg)
            owner = dstest.slot_info(cfg.slot)["active_pid"]
            # The second one names a publication of its own: nothing is created while it only
            # waits for the slot (test_capture_standby.py covers the takeover).
            second_pub = dstest.unique_name("p_second")
            second = dict(cfg.data, source=dict(cfg.data["source"], publication=second_pub))
            path = write_file(cfg.path.replace(".json", "-second.json"), json.dumps(second))
            standby = self.start_capture(dstest.CaptureConfig(path, second, cfg.db))
            dstest.wait_for(lambda: f'is held by process {owner}' in standby.log_text(), 30,
                            "the second capture to wait as a standby, naming the holder")
            self.assertEqual(
                self.psql_value(
                    f"SELECT count(*) FROM pg_publication WHERE pubname = '{second_pub}'"
                ),
                "0",
            )
            self.assertTrue(first.running())
            self.psql("INSERT INTO shared VALUES (1)")
            [msg] = self.consume([cfg.topic("public.shared")], count=1)
            self.assertEqual(standby.stop(timeout=30), 0)
        self.assertEqual(msg["key"], {"id": 1})

def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on, below the ephemeral range."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise dstest.HarnessError("no free TCP port found")


class ThrowawayCluster:
    """A second PostgreSQL 15 cluster with wal_level=replica and password authentication for
    every role but postgres, run as the postgres OS user when this process is root (as
    tests/harness/services.sh does)."""

    def __init__(self, base_dir):
        self.dir = os.path.join(base_dir, "pg2")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.bin = dstest.env()["DS_PG_BIN"]
        self.port = None
        self.started = False

    def _as_pg(self, args, check=True):
        if os.geteuid() == 0:
            args = ["runuser", "-u", dstest.env().get("DS_PG_OS_USER") or "postgres", "--"] + args
        proc = subprocess.run(args, capture_output=True, text=True, cwd="/", timeout=120)
        if check and proc.returncode != 0:
            raise dstest.HarnessError(f"{' '.join(args)} failed: {proc.stdout}{proc.stderr}")
        return proc

    def start(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.data, mode=0o700)
        if os.geteuid() == 0:
            user = dstest.env().get("DS_PG_OS_USER") or "postgres"
            for path in (self.dir, self.data):
                shutil.chown(path, user, user)
        self._as_pg([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "postgres",
                     "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write(
                "local all all trust\n"
                "host all postgres 127.0.0.1/32 trust\n"
                "host all all 127.0.0.1/32 scram-sha-256\n"
            )
        self.port = free_port()
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                # TCP only: a socket path under a deep directory could exceed the 107-byte
                # limit of a Unix socket name.
                "unix_socket_directories = ''\nwal_level = replica\nfsync = off\n"
                "max_connections = 20\n"
            )
        self.started = True  # from here on stop() has something to stop
        self._as_pg([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l", self.log, "-w",
                     "-t", "60", "start"])

    def stop(self):
        if self.started:
            self._as_pg([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "immediate",
                         "-w", "-t", "30", "stop"], check=False)
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def conninfo(self, user="postgres", extra=""):
        return f"host=127.0.0.1 port={self.port} user={user} dbname=postgres {extra}".strip()

    def psql(self, sql):
        proc = subprocess.run(
            [os.path.join(self.bin, "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
             "-d", self.conninfo(), "-c", sql],
            capture_output=True, text=True, timeout=60,
        )
        if proc.returncode != 0:
            raise AssertionError(f"psql on the throwaway cluster failed: {proc.stderr}")
        return proc.stdout.strip()


class CaptureServerSetupErrorsTest(dstest.ServicesTestCase):
    """Against a second, throwaway server: one not configured for logical replication, and
    one that checks passwords."""

    def setUp(self):
        super().setUp()
        self.cluster = ThrowawayCluster(self.work_dir)
        self.addCleanup(self.cluster.stop)  # runs even when start() or the test fails
        self.cluster.start()
        self.cluster.psql(
            "CREATE TABLE public.t (id int PRIMARY KEY); "
            "CREATE ROLE alice LOGIN PASSWORD 'right-password'; "
            "GRANT ALL ON public.t TO alice"
        )

    def config_for(self, conninfo):
        cfg = self.capture_config(["public.t"])
        cfg.data["source"]["conninfo"] = conninfo
        write_file(cfg.path, json.dumps(cfg.data))
        return cfg

    def test_wal_level_replica_is_refused_with_the_fix(self):
        self.assertEqual(self.cluster.psql("SHOW wal_level"), "replica")
        cfg = self.config_for(self.cluster.conninfo())
        status, out, err = run_dualsync("capture", "--config", cfg.path)
        self.assertEqual(status, FAILURE, err)
        self.assertIn(
            "the source server runs with wal_level=replica, but logical replication needs "
            "wal_level=logical: run ALTER SYSTEM SET wal_level = logical (or set it in "
            "postgresql.conf) and restart the server",
            err,
        )
        # It stopped before creating anything.
        self.assertEqual(self.cluster.psql("SELECT count(*) FROM pg_publication"), "0")
        self.assertEqual(self.cluster.psql("SELECT count(*) FROM pg_replication_slots"), "0")

    def test_wrong_password_error_does_not_show_the_conninfo(self):
        cfg = self.config_for(self.cluster.conninfo(user="alice", extra="password=secret123"))
        status, out, err = run_dualsync("capture", "--config", cfg.path)
        self.assertEqual(status, FAILURE, err)
        self.assertIn("cannot connect to the source database", err)
        self.assertIn('password authentication failed for user "alice"', err)
        self.assertNotIn("secret123", out + err)


if __name__ == "__main__":
    unittest.main()
