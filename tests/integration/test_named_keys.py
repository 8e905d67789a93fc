"""Named tenant keys (S3's SSE-KMS) as the feature's specification describes them: `coffre key
create` and `key list` (names, ids, the named_keys listing, refused names, names never reused);
PutObject, CopyObject and CreateMultipartUpload with x-amz-server-side-encryption: aws:kms and a
key named by its name, alias/NAME, its id (UUID or 32 hex) or an ARN, and the aws:kms and key-ARN
headers of every answer that reports an object's encryption (PUT, GET, HEAD, Copy, Create, UploadPart,
Complete); aws:kms without a key (the tenant's default key, also `aws/s3`); KMS.NotFoundException for
an unknown key and KMS.KMSInvalidStateException for a destroyed one, with nothing stored; the
encryption context and the bucket-key header; aws:kms:dsse NotImplemented; a copy encrypted as its
request (or its bucket's default) says, never as its source; bucket default encryption with a
KMSMasterKeyID; `coffre key shred` making exactly the objects under the key unreadable, refused while
Object Lock protects one of them (GOVERNANCE yielding to a granted approval); isolation between
tenants; rotation, rewrap and version destruction of a named key; the audit log's named_key.create
and named_key.destroy records; and all of it after a restart. With boto3, signed raw requests and
the coffre CLI.

Where the expected answer is not AWS's (S3 with KMS) but Coffre's own documented choice, the
assertion carries a comment saying so."""

import base64
import datetime as _dt
import json
import os
import re
import shutil
import tempfile
import time
import unittest
import uuid

from botocore.exceptions import ClientError

from harness import CoffreTestCase, Daemon, MiB, gen_bytes, unique_bucket

REGION = "us-east-1"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
FAR = _dt.datetime(2099, 1, 2, 3, 4, 5, tzinfo=_dt.timezone.utc)

METHOD = "x-amz-server-side-encryption"
KEY_ID = "x-amz-server-side-encryption-aws-kms-key-id"
CONTEXT = "x-amz-server-side-encryption-context"
BUCKET_KEY = "x-amz-server-side-encryption-bucket-key-enabled"

# The daemon polls the keystore for changes made by other processes this often (keystore.h); a
# test waits a little longer than that after a CLI change before asserting the daemon saw it.
REVALIDATE_SECONDS = 1.0
SETTLE = REVALIDATE_SECONDS + 0.5


def as_uuid(hex32: str) -> str:
    return str(uuid.UUID(hex=hex32))


def key_arn(tenant_id: str, key_uuid: str) -> str:
    # Coffre's choice: the ARN's account field is the tenant id (there is no AWS account).
    return f"arn:aws:kms:{REGION}:{tenant_id}:key/{key_uuid}"


def encryption_config(algorithm, key=None, bucket_key=None) -> dict:
    default = {"SSEAlgorithm": algorithm}
    if key is not None:
        default["KMSMasterKeyID"] = key
    rule = {"ApplyServerSideEncryptionByDefault": default}
    if bucket_key is not None:
        rule["BucketKeyEnabled"] = bucket_key
    return {"Rules": [rule]}


def b64json(value) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


class NamedKeyHelpers:
    """CLI and S3 helpers shared by the test classes (mixed into CoffreTestCase subclasses)."""

    def cli(self, *args, check=True):
        return self.daemon.run_cli(*args, "--data-dir", self.daemon.data_dir, check=check)

    def cli_json(self, *args):
        return json.loads(self.cli(*args, "--json").stdout)

    def create_key(self, name, tenant="dev") -> str:
        """`coffre key create`; the key's id (a UUID)."""
        out = self.cli_json("key", "create", tenant, name)
        self.assertEqual((out["tenant"], out["name"]), (tenant, name), out)
        self.assertRegex(out["key_id"], UUID_RE)
        return out["key_id"]

    def tenant_id(self, tenant="dev") -> str:
        ids = [t["id"] for t in self.cli_json("tenant", "list") if t["tenant"] == tenant]
        self.assertEqual(len(ids), 1, tenant)
        return ids[0]

    def named_keys(self, tenant="dev") -> dict:
        return {k["name"]: k for k in self.cli_json("key", "list", tenant)["named_keys"]}

    def versions(self, tenant="dev", key=None) -> list:
        args = ("--key", key) if key else ()
        listed = self.cli_json("key", "list", tenant, *args)
        return [(v["version"], v["state"], v["objects"]) for v in listed["versions"]]

    def put_kms(self, bucket, key, body, key_id=None, client=None, **kw):
        args = {"ServerSideEncryption": "aws:kms", **({"SSEKMSKeyId": key_id} if key_id is not None else {})}
        return (client or self.s3).put_object(Bucket=bucket, Key=key, Body=body, **args, **kw)

    def assertReportsKey(self, resp, arn, bucket_key=None):
        """A boto3 answer reporting aws:kms under the key `arn`."""
        self.assertEqual(resp.get("ServerSideEncryption"), "aws:kms", resp)
        self.assertEqual(resp.get("SSEKMSKeyId"), arn, resp)
        if bucket_key is not None:
            self.assertEqual(bool(resp.get("BucketKeyEnabled")), bucket_key, resp)

    def assertReportsAes256(self, resp):
        self.assertEqual(resp.get("ServerSideEncryption"), "AES256", resp)
        self.assertNotIn("SSEKMSKeyId", resp)
        self.assertNotIn(KEY_ID, resp["ResponseMetadata"]["HTTPHeaders"])

    def assertStoredUnder(self, bucket, key, body, arn, client=None, vid=None):
        """HEAD and GET report aws:kms under `arn` and GET gives `body` back; the raw HEAD's headers too."""
        c = client or self.s3
        kw = {"VersionId": vid} if vid else {}
        self.assertReportsKey(c.head_object(Bucket=bucket, Key=key, **kw), arn)
        got = c.get_object(Bucket=bucket, Key=key, **kw)
        self.assertReportsKey(got, arn)
        self.assertEqual(got["Body"].read(), body, f"{bucket}/{key}")

    def assertRefused(self, bucket, key, client=None, vid=None):
        # Coffre's choice: reading an object whose key was destroyed answers 403 AccessDenied (as
        # reading a shredded tenant's objects does); S3 would pass KMS's error through.
        kw = {"VersionId": vid} if vid else {}
        self.assertClientError("AccessDenied", 403, (client or self.s3).get_object, Bucket=bucket, Key=key, **kw)

    def wait_refused(self, bucket, key, client=None, timeout=REVALIDATE_SECONDS + 4):
        """Until GET of bucket/key answers AccessDenied (the daemon has seen a shred)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                (client or self.s3).get_object(Bucket=bucket, Key=key)["Body"].read()
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") == "AccessDenied":
                    return
            time.sleep(0.1)
        self.fail(f"{bucket}/{key} still answered {timeout}s after its key was shredded")

    def shred(self, name, *extra, tenant="dev", check=True):
        return self.cli("key", "shred", tenant, name, "--confirm", name, *extra, check=check)


class NamedKeysTest(NamedKeyHelpers, CoffreTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = cls.daemon

        def cli_json(*args):
            return json.loads(d.run_cli(*args, "--data-dir", d.data_dir, "--json").stdout)

        cls.dev_id = [t["id"] for t in cli_json("tenant", "list") if t["tenant"] == "dev"][0]
        cls.dossiers = cli_json("key", "create", "dev", "dossiers")["key_id"]
        cls.payroll = cli_json("key", "create", "dev", "payroll")["key_id"]
        cls.dossiers_arn = key_arn(cls.dev_id, cls.dossiers)
        cls.payroll_arn = key_arn(cls.dev_id, cls.payroll)
        # The default key's id is the tenant id (docs/KEYS.md), reported as a UUID like any key id.
        cls.default_arn = key_arn(cls.dev_id, as_uuid(cls.dev_id))
        time.sleep(SETTLE)

    # ---------------------------------------------------------------------------------------
    # 1. coffre key create / list
    # ---------------------------------------------------------------------------------------

    def test_create_and_list_named_keys(self):
        before_default = self.versions()
        kid = self.create_key("contracts/2026_v1.final-draft")
        listed = self.cli_json("key", "list", "dev")
        self.assertEqual(listed["tenant"], "dev")
        self.assertFalse(listed["shredded"])
        by_name = {k["name"]: k for k in listed["named_keys"]}
        entry = by_name["contracts/2026_v1.final-draft"]
        self.assertEqual(entry["key_id"], kid)
        self.assertIsNone(entry["destroyed"])
        self.assertRegex(entry["created"], ISO_RE)
        self.assertEqual(by_name["dossiers"]["key_id"], self.dossiers)
        self.assertEqual(by_name["payroll"]["key_id"], self.payroll)
        self.assertEqual(len({k["key_id"] for k in listed["named_keys"]}), len(listed["named_keys"]), "ids unique")
        # the named key has versions of its own, starting at 1
        own = self.cli_json("key", "list", "dev", "--key", "contracts/2026_v1.final-draft")
        self.assertEqual(own["tenant"], "dev")
        self.assertEqual([(v["version"], v["state"], v["objects"]) for v in own["versions"]], [(1, "active", 0)])
        self.assertRegex(own["versions"][0]["created"], ISO_RE)
        # ... and the default key's are unchanged by it
        self.assertEqual(self.versions(), before_default)
        # --key also takes the key's id
        self.assertEqual(self.versions(key=kid), [(1, "active", 0)])
        # the plain-text listing names it too
        text = self.cli("key", "list", "dev").stdout.decode()
        self.assertIn("contracts/2026_v1.final-draft", text)
        self.assertIn(kid, text)

        # 200 characters is the longest name
        self.create_key("n" * 200)

        # a duplicate name is refused, and no second key appears
        p = self.cli("key", "create", "dev", "dossiers", check=False)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertEqual(self.named_keys()["dossiers"]["key_id"], self.dossiers)

        bad_names = ["", "n" * 201, "bad name", "clé", "semi;colon", "aws/mine", "alias/mine",
                     "0123456789abcdef0123456789abcdef", str(uuid.uuid4())]
        before = self.named_keys()
        for name in bad_names:
            with self.subTest(name=name):
                p = self.cli("key", "create", "dev", name, check=False)
                self.assertNotEqual(p.returncode, 0, p.stdout)
                self.assertIn(b"invalid key name", p.stderr)
        self.assertEqual(self.named_keys(), before)

        for args in (("key", "create", "nobody", "fine-name"), ("key", "list", "dev", "--key", "no-such-key"),
                     ("key", "rotate", "dev", "--key", "no-such-key"), ("key", "shred", "dev", "no-such-key",
                                                                        "--confirm", "no-such-key")):
            with self.subTest(args=args):
                p = self.cli(*args, check=False)
                self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertEqual(self.named_keys(), before)

    # ---------------------------------------------------------------------------------------
    # 2. choosing a key on PUT; what answers report
    # ---------------------------------------------------------------------------------------

    def test_every_form_of_a_key_id_selects_the_key(self):
        bucket = self.new_bucket()
        forms = {
            "name": "dossiers",
            "alias": "alias/dossiers",
            "uuid": self.dossiers,
            "hex": self.dossiers.replace("-", ""),
            "key-arn": self.dossiers_arn,
            "alias-arn": f"arn:aws:kms:{REGION}:{self.dev_id}:alias/dossiers",
        }
        for form, spec in forms.items():
            with self.subTest(form=form):
                body = f"filed by {form}".encode()
                put = self.put_kms(bucket, form, body, spec)
                self.assertReportsKey(put, self.dossiers_arn)
                self.assertEqual(put["ResponseMetadata"]["HTTPHeaders"][METHOD], "aws:kms")
                self.assertEqual(put["ResponseMetadata"]["HTTPHeaders"][KEY_ID], self.dossiers_arn)
                self.assertStoredUnder(bucket, form, body, self.dossiers_arn)
                raw = self.daemon.request("HEAD", f"/{bucket}/{form}")
                self.assertEqual(raw.status, 200, raw)
                self.assertEqual((raw.headers[METHOD], raw.headers[KEY_ID]), ("aws:kms", self.dossiers_arn))
        # another key is another ARN
        put = self.put_kms(bucket, "salaries", b"salaries", "payroll")
        self.assertReportsKey(put, self.payroll_arn)
        self.assertNotEqual(self.payroll_arn, self.dossiers_arn)
        self.assertStoredUnder(bucket, "salaries", b"salaries", self.payroll_arn)
        # the objects count under the key's version 1
        self.assertGreaterEqual(self.versions(key="dossiers")[0][2], len(forms))

    def test_aws_kms_without_a_key_uses_the_default_key(self):
        bucket = self.new_bucket()
        for name, spec in (("no-key", None), ("aws-s3", "aws/s3")):
            with self.subTest(spec=spec):
                put = self.put_kms(bucket, name, name.encode(), spec)
                # Reported as aws:kms under the default key, whose ARN carries the tenant id as the
                # key id (Coffre's choice: the default key's id is the tenant's, docs/KEYS.md).
                self.assertReportsKey(put, self.default_arn)
                self.assertStoredUnder(bucket, name, name.encode(), self.default_arn)
        # an object written without aws:kms reports AES256 and no key id, on every answer
        put = self.s3.put_object(Bucket=bucket, Key="plain", Body=b"plain")
        self.assertReportsAes256(put)
        self.assertReportsAes256(self.s3.head_object(Bucket=bucket, Key="plain"))
        got = self.s3.get_object(Bucket=bucket, Key="plain")
        self.assertReportsAes256(got)
        self.assertEqual(got["Body"].read(), b"plain")
        raw = self.daemon.request("HEAD", f"/{bucket}/plain")
        self.assertEqual(raw.headers[METHOD], "AES256")
        self.assertNotIn(KEY_ID, raw.headers)

    def test_unknown_keys_are_not_found_and_nothing_is_stored(self):
        bucket = self.new_bucket()
        old = self.s3.put_object(Bucket=bucket, Key="existing", Body=b"the old version")
        unknown = ["no-such-key", "alias/no-such-key", str(uuid.uuid4()), uuid.uuid4().hex,
                   key_arn(self.dev_id, str(uuid.uuid4())), f"arn:aws:kms:{REGION}:{self.dev_id}:alias/no-such-key"]
        for spec in unknown:
            with self.subTest(spec=spec):
                self.assertClientError("KMS.NotFoundException", 400, self.put_kms, bucket, "new", b"x", spec)
                self.assertClientError("KMS.NotFoundException", 400, self.put_kms, bucket, "existing", b"x", spec)
                self.assertClientError("KMS.NotFoundException", 400, self.s3.copy_object, Bucket=bucket, Key="copy",
                                       CopySource={"Bucket": bucket, "Key": "existing"},
                                       ServerSideEncryption="aws:kms", SSEKMSKeyId=spec)
                self.assertClientError("KMS.NotFoundException", 400, self.s3.create_multipart_upload, Bucket=bucket,
                                       Key="upload", ServerSideEncryption="aws:kms", SSEKMSKeyId=spec)
        for key in ("new", "copy", "upload"):
            self.assertKeyAbsent(bucket, key)
        self.assertEqual(self.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []), [])
        head = self.s3.head_object(Bucket=bucket, Key="existing")
        self.assertEqual(head["ETag"], old["ETag"])
        self.assertReportsAes256(head)
        self.assertEqual(self.get_bytes(bucket, "existing"), b"the old version")

    def test_encryption_context_and_bucket_key(self):
        bucket = self.new_bucket()
        context = b64json({"department": "legal", "case": "2026-17"})
        put = self.put_kms(bucket, "ctx", b"with a context", "dossiers", SSEKMSEncryptionContext=context,
                           BucketKeyEnabled=True)
        self.assertReportsKey(put, self.dossiers_arn, bucket_key=True)
        self.assertEqual(put["ResponseMetadata"]["HTTPHeaders"][CONTEXT], context)
        self.assertEqual(put["ResponseMetadata"]["HTTPHeaders"][BUCKET_KEY], "true")
        self.assertReportsKey(self.s3.head_object(Bucket=bucket, Key="ctx"), self.dossiers_arn, bucket_key=True)
        got = self.s3.get_object(Bucket=bucket, Key="ctx")
        self.assertReportsKey(got, self.dossiers_arn, bucket_key=True)
        self.assertEqual(got["Body"].read(), b"with a context")
        # bucket-key-enabled: false is accepted too, and not reported as enabled
        put = self.put_kms(bucket, "no-bucket-key", b"x", "dossiers", BucketKeyEnabled=False)
        self.assertReportsKey(put, self.dossiers_arn, bucket_key=False)
        self.assertFalse(self.s3.head_object(Bucket=bucket, Key="no-bucket-key").get("BucketKeyEnabled", False))

        malformed = [
            {METHOD: "aws:kms", CONTEXT: "!!! not base64 !!!"},
            {METHOD: "aws:kms", CONTEXT: base64.b64encode(b"not json").decode()},
            {METHOD: "aws:kms", CONTEXT: b64json(["a", "list"])},
            {METHOD: "aws:kms", CONTEXT: b64json({"count": 1})},
            {METHOD: "aws:kms", KEY_ID: "dossiers", BUCKET_KEY: "yes"},
            {METHOD: "aws:kms", KEY_ID: "dossiers", BUCKET_KEY: "1"},
        ]
        for headers in malformed:
            with self.subTest(headers=headers):
                r = self.daemon.request("PUT", f"/{bucket}/malformed", headers=headers, body=b"x")
                self.assertS3Error(r, "InvalidArgument", 400)
        self.assertKeyAbsent(bucket, "malformed")

    def test_method_header_errors(self):
        bucket = self.new_bucket()
        self.s3.put_object(Bucket=bucket, Key="source", Body=b"source")
        # dual-layer encryption is not implemented, wherever an object would be stored under it
        for spec in (None, "dossiers"):
            with self.subTest(spec=spec):
                kw = {"ServerSideEncryption": "aws:kms:dsse", **({"SSEKMSKeyId": spec} if spec else {})}
                e = self.assertClientError("NotImplemented", 501, self.s3.put_object, Bucket=bucket, Key="dsse",
                                           Body=b"x", **kw)
                self.assertIn("aws:kms:dsse", e.response["Error"]["Message"])
                self.assertClientError("NotImplemented", 501, self.s3.copy_object, Bucket=bucket, Key="dsse",
                                       CopySource={"Bucket": bucket, "Key": "source"}, **kw)
                self.assertClientError("NotImplemented", 501, self.s3.create_multipart_upload, Bucket=bucket,
                                       Key="dsse", **kw)
        # a key id belongs with aws:kms only
        for headers in ({METHOD: "AES256", KEY_ID: "dossiers"}, {KEY_ID: "dossiers"},
                        {METHOD: "aws:kms", KEY_ID: ""}):
            with self.subTest(headers=headers):
                r = self.daemon.request("PUT", f"/{bucket}/dsse", headers=headers, body=b"x")
                self.assertS3Error(r, "InvalidArgument", 400)
        self.assertKeyAbsent(bucket, "dsse")
        self.assertEqual(self.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []), [])

    # ---------------------------------------------------------------------------------------
    # 3. CopyObject and multipart uploads
    # ---------------------------------------------------------------------------------------

    def test_a_copy_is_encrypted_as_its_request_says_never_as_its_source(self):
        bucket = self.new_bucket()
        self.put_kms(bucket, "kms-source", b"under dossiers", "dossiers")
        self.s3.put_object(Bucket=bucket, Key="aes-source", Body=b"under the default key")

        # an aws:kms source copied without SSE arguments: an AES256 copy
        copy = self.s3.copy_object(Bucket=bucket, Key="plain-copy", CopySource={"Bucket": bucket, "Key": "kms-source"})
        self.assertReportsAes256(copy)
        head = self.s3.head_object(Bucket=bucket, Key="plain-copy")
        self.assertReportsAes256(head)
        self.assertEqual(self.get_bytes(bucket, "plain-copy"), b"under dossiers")

        # an AES256 source copied with aws:kms and a key: under that key
        copy = self.s3.copy_object(Bucket=bucket, Key="kms-copy", CopySource={"Bucket": bucket, "Key": "aes-source"},
                                   ServerSideEncryption="aws:kms", SSEKMSKeyId="payroll")
        self.assertReportsKey(copy, self.payroll_arn)
        self.assertStoredUnder(bucket, "kms-copy", b"under the default key", self.payroll_arn)

        # one named key to another
        copy = self.s3.copy_object(Bucket=bucket, Key="rekeyed", CopySource={"Bucket": bucket, "Key": "kms-source"},
                                   ServerSideEncryption="aws:kms", SSEKMSKeyId=self.payroll_arn)
        self.assertReportsKey(copy, self.payroll_arn)
        self.assertStoredUnder(bucket, "rekeyed", b"under dossiers", self.payroll_arn)
        # the sources are untouched
        self.assertStoredUnder(bucket, "kms-source", b"under dossiers", self.dossiers_arn)
        self.assertReportsAes256(self.s3.head_object(Bucket=bucket, Key="aes-source"))

        # without SSE arguments in a bucket whose default is a named key: the bucket's key
        other = self.new_bucket()
        self.s3.put_bucket_encryption(Bucket=other, ServerSideEncryptionConfiguration=encryption_config(
            "aws:kms", "payroll"))
        copy = self.s3.copy_object(Bucket=other, Key="defaulted", CopySource={"Bucket": bucket, "Key": "kms-source"})
        self.assertReportsKey(copy, self.payroll_arn)
        self.assertStoredUnder(other, "defaulted", b"under dossiers", self.payroll_arn)

    def test_multipart_upload_under_a_named_key(self):
        name = unique_bucket("mp-key")
        self.create_key(name)
        time.sleep(SETTLE)
        arn = key_arn(self.dev_id, self.named_keys()[name]["key_id"])
        bucket = self.new_bucket()
        up = self.s3.create_multipart_upload(Bucket=bucket, Key="big", ServerSideEncryption="aws:kms",
                                             SSEKMSKeyId=f"alias/{name}")
        self.assertReportsKey(up, arn)
        part1, part2 = gen_bytes(5 * MiB, seed=1), gen_bytes(1000, seed=2)
        parts = []
        for n, body in ((1, part1), (2, part2)):
            r = self.s3.upload_part(Bucket=bucket, Key="big", UploadId=up["UploadId"], PartNumber=n, Body=body)
            self.assertReportsKey(r, arn)
            parts.append({"PartNumber": n, "ETag": r["ETag"]})
        # the upload in progress holds a data key under the named key
        self.assertEqual(self.versions(key=name), [(1, "active", 1)])
        done = self.s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=up["UploadId"],
                                                 MultipartUpload={"Parts": parts})
        self.assertReportsKey(done, arn)
        self.assertStoredUnder(bucket, "big", part1 + part2, arn)
        self.assertEqual(self.s3.get_object(Bucket=bucket, Key="big", Range="bytes=5242870-5242889")["Body"].read(),
                         (part1 + part2)[5242870:5242890])
        self.assertEqual(self.versions(key=name), [(1, "active", 1)])
        # an upload without aws:kms beside it: AES256 throughout
        plain = self.s3.create_multipart_upload(Bucket=bucket, Key="plain")
        self.assertReportsAes256(plain)
        r = self.s3.upload_part(Bucket=bucket, Key="plain", UploadId=plain["UploadId"], PartNumber=1, Body=b"small")
        self.assertReportsAes256(r)
        done = self.s3.complete_multipart_upload(Bucket=bucket, Key="plain", UploadId=plain["UploadId"],
                                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": r["ETag"]}]})
        self.assertReportsAes256(done)

        self.shred(name)
        self.wait_refused(bucket, "big")
        self.assertRefused(bucket, "big")
        self.assertEqual(self.get_bytes(bucket, "plain"), b"small")
        # and no new upload can be made under it
        self.assertClientError("KMS.KMSInvalidStateException", 400, self.s3.create_multipart_upload, Bucket=bucket,
                               Key="big2", ServerSideEncryption="aws:kms", SSEKMSKeyId=name)

    # ---------------------------------------------------------------------------------------
    # 4. bucket default encryption
    # ---------------------------------------------------------------------------------------

    def test_bucket_default_encryption_with_a_named_key(self):
        bucket = self.new_bucket()
        forms = ["dossiers", "alias/dossiers", self.dossiers, self.dossiers_arn,
                 f"arn:aws:kms:{REGION}:{self.dev_id}:alias/dossiers"]
        for i, spec in enumerate(forms):
            with self.subTest(spec=spec):
                self.s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=encryption_config(
                    "aws:kms", spec, bucket_key=True))
                got = self.s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
                # returned as given, not resolved to an ARN
                self.assertEqual(got["ApplyServerSideEncryptionByDefault"],
                                 {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": spec})
                self.assertTrue(got["BucketKeyEnabled"])
                body = f"defaulted {i}".encode()
                put = self.s3.put_object(Bucket=bucket, Key=f"o{i}", Body=body)
                self.assertReportsKey(put, self.dossiers_arn, bucket_key=True)
                self.assertStoredUnder(bucket, f"o{i}", body, self.dossiers_arn)

        # an explicit header overrides the bucket's default, both ways
        put = self.s3.put_object(Bucket=bucket, Key="explicit-aes", Body=b"aes", ServerSideEncryption="AES256")
        self.assertReportsAes256(put)
        self.assertReportsAes256(self.s3.head_object(Bucket=bucket, Key="explicit-aes"))
        put = self.put_kms(bucket, "explicit-payroll", b"payroll", "payroll")
        self.assertReportsKey(put, self.payroll_arn)
        # a multipart upload without SSE headers takes the default too
        up = self.s3.create_multipart_upload(Bucket=bucket, Key="mp")
        self.assertReportsKey(up, self.dossiers_arn)
        self.s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=up["UploadId"])

        # An unknown KMSMasterKeyID: refused, the previous configuration stays. (Coffre's choice: S3
        # accepts any key id here and fails the uploads later; Coffre checks it now.)
        self.assertClientError("KMS.NotFoundException", 400, self.s3.put_bucket_encryption, Bucket=bucket,
                               ServerSideEncryptionConfiguration=encryption_config("aws:kms", "no-such-key"))
        self.assertClientError("KMS.NotFoundException", 400, self.s3.put_bucket_encryption, Bucket=bucket,
                               ServerSideEncryptionConfiguration=encryption_config(
                                   "aws:kms", key_arn(self.dev_id, str(uuid.uuid4()))))
        # a KMSMasterKeyID with AES256, and dual-layer encryption: refused, nothing changed
        self.assertClientError("InvalidArgument", 400, self.s3.put_bucket_encryption, Bucket=bucket,
                               ServerSideEncryptionConfiguration=encryption_config("AES256", "dossiers"))
        self.assertClientError("NotImplemented", 501, self.s3.put_bucket_encryption, Bucket=bucket,
                               ServerSideEncryptionConfiguration=encryption_config("aws:kms:dsse", "dossiers"))
        got = self.s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        self.assertEqual(got["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"], forms[-1])
        self.assertReportsKey(self.s3.put_object(Bucket=bucket, Key="still", Body=b"still"), self.dossiers_arn)

        # aws:kms without a KMSMasterKeyID: the default key, reported as aws:kms
        self.s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=encryption_config("aws:kms"))
        got = self.s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        self.assertEqual(got["ApplyServerSideEncryptionByDefault"], {"SSEAlgorithm": "aws:kms"})
        put = self.s3.put_object(Bucket=bucket, Key="default-key", Body=b"default key")
        self.assertReportsKey(put, self.default_arn)
        self.assertStoredUnder(bucket, "default-key", b"default key", self.default_arn)

        # DeleteBucketEncryption: back to AES256; the objects keep their keys
        self.s3.delete_bucket_encryption(Bucket=bucket)
        got = self.s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        self.assertEqual(got["ApplyServerSideEncryptionByDefault"], {"SSEAlgorithm": "AES256"})
        self.assertReportsAes256(self.s3.put_object(Bucket=bucket, Key="after", Body=b"after"))
        self.assertStoredUnder(bucket, "o0", b"defaulted 0", self.dossiers_arn)

    # ---------------------------------------------------------------------------------------
    # 5. coffre key shred
    # ---------------------------------------------------------------------------------------

    def test_shred_makes_exactly_the_objects_under_the_key_unreadable(self):
        victim = unique_bucket("victim")
        victim_id = self.create_key(victim)
        keeper = unique_bucket("keeper")
        keeper_id = self.create_key(keeper)
        time.sleep(SETTLE)
        victim_arn, keeper_arn = key_arn(self.dev_id, victim_id), key_arn(self.dev_id, keeper_id)

        bucket = self.new_bucket()
        self.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        bodies = {f"victim/{i}": gen_bytes(70000 + i, seed=i) for i in range(3)}
        for key, body in bodies.items():
            self.put_kms(bucket, key, body, victim)
        # a noncurrent version under the victim key, the current one under the keeper
        old = self.put_kms(bucket, "mixed", b"old, under the victim", victim)["VersionId"]
        self.put_kms(bucket, "mixed", b"new, under the keeper", keeper)
        self.put_kms(bucket, "keeper", b"keeper's", keeper)
        self.s3.put_object(Bucket=bucket, Key="default", Body=b"default key's")
        self.s3.put_object(Bucket=bucket, Key="overwritten", Body=b"stays")
        self.assertEqual(self.versions(key=victim), [(1, "active", 4)])
        # a bucket whose default encryption is the victim key
        defaulted = self.new_bucket()
        self.s3.put_bucket_encryption(Bucket=defaulted, ServerSideEncryptionConfiguration=encryption_config(
            "aws:kms", victim))
        self.s3.put_object(Bucket=defaulted, Key="d", Body=b"defaulted")

        # --confirm must repeat the name: refused, nothing destroyed
        p = self.cli("key", "shred", "dev", victim, "--confirm", keeper, check=False)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        time.sleep(SETTLE)
        self.assertIsNone(self.named_keys()[victim]["destroyed"])
        self.assertStoredUnder(bucket, "victim/0", bodies["victim/0"], victim_arn)

        self.shred(victim)
        listed = self.named_keys()
        self.assertRegex(listed[victim]["destroyed"], ISO_RE)
        self.assertIsNone(listed[keeper]["destroyed"])
        self.wait_refused(bucket, "victim/0")
        for key in bodies:
            with self.subTest(key=key):
                self.assertRefused(bucket, key)
                self.assertClientError("AccessDenied", 403, self.s3.get_object, Bucket=bucket, Key=key,
                                       Range="bytes=0-99")
        self.assertRefused(bucket, "mixed", vid=old)
        self.assertRefused(defaulted, "d")
        # everything under other keys reads as before
        self.assertStoredUnder(bucket, "mixed", b"new, under the keeper", keeper_arn)
        self.assertStoredUnder(bucket, "keeper", b"keeper's", keeper_arn)
        self.assertEqual(self.get_bytes(bucket, "default"), b"default key's")
        self.assertEqual(self.get_bytes(bucket, "overwritten"), b"stays")

        # a destroyed key encrypts nothing new: KMSInvalidStateException, nothing stored
        for spec in (victim, f"alias/{victim}", victim_id, victim_arn):
            with self.subTest(spec=spec):
                self.assertClientError("KMS.KMSInvalidStateException", 400, self.put_kms, bucket, "new", b"x", spec)
                self.assertClientError("KMS.KMSInvalidStateException", 400, self.put_kms, bucket, "overwritten",
                                       b"x", spec)
        self.assertClientError("KMS.KMSInvalidStateException", 400, self.s3.copy_object, Bucket=bucket, Key="new",
                               CopySource={"Bucket": bucket, "Key": "default"}, ServerSideEncryption="aws:kms",
                               SSEKMSKeyId=victim)
        self.assertKeyAbsent(bucket, "new")
        self.assertEqual(self.get_bytes(bucket, "overwritten"), b"stays")
        self.assertEqual(len(self.s3.list_object_versions(Bucket=bucket, Prefix="overwritten")["Versions"]), 1)
        # Coffre's choice: a bucket default naming the destroyed key refuses uploads the same way.
        self.assertClientError("KMS.KMSInvalidStateException", 400, self.s3.put_object, Bucket=defaulted, Key="e",
                               Body=b"x")
        self.assertKeyAbsent(defaulted, "e")

        # its name is never given out again; its versions are gone
        p = self.cli("key", "create", "dev", victim, check=False)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertEqual(self.named_keys()[victim]["key_id"], victim_id)
        self.assertEqual(self.versions(key=victim), [])

    def test_shred_is_refused_while_object_lock_protects_an_object_under_the_key(self):
        alice = self.daemon.admin_token_file(unique_bucket("nk-alice"))
        bob = self.daemon.admin_token_file(unique_bucket("nk-bob"))
        held, complied, governed, free = (unique_bucket(p) for p in ("held", "complied", "governed", "free"))
        ids = {n: self.create_key(n) for n in (held, complied, governed, free)}
        time.sleep(SETTLE)
        bucket = unique_bucket("nk-lock")
        self.s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        hold_vid = self.put_kms(bucket, "evidence", b"exhibit A", held, ObjectLockLegalHoldStatus="ON")["VersionId"]
        self.put_kms(bucket, "ledger", b"the ledger", complied, ObjectLockMode="COMPLIANCE",
                     ObjectLockRetainUntilDate=FAR)
        self.put_kms(bucket, "draft", b"the draft", governed, ObjectLockMode="GOVERNANCE",
                     ObjectLockRetainUntilDate=FAR)
        # protected objects under other keys (the default key, another named key) do not hold back
        # a key they are not under
        self.s3.put_object(Bucket=bucket, Key="default-held", Body=b"held", ObjectLockLegalHoldStatus="ON")
        self.put_kms(bucket, "free", b"unprotected", free)

        for name, key, needle in ((held, "evidence", "legal hold"), (complied, "ledger", "COMPLIANCE"),
                                  (governed, "draft", "GOVERNANCE")):
            with self.subTest(key=name):
                p = self.shred(name, check=False)
                self.assertNotEqual(p.returncode, 0, p.stdout)
                err = p.stderr.decode(errors="replace")
                self.assertIn(f"{bucket}/{key}", err)
                self.assertIn(needle, err)
        # an approval does not open a legal hold or COMPLIANCE retention
        for name in (held, complied):
            with self.subTest(key=name, approval=True):
                approval = self.daemon.granted_approval(alice, bob, "named_key.destroy", "dev", "--key", name)
                p = self.shred(name, "--approval", approval, check=False)
                self.assertNotEqual(p.returncode, 0, p.stdout)
        # nothing was destroyed (past the daemon's keystore revalidation, so that a key destroyed
        # behind a refusal would show)
        time.sleep(SETTLE)
        listed = self.named_keys()
        for name in (held, complied, governed):
            self.assertIsNone(listed[name]["destroyed"], name)
        self.assertStoredUnder(bucket, "evidence", b"exhibit A", key_arn(self.dev_id, ids[held]))
        self.assertStoredUnder(bucket, "ledger", b"the ledger", key_arn(self.dev_id, ids[complied]))
        self.assertStoredUnder(bucket, "draft", b"the draft", key_arn(self.dev_id, ids[governed]))

        # a key with nothing protected under it goes, beside the protected objects
        self.shred(free)
        self.wait_refused(bucket, "free")
        # GOVERNANCE yields to a granted approval for this key
        approval = self.daemon.granted_approval(alice, bob, "named_key.destroy", "dev", "--key", governed)
        p = self.shred(governed, "--approval", approval, check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.wait_refused(bucket, "draft")
        # the legal hold lifted, the key can go
        self.s3.put_object_legal_hold(Bucket=bucket, Key="evidence", VersionId=hold_vid, LegalHold={"Status": "OFF"})
        self.shred(held)
        self.wait_refused(bucket, "evidence")
        # the compliance-retained object is untouched by all of this
        self.assertStoredUnder(bucket, "ledger", b"the ledger", key_arn(self.dev_id, ids[complied]))
        self.assertEqual(self.get_bytes(bucket, "default-held"), b"held")

    # ---------------------------------------------------------------------------------------
    # 6. isolation between tenants
    # ---------------------------------------------------------------------------------------

    def test_a_tenant_cannot_use_another_tenants_keys(self):
        other_name = unique_bucket("nk-other")
        other = self.daemon.client_for(self.daemon.create_tenant(other_name))
        other_id = self.tenant_id(other_name)
        bucket = unique_bucket("nk-theirs")
        other.create_bucket(Bucket=bucket)
        mine = self.new_bucket()
        self.put_kms(mine, "doc", b"dev's dossier", "dossiers")
        for spec in ("dossiers", "alias/dossiers", self.dossiers, self.dossiers.replace("-", ""), self.dossiers_arn,
                     key_arn(other_id, self.dossiers), f"arn:aws:kms:{REGION}:{self.dev_id}:alias/dossiers",
                     # dev's default key, by its id
                     as_uuid(self.dev_id)):
            with self.subTest(spec=spec):
                self.assertClientError("KMS.NotFoundException", 400, self.put_kms, bucket, "stolen", b"x", spec,
                                       client=other)
                self.assertClientError("KMS.NotFoundException", 400, other.create_multipart_upload, Bucket=bucket,
                                       Key="stolen", ServerSideEncryption="aws:kms", SSEKMSKeyId=spec)
                self.assertClientError("KMS.NotFoundException", 400, other.put_bucket_encryption, Bucket=bucket,
                                       ServerSideEncryptionConfiguration=encryption_config("aws:kms", spec))
        self.assertKeyAbsent(bucket, "stolen", client=other)
        self.assertEqual(other.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
                         ["ApplyServerSideEncryptionByDefault"], {"SSEAlgorithm": "AES256"})
        # nor manage them through the CLI
        for args in (("key", "list", other_name, "--key", self.dossiers),
                     ("key", "rotate", other_name, "--key", "payroll"),
                     ("key", "shred", other_name, "payroll", "--confirm", "payroll")):
            with self.subTest(args=args):
                p = self.cli(*args, check=False)
                self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertEqual(self.cli_json("key", "list", other_name)["named_keys"], [])

        # a key of the same name of its own is another key, under its own tenant id
        theirs = self.create_key("dossiers", tenant=other_name)
        time.sleep(SETTLE)
        self.assertNotEqual(theirs, self.dossiers)
        theirs_arn = key_arn(other_id, theirs)
        put = self.put_kms(bucket, "own", b"their dossier", "dossiers", client=other)
        self.assertReportsKey(put, theirs_arn)
        self.assertStoredUnder(bucket, "own", b"their dossier", theirs_arn, client=other)
        # and dev's is still dev's, with dev's objects under it
        self.assertEqual(self.named_keys()["dossiers"]["key_id"], self.dossiers)
        self.assertStoredUnder(mine, "doc", b"dev's dossier", self.dossiers_arn)
        self.assertReportsKey(self.put_kms(mine, "doc2", b"x", "dossiers"), self.dossiers_arn)

    # ---------------------------------------------------------------------------------------
    # 7. rotation, rewrap and version destruction of a named key
    # ---------------------------------------------------------------------------------------

    def test_rotate_rewrap_and_destroy_a_version_of_a_named_key(self):
        name = unique_bucket("rotating")
        kid = self.create_key(name)
        time.sleep(SETTLE)
        arn = key_arn(self.dev_id, kid)
        bucket = self.new_bucket()
        bodies = {f"o{i}": gen_bytes(1000 + 977 * i, seed=i) for i in range(5)}
        for key, body in bodies.items():
            self.put_kms(bucket, key, body, name)
        default_before = self.versions()

        p = self.cli("key", "rotate", "dev", "--key", name)
        self.assertIn(b"key version 2", p.stdout)
        self.assertEqual(self.versions(key=name), [(1, "retired", 5), (2, "active", 0)])
        self.assertEqual(self.versions(), default_before, "the default key is not rotated with it")
        # version 1 still wraps objects: destroying it is refused
        p = self.cli("key", "destroy", "dev", "1", "--key", name, check=False)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn(b"rewrap", p.stderr)
        time.sleep(SETTLE)
        # old objects read as before; the key (and its ARN) is the same across versions
        for key, body in bodies.items():
            self.assertStoredUnder(bucket, key, body, arn)
        self.assertReportsKey(self.put_kms(bucket, "new", b"under version 2", name), arn)
        self.assertEqual(self.versions(key=name), [(1, "retired", 5), (2, "active", 1)])

        p = self.cli("key", "rewrap", "dev", "--key", name)
        self.assertIn(b"done", p.stdout)
        self.assertEqual(self.versions(key=name), [(1, "retired", 0), (2, "active", 6)])
        self.cli("key", "destroy", "dev", "1", "--key", name)
        versions = self.versions(key=name)
        self.assertIn((2, "active", 6), versions)
        self.assertEqual([v for v in versions if v[0] == 1 and v[1] != "destroying"], [], versions)
        # the active version is never destroyed
        p = self.cli("key", "destroy", "dev", "2", "--key", name, check=False)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        time.sleep(SETTLE)
        for key, body in bodies.items():
            self.assertStoredUnder(bucket, key, body, arn)
        self.assertStoredUnder(bucket, "new", b"under version 2", arn)
        self.assertEqual(self.versions(), default_before)

    # ---------------------------------------------------------------------------------------
    # 8. the audit log
    # ---------------------------------------------------------------------------------------

    def test_the_audit_log_records_creation_and_destruction(self):
        tmp = tempfile.mkdtemp(prefix="coffre-nk-audit-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        name = unique_bucket("audited")
        kid = self.create_key(name)
        time.sleep(SETTLE)
        bucket = self.new_bucket()
        put = self.put_kms(bucket, "doc", b"audited", name)
        put_rid = put["ResponseMetadata"]["RequestId"]
        self.cli("key", "rotate", "dev", "--key", name)
        self.shred(name)

        out = os.path.join(tmp, "export.jsonl")
        self.cli("audit", "export", "--tenant", "dev", "--format", "jsonl", "--out", out)
        public_key = self.cli("audit", "public-key").stdout.decode().strip()
        p = self.daemon.run_cli("audit", "verify", out, "--public-key", public_key, check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(out) as f:
            lines = [json.loads(line) for line in f]
        self.assertEqual(lines[0]["tenant"], self.dev_id)
        recs = [r for r in lines if r["type"] == "record"]
        hex_id = kid.replace("-", "")
        mine = [r for r in recs if r["key_id"] == hex_id]
        lifecycle = [r for r in mine if not r["operation"].startswith("data")]
        self.assertEqual([r["operation"] for r in lifecycle], ["named_key.create", "tenant_key.rotate",
                                                               "named_key.destroy"])
        self.assertEqual([r["key_version"] for r in lifecycle[:2]], [1, 2])
        for r in mine:
            self.assertEqual(r["tenant"], self.dev_id, r)
            self.assertEqual(r["outcome"], "success", r)
        create = next(r for r in mine if r["operation"] == "named_key.create")
        destroy = next(r for r in mine if r["operation"] == "named_key.destroy")
        self.assertIn(name, create["action"])
        self.assertTrue(create["action"].startswith("cli:key create"), create)
        self.assertIn(name, destroy["action"])
        self.assertTrue(destroy["action"].startswith("cli:key shred"), destroy)
        # the PUT's data key was wrapped under the named key, version 1
        wraps = [r for r in recs if r["request_id"] == put_rid]
        self.assertEqual([(r["operation"], r["key_id"], r["key_version"], r["object_key"]) for r in wraps],
                         [("data_key.wrap", hex_id, 1, "doc")])
        # the chain verifies as a whole (checked offline above) and in place
        p = self.cli("audit", "check", check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


class NamedKeysRestartTest(NamedKeyHelpers, CoffreTestCase):
    """Named keys, the objects under them and a bucket's default key live in the keystore and the
    catalog: the same after a restart; a shredded key stays shredded."""

    def test_named_keys_survive_a_restart(self):
        dev_id = self.tenant_id()
        kept = self.create_key("kept")
        gone = self.create_key("gone")
        time.sleep(SETTLE)
        kept_arn = key_arn(dev_id, kept)
        bucket = self.new_bucket()
        self.s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=encryption_config(
            "aws:kms", "alias/kept", bucket_key=True))
        body = gen_bytes(200000, seed=7)
        self.s3.put_object(Bucket=bucket, Key="defaulted", Body=body)
        self.put_kms(bucket, "explicit", b"explicit", kept)
        up = self.s3.create_multipart_upload(Bucket=bucket, Key="mp", ServerSideEncryption="aws:kms",
                                             SSEKMSKeyId="kept")
        part = gen_bytes(5 * MiB, seed=8)
        etag = self.s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=part)["ETag"]
        self.put_kms(bucket, "doomed", b"doomed", gone)
        self.s3.put_object(Bucket=bucket, Key="plain", Body=b"plain", ServerSideEncryption="AES256")
        self.shred("gone")
        self.wait_refused(bucket, "doomed")
        before = self.cli_json("key", "list", "dev")

        first = self.daemon
        exit_code = first.stop(check=False)
        second = Daemon(tmp=first.tmp)
        try:
            second.start()
        finally:
            type(self).daemon = second   # the class cleanup stops it (SIGTERM, exit 0) and cleans up
        self.assertEqual(exit_code, 0, "exit code of the first daemon after SIGTERM")
        type(self).s3 = second.client()

        self.assertEqual(self.cli_json("key", "list", "dev"), before)
        self.assertStoredUnder(bucket, "defaulted", body, kept_arn)
        self.assertTrue(self.s3.head_object(Bucket=bucket, Key="defaulted")["BucketKeyEnabled"])
        self.assertStoredUnder(bucket, "explicit", b"explicit", kept_arn)
        self.assertEqual(self.get_bytes(bucket, "plain"), b"plain")
        self.assertReportsAes256(self.s3.head_object(Bucket=bucket, Key="plain"))
        self.assertRefused(bucket, "doomed")
        self.assertClientError("KMS.KMSInvalidStateException", 400, self.put_kms, bucket, "doomed2", b"x", "gone")
        # the bucket's default still names the key, and still applies
        got = self.s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        self.assertEqual(got["ApplyServerSideEncryptionByDefault"], {"SSEAlgorithm": "aws:kms",
                                                                     "KMSMasterKeyID": "alias/kept"})
        self.assertReportsKey(self.s3.put_object(Bucket=bucket, Key="after", Body=b"after"), kept_arn)
        # the upload begun before the restart completes under its key
        tail = gen_bytes(100, seed=9)
        r = self.s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=2, Body=tail)
        self.assertReportsKey(r, kept_arn)
        done = self.s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up["UploadId"], MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": etag}, {"PartNumber": 2, "ETag": r["ETag"]}]})
        self.assertReportsKey(done, kept_arn)
        self.assertStoredUnder(bucket, "mp", part + tail, kept_arn)


if __name__ == "__main__":
    unittest.main()
