#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "source/format/line_reader.h"
#include "source/source.h"
#include "store/tile_store.h"

namespace tessera::source {

struct StdinOptions {
  // Target size of one chunk (larger only when a single line is longer).
  size_t chunk_bytes = size_t{1} << 20;
  // A line longer than this (without its newline) fails NextChunk() with ResourceExhausted.
  size_t max_line_bytes = size_t{64} << 20;
};

// `connector = 'stdin'` for `tessera run`: NDJSON lines read from a file descriptor (standard
// input in production, a pipe in tests), uncompressed.
//
// NextChunk() never blocks: it poll()s the descriptor, so when no complete line is there it
// returns kIdle and the pipeline keeps flushing on its interval. Only complete lines are handed
// out while the stream is open; at end of file a final line without '\n' counts as a line, and
// then NextChunk() returns kEnd (the pipeline flushes and ends).
//
// No checkpoint: standard input cannot be replayed, so a restart does not replay it; rows read
// but not yet flushed when the process dies are lost. Use connector = 'file' or 'http' when
// every row must survive a crash.
//
// Does not own the descriptor. Not thread-safe: the pipeline never overlaps calls.
class StdinChunkSource final : public Source {
 public:
  explicit StdinChunkSource(int fd, StdinOptions options = {});

  absl::StatusOr<Next> NextChunk(Chunk* chunk, ChunkOrigin* origin) override;
  // Blocks in poll() until the descriptor is readable (or closed) or `max_wait` passed.
  void WaitForData(std::chrono::milliseconds max_wait) override;
  // Records nothing (see the class comment).
  void AddCheckpoint(store::WriteBatch* batch) override {}

 private:
  // Reads what is available without blocking into buffer_. Returns false if nothing was
  // readable (end of file sets eof_ and returns true).
  absl::StatusOr<bool> ReadAvailable();

  const int fd_;
  StdinOptions options_;
  std::string buffer_;   // bytes read but not handed out (no '\n' among the first scanned_)
  size_t scanned_ = 0;   // prefix of buffer_ known to hold no '\n'
  uint64_t offset_ = 0;  // stream offset of buffer_[0]
  int64_t lines_ = 0;    // lines handed out
  bool eof_ = false;
  bool done_ = false;
};

}  // namespace tessera::source
