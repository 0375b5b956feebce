#!/usr/bin/env bash
# Live benchmark of `tessera run` (issue 3): HTTP ingest throughput, serving latency (single key
# and batchGet of 100 keys, 4 windows) and freshness (acknowledged -> visible), all against one
# server on a free loopback port, load generators on the same machine. Bounded (~3 minutes);
# stops everything it started. Figures and how to read them: docs/PERFORMANCE.md.
#
#   scripts/bench_serve.sh [BUILD_DIR]      (default build/release; needs wrk)
#
# Knobs (env): EVENTS (2000000 preloaded), LOAD_EVENTS (1000000 in the ingest-load file), USERS,
# INGEST_SECONDS, INGEST_RUNS ("1:visible 4:visible 4:durable": connections:wait), SERVE_SECONDS, PROBES, BG_RATE, DRAIN_LIMIT, OUT.
# Order: preload, serving (on the preloaded DB), freshness, then the ingest throughput runs
# (they re-post the 20-minute load file, which makes the recent tiles much heavier).
set -euo pipefail
BUILD=${1:-build/release}
EVENTS=${EVENTS:-2000000}
LOAD_EVENTS=${LOAD_EVENTS:-1000000}
USERS=${USERS:-200000}
INGEST_SECONDS=${INGEST_SECONDS:-8}
SERVE_SECONDS=${SERVE_SECONDS:-8}
PROBES=${PROBES:-200}
BG_RATE=${BG_RATE:-200000}      # rows/s of background ingest during the freshness probes
DRAIN_LIMIT=${DRAIN_LIMIT:-25}  # seconds to wait for the pipeline after each ingest phase
OUT=${OUT:-out/bench-serve}
TESSERA="$BUILD/apps/tessera"
GEN="$BUILD/bench/tessera-gen"
LOAD="$BUILD/bench/http_load"
HERE=$(cd "$(dirname "$0")/.." && pwd)
for bin in "$TESSERA" "$GEN" "$LOAD"; do
  [ -x "$bin" ] || { echo "bench_serve: missing $bin (build tessera, tessera-gen, http_load)" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "bench_serve: wrk not found (scripts/install-deps.sh)" >&2; exit 1; }

mkdir -p "$OUT"
rm -rf "$OUT/db"
SERVER_PID=""
BG_PIDS=()
cleanup() {
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat > "$OUT/serve.sql" <<'SQL'
CREATE SOURCE plays (
  user_id STRING, track_id STRING, ms_played BIGINT, skipped BOOLEAN, country STRING,
  device STRING, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR
) WITH (connector = 'http', format = 'json');
CREATE FEATURE VIEW user_listening AS
SELECT user_id, COUNT(*) AS plays, SUM(ms_played) AS total_ms, MAX(ms_played) AS longest_ms,
       APPROX_COUNT_DISTINCT(track_id) AS uniq_tracks,
       APPROX_PERCENTILE(ms_played, 0.9) AS p90_ms, LAST_VALUE(track_id) AS last_track
FROM plays GROUP BY user_id;
SQL

# Event time near now, so the 5m/1h/6h/1d windows of a read at "now" are populated: the
# preload covers the last 6 hours, the load file (re-posted during the ingest and freshness
# phases) the last 20 minutes (inside the 1-hour lateness).
NOW_MS=$(( $(date +%s%3N) ))
"$GEN" --events "$EVENTS" --users "$USERS" --span 6h --start $((NOW_MS - 6 * 3600 * 1000)) \
  --out "$OUT/preload.ndjson"
"$GEN" --events "$LOAD_EVENTS" --users "$USERS" --span 20m --start $((NOW_MS - 20 * 60 * 1000)) \
  --seed 7 --out "$OUT/load.ndjson"
echo "data: $EVENTS preload events (6h up to now), $LOAD_EVENTS load events (last 20m)," \
  "$USERS Zipf users, $(( $(stat -c %s "$OUT/load.ndjson") / LOAD_EVENTS )) B/event"

"$TESSERA" run --sql "$OUT/serve.sql" --db "$OUT/db" --http 127.0.0.1:0 \
  > "$OUT/server.out" 2> "$OUT/server.err" &
SERVER_PID=$!
PORT=""
for _ in $(seq 1 200); do
  PORT=$(sed -n 's/.*"listening":"http:\/\/127\.0\.0\.1:\([0-9]*\)".*/\1/p' "$OUT/server.out")
  [ -n "$PORT" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/server.err" >&2; exit 1; }
  sleep 0.05
done
[ -n "$PORT" ] || { echo "bench_serve: server did not start" >&2; exit 1; }
BASE="http://127.0.0.1:$PORT"
echo "server: pid $SERVER_PID on $BASE, db $OUT/db, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# Server CPU seconds so far (user + system), from /proc.
server_cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$SERVER_PID/stat"; }
metric() {  # sum of a Prometheus counter over its label sets
  curl -s "$BASE/metrics" | awk -v m="$1" '$1 ~ "^"m"({|$)" {s += $2} END {printf "%.0f", s}'
}
# Waits until the pipeline has decoded every acknowledged row; prints the drain time.
wait_drained() {  # wait_drained [MAX_SECONDS]
  local want t0 limit=${1:-60}
  want=$(metric tessera_ingest_accepted_rows_total)
  t0=$(date +%s)
  while [ "$(metric tessera_source_rows_total)" -lt "$want" ]; do
    if [ $(( $(date +%s) - t0 )) -ge "$limit" ]; then
      echo "pipeline still $(( want - $(metric tessera_source_rows_total) )) rows behind after ${limit}s"
      DRAIN_S=-1
      return
    fi
    sleep 0.05
  done
  DRAIN_S=$(echo "$(date +%s.%N) - $t0" | bc)
  echo "$want rows acknowledged in total; pipeline caught up ${DRAIN_S} s after the last ack"
}
# Waits until the owed rollups of closed slots are built (flushes build 50k each), so the
# serving phases measure reads, not reads beside the post-preload rollup builds.
wait_rollups() {  # wait_rollups [MAX_SECONDS]
  local t0 limit=${1:-120}
  t0=$(date +%s)
  while [ "$(metric tessera_rollups_owed_closed)" -gt 0 ]; do
    if [ $(( $(date +%s) - t0 )) -ge "$limit" ]; then
      echo "still $(metric tessera_rollups_owed_closed) owed rollups after ${limit}s"
      return
    fi
    sleep 0.2
  done
  echo "owed rollups of closed slots built $(( $(date +%s) - t0 )) s later ($(metric tessera_rollups_owed) owed for open slots)"
}
phase() {  # phase NAME CMD… — runs CMD, prints its JSON line and the server's CPU use
  local name=$1 c0 t0 c1 t1
  shift
  c0=$(server_cpu); t0=$(date +%s.%N)
  "$@" > "$OUT/phase.out" || echo "$name: command failed: $*" >&2
  c1=$(server_cpu); t1=$(date +%s.%N)
  grep '^{' "$OUT/phase.out" | sed "s/^{/{\"phase\":\"$name\",/" >> "$OUT/results.ndjson" || true
  grep '^{' "$OUT/phase.out" | sed "s/^/$name: /" || cat "$OUT/phase.out"
  echo "$name: server CPU $(echo "scale=0; 100 * ($c1 - $c0) / ($t1 - $t0)" | bc) % (of 200 %)"
}
: > "$OUT/results.ndjson"

echo "== preload: $EVENTS events through POST /v1/ingest/plays (10k-line bodies, 2 connections)"
phase preload "$LOAD" ingest --port "$PORT" --file "$OUT/preload.ndjson" --lines 10000 --connections 2
wait_drained 60
wait_rollups

echo "== (b) serving: GET /v1/features/user_listening/{key}?windows=5m,1h,6h,1d, ${SERVE_SECONDS}s each"
export VIEW=user_listening USERS WINDOWS=5m,1h,6h,1d
for tc in "1 1" "1 2" "1 4" "1 8" "2 8"; do
  set -- $tc
  phase "get uniform t=$1 c=$2" wrk -t"$1" -c"$2" -d"${SERVE_SECONDS}s" --latency \
    -s "$HERE/bench/wrk/get.lua" "$BASE"
done
DIST=zipf phase "get zipf t=1 c=2" wrk -t1 -c2 -d"${SERVE_SECONDS}s" --latency \
  -s "$HERE/bench/wrk/get.lua" "$BASE"
for c in 1 2; do
  KEYS=100 phase "batchGet 100 keys t=1 c=$c" wrk -t1 -c"$c" -d"${SERVE_SECONDS}s" --latency \
    -s "$HERE/bench/wrk/batch.lua" "$BASE"
done

echo "== (c) freshness: POST one event (ts=now, new key), poll GET every 2 ms; idle, then under $BG_RATE rows/s ingest"
phase "fresh idle" "$LOAD" fresh --port "$PORT" --probes 50 --timeout 3
"$LOAD" ingest --port "$PORT" --file "$OUT/load.ndjson" --lines 10000 --connections 1 \
  --rate "$BG_RATE" --seconds 120 > "$OUT/bg_ingest.json" &
BG_PIDS+=($!)
sleep 1
phase "fresh under ingest" "$LOAD" fresh --port "$PORT" --probes "$PROBES" --timeout 3
kill -TERM "${BG_PIDS[0]}" 2>/dev/null || true
wait "${BG_PIDS[0]}" 2>/dev/null || true
BG_PIDS=()
tee -a "$OUT/results.ndjson" < "$OUT/bg_ingest.json" | sed 's/^/fresh background ingest: /'
wait_drained 30

echo "== (a) HTTP ingest: 10k-line bodies for ${INGEST_SECONDS}s"
# Answers wait until the rows are readable (the default), or only until they are durable.
for run in ${INGEST_RUNS:-1:visible 4:visible 4:durable}; do
  c=${run%%:*}
  wait_mode=${run##*:}
  phase "ingest c=$c wait=$wait_mode" "$LOAD" ingest --port "$PORT" --file "$OUT/load.ndjson" \
    --lines 10000 --connections "$c" --seconds "$INGEST_SECONDS" --wait "$wait_mode"
  wait_drained "$DRAIN_LIMIT"
  python3 - "$OUT/phase.out" "$DRAIN_S" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[0])
if float(sys.argv[2]) < 0:
    print("  acknowledged %.0f rows/s; the pipeline did not catch up in time" % r["rows_per_second"])
    sys.exit(0)
wall = r["seconds"] + float(sys.argv[2])
print("  acknowledged %.0f rows/s; aggregated end to end %.0f rows/s (%d rows in %.1f s + %.1f s"
      " catch-up)" % (r["rows_per_second"], r["rows_accepted"] / wall, r["rows_accepted"],
                      r["seconds"], float(sys.argv[2])))
PY
done

echo "== server"
echo "late rows: $(metric tessera_source_late_total), rejected: $(metric tessera_source_rejected_total)"
echo "peak RSS: $(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$SERVER_PID/status")"
echo "results: $OUT/results.ndjson"
