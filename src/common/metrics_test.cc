#include "common/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace tessera {
namespace {

TEST(MetricsTest, EmptyRegistryRendersNothing) {
  MetricsRegistry r;
  EXPECT_EQ(r.RenderPrometheus(), "");
}

TEST(MetricsTest, CounterAndGaugeGolden) {
  MetricsRegistry r;
  r.GetCounter("tessera_rows_total", "Rows read.", {{"source", "plays"}})->Inc(5);
  r.GetCounter("tessera_rows_total", "Rows read.", {{"source", "clicks"}})->Inc();
  r.GetGauge("tessera_queue_depth", "Queued batches.")->Set(2.5);
  r.GetCounter("a_total", "First.")->Inc(0);
  EXPECT_EQ(r.RenderPrometheus(),
            "# HELP a_total First.\n"
            "# TYPE a_total counter\n"
            "a_total 0\n"
            "# HELP tessera_queue_depth Queued batches.\n"
            "# TYPE tessera_queue_depth gauge\n"
            "tessera_queue_depth 2.5\n"
            "# HELP tessera_rows_total Rows read.\n"
            "# TYPE tessera_rows_total counter\n"
            "tessera_rows_total{source=\"clicks\"} 1\n"
            "tessera_rows_total{source=\"plays\"} 5\n");
}

TEST(MetricsTest, SameSeriesSamePointerAndLabelOrderIgnored) {
  MetricsRegistry r;
  Counter* a = r.GetCounter("c_total", "h", {{"x", "1"}, {"y", "2"}});
  Counter* b = r.GetCounter("c_total", "other help", {{"y", "2"}, {"x", "1"}});
  Counter* c = r.GetCounter("c_total", "h", {{"x", "1"}, {"y", "3"}});
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  Gauge* g1 = r.GetGauge("g", "h");
  EXPECT_EQ(g1, r.GetGauge("g", "h"));
  Histogram* h1 = r.GetHistogram("h_seconds", "h", {{"route", "get"}});
  EXPECT_EQ(h1, r.GetHistogram("h_seconds", "h", {{"route", "get"}}, {1, 2}));
  EXPECT_EQ(h1->bounds(), LatencyBuckets());  // first registration fixes the bounds
  a->Inc(3);
  EXPECT_EQ(b->Value(), 3);
  EXPECT_NE(r.RenderPrometheus().find("c_total{x=\"1\",y=\"2\"} 3\n"), std::string::npos);
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  MetricsRegistry r;
  r.GetCounter("e_total", "Line one\nback\\slash \"quoted\"", {{"k", "a\\b\"c\nd"}})->Inc(7);
  EXPECT_EQ(r.RenderPrometheus(),
            "# HELP e_total Line one\\nback\\\\slash \"quoted\"\n"
            "# TYPE e_total counter\n"
            "e_total{k=\"a\\\\b\\\"c\\nd\"} 7\n");
}

TEST(MetricsTest, HistogramBucketsSumCount) {
  MetricsRegistry r;
  Histogram* h = r.GetHistogram("lat_seconds", "Latency.", {{"route", "get"}}, {0.5, 0.1, 1, 0.1});
  EXPECT_EQ(h->bounds(), (std::vector<double>{0.1, 0.5, 1}));
  h->Observe(0.05);
  h->Observe(0.1);  // le is inclusive
  h->Observe(0.3);
  h->Observe(2);
  h->Observe(7);
  EXPECT_EQ(h->CumulativeCounts(), (std::vector<uint64_t>{2, 3, 3, 5}));
  EXPECT_EQ(h->Count(), 5u);
  EXPECT_DOUBLE_EQ(h->Sum(), 9.45);
  EXPECT_EQ(r.RenderPrometheus(),
            "# HELP lat_seconds Latency.\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{route=\"get\",le=\"0.1\"} 2\n"
            "lat_seconds_bucket{route=\"get\",le=\"0.5\"} 3\n"
            "lat_seconds_bucket{route=\"get\",le=\"1\"} 3\n"
            "lat_seconds_bucket{route=\"get\",le=\"+Inf\"} 5\n"
            "lat_seconds_sum{route=\"get\"} 9.45\n"
            "lat_seconds_count{route=\"get\"} 5\n");
}

TEST(MetricsTest, HistogramWithoutLabelsAndDefaultBuckets) {
  MetricsRegistry r;
  Histogram* h = r.GetHistogram("d_seconds", "D.");
  h->Observe(0.00004);
  h->Observe(100);
  h->Observe(std::numeric_limits<double>::quiet_NaN());
  std::string text = r.RenderPrometheus();
  EXPECT_NE(text.find("d_seconds_bucket{le=\"5e-05\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("d_seconds_bucket{le=\"10\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("d_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("d_seconds_sum NaN\n"), std::string::npos) << text;
  EXPECT_NE(text.find("d_seconds_count 3\n"), std::string::npos) << text;
  EXPECT_EQ(LatencyBuckets().front(), 0.00005);
  EXPECT_EQ(LatencyBuckets().back(), 10);
}

TEST(MetricsTest, GaugeSpecialValues) {
  MetricsRegistry r;
  r.GetGauge("g", "h", {{"v", "inf"}})->Set(std::numeric_limits<double>::infinity());
  r.GetGauge("g", "h", {{"v", "ninf"}})->Set(-std::numeric_limits<double>::infinity());
  r.GetGauge("g", "h", {{"v", "big"}})->Set(1e20);
  Gauge* add = r.GetGauge("g", "h", {{"v", "add"}});
  add->Add(1.5);
  add->Add(-4);
  EXPECT_EQ(r.RenderPrometheus(),
            "# HELP g h\n"
            "# TYPE g gauge\n"
            "g{v=\"add\"} -2.5\n"
            "g{v=\"big\"} 1e+20\n"
            "g{v=\"inf\"} +Inf\n"
            "g{v=\"ninf\"} -Inf\n");
}

TEST(MetricsTest, CallbackGauges) {
  MetricsRegistry r;
  double freshness = 1.25;
  r.AddCallbackGauge("fresh_seconds", "Freshness.", {{"view", "v"}}, [&] { return freshness; });
  r.GetGauge("fresh_seconds", "Freshness.", {{"view", "w"}})->Set(3);
  EXPECT_EQ(r.RenderPrometheus(),
            "# HELP fresh_seconds Freshness.\n"
            "# TYPE fresh_seconds gauge\n"
            "fresh_seconds{view=\"v\"} 1.25\n"
            "fresh_seconds{view=\"w\"} 3\n");
  freshness = 4;
  EXPECT_NE(r.RenderPrometheus().find("fresh_seconds{view=\"v\"} 4\n"), std::string::npos);
  // Re-registering replaces the function.
  r.AddCallbackGauge("fresh_seconds", "Freshness.", {{"view", "v"}}, [] { return 9.0; });
  EXPECT_NE(r.RenderPrometheus().find("fresh_seconds{view=\"v\"} 9\n"), std::string::npos);
  // A callback may use the registry (no lock is held while it runs).
  r.AddCallbackGauge("reentrant", "R.", {}, [&] {
    return static_cast<double>(r.GetCounter("inner_total", "I.")->Value());
  });
  EXPECT_NE(r.RenderPrometheus().find("reentrant 0\n"), std::string::npos);
  // A throwing callback renders NaN instead of escaping.
  r.AddCallbackGauge("throws", "T.", {}, []() -> double { throw std::runtime_error("x"); });
  EXPECT_NE(r.RenderPrometheus().find("throws NaN\n"), std::string::npos);
}

TEST(MetricsTest, TypeMismatchReturnsDummyAndNeverCrashes) {
  MetricsRegistry r;
  Counter* c = r.GetCounter("x_total", "X.");
  c->Inc(2);
  Gauge* g = r.GetGauge("x_total", "X.");  // wrong type
  ASSERT_NE(g, nullptr);
  g->Set(100);
  Histogram* h = r.GetHistogram("x_total", "X.");
  ASSERT_NE(h, nullptr);
  h->Observe(1);
  r.AddCallbackGauge("x_total", "X.", {}, [] { return 5.0; });
  Counter* bad_name = r.GetCounter("bad name", "B.");
  bad_name->Inc();
  Counter* bad_label = r.GetCounter("ok_total", "B.", {{"1x", "v"}});
  bad_label->Inc();
  Counter* dup_label = r.GetCounter("ok_total", "B.", {{"a", "1"}, {"a", "2"}});
  dup_label->Inc();
  Histogram* le_label = r.GetHistogram("hist", "H.", {{"le", "1"}});
  le_label->Observe(1);
  // A plain gauge series cannot become a callback gauge and vice versa.
  r.GetGauge("gg", "G.")->Set(1);
  r.AddCallbackGauge("gg", "G.", {}, [] { return 2.0; });
  r.AddCallbackGauge("cb", "C.", {}, [] { return 3.0; });
  r.GetGauge("cb", "C.")->Set(4);
  EXPECT_EQ(r.RenderPrometheus(),
            "# HELP cb C.\n"
            "# TYPE cb gauge\n"
            "cb 3\n"
            "# HELP gg G.\n"
            "# TYPE gg gauge\n"
            "gg 1\n"
            "# HELP tessera_metrics_registration_errors_total Metric registrations rejected as "
            "programming errors.\n"
            "# TYPE tessera_metrics_registration_errors_total counter\n"
            "tessera_metrics_registration_errors_total 9\n"
            "# HELP x_total X.\n"
            "# TYPE x_total counter\n"
            "x_total 2\n");
}

// A label fed by unbounded input cannot grow a family past kMaxSeriesPerFamily series; the
// series that exist keep working and the overflow is counted as a registration error.
TEST(MetricsTest, FamilySeriesAreCapped) {
  MetricsRegistry r;
  const size_t cap = MetricsRegistry::kMaxSeriesPerFamily;
  for (size_t i = 0; i < cap + 500; ++i) {
    r.GetCounter("junk_total", "J.", {{"v", std::to_string(i)}})->Inc();
  }
  r.GetCounter("junk_total", "J.", {{"v", "0"}})->Inc();  // existing series still found
  const std::string text = r.RenderPrometheus();
  size_t series = 0;
  for (size_t pos = 0; (pos = text.find("\njunk_total{", pos)) != std::string::npos; ++pos) {
    ++series;
  }
  EXPECT_EQ(series, cap);
  EXPECT_NE(text.find("junk_total{v=\"0\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("tessera_metrics_registration_errors_total 500\n"), std::string::npos);
}

TEST(MetricsTest, ConcurrentUpdatesAreExact) {
  MetricsRegistry r;
  constexpr int kThreads = 8;
  constexpr int kIters = 20000;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&r, t] {
      // Registration races too: every thread looks the series up itself.
      Counter* c = r.GetCounter("conc_total", "C.", {{"k", "shared"}});
      Gauge* g = r.GetGauge("conc_gauge", "G.");
      Histogram* h = r.GetHistogram("conc_seconds", "H.", {}, {1, 2});
      Counter* own = r.GetCounter("conc_total", "C.", {{"k", std::to_string(t)}});
      for (int i = 0; i < kIters; ++i) {
        c->Inc();
        own->Inc(2);
        g->Add(0.5);
        h->Observe(i % 3);  // 0, 1, 2
      }
    });
  }
  // Render concurrently with the writers: must not crash or deadlock.
  for (int i = 0; i < 20; ++i) (void)r.RenderPrometheus();
  for (auto& t : threads) t.join();
  EXPECT_EQ(r.GetCounter("conc_total", "C.", {{"k", "shared"}})->Value(), kThreads * kIters);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(r.GetCounter("conc_total", "C.", {{"k", std::to_string(t)}})->Value(), 2 * kIters);
  }
  EXPECT_DOUBLE_EQ(r.GetGauge("conc_gauge", "G.")->Value(), 0.5 * kThreads * kIters);
  Histogram* h = r.GetHistogram("conc_seconds", "H.");
  uint64_t total = uint64_t{kThreads} * kIters;
  EXPECT_EQ(h->Count(), total);
  std::vector<uint64_t> cum = h->CumulativeCounts();
  ASSERT_EQ(cum.size(), 3u);
  EXPECT_EQ(cum[2], total);
  // i % 3 over 0..kIters-1: zeros and ones are <= 1, twos fall in le=2.
  uint64_t per_thread_le1 = 0;
  double per_thread_sum = 0;
  for (int i = 0; i < kIters; ++i) {
    per_thread_le1 += (i % 3) <= 1;
    per_thread_sum += i % 3;
  }
  EXPECT_EQ(cum[0], per_thread_le1 * kThreads);
  EXPECT_EQ(cum[1], total);
  EXPECT_DOUBLE_EQ(h->Sum(), per_thread_sum * kThreads);
}

TEST(MetricsTest, SnapshotHoldsEveryFamilyAndSeriesWithItsValue) {
  MetricsRegistry r;
  r.GetCounter("c_total", "a counter", {{"z", "1"}, {"a", "2"}})->Inc(3);
  r.GetGauge("g", "a gauge")->Set(1.5);
  r.AddCallbackGauge("cb", "a callback", {}, [] { return 7.0; });
  r.GetHistogram("h_seconds", "a histogram", {}, {1, 2})->Observe(1.5);
  const std::vector<MetricFamilySnapshot> snap = r.Snapshot();
  ASSERT_EQ(snap.size(), 4u);
  EXPECT_EQ(snap[0].name, "c_total");  // families by name
  EXPECT_EQ(snap[0].type, MetricType::kCounter);
  ASSERT_EQ(snap[0].series.size(), 1u);
  EXPECT_EQ(snap[0].series[0].count, 3);
  EXPECT_EQ(snap[0].series[0].labels, (Labels{{"a", "2"}, {"z", "1"}}));
  EXPECT_EQ(snap[0].series[0].label_text, "a=\"2\",z=\"1\"");
  EXPECT_EQ(snap[1].name, "cb");
  EXPECT_EQ(snap[1].series[0].value, 7.0);
  EXPECT_EQ(snap[2].name, "g");
  EXPECT_EQ(snap[2].series[0].value, 1.5);
  EXPECT_EQ(snap[3].type, MetricType::kHistogram);
  EXPECT_EQ(snap[3].series[0].bounds, (std::vector<double>{1, 2}));
  EXPECT_EQ(snap[3].series[0].cumulative, (std::vector<uint64_t>{0, 1, 1}));
  EXPECT_EQ(snap[3].series[0].sum, 1.5);
}

}  // namespace
}  // namespace tessera
