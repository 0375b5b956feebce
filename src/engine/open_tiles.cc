#include "engine/open_tiles.h"

#include <algorithm>

#include "common/hash.h"
#include "common/time_util.h"

namespace tessera::engine {

OpenTiles::OpenTiles(std::vector<const ViewRuntime*> views, int threads, int shards_per_thread,
                     size_t memory_budget_bytes, const Clock* clock)
    : views_(std::move(views)),
      threads_(std::max(1, threads)),
      num_shards_(threads_ * std::max(1, shards_per_thread)),
      growth_per_count_(
          memory_budget_bytes /
          (16 * std::max<size_t>(1, views_.size() * static_cast<size_t>(num_shards_)))),
      clock_(clock) {
  for (const ViewRuntime* v : views_) {
    std::vector<std::unique_ptr<TileShard>> shards;
    std::vector<std::unique_ptr<std::shared_mutex>> mus;
    for (int i = 0; i < num_shards_; ++i) {
      shards.push_back(std::make_unique<TileShard>(v->layout.get()));
      mus.push_back(std::make_unique<std::shared_mutex>());
    }
    shards_.push_back(std::move(shards));
    mu_.push_back(std::move(mus));
    memory_.emplace_back(num_shards_);
    retired_.emplace_back(num_shards_);
  }
}

std::shared_ptr<const store::StoreSnapshot> OpenTiles::MergeInto(
    size_t view, std::string_view key, std::span<const std::pair<int64_t, int64_t>> ranges,
    std::span<std::byte* const> blocks, int64_t* tiles_merged) const {
  const int64_t tile_ms = views_[view]->def->tile_ms;
  const tile::TileLayout& layout = *views_[view]->layout;
  const uint64_t key_hash = Hash64(key);
  const int shard = ShardOf(key_hash);
  ReaderMutexLock publish(&publish_mu_);
  std::shared_lock lock(*mu_[view][shard]);
  const TileShard& tiles = *shards_[view][shard];
  if (tiles.size() > 0) {
    for (size_t i = 0; i < ranges.size(); ++i) {
      // Open tiles span little time (since the last flush, plus late rows), so probing each
      // tile start they cover is cheap.
      const int64_t from = std::max(ranges[i].first, tiles.min_start_ms());
      const int64_t to = std::min(ranges[i].second, tiles.max_start_ms() + tile_ms);
      for (int64_t start = AlignDown(from, tile_ms); start < to; start += tile_ms) {
        if (start < ranges[i].first) continue;
        const std::byte* block = tiles.Find(key, key_hash, start);
        if (block == nullptr) continue;
        layout.Merge(blocks[i], block);
        ++*tiles_merged;
      }
    }
  }
  return published_;
}

void OpenTiles::Publish(std::shared_ptr<const store::StoreSnapshot> snapshot) {
  WriterMutexLock lock(&publish_mu_);
  published_ = std::move(snapshot);
}

void OpenTiles::SwapOut(std::shared_ptr<const store::StoreSnapshot> snapshot) {
  WriterMutexLock lock(&publish_mu_);
  published_ = std::move(snapshot);
  for (size_t vi = 0; vi < views_.size(); ++vi) {
    for (int s = 0; s < num_shards_; ++s) {
      retired_[vi][s] = std::move(shards_[vi][s]);
      shards_[vi][s] = std::make_unique<TileShard>(views_[vi]->layout.get());
      memory_[vi][s] = ShardMemory{.recounts = memory_[vi][s].recounts};
    }
  }
}

void OpenTiles::ReleaseRetired(int worker) {
  for (auto& view_retired : retired_) {
    for (int s = worker; s < num_shards_; s += threads_) view_retired[s].reset();
  }
}

void OpenTiles::Recount(size_t view, int shard, size_t table_bytes, int64_t now_ns) {
  ShardMemory& m = memory_[view][shard];
  const TileShard& tiles = *shards_[view][shard];
  const tile::TileLayout& layout = *views_[view]->layout;
  size_t heap = 0;
  for (const TileShard::Entry& e : tiles.entries()) heap += layout.HeapBytes(e.block);
  m.heap_counted = heap;
  m.table_at_count = table_bytes;
  m.tiles_at_count = tiles.size();
  m.rows_since_count = 0;
  m.counted_at_ns = now_ns;
  ++m.recounts;
}

void OpenTiles::UpdateMemory(size_t view, int shard) {
  ShardMemory& m = memory_[view][shard];
  if (m.rows_since_count == 0) return;  // unchanged since the last update
  const size_t table = shards_[view][shard]->MemoryBytes();
  const int64_t now_ns = clock_->MonotonicNanos();
  const bool due =
      m.rows_since_count >=
          std::max<uint64_t>(kMinRowsPerCount, kRowsPerTilePerCount * m.tiles_at_count) ||
      table - m.table_at_count > growth_per_count_ || now_ns - m.counted_at_ns >= kRecountNanos;
  size_t heap = 0;
  if (due) {
    Recount(view, shard, table, now_ns);
    heap = m.heap_counted;
  } else if (m.table_at_count > 0) {
    // Heap per table byte of the counted tiles, applied to the growth since the count.
    const double per_byte =
        static_cast<double>(m.heap_counted) / static_cast<double>(m.table_at_count);
    heap = m.heap_counted +
           static_cast<size_t>(per_byte * static_cast<double>(table - m.table_at_count));
  }
  m.estimate = table + heap;
}

void OpenTiles::UpdateStaleMemory() {
  const int64_t now_ns = clock_->MonotonicNanos();
  for (size_t vi = 0; vi < views_.size(); ++vi) {
    for (int s = 0; s < num_shards_; ++s) {
      const ShardMemory& m = memory_[vi][s];
      if (m.rows_since_count > 0 && now_ns - m.counted_at_ns >= kRecountNanos) UpdateMemory(vi, s);
    }
  }
}

size_t OpenTiles::MemoryBytes(size_t view) const {
  size_t total = 0;
  for (const ShardMemory& m : memory_[view]) total += m.estimate;
  return total;
}

size_t OpenTiles::MemoryBytes() const {
  size_t total = 0;
  for (size_t v = 0; v < memory_.size(); ++v) total += MemoryBytes(v);
  return total;
}

size_t OpenTiles::size(size_t view) const {
  size_t total = 0;
  for (const auto& s : shards_[view]) total += s->size();
  return total;
}

size_t OpenTiles::size() const {
  size_t total = 0;
  for (size_t v = 0; v < shards_.size(); ++v) total += size(v);
  return total;
}

bool OpenTiles::empty() const {
  for (const auto& view_shards : shards_) {
    for (const auto& s : view_shards) {
      if (s->size() > 0) return false;
    }
  }
  return true;
}

int64_t OpenTiles::heap_recounts() const {
  int64_t total = 0;
  for (const auto& view_memory : memory_) {
    for (const ShardMemory& m : view_memory) total += m.recounts;
  }
  return total;
}

}  // namespace tessera::engine
