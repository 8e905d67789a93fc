"""Server-side encryption headers, checked as S3 checks them: AES256 (SSE-S3, the tenant's default
key) where an object is stored; aws:kms with no key id (the default key again) or with one of the
tenant's named keys accepted, with an unknown key KMS.NotFoundException (test_named_keys.py covers
named keys in depth); dual-layer aws:kms:dsse and customer-provided keys (SSE-C) NotImplemented where
an object would be stored under them, and S3's answer for an object that was not stored with them
where one is read; malformed or conflicting headers S3's 400 errors; the method header where S3 does
not take it, InvalidArgument. Nothing is stored by a refused request. With boto3 (which encodes an
SSE-C key and its MD5 itself) and signed raw requests."""

import base64
import hashlib
import time
import unittest

from harness import CoffreTestCase

KEY = bytes(range(32))


def customer_key_headers(key=KEY, algorithm="AES256", md5_of=None, prefix="x-amz-"):
    headers = {}
    base = prefix + "server-side-encryption-customer-"
    if algorithm is not None:
        headers[base + "algorithm"] = algorithm
    if key is not None:
        headers[base + "key"] = base64.b64encode(key).decode()
        headers[base + "key-MD5"] = base64.b64encode(hashlib.md5(md5_of or key).digest()).decode()
    return headers


class SseHeadersTest(CoffreTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = "sseheaders"
        cls.s3.create_bucket(Bucket=cls.bucket)
        cls.s3.put_object(Bucket=cls.bucket, Key="stored", Body=b"dossier")

    def put(self, key, headers):
        return self.daemon.request("PUT", f"/{self.bucket}/{key}", headers=headers, body=b"pieces")

    def test_aes256_is_accepted_where_objects_are_stored(self):
        put = self.s3.put_object(Bucket=self.bucket, Key="aes", Body=b"x", ServerSideEncryption="AES256")
        self.assertEqual(put["ServerSideEncryption"], "AES256")
        copy = self.s3.copy_object(Bucket=self.bucket, Key="aes-copy", ServerSideEncryption="AES256",
                                   CopySource={"Bucket": self.bucket, "Key": "aes"})
        self.assertEqual(copy["ServerSideEncryption"], "AES256")
        up = self.s3.create_multipart_upload(Bucket=self.bucket, Key="aes-mp", ServerSideEncryption="AES256")
        self.assertEqual(up["ServerSideEncryption"], "AES256")
        self.s3.abort_multipart_upload(Bucket=self.bucket, Key="aes-mp", UploadId=up["UploadId"])

    def test_customer_keys_are_not_implemented_for_stores_and_not_applicable_for_reads(self):
        e = self.assertClientError("NotImplemented", 501, self.s3.put_object, Bucket=self.bucket, Key="ssec",
                                   Body=b"x", SSECustomerAlgorithm="AES256", SSECustomerKey=KEY)
        self.assertIn("SSE-C", e.response["Error"]["Message"])
        self.assertClientError("NotImplemented", 501, self.s3.create_multipart_upload, Bucket=self.bucket,
                               Key="ssec", SSECustomerAlgorithm="AES256", SSECustomerKey=KEY)
        self.assertClientError("404", 404, self.s3.head_object, Bucket=self.bucket, Key="ssec")
        # no object here was stored under a customer key: S3's answer for such an object
        e = self.assertClientError("InvalidRequest", 400, self.s3.get_object, Bucket=self.bucket, Key="stored",
                                   SSECustomerAlgorithm="AES256", SSECustomerKey=KEY)
        self.assertIn("not applicable", e.response["Error"]["Message"])
        self.assertClientError("400", 400, self.s3.head_object, Bucket=self.bucket, Key="stored",
                               SSECustomerAlgorithm="AES256", SSECustomerKey=KEY)
        self.assertClientError("InvalidRequest", 400, self.s3.copy_object, Bucket=self.bucket, Key="ssec-copy",
                               CopySource={"Bucket": self.bucket, "Key": "stored"},
                               CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=KEY)
        self.assertClientError("404", 404, self.s3.head_object, Bucket=self.bucket, Key="ssec-copy")
        # a delete ignores them, as it takes none
        self.s3.put_object(Bucket=self.bucket, Key="to-delete", Body=b"x")
        r = self.daemon.request("DELETE", f"/{self.bucket}/to-delete", headers=customer_key_headers())
        self.assertEqual(r.status, 204, r.body)

    def test_malformed_customer_keys_get_s3s_errors(self):
        cases = [
            (customer_key_headers(algorithm=None), "InvalidArgument", "valid encryption algorithm"),
            (customer_key_headers(algorithm="AES128"), "InvalidEncryptionAlgorithmError", "AES256"),
            ({"x-amz-server-side-encryption-customer-algorithm": "AES256"}, "InvalidArgument", "secret key"),
            (customer_key_headers(key=bytes(16)), "InvalidArgument", "secret key was invalid"),
            (customer_key_headers(md5_of=b"another key"), "InvalidArgument", "MD5 hash of the key did not match"),
            ({**customer_key_headers(), "x-amz-server-side-encryption": "AES256"}, "InvalidArgument",
             "incompatible with the encryption method"),
        ]
        for headers, code, message in cases:
            with self.subTest(headers=headers):
                r = self.put("malformed", headers)
                self.assertS3Error(r, code, 400)
                self.assertIn(message, r.xml().findtext("Message"))
                r = self.daemon.request("GET", f"/{self.bucket}/stored", headers=headers)
                self.assertEqual(r.status, 400, r.body)
        no_md5 = customer_key_headers()
        del no_md5["x-amz-server-side-encryption-customer-key-MD5"]
        r = self.put("malformed", no_md5)
        self.assertS3Error(r, "InvalidArgument", 400)
        self.assertIn("MD5 of the secret key", r.xml().findtext("Message"))
        r = self.daemon.request("PUT", f"/{self.bucket}/malformed-copy",
                                headers={"x-amz-copy-source": f"/{self.bucket}/stored",
                                         **customer_key_headers(algorithm="AES128", prefix="x-amz-copy-source-")})
        self.assertS3Error(r, "InvalidEncryptionAlgorithmError", 400)
        for key in ("malformed", "malformed-copy"):
            self.assertClientError("404", 404, self.s3.head_object, Bucket=self.bucket, Key=key)

    def test_methods_and_kms_headers(self):
        r = self.put("method", {"x-amz-server-side-encryption": "AES128"})
        self.assertS3Error(r, "InvalidArgument", 400)
        # dual-layer encryption is not implemented, with or without a key
        for kw in ({"SSEKMSKeyId": "dossiers"}, {}):
            with self.subTest(method="aws:kms:dsse", **kw):
                e = self.assertClientError("NotImplemented", 501, self.s3.put_object, Bucket=self.bucket, Key="kms",
                                           Body=b"x", ServerSideEncryption="aws:kms:dsse", **kw)
                self.assertIn("aws:kms:dsse", e.response["Error"]["Message"])
        # aws:kms naming a key the tenant does not have: KMS's NotFoundException, as S3 passes it on
        self.assertClientError("KMS.NotFoundException", 400, self.s3.put_object, Bucket=self.bucket, Key="kms",
                               Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId="dossiers")
        # aws:kms without a key id (the tenant's default key) and with a named key of the tenant's
        put = self.s3.put_object(Bucket=self.bucket, Key="kms-default", Body=b"x", ServerSideEncryption="aws:kms")
        self.assertEqual(put["ServerSideEncryption"], "aws:kms")
        self.assertTrue(put["SSEKMSKeyId"].startswith("arn:aws:kms:"), put)
        self.daemon.run_cli("key", "create", "dev", "sse-headers-key", "--data-dir", self.daemon.data_dir)
        time.sleep(1.5)  # the daemon sees keystore changes made by the CLI within a second
        named = self.s3.put_object(Bucket=self.bucket, Key="kms-named", Body=b"y", ServerSideEncryption="aws:kms",
                                   SSEKMSKeyId="sse-headers-key")
        self.assertEqual(named["ServerSideEncryption"], "aws:kms")
        self.assertTrue(named["SSEKMSKeyId"].startswith("arn:aws:kms:"), named)
        self.assertNotEqual(named["SSEKMSKeyId"], put["SSEKMSKeyId"])
        self.assertEqual(self.s3.get_object(Bucket=self.bucket, Key="kms-default")["Body"].read(), b"x")
        got = self.s3.get_object(Bucket=self.bucket, Key="kms-named")
        self.assertEqual((got["ServerSideEncryption"], got["SSEKMSKeyId"]), ("aws:kms", named["SSEKMSKeyId"]))
        self.assertEqual(got["Body"].read(), b"y")
        r = self.put("method", {"x-amz-server-side-encryption": "AES256",
                                "x-amz-server-side-encryption-aws-kms-key-id": "dossiers"})
        self.assertS3Error(r, "InvalidArgument", 400)
        r = self.put("method", {"x-amz-server-side-encryption-context": base64.b64encode(b"{}").decode()})
        self.assertS3Error(r, "InvalidArgument", 400)
        for key in ("method", "kms"):
            self.assertClientError("404", 404, self.s3.head_object, Bucket=self.bucket, Key=key)

    def test_the_method_header_where_s3_does_not_take_it(self):
        r = self.daemon.request("GET", f"/{self.bucket}/stored", headers={"x-amz-server-side-encryption": "AES256"})
        self.assertS3Error(r, "InvalidArgument", 400)
        self.assertIn("not supported for this operation", r.xml().findtext("Message"))
        uid = self.s3.create_multipart_upload(Bucket=self.bucket, Key="parts")["UploadId"]
        r = self.daemon.request("PUT", f"/{self.bucket}/parts", query=[("partNumber", "1"), ("uploadId", uid)],
                                headers={"x-amz-server-side-encryption": "AES256"}, body=b"part")
        self.assertS3Error(r, "InvalidArgument", 400)
        self.assertEqual(self.s3.list_parts(Bucket=self.bucket, Key="parts", UploadId=uid).get("Parts", []), [])
        self.s3.abort_multipart_upload(Bucket=self.bucket, Key="parts", UploadId=uid)


if __name__ == "__main__":
    unittest.main()
