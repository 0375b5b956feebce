#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tessera::offline {

// Reads the records of an RFC 4180 CSV file held in memory (already decompressed).
//
// Rules:
//  * Fields are separated by ','; a record ends at LF or CRLF (or a CR that is the last byte of
//    the input); a final record without a line end counts.
//  * A field that starts with '"' is quoted: it ends at the next lone '"' and may contain ',',
//    CR, LF and '""' (one '"'). After the closing quote must come ',' or the end of the record.
//  * Any other field is unquoted and returned exactly as written (no trimming; a '"' or a CR
//    not followed by LF inside it is kept).
//  * Blank lines (empty, or only a CR before the LF) are skipped; so `""` is a record of one
//    empty field but an empty line is no record. A UTF-8 byte order mark at the very start is
//    skipped.
//  * Records may have different numbers of fields: checking them is the caller's business.
// Line numbers count LF bytes, also those inside quoted fields; columns are 1-based byte offsets
// in their line.
//
// Not thread-safe. `data` must outlive the reader.
class CsvReader {
 public:
  explicit CsvReader(std::string_view data);

  // Replaces `*fields` with the next record's fields (at least one) and returns true, or returns
  // false at the end of the input. InvalidArgument, saying what and where, for an unterminated
  // quoted field ("line 7: unterminated quoted field starting at column 12") or a character after
  // a closing quote that is neither ',' nor the end of the record; every later call returns the
  // same error.
  absl::StatusOr<bool> Next(std::vector<std::string>* fields);

  // The 1-based line on which the record last returned by Next() starts (0 before the first).
  int64_t line() const { return record_line_; }

 private:
  // Length of the line end at data_[i] ("\n", "\r\n", or a CR at the end of the input), or 0.
  size_t LineEndAt(size_t i) const;
  // Moves pos_ to `to`, counting the LFs passed.
  void AdvanceTo(size_t to);
  size_t column(size_t i) const { return i - line_start_ + 1; }
  absl::Status Fail(absl::Status status);

  std::string_view data_;
  size_t pos_ = 0;
  int64_t line_ = 1;       // line of data_[pos_]
  size_t line_start_ = 0;  // offset of the first byte of line_
  int64_t record_line_ = 0;
  absl::Status error_;
};

// Appends `value` to `*out` as one CSV field, quoted (with '"' doubled) only when it contains
// ',', '"', CR or LF, starts or ends with a space, or starts with a UTF-8 byte order mark (which
// CsvReader would drop at the start of a file). An empty value is written as nothing: an
// empty field is how our outputs write NULL. The caller writes the ',' between fields and the
// line end. A record of one empty field thus becomes an empty line, which CsvReader skips.
void AppendCsvField(std::string_view value, std::string* out);

}  // namespace tessera::offline
