#!/usr/bin/env python3
"""End-to-end test of `connector = 'pubsub'` against the real Pub/Sub emulator.

The test starts `cloud-pubsub-emulator` itself on a free loopback port (skipped, exit 77, only
when the emulator is not installed), creates a topic and a subscription (ack deadline 10 s,
acked messages retained so the subscription can be seeked back) over the emulator's REST API,
and runs `tessera run` (two StreamingPull streams) with PUBSUB_EMULATOR_HOST pointing at it —
through HalfCloseProxy, which works around an emulator bug a killed engine would otherwise
trigger (see there). Each generated NDJSON line
(disorder, late rows, malformed lines, NULLs, type errors, both timestamp forms; event times
unique) is published as one message (base64 data).

Pub/Sub does not order messages, and a crash makes it redeliver the unacknowledged ones after
newer ones, so which rows are late must not depend on delivery order. The stream is cut in
three epochs, each published only once the previous one is committed (every row served and
no message outstanding):

  A  every row within 50 minutes of the newest (M): none can be late under any order; the
     server is SIGKILLed at random moments while A is published and consumed, and restarted
     (the messages the dead engine held come back after their ack deadline);
  B  the rows older than M - 50 min: late exactly when older than M - 1 h (the lateness), since
     M is committed before B is published and B never moves it; one more kill;
  C  a few hundred on-time rows for fresh users, consumed by a server whose flush interval
     (15 s) is longer than the ack deadline (10 s): the connector must extend the deadlines of
     the messages waiting for their flush, so nothing is redelivered (no duplicate dropped) and
     extensions were sent.

Then the subscription is seeked back to before the first publish: the emulator redelivers
every message, and the dedup window (checkpointed with the tiles) must drop each one
(tessera_pubsub_redeliveries_dropped_total = messages published). Features are compared with
a brute force over exactly the published lines, each once (exact columns exact, sketches within
their bounds), after A+B+C, after the seek, and after one more kill -9 and restart.

Usage: pubsub_e2e_test.py PATH/TO/tessera [--seed N] [--events N] [--kills N] [--keep]
"""
import argparse
import json
import os
import random
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as live  # noqa: E402  (workload, reference, server/client helpers)

SKIP = 77
PROJECT, TOPIC, SUBSCRIPTION = "tessera-e2e", "plays", "plays-sub"
ACK_DEADLINE_S = 10
HOUR, MINUTE = live.HOUR, 60 * 1000
DEVICES = ["web", "ios", "android"]

SQL = live.SQL.replace(
    "WITH (connector = 'file', format = 'json')",
    "WITH (connector = 'pubsub', project = '%s', subscription = '%s', 'ack-deadline' = '%ds', "
    "streams = '2')"
    % (PROJECT, SUBSCRIPTION, ACK_DEADLINE_S)).replace("INTERVAL '10' MINUTE",
                                                        "INTERVAL '1' HOUR") + """
-- Every row once per device (the generator always sets one): all-time counts to read back.
CREATE FEATURE VIEW device_rows AS SELECT device, COUNT(*) AS n FROM plays GROUP BY device;
"""
assert "connector = 'pubsub'" in SQL and "'1' HOUR" in SQL


class HalfCloseProxy:
    """A TCP proxy between `tessera run` and the emulator that half-closes the engine's open
    HTTP/2 streams when the engine dies.

    Why: the emulator (0.8.x) fails to clean up a StreamingPull call that ends without the
    client's half-close — a cancel or a dropped connection hits a NoSuchMethodError in its
    bundled grpc-java (ServerImpl...closedInternal) — and keeps delivering messages to the dead
    stream forever, so every kill -9 would leave a zombie subscriber that takes a share of all
    later deliveries (real Pub/Sub ends such streams). When the engine's side of a connection
    ends, the proxy sends, for every stream the engine opened and did not end, an empty DATA
    frame with END_STREAM (what a client's WritesDone sends), waits a moment, and closes. The
    emulator then stops the dead stream's deliveries; the messages the dead engine held are
    redelivered after their ack deadline, as Pub/Sub does after a crash."""

    PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.half_closed = 0  # streams the proxy ended for a dead engine
        threading.Thread(target=self._accept, daemon=True).start()

    def host(self):
        return "127.0.0.1:%d" % self.port

    def _accept(self):
        while True:
            try:
                down, _ = self.sock.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._downstream, args=(down, up), daemon=True).start()
            threading.Thread(target=self._upstream, args=(down, up), daemon=True).start()

    @staticmethod
    def _upstream(down, up):
        """Server to engine; after the engine died, keeps reading (and dropping) so the server
        can finish its streams."""
        alive = True
        while True:
            try:
                data = up.recv(65536)
            except OSError:
                break
            if not data:
                break
            if alive:
                try:
                    down.sendall(data)
                except OSError:
                    alive = False
        try:
            down.close()
        except OSError:
            pass

    def _downstream(self, down, up):
        """Engine to server, parsing the HTTP/2 frames to know which streams are open."""
        buf = b""
        preface_left = len(self.PREFACE)
        open_streams = set()
        while True:
            try:
                data = down.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            try:
                up.sendall(data)
            except OSError:
                down.close()
                return
            if preface_left:
                n = min(preface_left, len(data))
                data = data[n:]
                preface_left -= n
            buf += data
            while len(buf) >= 9:
                length = int.from_bytes(buf[0:3], "big")
                if len(buf) < 9 + length:
                    break
                ftype, flags = buf[3], buf[4]
                sid = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                if ftype == 0x1 and sid:  # HEADERS opens a stream
                    open_streams.add(sid)
                if (ftype in (0x0, 0x1) and flags & 0x1) or ftype == 0x3:  # END_STREAM, RST
                    open_streams.discard(sid)
                buf = buf[9 + length:]
        down.close()
        if not buf and open_streams:  # at a frame boundary: end the dead engine's streams
            try:
                for sid in sorted(open_streams):
                    up.sendall(b"\x00\x00\x00\x00\x01" + sid.to_bytes(4, "big"))
                    self.half_closed += 1
                time.sleep(1.0)
            except OSError:
                pass
        try:
            up.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        up.close()


def split_epochs(lines):
    """(A, B, M): A holds every line whose event time is within 50 minutes of the newest (M),
    and the lines without one; B the older rows, in stream order."""
    times = [live.line_ts(l) for l in lines]
    m = max(t for t in times if t is not None)
    a = [l for l, t in zip(lines, times) if t is None or t >= m - 50 * MINUTE]
    b = [l for l, t in zip(lines, times) if t is not None and t < m - 50 * MINUTE]
    return a, b, m


def epoch_c(rng, m, used):
    """On-time rows for fresh users c0..c9, between M - 40 and M - 30 minutes, unique times."""
    out = []
    for i in range(300):
        t = m - 40 * MINUTE + rng.randrange(10 * MINUTE)
        while t in used:
            t += 1
        used.add(t)
        out.append(json.dumps({"user_id": "c%d" % rng.randrange(10), "track_id": "t%d" % i,
                               "ms_played": rng.randint(0, 300000), "skipped": rng.random() < 0.3,
                               "country": rng.choice(["SE", "US"]), "device": rng.choice(DEVICES),
                               "score": round(rng.uniform(0, 10), 3), "ts": t}))
    return out


def device_counts(client, at):
    got = {}
    for d in DEVICES:
        st, body = client.get("/v1/features/device_rows/%s?windows=7d&at=%d" % (d, at))
        if st != 200:
            return None
        got[d] = json.loads(body)["windows"]["7d"]["n"]
    return got


def pubsub_metric(client, name):
    try:
        ms, _ = live.metrics(client)
    except (OSError, AssertionError):
        return None
    return live.metric(ms, name, source="plays",
                       subscription="projects/%s/subscriptions/%s" % (PROJECT, SUBSCRIPTION))


def wait_committed(server, expected, at, timeout, what):
    """Waits until every expected row is served and no message is outstanding (every message
    received was acknowledged, i.e. its rows are durable). Returns the seconds it took."""
    t0 = time.monotonic()
    client = live.Client(server.host, server.port)
    last = None
    while time.monotonic() - t0 < timeout:
        try:
            got = device_counts(client, at)
            out = pubsub_metric(client, "tessera_pubsub_outstanding_messages")
        except OSError:
            client.close()
            client = live.Client(server.host, server.port)
            got = out = None
        last = (got, out)
        if got == expected and out == 0:
            client.close()
            return time.monotonic() - t0
        time.sleep(0.1)
    client.close()
    raise SystemExit("FAIL: %s: not committed within %ds: served %r outstanding %r, expected %r;"
                     " log:\n%s" % (what, timeout, last[0], last[1], expected, server.log_tail()))


def expected_devices(rows):
    out = {d: 0 for d in DEVICES}
    for r in rows:
        out[r["device"]] += 1
    return out


def compare(server, ref, ats, users, failures, what):
    client = live.Client(server.host, server.port)
    checked, errs = live.compare_all(client, ref, ats, users=users)
    client.close()
    failures.extend("%s: %s" % (what, e) for e in errs)
    print("%s: %d window answers compared, %d mismatches" % (what, checked, len(errs)), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tessera")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--events", type=int, default=30000)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    emulator_bin = live.find_pubsub_emulator()
    if emulator_bin is None:
        print("SKIP: the Pub/Sub emulator is not installed (package "
              "google-cloud-cli-pubsub-emulator, which provides bin/cloud-pubsub-emulator)")
        sys.exit(SKIP)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    print("seed %d (rerun with --seed %d), %d events, %d kills" %
          (seed, seed, args.events, args.kills), flush=True)
    tessera = os.path.abspath(args.tessera)
    rng = random.Random(seed)
    t_start = time.monotonic()

    # 40 minutes of events (the generator's disorder reaches 10 minutes further back, its late
    # rows up to 3 hours), event times unique, blank lines left out (no message is empty).
    lines = [l for l in live.uniquify(live.generate(rng, args.events, 300, live.BASE,
                                                    40 * MINUTE))
             if l.strip()]
    a, b, m = split_epochs(lines)
    used = {live.line_ts(l) for l in lines} - {None}
    c = epoch_c(rng, m, used)
    rows_a, _ = live.decode(a, lateness=HOUR)
    rows_ab, _ = live.decode(a + b, lateness=HOUR)
    rows, counters = live.decode(a + b + c, lateness=HOUR)
    assert len(rows_a) == len(live.decode(list(reversed(a)), lateness=HOUR)[0]), "A order-free"
    print("stream: A %d, B %d, C %d lines; reference %s" % (len(a), len(b), len(c),
                                                           json.dumps(counters)), flush=True)
    ref = live.Reference(rows)
    users = live.USERS + ["c0", "c5"]
    ats = [m + 1, m - 10 * MINUTE, m - 35 * MINUTE, m - 55 * MINUTE, m - 2 * HOUR,
           m + 2 * HOUR, m + 8 * live.DAY] + [m - rng.randrange(3 * HOUR) for _ in range(8)]
    all_at = m + HOUR  # with window 7d: every row

    tmp = tempfile.mkdtemp(prefix="tessera-pubsub-e2e-")
    failures = live.Failures()
    try:
        emu = live.PubSubEmulator(emulator_bin, os.path.join(tmp, "emulator.log"),
                                  PROJECT).start()
        print("emulator on %s (%.1f s)" % (emu.host(), time.monotonic() - t_start), flush=True)
        emu.create(TOPIC, SUBSCRIPTION, ACK_DEADLINE_S, retain_acked=True)
        seek_to = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))

        sql = os.path.join(tmp, "views.sql")
        with open(sql, "w") as f:
            f.write(SQL)
        db = os.path.join(tmp, "db")
        log = os.path.join(tmp, "server.log")
        proxy = HalfCloseProxy(emu.port)
        env = dict(os.environ, PUBSUB_EMULATOR_HOST=proxy.host())
        fast = ["--flush-interval", "200ms"]

        def start(extra=fast):
            return live.Server(tessera, sql, db, log, extra, env=env).start()

        # ---- A: published in paced batches while the server is killed at random moments.
        server = start()
        published = []
        pub_error = []

        def publish_paced(batch_lines, per_batch=250, pause=0.04):
            try:
                for i in range(0, len(batch_lines), per_batch):
                    published.extend(emu.publish(TOPIC, batch_lines[i:i + per_batch]))
                    time.sleep(pause)
            except BaseException as e:  # noqa: BLE001
                pub_error.append(repr(e))

        t0 = time.monotonic()
        publisher = threading.Thread(target=publish_paced, args=(a,), daemon=True)
        publisher.start()
        kills = 0
        expected_span = len(a) / 250 * 0.045
        for when in sorted(rng.uniform(0.05, 1.0) * expected_span for _ in range(args.kills)):
            time.sleep(max(0.0, t0 + when - time.monotonic()))
            server.kill9()
            kills += 1
            server = start()
        publisher.join(120)
        if pub_error or publisher.is_alive():
            raise SystemExit("FAIL: publishing A: %r" % pub_error)
        took = wait_committed(server, expected_devices(rows_a), all_at, 90, "epoch A")
        print("A: %d messages published in %.1f s with %d kills; committed %.1f s later" %
              (len(published), time.monotonic() - t0 - took, kills, took), flush=True)

        # ---- B: the old rows, late exactly when older than M - 1 h; one more kill.
        published += emu.publish(TOPIC, b)
        time.sleep(rng.uniform(0, 0.3))
        server.kill9()
        server = start()
        took = wait_committed(server, expected_devices(rows_ab), all_at, 60, "epoch B")
        print("B: %d messages, 1 kill, committed in %.1f s" % (len(b), took), flush=True)

        # ---- C: flushes slower than the ack deadline: deadlines must be extended.
        rc, _ = server.terminate()
        failures.check(rc == 0, "SIGTERM exit code %r" % rc)
        server = start(["--flush-interval", "15s"])
        published += emu.publish(TOPIC, c)
        took = wait_committed(server, expected_devices(rows), all_at, 60, "epoch C")
        client = live.Client(server.host, server.port)
        ext = pubsub_metric(client, "tessera_pubsub_deadline_extensions_total")
        dropped = pubsub_metric(client, "tessera_pubsub_redeliveries_dropped_total")
        client.close()
        print("C: %d messages committed in %.1f s (flush interval 15 s > ack deadline %d s): "
              "%r deadline extensions, %r duplicates dropped" %
              (len(c), took, ACK_DEADLINE_S, ext, dropped), flush=True)
        failures.check(took >= ACK_DEADLINE_S, "C committed after %.1f s: expected one slow "
                       "flush" % took)
        failures.check(ext is not None and ext >= len(c), "C: %r deadline extensions, expected at "
                       "least one per message held past half its deadline" % ext)
        failures.check(dropped == 0, "C: %r duplicates dropped: a message held for its flush "
                       "was redelivered (deadline not extended)" % dropped)
        compare(server, ref, ats, users, failures, "after A+B+C")

        # ---- Seek back: every message is redelivered and must be dropped by the dedup window.
        rc, _ = server.terminate()
        failures.check(rc == 0, "SIGTERM exit code %r" % rc)
        server = start()
        client = live.Client(server.host, server.port)
        window = pubsub_metric(client, "tessera_pubsub_dedup_window_messages")
        failures.check(window == len(published), "dedup window after restart holds %r ids, "
                       "expected %d (one per message published)" % (window, len(published)))
        emu.rest("POST", "subscriptions/%s:seek" % SUBSCRIPTION, {"time": seek_to})
        t0 = time.monotonic()
        dropped = 0
        while time.monotonic() - t0 < 60:
            dropped = pubsub_metric(client, "tessera_pubsub_redeliveries_dropped_total")
            out = pubsub_metric(client, "tessera_pubsub_outstanding_messages")
            if dropped == len(published) and out == 0:
                break
            time.sleep(0.1)
        client.close()
        print("seek: %r of %d redelivered messages dropped as duplicates in %.1f s" %
              (dropped, len(published), time.monotonic() - t0), flush=True)
        failures.check(dropped == len(published), "after the seek %r duplicates dropped, "
                       "expected %d" % (dropped, len(published)))
        failures.check(device_counts(live.Client(server.host, server.port), all_at) ==
                       expected_devices(rows), "device counts changed after the seek")
        compare(server, ref, ats, users, failures, "after the seek")

        # ---- One more kill -9 with everything committed, and a restart: the same answers.
        server.kill9()
        server = start()
        compare(server, ref, ats, users, failures, "after kill -9 and restart")
        rc, _ = server.terminate()
        failures.check(rc == 0, "SIGTERM exit code %r" % rc)
        print("total %.1f s; the proxy half-closed %d streams of killed engines" %
              (time.monotonic() - t_start, proxy.half_closed))
    finally:
        if args.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    live.report(failures)


if __name__ == "__main__":
    main()
