#!/usr/bin/env bash
# Backfill side by side with a peer: the same generated NDJSON streams through `tessera backfill`
# (RocksDB, a new DB) and through Debian's ClickHouse (18.16; a server started here on free
# loopback ports, data in a temp dir, stopped at the end) into the same 5-minute-tile view:
# ClickHouse's AggregatingMergeTree fed by a materialized view over a Null table — the same
# tile-then-merge idea (count, sum, max, uniqHLL12, quantile(0.9), argMax). Prints both rates
# (process wall time) and the ratio, per stream:
#   high-cardinality: 2M events, 200k Zipf users over 48 h (most (key, tile) pairs hold 1-2 rows)
#   make bench:       2M events, 200k Zipf users over 6 h
# Then `tessera serve` on the 48 h DB under wrk on the same box (random existing users, 4 windows,
# at the end of the stream): single-key GETs (t=1 c=8) and batchGets of 100 keys (t=1 c=2),
# SERVE_SECONDS each (0 skips it), after WARMUP_SECONDS of GETs reported apart (the cold start).
set -euo pipefail
BUILD=${1:-build/release}
OUT=${OUT:-out/bench-peer}
RUNS=${RUNS:-1}
SERVE_SECONDS=${SERVE_SECONDS:-8}
WARMUP_SECONDS=${WARMUP_SECONDS:-4}
HERE=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
CH_DIR=$(mktemp -d /tmp/tessera-peer-XXXXXX)
CH_PID=
SERVE_PID=
cleanup() {
  for pid in $CH_PID $SERVE_PID; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$CH_DIR" "$OUT/db" "$OUT/db-48h"
}
trap cleanup EXIT

if ! command -v clickhouse-client >/dev/null || [[ ! -x /usr/sbin/clickhouse-server ]]; then
  echo "installing Debian's clickhouse-server and clickhouse-client (the peer, for this benchmark only)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q clickhouse-server clickhouse-client >/dev/null
fi

cp "$HERE/bench/bench_views.sql" "$OUT/bench.sql"

# ClickHouse on free ports, from the packaged config with every path in a temp dir.
read -r HTTP_PORT TCP_PORT INTER_PORT < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
python3 - "$CH_DIR" "$HTTP_PORT" "$TCP_PORT" "$INTER_PORT" <<'PY'
import re, sys
d, http, tcp, inter = sys.argv[1:]
s = open("/etc/clickhouse-server/config.xml").read()
s = s.replace("/var/log/clickhouse-server/", d + "/log/").replace("/var/lib/clickhouse/", d + "/data/")
s = re.sub(r"<http_port>\d+</http_port>", "<http_port>%s</http_port>" % http, s)
s = re.sub(r"<tcp_port>\d+</tcp_port>", "<tcp_port>%s</tcp_port>" % tcp, s)
s = re.sub(r"<interserver_http_port>\d+</interserver_http_port>",
           "<interserver_http_port>%s</interserver_http_port>" % inter, s)
s = re.sub(r"\s*<listen_host>::1</listen_host>", "", s)
s = re.sub(r"<tcp_port_secure>.*?</tcp_port_secure>", "", s)
s = re.sub(r"<users_config>.*?</users_config>", "<users_config>%s/users.xml</users_config>" % d, s)
open(d + "/config.xml", "w").write(s)
PY
cp /etc/clickhouse-server/users.xml "$CH_DIR/"
mkdir -p "$CH_DIR/log" "$CH_DIR/data"
/usr/sbin/clickhouse-server --config-file="$CH_DIR/config.xml" > "$CH_DIR/server.out" 2>&1 &
CH_PID=$!
CH="clickhouse-client --host 127.0.0.1 --port $TCP_PORT"
for _ in $(seq 1 100); do $CH -q "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
echo "clickhouse $($CH -q 'SELECT version()') on 127.0.0.1:$TCP_PORT"

ch_setup() {
  $CH -q "DROP TABLE IF EXISTS mv"; $CH -q "DROP TABLE IF EXISTS raw"; $CH -q "DROP TABLE IF EXISTS tiles"
  $CH -q "CREATE TABLE tiles (user_id String, tile DateTime, plays AggregateFunction(count),
    total_ms AggregateFunction(sum, Int64), longest_ms AggregateFunction(max, Int64),
    uniq_tracks AggregateFunction(uniqHLL12, String),
    p90_ms AggregateFunction(quantile(0.9), Int64),
    last_track AggregateFunction(argMax, String, Int64))
    ENGINE = AggregatingMergeTree() ORDER BY (user_id, tile)"
  $CH -q "CREATE TABLE raw (user_id String, track_id String, ms_played Nullable(Int64),
    skipped UInt8, country String, device String, ts Int64) ENGINE = Null"
  $CH -q "CREATE MATERIALIZED VIEW mv TO tiles AS SELECT user_id,
    toStartOfFiveMinute(toDateTime(intDiv(ts, 1000))) AS tile, countState() AS plays,
    sumState(ms_played) AS total_ms, maxState(ms_played) AS longest_ms,
    uniqHLL12State(track_id) AS uniq_tracks, quantileState(0.9)(ms_played) AS p90_ms,
    argMaxState(track_id, ts) AS last_track FROM raw GROUP BY user_id, tile"
}

wall() {  # wall seconds of a command, its output discarded
  local t0 t1
  t0=$(date +%s.%N); "$@" > /dev/null; t1=$(date +%s.%N)
  python3 -c "print('%.2f' % ($t1 - $t0))"
}

for spec in "48h 2000000 200000 high-cardinality" "6h 2000000 200000 make-bench"; do
  read -r SPAN EVENTS USERS NAME <<< "$spec"
  EV="$OUT/events-$EVENTS-$USERS-$SPAN.ndjson"
  if [ ! -f "$EV" ]; then
    "$BUILD/bench/tessera-gen" --events "$EVENTS" --users "$USERS" --span "$SPAN" \
      --start 2026-11-01T00:00:00Z --out "$EV"
  fi
  cat "$EV" > /dev/null  # page cache
  for run in $(seq 1 "$RUNS"); do
    rm -rf "$OUT/db"
    T=$(wall "$BUILD/apps/tessera" backfill --sql "$OUT/bench.sql" --input "$EV" --db "$OUT/db")
    ch_setup
    C=$(wall $CH --input_format_skip_unknown_fields=1 -q "INSERT INTO raw FORMAT JSONEachRow" < "$EV")
    TILES=$($CH -q "SELECT count() FROM (SELECT user_id, tile FROM tiles GROUP BY user_id, tile)")
    python3 - "$NAME" "$EVENTS" "$T" "$C" "$TILES" <<'PY'
import sys
name, n, t, c, tiles = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
print("%-17s tessera %.2fM ev/s (%.2f s)   clickhouse %.2fM ev/s (%.2f s, %s 5m tiles)   "
      "tessera/clickhouse %.2fx" % (name, n / t / 1e6, t, n / c / 1e6, c, tiles, c / t))
PY
  done
  if [[ $SPAN == 48h ]]; then rm -rf "$OUT/db-48h"; mv "$OUT/db" "$OUT/db-48h"; fi
done

# ClickHouse keeps merging in the background: stop it before measuring serving, and let the
# kernel write back what the backfills and ClickHouse left dirty in the page cache (~1 GB), which
# it would otherwise do while the server is measured.
kill "$CH_PID" 2>/dev/null || true; wait "$CH_PID" 2>/dev/null || true; CH_PID=
sync

if (( SERVE_SECONDS > 0 )) && command -v wrk >/dev/null; then
  "$BUILD/apps/tessera" serve --db "$OUT/db-48h" --http 127.0.0.1:0 > "$OUT/serve.out" 2> "$OUT/serve.log" &
  SERVE_PID=$!
  for _ in $(seq 1 100); do grep -q listening "$OUT/serve.out" 2>/dev/null && break; sleep 0.1; done
  URL=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["listening"])' "$OUT/serve.out")
  export VIEW=user_listening USERS=200000 WINDOWS=5m,1h,6h,1d AT=2026-11-03T00:00:00Z
  report() {  # the JSON line the wrk scripts print at the end
    python3 -c '
import json, sys
j = [json.loads(l) for l in sys.stdin if l.startswith("{")][-1]
extra = ", %.0f keys/s" % j["keys_per_s"] if "keys_per_s" in j else ""
print("%s: %.0f requests/s%s, p50 %.3f ms, p99 %.3f ms, errors %d, non-2xx %d" % (
    sys.argv[1], j["rps"], extra, j["p50_ms"], j["p99_ms"], j["errors"], j["non2xx"]))' "$1"
  }
  # The first seconds after a start fill the block cache (~34k blocks of the 48 h DB read from
  # the page cache): reported apart, then the steady state is measured.
  wrk -t1 -c8 -d"${WARMUP_SECONDS}s" -s "$HERE/bench/wrk/get.lua" "$URL" |
    report "serve 48h DB, GET warm-up, first ${WARMUP_SECONDS} s after start (t=1 c=8)"
  wrk -t1 -c8 -d"${SERVE_SECONDS}s" -s "$HERE/bench/wrk/get.lua" "$URL" |
    report "serve 48h DB, GET 1 key x 4 windows (t=1 c=8)"
  KEYS=100 wrk -t1 -c2 -d"${SERVE_SECONDS}s" -s "$HERE/bench/wrk/batch.lua" "$URL" |
    report "serve 48h DB, batchGet 100 keys x 4 windows (t=1 c=2)"
fi
