#include "store/memory/memory_slot_store.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/slot_store_conformance.h"
#include "store/tile_store_conformance.h"

namespace tessera::store {
namespace {

MemorySlotTileStore& AsMemory(TileStore& store) {
  return dynamic_cast<MemorySlotTileStore&>(store);
}

SlotStoreFactory MemoryFactory() {
  SlotStoreFactory f;
  f.name = "Default";
  f.make = [](const std::string&) -> std::unique_ptr<TileStore> {
    return std::make_unique<MemorySlotTileStore>();
  };
  f.make_peer = [](TileStore& store) -> std::unique_ptr<TileStore> {
    return std::make_unique<MemorySlotTileStore>(AsMemory(store).state());
  };
  f.crash_before_next_commit_row = [](TileStore& store) {
    AsMemory(store).FailNextCommit(CommitFault::kBeforeCommitRow);
  };
  f.fail_next_commit_after_applying = [](TileStore& store) {
    AsMemory(store).FailNextCommit(CommitFault::kAfterCommitRow);
  };
  f.set_before_commit_hook = [](TileStore& store, std::function<void(std::string_view)> hook) {
    AsMemory(store).SetBeforeCommitHook(std::move(hook));
  };
  return f;
}

INSTANTIATE_TEST_SUITE_P(MemorySlot, SlotStoreConformanceTest, ::testing::Values(MemoryFactory()),
                         SlotStoreFactoryName);

// The default slot must behave like any TileStore.
INSTANTIATE_TEST_SUITE_P(MemorySlot, TileStoreConformanceTest,
                         ::testing::Values(TileStoreFactory{
                             "Default",
                             [](const std::string&) -> std::unique_ptr<TileStore> {
                               return std::make_unique<MemorySlotTileStore>();
                             }}),
                         TileStoreFactoryName);

TileKey Key(int64_t start) { return TileKey{1, "k", Resolution::kBase, start}; }

WriteBatch Tiles(std::vector<std::pair<TileKey, std::string>> tiles,
                 std::vector<std::pair<std::string, std::string>> meta = {}) {
  WriteBatch b;
  b.tiles = std::move(tiles);
  b.meta = std::move(meta);
  return b;
}

std::vector<std::optional<std::string>> GetSlot(MemorySlotTileStore& store, std::string_view slot,
                                                const std::vector<TileKey>& keys) {
  std::vector<std::optional<std::string>> values;
  EXPECT_TRUE(store.MultiGetSlot(slot, keys, &values).ok());
  return values;
}

TEST(MemorySlotTileStoreTest, SlotsIsTheStoreItself) {
  MemorySlotTileStore store;
  EXPECT_EQ(store.slots(), static_cast<SlotStore*>(&store));
}

TEST(MemorySlotTileStoreTest, ACrashDuringTheCellWritesLeavesNothingVisible) {
  MemorySlotTileStore store;
  ASSERT_TRUE(store.ClaimSlot("s").ok());
  ASSERT_TRUE(store.CommitSlot("s", Tiles({{Key(0), "c1"}}, {{"off", "1"}})).ok());
  store.FailNextCommit(CommitFault::kDuringCells, absl::UnavailableError("killed"));
  absl::Status s =
      store.CommitSlot("s", Tiles({{Key(0), "x"}, {Key(300000), "x"}, {Key(600000), "x"}}));
  EXPECT_EQ(s, absl::UnavailableError("killed"));
  EXPECT_EQ(store.cell_count(), 2u);  // c1 and the one cell written before the "crash"
  EXPECT_EQ(GetSlot(store, "s", {Key(0), Key(300000), Key(600000)}),
            (std::vector<std::optional<std::string>>{"c1", std::nullopt, std::nullopt}));
  EXPECT_EQ(*store.GetMeta("off"), "1");
}

TEST(MemorySlotTileStoreTest, AnyCommitErrorDropsTheClaim) {
  for (CommitFault where :
       {CommitFault::kDuringCells, CommitFault::kBeforeCommitRow, CommitFault::kAfterCommitRow}) {
    MemorySlotTileStore store;
    ASSERT_TRUE(store.ClaimSlot("s").ok());
    store.FailNextCommit(where);
    EXPECT_FALSE(store.CommitSlot("s", Tiles({{Key(0), "x"}})).ok());
    absl::Status again = store.CommitSlot("s", Tiles({{Key(0), "y"}}));
    EXPECT_TRUE(absl::IsFailedPrecondition(again)) << again;
    EXPECT_EQ(again.message().find("fenced"), std::string_view::npos) << again;
    ASSERT_TRUE(store.ClaimSlot("s").ok());
    EXPECT_TRUE(store.CommitSlot("s", Tiles({{Key(0), "z"}})).ok());
    EXPECT_EQ(GetSlot(store, "s", {Key(0)}), std::vector<std::optional<std::string>>{"z"});
  }
}

TEST(MemorySlotTileStoreTest, WritingACellRemovesSupersededCellsAndGarbage) {
  MemorySlotTileStore store;
  MemorySlotTileStore peer(store.state());
  ASSERT_TRUE(store.ClaimSlot("s").ok());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(store.CommitSlot("s", Tiles({{Key(0), std::to_string(i)}})).ok());
  }
  EXPECT_EQ(store.cell_count(), 2u);  // the newest and the one it replaced
  store.FailNextCommit(CommitFault::kBeforeCommitRow);
  EXPECT_FALSE(store.CommitSlot("s", Tiles({{Key(0), "garbage"}})).ok());
  EXPECT_EQ(store.cell_count(), 2u);  // the replaced one went with the garbage write
  ASSERT_TRUE(peer.ClaimSlot("s").ok());
  ASSERT_TRUE(peer.CommitSlot("s", Tiles({{Key(0), "new"}})).ok());
  EXPECT_EQ(store.cell_count(), 2u);  // "9" (merged with) and "new"; the garbage is gone
  EXPECT_EQ(GetSlot(store, "s", {Key(0)}), std::vector<std::optional<std::string>>{"new"});
  // Other slots' cells of the tile are untouched.
  ASSERT_TRUE(store.Write(Tiles({{Key(0), "default"}})).ok());
  EXPECT_EQ(store.cell_count(), 3u);
}

TEST(MemorySlotTileStoreTest, AZombiesWritesNeverDeleteANewerOwnersCells) {
  MemorySlotTileStore zombie;
  MemorySlotTileStore owner(zombie.state());
  ASSERT_TRUE(zombie.ClaimSlot("s").ok());
  ASSERT_TRUE(owner.ClaimSlot("s").ok());
  ASSERT_TRUE(owner.CommitSlot("s", Tiles({{Key(0), "owner"}})).ok());
  // The owner's next flush has written its cells when the zombie writes the same tile.
  owner.SetBeforeCommitHook([&](std::string_view) {
    EXPECT_FALSE(zombie.CommitSlot("s", Tiles({{Key(0), "zombie"}})).ok());
  });
  ASSERT_TRUE(owner.CommitSlot("s", Tiles({{Key(0), "owner2"}})).ok());
  EXPECT_EQ(GetSlot(owner, "s", {Key(0)}), std::vector<std::optional<std::string>>{"owner2"});
}

TEST(MemorySlotTileStoreTest, WriteGivesUpWhenFencedAtEveryAttempt) {
  MemorySlotTileStore store;
  MemorySlotTileStore other(store.state());
  int attempts = 0;
  store.SetBeforeCommitHook([&](std::string_view) {
    ++attempts;
    EXPECT_TRUE(other.ClaimSlot("").ok());
  });
  absl::Status s = store.Write(Tiles({{Key(0), "x"}}, {{"m", "x"}}));
  EXPECT_TRUE(absl::IsAborted(s)) << s;
  EXPECT_EQ(attempts, MemorySlotTileStore::kMaxWriteAttempts);
  EXPECT_EQ(*store.GetMeta("m"), std::nullopt);
  store.SetBeforeCommitHook(nullptr);
  EXPECT_TRUE(store.Write(Tiles({{Key(0), "x"}}, {{"m", "x"}})).ok());
  EXPECT_EQ(*store.GetMeta("m"), "x");
}

}  // namespace
}  // namespace tessera::store
