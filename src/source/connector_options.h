#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sql/plan.h"

namespace tessera::source {

// The connectors a `CREATE SOURCE … WITH ('connector' = …)` may name.
inline constexpr std::string_view kConnectors[] = {"http", "file", "stdin", "kafka", "pubsub"};

// Checks the WITH options of `source` against its connector: the connector is known, every
// option is one the connector takes (options every connector takes: 'connector', 'format',
// 'max-future', 'dead-letter'; Kafka also passes any 'properties.X' to librdkafka), the required
// ones are there, 'format' is 'json', and values that have a fixed form parse. InvalidArgument
// naming the source, the option and the valid choices (with the closest valid name for a
// misspelling). A source without 'connector' is valid (backfill reads files whatever the
// connector); `tessera run` refuses it when it creates the source.
//
// kDefinition (when SQL is registered) skips the check for required options, so a source that
// is only ever backfilled may say WITH ('connector' = 'file') without a path; kLive (when
// `tessera run` creates the connector) checks everything.
enum class OptionCheck { kDefinition, kLive };
absl::Status ValidateSourceOptions(const sql::SourceDef& source,
                                   OptionCheck check = OptionCheck::kLive);

// The value of option `key` (keys are lower-cased by the parser), or nullopt.
std::optional<std::string> FindOption(const sql::SourceDef& source, std::string_view key);
// The connector, lower-cased; "" when not given.
std::string ConnectorOf(const sql::SourceDef& source);

// Parses a duration option such as '30s', '5m', '1h', '250ms' or '0' (no unit: milliseconds).
// InvalidArgument naming the source and option.
absl::StatusOr<int64_t> ParseDurationOption(const sql::SourceDef& source, std::string_view key,
                                            std::string_view value);

// Parses a whole positive number option (e.g. 'max-outstanding-messages'). InvalidArgument naming
// the source and option.
absl::StatusOr<int64_t> ParsePositiveIntOption(const sql::SourceDef& source, std::string_view key,
                                               std::string_view value);

// A Pub/Sub subscription named by 'subscription' (an id, or "projects/<project>/subscriptions/
// <id>") and 'project' (`project`, "" when not given).
struct PubSubSubscription {
  std::string project;
  std::string id;
  std::string path;  // "projects/<project>/subscriptions/<id>"
};
// InvalidArgument when the id breaks Pub/Sub's naming rule, the project is missing, or the two
// options name different projects.
absl::StatusOr<PubSubSubscription> ParsePubSubSubscription(const sql::SourceDef& source,
                                                           std::string_view project);

}  // namespace tessera::source
