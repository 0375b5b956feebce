#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "common/arena.h"
#include "common/types.h"
#include "common/value.h"

namespace tessera {

// One typed column of a batch. Exactly one payload vector is used, chosen by `type`:
//   kBool, kInt64, kTimestamp -> i64 (bools as 0/1)
//   kDouble                   -> f64
//   kString                   -> str (views into an Arena owned by whoever produced the batch)
//   kNull                     -> none (every row is NULL)
// `valid[i]` is 0 for NULL. Vectors keep their capacity across Reset(), so reuse allocates
// nothing in steady state.
struct Column {
  DataType type = DataType::kNull;
  std::vector<uint8_t> valid;
  std::vector<int64_t> i64;
  std::vector<double> f64;
  std::vector<std::string_view> str;

  size_t size() const { return valid.size(); }
  bool IsNull(size_t row) const { return valid[row] == 0; }

  // Clears to `n` NULL rows of `t` (payload zeroed / empty).
  void Reset(DataType t, size_t n);

  // Copies row `row` out as an owning Value.
  Value GetValue(size_t row) const;
  // Sets row `row` from a Value (strings are copied into `arena`). REQUIRES: size() > row and a
  // value of this column's type or NULL.
  void SetValue(size_t row, const Value& v, Arena* arena);
};

// A batch of decoded rows: one Column per source column, in schema order, plus per-row event
// time. Rows whose event time is invalid were already rejected and are not in the batch.
struct RowBatch {
  size_t num_rows = 0;
  std::vector<Column> columns;
  std::vector<int64_t> event_time_ms;  // copy of the time column, never NULL
  Arena arena;                         // owns the bytes of string columns

  void Clear() {
    num_rows = 0;
    event_time_ms.clear();
    arena.Reset();
  }
};

}  // namespace tessera
