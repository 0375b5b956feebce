#include "store/memory/memory_tile_store.h"

#include <mutex>
#include <utility>

namespace tessera::store {

absl::Status MemoryTileStore::Scan(uint32_t view_id, std::string_view entity_key,
                                   Resolution resolution, int64_t from_ms, int64_t to_ms,
                                   const std::function<void(int64_t, std::string_view)>& fn) {
  if (from_ms >= to_ms) return absl::OkStatus();
  std::vector<std::pair<int64_t, std::string>> found;
  {
    std::shared_lock lock(mu_);
    const auto res = static_cast<uint8_t>(resolution);
    TileId lower(view_id, std::string(entity_key), res, from_ms);
    for (auto it = tiles_.lower_bound(lower); it != tiles_.end(); ++it) {
      const auto& [view, key, r, start] = it->first;
      if (view != view_id || key != entity_key || r != res || start >= to_ms) break;
      found.emplace_back(start, it->second);
    }
  }
  for (const auto& [start, bytes] : found) fn(start, bytes);
  return absl::OkStatus();
}

absl::Status MemoryTileStore::MultiGet(const std::vector<TileKey>& keys,
                                       std::vector<std::optional<std::string>>* values) {
  values->assign(keys.size(), std::nullopt);
  std::shared_lock lock(mu_);
  for (size_t i = 0; i < keys.size(); ++i) {
    const TileKey& k = keys[i];
    auto it = tiles_.find(
        TileId(k.view_id, k.entity_key, static_cast<uint8_t>(k.resolution), k.start_ms));
    if (it != tiles_.end()) (*values)[i] = it->second;
  }
  return absl::OkStatus();
}

absl::Status MemoryTileStore::Write(const WriteBatch& batch) {
  std::unique_lock lock(mu_);
  for (const auto& [k, bytes] : batch.tiles) {
    tiles_[TileId(k.view_id, k.entity_key, static_cast<uint8_t>(k.resolution), k.start_ms)] = bytes;
  }
  for (const auto& [key, value] : batch.meta) meta_[key] = value;
  for (const auto& key : batch.meta_deletes) meta_.erase(key);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> MemoryTileStore::GetMeta(std::string_view key) {
  std::shared_lock lock(mu_);
  auto it = meta_.find(key);
  if (it == meta_.end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

absl::Status MemoryTileStore::ScanMeta(
    std::string_view prefix, const std::function<void(std::string_view, std::string_view)>& fn) {
  std::vector<std::pair<std::string, std::string>> found;
  {
    std::shared_lock lock(mu_);
    for (auto it = meta_.lower_bound(prefix); it != meta_.end(); ++it) {
      if (!std::string_view(it->first).starts_with(prefix)) break;
      found.emplace_back(it->first, it->second);
    }
  }
  for (const auto& [key, value] : found) fn(key, value);
  return absl::OkStatus();
}

size_t MemoryTileStore::tile_count() const {
  std::shared_lock lock(mu_);
  return tiles_.size();
}

}  // namespace tessera::store
