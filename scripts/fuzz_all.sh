#!/usr/bin/env bash
# Runs every libFuzzer binary in BUILD_DIR/fuzz for SECONDS each and fails if any of them finds
# a crash (or does not run). Each target keeps its corpus in out/fuzz/<name> across runs;
# crash reproducers and logs land in out/fuzz/<name>-artifacts.
#
#   scripts/fuzz_all.sh build/fuzz 60
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 BUILD_DIR SECONDS" >&2
  exit 2
fi
build_dir=$1
seconds=$2
if ! [[ $seconds =~ ^[0-9]+$ ]] || (( seconds == 0 )); then
  echo "SECONDS must be a positive integer, got '$seconds'" >&2
  exit 2
fi
fuzz_dir=$build_dir/fuzz
if [[ ! -d $fuzz_dir ]]; then
  echo "no $fuzz_dir: configure with 'cmake --preset fuzz' and build first" >&2
  exit 2
fi

targets=()
for f in "$fuzz_dir"/*_fuzz; do
  [[ -f $f && -x $f ]] && targets+=("$f")
done
if (( ${#targets[@]} == 0 )); then
  echo "no fuzz binaries (*_fuzz) in $fuzz_dir" >&2
  exit 2
fi

# UBSan findings must stop the run like ASan ones do (the fuzz preset also builds with
# -fno-sanitize-recover=undefined; this covers builds that do not).
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

failed=()
for bin in "${targets[@]}"; do
  name=$(basename "$bin")
  corpus=out/fuzz/$name
  artifacts=out/fuzz/$name-artifacts
  log=$artifacts/last_run.log
  mkdir -p "$corpus" "$artifacts"
  echo "== $name: ${seconds}s, corpus $corpus"
  # -max_total_time bounds the run; -timeout flags single inputs that hang; -rss_limit_mb keeps
  # a leaking target from taking the machine. A crash makes libFuzzer exit non-zero.
  if "$bin" "$corpus" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    units=$(find "$corpus" -type f | wc -l)
    echo "   ok: ${execs:-?} executions (${rate:-?}/s), corpus $units files"
  else
    echo "   FAILED (exit $?); log: $log" >&2
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|artifact_prefix|Test unit written)' "$log" \
      | head -20 >&2 || true
    failed+=("$name")
  fi
done

if (( ${#failed[@]} > 0 )); then
  echo "fuzzing found problems in: ${failed[*]}" >&2
  exit 1
fi
echo "all ${#targets[@]} fuzz targets ran ${seconds}s without findings"
