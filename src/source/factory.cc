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
    TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<LogChunkSource> consumer,
                             LogChunkSource::Create(env.log, env.store, source.name));
    HttpIngestOptions io;
    io.columns = source.columns;
    io.time_column = source.time_column;
    io.lateness_ms = source.lateness_ms;
    io.max_future_ms = source.max_future_ms.value_or(sql::kDefaultLiveMaxFutureMs);
    io.clock = env.clock;
    out.http_ingest = std::make_unique<HttpIngest>(env.log, source.name, std::move(io));
    out.log_consumer = consumer.get();
    out.source = std::move(consumer);
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
