#pragma once

#include <memory>
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

}  // namespace tessera::engine
