#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/tile_store.h"

// Writer slots: exactly-once flushes on a store whose writes are atomic per row only (Bigtable).
// docs/scale_out.md has the protocol and its proof sketch; this is its interface.
//
// A slot is one independent stream of writes: a Kafka partition of a source ("plays/plays/3"),
// or a whole single-stream source. Every tile cell a slot writes is that slot's own partial
// state (readers merge the slots' cells; states are mergeable), and the slot's metadata (the
// Kafka offset, the watermark lane, a log position) lives in the slot's own row. So one slot's
// flush changes one row atomically (the commit) plus cells no reader uses until that commit.
//
// Ownership: ClaimSlot makes this store object the slot's owner with a new generation, which
// fences every earlier owner (another process, or this one before a restart): their commits
// fail from then on. The store object remembers the generation it claimed for each slot.
namespace tessera::store {

// The slot of a source's lane: "<source>" for the lane "" (a source without partitions),
// "<source>/<lane>" otherwise (a Kafka partition: "<source>/<topic>/<partition>"). `source` is
// the source's name in lower case.
inline std::string SlotName(std::string_view source, std::string_view lane) {
  std::string name(source);
  if (!lane.empty()) {
    name += '/';
    name += lane;
  }
  return name;
}

struct SlotClaim {
  std::string slot;
  uint64_t generation = 0;  // > the generation of every earlier claim of the slot
  // The slot's committed metadata as of the claim, in key order. No earlier owner can change
  // it any more.
  std::vector<std::pair<std::string, std::string>> meta;
};

class SlotStore {
 public:
  virtual ~SlotStore() = default;

  // Atomically bumps the slot's generation (fencing earlier owners) and returns the slot's
  // committed metadata. Claiming a slot never seen creates it. Thread-safe.
  virtual absl::StatusOr<SlotClaim> ClaimSlot(std::string_view slot) = 0;

  // One flush of `slot` by its owner (REQUIRES: ClaimSlot(slot) succeeded on this object):
  // writes batch.tiles as the slot's new cells (each the slot's whole state of that tile), then,
  // in one atomic single-row write that succeeds only while the slot's generation is still the
  // claimed one, makes them visible together with batch.meta / batch.meta_deletes applied to
  // the slot's metadata. Readers see none of the batch before the commit and all of it after.
  //
  // FailedPrecondition ("fenced") when another owner claimed the slot since: nothing of the
  // batch ever becomes visible, and this object drops its claim (a new ClaimSlot is needed).
  // Other errors leave the outcome unknown (the commit may have happened); the caller must
  // treat the slot as lost and claim it again before writing, which re-reads the committed
  // metadata. Calls for one slot must not overlap; distinct slots may commit concurrently.
  virtual absl::Status CommitSlot(std::string_view slot, const WriteBatch& batch) = 0;

  // The slot's own committed cells: values->at(i) = the slot's committed cell of keys[i], or
  // nullopt. What the owner merges a delta into (read-merge-write per slot).
  virtual absl::Status MultiGetSlot(std::string_view slot, const std::vector<TileKey>& keys,
                                    std::vector<std::optional<std::string>>* values) = 0;
};

}  // namespace tessera::store
