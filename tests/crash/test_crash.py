"""Crash consistency: kill -9 the daemon at random moments under a concurrent write load, restart
it, and check that nothing acknowledged was lost and nothing is torn (docs/RELIABILITY.md).

Each round: start `coffre serve` on the same data directory; worker threads run PUTs (one and
several segments), overwrites, DELETEs and multipart uploads (create, parts, complete) on keys
that each worker owns; in about half the rounds `coffre key rotate` and `coffre key rewrap` run
in a loop beside them (a rewrap killed mid-way must leave every object readable, and a later one
resumes it); after a random delay the daemon (and the key command running) gets SIGKILL. Then,
daemon stopped:
`coffre fsck --repair --min-age 0` (orphan blobs and temporaries are what a crash may leave;
missing blobs or live blobs listed as garbage are failures), and `coffre fsck --min-age 0` must
report clean. Then restart and check every key:
  - an acknowledged write or delete (HTTP 200/204 received) is exactly what GET returns
    (SHA-256 of the body) or, for a delete, the key is absent;
  - an operation in flight at the kill shows wholly its old state or wholly its new one;
  - the listing agrees with the GETs.

Bounded by COFFRE_CRASH_SECONDS (default 60) and COFFRE_CRASH_ROUNDS (default 200); the random
seed is printed and taken from COFFRE_CRASH_SEED to replay a failure.
The binary comes from $COFFRE_BINARY (else build/coffre).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from harness import Daemon, MiB  # noqa: E402

ABSENT = None
BUCKET = "crash"
WORKERS = 4
KEYS_PER_WORKER = 6


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


class Model:
    """What each key may hold: a set of acceptable SHA-256s (ABSENT for no object)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.allowed = {}   # key -> set of sha / ABSENT
        self.acked = 0
        self.unacked = 0
        self.wrong_etags = []   # acknowledgements whose ETag is not the body's MD5
        self.history = {}   # key -> [(time, event, sha)], printed when the key fails its check

    def _note(self, key, event, value):
        self.history.setdefault(key, []).append((time.monotonic(), event, value))

    def begin(self, key, new):
        with self.lock:
            cur = self.allowed.setdefault(key, {ABSENT})
            cur.add(new)   # in flight: old states or the new one
            self._note(key, "begin", new)

    def ack(self, key, new, response=None):
        with self.lock:
            self.allowed[key] = {new}
            self.acked += 1
            rid = (response or {}).get("ResponseMetadata", {}).get("RequestId", "")
            self._note(key, f"ack {rid}", new)

    def wrong_etag(self, key, response):
        with self.lock:
            self.wrong_etags.append((key, response.get("ETag"),
                                     response.get("ResponseMetadata", {}).get("RequestId")))

    def fail(self, key, error):
        with self.lock:
            self.unacked += 1
            self._note(key, f"failed: {error!r}"[:300], None)

    def observe(self, key, value):
        with self.lock:
            self.allowed[key] = {value}
            self._note(key, "observed", value)

    def describe(self, key):
        with self.lock:
            return "\n".join(f"  {t:.3f} {event} {value}" for t, event, value in self.history.get(key, []))


class Worker(threading.Thread):
    def __init__(self, n, daemon, model, stop, seed):
        super().__init__(daemon=True)
        self.n = n
        self.s3 = daemon.client(checksum="when_required")
        self.model = model
        self.stop_event = stop
        self.rng = random.Random(seed)

    def key(self):
        return f"w{self.n}/k{self.rng.randrange(KEYS_PER_WORKER)}"

    def payload(self):
        size = self.rng.choice([0, 1, 1000, 65536, 65537, 200_000, 700_000])
        return self.rng.randbytes(size)

    def run(self):
        while not self.stop_event.is_set():
            op = self.rng.random()
            key = self.key()
            try:
                if op < 0.55:
                    data = self.payload()
                    self.model.begin(key, sha(data))
                    r = self.s3.put_object(Bucket=BUCKET, Key=key, Body=data)
                    # An answer without the body's MD5 as ETag is not the daemon's
                    # acknowledgement of this PUT (a client library may make one up when the
                    # connection dies; see SendOwedContinue in src/http/connection.cc).
                    if r.get("ETag", "").strip('"') != hashlib.md5(data).hexdigest():
                        self.model.wrong_etag(key, r)
                        continue
                    self.model.ack(key, sha(data), r)
                elif op < 0.75:
                    self.model.begin(key, ABSENT)
                    self.s3.delete_object(Bucket=BUCKET, Key=key)
                    self.model.ack(key, ABSENT)
                else:
                    first = self.rng.randbytes(5 * MiB)
                    last = self.payload()
                    data = first + last
                    up = self.s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
                    e1 = self.s3.upload_part(Bucket=BUCKET, Key=key, UploadId=up, PartNumber=1,
                                             Body=first)["ETag"]
                    e2 = self.s3.upload_part(Bucket=BUCKET, Key=key, UploadId=up, PartNumber=2,
                                             Body=last)["ETag"]
                    self.model.begin(key, sha(data))
                    self.s3.complete_multipart_upload(
                        Bucket=BUCKET, Key=key, UploadId=up,
                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                                   {"PartNumber": 2, "ETag": e2}]})
                    self.model.ack(key, sha(data))
            except Exception as e:   # the kill: connection refused / reset / timed out
                self.model.fail(key, e)
                if self.stop_event.wait(0.05):
                    return


class Rewrapper(threading.Thread):
    """The online key lifecycle beside the workload: `coffre key rotate dev` then `coffre
    key rewrap dev`, in a loop, as an operator would run them against the live data directory.
    At the kill the running command is killed too (an operator's session lost with the
    machine); any other failure of a command is a defect."""

    def __init__(self, daemon, stop):
        super().__init__(daemon=True)
        self.d = daemon
        self.stop_event = stop
        self.lock = threading.Lock()
        self.proc = None
        self.completed = 0       # commands that ran to the end
        self.left_for_next = 0   # rewraps that ended with keys written meanwhile under an old version
        self.failures = []       # (command, exit status, stderr) of failures not caused by the kill

    def kill(self):
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)

    def run(self):
        while not self.stop_event.is_set():
            for command in (["key", "rotate", "dev"], ["key", "rewrap", "dev"]):
                with self.lock:
                    if self.stop_event.is_set():
                        return
                    self.proc = subprocess.Popen([self.d.binary, *command, "--data-dir", self.d.data_dir],
                                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                 stderr=subprocess.PIPE, env=self.d._env())
                _, err = self.proc.communicate()
                if self.proc.returncode == 0:
                    self.completed += 1
                elif b"written under an old version while rewrap ran" in err:
                    # A PUT that took its data key before the rotation committed after rewrap's
                    # last pass (uploads can be long): reported and left for the next rewrap,
                    # which this loop runs.
                    self.left_for_next += 1
                elif self.proc.returncode != -signal.SIGKILL:
                    self.failures.append((" ".join(command), self.proc.returncode,
                                          err.decode(errors="replace")[-500:]))
            self.stop_event.wait(0.2)


class CrashConsistencyTest(unittest.TestCase):
    def fsck(self, d, *args):
        p = d.run_cli("fsck", "--data-dir", d.data_dir, "--min-age", "0", "--json", *args,
                      check=False, timeout=300)
        try:
            report = json.loads(p.stdout)
        except ValueError:
            self.fail(f"fsck printed no JSON (exit {p.returncode}): {p.stdout!r} {p.stderr!r}")
        return p.returncode, report

    def test_sigkill_under_concurrent_writes(self):
        budget = float(os.environ.get("COFFRE_CRASH_SECONDS", "60"))
        max_rounds = int(os.environ.get("COFFRE_CRASH_ROUNDS", "200"))
        seed = int(os.environ.get("COFFRE_CRASH_SEED", str(random.randrange(1 << 30))))
        print(f"\ncrash test: seed {seed}, budget {budget}s", file=sys.stderr)
        rng = random.Random(seed)
        tmp = tempfile.mkdtemp(prefix="coffre-crash-")
        model = Model()
        deadline = time.monotonic() + budget
        rounds = orphans = temporaries = key_commands = 0
        # The access log lets a failure show what the daemon did with the key (request ids,
        # statuses) beside what the client saw.
        config_path = os.path.join(tmp, "crash-config.json")
        with open(config_path, "w") as f:
            json.dump({"access_log": True, "development": True, "create_root_key": True, "create_dev_tenant": True}, f)
        daemon_args = ["--config", config_path]
        d = Daemon(tmp=tmp, extra_args=daemon_args)
        try:
            d.start()
            d.client().create_bucket(Bucket=BUCKET)
            while rounds < max_rounds and time.monotonic() < deadline:
                rounds += 1
                stop = threading.Event()
                workers = [Worker(i, d, model, stop, rng.randrange(1 << 30)) for i in range(WORKERS)]
                rewrapper = Rewrapper(d, stop) if rng.random() < 0.5 else None
                for w in workers + ([rewrapper] if rewrapper else []):
                    w.start()
                time.sleep(rng.uniform(0.3, 2.5))
                with model.lock:
                    model._note("*", f"round {rounds}: SIGKILL", None)
                d.proc.send_signal(signal.SIGKILL)
                stop.set()
                if rewrapper:
                    rewrapper.kill()
                d.proc.wait(10)
                for w in workers + ([rewrapper] if rewrapper else []):
                    w.join(60)
                    self.assertFalse(w.is_alive(), "a client thread or key command hung after the kill")
                if rewrapper:
                    self.assertEqual(rewrapper.failures, [], f"round {rounds}: key commands failed")
                    key_commands += rewrapper.completed
                d.stop(check=False)

                code, report = self.fsck(d, "--repair")
                self.assertEqual(report["missing"], [], f"round {rounds}: blobs lost: {report}")
                self.assertEqual(report["doomed"], [], f"round {rounds}: live blobs in garbage")
                self.assertEqual(report["strays"], [], f"round {rounds}: {report}")
                self.assertEqual(code, 0, f"round {rounds}: fsck --repair: {report}")
                orphans += len(report["orphans"])
                temporaries += len(report["temporaries"])
                code, report = self.fsck(d)
                self.assertEqual(code, 0, f"round {rounds}: fsck after repair: {report}")
                self.assertTrue(report["clean"], report)

                d = Daemon(tmp=tmp, extra_args=daemon_args)
                d.start()
                self.assertEqual(model.wrong_etags, [], f"round {rounds}: PUTs acknowledged with "
                                 "an ETag that is not their body's MD5")
                self.verify(d, model, rounds, tmp)
            d.stop(check=True)
            code, report = self.fsck(d)
            self.assertEqual(code, 0, f"fsck after a clean stop: {report}")
        except BaseException:
            sys.stderr.write(d.diagnostics() + "\n")
            d.stop(check=False)
            raise
        finally:
            d.cleanup()
        print(f"crash test: {rounds} rounds, {model.acked} acknowledged and {model.unacked} "
              f"interrupted operations, {key_commands} key rotations/rewraps completed beside "
              f"them, fsck repaired {orphans} orphan blobs and {temporaries} temporaries",
              file=sys.stderr)
        self.assertGreater(model.acked, 0)

    @staticmethod
    def server_lines(tmp, key):
        """The daemons' log lines that name `key`, in order, one file per daemon run."""
        out = []
        for name in sorted(os.listdir(tmp), key=lambda n: (len(n), n)):
            if name.startswith("daemon-") and name.endswith(".stderr"):
                with open(os.path.join(tmp, name), errors="replace") as f:
                    lines = [line.rstrip() for line in f if key in line]
                out.append(f"  {name}:")
                out.extend(f"    {line}" for line in lines[-12:])
        return "\n".join(out)

    def verify(self, d, model, rounds, tmp):
        s3 = d.client(checksum="when_required")
        listed = set()
        token = None
        while True:
            kw = {"ContinuationToken": token} if token else {}
            page = s3.list_objects_v2(Bucket=BUCKET, **kw)
            listed.update(o["Key"] for o in page.get("Contents", []))
            if not page.get("IsTruncated"):
                break
            token = page["NextContinuationToken"]
        for key, allowed in sorted(model.allowed.items()):
            try:
                got = sha(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
            except s3.exceptions.NoSuchKey:
                got = ABSENT
            self.assertIn(got, allowed, f"round {rounds}: {key} holds "
                          f"{'nothing' if got is None else got}, allowed {allowed}\nhistory of "
                          f"{key}:\n{model.describe(key)}\nkills:\n{model.describe('*')}\n"
                          f"daemon log lines of {key}:\n{self.server_lines(tmp, key)}")
            self.assertEqual(key in listed, got is not ABSENT, f"round {rounds}: listing of {key}")
            model.observe(key, got)


if __name__ == "__main__":
    unittest.main()
