#include "source/file/stdin_source.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/errors.h"
#include "common/status_macros.h"
#include "common/strings.h"

namespace tessera::source {
namespace {

constexpr char kInputName[] = "<stdin>";

}  // namespace

StdinChunkSource::StdinChunkSource(int fd, StdinOptions options) : fd_(fd), options_(options) {
  if (options_.chunk_bytes == 0) options_.chunk_bytes = 1;
  if (options_.max_line_bytes == 0) options_.max_line_bytes = 1;
}

absl::StatusOr<bool> StdinChunkSource::ReadAvailable() {
  pollfd p{fd_, POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&p, 1, 0);
  } while (ready < 0 && errno == EINTR);
  if (ready < 0) return Internal("{}: poll failed: {}", kInputName, std::strerror(errno));
  if (ready == 0) return false;
  if ((p.revents & POLLNVAL) != 0) return FailedPrecondition("{}: not an open file", kInputName);
  // Readable, hung up or failed: read() reports which without blocking.
  const size_t room = buffer_.size() < options_.chunk_bytes ? options_.chunk_bytes - buffer_.size()
                                                            : options_.chunk_bytes;
  const size_t old = buffer_.size();
  buffer_.resize(old + room);
  ssize_t r;
  do {
    r = ::read(fd_, buffer_.data() + old, room);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    const int err = errno;
    buffer_.resize(old);
    if (err == EAGAIN || err == EWOULDBLOCK) return false;
    return Internal("{}: read failed at byte {}: {}", kInputName, offset_ + old,
                    std::strerror(err));
  }
  buffer_.resize(old + static_cast<size_t>(r));
  if (r == 0) eof_ = true;
  return true;
}

absl::StatusOr<Source::Next> StdinChunkSource::NextChunk(Chunk* chunk, ChunkOrigin* origin) {
  if (done_) return Next::kEnd;
  for (;;) {
    // Hand out complete lines once a chunk's worth is buffered or nothing more is readable now.
    bool readable = false;
    if (!eof_ && buffer_.size() < options_.chunk_bytes) {
      TESSERA_ASSIGN_OR_RETURN(readable, ReadAvailable());
    }
    if (readable && !eof_ && buffer_.size() < options_.chunk_bytes) continue;

    size_t end = 0;
    if (buffer_.size() > scanned_) {
      const void* nl = memrchr(buffer_.data() + scanned_, '\n', buffer_.size() - scanned_);
      if (nl != nullptr)
        end = static_cast<size_t>(static_cast<const char*>(nl) - buffer_.data()) + 1;
    }
    if (end == 0 && eof_) end = buffer_.size();  // a final line without '\n'
    if (end > 0) {
      chunk->Assign(std::string_view(buffer_.data(), end), offset_);
      origin->first_line = lines_ + 1;
      origin->input = kInputName;
      std::string_view data = chunk->view();
      lines_ += static_cast<int64_t>(CountNewlines(data));
      if (data.back() != '\n') ++lines_;
      buffer_.erase(0, end);
      offset_ += end;
      scanned_ = 0;
      return Next::kChunk;
    }
    if (eof_) {
      done_ = true;
      return Next::kEnd;
    }
    // Only a partial line is buffered.
    scanned_ = buffer_.size();
    if (buffer_.size() > options_.max_line_bytes) {
      return ResourceExhausted("{}: line starting at byte {} is longer than the limit of {} bytes",
                               kInputName, offset_, options_.max_line_bytes);
    }
    if (!readable && buffer_.size() < options_.chunk_bytes) return Next::kIdle;
    // A partial line of at least chunk_bytes: read more of it (ReadAvailable() grows buffer_).
    TESSERA_ASSIGN_OR_RETURN(bool more, ReadAvailable());
    if (!more) return Next::kIdle;
  }
}

void StdinChunkSource::WaitForData(std::chrono::milliseconds max_wait) {
  if (eof_ || done_) return;
  pollfd p{fd_, POLLIN, 0};
  const int timeout = static_cast<int>(std::clamp<int64_t>(max_wait.count(), 0, 60'000));
  // EINTR or an error: return early; NextChunk() reports errors.
  (void)::poll(&p, 1, timeout);
}

}  // namespace tessera::source
