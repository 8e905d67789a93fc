"""Multipart uploads: create, upload, copy parts, list, complete, abort, and their errors."""

import unittest

from harness import MiB, CoffreTestCase, gen_bytes, md5_hex, multipart_etag, sha256

P5 = 5 * MiB


class MultipartTest(CoffreTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = "mpu"
        cls.s3.create_bucket(Bucket=cls.bucket)
        cls.part_a = gen_bytes(P5, seed=31)
        cls.part_b = gen_bytes(P5 + 1, seed=32)
        cls.part_c = gen_bytes(1000, seed=33)

    def _create(self, key, client=None, **kw):
        return (client or self.s3).create_multipart_upload(Bucket=self.bucket, Key=key, **kw)["UploadId"]

    def _part(self, key, upload_id, n, data, client=None):
        r = (client or self.s3).upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                            PartNumber=n, Body=data)
        self.assertEqual(r["ETag"], f'"{md5_hex(data)}"', "a part's ETag is its MD5")
        return r["ETag"]

    def test_complete_three_parts(self):
        for label, client in self.client_variants:
            with self.subTest(client=label):
                key = f"three-{label}"
                uid = self._create(key, client=client, ContentType="application/pdf",
                                   Metadata={"dossier": "42"})
                # not visible before Complete
                self.assertKeyAbsent(self.bucket, key)
                parts = [self.part_a, self.part_b, self.part_c]
                etags = [self._part(key, uid, i + 1, p, client=client) for i, p in enumerate(parts)]
                r = client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=uid,
                    MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e}
                                               for i, e in enumerate(etags)]})
                want_etag = multipart_etag(parts)
                self.assertEqual(r["ETag"], want_etag)
                self.assertEqual(r["Key"], key)
                self.assertEqual(r["Bucket"], self.bucket)
                h = self.s3.head_object(Bucket=self.bucket, Key=key)
                self.assertEqual(h["ETag"], want_etag)
                self.assertEqual(h["ContentLength"], sum(map(len, parts)))
                self.assertEqual(h["ContentType"], "application/pdf")
                self.assertEqual(h["Metadata"], {"dossier": "42"})
                body = self.get_bytes(self.bucket, key)
                self.assertEqual(sha256(body), sha256(b"".join(parts)))
                # a range across the first part boundary
                g = self.s3.get_object(Bucket=self.bucket, Key=key,
                                       Range=f"bytes={P5 - 10}-{P5 + 9}")
                self.assertEqual(g["Body"].read(), (self.part_a + self.part_b)[P5 - 10:P5 + 10])
                # the upload is gone
                self.assertClientError("NoSuchUpload", 404, self.s3.list_parts,
                                       Bucket=self.bucket, Key=key, UploadId=uid)

    def test_part_overwrite_and_sparse_numbers(self):
        key = "sparse"
        uid = self._create(key)
        self._part(key, uid, 3, gen_bytes(P5, seed=99))
        e3 = self._part(key, uid, 3, self.part_a)   # re-upload: last one wins
        e7 = self._part(key, uid, 7, self.part_c)
        r = self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 3, "ETag": e3}, {"PartNumber": 7, "ETag": e7}]})
        self.assertEqual(r["ETag"], multipart_etag([self.part_a, self.part_c]))
        self.assertObjectEquals(self.bucket, key, self.part_a + self.part_c)

    def test_complete_subset_of_parts(self):
        # parts uploaded but not listed in Complete are discarded
        key = "subset"
        uid = self._create(key)
        e1 = self._part(key, uid, 1, self.part_a)
        self._part(key, uid, 2, self.part_c)
        self.s3.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid,
                                          MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]})
        self.assertObjectEquals(self.bucket, key, self.part_a)

    def test_upload_part_copy_with_range(self):
        src = gen_bytes(P5 + 300000, seed=40)
        self.s3.put_object(Bucket=self.bucket, Key="copy-source", Body=src)
        key = "from-copy"
        uid = self._create(key)
        e1 = self._part(key, uid, 1, self.part_a)
        # a 5 MiB range that starts off a segment boundary
        r2 = self.s3.upload_part_copy(Bucket=self.bucket, Key=key, UploadId=uid, PartNumber=2,
                                      CopySource={"Bucket": self.bucket, "Key": "copy-source"},
                                      CopySourceRange=f"bytes=1000-{1000 + P5 - 1}")
        self.assertEqual(r2["CopyPartResult"]["ETag"], f'"{md5_hex(src[1000:1000 + P5])}"')
        r3 = self.s3.upload_part_copy(Bucket=self.bucket, Key=key, UploadId=uid, PartNumber=3,
                                      CopySource={"Bucket": self.bucket, "Key": "copy-source"},
                                      CopySourceRange="bytes=65530-131080")
        self.assertEqual(r3["CopyPartResult"]["ETag"], f'"{md5_hex(src[65530:131081])}"')
        self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                       {"PartNumber": 2, "ETag": r2["CopyPartResult"]["ETag"]},
                                       {"PartNumber": 3, "ETag": r3["CopyPartResult"]["ETag"]}]})
        want = self.part_a + src[1000:1000 + P5] + src[65530:131081]
        self.assertObjectEquals(self.bucket, key, want)

    def test_upload_part_copy_whole_object_and_bad_range(self):
        src = b"whole small source object"
        self.s3.put_object(Bucket=self.bucket, Key="small-source", Body=src)
        key = "copy-whole"
        uid = self._create(key)
        r = self.s3.upload_part_copy(Bucket=self.bucket, Key=key, UploadId=uid, PartNumber=1,
                                     CopySource={"Bucket": self.bucket, "Key": "small-source"})
        self.assertEqual(r["CopyPartResult"]["ETag"], f'"{md5_hex(src)}"')
        # a range beyond the source's end is refused (S3: 400 InvalidArgument "Range specified
        # is not valid for source object of size: N"; 416 InvalidRange is also seen)
        self.assertClientErrorIn([("InvalidArgument", 400), ("InvalidRange", 416)],
                               self.s3.upload_part_copy, Bucket=self.bucket,
                               Key=key, UploadId=uid, PartNumber=2,
                               CopySource={"Bucket": self.bucket, "Key": "small-source"},
                               CopySourceRange="bytes=10-1000")
        self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": r["CopyPartResult"]["ETag"]}]})
        self.assertObjectEquals(self.bucket, key, src)

    def test_list_parts(self):
        key = "listparts"
        uid = self._create(key)
        datas = {1: self.part_a, 2: self.part_c, 4: b"four", 5: b"five!"}
        etags = {n: self._part(key, uid, n, d) for n, d in datas.items()}
        r = self.s3.list_parts(Bucket=self.bucket, Key=key, UploadId=uid)
        self.assertEqual([(p["PartNumber"], p["ETag"], p["Size"]) for p in r["Parts"]],
                         [(n, etags[n], len(datas[n])) for n in sorted(datas)])
        self.assertFalse(r["IsTruncated"])
        self.assertEqual(r["UploadId"], uid)
        self.assertEqual(r["Key"], key)
        # pagination
        r = self.s3.list_parts(Bucket=self.bucket, Key=key, UploadId=uid, MaxParts=2)
        self.assertEqual([p["PartNumber"] for p in r["Parts"]], [1, 2])
        self.assertTrue(r["IsTruncated"])
        self.assertEqual(int(r["NextPartNumberMarker"]), 2)
        r = self.s3.list_parts(Bucket=self.bucket, Key=key, UploadId=uid, MaxParts=2,
                               PartNumberMarker=2)
        self.assertEqual([p["PartNumber"] for p in r["Parts"]], [4, 5])
        self.assertFalse(r["IsTruncated"])
        self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid)

    def test_list_multipart_uploads(self):
        ids = {}
        for key in ("lmu/a", "lmu/b", "lmu/b", "other/c"):
            ids.setdefault(key, []).append(self._create(key))
        r = self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix="lmu/")
        got = sorted((u["Key"], u["UploadId"]) for u in r.get("Uploads", []))
        want = sorted((k, u) for k, us in ids.items() for u in us if k.startswith("lmu/"))
        self.assertEqual(got, want)
        r = self.s3.list_multipart_uploads(Bucket=self.bucket)
        all_keys = {(u["Key"], u["UploadId"]) for u in r.get("Uploads", [])}
        self.assertIn(("other/c", ids["other/c"][0]), all_keys)
        # keys sorted; uploads of the same key listed together
        r = self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix="lmu/")
        self.assertEqual([u["Key"] for u in r["Uploads"]], ["lmu/a", "lmu/b", "lmu/b"])
        for k, us in ids.items():
            for u in us:
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=k, UploadId=u)
        r = self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix="lmu/")
        self.assertEqual(r.get("Uploads", []), [])

    def test_abort(self):
        key = "aborted"
        uid = self._create(key)
        self._part(key, uid, 1, self.part_c)
        r = self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid)
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.assertClientError("NoSuchUpload", 404, self.s3.list_parts, Bucket=self.bucket,
                               Key=key, UploadId=uid)
        self.assertClientError("NoSuchUpload", 404, self.s3.upload_part, Bucket=self.bucket,
                               Key=key, UploadId=uid, PartNumber=2, Body=b"x")
        self.assertClientError("NoSuchUpload", 404, self.s3.complete_multipart_upload,
                               Bucket=self.bucket, Key=key, UploadId=uid,
                               MultipartUpload={"Parts": [{"PartNumber": 1,
                                                           "ETag": f'"{md5_hex(self.part_c)}"'}]})
        self.assertKeyAbsent(self.bucket, key)

    def test_a_retried_complete_gets_the_first_answer(self):
        """An SDK that timed out waiting for a Complete sends it again: as on S3, the retry gets
        the answer of the Complete that succeeded while the object it made is the key's, and
        NoSuchUpload once it is not (other parts named, the key overwritten)."""
        key = "retried-complete"
        uid = self._create(key, ChecksumAlgorithm="SHA256")
        done = []
        for n, data in ((1, self.part_a), (2, self.part_c)):
            r = self.s3.upload_part(Bucket=self.bucket, Key=key, UploadId=uid, PartNumber=n, Body=data,
                                    ChecksumAlgorithm="SHA256")
            done.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": r["ChecksumSHA256"]})
        first = self.s3.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid,
                                                  MultipartUpload={"Parts": done})
        again = self.s3.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid,
                                                  MultipartUpload={"Parts": done})
        for field in ("ETag", "Key", "Bucket", "ChecksumSHA256", "ServerSideEncryption"):
            self.assertEqual(again.get(field), first.get(field), field)
        self.assertEqual(self.get_bytes(self.bucket, key), self.part_a + self.part_c)
        # naming other parts is no retry of that Complete
        self.assertClientError("NoSuchUpload", 404, self.s3.complete_multipart_upload, Bucket=self.bucket,
                               Key=key, UploadId=uid, MultipartUpload={"Parts": done[:1]})
        # once the key holds another object, the upload is simply gone
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=b"newer")
        self.assertClientError("NoSuchUpload", 404, self.s3.complete_multipart_upload, Bucket=self.bucket,
                               Key=key, UploadId=uid, MultipartUpload={"Parts": done})
        self.assertEqual(self.get_bytes(self.bucket, key), b"newer")

    def test_no_such_upload(self):
        bogus = "bm90LWFuLXVwbG9hZC1pZA"
        self.assertClientError("NoSuchUpload", 404, self.s3.upload_part, Bucket=self.bucket,
                               Key="nsu", UploadId=bogus, PartNumber=1, Body=b"x")
        self.assertClientError("NoSuchUpload", 404, self.s3.list_parts, Bucket=self.bucket,
                               Key="nsu", UploadId=bogus)
        self.assertClientError("NoSuchUpload", 404, self.s3.abort_multipart_upload,
                               Bucket=self.bucket, Key="nsu", UploadId=bogus)
        self.assertClientError("NoSuchUpload", 404, self.s3.complete_multipart_upload,
                               Bucket=self.bucket, Key="nsu", UploadId=bogus,
                               MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"x"'}]})
        # an upload id is bound to its key
        uid = self._create("nsu-real")
        self.assertClientError("NoSuchUpload", 404, self.s3.upload_part, Bucket=self.bucket,
                               Key="nsu-other-key", UploadId=uid, PartNumber=1, Body=b"x")
        self.s3.abort_multipart_upload(Bucket=self.bucket, Key="nsu-real", UploadId=uid)

    def test_invalid_part(self):
        key = "invalid-part"
        uid = self._create(key)
        e1 = self._part(key, uid, 1, self.part_a)
        e2 = self._part(key, uid, 2, self.part_c)
        # wrong ETag for an uploaded part
        self.assertClientError("InvalidPart", 400, self.s3.complete_multipart_upload,
                               Bucket=self.bucket, Key=key, UploadId=uid,
                               MultipartUpload={"Parts": [
                                   {"PartNumber": 1, "ETag": e1},
                                   {"PartNumber": 2, "ETag": '"0123456789abcdef0123456789abcdef"'}]})
        # a part that was never uploaded
        self.assertClientError("InvalidPart", 400, self.s3.complete_multipart_upload,
                               Bucket=self.bucket, Key=key, UploadId=uid,
                               MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                                          {"PartNumber": 3, "ETag": e2}]})
        self.assertKeyAbsent(self.bucket, key)
        # the upload survives a failed Complete
        r = self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
        self.assertEqual(r["ETag"], multipart_etag([self.part_a, self.part_c]))

    def test_invalid_part_order(self):
        key = "part-order"
        uid = self._create(key)
        e1 = self._part(key, uid, 1, self.part_a)
        e2 = self._part(key, uid, 2, self.part_b)
        self.assertClientError("InvalidPartOrder", 400, self.s3.complete_multipart_upload,
                               Bucket=self.bucket, Key=key, UploadId=uid,
                               MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2},
                                                          {"PartNumber": 1, "ETag": e1}]})
        self.assertKeyAbsent(self.bucket, key)
        self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid)

    def test_entity_too_small(self):
        key = "too-small"
        uid = self._create(key)
        e1 = self._part(key, uid, 1, b"a" * 1024)
        e2 = self._part(key, uid, 2, b"b" * 1024)
        self.assertClientError("EntityTooSmall", 400, self.s3.complete_multipart_upload,
                               Bucket=self.bucket, Key=key, UploadId=uid,
                               MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                                          {"PartNumber": 2, "ETag": e2}]})
        self.assertKeyAbsent(self.bucket, key)
        # one part below 5 MiB less one byte, last part small: still too small
        key2 = "too-small-2"
        uid2 = self._create(key2)
        e1 = self._part(key2, uid2, 1, self.part_a[:P5 - 1])
        e2 = self._part(key2, uid2, 2, b"tail")
        self.assertClientError("EntityTooSmall", 400, self.s3.complete_multipart_upload,
                               Bucket=self.bucket, Key=key2, UploadId=uid2,
                               MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                                          {"PartNumber": 2, "ETag": e2}]})
        self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key2, UploadId=uid2)
        self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid)
        # a single small part is fine (it is the last one)
        key3 = "single-small"
        uid3 = self._create(key3)
        e = self._part(key3, uid3, 1, b"only part")
        r = self.s3.complete_multipart_upload(Bucket=self.bucket, Key=key3, UploadId=uid3,
                                              MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}]})
        self.assertEqual(r["ETag"], multipart_etag([b"only part"]))
        self.assertObjectEquals(self.bucket, key3, b"only part")

    def test_invalid_part_number(self):
        key = "bad-part-number"
        uid = self._create(key)
        for n in (0, 10001):
            with self.subTest(part=n):
                self.assertClientError("InvalidArgument", 400, self.s3.upload_part,
                                       Bucket=self.bucket, Key=key, UploadId=uid, PartNumber=n,
                                       Body=b"x")
        self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid)

    def test_conditional_complete(self):
        key = "cond-complete"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=b"existing")
        uid = self._create(key)
        e1 = self._part(key, uid, 1, b"new content")
        self.assertClientError("PreconditionFailed", 412, self.s3.complete_multipart_upload,
                               Bucket=self.bucket, Key=key, UploadId=uid, IfNoneMatch="*",
                               MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]})
        self.assertObjectEquals(self.bucket, key, b"existing")
        etag = self.s3.head_object(Bucket=self.bucket, Key=key)["ETag"]
        self.s3.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid, IfMatch=etag,
                                          MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]})
        self.assertObjectEquals(self.bucket, key, b"new content")

    def test_overwrite_by_multipart_then_single(self):
        key = "mp-overwrite"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=b"v1")
        uid = self._create(key)
        e1 = self._part(key, uid, 1, self.part_c)
        # the old object stays readable while the upload is in progress
        self.assertObjectEquals(self.bucket, key, b"v1")
        self.s3.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid,
                                          MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]})
        self.assertObjectEquals(self.bucket, key, self.part_c)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=b"v3")
        self.assertEqual(self.s3.head_object(Bucket=self.bucket, Key=key)["ETag"], f'"{md5_hex(b"v3")}"')


if __name__ == "__main__":
    unittest.main()
