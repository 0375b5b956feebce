#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/statusor.h"
#include "source/format/line_reader.h"

namespace tessera::source {

// A LineReader that reads (and decompresses) the next chunk on a thread of its own while the
// caller works on the current one. Returns exactly what the wrapped reader's Next() would, in
// the same order, including its failure after the lines before it. Holds one chunk more than
// the caller. Not thread-safe (one caller), like LineReader.
class ReadAheadLineReader {
 public:
  explicit ReadAheadLineReader(std::unique_ptr<LineReader> reader);
  ~ReadAheadLineReader();  // waits for a read in progress
  ReadAheadLineReader(const ReadAheadLineReader&) = delete;
  ReadAheadLineReader& operator=(const ReadAheadLineReader&) = delete;

  // As LineReader::Next. `chunk`'s buffer is kept and refilled in the background.
  absl::StatusOr<bool> Next(Chunk* chunk);

 private:
  void Loop();

  std::unique_ptr<LineReader> reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  Chunk ahead_;                  // filled by the thread while `want_`
  bool want_ = true;             // the thread should fill ahead_
  bool ready_ = false;           // ahead_ and result_ hold the next Next()'s answer
  absl::StatusOr<bool> result_;  // of the read into ahead_
  bool stop_ = false;
  std::thread thread_;  // last: starts once the rest is constructed
};

}  // namespace tessera::source
