"""The metrics endpoints of capture and apply (docs/metrics.md), scraped by a real Prometheus
server (Debian's /usr/bin/prometheus, started by the test class with a generated
configuration, a temporary storage directory and a free port, scraping every second).

The assertions are made on what Prometheus stored, through its HTTP API (/api/v1/query), or
on the endpoints themselves for HTTP behaviour (errors, slow clients, health). Prometheus
that cannot start is a failure, not a skip: these tests are the only check of the metrics.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import dstest
from test_apply_changes import PEOPLE_QUERY, ApplyPeopleCase, PeopleModel

PROMETHEUS = "/usr/bin/prometheus"


def free_port():
    """A TCP port nothing listens on now (the kernel's choice for an ephemeral bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, method="GET", timeout=10):
    """(status, body text, headers) of a request to 127.0.0.1:@port."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def raw_request(port, data, timeout=10):
    """Sends @data as is and returns the status line the server answers (b"" if it closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        reply = b""
        while b"\r\n" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply.split(b"\r\n", 1)[0].decode(errors="replace")


def run(args):
    """(exit status, stderr) of `dualsync ARGS`."""
    proc = dstest.run_dualsync(args)
    return proc.returncode, proc.stderr


class Prometheus:
    """A Prometheus server scraping @targets (job name -> "host:port") every second."""

    def __init__(self, targets):
        if not os.access(PROMETHEUS, os.X_OK):
            raise AssertionError(
                f"{PROMETHEUS} not found: install Debian's prometheus package (scripts/setup.sh)"
            )
        self.dir = tempfile.mkdtemp(prefix="ds-prometheus-")
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms",
                       "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [address]}]}
                for job, address in targets.items()
            ],
        }
        # JSON is YAML: no YAML library needed.
        self.config_path = os.path.join(self.dir, "prometheus.yml")
        with open(self.config_path, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
        self.log_path = os.path.join(self.dir, "prometheus.log")
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.config_path}",
             f"--storage.tsdb.path={os.path.join(self.dir, 'data')}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n"
                                     f"{self.log_tail()}")
            try:
                return http_get(self.port, "/-/ready", timeout=2)[0] == 200
            except OSError:
                return False

        try:
            dstest.wait_for(ready, 60, "Prometheus to be ready")
        except AssertionError:
            self.stop()
            raise

    def log_tail(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-30:])

    def query(self, expr):
        """The instant vector of @expr now: a list of (labels, float value)."""
        status, body, _ = http_get(self.port, "/api/v1/query?" +
                                   urllib.parse.urlencode({"query": expr}))
        data = json.loads(body)
        if status != 200 or data.get("status") != "success":
            raise AssertionError(f"Prometheus query {expr!r} failed ({status}): {body}")
        return [(r["metric"], float(r["value"][1])) for r in data["data"]["result"]]

    def value(self, expr):
        """The single value of @expr, or None when it has no series."""
        result = self.query(expr)
        if len(result) > 1:
            raise AssertionError(f"{expr!r} has {len(result)} series: {result}")
        return result[0][1] if result else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class MetricsTestCase(dstest.ApplyTestCase):
    """One Prometheus for the class, scraping capture's and apply's ports (chosen once)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.capture_port = free_port()
        cls.apply_port = free_port()
        cls.prometheus = Prometheus({
            "capture": f"127.0.0.1:{cls.capture_port}",
            "apply": f"127.0.0.1:{cls.apply_port}",
        })
        cls.addClassCleanup(cls.prometheus.stop)

    def setUp(self):
        super().setUp()
        self.psql("DROP TABLE IF EXISTS items; "
                  "CREATE TABLE items (id int PRIMARY KEY, note text)")

    def start_metrics_capture(self, tables=("public.items",), **capture):
        cfg = self.capture_config(
            list(tables),
            capture=dict({"metrics_address": f"127.0.0.1:{self.capture_port}"}, **capture))
        cap = self.start_capture(cfg)

        def streaming():
            self.assertTrue(cap.running(), f"capture exited:\n{cap.log_tail()}")
            info = dstest.slot_info(cfg.slot)
            return info and info["active"] and info["confirmed_flush_lsn"]

        dstest.wait_for(streaming, 60, f"capture to stream from slot {cfg.slot}")
        return cfg, cap

    def wait_scraped(self, job, what="up"):
        """Waits until Prometheus has scraped @job successfully."""
        dstest.wait_for(lambda: self.prometheus.value(f'up{{job="{job}"}}') == 1, 30,
                        f"Prometheus to scrape {job}")

    def wait_confirmed_past(self, cfg, lsn, timeout=30):
        target = dstest.lsn_to_int(lsn)

        def moved():
            info = dstest.slot_info(cfg.slot)
            return info and info["confirmed_flush_lsn"] and \
                dstest.lsn_to_int(info["confirmed_flush_lsn"]) >= target

        dstest.wait_for(moved, timeout, f"slot {cfg.slot} confirmed past {lsn}")


class CaptureMetricsTest(MetricsTestCase):

    def test_seconds_behind_stays_zero_on_idle_tables(self):
        # Rows before the slot exists: the initial backfill reads them.
        self.psql("INSERT INTO items SELECT g, 'old' FROM generate_series(1000, 1006) g")
        cfg, cap = self.start_metrics_capture()
        self.wait_scraped("capture")
        for i in range(20):
            self.psql(f"INSERT INTO items VALUES ({i}, 'n{i}')")
        self.psql("UPDATE items SET note = 'x' WHERE id < 5")
        p = self.prometheus
        dstest.wait_for(
            lambda: p.value('sum(dualsync_capture_messages_acknowledged_total)') == 32, 30,
            "Prometheus to see the 32 acknowledged messages")
        self.assertEqual(p.value(
            'dualsync_capture_changes_total{table="public.items",op="r"}'), 7)
        self.assertEqual(p.value('dualsync_capture_backfill_rows_total{table="public.items"}'), 7)
        self.assertEqual(p.value('dualsync_capture_backfill_rows_done{table="public.items"}'), 7)
        self.assertEqual(p.value(
            'dualsync_capture_changes_total{table="public.items",op="c"}'), 20)
        self.assertEqual(p.value(
            'dualsync_capture_changes_total{table="public.items",op="u"}'), 5)
        self.assertEqual(p.value('dualsync_capture_commit_to_ack_seconds_count'), 21)
        self.assertEqual(p.value('dualsync_capture_source_connected'), 1)
        self.assertEqual(p.value('dualsync_capture_kafka_connected'), 1)
        self.assertEqual(p.value('dualsync_capture_inflight_messages'), 0)
        # Idle from here: at least 10 scrapes, every one of them 0 (Debezium's figure would
        # grow with the age of the last event instead).
        idle_since = time.time()
        dstest.wait_for(lambda: time.time() - idle_since > 11 and p.value(
            'count_over_time(dualsync_capture_seconds_behind_source[10s])') >= 8, 60,
            "10 s of idle scrapes")
        self.assertEqual(p.value('max_over_time(dualsync_capture_seconds_behind_source[10s])'), 0)
        # The slot's size, read on a connection of its own.
        dstest.wait_for(lambda: p.value('dualsync_capture_slot_retained_wal_bytes') is not None,
                        30, "the slot's retained WAL in Prometheus")
        self.assertGreaterEqual(p.value('dualsync_capture_slot_retained_wal_bytes'), 0)
        self.assertIsNotNone(p.value('dualsync_capture_slot_confirmed_lag_bytes'))
        # Standard process metrics and the build.
        self.assertAlmostEqual(p.value('process_start_time_seconds{job="capture"}'),
                               time.time(), delta=300)
        self.assertGreater(p.value('process_resident_memory_bytes{job="capture"}'), 1e6)
        self.assertIsNotNone(p.value('process_cpu_seconds_total{job="capture"}'))
        self.assertEqual(len(p.query('dualsync_build_info{job="capture"}')), 1)
        cap.stop()

    def test_seconds_behind_and_retained_wal_grow_while_kafka_is_down(self):
        cfg, cap = self.start_metrics_capture()
        self.wait_scraped("capture")
        p = self.prometheus
        dstest.wait_for(lambda: p.value('dualsync_capture_slot_retained_wal_bytes') is not None,
                        30, "the slot's retained WAL in Prometheus")
        retained = p.value('dualsync_capture_slot_retained_wal_bytes')
        dstest.kafka_stop()
        try:
            self.psql("INSERT INTO items VALUES (1, 'while Kafka is down')")
            dstest.wait_for(lambda: (p.value('dualsync_capture_seconds_behind_source') or 0) > 3,
                            60, "seconds behind to exceed 3 s with Kafka down")
            self.assertGreaterEqual(p.value('dualsync_capture_inflight_messages'), 1)
            # Capture cannot confirm what Kafka did not take: the slot holds the new WAL.
            self.psql("INSERT INTO items SELECT g, repeat('w', 1000) "
                      "FROM generate_series(2, 4001) g")
            dstest.wait_for(lambda: (p.value('dualsync_capture_slot_retained_wal_bytes') or 0) >
                            retained + 4_000_000, 60,
                            "retained WAL to grow by 4 MB with capture stopped by the outage")
        finally:
            dstest.kafka_start()
        dstest.wait_for(lambda: self.prometheus.value(
            'dualsync_capture_seconds_behind_source') == 0, 90,
            "seconds behind to return to 0 once Kafka is back")
        cap.stop()

    def test_healthz_is_503_while_postgresql_is_stopped(self):
        cfg, cap = self.start_metrics_capture()
        status, body, _ = http_get(self.capture_port, "/healthz")
        self.assertEqual((status, body), (200, "ok\n"))
        dstest.pg_stop()
        try:
            seen = dstest.wait_for(
                lambda: (lambda r: r if r[0] == 503 else None)(http_get(self.capture_port,
                                                                        "/healthz")),
                30, "/healthz to answer 503 with PostgreSQL stopped")
            self.assertIn("source database", seen[1])
            self.assertEqual(seen[1].count("\n"), 1, f"not one line: {seen[1]!r}")
            dstest.wait_for(lambda: self.prometheus.value(
                'dualsync_capture_source_connected') == 0, 30,
                "Prometheus to see the source disconnected")
            self.assertTrue(cap.running(), cap.log_tail())
        finally:
            dstest.pg_start()
        dstest.wait_for(lambda: http_get(self.capture_port, "/healthz")[0] == 200, 90,
                        "/healthz to answer 200 once PostgreSQL is back")
        dstest.wait_for(lambda: self.prometheus.value(
            'dualsync_capture_source_connected') == 1, 30,
            "Prometheus to see the source connected again")
        cap.stop()

    def test_slow_client_does_not_stop_slot_confirmation(self):
        cfg, cap = self.start_metrics_capture()
        # Clients that send half a request and wait: each holds a connection until the
        # endpoint's 5 s timeout.
        slow = []
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", self.capture_port), timeout=30)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            slow.append(s)
        started = time.monotonic()
        try:
            # While they wait, every write is confirmed on the slot.
            for i in range(3):
                self.psql(f"INSERT INTO items VALUES ({100 + i}, 'while a client is slow')")
                self.wait_confirmed_past(cfg, dstest.current_wal_lsn(), timeout=10)
            self.assertLess(time.monotonic() - started, 5,
                            "the checks took longer than the endpoint's timeout")
            # The endpoint still answers others meanwhile.
            self.assertEqual(http_get(self.capture_port, "/healthz")[0], 200)
            # And drops the slow ones after its timeout.
            for s in slow:
                s.settimeout(20)
                self.assertEqual(s.recv(4096), b"", "a slow client was not disconnected")
            self.assertLess(time.monotonic() - started, 15)
        finally:
            for s in slow:
                s.close()
        self.assertTrue(cap.running(), cap.log_tail())
        cap.stop()

    def test_malformed_and_oversized_requests_get_errors(self):
        cfg, cap = self.start_metrics_capture()
        port = self.capture_port
        status, body, headers = http_get(port, "/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
        self.assertIn("# TYPE dualsync_capture_seconds_behind_source gauge", body)
        self.assertEqual(http_get(port, "/metrics", method="HEAD")[0], 200)
        self.assertEqual(http_get(port, "/nothing")[0], 404)
        self.assertEqual(http_get(port, "/metrics", method="POST")[0], 405)
        self.assertEqual(http_get(port, "/metrics", method="DELETE")[0], 405)
        self.assertIn(" 400 ", raw_request(port, b"NOT HTTP AT ALL\r\n\r\n"))
        self.assertIn(" 431 ", raw_request(
            port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n"))
        self.assertIn(" 414 ", raw_request(port, b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\n\r\n"))
        # Capture went on streaming through all of it.
        self.psql("INSERT INTO items VALUES (1, 'after the bad requests')")
        self.wait_confirmed_past(cfg, dstest.current_wal_lsn())
        self.assertEqual(http_get(port, "/healthz")[0], 200)
        cap.stop()

    def test_address_errors(self):
        cfg = self.capture_config(["public.items"])
        status, err = run(["capture", "--config", cfg.path, "--metrics-address", "localhost"])
        self.assertEqual(status, 2, err)
        self.assertIn('--metrics-address: "localhost" is not an address', err)
        # A port in use: the error names the address, and nothing is created on the source.
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            address = f"127.0.0.1:{busy.getsockname()[1]}"
            status, err = run(["capture", "--config", cfg.path, "--metrics-address", address])
        self.assertEqual(status, 2, err)
        self.assertIn(f"cannot serve metrics on {address}: Address already in use", err)
        self.assertIsNone(dstest.slot_info(cfg.slot))
        # In the file: a configuration error with its JSON path.
        with open(cfg.path, encoding="utf-8") as f:
            data = json.load(f)
        data["capture"]["metrics_address"] = "127.0.0.1:99999"
        with open(cfg.path, "w", encoding="utf-8") as f:
            json.dump(data, f)
        status, err = run(["capture", "--config", cfg.path])
        self.assertEqual(status, 2, err)
        self.assertIn("$.capture.metrics_address", err)



def scrape(port):
    """{(name, frozenset(labels)): value} of the endpoint's /metrics, or None if it does not
    answer (yet)."""
    try:
        status, body, _ = http_get(port, "/metrics", timeout=5)
    except OSError:
        return None
    if status != 200:
        return None
    out = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        name, _, labels = series.partition("{")
        pairs = frozenset(tuple(kv.split("=", 1)) for kv in labels.rstrip("}").split(",") if kv)
        out[(name, pairs)] = float(value)
    return out


def total(metrics, name):
    return sum(v for (n, _), v in metrics.items() if n == name)


class ApplyMetricsTest(ApplyPeopleCase):
    """Apply's metrics while it applies a backlog, scraped by Prometheus and directly."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.apply_port = free_port()
        cls.prometheus = Prometheus({"apply": f"127.0.0.1:{cls.apply_port}"})
        cls.addClassCleanup(cls.prometheus.stop)

    def test_lag_and_seconds_behind_grow_while_stopped_and_return_to_zero(self):
        model = PeopleModel(seed=97)
        cfg = self.people_apply_config(batch_max_messages=10,
                                       metrics_address=f"127.0.0.1:{self.apply_port}")
        apply = self.start_apply(cfg)
        script = model.transactions(count=5, size=20)
        self.psql(script)
        self.wait_rows(self.newdb, PEOPLE_QUERY, model.expected_people(), timeout=60)
        p = self.prometheus
        dstest.wait_for(lambda: p.value('sum(dualsync_apply_consumer_lag_messages)') == 0 and
                        p.value('dualsync_apply_seconds_behind_source{target="newdb"}') == 0,
                        30, "Prometheus to see apply caught up")
        # Every change wrote once: inserts and updates as upserts, deletes as deletes, by the
        # mapping target that wrote them.
        statements = [line.split(" ", 1)[0] for line in script.splitlines()]
        rows = 'dualsync_apply_rows_written_total{target="newdb",mapping="apply_people/people",op="%s"}'
        dstest.wait_for(lambda: p.value(rows % "upsert") ==
                        statements.count("INSERT") + statements.count("UPDATE"),
                        30, "Prometheus to count every insert and update as an upsert")
        self.assertEqual(p.value(rows % "delete"), statements.count("DELETE"))
        self.assertEqual(p.value(rows % "truncate"), 0)
        self.assertGreater(p.value('dualsync_apply_end_to_end_seconds_count'), 0)
        self.assertGreater(p.value('dualsync_apply_batches_total'), 0)
        self.assertGreaterEqual(p.value('dualsync_apply_rebalances_total'), 1)
        self.assertEqual(p.value('dualsync_apply_pending_rows{target="newdb"}'), 0)
        apply.stop()

        # A backlog while apply is stopped, older than 3 s when apply comes back.
        self.psql(model.transactions(count=100, size=20))
        written = time.time()
        lsn = dstest.current_wal_lsn()
        dstest.wait_for(lambda: dstest.lsn_to_int(dstest.slot_info(
            self.capture_cfg.slot)["confirmed_flush_lsn"]) >= dstest.lsn_to_int(lsn), 60,
            "capture to publish the backlog")
        dstest.wait_for(lambda: time.time() - written > 3, 10, "the backlog to be 3 s old")
        apply = self.start_apply(cfg, wait_ready=False)
        seen_lag, seen_behind = 0, 0

        def caught_up():
            nonlocal seen_lag, seen_behind
            m = scrape(self.apply_port)
            if not m:
                return False
            lag = total(m, "dualsync_apply_consumer_lag_messages")
            behind = total(m, "dualsync_apply_seconds_behind_source")
            seen_lag, seen_behind = max(seen_lag, lag), max(seen_behind, behind)
            return seen_lag > 0 and lag == 0 and behind == 0 and \
                ("dualsync_apply_consumer_lag_messages" in {n for n, _ in m})

        dstest.wait_for(caught_up, 120, "apply to catch up with its backlog", interval=0.05)
        self.assertGreater(seen_lag, 0)
        self.assertGreaterEqual(seen_behind, 3, "seconds behind did not show the backlog's age")
        self.wait_rows(self.newdb, PEOPLE_QUERY, model.expected_people(), timeout=60)
        dstest.wait_for(lambda: p.value('sum(dualsync_apply_consumer_lag_messages)') == 0 and
                        p.value('dualsync_apply_seconds_behind_source{target="newdb"}') == 0,
                        30, "Prometheus to see apply caught up again")
        apply.stop()

    def test_dead_letter_counter_equals_the_dead_letter_topic(self):
        cfg = self.people_apply_config(batch_max_ms=20,
                                       metrics_address=f"127.0.0.1:{self.apply_port}")
        apply = self.start_apply(cfg)
        # Kind "X" is not in the mapping's map: those two changes become dead letters.
        self.psql("INSERT INTO legacy_people VALUES (1, 'Ann', 'a@x', 'D', 1), "
                  "(2, 'Bo', 'b@x', 'X', 2), (3, 'Cy', 'c@x', 'N', 3), (4, 'Di', 'd@x', 'X', 4)")
        self.wait_rows(self.newdb, "SELECT id FROM people ORDER BY id", [("1",), ("3",)])
        in_topic = dstest.wait_for(
            lambda: sum(dstest.end_offsets([cfg.dlq_topic]).values()) == 2 and 2, 30,
            "the two dead letters in the dead-letter topic")
        p = self.prometheus
        dstest.wait_for(lambda: p.value('sum(dualsync_apply_dead_letters_total)') == in_topic,
                        30, f"Prometheus to count {in_topic} dead letters")
        self.assertEqual(p.value('dualsync_apply_dead_letters_total{target=""}'), in_topic)
        apply.stop()

    def test_healthz_is_503_while_postgresql_is_stopped(self):
        model = PeopleModel(seed=5)
        cfg = self.people_apply_config(metrics_address=f"127.0.0.1:{self.apply_port}")
        apply = self.start_apply(cfg)
        self.psql(model.transactions(count=1, size=5))
        self.wait_rows(self.newdb, PEOPLE_QUERY, model.expected_people(), timeout=60)
        self.assertEqual(http_get(self.apply_port, "/healthz")[:2], (200, "ok\n"))
        dstest.pg_stop()
        try:
            seen = dstest.wait_for(
                lambda: (lambda r: r if r[0] == 503 else None)(http_get(self.apply_port,
                                                                        "/healthz")),
                30, "apply's /healthz to answer 503 with PostgreSQL stopped")
            self.assertEqual(seen[1], 'target "newdb" is not connected\n')
            self.assertTrue(apply.running(), apply.log_tail())
        finally:
            dstest.pg_start()
        # Apply reconnects when it next has something to write.
        self.psql(model.transactions(count=1, size=5))
        self.wait_rows(self.newdb, PEOPLE_QUERY, model.expected_people(), timeout=90)
        dstest.wait_for(lambda: http_get(self.apply_port, "/healthz")[0] == 200, 30,
                        "apply's /healthz to answer 200 once it reconnected")
        apply.stop()

    def test_healthz_and_kafka_gauge_follow_a_kafka_outage(self):
        model = PeopleModel(seed=6)
        cfg = self.people_apply_config(metrics_address=f"127.0.0.1:{self.apply_port}")
        apply = self.start_apply(cfg)
        self.psql(model.transactions(count=1, size=5))
        self.wait_rows(self.newdb, PEOPLE_QUERY, model.expected_people(), timeout=60)
        p = self.prometheus
        dstest.wait_for(lambda: p.value('dualsync_apply_kafka_connected') == 1, 30,
                        "Prometheus to see apply connected to Kafka")
        dstest.kafka_stop()
        try:
            seen = dstest.wait_for(
                lambda: (lambda r: r if r[0] == 503 else None)(http_get(self.apply_port,
                                                                        "/healthz")),
                60, "apply's /healthz to answer 503 with Kafka stopped")
            self.assertEqual(seen[1], "Kafka: all brokers are down\n")
            dstest.wait_for(lambda: p.value('dualsync_apply_kafka_connected') == 0, 30,
                            "Prometheus to see apply without Kafka")
            self.assertTrue(apply.running(), apply.log_tail())
        finally:
            dstest.kafka_start()
        # Idle or not, the end of the outage shows; then changes flow again.
        dstest.wait_for(lambda: http_get(self.apply_port, "/healthz")[0] == 200, 60,
                        "apply's /healthz to answer 200 once Kafka is back")
        dstest.wait_for(lambda: p.value('dualsync_apply_kafka_connected') == 1, 30,
                        "Prometheus to see apply connected to Kafka again")
        self.psql(model.transactions(count=1, size=5))
        self.wait_rows(self.newdb, PEOPLE_QUERY, model.expected_people(), timeout=90)
        apply.stop()


class ShippedQueriesTest(dstest.ApplyTestCase):
    """Every PromQL expression the project ships (the Grafana dashboard's panels and the alert
    rules of docker/prometheus/alerts.yml) runs against a real Prometheus scraping capture and
    apply under the job names docker/prometheus/prometheus.yml gives them, and finds series: a
    query that matches nothing (a renamed metric, a wrong label) is a failure, not an empty
    panel or an alert that can never fire."""

    def test_dashboard_and_alert_queries_return_series_and_status_agrees(self):
        import yaml  # python3-yaml (scripts/setup.sh)

        docker = os.path.join(dstest.SOURCE_DIR, "docker")
        with open(os.path.join(docker, "prometheus", "alerts.yml"), encoding="utf-8") as f:
            rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
        with open(os.path.join(docker, "grafana", "dashboards", "dualsync.json"),
                  encoding="utf-8") as f:
            panels = json.load(f)["panels"]
        with open(os.path.join(docker, "prometheus", "prometheus.yml"), encoding="utf-8") as f:
            jobs = [j["job_name"] for j in yaml.safe_load(f)["scrape_configs"]]
        self.assertEqual(jobs, ["dualsync-capture", "dualsync-apply"])

        self.psql(
            "CREATE TABLE legacy_people (id int PRIMARY KEY, name text, email text, kind text, "
            "visits int)")
        newdb = self.target_database("shipped_queries")
        dstest.psql("CREATE TABLE people (id int PRIMARY KEY, full_name text, email text, "
                    "kind text NOT NULL, visits int)", db=newdb)
        capture_port, apply_port = free_port(), free_port()
        prometheus = Prometheus({"dualsync-capture": f"127.0.0.1:{capture_port}",
                                 "dualsync-apply": f"127.0.0.1:{apply_port}"})
        self.addCleanup(prometheus.stop)
        cfg = self.capture_config(["public.legacy_people"],
                                  capture={"metrics_address": f"127.0.0.1:{capture_port}"})
        self.start_capture(cfg)
        mapping = os.path.join(dstest.SOURCE_DIR, "tests", "integration", "fixtures",
                               "apply_people.json")
        apply_cfg = self.apply_config({"newdb": newdb}, [mapping], cfg.topic_prefix,
                                      apply={"metrics_address": f"127.0.0.1:{apply_port}",
                                             "batch_max_ms": 20})
        self.start_apply(apply_cfg)
        # Changes, one the mapping rejects (a dead letter: its counter gets a series).
        for i in range(5):
            self.psql("INSERT INTO legacy_people SELECT g, 'n' || g, 'e@x', 'D', g "
                      f"FROM generate_series({i * 100 + 1}, {i * 100 + 100}) g")
        self.psql("INSERT INTO legacy_people VALUES (9999, 'Bo', 'b@x', 'X', 1)")
        self.wait_rows(newdb, "SELECT count(*) FROM people", [("500",)], timeout=60)

        exprs = [(f"panel {p['title']!r}", t["expr"]) for p in panels for t in p["targets"]]
        # An alert's condition is false on a healthy pipeline, so its expression without the
        # threshold comparison is what must find series (the metrics it reads exist).
        for r in rules:
            expr = r["expr"].split(" or absent(")[0]
            for op in (" > ", " == "):
                expr = expr.split(op)[0]
            exprs.append((f"alert {r['alert']}", expr))
        empty = []

        def all_found():
            empty[:] = [(what, e) for what, e in exprs if not prometheus.query(e)]
            return not empty

        try:
            dstest.wait_for(all_found, 90, "every shipped query to return series")
        except AssertionError:
            self.fail("queries that match nothing:\n" +
                      "\n".join(f"  {what}: {e}" for what, e in empty))

        # `dualsync status`, which asks PostgreSQL and Kafka itself, tells the same story as
        # the metrics once the pipeline is idle: lag, seconds behind, pending, dead letters,
        # and (polled every 5 s by capture, so compared loosely) the slot's retained WAL.
        both = dstest.write_mapping(os.path.join(self.work_dir, "status.json"),
                                    dict(apply_cfg.data, source=cfg.data["source"]))

        def status():
            proc = dstest.run_dualsync(["status", "--config", both, "--json"])
            self.assertIn(proc.returncode, (0, 1), proc.stderr)
            return json.loads(proc.stdout)

        def agree():
            doc = status()
            (db,) = doc["databases"]
            lag = sum(p["lag_messages"] for p in doc["partitions"])
            return (lag == prometheus.value("sum(dualsync_apply_consumer_lag_messages)") == 0 and
                    db["seconds_behind"] ==
                    prometheus.value('dualsync_apply_seconds_behind_source{target="newdb"}') == 0
                    and db["pending_rows"] ==
                    prometheus.value('dualsync_apply_pending_rows{target="newdb"}') and
                    doc["dead_letter_topic"]["messages"] ==
                    prometheus.value("sum(dualsync_apply_dead_letters_total)") == 1) and doc

        doc = dstest.wait_for(agree, 60, "dualsync status and the metrics to agree")
        wal = prometheus.value("dualsync_capture_slot_retained_wal_bytes")
        self.assertTrue(doc["slot"]["active"])
        self.assertGreater(wal, 0)
        self.assertLess(abs(doc["slot"]["retained_wal_bytes"] - wal), 64 * 1024 * 1024,
                        (doc["slot"], wal))


if __name__ == "__main__":
    unittest.main()
