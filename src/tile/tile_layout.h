#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "agg/aggregate.h"

namespace tessera::tile {

// A slot the engine keeps in every tile of a view after the view's own aggregates (never a
// feature), e.g. the newest event time of the tile's rows. Tiles written before the engine kept
// it lack it: they read as if the slot held `absent`, an encoded state of `agg`.
struct EngineSlot {
  std::unique_ptr<agg::AggregateFunction> agg;
  std::string absent;
};

// How one view's aggregate states sit side by side in a tile block, and the tile's byte
// encoding. A *block* is block_size() bytes aligned to block_align(); it holds the state of
// every slot at offset(i): the view's aggregates, then the engine's slots.
//
// Tile encoding (persisted): version byte (2), varint slot count (every slot, the engine's
// included), then each slot's own versioned, self-delimiting state encoding in slot order.
// Version 1 (written before engine slots existed, still read): the same with the view's
// aggregates only; its engine slots decode as their `absent` state.
//
// Immutable after construction; safe to share between threads (blocks are not).
class TileLayout {
 public:
  // Takes the view's aggregate functions, in slot order, then the engine's slots (in slot order
  // after them).
  explicit TileLayout(std::vector<std::unique_ptr<agg::AggregateFunction>> aggs,
                      std::vector<EngineSlot> engine_slots = {});

  // Every slot, the engine's included (they are the last num_engine_slots()).
  size_t num_slots() const { return aggs_.size(); }
  size_t num_engine_slots() const { return absent_.size(); }
  const agg::AggregateFunction& agg(size_t i) const { return *aggs_[i]; }
  size_t offset(size_t i) const { return offsets_[i]; }
  size_t block_size() const { return block_size_; }
  size_t block_align() const { return block_align_; }

  void Init(std::byte* block) const;
  void Destroy(std::byte* block) const;
  // dst ⊕= src, slot by slot (src counts as the later arrival).
  void Merge(std::byte* dst, const std::byte* src) const;
  void Serialize(const std::byte* block, std::string* out) const;
  // Replaces the contents of an Init()'ed block with the decoded tile (of either version).
  // Errors (DataLoss) say which slot failed; the block stays valid (Init()'ed or partially
  // filled) for Destroy().
  absl::Status Deserialize(std::string_view bytes, std::byte* block) const;
  // dst ⊕= the decoded tile, slot by slot (as Deserialize into another block and Merge would,
  // but sketches merge straight from their encoding). Errors as Deserialize's; `dst` may then
  // hold part of the tile (the caller discards it) and stays valid for Destroy().
  absl::Status MergeSerialized(std::string_view bytes, std::byte* dst) const;
  // Heap bytes owned by the block's states (for memory budgets).
  size_t HeapBytes(const std::byte* block) const;

 private:
  std::vector<std::unique_ptr<agg::AggregateFunction>> aggs_;
  std::vector<std::string> absent_;  // per engine slot (aggs_' last ones): EngineSlot::absent
  std::vector<size_t> offsets_;
  size_t block_size_ = 0;
  size_t block_align_ = alignof(std::max_align_t);
};

// A block on the heap with RAII Init/Destroy, for read paths and tests.
class OwnedBlock {
 public:
  explicit OwnedBlock(const TileLayout& layout);
  ~OwnedBlock();
  OwnedBlock(const OwnedBlock&) = delete;
  OwnedBlock& operator=(const OwnedBlock&) = delete;

  std::byte* data() { return data_; }
  const std::byte* data() const { return data_; }
  // Back to the empty state.
  void Reset();

 private:
  const TileLayout* layout_;
  std::byte* data_;
};

}  // namespace tessera::tile
