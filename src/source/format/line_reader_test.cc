#include "source/format/line_reader.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/test_compress.h"
#include "source/format/read_ahead_line_reader.h"

namespace tessera::source {
namespace {

using ::testing::HasSubstr;

using test_util::Gzip;
using test_util::Zstd;

// Lines of varied length, some long, ending with '\n'.
std::string SampleText(int lines) {
  std::string s;
  for (int i = 0; i < lines; ++i) {
    s += fmt::format("{{\"i\":{},\"pad\":\"{}\"}}\n", i,
                     std::string(static_cast<size_t>(i * 7 % 97), 'x'));
  }
  return s;
}

// ReadAheadLineReader: what Next() answered.
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

class LineReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           fmt::format("line_reader_test_{}_{}", getpid(),
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

  struct ReadAll {
    std::string text;
    std::vector<uint64_t> offsets;
    std::vector<size_t> sizes;
  };

  // Reads every chunk, checking the chunk invariants on the way.
  static ReadAll Read(const std::string& path, uint64_t skip = 0, LineReaderOptions opts = {}) {
    ReadAll all;
    auto reader = LineReader::Open(path, skip, opts);
    EXPECT_TRUE(reader.ok()) << reader.status();
    if (!reader.ok()) return all;
    Chunk chunk;
    uint64_t expected_offset = skip;
    for (;;) {
      absl::StatusOr<bool> more = (*reader)->Next(&chunk);
      EXPECT_TRUE(more.ok()) << more.status();
      if (!more.ok() || !*more) break;
      EXPECT_FALSE(chunk.empty());
      EXPECT_GE(chunk.padding(), kChunkPadding);
      EXPECT_EQ(chunk.offset(), expected_offset);
      expected_offset = chunk.end_offset();
      all.text.append(chunk.data(), chunk.size());
      all.offsets.push_back(chunk.offset());
      all.sizes.push_back(chunk.size());
    }
    EXPECT_EQ((*reader)->offset(), expected_offset);
    // Stays at the end.
    absl::StatusOr<bool> again = (*reader)->Next(&chunk);
    EXPECT_TRUE(again.ok() && !*again);
    return all;
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

TEST_F(LineReaderTest, PlainFileInOneChunk) {
  const std::string text = SampleText(100);
  ReadAll all = Read(Write("a.ndjson", text));
  EXPECT_EQ(all.text, text);
  EXPECT_EQ(all.sizes.size(), 1u);
}

TEST_F(LineReaderTest, ChunksHoldWholeLines) {
  const std::string text = SampleText(500);
  for (size_t chunk_bytes : {1, 7, 64, 100, 1000, 4096}) {
    SCOPED_TRACE(chunk_bytes);
    LineReaderOptions opts;
    opts.chunk_bytes = chunk_bytes;
    ReadAll all = Read(Write("a.ndjson", text), 0, opts);
    EXPECT_EQ(all.text, text);
    for (size_t i = 0; i < all.sizes.size(); ++i) {
      EXPECT_EQ(text[all.offsets[i] + all.sizes[i] - 1], '\n');
    }
  }
}

TEST_F(LineReaderTest, LineEndingExactlyAtChunkEdge) {
  const std::string text = "0123456789\nabcdefghi\nXY\n";
  LineReaderOptions opts;
  opts.chunk_bytes = 11;  // first chunk is exactly the first line and its newline
  auto reader = LineReader::Open(Write("a", text), 0, opts);
  ASSERT_TRUE(reader.ok());
  Chunk chunk;
  ASSERT_TRUE(*(*reader)->Next(&chunk));
  EXPECT_EQ(chunk.view(), "0123456789\n");
  ASSERT_TRUE(*(*reader)->Next(&chunk));
  EXPECT_EQ(chunk.view(), "abcdefghi\n");
  EXPECT_EQ(chunk.offset(), 11u);
  ASSERT_TRUE(*(*reader)->Next(&chunk));
  EXPECT_EQ(chunk.view(), "XY\n");
  EXPECT_FALSE(*(*reader)->Next(&chunk));
}

TEST_F(LineReaderTest, LastLineWithoutNewline) {
  const std::string text = "{\"a\":1}\n{\"a\":2}";
  for (size_t chunk_bytes : {3, 8, 9, 100}) {
    LineReaderOptions opts;
    opts.chunk_bytes = chunk_bytes;
    ReadAll all = Read(Write("a", text), 0, opts);
    EXPECT_EQ(all.text, text);
    EXPECT_EQ(all.sizes.back(), 7u);
  }
}

TEST_F(LineReaderTest, EmptyFile) {
  ReadAll all = Read(Write("empty", ""));
  EXPECT_TRUE(all.text.empty());
  EXPECT_TRUE(all.sizes.empty());
}

TEST_F(LineReaderTest, LongLineGrowsTheChunk) {
  const std::string long_line = std::string(10000, 'z') + "\n";
  const std::string text = "short\n" + long_line + "tail\n";
  LineReaderOptions opts;
  opts.chunk_bytes = 64;
  ReadAll all = Read(Write("a", text), 0, opts);
  EXPECT_EQ(all.text, text);
  ASSERT_GE(all.sizes.size(), 2u);
  EXPECT_EQ(all.sizes[0], 6u);
  EXPECT_GE(all.sizes[1], long_line.size());
}

TEST_F(LineReaderTest, LineLongerThanTheLimitFails) {
  LineReaderOptions opts;
  opts.chunk_bytes = 16;
  opts.max_line_bytes = 100;
  const std::string path = Write("a", "ok\n" + std::string(101, 'z') + "\nnext\n");
  auto reader = LineReader::Open(path, 0, opts);
  ASSERT_TRUE(reader.ok());
  Chunk chunk;
  ASSERT_TRUE(*(*reader)->Next(&chunk));
  EXPECT_EQ(chunk.view(), "ok\n");
  absl::StatusOr<bool> r = (*reader)->Next(&chunk);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(StatusMessage(r.status()), HasSubstr(path));
  EXPECT_THAT(StatusMessage(r.status()), HasSubstr("byte 3"));

  // A line of exactly the limit is fine.
  ReadAll all = Read(Write("b", std::string(100, 'y') + "\n"), 0, opts);
  EXPECT_EQ(all.text.size(), 101u);
}

TEST_F(LineReaderTest, SteadyLoopReusesTheChunkBuffer) {
  LineReaderOptions opts;
  opts.chunk_bytes = 256;
  auto reader = LineReader::Open(Write("a", SampleText(300)), 0, opts);
  ASSERT_TRUE(reader.ok());
  Chunk chunk;
  ASSERT_TRUE(*(*reader)->Next(&chunk));
  const char* buffer = chunk.data();
  while (*(*reader)->Next(&chunk)) EXPECT_EQ(chunk.data(), buffer);
}

TEST_F(LineReaderTest, GzipSingleAndMultiMember) {
  const std::string a = SampleText(300);
  const std::string b = "{\"second\":true}\n" + SampleText(50);
  EXPECT_EQ(Read(Write("a.ndjson.gz", Gzip(a))).text, a);
  LineReaderOptions opts;
  opts.chunk_bytes = 100;
  ReadAll multi = Read(Write("m.ndjson.gz", Gzip(a) + Gzip(b) + Gzip("")), 0, opts);
  EXPECT_EQ(multi.text, a + b);
  // Trailing zero bytes after the last member are ignored, as gzip(1) does.
  EXPECT_EQ(Read(Write("z.gz", Gzip(a) + std::string(10, '\0'))).text, a);
  // A member boundary inside a line.
  EXPECT_EQ(Read(Write("split.gz", Gzip("{\"a\":") + Gzip("1}\n"))).text, "{\"a\":1}\n");
}

TEST_F(LineReaderTest, ZstdSingleAndMultiFrame) {
  const std::string a = SampleText(300);
  const std::string b = SampleText(20);
  EXPECT_EQ(Read(Write("a.ndjson.zst", Zstd(a))).text, a);
  LineReaderOptions opts;
  opts.chunk_bytes = 100;
  EXPECT_EQ(Read(Write("m.zst", Zstd(a) + Zstd(b)), 0, opts).text, a + b);
}

TEST_F(LineReaderTest, LargeCompressedStreams) {
  std::string big;
  while (big.size() < (3u << 20)) big += SampleText(1000);
  LineReaderOptions opts;
  opts.chunk_bytes = 64 * 1024;
  EXPECT_EQ(Read(Write("big.gz", Gzip(big)), 0, opts).text, big);
  EXPECT_EQ(Read(Write("big.zst", Zstd(big)), 0, opts).text, big);
}

TEST_F(LineReaderTest, DetectsCompressionByMagicNotExtension) {
  const std::string text = SampleText(10);
  auto gz = LineReader::Open(Write("really_gzip.txt", Gzip(text)));
  ASSERT_TRUE(gz.ok());
  EXPECT_EQ((*gz)->compression(), LineReader::Compression::kGzip);
  auto zst = LineReader::Open(Write("really_zstd", Zstd(text)));
  ASSERT_TRUE(zst.ok());
  EXPECT_EQ((*zst)->compression(), LineReader::Compression::kZstd);
  auto plain = LineReader::Open(Write("plain.gz", text));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ((*plain)->compression(), LineReader::Compression::kNone);
  EXPECT_EQ(Read(Write("plain.gz", text)).text, text);
  EXPECT_EQ(Read(Write("really_gzip.txt", Gzip(text))).text, text);
  // Shorter than any magic number.
  EXPECT_EQ(Read(Write("tiny", "x")).text, "x");
  EXPECT_EQ(Read(Write("tiny2", "\x1f")).text, "\x1f");
}

absl::Status ReadToEnd(const std::string& path) {
  auto reader = LineReader::Open(path);
  if (!reader.ok()) return reader.status();
  Chunk chunk;
  for (;;) {
    absl::StatusOr<bool> more = (*reader)->Next(&chunk);
    if (!more.ok()) return more.status();
    if (!*more) return absl::OkStatus();
  }
}

TEST_F(LineReaderTest, MissingFile) {
  const std::string path = (dir_ / "nope.ndjson").string();
  auto reader = LineReader::Open(path);
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(StatusMessage(reader.status()), HasSubstr(path));
  EXPECT_FALSE(LineReader::Open(dir_.string()).ok());
}

TEST_F(LineReaderTest, CorruptAndTruncatedGzip) {
  std::string text;
  for (int i = 0; i < 20; ++i) text += SampleText(200);
  std::string gz = Gzip(text);
  std::string corrupt = gz;
  for (size_t i = gz.size() / 2; i < gz.size() / 2 + 16; ++i) corrupt[i] ^= 0x5a;
  const std::string corrupt_path = Write("corrupt.gz", corrupt);
  absl::Status s = ReadToEnd(corrupt_path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(StatusMessage(s), HasSubstr(corrupt_path));
  EXPECT_THAT(StatusMessage(s), HasSubstr("byte"));

  const std::string truncated_path = Write("trunc.gz", gz.substr(0, gz.size() - 100));
  s = ReadToEnd(truncated_path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(StatusMessage(s), HasSubstr("truncated"));
  EXPECT_THAT(StatusMessage(s), HasSubstr(truncated_path));

  // Garbage after a complete member.
  s = ReadToEnd(Write("garbage.gz", gz + "not gzip"));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
}

TEST_F(LineReaderTest, LinesBeforeAStreamFailureComeFirstThenTheError) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += SampleText(200);
  const std::string gz = Gzip(text);
  for (size_t cut : {gz.size() - 100, gz.size() / 2}) {
    const std::string path = Write("trunc.gz", gz.substr(0, cut));
    LineReaderOptions opts;
    opts.chunk_bytes = size_t{1} << 20;  // larger than the whole text: one read, then the error
    auto reader = LineReader::Open(path, 0, opts);
    ASSERT_TRUE(reader.ok()) << reader.status();
    Chunk chunk;
    std::string got;
    absl::Status error;
    for (int calls = 0; calls < 100; ++calls) {
      absl::StatusOr<bool> more = (*reader)->Next(&chunk);
      if (!more.ok()) {
        error = more.status();
        break;
      }
      ASSERT_TRUE(*more) << "a failed stream must not end cleanly";
      EXPECT_EQ(chunk.offset(), got.size());
      got.append(chunk.view());
    }
    EXPECT_EQ(error.code(), absl::StatusCode::kDataLoss) << error;
    // Every complete line that was decompressed, and nothing of the cut line.
    ASSERT_FALSE(got.empty());
    EXPECT_EQ(got.back(), '\n');
    EXPECT_EQ(text.compare(0, got.size(), got), 0);
    EXPECT_GT(got.size(), text.size() * (cut == gz.size() / 2 ? 2 : 8) / 10);
    EXPECT_EQ((*reader)->offset(), got.size());
    // The error stays.
    EXPECT_EQ((*reader)->Next(&chunk).status().code(), absl::StatusCode::kDataLoss);
  }
}

TEST_F(LineReaderTest, CorruptAndTruncatedZstd) {
  std::string text;
  for (int i = 0; i < 20; ++i) text += SampleText(200);
  std::string zst = Zstd(text);
  std::string corrupt = zst;
  for (size_t i = zst.size() / 2; i < zst.size() / 2 + 16; ++i) corrupt[i] ^= 0x5a;
  const std::string corrupt_path = Write("corrupt.zst", corrupt);
  absl::Status s = ReadToEnd(corrupt_path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(StatusMessage(s), HasSubstr(corrupt_path));

  const std::string truncated_path = Write("trunc.zst", zst.substr(0, zst.size() - 100));
  s = ReadToEnd(truncated_path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(StatusMessage(s), HasSubstr("truncated"));
}

TEST_F(LineReaderTest, SkipBytesResumesAfterAChunk) {
  const std::string text = SampleText(400);
  const std::vector<std::pair<std::string, std::string>> files = {
      {"plain", text}, {"gz", Gzip(text)}, {"zst", Zstd(text)}};
  LineReaderOptions opts;
  opts.chunk_bytes = 500;
  for (const auto& [name, bytes] : files) {
    SCOPED_TRACE(name);
    const std::string path = Write(name, bytes);
    ReadAll all = Read(path, 0, opts);
    ASSERT_GE(all.offsets.size(), 3u);
    for (size_t i = 1; i < all.offsets.size(); ++i) {
      const uint64_t resume = all.offsets[i];
      ReadAll rest = Read(path, resume, opts);
      EXPECT_EQ(rest.text, text.substr(resume));
      ASSERT_FALSE(rest.offsets.empty());
      EXPECT_EQ(rest.offsets.front(), resume);
    }
    // Resuming exactly at the end yields nothing; past the end is an error.
    EXPECT_TRUE(Read(path, text.size(), opts).text.empty());
    auto beyond = LineReader::Open(path, text.size() + 1, opts);
    ASSERT_FALSE(beyond.ok());
    EXPECT_EQ(beyond.status().code(), absl::StatusCode::kOutOfRange);
    EXPECT_THAT(StatusMessage(beyond.status()), HasSubstr(path));
  }
}

TEST_F(LineReaderTest, ReadsStdin) {
  const std::string text = "{\"a\":1}\n{\"a\":2}\n";
  const std::string path = Write("in", text);
  const int saved = dup(STDIN_FILENO);
  ASSERT_GE(saved, 0);
  const int fd = open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_GE(dup2(fd, STDIN_FILENO), 0);
  close(fd);
  ReadAll all = Read("-");
  EXPECT_EQ(all.text, text);
  ASSERT_GE(dup2(saved, STDIN_FILENO), 0);
  close(saved);
}

TEST(ChunkTest, AssignKeepsPadding) {
  Chunk chunk;
  EXPECT_TRUE(chunk.empty());
  chunk.Assign("abc", 42);
  EXPECT_EQ(chunk.view(), "abc");
  EXPECT_EQ(chunk.offset(), 42u);
  EXPECT_EQ(chunk.end_offset(), 45u);
  EXPECT_GE(chunk.padding(), kChunkPadding);
  chunk.Assign("", 0);
  EXPECT_TRUE(chunk.empty());
  EXPECT_GE(chunk.padding(), kChunkPadding);
}

TEST_F(LineReaderTest, ReadAheadSameChunksAsThePlainReader) {
  const std::string text = SampleText(20000) + "last line without newline";
  const std::string plain = Write("a.ndjson", text);
  const std::string gz = Write("a.ndjson.gz", test_util::Gzip(text));
  for (size_t chunk_bytes : {size_t{4096}, size_t{65536}, size_t{1} << 22}) {
    ExpectSameAnswers(plain, 0, chunk_bytes);
    ExpectSameAnswers(gz, 0, chunk_bytes);
  }
  const size_t second_line = text.find('\n') + 1;
  ExpectSameAnswers(plain, second_line, 4096);
}

TEST_F(LineReaderTest, ReadAheadEmptyFileEndsAtOnce) {
  ExpectSameAnswers(Write("empty", ""), 0, 4096);
}

TEST_F(LineReaderTest, ReadAheadLinesBeforeAStreamFailureThenTheErrorAgain) {
  const std::string gz = test_util::Gzip(SampleText(40000));
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

TEST_F(LineReaderTest, ReadAheadDestroyedPartWayWithAReadInFlight) {
  const std::string path = Write("b.ndjson", SampleText(50000));
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
