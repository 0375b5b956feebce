#include "offline/training_set.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <barrier>
#include <bit>
#include <cmath>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "common/arena.h"
#include "common/errors.h"
#include "common/hash.h"
#include "common/json_string.h"
#include "common/output_file.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/varint.h"
#include "engine/backfill.h"
#include "engine/entity_key.h"
#include "engine/feature_reader.h"
#include "engine/row_prep.h"
#include "engine/watermark.h"
#include "nlohmann/json.hpp"
#include "offline/csv.h"
#include "offline/spine.h"
#include "source/format/line_reader.h"
#include "source/format/ndjson_decoder.h"
#include "tile/tile_layout.h"

namespace tessera::offline {

namespace {

using engine::ViewRowPrep;

// One requested view: its runtime, windows and the spine rows indexed by key.
struct View {
  std::unique_ptr<engine::ViewRuntime> rt;
  std::vector<engine::WindowSpec> windows;  // as requested (output order)
  std::vector<size_t> by_length;            // window indexes, shortest first
  int64_t tile_ms = 0;
  int64_t reach_ms = 0;  // the longest window: rows before align_down(t - reach_ms) never count
  // Spine keys. Key k's spine rows are spine_row[begin[k] .. begin[k+1]), by time.
  absl::flat_hash_map<absl::string_view, uint32_t> key_id;
  std::vector<uint64_t> key_hash;
  std::vector<uint32_t> begin;
  std::vector<int64_t> spine_time;
  std::vector<uint32_t> spine_row;
  // Per spine row: where its feature values are (Fragment), or kNoFragment (a NULL key).
  std::vector<uint64_t> fragment;
  size_t values_per_row = 0;  // features × windows
  std::string empty_values;   // the values of an empty window, encoded as a fragment
};

constexpr uint64_t kNoFragment = UINT64_MAX;
// Keys are split into at most 2^kMaxSplitBits parts (passes over the events); past that the
// memory budget is exceeded rather than the events read yet more often.
constexpr int kMaxSplitBits = 8;
// A fragment reference: the worker whose buffer holds it (top 8 bits) and the offset there.
uint64_t Fragment(int worker, uint64_t offset) {
  return (static_cast<uint64_t>(worker) << 56) | offset;
}

// The tile states of one (view, worker) part of the keys during a pass. A tile of a key whose
// spine times fall inside it is split at them: segment j holds the rows with
// split[j-1] <= ts < split[j] (split[-1] = tile start, split[n] = tile end).
struct Tiles {
  struct Entry {
    uint32_t key = 0;
    int64_t start = 0;
    uint32_t first_split = 0;  // index into View::spine_time of the first split
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
  size_t heap_counted = 0;         // sketch heap at the last count
  size_t arena_at_count = 0;       // arena bytes then
  size_t estimate = 0;             // bytes now (heap scaled by arena growth since the count)

  void Clear(const tile::TileLayout& layout) {
    for (Entry& e : entries) {
      for (uint32_t s = 0; s < e.segments; ++s) layout.Destroy(e.blocks + s * layout.block_size());
    }
    entries.clear();
    entries.shrink_to_fit();
    index = {};
    arena = Arena(kArenaBlock);  // frees the blocks (Reset() keeps them)
    heap_counted = arena_at_count = estimate = 0;
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

// Reads the inputs in order, a chunk of whole lines at a time. Not thread-safe.
class InputCursor {
 public:
  InputCursor(const std::vector<std::string>& paths, size_t chunk_bytes)
      : paths_(paths), chunk_bytes_(chunk_bytes) {}

  // The next chunk and the number of its first line in its file; false at the end.
  absl::StatusOr<bool> Next(source::Chunk* chunk, int64_t* first_line) {
    while (true) {
      if (reader_ == nullptr) {
        if (next_ == paths_.size()) return false;
        source::LineReaderOptions o;
        o.chunk_bytes = chunk_bytes_;
        TESSERA_ASSIGN_OR_RETURN(reader_, source::LineReader::Open(paths_[next_++], 0, o));
        line_ = 1;
      }
      TESSERA_ASSIGN_OR_RETURN(bool more, reader_->Next(chunk));
      if (more) {
        *first_line = line_;
        line_ += std::count(chunk->data(), chunk->data() + chunk->size(), '\n');
        return true;
      }
      reader_.reset();
    }
  }

 private:
  const std::vector<std::string>& paths_;
  size_t chunk_bytes_;
  size_t next_ = 0;
  int64_t line_ = 1;
  std::unique_ptr<source::LineReader> reader_;
};

// Per worker thread.
struct Worker {
  source::Chunk chunk;
  int64_t first_line = 0;
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
  std::string fragments;  // encoded feature values of the spine rows this worker answered
  // Scratch.
  std::vector<std::byte*> states;       // per row added: its segment's block
  std::vector<std::byte*> slot_states;  // the same, offset to one aggregate slot
  std::vector<uint32_t> rows;
  std::vector<Value> values;
  std::string text;
};

class Builder {
 public:
  Builder(const sql::SourceDef& source, std::vector<View>* views, const Spine& spine,
          const TrainingSetOptions& options, TableFormat out_format)
      : source_(source),
        views_(*views),
        spine_(spine),
        options_(options),
        out_format_(out_format),
        threads_(options.threads > 0
                     ? options.threads
                     : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))) {
    for (int t = 0; t < threads_; ++t) {
      auto w = std::make_unique<Worker>();
      w->decoder = std::make_unique<source::NdjsonDecoder>(source.columns, source.time_column);
      for (View& v : views_) {
        w->prep.push_back(std::make_unique<ViewRowPrep>(*v.rt->def));
        w->finalizers.push_back(std::make_unique<engine::FeatureFinalizer>(*v.rt));
      }
      w->tiles.resize(views_.size());
      workers_.push_back(std::move(w));
    }
  }

  int threads() const { return threads_; }

  // Runs passes until every spine row has its values. Fills the summary's counters.
  absl::Status Run(TrainingSetSummary* summary) {
    int bits = 0;  // the pass's keys: those whose hash's top `bits` bits equal `part`
    for (uint64_t part = 0; part < (uint64_t{1} << bits);) {
      TESSERA_ASSIGN_OR_RETURN(int needed, Pass(bits, part));
      ++summary->passes;
      if (needed > bits) {
        // Over budget: start over with the keys split finer. Parts done so far stay done (a
        // part at `bits` is the union of parts at `needed`).
        part <<= (needed - bits);
        bits = needed;
        continue;
      }
      ++part;
      ++summary->partitions;
    }
    summary->counters = counters_;
    for (size_t v = 0; v < views_.size(); ++v) {
      summary->views.emplace_back(views_[v].rt->def->name, view_counters_[v]);
    }
    summary->tiles = tiles_built_;
    return absl::OkStatus();
  }

  // Writes the output in spine order.
  absl::Status Write(OutputFile* out) {
    std::string line;
    if (out_format_ == TableFormat::kCsv) {
      bool first = true;
      for (const std::string& c : spine_.columns()) {
        if (!first) line += ',';
        first = false;
        AppendCsvField(c, &line);
      }
      ForEachFeatureColumn([&](std::string_view name) {
        if (!first) line += ',';
        first = false;
        AppendCsvField(name, &line);
      });
      line += '\n';
      TESSERA_RETURN_IF_ERROR(out->Write(line));
    }
    std::vector<std::string> json_names;
    ForEachFeatureColumn([&](std::string_view name) {
      std::string n;
      AppendJsonString(name, &n);
      n += ':';
      json_names.push_back(std::move(n));
    });
    std::string buffer;
    std::vector<std::string_view> value_views;
    for (size_t row = 0; row < spine_.size(); ++row) {
      const bool ndjson = out_format_ == TableFormat::kNdjson;
      if (ndjson) buffer += '{';
      bool any = spine_.AppendColumns(row, out_format_, &buffer);
      size_t column = 0;
      for (const View& v : views_) {
        std::string_view values = v.empty_values;
        if (v.fragment[row] != kNoFragment) {
          const uint64_t ref = v.fragment[row];
          values = std::string_view(workers_[ref >> 56]->fragments)
                       .substr(ref & ((uint64_t{1} << 56) - 1));
        }
        // Stored window by window; written feature by feature (ForEachFeatureColumn).
        ByteReader reader(values);
        value_views.resize(v.values_per_row);
        for (std::string_view& value : value_views) {
          reader.Bytes(&value, "feature value").IgnoreError();  // written by Answer()
        }
        const size_t num_features = v.rt->def->features.size();
        for (size_t f = 0; f < num_features; ++f) {
          for (size_t w = 0; w < v.windows.size(); ++w, ++column) {
            if (any) buffer += ',';
            any = true;
            if (ndjson) buffer += json_names[column];
            buffer += value_views[w * num_features + f];
          }
        }
      }
      buffer += ndjson ? "}\n" : "\n";
      if (buffer.size() >= (size_t{1} << 20)) {
        TESSERA_RETURN_IF_ERROR(out->Write(buffer));
        buffer.clear();
      }
    }
    return out->Write(buffer);
  }

  // Encodes the features of an empty window for every view (NULL keys, never-seen keys).
  void EncodeEmptyValues() {
    for (size_t v = 0; v < views_.size(); ++v) {
      const tile::TileLayout& layout = *views_[v].rt->layout;
      tile::OwnedBlock empty(layout);
      std::string& out = views_[v].empty_values;
      out.clear();
      for (size_t w = 0; w < views_[v].windows.size(); ++w) {
        AppendValues(workers_[0].get(), v, empty.data(), &out);
      }
    }
  }

 private:
  template <typename Fn>
  void ForEachFeatureColumn(Fn&& fn) const {
    for (const View& v : views_) {
      for (const sql::FeatureColumn& f : v.rt->def->features) {
        for (const engine::WindowSpec& w : v.windows) {
          fn(fmt::format("{}__{}__{}", v.rt->def->name, f.name, w.name));
        }
      }
    }
  }

  // Finalizes `block` and appends its feature values to `out`, each as PutBytes of its text in
  // the output format.
  void AppendValues(Worker* w, size_t v, const std::byte* block, std::string* out) {
    w->finalizers[v]->Finalize(block, &w->values);
    for (const Value& value : w->values) {
      w->text.clear();
      if (out_format_ == TableFormat::kNdjson) {
        value.AppendJson(&w->text);
      } else if (!value.is_null()) {
        switch (value.type()) {
          case DataType::kString:
            AppendCsvField(value.string(), &w->text);
            break;
          case DataType::kTimestamp:
            w->text = FormatRfc3339Millis(value.int64());
            break;
          case DataType::kList:
            AppendCsvField(value.ToJson(), &w->text);
            break;
          default:
            value.AppendJson(&w->text);
            if (w->text == "null") w->text.clear();  // a non-finite double
        }
      }
      PutBytes(out, w->text);
    }
  }

  // One pass over the events for the keys whose hash has `part` as its top `bits` bits.
  // Returns `bits` when the pass completed (its spine rows are answered), or a larger number
  // of bits when the states outgrew the budget (nothing of the pass is kept).
  absl::StatusOr<int> Pass(int bits, uint64_t part) {
    counters_ = {};
    view_counters_.assign(views_.size(), {});
    engine::Watermark watermark(source_.name, source_.lateness_ms);
    InputCursor input(options_.inputs, options_.chunk_bytes);
    const int64_t max_event_time = LatestAcceptedEventTime(
        options_.clock->NowMillis(),
        options_.max_future_ms.value_or(
            source_.max_future_ms.value_or(sql::kDefaultBackfillMaxFutureMs)));
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
            absl::StatusOr<bool> more = input.Next(&w->chunk, &w->first_line);
            if (!more.ok()) {
              input_error = more.status();
              input_done = true;
            } else if (!*more) {
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
          w->decoder->set_max_event_time_ms(max_event_time);
          w->decoder->Decode(w->chunk, w->first_line, &w->batch, &w->decode);
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
            const double parts = projected / (static_cast<double>(options_.memory_budget_bytes) / 2);
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
          w->tiles[v].UpdateEstimate(*views_[v].rt->layout, recount);
        }
        sync.arrive_and_wait();
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads_; ++t) pool.emplace_back(worker_loop, t);
    worker_loop(0);
    for (auto& t : pool) t.join();
    TESSERA_RETURN_IF_ERROR(input_error);

    if (over_budget_bits > 0) {
      ClearTiles();
      return over_budget_bits;
    }
    for (auto& w : workers_) {
      for (const Tiles& t : w->tiles) tiles_built_ += static_cast<int64_t>(t.entries.size());
    }
    // Answer this part's spine rows: each worker its own keys.
    pool.clear();
    for (int t = 1; t < threads_; ++t) pool.emplace_back([&, t] { Answer(t, bits, part); });
    Answer(0, bits, part);
    for (auto& t : pool) t.join();
    ClearTiles();
    return bits;
  }

  void MarkLate(Worker* x, engine::Watermark* watermark) {
    const size_t n = x->batch.num_rows;
    counters_.late += watermark->MarkLate(
        std::span<const int64_t>(x->batch.event_time_ms.data(), n), &x->late);
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

  // Adds the on-time rows of view v that worker wi owns and some spine row needs, batch by batch
  // in stream order.
  void AddRows(int wi, size_t v, const std::vector<Worker*>& order, int bits, uint64_t part) {
    Worker* me = workers_[wi].get();
    View& view = views_[v];
    Tiles& tiles = me->tiles[v];
    const tile::TileLayout& layout = *view.rt->layout;
    const size_t block_size = layout.block_size();
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
        const int64_t* first = view.spine_time.data() + view.begin[key];
        const int64_t* last = view.spine_time.data() + view.begin[key + 1];
        // The first spine time after the row; the row counts for it (and later ones) only if
        // it is inside its longest window's tile-aligned tail.
        const int64_t* after = std::upper_bound(first, last, ts[r]);
        if (after == last || ts[r] < AlignDown(*after - view.reach_ms, view.tile_ms)) continue;
        const int64_t start = AlignDown(ts[r], view.tile_ms);
        auto [slot, inserted] = tiles.index.try_emplace(
            Tiles::EntryKey{key, start}, static_cast<uint32_t>(tiles.entries.size()));
        if (inserted) {
          Tiles::Entry e;
          e.key = key;
          e.start = start;
          const int64_t* lo = std::upper_bound(first, last, start);
          const int64_t* hi = std::lower_bound(lo, last, start + view.tile_ms);
          e.first_split = static_cast<uint32_t>(lo - view.spine_time.data());
          e.segments = static_cast<uint32_t>(hi - lo) + 1;
          const size_t bytes = e.segments * block_size + layout.block_align();
          char* raw = tiles.arena.Allocate(bytes);
          const uintptr_t aligned = (reinterpret_cast<uintptr_t>(raw) + layout.block_align() - 1) &
                                    ~(uintptr_t{layout.block_align()} - 1);
          e.blocks = reinterpret_cast<std::byte*>(aligned);
          for (uint32_t s = 0; s < e.segments; ++s) layout.Init(e.blocks + s * block_size);
          tiles.entries.push_back(e);
        }
        const Tiles::Entry& e = tiles.entries[slot->second];
        uint32_t segment = 0;
        if (e.segments > 1) {
          const int64_t* splits = view.spine_time.data() + e.first_split;
          segment = static_cast<uint32_t>(
              std::upper_bound(splits, splits + e.segments - 1, ts[r]) - splits);
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
        layout.agg(a).AddBatch(me->slot_states.data(), prep.arg_columns()[a], ts, me->rows.data(),
                               me->rows.size());
      }
    }
  }

  // Computes and encodes the features of the spine rows of worker wi's keys in this part.
  void Answer(int wi, int bits, uint64_t part) {
    Worker* me = workers_[wi].get();
    for (size_t v = 0; v < views_.size(); ++v) {
      View& view = views_[v];
      const tile::TileLayout& layout = *view.rt->layout;
      const size_t block_size = layout.block_size();
      std::vector<Tiles::Entry>& entries = me->tiles[v].entries;
      std::sort(entries.begin(), entries.end(), [](const Tiles::Entry& a, const Tiles::Entry& b) {
        return a.key != b.key ? a.key < b.key : a.start < b.start;
      });
      tile::OwnedBlock acc(layout);
      const size_t num_keys = view.key_hash.size();
      size_t e = 0;  // entries of keys before `key` are behind us
      for (uint32_t key = 0; key < num_keys; ++key) {
        if (!Owns(wi, view.key_hash[key], bits, part)) continue;
        while (e < entries.size() && entries[e].key < key) ++e;
        size_t end = e;
        while (end < entries.size() && entries[end].key == key) ++end;
        const Tiles::Entry* tiles = entries.data() + e;
        const size_t num_tiles = end - e;
        for (uint32_t i = view.begin[key]; i < view.begin[key + 1]; ++i) {
          const int64_t t = view.spine_time[i];
          const int64_t head = AlignDown(t, view.tile_ms);
          acc.Reset();
          // The head: the segments of t's tile before t.
          const Tiles::Entry* it =
              std::lower_bound(tiles, tiles + num_tiles, head,
                               [](const Tiles::Entry& x, int64_t s) { return x.start < s; });
          if (it != tiles + num_tiles && it->start == head) {
            const int64_t* splits = view.spine_time.data() + it->first_split;
            const size_t before = static_cast<size_t>(
                std::upper_bound(splits, splits + it->segments - 1, t) - splits);
            for (size_t s = 0; s < before; ++s) layout.Merge(acc.data(), it->blocks + s * block_size);
          }
          // The tails, shortest window first, whole tiles going back in time.
          const Tiles::Entry* cursor = it;  // tiles before cursor are not merged yet
          const uint64_t offset = me->fragments.size();
          std::string_view previous;
          std::vector<std::string>& texts = window_texts_[wi];
          texts.resize(view.windows.size());
          for (size_t k : view.by_length) {
            const int64_t from = head - view.windows[k].length_ms;
            while (cursor != tiles && (cursor - 1)->start >= from) {
              --cursor;
              for (uint32_t s = 0; s < cursor->segments; ++s) {
                layout.Merge(acc.data(), cursor->blocks + s * block_size);
              }
            }
            texts[k].clear();
            AppendValues(me, v, acc.data(), &texts[k]);
          }
          for (const std::string& text : texts) me->fragments += text;
          view.fragment[view.spine_row[i]] = Fragment(wi, offset);
        }
        e = end;
      }
    }
  }

  void ClearTiles() {
    for (auto& w : workers_) {
      for (size_t v = 0; v < views_.size(); ++v) w->tiles[v].Clear(*views_[v].rt->layout);
    }
  }

  const sql::SourceDef& source_;
  std::vector<View>& views_;
  const Spine& spine_;
  const TrainingSetOptions& options_;
  const TableFormat out_format_;
  const int threads_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::vector<std::string>> window_texts_{static_cast<size_t>(threads_)};
  engine::SourceCounters counters_;
  std::vector<engine::ViewCounters> view_counters_;
  int64_t tiles_built_ = 0;
};

}  // namespace

std::string TrainingSetSummary::ToJson() const {
  nlohmann::json j;
  j["spine_rows"] = spine_rows;
  j["spine_rows_skipped"] = spine_rows_skipped;
  nlohmann::json nulls = nlohmann::json::object();
  for (const auto& [name, n] : spine_null_keys) nulls[name] = n;
  j["spine_null_keys"] = nulls;
  j["read"] = counters.lines;
  j["rows"] = counters.rows;
  j["rejected"] = counters.rejected;
  j["late"] = counters.late;
  j["future"] = counters.future;
  j["field_errors"] = counters.field_errors;
  nlohmann::json views_json = nlohmann::json::object();
  for (const auto& [name, c] : views) {
    views_json[name] = {{"rows_in", c.rows_in},
                        {"filtered", c.filtered},
                        {"null_key", c.null_key},
                        {"key_too_long", c.key_too_long},
                        {"aggregated", c.aggregated}};
  }
  j["views"] = views_json;
  j["tiles"] = tiles;
  j["passes"] = passes;
  j["key_parts"] = partitions;
  j["out_bytes"] = out_bytes;
  j["seconds"] = std::round(seconds * 1000) / 1000;
  j["threads"] = threads;
  return j.dump();
}

absl::StatusOr<TrainingSetSummary> BuildTrainingSet(const sql::Catalog& catalog,
                                                    const TrainingSetOptions& options) {
  const int64_t t0 = options.clock->MonotonicNanos();
  if (options.views.empty()) return InvalidArgument("no views: pass --views V1,V2");
  TESSERA_ASSIGN_OR_RETURN(TableFormat out_format, TableFormatOfPath(options.out));
  TESSERA_RETURN_IF_ERROR(engine::CheckBackfillInputs(options.inputs));

  // The views, their windows and the one source they read.
  std::vector<View> views;
  const sql::SourceDef* source = nullptr;
  SpineOptions spine_options{.time_column = options.spine_time,
                             .skip_bad_rows = options.skip_bad_spine,
                             .views = {}};
  for (const std::string& name : options.views) {
    const sql::ViewDef* def = catalog.FindView(name);
    if (def == nullptr) {
      std::vector<std::string> names;
      for (const sql::ViewDef& v : catalog.views) names.push_back(v.name);
      return NotFound("no view '{}' in the SQL; it defines: {}", name, fmt::join(names, ", "));
    }
    for (const View& v : views) {
      if (v.rt->def == def) return InvalidArgument("view '{}' is listed twice in --views", name);
    }
    const sql::SourceDef* s = catalog.FindSource(def->source);
    if (source != nullptr && s != source) {
      return InvalidArgument(
          "views '{}' and '{}' read different sources ('{}', '{}'): the events of one training "
          "set are one stream; build one training set per source",
          views.front().rt->def->name, def->name, source->name, s->name);
    }
    source = s;
    View v;
    v.rt = std::make_unique<engine::ViewRuntime>();
    v.rt->def = def;
    v.rt->source = s;
    TESSERA_ASSIGN_OR_RETURN(v.rt->layout, engine::MakeTileLayout(*def));
    absl::StatusOr<std::vector<engine::WindowSpec>> windows =
        engine::ParseWindows(options.windows, def->tile_ms);
    if (!windows.ok()) {
      return InvalidArgument("--windows for view '{}': {}", def->name,
                             StatusMessage(windows.status()));
    }
    v.windows = *std::move(windows);
    v.tile_ms = def->tile_ms;
    for (size_t i = 0; i < v.windows.size(); ++i) v.by_length.push_back(i);
    std::stable_sort(v.by_length.begin(), v.by_length.end(), [&](size_t a, size_t b) {
      return v.windows[a].length_ms < v.windows[b].length_ms;
    });
    v.reach_ms = v.windows[v.by_length.back()].length_ms;
    v.values_per_row = v.windows.size() * def->features.size();
    SpineKeyColumns keys;
    keys.names = def->key_names;
    for (const auto& k : def->keys) keys.types.push_back(k->type);
    spine_options.views.push_back(std::move(keys));
    views.push_back(std::move(v));
  }

  TESSERA_ASSIGN_OR_RETURN(Spine spine, Spine::Read(options.spine, spine_options));
  // Feature columns must not collide with the spine's own.
  for (const View& v : views) {
    for (const engine::WindowSpec& w : v.windows) {
      for (const sql::FeatureColumn& f : v.rt->def->features) {
        const std::string name = fmt::format("{}__{}__{}", v.rt->def->name, f.name, w.name);
        if (std::find(spine.columns().begin(), spine.columns().end(), name) !=
            spine.columns().end()) {
          return InvalidArgument("the spine already has a column '{}', which the output adds",
                                 name);
        }
      }
    }
  }

  // Index the spine by key, per view: CSR of (time, row) sorted by time.
  for (size_t vi = 0; vi < views.size(); ++vi) {
    View& v = views[vi];
    std::vector<uint32_t> key_of_row(spine.size(), UINT32_MAX);
    std::vector<uint32_t> count;
    for (size_t row = 0; row < spine.size(); ++row) {
      std::optional<std::string_view> key = spine.key(vi, row);
      if (!key) continue;
      auto [it, inserted] = v.key_id.try_emplace(absl::string_view(key->data(), key->size()),
                                                static_cast<uint32_t>(count.size()));
      if (inserted) {
        count.push_back(0);
        v.key_hash.push_back(Hash64(*key));
      }
      key_of_row[row] = it->second;
      ++count[it->second];
    }
    v.begin.assign(count.size() + 1, 0);
    for (size_t k = 0; k < count.size(); ++k) v.begin[k + 1] = v.begin[k] + count[k];
    v.spine_time.resize(v.begin.back());
    v.spine_row.resize(v.begin.back());
    std::vector<uint32_t> fill(v.begin.begin(), v.begin.end() - 1);
    for (size_t row = 0; row < spine.size(); ++row) {
      if (key_of_row[row] == UINT32_MAX) continue;
      const uint32_t at = fill[key_of_row[row]]++;
      v.spine_time[at] = spine.time(row);
      v.spine_row[at] = static_cast<uint32_t>(row);
    }
    for (size_t k = 0; k < count.size(); ++k) {
      std::vector<std::pair<int64_t, uint32_t>> rows;
      for (uint32_t i = v.begin[k]; i < v.begin[k + 1]; ++i) {
        rows.emplace_back(v.spine_time[i], v.spine_row[i]);
      }
      std::sort(rows.begin(), rows.end());
      for (uint32_t i = v.begin[k]; i < v.begin[k + 1]; ++i) {
        v.spine_time[i] = rows[i - v.begin[k]].first;
        v.spine_row[i] = rows[i - v.begin[k]].second;
      }
    }
    v.fragment.assign(spine.size(), kNoFragment);
  }

  TrainingSetSummary summary;
  Builder builder(*source, &views, spine, options, out_format);
  builder.EncodeEmptyValues();
  TESSERA_RETURN_IF_ERROR(builder.Run(&summary));
  TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<OutputFile> out, OutputFile::Create(options.out));
  TESSERA_RETURN_IF_ERROR(builder.Write(out.get()));
  summary.out_bytes = out->bytes_written();
  TESSERA_RETURN_IF_ERROR(out->Commit());

  summary.spine_rows = static_cast<int64_t>(spine.size());
  summary.spine_rows_skipped = spine.skipped_rows();
  for (size_t v = 0; v < views.size(); ++v) {
    summary.spine_null_keys.emplace_back(views[v].rt->def->name, spine.null_keys(v));
  }
  summary.threads = builder.threads();
  summary.seconds = static_cast<double>(options.clock->MonotonicNanos() - t0) / 1e9;
  return summary;
}

}  // namespace tessera::offline
