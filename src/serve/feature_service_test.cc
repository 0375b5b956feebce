#include "serve/feature_service.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "agg/aggregate.h"
#include "common/clock.h"
#include "common/time_util.h"
#include "engine/engine_test_util.h"
#include "engine/entity_key.h"
#include "engine/live_runtime.h"
#include "serve/db_follower.h"
#include "serve/http_server.h"
#include "serve/test_http_client.h"
#include "store/memory/memory_tile_store.h"
#include "store/meta_keys.h"
#include "store/rocksdb/rocksdb_tile_store.h"
#include "store/testing/scoped_temp_dir.h"
#include "tile/tile_layout.h"

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
      service_->SetWatermark(v.get(), runtime_->WatermarkFor(v.get()));
    }
    for (const auto& connector : runtime_->http_connectors()) service_->AddIngest(connector);
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

// What a request asks for cannot grow the answer without bound: past max_response_bytes it is a
// 400 saying what to do. And a batchGet field the API does not have is named, not ignored.
TEST_F(FeatureServiceTest, AnswersAreBoundedAndUnknownBatchGetFieldsRefused) {
  FeatureService::Options options;
  options.max_response_bytes = 2000;
  FeatureService small(catalog_.get(), &store_, &metrics_, &clock_, options);
  HttpServer server{HttpServerOptions{}};
  small.RegisterRoutes(&server);
  ASSERT_TRUE(server.Start().ok());
  small.set_ready(true);
  Client c(server.port());
  ASSERT_TRUE(c.connected());
  std::string keys;
  for (int i = 0; i < 100; ++i) keys += fmt::format("{}\"k{}\"", i == 0 ? "" : ",", i);
  auto r = c.Post("/v1/features:batchGet",
                  R"({"view":"stats","windows":["5m","1h","all"],"keys":[)" + keys + "]}");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 400) << r->body.substr(0, 200);
  EXPECT_NE(r->body.find("ask for fewer keys or windows"), std::string::npos) << r->body;
  r = c.Post("/v1/features:batchGet", R"({"view":"stats","keys":["k1"]})");
  EXPECT_EQ(r->status, 200) << r->body;
  r = c.Post("/v1/features:batchGet", R"({"view":"stats","keys":["k1"],"window":["all"]})");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("unknown field 'window'"), std::string::npos) << r->body;
  server.Stop();
  small.Shutdown();
}

// An acknowledged row is visible to the very next read on the same connection (no polling):
// the answer waits until the pipeline has aggregated the log entry.
TEST_F(FeatureServiceTest, ReadYourWritesOnOneKeepAliveConnection) {
  Client c(server_->port());
  ASSERT_TRUE(c.connected());
  for (int i = 1; i <= 60; ++i) {
    auto r = c.Post("/v1/ingest/ev", Event("rw", "web", 1, kAt - 1000) + "\n");
    ASSERT_TRUE(r.has_value());
    ASSERT_EQ(r->status, 200) << r->body;
    auto g = c.Get("/v1/features/stats/rw?windows=1h");
    ASSERT_TRUE(g.has_value());
    ASSERT_EQ(nlohmann::json::parse(g->body)["windows"]["1h"]["n"], i) << "after POST " << i;
  }
}

// wait=durable answers once the rows are on disk (for producers that need throughput more than
// read-your-writes); anything else but wait=visible is a 400.
TEST_F(FeatureServiceTest, WaitParameter) {
  Client c(server_->port());
  auto r = c.Post("/v1/ingest/ev?wait=durable", Event("wd", "web", 1, kAt - 1000) + "\n");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(nlohmann::json::parse(r->body)["accepted"], 1);
  auto j = GetUntil(c, "/v1/features/stats/wd?windows=1h",
                    [](const nlohmann::json& j) { return j["windows"]["1h"]["n"] == 1; });
  EXPECT_EQ(j["windows"]["1h"]["n"], 1);
  EXPECT_EQ(c.Post("/v1/ingest/ev?wait=visible", Event("wd", "web", 1, kAt) + "\n")->status, 200);
  auto bad = c.Post("/v1/ingest/ev?wait=never", Event("wd", "web", 1, kAt) + "\n");
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("'wait'"), std::string::npos) << bad->body;
}

TEST_F(FeatureServiceTest, BatchIdReusedForAnotherBodyIsAConflict) {
  Client c(server_->port());
  const std::string first = Event("u9", "web", 1, kAt - 1000) + "\n";
  ASSERT_EQ(c.Post("/v1/ingest/ev?batch_id=same", first)->status, 200);
  auto other = c.Post("/v1/ingest/ev?batch_id=same", Event("u9", "web", 50, kAt - 1000) + "\n");
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->status, 409) << other->body;
  EXPECT_NE(other->body.find("batch_id 'same'"), std::string::npos) << other->body;
  // The same body again is a plain duplicate, answered as the first time.
  auto again = c.Post("/v1/ingest/ev?batch_id=same", first);
  EXPECT_EQ(again->status, 200);
  EXPECT_EQ(nlohmann::json::parse(again->body)["duplicate"], true);
  auto j = nlohmann::json::parse(c.Get("/v1/features/stats/u9?windows=1h")->body);
  EXPECT_EQ(j["windows"]["1h"]["total"], 1);
}

// Late rows, rows from a clock far ahead, and fields that did not fit are reported in the answer
// (counts and the first reasons), and a far-future row does not blind the source.
TEST_F(FeatureServiceTest, IngestAnswerReportsLateFutureAndFieldErrors) {
  Client c(server_->port());
  const int64_t now = SystemClock::Default()->NowMillis();
  std::string body = Event("lf", "web", 1, now - 1000) + "\n" +
                     R"({"user_id":"lf","v":"seven","ts":)" + std::to_string(now - 500) + "}\n" +
                     R"({"user_id":"lf","v":1,"ts":"9999-12-31T00:00:00Z"})" + "\n" +
                     Event("lf", "web", 1, now - 3 * 3'600'000) + "\n";
  auto r = c.Post("/v1/ingest/ev?batch_id=lf1", body);
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->status, 200) << r->body;
  auto ack = nlohmann::json::parse(r->body);
  EXPECT_EQ(ack["accepted"], 2);
  EXPECT_EQ(ack["rejected"], 1);
  EXPECT_EQ(ack["future"], 1);
  EXPECT_EQ(ack["late"], 1);
  EXPECT_EQ(ack["field_errors"], 1);
  const std::string errors = ack["errors"].dump();
  EXPECT_NE(errors.find("line 3: event time 9999-12-31"), std::string::npos) << errors;
  EXPECT_NE(errors.find("line 4: late"), std::string::npos) << errors;
  EXPECT_NE(errors.find("NULL"), std::string::npos) << errors;
  // The retry gets exactly the first answer.
  auto again = nlohmann::json::parse(c.Post("/v1/ingest/ev?batch_id=lf1", body)->body);
  nlohmann::json expected = ack;
  expected["duplicate"] = true;
  EXPECT_EQ(again, expected);
  // A row just after is on time: the year-9999 row moved nothing.
  auto next =
      nlohmann::json::parse(c.Post("/v1/ingest/ev", Event("lf", "web", 1, now) + "\n")->body);
  EXPECT_EQ(next["accepted"], 1) << next;
  EXPECT_FALSE(next.contains("late")) << next;
}

TEST_F(FeatureServiceTest, ExtremeAtAndCompositeKeysAsParts) {
  Client c(server_->port());
  for (const char* at : {"9223372036854775807", "-9223372036854775808", "253402300800000"}) {
    auto r = c.Get(std::string("/v1/features/stats/u1?at=") + at);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 400) << at << " " << r->body;
    EXPECT_NE(r->body.find("'at'"), std::string::npos) << r->body;
  }
  // batchGet's JSON numbers too, including unsigned ones beyond INT64_MAX (no wrap-around).
  for (const char* at : {"9223372036854775808", "18446744073709551615", "-9223372036854775808"}) {
    auto r = c.Post("/v1/features:batchGet",
                    std::string(R"({"view":"stats","keys":["u1"],"at":)") + at + "}");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 400) << at << " " << r->body;
    EXPECT_NE(r->body.find(at), std::string::npos) << r->body;  // names the value sent
  }
  auto dup = c.Get("/v1/features/stats/u1?windows=1h,1h");
  EXPECT_EQ(dup->status, 400) << dup->body;
  ASSERT_EQ(c.Post("/v1/ingest/ev", Event("a|b", "c", 1, kAt - 1000) + "\n" +
                                        Event("a", "b|c", 10, kAt - 1000) + "\n")
                ->status,
            200);
  auto r = c.Post("/v1/features:batchGet",
                  R"({"view":"by_pair","keys":[["a|b","c"],"a|b\\|c",["x"]],"windows":"1h"})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 400) << r->body;  // ["x"] has one part, the view two
  EXPECT_NE(r->body.find("'keys'[2]"), std::string::npos) << r->body;
  r = c.Post("/v1/features:batchGet",
             R"({"view":"by_pair","keys":[["a|b","c"],"a|b\\|c"],"windows":"1h","at":)" +
                 std::to_string(kAt) + "}");
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = nlohmann::json::parse(r->body);
  EXPECT_EQ(j["results"][0]["key"], "a\\|b|c");
  EXPECT_EQ(j["results"][0]["windows"]["1h"]["n"], 1);
  EXPECT_EQ(j["results"][1]["key"], "a|b\\|c");
  EXPECT_EQ(j["results"][1]["windows"]["1h"]["n"], 1);
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

// meta=true adds the newest event time the answer includes and the live watermark (the newest
// event time seen on the source minus its lateness, 5 minutes by default); without it (or with
// meta=false) the answer is byte for byte what it was.
TEST_F(FeatureServiceTest, MetaReportsNewestEventTimeAndWatermark) {
  Client c(server_->port());
  // Rows out of order, one with a NULL value, one late (dropped: older than the watermark when
  // it arrives); u2's newest row is before the 5m window's tail.
  const std::string body =
      Event("u1", "ios", 7, kAt - 50 * 60'000) + "\n" + Event("u2", "web", 1, kAt - 20 * 60'000) +
      "\n" + Event("u1", "web", 5, kAt - 7 * 60'000) + "\n" +
      R"({"user_id":"u1","device":"web","v":null,"ts":)" + std::to_string(kAt - 2 * 60'000) +
      "}\n" + Event("u1", "web", 9, kAt - 30 * 60'000) + "\n";
  ASSERT_EQ(c.Post("/v1/ingest/ev", body)->status, 200);
  GetUntil(c, "/v1/features/stats/u1?windows=1h",
           [](const nlohmann::json& j) { return j["windows"]["1h"]["n"] == 3; });
  const std::string watermark = FormatRfc3339Millis(kAt - 2 * 60'000 - 5 * 60'000);

  auto j = nlohmann::json::parse(
      c.Get("/v1/features/stats/u1?windows=5m,1h&at=" + std::to_string(kAt) + "&meta=true")->body);
  EXPECT_EQ(j["meta"]["newest_event_time"], FormatRfc3339Millis(kAt - 2 * 60'000)) << j;
  EXPECT_EQ(j["meta"]["watermark"], watermark) << j;
  // An empty answer: no newest row, the watermark all the same.
  j = nlohmann::json::parse(c.Get("/v1/features/stats/nobody?meta=true")->body);
  EXPECT_TRUE(j["meta"]["newest_event_time"].is_null()) << j;
  EXPECT_EQ(j["meta"]["watermark"], watermark) << j;
  // Before u1's rows (an `at` whose windows hold none of them): null as well.
  j = nlohmann::json::parse(
      c.Get("/v1/features/stats/u1?windows=5m&meta=true&at=" + std::to_string(kAt - 3 * 3'600'000))
          ->body);
  EXPECT_EQ(j["windows"]["5m"]["n"], 0);
  EXPECT_TRUE(j["meta"]["newest_event_time"].is_null()) << j;

  // Without meta, or meta=false: no "meta", the same bytes.
  const std::string plain = c.Get("/v1/features/stats/u1?windows=5m,1h")->body;
  EXPECT_EQ(plain.find("meta"), std::string::npos);
  EXPECT_EQ(c.Get("/v1/features/stats/u1?windows=5m,1h&meta=false")->body, plain);
  const std::string batch = R"({"view":"stats","keys":["u1","u2","nobody"],"windows":["5m","1h"])";
  const std::string batch_plain = c.Post("/v1/features:batchGet", batch + "}")->body;
  EXPECT_EQ(batch_plain.find("meta"), std::string::npos);
  EXPECT_EQ(c.Post("/v1/features:batchGet", batch + R"(,"meta":false})")->body, batch_plain);

  // batchGet: every result carries its own newest event time, one watermark.
  auto r = c.Post("/v1/features:batchGet", batch + R"(,"meta":true})");
  ASSERT_EQ(r->status, 200) << r->body;
  j = nlohmann::json::parse(r->body);
  ASSERT_EQ(j["results"].size(), 3u);
  EXPECT_EQ(j["results"][0]["meta"]["newest_event_time"], FormatRfc3339Millis(kAt - 2 * 60'000));
  EXPECT_EQ(j["results"][1]["meta"]["newest_event_time"], FormatRfc3339Millis(kAt - 20 * 60'000));
  EXPECT_EQ(j["results"][1]["windows"]["5m"]["n"], 0);  // newest is of the longest window
  EXPECT_TRUE(j["results"][2]["meta"]["newest_event_time"].is_null());
  for (const auto& result : j["results"]) EXPECT_EQ(result["meta"]["watermark"], watermark);
  // The JSON layout: "meta" last, after "windows".
  EXPECT_EQ(r->body.find(R"("meta":)"), r->body.find(R"(}},"meta":{"newest_event_time":)") + 3);

  // Anything but true/false is refused, naming the parameter and what it takes.
  for (const char* bad : {"1", "yes", "TRUE", ""}) {
    r = c.Get(std::string("/v1/features/stats/u1?meta=") + bad);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 400) << bad;
    EXPECT_NE(r->body.find("parameter 'meta': expected true"), std::string::npos) << r->body;
    EXPECT_NE(r->body.find("or false"), std::string::npos) << r->body;
  }
  for (const char* bad : {R"("true")", "1", "null", "[true]"}) {
    r = c.Post("/v1/features:batchGet", batch + R"(,"meta":)" + bad + "}");
    EXPECT_EQ(r->status, 400) << bad;
    EXPECT_NE(r->body.find("field 'meta': expected true"), std::string::npos) << r->body;
  }
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

TEST_F(FeatureServiceTest, UnknownQueryParametersAreRejected) {
  Client c(server_->port());
  auto r = c.Post("/v1/ingest/ev?batchid=b1", Event("u9", "web", 1, kAt - 1000) + "\n");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(nlohmann::json::parse(r->body)["error"],
            "unknown query parameter 'batchid' (accepted: batch_id, wait)");
  r = c.Get("/v1/features/stats/u1?window=1h");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(nlohmann::json::parse(r->body)["error"],
            "unknown query parameter 'window' (accepted: windows, at, meta)");
  r = c.Get("/v1/views?all=1");
  EXPECT_EQ(r->status, 400);
  // The rejected ingest stored nothing.
  r = c.Get("/v1/features/stats/u9?windows=1h");
  EXPECT_EQ(nlohmann::json::parse(r->body)["windows"]["1h"]["n"], 0);
}

// View names and keys are echoed into JSON whatever bytes they hold.
TEST_F(FeatureServiceTest, InvalidUtf8InPathsGivesValidJson) {
  Client c(server_->port());
  auto r = c.Get("/v1/features/%FF/u1");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 404);
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r->body;
  EXPECT_EQ(j["error"], "no view named '\xef\xbf\xbd'");
  r = c.Get("/v1/features/stats/a%FFb%C3?windows=1h");
  EXPECT_EQ(r->status, 200);
  j = nlohmann::json::parse(r->body, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r->body;
  EXPECT_EQ(j["key"],
            "a\xef\xbf\xbd"
            "b\xef\xbf\xbd");
  EXPECT_EQ(c.Head("/v1/features/stats/u1")->status, 200);
  EXPECT_EQ(c.Head("/healthz")->status, 200);
  EXPECT_EQ(c.Head("/readyz")->status, 200);
}

TEST_F(FeatureServiceTest, GzipIngest) {
  Client c(server_->port());
  const std::string body = Event("gz", "web", 3, kAt - 1000) + "\n";
  // A gzip member of `body` made by zlib's gzip format (written by hand: one stored block).
  std::string gz("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", 10);
  gz += '\x01';  // final stored block
  const uint16_t len = static_cast<uint16_t>(body.size());
  gz += static_cast<char>(len & 0xff);
  gz += static_cast<char>(len >> 8);
  gz += static_cast<char>(~len & 0xff);
  gz += static_cast<char>((~len >> 8) & 0xff);
  gz += body;
  uint32_t crc = 0xffffffffu;
  for (unsigned char ch : body) {
    crc ^= ch;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  crc ^= 0xffffffffu;
  for (int k = 0; k < 4; ++k) gz += static_cast<char>((crc >> (8 * k)) & 0xff);
  for (int k = 0; k < 4; ++k) gz += static_cast<char>((body.size() >> (8 * k)) & 0xff);
  ASSERT_TRUE(
      c.Send("POST /v1/ingest/ev?batch_id=gz1 HTTP/1.1\r\nHost: t\r\nContent-Encoding: "
             "gzip\r\nContent-Length: " +
             std::to_string(gz.size()) + "\r\n\r\n" + gz));
  auto r = c.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(nlohmann::json::parse(r->body)["accepted"], 1);
  GetUntil(c, "/v1/features/stats/gz?windows=1h",
           [](const nlohmann::json& j) { return j["windows"]["1h"]["n"] == 1; });
  ASSERT_TRUE(
      c.Send("POST /v1/ingest/ev HTTP/1.1\r\nHost: t\r\nContent-Encoding: zstd\r\n"
             "Content-Length: 2\r\n\r\n{}"));
  r = c.Read();
  EXPECT_EQ(r->status, 415);
}

// 200 junk methods must not create 200 series (each was a histogram of ~20 lines per route and
// status, never freed).
TEST_F(FeatureServiceTest, ClientMethodsDoNotGrowMetrics) {
  Client c(server_->port());
  const size_t before = c.Get("/metrics")->body.size();
  for (int i = 0; i < 200; ++i) {
    Client junk(server_->port());
    ASSERT_TRUE(junk.Send("JUNK" + std::to_string(i) + " /v1/views HTTP/1.1\r\nHost: t\r\n\r\n"));
    auto r = junk.Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 405);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // observers run after writes
  const std::string m = c.Get("/metrics")->body;
  EXPECT_EQ(m.find("JUNK"), std::string::npos);
  EXPECT_NE(m.find("method=\"other\""), std::string::npos);
  EXPECT_LT(m.size(), before + 20'000) << "metrics grew from " << before << " to " << m.size();
}

// `tessera serve`: a read-only service whose catalog a DbFollower reloads when the writer
// registers new views, and whose /readyz and /metrics report how stale it is.
TEST(ReadOnlyFeatureServiceTest, ViewsShowPlansAndHideLibrdkafkaProperties) {
  store::MemoryTileStore store;
  auto catalog = std::move(engine::CatalogStore::Load(&store)).value();
  ASSERT_TRUE(catalog
                  ->Register(R"sql(
CREATE SOURCE k (user_id STRING, ts TIMESTAMP) WITH (connector = 'kafka', topic = 'plays',
  'properties.bootstrap.servers' = 'b:9092', 'properties.group.id' = 'g',
  'properties.ssl.key.pem' = 'PRIVATE', 'properties.sasl.oauthbearer.config' = 'secret=x');
CREATE FEATURE VIEW kv AS SELECT user_id, COUNT(*) AS n FROM k GROUP BY user_id;
)sql")
                  .ok());
  MetricsRegistry metrics;
  FakeClock clock(kAt);
  FeatureService::Options options;
  options.read_only = true;
  FeatureService service(catalog.get(), &store, &metrics, &clock, options);
  HttpServer server(HttpServerOptions{});
  service.RegisterRoutes(&server);
  ASSERT_TRUE(server.Start().ok());
  Client c(server.port());
  const std::string body = c.Get("/v1/views")->body;
  EXPECT_EQ(body.find("PRIVATE"), std::string::npos) << body;
  EXPECT_EQ(body.find("secret=x"), std::string::npos) << body;
  const auto views = nlohmann::json::parse(body);
  const auto& opts = views["sources"][0]["options"];
  EXPECT_EQ(opts["properties.bootstrap.servers"], "b:9092");
  EXPECT_EQ(opts["properties.group.id"], "g");
  EXPECT_EQ(opts["topic"], "plays");
  EXPECT_EQ(opts["properties.ssl.key.pem"], "(hidden)");
  EXPECT_NE(views["views"][0]["plan"].get<std::string>().find("COUNT(*)"), std::string::npos);
  server.Stop();
}

TEST(ReadOnlyFeatureServiceTest, IngestIs405AndFollowerReloadsCatalogAndReportsStaleness) {
  store::MemoryTileStore store;
  auto writer_catalog = std::move(engine::CatalogStore::Load(&store)).value();
  ASSERT_TRUE(writer_catalog->Register(kSql).ok());
  auto catalog = std::move(engine::CatalogStore::Load(&store)).value();
  MetricsRegistry metrics;
  FakeClock clock(kAt);
  FeatureService::Options options;
  options.read_only = true;
  FeatureService service(catalog.get(), &store, &metrics, &clock, options);
  absl::Status catch_up_result = absl::OkStatus();
  std::atomic<int> catch_ups{0};
  DbFollower::Options follow;
  follow.interval = std::chrono::milliseconds(10);
  follow.stale_after = std::chrono::milliseconds(5000);
  DbFollower follower(
      [&] {
        ++catch_ups;
        return catch_up_result;
      },
      &store, &service, &metrics, &clock, follow);
  ASSERT_TRUE(follower.Init().ok());
  HttpServer server(HttpServerOptions{});
  service.RegisterRoutes(&server);
  ASSERT_TRUE(server.Start().ok());
  service.set_ready(true);
  Client c(server.port());

  auto r = c.Post("/v1/ingest/ev?batch_id=x", Event("u1", "web", 1, kAt) + "\n");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->Header("allow"), "");
  EXPECT_NE(r->body.find("read-only"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("tessera run"), std::string::npos) << r->body;

  // The writer registers a view: unknown until the next refresh, then served.
  EXPECT_EQ(c.Get("/v1/features/later/u1")->status, 404);
  absl::StatusOr<std::vector<std::string>> registered = writer_catalog->Register(
      std::string(kSql) +
      "CREATE FEATURE VIEW later AS SELECT user_id, MAX(v) AS mx FROM ev GROUP BY user_id;");
  ASSERT_TRUE(registered.ok()) << registered.status();
  EXPECT_EQ(c.Get("/v1/features/later/u1")->status, 404);
  ASSERT_TRUE(follower.RefreshOnce().ok());
  EXPECT_EQ(c.Get("/v1/features/later/u1?windows=1h")->status, 200);
  EXPECT_EQ(nlohmann::json::parse(c.Get("/v1/views")->body)["views"].size(), 3u);
  ASSERT_TRUE(follower.RefreshOnce().ok());  // unchanged: no reload
  std::string m = c.Get("/metrics")->body;
  EXPECT_NE(m.find("tessera_serve_catalog_reloads_total 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("tessera_serve_catchup_age_seconds 0\n"), std::string::npos) << m;

  // Catch-ups fail: still ready within stale_after, then 503 naming the age and the error.
  catch_up_result = absl::UnavailableError("writer's MANIFEST unreadable");
  EXPECT_FALSE(follower.RefreshOnce().ok());
  clock.AdvanceMillis(4000);
  EXPECT_EQ(c.Get("/readyz")->status, 200);
  clock.AdvanceMillis(2000);
  EXPECT_FALSE(follower.RefreshOnce().ok());
  r = c.Get("/readyz");
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->body.find("stale"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("MANIFEST unreadable"), std::string::npos) << r->body;
  m = c.Get("/metrics")->body;
  EXPECT_NE(m.find("tessera_serve_catchup_age_seconds 6\n"), std::string::npos) << m;
  EXPECT_NE(m.find("tessera_serve_catchup_failures_total 2\n"), std::string::npos) << m;
  // Recovery.
  catch_up_result = absl::OkStatus();
  ASSERT_TRUE(follower.RefreshOnce().ok());
  EXPECT_EQ(c.Get("/readyz")->status, 200);

  // The timer thread refreshes on its own.
  const int before = catch_ups;
  follower.Start();
  for (int i = 0; i < 500 && catch_ups < before + 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  follower.Stop();
  EXPECT_GE(catch_ups, before + 3);
  server.Stop();
}

// `tessera serve` (no live pipeline): meta reports the watermark the writer committed to the
// store, and a newest event time of null for answers that include a tile written before tiles
// recorded it (its rows' times are unknown), even next to newer tiles that know theirs.
TEST(ReadOnlyFeatureServiceTest, MetaReportsTheCommittedWatermarkAndUnknownForOldTiles) {
  store::MemoryTileStore store;
  auto catalog = std::move(engine::CatalogStore::Load(&store)).value();
  ASSERT_TRUE(catalog->Register(kSql).ok());
  const engine::ViewRuntime* view = catalog->FindView("stats");
  MetricsRegistry metrics;
  FakeClock clock(kAt);
  FeatureService::Options options;
  options.read_only = true;
  FeatureService service(catalog.get(), &store, &metrics, &clock, options);
  HttpServer server(HttpServerOptions{.threads = 1});
  service.RegisterRoutes(&server);
  ASSERT_TRUE(server.Start().ok());
  service.set_ready(true);
  Client c(server.port());
  auto meta = [&](const std::string& user) {
    auto r = c.Get(fmt::format("/v1/features/stats/{}?windows=5m,1h&meta=true", user));
    EXPECT_EQ(r->status, 200) << r->body;
    return nlohmann::json::parse(r->body);
  };
  // A tile of this build (rows at start + offsets) or, with `old`, as an older build wrote it:
  // encoding version 1, the view's aggregates only.
  auto write_tile = [&](const std::string& user, int64_t start, std::vector<int64_t> offsets,
                        bool old) {
    std::vector<int64_t> ts;
    ts.reserve(offsets.size());
    for (int64_t o : offsets) ts.push_back(start + o);
    std::string bytes;
    if (old) {
      std::vector<std::unique_ptr<agg::AggregateFunction>> aggs;
      for (const sql::AggregateCall& a : view->def->aggregates) {
        aggs.push_back(*agg::MakeAggregate(a.kind, a.arg ? a.arg->type : DataType::kNull, {}));
      }
      tile::TileLayout old_layout(std::move(aggs));
      tile::OwnedBlock block(old_layout);
      std::vector<uint32_t> rows(ts.size());
      for (uint32_t i = 0; i < rows.size(); ++i) rows[i] = i;
      const Column values = engine::Int64Column(std::vector<int64_t>(ts.size(), 1));
      for (size_t a = 0; a < old_layout.num_slots(); ++a) {
        std::vector<std::byte*> states(ts.size(), block.data() + old_layout.offset(a));
        old_layout.agg(a).AddBatch(states.data(), view->def->aggregates[a].arg ? &values : nullptr,
                                   ts.data(), rows.data(), rows.size());
      }
      old_layout.Serialize(block.data(), &bytes);
      bytes[0] = 1;
    } else {
      tile::OwnedBlock block(*view->layout);
      engine::AddRowsToBlock(*view, block.data(),
                             engine::Int64Column(std::vector<int64_t>(ts.size(), 1)), ts);
      view->layout->Serialize(block.data(), &bytes);
    }
    store::WriteBatch batch;
    batch.tiles.emplace_back(store::TileKey{view->id, user, store::Resolution::kBase, start},
                             std::move(bytes));
    ASSERT_TRUE(store.Write(batch).ok());
  };

  auto j = meta("u1");  // nothing committed yet
  EXPECT_TRUE(j["meta"]["newest_event_time"].is_null()) << j;
  EXPECT_TRUE(j["meta"]["watermark"].is_null()) << j;

  write_tile("u1", kAt - 600'000, {123, 290'000, 7}, false);
  store::WriteBatch committed;
  committed.meta.emplace_back(store::meta::SourceMaxEventTimeKey("ev"),
                              std::to_string(kAt - 310'000));
  ASSERT_TRUE(store.Write(committed).ok());
  j = meta("u1");
  EXPECT_EQ(j["windows"]["1h"]["n"], 3);
  EXPECT_EQ(j["meta"]["newest_event_time"], FormatRfc3339Millis(kAt - 600'000 + 290'000)) << j;
  EXPECT_EQ(j["meta"]["watermark"], FormatRfc3339Millis(kAt - 310'000 - 300'000)) << j;

  // A source with lanes (Kafka partitions): the minimum over them.
  store::WriteBatch lanes;
  lanes.meta.emplace_back(store::meta::SourceLaneMaxEventTimeKey("ev", "plays/0"),
                          std::to_string(kAt - 310'000));
  lanes.meta.emplace_back(store::meta::SourceLaneMaxEventTimeKey("ev", "plays/1"),
                          std::to_string(kAt - 3'600'000));
  ASSERT_TRUE(store.Write(lanes).ok());
  EXPECT_EQ(meta("u1")["meta"]["watermark"], FormatRfc3339Millis(kAt - 3'600'000 - 300'000));

  // u2: an old tile in the 1h window and a newer tile of this build in the 5m one.
  write_tile("u2", kAt - 1'800'000, {1000, 2000}, true);
  write_tile("u2", kAt - 300'000, {5000}, false);
  j = meta("u2");
  EXPECT_EQ(j["windows"]["1h"]["n"], 3);
  EXPECT_TRUE(j["meta"]["newest_event_time"].is_null()) << j;
  auto only_5m = c.Get("/v1/features/stats/u2?windows=5m&meta=true");
  j = nlohmann::json::parse(only_5m->body);
  EXPECT_EQ(j["meta"]["newest_event_time"], FormatRfc3339Millis(kAt - 300'000 + 5000)) << j;
  server.Stop();
}

// `tessera serve` reuses its readers' store cursors across requests: every request still sees
// every write that finished before it (GET and batchGet), on a RocksDB store whose cursors would
// otherwise stay at the state they were made in.
TEST(ReadOnlyFeatureServiceTest, ReusedReadersSeeEveryEarlierWrite) {
  store::ScopedTempDir tmp;
  auto opened = store::RocksDbTileStore::Open(tmp.Sub("db"), store::RocksDbOptions{});
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<store::RocksDbTileStore> store = *std::move(opened);
  {
    auto catalog = std::move(engine::CatalogStore::Load(store.get())).value();
    ASSERT_TRUE(catalog->Register(kSql).ok());
    const engine::ViewRuntime* view = catalog->FindView("stats");
    ASSERT_NE(view, nullptr);
    MetricsRegistry metrics;
    FakeClock clock(kAt);
    FeatureService::Options options;
    options.read_only = true;
    options.read_threads = 2;  // as `tessera serve`: batchGets on a pool, one I/O thread
    FeatureService service(catalog.get(), store.get(), &metrics, &clock, options);
    HttpServer server(HttpServerOptions{.threads = 1});
    service.RegisterRoutes(&server);
    ASSERT_TRUE(server.Start().ok());
    service.set_ready(true);
    Client c(server.port());
    // Writes a base tile of `users` holding `rows` rows (v = 1 each) at kAt - 5 min.
    auto write = [&](const std::vector<std::string>& users, int rows) {
      store::WriteBatch batch;
      for (const std::string& user : users) {
        tile::OwnedBlock block(*view->layout);
        std::vector<int64_t> ones(rows, 1);
        engine::AddRowsToBlock(*view, block.data(), engine::Int64Column(ones), kAt - 300000);
        std::string bytes;
        view->layout->Serialize(block.data(), &bytes);
        batch.tiles.emplace_back(store::TileKey{view->id, *engine::StoredKeyFromText(user, 1),
                                                store::Resolution::kBase, kAt - 300000},
                                 std::move(bytes));
      }
      ASSERT_TRUE(store->Write(batch).ok());
    };
    auto n_of = [&](const std::string& user) {
      auto r = c.Get(fmt::format("/v1/features/stats/{}?windows=1h", user));
      EXPECT_TRUE(r.has_value());
      EXPECT_EQ(r->status, 200) << r->body;
      return nlohmann::json::parse(r->body)["windows"]["1h"]["n"];
    };
    auto batch_n = [&](const std::string& user) {
      auto r = c.Post("/v1/features:batchGet",
                      fmt::format(R"({{"view":"stats","windows":["1h"],"keys":["{}"]}})", user));
      EXPECT_TRUE(r.has_value());
      EXPECT_EQ(r->status, 200) << r->body;
      return nlohmann::json::parse(r->body)["results"][0]["windows"]["1h"]["n"];
    };
    write({"u1"}, 1);
    EXPECT_EQ(n_of("u1"), 1);
    EXPECT_EQ(batch_n("u1"), 1);
    for (int round = 2; round <= 4; ++round) {
      const std::string user = fmt::format("u{}", round);
      write({"u1", user}, round);
      EXPECT_EQ(n_of("u1"), round);
      EXPECT_EQ(batch_n("u1"), round);
      EXPECT_EQ(n_of(user), round);
    }
    server.Stop();
  }
}

}  // namespace
}  // namespace tessera::serve

namespace tessera::serve {
namespace {

// An event log whose appends first call `before_append` (e.g. to hold them: a stuck disk).
class GatedLog final : public store::EventLog {
 public:
  GatedLog(store::EventLog* base, std::function<void()> before_append)
      : base_(base), before_append_(std::move(before_append)) {}
  using store::EventLog::Append;
  absl::StatusOr<store::AppendResult> Append(std::string_view source, std::string_view batch_id,
                                             std::string_view payload, int64_t accepted,
                                             int64_t rejected,
                                             std::string_view annotation) override {
    before_append_();
    return base_->Append(source, batch_id, payload, accepted, rejected, annotation);
  }
  absl::Status Read(std::string_view source, uint64_t after_seq, size_t max_bytes,
                    const std::function<void(uint64_t, std::string_view)>& fn) override {
    return base_->Read(source, after_seq, max_bytes, fn);
  }
  absl::StatusOr<uint64_t> LastSeq(std::string_view source) override {
    return base_->LastSeq(source);
  }
  absl::Status Trim(std::string_view source, uint64_t up_to_seq) override {
    return base_->Trim(source, up_to_seq);
  }

 private:
  store::EventLog* base_;
  std::function<void()> before_append_;
};

// Ingest that arrives faster than it can be appended is refused with 503 + Retry-After once the
// queued bodies reach the limit, and while the consumer reports itself overloaded: memory stays
// bounded whatever clients send.
TEST(IngestBackpressureTest, QueuedBytesAndOverloadAreRefusedWithRetryAfter) {
  store::MemoryTileStore store;
  auto catalog = std::move(engine::CatalogStore::Load(&store)).value();
  ASSERT_TRUE(catalog->Register(kSql).ok());
  MetricsRegistry metrics;
  FakeClock clock(kAt);
  FeatureService::Options options;
  options.ingest_threads = 1;
  options.max_pending_ingest_bytes = 1000;
  FeatureService service(catalog.get(), &store, &metrics, &clock, options);
  const sql::SourceDef& src = *catalog->catalog().FindSource("ev");
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  int appended = 0;
  GatedLog log(&store, [&] {
    std::unique_lock<std::mutex> lock(mu);
    ++appended;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });  // the disk is stuck
  });
  source::HttpConnectorOptions co;
  co.ingest.columns = src.columns;
  co.ingest.time_column = src.time_column;
  co.ingest.clock = &clock;
  co.max_visible_wait = std::chrono::milliseconds(1);  // no pipeline consumes the log here
  auto connector = std::move(source::HttpConnector::Create(&log, &store, "ev", co)).value();
  std::atomic<bool> overloaded{false};
  connector->AttachPipeline(
      std::numeric_limits<int64_t>::min(),
      source::PipelineLoad{[&] { return overloaded ? size_t{3} << 20 : 0; }, size_t{1} << 20});
  service.AddIngest(connector);
  HttpServer server(HttpServerOptions{});
  service.RegisterRoutes(&server);
  ASSERT_TRUE(server.Start().ok());

  const std::string body = Event("u1", "web", 1, kAt - 1000) + "\n";  // ~60 bytes
  std::vector<std::thread> posters;
  std::vector<std::atomic<int>> statuses(12);
  auto Count = [&](int status) {
    return static_cast<int>(std::count_if(statuses.begin(), statuses.end(),
                                          [&](const std::atomic<int>& s) { return s == status; }));
  };
  // The first body occupies the only ingest thread; wait until it is inside the append.
  posters.emplace_back(
      [&] { statuses[0] = Client(server.port()).Post("/v1/ingest/ev", body)->status; });
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return appended == 1; }));
  }
  // 11 more bodies: those beyond ~1000 queued bytes are refused at once.
  int refused = 0;
  for (int i = 1; i < 12; ++i) {
    std::string big(120, ' ');
    auto r = std::make_shared<Client>(server.port());
    posters.emplace_back(
        [&, i, r, big] { statuses[i] = r->Post("/v1/ingest/ev", body + big)->status; });
  }
  for (int i = 0; i < 200 && refused < 4; ++i) {
    refused = Count(503);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(refused, 4);  // at most (1000 / ~180) bodies fit in the queue
  Client probe(server.port());
  overloaded = true;
  auto r = probe.Post("/v1/ingest/ev", body);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_NE(r->body.find("3 MiB of unflushed tiles, budget 1 MiB"), std::string::npos) << r->body;
  EXPECT_EQ(r->Header("retry-after"), "1");
  overloaded = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
    cv.notify_all();
  }
  for (auto& t : posters) t.join();
  const int ok = Count(200);
  EXPECT_EQ(ok + Count(503), 12);
  EXPECT_EQ(ok, appended);
  server.Stop();
  service.Shutdown();
}

}  // namespace
}  // namespace tessera::serve
