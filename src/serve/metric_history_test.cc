#include "serve/metric_history.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

namespace tessera::serve {
namespace {

using nlohmann::json;

const json* FindSeries(const json& j, const std::string& name, const std::string& kind,
                       const json& labels = json::object()) {
  for (const json& s : j["series"]) {
    if (s["name"] == name && s["kind"] == kind && s["labels"] == labels) return &s;
  }
  return nullptr;
}

TEST(HistogramQuantileTest, InterpolatesWithinTheBucketOfTheRank) {
  const std::vector<double> bounds = {1, 2, 4};
  // 10 observations in (0,1], 10 in (1,2]; none above.
  const std::vector<uint64_t> after = {10, 20, 20, 20};
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.5, bounds, {}, after), 1.0);
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.25, bounds, {}, after), 0.5);
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.75, bounds, {}, after), 1.5);
}

TEST(HistogramQuantileTest, CountsOnlyTheObservationsSinceTheEarlierSnapshot) {
  const std::vector<double> bounds = {1, 2, 4};
  const std::vector<uint64_t> before = {10, 10, 10, 10};  // 10 fast ones, earlier
  const std::vector<uint64_t> after = {10, 10, 20, 20};   // then 10 in (2,4]
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.5, bounds, before, after), 3.0);
  EXPECT_TRUE(std::isnan(HistogramQuantile(0.5, bounds, after, after)));  // none in between
}

TEST(HistogramQuantileTest, AboveTheLastBoundIsTheLastBound) {
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.99, {1, 2}, {}, {0, 0, 5}), 2.0);
  EXPECT_TRUE(std::isnan(HistogramQuantile(0.5, {1, 2}, {}, {})));
  EXPECT_TRUE(std::isnan(HistogramQuantile(0.5, {1, 2}, {}, {1, 2})));  // malformed: no +Inf
}

TEST(MetricHistoryTest, KeepsTheLastPointsOfEachSeriesInTimeOrder) {
  MetricsRegistry registry;
  Counter* rows = registry.GetCounter("rows_total", "rows", {{"source", "plays"}});
  Gauge* lag = registry.GetGauge("lag_seconds", "lag");
  MetricHistory history(MetricHistory::Options{.points = 3});
  for (int i = 1; i <= 5; ++i) {
    rows->Inc(10);
    lag->Set(i * 0.5);
    history.Record(1000 * i, registry.Snapshot());
  }
  const json j = json::parse(history.ToJson({}));
  EXPECT_EQ(j["points"], 3);
  EXPECT_EQ(j["t"], json({3000, 4000, 5000}));
  const json* r = FindSeries(j, "rows_total", "counter", {{"source", "plays"}});
  ASSERT_NE(r, nullptr);
  EXPECT_EQ((*r)["values"], json({30, 40, 50}));
  const json* l = FindSeries(j, "lag_seconds", "gauge");
  ASSERT_NE(l, nullptr);
  EXPECT_EQ((*l)["values"], json({1.5, 2.0, 2.5}));
  EXPECT_EQ(history.samples(), 5u);
}

TEST(MetricHistoryTest, ASeriesCreatedLaterIsNullBeforeItExisted) {
  MetricsRegistry registry;
  registry.GetCounter("a_total", "a")->Inc();
  MetricHistory history(MetricHistory::Options{.points = 4});
  history.Record(1, registry.Snapshot());
  registry.GetCounter("b_total", "b")->Inc(7);
  history.Record(2, registry.Snapshot());
  const json j = json::parse(history.ToJson({}));
  const json* b = FindSeries(j, "b_total", "counter");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ((*b)["values"], json({nullptr, 7}));
}

TEST(MetricHistoryTest, HistogramsGiveTheirCountAndQuantilesPerInterval) {
  MetricsRegistry registry;
  Histogram* h = registry.GetHistogram("lat_seconds", "latency", {{"route", "get"}}, {1, 2, 4});
  MetricHistory history(MetricHistory::Options{.points = 8});
  history.Record(1, registry.Snapshot());  // nothing observed yet
  for (int i = 0; i < 100; ++i) h->Observe(0.5);
  history.Record(2, registry.Snapshot());
  for (int i = 0; i < 100; ++i) h->Observe(3);
  history.Record(3, registry.Snapshot());
  const json j = json::parse(history.ToJson({"lat_seconds"}));
  const json labels = {{"route", "get"}};
  EXPECT_EQ((*FindSeries(j, "lat_seconds", "count", labels))["values"], json({0, 100, 200}));
  const json& p50 = (*FindSeries(j, "lat_seconds", "p50", labels))["values"];
  EXPECT_TRUE(p50[0].is_null());
  EXPECT_DOUBLE_EQ(p50[1].get<double>(), 0.5);  // the interval's own observations only
  EXPECT_DOUBLE_EQ(p50[2].get<double>(), 3.0);
  EXPECT_NE(FindSeries(j, "lat_seconds", "p99", labels), nullptr);
}

TEST(MetricHistoryTest, FiltersByFamilyName) {
  MetricsRegistry registry;
  registry.GetCounter("a_total", "a");
  registry.GetCounter("b_total", "b");
  MetricHistory history(MetricHistory::Options{});
  history.Record(1, registry.Snapshot());
  const json j = json::parse(history.ToJson({"b_total"}));
  ASSERT_EQ(j["series"].size(), 1u);
  EXPECT_EQ(j["series"][0]["name"], "b_total");
}

TEST(MetricHistoryTest, StopsAddingTracksAtItsBound) {
  MetricsRegistry registry;
  for (int i = 0; i < 10; ++i) registry.GetCounter("c_total", "c", {{"i", std::to_string(i)}});
  MetricHistory history(MetricHistory::Options{.points = 2, .max_tracks = 4});
  history.Record(1, registry.Snapshot());
  history.Record(2, registry.Snapshot());
  const json j = json::parse(history.ToJson({}));
  EXPECT_EQ(j["series"].size(), 4u);
  EXPECT_EQ(history.dropped_tracks(), 12u);  // 6 series refused at each of the two samples
}

TEST(MetricHistoryTest, NonFiniteGaugeValuesAreNull) {
  MetricsRegistry registry;
  registry.GetGauge("g", "g")->Set(std::nan(""));
  MetricHistory history(MetricHistory::Options{});
  history.Record(1, registry.Snapshot());
  const json j = json::parse(history.ToJson({}));
  EXPECT_TRUE((*FindSeries(j, "g", "gauge"))["values"][0].is_null());
}

}  // namespace
}  // namespace tessera::serve
