// Micro-benchmarks of the tile layer: merging, encoding and decoding a tile of the reference
// view (COUNT, SUM, MAX, APPROX_COUNT_DISTINCT, APPROX_PERCENTILE, LAST_VALUE).
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "agg/aggregate.h"
#include "common/column.h"
#include "tile/tile_layout.h"

namespace tessera {
namespace {

using agg::AggKind;

std::unique_ptr<tile::TileLayout> ReferenceLayout() {
  std::vector<std::unique_ptr<agg::AggregateFunction>> aggs;
  auto add = [&](AggKind k, DataType t, agg::AggParams p = {}) {
    aggs.push_back(std::move(agg::MakeAggregate(k, t, p)).value());
  };
  add(AggKind::kCountStar, DataType::kNull);
  add(AggKind::kSum, DataType::kInt64);
  add(AggKind::kMax, DataType::kInt64);
  add(AggKind::kApproxCountDistinct, DataType::kString);
  add(AggKind::kApproxPercentile, DataType::kInt64, agg::AggParams{.q = 0.9});
  add(AggKind::kLastValue, DataType::kString);
  return std::make_unique<tile::TileLayout>(std::move(aggs));
}

// Fills `block` with `rows` random rows.
void Fill(const tile::TileLayout& layout, std::byte* block, int rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Column ints, strs;
  ints.Reset(DataType::kInt64, rows);
  strs.Reset(DataType::kString, rows);
  std::vector<std::string> owned(rows);
  std::vector<int64_t> ts(rows);
  std::vector<uint32_t> sel(rows);
  std::vector<std::byte*> states(rows);
  for (int i = 0; i < rows; ++i) {
    ints.valid[i] = strs.valid[i] = 1;
    ints.i64[i] = static_cast<int64_t>(rng() % 300000);
    owned[i] = fmt::format("track{:08d}", rng() % 100000);
    strs.str[i] = owned[i];
    ts[i] = 1000 + i;
    sel[i] = static_cast<uint32_t>(i);
  }
  const Column* args[] = {nullptr, &ints, &ints, &strs, &ints, &strs};
  for (size_t a = 0; a < layout.num_slots(); ++a) {
    for (int i = 0; i < rows; ++i) states[i] = block + layout.offset(a);
    layout.agg(a).AddBatch(states.data(), args[a], ts.data(), sel.data(), rows);
  }
}

void BM_TileMerge(benchmark::State& state) {
  auto layout = ReferenceLayout();
  tile::OwnedBlock src(*layout), dst(*layout);
  Fill(*layout, src.data(), static_cast<int>(state.range(0)), 1);
  for (auto _ : state) {
    dst.Reset();
    layout->Merge(dst.data(), src.data());
    benchmark::DoNotOptimize(dst.data());
  }
}
BENCHMARK(BM_TileMerge)->Arg(1)->Arg(10)->Arg(100)->Arg(10000);

void BM_TileSerialize(benchmark::State& state) {
  auto layout = ReferenceLayout();
  tile::OwnedBlock b(*layout);
  Fill(*layout, b.data(), static_cast<int>(state.range(0)), 2);
  std::string out;
  for (auto _ : state) {
    out.clear();
    layout->Serialize(b.data(), &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_TileSerialize)->Arg(1)->Arg(10)->Arg(100)->Arg(10000);

void BM_TileDeserializeMerge(benchmark::State& state) {
  auto layout = ReferenceLayout();
  tile::OwnedBlock b(*layout), scratch(*layout), acc(*layout);
  Fill(*layout, b.data(), static_cast<int>(state.range(0)), 3);
  std::string bytes;
  layout->Serialize(b.data(), &bytes);
  for (auto _ : state) {
    scratch.Reset();
    if (!layout->Deserialize(bytes, scratch.data()).ok()) state.SkipWithError("decode failed");
    layout->Merge(acc.data(), scratch.data());
  }
}
BENCHMARK(BM_TileDeserializeMerge)->Arg(1)->Arg(10)->Arg(100)->Arg(10000);

// What a read does with each stored tile since issue 12: merge it from its encoding.
void BM_TileMergeSerialized(benchmark::State& state) {
  auto layout = ReferenceLayout();
  tile::OwnedBlock b(*layout), acc(*layout);
  Fill(*layout, b.data(), static_cast<int>(state.range(0)), 3);
  std::string bytes;
  layout->Serialize(b.data(), &bytes);
  for (auto _ : state) {
    if (!layout->MergeSerialized(bytes, acc.data()).ok()) state.SkipWithError("decode failed");
  }
}
BENCHMARK(BM_TileMergeSerialized)->Arg(1)->Arg(10)->Arg(100)->Arg(10000);

}  // namespace
}  // namespace tessera

BENCHMARK_MAIN();
