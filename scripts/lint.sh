#!/usr/bin/env bash
# `make lint`: the checks CI runs before the tests.
#
#  1. clang-format (--dry-run -Werror, .clang-format) on every tracked C++ file under src, apps,
#     bench, fuzz and tests: a few seconds.
#  2. clang's thread-safety analysis (scripts/check_thread_safety.py: clang++-14 -fsyntax-only
#     -Wthread-safety -Werror=thread-safety) on every translation unit that uses
#     src/common/mutex.h, changed or not: ABSL_GUARDED_BY and friends mean nothing to g++. About
#     half a minute.
#  3. clang-tidy (.clang-tidy; its checks are errors) on the C++ files changed relative to BASE,
#     with the compile commands of build/release. Only changed files, because clang-tidy needs
#     ~10-20 s per translation unit. A changed header is checked through its .cc (or _test.cc,
#     or else the first .cc that includes it).
#     Files without compile commands (fuzz targets outside the fuzz preset) are skipped, named.
#
# Environment:
#   BASE   commit to diff against; default: `git merge-base HEAD origin/main` when origin/main
#          exists, else HEAD~1. Uncommitted and untracked changes are included.
#   BUILD  build directory holding compile_commands.json (default build/release).
#   JOBS   clang and clang-tidy processes in parallel (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build/release}
JOBS=${JOBS:-2}
PATHSPECS=(':(glob)src/**/*.h' ':(glob)src/**/*.cc' ':(glob)apps/**/*.h' ':(glob)apps/**/*.cc'
  ':(glob)bench/**/*.h' ':(glob)bench/**/*.cc' ':(glob)fuzz/**/*.h' ':(glob)fuzz/**/*.cc'
  ':(glob)tests/**/*.h' ':(glob)tests/**/*.cc')

# ---- 1. clang-format on every tracked C++ file.
mapfile -t all_files < <(git ls-files -- "${PATHSPECS[@]}")
echo "lint: clang-format on ${#all_files[@]} files"
if ! clang-format --dry-run -Werror "${all_files[@]}"; then
  echo "lint: clang-format found unformatted code; fix with: make format" >&2
  exit 1
fi

db="$BUILD/compile_commands.json"
if [[ ! -f $db ]]; then
  echo "lint: $db is missing; run: cmake --preset release" >&2
  exit 1
fi

# ---- 2. Thread-safety analysis of every file using the annotated mutexes.
# Sources generated at build time (protoc) must exist for clang to parse the files using them.
cmake --build "$BUILD" --target tessera_generated_sources >/dev/null
if ! JOBS=$JOBS scripts/check_thread_safety.py "$BUILD"; then
  echo "lint: thread-safety analysis failed (guard the access, or annotate: src/common/mutex.h)" >&2
  exit 1
fi

# ---- 3. clang-tidy on the changed files.
if [[ -z ${BASE:-} ]]; then
  if git rev-parse -q --verify origin/main >/dev/null; then
    BASE=$(git merge-base HEAD origin/main)
  elif git rev-parse -q --verify HEAD~1 >/dev/null; then
    BASE=HEAD~1
  else
    echo "lint: no base commit (a single-commit repository): clang-tidy skipped"
    exit 0
  fi
fi
mapfile -t changed < <({
  git diff --name-only --diff-filter=d "$BASE" -- "${PATHSPECS[@]}"
  git ls-files --others --exclude-standard -- "${PATHSPECS[@]}"
} | sort -u)
if [[ ${#changed[@]} -eq 0 ]]; then
  echo "lint: no C++ file changed since $(git rev-parse --short "$BASE"): clang-tidy skipped"
  exit 0
fi

# Absolute paths of the translation units in the compilation database.
mapfile -t known < <(python3 -c 'import json,sys; print("\n".join(e["file"] for e in json.load(open(sys.argv[1]))))' "$db")
declare -A in_db=()
for f in "${known[@]}"; do in_db[$f]=1; done

declare -A units=()
skipped=()
for f in "${changed[@]}"; do
  candidates=("$f")
  if [[ $f == *.h ]]; then candidates=("${f%.h}.cc" "${f%.h}_test.cc"); fi
  found=""
  for c in "${candidates[@]}"; do
    if [[ -n ${in_db[$PWD/$c]:-} ]]; then
      found=$c
      break
    fi
  done
  if [[ -z $found && $f == src/*.h ]]; then
    # A header without its own .cc: the first translation unit that includes it.
    while IFS= read -r c; do
      if [[ -n ${in_db[$PWD/$c]:-} ]]; then
        found=$c
        break
      fi
    done < <(git grep -l --fixed-strings "#include \"${f#src/}\"" -- 'src/*.cc' '*.cc')
  fi
  if [[ -n $found ]]; then units[$found]=1; else skipped+=("$f"); fi
done
if [[ ${#skipped[@]} -gt 0 ]]; then
  echo "lint: clang-tidy skips (no compile commands in $BUILD): ${skipped[*]}"
fi
if [[ ${#units[@]} -eq 0 ]]; then
  echo "lint: nothing for clang-tidy"
  exit 0
fi
echo "lint: clang-tidy on ${#units[@]} files changed since $(git rev-parse --short "$BASE")"
if ! printf '%s\n' "${!units[@]}" | sort |
  xargs -P "$JOBS" -n 1 clang-tidy -p "$BUILD" --quiet 2> >(grep -v ' warnings\? generated\.$' >&2); then
  echo "lint: clang-tidy failed (fix, or suppress one line with // NOLINT(check): reason)" >&2
  exit 1
fi
echo "lint: OK"
