#!/usr/bin/env python3
"""What a target ratio against nginx leaves Coffre to spend per request, beside what it spends.

Runs one operation against nginx and against the daemon in alternated rounds (as
bench/run_bench.py sets them up), and measures per request: the server's CPU (the daemon; nginx's
master and workers), the load client's CPU (coffre_load, which signs every request for Coffre and
none for nginx), and the throughput. When the client and the server share the machine's cores and
keep them busy, a rate of `ratio` × nginx's leaves each request at most
cores ÷ (ratio × nginx's rate) of CPU, for the client and the daemon together: the script prints
that budget, the daemon's share of it (the budget less the client's measured cost against Coffre),
and what the daemon spends. Only ratios and CPU per request mean anything on these shared
machines; the rates are printed for context.

  bench/cpu_budget.py --op get --size 4096 --concurrency 16 --ratio 0.5 [--rounds 3] [--duration 4]
"""

import argparse
import os
import resource
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_bench import Bench, Daemon, Nginx, cpu_seconds, fmt_size, median, put_request_cap, stop_all  # noqa: E402


def children_cpu():
    """CPU time of the child processes waited for so far: each coffre_load run, once it ended."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default="build-bench", help="holds coffre and bench/coffre_load")
    ap.add_argument("--op", default="get", choices=["get", "put", "head"])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--ratio", type=float, default=0.5, help="the target: Coffre's rate ÷ nginx's")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per measurement")
    args = ap.parse_args()
    args.build_dir = os.path.abspath(args.build_dir)
    bench = Bench(args)
    cores = os.cpu_count() or 1

    work = tempfile.mkdtemp(prefix="coffre-budget-", dir=args.build_dir)
    daemon, nginx = None, None
    try:
        data_dir = os.path.join(work, "coffre", "data")
        os.makedirs(data_dir)
        daemon = Daemon(os.path.join(args.build_dir, "coffre"), data_dir)
        nginx = Nginx(work)
        with open(os.path.join(nginx.dir, "nginx.pid")) as f:
            nginx_pid = int(f.read())
        targets = {
            "nginx": ("nginx", nginx.endpoint, None, nginx_pid),
            "coffre": ("s3", daemon.endpoint, daemon.credentials, daemon.proc.pid),
        }
        nobj = 16
        bench.run_load("s3", daemon.endpoint, "mkbucket", 0, 1, creds=daemon.credentials)
        for kind, ep, creds, _ in targets.values():
            bench.run_load(kind, ep, "populate", args.size, 4, count=nobj, prefix="o/", creds=creds)

        got = {name: {"rate": [], "server": [], "client": []} for name in targets}
        for rnd in range(args.rounds):
            names = list(targets) if rnd % 2 == 0 else list(reversed(targets))
            for name in names:
                kind, ep, creds, pid = targets[name]
                # PUT: new keys in every run (an overwrite deletes a file; see compare_builds.py).
                prefix = "o/" if args.op != "put" else f"p{rnd}/"
                server0, client0 = cpu_seconds(pid, with_children=True), children_cpu()
                r = bench.run_load(kind, ep, args.op, args.size, args.concurrency, duration=args.duration,
                                   count=put_request_cap(args.size, args.concurrency) if args.op == "put" else nobj,
                                   prefix=prefix, creds=creds)
                server1, client1 = cpu_seconds(pid, with_children=True), children_cpu()
                if not r["ops"]:
                    continue
                got[name]["rate"].append(r["ops_per_s"])
                got[name]["server"].append((server1 - server0) * 1e6 / r["ops"])
                got[name]["client"].append((client1 - client0) * 1e6 / r["ops"])

        print(f"# {args.op} {fmt_size(args.size)} at concurrency {args.concurrency}, {args.rounds} alternated "
              f"rounds of {args.duration} s, {cores} cores; medians, CPU in µs per request")
        for name, g in got.items():
            print(f"{name:7} {median(g['rate']):9.0f} ops/s | server {median(g['server']):7.1f} | "
                  f"client {median(g['client']):6.1f} | together {median(g['server']) + median(g['client']):7.1f}")
        target_rate = args.ratio * median(got["nginx"]["rate"])
        budget = cores * 1e6 / target_rate
        daemon_budget = budget - median(got["coffre"]["client"])
        spent = median(got["coffre"]["server"])
        print(f"{args.ratio} × nginx = {target_rate:.0f} ops/s: {budget:.1f} µs per request for client and daemon "
              f"together, so at most {daemon_budget:.1f} for the daemon, which spends {spent:.1f} "
              f"({spent / daemon_budget:.2f} × its budget)" if daemon_budget > 0 else
              f"{args.ratio} × nginx = {target_rate:.0f} ops/s: {budget:.1f} µs per request, less than the client "
              f"alone spends against Coffre")
    finally:
        stop_all(work, daemon, nginx)
    if bench.failures:
        raise SystemExit("errors: " + "; ".join(bench.failures))


if __name__ == "__main__":
    main()
