#!/usr/bin/env python3
"""Crash test: `tessera backfill` is exactly-once across kill -9.

Generates an NDJSON stream (disorder within the lateness bound, late rows, malformed lines,
NULLs, type errors) split into three files, one of them gzip-compressed, then:

1. builds a reference DB with one clean backfill of all files (default memory budget: one flush);
2. into a second DB, runs `tessera backfill --memory-mb 1` (many small flushes, each writing
   tiles + per-file progress in one atomic write; every second run --memory-mb 8, whose bigger
   flushes go through RocksDB SST ingestion) and SIGKILLs it at a random moment, several times,
   then lets a final run finish; its summary must report the files it skipped / resumed
   consistently with how many lines it read;
3. checks that backfilling the files again (same names, and a renamed copy) reads nothing;
4. compares `tessera get` for many keys, `--at` values and windows between the two DBs: every
   column must be identical, except the few noted above KLL_COLUMNS below (and why).

Any double counting (a flush applied twice) or loss (a line skipped on resume) shows up as a
COUNT/SUM mismatch.

Usage: backfill_crash_test.py PATH/TO/tessera [--seed N] [--events N] [--kills N]
"""
import argparse
import bisect
import gzip
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as e2e  # noqa: E402  (generator, SQL, reference decoder, processes)

TILE, HOUR, DAY, WINDOWS = e2e.TILE, e2e.HOUR, e2e.DAY, e2e.WINDOWS

# Columns that may legitimately differ between the two DBs, and how they are compared instead.
#
# The reference DB aggregates every row of a tile in one pass (one flush). The crashed DB builds
# the same tile as stored ⊕ delta ⊕ delta … over flushes whose boundaries depend on where each
# kill landed (a resumed run starts its own flush cadence at the resume offset). Merge is
# associative for exact states, so COUNT/SUM(BIGINT)/MIN/MAX/FIRST/LAST/LAST_K/TOP_K (exact here:
# < 2·capacity distinct countries)/HLL (register-wise max) must be bit-identical — any difference
# there is double counting or loss. But:
#  * APPROX_PERCENTILE is a KLL sketch: its compactions are deterministic for a given sequence
#    of adds and merges, but a different grouping of the same rows into merges compacts
#    different items, so the returned item may differ. Both answers must still be within the
#    sketch's rank-error bound of the true median (checked against the raw rows).
#  * SUM/AVG over DOUBLE use a compensated sum; summing partial sums in a different grouping
#    may round differently in the last bits, so they are compared with a 1e-9 relative
#    tolerance (a lost or doubled row changes them by far more than that). So are the
#    time-decayed sums: their merges rescale partial sums, exact up to the last bits.
KLL_COLUMNS = {"p50_ms"}
FLOAT_COLUMNS = {"avg_score", "sum_score", "decayed_ms", "decayed_plays"}


run, last_json = e2e.run, e2e.last_json


def nonblank(lines):
    return sum(1 for l in lines if l.strip())


def write_inputs(tmp, lines):
    """Three files: plain, gzip, plain (40/35/25 %). Returns (paths, lines per file)."""
    a, b = len(lines) * 40 // 100, len(lines) * 75 // 100
    parts = [lines[:a], lines[a:b], lines[b:]]
    paths = [os.path.join(tmp, "part1.ndjson"), os.path.join(tmp, "part2.ndjson.gz"),
             os.path.join(tmp, "part3.ndjson")]
    for path, part in zip(paths, parts):
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "wt") as f:
            f.write("\n".join(part) + "\n")
    return paths, parts


def backfill_cmd(tessera, sql, paths, db, extra=()):
    cmd = [tessera, "backfill", "--sql", sql, "--db", db]
    for p in paths:
        cmd += ["--input", p]
    return cmd + list(extra)


def crash_loop(tessera, sql, paths, db, rng, kills, est_seconds, log):
    """Starts the tiny-budget backfill, SIGKILLs it after a random delay, `kills` times (or
    until a run finishes before its kill: fine, but then there is nothing left to interrupt).
    Returns how many runs were really killed mid-run."""
    killed = 0
    for i in range(kills):
        # Mostly the 1 MB budget (flushes of a few thousand tiles: one RocksDB WriteBatch without
        # WAL, then a memtable flush). Every second run uses 8 MB instead, whose flushes hold
        # more than 20k tiles and so take the store's other atomic path (sorted SST files
        # ingested in one step, progress records inside the same files).
        mb = "8" if i % 2 == 1 else "1"
        cmd = backfill_cmd(tessera, sql, paths, db, ["--memory-mb", mb, "--chunk-kb", "64"])
        # Each kill spends a random part of the estimated full run; the resumed runs have less
        # left to do, so small fractions keep most kills landing mid-run.
        delay = rng.uniform(0.05, 0.4) * est_seconds
        est_seconds *= 0.85
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        if p.poll() is None:
            p.kill()  # SIGKILL: no destructor, no RocksDB close, no final flush
            p.communicate()
            killed += 1
            log("  run %d (--memory-mb %s): SIGKILL after %.3f s (mid-run)" % (i + 1, mb, delay))
        else:
            out, err = p.communicate()
            if p.returncode != 0:
                raise SystemExit("FAIL: backfill run %d failed (%d) before the kill:\n%s%s"
                                 % (i + 1, p.returncode, out, err))
            s = last_json(out)
            log("  run %d (--memory-mb %s): finished before the kill at %.3f s (read %d, "
                "skipped %d, resumed %d)" % (i + 1, mb, delay, s["read"], s["files_skipped"],
                                              s["files_resumed"]))
            log("  the backfill is complete: further kills would only hit no-op runs")
            break
    return killed


def median_rank_ok(values, v):
    """Same rule as the e2e test: v's rank range reaches within 1% (+1 row) of 0.5."""
    if not values:
        return v is None
    if v is None:
        return False
    n = len(values)
    lo = bisect.bisect_left(values, v) / n
    hi = bisect.bisect_right(values, v) / n
    slack = 0.01 + 1.0 / n
    return lo - slack <= 0.5 <= hi + slack


def compare(ref, got, where, truth_ms, stats):
    """Compares one window's columns; returns FAIL strings."""
    errors = []
    if set(ref) != set(got):
        return ["%s: columns %s vs %s" % (where, sorted(ref), sorted(got))]
    for col in sorted(ref):
        a, b = ref[col], got[col]
        if col in KLL_COLUMNS and truth_ms is not None:
            if a != b:
                stats["kll_differ"] += 1
            values = truth_ms()
            for name, v in (("reference", a), ("crashed", b)):
                if not median_rank_ok(values, v):
                    errors.append("%s %s: %s DB answered %r, outside the rank bound of the "
                                  "true median (%d values)" % (where, col, name, v, len(values)))
            continue
        if col in FLOAT_COLUMNS and isinstance(a, float) and isinstance(b, float):
            if a != b:
                stats["float_differ"] += 1
            if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9):
                errors.append("%s %s: reference %r, crashed-and-resumed %r" % (where, col, a, b))
            continue
        stats["exact"] += 1
        if a != b:
            errors.append("%s %s: reference %r, crashed-and-resumed %r" % (where, col, a, b))
    return errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tessera")
    ap.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    print("seed %d (re-run with --seed %d)" % (seed, seed), flush=True)
    tessera = os.path.abspath(args.tessera)
    t_start = time.monotonic()
    rng = random.Random(seed)
    log = lambda s: print(s, flush=True)  # noqa: E731

    base = e2e.BASE
    span = 3 * DAY
    lines = e2e.generate(rng, args.events, 300, base, span)
    tmp = tempfile.mkdtemp(prefix="tessera-crash-")
    failures = []
    try:
        sql = os.path.join(tmp, "views.sql")
        with open(sql, "w") as f:
            f.write(e2e.SQL)
        paths, parts = write_inputs(tmp, lines)
        per_file = [nonblank(p) for p in parts]
        log("generated %d lines -> %s (non-blank %s)" %
            (len(lines), ", ".join(os.path.basename(p) for p in paths), per_file))

        # 1. Reference: one clean backfill.
        ref_db = os.path.join(tmp, "ref")
        t0 = time.monotonic()
        ref = last_json(run(backfill_cmd(tessera, sql, paths, ref_db)))
        ref_seconds = time.monotonic() - t0
        rows, counters = e2e.decode(lines)
        for k in ["read", "rejected", "late", "field_errors"]:
            if ref[k] != counters[k]:
                failures.append("reference summary %s: got %r expected %r"
                                % (k, ref[k], counters[k]))
        log("reference backfill: %.2f s, read %d, late %d, rejected %d, flushes %d"
            % (ref_seconds, ref["read"], ref["late"], ref["rejected"], ref["flushes"]))

        # 2. Crash loop into a second DB, then a final run that must finish.
        db = os.path.join(tmp, "crashed")
        # The tiny budget makes a full run ~2x slower than the one-flush reference.
        est = max(0.3, 2.0 * ref_seconds)
        log("crash loop: %d kills, delays drawn from [%.2f, %.2f] s"
            % (args.kills, 0.05 * est, 0.4 * est))
        killed = crash_loop(tessera, sql, paths, db, rng, args.kills, est, log)
        if killed == 0:
            failures.append("no run was killed mid-run: the crash path was not exercised")
        final = last_json(run(backfill_cmd(tessera, sql, paths, db,
                                           ["--memory-mb", "1", "--chunk-kb", "64"])))
        log("final run: read %d, files %d, files_skipped %d, files_resumed %d, late %d, "
            "flushes %d" % (final["read"], final["files"], final["files_skipped"],
                            final["files_resumed"], final["late"], final["flushes"]))
        # Files complete in the DB form a prefix (files are replayed in order); at most one file
        # is partial. What the final run read must match that.
        k, r = final["files_skipped"], final["files_resumed"]
        if final["files"] != len(paths) or k + r > len(paths) or r > 1:
            failures.append("final summary files/skipped/resumed inconsistent: %r" % final)
        elif r == 0:
            if final["read"] != sum(per_file[k:]):
                failures.append("final run skipped %d files, resumed none, but read %d lines "
                                "(expected %d)" % (k, final["read"], sum(per_file[k:])))
        else:
            lo, hi = sum(per_file[k + 1:]), sum(per_file[k:])
            if not (lo <= final["read"] < hi):
                failures.append("final run resumed file %d but read %d lines, expected within "
                                "[%d, %d)" % (k + 1, final["read"], lo, hi))
        if killed > 0 and k == 0 and r == 0 and final["read"] == ref["read"]:
            log("  note: no kill landed after the first flush (final run started from scratch)")

        # 3. A fully backfilled file reads nothing: same files again, and a renamed copy.
        again = last_json(run(backfill_cmd(tessera, sql, paths, db)))
        if again["read"] != 0 or again["files_skipped"] != len(paths):
            failures.append("re-backfill of complete files was not skipped: %r" % again)
        renamed = os.path.join(tmp, "renamed-copy.ndjson.gz")
        shutil.copyfile(paths[1], renamed)
        copy = last_json(run(backfill_cmd(tessera, sql, [renamed], db)))
        if copy["read"] != 0 or copy["files_skipped"] != 1:
            failures.append("re-backfill of a renamed copy was not skipped: %r" % copy)
        log("re-runs: all files again -> read %d, files_skipped %d; renamed copy -> read %d, "
            "files_skipped %d" % (again["read"], again["files_skipped"], copy["read"],
                                  copy["files_skipped"]))

        # 4. Compare reads between the two DBs.
        by_user = {}
        for row in rows:
            if row["user_id"] is not None and (row["country"] is None or row["country"] != "XX"):
                by_user.setdefault(row["user_id"], []).append(row)
        for key in by_user:
            by_user[key].sort(key=lambda row: row["ts"])
        users = ["u%d" % i for i in range(12)] + ["u%d" % i for i in (17, 42, 99, 150, 222, 299)]
        users += ["u%d" % rng.randrange(300) for _ in range(12)] + ["nobody"]
        users = sorted(set(users), key=users.index)
        cd_keys = ["%s|%s" % (c, d) for c in ("SE", "US", "DE", "XX")
                   for d in ("web", "ios", "android")]
        ats = [base + span // 2, base + span + HOUR, base + span + 3 * DAY, base + DAY,
               base + 5 * HOUR + 17 * 60 * 1000]
        ats += [base + rng.randint(0, span) for _ in range(4)]
        ats += [((base + rng.randint(0, span)) // TILE) * TILE for _ in range(3)]
        wlist = ",".join(WINDOWS)
        stats = {"answers": 0, "exact": 0, "kll_differ": 0, "float_differ": 0}
        for at in ats:
            for view, keys in (("user_stats", users), ("country_device", cd_keys)):
                a = e2e.tessera_get(tessera, ref_db, view, keys, at, wlist)
                b = e2e.tessera_get(tessera, db, view, keys, at, wlist)
                if [x["key"] for x in a] != [x["key"] for x in b] or len(a) != len(keys):
                    failures.append("%s at=%d: keys %r vs %r"
                                    % (view, at, [x["key"] for x in a], [x["key"] for x in b]))
                    continue
                for ra, rb in zip(a, b):
                    if ra["at"] != rb["at"]:
                        failures.append("%s key=%s at=%d: effective at %r vs %r"
                                        % (view, ra["key"], at, ra["at"], rb["at"]))
                    for wname, wms in WINDOWS.items():
                        where = "%s key=%s at=%d w=%s" % (view, ra["key"], at, wname)
                        truth = None
                        if view == "user_stats":
                            def truth(key=ra["key"], at=at, wms=wms):
                                rs = e2e.window_rows(by_user, key, at, wms)
                                return sorted(r["ms_played"] for r in rs
                                              if r["ms_played"] is not None)
                        failures += compare(ra["windows"][wname], rb["windows"][wname], where,
                                            truth, stats)
                        stats["answers"] += 1
        log("compared %d (view, key, at, window) answers over %d keys x %d ats x %d windows: "
            "%d exact column values; KLL p50 differed (within bound) in %d, DOUBLE sums differed "
            "(within 1e-9) in %d" % (stats["answers"], len(users) + len(cd_keys), len(ats),
                                    len(WINDOWS), stats["exact"], stats["kll_differ"],
                                    stats["float_differ"]))
        if stats["answers"] == 0:
            failures.append("nothing was compared")
    finally:
        if args.keep:
            log("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    for f in failures[:40]:
        print("FAIL:", f)
    log("total %.1f s" % (time.monotonic() - t_start))
    if failures:
        print("%d failures (seed %d)" % (len(failures), seed))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
