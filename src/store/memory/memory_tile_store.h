#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/mutex.h"
#include "store/event_log.h"
#include "store/tile_store.h"

namespace tessera::store {

// In-memory TileStore and EventLog for unit tests: ordered maps under locks. Nothing is
// persisted; Sync() is a no-op. One object gives both interfaces (`EventLog& log = store;`).
//
// Thread-safety: all methods may be called concurrently. Write() holds the lock exclusively for
// the whole batch, so readers see none or all of it. Scan/ScanMeta copy the matching entries out
// and call `fn` without holding the lock, so `fn` may call back into the store.
//
// The event log has its own mutex, held for a whole Append (there is no fsync to share), so seqs
// become readable in order and are dense. Batch ids follow the RocksDB store's retention rule:
// Trim(source, n) forgets those of entries with seq <= n - batch_id_retention_entries.
//
// The maps are keyed by the logical tuple rather than store/key_codec.h bytes on purpose: the
// shared conformance suite then checks the RocksDB byte layout against an independent model.
class MemoryTileStore final : public TileStore, public EventLog {
 public:
  MemoryTileStore() = default;
  explicit MemoryTileStore(uint64_t batch_id_retention_entries)
      : batch_id_retention_entries_(batch_id_retention_entries) {}
  MemoryTileStore(const MemoryTileStore&) = delete;
  MemoryTileStore& operator=(const MemoryTileStore&) = delete;

  absl::Status ScanAt(const StoreSnapshot* snapshot, uint32_t view_id, std::string_view entity_key,
                      Resolution resolution, int64_t from_ms, int64_t to_ms,
                      const std::function<void(int64_t, std::string_view)>& fn) override;
  // A full copy of the tiles (fine for the small data of unit tests).
  std::shared_ptr<const StoreSnapshot> GetSnapshot() override;
  absl::Status MultiGet(const std::vector<TileKey>& keys,
                        std::vector<std::optional<std::string>>* values) override;
  absl::Status Write(const WriteBatch& batch) override;
  absl::StatusOr<std::optional<std::string>> GetMeta(std::string_view key) override;
  absl::Status ScanMeta(std::string_view prefix,
                        const std::function<void(std::string_view, std::string_view)>& fn) override;
  absl::Status Sync() override { return absl::OkStatus(); }
  bool supports_view_ranges() const override { return true; }
  // Copies the view's tiles in the range out, in view-key order.
  absl::StatusOr<std::unique_ptr<ViewCursor>> NewViewCursor(uint32_t view_id,
                                                            const EntityRange& range) override;
  absl::Status DeleteViewTiles(uint32_t first_view_id, uint32_t last_view_id) override;

  using EventLog::Append;
  absl::StatusOr<AppendResult> Append(std::string_view source, std::string_view batch_id,
                                      std::string_view payload, int64_t accepted, int64_t rejected,
                                      std::string_view annotation) override;
  // Copies the entries out and calls `fn` without holding the lock.
  absl::Status Read(std::string_view source, uint64_t after_seq, size_t max_bytes,
                    const std::function<void(uint64_t, std::string_view)>& fn) override;
  absl::StatusOr<uint64_t> LastSeq(std::string_view source) override;
  absl::Status Trim(std::string_view source, uint64_t up_to_seq) override;

  // Number of stored tiles (for tests).
  size_t tile_count() const;
  // Every stored tile in key order, and every metadata entry (for tests that compare stores).
  std::vector<std::pair<TileKey, std::string>> AllTiles() const;
  std::vector<std::pair<std::string, std::string>> AllMeta() const;

 private:
  // (view_id, entity_key, resolution, start_ms): lexicographic tuple order keeps one
  // (view, key, resolution)'s tiles contiguous and in start order.
  using TileId = std::tuple<uint32_t, std::string, uint8_t, int64_t>;

  mutable SharedMutex mu_;
  std::map<TileId, std::string> tiles_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string, std::less<>> meta_ ABSL_GUARDED_BY(mu_);

  struct LogSource {
    uint64_t last_seq = 0;
    std::map<uint64_t, std::string> entries;
    std::map<std::string, AppendResult, std::less<>> batch_ids;
    std::map<uint64_t, std::string> batch_id_by_seq;  // for retention
  };
  const uint64_t batch_id_retention_entries_ = 1'000'000;
  Mutex log_mu_;
  std::map<std::string, LogSource, std::less<>> log_ ABSL_GUARDED_BY(log_mu_);
};

}  // namespace tessera::store
