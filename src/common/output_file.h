#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tessera {

// A file that appears complete or not at all. Bytes go to a temporary file beside the target
// ("<path>.tmp-<pid>-<random>"), compressed by the target's suffix: ".gz" gzip (zlib, default
// level), ".zst" zstd (level 3, with a content checksum), anything else plain. Commit() finishes
// the stream, fsyncs the file, renames it over `path` (atomically replacing an existing file) and
// fsyncs the directory; destroying an OutputFile that was not committed removes the temporary
// file, so a failed or abandoned run leaves `path` as it was.
//
// Errors name `path` (not the temporary name) and the OS error, e.g. "cannot create
// 'x/out.ndjson.gz': No such file or directory". After a failed Write() or Commit() the object
// only reports that error again; the temporary file goes when it is destroyed.
// Not thread-safe.
class OutputFile {
 public:
  enum class Compression { kNone, kGzip, kZstd };

  // Uncompressed bytes buffered before they are compressed and written.
  static constexpr size_t kBufferBytes = size_t{1} << 20;

  // Creates the temporary file. InvalidArgument for an empty path or one ending in '/';
  // NotFound when the directory does not exist; PermissionDenied when it is not writable.
  static absl::StatusOr<std::unique_ptr<OutputFile>> Create(const std::string& path);

  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // Appends `bytes` (buffered). REQUIRES: Commit() was not called.
  absl::Status Write(std::string_view bytes);

  // Publishes the file at path(). REQUIRES: called at most once (a second call fails with
  // FailedPrecondition, whatever the first returned).
  absl::Status Commit();

  // Uncompressed bytes accepted by Write() so far.
  uint64_t bytes_written() const { return bytes_written_; }
  const std::string& path() const { return path_; }
  Compression compression() const { return compression_; }

  class Encoder;  // compressing stage (internal)

 private:
  OutputFile(std::string path, std::string tmp_path, int fd, Compression compression,
             std::unique_ptr<Encoder> encoder);

  // Encodes and writes the buffer; `finish` also ends the compressed stream.
  absl::Status Flush(bool finish);
  absl::Status WriteAll(std::string_view bytes);
  absl::Status Fail(absl::Status status);

  std::string path_;
  std::string tmp_path_;
  int fd_;
  Compression compression_;
  std::unique_ptr<Encoder> encoder_;  // null for kNone
  std::string buffer_;                // uncompressed bytes not yet encoded
  std::string encoded_;               // scratch for compressed bytes
  uint64_t bytes_written_ = 0;
  absl::Status status_;  // the first failure; sticky
  bool commit_called_ = false;
  bool committed_ = false;
};

}  // namespace tessera
