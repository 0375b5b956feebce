#!/usr/bin/env python3
"""The attacks of issue 8 replayed against a real `tessera run` / `tessera backfill` / `get`.

Each check is one way a careless or hostile client once lost data or got a wrong answer:
a far-future timestamp blinding a source, composite keys that collided, `at` near the int64
limits, SUM wrapping on BIGINT overflow, a read right after an acknowledged POST missing the rows,
a batch id reused for another body, junk HTTP methods growing /metrics, and many new keys growing
memory without bound.

Usage: attack_e2e_test.py PATH/TO/tessera [--keep]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Client, Failures, Server, metric, metrics, report  # noqa: E402

SQL = """
CREATE SOURCE ev (user_id STRING, device STRING, item STRING, v BIGINT, ts TIMESTAMP)
  WITH (connector = 'http');
CREATE FEATURE VIEW per_user AS
SELECT user_id, COUNT(*) AS n, SUM(v) AS total, APPROX_COUNT_DISTINCT(item) AS items
FROM ev GROUP BY user_id;
CREATE FEATURE VIEW per_pair AS
SELECT user_id, device, COUNT(*) AS n, SUM(v) AS total FROM ev GROUP BY user_id, device;
"""
INT64_MAX = 2**63 - 1


def now_ms():
    return int(time.time() * 1000)


def line(user, v=1, ts=None, device="web", item="i"):
    return json.dumps({"user_id": user, "device": device, "item": item, "v": v,
                       "ts": now_ms() - 1000 if ts is None else ts})


def body(*lines):
    return ("\n".join(lines) + "\n").encode()


def feature(client, view, key, windows="1d", at=None):
    path = "/v1/features/%s/%s?windows=%s" % (view, urllib.parse.quote(key, safe=""), windows)
    if at is not None:
        path += "&at=%s" % at
    st, text = client.get(path)
    return st, (json.loads(text) if text.startswith("{") else text)


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tessera")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    tessera = os.path.abspath(args.tessera)
    tmp = tempfile.mkdtemp(prefix="tessera-attack-")
    failures = Failures()
    try:
        sql = os.path.join(tmp, "views.sql")
        with open(sql, "w") as f:
            f.write(SQL)
        db = os.path.join(tmp, "db")
        server = Server(tessera, sql, db, os.path.join(tmp, "run.log"),
                        ["--flush-interval", "200ms"]).start()
        c = Client(server.host, server.port)

        # 1. One row from a clock in year 9999 (and one a day fast) blinds nothing.
        st, text = c.ingest("ev", body(line("f1", ts="9999-12-31T00:00:00Z"),
                                       line("f1", ts=now_ms() + 86_400_000), line("f1")))
        r = json.loads(text)
        failures.check(st == 200 and r["accepted"] == 1 and r["rejected"] == 2
                       and r.get("future") == 2 and "9999-12-31" in json.dumps(r["errors"]),
                       "far-future rows: %d %s" % (st, text))
        st, text = c.ingest("ev", body(line("f1", ts=now_ms() - 60_000)))
        r = json.loads(text)
        failures.check(r["accepted"] == 1 and "late" not in r,
                       "a row 1 min old after a year-9999 row: %s" % text)
        st, j = feature(c, "per_user", "f1")
        failures.check(st == 200 and j["windows"]["1d"]["n"] == 2, "f1 reads %r" % (j,))

        # 2. Composite keys whose parts hold '|' and '\' do not share tiles.
        c.ingest("ev", body(line("a|b", v=1, device="c"), line("a", v=10, device="b|c"),
                            line("a\\", v=100, device="|c")))
        for key, total in (("a\\|b|c", 1), ("a|b\\|c", 10), ("a\\\\|\\|c", 100)):
            st, j = feature(c, "per_pair", key)
            failures.check(st == 200 and j["windows"]["1d"]["total"] == total and j["key"] == key,
                           "composite key %r: %d %r, expected total %d" % (key, st, j, total))
        st, j = feature(c, "per_pair", "a|b|c")
        failures.check(st == 400 and "part" in str(j), "unescaped 3-part key: %d %r" % (st, j))
        st, text = c.post("/v1/features:batchGet", json.dumps(
            {"view": "per_pair", "keys": [["a|b", "c"], ["a", "b|c"]], "windows": ["1d"]}))
        totals = [x["windows"]["1d"]["total"] for x in json.loads(text)["results"]] \
            if st == 200 else text
        failures.check(totals == [1, 10], "batchGet with key arrays: %r" % (totals,))

        # 3. `at` near the int64 limits is a 400 naming the parameter.
        for at in ("9223372036854775807", "-9223372036854775808", "99999999999999999999"):
            st, j = feature(c, "per_user", "f1", at=at)
            failures.check(st == 400 and "'at'" in str(j), "at=%s: %d %r" % (at, st, j))
        st, j = feature(c, "per_user", "f1", windows="1h,1h")
        failures.check(st == 400, "duplicate windows: %d %r" % (st, j))

        # 4. SUM over BIGINT does not wrap.
        c.ingest("ev", body(line("big", v=INT64_MAX), line("big", v=INT64_MAX)))
        st, j = feature(c, "per_user", "big")
        failures.check(st == 200 and j["windows"]["1d"]["total"] is None
                       and j["windows"]["1d"]["n"] == 2, "two BIGINT max rows: %r" % (j,))

        # 5. Read-your-writes on one keep-alive connection, in a loop.
        misses = 0
        for i in range(1, 101):
            st, text = c.ingest("ev", body(line("rw")))
            st, j = feature(c, "per_user", "rw", windows="1h")
            misses += 0 if st == 200 and j["windows"]["1h"]["n"] == i else 1
        failures.check(misses == 0, "read-your-writes: %d of 100 reads missed the POST" % misses)

        # 6. A batch id reused for another body is refused; a misspelt parameter too.
        b1 = body(line("bid", v=1))
        st1, _ = c.ingest("ev", b1, "batch-1")
        st2, text2 = c.ingest("ev", body(line("bid", v=99)), "batch-1")
        st3, text3 = c.ingest("ev", b1, "batch-1")
        failures.check(st1 == 200 and st2 == 409 and st3 == 200
                       and json.loads(text3).get("duplicate") is True,
                       "batch id reuse: %d, %d %s, %d %s" % (st1, st2, text2, st3, text3))
        st, text = c.post("/v1/ingest/ev?batchid=x", b1)
        failures.check(st == 400 and "batchid" in text, "?batchid=: %d %s" % (st, text))

        # 7. Junk HTTP methods do not grow /metrics.
        _, before = c.get("/metrics")
        for i in range(200):
            j = Client(server.host, server.port)
            try:
                j.request("JUNK%03d" % i, "/healthz")
            except Exception:  # the server may close the connection: fine
                pass
            j.close()
        _, after = c.get("/metrics")
        failures.check(len(after) < len(before) + 20_000 and "JUNK" not in after,
                       "/metrics grew from %d to %d bytes with junk methods" %
                       (len(before), len(after)))
        c.close()
        rc, _ = server.terminate()
        failures.check(rc == 0, "SIGTERM exit %r" % rc)

        # The future row did not persist a blinding watermark: after a restart and in a later
        # backfill, ordinary rows are on time.
        server = Server(tessera, sql, db, os.path.join(tmp, "run2.log")).start()
        c = Client(server.host, server.port)
        st, text = c.ingest("ev", body(line("f1", ts=now_ms() - 120_000)))
        failures.check(json.loads(text).get("accepted") == 1, "after restart: %s" % text)
        c.close()
        server.terminate()
        events = os.path.join(tmp, "events.ndjson")
        with open(events, "wb") as f:
            f.write(body(line("bf", ts="9999-01-01T00:00:00Z"), line("bf"), line("bf")))
        p = subprocess.run([tessera, "backfill", "--sql", sql, "--input", events, "--db", db],
                           capture_output=True, text=True)
        summary = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else p.stderr
        failures.check(isinstance(summary, dict) and summary["future"] == 1
                       and summary["late"] == 0, "backfill with a year-9999 row: %r" % (summary,))
        p = subprocess.run([tessera, "get", "--db", db, "--view", "per_pair", "--key", "a\\|b|c",
                            "--windows", "1d"], capture_output=True, text=True)
        got = json.loads(p.stdout) if p.returncode == 0 else p.stderr
        failures.check(isinstance(got, dict) and got["windows"]["1d"]["total"] == 1,
                       "get --key 'a\\|b|c': %r" % (got,))
        p = subprocess.run([tessera, "get", "--db", db, "--view", "per_user", "--key", "f1",
                            "--at", "9223372036854775807"], capture_output=True, text=True)
        failures.check(p.returncode == 2 and "--at" in p.stderr,
                       "get --at INT64_MAX: exit %d %s" % (p.returncode, p.stderr))

        # 8. Many new keys, with sketches that grow: the unflushed tiles (sketch heap included)
        # stay within the budget, flushed early, and the process's memory stays bounded by that
        # plus RocksDB's own caps (256 MiB block cache, 3 x 64 MiB memtables), not by the keys.
        mem_db = os.path.join(tmp, "mem-db")
        mem_sql = os.path.join(tmp, "mem.sql")
        with open(mem_sql, "w") as f:
            f.write(SQL.replace("APPROX_COUNT_DISTINCT(item) AS items",
                                "APPROX_COUNT_DISTINCT(item) AS items, "
                                "APPROX_PERCENTILE(v, 0.9) AS p90"))
        server = Server(tessera, mem_sql, mem_db, os.path.join(tmp, "mem.log"),
                        ["--memory-mb", "16", "--flush-interval", "60s"]).start()
        c = Client(server.host, server.port)
        ts = now_ms() - 1000
        peak, max_open, keys = 0.0, 0.0, 0
        for post in range(10):
            # 20k new keys per post, 5 rows each with distinct items and values.
            lines = [line("k%d-%d" % (post, i // 5), v=i, item="x%d" % i, ts=ts)
                     for i in range(100_000)]
            keys += 20_000
            st, text = c.ingest("ev", body(*lines))
            failures.check(st in (200, 503), "big post %d: %d %s" % (post, st, text[:200]))
            peak = max(peak, rss_mb(server.proc.pid))
            ms, _ = metrics(c)
            max_open = max(max_open, metric(ms, "tessera_open_tile_bytes", source="ev") or 0)
        flushes = metric(ms, "tessera_flush_seconds_count", source="ev") or 0
        print("%d new keys with sketches, --memory-mb 16: unflushed tiles at most %.0f MB, "
              "%d flushes, peak RSS %.0f MB" % (keys, max_open / 2**20, flushes, peak))
        failures.check(max_open <= 2 * 16 * 2**20,
                       "unflushed tiles reached %.0f MB with a 16 MB budget" % (max_open / 2**20))
        failures.check(flushes >= 3, "only %d flushes for 1M rows on a 16 MB budget" % flushes)
        failures.check(peak < 900, "RSS reached %.0f MB with a 16 MB tile budget" % peak)
        c.close()
        server.terminate()
    finally:
        if args.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    report(failures)


if __name__ == "__main__":
    main()
