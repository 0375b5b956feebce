#include "agg/hyperloglog.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>

#include "common/errors.h"

namespace tessera::agg {

namespace {

constexpr int kSparseRestBits = 64 - HyperLogLog::kSparsePrecision;  // 39
constexpr int kMaxSparseRho = kSparseRestBits + 1;                       // 40
constexpr int kIndexGapBits = HyperLogLog::kSparsePrecision - HyperLogLog::kPrecision;  // 11
constexpr uint8_t kModeSparse = 1;
constexpr uint8_t kModeDense = 2;
constexpr uint32_t kInitialSlots = 16;

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
  if (table_ != nullptr) {
    copy.table_ = std::make_unique_for_overwrite<uint32_t[]>(capacity_);
    std::memcpy(copy.table_.get(), table_.get(), capacity_ * sizeof(uint32_t));
    copy.capacity_ = capacity_;
    copy.count_ = count_;
  }
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
  SparseInsert(SparseEntry(hash));
}

void HyperLogLog::InsertIntoTable(uint32_t entry) {
  // index' is 25 bits of a good hash, so its low bits spread evenly over the slots.
  const uint32_t key = EntryIndex(entry);
  const uint32_t mask = capacity_ - 1;
  for (uint32_t pos = key & mask;; pos = (pos + 1) & mask) {
    uint32_t v = table_[pos];
    if (v == 0) {
      table_[pos] = entry;
      ++count_;
      return;
    }
    if (EntryIndex(v) == key) {
      if (entry > v) table_[pos] = entry;
      return;
    }
  }
}

void HyperLogLog::GrowTable() {
  std::unique_ptr<uint32_t[]> old = std::move(table_);
  uint32_t old_capacity = capacity_;
  capacity_ = old_capacity == 0 ? kInitialSlots : old_capacity * 2;
  table_ = std::make_unique<uint32_t[]>(capacity_);  // zeroed: all slots empty
  count_ = 0;
  for (uint32_t i = 0; i < old_capacity; ++i) {
    if (old[i] != 0) InsertIntoTable(old[i]);
  }
}

void HyperLogLog::SparseInsert(uint32_t entry) {
  if (dense_ != nullptr) {
    DenseUpdate(dense_.get(), entry);
    return;
  }
  if (capacity_ != 0) {
    const uint32_t key = EntryIndex(entry);
    const uint32_t mask = capacity_ - 1;
    for (uint32_t pos = key & mask;; pos = (pos + 1) & mask) {
      uint32_t v = table_[pos];
      if (v == 0) break;  // new index'
      if (EntryIndex(v) == key) {
        if (entry > v) table_[pos] = entry;
        return;
      }
    }
  }
  if ((count_ + 1) * 4 > capacity_ * 3) {
    if (capacity_ >= kMaxSparseSlots) {
      ToDense();
      DenseUpdate(dense_.get(), entry);
      return;
    }
    GrowTable();
  }
  InsertIntoTable(entry);
}

std::vector<uint32_t> HyperLogLog::SortedEntries() const {
  std::vector<uint32_t> entries;
  entries.reserve(count_);
  for (uint32_t i = 0; i < capacity_; ++i) {
    if (table_[i] != 0) entries.push_back(table_[i]);
  }
  std::sort(entries.begin(), entries.end());
  return entries;
}

void HyperLogLog::ToDense() {
  dense_ = std::make_unique<uint8_t[]>(kNumRegisters);  // zeroed
  for (uint32_t i = 0; i < capacity_; ++i) {
    if (table_[i] != 0) DenseUpdate(dense_.get(), table_[i]);
  }
  table_.reset();
  capacity_ = 0;
  count_ = 0;
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
  for (uint32_t i = 0; i < other.capacity_; ++i) {
    if (other.table_[i] != 0) SparseInsert(other.table_[i]);
  }
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
  return SparseEstimate(count_);
}

uint64_t HyperLogLog::EstimateRounded() const {
  double e = Estimate();
  if (!(e > 0.0)) return 0;
  return static_cast<uint64_t>(std::llround(e));
}

size_t HyperLogLog::HeapBytes() const {
  return capacity_ * sizeof(uint32_t) + (dense_ != nullptr ? kNumRegisters : 0);
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
  std::vector<uint32_t> sorted = SortedEntries();
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
    *this = HyperLogLog();
    for (uint32_t e : entries) SparseInsert(e);
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
    *this = HyperLogLog();
    dense_ = std::move(registers);
    return absl::OkStatus();
  }
  return DataLoss("unknown HyperLogLog mode {}", mode);
}

}  // namespace tessera::agg
