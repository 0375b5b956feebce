#include "source/connector_options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/errors.h"
#include "sql/plan.h"

namespace tessera::source {
namespace {

using ::testing::HasSubstr;

sql::SourceDef Source(std::vector<std::pair<std::string, std::string>> options) {
  sql::SourceDef s;
  s.name = "plays";
  s.options = std::move(options);
  return s;
}

std::string Error(const sql::SourceDef& s) {
  absl::Status st = ValidateSourceOptions(s);
  EXPECT_FALSE(st.ok());
  return StatusMessage(st);
}

TEST(ValidateSourceOptions, AcceptsEveryConnectorWithItsOptions) {
  EXPECT_TRUE(ValidateSourceOptions(Source({{"connector", "http"}})).ok());
  EXPECT_TRUE(ValidateSourceOptions(Source({{"connector", "File"}, {"path", "x.ndjson"}})).ok());
  EXPECT_TRUE(ValidateSourceOptions(Source({{"connector", "stdin"}, {"format", "json"}})).ok());
  EXPECT_TRUE(ValidateSourceOptions(Source({{"connector", "kafka"},
                                            {"topic", "plays"},
                                            {"properties.bootstrap.servers", "h:1"},
                                            {"properties.group.id", "g"},
                                            {"properties.fetch.max.bytes", "1000000"},
                                            {"scan.startup.mode", "earliest-offset"},
                                            {"scan.watermark.idle-timeout", "10s"},
                                            {"format", "json"},
                                            {"dead-letter", "file:///tmp/dl.ndjson"}}))
                  .ok());
  EXPECT_TRUE(ValidateSourceOptions(
                  Source({{"connector", "pubsub"}, {"project", "proj"}, {"subscription", "sub"}}))
                  .ok());
  EXPECT_TRUE(ValidateSourceOptions(Source({{"connector", "pubsub"},
                                            {"subscription", "projects/proj/subscriptions/sub"},
                                            {"endpoint", "http://127.0.0.1:8085"},
                                            {"streams", "4"},
                                            {"max-outstanding-messages", "1000"},
                                            {"max-outstanding-bytes", "10000000"},
                                            {"ack-deadline", "30s"},
                                            {"dedup-window", "1h"},
                                            {"dedup-max-messages", "100000"}}))
                  .ok());
  EXPECT_TRUE(ValidateSourceOptions(Source({})).ok());  // backfill-only source
}

TEST(ValidateSourceOptions, PubSubNamesWhatIsWrong) {
  auto pubsub = [](std::vector<std::pair<std::string, std::string>> extra) {
    std::vector<std::pair<std::string, std::string>> o = {{"connector", "pubsub"},
                                                          {"project", "proj"}};
    o.insert(o.end(), extra.begin(), extra.end());
    return Source(o);
  };
  std::string e = Error(pubsub({}));
  EXPECT_THAT(e, HasSubstr("needs option 'subscription'"));
  e = Error(pubsub({{"subscription", "ab"}}));
  EXPECT_THAT(e, HasSubstr("'ab' is not a Pub/Sub subscription id"));
  e = Error(pubsub({{"subscription", "goog-sub"}}));
  EXPECT_THAT(e, HasSubstr("not with 'goog'"));
  e = Error(pubsub({{"subscription", "projects/other/subscriptions/sub"}}));
  EXPECT_THAT(e, HasSubstr("names project 'other' but option 'project' is 'proj'"));
  e = Error(Source({{"connector", "pubsub"}, {"subscription", "sub"}}));
  EXPECT_THAT(e, HasSubstr("needs option 'project'"));
  // A definition may leave the project out (checked when `tessera run` creates the source).
  EXPECT_TRUE(ValidateSourceOptions(Source({{"connector", "pubsub"}, {"subscription", "sub"}}),
                                    OptionCheck::kDefinition)
                  .ok());
  e = Error(pubsub({{"subscription", "sub"}, {"max-outstanding-messages", "0"}}));
  EXPECT_THAT(e, HasSubstr("'max-outstanding-messages' = '0'"));
  EXPECT_THAT(e, HasSubstr("positive whole number"));
  e = Error(pubsub({{"subscription", "sub"}, {"max-outstanding-bytes", "64MiB"}}));
  EXPECT_THAT(e, HasSubstr("'max-outstanding-bytes' = '64MiB'"));
  e = Error(pubsub({{"subscription", "sub"}, {"streams", "65"}}));
  EXPECT_THAT(e, HasSubstr("expected 1 to 64"));
  e = Error(pubsub({{"subscription", "sub"}, {"ack-deadline", "5s"}}));
  EXPECT_THAT(e, HasSubstr("from '10s' to '600s'"));
  e = Error(pubsub({{"subscription", "sub"}, {"dedup-window", "ten minutes"}}));
  EXPECT_THAT(e, HasSubstr("'dedup-window' = 'ten minutes' is not a duration"));
  e = Error(pubsub({{"subscription", "sub"}, {"endpoint", "localhost"}}));
  EXPECT_THAT(e, HasSubstr("'http://host:port'"));
  e = Error(pubsub({{"subscription", "sub"}, {"endpoint", ""}}));
  EXPECT_THAT(e, HasSubstr("option 'endpoint' is empty"));
}

TEST(ValidateSourceOptions, NamesTheOptionTheSourceAndTheChoices) {
  std::string e = Error(Source({{"connector", "kafka"},
                                {"topik", "plays"},
                                {"properties.bootstrap.servers", "h:1"},
                                {"properties.group.id", "g"}}));
  EXPECT_THAT(e, HasSubstr("source 'plays'"));
  EXPECT_THAT(e, HasSubstr("unknown option 'topik'"));
  EXPECT_THAT(e, HasSubstr("did you mean 'topic'?"));
  EXPECT_THAT(e, HasSubstr("'scan.startup.mode'"));

  e = Error(Source({{"connector", "kafka"}, {"topic", "t"}, {"properties.group.id", "g"}}));
  EXPECT_THAT(e, HasSubstr("needs option 'properties.bootstrap.servers'"));

  e = Error(Source({{"connector", "http"}, {"format", "csv"}}));
  EXPECT_THAT(e, HasSubstr("'format' = 'csv'"));
  EXPECT_THAT(e, HasSubstr("'json'"));

  e = Error(Source({{"connector", "kafkaa"}}));
  EXPECT_THAT(e, HasSubstr("unknown connector 'kafkaa'"));
  EXPECT_THAT(e, HasSubstr("'pubsub'"));

  e = Error(Source({{"connector", "http"}, {"properties.x", "1"}}));
  EXPECT_THAT(e, HasSubstr("unknown option 'properties.x' for connector 'http'"));

  e = Error(Source({{"connector", "file"}}));
  EXPECT_THAT(e, HasSubstr("needs option 'path'"));

  e = Error(Source({{"connector", "kafka"},
                    {"topic", "t"},
                    {"properties.bootstrap.servers", "h:1"},
                    {"properties.group.id", "g"},
                    {"scan.startup.mode", "earliest"}}));
  EXPECT_THAT(e, HasSubstr("'earliest-offset'"));

  e = Error(Source({{"connector", "http"}, {"dead-letter", "/tmp/x"}}));
  EXPECT_THAT(e, HasSubstr("'file:///path'"));
}

}  // namespace
}  // namespace tessera::source
