#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/mutex.h"
#include "source/source.h"
#include "store/event_log.h"
#include "store/tile_store.h"

namespace tessera::source {

// Feeds an ingest pipeline from one source's stream of the durable event log. Its checkpoint is
// the last log sequence number handed out, written atomically with the tiles under
// store::meta::LogPositionKey ("log/<source>/position"); after the flush is durable the consumed
// entries are trimmed. On restart, reading resumes right after the stored position, so every
// acknowledged row is aggregated exactly once.
class LogChunkSource final : public Source {
 public:
  // Reads the stored position of `source` from `meta` (the same store as the tiles).
  static absl::StatusOr<std::unique_ptr<LogChunkSource>> Create(store::EventLog* log,
                                                                store::TileStore* meta,
                                                                std::string source);

  absl::StatusOr<Next> NextChunk(Chunk* chunk, ChunkOrigin* origin) override;
  void WaitForData(std::chrono::milliseconds max_wait) override;
  void AddCheckpoint(store::WriteBatch* batch) override;
  void Committed() override;
  void Aggregated() override;

  // Wakes a WaitForData(): new entries were appended. Thread-safe.
  void Notify();
  // Makes NextChunk() return kEnd once the log is drained (shutdown), and WaitVisible() return.
  // Thread-safe.
  void Close();

  // Blocks until the rows of log entry `seq` are visible to reads (the pipeline aggregated every
  // entry up to it), `max_wait` passed, or Close(). Returns whether they are visible.
  // Thread-safe.
  bool WaitVisible(uint64_t seq, std::chrono::milliseconds max_wait);

  // Last sequence number handed to the pipeline. Thread-safe.
  uint64_t position() const { return position_.load(); }

 private:
  LogChunkSource(store::EventLog* log, std::string source, uint64_t position)
      : log_(log),
        source_(std::move(source)),
        position_(position),
        committed_(position),
        visible_(position) {}

  store::EventLog* log_;
  const std::string source_;
  std::atomic<uint64_t> position_;  // last seq handed out
  uint64_t checkpoint_;             // position_ at the last AddCheckpoint
  uint64_t committed_;              // durable position (trimmed up to here)
  std::string buffer_;
  Mutex mu_;
  CondVar cv_;  // Notify() and Close()
  uint64_t notifications_ ABSL_GUARDED_BY(mu_) = 0;
  // notifications_ when the last NextChunk() started reading: a Notify() after that means
  // there may be entries it did not see (WaitForData must not sleep then).
  uint64_t notifications_read_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t visible_ ABSL_GUARDED_BY(mu_);  // every entry <= visible_ is readable in the tiles
  CondVar visible_cv_;                     // Aggregated() and Close()
};

}  // namespace tessera::source
