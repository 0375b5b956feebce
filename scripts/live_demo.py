#!/usr/bin/env python3
"""`make run`: the features engine live, with its console.

Starts `tessera run` on examples/listening.sql (its source switched to connector 'http') with a
new DB under out/live, on a free loopback port; posts the last hour of a generated listening
stream (Zipf-like users, a few malformed lines), then keeps posting events stamped with the
current time at a steady rate, so the console's charts move. Prints the console's URL and a
`curl` line, and runs until Ctrl-C (or SIGTERM), which stops everything it started.

Usage: live_demo.py BUILD_DIR [--rate EVENTS_PER_S] [--seconds N]   (N: stop after N s; 0: never)
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(REPO, "out", "live")

USERS = 20_000
TRACKS = 5_000
COUNTRIES = ["SE", "US", "JP", "DE", "BR", "IN", "GB", "FR"]
DEVICES = ["ios", "android", "web", "desktop"]


def event(rng, ts_ms):
    # Zipf-like: a few users and tracks are much busier than the rest.
    user = min(int(rng.paretovariate(1.1)) - 1, USERS - 1)
    track = min(int(rng.paretovariate(1.05)) - 1, TRACKS - 1)
    return json.dumps({
        "user_id": "user%07d" % user, "track_id": "track%05d" % track,
        "ms_played": int(rng.uniform(1_000, 300_000)), "skipped": rng.random() < 0.25,
        "country": rng.choice(COUNTRIES), "device": rng.choice(DEVICES), "ts": ts_ms},
        separators=(",", ":"))


def post(url, lines):
    req = urllib.request.Request(url + "/v1/ingest/plays", data="\n".join(lines).encode(),
                                 method="POST", headers={"Content-Type": "application/x-ndjson"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    ap.add_argument("--rate", type=int, default=2000, help="live events per second")
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0: never)")
    args = ap.parse_args()
    tessera = os.path.join(args.build, "apps", "tessera")

    os.makedirs(OUT, exist_ok=True)
    db = os.path.join(OUT, "db")
    subprocess.run(["rm", "-rf", db], check=True)
    sql = os.path.join(OUT, "listening.sql")
    with open(os.path.join(REPO, "examples", "listening.sql")) as f:
        text = f.read()
    with open(sql, "w") as f:
        f.write(text.replace("connector = 'file'", "connector = 'http'"))
    log = open(os.path.join(OUT, "tessera.log"), "w")
    # Its own session: a terminal's Ctrl-C reaches this script only, which stops the stream and
    # then the server (SIGTERM: it flushes and exits).
    server = subprocess.Popen([tessera, "run", "--sql", sql, "--db", db, "--http", "127.0.0.1:0"],
                              stdout=subprocess.PIPE, stderr=log, text=True,
                              start_new_session=True)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        line = server.stdout.readline()
        if not line:
            print("tessera run did not start; see %s" % log.name, file=sys.stderr)
            return 1
        url = json.loads(line)["listening"]
        rng = random.Random(7)
        now = int(time.time() * 1000)
        print("== posting the last hour of listening events (100k, 0.1 % malformed)", flush=True)
        for start in range(0, 100_000, 5_000):
            if stop.is_set():
                return 0
            lines = [event(rng, now - 3_600_000 + (start + i) * 36) for i in range(5_000)]
            lines += ["{malformed line %d" % start] * 5
            try:
                post(url, lines)
            except OSError as e:
                print("posting the history failed: %s; see %s" % (e, log.name), file=sys.stderr)
                return 1
        print("""
== Tessera is live
   console:  %s/
   a read:   curl '%s/v1/features/user_listening/user0000001?windows=5m,1h,6h,1d'
   metrics:  %s/metrics
   posting ~%d events/s stamped now; Ctrl-C stops everything""" % (url, url, url, args.rate),
              flush=True)
        deadline = time.monotonic() + args.seconds if args.seconds > 0 else None
        tick = 0.25
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            t0 = time.monotonic()
            ts = int(time.time() * 1000)
            lines = [event(rng, ts - rng.randint(0, 2_000)) for _ in range(int(args.rate * tick))]
            if rng.random() < 0.05:
                lines.append('{"user_id":"user0000001","ts":"not a time"}')
            try:
                post(url, lines)
            except OSError as e:
                if server.poll() is not None:
                    print("tessera run exited (%s); see %s" % (server.returncode, log.name))
                    return 1
                print("post failed: %s" % e, file=sys.stderr)
            stop.wait(max(0.0, tick - (time.monotonic() - t0)))
        return 0
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        print("== stopped (DB in %s)" % db)


if __name__ == "__main__":
    sys.exit(main())
