#include "common/value.h"

#include <fmt/format.h>

#include <cmath>

#include "common/time_util.h"

namespace tessera {

double Value::AsDouble() const {
  switch (type_) {
    case DataType::kBool:
      return bool_value() ? 1.0 : 0.0;
    case DataType::kInt64:
    case DataType::kTimestamp:
      return static_cast<double>(int64());
    case DataType::kDouble:
      return double_value();
    default:
      return std::nan("");
  }
}

void Value::AppendJson(std::string* out) const {
  if (is_null()) {
    out->append("null");
    return;
  }
  switch (type_) {
    case DataType::kBool:
      out->append(bool_value() ? "true" : "false");
      return;
    case DataType::kInt64:
      fmt::format_to(std::back_inserter(*out), "{}", int64());
      return;
    case DataType::kDouble: {
      double d = double_value();
      if (!std::isfinite(d)) {
        out->append("null");
      } else {
        fmt::format_to(std::back_inserter(*out), "{}", d);
      }
      return;
    }
    case DataType::kString:
      AppendJsonString(string(), out);
      return;
    case DataType::kTimestamp:
      AppendJsonString(FormatRfc3339Millis(int64()), out);
      return;
    case DataType::kList: {
      out->push_back('[');
      bool first = true;
      for (const Value& v : list()) {
        if (!first) out->push_back(',');
        first = false;
        v.AppendJson(out);
      }
      out->push_back(']');
      return;
    }
    case DataType::kMap: {
      out->push_back('{');
      bool first = true;
      for (const auto& [key, v] : map()) {
        if (!first) out->push_back(',');
        first = false;
        AppendJsonString(key, out);
        out->push_back(':');
        v.AppendJson(out);
      }
      out->push_back('}');
      return;
    }
    case DataType::kNull:
      out->append("null");
      return;
  }
}

std::string Value::ToString() const {
  if (is_null()) return "NULL";
  switch (type_) {
    case DataType::kString: {
      std::string s = "'";
      for (char c : string()) {
        if (c == '\'') s.push_back('\'');
        s.push_back(c);
      }
      s.push_back('\'');
      return s;
    }
    case DataType::kTimestamp:
      return "TIMESTAMP '" + FormatRfc3339Millis(int64()) + "'";
    default:
      return ToJson();
  }
}

}  // namespace tessera
