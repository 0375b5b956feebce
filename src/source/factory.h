#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "source/http/http_connector.h"
#include "source/source.h"
#include "source/source_env.h"
#include "sql/plan.h"
#include "store/event_log.h"
#include "store/tile_store.h"

namespace tessera::source {

// A live source as created from its CREATE SOURCE statement.
struct LiveSource {
  // The pipeline's input. Shared: for connector 'http' it is the connector's log consumer and
  // keeps the connector alive.
  std::shared_ptr<Source> source;
  // Connector 'http' only: the connector, for the HTTP service (POST /v1/ingest/{source}).
  std::shared_ptr<HttpConnector> http;
};

// The one place a connector is chosen: validates the WITH options (ValidateSourceOptions) and
// creates the connector named by 'connector', resuming from the checkpoint in env.store.
// InvalidArgument for a missing or unknown connector or bad options.
absl::StatusOr<LiveSource> CreateLiveSource(const sql::SourceDef& source, const SourceEnv& env);

}  // namespace tessera::source
