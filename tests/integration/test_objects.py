"""Objects: round trips, ranges, metadata, conditionals, checksums, copy, delete."""

import datetime as dt
import os
import subprocess
import unittest
from concurrent.futures import ThreadPoolExecutor

from botocore.exceptions import ClientError

from harness import (MiB, SEGMENT, CoffreTestCase, checksum_b64, gen_bytes, http_date,
                     md5_b64, md5_hex, multipart_etag, multipart_etag_file, sha256,
                     sha256_file, sign_request, write_file, xml_find_all_text)

ROUND_TRIP_SIZES = [0, 1, 65535, 65536, 65537, 5 * MiB]


class RoundTripTest(CoffreTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = "roundtrip"
        cls.s3.create_bucket(Bucket=cls.bucket)

    def _round_trip_put_object(self, client, label):
        for size in ROUND_TRIP_SIZES:
            with self.subTest(size=size, client=label):
                data = gen_bytes(size, seed=size + 7)
                key = f"put/{label}/{size}"
                r = client.put_object(Bucket=self.bucket, Key=key, Body=data)
                self.assertEqual(r["ETag"], f'"{md5_hex(data)}"', "ETag of a single PUT is the MD5")
                got = client.get_object(Bucket=self.bucket, Key=key)
                body = got["Body"].read()
                self.assertEqual(got["ContentLength"], size)
                self.assertEqual(sha256(body), sha256(data))
                self.assertEqual(got["ETag"], f'"{md5_hex(data)}"')
                h = client.head_object(Bucket=self.bucket, Key=key)
                self.assertEqual(h["ContentLength"], size)
                self.assertEqual(h["ETag"], f'"{md5_hex(data)}"')

    def test_put_object_default_checksums(self):
        # botocore's default (when_supported) sends an x-amz-checksum-crc32 with every PUT
        self._round_trip_put_object(self.s3, "when_supported")

    def test_put_object_checksum_when_required(self):
        self._round_trip_put_object(self.s3_req, "when_required")

    def test_put_object_streaming_trailer(self):
        # aws-chunked body, Transfer-Encoding: chunked, CRC32 trailer (botocore over https)
        self._round_trip_put_object(self.s3_tr, "trailer")

    def test_upload_file_download_file(self):
        tmp = self.daemon.tmp
        for size in ROUND_TRIP_SIZES:
            for label, client in self.client_variants:
                with self.subTest(size=size, client=label):
                    src = os.path.join(tmp, f"up-{size}")
                    dst = os.path.join(tmp, f"down-{size}-{label}")
                    digest = write_file(src, size, seed=size + 11)
                    key = f"upload_file/{label}/{size}"
                    client.upload_file(src, self.bucket, key)
                    client.download_file(self.bucket, key, dst)
                    self.assertEqual(os.path.getsize(dst), size)
                    self.assertEqual(sha256_file(dst), digest)
                    os.remove(dst)

    def test_100mib_aws_cli_multipart_round_trip(self):
        tmp = self.daemon.tmp
        src = os.path.join(tmp, "big.bin")
        dst = os.path.join(tmp, "big.out")
        size = 100 * MiB
        digest = write_file(src, size, seed=100)
        self.daemon.aws("s3", "cp", src, f"s3://{self.bucket}/big/100mib.bin", "--only-show-errors")
        h = self.s3.head_object(Bucket=self.bucket, Key="big/100mib.bin")
        self.assertEqual(h["ContentLength"], size)
        # aws s3 cp uses 8 MiB parts: the ETag is S3's md5-of-part-md5s-13
        self.assertEqual(h["ETag"], multipart_etag_file(src, 8 * MiB))
        self.daemon.aws("s3", "cp", f"s3://{self.bucket}/big/100mib.bin", dst, "--only-show-errors")
        self.assertEqual(os.path.getsize(dst), size)
        self.assertEqual(sha256_file(dst), digest)
        # a range in the middle of the multipart object, across a part boundary
        r = self.s3.get_object(Bucket=self.bucket, Key="big/100mib.bin",
                               Range=f"bytes={8 * MiB - 100}-{8 * MiB + 99}")
        with open(src, "rb") as f:
            f.seek(8 * MiB - 100)
            want = f.read(200)
        self.assertEqual(r["Body"].read(), want)
        os.remove(src)
        os.remove(dst)
        self.s3.delete_object(Bucket=self.bucket, Key="big/100mib.bin")

    def test_aws_cli_server_side_copy_of_a_large_object(self):
        # Above its multipart threshold the CLI copies part by part (UploadPartCopy), after reading
        # the source's tags (GetObjectTagging) to carry them over.
        size = 9 * MiB
        data = gen_bytes(size, seed=101)
        self.s3.put_object(Bucket=self.bucket, Key="big/source.bin", Body=data)
        self.assertEqual(self.s3.get_object_tagging(Bucket=self.bucket, Key="big/source.bin")["TagSet"], [])
        self.daemon.aws("s3", "cp", f"s3://{self.bucket}/big/source.bin", f"s3://{self.bucket}/big/copy.bin",
                        "--only-show-errors")
        copied = self.s3.get_object(Bucket=self.bucket, Key="big/copy.bin")
        self.assertEqual(sha256(copied["Body"].read()), sha256(data))
        with self.assertRaises(ClientError) as missing:
            self.s3.get_object_tagging(Bucket=self.bucket, Key="big/absent.bin")
        self.assertEqual(missing.exception.response["Error"]["Code"], "NoSuchKey")
        # a version id Coffre never hands out names no version
        r = self.daemon.request("GET", f"/{self.bucket}/big/source.bin",
                                query=[("tagging", ""), ("versionId", "3HL4kqtJlcpXroDTDmJ")])
        self.assertS3Error(r, "InvalidArgument", 400)
        for key in ("big/source.bin", "big/copy.bin"):
            self.s3.delete_object(Bucket=self.bucket, Key=key)

    def test_many_concurrent_large_gets(self):
        """Up to 24 GETs at once, more than the daemon's large send slots (16): those beyond them step by
        256 KiB instead of 1 MiB, and every one still gets the whole object."""
        data = gen_bytes(5 * MiB + 12345, seed=77)
        self.s3.put_object(Bucket=self.bucket, Key="many-gets", Body=data)
        expected = sha256(data)

        def fetch(_):
            conn = self.daemon.connection()
            try:
                return self.daemon.send(self.daemon.sign("GET", f"/{self.bucket}/many-gets"), conn)
            finally:
                conn.close()

        with ThreadPoolExecutor(max_workers=24) as pool:
            answers = list(pool.map(fetch, range(24)))
        for r in answers:
            self.assertEqual(r.status, 200)
            self.assertEqual(sha256(r.body), expected)

    def test_overwrite_replaces_whole_object(self):
        big = gen_bytes(3 * SEGMENT + 5, seed=1)
        small = b"short"
        self.s3.put_object(Bucket=self.bucket, Key="ow", Body=big)
        self.s3.put_object(Bucket=self.bucket, Key="ow", Body=small)
        self.assertObjectEquals(self.bucket, "ow", small)
        self.s3.put_object(Bucket=self.bucket, Key="ow", Body=big)
        self.assertObjectEquals(self.bucket, "ow", big)

    def test_get_missing_key_and_bucket(self):
        self.assertClientError("NoSuchKey", 404, self.s3.get_object, Bucket=self.bucket,
                               Key="does/not/exist")
        self.assertClientError(None, 404, self.s3.head_object, Bucket=self.bucket,
                               Key="does/not/exist")
        self.assertClientError("NoSuchBucket", 404, self.s3.get_object,
                               Bucket="no-such-bucket-xyz", Key="k")
        self.assertClientError("NoSuchBucket", 404, self.s3.put_object,
                               Bucket="no-such-bucket-xyz", Key="k", Body=b"x")

    def test_virtual_hosted_style(self):
        # Host: <bucket>.localhost:PORT, sent to 127.0.0.1 (an explicit endpoint of
        # http://localhost:PORT with addressing_style=virtual makes botocore put the bucket in
        # the host name; *.localhost resolves to loopback on glibc/systemd, but we don't rely on
        # that: we sign for the virtual host and send the bytes to 127.0.0.1 ourselves).
        data = b"virtual hosted " * 100
        self.s3.put_object(Bucket=self.bucket, Key="vh/obj", Body=data)
        host = f"{self.bucket}.localhost:{self.daemon.port}"
        req = sign_request("GET", host, "/vh/obj", access_key=self.daemon.access_key,
                           secret_key=self.daemon.secret_key)
        r = self.daemon.send(req)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, data)
        # PUT then list through the virtual host
        body = b"put via virtual host"
        req = sign_request("PUT", host, "/vh/put", body=body, access_key=self.daemon.access_key,
                           secret_key=self.daemon.secret_key)
        r = self.daemon.send(req)
        self.assertEqual(r.status, 200, r)
        self.assertObjectEquals(self.bucket, "vh/put", body)
        req = sign_request("GET", host, "/", query=[("list-type", "2"), ("prefix", "vh/")],
                           access_key=self.daemon.access_key, secret_key=self.daemon.secret_key)
        r = self.daemon.send(req)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(xml_find_all_text(r.body, "Key"), ["vh/obj", "vh/put"])

    def test_virtual_hosted_style_with_curl_connect_to(self):
        data = b"curl virtual host"
        self.s3.put_object(Bucket=self.bucket, Key="vh/curl", Body=data)
        vclient = self.daemon.client(addressing_style="virtual",
                                     endpoint=f"http://localhost:{self.daemon.port}")
        url = vclient.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": "vh/curl"}, ExpiresIn=300)
        self.assertIn(f"//{self.bucket}.localhost:{self.daemon.port}/vh/curl", url)
        p = subprocess.run(["curl", "-sS", "--fail-with-body", "--connect-to",
                            f"{self.bucket}.localhost:{self.daemon.port}:127.0.0.1:{self.daemon.port}",
                            url], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
        self.assertEqual(p.stdout, data)


class RangeTest(CoffreTestCase):
    SIZE = 3 * SEGMENT + 1000

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = "ranges"
        cls.s3.create_bucket(Bucket=cls.bucket)
        cls.data = gen_bytes(cls.SIZE, seed=42)
        cls.s3.put_object(Bucket=cls.bucket, Key="obj", Body=cls.data)
        cls.s3.put_object(Bucket=cls.bucket, Key="empty", Body=b"")

    def _range(self, rng, start, end):
        r = self.s3.get_object(Bucket=self.bucket, Key="obj", Range=rng)
        body = r["Body"].read()
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 206, rng)
        self.assertEqual(r["ContentRange"], f"bytes {start}-{end}/{self.SIZE}", rng)
        self.assertEqual(r["ContentLength"], end - start + 1, rng)
        self.assertEqual(body, self.data[start:end + 1], rng)
        self.assertEqual(r["AcceptRanges"], "bytes")

    def test_segment_boundaries(self):
        S, N = SEGMENT, self.SIZE
        cases = [
            ("bytes=65535-65536", 65535, 65536),
            ("bytes=0-0", 0, 0),
            ("bytes=-1", N - 1, N - 1),
            ("bytes=65536-", 65536, N - 1),
            ("bytes=65535-65535", 65535, 65535),
            ("bytes=65536-65536", 65536, 65536),
            ("bytes=0-65535", 0, 65535),
            ("bytes=0-65536", 0, 65536),
            (f"bytes={S - 1}-{2 * S}", S - 1, 2 * S),
            (f"bytes={2 * S}-{3 * S - 1}", 2 * S, 3 * S - 1),
            (f"bytes={3 * S}-", 3 * S, N - 1),
            (f"bytes=-{N - 3 * S}", 3 * S, N - 1),
            (f"bytes=-{N - 3 * S + 1}", 3 * S - 1, N - 1),
            (f"bytes=100-{N * 10}", 100, N - 1),       # end beyond size: clamped
            (f"bytes={N - 1}-{N + 5}", N - 1, N - 1),
            (f"bytes=-{N + 100}", 0, N - 1),           # suffix longer than the object: all of it
            ("bytes=12345-150000", 12345, 150000),
        ]
        for rng, start, end in cases:
            with self.subTest(range=rng):
                self._range(rng, start, end)

    def test_random_ranges(self):
        import random
        rnd = random.Random(5)
        for _ in range(25):
            a = rnd.randrange(self.SIZE)
            b = rnd.randrange(a, self.SIZE)
            with self.subTest(a=a, b=b):
                self._range(f"bytes={a}-{b}", a, b)

    def test_unsatisfiable(self):
        for rng in (f"bytes={self.SIZE}-", f"bytes={self.SIZE}-{self.SIZE + 10}",
                    f"bytes={self.SIZE + 1000}-{self.SIZE + 2000}"):
            with self.subTest(range=rng):
                self.assertClientError("InvalidRange", 416, self.s3.get_object,
                                       Bucket=self.bucket, Key="obj", Range=rng)

    def test_range_on_empty_object(self):
        # S3 answers 416 InvalidRange for any byte range on a zero-length object
        self.assertClientError("InvalidRange", 416, self.s3.get_object, Bucket=self.bucket,
                               Key="empty", Range="bytes=0-0")

    def test_head_with_range(self):
        r = self.s3.head_object(Bucket=self.bucket, Key="obj", Range="bytes=65535-65536")
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 206)
        self.assertEqual(r["ContentLength"], 2)
        self.assertEqual(r["ContentRange"], f"bytes 65535-65536/{self.SIZE}")

    def test_invalid_range_syntax_is_ignored(self):
        # S3 ignores a Range header it can't parse and returns the whole object (200)
        r = self.daemon.request("GET", f"/{self.bucket}/obj", headers={"Range": "bytes=abc"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sha256(r.body), sha256(self.data))


class MetadataTest(CoffreTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = "meta"
        cls.s3.create_bucket(Bucket=cls.bucket)

    def test_system_and_user_metadata(self):
        expires = dt.datetime(2031, 5, 17, 8, 30, 0, tzinfo=dt.timezone.utc)
        for label, client in self.client_variants:
            with self.subTest(client=label):
                key = f"doc-{label}.pdf"
                data = gen_bytes(70000, seed=3)
                client.put_object(
                    Bucket=self.bucket, Key=key, Body=data,
                    Metadata={"dossier-id": "PRT-0042", "Owner": "Back Office", "empty": ""},
                    ContentType="application/pdf", ContentEncoding="identity",
                    ContentDisposition='attachment; filename="dossier.pdf"',
                    ContentLanguage="fr-FR", CacheControl="private, max-age=60",
                    Expires=expires)
                for op in ("head", "get"):
                    if op == "head":
                        r = client.head_object(Bucket=self.bucket, Key=key)
                    else:
                        r = client.get_object(Bucket=self.bucket, Key=key)
                        self.assertEqual(r["Body"].read(), data)
                    self.assertEqual(r["Metadata"], {"dossier-id": "PRT-0042",
                                                     "owner": "Back Office", "empty": ""}, op)
                    self.assertEqual(r["ContentType"], "application/pdf", op)
                    self.assertEqual(r["ContentEncoding"], "identity", op)
                    self.assertEqual(r["ContentDisposition"], 'attachment; filename="dossier.pdf"', op)
                    self.assertEqual(r["ContentLanguage"], "fr-FR", op)
                    self.assertEqual(r["CacheControl"], "private, max-age=60", op)
                    self.assertEqual(r["ResponseMetadata"]["HTTPHeaders"].get("expires"),
                                     http_date(expires), op)
                    self.assertIsNotNone(r.get("LastModified"), op)

    def test_every_object_answer_reports_sse_s3(self):
        """Every object is encrypted at rest, which S3 calls SSE-S3: PUT, GET, HEAD, Copy and the
        multipart calls say AES256 whether or not the client asked for it, as AWS answers."""
        s3, bucket = self.s3, self.bucket
        answers = {"put": s3.put_object(Bucket=bucket, Key="sse/plain", Body=b"x" * 100),
                   "put asking": s3.put_object(Bucket=bucket, Key="sse/asked", Body=b"y" * 100,
                                               ServerSideEncryption="AES256"),
                   "get": s3.get_object(Bucket=bucket, Key="sse/plain"),
                   "ranged get": s3.get_object(Bucket=bucket, Key="sse/plain", Range="bytes=0-9"),
                   "head": s3.head_object(Bucket=bucket, Key="sse/asked"),
                   "copy": s3.copy_object(Bucket=bucket, Key="sse/copy", CopySource=f"{bucket}/sse/plain")}
        upload = s3.create_multipart_upload(Bucket=bucket, Key="sse/multi")
        answers["create upload"] = upload
        answers["upload part"] = s3.upload_part(Bucket=bucket, Key="sse/multi", UploadId=upload["UploadId"],
                                                PartNumber=1, Body=b"z" * (5 << 20))
        answers["upload part copy"] = s3.upload_part_copy(Bucket=bucket, Key="sse/multi",
                                                          UploadId=upload["UploadId"], PartNumber=2,
                                                          CopySource=f"{bucket}/sse/plain")
        answers["complete"] = s3.complete_multipart_upload(
            Bucket=bucket, Key="sse/multi", UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": answers["upload part"]["ETag"]},
                                       {"PartNumber": 2,
                                        "ETag": answers["upload part copy"]["CopyPartResult"]["ETag"]}]})
        for what, answer in answers.items():
            self.assertEqual(answer.get("ServerSideEncryption"), "AES256", what)

    def test_sse_methods_not_offered_are_refused_before_anything_is_stored(self):
        # aws:kms:dsse is S3's but not Coffre's: 501; aws:kms naming a key the tenant does not have
        # is KMS's 400; a method S3 does not have is a 400.
        for headers, code, status in (
                ({"x-amz-server-side-encryption": "aws:kms:dsse"}, "NotImplemented", 501),
                ({"x-amz-server-side-encryption": "aws:kms",
                  "x-amz-server-side-encryption-aws-kms-key-id": "no-such-key"}, "KMS.NotFoundException", 400),
                ({"x-amz-server-side-encryption": "ROT13"}, "InvalidArgument", 400)):
            r = self.daemon.request("PUT", f"/{self.bucket}/sse/refused", body=b"secret", headers=headers)
            self.assertS3Error(r, code, status)
        r = self.daemon.request("HEAD", f"/{self.bucket}/sse/refused")
        self.assertEqual(r.status, 404)

    def test_content_encoding_gzip_is_kept(self):
        # a gzip'd object keeps Content-Encoding: gzip (aws-chunked, if any, is not stored)
        import gzip
        data = gzip.compress(b"hello " * 1000)
        for label, client in self.client_variants:
            with self.subTest(client=label):
                client.put_object(Bucket=self.bucket, Key=f"gz-{label}", Body=data,
                                  ContentEncoding="gzip", ContentType="text/plain")
                r = client.get_object(Bucket=self.bucket, Key=f"gz-{label}")
                self.assertEqual(r["ContentEncoding"], "gzip")
                self.assertEqual(r["Body"].read(), data)

    def test_default_content_type(self):
        self.s3.put_object(Bucket=self.bucket, Key="no-ct", Body=b"abc")
        r = self.s3.head_object(Bucket=self.bucket, Key="no-ct")
        # S3 stores binary/octet-stream when the client sent no Content-Type
        self.assertEqual(r["ContentType"], "binary/octet-stream")

    def test_response_overrides(self):
        data = b"override me"
        self.s3.put_object(Bucket=self.bucket, Key="ovr", Body=data, ContentType="text/plain",
                           CacheControl="no-cache")
        r = self.s3.get_object(
            Bucket=self.bucket, Key="ovr",
            ResponseContentType="application/x-custom",
            ResponseContentDisposition='inline; filename="x.txt"',
            ResponseContentEncoding="x-enc", ResponseContentLanguage="de-DE",
            ResponseCacheControl="max-age=5",
            ResponseExpires=dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc))
        self.assertEqual(r["Body"].read(), data)
        self.assertEqual(r["ContentType"], "application/x-custom")
        self.assertEqual(r["ContentDisposition"], 'inline; filename="x.txt"')
        self.assertEqual(r["ContentEncoding"], "x-enc")
        self.assertEqual(r["ContentLanguage"], "de-DE")
        self.assertEqual(r["CacheControl"], "max-age=5")
        self.assertEqual(r["ResponseMetadata"]["HTTPHeaders"]["expires"],
                         "Wed, 02 Jan 2030 03:04:05 GMT")
        # the stored metadata is unchanged
        h = self.s3.head_object(Bucket=self.bucket, Key="ovr")
        self.assertEqual(h["ContentType"], "text/plain")
        self.assertEqual(h["CacheControl"], "no-cache")

    def test_metadata_too_large(self):
        # S3: user metadata is limited to 2 KB (names + values)
        self.assertClientError("MetadataTooLarge", 400, self.s3.put_object, Bucket=self.bucket,
                               Key="bigmeta", Body=b"x", Metadata={"big": "v" * 2100})
        self.assertKeyAbsent(self.bucket, "bigmeta")


class ConditionalTest(CoffreTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = "cond"
        cls.s3.create_bucket(Bucket=cls.bucket)
        cls.data = gen_bytes(1000, seed=9)
        r = cls.s3.put_object(Bucket=cls.bucket, Key="obj", Body=cls.data)
        cls.etag = r["ETag"]
        cls.mtime = cls.s3.head_object(Bucket=cls.bucket, Key="obj")["LastModified"]

    def test_if_match(self):
        for op in (self.s3.get_object, self.s3.head_object):
            with self.subTest(op=op.__name__):
                r = op(Bucket=self.bucket, Key="obj", IfMatch=self.etag)
                self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)
                code = "PreconditionFailed" if op == self.s3.get_object else None
                self.assertClientError(code, 412, op, Bucket=self.bucket, Key="obj",
                                       IfMatch='"0123456789abcdef0123456789abcdef"')

    def test_if_none_match(self):
        for op in (self.s3.get_object, self.s3.head_object):
            with self.subTest(op=op.__name__):
                self.assertClientError(None, 304, op, Bucket=self.bucket, Key="obj",
                                       IfNoneMatch=self.etag)
                r = op(Bucket=self.bucket, Key="obj", IfNoneMatch='"0123456789abcdef0123456789abcdef"')
                self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)

    def test_if_modified_since(self):
        later = self.mtime + dt.timedelta(hours=1)
        earlier = self.mtime - dt.timedelta(hours=1)
        for op in (self.s3.get_object, self.s3.head_object):
            with self.subTest(op=op.__name__):
                self.assertClientError(None, 304, op, Bucket=self.bucket, Key="obj",
                                       IfModifiedSince=later)
                r = op(Bucket=self.bucket, Key="obj", IfModifiedSince=earlier)
                self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)

    def test_if_unmodified_since(self):
        later = self.mtime + dt.timedelta(hours=1)
        earlier = self.mtime - dt.timedelta(hours=1)
        for op in (self.s3.get_object, self.s3.head_object):
            with self.subTest(op=op.__name__):
                code = "PreconditionFailed" if op == self.s3.get_object else None
                self.assertClientError(code, 412, op, Bucket=self.bucket, Key="obj",
                                       IfUnmodifiedSince=earlier)
                r = op(Bucket=self.bucket, Key="obj", IfUnmodifiedSince=later)
                self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)

    def test_precedence_rules(self):
        earlier = self.mtime - dt.timedelta(hours=1)
        later = self.mtime + dt.timedelta(hours=1)
        # If-Match true + If-Unmodified-Since false -> 200 (S3 / RFC 7232)
        r = self.s3.get_object(Bucket=self.bucket, Key="obj", IfMatch=self.etag,
                               IfUnmodifiedSince=earlier)
        self.assertEqual(r["Body"].read(), self.data)
        # If-None-Match false + If-Modified-Since true -> 304
        self.assertClientError(None, 304, self.s3.get_object, Bucket=self.bucket, Key="obj",
                               IfNoneMatch=self.etag, IfModifiedSince=earlier)
        # If-None-Match true (no match) + If-Modified-Since false -> 200
        r = self.s3.get_object(Bucket=self.bucket, Key="obj", IfNoneMatch='"nope"',
                               IfModifiedSince=later)
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)

    def test_304_carries_etag(self):
        r = self.daemon.request("GET", f"/{self.bucket}/obj", headers={"If-None-Match": self.etag})
        self.assertEqual(r.status, 304, r)
        self.assertEqual(r.body, b"")
        self.assertEqual(r.headers.get("etag"), self.etag)

    def test_conditional_put_if_none_match_star(self):
        key = "cput-new"
        r = self.s3.put_object(Bucket=self.bucket, Key=key, Body=b"first", IfNoneMatch="*")
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)
        self.assertClientError("PreconditionFailed", 412, self.s3.put_object,
                               Bucket=self.bucket, Key=key, Body=b"second", IfNoneMatch="*")
        self.assertObjectEquals(self.bucket, key, b"first")

    def test_conditional_put_if_match(self):
        key = "cput-match"
        etag = self.s3.put_object(Bucket=self.bucket, Key=key, Body=b"v1")["ETag"]
        self.assertClientError("PreconditionFailed", 412, self.s3.put_object,
                               Bucket=self.bucket, Key=key, Body=b"v2",
                               IfMatch='"0123456789abcdef0123456789abcdef"')
        self.assertObjectEquals(self.bucket, key, b"v1")
        r = self.s3.put_object(Bucket=self.bucket, Key=key, Body=b"v2", IfMatch=etag)
        self.assertEqual(r["ETag"], f'"{md5_hex(b"v2")}"')
        self.assertObjectEquals(self.bucket, key, b"v2")
        # If-Match on a key that does not exist: S3 answers 404 NoSuchKey
        self.assertClientError("NoSuchKey", 404, self.s3.put_object, Bucket=self.bucket,
                               Key="cput-absent", Body=b"x", IfMatch=etag)
        self.assertKeyAbsent(self.bucket, "cput-absent")


class IntegrityTest(CoffreTestCase):
    """ETag, Content-MD5 and flexible checksums."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = "integrity"
        cls.s3.create_bucket(Bucket=cls.bucket)

    def test_content_md5_ok(self):
        data = gen_bytes(100000, seed=2)
        r = self.s3_req.put_object(Bucket=self.bucket, Key="md5-ok", Body=data,
                                   ContentMD5=md5_b64(data))
        self.assertEqual(r["ETag"], f'"{md5_hex(data)}"')
        self.assertObjectEquals(self.bucket, "md5-ok", data)

    def test_content_md5_mismatch_bad_digest(self):
        data = gen_bytes(1000, seed=2)
        self.s3.put_object(Bucket=self.bucket, Key="md5-bad", Body=b"old")
        for label, client in self.client_variants:
            with self.subTest(client=label):
                self.assertClientError("BadDigest", 400, client.put_object, Bucket=self.bucket,
                                       Key="md5-bad", Body=data, ContentMD5=md5_b64(b"other"))
                self.assertObjectEquals(self.bucket, "md5-bad", b"old")

    def test_content_md5_garbage_invalid_digest(self):
        for bad in ("not-base64!!", "AAAA"):  # not base64 / not 16 bytes
            with self.subTest(md5=bad):
                r = self.daemon.request("PUT", f"/{self.bucket}/md5-garbage", body=b"data",
                                        headers={"Content-MD5": bad})
                self.assertS3Error(r, "InvalidDigest", 400)
        self.assertKeyAbsent(self.bucket, "md5-garbage")

    def test_checksums_stored_and_returned(self):
        data = gen_bytes(200000, seed=4)
        for algo in ("crc32", "crc32c", "crc64nvme", "sha1", "sha256"):
            with self.subTest(algorithm=algo):
                value = checksum_b64(algo, data)
                param = "Checksum" + algo.upper()
                key = f"ck-{algo}"
                r = self.s3_req.put_object(Bucket=self.bucket, Key=key, Body=data,
                                           **{param: value})
                self.assertEqual(r.get(param), value, "PUT echoes the checksum")
                h = self.s3_req.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
                self.assertEqual(h.get(param), value)
                g = self.s3_req.get_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
                self.assertEqual(g["Body"].read(), data)
                self.assertEqual(g.get(param), value)
                # without ChecksumMode the checksum is not returned (as S3)
                h2 = self.s3_req.head_object(Bucket=self.bucket, Key=key)
                self.assertNotIn(param, h2)

    def test_default_crc32_from_boto3(self):
        # botocore's default (when_supported) computes and sends a CRC32, in a header over
        # http and in an aws-chunked trailer over https
        data = gen_bytes(150000, seed=5)
        for label, client in (("header", self.s3), ("trailer", self.s3_tr)):
            with self.subTest(client=label):
                client.put_object(Bucket=self.bucket, Key=f"ck-default-{label}", Body=data)
                h = self.s3.head_object(Bucket=self.bucket, Key=f"ck-default-{label}",
                                        ChecksumMode="ENABLED")
                self.assertEqual(h.get("ChecksumCRC32"), checksum_b64("crc32", data))
                g = self.s3.get_object(Bucket=self.bucket, Key=f"ck-default-{label}",
                                       ChecksumMode="ENABLED")
                self.assertEqual(g["Body"].read(), data)  # botocore validates the CRC32 too

    def test_trailer_sha256_algorithm(self):
        data = gen_bytes(100001, seed=15)
        self.s3_tr.put_object(Bucket=self.bucket, Key="ck-trailer-sha256", Body=data,
                              ChecksumAlgorithm="SHA256")
        h = self.s3.head_object(Bucket=self.bucket, Key="ck-trailer-sha256", ChecksumMode="ENABLED")
        self.assertEqual(h.get("ChecksumSHA256"), checksum_b64("sha256", data))

    def test_wrong_checksum_header_bad_digest(self):
        data = gen_bytes(5000, seed=6)
        self.s3.put_object(Bucket=self.bucket, Key="ck-wrong", Body=b"previous")
        for algo in ("crc32", "crc32c", "crc64nvme", "sha1", "sha256"):
            with self.subTest(algorithm=algo):
                wrong = checksum_b64(algo, b"something else")
                self.assertClientError("BadDigest", 400, self.s3_req.put_object,
                                       Bucket=self.bucket, Key="ck-wrong", Body=data,
                                       **{"Checksum" + algo.upper(): wrong})
                self.assertObjectEquals(self.bucket, "ck-wrong", b"previous")

    def test_checksum_ranged_get_not_returned_whole(self):
        data = gen_bytes(100000, seed=8)
        self.s3_req.put_object(Bucket=self.bucket, Key="ck-range", Body=data,
                               ChecksumSHA256=checksum_b64("sha256", data))
        r = self.s3_req.get_object(Bucket=self.bucket, Key="ck-range", Range="bytes=10-20",
                                   ChecksumMode="ENABLED")
        self.assertEqual(r["Body"].read(), data[10:21])
        # a full-object checksum must not be presented as the checksum of a range
        self.assertNotEqual(r.get("ChecksumSHA256"), checksum_b64("sha256", data))


class CopyDeleteTest(CoffreTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.b1, cls.b2 = "copy-src", "copy-dst"  # noqa
        cls.s3.create_bucket(Bucket=cls.b1)
        cls.s3.create_bucket(Bucket=cls.b2)
        cls.data = gen_bytes(3 * SEGMENT + 17, seed=12)
        cls.etag = cls.s3.put_object(Bucket=cls.b1, Key="src", Body=cls.data,
                                     ContentType="text/csv", Metadata={"a": "1"},
                                     CacheControl="no-store")["ETag"]

    def test_copy_default_directive_copies_metadata(self):
        r = self.s3.copy_object(Bucket=self.b1, Key="copy1",
                                CopySource={"Bucket": self.b1, "Key": "src"})
        self.assertEqual(r["CopyObjectResult"]["ETag"], self.etag)
        h = self.s3.head_object(Bucket=self.b1, Key="copy1")
        self.assertEqual(h["Metadata"], {"a": "1"})
        self.assertEqual(h["ContentType"], "text/csv")
        self.assertEqual(h["CacheControl"], "no-store")
        self.assertObjectEquals(self.b1, "copy1", self.data)
        r = self.s3.copy_object(Bucket=self.b1, Key="copy1b", MetadataDirective="COPY",
                                CopySource={"Bucket": self.b1, "Key": "src"},
                                Metadata={"ignored": "yes"})
        self.assertEqual(self.s3.head_object(Bucket=self.b1, Key="copy1b")["Metadata"], {"a": "1"})

    def test_copy_replace_directive(self):
        self.s3.copy_object(Bucket=self.b1, Key="copy2", MetadataDirective="REPLACE",
                            CopySource={"Bucket": self.b1, "Key": "src"},
                            Metadata={"b": "2"}, ContentType="application/json")
        h = self.s3.head_object(Bucket=self.b1, Key="copy2")
        self.assertEqual(h["Metadata"], {"b": "2"})
        self.assertEqual(h["ContentType"], "application/json")
        self.assertNotIn("CacheControl", h)
        self.assertObjectEquals(self.b1, "copy2", self.data)

    def test_copy_across_buckets_and_ranges_of_copy(self):
        self.s3.copy_object(Bucket=self.b2, Key="dir/copy3",
                            CopySource={"Bucket": self.b1, "Key": "src"})
        self.assertObjectEquals(self.b2, "dir/copy3", self.data)
        r = self.s3.get_object(Bucket=self.b2, Key="dir/copy3", Range="bytes=65530-131080")
        self.assertEqual(r["Body"].read(), self.data[65530:131081])
        # source untouched
        self.assertObjectEquals(self.b1, "src", self.data)

    def test_copy_onto_itself(self):
        self.s3.put_object(Bucket=self.b1, Key="self", Body=self.data, Metadata={"v": "1"})
        # without REPLACE: S3 refuses with 400 InvalidRequest
        self.assertClientError("InvalidRequest", 400, self.s3.copy_object, Bucket=self.b1,
                               Key="self", CopySource={"Bucket": self.b1, "Key": "self"})
        self.s3.copy_object(Bucket=self.b1, Key="self", MetadataDirective="REPLACE",
                            CopySource={"Bucket": self.b1, "Key": "self"},
                            Metadata={"v": "2"}, ContentType="text/x-new")
        h = self.s3.head_object(Bucket=self.b1, Key="self")
        self.assertEqual(h["Metadata"], {"v": "2"})
        self.assertEqual(h["ContentType"], "text/x-new")
        self.assertObjectEquals(self.b1, "self", self.data)

    def test_copy_source_conditions(self):
        self.assertClientError("PreconditionFailed", 412, self.s3.copy_object, Bucket=self.b2,
                               Key="cond-copy", CopySource={"Bucket": self.b1, "Key": "src"},
                               CopySourceIfMatch='"0123456789abcdef0123456789abcdef"')
        self.assertClientError("PreconditionFailed", 412, self.s3.copy_object, Bucket=self.b2,
                               Key="cond-copy", CopySource={"Bucket": self.b1, "Key": "src"},
                               CopySourceIfNoneMatch=self.etag)
        future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
        past = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
        self.assertClientError("PreconditionFailed", 412, self.s3.copy_object, Bucket=self.b2,
                               Key="cond-copy", CopySource={"Bucket": self.b1, "Key": "src"},
                               CopySourceIfUnmodifiedSince=past)
        self.assertKeyAbsent(self.b2, "cond-copy")
        self.s3.copy_object(Bucket=self.b2, Key="cond-copy",
                            CopySource={"Bucket": self.b1, "Key": "src"},
                            CopySourceIfMatch=self.etag, CopySourceIfUnmodifiedSince=future)
        self.assertObjectEquals(self.b2, "cond-copy", self.data)

    def test_copy_missing_source(self):
        self.assertClientError("NoSuchKey", 404, self.s3.copy_object, Bucket=self.b2, Key="x",
                               CopySource={"Bucket": self.b1, "Key": "missing"})
        self.assertClientError("NoSuchBucket", 404, self.s3.copy_object, Bucket=self.b2, Key="x",
                               CopySource={"Bucket": "no-such-bucket-abc", "Key": "src"})

    def test_delete_object(self):
        self.s3.put_object(Bucket=self.b1, Key="del", Body=b"x")
        r = self.s3.delete_object(Bucket=self.b1, Key="del")
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.assertClientError("NoSuchKey", 404, self.s3.get_object, Bucket=self.b1, Key="del")
        # deleting a key that does not exist is a success in S3
        r = self.s3.delete_object(Bucket=self.b1, Key="del")
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 204)

    def test_delete_objects_verbose_and_quiet(self):
        keys = [f"multi/{i}" for i in range(10)]
        for k in keys:
            self.s3.put_object(Bucket=self.b2, Key=k, Body=k.encode())
        r = self.s3.delete_objects(Bucket=self.b2, Delete={
            "Objects": [{"Key": k} for k in keys[:5]] + [{"Key": "multi/never-existed"}]})
        self.assertEqual(sorted(d["Key"] for d in r.get("Deleted", [])),
                         sorted(keys[:5] + ["multi/never-existed"]))
        self.assertEqual(r.get("Errors", []), [])
        r = self.s3.delete_objects(Bucket=self.b2, Delete={
            "Objects": [{"Key": k} for k in keys[5:]], "Quiet": True})
        self.assertEqual(r.get("Deleted", []), [])
        self.assertEqual(r.get("Errors", []), [])
        left = self.s3.list_objects_v2(Bucket=self.b2, Prefix="multi/")
        self.assertEqual(left["KeyCount"], 0)
        self.assertNotIn("Contents", left)


class PartNumberTest(CoffreTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = "parts"
        cls.s3.create_bucket(Bucket=cls.bucket)
        cls.p1 = gen_bytes(5 * MiB, seed=21)
        cls.p2 = gen_bytes(MiB + 3, seed=22)
        up = cls.s3.create_multipart_upload(Bucket=cls.bucket, Key="mp")
        e1 = cls.s3.upload_part(Bucket=cls.bucket, Key="mp", UploadId=up["UploadId"],
                                PartNumber=1, Body=cls.p1)["ETag"]
        e2 = cls.s3.upload_part(Bucket=cls.bucket, Key="mp", UploadId=up["UploadId"],
                                PartNumber=2, Body=cls.p2)["ETag"]
        cls.s3.complete_multipart_upload(
            Bucket=cls.bucket, Key="mp", UploadId=up["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                       {"PartNumber": 2, "ETag": e2}]})

    def test_get_part_number(self):
        total = len(self.p1) + len(self.p2)
        r = self.s3.get_object(Bucket=self.bucket, Key="mp", PartNumber=1)
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 206)
        self.assertEqual(r["PartsCount"], 2)
        self.assertEqual(r["ContentLength"], len(self.p1))
        self.assertEqual(r["ContentRange"], f"bytes 0-{len(self.p1) - 1}/{total}")
        self.assertEqual(sha256(r["Body"].read()), sha256(self.p1))
        self.assertEqual(r["ETag"], multipart_etag([self.p1, self.p2]))
        r = self.s3.get_object(Bucket=self.bucket, Key="mp", PartNumber=2)
        self.assertEqual(r["ContentRange"], f"bytes {len(self.p1)}-{total - 1}/{total}")
        self.assertEqual(r["Body"].read(), self.p2)
        h = self.s3.head_object(Bucket=self.bucket, Key="mp", PartNumber=2)
        self.assertEqual(h["ContentLength"], len(self.p2))
        self.assertEqual(h["PartsCount"], 2)

    def test_part_number_out_of_range(self):
        self.assertClientError("InvalidPartNumber", 416, self.s3.get_object, Bucket=self.bucket,
                               Key="mp", PartNumber=3)

    def test_whole_multipart_object(self):
        r = self.s3.get_object(Bucket=self.bucket, Key="mp")
        self.assertEqual(sha256(r["Body"].read()), sha256(self.p1 + self.p2))
        # As S3: the parts count answers only a request that named a part.
        self.assertNotIn("PartsCount", r)
        self.assertNotIn("PartsCount", self.s3.head_object(Bucket=self.bucket, Key="mp"))


if __name__ == "__main__":
    unittest.main()
