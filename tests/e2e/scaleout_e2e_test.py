#!/usr/bin/env python3
"""End-to-end test of the scale-out protocol (docs/scale_out.md): Kafka partitions split over two
`tessera run` workers in one consumer group, tiles in Bigtable (the emulator), answers from a
separate `tessera serve`, with a worker killed and another paused until it is a zombie.

Processes, all on loopback and started by the test: `tessera-kafka-mock` (3 brokers, topic
`plays` of 6 partitions), `cbtemulator` on a free port (skipped, exit 77, when the package
google-cloud-cli-bigtable-emulator is not installed), `tessera store init`, workers a and b
(`tessera run --store bigtable://p/i/t --flush-interval 200ms`, one group), one `tessera serve
--store bigtable://p/i/t`. The SQL has a Kafka source and two views: user_stats, keyed by the
topic's key (a user lives in one partition), and track_stats, keyed by track_id (a track's rows
come from every partition, so one tile row holds cells of several writer slots).

The stream (kcat, keyed by user_id) has disorder within the declared lateness (1 hour),
malformed lines, empty messages, NULL keys, type errors, both timestamp forms; rows that could be
late or not depending on how partitions interleave are left out (harness.kafka_stream), and
after the first phase 2 % of the rows are made late beyond any doubt (two days behind every
partition), so the brute force is exact (docs/scale_out.md, "What is not promised").

1. a and b join and split the partitions; serve starts; phase 1 (30 %) is produced and consumed
   (every partition's slot then has a committed offset and watermark lane).
2. Phase 2 is produced over ~24 s while: b is SIGSTOPped until a holds every partition (the
   group moved b's partitions after b's session, 3 s here, expired: a claimed their slots,
   fencing b) and SIGCONTed; b must either keep going or exit with an error that mentions
   "fenced" or "assigned again" (documented: its supervisor restarts it). Then a is SIGKILLed and
   restarted a second later (as Kubernetes would; it gets partitions back once the dead member's
   session expired). Any worker that exits is restarted, and an exit without one of those
   messages fails the test. (b is paused first so that a, which started on an empty store, takes
   over partitions whose watermark lanes b committed: the late rows check that a judges them by
   those lanes.)
3. Once every partition's committed offset (tessera_kafka_partition_offset of its one owner) is
   the partition's end and the serve answers stopped changing, serve's answers for every user and
   every track, at several `at`, windows 5m,15m,1h,6h,1d,7d, over batchGet (and GET for a few),
   must equal a brute force over the produced rows; the COUNT(*) of all users and of all tracks
   must add up to the number of rows each view takes (nothing counted twice, nothing lost); a
   window holding only the late rows must be empty.
4. Freshness: rows with fresh keys are produced once the workers are caught up; the time until
   serve returns each is printed (bounded by the flush interval + the store's 100 ms
   commit-state cache + polling; asserted only against a generous 5 s).

Scenario `solo` (--scenario solo; run after the above by default, on fresh processes, same
seed): in step 2, b is SIGSTOPped until a holds every partition, then a is SIGKILLed and not
restarted, then b is SIGCONTed: its commits of the partitions a claimed are fenced, it drops them,
and once a's session expired the group gives it every partition; it must not exit (an exit fails
the scenario) and consumes the rest of the stream alone. Steps 3 and 4 as above.

Usage: scaleout_e2e_test.py PATH/TO/tessera [--mock PATH/TO/tessera-kafka-mock] [--seed N]
                            [--scenario split|solo|all (default)]
                            [--events N] [--late-fraction F] [--keep]
       (--late-fraction 0: no late rows beyond the lateness)
"""
import argparse
import bisect
import json
import math
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as live  # noqa: E402  (generator, reference, processes, emulator, Kafka helpers)

SKIP = 77
PARTITIONS = 6
TOPIC = "plays"
STORE = "bigtable://p/i/t"
FLUSH_INTERVAL = "200ms"
SESSION_TIMEOUT_MS = 3000
# "all": Bigtable workers keep no lifetime tiles, so it merges each key's stored tiles.
WINDOWS = {"5m": live.TILE, "15m": 3 * live.TILE, "1h": live.HOUR, "6h": 6 * live.HOUR,
           "1d": live.DAY, "7d": 7 * live.DAY, "all": math.inf}
ALL_AT = live.BASE + live.SPAN + live.DAY  # with window 7d: every on-time row (and the late)
LATE_BASE = live.BASE - 2 * live.DAY       # late rows: [LATE_BASE - 1d, LATE_BASE]
# What a worker that lost its partitions says when it stops (docs/scale_out.md, README Kafka).
DOCUMENTED_EXITS = ("fenced", "assigned again")

SOURCE = """
CREATE SOURCE plays (
  user_id STRING, track_id STRING, ms_played BIGINT, skipped BOOLEAN,
  country STRING, device STRING, score DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR
) WITH (
  'connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{bootstrap}',
  'properties.group.id' = 'scaleout', 'scan.startup.mode' = 'earliest-offset', 'format' = 'json',
  -- A SIGKILLed or paused member keeps its partitions until its session times out (6 s by
  -- default): shorter here, so the test moves partitions sooner.
  'properties.session.timeout.ms' = '{session_ms}', 'properties.heartbeat.interval.ms' = '300');
"""
USER_VIEW = live.SQL[live.SQL.index("CREATE FEATURE VIEW user_stats"):
                     live.SQL.index("CREATE FEATURE VIEW country_device")]
TRACK_VIEW = """
-- Keyed by a column other than the topic's key: every partition writes cells into its tiles.
CREATE FEATURE VIEW track_stats AS
SELECT track_id, COUNT(*) AS plays, SUM(ms_played) AS total_ms, MIN(ms_played) AS min_ms,
       MAX(score) AS best, LAST_VALUE(user_id) AS last_user
FROM plays GROUP BY track_id;
"""


def sql_text(bootstrap, session_ms):
    return (SOURCE.format(topic=TOPIC, bootstrap=bootstrap, session_ms=session_ms) + USER_VIEW +
            TRACK_VIEW)


# ---------------------------------------------------------------------------------------------
# The stream and its brute force

def make_stream(rng, n_events, n_users, late_fraction, first_fraction):
    """(messages [(key, value)], n_first): harness.kafka_stream, and after the first n_first
    messages (`first_fraction` of them: phase 1) `late_fraction` of the rows moved two days back
    (late under any interleaving once every partition has an event time, which phase 1 gives
    them)."""
    messages = live.kafka_stream(rng, n_events, n_users, live.BASE)
    late_from = int(len(messages) * first_fraction)
    out = messages[:late_from]
    for key, value in messages[late_from:]:
        if live.line_ts(value) is not None and rng.random() < late_fraction:
            obj = json.loads(value)
            obj["ts"] = LATE_BASE - rng.randint(0, live.DAY)
            value = json.dumps(obj)
        out.append((key, value))
    return out, late_from


class TrackReference:
    """Brute force of track_stats: the on-time rows with a track, by track, in time order."""

    def __init__(self, rows):
        self.by_track = {}
        for r in rows:
            if r["track_id"] is not None:
                self.by_track.setdefault(r["track_id"], []).append(r)
        for rs in self.by_track.values():
            rs.sort(key=lambda r: r["ts"])
        self.times = {k: [r["ts"] for r in rs] for k, rs in self.by_track.items()}

    def window(self, key, at, w):
        rs, times = self.by_track.get(key, []), self.times.get(key, [])
        to = -((-at) // live.TILE) * live.TILE
        frm = ((at - w) // live.TILE) * live.TILE
        return rs[bisect.bisect_left(times, frm):bisect.bisect_left(times, to)]


def expect_track(rs):
    ms = [r["ms_played"] for r in rs if r["ms_played"] is not None]
    scores = [r["score"] for r in rs if r["score"] is not None]
    users = [r for r in rs if r["user_id"] is not None]  # event times are unique
    return {"plays": len(rs), "total_ms": sum(ms) if ms else None,
            "min_ms": min(ms) if ms else None, "best": max(scores) if scores else None,
            "last_user": max(users, key=lambda r: r["ts"])["user_id"] if users else None}


def check_track(got, exp, where):
    errs = []
    for k in ("plays", "total_ms", "min_ms", "last_user"):
        if got.get(k) != exp[k]:
            errs.append("%s %s: got %r expected %r" % (where, k, got.get(k), exp[k]))
    if not live.close(got.get("best"), exp["best"]):
        errs.append("%s best: got %r expected %r" % (where, got.get("best"), exp["best"]))
    return errs


# ---------------------------------------------------------------------------------------------
# Workers and their supervisor

class Worker:
    """One `tessera run` worker; restarted (a new process, same log) when it dies."""

    def __init__(self, name, tessera, sql_path, log_path, env):
        self.name, self.log_path, self.env = name, log_path, env
        self.args = ["run", "--sql", sql_path, "--store", STORE, "--http", "127.0.0.1:0",
                     "--flush-interval", FLUSH_INTERVAL]
        self.tessera = tessera
        self.server = self.client = None
        self.log_from = 0  # where this life's log starts
        self.lives = 0
        self.stopped = False  # SIGSTOPped: not polled

    def start(self):
        self.log_from = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        self.server = live.Command(self.tessera, self.args, self.log_path, self.env).start(60)
        self.client = live.Client(self.server.host, self.server.port, timeout=10)
        self.lives += 1
        return self

    def pid(self):
        return self.server.proc.pid

    def exited(self):
        return self.server is not None and self.server.proc.poll() is not None

    def kill9(self):
        self.client.close()
        self.server.kill9()
        self.server = self.client = None

    def pause(self):
        os.kill(self.pid(), signal.SIGSTOP)
        self.stopped = True

    def resume(self):
        os.kill(self.pid(), signal.SIGCONT)
        self.stopped = False

    def life_log(self):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_from)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def gauges(self, name):
        """{partition: value} of a metric, or None when the worker is down, paused or slow."""
        if self.server is None or self.stopped or self.exited():
            return None
        try:
            return live.partition_gauges(self.client, name)
        except Exception:  # noqa: BLE001  (a dying process: reset, timeout, bad status)
            self.client.close()
            return None

    def stop(self):
        if self.client is not None:
            self.client.close()
        if self.server is not None:
            if self.stopped:
                self.resume()
            self.server.kill()


class Group:
    """Workers a and b; supervise() restarts a worker that exited on its own, as Kubernetes would,
    and fails the test when the exit is not one the docs describe."""

    def __init__(self, tessera, sql_path, tmp, env, failures):
        self.workers = {n: Worker(n, tessera, sql_path, os.path.join(tmp, "worker-%s.log" % n),
                                  env) for n in ("a", "b")}
        self.failures = failures
        self.exits = []  # (worker, exit code, the error line)
        self.must_stay = set()  # names of workers whose exit fails the scenario (no restart)

    def supervise(self):
        for w in self.workers.values():
            if not w.exited():
                continue
            rc = w.server.proc.returncode
            text = w.life_log()
            errors = [l for l in text.splitlines() if "error" in l.lower()]
            line = errors[-1] if errors else (text.splitlines() or ["(empty log)"])[-1]
            self.exits.append((w.name, rc, line))
            if w.name in self.must_stay:
                self.failures.append(
                    "worker %s exited with %r although it must keep going alone (its partitions "
                    "come back when the group rebalances); its log:\n%s"
                    % (w.name, rc, "\n".join(text.splitlines()[-30:])))
                w.server.kill()
                w.client.close()
                w.server = w.client = None
                raise Abort()
            self.failures.check(
                any(m in text for m in DOCUMENTED_EXITS),
                "worker %s exited with %r without saying 'fenced' or 'assigned again'; its log:\n%s"
                % (w.name, rc, "\n".join(text.splitlines()[-30:])))
            w.server.kill()  # bookkeeping (already dead)
            w.client.close()
            print("  worker %s exited (%r): %s; restarted" % (w.name, rc, line.strip()[:300]),
                  flush=True)
            w.start()

    def held(self):
        """{name: sorted partitions it says it holds} of the workers that answer."""
        out = {}
        for n, w in self.workers.items():
            g = w.gauges("tessera_kafka_partition_assigned")
            if g is not None:
                out[n] = sorted(p for p, v in g.items() if v == 1)
        return out

    def wait(self, cond, timeout):
        """Polls cond() (supervising meanwhile) until it holds; returns its last value."""
        deadline = time.monotonic() + timeout
        while True:
            self.supervise()
            v = cond()
            if v or time.monotonic() > deadline:
                return v
            time.sleep(0.1)

    def split(self):
        """Both workers answer, each holds partitions, together all of them, none twice."""
        held = self.held()
        return (len(held) == 2 and all(held.values()) and
                sorted(sum(held.values(), [])) == list(range(PARTITIONS)))

    def caught_up(self, ends):
        """Every partition has one owner whose committed offset is its end, with lag 0."""
        owners = {p: [] for p in range(PARTITIONS)}
        for w in self.workers.values():
            assigned = w.gauges("tessera_kafka_partition_assigned")
            off = w.gauges("tessera_kafka_partition_offset")
            lag = w.gauges("tessera_kafka_partition_lag")
            if assigned is None or off is None or lag is None:
                continue
            for p, v in assigned.items():
                if v == 1:
                    owners[p].append((w.name, off.get(p), lag.get(p)))
        ok = all(len(o) == 1 and o[0][1] == ends[p] and o[0][2] == 0 for p, o in owners.items())
        return ok, owners

    def stop(self):
        for w in self.workers.values():
            w.stop()


# ---------------------------------------------------------------------------------------------
# Reading serve

def batch_get(client, view, keys, at, windows=WINDOWS):
    st, body = client.post("/v1/features:batchGet", json.dumps(
        {"view": view, "keys": keys, "windows": list(windows), "at": at}))
    if st != 200:
        raise AssertionError("batchGet %s at=%d: status %d %s" % (view, at, st, body[:300]))
    results = json.loads(body)["results"]
    if [r.get("key") for r in results] != keys:
        raise AssertionError("batchGet %s at=%d: results for other keys" % (view, at))
    return {r["key"]: r for r in results}


def totals(client, users, tracks, at=ALL_AT):
    """COUNT(*) summed over every user and over every track, window 7d (at ALL_AT: all time)."""
    u = batch_get(client, "user_stats", users, at, {"7d": 0})
    t = batch_get(client, "track_stats", tracks, at, {"7d": 0})
    return (sum(r["windows"]["7d"]["plays"] for r in u.values()),
            sum(r["windows"]["7d"]["plays"] for r in t.values()))


def wait_answers_settled(client, users, tracks, expected, timeout):
    """Polls the totals until they equal `expected` or stop changing for 3 s (then returns
    them, to be reported)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while True:
        got = totals(client, users, tracks)
        if got == expected:
            return got
        if got != last:
            last, since = got, time.monotonic()
        elif time.monotonic() - since > 3 or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def covers_late_rows(at, w):
    """Whether the window (at, w) reaches the late rows' event times."""
    to = -((-at) // live.TILE) * live.TILE
    return ((to - w) // live.TILE) * live.TILE <= LATE_BASE and to > LATE_BASE - live.DAY


def compare(client, ref, tref, users, tracks, ats):
    """Every user and track at every `at`, every window (batchGet, plus GET for a few keys):
    (answers checked, mismatches, (key, at, window) answers wrong in windows that reach the late
    rows' times, wrong elsewhere)."""
    errs, checked, wrong = [], 0, [0, 0]
    wlist = ",".join(WINDOWS)
    for i, at in enumerate(ats):
        for view, keys in (("user_stats", users), ("track_stats", tracks)):
            try:
                answers = batch_get(client, view, keys, at)
            except AssertionError as e:
                errs.append(str(e))
                continue
            for key in keys:
                res = answers[key]
                if res.get("at") != live.effective_at(at):
                    errs.append("%s key=%s at=%d: effective at %r expected %r" %
                                (view, key, at, res.get("at"), live.effective_at(at)))
                for wname, wms in WINDOWS.items():
                    where = "%s key=%s at=%d w=%s" % (view, key, at, wname)
                    got = res["windows"].get(wname)
                    if got is None:
                        errs.append("%s: window missing" % where)
                        continue
                    if view == "user_stats":
                        e = live.check_user_stats(
                            got, live.expect_user_stats(ref.window("user", key, at, wms), at), where)
                    else:
                        e = check_track(got, expect_track(tref.window(key, at, wms)), where)
                    errs += e
                    wrong[0 if covers_late_rows(at, wms) else 1] += bool(e)
                    checked += 1
            # GET answers the same as batchGet (a few keys, `at` as RFC 3339 with an offset).
            for key in keys[:: max(1, len(keys) // 4)]:
                st, body = client.get("/v1/features/%s/%s?windows=%s&at=%s" % (
                    view, urllib.parse.quote(key, safe=""), wlist,
                    urllib.parse.quote(live.at_param(at, i), safe="")))
                if st != 200 or json.loads(body)["windows"] != answers[key]["windows"]:
                    errs.append("GET %s/%s at=%d: %d %s, batchGet said %s" %
                                (view, key, at, st, body[:300], answers[key]["windows"]))
    return checked, errs, wrong


# ---------------------------------------------------------------------------------------------
# Freshness

def measure_freshness(bootstrap, client, newest_ts, n):
    """Produces n rows with fresh user keys, one at a time (harness.kafka_produce: returns once the
    broker acknowledged the row), and times each from that acknowledgement until serve returns
    it. Returns [(seconds from the ack or None if not seen within 10 s, seconds kcat took)]."""
    out = []
    for i in range(n):
        key = "fresh%d" % i
        row = {"user_id": key, "track_id": "fresh-track", "ms_played": 1000,
               "ts": newest_ts + 1 + i}
        t0 = time.monotonic()
        live.kafka_produce(bootstrap, TOPIC, [(key, json.dumps(row))])
        t_ack = time.monotonic()
        seen = None
        while time.monotonic() - t_ack < 10:
            st, body = client.get("/v1/features/user_stats/%s?windows=7d&at=%d" % (key, ALL_AT))
            if st == 200 and json.loads(body)["windows"]["7d"]["plays"] == 1:
                seen = time.monotonic() - t_ack
                break
            time.sleep(0.01)
        out.append((seen, t_ack - t0))
        time.sleep(0.13 * (i + 1) % 0.5)  # land the next one at another point of the flush cycle
    return out


# ---------------------------------------------------------------------------------------------
# Phase 2: what happens to the workers while it is produced (t2: when it started; feeder: the
# thread producing it)

def split_phase2(group, failures, t2, feeder):
    """b paused until a holds every partition, resumed (kept going or exited as documented and
    restarted); then a SIGKILLed and restarted a second later; the group splits again."""
    a, b = group.workers["a"], group.workers["b"]
    # b first: a, which started on an empty store, takes over partitions it never held
    # (their watermark lanes were committed by b meanwhile).
    time.sleep(2)  # b consumes: rows in flight when it stops
    b.pause()
    t_pause = time.monotonic()
    ok = group.wait(lambda: group.held().get("a") == list(range(PARTITIONS)), 40)
    failures.check(ok, "b paused: a did not get every partition: %r" % group.held())
    took = time.monotonic() - t_pause
    time.sleep(0.5)
    b.resume()
    paused = time.monotonic() - t_pause
    b_life = b.lives
    ok = group.wait(group.split, 40)
    failures.check(ok, "after b resumed the group did not split again: %r" % group.held())
    b_outcome = ("kept going" if b.lives == b_life else
                 "exited (%s) and was restarted" % "; ".join(
                     "%r: %s" % (rc, line.strip()[:160]) for n, rc, line in group.exits
                     if n == "b"))
    held = group.held()
    print("phase 2: b SIGSTOPped at %.1f s for %.1f s (a held every partition %.1f s after "
          "the pause), then SIGCONTed: b %s; split again: a=%s b=%s" %
          (t_pause - t2, paused, took, b_outcome, held.get("a"), held.get("b")), flush=True)
    time.sleep(1)  # a consumes: rows in flight when it dies
    a.kill9()
    t_kill = time.monotonic()
    time.sleep(1)
    a.start()
    ok = group.wait(group.split, 40)
    failures.check(ok, "after a was killed and restarted, the group did not split again: %r"
                   % group.held())
    held = group.held()
    print("  a SIGKILLed at %.1f s, restarted 1 s later; split again %.1f s after the kill: "
          "a=%s b=%s" % (t_kill - t2, time.monotonic() - t_kill, held.get("a"),
                         held.get("b")), flush=True)


def solo_phase2(group, failures, t2, feeder):
    """b paused until a holds every partition; a SIGKILLed for good; b resumed: its commits of the
    partitions a claimed are fenced, it drops them, and once a's session expired the group gives
    it every partition. b must not exit (Group.must_stay): it consumes the rest alone."""
    a, b = group.workers["a"], group.workers["b"]
    group.must_stay.add("b")
    time.sleep(2)  # b consumes: rows in flight when it stops
    b.pause()
    t_pause = time.monotonic()
    ok = group.wait(lambda: group.held().get("a") == list(range(PARTITIONS)), 40)
    require(failures, ok, "b paused: a did not get every partition: %r" % group.held())
    took = time.monotonic() - t_pause
    print("phase 2: b SIGSTOPped at %.1f s; a held every partition %.1f s after the pause: a=%s" %
          (t_pause - t2, took, group.held().get("a")), flush=True)
    time.sleep(1)  # a consumes (and claims the slots of b's partitions): rows in flight
    a.kill9()
    t_kill = time.monotonic()
    time.sleep(0.5)
    b.resume()
    t_resume = time.monotonic()
    print("  a SIGKILLed at %.1f s (not restarted); b SIGCONTed %.1f s later, after %.1f s "
          "stopped" % (t_kill - t2, t_resume - t_kill, t_resume - t_pause), flush=True)
    seen = {}  # what b said it held, each change, with the time since the resume

    def b_alone():
        h = group.held().get("b")
        if h is not None and (not seen or seen[max(seen)] != h):
            seen[time.monotonic() - t_resume] = h
        return h == list(range(PARTITIONS))

    ok = group.wait(b_alone, 40)
    require(failures, ok, "b resumed alone: it did not get every partition in 40 s; it held %s" %
            (" -> ".join("%s at %.1f s" % (h, t) for t, h in sorted(seen.items())) or "nothing"))
    print("  b held every partition %.1f s after the resume (%.1f s after a's kill; a's session "
          "%d ms); b held %s; phase 2 still being produced: %s" %
          (time.monotonic() - t_resume, time.monotonic() - t_kill, SESSION_TIMEOUT_MS,
           " -> ".join("%s at %.1f s" % (h, t) for t, h in sorted(seen.items())),
           "yes" if feeder.is_alive() else "no"), flush=True)


# ---------------------------------------------------------------------------------------------

class Abort(Exception):
    """A failure after which the rest of the scenario cannot run (the failure is recorded)."""


def require(failures, cond, msg):
    if not failures.check(cond, msg):
        raise Abort()


SCENARIOS = ("split", "solo")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tessera")
    ap.add_argument("--mock", default=None, help="tessera-kafka-mock (default: beside tessera)")
    ap.add_argument("--scenario", choices=SCENARIOS + ("all",), default="all",
                    help="split: b paused until a is alone, a killed and restarted; solo: b "
                    "paused until a holds everything, a killed for good, b finishes alone; "
                    "all (default): both, one after the other")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--events", type=int, default=12000)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--produce-seconds", type=float, default=24.0,
                    help="how long phase 2 is produced for (the kill and the pause happen then)")
    ap.add_argument("--late-fraction", type=float, default=0.02,
                    help="share of the phase-2 rows made late beyond any doubt (0: none)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()

    emulator_bin = live.find_bigtable_emulator()
    if emulator_bin is None:
        print("SKIP: cbtemulator not found (Debian package google-cloud-cli-bigtable-emulator)")
        sys.exit(SKIP)
    if shutil.which("kcat") is None:
        raise SystemExit("FAIL: kcat is not installed (Debian package kcat)")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    tessera = os.path.abspath(args.tessera)
    mock_path = args.mock or os.path.join(os.path.dirname(tessera), "tessera-kafka-mock")
    scenarios = SCENARIOS if args.scenario == "all" else (args.scenario,)
    t_all = time.monotonic()
    failures = live.Failures()
    for scenario in scenarios:
        print("==== scenario %s" % scenario, flush=True)
        failures.extend("[%s] %s" % (scenario, f) for f in
                        run_scenario(args, scenario, seed, tessera, mock_path, emulator_bin))
    if len(scenarios) > 1:
        print("all scenarios: total %.1f s" % (time.monotonic() - t_all))
    live.report(failures)


def run_scenario(args, scenario, seed, tessera, mock_path, emulator_bin):
    """One scenario on fresh processes (mock, emulator, store, workers, serve); its failures."""
    print("seed %d (rerun with --seed %d --scenario %s), %d events" %
          (seed, seed, scenario, args.events), flush=True)
    rng = random.Random(seed)
    t_start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="tessera-scaleout-")
    failures = live.Failures()
    mock = emulator = group = serve = None
    logs = {"mock": os.path.join(tmp, "mock.log"), "emulator": os.path.join(tmp, "emulator.log"),
            "serve": os.path.join(tmp, "serve.log")}
    try:
        # -- the stream and its brute force
        messages, n_first = make_stream(rng, args.events, args.users, args.late_fraction, 0.3)
        phase1, phase2 = messages[:n_first], messages[n_first:]
        rows, counters = live.decode(live.kafka_engine_lines(messages),
                                     lateness=live.LIVE_LATENESS)
        ref, tref = live.Reference(rows), TrackReference(rows)
        newest_ts = max(r["ts"] for r in rows)
        users = sorted({k for k, _ in messages if k != "-"} | set(ref.by_user)) + ["nobody"]
        tracks = sorted(tref.by_track) + ["no-such-track"]
        expected_totals = (sum(map(len, ref.by_user.values())),
                           sum(map(len, tref.by_track.values())))
        # The late rows as each view would take them if they were (wrongly) counted.
        every, _ = live.decode(live.kafka_engine_lines(messages), lateness=1 << 62)
        late_rows = [r for r in every if r["ts"] < live.BASE - live.DAY]
        late_in_views = (sum(1 for r in late_rows if live.in_user_stats(r)),
                         sum(1 for r in late_rows if r["track_id"] is not None))
        print("stream: %d messages (%s), %d users, %d tracks; phase 1 %d, phase 2 %d" %
              (len(messages), json.dumps(counters), len(ref.by_user), len(tref.by_track),
               len(phase1), len(phase2)), flush=True)

        # -- the systems
        mock = live.KafkaMock(mock_path, {TOPIC: PARTITIONS}, logs["mock"])
        emulator = live.BigtableEmulator(emulator_bin, logs["emulator"]).start()
        env = emulator.env()
        init = json.loads(live.run([tessera, "store", "init", "--store", STORE], env=env))
        failures.check(init.get("created") is True, "store init: %r" % init)
        sql_path = os.path.join(tmp, "scaleout.sql")
        with open(sql_path, "w") as f:
            f.write(sql_text(mock.bootstrap, SESSION_TIMEOUT_MS))
        group = Group(tessera, sql_path, tmp, env, failures)
        a, b = group.workers["a"], group.workers["b"]
        a.start()
        b.start()
        t0 = time.monotonic()
        require(failures, group.wait(group.split, 40),
                "a and b did not split the %d partitions: %r" % (PARTITIONS, group.held()))
        held = group.held()
        print("mock %s, emulator %s; a and b split the partitions in %.1f s: a=%s b=%s" %
              (mock.bootstrap, emulator.host, time.monotonic() - t0, held["a"], held["b"]),
              flush=True)
        serve = live.Command(tessera, ["serve", "--store", STORE, "--http", "127.0.0.1:0"],
                             logs["serve"], env).start(60)
        client = live.Client(serve.host, serve.port, timeout=60)

        # -- phase 1: every slot gets a committed offset and watermark lane
        live.kafka_produce(mock.bootstrap, TOPIC, phase1)
        ends1 = [len(m) for m in live.kafka_read_back(mock.bootstrap, TOPIC, PARTITIONS, phase1)]
        require(failures, all(ends1), "phase 1 left a partition empty (%r): the late rows would "
                "not be late for sure; try another seed" % ends1)
        t1 = time.monotonic()
        ok = group.wait(lambda: group.caught_up(ends1)[0], 60)
        require(failures, ok, "phase 1 not consumed in 60 s: owners (worker, committed offset, "
                "lag) %r, ends %r" % (group.caught_up(ends1)[1], ends1))
        print("phase 1: %d messages in partitions %s consumed in %.1f s" %
              (len(phase1), ends1, time.monotonic() - t1), flush=True)

        # -- phase 2, produced in the background while a is killed and b paused
        produce_error = []
        slices = max(1, int(args.produce_seconds / 0.25))

        def produce_rest():
            # A kcat per slice, so every slice is in Kafka when its turn comes.
            try:
                for i in range(slices):
                    part = phase2[i * len(phase2) // slices:(i + 1) * len(phase2) // slices]
                    live.kafka_produce(mock.bootstrap, TOPIC, part)
                    time.sleep(0.25)
            except BaseException as e:  # noqa: BLE001  (SystemExit from a failed kcat too)
                produce_error.append("producing phase 2: %s" % e)

        feeder = threading.Thread(target=produce_rest, daemon=True)
        t2 = time.monotonic()
        feeder.start()
        (split_phase2 if scenario == "split" else solo_phase2)(group, failures, t2, feeder)
        feeder.join(120)
        failures.extend(produce_error)
        require(failures, not feeder.is_alive(), "phase 2 was not produced within 120 s")

        # -- consumed to the end: compare serve with the brute force
        parts = live.kafka_read_back(mock.bootstrap, TOPIC, PARTITIONS, messages)
        ends = [len(m) for m in parts]
        t3 = time.monotonic()
        ok = group.wait(lambda: group.caught_up(ends)[0], 120)
        failures.check(ok, "not consumed to the end in 120 s: owners (worker, committed offset, "
                       "lag) %r, ends %r" % (group.caught_up(ends)[1], ends))
        caught = time.monotonic() - t3
        got_totals = wait_answers_settled(client, users, tracks, expected_totals, 30)
        settled = time.monotonic() - t3
        # The 7d window before BASE - 1d holds only the late rows' event times: it must be empty.
        late_counted = totals(client, users, tracks, live.BASE - live.DAY)
        on_time = tuple(g - l for g, l in zip(got_totals, late_counted))
        failures.check(got_totals == expected_totals,
                       "all-time COUNT(*) over all users, over all tracks: %r, expected %r (%s)" %
                       (got_totals, expected_totals,
                        "above: counted twice; below: lost" if on_time != expected_totals else
                        "the difference is the late rows counted, below; the on-time rows add up"))
        print("consumed to the end (%s) %.1f s after phase 2 was produced; serve totals %r "
              "(expected %r) %.1f s after" % (ends, caught, got_totals, expected_totals,
                                              settled), flush=True)
        failures.check(late_counted == (0, 0),
                       "rows late beyond any doubt (two days behind every partition, %d in the "
                       "stream; %d would land in user_stats, %d in track_stats) were counted: %d "
                       "in user_stats, %d in track_stats (docs/scale_out.md: an owner's watermark "
                       "for a partition starts from the partition's committed lane)" %
                       ((len(late_rows),) + late_in_views + late_counted))
        print("late rows (two days behind every partition): %d in the stream, counted %r in "
              "(user_stats, track_stats), expected (0, 0)" % (len(late_rows), late_counted),
              flush=True)
        ats = [live.BASE + live.SPAN // 2, live.BASE + 5 * live.HOUR + 17 * 60 * 1000,
               live.BASE + live.SPAN + live.HOUR, ALL_AT,
               live.BASE + rng.randint(0, live.SPAN),
               ((live.BASE + rng.randint(0, live.SPAN)) // live.TILE) * live.TILE,
               live.BASE - live.DAY]  # 7d: only the late rows' time range, so nothing
        t4 = time.monotonic()
        checked, errs, wrong = compare(client, ref, tref, users, tracks, ats)
        failures.extend(errs)
        print("serve vs brute force: %d (key, at, window) answers of %d users and %d tracks at "
              "%d `at`, windows %s: %d wrong in windows that reach the late rows' times, %d "
              "elsewhere (%.1f s)" %
              (checked, len(users), len(tracks), len(ats), ",".join(WINDOWS), wrong[0], wrong[1],
               time.monotonic() - t4), flush=True)

        # -- freshness through serve
        fresh = measure_freshness(mock.bootstrap, client, newest_ts, 8)
        seen = [f for f, _ in fresh if f is not None]
        failures.check(len(seen) == len(fresh) and max(seen) <= 5.0,
                       "freshness: broker ack -> visible through serve took %s s (bound 5 s)" %
                       ["never" if f is None else "%.3f" % f for f, _ in fresh])
        if seen:
            print("freshness (broker ack -> serve answers the row; flush interval %s, commit-state "
                  "cache 100 ms, polled every 10 ms): median %.0f ms, max %.0f ms over %d rows "
                  "(kcat itself: median %.0f ms)" %
                  (FLUSH_INTERVAL, 1000 * statistics.median(seen), 1000 * max(seen), len(fresh),
                   1000 * statistics.median(k for _, k in fresh)), flush=True)

        # -- clean stop
        group.supervise()
        for w in group.workers.values():
            if w.server is None:  # killed for good (solo)
                continue
            w.client.close()
            rc, secs = w.server.terminate()
            failures.check(rc == 0, "worker %s: SIGTERM exit %r after %.2f s" % (w.name, rc, secs))
            w.server = w.client = None
        client.close()
        rc, secs = serve.terminate()
        failures.check(rc == 0, "serve: SIGTERM exit %r after %.2f s" % (rc, secs))
        print("exits on their own: %s" % (["%s %r: %s" % (n, rc, l.strip()[:160])
                                          for n, rc, l in group.exits] or "none"), flush=True)
        if scenario == "solo":
            # (A fenced commit is neither logged nor exported as a metric: not observable here.)
            print("b: %d life, never exited; a: killed for good" % b.lives, flush=True)
    except Abort:
        pass
    finally:
        if failures:
            if group is not None:
                for n, w in group.workers.items():
                    print("---- worker %s log tail (%d lives):\n%s" %
                          (n, w.lives, live.log_tail(w.log_path, 40)))
            for n in ("serve", "emulator", "mock"):
                print("---- %s log tail:\n%s" % (n, live.log_tail(logs[n], 20)))
        if group is not None:
            group.stop()
        if serve is not None:
            serve.kill()
        if emulator is not None:
            emulator.stop()
        if mock is not None:
            mock.stop()
        if args.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        print("total %.1f s" % (time.monotonic() - t_start))
        if failures:
            print("seed %d" % seed)
    return failures


if __name__ == "__main__":
    main()
