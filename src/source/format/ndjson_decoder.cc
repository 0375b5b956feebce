#include "source/format/ndjson_decoder.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "common/errors.h"
#include "common/strings.h"
#include "common/time_util.h"

namespace tessera::source {

static_assert(kChunkPadding >= simdjson::SIMDJSON_PADDING,
              "Chunk padding must cover simdjson's read-ahead");

namespace {

namespace od = simdjson::ondemand;
using simdjson::error_code;

// Deepest nesting accepted inside ignored or misfit values. Kept well below the parser's
// max_depth (1024): simdjson 3.0 on-demand does not bounds-check depth in release builds.
constexpr int kMaxDepth = 512;

inline bool IsBlankChar(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

inline bool IsBlank(const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (!IsBlankChar(p[i])) return false;
  }
  return true;
}

inline uint32_t HashKey(const char* k, size_t len) {
  uint32_t h = static_cast<uint32_t>(len) * 0x9E3779B1u;
  if (len > 0) {
    h ^= static_cast<uint8_t>(k[0]) * 0x85EBCA77u;
    h ^= static_cast<uint8_t>(k[len - 1]) * 0xC2B2AE3Du;
    h ^= static_cast<uint8_t>(k[len / 2]) * 0x27D4EB2Fu;
  }
  return h ^ (h >> 15);
}

// A key as raw bytes of the input if it has no escape sequence. `raw` points after the opening
// quote of a string that stage 1 proved is closed.
inline bool PlainKey(const char* raw, std::string_view* out) {
  for (const char* p = raw;; ++p) {
    if (*p == '"') {
      *out = std::string_view(raw, static_cast<size_t>(p - raw));
      return true;
    }
    if (*p == '\\') return false;
  }
}

// One past the '}' that closes the object a line starts with (after blanks), found by matching
// braces and brackets outside strings; 0 if the line does not start with '{' or never closes it.
size_t ObjectEnd(const char* line, size_t len) {
  size_t i = 0;
  while (i < len && IsBlankChar(line[i])) ++i;
  if (i == len || line[i] != '{') return 0;
  int depth = 0;
  bool in_string = false;
  for (; i < len; ++i) {
    const char c = line[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return i + 1;
    }
  }
  return 0;
}

// JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool IsJsonNumber(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  auto digit = [&](size_t j) { return j < n && s[j] >= '0' && s[j] <= '9'; };
  if (i < n && s[i] == '-') ++i;
  if (!digit(i)) return false;
  if (s[i] == '0') {
    ++i;
  } else {
    while (digit(i)) ++i;
  }
  if (i < n && s[i] == '.') {
    ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  return i == n;
}

struct Number {
  // kBigInt: an integer literal beyond 64 bits (`d` holds its nearest double).
  // kHuge: a valid number no double holds (1e400).
  enum class Kind { kInt64, kUint64, kDouble, kBigInt, kHuge } kind = Kind::kInt64;
  int64_t i = 0;
  uint64_t u = 0;
  double d = 0;
};

// Reads any valid JSON number; numbers that no C++ type holds (1e400) come back as kHuge.
// Fails only on a malformed number. (Not via value::get_number(): in simdjson 3.0.1 it returns
// 0 for floats with more than 19 significant digits.)
error_code ReadNumber(od::value& v, Number* out) {
  if (v.get_int64().get(out->i) == simdjson::SUCCESS) {
    out->kind = Number::Kind::kInt64;
    return simdjson::SUCCESS;
  }
  if (v.get_uint64().get(out->u) == simdjson::SUCCESS) {
    out->kind = Number::Kind::kUint64;
    return simdjson::SUCCESS;
  }
  // Floats, and integers beyond 64 bits (simdjson's double parser still reads them).
  const std::string_view token = TrimRight(v.raw_json_token(), kSpaceTabNewline);
  if (v.get_double().get(out->d) == simdjson::SUCCESS && std::isfinite(out->d)) {
    const bool integer_literal = token.find_first_of(".eE") == std::string_view::npos;
    out->kind = integer_literal ? Number::Kind::kBigInt : Number::Kind::kDouble;
    return simdjson::SUCCESS;
  }
  if (IsJsonNumber(token)) {
    out->kind = Number::Kind::kHuge;
    return simdjson::SUCCESS;
  }
  return simdjson::NUMBER_ERROR;
}

// 2^63 as a double: the first value past int64.
constexpr double kTwoPow63 = 9223372036854775808.0;

inline bool DoubleToInt64(double d, int64_t* out) {
  if (!(d >= -kTwoPow63 && d < kTwoPow63) || std::trunc(d) != d) return false;
  *out = static_cast<int64_t>(d);
  return true;
}

inline bool InTimestampRange(int64_t ms) { return ms >= kMinTimestampMs && ms <= kMaxTimestampMs; }

// Epoch milliseconds of a number (floats truncated toward zero), if in range.
bool NumberToTimestamp(const Number& n, int64_t* out) {
  switch (n.kind) {
    case Number::Kind::kInt64:
      if (!InTimestampRange(n.i)) return false;
      *out = n.i;
      return true;
    case Number::Kind::kDouble: {
      const double t = std::trunc(n.d);
      if (!(t >= static_cast<double>(kMinTimestampMs) &&
            t <= static_cast<double>(kMaxTimestampMs))) {
        return false;
      }
      *out = static_cast<int64_t>(t);
      return true;
    }
    case Number::Kind::kUint64:
    case Number::Kind::kBigInt:
    case Number::Kind::kHuge:
      return false;
  }
  return false;
}

// Walks a value to check it is well-formed JSON (ignored fields and misfits are not read, but a
// line is only accepted if all of it is valid JSON).
error_code Validate(od::value& v, int depth) {
  od::json_type t;
  SIMDJSON_TRY(v.type().get(t));
  switch (t) {
    case od::json_type::object: {
      if (depth >= kMaxDepth) return simdjson::DEPTH_ERROR;
      od::object obj;
      SIMDJSON_TRY(v.get_object().get(obj));
      for (auto field_result : obj) {
        od::field field;
        SIMDJSON_TRY(std::move(field_result).get(field));
        std::string_view key;
        if (!PlainKey(field.key().raw(), &key)) SIMDJSON_TRY(field.unescaped_key().error());
        SIMDJSON_TRY(Validate(field.value(), depth + 1));
      }
      return simdjson::SUCCESS;
    }
    case od::json_type::array: {
      if (depth >= kMaxDepth) return simdjson::DEPTH_ERROR;
      od::array arr;
      SIMDJSON_TRY(v.get_array().get(arr));
      for (auto element_result : arr) {
        od::value element;
        SIMDJSON_TRY(std::move(element_result).get(element));
        SIMDJSON_TRY(Validate(element, depth + 1));
      }
      return simdjson::SUCCESS;
    }
    case od::json_type::string:
      return v.get_string().error();
    case od::json_type::number: {
      Number n;
      return ReadNumber(v, &n);
    }
    case od::json_type::boolean:
      return v.get_bool().error();
    case od::json_type::null: {
      bool is_null = false;
      SIMDJSON_TRY(v.is_null().get(is_null));
      return is_null ? simdjson::SUCCESS : simdjson::N_ATOM_ERROR;
    }
  }
  return simdjson::TAPE_ERROR;
}

std::string_view JsonTypeWithArticle(od::json_type t) {
  switch (t) {
    case od::json_type::object:
      return "an object";
    case od::json_type::array:
      return "an array";
    case od::json_type::string:
      return "a string";
    case od::json_type::number:
      return "a number";
    case od::json_type::boolean:
      return "a boolean";
    case od::json_type::null:
      return "null";
  }
  return "a value";
}

// Shortens user data quoted in messages.
std::string Excerpt(std::string_view s) {
  constexpr size_t kMax = 80;
  if (s.size() <= kMax) return std::string(s);
  return fmt::format("{}...", s.substr(0, kMax));
}

}  // namespace

class NdjsonDecoder::Impl {
 public:
  Impl(std::vector<ColumnDef> columns, int time_column);

  int64_t Decode(std::string_view data, size_t padding_available, int64_t first_line_number,
                 RowBatch* batch, DecodeStats* stats, const RejectFn& on_reject);
  void ResetBatch(RowBatch* batch) const;
  const std::vector<ColumnDef>& columns() const { return columns_; }
  int time_column() const { return time_column_; }
  void set_max_event_time_ms(int64_t ms) { max_event_time_ms_ = ms; }

 private:
  enum class SlotState : uint8_t { kMissing, kNull, kValue, kMisfit };
  // The value of one column in the row being decoded (committed only if the row is accepted).
  struct Slot {
    int64_t i64 = 0;
    double f64 = 0;
    std::string_view str;  // into the line or the parser's string buffer
  };
  // Why the current line was rejected (formatted only when someone listens).
  enum class RowError : uint8_t {
    kNone,
    kJson,          // simdjson error `json_error_` near `error_at_`
    kNotObject,     // root is `root_type_`
    kTrailing,      // content after the object at `error_at_`
    kBom,           // a byte order mark that does not start the input
    kTimeMissing,   // no event-time field
    kTimeInvalid,   // event-time value `time_token_` does not fit
    kTimeFuture,    // event time after max_event_time_ms_
    kNoTimeColumn,  // the schema has no valid time column
  };
  struct NameEntry {
    uint32_t offset = 0;  // into names_
    uint32_t len = 0;
    int32_t column = -1;  // -1: empty slot
  };

  int LookUp(const char* key, size_t len) const;
  void PrepareBatch(RowBatch* batch) const;
  void DecodeLine(const char* line, size_t len, size_t capacity, int64_t line_number,
                  RowBatch* batch, DecodeStats* stats, const RejectFn& on_reject);
  RowError ParseRow(const char* line, size_t len, size_t capacity);
  RowError ParseRowOnce(const char* line, size_t len, size_t capacity);
  error_code ReadField(int column, od::value& value);
  void CommitRow(RowBatch* batch, DecodeStats* stats);
  std::string RejectReason(const char* line, size_t len, int64_t line_number) const;

  std::vector<ColumnDef> columns_;
  int time_column_;
  int64_t max_event_time_ms_ = kMaxTimestampMs;
  std::string names_;  // column names back to back, referenced by table_
  std::vector<NameEntry> table_;
  uint32_t table_mask_ = 0;

  od::parser parser_;
  std::vector<SlotState> state_;
  std::vector<Slot> slots_;
  std::unique_ptr<char[]> scratch_;  // padded copy of unpadded input
  size_t scratch_capacity_ = 0;

  // Details of the last rejection; pointers and views point into the current line.
  RowError last_error_ = RowError::kNone;
  error_code json_error_ = simdjson::SUCCESS;
  const char* error_at_ = nullptr;
  od::json_type root_type_ = od::json_type::object;
  od::json_type time_type_ = od::json_type::null;
  std::string_view time_token_;  // raw JSON of the last event-time value
};

absl::StatusOr<std::unique_ptr<NdjsonDecoder>> NdjsonDecoder::Create(std::vector<ColumnDef> columns,
                                                                     int time_column) {
  if (time_column < 0 || static_cast<size_t>(time_column) >= columns.size()) {
    return InvalidArgument("event-time column index {} is out of range (the schema has {} columns)",
                           time_column, columns.size());
  }
  if (columns[time_column].type != DataType::kTimestamp) {
    return InvalidArgument("event-time column '{}' must be TIMESTAMP, not {}",
                           columns[time_column].name, DataTypeName(columns[time_column].type));
  }
  for (size_t i = 0; i < columns.size(); ++i) {
    switch (columns[i].type) {
      case DataType::kBool:
      case DataType::kInt64:
      case DataType::kDouble:
      case DataType::kString:
      case DataType::kTimestamp:
        break;
      default:
        return InvalidArgument("column '{}' has type {}, which a source cannot have",
                               columns[i].name, DataTypeName(columns[i].type));
    }
    for (size_t j = 0; j < i; ++j) {
      if (columns[j].name == columns[i].name) {
        return InvalidArgument("column '{}' appears twice in the schema", columns[i].name);
      }
    }
  }
  return std::make_unique<NdjsonDecoder>(std::move(columns), time_column);
}

NdjsonDecoder::Impl::Impl(std::vector<ColumnDef> columns, int time_column)
    : columns_(std::move(columns)), time_column_(time_column) {
  if (time_column_ < 0 || static_cast<size_t>(time_column_) >= columns_.size() ||
      columns_[time_column_].type != DataType::kTimestamp) {
    time_column_ = -1;
  }
  size_t table_size = 8;
  while (table_size < 2 * columns_.size()) table_size *= 2;
  table_.assign(table_size, NameEntry{});
  table_mask_ = static_cast<uint32_t>(table_size - 1);
  for (size_t c = 0; c < columns_.size(); ++c) {
    const std::string& name = columns_[c].name;
    if (LookUp(name.data(), name.size()) >= 0) continue;  // duplicate: first one wins
    uint32_t i = HashKey(name.data(), name.size()) & table_mask_;
    while (table_[i].column >= 0) i = (i + 1) & table_mask_;
    table_[i] = NameEntry{static_cast<uint32_t>(names_.size()), static_cast<uint32_t>(name.size()),
                          static_cast<int32_t>(c)};
    names_ += name;
  }
  state_.assign(columns_.size(), SlotState::kMissing);
  slots_.assign(columns_.size(), Slot{});
}

int NdjsonDecoder::Impl::LookUp(const char* key, size_t len) const {
  for (uint32_t i = HashKey(key, len) & table_mask_;; i = (i + 1) & table_mask_) {
    const NameEntry& e = table_[i];
    if (e.column < 0) return -1;
    if (e.len == len && std::memcmp(names_.data() + e.offset, key, len) == 0) return e.column;
  }
}

void NdjsonDecoder::Impl::PrepareBatch(RowBatch* batch) const {
  const size_t n = columns_.size();
  bool consistent = batch->columns.size() == n && batch->event_time_ms.size() == batch->num_rows;
  for (size_t c = 0; consistent && c < n; ++c) {
    consistent =
        batch->columns[c].type == columns_[c].type && batch->columns[c].size() == batch->num_rows;
  }
  if (batch->num_rows > 0 && consistent) return;
  // Empty, or not produced by this decoder: start over (keeping every buffer's capacity).
  if (batch->num_rows > 0) batch->arena.Reset();
  batch->num_rows = 0;
  batch->event_time_ms.clear();
  batch->columns.resize(n);
  for (size_t c = 0; c < n; ++c) batch->columns[c].Reset(columns_[c].type, 0);
}

void NdjsonDecoder::Impl::ResetBatch(RowBatch* batch) const {
  batch->Clear();
  PrepareBatch(batch);
}

int64_t NdjsonDecoder::Impl::Decode(std::string_view data, size_t padding_available,
                                    int64_t first_line_number, RowBatch* batch, DecodeStats* stats,
                                    const RejectFn& on_reject) {
  if (padding_available < simdjson::SIMDJSON_PADDING) {
    const size_t needed = data.size() + simdjson::SIMDJSON_PADDING;
    if (scratch_capacity_ < needed) {
      scratch_capacity_ = std::max(needed, scratch_capacity_ * 2);
      scratch_.reset(new char[scratch_capacity_]());
    }
    if (!data.empty()) std::memcpy(scratch_.get(), data.data(), data.size());
    std::memset(scratch_.get() + data.size(), ' ', simdjson::SIMDJSON_PADDING);
    data = std::string_view(scratch_.get(), data.size());
    padding_available = scratch_capacity_ - data.size();
  }
  PrepareBatch(batch);

  const char* p = data.data();
  const char* const end = p + data.size();
  int64_t line_number = first_line_number;
  while (p < end) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    const char* line_end = nl != nullptr ? nl : end;
    size_t len = static_cast<size_t>(line_end - p);
    if (len > 0 && p[len - 1] == '\r') --len;
    // Every byte from p to the end of the data plus the padding is readable.
    const size_t capacity = static_cast<size_t>(end - p) + padding_available;
    DecodeLine(p, len, capacity, line_number, batch, stats, on_reject);
    ++line_number;
    p = nl != nullptr ? nl + 1 : end;
  }
  return line_number - first_line_number;
}

void NdjsonDecoder::Impl::DecodeLine(const char* line, size_t len, size_t capacity,
                                     int64_t line_number, RowBatch* batch, DecodeStats* stats,
                                     const RejectFn& on_reject) {
  // A UTF-8 byte order mark is skipped where the input starts (line 1 of a file or an HTTP
  // body); anywhere else it rejects the line with a reason that says so.
  bool misplaced_bom = false;
  if (len >= 3 && line[0] == '\xEF' && line[1] == '\xBB' && line[2] == '\xBF') {
    if (line_number == 1) {
      line += 3;
      len -= 3;
      capacity -= 3;
    } else {
      misplaced_bom = true;
    }
  }
  // Fast path: a line that starts with '{' is not blank.
  if (len == 0 || (line[0] != '{' && IsBlank(line, len))) return;
  ++stats->lines;
  last_error_ = misplaced_bom ? RowError::kBom : ParseRow(line, len, capacity);
  if (last_error_ != RowError::kNone) {
    ++stats->rejected;
    stats->future += last_error_ == RowError::kTimeFuture;
    if (on_reject) {
      Rejection rejection;
      rejection.line_number = line_number;
      rejection.reason = RejectReason(line, len, line_number);
      rejection.line = std::string_view(line, len);
      on_reject(rejection);
    }
    return;
  }
  CommitRow(batch, stats);
}

NdjsonDecoder::Impl::RowError NdjsonDecoder::Impl::ParseRow(const char* line, size_t len,
                                                            size_t capacity) {
  const RowError error = ParseRowOnce(line, len, capacity);
  if (error != RowError::kJson) return error;
  // simdjson reports an object followed by more content (`{"a":1} xyz`) as a malformed
  // document ("ended early in the middle of an object") at byte 1. If the line is a balanced
  // object plus non-blank content, say that instead, unless the object itself is malformed.
  const size_t end = ObjectEnd(line, len);
  if (end == 0 || end >= len || IsBlank(line + end, len - end)) return error;
  const RowError object_error = ParseRowOnce(line, end, capacity);
  if (object_error == RowError::kJson) return object_error;
  const char* at = line + end;
  while (IsBlankChar(*at)) ++at;
  error_at_ = at;
  return RowError::kTrailing;
}

NdjsonDecoder::Impl::RowError NdjsonDecoder::Impl::ParseRowOnce(const char* line, size_t len,
                                                                size_t capacity) {
  std::fill(state_.begin(), state_.end(), SlotState::kMissing);
  json_error_ = simdjson::SUCCESS;
  error_at_ = nullptr;

  od::document doc;
  json_error_ = parser_.iterate(simdjson::padded_string_view(line, len, capacity)).get(doc);
  if (json_error_ != simdjson::SUCCESS) return RowError::kJson;

  auto fail = [&](error_code e) {
    json_error_ = e;
    const char* at = nullptr;
    if (doc.current_location().get(at) == simdjson::SUCCESS) error_at_ = at;
    return RowError::kJson;
  };

  od::json_type root_type;
  if (error_code e = doc.type().get(root_type)) return fail(e);
  if (root_type != od::json_type::object) {
    root_type_ = root_type;
    return RowError::kNotObject;
  }
  od::object obj;
  if (error_code e = doc.get_object().get(obj)) return fail(e);
  for (auto field_result : obj) {
    od::field field;
    if (error_code e = std::move(field_result).get(field)) return fail(e);
    std::string_view key;
    if (!PlainKey(field.key().raw(), &key)) {
      if (error_code e = field.unescaped_key().get(key)) return fail(e);
    }
    const int column = LookUp(key.data(), key.size());
    error_code e = column < 0 ? Validate(field.value(), 1) : ReadField(column, field.value());
    if (e != simdjson::SUCCESS) return fail(e);
  }
  // A fully iterated document leaves the iterator at its end; anything else is trailing content.
  const char* trailing = nullptr;
  if (doc.current_location().get(trailing) == simdjson::SUCCESS) {
    error_at_ = trailing;
    return RowError::kTrailing;
  }

  if (time_column_ < 0) return RowError::kNoTimeColumn;
  switch (state_[time_column_]) {
    case SlotState::kValue:
      return slots_[time_column_].i64 > max_event_time_ms_ ? RowError::kTimeFuture
                                                           : RowError::kNone;
    case SlotState::kMissing:
      return RowError::kTimeMissing;
    case SlotState::kNull:
    case SlotState::kMisfit:
      return RowError::kTimeInvalid;
  }
  return RowError::kTimeInvalid;
}

error_code NdjsonDecoder::Impl::ReadField(int column, od::value& value) {
  od::json_type type;
  SIMDJSON_TRY(value.type().get(type));
  if (column == time_column_) {
    time_type_ = type;
    time_token_ = TrimRight(value.raw_json_token(), kSpaceTabNewline);
  }
  SlotState& state = state_[column];
  Slot& slot = slots_[column];
  if (type == od::json_type::null) {
    bool is_null = false;
    SIMDJSON_TRY(value.is_null().get(is_null));
    if (!is_null) return simdjson::N_ATOM_ERROR;
    state = SlotState::kNull;
    return simdjson::SUCCESS;
  }
  switch (columns_[column].type) {
    case DataType::kInt64:
      if (type == od::json_type::number) {
        if (value.get_int64().get(slot.i64) == simdjson::SUCCESS) {
          state = SlotState::kValue;
          return simdjson::SUCCESS;
        }
        Number n;
        SIMDJSON_TRY(ReadNumber(value, &n));
        bool fits = false;
        if (n.kind == Number::Kind::kInt64) {
          slot.i64 = n.i;
          fits = true;
        } else if (n.kind == Number::Kind::kDouble) {
          fits = DoubleToInt64(n.d, &slot.i64);
        }
        state = fits ? SlotState::kValue : SlotState::kMisfit;
        return simdjson::SUCCESS;
      }
      break;
    case DataType::kDouble:
      if (type == od::json_type::number) {
        if (value.get_double().get(slot.f64) == simdjson::SUCCESS && std::isfinite(slot.f64)) {
          state = SlotState::kValue;
          return simdjson::SUCCESS;
        }
        Number n;
        SIMDJSON_TRY(ReadNumber(value, &n));
        state = SlotState::kValue;
        switch (n.kind) {
          case Number::Kind::kInt64:
            slot.f64 = static_cast<double>(n.i);
            break;
          case Number::Kind::kUint64:
            slot.f64 = static_cast<double>(n.u);
            break;
          case Number::Kind::kDouble:
          case Number::Kind::kBigInt:
            slot.f64 = n.d;
            break;
          case Number::Kind::kHuge:
            state = SlotState::kMisfit;
            break;
        }
        return simdjson::SUCCESS;
      }
      break;
    case DataType::kBool:
      if (type == od::json_type::boolean) {
        bool b = false;
        SIMDJSON_TRY(value.get_bool().get(b));
        slot.i64 = b ? 1 : 0;
        state = SlotState::kValue;
        return simdjson::SUCCESS;
      }
      break;
    case DataType::kString:
      if (type == od::json_type::string) {
        SIMDJSON_TRY(value.get_string().get(slot.str));
        state = SlotState::kValue;
        return simdjson::SUCCESS;
      }
      break;
    case DataType::kTimestamp:
      if (type == od::json_type::number) {
        Number n;
        SIMDJSON_TRY(ReadNumber(value, &n));
        state = NumberToTimestamp(n, &slot.i64) ? SlotState::kValue : SlotState::kMisfit;
        return simdjson::SUCCESS;
      }
      if (type == od::json_type::string) {
        std::string_view s;
        SIMDJSON_TRY(value.get_string().get(s));
        std::optional<int64_t> ms = ParseRfc3339Millis(s);
        if (ms.has_value() && InTimestampRange(*ms)) {
          slot.i64 = *ms;
          state = SlotState::kValue;
        } else {
          state = SlotState::kMisfit;
        }
        return simdjson::SUCCESS;
      }
      break;
    default:
      break;
  }
  // The JSON type does not fit the column; the value must still be valid JSON.
  SIMDJSON_TRY(Validate(value, 1));
  state = SlotState::kMisfit;
  return simdjson::SUCCESS;
}

void NdjsonDecoder::Impl::CommitRow(RowBatch* batch, DecodeStats* stats) {
  const size_t n = columns_.size();
  for (size_t c = 0; c < n; ++c) {
    Column& col = batch->columns[c];
    const SlotState state = state_[c];
    const bool valid = state == SlotState::kValue;
    if (state == SlotState::kMisfit) ++stats->field_errors;
    col.valid.push_back(valid ? 1 : 0);
    const Slot& slot = slots_[c];
    switch (columns_[c].type) {
      case DataType::kBool:
      case DataType::kInt64:
      case DataType::kTimestamp:
        col.i64.push_back(valid ? slot.i64 : 0);
        break;
      case DataType::kDouble:
        col.f64.push_back(valid ? slot.f64 : 0.0);
        break;
      case DataType::kString:
        col.str.push_back(valid ? batch->arena.Copy(slot.str) : std::string_view());
        break;
      default:
        break;
    }
  }
  batch->event_time_ms.push_back(slots_[time_column_].i64);
  ++batch->num_rows;
  ++stats->rows;
}

std::string NdjsonDecoder::Impl::RejectReason(const char* line, size_t len,
                                              int64_t line_number) const {
  auto position = [&](const char* at) -> std::string {
    if (at == nullptr || at < line || at > line + len) return "";
    return fmt::format(" at byte {}", at - line + 1);
  };
  switch (last_error_) {
    case RowError::kNone:
      break;
    case RowError::kJson:
      return fmt::format("line {}: invalid JSON{}: {}", line_number, position(error_at_),
                         simdjson::error_message(json_error_));
    case RowError::kNotObject:
      return fmt::format("line {}: expected a JSON object, got {}", line_number,
                         JsonTypeWithArticle(root_type_));
    case RowError::kTrailing: {
      std::string what;
      if (error_at_ != nullptr && error_at_ >= line && error_at_ < line + len) {
        what = ": " + Excerpt(std::string_view(error_at_, line + len - error_at_));
      }
      return fmt::format("line {}: unexpected content after the JSON object{}{}", line_number,
                         position(error_at_), what);
    }
    case RowError::kBom:
      return fmt::format(
          "line {}: a UTF-8 byte order mark (BOM) is only allowed at the start of the input",
          line_number);
    case RowError::kTimeMissing:
      return fmt::format("line {}: missing event-time field '{}'", line_number,
                         columns_[time_column_].name);
    case RowError::kTimeInvalid: {
      std::string got;
      switch (time_type_) {
        case od::json_type::object:
        case od::json_type::array:
          got = std::string(JsonTypeWithArticle(time_type_));
          break;
        case od::json_type::number:
          got = fmt::format("{} (out of range)", Excerpt(time_token_));
          break;
        default:
          got = Excerpt(time_token_);
          break;
      }
      return fmt::format(
          "line {}: field '{}': expected epoch milliseconds or an RFC 3339 string, got {}",
          line_number, columns_[time_column_].name, got);
    }
    case RowError::kTimeFuture:
      return fmt::format(
          "line {}: event time {} is too far in the future (after {}: the clock plus the "
          "source's 'max-future'); rejected so that it cannot move the watermark",
          line_number, FormatRfc3339Millis(slots_[time_column_].i64),
          FormatRfc3339Millis(max_event_time_ms_));
    case RowError::kNoTimeColumn:
      return fmt::format("line {}: the schema has no TIMESTAMP event-time column", line_number);
  }
  return fmt::format("line {}: rejected", line_number);
}

NdjsonDecoder::NdjsonDecoder(std::vector<ColumnDef> columns, int time_column)
    : impl_(std::make_unique<Impl>(std::move(columns), time_column)) {}
NdjsonDecoder::~NdjsonDecoder() = default;
NdjsonDecoder::NdjsonDecoder(NdjsonDecoder&&) noexcept = default;
NdjsonDecoder& NdjsonDecoder::operator=(NdjsonDecoder&&) noexcept = default;

int64_t NdjsonDecoder::Decode(std::string_view data, size_t padding_available,
                              int64_t first_line_number, RowBatch* batch, DecodeStats* stats,
                              const RejectFn& on_reject) {
  return impl_->Decode(data, padding_available, first_line_number, batch, stats, on_reject);
}
void NdjsonDecoder::ResetBatch(RowBatch* batch) const { impl_->ResetBatch(batch); }
const std::vector<ColumnDef>& NdjsonDecoder::columns() const { return impl_->columns(); }
int NdjsonDecoder::time_column() const { return impl_->time_column(); }
void NdjsonDecoder::set_max_event_time_ms(int64_t ms) { impl_->set_max_event_time_ms(ms); }

std::string_view ReasonWithoutLine(const Rejection& r) {
  std::string_view reason = r.reason;
  const std::string prefix = fmt::format("line {}: ", r.line_number);
  if (reason.substr(0, prefix.size()) == prefix) reason.remove_prefix(prefix.size());
  return reason;
}

}  // namespace tessera::source
