#!/usr/bin/env python3
"""End-to-end test of `tessera training-set`: point-in-time features for a shuffled spine,
compared value by value with a brute force over the same events.

Events: the shared generator (disorder, late rows, malformed lines, NULLs, type errors, both
timestamp forms), split over a plain and a .gz file. Spine: user and (country, device) keys,
times at arbitrary milliseconds (some equal to event times, some on tile boundaries) as epoch ms
or RFC 3339 with offsets, labels and ids passed through; NULL, unseen and numeric keys.

Checks: spine order and pass-through columns; every feature of every window against the brute
force of align_down(t - W, 5m) <= ts < t over the rows a backfill keeps; CSV output (.csv.zst)
equal to the NDJSON one; a memory budget that forces several passes and one thread give the
same bytes; a bad spine time fails naming the line, and --skip-bad-spine skips it.

Usage: training_set_e2e_test.py TESSERA_BINARY
"""
import sys

sys.dont_write_bytecode = True

import bisect  # noqa: E402
import csv  # noqa: E402
import gzip  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

import harness as h  # noqa: E402

WINDOWS = ["5m", "1h", "6h", "1d", "all"]
USER_FEATURES = ["plays", "plays_with_ms", "total_ms", "min_ms", "max_ms", "avg_score",
                 "sum_score", "first_track", "last_track", "recent_tracks", "uniq_tracks",
                 "p50_ms", "top_countries", "skip_rate", "avg_ms", "decayed_ms", "decayed_plays"]


def pit_rows(index, key, t, w):
    """Rows of `key` with align_down(t - w, 5m) <= ts < t, in arrival order by time."""
    rs, times = index.get(key, ([], []))
    frm = ((t - w) // h.TILE) * h.TILE
    return rs[bisect.bisect_left(times, frm):bisect.bisect_left(times, t)]


def index_by(rows, keyfn):
    d = {}
    for r in rows:
        k = keyfn(r)
        if k is not None:
            d.setdefault(k, []).append(r)
    out = {}
    for k, rs in d.items():
        rs.sort(key=lambda r: r["ts"])  # stable: equal times keep arrival order
        out[k] = (rs, [r["ts"] for r in rs])
    return out


def make_spine(rng, rows, n):
    users = ["u%d" % i for i in range(300)] + ["nobody"]
    countries = ["SE", "US", "DE", "XX", "nowhere"]
    devices = ["web", "ios", "android"]
    event_times = [r["ts"] for r in rows]
    lo, hi = h.BASE - h.HOUR, h.BASE + 2 * h.DAY + 2 * h.HOUR
    spine = []
    for i in range(n):
        r = rng.random()
        if r < 0.2:
            t = rng.choice(event_times)  # exactly an event's time: that row must not count
        elif r < 0.3:
            t = (rng.randint(lo, hi) // h.TILE) * h.TILE  # a tile boundary
        else:
            t = rng.randint(lo, hi)
        row = {"row": i, "label": rng.random() < 0.3}
        k = rng.random()
        if k < 0.02:
            row["user_id"] = None
        elif k < 0.03:
            row["user_id"] = 12345  # a number for a STRING key: the text "12345"
        else:
            row["user_id"] = rng.choice(users)
        if rng.random() > 0.02:
            row["country"] = rng.choice(countries)
        row["device"] = rng.choice(devices)
        row["ts"] = t if rng.random() < 0.5 else h.rfc3339(t, rng.choice([0, 60, -300, 330]))
        row["_t"] = t
        spine.append(row)
    rng.shuffle(spine)
    return spine


def expect_cd(rs):
    scores = [r["score"] for r in rs if r["score"] is not None]
    return {"plays": len(rs), "best": max(scores) if scores else None}


def check_row(got, want_spine, users, cds, where):
    errors = []
    for k, v in want_spine.items():
        if k == "_t":
            continue
        if got.get(k, "<missing>") != v:
            errors.append("%s: spine column %s = %r, expected %r" % (where, k, got.get(k), v))
    t = want_spine["_t"]
    uid = want_spine["user_id"]
    ukey = None if uid is None else str(uid)
    cdkey = None
    if want_spine.get("country") is not None and want_spine.get("device") is not None:
        cdkey = (want_spine["country"], want_spine["device"])
    for w in WINDOWS:
        wms = h.WINDOWS[w]
        rs = pit_rows(users, ukey, t, wms) if ukey is not None else []
        got_u = {f: got.get("user_stats__%s__%s" % (f, w), "<missing>") for f in USER_FEATURES}
        errors += h.check_user_stats(got_u, h.expect_user_stats(rs, t),
                                     "%s user_stats %s" % (where, w))
        rs = pit_rows(cds, cdkey, t, wms) if cdkey is not None else []
        exp = expect_cd(rs)
        for f in ("plays", "best"):
            g = got.get("country_device__%s__%s" % (f, w), "<missing>")
            if g != exp[f] and not (isinstance(g, float) and h.close(g, exp[f])):
                errors.append("%s country_device %s %s: got %r expected %r" % (where, w, f, g, exp[f]))
    return errors


def training_set(tessera, sql, inputs, spine, out, *extra):
    cmd = [tessera, "training-set", "--sql", sql, "--spine", spine, "--views",
           "user_stats,country_device", "--windows", ",".join(WINDOWS), "--out", out]
    for i in inputs:
        cmd += ["--input", i]
    return subprocess.run(cmd + list(extra), capture_output=True, text=True, timeout=300)


def main():
    tessera = os.path.abspath(sys.argv[1])
    failures = h.Failures()
    tmp = tempfile.mkdtemp(prefix="tessera-ts-e2e-")
    try:
        rng = random.Random(20261206)
        lines = h.generate(rng, 40000, 300, h.BASE, 2 * h.DAY)
        rows, counters = h.decode(lines)
        sql = os.path.join(tmp, "views.sql")
        with open(sql, "w") as f:
            f.write(h.SQL)
        half = len(lines) // 2
        ev1, ev2 = os.path.join(tmp, "events1.ndjson"), os.path.join(tmp, "events2.ndjson.gz")
        with open(ev1, "w") as f:
            f.write("\n".join(lines[:half]) + "\n")
        with gzip.open(ev2, "wt") as f:
            f.write("\n".join(lines[half:]) + "\n")

        users = index_by([r for r in rows if r["country"] is None or r["country"] != "XX"],
                         lambda r: r["user_id"])
        cds = index_by([r for r in rows if r["ms_played"] is not None and r["ms_played"] >= 1000],
                       lambda r: None if r["country"] is None or r["device"] is None
                       else (r["country"], r["device"]))

        spine = make_spine(rng, rows, 4000)
        spine_path = os.path.join(tmp, "spine.ndjson")
        with open(spine_path, "w") as f:
            for r in spine:
                f.write(json.dumps({k: v for k, v in r.items() if k != "_t"}) + "\n")

        out = os.path.join(tmp, "out.ndjson")
        p = training_set(tessera, sql, [ev1, ev2], spine_path, out)
        if p.returncode != 0:
            failures.append("training-set failed: %s" % p.stderr)
            return h.report(failures)
        summary = json.loads(p.stdout.strip().splitlines()[-1])
        for k in ("read", "rejected", "late", "field_errors"):
            if summary[k] != counters[k]:
                failures.append("summary %s = %r, a backfill counts %r" % (k, summary[k], counters[k]))
        if summary["spine_rows"] != len(spine):
            failures.append("summary spine_rows = %r, expected %d" % (summary["spine_rows"], len(spine)))
        with open(out) as f:
            got = [json.loads(line) for line in f]
        if len(got) != len(spine):
            failures.append("%d output rows for %d spine rows" % (len(got), len(spine)))
        names = list(got[0].keys()) if got else []
        spine_cols = [k for k in spine[0].keys() if k != "_t"]
        if got and names[:len(spine_cols)] != spine_cols:
            failures.append("first columns %r, expected the spine's %r" % (names[:len(spine_cols)], spine_cols))
        for i, (g, s) in enumerate(zip(got, spine)):
            failures.extend(check_row(g, s, users, cds, "spine row %d (line %d)" % (s["row"], i + 1)))
            if len(failures) > 40:
                break
        print("checked %d spine rows x %d windows against brute force" % (len(got), len(WINDOWS)))

        # The same spine as CSV, into a compressed CSV: the same values as text.
        csv_spine = os.path.join(tmp, "spine.csv")
        with open(csv_spine, "w", newline="") as f:
            wr = csv.writer(f)
            wr.writerow(spine_cols)
            for r in spine:
                wr.writerow(["" if r.get(c) is None else
                             ("true" if r[c] is True else "false" if r[c] is False else r[c])
                             for c in spine_cols])
        csv_out = os.path.join(tmp, "out.csv.gz")
        p = training_set(tessera, sql, [ev1, ev2], csv_spine, csv_out)
        if p.returncode != 0:
            failures.append("CSV training-set failed: %s" % p.stderr)
        else:
            with gzip.open(csv_out, "rt", newline="") as f:
                table = list(csv.reader(f))
            if table[0] != names:
                failures.append("CSV header %r, expected %r" % (table[0][:8], names[:8]))
            for i, (crow, g) in enumerate(zip(table[1:], got)):
                for name, text in zip(table[0], crow):
                    if name in spine_cols:
                        continue
                    v = g[name]
                    want = "" if v is None else (json.dumps(v, separators=(",", ":"))
                                                 if isinstance(v, list) else
                                                 ("true" if v is True else "false" if v is False else
                                                  v if isinstance(v, str) else json.dumps(v)))
                    if text != want and not (isinstance(v, float) and text and h.close(float(text), v)):
                        failures.append("CSV row %d %s: %r, NDJSON has %r" % (i + 1, name, text, v))
                if len(failures) > 40:
                    break
            if len(table) - 1 != len(spine):
                failures.append("CSV has %d rows for %d spine rows" % (len(table) - 1, len(spine)))

        # Several passes (a tiny memory budget) and one thread: the same bytes.
        with open(out, "rb") as f:
            reference = f.read()
        for extra in (["--memory-mb", "1"], ["--threads", "1"]):
            other = os.path.join(tmp, "other.ndjson.zst")
            p = training_set(tessera, sql, [ev1, ev2], spine_path, other, *extra)
            if p.returncode != 0:
                failures.append("%s failed: %s" % (extra, p.stderr))
                continue
            data = subprocess.run(["zstd", "-dc", other], capture_output=True, check=True).stdout
            if data != reference:
                failures.append("%s: output differs from the default run" % extra)
            if extra[0] == "--memory-mb":
                passes = json.loads(p.stdout.strip().splitlines()[-1])["passes"]
                if passes < 2:
                    failures.append("--memory-mb 1 made %d pass(es), expected several" % passes)

        # A bad time: an error naming the line; --skip-bad-spine counts and skips it.
        bad = os.path.join(tmp, "bad.ndjson")
        with open(spine_path) as f:
            good_lines = f.read().splitlines()
        with open(bad, "w") as f:
            f.write("\n".join(good_lines[:5] + ['{"user_id":"u1","ts":"soon","row":-1}'] +
                              good_lines[5:10]) + "\n")
        p = training_set(tessera, sql, [ev1], bad, os.path.join(tmp, "bad-out.ndjson"))
        if p.returncode == 0 or "line 6" not in p.stderr:
            failures.append("a bad spine time: exit %d, stderr %r (expected an error naming line 6)"
                            % (p.returncode, p.stderr))
        if os.path.exists(os.path.join(tmp, "bad-out.ndjson")):
            failures.append("a failed run left its output file")
        p = training_set(tessera, sql, [ev1], bad, os.path.join(tmp, "bad-out.ndjson"),
                         "--skip-bad-spine")
        if p.returncode != 0:
            failures.append("--skip-bad-spine failed: %s" % p.stderr)
        else:
            s = json.loads(p.stdout.strip().splitlines()[-1])
            if s["spine_rows_skipped"] != 1 or s["spine_rows"] != 10:
                failures.append("--skip-bad-spine summary %r" % s)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return h.report(failures)


if __name__ == "__main__":
    sys.exit(main())
