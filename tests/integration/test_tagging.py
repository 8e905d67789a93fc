"""Object and bucket tagging: x-amz-tagging on PutObject, CopyObject and CreateMultipartUpload,
Put/Get/DeleteObjectTagging, Put/Get/DeleteBucketTagging, x-amz-tagging-count, and every error
AWS documents for them, with boto3, the aws CLI and signed raw requests."""

import json
import unittest

from harness import CoffreTestCase, gen_bytes


def tag_set(pairs):
    return {"TagSet": [{"Key": k, "Value": v} for k, v in pairs]}


def as_dict(tag_list):
    return {t["Key"]: t["Value"] for t in tag_list}


def tagging_xml(pairs):
    tags = "".join(f"<Tag><Key>{k}</Key><Value>{v}</Value></Tag>" for k, v in pairs)
    return f'<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>{tags}</TagSet></Tagging>'.encode()


class ObjectTaggingTest(CoffreTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = "tagging"
        cls.s3.create_bucket(Bucket=cls.bucket)

    def tags(self, key, bucket=None):
        return as_dict(self.s3.get_object_tagging(Bucket=bucket or self.bucket, Key=key)["TagSet"])

    def test_put_object_with_tagging_header(self):
        self.s3.put_object(Bucket=self.bucket, Key="hdr", Body=b"x",
                           Tagging="project=alpha&note=deux%20mots&empty=")
        self.assertEqual(self.tags("hdr"), {"project": "alpha", "note": "deux mots", "empty": ""})
        self.assertEqual(self.s3.head_object(Bucket=self.bucket, Key="hdr")["ResponseMetadata"]["HTTPHeaders"]
                         ["x-amz-tagging-count"], "3")
        got = self.s3.get_object(Bucket=self.bucket, Key="hdr")
        self.assertEqual(got["TagCount"], 3)
        self.assertEqual(got["Body"].read(), b"x")
        # No tags: no header.
        self.s3.put_object(Bucket=self.bucket, Key="plain", Body=b"y")
        self.assertNotIn("x-amz-tagging-count",
                         self.s3.head_object(Bucket=self.bucket, Key="plain")["ResponseMetadata"]["HTTPHeaders"])
        self.assertNotIn("TagCount", self.s3.get_object(Bucket=self.bucket, Key="plain"))
        self.assertEqual(self.s3.get_object_tagging(Bucket=self.bucket, Key="plain")["TagSet"], [])
        # An overwrite without the header leaves the new object untagged.
        self.s3.put_object(Bucket=self.bucket, Key="hdr", Body=b"z")
        self.assertEqual(self.tags("hdr"), {})

    def test_put_get_delete_object_tagging(self):
        self.s3.put_object(Bucket=self.bucket, Key="life", Body=b"data", Tagging="a=1")
        r = self.s3.put_object_tagging(Bucket=self.bucket, Key="life",
                                       Tagging=tag_set([("b", "2"), ("clé", "valeur é"), ("c", "")]))
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)
        self.assertNotIn("x-amz-version-id", r["ResponseMetadata"]["HTTPHeaders"])
        self.assertEqual(self.tags("life"), {"b": "2", "clé": "valeur é", "c": ""})
        r = self.s3.delete_object_tagging(Bucket=self.bucket, Key="life")
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.assertEqual(self.tags("life"), {})
        # Deleting the tags of an untagged object is no error.
        self.assertEqual(self.s3.delete_object_tagging(Bucket=self.bucket, Key="life")
                         ["ResponseMetadata"]["HTTPStatusCode"], 204)
        # The data never changed.
        self.assertEqual(self.get_bytes(self.bucket, "life"), b"data")
        # versionId=null names the only version.
        r = self.daemon.request("GET", f"/{self.bucket}/life", query=[("tagging", ""), ("versionId", "null")])
        self.assertEqual(r.status, 200, r)

    def test_get_object_tagging_xml_shape(self):
        self.s3.put_object(Bucket=self.bucket, Key="shape", Body=b"x", Tagging="k=v")
        r = self.daemon.request("GET", f"/{self.bucket}/shape", query=[("tagging", "")])
        self.assertEqual(r.status, 200)
        root = r.xml()
        self.assertTrue(root.tag.endswith("Tagging"), root.tag)
        ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
        tags = root.findall(f"{ns}TagSet/{ns}Tag")
        self.assertEqual([(t.find(f"{ns}Key").text, t.find(f"{ns}Value").text) for t in tags], [("k", "v")])

    def test_copy_object_tagging_directive(self):
        self.s3.put_object(Bucket=self.bucket, Key="src", Body=b"source", Tagging="origin=src&n=1")
        # COPY is the default: the source's tags come along, whatever x-amz-tagging says.
        self.s3.copy_object(Bucket=self.bucket, Key="dst-default", CopySource={"Bucket": self.bucket, "Key": "src"})
        self.assertEqual(self.tags("dst-default"), {"origin": "src", "n": "1"})
        self.s3.copy_object(Bucket=self.bucket, Key="dst-copy", CopySource={"Bucket": self.bucket, "Key": "src"},
                            TaggingDirective="COPY", Tagging="ignored=yes")
        self.assertEqual(self.tags("dst-copy"), {"origin": "src", "n": "1"})
        self.s3.copy_object(Bucket=self.bucket, Key="dst-replace", CopySource={"Bucket": self.bucket, "Key": "src"},
                            TaggingDirective="REPLACE", Tagging="fresh=1")
        self.assertEqual(self.tags("dst-replace"), {"fresh": "1"})
        # REPLACE without tags: none.
        self.s3.copy_object(Bucket=self.bucket, Key="dst-none", CopySource={"Bucket": self.bucket, "Key": "src"},
                            TaggingDirective="REPLACE")
        self.assertEqual(self.tags("dst-none"), {})
        r = self.daemon.request("PUT", f"/{self.bucket}/dst-bad",
                                headers={"x-amz-copy-source": f"/{self.bucket}/src",
                                         "x-amz-tagging-directive": "MERGE"})
        self.assertS3Error(r, "InvalidArgument", 400)
        r = self.daemon.request("PUT", f"/{self.bucket}/dst-bad",
                                headers={"x-amz-copy-source": f"/{self.bucket}/src",
                                         "x-amz-tagging-directive": "REPLACE", "x-amz-tagging": "a#=1"})
        self.assertS3Error(r, "InvalidTag", 400)
        self.assertKeyAbsent(self.bucket, "dst-bad")

    def test_multipart_upload_tags_apply_at_complete(self):
        up = self.s3.create_multipart_upload(Bucket=self.bucket, Key="mp", Tagging="stage=final&team=ops")
        part = self.s3.upload_part(Bucket=self.bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1,
                                   Body=gen_bytes(100, seed=1))
        # Not before Complete: the key holds nothing yet.
        self.assertClientError("NoSuchKey", 404, self.s3.get_object_tagging, Bucket=self.bucket, Key="mp")
        self.s3.complete_multipart_upload(Bucket=self.bucket, Key="mp", UploadId=up["UploadId"],
                                          MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
        self.assertEqual(self.tags("mp"), {"stage": "final", "team": "ops"})
        self.assertClientError("InvalidTag", 400, self.s3.create_multipart_upload, Bucket=self.bucket, Key="mp2",
                               Tagging="aws:reserved=1")

    def test_missing_object_and_bucket(self):
        for fn, kw in ((self.s3.get_object_tagging, {}), (self.s3.delete_object_tagging, {}),
                       (self.s3.put_object_tagging, {"Tagging": tag_set([("a", "b")])})):
            with self.subTest(fn=fn.__name__):
                self.assertClientError("NoSuchKey", 404, fn, Bucket=self.bucket, Key="absent", **kw)
                self.assertClientError("NoSuchBucket", 404, fn, Bucket="no-such-bucket-tagging", Key="k", **kw)

    def test_tags_of_versions(self):
        self.s3.put_object(Bucket=self.bucket, Key="ver", Body=b"x", Tagging="a=1")
        for method, body in (("GET", b""), ("PUT", tagging_xml([("b", "2")])), ("DELETE", b"")):
            with self.subTest(method=method):
                r = self.daemon.request(method, f"/{self.bucket}/ver",
                                        query=[("tagging", ""), ("versionId", "3HL4kqtJlcpXroDTDmJ")], body=body)
                self.assertS3Error(r, "InvalidArgument", 400)
        self.assertEqual(self.tags("ver"), {"a": "1"})
        # In a versioned bucket each version keeps its tags, each changed by its id alone.
        self.s3.create_bucket(Bucket="tagging-versions")
        self.s3.put_bucket_versioning(Bucket="tagging-versions", VersioningConfiguration={"Status": "Enabled"})
        old = self.s3.put_object(Bucket="tagging-versions", Key="k", Body=b"1", Tagging="v=old")["VersionId"]
        new = self.s3.put_object(Bucket="tagging-versions", Key="k", Body=b"2", Tagging="v=new")["VersionId"]
        got = self.s3.get_object_tagging(Bucket="tagging-versions", Key="k", VersionId=old)
        self.assertEqual((got["VersionId"], got["TagSet"]), (old, [{"Key": "v", "Value": "old"}]))
        self.s3.put_object_tagging(Bucket="tagging-versions", Key="k", VersionId=new,
                                   Tagging={"TagSet": [{"Key": "v", "Value": "newer"}]})
        self.assertEqual(self.s3.get_object_tagging(Bucket="tagging-versions", Key="k")["TagSet"],
                         [{"Key": "v", "Value": "newer"}])
        put = self.s3.put_object_tagging(Bucket="tagging-versions", Key="k", VersionId=old,
                                         Tagging={"TagSet": [{"Key": "b", "Value": "2"}]})
        self.assertEqual(put["VersionId"], old)
        got = self.s3.get_object_tagging(Bucket="tagging-versions", Key="k", VersionId=old)
        self.assertEqual(got["TagSet"], [{"Key": "b", "Value": "2"}])
        self.assertEqual(self.s3.get_object_tagging(Bucket="tagging-versions", Key="k")["TagSet"],
                         [{"Key": "v", "Value": "newer"}])
        self.s3.delete_object_tagging(Bucket="tagging-versions", Key="k", VersionId=old)
        self.assertEqual(self.s3.get_object_tagging(Bucket="tagging-versions", Key="k", VersionId=old)["TagSet"], [])
        self.assertEqual(self.s3.head_object(Bucket="tagging-versions", Key="k").get("TagCount"), 1)
        # a delete marker has no tags to change
        marker = self.s3.delete_object(Bucket="tagging-versions", Key="k")["VersionId"]
        r = self.daemon.request("PUT", "/tagging-versions/k", query=[("tagging", ""), ("versionId", marker)],
                                body=tagging_xml([("b", "2")]))
        self.assertS3Error(r, "MethodNotAllowed", 405)

    def test_rejected_tag_sets_change_nothing(self):
        self.s3.put_object(Bucket=self.bucket, Key="guarded", Body=b"x", Tagging="keep=me")
        eleven = [(f"k{i}", "v") for i in range(11)]
        cases = [
            ("BadRequest", 400, eleven),
            ("InvalidTag", 400, [("dup", "1"), ("dup", "2")]),
            ("InvalidTag", 400, [("k" * 129, "v")]),
            ("InvalidTag", 400, [("k", "v" * 257)]),
            ("InvalidTag", 400, [("bad#key", "v")]),
            ("InvalidTag", 400, [("k", "bad?value")]),
            ("InvalidTag", 400, [("aws:cost", "v")]),
            ("InvalidTag", 400, [("AWS:Cost", "v")]),
        ]
        for code, status, pairs in cases:
            with self.subTest(code=code, pairs=pairs[:2]):
                self.assertClientError(code, status, self.s3.put_object_tagging, Bucket=self.bucket, Key="guarded",
                                       Tagging=tag_set(pairs))
        # An empty key (boto3 refuses to send one).
        r = self.daemon.request("PUT", f"/{self.bucket}/guarded", query=[("tagging", "")], body=tagging_xml([("", "v")]))
        self.assertS3Error(r, "InvalidTag", 400)
        # Exactly at the limits passes.
        ok = [(f"k{i}", "v") for i in range(9)] + [("k" * 128, "v" * 256)]
        self.s3.put_object_tagging(Bucket=self.bucket, Key="guarded", Tagging=tag_set(ok))
        self.assertEqual(len(self.tags("guarded")), 10)
        self.s3.put_object_tagging(Bucket=self.bucket, Key="guarded", Tagging=tag_set([("keep", "me")]))
        for body in (b"<Tagging><TagSet>", b"not xml", b"<Other/>", b"<Tagging/>",
                     b"<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet></Tagging>"):
            with self.subTest(body=body):
                r = self.daemon.request("PUT", f"/{self.bucket}/guarded", query=[("tagging", "")], body=body)
                self.assertS3Error(r, "MalformedXML", 400)
        self.assertEqual(self.tags("guarded"), {"keep": "me"})

    def test_rejected_tagging_header_stores_nothing(self):
        cases = [
            ("BadRequest", 400, "&".join(f"k{i}=v" for i in range(11))),
            ("InvalidArgument", 400, "a=1&a=2"),
            ("InvalidArgument", 400, "a=%zz"),
            ("InvalidTag", 400, "aws:x=1"),
            ("InvalidTag", 400, "k=" + "v" * 257),
        ]
        for code, status, header in cases:
            with self.subTest(header=header[:20]):
                self.assertClientError(code, status, self.s3.put_object, Bucket=self.bucket, Key="never",
                                       Body=b"x", Tagging=header)
                self.assertKeyAbsent(self.bucket, "never")

    def test_aws_cli(self):
        self.s3.put_object(Bucket=self.bucket, Key="cli", Body=b"cli")
        self.daemon.aws("s3api", "put-object-tagging", "--bucket", self.bucket, "--key", "cli",
                        "--tagging", json.dumps(tag_set([("from", "cli"), ("n", "1")])))
        out = self.daemon.aws("s3api", "get-object-tagging", "--bucket", self.bucket, "--key", "cli")
        self.assertEqual(as_dict(json.loads(out.stdout)["TagSet"]), {"from": "cli", "n": "1"})
        self.daemon.aws("s3api", "copy-object", "--bucket", self.bucket, "--key", "cli-copy",
                        "--copy-source", f"{self.bucket}/cli", "--tagging-directive", "REPLACE",
                        "--tagging", "copied=yes")
        self.assertEqual(self.tags("cli-copy"), {"copied": "yes"})
        self.daemon.aws("s3api", "copy-object", "--bucket", self.bucket, "--key", "cli-copy2",
                        "--copy-source", f"{self.bucket}/cli")
        self.assertEqual(self.tags("cli-copy2"), {"from": "cli", "n": "1"})
        self.daemon.aws("s3api", "delete-object-tagging", "--bucket", self.bucket, "--key", "cli")
        out = self.daemon.aws("s3api", "get-object-tagging", "--bucket", self.bucket, "--key", "cli")
        self.assertEqual(json.loads(out.stdout)["TagSet"], [])


class BucketTaggingTest(CoffreTestCase):

    def test_put_get_delete_bucket_tagging(self):
        bucket = self.new_bucket()
        self.assertClientError("NoSuchTagSet", 404, self.s3.get_bucket_tagging, Bucket=bucket)
        r = self.s3.put_bucket_tagging(Bucket=bucket, Tagging=tag_set([("cost-center", "42"), ("owner", "ops")]))
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 204)
        got = self.s3.get_bucket_tagging(Bucket=bucket)
        self.assertEqual(as_dict(got["TagSet"]), {"cost-center": "42", "owner": "ops"})
        self.s3.put_bucket_tagging(Bucket=bucket, Tagging=tag_set([("owner", "dev")]))
        self.assertEqual(as_dict(self.s3.get_bucket_tagging(Bucket=bucket)["TagSet"]), {"owner": "dev"})
        r = self.s3.delete_bucket_tagging(Bucket=bucket)
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.assertClientError("NoSuchTagSet", 404, self.s3.get_bucket_tagging, Bucket=bucket)
        # Bucket tags are no object's: objects stay untagged.
        self.s3.put_object(Bucket=bucket, Key="k", Body=b"x")
        self.assertEqual(self.s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"], [])

    def test_bucket_tag_limits_and_errors(self):
        bucket = self.new_bucket()
        self.s3.put_bucket_tagging(Bucket=bucket, Tagging=tag_set([("keep", "me")]))
        fifty = [(f"k{i}", "v") for i in range(50)]
        self.s3.put_bucket_tagging(Bucket=bucket, Tagging=tag_set(fifty))
        self.assertEqual(len(self.s3.get_bucket_tagging(Bucket=bucket)["TagSet"]), 50)
        self.s3.put_bucket_tagging(Bucket=bucket, Tagging=tag_set([("keep", "me")]))
        for pairs in (fifty + [("k50", "v")], [("d", "1"), ("d", "2")], [("aws:x", "1")], [("k" * 129, "v")],
                      [("k", "v" * 257)], [("b#d", "v")]):
            with self.subTest(pairs=pairs[:2]):
                self.assertClientError("InvalidTag", 400, self.s3.put_bucket_tagging, Bucket=bucket,
                                       Tagging=tag_set(pairs))
        r = self.daemon.request("PUT", f"/{bucket}", query=[("tagging", "")], body=b"<Tagging>")
        self.assertS3Error(r, "MalformedXML", 400)
        self.assertEqual(as_dict(self.s3.get_bucket_tagging(Bucket=bucket)["TagSet"]), {"keep": "me"})
        for fn, kw in ((self.s3.get_bucket_tagging, {}), (self.s3.delete_bucket_tagging, {}),
                       (self.s3.put_bucket_tagging, {"Tagging": tag_set([("a", "b")])})):
            with self.subTest(fn=fn.__name__):
                self.assertClientError("NoSuchBucket", 404, fn, Bucket="no-such-bucket-tagging", **kw)

    def test_another_tenants_bucket_is_refused(self):
        bucket = self.new_bucket()
        other = self.daemon.client_for(self.daemon.create_tenant("tagging-other"))
        self.assertClientError("AccessDenied", 403, other.put_bucket_tagging, Bucket=bucket,
                               Tagging=tag_set([("a", "b")]))
        self.assertClientError("AccessDenied", 403, other.get_bucket_tagging, Bucket=bucket)

    def test_aws_cli_bucket_tagging(self):
        bucket = self.new_bucket()
        self.daemon.aws("s3api", "put-bucket-tagging", "--bucket", bucket,
                        "--tagging", json.dumps(tag_set([("env", "test")])))
        out = self.daemon.aws("s3api", "get-bucket-tagging", "--bucket", bucket)
        self.assertEqual(as_dict(json.loads(out.stdout)["TagSet"]), {"env": "test"})
        self.daemon.aws("s3api", "delete-bucket-tagging", "--bucket", bucket)
        r = self.daemon.aws("s3api", "get-bucket-tagging", "--bucket", bucket, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"NoSuchTagSet", r.stderr)


if __name__ == "__main__":
    unittest.main()
