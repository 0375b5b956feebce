// The ingest pipeline on a store with writer slots (store/slot_store.h, docs/scale_out.md):
// the same answers as on an atomic store, and exactly once across crashes, restarts on another
// "process" and fenced zombies.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "engine/catalog_store.h"
#include "engine/engine_test_util.h"
#include "engine/feature_reader.h"
#include "engine/ingest_pipeline.h"
#include "store/memory/memory_slot_store.h"
#include "store/memory/memory_tile_store.h"
#include "store/slot_store.h"

namespace tessera::engine {
namespace {

constexpr int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z

// Keyed by user (several lanes hold the same user, so tiles get cells of several slots) and by
// tag (a second key, unrelated to the lanes).
constexpr char kSql[] = R"sql(
CREATE SOURCE ev (user_id STRING, v BIGINT, tag STRING, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '1' DAY) WITH (connector = 'file');
CREATE FEATURE VIEW by_user AS
SELECT user_id, COUNT(*) AS n, SUM(v) AS total, MAX(v) AS top, LAST_VALUE(tag) AS last_tag,
       APPROX_COUNT_DISTINCT(tag) AS tags
FROM ev GROUP BY user_id;
CREATE FEATURE VIEW by_tag AS
SELECT tag, COUNT(*) AS n, SUM(v) AS total FROM ev GROUP BY tag;
)sql";

using Lanes = std::map<std::string, std::vector<std::string>>;

// Lines of `lanes` lanes ("t/0"...), each in event-time order, with unique event times (so
// LAST_VALUE has no ties), over about three days.
Lanes MakeLanes(int lanes, int rows_per_lane, uint32_t seed) {
  std::mt19937 rng(seed);
  Lanes out;
  for (int l = 0; l < lanes; ++l) {
    std::vector<std::string>& lines = out[fmt::format("t/{}", l)];
    int64_t ts = kT0 + l;  // = l modulo `lanes`: unique across lanes
    for (int i = 0; i < rows_per_lane; ++i) {
      ts += (static_cast<int64_t>(rng() % (20 * kMillisPerMinute / lanes)) + 1) * lanes;
      lines.push_back(fmt::format(R"({{"user_id":"u{}","v":{},"tag":"g{}","ts":{}}})", rng() % 13,
                                  rng() % 1000, rng() % 5, ts));
    }
  }
  return out;
}

// A partitioned source over in-memory lanes, like Kafka: with a slot store it claims each
// lane's slot and resumes from the offset committed there ("test/offset/<lane>"); chunks of
// `chunk_lines` lines, lanes taken in turn. Stops handing out chunks after `max_chunks` (a
// "crash" point), if set.
class LaneSource final : public Source {
 public:
  LaneSource(const Lanes* lanes, store::TileStore* store, size_t chunk_lines, int max_chunks = -1)
      : lanes_(lanes), store_(store), chunk_lines_(chunk_lines), max_chunks_(max_chunks) {}

  absl::Status Claim() {
    for (const auto& [lane, lines] : *lanes_) {
      next_[lane] = 0;
      if (store_->slots() == nullptr) continue;
      TESSERA_ASSIGN_OR_RETURN(store::SlotClaim claim,
                               store_->slots()->ClaimSlot(store::SlotName("ev", lane)));
      for (const auto& [k, v] : claim.meta) {
        if (k == Key(lane)) next_[lane] = std::stoul(v);
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Next> NextChunk(source::Chunk* chunk, source::ChunkOrigin* origin) override {
    if (max_chunks_ == 0) return Next::kEnd;
    for (size_t tries = 0; tries < lanes_->size(); ++tries) {
      auto it = lanes_->begin();
      std::advance(it, turn_++ % lanes_->size());
      const auto& [lane, lines] = *it;
      size_t& next = next_[lane];
      if (next >= lines.size()) continue;
      std::string data;
      const size_t end = std::min(lines.size(), next + chunk_lines_);
      for (size_t i = next; i < end; ++i) data += lines[i] + "\n";
      chunk->Assign(data, 0);
      origin->input = lane;
      origin->lane = lane;
      origin->first_line = static_cast<int64_t>(next) + 1;
      next = end;
      if (max_chunks_ > 0) --max_chunks_;
      return Next::kChunk;
    }
    return Next::kEnd;
  }
  void AddCheckpoint(store::WriteBatch* batch) override {
    for (const auto& [lane, next] : next_)
      batch->meta.emplace_back(Key(lane), std::to_string(next));
  }
  bool ClaimsSlots() const override { return true; }
  std::optional<std::string> CheckpointLane(std::string_view key) const override {
    if (!key.starts_with("test/offset/")) return std::nullopt;
    return std::string(key.substr(12));
  }

 private:
  static std::string Key(const std::string& lane) { return "test/offset/" + lane; }

  const Lanes* lanes_;
  store::TileStore* store_;
  size_t chunk_lines_;
  int max_chunks_;
  size_t turn_ = 0;
  std::map<std::string, size_t> next_;
};

// Every view's features for every key at several times and windows, as JSON lines.
std::string ReadAll(store::TileStore* store) {
  auto catalog = CatalogStore::Load(store);
  EXPECT_TRUE(catalog.ok()) << catalog.status();
  if (!catalog.ok()) return "";
  std::string out;
  for (const char* name : {"by_user", "by_tag"}) {
    const ViewRuntime* view = (*catalog)->FindView(name);
    FeatureReader reader(view, store);
    auto windows = ParseWindows("5m,1h,6h,1d,7d", view->def->tile_ms);
    EXPECT_TRUE(windows.ok());
    const bool by_tag = std::string_view(name) == "by_tag";
    std::vector<std::string> keys(by_tag ? 5 : 13);
    for (size_t k = 0; k < keys.size(); ++k) keys[k] = fmt::format("{}{}", by_tag ? "g" : "u", k);
    for (const std::string& key : keys) {
      for (int64_t at : {kT0 + 47 * kMillisPerMinute, kT0 + 26 * kMillisPerHour + 13,
                         kT0 + 3 * kMillisPerDay, kT0 + 9 * kMillisPerDay}) {
        auto r = reader.Read(key, at, *windows);
        EXPECT_TRUE(r.ok()) << r.status();
        if (r.ok()) out += r->ToJson(*view->def) + "\n";
      }
    }
  }
  return out;
}

// Runs `source` through a pipeline of each source view on `store`; returns its status.
absl::Status Ingest(store::TileStore* store, Source* source, size_t memory_budget_bytes) {
  auto catalog = CatalogStore::Load(store);
  if (!catalog.ok()) return catalog.status();
  std::vector<const ViewRuntime*> views;
  for (const auto& v : (*catalog)->views()) views.push_back(v.get());
  PipelineOptions opts;
  opts.threads = 2;
  opts.memory_budget_bytes = memory_budget_bytes;
  IngestPipeline pipeline(*views[0]->source, views, store, opts);
  TESSERA_RETURN_IF_ERROR(pipeline.Init());
  return pipeline.Run(source);
}

// The answers of the plain (atomic) store over the whole stream.
std::string Reference(const Lanes& lanes) {
  store::MemoryTileStore store;
  auto catalog = RegisterCatalog(&store, kSql);
  LaneSource source(&lanes, &store, 5);
  EXPECT_TRUE(source.Claim().ok());
  EXPECT_TRUE(Ingest(&store, &source, size_t{1} << 30).ok());
  return ReadAll(&store);
}

TEST(SlotPipelineTest, SameAnswersAsAnAtomicStoreAcrossManyFlushes) {
  const Lanes lanes = MakeLanes(3, 400, 1);
  const std::string expected = Reference(lanes);
  store::MemorySlotTileStore store;
  ASSERT_NE(RegisterCatalog(&store, kSql), nullptr);
  LaneSource source(&lanes, &store, 5);
  ASSERT_TRUE(source.Claim().ok());
  // A tiny budget: a flush (read-merge-write of every slot's cells) after about every round.
  ASSERT_TRUE(Ingest(&store, &source, 1).ok());
  EXPECT_EQ(ReadAll(&store), expected);
}

// A worker dies at each point of a commit; another process on the same table claims the slots
// and finishes the stream from the committed offsets: every row is counted exactly once.
TEST(SlotPipelineTest, CrashAtEveryCommitPointThenAnotherProcessFinishes) {
  const Lanes lanes = MakeLanes(3, 300, 2);
  const std::string expected = Reference(lanes);
  for (store::CommitFault fault :
       {store::CommitFault::kDuringCells, store::CommitFault::kBeforeCommitRow,
        store::CommitFault::kAfterCommitRow}) {
    for (int crash_after_chunks : {7, 40, 101}) {
      SCOPED_TRACE(
          fmt::format("fault {} after {} chunks", static_cast<int>(fault), crash_after_chunks));
      store::MemorySlotTileStore first;
      ASSERT_NE(RegisterCatalog(&first, kSql), nullptr);
      {
        // Commits succeed until the source has handed out `crash_after_chunks` chunks; the
        // commit that follows dies at `fault`.
        LaneSource source(&lanes, &first, 5, crash_after_chunks);
        ASSERT_TRUE(source.Claim().ok());
        ASSERT_TRUE(Ingest(&first, &source, 1).ok());  // commits all it handed out
        LaneSource more(&lanes, &first, 5, 9);
        ASSERT_TRUE(more.Claim().ok());
        first.FailNextCommit(fault);
        EXPECT_FALSE(Ingest(&first, &more, size_t{1} << 30).ok());
      }
      store::MemorySlotTileStore second(first.state());
      LaneSource rest(&lanes, &second, 5);
      ASSERT_TRUE(rest.Claim().ok());
      ASSERT_TRUE(Ingest(&second, &rest, 1).ok());
      EXPECT_EQ(ReadAll(&second), expected);
    }
  }
}

// A paused worker (a zombie) resumes after another process took its slots: its commit is fenced
// and nothing it wrote is ever read; the new owner's answers are exact.
TEST(SlotPipelineTest, FencedZombieChangesNothing) {
  const Lanes lanes = MakeLanes(2, 300, 3);
  const std::string expected = Reference(lanes);
  store::MemorySlotTileStore zombie;
  ASSERT_NE(RegisterCatalog(&zombie, kSql), nullptr);
  LaneSource first_part(&lanes, &zombie, 5, 30);
  ASSERT_TRUE(first_part.Claim().ok());
  ASSERT_TRUE(Ingest(&zombie, &first_part, 1).ok());

  store::MemorySlotTileStore owner(zombie.state());
  // The zombie reads on from where it was and, just before its commit, the new owner claims
  // every slot: the zombie's cells are written, its commit is refused.
  LaneSource zombie_rest(&lanes, &zombie, 5);
  ASSERT_TRUE(zombie_rest.Claim().ok());
  LaneSource owner_source(&lanes, &owner, 5);
  bool claimed = false;
  zombie.SetBeforeCommitHook([&](std::string_view) {
    if (!claimed) {
      EXPECT_TRUE(owner_source.Claim().ok());
    }
    claimed = true;
  });
  absl::Status fenced = Ingest(&zombie, &zombie_rest, size_t{1} << 30);
  EXPECT_EQ(fenced.code(), absl::StatusCode::kFailedPrecondition) << fenced;
  EXPECT_NE(StatusMessage(fenced).find("fenced"), std::string::npos) << fenced;
  zombie.SetBeforeCommitHook(nullptr);

  ASSERT_TRUE(Ingest(&owner, &owner_source, 1).ok());
  EXPECT_EQ(ReadAll(&owner), expected);
  // And the zombie's store object, reading, sees the same.
  EXPECT_EQ(ReadAll(&zombie), expected);
}

}  // namespace
}  // namespace tessera::engine
