#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "source/file/line_reader.h"
#include "store/tile_store.h"

namespace tessera::source {

// Where an ingest pipeline's input comes from: chunks of complete NDJSON lines, in stream order.
// NextChunk() is called by one thread at a time; the other methods from the pipeline's
// coordinating thread.
class ChunkSource {
 public:
  enum class Next { kChunk, kIdle, kEnd };

  virtual ~ChunkSource() = default;
  // Fills `chunk` with the next lines (kChunk), or says there is nothing now but may be later
  // (kIdle: live sources) or never again (kEnd). `first_line` receives the 1-based line number
  // of the chunk's first line in its input (for error messages).
  virtual absl::StatusOr<Next> NextChunk(Chunk* chunk, int64_t* first_line,
                                         std::string* input_name) = 0;
  // After kIdle: blocks until data may be available or `max_wait` passed.
  virtual void WaitForData(std::chrono::milliseconds max_wait) {}
  // Adds to `batch` the metadata that records "everything handed out so far is in the tiles"
  // (e.g. file offsets, a log position). Called at each flush, after every chunk handed out was
  // aggregated; the batch is written atomically with the tiles.
  virtual void AddCheckpoint(store::WriteBatch* batch) = 0;
  // Called after the batch of the last AddCheckpoint() is durable (e.g. to trim a log).
  virtual void Committed() {}
  // Called from the coordinating thread once every chunk handed out so far is visible to reads
  // (its rows are in the open tiles or the store, or were dropped as late). Lets a source tell
  // its producers when their rows can be read (read-your-writes).
  virtual void Aggregated() {}
};

}  // namespace tessera::source
