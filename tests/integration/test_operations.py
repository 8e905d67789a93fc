"""Operations: the admin API (health, readiness, Prometheus metrics), the systemd unit and
notification protocol, SIGHUP reload and the SIGTERM drain, all against the real daemon."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest

from harness import REPO_ROOT, CoffreTestCase, Daemon, DaemonError, gen_bytes

UNIT_FILE = os.path.join(REPO_ROOT, "config", "coffre.service")


def admin_port(daemon: Daemon, timeout: float = 30.0) -> int:
    """The port of the `admin listening on HOST:PORT` line (printed after the S3 one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(daemon.stdout_lines):
            if line.startswith("admin listening on "):
                return int(line.rsplit(":", 1)[1])
        time.sleep(0.02)
    raise AssertionError("no 'admin listening on' line\n" + daemon.diagnostics())


def admin_get(port: int, path: str, method: str = "GET"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        conn.close()


def metric_value(text: str, series: str):
    """The value of one exact series line (`name{labels}`), or None."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line[len(series) + 1:])
    return None


def write_config(directory: str, **fields) -> str:
    """A config file with the dev conveniences the harness relies on (the root key beside the
    data, created at first start; tenant dev), plus `fields`."""
    cfg = {"development": True, "create_root_key": True, "create_dev_tenant": True}
    cfg.update(fields)
    path = os.path.join(directory, "coffre.json")
    with open(path + ".tmp", "w") as f:
        json.dump(cfg, f)
    os.replace(path + ".tmp", path)
    return path


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def read_stderr(daemon: Daemon) -> str:
    with open(daemon._stderr_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


class EnvDaemon(Daemon):
    """A daemon started with extra environment variables (NOTIFY_SOCKET, WATCHDOG_USEC)."""

    def __init__(self, env: dict, **kw):
        super().__init__(**kw)
        self.extra_env = env

    def _env(self):
        env = super()._env()
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            env.pop(k, None)
        env.update(self.extra_env)
        return env


class FakeSystemd:
    """The service manager's notification socket: collects the datagrams the daemon sends."""

    def __init__(self, address: str):
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.2)
        self.messages = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.messages.append(data.decode())

    def states(self):
        """Each message as a dict of its KEY=VALUE lines."""
        return [dict(line.split("=", 1) for line in m.split("\n") if "=" in line)
                for m in list(self.messages)]

    def first(self, key: str):
        for i, s in enumerate(self.states()):
            if key in s:
                return i
        return None

    def close(self):
        self._stop = True
        self._thread.join(2)
        self.sock.close()
        if not self.address.startswith("@"):
            try:
                os.unlink(self.address)
            except OSError:
                pass


# ------------------------------------------------------------------------------------------
# Admin API
# ------------------------------------------------------------------------------------------

class AdminApiTest(CoffreTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = admin_port(cls.daemon)

    def test_admin_listener_is_separate_from_s3(self):
        self.assertNotEqual(self.admin, self.daemon.port)
        # the S3 listener does not answer admin paths as admin: it is an S3 endpoint
        status, _, _ = admin_get(self.daemon.port, "/health/live")
        self.assertNotEqual(status, 200)

    def test_live(self):
        status, headers, body = admin_get(self.admin, "/health/live")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"live\n")

    def test_ready_reports_each_check(self):
        status, headers, body = admin_get(self.admin, "/health/ready")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["content-type"], "application/json")
        doc = json.loads(body)
        self.assertEqual(doc["status"], "ready")
        self.assertEqual(doc["checks"], {"keystore": "ok", "catalog": "ok", "data_dir": "ok", "audit": "ok"})
        # the writability probe leaves nothing behind in the data directory
        self.assertEqual([n for n in os.listdir(self.daemon.data_dir) if n.startswith(".coffre-probe")], [])

    def test_unknown_path_and_method(self):
        self.assertEqual(admin_get(self.admin, "/admin/tenants")[0], 404)
        self.assertEqual(admin_get(self.admin, "/metrics", method="POST")[0], 405)

    def test_metrics_count_s3_requests_bytes_and_latency(self):
        bucket = self.new_bucket()
        payload = gen_bytes(300000, seed=5)
        _, _, before_text = admin_get(self.admin, "/metrics")
        before = before_text.decode()
        put_ok = 'coffre_s3_requests_total{operation="PutObject",status="200"}'
        get_ok = 'coffre_s3_requests_total{operation="GetObject",status="200"}'
        get_404 = 'coffre_s3_requests_total{operation="GetObject",status="404"}'
        received = 'coffre_s3_received_bytes_total{operation="PutObject"}'
        sent = 'coffre_s3_sent_bytes_total{operation="GetObject"}'
        latency = 'coffre_s3_request_duration_seconds_count{operation="PutObject"}'
        base = {s: metric_value(before, s) or 0 for s in (put_ok, get_ok, get_404, received, sent, latency)}

        # a plain signed PUT: the body on the wire is the payload itself (no aws-chunked framing)
        self.assertEqual(self.daemon.request("PUT", f"/{bucket}/k", body=payload).status, 200)
        self.assertEqual(self.get_bytes(bucket, "k"), payload)
        r = self.daemon.request("GET", f"/{bucket}/absent")
        self.assertEqual(r.status, 404)

        # a request is counted when its handler returns, just after the client has its answer
        scrape = {}

        def counted():
            scrape["status"], scrape["headers"], body = admin_get(self.admin, "/metrics")
            scrape["text"] = body.decode()
            return all((metric_value(scrape["text"], s) or 0) > base[s] for s in (put_ok, get_ok, get_404, latency))

        self.assertTrue(wait_for(counted), scrape.get("text"))
        self.assertEqual(scrape["status"], 200)
        self.assertTrue(scrape["headers"]["content-type"].startswith("text/plain; version=0.0.4"))
        text = scrape["text"]
        self.assertEqual(metric_value(text, put_ok) - base[put_ok], 1, text)
        self.assertEqual(metric_value(text, get_ok) - base[get_ok], 1, text)
        self.assertEqual(metric_value(text, get_404) - base[get_404], 1, text)
        self.assertEqual(metric_value(text, received) - base[received], len(payload), text)
        # the object, then the 404's error document
        self.assertEqual(metric_value(text, sent) - base[sent], len(payload) + len(r.body), text)
        self.assertEqual(metric_value(text, latency) - base[latency], 1, text)
        self.assertIn("# TYPE coffre_s3_request_duration_seconds histogram", text)
        self.assertIsNotNone(metric_value(
            text, 'coffre_s3_request_duration_seconds_bucket{operation="PutObject",le="+Inf"}'))
        self.assertRegex(text, r'coffre_build_info\{version="[0-9.]+"\} 1\n')
        self.assertGreater(metric_value(text, "coffre_data_dir_free_bytes"), 0)
        self.assertIsNotNone(metric_value(text, 'coffre_http_open_connections{listener="s3"}'))
        # the PUT and the GET each used a data key: each left a durable audit record
        self.assertGreaterEqual(metric_value(text, "coffre_audit_records_written_total"), 2)
        self.assertEqual(metric_value(text, "coffre_audit_write_failures_total"), 0)
        self.assertEqual(metric_value(text, "coffre_audit_healthy"), 1)
        # the scrape itself is an open admin connection
        self.assertGreaterEqual(metric_value(text, 'coffre_http_open_connections{listener="admin"}'), 1)

    def test_metrics_count_encryption_and_key_operations(self):
        bucket = self.new_bucket()
        payload = gen_bytes(200000, seed=7)
        wrap_ok = 'coffre_key_operations_total{operation="wrap",outcome="ok"}'
        unwrap_ok = 'coffre_key_operations_total{operation="unwrap",outcome="ok"}'
        unwrap_error = 'coffre_key_operations_total{operation="unwrap",outcome="error"}'
        series = ("coffre_encrypted_bytes_total", "coffre_decrypted_bytes_total", wrap_ok, unwrap_ok, unwrap_error)
        _, _, before_text = admin_get(self.admin, "/metrics")
        before = before_text.decode()
        for name in series:  # every series is there from the start, errors at 0 included
            self.assertIsNotNone(metric_value(before, name), name)
        base = {name: metric_value(before, name) for name in series}

        self.assertEqual(self.daemon.request("PUT", f"/{bucket}/enc", body=payload).status, 200)
        self.assertEqual(self.get_bytes(bucket, "enc"), payload)
        _, _, body = admin_get(self.admin, "/metrics")
        text = body.decode()
        delta = {name: metric_value(text, name) - base[name] for name in series}
        self.assertEqual(delta["coffre_encrypted_bytes_total"], len(payload), text)
        self.assertEqual(delta["coffre_decrypted_bytes_total"], len(payload), text)
        self.assertEqual(delta[wrap_ok], 1, text)
        self.assertEqual(delta[unwrap_ok], 1, text)
        self.assertEqual(delta[unwrap_error], 0, text)

        # an altered wrapped key in the catalog: the unwrap fails, is counted, nothing is decrypted
        db = sqlite3.connect(os.path.join(self.daemon.data_dir, "catalog.db"), timeout=10)
        with db:
            (wrapped,) = db.execute("SELECT wrapped_key FROM objects WHERE key = 'enc'").fetchone()
            altered = bytes([wrapped[0] ^ 1]) + bytes(wrapped[1:])
            db.execute("UPDATE objects SET wrapped_key = ? WHERE key = 'enc'", (altered,))
        db.close()
        r = self.daemon.request("GET", f"/{bucket}/enc")
        self.assertGreaterEqual(r.status, 500, r.body)
        _, _, body = admin_get(self.admin, "/metrics")
        after = body.decode()
        self.assertEqual(metric_value(after, unwrap_error) - base[unwrap_error], 1, after)
        self.assertEqual(metric_value(after, "coffre_decrypted_bytes_total"),
                         metric_value(text, "coffre_decrypted_bytes_total"))
        # a ranged read decrypts only the segments it needs
        self.assertEqual(self.daemon.request("PUT", f"/{bucket}/ranged", body=payload).status, 200)
        r = self.daemon.request("GET", f"/{bucket}/ranged", headers={"Range": "bytes=0-9"})
        self.assertEqual(r.status, 206)
        _, _, body = admin_get(self.admin, "/metrics")
        ranged = body.decode()
        self.assertEqual(metric_value(ranged, "coffre_decrypted_bytes_total") -
                         metric_value(after, "coffre_decrypted_bytes_total"), 65536, ranged)

    def test_requests_refused_before_routing_are_counted(self):
        r = self.daemon.unsigned("GET", "/%ZZ")
        series = re.compile(r'coffre_s3_requests_total\{operation="Unrouted",status="%d"\} [1-9]' % r.status)
        self.assertTrue(wait_for(lambda: series.search(admin_get(self.admin, "/metrics")[2].decode())))

    def test_metrics_carry_no_secrets(self):
        self.s3.list_buckets()
        _, _, body = admin_get(self.admin, "/metrics")
        text = body.decode()
        self.assertNotIn(self.daemon.secret_key, text)
        self.assertNotIn(self.daemon.access_key, text)
        self.assertNotIn("Signature", text)


class ReadinessFailureTest(unittest.TestCase):

    def test_not_ready_below_min_free_space(self):
        tmp = tempfile.mkdtemp(prefix="coffre-it-")
        # 1 TiB free is more than this machine has: readiness must fail and say why
        cfg = write_config(tmp, min_free_megabytes=1024 * 1024)
        with Daemon(extra_args=["--config", cfg], tmp=tmp) as d:
            status, _, body = admin_get(admin_port(d), "/health/ready")
            self.assertEqual(status, 503, body)
            doc = json.loads(body)
            self.assertEqual(doc["status"], "not ready")
            self.assertIn("min_free_megabytes", doc["checks"]["data_dir"])
            self.assertEqual(doc["checks"]["keystore"], "ok")
            # liveness is unaffected
            self.assertEqual(admin_get(admin_port(d), "/health/live")[0], 200)

    def test_admin_port_in_use_fails_start_clearly(self):
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        try:
            d = Daemon(extra_args=["--admin-listen", f"127.0.0.1:{port}"])
            try:
                # both listeners are bound before either is announced: no 'listening on' line
                with self.assertRaises(DaemonError):
                    d.start()
                self.assertNotEqual(d.proc.returncode, 0)
                self.assertFalse(any("listening on" in line for line in d.stdout_lines))
                self.assertIn(f"cannot listen on 127.0.0.1:{port} (admin_listen)", d.stderr_tail())
            finally:
                d.stop(check=False)
                d.cleanup()
        finally:
            blocker.close()

    def test_admin_listener_can_be_disabled(self):
        tmp = tempfile.mkdtemp(prefix="coffre-it-")
        cfg = write_config(tmp, admin_listen="")
        with Daemon(extra_args=["--config", cfg], tmp=tmp) as d:
            d.client().list_buckets()
            self.assertFalse(any(line.startswith("admin listening on") for line in d.stdout_lines))

    def test_bad_admin_listen_in_config_names_the_field(self):
        tmp = tempfile.mkdtemp(prefix="coffre-it-")
        try:
            cfg = write_config(tmp, admin_listen="localhost")
            p = subprocess.run([Daemon().binary, "serve", "--config", cfg, "--data-dir",
                                os.path.join(tmp, "data")], capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"'admin_listen'", p.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class RootKeyPlacementTest(unittest.TestCase):
    """A root key inside data_dir travels with every copy or snapshot of the data directory, which
    then decrypts on its own: outside the development config the daemon refuses to start."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="coffre-it-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.data_dir = os.path.join(self.tmp, "data")
        self.binary = Daemon().binary
        # An operator's config: no development conveniences.
        self.config = os.path.join(self.tmp, "coffre.json")

    def serve(self, **fields):
        with open(self.config, "w") as f:
            json.dump({"admin_listen": "", **fields}, f)
        return subprocess.run([self.binary, "serve", "--config", self.config, "--data-dir", self.data_dir,
                               "--listen", "127.0.0.1:0"], stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=30)

    def key_file(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        p = subprocess.run([self.binary, "keystore", "init", "--root-key-file", path], capture_output=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        return path

    def assert_refused(self, p, key_path):
        self.assertEqual(p.returncode, 1, p.stderr)
        err = p.stderr.decode()
        self.assertIn("inside data_dir", err)
        self.assertIn(key_path, err)
        self.assertIn("/etc/coffre/root.key", err)   # where to put it instead
        self.assertIn("LoadCredential", err)
        self.assertNotIn(b"listening on", p.stdout)
        # refused before anything was created or opened in the data directory
        self.assertFalse(os.path.exists(os.path.join(self.data_dir, "keystore.db")))

    def test_default_key_place_is_refused(self):
        # The default root_key_file is <data_dir>/root.key, even when the daemon would create it.
        for fields in ({}, {"create_root_key": True, "create_dev_tenant": True}):
            with self.subTest(fields=fields):
                p = self.serve(**fields)
                self.assert_refused(p, os.path.join(self.data_dir, "root.key"))

    def test_key_inside_data_dir_by_any_path_is_refused(self):
        inside = self.key_file(os.path.join(self.data_dir, "keys", "root.key"))
        link = os.path.join(self.tmp, "looks-outside.key")
        os.symlink(inside, link)
        os.makedirs(os.path.join(self.tmp, "etc"))
        dotdot = os.path.join(self.tmp, "etc", "..", "data", "keys", "root.key")
        for path in (inside, link, dotdot):
            with self.subTest(path=path):
                self.assert_refused(self.serve(root_key_file=path), path)
        # A data directory reached through a symlink is the same directory.
        data_link = os.path.join(self.tmp, "data-link")
        os.symlink(self.data_dir, data_link)
        self.data_dir = data_link
        self.assert_refused(self.serve(root_key_file=inside), inside)

    def started(self, extra_args=()):
        """Starts a daemon on self.tmp, lists buckets, stops it (exit 0); the directory stays."""
        d = Daemon(extra_args=list(extra_args), tmp=self.tmp)
        try:
            d.start()
            d.client().list_buckets()
        finally:
            d.stop(check=True)

    def test_key_outside_data_dir_starts(self):
        outside = self.key_file(os.path.join(self.tmp, "etc", "root.key"))
        with open(self.config, "w") as f:
            json.dump({"admin_listen": "", "root_key_file": outside, "create_dev_tenant": True}, f)
        self.started(["--config", self.config])
        # a directory whose name merely starts like the data directory's is outside it
        shutil.rmtree(self.data_dir)
        sibling = self.key_file(os.path.join(self.tmp, "data-keys", "root.key"))
        with open(self.config, "w") as f:
            json.dump({"admin_listen": "", "root_key_file": sibling, "create_dev_tenant": True}, f)
        self.started(["--config", self.config])

    def test_development_config_keeps_the_key_in_data_dir(self):
        # `make run`: the embedded development config (no --config) keeps ./var/root.key.
        self.started()
        self.assertTrue(os.path.exists(os.path.join(self.data_dir, "root.key")))
        # A config file may ask for the same, explicitly.
        with open(self.config, "w") as f:
            json.dump({"admin_listen": "", "development": True, "create_root_key": True,
                       "create_dev_tenant": True}, f)
        self.started(["--config", self.config])

    def test_keystore_init_refuses_to_put_the_key_in_data_dir(self):
        with open(self.config, "w") as f:
            json.dump({"admin_listen": ""}, f)
        p = subprocess.run([self.binary, "keystore", "init", "--config", self.config, "--data-dir", self.data_dir],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"inside data_dir", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.data_dir, "root.key")))
        self.assertFalse(os.path.exists(os.path.join(self.data_dir, "keystore.db")))
        outside = os.path.join(self.tmp, "root.key")
        p = subprocess.run([self.binary, "keystore", "init", "--config", self.config, "--data-dir", self.data_dir,
                            "--root-key-file", outside], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.data_dir, "keystore.db")))


# ------------------------------------------------------------------------------------------
# systemd
# ------------------------------------------------------------------------------------------

@unittest.skipUnless(shutil.which("systemd-analyze"),
                     "systemd-analyze is not installed (Debian package 'systemd')")
class SystemdUnitTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="coffre-unit-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        # verify checks that ExecStart's binary exists: point it at the one under test
        with open(UNIT_FILE) as f:
            text = f.read()
        self.unit_text = text
        self.unit = os.path.join(self.tmp, "coffre.service")
        with open(self.unit, "w") as f:
            f.write(text.replace("/usr/bin/coffre", Daemon().binary))

    def test_verify(self):
        p = subprocess.run(["systemd-analyze", "verify", self.unit], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(p.stderr.decode().strip(), "", "verify warnings")

    def test_security_exposure_at_most_2_0(self):
        p = subprocess.run(["systemd-analyze", "security", "--offline=true", self.unit],
                           capture_output=True, timeout=60)
        out = p.stdout.decode()
        m = re.search(r"Overall exposure level for coffre\.service: ([0-9.]+)", out)
        self.assertIsNotNone(m, out + p.stderr.decode())
        self.assertLessEqual(float(m.group(1)), 2.0, out)
        # the same bound, as systemd-analyze itself enforces it (threshold in tenths)
        p = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=20",
                            self.unit], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout.decode()[-2000:])

    def test_required_directives(self):
        lines = {line.strip() for line in self.unit_text.splitlines()}
        for directive in ["Type=notify", "NotifyAccess=main", "User=coffre", "Group=coffre",
                          "StateDirectory=coffre", "LoadCredential=root.key:/etc/coffre/root.key",
                          "ExecReload=/bin/kill -HUP $MAINPID", "WatchdogSec=30",
                          "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                          "PrivateDevices=yes", "NoNewPrivileges=yes", "CapabilityBoundingSet=",
                          "MemoryDenyWriteExecute=yes", "SystemCallFilter=@system-service",
                          "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "LimitCORE=0"]:
            self.assertIn(directive, lines)


class NotifyProtocolTest(unittest.TestCase):

    def run_daemon_under_fake_systemd(self, address: str):
        systemd = FakeSystemd(address)
        self.addCleanup(systemd.close)
        d = EnvDaemon({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"})
        d.start()
        try:
            # READY=1 comes once the listeners are bound: both ports answer by then
            self.assertTrue(wait_for(lambda: systemd.first("READY") is not None), d.diagnostics())
            ready = systemd.states()[systemd.first("READY")]
            self.assertEqual(ready["READY"], "1")
            self.assertEqual(ready["MAINPID"], str(d.proc.pid))
            self.assertIn(f"127.0.0.1:{d.port}", ready["STATUS"])
            self.assertEqual(admin_get(admin_port(d), "/health/live")[0], 200)
            # WATCHDOG=1 every 200 ms (half of WATCHDOG_USEC)
            self.assertTrue(wait_for(
                lambda: sum(1 for s in systemd.states() if s.get("WATCHDOG") == "1") >= 3, 5),
                systemd.messages)
            # SIGHUP: RELOADING=1 (with MONOTONIC_USEC) then READY=1 again
            n = len(systemd.messages)
            d.proc.send_signal(signal.SIGHUP)
            self.assertTrue(wait_for(lambda: any("READY" in s for s in systemd.states()[n:]
                                                 if "RELOADING" not in s)), systemd.messages)
            after = [s for s in systemd.states()[n:] if "WATCHDOG" not in s]
            self.assertEqual(after[0].get("RELOADING"), "1", after)
            self.assertRegex(after[0].get("MONOTONIC_USEC", ""), r"^[0-9]+$")
            self.assertEqual(after[1].get("READY"), "1", after)
        finally:
            self.assertEqual(d.stop(check=False), 0, d.diagnostics())
            d.cleanup()
        # STOPPING=1 on SIGTERM, and it is the last state but for watchdog pings
        self.assertTrue(wait_for(lambda: systemd.first("STOPPING") is not None), systemd.messages)
        non_watchdog = [s for s in systemd.states() if "WATCHDOG" not in s]
        self.assertEqual(non_watchdog[-1].get("STOPPING"), "1", non_watchdog)

    def test_path_socket(self):
        path = os.path.join(tempfile.gettempdir(), f"coffre-notify-{os.getpid()}.sock")
        if os.path.exists(path):
            os.unlink(path)
        self.run_daemon_under_fake_systemd(path)

    def test_abstract_socket(self):
        self.run_daemon_under_fake_systemd(f"@coffre-notify-{os.getpid()}-{time.time_ns()}")

    def test_no_ready_when_start_fails(self):
        address = f"@coffre-notify-fail-{os.getpid()}-{time.time_ns()}"
        systemd = FakeSystemd(address)
        self.addCleanup(systemd.close)
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        self.addCleanup(blocker.close)
        d = EnvDaemon({"NOTIFY_SOCKET": address},
                      extra_args=["--admin-listen", f"127.0.0.1:{blocker.getsockname()[1]}"])
        try:
            with self.assertRaises(DaemonError):
                d.start()
            d.proc.wait(20)
            self.assertNotEqual(d.proc.returncode, 0)
        finally:
            d.stop(check=False)
            d.cleanup()
        time.sleep(0.2)
        self.assertIsNone(systemd.first("READY"), systemd.messages)


class AccessLogTest(unittest.TestCase):

    def test_one_escaped_line_per_request_and_no_secrets(self):
        tmp = tempfile.mkdtemp(prefix="coffre-it-")
        cfg = write_config(tmp, access_log=True)
        with Daemon(extra_args=["--config", cfg], tmp=tmp) as d:
            s3 = d.client()
            s3.create_bucket(Bucket="logged")
            key = 'evil\n[FAKE] access status=200 "quoted"'
            s3.put_object(Bucket="logged", Key=key, Body=b"x" * 1234)
            r = d.request("GET", "/logged/absent")
            self.assertEqual(r.status, 404)
            request_id = r.headers["x-amz-request-id"]
            # a line is written once its request's handler has returned, which may be after the
            # client has its answer, so after the next request's line
            self.assertTrue(wait_for(lambda: f"[{request_id}] access" in read_stderr(d) and
                                     "operation=PutObject" in read_stderr(d)), d.diagnostics())
            log = read_stderr(d)
            lines = [line for line in log.splitlines() if "] access method=" in line]
            put = [line for line in lines if "operation=PutObject" in line]
            self.assertEqual(len(put), 1, lines)
            self.assertIn('bucket="logged" key="evil\\n[FAKE] access status=200 \\"quoted\\""', put[0])
            self.assertIn("status=200 bytes_in=", put[0])
            self.assertRegex(put[0], r"duration_us=[0-9]+ tenant=\S+$")
            self.assertFalse(any(line.startswith("[FAKE]") for line in log.splitlines()))
            miss = [line for line in lines if f"[{request_id}]" in line]
            self.assertEqual(len(miss), 1)
            self.assertIn('operation=GetObject bucket="logged" key="absent" status=404', miss[0])
            self.assertNotIn(d.secret_key, log)
            self.assertNotIn("Signature=", log)

    def test_off_by_default(self):
        with Daemon() as d:
            d.client().list_buckets()
            time.sleep(0.2)
            self.assertNotIn("] access method=", read_stderr(d))


# ------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------

EXAMPLE_CONFIG = os.path.join(REPO_ROOT, "config", "coffre.example.json")
OPERATIONS_DOC = os.path.join(REPO_ROOT, "docs", "OPERATIONS.md")


class ConfigCheckTest(unittest.TestCase):

    def check(self, text: str):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write(text)
        self.addCleanup(os.unlink, f.name)
        p = subprocess.run([Daemon().binary, "config", "check", f.name], capture_output=True, timeout=30)
        return p.returncode, p.stdout.decode() + p.stderr.decode()

    def test_example_config_is_valid(self):
        p = subprocess.run([Daemon().binary, "config", "check", EXAMPLE_CONFIG], capture_output=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"valid", p.stdout)

    def test_every_field_of_the_example_is_documented(self):
        with open(EXAMPLE_CONFIG) as f:
            text = re.sub(r"^\s*//.*$", "", f.read(), flags=re.M)
        fields = json.loads(text).keys()
        with open(OPERATIONS_DOC) as f:
            doc = f.read()
        for field in fields:
            self.assertIn(f"| `{field}` |", doc, f"{field} is not in the table of docs/OPERATIONS.md")

    def test_bad_fields_are_named_with_allowed_values(self):
        cases = [
            ('{"log_level": "loud"}', "'log_level' must be one of trace, debug, info, warn, error"),
            ('{"drain_timeout_seconds": 0}', "'drain_timeout_seconds' must be an integer from 1 to 3600"),
            ('{"min_free_megabytes": "many"}', "'min_free_megabytes' must be an integer from 0 to"),
            ('{"admin_listen": "9001"}', "'admin_listen'"),
            ('{"listen": "localhost:99999"}', "port must be a number 0-65535"),
            ('{"max_connections": -1}', "'max_connections' must be an integer"),
            ('{"create_root_key": "yes"}', "'create_root_key' must be true or false"),
            ('{"sigv2": "yes"}', "'sigv2' must be true or false"),
            ('{"lisen": "127.0.0.1:9000"}', "unknown field 'lisen'"),
            ('{"listen": ', "not valid JSON"),
        ]
        for text, message in cases:
            with self.subTest(text=text):
                code, out = self.check(text)
                self.assertEqual(code, 1, out)
                self.assertIn(message, out)

    def test_unreadable_file(self):
        p = subprocess.run([Daemon().binary, "config", "check", "/nonexistent/coffre.json"],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"/nonexistent/coffre.json", p.stderr)


# ------------------------------------------------------------------------------------------
# Signals
# ------------------------------------------------------------------------------------------

class ReloadTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="coffre-it-")
        self.cfg = write_config(self.tmp, log_level="info")
        self.d = Daemon(extra_args=["--config", self.cfg], tmp=self.tmp)
        self.d.start()

    def tearDown(self):
        try:
            self.assertEqual(self.d.stop(check=False), 0, self.d.diagnostics())
        finally:
            self.d.cleanup()

    def hangup_and_wait(self, marker: str):
        before = read_stderr(self.d).count(marker)
        self.d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: read_stderr(self.d).count(marker) > before),
                        self.d.diagnostics())

    def test_sighup_applies_log_level(self):
        s3 = self.d.client()
        s3.list_buckets()
        self.assertNotIn("ListBuckets", read_stderr(self.d))  # per-request lines are debug
        write_config(self.tmp, log_level="debug")
        self.hangup_and_wait("configuration reloaded (log_level=debug")
        s3.list_buckets()
        self.assertTrue(wait_for(lambda: "ListBuckets" in read_stderr(self.d)), self.d.diagnostics())

    def test_invalid_config_is_rejected_and_the_old_one_stays(self):
        with open(self.cfg, "w") as f:
            f.write('{"create_root_key": true, "create_dev_tenant": true, "log_level": "loud"}')
        self.hangup_and_wait("configuration rejected")
        self.assertIn("'log_level' must be one of", read_stderr(self.d))
        with open(self.cfg, "w") as f:
            f.write('{"no_such_setting": 1}')
        self.hangup_and_wait("configuration rejected")
        self.assertIn("unknown field 'no_such_setting'", read_stderr(self.d))
        with open(self.cfg, "w") as f:
            f.write('{"not json')
        self.hangup_and_wait("configuration rejected")
        # still serving, with the old settings
        self.assertTrue(self.d.alive)
        self.d.client().list_buckets()
        self.assertNotIn("ListBuckets", read_stderr(self.d))

    def test_settings_bound_at_start_are_kept_with_a_warning(self):
        write_config(self.tmp, region="eu-west-3")
        self.hangup_and_wait("configuration reloaded")
        self.assertIn("'region' changes only at restart", read_stderr(self.d))
        self.d.client().list_buckets()  # still signing with us-east-1

    def test_limits_reload_applies_to_new_connections(self):
        write_config(self.tmp, max_header_bytes=1024)
        self.hangup_and_wait("max_header_bytes=1024")
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=10)
        conn.request("GET", "/", headers={"X-Big": "a" * 3000})
        self.assertEqual(conn.getresponse().status, 431)
        conn.close()


class DrainTest(unittest.TestCase):

    def start(self, **fields) -> Daemon:
        tmp = tempfile.mkdtemp(prefix="coffre-it-")
        cfg = write_config(tmp, **fields)
        d = Daemon(extra_args=["--config", cfg], tmp=tmp)
        d.start()
        self.addCleanup(d.cleanup)
        self.addCleanup(d.stop, False)
        return d

    def begin_put(self, d: Daemon, bucket: str, key: str, payload: bytes, sent: int):
        """A signed PUT whose body is sent only up to `sent` bytes, once the daemon holds its
        connection (one still in the listen queue is not in flight). The caller has closed its
        clients: their keep-alive connections, closing while this one opens, would blur the count."""
        port = admin_port(d)
        series = 'coffre_http_open_connections{listener="s3"}'

        def open_connections():
            return metric_value(admin_get(port, "/metrics")[2].decode(), series)

        self.assertTrue(wait_for(lambda: open_connections() == 0), d.diagnostics())
        req = d.sign("PUT", f"/{bucket}/{key}", body=payload)
        sock = socket.create_connection(("127.0.0.1", d.port), timeout=30)
        head = [f"PUT {req.target} HTTP/1.1"] + [f"{k}: {v}" for k, v in req.headers.items()]
        head.append(f"Content-Length: {len(payload)}")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload[:sent])
        self.assertTrue(wait_for(lambda: open_connections() == 1), d.diagnostics())
        return sock

    def test_in_flight_request_completes_after_sigterm(self):
        d = self.start(drain_timeout_seconds=30)
        s3 = d.client()
        s3.create_bucket(Bucket="drain")
        s3.close()
        payload = gen_bytes(2 * 1024 * 1024, seed=9)
        sock = self.begin_put(d, "drain", "in-flight", payload, 1024 * 1024)
        time.sleep(0.3)  # and reads some of the body
        d.proc.send_signal(signal.SIGTERM)
        # the listener is closed just after this line, in the same step of the daemon's loop
        self.assertTrue(wait_for(lambda: "draining connections (up to 30s)" in read_stderr(d), 30),
                        d.diagnostics())
        time.sleep(0.2)
        self.assertTrue(d.alive, "the daemon waits for the request in flight")
        # no new connection is served once draining
        with self.assertRaises(OSError):
            c = socket.create_connection(("127.0.0.1", d.port), timeout=2)
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            if not c.recv(1):
                raise ConnectionResetError("closed")
        sock.sendall(payload[1024 * 1024:])
        response = sock.recv(65536).decode("latin-1")
        self.assertTrue(response.startswith("HTTP/1.1 200"), response)
        sock.close()
        d.proc.wait(20)
        self.assertEqual(d.proc.returncode, 0, d.diagnostics())
        # the object is durable: a restart on the same data serves it
        d2 = Daemon(tmp=d.tmp)
        d2.start()
        self.addCleanup(d2.stop, False)
        self.assertEqual(d2.client().get_object(Bucket="drain", Key="in-flight")["Body"].read(), payload)

    def test_drain_deadline_is_configurable(self):
        d = self.start(drain_timeout_seconds=1)
        s3 = d.client()
        s3.create_bucket(Bucket="stall")
        s3.close()
        sock = self.begin_put(d, "stall", "never-finished", gen_bytes(100000, seed=1), 1000)
        self.addCleanup(sock.close)
        time.sleep(0.3)
        started = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(25)
        # far below the 30 s default, with room for a slow (sanitized) build to exit
        self.assertLess(time.monotonic() - started, 15, "stopped at the 1 s deadline, not later")
        self.assertEqual(d.proc.returncode, 0, d.diagnostics())


# ------------------------------------------------------------------------------------------
# JSON log lines
# ------------------------------------------------------------------------------------------

ISO_MS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class JsonLogTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="coffre-it-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def parse_lines(self, text: str):
        records = []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                self.fail(f"not a JSON line: {line!r}")
            self.assertIsInstance(record, dict, line)
            self.assertRegex(record["time"], ISO_MS_UTC)
            self.assertIn(record["level"], ("trace", "debug", "info", "warn", "error", "critical"))
            self.assertIsInstance(record["message"], str)
            records.append(record)
        return records

    def test_every_line_is_json_and_access_lines_carry_the_request_id(self):
        cfg = write_config(self.tmp, access_log=True, log_format="json", log_level="debug")
        d = Daemon(extra_args=["--config", cfg], tmp=self.tmp)
        d.start()
        try:
            s3 = d.client()
            seen = [s3.create_bucket(Bucket="jsonlog")["ResponseMetadata"]["RequestId"]]
            seen.append(s3.put_object(Bucket="jsonlog", Key='evil\n{"level":"error"}', Body=b"y" * 100)
                        ["ResponseMetadata"]["RequestId"])
            req = d.sign("GET", "/jsonlog/absent")
            signature = req.headers["Authorization"].split("Signature=", 1)[1]
            r = d.send(req)
            self.assertEqual(r.status, 404)
            seen.append(r.headers["x-amz-request-id"])
            bad = d.request("GET", "/jsonlog", creds={"access_key_id": d.access_key,
                                                      "secret_access_key": "wrong-secret-key-00000000000000000"})
            self.assertEqual(bad.status, 403)
            seen.append(bad.headers["x-amz-request-id"])
            self.assertTrue(wait_for(lambda: all(i in read_stderr(d) for i in seen)), d.diagnostics())
        finally:
            self.assertEqual(d.stop(check=False), 0, d.diagnostics())
        log = read_stderr(d)
        records = self.parse_lines(log)
        self.assertTrue(any("listening on" in r["message"] for r in records))
        self.assertTrue(any(r["message"] == "coffre stopped" for r in records))
        access = [r for r in records if r["message"].startswith("access method=")]
        self.assertEqual(sorted(r.get("request_id") for r in access), sorted(seen))
        for r in access:
            self.assertEqual(r["level"], "info")
        put = [r for r in access if "operation=PutObject" in r["message"]]
        self.assertEqual(len(put), 1)
        self.assertIn('key="evil\\n{\\"level\\":\\"error\\"}"', put[0]["message"])
        # debug lines about a request carry its id too, never as text in the message
        about_requests = [r for r in records if "request_id" in r]
        self.assertGreater(len(about_requests), len(access))
        for r in records:
            self.assertFalse(r["message"].startswith("["), r)
        self.assertNotIn(d.secret_key, log)
        self.assertNotIn(signature, log)
        self.assertNotIn("Signature=", log)
        self.assertNotIn("wrong-secret-key", log)

    def test_log_format_reloads_on_sighup(self):
        cfg = write_config(self.tmp, log_format="json")
        d = Daemon(extra_args=["--config", cfg], tmp=self.tmp)
        d.start()
        try:
            self.parse_lines(read_stderr(d))
            write_config(self.tmp, log_format="text")
            d.proc.send_signal(signal.SIGHUP)
            self.assertTrue(wait_for(lambda: "] [info] SIGHUP: configuration reloaded" in read_stderr(d)),
                            d.diagnostics())
            write_config(self.tmp, log_format="xml")
            d.proc.send_signal(signal.SIGHUP)
            self.assertTrue(wait_for(lambda: "'log_format' must be \"text\" or \"json\"" in read_stderr(d)),
                            d.diagnostics())
        finally:
            self.assertEqual(d.stop(check=False), 0, d.diagnostics())


if __name__ == "__main__":
    unittest.main()
