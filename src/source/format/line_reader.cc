#include "source/format/line_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "common/errors.h"
#include "common/status_macros.h"

namespace tessera::source {

void Chunk::Reserve(size_t n) {
  if (n > SIZE_MAX - kChunkPadding) n = SIZE_MAX - kChunkPadding;  // unreachable in practice
  const size_t needed = n + kChunkPadding;
  if (needed <= capacity_) return;
  size_t cap = std::max(needed, capacity_ + capacity_ / 2);
  // Value-initialised so the padding is never uninitialised memory.
  std::unique_ptr<char[]> fresh(new char[cap]());
  if (size_ > 0) std::memcpy(fresh.get(), buf_.get(), size_);
  buf_ = std::move(fresh);
  capacity_ = cap;
}

void Chunk::Assign(std::string_view data, uint64_t offset) {
  size_ = 0;
  Reserve(data.size());
  if (!data.empty()) std::memcpy(buf_.get(), data.data(), data.size());
  size_ = data.size();
  offset_ = offset;
}

namespace {

constexpr size_t kInputBufferBytes = 256 * 1024;

// A readable file descriptor plus bytes already peeked from it (the magic number).
class RawFile {
 public:
  RawFile(std::string path, int fd, bool owned) : path_(std::move(path)), fd_(fd), owned_(owned) {}
  ~RawFile() {
    if (owned_ && fd_ >= 0) ::close(fd_);
  }
  RawFile(const RawFile&) = delete;
  RawFile& operator=(const RawFile&) = delete;

  // Reads up to n bytes; 0 means end of file.
  absl::StatusOr<size_t> Read(char* dst, size_t n) {
    if (n == 0) return size_t{0};
    if (prefix_pos_ < prefix_.size()) {
      size_t k = std::min(n, prefix_.size() - prefix_pos_);
      std::memcpy(dst, prefix_.data() + prefix_pos_, k);
      prefix_pos_ += k;
      consumed_ += k;
      return k;
    }
    for (;;) {
      ssize_t r = ::read(fd_, dst, n);
      if (r >= 0) {
        consumed_ += static_cast<uint64_t>(r);
        return static_cast<size_t>(r);
      }
      if (errno == EINTR) continue;
      return Internal("{}: read failed at byte {}: {}", path_, consumed_, std::strerror(errno));
    }
  }

  // Reads up to `n` bytes ahead without consuming them (stops early only at end of file).
  absl::StatusOr<std::string_view> Peek(size_t n) {
    std::string buf(n, '\0');
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::read(fd_, buf.data() + got, n - got);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Internal("{}: read failed: {}", path_, std::strerror(errno));
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    buf.resize(got);
    prefix_ = std::move(buf);
    prefix_pos_ = 0;
    return std::string_view(prefix_);
  }

  // Skips n bytes cheaply when the file is seekable; returns false if it is not (caller reads).
  absl::StatusOr<bool> TrySeekForward(uint64_t n) {
    struct stat st;
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) return false;
    const uint64_t prefix_left = prefix_.size() - prefix_pos_;
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (consumed_ + n > size) {
      return OutOfRange("{}: cannot skip to byte {}: the file has only {} bytes", path_,
                        consumed_ + n, size);
    }
    if (n <= prefix_left) {
      prefix_pos_ += n;
    } else {
      prefix_pos_ = prefix_.size();
      if (::lseek(fd_, static_cast<off_t>(consumed_ + n), SEEK_SET) < 0) {
        return Internal("{}: seek to byte {} failed: {}", path_, consumed_ + n,
                        std::strerror(errno));
      }
    }
    consumed_ += n;
    return true;
  }

  const std::string& path() const { return path_; }
  uint64_t consumed() const { return consumed_; }

 private:
  std::string path_;
  int fd_;
  bool owned_;
  std::string prefix_;
  size_t prefix_pos_ = 0;
  uint64_t consumed_ = 0;  // raw bytes handed out (prefix included)
};

}  // namespace

// Uncompressed byte stream over a RawFile.
class LineReader::Input {
 public:
  explicit Input(std::unique_ptr<RawFile> file) : file_(std::move(file)) {}
  virtual ~Input() = default;
  // Reads up to n uncompressed bytes; 0 means end of stream. n > 0.
  virtual absl::StatusOr<size_t> Read(char* dst, size_t n) = 0;
  virtual Compression compression() const = 0;

  // Discards n uncompressed bytes; OutOfRange if the stream ends first.
  virtual absl::Status Skip(uint64_t n) {
    std::vector<char> scratch(std::min<uint64_t>(n, 64 * 1024));
    uint64_t left = n;
    while (left > 0) {
      TESSERA_ASSIGN_OR_RETURN(size_t got,
                               Read(scratch.data(), std::min<uint64_t>(left, scratch.size())));
      if (got == 0) {
        return OutOfRange("{}: cannot skip {} bytes: the stream has only {} bytes", file_->path(),
                          n, n - left);
      }
      left -= got;
    }
    return absl::OkStatus();
  }

 protected:
  // A failure after `produced` bytes were written to the caller's buffer: returns those bytes
  // now and the error from the next Read (so the lines before a corrupt spot are not lost).
  absl::StatusOr<size_t> FailAfter(absl::Status error, size_t produced) {
    if (produced == 0) return error;
    pending_error_ = std::move(error);
    return produced;
  }

  std::unique_ptr<RawFile> file_;
  absl::Status pending_error_;  // see FailAfter
};

namespace {

class PlainInput final : public LineReader::Input {
 public:
  using Input::Input;
  absl::StatusOr<size_t> Read(char* dst, size_t n) override { return file_->Read(dst, n); }
  LineReader::Compression compression() const override { return LineReader::Compression::kNone; }
  absl::Status Skip(uint64_t n) override {
    TESSERA_ASSIGN_OR_RETURN(bool seeked, file_->TrySeekForward(n));
    if (seeked) return absl::OkStatus();
    return Input::Skip(n);
  }
};

class GzipInput final : public LineReader::Input {
 public:
  explicit GzipInput(std::unique_ptr<RawFile> file)
      : Input(std::move(file)), in_(new char[kInputBufferBytes]) {}
  ~GzipInput() override {
    if (initialized_) inflateEnd(&zs_);
  }

  absl::Status Init() {
    std::memset(&zs_, 0, sizeof(zs_));
    // 16 + MAX_WBITS: gzip wrapper only.
    if (inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK) {
      return Internal("{}: cannot initialise zlib", file_->path());
    }
    initialized_ = true;
    return absl::OkStatus();
  }

  LineReader::Compression compression() const override { return LineReader::Compression::kGzip; }

  absl::StatusOr<size_t> Read(char* dst, size_t n) override {
    if (!pending_error_.ok()) return pending_error_;
    zs_.next_out = reinterpret_cast<Bytef*>(dst);
    zs_.avail_out = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    const uInt want = zs_.avail_out;
    while (zs_.avail_out > 0 && !finished_) {
      if (zs_.avail_in == 0 && !file_eof_) TESSERA_RETURN_IF_ERROR(Fill());
      if (member_done_) {
        // Between members: gzip(1) ignores trailing zero bytes, so do we.
        while (true) {
          while (zs_.avail_in > 0 && *zs_.next_in == 0) {
            ++zs_.next_in;
            --zs_.avail_in;
          }
          if (zs_.avail_in > 0 || file_eof_) break;
          TESSERA_RETURN_IF_ERROR(Fill());
        }
        if (zs_.avail_in == 0) {
          finished_ = true;
          break;
        }
        inflateReset(&zs_);
        member_done_ = false;
      }
      const int ret = inflate(&zs_, Z_NO_FLUSH);
      if (ret == Z_STREAM_END) {
        member_done_ = true;
        continue;
      }
      if (ret == Z_OK) continue;
      if (ret == Z_BUF_ERROR && zs_.avail_in == 0) {
        if (!file_eof_) continue;  // needs more input
        return FailAfter(DataLoss("{}: truncated gzip stream: input ends at compressed byte {}",
                                  file_->path(), CompressedPosition()),
                         want - zs_.avail_out);
      }
      return FailAfter(DataLoss("{}: corrupt gzip data near compressed byte {}: {}", file_->path(),
                                CompressedPosition(), zs_.msg != nullptr ? zs_.msg : zError(ret)),
                       want - zs_.avail_out);
    }
    return static_cast<size_t>(want - zs_.avail_out);
  }

 private:
  absl::Status Fill() {
    TESSERA_ASSIGN_OR_RETURN(size_t got, file_->Read(in_.get(), kInputBufferBytes));
    if (got == 0) file_eof_ = true;
    zs_.next_in = reinterpret_cast<Bytef*>(in_.get());
    zs_.avail_in = static_cast<uInt>(got);
    return absl::OkStatus();
  }
  uint64_t CompressedPosition() const { return file_->consumed() - zs_.avail_in; }

  std::unique_ptr<char[]> in_;
  z_stream zs_;
  bool initialized_ = false;
  bool file_eof_ = false;
  bool member_done_ = false;
  bool finished_ = false;
};

class ZstdInput final : public LineReader::Input {
 public:
  explicit ZstdInput(std::unique_ptr<RawFile> file)
      : Input(std::move(file)),
        in_capacity_(ZSTD_DStreamInSize()),
        in_buf_(new char[in_capacity_]),
        dctx_(ZSTD_createDCtx()) {}
  ~ZstdInput() override { ZSTD_freeDCtx(dctx_); }

  absl::Status Init() {
    if (dctx_ == nullptr) return Internal("{}: cannot create a zstd context", file_->path());
    return absl::OkStatus();
  }

  LineReader::Compression compression() const override { return LineReader::Compression::kZstd; }

  absl::StatusOr<size_t> Read(char* dst, size_t n) override {
    if (!pending_error_.ok()) return pending_error_;
    ZSTD_outBuffer out{dst, n, 0};
    while (out.pos < out.size && !finished_) {
      if (in_.pos == in_.size && !file_eof_) {
        TESSERA_ASSIGN_OR_RETURN(size_t got, file_->Read(in_buf_.get(), in_capacity_));
        in_ = ZSTD_inBuffer{in_buf_.get(), got, 0};
        if (got == 0) file_eof_ = true;
      }
      const size_t out_before = out.pos;
      const size_t in_before = in_.pos;
      const size_t ret = ZSTD_decompressStream(dctx_, &out, &in_);
      if (ZSTD_isError(ret)) {
        return FailAfter(
            DataLoss("{}: corrupt zstd data near compressed byte {}: {}", file_->path(),
                     file_->consumed() - (in_.size - in_.pos), ZSTD_getErrorName(ret)),
            out.pos);
      }
      if (out.pos != out_before || in_.pos != in_before) {
        last_ret_ = ret;  // 0: a frame just ended and everything is flushed
        continue;
      }
      if (in_.pos == in_.size && file_eof_) {
        if (last_ret_ != 0) {
          return FailAfter(DataLoss("{}: truncated zstd stream: input ends at compressed byte {}",
                                    file_->path(), file_->consumed()),
                           out.pos);
        }
        finished_ = true;
      } else if (in_.pos != in_.size) {
        return Internal("{}: zstd made no progress at compressed byte {}", file_->path(),
                        file_->consumed() - (in_.size - in_.pos));
      }
    }
    return out.pos;
  }

 private:
  size_t in_capacity_;
  std::unique_ptr<char[]> in_buf_;
  ZSTD_DCtx* dctx_;
  ZSTD_inBuffer in_{nullptr, 0, 0};
  size_t last_ret_ = 0;
  bool file_eof_ = false;
  bool finished_ = false;
};

}  // namespace

LineReader::LineReader(std::string path, std::unique_ptr<Input> input, uint64_t offset,
                       const LineReaderOptions& options)
    : path_(std::move(path)), input_(std::move(input)), options_(options), offset_(offset) {
  if (options_.chunk_bytes == 0) options_.chunk_bytes = 1;
  if (options_.max_line_bytes == 0) options_.max_line_bytes = 1;
}

LineReader::~LineReader() = default;

LineReader::Compression LineReader::compression() const { return input_->compression(); }

absl::StatusOr<std::unique_ptr<LineReader>> LineReader::Open(const std::string& path,
                                                             uint64_t skip_bytes,
                                                             const LineReaderOptions& options) {
  std::unique_ptr<RawFile> file;
  std::string name = path;
  if (path == "-") {
    name = "<stdin>";
    file = std::make_unique<RawFile>(name, STDIN_FILENO, /*owned=*/false);
  } else {
    int fd;
    do {
      fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
      const int err = errno;
      if (err == ENOENT) return NotFound("{}: no such file", path);
      return FailedPrecondition("{}: cannot open: {}", path, std::strerror(err));
    }
    struct stat st;
    if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
      ::close(fd);
      return FailedPrecondition("{}: is a directory", path);
    }
    file = std::make_unique<RawFile>(name, fd, /*owned=*/true);
  }

  TESSERA_ASSIGN_OR_RETURN(std::string_view magic, file->Peek(4));
  std::unique_ptr<Input> input;
  if (magic.size() >= 2 && static_cast<uint8_t>(magic[0]) == 0x1f &&
      static_cast<uint8_t>(magic[1]) == 0x8b) {
    auto gz = std::make_unique<GzipInput>(std::move(file));
    TESSERA_RETURN_IF_ERROR(gz->Init());
    input = std::move(gz);
  } else if (magic.size() >= 4 && static_cast<uint8_t>(magic[0]) == 0x28 &&
             static_cast<uint8_t>(magic[1]) == 0xb5 && static_cast<uint8_t>(magic[2]) == 0x2f &&
             static_cast<uint8_t>(magic[3]) == 0xfd) {
    auto zs = std::make_unique<ZstdInput>(std::move(file));
    TESSERA_RETURN_IF_ERROR(zs->Init());
    input = std::move(zs);
  } else {
    input = std::make_unique<PlainInput>(std::move(file));
  }
  if (skip_bytes > 0) TESSERA_RETURN_IF_ERROR(input->Skip(skip_bytes));
  return std::unique_ptr<LineReader>(
      new LineReader(std::move(name), std::move(input), skip_bytes, options));
}

absl::StatusOr<bool> LineReader::Next(Chunk* chunk) {
  chunk->size_ = 0;
  chunk->offset_ = offset_;
  if (done_) return false;

  size_t target = std::max(options_.chunk_bytes, carry_.size());
  chunk->Reserve(target);
  char* buf = chunk->mutable_data();
  size_t size = carry_.size();
  if (size > 0) std::memcpy(buf, carry_.data(), size);
  carry_.clear();
  size_t scanned = size;  // the carried bytes hold no '\n'

  for (;;) {
    while (!eof_ && size < target) {
      absl::StatusOr<size_t> got = input_->Read(buf + size, target - size);
      if (!got.ok()) {
        // Hand out the complete lines read before the error first; report it after them.
        read_error_ = got.status();
        eof_ = true;
      } else if (*got == 0) {
        eof_ = true;
      } else {
        size += *got;
      }
    }
    const char* last_nl = nullptr;
    if (size > scanned) {
      last_nl = static_cast<const char*>(memrchr(buf + scanned, '\n', size - scanned));
    }
    if (last_nl != nullptr) {
      const size_t end = static_cast<size_t>(last_nl - buf) + 1;
      carry_.assign(buf + end, buf + size);
      chunk->size_ = end;
      offset_ += end;
      return true;
    }
    // No '\n' in [0, size): everything is one (partial) line.
    if (size > options_.max_line_bytes) {
      return ResourceExhausted("{}: line starting at byte {} is longer than the limit of {} bytes",
                               path_, offset_, options_.max_line_bytes);
    }
    if (eof_) {
      // A stream that failed never yields its unterminated last bytes: they are not a line.
      if (!read_error_.ok()) return read_error_;
      done_ = true;
      if (size == 0) return false;
      chunk->size_ = size;
      offset_ += size;
      return true;
    }
    scanned = size;
    // Grow to hold one more byte than the limit, so a maximal line and its '\n' fit.
    target = std::min(std::max(target * 2, target + 1), options_.max_line_bytes + 1);
    chunk->size_ = size;  // Reserve() keeps the first size_ bytes
    chunk->Reserve(target);
    chunk->size_ = 0;
    buf = chunk->mutable_data();
  }
}

}  // namespace tessera::source
