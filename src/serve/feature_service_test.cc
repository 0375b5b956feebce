#include "serve/feature_service.h"

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/clock.h"
#include "engine/live_runtime.h"
#include "serve/http_server.h"
#include "serve/test_http_client.h"
#include "store/memory/memory_tile_store.h"

namespace tessera::serve {
namespace {

constexpr char kSql[] = R"sql(
CREATE SOURCE ev (user_id STRING, device STRING, v BIGINT, ts TIMESTAMP) WITH (connector = 'http');
CREATE FEATURE VIEW stats AS SELECT user_id, COUNT(*) AS n, SUM(v) AS total FROM ev GROUP BY user_id;
CREATE FEATURE VIEW by_pair AS SELECT user_id, device, COUNT(*) AS n FROM ev GROUP BY user_id, device;
)sql";

constexpr int64_t kAt = 1'767'225'600'000 + 3'600'000;  // 2026-01-01T01:00:00Z

// The whole HTTP API over an in-memory store, through the live runtime (no flush needed for
// reads: open tiles are served).
class FeatureServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    catalog_ = std::move(engine::CatalogStore::Load(&store_)).value();
    ASSERT_TRUE(catalog_->Register(kSql).ok());
    engine::LiveOptions lo;
    lo.flush_interval_ms = 5;
    lo.threads = 2;
    lo.metrics = &metrics_;
    runtime_ = std::move(engine::LiveRuntime::Create(catalog_.get(), &store_, &store_, lo)).value();
    service_ = std::make_unique<FeatureService>(catalog_.get(), &store_, &metrics_, &clock_,
                                                FeatureService::Options{});
    for (const auto& v : catalog_->views()) {
      service_->SetOpenTiles(v.get(), runtime_->OpenTilesFor(v.get()));
    }
    for (auto& src : runtime_->TakeHttpSources()) {
      auto* consumer = src.consumer;
      service_->AddIngest(std::move(src.ingest), [consumer](uint64_t seq) {
        consumer->Notify();
        consumer->WaitVisible(seq, std::chrono::seconds(10));
      });
    }
    server_ = std::make_unique<HttpServer>(HttpServerOptions{});
    service_->RegisterRoutes(server_.get());
    ASSERT_TRUE(runtime_->Start().ok());
    ASSERT_TRUE(server_->Start().ok());
    service_->set_ready(true);
  }
  void TearDown() override {
    server_->Stop();
    service_->Shutdown();
    EXPECT_TRUE(runtime_->Stop().ok());
  }

  // Polls until `pred(body)` holds (reads may run slightly behind the acknowledgement).
  nlohmann::json GetUntil(Client& c, const std::string& target,
                          const std::function<bool(const nlohmann::json&)>& pred) {
    nlohmann::json j;
    for (int i = 0; i < 500; ++i) {
      auto r = c.Get(target);
      EXPECT_TRUE(r.has_value());
      j = nlohmann::json::parse(r->body);
      if (pred(j)) return j;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return j;
  }

  store::MemoryTileStore store_;
  MetricsRegistry metrics_;
  FakeClock clock_{kAt};
  std::unique_ptr<engine::CatalogStore> catalog_;
  std::unique_ptr<engine::LiveRuntime> runtime_;
  std::unique_ptr<FeatureService> service_;
  std::unique_ptr<HttpServer> server_;
};

std::string Event(const std::string& user, const std::string& device, int v, int64_t ts) {
  return nlohmann::json({{"user_id", user}, {"device", device}, {"v", v}, {"ts", ts}}).dump();
}

TEST_F(FeatureServiceTest, IngestThenReadSingleBatchAndComposite) {
  Client c(server_->port());
  ASSERT_TRUE(c.connected());
  std::string body = Event("u1", "web", 5, kAt - 60'000) + "\n" + "not json\n" +
                     Event("u1", "ios", 7, kAt - 120'000) + "\n\n";
  auto r = c.Post("/v1/ingest/ev?batch_id=b1", body);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200) << r->body;
  auto ack = nlohmann::json::parse(r->body);
  EXPECT_EQ(ack["accepted"], 2);
  EXPECT_EQ(ack["rejected"], 1);

  auto j = GetUntil(c, "/v1/features/stats/u1?windows=5m,1h",
                    [](const nlohmann::json& j) { return j["windows"]["1h"]["n"] == 2; });
  EXPECT_EQ(j["windows"]["1h"]["total"], 12);
  EXPECT_EQ(j["windows"]["5m"]["n"], 2);  // the tile holding `at` is included (rounded up)

  // Retried batch: acknowledged again, counted once.
  r = c.Post("/v1/ingest/ev?batch_id=b1", body);
  EXPECT_EQ(nlohmann::json::parse(r->body)["duplicate"], true);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(
      nlohmann::json::parse(c.Get("/v1/features/stats/u1?windows=1h")->body)["windows"]["1h"]["n"],
      2);

  // Composite key, URL-encoded '|'.
  j = nlohmann::json::parse(c.Get("/v1/features/by_pair/u1%7Cweb?windows=1h")->body);
  EXPECT_EQ(j["key"], "u1|web");
  EXPECT_EQ(j["windows"]["1h"]["n"], 1);

  r = c.Post("/v1/features:batchGet",
             R"({"view":"stats","keys":["u1","nobody"],"windows":["1h","1d"],"at":)" +
                 std::to_string(kAt) + "}");
  ASSERT_EQ(r->status, 200) << r->body;
  j = nlohmann::json::parse(r->body);
  ASSERT_EQ(j["results"].size(), 2u);
  EXPECT_EQ(j["results"][0]["windows"]["1d"]["n"], 2);
  EXPECT_EQ(j["results"][1]["windows"]["1d"]["n"], 0);
  EXPECT_TRUE(j["results"][1]["windows"]["1d"]["total"].is_null());
}

TEST_F(FeatureServiceTest, BadRequestsNameTheProblem) {
  Client c(server_->port());
  auto expect = [&](std::optional<ClientResponse> r, int status, const std::string& needle) {
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, status) << r->body;
    auto j = nlohmann::json::parse(r->body);
    EXPECT_NE(j["error"].get<std::string>().find(needle), std::string::npos) << r->body;
  };
  expect(c.Get("/v1/features/nope/u1"), 404, "nope");
  expect(c.Get("/v1/features/stats/u1?windows=7m"), 400, "windows");
  expect(c.Get("/v1/features/stats/u1?at=yesterday"), 400, "'at'");
  expect(c.Post("/v1/features:batchGet", "{"), 400, "body");
  expect(c.Post("/v1/features:batchGet", R"({"view":"stats"})"), 400, "keys");
  expect(c.Post("/v1/features:batchGet", R"({"view":"stats","keys":[1]})"), 400, "keys");
  expect(c.Post("/v1/features:batchGet", R"({"view":"x","keys":[]})"), 404, "x");
  expect(c.Post("/v1/ingest/unknown", "{}"), 404, "unknown");
}

TEST_F(FeatureServiceTest, HealthViewsAndMetrics) {
  Client c(server_->port());
  EXPECT_EQ(c.Get("/healthz")->status, 200);
  EXPECT_EQ(c.Get("/readyz")->status, 200);
  auto views = nlohmann::json::parse(c.Get("/v1/views")->body);
  EXPECT_EQ(views["views"].size(), 2u);
  EXPECT_EQ(views["sources"][0]["ingest"], true);
  ASSERT_EQ(c.Post("/v1/ingest/ev", Event("u2", "web", 1, kAt - 1000) + "\n")->status, 200);
  GetUntil(c, "/v1/features/stats/u2?windows=1h",
           [](const nlohmann::json& j) { return j["windows"]["1h"]["n"] == 1; });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // a flush publishes counters
  std::string m = c.Get("/metrics")->body;
  for (const char* name :
       {"tessera_ingest_accepted_rows_total{source=\"ev\"} 1", "tessera_source_rows_total",
        "tessera_http_request_seconds_bucket", "tessera_flush_seconds_count",
        "tessera_freshness_seconds", "tessera_log_append_seconds_count"}) {
    EXPECT_NE(m.find(name), std::string::npos) << name;
  }
  service_->set_ready(false);
  EXPECT_EQ(c.Get("/readyz")->status, 503);
}

}  // namespace
}  // namespace tessera::serve
