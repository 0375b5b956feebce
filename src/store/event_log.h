#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tessera::store {

// What an append stored (or, for a retried batch id, what the first append stored).
struct AppendResult {
  uint64_t seq = 0;        // sequence number of the entry (per source, from 1, increasing)
  int64_t accepted = 0;    // rows in the entry, as given to Append
  int64_t rejected = 0;    // rows the caller rejected, as given to Append
  bool duplicate = false;  // true when batch_id was seen before: nothing was appended
  // Opaque bytes stored with the batch id (e.g. a fingerprint of the request and the first
  // answer), returned as they were given by the first append. Empty without a batch id.
  std::string annotation;
};

// The embedded durable log of pushed events (HTTP ingest), one stream per source. It lives in
// the same store as the tiles, so a flush can commit tiles and "log consumed up to seq N" in one
// atomic write (the consumer's position is ordinary metadata written with the tiles).
//
// Thread-safety: all methods may be called concurrently. Concurrent Appends are group-committed
// (many share one fsync).
class EventLog {
 public:
  virtual ~EventLog() = default;

  // Durably appends `payload` (NDJSON lines, already validated by the caller) to `source`'s
  // stream; returns after the entry is on stable storage. A non-empty `batch_id` makes the call
  // idempotent per source: if an entry with that id was appended before (even by an earlier
  // process), nothing is appended and the first result comes back with duplicate = true.
  // `annotation` is kept with the batch id (ignored without one) and comes back, with the first
  // append's counts, in the AppendResult of every retry.
  virtual absl::StatusOr<AppendResult> Append(std::string_view source, std::string_view batch_id,
                                              std::string_view payload, int64_t accepted,
                                              int64_t rejected, std::string_view annotation) = 0;
  absl::StatusOr<AppendResult> Append(std::string_view source, std::string_view batch_id,
                                      std::string_view payload, int64_t accepted,
                                      int64_t rejected) {
    return Append(source, batch_id, payload, accepted, rejected, {});
  }

  // Calls fn(seq, payload) for the entries of `source` with seq > after_seq in increasing order,
  // stopping after about max_bytes of payload (at least one entry if any). The payload is valid
  // only during fn.
  virtual absl::Status Read(std::string_view source, uint64_t after_seq, size_t max_bytes,
                            const std::function<void(uint64_t, std::string_view)>& fn) = 0;

  // The highest sequence number appended to `source` (0 if none).
  virtual absl::StatusOr<uint64_t> LastSeq(std::string_view source) = 0;

  // Deletes the entries of `source` with seq <= up_to_seq (their rows are in the tiles).
  // Batch ids are remembered for `batch_id_retention_entries` more entries (see implementations).
  virtual absl::Status Trim(std::string_view source, uint64_t up_to_seq) = 0;
};

}  // namespace tessera::store
