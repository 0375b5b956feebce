#!/usr/bin/env bash
# End-to-end backfill benchmark: 2M ~135-byte events, 200k Zipf users, into the reference view
# (COUNT, SUM, MAX, APPROX_COUNT_DISTINCT, APPROX_PERCENTILE, LAST_VALUE). Prints events/s,
# peak memory, and the engine time of `get` for 4 windows.
set -euo pipefail
BUILD=${1:-build/release}
EVENTS=${EVENTS:-2000000}
USERS=${USERS:-200000}
SPAN=${SPAN:-6h}
OUT=${OUT:-out/bench}
mkdir -p "$OUT"
rm -rf "$OUT/db"
cp "$(dirname "$0")/../bench/bench_views.sql" "$OUT/bench.sql"
if [ ! -f "$OUT/events-$EVENTS-$USERS-$SPAN.ndjson" ]; then
  "$BUILD/bench/tessera-gen" --events "$EVENTS" --users "$USERS" --span "$SPAN" \
    --start 2026-11-01T00:00:00Z --out "$OUT/events-$EVENTS-$USERS-$SPAN.ndjson"
fi
EV="$OUT/events-$EVENTS-$USERS-$SPAN.ndjson"
BYTES=$(stat -c %s "$EV")
cat "$EV" > /dev/null  # warm the page cache: measure the engine, not the disk
echo "input: $EVENTS events, $USERS users, span $SPAN, $BYTES bytes ($((BYTES / EVENTS)) B/event)"
/usr/bin/time -f "%e s elapsed, %M KiB peak RSS, %P CPU" \
  "$BUILD/apps/tessera" backfill --sql "$OUT/bench.sql" --input "$EV" --db "$OUT/db" \
  2> "$OUT/time.txt" | tail -1 | tee "$OUT/summary.json"
cat "$OUT/time.txt"
python3 - "$OUT/summary.json" "$OUT/time.txt" "$EVENTS" <<'PY'
import json, re, sys
s = json.load(open(sys.argv[1]))
t = open(sys.argv[2]).read()
wall = float(re.search(r"([\d.]+) s elapsed", t).group(1))
rss = int(re.search(r"(\d+) KiB peak", t).group(1))
n = int(sys.argv[3])
print("backfill: %.0f events/s end to end (process wall time %.2f s), engine %.0f events/s, "
      "peak RSS %.0f MiB, tiles written %d" % (n / wall, wall, s["rows_per_second"], rss / 1024,
                                               s["tiles_written"]))
PY
echo "get (4 windows, engine time after open):"
for k in user0000000 user0000001 user0000100 user0100000; do
  "$BUILD/apps/tessera" get --db "$OUT/db" --view user_listening --key "$k" \
    --at 2026-11-01T06:00:00Z --windows 5m,1h,6h,1d --timing >/dev/null
done
