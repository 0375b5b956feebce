#include "engine/watermark.h"

#include <gtest/gtest.h>

#include <vector>

#include "store/memory/memory_tile_store.h"

namespace tessera::engine {
namespace {

constexpr int64_t kLateness = 10'000;

TEST(Watermark, MarksLateRowsInStreamOrder) {
  Watermark wm("Plays", kLateness);
  EXPECT_EQ(wm.max_event_time_ms(), Watermark::kNone);
  EXPECT_EQ(wm.closed_by(), Watermark::kNone);
  std::vector<uint8_t> late;
  // The first row sets the max; 95'000 is within the lateness of 100'000; 89'999 is not, but
  // only once 100'000 has been seen: the same row earlier in the batch is on time.
  const std::vector<int64_t> ts = {89'999, 100'000, 95'000, 89'999, 90'000, 120'000, 105'000};
  EXPECT_EQ(wm.MarkLate(ts, &late), 2);
  EXPECT_EQ(late, (std::vector<uint8_t>{0, 0, 0, 1, 0, 0, 1}));
  EXPECT_EQ(wm.max_event_time_ms(), 120'000);
  EXPECT_EQ(wm.closed_by(), 110'000);
  // The next batch continues from the max of the previous one.
  const std::vector<int64_t> next = {109'999, 110'000};
  EXPECT_EQ(wm.MarkLate(next, &late), 1);
  EXPECT_EQ(late, (std::vector<uint8_t>{1, 0}));
  EXPECT_EQ(wm.MarkLate({}, &late), 0);
  EXPECT_TRUE(late.empty());
}

// A lane that moves here from another process sharing the store is judged from the newest
// time that process committed, not from "no time yet" (which would accept any row).
TEST(Watermark, ReloadLaneAdoptsWhatAnotherProcessCommitted) {
  store::MemoryTileStore store;
  Watermark wm("s", kLateness);
  ASSERT_TRUE(wm.Load(&store).ok());
  wm.SetActiveLanes({"t/0", "t/1"});
  std::vector<uint8_t> late;
  EXPECT_EQ(wm.MarkLate("t/0", std::vector<int64_t>{500'000}, &late), 0);
  EXPECT_EQ(wm.closed_by(), Watermark::kNone);  // t/1 has no time yet

  // Another process owned t/1 and committed its lane at 400'000.
  Watermark other("s", kLateness);
  other.MarkLate("t/1", std::vector<int64_t>{400'000}, &late);
  store::WriteBatch batch;
  other.AddToBatch(&batch);
  ASSERT_TRUE(store.Write(batch).ok());

  ASSERT_TRUE(wm.ReloadLane(&store, "t/1").ok());
  wm.SetActiveLanes({"t/0", "t/1"});
  EXPECT_EQ(wm.closed_by(), 400'000 - kLateness);
  EXPECT_EQ(wm.MarkLate("t/1", std::vector<int64_t>{100'000, 395'000}, &late), 1);
  EXPECT_EQ(late, (std::vector<uint8_t>{1, 0}));
  // Reloading never moves a lane back.
  ASSERT_TRUE(wm.ReloadLane(&store, "t/0").ok());
  EXPECT_EQ(wm.lanes().at("t/0"), 500'000);
}

TEST(Watermark, TheFirstRowIsNeverLate) {
  Watermark wm("s", kLateness);
  std::vector<uint8_t> late;
  const std::vector<int64_t> ts = {-5'000'000};
  EXPECT_EQ(wm.MarkLate(ts, &late), 0);
  EXPECT_EQ(wm.max_event_time_ms(), -5'000'000);
  EXPECT_EQ(wm.closed_by(), -5'000'000 - kLateness);
}

TEST(Watermark, IsTheMinimumOverActiveLanes) {
  Watermark wm("s", kLateness);
  wm.SetActiveLanes({"t/0", "t/1"});
  std::vector<uint8_t> late;
  const std::vector<int64_t> ahead = {10 * kLateness};
  EXPECT_EQ(wm.MarkLate("t/0", ahead, &late), 0);
  // Lane 1 has no event time yet: it holds the watermark back, so nothing is late on it.
  EXPECT_EQ(wm.closed_by(), Watermark::kNone);
  const std::vector<int64_t> behind = {kLateness, 2 * kLateness};
  EXPECT_EQ(wm.MarkLate("t/1", behind, &late), 0);
  EXPECT_EQ(wm.closed_by(), 2 * kLateness - kLateness);
  // A row more than the lateness behind the slowest active lane is late, whichever lane it is on.
  const std::vector<int64_t> old = {kLateness - 1, 5 * kLateness};
  EXPECT_EQ(wm.MarkLate("t/0", old, &late), 1);
  EXPECT_EQ(late, (std::vector<uint8_t>{1, 0}));
  // Lane 1 idle: only lane 0 counts.
  wm.SetActiveLanes({"t/0"});
  EXPECT_EQ(wm.closed_by(), 10 * kLateness - kLateness);
  // No active lane: the newest over all lanes.
  wm.SetActiveLanes({});
  EXPECT_EQ(wm.closed_by(), 10 * kLateness - kLateness);
}

TEST(Watermark, LanesPersistWithTheFlushAndReload) {
  store::MemoryTileStore store;
  Watermark wm("Plays", kLateness);
  wm.SetActiveLanes({"t/0", "t/1"});
  std::vector<uint8_t> late;
  const std::vector<int64_t> a = {5 * kLateness}, b = {3 * kLateness};
  wm.MarkLate("t/0", a, &late);
  wm.MarkLate("t/1", b, &late);
  store::WriteBatch batch;
  wm.AddToBatch(&batch);
  ASSERT_TRUE(store.Write(batch).ok());
  Watermark again("plays", kLateness);
  ASSERT_TRUE(again.Load(&store).ok());
  EXPECT_EQ(again.lanes().at("t/0"), 5 * kLateness);
  EXPECT_EQ(again.lanes().at("t/1"), 3 * kLateness);
  EXPECT_EQ(again.max_event_time_ms(), 5 * kLateness);
  again.SetActiveLanes({"t/0", "t/1"});
  EXPECT_EQ(again.closed_by(), 3 * kLateness - kLateness);
}

TEST(Watermark, PersistsWithTheFlushAndReloads) {
  store::MemoryTileStore store;
  Watermark wm("Plays", kLateness);
  ASSERT_TRUE(wm.Load(&store).ok());
  store::WriteBatch empty;
  wm.AddToBatch(&empty);
  EXPECT_TRUE(empty.meta.empty());  // nothing seen: nothing persisted

  std::vector<uint8_t> late;
  const std::vector<int64_t> ts = {50'000};
  wm.MarkLate(ts, &late);
  EXPECT_EQ(wm.committed_closed_by(), Watermark::kNone);  // not committed yet
  store::WriteBatch batch;
  wm.AddToBatch(&batch);
  ASSERT_EQ(batch.meta.size(), 1u);
  EXPECT_EQ(batch.meta[0].first, "source/plays/max_event_time");  // case-insensitive name
  EXPECT_EQ(batch.meta[0].first, Watermark::Key("PLAYS"));
  ASSERT_TRUE(store.Write(batch).ok());
  wm.Committed();
  EXPECT_EQ(wm.committed_closed_by(), 40'000);

  Watermark reloaded("plays", kLateness);
  ASSERT_TRUE(reloaded.Load(&store).ok());
  EXPECT_EQ(reloaded.max_event_time_ms(), 50'000);
  EXPECT_EQ(reloaded.committed_closed_by(), 40'000);
  const std::vector<int64_t> old = {39'999};
  EXPECT_EQ(reloaded.MarkLate(old, &late), 1);  // the reloaded stream goes on
}

// What a reader of the DB reports (serve, get): the committed newest times minus the lateness,
// the minimum over every persisted lane (which were idle is not stored).
TEST(Watermark, LoadCommittedIsWhatTheWriterCommitted) {
  store::MemoryTileStore store;
  EXPECT_EQ(*Watermark::LoadCommitted(&store, "Plays", kLateness), Watermark::kNone);

  Watermark single("Plays", kLateness);
  std::vector<uint8_t> late;
  const std::vector<int64_t> ts = {50'000, 70'000, 65'000};
  single.MarkLate(ts, &late);
  store::WriteBatch batch;
  single.AddToBatch(&batch);
  ASSERT_TRUE(store.Write(batch).ok());
  EXPECT_EQ(*Watermark::LoadCommitted(&store, "plays", kLateness), 60'000);

  store::MemoryTileStore laned_store;
  Watermark laned("Plays", kLateness);
  laned.SetActiveLanes({"t/0", "t/1"});
  const std::vector<int64_t> a = {90'000}, b = {40'000};
  laned.MarkLate("t/0", a, &late);
  laned.MarkLate("t/1", b, &late);
  laned.SetActiveLanes({"t/0"});  // t/1 idle: the writer's watermark follows t/0 alone
  EXPECT_EQ(laned.closed_by(), 80'000);
  store::WriteBatch laned_batch;
  laned.AddToBatch(&laned_batch);
  ASSERT_TRUE(laned_store.Write(laned_batch).ok());
  EXPECT_EQ(*Watermark::LoadCommitted(&laned_store, "plays", kLateness), 30'000);

  store::WriteBatch corrupt;
  corrupt.meta.emplace_back(Watermark::Key("plays"), "x");
  ASSERT_TRUE(store.Write(corrupt).ok());
  EXPECT_EQ(Watermark::LoadCommitted(&store, "plays", kLateness).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(Watermark, CorruptStoredValueIsDataLoss) {
  store::MemoryTileStore store;
  store::WriteBatch batch;
  batch.meta.emplace_back(Watermark::Key("plays"), "12x");
  ASSERT_TRUE(store.Write(batch).ok());
  Watermark wm("Plays", kLateness);
  absl::Status s = wm.Load(&store);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("'Plays'"), std::string::npos) << s;
}

}  // namespace
}  // namespace tessera::engine
