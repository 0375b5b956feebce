#include "source/pubsub/dedup_window.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "store/memory/memory_tile_store.h"
#include "store/meta_keys.h"

namespace tessera::source {
namespace {

constexpr std::string_view kSub = "projects/proj1/subscriptions/plays-sub";
constexpr int64_t kMinute = 60'000;

DedupOptions Options(int64_t window_ms = 10 * kMinute, size_t max_ids = 1000) {
  DedupOptions o;
  o.window_ms = window_ms;
  o.max_ids = max_ids;
  return o;
}

// Writes what AddCheckpoint put into a batch, as the pipeline would with the tiles.
void Checkpoint(DedupWindow* w, int64_t now_ms, store::TileStore* store) {
  store::WriteBatch batch;
  w->AddCheckpoint(now_ms, &batch);
  ASSERT_TRUE(store->Write(batch).ok());
}

size_t CountKeys(store::TileStore* store,
                 std::string_view prefix = store::meta::kPubSubDedupPrefix) {
  size_t n = 0;
  EXPECT_TRUE(store->ScanMeta(prefix, [&](std::string_view, std::string_view) { ++n; }).ok());
  return n;
}

DedupWindow MustLoad(store::TileStore* store, int64_t now_ms, DedupOptions o = Options(),
                     std::string_view sub = kSub, std::string source = "plays") {
  absl::StatusOr<DedupWindow> w =
      DedupWindow::Load(store, std::move(source), std::string(sub), o, now_ms);
  EXPECT_TRUE(w.ok()) << w.status();
  return *std::move(w);
}

TEST(DedupWindow, NumericIdsAreCanonicalDecimalsThatFit64Bits) {
  EXPECT_EQ(DedupWindow::NumericId("0"), 0u);
  EXPECT_EQ(DedupWindow::NumericId("1234567890123456"), 1234567890123456u);
  EXPECT_EQ(DedupWindow::NumericId("18446744073709551615"), UINT64_MAX);
  for (std::string_view id : {"", "01", "00", "-1", "+1", "1a", "18446744073709551616",
                              "99999999999999999999", "123456789012345678901", " 1"}) {
    EXPECT_EQ(DedupWindow::NumericId(id), std::nullopt) << id;
  }
}

TEST(DedupWindow, SegmentsRoundTripCompactly) {
  DedupWindow::Segment s;
  s.committed_ms = 1'767'225'600'000;
  for (uint64_t v = 1'000'000'000'000'000; v < 1'000'000'000'001'000; ++v) s.numeric.push_back(v);
  std::shuffle(s.numeric.begin(), s.numeric.end(), std::mt19937(7));
  s.other = {"abc", "", std::string("\0x", 2)};
  const std::string bytes = DedupWindow::EncodeSegment(kSub, &s);
  // Consecutive ids (the emulator's) cost one byte each after the first.
  EXPECT_LT(bytes.size(), 1000 + 64 + kSub.size());
  DedupWindow::Segment back;
  std::string sub;
  ASSERT_TRUE(DedupWindow::DecodeSegment(bytes, "seg", &sub, &back).ok());
  EXPECT_EQ(sub, kSub);
  EXPECT_EQ(back.committed_ms, s.committed_ms);
  EXPECT_EQ(back.numeric, s.numeric);  // sorted by EncodeSegment
  EXPECT_TRUE(std::is_sorted(back.numeric.begin(), back.numeric.end()));
  EXPECT_EQ(back.other, s.other);

  // Every truncation, a trailing byte and a bad version are DataLoss, never a crash.
  for (size_t n = 0; n < bytes.size(); ++n) {
    absl::Status st = DedupWindow::DecodeSegment(bytes.substr(0, n), "seg", &sub, &back);
    EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << n;
  }
  EXPECT_EQ(DedupWindow::DecodeSegment(bytes + "x", "seg", &sub, &back).code(),
            absl::StatusCode::kDataLoss);
  std::string v2 = bytes;
  v2[0] = 2;
  absl::Status st = DedupWindow::DecodeSegment(v2, "segment 'k'", &sub, &back);
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(std::string(st.message()).find("segment 'k'"), std::string::npos) << st;
  // A zero delta (a repeated id) is corrupt.
  DedupWindow::Segment rep;
  rep.numeric = {5, 5};
  EXPECT_EQ(
      DedupWindow::DecodeSegment(DedupWindow::EncodeSegment(kSub, &rep), "seg", &sub, &back).code(),
      absl::StatusCode::kDataLoss);
  // A huge count does not allocate.
  std::string huge = bytes.substr(0, 1 + 6 + 1 + kSub.size());
  huge += "\xff\xff\xff\xff\xff\xff\xff\xff\x7f";
  EXPECT_EQ(DedupWindow::DecodeSegment(huge, "seg", &sub, &back).code(),
            absl::StatusCode::kDataLoss);
}

TEST(DedupWindow, RemembersHandedOutIdsAndCommittedOnesAcrossARestart) {
  store::MemoryTileStore store;
  int64_t now = 1'000'000;
  DedupWindow w = MustLoad(&store, now);
  EXPECT_TRUE(w.Insert("1"));
  EXPECT_TRUE(w.Insert("2"));
  EXPECT_TRUE(w.Insert("not-numeric"));
  EXPECT_FALSE(w.Insert("2"));            // in flight: a redelivery before the flush
  EXPECT_FALSE(w.Insert("not-numeric"));  // likewise
  EXPECT_TRUE(w.Contains("1"));
  EXPECT_FALSE(w.Contains("3"));
  EXPECT_FALSE(w.Contains("01"));  // another id than "1"
  EXPECT_EQ(w.pending(), 3u);
  Checkpoint(&w, now, &store);
  EXPECT_EQ(w.pending(), 0u);
  EXPECT_EQ(CountKeys(&store), 1u);
  Checkpoint(&w, now + 1000, &store);  // nothing handed out: no segment
  EXPECT_EQ(CountKeys(&store), 1u);
  EXPECT_TRUE(w.Insert("3"));  // handed out, never committed (the crash comes first)

  DedupWindow again = MustLoad(&store, now + 5000);
  EXPECT_TRUE(again.Contains("1"));
  EXPECT_TRUE(again.Contains("2"));
  EXPECT_TRUE(again.Contains("not-numeric"));
  EXPECT_FALSE(again.Contains("3"));  // its rows are not in the tiles: it must count again
  EXPECT_EQ(again.size(), 3u);
}

TEST(DedupWindow, IdsLeaveAfterTheWindowOfRunningTime) {
  store::MemoryTileStore store;
  int64_t now = 10 * kMinute;
  DedupWindow w = MustLoad(&store, now, Options(5 * kMinute));
  w.Insert("1");
  Checkpoint(&w, now, &store);
  now += 3 * kMinute;
  w.Insert("2");
  Checkpoint(&w, now, &store);
  now += 2 * kMinute;  // "1" is exactly 5 minutes old: still in
  Checkpoint(&w, now, &store);
  EXPECT_TRUE(w.Contains("1"));
  EXPECT_EQ(w.OldestAgeMs(now), 5 * kMinute);
  now += 1;
  Checkpoint(&w, now, &store);
  EXPECT_FALSE(w.Contains("1"));
  EXPECT_TRUE(w.Contains("2"));
  EXPECT_EQ(CountKeys(&store), 1u);  // its segment was deleted in the same checkpoint
  EXPECT_TRUE(w.Insert("1"));        // a redelivery this late counts again

  // Downtime does not age the window: "2" was committed 2 minutes + 1 ms (of running time)
  // before the last checkpoint; an hour later it still has the rest of its 5 minutes to go.
  const int64_t restart = now + 60 * kMinute;
  DedupWindow after = MustLoad(&store, restart, Options(5 * kMinute));
  EXPECT_TRUE(after.Contains("2"));
  EXPECT_EQ(after.OldestAgeMs(restart), 2 * kMinute + 1);
  store::WriteBatch batch;
  after.AddCheckpoint(restart + 3 * kMinute - 1, &batch);
  EXPECT_TRUE(after.Contains("2"));
  after.AddCheckpoint(restart + 3 * kMinute, &batch);
  EXPECT_FALSE(after.Contains("2"));
  EXPECT_EQ(batch.meta_deletes.size(), 1u);
}

TEST(DedupWindow, RunningTimeContinuesAcrossSeveralRestarts) {
  store::MemoryTileStore store;
  const DedupOptions o = Options(5 * kMinute);
  DedupWindow a = MustLoad(&store, 0, o);
  a.Insert("1");
  Checkpoint(&a, 0, &store);  // running time 0
  // Down for 100 minutes; then 2 minutes of running, a commit, another crash.
  DedupWindow b = MustLoad(&store, 100 * kMinute, o);
  b.Insert("2");
  Checkpoint(&b, 102 * kMinute, &store);  // running time 2 minutes
  // Back 1 minute later: "1" is 2 minutes of running time old, not 103.
  DedupWindow c = MustLoad(&store, 103 * kMinute, o);
  EXPECT_TRUE(c.Contains("1"));
  EXPECT_TRUE(c.Contains("2"));
  store::WriteBatch batch;
  c.AddCheckpoint(106 * kMinute + 1, &batch);  // running 5 min + 1 ms: "1" leaves
  EXPECT_FALSE(c.Contains("1"));
  EXPECT_TRUE(c.Contains("2"));
}

TEST(DedupWindow, MaxIdsKeepsWholeNewestSegments) {
  store::MemoryTileStore store;
  DedupWindow w = MustLoad(&store, 0, Options(10 * kMinute, /*max_ids=*/5));
  for (int seg = 0; seg < 4; ++seg) {
    for (int i = 0; i < 3; ++i) w.Insert(std::to_string(seg * 10 + i));
    Checkpoint(&w, seg, &store);
  }
  // 4 segments of 3: the newest two hold 6 >= 5, so the two oldest were dropped.
  EXPECT_EQ(w.size(), 6u);
  EXPECT_FALSE(w.Contains("12"));
  EXPECT_TRUE(w.Contains("20"));
  EXPECT_TRUE(w.Contains("32"));
  EXPECT_EQ(CountKeys(&store), 2u);
  // A single flush larger than max_ids is kept whole.
  for (int i = 100; i < 120; ++i) w.Insert(std::to_string(i));
  Checkpoint(&w, 10, &store);
  EXPECT_EQ(w.size(), 20u);
  EXPECT_EQ(CountKeys(&store), 1u);
}

TEST(DedupWindow, DeletesPerCheckpointAreBounded) {
  store::MemoryTileStore store;
  DedupOptions o = Options(kMinute, 1'000'000);
  o.max_deletes_per_checkpoint = 3;
  DedupWindow w = MustLoad(&store, 0, o);
  for (int seg = 0; seg < 10; ++seg) {
    w.Insert(std::to_string(seg));
    Checkpoint(&w, seg, &store);
  }
  EXPECT_EQ(CountKeys(&store), 10u);
  store::WriteBatch batch;
  w.AddCheckpoint(10 * kMinute, &batch);  // all ten expire at once
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(batch.meta_deletes.size(), 3u);
  EXPECT_EQ(w.deletes_owed(), 7u);
  ASSERT_TRUE(store.Write(batch).ok());
  // A restart before the rest are deleted loads them, finds them expired and owes them again.
  DedupWindow again = MustLoad(&store, 11 * kMinute, o);
  EXPECT_EQ(again.size(), 0u);
  EXPECT_EQ(again.deletes_owed(), 7u);
  for (int i = 0; i < 3; ++i) Checkpoint(&again, 11 * kMinute + i, &store);
  EXPECT_EQ(CountKeys(&store), 0u);
  EXPECT_EQ(again.deletes_owed(), 0u);
}

TEST(DedupWindow, AnotherSubscriptionOrSourceIsNotLoaded) {
  store::MemoryTileStore store;
  DedupWindow w = MustLoad(&store, 0);
  w.Insert("1");
  Checkpoint(&w, 0, &store);
  DedupWindow nested = MustLoad(&store, 0, Options(), kSub, "plays/b");  // prefix "plays/"...
  nested.Insert("2");
  Checkpoint(&nested, 0, &store);

  DedupWindow same = MustLoad(&store, 0);
  EXPECT_TRUE(same.Contains("1"));
  EXPECT_FALSE(same.Contains("2"));  // source "plays/b"'s key starts with "plays/"'s prefix
  EXPECT_EQ(same.deletes_owed(), 0u);
  DedupWindow upper = MustLoad(&store, 0, Options(), kSub, "PLAYS");  // names are case-folded
  EXPECT_TRUE(upper.Contains("1"));

  DedupWindow other = MustLoad(&store, 0, Options(), "projects/proj1/subscriptions/other");
  EXPECT_FALSE(other.Contains("1"));
  EXPECT_EQ(other.deletes_owed(), 1u);
  Checkpoint(&other, 0, &store);
  EXPECT_EQ(CountKeys(&store, store::meta::PubSubDedupPrefix("plays")), 1u);  // plays/b's
}

TEST(DedupWindow, AnIdInTwoStoredSegmentsStaysWithTheNewer) {
  store::MemoryTileStore store;
  DedupOptions o = Options(5 * kMinute);
  o.max_deletes_per_checkpoint = 0;  // expired segments stay on disk
  DedupWindow w = MustLoad(&store, 0, o);
  w.Insert("7");
  Checkpoint(&w, 0, &store);
  w.Insert("8");
  Checkpoint(&w, 4 * kMinute, &store);
  Checkpoint(&w, 6 * kMinute, &store);  // "7" leaves memory; its key stays
  EXPECT_TRUE(w.Insert("7"));           // a late redelivery: counted again, remembered again
  Checkpoint(&w, 6 * kMinute, &store);
  EXPECT_EQ(CountKeys(&store), 3u);

  DedupWindow again = MustLoad(&store, 6 * kMinute, o);
  EXPECT_TRUE(again.Contains("7"));
  EXPECT_EQ(again.size(), 2u);
  // When "8"'s segment expires, "7" (held by the newest segment) stays.
  store::WriteBatch batch;
  again.AddCheckpoint(6 * kMinute + 4 * kMinute + 1, &batch);
  EXPECT_FALSE(again.Contains("8"));
  EXPECT_TRUE(again.Contains("7"));
}

TEST(DedupWindow, ZeroWindowDisablesDeduplication) {
  store::MemoryTileStore store;
  DedupWindow w = MustLoad(&store, 0);
  w.Insert("1");
  Checkpoint(&w, 0, &store);
  DedupWindow off = MustLoad(&store, 0, Options(0));
  EXPECT_FALSE(off.Contains("1"));
  EXPECT_TRUE(off.Insert("1"));
  EXPECT_TRUE(off.Insert("1"));
  Checkpoint(&off, 0, &store);
  EXPECT_EQ(CountKeys(&store), 0u);
}

TEST(DedupWindow, CorruptSegmentIsDataLossNamingTheKey) {
  store::MemoryTileStore store;
  store::WriteBatch batch;
  batch.meta.emplace_back(store::meta::PubSubDedupKey("plays", 3), "\x01\x02");
  ASSERT_TRUE(store.Write(batch).ok());
  absl::StatusOr<DedupWindow> w =
      DedupWindow::Load(&store, "plays", std::string(kSub), Options(), 0);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(std::string(w.status().message()).find("pubsub/dedup/plays/0000000000000003"),
            std::string::npos)
      << w.status();
}

}  // namespace
}  // namespace tessera::source
