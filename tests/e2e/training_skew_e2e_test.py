#!/usr/bin/env python3
"""No training/serving skew: what `tessera run` serves at time t equals what `tessera
training-set` computes for (key, t), for every key, feature and window.

A stream in event-time order (ties included) is posted to `tessera run`'s http source in batches
(wait=visible; flushes every 100 ms, so reads merge flushed tiles with open ones). Between two
batches the test reads every key with batchGet at a time t after the last delivered row and at or
before the next one — "now" for a stream that has delivered every row before t — at arbitrary
milliseconds. Then one training set over the whole stream, with a spine of every (key, t) read,
must give the same values: exactly, except the one DOUBLE sum, which the two sides add in a
different order (within 1e-12 relative).

Usage: training_skew_e2e_test.py TESSERA_BINARY
"""
import sys

sys.dont_write_bytecode = True

import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

import harness as h  # noqa: E402

SQL = """
CREATE SOURCE plays (
  user_id STRING, track_id STRING, ms_played BIGINT, country STRING, score DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '10' MINUTE
) WITH (connector = 'http', format = 'json');

CREATE FEATURE VIEW user_listening WITH (tile = '5m') AS
SELECT user_id, COUNT(*) AS plays, SUM(ms_played) AS total_ms, MIN(ms_played) AS min_ms,
       MAX(ms_played) AS max_ms, AVG(ms_played) AS avg_ms, LAST_VALUE(track_id) AS last_track,
       FIRST_VALUE(track_id) AS first_track, LAST_K(track_id, 3) AS recent,
       APPROX_COUNT_DISTINCT(track_id) AS uniq_tracks, TOP_K(country, 2) AS top_countries,
       SUM(score) AS sum_score
FROM plays GROUP BY user_id;

CREATE FEATURE VIEW user_country WITH (tile = '5m') AS
SELECT user_id, country, COUNT(*) AS plays, MAX(ms_played) AS longest
FROM plays WHERE ms_played >= 1000 GROUP BY user_id, country;
"""
WINDOWS = ["5m", "1h", "6h", "1d"]
USERS = ["u%d" % i for i in range(40)]
COUNTRIES = ["SE", "US", "DE"]


def stream(rng, n):
    """Rows in event-time order over ~30 hours, some sharing a millisecond."""
    t = h.BASE
    rows = []
    for _ in range(n):
        if rng.random() > 0.1:
            t += rng.randint(1, 60_000)
        rows.append({"user_id": rng.choice(USERS[:30]), "track_id": "t%d" % rng.randint(0, 50),
                     "ms_played": rng.randint(0, 300_000) if rng.random() > 0.05 else None,
                     "country": rng.choice(COUNTRIES) if rng.random() > 0.05 else None,
                     "score": round(rng.uniform(-1, 10), 3), "ts": t})
    return rows


def main():
    tessera = os.path.abspath(sys.argv[1])
    failures = h.Failures()
    rng = random.Random(42)
    tmp = tempfile.mkdtemp(prefix="tessera-skew-")
    server = None
    try:
        rows = stream(rng, 4000)
        lines = [json.dumps(r) for r in rows]
        sql = os.path.join(tmp, "views.sql")
        with open(sql, "w") as f:
            f.write(SQL)
        server = h.Server(tessera, sql, os.path.join(tmp, "db"), os.path.join(tmp, "run.log"),
                          extra=["--flush-interval", "100ms"]).start()
        client = h.Client(server.host, server.port)
        keys_cd = [[u, c] for u in USERS for c in COUNTRIES]
        reads = []  # (t, user results, (user, country) results)
        i = 0
        while i < len(rows):
            j = min(len(rows), i + rng.randint(1, 60))
            while j < len(rows) and rows[j]["ts"] == rows[j - 1]["ts"]:
                j += 1  # a batch ends between two distinct times
            status, body = client.ingest("plays", "\n".join(lines[i:j]) + "\n")
            if status != 200:
                failures.append("ingest: %d %s" % (status, body))
                break
            nxt = rows[j]["ts"] if j < len(rows) else rows[-1]["ts"] + h.HOUR
            t = rng.randint(rows[j - 1]["ts"] + 1, nxt)  # every delivered row is before t
            got = []
            for view, keys in (("user_listening", USERS), ("user_country", keys_cd)):
                status, body = client.post("/v1/features:batchGet", json.dumps(
                    {"view": view, "keys": keys, "windows": WINDOWS, "at": t}))
                if status != 200:
                    failures.append("batchGet %s: %d %s" % (view, status, body))
                got.append(json.loads(body)["results"] if status == 200 else [])
            reads.append((t, got[0], got[1]))
            i = j
        client.close()
        rc, _ = server.terminate()
        failures.check(rc == 0, "tessera run exited with %r" % rc)

        events = os.path.join(tmp, "events.ndjson")
        with open(events, "w") as f:
            f.write("\n".join(lines) + "\n")
        spine = os.path.join(tmp, "spine.ndjson")
        expected = []  # per spine row: (user result, cd result or None)
        with open(spine, "w") as f:
            for t, users, cds in reads:
                by_user = {r["key"]: r for r in users}
                for u, c in keys_cd:
                    cd = next(r for r in cds if r["key"] == "%s|%s" % (u, c))
                    f.write(json.dumps({"user_id": u, "country": c, "ts": t}) + "\n")
                    expected.append((by_user[u], cd))
        out = os.path.join(tmp, "out.ndjson")
        p = subprocess.run([tessera, "training-set", "--sql", sql, "--input", events, "--spine",
                            spine, "--views", "user_listening,user_country", "--windows",
                            ",".join(WINDOWS), "--out", out], capture_output=True, text=True)
        if p.returncode != 0:
            failures.append("training-set failed: %s" % p.stderr)
            return h.report(failures)
        with open(out) as f:
            got = [json.loads(line) for line in f]
        compared = 0
        for n, (row, (u_res, cd_res)) in enumerate(zip(got, expected)):
            for view, res in (("user_listening", u_res), ("user_country", cd_res)):
                for w in WINDOWS:
                    for feature, online in res["windows"][w].items():
                        offline = row["%s__%s__%s" % (view, feature, w)]
                        compared += 1
                        same = offline == online or (
                            feature == "sum_score" and h.close(offline, online, rel=1e-12))
                        if not same:
                            failures.append("t=%d %s %s %s %s: served %r, training set %r"
                                            % (row["ts"], view, res["key"], w, feature, online,
                                               offline))
            if len(failures) > 40:
                break
        failures.check(len(got) == len(expected), "%d training rows for %d reads"
                       % (len(got), len(expected)))
        print("%d reads at %d times; %d feature values compared" % (len(expected), len(reads),
                                                                   compared))
    finally:
        if server is not None:
            server.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return h.report(failures)


if __name__ == "__main__":
    sys.exit(main())
