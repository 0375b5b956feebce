#include "common/column.h"

namespace tessera {

void Column::Reset(DataType t, size_t n) {
  type = t;
  valid.assign(n, 0);
  i64.clear();
  f64.clear();
  str.clear();
  switch (t) {
    case DataType::kBool:
    case DataType::kInt64:
    case DataType::kTimestamp:
      i64.assign(n, 0);
      break;
    case DataType::kDouble:
      f64.assign(n, 0.0);
      break;
    case DataType::kString:
      str.assign(n, std::string_view());
      break;
    default:
      break;
  }
}

Value Column::GetValue(size_t row) const {
  if (valid[row] == 0) return Value::Null(type);
  switch (type) {
    case DataType::kBool:
      return Value::Bool(i64[row] != 0);
    case DataType::kInt64:
      return Value::Int64(i64[row]);
    case DataType::kTimestamp:
      return Value::Timestamp(i64[row]);
    case DataType::kDouble:
      return Value::Double(f64[row]);
    case DataType::kString:
      return Value::String(std::string(str[row]));
    default:
      return Value::Null(type);
  }
}

void Column::SetValue(size_t row, const Value& v, Arena* arena) {
  if (v.is_null()) {
    valid[row] = 0;
    return;
  }
  valid[row] = 1;
  switch (type) {
    case DataType::kBool:
      i64[row] = v.bool_value() ? 1 : 0;
      break;
    case DataType::kInt64:
    case DataType::kTimestamp:
      i64[row] = v.int64();
      break;
    case DataType::kDouble:
      f64[row] = v.double_value();
      break;
    case DataType::kString:
      str[row] = arena->Copy(v.string());
      break;
    default:
      valid[row] = 0;
      break;
  }
}

}  // namespace tessera
