#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/catalog_store.h"
#include "engine/ingest_pipeline.h"
#include "source/dead_letter/dead_letter.h"
#include "source/dead_letter/recent_rejects.h"
#include "source/factory.h"
#include "store/event_log.h"
#include "store/tile_store.h"

namespace tessera::engine {

struct LiveOptions {
  int64_t flush_interval_ms = 1000;
  int threads = 0;  // per source pipeline; 0 = one per core
  size_t memory_budget_bytes = size_t{1} << 30;
  MetricsRegistry* metrics = nullptr;
  const Clock* clock = SystemClock::Default();
  // Descriptor read by the connector = 'stdin' source (tests inject a pipe). Not owned.
  int stdin_fd = 0;
  // Polling of connector = 'file' sources (chunk size, poll interval).
  source::FollowOptions follow;
  // Called (from the pipeline's thread) when a pipeline ends with an error, e.g. a Kafka source
  // that lost its consumer: `tessera run` then stops rather than serve a source that no longer
  // ingests. Optional.
  std::function<void(const absl::Status&)> on_pipeline_failure;
};

// `tessera run`: one ingest pipeline per source that feeds at least one view, fed by the source's
// connector (WITH (connector = …), created by source::CreateLiveSource):
//   http  — events POSTed to /v1/ingest/{source}, made durable in the store's event log, then
//           consumed from the log (exactly once across restarts), their rows decoded once
//           (source::HttpConnector, handed to the HTTP service through http_connectors())
//   file  — WITH (path = '…'): follows a file, or a directory of *.ndjson/*.json/*.jsonl files,
//           for growth; per-file offsets are checkpointed with the tiles, so a restart resumes
//           exactly where the tiles end (source::FollowChunkSource)
//   stdin — NDJSON from standard input (at most one such source); when it ends, its pipeline
//           flushes and ends while the others keep running; a restart does not replay it
//           (source::StdinChunkSource)
// Other connectors are refused with an error naming them.
class LiveRuntime {
 public:
  static absl::StatusOr<std::unique_ptr<LiveRuntime>> Create(const CatalogStore* catalog,
                                                             store::TileStore* store,
                                                             store::EventLog* log,
                                                             LiveOptions options);
  ~LiveRuntime();

  // Starts every pipeline on its own threads.
  absl::Status Start();
  // Flushes and stops every pipeline; returns the first error any of them hit.
  absl::Status Stop();

  // The pipeline serving `view`'s open tiles, or null.
  OpenTileSource* OpenTilesFor(const ViewRuntime* view) const;
  // The live watermark of `view`'s source (IngestPipeline::watermark_ms: Watermark::kNone while
  // none), consistent with the open tiles reads merge; callable from any thread while the
  // runtime lives. Null when no pipeline here runs the source or reads see committed tiles only
  // (a store with writer slots): the watermark committed to the store applies then.
  std::function<int64_t()> WatermarkFor(const ViewRuntime* view) const;

  // Each running source's last rejected lines (console), by source name.
  std::vector<std::pair<std::string, std::shared_ptr<const source::RecentRejects>>> recent_rejects()
      const;

  // The connectors of the http sources, for the HTTP service (POST /v1/ingest/{source}); each
  // is attached to its pipeline already. Shared with the runtime, which feeds their log
  // consumers to the pipelines and closes them on Stop().
  const std::vector<std::shared_ptr<source::HttpConnector>>& http_connectors() const {
    return http_connectors_;
  }

 private:
  struct Running {
    const sql::SourceDef* source;
    std::vector<const ViewRuntime*> views;
    std::unique_ptr<source::DeadLetterSink> dead_letter;    // outlives the pipeline using it
    std::shared_ptr<source::RecentRejects> recent_rejects;  // shared with the http connector
    std::shared_ptr<source::Source> input;
    std::shared_ptr<source::HttpConnector> http;  // connector 'http' (input is its consumer)
    std::unique_ptr<IngestPipeline> pipeline;
    std::thread thread;
    absl::Status status;
  };
  LiveRuntime() = default;

  std::function<void(const absl::Status&)> on_pipeline_failure_;

  std::vector<std::unique_ptr<Running>> running_;
  std::vector<std::shared_ptr<source::HttpConnector>> http_connectors_;
};

}  // namespace tessera::engine
