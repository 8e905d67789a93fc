"""Soak (docs/RELIABILITY.md): a bounded mixed workload (PUT, GET, range GET, LIST, DELETE,
multipart) from many clients on loopback, while the daemon's resident memory, open file
descriptors and threads are sampled from /proc. Passes when no request failed unexpectedly and
the three stay flat: after a warm-up, the last quarter of the run may not exceed the first by more
than a margin (memory: 25% + 16 MiB; descriptors: the number of clients; threads: none).

COFFRE_SOAK_SECONDS bounds the run (default 30 for CI; the documented long run uses 600),
COFFRE_SOAK_CLIENTS the number of client threads (default 8). Figures are printed at the end.

A second test measures the memory a connection costs while it is in the middle of a signed
aws-chunked upload (the largest chunk SDKs send, 1 MiB): COFFRE_SOAK_HELD connections (default 32)
each stop one byte short of the end of their first chunk, and the resident memory they add is
printed per connection. COFFRE_SOAK_CHUNK_BYTES changes the chunk size (to measure older builds).
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

from harness import (Daemon, MiB, aws_chunked_encoded_length, aws_chunked_signed_body,  # noqa: E402
                     read_raw_http_response)


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

    def test_memory_per_connection_mid_signed_chunk(self):
        held = int(os.environ.get("COFFRE_SOAK_HELD", "32"))
        chunk = int(os.environ.get("COFFRE_SOAK_CHUNK_BYTES", str(MiB)))
        with Daemon() as d:
            d.client().create_bucket(Bucket="held")

            def start_upload(key):
                data = random.Random(key).randbytes(2 * chunk)
                hdrs = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
                        "Content-Length": str(aws_chunked_encoded_length(len(data), chunk))}
                seed = d.sign("PUT", f"/held/{key}", headers=hdrs,
                              payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                              sign_headers_extra=("content-encoding", "content-length"))
                body = aws_chunked_signed_body(data, seed, chunk_size=chunk)
                head = (f"PUT {seed.target} HTTP/1.1\r\n" +
                        "".join(f"{k}: {v}\r\n" for k, v in seed.headers.items()) + "\r\n").encode()
                cut = body.index(b"\r\n") + 2 + chunk - 1   # one byte short of the first chunk's end
                s = d.raw_socket(timeout=60)
                s.sendall(head + body[:cut])
                return s, body[cut:], data

            def settle():
                # resident memory once it stops moving (the daemon reads what was sent)
                last = None
                for _ in range(40):
                    time.sleep(0.25)
                    rss = proc_sample(d.proc.pid)[0]
                    if last is not None and abs(rss - last) < 256:
                        return rss
                    last = rss
                return last

            # warm-up: the same uploads once, so that buffers and threads exist before the baseline
            for i in range(4):
                s, rest, _ = start_upload(f"warm-{i}")
                s.sendall(rest)
                r = read_raw_http_response(s)
                s.close()
                self.assertEqual(r.status if r else None, 200, r and r.body)
            idle = settle()
            uploads = [start_upload(f"k{i}") for i in range(held)]
            busy = settle()
            statuses = []
            for s, rest, _ in uploads:
                s.sendall(rest)
                r = read_raw_http_response(s)
                statuses.append(r.status if r else None)
                s.close()
            after = settle()
            per_connection = (busy - idle) / held
            print(f"\nmemory mid signed chunk: {held} connections, chunk {chunk} bytes: rss KiB idle {idle}, "
                  f"held {busy}, after {after}; {per_connection:.0f} KiB per connection "
                  f"({per_connection * 1024 / chunk:.2f} x the chunk size)", file=sys.stderr)
            self.assertEqual(statuses, [200] * held)
            for i in (0, held - 1):
                got = d.client().get_object(Bucket="held", Key=f"k{i}")["Body"].read()
                self.assertEqual(hashlib.sha256(got).digest(), hashlib.sha256(uploads[i][2]).digest())


if __name__ == "__main__":
    unittest.main()
