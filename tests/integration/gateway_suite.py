"""The S3 protocol suites once more, with every daemon they start in gateway mode: its blobs in one
upstream bucket (upstreams.py), each daemon under a prefix of its own. What a client sees must not
depend on where the ciphertext rests, nor on which S3 implementation keeps it, so the suites run over
each upstream in turn: a second, plain Coffre daemon (needs nothing but the binary under test), then
Ceph's RADOS Gateway.

    python3 gateway_suite.py [--upstream coffre|ceph|all] [test_module ...]    (default: all, SUITES)

Exit status: 0 when every suite that ran passed, 1 when one failed or an upstream did not start, and
SKIPPED (77, ctest's SKIP_RETURN_CODE) when nothing ran: `--upstream ceph` without the Ceph programs.
Under `--upstream all` a missing Ceph is a printed skip beside the Coffre part's result. `make deps`
installs Ceph, so with CI=true its absence fails instead (as in test_upstreams.py).
"""

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
import unittest

from harness import GATEWAY_STORAGE_ENV
from upstreams import CephRgw, CoffreUpstream, missing_ceph_programs

# The files that exercise the S3 surface and find their daemons by harness.Daemon alone; the others
# look at the data directory's blob files or bring configurations of their own.
SUITES = ["test_objects", "test_multipart", "test_multipart_checksums", "test_buckets_list", "test_bad_input", "test_clients",
          "test_tagging", "test_versioning"]
# Coffre first: it starts in about a second and needs no Ceph.
UPSTREAMS = ("coffre", "ceph")
SKIPPED = 77


def new_server(name: str):
    if name == "coffre":
        return CoffreUpstream(tenant="gateway-suite")
    return CephRgw(memstore_bytes=3 << 30)


def upstream_keys(upstream) -> int:
    pages = upstream.client().get_paginator("list_objects_v2").paginate(Bucket=upstream.bucket)
    return sum(page.get("KeyCount", 0) for page in pages)


def run_over(name: str, names: list[str]) -> bool:
    """Starts the upstream `name`, runs the suites `names` with every daemon a gateway over its
    bucket, stops it. True when every test passed and the gateways did keep their blobs there."""
    started = time.monotonic()
    server = new_server(name)
    # Set only once the upstream is up: a CoffreUpstream is a harness.Daemon too, and one started
    # with the variable set would make itself a gateway over the bucket it is about to create.
    os.environ.pop(GATEWAY_STORAGE_ENV, None)
    server.start()
    try:
        upstream = server.upstream
        with tempfile.TemporaryDirectory(prefix="coffre-gateway-suite-") as tmp:
            secret = os.path.join(tmp, "upstream.secret")
            with open(secret, "w") as f:
                f.write(upstream.secret_key)
            os.chmod(secret, 0o600)
            os.environ[GATEWAY_STORAGE_ENV] = json.dumps({
                "backend": "s3", "endpoint": upstream.endpoint, "region": upstream.region,
                "bucket": upstream.bucket, "addressing_style": "path", "access_key_id": upstream.access_key,
                "secret_access_key_file": secret})
            try:
                print(f"{name} upstream up in {server.start_seconds:.1f}s at {upstream.endpoint}; "
                      f"running {names}", file=sys.stderr)
                suite = unittest.defaultTestLoader.loadTestsFromNames(names)
                result = unittest.TextTestRunner(verbosity=2).run(suite)
            finally:
                del os.environ[GATEWAY_STORAGE_ENV]
            if not result.wasSuccessful():
                print(f"{name} upstream:\n" + server.diagnostics(), file=sys.stderr)
            # Suites that pass with their daemons quietly in local mode would prove nothing here. Each
            # of SUITES leaves objects behind; a single test chosen by name may not.
            blobs = upstream_keys(upstream)
            print(f"{name} upstream bucket holds {blobs} blobs the gateways left", file=sys.stderr)
            if blobs == 0 and names == SUITES:
                print(f"FAILED: no gateway kept a blob over {name}", file=sys.stderr)
                return False
            return result.wasSuccessful()
    finally:
        server.stop()
        print(f"gateway suite over {name}: {time.monotonic() - started:.0f}s in all", file=sys.stderr)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", choices=(*UPSTREAMS, "all"), default="all",
                        help="which upstream the gateways keep their blobs in (default: each in turn)")
    parser.add_argument("modules", nargs="*", default=SUITES, metavar="test_module",
                        help=f"test modules, classes or methods for unittest (default: {' '.join(SUITES)})")
    args = parser.parse_args(argv)
    ran, failed = [], []
    for name in UPSTREAMS if args.upstream == "all" else (args.upstream,):
        if name == "ceph" and missing_ceph_programs():
            reason = f"Ceph programs missing: {missing_ceph_programs()} (`make test-deps` installs them)"
            if os.environ.get("CI") == "true":
                print(f"FAILED over ceph: {reason}, which CI (CI=true) must have", file=sys.stderr)
                failed.append(name)
            else:
                print(f"skipped over ceph: {reason}")
            continue
        ran.append(name)
        try:
            passed = run_over(name, args.modules)
        except Exception:  # an upstream that did not start, say: the other one still runs
            traceback.print_exc()
            passed = False
        if not passed:
            failed.append(name)
    if failed:
        print(f"FAILED over: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0 if ran else SKIPPED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
