#include "store/memory/memory_tile_store.h"

#include <algorithm>
#include <utility>

#include "common/status_macros.h"
#include "store/key_codec.h"

namespace tessera::store {

namespace {

template <typename Map>
class MemorySnapshot final : public StoreSnapshot {
 public:
  explicit MemorySnapshot(Map tiles) : tiles(std::move(tiles)) {}
  const Map tiles;
};

}  // namespace

std::shared_ptr<const StoreSnapshot> MemoryTileStore::GetSnapshot() {
  ReaderMutexLock lock(&mu_);
  return std::make_shared<MemorySnapshot<decltype(tiles_)>>(tiles_);
}

absl::Status MemoryTileStore::ScanAt(const StoreSnapshot* snapshot, uint32_t view_id,
                                     std::string_view entity_key, Resolution resolution,
                                     int64_t from_ms, int64_t to_ms,
                                     const std::function<void(int64_t, std::string_view)>& fn) {
  if (from_ms >= to_ms) return absl::OkStatus();
  std::vector<std::pair<int64_t, std::string>> found;
  {
    ReaderMutexLock lock(&mu_);
    const auto& tiles = snapshot != nullptr
                            ? static_cast<const MemorySnapshot<decltype(tiles_)>*>(snapshot)->tiles
                            : tiles_;
    const auto res = static_cast<uint8_t>(resolution);
    TileId lower(view_id, std::string(entity_key), res, from_ms);
    for (auto it = tiles.lower_bound(lower); it != tiles.end(); ++it) {
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
  ReaderMutexLock lock(&mu_);
  for (size_t i = 0; i < keys.size(); ++i) {
    const TileKey& k = keys[i];
    auto it = tiles_.find(
        TileId(k.view_id, k.entity_key, static_cast<uint8_t>(k.resolution), k.start_ms));
    if (it != tiles_.end()) (*values)[i] = it->second;
  }
  return absl::OkStatus();
}

absl::Status MemoryTileStore::Write(const WriteBatch& batch) {
  if (!batch.tile_runs.empty()) {
    TESSERA_ASSIGN_OR_RETURN(WriteBatch expanded, ExpandTileRuns(batch));
    return Write(expanded);
  }
  WriterMutexLock lock(&mu_);
  for (const auto& [k, bytes] : batch.tiles) {
    tiles_[TileId(k.view_id, k.entity_key, static_cast<uint8_t>(k.resolution), k.start_ms)] = bytes;
  }
  for (const auto& [key, value] : batch.meta) meta_[key] = value;
  for (const auto& key : batch.meta_deletes) meta_.erase(key);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> MemoryTileStore::GetMeta(std::string_view key) {
  ReaderMutexLock lock(&mu_);
  auto it = meta_.find(key);
  if (it == meta_.end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

absl::Status MemoryTileStore::ScanMeta(
    std::string_view prefix, const std::function<void(std::string_view, std::string_view)>& fn) {
  std::vector<std::pair<std::string, std::string>> found;
  {
    ReaderMutexLock lock(&mu_);
    for (auto it = meta_.lower_bound(prefix); it != meta_.end(); ++it) {
      if (!std::string_view(it->first).starts_with(prefix)) break;
      found.emplace_back(it->first, it->second);
    }
  }
  for (const auto& [key, value] : found) fn(key, value);
  return absl::OkStatus();
}

absl::StatusOr<AppendResult> MemoryTileStore::Append(std::string_view source,
                                                     std::string_view batch_id,
                                                     std::string_view payload, int64_t accepted,
                                                     int64_t rejected,
                                                     std::string_view annotation) {
  MutexLock lock(&log_mu_);
  auto it = log_.find(source);
  if (it == log_.end()) it = log_.emplace(std::string(source), LogSource()).first;
  LogSource& log = it->second;
  if (!batch_id.empty()) {
    if (auto found = log.batch_ids.find(batch_id); found != log.batch_ids.end()) {
      AppendResult first = found->second;
      first.duplicate = true;
      return first;
    }
  }
  AppendResult result;
  result.seq = ++log.last_seq;
  result.accepted = accepted;
  result.rejected = rejected;
  log.entries.emplace(result.seq, std::string(payload));
  if (!batch_id.empty()) {
    result.annotation = std::string(annotation);
    log.batch_ids.emplace(std::string(batch_id), result);
    log.batch_id_by_seq.emplace(result.seq, std::string(batch_id));
  }
  return result;
}

absl::Status MemoryTileStore::Read(std::string_view source, uint64_t after_seq, size_t max_bytes,
                                   const std::function<void(uint64_t, std::string_view)>& fn) {
  std::vector<std::pair<uint64_t, std::string>> found;
  {
    MutexLock lock(&log_mu_);
    auto it = log_.find(source);
    if (it == log_.end()) return absl::OkStatus();
    size_t bytes = 0;
    for (auto e = it->second.entries.upper_bound(after_seq); e != it->second.entries.end(); ++e) {
      found.emplace_back(e->first, e->second);
      bytes += e->second.size();
      if (bytes >= max_bytes) break;
    }
  }
  for (const auto& [seq, payload] : found) fn(seq, payload);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> MemoryTileStore::LastSeq(std::string_view source) {
  MutexLock lock(&log_mu_);
  auto it = log_.find(source);
  return it == log_.end() ? 0 : it->second.last_seq;
}

absl::Status MemoryTileStore::Trim(std::string_view source, uint64_t up_to_seq) {
  MutexLock lock(&log_mu_);
  auto it = log_.find(source);
  if (it == log_.end()) return absl::OkStatus();
  LogSource& log = it->second;
  log.entries.erase(log.entries.begin(), log.entries.upper_bound(up_to_seq));
  const uint64_t up_to = std::min(up_to_seq, log.last_seq);
  if (up_to > batch_id_retention_entries_) {
    auto end = log.batch_id_by_seq.upper_bound(up_to - batch_id_retention_entries_);
    for (auto b = log.batch_id_by_seq.begin(); b != end; ++b) log.batch_ids.erase(b->second);
    log.batch_id_by_seq.erase(log.batch_id_by_seq.begin(), end);
  }
  return absl::OkStatus();
}

namespace {

class MemoryViewCursor final : public ViewCursor {
 public:
  explicit MemoryViewCursor(std::vector<std::pair<std::string, std::string>> tiles)
      : tiles_(std::move(tiles)) {}
  bool Valid() const override { return i_ < tiles_.size(); }
  void Next() override { ++i_; }
  std::string_view view_key() const override { return tiles_[i_].first; }
  std::string_view value() const override { return tiles_[i_].second; }
  absl::Status status() const override { return absl::OkStatus(); }

 private:
  std::vector<std::pair<std::string, std::string>> tiles_;  // (view key, bytes), sorted
  size_t i_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ViewCursor>> MemoryTileStore::NewViewCursor(
    uint32_t view_id, const EntityRange& range) {
  std::vector<std::pair<std::string, std::string>> tiles;
  {
    ReaderMutexLock lock(&mu_);
    for (auto it = tiles_.lower_bound(TileId(view_id, "", 0, INT64_MIN));
         it != tiles_.end() && std::get<0>(it->first) == view_id; ++it) {
      const auto& [view, key, res, start] = it->first;
      // The map orders entity keys as strings; the bounds and the cursor use the store order of
      // their encoding (store/key_codec.h).
      const std::string entity = EncodeEntityInView(key);
      const int c = range.lower.empty() ? 1 : entity.compare(range.lower);
      if (c < 0 || (c == 0 && range.lower_exclusive)) continue;
      if (!range.upper.empty() && entity.compare(range.upper) >= 0) continue;
      std::string view_key;
      AppendViewTileKey(key, static_cast<Resolution>(res), start, &view_key);
      tiles.emplace_back(std::move(view_key), it->second);
    }
  }
  std::sort(tiles.begin(), tiles.end());
  return std::make_unique<MemoryViewCursor>(std::move(tiles));
}

absl::Status MemoryTileStore::DeleteViewTiles(uint32_t first_view_id, uint32_t last_view_id) {
  WriterMutexLock lock(&mu_);
  auto first = tiles_.lower_bound(TileId(first_view_id, "", 0, INT64_MIN));
  auto last = first;
  while (last != tiles_.end() && std::get<0>(last->first) <= last_view_id) ++last;
  tiles_.erase(first, last);
  return absl::OkStatus();
}

size_t MemoryTileStore::tile_count() const {
  ReaderMutexLock lock(&mu_);
  return tiles_.size();
}

std::vector<std::pair<TileKey, std::string>> MemoryTileStore::AllTiles() const {
  ReaderMutexLock lock(&mu_);
  std::vector<std::pair<TileKey, std::string>> out;
  out.reserve(tiles_.size());
  for (const auto& [id, bytes] : tiles_) {
    const auto& [view_id, key, res, start] = id;
    out.emplace_back(TileKey{view_id, key, static_cast<Resolution>(res), start}, bytes);
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> MemoryTileStore::AllMeta() const {
  ReaderMutexLock lock(&mu_);
  return {meta_.begin(), meta_.end()};
}

}  // namespace tessera::store
