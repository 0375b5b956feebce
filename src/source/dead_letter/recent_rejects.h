#pragma once

#include <cstdint>
#include <deque>
#include <string>

#include "common/mutex.h"
#include "source/format/chunk_origin.h"
#include "source/format/ndjson_decoder.h"

namespace tessera::source {

// The last rejected lines of one source, for the console's "recent rejects": each is the
// dead-letter record (DeadLetterSink::Record: input, position, reason, raw line) with "at", the
// wall-clock time of the rejection, and the raw line cut to `max_raw_bytes` ("raw_bytes" then
// says how long it was). Bounded: at most `capacity` records of at most ~max_raw_bytes +
// max_reason_bytes each, whatever clients send. Thread-safe.
class RecentRejects {
 public:
  struct Options {
    size_t capacity = 100;
    size_t max_raw_bytes = 256;
    size_t max_reason_bytes = 512;
    size_t max_input_bytes = 128;  // the input's name, and a Pub/Sub message id
  };
  RecentRejects(std::string source, Options options);

  void Add(int64_t now_ms, const ChunkOrigin& origin, const Rejection& rejection);

  // A JSON array of the records, newest first.
  std::string ToJson() const;
  // Rejections added so far (including those no longer kept).
  int64_t total() const;

 private:
  const std::string source_;
  const Options options_;
  mutable Mutex mu_;
  std::deque<std::string> records_ ABSL_GUARDED_BY(mu_);  // oldest first
  int64_t total_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tessera::source
