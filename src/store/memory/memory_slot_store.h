#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/mutex.h"
#include "store/slot_store.h"
#include "store/tile_store.h"

namespace tessera::store {

// The contents of one in-memory "table" of a MemorySlotTileStore: tile cells per (tile, slot,
// version) and one row per slot. Opaque; share it (std::shared_ptr) between store objects to
// model several processes on one table. Thread-safe.
class MemorySlotState {
 public:
  MemorySlotState() = default;
  MemorySlotState(const MemorySlotState&) = delete;
  MemorySlotState& operator=(const MemorySlotState&) = delete;

 private:
  friend class MemorySlotTileStore;

  // (view_id, entity_key, resolution, start_ms), ordered like MemoryTileStore's keys.
  using TileId = std::tuple<uint32_t, std::string, uint8_t, int64_t>;
  // The cells of one (tile, slot): version (generation << 32 | n) -> the slot's whole state.
  using Versions = std::map<uint64_t, std::string>;
  // slot -> its cells of one tile.
  using TileCells = std::map<std::string, Versions, std::less<>>;

  struct SlotRow {
    uint64_t generation = 0;
    // generation -> the last n it committed (generations that never committed are absent).
    std::map<uint64_t, uint64_t> committed;
    std::map<std::string, std::string, std::less<>> meta;
  };

  struct Tables {
    std::map<TileId, TileCells> cells;
    std::map<std::string, SlotRow, std::less<>> slots;
  };

  mutable SharedMutex mu_;
  Tables tables_ ABSL_GUARDED_BY(mu_);
};

// Where FailNextCommit makes a commit stop, like a process killed at that point of a flush.
enum class CommitFault : uint8_t {
  kDuringCells,      // after writing the first half (rounded down) of the batch's cells
  kBeforeCommitRow,  // after writing every cell, before the commit row
  kAfterCommitRow,   // after the commit row: committed, but the caller learns only the error
};

// In-memory model of a store that is atomic per row only (Bigtable), for unit tests: a TileStore
// whose slots() is itself, following docs/scale_out.md exactly.
//
// Model:
//  - Every (tile, slot) holds cells under versions v = generation << 32 | n. A slot's row holds
//    its owner generation, the last committed n of every generation that committed, and the
//    slot's metadata. A cell is valid when its generation committed an n >= its own.
//  - ClaimSlot bumps the slot's generation and returns its committed metadata; the claim
//    (generation, next n) is remembered by this object only.
//  - CommitSlot takes a fresh n, writes the batch's cells (one lock hold, but visible to nobody),
//    then, in a second lock hold, commits n and the metadata only if the slot's generation is
//    still the claimed one. Between the two, other threads and peers run, as on Bigtable.
//    Writing a cell deletes the slot's older cells of that tile except its newest valid one
//    (the one the owner merged with); cells of newer generations are never touched.
//  - Readers (Scan/ScanAt/GetSnapshot/MultiGet/MultiGetSlot) use per (tile, slot) the newest
//    valid cell. Scan reports a start once per slot holding a valid cell there, in slot-name
//    order within a start. GetMeta/ScanMeta see the union of every slot's metadata; a key held
//    by several slots is reported once, with the value of the first slot in name order (the
//    default slot "" comes first).
//  - Write()/MultiGet() act on the default slot "": Write claims "" on first use, commits the
//    batch through CommitSlot, and when fenced (another object claimed "") claims again and
//    retries (up to kMaxWriteAttempts), so concurrent writers of "" serialize.
//
// Any CommitSlot error, fenced or not, drops this object's claim of the slot: the next
// CommitSlot of it fails with FailedPrecondition until ClaimSlot succeeds again (the caller must
// treat the slot as lost after an error of unknown outcome; the store enforces it, so a
// generation that left garbage cells never commits again).
//
// Thread-safety: all methods may be called concurrently (CommitSlot calls for one slot must not
// overlap, as the interface requires; Write serializes its own calls). Scan/ScanMeta copy what
// they report and call `fn` without holding a lock, so `fn` may call back into the store.
class MemorySlotTileStore final : public TileStore, public SlotStore {
 public:
  // Write() gives up with Aborted after being fenced this many times in a row.
  static constexpr int kMaxWriteAttempts = 100;

  // A store object on a new, empty table.
  MemorySlotTileStore() : MemorySlotTileStore(std::make_shared<MemorySlotState>()) {}
  // A store object on `state`, which other objects may share (a second process on the same
  // table): claims by one fence the others. REQUIRES: state is non-null.
  explicit MemorySlotTileStore(std::shared_ptr<MemorySlotState> state) : state_(std::move(state)) {}
  MemorySlotTileStore(const MemorySlotTileStore&) = delete;
  MemorySlotTileStore& operator=(const MemorySlotTileStore&) = delete;

  // The table this object works on, to make peers: MemorySlotTileStore peer(store.state()).
  const std::shared_ptr<MemorySlotState>& state() const { return state_; }

  // TileStore.
  absl::Status ScanAt(const StoreSnapshot* snapshot, uint32_t view_id, std::string_view entity_key,
                      Resolution resolution, int64_t from_ms, int64_t to_ms,
                      const std::function<void(int64_t, std::string_view)>& fn) override;
  // A full copy of the table (fine for the small data of unit tests).
  std::shared_ptr<const StoreSnapshot> GetSnapshot() override;
  absl::Status MultiGet(const std::vector<TileKey>& keys,
                        std::vector<std::optional<std::string>>* values) override;
  absl::Status Write(const WriteBatch& batch) override;
  absl::StatusOr<std::optional<std::string>> GetMeta(std::string_view key) override;
  absl::Status ScanMeta(std::string_view prefix,
                        const std::function<void(std::string_view, std::string_view)>& fn) override;
  absl::Status Sync() override { return absl::OkStatus(); }
  SlotStore* slots() override { return this; }

  // SlotStore.
  // ResourceExhausted when the slot's generation would pass 2^32 - 1.
  absl::StatusOr<SlotClaim> ClaimSlot(std::string_view slot) override;
  // FailedPrecondition without a current claim of `slot` by this object; FailedPrecondition
  // containing "fenced" when another claim came since; ResourceExhausted after 2^32 - 1 commits
  // of one claim (claim again).
  absl::Status CommitSlot(std::string_view slot, const WriteBatch& batch) override;
  absl::Status MultiGetSlot(std::string_view slot, const std::vector<TileKey>& keys,
                            std::vector<std::optional<std::string>>* values) override;

  // Test hooks; each acts on this object's commits only (CommitSlot, and Write's commits).

  // The next commit stops at `where` and returns `status` (once). A commit stopped before its
  // commit row leaves its cells behind as garbage, like a killed process.
  void FailNextCommit(CommitFault where,
                      absl::Status status = absl::UnavailableError("injected commit fault"));
  // Runs `hook(slot)` in every later commit between its cell writes and its commit row, with no
  // lock held: it may read this store, or claim the slot through a peer to fence the commit.
  // Null clears it; a commit already running keeps the hook it started with.
  void SetBeforeCommitHook(std::function<void(std::string_view slot)> hook);

  // Cells stored in the table, valid or not (to check that garbage is cleaned up).
  size_t cell_count() const;

 private:
  struct Claim {
    uint64_t generation = 0;
    uint64_t next_n = 1;
  };

  // Drops this object's claim of `slot` if it is still of `generation`.
  void DropClaim(std::string_view slot, uint64_t generation);
  // CommitSlot; sets *fenced (when non-null) to whether it failed by being fenced.
  absl::Status Commit(std::string_view slot, const WriteBatch& batch, bool* fenced);

  const std::shared_ptr<MemorySlotState> state_;

  Mutex claims_mu_;  // before state_->mu_ when both are held
  std::map<std::string, Claim, std::less<>> claims_ ABSL_GUARDED_BY(claims_mu_);
  std::optional<std::pair<CommitFault, absl::Status>> fault_ ABSL_GUARDED_BY(claims_mu_);
  std::function<void(std::string_view)> before_commit_hook_ ABSL_GUARDED_BY(claims_mu_);

  Mutex write_mu_;  // held for a whole Write(): writers of the default slot serialize
};

}  // namespace tessera::store
