"""Requests a client sends again (its SDK lost the answer, or it retries on a timeout) get the answer
AWS gives the second time: a repeated DeleteObjects reports every key Deleted again, and a repeated
PUT with If-None-Match: * after the first one succeeded gets 412 PreconditionFailed."""

from __future__ import annotations

import unittest

from botocore.exceptions import ClientError

from harness import CoffreTestCase, md5_b64, unique_bucket, xml_find_all_text


def delete_body(keys, quiet=False) -> bytes:
    objects = "".join(f"<Object><Key>{k}</Key></Object>" for k in keys)
    return (f'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>{str(quiet).lower()}</Quiet>'
            f"{objects}</Delete>").encode()


class RetriedRequestTest(CoffreTestCase):

    def setUp(self):
        self.bucket = unique_bucket("retry")
        self.s3.create_bucket(Bucket=self.bucket)

    def test_delete_objects_sent_twice(self):
        keys = ["a", "dossier/b", "absent"]
        for key in keys[:2]:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=b"x")
        delete = {"Objects": [{"Key": k} for k in keys]}
        for attempt in (1, 2):
            r = self.s3.delete_objects(Bucket=self.bucket, Delete=delete)
            self.assertEqual(sorted(d["Key"] for d in r["Deleted"]), sorted(keys), f"attempt {attempt}")
            self.assertNotIn("Errors", r, f"attempt {attempt}")
        self.assertNotIn("Contents", self.s3.list_objects_v2(Bucket=self.bucket))

    def test_delete_objects_same_bytes_replayed(self):
        """The very same request (signature, body, Content-MD5) sent again, as a retrying SDK does."""
        self.s3.put_object(Bucket=self.bucket, Key="k1", Body=b"x")
        self.s3.put_object(Bucket=self.bucket, Key="k2", Body=b"y")
        body = delete_body(["k1", "k2"])
        req = self.daemon.sign("POST", f"/{self.bucket}", [("delete", "")], {"Content-MD5": md5_b64(body)}, body)
        first = self.daemon.send(req)
        second = self.daemon.send(req)
        for r in (first, second):
            self.assertEqual(r.status, 200, r)
            self.assertEqual(sorted(xml_find_all_text(r.body, "Key")), ["k1", "k2"], r.body)
            self.assertEqual(xml_find_all_text(r.body, "Code"), [], r.body)
        # Quiet mode: nothing to report either time.
        quiet = delete_body(["k1", "k2"], quiet=True)
        req = self.daemon.sign("POST", f"/{self.bucket}", [("delete", "")], {"Content-MD5": md5_b64(quiet)}, quiet)
        for _ in range(2):
            r = self.daemon.send(req)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(xml_find_all_text(r.body, "Deleted"), [], r.body)

    def test_put_if_none_match_sent_twice(self):
        first = self.s3.put_object(Bucket=self.bucket, Key="unique", Body=b"premier", IfNoneMatch="*")
        with self.assertRaises(ClientError) as caught:
            self.s3.put_object(Bucket=self.bucket, Key="unique", Body=b"premier", IfNoneMatch="*")
        err = caught.exception.response
        self.assertEqual(err["ResponseMetadata"]["HTTPStatusCode"], 412)
        self.assertEqual(err["Error"]["Code"], "PreconditionFailed")
        got = self.s3.get_object(Bucket=self.bucket, Key="unique")
        self.assertEqual(got["Body"].read(), b"premier")
        self.assertEqual(got["ETag"], first["ETag"])

    def test_put_if_none_match_same_bytes_replayed(self):
        body = b"une seule fois"
        req = self.daemon.sign("PUT", f"/{self.bucket}/once", None, {"If-None-Match": "*"}, body)
        first = self.daemon.send(req)
        self.assertEqual(first.status, 200, first)
        second = self.daemon.send(req)
        self.assertEqual((second.status, second.error_code), (412, "PreconditionFailed"), second)
        self.assertEqual(self.s3.get_object(Bucket=self.bucket, Key="once")["Body"].read(), body)


if __name__ == "__main__":
    unittest.main()
