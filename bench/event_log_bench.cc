// Micro-benchmark of the embedded event log (HTTP ingest durability): concurrent durable Appends
// of ~1.3 MB NDJSON batches (10k rows) into a RocksDbTileStore, group-committed by RocksDB.
// Reports appends/s, rows/s (items_per_second), MB/s and the WAL fsyncs RocksDB performed.
// With /consumer:1 a background thread follows the log and trims what it read, as the
// aggregator does after a tile flush.
//
// The DB lives under $TESSERA_BENCH_DIR (default: the system temp dir): point it at the disk
// you care about; fsync cost is what this measures.
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "store/rocksdb/rocksdb_tile_store.h"

namespace tessera::store {
namespace {

constexpr int kRowsPerBatch = 10000;

// 10k NDJSON rows of the reference `plays` source, ~1.3 MB.
const std::string& Payload() {
  static const std::string payload = [] {
    std::string out;
    for (int i = 0; i < kRowsPerBatch; ++i) {
      out += fmt::format(
          "{{\"user_id\":\"user{:07}\",\"track_id\":\"track{:08}\",\"ms_played\":{},"
          "\"skipped\":{},\"ts\":{},\"device\":\"mobile\"}}\n",
          (i * 7919) % 1000000, (i * 104729) % 10000000, 30000 + i % 200000,
          i % 3 == 0 ? "true" : "false", int64_t{1700000000000} + i * 37);
    }
    return out;
  }();
  return payload;
}

// Shared by the threads of one benchmark run; set up and torn down by thread 0 (Google
// Benchmark starts and stops all threads of a run together).
struct Run {
  std::filesystem::path dir;
  std::unique_ptr<RocksDbTileStore> store;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> next_batch{0};
  std::thread consumer;
  uint64_t synced_before = 0;
};
Run* g_run = nullptr;

void ConsumeAndTrim(Run* run) {
  uint64_t pos = 0;
  while (!run->stop.load()) {
    uint64_t bytes = 0;
    absl::Status s = run->store->Read("plays", pos, size_t{16} << 20,
                                      [&](uint64_t seq, std::string_view payload) {
                                        pos = seq;
                                        bytes += payload.size();
                                      });
    if (s.ok() && bytes > 0) s = run->store->Trim("plays", pos);
    if (!s.ok()) {
      fmt::print(stderr, "consumer: {}\n", s.ToString());
      return;
    }
    if (bytes == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void BM_DurableAppend(benchmark::State& state) {
  const bool consumer = state.range(0) != 0;
  const std::string& payload = Payload();
  if (state.thread_index() == 0) {
    g_run = new Run();
    const char* base = std::getenv("TESSERA_BENCH_DIR");
    g_run->dir = std::filesystem::path(base != nullptr ? base : "/tmp") /
                 fmt::format("tessera_event_log_bench_{}", ::getpid());
    std::filesystem::remove_all(g_run->dir);
    RocksDbOptions options;
    options.statistics = true;
    absl::StatusOr<std::unique_ptr<RocksDbTileStore>> store =
        RocksDbTileStore::Open(g_run->dir.string(), options);
    if (!store.ok()) {
      state.SkipWithError(store.status().ToString().c_str());
    } else {
      g_run->store = std::move(*store);
      g_run->synced_before = g_run->store->TickerCount("rocksdb.wal.synced");
      if (consumer) g_run->consumer = std::thread(ConsumeAndTrim, g_run);
    }
  }
  for (auto _ : state) {
    if (g_run->store == nullptr) break;
    const uint64_t batch = g_run->next_batch.fetch_add(1);
    absl::StatusOr<AppendResult> r =
        g_run->store->Append("plays", fmt::format("batch-{}", batch), payload, kRowsPerBatch, 0);
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kRowsPerBatch);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(payload.size()));
  state.counters["appends_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  if (state.thread_index() == 0) {
    if (g_run->store != nullptr) {
      const uint64_t appends = g_run->next_batch.load();
      const uint64_t syncs = g_run->store->TickerCount("rocksdb.wal.synced") - g_run->synced_before;
      state.counters["fsyncs"] = static_cast<double>(syncs);
      state.counters["appends_per_fsync"] =
          syncs == 0 ? 0.0 : static_cast<double>(appends) / static_cast<double>(syncs);
    }
    g_run->stop.store(true);
    if (g_run->consumer.joinable()) g_run->consumer.join();
    g_run->store.reset();
    std::filesystem::remove_all(g_run->dir);
    delete g_run;
    g_run = nullptr;
  }
}

// 40 appends (~52 MB) per thread per run.
BENCHMARK(BM_DurableAppend)
    ->ArgName("consumer")
    ->Arg(1)
    ->Threads(1)
    ->Threads(8)
    ->Threads(32)
    ->Iterations(40)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DurableAppend)
    ->ArgName("consumer")
    ->Arg(0)
    ->Threads(8)
    ->Iterations(40)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tessera::store

BENCHMARK_MAIN();
