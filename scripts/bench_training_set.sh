#!/usr/bin/env bash
# Training-set benchmark (issue 11's target: 1M spine rows against 10M events, 2 views x 4
# windows, under 30 s): 10M events over 2 days from 1M Zipf users, a spine of 1M (user, country,
# time at an arbitrary millisecond, label) rows, the `make bench` view plus a (user, country) view.
# Prints the process wall time, peak RSS and the summary; PASSES>1 runs with a memory budget that
# forces several passes over the events (MEMORY_MB).
set -euo pipefail
BUILD=${1:-build/release}
EVENTS=${EVENTS:-10000000}
USERS=${USERS:-1000000}
SPINE=${SPINE:-1000000}
SPAN=${SPAN:-2d}
MEMORY_MB=${MEMORY_MB:-1024}
OUT=${OUT:-out/bench-training-set}
mkdir -p "$OUT"
{ cat "$(dirname "$0")/../bench/bench_views.sql"; cat <<'SQL'
CREATE FEATURE VIEW user_country AS
SELECT user_id, country, COUNT(*) AS plays, SUM(CASE WHEN skipped THEN 1 ELSE 0 END) AS skips,
       AVG(ms_played) AS avg_ms
FROM plays GROUP BY user_id, country;
SQL
} > "$OUT/views.sql"
EV="$OUT/events-$EVENTS-$USERS-$SPAN.ndjson"
if [ ! -f "$EV" ]; then
  "$BUILD/bench/tessera-gen" --events "$EVENTS" --users "$USERS" --span "$SPAN" \
    --start 2026-11-01T00:00:00Z --out "$EV"
fi
SP="$OUT/spine-$SPINE-$USERS-$SPAN.ndjson"
if [ ! -f "$SP" ]; then
  python3 - "$SP" "$SPINE" "$USERS" "$SPAN" <<'PY'
import random, sys
path, n, users, span = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
start = 1793491200000  # 2026-11-01T00:00:00Z
span_ms = int(span[:-1]) * {"h": 3600000, "d": 86400000}[span[-1]]
countries = ["SE", "US", "DE", "BR", "IN", "JP", "GB", "FR"]
rng = random.Random(7)
with open(path, "w") as f:
    for i in range(n):
        f.write('{"id":%d,"user_id":"user%07d","country":"%s","ts":%d,"label":%d}\n' % (
            i, rng.randrange(users), rng.choice(countries),
            start + rng.randrange(span_ms + 3600000), rng.random() < 0.3))
PY
fi
cat "$EV" "$SP" > /dev/null  # warm the page cache: measure the engine, not the disk
echo "input: $EVENTS events ($(stat -c %s "$EV") bytes), $USERS users, span $SPAN; spine $SPINE rows"
/usr/bin/time -f "%e s elapsed, %M KiB peak RSS, %P CPU" \
  "$BUILD/apps/tessera" training-set --sql "$OUT/views.sql" --input "$EV" --spine "$SP" \
    --views user_listening,user_country --windows 5m,1h,6h,1d --out "$OUT/training.ndjson" \
    --memory-mb "$MEMORY_MB" 2> "$OUT/time.txt" | tail -1 | tee "$OUT/summary.json"
cat "$OUT/time.txt"
python3 - "$OUT/summary.json" "$OUT/time.txt" "$SPINE" "$EVENTS" <<'PY'
import json, re, sys
s = json.load(open(sys.argv[1]))
t = open(sys.argv[2]).read()
wall = float(re.search(r"([\d.]+) s elapsed", t).group(1))
rss = int(re.search(r"(\d+) KiB peak", t).group(1))
print("training-set: %d spine rows x %d events in %.2f s wall (%.0f spine rows/s, %.2fM events/s "
      "per pass), %d pass(es), peak RSS %.0f MiB, output %.0f MiB" % (
          int(sys.argv[3]), int(sys.argv[4]), wall, int(sys.argv[3]) / wall,
          int(sys.argv[4]) * s["passes"] / wall / 1e6, s["passes"], rss / 1024,
          s["out_bytes"] / 2**20))
PY
