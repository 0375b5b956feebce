// The ingest pipeline on a store with writer slots (store/slot_store.h, docs/scale_out.md):
// the same answers as on an atomic store, and exactly once across crashes, restarts on another
// "process" and fenced zombies.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
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
  LaneSource(const Lanes* lanes, store::TileStore* store, size_t chunk_lines, int max_chunks = -1,
             bool drops_lost_lanes = false)
      : lanes_(lanes),
        store_(store),
        chunk_lines_(chunk_lines),
        max_chunks_(max_chunks),
        drops_lost_lanes_(drops_lost_lanes) {}

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
      if (lost_.contains(lane)) continue;
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
    for (const auto& [lane, next] : next_) {
      if (!lost_.contains(lane)) batch->meta.emplace_back(Key(lane), std::to_string(next));
    }
  }
  bool ClaimsSlots() const override { return true; }
  // Like Kafka's: drops the lane (its rows belong to the new owner).
  bool SlotLost(const std::string& lane) override {
    if (drops_lost_lanes_) lost_.insert(lane);
    return drops_lost_lanes_;
  }
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
  bool drops_lost_lanes_;
  size_t turn_ = 0;
  std::map<std::string, size_t> next_;
  std::set<std::string> lost_;
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
    auto windows = ParseWindows("5m,1h,6h,1d,7d,all", view->def->tile_ms);
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
  // `all` after the last row reads the writer slots' lifetime cells (engine/lifetime.h): one per
  // slot that wrote the key, and no other tile.
  auto catalog = CatalogStore::Load(&store);
  ASSERT_TRUE(catalog.ok());
  const ViewRuntime* view = (*catalog)->FindView("by_user");
  FeatureReader reader(view, &store);
  auto all = ParseWindows("all", view->def->tile_ms);
  ASSERT_TRUE(all.ok());
  auto r = reader.Read("u0", kT0 + 9 * kMillisPerDay, *all);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->windows[0].features[0].int64(), 0);
  EXPECT_LE(r->tiles_read, 3);
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

// A zombie whose source can drop a lost lane (Kafka) carries on: its commit of the lane another
// process claimed is refused and forgotten, its other lanes commit as before, and the answers
// are exact once the new owner of that lane has read it.
TEST(SlotPipelineTest, FencedZombieCarriesOnWithoutTheLostLane) {
  const Lanes lanes = MakeLanes(2, 300, 5);
  const std::string expected = Reference(lanes);
  store::MemorySlotTileStore zombie;
  ASSERT_NE(RegisterCatalog(&zombie, kSql), nullptr);
  LaneSource first_part(&lanes, &zombie, 5, 30);
  ASSERT_TRUE(first_part.Claim().ok());
  ASSERT_TRUE(Ingest(&zombie, &first_part, 1).ok());

  // While the zombie reads on, another process takes lane t/0 (and only it).
  const Lanes lost{{"t/0", lanes.at("t/0")}};
  store::MemorySlotTileStore owner(zombie.state());
  LaneSource owner_source(&lost, &owner, 5);
  LaneSource zombie_rest(&lanes, &zombie, 5, -1, /*drops_lost_lanes=*/true);
  ASSERT_TRUE(zombie_rest.Claim().ok());
  bool claimed = false;
  zombie.SetBeforeCommitHook([&](std::string_view) {
    if (!claimed) {
      EXPECT_TRUE(owner_source.Claim().ok());
    }
    claimed = true;
  });
  auto catalog = CatalogStore::Load(&zombie);
  ASSERT_TRUE(catalog.ok());
  std::vector<const ViewRuntime*> views;
  for (const auto& v : (*catalog)->views()) views.push_back(v.get());
  PipelineOptions opts;
  opts.threads = 2;
  opts.memory_budget_bytes = 1;
  IngestPipeline pipeline(*views[0]->source, views, &zombie, opts);
  ASSERT_TRUE(pipeline.Init().ok());
  ASSERT_TRUE(pipeline.Run(&zombie_rest).ok());
  EXPECT_EQ(pipeline.fenced_commits(), 1);
  zombie.SetBeforeCommitHook(nullptr);

  ASSERT_TRUE(Ingest(&owner, &owner_source, 1).ok());
  EXPECT_EQ(ReadAll(&owner), expected);
}

// ---- A slot claimed again while the pipeline still holds rows of it --------------------------

// Sum of by_tag's COUNT(*) over every tag in a window that holds the whole stream.
int64_t TotalRows(store::TileStore* store) {
  auto catalog = CatalogStore::Load(store);
  EXPECT_TRUE(catalog.ok());
  if (!catalog.ok()) return -1;
  const ViewRuntime* view = (*catalog)->FindView("by_tag");
  FeatureReader reader(view, store);
  auto windows = ParseWindows("7d", view->def->tile_ms);
  int64_t total = 0;
  for (int k = 0; k < 5; ++k) {
    auto r = reader.Read(fmt::format("g{}", k), kT0 + 3 * kMillisPerDay, *windows);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return -1;
    nlohmann::json j = nlohmann::json::parse(r->ToJson(*view->def));
    total += j["windows"]["7d"]["n"].get<int64_t>();
  }
  return total;
}

// One lane, like a KafkaSource on a slot store: claims the lane's slot when "assigned"
// (KafkaSource::Assign -> ReadStoredOffset), hands out chunks, and after `lose_after` chunks
// (rows still uncommitted: the pipeline has not flushed) the partition is lost (a revocation
// that timed out, or a lost assignment), another worker `peer` owns it and commits
// `peer_chunks` chunks, and the group gives the partition back to this worker. On that
// re-assignment it does exactly what KafkaSource::Assign does: claim the slot through this
// worker's store object, then fail with Aborted when handed_next > max(stored, committed_next),
// else continue at max(stored, handed_next).
class RebalancedLaneSource final : public Source {
 public:
  RebalancedLaneSource(const Lanes* lanes, store::TileStore* store, int lose_after, int peer_chunks)
      : lanes_(lanes), store_(store), lose_after_(lose_after), peer_chunks_(peer_chunks) {}

  absl::StatusOr<int64_t> Assign() {
    TESSERA_ASSIGN_OR_RETURN(store::SlotClaim claim,
                             store_->slots()->ClaimSlot(store::SlotName("ev", Lane())));
    int64_t stored = -1;
    for (const auto& [k, v] : claim.meta) {
      if (k == Key()) stored = std::stoll(v);
    }
    return stored;
  }

  absl::StatusOr<Next> NextChunk(source::Chunk* chunk, source::ChunkOrigin* origin) override {
    if (!error_.ok()) return error_;
    if (handed_chunks_ == lose_after_ && !regained_) {
      regained_ = true;
      // Another worker on the same table takes the partition and commits some of it.
      store::MemorySlotTileStore peer(static_cast<store::MemorySlotTileStore*>(store_)->state());
      LaneSource peer_source(lanes_, &peer, 5, peer_chunks_);
      EXPECT_TRUE(peer_source.Claim().ok());
      EXPECT_TRUE(Ingest(&peer, &peer_source, 1).ok());
      // The partition comes back: KafkaSource::Assign, which refuses to claim the slot again
      // while it holds rows of it that it did not commit.
      if (handed_ > committed_) {
        error_ = absl::AbortedError("partition assigned again while rows were not committed");
        return error_;
      }
      absl::StatusOr<int64_t> stored = Assign();
      if (!stored.ok()) return stored.status();
      handed_ = std::max(*stored, handed_);
      committed_ = std::max(committed_, *stored);
    }
    const std::vector<std::string>& lines = lanes_->at(Lane());
    if (handed_ >= static_cast<int64_t>(lines.size())) return Next::kEnd;
    std::string data;
    const int64_t end = std::min<int64_t>(static_cast<int64_t>(lines.size()), handed_ + 5);
    for (int64_t i = handed_; i < end; ++i) data += lines[i] + "\n";
    chunk->Assign(data, 0);
    origin->input = Lane();
    origin->lane = Lane();
    origin->first_line = handed_ + 1;
    handed_ = end;
    ++handed_chunks_;
    return Next::kChunk;
  }
  void AddCheckpoint(store::WriteBatch* batch) override {
    if (handed_ <= committed_) return;
    batch->meta.emplace_back(Key(), std::to_string(handed_));
    checkpoint_ = handed_;
  }
  void Committed() override { committed_ = std::max(committed_, checkpoint_); }
  bool ClaimsSlots() const override { return true; }
  std::optional<std::string> CheckpointLane(std::string_view key) const override {
    if (!key.starts_with("test/offset/")) return std::nullopt;
    return std::string(key.substr(12));
  }

 private:
  std::string Lane() const { return lanes_->begin()->first; }
  std::string Key() const { return "test/offset/" + Lane(); }

  const Lanes* lanes_;
  store::TileStore* store_;
  const int lose_after_;
  const int peer_chunks_;
  int handed_chunks_ = 0;
  bool regained_ = false;
  int64_t handed_ = 0;
  int64_t committed_ = 0;
  int64_t checkpoint_ = 0;
  absl::Status error_;
};

// The partition comes back while this worker holds 10 uncommitted rows of it, after the peer
// committed fewer (5) or more (15) of them: the worker does not claim the slot again, so its last
// flush is fenced; a restarted worker finishes from the committed offset, every row once.
TEST(SlotPipelineTest, PartitionAssignedAgainWithUncommittedRowsIsNeverCommitted) {
  const Lanes lanes = MakeLanes(1, 60, 7);
  const std::string expected = Reference(lanes);
  for (int peer_chunks : {1, 3}) {
    SCOPED_TRACE(peer_chunks);
    store::MemorySlotTileStore a;
    ASSERT_NE(RegisterCatalog(&a, kSql), nullptr);
    RebalancedLaneSource source(&lanes, &a, /*lose_after=*/2, peer_chunks);
    ASSERT_TRUE(source.Assign().ok());
    absl::Status s = Ingest(&a, &source, size_t{1} << 30);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;  // the flush was fenced
    store::MemorySlotTileStore c(a.state());
    LaneSource rest(&lanes, &c, 5);
    ASSERT_TRUE(rest.Claim().ok());
    ASSERT_TRUE(Ingest(&c, &rest, 1).ok());
    EXPECT_EQ(TotalRows(&c), 60);
    EXPECT_TRUE(ReadAll(&c) == expected) << "features differ from the atomic store";
  }
}

// A source without lanes reads its position when it is created (LogChunkSource, FollowSource,
// the Pub/Sub dedup window, a backfill's progress), so its slot is claimed first
// (ClaimSourceSlot). A second process started while the first still runs (a rolling update with
// surge, a duplicate pod) fences the first: the first's next commit fails, and the second
// counts every row once.
class PositionSource final : public Source {
 public:
  PositionSource(const std::vector<std::string>* lines, store::TileStore* store, int max_chunks)
      : lines_(lines), max_chunks_(max_chunks) {
    auto pos = store->GetMeta("test/pos");
    EXPECT_TRUE(pos.ok());
    if (pos.ok() && pos->has_value()) next_ = std::stoul(**pos);
  }
  absl::StatusOr<Next> NextChunk(source::Chunk* chunk, source::ChunkOrigin* origin) override {
    if (max_chunks_ == 0 || next_ >= lines_->size()) return Next::kEnd;
    std::string data;
    const size_t end = std::min(lines_->size(), next_ + 5);
    for (size_t i = next_; i < end; ++i) data += (*lines_)[i] + "\n";
    chunk->Assign(data, 0);
    origin->input = "f";
    origin->lane.clear();
    origin->first_line = static_cast<int64_t>(next_) + 1;
    next_ = end;
    if (max_chunks_ > 0) --max_chunks_;
    return Next::kChunk;
  }
  void AddCheckpoint(store::WriteBatch* batch) override {
    batch->meta.emplace_back("test/pos", std::to_string(next_));
  }

 private:
  const std::vector<std::string>* lines_;
  int max_chunks_;
  size_t next_ = 0;
};

TEST(SlotPipelineTest, SecondProcessOfASingleStreamSourceFencesTheFirst) {
  Lanes lanes;
  lanes[""] = MakeLanes(1, 60, 9).begin()->second;
  const std::string expected = Reference(lanes);
  store::MemorySlotTileStore old_process;
  auto catalog = RegisterCatalog(&old_process, kSql);
  ASSERT_NE(catalog, nullptr);
  const sql::SourceDef& def = *catalog->FindView("by_user")->source;
  ASSERT_TRUE(ClaimSourceSlot(&old_process, def).ok());
  PositionSource running(&lanes.at(""), &old_process, 4);
  // The new process starts: it claims the slot, then reads the committed position (0)...
  store::MemorySlotTileStore new_process(old_process.state());
  ASSERT_TRUE(ClaimSourceSlot(&new_process, def).ok());
  PositionSource fresh(&lanes.at(""), &new_process, -1);
  // ...so the old one, still running, can no longer commit.
  absl::Status fenced = Ingest(&old_process, &running, 1);
  EXPECT_EQ(fenced.code(), absl::StatusCode::kFailedPrecondition) << fenced;
  ASSERT_TRUE(Ingest(&new_process, &fresh, 1).ok());
  EXPECT_EQ(TotalRows(&new_process), 60);
  EXPECT_TRUE(ReadAll(&new_process) == expected) << "features differ from the atomic store";
}

}  // namespace
}  // namespace tessera::engine
