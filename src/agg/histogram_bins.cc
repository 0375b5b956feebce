#include "agg/histogram_bins.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <iterator>
#include <limits>
#include <utility>

#include "agg/agg_types.h"
#include "common/errors.h"
#include "common/strings.h"

namespace tessera::agg {

namespace {

constexpr int32_t kLog2MinExponent = -1074;  // 2^-1074: the least subnormal
constexpr int32_t kLog2MaxExponent = 1023;   // 2^1023 <= DBL_MAX < 2^1024
constexpr int32_t kLog10MinExponent = -324;  // the bin below 1e-323: the least subnormal
constexpr int32_t kLog10MaxExponent = 308;   // 1e308 <= DBL_MAX < 1e309

// The doubles nearest 10^k for k in [kLog10MinExponent + 1, kLog10MaxExponent], correctly
// rounded by the decimal parser (std::pow need not be).
const std::array<double, kLog10MaxExponent - kLog10MinExponent>& PowersOfTen() {
  static const auto* table = [] {
    auto* t = new std::array<double, kLog10MaxExponent - kLog10MinExponent>();
    for (int32_t k = kLog10MinExponent + 1; k <= kLog10MaxExponent; ++k) {
      double v = 0.0;
      const std::string text = fmt::format("1e{}", k);
      std::from_chars(text.data(), text.data() + text.size(), v);
      (*t)[static_cast<size_t>(k - kLog10MinExponent - 1)] = v;
    }
    return t;
  }();
  return *table;
}

std::string Number(double v) { return fmt::format("{}", v); }

// The whole of `s` as a double (decimal or exponent form, correctly rounded), or false.
bool ParseDouble(std::string_view s, double* v) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

}  // namespace

HistogramBins::HistogramBins(Scale scale, std::string spec, std::vector<double> edges)
    : scale_(scale), spec_(std::move(spec)), edges_(std::move(edges)) {
  if (scale_ == Scale::kLog2) {
    min_exponent_ = kLog2MinExponent;
    max_exponent_ = kLog2MaxExponent;
  } else if (scale_ == Scale::kLog10) {
    min_exponent_ = kLog10MinExponent;
    max_exponent_ = kLog10MaxExponent;
  }
  if (scale_ != Scale::kEdges) max_magnitude_bin_ = max_exponent_ - min_exponent_ + 1;
}

absl::StatusOr<HistogramBins> HistogramBins::Parse(std::string_view spec) {
  const std::string lower = ToLowerAscii(Trim(spec));
  if (lower == "log2") return HistogramBins(Scale::kLog2, lower, {});
  if (lower == "log10") return HistogramBins(Scale::kLog10, lower, {});
  auto invalid = [&](std::string_view why) {
    return InvalidArgument(
        "APPROX_HISTOGRAM bins '{}' {}, expected 'log2', 'log10' or 1 to {} strictly ascending "
        "finite edges such as '0,10,100'",
        spec, why, kMaxHistogramEdges);
  };
  if (lower.empty()) return invalid("are empty");
  std::vector<double> edges;
  std::string_view rest = spec;
  while (true) {
    const size_t comma = rest.find(',');
    const std::string_view part = Trim(rest.substr(0, comma));
    double v = 0.0;
    if (!ParseDouble(part, &v) || !std::isfinite(v)) {
      return invalid(fmt::format("hold '{}', which is not a finite number", part));
    }
    if (v == 0.0) v = 0.0;  // -0 is the edge 0
    if (!edges.empty() && !(v > edges.back())) {
      return invalid(fmt::format("are not strictly ascending at '{}'", part));
    }
    if (edges.size() == kMaxHistogramEdges) return invalid("hold too many edges");
    edges.push_back(v);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  std::string canonical;
  for (double e : edges) {
    if (!canonical.empty()) canonical.push_back(',');
    canonical += Number(e);
  }
  return HistogramBins(Scale::kEdges, std::move(canonical), std::move(edges));
}

double HistogramBins::LowerBound(int32_t k) const {
  if (k == min_exponent_) return std::numeric_limits<double>::denorm_min();
  if (scale_ == Scale::kLog2) return std::ldexp(1.0, k);
  return PowersOfTen()[static_cast<size_t>(k - kLog10MinExponent - 1)];
}

int32_t HistogramBins::MagnitudeBin(double a) const {
  int32_t k = 0;
  if (std::isinf(a)) {
    k = max_exponent_;
  } else if (scale_ == Scale::kLog2) {
    int e = 0;
    std::frexp(a, &e);  // a = m·2^e, m in [0.5, 1)
    k = e - 1;
  } else {
    // floor(log10(a)) from the binary exponent (within one of the truth, and cheaper than
    // log10), then settled against the exact bounds.
    int e = 0;
    std::frexp(a, &e);  // 2^(e-1) <= a < 2^e
    k = std::clamp(static_cast<int32_t>(std::floor((e - 1) * 0.30102999566398120)), min_exponent_,
                   max_exponent_);
    while (k > min_exponent_ && a < LowerBound(k)) --k;
    while (k < max_exponent_ && a >= LowerBound(k + 1)) ++k;
  }
  return k - min_exponent_ + 1;
}

int32_t HistogramBins::BinOf(double x) const {
  if (scale_ == Scale::kEdges) {
    return static_cast<int32_t>(std::upper_bound(edges_.begin(), edges_.end(), x) - edges_.begin());
  }
  if (x == 0.0) return 0;
  const int32_t bin = MagnitudeBin(std::fabs(x));
  return x > 0.0 ? bin : -bin;
}

std::string HistogramBins::Label(int32_t bin) const {
  if (scale_ == Scale::kEdges) {
    const auto i = static_cast<size_t>(bin);
    const std::string lo = i == 0 ? "-inf" : Number(edges_[i - 1]);
    if (i == edges_.size()) return fmt::format("[{},inf]", lo);
    return fmt::format("[{},{})", lo, Number(edges_[i]));
  }
  if (bin == 0) return "[0,0]";
  const int32_t k = std::abs(bin) + min_exponent_ - 1;
  const std::string lo = Number(LowerBound(k));
  if (k == max_exponent_) {
    return bin > 0 ? fmt::format("[{},inf]", lo) : fmt::format("[-inf,-{}]", lo);
  }
  const std::string hi = Number(LowerBound(k + 1));
  return bin > 0 ? fmt::format("[{},{})", lo, hi) : fmt::format("(-{},-{}]", hi, lo);
}

}  // namespace tessera::agg
