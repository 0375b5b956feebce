#include "source/pubsub/dedup_window.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <utility>

#include "common/errors.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/varint.h"
#include "store/meta_keys.h"

namespace tessera::source {
namespace {

constexpr uint8_t kSegmentVersion = 1;

// Debian's Abseil has its own string_view type: look up strings through it.
absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

DedupWindow::DedupWindow(std::string source_name, std::string subscription, DedupOptions options)
    : source_name_(std::move(source_name)),
      subscription_(std::move(subscription)),
      options_(options) {}

std::optional<uint64_t> DedupWindow::NumericId(std::string_view id) {
  if (id.empty() || id.size() > 20 || (id.size() > 1 && id[0] == '0')) return std::nullopt;
  uint64_t v = 0;
  for (char c : id) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

std::string DedupWindow::EncodeSegment(std::string_view subscription, Segment* segment) {
  std::sort(segment->numeric.begin(), segment->numeric.end());
  std::string out;
  out.reserve(16 + subscription.size() + segment->numeric.size() * 2);
  out.push_back(static_cast<char>(kSegmentVersion));
  PutZigZag64(&out, segment->committed_ms);
  PutBytes(&out, subscription);
  PutVarint64(&out, segment->numeric.size());
  uint64_t prev = 0;
  for (size_t i = 0; i < segment->numeric.size(); ++i) {
    const uint64_t v = segment->numeric[i];
    PutVarint64(&out, i == 0 ? v : v - prev);
    prev = v;
  }
  PutVarint64(&out, segment->other.size());
  for (const std::string& id : segment->other) PutBytes(&out, id);
  return out;
}

absl::Status DedupWindow::DecodeSegment(std::string_view bytes, std::string_view what,
                                        std::string* subscription, Segment* segment) {
  ByteReader r(bytes);
  uint8_t version = 0;
  TESSERA_RETURN_IF_ERROR(r.Byte(&version, what));
  if (version != kSegmentVersion) {
    return DataLoss("{}: unknown Pub/Sub dedup segment version {}; expected {}", what, version,
                    kSegmentVersion);
  }
  TESSERA_RETURN_IF_ERROR(r.ZigZag64(&segment->committed_ms, what));
  std::string_view sub;
  TESSERA_RETURN_IF_ERROR(r.Bytes(&sub, what));
  subscription->assign(sub);
  uint64_t n = 0;
  TESSERA_RETURN_IF_ERROR(r.Varint64(&n, what));
  // Every id takes at least one byte: a count beyond the bytes left is corrupt (and must not
  // drive an allocation).
  if (n > r.remaining()) return DataLoss("{}: {} numeric ids in {} bytes", what, n, r.remaining());
  segment->numeric.clear();
  segment->numeric.reserve(n);
  uint64_t prev = 0;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t v = 0;
    TESSERA_RETURN_IF_ERROR(r.Varint64(&v, what));
    if (i > 0) {
      if (v == 0 || v > UINT64_MAX - prev) {
        return DataLoss("{}: numeric ids are not strictly ascending at index {}", what, i);
      }
      v += prev;
    }
    segment->numeric.push_back(v);
    prev = v;
  }
  TESSERA_RETURN_IF_ERROR(r.Varint64(&n, what));
  if (n > r.remaining()) return DataLoss("{}: {} ids in {} bytes", what, n, r.remaining());
  segment->other.clear();
  segment->other.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view id;
    TESSERA_RETURN_IF_ERROR(r.Bytes(&id, what));
    segment->other.emplace_back(id);
  }
  if (!r.empty()) return DataLoss("{}: {} trailing bytes", what, r.remaining());
  return absl::OkStatus();
}

absl::StatusOr<DedupWindow> DedupWindow::Load(store::TileStore* store, std::string source_name,
                                              std::string subscription, DedupOptions options,
                                              int64_t now_ms) {
  DedupWindow w(std::move(source_name), std::move(subscription), options);
  std::vector<std::pair<std::string, std::string>> entries;
  const std::string prefix = store::meta::PubSubDedupPrefix(w.source_name_);
  TESSERA_RETURN_IF_ERROR(store->ScanMeta(
      prefix,
      [&](std::string_view key, std::string_view value) { entries.emplace_back(key, value); }));
  const std::string own = ToLowerAscii(w.source_name_);
  std::vector<Stored> loaded;
  for (const auto& [key, value] : entries) {
    std::optional<store::meta::PubSubDedupSegment> parsed = store::meta::ParsePubSubDedupKey(key);
    if (!parsed.has_value() || parsed->source != own) continue;  // another source's ("a/b")
    w.next_seq_ = std::max(w.next_seq_, parsed->segment + 1);
    Stored s;
    s.seq = parsed->segment;
    std::string sub;
    TESSERA_RETURN_IF_ERROR(
        DecodeSegment(value, fmt::format("Pub/Sub dedup segment '{}'", key), &sub, &s.segment));
    if (sub != w.subscription_ || options.window_ms <= 0) {
      w.owed_deletes_.push_back(s.seq);
      continue;
    }
    loaded.push_back(std::move(s));
  }
  // Running time resumes where the last checkpoint left it (keys sort by segment number, which is
  // commit order, so the newest segment is the fallback).
  std::optional<int64_t> resume;
  TESSERA_ASSIGN_OR_RETURN(std::optional<std::string> clock,
                           store->GetMeta(store::meta::PubSubClockKey(w.source_name_)));
  if (clock.has_value()) {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(clock->data(), clock->data() + clock->size(), v);
    if (ec != std::errc() || p != clock->data() + clock->size()) {
      return DataLoss("corrupt Pub/Sub dedup clock '{}' stored under '{}'; expected a decimal",
                      *clock, store::meta::PubSubClockKey(w.source_name_));
    }
    resume = v;
  }
  if (!loaded.empty()) {
    resume = std::max(resume.value_or(INT64_MIN), loaded.back().segment.committed_ms);
  }
  if (resume.has_value()) w.clock_offset_ms_ = *resume - now_ms;
  // Newest first, so an id held by two segments (possible only after an id had left the window
  // and came back) stays in the newer one.
  for (auto it = loaded.rbegin(); it != loaded.rend(); ++it) {
    Segment& seg = it->segment;
    std::erase_if(seg.numeric, [&](uint64_t v) { return !w.numeric_.insert(v).second; });
    std::erase_if(seg.other, [&](const std::string& id) { return !w.other_.insert(id).second; });
  }
  for (Stored& s : loaded) w.segments_.push_back(std::move(s));
  w.Expire(w.RunningMs(now_ms));
  return w;
}

bool DedupWindow::Contains(std::string_view id) const {
  if (options_.window_ms <= 0) return false;
  if (std::optional<uint64_t> v = NumericId(id)) return numeric_.contains(*v);
  return other_.contains(AbslView(id));
}

bool DedupWindow::Insert(std::string_view id) {
  if (options_.window_ms <= 0) return true;
  if (std::optional<uint64_t> v = NumericId(id)) {
    if (!numeric_.insert(*v).second) return false;
    pending_.numeric.push_back(*v);
    return true;
  }
  if (!other_.emplace(id).second) return false;
  pending_.other.emplace_back(id);
  return true;
}

void DedupWindow::AddCheckpoint(int64_t now_ms, store::WriteBatch* batch) {
  const int64_t running = RunningMs(now_ms);
  if (!pending_.numeric.empty() || !pending_.other.empty()) {
    Stored s;
    s.seq = next_seq_++;
    s.segment = std::move(pending_);
    pending_ = Segment();
    s.segment.committed_ms = running;
    batch->meta.emplace_back(store::meta::PubSubDedupKey(source_name_, s.seq),
                             EncodeSegment(subscription_, &s.segment));
    segments_.push_back(std::move(s));
  }
  Expire(running);
  if (options_.window_ms > 0 && (!segments_.empty() || !owed_deletes_.empty())) {
    batch->meta.emplace_back(store::meta::PubSubClockKey(source_name_), std::to_string(running));
  }
  const size_t n = std::min(owed_deletes_.size(), options_.max_deletes_per_checkpoint);
  for (size_t i = 0; i < n; ++i) {
    batch->meta_deletes.push_back(store::meta::PubSubDedupKey(source_name_, owed_deletes_[i]));
  }
  owed_deletes_.erase(owed_deletes_.begin(), owed_deletes_.begin() + static_cast<ptrdiff_t>(n));
}

void DedupWindow::Expire(int64_t running_ms) {
  size_t committed = 0;
  for (const Stored& s : segments_) {
    committed += s.segment.numeric.size() + s.segment.other.size();
  }
  while (!segments_.empty()) {
    const Segment& oldest = segments_.front().segment;
    const size_t n = oldest.numeric.size() + oldest.other.size();
    const bool too_old = running_ms - oldest.committed_ms > options_.window_ms;
    const bool too_many = committed - n >= options_.max_ids && segments_.size() > 1;
    if (!too_old && !too_many) break;
    committed -= n;
    Drop();
  }
}

void DedupWindow::Drop() {
  Stored& s = segments_.front();
  for (uint64_t v : s.segment.numeric) numeric_.erase(v);
  for (const std::string& id : s.segment.other) other_.erase(id);
  owed_deletes_.push_back(s.seq);
  segments_.pop_front();
}

int64_t DedupWindow::OldestAgeMs(int64_t now_ms) const {
  if (segments_.empty()) return 0;
  return std::max<int64_t>(0, RunningMs(now_ms) - segments_.front().segment.committed_ms);
}

}  // namespace tessera::source
