#!/usr/bin/env bash
# Installs the Debian packages Tessera builds and tests with. Idempotent: installs only what is
# missing, so `make run` and `make test` can call it every time at almost no cost.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  clang-14 libclang-rt-14-dev clang-format clang-tidy
  libjemalloc-dev librocksdb-dev libsimdjson-dev libabsl-dev libfmt-dev libspdlog-dev libcli11-dev
  nlohmann-json3-dev libzstd-dev liblz4-dev libxxhash-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev libboost-dev
  zstd gzip python3 python3-yaml
  python3-pandas python3-sklearn  # the Python client's DataFrames; examples/experiment
  wrk curl  # scripts/bench_serve.sh (HTTP load)
  librdkafka-dev kcat  # the Kafka connector; kcat produces in tests
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc  # the Pub/Sub connector
  libcurl4-openssl-dev libssl-dev libyaml-cpp-dev openssl  # workspaces: Kubernetes client, kubeconfig
  # workspaces local mode: code-server's native modules (scripts/install-code-server.sh), and a
  # real browser for its test
  libkrb5-dev libxkbfile-dev libsecret-1-dev chromium nodejs
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# npm (the console's uPlot, code-server): NodeSource's nodejs includes it and conflicts with
# Debian's npm package, which Debian's own nodejs needs beside it.
if ! command -v npm >/dev/null && ! printf '%s\n' "${missing[@]}" | grep -qx nodejs &&
  ! dpkg-query -W -f='${Version}' nodejs 2>/dev/null | grep -q nodesource; then
  missing+=(npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if ! command -v npm >/dev/null; then  # Debian's nodejs, just installed, comes without npm
  $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
