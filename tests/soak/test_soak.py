"""Soak (docs/RELIABILITY.md): a bounded mixed workload (PUT, GET, range GET, LIST, DELETE,
multipart) from many clients on loopback, while the daemon's resident memory, open file
descriptors and threads are sampled from /proc. Passes when no request failed unexpectedly and
the three stay flat: after a warm-up, the last quarter of the run may not exceed the first by more
than a margin (memory: 25% + 16 MiB; descriptors: the number of clients; threads: none).

COFFRE_SOAK_SECONDS bounds the run (default 30 for CI; the documented long run uses 600),
COFFRE_SOAK_CLIENTS the number of client threads (default 8). Figures are printed at the end.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from harness import Daemon, MiB  # noqa: E402


def proc_sample(pid: int):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    rss_kib = int(fields["VmRSS"].split()[0])
    threads = int(fields["Threads"])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss_kib, fds, threads


class SoakTest(unittest.TestCase):
    def test_mixed_workload_stays_flat(self):
        seconds = float(os.environ.get("COFFRE_SOAK_SECONDS", "30"))
        clients = int(os.environ.get("COFFRE_SOAK_CLIENTS", "8"))
        with Daemon() as d:
            setup = d.client()
            setup.create_bucket(Bucket="soak")
            stop = threading.Event()
            errors = []
            counts = {"put": 0, "get": 0, "range": 0, "list": 0, "delete": 0, "multipart": 0}
            lock = threading.Lock()

            def client(n):
                rng = random.Random(n)
                s3 = d.client(checksum="when_required")
                mine = {}
                while not stop.is_set():
                    op = rng.random()
                    key = f"c{n}/k{rng.randrange(20)}"
                    try:
                        if op < 0.35 or not mine:
                            data = rng.randbytes(rng.choice([0, 100, 70000, 300000]))
                            s3.put_object(Bucket="soak", Key=key, Body=data)
                            mine[key] = (hashlib.sha256(data).hexdigest(), len(data))
                            name = "put"
                        elif op < 0.65:
                            key = rng.choice(list(mine))
                            got = s3.get_object(Bucket="soak", Key=key)["Body"].read()
                            if hashlib.sha256(got).hexdigest() != mine[key][0]:
                                raise AssertionError(f"{key}: wrong bytes")
                            name = "get"
                        elif op < 0.75:
                            # bytes=10-70000 is unsatisfiable (416) on objects of 10 bytes or less
                            key = rng.choice(list(mine))
                            if mine[key][1] <= 10:
                                continue
                            s3.get_object(Bucket="soak", Key=key, Range="bytes=10-70000")["Body"].read()
                            name = "range"
                        elif op < 0.85:
                            s3.list_objects_v2(Bucket="soak", Prefix=f"c{n}/", MaxKeys=10)
                            name = "list"
                        elif op < 0.97:
                            key = rng.choice(list(mine))
                            s3.delete_object(Bucket="soak", Key=key)
                            del mine[key]
                            name = "delete"
                        else:
                            up = s3.create_multipart_upload(Bucket="soak", Key=key)["UploadId"]
                            p1 = rng.randbytes(5 * MiB)
                            p2 = rng.randbytes(1000)
                            e1 = s3.upload_part(Bucket="soak", Key=key, UploadId=up, PartNumber=1,
                                                Body=p1)["ETag"]
                            e2 = s3.upload_part(Bucket="soak", Key=key, UploadId=up, PartNumber=2,
                                                Body=p2)["ETag"]
                            s3.complete_multipart_upload(
                                Bucket="soak", Key=key, UploadId=up,
                                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                                           {"PartNumber": 2, "ETag": e2}]})
                            mine[key] = (hashlib.sha256(p1 + p2).hexdigest(), len(p1) + len(p2))
                            name = "multipart"
                        with lock:
                            counts[name] += 1
                    except Exception as e:  # any failure is unexpected on loopback
                        with lock:
                            errors.append(f"{key}: {e!r}")

            threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
            for t in threads:
                t.start()
            samples = []
            start = time.monotonic()
            while time.monotonic() - start < seconds:
                time.sleep(max(0.5, seconds / 60))
                samples.append(proc_sample(d.proc.pid))
            stop.set()
            for t in threads:
                t.join(60)
            total = sum(counts.values())
            print(f"\nsoak: {seconds:.0f}s, {clients} clients, {total} requests {counts}, "
                  f"rss KiB / fds / threads: first {samples[len(samples) // 4]}, last {samples[-1]}, "
                  f"max rss {max(s[0] for s in samples)} KiB", file=sys.stderr)
            self.assertEqual(errors[:10], [], f"{len(errors)} unexpected errors")
            self.assertGreater(total, 0)
            q = max(1, len(samples) // 4)
            warm, late = samples[q:2 * q], samples[-q:]
            warm_rss = max(s[0] for s in warm)
            self.assertLessEqual(max(s[0] for s in late), warm_rss * 1.25 + 16 * 1024,
                                 f"memory grew: {samples}")
            self.assertLessEqual(max(s[1] for s in late), max(s[1] for s in warm) + clients,
                                 f"descriptors grew: {samples}")
            self.assertLessEqual(max(s[2] for s in late), max(s[2] for s in warm),
                                 f"threads grew: {samples}")


if __name__ == "__main__":
    unittest.main()
