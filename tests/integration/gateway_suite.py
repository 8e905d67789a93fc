"""The S3 protocol suites once more, with every daemon they start in gateway mode: its blobs in one
Ceph RGW bucket (upstreams.py), each daemon under a prefix of its own. What a client sees must not
depend on where the ciphertext rests.

    python3 gateway_suite.py [test_module ...]    (default: SUITES)
"""

import json
import os
import sys
import tempfile
import unittest

from harness import GATEWAY_STORAGE_ENV
from upstreams import CephRgw, missing_ceph_programs

# The files that exercise the S3 surface and find their daemons by harness.Daemon alone; the others
# look at the data directory's blob files or bring configurations of their own.
SUITES = ["test_objects", "test_multipart", "test_buckets_list", "test_bad_input", "test_clients"]


def main(names: list[str]) -> int:
    missing = missing_ceph_programs()
    if missing:
        print(f"skipped: Ceph programs missing: {missing} (`make test-deps` installs them)")
        return 0
    server = CephRgw(memstore_bytes=3 << 30)
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
            print(f"Ceph RGW up in {server.start_seconds:.1f}s at {upstream.endpoint}; running {names}",
                  file=sys.stderr)
            suite = unittest.defaultTestLoader.loadTestsFromNames(names)
            result = unittest.TextTestRunner(verbosity=2).run(suite)
            if not result.wasSuccessful():
                print("upstream:\n" + server.diagnostics(), file=sys.stderr)
            return 0 if result.wasSuccessful() else 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or SUITES))
