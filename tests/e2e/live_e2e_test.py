#!/usr/bin/env python3
"""End-to-end check of `tessera run` (HTTP ingest + HTTP serving) against a brute force.

Starts `tessera run --http 127.0.0.1:0` on a temporary DB with two `connector = 'http'` sources,
then:

1. posts a generated stream (disorder, late rows beyond the watermark, malformed lines, NULLs,
   type errors, epoch-ms and RFC 3339 timestamps with offsets) as NDJSON batches of a few hundred
   lines from 4 concurrent client threads, most batches with a batch_id; every response's
   accepted/rejected must equal the reference decoder's for that batch;
2. while posting, a reader thread keeps reading a few keys (GET and batchGet): a count must never
   exceed what the posted batches can hold, and never go down;
3. twice mid-stream (ingest paused, server still live, tiles partly flushed, partly open) and at
   the end, compares many (key, at, window) answers — GET and batchGet, composite keys
   URL-encoded with %7C, `at` as epoch ms and as RFC 3339 with offsets — with the brute force:
   exact for counts/sums/min/max/first/last/last_k/top_k, within the sketch bounds for
   APPROX_COUNT_DISTINCT and APPROX_PERCENTILE (same rules as backfill_e2e_test.py); with
   meta=true, each answer's newest event time must be the newest row of its longest window
   (brute force) and its watermark the newest on-time row so far minus the lateness, the features
   unchanged (also after the restart, the watermark then reloaded from the DB);
4. retries batch ids (duplicate:true, nothing counted twice); /metrics counters (accepted,
   rejected, lines, late, field errors) equal the reference;
5. freshness: posts one event with ts = now for a new key and polls GET until it is visible
   (must be < 1 s; the measured latency is printed);
6. bad requests: 404 (unknown view, source, path), 405, 400 naming the bad parameter (windows,
   at, batchGet body fields), 413 (declared body over the 64 MiB limit), bad bodies (all
   malformed, empty, invalid UTF-8), keep-alive, /healthz, /readyz, /metrics, /v1/views;
7. SIGTERM: exits 0 within a few seconds; a restart on the same DB replays nothing and answers
   exactly the same.

Why concurrent posting can still be compared exactly
---------------------------------------------------
Lateness depends on arrival order (watermark = max event time seen so far − lateness), and so
do ties in LAST_VALUE/FIRST_VALUE/LAST_K (later arrival wins). With 4 clients the order in which
batches reach the log is not deterministic, so the stream is cut into *epochs*: the clients post
one epoch concurrently (its lines dealt randomly to them), and the next epoch starts only when
every batch of this one is acknowledged (acknowledged = in the durable log, which the pipeline
consumes in log order). `build_epochs` cuts the stream so that inside an epoch every row is
either late under *any* order (older than the watermark left by the previous epochs) or on time
under *any* order (no newer row of the same epoch is more than the lateness ahead of it). So
the set of late rows, and the watermark after each epoch, are the same for every interleaving,
and equal to a sequential replay of the epochs in order (the reference decoder). Ties are
removed by making event times unique (`uniquify`). What remains order-dependent is only the
internal state of sketches (KLL) and the rounding of double sums, which are compared within
bounds / 1e-9 anyway. The views declare 1 hour of lateness while the generator keeps most of
its disorder within 10 minutes (its default): an epoch can only span about the lateness minus
the disorder inside it, and this way epochs hold ~1,000 lines, i.e. 4 batches of a few hundred.

Usage: live_e2e_test.py PATH/TO/tessera [--seed N] [--events N]
"""
import argparse
import concurrent.futures
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BASE, DAY, LIVE_LATENESS, LIVE_SQL, SPAN, Client, Failures,  # noqa: E402
                     Reference, Server, build_epochs, cd_key, check_epochs_order_free,
                     compare_all, compare_meta, decode, generate_stream, in_country_device,
                     in_user_stats,
                     make_batches, metric, metrics, pick_ats, raw_exchange, report,
                     wait_consumed)
from harness import BUCKETS_SQL, compare_buckets  # noqa: E402

SQL = LIVE_SQL + BUCKETS_SQL


def post_epochs(server, plan, n_clients, failures, on_start, on_epoch_done=None):
    """Posts the plan epoch by epoch, `n_clients` threads per epoch (each with its own keep-alive
    connection, reused across epochs). Checks every response against the batch's expected
    counts."""
    local = threading.local()

    def post_share(batches):
        if not hasattr(local, "client"):
            local.client = Client(server.host, server.port)
        for b in batches:
            on_start(b)
            st, body = local.client.ingest("plays", b.body, b.batch_id)
            if st != 200:
                failures.append("batch %d: status %d %s" % (b.index, st, body))
                continue
            r = json.loads(body)
            b.response = r
            failures.check(
                r.get("accepted", 0) + r.get("late", 0) == b.accepted
                and r.get("rejected") == b.rejected and not r.get("duplicate"),
                "batch %d (%s): got %r expected accepted=%d rejected=%d" %
                (b.index, b.batch_id, r, b.accepted, b.rejected))
            if b.rejected:
                failures.check(len(r.get("errors", [])) >= 1,
                               "batch %d: rejected rows but no errors listed: %r" % (b.index, r))

    with concurrent.futures.ThreadPoolExecutor(n_clients) as pool:
        for ei, per_client in enumerate(plan):
            for f in [pool.submit(post_share, share) for share in per_client]:
                f.result()
            if on_epoch_done:
                on_epoch_done(ei)


class ConcurrentReader(threading.Thread):
    """Reads a few keys' all-time counts while ingest runs: never above what the started posts
    can hold, never decreasing."""

    ALL_AT = BASE + SPAN + DAY  # with window 7d: every on-time row

    def __init__(self, server, batches, started, lock):
        super().__init__(daemon=True)
        self.server, self.batches, self.started, self.lock = server, batches, started, lock
        self.stop = threading.Event()
        self.failures, self.reads, self.nonzero = [], 0, 0
        self.keys = [("user_stats", "u0"), ("user_stats", "u1"), ("user_stats", "u3"),
                     ("country_device", "SE|web")]
        # Per batch, per key: on-time rows it contributes.
        self.contrib = []
        for b in batches:
            c = {}
            for r in b.rows:
                if in_user_stats(r):
                    c[("user_stats", r["user_id"])] = c.get(("user_stats", r["user_id"]), 0) + 1
                if in_country_device(r):
                    k = ("country_device", cd_key(r))
                    c[k] = c.get(k, 0) + 1
            self.contrib.append(c)

    def bound(self, key):
        with self.lock:
            idx = list(self.started)
        return sum(self.contrib[i].get(key, 0) for i in idx)

    def run(self):
        client = Client(self.server.host, self.server.port)
        last = {}
        i = 0
        try:
            while not self.stop.is_set():
                i += 1
                if i % 2:
                    got = {}
                    for view, key in self.keys:
                        st, body = client.get("/v1/features/%s/%s?windows=7d&at=%d" % (
                            view, urllib.parse.quote(key, safe=""), self.ALL_AT))
                        if st != 200:
                            self.failures.append("concurrent GET %s/%s: %d %s" % (view, key, st, body))
                            return
                        got[(view, key)] = json.loads(body)["windows"]["7d"]["plays"]
                else:
                    got = {}
                    for view in ("user_stats", "country_device"):
                        keys = [k for v, k in self.keys if v == view]
                        st, body = client.post("/v1/features:batchGet", json.dumps(
                            {"view": view, "keys": keys, "windows": ["7d"], "at": self.ALL_AT}))
                        if st != 200:
                            self.failures.append("concurrent batchGet: %d %s" % (st, body))
                            return
                        for k, res in zip(keys, json.loads(body)["results"]):
                            got[(view, k)] = res["windows"]["7d"]["plays"]
                for k, n in got.items():
                    b = self.bound(k)  # taken after the read: a superset of what it could see
                    if n > b:
                        self.failures.append("concurrent read %s: count %d exceeds the %d rows "
                                             "posted so far" % (k, n, b))
                    if n < last.get(k, 0):
                        self.failures.append("concurrent read %s: count went down %d -> %d" %
                                             (k, last[k], n))
                    if n > 0:
                        self.nonzero += 1
                    last[k] = n
                self.reads += 1
                time.sleep(0.005)
        except Exception as e:  # noqa: BLE001
            self.failures.append("concurrent reader: %r" % e)
        finally:
            client.close()


def check_bad_requests(server, failures):
    c = Client(server.host, server.port)
    n = 0

    def expect(method, path, body, status, needle, headers=None):
        nonlocal n
        n += 1
        st, text = c.request(method, path, body=body, headers=headers)
        try:
            err = json.loads(text).get("error", "")
        except ValueError:
            err = None
        ok = st == status and err is not None and needle.lower() in err.lower()
        failures.check(ok, "%s %s %r: got %d %r, expected %d with an error naming %r" %
                       (method, path, (body or "")[:60], st, text[:200], status, needle))

    g = "/v1/features/user_stats/u1"
    expect("GET", "/v1/features/nope/u1", None, 404, "nope")
    expect("GET", g + "?windows=7m", None, 400, "windows")
    expect("GET", g + "?windows=abc", None, 400, "windows")
    expect("GET", g + "?windows=1h,,1d", None, 400, "windows")
    expect("GET", g + "?windows=", None, 400, "windows")
    expect("GET", g + "?at=yesterday", None, 400, "at")
    expect("GET", g + "?at=2026-13-01T00:00:00Z", None, 400, "at")
    expect("GET", "/v1/nothing/here", None, 404, "")
    expect("DELETE", g, None, 405, "")
    expect("GET", "/v1/ingest/plays", None, 405, "")
    expect("POST", "/v1/ingest/nope", "{}", 404, "nope")
    expect("POST", "/v1/ingest/plays_typo?batch_id=x", "{}", 404, "plays_typo")
    bg = "/v1/features:batchGet"
    expect("POST", bg, "not json", 400, "body")
    expect("POST", bg, "[1,2]", 400, "body")
    expect("POST", bg, "", 400, "body")
    expect("POST", bg, '{"keys":["u1"]}', 400, "view")
    expect("POST", bg, '{"view":7,"keys":["u1"]}', 400, "view")
    expect("POST", bg, '{"view":"nope","keys":["u1"]}', 404, "nope")
    expect("POST", bg, '{"view":"user_stats"}', 400, "keys")
    expect("POST", bg, '{"view":"user_stats","keys":"u1"}', 400, "keys")
    expect("POST", bg, '{"view":"user_stats","keys":["u1",2]}', 400, "keys")
    expect("POST", bg, '{"view":"user_stats","keys":["u1"],"windows":["7m"]}', 400, "windows")
    expect("POST", bg, '{"view":"user_stats","keys":["u1"],"windows":[60]}', 400, "windows")
    expect("POST", bg, '{"view":"user_stats","keys":["u1"],"windows":{"a":1}}', 400, "windows")
    expect("POST", bg, '{"view":"user_stats","keys":["u1"],"at":true}', 400, "at")
    expect("POST", bg, '{"view":"user_stats","keys":["u1"],"at":"soon"}', 400, "at")
    expect("POST", bg, json.dumps({"view": "user_stats", "keys": ["k%d" % i for i in range(10001)]}),
           400, "keys")
    # An empty key list is fine.
    st, text = c.post(bg, '{"view":"user_stats","keys":[]}')
    failures.check(st == 200 and json.loads(text) == {"results": []},
                   "batchGet with no keys: %d %s" % (st, text))
    n += 1

    # Bad bodies (on the pings source, so the generated stream's counters stay exact).
    def ingest_expect(body, accepted, rejected, what):
        nonlocal n
        n += 1
        st, text = c.ingest("pings", body)
        ok = st == 200
        if ok:
            r = json.loads(text)
            ok = r.get("accepted") == accepted and r.get("rejected") == rejected
        failures.check(ok, "ingest %s: got %d %s, expected accepted=%d rejected=%d" %
                       (what, st, text, accepted, rejected))
    ingest_expect(b"", 0, 0, "empty body")
    ingest_expect(b"\n  \n\n", 0, 0, "blank lines")
    ingest_expect(b'not json\n[1,2]\n{"user_id":"p"}\n{"user_id":"p","ts":"soon"}\n{"a":1}}\n',
                  0, 5, "all malformed")
    ingest_expect(b'{"user_id":"\xff\xfe","ts":1}\n', 0, 1, "invalid UTF-8")
    ingest_expect(b'{"user_id":"p","ts":1', 0, 1, "truncated last line")

    # 413: a body declared larger than the server's 64 MiB limit is refused before it is sent.
    status = raw_exchange(server.host, server.port,
                          b"POST /v1/ingest/pings HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Type: application/x-ndjson\r\n"
                          b"Content-Length: %d\r\n\r\n" % ((64 << 20) + 1))
    failures.check(" 413 " in status + " ", "oversized body: got %r, expected 413" % status)
    n += 1
    # Not exercised: the read/idle timeouts (30 s / 60 s, no CLI flag to shorten them) — they
    # would dominate this test's runtime; http_server_test covers them with short settings.
    # An unparseable request line: 400.
    status = raw_exchange(server.host, server.port, b"HELLO WORLD\r\n\r\n")
    failures.check(" 400 " in status + " ", "garbage request: got %r, expected 400" % status)
    n += 1

    # Keep-alive: many requests over one connection.
    k = Client(server.host, server.port)
    k.get("/healthz")
    sock = k.conn.sock
    for _ in range(50):
        st, _ = k.get("/healthz")
        if st != 200 or k.conn.sock is not sock:
            failures.append("keep-alive: connection not reused (status %d)" % st)
            break
    k.close()
    n += 1

    st, text = c.get("/healthz")
    failures.check(st == 200 and json.loads(text).get("status") == "ok", "/healthz: %d %s" % (st, text))
    st, text = c.get("/readyz")
    failures.check(st == 200, "/readyz: %d %s" % (st, text))
    st, text = c.get("/v1/views")
    ok = st == 200
    if ok:
        v = json.loads(text)
        names = {x["name"] for x in v.get("views", [])}
        srcs = {x["name"]: x for x in v.get("sources", [])}
        ok = ({"user_stats", "country_device", "ping_counts"} <= names
              and srcs.get("plays", {}).get("ingest") is True
              and srcs.get("plays", {}).get("lateness") == "1h"
              and [x["keys"] for x in v["views"] if x["name"] == "country_device"]
              == [["country", "device"]])
    failures.check(ok, "/v1/views: %d %s" % (st, text[:300]))
    n += 3
    c.close()
    return n


def measure_freshness(server, failures, tries=5):
    """Posts one event with ts = now for a new key and polls until a read sees it."""
    c = Client(server.host, server.port)
    r = Client(server.host, server.port)
    lat = []
    for i in range(tries):
        key = "fresh-%d-%d" % (os.getpid(), i)
        now = int(time.time() * 1000)
        t0 = time.monotonic()
        st, text = c.ingest("pings", json.dumps({"user_id": key, "ts": now}) + "\n",
                            "fresh-%d" % i)
        t_ack = time.monotonic() - t0
        if st != 200:
            failures.append("freshness post: %d %s" % (st, text))
            return None
        while True:
            st, text = r.get("/v1/features/ping_counts/%s?windows=1h" % key)
            if st == 200 and json.loads(text)["windows"]["1h"]["pings"] == 1:
                break
            if time.monotonic() - t0 > 5:
                failures.append("freshness: event for %s not visible after 5 s (%s)" % (key, text))
                return None
            time.sleep(0.001)
        t_vis = time.monotonic() - t0
        lat.append((t_vis, t_ack))
        failures.check(t_vis < 1.0, "freshness: visible only %.3f s after the POST" % t_vis)
        time.sleep(0.05)
    c.close()
    r.close()
    return lat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tessera")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--events", type=int, default=40000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    tessera = os.path.abspath(args.tessera)
    rng = random.Random(args.seed)
    t_start = time.monotonic()
    print("seed %d, %d events, %d clients" % (args.seed, args.events, args.clients))

    lines = generate_stream(rng, args.events)
    epochs = build_epochs(lines, cap=args.clients * 300)
    check_epochs_order_free(epochs, random.Random(args.seed + 1))
    plan, batches = make_batches(epochs, args.clients, 300, rng, "live%d" % args.seed,
                                 id_fraction=0.9)
    ordered = [l for b in batches for l in b.lines]
    rows, counters = decode(ordered, lateness=LIVE_LATENESS)
    total_accepted = sum(b.accepted for b in batches)
    assert sum(len(b.rows) for b in batches) == len(rows)
    assert total_accepted == counters["read"] - counters["rejected"]
    print("stream: %d lines in %d epochs, %d batches (%d with a batch id); reference %s" %
          (len(lines), len(epochs), len(batches), sum(1 for b in batches if b.batch_id),
           json.dumps(counters)))

    tmp = tempfile.mkdtemp(prefix="tessera-live-e2e-")
    failures = Failures()
    server = None
    try:
        sql = os.path.join(tmp, "views.sql")
        with open(sql, "w") as f:
            f.write(SQL)
        db = os.path.join(tmp, "db")
        log = os.path.join(tmp, "server.log")
        extra = ["--flush-interval", "300ms"]
        server = Server(tessera, sql, db, log, extra).start()
        print("server up at %s:%d" % (server.host, server.port))
        main_client = Client(server.host, server.port)

        st, _ = main_client.get("/readyz")
        failures.check(st == 200, "/readyz before ingest: %d" % st)

        # --- 1-3: concurrent ingest, concurrent reads, exact checks mid-stream.
        lock = threading.Lock()
        started = []
        reader = ConcurrentReader(server, batches, started, lock)

        def on_start(b):
            with lock:
                started.append(b.index)

        ats = pick_ats(rng)
        checkpoints = {len(plan) // 3, 2 * len(plan) // 3}
        mid_checked = [0]

        def on_epoch_done(ei):
            if ei not in checkpoints:
                return
            done = [b for b in batches if b.epoch <= ei]
            acc = sum((b.response or {}).get("accepted", 0) for b in done)
            got = wait_consumed(main_client, "plays", acc)
            failures.check(got == acc, "after epoch %d: pipeline read %r lines, %d acknowledged"
                           % (ei, got, acc))
            ref = Reference([r for b in done for r in b.rows])
            n, errs = compare_all(main_client, ref, ats[:8])
            mid_checked[0] += n
            failures.extend(errs)
            # Freshness metadata: the live watermark is the newest on-time row so far − lateness.
            done_max = max(r["ts"] for b in done for r in b.rows)
            _, errs = compare_meta(main_client, ref, ats[:4], done_max - LIVE_LATENESS)
            failures.extend(errs)
            print("mid-stream after epoch %d/%d: %d rows acknowledged, %d answers exact" %
                  (ei + 1, len(plan), acc, n))

        reader.start()
        t0 = time.monotonic()
        post_epochs(server, plan, args.clients, failures, on_start, on_epoch_done)
        post_s = time.monotonic() - t0
        reader.stop.set()
        reader.join(30)
        failures.extend(reader.failures)
        print("posted %d batches in %.2f s; concurrent reader: %d rounds, %d non-zero counts, "
              "all within the posted rows and monotonic" % (len(batches), post_s, reader.reads,
                                                            reader.nonzero))
        failures.check(reader.reads > 0 and reader.nonzero > 0,
                       "concurrent reader saw nothing (%d rounds)" % reader.reads)

        appended_total = sum((b.response or {}).get("accepted", 0) for b in batches)
        got = wait_consumed(main_client, "plays", appended_total)
        failures.check(got == appended_total, "pipeline read %r lines, %d acknowledged" %
                       (got, appended_total))
        ref = Reference(rows)
        checked, errs = compare_all(main_client, ref, ats)
        failures.extend(errs)
        n_buckets, errs = compare_buckets(main_client, ref, ats)
        failures.extend(errs)
        print("final: %d user_buckets answers compared via GET and batchGet" % n_buckets)
        print("final: %d (key, at, window) answers compared via GET and batchGet" % checked)
        watermark = max(r["ts"] for r in rows) - LIVE_LATENESS
        n_meta, errs = compare_meta(main_client, ref, ats, watermark)
        failures.extend(errs)
        print("meta: %d answers' newest event time and watermark equal the brute force" % n_meta)

        # --- 4: retried batch ids, metrics.
        with_id = [b for b in batches if b.batch_id]
        retried = rng.sample(with_id, min(8, len(with_id)))
        for i, b in enumerate(retried):
            if i % 2 == 1:
                # The same batch id with another body: refused, or its rows would vanish.
                body = b'{"user_id":"u0","ts":%d}\n' % (BASE + 1)
                st, text = main_client.ingest("plays", body, b.batch_id)
                failures.check(st == 409 and "batch_id" in text,
                               "batch id %s reused for another body: got %d %s, expected 409" %
                               (b.batch_id, st, text))
                continue
            st, text = main_client.ingest("plays", b.body, b.batch_id)
            r = json.loads(text) if st == 200 else {}
            failures.check(st == 200 and r.get("duplicate") is True
                           and r.get("accepted", 0) + r.get("late", 0) == b.accepted
                           and r == dict(b.response, duplicate=True),
                           "retry of batch %s: got %d %s, expected the first answer %r with "
                           "duplicate:true" % (b.batch_id, st, text, b.response))
        time.sleep(0.3)
        ms, mtext = metrics(main_client)
        sent_rejected = sum(b.rejected for b in batches)
        # Rows already late when they arrived are answered "late" and never reach the log; the
        # pipeline counts the ones that turn late behind a concurrent request's rows.
        ingest_late = metric(ms, "tessera_ingest_late_rows_total", source="plays") or 0
        appended = total_accepted - ingest_late
        answered_field_errors = sum(b.response.get("field_errors", 0) for b in batches)
        failures.check(answered_field_errors == counters["field_errors"],
                       "answers report %d field errors, reference %d" %
                       (answered_field_errors, counters["field_errors"]))
        for name, exp in (("tessera_ingest_accepted_rows_total", appended),
                          ("tessera_ingest_rejected_rows_total", sent_rejected),
                          ("tessera_source_lines_total", appended),
                          ("tessera_source_rows_total", appended),
                          ("tessera_source_rejected_total", 0),
                          ("tessera_source_late_total", counters["late"] - ingest_late)):
            failures.check(metric(ms, name, source="plays") == exp,
                           "metric %s{source=plays}: %r expected %r" %
                           (name, metric(ms, name, source="plays"), exp))
        for name in ("tessera_http_request_seconds", "tessera_log_append_seconds",
                     "tessera_freshness_seconds", "tessera_flush_seconds",
                     "tessera_view_rows_aggregated_total", "tessera_open_tiles"):
            failures.check(name in mtext, "/metrics lacks %s" % name)
        n2, errs = compare_all(main_client, ref, ats[:4])
        failures.extend(errs)
        print("retried %d batch ids (duplicate, same counts, nothing added; %d answers "
              "re-checked); /metrics counters equal the reference" % (len(retried), n2))

        # --- 6: bad requests (before freshness: its bad bodies include an old ts on pings).
        nbad = check_bad_requests(server, failures)
        print("bad requests / protocol: %d checks" % nbad)

        # --- 5: freshness.
        lat = measure_freshness(server, failures)
        if lat:
            print("freshness: acknowledged in %s ms; visible to GET %s ms after the POST "
                  "(max %.1f ms)" % (", ".join("%.1f" % (a * 1e3) for _, a in lat),
                                     ", ".join("%.1f" % (v * 1e3) for v, _ in lat),
                                     max(v for v, _ in lat) * 1e3))

        # --- 7: SIGTERM, restart, same answers.
        main_client.close()
        rc, secs = server.terminate()
        failures.check(rc == 0 and secs < 5, "SIGTERM: exit %r after %.2f s" % (rc, secs))
        print("SIGTERM: exit %r after %.2f s" % (rc, secs))
        server = Server(tessera, sql, db, log, extra).start()
        c2 = Client(server.host, server.port)
        time.sleep(0.2)
        ms, _ = metrics(c2)
        replayed = metric(ms, "tessera_source_lines_total", source="plays") or 0
        failures.check(replayed == 0, "restart after SIGTERM replayed %r lines" % replayed)
        n3, errs = compare_all(c2, ref, ats)
        failures.extend(errs)
        _, errs = compare_meta(c2, ref, ats[:6], watermark)  # the watermark reloaded from the DB
        failures.extend(errs)
        st, text = c2.get("/v1/features/ping_counts/fresh-%d-0?windows=1d" % os.getpid())
        failures.check(st == 200 and json.loads(text)["windows"]["1d"]["pings"] == 1,
                       "fresh event after restart: %d %s" % (st, text))
        print("restart on the same DB: replayed %d lines, %d answers identical to the brute force"
              % (replayed, n3))
        c2.close()
        rc, secs = server.terminate()
        failures.check(rc == 0, "second SIGTERM: exit %r after %.2f s" % (rc, secs))
        server = None
        print("checked %d answers mid-stream, %d at the end, %d after the restart"
              % (mid_checked[0], checked, n3))
    finally:
        if server is not None:
            server.kill()
        if failures and server is not None:
            print("server log tail:\n" + server.log_tail())
        if args.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("total %.1f s" % (time.monotonic() - t_start))
    report(failures)


if __name__ == "__main__":
    main()
