#pragma once

#include <cstdint>
#include <string_view>

namespace tessera {

// Logical SQL types. kNull is the type of a bare NULL literal. kList and kMap only appear as
// aggregate results (never as column types): kList for LAST_K / TOP_K / APPROX_TOP_K, kMap (a JSON
// object with string keys, in key order) for the bucketed aggregates and APPROX_HISTOGRAM.
enum class DataType : uint8_t {
  kNull = 0,
  kBool = 1,
  kInt64 = 2,
  kDouble = 3,
  kString = 4,
  kTimestamp = 5,  // epoch milliseconds, UTC
  kList = 6,
  kMap = 7,
};

std::string_view DataTypeName(DataType type);

inline bool IsNumeric(DataType t) { return t == DataType::kInt64 || t == DataType::kDouble; }

// kList or kMap: values that expressions pass through but do not compute on.
inline bool IsNested(DataType t) { return t == DataType::kList || t == DataType::kMap; }

}  // namespace tessera
