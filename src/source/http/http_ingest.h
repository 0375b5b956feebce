#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/schema.h"
#include "common/time_util.h"
#include "source/format/chunk_origin.h"
#include "source/format/decoded_rows.h"
#include "source/format/ndjson_decoder.h"
#include "store/event_log.h"

namespace tessera::source {

struct IngestResult {
  int64_t accepted = 0;      // rows appended to the log
  int64_t rejected = 0;      // lines not appended: not a JSON object, no valid or a future time
  int64_t late = 0;          // rows not appended: older than the source's watermark
  int64_t future = 0;        // of `rejected`: event time too far ahead of the clock
  int64_t field_errors = 0;  // fields of accepted rows that did not fit their column (NULL)
  bool duplicate = false;    // batch id seen before: nothing new was appended
  std::vector<std::string> errors;  // the first few reasons (rejected, late, field errors)
  uint64_t seq = 0;                 // log entry holding the accepted rows (0: none)

  // {"accepted":N,"rejected":R[,"late":L][,"future":F][,"field_errors":E][,"duplicate":true]
  //  [,"errors":[…]]}
  std::string ToJson() const;
};

struct HttpIngestOptions {
  std::vector<ColumnDef> columns;
  int time_column = -1;
  int64_t lateness_ms = 0;  // the source's allowed lateness (WATERMARK)
  // Rows more than this ahead of clock->NowMillis() are rejected; kNoFutureBound: no bound.
  int64_t max_future_ms = kNoFutureBound;
  const Clock* clock = SystemClock::Default();
};

// The `http` connector's write path: validates an NDJSON body against the source's schema with
// the same decoder the engine uses (so `rejected` means exactly what it means in a backfill),
// and appends the accepted lines durably to the source's log stream. Returns once they are on
// stable storage.
//
// Time rules, decided here so the answer can report them: a row whose event time is more than
// max_future_ms ahead of the clock is rejected (it would blind the source); a row older than
// the watermark (the largest event time of the rows already appended, or of the pipeline, minus
// the lateness; rows earlier in the same body count too) is late and not appended. The pipeline
// applies the same rules again: a row can still turn late there, when a concurrent request's
// rows were appended first (it is then counted in the source's late metric, not in this answer).
//
// A batch id makes a retry idempotent. The first append stores a 128-bit hash of the body with
// the id; a retry with the same id and the same body gets the first answer with
// "duplicate":true, and one with a different body is refused (AlreadyExists), since its rows
// would otherwise vanish.
class HttpIngest {
 public:
  HttpIngest(store::EventLog* log, std::string source, HttpIngestOptions options)
      : log_(log), source_(std::move(source)), options_(std::move(options)) {}

  // Thread-safe. `batch_id` (may be empty) makes a retried call idempotent.
  //
  // `appended_rows` (optional) receives the rows of the new log entry (result.seq; not for a
  // duplicate) exactly as the pipeline's decoder would decode that entry (DecodedRows contract):
  // the accepted rows in body order, late ones removed. It stays null when that cannot be
  // guaranteed: nothing was appended, or rows were late and some rows had field errors (the
  // decoder counts those per body, not per row, so the entry's count is unknown).
  absl::StatusOr<IngestResult> Ingest(std::string_view batch_id, std::string_view body,
                                      std::unique_ptr<DecodedRows>* appended_rows = nullptr);

  // Raises the largest event time known to be in the log or the tiles (the pipeline's, after
  // it loaded its state). Thread-safe.
  void ObserveMaxEventTime(int64_t ms);

  const std::string& source() const { return source_; }

  // Also hands each rejected line to `observer` (from the calling thread, during Ingest), with
  // an origin naming the request ("http request", or with its batch id) and the line's number
  // within the body. REQUIRES: before the first Ingest().
  using RejectObserver = std::function<void(const ChunkOrigin& origin, const Rejection& r)>;
  void set_reject_observer(RejectObserver observer) { on_reject_ = std::move(observer); }

 private:
  store::EventLog* log_;
  const std::string source_;
  const HttpIngestOptions options_;
  RejectObserver on_reject_;
  std::atomic<int64_t> max_event_time_ms_{std::numeric_limits<int64_t>::min()};
};

}  // namespace tessera::source
