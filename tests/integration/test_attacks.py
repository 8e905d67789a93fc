"""An attacker's test suite (docs/RELIABILITY.md, "Isolation"): what test_auth.py,
test_bad_input.py and test_isolation.py do not already try. Each test is named after the attack.

- chunk signatures replayed into another request;
- presigned URLs moved to another key, given extra (unsigned) parameters, or dated in the future;
- keys that try to leave the data directory through encodings (%2e%2e/, absolute paths,
  backslashes, overlong UTF-8);
- CR/LF smuggled into stored metadata or into response-* overrides (response splitting);
- request smuggling with conflicting Content-Length / Transfer-Encoding;
- oversized request lines and header counts;
- slowloris (connections that never finish their header) next to a legitimate client;
- a client that disconnects mid-upload: nothing stored, no temporary left, no descriptor leaked.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import unittest
import urllib.parse
import urllib.request
import uuid

from harness import (CoffreTestCase, Daemon, aws_chunked_signed_body, presign_url,
                     read_raw_http_response)

READ_TIMEOUT = 2   # seconds, the slowloris daemon's read_timeout_seconds


# The catalog opens reader connections on demand up to this many (kMaxReaders in
# src/catalog/sqlite_catalog.cc) and keeps them for reuse: concurrent requests may add one, as a
# catalog.db descriptor plus its catalog.db-wal, at any time. That is a bounded pool growing, not
# a leak, so it cannot be part of a before/after comparison of descriptors.
CATALOG_READERS = 4


def fd_table(pid: int) -> dict:
    """Descriptor number -> what it refers to: a path, socket:[inode], pipe:[inode], anon_inode:..."""
    table = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            table[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except FileNotFoundError:
            pass  # closed between listdir and readlink
    return table


def settled_fd_table(pid: int, timeout: float = 10.0) -> dict:
    """The descriptor table once it stops changing, so that what a previous request still had
    open (a connection being closed, a temporary file) does not count as the baseline."""
    deadline = time.monotonic() + timeout
    table = fd_table(pid)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        again = fd_table(pid)
        if again == table:
            break
        table = again
    return table


def accept_queue_length(port: int):
    """Connections to 127.0.0.1:`port` that the kernel completed but the daemon has not accepted
    yet (the LISTEN socket's rx_queue in /proc/net/tcp); None if no such listener."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, state, queues = fields[1], fields[3], fields[4]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                return int(queues.split(":")[1], 16)
    return None


def format_fd_table(table: dict) -> str:
    return "\n".join(f"  {fd} -> {target}" for fd, target in sorted(table.items()))


def new_descriptors(before: dict, after: dict, data_dir: str) -> dict:
    """Descriptors of `after` that `before` did not have (same number, same target), less the
    catalog reader connections the pool may have opened meanwhile (whole connections only, and
    never more than the pool holds)."""
    new = {fd: t for fd, t in after.items() if before.get(fd) != t}
    db = os.path.join(os.path.realpath(data_dir), "catalog.db")  # readlink gives real paths
    new_db = [fd for fd, t in new.items() if t == db]
    new_wal = [fd for fd, t in new.items() if t == db + "-wal"]
    connections = sum(1 for t in after.values() if t == db)  # the writer and the readers
    if len(new_db) == len(new_wal) and connections <= 1 + CATALOG_READERS:
        for fd in new_db + new_wal:
            del new[fd]
    return new


class AttackTest(CoffreTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = "attacks"
        cls.s3.create_bucket(Bucket=cls.bucket)
        cls.s3.put_object(Bucket=cls.bucket, Key="secret.txt", Body=b"for tenant dev only")

    def raw(self, data: bytes, timeout: float = 15.0):
        """Sends raw bytes, half-closes, returns every response the server sends before closing."""
        s = self.daemon.raw_socket(timeout)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            out = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except (ConnectionResetError, socket.timeout):
                    break
                if not chunk:
                    break
                out += chunk
            return out
        finally:
            s.close()

    # -- chunk signatures --------------------------------------------------------------------------
    def test_chunk_signature_replayed_into_another_request(self):
        data = b"A" * 70000
        length = str(len(data))
        hdrs = {"Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": length}
        first = self.daemon.sign("PUT", f"/{self.bucket}/replay-a", headers=hdrs,
                                 payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
        body = aws_chunked_signed_body(data, first)
        first.headers["Content-Length"] = str(len(body))
        self.assertEqual(self.daemon.send(first, body=body).status, 200)
        # The same chunks (signed from the first request's seed) under a fresh, valid seed.
        for key in ("replay-a", "replay-b"):
            with self.subTest(key=key):
                second = self.daemon.sign("PUT", f"/{self.bucket}/{key}", headers=hdrs,
                                          payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                                          sign_headers_extra=("content-encoding",))
                second.headers["Content-Length"] = str(len(body))
                r = self.daemon.send(second, body=body)
                self.assertS3Error(r, "SignatureDoesNotMatch", 403)
        self.assertKeyAbsent(self.bucket, "replay-b")
        self.assertObjectEquals(self.bucket, "replay-a", data)

    # -- presigned URLs ---------------------------------------------------------------------------
    def _get(self, url: str):
        try:
            with urllib.request.urlopen(url, timeout=15) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def test_presigned_url_moved_to_another_key(self):
        url = presign_url(self.daemon.endpoint, "GET", f"/{self.bucket}/public.txt",
                          access_key=self.daemon.access_key, secret_key=self.daemon.secret_key)
        moved = url.replace("/public.txt?", "/secret.txt?")
        status, body = self._get(moved)
        self.assertEqual(status, 403)
        self.assertNotIn(b"tenant dev only", body)

    def test_presigned_url_with_unsigned_parameters_added(self):
        url = presign_url(self.daemon.endpoint, "GET", f"/{self.bucket}/secret.txt",
                          access_key=self.daemon.access_key, secret_key=self.daemon.secret_key)
        self.assertEqual(self._get(url)[0], 200)
        for extra in ("&response-content-type=text%2Fhtml", "&uploads", "&acl", "&versionId=null",
                      "&X-Amz-Expires=604800"):
            with self.subTest(extra=extra):
                status, body = self._get(url + extra)
                self.assertIn(status, (400, 403), body)
                self.assertNotIn(b"tenant dev only", body)

    def test_presigned_url_dated_in_the_future(self):
        import datetime as dt
        when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)
        url = presign_url(self.daemon.endpoint, "GET", f"/{self.bucket}/secret.txt",
                          access_key=self.daemon.access_key, secret_key=self.daemon.secret_key,
                          when=when, expires=604800)
        status, body = self._get(url)
        self.assertEqual(status, 403, body)
        self.assertNotIn(b"tenant dev only", body)

    # -- keys that try to escape ------------------------------------------------------------------
    def test_encoded_traversal_and_absolute_keys_stay_inside(self):
        tag = uuid.uuid4().hex[:10]
        # (decoded key as signed, target on the wire)
        cases = [
            (f"../../esc1-{tag}", f"/{self.bucket}/%2e%2e/%2e%2e/esc1-{tag}"),
            (f"../../esc2-{tag}", f"/{self.bucket}/%2E%2E%2F%2E%2E%2Fesc2-{tag}"),
            (f"/etc/esc3-{tag}", f"/{self.bucket}//etc/esc3-{tag}"),
            (f"..\\..\\esc4-{tag}", f"/{self.bucket}/..%5C..%5Cesc4-{tag}"),
            (f"a/./../../esc5-{tag}", f"/{self.bucket}/a/%2e/%2e%2e/%2e%2e/esc5-{tag}"),
        ]
        for key, target in cases:
            with self.subTest(target=target):
                req = self.daemon.sign("PUT", f"/{self.bucket}/{key}", body=b"inside")
                req.target = target
                r = self.daemon.send(req)
                self.assertLess(r.status, 500, r)
                if r.status == 200:
                    g = self.daemon.request("GET", f"/{self.bucket}/{key}")
                    self.assertEqual((g.status, g.body), (200, b"inside"))
                    listed = [o["Key"] for o in
                              self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])]
                    self.assertIn(key, listed)
        self._assert_nothing_named(tag)

    def test_overlong_utf8_and_invalid_utf8_keys(self):
        tag = uuid.uuid4().hex[:10]
        # %C0%AE is an overlong '.', %C0%AF an overlong '/', %ED%A0%80 a UTF-16 surrogate.
        for raw in (f"%C0%AE%C0%AE%C0%AFesc-{tag}", f"%ED%A0%80-{tag}", f"%FF%FE-{tag}",
                    f"%E0%80%AE-{tag}"):
            with self.subTest(raw=raw):
                r = self.daemon.unsigned("PUT", f"/{self.bucket}/{raw}", body=b"x")
                # Unsigned: refused either way; the point is that parsing it is harmless.
                self.assertIn(r.status, (400, 403), r)
                self.assertTrue(self.daemon.alive)
        self._assert_nothing_named(tag)

    def _assert_nothing_named(self, tag: str):
        for root in (os.path.dirname(self.daemon.tmp), "/tmp", "/etc"):
            for name in os.listdir(root):
                self.assertNotIn(tag, name, os.path.join(root, name))
        for root, dirs, files in os.walk(self.daemon.tmp):
            for n in dirs + files:
                self.assertNotIn(tag, n, os.path.join(root, n))

    # -- CR/LF injection --------------------------------------------------------------------------
    def test_crlf_in_metadata_header_is_refused(self):
        key = "crlf-meta"
        for value in (b"a\rSet-Cookie: evil=1", b"a\nSet-Cookie: evil=1", b"a\x00b"):
            with self.subTest(value=value):
                req = (b"PUT /" + self.bucket.encode() + b"/" + key.encode() + b" HTTP/1.1\r\n"
                       b"Host: " + self.daemon.host.encode() + b"\r\n"
                       b"x-amz-meta-note: " + value + b"\r\nContent-Length: 1\r\n\r\nx")
                out = self.raw(req)
                self.assertTrue(out.startswith(b"HTTP/1.1 400") or out.startswith(b"HTTP/1.1 403"),
                                out[:200])
                self.assertNotIn(b"\r\nSet-Cookie:", out)
        # obs-fold continuation lines are refused, not glued into a value.
        out = self.raw(b"GET /" + self.bucket.encode() + b"/secret.txt HTTP/1.1\r\nHost: x\r\n"
                       b"x-amz-meta-a: b\r\n Set-Cookie: evil=1\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400") or out.startswith(b"HTTP/1.1 403"), out[:200])

    def test_response_splitting_through_response_overrides(self):
        for param in ("response-content-type", "response-content-disposition",
                      "response-cache-control", "response-expires"):
            with self.subTest(param=param):
                value = "text/plain\r\nSet-Cookie: evil=1\r\n\r\n<script>"
                for method in ("GET", "HEAD"):
                    conn = self.daemon.connection(timeout=15)
                    try:
                        r = self.daemon.send(self.daemon.sign(method, f"/{self.bucket}/secret.txt",
                                                              query=[(param, value)]), conn)
                    finally:
                        conn.close()
                    self.assertNotIn("set-cookie", r.headers, r)
                    for _, v in r.header_list:
                        self.assertNotIn("\n", v)
                        self.assertNotIn("\r", v)
                    self.assertEqual(r.status, 400, r)
                    if method == "GET":
                        self.assertEqual(r.error_code, "InvalidArgument", r)
                        self.assertNotIn(b"tenant dev only", r.body)

    # -- request smuggling ------------------------------------------------------------------------
    def test_content_length_with_transfer_encoding_smuggling(self):
        smuggled = b"GET /" + self.bucket.encode() + b"/secret.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        variants = [
            b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
            b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
            b"Content-Length: 4\r\nContent-Length: 40\r\n",
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
            b"Transfer-Encoding: chunked, identity\r\n",
            b"Transfer-Encoding: xchunked\r\n",
            b"Content-Length: +4\r\n",
            b"Content-Length: 0x4\r\n",
            b"Content-Length: 4 4\r\n",
        ]
        for v in variants:
            with self.subTest(headers=v):
                req = (b"POST /" + self.bucket.encode() + b"?delete HTTP/1.1\r\nHost: x\r\n" + v +
                       b"\r\n0\r\n\r\n" + smuggled)
                out = self.raw(req)
                self.assertTrue(out.startswith(b"HTTP/1.1 400"), out[:300])
                # exactly one response, then the connection is closed: the smuggled GET never runs
                self.assertEqual(out.count(b"HTTP/1.1 "), 1, out[:600])
        # HTTP/1.0 with Transfer-Encoding
        out = self.raw(b"PUT /" + self.bucket.encode() + b"/te10 HTTP/1.0\r\nHost: x\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n" + smuggled)
        self.assertTrue(out.startswith(b"HTTP/1.1 400"), out[:300])
        self.assertEqual(out.count(b"HTTP/1.1 "), 1, out[:600])
        self.assertTrue(self.daemon.alive)

    # -- oversized --------------------------------------------------------------------------------
    def test_oversized_request_line_and_header_count(self):
        cases = {
            "request line": b"GET /" + self.bucket.encode() + b"/" + b"a" * 70000 +
                            b" HTTP/1.1\r\nHost: x\r\n\r\n",
            "many headers": b"GET / HTTP/1.1\r\nHost: x\r\n" +
                            b"".join(b"x-h%d: v\r\n" % i for i in range(5000)) + b"\r\n",
            "one long value": b"GET / HTTP/1.1\r\nHost: x\r\nx-a: " + b"v" * (1 << 20) + b"\r\n\r\n",
        }
        for name, req in cases.items():
            with self.subTest(case=name):
                s = self.daemon.raw_socket()
                try:
                    try:
                        s.sendall(req)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # answered and closed before all was sent
                    resp = read_raw_http_response(s)
                finally:
                    s.close()
                self.assertIn(resp.status, (400, 414, 431), resp)
        self.assertEqual(self.s3.get_object(Bucket=self.bucket, Key="secret.txt")["Body"].read(),
                         b"for tenant dev only")

    # -- a client that goes away mid-upload --------------------------------------------------------
    def test_disconnect_mid_upload_stores_nothing_and_leaks_nothing(self):
        pid = self.daemon.proc.pid
        tmp_dir = os.path.join(self.daemon.data_dir, "tmp")
        # warm up: the pools, the catalog connections (its reader pool may still grow later, which
        # new_descriptors() allows for)
        self.s3.put_object(Bucket=self.bucket, Key="warm", Body=b"w" * 100000)
        before = settled_fd_table(pid)
        for i in range(5):
            key = f"half-{i}"
            req = self.daemon.sign("PUT", f"/{self.bucket}/{key}", payload_hash="UNSIGNED-PAYLOAD")
            head = (f"PUT {req.target} HTTP/1.1\r\n" +
                    "".join(f"{k}: {v}\r\n" for k, v in req.headers.items()) +
                    f"Content-Length: {10 * 1024 * 1024}\r\n\r\n").encode()
            s = self.daemon.raw_socket()
            s.sendall(head + b"z" * (3 * 1024 * 1024 + i * 1000))
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()   # odd rounds: RST; even rounds: FIN
        deadline = time.monotonic() + 10
        while True:
            # Read first: a connection still in the accept queue has no descriptor yet, so only once
            # the queue is empty does a clean table mean torn down rather than not served yet.
            queued = accept_queue_length(self.daemon.port)
            after = fd_table(pid)
            # Compared by target, not by count: a leaked connection must not hide behind a
            # descriptor that happened to close meanwhile.
            left_open = new_descriptors(before, after, self.daemon.data_dir)
            tmp_left = os.listdir(tmp_dir)
            if (queued == 0 and not left_open and not tmp_left) or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        self.assertEqual(queued, 0, "connections the daemon never accepted")
        self.assertEqual(left_open, {}, f"descriptors left open\nbefore:\n"
                         f"{format_fd_table(before)}\nafter:\n{format_fd_table(after)}")
        self.assertEqual(tmp_left, [], "temporary blob files left behind")
        for i in range(5):
            self.assertKeyAbsent(self.bucket, f"half-{i}")
        self.assertTrue(self.daemon.alive)


class SlowlorisTest(unittest.TestCase):
    """A daemon with a 2-second read timeout: connections that trickle their header are cut, and
    a legitimate client is served while they hang on."""

    def test_slowloris_connections_are_cut_and_others_served(self):
        cfg_dir = os.path.join("/tmp", f"coffre-slowloris-{uuid.uuid4().hex[:8]}")
        os.makedirs(cfg_dir)
        cfg = os.path.join(cfg_dir, "coffre.json")
        with open(cfg, "w") as f:
            json.dump({"development": True, "create_root_key": True, "create_dev_tenant": True,
                       "read_timeout_seconds": READ_TIMEOUT, "idle_timeout_seconds": READ_TIMEOUT}, f)
        try:
            with Daemon(extra_args=["--config", cfg]) as d:
                s3 = d.client()
                s3.create_bucket(Bucket="slow")
                socks = []
                for _ in range(40):
                    s = d.raw_socket(timeout=30)
                    s.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n")
                    socks.append(s)
                stop = threading.Event()

                def trickle():
                    while not stop.is_set():
                        for s in socks:
                            try:
                                s.sendall(b"x")
                            except OSError:
                                pass
                        stop.wait(0.5)
                t = threading.Thread(target=trickle, daemon=True)
                t.start()
                try:
                    start = time.monotonic()
                    s3.put_object(Bucket="slow", Key="k", Body=b"served")
                    self.assertEqual(s3.get_object(Bucket="slow", Key="k")["Body"].read(), b"served")
                    self.assertLess(time.monotonic() - start, 5)
                    # every trickling connection is closed within the read timeout (+ margin),
                    # although it keeps sending a byte every half second
                    deadline = time.monotonic() + READ_TIMEOUT * 3 + 5
                    open_socks = set(range(len(socks)))
                    while open_socks and time.monotonic() < deadline:
                        for i in list(open_socks):
                            socks[i].setblocking(False)
                            try:
                                data = socks[i].recv(4096)
                                if not data or b"HTTP/1.1" in data:
                                    open_socks.discard(i)
                            except BlockingIOError:
                                pass
                            except OSError:
                                open_socks.discard(i)
                        time.sleep(0.2)
                    self.assertEqual(open_socks, set(), "slowloris connections still open")
                finally:
                    stop.set()
                    t.join(5)
                    for s in socks:
                        s.close()
                self.assertTrue(d.alive)
        finally:
            import shutil
            shutil.rmtree(cfg_dir, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
