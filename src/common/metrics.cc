#include "common/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>

#include "common/mutex.h"

namespace tessera {
namespace {

// Adds `delta` to an atomic double (CAS loop: portable, lock-free where the platform's 64-bit
// CAS is).
void AtomicAdd(std::atomic<double>& a, double delta) {
  double cur = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(cur, cur + delta, std::memory_order_relaxed,
                                  std::memory_order_relaxed)) {
  }
}

// Prometheus float formatting: shortest round-trip, with the spellings Go's ParseFloat accepts.
void AppendDouble(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    fmt::format_to(std::back_inserter(out), "{}", v);
  }
}

bool IsMetricName(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool IsLabelName(std::string_view s) {
  if (s.empty() || s.starts_with("__")) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

void AppendEscapedLabelValue(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

void AppendEscapedHelp(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

using Type = MetricType;

const char* TypeName(Type t) {
  switch (t) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// Canonical label text `a="x",b="y"` (sorted by label name, values escaped), or nullopt-like
// false when a label name is invalid or repeated.
bool CanonicalLabels(const Labels& labels, bool histogram, std::string* out) {
  std::vector<const std::pair<std::string, std::string>*> sorted;
  sorted.reserve(labels.size());
  for (const auto& l : labels) sorted.push_back(&l);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  out->clear();
  for (size_t i = 0; i < sorted.size(); ++i) {
    const auto& [name, value] = *sorted[i];
    if (!IsLabelName(name)) return false;
    if (i > 0 && sorted[i - 1]->first == name) return false;
    if (histogram && name == "le") return false;
    if (i > 0) *out += ',';
    *out += name;
    *out += "=\"";
    AppendEscapedLabelValue(*out, value);
    *out += '"';
  }
  return true;
}

struct Series {
  Labels labels;  // sorted by label name
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Histogram> histogram;
  // Set for callback gauges (then `gauge` is null). Shared so rendering can call it unlocked
  // while a concurrent AddCallbackGauge replaces it.
  std::shared_ptr<const std::function<double()>> callback;
};

struct Family {
  Type type;
  std::string help;
  std::map<std::string, Series> series;  // by canonical label text: a stable, sorted order
};

// Appends `name{labels[,extra]}` to `out`.
void AppendSeriesName(std::string& out, std::string_view name, std::string_view suffix,
                      const std::string& labels, std::string_view extra = {}) {
  out += name;
  out += suffix;
  if (labels.empty() && extra.empty()) return;
  out += '{';
  out += labels;
  if (!labels.empty() && !extra.empty()) out += ',';
  out += extra;
  out += '}';
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Counter, Gauge, Histogram

void Counter::Inc(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
int64_t Counter::Value() const { return value_.load(std::memory_order_relaxed); }

void Gauge::Set(double v) { value_.store(v, std::memory_order_relaxed); }
void Gauge::Add(double delta) { AtomicAdd(value_, delta); }
double Gauge::Value() const { return value_.load(std::memory_order_relaxed); }

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
  std::erase_if(bounds_, [](double b) { return std::isnan(b) || b == HUGE_VAL; });
  std::sort(bounds_.begin(), bounds_.end());
  bounds_.erase(std::unique(bounds_.begin(), bounds_.end()), bounds_.end());
  counts_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  // First bound >= v (Prometheus `le` semantics); NaN compares false everywhere, so route it to
  // +Inf explicitly.
  size_t i = std::isnan(v)
                 ? bounds_.size()
                 : static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                       bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, v);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    out[i] = total;
  }
  return out;
}

double Histogram::Sum() const { return sum_.load(std::memory_order_relaxed); }
uint64_t Histogram::Count() const { return count_.load(std::memory_order_relaxed); }

std::vector<double> LatencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
}

// ---------------------------------------------------------------------------------------------
// MetricsRegistry

struct MetricsRegistry::Impl {
  mutable Mutex mu;
  std::map<std::string, Family, std::less<>> families ABSL_GUARDED_BY(mu);

  // Handed out on programming errors; never rendered.
  Counter dummy_counter;
  Gauge dummy_gauge;
  Histogram dummy_histogram{LatencyBuckets()};
  Counter dummy_errors;

  // Finds or creates the series; nullptr on a programming error (counted).
  Series* FindOrCreate(std::string_view name, std::string_view help, const Labels& labels,
                       Type type, bool* created) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    *created = false;
    std::string label_text;
    if (!IsMetricName(name) || !CanonicalLabels(labels, type == Type::kHistogram, &label_text)) {
      CountError();
      return nullptr;
    }
    auto fit = families.find(name);
    if (fit == families.end()) {
      fit = families.emplace(std::string(name), Family{type, std::string(help), {}}).first;
    } else if (fit->second.type != type) {
      CountError();
      return nullptr;
    }
    auto& series = fit->second.series;
    if (series.size() >= MetricsRegistry::kMaxSeriesPerFamily &&
        series.find(label_text) == series.end()) {
      CountError();  // a label fed by unbounded input: refuse to grow (see metrics.h)
      return nullptr;
    }
    auto [sit, inserted] = series.try_emplace(std::move(label_text));
    *created = inserted;
    if (inserted) {
      sit->second.labels = labels;
      std::sort(sit->second.labels.begin(), sit->second.labels.end());
    }
    return &sit->second;
  }

  void CountError() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    static constexpr std::string_view kName = "tessera_metrics_registration_errors_total";
    auto it = families.find(kName);
    if (it == families.end()) {
      Family f{Type::kCounter, "Metric registrations rejected as programming errors.", {}};
      f.series[""].counter = std::make_unique<Counter>();
      it = families.emplace(std::string(kName), std::move(f)).first;
    }
    auto sit = it->second.series.find("");
    if (it->second.type == Type::kCounter && sit != it->second.series.end() &&
        sit->second.counter != nullptr) {
      sit->second.counter->Inc();
    } else {
      dummy_errors.Inc();
    }
  }
};

MetricsRegistry::MetricsRegistry() : impl_(std::make_unique<Impl>()) {}
MetricsRegistry::~MetricsRegistry() = default;

Counter* MetricsRegistry::GetCounter(std::string_view name, std::string_view help,
                                     const Labels& labels) {
  MutexLock lock(&impl_->mu);
  bool created;
  Series* s = impl_->FindOrCreate(name, help, labels, Type::kCounter, &created);
  if (s == nullptr) return &impl_->dummy_counter;
  if (created) s->counter = std::make_unique<Counter>();
  return s->counter.get();
}

Gauge* MetricsRegistry::GetGauge(std::string_view name, std::string_view help,
                                 const Labels& labels) {
  MutexLock lock(&impl_->mu);
  bool created;
  Series* s = impl_->FindOrCreate(name, help, labels, Type::kGauge, &created);
  if (s == nullptr) return &impl_->dummy_gauge;
  if (created) s->gauge = std::make_unique<Gauge>();
  if (s->gauge == nullptr) {  // a callback gauge owns this series
    impl_->CountError();
    return &impl_->dummy_gauge;
  }
  return s->gauge.get();
}

Histogram* MetricsRegistry::GetHistogram(std::string_view name, std::string_view help,
                                         const Labels& labels, std::vector<double> upper_bounds) {
  MutexLock lock(&impl_->mu);
  bool created;
  Series* s = impl_->FindOrCreate(name, help, labels, Type::kHistogram, &created);
  if (s == nullptr) return &impl_->dummy_histogram;
  if (created) s->histogram = std::make_unique<Histogram>(std::move(upper_bounds));
  return s->histogram.get();
}

void MetricsRegistry::AddCallbackGauge(std::string_view name, std::string_view help,
                                       const Labels& labels, std::function<double()> fn) {
  auto shared = std::make_shared<const std::function<double()>>(std::move(fn));
  MutexLock lock(&impl_->mu);
  bool created;
  Series* s = impl_->FindOrCreate(name, help, labels, Type::kGauge, &created);
  if (s == nullptr) return;
  if (!created && s->callback == nullptr) {  // a plain Gauge owns this series
    impl_->CountError();
    return;
  }
  s->callback = std::move(shared);
}

std::vector<MetricFamilySnapshot> MetricsRegistry::Snapshot() const {
  // The structure under the lock; values read and callbacks run without it (series objects
  // never move or die before the registry does).
  struct SeriesRef {
    const std::string* label_text;
    const Series* series;
    std::shared_ptr<const std::function<double()>> callback;
  };
  std::vector<MetricFamilySnapshot> out;
  std::vector<std::vector<SeriesRef>> refs;
  {
    MutexLock lock(&impl_->mu);
    out.reserve(impl_->families.size());
    refs.reserve(impl_->families.size());
    for (const auto& [name, family] : impl_->families) {
      MetricFamilySnapshot& f = out.emplace_back();
      f.name = name;
      f.help = family.help;
      f.type = family.type;
      f.series.resize(family.series.size());
      std::vector<SeriesRef>& r = refs.emplace_back();
      r.reserve(family.series.size());
      size_t i = 0;
      for (const auto& [label_text, s] : family.series) {
        f.series[i].labels = s.labels;
        f.series[i].label_text = label_text;
        r.push_back({&label_text, &s, s.callback});
        ++i;
      }
    }
  }
  for (size_t fi = 0; fi < out.size(); ++fi) {
    for (size_t si = 0; si < refs[fi].size(); ++si) {
      const SeriesRef& ref = refs[fi][si];
      MetricSeriesSnapshot& snap = out[fi].series[si];
      if (ref.series->counter != nullptr) {
        snap.count = ref.series->counter->Value();
      } else if (ref.callback != nullptr) {
        try {
          snap.value = (*ref.callback)();
        } catch (...) {
          snap.value = std::numeric_limits<double>::quiet_NaN();
        }
      } else if (ref.series->gauge != nullptr) {
        snap.value = ref.series->gauge->Value();
      } else if (ref.series->histogram != nullptr) {
        snap.bounds = ref.series->histogram->bounds();
        snap.cumulative = ref.series->histogram->CumulativeCounts();
        snap.sum = ref.series->histogram->Sum();
      }
    }
  }
  return out;
}

std::string MetricsRegistry::RenderPrometheus() const {
  std::string out;
  for (const MetricFamilySnapshot& f : Snapshot()) {
    out += "# HELP ";
    out += f.name;
    out += ' ';
    AppendEscapedHelp(out, f.help);
    out += "\n# TYPE ";
    out += f.name;
    out += ' ';
    out += TypeName(f.type);
    out += '\n';
    for (const MetricSeriesSnapshot& s : f.series) {
      switch (f.type) {
        case Type::kCounter:
          AppendSeriesName(out, f.name, "", s.label_text);
          fmt::format_to(std::back_inserter(out), " {}\n", s.count);
          break;
        case Type::kGauge:
          AppendSeriesName(out, f.name, "", s.label_text);
          out += ' ';
          AppendDouble(out, s.value);
          out += '\n';
          break;
        case Type::kHistogram: {
          std::string le;
          for (size_t i = 0; i < s.cumulative.size(); ++i) {
            le = "le=\"";
            if (i < s.bounds.size()) {
              AppendDouble(le, s.bounds[i]);
            } else {
              le += "+Inf";
            }
            le += '"';
            AppendSeriesName(out, f.name, "_bucket", s.label_text, le);
            fmt::format_to(std::back_inserter(out), " {}\n", s.cumulative[i]);
          }
          AppendSeriesName(out, f.name, "_sum", s.label_text);
          out += ' ';
          AppendDouble(out, s.sum);
          out += '\n';
          AppendSeriesName(out, f.name, "_count", s.label_text);
          fmt::format_to(std::back_inserter(out), " {}\n",
                         s.cumulative.empty() ? 0 : s.cumulative.back());
          break;
        }
      }
    }
  }
  return out;
}

}  // namespace tessera
