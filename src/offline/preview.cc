#include "offline/preview.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "agg/kll_sketch.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/value.h"
#include "engine/backfill.h"
#include "engine/entity_key.h"
#include "offline/pit_engine.h"

namespace tessera::offline {

namespace {

// Statistics of one (feature, window) over keys.
struct ColumnStats {
  int64_t values = 0;  // non-NULL
  int64_t nulls = 0;
  int64_t numeric = 0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  agg::KllSketch sketch;

  void Add(const Value& v) {
    if (v.is_null()) {
      ++nulls;
      return;
    }
    ++values;
    switch (v.type()) {
      case DataType::kInt64:
      case DataType::kDouble:
      case DataType::kBool:
      case DataType::kTimestamp: {
        const double d = v.AsDouble();
        if (std::isnan(d)) return;
        ++numeric;
        min = std::min(min, d);
        max = std::max(max, d);
        sketch.Add(d);
        break;
      }
      default:
        break;
    }
  }
  void Merge(const ColumnStats& o) {
    values += o.values;
    nulls += o.nulls;
    numeric += o.numeric;
    min = std::min(min, o.min);
    max = std::max(max, o.max);
    sketch.Merge(o.sketch);
  }
};

// Collects the statistics (per worker, merged at the end) and the values of the keys shown.
class PreviewSink final : public PitSink {
 public:
  // `view`: the open view previewed; its keys without a row before `at` (keys asked for with
  // --key only) are shown but not counted in the statistics.
  PreviewSink(const PitView* view, size_t features, size_t windows, int threads,
              std::vector<uint32_t> shown)
      : view_(view),
        features_(features),
        windows_(windows),
        shown_(std::move(shown)),
        workers_(threads) {
    for (auto& w : workers_) w.stats.resize(features * windows);
  }

  void Window(int worker, size_t, uint32_t id, int64_t, size_t window,
              const std::vector<Value>& values) override {
    WorkerState& w = workers_[worker];
    if (Seen(id)) {
      for (size_t f = 0; f < features_; ++f) w.stats[f * windows_ + window].Add(values[f]);
    }
    if (std::find(shown_.begin(), shown_.end(), id) != shown_.end()) {
      auto& rows = w.shown[id];
      rows.resize(windows_);
      rows[window] = values;
    }
  }
  void PointDone(int worker, size_t, uint32_t id) override {
    if (Seen(id)) ++workers_[worker].keys;
  }

  // Merges the workers' parts.
  void Finish() {
    stats_.resize(features_ * windows_);
    for (auto& w : workers_) {
      for (size_t i = 0; i < stats_.size(); ++i) stats_[i].Merge(w.stats[i]);
      for (auto& [id, rows] : w.shown) shown_values_[id] = std::move(rows);
      keys_ += w.keys;
    }
  }

  const std::vector<ColumnStats>& stats() const { return stats_; }
  const std::map<uint32_t, std::vector<std::vector<Value>>>& shown_values() const {
    return shown_values_;
  }
  int64_t keys() const { return keys_; }

 private:
  bool Seen(uint32_t id) const { return id < view_->key_seen.size() && view_->key_seen[id] != 0; }

  struct WorkerState {
    std::vector<ColumnStats> stats;
    std::map<uint32_t, std::vector<std::vector<Value>>> shown;
    int64_t keys = 0;
  };
  const PitView* view_;
  const size_t features_;
  const size_t windows_;
  const std::vector<uint32_t> shown_;
  std::vector<WorkerState> workers_;
  std::vector<ColumnStats> stats_;
  std::map<uint32_t, std::vector<std::vector<Value>>> shown_values_;
  int64_t keys_ = 0;
};

std::string Cell(const Value& v) {
  std::string s = v.is_null() ? "null" : v.ToJson();
  if (s.size() > 28) s = s.substr(0, 25) + "...";
  return s;
}

std::string Number(double d) {
  if (std::isinf(d)) return "-";
  if (d == std::floor(d) && std::abs(d) < 1e15) return fmt::format("{}", static_cast<int64_t>(d));
  return fmt::format("{:.6g}", d);
}

}  // namespace

absl::StatusOr<std::string> BuildPreview(const sql::Catalog& catalog,
                                         const PreviewOptions& options) {
  TESSERA_RETURN_IF_ERROR(engine::CheckBackfillInputs(options.inputs));
  const sql::ViewDef* def = catalog.FindView(options.view);
  if (def == nullptr) {
    std::vector<std::string> names;
    for (const sql::ViewDef& v : catalog.views) names.push_back(v.name);
    return NotFound("no view '{}' in the SQL; it defines: {}", options.view,
                    fmt::join(names, ", "));
  }
  const sql::SourceDef* source = catalog.FindSource(def->source);
  std::vector<PitView> views;
  TESSERA_ASSIGN_OR_RETURN(PitView view, PitView::Make(*def, *source, options.windows));
  view.open_keys = true;
  view.open_at = options.at;
  views.push_back(std::move(view));
  std::vector<uint32_t> shown;
  std::vector<std::string> shown_text;
  for (const std::string& text : options.keys) {
    absl::StatusOr<std::string> stored = engine::StoredKeyFromText(text, def->keys.size());
    if (!stored.ok())
      return InvalidArgument("--key '{}': {}", text, StatusMessage(stored.status()));
    shown.push_back(views[0].AddKey(*stored));
    shown_text.push_back(text);
  }
  if (options.keys.empty()) {
    for (uint32_t id = 0; id < options.sample_keys; ++id) shown.push_back(id);
  }

  PitEngine engine(*source, &views,
                   PitOptions{.inputs = options.inputs,
                              .max_future_ms = options.max_future_ms,
                              .threads = options.threads,
                              .memory_budget_bytes = options.memory_budget_bytes,
                              .chunk_bytes = size_t{1} << 20,
                              .clock = options.clock});
  const size_t num_features = def->features.size();
  const size_t num_windows = views[0].windows.size();
  PreviewSink sink(&views[0], num_features, num_windows, engine.threads(), shown);
  TESSERA_ASSIGN_OR_RETURN(PitStats stats, engine.Run(&sink));
  sink.Finish();

  std::string out;
  if (options.at.has_value()) {
    out += fmt::format("view {} at {}: {} {}\n", def->name, FormatRfc3339Millis(*options.at),
                       sink.keys(), sink.keys() == 1 ? "key" : "keys");
  } else if (stats.views[0].aggregated == 0) {
    out += fmt::format("view {}: no on-time rows in the events\n", def->name);
  } else {
    out += fmt::format("view {} at {} (the end of the events + 1 ms): {} {}\n", def->name,
                       FormatRfc3339Millis(stats.max_event_time_ms + 1), sink.keys(),
                       sink.keys() == 1 ? "key" : "keys");
  }
  const engine::SourceCounters& c = stats.counters;
  const engine::ViewCounters& vc = stats.views[0];
  out += fmt::format(
      "events: read {}, rejected {}, late {}, field errors {}; view rows: filtered {}, null key "
      "{}, aggregated {} (as a backfill of the same files counts them)\n",
      c.lines, c.rejected, c.late, c.field_errors, vc.filtered, vc.null_key, vc.aggregated);

  size_t name_width = 8;
  for (const sql::FeatureColumn& f : def->features)
    name_width = std::max(name_width, f.name.size());
  for (size_t i = 0; i < shown.size(); ++i) {
    auto it = sink.shown_values().find(shown[i]);
    if (it == sink.shown_values().end()) continue;
    const std::string key_text =
        i < shown_text.size() ? shown_text[i]
                              : engine::KeyText(views[0].open_key[shown[i]], def->keys.size());
    out += fmt::format("\nkey {}\n  {:<{}}", key_text, "feature", name_width);
    for (const engine::WindowSpec& w : views[0].windows) out += fmt::format("  {:>14}", w.name);
    out += '\n';
    for (size_t f = 0; f < num_features; ++f) {
      out += fmt::format("  {:<{}}", def->features[f].name, name_width);
      for (size_t w = 0; w < num_windows; ++w) {
        out += fmt::format("  {:>14}", Cell(it->second[w][f]));
      }
      out += '\n';
    }
  }

  out += fmt::format(
      "\nstatistics over the {} keys\n  {:<{}}  {:>6}  {:>10}  {:>10}  {:>12}  "
      "{:>12}  {:>12}  {:>12}\n",
      sink.keys(), "feature", name_width, "window", "non-null", "nulls", "min", "p50", "p99",
      "max");
  for (size_t f = 0; f < num_features; ++f) {
    for (size_t w = 0; w < num_windows; ++w) {
      const ColumnStats& s = sink.stats()[f * num_windows + w];
      const bool numeric = s.numeric > 0;
      out += fmt::format(
          "  {:<{}}  {:>6}  {:>10}  {:>10}  {:>12}  {:>12}  {:>12}  {:>12}\n",
          def->features[f].name, name_width, views[0].windows[w].name, s.values, s.nulls,
          numeric ? Number(s.min) : "-", numeric ? Number(s.sketch.Quantile(0.5)) : "-",
          numeric ? Number(s.sketch.Quantile(0.99)) : "-", numeric ? Number(s.max) : "-");
    }
  }
  return out;
}

}  // namespace tessera::offline
