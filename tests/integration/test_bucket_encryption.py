"""Bucket default encryption (Get/Put/DeleteBucketEncryption): every bucket reports SSE-S3
(AES256), as every S3 bucket does since 2023 and as is true here (every object is encrypted under
its tenant's keys); it can be set to AES256 with or without a bucket key, and back; aws:kms is
accepted without a KMSMasterKeyID (the tenant's default key) or with one of the tenant's named keys
(test_named_keys.py covers what objects then get), an unknown key answers KMS.NotFoundException and
aws:kms:dsse NotImplemented; bad configurations get AWS's errors and change nothing. With boto3, the
aws CLI and signed raw requests."""

import json
import time
import unittest

from harness import CoffreTestCase

AES256 = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": False}]}


def rule(config):
    return config["ServerSideEncryptionConfiguration"]["Rules"][0]


class BucketEncryptionTest(CoffreTestCase):

    def test_a_bucket_reports_aes256_until_configured_and_after(self):
        bucket = self.new_bucket()
        got = self.s3.get_bucket_encryption(Bucket=bucket)
        self.assertEqual(rule(got)["ApplyServerSideEncryptionByDefault"], {"SSEAlgorithm": "AES256"})
        self.assertFalse(rule(got)["BucketKeyEnabled"])
        self.s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]})
        self.assertTrue(rule(self.s3.get_bucket_encryption(Bucket=bucket))["BucketKeyEnabled"])
        # objects are encrypted as before, and say so
        put = self.s3.put_object(Bucket=bucket, Key="dossier", Body=b"pieces")
        self.assertEqual(put["ServerSideEncryption"], "AES256")
        r = self.daemon.request("DELETE", f"/{bucket}", query=[("encryption", "")])
        self.assertEqual(r.status, 204, r.body)
        got = self.s3.get_bucket_encryption(Bucket=bucket)
        self.assertEqual(rule(got)["ApplyServerSideEncryptionByDefault"], {"SSEAlgorithm": "AES256"})
        self.assertFalse(rule(got)["BucketKeyEnabled"])
        self.assertEqual(self.get_bytes(bucket, "dossier"), b"pieces")

    def test_kms_keys_dsse_and_bad_configurations(self):
        bucket = self.new_bucket()
        # aws:kms without a key and with a named key of the tenant's: accepted, and reported as given
        self.daemon.run_cli("key", "create", "dev", "bucket-encryption-key", "--data-dir", self.daemon.data_dir)
        time.sleep(1.5)  # the daemon sees keystore changes made by the CLI within a second
        for default in ({"SSEAlgorithm": "aws:kms"},
                        {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "bucket-encryption-key"}):
            with self.subTest(default=default):
                self.s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
                    "Rules": [{"ApplyServerSideEncryptionByDefault": default}]})
                got = self.s3.get_bucket_encryption(Bucket=bucket)
                self.assertEqual(rule(got)["ApplyServerSideEncryptionByDefault"], default)
                put = self.s3.put_object(Bucket=bucket, Key="kms", Body=b"x")
                self.assertEqual(put["ServerSideEncryption"], "aws:kms")
        self.s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]})
        # a key the tenant does not have (Coffre's choice: checked here rather than at each upload)
        self.assertClientError("KMS.NotFoundException", 400, self.s3.put_bucket_encryption, Bucket=bucket,
                               ServerSideEncryptionConfiguration={"Rules": [{
                                   "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                                          "KMSMasterKeyID": "dossiers"}}]})
        e = self.assertClientError("NotImplemented", 501, self.s3.put_bucket_encryption, Bucket=bucket,
                                   ServerSideEncryptionConfiguration={"Rules": [{
                                       "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms:dsse",
                                                                              "KMSMasterKeyID": "dossiers"}}]})
        self.assertIn("aws:kms:dsse", e.response["Error"]["Message"])
        self.assertClientError("InvalidArgument", 400, self.s3.put_bucket_encryption, Bucket=bucket,
                               ServerSideEncryptionConfiguration={"Rules": [{
                                   "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256",
                                                                          "KMSMasterKeyID": "dossiers"}}]})
        malformed = [
            b"not xml",
            b"<ServerSideEncryptionConfiguration/>",
            b"<ServerSideEncryptionConfiguration><Rule/></ServerSideEncryptionConfiguration>",
            b"<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES128"
            b"</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>",
            b"<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256"
            b"</SSEAlgorithm></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>yes</BucketKeyEnabled></Rule>"
            b"</ServerSideEncryptionConfiguration>",
            b"<ServerSideEncryptionConfiguration>" + 2 * (b"<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>"
                                                          b"AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault>"
                                                          b"</Rule>") + b"</ServerSideEncryptionConfiguration>",
        ]
        for body in malformed:
            with self.subTest(body=body):
                r = self.daemon.request("PUT", f"/{bucket}", query=[("encryption", "")], body=body)
                self.assertS3Error(r, "MalformedXML", 400)
        # none of it changed the configuration
        self.assertTrue(rule(self.s3.get_bucket_encryption(Bucket=bucket))["BucketKeyEnabled"])

    def test_missing_and_foreign_buckets(self):
        self.assertClientError("NoSuchBucket", 404, self.s3.get_bucket_encryption, Bucket="no-such-bucket-here")
        self.assertClientError("NoSuchBucket", 404, self.s3.put_bucket_encryption, Bucket="no-such-bucket-here",
                               ServerSideEncryptionConfiguration=AES256)
        bucket = self.new_bucket()
        other = self.daemon.client_for(self.daemon.create_tenant("encryption-other"))
        self.assertClientError("AccessDenied", 403, other.get_bucket_encryption, Bucket=bucket)
        self.assertClientError("AccessDenied", 403, other.put_bucket_encryption, Bucket=bucket,
                               ServerSideEncryptionConfiguration=AES256)
        self.assertClientError("AccessDenied", 403, other.delete_bucket_encryption, Bucket=bucket)

    def test_aws_cli(self):
        bucket = self.new_bucket()
        self.daemon.aws("s3api", "put-bucket-encryption", "--bucket", bucket,
                        "--server-side-encryption-configuration", json.dumps(
                            {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                                        "BucketKeyEnabled": True}]}))
        out = json.loads(self.daemon.aws("s3api", "get-bucket-encryption", "--bucket", bucket).stdout)
        self.assertEqual(rule(out), {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                                     "BucketKeyEnabled": True})
        self.daemon.aws("s3api", "delete-bucket-encryption", "--bucket", bucket)
        out = json.loads(self.daemon.aws("s3api", "get-bucket-encryption", "--bucket", bucket).stdout)
        self.assertFalse(rule(out)["BucketKeyEnabled"])


if __name__ == "__main__":
    unittest.main()
