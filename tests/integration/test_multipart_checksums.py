"""Multipart checksums of both types S3 has: FULL_OBJECT (the CRC of the whole object, combined
from the parts' CRCs; CRC32, CRC32C and CRC64NVME) and COMPOSITE (the checksum of the parts'
checksums, with "-<part count>"); which algorithm has which type; what a Complete may assert and
what it gets when that is wrong. With boto3 and signed raw requests.

botocore computes CRC32C and CRC64NVME only with awscrt, which Debian does not package: their
parts are sent without a client checksum (the daemon computes the upload's algorithm on every
part anyway), and the expected values come from the harness's own CRCs."""

import base64
import unittest

from harness import CoffreTestCase, checksum_b64, gen_bytes

MIB = 1024 * 1024
SIZES = (5 * MIB, 5 * MIB, 777)
FIELD = {"CRC32": "ChecksumCRC32", "CRC32C": "ChecksumCRC32C", "CRC64NVME": "ChecksumCRC64NVME",
         "SHA256": "ChecksumSHA256"}


def crc32_b64(data: bytes) -> str:
    return checksum_b64("crc32", data)


class MultipartChecksumsTest(CoffreTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = "mpchecksums"
        cls.s3.create_bucket(Bucket=cls.bucket)
        cls.plain = cls.daemon.client(checksum="when_required")
        cls.parts = [gen_bytes(size, seed=40 + n) for n, size in enumerate(SIZES)]
        cls.body = b"".join(cls.parts)

    def upload_parts(self, key, client=None, **create):
        """Creates an upload and sends the parts without client checksums; returns the upload id
        and each part's answer."""
        created = self.s3.create_multipart_upload(Bucket=self.bucket, Key=key, **create)
        uid = created["UploadId"]
        answers = []
        for n, data in enumerate(self.parts, start=1):
            answers.append((client or self.plain).upload_part(Bucket=self.bucket, Key=key, UploadId=uid,
                                                              PartNumber=n, Body=data))
        return created, uid, answers

    def test_full_object_checksum_of_each_crc(self):
        for algorithm, asked_type in (("CRC32", "FULL_OBJECT"), ("CRC32C", "FULL_OBJECT"), ("CRC64NVME", None)):
            with self.subTest(algorithm=algorithm):
                key = f"full-{algorithm}"
                field = FIELD[algorithm]
                create = {"ChecksumAlgorithm": algorithm}
                if asked_type:
                    create["ChecksumType"] = asked_type
                created, uid, answers = self.upload_parts(key, **create)
                # CRC64NVME has no composite checksum: FULL_OBJECT is its default
                self.assertEqual(created["ChecksumAlgorithm"], algorithm)
                self.assertEqual(created["ChecksumType"], "FULL_OBJECT")
                listed = self.s3.list_parts(Bucket=self.bucket, Key=key, UploadId=uid)
                self.assertEqual((listed["ChecksumAlgorithm"], listed["ChecksumType"]), (algorithm, "FULL_OBJECT"))
                uploads = self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix=key)["Uploads"]
                self.assertEqual([(u["ChecksumAlgorithm"], u["ChecksumType"]) for u in uploads],
                                 [(algorithm, "FULL_OBJECT")])
                # every part got the upload's checksum, though its client sent none
                for part, answer in zip(self.parts, answers):
                    self.assertEqual(answer[field], checksum_b64(algorithm, part))
                expected = checksum_b64(algorithm, self.body)
                # a FULL_OBJECT Complete need not name the parts' checksums
                done = self.plain.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=uid, ChecksumType="FULL_OBJECT",
                    MultipartUpload={"Parts": [{"PartNumber": n, "ETag": a["ETag"]}
                                               for n, a in enumerate(answers, start=1)]})
                self.assertEqual(done[field], expected)  # of the whole object: no "-3"
                self.assertEqual(done["ChecksumType"], "FULL_OBJECT")
                head = self.s3.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
                self.assertEqual(head[field], expected)
                self.assertEqual(head["ChecksumType"], "FULL_OBJECT")
                self.assertTrue(head["ETag"].endswith('-3"'))
                attributes = self.s3.get_object_attributes(Bucket=self.bucket, Key=key,
                                                           ObjectAttributes=["Checksum"])["Checksum"]
                self.assertEqual((attributes[field], attributes["ChecksumType"]), (expected, "FULL_OBJECT"))
                # botocore checks a CRC32 of the whole object against the body it reads
                got = self.s3.get_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
                self.assertEqual(got["Body"].read(), self.body)
                self.assertEqual(got[field], expected)

    def test_a_client_full_object_checksum_is_checked(self):
        key = "asserted"
        _, uid, answers = self.upload_parts(key, client=self.s3, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
        parts = [{"PartNumber": n, "ETag": a["ETag"], "ChecksumCRC32": a["ChecksumCRC32"]}
                 for n, a in enumerate(answers, start=1)]
        wrong = crc32_b64(self.body[:-1])
        self.assertClientError("BadDigest", 400, self.plain.complete_multipart_upload, Bucket=self.bucket, Key=key,
                               UploadId=uid, ChecksumCRC32=wrong, ChecksumType="FULL_OBJECT",
                               MultipartUpload={"Parts": parts})
        # nothing stored, and the upload is still there to complete
        self.assertClientError("404", 404, self.s3.head_object, Bucket=self.bucket, Key=key)
        self.assertEqual(len(self.s3.list_parts(Bucket=self.bucket, Key=key, UploadId=uid)["Parts"]), 3)
        # a part checksum that is not the part's is InvalidPart
        bad_part = [dict(parts[0], ChecksumCRC32=crc32_b64(b"other")), *parts[1:]]
        self.assertClientError("InvalidPart", 400, self.plain.complete_multipart_upload, Bucket=self.bucket, Key=key,
                               UploadId=uid, MultipartUpload={"Parts": bad_part})
        right = crc32_b64(self.body)
        done = self.plain.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid, ChecksumCRC32=right,
                                                    MultipartUpload={"Parts": parts})
        self.assertEqual((done["ChecksumCRC32"], done["ChecksumType"]), (right, "FULL_OBJECT"))
        # a retried Complete gets the same answer
        again = self.plain.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid,
                                                     MultipartUpload={"Parts": parts})
        self.assertEqual((again["ChecksumCRC32"], again["ChecksumType"]), (right, "FULL_OBJECT"))
        self.assertEqual(self.get_bytes(self.bucket, key), self.body)

    def test_composite_checksum_needs_each_parts_checksum(self):
        key = "composite"
        created, uid, answers = self.upload_parts(key, client=self.s3, ChecksumAlgorithm="CRC32")
        self.assertEqual(created["ChecksumType"], "COMPOSITE")  # CRC32's default
        without = [{"PartNumber": n, "ETag": a["ETag"]} for n, a in enumerate(answers, start=1)]
        e = self.assertClientError("InvalidRequest", 400, self.plain.complete_multipart_upload, Bucket=self.bucket,
                                   Key=key, UploadId=uid, MultipartUpload={"Parts": without})
        self.assertIn("missing for part 1", e.response["Error"]["Message"])
        parts = [dict(p, ChecksumCRC32=a["ChecksumCRC32"]) for p, a in zip(without, answers)]
        # the Complete must use the upload's type
        self.assertClientError("InvalidRequest", 400, self.plain.complete_multipart_upload, Bucket=self.bucket,
                               Key=key, UploadId=uid, ChecksumType="FULL_OBJECT", MultipartUpload={"Parts": parts})
        self.assertClientError("404", 404, self.s3.head_object, Bucket=self.bucket, Key=key)
        raw = b"".join(base64.b64decode(a["ChecksumCRC32"]) for a in answers)
        composite = crc32_b64(raw) + "-3"
        done = self.plain.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid,
                                                    ChecksumCRC32=composite, MultipartUpload={"Parts": parts})
        self.assertEqual((done["ChecksumCRC32"], done["ChecksumType"]), (composite, "COMPOSITE"))
        head = self.s3.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        self.assertEqual((head["ChecksumCRC32"], head["ChecksumType"]), (composite, "COMPOSITE"))
        self.assertNotIn("x-amz-checksum-algorithm", head["ResponseMetadata"]["HTTPHeaders"])

    def test_which_algorithm_has_which_type(self):
        cases = (
            ({"ChecksumType": "FULL_OBJECT"}, "x-amz-checksum-type header can only be used with"),
            ({"ChecksumAlgorithm": "CRC64NVME", "ChecksumType": "COMPOSITE"}, "COMPOSITE checksum type cannot"),
            ({"ChecksumAlgorithm": "SHA256", "ChecksumType": "FULL_OBJECT"}, "FULL_OBJECT checksum type cannot"),
            ({"ChecksumAlgorithm": "SHA1", "ChecksumType": "FULL_OBJECT"}, "FULL_OBJECT checksum type cannot"),
        )
        for create, message in cases:
            with self.subTest(create=create):
                e = self.assertClientError("InvalidRequest", 400, self.s3.create_multipart_upload,
                                           Bucket=self.bucket, Key="refused", **create)
                self.assertIn(message, e.response["Error"]["Message"])
        r = self.daemon.request("POST", f"/{self.bucket}/refused", query=[("uploads", "")],
                                headers={"x-amz-checksum-algorithm": "CRC32", "x-amz-checksum-type": "WHOLE"})
        self.assertS3Error(r, "InvalidRequest", 400)
        self.assertEqual(self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix="refused").get("Uploads", []), [])

    def test_a_single_put_reports_a_full_object_checksum(self):
        put = self.s3.put_object(Bucket=self.bucket, Key="single", Body=b"dossier", ChecksumAlgorithm="CRC32")
        self.assertEqual(put["ChecksumType"], "FULL_OBJECT")
        head = self.s3.head_object(Bucket=self.bucket, Key="single", ChecksumMode="ENABLED")
        self.assertEqual((head["ChecksumCRC32"], head["ChecksumType"]), (crc32_b64(b"dossier"), "FULL_OBJECT"))
        # without checksum mode, no checksum header and no type
        head = self.s3.head_object(Bucket=self.bucket, Key="single")
        self.assertNotIn("ChecksumType", head)

    def test_an_upload_without_an_algorithm_keeps_composite_checksums(self):
        key = "no-algorithm"
        uid = self.s3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        answers = [self.s3.upload_part(Bucket=self.bucket, Key=key, UploadId=uid, PartNumber=n, Body=data,
                                       ChecksumAlgorithm="SHA256")
                   for n, data in enumerate(self.parts, start=1)]
        self.assertClientError("InvalidRequest", 400, self.plain.complete_multipart_upload, Bucket=self.bucket,
                               Key=key, UploadId=uid, ChecksumType="COMPOSITE",
                               MultipartUpload={"Parts": [{"PartNumber": n, "ETag": a["ETag"]}
                                                          for n, a in enumerate(answers, start=1)]})
        done = self.plain.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": a["ETag"]} for n, a in enumerate(answers, start=1)]})
        self.assertTrue(done["ChecksumSHA256"].endswith("-3"))
        self.assertEqual(done["ChecksumType"], "COMPOSITE")


if __name__ == "__main__":
    unittest.main()
