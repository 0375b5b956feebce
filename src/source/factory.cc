#include "source/factory.h"

#include "common/errors.h"
#include "common/status_macros.h"
#include "source/connector_options.h"
#include "source/file/stdin_source.h"
#include "source/kafka/kafka_source.h"
#include "source/pubsub/pubsub_source.h"

namespace tessera::source {

absl::StatusOr<LiveSource> CreateLiveSource(const sql::SourceDef& source, const SourceEnv& env) {
  TESSERA_RETURN_IF_ERROR(ValidateSourceOptions(source));
  const std::string connector = ConnectorOf(source);
  LiveSource out;
  if (connector == "http") {
    if (env.log == nullptr) {
      return FailedPrecondition(
          "source '{}': connector 'http' keeps the bodies it acknowledges in a local log, and "
          "this store has none: give `tessera run` a --db DIR for it beside --store",
          source.name);
    }
    HttpConnectorOptions o;
    o.ingest.columns = source.columns;
    o.ingest.time_column = source.time_column;
    o.ingest.lateness_ms = source.lateness_ms;
    o.ingest.max_future_ms = source.max_future_ms.value_or(sql::kDefaultLiveMaxFutureMs);
    o.ingest.clock = env.clock;
    o.metrics = env.metrics;
    TESSERA_ASSIGN_OR_RETURN(out.http,
                             HttpConnector::Create(env.log, env.store, source.name, std::move(o)));
    out.source = HttpConnector::AsSource(out.http);
  } else if (connector == "file") {
    TESSERA_ASSIGN_OR_RETURN(
        out.source,
        FollowChunkSource::Create(env.store, source.name, *FindOption(source, "path"), env.follow));
  } else if (connector == "stdin") {
    out.source = std::make_unique<StdinChunkSource>(env.stdin_fd);
  } else if (connector == "kafka") {
    TESSERA_ASSIGN_OR_RETURN(out.source, KafkaSource::Create(source, env));
  } else if (connector == "pubsub") {
    TESSERA_ASSIGN_OR_RETURN(out.source, PubSubSource::Create(source, env));
  } else {
    return InvalidArgument(
        "source '{}' has no connector; `tessera run` needs WITH ('connector' = 'http' | 'file' | "
        "'stdin' | 'kafka' | 'pubsub')",
        source.name);
  }
  return out;
}

}  // namespace tessera::source
