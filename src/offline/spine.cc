#include "offline/spine.h"

#include <fmt/ranges.h>
#include <simdjson.h>

#include <charconv>
#include <cmath>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "common/arena.h"
#include "common/column.h"
#include "common/errors.h"
#include "common/json_string.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/value.h"
#include "common/varint.h"
#include "engine/entity_key.h"
#include "offline/csv.h"
#include "source/format/line_reader.h"

namespace tessera::offline {

namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// A spine value: JSON (NDJSON) or text (CSV).
struct Cell {
  const simdjson::dom::element* json = nullptr;
  std::string_view text;
  bool missing = false;

  bool IsNull() const {
    if (missing) return true;
    if (json != nullptr) return json->is_null();
    return text.empty();
  }
  // How to show the value in an error message.
  std::string Show() const {
    if (json != nullptr) return simdjson::minify(*json);
    std::string s;
    AppendJsonString(text, &s);
    return s;
  }
};

std::optional<int64_t> ParseInt(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::optional<double> ParseDouble(std::string_view s) {
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty() || !std::isfinite(v)) {
    return std::nullopt;
  }
  return v;
}

// An integral double inside the int64 range, as the event decoder takes it for BIGINT.
std::optional<int64_t> IntegralDouble(double d) {
  if (!std::isfinite(d) || d != std::trunc(d) || d < -9.2233720368547758e18 ||
      d >= 9.2233720368547758e18) {
    return std::nullopt;
  }
  return static_cast<int64_t>(d);
}

std::optional<int64_t> TimeFromCell(const Cell& c) {
  std::optional<int64_t> ms;
  if (c.json != nullptr) {
    int64_t i = 0;
    double d = 0;
    std::string_view s;
    if (c.json->get_int64().get(i) == simdjson::SUCCESS) {
      ms = i;
    } else if (c.json->get_double().get(d) == simdjson::SUCCESS && std::isfinite(d) &&
               std::abs(d) < 9.2e18) {
      ms = static_cast<int64_t>(d);  // truncated toward zero, as event times are
    } else if (c.json->get_string().get(s) == simdjson::SUCCESS) {
      ms = ParseRfc3339Millis(s);
    }
  } else {
    ms = ParseInt(c.text);
    if (!ms) ms = ParseRfc3339Millis(c.text);
  }
  if (ms && (*ms < kMinTimestampMs || *ms > kMaxTimestampMs)) return std::nullopt;
  return ms;
}

// The value of a key column of `type`, or nullopt when the cell does not fit the type.
std::optional<Value> KeyValue(const Cell& c, DataType type) {
  std::string_view s;
  const bool is_string = c.json == nullptr || c.json->get_string().get(s) == simdjson::SUCCESS;
  if (c.json == nullptr) s = c.text;
  switch (type) {
    case DataType::kString:
      if (is_string) return Value::String(std::string(s));
      if (c.json->is_array() || c.json->is_object()) return std::nullopt;
      return Value::String(simdjson::minify(*c.json));
    case DataType::kInt64: {
      if (is_string) {
        if (auto i = ParseInt(s)) return Value::Int64(*i);
        return std::nullopt;
      }
      int64_t i = 0;
      double d = 0;
      if (c.json->get_int64().get(i) == simdjson::SUCCESS) return Value::Int64(i);
      if (c.json->get_double().get(d) == simdjson::SUCCESS) {
        if (auto v = IntegralDouble(d)) return Value::Int64(*v);
      }
      return std::nullopt;
    }
    case DataType::kDouble: {
      double d = 0;
      if (is_string) {
        if (auto v = ParseDouble(s)) return Value::Double(*v);
        return std::nullopt;
      }
      if (c.json->get_double().get(d) == simdjson::SUCCESS && std::isfinite(d)) {
        return Value::Double(d);
      }
      return std::nullopt;
    }
    case DataType::kBool: {
      bool b = false;
      if (is_string) {
        if (s == "true") return Value::Bool(true);
        if (s == "false") return Value::Bool(false);
        return std::nullopt;
      }
      if (c.json->get_bool().get(b) == simdjson::SUCCESS) return Value::Bool(b);
      return std::nullopt;
    }
    case DataType::kTimestamp:
      if (auto ms = TimeFromCell(c)) return Value::Timestamp(*ms);
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

const char* TypeName(DataType t) {
  switch (t) {
    case DataType::kString:
      return "a STRING";
    case DataType::kInt64:
      return "a BIGINT";
    case DataType::kDouble:
      return "a DOUBLE";
    case DataType::kBool:
      return "a BOOLEAN (true or false)";
    case DataType::kTimestamp:
      return "a TIMESTAMP (epoch milliseconds or RFC 3339)";
    default:
      return "a key value";
  }
}

// The text of each member value of a valid JSON object, in order.
std::vector<std::string_view> MemberValueTexts(std::string_view object) {
  std::vector<std::string_view> out;
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < object.size() &&
           (object[i] == ' ' || object[i] == '\t' || object[i] == '\r' || object[i] == '\n')) {
      ++i;
    }
  };
  auto skip_string = [&] {  // at the opening quote
    for (++i; i < object.size() && object[i] != '"'; ++i) {
      if (object[i] == '\\') ++i;
    }
    ++i;
  };
  skip_ws();
  ++i;  // '{'
  while (true) {
    skip_ws();
    if (i >= object.size() || object[i] == '}') break;
    skip_string();  // the name
    skip_ws();
    ++i;  // ':'
    skip_ws();
    const size_t start = i;
    int depth = 0;
    while (i < object.size()) {
      const char c = object[i];
      if (c == '"') {
        skip_string();
        continue;
      }
      if (c == '[' || c == '{') ++depth;
      if (c == ']' || c == '}') {
        if (depth == 0) break;
        --depth;
      }
      if (c == ',' && depth == 0) break;
      ++i;
    }
    size_t end = i;
    while (end > start && (object[end - 1] == ' ' || object[end - 1] == '\t' ||
                           object[end - 1] == '\r' || object[end - 1] == '\n')) {
      --end;
    }
    out.push_back(object.substr(start, end - start));
    if (i < object.size() && object[i] == ',') ++i;
  }
  return out;
}

absl::StatusOr<std::string> ReadWhole(const std::string& path) {
  TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<source::LineReader> reader,
                           source::LineReader::Open(path));
  std::string all;
  source::Chunk chunk;
  while (true) {
    TESSERA_ASSIGN_OR_RETURN(bool more, reader->Next(&chunk));
    if (!more) break;
    all.append(chunk.data(), chunk.size());
  }
  return all;
}

}  // namespace

absl::StatusOr<TableFormat> TableFormatOfPath(const std::string& path) {
  std::string_view p = path;
  if (EndsWith(p, ".gz")) p.remove_suffix(3);
  if (EndsWith(p, ".zst")) p.remove_suffix(4);
  if (EndsWith(p, ".ndjson") || EndsWith(p, ".jsonl") || EndsWith(p, ".json")) {
    return TableFormat::kNdjson;
  }
  if (EndsWith(p, ".csv")) return TableFormat::kCsv;
  return InvalidArgument(
      "'{}': expected a file name ending in .ndjson, .jsonl or .csv (optionally followed by .gz "
      "or .zst)",
      path);
}

// Fills a Spine row by row.
class SpineBuilder {
 public:
  SpineBuilder(Spine* spine, const SpineOptions& options, const std::string& path)
      : s_(spine), options_(options), path_(path) {
    s_->keys_.resize(options.views.size());
    s_->null_keys_.assign(options.views.size(), 0);
    seen_key_column_.resize(options.views.size());
    for (size_t v = 0; v < options.views.size(); ++v) {
      seen_key_column_[v].assign(options.views[v].names.size(), false);
    }
  }

  // Adds one row whose cells `cell(name)` returns. The row's text is appended to text_ by the
  // caller before (it is dropped again when the row is skipped). Returns the error for a bad
  // row (unless skipped).
  template <typename CellOf>
  absl::Status AddRow(int64_t line, CellOf&& cell, bool has_members) {
    const Cell t = cell(options_.time_column);
    std::optional<int64_t> ms = TimeFromCell(t);
    if (!ms) {
      return BadRow(line, t.IsNull() ? fmt::format("no time in column '{}' (missing or null)",
                                                   options_.time_column)
                                     : fmt::format("column '{}': expected epoch milliseconds or "
                                                   "an RFC 3339 time in range, got {}",
                                                   options_.time_column, t.Show()));
    }
    const size_t key_mark = s_->key_bytes_.size();
    keys_.clear();
    for (size_t v = 0; v < options_.views.size(); ++v) {
      const SpineKeyColumns& kc = options_.views[v];
      Spine::KeyRef ref;
      stored_.clear();
      bool null_key = false;
      for (size_t k = 0; k < kc.names.size(); ++k) {
        const Cell c = cell(kc.names[k]);
        if (!c.missing) seen_key_column_[v][k] = true;
        if (c.IsNull()) {
          null_key = true;
          continue;
        }
        std::optional<Value> value = KeyValue(c, kc.types[k]);
        if (!value) {
          s_->key_bytes_.resize(key_mark);
          return BadRow(line, fmt::format("key column '{}': expected {}, got {}", kc.names[k],
                                          TypeName(kc.types[k]), c.Show()));
        }
        part_.clear();
        column_.Reset(kc.types[k], 1);
        column_.SetValue(0, *value, &arena_);
        engine::AppendKeyPart(column_, 0, &part_);
        arena_.Reset();
        if (kc.names.size() == 1) {
          stored_ = part_;
        } else {
          engine::AppendStoredKeyPart(part_, &stored_);
        }
      }
      // A key longer than any stored key matches no row: the features of a key never seen.
      if (!null_key && stored_.size() <= engine::kMaxEntityKeyBytes) {
        ref.offset = s_->key_bytes_.size();
        ref.size = static_cast<uint32_t>(stored_.size());
        s_->key_bytes_ += stored_;
      }
      keys_.push_back(ref);
    }
    for (size_t v = 0; v < keys_.size(); ++v) {
      s_->keys_[v].push_back(keys_[v]);
      if (keys_[v].size == Spine::kNullKey) ++s_->null_keys_[v];
    }
    s_->times_.push_back(*ms);
    s_->lines_.push_back(line);
    s_->has_members_.push_back(has_members ? 1 : 0);
    s_->text_offsets_.push_back(s_->text_.size());
    return absl::OkStatus();
  }

  // After the last row: every view's key columns must appear somewhere in the spine.
  absl::Status Finish() {
    for (size_t v = 0; v < options_.views.size(); ++v) {
      for (size_t k = 0; k < options_.views[v].names.size(); ++k) {
        if (!seen_key_column_[v][k] && s_->size() > 0) {
          return InvalidArgument(
              "spine '{}' has no column '{}' in any row: a view's features are looked up by its "
              "GROUP BY columns ({})",
              path_, options_.views[v].names[k], fmt::join(options_.views[v].names, ", "));
        }
      }
    }
    return absl::OkStatus();
  }

 private:
  absl::Status BadRow(int64_t line, const std::string& what) {
    if (options_.skip_bad_rows) {
      ++s_->skipped_rows_;
      s_->text_.resize(s_->text_offsets_.back());
      return absl::OkStatus();
    }
    return InvalidArgument(
        "spine '{}' line {}: {} (pass --skip-bad-spine to count and skip such rows)", path_, line,
        what);
  }

  Spine* s_;
  const SpineOptions& options_;
  const std::string& path_;
  std::vector<std::vector<bool>> seen_key_column_;
  std::vector<Spine::KeyRef> keys_;
  std::string stored_;
  std::string part_;
  Column column_;
  Arena arena_;
};

absl::StatusOr<Spine> Spine::Read(const std::string& path, const SpineOptions& options) {
  TESSERA_ASSIGN_OR_RETURN(TableFormat format, TableFormatOfPath(path));
  TESSERA_ASSIGN_OR_RETURN(std::string content, ReadWhole(path));
  Spine s;
  s.format_ = format;
  s.text_offsets_.push_back(0);
  SpineBuilder builder(&s, options, path);

  if (format == TableFormat::kCsv) {
    CsvReader reader(content);
    std::vector<std::string> fields;
    TESSERA_ASSIGN_OR_RETURN(bool any, reader.Next(&fields));
    if (!any) return InvalidArgument("spine '{}' is empty: expected a CSV header line", path);
    absl::flat_hash_map<std::string, size_t> index;
    for (size_t i = 0; i < fields.size(); ++i) {
      if (!index.emplace(fields[i], i).second) {
        return InvalidArgument("spine '{}': column '{}' appears twice in the header", path,
                               fields[i]);
      }
    }
    s.columns_ = fields;
    if (!index.contains(options.time_column)) {
      return InvalidArgument("spine '{}' has no time column '{}' (--spine-time) in its header",
                             path, options.time_column);
    }
    while (true) {
      absl::StatusOr<bool> more = reader.Next(&fields);
      if (!more.ok()) {
        return InvalidArgument("spine '{}': {}", path, StatusMessage(more.status()));
      }
      if (!*more) break;
      if (fields.size() != s.columns_.size()) {
        if (options.skip_bad_rows) {
          ++s.skipped_rows_;
          continue;
        }
        return InvalidArgument(
            "spine '{}' line {}: {} fields, expected {} as in the header (pass --skip-bad-spine "
            "to count and skip such rows)",
            path, reader.line(), fields.size(), s.columns_.size());
      }
      for (const std::string& f : fields) PutBytes(&s.text_, f);
      auto cell = [&](const std::string& name) {
        Cell c;
        auto it = index.find(name);
        if (it == index.end()) {
          c.missing = true;
        } else {
          c.text = fields[it->second];
        }
        return c;
      };
      TESSERA_RETURN_IF_ERROR(builder.AddRow(reader.line(), cell, !fields.empty()));
    }
    TESSERA_RETURN_IF_ERROR(builder.Finish());
    return s;
  }

  simdjson::dom::parser parser;
  absl::flat_hash_map<std::string, size_t> column_index;
  std::vector<std::pair<std::string_view, simdjson::dom::element>> members;
  int64_t line = 0;
  size_t pos = 0;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == std::string::npos) end = content.size();
    std::string_view text(content.data() + pos, end - pos);
    pos = end + 1;
    ++line;
    while (!text.empty() && (text.back() == '\r' || text.back() == ' ' || text.back() == '\t')) {
      text.remove_suffix(1);
    }
    if (line == 1 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // a BOM
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t' || text.front() == '\r')) {
      text.remove_prefix(1);
    }
    if (text.empty()) continue;
    simdjson::dom::element doc;
    simdjson::dom::object obj;
    const simdjson::error_code parsed = parser.parse(text.data(), text.size(), true).get(doc);
    if (parsed != simdjson::SUCCESS || doc.get_object().get(obj) != simdjson::SUCCESS) {
      if (options.skip_bad_rows) {
        ++s.skipped_rows_;
        continue;
      }
      return InvalidArgument(
          "spine '{}' line {}: not a JSON object{} (pass --skip-bad-spine to count and skip such "
          "rows)",
          path, line,
          parsed != simdjson::SUCCESS ? fmt::format(" ({})", simdjson::error_message(parsed))
                                      : std::string());
    }
    members.clear();
    for (auto [name, value] : obj) {
      members.emplace_back(name, value);
      if (!column_index.contains(absl::string_view(name.data(), name.size()))) {
        column_index.emplace(std::string(name), s.columns_.size());
        s.columns_.emplace_back(name);
      }
    }
    s.text_ += text;
    auto cell = [&](const std::string& name) {
      Cell c;
      c.missing = true;
      // The last occurrence of a repeated name wins, as for events.
      for (auto it = members.rbegin(); it != members.rend(); ++it) {
        if (it->first == name) {
          c.missing = false;
          c.json = &it->second;
          break;
        }
      }
      return c;
    };
    TESSERA_RETURN_IF_ERROR(builder.AddRow(line, cell, !members.empty()));
  }
  TESSERA_RETURN_IF_ERROR(builder.Finish());
  return s;
}

std::optional<std::string_view> Spine::key(size_t view, size_t row) const {
  const KeyRef& r = keys_[view][row];
  if (r.size == kNullKey) return std::nullopt;
  return std::string_view(key_bytes_).substr(r.offset, r.size);
}

bool Spine::AppendColumns(size_t row, TableFormat out, std::string* dst) const {
  const std::string_view text = std::string_view(text_).substr(
      text_offsets_[row], text_offsets_[row + 1] - text_offsets_[row]);
  if (format_ == TableFormat::kCsv) {
    ByteReader reader(text);
    for (size_t i = 0; i < columns_.size(); ++i) {
      std::string_view field;
      reader.Bytes(&field, "spine field").IgnoreError();  // written by Read()
      if (out == TableFormat::kCsv) {
        if (i > 0) *dst += ',';
        AppendCsvField(field, dst);
      } else {
        if (i > 0) *dst += ',';
        AppendJsonString(columns_[i], dst);
        *dst += ':';
        if (field.empty()) {
          *dst += "null";
        } else {
          AppendJsonString(field, dst);
        }
      }
    }
    return !columns_.empty();
  }
  if (out == TableFormat::kNdjson) {
    if (!has_members_[row]) return false;
    // The object without its braces: members exactly as written.
    std::string_view inner = text.substr(1, text.size() - 2);
    dst->append(inner.data(), inner.size());
    return true;
  }
  // NDJSON spine to CSV: one field per column; strings unescaped, other values exactly as
  // written (numbers keep their text: 1.50 stays 1.50).
  thread_local simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (parser.parse(text.data(), text.size(), true).get_object().get(obj) != simdjson::SUCCESS) {
    return false;  // parsed once already; cannot fail
  }
  const std::vector<std::string_view> raw = MemberValueTexts(text);
  for (size_t i = 0; i < columns_.size(); ++i) {
    if (i > 0) *dst += ',';
    simdjson::dom::element v;
    std::string_view v_raw;
    bool found = false;
    size_t m = 0;
    for (auto [name, value] : obj) {
      if (name == columns_[i] && m < raw.size()) {  // the last occurrence wins
        v = value;
        v_raw = raw[m];
        found = true;
      }
      ++m;
    }
    if (!found || v.is_null()) continue;
    std::string_view str;
    if (v.get_string().get(str) == simdjson::SUCCESS) {
      AppendCsvField(str, dst);
    } else {
      AppendCsvField(v_raw, dst);
    }
  }
  return !columns_.empty();
}

}  // namespace tessera::offline
