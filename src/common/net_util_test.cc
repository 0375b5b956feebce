#include "common/net_util.h"

#include <gtest/gtest.h>

#include <string>

namespace tessera {
namespace {

std::string Parsed(std::string_view text, const HostPortOptions& options = {}) {
  absl::StatusOr<HostPort> r = ParseHostPort(text, options);
  if (!r.ok()) return "error";
  return r->host + " " + std::to_string(r->port);
}

// `tessera run/serve --http`: PORT, :PORT and HOST:PORT.
TEST(ParseHostPortTest, LenientFormsOfTheHttpFlag) {
  EXPECT_EQ(Parsed("8080"), "127.0.0.1 8080");
  EXPECT_EQ(Parsed("0"), "127.0.0.1 0");
  EXPECT_EQ(Parsed(":8080"), "0.0.0.0 8080");
  EXPECT_EQ(Parsed("localhost:1"), "localhost 1");
  EXPECT_EQ(Parsed("10.0.0.1:65535"), "10.0.0.1 65535");
  EXPECT_EQ(Parsed("[::1]:80"), "[::1] 80");  // host is what precedes the last ':'
  for (std::string_view bad :
       {"", ":", "host:", "65536", "-1", "+80", "80x", "x", " 80", "a:b", "99999999999999999999"}) {
    EXPECT_EQ(Parsed(bad), "error") << bad;
  }
  HostPortOptions o;
  o.default_host = "::";
  o.any_host = "*";
  EXPECT_EQ(Parsed("1", o), ":: 1");
  EXPECT_EQ(Parsed(":1", o), "* 1");
}

// `tessera-operator --metrics-addr`: HOST:PORT only.
TEST(ParseHostPortTest, StrictFormOfTheOperatorFlag) {
  HostPortOptions strict;
  strict.require_host = true;
  EXPECT_EQ(Parsed("0.0.0.0:9090", strict), "0.0.0.0 9090");
  EXPECT_EQ(Parsed("metrics.local:0", strict), "metrics.local 0");
  for (std::string_view bad : {"9090", ":9090", "host:", "host:65536", "host:-1", ""}) {
    EXPECT_EQ(Parsed(bad, strict), "error") << bad;
  }
  absl::StatusOr<HostPort> r = ParseHostPort(":9090", strict);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(":9090"), std::string::npos);
}

}  // namespace
}  // namespace tessera
