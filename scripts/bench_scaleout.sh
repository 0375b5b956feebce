#!/usr/bin/env bash
# Scale-out ingest benchmark: rows/s from Kafka into Bigtable tiles (the emulator) with one
# `tessera run` worker, then with two in one consumer group (docs/scale_out.md).
#
# The stream is the one of `make bench-kafka` (scripts/bench_kafka.sh): the `make bench` events
# (tessera-gen: ~135-byte events, 200k Zipf users, 6h), the first $KAFKA_EVENTS keyed by user_id,
# pre-filled in zstd batches into a topic of $PARTITIONS partitions on librdkafka's mock cluster
# (tessera-kafka-mock, 3 brokers, in memory). For each worker count, a fresh Bigtable emulator
# (cbtemulator on a free port; `tessera store init`) and a new consumer group; the workers
# (`tessera run --store bigtable://bench/bench/tiles`) consume the topic from the start into the
# `make bench-kafka` view. The clock runs from the first row handed to a pipeline until every
# partition's committed offset (tessera_kafka_partition_offset of its owner, written with the
# slot's commit in Bigtable) reached the partition's end; with two workers also from the moment
# the group split the partitions (the second worker joins while the first already consumes).
#
# The emulator is not Bigtable: it is one in-memory Go process on this same machine, sharing its
# cores with the workers and the mock cluster, so the figures are a ceiling of this box, not of
# Bigtable (whose throughput scales with its nodes).
#
# Environment: KAFKA_EVENTS (default 1000000), PARTITIONS (8), FLUSH_INTERVAL (1s), WORKERS
# ("1 2"), EVENTS/USERS/SPAN/GEN_OUT as in bench_kafka.sh (the events are generated once and
# shared with `make bench`), OUT (out/bench-scaleout).
set -euo pipefail
BUILD=${1:-build/release}
EVENTS=${EVENTS:-2000000}
USERS=${USERS:-200000}
SPAN=${SPAN:-6h}
PARTITIONS=${PARTITIONS:-8}
KAFKA_EVENTS=${KAFKA_EVENTS:-1000000}
FLUSH_INTERVAL=${FLUSH_INTERVAL:-1s}
WORKERS=${WORKERS:-1 2}
GEN_OUT=${GEN_OUT:-out/bench}
OUT=${OUT:-out/bench-scaleout}
mkdir -p "$OUT" "$GEN_OUT"
command -v kcat >/dev/null || { echo "kcat is not installed (Debian package kcat)" >&2; exit 1; }
EMULATOR=$(python3 -c 'import sys; sys.dont_write_bytecode = True; sys.path.insert(0, "tests/e2e")
import harness; print(harness.find_bigtable_emulator() or "")')
if [ -z "$EMULATOR" ]; then
  echo "cbtemulator not found (Debian package google-cloud-cli-bigtable-emulator)" >&2
  exit 1
fi

EV="$GEN_OUT/events-$EVENTS-$USERS-$SPAN.ndjson"
if [ ! -f "$EV" ]; then
  "$BUILD/bench/tessera-gen" --events "$EVENTS" --users "$USERS" --span "$SPAN" \
    --start 2026-11-01T00:00:00Z --out "$EV"
fi

# The mock holds our pipe as its stdin (--exit-on-stdin-eof): it stops when this script exits.
coproc MOCK { exec "$BUILD/apps/tessera-kafka-mock" --brokers 3 --topic "plays:$PARTITIONS" \
  --exit-on-stdin-eof 2> "$OUT/mock.log"; }
read -r -t 15 ADDR <&"${MOCK[0]}"
echo "mock cluster: $ADDR (3 brokers, topic plays with $PARTITIONS partitions)"

# Pre-fill: every line keyed by its user_id ("key:value" for kcat -K:), as bench_kafka.sh does.
T0=$(date +%s.%N)
head -n "$KAFKA_EVENTS" "$EV" | sed -E 's/^\{"user_id":"([^"]*)"/\1:&/' |
  kcat -b "$ADDR" -P -t plays -K: -z zstd -X linger.ms=200 -X batch.size=1000000 \
    -X batch.num.messages=100000 -X queue.buffering.max.messages=2000000 2> "$OUT/kcat.log"
T1=$(date +%s.%N)
N=$(head -n "$KAFKA_EVENTS" "$EV" | wc -l)
python3 -c "import sys; print('pre-filled %d messages (zstd) in %.1f s' % (int(sys.argv[1]),
  float(sys.argv[3]) - float(sys.argv[2])))" "$N" "$T0" "$T1"
for p in $(seq 0 $((PARTITIONS - 1))); do
  first=$(kcat -b "$ADDR" -C -t plays -p "$p" -o beginning -c 1 -e -q -f '%o')
  if [ "$first" != 0 ]; then
    echo "the mock cluster dropped the first $first messages of partition $p (it keeps 5 MiB" \
      "per partition): use fewer KAFKA_EVENTS or more PARTITIONS" >&2
    exit 1
  fi
done

python3 - "$BUILD" "$OUT" "$ADDR" "$N" "$PARTITIONS" "$FLUSH_INTERVAL" "$EMULATOR" \
  "$MOCK_PID" $WORKERS <<'PY'
import json, os, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, "tests/e2e")
import harness  # noqa: E402  (emulator, processes, metrics)

build, out, addr, n, partitions, flush, emulator_bin, mock_pid = sys.argv[1:9]
n, partitions, counts = int(n), int(partitions), [int(w) for w in sys.argv[9:]]
tessera = os.path.abspath(os.path.join(build, "apps", "tessera"))
STORE = "bigtable://bench/bench/tiles"
SQL = """
CREATE SOURCE plays (
  user_id STRING, track_id STRING, ms_played BIGINT, skipped BOOLEAN, country STRING,
  device STRING, ts TIMESTAMP
) WITH ('connector' = 'kafka', 'topic' = 'plays', 'properties.bootstrap.servers' = '%s',
  'properties.group.id' = '%s', 'scan.startup.mode' = 'earliest-offset', 'format' = 'json');
CREATE FEATURE VIEW user_listening AS
SELECT user_id, COUNT(*) AS plays, SUM(ms_played) AS total_ms, MAX(ms_played) AS longest_ms,
       APPROX_COUNT_DISTINCT(track_id) AS uniq_tracks,
       APPROX_PERCENTILE(ms_played, 0.9) AS p90_ms, LAST_VALUE(track_id) AS last_track
FROM plays GROUP BY user_id;
"""


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far (all its threads)."""
    fields = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gauges(client, name):
    return harness.partition_gauges(client, name)


def bench(k):
    """k workers from an empty store: (rows/s, details)."""
    emu = harness.BigtableEmulator(emulator_bin, os.path.join(out, "emulator-%d.log" % k)).start()
    workers = []
    try:
        env = emu.env()
        harness.run([tessera, "store", "init", "--store", STORE], env=env)
        sql = os.path.join(out, "bench-%d.sql" % k)
        with open(sql, "w") as f:
            f.write(SQL % (addr, "bench-scaleout-%d-%d" % (k, os.getpid())))
        t_start = time.monotonic()
        for i in range(k):
            s = harness.Command(tessera, ["run", "--sql", sql, "--store", STORE, "--http",
                                          "127.0.0.1:0", "--flush-interval", flush],
                                os.path.join(out, "worker-%d-%d.log" % (k, i)), env).start(60)
            workers.append((s, harness.Client(s.host, s.port, timeout=30)))
        t_first = t_split = None
        committed_split = 0
        while True:
            handed = committed = 0
            owners = {}
            for s, c in workers:
                assigned = gauges(c, "tessera_kafka_partition_assigned")
                off = gauges(c, "tessera_kafka_partition_offset")
                handed += sum(gauges(c, "tessera_kafka_partition_rows_total").values())
                for p, v in assigned.items():
                    if v == 1:
                        owners.setdefault(p, []).append(off.get(p, 0))
            # Each partition's committed offset, from its one owner (0 while it has none).
            committed = sum(o[0] for o in owners.values() if len(o) == 1)
            now = time.monotonic()
            if t_first is None and handed > 0:
                t_first = now
                cpu_first = [cpu_seconds(s.proc.pid) for s, _ in workers] + [
                    cpu_seconds(emu.proc.pid), cpu_seconds(mock_pid)]
            split = (len(owners) == partitions and all(len(o) == 1 for o in owners.values()) and
                     all(any(v == 1 for v in gauges(c, "tessera_kafka_partition_assigned")
                             .values()) for _, c in workers))
            if t_split is None and split:
                t_split, committed_split = now, committed
            if committed >= n and split:
                break
            if now - t_start > 1800:
                sys.exit("%d worker(s): not caught up after 1800 s: %d of %d committed" %
                         (k, committed, n))
            time.sleep(0.1)
        t_done = time.monotonic()
        cpu_done = [cpu_seconds(s.proc.pid) for s, _ in workers] + [
            cpu_seconds(emu.proc.pid), cpu_seconds(mock_pid)]
        secs = t_done - t_first
        cpu = [b - a for a, b in zip(cpu_first, cpu_done)]
        detail = ("%d worker(s): %d rows in %.1f s from the first row handed until every "
                  "partition's offset was committed: %.0f rows/s" % (k, n, secs, n / secs))
        if k > 1 and t_split is not None and t_first < t_split < t_done:
            detail += ("; %.0f rows/s after the group split (%.1f s after the first row, %d "
                       "rows committed by then)" % ((n - committed_split) / (t_done - t_split),
                                                    t_split - t_first, committed_split))
        detail += ("\n  CPU over that time: workers %s s, emulator %.1f s, mock cluster %.1f s "
                   "(%.1f s of wall on %d cores); emulator RSS %d MB" % (
                       "+".join("%.1f" % c for c in cpu[:-2]), cpu[-2], cpu[-1], secs,
                       os.cpu_count(), (emu.rss_kb() or 0) // 1024))
        detail += "; load average %.1f at the end (other work on the machine)" % os.getloadavg()[0]
        for s, c in workers:
            c.close()
            rc, _ = s.terminate(60)
            if rc != 0:
                detail += "\n  a worker exited %r on SIGTERM: see %s" % (rc, s.log_path)
        workers = []
        return n / secs, detail
    finally:
        for s, c in workers:
            c.close()
            s.kill()
        emu.stop()


rates = {}
for k in counts:
    rates[k], detail = bench(k)
    print(detail, flush=True)
print("rows/s into Bigtable-emulator tiles: " +
      ", ".join("%d worker(s) %.0f" % (k, r) for k, r in rates.items()) +
      ("" if 1 not in rates or len(rates) < 2 else
       " (x%.2f with %d)" % (rates[max(rates)] / rates[1], max(rates))))
print("note: the emulator is not Bigtable: a single in-memory Go process on this same %d-core "
      "machine (beside the workers and the mock cluster), so these rates are this box's "
      "ceiling, not Bigtable's throughput" % os.cpu_count())
PY
