#include "tile/tile_layout.h"

#include <algorithm>
#include <new>

#include "common/errors.h"
#include "common/status_macros.h"
#include "common/varint.h"

namespace tessera::tile {
namespace {
constexpr uint8_t kTileEncodingVersion = 1;

size_t AlignUp(size_t n, size_t a) { return (n + a - 1) / a * a; }
}  // namespace

TileLayout::TileLayout(std::vector<std::unique_ptr<agg::AggregateFunction>> aggs)
    : aggs_(std::move(aggs)) {
  size_t off = 0;
  for (const auto& a : aggs_) {
    off = AlignUp(off, a->state_align());
    offsets_.push_back(off);
    off += a->state_size();
    block_align_ = std::max(block_align_, a->state_align());
  }
  block_size_ = AlignUp(std::max<size_t>(off, 1), block_align_);
}

void TileLayout::Init(std::byte* block) const {
  for (size_t i = 0; i < aggs_.size(); ++i) aggs_[i]->Init(block + offsets_[i]);
}

void TileLayout::Destroy(std::byte* block) const {
  for (size_t i = 0; i < aggs_.size(); ++i) aggs_[i]->Destroy(block + offsets_[i]);
}

void TileLayout::Merge(std::byte* dst, const std::byte* src) const {
  for (size_t i = 0; i < aggs_.size(); ++i) aggs_[i]->Merge(dst + offsets_[i], src + offsets_[i]);
}

void TileLayout::Serialize(const std::byte* block, std::string* out) const {
  out->push_back(static_cast<char>(kTileEncodingVersion));
  PutVarint64(out, aggs_.size());
  for (size_t i = 0; i < aggs_.size(); ++i) aggs_[i]->Serialize(block + offsets_[i], out);
}

namespace {

// The slot encodings of a tile: after its version and slot count, which must match `slots`.
absl::StatusOr<std::string_view> SlotBytes(std::string_view bytes, size_t slots) {
  ByteReader reader(bytes);
  uint8_t version = 0;
  TESSERA_RETURN_IF_ERROR(reader.Byte(&version, "tile version"));
  if (version != kTileEncodingVersion) {
    return DataLoss("unknown tile encoding version {} (this build reads version {})", version,
                    kTileEncodingVersion);
  }
  uint64_t n = 0;
  TESSERA_RETURN_IF_ERROR(reader.Varint64(&n, "tile slot count"));
  if (n != slots) return DataLoss("tile has {} aggregate slots, the view has {}", n, slots);
  return reader.rest();
}

}  // namespace

absl::Status TileLayout::MergeSerialized(std::string_view bytes, std::byte* dst) const {
  TESSERA_ASSIGN_OR_RETURN(std::string_view rest, SlotBytes(bytes, aggs_.size()));
  for (size_t i = 0; i < aggs_.size(); ++i) {
    absl::Status s = aggs_[i]->MergeSerialized(&rest, dst + offsets_[i]);
    if (!s.ok()) {
      return DataLoss("tile slot {} ({}): {}", i, agg::AggKindName(aggs_[i]->kind()),
                      StatusMessage(s));
    }
  }
  if (!rest.empty()) return DataLoss("tile has {} trailing bytes", rest.size());
  return absl::OkStatus();
}

absl::Status TileLayout::Deserialize(std::string_view bytes, std::byte* block) const {
  TESSERA_ASSIGN_OR_RETURN(std::string_view rest, SlotBytes(bytes, aggs_.size()));
  for (size_t i = 0; i < aggs_.size(); ++i) {
    absl::Status s = aggs_[i]->Deserialize(&rest, block + offsets_[i]);
    if (!s.ok()) {
      return DataLoss("tile slot {} ({}): {}", i, agg::AggKindName(aggs_[i]->kind()),
                      StatusMessage(s));
    }
  }
  if (!rest.empty()) return DataLoss("tile has {} trailing bytes", rest.size());
  return absl::OkStatus();
}

size_t TileLayout::HeapBytes(const std::byte* block) const {
  size_t total = 0;
  for (size_t i = 0; i < aggs_.size(); ++i) total += aggs_[i]->HeapBytes(block + offsets_[i]);
  return total;
}

OwnedBlock::OwnedBlock(const TileLayout& layout)
    : layout_(&layout),
      data_(static_cast<std::byte*>(
          ::operator new(layout.block_size(), std::align_val_t(layout.block_align())))) {
  layout_->Init(data_);
}

OwnedBlock::~OwnedBlock() {
  layout_->Destroy(data_);
  ::operator delete(data_, std::align_val_t(layout_->block_align()));
}

void OwnedBlock::Reset() {
  layout_->Destroy(data_);
  layout_->Init(data_);
}

}  // namespace tessera::tile
