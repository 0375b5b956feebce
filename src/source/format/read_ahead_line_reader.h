#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "source/format/line_reader.h"

namespace tessera::source {

// A LineReader that reads (and decompresses) up to `depth` chunks ahead on a thread of its own
// while the callers work on earlier ones. Returns exactly what the wrapped reader's Next() would,
// in the same order, including its failure after the lines before it. Holds up to `depth` chunks
// more than the caller. Not thread-safe (one caller at a time), like LineReader.
class ReadAheadLineReader {
 public:
  ReadAheadLineReader(std::unique_ptr<LineReader> reader, size_t depth);
  ~ReadAheadLineReader();  // waits for a read in progress
  ReadAheadLineReader(const ReadAheadLineReader&) = delete;
  ReadAheadLineReader& operator=(const ReadAheadLineReader&) = delete;

  // As LineReader::Next. `chunk`'s old buffer is kept and refilled in the background.
  absl::StatusOr<bool> Next(Chunk* chunk);

 private:
  struct Read {
    Chunk chunk;
    absl::StatusOr<bool> result;
  };
  void Loop();

  const std::unique_ptr<LineReader> reader_;
  const size_t depth_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Read> ready_;    // read, not yet returned; the last one ends the stream if
                              // its result is not `true`
  std::vector<Chunk> spare_;  // buffers to read into
  bool finished_ = false;     // the reader said false or failed: no more reads
  bool stop_ = false;
  std::thread thread_;  // last: starts once the rest is constructed
};

}  // namespace tessera::source
