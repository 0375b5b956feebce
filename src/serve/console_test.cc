#include "serve/console.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "serve/test_http_client.h"

namespace tessera::serve {
namespace {

using nlohmann::json;

TEST(ConsoleTest, ServesTheHistoryOfTheRegistrysSeries) {
  MetricsRegistry metrics;
  FakeClock clock(1'000'000);
  Counter* rows = metrics.GetCounter("tessera_rows_total", "rows", {{"source", "plays"}});
  metrics.GetGauge("tessera_lag_seconds", "lag")->Set(2);
  Console console(&metrics, &clock, Console::Options{});
  for (int i = 0; i < 3; ++i) {
    rows->Inc(5);
    console.SampleNow();
    clock.AdvanceMillis(2000);
  }
  HttpServer server(HttpServerOptions{});
  console.RegisterRoutes(&server);
  ASSERT_TRUE(server.Start().ok());
  Client client(server.port());

  auto all = client.Get("/v1/console/history");
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->status, 200);
  const json j = json::parse(all->body);
  EXPECT_EQ(j["t"], json({1'000'000, 1'002'000, 1'004'000}));
  EXPECT_EQ(j["series"].size(), 2u);

  auto one = client.Get("/v1/console/history?families=tessera_rows_total");
  ASSERT_TRUE(one.has_value());
  const json k = json::parse(one->body);
  ASSERT_EQ(k["series"].size(), 1u);
  EXPECT_EQ(k["series"][0]["labels"], json({{"source", "plays"}}));
  EXPECT_EQ(k["series"][0]["values"], json({5, 10, 15}));

  auto bad = client.Get("/v1/console/history?family=x");
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("family"), std::string::npos);
}

TEST(ConsoleTest, ServesEachSourcesRecentRejects) {
  MetricsRegistry metrics;
  FakeClock clock(0);
  Console console(&metrics, &clock, Console::Options{});
  auto plays = std::make_shared<source::RecentRejects>("plays", source::RecentRejects::Options{});
  source::ChunkOrigin origin;
  origin.input = "http request";
  source::Rejection r;
  r.line_number = 2;
  r.reason = "line 2: expected a JSON object, got 5";
  r.line = "5";
  plays->Add(42, origin, r);
  console.AddRejects("plays", plays);
  console.AddRejects("clicks", std::make_shared<source::RecentRejects>(
                                   "clicks", source::RecentRejects::Options{}));
  HttpServer server(HttpServerOptions{});
  console.RegisterRoutes(&server);
  ASSERT_TRUE(server.Start().ok());
  Client client(server.port());
  auto got = client.Get("/v1/console/rejects");
  ASSERT_TRUE(got.has_value());
  ASSERT_EQ(got->status, 200);
  const json j = json::parse(got->body);
  ASSERT_EQ(j["sources"].size(), 2u);
  EXPECT_EQ(j["sources"][0]["source"], "plays");
  EXPECT_EQ(j["sources"][0]["total"], 1);
  EXPECT_EQ(j["sources"][0]["recent"][0]["raw"], "5");
  EXPECT_EQ(j["sources"][0]["recent"][0]["line"], 2);
  EXPECT_EQ(j["sources"][0]["recent"][0]["at"], 42);
  EXPECT_EQ(j["sources"][1]["recent"], json::array());
}

TEST(ConsoleTest, TheSamplerRecordsUntilStopped) {
  MetricsRegistry metrics;
  metrics.GetCounter("c_total", "c");
  Console::Options options;
  options.interval = std::chrono::milliseconds(1);
  Console console(&metrics, SystemClock::Default(), options);
  console.Start();
  while (console.history().samples() < 3) std::this_thread::yield();
  console.Stop();
  const size_t after_stop = console.history().samples();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(console.history().samples(), after_stop);
  console.Start();  // a stopped console stays stopped
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(console.history().samples(), after_stop);
}

}  // namespace
}  // namespace tessera::serve
