#include "engine/catalog_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "store/memory/memory_tile_store.h"
#include "store/testing/fault_injecting_tile_store.h"

namespace tessera::engine {
namespace {

using store::FaultInjectingTileStore;
using store::StoreOp;
using ::testing::HasSubstr;

constexpr char kSource[] = R"sql(
CREATE SOURCE ev (user_id STRING, v BIGINT, tag STRING, ts TIMESTAMP) WITH (connector = 'file');
)sql";
constexpr char kCounts[] =
    "CREATE FEATURE VIEW Counts AS SELECT user_id, COUNT(*) AS n FROM ev GROUP BY user_id;";
constexpr char kTags[] =
    "CREATE FEATURE VIEW tags AS SELECT tag, SUM(v) AS s FROM ev GROUP BY tag;";

std::string Script(std::initializer_list<const char*> parts) {
  std::string s;
  for (const char* p : parts) s += std::string(p) + "\n";
  return s;
}

TEST(CatalogStore, RegisterAssignsIdsThatAReloadRestores) {
  store::MemoryTileStore store;
  auto cs = CatalogStore::Load(&store);
  ASSERT_TRUE(cs.ok());
  EXPECT_TRUE((*cs)->views().empty());
  auto names = (*cs)->Register(Script({kSource, kCounts, kTags}));
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_EQ(*names, (std::vector<std::string>{"Counts", "tags"}));
  const uint32_t counts_id = (*cs)->FindView("counts")->id;  // names are case-insensitive
  const uint32_t tags_id = (*cs)->FindView("TAGS")->id;
  EXPECT_NE(counts_id, tags_id);
  EXPECT_EQ((*cs)->FindView("nope"), nullptr);

  auto reloaded = CatalogStore::Load(&store);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  ASSERT_EQ((*reloaded)->views().size(), 2u);
  EXPECT_EQ((*reloaded)->FindView("Counts")->id, counts_id);
  EXPECT_EQ((*reloaded)->FindView("tags")->id, tags_id);
  // Its one aggregate, then the engine's slots.
  EXPECT_EQ((*reloaded)->FindView("tags")->layout->num_slots(), 1u + kEngineSlots);
  EXPECT_EQ((*reloaded)->FindView("tags")->layout->num_engine_slots(), kEngineSlots);
  EXPECT_NE((*reloaded)->catalog().FindSource("ev"), nullptr);
  EXPECT_EQ(*store.GetMeta("format_version").value(), "2");
}

TEST(CatalogStore, SameDefinitionsAreANoOpAndNewViewsGetTheNextId) {
  store::MemoryTileStore base;
  FaultInjectingTileStore store(&base);
  {
    auto cs = CatalogStore::Load(&store);
    ASSERT_TRUE((*cs)->Register(Script({kSource, kCounts})).ok());
  }
  const int64_t writes = store.calls(StoreOp::kWrite);
  auto cs = CatalogStore::Load(&store);
  ASSERT_TRUE(cs.ok());
  const uint32_t counts_id = (*cs)->FindView("counts")->id;
  // The same statements again (keywords and types in lower case): nothing to write.
  auto again = (*cs)->Register(
      "create source ev (user_id string, v bigint, tag string, ts timestamp) with (connector = "
      "'file');\ncreate feature view Counts as select user_id, count(*) as n from ev group by "
      "user_id;");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(store.calls(StoreOp::kWrite), writes);
  // A new view next to the stored source: one write, the next id, the old id unchanged.
  ASSERT_TRUE((*cs)->Register(Script({kSource, kTags})).ok());
  EXPECT_EQ(store.calls(StoreOp::kWrite), writes + 1);
  EXPECT_EQ((*cs)->FindView("counts")->id, counts_id);
  EXPECT_EQ((*cs)->FindView("tags")->id, counts_id + 1);
}

TEST(CatalogStore, DifferentDefinitionsAreRefusedAndChangeNothing) {
  store::MemoryTileStore store;
  auto cs = CatalogStore::Load(&store);
  ASSERT_TRUE((*cs)->Register(Script({kSource, kCounts})).ok());
  const auto meta = store.AllMeta();

  auto view = (*cs)->Register(
      Script({kSource,
              "CREATE FEATURE VIEW counts AS SELECT user_id, SUM(v) AS n FROM ev GROUP BY "
              "user_id;"}));
  EXPECT_EQ(view.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(view.status().message()), HasSubstr("view 'counts' already exists"));

  auto source =
      (*cs)->Register("CREATE SOURCE ev (user_id STRING, ts TIMESTAMP) WITH (connector = 'file');");
  EXPECT_EQ(source.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(source.status().message()), HasSubstr("source 'ev' already exists"));

  // A script that does not bind (unknown source) is refused before anything is written.
  auto unbound = (*cs)->Register(
      "CREATE FEATURE VIEW x AS SELECT user_id, COUNT(*) AS n FROM nowhere GROUP BY user_id;");
  EXPECT_FALSE(unbound.ok());
  EXPECT_EQ(store.AllMeta(), meta);
  EXPECT_EQ((*cs)->views().size(), 1u);
}

// A registration whose write fails leaves the catalog as the DB holds it, in memory too: the
// next registration must not hand out the lost view's id (or reuse its statement slot).
TEST(CatalogStore, FailedWriteLeavesTheCatalogAsStored) {
  store::MemoryTileStore base;
  FaultInjectingTileStore store(&base);
  auto cs = CatalogStore::Load(&store);
  ASSERT_TRUE((*cs)->Register(Script({kSource, kCounts})).ok());
  const uint32_t counts_id = (*cs)->FindView("counts")->id;
  store.FailNth(StoreOp::kWrite, 1);
  EXPECT_EQ((*cs)->Register(Script({kSource, kTags})).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ((*cs)->FindView("tags"), nullptr);
  ASSERT_NE((*cs)->FindView("counts"), nullptr);
  // Retry: the view is registered once, with the next id, and a reload agrees.
  ASSERT_TRUE((*cs)->Register(Script({kSource, kTags})).ok());
  EXPECT_EQ((*cs)->FindView("tags")->id, counts_id + 1);
  auto reloaded = CatalogStore::Load(&base);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_EQ((*reloaded)->FindView("tags")->id, counts_id + 1);
  EXPECT_EQ((*reloaded)->views().size(), 2u);
}

TEST(CatalogStore, CorruptOrNewerCatalogsAreRefused) {
  for (const auto& [key, value, code] :
       std::vector<std::tuple<std::string, std::string, absl::StatusCode>>{
           {"catalog/next_view_id", "x", absl::StatusCode::kDataLoss},
           {"catalog/view/counts", "-1", absl::StatusCode::kDataLoss},
           {"format_version", "99", absl::StatusCode::kFailedPrecondition},
           {"catalog/stmt/00000009", "CREATE NONSENSE", absl::StatusCode::kDataLoss},
       }) {
    store::MemoryTileStore store;
    ASSERT_TRUE((*CatalogStore::Load(&store))->Register(Script({kSource, kCounts})).ok());
    store::WriteBatch b;
    b.meta.emplace_back(key, value);
    ASSERT_TRUE(store.Write(b).ok());
    EXPECT_EQ(CatalogStore::Load(&store).status().code(), code) << key;
  }
}

}  // namespace
}  // namespace tessera::engine
