#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "source/http/http_ingest.h"
#include "source/http/log_chunk_source.h"
#include "source/source.h"
#include "source/source_env.h"
#include "sql/plan.h"
#include "store/event_log.h"
#include "store/tile_store.h"

namespace tessera::source {

// A live source as created from its CREATE SOURCE statement.
struct LiveSource {
  std::unique_ptr<Source> source;
  // Connector 'http': the write side (POST /v1/ingest/{source}); `source` is its log consumer.
  std::unique_ptr<HttpIngest> http_ingest;
  LogChunkSource* log_consumer = nullptr;
};

// The one place a connector is chosen: validates the WITH options (ValidateSourceOptions) and
// creates the connector named by 'connector', resuming from the checkpoint in env.store.
// InvalidArgument for a missing or unknown connector or bad options.
absl::StatusOr<LiveSource> CreateLiveSource(const sql::SourceDef& source, const SourceEnv& env);

}  // namespace tessera::source
