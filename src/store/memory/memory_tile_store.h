#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/tile_store.h"

namespace tessera::store {

// In-memory TileStore for unit tests: ordered maps under a reader-writer lock. Nothing is
// persisted; Sync() is a no-op.
//
// Thread-safety: all methods may be called concurrently. Write() holds the lock exclusively for
// the whole batch, so readers see none or all of it. Scan/ScanMeta copy the matching entries out
// and call `fn` without holding the lock, so `fn` may call back into the store.
//
// The maps are keyed by the logical tuple rather than store/key_codec.h bytes on purpose: the
// shared conformance suite then checks the RocksDB byte layout against an independent model.
class MemoryTileStore final : public TileStore {
 public:
  MemoryTileStore() = default;
  MemoryTileStore(const MemoryTileStore&) = delete;
  MemoryTileStore& operator=(const MemoryTileStore&) = delete;

  absl::Status Scan(uint32_t view_id, std::string_view entity_key, Resolution resolution,
                    int64_t from_ms, int64_t to_ms,
                    const std::function<void(int64_t, std::string_view)>& fn) override;
  absl::Status MultiGet(const std::vector<TileKey>& keys,
                        std::vector<std::optional<std::string>>* values) override;
  absl::Status Write(const WriteBatch& batch) override;
  absl::StatusOr<std::optional<std::string>> GetMeta(std::string_view key) override;
  absl::Status ScanMeta(std::string_view prefix,
                        const std::function<void(std::string_view, std::string_view)>& fn) override;
  absl::Status Sync() override { return absl::OkStatus(); }

  // Number of stored tiles (for tests).
  size_t tile_count() const;

 private:
  // (view_id, entity_key, resolution, start_ms): lexicographic tuple order keeps one
  // (view, key, resolution)'s tiles contiguous and in start order.
  using TileId = std::tuple<uint32_t, std::string, uint8_t, int64_t>;

  mutable std::shared_mutex mu_;
  std::map<TileId, std::string> tiles_;                   // guarded by mu_
  std::map<std::string, std::string, std::less<>> meta_;  // guarded by mu_
};

}  // namespace tessera::store
