#include "source/format/read_ahead_line_reader.h"

#include <algorithm>
#include <utility>

namespace tessera::source {

ReadAheadLineReader::ReadAheadLineReader(std::unique_ptr<LineReader> reader, size_t depth)
    : reader_(std::move(reader)), depth_(std::max<size_t>(1, depth)), thread_([this] { Loop(); }) {}

ReadAheadLineReader::~ReadAheadLineReader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void ReadAheadLineReader::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || (!finished_ && ready_.size() < depth_); });
    if (stop_) return;
    Read read{Chunk(), false};
    if (!spare_.empty()) {
      read.chunk = std::move(spare_.back());
      spare_.pop_back();
    }
    lock.unlock();
    read.result = reader_->Next(&read.chunk);
    lock.lock();
    finished_ = !read.result.ok() || !*read.result;
    ready_.push_back(std::move(read));
    cv_.notify_all();
  }
}

absl::StatusOr<bool> ReadAheadLineReader::Next(Chunk* chunk) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return !ready_.empty(); });
  Read& front = ready_.front();
  // The end or the failure stays at the front: every later call answers the same (with an
  // empty chunk, as LineReader's).
  if (!front.result.ok() || !*front.result) {
    chunk->Clear();
    return front.result;
  }
  std::swap(*chunk, front.chunk);
  spare_.push_back(std::move(front.chunk));
  ready_.pop_front();
  lock.unlock();
  cv_.notify_all();
  return true;
}

}  // namespace tessera::source
