#include "source/dead_letter/recent_rejects.h"

#include <fmt/format.h>

#include <utility>

#include "common/json_string.h"
#include "source/dead_letter/dead_letter.h"

namespace tessera::source {
namespace {

// `s` cut to at most `max` bytes, not inside a UTF-8 sequence.
std::string_view Cut(std::string_view s, size_t max) {
  if (s.size() <= max) return s;
  size_t end = 0;
  while (end < max) {
    const size_t n = std::max<size_t>(1, Utf8SequenceLength(s.substr(end)));
    if (end + n > max) break;
    end += n;
  }
  return s.substr(0, end);
}

}  // namespace

RecentRejects::RecentRejects(std::string source, Options options)
    : source_(std::move(source)), options_(options) {}

void RecentRejects::Add(int64_t now_ms, const ChunkOrigin& origin, const Rejection& rejection) {
  ChunkOrigin where;  // the input's name may hold client text (an HTTP batch id): cut too
  where.input = std::string(Cut(origin.input, options_.max_input_bytes));
  where.first_line = origin.first_line;
  where.partition = origin.partition;
  const int64_t index = rejection.line_number - origin.first_line;
  if (index >= 0 && static_cast<size_t>(index) < origin.offsets.size()) {
    where.offsets.assign(origin.offsets.begin(), origin.offsets.begin() + index + 1);
  } else if (index >= 0 && static_cast<size_t>(index) < origin.ids.size()) {
    where.ids.assign(index, std::string());
    where.ids.push_back(std::string(Cut(origin.ids[index], options_.max_input_bytes)));
  }
  Rejection cut;
  cut.line_number = rejection.line_number;
  cut.reason = std::string(Cut(rejection.reason, options_.max_reason_bytes));
  cut.line = Cut(rejection.line, options_.max_raw_bytes);
  std::string record = DeadLetterSink::Record(source_, where, cut);
  record.pop_back();  // '}'
  fmt::format_to(std::back_inserter(record), ",\"at\":{}", now_ms);
  if (cut.line.size() < rejection.line.size()) {
    fmt::format_to(std::back_inserter(record), ",\"raw_bytes\":{}", rejection.line.size());
  }
  record += '}';
  MutexLock lock(&mu_);
  ++total_;
  if (options_.capacity == 0) return;
  if (records_.size() == options_.capacity) records_.pop_front();
  records_.push_back(std::move(record));
}

std::string RecentRejects::ToJson() const {
  MutexLock lock(&mu_);
  std::string out = "[";
  for (auto it = records_.rbegin(); it != records_.rend(); ++it) {
    if (out.size() > 1) out += ',';
    out += *it;
  }
  out += ']';
  return out;
}

int64_t RecentRejects::total() const {
  MutexLock lock(&mu_);
  return total_;
}

}  // namespace tessera::source
