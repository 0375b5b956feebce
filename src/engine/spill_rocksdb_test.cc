// Spill runs on RocksDB (engine/spill.h): a backfill of two views under a small budget ends with
// exactly the tiles one flush writes, and the runs' files are gone, not just hidden by a range
// delete. (spill_test.cc and crash_points_test.cc check the protocol on the in-memory store.)

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "common/status_macros.h"
#include "common/time_util.h"
#include "engine/engine_test_util.h"
#include "engine/ingest_pipeline.h"
#include "engine/spill.h"
#include "store/memory/memory_tile_store.h"
#include "store/rocksdb/rocksdb_tile_store.h"
#include "store/testing/scoped_temp_dir.h"

namespace tessera::engine {
namespace {

constexpr int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z

constexpr char kSql[] = R"sql(
CREATE SOURCE ev (user_id STRING, device STRING, v BIGINT, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '20' MINUTE) WITH (connector = 'file');
CREATE FEATURE VIEW by_user AS
SELECT user_id, COUNT(*) AS n, SUM(v) AS total, APPROX_COUNT_DISTINCT(device) AS devices
FROM ev GROUP BY user_id;
CREATE FEATURE VIEW by_device AS
SELECT user_id, device, COUNT(*) AS n, MAX(v) AS top FROM ev GROUP BY user_id, device;
)sql";

std::vector<std::string> Events(int n) {
  std::mt19937_64 rng(3);
  std::vector<std::string> lines;
  lines.reserve(n);
  int64_t t = kT0;
  for (int i = 0; i < n; ++i) {
    t += static_cast<int64_t>(rng() % 20'000);
    const int64_t ts = t - static_cast<int64_t>(rng() % (25 * kMillisPerMinute));
    const uint64_t u = rng() % 3000;
    lines.push_back(fmt::format(R"({{"user_id":"{}{}","device":"d{}","v":{},"ts":{}}})",
                                std::string(u % 4 * 50, 'k'), u, rng() % 4, rng() % 1000, ts));
  }
  return lines;
}

absl::Status Ingest(store::TileStore* store, const std::vector<std::string>& lines,
                    PipelineOptions options) {
  TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<CatalogStore> catalog, CatalogStore::Load(store));
  TESSERA_RETURN_IF_ERROR(catalog->Register(kSql).status());
  std::vector<const ViewRuntime*> views;
  for (const auto& v : catalog->views()) views.push_back(v.get());
  IngestPipeline p(*views[0]->source, views, store, options);
  TESSERA_RETURN_IF_ERROR(p.Init());
  StringChunkSource src(lines, 2000);
  TESSERA_RETURN_IF_ERROR(p.Run(&src));
  if (options.spill_runs && p.flush_stats().spilled_tiles == 0) {
    return absl::InternalError("the backfill did not spill");
  }
  return absl::OkStatus();
}

// Every tile of views 1 and 2, in key order.
std::vector<std::pair<std::string, std::string>> ViewTiles(store::TileStore* store) {
  std::vector<std::pair<std::string, std::string>> out;
  for (uint32_t view : {1u, 2u}) {
    auto cursor = store->NewViewCursor(view, store::EntityRange());
    EXPECT_TRUE(cursor.ok()) << cursor.status();
    for (; (*cursor)->Valid(); (*cursor)->Next()) {
      out.emplace_back(fmt::format("{}/{}", view, (*cursor)->view_key()),
                       std::string((*cursor)->value()));
    }
    EXPECT_TRUE((*cursor)->status().ok());
  }
  return out;
}

uint64_t SstBytes(const store::RocksDbTileStore& db) {
  return std::stoull(db.GetProperty("rocksdb.total-sst-files-size").value_or("0"));
}

TEST(SpillRunsOnRocksDb, EndWithTheTilesOfOneFlushAndTheirFilesGone) {
  const std::vector<std::string> lines = Events(60'000);
  store::MemoryTileStore one_flush;
  ASSERT_TRUE(
      Ingest(&one_flush, lines, PipelineOptions{.memory_budget_bytes = size_t{1} << 30}).ok());

  store::ScopedTempDir dir;
  store::RocksDbOptions ro;
  ro.disable_wal = true;  // as a backfill opens it
  auto spilled = store::RocksDbTileStore::Open(dir.path().string() + "/spilled", ro);
  ASSERT_TRUE(spilled.ok()) << spilled.status();
  ASSERT_TRUE(Ingest(spilled->get(), lines,
                     PipelineOptions{.threads = 2,
                                     .memory_budget_bytes = 256 << 10,
                                     .open_tiles_readable = false,
                                     .spill_runs = true,
                                     .spill_interval_bytes = 64 << 10})
                  .ok());
  EXPECT_TRUE(ViewTiles(spilled->get()) == ViewTiles(&one_flush));
  for (uint32_t view : {1u, 2u}) {
    for (uint32_t flush : {0u, 1u, 2u}) {
      auto cursor = (*spilled)->NewViewCursor(SpillViewId(view, flush), store::EntityRange());
      ASSERT_TRUE(cursor.ok());
      EXPECT_FALSE((*cursor)->Valid()) << "spill run " << flush << " of view " << view;
    }
  }

  // The same rows in one flush, on RocksDB: about the same bytes of files, so the spill runs'
  // files were dropped, not kept under a range delete.
  auto once = store::RocksDbTileStore::Open(dir.path().string() + "/once", ro);
  ASSERT_TRUE(once.ok()) << once.status();
  ASSERT_TRUE(
      Ingest(once->get(), lines, PipelineOptions{.memory_budget_bytes = size_t{1} << 30}).ok());
  ASSERT_TRUE((*spilled)->Sync().ok());
  ASSERT_TRUE((*once)->Sync().ok());
  EXPECT_LT(SstBytes(**spilled), SstBytes(**once) * 5 / 4)
      << SstBytes(**spilled) << " vs " << SstBytes(**once);
}

}  // namespace
}  // namespace tessera::engine
