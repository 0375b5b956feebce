#!/usr/bin/env bash
# `make demo`: generate a sample event stream, backfill it into an embedded RocksDB, and read
# real features back for a few keys and windows.
set -euo pipefail
BUILD=${1:-build/release}
OUT=out/demo
rm -rf "$OUT" && mkdir -p "$OUT"

echo "== generating 500k listening events over 6 hours (Zipf users, some disorder, late and malformed rows)"
"$BUILD/bench/tessera-gen" --events 500000 --users 50000 --span 6h \
  --start 2026-11-01T00:00:00Z --late 0.001 --malformed 0.001 --nulls 0.01 --rfc3339 \
  --out "$OUT/events.ndjson"
ls -lh "$OUT/events.ndjson" | awk '{print "   " $5 " " $9}'

echo "== the plan"
"$BUILD/apps/tessera" explain --sql examples/listening.sql

echo "== backfill (last line is the summary)"
"$BUILD/apps/tessera" backfill --sql examples/listening.sql --input "$OUT/events.ndjson" \
  --db "$OUT/db" --dead-letter "$OUT/rejected.ndjson"

echo "== features at 2026-11-01T06:00:00Z for the three busiest users"
"$BUILD/apps/tessera" get --db "$OUT/db" --view user_listening \
  --key user0000000 --key user0000001 --key user0000002 \
  --at 2026-11-01T06:00:00Z --windows 5m,1h,6h,1d

echo "== per-country features"
"$BUILD/apps/tessera" get --db "$OUT/db" --view country_plays --key SE --key JP \
  --at 2026-11-01T06:00:00Z --windows 1h,1d

echo "== backfilling the same file again counts nothing twice"
"$BUILD/apps/tessera" backfill --sql examples/listening.sql --input "$OUT/events.ndjson" \
  --db "$OUT/db" | tail -1
echo "== a point-in-time training set from the same events, no DB: 3 spine rows (user, time, label)"
cat > "$OUT/spine.ndjson" <<'SPINE'
{"user_id":"user0000000","ts":"2026-11-01T06:00:00Z","label":1}
{"user_id":"user0000001","ts":"2026-11-01T03:17:42.250Z","label":0}
{"user_id":"nobody","ts":1793512800000,"label":0}
SPINE
"$BUILD/apps/tessera" training-set --sql examples/listening.sql --input "$OUT/events.ndjson" \
  --spine "$OUT/spine.ndjson" --views user_listening --windows 5m,1h --out "$OUT/training.csv" \
  | tail -1 | cut -c1-160
cut -d, -f1-7 "$OUT/training.csv"
echo
echo "Try: $BUILD/apps/tessera preview --sql examples/listening.sql --input $OUT/events.ndjson --view user_listening"
echo "Try: $BUILD/apps/tessera get --db $OUT/db --view user_listening --key user0000042 --at 2026-11-01T03:00:00Z"
