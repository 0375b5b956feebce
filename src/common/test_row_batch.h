#pragma once

// Test-only: compares two row batches value by value (header-only; test targets link GoogleTest).

#include <gtest/gtest.h>

#include "common/column.h"

namespace tessera::test_util {

// Same rows: count, event times, column types and every value.
inline void ExpectSameRows(const RowBatch& a, const RowBatch& b) {
  ASSERT_EQ(a.num_rows, b.num_rows);
  EXPECT_EQ(a.event_time_ms, b.event_time_ms);
  ASSERT_EQ(a.columns.size(), b.columns.size());
  for (size_t c = 0; c < a.columns.size(); ++c) {
    EXPECT_EQ(a.columns[c].type, b.columns[c].type);
    ASSERT_EQ(a.columns[c].size(), a.num_rows);
    ASSERT_EQ(b.columns[c].size(), b.num_rows);
    for (size_t r = 0; r < a.num_rows; ++r) {
      EXPECT_EQ(a.columns[c].GetValue(r), b.columns[c].GetValue(r))
          << "column " << c << " row " << r;
    }
  }
}

}  // namespace tessera::test_util
