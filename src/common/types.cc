#include "common/types.h"

namespace tessera {

std::string_view DataTypeName(DataType type) {
  switch (type) {
    case DataType::kNull:
      return "NULL";
    case DataType::kBool:
      return "BOOLEAN";
    case DataType::kInt64:
      return "BIGINT";
    case DataType::kDouble:
      return "DOUBLE";
    case DataType::kString:
      return "STRING";
    case DataType::kTimestamp:
      return "TIMESTAMP";
    case DataType::kList:
      return "LIST";
    case DataType::kMap:
      return "MAP";
  }
  return "?";
}

}  // namespace tessera
