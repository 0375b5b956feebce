#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "common/varint.h"

namespace tessera::agg {

// HyperLogLog distinct-count sketch over 64-bit hashes, precision 14 (16384 registers,
// ~0.8% standard error), with an HLL++-style sparse mode.
//
// Sparse mode keeps one 32-bit entry per distinct 25-bit hash prefix (index' << 6 | rho' of
// the remaining 39 bits, the largest rho' seen) in an open-addressing hash set, and estimates
// by linear counting over 2^25 buckets, which is exact up to prefix collisions (≈ n²/2^26:
// 0.14 expected at n = 3072). When the set would outgrow the dense registers (4096 slots of 4
// bytes at most 3/4 full: 3072 entries) the sketch converts to dense: one byte per register in
// memory, 6 bits per register when serialized. Whether a sketch is sparse or dense depends only
// on the set of hashes added, never on the order of adds and merges. Dense registers derived
// from sparse entries are identical to registers built directly from the hashes, so every
// combination of sparse and dense merges consistently. Dense estimates use Ertl's improved
// raw estimator ("New cardinality estimation algorithms for HyperLogLog sketches", 2017),
// which needs no empirical bias tables.
//
// Sparse entries live inline while there are at most kSmallEntries of them (the sketch of a
// tile with a few rows never touches the heap), then in a heap table.
//
// A default-constructed sketch is empty and owns no heap memory. The sketch holds no pointer
// into itself, so it may be relocated with memcpy. Not thread-safe; const methods never modify
// the sketch (they may use scratch copies).
class HyperLogLog {
 public:
  static constexpr int kPrecision = 14;
  static constexpr uint32_t kNumRegisters = 1u << kPrecision;
  static constexpr int kSparsePrecision = 25;
  static constexpr int kMaxRegister = 64 - kPrecision + 1;                     // 51
  static constexpr size_t kMaxSparseSlots = kNumRegisters / sizeof(uint32_t);  // 4096
  static constexpr size_t kMaxSparseEntries = kMaxSparseSlots / 4 * 3;         // 3072
  static constexpr size_t kDenseEncodedBytes = kNumRegisters * 6 / 8;
  static constexpr size_t kSmallEntries = 3;  // sparse entries held without heap memory

  HyperLogLog() = default;
  // Moving leaves `other` empty.
  HyperLogLog(HyperLogLog&& other) noexcept;
  HyperLogLog& operator=(HyperLogLog&& other) noexcept;

  // A deep copy.
  HyperLogLog Clone() const;

  void AddHash(uint64_t hash);
  void Merge(const HyperLogLog& other);

  // Estimated number of distinct hashes added (0 for an empty sketch).
  double Estimate() const;
  uint64_t EstimateRounded() const;

  bool is_dense() const { return capacity_ == kDenseMode; }
  bool empty() const { return !is_dense() && count_ == 0; }
  size_t HeapBytes() const;

  // Encoding: byte mode (1 = sparse, 2 = dense; an empty sketch is sparse with 0 entries);
  //   sparse: varint count, then count varints of strictly increasing entries, delta-coded;
  //   dense:  kDenseEncodedBytes bytes of 6-bit registers, little-endian bit packing.
  void Serialize(std::string* out) const;
  // Reads one sketch into *this (replacing it). Rejects malformed input with DataLoss.
  absl::Status Deserialize(ByteReader* in);
  // Merges one encoded sketch into *this, as Deserialize into another sketch and Merge would,
  // without building that sketch. Rejects what Deserialize rejects; *this may then hold part of
  // the input (the caller discards it).
  absl::Status MergeSerialized(ByteReader* in);

 private:
  // capacity_ of a dense sketch.
  static constexpr uint16_t kDenseMode = 0xffff;

  static uint32_t SparseEntry(uint64_t hash);
  static void DenseUpdate(uint8_t* registers, uint32_t entry);
  // Inserts a sparse entry (keeping the larger rho' for an index' already present); moves the
  // entries to the heap table when they outgrow small_, and converts to dense when the set would
  // exceed kMaxSparseEntries.
  void SparseInsert(uint32_t entry);
  // Inserts into small_; false (and no change) when a new index' finds small_ full.
  bool SmallInsert(uint32_t entry);
  void InsertIntoTable(uint32_t entry);
  // Rehashes the entries (small or table) into a table of `capacity` slots (a power of 2, at
  // least 4/3 of the entries).
  void GrowTable(uint32_t capacity);
  // Before more than kSmallEntries sparse inserts of a set of `more` distinct entries: grows the
  // table once to what the union needs at least (the larger side), so capacity still follows
  // the entry count alone, as without the reservation.
  void ReserveSparse(size_t more);
  // The table capacity SparseInsert grows to for `entries` entries (at most kMaxSparseSlots).
  static uint32_t SlotsFor(size_t entries);
  // Calls f(entry) for every sparse entry (small or table), in no particular order.
  template <typename F>
  void ForEachEntry(F&& f) const;
  void ToDense();
  uint8_t* registers() { return reinterpret_cast<uint8_t*>(heap_.get()); }
  const uint8_t* registers() const { return reinterpret_cast<const uint8_t*>(heap_.get()); }
  static double SparseEstimate(size_t distinct_entries);
  static double DenseEstimate(const uint8_t* registers);

  // Three modes, told apart by capacity_:
  //   small  (0):           count_ entries in small_, ascending; heap_ is null.
  //   sparse (power of 2):  open-addressing set of capacity_ slots in heap_ keyed by index'
  //                         (0 marks an empty slot; every entry has rho' >= 1 so is never 0),
  //                         count_ entries, at most 3/4 full.
  //   dense  (kDenseMode):  kNumRegisters one-byte registers in heap_ (read as bytes); count_ 0.
  // 16-bit sizes (capacity_ <= kMaxSparseSlots, count_ <= kMaxSparseEntries) keep the sketch
  // at 24 bytes: it sits in every tile's state.
  std::unique_ptr<uint32_t[]> heap_;
  uint32_t small_[kSmallEntries] = {};
  uint16_t capacity_ = 0;
  uint16_t count_ = 0;
};

}  // namespace tessera::agg
