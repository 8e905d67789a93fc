"""Gateway mode over an upstream that misbehaves: a fault proxy (fault_proxy.py) sits between the
gateway and a second Coffre daemon and answers with errors, resets connections, cuts answers in
the middle of their body and stalls them. Transient faults are retried where a retry is safe and
the client never notices; lasting ones reach the client as 503 ServiceUnavailable; no fault ever
serves a wrong byte, loses an object already stored or leaves a half-written one visible."""

import json
import shutil
import tempfile
import time
import unittest

from botocore.exceptions import BotoCoreError, ClientError

from fault_proxy import Fault, FaultProxy
from harness import MiB, gen_bytes
from test_gateway_mode import start_gateway, storage_config, write_secret
from test_operations import admin_get, admin_port, metric_value
from upstreams import CoffreUpstream, DiagnosticsOnFailure

BUCKET = "dossiers"
# Short enough for a stall test to end quickly, long enough for an upstream under ASan on a busy
# machine to answer normal requests within it.
REQUEST_TIMEOUT_SECONDS = 5


class UpstreamFaults(DiagnosticsOnFailure, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = CoffreUpstream()
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()
        cls.upstream = cls.server.upstream
        host, port = cls.upstream.endpoint.rsplit("//", 1)[1].rsplit(":", 1)
        cls.proxy = FaultProxy(host, int(port)).start()
        cls.addClassCleanup(cls.proxy.stop)
        cls.tmp = tempfile.mkdtemp(prefix="coffre-faults-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        storage = storage_config(cls.upstream, write_secret(cls.tmp, cls.upstream.secret_key),
                                 endpoint=cls.proxy.endpoint, request_timeout_seconds=REQUEST_TIMEOUT_SECONDS)
        cls.gateway = start_gateway(cls.tmp, storage)
        cls.addClassCleanup(lambda: cls.gateway.stop(check=False))
        cls.admin = admin_port(cls.gateway)
        cls.s3 = cls.gateway.client()
        cls.s3.create_bucket(Bucket=BUCKET)
        cls.up = cls.upstream.client()

    def setUp(self):
        self.proxy.clear()

    def failure_diagnostics(self) -> str:
        return (f"proxy requests: {self.proxy.requests[-40:]}\ngateway:\n{self.gateway.diagnostics()}\n"
                f"upstream:\n{self.server.diagnostics()}")

    def metric(self, series: str) -> float:
        return metric_value(admin_get(self.admin, "/metrics")[2].decode(), series) or 0

    def get(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()

    def assert_refused_with_503(self, call):
        with self.assertRaises(ClientError) as caught:
            call()
        self.assertEqual(caught.exception.response["ResponseMetadata"]["HTTPStatusCode"], 503)
        self.assertEqual(caught.exception.response["Error"]["Code"], "ServiceUnavailable")

    def upstream_uploads(self) -> list:
        return self.up.list_multipart_uploads(Bucket=self.upstream.bucket).get("Uploads", [])

    def test_transient_errors_and_resets_are_retried_unseen(self):
        """Blobs up to 256 KiB go up in one signed PUT from memory, which can be sent again; reads
        are ranged GETs, which can always be asked again."""
        retries = self.metric("coffre_upstream_retries_total")
        large = gen_bytes(3 * MiB, seed=3)
        self.s3.put_object(Bucket=BUCKET, Key="large", Body=large)
        for fault, key in ((Fault.status(503), "small-503"), (Fault.status(500), "small-500"),
                           (Fault.reset(), "small-reset")):
            body = gen_bytes(10_000, seed=len(key))
            self.proxy.inject(fault, method="PUT", times=2)
            self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            self.assertEqual(self.proxy.injected(), 2, key)
            self.proxy.clear()
            for read in (key, "large"):
                self.proxy.inject(fault, method="GET", times=2)
                self.assertEqual(self.get(read), large if read == "large" else body, (key, read))
                self.assertEqual(self.proxy.injected(), 2, (key, read))
                self.proxy.clear()
        self.assertGreaterEqual(self.metric("coffre_upstream_retries_total") - retries, 18)

    def test_a_streamed_put_refused_upstream_is_a_503_and_leaves_nothing(self):
        """A blob above 256 KiB is streamed up as it is encrypted: once its bytes are sent they are
        gone, so a refusal cannot be retried by the gateway. The client gets 503 (which S3 clients
        retry), and neither the object nor an upstream leftover appears."""
        before = {o["Key"] for o in self.up.list_objects_v2(Bucket=self.upstream.bucket).get("Contents", [])}
        body = gen_bytes(3 * MiB, seed=4)
        self.proxy.inject(Fault.status(503), method="PUT", times=1)
        self.assert_refused_with_503(lambda: self.s3.put_object(Bucket=BUCKET, Key="streamed", Body=body))
        with self.assertRaises(ClientError):
            self.s3.head_object(Bucket=BUCKET, Key="streamed")
        after = {o["Key"] for o in self.up.list_objects_v2(Bucket=self.upstream.bucket).get("Contents", [])}
        self.assertEqual(after - before, set())
        self.s3.put_object(Bucket=BUCKET, Key="streamed", Body=body)
        self.assertEqual(self.get("streamed"), body)

    def test_a_lasting_failure_is_a_503_and_the_stored_object_stays(self):
        original = gen_bytes(50_000, seed=1)
        self.s3.put_object(Bucket=BUCKET, Key="kept", Body=original)
        errors = self.metric('coffre_upstream_errors_total{code="Unavailable"}')
        self.proxy.inject(Fault.status(503), times=100)
        self.assert_refused_with_503(lambda: self.s3.put_object(Bucket=BUCKET, Key="kept", Body=b"x" * 50_000))
        self.assert_refused_with_503(lambda: self.s3.put_object(Bucket=BUCKET, Key="never", Body=b"y" * 1000))
        self.assert_refused_with_503(lambda: self.get("kept"))
        self.assertGreater(self.metric('coffre_upstream_errors_total{code="Unavailable"}'), errors)
        status, _, body = admin_get(self.admin, "/health/ready")
        self.assertEqual(status, 503, body)
        self.assertIn(self.upstream.bucket, json.loads(body)["checks"]["upstream"])
        self.proxy.clear()
        self.assertEqual(self.get("kept"), original)
        with self.assertRaises(ClientError) as caught:
            self.s3.head_object(Bucket=BUCKET, Key="never")
        self.assertEqual(caught.exception.response["ResponseMetadata"]["HTTPStatusCode"], 404)
        self.assertEqual(admin_get(self.admin, "/health/ready")[0], 200)

    def test_a_failed_part_aborts_the_upstream_upload(self):
        """A blob above the part size goes up as a multipart upload; a part refused after its body
        was streamed cannot be sent again, so the whole PUT fails, and the upstream upload is
        aborted rather than left to accumulate."""
        body = gen_bytes(9 * MiB, seed=9)
        self.proxy.inject(Fault.status(503), method="PUT", target=r"partNumber=2", times=1)
        self.assert_refused_with_503(lambda: self.s3.put_object(Bucket=BUCKET, Key="big", Body=body))
        self.assertEqual(self.proxy.injected(), 1)
        deadline = time.monotonic() + 10  # aborted as the writer goes, just after the answer
        while self.upstream_uploads() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.upstream_uploads(), [])
        with self.assertRaises(ClientError):
            self.s3.head_object(Bucket=BUCKET, Key="big")
        self.s3.put_object(Bucket=BUCKET, Key="big", Body=body)  # the client's retry
        self.assertEqual(self.get("big"), body)

    def test_an_answer_cut_mid_body_never_serves_a_wrong_byte(self):
        body = gen_bytes(3 * MiB, seed=3)
        self.s3.put_object(Bucket=BUCKET, Key="cut", Body=body)
        for after in (100, 70_000, 1_000_000):
            self.proxy.clear()
            self.proxy.inject(Fault.cut(after), method="GET", times=1)
            try:
                got = self.get("cut")
            except (ClientError, BotoCoreError):
                continue  # refused, or the connection cut: what a client retries
            self.assertEqual(len(got), len(body), f"cut after {after}: a short body was served as whole")
            self.assertEqual(got, body, f"cut after {after}")
        self.proxy.clear()
        self.assertEqual(self.get("cut"), body)

    def test_a_stalled_upstream_is_given_up_on_and_retried(self):
        """An upstream that stops answering in the middle of a request fails it after the request
        timeout instead of holding the client forever; an idempotent request is then retried."""
        body = gen_bytes(200_000, seed=5)
        stall = REQUEST_TIMEOUT_SECONDS * 3
        self.proxy.inject(Fault.stall(0, stall), method="PUT", times=1)
        self.s3.put_object(Bucket=BUCKET, Key="stalled", Body=body)
        self.assertEqual(self.proxy.injected("stall"), 1)
        self.proxy.inject(Fault.stall(20, stall), method="GET", times=1)
        self.assertEqual(self.get("stalled"), body)
        self.assertEqual(self.proxy.injected("stall"), 2)

    def test_upstream_permission_errors_are_500_and_not_retried(self):
        """A 403 from the upstream is the gateway's configuration at fault, not the client's: 500
        InternalError, and no retries."""
        self.s3.put_object(Bucket=BUCKET, Key="denied", Body=b"z" * 1000)
        self.proxy.clear()
        self.proxy.inject(Fault.status(403), method="GET", times=10)
        with self.assertRaises(ClientError) as caught:
            self.get("denied")
        self.assertEqual(caught.exception.response["ResponseMetadata"]["HTTPStatusCode"], 500)
        self.assertEqual(caught.exception.response["Error"]["Code"], "InternalError")
        # No retries (4 attempts each): a small object is opened once to prepare its first read,
        # and a failure there is met again, and reported, by the read itself.
        self.assertLessEqual(self.proxy.injected(), 2, self.proxy.requests)
        self.proxy.clear()
        self.assertEqual(self.get("denied"), b"z" * 1000)


if __name__ == "__main__":
    unittest.main()
