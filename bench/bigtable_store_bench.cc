// The Bigtable store against Google's Bigtable emulator (started by the benchmark on a free
// loopback port), beside the embedded RocksDbTileStore doing the same work:
//   * BM_*Flush/N: one flush of N tiles (~200-byte states) per iteration: CommitSlot of a slot the
//     store owns (Bigtable) or one Write (RocksDB). The same N tiles are rewritten each time, so
//     Bigtable's flushes also delete the superseded versions. items_per_second = tiles written/s.
//   * BM_*WindowRead: the reads of a 1-day window of one key, as `tessera get` / `serve` do
//     them: a Scan of the last hour's 12 base tiles and a Scan of the 23 hour tiles before it.
//     items_per_second = window reads/s.
// The emulator is an in-memory Go fake on the same machine: absolute numbers say little about
// Cloud Bigtable (network round trips, replication), but the per-call costs of the store (the
// commit-state reads, the conditional commit, batching) show. RocksDB lives under
// $TESSERA_BENCH_DIR (default: the system temp dir).
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "store/bigtable/bigtable_emulator.h"
#include "store/bigtable/bigtable_tile_store.h"
#include "store/rocksdb/rocksdb_tile_store.h"

namespace tessera::store {
namespace {

constexpr int64_t kBaseMs = 300'000;
constexpr int64_t kHourMs = 3'600'000;
constexpr int64_t kDayStart = int64_t{1'700'000'000'000} / 86'400'000 * 86'400'000;
constexpr uint32_t kView = 7;

std::string State(int i) { return std::string(200, static_cast<char>('a' + i % 26)); }

// Started on first use; null (with `error`) when it cannot run.
BigtableEmulator* Emulator(std::string* error) {
  static std::unique_ptr<BigtableEmulator> emulator;
  static std::string start_error;
  static bool tried = false;
  if (!tried) {
    tried = true;
    absl::StatusOr<std::unique_ptr<BigtableEmulator>> e = BigtableEmulator::Start();
    if (e.ok()) {
      emulator = std::move(*e);
    } else {
      start_error = e.status().ToString();
    }
  }
  *error = start_error;
  return emulator.get();
}

// A store on a fresh table of the shared emulator, or null after SkipWithError.
std::unique_ptr<BigtableTileStore> NewBigtableStore(benchmark::State& state) {
  std::string error;
  BigtableEmulator* emulator = Emulator(&error);
  if (emulator == nullptr) {
    state.SkipWithError(error.c_str());
    return nullptr;
  }
  static int tables = 0;
  const std::string uri = fmt::format("bigtable://bench/bench/t{}", tables++);
  BigtableOptions options;
  options.endpoint = emulator->endpoint();
  absl::StatusOr<BigtableTableSetup> setup = CreateBigtableTable(uri, options, 0);
  if (!setup.ok()) {
    state.SkipWithError(setup.status().ToString().c_str());
    return nullptr;
  }
  absl::StatusOr<std::unique_ptr<BigtableTileStore>> store = OpenBigtableStore(uri, options);
  if (!store.ok()) {
    state.SkipWithError(store.status().ToString().c_str());
    return nullptr;
  }
  return std::move(*store);
}

// A RocksDB store in a fresh directory, removed with it.
struct RocksRun {
  std::filesystem::path dir;
  std::unique_ptr<RocksDbTileStore> store;
  ~RocksRun() {
    store.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

std::unique_ptr<RocksRun> NewRocksStore(benchmark::State& state) {
  static int dirs = 0;
  auto run = std::make_unique<RocksRun>();
  const char* base = std::getenv("TESSERA_BENCH_DIR");
  run->dir =
      std::filesystem::path(base != nullptr ? base : std::filesystem::temp_directory_path()) /
      fmt::format("tessera_bigtable_bench_rocks_{}_{}", ::getpid(), dirs++);
  std::filesystem::remove_all(run->dir);
  absl::StatusOr<std::unique_ptr<RocksDbTileStore>> store =
      RocksDbTileStore::Open(run->dir.string(), RocksDbOptions{});
  if (!store.ok()) {
    state.SkipWithError(store.status().ToString().c_str());
    return nullptr;
  }
  run->store = std::move(*store);
  return run;
}

// N tiles: N / 10 keys × 10 consecutive base tiles.
WriteBatch FlushBatch(int n, int round) {
  WriteBatch b;
  b.tiles.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    b.tiles.emplace_back(TileKey{kView, fmt::format("user{:06}", i / 10), Resolution::kBase,
                                 kDayStart + (i % 10) * kBaseMs},
                         State(i + round));
  }
  b.meta = {{"offset", std::to_string(round)}};
  return b;
}

// One key's day: the 12 base tiles of its last hour and the 23 hour tiles before.
WriteBatch WindowBatch() {
  WriteBatch b;
  for (int i = 0; i < 12; ++i) {
    b.tiles.emplace_back(
        TileKey{kView, "user42", Resolution::kBase, kDayStart + 23 * kHourMs + i * kBaseMs},
        State(i));
  }
  for (int h = 0; h < 23; ++h) {
    b.tiles.emplace_back(TileKey{kView, "user42", Resolution::kHour, kDayStart + h * kHourMs},
                         State(h));
  }
  return b;
}

// The window read; false (after SkipWithError) on an error or a wrong tile count.
bool ReadWindow(benchmark::State& state, TileStore& store) {
  int tiles = 0;
  auto count = [&](int64_t, std::string_view) { ++tiles; };
  absl::Status s = store.Scan(kView, "user42", Resolution::kBase, kDayStart + 23 * kHourMs,
                              kDayStart + 24 * kHourMs, count);
  if (s.ok()) {
    s = store.Scan(kView, "user42", Resolution::kHour, kDayStart, kDayStart + 23 * kHourMs, count);
  }
  if (!s.ok() || tiles != 35) {
    state.SkipWithError(
        fmt::format("window read: {} ({} tiles instead of 35)", s.ToString(), tiles).c_str());
    return false;
  }
  return true;
}

void BM_BigtableFlush(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::unique_ptr<BigtableTileStore> store = NewBigtableStore(state);
  if (store == nullptr) return;
  if (absl::StatusOr<SlotClaim> c = store->ClaimSlot("plays/plays/0"); !c.ok()) {
    state.SkipWithError(c.status().ToString().c_str());
    return;
  }
  int round = 0;
  for (auto _ : state) {
    state.PauseTiming();
    WriteBatch batch = FlushBatch(n, round++);
    state.ResumeTiming();
    if (absl::Status s = store->CommitSlot("plays/plays/0", batch); !s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * n);
}

void BM_RocksDbFlush(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::unique_ptr<RocksRun> run = NewRocksStore(state);
  if (run == nullptr) return;
  int round = 0;
  for (auto _ : state) {
    state.PauseTiming();
    WriteBatch batch = FlushBatch(n, round++);
    state.ResumeTiming();
    if (absl::Status s = run->store->Write(batch); !s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * n);
}

void BM_BigtableWindowRead(benchmark::State& state) {
  std::unique_ptr<BigtableTileStore> store = NewBigtableStore(state);
  if (store == nullptr) return;
  if (absl::Status s = store->Write(WindowBatch()); !s.ok()) {
    state.SkipWithError(s.ToString().c_str());
    return;
  }
  for (auto _ : state) {
    if (!ReadWindow(state, *store)) break;
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_RocksDbWindowRead(benchmark::State& state) {
  std::unique_ptr<RocksRun> run = NewRocksStore(state);
  if (run == nullptr) return;
  if (absl::Status s = run->store->Write(WindowBatch()); !s.ok()) {
    state.SkipWithError(s.ToString().c_str());
    return;
  }
  for (auto _ : state) {
    if (!ReadWindow(state, *run->store)) break;
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_BigtableFlush)
    ->ArgName("tiles")
    ->Arg(100)
    ->Arg(1000)
    ->Arg(10000)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RocksDbFlush)
    ->ArgName("tiles")
    ->Arg(100)
    ->Arg(1000)
    ->Arg(10000)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BigtableWindowRead)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RocksDbWindowRead)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace tessera::store

BENCHMARK_MAIN();
