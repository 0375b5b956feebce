#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera {

// Label set of one series, e.g. {{"source","plays"},{"view","user_stats"}}.
using Labels = std::vector<std::pair<std::string, std::string>>;

// A monotonically increasing count. Inc() is lock-free and cheap enough for per-batch use.
class Counter {
 public:
  void Inc(int64_t n = 1);
  int64_t Value() const;

 private:
  friend class MetricsRegistry;
  std::atomic<int64_t> value_{0};
};

// A value that goes up and down (queue depth, watermark lag). Lock-free.
class Gauge {
 public:
  void Set(double v);
  void Add(double delta);
  double Value() const;

 private:
  std::atomic<double> value_{0};
};

// A latency/size distribution with fixed upper bounds (Prometheus histogram semantics:
// cumulative buckets, _sum, _count). Observe() is lock-free. Bounds are sorted and
// deduplicated; a +Inf or NaN bound is dropped (+Inf is implicit). A NaN observation counts
// in +Inf only.
// Note: a concurrent snapshot may see an observation in Count() but not yet in Sum() (or the
// reverse); each value is exact once writers are quiescent. RenderPrometheus() derives _count
// from the bucket counts, so _count always equals the +Inf bucket.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double v);
  // Snapshot: cumulative counts per bound (+Inf last), sum, count.
  std::vector<uint64_t> CumulativeCounts() const;
  double Sum() const;
  uint64_t Count() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket (non-cumulative), +Inf last
  std::atomic<double> sum_{0};
  std::atomic<uint64_t> count_{0};
};

// Default buckets for latencies in seconds: 50us .. 10s.
std::vector<double> LatencyBuckets();

enum class MetricType { kCounter, kGauge, kHistogram };

// One series' value at one moment (MetricsRegistry::Snapshot).
struct MetricSeriesSnapshot {
  Labels labels;           // sorted by label name
  std::string label_text;  // `a="x",b="y"`, as in the Prometheus text
  int64_t count = 0;       // a counter's value
  double value = 0;        // a gauge's value (NaN where a callback gauge threw)
  // A histogram's upper bounds (+Inf implicit), cumulative counts per bound (+Inf last), sum.
  std::vector<double> bounds;
  std::vector<uint64_t> cumulative;
  double sum = 0;
};

struct MetricFamilySnapshot {
  std::string name;
  std::string help;
  MetricType type = MetricType::kCounter;
  std::vector<MetricSeriesSnapshot> series;  // sorted by label text
};

// Named metric families with labelled series, rendered in the Prometheus text format (0.0.4).
// Get* returns the same series for the same (name, labels); pointers stay valid for the
// registry's lifetime. Thread-safe; callers cache the returned pointers on hot paths.
//
// Labels are matched and rendered sorted by label name, so {a,b} and {b,a} are one series.
// The first registration of a name fixes its type and help text; series render sorted by their
// label set. A series' histogram bounds are fixed by its first registration.
//
// Programming errors never crash and never corrupt the output: registering a name with a second
// type (e.g. GetGauge on a counter family, or AddCallbackGauge on a plain Gauge series), an
// invalid metric or label name, or a duplicate label name returns a valid, private dummy series
// that is never rendered (AddCallbackGauge is then ignored), and bumps the counter
// `tessera_metrics_registration_errors_total`, which the registry renders itself.
//
// Series are never freed, so every label value must come from a bounded set (names from the
// SQL catalog, fixed route names, a fixed set of methods and statuses), never from raw request
// data. As a backstop, a family holds at most kMaxSeriesPerFamily series: registering another
// is treated as the programming error it is (a dummy series, counted as above).
class MetricsRegistry {
 public:
  static constexpr size_t kMaxSeriesPerFamily = 2000;

  MetricsRegistry();
  ~MetricsRegistry();

  Counter* GetCounter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge* GetGauge(std::string_view name, std::string_view help, const Labels& labels = {});
  Histogram* GetHistogram(std::string_view name, std::string_view help, const Labels& labels = {},
                          std::vector<double> upper_bounds = LatencyBuckets());
  // A gauge computed when rendering (e.g. freshness = now - newest event). `fn` runs on the
  // rendering thread without registry locks held (it may use the registry); it must be cheap and
  // thread-safe, and must stay callable for the registry's lifetime. Registering the same
  // (name, labels) again replaces the function.
  void AddCallbackGauge(std::string_view name, std::string_view help, const Labels& labels,
                        std::function<double()> fn);

  // Every family (sorted by name) and series with its current value. Values are read without
  // the registry's lock, each atomically, so a snapshot taken while writers run is not one
  // instant (as with RenderPrometheus, which renders one).
  std::vector<MetricFamilySnapshot> Snapshot() const;

  // "# HELP …\n# TYPE …\nname{labels} value\n…", families sorted by name.
  std::string RenderPrometheus() const;

  // Content-Type of RenderPrometheus() output.
  static constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera
