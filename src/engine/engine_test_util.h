#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/column.h"
#include "common/hash.h"
#include "engine/ingest_pipeline.h"
#include "engine/tile_shard.h"
#include "source/format/line_reader.h"
#include "tile/tile_layout.h"

namespace tessera::engine {

// The catalog of `store` with `sql` registered: the SetUp of the engine's test fixtures.
// Returns null (with a test failure) when either step fails.
inline std::unique_ptr<CatalogStore> RegisterCatalog(store::TileStore* store,
                                                     std::string_view sql) {
  absl::StatusOr<std::unique_ptr<CatalogStore>> cs = CatalogStore::Load(store);
  if (!cs.ok()) {
    ADD_FAILURE() << cs.status();
    return nullptr;
  }
  absl::StatusOr<std::vector<std::string>> views = (*cs)->Register(sql);
  if (!views.ok()) {
    ADD_FAILURE() << views.status();
    return nullptr;
  }
  return *std::move(cs);
}

// Adds `arg`'s rows (all of them) to `block` as the pipeline does: every aggregate with an
// argument reads `arg` (SUM_BY as x and as the bucket), COUNT(*) and the engine's slots read
// nothing. Row i's event time is ts_ms[i].
inline void AddRowsToBlock(const ViewRuntime& view, std::byte* block, const Column& arg,
                           const std::vector<int64_t>& ts_ms) {
  const uint32_t n = static_cast<uint32_t>(arg.size());
  const tile::TileLayout& layout = *view.layout;
  std::vector<uint32_t> rows(n);
  for (uint32_t i = 0; i < n; ++i) rows[i] = i;
  std::vector<std::byte*> states(n);
  for (size_t a = 0; a < layout.num_slots(); ++a) {
    for (auto& s : states) s = block + layout.offset(a);
    const bool has_arg = a < view.def->aggregates.size() && view.def->aggregates[a].arg;
    const bool has_arg2 = has_arg && view.def->aggregates[a].arg2;  // SUM_BY: `arg` as the bucket
    const agg::AggArgs args(has_arg ? &arg : nullptr, has_arg2 ? &arg : nullptr);
    layout.agg(a).AddBatch(states.data(), args, ts_ms.data(), rows.data(), n);
  }
}

// The same with every row at `ts_ms`.
inline void AddRowsToBlock(const ViewRuntime& view, std::byte* block, const Column& arg,
                           int64_t ts_ms) {
  AddRowsToBlock(view, block, arg, std::vector<int64_t>(arg.size(), ts_ms));
}

// An int64 column of `values` (no NULLs).
inline Column Int64Column(const std::vector<int64_t>& values) {
  Column c;
  c.Reset(DataType::kInt64, values.size());
  for (size_t i = 0; i < values.size(); ++i) c.SetValue(i, Value::Int64(values[i]), nullptr);
  return c;
}

// Adds rows with `values` to the open tile (key, start) of `shard`.
inline void AddToShard(const ViewRuntime& view, TileShard* shard, std::string_view key,
                       int64_t start_ms, const std::vector<int64_t>& values) {
  std::byte* block = shard->FindOrCreate(key, Hash64(key), start_ms);
  AddRowsToBlock(view, block, Int64Column(values), start_ms);
}

// The encoded tile of rows with `values`.
inline std::string TileOf(const ViewRuntime& view, const std::vector<int64_t>& values,
                          int64_t start_ms) {
  tile::OwnedBlock block(*view.layout);
  AddRowsToBlock(view, block.data(), Int64Column(values), start_ms);
  std::string out;
  view.layout->Serialize(block.data(), &out);
  return out;
}

// A Source over in-memory NDJSON text, split into chunks of about `chunk_lines` lines.
// Records each checkpoint as meta "test/position" = lines handed out.
class StringChunkSource final : public Source {
 public:
  StringChunkSource(std::vector<std::string> lines, size_t chunk_lines)
      : lines_(std::move(lines)), chunk_lines_(chunk_lines) {}

  absl::StatusOr<Next> NextChunk(source::Chunk* chunk, source::ChunkOrigin* origin) override {
    if (next_ >= lines_.size()) return Next::kEnd;
    std::string data;
    size_t end = std::min(lines_.size(), next_ + chunk_lines_);
    for (size_t i = next_; i < end; ++i) data += lines_[i] + "\n";
    chunk->Assign(data, 0);
    origin->first_line = static_cast<int64_t>(next_) + 1;
    origin->input = "memory";
    next_ = end;
    return Next::kChunk;
  }
  void AddCheckpoint(store::WriteBatch* batch) override {
    batch->meta.emplace_back("test/position", std::to_string(next_));
    ++checkpoints_;
  }
  int checkpoints() const { return checkpoints_; }

 private:
  std::vector<std::string> lines_;
  size_t chunk_lines_;
  size_t next_ = 0;
  int checkpoints_ = 0;
};

// A live Source: lines pushed by a test thread; kIdle while nothing is queued, kEnd after
// Close() once drained. Thread-safe.
class LiveChunkSource final : public Source {
 public:
  void Push(std::vector<std::string> lines) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& l : lines) queue_.push_back(std::move(l));
    cv_.notify_all();
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }
  absl::StatusOr<Next> NextChunk(source::Chunk* chunk, source::ChunkOrigin* origin) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.empty()) return closed_ ? Next::kEnd : Next::kIdle;
    std::string data;
    for (int i = 0; i < 50 && !queue_.empty(); ++i) {
      data += queue_.front() + "\n";
      queue_.pop_front();
    }
    chunk->Assign(data, 0);
    origin->first_line = 1;
    origin->input = "live";
    return Next::kChunk;
  }
  void WaitForData(std::chrono::milliseconds max_wait) override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, max_wait, [&] { return !queue_.empty() || closed_; });
  }
  void AddCheckpoint(store::WriteBatch* batch) override {}

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  bool closed_ = false;
};

}  // namespace tessera::engine
