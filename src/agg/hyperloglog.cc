#include "agg/hyperloglog.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>
#include <span>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "common/errors.h"

namespace tessera::agg {

namespace {

constexpr int kSparseRestBits = 64 - HyperLogLog::kSparsePrecision;                     // 39
constexpr int kMaxSparseRho = kSparseRestBits + 1;                                      // 40
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
  // Unconditional store: whether a register grows is a coin flip the branch predictor misses.
  registers[reg] = std::max(registers[reg], static_cast<uint8_t>(rho));
}

HyperLogLog::HyperLogLog(HyperLogLog&& other) noexcept
    : heap_(std::move(other.heap_)),
      capacity_(std::exchange(other.capacity_, 0)),
      count_(std::exchange(other.count_, 0)) {
  std::memcpy(small_, other.small_, sizeof(small_));
  std::memset(other.small_, 0, sizeof(other.small_));
}

HyperLogLog& HyperLogLog::operator=(HyperLogLog&& other) noexcept {
  if (this != &other) {
    heap_ = std::move(other.heap_);
    capacity_ = std::exchange(other.capacity_, 0);
    count_ = std::exchange(other.count_, 0);
    std::memcpy(small_, other.small_, sizeof(small_));
    std::memset(other.small_, 0, sizeof(other.small_));
  }
  return *this;
}

HyperLogLog HyperLogLog::Clone() const {
  HyperLogLog copy;
  copy.capacity_ = capacity_;
  copy.count_ = count_;
  std::memcpy(copy.small_, small_, sizeof(small_));
  if (heap_ != nullptr) {
    const size_t words = is_dense() ? kNumRegisters / sizeof(uint32_t) : capacity_;
    copy.heap_ = std::make_unique_for_overwrite<uint32_t[]>(words);
    std::memcpy(copy.heap_.get(), heap_.get(), words * sizeof(uint32_t));
  }
  return copy;
}

void HyperLogLog::AddHash(uint64_t hash) {
  if (is_dense()) {
    uint32_t reg = static_cast<uint32_t>(hash >> (64 - kPrecision));
    uint64_t w = (hash << kPrecision) | (uint64_t{1} << (kPrecision - 1));
    auto rho = static_cast<uint8_t>(std::countl_zero(w) + 1);
    uint8_t* r = registers();
    if (r[reg] < rho) r[reg] = rho;
    return;
  }
  SparseInsert(SparseEntry(hash));
}

template <typename F>
void HyperLogLog::ForEachEntry(F&& f) const {
  if (capacity_ == 0) {
    for (uint32_t i = 0; i < count_; ++i) f(small_[i]);
    return;
  }
  if (is_dense()) return;
  for (uint32_t i = 0; i < capacity_; ++i) {
    if (heap_[i] != 0) f(heap_[i]);
  }
}

bool HyperLogLog::SmallInsert(uint32_t entry) {
  // Entries are ordered by index' (their high bits), so the scan stops at the first larger one.
  const uint32_t key = EntryIndex(entry);
  uint32_t i = 0;
  for (; i < count_; ++i) {
    const uint32_t k = EntryIndex(small_[i]);
    if (k == key) {
      if (entry > small_[i]) small_[i] = entry;
      return true;
    }
    if (k > key) break;
  }
  if (count_ == kSmallEntries) return false;
  for (uint32_t j = count_; j > i; --j) small_[j] = small_[j - 1];
  small_[i] = entry;
  ++count_;
  return true;
}

void HyperLogLog::InsertIntoTable(uint32_t entry) {
  // index' is 25 bits of a good hash, so its low bits spread evenly over the slots.
  const uint32_t key = EntryIndex(entry);
  const uint32_t mask = capacity_ - 1;
  for (uint32_t pos = key & mask;; pos = (pos + 1) & mask) {
    uint32_t v = heap_[pos];
    if (v == 0) {
      heap_[pos] = entry;
      ++count_;
      return;
    }
    if (EntryIndex(v) == key) {
      if (entry > v) heap_[pos] = entry;
      return;
    }
  }
}

uint32_t HyperLogLog::SlotsFor(size_t entries) {
  uint32_t capacity = kInitialSlots;
  while (entries * 4 > capacity * 3 && capacity < kMaxSparseSlots) capacity *= 2;
  return capacity;
}

void HyperLogLog::GrowTable(uint32_t capacity) {
  // From small mode the old entries are small_'s; afterwards small_ is unused (all zero).
  std::unique_ptr<uint32_t[]> old = std::move(heap_);
  const uint32_t old_capacity = capacity_;
  static_assert(kMaxSparseSlots < kDenseMode);
  uint32_t small[kSmallEntries];
  const uint32_t small_count = old_capacity == 0 ? count_ : 0;
  std::memcpy(small, small_, sizeof(small));
  std::memset(small_, 0, sizeof(small_));
  capacity_ = static_cast<uint16_t>(capacity);
  heap_ = std::make_unique<uint32_t[]>(capacity_);  // zeroed: all slots empty
  count_ = 0;
  for (uint32_t i = 0; i < small_count; ++i) InsertIntoTable(small[i]);
  for (uint32_t i = 0; i < old_capacity; ++i) {
    if (old[i] != 0) InsertIntoTable(old[i]);
  }
}

void HyperLogLog::ReserveSparse(size_t more) {
  if (is_dense() || more <= kSmallEntries) return;  // a few: small mode may still hold them
  // The union holds at least the larger side: the table SparseInsert would reach in any case.
  const uint32_t capacity = SlotsFor(std::max<size_t>(count_, more));
  if (capacity > capacity_) GrowTable(capacity);
}

void HyperLogLog::SparseInsert(uint32_t entry) {
  if (is_dense()) {
    DenseUpdate(registers(), entry);
    return;
  }
  if (capacity_ == 0) {
    if (SmallInsert(entry)) return;
    GrowTable(kInitialSlots);
  }
  const uint32_t key = EntryIndex(entry);
  const uint32_t mask = capacity_ - 1;
  uint32_t pos = key & mask;
  for (;; pos = (pos + 1) & mask) {
    const uint32_t v = heap_[pos];
    if (v == 0) break;  // new index'
    if (EntryIndex(v) == key) {
      if (entry > v) heap_[pos] = entry;
      return;
    }
  }
  if ((count_ + 1) * 4 <= capacity_ * 3) {
    heap_[pos] = entry;
    ++count_;
    return;
  }
  if (capacity_ >= kMaxSparseSlots) {
    ToDense();
    DenseUpdate(registers(), entry);
    return;
  }
  GrowTable(capacity_ * 2);
  InsertIntoTable(entry);
}

void HyperLogLog::ToDense() {
  auto dense = std::make_unique<uint32_t[]>(kNumRegisters / sizeof(uint32_t));  // zeroed
  auto* regs = reinterpret_cast<uint8_t*>(dense.get());
  ForEachEntry([regs](uint32_t e) { DenseUpdate(regs, e); });
  heap_ = std::move(dense);
  capacity_ = kDenseMode;
  count_ = 0;
  std::memset(small_, 0, sizeof(small_));
}

void HyperLogLog::Merge(const HyperLogLog& other) {
  if (other.empty()) return;
  if (empty()) {  // the first merge into a rollup: copy, with no rehashing
    *this = other.Clone();
    return;
  }
  if (other.is_dense()) {
    if (!is_dense()) ToDense();
    uint8_t* dst = registers();
    const uint8_t* src = other.registers();
    for (uint32_t i = 0; i < kNumRegisters; ++i) dst[i] = std::max(dst[i], src[i]);
    return;
  }
  if (&other == this) return;  // a set merged with itself is unchanged
  ReserveSparse(other.count_);
  other.ForEachEntry([this](uint32_t e) { SparseInsert(e); });
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
  if (is_dense()) return DenseEstimate(registers());
  return SparseEstimate(count_);
}

uint64_t HyperLogLog::EstimateRounded() const {
  double e = Estimate();
  if (!(e > 0.0)) return 0;
  return static_cast<uint64_t>(std::llround(e));
}

size_t HyperLogLog::HeapBytes() const {
  if (is_dense()) return kNumRegisters;
  return capacity_ * sizeof(uint32_t);
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
  if (is_dense()) {
    PutDenseRegisters(registers(), out);
    return;
  }
  // Small entries are already sorted; table entries are gathered (on the stack when few) and
  // sorted.
  absl::InlinedVector<uint32_t, 64> table_entries;
  const uint32_t* sorted = small_;
  if (capacity_ != 0) {
    table_entries.reserve(count_);
    ForEachEntry([&table_entries](uint32_t e) { table_entries.push_back(e); });
    std::sort(table_entries.begin(), table_entries.end());
    sorted = table_entries.data();
  }
  out->push_back(static_cast<char>(kModeSparse));
  PutVarint64(out, count_);
  uint32_t prev = 0;
  for (uint32_t i = 0; i < count_; ++i) {
    PutVarint64(out, sorted[i] - prev);
    prev = sorted[i];
  }
}

namespace {

// The sparse encoding after the mode byte: reads the entry count, checks it, then each
// delta-coded entry, checked (ascending, distinct index', rho in range), calling
// begin(count) first and add(entry) for each, ascending.
template <typename Begin, typename Add>
absl::Status ReadSparse(ByteReader* in, Begin&& begin, Add&& add) {
  uint64_t count = 0;
  absl::Status s = in->Varint64(&count, "HyperLogLog entry count");
  if (!s.ok()) return s;
  if (count > HyperLogLog::kMaxSparseEntries) {
    return DataLoss("HyperLogLog sparse entry count {} exceeds {}", count,
                    HyperLogLog::kMaxSparseEntries);
  }
  begin(count);
  uint64_t prev = 0;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t delta = 0;
    s = in->Varint64(&delta, "HyperLogLog entry");
    if (!s.ok()) return s;
    if (i > 0 && delta == 0) return DataLoss("HyperLogLog sparse entries not increasing");
    if (delta > (uint64_t{1} << 31) - prev)
      return DataLoss("HyperLogLog sparse entry out of range");
    const uint64_t e = prev + delta;
    const uint32_t rho = e & 63;
    if (rho < 1 || rho > kMaxSparseRho) return DataLoss("HyperLogLog sparse rho {}", rho);
    if (i > 0 && EntryIndex(static_cast<uint32_t>(e)) == EntryIndex(static_cast<uint32_t>(prev))) {
      return DataLoss("HyperLogLog sparse entries repeat an index");
    }
    add(static_cast<uint32_t>(e));
    prev = e;
  }
  return absl::OkStatus();
}

// The dense encoding after the mode byte: unpacks the 6-bit registers a block at a time,
// checks each block (loops the compiler vectorizes), and calls fn(first register, block).
template <typename Fn>
absl::Status ReadDense(ByteReader* in, Fn&& fn) {
  std::string_view bytes;
  absl::Status s = in->Raw(HyperLogLog::kDenseEncodedBytes, &bytes, "HyperLogLog registers");
  if (!s.ok()) return s;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  constexpr uint32_t kBlock = 256;
  uint8_t block[kBlock];
  for (uint32_t base = 0; base < HyperLogLog::kNumRegisters; base += kBlock) {
    for (uint32_t i = 0; i < kBlock; i += 4, p += 3) {
      const uint32_t v = p[0] | (p[1] << 8) | (p[2] << 16);
      block[i] = static_cast<uint8_t>(v & 63);
      block[i + 1] = static_cast<uint8_t>((v >> 6) & 63);
      block[i + 2] = static_cast<uint8_t>((v >> 12) & 63);
      block[i + 3] = static_cast<uint8_t>((v >> 18) & 63);
    }
    uint8_t top = 0;
    for (uint32_t i = 0; i < kBlock; ++i) top = std::max(top, block[i]);
    if (top > HyperLogLog::kMaxRegister) {
      return DataLoss("HyperLogLog register value {} out of range", top);
    }
    fn(base, std::span<const uint8_t, kBlock>(block));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status HyperLogLog::Deserialize(ByteReader* in) {
  uint8_t mode = 0;
  absl::Status s = in->Byte(&mode, "HyperLogLog mode");
  if (!s.ok()) return s;
  HyperLogLog parsed;
  if (mode == kModeSparse) {
    // Entries arrive ascending with distinct index', so small mode fills by appending and a
    // table is made at once with the capacity SparseInsert would have grown it to.
    s = ReadSparse(
        in,
        [&parsed](uint64_t count) {
          if (count <= kSmallEntries) return;
          const uint32_t capacity = SlotsFor(count);
          parsed.capacity_ = static_cast<uint16_t>(capacity);
          parsed.heap_ = std::make_unique<uint32_t[]>(capacity);  // zeroed: all slots empty
        },
        [&parsed](uint32_t e) {
          if (parsed.capacity_ == 0) {
            parsed.small_[parsed.count_++] = e;
          } else {
            parsed.InsertIntoTable(e);
          }
        });
  } else if (mode == kModeDense) {
    parsed.heap_ = std::make_unique_for_overwrite<uint32_t[]>(kNumRegisters / sizeof(uint32_t));
    parsed.capacity_ = kDenseMode;
    uint8_t* regs = parsed.registers();
    s = ReadDense(in, [regs](uint32_t base, auto block) {
      std::copy(block.begin(), block.end(), regs + base);
    });
  } else {
    return DataLoss("unknown HyperLogLog mode {}", mode);
  }
  if (!s.ok()) return s;
  *this = std::move(parsed);
  return absl::OkStatus();
}

absl::Status HyperLogLog::MergeSerialized(ByteReader* in) {
  if (empty()) return Deserialize(in);  // as Merge's first-merge copy
  uint8_t mode = 0;
  absl::Status s = in->Byte(&mode, "HyperLogLog mode");
  if (!s.ok()) return s;
  if (mode == kModeSparse) {
    if (is_dense()) {  // straight into the registers (on bad input *this holds part of it)
      uint8_t* regs = registers();
      return ReadSparse(
          in, [](uint64_t) {}, [regs](uint32_t e) { DenseUpdate(regs, e); });
    }
    // All entries are checked before any is inserted.
    absl::InlinedVector<uint32_t, 64> entries;
    s = ReadSparse(
        in, [&entries](uint64_t count) { entries.reserve(count); },
        [&entries](uint32_t e) { entries.push_back(e); });
    if (!s.ok()) return s;
    ReserveSparse(entries.size());
    for (uint32_t e : entries) SparseInsert(e);
    return absl::OkStatus();
  }
  if (mode == kModeDense) {
    if (!is_dense()) ToDense();
    uint8_t* regs = registers();
    return ReadDense(in, [regs](uint32_t base, auto block) {
      for (size_t i = 0; i < block.size(); ++i) regs[base + i] = std::max(regs[base + i], block[i]);
    });
  }
  return DataLoss("unknown HyperLogLog mode {}", mode);
}

}  // namespace tessera::agg
