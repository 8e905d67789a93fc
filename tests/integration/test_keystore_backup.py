"""`coffre keystore backup` and `coffre keystore restore` against the real daemon (docs/KEYS.md,
"Backup and restore"): an online backup while the daemon serves, the keystore destroyed, restored,
and every object read back byte-identical; a restore refused while the daemon runs and for bad
input (nothing changed); a tenant shredded after the backup stays shredded; a backup taken before
a root key rotation restored with the old key."""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
import time
import unittest

from botocore.exceptions import ClientError

import harness
from harness import Daemon, gen_bytes


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


class KeystoreBackupTest(unittest.TestCase):
    def cli(self, d: Daemon, *args, check=True):
        return d.run_cli(*args, "--data-dir", d.data_dir, check=check)

    def keystore_files(self, d: Daemon) -> dict:
        out = {}
        for name in sorted(os.listdir(d.data_dir)):
            if name.startswith("keystore.db"):
                with open(os.path.join(d.data_dir, name), "rb") as f:
                    out[name] = harness.sha256(f.read())
        return out

    def remove_keystore(self, d: Daemon):
        for suffix in ("", "-wal", "-shm"):
            path = os.path.join(d.data_dir, "keystore.db" + suffix)
            if os.path.exists(path):
                os.remove(path)

    def put_objects(self, d: Daemon, creds: dict, bucket: str, seed: int) -> dict:
        c = d.client_for(creds)
        c.create_bucket(Bucket=bucket)
        digests = {}
        # Sizes across the segment boundary (64 KiB) and an empty object.
        for i, size in enumerate((0, 1, 65536, 65537, 300000)):
            body = gen_bytes(size, seed=seed + i)
            c.put_object(Bucket=bucket, Key=f"doc-{i}", Body=body)
            digests[f"doc-{i}"] = harness.sha256(body)
        return digests

    def expect_objects(self, d: Daemon, creds: dict, bucket: str, digests: dict):
        c = d.client_for(creds)
        for key, digest in digests.items():
            body = c.get_object(Bucket=bucket, Key=key)["Body"].read()
            self.assertEqual(harness.sha256(body), digest, f"{bucket}/{key}")

    def test_backup_online_destroy_restore_reads_every_object_back(self):
        d = Daemon()
        d.start()
        try:
            alpha = d.create_tenant("alpha")
            beta = d.create_tenant("beta")
            victim = d.create_tenant("victim")
            objects = {
                "alpha-docs": (alpha, self.put_objects(d, alpha, "alpha-docs", 0)),
                "beta-docs": (beta, self.put_objects(d, beta, "beta-docs", 100)),
            }
            victim_digests = self.put_objects(d, victim, "victim-docs", 200)

            # Online: the daemon keeps serving writes while the backup runs.
            stop = threading.Event()
            errors = []

            def writer():
                c = d.client_for(alpha)
                n = 0
                while not stop.is_set():
                    try:
                        c.put_object(Bucket="alpha-docs", Key=f"busy-{n % 5}", Body=gen_bytes(1000, seed=n))
                    except Exception as e:  # noqa: BLE001 - reported below
                        errors.append(e)
                        return
                    n += 1

            t = threading.Thread(target=writer)
            t.start()
            backup = os.path.join(d.tmp, "keystore.backup")
            try:
                p = self.cli(d, "keystore", "backup", backup)
            finally:
                stop.set()
                t.join(30)
            self.assertEqual(errors, [])
            out = p.stdout.decode()
            self.assertIn("backed up to", out)
            self.assertIn("useless without that key", out)
            self.assertEqual(stat.S_IMODE(os.stat(backup).st_mode), 0o600)
            self.assertFalse(os.path.exists(backup + "-wal"))

            # An existing file is not replaced without --force.
            p = self.cli(d, "keystore", "backup", backup, check=False)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(b"--force", p.stderr)

            # Restore refused while the daemon runs, naming its pid; nothing changed.
            before = self.keystore_files(d)
            p = self.cli(d, "keystore", "restore", backup, check=False)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(b"stop coffre serve first", p.stderr)
            self.assertIn(f"pid {d.proc.pid}".encode(), p.stderr)
            self.assertEqual(self.keystore_files(d), before)

            # Shredded after the backup: must stay shredded after the restore.
            self.cli(d, "tenant", "shred", "victim", "--confirm", "victim")
            d.stop()

            # Disaster: the keystore is gone.
            self.remove_keystore(d)

            # Bad input is refused with exit status 1 and changes nothing.
            garbage = os.path.join(d.tmp, "garbage.db")
            with open(garbage, "wb") as f:
                f.write(os.urandom(16384))
            truncated = os.path.join(d.tmp, "truncated.db")
            with open(backup, "rb") as src, open(truncated, "wb") as dst:
                data = src.read()
                dst.write(data[: len(data) // 2])
            for bad in (garbage, truncated, os.path.join(d.tmp, "missing.db")):
                p = self.cli(d, "keystore", "restore", bad, check=False)
                self.assertEqual(p.returncode, 1, (bad, p.stderr))
                self.assertIn(b"nothing was changed", p.stderr)
                self.assertFalse(os.path.exists(os.path.join(d.data_dir, "keystore.db")))
                self.assertEqual([n for n in os.listdir(d.data_dir) if "restore-" in n], [])

            p = self.cli(d, "keystore", "restore", backup)
            out = p.stdout.decode()
            self.assertIn("keystore restored from", out)
            self.assertIn("re-applied 1 crypto-shred", out)
            self.assertIn("tenant victim", out)
            self.assertIn("there was no keystore to replace", out)
            self.assertIn("recorded in the audit log", out)
        finally:
            d.stop(check=False)

        d2 = Daemon(tmp=d.tmp)
        with d2:
            for bucket, (creds, digests) in objects.items():
                self.expect_objects(d2, creds, bucket, digests)
            # The shredded tenant stays shredded: refused, never data.
            v = d2.client_for(victim)
            for key in victim_digests:
                with self.assertRaises(ClientError) as ctx:
                    v.get_object(Bucket="victim-docs", Key=key)
                self.assertEqual(error_code(ctx.exception), "AccessDenied")
            listed = json.loads(self.cli(d2, "key", "list", "victim", "--json").stdout)
            self.assertTrue(listed["shredded"])
            self.assertEqual(listed["versions"], [])
            # The audit log (sealed under the same root key) still verifies, restore included.
            p = self.cli(d2, "audit", "check")
            self.assertIn(b"OK", p.stdout)

            # A second restore (daemon stopped) moves the current keystore aside, never deletes it.
            d2.stop()
            p = self.cli(d2, "keystore", "restore", backup)
            self.assertIn(b"moved aside", p.stdout)
            aside = [n for n in os.listdir(d2.data_dir) if n.startswith("keystore.db.replaced-")]
            self.assertTrue(aside, os.listdir(d2.data_dir))
            d3 = Daemon(tmp=d.tmp)
            d3.start()
            try:
                for bucket, (creds, digests) in objects.items():
                    self.expect_objects(d3, creds, bucket, digests)
            finally:
                d3.stop()

    def test_restore_of_a_backup_taken_before_a_root_key_rotation(self):
        with Daemon() as d:
            creds = d.create_tenant("alpha")
            digests = self.put_objects(d, creds, "alpha-docs", 7)
            backup = os.path.join(d.tmp, "keystore.backup")
            self.cli(d, "keystore", "backup", backup)
            d.stop()

            # Rotate the root key: the configured key file (root.key) now holds the new key.
            root = os.path.join(d.data_dir, "root.key")
            old = os.path.join(d.tmp, "old-root.key")
            new = os.path.join(d.tmp, "new-root.key")
            d.run_cli("keystore", "init", "--root-key-file", new)
            self.cli(d, "keystore", "rotate-root", "--new-key-file", new)
            shutil.copy2(root, old)
            os.chmod(old, 0o600)
            shutil.copy2(new, root)
            os.chmod(root, 0o600)
            self.remove_keystore(d)

            # The backup does not open with the current key: refused, saying what to do.
            p = self.cli(d, "keystore", "restore", backup, check=False)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(b"--backup-root-key-file", p.stderr)
            self.assertFalse(os.path.exists(os.path.join(d.data_dir, "keystore.db")))

            p = self.cli(d, "keystore", "restore", backup, "--backup-root-key-file", old)
            self.assertIn(b"re-sealed under the current root key", p.stdout)
            d2 = Daemon(tmp=d.tmp)
            d2.start()
            try:
                self.expect_objects(d2, creds, "alpha-docs", digests)
                self.assertIn(b"OK", self.cli(d2, "audit", "check").stdout)
            finally:
                d2.stop()

    def test_restore_refuses_a_backup_that_lacks_key_versions_in_use(self):
        with Daemon() as d:
            creds = d.create_tenant("alpha")
            early = self.put_objects(d, creds, "alpha-docs", 11)
            backup = os.path.join(d.tmp, "keystore.backup")
            self.cli(d, "keystore", "backup", backup)
            # Rotated after the backup, and an object written under the new version.
            self.cli(d, "key", "rotate", "alpha")
            c = d.client_for(creds)
            # The daemon sees the rotation within about a second (docs/KEYS.md).
            for _ in range(50):
                c.put_object(Bucket="alpha-docs", Key="late", Body=b"late")
                listed = json.loads(self.cli(d, "key", "list", "alpha", "--json").stdout)
                if any(v["version"] == 2 and v.get("objects", 0) > 0 for v in listed["versions"]):
                    break
                time.sleep(0.2)
            else:
                self.fail("no object was written under key version 2")
            # A tenant created after the backup, with an object.
            late = d.create_tenant("latecomer")
            self.put_objects(d, late, "late-docs", 31)
            d.stop()
            before = self.keystore_files(d)

            p = self.cli(d, "keystore", "restore", backup, check=False)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(b"lacks keys that the catalog uses", p.stderr)
            self.assertIn(b"alpha", p.stderr)
            self.assertIn(b"key version 2", p.stderr)
            self.assertIn(b"latecomer", p.stderr)
            self.assertIn(b"created after the backup", p.stderr)
            self.assertIn(b"--allow-missing-key-versions", p.stderr)
            self.assertEqual(self.keystore_files(d), before)

            p = self.cli(d, "keystore", "restore", backup, "--allow-missing-key-versions")
            self.assertIn(b"WARNING: not in the backup", p.stdout)
            d2 = Daemon(tmp=d.tmp)
            d2.start()
            try:
                self.expect_objects(d2, creds, "alpha-docs", early)
            finally:
                d2.stop()

    def test_restore_refuses_an_unreadable_audit_log_unless_told(self):
        with Daemon() as d:
            creds = d.create_tenant("alpha")
            digests = self.put_objects(d, creds, "alpha-docs", 21)
            backup = os.path.join(d.tmp, "keystore.backup")
            self.cli(d, "keystore", "backup", backup)
            d.stop()
            audit = os.path.join(d.data_dir, "audit.db")
            for suffix in ("-wal", "-shm"):
                if os.path.exists(audit + suffix):
                    os.remove(audit + suffix)
            with open(audit, "r+b") as f:
                f.write(b"this is not an SQLite database, not anymore")
            before = self.keystore_files(d)

            p = self.cli(d, "keystore", "restore", backup, check=False)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(b"--no-reapply-shreds", p.stderr)
            self.assertIn(b"nothing was changed", p.stderr)
            self.assertEqual(self.keystore_files(d), before)

            p = self.cli(d, "keystore", "restore", backup, "--no-reapply-shreds")
            self.assertIn(b"WARNING", p.stderr)
            self.assertIn(b"NOT recorded in the audit log", p.stdout)
            self.assertTrue(any(n.startswith("keystore.db.replaced-") for n in os.listdir(d.data_dir)))


if __name__ == "__main__":
    unittest.main()
