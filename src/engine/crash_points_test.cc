// What the engine leaves in the store at each crash point, with a FaultInjectingTileStore: a
// flush that fails leaves the store exactly as before (checkpoint included), and rerunning after
// any failure ends with exactly the tiles and metadata of a run that never failed. Every test
// runs twice: with read-merge-write flushes, and with spill runs (engine/spill.h: every flush a
// spill run, merged at the end), whose result must also be exactly the other's.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <charconv>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/status_macros.h"
#include "common/time_util.h"
#include "engine/catalog_store.h"
#include "engine/ingest_pipeline.h"
#include "store/memory/memory_tile_store.h"
#include "store/testing/fault_injecting_tile_store.h"

namespace tessera::engine {
namespace {

using store::FaultInjectingTileStore;
using store::MemoryTileStore;
using store::StoreOp;

constexpr int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr size_t kChunkLines = 20;
constexpr char kPositionKey[] = "test/position";

constexpr char kSql[] = R"sql(
CREATE SOURCE ev (user_id STRING, v BIGINT, tag STRING, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '10' MINUTE) WITH (connector = 'file');
CREATE FEATURE VIEW stats AS
SELECT user_id, COUNT(*) AS n, SUM(v) AS total, MAX(v) AS top, LAST_VALUE(tag) AS last_tag,
       APPROX_COUNT_DISTINCT(tag) AS tags
FROM ev GROUP BY user_id;
)sql";

// Lines from `start` on, in chunks of kChunkLines; the checkpoint is the absolute line position,
// so a rerun resumes right after the last committed chunk.
class ResumingSource final : public Source {
 public:
  ResumingSource(const std::vector<std::string>* lines, size_t start)
      : lines_(lines), next_(start) {}
  absl::StatusOr<Next> NextChunk(source::Chunk* chunk, source::ChunkOrigin* origin) override {
    if (next_ >= lines_->size()) return Next::kEnd;
    std::string data;
    const size_t end = std::min(lines_->size(), next_ + kChunkLines);
    for (size_t i = next_; i < end; ++i) data += (*lines_)[i] + "\n";
    chunk->Assign(data, 0);
    origin->first_line = static_cast<int64_t>(next_) + 1;
    origin->input = "lines";
    next_ = end;
    return Next::kChunk;
  }
  void AddCheckpoint(store::WriteBatch* batch) override {
    batch->meta.emplace_back(kPositionKey, std::to_string(next_));
  }

 private:
  const std::vector<std::string>* lines_;
  size_t next_;
};

std::vector<std::string> Lines() {
  std::mt19937_64 rng(5);
  std::vector<std::string> lines;
  int64_t t = kT0;
  for (int i = 0; i < 400; ++i) {
    t += static_cast<int64_t>(rng() % 60'000);
    const int64_t ts = t - static_cast<int64_t>(rng() % (12 * kMillisPerMinute));  // some late
    lines.push_back(fmt::format(R"({{"user_id":"u{}","v":{},"tag":"t{}","ts":{}}})", rng() % 4,
                                rng() % 100, rng() % 9, ts));
  }
  return lines;
}

// One process lifetime: open the catalog, resume from the checkpoint, ingest to the end. One
// worker and a budget that flushes every round make each chunk one flush, so flush boundaries
// are the same whatever run a chunk lands in (unless `budget` holds more). `spill`: as a
// backfill, with spill runs.
absl::Status RunOnce(store::TileStore* store, const std::vector<std::string>& lines, bool spill,
                     size_t budget = 1) {
  TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<CatalogStore> catalog, CatalogStore::Load(store));
  TESSERA_RETURN_IF_ERROR(catalog->Register(kSql).status());
  const ViewRuntime* view = catalog->FindView("stats");
  TESSERA_ASSIGN_OR_RETURN(std::optional<std::string> pos, store->GetMeta(kPositionKey));
  size_t start = 0;
  if (pos.has_value()) std::from_chars(pos->data(), pos->data() + pos->size(), start);
  IngestPipeline p(*view->source, {view}, store,
                   PipelineOptions{.threads = 1,
                                   .memory_budget_bytes = budget,
                                   .rollups_per_flush = 2,
                                   .open_tiles_readable = !spill,
                                   .spill_runs = spill,
                                   .spill_interval_bytes = 1});  // an interval per key
  TESSERA_RETURN_IF_ERROR(p.Init());
  ResumingSource src(&lines, start);
  return p.Run(&src);
}

struct Dump {
  std::vector<std::pair<store::TileKey, std::string>> tiles;
  std::vector<std::pair<std::string, std::string>> meta;
  friend bool operator==(const Dump&, const Dump&) = default;
};
Dump DumpOf(const MemoryTileStore& s) { return Dump{s.AllTiles(), s.AllMeta()}; }

// Records the wrapped store's contents before every Write it forwards.
class RecordingStore final : public store::TileStore {
 public:
  RecordingStore(store::TileStore* next, const MemoryTileStore* base) : next_(next), base_(base) {}
  absl::Status ScanAt(const store::StoreSnapshot* snap, uint32_t view, std::string_view key,
                      store::Resolution res, int64_t from, int64_t to,
                      const std::function<void(int64_t, std::string_view)>& fn) override {
    return next_->ScanAt(snap, view, key, res, from, to, fn);
  }
  std::shared_ptr<const store::StoreSnapshot> GetSnapshot() override {
    return next_->GetSnapshot();
  }
  absl::Status MultiGet(const std::vector<store::TileKey>& keys,
                        std::vector<std::optional<std::string>>* values) override {
    return next_->MultiGet(keys, values);
  }
  absl::Status Write(const store::WriteBatch& batch) override {
    before_last_write = DumpOf(*base_);
    return next_->Write(batch);
  }
  absl::StatusOr<std::optional<std::string>> GetMeta(std::string_view key) override {
    return next_->GetMeta(key);
  }
  absl::Status ScanMeta(
      std::string_view prefix,
      const std::function<void(std::string_view, std::string_view)>& fn) override {
    return next_->ScanMeta(prefix, fn);
  }
  absl::Status Sync() override { return next_->Sync(); }
  bool supports_view_ranges() const override { return next_->supports_view_ranges(); }
  absl::StatusOr<std::unique_ptr<store::ViewCursor>> NewViewCursor(
      uint32_t view_id, const store::EntityRange& range) override {
    return next_->NewViewCursor(view_id, range);
  }
  absl::Status DeleteViewTiles(uint32_t first_view_id, uint32_t last_view_id) override {
    return next_->DeleteViewTiles(first_view_id, last_view_id);
  }

  Dump before_last_write;

 private:
  store::TileStore* next_;
  const MemoryTileStore* base_;
};

class CrashPointsTest : public ::testing::TestWithParam<bool> {
 protected:
  absl::Status RunOnce(store::TileStore* store, const std::vector<std::string>& lines) {
    return engine::RunOnce(store, lines, GetParam());
  }

  void SetUp() override {
    lines_ = Lines();
    ASSERT_TRUE(RunOnce(&clean_, lines_).ok());
    clean_dump_ = DumpOf(clean_);
    ASSERT_GT(clean_dump_.tiles.size(), 20u);
    // Count the calls of a clean run, to aim faults at every one of them.
    MemoryTileStore base;
    FaultInjectingTileStore counted(&base);
    ASSERT_TRUE(RunOnce(&counted, lines_).ok());
    clean_writes_ = counted.calls(StoreOp::kWrite);
    clean_syncs_ = counted.calls(StoreOp::kSync);
    clean_deletes_ = counted.calls(StoreOp::kDeleteViewTiles);
    EXPECT_EQ(clean_deletes_ > 0, GetParam());  // spill runs were written and deleted
    clean_calls_ = counted.total_calls();
    ASSERT_GT(clean_writes_, 20);
  }

  // After an injected failure: heal, rerun, and compare with the clean run.
  void ExpectRerunEqualsCleanRun(FaultInjectingTileStore* store, const MemoryTileStore& base,
                                 const std::string& what) {
    store->Heal();
    absl::Status rerun = RunOnce(store, lines_);
    ASSERT_TRUE(rerun.ok()) << what << ": " << rerun;
    const Dump d = DumpOf(base);
    EXPECT_EQ(d.tiles.size(), clean_dump_.tiles.size()) << what;
    EXPECT_TRUE(d.tiles == clean_dump_.tiles) << what;
    EXPECT_EQ(d.meta, clean_dump_.meta) << what;
  }

  std::vector<std::string> lines_;
  MemoryTileStore clean_;
  Dump clean_dump_;
  int64_t clean_writes_ = 0;   // catalog registration and flushes
  int64_t clean_syncs_ = 0;    // flushes
  int64_t clean_deletes_ = 0;  // spill runs deleted
  int64_t clean_calls_ = 0;
};

TEST_P(CrashPointsTest, FailedFlushWriteLeavesTheStoreExactlyAsBefore) {
  for (int64_t n : {int64_t{3}, clean_writes_ / 2, clean_writes_}) {
    MemoryTileStore base;
    FaultInjectingTileStore faulty(&base);
    RecordingStore store(&faulty, &base);
    faulty.FailNth(StoreOp::kWrite, n);
    absl::Status s = RunOnce(&store, lines_);
    ASSERT_EQ(s.code(), absl::StatusCode::kUnavailable) << "write " << n << ": " << s;
    const Dump after = DumpOf(base);
    EXPECT_TRUE(after == store.before_last_write) << "write " << n;
    // Not a single tile of the failed flush, and the checkpoint did not move past it.
    auto pos = base.GetMeta(kPositionKey);
    ASSERT_TRUE(pos.ok());
    const auto& before = store.before_last_write.meta;
    auto it = std::find_if(before.begin(), before.end(),
                           [](const auto& m) { return m.first == kPositionKey; });
    EXPECT_EQ(*pos, it == before.end() ? std::nullopt : std::optional<std::string>(it->second));
    ExpectRerunEqualsCleanRun(&faulty, base, fmt::format("write {}", n));
  }
}

TEST_P(CrashPointsTest, RerunAfterAnyFailedWriteOrSyncEqualsACleanRun) {
  for (int64_t n = 1; n <= clean_writes_; ++n) {
    for (StoreOp op : {StoreOp::kWrite, StoreOp::kSync, StoreOp::kDeleteViewTiles}) {
      if (op == StoreOp::kSync && n > clean_syncs_) continue;
      if (op == StoreOp::kDeleteViewTiles && n > clean_deletes_) continue;
      MemoryTileStore base;
      FaultInjectingTileStore store(&base);
      store.FailNth(op, n);
      EXPECT_FALSE(RunOnce(&store, lines_).ok());
      ExpectRerunEqualsCleanRun(&store, base, fmt::format("op {} call {}", int(op), n));
    }
    // The batch became durable but the engine was told it failed.
    MemoryTileStore base;
    FaultInjectingTileStore store(&base);
    store.FailNthWriteAfterApplying(n);
    EXPECT_FALSE(RunOnce(&store, lines_).ok());
    ExpectRerunEqualsCleanRun(&store, base, fmt::format("write {} applied, then failed", n));
  }
}

TEST_P(CrashPointsTest, RerunAfterACrashAtAnyCallEqualsACleanRun) {
  for (int64_t n = 0; n < clean_calls_; ++n) {
    MemoryTileStore base;
    FaultInjectingTileStore store(&base);
    store.CrashAfter(n);
    // Fails, unless only calls that cannot fail (GetSnapshot) were left.
    const bool ok = RunOnce(&store, lines_).ok();
    EXPECT_EQ(ok, store.failures() == 0) << n;
    ExpectRerunEqualsCleanRun(&store, base, fmt::format("crash after {} calls", n));
    if (HasFailure()) break;
  }
}

TEST_P(CrashPointsTest, ReadFailuresDuringAFlushAreErrorsNotWrongTiles) {
  for (StoreOp op : {StoreOp::kMultiGet, StoreOp::kScan, StoreOp::kScanMeta, StoreOp::kGetMeta}) {
    for (int64_t n : {1, 2, 5, 17}) {
      MemoryTileStore base;
      FaultInjectingTileStore store(&base);
      store.FailNth(op, n);
      (void)RunOnce(&store, lines_);  // fails unless the run makes fewer such calls
      ExpectRerunEqualsCleanRun(&store, base, fmt::format("op {} call {}", int(op), n));
    }
  }
}

// Spill runs end with exactly what one flush of everything writes (the same tiles, rollups and
// owed markers: both build a closed slot's rollup from its base tiles).
TEST(SpillRunsTest, EndWithExactlyTheTilesAndMetadataOfOneFlush) {
  const std::vector<std::string> lines = Lines();
  MemoryTileStore spilled;
  ASSERT_TRUE(RunOnce(&spilled, lines, true).ok());
  MemoryTileStore one_flush;
  ASSERT_TRUE(RunOnce(&one_flush, lines, false, size_t{1} << 30).ok());
  const Dump a = DumpOf(spilled);
  const Dump b = DumpOf(one_flush);
  EXPECT_EQ(a.tiles.size(), b.tiles.size());
  EXPECT_TRUE(a.tiles == b.tiles);
  EXPECT_EQ(a.meta, b.meta);
}

INSTANTIATE_TEST_SUITE_P(Flushes, CrashPointsTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "SpillRuns" : "ReadMergeWrite";
                         });

}  // namespace
}  // namespace tessera::engine
