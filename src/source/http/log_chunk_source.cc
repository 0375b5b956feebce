#include "source/http/log_chunk_source.h"

#include <charconv>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "common/status_macros.h"
#include "store/meta_keys.h"

namespace tessera::source {

absl::StatusOr<std::unique_ptr<LogChunkSource>> LogChunkSource::Create(
    store::EventLog* log, store::TileStore* meta, std::string source,
    LogChunkSourceOptions options) {
  TESSERA_ASSIGN_OR_RETURN(std::optional<std::string> stored,
                           meta->GetMeta(store::meta::LogPositionKey(source)));
  uint64_t position = 0;
  if (stored.has_value()) {
    auto [p, ec] = std::from_chars(stored->data(), stored->data() + stored->size(), position);
    if (ec != std::errc() || p != stored->data() + stored->size()) {
      return DataLoss("corrupt log position for source '{}': '{}'", source, *stored);
    }
  }
  std::unique_ptr<LogChunkSource> s(
      new LogChunkSource(log, std::move(source), position, std::move(options)));
  s->checkpoint_ = position;
  return s;
}

int LogChunkSource::TakeOffered(std::unique_ptr<DecodedRows>* rows, uint64_t* raw_before) {
  const int64_t future_limit =
      LatestAcceptedEventTime(options_.clock->NowMillis(), options_.max_future_ms);
  std::vector<std::unique_ptr<DecodedRows>> taken;
  std::unique_ptr<DecodedRows> dropped;
  {
    MutexLock lock(&mu_);
    notifications_read_ = notifications_;
    uint64_t next = position_.load() + 1;
    size_t bytes = 0;
    for (auto it = offered_.begin(); it != offered_.end() && it->first == next;) {
      if (!taken.empty() && bytes >= options_.chunk_bytes) break;
      Offered& o = it->second;
      if (o.rows->max_event_time_ms > future_limit) {
        // The pipeline's decoder would reject some of these rows now (the clock went back):
        // let it decode the entry.
        if (taken.empty()) {
          dropped = std::move(o.rows);
          offered_bytes_ -= o.bytes;
          offered_.erase(it);
        }
        break;
      }
      bytes += o.bytes;
      offered_bytes_ -= o.bytes;
      taken.push_back(std::move(o.rows));
      it = offered_.erase(it);
      ++next;
    }
    if (!taken.empty()) {
      position_.store(next - 1);
    } else {
      *raw_before = offered_.empty() ? 0 : offered_.begin()->first;
    }
  }
  if (taken.empty()) return 0;
  *rows = std::move(taken[0]);
  for (size_t i = 1; i < taken.size(); ++i) (*rows)->Append(std::move(*taken[i]));
  return static_cast<int>(taken.size());
}

void LogChunkSource::AdvanceTo(uint64_t seq) {
  std::vector<Offered> dropped;  // freed after the lock is released
  MutexLock lock(&mu_);
  position_.store(seq);
  while (!offered_.empty() && offered_.begin()->first <= seq) {
    offered_bytes_ -= offered_.begin()->second.bytes;
    dropped.push_back(std::move(offered_.begin()->second));
    offered_.erase(offered_.begin());
  }
}

absl::StatusOr<Source::Next> LogChunkSource::NextChunk(Chunk* chunk, ChunkOrigin* origin) {
  while (true) {
    const uint64_t from = position_.load();
    std::unique_ptr<DecodedRows> rows;
    uint64_t raw_before = 0;
    if (const int entries = TakeOffered(&rows, &raw_before); entries > 0) {
      if (options_.entries_offered != nullptr) options_.entries_offered->Inc(entries);
      origin->first_line = 1;
      origin->input = fmt::format("log {} entries {}..{}", source_, from + 1, from + entries);
      origin->decoded = std::move(rows);
      chunk->Clear();
      return Next::kChunk;
    }
    // Read raw, up to the first offered entry (its rows are handed out next time).
    buffer_.clear();
    uint64_t last = from;
    uint64_t first_offered_read = 0;
    int entries = 0;
    TESSERA_RETURN_IF_ERROR(log_->Read(source_, from, options_.chunk_bytes,
                                       [&](uint64_t seq, std::string_view payload) {
                                         if (raw_before != 0 && seq >= raw_before) {
                                           if (first_offered_read == 0) first_offered_read = seq;
                                           return;
                                         }
                                         buffer_.append(payload);
                                         if (!payload.empty() && payload.back() != '\n')
                                           buffer_.push_back('\n');
                                         last = seq;
                                         ++entries;
                                       }));
    if (last == from) {
      if (first_offered_read != 0) {
        // The log holds nothing between the position and that offered entry (appends that
        // failed leave gaps): step over the gap and take the offered rows.
        AdvanceTo(first_offered_read - 1);
        continue;
      }
      MutexLock lock(&mu_);
      return closed_ ? Next::kEnd : Next::kIdle;
    }
    AdvanceTo(last);
    if (options_.entries_raw != nullptr) options_.entries_raw->Inc(entries);
    origin->first_line = 1;
    origin->input = fmt::format("log {} entries {}..{}", source_, from + 1, last);
    chunk->Assign(buffer_, 0);
    return Next::kChunk;
  }
}

void LogChunkSource::Offer(uint64_t seq, std::unique_ptr<DecodedRows> rows) {
  if (rows == nullptr) return;
  const size_t bytes = rows->MemoryBytes();
  MutexLock lock(&mu_);
  // `rows`, if not kept, is freed after the lock is released (parameters outlive locals).
  if (closed_ || seq <= position_.load() || offered_.contains(seq) ||
      offered_bytes_ + bytes > options_.max_offered_bytes) {
    return;
  }
  offered_.emplace(seq, Offered{std::move(rows), bytes});
  offered_bytes_ += bytes;
}

size_t LogChunkSource::offered_bytes() const {
  MutexLock lock(&mu_);
  return offered_bytes_;
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
  std::map<uint64_t, Offered> dropped;  // freed after the lock is released
  MutexLock lock(&mu_);
  closed_ = true;
  dropped.swap(offered_);
  offered_bytes_ = 0;
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
