#include "offline/pit_engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>

#include "common/errors.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "engine/backfill.h"
#include "engine/entity_key.h"
#include "engine/file_chunk_source.h"
#include "engine/ingest_pipeline.h"
#include "engine/row_prep.h"
#include "engine/watermark.h"
#include "source/format/ndjson_decoder.h"
#include "tile/tile_layout.h"

namespace tessera::offline {

namespace {

using engine::ViewRowPrep;

// Keys are split into at most 2^kMaxSplitBits parts (passes over the events); past that the
// memory budget is exceeded rather than the events read yet more often.
constexpr int kMaxSplitBits = 8;

// The tile states of one (view, worker) part of the keys during a pass. A tile of a key whose
// point times fall inside it is split at them: segment j holds the rows with
// split[j-1] <= ts < split[j] (split[-1] = tile start, split[n] = tile end).
struct Tiles {
  struct Entry {
    uint32_t key = 0;
    int64_t start = 0;
    uint32_t first_split = 0;  // index into PitView::point_time of the first split
    uint32_t segments = 1;
    std::byte* blocks = nullptr;  // `segments` blocks
  };
  struct EntryKey {
    uint32_t key;
    int64_t start;
    friend bool operator==(const EntryKey&, const EntryKey&) = default;
    template <typename H>
    friend H AbslHashValue(H h, const EntryKey& k) {
      return H::combine(std::move(h), k.key, k.start);
    }
  };
  absl::flat_hash_map<EntryKey, uint32_t> index;
  std::vector<Entry> entries;
  static constexpr size_t kArenaBlock = size_t{64} << 10;
  Arena arena{kArenaBlock};
  size_t heap_counted = 0;    // sketch heap at the last count
  size_t arena_at_count = 0;  // arena bytes then
  size_t estimate = 0;        // bytes now (heap scaled by arena growth since the count)
  int64_t dropped_before = std::numeric_limits<int64_t>::min();  // the last DropBefore()

  // `segments` Init()ed blocks from the arena.
  std::byte* NewBlocks(const tile::TileLayout& layout, uint32_t segments) {
    const size_t size = segments * layout.block_size();
    size_t space = size + layout.block_align();
    void* raw = arena.Allocate(space);
    auto* blocks = static_cast<std::byte*>(std::align(layout.block_align(), size, raw, space));
    for (uint32_t s = 0; s < segments; ++s) layout.Init(blocks + s * layout.block_size());
    return blocks;
  }

  // Drops the tiles starting before `min_start`, moving the others to a fresh arena (their
  // states are merged into new empty blocks), so the memory is returned.
  void DropBefore(int64_t min_start, const tile::TileLayout& layout) {
    Tiles kept;
    for (Entry& e : entries) {
      if (e.start >= min_start) {
        Entry n = e;
        n.blocks = kept.NewBlocks(layout, e.segments);
        for (uint32_t s = 0; s < e.segments; ++s) {
          layout.Merge(n.blocks + s * layout.block_size(), e.blocks + s * layout.block_size());
        }
        kept.index.emplace(EntryKey{n.key, n.start}, static_cast<uint32_t>(kept.entries.size()));
        kept.entries.push_back(n);
      }
      for (uint32_t s = 0; s < e.segments; ++s) layout.Destroy(e.blocks + s * layout.block_size());
    }
    entries = std::move(kept.entries);
    index = std::move(kept.index);
    arena = std::move(kept.arena);
    kept.entries.clear();
    UpdateEstimate(layout, /*recount=*/true);
  }

  void Clear(const tile::TileLayout& layout) {
    for (Entry& e : entries) {
      for (uint32_t s = 0; s < e.segments; ++s) layout.Destroy(e.blocks + s * layout.block_size());
    }
    entries.clear();
    entries.shrink_to_fit();
    index = {};
    arena = Arena(kArenaBlock);  // frees the blocks (Reset() keeps them)
    heap_counted = arena_at_count = estimate = 0;
    dropped_before = std::numeric_limits<int64_t>::min();
  }

  void UpdateEstimate(const tile::TileLayout& layout, bool recount) {
    const size_t arena_bytes = arena.bytes_reserved();
    if (recount) {
      heap_counted = 0;
      for (const Entry& e : entries) {
        for (uint32_t s = 0; s < e.segments; ++s) {
          heap_counted += layout.HeapBytes(e.blocks + s * layout.block_size());
        }
      }
      arena_at_count = arena_bytes;
    }
    const double growth =
        arena_at_count > 0 ? static_cast<double>(arena_bytes) / arena_at_count : 1.0;
    estimate = arena_bytes + index.capacity() * (sizeof(EntryKey) + sizeof(uint32_t) + 1) +
               entries.capacity() * sizeof(Entry) +
               static_cast<size_t>(static_cast<double>(heap_counted) * growth);
  }
};

// Per worker thread.
struct Worker {
  source::Chunk chunk;
  source::ChunkOrigin origin;
  RowBatch batch;
  Arena arena;
  bool has_batch = false;
  uint64_t seq = 0;
  source::DecodeStats decode;
  std::vector<uint8_t> late;
  std::unique_ptr<source::NdjsonDecoder> decoder;
  std::vector<std::unique_ptr<ViewRowPrep>> prep;  // per view
  std::vector<Tiles> tiles;                        // per view
  std::vector<std::unique_ptr<engine::FeatureFinalizer>> finalizers;
  // Scratch.
  std::vector<std::byte*> states;       // per row added: its segment's block
  std::vector<std::byte*> slot_states;  // the same, offset to one aggregate slot
  std::vector<uint32_t> rows;
  std::vector<Value> values;
};

}  // namespace

absl::StatusOr<PitView> PitView::Make(const sql::ViewDef& def, const sql::SourceDef& source,
                                      std::string_view windows) {
  PitView v;
  v.rt = std::make_unique<engine::ViewRuntime>();
  v.rt->def = &def;
  v.rt->source = &source;
  TESSERA_ASSIGN_OR_RETURN(v.rt->layout, engine::MakeTileLayout(def));
  absl::StatusOr<std::vector<engine::WindowSpec>> parsed =
      engine::ParseWindows(windows, def.tile_ms);
  if (!parsed.ok()) {
    return InvalidArgument("windows for view '{}': {}", def.name, StatusMessage(parsed.status()));
  }
  v.windows = *std::move(parsed);
  v.tile_ms = def.tile_ms;
  for (size_t i = 0; i < v.windows.size(); ++i) v.by_length.push_back(i);
  std::stable_sort(v.by_length.begin(), v.by_length.end(), [&](size_t a, size_t b) {
    return v.windows[a].length_ms < v.windows[b].length_ms;
  });
  // `all` reaches back to the first row: every tile is kept (the span of all accepted times keeps
  // the arithmetic on reach_ms far from int64 limits).
  v.reach_ms = v.windows[v.by_length.back()].lifetime() ? kMaxTimestampMs - kMinTimestampMs + 1
                                                        : v.windows[v.by_length.back()].length_ms;
  return v;
}

void PitView::SetPoints(const std::vector<std::optional<std::string_view>>& keys,
                        const std::vector<int64_t>& times) {
  key_id.clear();
  key_hash.clear();
  std::vector<uint32_t> key_of(keys.size(), UINT32_MAX);
  std::vector<uint32_t> count;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!keys[i]) continue;
    auto [it, inserted] = key_id.try_emplace(absl::string_view(keys[i]->data(), keys[i]->size()),
                                             static_cast<uint32_t>(count.size()));
    if (inserted) {
      count.push_back(0);
      key_hash.push_back(Hash64(*keys[i]));
    }
    key_of[i] = it->second;
    ++count[it->second];
  }
  begin.assign(count.size() + 1, 0);
  for (size_t k = 0; k < count.size(); ++k) begin[k + 1] = begin[k] + count[k];
  std::vector<std::pair<int64_t, uint32_t>> sorted(begin.back());
  std::vector<uint32_t> fill(begin.begin(), begin.end() - 1);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (key_of[i] != UINT32_MAX) sorted[fill[key_of[i]]++] = {times[i], static_cast<uint32_t>(i)};
  }
  point_time.resize(sorted.size());
  point_id.resize(sorted.size());
  for (size_t k = 0; k < count.size(); ++k) {
    std::sort(sorted.begin() + begin[k], sorted.begin() + begin[k + 1]);
  }
  for (size_t i = 0; i < sorted.size(); ++i) {
    point_time[i] = sorted[i].first;
    point_id[i] = sorted[i].second;
  }
}

uint32_t PitView::AddKey(std::string_view key) {
  auto it = key_id.find(absl::string_view(key.data(), key.size()));
  if (it != key_id.end()) return it->second;
  const std::string_view owned = key_arena.Copy(key);
  const uint32_t id = static_cast<uint32_t>(key_hash.size());
  open_key.push_back(owned);
  key_id.emplace(absl::string_view(owned.data(), owned.size()), id);
  key_hash.push_back(Hash64(key));
  point_time.push_back(open_at.value_or(kMaxTimestampMs));
  point_id.push_back(id);
  begin.push_back(begin.back() + 1);
  return id;
}

class PitEngine::Impl {
 public:
  Impl(const sql::SourceDef& source, std::vector<PitView>* views, const PitOptions& options)
      : source_(source),
        views_(*views),
        options_(options),
        threads_(std::min(kMaxThreads, engine::WorkerThreads(options.threads))) {
    for (int t = 0; t < threads_; ++t) {
      auto w = std::make_unique<Worker>();
      w->decoder = std::make_unique<source::NdjsonDecoder>(source.columns, source.time_column);
      for (PitView& v : views_) {
        w->prep.push_back(std::make_unique<ViewRowPrep>(*v.rt->def));
        w->finalizers.push_back(std::make_unique<engine::FeatureFinalizer>(*v.rt));
      }
      w->tiles.resize(views_.size());
      workers_.push_back(std::move(w));
    }
  }

  int threads() const { return threads_; }

  absl::StatusOr<PitStats> Run(PitSink* sink) {
    sink_ = sink;
    // Fixed for the run, so that every pass rejects the same rows.
    max_event_time_ = LatestAcceptedEventTime(
        options_.clock->NowMillis(), engine::ReplayMaxFutureMs(source_, options_.max_future_ms));
    PitStats stats;
    int bits = 0;  // the pass's keys: those whose hash's top `bits` bits equal `part`
    for (uint64_t part = 0; part < (uint64_t{1} << bits);) {
      TESSERA_ASSIGN_OR_RETURN(int needed, Pass(bits, part));
      ++stats.passes;
      if (needed > bits) {
        // Over budget: start over with the keys split finer. Parts done so far stay done (a
        // part at `bits` is the union of parts at `needed`).
        part <<= (needed - bits);
        bits = needed;
        continue;
      }
      ++part;
      ++stats.key_parts;
    }
    stats.counters = counters_;
    stats.views = view_counters_;
    stats.tiles = tiles_built_;
    stats.max_event_time_ms = max_event_time_ms_;
    stats.files_skipped = files_skipped_;
    stats.files_resumed = files_resumed_;
    return stats;
  }

 private:
  // One pass over the events for the keys whose hash has `part` as its top `bits` bits.
  // Returns `bits` when the pass completed (its points are answered), or a larger number
  // of bits when the states outgrew the budget (nothing of the pass is kept).
  absl::StatusOr<int> Pass(int bits, uint64_t part) {
    counters_ = {};
    view_counters_.assign(views_.size(), {});
    keep_from_.assign(views_.size(), std::numeric_limits<int64_t>::min());
    engine::Watermark watermark(source_.name, source_.lateness_ms);
    // The inputs as a backfill reads them: an input whose content repeats (or continues) an
    // earlier one's is skipped (or resumed after it).
    engine::FileChunkSource input(options_.inputs, engine::StoredInputProgress{},
                                  options_.chunk_bytes);
    std::mutex input_mu;
    absl::Status input_error;
    bool input_done = false;
    uint64_t next_seq = 0;
    uint64_t bytes_read = 0;
    uint64_t total_bytes = 0;
    for (const std::string& p : options_.inputs) {
      std::error_code ec;
      total_bytes += std::filesystem::file_size(p, ec);
    }
    bool finished = false;
    int over_budget_bits = 0;
    std::vector<Worker*> order;
    int round = 0;
    std::barrier sync(threads_);

    auto worker_loop = [&](int wi) {
      Worker* w = workers_[wi].get();
      while (true) {
        // Phase 1: take a chunk, decode it, evaluate the views.
        w->has_batch = false;
        w->arena.Reset();
        w->decode = {};
        {
          std::lock_guard<std::mutex> lock(input_mu);
          if (!input_done) {
            w->origin.Reset();
            absl::StatusOr<source::Source::Next> next = input.NextChunk(&w->chunk, &w->origin);
            if (!next.ok()) {
              input_error = next.status();
              input_done = true;
            } else if (*next != source::Source::Next::kChunk) {
              input_done = true;
            } else {
              w->has_batch = true;
              w->seq = next_seq++;
              bytes_read += w->chunk.size();
            }
          }
        }
        if (w->has_batch) {
          w->batch.Clear();
          w->decoder->set_max_event_time_ms(max_event_time_);
          w->decoder->Decode(w->chunk, w->origin.first_line, &w->batch, &w->decode);
          for (auto& p : w->prep) {
            p->Prepare(w->batch.columns, w->batch.num_rows, &w->arena, {},
                       engine::kMaxEntityKeyBytes);
          }
        }
        sync.arrive_and_wait();
        // Phase 2 (worker 0): the late rule in stream order; counters; the budget.
        if (wi == 0) {
          order.clear();
          for (auto& x : workers_) {
            if (x->has_batch) order.push_back(x.get());
          }
          std::sort(order.begin(), order.end(),
                    [](const Worker* a, const Worker* b) { return a->seq < b->seq; });
          for (Worker* x : order) MarkLate(x, &watermark);
          AddOpenKeys(order, watermark);
          finished = order.empty() || !input_error.ok();
          size_t bytes = 0;
          for (auto& x : workers_) {
            for (const Tiles& t : x->tiles) bytes += t.estimate;
          }
          if (bytes > options_.memory_budget_bytes && !finished) {
            // Project the pass's states from the input read so far; split the keys so that
            // one part fits in half the budget.
            const double read = std::max<double>(1.0, static_cast<double>(bytes_read));
            const double projected =
                static_cast<double>(bytes) * std::max(1.0, static_cast<double>(total_bytes) / read);
            const double parts =
                projected / (static_cast<double>(options_.memory_budget_bytes) / 2);
            over_budget_bits = bits + std::max(1, static_cast<int>(std::ceil(std::log2(parts))));
            over_budget_bits = std::min(over_budget_bits, kMaxSplitBits);
            if (over_budget_bits == bits) over_budget_bits = 0;
          }
          ++round;
        }
        sync.arrive_and_wait();
        if (finished || over_budget_bits > 0) break;
        // Phase 3: add the rows of the keys this worker owns.
        for (size_t v = 0; v < views_.size(); ++v) AddRows(wi, v, order, bits, part);
        const bool recount = round % 64 == 0;
        for (size_t v = 0; v < views_.size(); ++v) {
          Tiles& tiles = w->tiles[v];
          tiles.UpdateEstimate(*views_[v].rt->layout, recount);
          // Tiles that can no longer count go once they hold a good share of this worker's
          // part of the budget, and the horizon has moved since the last time.
          if (keep_from_[v] > tiles.dropped_before + views_[v].reach_ms / 4 &&
              tiles.estimate > options_.memory_budget_bytes / (2 * static_cast<size_t>(threads_))) {
            tiles.DropBefore(keep_from_[v], *views_[v].rt->layout);
            tiles.dropped_before = keep_from_[v];
          }
        }
        sync.arrive_and_wait();
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads_; ++t) pool.emplace_back(worker_loop, t);
    worker_loop(0);
    for (auto& t : pool) t.join();
    TESSERA_RETURN_IF_ERROR(input_error);
    files_skipped_ = input.skipped();
    files_resumed_ = input.resumed();

    if (over_budget_bits > 0) {
      ClearTiles();
      return over_budget_bits;
    }
    for (auto& w : workers_) {
      for (const Tiles& t : w->tiles) tiles_built_ += static_cast<int64_t>(t.entries.size());
    }
    max_event_time_ms_ = watermark.max_event_time_ms() == engine::Watermark::kNone
                             ? 0
                             : watermark.max_event_time_ms();
    // Answer this part's points: each worker its own keys.
    pool.clear();
    for (int t = 1; t < threads_; ++t) pool.emplace_back([&, t] { Answer(t, bits, part); });
    Answer(0, bits, part);
    for (auto& t : pool) t.join();
    ClearTiles();
    return bits;
  }

  void MarkLate(Worker* x, engine::Watermark* watermark) {
    const size_t n = x->batch.num_rows;
    counters_.late +=
        watermark->MarkLate(std::span<const int64_t>(x->batch.event_time_ms.data(), n), &x->late);
    counters_.lines += x->decode.lines;
    counters_.rows += x->decode.rows;
    counters_.rejected += x->decode.rejected;
    counters_.future += x->decode.future;
    counters_.field_errors += x->decode.field_errors;
    for (size_t v = 0; v < views_.size(); ++v) {
      const std::vector<uint8_t>& status = x->prep[v]->status();
      engine::ViewCounters& c = view_counters_[v];
      for (size_t r = 0; r < n; ++r) {
        if (x->late[r]) continue;
        ++c.rows_in;
        c.filtered += status[r] == ViewRowPrep::kFiltered;
        c.null_key += status[r] == ViewRowPrep::kNullKey;
        c.key_too_long += status[r] == ViewRowPrep::kKeyTooLong;
        c.aggregated += status[r] == ViewRowPrep::kAggregate;
      }
    }
  }

  bool Owns(int wi, uint64_t hash, int bits, uint64_t part) const {
    if (bits > 0 && (hash >> (64 - bits)) != part) return false;
    return static_cast<int>(hash % static_cast<uint64_t>(threads_)) == wi;
  }

  // Adds the on-time rows of view v that worker wi owns and some point needs, batch by batch
  // in stream order.
  void AddRows(int wi, size_t v, const std::vector<Worker*>& order, int bits, uint64_t part) {
    Worker* me = workers_[wi].get();
    PitView& view = views_[v];
    Tiles& tiles = me->tiles[v];
    const tile::TileLayout& layout = *view.rt->layout;
    const size_t block_size = layout.block_size();
    const bool keep_all = view.open_keys && !view.open_at.has_value();
    for (Worker* x : order) {
      const ViewRowPrep& prep = *x->prep[v];
      const std::vector<uint8_t>& status = prep.status();
      const int64_t* ts = x->batch.event_time_ms.data();
      me->states.clear();
      me->rows.clear();
      for (size_t r = 0; r < x->batch.num_rows; ++r) {
        if (status[r] != ViewRowPrep::kAggregate || x->late[r]) continue;
        if (!Owns(wi, prep.key_hash()[r], bits, part)) continue;
        const std::string_view k = prep.key()[r];
        auto it = view.key_id.find(absl::string_view(k.data(), k.size()));
        if (it == view.key_id.end()) continue;
        const uint32_t key = it->second;
        const int64_t* first = view.point_time.data() + view.begin[key];
        const int64_t* last = view.point_time.data() + view.begin[key + 1];
        // The first point after the row; the row counts for it (and later ones) only if it is
        // inside its longest window's tile-aligned tail. (An open view answering at the end of
        // the events keeps every row: its time is not known yet.)
        const int64_t* after = std::upper_bound(first, last, ts[r]);
        if (keep_all ? ts[r] < keep_from_[v]
                     : (after == last || ts[r] < AlignDown(*after - view.reach_ms, view.tile_ms))) {
          continue;
        }
        const int64_t start = AlignDown(ts[r], view.tile_ms);
        auto [slot, inserted] = tiles.index.try_emplace(
            Tiles::EntryKey{key, start}, static_cast<uint32_t>(tiles.entries.size()));
        if (inserted) {
          Tiles::Entry e;
          e.key = key;
          e.start = start;
          const int64_t* lo = std::upper_bound(first, last, start);
          const int64_t* hi = std::lower_bound(lo, last, start + view.tile_ms);
          e.first_split = static_cast<uint32_t>(lo - view.point_time.data());
          e.segments = static_cast<uint32_t>(hi - lo) + 1;
          e.blocks = tiles.NewBlocks(layout, e.segments);
          tiles.entries.push_back(e);
        }
        const Tiles::Entry& e = tiles.entries[slot->second];
        uint32_t segment = 0;
        if (e.segments > 1) {
          const int64_t* splits = view.point_time.data() + e.first_split;
          segment = static_cast<uint32_t>(std::upper_bound(splits, splits + e.segments - 1, ts[r]) -
                                          splits);
        }
        me->states.push_back(e.blocks + segment * block_size);
        me->rows.push_back(static_cast<uint32_t>(r));
      }
      if (me->rows.empty()) continue;
      me->slot_states.resize(me->states.size());
      for (size_t a = 0; a < layout.num_slots(); ++a) {
        for (size_t i = 0; i < me->states.size(); ++i) {
          me->slot_states[i] = me->states[i] + layout.offset(a);
        }
        layout.agg(a).AddBatch(me->slot_states.data(), prep.args(a), ts, me->rows.data(),
                               me->rows.size());
      }
    }
  }

  // Open views: gives every new key of this round's on-time rows its point (coordinating thread,
  // between the phases, so the workers see stable tables). For views answering at the end of
  // the events, also advances keep_from_: that end is after the newest row so far, so rows and
  // tiles before align_down(newest + 1 - the longest window) can never count.
  void AddOpenKeys(const std::vector<Worker*>& order, const engine::Watermark& watermark) {
    for (size_t v = 0; v < views_.size(); ++v) {
      if (!views_[v].open_keys) continue;
      if (!views_[v].open_at.has_value() &&
          watermark.max_event_time_ms() != engine::Watermark::kNone) {
        keep_from_[v] =
            AlignDown(watermark.max_event_time_ms() + 1 - views_[v].reach_ms, views_[v].tile_ms);
      }
      for (Worker* x : order) {
        const ViewRowPrep& prep = *x->prep[v];
        const int64_t before = views_[v].open_at.value_or(kMaxTimestampMs + 1);
        for (size_t r = 0; r < x->batch.num_rows; ++r) {
          if (prep.status()[r] == ViewRowPrep::kAggregate && !x->late[r] &&
              x->batch.event_time_ms[r] < before) {
            const uint32_t id = views_[v].AddKey(prep.key()[r]);
            views_[v].key_seen.resize(views_[v].key_hash.size());
            views_[v].key_seen[id] = 1;
          }
        }
      }
    }
  }

  // Answers the points of worker wi's keys in this part.
  void Answer(int wi, int bits, uint64_t part) {
    Worker* me = workers_[wi].get();
    for (size_t v = 0; v < views_.size(); ++v) {
      PitView& view = views_[v];
      const tile::TileLayout& layout = *view.rt->layout;
      const size_t block_size = layout.block_size();
      std::vector<Tiles::Entry>& entries = me->tiles[v].entries;
      std::sort(entries.begin(), entries.end(), [](const Tiles::Entry& a, const Tiles::Entry& b) {
        return a.key != b.key ? a.key < b.key : a.start < b.start;
      });
      tile::OwnedBlock acc(layout);
      tile::OwnedBlock head_acc(layout);
      std::vector<std::unique_ptr<tile::OwnedBlock>> tails;  // per window
      tile::OwnedBlock prefix(layout);  // `all`: the merge of a key's tiles before prefix_end
      // An open view answering at the end of the events: every row is before that time, and no
      // tile was split.
      const bool at_end = view.open_keys && !view.open_at.has_value();
      const int64_t end_time = max_event_time_ms_ + 1;
      const size_t num_keys = view.key_hash.size();
      size_t e = 0;  // entries of keys before `key` are behind us
      for (uint32_t key = 0; key < num_keys; ++key) {
        if (!Owns(wi, view.key_hash[key], bits, part)) continue;
        while (e < entries.size() && entries[e].key < key) ++e;
        size_t end = e;
        while (end < entries.size() && entries[end].key == key) ++end;
        const Tiles::Entry* tiles = entries.data() + e;
        const size_t num_tiles = end - e;
        // Points sharing a head tile share its tails; the first of them computes them once
        // (into `tails`, per window) and each adds the head segments before its own time to
        // `head_acc`, so many points in one tile cost linear time.
        int64_t shared_head = std::numeric_limits<int64_t>::min();
        size_t head_merged = 0;
        int64_t t_of_point = 0;  // the time of the point being answered
        // The lifetime window `all` reaches back to the key's first tile. Its points come in
        // time order, so the tiles before each one's tail cursor only grow: one running prefix
        // merges every tile once, instead of once per point.
        prefix.Reset();
        const Tiles::Entry* prefix_end = tiles;
        auto merge_back = [&](size_t k, const Tiles::Entry** cursor, std::byte* dst) {
          if (!view.windows[k].lifetime() || *cursor < prefix_end) {
            MergeBack(layout, tiles, engine::WindowFrom(view.windows[k], t_of_point, view.tile_ms),
                      cursor, dst);
            return;
          }
          for (; prefix_end != *cursor; ++prefix_end) {
            for (uint32_t s = 0; s < prefix_end->segments; ++s) {
              layout.Merge(prefix.data(), prefix_end->blocks + s * block_size);
            }
          }
          layout.Merge(dst, prefix.data());
          *cursor = tiles;
        };
        for (uint32_t i = view.begin[key]; i < view.begin[key + 1]; ++i) {
          const int64_t t = at_end ? end_time : view.point_time[i];
          t_of_point = t;
          const int64_t head = AlignDown(t, view.tile_ms);
          const Tiles::Entry* it =
              std::lower_bound(tiles, tiles + num_tiles, head,
                               [](const Tiles::Entry& x, int64_t s) { return x.start < s; });
          const Tiles::Entry* head_tile =
              it != tiles + num_tiles && it->start == head ? it : nullptr;
          // The head segments before t (those not merged for an earlier point of the tile).
          size_t before = 0;
          if (head_tile != nullptr) {
            const int64_t* splits = view.point_time.data() + head_tile->first_split;
            before =
                at_end
                    ? head_tile->segments
                    : static_cast<size_t>(
                          std::upper_bound(splits, splits + head_tile->segments - 1, t) - splits);
          }
          const bool shared =
              head == shared_head || (i + 1 < view.begin[key + 1] && !at_end &&
                                      AlignDown(view.point_time[i + 1], view.tile_ms) == head);
          if (!shared) {
            // The common case: one accumulator from the head back through the tails.
            acc.Reset();
            for (size_t s = 0; s < before; ++s) {
              layout.Merge(acc.data(), head_tile->blocks + s * block_size);
            }
            const Tiles::Entry* cursor = it;  // tiles before cursor are not merged yet
            for (size_t k : view.by_length) {
              merge_back(k, &cursor, acc.data());
              me->finalizers[v]->Finalize(acc.data(), t, &me->values);
              sink_->Window(wi, v, view.point_id[i], t, k, me->values);
            }
            sink_->PointDone(wi, v, view.point_id[i]);
            continue;
          }
          if (head != shared_head) {
            shared_head = head;
            head_merged = 0;
            head_acc.Reset();
            tails.resize(view.windows.size());
            const Tiles::Entry* cursor = it;
            const std::byte* previous = nullptr;
            for (size_t k : view.by_length) {
              if (tails[k] == nullptr) tails[k] = std::make_unique<tile::OwnedBlock>(layout);
              tails[k]->Reset();
              if (previous != nullptr) layout.Merge(tails[k]->data(), previous);
              merge_back(k, &cursor, tails[k]->data());
              previous = tails[k]->data();
            }
          }
          for (; head_merged < before; ++head_merged) {
            layout.Merge(head_acc.data(), head_tile->blocks + head_merged * block_size);
          }
          for (size_t k : view.by_length) {
            acc.Reset();
            layout.Merge(acc.data(), head_acc.data());
            layout.Merge(acc.data(), tails[k]->data());
            me->finalizers[v]->Finalize(acc.data(), t, &me->values);
            sink_->Window(wi, v, view.point_id[i], t, k, me->values);
          }
          sink_->PointDone(wi, v, view.point_id[i]);
        }
        e = end;
      }
    }
  }

  // Merges into `acc` every segment of the tiles before *cursor whose start is at or after
  // `from`, moving *cursor back past them (tiles: one key's, by start).
  static void MergeBack(const tile::TileLayout& layout, const Tiles::Entry* first, int64_t from,
                        const Tiles::Entry** cursor, std::byte* acc) {
    while (*cursor != first && (*cursor - 1)->start >= from) {
      --*cursor;
      for (uint32_t s = 0; s < (*cursor)->segments; ++s) {
        layout.Merge(acc, (*cursor)->blocks + s * layout.block_size());
      }
    }
  }

  void ClearTiles() {
    for (auto& w : workers_) {
      for (size_t v = 0; v < views_.size(); ++v) w->tiles[v].Clear(*views_[v].rt->layout);
    }
  }

  const sql::SourceDef& source_;
  std::vector<PitView>& views_;
  const PitOptions options_;
  const int threads_;
  std::vector<std::unique_ptr<Worker>> workers_;
  PitSink* sink_ = nullptr;
  int64_t max_event_time_ = 0;  // rows after it are rejected (the max-future bound)
  int files_skipped_ = 0;
  int files_resumed_ = 0;
  // Per view answering at the end of the events: rows before this can no longer count.
  std::vector<int64_t> keep_from_;
  engine::SourceCounters counters_;
  std::vector<engine::ViewCounters> view_counters_;
  int64_t tiles_built_ = 0;
  int64_t max_event_time_ms_ = 0;
};

PitEngine::PitEngine(const sql::SourceDef& source, std::vector<PitView>* views,
                     const PitOptions& options)
    : impl_(std::make_unique<Impl>(source, views, options)) {}

PitEngine::~PitEngine() = default;

int PitEngine::threads() const { return impl_->threads(); }

absl::StatusOr<PitStats> PitEngine::Run(PitSink* sink) { return impl_->Run(sink); }

}  // namespace tessera::offline
