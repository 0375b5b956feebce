#include "agg/hyperloglog.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/errors.h"

namespace tessera::agg {

namespace {

constexpr int kSparseRestBits = 64 - HyperLogLog::kSparsePrecision;  // 39
constexpr int kMaxSparseRho = kSparseRestBits + 1;                       // 40
constexpr int kIndexGapBits = HyperLogLog::kSparsePrecision - HyperLogLog::kPrecision;  // 11
constexpr uint8_t kModeSparse = 1;
constexpr uint8_t kModeDense = 2;
// Below this many unsorted entries the tail is not worth compacting.
constexpr size_t kMinTail = 32;

inline uint32_t EntryIndex(uint32_t entry) { return entry >> 6; }

// Ertl's sigma(x) = x + sum_{k>=1} x^(2^k) 2^(k-1).
double Sigma(double x) {
  if (x == 1.0) return std::numeric_limits<double>::infinity();
  double y = 1.0;
  double z = x;
  while (true) {
    x *= x;
    double z_old = z;
    z += x * y;
    y += y;
    if (z == z_old) return z;
  }
}

// Ertl's tau(x) = (1 - x - sum_{k>=1} (1 - x^(2^-k))^2 2^-k) / 3.
double Tau(double x) {
  if (x == 0.0 || x == 1.0) return 0.0;
  double y = 1.0;
  double z = 1.0 - x;
  while (true) {
    x = std::sqrt(x);
    double z_old = z;
    y *= 0.5;
    z -= (1.0 - x) * (1.0 - x) * y;
    if (z == z_old) return z / 3.0;
  }
}

}  // namespace

uint32_t HyperLogLog::SparseEntry(uint64_t hash) {
  auto index = static_cast<uint32_t>(hash >> kSparseRestBits);
  uint64_t rest = (hash << kSparsePrecision) | (uint64_t{1} << (kSparsePrecision - 1));
  auto rho = static_cast<uint32_t>(std::countl_zero(rest) + 1);
  return (index << 6) | rho;
}

void HyperLogLog::DenseUpdate(uint8_t* registers, uint32_t entry) {
  uint32_t index = EntryIndex(entry);
  uint32_t reg = index >> kIndexGapBits;
  uint32_t gap = index & ((1u << kIndexGapBits) - 1);
  uint32_t rho = gap != 0 ? static_cast<uint32_t>(std::countl_zero(gap << (32 - kIndexGapBits))) + 1
                          : kIndexGapBits + (entry & 63);
  if (registers[reg] < rho) registers[reg] = static_cast<uint8_t>(rho);
}

HyperLogLog HyperLogLog::Clone() const {
  HyperLogLog copy;
  copy.entries_ = entries_;
  copy.sorted_ = sorted_;
  if (dense_ != nullptr) {
    copy.dense_ = std::make_unique_for_overwrite<uint8_t[]>(kNumRegisters);
    std::memcpy(copy.dense_.get(), dense_.get(), kNumRegisters);
  }
  return copy;
}

void HyperLogLog::AddHash(uint64_t hash) {
  if (dense_ != nullptr) {
    uint32_t reg = static_cast<uint32_t>(hash >> (64 - kPrecision));
    uint64_t w = (hash << kPrecision) | (uint64_t{1} << (kPrecision - 1));
    auto rho = static_cast<uint8_t>(std::countl_zero(w) + 1);
    if (dense_[reg] < rho) dense_[reg] = rho;
    return;
  }
  uint32_t entry = SparseEntry(hash);
  if (!entries_.empty() && entries_.back() == entry) return;  // runs of one value are common
  entries_.push_back(entry);
  size_t tail = entries_.size() - sorted_;
  if (tail >= std::max(kMinTail, sorted_ / 2)) {
    Compact();
    if (sorted_ > kMaxSparseEntries) ToDense();
  }
}

void HyperLogLog::Compact() {
  if (sorted_ == entries_.size()) return;
  auto mid = entries_.begin() + static_cast<ptrdiff_t>(sorted_);
  std::sort(mid, entries_.end());
  std::inplace_merge(entries_.begin(), mid, entries_.end());
  // Keep one entry per index': the last of each run, which has the largest rho'.
  size_t out = 0;
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (i + 1 < entries_.size() && EntryIndex(entries_[i + 1]) == EntryIndex(entries_[i])) {
      continue;
    }
    entries_[out++] = entries_[i];
  }
  entries_.resize(out);
  sorted_ = out;
}

std::span<const uint32_t> HyperLogLog::SortedEntries(std::vector<uint32_t>* scratch) const {
  if (sorted_ == entries_.size()) return entries_;
  HyperLogLog tmp;
  tmp.entries_ = entries_;
  tmp.sorted_ = sorted_;
  tmp.Compact();
  *scratch = std::move(tmp.entries_);
  return *scratch;
}

void HyperLogLog::ToDense() {
  dense_ = std::make_unique<uint8_t[]>(kNumRegisters);  // zeroed
  for (uint32_t e : entries_) DenseUpdate(dense_.get(), e);
  std::vector<uint32_t>().swap(entries_);
  sorted_ = 0;
}

void HyperLogLog::Merge(const HyperLogLog& other) {
  if (other.empty()) return;
  if (other.dense_ != nullptr) {
    if (dense_ == nullptr) ToDense();
    for (uint32_t i = 0; i < kNumRegisters; ++i) {
      dense_[i] = std::max(dense_[i], other.dense_[i]);
    }
    return;
  }
  std::vector<uint32_t> scratch;
  std::span<const uint32_t> src = other.SortedEntries(&scratch);
  if (dense_ != nullptr) {
    for (uint32_t e : src) DenseUpdate(dense_.get(), e);
    return;
  }
  entries_.insert(entries_.end(), src.begin(), src.end());
  Compact();
  if (sorted_ > kMaxSparseEntries) ToDense();
}

double HyperLogLog::SparseEstimate(size_t distinct_entries) {
  // Linear counting over the 2^25 sparse buckets.
  const double m = static_cast<double>(uint64_t{1} << kSparsePrecision);
  return -m * std::log1p(-static_cast<double>(distinct_entries) / m);
}

double HyperLogLog::DenseEstimate(const uint8_t* registers) {
  constexpr int q = 64 - kPrecision;
  uint32_t histogram[kMaxRegister + 1] = {};
  for (uint32_t i = 0; i < kNumRegisters; ++i) ++histogram[registers[i]];
  const double m = kNumRegisters;
  double z = m * Tau(1.0 - histogram[q + 1] / m);
  for (int k = q; k >= 1; --k) z = 0.5 * (z + histogram[k]);
  z += m * Sigma(histogram[0] / m);
  constexpr double kAlphaInf = 0.5 / std::numbers::ln2;
  return kAlphaInf * m * m / z;
}

double HyperLogLog::Estimate() const {
  if (dense_ != nullptr) return DenseEstimate(dense_.get());
  std::vector<uint32_t> scratch;
  std::span<const uint32_t> sorted = SortedEntries(&scratch);
  if (sorted.size() <= kMaxSparseEntries) return SparseEstimate(sorted.size());
  // Not yet compacted past the sparse limit: estimate as the dense sketch it is about to be.
  auto registers = std::make_unique<uint8_t[]>(kNumRegisters);
  for (uint32_t e : sorted) DenseUpdate(registers.get(), e);
  return DenseEstimate(registers.get());
}

uint64_t HyperLogLog::EstimateRounded() const {
  double e = Estimate();
  if (!(e > 0.0)) return 0;
  return static_cast<uint64_t>(std::llround(e));
}

size_t HyperLogLog::HeapBytes() const {
  return entries_.capacity() * sizeof(uint32_t) + (dense_ != nullptr ? kNumRegisters : 0);
}

namespace {

void PutDenseRegisters(const uint8_t* registers, std::string* out) {
  out->push_back(static_cast<char>(kModeDense));
  size_t start = out->size();
  out->resize(start + HyperLogLog::kDenseEncodedBytes);
  char* p = out->data() + start;
  for (uint32_t i = 0; i < HyperLogLog::kNumRegisters; i += 4) {
    uint32_t v = registers[i] | (registers[i + 1] << 6) | (registers[i + 2] << 12) |
                 (registers[i + 3] << 18);
    *p++ = static_cast<char>(v & 0xff);
    *p++ = static_cast<char>((v >> 8) & 0xff);
    *p++ = static_cast<char>((v >> 16) & 0xff);
  }
}

}  // namespace

void HyperLogLog::Serialize(std::string* out) const {
  if (dense_ != nullptr) {
    PutDenseRegisters(dense_.get(), out);
    return;
  }
  std::vector<uint32_t> scratch;
  std::span<const uint32_t> sorted = SortedEntries(&scratch);
  if (sorted.size() > kMaxSparseEntries) {
    auto registers = std::make_unique<uint8_t[]>(kNumRegisters);
    for (uint32_t e : sorted) DenseUpdate(registers.get(), e);
    PutDenseRegisters(registers.get(), out);
    return;
  }
  out->push_back(static_cast<char>(kModeSparse));
  PutVarint64(out, sorted.size());
  uint32_t prev = 0;
  for (uint32_t e : sorted) {
    PutVarint64(out, e - prev);
    prev = e;
  }
}

absl::Status HyperLogLog::Deserialize(ByteReader* in) {
  uint8_t mode = 0;
  absl::Status s = in->Byte(&mode, "HyperLogLog mode");
  if (!s.ok()) return s;
  if (mode == kModeSparse) {
    uint64_t count = 0;
    s = in->Varint64(&count, "HyperLogLog entry count");
    if (!s.ok()) return s;
    if (count > kMaxSparseEntries) {
      return DataLoss("HyperLogLog sparse entry count {} exceeds {}", count, kMaxSparseEntries);
    }
    std::vector<uint32_t> entries;
    entries.reserve(count);
    uint64_t prev = 0;
    for (uint64_t i = 0; i < count; ++i) {
      uint64_t delta = 0;
      s = in->Varint64(&delta, "HyperLogLog entry");
      if (!s.ok()) return s;
      if (i > 0 && delta == 0) return DataLoss("HyperLogLog sparse entries not increasing");
      if (delta > (uint64_t{1} << 31) - prev) {
        return DataLoss("HyperLogLog sparse entry out of range");
      }
      uint64_t e = prev + delta;
      uint32_t rho = e & 63;
      if (rho < 1 || rho > kMaxSparseRho) return DataLoss("HyperLogLog sparse rho {}", rho);
      if (i > 0 && EntryIndex(static_cast<uint32_t>(e)) == EntryIndex(static_cast<uint32_t>(prev))) {
        return DataLoss("HyperLogLog sparse entries repeat an index");
      }
      entries.push_back(static_cast<uint32_t>(e));
      prev = e;
    }
    entries_ = std::move(entries);
    sorted_ = entries_.size();
    dense_.reset();
    return absl::OkStatus();
  }
  if (mode == kModeDense) {
    std::string_view bytes;
    s = in->Raw(kDenseEncodedBytes, &bytes, "HyperLogLog registers");
    if (!s.ok()) return s;
    auto registers = std::make_unique_for_overwrite<uint8_t[]>(kNumRegisters);
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    for (uint32_t i = 0; i < kNumRegisters; i += 4, p += 3) {
      uint32_t v = p[0] | (p[1] << 8) | (p[2] << 16);
      for (uint32_t j = 0; j < 4; ++j) {
        auto r = static_cast<uint8_t>((v >> (6 * j)) & 63);
        if (r > kMaxRegister) return DataLoss("HyperLogLog register value {} out of range", r);
        registers[i + j] = r;
      }
    }
    dense_ = std::move(registers);
    std::vector<uint32_t>().swap(entries_);
    sorted_ = 0;
    return absl::OkStatus();
  }
  return DataLoss("unknown HyperLogLog mode {}", mode);
}

}  // namespace tessera::agg
