"""Tenants can't see or touch each other's buckets; no plaintext or key name reaches the disk."""

import os
import stat
import subprocess
import unittest
import uuid

from harness import MiB, CoffreTestCase, Daemon, gen_bytes, stored_blob_files


class TenantIsolationTest(CoffreTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.alice = cls.daemon.credentials          # the dev tenant
        cls.bob_creds = cls.daemon.create_tenant("bob")
        cls.bob = cls.daemon.client_for(cls.bob_creds)
        cls.s3.create_bucket(Bucket="alice-private")
        cls.secret_data = gen_bytes(100000, seed=55)
        cls.s3.put_object(Bucket="alice-private", Key="statement.pdf", Body=cls.secret_data,
                          Metadata={"client": "ACME"})
        cls.upload_id = cls.s3.create_multipart_upload(Bucket="alice-private",
                                                       Key="in-progress")["UploadId"]
        cls.bob.create_bucket(Bucket="bob-bucket")
        cls.bob.put_object(Bucket="bob-bucket", Key="bob.txt", Body=b"bob's data")

    def tearDown(self):
        self.assertObjectEquals("alice-private", "statement.pdf", self.secret_data)
        self.assertEqual(self.s3.head_object(Bucket="alice-private", Key="statement.pdf")["Metadata"],
                         {"client": "ACME"})
        self.assertObjectEquals("bob-bucket", "bob.txt", b"bob's data", client=self.bob)

    def test_tenant_cli(self):
        self.assertTrue(self.bob_creds["access_key_id"])
        self.assertTrue(self.bob_creds["secret_access_key"])
        self.assertEqual(self.bob_creds["tenant"], "bob")
        self.assertNotEqual(self.bob_creds["access_key_id"], self.alice["access_key_id"])
        p = self.daemon.run_cli("tenant", "list", "--data-dir", self.daemon.data_dir)
        out = p.stdout.decode()
        self.assertIn("dev", out)
        self.assertIn("bob", out)
        # creating the same tenant twice fails
        p = self.daemon.run_cli("tenant", "create", "bob", "--data-dir", self.daemon.data_dir,
                                "--json", check=False)
        self.assertNotEqual(p.returncode, 0, p.stdout)

    def test_list_buckets_is_per_tenant(self):
        a = [b["Name"] for b in self.s3.list_buckets()["Buckets"]]
        b = [b["Name"] for b in self.bob.list_buckets()["Buckets"]]
        self.assertIn("alice-private", a)
        self.assertNotIn("bob-bucket", a)
        self.assertIn("bob-bucket", b)
        self.assertNotIn("alice-private", b)
        self.assertNotEqual(self.s3.list_buckets()["Owner"]["ID"],
                            self.bob.list_buckets()["Owner"]["ID"])

    def test_every_operation_on_foreign_bucket_is_denied(self):
        B, K = "alice-private", "statement.pdf"
        ops = [
            ("HeadBucket", None, lambda: self.bob.head_bucket(Bucket=B)),
            ("ListObjectsV2", "AccessDenied", lambda: self.bob.list_objects_v2(Bucket=B)),
            ("ListObjects", "AccessDenied", lambda: self.bob.list_objects(Bucket=B)),
            ("ListObjectVersions", "AccessDenied", lambda: self.bob.list_object_versions(Bucket=B)),
            ("GetObject", "AccessDenied", lambda: self.bob.get_object(Bucket=B, Key=K)),
            ("GetObject(missing key)", "AccessDenied",
             lambda: self.bob.get_object(Bucket=B, Key="does-not-exist")),
            ("HeadObject", None, lambda: self.bob.head_object(Bucket=B, Key=K)),
            ("GetObjectRange", "AccessDenied",
             lambda: self.bob.get_object(Bucket=B, Key=K, Range="bytes=0-10")),
            ("PutObject", "AccessDenied",
             lambda: self.bob.put_object(Bucket=B, Key=K, Body=b"overwrite")),
            ("PutObject(new)", "AccessDenied",
             lambda: self.bob.put_object(Bucket=B, Key="bob-was-here", Body=b"x")),
            ("DeleteObject", "AccessDenied", lambda: self.bob.delete_object(Bucket=B, Key=K)),
            ("DeleteObjects", "AccessDenied",
             lambda: self.bob.delete_objects(Bucket=B, Delete={"Objects": [{"Key": K}]})),
            ("DeleteBucket", "AccessDenied", lambda: self.bob.delete_bucket(Bucket=B)),
            ("GetBucketLocation", "AccessDenied", lambda: self.bob.get_bucket_location(Bucket=B)),
            ("GetBucketAcl", "AccessDenied", lambda: self.bob.get_bucket_acl(Bucket=B)),
            ("GetObjectAcl", "AccessDenied", lambda: self.bob.get_object_acl(Bucket=B, Key=K)),
            ("GetBucketVersioning", "AccessDenied",
             lambda: self.bob.get_bucket_versioning(Bucket=B)),
            ("CopyObject(from foreign)", "AccessDenied",
             lambda: self.bob.copy_object(Bucket="bob-bucket", Key="stolen",
                                          CopySource={"Bucket": B, "Key": K})),
            ("CopyObject(into foreign)", "AccessDenied",
             lambda: self.bob.copy_object(Bucket=B, Key="planted",
                                          CopySource={"Bucket": "bob-bucket", "Key": "bob.txt"})),
            ("CreateMultipartUpload", "AccessDenied",
             lambda: self.bob.create_multipart_upload(Bucket=B, Key="mp")),
            ("ListMultipartUploads", "AccessDenied",
             lambda: self.bob.list_multipart_uploads(Bucket=B)),
            ("ListParts", "AccessDenied",
             lambda: self.bob.list_parts(Bucket=B, Key="in-progress", UploadId=self.upload_id)),
            ("UploadPart", "AccessDenied",
             lambda: self.bob.upload_part(Bucket=B, Key="in-progress", UploadId=self.upload_id,
                                          PartNumber=1, Body=b"bob's part")),
            ("AbortMultipartUpload", "AccessDenied",
             lambda: self.bob.abort_multipart_upload(Bucket=B, Key="in-progress",
                                                     UploadId=self.upload_id)),
            ("CompleteMultipartUpload", "AccessDenied",
             lambda: self.bob.complete_multipart_upload(
                 Bucket=B, Key="in-progress", UploadId=self.upload_id,
                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"x"'}]})),
            ("CreateBucket(same name)", "BucketAlreadyExists",
             lambda: self.bob.create_bucket(Bucket=B)),
        ]
        for name, code, fn in ops:
            with self.subTest(operation=name):
                want_status = 409 if code == "BucketAlreadyExists" else 403
                self.assertClientError(code, want_status, fn)
        # UploadPartCopy from a foreign source into bob's own upload
        uid = self.bob.create_multipart_upload(Bucket="bob-bucket", Key="steal-mp")["UploadId"]
        self.assertClientError("AccessDenied", 403, self.bob.upload_part_copy, Bucket="bob-bucket",
                               Key="steal-mp", UploadId=uid, PartNumber=1,
                               CopySource={"Bucket": B, "Key": K})
        self.bob.abort_multipart_upload(Bucket="bob-bucket", Key="steal-mp", UploadId=uid)
        # nothing changed on alice's side
        self.assertKeyAbsent(B, "bob-was-here")
        self.assertKeyAbsent(B, "planted")
        self.assertKeyAbsent("bob-bucket", "stolen", client=self.bob)
        parts = self.s3.list_parts(Bucket=B, Key="in-progress", UploadId=self.upload_id)
        self.assertEqual(parts.get("Parts", []), [])

    def test_presigned_url_of_other_tenant_is_its_own(self):
        # bob's presigned URL for alice's object is denied
        url = self.bob.generate_presigned_url("get_object",
                                              Params={"Bucket": "alice-private",
                                                      "Key": "statement.pdf"}, ExpiresIn=60)
        p = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url],
                           capture_output=True, timeout=60)
        self.assertEqual(p.stdout, b"403")

    def test_nonexistent_bucket_is_404_for_everyone(self):
        self.assertClientError("NoSuchBucket", 404, self.bob.list_objects_v2,
                               Bucket="nobody-owns-this")
        self.assertClientError("NoSuchBucket", 404, self.s3.list_objects_v2,
                               Bucket="nobody-owns-this")

    def test_same_key_names_in_own_buckets(self):
        self.bob.create_bucket(Bucket="bob-second")
        self.bob.put_object(Bucket="bob-second", Key="statement.pdf", Body=b"bob's statement")
        self.assertObjectEquals("bob-second", "statement.pdf", b"bob's statement", client=self.bob)


class MarkerOnDiskTest(CoffreTestCase):
    """Upload known plaintext and prove it appears in no file under the data directory."""

    def _scan(self, markers, names):
        hits, name_hits, scanned = [], [], 0
        for root, dirs, files in os.walk(self.daemon.data_dir):
            for d in dirs:
                for n in names:
                    if n in d:
                        name_hits.append(os.path.join(root, d))
            for f in files:
                path = os.path.join(root, f)
                for n in names:
                    if n in f:
                        name_hits.append(path)
                try:
                    if not stat.S_ISREG(os.lstat(path).st_mode):
                        continue
                    with open(path, "rb") as fh:
                        content = fh.read()
                except FileNotFoundError:
                    continue  # a temporary file that went away
                scanned += 1
                for m in markers:
                    if m in content:
                        hits.append((path, m[:40]))
        return hits, name_hits, scanned

    def test_marker_never_on_disk(self):
        marker = f"COFFRE-PLAINTEXT-MARKER-{uuid.uuid4().hex}"
        key_name = f"secret-key-name-{uuid.uuid4().hex[:12]}"
        mb = marker.encode()
        self.s3.create_bucket(Bucket="marker")
        small = b"prefix " + mb + b" suffix"
        self.s3.put_object(Bucket="marker", Key=f"{key_name}/small.txt", Body=small)
        big = (mb * (MiB // len(mb) + 1))[:MiB]
        self.s3.put_object(Bucket="marker", Key=f"{key_name}/big.bin", Body=big)
        with self.subTest(upload="streaming trailer (botocore over https)"):
            self.s3_tr.put_object(Bucket="marker", Key=f"{key_name}/trailer.bin", Body=big)
        # a completed multipart upload and one left in progress (its parts sit on disk)
        part = (mb * (5 * MiB // len(mb) + 1))[:5 * MiB]
        for complete in (True, False):
            k = f"{key_name}/mp-{complete}"
            uid = self.s3.create_multipart_upload(Bucket="marker", Key=k)["UploadId"]
            e1 = self.s3.upload_part(Bucket="marker", Key=k, UploadId=uid, PartNumber=1,
                                     Body=part)["ETag"]
            e2 = self.s3.upload_part(Bucket="marker", Key=k, UploadId=uid, PartNumber=2,
                                     Body=small)["ETag"]
            if complete:
                self.s3.complete_multipart_upload(
                    Bucket="marker", Key=k, UploadId=uid,
                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                               {"PartNumber": 2, "ETag": e2}]})
        # a copy (re-encrypted) too
        self.s3.copy_object(Bucket="marker", Key=f"{key_name}/copy.bin",
                            CopySource={"Bucket": "marker", "Key": f"{key_name}/big.bin"})
        # the data reads back
        self.assertObjectEquals("marker", f"{key_name}/big.bin", big)
        self.assertObjectEquals("marker", f"{key_name}/copy.bin", big)
        self.assertObjectEquals("marker", f"{key_name}/mp-True", part + small)
        # a fragment as short as 24 bytes of the marker must not appear either
        markers = [mb, mb[:24], mb[-24:]]
        hits, name_hits, scanned = self._scan(markers, [key_name, "small.txt", "big.bin"])
        self.assertGreater(scanned, 3, "the data directory has files")
        self.assertEqual(hits, [], "plaintext found on disk")
        self.assertEqual(name_hits, [], "a file or directory is named after an object key")
        # the object data files are there, and hold ciphertext of (at least) the objects' size
        blob_bytes = sum(on_disk for _, on_disk in stored_blob_files(self.daemon.data_dir))
        self.assertGreater(blob_bytes, 3 * MiB)

    def test_data_dir_layout_and_modes(self):
        dd = self.daemon.data_dir
        for name in ("root.key", "dev-credentials.json", "catalog.db", "keystore.db"):
            self.assertTrue(os.path.isfile(os.path.join(dd, name)), name)
        self.assertTrue(os.path.isdir(os.path.join(dd, "blobs")))
        for name in ("root.key", "dev-credentials.json"):
            mode = stat.S_IMODE(os.stat(os.path.join(dd, name)).st_mode)
            self.assertEqual(mode & 0o077, 0, f"{name} is mode {oct(mode)}: must be 0600 or stricter")
        # the secret key is not in the catalog or keystore in clear
        secret = self.daemon.secret_key.encode()
        for name in ("catalog.db", "keystore.db"):
            for suffix in ("", "-wal"):
                p = os.path.join(dd, name + suffix)
                if os.path.exists(p):
                    with open(p, "rb") as f:
                        self.assertNotIn(secret, f.read(), p)
        with open(os.path.join(dd, "root.key"), "rb") as f:
            root = f.read()
        self.assertGreaterEqual(len(root), 32)

    def test_stdout_banner(self):
        out = "\n".join(self.daemon.stdout_lines)
        self.assertIn(f"listening on 127.0.0.1:{self.daemon.port}", out)
        self.assertIn(self.daemon.access_key, out)
        self.assertIn("aws", out)
        self.assertEqual(self.daemon.credentials["endpoint"], self.daemon.endpoint)
        self.assertEqual(self.daemon.credentials["tenant"], "dev")


class MarkerAfterRestartTest(CoffreTestCase):
    """Same scan after a clean stop (SQLite checkpoints its WAL), and the data survives a restart."""

    def test_marker_after_stop_and_restart(self):
        marker = f"MARKER-AFTER-STOP-{uuid.uuid4().hex}".encode()
        self.s3.create_bucket(Bucket="restart")
        body = marker * 1000
        self.s3.put_object(Bucket="restart", Key="m.bin", Body=body)
        d = self.daemon
        data_dir, tmp = d.data_dir, d.tmp
        exit_code = d.stop(check=False)
        for root, _, files in os.walk(data_dir):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    self.assertNotIn(marker[:24], fh.read(), os.path.join(root, f))
        # restart on the same data directory: same credentials, same data
        d2 = Daemon(tmp=tmp)
        try:
            d2.start()
            self.assertEqual(d2.credentials["access_key_id"], d.credentials["access_key_id"])
            self.assertEqual(d2.credentials["secret_access_key"], d.credentials["secret_access_key"])
            c = d2.client()
            self.assertEqual(c.get_object(Bucket="restart", Key="m.bin")["Body"].read(), body)
            self.assertIn("restart", [b["Name"] for b in c.list_buckets()["Buckets"]])
        finally:
            type(self).daemon = d2   # the class cleanup stops it (SIGTERM, exit 0) and cleans up
        self.assertEqual(exit_code, 0, "exit code of the first daemon after SIGTERM")


if __name__ == "__main__":
    unittest.main()
