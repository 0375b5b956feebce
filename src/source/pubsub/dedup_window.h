#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/tile_store.h"

namespace tessera::source {

// How long the Pub/Sub connector remembers the ids of committed messages.
struct DedupOptions {
  // An id stays for at least this much *running time* after the flush that committed it
  // ('dedup-window'). Running time is the engine's clock while the source runs: a restart resumes
  // it where the last checkpoint left it, so time while the engine is down (or between its last
  // flush and a crash) does not age the window. 0 = no deduplication.
  int64_t window_ms = 10 * 60 * 1000;
  // At most the newest ids of this many messages are kept ('dedup-max-messages'), rounded up to
  // whole flushes: a segment is dropped only when the newer ones alone hold max_ids. Bounds memory
  // (about 40 bytes per id) when the rate times the window is large.
  size_t max_ids = 2'000'000;
  // Deletes of dropped segments per checkpoint, at most; the rest go in later checkpoints (a flush
  // writes a bounded number of keys).
  size_t max_deletes_per_checkpoint = 64;
};

// The set of Pub/Sub message ids a source has handed to its pipeline recently, persisted in the
// tile store's atomic flush so it always agrees with the tiles: after a crash it holds exactly the
// ids whose rows the tiles hold (within the window), so a redelivery of one of them is recognised.
//
// Persisted as segments, one per flush that handed out messages: store::meta::PubSubDedupKey
// (source, segment number) -> EncodeSegment(), plus the running time at the checkpoint
// (store::meta::PubSubClockKey). A flush writes at most one segment and the clock, and deletes at
// most max_deletes_per_checkpoint dropped segments. Ids are kept exactly (no hashing, so no false
// positives): ids in canonical decimal that fit 64 bits (what Pub/Sub and its emulator assign)
// as numbers, any other id as its bytes.
//
// Not thread-safe: the connector calls it under its own lock.
class DedupWindow {
 public:
  // One segment's ids and the running time (ms) of the flush that committed them.
  struct Segment {
    int64_t committed_ms = 0;
    std::vector<uint64_t> numeric;
    std::vector<std::string> other;
  };

  // An empty window for `source_name` reading `subscription` (the full
  // "projects/P/subscriptions/S"), whose running time is the wall time.
  DedupWindow(std::string source_name, std::string subscription, DedupOptions options);

  // The window the last committed flush left in `store`; `now_ms` is the engine's wall clock.
  // Segments written for another subscription (the source's 'subscription' changed) are not
  // loaded, since message ids are only unique within a topic; they are deleted by later
  // checkpoints, as are segments already out of the window. DataLoss naming the key when a
  // segment does not decode.
  static absl::StatusOr<DedupWindow> Load(store::TileStore* store, std::string source_name,
                                          std::string subscription, DedupOptions options,
                                          int64_t now_ms);

  // True when `id` is in the window: committed within it, or handed out since the last
  // checkpoint.
  bool Contains(std::string_view id) const;
  // Remembers `id` as handed out (it becomes part of the next checkpoint). Returns false and
  // changes nothing when it is already in the window.
  bool Insert(std::string_view id);

  // At a flush: the ids inserted since the last checkpoint become one segment committed at the
  // current running time, put into `batch` with the running time; segments out of the window (by
  // running time or by max_ids) are dropped from memory and their keys deleted (at most
  // max_deletes_per_checkpoint per call). `now_ms` is the engine's wall clock. Call only when the
  // batch will be written with the tiles holding every row handed out so far.
  void AddCheckpoint(int64_t now_ms, store::WriteBatch* batch);

  // Ids remembered (committed and pending).
  size_t size() const { return numeric_.size() + other_.size(); }
  // Ids inserted since the last checkpoint.
  size_t pending() const { return pending_.numeric.size() + pending_.other.size(); }
  // Running time (ms) since the oldest committed segment, or 0 when there is none: how far back
  // the window reaches now.
  int64_t OldestAgeMs(int64_t now_ms) const;
  // Segment keys dropped from memory whose deletes have not been put into a batch yet.
  size_t deletes_owed() const { return owed_deletes_.size(); }

  // The value of one segment key: byte 1 (version), zigzag varint committed_ms, the
  // subscription (varint length + bytes), varint count of numeric ids and the ids sorted
  // ascending as varints (the first as is, then each difference from the previous), varint count
  // of other ids, each as varint length + bytes. Sorts segment.numeric.
  static std::string EncodeSegment(std::string_view subscription, Segment* segment);
  // Decodes EncodeSegment's bytes. DataLoss naming `what` on truncation, trailing bytes, an
  // unknown version, or numeric ids that are not strictly ascending.
  static absl::Status DecodeSegment(std::string_view bytes, std::string_view what,
                                    std::string* subscription, Segment* segment);
  // The id as a number when it is canonical decimal (no sign, no leading zero) and fits 64 bits.
  static std::optional<uint64_t> NumericId(std::string_view id);

 private:
  struct Stored {
    uint64_t seq = 0;
    Segment segment;
  };

  int64_t RunningMs(int64_t now_ms) const { return now_ms + clock_offset_ms_; }
  void Expire(int64_t running_ms);
  void Drop();  // the oldest stored segment

  std::string source_name_;
  std::string subscription_;
  DedupOptions options_;
  int64_t clock_offset_ms_ = 0;  // running time = wall time + offset
  uint64_t next_seq_ = 0;
  std::deque<Stored> segments_;  // committed, oldest first
  Segment pending_;              // handed out since the last checkpoint
  absl::flat_hash_set<uint64_t> numeric_;
  absl::flat_hash_set<std::string> other_;
  std::vector<uint64_t> owed_deletes_;  // segments dropped, keys not yet deleted
};

}  // namespace tessera::source
