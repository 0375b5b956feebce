#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "source/format/chunk_origin.h"
#include "source/format/ndjson_decoder.h"
#include "sql/plan.h"

namespace tessera::source {

// Where a source's rejected lines go (WITH ('dead-letter' = …), or `backfill --dead-letter`):
//   'file:///abs/path' (or 'file://rel/path') — appended to a file, one JSON object per line;
//   'kafka://topic' — produced to a topic on the source's own brokers (Kafka sources only);
//   'kafka://host:port[,host:port…]/topic' — produced to a topic on those brokers.
//
// Each record is one JSON object:
//   {"source":"plays","input":"kafka topic 'plays' partition 3","partition":3,"offset":1234,
//    "reason":"expected a JSON object, got 5","raw":"5"}
// with "line" (files, stdin, the http log), "partition" and "offset" (Kafka) or "message_id"
// (Pub/Sub) saying where the line came from; "reason" without its position prefix.
//
// Delivery is at least once: a line rejected again after a crash-restart replays its chunk is
// written again (the tiles are exactly once; the dead letters are a diagnostic stream). A sink
// that cannot write (disk full, brokers down) counts the loss in failed() and warns on stderr at
// most once a minute; ingestion goes on.
//
// Write() is called by one thread at a time (the pipeline serializes its reject callbacks).
class DeadLetterSink {
 public:
  // InvalidArgument for a URI of another form; errors opening the file or creating the producer.
  static absl::StatusOr<std::unique_ptr<DeadLetterSink>> Create(std::string_view uri,
                                                                const sql::SourceDef& source);
  virtual ~DeadLetterSink() = default;

  void Write(const ChunkOrigin& origin, const Rejection& rejection);
  // Records delivered, and lost. Thread-safe.
  int64_t written() const { return written_.load(std::memory_order_relaxed); }
  int64_t failed() const { return failed_.load(std::memory_order_relaxed); }

  // The JSON record (without a newline) for one rejected line.
  static std::string Record(std::string_view source, const ChunkOrigin& origin,
                            const Rejection& rejection);

 protected:
  explicit DeadLetterSink(std::string source) : source_(std::move(source)) {}
  // Delivers one record; false when it could not.
  virtual bool Deliver(std::string record) = 0;
  void Warn(std::string_view what);

  const std::string source_;

 private:
  std::atomic<int64_t> written_{0};
  std::atomic<int64_t> failed_{0};
  int64_t last_warning_ns_ = 0;
};

}  // namespace tessera::source
