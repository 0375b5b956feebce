#!/usr/bin/env bash
# Kafka ingest benchmark: the `make bench` stream (tessera-gen: ~135-byte events, 200k Zipf users,
# 6h), its first $KAFKA_EVENTS events keyed by user_id, pre-filled into a topic of 8 partitions
# on librdkafka's mock cluster (tessera-kafka-mock, 3 brokers, in memory) in zstd-compressed
# batches, then consumed by `tessera run` into the tiles of the `make bench` view. Prints rows/s
# from the first row handed to the pipeline until the lag is 0 (every message handed out), and
# until every partition's committed offset (tessera_kafka_partition_offset, written with the
# tiles) reached its end, polled on /metrics; also the wall time including joining the group.
#
# The mock cluster keeps at most 5 MiB per partition (older messages are dropped, hard-coded in
# librdkafka): 1M events compressed fit in 8 partitions, the whole 2M do not (the script checks
# that nothing was dropped). PERF=1 records `perf record -g` of `tessera run` during the consume
# phase into $OUT/perf.data. FLUSH_INTERVAL (default 1s, `tessera run`'s default) is passed as
# --flush-interval: each flush of this high-cardinality view reads, merges and writes a tile per
# active user, which is what bounds the live rate today.
set -euo pipefail
BUILD=${1:-build/release}
EVENTS=${EVENTS:-2000000}
USERS=${USERS:-200000}
SPAN=${SPAN:-6h}
PARTITIONS=${PARTITIONS:-8}
KAFKA_EVENTS=${KAFKA_EVENTS:-1000000}
COMPRESSION=${COMPRESSION:-zstd}
GEN_OUT=${GEN_OUT:-out/bench}  # shared with `make bench`: the events are generated once
OUT=${OUT:-out/bench-kafka}
mkdir -p "$OUT" "$GEN_OUT"
rm -rf "$OUT/db"
command -v kcat >/dev/null || { echo "kcat is not installed (Debian package kcat)" >&2; exit 1; }

EV="$GEN_OUT/events-$EVENTS-$USERS-$SPAN.ndjson"
if [ ! -f "$EV" ]; then
  "$BUILD/bench/tessera-gen" --events "$EVENTS" --users "$USERS" --span "$SPAN" \
    --start 2026-11-01T00:00:00Z --out "$EV"
fi

RUN_PID=""
cleanup() {
  if [ -n "$RUN_PID" ]; then kill -9 "$RUN_PID" 2>/dev/null || true; fi
  # The mock holds our pipe as its stdin (--exit-on-stdin-eof): it stops when we exit.
}
trap cleanup EXIT
coproc MOCK { exec "$BUILD/apps/tessera-kafka-mock" --brokers 3 --topic "plays:$PARTITIONS" \
  --exit-on-stdin-eof 2> "$OUT/mock.log"; }
read -r -t 15 ADDR <&"${MOCK[0]}"
echo "mock cluster: $ADDR (3 brokers, topic plays with $PARTITIONS partitions)"

cat > "$OUT/bench.sql" <<SQL
CREATE SOURCE plays (
  user_id STRING, track_id STRING, ms_played BIGINT, skipped BOOLEAN, country STRING,
  device STRING, ts TIMESTAMP
) WITH ('connector' = 'kafka', 'topic' = 'plays', 'properties.bootstrap.servers' = '$ADDR',
  'properties.group.id' = 'bench', 'scan.startup.mode' = 'earliest-offset', 'format' = 'json');
CREATE FEATURE VIEW user_listening AS
SELECT user_id, COUNT(*) AS plays, SUM(ms_played) AS total_ms, MAX(ms_played) AS longest_ms,
       APPROX_COUNT_DISTINCT(track_id) AS uniq_tracks,
       APPROX_PERCENTILE(ms_played, 0.9) AS p90_ms, LAST_VALUE(track_id) AS last_track
FROM plays GROUP BY user_id;
SQL

# Pre-fill: every line keyed by its user_id ("key:value" for kcat -K:).
T0=$(date +%s.%N)
head -n "$KAFKA_EVENTS" "$EV" | sed -E 's/^\{"user_id":"([^"]*)"/\1:&/' |
  kcat -b "$ADDR" -P -t plays -K: -z "$COMPRESSION" -X linger.ms=200 -X batch.size=1000000 \
    -X batch.num.messages=100000 -X queue.buffering.max.messages=2000000 2> "$OUT/kcat.log"
T1=$(date +%s.%N)
N=$(head -n "$KAFKA_EVENTS" "$EV" | wc -l)
python3 -c "import sys; print('pre-filled %d messages (%s) in %.1f s' % (int(sys.argv[1]),
  sys.argv[4], float(sys.argv[3]) - float(sys.argv[2])))" "$N" "$T0" "$T1" "$COMPRESSION"
for p in $(seq 0 $((PARTITIONS - 1))); do
  first=$(kcat -b "$ADDR" -C -t plays -p "$p" -o beginning -c 1 -e -q -f '%o')
  if [ "$first" != 0 ]; then
    echo "the mock cluster dropped the first $first messages of partition $p (it keeps 5 MiB" \
      "per partition): use fewer KAFKA_EVENTS or more PARTITIONS" >&2
    exit 1
  fi
done

"$BUILD/apps/tessera" run --sql "$OUT/bench.sql" --db "$OUT/db" --http 127.0.0.1:0 \
  --flush-interval "${FLUSH_INTERVAL:-1s}" > "$OUT/run.out" 2> "$OUT/run.log" &
RUN_PID=$!
python3 - "$OUT/run.out" "$N" "$RUN_PID" "${PERF:-0}" "$OUT" "$MOCK_PID" <<'PY'
import json, os, re, subprocess, sys, time, urllib.request
out, n, pid, perf, outdir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1", sys.argv[5]
mock_pid = sys.argv[6]
t_start = time.monotonic()
while True:
    try:
        url = json.loads(open(out).readline())["listening"]
        break
    except (ValueError, KeyError, OSError):
        if time.monotonic() - t_start > 30:
            sys.exit("tessera run printed no listening line")
        time.sleep(0.02)

def sample():
    body = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    def total(name):
        return sum(float(v) for v in re.findall(r"^%s\{[^}]*\} (\S+)$" % name, body, re.M))
    return total("tessera_kafka_partition_rows_total"), total("tessera_kafka_partition_offset"), body

def cpu_seconds(p):
    """User + system CPU seconds of process p so far (all its threads)."""
    fields = open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

t_first = t_handed = recorder = None
while True:
    handed, committed, body = sample()
    now = time.monotonic()
    if t_first is None and handed > 0:
        t_first = now
        cpu_first = cpu_seconds(pid), cpu_seconds(mock_pid)
        if perf:
            recorder = subprocess.Popen(["perf", "record", "-g", "-o", outdir + "/perf.data",
                                         "-p", pid + "," + mock_pid], stderr=subprocess.DEVNULL)
    if t_handed is None and handed >= n:
        t_handed = now
        cpu_handed = cpu_seconds(pid), cpu_seconds(mock_pid)
    if handed >= n and committed >= n:
        break
    if now - t_start > 600:
        sys.exit("not caught up after 600 s: %d handed, %d committed" % (handed, committed))
    time.sleep(0.05)
t_done = time.monotonic()
if recorder is not None:
    recorder.send_signal(2)
    recorder.wait()
lag = sum(float(v) for v in re.findall(r"^tessera_kafka_partition_lag\{[^}]*\} (\S+)$", body, re.M))
def metric(name):
    m = re.search(r"^%s\{[^}]*\} (\S+)$" % name, body, re.M)
    return int(float(m.group(1))) if m else 0
print("consumed %d messages: %.0f rows/s until the lag was 0 (%.2f s from the first row handed "
      "until all were handed to the pipeline), %.0f rows/s until all offsets were committed "
      "with the tiles (%.2f s); %.2f s wall from process start, group join included"
      % (n, n / (t_handed - t_first), t_handed - t_first, n / (t_done - t_first),
         t_done - t_first, t_done - t_start))
print("CPU until the lag was 0: tessera run %.2f s (%.0f %% of a core), the mock cluster "
      "%.2f s (%.0f %%), on %d cores" % (
          cpu_handed[0] - cpu_first[0], 100 * (cpu_handed[0] - cpu_first[0]) / (t_handed - t_first),
          cpu_handed[1] - cpu_first[1], 100 * (cpu_handed[1] - cpu_first[1]) / (t_handed - t_first),
          os.cpu_count()))
print("lag %d; source rows %d, late %d, rejected %d" % (
    lag, metric("tessera_source_rows_total"), metric("tessera_source_late_total"),
    metric("tessera_source_rejected_total")))
PY
kill -TERM "$RUN_PID"
wait "$RUN_PID" || true
RUN_PID=""
if [ "${PERF:-0}" = 1 ]; then
  echo "profile: perf report -i $OUT/perf.data --no-children --sort comm,dso,symbol"
fi
