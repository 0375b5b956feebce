#include "engine/flusher.h"

#include <optional>

#include "absl/container/flat_hash_map.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "tile/tile_math.h"

namespace tessera::engine {
namespace {

using store::Resolution;
using store::TileKey;

// A tile to write: its key and the delta block to fold into the stored value.
struct Pending {
  TileKey key;
  const std::byte* delta;
};

struct RollupId {
  std::string_view key;
  int64_t start_ms;
  friend bool operator==(const RollupId&, const RollupId&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const RollupId& id) {
    return H::combine(std::move(h), id.key, id.start_ms);
  }
};

// Rollup deltas of one resolution, each the merge of the base deltas inside it.
class RollupSet {
 public:
  explicit RollupSet(const tile::TileLayout& layout) : layout_(layout) {}
  ~RollupSet() {
    for (auto& [id, block] : blocks_) layout_.Destroy(block.get());
  }
  void Add(std::string_view key, int64_t start_ms, const std::byte* delta) {
    auto [it, inserted] = blocks_.try_emplace(RollupId{key, start_ms});
    if (inserted) {
      it->second = std::make_unique<std::byte[]>(layout_.block_size() + 64);
      layout_.Init(Aligned(it->second.get()));
    }
    layout_.Merge(Aligned(it->second.get()), delta);
  }
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (const auto& [id, block] : blocks_) fn(id.key, id.start_ms, Aligned(block.get()));
  }

 private:
  std::byte* Aligned(std::byte* p) const {
    auto a = reinterpret_cast<uintptr_t>(p);
    const size_t al = layout_.block_align();
    return reinterpret_cast<std::byte*>((a + al - 1) / al * al);
  }
  const tile::TileLayout& layout_;
  absl::flat_hash_map<RollupId, std::unique_ptr<std::byte[]>> blocks_;
};

}  // namespace

absl::Status FlushShard(const ViewRuntime& view, const TileShard& shard,
                        store::TileStore* store, bool store_may_hold_view,
                        std::vector<std::pair<store::TileKey, std::string>>* out,
                        FlushStats* stats) {
  const tile::TileLayout& layout = *view.layout;
  const int64_t base_ms = view.def->tile_ms;
  const bool hour_rollup = base_ms < kMillisPerHour;
  RollupSet hours(layout);
  RollupSet days(layout);
  std::vector<Pending> pending;
  pending.reserve(shard.size());
  shard.ForEach([&](std::string_view key, int64_t start, const std::byte* block) {
    pending.push_back(Pending{TileKey{view.id, std::string(key), Resolution::kBase, start}, block});
    if (hour_rollup) hours.Add(key, AlignDown(start, kMillisPerHour), block);
    days.Add(key, AlignDown(start, kMillisPerDay), block);
  });
  stats->base_tiles += static_cast<int64_t>(pending.size());
  size_t base_count = pending.size();
  hours.ForEach([&](std::string_view key, int64_t start, const std::byte* block) {
    pending.push_back(Pending{TileKey{view.id, std::string(key), Resolution::kHour, start}, block});
  });
  days.ForEach([&](std::string_view key, int64_t start, const std::byte* block) {
    pending.push_back(Pending{TileKey{view.id, std::string(key), Resolution::kDay, start}, block});
  });
  stats->rollup_tiles += static_cast<int64_t>(pending.size() - base_count);

  out->reserve(out->size() + pending.size());
  if (!store_may_hold_view) {
    for (Pending& p : pending) {
      std::string bytes;
      layout.Serialize(p.delta, &bytes);
      out->emplace_back(std::move(p.key), std::move(bytes));
    }
    return absl::OkStatus();
  }

  constexpr size_t kBatch = 4096;
  tile::OwnedBlock stored(layout);
  std::vector<TileKey> keys;
  std::vector<std::optional<std::string>> values;
  for (size_t begin = 0; begin < pending.size(); begin += kBatch) {
    size_t end = std::min(pending.size(), begin + kBatch);
    keys.clear();
    for (size_t i = begin; i < end; ++i) keys.push_back(pending[i].key);
    TESSERA_RETURN_IF_ERROR(store->MultiGet(keys, &values));
    for (size_t i = begin; i < end; ++i) {
      const std::optional<std::string>& existing = values[i - begin];
      std::string bytes;
      if (existing.has_value()) {
        stored.Reset();
        absl::Status s = layout.Deserialize(*existing, stored.data());
        if (!s.ok()) {
          return DataLoss("stored tile of view '{}' key '{}' at {} is unreadable: {}",
                          view.def->name, pending[i].key.entity_key,
                          FormatRfc3339Millis(pending[i].key.start_ms), StatusMessage(s));
        }
        layout.Merge(stored.data(), pending[i].delta);
        layout.Serialize(stored.data(), &bytes);
        ++stats->merged_with_stored;
      } else {
        layout.Serialize(pending[i].delta, &bytes);
      }
      out->emplace_back(std::move(pending[i].key), std::move(bytes));
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera::engine
