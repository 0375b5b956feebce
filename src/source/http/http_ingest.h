#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/schema.h"
#include "store/event_log.h"

namespace tessera::source {

struct IngestResult {
  int64_t accepted = 0;
  int64_t rejected = 0;
  bool duplicate = false;           // batch id seen before: nothing new was appended
  std::vector<std::string> errors;  // the first few rejection reasons
  uint64_t seq = 0;                 // log entry holding the accepted rows (0: none)

  // {"accepted":N,"rejected":R[,"duplicate":true][,"errors":[…]]}
  std::string ToJson() const;
};

// The `http` connector's write path: validates an NDJSON body against the source's schema with
// the same decoder the engine uses (so `rejected` means exactly what it means in a backfill),
// and appends the accepted lines durably to the source's log stream. Returns once they are on
// stable storage.
class HttpIngest {
 public:
  HttpIngest(store::EventLog* log, std::string source, std::vector<ColumnDef> columns,
             int time_column)
      : log_(log),
        source_(std::move(source)),
        columns_(std::move(columns)),
        time_column_(time_column) {}

  // Thread-safe. `batch_id` (may be empty) makes a retried call idempotent.
  absl::StatusOr<IngestResult> Ingest(std::string_view batch_id, std::string_view body) const;

  const std::string& source() const { return source_; }

 private:
  store::EventLog* log_;
  const std::string source_;
  const std::vector<ColumnDef> columns_;
  const int time_column_;
};

}  // namespace tessera::source
