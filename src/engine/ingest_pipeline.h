#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "engine/catalog_store.h"
#include "engine/feature_reader.h"
#include "engine/flusher.h"
#include "engine/open_tiles.h"
#include "engine/pipeline_metrics.h"
#include "engine/rollups.h"
#include "engine/spill.h"
#include "engine/tile_shard.h"
#include "engine/watermark.h"
#include "source/format/line_reader.h"
#include "source/format/ndjson_decoder.h"
#include "source/source.h"
#include "store/tile_store.h"

namespace tessera::engine {

using source::Source;

struct PipelineOptions {
  // Worker threads; 0 means one per hardware thread.
  int threads = 0;
  // Shards per view = shards_per_thread * threads; a shard is owned by one thread at a time.
  int shards_per_thread = 4;
  // Memory for the open tiles (arenas, hash tables and sketch heap memory: engine/open_tiles.h
  // says how the heap part is estimated) and the flush that writes them. The open tiles are
  // flushed (read-merge-write, then dropped) when they hold more than FlushThresholdBytes().
  size_t memory_budget_bytes = size_t{2} << 30;
  // Live sources: also flush when this long has passed since the last flush and there is
  // something to flush. 0 = only on memory pressure and at the end.
  int64_t flush_interval_ms = 0;
  // Owed rollups (of slots the watermark has closed) built per flush, at most; the rest wait
  // for the next flush. Spreads the hourly/daily burst. After the last flush of a run the
  // closed ones are all built, in rounds as large as the memory budget holds (measured: the
  // bytes a round's owed rollups held at its commit), never fewer than this.
  size_t rollups_per_flush = 50000;
  // Rows whose event time is more than this ahead of clock->NowMillis() are rejected (counted in
  // SourceCounters::future and ::rejected) and never move the watermark; sql::kNoFutureBound = no
  // bound.
  int64_t max_future_ms = sql::kNoFutureBound;
  // Gives "now" for the future-row bound and the freshness gauges, and times flushes.
  const Clock* clock = SystemClock::Default();
  // Where the pipeline's counters, gauges and histograms go (optional).
  MetricsRegistry* metrics = nullptr;
  // Whether readers merge the open tiles (MergeOpenTiles) while the pipeline runs: then a flushed
  // shard's tiles stay until the commit. A backfill has no such readers and sets it false, so
  // each shard's states are freed as soon as the flush has serialized them, and the flush stays
  // within the budget (FlushThresholdBytes).
  bool open_tiles_readable = true;
  // Whether flushes under memory pressure may write spill runs (engine/spill.h) instead of
  // read-merge-writing the store, when the views hold no tiles yet and the store supports view
  // ranges (a backfill into a new DB, with !open_tiles_readable and no base-tile retention).
  bool spill_runs = false;
  // The spill merge's interval size, in bytes of spilled tiles (a round merges one interval per
  // thread and holds its tiles until the commit); 0: budget / (2 * threads), at least 1 MiB.
  size_t spill_interval_bytes = 0;

  // The open-tile memory that starts a flush: the budget, less (when open_tiles_readable is
  // false) room for the flush's transient memory. Such a flush serializes one shard per thread
  // at a time and frees each shard once serialized, so beside the open tiles it holds about
  // the serialized tiles and sort order of `threads` shards: 1/shards_per_thread of the open
  // memory (measured: 90-95 % of a shard's memory while its tiles are serialized).
  size_t FlushThresholdBytes() const;
};

// Worker threads for `requested` (PipelineOptions::threads; 0: one per hardware thread).
int WorkerThreads(int requested);

// A rejected line and where it came from, for dead-letter sinks. Called from worker threads,
// serialized by the pipeline; both arguments are valid only during the call.
using RejectSink =
    std::function<void(const source::ChunkOrigin& origin, const source::Rejection& r)>;

// Aggregates one source's rows into the tiles of its views and flushes them to the store —
// the one code path shared by backfill and live ingestion.
//
// Per round, each worker thread decodes one chunk and evaluates every view's WHERE, keys and
// aggregate arguments (parallel); then the watermark rule marks late rows in stream order
// (serial, cheap); then each worker adds the rows of the shards it owns, batch by batch in
// stream order (parallel, no locks, deterministic). Flushes happen between rounds, so a flush
// and its checkpoint cover exactly the chunks handed out so far.
//
// Watermark: max event time seen on the source minus its lateness; a row older than the
// watermark is late (dropped and counted). The max is persisted with every flush, so a later
// run continues the same stream. Hour and day rollups are written once the watermark closes their
// slot (engine/rollups.h): by the flush whose watermark closes a slot it has rows in, otherwise
// owed and built from the store by later flushes (a bounded number each) and the final flush.
//
// Serving while ingesting (OpenTileSource): readers merge the open tiles with a store snapshot
// published by the last flush. A flush writes the store first (readers still use the old
// snapshot plus the open tiles), then, in one short exclusive section, publishes the new
// snapshot and swaps in empty shards; so every row is seen exactly once by every read.
// On a store with writer slots (store/slot_store.h), claims the slot of `source`'s one lane ""
// — fencing any other process that runs the source — so that the position the source reads
// next is final. Call before creating a source without lanes (file, http, stdin, Pub/Sub, a
// backfill's files) and before its pipeline's Init(); a no-op on other stores. Sources with
// lanes (Kafka) claim their slots themselves (Source::ClaimsSlots).
absl::Status ClaimSourceSlot(store::TileStore* store, const sql::SourceDef& source);

class IngestPipeline final : public OpenTileSource {
 public:
  IngestPipeline(const sql::SourceDef& source, std::vector<const ViewRuntime*> views,
                 store::TileStore* store, PipelineOptions options);
  ~IngestPipeline() override;

  // Reads the persisted watermark state. Call once before Run().
  absl::Status Init();

  // Processes every chunk of `input` until it ends or Stop() is called, then flushes. On error,
  // what was fully processed before the error is flushed with its checkpoint, and the error is
  // returned.
  absl::Status Run(Source* input);

  // Asks Run() to flush and return soon (e.g. on SIGTERM). Thread-safe.
  void Stop() { stop_.store(true); }

  // OpenTileSource. Thread-safe; callable while Run() runs (and after Init()).
  std::shared_ptr<const store::StoreSnapshot> MergeOpenTiles(
      const ViewRuntime& view, std::string_view key,
      std::span<const std::pair<int64_t, int64_t>> ranges, std::span<std::byte* const> blocks,
      int64_t* tiles_merged) override;

  void set_reject_sink(RejectSink sink) { reject_sink_ = std::move(sink); }
  // Called from the coordinating thread after every round with the counters so far, and once
  // with flushing = true before each flush.
  void set_progress(std::function<void(const SourceCounters&, bool flushing)> fn) {
    progress_ = std::move(fn);
  }

  const SourceCounters& source_counters() const { return source_counters_; }
  const std::vector<ViewCounters>& view_counters() const { return view_counters_; }
  const FlushStats& flush_stats() const { return flush_stats_; }
  // Slot commits refused because another process owns the slot now, whose lane the source
  // dropped (Source::SlotLost). Coordinating thread, or after Run().
  int64_t fenced_commits() const { return fenced_commits_; }
  int64_t max_event_time_ms() const { return watermark_.max_event_time_ms(); }
  // The source's watermark (Watermark::closed_by(); Watermark::kNone while there is none) as of
  // the last round whose rows are all in the open tiles (or the persisted one, after Init()).
  // Thread-safe: what reads report as the engine's watermark (FeatureResult::Meta).
  int64_t watermark_ms() const { return watermark_ms_.load(std::memory_order_relaxed); }
  // False on a store with writer slots: reads never merge this pipeline's open tiles there
  // (MergeOpenTiles), they see what the slots committed.
  bool serves_open_tiles() const { return slots_ == nullptr; }
  int threads() const { return threads_; }

  // Bytes of the open tiles (arenas, hash tables, sketch heap) as of the last round: what the
  // flush trigger compares with PipelineOptions::FlushThresholdBytes(). Thread-safe; for
  // admission control (e.g. refusing ingest while the pipeline is far over budget).
  size_t open_tile_bytes() const { return open_tile_bytes_.load(std::memory_order_relaxed); }
  size_t memory_budget_bytes() const { return options_.memory_budget_bytes; }
  // Exact recounts of sketch heap memory so far (for tests of the accounting).
  int64_t heap_recounts() const { return open_tiles_.heap_recounts(); }

 private:
  struct Worker;
  struct ViewPrep;
  struct RunState;

  // One worker's loop: rounds of (1) TakeAndPrepare, (2) MarkLateInOrder on the coordinating
  // thread, (3) AggregateShards, (4) DecideFlush on the coordinating thread, then flushes
  // (FlushRounds) when decided; barriers between the phases.
  void WorkerLoop(int worker_index, RunState* run);
  // Phase 1: takes the next chunk (under the input lock), decodes it (unless the source handed
  // it out decoded: ChunkOrigin::decoded) and evaluates the views.
  // Returns the busy nanoseconds.
  int64_t TakeAndPrepare(int worker_index, RunState* run);
  void Prepare(Worker* w);
  // Phase 2 (coordinating thread): orders this round's batches by sequence, marks late rows,
  // adds up the counters, and lists the shards to aggregate, largest first.
  void MarkLateInOrder(RunState* run);
  // Phase 3: claims shards one at a time until none is left, adds each one's on-time rows of
  // every batch (in stream order) and refreshes its memory estimate. Returns the busy
  // nanoseconds.
  int64_t AggregateShards(int worker_index, RunState* run);
  // Phase 4 (coordinating thread): decides whether to flush (end, error, interval, memory),
  // publishes progress and metrics, and waits for a caught-up live source.
  void DecideFlush(RunState* run);
  // Flush phases, while run->flush_now: build, commit (coordinating thread), release. Returns
  // false when the worker should return (the run is over or failed).
  bool FlushRounds(int worker_index, RunState* run);
  // Replaces *tasks with the (view, shard) pairs of nonzero size(view, shard), largest first (so
  // the last ones claimed are small; ties in view and shard order).
  template <typename SizeFn>
  void ListLargestFirst(SizeFn&& size, std::vector<std::pair<size_t, int>>* tasks);
  // Lists the shards a flush builds, largest first (coordinating thread, before the flush).
  void PlanFlush(RunState* run);
  // Claims shards to flush one at a time until none is left, then builds this worker's share of
  // the owed rollups.
  absl::Status FlushShards(int worker_index, RunState* run);
  // Spill runs (engine/spill.h). LoadSpill (from Init): the state a cut-short run left, and
  // whether this run may start spilling. CommitSpill: a spill flush's commit. MergeSpillRounds:
  // after the last flush (or before any input, when a cut-short merge is to be finished), the
  // merge rounds, each built by all workers and committed by the coordinator
  // (PlanMergeRound, CommitMergeRound); then FinishSpill deletes the runs and the state.
  absl::Status LoadSpill();
  absl::Status CommitSpill(Source* input);
  // Picks the merge's pivots (unless it has begun): no more spill runs after this.
  void BeginMerge();
  // True when every interval is merged and the runs are deleted (false: an error, or Stop()).
  bool MergeSpillRounds(int worker_index, RunState* run);
  void PlanMergeRound(RunState* run);
  absl::Status CommitMergeRound(RunState* run);
  absl::Status FinishSpill();
  // Picks the owed rollups the next flush builds (coordinating thread).
  absl::Status TakeOwedRollups(size_t limit);
  // Where the base-tile retention keeps base tiles from now (kNoRetention: none).
  int64_t KeptFrom() const;
  // The store snapshot that readers pair with the open tiles (null when nothing reads them).
  std::shared_ptr<const store::StoreSnapshot> ReadersSnapshot();
  // After a commit: the workers' flush stats go into flush_stats_; SwapOutFlushed also swaps in
  // empty open tiles (the store holds them now) with ReadersSnapshot().
  void AddWorkerFlushStats();
  void SwapOutFlushed();
  // Owed rollups per round once the run is over: as many as the memory budget holds at
  // bytes_per_owed_ (nothing else needs the budget then), at least rollups_per_flush.
  size_t FinalOwedRound() const;
  // The latest event time accepted now (clock + max_future_ms).
  int64_t FutureLimit() const;
  absl::Status CommitFlush(Source* input);
  // CommitFlush for a store with writer slots: one SlotStore::CommitSlot per slot that took
  // rows or has a checkpoint entry since the last flush.
  absl::Status CommitSlots(Source* input);
  // The index of the writer slot of `lane`, registered on first use. Called under the input
  // lock or on the coordinating thread between phases.
  uint32_t SlotIndex(const std::string& lane);
  void PublishMetrics();

  const sql::SourceDef& source_;
  std::vector<const ViewRuntime*> views_;
  store::TileStore* store_;
  int64_t base_retention_ms_ = 0;  // the store's base-tile retention (engine/retention.h), 0: none
  // Non-null when the store takes flushes through writer slots (one per lane of the source):
  // the open tiles then keep each slot's rows apart (keys tagged by slot, flusher.h) and reads
  // never merge open tiles (they see what the slots committed).
  store::SlotStore* slots_;
  std::vector<std::string> slot_names_;                      // by slot index
  std::vector<std::string> slot_lanes_;                      // by slot index
  absl::flat_hash_map<std::string, uint32_t> slot_of_lane_;  // lane -> slot index
  std::vector<uint8_t> slot_touched_;  // per slot: took a chunk since the last flush
  const size_t max_key_bytes_;         // longer keys are counted as key_too_long
  PipelineOptions options_;
  int threads_;

  Watermark watermark_;
  std::vector<std::string> active_lanes_;       // scratch for Source::ActiveLanes
  std::vector<std::string> last_active_lanes_;  // the active lanes of the previous round
  std::vector<std::string> claimed_lanes_;      // scratch for Source::TakeClaimedLanes
  OpenTiles open_tiles_;
  PipelineMetrics metrics_;
  std::vector<size_t> view_open_tiles_;  // PublishMetrics' per-view figures (reused)
  std::vector<size_t> view_open_tile_bytes_;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> open_tile_bytes_{0};
  std::atomic<int64_t> watermark_ms_{Watermark::kNone};  // watermark_ms()
  // Per view: the store holds no tile of it starting after this (FlushShard's stored_until_ms).
  std::vector<int64_t> stored_until_;
  // Per worker, per view: the newest base tile start of the shards it flushed (this flush).
  std::vector<std::vector<int64_t>> flushed_until_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<FlushOutput> flush_out_;  // per worker
  PendingRollups pending_rollups_;
  std::vector<std::vector<OwedRollup>> owed_work_;  // per worker: owed rollups to build
  // Owed rollups taken for the flush being built, and the memory per owed rollup of the last
  // flush that built some (0: none yet), for FinalOwedRound.
  size_t owed_taken_ = 0;
  size_t bytes_per_owed_ = 0;
  store::WriteBatch flush_meta_;  // metadata changes of the next commit (owed-rollup markers)
  std::vector<FlushStats> flush_stats_per_worker_;
  // Spill runs: whether this run may start them, and the state while there are any.
  bool spill_allowed_ = false;
  std::optional<SpillState> spill_;
  std::vector<size_t> spill_views_;  // spill_->views[i] is views_[spill_views_[i]]

  SourceCounters source_counters_;
  std::vector<ViewCounters> view_counters_;
  FlushStats flush_stats_;
  int64_t fenced_commits_ = 0;
  RejectSink reject_sink_;
  std::mutex reject_mu_;
  std::function<void(const SourceCounters&, bool flushing)> progress_;
};

}  // namespace tessera::engine
