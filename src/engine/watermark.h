#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/tile_store.h"

namespace tessera::engine {

// One source's watermark. A source has one or more lanes (Kafka partitions; a single-stream
// source has the one lane ""), each with the newest event time seen on it. The watermark is the
// minimum of the active lanes' newest event times (Source::ActiveLanes: idle lanes are left
// out; with no active lane, the newest over all lanes) minus the source's declared lateness.
// A row older than the watermark as it stands when the row arrives is late (dropped and
// counted); rows within the lateness still update their tile. A row's own lane always counts,
// so for one lane this is "newest event time seen minus lateness". Slots that end at or before
// the watermark are closed (their rollups are final, tile/ladder.h: SlotClosed).
//
// The newest event times are persisted with every flush (metadata
// store::meta::SourceMaxEventTimeKey for the source, SourceLaneMaxEventTimeKey per named lane,
// in the same atomic write as the tiles), so a later run continues the same stream; the
// watermark as of the last commit is kept apart, since owed rollups may only be built for slots
// that the *committed* watermark closes.
//
// Not thread-safe: the pipeline's coordinating thread owns it.
class Watermark {
 public:
  // The max event time before any row was seen: no watermark, nothing is late or closed.
  static constexpr int64_t kNone = std::numeric_limits<int64_t>::min();

  Watermark(std::string_view source_name, int64_t lateness_ms);

  // Reads the persisted max event time of the source (if any). Call once, before use.
  // DataLoss when the stored value is not a decimal integer.
  absl::Status Load(store::TileStore* store);

  // The lanes the watermark is the minimum of, from now on (Source::ActiveLanes). Lanes not yet
  // seen start with no event time (they hold the watermark back until they have one or leave
  // the active set). By default the one lane "" is active.
  void SetActiveLanes(std::vector<std::string> active);

  // Reads `lane`'s persisted newest event time again and keeps the larger of it and the one
  // held: for a lane that just became active here after another process may have advanced it
  // (a Kafka partition moving between workers of one shared store). DataLoss when corrupt.
  absl::Status ReloadLane(store::TileStore* store, const std::string& lane);

  // Forgets `lane`'s newest event time (its rows were not committed here and belong to another
  // process now): if the lane comes back, ReloadLane takes what was committed.
  void ForgetLane(const std::string& lane);

  // Walks one batch of lane `lane` in stream order: marks (*late)[r] = 1 for each row older than
  // the watermark as it stands when the row arrives, else 0, and advances the lane's newest
  // event time. Returns the number of late rows. *late is resized to the batch.
  int64_t MarkLate(std::span<const int64_t> event_time_ms, std::vector<uint8_t>* late) {
    return MarkLate("", event_time_ms, late);
  }
  int64_t MarkLate(const std::string& lane, std::span<const int64_t> event_time_ms,
                   std::vector<uint8_t>* late);

  // The newest event time seen on any lane (kNone before any row).
  int64_t max_event_time_ms() const { return max_event_time_ms_; }
  // The current watermark (slots ending at or before it are closed), and the one of the last
  // commit; kNone while there is none.
  int64_t closed_by() const { return closed_by_; }
  int64_t committed_closed_by() const { return committed_closed_by_; }
  int64_t lateness_ms() const { return lateness_ms_; }
  // Each lane's newest event time (kNone: none yet).
  const std::map<std::string, int64_t>& lanes() const { return lanes_; }

  // Appends the persisted newest event times to a flush's batch.
  void AddToBatch(store::WriteBatch* batch) const;
  // The batch from AddToBatch() was written: the current watermark is now the committed one.
  void Committed() { committed_closed_by_ = closed_by_; }

  // Metadata key of the persisted max event time (source names are case-insensitive).
  static std::string Key(std::string_view source_name);

  // The watermark as last committed to `store` for `source_name` (what a reader of the DB, not
  // running the source, reports: `tessera serve`, `tessera get`): the minimum over the persisted
  // lanes' newest event times minus `lateness_ms`; for a source without lanes, its persisted
  // newest event time minus the lateness. kNone when nothing was committed. Which lanes were
  // active (not idle) is not persisted, so every lane counts: at most the watermark the writer
  // had, never above it. DataLoss when a stored value is corrupt.
  static absl::StatusOr<int64_t> LoadCommitted(store::TileStore* store,
                                               std::string_view source_name, int64_t lateness_ms);

 private:
  // The minimum over the active lanes other than `except` (kNone if one has no event time yet;
  // kMaxTimestamp-like sentinel kOpen if there is no other active lane).
  int64_t MinOfOtherActive(const std::string* except) const;
  void Recompute();

  static constexpr int64_t kOpen = std::numeric_limits<int64_t>::max();

  const std::string source_name_;
  const std::string key_;
  const int64_t lateness_ms_;
  std::map<std::string, int64_t> lanes_;  // lane -> newest event time
  std::vector<std::string> active_{""};
  int64_t max_event_time_ms_ = kNone;
  int64_t closed_by_ = kNone;
  int64_t committed_closed_by_ = kNone;
};

}  // namespace tessera::engine
