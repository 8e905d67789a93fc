"""Other S3 clients a bank's back office uses, unchanged: rclone and s3cmd (Debian packages)."""

import hashlib
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import MiB, CoffreTestCase, S3cmdTestCase, write_file, sha256_file


def tree_digest(root: str) -> dict:
    out = {}
    for base, _, files in os.walk(root):
        for name in files:
            path = os.path.join(base, name)
            out[os.path.relpath(path, root)] = sha256_file(path)
    return out


def make_tree(root: str):
    # Sizes around the 64 KiB segment and rclone's/s3cmd's multipart thresholds.
    layout = {
        "dossier-0001/contrat.pdf": 70000,
        "dossier-0001/bilan 2025.xlsx": 1,
        "dossier-0001/scans/piece-identite.png": 0,
        "dossier-0002/garantie.pdf": 65536,
        "dossier-0002/avenant-n°2.pdf": 12 * MiB + 3,
        "README": 100,
    }
    for i, (rel, size) in enumerate(sorted(layout.items())):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_file(path, size, seed=i)


class RcloneTest(CoffreTestCase):

    @classmethod
    def setUpClass(cls):
        if shutil.which("rclone") is None:
            raise unittest.SkipTest("rclone is not installed (make deps installs it)")
        super().setUpClass()

    def rclone(self, *args, check=True):
        env = dict(os.environ,
                   RCLONE_CONFIG_COFFRE_TYPE="s3",
                   RCLONE_CONFIG_COFFRE_PROVIDER="Other",
                   RCLONE_CONFIG_COFFRE_ENDPOINT=self.daemon.endpoint,
                   RCLONE_CONFIG_COFFRE_ACCESS_KEY_ID=self.daemon.access_key,
                   RCLONE_CONFIG_COFFRE_SECRET_ACCESS_KEY=self.daemon.secret_key,
                   RCLONE_CONFIG_COFFRE_REGION="us-east-1",
                   RCLONE_CONFIG_COFFRE_FORCE_PATH_STYLE="true",
                   RCLONE_CONFIG=os.devnull)
        # A CA bundle from the environment makes rclone's AWS SDK refuse its own HTTP transport;
        # our endpoint is plain HTTP on loopback, so no CA is involved.
        env.pop("AWS_CA_BUNDLE", None)
        p = subprocess.run(["rclone", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M",
                            "--retries", "1", "--low-level-retries", "1", *args],
                           env=env, capture_output=True, text=True, timeout=300)
        if check and p.returncode != 0:
            self.fail(f"rclone {' '.join(args)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
        return p

    def test_sync_check_and_copy_back(self):
        with tempfile.TemporaryDirectory() as src, tempfile.TemporaryDirectory() as dst:
            make_tree(src)
            self.rclone("mkdir", "coffre:rclone-bucket")
            self.rclone("sync", src, "coffre:rclone-bucket/backup")
            # rclone check compares sizes and MD5 (our ETags) of every file.
            self.rclone("check", src, "coffre:rclone-bucket/backup")
            self.rclone("copy", "coffre:rclone-bucket/backup", dst)
            self.assertEqual(tree_digest(src), tree_digest(dst))
            listing = self.rclone("lsf", "-R", "coffre:rclone-bucket/backup").stdout.split()
            self.assertIn("dossier-0001/scans/piece-identite.png", listing)
            # A sync after deleting a local file deletes it remotely.
            os.remove(os.path.join(src, "README"))
            self.rclone("sync", src, "coffre:rclone-bucket/backup")
            listing = self.rclone("lsf", "-R", "coffre:rclone-bucket/backup").stdout.split()
            self.assertNotIn("README", listing)
            self.rclone("purge", "coffre:rclone-bucket")
            self.assertNotIn("rclone-bucket", [b["Name"] for b in self.s3.list_buckets()["Buckets"]])


class S3cmdTest(S3cmdTestCase):

    s3cmd_config = "signature_v2 = False\nbucket_location = us-east-1\nmultipart_chunk_size_mb = 5\n"

    def test_put_get_sync_and_remove(self):
        with tempfile.TemporaryDirectory() as src, tempfile.TemporaryDirectory() as dst:
            make_tree(src)
            self.s3cmd("mb", "s3://s3cmd-bucket")
            big = os.path.join(src, "dossier-0002", "avenant-n°2.pdf")
            self.s3cmd("put", big, "s3://s3cmd-bucket/single/avenant.pdf")   # multipart (12 MiB > 5 MiB)
            out = os.path.join(dst, "avenant.pdf")
            self.s3cmd("get", "s3://s3cmd-bucket/single/avenant.pdf", out)
            self.assertEqual(sha256_file(big), sha256_file(out))
            self.s3cmd("sync", src + "/", "s3://s3cmd-bucket/tree/")
            back = os.path.join(dst, "tree")
            os.makedirs(back)
            self.s3cmd("sync", "s3://s3cmd-bucket/tree/", back + "/")
            self.assertEqual(tree_digest(src), tree_digest(back))
            ls = self.s3cmd("ls", "-r", "s3://s3cmd-bucket").stdout
            self.assertIn("s3://s3cmd-bucket/tree/dossier-0001/contrat.pdf", ls)
            info = self.s3cmd("info", "s3://s3cmd-bucket/tree/README").stdout
            with open(os.path.join(src, "README"), "rb") as f:
                self.assertIn(hashlib.md5(f.read()).hexdigest(), info)
            self.s3cmd("del", "--recursive", "--force", "s3://s3cmd-bucket")
            self.s3cmd("rb", "s3://s3cmd-bucket")
            self.assertNotIn("s3cmd-bucket", [b["Name"] for b in self.s3.list_buckets()["Buckets"]])


if __name__ == "__main__":
    unittest.main()
