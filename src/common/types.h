#pragma once

#include <cstdint>
#include <string_view>

namespace tessera {

// Logical SQL types. kNull is the type of a bare NULL literal; kList only appears as the result
// of LAST_K / TOP_K (never as a column type).
enum class DataType : uint8_t {
  kNull = 0,
  kBool = 1,
  kInt64 = 2,
  kDouble = 3,
  kString = 4,
  kTimestamp = 5,  // epoch milliseconds, UTC
  kList = 6,
};

std::string_view DataTypeName(DataType type);

inline bool IsNumeric(DataType t) { return t == DataType::kInt64 || t == DataType::kDouble; }

}  // namespace tessera
