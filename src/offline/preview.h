#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "sql/plan.h"

namespace tessera::offline {

struct PreviewOptions {
  std::vector<std::string> inputs;  // event files (NDJSON, .gz/.zst), replayed in this order
  std::string view;
  std::vector<std::string> keys;  // text form (engine/entity_key.h); empty: the first keys seen
  size_t sample_keys = 5;         // how many keys to show when `keys` is empty
  std::optional<int64_t> at;      // nullopt: the end of the events (max event time + 1 ms)
  std::string windows = "5m,1h,6h,1d";
  std::optional<int64_t> max_future_ms;  // as TrainingSetOptions
  int threads = 0;
  size_t memory_budget_bytes = size_t{1} << 30;
  const Clock* clock = SystemClock::Default();
};

// A new view checked over history without writing a DB: the view's features at one time for a
// few keys, and per (feature, window) statistics over every key the events have — non-NULL
// count, NULLs, min, p50, p99 and max of numeric values (percentiles from a KLL sketch, ~1% rank
// error). The same point-in-time semantics as training sets (offline/pit_engine.h): at time t
// each window holds the rows with align_down(t − W, T) <= ts < t. Returns the report as text.
absl::StatusOr<std::string> BuildPreview(const sql::Catalog& catalog,
                                         const PreviewOptions& options);

}  // namespace tessera::offline
