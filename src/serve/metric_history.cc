#include "serve/metric_history.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "common/json_string.h"

namespace tessera::serve {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void AppendNumber(double v, std::string* out) {
  if (std::isfinite(v)) {
    fmt::format_to(std::back_inserter(*out), "{}", v);
  } else {
    *out += "null";
  }
}

}  // namespace

double HistogramQuantile(double q, const std::vector<double>& bounds,
                         const std::vector<uint64_t>& before, const std::vector<uint64_t>& after) {
  if (after.empty() || after.size() != bounds.size() + 1) return kNaN;
  const bool has_before = before.size() == after.size();
  auto delta = [&](size_t i) -> double {
    const uint64_t b = has_before ? before[i] : 0;
    return after[i] >= b ? static_cast<double>(after[i] - b) : 0.0;
  };
  const double total = delta(after.size() - 1);
  if (total <= 0) return kNaN;
  const double rank = q * total;
  double below = 0;  // cumulative count up to the previous bound
  for (size_t i = 0; i < bounds.size(); ++i) {
    const double upto = delta(i);
    if (upto >= rank && upto > below) {
      const double lower = i == 0 ? std::min(0.0, bounds[0]) : bounds[i - 1];
      return lower + (bounds[i] - lower) * (rank - below) / (upto - below);
    }
    below = upto;
  }
  return bounds.empty() ? kNaN : bounds.back();  // in +Inf: the highest finite bound
}

MetricHistory::MetricHistory(Options options) : options_(options) {
  times_.assign(std::max<size_t>(options_.points, 1), 0);
}

MetricHistory::Track* MetricHistory::FindOrAdd(const MetricFamilySnapshot& family,
                                               const MetricSeriesSnapshot& series,
                                               std::string_view kind) {
  std::string id = family.name;
  id += '\0';
  id += kind;
  id += '\0';
  id += series.label_text;
  auto it = tracks_.find(id);
  if (it != tracks_.end()) return &it->second;
  if (tracks_.size() >= options_.max_tracks) {
    ++dropped_tracks_;
    return nullptr;
  }
  Track& t = tracks_[std::move(id)];
  t.name = family.name;
  t.labels = series.labels;
  t.kind = std::string(kind);
  t.values.assign(times_.size(), kNaN);
  return &t;
}

void MetricHistory::Record(int64_t now_ms, const std::vector<MetricFamilySnapshot>& snapshot) {
  MutexLock lock(&mu_);
  const size_t slot = samples_ % times_.size();
  times_[slot] = now_ms;
  for (auto& [id, track] : tracks_) track.values[slot] = kNaN;
  for (const MetricFamilySnapshot& family : snapshot) {
    for (const MetricSeriesSnapshot& series : family.series) {
      switch (family.type) {
        case MetricType::kCounter:
          if (Track* t = FindOrAdd(family, series, "counter")) {
            t->values[slot] = static_cast<double>(series.count);
          }
          break;
        case MetricType::kGauge:
          if (Track* t = FindOrAdd(family, series, "gauge")) t->values[slot] = series.value;
          break;
        case MetricType::kHistogram: {
          Track* count = FindOrAdd(family, series, "count");
          if (count == nullptr) break;
          count->values[slot] =
              series.cumulative.empty() ? 0.0 : static_cast<double>(series.cumulative.back());
          for (const auto& [kind, q] : {std::pair{"p50", 0.5}, std::pair{"p99", 0.99}}) {
            if (Track* t = FindOrAdd(family, series, kind)) {
              t->values[slot] =
                  HistogramQuantile(q, series.bounds, count->last_cumulative, series.cumulative);
            }
          }
          count->last_cumulative = series.cumulative;
          break;
        }
      }
    }
  }
  ++samples_;
}

std::string MetricHistory::ToJson(const std::vector<std::string>& families) const {
  MutexLock lock(&mu_);
  const size_t n = std::min<uint64_t>(samples_, times_.size());
  const uint64_t first = samples_ - n;
  std::string out = fmt::format("{{\"points\":{},\"t\":[", n);
  for (uint64_t i = first; i < samples_; ++i) {
    if (i > first) out += ',';
    fmt::format_to(std::back_inserter(out), "{}", times_[i % times_.size()]);
  }
  out += "],\"series\":[";
  bool first_track = true;
  for (const auto& [id, track] : tracks_) {
    if (!families.empty() &&
        std::find(families.begin(), families.end(), track.name) == families.end()) {
      continue;
    }
    if (!first_track) out += ',';
    first_track = false;
    out += "{\"name\":";
    AppendJsonString(track.name, &out);
    out += ",\"labels\":{";
    for (size_t i = 0; i < track.labels.size(); ++i) {
      if (i > 0) out += ',';
      AppendJsonString(track.labels[i].first, &out);
      out += ':';
      AppendJsonString(track.labels[i].second, &out);
    }
    out += "},\"kind\":\"";
    out += track.kind;
    out += "\",\"values\":[";
    for (uint64_t i = first; i < samples_; ++i) {
      if (i > first) out += ',';
      AppendNumber(track.values[i % times_.size()], &out);
    }
    out += "]}";
  }
  out += "]}";
  return out;
}

size_t MetricHistory::samples() const {
  MutexLock lock(&mu_);
  return samples_;
}

size_t MetricHistory::dropped_tracks() const {
  MutexLock lock(&mu_);
  return dropped_tracks_;
}

}  // namespace tessera::serve
