#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/types.h"

namespace tessera::offline {

// Tables a training set reads (the spine) and writes: newline-delimited JSON objects, or CSV
// with a header (RFC 4180, src/offline/csv.h).
enum class TableFormat { kNdjson, kCsv };

// The format a path names: `.ndjson`/`.jsonl`/`.json` or `.csv`, optionally followed by `.gz`
// or `.zst`. InvalidArgument naming the path otherwise.
absl::StatusOr<TableFormat> TableFormatOfPath(const std::string& path);

// The columns of one view's entity key, as the spine must name them (the view's GROUP BY output
// names) and the types its rows' keys have.
struct SpineKeyColumns {
  std::vector<std::string> names;
  std::vector<DataType> types;
};

struct SpineOptions {
  std::string time_column = "ts";
  // A row with a missing or bad time, or a key value that cannot be its column's type, is an
  // error naming the row; with this set, such rows are counted and left out of the spine.
  bool skip_bad_rows = false;
  std::vector<SpineKeyColumns> views;  // one per view the training set reads
};

// The rows of a training set's spine, in file order, held in memory: per row its time, its
// stored entity key per view (engine/entity_key.h) and its own columns, which are passed through
// to the output unchanged. About the file's size plus 16 bytes per row and view.
//
// Values of a spine row: the time column takes epoch milliseconds (a JSON number, floats
// truncated toward zero, or an integer in CSV) or an RFC 3339 string. A key column takes its
// type's JSON form or the same as text (CSV has only text): a number for BIGINT (an integral
// float that fits too), DOUBLE; true/false for BOOLEAN; a time as above for TIMESTAMP; any scalar
// for STRING (numbers as written). A key column that is null, missing or an empty CSV field
// makes the row's key NULL for that view: its features are those of a key never seen.
class Spine {
 public:
  static absl::StatusOr<Spine> Read(const std::string& path, const SpineOptions& options);

  size_t size() const { return times_.size(); }
  TableFormat format() const { return format_; }
  // NDJSON: every member name in order of first appearance; CSV: the header.
  const std::vector<std::string>& columns() const { return columns_; }
  int64_t time(size_t row) const { return times_[row]; }
  // The line (NDJSON) or record (CSV) the row came from, 1-based.
  int64_t line(size_t row) const { return lines_[row]; }
  // The row's stored key for view `view`, or nullopt when one of its key columns is NULL.
  std::optional<std::string_view> key(size_t view, size_t row) const;
  int64_t skipped_rows() const { return skipped_rows_; }
  int64_t null_keys(size_t view) const { return null_keys_[view]; }

  // Appends the row's own columns in `out` format: NDJSON, its members as written in the
  // spine ("a":1,"b":"x", no braces; empty for {}) or, from a CSV spine, every column as a
  // JSON string (empty fields as null); CSV, one field per columns() entry joined by ','
  // (NULL and missing as empty fields, strings as they are, other JSON values as JSON text).
  // Returns whether it appended anything.
  bool AppendColumns(size_t row, TableFormat out, std::string* dst) const;

 private:
  struct KeyRef {
    uint64_t offset = 0;
    uint32_t size = kNullKey;
  };
  static constexpr uint32_t kNullKey = UINT32_MAX;

  TableFormat format_ = TableFormat::kNdjson;
  std::vector<std::string> columns_;
  std::vector<int64_t> times_;
  std::vector<int64_t> lines_;
  // NDJSON: the object's text; CSV: each field as varint(length) + bytes.
  std::string text_;
  std::vector<uint64_t> text_offsets_;  // size() + 1 entries
  std::vector<uint8_t> has_members_;    // NDJSON: the object has at least one member
  std::string key_bytes_;
  std::vector<std::vector<KeyRef>> keys_;  // [view][row]
  std::vector<int64_t> null_keys_;
  int64_t skipped_rows_ = 0;

  friend class SpineBuilder;
};

}  // namespace tessera::offline
