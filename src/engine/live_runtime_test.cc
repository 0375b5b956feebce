#include "engine/live_runtime.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "common/errors.h"
#include "common/time_util.h"
#include "engine/backfill.h"
#include "engine/catalog_store.h"
#include "engine/feature_reader.h"
#include "store/memory/memory_tile_store.h"
#include "store/meta_keys.h"

namespace tessera::engine {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z

constexpr char kViewSql[] = R"sql(
CREATE FEATURE VIEW stats AS
SELECT user_id, COUNT(*) AS n, SUM(v) AS total FROM ev GROUP BY user_id;
)sql";

std::string SourceSql(std::string_view with) {
  return fmt::format("CREATE SOURCE ev (user_id STRING, v BIGINT, ts TIMESTAMP) WITH ({});\n{}",
                     with, kViewSql);
}

// Appends `n` rows for user "u" (v = 1 each), numbered from `first`, to `path`.
void AppendRows(const std::string& path, int first, int n) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  for (int i = first; i < first + n; ++i) {
    out << fmt::format(R"({{"user_id":"u","v":1,"ts":{}}})", kT0 + int64_t{i} * 1000) << "\n";
  }
  ASSERT_TRUE(out.good());
}

class TempDir {
 public:
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "live_runtime_test_XXXXXX").string();
    EXPECT_NE(::mkdtemp(templ.data()), nullptr);
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string Path(const std::string& name) const { return (fs::path(path_) / name).string(); }

 private:
  std::string path_;
};

// One `tessera run` process over `store`: catalog loaded from the store, SQL registered, runtime
// started.
struct Run {
  std::unique_ptr<CatalogStore> catalog;
  std::unique_ptr<LiveRuntime> runtime;
  const ViewRuntime* view = nullptr;

  static std::unique_ptr<Run> Start(store::MemoryTileStore* store, const std::string& sql,
                                    LiveOptions options) {
    auto run = std::make_unique<Run>();
    auto cs = CatalogStore::Load(store);
    EXPECT_TRUE(cs.ok()) << cs.status();
    if (!cs.ok()) return nullptr;
    run->catalog = std::move(*cs);
    auto registered = run->catalog->Register(sql);
    EXPECT_TRUE(registered.ok()) << registered.status();
    run->view = run->catalog->FindView("stats");
    auto rt = LiveRuntime::Create(run->catalog.get(), store, store, options);
    EXPECT_TRUE(rt.ok()) << rt.status();
    if (!rt.ok() || run->view == nullptr) return nullptr;
    run->runtime = std::move(*rt);
    EXPECT_TRUE(run->runtime->Start().ok());
    return run;
  }

  // COUNT(*) for "u" over the day, open tiles included.
  int64_t Count(store::TileStore* store) const {
    FeatureReader reader(view, store, runtime->OpenTilesFor(view));
    auto r = reader.Read("u", kT0 + 12 * kMillisPerHour, *ParseWindows("1d", view->def->tile_ms));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->windows[0].features[0].int64() : -1;
  }

  // Waits until Count() == want (or a timeout), then checks it stays there for a while.
  void ExpectCount(store::TileStore* store, int64_t want) const {
    int64_t seen = -1;
    for (int i = 0; i < 1000 && seen != want; ++i) {
      seen = Count(store);
      ASSERT_LE(seen, want) << "a row was counted twice";
      if (seen != want) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_EQ(seen, want);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // a few flushes and polls
    EXPECT_EQ(Count(store), want);
  }
};

LiveOptions TestOptions() {
  LiveOptions o;
  o.threads = 2;
  o.flush_interval_ms = 10;
  o.follow.poll_interval = std::chrono::milliseconds(5);
  return o;
}

// Follow a file across a restart: every row is counted exactly once, whether it was in the file
// before the first start, appended while running, or appended while stopped.
TEST(LiveRuntimeFile, FollowsAFileAndResumesExactlyAfterRestart) {
  TempDir dir;
  const std::string path = dir.Path("events.ndjson");
  AppendRows(path, 0, 10);
  const std::string sql = SourceSql(fmt::format("connector = 'file', path = '{}'", path));
  store::MemoryTileStore store;

  auto run = Run::Start(&store, sql, TestOptions());
  ASSERT_NE(run, nullptr);
  run->ExpectCount(&store, 10);
  AppendRows(path, 10, 25);
  run->ExpectCount(&store, 35);
  // A partial line is not read until its newline arrives.
  {
    std::ofstream out(path, std::ios::binary | std::ios::app);
    out << fmt::format(R"({{"user_id":"u","v":1,)");
  }
  run->ExpectCount(&store, 35);
  ASSERT_TRUE(run->runtime->Stop().ok());
  auto offset = store.GetMeta(store::meta::FollowOffsetKey("ev", path));
  ASSERT_TRUE(offset.ok());
  ASSERT_TRUE(offset->has_value());
  EXPECT_EQ(std::stoull(**offset) + 21, fs::file_size(path)) << "the partial line is not in";
  run.reset();

  // Finish the partial line and add more while stopped, then restart from the same store.
  {
    std::ofstream out(path, std::ios::binary | std::ios::app);
    out << fmt::format(R"("ts":{}}})", kT0 + 35'000) << "\n";
  }
  AppendRows(path, 36, 4);
  run = Run::Start(&store, sql, TestOptions());
  ASSERT_NE(run, nullptr);
  run->ExpectCount(&store, 40);
  AppendRows(path, 40, 60);
  run->ExpectCount(&store, 100);
  ASSERT_TRUE(run->runtime->Stop().ok());
  run.reset();

  // A third start with nothing new reads nothing again.
  run = Run::Start(&store, sql, TestOptions());
  ASSERT_NE(run, nullptr);
  run->ExpectCount(&store, 100);
  ASSERT_TRUE(run->runtime->Stop().ok());
  auto final_offset = store.GetMeta(store::meta::FollowOffsetKey("ev", path));
  ASSERT_TRUE(final_offset.ok());
  EXPECT_EQ(std::stoull(final_offset->value_or("0")), fs::file_size(path));
}

// Rows from a stdin pipe are served while it is open; at end of input the pipeline flushes and
// ends, and the runtime stops cleanly.
TEST(LiveRuntimeStdin, ReadsUntilEndOfInput) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  store::MemoryTileStore store;
  LiveOptions options = TestOptions();
  options.stdin_fd = fds[0];
  auto run = Run::Start(&store, SourceSql("connector = 'stdin'"), options);
  ASSERT_NE(run, nullptr);
  auto write = [&](int first, int n) {
    std::string text;
    for (int i = first; i < first + n; ++i) {
      text += fmt::format(R"({{"user_id":"u","v":1,"ts":{}}})", kT0 + int64_t{i} * 1000) + "\n";
    }
    ASSERT_EQ(::write(fds[1], text.data(), text.size()), static_cast<ssize_t>(text.size()));
  };
  write(0, 5);
  run->ExpectCount(&store, 5);
  write(5, 7);
  run->ExpectCount(&store, 12);
  ::close(fds[1]);
  run->ExpectCount(&store, 12);
  EXPECT_TRUE(run->runtime->Stop().ok());
  // Everything was flushed: the store alone holds it.
  FeatureReader reader(run->view, &store);
  auto r =
      reader.Read("u", kT0 + 12 * kMillisPerHour, *ParseWindows("1d", run->view->def->tile_ms));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->windows[0].features[0].int64(), 12);
  ::close(fds[0]);
}

// Every metadata key the engine leaves in a DB after a backfill and a live run (file and http
// sources, rollups owed and built, names in mixed case) belongs to a registered family of
// store/meta_keys.h, and every family the engine writes shows up.
TEST(LiveRuntimeMetadata, EveryKeyWrittenBelongsToARegisteredFamily) {
  TempDir dir;
  const std::string followed = dir.Path("live.ndjson");
  AppendRows(followed, 0, 5);
  const std::string sql = fmt::format(
      "CREATE SOURCE Ev (user_id STRING, v BIGINT, ts TIMESTAMP) WITH (connector = 'file', "
      "path = '{}');\n"
      "CREATE SOURCE Hv (user_id STRING, v BIGINT, ts TIMESTAMP) WITH (connector = 'http');\n"
      "CREATE FEATURE VIEW Stats AS SELECT user_id, COUNT(*) AS n FROM Ev GROUP BY user_id;\n"
      "CREATE FEATURE VIEW hstats AS SELECT user_id, SUM(v) AS s FROM Hv GROUP BY user_id;\n",
      followed);
  store::MemoryTileStore store;
  {
    auto cs = CatalogStore::Load(&store);
    ASSERT_TRUE(cs.ok()) << cs.status();
    ASSERT_TRUE((*cs)->Register(sql).ok());
    // Two days of rows, hourly: closed hours and days get rollups, the last ones are owed.
    const std::string input = dir.Path("backfill.ndjson");
    {
      std::ofstream out(input, std::ios::binary);
      for (int h = 0; h < 50; ++h) {
        out << fmt::format(R"({{"user_id":"u/{}","v":1,"ts":{}}})", h % 3,
                           kT0 + int64_t{h} * kMillisPerHour)
            << "\n";
      }
    }
    BackfillOptions o;
    o.inputs = {input};
    o.source = "ev";
    o.pipeline.threads = 2;
    auto summary = RunBackfill(&store, cs->get(), o);
    ASSERT_TRUE(summary.ok()) << summary.status();
  }
  {
    auto cs = CatalogStore::Load(&store);
    ASSERT_TRUE(cs.ok()) << cs.status();
    auto rt = LiveRuntime::Create(cs->get(), &store, &store, TestOptions());
    ASSERT_TRUE(rt.ok()) << rt.status();
    ASSERT_TRUE((*rt)->Start().ok());
    const auto& http = (*rt)->http_connectors();
    ASSERT_EQ(http.size(), 1u);
    auto ingested =
        http[0]->Ingest("batch-1", fmt::format(R"({{"user_id":"h","v":2,"ts":{}}})", kT0) + "\n",
                        source::IngestWait::kDurable);
    ASSERT_TRUE(ingested.ok()) << ingested.status();
    AppendRows(followed, 5, 5);
    // Wait until both sources have checkpointed what they were given.
    for (int i = 0; i < 1000; ++i) {
      auto log = store.GetMeta(store::meta::LogPositionKey("Hv"));
      auto offset = store.GetMeta(store::meta::FollowOffsetKey("Ev", followed));
      ASSERT_TRUE(log.ok() && offset.ok());
      if (log->has_value() && offset->has_value() &&
          **offset == std::to_string(std::filesystem::file_size(followed))) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_TRUE((*rt)->Stop().ok());
  }

  std::set<store::meta::Family> seen;
  std::vector<std::string> unregistered;
  ASSERT_TRUE(store
                  .ScanMeta("",
                            [&](std::string_view key, std::string_view) {
                              std::optional<store::meta::Family> f = store::meta::Classify(key);
                              if (f.has_value()) {
                                seen.insert(*f);
                              } else {
                                unregistered.emplace_back(key);
                              }
                            })
                  .ok());
  EXPECT_THAT(unregistered, ::testing::IsEmpty());
  using F = store::meta::Family;
  EXPECT_EQ(seen,
            (std::set<F>{F::kCatalogStatement, F::kCatalogViewId, F::kCatalogNextViewId,
                         F::kFormatVersion, F::kSourceMaxEventTime, F::kViewHasTiles,
                         F::kOwedRollup, F::kInputProgress, F::kLogPosition, F::kFollowOffset}));
  // Spellings: case-folded where the family says so, declared elsewhere.
  EXPECT_TRUE(store.GetMeta("catalog/view/stats")->has_value());
  EXPECT_TRUE(store.GetMeta("source/ev/max_event_time")->has_value());
  EXPECT_TRUE(store.GetMeta("source/hv/max_event_time")->has_value());
  EXPECT_TRUE(store.GetMeta("log/Hv/position")->has_value());
}

TEST(LiveRuntimeConnectors, ErrorsNameTheSource) {
  store::MemoryTileStore store;
  auto cs = CatalogStore::Load(&store);
  ASSERT_TRUE(cs.ok());
  const std::string two_stdin =
      "CREATE SOURCE a (user_id STRING, ts TIMESTAMP) WITH (connector = 'stdin');\n"
      "CREATE SOURCE b (user_id STRING, ts TIMESTAMP) WITH (connector = 'STDIN');\n"
      "CREATE FEATURE VIEW va AS SELECT user_id, COUNT(*) AS n FROM a GROUP BY user_id;\n"
      "CREATE FEATURE VIEW vb AS SELECT user_id, COUNT(*) AS n FROM b GROUP BY user_id;\n";
  ASSERT_TRUE((*cs)->Register(two_stdin).ok());
  auto rt = LiveRuntime::Create(cs->get(), &store, &store, TestOptions());
  ASSERT_FALSE(rt.ok());
  EXPECT_THAT(StatusMessage(rt.status()), HasSubstr("at most one"));

  for (const auto& [with, expected] : std::vector<std::pair<std::string, std::string>>{
           {"connector = 'file'", "needs option 'path'"},
           {"connector = 'file', path = '/nonexistent/tessera/x.ndjson'", "no such file"},
           {"connector = 'kafka', topic = 't'", "needs option 'properties.bootstrap.servers'"},
           {"format = 'json'", "has no connector"}}) {
    store::MemoryTileStore s;
    auto c = CatalogStore::Load(&s);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE((*c)->Register(SourceSql(with)).ok());
    auto r = LiveRuntime::Create(c->get(), &s, &s, TestOptions());
    ASSERT_FALSE(r.ok()) << with;
    EXPECT_THAT(StatusMessage(r.status()), HasSubstr("'ev'")) << with;
    EXPECT_THAT(StatusMessage(r.status()), HasSubstr(expected)) << with;
  }
}

}  // namespace
}  // namespace tessera::engine
