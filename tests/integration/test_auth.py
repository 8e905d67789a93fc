"""Authentication exactly as S3: SigV4 header auth, presigned URLs, aws-chunked payloads."""

import datetime as dt
import hashlib
import os
import subprocess
import time
import unittest

from harness import (CoffreTestCase, aws_chunked_encoded_length, aws_chunked_signed_body,
                     aws_chunked_trailer_body, botocore_sign, checksum_b64, gen_bytes, md5_hex,
                     presign_url, sha256, write_file, xml_find_all_text)

UTC = dt.timezone.utc


def curl(*args, timeout=120):
    return subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True,
                          timeout=timeout)


def curl_status_body(p):
    body, _, code = p.stdout.rpartition(b"\n")
    return int(code), body


class PresignedTest(CoffreTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = "presigned"
        cls.s3.create_bucket(Bucket=cls.bucket)
        cls.data = gen_bytes(300000, seed=77)
        cls.s3.put_object(Bucket=cls.bucket, Key="doc.bin", Body=cls.data)

    def _error_message(self, body):
        m = xml_find_all_text(body, "Message")
        return m[0] if m else ""

    def test_presigned_get_with_curl(self):
        url = self.s3.generate_presigned_url("get_object",
                                             Params={"Bucket": self.bucket, "Key": "doc.bin"},
                                             ExpiresIn=300)
        self.assertIn("X-Amz-Signature=", url)
        out = os.path.join(self.daemon.tmp, "curl-get.bin")
        p = curl("-o", out, url)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(curl_status_body(p)[0], 200)
        with open(out, "rb") as f:
            self.assertEqual(sha256(f.read()), sha256(self.data))
        # a ranged presigned GET (Range is not signed: allowed)
        p = curl("-H", "Range: bytes=65535-65536", url)
        code, body = curl_status_body(p)
        self.assertEqual(code, 206)
        self.assertEqual(body, self.data[65535:65537])

    def test_presigned_get_odd_key(self):
        key = "dossier 2024/caf\u00e9+r\u00e9sum\u00e9 (1).pdf"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=b"odd key content")
        url = self.s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                             ExpiresIn=60)
        code, body = curl_status_body(curl(url))
        self.assertEqual((code, body), (200, b"odd key content"))

    def test_presigned_put_with_curl(self):
        src = os.path.join(self.daemon.tmp, "curl-put.bin")
        size = 3 * 1024 * 1024 + 5
        digest = write_file(src, size, seed=78)
        url = self.s3.generate_presigned_url("put_object",
                                             Params={"Bucket": self.bucket, "Key": "uploaded.bin"},
                                             ExpiresIn=300)
        # -T streams the file (curl sends Expect: 100-continue for a body this size)
        p = curl("-T", src, url)
        code, body = curl_status_body(p)
        self.assertEqual(code, 200, body)
        h = self.s3.head_object(Bucket=self.bucket, Key="uploaded.bin")
        self.assertEqual(h["ContentLength"], size)
        got = self.get_bytes(self.bucket, "uploaded.bin")
        self.assertEqual(sha256(got), digest)
        self.assertEqual(h["ETag"], f'"{md5_hex(got)}"')

    def test_presigned_by_hand_accepted(self):
        url = presign_url(self.daemon.endpoint, "GET", f"/{self.bucket}/doc.bin",
                          access_key=self.daemon.access_key, secret_key=self.daemon.secret_key,
                          expires=120)
        code, body = curl_status_body(curl(url))
        self.assertEqual(code, 200)
        self.assertEqual(sha256(body), sha256(self.data))

    def test_expired_presigned_url(self):
        # signed an hour ago, valid 60 s
        url = presign_url(self.daemon.endpoint, "GET", f"/{self.bucket}/doc.bin",
                          access_key=self.daemon.access_key, secret_key=self.daemon.secret_key,
                          expires=60, when=dt.datetime.now(UTC) - dt.timedelta(hours=1))
        code, body = curl_status_body(curl(url))
        self.assertEqual(code, 403, body)
        self.assertEqual(xml_find_all_text(body, "Code"), ["AccessDenied"])
        self.assertIn("Request has expired", self._error_message(body))
        # boto3's own URL with ExpiresIn=1, used 2 s later
        url = self.s3.generate_presigned_url("get_object",
                                             Params={"Bucket": self.bucket, "Key": "doc.bin"},
                                             ExpiresIn=1)
        time.sleep(2.1)
        code, body = curl_status_body(curl(url))
        self.assertEqual(code, 403, body)
        self.assertEqual(xml_find_all_text(body, "Code"), ["AccessDenied"])
        self.assertIn("Request has expired", self._error_message(body))

    def test_presigned_expires_over_a_week(self):
        url = presign_url(self.daemon.endpoint, "GET", f"/{self.bucket}/doc.bin",
                          access_key=self.daemon.access_key, secret_key=self.daemon.secret_key,
                          expires=604801)
        code, body = curl_status_body(curl(url))
        self.assertEqual(code, 400, body)
        self.assertEqual(xml_find_all_text(body, "Code"), ["AuthorizationQueryParametersError"])
        # exactly 7 days is allowed
        url = presign_url(self.daemon.endpoint, "GET", f"/{self.bucket}/doc.bin",
                          access_key=self.daemon.access_key, secret_key=self.daemon.secret_key,
                          expires=604800)
        code, body = curl_status_body(curl(url))
        self.assertEqual(code, 200)

    def test_tampered_presigned_signature(self):
        url = self.s3.generate_presigned_url("get_object",
                                             Params={"Bucket": self.bucket, "Key": "doc.bin"},
                                             ExpiresIn=300)
        base, sig = url.rsplit("X-Amz-Signature=", 1)
        bad = base + "X-Amz-Signature=" + ("0" if sig[0] != "0" else "1") + sig[1:]
        code, body = curl_status_body(curl(bad))
        self.assertEqual(code, 403, body)
        self.assertEqual(xml_find_all_text(body, "Code"), ["SignatureDoesNotMatch"])
        # the signature is bound to the key too
        other = url.replace("/doc.bin?", "/other.bin?")
        self.s3.put_object(Bucket=self.bucket, Key="other.bin", Body=b"other")
        code, body = curl_status_body(curl(other))
        self.assertEqual(code, 403, body)
        self.assertEqual(xml_find_all_text(body, "Code"), ["SignatureDoesNotMatch"])
        # ... and to the expiry
        longer = url.replace("X-Amz-Expires=300", "X-Amz-Expires=3000")
        self.assertNotEqual(longer, url)
        code, body = curl_status_body(curl(longer))
        self.assertEqual(code, 403, body)
        self.assertEqual(xml_find_all_text(body, "Code"), ["SignatureDoesNotMatch"])

    def test_presigned_get_used_for_put(self):
        url = self.s3.generate_presigned_url("get_object",
                                             Params={"Bucket": self.bucket, "Key": "doc.bin"},
                                             ExpiresIn=300)
        p = curl("-X", "PUT", "--data-binary", "overwritten!", url)
        code, body = curl_status_body(p)
        self.assertEqual(code, 403, body)
        self.assertEqual(xml_find_all_text(body, "Code"), ["SignatureDoesNotMatch"])
        self.assertObjectEquals(self.bucket, "doc.bin", self.data)
        p = curl("-X", "DELETE", url)
        self.assertEqual(curl_status_body(p)[0], 403)
        self.assertObjectEquals(self.bucket, "doc.bin", self.data)

    def test_presigned_wrong_access_key(self):
        url = presign_url(self.daemon.endpoint, "GET", f"/{self.bucket}/doc.bin",
                          access_key="AKIAIOSFODNN7EXAMPLE", secret_key="x" * 40, expires=60)
        code, body = curl_status_body(curl(url))
        self.assertEqual(code, 403, body)
        self.assertEqual(xml_find_all_text(body, "Code"), ["InvalidAccessKeyId"])


class HeaderAuthTest(CoffreTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = "auth"
        cls.s3.create_bucket(Bucket=cls.bucket)
        cls.s3.put_object(Bucket=cls.bucket, Key="existing", Body=b"original content")

    def tearDown(self):
        # whatever a test sent, the stored object is unchanged (put back if not, and reported)
        try:
            got = self.get_bytes(self.bucket, "existing")
        except Exception:  # noqa: BLE001
            got = None
        if got != b"original content":
            self.s3.put_object(Bucket=self.bucket, Key="existing", Body=b"original content")
        self.assertEqual(got, b"original content", "the stored object was changed")

    def test_botocore_reference_signer(self):
        url = (f"{self.daemon.endpoint}/{self.bucket}?list-type=2&prefix=exi")
        req = botocore_sign("GET", url, access_key=self.daemon.access_key,
                            secret_key=self.daemon.secret_key)
        conn = self.daemon.connection()
        conn.request("GET", f"/{self.bucket}?list-type=2&prefix=exi", headers=dict(req.headers.items()))
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        self.assertEqual(resp.status, 200, body)
        self.assertEqual(xml_find_all_text(body, "Key"), ["existing"])

    def test_hand_signer_accepted(self):
        r = self.daemon.request("GET", f"/{self.bucket}/existing")
        self.assertEqual((r.status, r.body), (200, b"original content"))
        r = self.daemon.request("PUT", f"/{self.bucket}/hand signed \u00e9",
                                body=b"hello", headers={"Content-Type": "text/plain",
                                                        "x-amz-meta-who": "hand"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("etag"), f'"{md5_hex(b"hello")}"')
        h = self.s3.head_object(Bucket=self.bucket, Key="hand signed \u00e9")
        self.assertEqual(h["Metadata"], {"who": "hand"})
        # UNSIGNED-PAYLOAD is accepted too
        r = self.daemon.request("PUT", f"/{self.bucket}/unsigned-payload", body=b"unsigned",
                                payload_hash="UNSIGNED-PAYLOAD")
        self.assertEqual(r.status, 200, r)
        self.assertObjectEquals(self.bucket, "unsigned-payload", b"unsigned")

    def test_invalid_access_key_id(self):
        bad = self.daemon.client("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        self.assertClientError("InvalidAccessKeyId", 403, bad.list_buckets)
        self.assertClientError("InvalidAccessKeyId", 403, bad.get_object, Bucket=self.bucket,
                               Key="existing")
        self.assertClientError("InvalidAccessKeyId", 403, bad.put_object, Bucket=self.bucket,
                               Key="existing", Body=b"pwned")

    def test_wrong_secret_signature_does_not_match(self):
        bad = self.daemon.client(self.daemon.access_key, "0" * 40)
        self.assertClientError("SignatureDoesNotMatch", 403, bad.list_buckets)
        self.assertClientError("SignatureDoesNotMatch", 403, bad.get_object, Bucket=self.bucket,
                               Key="existing")
        self.assertClientError("SignatureDoesNotMatch", 403, bad.put_object, Bucket=self.bucket,
                               Key="existing", Body=b"pwned")
        self.assertClientError("SignatureDoesNotMatch", 403, bad.delete_object,
                               Bucket=self.bucket, Key="existing")
        self.assertClientError("SignatureDoesNotMatch", 403, bad.put_object, Bucket=self.bucket,
                               Key="new-with-bad-sig", Body=b"x")
        self.assertKeyAbsent(self.bucket, "new-with-bad-sig")

    def test_header_altered_after_signing(self):
        req = self.daemon.sign("PUT", f"/{self.bucket}/existing", body=b"evil",
                               headers={"x-amz-meta-a": "1"})
        req.headers["x-amz-meta-a"] = "2"
        r = self.daemon.send(req)
        self.assertS3Error(r, "SignatureDoesNotMatch", 403)
        # a different path with the same signature
        req = self.daemon.sign("GET", f"/{self.bucket}/existing")
        req.target = f"/{self.bucket}/existing2"
        r = self.daemon.send(req)
        self.assertS3Error(r, "SignatureDoesNotMatch", 403)

    def test_request_time_too_skewed(self):
        for minutes in (-20, 20, -60 * 24):
            with self.subTest(minutes=minutes):
                when = dt.datetime.now(UTC) + dt.timedelta(minutes=minutes)
                r = self.daemon.request("GET", f"/{self.bucket}/existing", when=when)
                self.assertS3Error(r, "RequestTimeTooSkewed", 403)
                r = self.daemon.request("PUT", f"/{self.bucket}/existing", body=b"late", when=when)
                self.assertS3Error(r, "RequestTimeTooSkewed", 403)
        # 10 minutes is within S3's 15-minute window
        r = self.daemon.request("GET", f"/{self.bucket}/existing",
                                when=dt.datetime.now(UTC) - dt.timedelta(minutes=10))
        self.assertEqual(r.status, 200, r)

    def test_content_sha256_mismatch(self):
        r = self.daemon.request("PUT", f"/{self.bucket}/existing", body=b"tampered body",
                                payload_hash=hashlib.sha256(b"the body that was signed").hexdigest())
        self.assertS3Error(r, "XAmzContentSHA256Mismatch", 400)
        for size in (200000, 1000000):  # one receive piece, then several (256 KiB each)
            r = self.daemon.request("PUT", f"/{self.bucket}/sha-mismatch-new", body=gen_bytes(size),
                                    payload_hash=hashlib.sha256(b"x").hexdigest())
            self.assertS3Error(r, "XAmzContentSHA256Mismatch", 400)
            self.assertKeyAbsent(self.bucket, "sha-mismatch-new")

    def test_authorization_header_malformed(self):
        # credential scope without its terminator
        req = self.daemon.sign("GET", f"/{self.bucket}/existing")
        req.headers["Authorization"] = req.headers["Authorization"].replace("/s3/aws4_request,", "/s3,")
        r = self.daemon.send(req)
        self.assertS3Error(r, "AuthorizationHeaderMalformed", 400)
        # credential date that is not the X-Amz-Date's day
        req = self.daemon.sign("GET", f"/{self.bucket}/existing", scope_date="20200101")
        r = self.daemon.send(req)
        self.assertS3Error(r, "AuthorizationHeaderMalformed", 400)
        # a credential that is not AKID/date/region/service/aws4_request at all
        req = self.daemon.sign("GET", f"/{self.bucket}/existing")
        sig_part = req.headers["Authorization"].split(", ", 1)[1]
        req.headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=garbage, " + sig_part
        r = self.daemon.send(req)
        self.assertS3Error(r, "AuthorizationHeaderMalformed", 400)
        # signed for another region (s3cmd's default "US"): the answer names the region to sign for,
        # as AWS's does, so that the client signs again for it
        for region in ("US", "eu-west-3"):
            r = self.daemon.send(self.daemon.sign("GET", f"/{self.bucket}/existing", region=region))
            self.assertS3Error(r, "AuthorizationHeaderMalformed", 400)
            self.assertIn(b"<Region>us-east-1</Region>", r.body)
            self.assertIn(f"the region &apos;{region}&apos; is wrong".encode(), r.body)

    def test_anonymous_requests_denied(self):
        for method, target, body in (("GET", f"/{self.bucket}/existing", b""),
                                     ("HEAD", f"/{self.bucket}/existing", b""),
                                     ("GET", "/", b""),
                                     ("GET", f"/{self.bucket}?list-type=2", b""),
                                     ("PUT", f"/{self.bucket}/existing", b"anonymous write"),
                                     ("PUT", f"/{self.bucket}/anon-new", b"anonymous write"),
                                     ("DELETE", f"/{self.bucket}/existing", b""),
                                     ("PUT", "/anon-bucket", b"")):
            with self.subTest(method=method, target=target):
                r = self.daemon.unsigned(method, target, body=body)
                self.assertEqual(r.status, 403, r)
                if method != "HEAD":
                    self.assertEqual(r.error_code, "AccessDenied", r)
        self.assertKeyAbsent(self.bucket, "anon-new")
        self.assertClientError(None, 404, self.s3.head_bucket, Bucket="anon-bucket")


class ChunkedUploadTest(CoffreTestCase):
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD and STREAMING-UNSIGNED-PAYLOAD-TRAILER by hand."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = "chunked"
        cls.s3.create_bucket(Bucket=cls.bucket)
        cls.old = b"the old object, which must survive"
        cls.s3.put_object(Bucket=cls.bucket, Key="victim", Body=cls.old)

    def _signed_chunked_put(self, key, data, chunk_size=65536, corrupt_chunk=None, headers=None):
        hdrs = {"Content-Encoding": "aws-chunked",
                "x-amz-decoded-content-length": str(len(data)),
                "Content-Length": str(aws_chunked_encoded_length(len(data), chunk_size))}
        hdrs.update(headers or {})
        seed = self.daemon.sign("PUT", f"/{self.bucket}/{key}", headers=hdrs,
                                payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                                sign_headers_extra=("content-encoding", "content-length"))
        body = aws_chunked_signed_body(data, seed, chunk_size, corrupt_chunk)
        self.assertEqual(len(body), int(hdrs["Content-Length"]))
        return self.daemon.send(seed, body=body)

    def test_signed_streaming_upload(self):
        for size in (0, 1, 65536, 200000):
            with self.subTest(size=size):
                data = gen_bytes(size, seed=size + 3)
                key = f"streamed-{size}"
                r = self._signed_chunked_put(key, data, headers={"Content-Type": "text/csv",
                                                                 "x-amz-meta-k": "v"})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.headers.get("etag"), f'"{md5_hex(data)}"')
                g = self.s3.get_object(Bucket=self.bucket, Key=key)
                self.assertEqual(g["Body"].read(), data)
                self.assertEqual(g["ContentType"], "text/csv")
                self.assertEqual(g["Metadata"], {"k": "v"})
                # aws-chunked is a transfer detail: it is not stored as the Content-Encoding
                self.assertNotIn("aws-chunked", g.get("ContentEncoding", ""))

    def test_signed_streaming_small_chunks(self):
        # 8 KiB is the smallest chunk S3 accepts (except the last)
        data = gen_bytes(8192 * 5 + 10, seed=8)
        r = self._signed_chunked_put("streamed-8k", data, chunk_size=8192)
        self.assertEqual(r.status, 200, r)
        self.assertObjectEquals(self.bucket, "streamed-8k", data)

    def test_corrupted_chunk_signature(self):
        small = gen_bytes(200000, seed=4)
        nchunks = -(-len(small) // 65536) + 1
        # The first, a middle and the final zero-length chunk; then, in a body of several 256 KiB
        # receive pieces, chunks met while the next piece is being received. Nothing is stored.
        large = gen_bytes(900000, seed=9)
        cases = [(small, idx) for idx in (0, 1, nchunks - 1)] + [(large, idx) for idx in (5, 12)]
        for data, idx in cases:
            with self.subTest(size=len(data), corrupt_chunk=idx):
                r = self._signed_chunked_put("victim", data, corrupt_chunk=idx)
                self.assertS3Error(r, "SignatureDoesNotMatch", 403)
                self.assertObjectEquals(self.bucket, "victim", self.old)
                r = self._signed_chunked_put("streamed-corrupt", data, corrupt_chunk=idx)
                self.assertS3Error(r, "SignatureDoesNotMatch", 403)
                self.assertKeyAbsent(self.bucket, "streamed-corrupt")

    def test_chunk_data_altered(self):
        data = gen_bytes(150000, seed=5)
        hdrs = {"Content-Encoding": "aws-chunked",
                "x-amz-decoded-content-length": str(len(data)),
                "Content-Length": str(aws_chunked_encoded_length(len(data)))}
        seed = self.daemon.sign("PUT", f"/{self.bucket}/victim", headers=hdrs,
                                payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                                sign_headers_extra=("content-encoding", "content-length"))
        body = bytearray(aws_chunked_signed_body(data, seed))
        body[-200] ^= 0x01   # a byte of the last data chunk
        r = self.daemon.send(seed, body=bytes(body))
        self.assertS3Error(r, "SignatureDoesNotMatch", 403)
        self.assertObjectEquals(self.bucket, "victim", self.old)

    def _trailer_put(self, key, data, algo, value):
        name = f"x-amz-checksum-{algo}"
        body = aws_chunked_trailer_body(data, name, value)
        hdrs = {"Content-Encoding": "aws-chunked",
                "x-amz-decoded-content-length": str(len(data)),
                "x-amz-trailer": name,
                "x-amz-sdk-checksum-algorithm": algo.upper(),
                "Content-Length": str(len(body))}
        req = self.daemon.sign("PUT", f"/{self.bucket}/{key}", headers=hdrs, body=body,
                               payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                               sign_headers_extra=("content-encoding",))
        return self.daemon.send(req)

    def test_unsigned_trailer_ok(self):
        data = gen_bytes(150001, seed=6)
        for algo in ("crc32", "crc32c", "crc64nvme", "sha1", "sha256"):
            with self.subTest(algorithm=algo):
                key = f"trailer-{algo}"
                value = checksum_b64(algo, data)
                r = self._trailer_put(key, data, algo, value)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.headers.get(f"x-amz-checksum-{algo}"), value)
                self.assertObjectEquals(self.bucket, key, data)
                h = self.s3.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
                self.assertEqual(h.get("Checksum" + algo.upper()), value)

    def test_unsigned_trailer_wrong_checksum(self):
        data = gen_bytes(150001, seed=7)
        for algo in ("crc32", "crc32c", "sha256"):
            with self.subTest(algorithm=algo):
                wrong = checksum_b64(algo, data + b"x")
                r = self._trailer_put("victim", data, algo, wrong)
                self.assertS3Error(r, "BadDigest", 400)
                self.assertObjectEquals(self.bucket, "victim", self.old)
                r = self._trailer_put("trailer-bad-new", data, algo, wrong)
                self.assertS3Error(r, "BadDigest", 400)
                self.assertKeyAbsent(self.bucket, "trailer-bad-new")


if __name__ == "__main__":
    unittest.main()
