#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/catalog_store.h"
#include "engine/flusher.h"
#include "store/tile_store.h"

// Spill runs: how a backfill stays within its memory budget without reading back what it wrote.
//
// A backfill into views that hold no tiles yet, once its open tiles outgrow the budget, writes
// each flush's open tiles as they are (deltas of base tiles: no reads, no rollups, nothing
// owed) into the store under a reserved view id per (view, flush): a *spill run*. A run is
// sorted and has a key range of its own, so RocksDB ingests it straight into the bottom level
// and never compacts it. Runs are committed like any flush, with the input progress and the
// watermark, plus the spill state (store::meta::SpillStateKey) that counts them.
//
// After the last flush the runs are merged view by view, in intervals of entity keys (between
// pivots sampled from the spilled keys), one interval per worker at a time: each base tile is
// the merge of its pieces, the hour and day rollups of closed slots are built from those pieces
// in memory (where two or more base tiles fall in the slot, as a flush of a new view does), and
// the rollups of open slots become owed markers (engine/rollups.h). Each round commits its
// intervals' tiles together with the state's progress, so a merge cut short resumes at the
// first interval not committed, and no interval is written twice. The intervals of a round
// are adjacent, so each commit's files again cover a key range of their own. Finally the runs
// are deleted (TileStore::DeleteViewTiles) and the state removed.
//
// Readers see a view's tiles only once its intervals are merged (a backfill's DB is not served
// while it is written; a follower would see the merged intervals appear).
namespace tessera::engine {

// Reserved view ids of spill runs: kSpillViewBit | view id << 19 | flush, so one view's runs are
// one range of ids (deleted at once). Catalog view ids count up from 1, far below the bit.
inline constexpr uint32_t kSpillViewBit = 0x80000000u;
inline constexpr uint32_t kMaxSpillViewId = (1u << 12) - 1;
inline constexpr uint32_t kMaxSpillFlushes = 1u << 19;
// REQUIRES: view_id <= kMaxSpillViewId, flush < kMaxSpillFlushes.
uint32_t SpillViewId(uint32_t view_id, uint32_t flush);

// Entity keys sampled per spilled shard, and the most a view keeps (its pivot candidates, each
// weighted by the spilled tiles it stands for). A kept sample is the first kMaxSampledKeyBytes of
// an encoded key, or the shorter prefix that still tells it from the sample before it: any bytes
// bound an interval, and long keys would bloat the state. With
// kMaxSamples, a merge round stays within half the budget up to ~kMaxSamples / threads budgets
// of spilled tiles.
inline constexpr size_t kSamplesPerShard = 64;
inline constexpr size_t kMaxSamples = 1024;
inline constexpr size_t kMaxSampledKeyBytes = 256;

// A sampled (encoded) entity key and the spilled tiles it stands for.
struct KeySample {
  std::string key;
  uint64_t weight = 0;
  friend bool operator==(const KeySample&, const KeySample&) = default;
};

// The spill state of one source (the value of store::meta::SpillStateKey).
struct SpillState {
  struct View {
    uint32_t view_id = 0;
    // Encoded entity keys (store::EncodeEntityInView, or a prefix of one), ascending, distinct.
    // Before the merge: weighted samples of the spilled keys. Once it has begun: the pivots
    // (weights 0), interval i being [pivots[i - 1], pivots[i]) with open ends at 0 and
    // pivots.size().
    std::vector<KeySample> keys;
    uint32_t merged_intervals = 0;  // intervals [0, merged_intervals) are merged
    bool merged() const { return merged_intervals > keys.size(); }
  };
  uint32_t flushes = 0;        // runs written; flush k's under SpillViewId(view, k)
  uint64_t spilled_bytes = 0;  // their tiles' bytes (keys and values)
  bool merging = false;        // the merge has begun (keys are pivots): no more runs
  std::vector<View> views;     // every view of the source, in the pipeline's order

  bool merged() const;
  // Binary: version byte, then varints and length-prefixed keys. Decode rejects anything
  // Encode cannot produce with DataLoss.
  std::string Encode() const;
  static absl::StatusOr<SpillState> Decode(std::string_view bytes);
};

// Adds `samples` to `keys` (keys ascending and distinct; samples in any order) and keeps at most
// kMaxSamples of the union: weighted quantiles, each carrying the weight of the keys it
// replaces, so old runs weigh as much as new ones; then cuts the keys (above).
void AddSamples(std::vector<KeySample> samples, std::vector<KeySample>* keys);

// Pivots for a merge into `intervals` intervals of about equal weight (fewer when there are
// fewer samples), with weights 0.
std::vector<KeySample> PickPivots(const std::vector<KeySample>& samples, size_t intervals);

// The range of entity keys of interval i of `pivots`.
store::EntityRange IntervalRange(const std::vector<KeySample>& pivots, size_t i);

// Merges the interval `range` of `view`'s spill runs 0 .. flushes-1 into final tiles, appended to
// `out` as one run in store key order under the view's own id: every base tile (the merge of
// its pieces, or the piece as it is when there is one), and the rollups of closed slots by the
// rules of FlushShard for a view with no stored tiles (engine/flusher.h; `closed_by_ms` and
// `kept_from_ms` as there); open slots' rollups go to out->owed (with out->owed_keys). Counts
// tiles in `stats`. The view must hold no tiles of its own in the interval.
absl::Status MergeSpillInterval(const ViewRuntime& view, store::TileStore* store, uint32_t flushes,
                                const store::EntityRange& range, int64_t closed_by_ms,
                                int64_t kept_from_ms, FlushOutput* out, FlushStats* stats);

}  // namespace tessera::engine
