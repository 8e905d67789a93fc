#!/usr/bin/env python3
"""Does the daemon stay as fast with 10 M objects in a bucket as with 10 k (docs/PERFORMANCE.md targets)?

The goal: ListObjectsV2 of 1,000 keys from a bucket of 10 M keys within 1.5x of the same from a
bucket of 10 k, and PUT and GET latency the same at 10 M objects as at 10 k. The micro-benchmark
(bench/micro/catalog_bench.cc) measures the catalog alone; this measures it through the daemon
(HTTP, SigV4, the service, the audit record), with coffre_load as the client.

1. Starts the daemon (`coffre serve`, data in a temp dir under the build dir), creates the buckets
   `small` and `big`, and PUTs 64 real 4 KiB objects into each (o/obj-0 .. o/obj-63), which the
   GETs read (real encrypted blobs).
2. Stops the daemon and, with Python's sqlite3 on DIR/catalog.db, adds --small-rows synthetic
   objects to `small` and --rows to `big` under keys shaped like `dossier-0012345/doc-07.pdf`
   (dossier i // 16, document i % 16; they sort before `o/`), each a copy of the real row of
   o/obj-0 of its bucket (same object_id, etag, size, attributes, tenant_key_id, key_version,
   wrapped_key) and of its object_parts rows (same blob_id). One recursive-CTE INSERT ... SELECT
   per table and bucket, all in one transaction (synchronous=OFF, as the micro-benchmark does), then
   `PRAGMA wal_checkpoint(TRUNCATE)`. The synthetic rows share the template's blob: harmless here,
   because nothing in the benchmark deletes or overwrites them (a DELETE of one would send the
   shared blob to garbage, and the real object would lose its bytes). Restarts the daemon on the
   same data dir; the generation time, the catalog.db size and the restart time are reported.
3. Measures `small` and `big` alternately (A B, then B A, ...) for --rounds rounds of --duration
   seconds per cell: GET 4 KiB of the 64 real objects at concurrency 1 and 16; GET of 20,000
   synthetic keys drawn at random over the whole bucket ("GET sprd", which reads the template's
   blob but looks each key up in the whole catalog; with --cold, catalog.db is evicted from the
   page cache before each such run, as for a catalog larger than the memory); PUT 4 KiB of new
   keys at concurrency 1 and 16, under `p<round>c<conc>/` (after every synthetic key: the end of
   the bucket's key range) and, as a second pair of cells, under
   `dossier-<middle dossier>/p<round>c<conc>/` (in the middle of it: a B-tree append at the right
   edge can flatter a big table); and LIST: ListObjectsV2 max-keys 1000 at concurrency 1, from the
   start of the bucket and ("LIST mid") after the middle dossier (start-after). Prints the medians over
   rounds of ops/s, p50 and p99 for each bucket, and the median over rounds of big / small for
   ops/s and p50, with the lowest and highest round: the machine is shared, so only same-round
   ratios mean much.

The whole catalog fits in the page cache on a machine with enough memory, so without --cold this
is the catalog's in-memory scaling (B-tree depth, page cache), not cold-disk reads. Exits non-zero
if coffre_load reports errors.

  bench/catalog_at_scale.py --build-dir build [--coffre BIN] [--load BIN] [--rows 10000000]
      [--small-rows 10000] [--rounds 5] [--duration 2] [--cold]
"""

import argparse
import os
import random
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_bench import Bench, Daemon, log, median, spread, stop_all  # noqa: E402

KEY_EXPR = "printf('dossier-%07d/doc-%02d.pdf', i / 16, i % 16)"
TEMPLATE_KEY = "o/obj-0"
NOBJ = 64
SIZE = 4096
SPREAD_KEYS = 20_000


def run_bucket(bench, bucket, endpoint, op, conc, creds, duration=None, count=None, prefix="", size=SIZE, extra=()):
    """coffre_load against one of the two buckets."""
    return bench.run_load("s3", endpoint, op, size, conc, duration=duration, count=count, prefix=prefix, creds=creds,
                          bucket=bucket, extra=extra)


def synthetic_key(i):
    """The key of synthetic row i, as KEY_EXPR makes it."""
    return f"dossier-{i // 16:07d}/doc-{i % 16:02d}.pdf"


def write_spread_keys(path, rows, n, seed):
    """n synthetic keys drawn at random over the whole bucket, for GETs that touch all of its catalog."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            f.write(synthetic_key(rng.randrange(rows)) + "\n")


def evict_from_page_cache(paths):
    """Drops the files' clean pages from the page cache (no root needed), so that the next lookups
    read the catalog from the disk, as with a catalog larger than the memory."""
    for path in paths:
        if os.path.exists(path):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def columns(db, table):
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def copy_rows(db, table, bucket_id, rows, template):
    """Copies `template` (a row of `table`, as a dict) to keys 0..rows-1 of KEY_EXPR in one
    INSERT ... SELECT over a recursive CTE. The template's values are bound, not selected from the
    table being written, so SQLite streams the rows instead of buffering them first."""
    cols = columns(db, table)
    exprs = [KEY_EXPR if c == "key" else f":{c}" for c in cols]
    sql = (f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {rows - 1}) "
           f"INSERT INTO {table}({', '.join(cols)}) SELECT {', '.join(exprs)} FROM n")
    params = {c: v for c, v in template.items() if c != "key"}
    params["bucket_id"] = bucket_id
    db.execute(sql, params)


def generate(path, plan):
    """plan: [(bucket name, rows)]. Returns (insert + commit seconds, checkpoint seconds)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.row_factory = sqlite3.Row
    try:
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-262144")  # 256 MiB: fewer spills of the open transaction
        ids = {r["name"]: r["id"] for r in db.execute("SELECT id, name FROM buckets")}
        start = time.perf_counter()
        db.execute("BEGIN")
        for table in ("objects", "object_parts"):
            for name, rows in plan:
                templates = [dict(r) for r in db.execute(f"SELECT * FROM {table} WHERE bucket_id = ? AND key = ?",
                                                         (ids[name], TEMPLATE_KEY))]
                if not templates:
                    raise SystemExit(f"no {table} row for {name}/{TEMPLATE_KEY} in {path}")
                for t in templates:  # one per part (a 4 KiB PUT has one)
                    copy_rows(db, table, ids[name], rows, t)
                log(f"  {table}: {rows:,} rows for {name} ({time.perf_counter() - start:.1f} s)")
        db.execute("COMMIT")
        generated = time.perf_counter() - start
        start = time.perf_counter()
        busy, wal_frames, moved = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise SystemExit("wal_checkpoint(TRUNCATE) was blocked")
        checkpoint = time.perf_counter() - start
        for name, rows in plan:
            n = db.execute("SELECT count(*) FROM objects WHERE bucket_id = ?", (ids[name],)).fetchone()[0]
            log(f"  {name}: {n:,} objects in the catalog")
    finally:
        db.close()
    return generated, checkpoint


def db_size(path):
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default="build-bench", help="temp dir goes here; default home of the binaries")
    ap.add_argument("--coffre", help="the daemon (default BUILD_DIR/coffre)")
    ap.add_argument("--load", help="coffre_load (default BUILD_DIR/bench/coffre_load)")
    ap.add_argument("--rows", type=int, default=10_000_000, help="synthetic objects in bucket big")
    ap.add_argument("--small-rows", type=int, default=10_000, help="synthetic objects in bucket small")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=2.0, help="seconds per measurement")
    ap.add_argument("--cold", action="store_true",
                    help="evict catalog.db from the page cache before each spread GET (a catalog larger than memory)")
    args = ap.parse_args()
    args.build_dir = os.path.abspath(args.build_dir)
    binary = os.path.abspath(args.coffre or os.path.join(args.build_dir, "coffre"))
    bench = Bench(args)
    if args.load:
        bench.load = os.path.abspath(args.load)
    plan = [("small", args.small_rows), ("big", args.rows)]
    mid = {name: max(0, (rows + 15) // 16 // 2) for name, rows in plan}  # middle dossier of each bucket

    work = tempfile.mkdtemp(prefix="coffre-catalog-scale-", dir=args.build_dir)
    data_dir = os.path.join(work, "data")
    os.makedirs(data_dir)
    catalog = os.path.join(data_dir, "catalog.db")
    daemon = None
    load_start = os.getloadavg()
    try:
        daemon = Daemon(binary, data_dir)
        creds = daemon.credentials
        for name, _ in plan:
            run_bucket(bench, name, daemon.endpoint, "mkbucket", 1, creds)
            run_bucket(bench, name, daemon.endpoint, "populate", 16, creds, count=NOBJ, prefix="o/")
        daemon.stop()
        daemon = None
        before = db_size(catalog)
        log(f"generating {args.small_rows:,} + {args.rows:,} rows in {catalog} "
            f"(catalog.db + wal {before / 1e6:.1f} MB before)")
        generated, checkpoint = generate(catalog, plan)
        after = db_size(catalog)
        log(f"generated in {generated:.1f} s + checkpoint {checkpoint:.1f} s; catalog.db {after / 1e9:.2f} GB")

        t0 = time.perf_counter()
        daemon = Daemon(binary, data_dir, log_name="coffre-2.log")
        restart = time.perf_counter() - t0
        creds = daemon.credentials
        log(f"daemon restarted in {restart:.2f} s on {daemon.endpoint} (pid {daemon.proc.pid}); data in {work}")

        keys_file = {}
        for name, rows in plan:
            keys_file[name] = os.path.join(work, f"spread-{name}.txt")
            write_spread_keys(keys_file[name], rows, SPREAD_KEYS, seed=len(name))
        cells = [("GET", 1), ("GET", 16), ("GET sprd", 1), ("GET sprd", 16), ("PUT end", 1), ("PUT end", 16),
                 ("PUT mid", 1), ("PUT mid", 16), ("LIST", 1), ("LIST mid", 1)]
        got = {(cell, name): [] for cell in cells for name, _ in plan}
        for rnd in range(args.rounds):
            order = ["small", "big"] if rnd % 2 == 0 else ["big", "small"]
            for cell in cells:
                what, conc = cell
                for name in order:
                    if what == "GET":
                        r = run_bucket(bench, name, daemon.endpoint, "get", conc, creds, duration=args.duration,
                                             count=NOBJ, prefix="o/")
                    elif what == "GET sprd":
                        if args.cold:
                            evict_from_page_cache([catalog, catalog + "-wal"])
                        r = run_bucket(bench, name, daemon.endpoint, "get", conc, creds, duration=args.duration,
                                       extra=["--keys", keys_file[name]])
                    elif what == "LIST":
                        r = run_bucket(bench, name, daemon.endpoint, "list", conc, creds, duration=args.duration,
                                             size=0)
                    elif what == "LIST mid":
                        r = run_bucket(bench, name, daemon.endpoint, "list", conc, creds, duration=args.duration,
                                       size=0, extra=["--start-after", f"dossier-{mid[name]:07d}/"])
                    else:
                        prefix = f"p{rnd}c{conc}/"
                        if what == "PUT mid":
                            prefix = f"dossier-{mid[name]:07d}/" + prefix
                        r = run_bucket(bench, name, daemon.endpoint, "put", conc, creds, duration=args.duration,
                                             prefix=prefix)
                    got[(cell, name)].append(r)
            log(f"round {rnd + 1}/{args.rounds} done, load {os.getloadavg()[0]:.1f}")
        hwm = daemon.hwm()
    finally:
        stop_all(work, daemon)
    load_end = os.getloadavg()

    small_n, big_n = args.small_rows + NOBJ, args.rows + NOBJ
    print(f"# catalog at scale: bucket small {small_n:,} objects, big {big_n:,}; {args.rounds} alternated rounds "
          f"of {args.duration} s per cell; 4 KiB objects")
    print(f"# generation {args.small_rows + args.rows:,} rows x (objects + object_parts): {generated:.1f} s "
          f"+ checkpoint {checkpoint:.1f} s; catalog.db {after / 1e9:.2f} GB; daemon restart {restart:.2f} s; "
          f"daemon VmHWM {hwm:.0f} MiB")
    print(f"# load average at start {load_start[0]:.1f}/{load_start[1]:.1f}/{load_start[2]:.1f}, "
          f"at end {load_end[0]:.1f}/{load_end[1]:.1f}/{load_end[2]:.1f} ({os.cpu_count()} CPUs)")
    print(f"{'op':<8} {'conc':>4} | {'small ops/s':>11} {'p50 ms':>7} {'p99 ms':>7} | {'big ops/s':>9} "
          f"{'p50 ms':>7} {'p99 ms':>7} | {'big/small ops/s':>20} | {'big/small p50':>20}")
    for cell in cells:
        what, conc = cell
        s, b = got[(cell, "small")], got[(cell, "big")]
        ops_r = [y["ops_per_s"] / x["ops_per_s"] for x, y in zip(s, b) if x["ops_per_s"]]
        p50_r = [y["p50_ms"] / x["p50_ms"] for x, y in zip(s, b) if x["p50_ms"]]
        (olo, ohi), (plo, phi) = spread(ops_r), spread(p50_r)

        def cols(rs):
            return (f"{median([r['ops_per_s'] for r in rs]):>9.1f} {median([r['p50_ms'] for r in rs]):>7.2f} "
                    f"{median([r['p99_ms'] for r in rs]):>7.2f}")

        print(f"{what:<8} {conc:>4} | {'':>2}{cols(s)} | {cols(b)} | {median(ops_r):5.2f} ({olo:.2f}..{ohi:.2f}){'':>3} "
              f"| {median(p50_r):5.2f} ({plo:.2f}..{phi:.2f})", flush=True)
    for name, _ in plan:
        rs = got[(("LIST", 1), name)]
        print(f"# LIST {name}: {median([r['mb_per_s'] * 1e6 / r['ops_per_s'] for r in rs if r['ops_per_s']]):,.0f} "
              f"bytes per response")
    print("# GET sprd: synthetic keys drawn at random over the whole bucket"
          + (", catalog.db evicted from the page cache before each run" if args.cold else "")
          + "; PUT end: new keys after every synthetic key; PUT mid: new keys inside the middle dossier; "
          "LIST: first page (1,000 keys) of the bucket; LIST mid: the page after the middle dossier.")
    if bench.failures:
        print("# coffre_load errors: " + "; ".join(bench.failures[:20]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
