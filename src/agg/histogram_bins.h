#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tessera::agg {

// The bins of APPROX_HISTOGRAM(x, bins): a total order of numbered bins covering every
// non-NaN double, each with a text label. Three forms:
//
//   'log2', 'log10'  magnitude bins with base b: [b^k, b^(k+1)) for positive values, the mirror
//                    (-b^(k+1), -b^k] for negative ones and [0,0] for zero (and -0). The bounds
//                    are the doubles nearest b^k (exact for base 2), the smallest bin starts at
//                    the smallest positive double, and the largest bins reach the infinities,
//                    which they hold: [b^kmax,inf] and [-inf,-b^kmax].
//   'e1,…,en'        explicit ascending finite edges: [-inf,e1), [e1,e2), …, [en,inf].
//
// Labels use the shortest round-trip decimal of each bound ("[10,100)", "[0.001,0.01)",
// "[1e+300,1e+301)", "(-10,-1]", "[0,0]"), so distinct bins have distinct labels. Bin ids are
// ordered like the values they hold; there are at most 4197 bins (log2), 1267 (log10) or
// kMaxHistogramEdges + 1. Immutable; thread-safe.
class HistogramBins {
 public:
  // Parses a spec (see NormalizeHistogramBins in agg_types.h for the accepted text).
  static absl::StatusOr<HistogramBins> Parse(std::string_view spec);

  // The canonical spec: "log2", "log10" or the edges as shortest round-trip decimals.
  const std::string& spec() const { return spec_; }

  int32_t min_bin() const { return -max_magnitude_bin_; }
  int32_t max_bin() const {
    return scale_ == Scale::kEdges ? static_cast<int32_t>(edges_.size()) : max_magnitude_bin_;
  }

  // The bin of x. REQUIRES: x is not NaN.
  int32_t BinOf(double x) const;

  // "[lo,hi)" and the like (see above). REQUIRES: min_bin() <= bin <= max_bin().
  std::string Label(int32_t bin) const;

 private:
  enum class Scale : uint8_t { kLog2, kLog10, kEdges };
  HistogramBins(Scale scale, std::string spec, std::vector<double> edges);

  // Log scales: magnitude bin k (b^k <= |x| < b^(k+1)) has id k - min_exponent_ + 1 for
  // positive x, its negation for negative x, and 0 is the zero bin. Edges: the id is the number
  // of edges <= x.
  int32_t MagnitudeBin(double magnitude) const;
  double LowerBound(int32_t k) const;  // b^k as a double (the smallest k: the least subnormal)

  Scale scale_;
  std::string spec_;
  std::vector<double> edges_;
  int32_t min_exponent_ = 0;
  int32_t max_exponent_ = 0;
  int32_t max_magnitude_bin_ = 0;  // 0 for explicit edges
};

}  // namespace tessera::agg
