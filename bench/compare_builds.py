#!/usr/bin/env python3
"""Before/after of a change: two coffre binaries side by side, with nginx as the common reference.

Starts the daemon of each binary (data in its own temp dir on the build's disk) and nginx (as
bench/run_bench.py does), writes the same objects to all three, then for each operation and
concurrency runs base, new and nginx in rotated order for several rounds with coffre_load and
prints the medians of new/base and of each/nginx per round, and each daemon's CPU time (user +
system, from /proc) per operation: under load from other work, when throughput says little, the CPU
a change saves still shows. Only ratios mean anything on these shared machines.

  bench/compare_builds.py --base /tmp/coffre-old --build-dir build-bench --op get --size 67108864 \\
      --concurrency 1,16 [--rounds 6] [--duration 3]
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_bench import (Bench, Daemon, Nginx, cpu_seconds, fmt_size, median, put_request_cap, spread,  # noqa: E402
                       stop_all)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the coffre binary to compare against")
    ap.add_argument("--build-dir", default="build-bench", help="holds the new coffre and bench/coffre_load")
    ap.add_argument("--op", default="get", choices=["get", "put", "head"])
    ap.add_argument("--size", type=int, default=64 * 1024 * 1024)
    ap.add_argument("--concurrency", default="1,16")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    args = ap.parse_args()
    args.build_dir = os.path.abspath(args.build_dir)
    bench = Bench(args)
    binaries = {"base": os.path.abspath(args.base), "new": os.path.join(args.build_dir, "coffre")}

    work = tempfile.mkdtemp(prefix="coffre-compare-", dir=args.build_dir)
    daemons, nginx = {}, None
    try:
        for name, binary in binaries.items():
            data_dir = os.path.join(work, name, "data")
            os.makedirs(data_dir)
            daemons[name] = Daemon(binary, data_dir)
        nginx = Nginx(work)
        targets = {name: ("s3", d.endpoint, d.credentials) for name, d in daemons.items()}
        targets["nginx"] = ("nginx", nginx.endpoint, None)
        nobj = max(2, min(64, (256 * 1024 * 1024) // args.size))
        for name, (kind, ep, creds) in targets.items():
            if kind == "s3":
                bench.run_load(kind, ep, "mkbucket", 0, 1, creds=creds)
            bench.run_load(kind, ep, "populate", args.size, min(nobj, 16), count=nobj, prefix="o/", creds=creds)
        names = list(targets)
        print(f"# {args.op} {fmt_size(args.size)}, {args.rounds} rotated rounds of {args.duration} s; "
              f"base {binaries['base']}, new {binaries['new']}", flush=True)
        for conc in (int(c) for c in args.concurrency.split(",")):
            got = {name: [] for name in names}
            cpu = {name: [] for name in daemons}
            for rnd in range(args.rounds):
                order = names[rnd % len(names):] + names[:rnd % len(names)]
                for name in order:
                    kind, ep, creds = targets[name]
                    # PUT: new keys in every cell, never an overwrite. An overwrite deletes a file,
                    # and on ext4 without a journal each inode allocation then scans past the
                    # inodes deleted in the last minute or more (PERFORMANCE.md): rounds would
                    # slow each other.
                    prefix = "o/" if args.op != "put" else f"p{conc}-{rnd}/"
                    before = cpu_seconds(daemons[name].proc.pid) if name in daemons else 0
                    r = bench.run_load(kind, ep, args.op, args.size, conc, duration=args.duration,
                                       count=put_request_cap(args.size, conc) if args.op == "put" else nobj,
                                       prefix=prefix, creds=creds)
                    got[name].append(r["mb_per_s"] if args.size >= 1024 * 1024 else r["ops_per_s"])
                    if name in daemons and r["ops"]:
                        cpu[name].append((cpu_seconds(daemons[name].proc.pid) - before) * 1e3 / r["ops"])
            unit = "MB/s" if args.size >= 1024 * 1024 else "ops/s"
            line = f"c{conc:<3}" + "".join(f" {n} {median(got[n]):8.1f} {unit}" for n in names)
            for a, b in (("new", "base"), ("base", "nginx"), ("new", "nginx")):
                ratios = [x / y for x, y in zip(got[a], got[b]) if y]
                lo, hi = spread(ratios)
                line += f" | {a}/{b} {median(ratios):.2f} ({lo:.2f}..{hi:.2f})"
            cpu_ratios = [x / y for x, y in zip(cpu["new"], cpu["base"]) if y]
            line += (f" | CPU ms/op base {median(cpu['base']):.3f} new {median(cpu['new']):.3f}, new/base "
                     f"{median(cpu_ratios):.2f}")
            print(line, flush=True)
    finally:
        stop_all(work, *daemons.values(), nginx)
    if bench.failures:
        raise SystemExit("errors: " + "; ".join(bench.failures))


if __name__ == "__main__":
    main()
