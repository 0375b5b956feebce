#include "engine/backfill.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/test_compress.h"
#include "engine/catalog_store.h"
#include "engine/input_progress.h"
#include "store/memory/memory_tile_store.h"
#include "store/meta_keys.h"

namespace tessera::engine {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z

constexpr char kSql[] = R"sql(
CREATE SOURCE ev (user_id STRING, v BIGINT, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '10' MINUTE) WITH (connector = 'file');
CREATE FEATURE VIEW stats AS
SELECT user_id, COUNT(*) AS n, SUM(v) AS total, LAST_VALUE(v) AS last_v
FROM ev GROUP BY user_id;
)sql";

constexpr int kUsers = 7;

// `n` event lines, each ending in '\n', over a few hours, slightly out of order (within the
// lateness, so a clean replay drops nothing).
std::string Events(int n, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::string out;
  for (int i = 0; i < n; ++i) {
    const int64_t ts = kT0 + int64_t{i} * 20'000 - static_cast<int64_t>(rng() % 300'000);
    out += fmt::format(R"({{"user_id":"u{}","v":{},"ts":{}}})"
                       "\n",
                       rng() % kUsers, rng() % 1000, ts);
  }
  return out;
}

int64_t CountLines(std::string_view s) { return std::count(s.begin(), s.end(), '\n'); }

using test_util::Gzip;

// The keys whose tiles differ (empty when equal): readable failures for big tile maps.
std::vector<std::string> Diff(const std::map<std::string, std::string>& a,
                              const std::map<std::string, std::string>& b) {
  std::vector<std::string> out;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end()) {
      out.push_back("only left: " + k);
    } else if (it->second != v) {
      out.push_back("differs: " + k);
    }
  }
  for (const auto& [k, v] : b) {
    if (!a.contains(k)) out.push_back("only right: " + k);
  }
  return out;
}

// A DB: an in-memory store with the catalog registered.
struct Db {
  Db() {
    auto cs = CatalogStore::Load(&store);
    EXPECT_TRUE(cs.ok()) << cs.status();
    catalog = std::move(*cs);
    EXPECT_TRUE(catalog->Register(kSql).ok());
  }

  absl::StatusOr<BackfillSummary> Backfill(const std::vector<std::string>& inputs) {
    BackfillOptions o;
    o.inputs = inputs;
    o.chunk_bytes = 2048;  // many chunks per file
    o.pipeline.threads = 2;
    o.pipeline.memory_budget_bytes = 16 << 10;  // several flushes per file
    return RunBackfill(&store, catalog.get(), o);
  }

  BackfillSummary BackfillOk(const std::vector<std::string>& inputs) {
    absl::StatusOr<BackfillSummary> s = Backfill(inputs);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : BackfillSummary();
  }

  // Every tile of every user, all resolutions.
  std::map<std::string, std::string> Tiles() {
    std::map<std::string, std::string> out;
    const uint32_t view = catalog->FindView("stats")->id;
    for (int u = 0; u < kUsers; ++u) {
      for (store::Resolution r :
           {store::Resolution::kBase, store::Resolution::kHour, store::Resolution::kDay}) {
        EXPECT_TRUE(store
                        .Scan(view, fmt::format("u{}", u), r, std::numeric_limits<int64_t>::min(),
                              std::numeric_limits<int64_t>::max(),
                              [&](int64_t start, std::string_view bytes) {
                                out[fmt::format("u{}/{}/{}", u, static_cast<int>(r), start)] =
                                    std::string(bytes);
                              })
                        .ok());
      }
    }
    return out;
  }

  std::map<std::string, std::string> Meta(std::string_view prefix) {
    std::map<std::string, std::string> out;
    EXPECT_TRUE(store
                    .ScanMeta(prefix, [&](std::string_view k,
                                          std::string_view v) { out[std::string(k)] = v; })
                    .ok());
    return out;
  }

  store::MemoryTileStore store;
  std::unique_ptr<CatalogStore> catalog;
};

class BackfillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           fmt::format("backfill_test_{}_{}", getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, std::string_view bytes) {
    std::string path = (dir_ / name).string();
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
  }

  // Tiles of one clean backfill of `content`.
  std::map<std::string, std::string> CleanTiles(std::string_view content) {
    Db clean;
    BackfillSummary s = clean.BackfillOk({Write("clean.ndjson", content)});
    EXPECT_EQ(s.counters.late, 0);
    return clean.Tiles();
  }

  std::filesystem::path dir_;
};

TEST_F(BackfillTest, TruncatedGzThenCompleteGzEqualsOneCleanBackfill) {
  const std::string text = Events(3000);
  const std::string gz = Gzip(text);
  Db db;
  const std::string truncated = Write("day.ndjson.gz", gz.substr(0, gz.size() * 6 / 10));
  absl::StatusOr<BackfillSummary> failed = db.Backfill({truncated});
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kDataLoss) << failed.status();
  EXPECT_THAT(StatusMessage(failed.status()), HasSubstr("truncated"));
  const size_t committed_tiles = db.Tiles().size();
  EXPECT_GT(committed_tiles, 0u);  // the readable part is in the DB

  // Retrying with the same truncated file adds no row (it may build owed rollups) and fails
  // the same way.
  auto base_tiles = [&] {
    std::map<std::string, std::string> base = db.Tiles();
    std::erase_if(base, [](const auto& kv) { return kv.first.find("/0/") == std::string::npos; });
    return base;
  };
  const std::map<std::string, std::string> after_first = base_tiles();
  EXPECT_FALSE(db.Backfill({truncated}).ok());
  EXPECT_THAT(Diff(base_tiles(), after_first), ::testing::IsEmpty());

  // The complete file continues where the truncated one stopped.
  const std::string complete = Write("day.ndjson.gz", gz);
  BackfillSummary s = db.BackfillOk({complete});
  EXPECT_EQ(s.files, 1);
  EXPECT_EQ(s.files_resumed, 1);
  EXPECT_EQ(s.files_skipped, 0);
  EXPECT_EQ(s.counters.late, 0);
  EXPECT_GT(s.counters.lines, 0);
  EXPECT_LT(s.counters.lines, 3000);
  EXPECT_THAT(Diff(db.Tiles(), CleanTiles(text)), ::testing::IsEmpty());

  // Then it is complete: skipped, under any name, plain or compressed.
  s = db.BackfillOk({complete, Write("copy.ndjson", text)});
  EXPECT_EQ(s.files_skipped, 2);
  EXPECT_EQ(s.counters.lines, 0);
  EXPECT_THAT(Diff(db.Tiles(), CleanTiles(text)), ::testing::IsEmpty());
}

TEST_F(BackfillTest, GrownPlainFileResumesAtTheOldEnd) {
  const std::string text = Events(2000, 2);
  const size_t cut = text.find('\n', text.size() / 3) + 1;
  Db db;
  const std::string path = Write("events.ndjson", text.substr(0, cut));
  BackfillSummary s = db.BackfillOk({path});
  EXPECT_EQ(s.counters.lines, CountLines(text.substr(0, cut)));
  const std::string old_copy = Write("old.ndjson", text.substr(0, cut));

  Write("events.ndjson", text);  // it grew
  s = db.BackfillOk({path});
  EXPECT_EQ(s.files_resumed, 1);
  EXPECT_EQ(s.files_skipped, 0);
  EXPECT_EQ(s.counters.lines, CountLines(text.substr(cut)));
  EXPECT_EQ(s.counters.late, 0);
  EXPECT_THAT(Diff(db.Tiles(), CleanTiles(text)), ::testing::IsEmpty());

  // Both the grown file and the old, shorter version are complete now.
  s = db.BackfillOk({path, old_copy});
  EXPECT_EQ(s.files, 2);
  EXPECT_EQ(s.files_skipped, 2);
  EXPECT_EQ(s.files_resumed, 0);
  EXPECT_EQ(s.counters.lines, 0);
  EXPECT_THAT(Diff(db.Tiles(), CleanTiles(text)), ::testing::IsEmpty());
}

TEST_F(BackfillTest, SameDataPlainThenGzIsOneInput) {
  const std::string text = Events(1500, 3);
  const std::string plain = Write("a.ndjson", text);
  const std::string gz = Write("a.ndjson.gz", Gzip(text));
  {
    Db db;
    BackfillSummary s = db.BackfillOk({plain});
    EXPECT_EQ(s.counters.lines, 1500);
    s = db.BackfillOk({gz});
    EXPECT_EQ(s.files_skipped, 1);
    EXPECT_EQ(s.counters.lines, 0);
    EXPECT_THAT(Diff(db.Tiles(), CleanTiles(text)), ::testing::IsEmpty());
  }
  {
    // In one run, too: the second is compared with the first.
    Db db;
    BackfillSummary s = db.BackfillOk({gz, plain, gz});
    EXPECT_EQ(s.files, 3);
    EXPECT_EQ(s.files_skipped, 2);
    EXPECT_EQ(s.counters.lines, 1500);
    EXPECT_THAT(Diff(db.Tiles(), CleanTiles(text)), ::testing::IsEmpty());
  }
  {
    // A plain file that holds the gz's content and more resumes after it.
    Db db;
    const std::string more = Events(1800, 3);
    ASSERT_EQ(more.compare(0, text.size(), text), 0);
    db.BackfillOk({gz});
    BackfillSummary s = db.BackfillOk({Write("more.ndjson", more)});
    EXPECT_EQ(s.files_resumed, 1);
    EXPECT_EQ(s.counters.lines, 300);
    EXPECT_THAT(Diff(db.Tiles(), CleanTiles(more)), ::testing::IsEmpty());
  }
}

TEST_F(BackfillTest, UnterminatedLastLineIsNeitherCountedTwiceNorGarbled) {
  const std::string text = Events(1000, 4);
  // Cut in the middle of line 601: that line is rejected now, decoded in full once it is whole.
  const size_t line_start = [&] {
    size_t p = 0;
    for (int i = 0; i < 600; ++i) p = text.find('\n', p) + 1;
    return p;
  }();
  {
    Db db;
    const std::string path = Write("cut.ndjson", text.substr(0, line_start + 20));
    BackfillSummary s = db.BackfillOk({path});
    EXPECT_EQ(s.counters.lines, 601);
    EXPECT_EQ(s.counters.rejected, 1);
    s = db.BackfillOk({path});  // unchanged: skipped
    EXPECT_EQ(s.files_skipped, 1);
    EXPECT_EQ(s.counters.lines, 0);
    Write("cut.ndjson", text);
    s = db.BackfillOk({path});
    EXPECT_EQ(s.files_resumed, 1);
    EXPECT_EQ(s.counters.lines, 400);  // the completed line again, and the rest
    EXPECT_EQ(s.counters.rejected, 0);
    EXPECT_THAT(Diff(db.Tiles(), CleanTiles(text)), ::testing::IsEmpty());
  }
  {
    // Cut just before the '\n': the last line is a complete row and is counted once.
    Db db;
    const size_t nl = text.find('\n', line_start);
    const std::string path = Write("cut.ndjson", text.substr(0, nl));
    BackfillSummary s = db.BackfillOk({path});
    EXPECT_EQ(s.counters.rows, 601);
    Write("cut.ndjson", text.substr(0, nl) + " \r" + text.substr(nl));  // blanks, then the rest
    s = db.BackfillOk({path});
    EXPECT_EQ(s.files_resumed, 1);
    EXPECT_EQ(s.counters.lines, 399);
    EXPECT_THAT(Diff(db.Tiles(), CleanTiles(text)), ::testing::IsEmpty());
    // Only the newline was missing.
    Db db2;
    Write("cut.ndjson", text.substr(0, nl));
    db2.BackfillOk({path});
    Write("cut.ndjson", text.substr(0, nl + 1));
    s = db2.BackfillOk({path});
    EXPECT_EQ(s.counters.lines, 0);
    EXPECT_EQ(s.files_resumed, 1);
    Write("cut.ndjson", text);
    s = db2.BackfillOk({path});
    EXPECT_EQ(s.counters.lines, 399);
    EXPECT_THAT(Diff(db2.Tiles(), CleanTiles(text)), ::testing::IsEmpty());
  }
}

TEST_F(BackfillTest, RecordsOfThePreviousFormatAreHonouredAndRewritten) {
  const std::string text = Events(1200, 5);
  const size_t cut = text.find('\n', text.size() / 2) + 1;
  const std::string full = Write("full.ndjson.gz", Gzip(text));
  absl::StatusOr<std::string> fp = FingerprintStoredBytes(full);
  ASSERT_TRUE(fp.ok()) << fp.status();

  // A DB the previous version left half way through full.ndjson.gz: the tiles of the first
  // `cut` bytes and "file/<fingerprint>" = {offset: cut}.
  Db db;
  db.BackfillOk({Write("half.ndjson", text.substr(0, cut))});
  store::WriteBatch legacy;
  for (const auto& [key, value] : db.Meta(store::meta::kInputProgressPrefix))
    legacy.meta_deletes.push_back(key);
  legacy.meta.emplace_back(
      "file/" + *fp,
      nlohmann::json{{"path", full}, {"offset", cut}, {"lines", 600}, {"done", false}}.dump());
  ASSERT_TRUE(db.store.Write(legacy).ok());

  BackfillSummary s = db.BackfillOk({full});
  EXPECT_EQ(s.files_resumed, 1);
  EXPECT_EQ(s.counters.lines, CountLines(text.substr(cut)));
  EXPECT_THAT(Diff(db.Tiles(), CleanTiles(text)), ::testing::IsEmpty());
  EXPECT_TRUE(db.Meta("file/").empty());  // rewritten in the new format
  EXPECT_FALSE(db.Meta(store::meta::kInputProgressPrefix).empty());
  s = db.BackfillOk({Write("plain.ndjson", text)});
  EXPECT_EQ(s.files_skipped, 1);

  // A complete legacy record: skipped, and migrated.
  Db db2;
  db2.BackfillOk({full});
  store::WriteBatch done;
  for (const auto& [key, value] : db2.Meta(store::meta::kInputProgressPrefix))
    done.meta_deletes.push_back(key);
  done.meta.emplace_back(
      "file/" + *fp,
      nlohmann::json{{"path", full}, {"offset", text.size()}, {"lines", 1200}, {"done", true}}
          .dump());
  ASSERT_TRUE(db2.store.Write(done).ok());
  s = db2.BackfillOk({full});
  EXPECT_EQ(s.files_skipped, 1);
  EXPECT_EQ(s.counters.lines, 0);
  EXPECT_TRUE(db2.Meta("file/").empty());
  s = db2.BackfillOk({Write("plain.ndjson", text)});
  EXPECT_EQ(s.files_skipped, 1);

  // A corrupt record is a clear error.
  store::WriteBatch corrupt;
  corrupt.meta.emplace_back("file/abc", "{");
  ASSERT_TRUE(db2.store.Write(corrupt).ok());
  absl::StatusOr<BackfillSummary> bad = db2.Backfill({full});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(StatusMessage(bad.status()), HasSubstr("file/abc"));
}

TEST_F(BackfillTest, BadInputsAreClearErrorsBeforeAnythingIsRead) {
  Db db;
  const std::string good = Write("good.ndjson", Events(10));
  const std::string missing = (dir_ / "missing.ndjson").string();
  absl::Status s = CheckBackfillInputs({good, missing});
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_THAT(StatusMessage(s), HasSubstr(missing));
  EXPECT_THAT(StatusMessage(s), HasSubstr("no such file"));

  s = CheckBackfillInputs({dir_.string()});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(StatusMessage(s), HasSubstr(dir_.string() + "' is a directory"));

  const std::string fifo = (dir_ / "fifo").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  s = CheckBackfillInputs({fifo});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(StatusMessage(s), HasSubstr("not a regular file"));

  if (geteuid() != 0) {  // root reads anything
    const std::string unreadable = Write("unreadable.ndjson", "{}\n");
    ASSERT_EQ(chmod(unreadable.c_str(), 0), 0);
    s = CheckBackfillInputs({unreadable});
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_THAT(StatusMessage(s), HasSubstr(unreadable));
  }
  EXPECT_EQ(CheckBackfillInputs({}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckBackfillInputs({good}).ok());

  // RunBackfill checks them all before reading any: nothing is written.
  absl::StatusOr<BackfillSummary> r = db.Backfill({good, dir_.string()});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(db.Tiles().empty());
}

}  // namespace
}  // namespace tessera::engine
