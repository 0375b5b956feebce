#include "source/http/log_chunk_source.h"

#include <charconv>

#include "common/errors.h"
#include "common/status_macros.h"
#include "store/meta_keys.h"

namespace tessera::source {
namespace {
constexpr size_t kChunkBytes = size_t{1} << 20;
}  // namespace

absl::StatusOr<std::unique_ptr<LogChunkSource>> LogChunkSource::Create(store::EventLog* log,
                                                                       store::TileStore* meta,
                                                                       std::string source) {
  TESSERA_ASSIGN_OR_RETURN(std::optional<std::string> stored,
                           meta->GetMeta(store::meta::LogPositionKey(source)));
  uint64_t position = 0;
  if (stored.has_value()) {
    auto [p, ec] = std::from_chars(stored->data(), stored->data() + stored->size(), position);
    if (ec != std::errc() || p != stored->data() + stored->size()) {
      return DataLoss("corrupt log position for source '{}': '{}'", source, *stored);
    }
  }
  std::unique_ptr<LogChunkSource> s(new LogChunkSource(log, std::move(source), position));
  s->checkpoint_ = position;
  return s;
}

absl::StatusOr<Source::Next> LogChunkSource::NextChunk(Chunk* chunk, ChunkOrigin* origin) {
  buffer_.clear();
  {
    MutexLock lock(&mu_);
    notifications_read_ = notifications_;
  }
  const uint64_t from = position_.load();
  uint64_t last = from;
  TESSERA_RETURN_IF_ERROR(
      log_->Read(source_, from, kChunkBytes, [&](uint64_t seq, std::string_view payload) {
        buffer_.append(payload);
        if (!payload.empty() && payload.back() != '\n') buffer_.push_back('\n');
        last = seq;
      }));
  if (last == from) {
    MutexLock lock(&mu_);
    return closed_ ? Next::kEnd : Next::kIdle;
  }
  origin->first_line = 1;
  origin->input = fmt::format("log {} entries {}..{}", source_, from + 1, last);
  position_.store(last);
  chunk->Assign(buffer_, 0);
  return Next::kChunk;
}

void LogChunkSource::WaitForData(std::chrono::milliseconds max_wait) {
  MutexLock lock(&mu_);
  cv_.WaitFor(&mu_, max_wait, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return notifications_ != notifications_read_ || closed_;
  });
}

void LogChunkSource::Notify() {
  MutexLock lock(&mu_);
  ++notifications_;
  cv_.NotifyAll();
}

void LogChunkSource::Close() {
  MutexLock lock(&mu_);
  closed_ = true;
  cv_.NotifyAll();
  visible_cv_.NotifyAll();
}

void LogChunkSource::Aggregated() {
  MutexLock lock(&mu_);
  visible_ = position_.load();
  visible_cv_.NotifyAll();
}

bool LogChunkSource::WaitVisible(uint64_t seq, std::chrono::milliseconds max_wait) {
  MutexLock lock(&mu_);
  visible_cv_.WaitFor(&mu_, max_wait, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return visible_ >= seq || closed_;
  });
  return visible_ >= seq;
}

void LogChunkSource::AddCheckpoint(store::WriteBatch* batch) {
  checkpoint_ = position_.load();
  batch->meta.emplace_back(store::meta::LogPositionKey(source_), std::to_string(checkpoint_));
}

void LogChunkSource::Committed() {
  if (checkpoint_ <= committed_) return;
  committed_ = checkpoint_;
  // Best effort: an entry left untrimmed is skipped on restart (it is below the position).
  (void)log_->Trim(source_, committed_);
}

}  // namespace tessera::source
