#include "engine/entity_key.h"

#include <fmt/format.h>

#include "common/time_util.h"

namespace tessera::engine {

void AppendKeyPart(const Column& col, size_t row, std::string* out) {
  switch (col.type) {
    case DataType::kString:
      out->append(col.str[row]);
      break;
    case DataType::kInt64:
      fmt::format_to(std::back_inserter(*out), "{}", col.i64[row]);
      break;
    case DataType::kBool:
      out->append(col.i64[row] != 0 ? "true" : "false");
      break;
    case DataType::kDouble:
      fmt::format_to(std::back_inserter(*out), "{}", col.f64[row]);
      break;
    case DataType::kTimestamp:
      out->append(FormatRfc3339Millis(col.i64[row]));
      break;
    default:
      break;
  }
}

}  // namespace tessera::engine
