#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/json_string.h"  // AppendJsonString, which JSON renderers of values use
#include "common/types.h"

namespace tessera {

// A single SQL value that owns its data. Used off the hot path: literals, finalized aggregate
// results, post-aggregate expressions and JSON output. NULL carries the type it would have had.
class Value {
 public:
  Value() = default;  // untyped NULL
  static Value Null(DataType type = DataType::kNull) {
    Value v;
    v.type_ = type;
    return v;
  }
  static Value Bool(bool b) { return Value(DataType::kBool, Payload(b)); }
  static Value Int64(int64_t i) { return Value(DataType::kInt64, Payload(i)); }
  static Value Double(double d) { return Value(DataType::kDouble, Payload(d)); }
  static Value String(std::string s) { return Value(DataType::kString, Payload(std::move(s))); }
  static Value Timestamp(int64_t ms) { return Value(DataType::kTimestamp, Payload(ms)); }
  static Value List(std::vector<Value> items) {
    return Value(DataType::kList, Payload(std::move(items)));
  }
  // A JSON object. REQUIRES: keys strictly ascending (byte order), so equal maps compare equal.
  static Value Map(std::vector<std::pair<std::string, Value>> entries) {
    return Value(DataType::kMap, Payload(MapEntries{std::move(entries)}));
  }

  DataType type() const { return type_; }
  bool is_null() const { return std::holds_alternative<std::monostate>(payload_); }

  // REQUIRES: !is_null() and the matching type (kTimestamp reads through int64()).
  bool bool_value() const { return std::get<bool>(payload_); }
  int64_t int64() const { return std::get<int64_t>(payload_); }
  double double_value() const { return std::get<double>(payload_); }
  const std::string& string() const { return std::get<std::string>(payload_); }
  const std::vector<Value>& list() const { return std::get<std::vector<Value>>(payload_); }
  const std::vector<std::pair<std::string, Value>>& map() const {
    return std::get<MapEntries>(payload_).entries;
  }

  // Numeric value as double (BIGINT, DOUBLE, TIMESTAMP, BOOLEAN). REQUIRES: !is_null().
  double AsDouble() const;

  // Appends the JSON encoding: numbers as numbers (non-finite doubles as null), timestamps as
  // RFC 3339 strings, lists as arrays, maps as objects, NULL as null.
  void AppendJson(std::string* out) const;
  std::string ToJson() const {
    std::string s;
    AppendJson(&s);
    return s;
  }

  // Human-readable SQL-ish rendering for plans and error messages.
  std::string ToString() const;

  friend bool operator==(const Value& a, const Value& b) {
    return a.type_ == b.type_ && a.payload_ == b.payload_;
  }

 private:
  struct MapEntries {
    std::vector<std::pair<std::string, Value>> entries;
    friend bool operator==(const MapEntries& a, const MapEntries& b) {
      return a.entries == b.entries;
    }
  };
  using Payload = std::variant<std::monostate, bool, int64_t, double, std::string,
                               std::vector<Value>, MapEntries>;
  Value(DataType t, Payload p) : type_(t), payload_(std::move(p)) {}

  DataType type_ = DataType::kNull;
  Payload payload_;
};

}  // namespace tessera
