#!/usr/bin/env python3
"""What waiting for the audit record's durability costs 4 KiB GETs and PUTs through the daemon (the
target: at most 10 %, docs/PERFORMANCE.md).

A request that uses a key releases nothing before its key-usage record is durable (docs/AUDIT.md
section 4). Two daemons run side by side on the same build and disk: one as in production, and one
with bench/preload/no_audit_flush.c preloaded, which makes fsync/fdatasync of audit.db and
audit.db-wal return at once (every other file, blobs and catalog included, is flushed as usual).
Its records reach audit.db as usual, but nobody waits for the disk. The difference between the two
is the cost of the audit log's durable flush; the record's CPU cost (the insert, the hash chain) is
in both and is measured by coffre_audit_bench at the service level instead.

The two are measured alternately (A B, B A, ...) for several rounds at each concurrency, and the
medians of the per-round ratios are printed: the machine is shared, so only ratios mean anything.

  bench/audit_cost.py --build-dir build-bench [--ops get,put] [--rounds 5] [--duration 2]
      [--concurrency 1,16,64]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_bench import Bench, Daemon, median, spread, stop_all  # noqa: E402

SHIM_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "preload", "no_audit_flush.c")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default="build-bench")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=2.0, help="seconds per measurement")
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--ops", default="get,put")
    ap.add_argument("--size", type=int, default=4096)
    args = ap.parse_args()
    args.build_dir = os.path.abspath(args.build_dir)
    concs = [int(c) for c in args.concurrency.split(",")]
    bench = Bench(args)
    binary = os.path.join(args.build_dir, "coffre")

    work = tempfile.mkdtemp(prefix="coffre-audit-cost-", dir=args.build_dir)
    shim = os.path.join(work, "no_audit_flush.so")
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", shim, SHIM_SOURCE, "-ldl"], check=True)
    daemons = {}
    try:
        for name, preload in (("durable", None), ("no-flush", shim)):
            data_dir = os.path.join(work, name, "data")
            os.makedirs(data_dir)
            env = dict(os.environ)
            if preload:
                env["LD_PRELOAD"] = preload
            daemons[name] = Daemon(binary, data_dir, env=env, log_name="coffre.log")
        nobj = 64
        for d in daemons.values():
            bench.run_load("s3", d.endpoint, "mkbucket", 0, 1, creds=d.credentials)
            bench.run_load("s3", d.endpoint, "populate", args.size, 16, count=nobj, prefix="o/", creds=d.credentials)
        print(f"# {args.size}-byte objects, {args.rounds} alternated rounds of {args.duration} s; "
              f"ratio = durable / no-flush ops/s; load {os.getloadavg()[0]:.1f}")
        for op in args.ops.split(","):
            for conc in concs:
                ops = {name: [] for name in daemons}
                ratios = []
                for rnd in range(args.rounds):
                    order = list(daemons) if rnd % 2 == 0 else list(reversed(list(daemons)))
                    got = {}
                    for name in order:
                        d = daemons[name]
                        if op == "get":
                            r = bench.run_load("s3", d.endpoint, "get", args.size, conc, duration=args.duration,
                                               count=nobj, prefix="o/", creds=d.credentials)
                        else:  # new keys each round and concurrency, never an overwrite
                            r = bench.run_load("s3", d.endpoint, "put", args.size, conc, duration=args.duration,
                                               count=100000, prefix=f"p{rnd}c{conc}/", creds=d.credentials)
                        got[name] = r
                        ops[name].append(r["ops_per_s"])
                    ratios.append(got["durable"]["ops_per_s"] / got["no-flush"]["ops_per_s"])
                lo, hi = spread(ratios)
                print(f"{op.upper():3} c{conc:<3} durable {median(ops['durable']):8.0f} ops/s  no-flush "
                      f"{median(ops['no-flush']):8.0f} ops/s  ratio {median(ratios):.2f} (rounds {lo:.2f}..{hi:.2f})",
                      flush=True)
                time.sleep(0.2)
    finally:
        stop_all(work, *daemons.values())
    if bench.failures:
        raise SystemExit("errors: " + "; ".join(bench.failures))


if __name__ == "__main__":
    main()
