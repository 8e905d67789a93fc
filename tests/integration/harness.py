"""Integration-test harness for Coffre: starts the real `coffre serve` daemon on 127.0.0.1 with
port 0 in a temporary data directory, and gives tests boto3 clients, the aws CLI, a raw SigV4
signer (to send hand-crafted and malformed requests over http.client or a bare socket) and
presigned-URL helpers.

Only the standard library, boto3/botocore and the aws CLI are used (no pytest).
The binary comes from $COFFRE_BINARY, else build/coffre at the top of the checkout.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import xml.etree.ElementTree as ET
import zlib
from typing import Iterable, Iterator

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REGION = "us-east-1"
START_TIMEOUT = float(os.environ.get("COFFRE_START_TIMEOUT", "30"))
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MiB = 1024 * 1024
SEGMENT = 65536


def xml_child(el, name):
    """The child element `name` of an S3 XML element, with or without the S3 namespace."""
    c = el.find(S3_NS + name)
    return el.find(name) if c is None else c


def child_text(el, name):
    """The text of the child element `name` ("" when empty), or None when there is none."""
    c = xml_child(el, name)
    return None if c is None else (c.text or "")


def coffre_binary() -> str:
    path = os.environ.get("COFFRE_BINARY") or os.path.join(REPO_ROOT, "build", "coffre")
    return os.path.abspath(path)


# --------------------------------------------------------------------------------------------
# Deterministic data
# --------------------------------------------------------------------------------------------

def gen_bytes(size: int, seed: int = 0) -> bytes:
    """`size` pseudo-random bytes, the same for the same seed."""
    return random.Random(seed).randbytes(size)


def gen_chunks(size: int, seed: int = 0, chunk: int = MiB) -> Iterator[bytes]:
    """Stream `size` deterministic bytes in chunks (never all in memory)."""
    rng = random.Random(seed)
    left = size
    while left > 0:
        n = min(chunk, left)
        yield rng.randbytes(n)
        left -= n


def write_file(path: str, size: int, seed: int = 0) -> str:
    """Write `size` deterministic bytes to `path`; return their SHA-256 hex."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for c in gen_chunks(size, seed):
            h.update(c)
            f.write(c)
    return h.hexdigest()


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for c in iter(lambda: f.read(MiB), b""):
            h.update(c)
    return h.hexdigest()


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def md5_hex(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def md5_b64(b: bytes) -> str:
    return base64.b64encode(hashlib.md5(b).digest()).decode()


def multipart_etag(part_payloads: Iterable[bytes]) -> str:
    digests = [hashlib.md5(p).digest() for p in part_payloads]
    return '"%s-%d"' % (hashlib.md5(b"".join(digests)).hexdigest(), len(digests))


def multipart_etag_file(path: str, part_size: int) -> str:
    digests = []
    with open(path, "rb") as f:
        while True:
            h = hashlib.md5()
            left = part_size
            while left > 0:
                c = f.read(min(MiB, left))
                if not c:
                    break
                h.update(c)
                left -= len(c)
            if left == part_size:
                break
            digests.append(h.digest())
            if left > 0:
                break
    return '"%s-%d"' % (hashlib.md5(b"".join(digests)).hexdigest(), len(digests))


# --- checksums (botocore computes CRC32C/CRC64NVME only with awscrt, which is not installed) ---

def _crc_table(poly: int, bits: int) -> list:
    table = []
    mask = (1 << bits) - 1
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c & mask)
    return table


_CRC32C_TABLE = _crc_table(0x82F63B78, 32)
_CRC64NVME_TABLE = _crc_table(0x9A6C9329AC4BC9B5, 64)


def _crc_reflected(data: bytes, table: list, bits: int) -> int:
    mask = (1 << bits) - 1
    c = mask
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ mask


def checksum_b64(algorithm: str, data: bytes) -> str:
    algorithm = algorithm.lower()
    if algorithm == "crc32":
        raw = (zlib.crc32(data) & 0xFFFFFFFF).to_bytes(4, "big")
    elif algorithm == "crc32c":
        raw = _crc_reflected(data, _CRC32C_TABLE, 32).to_bytes(4, "big")
    elif algorithm == "crc64nvme":
        raw = _crc_reflected(data, _CRC64NVME_TABLE, 64).to_bytes(8, "big")
    elif algorithm == "sha1":
        raw = hashlib.sha1(data).digest()
    elif algorithm == "sha256":
        raw = hashlib.sha256(data).digest()
    else:
        raise ValueError(algorithm)
    return base64.b64encode(raw).decode()


# Published check values ("123456789"), so a wrong table can't go unnoticed.
assert _crc_reflected(b"123456789", _CRC32C_TABLE, 32) == 0xE3069283
assert _crc_reflected(b"123456789", _CRC64NVME_TABLE, 64) == 0xAE8B14860A799888


# --------------------------------------------------------------------------------------------
# SigV4 by hand (for malformed / hand-crafted requests)
# --------------------------------------------------------------------------------------------

def uri_encode(s: str, safe: str = "") -> str:
    """AWS UriEncode: everything but A-Za-z0-9-_.~ (and `safe`) percent-encoded, UTF-8."""
    return urllib.parse.quote(s, safe="-_.~" + safe)


def amz_timestamp(when: _dt.datetime | None = None) -> str:
    when = when or _dt.datetime.now(_dt.timezone.utc)
    return when.strftime("%Y%m%dT%H%M%SZ")


def signing_key(secret: str, date: str, region: str = REGION, service: str = "s3") -> bytes:
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    k = hmac.new(k, region.encode(), hashlib.sha256).digest()
    k = hmac.new(k, service.encode(), hashlib.sha256).digest()
    return hmac.new(k, b"aws4_request", hashlib.sha256).digest()


def hmac_hex(key: bytes, msg: str) -> str:
    return hmac.new(key, msg.encode(), hashlib.sha256).hexdigest()


def canonical_query_string(query: list) -> str:
    pairs = sorted((uri_encode(k), uri_encode(v)) for k, v in query)
    return "&".join(f"{k}={v}" for k, v in pairs)


class SignedRequest:
    """A request signed with SigV4 (header auth). `path` is the decoded path, e.g. '/bucket/key'."""

    def __init__(self, method, path, query, headers, body, url_path, query_string):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.url_path = url_path
        self.query_string = query_string
        self.target = url_path + ("?" + query_string if query_string else "")
        self.signature = None
        self.signing_key = None
        self.scope = None
        self.timestamp = None


def sign_request(method: str, host: str, path: str, query: list | None = None,
                 headers: dict | None = None, body: bytes = b"", *, access_key: str,
                 secret_key: str, payload_hash: str | None = None,
                 when: _dt.datetime | None = None, region: str = REGION,
                 scope_date: str | None = None, sign_headers_extra: Iterable[str] = ()) -> SignedRequest:
    """Compute SigV4 for a request; return the request with Authorization, X-Amz-Date,
    X-Amz-Content-SHA256 and Host set. `payload_hash` defaults to the body's SHA-256."""
    query = list(query or [])
    headers = dict(headers or {})
    ts = amz_timestamp(when)
    date = scope_date or ts[:8]
    if payload_hash is None:
        payload_hash = hashlib.sha256(body).hexdigest()
    headers["Host"] = host
    headers["X-Amz-Date"] = ts
    headers["X-Amz-Content-SHA256"] = payload_hash
    lower = {k.lower(): " ".join(str(v).strip().split()) for k, v in headers.items()}
    to_sign = sorted(k for k in lower if k in ("host", "content-type", "content-md5")
                     or k.startswith("x-amz-") or k in sign_headers_extra)
    canonical_headers = "".join(f"{k}:{lower[k]}\n" for k in to_sign)
    signed_headers = ";".join(to_sign)
    url_path = uri_encode(path, safe="/")
    qs = canonical_query_string(query)
    creq = "\n".join([method, url_path, qs, canonical_headers, signed_headers, payload_hash])
    scope = f"{date}/{region}/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", ts, scope, hashlib.sha256(creq.encode()).hexdigest()])
    key = signing_key(secret_key, date, region)
    sig = hmac_hex(key, sts)
    headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                                f"SignedHeaders={signed_headers}, Signature={sig}")
    r = SignedRequest(method, path, query, headers, body, url_path, qs)
    r.signature, r.signing_key, r.scope, r.timestamp = sig, key, scope, ts
    return r


def presign_url(endpoint: str, method: str, path: str, *, access_key: str, secret_key: str,
                expires: int = 900, when: _dt.datetime | None = None,
                extra_query: list | None = None, region: str = REGION) -> str:
    """Presigned URL (query auth, UNSIGNED-PAYLOAD, only `host` signed) built by hand so that
    the signing time can be in the past."""
    u = urllib.parse.urlsplit(endpoint)
    host = u.netloc
    ts = amz_timestamp(when)
    scope = f"{ts[:8]}/{region}/s3/aws4_request"
    query = list(extra_query or []) + [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", f"{access_key}/{scope}"),
        ("X-Amz-Date", ts),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", "host"),
    ]
    url_path = uri_encode(path, safe="/")
    qs = canonical_query_string(query)
    creq = "\n".join([method, url_path, qs, f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"])
    sts = "\n".join(["AWS4-HMAC-SHA256", ts, scope, hashlib.sha256(creq.encode()).hexdigest()])
    sig = hmac_hex(signing_key(secret_key, ts[:8], region), sts)
    return f"{u.scheme}://{host}{url_path}?{qs}&X-Amz-Signature={sig}"


def botocore_sign(method: str, url: str, body: bytes = b"", headers: dict | None = None, *,
                  access_key: str, secret_key: str) -> AWSRequest:
    """Sign with botocore's own SigV4 implementation (the reference signer)."""
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    req.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    SigV4Auth(Credentials(access_key, secret_key), "s3", REGION).add_auth(req)
    return req


# --- aws-chunked bodies ------------------------------------------------------------------------

def chunk_string_to_sign(ts: str, scope: str, prev_sig: str, chunk: bytes) -> str:
    return "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", ts, scope, prev_sig, EMPTY_SHA256,
                      hashlib.sha256(chunk).hexdigest()])


def aws_chunked_signed_body(data: bytes, seed: SignedRequest, chunk_size: int = 65536,
                            corrupt_chunk: int | None = None) -> bytes:
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD body, chunk signatures chained from the seed signature.
    If `corrupt_chunk` is an index, that chunk's signature is altered (one hex digit flipped)."""
    out = []
    prev = seed.signature
    chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    for i, c in enumerate(chunks):
        sig = hmac_hex(seed.signing_key, chunk_string_to_sign(seed.timestamp, seed.scope, prev, c))
        prev = sig
        wire_sig = sig
        if corrupt_chunk is not None and i == corrupt_chunk:
            wire_sig = ("0" if sig[0] != "0" else "1") + sig[1:]
        out.append(b"%x;chunk-signature=%s\r\n" % (len(c), wire_sig.encode()) + c + b"\r\n")
    return b"".join(out)


def aws_chunked_encoded_length(size: int, chunk_size: int = 65536) -> int:
    n = 0
    sizes = [chunk_size] * (size // chunk_size) + ([size % chunk_size] if size % chunk_size else []) + [0]
    for s in sizes:
        n += len(b"%x;chunk-signature=" % s) + 64 + 2 + s + 2
    return n


def aws_chunked_trailer_body(data: bytes, trailer_name: str, trailer_value: str,
                             chunk_size: int = 65536) -> bytes:
    """STREAMING-UNSIGNED-PAYLOAD-TRAILER body: unsigned chunks then a checksum trailer."""
    out = []
    for i in range(0, len(data), chunk_size):
        c = data[i:i + chunk_size]
        out.append(b"%x\r\n" % len(c) + c + b"\r\n")
    out.append(b"0\r\n" + f"{trailer_name}:{trailer_value}\r\n\r\n".encode())
    return b"".join(out)


# --------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------

class RawResponse:
    def __init__(self, status: int, reason: str, headers: list, body: bytes):
        self.status = status
        self.reason = reason
        self.header_list = headers
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def xml(self):
        return ET.fromstring(self.body) if self.body else None

    @property
    def error_code(self):
        return xml_error_code(self.body)

    def __repr__(self):
        return f"<RawResponse {self.status} {self.reason} {self.body[:600]!r}>"


def xml_error_code(body: bytes):
    if not body:
        return None
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    el = root.find("Code")
    if el is None:
        el = root.find(S3_NS + "Code")
    return el.text if el is not None else None


def xml_find_all_text(body: bytes, tag: str) -> list:
    root = ET.fromstring(body)
    return [e.text or "" for e in root.iter() if e.tag == tag or e.tag == S3_NS + tag]


_readers = {}


def read_raw_http_response(sock: socket.socket, timeout: float = 15.0,
                           method: str = "GET") -> RawResponse | None:
    """Read one HTTP/1.1 response from a bare socket (None if the peer closed or reset without
    answering). Successive calls on one socket share a buffer, so pipelined answers are kept."""
    sock.settimeout(timeout)
    f = _readers.get(id(sock))
    if f is None or f.closed:
        f = _readers[id(sock)] = sock.makefile("rb")
    try:
        line = f.readline(65537)
        while line in (b"\r\n", b"\n"):
            line = f.readline(65537)
        if not line:
            return None
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        while True:
            h = f.readline(65537)
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers.append((k.strip(), v.strip()))
        hd = {k.lower(): v for k, v in headers}
        body = b""
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            pass
        elif "chunked" in hd.get("transfer-encoding", "").lower():
            while True:
                size = int(f.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while f.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += f.read(size)
                f.readline()
        elif "content-length" in hd:
            body = f.read(int(hd["content-length"]))
        else:
            body = f.read()
        return RawResponse(status, reason, headers, body)
    except (ConnectionResetError, BrokenPipeError):
        return None


def _force_trailer_checksum(model=None, params=None, **kwargs):
    """before-call hook: move a header checksum to a trailer, as botocore does over https."""
    algo = (params or {}).get("context", {}).get("checksum", {}).get("request_algorithm")
    if isinstance(algo, dict) and algo.get("in") == "header" and model.has_streaming_input:
        algo["in"] = "trailer"


# --------------------------------------------------------------------------------------------
# The daemon
# --------------------------------------------------------------------------------------------

class DaemonError(RuntimeError):
    pass


# When set (by gateway_suite.py), a JSON "storage" config object: every Daemon started without a
# --config of its own keeps its blobs in that upstream bucket.
GATEWAY_STORAGE_ENV = "COFFRE_TEST_GATEWAY_STORAGE"


class Daemon:
    """`with Daemon() as d:` starts `coffre serve --data-dir TMP/data --listen 127.0.0.1:0`,
    waits for `listening on 127.0.0.1:PORT`, reads dev-credentials.json; stop() sends SIGTERM and
    checks exit code 0."""

    def __init__(self, binary: str | None = None, extra_args: Iterable[str] = (),
                 tmp: str | None = None):
        """`tmp`: reuse an existing temporary directory (and so its data dir), e.g. to restart."""
        self.binary = binary or coffre_binary()
        self.extra_args = list(extra_args)
        self.tmp = tmp
        self.data_dir = None
        self.proc = None
        self.port = None
        self.endpoint = None
        self.credentials = None
        self.stdout_lines = []
        self.exit_code = None
        self._stderr_path = None
        self._stdout_thread = None
        self._listening = threading.Event()

    # -- lifecycle --
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.stop(check=exc_type is None)
        finally:
            self.cleanup()
        return False

    def start(self):
        if not os.path.isfile(self.binary) or not os.access(self.binary, os.X_OK):
            raise DaemonError(f"coffre binary not found or not executable: {self.binary} "
                              "(set COFFRE_BINARY)")
        if self.tmp is None:
            self.tmp = tempfile.mkdtemp(prefix="coffre-it-")
        self.data_dir = os.path.join(self.tmp, "data")
        self.home = os.path.join(self.tmp, "home")
        os.makedirs(self.home, exist_ok=True)
        n = 0
        while os.path.exists(os.path.join(self.tmp, f"daemon-{n}.stderr")):
            n += 1
        self._stderr_path = os.path.join(self.tmp, f"daemon-{n}.stderr")
        extra_args = list(self.extra_args)
        if os.environ.get(GATEWAY_STORAGE_ENV) and "--config" not in extra_args:
            extra_args += ["--config", self._gateway_config(json.loads(os.environ[GATEWAY_STORAGE_ENV]))]
        cmd = [self.binary, "serve", "--data-dir", self.data_dir, "--listen", "127.0.0.1:0", *extra_args]
        self._stderr_file = open(self._stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._stderr_file, env=self._env())
        self._stdout_thread = threading.Thread(target=self._pump_stdout, daemon=True)
        self._stdout_thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._listening.wait(0.05):
            if self.proc.poll() is not None:
                self._stdout_thread.join(2)
                raise DaemonError(f"coffre serve exited with {self.proc.returncode} before "
                                  f"listening\n{self.diagnostics()}")
            if time.monotonic() > deadline:
                self.stop(check=False)
                raise DaemonError(f"coffre serve did not print 'listening on' within "
                                  f"{START_TIMEOUT}s\n{self.diagnostics()}")
        self.endpoint = f"http://127.0.0.1:{self.port}"
        cred_path = os.path.join(self.data_dir, "dev-credentials.json")
        for _ in range(100):
            if os.path.exists(cred_path):
                break
            time.sleep(0.05)
        with open(cred_path) as f:
            self.credentials = json.load(f)
        return self

    def _gateway_config(self, storage: dict) -> str:
        """The embedded development config with `storage` (gateway_suite.py), under a prefix of
        this daemon's own, kept across restarts of the same temporary directory."""
        storage = dict(storage, prefix=storage.get("prefix", "") + os.path.basename(self.tmp) + "/")
        path = os.path.join(self.tmp, "gateway-config.json")
        with open(path, "w") as f:
            json.dump({"development": True, "create_root_key": True, "create_dev_tenant": True,
                       "storage": storage}, f)
        return path

    def _env(self):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("AWS_"):
                del env[k]
        return env

    def _pump_stdout(self):
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stdout_lines.append(line)
            if not self._listening.is_set() and "listening on " in line:
                addr = line.split("listening on ", 1)[1].strip().split()[0]
                host, _, port = addr.rpartition(":")
                self.port = int(port)
                self._listening.set()
        self.proc.stdout.close()

    def stop(self, check: bool = True, timeout: float = 20.0):
        if self.proc is None or self.exit_code is not None:
            return self.exit_code
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                self.exit_code = self.proc.returncode
                self._stderr_file.close()
                if check:
                    raise DaemonError(f"coffre serve did not stop within {timeout}s of SIGTERM\n"
                                      f"{self.diagnostics()}")
                return self.exit_code
        self.exit_code = self.proc.returncode
        if self._stdout_thread:
            self._stdout_thread.join(5)
        self._stderr_file.close()
        if check and self.exit_code != 0:
            raise DaemonError(f"coffre serve exited with {self.exit_code} after SIGTERM "
                              f"(expected 0)\n{self.diagnostics()}")
        return self.exit_code

    def cleanup(self):
        if self.tmp and os.environ.get("COFFRE_KEEP_TMP") != "1":
            shutil.rmtree(self.tmp, ignore_errors=True)

    def stderr_tail(self, n: int = 60) -> str:
        try:
            with open(self._stderr_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 16384))
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""

    def diagnostics(self) -> str:
        return ("---- coffre stdout ----\n" + "\n".join(self.stdout_lines[-30:]) +
                "\n---- coffre stderr (tail) ----\n" + self.stderr_tail())

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def access_key(self) -> str:
        return self.credentials["access_key_id"]

    @property
    def secret_key(self) -> str:
        return self.credentials["secret_access_key"]

    # -- admin CLI --
    def run_cli(self, *args, check=True, timeout=60) -> subprocess.CompletedProcess:
        cmd = [self.binary, *args]
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                           env=self._env())
        if check and p.returncode != 0:
            raise DaemonError(f"{cmd} exited {p.returncode}\nstdout: {p.stdout!r}\n"
                              f"stderr: {p.stderr!r}")
        return p

    def admin_token_file(self, name: str) -> str:
        """Creates an admin credential and writes its token to a mode-0600 file; returns its path."""
        p = self.run_cli("admin-credential", "create", "--role", "admin", name, "--json", "--data-dir",
                         self.data_dir)
        path = os.path.join(self.tmp, name + ".token")
        with open(path, "w") as f:
            f.write(json.loads(p.stdout)["token"] + "\n")
        os.chmod(path, 0o600)
        return path

    def granted_approval(self, requester: str, approver: str, *request) -> str:
        """A dual-control approval of `request` (OPERATION TENANT ... as `coffre approval request`
        takes them) asked for with `requester`'s token file and granted with `approver`'s."""
        p = self.run_cli("approval", "request", *request, "--token-file", requester, "--json", "--data-dir",
                         self.data_dir)
        approval = json.loads(p.stdout)["id"]
        self.run_cli("approval", "approve", approval, "--token-file", approver, "--data-dir", self.data_dir)
        return approval

    def create_tenant(self, name: str) -> dict:
        p = self.run_cli("tenant", "create", name, "--data-dir", self.data_dir, "--json")
        try:
            creds = json.loads(p.stdout)
        except ValueError:
            raise DaemonError(f"tenant create printed no JSON: {p.stdout!r} {p.stderr!r}")
        return creds

    # -- boto3 --
    def client(self, access_key: str | None = None, secret_key: str | None = None, *,
               checksum: str = "when_supported", addressing_style: str = "path",
               endpoint: str | None = None, trailer: bool = False, **config_kwargs):
        """boto3 S3 client: SigV4, path style, no retries. `checksum` is botocore's
        request_checksum_calculation ('when_supported' is botocore's default, 'when_required').

        Over plain http botocore puts flexible checksums in a header; over https (what
        deployments use) it streams the body as STREAMING-UNSIGNED-PAYLOAD-TRAILER with the
        checksum in a trailer. `trailer=True` makes this client do exactly what botocore does over
        https, on our loopback http endpoint."""
        cfg = Config(signature_version="s3v4", region_name=REGION,
                     s3={"addressing_style": addressing_style},
                     retries={"total_max_attempts": 1, "mode": "standard"},
                     request_checksum_calculation=checksum,
                     response_checksum_validation="when_supported",
                     connect_timeout=10, read_timeout=120, **config_kwargs)
        session = boto3.session.Session()
        c = session.client("s3", endpoint_url=endpoint or self.endpoint,
                           aws_access_key_id=access_key or self.access_key,
                           aws_secret_access_key=secret_key or self.secret_key,
                           region_name=REGION, config=cfg)
        if trailer:
            c.meta.events.register("before-call.s3", _force_trailer_checksum)
        return c

    def client_for(self, creds: dict, **kw):
        return self.client(creds["access_key_id"], creds["secret_access_key"], **kw)

    # -- aws CLI --
    def aws(self, *args, creds: dict | None = None, check: bool = True, timeout: float = 300,
            cwd: str | None = None) -> subprocess.CompletedProcess:
        creds = creds or self.credentials
        env = self._env()
        env.update({
            "AWS_ACCESS_KEY_ID": creds["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": creds["secret_access_key"],
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.path.join(self.home, "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(self.home, "aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_MAX_ATTEMPTS": "1",
            "HOME": self.home,
        })
        cmd = ["aws", "--endpoint-url", self.endpoint, *args]
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                           env=env, cwd=cwd)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}\nstdout: "
                                 f"{p.stdout.decode(errors='replace')[-3000:]}\nstderr: "
                                 f"{p.stderr.decode(errors='replace')[-3000:]}\n"
                                 f"{self.diagnostics()}")
        return p

    # -- raw HTTP --
    def connection(self, timeout: float = 60) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def sign(self, method, path, query=None, headers=None, body=b"", creds=None, **kw):
        creds = creds or self.credentials
        return sign_request(method, self.host, path, query, headers, body,
                            access_key=creds["access_key_id"],
                            secret_key=creds["secret_access_key"], **kw)

    def send(self, req: SignedRequest, conn: http.client.HTTPConnection | None = None,
             body: bytes | None = None) -> RawResponse:
        """Send a SignedRequest (or anything with method/target/headers/body) on `conn` (a new
        connection if None; that one is closed afterwards)."""
        own = conn is None
        conn = conn or self.connection()
        try:
            payload = req.body if body is None else body
            conn.putrequest(req.method, req.target, skip_host=True, skip_accept_encoding=True)
            hdrs = dict(req.headers)
            if not any(k.lower() == "content-length" for k in hdrs) and \
                    not any(k.lower() == "transfer-encoding" for k in hdrs):
                if payload or req.method in ("PUT", "POST"):
                    hdrs["Content-Length"] = str(len(payload))
            for k, v in hdrs.items():
                conn.putheader(k, v)
            conn.endheaders()
            if payload:
                try:
                    conn.send(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the server answered early and closed: read that answer
            resp = conn.getresponse()
            data = resp.read()
            return RawResponse(resp.status, resp.reason, resp.getheaders(), data)
        finally:
            if own:
                conn.close()

    def request(self, method, path, query=None, headers=None, body=b"", conn=None, creds=None,
                **kw) -> RawResponse:
        """Sign (SigV4, signed payload unless payload_hash= is given) and send."""
        return self.send(self.sign(method, path, query, headers, body, creds=creds, **kw), conn)

    def unsigned(self, method, target, headers=None, body=b"", conn=None) -> RawResponse:
        class _R:
            pass
        r = _R()
        r.method, r.target, r.body = method, target, body
        r.headers = {"Host": self.host, **(headers or {})}
        return self.send(r, conn)

    def raw_socket(self, timeout: float = 15.0) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return s


# --------------------------------------------------------------------------------------------
# unittest base class
# --------------------------------------------------------------------------------------------

_bucket_counter = 0


def unique_bucket(prefix: str = "b") -> str:
    global _bucket_counter
    _bucket_counter += 1
    return f"{prefix}-{os.getpid()}-{_bucket_counter}-{random.randrange(10**6):06d}"[:63]


PACK_RECORD_HEADER = 64


class StoredBlob:
    """Where one blob's bytes rest in a data directory: a file of its own, or a record of a pack
    (docs/OPERATIONS.md, "What a data directory holds"). For tests that damage stored data the way
    bit rot or an intruder would: read(), write() (a record's length field follows the bytes, as a
    file's size does) and hide()/unhide() (a file renamed away, a record's header made unreadable)."""

    def __init__(self, data_dir: str, blob_id: str):
        self.blob_id = blob_id
        self.file = os.path.join(data_dir, "blobs", blob_id[:2], blob_id[2:4], blob_id)
        self.record = None          # (pack path, record offset, capacity) when in a pack
        if len(blob_id) == 48 and not os.path.exists(self.file):
            pack = os.path.join(data_dir, "packs", blob_id[32:40] + ".pack")
            offset = int(blob_id[40:48], 16) * 4096
            with open(pack, "rb") as f:
                f.seek(offset)
                header = f.read(PACK_RECORD_HEADER)
            assert header[:8] == b"CoffrePk" and header[40:64].hex() == blob_id, "no record for " + blob_id
            self.record = (pack, offset, int.from_bytes(header[16:24], "big"))

    @property
    def in_pack(self) -> bool:
        return self.record is not None

    def room(self) -> int:
        """How long the blob may grow in place."""
        return self.record[2] - PACK_RECORD_HEADER if self.record else 1 << 40

    def read(self) -> bytes:
        if not self.record:
            with open(self.file, "rb") as f:
                return f.read()
        pack, offset, _ = self.record
        with open(pack, "rb") as f:
            f.seek(offset + 24)
            length = int.from_bytes(f.read(8), "big")
            f.seek(offset + PACK_RECORD_HEADER)
            return f.read(length)

    def write(self, data: bytes):
        """Replaces the blob's bytes; a record's header is rewritten to match, check included."""
        if not self.record:
            with open(self.file, "wb") as f:
                f.write(data)
            return
        pack, offset, _ = self.record
        assert len(data) <= self.room(), "the record has no room for that"
        with open(pack, "r+b") as f:
            f.seek(offset)
            header = bytearray(f.read(PACK_RECORD_HEADER))
            header[24:32] = len(data).to_bytes(8, "big")
            header[12:16] = bytes(4)
            check = 2166136261
            for b in header:
                check = ((check ^ b) * 16777619) & 0xFFFFFFFF
            header[12:16] = check.to_bytes(4, "big")
            f.seek(offset)
            f.write(header + data)

    def hide(self):
        if not self.record:
            os.rename(self.file, self.file + ".away")
            return
        with open(self.record[0], "r+b") as f:
            f.seek(self.record[1])
            f.write(b"Hidden!!")

    def unhide(self):
        if not self.record:
            os.rename(self.file + ".away", self.file)
            return
        with open(self.record[0], "r+b") as f:
            f.seek(self.record[1])
            f.write(b"CoffrePk")


def stored_blob_files(data_dir: str) -> list[tuple[str, int]]:
    """Every file where blobs rest, with the bytes it holds on disk (a pack's holes hold none)."""
    out = []
    for area in ("blobs", "packs"):
        for root, _, names in os.walk(os.path.join(data_dir, area)):
            for n in names:
                path = os.path.join(root, n)
                out.append((path, os.stat(path).st_blocks * 512))
    return sorted(out)


class CoffreTestCase(unittest.TestCase):
    """One daemon per test class (started in setUpClass, SIGTERM + exit 0 checked in
    tearDownClass). The daemon's stderr tail is printed when a test fails."""

    daemon: Daemon = None
    maxDiff = 4000
    # Config file fields for the class's daemon (with the dev conveniences and the root key in
    # data_dir, "development"); None: the embedded one.
    daemon_config: dict | None = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls.daemon_config is None:
            d = Daemon()
        else:
            tmp = tempfile.mkdtemp(prefix="coffre-it-")
            path = os.path.join(tmp, "coffre.json")
            with open(path, "w") as f:
                json.dump({"development": True, "create_root_key": True, "create_dev_tenant": True,
                           **cls.daemon_config}, f)
            d = Daemon(extra_args=["--config", path], tmp=tmp)
        cls.daemon = d
        # a class cleanup runs even when setUpClass fails half-way (tearDownClass would not)
        cls.addClassCleanup(cls._stop_daemon)
        try:
            d.start()
        except BaseException:
            d.stop(check=False)
            raise
        cls.s3 = cls.daemon.client()
        cls.s3_req = cls.daemon.client(checksum="when_required")
        cls.s3_tr = cls.daemon.client(trailer=True)
        # botocore's default (checksum header over http), when_required (no checksum), and what
        # botocore sends over https (STREAMING-UNSIGNED-PAYLOAD-TRAILER + Transfer-Encoding)
        cls.client_variants = [("when_supported", cls.s3), ("when_required", cls.s3_req),
                               ("trailer", cls.s3_tr)]

    @classmethod
    def _stop_daemon(cls):
        d = cls.daemon
        cls.daemon = None
        if d is not None:
            try:
                d.stop(check=True)   # SIGTERM; exit code 0 expected
            finally:
                d.cleanup()

    def run(self, result=None):
        # Print the daemon's stderr tail when this test fails or errors.
        before = (len(result.failures), len(result.errors)) if result is not None else None
        out = super().run(result)
        if result is not None and before is not None and self.daemon is not None:
            if (len(result.failures), len(result.errors)) != before:
                sys.stderr.write(f"\n==== {self.id()} failed; daemon diagnostics ====\n"
                                 f"{self.daemon.diagnostics()}\n"
                                 f"(daemon alive: {self.daemon.alive})\n")
        return out

    # -- helpers --
    def new_bucket(self, client=None, prefix: str = "b") -> str:
        name = unique_bucket(prefix)
        (client or self.s3).create_bucket(Bucket=name)
        return name

    def get_bytes(self, bucket, key, client=None, **kw) -> bytes:
        return (client or self.s3).get_object(Bucket=bucket, Key=key, **kw)["Body"].read()

    def assertClientError(self, code, status, fn, *args, **kwargs):
        """Call fn, expect a ClientError with this S3 code (None: don't check) and status."""
        with self.assertRaises(ClientError, msg=f"expected {code}/{status}") as cm:
            fn(*args, **kwargs)
        err = cm.exception.response
        got_status = err.get("ResponseMetadata", {}).get("HTTPStatusCode")
        got_code = err.get("Error", {}).get("Code")
        self.assertEqual(got_status, status, f"HTTP status; error={err.get('Error')}")
        if code is not None:
            self.assertEqual(got_code, code, f"error code; error={err.get('Error')}")
        return cm.exception

    def assertClientErrorIn(self, allowed, fn, *args, **kwargs):
        """Like assertClientError, for places where S3 itself answers one of several
        (code, status) pairs; `allowed` is a list of such pairs."""
        with self.assertRaises(ClientError, msg=f"expected one of {allowed}") as cm:
            fn(*args, **kwargs)
        err = cm.exception.response
        got = (err.get("Error", {}).get("Code"),
               err.get("ResponseMetadata", {}).get("HTTPStatusCode"))
        self.assertIn(got, [tuple(a) for a in allowed], f"error={err.get('Error')}")
        return cm.exception

    def assertS3Error(self, resp: RawResponse, code: str | None, status: int | Iterable[int]):
        statuses = (status,) if isinstance(status, int) else tuple(status)
        self.assertIn(resp.status, statuses, f"HTTP status of {resp!r}")
        if code is not None:
            self.assertEqual(resp.error_code, code, f"XML <Code> of {resp!r}")

    def assertKeyAbsent(self, bucket, key, client=None):
        self.assertClientError(None, 404, (client or self.s3).head_object, Bucket=bucket, Key=key)

    def assertObjectEquals(self, bucket, key, data: bytes, client=None):
        got = self.get_bytes(bucket, key, client)
        self.assertEqual(len(got), len(data), f"length of {bucket}/{key}")
        self.assertEqual(sha256(got), sha256(data), f"SHA-256 of {bucket}/{key}")


def http_date(t: _dt.datetime) -> str:
    return t.astimezone(_dt.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")


class S3cmdTestCase(CoffreTestCase):
    """A CoffreTestCase with s3cmd (a Debian python3 program) configured for its daemon: the
    endpoint and the key in a config file of its own; `s3cmd_config` adds lines to its [default]
    section, `s3cmd_options` options to every command. self.tmp is a directory for the test's files."""

    s3cmd_config = ""
    s3cmd_options: tuple = ()

    @classmethod
    def setUpClass(cls):
        if shutil.which("s3cmd") is None:
            raise unittest.SkipTest("s3cmd is not installed (make deps installs it)")
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="coffre-s3cmd-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        cls.cfg = os.path.join(cls.tmp, "s3cfg")
        host = cls.daemon.endpoint.split("://", 1)[1]
        with open(cls.cfg, "w") as f:
            f.write(f"""[default]
access_key = {cls.daemon.access_key}
secret_key = {cls.daemon.secret_key}
host_base = {host}
host_bucket = {host}
use_https = False
""" + cls.s3cmd_config)

    def s3cmd(self, *args):
        p = subprocess.run(["/usr/bin/python3", shutil.which("s3cmd"), "-c", self.cfg, *self.s3cmd_options, *args],
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            self.fail(f"s3cmd {' '.join(args)} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
        return p
