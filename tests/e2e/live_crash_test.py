#!/usr/bin/env python3
"""Crash test: HTTP ingest into `tessera run` is exactly-once across kill -9.

Client threads post a generated stream (disorder, late rows, malformed lines, NULLs, type
errors) as NDJSON batches, every batch with a batch_id, and retry a batch — same id, same body —
on any connection error until they get an answer (re-reading the server's address, since every
restart listens on a new port). Meanwhile the test SIGKILLs the server at random moments
(seeded thresholds of acknowledged batches plus a random delay; the seed is printed) and
restarts it on the same DB, several times, until every batch is acknowledged. Then, and again
after one more kill -9 right after the last acknowledgement (nothing flushed yet), it checks:

- every batch's answer has the accepted/rejected of the reference decoder (a retried batch that
  the killed server had made durable comes back duplicate:true with the first append's counts);
- the sum of `accepted` over the answers equals the rows read back (COUNT(*) per device over all
  time) plus the late rows: nothing acknowledged lost, nothing counted twice;
- many (key, at, window) answers of user_stats and the composite-key country_device equal a
  brute force over exactly the acknowledged batches, each once (exact columns exact, sketches
  within their bounds, as in backfill_e2e_test.py).

The batches go out as in live_e2e_test.py (epochs posted concurrently, then a barrier), so the
late rows do not depend on how the client threads interleave — nor on where a kill lands: an
acknowledged batch is in the log at the position of its first durable append, and the replay
after a restart reads the log in order from the last flushed position.

Usage: live_crash_test.py PATH/TO/tessera [--seed N] [--events N] [--kills N]
"""
import argparse
import http.client
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import concurrent.futures

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as live  # noqa: E402  (stream plan, reference, server/client helpers)

SQL = live.LIVE_SQL + """
-- Every row once per device (the generator always sets one): all-time counts to read back.
CREATE FEATURE VIEW device_rows AS SELECT device, COUNT(*) AS n FROM plays GROUP BY device;
"""
DEVICES = ["web", "ios", "android"]
ALL_AT = live.BASE + live.SPAN + live.DAY  # with window 7d: every on-time row


class Target:
    """The current server address; replaced on every restart."""

    def __init__(self):
        self.lock = threading.Lock()
        self.addr = None

    def set(self, host, port):
        with self.lock:
            self.addr = (host, port)

    def get(self):
        with self.lock:
            return self.addr


class RetryingPoster:
    """Posts one client's batches; retries each (same id, same body) until it gets an answer."""

    def __init__(self, target, rng, pace):
        self.target, self.rng, self.pace = target, rng, pace
        self.conn = self.addr = None
        self.retries = 0

    def post(self, b):
        path = "/v1/ingest/plays?batch_id=" + b.batch_id
        while True:
            addr = self.target.get()
            if self.conn is None or self.addr != addr:
                if self.conn is not None:
                    self.conn.close()
                self.conn, self.addr = http.client.HTTPConnection(*addr, timeout=15), addr
            try:
                self.conn.request("POST", path, body=b.body,
                                  headers={"Content-Type": "application/x-ndjson"})
                r = self.conn.getresponse()
                text = r.read().decode(errors="replace")
            except (OSError, http.client.HTTPException):
                # Killed mid-request, refused while restarting, reset: retry the same batch.
                self.conn.close()
                self.conn = None
                self.retries += 1
                time.sleep(0.01)
                continue
            if r.status == 503:
                self.retries += 1
                time.sleep(0.01)
                continue
            if self.pace:
                time.sleep(self.rng.uniform(0, self.pace))
            return r.status, text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tessera")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--events", type=int, default=30000)
    ap.add_argument("--kills", type=int, default=8)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    print("seed %d (rerun with --seed %d), %d events, %d kills, %d clients" %
          (seed, seed, args.events, args.kills, args.clients), flush=True)
    tessera = os.path.abspath(args.tessera)
    rng = random.Random(seed)
    t_start = time.monotonic()

    lines = live.generate_stream(rng, args.events)
    epochs = live.build_epochs(lines, cap=args.clients * 200)
    live.check_epochs_order_free(epochs, random.Random(seed + 1))
    plan, batches = live.make_batches(epochs, args.clients, 200, rng, "crash%d" % seed)
    ordered = [l for b in batches for l in b.lines]
    rows, counters = live.decode(ordered, lateness=live.LIVE_LATENESS)
    total_accepted = sum(b.accepted for b in batches)
    assert total_accepted == counters["read"] - counters["rejected"]
    print("stream: %d lines, %d batches in %d epochs; reference %s" %
          (len(lines), len(batches), len(epochs), json.dumps(counters)))

    tmp = tempfile.mkdtemp(prefix="tessera-live-crash-")
    failures = live.Failures()
    server = None
    try:
        sql = os.path.join(tmp, "views.sql")
        with open(sql, "w") as f:
            f.write(SQL)
        db = os.path.join(tmp, "db")
        log = os.path.join(tmp, "server.log")
        extra = ["--flush-interval", "150ms"]
        target = Target()
        server = live.Server(tessera, sql, db, log, extra).start()
        target.set(server.host, server.port)

        acked = [0]
        ack_lock = threading.Lock()
        posters = {}
        posters_lock = threading.Lock()
        poster_seed = [rng.randrange(1 << 30)]

        def post_share(share):
            me = threading.get_ident()
            with posters_lock:
                if me not in posters:
                    poster_seed[0] += 1
                    posters[me] = RetryingPoster(target, random.Random(poster_seed[0]), 0.02)
                p = posters[me]
            for b in share:
                st, text = p.post(b)
                if st != 200:
                    failures.append("batch %s: status %d %s" % (b.batch_id, st, text))
                    b.response = {}
                else:
                    b.response = json.loads(text)
                with ack_lock:
                    acked[0] += 1

        post_error = []

        def post_all():
            try:
                with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
                    for per_client in plan:
                        for f in [pool.submit(post_share, s) for s in per_client]:
                            f.result()
            except Exception as e:  # noqa: BLE001
                post_error.append(repr(e))

        thresholds = sorted(rng.uniform(0.03, 0.97) * len(batches) for _ in range(args.kills))
        poster = threading.Thread(target=post_all, daemon=True)
        t0 = time.monotonic()
        poster.start()
        kills = []
        for th in thresholds:
            while poster.is_alive():
                with ack_lock:
                    if acked[0] >= th:
                        break
                time.sleep(0.001)
            if not poster.is_alive():
                break
            time.sleep(rng.uniform(0, 0.15))  # lands anywhere relative to appends and flushes
            with ack_lock:
                at = acked[0]
            server.kill9()
            kills.append(at)
            server = live.Server(tessera, sql, db, log, extra).start()
            target.set(server.host, server.port)
        poster.join(300)
        if poster.is_alive():
            raise SystemExit("FAIL: posting did not finish within 300 s")
        failures.extend(post_error)
        retries = sum(p.retries for p in posters.values())
        print("posted %d batches in %.1f s; kill -9 after %s acknowledged batches; %d retried "
              "requests" % (len(batches), time.monotonic() - t0, kills, retries))
        mid = sum(1 for k in kills if k < len(batches))
        failures.check(mid >= args.kills // 2, "only %d of %d kills landed before the last "
                       "acknowledgement" % (mid, args.kills))

        # Every answer: the reference counts (duplicates report the first append's counts).
        dups = 0
        for b in batches:
            r = b.response or {}
            dups += 1 if r.get("duplicate") else 0
            # Rows the server already knew to be late are answered as "late", not "accepted".
            failures.check(r.get("accepted", 0) + r.get("late", 0) == b.accepted
                           and r.get("rejected") == b.rejected,
                           "batch %s: answered %r, expected accepted=%d rejected=%d" %
                           (b.batch_id, r, b.accepted, b.rejected))
        answered_accepted = sum((b.response or {}).get("accepted", 0) + (b.response or {}).get(
            "late", 0) for b in batches)
        print("answers: all %d match the reference decoder (%d were duplicate:true retries of "
              "batches the killed server had made durable)" % (len(batches), dups))

        ref = live.Reference(rows)
        ats = live.pick_ats(rng)

        def verify(label, srv):
            c = live.Client(srv.host, srv.port)
            expect = {d: len(ref.by_device.get(d, [])) for d in DEVICES}
            deadline = time.monotonic() + 30
            while True:
                st, text = c.post("/v1/features:batchGet", json.dumps(
                    {"view": "device_rows", "keys": DEVICES, "windows": ["7d"], "at": ALL_AT}))
                got = {}
                if st == 200:
                    got = {r["key"]: r["windows"]["7d"]["n"] for r in json.loads(text)["results"]}
                if got == expect or time.monotonic() > deadline or any(
                        got.get(d, 0) > expect[d] for d in DEVICES):
                    break
                time.sleep(0.05)
            read_back = sum(got.values())
            failures.check(got == expect, "%s: rows per device %r, expected %r (double counting "
                           "if above, loss if below)" % (label, got, expect))
            failures.check(answered_accepted == read_back + counters["late"],
                           "%s: answers accepted %d rows, read back %d + %d late" %
                           (label, answered_accepted, read_back, counters["late"]))
            n, errs = live.compare_all(c, ref, ats)
            failures.extend(errs)
            c.close()
            print("%s: accepted %d = read back %d + late %d; %d (key, at, window) answers "
                  "compared, %d mismatches" % (label, answered_accepted, read_back,
                                               counters["late"], n, len(errs)))

        # One more kill right after the last acknowledgement: the restart must replay exactly
        # what the last flush did not cover.
        server.kill9()
        server = live.Server(tessera, sql, db, log, extra).start()
        verify("after the last kill", server)
        rc, secs = server.terminate()
        failures.check(rc == 0, "SIGTERM: exit %r after %.2f s" % (rc, secs))
        server = live.Server(tessera, sql, db, log, extra).start()
        verify("after SIGTERM and restart", server)
        rc, secs = server.terminate()
        failures.check(rc == 0, "SIGTERM: exit %r after %.2f s" % (rc, secs))
        server = None
    finally:
        if server is not None:
            server.kill()
        if failures:
            tail = live.log_tail(os.path.join(tmp, "server.log"))
            if tail:
                print("server log tail:\n" + tail)
        if args.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("total %.1f s" % (time.monotonic() - t_start))
    for f in failures[:40]:
        print("FAIL:", f)
    if failures:
        print("%d failures (seed %d)" % (len(failures), seed))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
