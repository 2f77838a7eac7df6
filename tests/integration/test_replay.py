"""`dualsync replay` on the clinic reference migration (mappings/clinic/): real capture, real
apply running throughout, the seed, then a replay of the patients mapping (global_patients and
clinic_patients, which appointments reference by foreign key).

Each test checks what the command promises: the rebuilt tables are what the mappings give
(`dualsync verify` clean, and concrete rows), readers never see a table empty or short while the
swap happens under a write load, a `kill -9` at any point leaves the live tables untouched and
the same command completes afterwards, foreign keys other tables hold still hold, and a topic
that lost its first messages is refused by name.
"""

import ctypes
import ctypes.util
import json
import os
import subprocess
import threading
import time

import dstest
from test_apply_changes import PEOPLE_MAPPING, PEOPLE_QUERY, ApplyPeopleCase, PeopleModel
from test_clinic_migration import CLINIC, ClinicTestCase, NS_GLOBAL_PATIENT, read, uuid5


class Replay(dstest.Apply):
    """`dualsync replay --config FILE ...` as a child process."""

    command = ["replay"]


def replay_patients(cfg, timeout=120):
    return dstest.run_dualsync(["replay", "--config", cfg.path, "--mapping", "patients"],
                               timeout=timeout)


# ---- Kafka: delete the first records of a partition (what time retention does) -----------


class _TopicPartition(ctypes.Structure):
    _fields_ = [("topic", ctypes.c_char_p), ("partition", ctypes.c_int32),
                ("offset", ctypes.c_int64), ("metadata", ctypes.c_void_p),
                ("metadata_size", ctypes.c_size_t), ("opaque", ctypes.c_void_p),
                ("err", ctypes.c_int), ("_private", ctypes.c_void_p)]


def delete_records(topic, partition, before_offset):
    """Kafka's DeleteRecords (kafka-delete-records.sh) through librdkafka: the partition then
    starts at @before_offset, as after time retention deleted its first segments."""
    rd = ctypes.CDLL(ctypes.util.find_library("rdkafka") or "librdkafka.so.1")
    rd.rd_kafka_conf_new.restype = ctypes.c_void_p
    rd.rd_kafka_new.restype = ctypes.c_void_p
    rd.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    rd.rd_kafka_conf_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                     ctypes.c_char_p, ctypes.c_size_t]
    rd.rd_kafka_topic_partition_list_new.restype = ctypes.c_void_p
    rd.rd_kafka_topic_partition_list_add.restype = ctypes.POINTER(_TopicPartition)
    rd.rd_kafka_topic_partition_list_add.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                                     ctypes.c_int32]
    rd.rd_kafka_DeleteRecords_new.restype = ctypes.c_void_p
    rd.rd_kafka_DeleteRecords_new.argtypes = [ctypes.c_void_p]
    rd.rd_kafka_queue_new.restype = ctypes.c_void_p
    rd.rd_kafka_queue_new.argtypes = [ctypes.c_void_p]
    rd.rd_kafka_DeleteRecords.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                                          ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p]
    rd.rd_kafka_queue_poll.restype = ctypes.c_void_p
    rd.rd_kafka_queue_poll.argtypes = [ctypes.c_void_p, ctypes.c_int]
    rd.rd_kafka_event_error.argtypes = [ctypes.c_void_p]
    rd.rd_kafka_event_error_string.restype = ctypes.c_char_p
    rd.rd_kafka_event_error_string.argtypes = [ctypes.c_void_p]
    rd.rd_kafka_event_destroy.argtypes = [ctypes.c_void_p]
    rd.rd_kafka_queue_destroy.argtypes = [ctypes.c_void_p]
    rd.rd_kafka_destroy.argtypes = [ctypes.c_void_p]
    err = ctypes.create_string_buffer(512)
    conf = rd.rd_kafka_conf_new()
    rd.rd_kafka_conf_set(conf, b"bootstrap.servers", dstest.kafka_bootstrap().encode(), err, 512)
    rk = rd.rd_kafka_new(0, conf, err, 512)
    assert rk, err.value
    parts = rd.rd_kafka_topic_partition_list_new(1)
    tp = rd.rd_kafka_topic_partition_list_add(parts, topic.encode(), partition)
    tp.contents.offset = before_offset
    del_records = ctypes.c_void_p(rd.rd_kafka_DeleteRecords_new(parts))
    queue = rd.rd_kafka_queue_new(rk)
    rd.rd_kafka_DeleteRecords(rk, ctypes.byref(del_records), 1, None, queue)
    ev = rd.rd_kafka_queue_poll(queue, 30000)
    assert ev, "DeleteRecords got no answer within 30 s"
    failed = rd.rd_kafka_event_error(ev)
    message = rd.rd_kafka_event_error_string(ev)
    rd.rd_kafka_event_destroy(ev)
    rd.rd_kafka_queue_destroy(queue)
    rd.rd_kafka_destroy(rk)
    assert not failed, f"DeleteRecords on {topic} [{partition}] failed: {message}"


def alter_topic(topic, settings):
    """Kafka's AlterConfigs on @topic (kafka-configs.sh --alter): @settings replace the topic's
    own settings."""
    rd = ctypes.CDLL(ctypes.util.find_library("rdkafka") or "librdkafka.so.1")
    vp, cp = ctypes.c_void_p, ctypes.c_char_p
    for name, res, args in (
        ("rd_kafka_conf_new", vp, []), ("rd_kafka_new", vp, [ctypes.c_int, vp, cp, ctypes.c_size_t]),
        ("rd_kafka_conf_set", ctypes.c_int, [vp, cp, cp, cp, ctypes.c_size_t]),
        ("rd_kafka_ConfigResource_new", vp, [ctypes.c_int, cp]),
        ("rd_kafka_ConfigResource_set_config", ctypes.c_int, [vp, cp, cp]),
        ("rd_kafka_queue_new", vp, [vp]),
        ("rd_kafka_AlterConfigs", None, [vp, ctypes.POINTER(vp), ctypes.c_size_t, vp, vp]),
        ("rd_kafka_queue_poll", vp, [vp, ctypes.c_int]),
        ("rd_kafka_event_error", ctypes.c_int, [vp]),
        ("rd_kafka_event_error_string", cp, [vp]),
        ("rd_kafka_event_AlterConfigs_result", vp, [vp]),
        ("rd_kafka_AlterConfigs_result_resources", ctypes.POINTER(vp),
         [vp, ctypes.POINTER(ctypes.c_size_t)]),
        ("rd_kafka_ConfigResource_error", ctypes.c_int, [vp]),
        ("rd_kafka_ConfigResource_error_string", cp, [vp]),
        ("rd_kafka_event_destroy", None, [vp]), ("rd_kafka_queue_destroy", None, [vp]),
        ("rd_kafka_destroy", None, [vp]),
    ):
        getattr(rd, name).restype = res
        getattr(rd, name).argtypes = args
    err = ctypes.create_string_buffer(512)
    conf = rd.rd_kafka_conf_new()
    rd.rd_kafka_conf_set(conf, b"bootstrap.servers", dstest.kafka_bootstrap().encode(), err, 512)
    rk = rd.rd_kafka_new(0, conf, err, 512)
    assert rk, err.value
    res = vp(rd.rd_kafka_ConfigResource_new(2, topic.encode()))  # RD_KAFKA_RESOURCE_TOPIC
    for key, value in settings.items():
        rd.rd_kafka_ConfigResource_set_config(res, key.encode(), str(value).encode())
    queue = rd.rd_kafka_queue_new(rk)
    rd.rd_kafka_AlterConfigs(rk, ctypes.byref(res), 1, None, queue)
    ev = rd.rd_kafka_queue_poll(queue, 30000)
    assert ev, "AlterConfigs got no answer within 30 s"
    problem = rd.rd_kafka_event_error_string(ev) if rd.rd_kafka_event_error(ev) else None
    if not problem:
        n = ctypes.c_size_t()
        results = rd.rd_kafka_AlterConfigs_result_resources(
            rd.rd_kafka_event_AlterConfigs_result(ev), ctypes.byref(n))
        for i in range(n.value):
            if rd.rd_kafka_ConfigResource_error(results[i]):
                problem = rd.rd_kafka_ConfigResource_error_string(results[i])
    rd.rd_kafka_event_destroy(ev)
    rd.rd_kafka_queue_destroy(queue)
    rd.rd_kafka_destroy(rk)
    assert not problem, f"AlterConfigs on {topic} failed: {problem}"


# ---- the test cases -------------------------------------------------------------------------


class ReplayTestCase(ClinicTestCase):
    """The clinic migration with its seed applied by a running apply."""

    def setUp(self):
        super().setUp()
        self.apply = self.start_apply(self.apply_cfg)
        self.psql(read(os.path.join(CLINIC, "legacy_seed.sql")))
        self.wait_caught_up(self.apply)

    def assert_swapped(self):
        """No shadow or old table is left, and the foreign key appointments hold on
        clinic_patients points at the live table and is validated."""
        self.assertEqual(self.psql("SELECT relname FROM pg_class WHERE relname LIKE '%__replay%'"),
                         [])
        self.assertEqual(
            self.psql("SELECT confrelid::regclass::text, convalidated FROM pg_constraint "
                      "WHERE conrelid = 'appointments'::regclass AND contype = 'f' "
                      "AND confrelid = 'clinic_patients'::regclass"),
            [("clinic_patients", "t")],
        )

    def index_names(self):
        return self.psql("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid IN "
                         "('global_patients'::regclass, 'clinic_patients'::regclass) ORDER BY 1")


class ReplayRepairsDamageTest(ReplayTestCase):
    def test_damaged_tables_are_rebuilt_and_foreign_keys_on_them_hold(self):
        indexes = self.index_names()
        # What the swap carries over beside the rows: grants (table and column), a comment.
        role = dstest.unique_name("reader")
        self.psql(f"CREATE ROLE {role}; GRANT SELECT ON clinic_patients TO {role};"
                  f'GRANT SELECT ("name") ON global_patients TO {role};'
                  "COMMENT ON TABLE global_patients IS 'one row per person'")
        self.addCleanup(lambda: self.psql(f"DROP OWNED BY {role}; DROP ROLE {role}", check=False))
        # A patient without appointments, whose profile can go without touching appointments.
        self.psql("INSERT INTO patients (\"id\", \"clinicId\", \"name\", \"phone\", "
                  "\"dateOfBirth\") VALUES ('lonely-1', 'clinic-busan', 'Lonely One', "
                  "'010-7777-0000', '1977-07-07')")
        self.wait_caught_up(self.apply)
        before = self.psql('SELECT * FROM clinic_patients ORDER BY "id"')
        # Damage: a row deleted, a row changed, a row added.
        self.psql("DELETE FROM clinic_patients WHERE \"legacyPatientId\" = 'lonely-1'")
        self.psql("UPDATE global_patients SET \"name\" = 'WRONG' WHERE \"id\" = ("
                  'SELECT min("id"::text)::uuid FROM global_patients)')
        self.psql("INSERT INTO global_patients (\"id\", \"name\") VALUES "
                  "('00000000-0000-0000-0000-000000000001', 'nobody')")
        self.assertNotEqual(self.psql('SELECT * FROM clinic_patients ORDER BY "id"'), before)

        # A compacted topic that keeps tombstones for no time at all: any replay outlives them.
        topic = self.capture_cfg.topic("public.patients")
        alter_topic(topic, {"cleanup.policy": "compact", "delete.retention.ms": 0})

        proc = replay_patients(self.apply_cfg)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(f"longer than topic {topic} keeps tombstones (delete.retention.ms 0)",
                      proc.stderr)
        self.assertIn("run `dualsync verify`", proc.stderr)
        # Other mappings have links: the replay's are copied in, not the table moved.
        self.assertNotIn("links table replaces", proc.stderr)
        self.assertEqual(self.psql('SELECT * FROM clinic_patients ORDER BY "id"'), before)
        self.assertEqual(self.psql_value("SELECT count(*) FROM global_patients"), "20")
        self.assertEqual(self.psql_value(
            "SELECT count(*) FROM global_patients WHERE \"name\" IN ('WRONG', 'nobody')"), "0")
        self.assert_swapped()
        self.assertEqual(self.index_names(), indexes)
        self.assertEqual(
            self.psql(f"SELECT has_table_privilege('{role}', 'clinic_patients', 'SELECT'),"
                      f" has_column_privilege('{role}', 'global_patients', 'name', 'SELECT'),"
                      f" has_column_privilege('{role}', 'global_patients', 'email', 'SELECT'),"
                      " obj_description('global_patients'::regclass, 'pg_class')"),
            [("t", "t", "f", "one row per person")])
        # Live apply's session was ended (it reloads the pending keys and dead-letter records
        # the swap replaced when it reconnects), and it goes on writing the new tables.
        self.assertIn("ended 1 sessions of live apply", proc.stderr)
        self.psql("INSERT INTO patients (\"id\", \"clinicId\", \"name\", \"phone\", "
                  "\"dateOfBirth\") VALUES ('after-1', 'clinic-seoul', 'After Replay', "
                  "'010-9999-0000', '1999-09-09')")
        self.wait_caught_up(self.apply)
        self.assertEqual(self.psql_value(
            "SELECT count(*) FROM clinic_patients WHERE \"legacyPatientId\" = 'after-1'"), "1")
        self.assertIn("connected again", self.apply.log_text())
        self.assert_verify_matches()


class ReplayNewRuleTest(ReplayTestCase):
    def test_a_changed_matching_rule_applies_to_every_existing_row(self):
        # The new rule: the same phone (or email), birth date AND name. patient-19 and
        # patient-20 (one person in Seoul and Busan, names written alike) ... are checked below.
        doc = json.loads(read(os.path.join(CLINIC, "patients.json")))
        names = json.dumps(doc)
        rule = '"name": [{"coalesce": [{"normalize_phone": "$phone"}, {"lower": {"trim": "$email"}}]}, "$dateOfBirth"]'
        self.assertEqual(names.count(rule), 2, "the person rule is written twice in patients.json")
        names = names.replace(rule, rule[:-1] + ', {"lower": {"trim": "$name"}}]')
        path = os.path.join(self.work_dir, "patients.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(names)
        files = [path if os.path.basename(p) == "patients.json" else p
                 for p in self.apply_cfg.data["mappings"]]
        new_cfg = self.apply_config({"clinic": self.db}, files, self.capture_cfg.topic_prefix,
                                    apply={"on_error": "dlq"})
        # apply restarts with the new rule (changes from now on), replay rebuilds the rest.
        self.apply.stop()
        self.apply = self.start_apply(new_cfg)
        proc = replay_patients(new_cfg)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assert_swapped()
        rows = self.psql('SELECT "legacyPatientId", "globalPatientId"::text, "name" '
                         "FROM clinic_patients WHERE \"legacyPatientId\" IN "
                         "('patient-19', 'patient-20') ORDER BY 1")
        merged = uuid5(NS_GLOBAL_PATIENT, ["01055551234", "1988-04-12"])
        self.assertEqual(len(rows), 2)
        for legacy_id, global_id, name in rows:
            self.assertNotEqual(global_id, merged, f"{legacy_id} still follows the old rule")
        # Names differ between the two registrations exactly when the new rule splits them.
        same_name = rows[0][2].strip().lower() == rows[1][2].strip().lower()
        self.assertEqual(rows[0][1] == rows[1][1], same_name)
        self.apply_cfg = new_cfg
        self.wait_caught_up(self.apply)
        self.assert_verify_matches()


class ReplayTimeRetainedTopicTest(ReplayTestCase):
    def test_a_topic_that_lost_its_first_messages_or_a_view_on_a_target_is_refused(self):
        # A view reads a target table: a swap would leave it reading the old table.
        self.psql("CREATE VIEW patient_names AS SELECT \"name\" FROM global_patients")
        proc = replay_patients(self.apply_cfg)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn('table "public"."global_patients" cannot be swapped', proc.stderr)
        self.assertIn("view or rule patient_names", proc.stderr)
        self.psql("DROP VIEW patient_names")
        # --in-place empties the tables: one that a legacy table references is refused.
        proc = dstest.run_dualsync(["replay", "--config", self.apply_cfg.path, "--mapping",
                                    "patients", "--in-place"], timeout=120)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("--in-place empties clinic_patients, and table appointments holds a "
                      "foreign key on it", proc.stderr)
        self.assertEqual(self.psql("TABLE dualsync.in_place_rebuilds"), [])

        topic = self.capture_cfg.topic("public.patients")
        # Capture made the topic compacted, on which Kafka refuses DeleteRecords: a topic
        # switched to time retention, whose first segment went.
        alter_topic(topic, {"cleanup.policy": "delete", "retention.ms": "604800000"})
        delete_records(topic, 0, 1)
        before = self.psql('SELECT * FROM clinic_patients ORDER BY "id"')
        proc = replay_patients(self.apply_cfg)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn(f"topic {topic} [0] starts at offset 1", proc.stderr)
        self.assertIn("cleanup.policy=delete", proc.stderr)
        self.assertIn("dualsync backfill --table public.patients", proc.stderr)
        # Nothing was touched.
        self.assertEqual(self.psql('SELECT * FROM clinic_patients ORDER BY "id"'), before)
        self.assertEqual(self.psql("SELECT relname FROM pg_class WHERE relname LIKE '%__replay'"),
                         [])


class Holder(dstest.HeldTransaction):
    """A session holding `LOCK TABLE @table IN @mode MODE` in an open transaction."""

    def __init__(self, db, table, mode):
        super().__init__(f"LOCK TABLE {table} IN {mode} MODE;", db=db)


def waiting_for_lock(db, application, table):
    """Whether a session of @application waits for a lock on @table."""
    return dstest.psql_value(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        f"WHERE a.application_name = '{application}' AND NOT l.granted "
        f"AND l.relation = to_regclass('{table}')", db=db) != "0"


def no_session_left(db, application):
    return dstest.psql_value(
        f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{application}' "
        f"AND datname = '{db}'") == "0"


class ReplayUnderLoadTest(ReplayTestCase):
    def test_readers_never_see_a_short_table_while_the_swap_retries_under_a_write_load(self):
        stop = threading.Event()
        counts, errors, inserted = [], [], []

        def load():
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    self.psql("INSERT INTO patients (\"id\", \"clinicId\", \"name\", \"phone\", "
                              f"\"dateOfBirth\") VALUES ('load-{n}', 'clinic-seoul', 'Load {n}', "
                              f"'010-8{n:03d}-{n:04d}', '1980-01-01')")
                    inserted.append(n)
                except AssertionError as e:
                    errors.append(f"load: {e}")

        def read_counts():
            while not stop.is_set():
                try:
                    counts.append(int(self.psql_value("SELECT count(*) FROM clinic_patients")))
                except AssertionError as e:
                    errors.append(f"reader: {e}")

        threads = [threading.Thread(target=load), threading.Thread(target=read_counts)]
        for t in threads:
            t.start()
        holder = None
        try:
            dstest.wait_for(lambda: len(inserted) >= 5, timeout=30, what="the write load")
            # A reader that holds the live table when the swap wants to rename it: the swap
            # must give up after lock_timeout and try again, not block everyone.
            holder = Holder(self.db, "clinic_patients", "ACCESS SHARE")
            log_path = os.path.join(self.work_dir, f"{self._test_slug}-replay.log")
            rep = Replay(self.apply_cfg.path, log_path, ["--mapping", "patients"])
            self._captures.append(rep)
            self.addCleanup(rep.kill)
            rep.start()
            dstest.wait_for(lambda: "let go of its locks" in rep.log_text() or not rep.running(),
                            timeout=60, what="the swap to time out on the held lock")
            self.assertIn("lock timeout", rep.log_text())
            holder.release()
            self.assertEqual(rep.wait_exit(120), 0, rep.log_tail())
            dstest.wait_for(lambda: len(inserted) >= 5 + 5, timeout=30,
                            what="the write load to go on after the swap")
        finally:
            if holder:
                holder.release()
            stop.set()
            for t in threads:
                t.join(timeout=60)
        self.assertEqual(errors, [])
        self.assertGreater(len(counts), 10)
        # Only inserts: the count a reader sees never goes down, and never to nothing.
        drops = [(a, b) for a, b in zip(counts, counts[1:]) if b < a]
        self.assertEqual(drops, [], f"a reader saw the table shrink: {counts}")
        self.assertGreaterEqual(min(counts), 20)
        self.assert_swapped()
        self.wait_caught_up(self.apply)
        self.assertEqual(int(self.psql_value("SELECT count(*) FROM clinic_patients")),
                         20 + len(inserted))
        self.assert_verify_matches()


class ReplayCrashTest(ReplayTestCase):
    def start_replay(self, cfg, name):
        log_path = os.path.join(self.work_dir, f"{self._test_slug}-{name}.log")
        rep = Replay(cfg.path, log_path, ["--mapping", "patients"])
        self._captures.append(rep)
        self.addCleanup(rep.kill)
        return rep.start()

    def test_kill_9_during_the_rebuild_and_during_the_swap_then_the_same_command_completes(self):
        # Patients of a clinic of their own, after the seed's: while a session holds that
        # clinic's row, the replay's writes of them wait on their foreign key, after the seed's
        # patients were written (small batches): a stop point in the middle of the rebuild.
        self.psql("INSERT INTO clinics VALUES ('clinic-jeju', 'Jeju Clinic', 'jeju');"
                  "INSERT INTO patients (\"id\", \"clinicId\", \"name\", \"phone\", "
                  "\"dateOfBirth\") SELECT 'bulk-' || g, 'clinic-jeju', 'Bulk ' || g, "
                  "'010-6' || lpad(g::text, 3, '0') || '-0000', '1960-01-01' "
                  "FROM generate_series(1, 100) g")
        self.wait_caught_up(self.apply)
        before = self.psql('SELECT * FROM clinic_patients ORDER BY "id"')
        cfg = self.apply_config({"clinic": self.db}, self.apply_cfg.data["mappings"],
                                self.capture_cfg.topic_prefix,
                                apply={"on_error": "dlq", "batch_max_messages": 10})
        topic = self.capture_cfg.topic("public.patients")

        # 1. During the rebuild: killed while a batch waits, some batches committed.
        holder = Holder(self.db, "clinics", "ROW SHARE")
        holder.proc.stdin.write("SELECT 1 FROM clinics WHERE \"id\" = 'clinic-jeju' FOR UPDATE;\n")
        holder.proc.stdin.flush()
        rep = self.start_replay(cfg, "rebuild")

        def stuck():
            if not rep.running():
                raise AssertionError(f"replay exited with {rep.exit_code()}:\n{rep.log_tail()}")
            return dstest.psql_value(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE a.application_name = 'dualsync-apply' AND NOT l.granted "
                f"AND a.datname = '{self.db}'", db=self.db) != "0"

        dstest.wait_for(stuck, timeout=60, what="the replay to wait on the held clinic row")
        done = dstest.stored_offsets(self.db, self.apply_cfg.group_id)
        replayed = self.psql("SELECT next_offset FROM dualsync_replay.offsets "
                             f"WHERE topic = '{topic}'")
        self.assertEqual(len(replayed), 1, "no batch was committed before the stop point")
        self.assertLess(int(replayed[0][0]), done[(topic, 0)])
        rep.kill()
        holder.release()
        self.assertEqual(self.psql('SELECT * FROM clinic_patients ORDER BY "id"'), before)
        dstest.wait_for(lambda: no_session_left(self.db, "dualsync-replay"), timeout=30,
                        what="the killed replay's sessions to end")

        # 2. During the swap: a reader holds the live table while the swap wants to rename it.
        holder = Holder(self.db, "clinic_patients", "ACCESS SHARE")
        rep = self.start_replay(cfg, "swap")
        dstest.wait_for(lambda: waiting_for_lock(self.db, "dualsync-replay", "clinic_patients"),
                        timeout=60, what="the swap to wait for the renaming lock")
        self.assertIn("resuming the interrupted replay", rep.log_text())
        self.assertIn("swap: wrote the last", rep.log_text())
        rep.kill()
        holder.release()
        dstest.wait_for(lambda: no_session_left(self.db, "dualsync-replay"), timeout=30,
                        what="the killed replay's sessions to end")
        self.assertEqual(self.psql('SELECT * FROM clinic_patients ORDER BY "id"'), before)
        self.assertEqual(
            self.psql("SELECT relname FROM pg_class WHERE relname LIKE '%\\_\\_replay' ORDER BY 1"),
            [("clinic_patients__replay",), ("global_patients__replay",)])

        # 3. The same command completes.
        proc = replay_patients(cfg)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("resuming the interrupted replay", proc.stderr)
        self.assertEqual(self.psql('SELECT * FROM clinic_patients ORDER BY "id"'), before)
        self.assert_swapped()
        self.wait_caught_up(self.apply)
        self.assert_verify_matches()


class ReplayAllMappingsTest(ReplayTestCase):
    def test_every_mapping_is_rebuilt_and_in_place_columns_follow_a_changed_mapping(self):
        # A changed in-place mapping: serviceName becomes the service's code.
        doc = json.loads(read(os.path.join(CLINIC, "reservations.json")))
        columns = doc["targets"][0]["columns"]
        self.assertEqual(columns["serviceName"]["lookup"]["column"], "name")
        columns["serviceName"]["lookup"]["column"] = "code"
        path = dstest.write_mapping(os.path.join(self.work_dir, "reservations.json"), doc)
        files = [path if os.path.basename(p) == "reservations.json" else p
                 for p in self.apply_cfg.data["mappings"]]
        new_cfg = self.apply_config({"clinic": self.db}, files, self.capture_cfg.topic_prefix,
                                    apply={"on_error": "dlq"})
        self.apply.stop()
        self.apply = self.start_apply(new_cfg)
        # And a damaged new table.
        self.psql("UPDATE global_doctors SET \"name\" = 'WRONG'")
        doctors = self.psql('SELECT "id", "legacyUserId" FROM global_doctors ORDER BY 1')

        proc = dstest.run_dualsync(["replay", "--config", new_cfg.path], timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("rows recomputed in place", proc.stderr)
        self.assertIn("the replay's links table replaces dualsync.links", proc.stderr)
        self.assertEqual(self.psql_value(
            "SELECT count(*) FROM global_doctors WHERE \"name\" = 'WRONG'"), "0")
        self.assertEqual(self.psql('SELECT "id", "legacyUserId" FROM global_doctors ORDER BY 1'),
                         doctors)
        self.assertEqual(
            self.psql('SELECT count(*), count(*) FILTER (WHERE "serviceName" = "serviceType"::text) '
                      "FROM reservations"),
            [("24", "24")])
        self.assert_swapped()
        self.apply_cfg = new_cfg
        self.wait_caught_up(self.apply)
        self.assert_verify_matches()


class ReplayInPlaceTest(ApplyPeopleCase):
    """`--in-place`: the people table (with a view and a trigger on it, which the default mode
    refuses) emptied and rebuilt where it is, while live apply waits and a write load runs."""

    def test_in_place_rebuild_holds_apply_back_survives_kill_9_and_completes(self):
        self.psql("CREATE VIEW people_names AS SELECT full_name FROM people", db=self.newdb)
        cfg = self.apply_config({"newdb": self.newdb}, [PEOPLE_MAPPING],
                                self.capture_cfg.topic_prefix,
                                source=self.capture_cfg.data["source"],
                                apply={"batch_max_messages": 20})
        apply = self.start_apply(cfg)
        model = PeopleModel(seed=20261207)
        self.psql(model.transactions(count=30, size=20))
        self.wait_rows(self.newdb, PEOPLE_QUERY, model.expected_people(), timeout=90)
        # Damage: a row gone, a row changed, a row that no legacy row gives.
        first = model.expected_people()[0][0]
        self.psql(f"DELETE FROM people WHERE id = {first};"
                  "UPDATE people SET full_name = 'WRONG' WHERE id = (SELECT max(id) FROM people);"
                  "INSERT INTO people VALUES (999999, 'nobody', 'x@y', 'PATIENT', 0)",
                  db=self.newdb)
        # The default mode refuses the table (a view and a trigger read it).
        proc = dstest.run_dualsync(["replay", "--config", cfg.path], timeout=120)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("cannot be swapped", proc.stderr)

        # 1. Stopped in the middle: the replay's first write waits (its trigger's table is
        # held), after the table was emptied. Live apply waits too, and says why.
        holder = Holder(self.newdb, "people_writes", "SHARE")
        log_path = os.path.join(self.work_dir, f"{self._test_slug}-replay.log")
        rep = Replay(cfg.path, log_path, ["--in-place"])
        self._captures.append(rep)
        self.addCleanup(rep.kill)
        rep.start()
        dstest.wait_for(lambda: waiting_for_lock(self.newdb, "dualsync-apply", "people_writes"),
                        timeout=60, what="the replay's first write to wait")
        self.assertEqual(dstest.psql_value("SELECT count(*) FROM people", db=self.newdb), "0")
        self.psql(model.transactions(count=2, size=5))
        dstest.wait_for(lambda: "is being rebuilt in place" in apply.log_text(), timeout=60,
                        what="live apply to say it waits for the rebuild")
        rep.kill()
        holder.release()
        dstest.wait_for(lambda: no_session_left(self.newdb, "dualsync-replay"), timeout=30,
                        what="the killed replay's sessions to end")
        # Half rebuilt: apply keeps waiting, and says what to do.
        dstest.wait_for(lambda: "half rebuilt by an interrupted" in apply.log_text(), timeout=60,
                        what="live apply to say the table is half rebuilt")
        self.assertEqual(dstest.psql_value("SELECT count(*) FROM people", db=self.newdb), "0")

        # 2. The same command completes, under a write load.
        failures = []

        def load():
            try:
                for _ in range(10):
                    self.psql(model.transactions(count=3, size=10))
                    time.sleep(0.2)
            except AssertionError as e:
                failures.append(e)

        loader = threading.Thread(target=load)
        loader.start()
        try:
            proc = dstest.run_dualsync(["replay", "--config", cfg.path, "--in-place"],
                                       timeout=180)
        finally:
            loader.join(timeout=120)
        self.assertEqual(failures, [])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("resuming the interrupted replay", proc.stderr)
        self.wait_rows(self.newdb, PEOPLE_QUERY, model.expected_people(), timeout=90)
        # Kept: the view and the trigger (no rename), and no shadow was made.
        self.assertEqual(dstest.psql_value("SELECT count(*) FROM people_names", db=self.newdb),
                         str(len(model.rows)))
        self.assertEqual(dstest.psql("SELECT tgname FROM pg_trigger WHERE tgrelid = "
                                     "'people'::regclass AND NOT tgisinternal", db=self.newdb),
                         [("people_writes",)])
        self.assertEqual(dstest.psql("SELECT relname FROM pg_class WHERE relname LIKE "
                                     "'%\\_\\_replay%'", db=self.newdb), [])
        self.assertEqual(dstest.psql("TABLE dualsync.in_place_rebuilds", db=self.newdb), [])
        proc = dstest.run_dualsync(["verify", "--config", cfg.path], timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        apply.stop(expect_exit=0)
