#!/usr/bin/env python3
"""End-to-end check of `tessera serve` following a live `tessera run` on the same DB.

`tessera serve` opens the DB as a RocksDB secondary instance and catches up with the writer every
--refresh-interval, so what it answers lags what was posted to `run` by at most `run`'s
--flush-interval (open tiles live only in the `run` process) plus serve's --refresh-interval
(README: "tessera serve beside tessera run"). This test:

1. starts `tessera run` (flush 200 ms) and then `tessera serve` (refresh 300 ms) on one DB;
2. posts batches of events to `run` (every other one gzip-compressed) and polls serve until each batch is visible: the delay must
   stay within flush + refresh + a scheduling allowance (ALLOWANCE_S, for a loaded CI machine),
   and the counts must equal what was posted (run and serve agree exactly), as do their
   `meta=true` answers (newest event time; run's live watermark, serve's committed one);
3. checks serve's read-only ingest answer (405 naming `tessera run`), HEAD, /readyz and the
   staleness metric tessera_serve_catchup_age_seconds;
4. restarts `run` with SQL that adds a view: serve reloads the catalog and serves the new view
   without a restart (a new writer process, a new MANIFEST);
5. stops `run`: serve keeps answering the same (a DB nobody writes), stays ready, and a second
   serve started on the idle DB answers the same; SIGTERM exits 0 and removes the temporary
   secondary directory.

Usage: serve_follow_e2e_test.py PATH/TO/tessera
"""
import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live_e2e_test as live  # noqa: E402  (Server, Client, Failures, metrics helpers)
from harness import rfc3339  # noqa: E402

FLUSH_S = 0.2
REFRESH_S = 0.3
ALLOWANCE_S = 2.0  # process scheduling on a shared CI machine, beyond the documented bound

SQL = """
CREATE SOURCE clicks (user_id STRING, ts TIMESTAMP) WITH (connector = 'http');
CREATE FEATURE VIEW click_counts AS SELECT user_id, COUNT(*) AS clicks FROM clicks GROUP BY user_id;
"""
SQL_MORE = SQL + """
CREATE FEATURE VIEW last_click AS SELECT user_id, MAX(ts) AS last_ts FROM clicks GROUP BY user_id;
"""


class ServeProcess(live.Server):
    """One `tessera serve` process (same start/terminate/log handling as `tessera run`)."""

    def __init__(self, tessera, db, log_path, extra=(), env=None):
        super().__init__(tessera, None, db, log_path, extra, env)

    def command(self):
        return [self.tessera, "serve", "--db", self.db, "--http", "127.0.0.1:0",
                "--refresh-interval", "%dms" % int(REFRESH_S * 1000)] + self.extra


def clicks(client, user, view="click_counts", feature="clicks"):
    st, text = client.get("/v1/features/%s/%s?windows=1d" % (view, user))
    if st != 200:
        return None
    return json.loads(text)["windows"]["1d"][feature]


def post_batch(run_client, user, n, failures, compress=False):
    """Posts `n` events of `user` dated now, now - 1 ms, …; returns the newest event time."""
    now = int(time.time() * 1000)
    body = "".join(json.dumps({"user_id": user, "ts": now - i}) + "\n" for i in range(n))
    headers = None
    if compress:
        body, headers = gzip.compress(body.encode()), {"Content-Encoding": "gzip"}
    st, text = run_client.post("/v1/ingest/clicks", body, headers)
    failures.check(st == 200 and json.loads(text).get("accepted") == n,
                   "ingest to run: %d %s" % (st, text))
    return now


def wait_visible(serve_client, user, expected, bound_s, failures, what, **kw):
    """Polls serve until `user` has `expected`; returns the delay in seconds."""
    t0 = time.monotonic()
    got = None
    while time.monotonic() - t0 < bound_s + 10:
        got = clicks(serve_client, user, **kw)
        if got == expected:
            break
        time.sleep(0.01)
    delay = time.monotonic() - t0
    failures.check(got == expected, "%s: serve shows %r, expected %r" % (what, got, expected))
    failures.check(delay <= bound_s, "%s: visible through serve after %.2f s, bound %.2f s"
                   % (what, delay, bound_s))
    return delay


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tessera")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    failures = live.Failures()
    tmp = tempfile.mkdtemp(prefix="tessera-serve-e2e-")
    db = os.path.join(tmp, "db")
    sql, sql_more = os.path.join(tmp, "a.sql"), os.path.join(tmp, "b.sql")
    with open(sql, "w") as f:
        f.write(SQL)
    with open(sql_more, "w") as f:
        f.write(SQL_MORE)
    run_extra = ["--flush-interval", "%dms" % int(FLUSH_S * 1000)]
    bound = FLUSH_S + REFRESH_S + ALLOWANCE_S
    procs = []
    t_start = time.monotonic()
    try:
        run = live.Server(args.tessera, sql, db, os.path.join(tmp, "run.log"), run_extra).start()
        procs.append(run)
        secondary = os.path.join(tmp, "secondary")
        serve = ServeProcess(args.tessera, db, os.path.join(tmp, "serve.log"),
                             ["--secondary-dir", secondary, "--http-threads", "2"]).start()
        procs.append(serve)
        rc = live.Client(run.host, run.port)
        sc = live.Client(serve.host, serve.port)

        # --- 2: batches posted to run become visible through serve within the bound.
        delays = []
        total = 0
        newest = None
        for i in range(8):
            n = 5 + i
            now = post_batch(rc, "alice", n, failures, compress=i % 2 == 1)  # gzip bodies too
            newest = now if newest is None else max(newest, now)
            total += n
            delays.append(wait_visible(sc, "alice", total, bound, failures, "batch %d" % i))
        failures.check(clicks(rc, "alice") == total, "run disagrees: %r" % clicks(rc, "alice"))
        print("8 batches posted to run visible through serve after %s ms (bound %d ms = flush %d "
              "+ refresh %d + allowance %d)" % (", ".join("%.0f" % (d * 1e3) for d in delays),
                                                 bound * 1e3, FLUSH_S * 1e3, REFRESH_S * 1e3,
                                                 ALLOWANCE_S * 1e3))

        # meta=true: serve reports the watermark run committed, run its live one; with every
        # row flushed and seen through serve, both are the newest event time − 5 min (the
        # default lateness), and both answers' newest event time is the newest row posted.
        want = {"newest_event_time": rfc3339(newest), "watermark": rfc3339(newest - 300000)}
        for name, client in (("run", rc), ("serve", sc)):
            st, text = client.get("/v1/features/click_counts/alice?windows=1d&meta=true")
            got = json.loads(text).get("meta") if st == 200 else text
            failures.check(got == want, "%s meta: %r, expected %r" % (name, got, want))
        print("meta: run and serve agree on the newest event time and the watermark")

        # --- 3: read-only ingest, HEAD, readiness, staleness metric.
        st, text = sc.post("/v1/ingest/clicks", json.dumps({"user_id": "x", "ts": 1}) + "\n")
        err = json.loads(text).get("error", "") if text.startswith("{") else ""
        failures.check(st == 405 and "read-only" in err and "tessera run" in err,
                       "ingest on serve: %d %s" % (st, text))
        failures.check(clicks(sc, "x") == 0, "serve stored an event")
        st, _ = sc.request("HEAD", "/healthz")
        failures.check(st == 200, "HEAD /healthz on serve: %d" % st)
        st, text = sc.get("/readyz")
        failures.check(st == 200, "/readyz on serve: %d %s" % (st, text))
        ms, _ = live.metrics(sc)
        age = live.metric(ms, "tessera_serve_catchup_age_seconds")
        failures.check(age is not None and age < REFRESH_S + ALLOWANCE_S,
                       "tessera_serve_catchup_age_seconds = %r" % age)
        # batchGets run on serve's read pool: the same answer as the GET.
        st, text = sc.post("/v1/features:batchGet",
                           json.dumps({"view": "click_counts", "keys": ["alice", "nobody"],
                                       "windows": ["1d"]}))
        got = [r["windows"]["1d"]["clicks"] for r in json.loads(text)["results"]] \
            if st == 200 else None
        failures.check(got == [total, 0], "batchGet on serve: %d %s" % (st, text[:200]))
        st, text = sc.get("/v1/features/click_counts/alice?windows=1d&bogus=1")
        failures.check(st == 400 and "bogus" in text, "unknown parameter on serve: %d %s"
                       % (st, text))
        print("serve: ingest 405 (%s), HEAD 200, /readyz 200, catch-up age %.3f s"
              % (err[:60], age or -1))

        # --- 4: a new writer process registers a new view; serve picks it up.
        rcode, secs = run.terminate()
        failures.check(rcode == 0, "run SIGTERM: exit %r" % rcode)
        procs.remove(run)
        rc.close()
        st, _ = sc.get("/v1/features/last_click/alice")
        failures.check(st == 404, "last_click before it exists: %d" % st)
        run = live.Server(args.tessera, sql_more, db, os.path.join(tmp, "run.log"),
                          run_extra).start()
        procs.append(run)
        rc = live.Client(run.host, run.port)
        post_batch(rc, "bob", 3, failures)
        d = wait_visible(sc, "bob", 3, bound, failures, "after run restart")
        t0 = time.monotonic()
        while time.monotonic() - t0 < bound and clicks(sc, "bob", "last_click", "last_ts") is None:
            time.sleep(0.01)
        failures.check(clicks(sc, "bob", "last_click", "last_ts") is not None,
                       "serve does not serve the view the new run registered")
        st, text = sc.get("/v1/views")
        names = {v["name"] for v in json.loads(text)["views"]} if st == 200 else set()
        failures.check(names == {"click_counts", "last_click"}, "/v1/views on serve: %s" % names)
        ms, _ = live.metrics(sc)
        failures.check((live.metric(ms, "tessera_serve_catalog_reloads_total") or 0) >= 1,
                       "no catalog reload counted")
        print("run restarted with a new view: serve saw new events after %.0f ms and the new "
              "view without a restart" % (d * 1e3))

        # --- 5: nobody writes any more.
        rcode, _ = run.terminate()
        failures.check(rcode == 0, "run SIGTERM: exit %r" % rcode)
        procs.remove(run)
        rc.close()
        time.sleep(REFRESH_S * 3)
        failures.check(clicks(sc, "alice") == total and clicks(sc, "bob") == 3,
                       "serve after run stopped: %r %r" % (clicks(sc, "alice"), clicks(sc, "bob")))
        st, text = sc.get("/readyz")
        failures.check(st == 200, "/readyz with no writer: %d %s" % (st, text))
        ms, _ = live.metrics(sc)
        age = live.metric(ms, "tessera_serve_catchup_age_seconds")
        failures.check(age is not None and age < REFRESH_S + ALLOWANCE_S,
                       "catch-up age with no writer: %r" % age)
        # Without --secondary-dir: a temporary one under $TMPDIR, removed at exit.
        idle_tmp = os.path.join(tmp, "idle-tmp")
        os.mkdir(idle_tmp)
        idle = ServeProcess(args.tessera, db, os.path.join(tmp, "serve2.log"),
                            env=dict(os.environ, TMPDIR=idle_tmp)).start()
        procs.append(idle)
        ic = live.Client(idle.host, idle.port)
        failures.check(clicks(ic, "alice") == total and clicks(ic, "bob") == 3,
                       "a serve started on the idle DB: %r %r" % (clicks(ic, "alice"),
                                                                  clicks(ic, "bob")))
        ic.close()
        sc.close()
        for p in (idle, serve):
            rcode, secs = p.terminate()
            failures.check(rcode == 0 and secs < 5, "serve SIGTERM: exit %r after %.2f s"
                           % (rcode, secs))
            procs.remove(p)
        leftovers = os.listdir(idle_tmp)
        failures.check(not leftovers, "temporary secondary dirs left behind: %s" % leftovers)
        print("no writer: serve still answers and is ready; a new serve on the idle DB agrees; "
              "SIGTERM exits 0")
    finally:
        for p in procs:
            if p.proc is not None and p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
        if failures:
            for p in procs:
                print("log tail:\n" + p.log_tail())
        if args.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("total %.1f s" % (time.monotonic() - t_start))
    for f in failures[:40]:
        print("FAIL:", f)
    if failures:
        print("%d failures" % len(failures))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
