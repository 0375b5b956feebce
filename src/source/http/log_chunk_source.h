#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/mutex.h"
#include "common/time_util.h"
#include "source/format/decoded_rows.h"
#include "source/source.h"
#include "store/event_log.h"
#include "store/tile_store.h"

namespace tessera::source {

struct LogChunkSourceOptions {
  // Bytes of log entries read into one raw chunk, about (at least one entry).
  size_t chunk_bytes = size_t{1} << 20;
  // Offered rows (Offer) waiting for the pipeline, at most (DecodedRows::MemoryBytes). An offer
  // beyond it is dropped: its entry is then read from the log and decoded by the pipeline, so a
  // pipeline far behind (e.g. producers using wait=durable) costs log reads, not memory.
  size_t max_offered_bytes = size_t{128} << 20;
  // The pipeline's future bound (PipelineOptions::max_future_ms and clock): offered rows later
  // than it are not handed out decoded (the pipeline's decoder would reject them; reading the
  // entry raw lets it). kNoFutureBound: no bound.
  int64_t max_future_ms = kNoFutureBound;
  const Clock* clock = SystemClock::Default();
  // Optional: log entries handed out as offered rows, and read from the log (decoded again).
  Counter* entries_offered = nullptr;
  Counter* entries_raw = nullptr;
};

// Feeds an ingest pipeline from one source's stream of the durable event log. Its checkpoint is
// the last log sequence number handed out, written atomically with the tiles under
// store::meta::LogPositionKey ("log/<source>/position"); after the flush is durable the consumed
// entries are trimmed. On restart, reading resumes right after the stored position, so every
// acknowledged row is aggregated exactly once.
//
// Decode once: the writer (HttpConnector) decoded every entry's lines before appending them and
// may Offer() the rows afterwards. When the next entry to hand out has been offered, NextChunk()
// hands out its rows (ChunkOrigin::decoded; consecutive offered entries coalesced up to
// chunk_bytes of rows) instead of reading and decoding it again. The log stays the truth: an
// entry not offered (yet), dropped, or from before a restart is read raw and decoded by the
// pipeline, and the two paths give the same rows and counters. An offer for an entry already
// handed out is dropped at once, and raw reads drop the offers of the entries they read, so
// offered rows never outlive their entry's turn.
class LogChunkSource final : public Source {
 public:
  // Reads the stored position of `source` from `meta` (the same store as the tiles).
  static absl::StatusOr<std::unique_ptr<LogChunkSource>> Create(store::EventLog* log,
                                                                store::TileStore* meta,
                                                                std::string source,
                                                                LogChunkSourceOptions options = {});

  absl::StatusOr<Next> NextChunk(Chunk* chunk, ChunkOrigin* origin) override;
  void WaitForData(std::chrono::milliseconds max_wait) override;
  void AddCheckpoint(store::WriteBatch* batch) override;
  void Committed() override;
  void Aggregated() override;

  // Offers the decoded rows of log entry `seq` (DecodedRows contract: exactly what decoding the
  // entry's payload gives). Kept until the pipeline reaches the entry, unless the entry was
  // handed out already, the offered bytes would exceed max_offered_bytes, or Close() was
  // called: then dropped. Never required for correctness. REQUIRES: entry `seq` was appended
  // to the log with exactly these lines. Thread-safe.
  void Offer(uint64_t seq, std::unique_ptr<DecodedRows> rows);
  // Wakes a WaitForData(): new entries were appended. Thread-safe.
  void Notify();
  // Makes NextChunk() return kEnd once the log is drained (shutdown), and WaitVisible() return;
  // drops the offered rows. Thread-safe.
  void Close();

  // Blocks until the rows of log entry `seq` are visible to reads (the pipeline aggregated every
  // entry up to it), `max_wait` passed, or Close(). Returns whether they are visible.
  // Thread-safe.
  bool WaitVisible(uint64_t seq, std::chrono::milliseconds max_wait);

  // Last sequence number handed to the pipeline. Thread-safe.
  uint64_t position() const { return position_.load(); }
  // Bytes of offered rows waiting (DecodedRows::MemoryBytes). Thread-safe.
  size_t offered_bytes() const;

 private:
  struct Offered {
    std::unique_ptr<DecodedRows> rows;
    size_t bytes = 0;
  };

  LogChunkSource(store::EventLog* log, std::string source, uint64_t position,
                 LogChunkSourceOptions options)
      : log_(log),
        source_(std::move(source)),
        options_(options),
        position_(position),
        committed_(position),
        visible_(position) {}

  // Moves the offered rows of the entries right after position_ (consecutive, up to
  // chunk_bytes) into *rows and advances position_ past them; returns how many entries.
  // Otherwise sets *raw_before to the first offered entry (0: none) so a raw read stops there.
  int TakeOffered(std::unique_ptr<DecodedRows>* rows, uint64_t* raw_before);
  // Advances position_ to `seq` and drops the offers of entries up to it.
  void AdvanceTo(uint64_t seq);

  store::EventLog* log_;
  const std::string source_;
  const LogChunkSourceOptions options_;
  std::atomic<uint64_t> position_;  // last seq handed out; written under mu_
  uint64_t checkpoint_;             // position_ at the last AddCheckpoint
  uint64_t committed_;              // durable position (trimmed up to here)
  std::string buffer_;
  mutable Mutex mu_;
  CondVar cv_;  // Notify() and Close()
  uint64_t notifications_ ABSL_GUARDED_BY(mu_) = 0;
  // notifications_ when the last NextChunk() started reading: a Notify() after that means
  // there may be entries it did not see (WaitForData must not sleep then).
  uint64_t notifications_read_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t visible_ ABSL_GUARDED_BY(mu_);  // every entry <= visible_ is readable in the tiles
  CondVar visible_cv_;                     // Aggregated() and Close()
  // Offered rows by log seq; every key > position_.
  std::map<uint64_t, Offered> offered_ ABSL_GUARDED_BY(mu_);
  size_t offered_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tessera::source
