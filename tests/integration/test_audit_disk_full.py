"""Audit log on a full disk (docs/AUDIT.md section 4, "Durability and fail-closed use"): only the
audit database (`<data_dir>/audit.db`, its `-wal` and `-shm`) lives on a small tmpfs, mounted in a
private mount namespace (`unshare -m`, as in test_disk_full.py; skipped where that is not
allowed), while the blobs, the catalog and the keystore stay on the real disk with room to spare.

A symlink `<data_dir>/audit.db -> tmpfs/audit.db` cannot be used: the daemon creates its databases
with O_NOFOLLOW and refuses to start on one. Inside the namespace the wrapper therefore bind-mounts
three files of the tmpfs onto `audit.db`, `audit.db-wal` and `audit.db-shm` in the data directory
(the paths SQLite opens); the test checks, through /proc/PID/root (the daemon's view), that those
paths are the tmpfs's files and that the other stores are not on it.

A filler file then takes every free byte of the tmpfs: a PUT fails with 503 ServiceUnavailable and
stores nothing, a GET of an existing object fails without a byte of plaintext, the daemon logs an
error line, /health/ready answers 503 naming the `audit` check and /metrics shows
`coffre_audit_healthy 0` and the failures. Once the filler is removed the log's own probe (every
second while unhealthy, whatever `audit_checkpoint_seconds`) makes it writable again without any
client request: /health/ready
turns 200 by itself, PUT and GET work again without a restart, every object is intact, and
`coffre audit check` and an exported bundle (`coffre audit verify`) verify end to end, holding no
record of the refused requests.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
import unittest

from botocore.exceptions import ClientError

from harness import Daemon, MiB, coffre_binary, gen_bytes, sha256, stored_blob_files
from test_disk_full import unshare_allowed
from test_operations import admin_get, admin_port, metric_value, read_stderr, write_config

SMALL_MIB = 2                 # the audit log's file system
CHECKPOINT_SECONDS = 3600     # audit_checkpoint_seconds: far above the unhealthy log's 1 s retry
AUDIT_FILES = ("audit.db", "audit.db-wal", "audit.db-shm")
BUCKET = "ledger"


# nsenter (util-linux, like unshare) runs the CLI in the daemon's namespace; wherever `unshare -m`
# is allowed the process has the privileges it needs.
@unittest.skipUnless(unshare_allowed() and shutil.which("nsenter"),
                     "no private mount namespace (unshare -m) allowed here, or no nsenter")
class AuditDiskFullTest(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="coffre-auditfull-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        # The free-space floor of /health/ready's data_dir check is about the real disk, which
        # this test does not fill: 0 keeps it out of the way on a small CI disk.
        self.config = write_config(self.tmp, min_free_megabytes=0, audit_checkpoint_seconds=CHECKPOINT_SECONDS)
        # First start on the real disk: keystore, catalog, audit log, dev credentials, a bucket.
        first = Daemon(tmp=self.tmp, extra_args=["--config", self.config])   # not `with`: keep the dir
        first.start()
        try:
            first.client().create_bucket(Bucket=BUCKET)
        finally:
            first.stop(check=True)
        data = os.path.join(self.tmp, "data")
        for name in AUDIT_FILES[1:]:
            # a clean stop checkpoints the WAL and removes it: audit.db alone holds the log
            self.assertFalse(os.path.exists(os.path.join(data, name)), name)
        self.small = os.path.join(self.tmp, "auditfs")   # mount point, empty outside the namespace
        os.mkdir(self.small, 0o700)
        self.wrapper = os.path.join(self.tmp, "coffre-audit-on-tmpfs")
        files = " ".join(AUDIT_FILES)
        with open(self.wrapper, "w") as f:
            f.write("#!/bin/sh\n"
                    "# $1=serve $2=--data-dir $3=DIR ...: audit.db, -wal and -shm on a small tmpfs\n"
                    "exec unshare -m --propagation private sh -c '"
                    "set -e; umask 077; "
                    f"mount -t tmpfs -o size={SMALL_MIB}m,mode=0700 tmpfs {self.small}; "
                    f"cp -a \"$3\"/audit.db {self.small}/audit.db; "
                    f"for f in {files}; do "
                    f"  [ -e {self.small}/$f ] || : > {self.small}/$f; "
                    "  [ -e \"$3\"/$f ] || : > \"$3\"/$f; "
                    f"  mount --bind {self.small}/$f \"$3\"/$f; "
                    "done; "
                    f"exec {coffre_binary()} \"$@\"' sh \"$@\"\n")
        os.chmod(self.wrapper, stat.S_IRWXU)

    # -- helpers --------------------------------------------------------------------------------

    def cli(self, *args, data_dir=True):
        """The coffre CLI (not the wrapper) in the daemon's mount namespace, so that it opens the
        audit log on the tmpfs. (Not through /proc/PID/root: SQLite resolves that magic link with
        readlink(), to "/", and would open the file hidden under the bind mount instead.)"""
        cmd = ["nsenter", f"--target={self.pid}", "--mount", "--", coffre_binary(), *args]
        if data_dir:
            cmd += ["--data-dir", self.data_dir, "--config", self.config]
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, f"{cmd}: {p.stdout!r} {p.stderr!r}")
        return p

    def ready(self):
        status, _, body = admin_get(self.admin, "/health/ready")
        return status, json.loads(body)

    def metrics(self):
        status, _, body = admin_get(self.admin, "/metrics")
        self.assertEqual(status, 200)
        return body.decode()

    def blob_files(self):
        return stored_blob_files(self.inside_data)

    def assertS3Error(self, code, status, fn, **kw):
        with self.assertRaises(ClientError, msg=f"expected {code}/{status}") as cm:
            fn(**kw)
        err = cm.exception.response
        self.assertEqual((err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]), (code, status),
                         err.get("Error"))

    # -- the test -------------------------------------------------------------------------------

    def test_full_audit_log_refuses_key_use_and_recovers_by_itself(self):
        d = Daemon(binary=self.wrapper, tmp=self.tmp, extra_args=["--config", self.config])
        d.start()
        try:
            self._run(d)
        except BaseException:
            print(d.diagnostics())
            raise
        finally:
            d.stop(check=True)

    def _run(self, d):
        # The daemon is `exec`ed by the wrapper: the pid is coffre's, inside the namespace.
        self.pid, self.data_dir = d.proc.pid, d.data_dir
        view = f"/proc/{d.proc.pid}/root"
        self.inside_data = view + d.data_dir
        inside_small = view + self.small
        self.admin = admin_port(d)

        # Only the audit log is on the tmpfs: the paths SQLite opens are the tmpfs's files.
        small_dev = os.stat(inside_small).st_dev
        st = os.statvfs(inside_small)
        self.assertLessEqual(st.f_blocks * st.f_frsize, SMALL_MIB * MiB, "not on the small tmpfs")
        for name in AUDIT_FILES:
            a, b = os.stat(os.path.join(self.inside_data, name)), os.stat(os.path.join(inside_small, name))
            self.assertEqual((a.st_dev, a.st_ino), (b.st_dev, b.st_ino), f"{name} is not the tmpfs's file")
        self.assertEqual(sorted(os.listdir(inside_small)), sorted(AUDIT_FILES))
        for path in ("", "blobs", "tmp", "catalog.db", "keystore.db"):
            self.assertNotEqual(os.stat(os.path.join(self.inside_data, path)).st_dev, small_dev, path)
        self.assertGreater(os.statvfs(self.inside_data).f_bavail * os.statvfs(self.inside_data).f_frsize,
                           64 * SMALL_MIB * MiB, "the real disk has no room")
        self.assertEqual(self.ready()[0], 200, self.ready())

        # No retry at all (the harness's clients make exactly one attempt), so a refused key use is
        # never hidden by a retry; no checksum header either, to count only what is asked.
        s3 = d.client(checksum="when_required")
        stored = {}
        for i, size in enumerate((0, 1, 70_000, MiB)):
            data = gen_bytes(size, seed=i)
            s3.put_object(Bucket=BUCKET, Key=f"before-{i}", Body=data)
            stored[f"before-{i}"] = data
        for key, data in stored.items():
            self.assertEqual(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read(), data, key)
        # The records went through the tmpfs's WAL.
        self.assertGreater(os.path.getsize(os.path.join(inside_small, "audit.db-wal")), 0)
        m = self.metrics()
        self.assertEqual(metric_value(m, "coffre_audit_healthy"), 1.0)
        self.assertEqual(metric_value(m, "coffre_audit_write_failures_total"), 0.0)
        written_before = metric_value(m, "coffre_audit_records_written_total")
        blobs_before = self.blob_files()

        # Fill the tmpfs to the last byte.
        filler = os.path.join(inside_small, "filler")
        with open(filler, "wb", buffering=0) as f:
            free = os.statvfs(inside_small).f_bavail * os.statvfs(inside_small).f_frsize
            try:
                f.write(b"\0" * free)
                while True:
                    f.write(b"\0" * 4096)
            except OSError as e:
                self.assertEqual(e.errno, errno.ENOSPC, e)
        self.assertEqual(os.statvfs(inside_small).f_bavail, 0)
        self.assertEqual(sorted(os.listdir(inside_small)), sorted(AUDIT_FILES + ("filler",)))

        # PUT: 503 ServiceUnavailable (docs/AUDIT.md section 4), nothing stored.
        refused = 0
        for i, size in enumerate((10, 300_000)):
            self.assertS3Error("ServiceUnavailable", 503, s3.put_object, Bucket=BUCKET, Key=f"during-{i}",
                               Body=gen_bytes(size, seed=100 + i))
            refused += 1
            self.assertS3Error("NoSuchKey", 404, s3.get_object, Bucket=BUCKET, Key=f"during-{i}")
        self.assertEqual(self.blob_files(), blobs_before, "a refused PUT left a blob")
        self.assertEqual(os.listdir(os.path.join(self.inside_data, "tmp")), [], "temporaries left")

        # GET of an existing object: 503, and not one byte of its plaintext.
        data = stored["before-3"]
        for headers in ({}, {"Range": "bytes=0-99"}):
            r = d.request("GET", f"/{BUCKET}/before-3", headers=headers)
            refused += 1
            self.assertEqual((r.status, r.error_code), (503, "ServiceUnavailable"), r)
            self.assertNotIn(data[:16], r.body)
            self.assertLess(len(r.body), 1024, r)
        self.assertS3Error("ServiceUnavailable", 503, s3.get_object, Bucket=BUCKET, Key="before-2")
        refused += 1
        # A HEAD uses no key: the metadata is still there.
        for key, data in stored.items():
            self.assertEqual(s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"], len(data), key)

        # The operator is told: an error line, readiness, metrics.
        self.assertIn("audit log cannot be written", read_stderr(d))
        status, doc = self.ready()
        self.assertEqual(status, 503, doc)
        self.assertEqual(doc["status"], "not ready", doc)
        self.assertIn("audit log cannot be written", doc["checks"]["audit"], doc)
        self.assertIn("full", doc["checks"]["audit"], doc)
        for other in ("keystore", "catalog", "data_dir"):
            self.assertEqual(doc["checks"][other], "ok", doc)   # only the audit log's disk is full
        m = self.metrics()
        self.assertEqual(metric_value(m, "coffre_audit_healthy"), 0.0)
        self.assertEqual(metric_value(m, "coffre_audit_write_failures_total"), refused)
        self.assertEqual(metric_value(m, "coffre_audit_records_written_total"), written_before)
        self.assertTrue(d.alive)

        # Space returns: the log probes itself and turns healthy with no client request at all.
        os.unlink(filler)
        deadline = time.monotonic() + 20  # the unhealthy log retries every second
        while self.ready()[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        status, doc = self.ready()
        self.assertEqual(status, 200, doc)
        self.assertEqual(metric_value(self.metrics(), "coffre_audit_healthy"), 1.0)
        self.assertIn("audit log is writable again", read_stderr(d))

        # Key use works again, no restart; everything stored before is intact.
        after = gen_bytes(2 * MiB, seed=999)
        s3.put_object(Bucket=BUCKET, Key="after", Body=after)
        stored["after"] = after
        for key, data in stored.items():
            got = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            self.assertEqual(sha256(got), sha256(data), key)
        for i in range(2):
            self.assertS3Error("NoSuchKey", 404, s3.get_object, Bucket=BUCKET, Key=f"during-{i}")

        # The log verifies end to end and holds exactly the key uses that happened.
        p = self.cli("audit", "check")
        self.assertRegex(p.stdout.decode(), r"^OK: \d+ record\(s\) verified", p.stdout + p.stderr)
        # the dev tenant's creation (2 records) and the bucket's 14 below
        self.assertEqual(int(p.stdout.split()[1]), 16, p.stdout)
        out = os.path.join(self.tmp, "dev.jsonl")
        self.cli("audit", "export", "--tenant", "dev", "--format", "jsonl", "--out", out)
        key = self.cli("audit", "public-key").stdout.decode().strip()
        p = self.cli("audit", "verify", out, "--public-key", key, data_dir=False)
        self.assertIn(b"OK:", p.stdout, p.stdout + p.stderr)
        with open(out) as f:
            recs = [r for r in map(json.loads, f) if r["type"] == "record" and r["bucket"] == BUCKET]
        befores = [f"before-{i}" for i in range(4)]
        self.assertEqual([(r["operation"], r["object_key"]) for r in recs],
                         [("data_key.wrap", k) for k in befores] + [("data_key.unwrap", k) for k in befores] +
                         [("data_key.wrap", "after")] +
                         [("data_key.unwrap", k) for k in befores + ["after"]])
        self.assertTrue(all(r["outcome"] == "success" for r in recs), recs)


if __name__ == "__main__":
    unittest.main()
