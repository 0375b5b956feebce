// Micro-benchmark of the ingest-path expression work of a typical view: a WHERE predicate and
// six aggregate arguments evaluated over 4096-row batches (the reference view of
// docs/architecture.md plus a few string and arithmetic arguments). Reports rows/s.

#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "sql/expr.h"
#include "sql/plan.h"

namespace tessera::sql {
namespace {

constexpr size_t kRows = 4096;

void BM_ViewExpressions(benchmark::State& state) {
  absl::StatusOr<Catalog> catalog = ParseCatalog(R"sql(
    CREATE SOURCE plays (user_id STRING, track_id STRING, ms_played BIGINT, skipped BOOLEAN,
                         ts TIMESTAMP);
    CREATE FEATURE VIEW v AS
    SELECT user_id, COUNT(*), SUM(ms_played), APPROX_COUNT_DISTINCT(track_id),
           SUM(CASE WHEN skipped THEN 1 ELSE 0 END), AVG(ms_played / 1000.0),
           MAX(LOWER(track_id)), SUM(ms_played * 2 + 1)
    FROM plays WHERE ms_played >= 30000 AND NOT skipped OR track_id IN ('a', 'b')
    GROUP BY user_id)sql");
  if (!catalog.ok()) {
    state.SkipWithError(std::string(catalog.status().message()).c_str());
    return;
  }
  const ViewDef& view = catalog->views[0];
  std::vector<ExprEvaluator> evaluators;
  evaluators.emplace_back(*view.where);
  for (const AggregateCall& a : view.aggregates) {
    if (a.arg) {
      evaluators.emplace_back(*a.arg);
    }
  }
  Arena data_arena;
  std::vector<Column> columns(5);
  columns[0].Reset(DataType::kString, kRows);
  columns[1].Reset(DataType::kString, kRows);
  columns[2].Reset(DataType::kInt64, kRows);
  columns[3].Reset(DataType::kBool, kRows);
  columns[4].Reset(DataType::kTimestamp, kRows);
  std::mt19937_64 rng(42);
  for (size_t i = 0; i < kRows; ++i) {
    std::string track = "Track" + std::to_string(rng() % 1000);
    columns[0].SetValue(i, Value::String("user" + std::to_string(rng() % 100)), &data_arena);
    columns[1].SetValue(i, Value::String(track), &data_arena);
    columns[2].SetValue(i, Value::Int64(static_cast<int64_t>(rng() % 300000)), &data_arena);
    columns[3].SetValue(i, Value::Bool(rng() % 4 == 0), &data_arena);
    columns[4].SetValue(i, Value::Timestamp(static_cast<int64_t>(i)), &data_arena);
  }
  Arena arena;
  for (auto _ : state) {
    arena.Reset();
    for (ExprEvaluator& e : evaluators) {
      benchmark::DoNotOptimize(&e.Evaluate(columns, kRows, &arena));
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kRows));
  state.counters["exprs"] = static_cast<double>(evaluators.size());
}
BENCHMARK(BM_ViewExpressions);

}  // namespace
}  // namespace tessera::sql

BENCHMARK_MAIN();
