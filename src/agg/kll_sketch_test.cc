#include "agg/kll_sketch.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/varint.h"

namespace tessera::agg {
namespace {

std::string Bytes(const KllSketch& s) {
  std::string out;
  s.Serialize(&out);
  return out;
}

// Distance from q to the normalized rank interval [#(< v), #(<= v)] / n of v in sorted data.
double RankError(const std::vector<double>& sorted, double v, double q) {
  double n = static_cast<double>(sorted.size());
  double lo =
      static_cast<double>(std::lower_bound(sorted.begin(), sorted.end(), v) - sorted.begin()) / n;
  double hi =
      static_cast<double>(std::upper_bound(sorted.begin(), sorted.end(), v) - sorted.begin()) / n;
  if (q < lo) return lo - q;
  if (q > hi) return q - hi;
  return 0.0;
}

constexpr double kQuantiles[] = {0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99};

TEST(KllSketchTest, EmptyAndSmallSketchesAreSmallAndExact) {
  KllSketch s;
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.HeapBytes(), 0u);
  EXPECT_EQ(Bytes(s), std::string("\x00", 1));
  for (double x : {5.0, -1.0, 3.0}) s.Add(x);
  EXPECT_LE(s.HeapBytes(), 128u);
  EXPECT_EQ(s.Quantile(0.0), -1.0);
  EXPECT_EQ(s.Quantile(0.5), 3.0);
  EXPECT_EQ(s.Quantile(1.0), 5.0);
  EXPECT_EQ(s.Quantile(0.34), 3.0);  // nearest rank ceil(0.34 * 3) = 2
  EXPECT_EQ(s.Quantile(0.33), -1.0);
}

TEST(KllSketchTest, ExactBelowFirstCompaction) {
  std::mt19937_64 rng(1);
  std::vector<double> xs;
  KllSketch s;
  for (int i = 0; i < 400; ++i) {
    xs.push_back(static_cast<double>(rng() % 1000));
    s.Add(xs.back());
  }
  std::sort(xs.begin(), xs.end());
  for (double q : kQuantiles) {
    size_t rank = static_cast<size_t>(std::ceil(q * xs.size()));
    EXPECT_EQ(s.Quantile(q), xs[rank - 1]) << q;
  }
}

// Worst normalized rank error over seeds, sizes, quantiles; both streamed and merged sketches.
TEST(KllSketchTest, RankErrorBoundsOverManySeeds) {
  const size_t sizes[] = {1000, 10'000, 100'000, 1'000'000};
  for (size_t n : sizes) {
    const int seeds = n >= 1'000'000 ? 8 : (n >= 100'000 ? 20 : 40);
    double worst = 0.0, worst_merged = 0.0, sum_err = 0.0;
    int count = 0;
    size_t max_retained = 0;
    for (int seed = 0; seed < seeds; ++seed) {
      std::mt19937_64 rng(seed * 7919 + n);
      std::vector<double> xs(n);
      // Alternate input shapes: uniform random, sorted, reverse sorted, heavy duplicates.
      for (size_t i = 0; i < n; ++i) {
        switch (seed % 4) {
          case 0:
            xs[i] = std::uniform_real_distribution<double>(0, 1)(rng);
            break;
          case 1:
            xs[i] = static_cast<double>(i);
            break;
          case 2:
            xs[i] = static_cast<double>(n - i);
            break;
          default:
            xs[i] = static_cast<double>(rng() % 100);
        }
      }
      KllSketch streamed;
      for (double x : xs) streamed.Add(x);
      KllSketch merged;
      constexpr size_t kParts = 16;
      for (size_t p = 0; p < kParts; ++p) {
        KllSketch part;
        for (size_t i = p * n / kParts; i < (p + 1) * n / kParts; ++i) part.Add(xs[i]);
        merged.Merge(part);
      }
      EXPECT_EQ(streamed.n(), n);
      EXPECT_EQ(merged.n(), n);
      max_retained = std::max({max_retained, streamed.num_retained(), merged.num_retained()});
      std::sort(xs.begin(), xs.end());
      for (double q : kQuantiles) {
        double e1 = RankError(xs, streamed.Quantile(q), q);
        double e2 = RankError(xs, merged.Quantile(q), q);
        EXPECT_TRUE(std::binary_search(xs.begin(), xs.end(), streamed.Quantile(q)));
        worst = std::max(worst, e1);
        worst_merged = std::max(worst_merged, e2);
        sum_err += e1 + e2;
        count += 2;
      }
    }
    std::printf(
        "KLL n=%-8zu worst rank err streamed %.4f%%  merged %.4f%%  mean %.4f%%  retained <= %zu "
        "(%d seeds)\n",
        n, worst * 100, worst_merged * 100, sum_err / count * 100, max_retained, seeds);
    EXPECT_LE(worst, 0.01) << n;
    EXPECT_LE(worst_merged, 0.01) << n;
  }
}

TEST(KllSketchTest, DeterministicAndMergeCommutes) {
  std::mt19937_64 rng(3);
  KllSketch a, b, a2;
  for (int i = 0; i < 50'000; ++i) {
    double x = std::normal_distribution<double>(0, 1)(rng);
    a.Add(x);
    a2.Add(x);
    if (i % 3 == 0) b.Add(x * 2);
  }
  EXPECT_EQ(Bytes(a), Bytes(a2));
  KllSketch ab = a, ba = b;
  ab.Merge(b);
  ba.Merge(a);
  EXPECT_EQ(Bytes(ab), Bytes(ba));
}

TEST(KllSketchTest, RoundTripsAndRejectsCorruption) {
  std::mt19937_64 rng(4);
  KllSketch s;
  for (int i = 0; i < 20'000; ++i) s.Add(static_cast<double>(rng() % 100'000));
  std::string bytes = Bytes(s);
  {
    ByteReader reader(bytes);
    KllSketch back;
    ASSERT_TRUE(back.Deserialize(&reader).ok());
    EXPECT_TRUE(reader.empty());
    EXPECT_EQ(Bytes(back), bytes);
    for (double q : kQuantiles) EXPECT_EQ(back.Quantile(q), s.Quantile(q));
  }
  for (size_t len = 0; len < bytes.size(); len += 7) {
    ByteReader reader(std::string_view(bytes).substr(0, len));
    KllSketch back;
    EXPECT_FALSE(back.Deserialize(&reader).ok()) << len;
  }
  // Flipping the count breaks the weight invariant.
  std::string bad = bytes;
  bad[0] = static_cast<char>(bad[0] ^ 1);
  ByteReader reader(bad);
  KllSketch back;
  EXPECT_FALSE(back.Deserialize(&reader).ok());
}

}  // namespace
}  // namespace tessera::agg
