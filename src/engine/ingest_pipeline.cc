#include "engine/ingest_pipeline.h"

#include <algorithm>
#include <barrier>
#include <charconv>
#include <limits>
#include <thread>

#include "common/errors.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "engine/entity_key.h"
#include "sql/expr.h"
#include "store/meta_keys.h"

namespace tessera::engine {

// Per-view results of evaluating one batch (phase 1), read by every worker in phase 3.
struct IngestPipeline::ViewPrep {
  std::unique_ptr<sql::ExprEvaluator> where;
  std::vector<std::unique_ptr<sql::ExprEvaluator>> keys;
  std::vector<std::unique_ptr<sql::ExprEvaluator>> args;  // null for COUNT(*)
  std::vector<const Column*> arg_columns;
  // Per row: 1 = aggregate, 0 = filtered by WHERE, 2 = NULL key, 3 = key too long.
  std::vector<uint8_t> status;
  std::vector<std::string_view> key;
  std::vector<uint64_t> key_hash;
  std::vector<uint32_t> shard;
  std::string key_buffer;
  std::string part_buffer;
};

struct IngestPipeline::Worker {
  source::Chunk chunk;
  RowBatch batch;
  Arena arena;  // strings made by expressions and composite keys, reset per round
  bool has_batch = false;
  uint64_t seq = 0;
  source::DecodeStats decode;
  std::vector<uint8_t> late;
  std::vector<ViewPrep> views;
  // Scratch for phase 3.
  std::vector<uint32_t> rows;
  std::vector<uint32_t> shard_offsets;
  std::vector<uint32_t> cursor;
  std::vector<std::byte*> blocks;
  std::vector<std::byte*> states;
  std::unique_ptr<source::NdjsonDecoder> decoder;
  std::string input_name;
  int64_t first_line = 0;
};

namespace {
std::string HasTilesKey(uint32_t view_id) { return store::meta::ViewHasTilesKey(view_id); }
}  // namespace

IngestPipeline::IngestPipeline(const sql::SourceDef& source, std::vector<const ViewRuntime*> views,
                               store::TileStore* store, PipelineOptions options)
    : source_(source),
      views_(std::move(views)),
      store_(store),
      options_(options),
      pending_rollups_(store),
      committed_max_event_time_ms_(std::numeric_limits<int64_t>::min()),
      max_event_time_ms_(std::numeric_limits<int64_t>::min()),
      view_counters_(views_.size()) {
  threads_ =
      options_.threads > 0 ? options_.threads : std::max(1u, std::thread::hardware_concurrency());
  num_shards_ = threads_ * std::max(1, options_.shards_per_thread);
  for (const ViewRuntime* v : views_) {
    std::vector<std::unique_ptr<TileShard>> shards;
    std::vector<std::unique_ptr<std::shared_mutex>> mus;
    for (int i = 0; i < num_shards_; ++i) {
      shards.push_back(std::make_unique<TileShard>(v->layout.get()));
      mus.push_back(std::make_unique<std::shared_mutex>());
    }
    shards_.push_back(std::move(shards));
    shard_mu_.push_back(std::move(mus));
    retired_.emplace_back(num_shards_);
  }
  for (int t = 0; t < threads_; ++t) {
    auto w = std::make_unique<Worker>();
    w->decoder = std::make_unique<source::NdjsonDecoder>(source_.columns, source_.time_column);
    for (const ViewRuntime* v : views_) {
      ViewPrep prep;
      if (v->def->where) prep.where = std::make_unique<sql::ExprEvaluator>(*v->def->where);
      for (const auto& k : v->def->keys) {
        prep.keys.push_back(std::make_unique<sql::ExprEvaluator>(*k));
      }
      for (const auto& a : v->def->aggregates) {
        prep.args.push_back(a.arg ? std::make_unique<sql::ExprEvaluator>(*a.arg) : nullptr);
      }
      prep.arg_columns.resize(v->def->aggregates.size(), nullptr);
      w->views.push_back(std::move(prep));
    }
    workers_.push_back(std::move(w));
  }
  flush_out_.resize(threads_);
  owed_work_.resize(threads_);
  flush_stats_per_worker_.resize(threads_);
}

IngestPipeline::~IngestPipeline() = default;

std::string IngestPipeline::WatermarkKey() const {
  return store::meta::SourceMaxEventTimeKey(source_.name);
}

absl::Status IngestPipeline::Init() {
  TESSERA_ASSIGN_OR_RETURN(std::optional<std::string> wm, store_->GetMeta(WatermarkKey()));
  if (wm.has_value()) {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(wm->data(), wm->data() + wm->size(), v);
    if (ec != std::errc() || p != wm->data() + wm->size()) {
      return DataLoss("corrupt watermark entry for source '{}'", source_.name);
    }
    max_event_time_ms_ = v;
    committed_max_event_time_ms_ = v;
  }
  published_ = store_->GetSnapshot();
  if (options_.metrics != nullptr) RegisterMetrics();
  // A view with no stored tile at all needs no read-merge-write on its first flush. The first
  // flush that writes tiles of a view also writes this marker, in the same atomic batch.
  for (const ViewRuntime* v : views_) {
    TESSERA_ASSIGN_OR_RETURN(std::optional<std::string> marker,
                             store_->GetMeta(HasTilesKey(v->id)));
    store_may_hold_view_.push_back(marker.has_value());
  }
  std::vector<uint32_t> view_ids;
  for (const ViewRuntime* v : views_) view_ids.push_back(v->id);
  return pending_rollups_.Load(view_ids);
}

void IngestPipeline::Prepare(Worker* w) {
  const size_t n = w->batch.num_rows;
  std::span<const Column> cols(w->batch.columns);
  for (size_t vi = 0; vi < views_.size(); ++vi) {
    ViewPrep& p = w->views[vi];
    p.status.assign(n, 1);
    if (p.where) {
      const Column& c = p.where->Evaluate(cols, n, &w->arena);
      for (size_t r = 0; r < n; ++r) {
        if (c.valid[r] == 0 || c.i64[r] == 0) p.status[r] = 0;
      }
    }
    p.key.resize(n);
    p.key_hash.resize(n);
    p.shard.resize(n);
    std::vector<const Column*> key_cols;
    key_cols.reserve(p.keys.size());
    for (auto& k : p.keys) key_cols.push_back(&k->Evaluate(cols, n, &w->arena));
    const bool single_string = key_cols.size() == 1 && key_cols[0]->type == DataType::kString;
    for (size_t r = 0; r < n; ++r) {
      if (p.status[r] != 1) continue;
      bool null_key = false;
      for (const Column* kc : key_cols) null_key |= kc->IsNull(r);
      if (null_key) {
        p.status[r] = 2;
        continue;
      }
      std::string_view key;
      if (single_string) {
        key = key_cols[0]->str[r];
      } else if (key_cols.size() == 1) {
        p.key_buffer.clear();
        AppendKeyPart(*key_cols[0], r, &p.key_buffer);
        key = w->arena.Copy(p.key_buffer);
      } else {
        p.key_buffer.clear();
        for (const Column* kc : key_cols) {
          p.part_buffer.clear();
          AppendKeyPart(*kc, r, &p.part_buffer);
          AppendStoredKeyPart(p.part_buffer, &p.key_buffer);
        }
        key = w->arena.Copy(p.key_buffer);
      }
      if (key.size() > kMaxEntityKeyBytes) {
        p.status[r] = 3;
        continue;
      }
      p.key[r] = key;
      p.key_hash[r] = Hash64(key);
      p.shard[r] = static_cast<uint32_t>(p.key_hash[r] % static_cast<uint64_t>(num_shards_));
    }
    for (size_t a = 0; a < p.args.size(); ++a) {
      p.arg_columns[a] = p.args[a] ? &p.args[a]->Evaluate(cols, n, &w->arena) : nullptr;
    }
  }
}

void IngestPipeline::MarkLate(const std::vector<Worker*>& order) {
  const int64_t lateness = source_.lateness_ms;
  for (Worker* w : order) {
    const size_t n = w->batch.num_rows;
    w->late.assign(n, 0);
    const int64_t* ts = w->batch.event_time_ms.data();
    int64_t max_ts = max_event_time_ms_;
    int64_t late = 0;
    for (size_t r = 0; r < n; ++r) {
      // watermark = max - lateness, computed without overflow for the initial minimum.
      if (max_ts != std::numeric_limits<int64_t>::min() && ts[r] < max_ts - lateness) {
        w->late[r] = 1;
        ++late;
      } else if (ts[r] > max_ts) {
        max_ts = ts[r];
      }
    }
    max_event_time_ms_ = max_ts;
    source_counters_.late += late;
    source_counters_.lines += w->decode.lines;
    source_counters_.rows += w->decode.rows;
    source_counters_.rejected += w->decode.rejected;
    source_counters_.future += w->decode.future;
    source_counters_.field_errors += w->decode.field_errors;
    for (size_t vi = 0; vi < views_.size(); ++vi) {
      const ViewPrep& p = w->views[vi];
      ViewCounters& c = view_counters_[vi];
      for (size_t r = 0; r < n; ++r) {
        if (w->late[r]) continue;
        ++c.rows_in;
        c.filtered += p.status[r] == 0;
        c.null_key += p.status[r] == 2;
        c.key_too_long += p.status[r] == 3;
        c.aggregated += p.status[r] == 1;
      }
    }
  }
}

void IngestPipeline::Aggregate(int worker_index, const std::vector<Worker*>& order) {
  Worker* me = workers_[worker_index].get();
  const int my_shards = (num_shards_ - worker_index + threads_ - 1) / threads_;
  for (size_t vi = 0; vi < views_.size(); ++vi) {
    const ViewRuntime& view = *views_[vi];
    const tile::TileLayout& layout = *view.layout;
    const int64_t tile_ms = view.def->tile_ms;
    for (Worker* w : order) {
      const ViewPrep& p = w->views[vi];
      const size_t n = w->batch.num_rows;
      const int64_t* ts = w->batch.event_time_ms.data();
      // My rows of this batch grouped by shard (stable: arrival order within a shard), so each
      // shard is locked once per batch.
      me->shard_offsets.assign(my_shards + 1, 0);
      for (size_t r = 0; r < n; ++r) {
        if (p.status[r] != 1 || w->late[r]) continue;
        const uint32_t shard = p.shard[r];
        if (static_cast<int>(shard % static_cast<uint32_t>(threads_)) != worker_index) continue;
        ++me->shard_offsets[shard / threads_ + 1];
      }
      for (int k = 0; k < my_shards; ++k) me->shard_offsets[k + 1] += me->shard_offsets[k];
      me->rows.resize(me->shard_offsets[my_shards]);
      me->cursor.assign(me->shard_offsets.begin(), me->shard_offsets.end() - 1);
      for (size_t r = 0; r < n; ++r) {
        if (p.status[r] != 1 || w->late[r]) continue;
        const uint32_t shard = p.shard[r];
        if (static_cast<int>(shard % static_cast<uint32_t>(threads_)) != worker_index) continue;
        me->rows[me->cursor[shard / threads_]++] = static_cast<uint32_t>(r);
      }
      for (int k = 0; k < my_shards; ++k) {
        const uint32_t begin = me->shard_offsets[k];
        const uint32_t count = me->shard_offsets[k + 1] - begin;
        if (count == 0) continue;
        const int shard = worker_index + k * threads_;
        const uint32_t* rows = me->rows.data() + begin;
        std::unique_lock lock(*shard_mu_[vi][shard]);
        TileShard& tiles = *shards_[vi][shard];
        me->blocks.resize(count);
        for (uint32_t i = 0; i < count; ++i) {
          const uint32_t r = rows[i];
          me->blocks[i] = tiles.FindOrCreate(p.key[r], p.key_hash[r], AlignDown(ts[r], tile_ms));
        }
        me->states.resize(count);
        for (size_t a = 0; a < layout.num_slots(); ++a) {
          const size_t off = layout.offset(a);
          for (uint32_t i = 0; i < count; ++i) me->states[i] = me->blocks[i] + off;
          layout.agg(a).AddBatch(me->states.data(), p.arg_columns[a], ts, rows, count);
        }
      }
    }
  }
}

std::shared_ptr<const store::StoreSnapshot> IngestPipeline::MergeOpenTiles(
    const ViewRuntime& view, std::string_view key,
    std::span<const std::pair<int64_t, int64_t>> ranges, std::span<std::byte* const> blocks,
    int64_t* tiles_merged) {
  size_t vi = 0;
  while (vi < views_.size() && views_[vi] != &view) ++vi;
  if (vi == views_.size()) return nullptr;
  const int64_t tile_ms = view.def->tile_ms;
  const tile::TileLayout& layout = *view.layout;
  const uint64_t key_hash = Hash64(key);
  const int shard = static_cast<int>(key_hash % static_cast<uint64_t>(num_shards_));
  std::shared_lock publish(publish_mu_);
  std::shared_lock lock(*shard_mu_[vi][shard]);
  const TileShard& tiles = *shards_[vi][shard];
  if (tiles.size() > 0) {
    for (size_t i = 0; i < ranges.size(); ++i) {
      // Open tiles span little time (since the last flush, plus late rows), so probing each
      // tile start they cover is cheap.
      const int64_t from = std::max(ranges[i].first, tiles.min_start_ms());
      const int64_t to = std::min(ranges[i].second, tiles.max_start_ms() + tile_ms);
      for (int64_t start = AlignDown(from, tile_ms); start < to; start += tile_ms) {
        if (start < ranges[i].first) continue;
        const std::byte* block = tiles.Find(key, key_hash, start);
        if (block == nullptr) continue;
        layout.Merge(blocks[i], block);
        ++*tiles_merged;
      }
    }
  }
  return published_;
}

void IngestPipeline::RegisterMetrics() {
  MetricsRegistry* r = options_.metrics;
  auto m = std::make_unique<Metrics>();
  const Labels src = {{"source", source_.name}};
  m->lines = r->GetCounter("tessera_source_lines_total", "Non-blank input lines read", src);
  m->rows = r->GetCounter("tessera_source_rows_total", "Rows decoded", src);
  m->rejected = r->GetCounter("tessera_source_rejected_total",
                              "Lines rejected: not a JSON object or no valid event time", src);
  m->field_errors = r->GetCounter("tessera_source_field_errors_total",
                                  "Fields whose JSON type did not fit (became NULL)", src);
  m->late = r->GetCounter("tessera_source_late_total", "Rows older than the watermark", src);
  m->future = r->GetCounter("tessera_source_future_total",
                            "Rows rejected for an event time too far ahead of the clock "
                            "(max-future); also in rejected",
                            src);
  for (const ViewRuntime* v : views_) {
    const Labels l = {{"source", source_.name}, {"view", v->def->name}};
    m->view_rows_in.push_back(
        r->GetCounter("tessera_view_rows_in_total", "On-time rows offered to the view", l));
    m->view_filtered.push_back(
        r->GetCounter("tessera_view_filtered_total", "Rows dropped by WHERE", l));
    m->view_null_key.push_back(
        r->GetCounter("tessera_view_null_key_total", "Rows skipped for a NULL key", l));
    m->view_key_too_long.push_back(r->GetCounter(
        "tessera_view_key_too_long_total", "Rows skipped for a key longer than 4096 bytes", l));
    m->view_aggregated.push_back(
        r->GetCounter("tessera_view_rows_aggregated_total", "Rows added to tiles", l));
  }
  m->tiles_written = r->GetCounter("tessera_flush_tiles_written_total",
                                   "Tiles written by flushes (base and rollups)", src);
  m->flush_seconds =
      r->GetHistogram("tessera_flush_seconds", "Flush latency (build + atomic write)", src);
  m->store_write_seconds =
      r->GetHistogram("tessera_store_write_seconds", "Atomic store write + sync of one flush", src);
  m->open_tiles = r->GetGauge("tessera_open_tiles", "Unflushed tiles in memory", src);
  m->open_tile_bytes =
      r->GetGauge("tessera_open_tile_bytes", "Approximate bytes of unflushed tiles", src);
  m->rollups_owed = r->GetGauge("tessera_rollups_owed",
                                "Hour/day rollups owed: their slot had rows while open", src);
  m->rollups_owed_closed = r->GetGauge(
      "tessera_rollups_owed_closed",
      "Owed rollups whose slot the watermark has closed: built by the next flushes", src);
  for (int t = 0; t < threads_; ++t) {
    m->busy_seconds.push_back(
        r->GetGauge("tessera_pipeline_busy_seconds",
                    "Seconds pipeline threads spent decoding, aggregating and flushing",
                    {{"source", source_.name}, {"thread", std::to_string(t)}}));
  }
  const Clock* clock = options_.clock;
  r->AddCallbackGauge(
      "tessera_watermark_lag_seconds", "Now minus the source watermark (max event time - lateness)",
      src, [this, clock] {
        const int64_t max = max_event_time_seen_.load();
        if (max == std::numeric_limits<int64_t>::min()) return 0.0;
        return static_cast<double>(clock->NowMillis() - max + source_.lateness_ms) / 1e3;
      });
  r->AddCallbackGauge("tessera_freshness_seconds",
                      "Now minus the newest event time servable (in tiles, flushed or open)", src,
                      [this, clock] {
                        const int64_t max = max_event_time_seen_.load();
                        if (max == std::numeric_limits<int64_t>::min()) return 0.0;
                        return static_cast<double>(clock->NowMillis() - max) / 1e3;
                      });
  metrics_ = std::move(m);
  published_views_.resize(views_.size());
}

void IngestPipeline::PublishMetrics() {
  Metrics& m = *metrics_;
  const SourceCounters& c = source_counters_;
  m.lines->Inc(c.lines - published_source_.lines);
  m.rows->Inc(c.rows - published_source_.rows);
  m.rejected->Inc(c.rejected - published_source_.rejected);
  m.field_errors->Inc(c.field_errors - published_source_.field_errors);
  m.late->Inc(c.late - published_source_.late);
  m.future->Inc(c.future - published_source_.future);
  published_source_ = c;
  for (size_t vi = 0; vi < views_.size(); ++vi) {
    const ViewCounters& v = view_counters_[vi];
    ViewCounters& p = published_views_[vi];
    m.view_rows_in[vi]->Inc(v.rows_in - p.rows_in);
    m.view_filtered[vi]->Inc(v.filtered - p.filtered);
    m.view_null_key[vi]->Inc(v.null_key - p.null_key);
    m.view_key_too_long[vi]->Inc(v.key_too_long - p.key_too_long);
    m.view_aggregated[vi]->Inc(v.aggregated - p.aggregated);
    p = v;
  }
  const int64_t tiles = flush_stats_.base_tiles + flush_stats_.rollup_tiles;
  m.tiles_written->Inc(tiles - published_tiles_);
  published_tiles_ = tiles;
  size_t open = 0;
  for (const auto& view_shards : shards_) {
    for (const auto& s : view_shards) open += s->size();
  }
  m.open_tiles->Set(static_cast<double>(open));
  m.open_tile_bytes->Set(static_cast<double>(OpenTileBytes()));
  m.rollups_owed->Set(static_cast<double>(pending_rollups_.size()));
  m.rollups_owed_closed->Set(
      static_cast<double>(pending_rollups_.CountClosed(ClosedBy(committed_max_event_time_ms_))));
  max_event_time_seen_.store(max_event_time_ms_);
}

bool IngestPipeline::HasOpenTiles() const {
  for (const auto& view_shards : shards_) {
    for (const auto& s : view_shards) {
      if (s->size() > 0) return true;
    }
  }
  return false;
}

size_t IngestPipeline::OpenTileBytes() const {
  size_t total = 0;
  for (const auto& view_shards : shards_) {
    for (const auto& s : view_shards) total += s->MemoryBytes();
  }
  return total;
}

int64_t IngestPipeline::FutureLimit() const {
  if (options_.max_future_ms == sql::kNoFutureBound) return kMaxTimestampMs;
  return std::min(kMaxTimestampMs, options_.clock->NowMillis() + options_.max_future_ms);
}

int64_t IngestPipeline::ClosedBy(int64_t max_event_time_ms) const {
  if (max_event_time_ms == std::numeric_limits<int64_t>::min()) return max_event_time_ms;
  return max_event_time_ms - source_.lateness_ms;
}

absl::Status IngestPipeline::TakeOwedRollups(size_t limit) {
  // Slots closed by the last commit's watermark hold no open tiles (their rows would be late),
  // so their stored children are final.
  std::vector<OwedRollup> owed;
  TESSERA_RETURN_IF_ERROR(pending_rollups_.TakeClosed(ClosedBy(committed_max_event_time_ms_), limit,
                                                      &owed, &flush_meta_));
  for (auto& w : owed_work_) w.clear();
  for (size_t i = 0; i < owed.size(); ++i) {
    owed_work_[i % owed_work_.size()].push_back(std::move(owed[i]));
  }
  return absl::OkStatus();
}

absl::Status IngestPipeline::FlushShards(int worker_index) {
  FlushOutput& out = flush_out_[worker_index];
  out.clear();
  size_t tiles = 0;
  for (size_t vi = 0; vi < views_.size(); ++vi) {
    for (int s = worker_index; s < num_shards_; s += threads_) tiles += shards_[vi][s]->size();
  }
  out.tiles.reserve(tiles + owed_work_[worker_index].size());
  const int64_t closed_by = ClosedBy(max_event_time_ms_);
  for (size_t vi = 0; vi < views_.size(); ++vi) {
    for (int s = worker_index; s < num_shards_; s += threads_) {
      TESSERA_RETURN_IF_ERROR(FlushShard(*views_[vi], *shards_[vi][s], store_,
                                         store_may_hold_view_[vi], closed_by, &out,
                                         &flush_stats_per_worker_[worker_index]));
    }
  }
  for (const OwedRollup& owed : owed_work_[worker_index]) {
    const ViewRuntime* view = nullptr;
    for (const ViewRuntime* v : views_) {
      if (v->id == owed.view_id) view = v;
    }
    if (view == nullptr) continue;  // markers are loaded for this pipeline's views only
    TESSERA_ASSIGN_OR_RETURN(bool written, BuildRollupFromStore(*view, store_, owed, &out.tiles));
    if (written) ++flush_stats_per_worker_[worker_index].rollup_tiles;
  }
  owed_work_[worker_index].clear();
  return absl::OkStatus();
}

absl::Status IngestPipeline::CommitFlush(ChunkSource* input) {
  store::WriteBatch batch = std::move(flush_meta_);
  flush_meta_ = store::WriteBatch();
  size_t total = 0;
  for (const auto& out : flush_out_) total += out.tiles.size();
  batch.tiles.reserve(total);
  for (FlushOutput& out : flush_out_) {
    for (auto& t : out.tiles) batch.tiles.push_back(std::move(t));
    for (const RollupRef& r : out.owed) pending_rollups_.Owe(r, &batch);
    for (const RollupRef& r : out.settled) pending_rollups_.Settle(r, &batch);
    out.clear();  // before the shards their keys point into are retired
  }
  for (size_t vi = 0; vi < views_.size(); ++vi) {
    if (!store_may_hold_view_[vi] && total > 0) {
      batch.meta.emplace_back(HasTilesKey(views_[vi]->id), "1");
    }
  }
  if (max_event_time_ms_ != std::numeric_limits<int64_t>::min()) {
    batch.meta.emplace_back(WatermarkKey(), std::to_string(max_event_time_ms_));
  }
  input->AddCheckpoint(&batch);
  const int64_t write_start = options_.clock->MonotonicNanos();
  TESSERA_RETURN_IF_ERROR(store_->Write(batch));
  TESSERA_RETURN_IF_ERROR(store_->Sync());
  if (metrics_) {
    metrics_->store_write_seconds->Observe(
        static_cast<double>(options_.clock->MonotonicNanos() - write_start) / 1e9);
  }
  input->Committed();
  committed_max_event_time_ms_ = max_event_time_ms_;
  {
    // The store now holds the open tiles: publish it and swap in empty shards together.
    std::shared_ptr<const store::StoreSnapshot> snapshot = store_->GetSnapshot();
    std::unique_lock lock(publish_mu_);
    published_ = std::move(snapshot);
    for (size_t vi = 0; vi < views_.size(); ++vi) {
      for (int s = 0; s < num_shards_; ++s) {
        retired_[vi][s] = std::move(shards_[vi][s]);
        shards_[vi][s] = std::make_unique<TileShard>(views_[vi]->layout.get());
      }
    }
  }
  for (size_t vi = 0; vi < views_.size(); ++vi) {
    if (total > 0) store_may_hold_view_[vi] = true;
  }
  for (auto& fs : flush_stats_per_worker_) {
    flush_stats_ += fs;
    fs = FlushStats();
  }
  return absl::OkStatus();
}

absl::Status IngestPipeline::Run(ChunkSource* input) {
  std::mutex input_mu;
  uint64_t next_seq = 0;
  bool input_done = false;
  absl::Status input_error;
  absl::Status flush_error;
  bool flush_now = false;
  bool finished = false;
  bool stopping = false;  // Stop() seen: take no more input, flush, return
  int64_t last_flush_ns = options_.clock->MonotonicNanos();
  uint64_t flushed_seq = 0;  // next_seq at the last flush: input since then needs a checkpoint
  std::vector<Worker*> order;
  std::barrier sync(threads_);

  auto reject = [&](Worker* w) {
    return [this, w](const source::Rejection& r) {
      if (!reject_sink_) return;
      std::lock_guard<std::mutex> lock(reject_mu_);
      reject_sink_(w->input_name, r.line_number, r.reason, r.line);
    };
  };

  auto worker_loop = [&](int index) {
    Worker* w = workers_[index].get();
    while (true) {
      // Phase 1: take the next chunk and decode/evaluate it.
      w->has_batch = false;
      w->arena.Reset();
      w->batch.Clear();
      w->decode = source::DecodeStats();
      {
        std::lock_guard<std::mutex> lock(input_mu);
        if (!input_done && !stopping) {
          absl::StatusOr<ChunkSource::Next> next =
              input->NextChunk(&w->chunk, &w->first_line, &w->input_name);
          if (!next.ok()) {
            input_error = next.status();
            input_done = true;
          } else if (*next == ChunkSource::Next::kEnd) {
            input_done = true;
          } else if (*next == ChunkSource::Next::kChunk) {
            w->has_batch = true;
            w->seq = next_seq++;
          }
        }
      }
      const int64_t busy_start = options_.clock->MonotonicNanos();
      if (w->has_batch) {
        w->decoder->set_max_event_time_ms(FutureLimit());
        w->decoder->Decode(w->chunk, w->first_line, &w->batch, &w->decode, reject(w));
        Prepare(w);
      }
      int64_t busy_ns = options_.clock->MonotonicNanos() - busy_start;
      sync.arrive_and_wait();
      // Phase 2 (one thread): late rows in stream order; decide whether to flush.
      if (index == 0) {
        order.clear();
        for (auto& other : workers_) {
          if (other->has_batch) order.push_back(other.get());
        }
        std::sort(order.begin(), order.end(),
                  [](const Worker* a, const Worker* b) { return a->seq < b->seq; });
        MarkLate(order);
        finished = order.empty() && (input_done || stopping);
      }
      sync.arrive_and_wait();
      // Phase 3: every worker adds the rows of its own shards.
      const int64_t aggregate_start = options_.clock->MonotonicNanos();
      Aggregate(index, order);
      busy_ns += options_.clock->MonotonicNanos() - aggregate_start;
      if (metrics_ && busy_ns > 0) {
        metrics_->busy_seconds[index]->Add(static_cast<double>(busy_ns) / 1e9);
      }
      sync.arrive_and_wait();
      if (index == 0) {
        // Every chunk taken so far is in the open tiles now (or was dropped as late).
        input->Aggregated();
        const int64_t now = options_.clock->MonotonicNanos();
        const bool interval_due =
            options_.flush_interval_ms > 0 &&
            now - last_flush_ns >= options_.flush_interval_ms * 1'000'000 &&
            (HasOpenTiles() || next_seq != flushed_seq ||
             pending_rollups_.HasClosed(ClosedBy(committed_max_event_time_ms_)));
        flush_now = finished || !input_error.ok() || interval_due ||
                    OpenTileBytes() > options_.memory_budget_bytes;
        if (flush_now) flush_error = TakeOwedRollups(options_.rollups_per_flush);
        if (progress_) progress_(source_counters_, flush_now);
        if (metrics_) PublishMetrics();
        if (!flush_now && order.empty() && !input_done) {
          // Caught up with a live source: wait for data, but not past the next flush.
          int64_t wait_ms = 50;
          if (options_.flush_interval_ms > 0) {
            wait_ms = std::clamp<int64_t>(
                options_.flush_interval_ms - (now - last_flush_ns) / 1'000'000, 1, 50);
          }
          input->WaitForData(std::chrono::milliseconds(wait_ms));
        }
        stopping = stopping || stop_.load();
      }
      sync.arrive_and_wait();
      while (flush_now) {
        int64_t build_start = options_.clock->MonotonicNanos();
        absl::Status s = FlushShards(index);
        if (!s.ok()) {
          std::lock_guard<std::mutex> lock(input_mu);
          if (flush_error.ok()) flush_error = s;
        }
        sync.arrive_and_wait();
        if (index == 0 && flush_error.ok()) {
          int64_t commit_start = options_.clock->MonotonicNanos();
          flush_stats_.build_seconds += static_cast<double>(commit_start - build_start) / 1e9;
          flush_error = CommitFlush(input);
          last_flush_ns = options_.clock->MonotonicNanos();
          flushed_seq = next_seq;
          flush_stats_.commit_seconds +=
              static_cast<double>(options_.clock->MonotonicNanos() - commit_start) / 1e9;
          ++flush_stats_.flushes;
          if (metrics_) {
            metrics_->flush_seconds->Observe(
                static_cast<double>(options_.clock->MonotonicNanos() - build_start) / 1e9);
            PublishMetrics();
          }
        }
        sync.arrive_and_wait();
        // The tiles are in the store (or the run failed): drop this worker's retired shards, in
        // parallel, since freeing the sketch memory of many tiles is not free.
        for (auto& view_retired : retired_) {
          for (int s = index; s < num_shards_; s += threads_) view_retired[s].reset();
        }
        if (!flush_error.ok() || !input_error.ok()) return;
        if (!finished) break;
        // The run is over: build the owed rollups the final watermark closed, flush by flush.
        if (index == 0) {
          flush_now = pending_rollups_.HasClosed(ClosedBy(committed_max_event_time_ms_));
          if (flush_now) flush_error = TakeOwedRollups(options_.rollups_per_flush);
        }
        sync.arrive_and_wait();
        if (!flush_now) return;
      }
    }
  };

  std::vector<std::thread> threads;
  for (int i = 1; i < threads_; ++i) threads.emplace_back(worker_loop, i);
  worker_loop(0);
  for (auto& t : threads) t.join();
  TESSERA_RETURN_IF_ERROR(flush_error);
  return input_error;
}

}  // namespace tessera::engine
