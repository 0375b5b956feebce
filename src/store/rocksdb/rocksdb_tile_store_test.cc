#include "store/rocksdb/rocksdb_tile_store.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "store/memory/memory_tile_store.h"
#include "store/tile_store_conformance.h"

namespace tessera::store {
namespace {

std::unique_ptr<RocksDbTileStore> OpenOrDie(const std::string& dir,
                                            const RocksDbOptions& options = {}) {
  absl::StatusOr<std::unique_ptr<RocksDbTileStore>> store = RocksDbTileStore::Open(dir, options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

RocksDbOptions SmallOptions() {
  RocksDbOptions o;
  o.block_cache_bytes = 8 << 20;
  o.write_buffer_bytes = 64 << 10;  // flush often so reads hit SST files, filters, compactions
  return o;
}

// Flushes after every Write, so every read in the conformance suite goes through SST files
// (block index, whole-key and prefix Bloom filters, compaction output) rather than memtables.
class FlushEveryWriteStore final : public TileStore {
 public:
  explicit FlushEveryWriteStore(std::unique_ptr<TileStore> inner) : inner_(std::move(inner)) {}
  absl::Status Scan(uint32_t view_id, std::string_view entity_key, Resolution resolution,
                    int64_t from_ms, int64_t to_ms,
                    const std::function<void(int64_t, std::string_view)>& fn) override {
    return inner_->Scan(view_id, entity_key, resolution, from_ms, to_ms, fn);
  }
  absl::Status MultiGet(const std::vector<TileKey>& keys,
                        std::vector<std::optional<std::string>>* values) override {
    return inner_->MultiGet(keys, values);
  }
  absl::Status Write(const WriteBatch& batch) override {
    absl::Status s = inner_->Write(batch);
    return s.ok() ? inner_->Sync() : s;
  }
  absl::StatusOr<std::optional<std::string>> GetMeta(std::string_view key) override {
    return inner_->GetMeta(key);
  }
  absl::Status ScanMeta(
      std::string_view prefix,
      const std::function<void(std::string_view, std::string_view)>& fn) override {
    return inner_->ScanMeta(prefix, fn);
  }
  absl::Status Sync() override { return inner_->Sync(); }

 private:
  std::unique_ptr<TileStore> inner_;
};

TileStoreFactory RocksFactory(std::string name, RocksDbOptions options, bool flush_every_write) {
  return TileStoreFactory{
      std::move(name),
      [options, flush_every_write](const std::string& scratch) -> std::unique_ptr<TileStore> {
        std::unique_ptr<TileStore> store = OpenOrDie(scratch + "/db", options);
        if (store == nullptr || !flush_every_write) return store;
        return std::make_unique<FlushEveryWriteStore>(std::move(store));
      }};
}

RocksDbOptions NoWal() {
  RocksDbOptions o = SmallOptions();
  o.disable_wal = true;
  return o;
}
RocksDbOptions SyncWrites() {
  RocksDbOptions o = SmallOptions();
  o.sync = true;
  return o;
}

// Every write (with at least one tile) goes through the sorted-SST ingestion path, split over
// three writer threads.
RocksDbOptions BulkIngest() {
  RocksDbOptions o;
  o.bulk_ingest_min_tiles = 1;
  o.bulk_threads = 3;
  return o;
}

INSTANTIATE_TEST_SUITE_P(RocksDb, TileStoreConformanceTest,
                         ::testing::Values(RocksFactory("Default", RocksDbOptions{}, false),
                                           RocksFactory("SmallBuffers", SmallOptions(), false),
                                           RocksFactory("SyncWrites", SyncWrites(), false),
                                           RocksFactory("NoWalFlushEveryWrite", NoWal(), true),
                                           RocksFactory("BulkIngestEveryWrite", BulkIngest(), false)),
                         TileStoreFactoryName);

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.push_back(e.path().filename().string() + ":" +
                    std::to_string(e.is_regular_file() ? e.file_size() : 0));
  }
  std::sort(names.begin(), names.end());
  return names;
}

WriteBatch SampleBatch(int n) {
  WriteBatch b;
  for (int i = 0; i < n; ++i) {
    b.tiles.emplace_back(
        TileKey{3, fmt::format("user{}", i % 5), Resolution::kBase, (i - n / 2) * int64_t{300000}},
        fmt::format("value{}", i));
  }
  b.meta = {{"catalog", "CREATE ..."}, {"pos/file", "42"}};
  return b;
}

size_t CountTiles(TileStore& store) {
  size_t n = 0;
  for (int u = 0; u < 5; ++u) {
    EXPECT_TRUE(store
                    .Scan(3, fmt::format("user{}", u), Resolution::kBase,
                          std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(),
                          [&](int64_t, std::string_view) { ++n; })
                    .ok());
  }
  return n;
}

TEST(RocksDbTileStoreTest, PersistsAcrossReopen) {
  ScopedTempDir tmp;
  const std::string dir = tmp.Sub("nested/db");  // parents are created
  {
    auto store = OpenOrDie(dir);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Write(SampleBatch(100)).ok());
  }
  auto store = OpenOrDie(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(CountTiles(*store), 100u);
  absl::StatusOr<std::optional<std::string>> pos = store->GetMeta("pos/file");
  ASSERT_TRUE(pos.ok());
  EXPECT_EQ(*pos, "42");
  EXPECT_TRUE(store->GetProperty("rocksdb.estimate-num-keys").has_value());
  EXPECT_FALSE(store->GetProperty("no.such.property").has_value());
}

TEST(RocksDbTileStoreTest, ReadOnlyOpenSeesDataRefusesWritesAndTouchesNoFiles) {
  ScopedTempDir tmp;
  const std::string dir = tmp.Sub("db");
  {
    auto writer = OpenOrDie(dir);
    ASSERT_NE(writer, nullptr);
    ASSERT_TRUE(writer->Write(SampleBatch(50)).ok());
  }
  const std::vector<std::string> before = ListDir(dir);
  {
    RocksDbOptions ro;
    ro.read_only = true;
    auto reader = OpenOrDie(dir, ro);
    ASSERT_NE(reader, nullptr);
    EXPECT_TRUE(reader->read_only());
    EXPECT_EQ(CountTiles(*reader), 50u);
    std::vector<std::optional<std::string>> values;
    ASSERT_TRUE(
        reader->MultiGet({TileKey{3, "user0", Resolution::kBase, -25 * 300000}}, &values).ok());
    EXPECT_EQ(values[0], "value0");
    absl::Status w = reader->Write(SampleBatch(1));
    EXPECT_EQ(w.code(), absl::StatusCode::kFailedPrecondition) << w;
    EXPECT_NE(StatusMessage(w).find(dir), std::string::npos) << w;
    EXPECT_TRUE(reader->Sync().ok());
    // Two readers at once are fine.
    auto reader2 = OpenOrDie(dir, ro);
    ASSERT_NE(reader2, nullptr);
    EXPECT_EQ(CountTiles(*reader2), 50u);
  }
  EXPECT_EQ(ListDir(dir), before);
}

TEST(RocksDbTileStoreTest, MissingDbIsNotFoundAndNotCreated) {
  ScopedTempDir tmp;
  const std::string dir = tmp.Sub("absent");
  RocksDbOptions ro;
  ro.read_only = true;
  absl::StatusOr<std::unique_ptr<RocksDbTileStore>> s = RocksDbTileStore::Open(dir, ro);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound) << s.status();
  EXPECT_NE(StatusMessage(s.status()).find(dir), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir));

  RocksDbOptions no_create;
  no_create.create_if_missing = false;
  s = RocksDbTileStore::Open(dir, no_create);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound) << s.status();
  EXPECT_FALSE(std::filesystem::exists(dir));

  EXPECT_EQ(RocksDbTileStore::Open("", {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RocksDbTileStoreTest, SecondWriterGetsAClearLockError) {
  ScopedTempDir tmp;
  const std::string dir = tmp.Sub("db");
  auto first = OpenOrDie(dir);
  ASSERT_NE(first, nullptr);
  absl::StatusOr<std::unique_ptr<RocksDbTileStore>> second = RocksDbTileStore::Open(dir, {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
  const std::string msg = StatusMessage(second.status());
  EXPECT_NE(msg.find("another tessera process"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir), std::string::npos) << msg;
}

TEST(RocksDbTileStoreTest, OpenOnAFileFailsCleanly) {
  ScopedTempDir tmp;
  const std::string file = tmp.Sub("file");
  { std::ofstream(file) << "not a db"; }
  absl::StatusOr<std::unique_ptr<RocksDbTileStore>> s = RocksDbTileStore::Open(file, {});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(StatusMessage(s.status()).find(file), std::string::npos) << s.status();
}

TEST(RocksDbTileStoreTest, NoWalThenSyncSurvivesReopenReadOnly) {
  ScopedTempDir tmp;
  const std::string dir = tmp.Sub("db");
  {
    auto store = OpenOrDie(dir, NoWal());
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(store->Write(SampleBatch(200)).ok());
    ASSERT_TRUE(store->Sync().ok());
  }
  RocksDbOptions ro;
  ro.read_only = true;
  auto reader = OpenOrDie(dir, ro);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(CountTiles(*reader), 200u);
}

// Crash tests: a child process writes and then dies with _exit() (no destructor, no close, no
// shutdown flush); the parent reopens the directory. "threadsafe" death tests re-execute the
// binary, so the child starts with fresh RocksDB background threads.
constexpr char kCrashDirEnv[] = "TESSERA_STORE_CRASH_TEST_DIR";

void WriteThenDie(const std::string& dir, const RocksDbOptions& options, bool sync) {
  absl::StatusOr<std::unique_ptr<RocksDbTileStore>> store = RocksDbTileStore::Open(dir, options);
  if (!store.ok()) std::_Exit(2);
  if (!(*store)->Write(SampleBatch(100)).ok()) std::_Exit(3);
  if (sync && !(*store)->Sync().ok()) std::_Exit(4);
  std::_Exit(0);
}

size_t TilesAfterCrash(const RocksDbOptions& options, bool sync) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::unique_ptr<ScopedTempDir> tmp;
  std::string dir;
  if (const char* d = std::getenv(kCrashDirEnv); d != nullptr) {
    dir = d;  // in the re-executed child
  } else {
    tmp = std::make_unique<ScopedTempDir>();
    dir = tmp->Sub("db");
    ::setenv(kCrashDirEnv, dir.c_str(), 1);
  }
  EXPECT_EXIT(WriteThenDie(dir, options, sync), ::testing::ExitedWithCode(0), "");
  ::unsetenv(kCrashDirEnv);
  auto store = OpenOrDie(dir);
  return store == nullptr ? 0 : CountTiles(*store);
}

TEST(RocksDbCrashTest, NoWalWithSyncSurvivesACrash) {
  EXPECT_EQ(TilesAfterCrash(NoWal(), /*sync=*/true), 100u);
}

TEST(RocksDbCrashTest, NoWalWithoutSyncLosesMemtableOnCrash) {
  // Documents why backfill must call Sync(): without a WAL the memtable dies with the process.
  RocksDbOptions o = NoWal();
  o.write_buffer_bytes = 64 << 20;
  EXPECT_EQ(TilesAfterCrash(o, /*sync=*/false), 0u);
}

TEST(RocksDbCrashTest, WalWritesSurviveAProcessCrashWithoutSync) {
  EXPECT_EQ(TilesAfterCrash(RocksDbOptions{}, /*sync=*/false), 100u);
}

// Differential test: random writes, flushes and reads against MemoryTileStore as the model,
// with tiny memtables so data spreads over memtables, L0 files and compacted levels.
TEST(RocksDbTileStoreTest, MatchesMemoryStoreUnderRandomOperations) {
  ScopedTempDir tmp;
  RocksDbOptions o = NoWal();
  o.write_buffer_bytes = 32 << 10;
  auto rocks = OpenOrDie(tmp.Sub("db"), o);
  ASSERT_NE(rocks, nullptr);
  MemoryTileStore model;
  std::mt19937_64 rng(2024);
  const std::vector<std::string> entities = {
      "", "a", "ab", "abc", "b", std::string("a\0c", 3), std::string(150, 'k'), "\xff\xfe"};
  auto random_key = [&] {
    return TileKey{static_cast<uint32_t>(rng() % 3), entities[rng() % entities.size()],
                   static_cast<Resolution>(rng() % 3),
                   (static_cast<int64_t>(rng() % 200) - 100) * 300000};
  };
  for (int round = 0; round < 200; ++round) {
    WriteBatch b;
    for (int i = 0, n = static_cast<int>(rng() % 50); i < n; ++i) {
      b.tiles.emplace_back(random_key(),
                           std::string(rng() % 300, static_cast<char>('a' + round % 26)));
    }
    for (int i = 0, n = static_cast<int>(rng() % 3); i < n; ++i) {
      b.meta.emplace_back(fmt::format("m/{}", rng() % 20), std::to_string(round));
    }
    if (rng() % 4 == 0) b.meta_deletes.push_back(fmt::format("m/{}", rng() % 20));
    ASSERT_TRUE(rocks->Write(b).ok());
    ASSERT_TRUE(model.Write(b).ok());
    if (rng() % 10 == 0) {
      ASSERT_TRUE(rocks->Sync().ok());
    }

    for (int q = 0; q < 5; ++q) {
      TileKey k = random_key();
      int64_t from = k.start_ms - static_cast<int64_t>(rng() % 20) * 300000;
      int64_t to =
          from + static_cast<int64_t>(rng() % 40) * 300000 + static_cast<int64_t>(rng() % 2);
      std::vector<std::pair<int64_t, std::string>> want, got;
      ASSERT_TRUE(model
                      .Scan(k.view_id, k.entity_key, k.resolution, from, to,
                            [&](int64_t s, std::string_view v) { want.emplace_back(s, v); })
                      .ok());
      ASSERT_TRUE(rocks
                      ->Scan(k.view_id, k.entity_key, k.resolution, from, to,
                             [&](int64_t s, std::string_view v) { got.emplace_back(s, v); })
                      .ok());
      ASSERT_EQ(got, want) << "round " << round;
    }
    std::vector<TileKey> keys;
    for (int i = 0; i < 20; ++i) keys.push_back(random_key());
    std::vector<std::optional<std::string>> want, got;
    ASSERT_TRUE(model.MultiGet(keys, &want).ok());
    ASSERT_TRUE(rocks->MultiGet(keys, &got).ok());
    ASSERT_EQ(got, want) << "round " << round;
  }
  std::vector<std::pair<std::string, std::string>> want_meta, got_meta;
  ASSERT_TRUE(model
                  .ScanMeta("m/", [&](std::string_view k,
                                      std::string_view v) { want_meta.emplace_back(k, v); })
                  .ok());
  ASSERT_TRUE(rocks
                  ->ScanMeta("m/", [&](std::string_view k,
                                       std::string_view v) { got_meta.emplace_back(k, v); })
                  .ok());
  EXPECT_EQ(got_meta, want_meta);
}

}  // namespace
}  // namespace tessera::store
