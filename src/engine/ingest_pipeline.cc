#include "engine/ingest_pipeline.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <limits>
#include <map>
#include <optional>
#include <thread>

#include "common/errors.h"
#include "common/hash.h"
#include "common/memory_release.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/time_util.h"
#include "engine/entity_key.h"
#include "engine/retention.h"
#include "engine/row_prep.h"
#include "sql/expr.h"
#include "store/key_codec.h"
#include "store/meta_keys.h"

namespace tessera::engine {

// Per-view results of evaluating one batch (phase 1), read by every worker in phase 3.
struct IngestPipeline::ViewPrep {
  explicit ViewPrep(const sql::ViewDef& view) : rows(view) {}
  ViewRowPrep rows;
  // The kAggregate rows grouped by open-tile shard, in arrival order within a shard: shard s's
  // are by_shard[shard_begin[s], shard_begin[s + 1]).
  std::vector<uint32_t> shard_begin;
  std::vector<uint32_t> by_shard;
};

struct IngestPipeline::Worker {
  source::Chunk chunk;
  RowBatch batch;  // the chunk decoded here
  // This round's rows: `batch`, or the rows the source decoded already (origin.decoded).
  const RowBatch* round_batch = &batch;
  Arena arena;  // strings made by expressions and composite keys, reset per round
  bool has_batch = false;
  uint64_t seq = 0;
  uint32_t slot = 0;  // the chunk's writer slot (stores with slots only)
  source::DecodeStats decode;
  std::vector<uint8_t> late;
  std::vector<ViewPrep> views;
  // Scratch for phases 1 and 3.
  std::vector<uint32_t> rows;
  std::vector<uint32_t> cursor;
  std::vector<std::byte*> blocks;
  std::vector<std::byte*> states;
  std::unique_ptr<source::NdjsonDecoder> decoder;
  source::ChunkOrigin origin;
};

enum class AfterFlush { kIngest, kOwedRollups, kMergeSpillRuns, kStop };

// The state the workers of one Run() share. Written by the coordinating thread (worker 0)
// between barriers, or under input_mu.
struct IngestPipeline::RunState {
  RunState(Source* in, int threads, int64_t now_ns)
      : input(in), sync(threads), last_flush_ns(now_ns) {}

  Source* input;
  std::barrier<> sync;
  std::mutex input_mu;  // guards input, next_seq, and flush_error while workers build
  uint64_t next_seq = 0;
  bool input_done = false;
  absl::Status input_error;
  absl::Status flush_error;
  bool flush_now = false;
  bool over_budget = false;  // the open tiles started this flush by their memory
  bool finished = false;     // no batch this round and no more input: the final flush
  bool stopping = false;     // Stop() seen: take no more input, flush, return
  int64_t last_flush_ns;
  uint64_t flushed_seq = 0;    // next_seq at the last flush: input since then needs a checkpoint
  std::vector<Worker*> order;  // this round's batches in stream order
  // Work claimed by the workers of a phase, largest first: (view, shard) pairs to aggregate
  // this round, and to flush. A worker claims the next with the counter.
  std::vector<std::pair<size_t, int>> aggregate_tasks;
  std::atomic<size_t> next_aggregate_task{0};
  std::vector<std::pair<size_t, int>> flush_tasks;
  std::atomic<size_t> next_flush_task{0};
  // What the workers do after a flush's commit (the coordinator decides).
  AfterFlush after_flush = AfterFlush::kIngest;
  bool ingest_after_merge = false;  // kMergeSpillRuns: input is left to take afterwards
  // This spill merge round's intervals: (view index, interval), adjacent, of one view; and
  // whether there is a round to build.
  std::vector<std::pair<size_t, uint32_t>> merge_tasks;
  bool merge_round = false;
  bool merge_done = false;  // the merge ended with every interval merged and the runs deleted
  std::atomic<size_t> next_merge_task{0};
};

namespace {
std::string HasTilesKey(uint32_t view_id) { return store::meta::ViewHasTilesKey(view_id); }

std::vector<std::string> ViewNames(const std::vector<const ViewRuntime*>& views) {
  std::vector<std::string> names;
  names.reserve(views.size());
  for (const ViewRuntime* v : views) names.push_back(v->def->name);
  return names;
}
}  // namespace

IngestPipeline::IngestPipeline(const sql::SourceDef& source, std::vector<const ViewRuntime*> views,
                               store::TileStore* store, PipelineOptions options)
    : source_(source),
      views_(std::move(views)),
      store_(store),
      slots_(store->slots()),
      max_key_bytes_(std::min(kMaxEntityKeyBytes, store->max_entity_key_bytes())),
      options_(options),
      threads_(WorkerThreads(options_.threads)),
      watermark_(source_.name, source_.lateness_ms),
      open_tiles_(views_, threads_, options_.shards_per_thread, options_.memory_budget_bytes,
                  options_.clock),
      metrics_(options_.metrics, source_.name, source_.lateness_ms, ViewNames(views_), threads_,
               options_.clock),
      pending_rollups_(store),
      view_counters_(views_.size()) {
  for (int t = 0; t < threads_; ++t) {
    auto w = std::make_unique<Worker>();
    w->decoder = std::make_unique<source::NdjsonDecoder>(source_.columns, source_.time_column);
    for (const ViewRuntime* v : views_) w->views.emplace_back(*v->def);
    workers_.push_back(std::move(w));
  }
  flush_out_.resize(threads_);
  flushed_until_.assign(threads_, std::vector<int64_t>(views_.size(), kStoreHoldsNone));
  owed_work_.resize(threads_);
  flush_stats_per_worker_.resize(threads_);
}

IngestPipeline::~IngestPipeline() = default;

absl::Status IngestPipeline::Init() {
  TESSERA_RETURN_IF_ERROR(watermark_.Load(store_));
  watermark_ms_.store(watermark_.closed_by(), std::memory_order_relaxed);
  TESSERA_ASSIGN_OR_RETURN(base_retention_ms_, LoadBaseRetention(store_));
  if (slots_ != nullptr) {
    // Reads use committed slots only; every flush reads the slot's own cells.
    open_tiles_.Publish(nullptr);
    stored_until_.assign(views_.size(), kStoreMayHoldAny);
    return absl::OkStatus();
  }
  open_tiles_.Publish(ReadersSnapshot());
  // A view with no stored tile at all needs no read-merge-write on its first flush, and later
  // ones only for tiles at or before the newest this pipeline wrote (stored_until_). The first
  // flush that writes tiles of a view also writes this marker, in the same atomic batch.
  for (const ViewRuntime* v : views_) {
    TESSERA_ASSIGN_OR_RETURN(std::optional<std::string> marker,
                             store_->GetMeta(HasTilesKey(v->id)));
    stored_until_.push_back(marker.has_value() ? kStoreMayHoldAny : kStoreHoldsNone);
  }
  std::vector<uint32_t> view_ids;
  for (const ViewRuntime* v : views_) view_ids.push_back(v->id);
  TESSERA_RETURN_IF_ERROR(pending_rollups_.Load(view_ids));
  return LoadSpill();
}

absl::Status IngestPipeline::LoadSpill() {
  TESSERA_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                           store_->GetMeta(store::meta::SpillStateKey(source_.name)));
  if (!bytes.has_value()) {
    spill_allowed_ = options_.spill_runs && !options_.open_tiles_readable &&
                     base_retention_ms_ == 0 && store_->supports_view_ranges() &&
                     pending_rollups_.size() == 0;
    for (size_t vi = 0; vi < views_.size(); ++vi) {
      spill_allowed_ = spill_allowed_ && stored_until_[vi] == kStoreHoldsNone &&
                       views_[vi]->id <= kMaxSpillViewId;
    }
    return absl::OkStatus();
  }
  absl::StatusOr<SpillState> state = SpillState::Decode(*bytes);
  if (!state.ok()) {
    return Annotate(state.status(), fmt::format("source '{}': spill runs", source_.name));
  }
  if (!store_->supports_view_ranges()) {
    return FailedPrecondition(
        "source '{}': the store holds spill runs of a backfill that was cut short, but cannot "
        "read them",
        source_.name);
  }
  spill_ = std::move(*state);
  if (spill_->merged()) return FinishSpill();  // only the runs were left to delete
  // The catalog only grows, so the views that spilled are still the source's; a view added
  // since then starts empty.
  spill_views_.clear();
  for (const SpillState::View& v : spill_->views) {
    size_t vi = 0;
    while (vi < views_.size() && views_[vi]->id != v.view_id) ++vi;
    if (vi == views_.size()) {
      return FailedPrecondition(
          "source '{}': the store holds spill runs of view id {}, which is not a view of the "
          "source",
          source_.name, v.view_id);
    }
    spill_views_.push_back(vi);
  }
  // Only a backfill with the same views goes on spilling; anything else (new views, a live
  // pipeline whose readers would not see spilled rows) merges the runs before taking input.
  if (!options_.spill_runs || options_.open_tiles_readable ||
      spill_->views.size() != views_.size() || spill_->flushes + 1 >= kMaxSpillFlushes) {
    BeginMerge();
  }
  return absl::OkStatus();
}

void IngestPipeline::BeginMerge() {
  if (spill_->merging) return;
  // Intervals small enough that a round (one per worker) holds about half the budget.
  const uint64_t per_interval =
      options_.spill_interval_bytes > 0
          ? options_.spill_interval_bytes
          : std::max<uint64_t>(uint64_t{1} << 20, options_.memory_budget_bytes /
                                                      (2 * static_cast<uint64_t>(threads_)));
  const uint64_t intervals = std::clamp<uint64_t>(
      spill_->spilled_bytes * 13 / 10 / per_interval + 1, threads_, kMaxSamples + 1);
  for (SpillState::View& v : spill_->views) {
    v.keys = PickPivots(v.keys, intervals);
    v.merged_intervals = 0;
  }
  spill_->merging = true;
}

void IngestPipeline::Prepare(Worker* w) {
  const size_t n = w->round_batch->num_rows;
  std::string slot_tag;
  if (slots_ != nullptr) AppendSlotTag(w->slot, &slot_tag);
  for (ViewPrep& p : w->views) {
    p.rows.Prepare(w->round_batch->columns, n, &w->arena, slot_tag, max_key_bytes_);
    const std::vector<uint8_t>& status = p.rows.status();
    const std::vector<uint64_t>& hash = p.rows.key_hash();
    const int num_shards = open_tiles_.num_shards();
    // A counting sort of the rows by shard: w->rows holds each row's shard meanwhile.
    p.shard_begin.assign(num_shards + 1, 0);
    w->rows.resize(n);
    for (size_t r = 0; r < n; ++r) {
      if (status[r] != ViewRowPrep::kAggregate) continue;
      w->rows[r] = static_cast<uint32_t>(open_tiles_.ShardOf(hash[r]));
      ++p.shard_begin[w->rows[r] + 1];
    }
    for (int s = 0; s < num_shards; ++s) p.shard_begin[s + 1] += p.shard_begin[s];
    p.by_shard.resize(p.shard_begin[num_shards]);
    w->cursor.assign(p.shard_begin.begin(), p.shard_begin.end() - 1);
    for (size_t r = 0; r < n; ++r) {
      if (status[r] == ViewRowPrep::kAggregate) p.by_shard[w->cursor[w->rows[r]]++] = r;
    }
  }
}

void IngestPipeline::MarkLateInOrder(RunState* run) {
  std::vector<Worker*>& order = run->order;
  order.clear();
  for (auto& w : workers_) {
    if (w->has_batch) order.push_back(w.get());
  }
  std::sort(order.begin(), order.end(),
            [](const Worker* a, const Worker* b) { return a->seq < b->seq; });
  // A lane claimed again, or that just became active, may have been advanced meanwhile by
  // another process sharing the store (a partition that moved here and maybe back): its rows
  // are judged from there on.
  run->input->TakeClaimedLanes(&claimed_lanes_);
  const bool lanes = run->input->ActiveLanes(&active_lanes_);
  for (const std::string& lane : active_lanes_) {
    if (std::find(last_active_lanes_.begin(), last_active_lanes_.end(), lane) ==
        last_active_lanes_.end()) {
      claimed_lanes_.push_back(lane);
    }
  }
  for (const std::string& lane : claimed_lanes_) {
    absl::Status s = watermark_.ReloadLane(store_, lane);
    if (!s.ok() && run->input_error.ok()) {
      run->input_error = s;
      run->input_done = true;
    }
  }
  if (lanes) {
    last_active_lanes_ = active_lanes_;
    watermark_.SetActiveLanes(active_lanes_);
  }
  for (Worker* w : order) {
    const size_t n = w->round_batch->num_rows;
    source_counters_.late += watermark_.MarkLate(
        w->origin.lane, std::span<const int64_t>(w->round_batch->event_time_ms.data(), n),
        &w->late);
    source_counters_.lines += w->decode.lines;
    source_counters_.rows += w->decode.rows;
    source_counters_.rejected += w->decode.rejected;
    source_counters_.future += w->decode.future;
    source_counters_.field_errors += w->decode.field_errors;
    for (size_t vi = 0; vi < views_.size(); ++vi) {
      const std::vector<uint8_t>& status = w->views[vi].rows.status();
      ViewCounters& c = view_counters_[vi];
      for (size_t r = 0; r < n; ++r) {
        if (w->late[r]) continue;
        ++c.rows_in;
        c.filtered += status[r] == ViewRowPrep::kFiltered;
        c.null_key += status[r] == ViewRowPrep::kNullKey;
        c.key_too_long += status[r] == ViewRowPrep::kKeyTooLong;
        c.aggregated += status[r] == ViewRowPrep::kAggregate;
      }
    }
  }
  run->finished = order.empty() && (run->input_done || run->stopping);

  // This round's shards with rows.
  ListLargestFirst(
      [&](size_t vi, int s) {
        size_t rows = 0;
        for (const Worker* w : order) {
          rows += w->views[vi].shard_begin[s + 1] - w->views[vi].shard_begin[s];
        }
        return rows;
      },
      &run->aggregate_tasks);
  run->next_aggregate_task.store(0, std::memory_order_relaxed);
}

template <typename SizeFn>
void IngestPipeline::ListLargestFirst(SizeFn&& size, std::vector<std::pair<size_t, int>>* tasks) {
  std::vector<std::pair<size_t, std::pair<size_t, int>>> sized;
  for (size_t vi = 0; vi < views_.size(); ++vi) {
    for (int s = 0; s < open_tiles_.num_shards(); ++s) {
      if (const size_t n = size(vi, s); n > 0) sized.push_back({n, {vi, s}});
    }
  }
  std::stable_sort(sized.begin(), sized.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  tasks->clear();
  for (const auto& [n, task] : sized) tasks->push_back(task);
}

void IngestPipeline::PlanFlush(RunState* run) {
  ListLargestFirst([&](size_t vi, int s) { return open_tiles_.shard(vi, s).size(); },
                   &run->flush_tasks);
  run->next_flush_task.store(0, std::memory_order_relaxed);
}

int64_t IngestPipeline::AggregateShards(int worker_index, RunState* run) {
  const int64_t start_ns = options_.clock->MonotonicNanos();
  Worker* me = workers_[worker_index].get();
  while (true) {
    const size_t task = run->next_aggregate_task.fetch_add(1, std::memory_order_relaxed);
    if (task >= run->aggregate_tasks.size()) break;
    const auto [vi, shard] = run->aggregate_tasks[task];
    const ViewRuntime& view = *views_[vi];
    const tile::TileLayout& layout = *view.layout;
    const int64_t tile_ms = view.def->tile_ms;
    for (Worker* w : run->order) {
      const ViewPrep& p = w->views[vi];
      const int64_t* ts = w->round_batch->event_time_ms.data();
      // The shard's on-time rows of this batch, in arrival order; the shard is locked once.
      me->rows.clear();
      for (uint32_t i = p.shard_begin[shard]; i < p.shard_begin[shard + 1]; ++i) {
        if (!w->late[p.by_shard[i]]) me->rows.push_back(p.by_shard[i]);
      }
      const uint32_t count = static_cast<uint32_t>(me->rows.size());
      if (count == 0) continue;
      const uint32_t* rows = me->rows.data();
      open_tiles_.Add(vi, shard, count, [&](TileShard& tiles) {
        me->blocks.resize(count);
        constexpr uint32_t kAhead = 8;
        for (uint32_t i = 0; i < std::min(count, kAhead); ++i) {
          const uint32_t r = rows[i];
          tiles.Prefetch(p.rows.key()[r], p.rows.key_hash()[r], AlignDown(ts[r], tile_ms));
        }
        for (uint32_t i = 0; i < count; ++i) {
          if (i + kAhead < count) {
            const uint32_t ahead = rows[i + kAhead];
            tiles.Prefetch(p.rows.key()[ahead], p.rows.key_hash()[ahead],
                           AlignDown(ts[ahead], tile_ms));
          }
          const uint32_t r = rows[i];
          me->blocks[i] =
              tiles.FindOrCreate(p.rows.key()[r], p.rows.key_hash()[r], AlignDown(ts[r], tile_ms));
        }
        me->states.resize(count);
        for (size_t a = 0; a < layout.num_slots(); ++a) {
          const size_t off = layout.offset(a);
          for (uint32_t i = 0; i < count; ++i) me->states[i] = me->blocks[i] + off;
          layout.agg(a).AddBatch(me->states.data(), p.rows.args(a), ts, rows, count);
        }
      });
    }
    open_tiles_.UpdateMemory(vi, shard);
  }
  return options_.clock->MonotonicNanos() - start_ns;
}

std::shared_ptr<const store::StoreSnapshot> IngestPipeline::MergeOpenTiles(
    const ViewRuntime& view, std::string_view key,
    std::span<const std::pair<int64_t, int64_t>> ranges, std::span<std::byte* const> blocks,
    int64_t* tiles_merged) {
  if (slots_ != nullptr) return nullptr;  // open tiles are per slot: reads see commits only
  size_t vi = 0;
  while (vi < views_.size() && views_[vi] != &view) ++vi;
  if (vi == views_.size()) return nullptr;
  return open_tiles_.MergeInto(vi, key, ranges, blocks, tiles_merged);
}

void IngestPipeline::PublishMetrics() {
  if (!metrics_.enabled()) return;
  view_open_tiles_.resize(views_.size());
  view_open_tile_bytes_.resize(views_.size());
  for (size_t vi = 0; vi < views_.size(); ++vi) {
    view_open_tiles_[vi] = open_tiles_.size(vi);
    view_open_tile_bytes_[vi] = open_tiles_.MemoryBytes(vi);
  }
  metrics_.Publish(PipelineState{
      .source = &source_counters_,
      .views = &view_counters_,
      .tiles_written =
          flush_stats_.base_tiles + flush_stats_.rollup_tiles + flush_stats_.lifetime_tiles,
      .open_tiles = open_tiles_.size(),
      .open_tile_bytes = open_tile_bytes_.load(std::memory_order_relaxed),
      .view_open_tiles = &view_open_tiles_,
      .view_open_tile_bytes = &view_open_tile_bytes_,
      .rollups_owed = pending_rollups_.size(),
      .rollups_owed_closed = pending_rollups_.CountClosed(watermark_.committed_closed_by()),
      .max_event_time_ms = watermark_.max_event_time_ms(),
  });
}

int64_t IngestPipeline::FutureLimit() const {
  return LatestAcceptedEventTime(options_.clock->NowMillis(), options_.max_future_ms);
}

void IngestPipeline::AddWorkerFlushStats() {
  for (auto& fs : flush_stats_per_worker_) {
    flush_stats_ += fs;
    fs = FlushStats();
  }
}

void IngestPipeline::SwapOutFlushed() {
  open_tiles_.SwapOut(ReadersSnapshot());
  open_tile_bytes_.store(0, std::memory_order_relaxed);
  AddWorkerFlushStats();
}

int64_t IngestPipeline::KeptFrom() const {
  return base_retention_ms_ > 0 ? BaseTilesKeptFrom(options_.clock->NowMillis(), base_retention_ms_)
                                : kNoRetention;
}

std::shared_ptr<const store::StoreSnapshot> IngestPipeline::ReadersSnapshot() {
  // A snapshot held in the store also makes RocksDB give bulk-written files a sequence number,
  // and so rewrite them later (to zero it) even where they went straight to the bottom level.
  if (!options_.open_tiles_readable) return nullptr;
  return store_->GetSnapshot();
}

size_t IngestPipeline::FinalOwedRound() const {
  if (bytes_per_owed_ == 0) return options_.rollups_per_flush;
  return std::max(options_.rollups_per_flush, options_.memory_budget_bytes / bytes_per_owed_);
}

absl::Status IngestPipeline::TakeOwedRollups(size_t limit) {
  // Slots closed by the last commit's watermark hold no open tiles (their rows would be late),
  // so their stored children are final.
  std::vector<OwedRollup> owed;
  TESSERA_RETURN_IF_ERROR(
      pending_rollups_.TakeClosed(watermark_.committed_closed_by(), limit, &owed, &flush_meta_));
  // Each worker builds a contiguous part in store key order (where its children start), so
  // its scanner mostly steps forward instead of seeking.
  std::vector<std::pair<std::string, size_t>> order;
  order.reserve(owed.size());
  for (size_t i = 0; i < owed.size(); ++i) {
    order.emplace_back(store::EncodeTileKey(owed[i].view_id, owed[i].key, store::Resolution::kBase,
                                            owed[i].start_ms),
                       i);
  }
  std::sort(order.begin(), order.end());
  owed_taken_ = owed.size();
  for (auto& w : owed_work_) w.clear();
  for (size_t i = 0; i < order.size(); ++i) {
    owed_work_[i * owed_work_.size() / order.size()].push_back(std::move(owed[order[i].second]));
  }
  return absl::OkStatus();
}

absl::Status IngestPipeline::FlushShards(int worker_index, RunState* run) {
  FlushOutput& out = flush_out_[worker_index];
  out.clear();
  flushed_until_[worker_index].assign(views_.size(), kStoreHoldsNone);
  const int64_t closed_by = watermark_.closed_by();
  const int64_t kept_from = KeptFrom();
  while (true) {
    const size_t task = run->next_flush_task.fetch_add(1, std::memory_order_relaxed);
    if (task >= run->flush_tasks.size()) break;
    const auto [vi, s] = run->flush_tasks[task];
    if (slots_ != nullptr) {
      TESSERA_RETURN_IF_ERROR(FlushShardSlots(*views_[vi], open_tiles_.shard(vi, s), slots_,
                                              slot_names_, &out,
                                              &flush_stats_per_worker_[worker_index]));
      continue;
    }
    const TileShard& shard = open_tiles_.shard(vi, s);
    if (spill_.has_value()) {
      SpillShard(*views_[vi], shard, SpillViewId(views_[vi]->id, spill_->flushes), kSamplesPerShard,
                 &out);
      flush_stats_per_worker_[worker_index].spilled_tiles += static_cast<int64_t>(shard.size());
    } else {
      if (shard.size() > 0) {
        flushed_until_[worker_index][vi] =
            std::max(flushed_until_[worker_index][vi], shard.max_start_ms());
      }
      TESSERA_RETURN_IF_ERROR(FlushShard(*views_[vi], shard, store_, stored_until_[vi], closed_by,
                                         &out, &flush_stats_per_worker_[worker_index], kept_from));
    }
    if (!options_.open_tiles_readable) {
      open_tiles_.DropStates(vi, s);
      // Under memory pressure its pages go back now: the runs grow faster than they reuse them,
      // and the commit adds its own memory (the resident set would hold both for ~10 s). Not
      // otherwise: the next allocations would fault them in again.
      if (run->over_budget) ReleaseFreedMemory();
    }
  }
  // The owed markers' keys, here in parallel rather than at the commit; rollups an earlier
  // flush made owed have theirs already.
  std::erase_if(out.owed, [&](const RollupRef& r) { return pending_rollups_.Owes(r); });
  out.owed_keys.reserve(out.owed.size());
  for (const RollupRef& r : out.owed) {
    out.owed_keys.push_back(store::meta::OwedRollupKey(r.view_id, r.resolution, r.start_ms, r.key));
  }
  std::unique_ptr<store::TileScanner> scanner;
  if (!owed_work_[worker_index].empty()) {
    scanner = store_->NewScanner(nullptr, store::ScanOrder::kAscending);
  }
  for (const OwedRollup& owed : owed_work_[worker_index]) {
    const ViewRuntime* view = nullptr;
    for (const ViewRuntime* v : views_) {
      if (v->id == owed.view_id) view = v;
    }
    if (view == nullptr) continue;  // markers are loaded for this pipeline's views only
    TESSERA_ASSIGN_OR_RETURN(
        bool written,
        BuildRollupFromStore(*view, scanner.get(), owed, &out.tiles, base_retention_ms_ > 0));
    if (written) ++flush_stats_per_worker_[worker_index].rollup_tiles;
  }
  owed_work_[worker_index].clear();
  return absl::OkStatus();
}

uint32_t IngestPipeline::SlotIndex(const std::string& lane) {
  auto [it, inserted] = slot_of_lane_.try_emplace(lane, static_cast<uint32_t>(slot_names_.size()));
  if (inserted) {
    slot_lanes_.push_back(lane);
    slot_names_.push_back(store::SlotName(ToLowerAscii(source_.name), lane));
    slot_touched_.push_back(0);
  }
  return it->second;
}

absl::Status IngestPipeline::CommitSlots(Source* input) {
  std::map<uint32_t, store::WriteBatch> batches;
  for (uint32_t slot = 0; slot < slot_touched_.size(); ++slot) {
    if (slot_touched_[slot] != 0) batches[slot];
  }
  for (FlushOutput& out : flush_out_) {
    for (size_t i = 0; i < out.tiles.size(); ++i) {
      batches[out.tile_slots[i]].tiles.push_back(std::move(out.tiles[i]));
    }
    out.clear();
  }
  // Metadata goes to the slot of its lane: a partition's offset and watermark lane to the
  // partition's slot, the rest to the source's slot "" (a source without lanes). A source with
  // lanes keeps nothing outside them (its newest event time is the newest of its lanes).
  store::WriteBatch meta;
  watermark_.AddToBatch(&meta);
  const size_t lane_entries = meta.meta.size();
  input->AddCheckpoint(&meta);
  const std::string lane_prefix = store::meta::SourceLanePrefix(source_.name);
  auto lane_of = [&](const std::string& key, bool from_source) -> std::optional<std::string> {
    if (from_source) return input->CheckpointLane(key);
    if (key.starts_with(lane_prefix)) return key.substr(lane_prefix.size());
    return std::nullopt;
  };
  const bool has_whole_source_slot = slot_of_lane_.contains("");
  for (size_t i = 0; i < meta.meta.size(); ++i) {
    auto& [key, value] = meta.meta[i];
    std::optional<std::string> lane = lane_of(key, i >= lane_entries);
    if (!lane.has_value()) {
      if (has_whole_source_slot) batches[SlotIndex("")].meta.emplace_back(key, value);
      continue;
    }
    if (i >= lane_entries) {  // a checkpoint entry: the source owns that lane's slot
      batches[SlotIndex(*lane)].meta.emplace_back(key, value);
      continue;
    }
    auto it = slot_of_lane_.find(*lane);
    // Watermark lanes of slots this flush does not commit belong to other owners or are
    // unchanged since this pipeline last committed them.
    if (it != slot_of_lane_.end() && batches.contains(it->second)) {
      batches[it->second].meta.emplace_back(key, value);
    }
  }
  for (std::string& key : meta.meta_deletes) {
    std::optional<std::string> lane = input->CheckpointLane(key);
    if (lane.has_value()) {
      batches[SlotIndex(*lane)].meta_deletes.push_back(std::move(key));
    } else if (has_whole_source_slot) {
      batches[SlotIndex("")].meta_deletes.push_back(std::move(key));
    }
  }
  const int64_t write_start = options_.clock->MonotonicNanos();
  for (auto& [slot, batch] : batches) {
    absl::Status s = slots_->CommitSlot(slot_names_[slot], batch);
    if (s.ok()) continue;
    // Fenced: another process claimed the slot (this one lost the partition while paused).
    // Nothing of this commit is visible; a source that can drop the lane carries on without it.
    const bool fenced = s.code() == absl::StatusCode::kFailedPrecondition &&
                        s.message().find("fenced") != std::string_view::npos;
    if (fenced && input->SlotLost(slot_lanes_[slot])) {
      watermark_.ForgetLane(slot_lanes_[slot]);
      ++fenced_commits_;
      continue;
    }
    return Annotate(
        s, fmt::format("source '{}': commit of writer slot '{}'", source_.name, slot_names_[slot]));
  }
  metrics_.ObserveStoreWrite(options_.clock->MonotonicNanos() - write_start);
  std::fill(slot_touched_.begin(), slot_touched_.end(), 0);
  input->Committed();
  watermark_.Committed();
  open_tiles_.SwapOut(nullptr);
  open_tile_bytes_.store(0, std::memory_order_relaxed);
  AddWorkerFlushStats();
  return absl::OkStatus();
}

absl::Status IngestPipeline::CommitFlush(Source* input) {
  if (slots_ != nullptr) return CommitSlots(input);
  if (spill_.has_value()) return CommitSpill(input);
  store::WriteBatch batch = std::move(flush_meta_);
  flush_meta_ = store::WriteBatch();
  size_t total = 0;
  for (const auto& out : flush_out_) {
    total += out.tiles.size();
    for (const store::TileRun& run : out.runs) total += run.size();
  }
  if (owed_taken_ > 0) {
    // What the owed rollups of this flush hold now: their built tiles, and per rollup about
    // kOwedBytes of key, marker deletion and bookkeeping (OwedRollup, sort key).
    constexpr size_t kOwedBytes = 320;
    size_t bytes = owed_taken_ * kOwedBytes;
    for (const FlushOutput& out : flush_out_) {
      for (const auto& [key, value] : out.tiles) {
        bytes += sizeof(out.tiles[0]) + key.entity_key.capacity() + value.capacity();
      }
    }
    bytes_per_owed_ = std::max<size_t>(1, bytes / owed_taken_);
    owed_taken_ = 0;
  }
  for (FlushOutput& out : flush_out_) {
    for (auto& run : out.runs) batch.tile_runs.push_back(std::move(run));
    for (auto& t : out.tiles) batch.tiles.push_back(std::move(t));
    for (size_t i = 0; i < out.owed.size(); ++i) {
      pending_rollups_.Owe(out.owed[i], std::move(out.owed_keys[i]), &batch);
    }
    for (const RollupRef& r : out.settled) pending_rollups_.Settle(r, &batch);
    out.clear();  // before the shards their keys point into are retired
  }
  for (size_t vi = 0; vi < views_.size(); ++vi) {
    if (stored_until_[vi] == kStoreHoldsNone && total > 0) {
      batch.meta.emplace_back(HasTilesKey(views_[vi]->id), "1");
    }
  }
  watermark_.AddToBatch(&batch);
  input->AddCheckpoint(&batch);
  const int64_t write_start = options_.clock->MonotonicNanos();
  absl::Status written = store_->Write(batch);
  if (written.ok()) written = store_->Sync();
  if (!written.ok()) {
    // The write may have been applied all the same: from now on, assume any tile may be stored.
    std::fill(stored_until_.begin(), stored_until_.end(), kStoreMayHoldAny);
    return written;
  }
  metrics_.ObserveStoreWrite(options_.clock->MonotonicNanos() - write_start);
  input->Committed();
  watermark_.Committed();
  spill_allowed_ = false;  // the views may hold tiles now: spill runs would be merged over them
  // Every tile written starts at or before the newest open base tile (rollups start before
  // their children; owed rollups were built over stored children).
  for (size_t vi = 0; vi < views_.size(); ++vi) {
    if (stored_until_[vi] == kStoreMayHoldAny) continue;
    for (const std::vector<int64_t>& until : flushed_until_) {
      stored_until_[vi] = std::max(stored_until_[vi], until[vi]);
    }
  }
  // The store now holds the open tiles: publish it and swap in empty shards together.
  SwapOutFlushed();
  return absl::OkStatus();
}

int64_t IngestPipeline::TakeAndPrepare(int worker_index, RunState* run) {
  Worker* w = workers_[worker_index].get();
  w->has_batch = false;
  w->arena.Reset();
  w->batch.Clear();
  w->round_batch = &w->batch;
  w->decode = source::DecodeStats();
  w->origin.decoded.reset();  // the last round's rows, freed outside the input lock
  {
    std::lock_guard<std::mutex> lock(run->input_mu);
    if (!run->input_done && !run->stopping) {
      w->origin.Reset();
      absl::StatusOr<Source::Next> next = run->input->NextChunk(&w->chunk, &w->origin);
      if (!next.ok()) {
        run->input_error = next.status();
        run->input_done = true;
      } else if (*next == Source::Next::kEnd) {
        run->input_done = true;
      } else if (*next == Source::Next::kChunk) {
        w->has_batch = true;
        w->seq = run->next_seq++;
        if (slots_ != nullptr) {
          w->slot = SlotIndex(w->origin.lane);
          slot_touched_[w->slot] = 1;
        }
      }
    }
  }
  const int64_t busy_start = options_.clock->MonotonicNanos();
  if (w->has_batch && w->origin.decoded != nullptr) {
    // Decoded by the source already (HTTP ingest), exactly as decoding the lines here would.
    w->round_batch = &w->origin.decoded->batch;
    w->decode = w->origin.decoded->stats;
    Prepare(w);
  } else if (w->has_batch) {
    w->decoder->set_max_event_time_ms(FutureLimit());
    w->decoder->Decode(w->chunk, w->origin.first_line, &w->batch, &w->decode,
                       [this, w](const source::Rejection& r) {
                         if (!reject_sink_) return;
                         std::lock_guard<std::mutex> lock(reject_mu_);
                         reject_sink_(w->origin, r);
                       });
    Prepare(w);
  }
  return options_.clock->MonotonicNanos() - busy_start;
}

void IngestPipeline::DecideFlush(RunState* run) {
  // Every chunk taken so far is in the open tiles now (or was dropped as late). The watermark
  // is published first: a writer told its rows are visible reads it with them.
  watermark_ms_.store(watermark_.closed_by(), std::memory_order_relaxed);
  run->input->Aggregated();
  open_tiles_.UpdateStaleMemory();
  const size_t open_bytes = open_tiles_.MemoryBytes();
  open_tile_bytes_.store(open_bytes, std::memory_order_relaxed);
  const int64_t now = options_.clock->MonotonicNanos();
  // Something an interval flush would write: open tiles, input to checkpoint, owed rollups.
  const bool pending = !open_tiles_.empty() || run->next_seq != run->flushed_seq ||
                       pending_rollups_.HasClosed(watermark_.committed_closed_by());
  const bool interval_due = options_.flush_interval_ms > 0 && pending &&
                            now - run->last_flush_ns >= options_.flush_interval_ms * 1'000'000;
  run->over_budget = open_bytes > options_.FlushThresholdBytes();
  run->flush_now = run->finished || !run->input_error.ok() || interval_due || run->over_budget ||
                   run->input->WantsFlush();
  if (run->flush_now) {
    if (!spill_.has_value() && spill_allowed_ && run->over_budget && !run->finished) {
      // From now on every flush of this backfill is a spill run (engine/spill.h).
      spill_.emplace();
      spill_views_.clear();
      for (size_t vi = 0; vi < views_.size(); ++vi) {
        spill_->views.emplace_back().view_id = views_[vi]->id;
        spill_views_.push_back(vi);
      }
    }
    if (!spill_.has_value()) run->flush_error = TakeOwedRollups(options_.rollups_per_flush);
    PlanFlush(run);
  }
  if (progress_) progress_(source_counters_, run->flush_now);
  PublishMetrics();
  if (!run->flush_now && run->order.empty() && !run->input_done) {
    // Caught up with a live source: wait for data, but not past the next flush (when there is
    // anything to flush: an idle pipeline must not spin at the interval's deadline).
    int64_t wait_ms = 50;
    if (options_.flush_interval_ms > 0 && pending) {
      wait_ms = std::clamp<int64_t>(
          options_.flush_interval_ms - (now - run->last_flush_ns) / 1'000'000, 1, 50);
    }
    run->input->WaitForData(std::chrono::milliseconds(wait_ms));
  }
  run->stopping = run->stopping || stop_.load();
}

absl::Status IngestPipeline::CommitSpill(Source* input) {
  if (spill_->flushes >= kMaxSpillFlushes) {  // merged before: FlushRounds, LoadSpill
    return Internal("source '{}': spill run {} is past the last id", source_.name, spill_->flushes);
  }
  store::WriteBatch batch;
  batch.bulk = true;  // each run a key range of its own, never in the memtable
  std::vector<std::vector<KeySample>> samples(spill_->views.size());
  for (FlushOutput& out : flush_out_) {
    for (auto& run : out.runs) batch.tile_runs.push_back(std::move(run));
    spill_->spilled_bytes += out.spilled_bytes;
    for (FlushOutput::EntitySample& e : out.entity_samples) {
      for (size_t i = 0; i < spill_->views.size(); ++i) {
        if (spill_->views[i].view_id == e.view_id) {
          samples[i].push_back(KeySample{std::move(e.key), e.weight});
        }
      }
    }
    out.clear();
  }
  for (size_t i = 0; i < spill_->views.size(); ++i) {
    AddSamples(std::move(samples[i]), &spill_->views[i].keys);
  }
  ++spill_->flushes;
  batch.meta.emplace_back(store::meta::SpillStateKey(source_.name), spill_->Encode());
  watermark_.AddToBatch(&batch);
  input->AddCheckpoint(&batch);
  const int64_t write_start = options_.clock->MonotonicNanos();
  absl::Status written = store_->Write(batch);
  if (written.ok()) written = store_->Sync();
  TESSERA_RETURN_IF_ERROR(written);
  metrics_.ObserveStoreWrite(options_.clock->MonotonicNanos() - write_start);
  input->Committed();
  watermark_.Committed();
  SwapOutFlushed();
  return absl::OkStatus();
}

void IngestPipeline::PlanMergeRound(RunState* run) {
  run->merge_tasks.clear();
  run->next_merge_task.store(0, std::memory_order_relaxed);
  if (stop_.load()) return;  // the rest is merged by the next run
  for (size_t i = 0; i < spill_->views.size(); ++i) {
    const SpillState::View& v = spill_->views[i];
    if (v.merged()) continue;
    const uint32_t intervals = static_cast<uint32_t>(v.keys.size()) + 1;
    const uint32_t end = std::min<uint32_t>(intervals, v.merged_intervals + threads_);
    for (uint32_t k = v.merged_intervals; k < end; ++k) run->merge_tasks.emplace_back(i, k);
    return;
  }
}

absl::Status IngestPipeline::CommitMergeRound(RunState* run) {
  store::WriteBatch batch;
  batch.bulk = true;  // the round's intervals are adjacent: their files overlap nothing
  for (FlushOutput& out : flush_out_) {
    for (auto& r : out.runs) batch.tile_runs.push_back(std::move(r));
    for (size_t i = 0; i < out.owed.size(); ++i) {
      pending_rollups_.Owe(out.owed[i], std::move(out.owed_keys[i]), &batch);
    }
  }
  SpillState::View& v = spill_->views[run->merge_tasks.front().first];
  const size_t vi = spill_views_[run->merge_tasks.front().first];
  v.merged_intervals += static_cast<uint32_t>(run->merge_tasks.size());
  batch.meta.emplace_back(HasTilesKey(views_[vi]->id), "1");
  batch.meta.emplace_back(store::meta::SpillStateKey(source_.name), spill_->Encode());
  absl::Status written = store_->Write(batch);
  if (written.ok()) written = store_->Sync();
  for (FlushOutput& out : flush_out_) out.clear();
  TESSERA_RETURN_IF_ERROR(written);
  stored_until_[vi] = kStoreMayHoldAny;
  AddWorkerFlushStats();
  // Readers of a live pipeline that merges runs before its input see each round's tiles.
  open_tiles_.Publish(ReadersSnapshot());
  return absl::OkStatus();
}

absl::Status IngestPipeline::FinishSpill() {
  // The runs go first (made durable), then the state: a run cut short in between deletes them
  // again, which finds nothing.
  for (const SpillState::View& v : spill_->views) {
    TESSERA_RETURN_IF_ERROR(store_->DeleteViewTiles(SpillViewId(v.view_id, 0),
                                                    SpillViewId(v.view_id, kMaxSpillFlushes - 1)));
  }
  TESSERA_RETURN_IF_ERROR(store_->Sync());
  store::WriteBatch batch;
  batch.meta_deletes.push_back(store::meta::SpillStateKey(source_.name));
  TESSERA_RETURN_IF_ERROR(store_->Write(batch));
  TESSERA_RETURN_IF_ERROR(store_->Sync());
  spill_.reset();
  return absl::OkStatus();
}

bool IngestPipeline::MergeSpillRounds(int worker_index, RunState* run) {
  const bool coordinator = worker_index == 0;
  if (coordinator) BeginMerge();
  const int64_t closed_by = watermark_.closed_by();
  const int64_t kept_from = KeptFrom();
  while (true) {
    // Decided before the barrier: after it, a worker's failed interval may set flush_error.
    if (coordinator) {
      PlanMergeRound(run);
      run->merge_round = !run->merge_tasks.empty() && run->flush_error.ok();
    }
    run->sync.arrive_and_wait();
    if (!run->merge_round) break;
    const int64_t build_start = options_.clock->MonotonicNanos();
    FlushOutput& out = flush_out_[worker_index];
    while (true) {
      const size_t task = run->next_merge_task.fetch_add(1, std::memory_order_relaxed);
      if (task >= run->merge_tasks.size()) break;
      const auto [i, interval] = run->merge_tasks[task];
      absl::Status s = MergeSpillInterval(*views_[spill_views_[i]], store_, spill_->flushes,
                                          IntervalRange(spill_->views[i].keys, interval), closed_by,
                                          kept_from, &out, &flush_stats_per_worker_[worker_index]);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(run->input_mu);
        if (run->flush_error.ok()) run->flush_error = s;
      }
    }
    run->sync.arrive_and_wait();
    if (coordinator && run->flush_error.ok()) {
      const int64_t commit_start = options_.clock->MonotonicNanos();
      flush_stats_.build_seconds += static_cast<double>(commit_start - build_start) / 1e9;
      run->flush_error = CommitMergeRound(run);
      flush_stats_.commit_seconds +=
          static_cast<double>(options_.clock->MonotonicNanos() - commit_start) / 1e9;
      ++flush_stats_.flushes;
      if (progress_) progress_(source_counters_, true);
    }
    run->sync.arrive_and_wait();
  }
  // Stopped (Stop()) with intervals left, the state keeps them for the next run.
  if (coordinator) {
    run->merge_done = run->flush_error.ok() && spill_->merged();
    if (run->merge_done) run->flush_error = FinishSpill();
    run->merge_done = run->merge_done && run->flush_error.ok();
  }
  run->sync.arrive_and_wait();
  return run->merge_done;
}

bool IngestPipeline::FlushRounds(int worker_index, RunState* run) {
  while (run->flush_now) {
    const int64_t build_start = options_.clock->MonotonicNanos();
    absl::Status s = FlushShards(worker_index, run);
    if (!s.ok()) {
      std::lock_guard<std::mutex> lock(run->input_mu);
      if (run->flush_error.ok()) run->flush_error = s;
    }
    run->sync.arrive_and_wait();
    if (worker_index == 0 && run->flush_error.ok()) {
      const int64_t commit_start = options_.clock->MonotonicNanos();
      flush_stats_.build_seconds += static_cast<double>(commit_start - build_start) / 1e9;
      run->flush_error = CommitFlush(run->input);
      run->last_flush_ns = options_.clock->MonotonicNanos();
      run->flushed_seq = run->next_seq;
      flush_stats_.commit_seconds +=
          static_cast<double>(options_.clock->MonotonicNanos() - commit_start) / 1e9;
      ++flush_stats_.flushes;
      if (metrics_.enabled()) {
        metrics_.ObserveFlush(options_.clock->MonotonicNanos() - build_start);
        PublishMetrics();
      }
    }
    // Decided here, before the barrier: once past it, a worker that goes back to ingesting may
    // set input_error while another still reads it.
    if (worker_index == 0) {
      const bool last = run->finished || !run->input_error.ok();
      const bool full = spill_.has_value() && spill_->flushes + 1 >= kMaxSpillFlushes;
      if (spill_.has_value() && (last || full) && run->flush_error.ok()) {
        // The last flush (the input ended, failed or was stopped): spill runs are merged now,
        // so the store holds everything read, as without them. At the most runs a state
        // holds, they are merged too, and the rest of the input is read-merge-written.
        run->after_flush = AfterFlush::kMergeSpillRuns;
        run->ingest_after_merge = !last;
      } else if (!run->flush_error.ok() || !run->input_error.ok()) {
        run->after_flush = AfterFlush::kStop;
      } else {
        run->after_flush = run->finished ? AfterFlush::kOwedRollups : AfterFlush::kIngest;
      }
    }
    run->sync.arrive_and_wait();
    // The tiles are in the store (or the run failed): drop this worker's retired shards, in
    // parallel, since freeing the sketch memory of many tiles is not free.
    open_tiles_.ReleaseRetired(worker_index);
    switch (run->after_flush) {
      case AfterFlush::kStop:
        return false;
      case AfterFlush::kMergeSpillRuns:
        return MergeSpillRounds(worker_index, run) && run->ingest_after_merge;
      case AfterFlush::kIngest:
        return true;
      case AfterFlush::kOwedRollups:
        break;
    }
    // The run is over: build the owed rollups the final watermark closed, flush by flush.
    run->sync.arrive_and_wait();
    if (worker_index == 0) {
      run->flush_now = pending_rollups_.HasClosed(watermark_.committed_closed_by());
      run->over_budget = false;  // no open tiles: nothing for ReleaseFreedMemory to follow
      if (run->flush_now) {
        run->flush_error = TakeOwedRollups(FinalOwedRound());
        PlanFlush(run);
      }
    }
    run->sync.arrive_and_wait();
    if (!run->flush_now) return false;
  }
  return true;
}

void IngestPipeline::WorkerLoop(int worker_index, RunState* run) {
  const bool coordinator = worker_index == 0;
  // A merge of spill runs that a cut-short run began comes before any new input: those views'
  // unmerged tiles are not in the store yet.
  if (spill_.has_value() && spill_->merging && !MergeSpillRounds(worker_index, run)) return;
  while (true) {
    int64_t busy_ns = TakeAndPrepare(worker_index, run);
    run->sync.arrive_and_wait();
    if (coordinator) MarkLateInOrder(run);
    run->sync.arrive_and_wait();
    busy_ns += AggregateShards(worker_index, run);
    metrics_.AddBusy(worker_index, busy_ns);
    run->sync.arrive_and_wait();
    if (coordinator) DecideFlush(run);
    run->sync.arrive_and_wait();
    if (run->flush_now && !FlushRounds(worker_index, run)) return;
  }
}

size_t PipelineOptions::FlushThresholdBytes() const {
  if (open_tiles_readable) return memory_budget_bytes;
  const size_t parts = static_cast<size_t>(std::max(1, shards_per_thread));
  return memory_budget_bytes / (parts + 1) * parts;
}

int WorkerThreads(int requested) {
  return requested > 0 ? requested
                       : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

absl::Status ClaimSourceSlot(store::TileStore* store, const sql::SourceDef& source) {
  if (store->slots() == nullptr) return absl::OkStatus();
  return store->slots()->ClaimSlot(store::SlotName(ToLowerAscii(source.name), "")).status();
}

absl::Status IngestPipeline::Run(Source* input) {
  if (slots_ != nullptr && !input->ClaimsSlots()) {
    SlotIndex("");  // the source's one slot, claimed by ClaimSourceSlot before it was created
  }
  RunState run(input, threads_, options_.clock->MonotonicNanos());
  std::vector<std::thread> threads;
  for (int i = 1; i < threads_; ++i) threads.emplace_back([this, i, &run] { WorkerLoop(i, &run); });
  WorkerLoop(0, &run);
  for (auto& t : threads) t.join();
  TESSERA_RETURN_IF_ERROR(run.flush_error);
  return run.input_error;
}

}  // namespace tessera::engine
