#include "engine/live_runtime.h"

#include <algorithm>

#include "common/errors.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "source/connector_options.h"
#include "source/dead_letter/dead_letter.h"
#include "source/factory.h"

namespace tessera::engine {
absl::StatusOr<std::unique_ptr<LiveRuntime>> LiveRuntime::Create(const CatalogStore* catalog,
                                                                 store::TileStore* store,
                                                                 store::EventLog* log,
                                                                 LiveOptions options) {
  std::unique_ptr<LiveRuntime> rt(new LiveRuntime());
  rt->on_pipeline_failure_ = options.on_pipeline_failure;
  const sql::SourceDef* stdin_source = nullptr;
  source::SourceEnv env;
  env.store = store;
  env.log = log;
  env.clock = options.clock;
  env.metrics = options.metrics;
  env.stdin_fd = options.stdin_fd;
  env.follow = options.follow;
  for (const sql::SourceDef& source : catalog->catalog().sources) {
    std::vector<const ViewRuntime*> views;
    for (const auto& v : catalog->views()) {
      if (v->source == &source) views.push_back(v.get());
    }
    if (views.empty()) continue;
    auto r = std::make_unique<Running>();
    r->source = &source;
    r->views = views;
    if (source::ConnectorOf(source) == "stdin") {
      if (stdin_source != nullptr) {
        return InvalidArgument(
            "sources '{}' and '{}' both read connector 'stdin'; at most one source can read "
            "standard input",
            stdin_source->name, source.name);
      }
      stdin_source = &source;
    }
    if (source::ConnectorOf(source) != "kafka") {
      TESSERA_RETURN_IF_ERROR(ClaimSourceSlot(store, source));
    }
    TESSERA_ASSIGN_OR_RETURN(source::LiveSource created, source::CreateLiveSource(source, env));
    r->input = std::move(created.source);
    r->http = std::move(created.http);
    if (std::optional<std::string> uri = source::FindOption(source, "dead-letter")) {
      TESSERA_ASSIGN_OR_RETURN(r->dead_letter, source::DeadLetterSink::Create(*uri, source));
      if (options.metrics != nullptr) {
        source::DeadLetterSink* sink = r->dead_letter.get();
        options.metrics->AddCallbackGauge(
            "tessera_dead_letters_total", "Rejected lines delivered to the source's dead letters",
            {{"source", source.name}}, [sink] { return static_cast<double>(sink->written()); });
        options.metrics->AddCallbackGauge(
            "tessera_dead_letters_failed_total",
            "Rejected lines the dead-letter sink could not deliver (lost)",
            {{"source", source.name}}, [sink] { return static_cast<double>(sink->failed()); });
      }
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
    r->recent_rejects =
        std::make_shared<source::RecentRejects>(source.name, source::RecentRejects::Options{});
    r->pipeline->set_reject_sink(
        [sink = r->dead_letter.get(), recent = r->recent_rejects.get(), clock = options.clock](
            const source::ChunkOrigin& origin, const source::Rejection& rej) {
          if (sink != nullptr) sink->Write(origin, rej);
          recent->Add(clock->NowMillis(), origin, rej);
        });
    if (r->http != nullptr) {
      // HTTP bodies are decoded (and their bad lines rejected) by the request, not the pipeline.
      r->http->set_reject_observer(
          [recent = r->recent_rejects, clock = options.clock](const source::ChunkOrigin& origin,
                                                              const source::Rejection& rej) {
            recent->Add(clock->NowMillis(), origin, rej);
          });
      const IngestPipeline* pipeline = r->pipeline.get();
      r->http->AttachPipeline(
          pipeline->max_event_time_ms(),
          source::PipelineLoad{[pipeline] { return pipeline->open_tile_bytes(); },
                               pipeline->memory_budget_bytes()});
      rt->http_connectors_.push_back(r->http);
    }
    rt->running_.push_back(std::move(r));
  }
  return rt;
}

std::vector<std::pair<std::string, std::shared_ptr<const source::RecentRejects>>>
LiveRuntime::recent_rejects() const {
  std::vector<std::pair<std::string, std::shared_ptr<const source::RecentRejects>>> out;
  for (const auto& r : running_) out.emplace_back(r->source->name, r->recent_rejects);
  return out;
}

LiveRuntime::~LiveRuntime() {
  (void)Stop();
  // The connectors may outlive the runtime (the HTTP service shares them).
  for (auto& r : running_) {
    if (r->http != nullptr) r->http->DetachPipeline();
  }
}

absl::Status LiveRuntime::Start() {
  for (auto& r : running_) {
    Running* run = r.get();
    run->thread = std::thread([run, on_failure = on_pipeline_failure_] {
      run->status = run->pipeline->Run(run->input.get());
      if (!run->status.ok() && on_failure) on_failure(run->status);
    });
  }
  return absl::OkStatus();
}

absl::Status LiveRuntime::Stop() {
  absl::Status first;
  for (auto& r : running_) {
    if (r->http != nullptr) r->http->Close();
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

std::function<int64_t()> LiveRuntime::WatermarkFor(const ViewRuntime* view) const {
  for (const auto& r : running_) {
    if (std::find(r->views.begin(), r->views.end(), view) != r->views.end() &&
        r->pipeline->serves_open_tiles()) {
      const IngestPipeline* pipeline = r->pipeline.get();
      return [pipeline] { return pipeline->watermark_ms(); };
    }
  }
  return nullptr;
}

}  // namespace tessera::engine
