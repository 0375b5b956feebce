#include "engine/backfill.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "common/status_macros.h"
#include "common/value.h"
#include "engine/file_chunk_source.h"
#include "engine/input_progress.h"
#include "source/connector_options.h"
#include "source/dead_letter/dead_letter.h"
#include "store/meta_keys.h"

namespace tessera::engine {
namespace {

absl::StatusOr<const sql::SourceDef*> PickSource(const CatalogStore& catalog,
                                                 const std::string& name) {
  const sql::Catalog& c = catalog.catalog();
  if (!name.empty()) {
    const sql::SourceDef* s = c.FindSource(name);
    if (s == nullptr) return NotFound("no source named '{}' in the catalog", name);
    return s;
  }
  const sql::SourceDef* only = nullptr;
  for (const auto& v : catalog.views()) {
    if (only != nullptr && only != v->source) {
      return InvalidArgument(
          "the views read from several sources ('{}', '{}'); say which one the input files "
          "belong to with --source",
          only->name, v->source->name);
    }
    only = v->source;
  }
  if (only == nullptr) return FailedPrecondition("the catalog has no feature view to backfill");
  return only;
}

}  // namespace

absl::Status CheckBackfillInputs(const std::vector<std::string>& inputs) {
  if (inputs.empty()) return InvalidArgument("backfill: no input files given");
  for (const std::string& path : inputs) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      const int err = errno;
      if (err == ENOENT) return NotFound("input '{}': no such file", path);
      return FailedPrecondition("input '{}': {}", path, std::strerror(err));
    }
    if (S_ISDIR(st.st_mode)) {
      return InvalidArgument(
          "input '{}' is a directory; --input takes NDJSON files (list them, e.g. '{}/*.ndjson')",
          path, path);
    }
    if (!S_ISREG(st.st_mode)) {
      return InvalidArgument(
          "input '{}' is not a regular file (backfill reads each input twice "
          "at most: once to compare it with the DB, once to replay it)",
          path);
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      return FailedPrecondition("input '{}': cannot open it for reading: {}", path,
                                std::strerror(err));
    }
    ::close(fd);
  }
  return absl::OkStatus();
}

int64_t ReplayMaxFutureMs(const sql::SourceDef& source, std::optional<int64_t> requested) {
  return requested.value_or(source.max_future_ms.value_or(sql::kDefaultBackfillMaxFutureMs));
}

void AddReplayCounters(const SourceCounters& counters,
                       const std::vector<std::pair<std::string, ViewCounters>>& views,
                       nlohmann::json* out) {
  nlohmann::json& j = *out;
  j["read"] = counters.lines;
  j["rows"] = counters.rows;
  j["rejected"] = counters.rejected;
  j["late"] = counters.late;
  j["future"] = counters.future;
  j["field_errors"] = counters.field_errors;
  int64_t null_key = 0;
  nlohmann::json views_json = nlohmann::json::object();
  for (const auto& [name, v] : views) {
    null_key += v.null_key;
    views_json[name] = {{"rows_in", v.rows_in},
                        {"filtered", v.filtered},
                        {"null_key", v.null_key},
                        {"key_too_long", v.key_too_long},
                        {"aggregated", v.aggregated}};
  }
  j["null_key"] = null_key;
  j["views"] = views_json;
}

std::string BackfillSummary::ToJson() const {
  nlohmann::json j;
  AddReplayCounters(counters, views, &j);
  j["source"] = source;
  j["files"] = files;
  j["files_skipped"] = files_skipped;
  j["files_resumed"] = files_resumed;
  j["tiles_written"] = flush.base_tiles + flush.rollup_tiles + flush.lifetime_tiles;
  j["base_tiles_written"] = flush.base_tiles;
  j["rollup_tiles_written"] = flush.rollup_tiles;
  j["flushes"] = flush.flushes;
  j["spilled_tiles"] = flush.spilled_tiles;
  j["flush_build_seconds"] = std::round(flush.build_seconds * 1000) / 1000;
  j["flush_commit_seconds"] = std::round(flush.commit_seconds * 1000) / 1000;
  j["seconds"] = std::round(seconds * 1000) / 1000;
  j["rows_per_second"] = seconds > 0 ? std::llround(counters.lines / seconds) : 0;
  j["threads"] = threads;
  return j.dump();
}

absl::StatusOr<BackfillSummary> RunBackfill(store::TileStore* store, CatalogStore* catalog,
                                            const BackfillOptions& options) {
  const int64_t t0 = options.clock->MonotonicNanos();
  TESSERA_RETURN_IF_ERROR(CheckBackfillInputs(options.inputs));
  TESSERA_ASSIGN_OR_RETURN(const sql::SourceDef* source, PickSource(*catalog, options.source));
  std::vector<const ViewRuntime*> views;
  for (const auto& v : catalog->views()) {
    if (v->source == source) views.push_back(v.get());
  }

  BackfillSummary summary;
  summary.source = source->name;
  summary.files = static_cast<int>(options.inputs.size());
  uint64_t total_bytes = 0;
  for (const std::string& path : options.inputs) {
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(path, ec);
    if (!ec) total_bytes += size;
  }
  TESSERA_RETURN_IF_ERROR(ClaimSourceSlot(store, *source));
  TESSERA_ASSIGN_OR_RETURN(StoredInputProgress stored, LoadInputProgress(store));
  FileChunkSource input(options.inputs, std::move(stored), options.chunk_bytes);
  PipelineOptions pipeline_options = options.pipeline;
  pipeline_options.max_future_ms = ReplayMaxFutureMs(*source, options.max_future_ms);
  pipeline_options.open_tiles_readable = false;  // nothing reads a backfill's open tiles
  pipeline_options.spill_runs = true;
  IngestPipeline pipeline(*source, views, store, pipeline_options);
  TESSERA_RETURN_IF_ERROR(pipeline.Init());

  // --dead-letter FILE, else the source's WITH ('dead-letter' = …).
  std::unique_ptr<source::DeadLetterSink> dead_letter;
  if (!options.dead_letter_path.empty()) {
    TESSERA_ASSIGN_OR_RETURN(
        dead_letter, source::DeadLetterSink::Create("file://" + options.dead_letter_path, *source));
  } else if (std::optional<std::string> uri = source::FindOption(*source, "dead-letter")) {
    TESSERA_ASSIGN_OR_RETURN(dead_letter, source::DeadLetterSink::Create(*uri, *source));
  }
  if (dead_letter != nullptr) {
    pipeline.set_reject_sink(
        [sink = dead_letter.get()](const source::ChunkOrigin& origin, const source::Rejection& r) {
          sink->Write(origin, r);
        });
  }
  if (options.progress) {
    pipeline.set_progress([&](const SourceCounters& c, bool flushing) {
      options.progress(c.lines, input.bytes(), total_bytes, flushing);
    });
  }
  absl::Status run = pipeline.Run(&input);
  dead_letter.reset();
  TESSERA_RETURN_IF_ERROR(run);

  summary.counters = pipeline.source_counters();
  for (size_t i = 0; i < views.size(); ++i) {
    summary.views.emplace_back(views[i]->def->name, pipeline.view_counters()[i]);
  }
  summary.files_skipped = input.skipped();
  summary.files_resumed = input.resumed();
  summary.flush = pipeline.flush_stats();
  summary.threads = pipeline.threads();
  summary.seconds = static_cast<double>(options.clock->MonotonicNanos() - t0) / 1e9;
  return summary;
}

}  // namespace tessera::engine
