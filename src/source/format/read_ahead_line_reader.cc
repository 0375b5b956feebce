#include "source/format/read_ahead_line_reader.h"

#include <utility>

namespace tessera::source {

ReadAheadLineReader::ReadAheadLineReader(std::unique_ptr<LineReader> reader)
    : reader_(std::move(reader)), result_(false), thread_([this] { Loop(); }) {}

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
    cv_.wait(lock, [this] { return want_ || stop_; });
    if (stop_) return;
    want_ = false;
    lock.unlock();
    absl::StatusOr<bool> result = reader_->Next(&ahead_);
    lock.lock();
    result_ = std::move(result);
    ready_ = true;
    cv_.notify_all();
  }
}

absl::StatusOr<bool> ReadAheadLineReader::Next(Chunk* chunk) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return ready_; });
  absl::StatusOr<bool> result = result_;
  if (result.ok() && *result) {
    std::swap(*chunk, ahead_);
    ready_ = false;
    want_ = true;  // the reader answers false or its error again at the end: no more reads
    lock.unlock();
    cv_.notify_all();
  }
  return result;
}

}  // namespace tessera::source
