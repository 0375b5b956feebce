#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tessera::source {

// Bytes readable after the end of a Chunk's data (>= simdjson::SIMDJSON_PADDING), so a JSON
// parser may read past the end of any line in the chunk without copying it.
inline constexpr size_t kChunkPadding = 64;

// A run of complete lines of an uncompressed byte stream. The buffer is owned by the Chunk and
// reused: refilling a Chunk whose capacity is already large enough allocates nothing.
// Invariant: at least kChunkPadding readable (zero-initialised or stale) bytes follow data().
// Not thread-safe.
class Chunk {
 public:
  Chunk() = default;
  Chunk(const Chunk&) = delete;
  Chunk& operator=(const Chunk&) = delete;
  Chunk(Chunk&&) = default;
  Chunk& operator=(Chunk&&) = default;

  const char* data() const { return buf_.get(); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const { return {buf_.get(), size_}; }
  // Readable bytes after data() + size(); always >= kChunkPadding once the chunk holds data.
  size_t padding() const { return capacity_ - size_; }
  // Uncompressed byte offset of data()[0] in the stream (skipped bytes included), so a reader
  // reopened with skip_bytes = offset() + size() resumes right after this chunk.
  uint64_t offset() const { return offset_; }
  uint64_t end_offset() const { return offset_ + size_; }

  // Replaces the contents with a copy of `data` (tests, benchmarks, in-memory sources).
  void Assign(std::string_view data, uint64_t offset = 0);
  void Clear() {
    size_ = 0;
    offset_ = 0;
  }

 private:
  friend class LineReader;
  // Ensures room for `n` data bytes plus padding, keeping the first size_ bytes.
  void Reserve(size_t n);
  char* mutable_data() { return buf_.get(); }

  std::unique_ptr<char[]> buf_;
  size_t capacity_ = 0;  // bytes allocated in buf_
  size_t size_ = 0;
  uint64_t offset_ = 0;
};

struct LineReaderOptions {
  // Target size of one chunk; a chunk ends at the last '\n' that fits, so it is usually a bit
  // smaller, and larger only when a single line is longer.
  size_t chunk_bytes = size_t{1} << 20;
  // Cap on how far a chunk grows to hold one line: a line that does not fit in chunk_bytes and
  // is longer than this (without its newline) fails Next() with ResourceExhausted.
  size_t max_line_bytes = size_t{64} << 20;
};

// Reads a file (plain, gzip including multi-member, or zstd, detected by magic bytes) or stdin
// ("-") as chunks of complete lines. A final line without '\n' is returned as a line.
// Errors name the path and the position. When the stream fails part way (a truncated or corrupt
// compressed file, a read error), the complete lines before the failure are returned first and
// Next() fails after them (and on every later call); the bytes after the last '\n' before the
// failure are never returned. Not thread-safe; one reader per thread.
class LineReader {
 public:
  enum class Compression { kNone, kGzip, kZstd };

  // Opens `path` and discards its first `skip_bytes` uncompressed bytes (resume point: the
  // end_offset() of the last chunk fully processed). REQUIRES: skip_bytes is 0 or a line start.
  // NotFound if the file is missing; OutOfRange if the stream is shorter than skip_bytes.
  static absl::StatusOr<std::unique_ptr<LineReader>> Open(const std::string& path,
                                                          uint64_t skip_bytes = 0,
                                                          const LineReaderOptions& options = {});

  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Fills `chunk` with the next complete lines and returns true, or returns false at the end of
  // the stream (and on every later call). `chunk` may be reused across calls (and should be, so a
  // steady loop does not allocate).
  absl::StatusOr<bool> Next(Chunk* chunk);

  const std::string& path() const { return path_; }
  Compression compression() const;
  // Uncompressed offset of the first byte not yet returned in a chunk.
  uint64_t offset() const { return offset_; }

  class Input;  // decompressing byte stream (internal)

 private:
  LineReader(std::string path, std::unique_ptr<Input> input, uint64_t offset,
             const LineReaderOptions& options);

  std::string path_;
  std::unique_ptr<Input> input_;
  LineReaderOptions options_;
  uint64_t offset_;
  std::vector<char> carry_;  // bytes after the last '\n' of the previous chunk
  bool eof_ = false;         // input exhausted (or failed)
  absl::Status read_error_;  // the input's failure, returned once the lines before it are out
  bool done_ = false;        // every byte returned
};

}  // namespace tessera::source
