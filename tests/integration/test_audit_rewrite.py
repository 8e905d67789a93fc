"""History rewrites of the key-usage audit log by someone who can write audit.db but does not hold
the root key (docs/AUDIT.md, "What the log detects at open"). Each test stops the daemon, edits the
database as such an attacker can (SHA-256 is unkeyed, so links can be recomputed; signatures
cannot), starts the daemon again and checks that the rewrite is refused and reported: the daemon is
not ready, a key use answers 503, `coffre audit check` fails naming the problem, nothing new is
signed, and an export cannot be made to verify with the genuine public key."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
import unittest

from harness import Daemon
from test_operations import admin_get, admin_port, write_config

FIELDS = ("seq", "time_ms", "tenant", "key_id", "key_version", "operation", "action", "bucket", "object_key",
          "object_id", "request_id", "access_key_id", "client_address", "outcome")


def as_bytes(v) -> bytes:
    if isinstance(v, bytes):
        return v
    return str(v).encode()


def canonical(r: dict) -> bytes:
    out = b"coffre-audit-record\n"
    for name in ("v",) + FIELDS + ("prev",):
        value = b"1" if name == "v" else (r["prev"].hex().encode() if name == "prev" else as_bytes(r[name]))
        out += name.encode() + b"=" + str(len(value)).encode() + b":" + value + b"\n"
    return out


def record_hash(r: dict) -> bytes:
    return hashlib.sha256(canonical(r)).digest()


def global_link(prev: bytes, n: int, h: bytes) -> bytes:
    return hashlib.sha256(b"coffre-audit-global/v1" + prev + n.to_bytes(8, "big") + h).digest()


def rewrite(db_path: str, keep) -> None:
    """Keeps the live records for which keep(record) is true, renumbers and relinks them from the
    archive boundary, drops every checkpoint that no longer matches, resets the heads."""
    db = sqlite3.connect(db_path, isolation_level=None)
    db.row_factory = sqlite3.Row
    try:
        db.execute("BEGIN IMMEDIATE")
        rows = [dict(r) for r in db.execute("SELECT * FROM records ORDER BY gseq")]
        gseq, ghash = 0, bytes(32)
        boundary = db.execute("SELECT gseq, hash FROM archive_boundary").fetchone()
        if boundary:
            gseq, ghash = boundary["gseq"], bytes(boundary["hash"])
        tenants = {r["tenant"]: (r["seq"], bytes(r["hash"])) for r in db.execute("SELECT * FROM archive_heads")}
        db.execute("DELETE FROM records")
        tenant_at, global_at = {}, {}
        for r in rows:
            if not keep(r):
                continue
            seq, prev = tenants.get(r["tenant"], (0, bytes(32)))
            r["seq"], r["prev"] = seq + 1, prev
            h = record_hash(r)
            gseq += 1
            ghash = global_link(ghash, gseq, h)
            r["gseq"], r["hash"], r["global_hash"] = gseq, h, ghash
            tenants[r["tenant"]] = (r["seq"], h)
            tenant_at[(r["tenant"], r["seq"])] = h
            global_at[gseq] = ghash
            cols = list(r)
            db.execute(f"INSERT INTO records ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                       [r[c] for c in cols])
        for c in list(db.execute("SELECT id, scope, tenant, seq, head FROM checkpoints")):
            want = global_at.get(c["seq"]) if c["scope"] == "global" else tenant_at.get((c["tenant"], c["seq"]))
            if want != bytes(c["head"]):
                db.execute("DELETE FROM checkpoints WHERE id = ?", (c["id"],))
        db.execute("DELETE FROM heads")
        # checkpointed_seq 0: the daemon is to sign every head again
        db.execute("INSERT INTO heads (chain, seq, hash, checkpointed_seq) VALUES ('g', ?, ?, 0)", (gseq, ghash))
        for tenant, (seq, h) in tenants.items():
            db.execute("INSERT INTO heads (chain, seq, hash, checkpointed_seq) VALUES (?, ?, ?, 0)",
                       ("t:" + tenant, seq, h))
        db.execute("COMMIT")
    finally:
        db.close()


def drop_tables_rows(db_path: str, *tables: str) -> None:
    """Deletes every row of each table that exists (an attacker removes whatever anchors the log)."""
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for t in tables:
            if t in names:
                db.execute(f"DELETE FROM {t}")
    finally:
        db.close()


class AuditRewriteTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="coffre-rewrite-it-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.config = write_config(self.tmp, admin_listen="127.0.0.1:0")
        self.daemon = None

    def start(self) -> Daemon:
        d = Daemon(extra_args=["--config", self.config], tmp=self.tmp)
        d.start()
        self.addCleanup(lambda: d.alive and d.stop(check=False))
        self.daemon = d
        return d

    def cli(self, *args, check=True):
        return self.daemon.run_cli(*args, check=check)

    @property
    def db_path(self) -> str:
        return os.path.join(self.tmp, "data", "audit.db")

    def history(self) -> str:
        """A tenant with objects, a key rotation in the middle, more objects; returns the genuine
        public key, and leaves the daemon stopped."""
        d = self.start()
        d.create_tenant("other")
        s3 = d.client()
        s3.create_bucket(Bucket="dossiers")
        for i in range(3):
            s3.put_object(Bucket="dossiers", Key=f"before-{i}", Body=b"d")
        self.cli("key", "rotate", "dev", "--data-dir", d.data_dir)
        for i in range(3):
            s3.put_object(Bucket="dossiers", Key=f"after-{i}", Body=b"d")
        key = self.cli("audit", "public-key", "--data-dir", d.data_dir).stdout.decode().strip()
        self.assertEqual(self.check().returncode, 0)
        d.stop()
        return key

    def check(self):
        return self.cli("audit", "check", "--data-dir", self.daemon.data_dir, check=False)

    def checkpoints(self) -> int:
        db = sqlite3.connect(self.db_path)
        try:
            return db.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
        finally:
            db.close()

    def assert_refused(self, key: str, what: str, expect_in_check: bytes | None = None):
        """The daemon started on the edited log refuses key use and signs nothing; audit check
        fails; no export verifies with the genuine key."""
        signed_before = self.checkpoints()
        d = self.start()
        port = admin_port(d)
        status, _, body = admin_get(port, "/health/ready")
        self.assertEqual(status, 503, f"{what}: the daemon is ready on a rewritten log: {body!r}")
        self.assertIn(b"audit", body)
        resp = d.request("PUT", "/dossiers/new-object", body=b"x")
        self.assertEqual(resp.status, 503, f"{what}: a key was used on a rewritten log: {resp}")
        p = self.check()
        self.assertEqual(p.returncode, 3, f"{what}: audit check: {p.stdout!r} {p.stderr!r}")
        self.assertIn(b"FAILED", p.stdout)
        if expect_in_check:
            self.assertIn(expect_in_check, p.stdout)
        out = os.path.join(self.tmp, "export.jsonl")
        p = self.cli("audit", "export", "--data-dir", d.data_dir, "--tenant", "dev", "--out", out, check=False)
        if p.returncode == 0:
            v = self.cli("audit", "verify", out, "--public-key", key, check=False)
            self.assertNotEqual(v.returncode, 0, f"{what}: a fresh export verifies with the genuine key")
        d.stop()
        self.assertEqual(self.checkpoints(), signed_before, f"{what}: the daemon signed the rewritten log")
        self.assertIn("audit log", d.stderr_tail(200))

    def test_deleted_rotation_relinked_and_later_checkpoints_dropped(self):
        key = self.history()
        rewrite(self.db_path, lambda r: r["operation"] != "tenant_key.rotate")
        self.assert_refused(key, "replay")

    def test_replay_that_also_removes_the_signed_state(self):
        key = self.history()
        rewrite(self.db_path, lambda r: r["operation"] != "tenant_key.rotate")
        drop_tables_rows(self.db_path, "signed_state", "signed_heads")
        self.assert_refused(key, "replay without the signed state")

    def test_deleted_signing_key_is_not_replaced(self):
        key = self.history()
        drop_tables_rows(self.db_path, "signing_key_seals", "signing_keys", "checkpoints")
        d = Daemon(extra_args=["--config", self.config], tmp=self.tmp)
        try:
            d.start()
        except Exception:  # refusing to start is a correct answer too
            self.assertIn("signing key", d.stderr_tail(200))
            return
        self.addCleanup(lambda: d.alive and d.stop(check=False))
        self.daemon = d
        p = self.cli("audit", "public-key", "--data-dir", d.data_dir, check=False)
        self.assertEqual(p.stdout.decode().strip() if p.returncode == 0 else key, key,
                         "a new signing key was created while records exist")
        self.assertEqual(d.request("PUT", "/dossiers/new-object", body=b"x").status, 503)

    def test_moved_archive_boundary_is_detected(self):
        key = self.history()
        d = self.start()
        out = os.path.join(self.tmp, "archive.jsonl")
        self.cli("audit", "archive", "--data-dir", d.data_dir, "--before", "2999-01-01", "--out", out)
        s3 = d.client()
        for i in range(3):
            s3.put_object(Bucket="dossiers", Key=f"late-{i}", Body=b"d")
        self.assertEqual(self.check().returncode, 0)
        d.stop()
        # Make the first live record look archived.
        db = sqlite3.connect(self.db_path, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            g, tenant, seq, h, gh = db.execute(
                "SELECT gseq, tenant, seq, hash, global_hash FROM records ORDER BY gseq LIMIT 1").fetchone()
            db.execute("UPDATE archive_boundary SET gseq = ?, hash = ?", (g, gh))
            db.execute("INSERT OR REPLACE INTO archive_heads (tenant, seq, hash) VALUES (?, ?, ?)", (tenant, seq, h))
            db.execute("DELETE FROM records WHERE gseq = ?", (g,))
            db.execute("DELETE FROM checkpoints WHERE scope = 'global' AND seq <= ?", (g,))
            db.execute("COMMIT")
        finally:
            db.close()
        self.assert_refused(key, "archive boundary moved")


    def test_bundle_cut_at_the_start_or_emptied_fails(self):
        """An export proves where it starts: one starting after seq 1 carries the checkpoint that
        signs its first record's predecessor; cut that start, or every record, and it fails."""
        d = self.start()
        s3 = d.client()
        s3.create_bucket(Bucket="dossiers")
        s3.put_object(Bucket="dossiers", Key="early", Body=b"d")
        # A checkpoint between the early records and the later ones (each export signs first).
        self.cli("audit", "export", "--data-dir", d.data_dir, "--tenant", "dev",
                 "--out", os.path.join(self.tmp, "first.jsonl"))
        time.sleep(0.01)
        start = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        time.sleep(0.01)
        for i in range(3):
            s3.put_object(Bucket="dossiers", Key=f"late-{i}", Body=b"d")
        key = self.cli("audit", "public-key", "--data-dir", d.data_dir).stdout.decode().strip()
        out = os.path.join(self.tmp, "ranged.jsonl")
        self.cli("audit", "export", "--data-dir", d.data_dir, "--tenant", "dev", "--from", start, "--out", out)
        with open(out) as f:
            lines = f.read().splitlines()
        parsed = [json.loads(line) for line in lines]
        records = [r for r in parsed if r["type"] == "record"]
        self.assertEqual([r["object_key"] for r in records], ["late-0", "late-1", "late-2"])
        self.assertGreater(records[0]["seq"], 1)
        self.assertEqual(parsed[1]["type"], "checkpoint")       # the anchor
        self.assertEqual(parsed[1]["seq"], records[0]["seq"] - 1)

        def verify(kept):
            path = os.path.join(self.tmp, f"v-{len(os.listdir(self.tmp))}.jsonl")
            with open(path, "w") as f:
                f.write("\n".join(kept) + "\n")
            return self.cli("audit", "verify", path, "--public-key", key, check=False)

        p = verify(lines)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # Cut the anchor and the first record.
        p = verify([lines[0]] + lines[3:])
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertIn(b"missing", p.stdout)
        self.assertIn(b"cut from the start", p.stdout)
        # Remove every record, keeping the checkpoints; then the checkpoints too.
        p = verify([line for line, j in zip(lines, parsed) if j["type"] != "record"])
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        p = verify(lines[:1])
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertNotIn(b"OK", p.stdout)
        d.stop()


if __name__ == "__main__":
    unittest.main()
