#include "agg/kll_sketch.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "common/errors.h"
#include "common/hash.h"

namespace tessera::agg {

namespace {

// (2/3)^d for d < kMaxLevels, by repeated multiplication (bit-identical on every IEEE host).
const std::array<double, KllSketch::kMaxLevels>& TwoThirdsPowers() {
  static const std::array<double, KllSketch::kMaxLevels> table = [] {
    std::array<double, KllSketch::kMaxLevels> t{};
    double p = 1.0;
    for (double& v : t) {
      v = p;
      p = p * 2.0 / 3.0;
    }
    return t;
  }();
  return table;
}

}  // namespace

uint32_t KllSketch::LevelCapacity(size_t level, size_t num_levels) {
  size_t depth = num_levels - 1 - level;
  auto cap = static_cast<uint32_t>(kDefaultK * TwoThirdsPowers()[depth]);
  return std::max(cap, kMinLevelCapacity);
}

size_t KllSketch::TotalCapacity(size_t num_levels) {
  size_t total = 0;
  for (size_t h = 0; h < num_levels; ++h) total += LevelCapacity(h, num_levels);
  return total;
}

void KllSketch::Add(double x) {
  if (levels_.empty()) {
    levels_.emplace_back();
    levels_[0].reserve(kMinLevelCapacity);  // skip the 1, 2, 4 growth steps
    total_capacity_ = TotalCapacity(1);
    min_ = x;
    max_ = x;
  } else {
    min_ = std::min(min_, x);
    max_ = std::max(max_, x);
  }
  levels_[0].push_back(x);
  ++size_;
  ++n_;
  if (size_ > total_capacity_) Compress();
}

void KllSketch::MergeItems(std::span<const double> items) {
  if (items.empty()) return;
  if (levels_.empty()) {
    levels_.emplace_back();
    total_capacity_ = TotalCapacity(1);
    min_ = items[0];
    max_ = items[0];
  }
  for (double x : items) {
    min_ = std::min(min_, x);
    max_ = std::max(max_, x);
  }
  levels_[0].insert(levels_[0].end(), items.begin(), items.end());
  n_ += items.size();
  size_ += items.size();
  Compress();
}

void KllSketch::Compress() {
  while (size_ > total_capacity_) {
    size_t h = 0;
    while (h + 1 < levels_.size() && levels_[h].size() < LevelCapacity(h, levels_.size())) ++h;
    CompactLevel(h);
  }
}

void KllSketch::CompactLevel(size_t level) {
  if (level + 1 == levels_.size()) {
    if (levels_.size() == kMaxLevels) return;  // unreachable: 2^60 items
    levels_.emplace_back();
    total_capacity_ = TotalCapacity(levels_.size());
  }
  std::vector<double>& items = levels_[level];
  std::vector<double>& above = levels_[level + 1];
  if (level == 0) std::sort(items.begin(), items.end());
  const size_t size = items.size();
  const size_t keep = size & 1;  // an odd item (the smallest) stays at this level
  const uint64_t coin =
      HashInt(n_ ^ (static_cast<uint64_t>(level) << 56) ^ (size * 0x9E3779B97F4A7C15ULL)) & 1;
  std::vector<double> merged;
  merged.reserve(above.size() + (size - keep) / 2);
  size_t a = 0;
  for (size_t i = keep + coin; i < size; i += 2) {
    double x = items[i];
    while (a < above.size() && above[a] <= x) merged.push_back(above[a++]);
    merged.push_back(x);
  }
  merged.insert(merged.end(), above.begin() + static_cast<ptrdiff_t>(a), above.end());
  above = std::move(merged);
  items.resize(keep);
  size_ -= (size - keep) / 2;
}

void KllSketch::Merge(const KllSketch& other) {
  if (other.empty()) return;
  if (empty()) {
    *this = other;
    return;
  }
  n_ += other.n_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  if (levels_.size() < other.levels_.size()) levels_.resize(other.levels_.size());
  levels_[0].insert(levels_[0].end(), other.levels_[0].begin(), other.levels_[0].end());
  for (size_t h = 1; h < other.levels_.size(); ++h) {
    const std::vector<double>& src = other.levels_[h];
    if (src.empty()) continue;
    std::vector<double> merged(levels_[h].size() + src.size());
    std::merge(levels_[h].begin(), levels_[h].end(), src.begin(), src.end(), merged.begin());
    levels_[h] = std::move(merged);
  }
  size_ += other.size_;
  total_capacity_ = TotalCapacity(levels_.size());
  Compress();
}

double KllSketch::Quantile(double q) const {
  if (!(q > 0.0)) return min_;
  if (q >= 1.0) return max_;
  // Items by value with their weights: levels above 0 are kept sorted, so each is merged into
  // the ones below it instead of sorting everything.
  std::vector<std::pair<double, uint64_t>> weighted;
  weighted.reserve(size_);
  auto by_value = [](const auto& a, const auto& b) { return a.first < b.first; };
  for (size_t h = 0; h < levels_.size(); ++h) {
    const auto mid = static_cast<ptrdiff_t>(weighted.size());
    for (double x : levels_[h]) weighted.emplace_back(x, uint64_t{1} << h);
    if (h == 0) {
      std::sort(weighted.begin(), weighted.end(), by_value);
    } else {
      std::inplace_merge(weighted.begin(), weighted.begin() + mid, weighted.end(), by_value);
    }
  }
  double target_d = std::ceil(q * static_cast<double>(n_));
  uint64_t target = target_d < 1.0 ? 1 : static_cast<uint64_t>(target_d);
  uint64_t cumulative = 0;
  for (const auto& [x, w] : weighted) {
    cumulative += w;
    if (cumulative >= target) return x;
  }
  return max_;
}

double KllSketch::Rank(double x) const {
  if (n_ == 0) return 0.0;
  uint64_t weight = 0;
  for (size_t h = 0; h < levels_.size(); ++h) {
    for (double v : levels_[h]) {
      if (v <= x) weight += uint64_t{1} << h;
    }
  }
  return static_cast<double>(weight) / static_cast<double>(n_);
}

size_t KllSketch::HeapBytes() const {
  size_t bytes = levels_.capacity() * sizeof(std::vector<double>);
  for (const auto& level : levels_) bytes += level.capacity() * sizeof(double);
  return bytes;
}

namespace {

// Appends `count` doubles as 8 little-endian bytes each, in one block; level 0 is encoded
// sorted (sorting a scratch copy when it is not), so equal sketches encode equally.
void PutLevel(const double* items, size_t count, bool sort, std::string* out) {
  PutVarint64(out, count);
  // An empty level (e.g. decoded from a tile) has items == nullptr, and memcpy from a null
  // pointer is undefined even for 0 bytes (found by agg_state_fuzz under UBSan).
  if (count == 0) return;
  absl::InlinedVector<double, 32> sorted;
  if (sort && !std::is_sorted(items, items + count)) {
    sorted.assign(items, items + count);
    std::sort(sorted.begin(), sorted.end());
    items = sorted.data();
  }
  const size_t at = out->size();
  out->resize(at + count * sizeof(double));
  std::memcpy(out->data() + at, items, count * sizeof(double));
}

}  // namespace

void KllSketch::Serialize(std::string* out) const {
  PutVarint64(out, n_);
  if (n_ == 0) return;
  PutDouble(out, min_);
  PutDouble(out, max_);
  PutVarint64(out, levels_.size());
  for (size_t h = 0; h < levels_.size(); ++h) {
    PutLevel(levels_[h].data(), levels_[h].size(), /*sort=*/h == 0, out);
  }
}

void KllSketch::SerializeItems(std::span<const double> items, std::string* out) {
  PutVarint64(out, items.size());
  if (items.empty()) return;
  // min and max fold in arrival order, exactly as Add() does (this fixes the sign of a zero).
  double lo = items[0];
  double hi = items[0];
  for (double x : items) {
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  PutDouble(out, lo);
  PutDouble(out, hi);
  PutVarint64(out, 1);
  PutLevel(items.data(), items.size(), /*sort=*/true, out);
}

double KllSketch::QuantileOfItems(std::span<const double> items, double q) {
  // Quantile() with every weight 1: the item of nearest rank ceil(q·n).
  absl::InlinedVector<double, 32> sorted(items.begin(), items.end());
  std::sort(sorted.begin(), sorted.end());
  double lo = items[0];
  double hi = items[0];
  for (double x : items) {
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  if (!(q > 0.0)) return lo;
  if (q >= 1.0) return hi;
  double target_d = std::ceil(q * static_cast<double>(items.size()));
  size_t target = target_d < 1.0 ? 1 : static_cast<size_t>(target_d);
  return sorted[std::min(target, sorted.size()) - 1];
}

absl::Status KllSketch::Deserialize(ByteReader* in) {
  uint64_t n = 0;
  absl::Status s = in->Varint64(&n, "KLL count");
  if (!s.ok()) return s;
  if (n == 0) {
    *this = KllSketch();
    return absl::OkStatus();
  }
  KllSketch parsed;
  parsed.n_ = n;
  s = in->Double(&parsed.min_, "KLL min");
  if (!s.ok()) return s;
  s = in->Double(&parsed.max_, "KLL max");
  if (!s.ok()) return s;
  if (!(parsed.min_ <= parsed.max_)) return DataLoss("KLL min/max out of order or NaN");
  uint64_t num_levels = 0;
  s = in->Varint64(&num_levels, "KLL level count");
  if (!s.ok()) return s;
  if (num_levels < 1 || num_levels > kMaxLevels) {
    return DataLoss("KLL level count {} out of range", num_levels);
  }
  const size_t capacity = TotalCapacity(num_levels);
  parsed.levels_.resize(num_levels);
  parsed.total_capacity_ = capacity;
  unsigned __int128 weight = 0;
  for (size_t h = 0; h < num_levels; ++h) {
    uint64_t count = 0;
    s = in->Varint64(&count, "KLL level size");
    if (!s.ok()) return s;
    if (count > capacity - parsed.size_ || count > in->remaining() / sizeof(double)) {
      return DataLoss("KLL level size {} exceeds the sketch capacity or the input", count);
    }
    std::vector<double>& level = parsed.levels_[h];
    level.resize(count);
    for (uint64_t i = 0; i < count; ++i) {
      double x = 0.0;
      s = in->Double(&x, "KLL item");
      if (!s.ok()) return s;
      if (!(x >= parsed.min_ && x <= parsed.max_)) return DataLoss("KLL item outside [min, max]");
      if (i > 0 && x < level[i - 1]) return DataLoss("KLL level {} not sorted", h);
      level[i] = x;
    }
    parsed.size_ += count;
    weight += static_cast<unsigned __int128>(count) << h;
  }
  if (weight != n) return DataLoss("KLL item weights do not add up to the count {}", n);
  *this = std::move(parsed);
  return absl::OkStatus();
}

}  // namespace tessera::agg
