#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/ingest_pipeline.h"
#include "source/file/line_reader.h"

namespace tessera::engine {

// A ChunkSource over in-memory NDJSON text, split into chunks of about `chunk_lines` lines.
// Records each checkpoint as meta "test/position" = lines handed out.
class StringChunkSource final : public ChunkSource {
 public:
  StringChunkSource(std::vector<std::string> lines, size_t chunk_lines)
      : lines_(std::move(lines)), chunk_lines_(chunk_lines) {}

  absl::StatusOr<Next> NextChunk(source::Chunk* chunk, int64_t* first_line,
                                 std::string* input_name) override {
    if (next_ >= lines_.size()) return Next::kEnd;
    std::string data;
    size_t end = std::min(lines_.size(), next_ + chunk_lines_);
    for (size_t i = next_; i < end; ++i) data += lines_[i] + "\n";
    chunk->Assign(data, 0);
    *first_line = static_cast<int64_t>(next_) + 1;
    *input_name = "memory";
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

// A live ChunkSource: lines pushed by a test thread; kIdle while nothing is queued, kEnd after
// Close() once drained. Thread-safe.
class LiveChunkSource final : public ChunkSource {
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
  absl::StatusOr<Next> NextChunk(source::Chunk* chunk, int64_t* first_line,
                                 std::string* input_name) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.empty()) return closed_ ? Next::kEnd : Next::kIdle;
    std::string data;
    for (int i = 0; i < 50 && !queue_.empty(); ++i) {
      data += queue_.front() + "\n";
      queue_.pop_front();
    }
    chunk->Assign(data, 0);
    *first_line = 1;
    *input_name = "live";
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
