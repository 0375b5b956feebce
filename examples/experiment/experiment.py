#!/usr/bin/python3
"""The experimentation loop, end to end: from new SQL to a model trained on it, served live.

  1. generate a music-listening stream (NDJSON, ~2 days) whose skips depend on recent behaviour
  2. take the feature views (views.sql beside this script, or --sql) into the work directory
  3. build a labelled spine: "will this user skip the next track?"
  4. point-in-time features for every spine row: tessera.training_set(...)
  5. train scikit-learn models on a time split: AUC without / with the near-real-time windows
  6. serve the same SQL live: backfill the history, `tessera run`, POST the last 2 hours in
     arrival order, in batches, reading a few users between batches at an unaligned "now";
     then read the users' features with Client.batch_get(as_frame=True) and score them
  7. training/serving skew: tessera.training_set at the same (user, time) gives the same
     features (at every cut, and at the serving time, where the scores are equal too)

Checks (exit status 1 when one fails): one training row per spine row, AUC with the NRT windows
beats AUC without by --min-gain, every posted row accepted, online features and scores equal the
training set's for the same (user, time). Run with Debian's /usr/bin/python3 (python3-pandas,
python3-sklearn). See README.md beside this file.
"""
import sys

sys.dont_write_bytecode = True

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "python"))

import tessera  # noqa: E402

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
TILE = 5 * MINUTE
BASE = 1_793_577_600_000  # 2026-11-02T00:00:00Z: the stream covers BASE .. BASE + 2 days
SPAN = 2 * DAY
WINDOWS = ["5m", "1h", "6h", "1d"]
LIVE = 2 * HOUR  # the last 2 hours of the stream are POSTed to the live server
CUTS = 24  # reads at unaligned "now" times between the POSTed batches (skew check)
CUT_USERS = 8  # users read at each cut
MAX_BATCH = 5000  # rows per POST
MIN_EVENTS = 15_000  # below it the AUC gain check at the default --min-gain is not reliable
DEFAULT_MIN_GAIN = 0.05


class CheckFailed(Exception):
    pass


def check(ok, what):
    if not ok:
        raise CheckFailed(what)


def step(n, text, t0):
    print(f"[{n}/7] {text}  ({time.monotonic() - t0:.1f} s)", flush=True)


def utc(ms):
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(ms // 1000)) + "Z"


# ---------------------------------------------------------------------------------------------
# 1. The stream


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def generate(n_events, n_users, seed):
    """Plays of `n_users` listeners over SPAN, about `n_events` of them, as dicts in arrival
    order (mostly by time; 3% arrive up to 2 minutes late, well within the 5-minute watermark).

    A play's `ts` is when it ended (so its outcome is known at ts). Whether it is skipped:
    sigmoid(user's stable propensity + the session's mood + 4 if the user is restless). A
    listener turns restless at the start of a play with probability 4% and stays so for an
    exponential ~10 minutes: then nearly everything is skipped (short plays in quick succession).
    So the last minutes predict the next skip much better than a day-long average."""
    rng = random.Random(seed)
    users = [f"user{i:05d}" for i in range(n_users)]
    propensity = [rng.gauss(-1.8, 0.7) for _ in users]
    activity = [rng.lognormvariate(0.0, 0.8) for _ in users]
    device = [rng.choice(["ios", "android", "web", "desktop"]) for _ in users]
    cum, acc = [], 0.0
    for a in activity:
        acc += a
        cum.append(acc)

    # Sessions (user, start, plays) until they hold n_events plays.
    sessions = [[] for _ in users]
    planned = 0
    while planned < n_events:
        k = max(1, (n_events - planned) // 20)
        for u in rng.choices(range(n_users), cum_weights=cum, k=k):
            n = 1 + int(rng.expovariate(1 / 19))
            sessions[u].append((BASE + rng.randrange(SPAN), n))
            planned += n

    plays = []
    for u, user in enumerate(users):
        t_free = BASE
        for start, n in sorted(sessions[u]):
            t = max(start, t_free)
            mood = rng.gauss(0.0, 0.6)
            dev = device[u] if rng.random() < 0.8 else rng.choice(["ios", "android", "web"])
            restless_until = -1
            for _ in range(n):
                if t >= restless_until and rng.random() < 0.04:
                    restless_until = t + int(rng.expovariate(1 / (10 * MINUTE)))
                restless = t < restless_until
                skipped = rng.random() < sigmoid(propensity[u] + mood + (4.0 if restless else 0))
                ms = rng.randint(1_500, 30_000) if skipped else rng.randint(90_000, 330_000)
                t += ms  # the play ends
                if t >= BASE + SPAN:
                    break
                track = f"track{int(20000 * rng.random() ** 2):05d}"  # popular ones first
                plays.append({"user_id": user, "track_id": track, "ms_played": ms,
                              "skipped": skipped, "device": dev, "ts": t})
                t += rng.randint(200, 4_000)  # the next one starts
            t_free = t + rng.randint(10 * MINUTE, 60 * MINUTE)
    delayed = [p["ts"] + (rng.randint(1, 2 * MINUTE) if rng.random() < 0.03 else 0) for p in plays]
    order = sorted(range(len(plays)), key=lambda i: (delayed[i], plays[i]["ts"]))
    return [plays[i] for i in order]


def write_ndjson(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, separators=(",", ":")))
            f.write("\n")


# ---------------------------------------------------------------------------------------------
# 3. The spine


def build_spine(pd, plays, max_rows, seed):
    """One candidate row per play p of user u at time t that has a next play n of u (and t is at
    least a day into the stream, so every window is full): user_id = u, ts = t + 1 ms,
    label = n.skipped, label_ts = n.ts.

    Point in time: we predict right after p ended, when its outcome is known. Features at spine
    time ts cover events with time < ts, so ts = t + 1 includes p itself (ts = t would leave out
    the freshest signal) and excludes n, the play whose outcome is the label (n ends after p,
    at label_ts > t + 1). A random sample of at most `max_rows` candidates, in time order."""
    by_user = {}
    for p in plays:
        by_user.setdefault(p["user_id"], []).append(p)
    rows = []
    for user, ps in by_user.items():
        ps.sort(key=lambda p: p["ts"])
        for p, n in zip(ps, ps[1:]):
            if p["ts"] >= BASE + DAY:
                check(n["ts"] > p["ts"] + 1, f"{user}: two plays within 1 ms")
                rows.append((user, p["ts"] + 1, n["skipped"], n["ts"]))
    rng = random.Random(seed + 1)
    if len(rows) > max_rows:
        rows = rng.sample(rows, max_rows)
    rows.sort(key=lambda r: (r[1], r[0]))
    return pd.DataFrame(rows, columns=["user_id", "ts", "label", "label_ts"])


# ---------------------------------------------------------------------------------------------
# 5. Models


def feature_columns(df, view):
    return [c for c in df.columns if c.startswith(view + "__")]


def fit(features, labels, seed):
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, max_leaf_nodes=15,
                                           random_state=seed)
    return model.fit(features, labels)


# ---------------------------------------------------------------------------------------------
# 6. The live server


class Server:
    """`tessera run` on a free loopback port: started, ready, stopped (SIGTERM, then SIGKILL);
    killed with this process if it dies first (PR_SET_PDEATHSIG)."""

    def __init__(self, binary, sql, db, log_path):
        self.cmd = [binary, "run", "--sql", str(sql), "--db", str(db), "--http", "127.0.0.1:0"]
        self.log_path = log_path
        self.proc = None
        self.url = None

    def start(self, timeout=30.0):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=log, preexec_fn=_die_with_parent)
        first = []
        reader = threading.Thread(target=lambda: first.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        if not first or not first[0]:
            raise CheckFailed(f"`tessera run` printed no listening line within {timeout:g} s; "
                              f"log:\n{self.log_tail()}")
        self.url = json.loads(first[0])["listening"]  # {"listening":"http://127.0.0.1:PORT"}
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # drain stdout
        client = tessera.Client(self.url)
        deadline = time.monotonic() + timeout
        while not client.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise CheckFailed(f"`tessera run` not ready; log:\n{self.log_tail()}")
            time.sleep(0.05)
        client.close()
        return self

    def stop(self, timeout=30.0):
        """SIGTERM (it flushes and stops); returns its exit status (None if it had to be
        killed or never started)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def log_tail(self, n=20):
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def _die_with_parent():
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def choose_cuts(plays, first_live, rng):
    """Where to stop POSTing and read: CUTS arrival positions p in the live part (plays[:p]
    posted, plays[p:] not yet), each with a time t not on a tile boundary such that every play
    with ts < t has been posted and none posted has ts >= t: max posted ts < t <= min ts not
    yet posted. Late arrivals make that impossible wherever a late play is still "in flight"
    (posted after plays later than it): those positions are left out, and the cuts are spread
    evenly over the others. Returns ([(p, t)], how many positions qualified)."""
    n = len(plays)
    suffix_min = [math.inf] * (n + 1)
    for i in range(n - 1, first_live - 1, -1):
        suffix_min[i] = min(suffix_min[i + 1], plays[i]["ts"])
    prefix_max = max((p["ts"] for p in plays[:first_live]), default=-math.inf)
    candidates = []  # (p, lo, hi): lo < t <= hi
    for i in range(first_live, n):
        if i > first_live:
            prefix_max = max(prefix_max, plays[i - 1]["ts"])
        lo, hi = prefix_max, suffix_min[i]
        if hi - lo >= 2 or (hi - lo == 1 and hi % TILE):
            candidates.append((i, lo, hi))
    chosen = sorted({k * len(candidates) // CUTS for k in range(CUTS)} if candidates else set())
    return ([(candidates[k][0], unaligned_between(candidates[k][1], candidates[k][2], rng))
             for k in chosen], len(candidates))


def unaligned_between(lo, hi, rng):
    """A random time t with lo < t <= hi that is not on a tile boundary, or None."""
    if hi - lo < 1:
        return None
    t = rng.randint(lo + 1, hi)
    if t % TILE:
        return t
    return t - 1 if t - 1 > lo else (t + 1 if t + 1 <= hi else None)


def cut_users(batch, all_users, rng):
    """The users read at a cut: those of the batch just posted, most recent first (their tiles
    were just written), and a random couple of the others."""
    recent = list(dict.fromkeys(p["user_id"] for p in reversed(batch)))[:CUT_USERS - 2]
    others = [u for u in rng.sample(all_users, min(len(all_users), CUT_USERS)) if u not in recent]
    return recent + others[:CUT_USERS - len(recent)]


def same_number(a, b):
    """Online and training-set cells: both null, equal integers, or floats within 1e-12
    relative."""
    import numpy as np

    a_null, b_null = a is None or bool(np.isnan(a)), b is None or bool(np.isnan(b))
    if a_null or b_null:
        return a_null and b_null
    if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
        return int(a) == int(b)
    return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)


# ---------------------------------------------------------------------------------------------


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=300_000,
                   help="about how many plays to generate (300000)")
    p.add_argument("--users", type=int, help="listeners (default: events / 150, at least 20)")
    p.add_argument("--seed", type=int, default=7, help="random seed (7)")
    p.add_argument("--spine-rows", type=int, default=60_000,
                   help="labelled rows sampled for the training set (60000)")
    p.add_argument("--sql", default=str(HERE / "views.sql"), help="feature views (views.sql)")
    p.add_argument("--view", default="user_skips", help="the view to train on (user_skips)")
    p.add_argument("--min-gain", type=float,
                   help=f"fail unless AUC with the NRT windows beats AUC without by this "
                        f"({DEFAULT_MIN_GAIN}; with the default, --events must be at least "
                        f"{MIN_EVENTS})")
    p.add_argument("--workdir", help="work directory (default: a new temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    p.add_argument("--tessera", help="the tessera binary (default: what the client finds)")
    args = p.parse_args()
    if args.users is None:
        args.users = max(20, args.events // 150)
    if args.events < 1000 or args.users < 1:
        p.error("expected --events >= 1000 and --users >= 1")
    if args.min_gain is None:
        if args.events < MIN_EVENTS:
            p.error(f"--events {args.events}: below {MIN_EVENTS} plays the test split is too "
                    f"small for the AUC gain check (--min-gain {DEFAULT_MIN_GAIN}) to be reliable "
                    f"(at 10000 plays it fell to +0.049 for one of 60 seeds); use --events "
                    f">= {MIN_EVENTS}, or set --min-gain yourself (e.g. --min-gain -1 to skip "
                    "the check)")
        args.min_gain = DEFAULT_MIN_GAIN
    return args


def main():
    args = parse_args()
    binary = tessera.find_binary(args.tessera)
    if args.workdir:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(work / "db", ignore_errors=True)  # ours, from an earlier run
        remove = False
    else:
        work = Path(tempfile.mkdtemp(prefix="tessera-experiment-"))
        remove = not args.keep
    try:
        # scikit-learn on one OpenMP thread: these sizes take about a second, while OpenMP
        # threads spinning on cores something else is busy with (a build) take ten times longer.
        # (threadpoolctl limits the libraries loaded so far: import sklearn's first.)
        from threadpoolctl import threadpool_limits

        importlib.import_module("sklearn.ensemble")  # loads its libgomp

        with threadpool_limits(limits=1, user_api="openmp"):
            return run(args, binary, work)
    finally:
        if remove:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}")


def run(args, binary, work):
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    view = args.view
    print(f"tessera: {binary}\nwork directory: {work}", flush=True)

    # 1. Generate the stream.
    t0 = time.monotonic()
    plays = generate(args.events, args.users, args.seed)
    events = work / "events.ndjson"
    write_ndjson(events, plays)
    skip_share = sum(p["skipped"] for p in plays) / len(plays)
    step(1, f"generated {len(plays):,} plays of {args.users:,} users, {utc(BASE)} .. "
            f"{utc(BASE + SPAN)}, {skip_share:.0%} skipped -> {events.name} "
            f"({events.stat().st_size / 1e6:.0f} MB)", t0)

    # 2. The feature views: the new SQL, checked by the binary.
    t0 = time.monotonic()
    sql = work / "views.sql"
    shutil.copyfile(args.sql, sql)
    explain = subprocess.run([binary, "explain", "--sql", str(sql)], capture_output=True,
                             text=True)
    check(explain.returncode == 0, f"tessera explain --sql {sql}: {explain.stderr.strip()}")
    step(2, f"wrote {sql.name} (copy of {args.sql}); `tessera explain` binds it", t0)

    # 3. The labelled spine.
    t0 = time.monotonic()
    spine = build_spine(pd, plays, args.spine_rows, args.seed)
    step(3, f"spine: {len(spine):,} rows (user, ts = end of a play + 1 ms, label = next play "
            f"skipped), {spine['label'].mean():.0%} positive", t0)

    # 4. Point-in-time features.
    t0 = time.monotonic()
    train_set = tessera.training_set(sql, events, spine, views=[view], windows=WINDOWS,
                                     binary=binary)
    columns = feature_columns(train_set, view)
    check(len(train_set) == len(spine), f"training set: {len(train_set)} rows for "
                                        f"{len(spine)} spine rows")
    check(train_set["user_id"].tolist() == spine["user_id"].tolist()
          and train_set["ts"].tolist() == spine["ts"].tolist(),
          "training set rows are not the spine's, in order")
    replayed = train_set.attrs["tessera"]
    check(replayed["rows"] == len(plays) and replayed["late"] == 0,
          f"training set: {replayed['rows']} of {len(plays)} events replayed, "
          f"{replayed['late']} late")
    step(4, f"training set: {len(train_set):,} rows x {len(columns)} feature columns "
            f"({columns[0]}, {columns[1]}, ...)", t0)

    # 5. Models on a time split.
    t0 = time.monotonic()
    split = int(np.quantile(train_set["ts"], 0.7))
    # Train rows whose label is known before the split (no label from the test period).
    train = train_set[train_set["label_ts"] < split]
    test = train_set[train_set["ts"] >= split]
    daily = [c for c in columns if c.endswith("__1d")]
    y_train, y_test = train["label"].astype(int), test["label"].astype(int)
    base_model = fit(train[daily], y_train, args.seed)
    nrt_model = fit(train[columns], y_train, args.seed)
    auc_base = roc_auc_score(y_test, base_model.predict_proba(test[daily])[:, 1])
    auc_nrt = roc_auc_score(y_test, nrt_model.predict_proba(test[columns])[:, 1])
    step(5, f"trained on {len(train):,} rows before {utc(split)}, tested on {len(test):,} "
            f"after", t0)
    print(f"      AUC without NRT features (1d window only):   {auc_base:.4f}")
    print(f"      AUC with NRT features (5m, 1h, 6h, 1d):      {auc_nrt:.4f}   "
          f"gain {auc_nrt - auc_base:+.4f}", flush=True)
    check(auc_nrt - auc_base >= args.min_gain,
          f"AUC gain {auc_nrt - auc_base:.4f} < --min-gain {args.min_gain}")

    # 6. Serve the same SQL live.
    t0 = time.monotonic()
    end = max(p["ts"] for p in plays)
    first_live = next(i for i, p in enumerate(plays) if p["ts"] >= end - LIVE)
    history, live = plays[:first_live], plays[first_live:]
    history_file = work / "history.ndjson"
    write_ndjson(history_file, history)
    db = work / "db"
    backfill = subprocess.run([binary, "backfill", "--sql", str(sql), "--input",
                               str(history_file), "--db", str(db)], capture_output=True,
                              text=True)
    check(backfill.returncode == 0, f"tessera backfill: {backfill.stderr.strip()}")
    summary = json.loads(backfill.stdout.strip().splitlines()[-1])
    check(summary["rows"] == len(history),
          f"backfill kept {summary['rows']} of {len(history)} rows")
    # Batches end where a cut reads the server (and every MAX_BATCH rows).
    rng = random.Random(args.seed + 2)
    cuts, clean = choose_cuts(plays, first_live, rng)
    cut_at = dict(cuts)
    ends = sorted(set(cut_at) | set(range(first_live + MAX_BATCH, len(plays), MAX_BATCH))
                  | {len(plays)})
    all_users = sorted({p["user_id"] for p in plays})
    reads = []  # DataFrames of the cuts' online reads: user_id, ts, features
    server = Server(binary, sql, db, work / "server.log")
    try:
        server.start()
        with tessera.Client(server.url) as client:
            accepted, start = 0, first_live
            for stop in ends:
                if stop > start:
                    answer = client.ingest("plays", plays[start:stop],
                                           batch_id=f"experiment-{start}")
                    accepted += answer["accepted"]
                    start = stop
                if stop in cut_at:  # every play before t is in, none at or after t
                    t = cut_at[stop]
                    users = cut_users(plays[max(first_live, stop - 50):stop], all_users, rng)
                    read = client.batch_get(view, users, windows=WINDOWS, at=t, as_frame=True)
                    read.insert(0, "user_id", read.pop("key"))
                    read.insert(1, "ts", t)
                    reads.append(read.drop(columns="at"))
            check(accepted == len(live), f"POST /v1/ingest/plays accepted {accepted} of "
                                         f"{len(live)} rows")
            at = (end // TILE + 1) * TILE  # after the last event, on a tile boundary
            users = sorted({p["user_id"] for p in plays if p["ts"] >= at - DAY})
            online = client.batch_get(view, users, windows=WINDOWS, at=at, as_frame=True)
    finally:
        status = server.stop()
    cut_reads = pd.concat(reads, ignore_index=True) if reads else None
    check(cut_reads is not None and len(cuts) >= min(CUTS, len(live)) // 2,
          f"only {len(cuts)} positions of the {len(live)} POSTed rows could be cut (a late "
          "play in flight at the others)")
    check(status == 0, f"`tessera run` exited with {status}; log:\n{server.log_tail()}")
    check(feature_columns(online, view) == columns, "online columns differ from the training set's")
    online["p_skip_next"] = nrt_model.predict_proba(online[columns])[:, 1]
    online["p_without_nrt"] = base_model.predict_proba(online[daily])[:, 1]
    step(6, f"served live: backfilled {len(history):,} rows up to {utc(end - LIVE)}, "
            f"`tessera run` on {server.url}, POSTed the last 2 h ({len(live):,} rows) in "
            f"{len(ends)} batches, read {len(cut_reads):,} (user, now) at {len(cuts)} cuts "
            f"between them (of {clean:,} positions where no late play is in flight), scored "
            f"{len(online):,} users at {utc(at)}", t0)
    show = online.sort_values("p_skip_next", ascending=False)
    show = pd.concat([show.head(4), show.tail(4)])
    table = pd.DataFrame({"user": show["key"]})
    for feature, window in [("plays", "5m"), ("skips", "5m"), ("skip_rate", "1h"),
                            ("skip_rate", "1d")]:  # those of them the views still have
        cells = show.get(f"{view}__{feature}__{window}")
        if cells is not None:
            cells = cells.round(2) if cells.dtype.kind == "f" else cells
            table[f"{feature} {window}"] = cells.astype("Int64") if feature == "skips" else cells
    table["p(skip next)"] = show["p_skip_next"].round(3)
    table["without NRT"] = show["p_without_nrt"].round(3)
    print("      " + table.to_string(index=False).replace("\n", "\n      "), flush=True)

    # 7. Training/serving skew: the training set's rows for the same (user, time) — at the
    # serving time, and at every cut (an unaligned "now" inside a tile, between two batches).
    t0 = time.monotonic()
    probe = pd.concat([pd.DataFrame({"user_id": online["key"], "ts": at}),
                       cut_reads[["user_id", "ts"]]], ignore_index=True)
    offline = tessera.training_set(sql, events, probe, views=[view], windows=WINDOWS,
                                   binary=binary)
    check(len(offline) == len(probe), "skew check: row count")
    final, at_cuts = offline.iloc[:len(online)], offline.iloc[len(online):]
    diff = [c for c in columns  # exactly equal (NaN where NaN; dtypes may differ)
            if not np.array_equal(online[c].to_numpy(float), final[c].to_numpy(float),
                                  equal_nan=True)]
    check(not diff, f"skew: online and training-set features at {utc(at)} differ in {diff}")
    offline_scores = nrt_model.predict_proba(final[columns])[:, 1]
    check(np.array_equal(offline_scores, online["p_skip_next"].to_numpy()),
          "skew: online scores differ from the training set's")
    bad = [(user, t, c, got, want)
           for c in columns
           for user, t, got, want in zip(cut_reads["user_id"], cut_reads["ts"],
                                         cut_reads[c].tolist(), at_cuts[c].tolist())
           if not same_number(got, want)]
    check(not bad, f"skew at the cuts: {len(bad)} cells differ, e.g. (user, t, feature, online, "
                   f"training set) {bad[:5]}")
    step(7, f"no training/serving skew: {len(online):,} users x {len(columns)} features and "
            f"their scores equal tessera.training_set at {utc(at)}; so do the "
            f"{len(cut_reads):,} reads at the {len(cuts)} unaligned cuts", t0)

    print(f"AUC without NRT features: {auc_base:.4f}   with: {auc_nrt:.4f}   "
          f"gain: {auc_nrt - auc_base:+.4f}")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanups
    try:
        sys.exit(main())
    except CheckFailed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except tessera.TesseraError as e:
        print(f"FAILED: tessera: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
