#!/usr/bin/env python3
"""End-to-end check of `tessera backfill` + `tessera get` against a brute force over raw rows.

Generates a stream with disorder, late rows, malformed lines, NULLs, type errors, both timestamp
forms (epoch ms and RFC 3339 with offsets), backfills it (twice, to prove a file is not counted
again, and in two halves into a second DB to prove incremental backfill adds up), then compares
every column of many (key, at, window) answers with an independent computation written here.

Usage: backfill_e2e_test.py PATH/TO/tessera [--seed N] [--events N]
"""
import argparse
import bisect
import datetime as dt
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile

TILE = 5 * 60 * 1000
HOUR = 3600 * 1000
DAY = 24 * HOUR
LATENESS = 10 * 60 * 1000

SQL = """
-- Listening features for the end-to-end test.
CREATE SOURCE plays (
  user_id STRING, track_id STRING, ms_played BIGINT, skipped BOOLEAN,
  country STRING, device STRING, score DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '10' MINUTE
) WITH (connector = 'file', format = 'json');

CREATE FEATURE VIEW user_stats WITH (tile = '5m') AS
SELECT user_id,
       COUNT(*) AS plays,
       COUNT(ms_played) AS plays_with_ms,
       SUM(ms_played) AS total_ms,
       MIN(ms_played) AS min_ms,
       MAX(ms_played) AS max_ms,
       AVG(score) AS avg_score,
       SUM(score) AS sum_score,
       FIRST_VALUE(track_id) AS first_track,
       LAST_VALUE(track_id) AS last_track,
       LAST_K(track_id, 3) AS recent_tracks,
       APPROX_COUNT_DISTINCT(track_id) AS uniq_tracks,
       APPROX_PERCENTILE(ms_played, 0.5) AS p50_ms,
       TOP_K(country, 2) AS top_countries,
       SUM(CASE WHEN skipped THEN 1 ELSE 0 END) * 1.0 / COUNT(*) AS skip_rate,
       SUM(ms_played) / COUNT(ms_played) AS avg_ms
FROM plays
WHERE country IS NULL OR country <> 'XX'
GROUP BY user_id;

CREATE FEATURE VIEW country_device AS
SELECT country, device, COUNT(*) AS plays, MAX(score) AS best
FROM plays
WHERE ms_played >= 1000
GROUP BY country, device;
"""


def rfc3339(ms, offset_min=0):
    tz = dt.timezone(dt.timedelta(minutes=offset_min))
    t = dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).astimezone(tz)
    s = t.strftime("%Y-%m-%dT%H:%M:%S") + ".%03d" % (ms % 1000)
    if offset_min == 0:
        return s + "Z"
    sign = "+" if offset_min > 0 else "-"
    o = abs(offset_min)
    return s + "%s%02d:%02d" % (sign, o // 60, o % 60)


def generate(rng, n_events, n_users, base_ms, span_ms):
    """Returns NDJSON lines. Time mostly increases with disorder inside the lateness bound,
    with some rows far older than the watermark."""
    users = ["u%d" % i for i in range(n_users)]
    weights = [1.0 / (i + 1) for i in range(n_users)]
    tracks = ["t%d" % i for i in range(400)]
    countries = ["SE", "US", "DE", "XX", None]
    devices = ["web", "ios", "android"]
    lines = []
    t = base_ms
    step = span_ms // n_events
    for i in range(n_events):
        t += rng.randint(0, 2 * step)
        r = rng.random()
        if r < 0.01:
            lines.append(rng.choice(['{"user_id": "u1", "ts": ', "not json", "[1,2,3]", '"str"',
                                     '{"user_id":"u2"}', '{"user_id":"u3","ts":"yesterday"}',
                                     '{"user_id":"u4","ts":true}', '{"user_id":"u5","ts":null}',
                                     '{"a":1}}']))
            continue
        if r < 0.015:
            lines.append("   ")  # blank: ignored, not counted
            continue
        ts = t
        if rng.random() < 0.05:
            ts = t - rng.randint(0, LATENESS - 1000)  # disorder within the lateness bound
        if rng.random() < 0.01:
            ts = t - LATENESS - rng.randint(1000, 3 * HOUR)  # late: beyond the watermark
        row = {}
        u = rng.choices(users, weights)[0]
        if rng.random() < 0.01:
            row["user_id"] = None
        elif rng.random() < 0.005:
            row["user_id"] = 12345  # wrong type -> NULL key + field error
        else:
            row["user_id"] = u
        row["track_id"] = rng.choice(tracks) if rng.random() > 0.03 else None
        m = rng.randint(0, 300000)
        rm = rng.random()
        if rm < 0.03:
            row["ms_played"] = None
        elif rm < 0.04:
            row["ms_played"] = str(m)  # type error -> NULL
        elif rm < 0.05:
            pass  # missing -> NULL
        else:
            row["ms_played"] = m
        row["skipped"] = rng.random() < 0.3 if rng.random() > 0.02 else "yes"
        c = rng.choice(countries)
        if c is not None:
            row["country"] = c
        row["device"] = rng.choice(devices)
        row["score"] = round(rng.uniform(-5, 100), 3) if rng.random() > 0.05 else None
        if rng.random() < 0.5:
            row["ts"] = ts
        else:
            row["ts"] = rfc3339(ts, rng.choice([0, 0, 60, -300, 330]))
        row["extra"] = {"ignored": [1, 2]}
        items = list(row.items())
        rng.shuffle(items)
        lines.append(json.dumps(dict(items)))
    return lines


def parse_ts(v):
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v)
    if isinstance(v, str):
        try:
            s = v.replace("Z", "+00:00").replace("z", "+00:00")
            t = dt.datetime.fromisoformat(s)
            if t.tzinfo is None:
                return None
            return int(round(t.timestamp() * 1000))
        except ValueError:
            return None
    return None


def decode(lines):
    """The reference decoder: returns (rows, counters)."""
    types = {"user_id": "s", "track_id": "s", "ms_played": "i", "skipped": "b", "country": "s",
             "device": "s", "score": "d"}
    rows, c = [], {"read": 0, "rejected": 0, "late": 0, "field_errors": 0}
    max_ts = None
    for line in lines:
        if not line.strip():
            continue
        c["read"] += 1
        try:
            obj = json.loads(line)
        except ValueError:
            c["rejected"] += 1
            continue
        if not isinstance(obj, dict):
            c["rejected"] += 1
            continue
        ts = parse_ts(obj.get("ts"))
        if ts is None:
            c["rejected"] += 1
            continue
        row = {"ts": ts}
        for name, t in types.items():
            v = obj.get(name)
            ok = v is None or (t == "s" and isinstance(v, str)) or \
                (t == "i" and isinstance(v, int) and not isinstance(v, bool)) or \
                (t == "b" and isinstance(v, bool)) or \
                (t == "d" and isinstance(v, (int, float)) and not isinstance(v, bool))
            if not ok:
                c["field_errors"] += 1
                v = None
            if t == "d" and v is not None:
                v = float(v)
            row[name] = v
        if max_ts is not None and ts < max_ts - LATENESS:
            c["late"] += 1
            continue
        max_ts = ts if max_ts is None else max(max_ts, ts)
        rows.append(row)
    return rows, c


def window_rows(rows_by_key, key, at, w):
    to = -((-at) // TILE) * TILE
    frm = ((to - w) // TILE) * TILE
    rs = rows_by_key.get(key, [])
    times = [r["ts"] for r in rs]
    lo = bisect.bisect_left(times, frm)
    hi = bisect.bisect_left(times, to)
    # Stable: rows of equal time keep arrival order (sorted() below is stable).
    return rs[lo:hi]


def expect_user_stats(rs):
    def nn(col):
        return [r[col] for r in rs if r[col] is not None]
    ms, score, tracks = nn("ms_played"), nn("score"), [r for r in rs if r["track_id"] is not None]
    out = {"plays": len(rs), "plays_with_ms": len(ms), "total_ms": sum(ms) if ms else None,
           "min_ms": min(ms) if ms else None, "max_ms": max(ms) if ms else None,
           "avg_score": (sum(score) / len(score)) if score else None,
           "sum_score": sum(score) if score else None}
    by_time = sorted(tracks, key=lambda r: r["ts"])  # stable: ties keep arrival order
    out["first_track"] = by_time[0]["track_id"] if by_time else None
    # LAST: the largest time, ties -> later arrival.
    last = None
    for r in tracks:
        if last is None or r["ts"] >= last["ts"]:
            last = r
    out["last_track"] = last["track_id"] if last else None
    newest = sorted(range(len(tracks)), key=lambda i: (tracks[i]["ts"], i), reverse=True)
    out["recent_tracks"] = [tracks[i]["track_id"] for i in newest[:3]]
    out["uniq_tracks"] = len({r["track_id"] for r in tracks})
    out["p50_ms"] = sorted(ms)
    counts = {}
    for r in rs:
        if r["country"] is not None:
            counts[r["country"]] = counts.get(r["country"], 0) + 1
    out["top_countries"] = [k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:2]]
    skipped = sum(1 for r in rs if r["skipped"])
    out["skip_rate"] = skipped * 1.0 / len(rs) if rs else None
    out["avg_ms"] = sum(ms) / len(ms) if ms else None
    return out


def close(a, b, rel=1e-9):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


def check_user_stats(got, exp, where):
    errors = []
    exact = ["plays", "plays_with_ms", "total_ms", "min_ms", "max_ms", "first_track", "last_track",
             "recent_tracks", "top_countries"]
    for k in exact:
        if got[k] != exp[k]:
            errors.append("%s %s: got %r expected %r" % (where, k, got[k], exp[k]))
    for k in ["avg_score", "sum_score", "skip_rate", "avg_ms"]:
        if not close(got[k], exp[k]):
            errors.append("%s %s: got %r expected %r" % (where, k, got[k], exp[k]))
    u = exp["uniq_tracks"]
    if abs(got["uniq_tracks"] - u) > max(1, 0.02 * u):
        errors.append("%s uniq_tracks: got %r expected %r" % (where, got["uniq_tracks"], u))
    values = exp["p50_ms"]
    if not values:
        if got["p50_ms"] is not None:
            errors.append("%s p50_ms: got %r expected null" % (where, got["p50_ms"]))
    else:
        v = got["p50_ms"]
        if v is None:
            errors.append("%s p50_ms: got null" % where)
        else:
            # Rank error: the returned value's rank range must reach within 1% of q*n (+1 for
            # small n, where a rank is a whole row).
            n = len(values)
            lo = bisect.bisect_left(values, v) / n
            hi = bisect.bisect_right(values, v) / n
            slack = 0.01 + 1.0 / n
            if not (lo - slack <= 0.5 <= hi + slack):
                errors.append("%s p50_ms: %r has rank [%.4f, %.4f], expected 0.5" % (where, v, lo, hi))
    return errors


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit("command failed (%d): %s\nstdout:%s\nstderr:%s" %
                         (p.returncode, " ".join(cmd), p.stdout, p.stderr))
    return p.stdout


def get(tessera, db, view, keys, at, windows):
    cmd = [tessera, "get", "--db", db, "--view", view, "--at", str(at), "--windows", windows]
    for k in keys:
        cmd += ["--key", k]
    out = run(cmd)
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tessera")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--events", type=int, default=40000)
    args = ap.parse_args()
    tessera = os.path.abspath(args.tessera)
    rng = random.Random(args.seed)
    base = 1_767_225_600_000 + 7 * 3600 * 1000 + 123  # 2026-01-01T07:00:00.123Z
    span = 3 * DAY
    lines = generate(rng, args.events, 300, base, span)
    tmp = tempfile.mkdtemp(prefix="tessera-e2e-")
    failures = []
    try:
        sql = os.path.join(tmp, "views.sql")
        with open(sql, "w") as f:
            f.write(SQL)
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

        # Backfilling the same file again adds nothing.
        again = json.loads(run([tessera, "backfill", "--sql", sql, "--input", events, "--db", db])
                           .splitlines()[-1])
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
            if (get(tessera, db3, "user_stats", probe_users, at, "5m,1h,1d,7d") !=
                    get(tessera, db, "user_stats", probe_users, at, "5m,1h,1d,7d")):
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
        import gzip
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
        by_user, by_cd = {}, {}
        for r in rows:
            if r["user_id"] is not None and (r["country"] is None or r["country"] != "XX"):
                by_user.setdefault(r["user_id"], []).append(r)
            if r["ms_played"] is not None and r["ms_played"] >= 1000 and r["country"] is not None:
                by_cd.setdefault("%s|%s" % (r["country"], r["device"]), []).append(r)
        for d in (by_user, by_cd):
            for k in d:
                d[k].sort(key=lambda r: r["ts"])  # stable sort keeps arrival order for ties

        windows = {"5m": TILE, "1h": HOUR, "6h": 6 * HOUR, "1d": DAY, "7d": 7 * DAY}
        wlist = ",".join(windows)
        users = ["u0", "u1", "u2", "u3", "u7", "u50", "u299", "nobody"]
        ats = [base + span // 2, base + span + HOUR, base + DAY, base + 5 * HOUR + 17 * 60 * 1000]
        ats += [base + rng.randint(0, span) for _ in range(8)]
        ats += [((base + rng.randint(0, span)) // TILE) * TILE for _ in range(4)]
        checked = 0
        for target_db in (db, db2):
            for at in ats:
                results = get(tessera, target_db, "user_stats", users, at, wlist)
                for res in results:
                    for wname, wms in windows.items():
                        exp = expect_user_stats(window_rows(by_user, res["key"], at, wms))
                        failures += check_user_stats(res["windows"][wname], exp,
                                                     "user_stats key=%s at=%d w=%s" % (res["key"], at, wname))
                        checked += 1
                cd_keys = ["SE|web", "US|ios", "DE|android", "XX|web", "nowhere|web"]
                for res in get(tessera, target_db, "country_device", cd_keys, at, wlist):
                    for wname, wms in windows.items():
                        rs = window_rows(by_cd, res["key"], at, wms)
                        scores = [r["score"] for r in rs if r["score"] is not None]
                        exp = {"plays": len(rs), "best": max(scores) if scores else None}
                        got = res["windows"][wname]
                        if got["plays"] != exp["plays"] or not close(got["best"], exp["best"]):
                            failures.append("country_device key=%s at=%d w=%s: got %r expected %r"
                                            % (res["key"], at, wname, got, exp))
                        checked += 1

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
    for f in failures[:40]:
        print("FAIL:", f)
    if failures:
        print("%d failures" % len(failures))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
