#!/usr/bin/env python3
"""Pub/Sub ingest benchmark: rows/s from the Pub/Sub emulator into durable tiles.

The events of scripts/bench_backfill.sh (tessera-gen: ~135-byte events, Zipf users) are
published as a backlog, one message per event, to a topic of the emulator (started here on a
free loopback port); then `tessera run` consumes the subscription into the same reference view
as `make bench` (COUNT, SUM, MAX, APPROX_COUNT_DISTINCT, APPROX_PERCENTILE, LAST_VALUE). The
clock runs from the start of `tessera run` until every message is acknowledged — which the
connector does only once the rows are durable in the tile store — and the pipeline has read
them all. Prints rows/s end to end, the consumption rate once streaming, the engine's own CPU
time per message (the emulator is far slower than the engine), and the publish rate.

Usage: scripts/bench_pubsub.py [BUILD_DIR]
Environment: EVENTS, USERS, SPAN, OUT as for bench_backfill.sh (default 100000 events: the
emulator slows down as its backlog grows); STREAMS, the source's 'streams' (default 8: the
emulator hands each StreamingPull stream at most 100 messages per 50 ms, 2,000/s);
MAX_OUTSTANDING, its 'max-outstanding-messages' (default 5000).
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import harness  # noqa: E402  (emulator, server and metrics helpers)

PROJECT, TOPIC, SUB = "tessera-bench", "plays", "plays-bench"
SQL = """
CREATE SOURCE plays (
  user_id STRING, track_id STRING, ms_played BIGINT, skipped BOOLEAN, country STRING,
  device STRING, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '1' DAY
) WITH (connector = 'pubsub', project = '%s', subscription = '%s',
        endpoint = 'http://%s', 'ack-deadline' = '60s', streams = '%d',
        'max-outstanding-messages' = '%d');
CREATE FEATURE VIEW user_listening AS
SELECT user_id, COUNT(*) AS plays, SUM(ms_played) AS total_ms, MAX(ms_played) AS longest_ms,
       APPROX_COUNT_DISTINCT(track_id) AS uniq_tracks,
       APPROX_PERCENTILE(ms_played, 0.9) AS p90_ms, LAST_VALUE(track_id) AS last_track
FROM plays GROUP BY user_id;
"""


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "release")
    events = int(os.environ.get("EVENTS", "100000"))
    users = int(os.environ.get("USERS", "200000"))
    span = os.environ.get("SPAN", "6h")
    # The emulator hands each StreamingPull stream at most 100 messages per 50 ms poll.
    streams = int(os.environ.get("STREAMS", "8"))
    # The emulator ignores flow control and scans every unacknowledged message on each pull, so
    # it slows down as they pile up: keep few waiting (the source flushes early at half of it).
    max_outstanding = int(os.environ.get("MAX_OUTSTANDING", "5000"))
    out = os.environ.get("OUT", os.path.join(ROOT, "out", "bench"))
    os.makedirs(out, exist_ok=True)
    binary = harness.find_pubsub_emulator()
    if binary is None:
        sys.exit("bench_pubsub: the Pub/Sub emulator is not installed "
                 "(google-cloud-cli-pubsub-emulator)")
    ev = os.path.join(out, "events-%d-%d-%s.ndjson" % (events, users, span))
    if not os.path.exists(ev):
        subprocess.run([os.path.join(build, "bench", "tessera-gen"), "--events", str(events),
                        "--users", str(users), "--span", span, "--start",
                        "2026-11-01T00:00:00Z", "--out", ev], check=True)
    with open(ev) as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    print("input: %d events, %d users, span %s, %d B/event" %
          (len(lines), users, span, os.path.getsize(ev) // max(1, len(lines))), flush=True)

    tmp = tempfile.mkdtemp(prefix="tessera-bench-pubsub-")
    emu = harness.PubSubEmulator(binary, os.path.join(tmp, "emulator.log"), PROJECT).start()
    emu.create(TOPIC, SUB, 60)
    t0 = time.monotonic()
    threads, parts = [], 4
    for k in range(parts):
        part = lines[k::parts]
        threads.append(threading.Thread(target=emu.publish, args=(TOPIC, part)))
        threads[-1].start()
    for t in threads:
        t.join()
    publish_s = time.monotonic() - t0
    print("published %d messages in %.1f s (%.0f msgs/s, REST, 4 threads)" %
          (len(lines), publish_s, len(lines) / publish_s), flush=True)

    sql = os.path.join(tmp, "bench.sql")
    with open(sql, "w") as f:
        f.write(SQL % (PROJECT, SUB, emu.host(), streams, max_outstanding))
    server = harness.Server(os.path.join(build, "apps", "tessera"), sql,
                            os.path.join(tmp, "db"), os.path.join(tmp, "server.log"))
    t0 = time.monotonic()
    server.start()
    client = harness.Client(server.host, server.port)
    labels = {"source": "plays", "subscription": "projects/%s/subscriptions/%s" % (PROJECT, SUB)}
    first = None
    samples = []
    while True:
        ms, _ = harness.metrics(client)
        read = harness.metric(ms, "tessera_source_lines_total", source="plays") or 0
        acks = harness.metric(ms, "tessera_pubsub_acks_total", **labels) or 0
        outstanding = harness.metric(ms, "tessera_pubsub_outstanding_messages", **labels)
        now = time.monotonic()
        if first is None and read > 0:
            first = now
        samples.append((now, acks))
        if read >= len(lines) and acks >= len(lines) and outstanding == 0:
            break
        if now - t0 > 1800:
            sys.exit("bench_pubsub: not done after 30 minutes: read %d acks %d" % (read, acks))
        time.sleep(0.05)
    done = time.monotonic()
    late = harness.metric(ms, "tessera_source_late_total", source="plays") or 0
    dropped = harness.metric(ms, "tessera_pubsub_redeliveries_dropped_total", **labels) or 0
    client.close()
    with open("/proc/%d/stat" % server.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    rc, _ = server.terminate()
    emu.stop()
    wall = done - t0
    # The steady rate: acknowledged messages over the middle 80% of the run.
    lo = next(t for t, a in samples if a >= 0.1 * len(lines))
    hi = next(t for t, a in samples if a >= 0.9 * len(lines))
    steady = 0.8 * len(lines) / max(1e-9, hi - lo)
    summary = {"events": len(lines), "streams": streams, "max_outstanding": max_outstanding,
               "seconds": round(wall, 2),
               "rows_per_second": round(len(lines) / wall),
               "steady_rows_per_second": round(steady),
               "first_message_after_s": round(first - t0, 2) if first else None,
               "engine_cpu_seconds": round(cpu_s, 2),
               "engine_rows_per_cpu_second": round(len(lines) / max(cpu_s, 1e-9)),
               "late": late, "duplicates_dropped": dropped,
               "publish_msgs_per_second": round(len(lines) / publish_s), "exit": rc}
    print("pubsub: %.0f rows/s from the emulator into durable tiles (%d events in %.2f s, "
          "process start to last ack; %.0f rows/s between 10%% and 90%% acknowledged)" %
          (len(lines) / wall, len(lines), wall, steady))
    print("engine CPU: %.2f s for %d messages (%.1f us/message, %.0f rows per CPU second: "
          "the emulator, not the engine, sets the pace)" %
          (cpu_s, len(lines), cpu_s * 1e6 / len(lines), len(lines) / max(cpu_s, 1e-9)))
    print(json.dumps(summary))
    subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
