"""Bad input: each gets S3's error and status, the connection stays usable where HTTP allows,
and nothing already stored changes."""

import os
import socket
import threading
import time
import unittest
import uuid

from harness import (CoffreTestCase, MiB, aws_chunked_encoded_length, aws_chunked_signed_body,
                     gen_bytes, md5_b64, read_raw_http_response)

BUCKET = "bad-input"


def request_bytes(req, body=b"", drop=(), extra=None) -> bytes:
    """Serialize a SignedRequest by hand (no header added), minus `drop`, plus `extra`."""
    lines = [f"{req.method} {req.target} HTTP/1.1"]
    for k, v in req.headers.items():
        if k.lower() not in drop:
            lines.append(f"{k}: {v}")
    for k, v in (extra or {}).items():
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class BadInputTest(CoffreTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.s3.create_bucket(Bucket=BUCKET)
        cls.sentinels = {"sentinel-small": b"small sentinel",
                         "sentinel-big": gen_bytes(300000, seed=66),
                         "victim": b"the victim's original bytes"}
        for k, v in cls.sentinels.items():
            cls.s3.put_object(Bucket=BUCKET, Key=k, Body=v)

    def tearDown(self):
        self.assertTrue(self.daemon.alive, "the daemon is still running")
        # every stored object is unchanged; a changed one is put back (so that one failure does
        # not cascade into the next tests) and reported
        changed = []
        for k, v in self.sentinels.items():
            try:
                ok = self.get_bytes(BUCKET, k) == v
            except Exception as e:  # noqa: BLE001 - NoSuchKey and the like
                ok = False
            if not ok:
                changed.append(k)
                self.s3.put_object(Bucket=BUCKET, Key=k, Body=v)
        self.assertEqual(changed, [], "stored objects changed by the test's bad input")

    # -- XML --------------------------------------------------------------------------------
    def test_malformed_xml_complete_multipart(self):
        key = "mp-malformed"
        uid = self.s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        etag = self.s3.upload_part(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=1,
                                   Body=b"part one")["ETag"]
        bodies = [b"this is not xml",
                  b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>",
                  b"<CompleteMultipartUpload></CompleteMultipartUpload>",   # no parts
                  b""]
        for body in bodies:
            with self.subTest(body=body[:40]):
                r = self.daemon.request("POST", f"/{BUCKET}/{key}", query=[("uploadId", uid)],
                                        body=body)
                self.assertS3Error(r, "MalformedXML", 400)
                self.assertKeyAbsent(BUCKET, key)
        # the upload is still there and completes normally
        self.s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid,
                                          MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
        self.assertObjectEquals(BUCKET, key, b"part one")

    def test_malformed_xml_delete_objects(self):
        bodies = [b"not xml at all",
                  b"<Delete><Object><Key>sentinel-small</Key></Object>",
                  b"<Delete><Object><Key>sentinel-small</Key></Object></Delete><trailing/>",
                  b"<Delete></Delete>",
                  b"<Delete><Object></Object></Delete>"]
        for body in bodies:
            with self.subTest(body=body[:40]):
                r = self.daemon.request("POST", f"/{BUCKET}", query=[("delete", "")], body=body,
                                        headers={"Content-MD5": md5_b64(body)})
                self.assertS3Error(r, "MalformedXML", 400)

    def test_delete_objects_over_1000_keys(self):
        objs = "".join(f"<Object><Key>k{i}</Key></Object>" for i in range(1001))
        body = f"<Delete><Object><Key>sentinel-small</Key></Object>{objs}</Delete>".encode()
        r = self.daemon.request("POST", f"/{BUCKET}", query=[("delete", "")], body=body,
                                headers={"Content-MD5": md5_b64(body)})
        self.assertS3Error(r, "MalformedXML", 400)

    def test_delete_objects_content_md5_mismatch(self):
        body = b"<Delete><Object><Key>sentinel-small</Key></Object></Delete>"
        r = self.daemon.request("POST", f"/{BUCKET}", query=[("delete", "")], body=body,
                                headers={"Content-MD5": md5_b64(b"something else")})
        self.assertS3Error(r, "BadDigest", 400)

    # -- names --------------------------------------------------------------------------------
    def test_key_too_long(self):
        for key in ("k" * 1025, "\u00e9" * 513):   # 1,025 and 1,026 bytes of UTF-8
            with self.subTest(length=len(key.encode())):
                self.assertClientError("KeyTooLongError", 400, self.s3.put_object, Bucket=BUCKET,
                                       Key=key, Body=b"x")
        # 1,024 bytes is the limit and is fine
        key = "k" * 1024
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=b"longest key")
        self.assertObjectEquals(BUCKET, key, b"longest key")
        self.s3.delete_object(Bucket=BUCKET, Key=key)
        # a long key on a multipart upload and a copy target too
        self.assertClientError("KeyTooLongError", 400, self.s3.create_multipart_upload,
                               Bucket=BUCKET, Key="m" * 1025)
        self.assertClientError("KeyTooLongError", 400, self.s3.copy_object, Bucket=BUCKET,
                               Key="c" * 1025, CopySource={"Bucket": BUCKET, "Key": "victim"})

    def test_dot_dot_and_nul_keys_stay_inside(self):
        tag = uuid.uuid4().hex[:10]
        for key in (f"../../../escape-{tag}", f"a/../../escape2-{tag}", f"nul\x00-{tag}",
                    f"./dot/./seg-{tag}"):
            with self.subTest(key=key):
                r = self.daemon.request("PUT", f"/{BUCKET}/{key}", body=b"where am I?")
                self.assertLess(r.status, 500, r)
                if r.status == 200:
                    g = self.daemon.request("GET", f"/{BUCKET}/{key}")
                    self.assertEqual((g.status, g.body), (200, b"where am I?"))
                else:
                    self.assertEqual(r.status, 400, r)
                    self.assertIsNotNone(r.error_code, r)
        # nothing was written outside the data directory, nor named after the key
        for root in (os.path.dirname(self.daemon.tmp), self.daemon.tmp):
            for name in os.listdir(root):
                self.assertNotIn(tag, name, os.path.join(root, name))
        for root, dirs, files in os.walk(self.daemon.tmp):
            for n in dirs + files:
                self.assertNotIn(tag, n, os.path.join(root, n))

    # -- bodies that lie ----------------------------------------------------------------------------
    def _send_raw(self, data: bytes, shutdown: bool = True):
        # The body is sent from another thread while this one reads: a server may answer an error
        # before the body is all sent, then close, and the reset that follows would discard an
        # answer not yet read (the gateway lingers for only so many bytes).
        s = self.daemon.raw_socket()

        def send():
            try:
                s.sendall(data)
                if shutdown:
                    s.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server stopped reading: its answer, if any, is read below

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        try:
            return read_raw_http_response(s)
        finally:
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes a sender still blocked; the fd stays its own
            except OSError:
                pass
            sender.join(timeout=30)
            s.close()

    def test_content_length_lies(self):
        body = gen_bytes(100000, seed=1)
        for key in ("victim", "short-body-new"):
            for payload_hash in ("UNSIGNED-PAYLOAD", None):
                with self.subTest(key=key, signed=payload_hash is None):
                    req = self.daemon.sign("PUT", f"/{BUCKET}/{key}", body=body,
                                           payload_hash=payload_hash,
                                           headers={"Content-Length": str(len(body))},
                                           sign_headers_extra=("content-length",))
                    r = self._send_raw(request_bytes(req, body[:40000]))
                    if r is not None:   # an answer is optional; a success is not
                        self.assertGreaterEqual(r.status, 400, r)
                    time.sleep(0.2)
                    if key == "victim":
                        self.assertObjectEquals(BUCKET, "victim", self.sentinels["victim"])
                    else:
                        self.assertKeyAbsent(BUCKET, key)
        # the client vanishing mid-body (no half-close, just gone)
        req = self.daemon.sign("PUT", f"/{BUCKET}/vanished", body=body,
                               payload_hash="UNSIGNED-PAYLOAD")
        s = self.daemon.raw_socket()
        s.sendall(request_bytes(req, body[:50000], extra={"Content-Length": str(len(body))}))
        s.close()
        time.sleep(0.3)
        self.assertKeyAbsent(BUCKET, "vanished")

    def test_truncated_aws_chunked_body(self):
        data = gen_bytes(200000, seed=2)
        hdrs = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
                "Content-Length": str(aws_chunked_encoded_length(len(data)))}
        seed = self.daemon.sign("PUT", f"/{BUCKET}/victim", headers=hdrs,
                                payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                                sign_headers_extra=("content-encoding", "content-length"))
        full = aws_chunked_signed_body(data, seed)
        # everything but the final zero-length chunk, with Content-Length fixed to match
        cut = full[:full.rindex(b"0;chunk-signature=")]
        seed.headers["Content-Length"] = hdrs["Content-Length"]
        r = self._send_raw(request_bytes(seed, cut))
        if r is not None:
            self.assertGreaterEqual(r.status, 400, r)
        time.sleep(0.2)
        self.assertObjectEquals(BUCKET, "victim", self.sentinels["victim"])

    def test_signed_chunk_larger_than_one_mib(self):
        # A correctly signed chunk of 1 MiB + 1 byte: SDKs send at most 1 MiB, and a larger chunk
        # is refused with S3's chunk-size error before its data is taken; 1 MiB is accepted.
        for key, chunk, status in (("big-chunk", MiB + 1, 403), ("victim", MiB + 1, 403),
                                   ("one-mib-chunk", MiB, 200)):
            with self.subTest(key=key, chunk=chunk):
                data = gen_bytes(chunk + 5000, seed=3)
                hdrs = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
                        "Content-Length": str(aws_chunked_encoded_length(len(data), chunk))}
                seed = self.daemon.sign("PUT", f"/{BUCKET}/{key}", headers=hdrs,
                                        payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                                        sign_headers_extra=("content-encoding", "content-length"))
                body = aws_chunked_signed_body(data, seed, chunk_size=chunk)
                self.assertEqual(len(body), int(hdrs["Content-Length"]))
                r = self._send_raw(request_bytes(seed, body))
                self.assertIsNotNone(r)
                if status == 200:
                    self.assertEqual(r.status, 200, r)
                    self.assertObjectEquals(BUCKET, key, data)
                    continue
                self.assertS3Error(r, "InvalidChunkSizeError", 403)
                if key == "victim":
                    self.assertObjectEquals(BUCKET, "victim", self.sentinels["victim"])
                else:
                    self.assertKeyAbsent(BUCKET, key)

    def test_missing_content_length(self):
        req = self.daemon.sign("PUT", f"/{BUCKET}/no-length", body=b"")
        r = self._send_raw(request_bytes(req), shutdown=False)
        self.assertIsNotNone(r)
        self.assertS3Error(r, "MissingContentLength", 411)
        self.assertKeyAbsent(BUCKET, "no-length")

    def test_body_longer_than_content_length(self):
        req = self.daemon.sign("PUT", f"/{BUCKET}/over-long", body=b"0123456789",
                               headers={"Content-Length": "10"},
                               sign_headers_extra=("content-length",))
        s = self.daemon.raw_socket()
        try:
            s.sendall(request_bytes(req, b"0123456789EXTRA-BYTES-NOT-HTTP\r\n\r\n"))
            r = read_raw_http_response(s)
            self.assertIsNotNone(r)
            self.assertEqual(r.status, 200, r)
            # the extra bytes are a malformed request: 400 or a closed connection
            r2 = read_raw_http_response(s, timeout=5)
            if r2 is not None:
                self.assertEqual(r2.status, 400, r2)
        finally:
            s.close()
        self.assertObjectEquals(BUCKET, "over-long", b"0123456789")

    # -- headers, methods, subresources -------------------------------------------------------------
    def test_headers_over_size_limit(self):
        for label, extra in (("one huge header", {"X-Padding": "p" * 65536}),
                             ("many headers", {f"X-Pad-{i}": "q" * 200 for i in range(400)})):
            with self.subTest(case=label):
                req = self.daemon.sign("GET", f"/{BUCKET}/sentinel-small")
                r = self._send_raw(request_bytes(req, extra=extra), shutdown=False)
                self.assertIsNotNone(r, "the server answers before closing")
                self.assertIn(r.status, (400, 431), r)
                if r.status == 400:
                    self.assertEqual(r.error_code, "RequestHeaderSectionTooLarge", r)

    def test_metadata_too_large(self):
        self.assertClientError("MetadataTooLarge", 400, self.s3.put_object, Bucket=BUCKET,
                               Key="victim", Body=b"x",
                               Metadata={f"m{i}": "v" * 100 for i in range(25)})

    def test_unknown_method(self):
        for method in ("PATCH", "FOO"):
            with self.subTest(method=method):
                r = self.daemon.request(method, f"/{BUCKET}/victim", body=b"patched")
                self.assertIn((r.error_code, r.status),
                              [("MethodNotAllowed", 405), ("NotImplemented", 501)], r)

    def test_unsupported_subresources(self):
        website = (b'<WebsiteConfiguration><IndexDocument><Suffix>index.html</Suffix></IndexDocument>'
                   b'</WebsiteConfiguration>')
        cases = [("PUT", f"/{BUCKET}", "website", website),
                 ("PUT", f"/{BUCKET}", "replication", b"<ReplicationConfiguration/>"),
                 ("PUT", f"/{BUCKET}", "cors", b"<CORSConfiguration/>"),
                 ("PUT", f"/{BUCKET}/victim", "torrent", b"")]
        for method, path, sub, body in cases:
            with self.subTest(subresource=sub):
                r = self.daemon.request(method, path, query=[(sub, "")], body=body,
                                        headers={"Content-MD5": md5_b64(body)})
                self.assertS3Error(r, "NotImplemented", 501)
        # the bucket still exists and lists
        keys = [o["Key"] for o in self.s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
        self.assertIn("victim", keys)

    # -- keep-alive after errors ---------------------------------------------------------------------
    def test_connection_stays_usable_after_errors(self):
        conn = self.daemon.connection()
        uid = self.s3.create_multipart_upload(Bucket=BUCKET, Key="ka-mp")["UploadId"]
        bad_sig = self.daemon.sign("GET", f"/{BUCKET}/sentinel-small")
        bad_sig.headers["Authorization"] = bad_sig.headers["Authorization"][:-4] + "0000"
        errors = [
            ("NoSuchKey", lambda: self.daemon.request("GET", f"/{BUCKET}/missing", conn=conn)),
            ("NoSuchBucket", lambda: self.daemon.request("GET", "/no-such-bucket-ka/k", conn=conn)),
            ("InvalidRange", lambda: self.daemon.request(
                "GET", f"/{BUCKET}/sentinel-small", headers={"Range": "bytes=1000-"}, conn=conn)),
            ("PreconditionFailed", lambda: self.daemon.request(
                "GET", f"/{BUCKET}/sentinel-small", headers={"If-Match": '"nope"'}, conn=conn)),
            ("SignatureDoesNotMatch", lambda: self.daemon.send(bad_sig, conn)),
            ("MalformedXML", lambda: self.daemon.request(
                "POST", f"/{BUCKET}/ka-mp", query=[("uploadId", uid)], body=b"<oops", conn=conn)),
            ("KeyTooLongError", lambda: self.daemon.request(
                "PUT", f"/{BUCKET}/{'k' * 1100}", body=b"some body", conn=conn)),
            ("BadDigest", lambda: self.daemon.request(
                "PUT", f"/{BUCKET}/victim", body=b"evil", conn=conn,
                headers={"Content-MD5": md5_b64(b"good")})),
            ("XAmzContentSHA256Mismatch", lambda: self.daemon.request(
                "PUT", f"/{BUCKET}/victim", body=b"evil", conn=conn, payload_hash="0" * 64)),
            ("AccessDenied", lambda: self.daemon.unsigned("GET", f"/{BUCKET}/victim", conn=conn)),
        ]
        conn.connect()
        sock = conn.sock
        for code, fn in errors:
            with self.subTest(error=code):
                r = fn()
                self.assertEqual(r.error_code, code, r)
                self.assertNotEqual(r.headers.get("connection", "").lower(), "close",
                                    f"{code} closed the connection")
                ok = self.daemon.request("GET", f"/{BUCKET}/sentinel-small", conn=conn)
                self.assertEqual((ok.status, ok.body), (200, self.sentinels["sentinel-small"]))
                self.assertIs(conn.sock, sock, f"the connection was reopened after {code}")
        conn.close()
        self.s3.abort_multipart_upload(Bucket=BUCKET, Key="ka-mp", UploadId=uid)

    def test_many_requests_one_connection(self):
        conn = self.daemon.connection()
        for i in range(50):
            r = self.daemon.request("PUT", f"/{BUCKET}/ka/{i}", body=str(i).encode(), conn=conn)
            self.assertEqual(r.status, 200, r)
            r = self.daemon.request("GET", f"/{BUCKET}/ka/{i}", conn=conn)
            self.assertEqual(r.body, str(i).encode())
            r = self.daemon.request("HEAD", f"/{BUCKET}/ka/{i}", conn=conn)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers.get("content-length"), str(len(str(i))))
        conn.close()

    def test_expect_100_continue(self):
        body = gen_bytes(200000, seed=3)
        req = self.daemon.sign("PUT", f"/{BUCKET}/expect-100", body=body,
                               headers={"Expect": "100-continue",
                                        "Content-Length": str(len(body))},
                               sign_headers_extra=("content-length",))
        s = self.daemon.raw_socket()
        try:
            s.sendall(request_bytes(req))
            try:
                interim = read_raw_http_response(s, timeout=10)
            except (socket.timeout, TimeoutError):
                self.fail("no '100 Continue' within 10 s of a request with Expect: 100-continue")
            self.assertIsNotNone(interim)
            self.assertEqual(interim.status, 100, interim)
            s.sendall(body)
            r = read_raw_http_response(s)
            self.assertIsNotNone(r)
            self.assertEqual(r.status, 200, r)
        finally:
            s.close()
        self.assertObjectEquals(BUCKET, "expect-100", body)
        # An empty body is complete with the head, yet the 100 still comes before the final
        # answer: botocore 1.43 would otherwise remember that answer for the connection and
        # report it for a later PUT that meets a killed daemon (src/http/connection.cc,
        # SendOwedContinue; found by tests/crash).
        req = self.daemon.sign("PUT", f"/{BUCKET}/expect-100-empty", body=b"",
                               headers={"Expect": "100-continue", "Content-Length": "0"},
                               sign_headers_extra=("content-length",))
        s = self.daemon.raw_socket()
        try:
            s.sendall(request_bytes(req))
            interim = read_raw_http_response(s)
            self.assertIsNotNone(interim)
            self.assertEqual(interim.status, 100, interim)
            r = read_raw_http_response(s)
            self.assertIsNotNone(r)
            self.assertEqual(r.status, 200, r)
        finally:
            s.close()
        self.assertObjectEquals(BUCKET, "expect-100-empty", b"")
        # an auth failure is answered without waiting for the body
        req = self.daemon.sign("PUT", f"/{BUCKET}/victim", body=body,
                               headers={"Expect": "100-continue", "Content-Length": str(len(body))},
                               sign_headers_extra=("content-length",))
        req.headers["Authorization"] = req.headers["Authorization"][:-4] + "0000"
        s = self.daemon.raw_socket()
        try:
            s.sendall(request_bytes(req))
            r = read_raw_http_response(s)
            self.assertIsNotNone(r)
            if r.status == 100:    # S3 answers at once; sending the body is also acceptable
                s.sendall(body)
                r = read_raw_http_response(s)
                self.assertIsNotNone(r)
            self.assertS3Error(r, "SignatureDoesNotMatch", 403)
        finally:
            s.close()


if __name__ == "__main__":
    unittest.main()
