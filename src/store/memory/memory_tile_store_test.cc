#include "store/memory/memory_tile_store.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "store/event_log_conformance.h"
#include "store/tile_store_conformance.h"

namespace tessera::store {
namespace {

INSTANTIATE_TEST_SUITE_P(Memory, TileStoreConformanceTest,
                         ::testing::Values(TileStoreFactory{
                             "Default",
                             [](const std::string&) -> std::unique_ptr<TileStore> {
                               return std::make_unique<MemoryTileStore>();
                             }}),
                         TileStoreFactoryName);

INSTANTIATE_TEST_SUITE_P(Memory, EventLogConformanceTest,
                         ::testing::Values(EventLogFactory{
                             "Default",
                             [](const std::string&, uint64_t retention) {
                               auto store = std::make_unique<MemoryTileStore>(retention);
                               EventLog* log = store.get();
                               return EventLogStores{std::move(store), log};
                             }}),
                         EventLogFactoryName);

TEST(MemoryTileStoreTest, CountsTiles) {
  MemoryTileStore store;
  WriteBatch b;
  b.tiles.emplace_back(TileKey{1, "k", Resolution::kBase, 0}, "x");
  b.tiles.emplace_back(TileKey{1, "k", Resolution::kBase, 0}, "y");
  b.tiles.emplace_back(TileKey{1, "k", Resolution::kHour, 0}, "z");
  ASSERT_TRUE(store.Write(b).ok());
  EXPECT_EQ(store.tile_count(), 2u);
}

}  // namespace
}  // namespace tessera::store
