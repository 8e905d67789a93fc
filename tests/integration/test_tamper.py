"""Bit rot and tampering on disk (docs/RELIABILITY.md, "Integrity"): flip bits, truncate, swap
segments and whole blob files between objects. A GET must never return a wrong byte: it answers
an error status when the damage is in the first piece it decrypts (before any header is sent),
else it cuts the connection before the damaged segment; and the daemon logs the failure.
`coffre scrub` finds every damaged object and reports it; after the damage is undone it is clean.
"""

from __future__ import annotations

import http.client
import json
import os
import sqlite3
import unittest

from harness import CoffreTestCase, gen_bytes, sha256

SEG = 65536
TAG = 16
HEADER = 256
SIZE = 3 * SEG + 1234            # four segments, the last one short


def seg_offset(i: int) -> int:
    return HEADER + i * (SEG + TAG)


class TamperTest(CoffreTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = "tamper"
        cls.s3.create_bucket(Bucket=cls.bucket)
        cls.data = {k: gen_bytes(SIZE, seed=i) for i, k in enumerate(("a", "b"))}
        for k, v in cls.data.items():
            cls.s3.put_object(Bucket=cls.bucket, Key=k, Body=v)

    def blob_path(self, key: str) -> str:
        db = sqlite3.connect(f"file:{self.daemon.data_dir}/catalog.db?mode=ro", uri=True)
        try:
            (blob,) = db.execute("SELECT blob_id FROM object_parts WHERE key = ?", (key,)).fetchone()
        finally:
            db.close()
        return os.path.join(self.daemon.data_dir, "blobs", blob[:2], blob[2:4], blob)

    def get(self, key: str, rng: str | None = None):
        """(status, body received, complete?) of a GET; a cut connection is not an exception."""
        conn = self.daemon.connection(timeout=30)
        try:
            req = self.daemon.sign("GET", f"/{self.bucket}/{key}",
                                   headers={"Range": rng} if rng else None)
            conn.putrequest("GET", req.target, skip_host=True, skip_accept_encoding=True)
            for k, v in req.headers.items():
                conn.putheader(k, v)
            conn.endheaders()
            resp = conn.getresponse()
            try:
                body = resp.read()
                complete = True
            except http.client.IncompleteRead as e:
                body, complete = e.partial, False
            return resp.status, body, complete
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
        """Applies edit(bytearray) to the blob file of `key`; returns a function that undoes it."""
        path = self.blob_path(key)
        with open(path, "rb") as f:
            original = f.read()
        data = bytearray(original)
        edit(data)
        with open(path, "wb") as f:
            f.write(data)

        def restore():
            with open(path, "wb") as f:
                f.write(original)
        return restore

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
        pa, pb = self.blob_path("a"), self.blob_path("b")
        with open(pa, "rb") as f:
            a = f.read()
        with open(pb, "rb") as f:
            b = f.read()
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
        pa, pb = self.blob_path("a"), self.blob_path("b")
        with open(pa, "rb") as f:
            a = f.read()
        with open(pb, "rb") as f:
            b = f.read()
        try:
            with open(pa, "wb") as f:
                f.write(b)
            with open(pb, "wb") as f:
                f.write(a)
            for key in ("a", "b"):
                status, _ = self.assert_never_wrong(key, error_expected=True)
                self.assertEqual(status, 500)
            self.assertIn("GetObject", self.log_grew(before), "no log line for the failed read")
            code, report = self.scrub()
            self.assertEqual(code, 3, report)
            self.assertEqual(sorted(d["key"] for d in report["damaged"] if d["bucket"] == self.bucket),
                             ["a", "b"])
        finally:
            with open(pa, "wb") as f:
                f.write(a)
            with open(pb, "wb") as f:
                f.write(b)
        code, report = self.scrub()
        self.assertEqual((code, report["damaged"]), (0, []), report)
        for key in ("a", "b"):
            status, body, complete = self.get(key)
            self.assertEqual((status, complete, sha256(body)), (200, True, sha256(self.data[key])))

    def test_missing_blob_file(self):
        path = self.blob_path("b")
        os.rename(path, path + ".away")
        try:
            self.assertEqual(self.assert_never_wrong("b", error_expected=True)[0], 500)
            code, report = self.scrub()
            self.assertEqual(code, 3)
            self.assertIn("b", [d["key"] for d in report["damaged"]])
        finally:
            os.rename(path + ".away", path)


if __name__ == "__main__":
    unittest.main()
