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
  EXPECT_TRUE(ValidateSourceOptions(Source({})).ok());  // backfill-only source
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
