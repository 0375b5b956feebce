#include "tile/tile_layout.h"

#include <algorithm>
#include <new>

#include "common/errors.h"
#include "common/status_macros.h"
#include "common/varint.h"

namespace tessera::tile {
namespace {
// 2: the slot count includes the engine's slots. 1 (still read): the view's aggregates only.
constexpr uint8_t kTileEncodingVersion = 2;
constexpr uint8_t kTileEncodingVersionWithoutEngineSlots = 1;

size_t AlignUp(size_t n, size_t a) { return (n + a - 1) / a * a; }
}  // namespace

TileLayout::TileLayout(std::vector<std::unique_ptr<agg::AggregateFunction>> aggs,
                       std::vector<EngineSlot> engine_slots)
    : aggs_(std::move(aggs)) {
  for (EngineSlot& e : engine_slots) {
    aggs_.push_back(std::move(e.agg));
    absent_.push_back(std::move(e.absent));
  }
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

// Reads a tile's header (version, slot count matching `aggs` for that version), then calls
// read(agg, slot index, &rest) for every slot in order, each consuming its slot's encoding from
// `rest`; for the engine slots a version-1 tile lacks, `rest` is their `absent` state instead.
// Errors name the slot; bytes left after the last slot are an error too.
template <typename Read>
absl::Status ReadSlots(std::string_view bytes,
                       const std::vector<std::unique_ptr<agg::AggregateFunction>>& aggs,
                       const std::vector<std::string>& absent, Read&& read) {
  ByteReader reader(bytes);
  uint8_t version = 0;
  TESSERA_RETURN_IF_ERROR(reader.Byte(&version, "tile version"));
  if (version != kTileEncodingVersion && version != kTileEncodingVersionWithoutEngineSlots) {
    return DataLoss("unknown tile encoding version {} (this build reads versions {} and {})",
                    version, kTileEncodingVersionWithoutEngineSlots, kTileEncodingVersion);
  }
  const size_t stored = version == kTileEncodingVersion ? aggs.size() : aggs.size() - absent.size();
  uint64_t n = 0;
  TESSERA_RETURN_IF_ERROR(reader.Varint64(&n, "tile slot count"));
  if (n != stored) {
    return DataLoss("version-{} tile has {} aggregate slots, the view has {}", version, n, stored);
  }
  std::string_view rest = reader.rest();
  for (size_t i = 0; i < aggs.size(); ++i) {
    absl::Status s;
    if (i < stored) {
      s = read(*aggs[i], i, &rest);
    } else {
      std::string_view fill = absent[i - (aggs.size() - absent.size())];
      s = read(*aggs[i], i, &fill);
    }
    if (!s.ok()) {
      return DataLoss("tile slot {} ({}): {}", i, agg::AggKindName(aggs[i]->kind()),
                      StatusMessage(s));
    }
  }
  if (!rest.empty()) return DataLoss("tile has {} trailing bytes", rest.size());
  return absl::OkStatus();
}

}  // namespace

absl::Status TileLayout::MergeSerialized(std::string_view bytes, std::byte* dst) const {
  return ReadSlots(bytes, aggs_, absent_,
                   [&](const agg::AggregateFunction& agg, size_t i, std::string_view* rest) {
                     return agg.MergeSerialized(rest, dst + offsets_[i]);
                   });
}

absl::Status TileLayout::Deserialize(std::string_view bytes, std::byte* block) const {
  return ReadSlots(bytes, aggs_, absent_,
                   [&](const agg::AggregateFunction& agg, size_t i, std::string_view* rest) {
                     return agg.Deserialize(rest, block + offsets_[i]);
                   });
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
