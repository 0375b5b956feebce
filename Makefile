# Tessera: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
JOBS ?= 2
RELEASE := build/release
TESSERA := $(RELEASE)/apps/tessera

.PHONY: run demo test lint deps build code-server kube-apiserver bench bench-serve bench-kafka bench-pubsub bench-scaleout bench-training-set bench-peer asan fuzz format clean

# The engine live: `tessera run` on a free loopback port fed a steady generated stream; prints
# the web console's URL; Ctrl-C stops everything (scripts/live_demo.py).
run: deps build
	scripts/live_demo.py $(RELEASE)

# The batch walk-through: generate, backfill, read features, a training set (scripts/demo.sh).
demo: deps build
	scripts/demo.sh $(RELEASE)

test: deps lint build code-server kube-apiserver
	ctest --test-dir $(RELEASE) -j$(JOBS) --output-on-failure

# clang-format check of every C++ file, clang-tidy on the C++ files changed since BASE (default:
# merge-base with origin/main, else HEAD~1). See scripts/lint.sh.
lint: deps
	@cmake --preset release >/dev/null
	JOBS=$(JOBS) scripts/lint.sh

deps:
	@scripts/install-deps.sh

build:
	@cmake --preset release >/dev/null
	cmake --build $(RELEASE) -j$(JOBS)

# code-server + Node 24 + playwright-core under out/tools, for `tessera ws up --local` and its
# browser test (idempotent: a no-op once installed).
code-server: deps
	@scripts/install-code-server.sh

# kube-apiserver and kube-controller-manager 1.20.2 built from Debian's source package into
# out/tools/kube-1.20.2 (plus Debian's etcd-server), for the workspaces tests against a real API
# server (idempotent: a no-op once built; a cold build takes ~7-12 minutes on 2 cores).
kube-apiserver: deps
	@scripts/install-kube-apiserver.sh

bench: deps build
	scripts/bench_backfill.sh $(RELEASE)

bench-serve: deps build
	scripts/bench_serve.sh $(RELEASE)

# `tessera run` consuming the `make bench` stream (first 1M events, zstd) from a topic of 8
# partitions on librdkafka's mock cluster; rows/s until the lag is 0. PERF=1 for a profile.
bench-kafka: deps build
	scripts/bench_kafka.sh $(RELEASE)

# Rows/s from the Pub/Sub emulator into durable tiles (the `make bench` view and events).
bench-pubsub: deps build
	scripts/bench_pubsub.py $(RELEASE)

# Rows/s from Kafka (the bench-kafka stream, mock cluster) into Bigtable tiles (the emulator) with
# one `tessera run` worker and with two in one group. The emulator shares this machine's cores:
# a ceiling of the box, not Bigtable's throughput.
bench-scaleout: deps build
	scripts/bench_scaleout.sh $(RELEASE)

# `tessera training-set`: 1M spine rows against 10M events (1M Zipf users, 2 days), 2 views x 4
# windows; wall time and peak RSS. MEMORY_MB=64 forces several passes over the events.
bench-training-set: deps build
	scripts/bench_training_set.sh $(RELEASE)

# Backfill beside a peer in one run: the 48 h high-cardinality stream and the `make bench` stream
# through `tessera backfill` and through Debian's ClickHouse (installed on first use, started on
# free loopback ports, data in a temp dir); both rates and the ratio. RUNS=3 repeats.
bench-peer: deps build
	scripts/bench_peer.sh $(RELEASE)

asan: deps
	@cmake --preset asan >/dev/null
	cmake --build build/asan -j$(JOBS)
	ctest --test-dir build/asan -j$(JOBS) --output-on-failure -E e2e

fuzz: deps
	@cmake --preset fuzz >/dev/null
	cmake --build build/fuzz -j$(JOBS)
	scripts/fuzz_all.sh build/fuzz 30

format:
	git ls-files --cached --others --exclude-standard -- 'src/*.h' 'src/*.cc' 'apps/*.h' 'apps/*.cc' 'bench/*.h' 'bench/*.cc' \
	  'fuzz/*.h' 'fuzz/*.cc' 'tests/*.h' 'tests/*.cc' | xargs clang-format -i

clean:
	rm -rf build out
