#include "source/format/read_ahead_line_reader.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/test_compress.h"

namespace tessera::source {
namespace {

struct Answer {
  bool ok;
  bool more;
  uint64_t offset;
  std::string data;
  std::string error;
  friend bool operator==(const Answer&, const Answer&) = default;
};

// Every answer of Next() up to and including the first "no more" or error, then one more call.
template <typename Reader>
std::vector<Answer> Drain(Reader& reader) {
  std::vector<Answer> answers;
  Chunk chunk;
  for (int calls = 0; calls < 100000; ++calls) {
    absl::StatusOr<bool> more = reader.Next(&chunk);
    Answer a{more.ok(), more.ok() && *more, 0, "", more.ok() ? "" : more.status().ToString()};
    if (a.more) {
      a.offset = chunk.offset();
      a.data = std::string(chunk.view());
      EXPECT_GE(chunk.padding(), kChunkPadding);
    }
    if (!a.more) {
      EXPECT_TRUE(chunk.empty()) << "as LineReader: no data with false or an error";
    }
    answers.push_back(a);
    if (!a.more) break;
  }
  absl::StatusOr<bool> again = reader.Next(&chunk);
  answers.push_back(
      Answer{again.ok(), again.ok() && *again, 0, "", again.ok() ? "" : again.status().ToString()});
  return answers;
}

class ReadAheadLineReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           fmt::format("read_ahead_test_{}_{}", getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, std::string_view bytes) {
    std::string path = (dir_ / name).string();
    std::ofstream f(path, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
  }

  // The read-ahead reader answers exactly as the plain one on `path`.
  void ExpectSameAnswers(const std::string& path, uint64_t skip, size_t chunk_bytes) {
    for (size_t depth : {1, 2, 5}) ExpectSameAnswers(path, skip, chunk_bytes, depth);
  }
  void ExpectSameAnswers(const std::string& path, uint64_t skip, size_t chunk_bytes, size_t depth) {
    SCOPED_TRACE(fmt::format("depth {}", depth));
    LineReaderOptions opts;
    opts.chunk_bytes = chunk_bytes;
    auto plain = LineReader::Open(path, skip, opts);
    ASSERT_TRUE(plain.ok()) << plain.status();
    auto inner = LineReader::Open(path, skip, opts);
    ASSERT_TRUE(inner.ok()) << inner.status();
    ReadAheadLineReader ahead(std::move(*inner), depth);
    const std::vector<Answer> want = Drain(**plain);
    const std::vector<Answer> got = Drain(ahead);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(got[i] == want[i]) << "answer " << i;
  }

  std::filesystem::path dir_;
};

std::string Text(int lines) {
  std::string s;
  for (int i = 0; i < lines; ++i) {
    s += fmt::format("{{\"i\":{},\"pad\":\"{}\"}}\n", i, std::string(i * 13 % 101, 'y'));
  }
  return s;
}

TEST_F(ReadAheadLineReaderTest, SameChunksAsThePlainReader) {
  const std::string text = Text(20000) + "last line without newline";
  const std::string plain = Write("a.ndjson", text);
  const std::string gz = Write("a.ndjson.gz", test_util::Gzip(text));
  for (size_t chunk_bytes : {size_t{4096}, size_t{65536}, size_t{1} << 22}) {
    ExpectSameAnswers(plain, 0, chunk_bytes);
    ExpectSameAnswers(gz, 0, chunk_bytes);
  }
  const size_t second_line = text.find('\n') + 1;
  ExpectSameAnswers(plain, second_line, 4096);
}

TEST_F(ReadAheadLineReaderTest, EmptyFileEndsAtOnce) {
  ExpectSameAnswers(Write("empty", ""), 0, 4096);
}

TEST_F(ReadAheadLineReaderTest, LinesBeforeAStreamFailureThenTheErrorAgain) {
  const std::string gz = test_util::Gzip(Text(40000));
  const std::string path = Write("trunc.gz", gz.substr(0, gz.size() / 2));
  ExpectSameAnswers(path, 0, 8192);
  LineReaderOptions opts;
  opts.chunk_bytes = 8192;
  auto inner = LineReader::Open(path, 0, opts);
  ASSERT_TRUE(inner.ok());
  ReadAheadLineReader ahead(std::move(*inner), 3);
  const std::vector<Answer> got = Drain(ahead);
  ASSERT_GE(got.size(), 3u);
  EXPECT_FALSE(got[got.size() - 2].ok);
  EXPECT_FALSE(got.back().ok);
  EXPECT_EQ(got.back().error, got[got.size() - 2].error);
}

TEST_F(ReadAheadLineReaderTest, DestroyedPartWayWithAReadInFlight) {
  const std::string path = Write("b.ndjson", Text(50000));
  for (int calls = 0; calls < 5; ++calls) {
    LineReaderOptions opts;
    opts.chunk_bytes = 4096;
    auto inner = LineReader::Open(path, 0, opts);
    ASSERT_TRUE(inner.ok());
    ReadAheadLineReader ahead(std::move(*inner), 1 + calls % 3);
    Chunk chunk;
    for (int i = 0; i < calls; ++i) ASSERT_TRUE(*ahead.Next(&chunk));
  }
}

}  // namespace
}  // namespace tessera::source
