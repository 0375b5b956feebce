#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "source/format/line_reader.h"
#include "source/source.h"
#include "store/tile_store.h"

namespace tessera::source {

struct FollowOptions {
  // Target size of one chunk; a chunk ends at the last '\n' that fits (larger only when a single
  // line is longer).
  size_t chunk_bytes = size_t{1} << 20;
  // A line longer than this (without its newline) fails NextChunk() with ResourceExhausted.
  size_t max_line_bytes = size_t{64} << 20;
  // How often WaitForData() looks for growth (file sizes, new files in the directory).
  std::chrono::milliseconds poll_interval{50};
};

// `connector = 'file'` for `tessera run`: follows `path`, a file or a directory, like `tail -F`.
//
// - A file is read from its stored offset and then polled for growth.
// - A directory: its regular files named *.ndjson, *.json or *.jsonl (not starting with '.') are
//   read in name order, including files that appear later. Each NextChunk() reads from the first
//   file, in name order, that has new complete lines, so a file still being appended to is
//   drained before the next one; the directory is rescanned whenever every known file is caught
//   up and at each WaitForData() poll.
// - Only complete lines are handed out (up to the last '\n'): a partial last line waits until
//   its newline arrives. A file that ends without a final '\n' therefore leaves its last line
//   unread; writers must end every line, including the last.
// - Checkpoint: per file, the byte offset handed out, as metadata
//   store::meta::FollowOffsetKey ("file-follow/<source>/<absolute path>") = decimal offset,
//   written atomically with the tiles.
//   Create() reads them back, so a restart resumes exactly where the tiles end: nothing is lost
//   or aggregated twice.
// - Files may only grow. A file that shrinks below the offset handed out (truncated, or replaced
//   by a shorter one), or that is replaced by another file (different inode) while followed, or
//   that disappears in single-file mode, fails NextChunk() with FailedPrecondition naming it:
//   copytruncate-style or rename-and-recreate rotation is not supported; rotate by writing new
//   files into a followed directory instead. (A replacement while the process is down is only
//   detected if the new file is shorter than the stored offset.)
// - Compressed files (.gz, .zst, … by name, or gzip/zstd magic bytes) are refused with
//   FailedPrecondition: a growing compressed stream cannot be split at line boundaries safely.
//   Replay them with `tessera backfill`.
//
// Line numbers in rejection messages count from the point where this process started reading a
// file; the input name says so when that point is not the file's start.
//
// Not thread-safe: the pipeline never overlaps calls (Source contract).
class FollowChunkSource final : public Source {
 public:
  // Follows `path` (relative paths are resolved against the working directory) for the source
  // named `source`, resuming from the offsets stored in `meta` (the tile store). `meta` is only
  // read here. NotFound if `path` does not exist; FailedPrecondition if it is a compressed file
  // or neither a regular file nor a directory; DataLoss if a stored offset is corrupt.
  static absl::StatusOr<std::unique_ptr<FollowChunkSource>> Create(store::TileStore* meta,
                                                                   std::string source,
                                                                   std::string path,
                                                                   FollowOptions options = {});
  ~FollowChunkSource() override;
  FollowChunkSource(const FollowChunkSource&) = delete;
  FollowChunkSource& operator=(const FollowChunkSource&) = delete;

  // kChunk with the next complete lines of the first file that has some; kIdle when every file
  // is caught up. Never kEnd: a followed path may always grow.
  absl::StatusOr<Next> NextChunk(Chunk* chunk, ChunkOrigin* origin) override;
  // Sleeps in steps of poll_interval until some file grew, a new file appeared, or `max_wait`
  // passed.
  void WaitForData(std::chrono::milliseconds max_wait) override;
  // Adds FollowOffsetKey(source, absolute path) = offset for every file whose offset changed
  // since the previous call.
  void AddCheckpoint(store::WriteBatch* batch) override;

  // The offset handed out so far for `absolute_path`, or -1 if the file is not known (tests).
  int64_t offset(std::string_view absolute_path) const;

 private:
  struct FileState {
    std::string path;               // absolute
    uint64_t offset = 0;            // bytes handed out (a line start)
    uint64_t resumed_from = 0;      // offset when this process started reading it
    int64_t lines = 0;              // lines handed out since resumed_from
    uint64_t no_newline_until = 0;  // file size at which the bytes after offset held no '\n'
    bool dirty = false;             // offset changed since the last checkpoint
    bool magic_checked = false;     // first bytes checked for compression
    bool have_identity = false;     // dev/ino below are set (the file was opened)
    dev_t dev = 0;
    ino_t ino = 0;
  };

  FollowChunkSource(std::string source, std::string path, bool directory, FollowOptions options)
      : source_(std::move(source)),
        path_(std::move(path)),
        directory_(directory),
        options_(options) {}

  // Adds files of the directory not seen before, keeping files_ in name order. Returns true if
  // any was added.
  absl::StatusOr<bool> ScanDirectory();
  // Fills `chunk` from `f` if it has new complete lines (returns true).
  absl::StatusOr<bool> ReadFrom(FileState* f, Chunk* chunk);
  // True if some file may have new complete lines or a new file appeared (cheap stat calls).
  bool HasNewData();
  void CloseFd();

  const std::string source_;
  const std::string path_;  // absolute
  const bool directory_;
  const FollowOptions options_;
  std::vector<FileState> files_;  // in name order
  // Offsets read from the store at Create(), for files not yet in files_ (directory mode).
  std::map<std::string, uint64_t> stored_;
  int fd_ = -1;               // open file (at most one, the one read last)
  std::string fd_path_;       // its path
  std::vector<char> buffer_;  // read buffer, reused
};

}  // namespace tessera::source
