#include "engine/input_progress.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "store/memory/memory_tile_store.h"
#include "store/meta_keys.h"

namespace tessera::engine {
namespace {

std::string HashHex(std::string_view s) {
  ContentHash h;
  h.Update(s);
  return h.Hex();
}

InputProgress Record(std::string_view content, uint64_t offset) {
  InputProgress p;
  p.offset = offset;
  p.hash = HashHex(content.substr(0, offset));
  p.head_hash = HashHex(content.substr(0, std::min<uint64_t>(offset, kHeadBytes)));
  return p;
}

class InputProgressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             fmt::format("input_progress_test_{}_{}", getpid(),
                         ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
  }
  void TearDown() override { std::filesystem::remove(path_); }
  void Write(std::string_view bytes) {
    std::ofstream f(path_, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  std::string path_;
};

TEST(ContentHashTest, CopiesContinueIndependentlyAndDigestingDoesNotDisturb) {
  ContentHash a;
  EXPECT_EQ(a.Hex(), HashHex(""));
  a.Update("hello ");
  ContentHash b = a;
  EXPECT_EQ(a.Hex(), HashHex("hello "));  // digesting leaves the state as it was
  a.Update("world");
  b.Update("there");
  EXPECT_EQ(a.Hex(), HashHex("hello world"));
  EXPECT_EQ(b.Hex(), HashHex("hello there"));
  EXPECT_EQ(a.size(), 11u);
  EXPECT_EQ(a.Hex().size(), 32u);
}

TEST_F(InputProgressTest, LongestCommittedPrefixWins) {
  std::string content;
  for (int i = 0; i < 3000; ++i) content += fmt::format("{{\"i\":{}}}\n", i);
  Write(content);
  const size_t a = content.find('\n', 100) + 1;
  const size_t b = content.find('\n', 20000) + 1;
  InputProgress ra = Record(content, a), rb = Record(content, b);
  InputProgress other = Record("something else entirely\n", 24);
  InputProgress same_head_other_body = Record(content.substr(0, b - 5) + "xxxx\n", b);
  InputProgress beyond = Record(content + "more\n", content.size() + 5);
  auto m = MatchCommittedPrefix(path_, {&ra, &other, &same_head_other_body, &rb, &beyond}, "");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->record, &rb);
  EXPECT_FALSE(m->whole);
  EXPECT_EQ(m->tail, 0u);
  EXPECT_EQ(m->hash.Hex(), rb.hash);
  EXPECT_EQ(m->head, content.substr(0, kHeadBytes));

  InputProgress all = Record(content, content.size());
  m = MatchCommittedPrefix(path_, {&ra, &all}, "");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->record, &all);
  EXPECT_TRUE(m->whole);

  m = MatchCommittedPrefix(path_, {&other}, "");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->record, nullptr);
  m = MatchCommittedPrefix(path_, {}, "");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->record, nullptr);
}

TEST_F(InputProgressTest, TailIsTheUnterminatedPartOfTheCommittedPrefix) {
  const std::string content = "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n";
  Write(content);
  InputProgress cut = Record(content, 12);  // inside line 2
  auto m = MatchCommittedPrefix(path_, {&cut}, "");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->record, &cut);
  EXPECT_EQ(m->tail, 4u);
  EXPECT_FALSE(m->whole);
}

TEST_F(InputProgressTest, LegacyRecordsMatchByStoredFingerprint) {
  const std::string content = "{\"a\":1}\n{\"a\":2}\n";
  Write(content);
  auto fp = FingerprintStoredBytes(path_);
  ASSERT_TRUE(fp.ok());
  InputProgress legacy;
  legacy.offset = 8;
  legacy.legacy_fingerprint = *fp;
  InputProgress wrong = legacy;
  wrong.legacy_fingerprint = "0123";
  wrong.offset = 16;
  auto m = MatchCommittedPrefix(path_, {&legacy, &wrong}, *fp);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->record, &legacy);
  EXPECT_EQ(m->hash.Hex(), HashHex(content.substr(0, 8)));
}

TEST(InputProgressStoreTest, RoundTripsThroughTheStoreAndNumbersRecords) {
  store::MemoryTileStore store;
  InputProgress p = Record("{\"a\":1}\n", 8);
  p.path = "x.ndjson";
  p.lines = 1;
  p.done = true;
  store::WriteBatch batch;
  batch.meta.emplace_back(store::meta::InputProgressKey(41), EncodeInputProgress(p));
  batch.meta.emplace_back("file/abcd", R"({"path":"y","offset":5,"lines":1,"done":false})");
  ASSERT_TRUE(store.Write(batch).ok());
  auto loaded = LoadInputProgress(&store);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->next_seq, 42u);
  ASSERT_EQ(loaded->records.size(), 2u);
  const InputProgress& r = loaded->records[0];
  EXPECT_EQ(r.key, store::meta::InputProgressKey(41));
  EXPECT_EQ(r.offset, 8u);
  EXPECT_EQ(r.lines, 1);
  EXPECT_EQ(r.hash, p.hash);
  EXPECT_EQ(r.head_hash, p.head_hash);
  EXPECT_TRUE(r.done);
  EXPECT_FALSE(r.legacy());
  EXPECT_EQ(loaded->records[1].legacy_fingerprint, "abcd");
  EXPECT_EQ(loaded->records[1].offset, 5u);
}

}  // namespace
}  // namespace tessera::engine
