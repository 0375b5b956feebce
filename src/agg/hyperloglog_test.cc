#include "agg/hyperloglog.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "common/hash.h"
#include "common/varint.h"

namespace tessera::agg {
namespace {

// The hash of the i-th distinct value of trial `seed` (BIGINT hashing: 8 little-endian bytes).
uint64_t ValueHash(uint64_t seed, uint64_t i) {
  uint64_t v = seed * 0x9E3779B97F4A7C15ULL + i;
  return Hash64(&v, 8);
}

HyperLogLog Build(uint64_t seed, uint64_t begin, uint64_t end) {
  HyperLogLog h;
  for (uint64_t i = begin; i < end; ++i) h.AddHash(ValueHash(seed, i));
  return h;
}

std::string Bytes(const HyperLogLog& h) {
  std::string out;
  h.Serialize(&out);
  return out;
}

TEST(HyperLogLogTest, EmptyAllocatesNothing) {
  HyperLogLog h;
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.Estimate(), 0.0);
  EXPECT_EQ(h.HeapBytes(), 0u);
  std::string bytes = Bytes(h);
  EXPECT_EQ(bytes, std::string("\x01\x00", 2));
}

TEST(HyperLogLogTest, DuplicatesDoNotCount) {
  HyperLogLog h;
  for (int rep = 0; rep < 1000; ++rep) {
    for (uint64_t i = 0; i < 7; ++i) h.AddHash(ValueHash(1, i));
  }
  EXPECT_EQ(h.EstimateRounded(), 7u);
  EXPECT_FALSE(h.is_dense());
  EXPECT_LT(h.HeapBytes(), 512u);
}

TEST(HyperLogLogTest, SmallCardinalitiesAreExact) {
  int off_by_one = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    for (uint64_t n : {1, 2, 10, 100, 1000, 3000}) {
      uint64_t est = Build(seed, 0, n).EstimateRounded();
      EXPECT_LE(std::llabs(static_cast<long long>(est) - static_cast<long long>(n)), 1)
          << "n=" << n << " seed=" << seed;
      off_by_one += est != n;
    }
  }
  EXPECT_LE(off_by_one, 3);  // a 25-bit prefix collision is rare
}

TEST(HyperLogLogTest, ErrorBoundsOverManySeeds) {
  constexpr int kSeeds = 30;
  const uint64_t cardinalities[] = {1, 10, 100, 1000, 10'000, 100'000, 1'000'000};
  for (uint64_t n : cardinalities) {
    double worst = 0.0, sum_sq = 0.0;
    for (int seed = 0; seed < kSeeds; ++seed) {
      HyperLogLog h = Build(1000 + seed, 0, n);
      double rel = (h.Estimate() - static_cast<double>(n)) / static_cast<double>(n);
      worst = std::max(worst, std::fabs(rel));
      sum_sq += rel * rel;
    }
    double rms = std::sqrt(sum_sq / kSeeds);
    std::printf("HLL n=%-8llu worst |rel err| %.4f%%  rms %.4f%%  (%d seeds)\n",
                static_cast<unsigned long long>(n), worst * 100, rms * 100, kSeeds);
    EXPECT_LE(rms, 0.0125) << "n=" << n;  // theory: 1.04/sqrt(2^14) = 0.81%
    EXPECT_LE(worst, 0.03) << "n=" << n;  // ~3.7 standard errors
    if (n <= 1000) {
      EXPECT_LE(worst, 0.001);  // sparse: exact-ish
    }
  }
}

TEST(HyperLogLogTest, ConvertsToDenseWhenSparseWouldBeLarger) {
  HyperLogLog h = Build(3, 0, HyperLogLog::kMaxSparseEntries - 100);
  EXPECT_FALSE(h.is_dense());
  for (uint64_t i = HyperLogLog::kMaxSparseEntries - 100; i < 20'000; ++i) {
    h.AddHash(ValueHash(3, i));
  }
  EXPECT_TRUE(h.is_dense());
  EXPECT_EQ(Bytes(h).size(), 1 + HyperLogLog::kDenseEncodedBytes);
  EXPECT_LE(h.HeapBytes(), HyperLogLog::kNumRegisters + 64);
}

TEST(HyperLogLogTest, MergeEveryRepresentationCombination) {
  // Ranges that overlap; sizes chosen to make each operand sparse or dense.
  struct Range {
    uint64_t begin, end;
  };
  const Range ranges[] = {{0, 500}, {300, 3500}, {1000, 30'000}, {20'000, 200'000}};
  for (const Range& a : ranges) {
    for (const Range& b : ranges) {
      HyperLogLog x = Build(7, a.begin, a.end);
      HyperLogLog y = Build(7, b.begin, b.end);
      std::string y_before = Bytes(y);
      x.Merge(y);
      EXPECT_EQ(Bytes(y), y_before);
      HyperLogLog direct = Build(7, std::min(a.begin, b.begin), std::max(a.end, b.end));
      if (a.end < b.begin || b.end < a.begin) continue;  // not contiguous: skip direct check
      EXPECT_EQ(Bytes(x), Bytes(direct))
          << a.begin << "-" << a.end << " + " << b.begin << "-" << b.end;
      EXPECT_EQ(x.Estimate(), direct.Estimate());
    }
  }
}

TEST(HyperLogLogTest, SmallSketchesStayInlineAndMatchEveryPath) {
  // Around the inline limit, every way of building the same set (adds, merges of small and
  // table sketches, clones, moves, decoding) gives the same bytes and estimate.
  const uint64_t limit = HyperLogLog::kSmallEntries;
  for (uint64_t n = 0; n <= limit + 3; ++n) {
    HyperLogLog added = Build(13, 0, n);
    EXPECT_EQ(added.HeapBytes() == 0, n <= limit) << n;
    for (uint64_t split = 0; split <= n; ++split) {
      HyperLogLog merged = Build(13, 0, split);
      merged.Merge(Build(13, split, n));
      HyperLogLog other = Build(13, split, n);
      other.Merge(Build(13, 0, split));
      HyperLogLog big = Build(13, 0, split);
      big.Merge(Build(13, 0, limit + 2));  // a small sketch into a table one, then the rest
      big.Merge(Build(13, split, n));
      HyperLogLog all = Build(13, 0, std::max(n, limit + 2));
      EXPECT_EQ(Bytes(merged), Bytes(added)) << n << "/" << split;
      EXPECT_EQ(Bytes(other), Bytes(added)) << n << "/" << split;
      EXPECT_EQ(Bytes(big), Bytes(all)) << n << "/" << split;
    }
    HyperLogLog moved = added.Clone();
    HyperLogLog target = std::move(moved);
    EXPECT_TRUE(moved.empty());  // NOLINT(bugprone-use-after-move): documented to be empty
    EXPECT_EQ(Bytes(target), Bytes(added));
    std::string bytes = Bytes(added);
    ByteReader reader(bytes);
    HyperLogLog decoded;
    ASSERT_TRUE(decoded.Deserialize(&reader).ok());
    EXPECT_EQ(Bytes(decoded), bytes);
    EXPECT_EQ(decoded.HeapBytes(), added.HeapBytes());
    EXPECT_EQ(decoded.EstimateRounded(), n);
  }
}

TEST(HyperLogLogTest, MergeIsOrderIndependent) {
  HyperLogLog parts[5] = {Build(9, 0, 10), Build(9, 5, 2000), Build(9, 100, 4000),
                          Build(9, 3000, 9000), Build(9, 0, 1)};
  HyperLogLog forward, backward;
  for (int i = 0; i < 5; ++i) forward.Merge(parts[i]);
  for (int i = 4; i >= 0; --i) backward.Merge(parts[i]);
  EXPECT_EQ(Bytes(forward), Bytes(backward));
  EXPECT_EQ(Bytes(forward), Bytes(Build(9, 0, 9000)));
}

TEST(HyperLogLogTest, RoundTripsSparseAndDense) {
  for (uint64_t n : {0, 1, 50, 4000, 4200, 100'000}) {
    HyperLogLog h = Build(11, 0, n);
    std::string bytes = Bytes(h);
    ByteReader reader(bytes);
    HyperLogLog back = Build(12, 0, 10);  // replaced by Deserialize
    ASSERT_TRUE(back.Deserialize(&reader).ok()) << n;
    EXPECT_TRUE(reader.empty());
    EXPECT_EQ(Bytes(back), bytes);
    EXPECT_EQ(back.Estimate(), h.Estimate());
  }
}

TEST(HyperLogLogTest, MergeSerializedEqualsDecodeThenMerge) {
  // Every pair of representations: empty, inline, table, dense, each side.
  struct Range {
    uint64_t begin, end;
  };
  const Range ranges[] = {{0, 0}, {0, 2}, {1, 40}, {30, 3500}, {1000, 30'000}, {0, 100'000}};
  for (const Range& a : ranges) {
    for (const Range& b : ranges) {
      HyperLogLog expected = Build(5, a.begin, a.end);
      expected.Merge(Build(5, b.begin, b.end));
      HyperLogLog got = Build(5, a.begin, a.end);
      const std::string bytes = Bytes(Build(5, b.begin, b.end));
      ByteReader reader(bytes);
      ASSERT_TRUE(got.MergeSerialized(&reader).ok());
      EXPECT_TRUE(reader.empty());
      EXPECT_EQ(Bytes(got), Bytes(expected))
          << a.begin << "-" << a.end << " + " << b.begin << "-" << b.end;
      EXPECT_EQ(got.HeapBytes(), expected.HeapBytes());
    }
  }
}

TEST(HyperLogLogTest, MergeSerializedRejectsWhatDeserializeRejects) {
  const std::string bad[] = {std::string("\x03", 1),         std::string("\x01\x02\x41\x00", 4),
                             std::string("\x01\x01\x40", 3), std::string("\x01\x01\x7f", 3),
                             std::string("\x01\x81\x20", 3), std::string("\x02\x00", 2)};
  for (const std::string& bytes : bad) {
    for (uint64_t n : {0, 2, 100, 50'000}) {  // empty, inline, table, dense receivers
      HyperLogLog h = Build(3, 0, n);
      ByteReader reader(bytes);
      EXPECT_EQ(h.MergeSerialized(&reader).code(), absl::StatusCode::kDataLoss) << n;
    }
  }
  std::string dense(1 + HyperLogLog::kDenseEncodedBytes, '\0');
  dense[0] = 2;
  dense[1] = 60;  // register 60 > 51
  HyperLogLog h = Build(3, 0, 100);
  ByteReader reader(dense);
  EXPECT_EQ(h.MergeSerialized(&reader).code(), absl::StatusCode::kDataLoss);
}

TEST(HyperLogLogTest, RejectsCorruptEncodings) {
  auto parse = [](const std::string& bytes) {
    ByteReader reader(bytes);
    HyperLogLog h;
    return h.Deserialize(&reader);
  };
  EXPECT_FALSE(parse(std::string("\x03", 1)).ok());              // unknown mode
  EXPECT_FALSE(parse(std::string("\x01\x02\x41\x00", 4)).ok());  // repeated entry
  EXPECT_FALSE(parse(std::string("\x01\x01\x40", 3)).ok());      // rho 0
  EXPECT_FALSE(parse(std::string("\x01\x01\x7f", 3)).ok());      // rho 63
  EXPECT_FALSE(parse(std::string("\x01\x81\x20", 3)).ok());      // too many entries
  std::string dense(1 + HyperLogLog::kDenseEncodedBytes, '\0');
  dense[0] = 2;
  EXPECT_TRUE(parse(dense).ok());
  dense[1] = 60;  // register 60 > 51
  EXPECT_FALSE(parse(dense).ok());
  EXPECT_FALSE(parse(dense.substr(0, 100)).ok());
}

}  // namespace
}  // namespace tessera::agg
