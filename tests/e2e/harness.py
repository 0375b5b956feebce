"""Shared harness of the end-to-end tests of the `tessera` binary (tests/e2e/*_test.py).

One module so that the tests import it instead of each other:

- the workload: the feature views (SQL), a generator of NDJSON events with disorder, late rows,
  malformed lines, NULLs, type errors and both timestamp forms, and the live tests' stream plan
  (unique event times, epochs whose late rows do not depend on the order of concurrent posts,
  batches);
- the brute-force reference: a decoder that replays lines under the watermark rule, the rows of
  a (key, at, window) and the expected value of every feature column, with the tolerance rules
  of the sketches;
- processes: running a `tessera` command, `tessera get`, a `tessera run` server started on a free
  port (it binds 127.0.0.1:0 and prints the address, so no port can be taken in between) and
  killed at exit if a test fails before stopping it;
- the Pub/Sub emulator: found, started on a free port, set up and published to over REST;
- the Bigtable emulator: found, started on a free port (`BIGTABLE_EMULATOR_HOST` for the
  `tessera` commands that use `--store bigtable://…`);
- Kafka: `tessera-kafka-mock` held by a pipe, a kcat producer, a keyed stream whose on-time rows
  do not depend on how partitions interleave, reading a topic back, per-partition metrics;
- HTTP helpers: a keep-alive client, raw exchanges, /metrics parsing;
- reporting: a failure list and the common epilogue.

Import it after `sys.dont_write_bytecode = True` so no __pycache__ lands in the source tree.
"""
import atexit
import base64
import bisect
import datetime as dt
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

TILE = 5 * 60 * 1000
HOUR = 3600 * 1000
DAY = 24 * HOUR
# "all" is the lifetime window: infinitely long, so the window arithmetic below gives -inf as its
# start (Python floats compare with the int event times).
WINDOWS = {"5m": TILE, "1h": HOUR, "6h": 6 * HOUR, "1d": DAY, "7d": 7 * DAY, "all": math.inf}
BASE = 1_767_225_600_000 + 7 * HOUR + 123  # 2026-01-01T07:00:00.123Z

# ---------------------------------------------------------------------------------------------
# Workload: the views and the event generator

# The lateness SQL declares (10 minutes), and the generator's default disorder.
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
       SUM(ms_played) / COUNT(ms_played) AS avg_ms,
       EXP_DECAY_SUM(ms_played, '1d') AS decayed_ms,
       EXP_DECAY_COUNT('1h') AS decayed_plays
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


def generate(rng, n_events, n_users, base_ms, span_ms, disorder=LATENESS):
    """Returns NDJSON lines. Time mostly increases with disorder: 5% of the rows go back by up
    to `disorder`, 1% by `disorder` + 1 s … 3 h (late under a lateness of `disorder`)."""
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
            ts = t - rng.randint(0, disorder - 1000)  # disorder within the lateness bound
        if rng.random() < 0.01:
            ts = t - disorder - rng.randint(1000, 3 * HOUR)  # late: beyond the watermark
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


def decode(lines, lateness=LATENESS):
    """The reference decoder: replays `lines` in order under the watermark rule (max event time
    seen − `lateness`). Returns (on-time rows, counters)."""
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
        if max_ts is not None and ts < max_ts - lateness:
            c["late"] += 1
            continue
        max_ts = ts if max_ts is None else max(max_ts, ts)
        rows.append(row)
    return rows, c


# ---------------------------------------------------------------------------------------------
# Brute-force reference: the rows of a window and the expected features

def window_rows(rows_by_key, key, at, w):
    to = -((-at) // TILE) * TILE
    frm = ((at - w) // TILE) * TILE
    rs = rows_by_key.get(key, [])
    times = [r["ts"] for r in rs]
    lo = bisect.bisect_left(times, frm)
    hi = bisect.bisect_left(times, to)
    # Stable: rows of equal time keep arrival order (sorted() below is stable).
    return rs[lo:hi]


DECAY_HALF_LIFE = {"decayed_ms": DAY, "decayed_plays": HOUR}


def expect_decay(rs, at, col, half_life):
    """Σ x·2^(−(at − ts)/half_life) over rows with non-NULL x (x = 1 without a column), and the
    same sum of |x| (the documented error bound is relative to it). None for no rows (count: 0)."""
    terms = []
    for r in rs:
        x = 1 if col is None else r[col]
        if x is not None:
            terms.append(x * 2.0 ** (-(at - r["ts"]) / half_life))
    if not terms:
        return (0.0 if col is None else None), 0.0
    return math.fsum(terms), math.fsum(abs(t) for t in terms)


def expect_user_stats(rs, at=None):
    """The features of user_stats over rows `rs`; the time-decayed ones only when `at` (the
    read time they decay to) is given."""
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
    if at is not None:
        out["decayed_ms"] = expect_decay(rs, at, "ms_played", DECAY_HALF_LIFE["decayed_ms"])
        out["decayed_plays"] = expect_decay(rs, at, None, DECAY_HALF_LIFE["decayed_plays"])
    return out


def close(a, b, rel=1e-9):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


def same_answers(a, b, rel=1e-12):
    """Equal JSON answers, floats within `rel` (merges in another order round differently)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-300)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_answers(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_answers(x, y, rel) for x, y in zip(a, b))
    return a == b


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
    for k in ["decayed_ms", "decayed_plays"]:
        if k not in exp:
            continue
        want, magnitude = exp[k]
        # README: within 1e-12 of Σ|x|·w; the brute force's own rounding is ~1e-15 of it.
        if want is None or got[k] is None:
            ok = want is None and got[k] is None
        else:
            ok = abs(got[k] - want) <= 1e-11 * magnitude + 1e-300
        if not ok:
            errors.append("%s %s: got %r expected %r (bound %r)" % (where, k, got[k], want,
                                                                  1e-11 * magnitude))
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


# ---------------------------------------------------------------------------------------------
# The live tests' workload (live_e2e_test.py, live_crash_test.py)

# The generator shifts 5% of the rows back by up to LATENESS (10 minutes) and 1% by 10 min + 1 s
# … 3 h 10 min; the live views declare 1 hour. So most disorder is well inside the bound, some
# rows are 10–60 minutes behind (still on time), and rows more than an hour behind are late.
LIVE_LATENESS = HOUR
SPAN = DAY

LIVE_SQL = (SQL
            .replace("WITH (connector = 'file', format = 'json')",
                     "WITH (connector = 'http', format = 'json')")
            .replace("INTERVAL '10' MINUTE", "INTERVAL '1' HOUR")) + """
-- A second HTTP source for the freshness probe (its event times are "now", which must not move
-- the watermark of the generated stream).
CREATE SOURCE pings (user_id STRING, ts TIMESTAMP) WITH (connector = 'http');
CREATE FEATURE VIEW ping_counts AS SELECT user_id, COUNT(*) AS pings FROM pings GROUP BY user_id;
"""
assert "connector = 'http', format = 'json'" in LIVE_SQL and "'1' HOUR" in LIVE_SQL

USERS = ["u0", "u1", "u2", "u3", "u7", "u50", "u299", "nobody"]
CD_KEYS = ["SE|web", "US|ios", "DE|android", "XX|web", "nowhere|web"]


def generate_stream(rng, n_events, n_users=300):
    """The backfill e2e's generator (disorder up to 10 minutes, see above), event times made
    unique."""
    return uniquify(generate(rng, n_events, n_users, BASE, SPAN, disorder=LATENESS))


def line_ts(line):
    """The event time the engine will see for `line`, or None if the line is blank/rejected."""
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    return parse_ts(obj.get("ts"))


def uniquify(lines):
    """Shifts event times by whole milliseconds so that no two rows share one (ties would make
    FIRST/LAST_VALUE and LAST_K depend on arrival order). Keeps each timestamp's form."""
    used, out = set(), []
    for line in lines:
        ts = line_ts(line)
        if ts is None or ts not in used:
            if ts is not None:
                used.add(ts)
            out.append(line)
            continue
        obj = json.loads(line)
        new = ts
        while new in used:
            new += 1
        used.add(new)
        v = obj["ts"]
        if isinstance(v, str):
            m = re.search(r"([+-])(\d\d):(\d\d)$", v)
            off = 0 if m is None else (1 if m.group(1) == "+" else -1) * (
                int(m.group(2)) * 60 + int(m.group(3)))
            obj["ts"] = rfc3339(new, off)
        else:
            obj["ts"] = new
        out.append(json.dumps(obj))
    return out


def build_epochs(lines, cap):
    """Cuts `lines` (in stream order) into epochs of at most `cap` lines such that every row of
    an epoch is late under any order of the epoch's lines or on time under any order (see the
    module doc). Returns a list of line lists."""
    epochs, cur = [], []
    prev_max = None            # max event time after the previous epochs (= watermark + lateness)
    e_max = e_min_ontime = None
    for line in lines:
        ts = line_ts(line)
        if len(cur) >= cap:
            fits = False
        elif ts is None:
            fits = True
        elif prev_max is not None and ts < prev_max - LIVE_LATENESS:
            fits = True  # late under any order
        else:
            hi = max(x for x in (prev_max, e_max, ts) if x is not None)
            lo = ts if e_min_ontime is None else min(e_min_ontime, ts)
            fits = lo >= hi - LIVE_LATENESS
        if not fits:
            epochs.append(cur)
            if e_max is not None:
                prev_max = e_max if prev_max is None else max(prev_max, e_max)
            cur, e_max, e_min_ontime = [], None, None
        cur.append(line)
        if ts is None:
            continue
        if prev_max is not None and ts < prev_max - LIVE_LATENESS:
            continue
        e_max = ts if e_max is None else max(e_max, ts)
        e_min_ontime = ts if e_min_ontime is None else min(e_min_ontime, ts)
    if cur:
        epochs.append(cur)
    return epochs


def late_flags(lines):
    """Per line: None (blank/rejected), True (late), False (on time), replaying in order."""
    out, mx = [], None
    for line in lines:
        ts = line_ts(line)
        if ts is None:
            out.append(None)
            continue
        late = mx is not None and ts < mx - LIVE_LATENESS
        out.append(late)
        if not late:
            mx = ts if mx is None else max(mx, ts)
    return out


def check_epochs_order_free(epochs, rng):
    """Self-check of build_epochs: shuffling inside every epoch must not change which lines are
    late."""
    flat = [l for e in epochs for l in e]
    ref = late_flags(flat)
    idx, k = [], 0
    for e in epochs:
        ids = list(range(k, k + len(e)))
        rng.shuffle(ids)
        idx += ids
        k += len(e)
    shuffled = late_flags([flat[i] for i in idx])
    again = [None] * len(flat)
    for pos, i in enumerate(idx):
        again[i] = shuffled[pos]
    assert again == ref, "build_epochs produced an order-dependent epoch"


class Batch:
    __slots__ = ("index", "epoch", "lines", "body", "batch_id", "accepted", "rejected", "rows",
                 "response")

    def __init__(self, index, epoch, lines, batch_id):
        self.index, self.epoch, self.lines, self.batch_id = index, epoch, lines, batch_id
        self.body = ("\n".join(lines) + "\n").encode()
        self.response = None


def make_batches(epochs, n_clients, batch_lines, rng, id_prefix, id_fraction=1.0):
    """Deals each epoch's lines randomly to `n_clients` and splits each client's share into
    batches of at most `batch_lines`. Returns (per epoch: per client: [Batch]), flat list.
    Also annotates every batch with its expected accepted/rejected and on-time rows."""
    plan, flat = [], []
    for ei, epoch in enumerate(epochs):
        shares = [[] for _ in range(n_clients)]
        for line in epoch:
            shares[rng.randrange(n_clients)].append(line)
        per_client = []
        for ci, share in enumerate(shares):
            bs = []
            for j in range(0, len(share), batch_lines):
                bid = ("%s-e%d-c%d-b%d" % (id_prefix, ei, ci, j // batch_lines)
                       if rng.random() < id_fraction else "")
                b = Batch(len(flat), ei, share[j:j + batch_lines], bid)
                flat.append(b)
                bs.append(b)
            per_client.append(bs)
        plan.append(per_client)
    annotate(flat)
    return plan, flat


def annotate(batches):
    """Expected response and on-time rows of each batch, from the reference decoder line by line
    and the (order-free) late flags of the whole stream in epoch order."""
    # Late flags of the stream in epoch order (the batches of one epoch are contiguous).
    lines = [l for b in batches for l in b.lines]
    flags = late_flags(lines)
    k = 0
    for b in batches:
        b.accepted = b.rejected = 0
        b.rows = []
        for line in b.lines:
            f = flags[k]
            k += 1
            if not line.strip():
                continue
            rows, c = decode([line])
            b.rejected += c["rejected"]
            if c["rejected"]:
                assert f is None
                continue
            b.accepted += 1
            if not f:
                b.rows.append(rows[0])


# ---------------------------------------------------------------------------------------------
# Brute-force reference answers (by key, from the on-time rows)

def in_user_stats(r):
    return r["user_id"] is not None and (r["country"] is None or r["country"] != "XX")


def in_country_device(r):
    return r["ms_played"] is not None and r["ms_played"] >= 1000 and r["country"] is not None


def cd_key(r):
    return "%s|%s" % (r["country"], r["device"])


class Reference:
    """Brute force over the on-time rows (in arrival order; event times are unique)."""

    def __init__(self, rows):
        self.rows = rows
        self.by_user, self.by_cd, self.by_device = {}, {}, {}
        for r in rows:
            if in_user_stats(r):
                self.by_user.setdefault(r["user_id"], []).append(r)
            if in_country_device(r):
                self.by_cd.setdefault(cd_key(r), []).append(r)
            self.by_device.setdefault(r["device"], []).append(r)
        self.times = {}
        for d in (self.by_user, self.by_cd, self.by_device):
            for k in d:
                d[k].sort(key=lambda r: r["ts"])
        for name, d in (("user", self.by_user), ("cd", self.by_cd), ("device", self.by_device)):
            for k, rs in d.items():
                self.times[(name, k)] = [r["ts"] for r in rs]

    def window(self, kind, key, at, w):
        d = {"user": self.by_user, "cd": self.by_cd, "device": self.by_device}[kind]
        rs = d.get(key, [])
        times = self.times.get((kind, key), [])
        to = -((-at) // TILE) * TILE
        frm = ((at - w) // TILE) * TILE
        return rs[bisect.bisect_left(times, frm):bisect.bisect_left(times, to)]


def check_cd(got, rs, where):
    scores = [r["score"] for r in rs if r["score"] is not None]
    exp = {"plays": len(rs), "best": max(scores) if scores else None}
    if got.get("plays") != exp["plays"] or not close(got.get("best"), exp["best"]):
        return ["%s: got %r expected %r" % (where, got, exp)]
    return []


def pick_ats(rng, n_random=10):
    ats = [BASE + SPAN // 2, BASE + SPAN + HOUR, BASE + 5 * HOUR + 17 * 60 * 1000,
           BASE + SPAN + 8 * DAY, BASE - HOUR]
    ats += [BASE + rng.randint(0, SPAN) for _ in range(n_random)]
    ats += [((BASE + rng.randint(0, SPAN)) // TILE) * TILE for _ in range(4)]
    return ats


def at_param(at, i):
    """`at` alternately as epoch ms and as RFC 3339 with an offset (same instant)."""
    if i % 3 == 0:
        return str(at)
    return rfc3339(at, [0, 330, -300][i % 3])


def effective_at(at):
    """The response's "at": the `at` asked for (reads cover the tile holding it whole)."""
    return rfc3339(at)


def compare_all(client, ref, ats, users=USERS, cd_keys=CD_KEYS):
    """Compares user_stats and country_device for every (key, at, window) through GET and
    batchGet. Returns (answers checked, failures)."""
    wlist = ",".join(WINDOWS)
    failures, checked = [], 0

    def check_result(view, res, key, at, how):
        nonlocal checked
        errs = []
        if res.get("view") != view or res.get("key") != key:
            return ["%s %s key=%s at=%d: response names view=%r key=%r" %
                    (how, view, key, at, res.get("view"), res.get("key"))]
        if res.get("at") != effective_at(at):
            errs.append("%s %s key=%s at=%d: effective at %r expected %r" %
                        (how, view, key, at, res.get("at"), effective_at(at)))
        for wname, wms in WINDOWS.items():
            where = "%s %s key=%s at=%d w=%s" % (how, view, key, at, wname)
            got = res["windows"].get(wname)
            if got is None:
                errs.append("%s: window missing" % where)
                continue
            if view == "user_stats":
                errs += check_user_stats(
                    got, expect_user_stats(ref.window("user", key, at, wms), at), where)
            else:
                errs += check_cd(got, ref.window("cd", key, at, wms), where)
            checked += 1
        return errs

    for i, at in enumerate(ats):
        ap = urllib.parse.quote(at_param(at, i), safe="")
        for view, keys in (("user_stats", users), ("country_device", cd_keys)):
            for key in keys:
                st, body = client.get("/v1/features/%s/%s?windows=%s&at=%s" %
                                      (view, urllib.parse.quote(key, safe=""), wlist, ap))
                if st != 200:
                    failures.append("GET %s/%s at=%d: status %d %r" % (view, key, at, st, body))
                    continue
                failures += check_result(view, json.loads(body), key, at, "GET")
            at_json = at if i % 2 == 0 else at_param(at, i + 1)
            st, body = client.post("/v1/features:batchGet", json.dumps(
                {"view": view, "keys": keys, "windows": list(WINDOWS), "at": at_json}))
            if st != 200:
                failures.append("batchGet %s at=%d: status %d %r" % (view, at, st, body))
                continue
            results = json.loads(body)["results"]
            if len(results) != len(keys):
                failures.append("batchGet %s at=%d: %d results for %d keys" %
                                (view, at, len(results), len(keys)))
                continue
            for key, res in zip(keys, results):
                failures += check_result(view, res, key, at, "batchGet")
    return checked, failures


def expect_meta(ref, kind, key, at, windows, watermark_ms):
    """The "meta" of an answer: the newest event time of the rows it includes (the longest
    window's, brute force) and the engine's watermark (None: none yet)."""
    rs = ref.window(kind, key, at, max(windows.values()))
    newest = max((r["ts"] for r in rs), default=None)
    return {"newest_event_time": None if newest is None else rfc3339(newest),
            "watermark": None if watermark_ms is None else rfc3339(watermark_ms)}


def check_meta(res, ref, kind, key, at, windows, watermark_ms, where):
    """Failures of one answer's "meta" (also: it is the last field, after "windows")."""
    exp = expect_meta(ref, kind, key, at, windows, watermark_ms)
    got = res.get("meta")
    errs = []
    if got != exp:
        errs.append("%s meta: got %r expected %r" % (where, got, exp))
    if list(res)[-1] != "meta":
        errs.append("%s meta: not the last field (%r)" % (where, list(res)))
    return errs


def compare_meta(client, ref, ats, watermark_ms, users=USERS, cd_keys=CD_KEYS):
    """GET ?meta=true and batchGet "meta": true for every (view, key, at): each answer's meta is
    the brute force's, and its features are those of the same read without meta. Returns
    (answers checked, failures)."""
    wlist = ",".join(WINDOWS)
    failures, checked = [], 0
    for i, at in enumerate(ats):
        ap = urllib.parse.quote(at_param(at, i), safe="")
        for view, kind, keys in (("user_stats", "user", users), ("country_device", "cd", cd_keys)):
            for key in keys:
                path = "/v1/features/%s/%s?windows=%s&at=%s" % (
                    view, urllib.parse.quote(key, safe=""), wlist, ap)
                st, body = client.get(path + "&meta=true")
                st2, plain = client.get(path)
                if st != 200 or st2 != 200:
                    failures.append("GET %s/%s at=%d meta: status %d/%d %r" %
                                    (view, key, at, st, st2, body))
                    continue
                res = json.loads(body)
                where = "GET %s key=%s at=%d" % (view, key, at)
                failures += check_meta(res, ref, kind, key, at, WINDOWS, watermark_ms, where)
                if "meta" in json.loads(plain):
                    failures.append("%s: meta without meta=true" % where)
                res.pop("meta", None)
                if res != json.loads(plain):
                    failures.append("%s: features differ with meta=true" % where)
                checked += 1
            st, body = client.post("/v1/features:batchGet", json.dumps(
                {"view": view, "keys": keys, "windows": list(WINDOWS), "at": at, "meta": True}))
            if st != 200:
                failures.append("batchGet %s at=%d meta: status %d %r" % (view, at, st, body))
                continue
            for key, res in zip(keys, json.loads(body)["results"]):
                failures += check_meta(res, ref, kind, key, at, WINDOWS, watermark_ms,
                                       "batchGet %s key=%s at=%d" % (view, key, at))
                checked += 1
    return checked, failures


# ---------------------------------------------------------------------------------------------
# Processes

def log_tail(path, n=30):
    """The last `n` lines of a log file ("" if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
    except OSError:
        return ""


_running = set()  # Servers started and not yet stopped: killed at exit (a test that failed)


@atexit.register
def _kill_leftovers():
    for server in list(_running):
        server.kill()


def run(cmd, **kw):
    """Runs a command to completion; its stdout, or SystemExit with its output on failure."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit("command failed (%d): %s\nstdout:%s\nstderr:%s" %
                         (p.returncode, " ".join(cmd), p.stdout, p.stderr))
    return p.stdout


def tessera_get(tessera, db, view, keys, at, windows, meta=False):
    """`tessera get` for several keys (with `meta`: --meta): one parsed JSON object per key."""
    cmd = [tessera, "get", "--db", db, "--view", view, "--at", str(at), "--windows", windows]
    if meta:
        cmd.append("--meta")
    for k in keys:
        cmd += ["--key", k]
    out = run(cmd)
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def last_json(out):
    """The JSON object on the last line of a command's output (backfill's summary)."""
    return json.loads(out.strip().splitlines()[-1])


class Server:
    """One `tessera run` process; start() waits for its listening line. A server that is not
    stopped (terminate, kill9, kill) is killed at exit, so a failing test leaves no process."""

    def __init__(self, tessera, sql_path, db, log_path, extra=(), env=None):
        self.tessera, self.sql_path, self.db, self.log_path = tessera, sql_path, db, log_path
        self.extra = list(extra)
        self.env = env
        self.proc = None
        self.host = self.port = None

    def command(self):
        """The argv of the process (subclasses start other commands the same way)."""
        return [self.tessera, "run", "--sql", self.sql_path, "--db", self.db,
                "--http", "127.0.0.1:0"] + self.extra

    def start(self, timeout=30):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=log,
                                     env=self.env)
        log.close()
        _running.add(self)
        line = [None]

        def read():
            line[0] = self.proc.stdout.readline()
        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        if not line[0]:
            self.proc.kill()
            raise SystemExit("FAIL: %s printed no listening line within %ds; log:\n%s"
                             % (" ".join(self.command()[:2]), timeout, self.log_tail()))
        url = json.loads(line[0])["listening"]
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port
        # Drain stdout so the process never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        return self

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        _running.discard(self)

    def kill(self):
        """SIGKILL if still running (cleanup after a failure)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        _running.discard(self)

    def terminate(self, timeout=15):
        """SIGTERM; returns (exit code, seconds)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "timeout"
        _running.discard(self)
        return rc, time.monotonic() - t0

    def log_tail(self, n=30):
        return log_tail(self.log_path, n)


class Command(Server):
    """Any `tessera` command that serves HTTP and prints the listening line (`run --store …`,
    `serve`), given as the arguments after the binary; started, stopped and killed at exit like
    Server. `env` is the whole environment of the process (None: this one's)."""

    def __init__(self, tessera, args, log_path, env=None):
        super().__init__(tessera, None, None, log_path, env=env)
        self.args = list(args)

    def command(self):
        return [self.tessera] + self.args


# ---------------------------------------------------------------------------------------------
# The Pub/Sub emulator (pubsub_e2e_test.py, scripts/bench_pubsub.py)

def find_packaged(package, suffix, name):
    """The executable of Debian package `package` whose path ends with `suffix`, else `name` on
    the PATH, or None."""
    try:
        out = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True).stdout
    except OSError:
        out = ""
    for line in out.splitlines():
        if line.endswith(suffix) and os.access(line, os.X_OK):
            return line
    return shutil.which(name)


def find_pubsub_emulator():
    """The emulator's launcher (package google-cloud-cli-pubsub-emulator), or None."""
    return find_packaged("google-cloud-cli-pubsub-emulator", "bin/cloud-pubsub-emulator",
                         "cloud-pubsub-emulator")


class PubSubEmulator:
    """`cloud-pubsub-emulator` on a free loopback port (in its own process group: the launcher
    runs java as a child), killed at exit, with its REST API for setup and publishing."""

    def __init__(self, binary, log_path, project):
        self.binary, self.log_path, self.project = binary, log_path, project
        self.proc = None
        self.port = None

    def start(self, timeout=90):
        for _ in range(3):  # the free port may be taken before the emulator binds it
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
            s.close()
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [self.binary, "--host=127.0.0.1", "--port=%d" % self.port],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            log.close()
            atexit.register(self.stop)
            deadline = time.monotonic() + timeout
            ready = "Server started, listening on %d" % self.port
            while time.monotonic() < deadline and self.proc.poll() is None:
                with open(self.log_path, errors="replace") as f:
                    if ready in f.read():
                        return self
                time.sleep(0.1)
            self.stop()
        raise SystemExit("FAIL: the Pub/Sub emulator did not start; log:\n%s" %
                         log_tail(self.log_path))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def host(self):
        return "127.0.0.1:%d" % self.port

    def rest(self, method, path, body=None):
        """One REST call (path after /v1/projects/PROJECT/); the parsed JSON answer."""
        req = urllib.request.Request(
            "http://%s/v1/projects/%s/%s" % (self.host(), self.project, path), method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise SystemExit("FAIL: emulator %s %s: %d %s" % (method, path, e.code, e.read()))

    def create(self, topic, subscription, ack_deadline_s, retain_acked=False):
        self.rest("PUT", "topics/%s" % topic, {})
        self.rest("PUT", "subscriptions/%s" % subscription,
                  {"topic": "projects/%s/topics/%s" % (self.project, topic),
                   "ackDeadlineSeconds": ack_deadline_s, "retainAckedMessages": retain_acked})

    def publish(self, topic, lines):
        """Publishes one message per line (base64 data, at most 1000 per request), in order;
        returns the message ids."""
        ids = []
        for i in range(0, len(lines), 1000):
            msgs = [{"data": base64.b64encode(l.encode()).decode()} for l in lines[i:i + 1000]]
            ids += self.rest("POST", "topics/%s:publish" % topic, {"messages": msgs})["messageIds"]
        return ids


# ---------------------------------------------------------------------------------------------
# The Bigtable emulator (scaleout_e2e_test.py, scripts/bench_scaleout.sh)

BIGTABLE_EMULATOR = "/usr/lib/google-cloud-sdk/platform/bigtable-emulator/cbtemulator"


def find_bigtable_emulator():
    """`cbtemulator` (package google-cloud-cli-bigtable-emulator), or None."""
    if os.access(BIGTABLE_EMULATOR, os.X_OK):
        return BIGTABLE_EMULATOR
    return find_packaged("google-cloud-cli-bigtable-emulator", "/cbtemulator", "cbtemulator")


class BigtableEmulator:
    """`cbtemulator` (in memory, plaintext gRPC, data and admin APIs on one port) on a free
    loopback port: asked for port 0, it binds one and prints `Cloud Bigtable emulator running on
    HOST:PORT`, so no port can be taken in between. Killed at exit."""

    def __init__(self, binary, log_path):
        self.binary, self.log_path = binary, log_path
        self.proc = None
        self.host = None  # "127.0.0.1:PORT" once started

    def start(self, timeout=30):
        log = open(self.log_path, "ab")
        log_from = log.tell()  # the log may hold earlier runs' lines
        self.proc = subprocess.Popen([self.binary, "-host", "127.0.0.1", "-port", "0"],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            with open(self.log_path, errors="replace") as f:
                f.seek(log_from)
                m = re.search(r"Cloud Bigtable emulator running on (\S+)", f.read())
            if m:
                self.host = m.group(1)
                return self
            time.sleep(0.05)
        self.stop()
        raise SystemExit("FAIL: the Bigtable emulator did not start; log:\n%s" %
                         log_tail(self.log_path))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def env(self):
        """This process's environment with BIGTABLE_EMULATOR_HOST pointing at the emulator."""
        return dict(os.environ, BIGTABLE_EMULATOR_HOST=self.host)

    def rss_kb(self):
        """The emulator's resident memory (kB), or None."""
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
            return int(m.group(1)) if m else None
        except OSError:
            return None


# ---------------------------------------------------------------------------------------------
# Kafka: librdkafka's mock cluster (tessera-kafka-mock), kcat, keyed streams
# (kafka_e2e_test.py has its own copies of these; new tests use the ones here)

class KafkaMock:
    """tessera-kafka-mock with its stdin held by this process: it stops when we close it — or
    when this process dies, however it dies. `topics`: {name: partitions}."""

    def __init__(self, path, topics, log_path, brokers=3):
        cmd = [path, "--brokers", str(brokers), "--exit-on-stdin-eof"]
        for name, partitions in topics.items():
            cmd += ["--topic", "%s:%d" % (name, partitions)]
        self.log_path = log_path
        log = open(log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=log)
        log.close()
        line = [b""]
        t = threading.Thread(target=lambda: line.__setitem__(0, self.proc.stdout.readline()),
                             daemon=True)
        t.start()
        t.join(15)
        self.bootstrap = line[0].decode().strip()
        if not self.bootstrap:
            self.stop()
            raise SystemExit("FAIL: tessera-kafka-mock printed no address; log:\n" +
                             log_tail(log_path))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class KafkaProducer:
    """One long-lived `kcat -P -K:` fed through a pipe (each message "key:value" on a line)."""

    def __init__(self, bootstrap, topic, log_path):
        log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            ["kcat", "-b", bootstrap, "-P", "-t", topic, "-K:", "-X", "linger.ms=5"],
            stdin=subprocess.PIPE, stderr=log)
        log.close()
        self.log_path = log_path

    def send(self, messages):
        self.proc.stdin.write("".join("%s:%s\n" % kv for kv in messages).encode())
        self.proc.stdin.flush()

    def close(self):
        self.proc.stdin.close()
        rc = self.proc.wait(60)
        if rc != 0:
            raise SystemExit("FAIL: kcat -P exit %d; log:\n%s" % (rc, log_tail(self.log_path)))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def kafka_produce(bootstrap, topic, messages):
    """Produces [(key, value)] with one `kcat -P -K:` and returns once all are delivered (kcat
    exits after its final flush). A long-lived KafkaProducer reads its stdin in blocks, so a few
    messages may wait in its buffer; this one is for rows that must go out now."""
    run(["kcat", "-b", bootstrap, "-P", "-t", topic, "-K:", "-X", "linger.ms=5"],
        input="".join("%s:%s\n" % kv for kv in messages))


def kafka_message_key(line):
    """The Kafka key of a line: its user_id, or "-" (malformed lines, NULL or non-string ids)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return "-"
    u = obj.get("user_id") if isinstance(obj, dict) else None
    return u if isinstance(u, str) and u and ":" not in u else "-"


def kafka_stream(rng, n_events, n_users, base, lateness=LIVE_LATENESS):
    """[(key, value)] in production order, keyed by user: generator lines with unique event
    times (disorder up to LATENESS, malformed lines, NULLs, type errors, both time forms), plus a
    few empty messages (the engine reads them as "null"). Rows more than `lateness` behind the
    newest row produced before them are left out: with the watermark the minimum over the active
    partitions, such a row could be late or not depending on how partitions interleave, while
    every row kept is on time under any interleaving (its own partition counts)."""
    lines = uniquify(generate(rng, n_events, n_users, base, SPAN, disorder=LATENESS))
    out, newest = [], None
    for line in lines:
        ts = line_ts(line)
        if ts is not None:
            if newest is not None and ts < newest - lateness:
                continue
            newest = ts if newest is None else max(newest, ts)
        out.append((kafka_message_key(line), line))
        if rng.random() < 0.002:
            out.append(("u%d" % rng.randrange(n_users), ""))
    return out


def kafka_engine_lines(messages):
    """The lines the engine decodes for these messages (an empty message is "null")."""
    return [v if v else "null" for _, v in messages]


def kafka_read_back(bootstrap, topic, partitions, produced):
    """Consumes the whole topic with kcat: per partition, its (key, value) messages in offset
    order. Checks that they are the produced messages, each partition's in production order,
    and that each key is in one partition."""
    out = run(["kcat", "-b", bootstrap, "-C", "-t", topic, "-e", "-q", "-f", "%p %o %k\t%s\n"])
    parts, where = [[] for _ in range(partitions)], {}
    for line in out.split("\n")[:-1]:
        head, _, value = line.partition("\t")
        p, o, key = head.split(" ", 2)
        p, o = int(p), int(o)
        if o != len(parts[p]):
            raise SystemExit("FAIL: partition %d: offset %d after %d messages" %
                             (p, o, len(parts[p])))
        parts[p].append((key, value))
        if where.setdefault(key, p) != p:
            raise SystemExit("FAIL: key %r is in partitions %d and %d" % (key, where[key], p))
    expect = [[] for _ in range(partitions)]
    for key, value in produced:
        if key in where:
            expect[where[key]].append((key, value))
    if expect != parts or sum(map(len, parts)) != len(produced):
        raise SystemExit("FAIL: the topic holds %d messages (per partition %s), %d were produced "
                         "(or in another order)" % (sum(map(len, parts)), list(map(len, parts)),
                                                    len(produced)))
    return parts


def partition_gauges(client, name):
    """{partition: value} of a per-partition Kafka metric (tessera_kafka_partition_*)."""
    ms, _ = metrics(client)
    return {int(dict(labels)["partition"]): v for (n, labels), v in ms.items() if n == name}


# ---------------------------------------------------------------------------------------------
# HTTP

class Client:
    """A keep-alive HTTP/1.1 connection."""

    def __init__(self, host, port, timeout=30):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)

    def request(self, method, path, body=None, headers=None):
        h = {"Content-Type": "application/json"} if body is not None else {}
        h.update(headers or {})
        self.conn.request(method, path, body=body, headers=h)
        r = self.conn.getresponse()
        data = r.read()
        self.last_headers = r.headers
        return r.status, data.decode(errors="replace")

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body, headers=None):
        return self.request("POST", path, body=body, headers=headers)

    def ingest(self, source, body, batch_id=""):
        path = "/v1/ingest/%s" % source
        if batch_id:
            path += "?batch_id=" + urllib.parse.quote(batch_id, safe="")
        return self.post(path, body, {"Content-Type": "application/x-ndjson"})

    def close(self):
        self.conn.close()


def metrics(client):
    """Fetches /metrics: ({(name, frozenset(labels)): value}, the text)."""
    st, body = client.get("/metrics")
    assert st == 200, body
    return parse_metrics(body), body


def parse_metrics(body):
    """Prometheus text into {(name, frozenset(labels)): value}."""
    out = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(ms, name, **labels):
    return ms.get((name, frozenset(labels.items())))


def wait_consumed(client, source, accepted_total, timeout=30):
    """Waits until the pipeline has read every acknowledged line of `source`."""
    deadline = time.monotonic() + timeout
    while True:
        ms, _ = metrics(client)
        lines = metric(ms, "tessera_source_lines_total", source=source) or 0
        if lines >= accepted_total or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


def raw_exchange(host, port, data, timeout=10):
    """Sends raw bytes, returns the status line of the response (or what happened)."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(data)
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf.split(b"\r\n", 1)[0].decode(errors="replace")
    except socket.timeout:
        return "timeout"
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------
# Bucketed aggregates and frequency sketches (COUNT_BY, SUM_BY, APPROX_HISTOGRAM, APPROX_TOP_K):
# a view of their own over the rows of user_stats (the same WHERE, so Reference.window("user", …)
# holds its rows), checked exactly where README says they are exact and within the documented
# bound where it says they are approximate.

BUCKETS_SQL = """
CREATE FEATURE VIEW user_buckets WITH (tile = '5m') AS
SELECT user_id,
       COUNT_BY(device) AS plays_by_device,
       SUM_BY(ms_played, device) AS ms_by_device,
       SUM_BY(score, country, 3) AS score_by_country,
       COUNT_BY(track_id, 8) AS plays_by_track,
       APPROX_HISTOGRAM(ms_played, 'log10') AS ms_magnitudes,
       APPROX_HISTOGRAM(score, '0,10,50') AS score_bins,
       APPROX_TOP_K(country, 3) AS heavy_countries,
       APPROX_TOP_K(track_id, 5, 16) AS heavy_tracks
FROM plays
WHERE country IS NULL OR country <> 'XX'
GROUP BY user_id;
"""
BUCKETS_TRACK_CAP = 8
BUCKETS_TRACK_COUNTERS = 16


def _num(v):
    """A bound as the engine prints it (shortest round-trip; integers below 1e16 plainly)."""
    if v == int(v) and abs(v) < 1e16:
        return "%d" % v
    return repr(float(v))


def histogram_label(x, bins):
    """APPROX_HISTOGRAM's bin label of x for 'log10' or explicit edges 'e1,e2,…' (README)."""
    if bins == "log10":
        if x == 0:
            return "[0,0]"
        a, k = abs(x), 0
        while 10.0 ** (k + 1) <= a:
            k += 1
        while 10.0 ** k > a:
            k -= 1
        lo, hi = _num(float("1e%d" % k)), _num(float("1e%d" % (k + 1)))
        return "[%s,%s)" % (lo, hi) if x > 0 else "(-%s,-%s]" % (hi, lo)
    edges = [float(e) for e in bins.split(",")]
    i = bisect.bisect_right(edges, x)
    lo = "-inf" if i == 0 else _num(edges[i - 1])
    return "[%s,inf]" % lo if i == len(edges) else "[%s,%s)" % (lo, _num(edges[i]))


def expect_buckets(rs):
    """The exact values of user_buckets over rows `rs` (COUNT_BY(track_id, 8) and the
    APPROX_TOP_K of tracks are checked against bounds instead: see check_buckets)."""
    def count_by(col):
        out = {}
        for r in rs:
            if r[col] is not None:
                out[r[col]] = out.get(r[col], 0) + 1
        return out

    def sum_by(x, col):
        out = {}
        for r in rs:
            if r[x] is not None and r[col] is not None:
                out[r[col]] = out.get(r[col], 0) + r[x]
        return out

    def histogram(col, bins):
        out = {}
        for r in rs:
            if r[col] is not None:
                label = histogram_label(r[col], bins)
                out[label] = out.get(label, 0) + 1
        return out

    countries = count_by("country")
    return {
        "plays_by_device": count_by("device"),
        "ms_by_device": sum_by("ms_played", "device"),
        "score_by_country": sum_by("score", "country"),  # 3 countries pass the WHERE: exact
        "plays_by_track": count_by("track_id"),
        "ms_magnitudes": histogram("ms_played", "log10"),
        "score_bins": histogram("score", "0,10,50"),
        "heavy_countries": [{"count": n, "error": 0, "value": c} for c, n in
                            sorted(countries.items(), key=lambda kv: (-kv[1], kv[0]))[:3]],
    }


def check_buckets(got, rs, where):
    exp = expect_buckets(rs)
    errors = []
    for k in ["plays_by_device", "ms_by_device", "ms_magnitudes", "score_bins", "heavy_countries"]:
        if got.get(k) != exp[k]:
            errors.append("%s %s: got %r expected %r" % (where, k, got.get(k), exp[k]))
    g = got.get("score_by_country")
    if not isinstance(g, dict) or set(g) != set(exp["score_by_country"]) or not all(
            close(g[c], v) for c, v in exp["score_by_country"].items()):
        errors.append("%s score_by_country: got %r expected %r" %
                      (where, g, exp["score_by_country"]))

    # COUNT_BY(track_id, 8): exact while the window has at most 8 tracks; otherwise at most 8
    # buckets and __other__, every row counted once, and a listed track never over-counted.
    truth, g = exp["plays_by_track"], got.get("plays_by_track")
    if not isinstance(g, dict):
        errors.append("%s plays_by_track: got %r" % (where, g))
    elif len(truth) <= BUCKETS_TRACK_CAP:
        if g != truth:
            errors.append("%s plays_by_track: got %r expected %r" % (where, g, truth))
    else:
        tracks = {k: v for k, v in g.items() if k != "__other__"}
        if (len(tracks) != BUCKETS_TRACK_CAP or sum(g.values()) != sum(truth.values())
                or any(v > truth.get(k, 0) for k, v in tracks.items())):
            errors.append("%s plays_by_track: got %r, truth %d rows over %d tracks" %
                          (where, g, sum(truth.values()), len(truth)))

    # APPROX_TOP_K(track_id, 5, 16): c <= true <= c + E, E <= N / 17, most frequent first; exact
    # (E = 0, the true top 5) while the window holds at most 2·16 tracks.
    g = got.get("heavy_tracks")
    n = sum(truth.values())
    m = BUCKETS_TRACK_COUNTERS
    ranked = sorted(truth.items(), key=lambda kv: (-kv[1], kv[0]))
    if not isinstance(g, list):
        errors.append("%s heavy_tracks: got %r" % (where, g))
    elif len(truth) <= 2 * m:
        want = [{"count": c, "error": 0, "value": t} for t, c in ranked[:5]]
        if g != want:
            errors.append("%s heavy_tracks: got %r expected %r" % (where, g, want))
    else:
        counts = [e["count"] for e in g]
        # A Misra-Gries summary may hold fewer than k values (none heavier than its error).
        bad = (len(g) > 5 or counts != sorted(counts, reverse=True) or any(
            not (e["count"] <= truth.get(e["value"], 0) <= e["count"] + e["error"]) or
            e["error"] > n // (m + 1) for e in g))
        heavy = [t for t, c in ranked if c > n // (m + 1)]
        if len(heavy) <= 5 and not set(heavy) <= {e["value"] for e in g}:
            bad = True
        if bad:
            errors.append("%s heavy_tracks: got %r, truth top %r of %d rows" %
                          (where, g, ranked[:8], n))
    return errors


def compare_buckets(client, ref, ats, users=USERS):
    """Compares user_buckets (BUCKETS_SQL) for every (key, at, window) through GET and batchGet.
    Returns (answers checked, failures)."""
    wlist = ",".join(WINDOWS)
    failures, checked = [], 0
    for i, at in enumerate(ats):
        answers = []
        for key in users:
            st, body = client.get("/v1/features/user_buckets/%s?windows=%s&at=%d" %
                                  (urllib.parse.quote(key, safe=""), wlist, at))
            if st != 200:
                failures.append("GET user_buckets/%s at=%d: status %d %r" % (key, at, st, body))
                continue
            answers.append(("GET", key, json.loads(body)))
        st, body = client.post("/v1/features:batchGet", json.dumps(
            {"view": "user_buckets", "keys": users, "windows": list(WINDOWS), "at": at}))
        if st != 200:
            failures.append("batchGet user_buckets at=%d: status %d %r" % (at, st, body))
        else:
            answers += [("batchGet", key, res) for key, res in
                        zip(users, json.loads(body)["results"])]
        for how, key, res in answers:
            for wname, wms in WINDOWS.items():
                where = "%s user_buckets key=%s at=%d w=%s" % (how, key, at, wname)
                got = res.get("windows", {}).get(wname)
                if got is None:
                    failures.append("%s: window missing" % where)
                    continue
                failures += check_buckets(got, ref.window("user", key, at, wms), where)
                checked += 1
    return checked, failures


# ---------------------------------------------------------------------------------------------
# Reporting

class Failures(list):
    """Failure messages; check() appends one when a condition does not hold."""
    def check(self, cond, msg):
        if not cond:
            self.append(msg)
        return cond


def report(failures, limit=40):
    """Prints the failures (at most `limit`) and exits 1 if there are any, else prints OK."""
    for f in failures[:limit]:
        print("FAIL:", f)
    if failures:
        print("%d failures" % len(failures))
        sys.exit(1)
    print("OK")
