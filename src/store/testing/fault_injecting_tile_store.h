#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/tile_store.h"

namespace tessera::store {

// The TileStore operations a FaultInjectingTileStore counts and can fail.
// NewViewCursor counts as kScan.
enum class StoreOp : uint8_t {
  kScan,
  kGetSnapshot,
  kMultiGet,
  kWrite,
  kGetMeta,
  kScanMeta,
  kSync,
  kDeleteViewTiles,
};
inline constexpr size_t kNumStoreOps = 8;

// Test-only: wraps any TileStore and makes chosen calls fail, to test what the engine leaves
// behind at each crash point (in the spirit of RocksDB's FaultInjectionTestFS).
//
//   FailNth(op, n)       the n-th call of `op` from now fails (once); a failed Write applies
//                        nothing, like an atomic write that never happened
//   FailNthWriteAfterApplying(n)
//                        the n-th Write from now is applied, then reports failure: the process
//                        "died" after the store made the batch durable but before it learned so
//   CrashAfter(n)        after n more calls (of any op), every call fails and nothing more
//                        reaches the wrapped store, until Heal(): a process that died there
//
// A failing call returns the injected status (Unavailable unless given) and does not reach the
// wrapped store. GetSnapshot cannot fail (a snapshot changes nothing): it is counted but never
// fails, crashed or not. Calls are counted per op whether or not they fail.
//
// Thread-safe: all methods may be called concurrently, like the TileStore they wrap.
class FaultInjectingTileStore final : public TileStore {
 public:
  // Wraps `base` (not owned; must outlive this).
  explicit FaultInjectingTileStore(TileStore* base) : base_(base) {}
  // Wraps and owns `base`.
  explicit FaultInjectingTileStore(std::unique_ptr<TileStore> base)
      : owned_(std::move(base)), base_(owned_.get()) {}

  // REQUIRES: n >= 1.
  void FailNth(StoreOp op, int64_t n,
               absl::Status status = absl::UnavailableError("injected store fault"));
  void FailNthWriteAfterApplying(int64_t n,
                                 absl::Status status = absl::UnavailableError("injected fault "
                                                                              "after the write"));
  // REQUIRES: n >= 0 (0: the next call already fails).
  void CrashAfter(int64_t n, absl::Status status = absl::UnavailableError("injected crash"));
  // Clears every pending fault and the crash; counts are kept.
  void Heal();

  // Calls of `op` so far (failed ones included), and of all ops.
  int64_t calls(StoreOp op) const;
  int64_t total_calls() const;
  // Calls that failed by injection so far.
  int64_t failures() const;
  bool crashed() const;

  TileStore* base() const { return base_; }

  absl::Status ScanAt(const StoreSnapshot* snapshot, uint32_t view_id, std::string_view entity_key,
                      Resolution resolution, int64_t from_ms, int64_t to_ms,
                      const std::function<void(int64_t, std::string_view)>& fn) override;
  std::shared_ptr<const StoreSnapshot> GetSnapshot() override;
  absl::Status MultiGet(const std::vector<TileKey>& keys,
                        std::vector<std::optional<std::string>>* values) override;
  absl::Status Write(const WriteBatch& batch) override;
  absl::StatusOr<std::optional<std::string>> GetMeta(std::string_view key) override;
  absl::Status ScanMeta(std::string_view prefix,
                        const std::function<void(std::string_view, std::string_view)>& fn) override;
  absl::Status Sync() override;
  bool supports_view_ranges() const override { return base_->supports_view_ranges(); }
  absl::StatusOr<std::unique_ptr<ViewCursor>> NewViewCursor(uint32_t view_id,
                                                            const EntityRange& range) override;
  absl::Status DeleteViewTiles(uint32_t first_view_id, uint32_t last_view_id) override;

 private:
  // What to do with one call.
  enum class Verdict { kPass, kFail, kApplyThenFail };
  struct Fault {
    int64_t at_call = 0;  // the call number (per op) that fails; 0 = none
    bool apply_first = false;
    absl::Status status;
  };
  // Counts the call and decides; *status is the failure to return.
  Verdict Decide(StoreOp op, absl::Status* status);

  std::unique_ptr<TileStore> owned_;
  TileStore* base_;
  mutable std::mutex mu_;
  std::array<int64_t, kNumStoreOps> calls_{};  // guarded by mu_
  std::array<std::vector<Fault>, kNumStoreOps> faults_;
  int64_t total_calls_ = 0;
  int64_t failures_ = 0;
  std::optional<int64_t> crash_at_total_;  // calls after which everything fails
  absl::Status crash_status_;
};

}  // namespace tessera::store
