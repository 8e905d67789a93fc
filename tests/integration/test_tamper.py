"""Bit rot and tampering on disk (docs/RELIABILITY.md, "Integrity"): flip bits, truncate, swap
segments and whole blobs between objects, in pack records (TamperTest: small objects) and in
files of their own (FileTamperTest, with packing off). A GET must never return a wrong byte: it
answers an error status when the damage is in the first piece it decrypts (before any header is
sent), else it cuts the connection before the damaged segment; and the daemon logs the failure.
`coffre scrub` finds every damaged object and reports it; after the damage is undone it is clean.
Each damaged read also counts in coffre_integrity_failures_total{source="read"} and leaves exactly
one integrity_failure audit record with the request id. Bytes appended after the last segment are
found by scrub. The daemon's background scrub (scrub_interval_hours) reports damage with a log
line, coffre_integrity_failures_total{source="scrub"} and one audit record per damaged object,
reports nothing on a clean store, and stops promptly on SIGTERM.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import sqlite3
import tempfile
import time
import unittest

from harness import CoffreTestCase, Daemon, StoredBlob, gen_bytes, sha256
from test_operations import admin_get, admin_port, metric_value, write_config

SEG = 65536
TAG = 16
HEADER = 256
SIZE = 3 * SEG + 1234            # four segments, the last one short


def seg_offset(i: int) -> int:
    return HEADER + i * (SEG + TAG)


READ_FAILURES = 'coffre_integrity_failures_total{source="read"}'
SCRUB_FAILURES = 'coffre_integrity_failures_total{source="scrub"}'


def blob_of(daemon: Daemon, key: str, bucket: str | None = None) -> StoredBlob:
    db = sqlite3.connect(f"file:{daemon.data_dir}/catalog.db?mode=ro", uri=True)
    try:
        if bucket is None:
            (blob,) = db.execute("SELECT blob_id FROM object_parts WHERE key = ?", (key,)).fetchone()
        else:
            (blob,) = db.execute("SELECT p.blob_id FROM object_parts p JOIN buckets b ON b.id = p.bucket_id "
                                 "WHERE p.key = ? AND b.name = ?", (key, bucket)).fetchone()
    finally:
        db.close()
    return StoredBlob(daemon.data_dir, blob)


def object_id_of(daemon: Daemon, key: str) -> str:
    db = sqlite3.connect(f"file:{daemon.data_dir}/catalog.db?mode=ro", uri=True)
    try:
        (oid,) = db.execute("SELECT object_id FROM objects WHERE key = ?", (key,)).fetchone()
    finally:
        db.close()
    return oid


def metrics(daemon: Daemon) -> str:
    status, _, body = admin_get(admin_port(daemon), "/metrics")
    assert status == 200, status
    return body.decode()


def audit_records(daemon: Daemon, tmp: str, tenant: str = "dev") -> list:
    out = os.path.join(tmp, f"export-{time.monotonic_ns()}.jsonl")
    daemon.run_cli("audit", "export", "--data-dir", daemon.data_dir, "--tenant", tenant,
                   "--format", "jsonl", "--out", out)
    with open(out) as f:
        return [r for r in (json.loads(line) for line in f) if r["type"] == "record"]


def integrity_records(records: list) -> list:
    return [r for r in records if r["outcome"] == "integrity_failure"]


class TamperTest(CoffreTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = "tamper"
        cls.s3.create_bucket(Bucket=cls.bucket)
        cls.data = {k: gen_bytes(SIZE, seed=i) for i, k in enumerate(("a", "b"))}
        for k, v in cls.data.items():
            cls.s3.put_object(Bucket=cls.bucket, Key=k, Body=v)

    def blob(self, key: str) -> StoredBlob:
        return blob_of(self.daemon, key, self.bucket)

    def test_blobs_rest_where_the_config_puts_them(self):
        packed = (self.daemon_config or {}).get("packed_blob_max_bytes", 256 * 1024) > 0
        for key in ("a", "b"):
            self.assertEqual(self.blob(key).in_pack, packed, key)
        # and the daemon said so when it started
        said = ("blobs up to 262144 bytes go to pack records" if packed
                else "every blob gets a file (packed_blob_max_bytes is 0)")
        self.assertIn(said, self.daemon.stderr_tail(400))

    def get(self, key: str, rng: str | None = None):
        """(status, body received, complete?) of a GET; a cut connection is not an exception."""
        return self.get_with_id(key, rng)[:3]

    def get_with_id(self, key: str, rng: str | None = None):
        """As get(), plus the x-amz-request-id the daemon answered."""
        conn = self.daemon.connection(timeout=30)
        try:
            req = self.daemon.sign("GET", f"/{self.bucket}/{key}",
                                   headers={"Range": rng} if rng else None)
            conn.putrequest("GET", req.target, skip_host=True, skip_accept_encoding=True)
            for k, v in req.headers.items():
                conn.putheader(k, v)
            conn.endheaders()
            resp = conn.getresponse()
            rid = resp.getheader("x-amz-request-id")
            try:
                body = resp.read()
                complete = True
            except http.client.IncompleteRead as e:
                body, complete = e.partial, False
            return resp.status, body, complete, rid
        finally:
            conn.close()

    def assert_never_wrong(self, key: str, rng: tuple[int, int] | None = None,
                           error_expected: bool = False):
        want = self.data[key]
        header = f"bytes={rng[0]}-{rng[1]}" if rng else None
        if rng:
            want = want[rng[0]:rng[1] + 1]
        status, body, complete = self.get(key, header)
        if status in (200, 206):
            # the prefix received is always right; an incomplete body means the connection was cut
            self.assertEqual(sha256(body), sha256(want[:len(body)]), "wrong bytes returned")
            if complete:
                self.assertFalse(error_expected, "damaged data read back as complete")
                self.assertEqual(len(body), len(want))
        else:
            self.assertEqual(status, 500, body[:300])
            self.assertIn(b"InternalError", body)
            self.assertNotIn(want[:64], body)
        return status, complete

    def damage(self, key: str, edit):
        """Applies edit(bytearray) to the stored blob of `key`; returns a function that undoes it."""
        blob = self.blob(key)
        original = blob.read()
        data = bytearray(original)
        edit(data)
        blob.write(bytes(data))
        return lambda: blob.write(original)

    def scrub(self):
        p = self.daemon.run_cli("scrub", "--data-dir", self.daemon.data_dir, "--json",
                                check=False, timeout=120)
        return p.returncode, json.loads(p.stdout)

    def log_grew(self, before: int) -> str:
        tail = self.daemon.stderr_tail(400)
        return tail[before:] if len(tail) > before else ""

    def test_bit_flips_anywhere_never_return_wrong_bytes(self):
        # header fields, the key commitment, the header MAC, each segment's data and tag
        offsets = [0, 9, 12, 20, 30, 140, 150, 200, 240, 255,
                   seg_offset(0), seg_offset(0) + SEG + 3, seg_offset(1) + 100, seg_offset(3) + 10,
                   SIZE + HEADER + 4 * TAG - 1]
        for off in offsets:
            with self.subTest(offset=off):
                restore = self.damage("a", lambda d, o=off: d.__setitem__(o, d[o] ^ 0x10))
                try:
                    first_piece = off < seg_offset(1)
                    status, complete = self.assert_never_wrong("a", error_expected=True)
                    if first_piece:
                        self.assertEqual(status, 500, "damage in the header or first segment must "
                                                      "be an error status, not a cut connection")
                    self.assert_never_wrong("a", (SEG * 3, SIZE - 1),
                                            error_expected=off < HEADER or off >= seg_offset(3))
                finally:
                    restore()
        self.assertEqual(self.get("a")[1], self.data["a"])

    def test_wrapped_key_field_is_informational(self):
        # header bytes 42..101 (the wrapped data key) are not MAC'd: the catalog's copy is used
        restore = self.damage("a", lambda d: d.__setitem__(50, d[50] ^ 0xFF))
        try:
            status, body, complete = self.get("a")
            self.assertEqual((status, complete), (200, True))
            self.assertEqual(sha256(body), sha256(self.data["a"]))
        finally:
            restore()

    def test_truncation_never_returns_wrong_bytes(self):
        full = HEADER + SIZE + 4 * TAG
        for length in (0, 10, HEADER - 1, HEADER, HEADER + 100, seg_offset(1), seg_offset(2) + 7,
                       full - 1):
            with self.subTest(length=length):
                restore = self.damage("a", lambda d, n=length: d.__delitem__(slice(n, None)))
                try:
                    status, _ = self.assert_never_wrong("a", error_expected=True)
                    if length < seg_offset(1):
                        self.assertEqual(status, 500)
                finally:
                    restore()

    def test_segments_swapped_between_objects(self):
        a, b = self.blob("a").read(), self.blob("b").read()
        for i in (0, 1):
            with self.subTest(segment=i):
                lo, hi = seg_offset(i), seg_offset(i + 1)
                restore = self.damage("a", lambda d: d.__setitem__(slice(lo, hi), b[lo:hi]))
                try:
                    status, _ = self.assert_never_wrong("a", error_expected=True)
                    if i == 0:
                        self.assertEqual(status, 500)
                finally:
                    restore()
        # segments reordered inside one object
        restore = self.damage("a", lambda d: d.__setitem__(
            slice(seg_offset(0), seg_offset(2)), a[seg_offset(1):seg_offset(2)] + a[seg_offset(0):seg_offset(1)]))
        try:
            self.assertEqual(self.assert_never_wrong("a", error_expected=True)[0], 500)
        finally:
            restore()

    def test_whole_files_swapped_between_objects_and_scrub(self):
        code, report = self.scrub()
        self.assertEqual((code, report["damaged"]), (0, []), report)
        self.assertGreaterEqual(report["objects_verified"], 2)
        before = len(self.daemon.stderr_tail(400))
        blob_a, blob_b = self.blob("a"), self.blob("b")
        a, b = blob_a.read(), blob_b.read()
        try:
            blob_a.write(b)
            blob_b.write(a)
            for key in ("a", "b"):
                status, _ = self.assert_never_wrong(key, error_expected=True)
                self.assertEqual(status, 500)
            self.assertIn("GetObject", self.log_grew(before), "no log line for the failed read")
            code, report = self.scrub()
            self.assertEqual(code, 3, report)
            self.assertEqual(sorted(d["key"] for d in report["damaged"] if d["bucket"] == self.bucket),
                             ["a", "b"])
        finally:
            blob_a.write(a)
            blob_b.write(b)
        code, report = self.scrub()
        self.assertEqual((code, report["damaged"]), (0, []), report)
        for key in ("a", "b"):
            status, body, complete = self.get(key)
            self.assertEqual((status, complete, sha256(body)), (200, True, sha256(self.data[key])))

    def assert_failure_reported(self, key: str, rid: str, failures_before: float, records_before: int,
                                tmp: str):
        """One damaged read: a log line with its request id, the read counter up by one, and
        exactly one integrity_failure audit record naming the request and the object."""
        self.assertTrue(rid, "no request id")
        self.assertIn(f"[{rid}]", self.daemon.stderr_tail(400), "no log line for the failed read")
        self.assertEqual(metric_value(metrics(self.daemon), READ_FAILURES), failures_before + 1)
        deadline = time.monotonic() + 10
        while True:
            records = integrity_records(audit_records(self.daemon, tmp))
            if len(records) > records_before or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(len(records), records_before + 1, records[records_before:])
        mine = [r for r in records if r["request_id"] == rid]
        self.assertEqual(len(mine), 1, records[records_before:])
        self.assertEqual((mine[0]["operation"], mine[0]["bucket"], mine[0]["object_key"]),
                         ("data.decrypt", self.bucket, key))
        self.assertEqual(mine[0]["object_id"], object_id_of(self.daemon, key))

    def test_damaged_reads_are_logged_counted_and_audited_once(self):
        tmp = tempfile.mkdtemp(prefix="coffre-tamper-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        other = self.blob("b").read()
        cases = [
            # (name, edit of a's blob, range of the GET: its first decrypted piece is damaged)
            ("bit flip", lambda d: d.__setitem__(seg_offset(0) + 5, d[seg_offset(0) + 5] ^ 0x01), None),
            ("truncation", lambda d: d.__delitem__(slice(seg_offset(1) + 10, None)), (SEG, SEG + 99)),
            ("swapped file", lambda d: d.__setitem__(slice(0, None), other), None),
        ]
        for name, edit, rng in cases:
            with self.subTest(damage=name):
                restore = self.damage("a", edit)
                try:
                    failures_before = metric_value(metrics(self.daemon), READ_FAILURES)
                    self.assertIsNotNone(failures_before, "the read series must exist from the start")
                    records_before = len(integrity_records(audit_records(self.daemon, tmp)))
                    status, body, _, rid = self.get_with_id(
                        "a", f"bytes={rng[0]}-{rng[1]}" if rng else None)
                    self.assertEqual(status, 500, body[:300])
                    self.assertIn(b"InternalError", body)
                    self.assert_failure_reported("a", rid, failures_before, records_before, tmp)
                finally:
                    restore()
        # Copy source: the same error, count and record, under the CopyObject request (sent raw:
        # botocore retries a CopyObject error, which would make two failed reads).
        restore = self.damage("a", cases[0][1])
        try:
            failures_before = metric_value(metrics(self.daemon), READ_FAILURES)
            records_before = len(integrity_records(audit_records(self.daemon, tmp)))
            resp = self.daemon.request("PUT", f"/{self.bucket}/copy-of-a",
                                       headers={"x-amz-copy-source": f"/{self.bucket}/a"})
            self.assertEqual((resp.status, resp.error_code), (500, "InternalError"), resp)
            self.assert_failure_reported("a", resp.headers["x-amz-request-id"], failures_before,
                                         records_before, tmp)
        finally:
            restore()
        # intact again: a good read counts nothing
        failures = metric_value(metrics(self.daemon), READ_FAILURES)
        self.assertEqual(self.get("a")[:2], (200, self.data["a"]))
        self.assertEqual(metric_value(metrics(self.daemon), READ_FAILURES), failures)

    def test_bytes_appended_after_the_last_segment(self):
        # Every segment still opens: only the blob's length (fixed by the header) shows the damage.
        # A record can grow only up to its capacity.
        room = self.blob("b").room() - len(self.blob("b").read())
        for extra in (1, TAG, min(SEG + TAG, room)):
            with self.subTest(extra=extra):
                restore = self.damage("b", lambda d, n=extra: d.extend(b"\x5a" * n))
                try:
                    # a GET may answer or refuse, never with wrong bytes
                    self.assert_never_wrong("b")
                    code, report = self.scrub()
                    self.assertEqual(code, 3, report)
                    damaged = [d for d in report["damaged"] if d["bucket"] == self.bucket]
                    self.assertEqual([d["key"] for d in damaged], ["b"], report)
                    self.assertIn("appended", damaged[0]["error"])
                finally:
                    restore()
        code, report = self.scrub()
        self.assertEqual((code, report["damaged"]), (0, []), report)

    def test_missing_blob(self):
        blob = self.blob("b")
        blob.hide()
        try:
            self.assertEqual(self.assert_never_wrong("b", error_expected=True)[0], 500)
            code, report = self.scrub()
            self.assertEqual(code, 3)
            self.assertIn("b", [d["key"] for d in report["damaged"]])
        finally:
            blob.unhide()


class FileTamperTest(TamperTest):
    """The same damage to blobs in files of their own."""
    daemon_config = {"packed_blob_max_bytes": 0}


class TornPackRecordTest(unittest.TestCase):
    """What a power cut can leave in a pack: bytes of a record whose header never reached the disk
    (its PUT was never acknowledged). fsck reports them; --repair punches them out unless a blob
    is missing, and the objects around them are untouched."""

    def test_fsck_reports_then_repairs_stray_pack_bytes(self):
        d = Daemon()
        d.start()
        self.addCleanup(d.cleanup)
        self.addCleanup(lambda: d.alive and d.stop(check=False))
        s3 = d.client()
        s3.create_bucket(Bucket="torn")
        data = {k: gen_bytes(5000 + i, seed=i) for i, k in enumerate(("a", "b"))}
        for k, v in data.items():
            s3.put_object(Bucket="torn", Key=k, Body=v)
        blob_b = blob_of(d, "b", "torn")
        self.assertTrue(blob_b.in_pack)
        d.stop()
        pack, offset, capacity = blob_b.record
        torn_at = offset + capacity + 4096          # past the last record, a block in
        with open(pack, "r+b") as f:
            f.seek(torn_at)
            f.write(gen_bytes(6000, seed=7))
        stray = f"{pack} bytes {torn_at}..{torn_at + 8192}"

        def fsck(*args):
            p = d.run_cli("fsck", "--data-dir", d.data_dir, "--min-age", "0", "--json", *args, check=False)
            return p.returncode, json.loads(p.stdout)

        code, report = fsck()
        self.assertEqual((code, report["strays"], report["missing"]), (3, [stray], []), report)
        # While a blob is missing, stray bytes might be its own: kept. (Here they are: b's header
        # made unreadable turns its record into stray bytes too.)
        blob_b.hide()
        code, report = fsck("--repair")
        self.assertEqual((code, report["strays_removed"], len(report["missing"])), (3, [], 1), report)
        self.assertEqual(report["strays"], [f"{pack} bytes {offset}..{offset + 8192}", stray], report)
        blob_b.unhide()
        code, report = fsck("--repair")
        self.assertEqual((code, report["strays"], report["strays_removed"]), (0, [], [stray]), report)
        code, report = fsck()
        self.assertEqual((code, report["clean"]), (0, True), report)

        d2 = Daemon(tmp=d.tmp)
        d2.start()
        self.addCleanup(lambda: d2.alive and d2.stop(check=False))
        for k, v in data.items():
            self.assertEqual(d2.client().get_object(Bucket="torn", Key=k)["Body"].read(), v, k)
        d2.stop()


class BackgroundScrubTest(unittest.TestCase):
    """The daemon's background scrub, each test with its own daemon and config."""

    def start(self, **config) -> Daemon:
        tmp = tempfile.mkdtemp(prefix="coffre-bgscrub-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        cfg = write_config(tmp, admin_listen="127.0.0.1:0", **config)
        d = Daemon(extra_args=["--config", cfg], tmp=tmp)
        d.start()
        self.addCleanup(d.cleanup)
        self.addCleanup(lambda: d.alive and d.stop(check=False))
        self.tmp = tmp
        return d

    def wait_for_passes(self, d: Daemon, n: int, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = metrics(d)
            if (metric_value(text, "coffre_scrub_passes_total") or 0) >= n:
                return text
            time.sleep(0.2)
        self.fail(f"no {n} scrub passes within {timeout}s\n{d.diagnostics()}")

    def put(self, d: Daemon, keys: dict):
        s3 = d.client()
        s3.create_bucket(Bucket="scrubbed")
        for k, v in keys.items():
            s3.put_object(Bucket="scrubbed", Key=k, Body=v)

    def test_clean_store_reports_nothing(self):
        d = self.start(scrub_interval_hours=0.5 / 3600)   # a pass every half second
        self.put(d, {f"k{i}": gen_bytes(SEG + i, seed=i) for i in range(3)})
        before = metric_value(metrics(d), "coffre_scrub_passes_total")
        text = self.wait_for_passes(d, before + 2)
        self.assertEqual(metric_value(text, SCRUB_FAILURES), 0)
        self.assertEqual(metric_value(text, READ_FAILURES), 0)
        self.assertGreaterEqual(metric_value(text, "coffre_scrub_objects_total"), 3)
        self.assertGreater(metric_value(text, "coffre_scrub_last_pass_completed_timestamp_seconds"),
                           time.time() - 60)
        self.assertNotIn("damaged object", d.stderr_tail(400))
        self.assertEqual(integrity_records(audit_records(d, self.tmp)), [])
        d.stop()

    def test_damaged_objects_are_logged_counted_and_audited(self):
        # The first pass starts one interval (10.8 s) after start-up: the damage is done by then,
        # and the checks are over before the second pass.
        d = self.start(scrub_interval_hours=0.003)
        data = {k: gen_bytes(2 * SEG + 7, seed=i) for i, k in enumerate(("flipped", "appended", "intact"))}
        self.put(d, data)
        flipped = blob_of(d, "flipped")
        stored = bytearray(flipped.read())
        stored[seg_offset(1) + 3] ^= 0x04
        flipped.write(bytes(stored))
        appended = blob_of(d, "appended")
        appended.write(appended.read() + b"\0" * 32)
        self.assertEqual(metric_value(metrics(d), "coffre_scrub_passes_total"), 0, "pass started too early")
        text = self.wait_for_passes(d, 1)
        self.assertEqual(metric_value(text, SCRUB_FAILURES), 2)
        self.assertEqual(metric_value(text, READ_FAILURES), 0)
        self.assertEqual(metric_value(text, "coffre_scrub_objects_total"), 1)
        log = d.stderr_tail(400)
        for key in ("flipped", "appended"):
            lines = [line for line in log.splitlines() if "damaged object" in line and f'key="{key}"' in line]
            self.assertEqual(len(lines), 1, log)
            self.assertIn('bucket="scrubbed"', lines[0])
            self.assertIn(object_id_of(d, key), lines[0])
        self.assertNotIn('key="intact"', log)
        records = integrity_records(audit_records(d, self.tmp))
        self.assertEqual(sorted((r["object_key"], r["operation"], r["action"]) for r in records),
                         [("appended", "data.decrypt", "scrub"), ("flipped", "data.decrypt", "scrub")])
        self.assertEqual({r["object_id"] for r in records},
                         {object_id_of(d, "flipped"), object_id_of(d, "appended")})
        # a client read of the intact object is unaffected
        self.assertEqual(sha256(d.client().get_object(Bucket="scrubbed", Key="intact")["Body"].read()),
                         sha256(data["intact"]))
        d.stop()

    def test_sigterm_stops_a_pass_promptly(self):
        # 4 MiB at 256 KiB/s: a pass takes 16 s, so SIGTERM comes in the middle of it.
        d = self.start(scrub_interval_hours=0.5 / 3600, scrub_bytes_per_second=256 * 1024)
        self.put(d, {"big": gen_bytes(4 * 1024 * 1024, seed=9)})
        started_passes = d.stderr_tail(400).count("background scrub: pass started")
        deadline = time.monotonic() + 30
        while d.stderr_tail(400).count("background scrub: pass started") <= started_passes:
            self.assertLess(time.monotonic(), deadline, d.diagnostics())
            time.sleep(0.1)
        # this pass reads the big object: still running a second later
        passes = metric_value(metrics(d), "coffre_scrub_passes_total")
        time.sleep(1.0)
        self.assertEqual(metric_value(metrics(d), "coffre_scrub_passes_total"), passes)
        started = time.monotonic()
        d.stop(check=True, timeout=20)
        self.assertLess(time.monotonic() - started, 5.0, "SIGTERM waited for the scrub")


if __name__ == "__main__":
    unittest.main()
