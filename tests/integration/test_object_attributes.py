"""GetObjectAttributes: each attribute x-amz-object-attributes asks for (ETag, Checksum,
ObjectParts, StorageClass, ObjectSize) and only those, the parts of a multipart object listed
page by page when they carry checksums, and AWS's errors; with boto3, the aws CLI and signed raw
requests."""

import json
import unittest

from harness import CoffreTestCase, gen_bytes

ALL = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]
MIB = 1024 * 1024


class ObjectAttributesTest(CoffreTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = "attributes"
        cls.s3.create_bucket(Bucket=cls.bucket)
        # No checksum unless a test asks for one (botocore adds CRC32 to every upload by default).
        cls.plain = cls.daemon.client(checksum="when_required")

    def attributes(self, key, names=ALL, client=None, **kw):
        r = (client or self.s3).get_object_attributes(Bucket=self.bucket, Key=key, ObjectAttributes=names, **kw)
        r.pop("ResponseMetadata")
        return r

    def multipart(self, key, sizes, client, **create):
        uid = client.create_multipart_upload(Bucket=self.bucket, Key=key, **create)["UploadId"]
        done = []
        extra = {"ChecksumAlgorithm": create["ChecksumAlgorithm"]} if "ChecksumAlgorithm" in create else {}
        for n, size in enumerate(sizes, start=1):
            r = client.upload_part(Bucket=self.bucket, Key=key, UploadId=uid, PartNumber=n,
                                   Body=gen_bytes(size, seed=n), **extra)
            part = {"PartNumber": n, "ETag": r["ETag"]}
            part.update({k: v for k, v in r.items() if k.startswith("Checksum") and k != "ChecksumType"})
            done.append(part)
        client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid,
                                         MultipartUpload={"Parts": done})
        return done

    def test_single_put_with_a_checksum(self):
        body = gen_bytes(100000, seed=3)
        put = self.s3.put_object(Bucket=self.bucket, Key="single", Body=body, ChecksumAlgorithm="SHA256")
        head = self.s3.head_object(Bucket=self.bucket, Key="single")
        r = self.attributes("single")
        self.assertEqual(r["ETag"], put["ETag"].strip('"'))  # bare, as AWS writes it here
        self.assertEqual(r["Checksum"]["ChecksumSHA256"], put["ChecksumSHA256"])
        self.assertEqual(r["Checksum"]["ChecksumType"], "FULL_OBJECT")
        self.assertNotIn("ObjectParts", r)  # a single PUT has no parts
        self.assertEqual(r["StorageClass"], "STANDARD")
        self.assertEqual(r["ObjectSize"], len(body))
        self.assertEqual(r["LastModified"], head["LastModified"])

    def test_only_the_attributes_asked_for(self):
        self.plain.put_object(Bucket=self.bucket, Key="some", Body=b"12345")
        self.assertEqual(self.attributes("some", ["ObjectSize"], client=self.plain).keys() - {"LastModified"},
                         {"ObjectSize"})
        r = self.attributes("some", ["StorageClass", "ETag"], client=self.plain)
        self.assertEqual(r.keys() - {"LastModified"}, {"StorageClass", "ETag"})
        # an object stored without a checksum has none to report
        self.assertNotIn("Checksum", self.attributes("some", client=self.plain))

    def test_multipart_parts_with_checksums_page_by_page(self):
        done = self.multipart("parts", [5 * MIB, 5 * MIB, 1000], self.s3, ChecksumAlgorithm="CRC32")
        head = self.s3.head_object(Bucket=self.bucket, Key="parts", ChecksumMode="ENABLED")
        r = self.attributes("parts")
        self.assertEqual(r["ObjectSize"], 10 * MIB + 1000)
        self.assertEqual(r["ETag"], head["ETag"].strip('"'))
        # the composite value as HEAD gives it, without its "-3" (as AWS answers here)
        self.assertEqual(head["ChecksumCRC32"].rsplit("-", 1)[1], "3")
        self.assertEqual(r["Checksum"]["ChecksumCRC32"], head["ChecksumCRC32"].rsplit("-", 1)[0])
        self.assertEqual(r["Checksum"]["ChecksumType"], "COMPOSITE")
        parts = r["ObjectParts"]
        self.assertEqual(parts["TotalPartsCount"], 3)
        self.assertFalse(parts["IsTruncated"])
        self.assertEqual([(p["PartNumber"], p["Size"], p["ChecksumCRC32"]) for p in parts["Parts"]],
                         [(1, 5 * MIB, done[0]["ChecksumCRC32"]), (2, 5 * MIB, done[1]["ChecksumCRC32"]),
                          (3, 1000, done[2]["ChecksumCRC32"])])
        first = self.attributes("parts", ["ObjectParts"], MaxParts=2)["ObjectParts"]
        self.assertTrue(first["IsTruncated"])
        self.assertEqual(first["MaxParts"], 2)
        self.assertEqual([p["PartNumber"] for p in first["Parts"]], [1, 2])
        self.assertEqual(int(first["NextPartNumberMarker"]), 2)
        rest = self.attributes("parts", ["ObjectParts"], MaxParts=2,
                               PartNumberMarker=int(first["NextPartNumberMarker"]))["ObjectParts"]
        self.assertFalse(rest["IsTruncated"])
        self.assertEqual([p["PartNumber"] for p in rest["Parts"]], [3])
        self.assertEqual(rest["TotalPartsCount"], 3)

    def test_multipart_parts_without_checksums_are_counted_only(self):
        self.multipart("counted", [5 * MIB, 200], self.plain)
        r = self.attributes("counted", client=self.plain)
        self.assertEqual(r["ObjectParts"]["TotalPartsCount"], 2)
        self.assertNotIn("Parts", r["ObjectParts"])  # as AWS: parts are listed when they carry checksums
        self.assertNotIn("Checksum", r)
        self.assertTrue(r["ETag"].endswith("-2"))

    def test_aws_cli(self):
        self.s3.put_object(Bucket=self.bucket, Key="cli", Body=b"x" * 4321)
        p = self.daemon.aws("s3api", "get-object-attributes", "--bucket", self.bucket, "--key", "cli",
                            "--object-attributes", "ObjectSize", "StorageClass")
        out = json.loads(p.stdout)
        self.assertEqual(out["ObjectSize"], 4321)
        self.assertEqual(out["StorageClass"], "STANDARD")

    def test_errors(self):
        self.assertClientError("NoSuchKey", 404, self.attributes, "absent")
        self.s3.put_object(Bucket=self.bucket, Key="err", Body=b"e")
        for value in ["ObjectSize,Colour", "", "etag"]:
            with self.subTest(value=value):
                r = self.daemon.request("GET", f"/{self.bucket}/err", query=[("attributes", "")],
                                        headers={"x-amz-object-attributes": value})
                self.assertEqual(r.status, 400, r.body)
                self.assertEqual(r.error_code, "InvalidArgument")
        r = self.daemon.request("GET", f"/{self.bucket}/err", query=[("attributes", "")])
        self.assertEqual((r.status, r.error_code), (400, "InvalidArgument"))
        r = self.daemon.request("GET", f"/{self.bucket}/err", query=[("attributes", "")],
                                headers={"x-amz-object-attributes": "ObjectSize", "x-amz-max-parts": "many"})
        self.assertEqual((r.status, r.error_code), (400, "InvalidArgument"))
        # buckets are unversioned: only the null version exists
        self.assertEqual(self.attributes("err", ["ObjectSize"], VersionId="null")["ObjectSize"], 1)
        r = self.daemon.request("GET", f"/{self.bucket}/err", query=[("attributes", ""), ("versionId", "3HL4kqtJ")],
                                headers={"x-amz-object-attributes": "ObjectSize"})
        self.assertEqual((r.status, r.error_code), (400, "InvalidArgument"))
        r = self.daemon.request("GET", f"/{self.bucket}/err", query=[("attributes", ""), ("versionId", "0" * 32)],
                                headers={"x-amz-object-attributes": "ObjectSize"})
        self.assertEqual((r.status, r.error_code), (404, "NoSuchVersion"))
        # the attributes of a bucket that is not there
        self.assertClientError("NoSuchBucket", 404, self.s3.get_object_attributes, Bucket="no-such-bucket-attr",
                               Key="k", ObjectAttributes=["ETag"])


if __name__ == "__main__":
    unittest.main()
