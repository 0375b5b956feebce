#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/mutex.h"
#include "store/slot_store.h"
#include "store/tile_store.h"

// Tiles in Cloud Bigtable (or its emulator), written by several workers through writer slots:
// the protocol and the schema are docs/scale_out.md ("Bigtable schema"), implemented here
// exactly. In short, one table holds
//   * tile rows, keyed by EncodeTileKey (store/key_codec.h): family `b` (base tiles) or `r`
//     (hour and day rollups), one column per (slot, version), qualifier = slot bytes + version
//     (8 bytes big-endian), cell timestamp = the tile's start in ms × 1000 (clamped to
//     [0, INT64_MAX / 1000] ms, Bigtable's millisecond granularity; base-tile GC ages by it);
//   * slot rows, keyed 's' + slot name: `s:gen` (the owner generation, 8 bytes big-endian,
//     bumped by ReadModifyWriteRow), `s:c` + generation (8 bytes BE) = the last version count n
//     that generation committed (8 bytes BE), and `m:` + key = the slot's metadata.
// A cell of version v = generation << 32 | n is valid when its generation committed a count
// >= n; readers use the newest valid cell of each (tile, slot).
namespace tessera::store {

class BigtableClient;

// Where a store lives: bigtable://PROJECT/INSTANCE/TABLE.
struct BigtableUri {
  std::string project;
  std::string instance;
  std::string table;

  // "projects/PROJECT/instances/INSTANCE"
  std::string InstanceName() const;
  // "projects/PROJECT/instances/INSTANCE/tables/TABLE"
  std::string TableName() const;
  // "bigtable://PROJECT/INSTANCE/TABLE"
  std::string ToString() const;
};

// Parses "bigtable://PROJECT/INSTANCE/TABLE". InvalidArgument naming the URI and the expected form
// for a wrong scheme, a missing or empty part, extra parts, or a part with characters Bigtable
// refuses (project: letters, digits, '-', '.', ':'; instance: letters, digits, '-', '_'; table:
// [_a-zA-Z0-9][-_.a-zA-Z0-9]*, at most 50 characters). Pure, thread-safe.
absl::StatusOr<BigtableUri> ParseBigtableUri(std::string_view uri);

// Retries of one Bigtable call. Only UNAVAILABLE, DEADLINE_EXCEEDED and ABORTED (as the call's
// status or as a MutateRows entry's status) are retried; every other code fails at once.
struct BigtableRetryOptions {
  // Attempts per call, the first included. 1 = no retries.
  int max_attempts = 8;
  // Sleep before the first retry; each later one doubles it, up to max_backoff_ms. The actual
  // sleep is uniform in [backoff / 2, backoff] (jitter, so retrying workers spread out).
  int64_t initial_backoff_ms = 20;
  int64_t max_backoff_ms = 2000;
  // No retry starts once this much time has passed since the call's first attempt.
  int64_t total_timeout_ms = 60'000;
};

// How to reach Bigtable and how to behave there. Defaults suit `tessera run` against Bigtable.
struct BigtableOptions {
  // Data API endpoint. "" = $BIGTABLE_EMULATOR_HOST (plaintext) when set, as Google's clients
  // do, else bigtable.googleapis.com:443 with TLS and Google default credentials.
  // "http://host:port" = plaintext (an emulator); "host:port" or "https://host:port" = TLS with
  // Google default credentials.
  std::string endpoint;
  // Table admin API endpoint, same forms. "" = `endpoint` when that is set and plaintext (the
  // emulator serves both APIs on one port), bigtableadmin.googleapis.com:443 when it is set and
  // TLS; when `endpoint` is "" too: $BIGTABLE_EMULATOR_HOST when set, else
  // bigtableadmin.googleapis.com:443.
  std::string admin_endpoint;
  // Sent with every data request ("" = the instance's default profile).
  std::string app_profile_id;
  // Deadline of one attempt of a unary call (CheckAndMutateRow, ReadModifyWriteRow, admin calls).
  int64_t rpc_timeout_ms = 20'000;
  // Deadline of one attempt of a streaming call (ReadRows, MutateRows).
  int64_t stream_timeout_ms = 120'000;
  BigtableRetryOptions retry;
  // CommitSlot writes its cells with MutateRows requests of at most this many rows and about this
  // many bytes (a single larger row goes alone), up to max_parallel_requests at once.
  size_t max_rows_per_request = 10'000;
  size_t max_request_bytes = size_t{16} << 20;
  int max_parallel_requests = 4;
  // Reads by row keys (MultiGet, MultiGetSlot) ask for at most this many rows per request.
  size_t max_keys_per_read = 10'000;
  // Readers reuse the slots' commit state (one ReadRows of all slot rows) for this long; a read
  // that finds cells newer than the state re-reads the state at once regardless.
  int64_t commit_state_cache_ms = 100;
  // A read that finds a (tile, slot) whose valid cell was deleted while it read (its slot
  // rewrote the tile several times meanwhile) reads the commit state and the rows again, up to
  // this many times; then it fails with Aborted.
  int max_read_restarts = 3;
  // Write() re-claims the default slot and retries this many times when another owner fenced it.
  int write_fence_retries = 3;
  // An owner remembers which of its slot's versions each tile row holds, from its MultiGetSlot
  // reads until its next commit, so a flush that read its tiles first (read-merge-write) need not
  // read the rows again before deleting superseded cells; at most this many tiles per slot
  // (beyond it the memory is dropped and rows are read). Forgotten at every commit.
  size_t max_remembered_tiles = 100'000;
  // The Bigtable emulator does not read a row atomically while it is being mutated: its ReadRows
  // walks the row's column list after releasing the row lock, and a concurrent write that adds or
  // deletes columns changes that list in place, so a read can miss a cell (seen as torn reads
  // under concurrent flushes). With this on, every ReadRows filter F is sent as
  // Interleave(F, block_all), which selects the same cells on Bigtable and makes the emulator
  // rebuild each row from its private copy. nullopt = on for plaintext (emulator) endpoints.
  std::optional<bool> emulator_read_workaround;
  // Open fails unless the table exists with families b, r, s and m (needs the admin API's
  // bigtable.tables.get). False skips the check (data-only credentials).
  bool check_table = true;
  // Time for the commit-state cache and retry deadlines. Null = SystemClock::Default(). Retry
  // sleeps are real sleeps.
  const Clock* clock = nullptr;
  // Requests, retries and latency per method (tessera_bigtable_*), when set. Not owned; must
  // outlive the store.
  MetricsRegistry* metrics = nullptr;
  // When a slot rewrites a tile, it deletes its older cells of the tile except the newest valid
  // one (which readers of the previous commit use) and this many valid ones before it. A
  // snapshot (GetSnapshot) stays exact while each tile is rewritten at most 1 + this many times
  // after it was taken; each kept cell costs one more copy of the tile state in the table.
  int superseded_cells_kept = 1;
};

// Tiles and metadata in one Bigtable table (docs/scale_out.md). A TileStore whose slots() is
// itself: writers flush through ClaimSlot / CommitSlot; Write() and MultiGet() act on the default
// slot "" (Write claims it lazily and is serialized within the process; when another owner fenced
// it, Write re-claims and retries up to write_fence_retries times).
//
// Reads:
//   * Scan reads the row range [EncodeTileKey(from), EncodeTileKey(to)) of one (view, key,
//     resolution) and calls fn once per (start, slot) holding a valid cell, in increasing start
//     (slots of one start in name order); the tile values are read whole before the first call.
//   * Validity comes from the slots' commit state (all slot rows' `s:` family), cached for
//     commit_state_cache_ms and updated at once by this object's own claims and commits (so a
//     read sees every commit this object made before it). A read that finds a cell newer than the
//     state (an uncommitted flush, or a commit not seen yet) re-reads the state; if that changed
//     for the slot, the rows are read again, so one read never mixes two commits of one slot.
//   * GetSnapshot pins the current commit state: reads through it ignore later commits. Writers
//     keep a slot's superseded cells of a tile for superseded_cells_kept more rewrites (below), so
//     a snapshot stays exact while each tile is rewritten at most 1 + superseded_cells_kept
//     times (default 2) after it was taken, by any process; an older snapshot may miss such tiles.
//   * GetMeta / ScanMeta read the slot rows' `m:` cells (always current; metadata changes only in
//     commits): the union over all slots, the default slot's entry first when two slots hold one
//     key; ScanMeta in key order.
// Writes (CommitSlot):
//   1. MutateRows of the tile cells (version v = generation << 32 | n, n = the owner's commit
//      count + 1), batched and retried per entry on retryable codes (explicit versions and
//      timestamps make every mutation idempotent). In the same mutation of each tile row, the
//      slot's other cells of this or older generations are deleted except its newest valid one
//      (the one the new value replaces, which readers of the previous commit still use) and the
//      superseded_cells_kept valid ones before it (for snapshots); garbage goes too. The
//      owner knows which versions a row holds from its last MultiGetSlot of that tile or its own
//      last commit of it (remembered per slot); rows it knows nothing about are read first (one
//      ReadRows of the slot's qualifiers, values stripped). Cells of newer generations are never
//      touched (this object may be fenced without knowing yet).
//   2. CheckAndMutateRow of the slot row: if s:gen == the claimed generation (newest cell), set
//      s:c<generation> := n and apply the metadata sets and deletes. Predicate false: fenced
//      (FailedPrecondition, message contains "fenced"). When the call had to be retried after an
//      attempt of unknown outcome, a false predicate is resolved by reading s:c<generation>.
//   Any failure drops this object's claim of the slot (the next write of the slot needs a new
//   ClaimSlot, which also keeps a failed flush's cells invalid forever).
// Sync() does nothing: Bigtable writes are durable when acknowledged.
//
// Thread-safety: all methods may be called concurrently. Calls for one slot (ClaimSlot,
// CommitSlot, MultiGetSlot) are serialized internally. Errors: every gRPC failure becomes an
// absl::Status with the same code, naming the call and the table; no exception escapes (one
// thrown by a caller's callback becomes Internal).
class BigtableTileStore final : public TileStore, public SlotStore {
 public:
  ~BigtableTileStore() override;
  BigtableTileStore(const BigtableTileStore&) = delete;
  BigtableTileStore& operator=(const BigtableTileStore&) = delete;

  // TileStore.
  absl::Status ScanAt(const StoreSnapshot* snapshot, uint32_t view_id, std::string_view entity_key,
                      Resolution resolution, int64_t from_ms, int64_t to_ms,
                      const std::function<void(int64_t, std::string_view)>& fn) override;
  std::shared_ptr<const StoreSnapshot> GetSnapshot() override;
  // The default slot's valid cells (as Scan, for slot "" only).
  absl::Status MultiGet(const std::vector<TileKey>& keys,
                        std::vector<std::optional<std::string>>* values) override;
  // CommitSlot("", batch), claiming "" first when this object does not hold it. An empty batch
  // does nothing.
  absl::Status Write(const WriteBatch& batch) override;
  absl::StatusOr<std::optional<std::string>> GetMeta(std::string_view key) override;
  absl::Status ScanMeta(std::string_view prefix,
                        const std::function<void(std::string_view, std::string_view)>& fn) override;
  absl::Status Sync() override { return absl::OkStatus(); }
  SlotStore* slots() override { return this; }
  // Bigtable refuses row keys over 4 KiB; a tile key adds 16 bytes to the entity key
  // (store/key_codec.h: namespace, view id, a 2-byte length, resolution, start).
  size_t max_entity_key_bytes() const override { return 4096 - 16; }

  // SlotStore (see the class comment for how they map onto Bigtable calls).
  absl::StatusOr<SlotClaim> ClaimSlot(std::string_view slot) override;
  absl::Status CommitSlot(std::string_view slot, const WriteBatch& batch) override;
  // For the owner (a slot this object claimed): validity from the owner's exact knowledge, and the
  // rows' versions are remembered for the next CommitSlot. For anyone else, and for an owner that
  // finds cells of a newer generation (it was fenced): as MultiGet, for this slot.
  absl::Status MultiGetSlot(std::string_view slot, const std::vector<TileKey>& keys,
                            std::vector<std::optional<std::string>>* values) override;

  const BigtableUri& uri() const { return uri_; }
  // The generation this object holds for `slot`, or nullopt when it holds no claim.
  std::optional<uint64_t> ClaimedGeneration(std::string_view slot);

  // Fault injection for tests, acting on this object's commits (CommitSlot and Write's):
  // `before_commit_row` runs after a commit wrote its cells and before its commit row, without
  // this object's slot locks (it may read the store, or claim the slot through another store
  // object to fence the commit); an error from it is returned as the commit's, leaving the cells
  // written and uncommitted, as a crash there would. `after_commit_row` runs after a successful
  // commit row; an error from it is returned as the commit's (an unknown outcome). Empty
  // functions do nothing. Thread-safe; a commit uses the hooks set when it began.
  // REQUIRES: a hook does not Write or CommitSlot through this object.
  struct TestHooks {
    std::function<absl::Status(std::string_view slot)> before_commit_row;
    std::function<absl::Status(std::string_view slot)> after_commit_row;
  };
  void SetTestHooks(TestHooks hooks);

 private:
  friend absl::StatusOr<std::unique_ptr<BigtableTileStore>> OpenBigtableStore(
      std::string_view uri, const BigtableOptions& options);

  // The commit state of one slot as a reader knows it.
  struct SlotCommits {
    uint64_t generation = 0;                 // newest s:gen seen
    std::map<uint64_t, uint64_t> committed;  // generation -> last committed n
    friend bool operator==(const SlotCommits&, const SlotCommits&) = default;
  };
  using CommitState = std::map<std::string, SlotCommits, std::less<>>;
  struct CachedState {
    std::shared_ptr<const CommitState> state;
    int64_t fetched_nanos = 0;  // Clock::MonotonicNanos() when the fetch began
  };
  // This object's ownership of one slot.
  struct Owner {
    uint64_t generation = 0;
    uint64_t committed_n = 0;                      // of `generation`
    std::map<uint64_t, uint64_t> older_committed;  // final, read at the claim
    // Encoded tile key -> the slot's versions the row holds (as far as this owner knows).
    std::map<std::string, std::vector<uint64_t>, std::less<>> versions;
  };
  struct SlotEntry {
    Mutex mu;
    std::optional<Owner> owner ABSL_GUARDED_BY(mu);
  };
  class Snapshot;
  // One read of tile rows with its evaluation (bigtable_tile_store.cc).
  struct ReadPlan;

  BigtableTileStore(BigtableUri uri, const BigtableOptions& options,
                    std::unique_ptr<BigtableClient> client);

  SlotEntry* Entry(std::string_view slot);
  absl::StatusOr<SlotClaim> ClaimLocked(std::string_view slot, SlotEntry* entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(entry->mu);
  // A commit whose cells are written (step 1), to be made visible by its commit row (step 2).
  struct PendingCommit {
    uint64_t generation = 0;
    uint64_t n = 0;
    std::vector<std::string> keys;            // the encoded tile keys written
    std::vector<std::vector<uint64_t>> kept;  // per key: the slot's versions the row holds now
  };
  // CommitSlot: steps 1 and 2 under the slot's lock (released around the before-commit hook);
  // drops the claim on any failure. Sets *fenced when another claim made it fail.
  absl::Status Commit(std::string_view slot, const WriteBatch& batch, bool* fenced);
  absl::StatusOr<PendingCommit> WriteCells(std::string_view slot, Owner* owner,
                                           const WriteBatch& batch);
  absl::Status CommitRow(std::string_view slot, Owner* owner, const PendingCommit& pending,
                         const WriteBatch& batch, bool* fenced);
  // Sets *fenced when a row holds a cell of a newer generation (the values are then unusable).
  absl::Status MultiGetOwned(std::string_view slot, Owner* owner, const std::vector<TileKey>& keys,
                             std::vector<std::optional<std::string>>* values, bool* fenced);
  absl::Status MultiGetShared(std::string_view slot, const std::vector<TileKey>& keys,
                              std::vector<std::optional<std::string>>* values);
  // The cached commit state, fetched again when older than commit_state_cache_ms (or always when
  // `force`).
  absl::StatusOr<CachedState> State(bool force);
  // Merges `fresh` into the cache (per slot, component-wise maximum: generations and committed
  // counts only grow) and returns the merged state.
  CachedState MergeState(const CommitState& fresh, int64_t fetched_nanos);
  // Reads plan.read's rows and picks their valid cells under the pinned state, or under the
  // cached state, re-reading the state and the rows as the class comment describes.
  absl::Status ReadConsistent(ReadPlan* plan);
  // Installs what this object learned of one slot's commits (its claims and commits) in the cache.
  void MergeSlot(std::string_view slot, const SlotCommits& commits);

  const BigtableUri uri_;
  const BigtableOptions options_;
  const Clock* const clock_;
  std::unique_ptr<BigtableClient> client_;

  Mutex write_mu_;  // serializes Write()
  Mutex slots_mu_;
  std::map<std::string, std::unique_ptr<SlotEntry>, std::less<>> slots_ ABSL_GUARDED_BY(slots_mu_);
  Mutex cache_mu_;
  CachedState cache_ ABSL_GUARDED_BY(cache_mu_);
  Mutex hooks_mu_;
  TestHooks hooks_ ABSL_GUARDED_BY(hooks_mu_);
};

// Connects to the table of `uri` ("bigtable://PROJECT/INSTANCE/TABLE"). Unless
// options.check_table is false, checks with the admin API that the table exists with families
// b, r, s and m: NotFound / FailedPrecondition otherwise, telling to run
// `tessera store init --store URI`. No data is read.
absl::StatusOr<std::unique_ptr<BigtableTileStore>> OpenBigtableStore(
    std::string_view uri, const BigtableOptions& options = {});

// What CreateBigtableTable did.
struct BigtableTableSetup {
  bool created = false;  // the table did not exist
  // For an existing table: each change made, e.g. "created column family r" or "family b: GC rule
  // max_age 86400s -> (none)". Empty when the table already matched.
  std::vector<std::string> changes;
};

// Creates the table of `uri` with the families of the schema: b (GC: max_age = base_retention_ms
// when > 0, else none: keep), r (no GC), s and m (max 1 version). Idempotent: for an existing
// table, creates missing families and sets the GC rules of b, r, s and m to these (reported in
// `changes`); other families are left alone. Uses the admin endpoint.
absl::StatusOr<BigtableTableSetup> CreateBigtableTable(std::string_view uri,
                                                       const BigtableOptions& options,
                                                       int64_t base_retention_ms);

// Deletes the table of `uri` and all its data (tests, `tessera store drop`). NotFound when absent.
absl::Status DeleteBigtableTable(std::string_view uri, const BigtableOptions& options);

}  // namespace tessera::store
