#include "common/output_file.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <utility>

#include "common/errors.h"
#include "common/status_macros.h"

namespace tessera {

// Turns uncompressed bytes into the bytes of the file.
class OutputFile::Encoder {
 public:
  virtual ~Encoder() = default;
  // Appends the encoding of all of `in` to `out`; `finish` ends the stream after it.
  virtual absl::Status Encode(std::string_view in, bool finish, std::string* out) = 0;
};

namespace {

constexpr size_t kEncodeChunkBytes = 64 * 1024;

absl::Status ErrnoError(std::string_view what, const std::string& path, int err) {
  const std::string msg = fmt::format("cannot {} '{}': {}", what, path, std::strerror(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(msg);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(msg);
    default:
      return absl::FailedPreconditionError(msg);
  }
}

class GzipEncoder final : public OutputFile::Encoder {
 public:
  ~GzipEncoder() override {
    if (initialized_) deflateEnd(&zs_);
  }

  absl::Status Init() {
    // 16 + MAX_WBITS: a gzip header and trailer rather than zlib's.
    if (deflateInit2(&zs_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
      return Internal("cannot initialise zlib");
    }
    initialized_ = true;
    return absl::OkStatus();
  }

  absl::Status Encode(std::string_view in, bool finish, std::string* out) override {
    // REQUIRES (kBufferBytes): `in` fits in uInt.
    zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs_.avail_in = static_cast<uInt>(in.size());
    char chunk[kEncodeChunkBytes];
    while (true) {
      zs_.next_out = reinterpret_cast<Bytef*>(chunk);
      zs_.avail_out = sizeof(chunk);
      const int rc = deflate(&zs_, finish ? Z_FINISH : Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
        return Internal("zlib deflate failed: {}", zs_.msg != nullptr ? zs_.msg : zError(rc));
      }
      out->append(chunk, sizeof(chunk) - zs_.avail_out);
      if (finish ? rc == Z_STREAM_END : zs_.avail_in == 0 && zs_.avail_out > 0) break;
    }
    return absl::OkStatus();
  }

 private:
  z_stream zs_{};
  bool initialized_ = false;
};

class ZstdEncoder final : public OutputFile::Encoder {
 public:
  ZstdEncoder() : cctx_(ZSTD_createCCtx()) {}
  ~ZstdEncoder() override { ZSTD_freeCCtx(cctx_); }
  ZstdEncoder(const ZstdEncoder&) = delete;
  ZstdEncoder& operator=(const ZstdEncoder&) = delete;

  absl::Status Init() {
    if (cctx_ == nullptr ||
        ZSTD_isError(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, 3)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1))) {
      return Internal("cannot initialise zstd");
    }
    return absl::OkStatus();
  }

  absl::Status Encode(std::string_view in, bool finish, std::string* out) override {
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    char chunk[kEncodeChunkBytes];
    while (true) {
      ZSTD_outBuffer output{chunk, sizeof(chunk), 0};
      const size_t rc =
          ZSTD_compressStream2(cctx_, &output, &input, finish ? ZSTD_e_end : ZSTD_e_continue);
      if (ZSTD_isError(rc)) return Internal("zstd compression failed: {}", ZSTD_getErrorName(rc));
      out->append(chunk, output.pos);
      if (finish ? rc == 0 : input.pos == input.size) break;
    }
    return absl::OkStatus();
  }

 private:
  ZSTD_CCtx* cctx_;
};

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

absl::StatusOr<std::unique_ptr<OutputFile>> OutputFile::Create(const std::string& path) {
  if (path.empty() || path.back() == '/') {
    return InvalidArgument("output path '{}' does not name a file", path);
  }
  Compression compression = Compression::kNone;
  std::unique_ptr<Encoder> encoder;
  if (EndsWith(path, ".gz")) {
    auto gzip = std::make_unique<GzipEncoder>();
    TESSERA_RETURN_IF_ERROR(gzip->Init());
    compression = Compression::kGzip;
    encoder = std::move(gzip);
  } else if (EndsWith(path, ".zst")) {
    auto zstd = std::make_unique<ZstdEncoder>();
    TESSERA_RETURN_IF_ERROR(zstd->Init());
    compression = Compression::kZstd;
    encoder = std::move(zstd);
  }

  std::random_device random;
  std::string tmp_path;
  int fd = -1;
  // O_EXCL: a name taken by another writer (or a stale leftover) is never reused; retry another.
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    const uint64_t tag = (uint64_t{random()} << 32) | random();
    tmp_path = fmt::format("{}.tmp-{}-{:016x}", path, ::getpid(), tag);
    fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST && errno != EINTR) return ErrnoError("create", path, errno);
  }
  if (fd < 0) return ErrnoError("create", path, EEXIST);
  return std::unique_ptr<OutputFile>(
      new OutputFile(path, std::move(tmp_path), fd, compression, std::move(encoder)));
}

OutputFile::OutputFile(std::string path, std::string tmp_path, int fd, Compression compression,
                       std::unique_ptr<Encoder> encoder)
    : path_(std::move(path)),
      tmp_path_(std::move(tmp_path)),
      fd_(fd),
      compression_(compression),
      encoder_(std::move(encoder)) {
  buffer_.reserve(kBufferBytes);
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_path_.c_str());
}

absl::Status OutputFile::Write(std::string_view bytes) {
  if (commit_called_) return FailedPrecondition("'{}': write after Commit()", path_);
  TESSERA_RETURN_IF_ERROR(status_);
  bytes_written_ += bytes.size();
  while (!bytes.empty()) {
    const size_t n = std::min(bytes.size(), kBufferBytes - buffer_.size());
    buffer_.append(bytes.substr(0, n));
    bytes.remove_prefix(n);
    if (buffer_.size() == kBufferBytes) TESSERA_RETURN_IF_ERROR(Flush(/*finish=*/false));
  }
  return absl::OkStatus();
}

absl::Status OutputFile::Commit() {
  if (commit_called_) return FailedPrecondition("'{}': Commit() called twice", path_);
  commit_called_ = true;
  TESSERA_RETURN_IF_ERROR(status_);
  TESSERA_RETURN_IF_ERROR(Flush(/*finish=*/true));
  if (::fsync(fd_) != 0) return Fail(ErrnoError("sync", path_, errno));
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) return Fail(ErrnoError("write", path_, errno));
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    return Fail(ErrnoError("rename the finished file onto", path_, errno));
  }
  committed_ = true;
  // The rename is durable only once the directory is synced.
  const std::string dir = DirectoryOf(path_);
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return Fail(ErrnoError("open the directory of", path_, errno));
  const int rc = ::fsync(dir_fd);
  const int err = errno;
  ::close(dir_fd);
  if (rc != 0) return Fail(ErrnoError("sync the directory of", path_, err));
  return absl::OkStatus();
}

absl::Status OutputFile::Flush(bool finish) {
  if (encoder_ == nullptr) {
    TESSERA_RETURN_IF_ERROR(WriteAll(buffer_));
  } else {
    encoded_.clear();
    absl::Status s = encoder_->Encode(buffer_, finish, &encoded_);
    if (!s.ok()) return Fail(Annotate(s, fmt::format("'{}'", path_)));
    TESSERA_RETURN_IF_ERROR(WriteAll(encoded_));
  }
  buffer_.clear();
  return absl::OkStatus();
}

absl::Status OutputFile::WriteAll(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(ErrnoError("write", path_, errno));
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status OutputFile::Fail(absl::Status status) {
  if (status_.ok()) status_ = status;
  return status;
}

}  // namespace tessera
