// Micro-benchmarks of the aggregate functions: AddBatch over 4096-row batches (into one state,
// and spread over 1024 states as a keyed tile would), Merge, Serialize and Deserialize.
//
//   build/release/bench/agg_bench --benchmark_filter=AddBatch
// items/s of the AddBatch benchmarks is rows/s; ns/row = 1e9 / items_per_second.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "agg/aggregate.h"
#include "common/column.h"

namespace tessera::agg {
namespace {

constexpr size_t kBatchRows = 4096;

struct BenchCase {
  const char* name;
  AggKind kind;
  DataType type;
  AggParams params;
  DataType type2 = DataType::kNull;  // SUM_BY: the bucket, the same column as x here
};

const BenchCase kCases[] = {
    {"COUNT_STAR", AggKind::kCountStar, DataType::kNull, {}},
    // The engine's slot in every tile (engine/catalog_store.h): reads the event times only.
    {"NEWEST_EVENT_TIME", AggKind::kNewestEventTime, DataType::kNull, {}},
    {"COUNT_STRING", AggKind::kCount, DataType::kString, {}},
    {"SUM_BIGINT", AggKind::kSum, DataType::kInt64, {}},
    {"SUM_DOUBLE", AggKind::kSum, DataType::kDouble, {}},
    {"MIN_BIGINT", AggKind::kMin, DataType::kInt64, {}},
    {"MAX_STRING", AggKind::kMax, DataType::kString, {}},
    {"AVG_DOUBLE", AggKind::kAvg, DataType::kDouble, {}},
    {"STDDEV_DOUBLE", AggKind::kStddevSamp, DataType::kDouble, {}},
    {"FIRST_VALUE_STRING", AggKind::kFirstValue, DataType::kString, {}},
    {"LAST_VALUE_BIGINT", AggKind::kLastValue, DataType::kInt64, {}},
    {"LAST_K10_STRING", AggKind::kLastK, DataType::kString, {.k = 10}},
    {"APPROX_COUNT_DISTINCT_STRING", AggKind::kApproxCountDistinct, DataType::kString, {}},
    {"APPROX_COUNT_DISTINCT_BIGINT", AggKind::kApproxCountDistinct, DataType::kInt64, {}},
    {"APPROX_PERCENTILE_DOUBLE", AggKind::kApproxPercentile, DataType::kDouble, {.q = 0.9}},
    {"TOP_K10_STRING", AggKind::kTopK, DataType::kString, {.k = 10}},
    {"COUNT_BY_BOOLEAN", AggKind::kCountBy, DataType::kBool, {}},
    // 20k distinct buckets: the cap's reductions all the time (the worst case).
    {"COUNT_BY_STRING", AggKind::kCountBy, DataType::kString, {}},
    {"SUM_BY_BIGINT_BIGINT", AggKind::kSumBy, DataType::kInt64, {}, DataType::kInt64},
    {"HISTOGRAM_LOG10_DOUBLE", AggKind::kApproxHistogram, DataType::kDouble, {.bins = "log10"}},
    {"APPROX_TOP_K10_STRING", AggKind::kApproxTopK, DataType::kString, {.k = 10}},
    {"EXP_DECAY_SUM_1D_DOUBLE",
     AggKind::kExpDecaySum,
     DataType::kDouble,
     {.half_life_ms = 86'400'000}},
    {"EXP_DECAY_COUNT_1H", AggKind::kExpDecayCount, DataType::kNull, {.half_life_ms = 3'600'000}},
};

// The argument columns of `fn` over `column` (SUM_BY reads it as x and as the bucket).
AggArgs ArgsOf(const AggregateFunction& fn, const Column& column) {
  if (fn.kind() == AggKind::kCountStar || fn.kind() == AggKind::kNewestEventTime ||
      fn.kind() == AggKind::kExpDecayCount)
    return {};
  return {&column, fn.kind() == AggKind::kSumBy ? &column : nullptr};
}

// Track-id-like strings over a vocabulary of 20k values; ~5% NULLs; increasing event times.
struct Batch {
  Column column;
  std::vector<int64_t> event_time;
  std::vector<std::string> storage;

  Batch(DataType type, uint64_t seed) {
    std::mt19937_64 rng(seed);
    DataType t = type == DataType::kNull ? DataType::kInt64 : type;
    column.Reset(t, kBatchRows);
    storage.resize(kBatchRows);
    for (size_t i = 0; i < kBatchRows; ++i) {
      event_time.push_back(1'700'000'000'000 + static_cast<int64_t>(i * 3 + rng() % 5));
      if (rng() % 20 == 0) continue;
      column.valid[i] = 1;
      uint64_t r = rng() % 20'000;
      switch (t) {
        case DataType::kInt64:
        case DataType::kTimestamp:
          column.i64[i] = static_cast<int64_t>(r * 1000 + rng() % 1000);
          break;
        case DataType::kBool:
          column.i64[i] = static_cast<int64_t>(r & 1);
          break;
        case DataType::kDouble:
          column.f64[i] = static_cast<double>(r) * 0.37;
          break;
        case DataType::kString:
          storage[i] = "spotify:track:" + std::to_string(r * 7919);
          column.str[i] = storage[i];
          break;
        default:
          break;
      }
    }
  }
};

// A set of Init()'ed states in one aligned buffer.
class States {
 public:
  States(const AggregateFunction& fn, size_t n) : fn_(fn), n_(n) {
    stride_ = (fn.state_size() + fn.state_align() - 1) / fn.state_align() * fn.state_align();
    buf_.resize(stride_ * n + 64);
    void* aligned = buf_.data();
    size_t space = buf_.size();
    base_ = static_cast<std::byte*>(std::align(64, stride_ * n, aligned, space));
    for (size_t i = 0; i < n_; ++i) fn_.Init(at(i));
  }
  ~States() {
    for (size_t i = 0; i < n_; ++i) fn_.Destroy(at(i));
  }
  std::byte* at(size_t i) { return base_ + i * stride_; }

 private:
  const AggregateFunction& fn_;
  size_t n_;
  size_t stride_;
  std::vector<std::byte> buf_;
  std::byte* base_;
};

std::unique_ptr<AggregateFunction> MakeOrDie(const BenchCase& c) {
  auto fn = MakeAggregate(c.kind, c.type, c.type2, c.params);
  if (!fn.ok()) std::abort();
  return *std::move(fn);
}

void AddAll(const AggregateFunction& fn, std::byte* state, const Batch& batch) {
  std::vector<std::byte*> ptrs(kBatchRows, state);
  std::vector<uint32_t> rows(kBatchRows);
  for (uint32_t i = 0; i < kBatchRows; ++i) rows[i] = i;
  fn.AddBatch(ptrs.data(), ArgsOf(fn, batch.column), batch.event_time.data(), rows.data(),
              kBatchRows);
}

void BM_AddBatch(benchmark::State& st, const BenchCase& c, size_t num_states) {
  auto fn = MakeOrDie(c);
  Batch batch(c.type, 1);
  States states(*fn, num_states);
  std::mt19937_64 rng(2);
  std::vector<std::byte*> ptrs(kBatchRows);
  std::vector<uint32_t> rows(kBatchRows);
  for (uint32_t i = 0; i < kBatchRows; ++i) {
    rows[i] = i;
    ptrs[i] = states.at(num_states == 1 ? 0 : rng() % num_states);
  }
  const AggArgs args = ArgsOf(*fn, batch.column);
  for (auto _ : st) {
    fn->AddBatch(ptrs.data(), args, batch.event_time.data(), rows.data(), kBatchRows);
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * kBatchRows));
}

// Merges a state of 4096 rows into a state of another 4096 rows (fresh destination each time).
void BM_Merge(benchmark::State& st, const BenchCase& c) {
  auto fn = MakeOrDie(c);
  Batch a(c.type, 3), b(c.type, 4);
  States src(*fn, 1), base(*fn, 1);
  AddAll(*fn, src.at(0), a);
  AddAll(*fn, base.at(0), b);
  std::string base_bytes;
  fn->Serialize(base.at(0), &base_bytes);
  std::optional<States> dst;
  for (auto _ : st) {
    st.PauseTiming();
    dst.reset();
    dst.emplace(*fn, 1);
    std::string_view in = base_bytes;
    if (!fn->Deserialize(&in, dst->at(0)).ok()) std::abort();
    st.ResumeTiming();
    fn->Merge(dst->at(0), src.at(0));
  }
}

void BM_Serialize(benchmark::State& st, const BenchCase& c) {
  auto fn = MakeOrDie(c);
  Batch batch(c.type, 5);
  States s(*fn, 1);
  AddAll(*fn, s.at(0), batch);
  std::string out;
  for (auto _ : st) {
    out.clear();
    fn->Serialize(s.at(0), &out);
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["bytes"] = static_cast<double>(out.size());
}

void BM_Deserialize(benchmark::State& st, const BenchCase& c) {
  auto fn = MakeOrDie(c);
  Batch batch(c.type, 6);
  States s(*fn, 1);
  AddAll(*fn, s.at(0), batch);
  std::string bytes;
  fn->Serialize(s.at(0), &bytes);
  States t(*fn, 1);
  for (auto _ : st) {
    std::string_view in = bytes;
    if (!fn->Deserialize(&in, t.at(0)).ok()) std::abort();
  }
}

void BM_Finalize(benchmark::State& st, const BenchCase& c) {
  auto fn = MakeOrDie(c);
  Batch batch(c.type, 7);
  States s(*fn, 1);
  AddAll(*fn, s.at(0), batch);
  for (auto _ : st) benchmark::DoNotOptimize(fn->Finalize(s.at(0)));
}

void RegisterAll() {
  for (const BenchCase& c : kCases) {
    std::string name = c.name;
    benchmark::RegisterBenchmark(("AddBatch/1state/" + name).c_str(), BM_AddBatch, c, 1);
    benchmark::RegisterBenchmark(("AddBatch/1024states/" + name).c_str(), BM_AddBatch, c, 1024);
    benchmark::RegisterBenchmark(("Merge/" + name).c_str(), BM_Merge, c);
    benchmark::RegisterBenchmark(("Serialize/" + name).c_str(), BM_Serialize, c);
    benchmark::RegisterBenchmark(("Deserialize/" + name).c_str(), BM_Deserialize, c);
    benchmark::RegisterBenchmark(("Finalize/" + name).c_str(), BM_Finalize, c);
  }
}

}  // namespace
}  // namespace tessera::agg

int main(int argc, char** argv) {
  tessera::agg::RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
