#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/varint.h"

namespace tessera::agg {

// KLL quantile sketch over doubles (Karnin, Lang, Liberty 2016), with the capacity schedule of
// the practical variant: level h of H holds up to max(8, k·(2/3)^(H-1-h)) items of weight 2^h.
// When the sketch is over its total capacity, the lowest full level is sorted and compacted:
// every other item (offset chosen by a coin) is promoted to the level above, an odd item stays.
// Total weight is preserved exactly, so Σ size(h)·2^h == n always holds.
//
// With k = kDefaultK the normalized rank error stays within ~0.5% (measured worst over many
// seeds; see kll_sketch_test.cc). Quantile() returns an item that was added (nearest rank).
//
// Determinism: the coin is a hash of (n, level, level size), never a global RNG, so the same
// sequence of operations always gives the same sketch. Merge is exactly commutative (level 0
// is sorted before every compaction) and associative within the error bound.
//
// Small sketches stay small: storage grows with the number of items (a sketch of 3 values holds
// 3 doubles), up to ~3k items. NaN must not be added. Not thread-safe.
class KllSketch {
 public:
  static constexpr uint32_t kDefaultK = 400;
  static constexpr uint32_t kMinLevelCapacity = 8;
  static constexpr size_t kMaxLevels = 61;

  KllSketch() = default;

  // REQUIRES: !isnan(x).
  void Add(double x);
  void Merge(const KllSketch& other);

  // Below kDefaultK items a sketch never compacts: it is just its items in arrival order
  // (level 0). Callers may keep such a few items themselves (APPROX_PERCENTILE keeps the first
  // ones inline in its state) and use these helpers, which give exactly what the same calls on
  // the sketch built by Add()ing `items` in order would. REQUIRES for all: items.size() <=
  // kDefaultK, no NaN.
  //
  // Merge(s) for that sketch s of `items`.
  void MergeItems(std::span<const double> items);
  // Serialize() of the sketch of `items`.
  static void SerializeItems(std::span<const double> items, std::string* out);
  // Quantile(q) of the sketch of `items`. REQUIRES: !items.empty().
  static double QuantileOfItems(std::span<const double> items, double q);
  // Level h's items (level 0 in arrival order, higher levels ascending). REQUIRES: h <
  // num_levels().
  size_t num_levels() const { return levels_.size(); }
  std::span<const double> level(size_t h) const { return levels_[h]; }

  uint64_t n() const { return n_; }
  bool empty() const { return n_ == 0; }
  size_t num_retained() const { return size_; }
  double min() const { return min_; }
  double max() const { return max_; }

  // The item of nearest rank ceil(q·n) (q clamped to [0, 1]; q = 0 gives the minimum, q = 1 the
  // maximum). REQUIRES: !empty().
  double Quantile(double q) const;

  // Normalized rank estimate of `x`: the weight of retained items <= x, divided by n.
  double Rank(double x) const;

  size_t HeapBytes() const;

  // Encoding: varint n; if n > 0: double min, double max, varint number of levels, and per
  // level a varint item count followed by the items (each level sorted ascending).
  void Serialize(std::string* out) const;
  // Reads one sketch into *this (replacing it). Rejects malformed input with DataLoss.
  absl::Status Deserialize(ByteReader* in);

 private:
  static uint32_t LevelCapacity(size_t level, size_t num_levels);
  static size_t TotalCapacity(size_t num_levels);
  void Compress();
  void CompactLevel(size_t level);

  uint64_t n_ = 0;
  double min_ = 0.0;
  double max_ = 0.0;
  size_t size_ = 0;            // items retained over all levels
  size_t total_capacity_ = 0;  // TotalCapacity(levels_.size())
  // levels_[0] is unsorted; every higher level is sorted ascending.
  std::vector<std::vector<double>> levels_;
};

}  // namespace tessera::agg
