#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "agg/aggregate.h"

namespace tessera::tile {

// How one view's aggregate states sit side by side in a tile block, and the tile's byte
// encoding. A *block* is block_size() bytes aligned to block_align(); it holds the state of
// every aggregate slot of the view at offset(i).
//
// Tile encoding (persisted): version byte (1), varint slot count, then each slot's own
// versioned, self-delimiting state encoding in slot order.
//
// Immutable after construction; safe to share between threads (blocks are not).
class TileLayout {
 public:
  // Takes the view's aggregate functions, in slot order.
  explicit TileLayout(std::vector<std::unique_ptr<agg::AggregateFunction>> aggs);

  size_t num_slots() const { return aggs_.size(); }
  const agg::AggregateFunction& agg(size_t i) const { return *aggs_[i]; }
  size_t offset(size_t i) const { return offsets_[i]; }
  size_t block_size() const { return block_size_; }
  size_t block_align() const { return block_align_; }

  void Init(std::byte* block) const;
  void Destroy(std::byte* block) const;
  // dst ⊕= src, slot by slot (src counts as the later arrival).
  void Merge(std::byte* dst, const std::byte* src) const;
  void Serialize(const std::byte* block, std::string* out) const;
  // Replaces the contents of an Init()'ed block with the decoded tile. Errors (DataLoss) say
  // which slot failed; the block stays valid (Init()'ed or partially filled) for Destroy().
  absl::Status Deserialize(std::string_view bytes, std::byte* block) const;
  // dst ⊕= the decoded tile, slot by slot (as Deserialize into another block and Merge would,
  // but sketches merge straight from their encoding). Errors as Deserialize's; `dst` may then
  // hold part of the tile (the caller discards it) and stays valid for Destroy().
  absl::Status MergeSerialized(std::string_view bytes, std::byte* dst) const;
  // Heap bytes owned by the block's states (for memory budgets).
  size_t HeapBytes(const std::byte* block) const;

 private:
  std::vector<std::unique_ptr<agg::AggregateFunction>> aggs_;
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
