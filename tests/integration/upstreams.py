"""S3 upstreams that integration tests start themselves on 127.0.0.1, for Coffre's gateway mode
(Coffre storing its encrypted blobs in another S3 service's bucket):

- `CoffreUpstream`: a second, plain Coffre daemon with a tenant of its own (about a second to
  start).
- `CephRgw`: Ceph's RADOS Gateway from Debian 12's packages (ceph-mon, ceph-mgr, ceph-osd,
  radosgw) on a throw-away single-node cluster: one monitor, one manager, one OSD keeping its
  objects in memory (memstore), all state and logs in a temporary directory.

Both are context managers with the same fields (endpoint, region, access_key, secret_key) and the
same `create_bucket()`, and each makes one bucket at start: `upstream` is that bucket as an
`Upstream`, the shape tests hand to whatever talks to an upstream. Nothing here ever listens on or
connects to anything but 127.0.0.1.
"""

from __future__ import annotations

import ctypes
import dataclasses
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import uuid

import boto3
from botocore.config import Config

from harness import REGION, Daemon, unique_bucket

CEPH_START_TIMEOUT = float(os.environ.get("COFFRE_CEPH_START_TIMEOUT", "120"))
# What CephRgw runs, from Debian 12's ceph-mon, ceph-mgr, ceph-osd and radosgw (Makefile: deps).
CEPH_PROGRAMS = ("monmaptool", "ceph-mon", "ceph-mgr", "ceph-osd", "ceph", "radosgw",
                 "radosgw-admin")


class UpstreamError(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class Upstream:
    """One bucket on an S3 service, with the credentials that reach it."""
    endpoint: str
    region: str
    bucket: str
    access_key: str
    secret_key: str

    def client(self):
        return s3_client(self.endpoint, self.region, self.access_key, self.secret_key)


def s3_client(endpoint: str, region: str, access_key: str, secret_key: str):
    """boto3 S3 client: SigV4, path-style addressing, no retries."""
    cfg = Config(signature_version="s3v4", region_name=region, s3={"addressing_style": "path"},
                 retries={"total_max_attempts": 1, "mode": "standard"},
                 connect_timeout=10, read_timeout=120)
    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=region,
                                          aws_access_key_id=access_key,
                                          aws_secret_access_key=secret_key, config=cfg)


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now, for programs that cannot listen on port 0 and say
    which port they got."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_ceph_programs() -> list[str]:
    return [p for p in CEPH_PROGRAMS if shutil.which(p) is None]


class DiagnosticsOnFailure:
    """Mixed into a TestCase before it: when one of its tests fails, `failure_diagnostics()` (the
    logs of the servers it started) goes to stderr beside the failure."""

    def failure_diagnostics(self) -> str:
        raise NotImplementedError

    def run(self, result=None):
        before = (len(result.failures), len(result.errors)) if result is not None else None
        out = super().run(result)
        if before is not None and (len(result.failures), len(result.errors)) != before:
            sys.stderr.write(f"\n==== {self.id()} failed ====\n{self.failure_diagnostics()}\n")
        return out


class _UpstreamServer:
    """What both upstreams share: credentials, an endpoint, buckets made on demand."""

    endpoint: str = None
    region: str = None
    access_key: str = None
    secret_key: str = None
    upstream: Upstream = None
    start_seconds: float = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        return False

    def client(self):
        return s3_client(self.endpoint, self.region, self.access_key, self.secret_key)

    def create_bucket(self, name: str | None = None) -> Upstream:
        name = name or unique_bucket("up")
        self.client().create_bucket(Bucket=name)
        return Upstream(self.endpoint, self.region, name, self.access_key, self.secret_key)


class CoffreUpstream(_UpstreamServer):
    """A plain Coffre daemon (harness.Daemon) with its own tenant and a bucket."""

    def __init__(self, tenant: str = "upstream"):
        self.tenant = tenant
        self.daemon = None

    def start(self):
        started = time.monotonic()
        self.daemon = Daemon()
        try:
            self.daemon.start()
            creds = self.daemon.create_tenant(self.tenant)
            self.endpoint = self.daemon.endpoint
            self.region = REGION
            self.access_key = creds["access_key_id"]
            self.secret_key = creds["secret_access_key"]
            self.upstream = self.create_bucket()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def stop(self):
        d, self.daemon = self.daemon, None
        if d is not None:
            try:
                d.stop(check=False)
            finally:
                d.cleanup()

    def diagnostics(self) -> str:
        return self.daemon.diagnostics() if self.daemon else ""


# With `auth none` the daemons need no keyrings. radosgw by default asks the monitor for a
# "secure" (encrypted) session, which only cephx can give, so the mon client mode is widened to
# crc. Pools have one replica on the one OSD (chooseleaf type 0: no separate hosts needed), few
# placement groups and no autoscaler; the full ratios and data-avail thresholds are relaxed so a
# busy disk never turns the throw-away cluster read-only.
_CEPH_CONF = """\
[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind msgr2 = true
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
mon warn on insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
run dir = {tmp}/run
crash dir = {tmp}/crash
admin socket = {tmp}/run/$name.asok
pid file = {tmp}/run/$name.pid
log file = {tmp}/log/$name.log
keyring = {tmp}/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon osd full ratio = .99
mon osd nearfull ratio = .99
mon osd backfillfull ratio = .99
osd failsafe full ratio = .99
mon data avail warn = 1
mon data avail crit = 0
paxos propose interval = 0.05
paxos min wait = 0.01

[mon]
mon data = {tmp}/mon.$id

[mgr]
mgr data = {tmp}/mgr.$id

[osd]
osd data = {tmp}/osd.$id
osd objectstore = memstore
memstore device bytes = {memstore_bytes}

[client.rgw]
rgw data = {tmp}/rgw
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
# What a delete or an overwrite frees goes back to the memstore within seconds, not after RGW's
# default two hours: a long run (the gateway benchmark) would otherwise fill it.
rgw gc obj min wait = 0
rgw gc processor period = 2
"""


def _die_with_parent():
    """Runs in the child before exec: the kernel kills it when the thread that started it ends,
    so a test run killed mid-way (a ctest timeout) leaves no Ceph daemon behind."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _random_key(length: int, alphabet: str) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


class CephRgw(_UpstreamServer):
    """`with CephRgw() as rgw:` a single-node Ceph cluster with radosgw (beast) on
    127.0.0.1:<free port>, an RGW user and a bucket. Runs as the current user; every daemon has a
    process group of its own, killed on stop, and the temporary directory goes with it (kept when
    COFFRE_KEEP_TMP=1). A failed start raises UpstreamError with the daemons' log tails."""

    def __init__(self, memstore_bytes: int = 1 << 30, start_timeout: float = CEPH_START_TIMEOUT):
        self.memstore_bytes = memstore_bytes
        self.start_timeout = start_timeout
        self.tmp = None
        self.conf = None
        self.procs = {}          # daemon name -> Popen
        self.rgw_port = None
        self.timings = {}        # start step -> seconds since start began
        self.started = None
        self.deadline = None

    # -- lifecycle --
    def start(self):
        missing = missing_ceph_programs()
        if missing:
            raise UpstreamError("Ceph programs missing: " + ", ".join(missing) +
                                " (`make deps` installs ceph-mon ceph-mgr ceph-osd radosgw)")
        self.started = time.monotonic()
        self.deadline = self.started + self.start_timeout
        self.tmp = tempfile.mkdtemp(prefix="coffre-ceph-")
        try:
            self._start_cluster()
        except BaseException as e:
            diagnostics = self.diagnostics()
            self.stop()
            if isinstance(e, Exception):
                raise UpstreamError(f"Ceph RGW did not start: {e}\n{diagnostics}") from e
            raise
        self.start_seconds = time.monotonic() - self.started
        return self

    def _start_cluster(self):
        for sub in ("run", "log", "crash", "rgw", "mon.a", "mgr.x", "osd.0"):
            os.makedirs(os.path.join(self.tmp, sub))
        fsid = str(uuid.uuid4())
        mon_port, self.rgw_port = free_loopback_port(), free_loopback_port()
        self.conf = os.path.join(self.tmp, "ceph.conf")
        with open(self.conf, "w") as f:
            f.write(_CEPH_CONF.format(fsid=fsid, mon_port=mon_port, rgw_port=self.rgw_port,
                                      tmp=self.tmp, memstore_bytes=self.memstore_bytes))
        monmap = os.path.join(self.tmp, "run", "monmap")
        self._run("monmaptool", "--create", "--fsid", fsid, "--addv", "a",
                  f"[v2:127.0.0.1:{mon_port}]", monmap)
        self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", monmap)
        self._spawn("mon.a", "ceph-mon", "-i", "a")
        self._mark("mon started")
        # The manager is not needed for RGW to serve; it starts beside the rest, unwaited for.
        self._spawn("mgr.x", "ceph-mgr", "-i", "x")
        # Registers OSD 0 (this waits for the monitor to form its quorum of one).
        osd_uuid = str(uuid.uuid4())
        osd_id = self._run("ceph", "--connect-timeout", str(self._left()), "osd", "new",
                           osd_uuid).strip()
        if osd_id != "0":
            raise UpstreamError(f"`ceph osd new` gave OSD id {osd_id!r}, expected 0")
        self._mark("osd registered")
        self._run("ceph-osd", "--mkfs", "-i", "0", "--osd-uuid", osd_uuid)
        self._spawn("osd.0", "ceph-osd", "-i", "0")
        self._mark("osd started")
        # radosgw creates its pools and zone on first start; it answers once they are ready.
        self._spawn("client.rgw", "radosgw", "-n", "client.rgw")
        self._wait_for_rgw()
        self._mark("rgw answers")
        self.endpoint = f"http://127.0.0.1:{self.rgw_port}"
        self.access_key = _random_key(20, string.ascii_uppercase + string.digits)
        self.secret_key = _random_key(40, string.ascii_letters + string.digits)
        self._run("radosgw-admin", "user", "create", "--uid", "coffre-tests",
                  "--display-name", "Coffre tests", "--access-key", self.access_key,
                  "--secret-key", self.secret_key)
        zonegroup = json.loads(self._run("radosgw-admin", "zonegroup", "get"))
        self.region = zonegroup.get("api_name") or zonegroup["name"]
        self._mark("user created")
        self.upstream = self.create_bucket()
        self._mark("bucket created")

    def stop(self):
        """Kills every daemon's process group (the cluster is thrown away, so no orderly
        shutdown is needed) and removes the temporary directory."""
        for name, proc in reversed(list(self.procs.items())):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self.procs = {}
        if self.tmp and os.environ.get("COFFRE_KEEP_TMP") != "1":
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = None

    # -- helpers --
    def _mark(self, step: str):
        self.timings[step] = round(time.monotonic() - self.started, 2)

    def _env(self):
        """Every Ceph program finds the cluster's configuration through CEPH_CONF."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CEPH_", "AWS_"))}
        env["CEPH_CONF"] = self.conf
        return env

    def _left(self) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise UpstreamError(f"not up within {self.start_timeout:.0f}s")
        return max(1, int(left))

    def _run(self, program: str, *args) -> str:
        cmd = [program, *args]
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=self._left(), env=self._env(), cwd=self.tmp,
                               preexec_fn=_die_with_parent)
        except subprocess.TimeoutExpired:
            raise UpstreamError(f"{' '.join(cmd)} did not finish in time") from None
        if p.returncode != 0:
            raise UpstreamError(f"{' '.join(cmd)} exited {p.returncode}\nstdout: "
                                f"{p.stdout.decode(errors='replace')[-2000:]}\nstderr: "
                                f"{p.stderr.decode(errors='replace')[-2000:]}")
        return p.stdout.decode()

    def _spawn(self, name: str, program: str, *args):
        """Starts a daemon in the foreground (-f: logs to its log file, no fork) in a process
        group of its own; its stdout and stderr go to log/<name>.out."""
        with open(os.path.join(self.tmp, "log", name + ".out"), "wb") as out:
            self.procs[name] = subprocess.Popen(
                [program, "-f", *args], stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, env=self._env(), cwd=self.tmp, start_new_session=True,
                preexec_fn=_die_with_parent)

    def _wait_for_rgw(self):
        while True:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise UpstreamError(f"{name} exited with {proc.returncode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.rgw_port, timeout=2)
                try:
                    conn.request("GET", "/")
                    conn.getresponse().read()
                    return
                finally:
                    conn.close()
            except OSError:
                pass
            self._left()
            time.sleep(0.2)

    def diagnostics(self, lines: int = 40) -> str:
        """The tail of every daemon's log and output, for a failed start or test."""
        if not self.tmp:
            return ""
        out = []
        log_dir = os.path.join(self.tmp, "log")
        for fname in sorted(os.listdir(log_dir)) if os.path.isdir(log_dir) else []:
            with open(os.path.join(log_dir, fname), "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 16384))
                tail = f.read().decode("utf-8", "replace").splitlines()[-lines:]
            out.append(f"---- {fname} (tail) ----\n" + "\n".join(tail))
        return "\n".join(out)
