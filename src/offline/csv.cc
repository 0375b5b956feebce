#include "offline/csv.h"

#include "common/errors.h"

namespace tessera::offline {
namespace {

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

std::string Describe(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) return fmt::format("'{}'", c);
  return fmt::format("byte 0x{:02x}", u);
}

}  // namespace

CsvReader::CsvReader(std::string_view data) : data_(data) {
  if (data_.substr(0, kUtf8Bom.size()) == kUtf8Bom) {
    pos_ = kUtf8Bom.size();
    line_start_ = pos_;
  }
}

size_t CsvReader::LineEndAt(size_t i) const {
  if (i >= data_.size()) return 0;
  if (data_[i] == '\n') return 1;
  if (data_[i] != '\r') return 0;
  if (i + 1 == data_.size()) return 1;
  return data_[i + 1] == '\n' ? 2 : 0;
}

void CsvReader::AdvanceTo(size_t to) {
  const std::string_view passed = data_.substr(0, to);
  for (size_t i = passed.find('\n', pos_); i != std::string_view::npos;
       i = passed.find('\n', i + 1)) {
    ++line_;
    line_start_ = i + 1;
  }
  pos_ = to;
}

absl::Status CsvReader::Fail(absl::Status status) {
  error_ = status;
  return status;
}

absl::StatusOr<bool> CsvReader::Next(std::vector<std::string>* fields) {
  if (!error_.ok()) return error_;
  while (size_t n = LineEndAt(pos_)) AdvanceTo(pos_ + n);
  if (pos_ >= data_.size()) return false;

  fields->clear();
  record_line_ = line_;
  while (true) {
    std::string& field = fields->emplace_back();
    if (pos_ < data_.size() && data_[pos_] == '"') {
      const int64_t start_line = line_;
      const size_t start_column = column(pos_);
      size_t from = pos_ + 1;
      while (true) {
        const size_t quote = data_.find('"', from);
        if (quote == std::string_view::npos) {
          return Fail(InvalidArgument("line {}: unterminated quoted field starting at column {}",
                                      start_line, start_column));
        }
        field.append(data_.substr(from, quote - from));
        if (quote + 1 < data_.size() && data_[quote + 1] == '"') {
          field.push_back('"');
          from = quote + 2;
          continue;
        }
        AdvanceTo(quote + 1);
        break;
      }
      if (pos_ < data_.size() && data_[pos_] != ',' && LineEndAt(pos_) == 0) {
        return Fail(InvalidArgument(
            "line {}, column {}: {} after the closing quote of the field starting at line {}, "
            "column {}; expected ',' or the end of the record",
            line_, column(pos_), Describe(data_[pos_]), start_line, start_column));
      }
    } else {
      size_t end = pos_;
      while (true) {
        end = data_.find_first_of(",\r\n", end);
        if (end == std::string_view::npos) end = data_.size();
        if (end == data_.size() || data_[end] == ',' || LineEndAt(end) > 0) break;
        ++end;  // a CR inside the field
      }
      field.append(data_.substr(pos_, end - pos_));
      pos_ = end;
    }
    if (pos_ >= data_.size()) return true;
    if (data_[pos_] == ',') {
      ++pos_;
      continue;
    }
    AdvanceTo(pos_ + LineEndAt(pos_));
    return true;
  }
}

void AppendCsvField(std::string_view value, std::string* out) {
  // A leading byte order mark is quoted so that a reader cannot take it for the file's.
  const bool quote = value.find_first_of(",\"\r\n") != std::string_view::npos ||
                     (!value.empty() && (value.front() == ' ' || value.back() == ' ')) ||
                     value.substr(0, kUtf8Bom.size()) == kUtf8Bom;
  if (!quote) {
    out->append(value);
    return;
  }
  out->push_back('"');
  for (char c : value) {
    if (c == '"') out->push_back('"');
    out->push_back(c);
  }
  out->push_back('"');
}

}  // namespace tessera::offline
