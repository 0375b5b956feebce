// libFuzzer target: random bytes into TileLayout::Deserialize for a fixed view of several
// aggregates (fixed-size states, strings, lists and every sketch) plus the engine's
// newest-event-time slot (so both tile versions decode: version 1 fills it in). Accepted tiles must
// re-serialize, decode again to the same bytes, and survive Merge and Finalize of every slot.
//
//   cmake --preset fuzz && cmake --build build/fuzz --target tile_codec_fuzz
//   build/fuzz/fuzz/tile_codec_fuzz -max_total_time=60

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agg/aggregate.h"
#include "tile/tile_layout.h"

namespace {

using tessera::DataType;
using tessera::agg::AggKind;
using tessera::agg::AggParams;

const tessera::tile::TileLayout* MakeLayout() {
  struct Spec {
    AggKind kind;
    DataType type;
    AggParams params;
  };
  const Spec specs[] = {
      {AggKind::kCountStar, DataType::kNull, {}},
      {AggKind::kSum, DataType::kInt64, {}},
      {AggKind::kMax, DataType::kString, {}},
      {AggKind::kAvg, DataType::kDouble, {}},
      {AggKind::kStddevSamp, DataType::kDouble, {}},
      {AggKind::kLastValue, DataType::kString, {}},
      {AggKind::kFirstValue, DataType::kTimestamp, {}},
      {AggKind::kLastK, DataType::kString, {.k = 3}},
      {AggKind::kApproxCountDistinct, DataType::kString, {}},
      {AggKind::kApproxPercentile, DataType::kDouble, {.q = 0.9}},
      {AggKind::kTopK, DataType::kString, {.k = 3}},
      {AggKind::kTopK, DataType::kInt64, {.k = 2}},
      {AggKind::kCountBy, DataType::kString, {.capacity = 3}},
      {AggKind::kApproxHistogram, DataType::kDouble, {.bins = "log10"}},
      {AggKind::kApproxTopK, DataType::kString, {.k = 2, .capacity = 3}},
  };
  std::vector<std::unique_ptr<tessera::agg::AggregateFunction>> aggs;
  for (const Spec& s : specs) {
    auto fn = tessera::agg::MakeAggregate(s.kind, s.type, s.params);
    if (!fn.ok()) std::abort();  // the layout itself is fixed; a failure is a harness bug
    aggs.push_back(*std::move(fn));
  }
  std::vector<tessera::tile::EngineSlot> engine;
  auto newest = tessera::agg::MakeAggregate(AggKind::kNewestEventTime, DataType::kNull, {});
  if (!newest.ok()) std::abort();
  engine.push_back(tessera::tile::EngineSlot{*std::move(newest),
                                             tessera::agg::NewestEventTimeUnknownEncoding()});
  return new tessera::tile::TileLayout(std::move(aggs), std::move(engine));
}

void FinalizeAll(const tessera::tile::TileLayout& layout, const std::byte* block) {
  for (size_t i = 0; i < layout.num_slots(); ++i) layout.agg(i).Finalize(block + layout.offset(i));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const tessera::tile::TileLayout* layout = MakeLayout();
  std::string_view in(reinterpret_cast<const char*>(data), size);

  tessera::tile::OwnedBlock a(*layout);
  if (!layout->Deserialize(in, a.data()).ok()) return 0;
  FinalizeAll(*layout, a.data());

  std::string bytes;
  layout->Serialize(a.data(), &bytes);
  tessera::tile::OwnedBlock b(*layout);
  if (!layout->Deserialize(bytes, b.data()).ok()) std::abort();
  std::string again;
  layout->Serialize(b.data(), &again);
  if (again != bytes) std::abort();

  layout->Merge(b.data(), a.data());
  layout->Merge(b.data(), b.data());  // self-merge: src aliases dst
  FinalizeAll(*layout, b.data());
  layout->Merge(a.data(), b.data());
  FinalizeAll(*layout, a.data());
  return 0;
}
