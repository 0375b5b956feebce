#include "engine/pipeline_metrics.h"

#include <gtest/gtest.h>

namespace tessera::engine {
namespace {

TEST(PipelineMetrics, PublishesCounterGrowthAsDeltas) {
  MetricsRegistry registry;
  FakeClock clock(1'000'000);
  PipelineMetrics m(&registry, "plays", 5'000, {"a", "b"}, 2, &clock);
  ASSERT_TRUE(m.enabled());
  SourceCounters source{.lines = 10, .rows = 9, .rejected = 1, .late = 2};
  std::vector<ViewCounters> views(2);
  views[1].aggregated = 7;
  const std::vector<size_t> view_tiles = {1, 2}, view_bytes = {234, 1000};
  PipelineState state{.source = &source,
                      .views = &views,
                      .tiles_written = 4,
                      .open_tiles = 3,
                      .open_tile_bytes = 1234,
                      .view_open_tiles = &view_tiles,
                      .view_open_tile_bytes = &view_bytes,
                      .max_event_time_ms = 995'000};
  m.Publish(state);
  m.Publish(state);  // nothing new: no double counting
  source.lines = 15;
  views[1].aggregated = 10;
  state.tiles_written = 6;
  m.Publish(state);
  const Labels src = {{"source", "plays"}};
  EXPECT_EQ(registry.GetCounter("tessera_source_lines_total", "", src)->Value(), 15);
  EXPECT_EQ(registry.GetCounter("tessera_source_late_total", "", src)->Value(), 2);
  EXPECT_EQ(registry
                .GetCounter("tessera_view_rows_aggregated_total", "",
                            {{"source", "plays"}, {"view", "b"}})
                ->Value(),
            10);
  EXPECT_EQ(registry.GetCounter("tessera_flush_tiles_written_total", "", src)->Value(), 6);
  EXPECT_EQ(registry.GetGauge("tessera_open_tile_bytes", "", src)->Value(), 1234);
  const Labels b = {{"source", "plays"}, {"view", "b"}};
  EXPECT_EQ(registry.GetGauge("tessera_view_open_tiles", "", b)->Value(), 2);
  EXPECT_EQ(registry.GetGauge("tessera_view_open_tile_bytes", "", b)->Value(), 1000);
  m.AddBusy(1, 500'000'000);
  EXPECT_DOUBLE_EQ(
      registry
          .GetGauge("tessera_pipeline_busy_seconds", "", {{"source", "plays"}, {"thread", "1"}})
          ->Value(),
      0.5);
  const std::string text = registry.RenderPrometheus();
  // now - max = 5 s; the watermark is 5 s (the lateness) further behind.
  EXPECT_NE(text.find("tessera_freshness_seconds{source=\"plays\"} 5"), std::string::npos) << text;
  EXPECT_NE(text.find("tessera_watermark_lag_seconds{source=\"plays\"} 10"), std::string::npos);
}

TEST(PipelineMetrics, WithoutARegistryEverythingIsANoOp) {
  FakeClock clock;
  PipelineMetrics m(nullptr, "plays", 0, {"a"}, 1, &clock);
  EXPECT_FALSE(m.enabled());
  SourceCounters source;
  std::vector<ViewCounters> views(1);
  m.Publish(PipelineState{.source = &source, .views = &views});
  m.AddBusy(0, 1);
  m.ObserveFlush(1);
  m.ObserveStoreWrite(1);
}

}  // namespace
}  // namespace tessera::engine
