#include "store/bigtable/bigtable_tile_store.h"

#include <gtest/gtest.h>

namespace tessera::store {
namespace {

TEST(BigtableUriTest, Parses) {
  absl::StatusOr<BigtableUri> u = ParseBigtableUri("bigtable://p/i/t");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->TableName(), "projects/p/instances/i/tables/t");
}

}  // namespace
}  // namespace tessera::store
