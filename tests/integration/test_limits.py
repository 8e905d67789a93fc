"""Protection against misuse of one data directory and of the S3 listener, against the real
daemon: the data-directory lock (a second `coffre serve`, `fsck --repair` beside a daemon), a data
directory on a read-only file system, and per-tenant request rate limits (SlowDown 503)."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from botocore.exceptions import ClientError

from harness import Daemon, coffre_binary, read_raw_http_response
from test_disk_full import unshare_allowed
from test_operations import FakeSystemd, admin_get, admin_port, metric_value, read_stderr, wait_for, write_config


class DataDirLockTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="coffre-it-")
        self.d = Daemon(tmp=self.tmp)
        self.d.start()

    def tearDown(self):
        self.d.stop(check=False)
        self.d.cleanup()

    def test_second_daemon_on_the_same_data_dir_refuses_before_listening(self):
        address = f"@coffre-notify-lock-{os.getpid()}-{time.time_ns()}"
        systemd = FakeSystemd(address)
        self.addCleanup(systemd.close)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["NOTIFY_SOCKET"] = address
        p = subprocess.run([self.d.binary, "serve", "--data-dir", self.d.data_dir, "--listen", "127.0.0.1:0"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30, env=env)
        self.assertNotEqual(p.returncode, 0)
        err = p.stderr.decode()
        self.assertIn(self.d.data_dir, err)
        self.assertIn(f"pid {self.d.proc.pid}", err)
        self.assertNotIn(b"listening on", p.stdout)
        time.sleep(0.2)
        self.assertEqual(systemd.messages, [])
        # the first daemon is untouched
        self.assertTrue(self.d.alive)
        self.d.client().list_buckets()

    def test_admin_commands_run_beside_the_daemon(self):
        creds = self.d.create_tenant("beside")
        self.d.client_for(creds).list_buckets()
        p = self.d.run_cli("fsck", "--data-dir", self.d.data_dir, "--json")
        self.assertTrue(json.loads(p.stdout)["clean"])

    def test_fsck_repair_refuses_while_the_daemon_runs(self):
        p = self.d.run_cli("fsck", "--repair", "--data-dir", self.d.data_dir, check=False)
        self.assertNotEqual(p.returncode, 0)
        err = p.stderr.decode()
        self.assertIn("fsck --repair refused", err)
        self.assertIn(f"pid {self.d.proc.pid}", err)
        self.assertIn("stop the daemon first", err)
        self.assertEqual(p.stdout, b"")

    def test_lock_is_released_at_exit_even_after_sigkill(self):
        self.d.proc.kill()
        self.d.proc.wait(10)
        self.d.stop(check=False)
        p = self.d.run_cli("fsck", "--repair", "--min-age", "0", "--data-dir", self.d.data_dir, "--json")
        self.assertTrue(json.loads(p.stdout)["clean"], p.stdout)
        self.d = Daemon(tmp=self.tmp)  # the same data directory
        self.d.start()
        self.d.client().list_buckets()


@unittest.skipUnless(unshare_allowed(), "no private mount namespace (unshare -m) allowed here")
class ReadOnlyDataDirTest(unittest.TestCase):
    """A data directory on a read-only file system (a read-only bind mount in a private mount
    namespace): `coffre serve` says so and exits non-zero before it listens or tells systemd it is
    ready, whether the directory holds a store already or is still to be created."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="coffre-it-ro-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def serve_read_only(self, mount_point: str, data_dir: str):
        address = f"@coffre-notify-ro-{os.getpid()}-{time.time_ns()}"
        systemd = FakeSystemd(address)
        self.addCleanup(systemd.close)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["NOTIFY_SOCKET"] = address
        script = ('mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"')
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", mount_point,
                            coffre_binary(), "serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60, env=env)
        time.sleep(0.2)
        self.assertEqual(systemd.messages, [], "READY=1 (or anything) sent by a daemon that cannot start")
        self.assertNotIn(b"listening on", p.stdout)
        return p

    def test_existing_store_on_a_read_only_file_system(self):
        first = Daemon(tmp=self.tmp)  # creates the store; not `with`: it would remove the directory
        first.start()
        first.client().create_bucket(Bucket="kept")
        first.stop(check=True)
        before = sorted(os.listdir(first.data_dir))
        p = self.serve_read_only(first.data_dir, first.data_dir)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        err = p.stderr.decode()
        self.assertIn("Read-only file system", err)
        self.assertIn(first.data_dir, err)
        self.assertEqual(sorted(os.listdir(first.data_dir)), before)
        # Nothing was harmed: writable again, it starts and serves what it had.
        again = Daemon(tmp=self.tmp)
        again.start()
        try:
            self.assertIn("kept", [b["Name"] for b in again.client().list_buckets()["Buckets"]])
        finally:
            again.stop(check=True)

    def test_new_data_dir_under_a_read_only_parent(self):
        parent = os.path.join(self.tmp, "ro-parent")
        os.makedirs(parent)
        data_dir = os.path.join(parent, "data")
        p = self.serve_read_only(parent, data_dir)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        err = p.stderr.decode()
        self.assertIn("Read-only file system", err)
        self.assertIn(data_dir, err)
        self.assertFalse(os.path.exists(data_dir))


def tenant_ids(d: Daemon) -> dict:
    p = d.run_cli("tenant", "list", "--data-dir", d.data_dir, "--json")
    return {t["tenant"]: t["id"] for t in json.loads(p.stdout)}


class RateLimitTest(unittest.TestCase):
    """Per-tenant token buckets: SlowDown 503 for the tenant over its limit, nobody else."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="coffre-it-")
        # "slow" does not exist yet when the daemon starts: overrides by name apply to tenants
        # created later too.
        self.cfg = write_config(self.tmp, rate_limits={"tenants": {"slow": {"requests_per_second": 0.05, "burst": 3}}})
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
        self.assertTrue(wait_for(lambda: read_stderr(self.d).count(marker) > before), self.d.diagnostics())

    def assert_slow_down(self, call):
        with self.assertRaises(ClientError) as cm:
            call()
        response = cm.exception.response
        self.assertEqual(response["Error"]["Code"], "SlowDown", response)
        self.assertEqual(response["ResponseMetadata"]["HTTPStatusCode"], 503)
        self.assertIn("retry-after", response["ResponseMetadata"]["HTTPHeaders"])
        self.assertTrue(response["ResponseMetadata"]["RequestId"])

    def test_tenant_over_its_limit_gets_slow_down_and_others_are_unaffected(self):
        slow_creds = self.d.create_tenant("slow")
        slow = self.d.client_for(slow_creds)  # one attempt: botocore retries no SlowDown
        fast = self.d.client_for(self.d.create_tenant("fast"))
        dev = self.d.client()
        for _ in range(3):
            slow.list_buckets()
        self.assert_slow_down(slow.list_buckets)
        self.assert_slow_down(lambda: slow.put_object(Bucket="any", Key="k", Body=b"x" * 1000))
        for _ in range(30):
            fast.list_buckets()
            dev.list_buckets()
        self.assert_slow_down(slow.list_buckets)

        # the standard XML error body, as S3 sends it
        r = self.d.request("GET", "/", creds=slow_creds)
        self.assertEqual(r.status, 503)
        self.assertIn(b"<Code>SlowDown</Code>", r.body)
        self.assertIn(b"<Message>Please reduce your request rate.</Message>", r.body)
        self.assertIn(r.headers["x-amz-request-id"].encode(), r.body)

        ids = tenant_ids(self.d)
        status, _, body = admin_get(admin_port(self.d), "/metrics")
        self.assertEqual(status, 200)
        text = body.decode()
        refused = metric_value(text, f'coffre_s3_rate_limited_total{{tenant="{ids["slow"]}"}}')
        self.assertIsNotNone(refused, text)
        self.assertGreaterEqual(refused, 4)
        self.assertNotIn(f'tenant="{ids["fast"]}"}}', text.split("coffre_s3_rate_limited_total", 1)[1])
        # refusals are counted, not logged as errors
        self.assertNotIn("SlowDown", read_stderr(self.d))

    def test_limits_reload_on_sighup(self):
        slow = self.d.client_for(self.d.create_tenant("slow"))
        other = self.d.client_for(self.d.create_tenant("other"))
        for _ in range(3):
            slow.list_buckets()
        self.assert_slow_down(slow.list_buckets)
        # lift the override; give every tenant a small default, and one tenant (by id) none
        ids = tenant_ids(self.d)
        write_config(self.tmp, rate_limits={"default": {"requests_per_second": 0.05, "burst": 2},
                                            "tenants": {ids["dev"]: {"requests_per_second": 0}}})
        self.hangup_and_wait("configuration reloaded")
        # the "slow" bucket keeps its spent tokens (a reload does not reset a flood), capped at 2
        self.assert_slow_down(slow.list_buckets)
        for _ in range(2):
            other.list_buckets()
        self.assert_slow_down(other.list_buckets)
        dev = self.d.client()
        for _ in range(20):
            dev.list_buckets()
        # an invalid limit is rejected and the running ones stay
        write_config(self.tmp, rate_limits={"default": {"requests_per_second": -1}})
        self.hangup_and_wait("configuration rejected")
        self.assertIn("'rate_limits.default.requests_per_second' must be a number from 0", read_stderr(self.d))
        self.assert_slow_down(other.list_buckets)
        write_config(self.tmp)
        self.hangup_and_wait("configuration reloaded")
        for _ in range(10):
            other.list_buckets()
            slow.list_buckets()

    def test_unauthenticated_requests_are_not_rate_limited_per_tenant(self):
        for _ in range(10):
            r = self.d.unsigned("GET", "/")
            self.assertEqual(r.status, 403)


class BodiesInFlightTest(unittest.TestCase):
    """A tenant may have at most max_bodies_per_tenant request bodies in flight: one more gets
    SlowDown 503 before its body is read, while other tenants and body-less requests go on."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="coffre-it-")
        self.cfg = write_config(self.tmp, max_bodies_per_tenant=2)
        self.d = Daemon(extra_args=["--config", self.cfg], tmp=self.tmp)
        self.d.start()
        self.d.client().create_bucket(Bucket="held")

    def tearDown(self):
        try:
            self.assertEqual(self.d.stop(check=False), 0, self.d.diagnostics())
        finally:
            self.d.cleanup()

    def hold_body(self, key: str, size: int = 100_000, sent: int = 1000):
        """A PUT whose header and first `sent` body bytes are sent; the rest waits."""
        body = os.urandom(size)
        req = self.d.sign("PUT", f"/held/{key}", body=body, payload_hash="UNSIGNED-PAYLOAD",
                          headers={"Content-Length": str(size)})
        s = self.d.raw_socket()
        head = f"PUT {req.target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in req.headers.items())
        s.sendall(head.encode() + b"\r\n" + body[:sent])
        return s, body, sent

    def finish_body(self, held):
        s, body, sent = held
        try:
            s.sendall(body[sent:])
            r = read_raw_http_response(s)
            self.assertIsNotNone(r)
            return r
        finally:
            s.close()

    def assert_slow_down(self, call):
        with self.assertRaises(ClientError) as cm:
            call()
        response = cm.exception.response
        self.assertEqual(response["Error"]["Code"], "SlowDown", response)
        self.assertEqual(response["ResponseMetadata"]["HTTPStatusCode"], 503)

    def test_bodies_over_the_limit_get_slow_down(self):
        dev = self.d.client()
        other = self.d.client_for(self.d.create_tenant("other"))
        other.create_bucket(Bucket="other-bucket")
        held = [self.hold_body("a"), self.hold_body("b")]
        # both are admitted (authenticated, reading their bodies) before the third comes
        self.assertTrue(wait_for(lambda: self.d.proc.poll() is None and body_slots_taken(self.d) >= 2),
                        self.d.diagnostics())
        self.assert_slow_down(lambda: dev.put_object(Bucket="held", Key="third", Body=b"x" * 5000))
        with self.assertRaises(ClientError):
            dev.head_object(Bucket="held", Key="third")   # nothing stored
        # requests without a body, and other tenants, are unaffected
        dev.list_buckets()
        dev.list_objects_v2(Bucket="held")
        other.put_object(Bucket="other-bucket", Key="k", Body=b"y" * 5000)
        # the held bodies complete, and their slots are given back
        for h in held:
            self.assertEqual(self.finish_body(h).status, 200)
        dev.put_object(Bucket="held", Key="third", Body=b"x" * 5000)
        self.assertEqual(dev.get_object(Bucket="held", Key="third")["Body"].read(), b"x" * 5000)
        ids = tenant_ids(self.d)
        _, _, metrics = admin_get(admin_port(self.d), "/metrics")
        refused = metric_value(metrics.decode(), f'coffre_s3_bodies_limited_total{{tenant="{ids["dev"]}"}}')
        self.assertEqual(refused, 1, metrics.decode())
        # clients that vanish mid-body give their slots back too
        vanishing = [self.hold_body(key)[0] for key in ("vanished-1", "vanished-2")]
        self.assertTrue(wait_for(lambda: body_slots_taken(self.d) == 2), self.d.diagnostics())
        for s in vanishing:
            s.close()
        self.assertTrue(wait_for(lambda: body_slots_taken(self.d) == 0), self.d.diagnostics())
        for key in ("after-1", "after-2"):
            dev.put_object(Bucket="held", Key=key, Body=b"z")


def body_slots_taken(d: Daemon) -> int:
    _, _, metrics = admin_get(admin_port(d), "/metrics")
    return int(metric_value(metrics.decode(), "coffre_s3_bodies_in_flight") or 0)
