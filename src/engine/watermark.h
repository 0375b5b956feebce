#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "store/tile_store.h"

namespace tessera::engine {

// One source's watermark: the newest event time seen on the source minus its declared lateness.
// A row older than the watermark is late (dropped and counted); rows within the lateness still
// update their tile. Slots that end at or before the watermark are closed (their rollups are
// final, tile/ladder.h: SlotClosed).
//
// The max event time is persisted with every flush (metadata "source/{name}/max_event_time", in
// the same atomic write as the tiles), so a later run continues the same stream; the value as of
// the last commit is kept apart, since owed rollups may only be built for slots that the
// *committed* watermark closes.
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

  // Walks one batch's event times in stream order: marks (*late)[r] = 1 for each row older than
  // the watermark as it stands when the row arrives, else 0, and advances the max. Returns the
  // number of late rows. *late is resized to the batch.
  int64_t MarkLate(std::span<const int64_t> event_time_ms, std::vector<uint8_t>* late);

  // The newest event time seen (kNone before any row).
  int64_t max_event_time_ms() const { return max_event_time_ms_; }
  // The watermark for a max event time: slots ending at or before it are closed. kNone for kNone.
  int64_t ClosedBy(int64_t max_event_time_ms) const;
  // The current watermark, and the one of the last commit.
  int64_t closed_by() const { return ClosedBy(max_event_time_ms_); }
  int64_t committed_closed_by() const { return ClosedBy(committed_max_event_time_ms_); }
  int64_t lateness_ms() const { return lateness_ms_; }

  // Appends the persisted max to a flush's batch (nothing while there is no max).
  void AddToBatch(store::WriteBatch* batch) const;
  // The batch from AddToBatch() was written: the current max is now the committed one.
  void Committed() { committed_max_event_time_ms_ = max_event_time_ms_; }

  // Metadata key of the persisted max event time (source names are case-insensitive).
  static std::string Key(std::string_view source_name);

 private:
  const std::string source_name_;
  const std::string key_;
  const int64_t lateness_ms_;
  int64_t max_event_time_ms_ = kNone;
  int64_t committed_max_event_time_ms_ = kNone;
};

}  // namespace tessera::engine
