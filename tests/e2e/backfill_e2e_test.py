#!/usr/bin/env python3
"""End-to-end check of `tessera backfill` + `tessera get` against a brute force over raw rows.

Generates a stream with disorder, late rows, malformed lines, NULLs, type errors, both timestamp
forms (epoch ms and RFC 3339 with offsets), backfills it (twice, to prove a file is not counted
again, and in two halves into a second DB to prove incremental backfill adds up), then compares
every column of many (key, at, window) answers with an independent computation written here,
and `get --meta`'s newest event time and watermark with the brute force's.

Usage: backfill_e2e_test.py PATH/TO/tessera [--seed N] [--events N]
"""
import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BASE, CD_KEYS, DAY, HOUR, LATENESS, SQL, TILE, USERS,  # noqa: E402
                     WINDOWS, Reference, check_cd, check_meta, check_user_stats, decode,
                     expect_user_stats, generate, report, run, same_answers, tessera_get)
from harness import BUCKETS_SQL, check_buckets  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tessera")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--events", type=int, default=40000)
    args = ap.parse_args()
    tessera = os.path.abspath(args.tessera)
    rng = random.Random(args.seed)
    base = BASE
    span = 3 * DAY
    lines = generate(rng, args.events, 300, base, span)
    tmp = tempfile.mkdtemp(prefix="tessera-e2e-")
    failures = []
    try:
        sql = os.path.join(tmp, "views.sql")
        with open(sql, "w") as f:
            f.write(SQL + BUCKETS_SQL)
        events = os.path.join(tmp, "events.ndjson")
        with open(events, "w") as f:
            f.write("\n".join(lines) + "\n")
        db = os.path.join(tmp, "db")
        summary = json.loads(run([tessera, "backfill", "--sql", sql, "--input", events, "--db", db,
                                  "--memory-mb", "1"]).splitlines()[-1])
        rows, counters = decode(lines)
        for k in ["read", "rejected", "late", "field_errors"]:
            if summary[k] != counters[k]:
                failures.append("summary %s: got %r expected %r" % (k, summary[k], counters[k]))

        # Backfilling the same file again adds nothing; --compact rewrites the (uncompressed)
        # bulk-written files, and every answer below is read from the compacted DB.
        again = json.loads(run([tessera, "backfill", "--sql", sql, "--input", events, "--db", db,
                                "--compact"]).splitlines()[-1])
        if again["read"] != 0 or again["files_skipped"] != 1:
            failures.append("re-backfill of the same file was not skipped: %r" % again)

        # A truncated .gz fails (exit 1) after committing the lines before the damage; retrying
        # with the complete file continues exactly: the same features as one clean backfill.
        import gzip
        full_gz = gzip.compress(("\n".join(lines) + "\n").encode())
        tgz = os.path.join(tmp, "events.ndjson.gz")
        with open(tgz, "wb") as f:
            f.write(full_gz[:len(full_gz) * 6 // 10])
        db3 = os.path.join(tmp, "db3")
        bf3 = [tessera, "backfill", "--sql", sql, "--input", tgz, "--db", db3, "--memory-mb", "1"]
        p = subprocess.run(bf3, capture_output=True, text=True)
        if p.returncode != 1 or "truncated gzip" not in p.stderr:
            failures.append("truncated .gz: exit %d, stderr %r" % (p.returncode, p.stderr[-300:]))
        with open(tgz, "wb") as f:
            f.write(full_gz)
        s3 = json.loads(run(bf3).splitlines()[-1])
        if s3["files_resumed"] != 1 or not 0 < s3["read"] < len(lines):
            failures.append("complete .gz after a truncated one did not resume: %r" % s3)
        plain3 = json.loads(run(bf3[:5] + [events] + bf3[6:]).splitlines()[-1])
        if plain3["files_skipped"] != 1 or plain3["read"] != 0:
            failures.append("plain copy of a complete .gz was not skipped: %r" % plain3)
        probe_users = ["u%d" % i for i in range(0, 300, 7)]
        for at in (base + span // 2, base + span + HOUR):
            # Equal, floats up to rounding: the two runs' tiles split the rows differently, and
            # the time-decayed sums are exact merges up to the last bits (README). (Not `all`:
            # the lifetime tiles fold days at other flushes, so its KLL median may differ within
            # the sketch's bound, which the brute-force checks below hold it to.)
            if not same_answers(
                    tessera_get(tessera, db3, "user_stats", probe_users, at, "5m,1h,1d,7d"),
                    tessera_get(tessera, db, "user_stats", probe_users, at, "5m,1h,1d,7d")):
                failures.append("truncated-then-complete .gz differs from a clean backfill at %d"
                                % at)

        # Bad inputs and a damaged DB directory are clear errors that change nothing.
        for bad, want in ((tmp, "is a directory"), (os.path.join(tmp, "nope.ndjson"),
                                                   "no such file")):
            p = subprocess.run(bf3[:5] + [bad] + bf3[6:], capture_output=True, text=True)
            if p.returncode == 0 or want not in p.stderr or bad not in p.stderr:
                failures.append("--input %s: exit %d, stderr %r" % (bad, p.returncode, p.stderr))
        os.remove(os.path.join(db3, "CURRENT"))
        p = subprocess.run(bf3, capture_output=True, text=True)
        if p.returncode == 0 or "no CURRENT" not in p.stderr:
            failures.append("damaged DB: exit %d, stderr %r" % (p.returncode, p.stderr))
        if not any(n.endswith(".sst") for n in os.listdir(db3)):
            failures.append("the damaged DB's SST files were deleted")

        # The same stream in two files into a fresh DB, one backfill each, gives the same tiles.
        half = len(lines) // 2
        p1, p2 = os.path.join(tmp, "part1.ndjson"), os.path.join(tmp, "part2.ndjson.gz")
        with open(p1, "w") as f:
            f.write("\n".join(lines[:half]) + "\n")
        with gzip.open(p2, "wt") as f:
            f.write("\n".join(lines[half:]) + "\n")
        db2 = os.path.join(tmp, "db2")
        s1 = json.loads(run([tessera, "backfill", "--sql", sql, "--input", p1, "--db", db2])
                        .splitlines()[-1])
        s2 = json.loads(run([tessera, "backfill", "--sql", sql, "--input", p2, "--db", db2])
                        .splitlines()[-1])
        if s1["late"] + s2["late"] != counters["late"]:
            failures.append("split backfill late %d+%d != %d" % (s1["late"], s2["late"], counters["late"]))

        # Reference answers.
        ref = Reference(rows)

        windows = WINDOWS
        wlist = ",".join(windows)
        users = USERS
        ats = [base + span // 2, base + span + HOUR, base + DAY, base + 5 * HOUR + 17 * 60 * 1000]
        ats += [base + rng.randint(0, span) for _ in range(8)]
        ats += [((base + rng.randint(0, span)) // TILE) * TILE for _ in range(4)]
        checked = 0
        for target_db in (db, db2):
            for at in ats:
                results = tessera_get(tessera, target_db, "user_stats", users, at, wlist)
                for res in results:
                    for wname, wms in windows.items():
                        exp = expect_user_stats(ref.window("user", res["key"], at, wms), at)
                        failures += check_user_stats(res["windows"][wname], exp,
                                                     "user_stats key=%s at=%d w=%s" % (res["key"], at, wname))
                        checked += 1
                for res in tessera_get(tessera, target_db, "user_buckets", users, at, wlist):
                    for wname, wms in windows.items():
                        failures += check_buckets(res["windows"][wname],
                                                  ref.window("user", res["key"], at, wms),
                                                  "user_buckets key=%s at=%d w=%s" %
                                                  (res["key"], at, wname))
                        checked += 1
                for res in tessera_get(tessera, target_db, "country_device", CD_KEYS, at, wlist):
                    for wname, wms in windows.items():
                        failures += check_cd(res["windows"][wname],
                                             ref.window("cd", res["key"], at, wms),
                                             "country_device key=%s at=%d w=%s" % (res["key"], at, wname))
                        checked += 1

        # get --meta: the newest row each answer includes (its longest window's, brute force) and
        # the watermark the DB holds (newest on-time row − lateness); the features as without it.
        watermark = max(r["ts"] for r in rows) - LATENESS
        meta_checked = 0
        for target_db in (db, db2):
            for at in ats[:8]:
                for view, kind, keys in (("user_stats", "user", users),
                                         ("country_device", "cd", CD_KEYS)):
                    with_meta = tessera_get(tessera, target_db, view, keys, at, wlist, meta=True)
                    plain = tessera_get(tessera, target_db, view, keys, at, wlist)
                    for res, res_plain in zip(with_meta, plain):
                        where = "get --meta %s key=%s at=%d" % (view, res["key"], at)
                        failures += check_meta(res, ref, kind, res["key"], at, windows, watermark,
                                               where)
                        without = {k: v for k, v in res.items() if k != "meta"}
                        if "meta" in res_plain or without != res_plain:
                            failures.append("%s: features differ from get without --meta" % where)
                        meta_checked += 1
        print("get --meta: %d answers' newest event time and watermark equal the brute force"
              % meta_checked)

        # Bad input to get is a clear error.
        p = subprocess.run([tessera, "get", "--db", db, "--view", "user_stats", "--key", "u1",
                            "--windows", "7m"], capture_output=True, text=True)
        if p.returncode == 0 or "not a multiple" not in p.stderr:
            failures.append("window 7m was not rejected clearly: %r" % p.stderr)
        p = subprocess.run([tessera, "get", "--db", db, "--view", "nope", "--key", "u1"],
                           capture_output=True, text=True)
        if p.returncode == 0 or "nope" not in p.stderr:
            failures.append("unknown view was not rejected clearly: %r" % p.stderr)

        print("checked %d (key, at, window) answers; summary %s" % (checked, json.dumps(summary)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(failures)


if __name__ == "__main__":
    main()
