#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/column.h"
#include "common/schema.h"
#include "common/time_util.h"
#include "source/format/line_reader.h"

namespace tessera::source {

// Counters of one or more Decode() calls.
struct DecodeStats {
  int64_t lines = 0;         // non-blank lines seen
  int64_t rows = 0;          // lines accepted into the batch
  int64_t rejected = 0;      // lines that are not a JSON object or have no valid event time
  int64_t field_errors = 0;  // fields of accepted rows whose JSON type did not fit (set to NULL)
  int64_t future = 0;        // of `rejected`: event time after the decoder's max event time

  DecodeStats& operator+=(const DecodeStats& o) {
    lines += o.lines;
    rows += o.rows;
    rejected += o.rejected;
    field_errors += o.field_errors;
    future += o.future;
    return *this;
  }
};

// A line that was not turned into a row.
struct Rejection {
  int64_t line_number = 0;
  // What and where, e.g. "line 17: field 'ts': expected epoch milliseconds or an RFC 3339
  // string, got true".
  std::string reason;
  // The line without its "\n" / "\r\n"; points into the decoded data and is valid only during
  // the callback.
  std::string_view line;
};

using RejectFn = std::function<void(const Rejection&)>;

// The reason without its "line N: " prefix, for records that say where the line came from in
// fields of their own (dead letters: Kafka offset, Pub/Sub message id).
std::string_view ReasonWithoutLine(const Rejection& r);

// TIMESTAMP values outside [kMinTimestampMs, kMaxTimestampMs] (common/time_util.h) are out of
// range.
using ::tessera::kMaxTimestampMs;
using ::tessera::kMinTimestampMs;

// Decodes newline-delimited JSON objects into the typed columns of a RowBatch.
//
// Rules (the contract in docs/architecture.md, "Semantics in one page"):
//  * Lines are split on '\n'; one trailing '\r' is dropped; empty / whitespace-only lines are
//    skipped and not counted.
//  * A line that is not exactly one JSON object (parse error, array, scalar, trailing content),
//    or whose event-time field is missing, null, of the wrong type, unparseable, out of
//    range or after set_max_event_time_ms(), is rejected: counted, reported to on_reject, and not
//    added to the batch.
//  * Fields are matched to columns by exact (case-sensitive) name; unknown fields are ignored
//    (but must be valid JSON); when a field repeats, the last occurrence wins.
//  * null and missing fields are NULL. A value whose JSON type does not fit its column is NULL
//    and counts one field error: BIGINT takes integers in int64 range and integral floats that
//    fit; DOUBLE any number; BOOLEAN true/false; STRING strings; TIMESTAMP epoch milliseconds
//    (floats truncated toward zero) or RFC 3339 strings.
//
// Not thread-safe: one decoder per thread (it owns a simdjson parser). In steady state Decode()
// allocates nothing on the heap except for rejected lines' reasons (when on_reject is set).
class NdjsonDecoder {
 public:
  // Checks the schema (unique column names, time_column names a TIMESTAMP column) and builds a
  // decoder. InvalidArgument otherwise.
  static absl::StatusOr<std::unique_ptr<NdjsonDecoder>> Create(std::vector<ColumnDef> columns,
                                                               int time_column);

  // REQUIRES: the schema is valid as checked by Create(). If time_column is out of range every
  // line is rejected; with duplicate names the first column of a name receives the field.
  NdjsonDecoder(std::vector<ColumnDef> columns, int time_column);

  ~NdjsonDecoder();
  NdjsonDecoder(NdjsonDecoder&&) noexcept;
  NdjsonDecoder& operator=(NdjsonDecoder&&) noexcept;
  NdjsonDecoder(const NdjsonDecoder&) = delete;
  NdjsonDecoder& operator=(const NdjsonDecoder&) = delete;

  // Appends every accepted line of `data` to `batch` and returns the number of physical lines
  // in `data` (blank ones included; a final line without '\n' counts), so the caller can pass
  // first_line_number + result for the next chunk. `first_line_number` is the number of the
  // first line of `data` (used in reasons). If batch->num_rows == 0 its columns are (re)typed
  // to the schema and emptied, keeping their capacity; otherwise rows are appended. Strings are
  // copied into batch->arena. `stats` is incremented; `on_reject` may be empty.
  // `padding_available` is how many readable bytes follow data (if fewer than kChunkPadding
  // the data is first copied into an internal padded buffer).
  // REQUIRES: a non-empty `batch` was filled by this decoder (one that does not match the
  // schema is emptied first).
  int64_t Decode(std::string_view data, size_t padding_available, int64_t first_line_number,
                 RowBatch* batch, DecodeStats* stats, const RejectFn& on_reject = {});
  int64_t Decode(const Chunk& chunk, int64_t first_line_number, RowBatch* batch, DecodeStats* stats,
                 const RejectFn& on_reject = {}) {
    return Decode(chunk.view(), chunk.padding(), first_line_number, batch, stats, on_reject);
  }

  // Empties `batch` (RowBatch::Clear) and types its columns to the schema, keeping every
  // buffer's capacity, so a Clear-then-Decode loop does not reallocate.
  void ResetBatch(RowBatch* batch) const;

  const std::vector<ColumnDef>& columns() const;
  // The event-time column, or -1 if the one given to the constructor was not valid.
  int time_column() const;

  // Lines whose event time is after `ms` are rejected (and counted in DecodeStats::future): the
  // caller's clock plus the source's 'max-future', so one row from a wrong clock cannot move a
  // watermark. Default kMaxTimestampMs (no bound beyond the timestamp range).
  void set_max_event_time_ms(int64_t ms);

 private:
  class Impl;  // owns the simdjson parser; keeps simdjson out of this header
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::source
