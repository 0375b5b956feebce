#!/usr/bin/env python3
"""End-to-end test of `connector = 'kafka'` against librdkafka's mock cluster.

`tessera-kafka-mock` (3 brokers) holds the topics; kcat produces a generated stream keyed by
user_id (disorder within the declared lateness, malformed lines, empty messages, NULLs, type
errors, epoch-ms and RFC 3339 event times, a few users with many events). Two parts:

1. Crash and restart. One `tessera run` consumes a topic of 8 partitions while a kcat producer
   keeps writing to it; the test SIGKILLs the process at random moments (before it joined the
   group, while it consumes, between a hand-out and its flush) and restarts it on the same DB,
   --kills times (default 5; TESSERA_KAFKA_KILLS=20 for the issue's target). Then:
   - /metrics has tessera_kafka_partition_lag for all 8 partitions and it reaches 0, and every
     partition's committed offset (tessera_kafka_partition_offset) is the partition's end;
   - the all-time rows per device equal the reference (nothing lost, nothing counted twice);
   - every user and every (country, device) key, at many `at`, every window, over GET and
     batchGet, equals a brute force over the stream (exact columns exact, sketches within their
     bounds, as in the other e2e tests).
2. Processes in one consumer group (a second topic of 8 partitions, each process its own --db
   and port). a and b join before any data and split the partitions
   (tessera_kafka_partition_assigned): each user is answered by exactly one of them. a is
   SIGKILLed once its committed offsets stopped moving, b takes its partitions over, and more
   events are produced. Then c joins while b consumes a stream (a live rebalance with rows in
   flight). From each process's metrics the test knows the offsets it read of each partition
   ([committed offset - rows handed out, committed offset)); it checks that each process —
   the dead a through `tessera get` on its DB, the others over HTTP — answers exactly a brute
   force over those messages, every column of every key (so a key's rows may be split over
   processes, and the composite-key view's keys span partitions), and that together the
   processes read every message: none lost, none twice across the kill. Messages read twice
   across the live rebalance are reported, and fail the test only with --strict-handover
   (the connector commits the revoked partitions' offsets before releasing them; the mock
   cluster refuses commits while the group is joining, so a few may be read twice there).

The lateness makes the watermark the minimum over the partitions that are active (Source::
ActiveLanes), so which rows are late would depend on how the partitions interleave. The stream
therefore keeps only rows at most the lateness (1 hour) behind the newest row produced before
them: such a row is on time under any interleaving, and the reference is exact.

Usage: kafka_e2e_test.py PATH/TO/tessera [--mock PATH/TO/tessera-kafka-mock] [--seed N]
                         [--events N] [--kills N] [--strict-handover] [--keep]
       TESSERA_KAFKA_KILLS=20 ctest -R e2e_kafka   (the issue's 20 kills; default 5)
"""
import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as live  # noqa: E402  (generator, reference, server/client helpers)

PARTITIONS = 8
DEVICES = ["web", "ios", "android"]
ALL_AT = live.BASE + live.SPAN + live.DAY  # with window 7d: every row

SOURCE = """
CREATE SOURCE plays (
  user_id STRING, track_id STRING, ms_played BIGINT, skipped BOOLEAN,
  country STRING, device STRING, score DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR
) WITH (
  'connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{bootstrap}',
  'properties.group.id' = '{group}', 'scan.startup.mode' = 'earliest-offset', 'format' = 'json',
  'scan.watermark.idle-timeout' = '5s',
  -- A SIGKILLed member keeps its partitions until its session times out: keep that short.
  'properties.session.timeout.ms' = '3000', 'properties.heartbeat.interval.ms' = '300'{extra});
"""
VIEWS = live.SQL[live.SQL.index("CREATE FEATURE VIEW user_stats"):] + """
-- Every row once per device (the generator always sets one): all-time counts to read back.
CREATE FEATURE VIEW device_rows AS SELECT device, COUNT(*) AS n FROM plays GROUP BY device;
"""


def sql_for(topic, bootstrap, group, strategy=None):
    extra = ",\n  'properties.partition.assignment.strategy' = '%s'" % strategy if strategy else ""
    return SOURCE.format(topic=topic, bootstrap=bootstrap, group=group, extra=extra) + VIEWS


# ---------------------------------------------------------------------------------------------
# The stream

def reference(messages):
    rows, counters = live.decode(live.kafka_engine_lines(messages), lateness=live.LIVE_LATENESS)
    assert counters["late"] == 0, counters
    return live.Reference(rows), rows, counters


# ---------------------------------------------------------------------------------------------
# Processes: the mock cluster, kcat

def produce(bootstrap, topic, messages, log_path):
    p = live.KafkaProducer(bootstrap, topic, log_path)
    p.send(messages)
    p.close()


# ---------------------------------------------------------------------------------------------
# Metrics

def rows_handed(client):
    return sum(live.partition_gauges(client, "tessera_kafka_partition_rows_total").values())


def assigned(client):
    gauges = live.partition_gauges(client, "tessera_kafka_partition_assigned")
    return sorted(p for p, v in gauges.items() if v == 1)


def wait_caught_up(client, ends, partitions, timeout):
    """Waits until each of `partitions` has lag 0 and committed offset ends[p]. Returns
    (ok, lag gauges, offset gauges)."""
    deadline = time.monotonic() + timeout
    while True:
        lag = live.partition_gauges(client, "tessera_kafka_partition_lag")
        off = live.partition_gauges(client, "tessera_kafka_partition_offset")
        ok = all(lag.get(p) == 0 and off.get(p) == ends[p] for p in partitions)
        if ok or time.monotonic() > deadline:
            return ok, lag, off
        time.sleep(0.1)


def wait_offsets_still(client, quiet=1.5, timeout=30):
    """Waits until the committed offsets have not moved for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        off = live.partition_gauges(client, "tessera_kafka_partition_offset")
        if off != last:
            last, since = off, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return off
        time.sleep(0.1)
    return None


# ---------------------------------------------------------------------------------------------
# Comparisons

def device_rows(client, at=ALL_AT):
    st, text = client.post("/v1/features:batchGet", json.dumps(
        {"view": "device_rows", "keys": DEVICES, "windows": ["7d"], "at": at}))
    if st != 200:
        return {"status": st}
    return {r["key"]: r["windows"]["7d"]["n"] for r in json.loads(text)["results"]}


def expected_devices(ref):
    return {d: len(ref.by_device.get(d, [])) for d in DEVICES}


def batch_get(client, view, keys, at):
    st, text = client.post("/v1/features:batchGet", json.dumps(
        {"view": view, "keys": keys, "windows": list(live.WINDOWS), "at": at}))
    assert st == 200, (st, text)
    return {r["key"]: r["windows"] for r in json.loads(text)["results"]}


# ---------------------------------------------------------------------------------------------
# Part 1: kill -9 while consuming

def part_crash(args, tessera, mock, rng, tmp, failures):
    topic = "plays"
    messages = live.kafka_stream(rng, args.events, args.users, live.BASE)
    ref, rows, counters = reference(messages)
    print("part 1: %d messages (%s), %d kills" % (len(messages), json.dumps(counters), args.kills),
          flush=True)
    sql = os.path.join(tmp, "crash.sql")
    with open(sql, "w") as f:
        f.write(sql_for(topic, mock.bootstrap, "crash", args.assignment_strategy))
    db, log = os.path.join(tmp, "crash-db"), os.path.join(tmp, "crash.log")
    extra = ["--flush-interval", "200ms"]

    # A quarter before the first start, the rest while the process is killed and restarted.
    first = len(messages) // 4
    produce(mock.bootstrap, topic, messages[:first], os.path.join(tmp, "kcat.log"))
    producer = live.KafkaProducer(mock.bootstrap, topic, os.path.join(tmp, "kcat.log"))
    rest = messages[first:]
    seconds = max(5.0, args.kills * 5.5)  # about the time the kills take (rejoins dominate)
    slices = max(1, int(seconds / 0.05))
    produce_error = []

    def produce_rest():
        try:
            for i in range(slices):
                producer.send(rest[i * len(rest) // slices:(i + 1) * len(rest) // slices])
                time.sleep(0.05)
            producer.close()
        except Exception as e:  # noqa: BLE001
            produce_error.append(repr(e))

    t0 = time.monotonic()
    feeder = threading.Thread(target=produce_rest, daemon=True)
    feeder.start()
    server = None
    kills, handed = [], []  # rows handed out in each killed life (read just before the kill)
    try:
        for k in range(args.kills):
            server = live.Server(tessera, sql, db, log, extra).start()
            client = live.Client(server.host, server.port)
            started = time.monotonic()
            if rng.random() < 0.3:
                time.sleep(rng.uniform(0, 4))  # anywhere, also before it joined the group
                how = "at %.1fs" % (time.monotonic() - started)
            else:
                # Once it consumes: after the first rows were handed out, a little later.
                deadline = started + 20
                while time.monotonic() < deadline and rows_handed(client) == 0:
                    time.sleep(0.01)
                time.sleep(rng.uniform(0, 0.6))
                how = "%.1fs, %d rows in" % (time.monotonic() - started, rows_handed(client))
            handed.append(rows_handed(client))
            client.close()
            server.kill9()
            server = None
            kills.append(how)
        feeder.join(300)
        failures.extend(produce_error)
        print("  kill -9 at: %s (%.1f s)" % ("; ".join(kills), time.monotonic() - t0), flush=True)

        ends = [len(m) for m in live.kafka_read_back(mock.bootstrap, topic, PARTITIONS, messages)]
        server = live.Server(tessera, sql, db, log, extra).start()
        client = live.Client(server.host, server.port)
        t1 = time.monotonic()
        ok, lag, off = wait_caught_up(client, ends, range(PARTITIONS), 60)
        failures.check(sorted(lag) == list(range(PARTITIONS)),
                       "lag gauges for partitions %s, expected all %d" % (sorted(lag), PARTITIONS))
        failures.check(ok, "not caught up after 60 s: lag %r, committed offsets %r, partition "
                       "ends %r" % (lag, off, ends))
        print("  restarted: caught up in %.1f s; lag %s; committed offsets = ends %s" %
              (time.monotonic() - t1, [int(lag.get(p, -1)) for p in range(PARTITIONS)], ends),
              flush=True)
        failures.check(assigned(client) == list(range(PARTITIONS)),
                       "assigned partitions %s" % assigned(client))
        # Rows handed out but not committed when a kill landed are handed out again after it.
        print("  rows handed out in all lives: %d for %d messages: about %d handed again after "
              "a kill (read again and counted once)" % (
                  sum(handed) + rows_handed(client), len(messages),
                  sum(handed) + rows_handed(client) - len(messages)), flush=True)

        got, exp = device_rows(client), expected_devices(ref)
        failures.check(got == exp, "rows per device %r, expected %r (double counting if above, "
                       "loss if below)" % (got, exp))
        users = sorted(ref.by_user) + ["nobody"]
        cd_keys = sorted(ref.by_cd) + ["nowhere|web"]
        ats = live.pick_ats(rng, n_random=args.ats)
        n, errs = live.compare_all(client, ref, ats, users=users, cd_keys=cd_keys)
        failures.extend(errs)
        print("  %d rows per device as expected: %s; %d (key, at, window) answers compared "
              "(%d users, %d country|device keys), %d mismatches" %
              (sum(exp.values()), got == exp, n, len(users), len(cd_keys), len(errs)), flush=True)
        client.close()
        rc, secs = server.terminate()
        failures.check(rc == 0, "SIGTERM: exit %r after %.2f s" % (rc, secs))
        server = None
    finally:
        if server is not None:
            server.kill()
        if producer.proc.poll() is None:
            producer.proc.kill()
        if failures:
            print("part 1 log tail:\n" + live.log_tail(log))


# ---------------------------------------------------------------------------------------------
# Part 2: two processes in one group, one dies

def answers_http(client):
    def get(view, keys, at):
        return batch_get(client, view, keys, at)
    return get


def answers_db(tessera, db):
    def get(view, keys, at):
        return {r["key"]: r["windows"] for r in
                live.tessera_get(tessera, db, view, keys, at, ",".join(live.WINDOWS))}
    return get


def check_process(get, messages, users, cd_keys, ats, label):
    """Every user and country|device key, every window, at every `at`: the process's answers
    (get(view, keys, at)) equal a brute force over `messages`, its share of the topic. Returns
    (users with rows, mismatches)."""
    ref, _, _ = reference(messages)
    errs = []
    for at in ats:
        answers = get("user_stats", users, at)
        for u in users:
            for wname, wms in live.WINDOWS.items():
                errs += live.check_user_stats(
                    answers[u][wname], live.expect_user_stats(ref.window("user", u, at, wms), at),
                    "%s user_stats key=%s at=%d w=%s" % (label, u, at, wname))
        answers = get("country_device", cd_keys, at)
        for key in cd_keys:
            for wname, wms in live.WINDOWS.items():
                errs += live.check_cd(answers[key][wname], ref.window("cd", key, at, wms),
                                      "%s country_device key=%s at=%d w=%s" %
                                      (label, key, at, wname))
    return set(ref.by_user), errs


def consumed_ranges(client):
    """{partition: (first, end)}: the offsets a process handed to its pipeline, from its metrics
    — it held each partition once, so they are the rows_total messages before its committed
    offset (read once it is quiet: everything handed out is committed)."""
    off = live.partition_gauges(client, "tessera_kafka_partition_offset")
    rows = live.partition_gauges(client, "tessera_kafka_partition_rows_total")
    return {p: (int(off[p] - rows[p]), int(off[p])) for p in off if rows.get(p, 0) > 0}


def share(messages, parts, ranges):
    """The messages in `ranges` ({partition: (first, end)}), in production order (`parts`: the
    topic as read back, which fixes each message's partition and offset)."""
    where = {key: p for p, msgs in enumerate(parts) for key, _ in msgs}
    seen = [0] * PARTITIONS
    out = []
    for key, value in messages:
        if key not in where:
            continue
        p = where[key]
        first, end = ranges.get(p, (0, 0))
        if first <= seen[p] < end:
            out.append((key, value))
        seen[p] += 1
    return out


def tiling(ranges, ends):
    """How the processes' ranges ({name: {partition: (first, end)}}) cover each partition:
    (messages read by two processes, messages read by none, per-partition text)."""
    dup = lost = 0
    text = []
    for p in range(PARTITIONS):
        segs = sorted((r[p][0], r[p][1], name) for name, r in ranges.items() if p in r)
        pos = 0
        for first, end, _ in segs:
            lost += max(0, first - pos)
            dup += max(0, min(pos, end) - first)
            pos = max(pos, end)
        lost += max(0, ends[p] - pos)
        text.append("%d:%s" % (p, "+".join("%s[%d,%d)" % (n, f, e) for f, e, n in segs)))
    return dup, lost, " ".join(text)


class Group:
    """The `tessera run` processes of part 2 (each its own DB, log and port)."""

    def __init__(self, tessera, sql, tmp):
        self.tessera, self.sql, self.tmp = tessera, sql, tmp
        self.servers, self.clients = {}, {}

    def db(self, name):
        return os.path.join(self.tmp, "group-db-" + name)

    def log(self, name):
        return os.path.join(self.tmp, "group-%s.log" % name)

    def start(self, name):
        self.servers[name] = live.Server(self.tessera, self.sql, self.db(name), self.log(name),
                                         ["--flush-interval", "200ms"]).start()
        self.clients[name] = live.Client(self.servers[name].host, self.servers[name].port)

    def kill9(self, name):
        self.clients.pop(name).close()
        self.servers[name].kill9()

    def held(self):
        return {name: assigned(c) for name, c in self.clients.items()}

    def wait_split(self, timeout=40):
        """Waits until the live processes each hold some partitions and together all of them."""
        deadline = time.monotonic() + timeout
        while True:
            held = self.held()
            ok = all(held.values()) and sorted(sum(held.values(), [])) == list(range(PARTITIONS))
            if ok or time.monotonic() > deadline:
                return ok, held
            time.sleep(0.1)

    def wait_caught_up(self, ends, failures):
        held = self.held()
        for name, c in self.clients.items():
            ok, lag, off = wait_caught_up(c, ends, held[name], 60)
            failures.check(ok, "%s not caught up on %s: lag %r offsets %r ends %r" %
                           (name, held[name], lag, off, ends))
        failures.check(self.held() == held, "the assignment changed while consuming: %r, then %r"
                       % (held, self.held()))
        return held

    def stop(self):
        for c in self.clients.values():
            c.close()
        for s in self.servers.values():
            s.kill()


def part_group(args, tessera, mock, rng, tmp, failures):
    """a and b split the partitions; a is killed once quiet and b takes its partitions over;
    then c joins while b consumes (a live rebalance). Each process must hold exactly the rows of
    the offsets it consumed (by its metrics), and together they must cover every message: no
    loss; no message twice across the kill; messages read twice across the live rebalance are
    counted and reported (see the README: librdkafka 2.0.2 and the mock cluster cannot commit
    during a rebalance) and fail only with --strict-handover."""
    topic = "plays2"
    base2 = live.BASE + 3 * live.DAY
    all_at = base2 + live.SPAN + live.DAY
    ats = [base2 + live.SPAN // 2, base2 + live.SPAN + live.HOUR,
           base2 + rng.randint(0, live.SPAN), all_at]
    messages = live.kafka_stream(rng, args.group_events, args.users, base2)
    n = len(messages)
    phase1, phase2, phase3 = (messages[:n * 7 // 20], messages[n * 7 // 20:n * 13 // 20],
                              messages[n * 13 // 20:])
    sql = os.path.join(tmp, "group.sql")
    with open(sql, "w") as f:
        f.write(sql_for(topic, mock.bootstrap, "group", args.assignment_strategy))
    kcat_log = os.path.join(tmp, "kcat.log")
    users = sorted({m[0] for m in messages if m[0] != "-"}) + ["nobody"]
    ref_all, _, _ = reference(messages)
    cd_keys = sorted(ref_all.by_cd) + ["nowhere|web"]
    group = Group(tessera, sql, tmp)
    every = list(range(PARTITIONS))
    t0 = time.monotonic()
    try:
        # 1. a and b join before any data, split the partitions, read phase 1.
        group.start("a")
        group.start("b")
        ok, held = group.wait_split()
        if not failures.check(ok and len(held) == 2, "a and b hold %r, expected a split of all "
                              "%d partitions" % (held, PARTITIONS)):
            return
        produce(mock.bootstrap, topic, phase1, kcat_log)
        parts = live.kafka_read_back(mock.bootstrap, topic, PARTITIONS, phase1)
        held = group.wait_caught_up([len(m) for m in parts], failures)
        ranges = {name: consumed_ranges(c) for name, c in group.clients.items()}
        errs, answered = [], {}
        for name, c in group.clients.items():
            answered[name], e = check_process(answers_http(c), share(phase1, parts, ranges[name]),
                                              users, cd_keys, ats, "split: " + name)
            errs += e
        failures.extend(errs)
        failures.check(not answered["a"] & answered["b"], "users answered by both: %s" %
                       sorted(answered["a"] & answered["b"])[:10])
        print("part 2: %d + %d + %d messages on %d partitions; a=%s b=%s; users answered by a "
              "%d, by b %d, by both %d; each exactly its partitions' rows: %d mismatches (%.1f s)"
              % (len(phase1), len(phase2), len(phase3), PARTITIONS, held["a"], held["b"],
                 len(answered["a"]), len(answered["b"]), len(answered["a"] & answered["b"]),
                 len(errs), time.monotonic() - t0), flush=True)

        # 2. SIGKILL a once its committed offsets stopped moving: b takes its partitions over.
        failures.check(wait_offsets_still(group.clients["a"]) is not None,
                       "a's committed offsets kept moving")
        ranges["a"] = consumed_ranges(group.clients["a"])
        group.kill9("a")
        t1 = time.monotonic()
        deadline = t1 + 40
        while time.monotonic() < deadline and group.held()["b"] != every:
            time.sleep(0.1)
        failures.check(group.held()["b"] == every, "b holds %s after a died" % group.held()["b"])
        took_over = time.monotonic() - t1
        produce(mock.bootstrap, topic, phase2, kcat_log)
        parts = live.kafka_read_back(mock.bootstrap, topic, PARTITIONS, phase1 + phase2)
        ends = [len(m) for m in parts]
        group.wait_caught_up(ends, failures)
        ranges["b"] = consumed_ranges(group.clients["b"])
        dup, lost, text = tiling(ranges, ends)
        failures.check(dup == 0 and lost == 0, "after the kill: %d messages read twice, %d never "
                       "(%s)" % (dup, lost, text))
        errs = []
        for name, get in (("a", answers_db(tessera, group.db("a"))),
                          ("b", answers_http(group.clients["b"]))):
            _, e = check_process(get, share(phase1 + phase2, parts, ranges[name]), users,
                                 cd_keys, ats, "after the kill: " + name)
            errs += e
        failures.extend(errs)
        print("  a killed once quiet; b holds all partitions %.1f s later; offsets read: %s; "
              "twice %d, never %d; a's DB (tessera get) and b exact: %d mismatches" %
              (took_over, text, dup, lost, len(errs)), flush=True)

        # 3. c joins while phase 3 streams in: b gives partitions up with rows in flight.
        producer = live.KafkaProducer(mock.bootstrap, topic, kcat_log)
        group.start("c")
        slices = 80
        for i in range(slices):
            producer.send(phase3[i * len(phase3) // slices:(i + 1) * len(phase3) // slices])
            time.sleep(0.06)
        producer.close()
        ok, held = group.wait_split()
        failures.check(ok, "b and c hold %r, expected a split of all %d partitions" %
                       (held, PARTITIONS))
        parts = live.kafka_read_back(mock.bootstrap, topic, PARTITIONS, messages)
        ends = [len(m) for m in parts]
        group.wait_caught_up(ends, failures)
        for name in ("b", "c"):
            ranges[name] = consumed_ranges(group.clients[name])
        dup, lost, text = tiling(ranges, ends)
        failures.check(lost == 0, "after c joined: %d messages never read (%s)" % (lost, text))
        if args.strict_handover:
            failures.check(dup == 0, "after c joined: %d messages read twice (%s)" % (dup, text))
        errs = []
        totals = dict.fromkeys(DEVICES, 0)
        for name, get in (("a", answers_db(tessera, group.db("a"))),
                          ("b", answers_http(group.clients["b"])),
                          ("c", answers_http(group.clients["c"]))):
            msgs = share(messages, parts, ranges[name])
            _, e = check_process(get, msgs, users, cd_keys, ats, "after c joined: " + name)
            errs += e
            got = {d: v["7d"]["n"] for d, v in get("device_rows", DEVICES, all_at).items()}
            for d in DEVICES:
                totals[d] += got[d]
        failures.extend(errs)
        exp = expected_devices(ref_all)
        failures.check(dup > 0 or totals == exp, "rows per device a+b+c %r, expected %r" %
                       (totals, exp))
        print("  c joined while b consumed: b=%s c=%s; offsets read: %s; twice %d%s, never %d; "
              "a, b, c exact over their offsets: %d mismatches; rows per device a+b+c %s "
              "(expected %s) (%.1f s)" %
              (held["b"], held["c"], text, dup,
               "" if dup == 0 else " (KNOWN: the revoked partitions' group commit failed)",
               lost, len(errs), totals, exp, time.monotonic() - t0), flush=True)
        for name in ("b", "c"):
            group.clients.pop(name).close()
            rc, secs = group.servers[name].terminate()
            failures.check(rc == 0, "%s: SIGTERM exit %r after %.2f s" % (name, rc, secs))
    finally:
        group.stop()
        if failures:
            for name in ("a", "b", "c"):
                print("part 2 %s log tail:\n%s" % (name, live.log_tail(group.log(name))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tessera")
    ap.add_argument("--mock", default=None,
                    help="tessera-kafka-mock (default: beside tessera)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--group-events", type=int, default=6000)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--kills", type=int, default=int(os.environ.get("TESSERA_KAFKA_KILLS", "5")))
    ap.add_argument("--ats", type=int, default=4, help="random `at` per comparison")
    ap.add_argument("--assignment-strategy", default=None,
                    help="'properties.partition.assignment.strategy' (default: the connector's)")
    ap.add_argument("--strict-handover", action="store_true",
                    help="fail when a live rebalance makes two processes read a message")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    print("seed %d (rerun with --seed %d), %d events, %d kills" %
          (seed, seed, args.events, args.kills), flush=True)
    tessera = os.path.abspath(args.tessera)
    mock_path = args.mock or os.path.join(os.path.dirname(tessera), "tessera-kafka-mock")
    if shutil.which("kcat") is None:
        raise SystemExit("FAIL: kcat is not installed (Debian package kcat)")
    rng = random.Random(seed)
    t_start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="tessera-kafka-")
    failures = live.Failures()
    mock = None
    try:
        mock = live.KafkaMock(mock_path, {"plays": PARTITIONS, "plays2": PARTITIONS},
                              os.path.join(tmp, "mock.log"))
        part_crash(args, tessera, mock, rng, tmp, failures)
        part_group(args, tessera, mock, rng, tmp, failures)
    finally:
        if mock is not None:
            mock.stop()
        if args.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("total %.1f s" % (time.monotonic() - t_start))
    if failures:
        print("seed %d" % seed)
    live.report(failures)


if __name__ == "__main__":
    main()
