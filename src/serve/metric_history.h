#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/metrics.h"
#include "common/mutex.h"

namespace tessera::serve {

// A short in-process history of every metric series: the console's charts of the last minutes,
// with no Prometheus needed. Record() takes one sample of a registry snapshot (a timer calls it
// every few seconds); the last `points` samples are kept.
//
// Per series it keeps one track per kind:
//   counter   the counter's value (a rate is the difference of two points over their times)
//   gauge     the gauge's value
//   count     a histogram's cumulative count of observations
//   p50, p99  a histogram's quantiles over the observations since the previous sample, by
//             linear interpolation within the bucket (Prometheus' histogram_quantile); null
//             where the interval saw none, the highest finite bound where it falls in +Inf
//
// Memory is bounded: `points` doubles per track, and at most `max_tracks` tracks (series beyond
// them are not recorded, and counted in dropped_tracks()). The registry itself bounds its
// series. Thread-safe.
class MetricHistory {
 public:
  struct Options {
    size_t points = 450;  // 15 minutes at one sample every 2 s
    size_t max_tracks = 4096;
  };

  explicit MetricHistory(Options options);

  // One sample at `now_ms` (wall-clock milliseconds since the epoch).
  void Record(int64_t now_ms, const std::vector<MetricFamilySnapshot>& snapshot);

  // {"points":N,"t":[ms...],"series":[{"name":…,"labels":{…},"kind":…,"values":[…]},…]},
  // oldest sample first; a value is null where the series did not exist then (or a quantile had
  // no observations). `families`: only these metric names (empty: all).
  std::string ToJson(const std::vector<std::string>& families) const;

  size_t samples() const;
  size_t dropped_tracks() const;

 private:
  struct Track {
    std::string name;
    Labels labels;
    std::string kind;
    std::vector<double> values;             // ring, indexed like times_; NaN where not recorded
    std::vector<uint64_t> last_cumulative;  // histograms: the previous sample's buckets
  };

  // The track for (family, series, kind), created if there is room; nullptr otherwise.
  Track* FindOrAdd(const MetricFamilySnapshot& family, const MetricSeriesSnapshot& series,
                   std::string_view kind) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable Mutex mu_;
  uint64_t samples_ ABSL_GUARDED_BY(mu_) = 0;  // recorded so far; slot = index % points
  std::vector<int64_t> times_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Track> tracks_ ABSL_GUARDED_BY(mu_);  // by name, kind and label text
  size_t dropped_tracks_ ABSL_GUARDED_BY(mu_) = 0;
};

// The q-quantile (0 < q < 1) of the observations between two cumulative snapshots of one
// histogram (`before` may be empty: no earlier snapshot), or NaN when there were none.
double HistogramQuantile(double q, const std::vector<double>& bounds,
                         const std::vector<uint64_t>& before, const std::vector<uint64_t>& after);

}  // namespace tessera::serve
