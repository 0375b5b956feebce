#include "engine/spill.h"

#include <algorithm>

#include "common/errors.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "common/varint.h"
#include "engine/lifetime.h"
#include "store/key_codec.h"
#include "store/meta_keys.h"
#include "tile/ladder.h"
#include "tile/tile_layout.h"

namespace tessera::engine {
namespace {

constexpr uint8_t kStateVersion = 1;
// A view key ends with the resolution byte and the 8 start bytes after the encoded entity key.
constexpr size_t kViewKeyTail = 1 + store::kStartMsBytes;

// Cuts each key (ascending, distinct) to its first kMaxSampledKeyBytes, or to the shortest
// prefix still greater than the key before it (as cut): a prefix of a key bounds an interval as
// well as the key, and keys that share a long start stay apart.
void CutKeys(std::vector<KeySample>* keys) {
  std::string_view prev;
  for (KeySample& k : *keys) {
    size_t common = 0;
    while (common < prev.size() && common < k.key.size() && prev[common] == k.key[common]) {
      ++common;
    }
    k.key.resize(std::min(k.key.size(), std::max(kMaxSampledKeyBytes, common + 1)));
    prev = k.key;
  }
}

}  // namespace

uint32_t SpillViewId(uint32_t view_id, uint32_t flush) {
  return kSpillViewBit | view_id << 19 | flush;
}

bool SpillState::merged() const {
  return std::all_of(views.begin(), views.end(), [](const View& v) { return v.merged(); });
}

std::string SpillState::Encode() const {
  std::string out;
  out.push_back(static_cast<char>(kStateVersion));
  PutVarint64(&out, flushes);
  PutVarint64(&out, spilled_bytes);
  out.push_back(merging ? 1 : 0);
  PutVarint64(&out, views.size());
  for (const View& v : views) {
    PutVarint64(&out, v.view_id);
    PutVarint64(&out, v.merged_intervals);
    PutVarint64(&out, v.keys.size());
    for (const KeySample& k : v.keys) {
      PutBytes(&out, k.key);
      PutVarint64(&out, k.weight);
    }
  }
  return out;
}

absl::StatusOr<SpillState> SpillState::Decode(std::string_view bytes) {
  ByteReader in(bytes);
  SpillState s;
  uint8_t version = 0;
  TESSERA_RETURN_IF_ERROR(in.Byte(&version, "spill state version"));
  if (version != kStateVersion) {
    return DataLoss("unknown spill state version {} (this build reads version {})", version,
                    kStateVersion);
  }
  uint64_t flushes = 0;
  uint64_t views = 0;
  uint8_t merging = 0;
  TESSERA_RETURN_IF_ERROR(in.Varint64(&flushes, "spill runs"));
  TESSERA_RETURN_IF_ERROR(in.Varint64(&s.spilled_bytes, "spilled bytes"));
  TESSERA_RETURN_IF_ERROR(in.Byte(&merging, "merging flag"));
  TESSERA_RETURN_IF_ERROR(in.Varint64(&views, "view count"));
  if (flushes > kMaxSpillFlushes || merging > 1 || views > kMaxSpillViewId + 1) {
    return DataLoss("spill state out of range: {} runs, merging {}, {} views", flushes, merging,
                    views);
  }
  s.flushes = static_cast<uint32_t>(flushes);
  s.merging = merging == 1;
  for (uint64_t i = 0; i < views; ++i) {
    View& v = s.views.emplace_back();
    uint64_t id = 0;
    uint64_t merged = 0;
    uint64_t keys = 0;
    TESSERA_RETURN_IF_ERROR(in.Varint64(&id, "view id"));
    TESSERA_RETURN_IF_ERROR(in.Varint64(&merged, "merged intervals"));
    TESSERA_RETURN_IF_ERROR(in.Varint64(&keys, "key count"));
    if (id > kMaxSpillViewId || keys > kMaxSamples || merged > keys + 1) {
      return DataLoss("spill state of view {} out of range: {} keys, {} merged intervals", id, keys,
                      merged);
    }
    v.view_id = static_cast<uint32_t>(id);
    v.merged_intervals = static_cast<uint32_t>(merged);
    for (uint64_t k = 0; k < keys; ++k) {
      std::string_view key;
      uint64_t weight = 0;
      TESSERA_RETURN_IF_ERROR(in.Bytes(&key, "entity key"));
      TESSERA_RETURN_IF_ERROR(in.Varint64(&weight, "key weight"));
      if (!v.keys.empty() && key <= v.keys.back().key) {
        return DataLoss("spill state of view {}: keys not ascending", id);
      }
      v.keys.push_back(KeySample{std::string(key), weight});
    }
  }
  if (!in.rest().empty()) return DataLoss("spill state has {} trailing bytes", in.rest().size());
  return s;
}

void AddSamples(std::vector<KeySample> samples, std::vector<KeySample>* keys) {
  samples.insert(samples.end(), keys->begin(), keys->end());
  std::sort(samples.begin(), samples.end(),
            [](const KeySample& a, const KeySample& b) { return a.key < b.key; });
  std::vector<KeySample> merged;  // distinct keys, weights added up
  uint64_t total = 0;
  for (KeySample& s : samples) {
    total += s.weight;
    if (!merged.empty() && merged.back().key == s.key) {
      merged.back().weight += s.weight;
    } else {
      merged.push_back(std::move(s));
    }
  }
  keys->clear();
  if (merged.size() <= kMaxSamples) {
    *keys = std::move(merged);
    CutKeys(keys);
    return;
  }
  // Kept key i ends the bucket that reaches (i + 1) / kMaxSamples of the total weight, and
  // carries the bucket's weight; the last key ends the last bucket.
  uint64_t seen = 0;
  uint64_t bucket = 0;
  for (size_t i = 0; i < merged.size(); ++i) {
    seen += merged[i].weight;
    bucket += merged[i].weight;
    const uint64_t kept = keys->size();
    if (i + 1 == merged.size() ||
        (kept + 1 < kMaxSamples && seen * kMaxSamples >= (kept + 1) * total)) {
      keys->push_back(KeySample{std::move(merged[i].key), bucket});
      bucket = 0;
    }
  }
  CutKeys(keys);
}

std::vector<KeySample> PickPivots(const std::vector<KeySample>& samples, size_t intervals) {
  std::vector<KeySample> pivots;
  if (intervals < 2 || samples.empty()) return pivots;
  uint64_t total = 0;
  for (const KeySample& s : samples) total += s.weight;
  // Pivot i is the first sample whose weight so far reaches i / intervals of the total.
  uint64_t seen = 0;
  uint64_t i = 1;
  for (const KeySample& s : samples) {
    seen += s.weight;
    if (i < intervals && seen * intervals >= i * total) {
      if (pivots.empty() || pivots.back().key != s.key) pivots.push_back(KeySample{s.key, 0});
      while (i < intervals && seen * intervals >= i * total) ++i;
    }
  }
  return pivots;
}

store::EntityRange IntervalRange(const std::vector<KeySample>& pivots, size_t i) {
  store::EntityRange r;
  if (i > 0) r.lower = pivots[i - 1].key;
  if (i < pivots.size()) r.upper = pivots[i].key;
  return r;
}

absl::Status MergeSpillInterval(const ViewRuntime& view, store::TileStore* store, uint32_t flushes,
                                const store::EntityRange& range, int64_t closed_by_ms,
                                int64_t kept_from_ms, FlushOutput* out, FlushStats* stats) {
  const tile::TileLayout& layout = *view.layout;
  std::vector<std::unique_ptr<store::ViewCursor>> cursors;
  for (uint32_t k = 0; k < flushes; ++k) {
    TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<store::ViewCursor> c,
                             store->NewViewCursor(SpillViewId(view.id, k), range));
    TESSERA_RETURN_IF_ERROR(c->status());
    cursors.push_back(std::move(c));
  }
  // Min-heap of the cursors at a tile, on (view key, run): std::*_heap keep the greatest first.
  std::vector<uint32_t> heap;
  auto after = [&](uint32_t a, uint32_t b) {
    const int c = cursors[a]->view_key().compare(cursors[b]->view_key());
    return c != 0 ? c > 0 : a > b;
  };
  for (uint32_t k = 0; k < flushes; ++k) {
    if (cursors[k]->Valid()) heap.push_back(k);
  }
  std::make_heap(heap.begin(), heap.end(), after);

  // One entity key's pieces (base tiles of some run), by start then run; bytes in `scratch`.
  struct Piece {
    int64_t start_ms;
    size_t offset;
    size_t size;
  };
  std::vector<Piece> pieces;
  std::string scratch;
  std::string entity;
  tile::OwnedBlock block(layout);
  tile::OwnedBlock lifetime(layout);  // the entity's lifetime tile (engine/lifetime.h)
  const int64_t edge = LifetimeEdge(closed_by_ms);
  store::TileRun& run = out->runs.emplace_back();
  const std::span<const store::Resolution> rollups = tile::RollupResolutions(view.def->tile_ms);

  auto bytes_of = [&](const Piece& p) {
    return std::string_view(scratch).substr(p.offset, p.size);
  };
  // The merge of pieces [first, last) into one tile of (resolution, start).
  auto write_merged = [&](store::Resolution res, int64_t start, const Piece* first,
                          const Piece* last) -> absl::Status {
    if (last - first == 1) {
      run.BeginTile(view.id, entity, res, start)->append(bytes_of(*first));
      return absl::OkStatus();
    }
    block.Reset();
    for (const Piece* p = first; p != last; ++p) {
      absl::Status s = layout.MergeSerialized(bytes_of(*p), block.data());
      if (!s.ok()) return UnreadableTile(view, entity, p->start_ms, s);
    }
    layout.Serialize(block.data(), run.BeginTile(view.id, entity, res, start));
    return absl::OkStatus();
  };

  while (!heap.empty()) {
    // The next entity key: every piece of it, from every run.
    const std::string_view first_key = cursors[heap.front()]->view_key();
    if (first_key.size() <= kViewKeyTail) {
      return DataLoss("spill run of view '{}' holds a malformed key ({} bytes)", view.def->name,
                      first_key.size());
    }
    const std::string prefix(first_key.substr(0, first_key.size() - kViewKeyTail));
    pieces.clear();
    scratch.clear();
    bool first = true;
    while (!heap.empty()) {
      store::ViewCursor& c = *cursors[heap.front()];
      const std::string_view key = c.view_key();
      if (!key.starts_with(prefix)) break;
      std::string_view e;
      store::Resolution res;
      int64_t start = 0;
      TESSERA_RETURN_IF_ERROR(store::DecodeViewTileKey(key, &e, &res, &start));
      if (res != store::Resolution::kBase) {
        return DataLoss("spill run of view '{}' holds a tile that is not a base tile",
                        view.def->name);
      }
      if (first) entity.assign(e);
      first = false;
      pieces.push_back(Piece{start, scratch.size(), c.value().size()});
      scratch.append(c.value());
      std::pop_heap(heap.begin(), heap.end(), after);
      c.Next();
      if (c.Valid()) {
        std::push_heap(heap.begin(), heap.end(), after);
      } else {
        TESSERA_RETURN_IF_ERROR(c.status());
        heap.pop_back();
      }
    }
    // Pieces arrive by start, then run: base tiles first, then each rollup resolution's slots,
    // then the lifetime tile, which is store key order.
    lifetime.Reset();
    for (size_t i = 0; i < pieces.size();) {
      size_t j = i + 1;
      while (j < pieces.size() && pieces[j].start_ms == pieces[i].start_ms) ++j;
      TESSERA_RETURN_IF_ERROR(
          write_merged(store::Resolution::kBase, pieces[i].start_ms, &pieces[i], &pieces[j]));
      ++stats->base_tiles;
      if (pieces[i].start_ms < edge) {  // as FlushShard: the base tiles before the edge, in order
        absl::Status s = layout.MergeSerialized(run.value(run.size() - 1), lifetime.data());
        if (!s.ok()) return UnreadableTile(view, entity, pieces[i].start_ms, s);
      }
      i = j;
    }
    const uint64_t hash = Hash64(entity);
    for (store::Resolution res : rollups) {
      const RollupRule rule(view, res, closed_by_ms, kept_from_ms);
      for (size_t i = 0; i < pieces.size();) {
        const int64_t slot = tile::ParentSlot(res, pieces[i].start_ms);
        size_t j = i + 1;
        size_t tiles = 1;
        for (; j < pieces.size() && tile::ParentSlot(res, pieces[j].start_ms) == slot; ++j) {
          tiles += pieces[j].start_ms != pieces[j - 1].start_ms;
        }
        if (!rule.closed(slot)) {
          const std::string& key = out->owned_keys.emplace_back(entity);
          out->owed.push_back(RollupRef{view.id, res, slot, key, hash});
          out->owed_keys.push_back(store::meta::OwedRollupKey(view.id, res, slot, entity));
        } else if (tiles >= static_cast<size_t>(rule.min_children())) {
          TESSERA_RETURN_IF_ERROR(write_merged(res, slot, &pieces[i], &pieces[j]));
          ++stats->rollup_tiles;
        }
        i = j;
      }
    }
    // As FlushShard into a view with no stored tiles: only keys with rows before the edge.
    if (edge != kNoLifetimeEdge && !pieces.empty() && pieces.front().start_ms < edge) {
      EncodeLifetimeTile(
          edge, layout, lifetime.data(),
          run.BeginTile(view.id, entity, store::Resolution::kLifetime, kLifetimeTileStart));
      ++stats->lifetime_tiles;
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera::engine
