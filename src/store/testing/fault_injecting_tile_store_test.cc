#include "store/testing/fault_injecting_tile_store.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "store/memory/memory_tile_store.h"
#include "store/tile_store_conformance.h"

namespace tessera::store {
namespace {

// Without faults the wrapper is a TileStore like any other.
INSTANTIATE_TEST_SUITE_P(FaultInjecting, TileStoreConformanceTest,
                         ::testing::Values(TileStoreFactory{
                             "NoFaults",
                             [](const std::string&) -> std::unique_ptr<TileStore> {
                               return std::make_unique<FaultInjectingTileStore>(
                                   std::make_unique<MemoryTileStore>());
                             }}),
                         TileStoreFactoryName);

WriteBatch OneTile(const std::string& key, const std::string& value) {
  WriteBatch b;
  b.tiles.emplace_back(TileKey{1, key, Resolution::kBase, 0}, value);
  b.meta.emplace_back("pos", key);
  return b;
}

TEST(FaultInjectingTileStore, FailsTheNthCallOfAnOpOnceAndAppliesNothing) {
  MemoryTileStore base;
  FaultInjectingTileStore store(&base);
  store.FailNth(StoreOp::kWrite, 2);
  EXPECT_TRUE(store.Write(OneTile("a", "1")).ok());
  absl::Status s = store.Write(OneTile("b", "2"));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(base.tile_count(), 1u);
  EXPECT_EQ(*base.GetMeta("pos").value(), "a");  // the failed batch left nothing
  EXPECT_TRUE(store.Write(OneTile("c", "3")).ok());
  EXPECT_EQ(store.calls(StoreOp::kWrite), 3);
  EXPECT_EQ(store.failures(), 1);
  EXPECT_EQ(base.tile_count(), 2u);
}

TEST(FaultInjectingTileStore, EveryOpCanFail) {
  MemoryTileStore base;
  FaultInjectingTileStore store(&base);
  const absl::Status boom = absl::InternalError("boom");
  for (StoreOp op : {StoreOp::kScan, StoreOp::kMultiGet, StoreOp::kGetMeta, StoreOp::kScanMeta,
                     StoreOp::kSync}) {
    store.FailNth(op, 1, boom);
  }
  EXPECT_EQ(store.Scan(1, "a", Resolution::kBase, 0, 10, [](int64_t, std::string_view) {}), boom);
  std::vector<std::optional<std::string>> values;
  EXPECT_EQ(store.MultiGet({TileKey{1, "a", Resolution::kBase, 0}}, &values), boom);
  EXPECT_EQ(store.GetMeta("x").status(), boom);
  EXPECT_EQ(store.ScanMeta("", [](std::string_view, std::string_view) {}), boom);
  EXPECT_EQ(store.Sync(), boom);
  // Each failed once.
  EXPECT_TRUE(store.GetMeta("x").ok());
  EXPECT_TRUE(store.Sync().ok());
  EXPECT_EQ(store.failures(), 5);
}

TEST(FaultInjectingTileStore, WriteCanFailAfterBeingApplied) {
  MemoryTileStore base;
  FaultInjectingTileStore store(&base);
  store.FailNthWriteAfterApplying(1);
  EXPECT_FALSE(store.Write(OneTile("a", "1")).ok());
  EXPECT_EQ(base.tile_count(), 1u);  // durable, though the caller was told otherwise
}

TEST(FaultInjectingTileStore, CrashRefusesEverythingUntilHealed) {
  MemoryTileStore base;
  FaultInjectingTileStore store(&base);
  store.CrashAfter(2);
  EXPECT_TRUE(store.Write(OneTile("a", "1")).ok());
  EXPECT_FALSE(store.crashed());
  EXPECT_TRUE(store.GetMeta("pos").ok());
  EXPECT_TRUE(store.crashed());
  EXPECT_FALSE(store.Write(OneTile("b", "2")).ok());
  EXPECT_FALSE(store.GetMeta("pos").ok());
  EXPECT_FALSE(store.Sync().ok());
  EXPECT_NE(store.GetSnapshot(), nullptr);  // snapshots cannot fail and change nothing
  EXPECT_EQ(base.tile_count(), 1u);
  store.Heal();
  EXPECT_TRUE(store.Write(OneTile("b", "2")).ok());
  EXPECT_EQ(base.tile_count(), 2u);
  EXPECT_EQ(store.total_calls(), 7);
}

}  // namespace
}  // namespace tessera::store
