#!/usr/bin/env python3
"""Clang's thread-safety analysis over every translation unit that uses src/common/mutex.h.

The build uses g++, which ignores ABSL_GUARDED_BY and friends; this runs
`clang++-14 -fsyntax-only -Wthread-safety -Wthread-safety-beta -Werror=thread-safety` on:
  - every .cc that includes "common/mutex.h" itself, and
  - for every header that includes it, the .cc of the same name (else the first .cc including it),
    so inline methods of annotated classes are checked too,
with the include paths, defines and -std of build/release/compile_commands.json. All of them,
every time (not only changed files): a new unlocked access anywhere in an annotated class must
fail. About a second per file, run in parallel.

Usage: scripts/check_thread_safety.py [BUILD_DIR] (default build/release); JOBS (default 2),
CLANGXX (default clang++-14) from the environment.
"""
import concurrent.futures
import json
import os
import shlex
import subprocess
import sys

MUTEX_HEADER = "common/mutex.h"
# -beta adds the lock-order checks of ABSL_ACQUIRED_BEFORE/AFTER.
ANALYSIS_FLAGS = [
    "-fsyntax-only", "-Wthread-safety", "-Wthread-safety-beta", "-Werror=thread-safety"
]


def git_grep_includes(header, pathspecs):
    cmd = ["git", "grep", "-l", "--untracked", "--fixed-strings", f'#include "{header}"', "--"]
    out = subprocess.run(cmd + pathspecs, capture_output=True, text=True, check=False)
    return [line for line in out.stdout.splitlines() if line]


def compile_flags(entry):
    """The flags clang needs to parse the file like the build does (no gcc warning flags)."""
    args = entry.get("arguments") or shlex.split(entry["command"])
    keep = []
    i = 1
    while i < len(args):
        a = args[i]
        if a in ("-I", "-isystem", "-iquote", "-D", "-include"):
            keep += [a, args[i + 1]]
            i += 2
            continue
        if a.startswith(("-I", "-D", "-std=", "-isystem", "-iquote")):
            keep.append(a)
        i += 1
    return keep


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build/release"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.chdir(root)
    db_path = os.path.join(build, "compile_commands.json")
    if not os.path.exists(db_path):
        print(f"thread-safety: {db_path} is missing; run: cmake --preset release", file=sys.stderr)
        return 1
    with open(db_path, encoding="utf-8") as f:
        db = {os.path.relpath(e["file"], root): e for e in json.load(f)}

    cc_specs = ["src/*.cc", "apps/*.cc", "tests/*.cc", "bench/*.cc"]
    units = {f for f in git_grep_includes(MUTEX_HEADER, cc_specs) if f in db}
    for header in git_grep_includes(MUTEX_HEADER, ["src/*.h", "apps/*.h"]):
        same_name = header[:-2] + ".cc"
        if same_name in db:
            units.add(same_name)
            continue
        includers = [f for f in git_grep_includes(header.removeprefix("src/"), cc_specs) if f in db]
        if includers:
            units.add(includers[0])
    if not units:
        print("thread-safety: no translation unit uses " + MUTEX_HEADER)
        return 0

    clangxx = os.environ.get("CLANGXX", "clang++-14")
    jobs = int(os.environ.get("JOBS", "2"))

    def check(unit):
        entry = db[unit]
        cmd = [clangxx] + compile_flags(entry) + ANALYSIS_FLAGS + [entry["file"]]
        r = subprocess.run(cmd, cwd=entry["directory"], capture_output=True, text=True,
                           check=False)
        return unit, r.returncode, r.stderr

    print(f"lint: clang thread-safety analysis on {len(units)} files", flush=True)
    failed = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for unit, rc, err in pool.map(check, sorted(units)):
            if err:
                sys.stderr.write(err)
            if rc != 0:
                failed.append(unit)
    if failed:
        print("thread-safety: analysis failed in: " + " ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
