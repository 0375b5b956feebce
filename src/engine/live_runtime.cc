#include "engine/live_runtime.h"

#include <algorithm>

#include "common/errors.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "source/file/follow_source.h"
#include "source/file/stdin_source.h"

namespace tessera::engine {
namespace {

std::string Option(const sql::SourceDef& s, std::string_view key) {
  for (const auto& [k, v] : s.options) {
    if (k == key) return v;
  }
  return "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<LiveRuntime>> LiveRuntime::Create(const CatalogStore* catalog,
                                                                 store::TileStore* store,
                                                                 store::EventLog* log,
                                                                 LiveOptions options) {
  std::unique_ptr<LiveRuntime> rt(new LiveRuntime());
  const sql::SourceDef* stdin_source = nullptr;
  for (const sql::SourceDef& source : catalog->catalog().sources) {
    std::vector<const ViewRuntime*> views;
    for (const auto& v : catalog->views()) {
      if (v->source == &source) views.push_back(v.get());
    }
    if (views.empty()) continue;
    auto r = std::make_unique<Running>();
    r->source = &source;
    r->views = views;
    const std::string connector = ToLowerAscii(Option(source, "connector"));
    if (connector == "http") {
      TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<source::LogChunkSource> input,
                               source::LogChunkSource::Create(log, store, source.name));
      r->log_input = input.get();
      source::HttpIngestOptions io;
      io.columns = source.columns;
      io.time_column = source.time_column;
      io.lateness_ms = source.lateness_ms;
      io.max_future_ms = source.max_future_ms.value_or(sql::kDefaultLiveMaxFutureMs);
      io.clock = options.clock;
      rt->http_sources_.push_back(HttpSource{
          std::make_unique<source::HttpIngest>(log, source.name, std::move(io)), input.get()});
      r->input = std::move(input);
    } else if (connector == "file") {
      const std::string path = Option(source, "path");
      if (path.empty()) {
        return InvalidArgument(
            "source '{}': connector 'file' needs a path: WITH (connector = 'file', path = "
            "'events.ndjson' or a directory of *.ndjson files)",
            source.name);
      }
      TESSERA_ASSIGN_OR_RETURN(
          r->input, source::FollowChunkSource::Create(store, source.name, path, options.follow));
    } else if (connector == "stdin") {
      if (stdin_source != nullptr) {
        return InvalidArgument(
            "sources '{}' and '{}' both read connector 'stdin'; at most one source can read "
            "standard input",
            stdin_source->name, source.name);
      }
      stdin_source = &source;
      r->input = std::make_unique<source::StdinChunkSource>(options.stdin_fd);
    } else {
      return InvalidArgument(
          "source '{}': connector '{}' is not supported by `tessera run` yet; supported: 'http' "
          "(events POSTed to /v1/ingest/{}), 'file' (path = a file or directory to follow), "
          "'stdin'",
          source.name, connector.empty() ? "(none)" : connector, source.name);
    }
    PipelineOptions po;
    po.threads = options.threads;
    po.memory_budget_bytes = options.memory_budget_bytes;
    po.flush_interval_ms = options.flush_interval_ms;
    po.max_future_ms = source.max_future_ms.value_or(sql::kDefaultLiveMaxFutureMs);
    po.metrics = options.metrics;
    po.clock = options.clock;
    r->pipeline = std::make_unique<IngestPipeline>(source, views, store, po);
    TESSERA_RETURN_IF_ERROR(r->pipeline->Init());
    if (r->log_input != nullptr) {
      rt->http_sources_.back().ingest->ObserveMaxEventTime(r->pipeline->max_event_time_ms());
      rt->http_sources_.back().pipeline = r->pipeline.get();
    }
    rt->running_.push_back(std::move(r));
  }
  return rt;
}

LiveRuntime::~LiveRuntime() { (void)Stop(); }

absl::Status LiveRuntime::Start() {
  for (auto& r : running_) {
    Running* run = r.get();
    run->thread = std::thread([run] { run->status = run->pipeline->Run(run->input.get()); });
  }
  return absl::OkStatus();
}

absl::Status LiveRuntime::Stop() {
  absl::Status first;
  for (auto& r : running_) {
    if (r->log_input != nullptr) r->log_input->Close();
    r->pipeline->Stop();
  }
  for (auto& r : running_) {
    if (r->thread.joinable()) r->thread.join();
    if (first.ok() && !r->status.ok()) first = r->status;
  }
  return first;
}

OpenTileSource* LiveRuntime::OpenTilesFor(const ViewRuntime* view) const {
  for (const auto& r : running_) {
    if (std::find(r->views.begin(), r->views.end(), view) != r->views.end()) {
      return r->pipeline.get();
    }
  }
  return nullptr;
}

std::vector<LiveRuntime::HttpSource> LiveRuntime::TakeHttpSources() {
  return std::move(http_sources_);
}

}  // namespace tessera::engine
