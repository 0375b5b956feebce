#include "offline/training_set.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>

#include "common/errors.h"
#include "common/json_string.h"
#include "common/output_file.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/varint.h"
#include "engine/backfill.h"
#include "nlohmann/json.hpp"
#include "offline/csv.h"
#include "offline/pit_engine.h"
#include "offline/spine.h"

namespace tessera::offline {

namespace {

std::string ErrnoText() { return std::strerror(errno); }

// Encodes each point's feature values as text in the output format and writes the table in
// spine order. Per spine row and view, the values are a "fragment" in the stream of the worker
// that answered it: each value as PutBytes(text), window by window in PitView::windows order.
// The streams are spilled to unlinked temporary files (tmpfile(3)) as they grow and mapped for
// the final write, so the encoded values live in the page cache, not on the heap.
class TableWriter final : public PitSink {
 public:
  static constexpr size_t kSpillBytes = size_t{4} << 20;

  TableWriter(const std::vector<PitView>& views, const Spine& spine, TableFormat format,
              int threads)
      : views_(views), spine_(spine), format_(format), workers_(threads) {
    fragment_.assign(views.size(), std::vector<uint64_t>(spine.size(), kNoFragment));
    for (auto& w : workers_) w.windows.resize(views.size());
    // The values of an empty window (NULL and never-seen keys), by the same encoder.
    for (size_t v = 0; v < views.size(); ++v) {
      tile::OwnedBlock block(*views[v].rt->layout);
      engine::FeatureFinalizer finalizer(*views[v].rt);
      std::vector<Value> values;
      finalizer.Finalize(block.data(), /*at_ms=*/0, &values);  // empty: the same at any time
      std::string& out = empty_.emplace_back();
      for (size_t k = 0; k < views[v].windows.size(); ++k) Encode(values, &out);
    }
  }

  void Window(int worker, size_t view, uint32_t id, int64_t t, size_t window,
              const std::vector<Value>& features) override {
    std::vector<std::string>& texts = workers_[worker].windows[view];
    texts.resize(views_[view].windows.size());
    texts[window].clear();
    Encode(features, &texts[window]);
  }

  void PointDone(int worker, size_t view, uint32_t id) override {
    WorkerState& w = workers_[worker];
    fragment_[view][id] = (static_cast<uint64_t>(worker) << 56) | (w.spilled + w.fragments.size());
    for (const std::string& text : w.windows[view]) w.fragments += text;
    if (w.fragments.size() >= kSpillBytes) w.Spill();
  }

  ~TableWriter() override {
    for (WorkerState& w : workers_) {
      if (w.mapped != nullptr) ::munmap(w.mapped, w.spilled);
      if (w.file != nullptr) std::fclose(w.file);
    }
  }

  // Ends the spilling (after the engine's run): maps every worker's stream.
  absl::Status Finish() {
    for (WorkerState& w : workers_) {
      w.Spill();
      TESSERA_RETURN_IF_ERROR(w.error);
      if (w.spilled == 0) continue;
      if (std::fflush(w.file) != 0) return Internal("spilling feature values: {}", ErrnoText());
      void* p = ::mmap(nullptr, w.spilled, PROT_READ, MAP_PRIVATE, ::fileno(w.file), 0);
      if (p == MAP_FAILED) return Internal("mapping spilled feature values: {}", ErrnoText());
      w.mapped = static_cast<char*>(p);
    }
    return absl::OkStatus();
  }

  absl::Status Write(OutputFile* out) const {
    std::vector<std::string> names;
    for (const PitView& v : views_) {
      for (const sql::FeatureColumn& f : v.rt->def->features) {
        for (const engine::WindowSpec& w : v.windows) {
          names.push_back(fmt::format("{}__{}__{}", v.rt->def->name, f.name, w.name));
        }
      }
    }
    const bool ndjson = format_ == TableFormat::kNdjson;
    std::string buffer;
    if (!ndjson) {
      bool first = true;
      for (const std::string& c : spine_.columns()) {
        if (!first) buffer += ',';
        first = false;
        AppendCsvField(c, &buffer);
      }
      for (const std::string& name : names) {
        if (!first) buffer += ',';
        first = false;
        AppendCsvField(name, &buffer);
      }
      buffer += '\n';
    }
    std::vector<std::string> json_names;
    for (const std::string& name : names) {
      std::string n;
      AppendJsonString(name, &n);
      n += ':';
      json_names.push_back(std::move(n));
    }
    std::vector<std::string_view> values;
    for (size_t row = 0; row < spine_.size(); ++row) {
      if (ndjson) buffer += '{';
      bool any = spine_.AppendColumns(row, format_, &buffer);
      size_t column = 0;
      for (size_t v = 0; v < views_.size(); ++v) {
        // Stored window by window; written feature by feature (the names' order).
        const uint64_t ref = fragment_[v][row];
        ByteReader reader(ref == kNoFragment ? std::string_view(empty_[v])
                                             : workers_[ref >> 56].Stream().substr(
                                                   ref & ((uint64_t{1} << 56) - 1)));
        const size_t num_features = views_[v].rt->def->features.size();
        const size_t num_windows = views_[v].windows.size();
        values.resize(num_features * num_windows);
        for (std::string_view& value : values) {
          reader.Bytes(&value, "feature value").IgnoreError();  // written by Encode()
        }
        for (size_t f = 0; f < num_features; ++f) {
          for (size_t w = 0; w < num_windows; ++w, ++column) {
            if (any) buffer += ',';
            any = true;
            if (ndjson) buffer += json_names[column];
            buffer += values[w * num_features + f];
          }
        }
      }
      buffer += ndjson ? "}\n" : "\n";
      if (buffer.size() >= (size_t{1} << 20)) {
        TESSERA_RETURN_IF_ERROR(out->Write(buffer));
        buffer.clear();
      }
    }
    return out->Write(buffer);
  }

 private:
  static constexpr uint64_t kNoFragment = UINT64_MAX;
  struct WorkerState {
    std::vector<std::vector<std::string>> windows;  // [view][window]: the point's values so far
    std::string fragments;                          // not spilled yet
    FILE* file = nullptr;                           // the spilled stream
    uint64_t spilled = 0;
    char* mapped = nullptr;  // after Finish()
    absl::Status error;

    void Spill() {
      if (fragments.empty() || !error.ok()) return;
      if (file == nullptr) file = std::tmpfile();
      if (file == nullptr ||
          std::fwrite(fragments.data(), 1, fragments.size(), file) != fragments.size()) {
        error = Internal("cannot spill feature values to a temporary file ({}): {}",
                         std::getenv("TMPDIR") != nullptr ? std::getenv("TMPDIR") : P_tmpdir,
                         ErrnoText());
        return;
      }
      spilled += fragments.size();
      fragments.clear();
    }
    // The whole stream. REQUIRES: Finish().
    std::string_view Stream() const { return std::string_view(mapped, spilled); }
  };

  // Appends each value as PutBytes of its text: NDJSON, JSON; CSV, a field (NULL empty, strings
  // as they are, timestamps in RFC 3339, lists as JSON text).
  void Encode(const std::vector<Value>& values, std::string* out) const {
    std::string text;
    for (const Value& value : values) {
      text.clear();
      if (format_ == TableFormat::kNdjson) {
        value.AppendJson(&text);
      } else if (!value.is_null()) {
        switch (value.type()) {
          case DataType::kString:
            AppendCsvField(value.string(), &text);
            break;
          case DataType::kTimestamp:
            text = FormatRfc3339Millis(value.int64());
            break;
          case DataType::kList:
          case DataType::kMap:
            AppendCsvField(value.ToJson(), &text);
            break;
          default:
            value.AppendJson(&text);
            if (text == "null") text.clear();  // a non-finite double
        }
      }
      PutBytes(out, text);
    }
  }

  const std::vector<PitView>& views_;
  const Spine& spine_;
  const TableFormat format_;
  std::vector<WorkerState> workers_;
  std::vector<std::vector<uint64_t>> fragment_;  // [view][spine row]
  std::vector<std::string> empty_;               // [view]
};

}  // namespace

std::string TrainingSetSummary::ToJson() const {
  nlohmann::json j;
  j["spine_rows"] = spine_rows;
  j["spine_rows_skipped"] = spine_rows_skipped;
  nlohmann::json nulls = nlohmann::json::object();
  for (const auto& [name, n] : spine_null_keys) nulls[name] = n;
  j["spine_null_keys"] = nulls;
  engine::AddReplayCounters(counters, views, &j);
  j["files"] = files;
  j["files_skipped"] = files_skipped;
  j["files_resumed"] = files_resumed;
  j["tiles"] = tiles;
  j["passes"] = passes;
  j["key_parts"] = partitions;
  j["out_bytes"] = out_bytes;
  j["seconds"] = std::round(seconds * 1000) / 1000;
  j["threads"] = threads;
  return j.dump();
}

absl::StatusOr<TrainingSetSummary> BuildTrainingSet(const sql::Catalog& catalog,
                                                    const TrainingSetOptions& options) {
  const int64_t t0 = options.clock->MonotonicNanos();
  if (options.views.empty()) return InvalidArgument("no views: pass --views V1,V2");
  TESSERA_ASSIGN_OR_RETURN(TableFormat out_format, TableFormatOfPath(options.out));
  TESSERA_RETURN_IF_ERROR(engine::CheckBackfillInputs(options.inputs));
  std::vector<std::string> read = options.inputs;
  read.push_back(options.spine);
  for (const std::string& path : read) {
    std::error_code ec;
    if (path == options.out || std::filesystem::equivalent(path, options.out, ec)) {
      return InvalidArgument("--out '{}' is also an input ('{}'): it would be overwritten",
                             options.out, path);
    }
  }

  // The views, their windows and the one source they read.
  std::vector<PitView> views;
  const sql::SourceDef* source = nullptr;
  SpineOptions spine_options{
      .time_column = options.spine_time, .skip_bad_rows = options.skip_bad_spine, .views = {}};
  for (const std::string& name : options.views) {
    const sql::ViewDef* def = catalog.FindView(name);
    if (def == nullptr) {
      std::vector<std::string> names;
      for (const sql::ViewDef& v : catalog.views) names.push_back(v.name);
      return NotFound("no view '{}' in the SQL; it defines: {}", name, fmt::join(names, ", "));
    }
    for (const PitView& v : views) {
      if (v.rt->def == def) return InvalidArgument("view '{}' is listed twice in --views", name);
    }
    const sql::SourceDef* s = catalog.FindSource(def->source);
    if (source != nullptr && s != source) {
      return InvalidArgument(
          "views '{}' and '{}' read different sources ('{}', '{}'): the events of one training "
          "set are one stream; build one training set per source",
          views.front().rt->def->name, def->name, source->name, s->name);
    }
    source = s;
    TESSERA_ASSIGN_OR_RETURN(PitView v, PitView::Make(*def, *s, options.windows));
    SpineKeyColumns keys;
    keys.names = def->key_names;
    for (const auto& k : def->keys) keys.types.push_back(k->type);
    spine_options.views.push_back(std::move(keys));
    views.push_back(std::move(v));
  }

  TESSERA_ASSIGN_OR_RETURN(Spine spine, Spine::Read(options.spine, spine_options));
  // Feature columns must not collide with the spine's own or with each other.
  std::set<std::string> names(spine.columns().begin(), spine.columns().end());
  for (const PitView& v : views) {
    for (const engine::WindowSpec& w : v.windows) {
      for (const sql::FeatureColumn& f : v.rt->def->features) {
        const std::string name = fmt::format("{}__{}__{}", v.rt->def->name, f.name, w.name);
        if (!names.insert(name).second) {
          return InvalidArgument(
              "the output would have two columns named '{}' (the spine's own, or two views' "
              "features); rename the spine column or a view's feature",
              name);
        }
      }
    }
  }
  std::vector<int64_t> times(spine.size());
  for (size_t row = 0; row < spine.size(); ++row) times[row] = spine.time(row);
  for (size_t v = 0; v < views.size(); ++v) {
    std::vector<std::optional<std::string_view>> keys(spine.size());
    for (size_t row = 0; row < spine.size(); ++row) keys[row] = spine.key(v, row);
    views[v].SetPoints(keys, times);
  }

  PitEngine engine(*source, &views,
                   PitOptions{.inputs = options.inputs,
                              .max_future_ms = options.max_future_ms,
                              .threads = options.threads,
                              .memory_budget_bytes = options.memory_budget_bytes,
                              .chunk_bytes = options.chunk_bytes,
                              .clock = options.clock});
  // Created first, so that a bad output path fails before the work.
  TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<OutputFile> out, OutputFile::Create(options.out));
  TableWriter writer(views, spine, out_format, engine.threads());
  TESSERA_ASSIGN_OR_RETURN(PitStats stats, engine.Run(&writer));
  TESSERA_RETURN_IF_ERROR(writer.Finish());
  TESSERA_RETURN_IF_ERROR(writer.Write(out.get()));

  TrainingSetSummary summary;
  summary.out_bytes = out->bytes_written();
  TESSERA_RETURN_IF_ERROR(out->Commit());
  summary.counters = stats.counters;
  for (size_t v = 0; v < views.size(); ++v) {
    summary.views.emplace_back(views[v].rt->def->name, stats.views[v]);
    summary.spine_null_keys.emplace_back(views[v].rt->def->name, spine.null_keys(v));
  }
  summary.tiles = stats.tiles;
  summary.files = static_cast<int>(options.inputs.size());
  summary.files_skipped = stats.files_skipped;
  summary.files_resumed = stats.files_resumed;
  summary.passes = stats.passes;
  summary.partitions = stats.key_parts;
  summary.spine_rows = static_cast<int64_t>(spine.size());
  summary.spine_rows_skipped = spine.skipped_rows();
  summary.threads = engine.threads();
  summary.seconds = static_cast<double>(options.clock->MonotonicNanos() - t0) / 1e9;
  return summary;
}

}  // namespace tessera::offline
