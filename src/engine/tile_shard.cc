#include "engine/tile_shard.h"

#include <cstdint>

#include "common/hash.h"

namespace tessera::engine {

uint64_t TileShard::Mix(uint64_t key_hash, int64_t start_ms) {
  return key_hash ^ HashInt(static_cast<uint64_t>(start_ms));
}

std::byte* TileShard::FindOrCreate(std::string_view key, uint64_t key_hash, int64_t start_ms) {
  TileId probe{key, start_ms, Mix(key_hash, start_ms)};
  auto it = map_.find(probe);
  if (it != map_.end()) return it->second;
  probe.key = keys_.Copy(key);
  // Over-allocate by the alignment so the block can be aligned inside the arena.
  const size_t align = layout_->block_align();
  char* raw = blocks_.Allocate(layout_->block_size() + align - 1);
  const auto addr = reinterpret_cast<uintptr_t>(raw);
  auto* block = reinterpret_cast<std::byte*>(raw + (align - addr % align) % align);
  layout_->Init(block);
  map_.emplace(probe, block);
  if (entries_.empty() || start_ms < min_start_ms_) min_start_ms_ = start_ms;
  if (entries_.empty() || start_ms > max_start_ms_) max_start_ms_ = start_ms;
  entries_.push_back(Entry{probe.key, key_hash, start_ms, block});
  return block;
}

const std::byte* TileShard::Find(std::string_view key, uint64_t key_hash, int64_t start_ms) const {
  auto it = map_.find(TileId{key, start_ms, Mix(key_hash, start_ms)});
  return it == map_.end() ? nullptr : it->second;
}

size_t TileShard::MemoryBytes() const {
  return keys_.bytes_used() + blocks_.bytes_used() +
         map_.size() * (sizeof(TileId) + sizeof(std::byte*) + sizeof(Entry) + 8);
}

void TileShard::DestroyStates() {
  for (const Entry& e : entries_) layout_->Destroy(e.block);
  entries_.clear();
  entries_.shrink_to_fit();
  map_ = decltype(map_)();
  blocks_ = Arena(kBlockArenaBytes);  // frees the blocks (Reset() would keep them)
}

void TileShard::Clear() {
  for (const Entry& e : entries_) layout_->Destroy(e.block);
  map_.clear();
  entries_.clear();
  keys_.Reset();
  blocks_.Reset();
}

}  // namespace tessera::engine
