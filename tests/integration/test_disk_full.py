"""Disk full (docs/RELIABILITY.md, "Durability"): the daemon runs with its data directory on a
small tmpfs mounted in a private mount namespace (`unshare -m`, which needs root or user
namespaces; the test is skipped where neither is allowed). A ballast file fills the space:
PUTs then fail with a clean S3 error (503 ServiceUnavailable), leave no temporary file behind,
everything stored before stays readable; once the ballast is removed, PUTs succeed again without
a restart.

The test reaches the namespace's files through /proc/PID/root (the daemon's view).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import unittest

from botocore.exceptions import ClientError

from harness import Daemon, MiB, coffre_binary, gen_bytes, sha256

TMPFS_MIB = 24


def unshare_allowed() -> bool:
    if shutil.which("unshare") is None:
        return False
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        "d=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs $d && umount $d; "
                        "r=$?; rmdir $d; exit $r"], capture_output=True)
    return p.returncode == 0


@unittest.skipUnless(unshare_allowed(), "no private mount namespace (unshare -m) allowed here")
class DiskFullTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="coffre-diskfull-")
        # First start on the real disk: keystore, catalog and dev credentials; then their copy
        # seeds the tmpfs (the harness reads the credentials from the real directory).
        first = Daemon(tmp=self.tmp)   # not `with`: its exit would remove the directory
        first.start()
        try:
            first.client().create_bucket(Bucket="full")
        finally:
            first.stop(check=True)
        seed = os.path.join(self.tmp, "seed")
        shutil.copytree(os.path.join(self.tmp, "data"), seed)
        self.wrapper = os.path.join(self.tmp, "coffre-on-tmpfs")
        with open(self.wrapper, "w") as f:
            f.write("#!/bin/sh\n"
                    "# $1=serve $2=--data-dir $3=DIR ...\n"
                    f"exec unshare -m --propagation private sh -c '"
                    f"mount -t tmpfs -o size={TMPFS_MIB}m,mode=0700 tmpfs \"$3\" && "
                    f"cp -a {seed}/. \"$3\"/ && exec {coffre_binary()} \"$@\"' sh \"$@\"\n")
        os.chmod(self.wrapper, stat.S_IRWXU)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_put_fails_cleanly_when_full_and_resumes_when_space_returns(self):
        d = Daemon(binary=self.wrapper, tmp=self.tmp)
        d.start()
        try:
            inside = f"/proc/{d.proc.pid}/root{d.data_dir}"
            # the daemon is `exec`ed by the wrapper: the pid is coffre's, in the namespace
            st = os.statvfs(inside)
            self.assertLessEqual(st.f_blocks * st.f_frsize, TMPFS_MIB * MiB, "not on the tmpfs")
            s3 = d.client(checksum="when_required")
            stored = {}
            for i in range(4):
                data = gen_bytes(MiB, seed=i)
                s3.put_object(Bucket="full", Key=f"before-{i}", Body=data)
                stored[f"before-{i}"] = sha256(data)
            # ballast: all but ~3 MiB
            free = os.statvfs(inside).f_bavail * os.statvfs(inside).f_frsize
            ballast = os.path.join(inside, "ballast")
            with open(ballast, "wb") as f:
                f.write(b"\0" * max(0, free - 3 * MiB))
            errors = []
            for i in range(8):
                data = gen_bytes(MiB, seed=100 + i)
                try:
                    s3.put_object(Bucket="full", Key=f"during-{i}", Body=data)
                    stored[f"during-{i}"] = sha256(data)
                except ClientError as e:
                    errors.append((e.response["Error"]["Code"],
                                   e.response["ResponseMetadata"]["HTTPStatusCode"], f"during-{i}"))
            self.assertTrue(errors, "the tmpfs never filled up")
            for code, status, key in errors:
                self.assertEqual((code, status), ("ServiceUnavailable", 503), errors)
                with self.assertRaises(ClientError):
                    s3.head_object(Bucket="full", Key=key)
            self.assertEqual(os.listdir(os.path.join(inside, "tmp")), [], "temporaries left")
            for key, digest in stored.items():
                self.assertEqual(sha256(s3.get_object(Bucket="full", Key=key)["Body"].read()), digest, key)
            self.assertTrue(d.alive)
            # space returns: service resumes by itself
            os.unlink(ballast)
            data = gen_bytes(2 * MiB, seed=999)
            s3.put_object(Bucket="full", Key="after", Body=data)
            self.assertEqual(sha256(s3.get_object(Bucket="full", Key="after")["Body"].read()),
                             sha256(data))
        except BaseException:
            print(d.diagnostics())
            raise
        finally:
            d.stop(check=True)


if __name__ == "__main__":
    unittest.main()
