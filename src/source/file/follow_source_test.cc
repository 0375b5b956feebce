#include "source/file/follow_source.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/errors.h"
#include "source/file/stdin_source.h"
#include "store/memory/memory_tile_store.h"
#include "store/meta_keys.h"

namespace tessera::source {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Next = Source::Next;

class TempDir {
 public:
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "follow_test_XXXXXX").string();
    char* made = ::mkdtemp(templ.data());
    EXPECT_NE(made, nullptr);
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string Path(const std::string& name) const { return (fs::path(path_) / name).string(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void Append(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

// The next result of `src`: the chunk's text for kChunk, "<idle>" or "<end>" otherwise.
std::string Take(Source* src, uint64_t* offset = nullptr, int64_t* first_line = nullptr) {
  Chunk chunk;
  ChunkOrigin origin;
  absl::StatusOr<Next> next = src->NextChunk(&chunk, &origin);
  EXPECT_TRUE(next.ok()) << next.status();
  if (!next.ok()) return "<error>";
  if (*next == Next::kIdle) return "<idle>";
  if (*next == Next::kEnd) return "<end>";
  if (offset != nullptr) *offset = chunk.offset();
  if (first_line != nullptr) *first_line = origin.first_line;
  return std::string(chunk.view());
}

// Everything `src` has now, concatenated, until kIdle.
std::string Drain(Source* src) {
  std::string all;
  for (int i = 0; i < 10000; ++i) {
    std::string got = Take(src);
    if (got == "<idle>" || got == "<end>" || got == "<error>") return all;
    all += got;
  }
  ADD_FAILURE() << "source never went idle";
  return all;
}

TEST(FollowChunkSource, GrowingFileHandsOutOnlyCompleteLines) {
  TempDir dir;
  const std::string path = dir.Path("events.ndjson");
  Append(path, "l1\nl2\npar");
  store::MemoryTileStore store;
  auto src = FollowChunkSource::Create(&store, "ev", path);
  ASSERT_TRUE(src.ok()) << src.status();

  uint64_t offset = 99;
  int64_t line = 0;
  EXPECT_EQ(Take(src->get(), &offset, &line), "l1\nl2\n");
  EXPECT_EQ(offset, 0u);
  EXPECT_EQ(line, 1);
  EXPECT_EQ(Take(src->get()), "<idle>");  // "par" waits for its newline
  Append(path, "ti");
  EXPECT_EQ(Take(src->get()), "<idle>");
  Append(path, "al\nl4\n");
  EXPECT_EQ(Take(src->get(), &offset, &line), "partial\nl4\n");
  EXPECT_EQ(offset, 6u);
  EXPECT_EQ(line, 3);
  EXPECT_EQ(Take(src->get()), "<idle>");
  EXPECT_EQ((*src)->offset(path), static_cast<int64_t>(fs::file_size(path)));
}

TEST(FollowChunkSource, SmallChunksAndLongLines) {
  TempDir dir;
  const std::string path = dir.Path("events.ndjson");
  std::string text;
  for (int i = 0; i < 50; ++i) text += std::string(static_cast<size_t>(i % 7) + 1, 'x') + "\n";
  text += std::string(100, 'y') + "\n";  // longer than a chunk
  Append(path, text);
  store::MemoryTileStore store;
  FollowOptions options;
  options.chunk_bytes = 16;
  auto src = FollowChunkSource::Create(&store, "ev", path, options);
  ASSERT_TRUE(src.ok()) << src.status();
  int chunks = 0;
  std::string all;
  for (std::string got = Take(src->get()); got != "<idle>"; got = Take(src->get())) {
    ASSERT_EQ(got.back(), '\n');
    all += got;
    ++chunks;
  }
  EXPECT_EQ(all, text);
  EXPECT_GT(chunks, 10);

  options.max_line_bytes = 50;
  auto limited = FollowChunkSource::Create(&store, "ev2", path, options);
  ASSERT_TRUE(limited.ok());
  Chunk chunk;
  ChunkOrigin origin;
  absl::StatusOr<Next> next;
  do {
    next = (*limited)->NextChunk(&chunk, &origin);
  } while (next.ok() && *next == Next::kChunk);
  ASSERT_FALSE(next.ok());
  EXPECT_EQ(next.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(StatusMessage(next.status()), HasSubstr(path));
}

TEST(FollowChunkSource, DirectoryReadsFilesInNameOrderIncludingNewOnes) {
  TempDir dir;
  Append(dir.Path("b.ndjson"), "b1\n");
  Append(dir.Path("notes.txt"), "ignored\n");
  Append(dir.Path(".b.ndjson.tmp"), "ignored\n");
  Append(dir.Path(".hidden.ndjson"), "ignored\n");
  store::MemoryTileStore store;
  FollowOptions options;
  options.poll_interval = std::chrono::milliseconds(5);
  auto src = FollowChunkSource::Create(&store, "ev", dir.path(), options);
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_EQ(Take(src->get()), "b1\n");
  EXPECT_EQ(Take(src->get()), "<idle>");

  // New files, one sorting before the file already read: both are picked up, in name order.
  Append(dir.Path("c.jsonl"), "c1\n");
  Append(dir.Path("a.json"), "a1\n");
  const auto start = std::chrono::steady_clock::now();
  (*src)->WaitForData(std::chrono::milliseconds(5000));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
  EXPECT_EQ(Take(src->get()), "a1\n");
  EXPECT_EQ(Take(src->get()), "c1\n");
  EXPECT_EQ(Take(src->get()), "<idle>");

  Append(dir.Path("b.ndjson"), "b2\n");
  Append(dir.Path("c.jsonl"), "c2\n");
  EXPECT_EQ(Drain(src->get()), "b2\nc2\n");
  EXPECT_EQ((*src)->offset(dir.Path("a.json")), 3);
  EXPECT_EQ((*src)->offset(dir.Path("notes.txt")), -1);

  // A file removed after it was read is not an error.
  fs::remove(dir.Path("a.json"));
  EXPECT_EQ(Take(src->get()), "<idle>");
}

// A restart resumes each file at the offset stored with the last flushed checkpoint: lines
// handed out after it are read again (their tiles were never written), nothing else is.
TEST(FollowChunkSource, ResumesFromStoredOffsets) {
  TempDir dir;
  Append(dir.Path("a.ndjson"), "a1\na2\n");
  Append(dir.Path("b.ndjson"), "b1\n");
  store::MemoryTileStore store;
  {
    auto src = FollowChunkSource::Create(&store, "ev", dir.path());
    ASSERT_TRUE(src.ok()) << src.status();
    EXPECT_EQ(Drain(src->get()), "a1\na2\nb1\n");
    store::WriteBatch batch;
    (*src)->AddCheckpoint(&batch);
    ASSERT_EQ(batch.meta.size(), 2u);
    ASSERT_TRUE(store.Write(batch).ok());
    store::WriteBatch empty;
    (*src)->AddCheckpoint(&empty);
    EXPECT_TRUE(empty.empty()) << "unchanged offsets are not rewritten";

    Append(dir.Path("b.ndjson"), "b2\n");
    EXPECT_EQ(Drain(src->get()), "b2\n");  // handed out, but its checkpoint is never written
  }
  auto stored = store.GetMeta(store::meta::FollowOffsetKey("ev", dir.Path("b.ndjson")));
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->value_or(""), "3");

  Append(dir.Path("a.ndjson"), "a3\n");
  Append(dir.Path("c.ndjson"), "c1\n");
  auto src = FollowChunkSource::Create(&store, "ev", dir.path());
  ASSERT_TRUE(src.ok()) << src.status();
  int64_t line = 0;
  EXPECT_EQ(Take(src->get(), nullptr, &line), "a3\n");
  EXPECT_EQ(line, 1);  // counted from the resume point
  EXPECT_EQ(Drain(src->get()), "b2\nc1\n");

  // Another source following the same directory has its own offsets.
  auto other = FollowChunkSource::Create(&store, "other", dir.path());
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(Drain(other->get()), "a1\na2\na3\nb1\nb2\nc1\n");

  // A single file resumes the same way.
  store::WriteBatch batch;
  (*src)->AddCheckpoint(&batch);
  ASSERT_TRUE(store.Write(batch).ok());
  Append(dir.Path("a.ndjson"), "a4\n");
  auto single = FollowChunkSource::Create(&store, "ev", dir.Path("a.ndjson"));
  ASSERT_TRUE(single.ok());
  EXPECT_EQ(Drain(single->get()), "a4\n");
}

TEST(FollowChunkSource, CorruptStoredOffsetIsDataLoss) {
  TempDir dir;
  Append(dir.Path("a.ndjson"), "a1\n");
  store::MemoryTileStore store;
  store::WriteBatch batch;
  batch.meta.emplace_back(store::meta::FollowOffsetKey("ev", dir.Path("a.ndjson")), "x1");
  ASSERT_TRUE(store.Write(batch).ok());
  auto src = FollowChunkSource::Create(&store, "ev", dir.Path("a.ndjson"));
  ASSERT_FALSE(src.ok());
  EXPECT_EQ(src.status().code(), absl::StatusCode::kDataLoss);
}

// Source "ev"'s scan prefix "file-follow/ev/" also matches the keys of a source named
// "ev/<dir>" (quoted identifiers may hold '/'); such a key once passed for a file of `dir`
// ("/<dir>//a.ndjson" has parent "/<dir>"). Only "ev"'s own keys count.
TEST(FollowChunkSource, IgnoresOffsetsOfSourcesWhoseNameExtendsItsOwn) {
  TempDir dir;
  Append(dir.Path("a.ndjson"), "a1\na2\n");
  store::MemoryTileStore store;
  store::WriteBatch batch;
  const std::string other = "ev/" + dir.path();  // "ev/" + "/tmp/…": "ev//tmp/…"
  const std::string key = store::meta::FollowOffsetKey(other, "/a.ndjson");
  ASSERT_TRUE(key.starts_with(store::meta::FollowOffsetPrefix("ev")));
  batch.meta.emplace_back(key, "not an offset");
  batch.meta.emplace_back(store::meta::FollowOffsetKey("ev", dir.Path("a.ndjson")), "3");
  ASSERT_TRUE(store.Write(batch).ok());
  auto src = FollowChunkSource::Create(&store, "ev", dir.path());
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_EQ(Drain(src->get()), "a2\n");
}

TEST(FollowChunkSource, ShrinkingOrReplacedFileIsAnError) {
  TempDir dir;
  const std::string path = dir.Path("events.ndjson");
  Append(path, "l1\nl2\n");
  store::MemoryTileStore store;
  auto src = FollowChunkSource::Create(&store, "ev", path);
  ASSERT_TRUE(src.ok());
  EXPECT_EQ(Drain(src->get()), "l1\nl2\n");
  fs::resize_file(path, 3);
  Chunk chunk;
  ChunkOrigin origin;
  absl::StatusOr<Next> next = (*src)->NextChunk(&chunk, &origin);
  ASSERT_FALSE(next.ok());
  EXPECT_EQ(next.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(StatusMessage(next.status()), HasSubstr(path));
  EXPECT_THAT(StatusMessage(next.status()), HasSubstr("shrank"));

  // Renamed away and recreated (logrotate's default): a different file under the same name.
  const std::string path2 = dir.Path("other.ndjson");
  Append(path2, "x\n");
  auto src2 = FollowChunkSource::Create(&store, "ev", path2);
  ASSERT_TRUE(src2.ok());
  EXPECT_EQ(Drain(src2->get()), "x\n");
  fs::rename(path2, dir.Path("other.ndjson.1"));
  Append(path2, "y\nzzz\n");
  next = (*src2)->NextChunk(&chunk, &origin);
  ASSERT_FALSE(next.ok());
  EXPECT_THAT(StatusMessage(next.status()), HasSubstr("replaced"));

  // Removed in single-file mode.
  fs::remove(path2);
  next = (*src2)->NextChunk(&chunk, &origin);
  ASSERT_FALSE(next.ok());
  EXPECT_THAT(StatusMessage(next.status()), HasSubstr(path2));
}

TEST(FollowChunkSource, RefusesMissingAndCompressedInputs) {
  TempDir dir;
  store::MemoryTileStore store;
  auto missing = FollowChunkSource::Create(&store, "ev", dir.Path("nope.ndjson"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(StatusMessage(missing.status()), HasSubstr("nope.ndjson"));

  Append(dir.Path("events.ndjson.gz"), "whatever");
  auto by_name = FollowChunkSource::Create(&store, "ev", dir.Path("events.ndjson.gz"));
  ASSERT_FALSE(by_name.ok());
  EXPECT_THAT(StatusMessage(by_name.status()), HasSubstr("compressed"));

  // gzip magic bytes behind a plain name, in a followed directory.
  TempDir sub;
  Append(sub.Path("a.ndjson"), std::string("\x1f\x8b\x08\x00rest\n", 9));
  auto src = FollowChunkSource::Create(&store, "ev", sub.path());
  ASSERT_TRUE(src.ok());
  Chunk chunk;
  ChunkOrigin origin;
  absl::StatusOr<Next> next = (*src)->NextChunk(&chunk, &origin);
  ASSERT_FALSE(next.ok());
  EXPECT_THAT(StatusMessage(next.status()), HasSubstr("compressed"));
  EXPECT_THAT(StatusMessage(next.status()), HasSubstr(sub.Path("a.ndjson")));
}

class Pipe {
 public:
  Pipe() { EXPECT_EQ(::pipe(fds_), 0); }
  ~Pipe() {
    CloseWrite();
    ::close(fds_[0]);
  }
  int read_fd() const { return fds_[0]; }
  void Write(std::string_view s) {
    ASSERT_EQ(::write(fds_[1], s.data(), s.size()), static_cast<ssize_t>(s.size()));
  }
  void CloseWrite() {
    if (fds_[1] >= 0) ::close(fds_[1]);
    fds_[1] = -1;
  }

 private:
  int fds_[2] = {-1, -1};
};

TEST(StdinChunkSource, PipeIdlesBetweenWritesAndEndsAtClose) {
  Pipe pipe;
  StdinChunkSource src(pipe.read_fd());
  EXPECT_EQ(Take(&src), "<idle>");
  pipe.Write("x1\nx2\npart");
  uint64_t offset = 99;
  int64_t line = 0;
  EXPECT_EQ(Take(&src, &offset, &line), "x1\nx2\n");
  EXPECT_EQ(offset, 0u);
  EXPECT_EQ(line, 1);
  EXPECT_EQ(Take(&src), "<idle>");  // a partial line waits

  const auto start = std::chrono::steady_clock::now();
  src.WaitForData(std::chrono::milliseconds(20));  // nothing arrives: times out
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(15));

  pipe.Write("ial\n");
  src.WaitForData(std::chrono::milliseconds(5000));
  EXPECT_EQ(Take(&src, &offset, &line), "partial\n");
  EXPECT_EQ(offset, 6u);
  EXPECT_EQ(line, 3);
  pipe.Write("last");  // no newline: counts as a line at end of file
  EXPECT_EQ(Take(&src), "<idle>");
  pipe.CloseWrite();
  EXPECT_EQ(Take(&src), "last");
  EXPECT_EQ(Take(&src), "<end>");
  EXPECT_EQ(Take(&src), "<end>");
}

TEST(StdinChunkSource, LargeInputInSmallChunks) {
  Pipe pipe;
  StdinOptions options;
  options.chunk_bytes = 8;
  options.max_line_bytes = 64;
  StdinChunkSource src(pipe.read_fd(), options);
  std::string text;
  for (int i = 0; i < 40; ++i) text += std::string(static_cast<size_t>(i % 5) + 1, 'a') + "\n";
  text += std::string(30, 'b') + "\n";  // longer than a chunk, within the line limit
  pipe.Write(text);
  pipe.CloseWrite();
  std::string all;
  for (std::string got = Take(&src); got != "<end>"; got = Take(&src)) {
    ASSERT_NE(got, "<idle>");
    ASSERT_NE(got, "<error>");
    all += got;
  }
  EXPECT_EQ(all, text);

  Pipe long_line;
  StdinChunkSource limited(long_line.read_fd(), options);
  long_line.Write(std::string(100, 'c'));
  Chunk chunk;
  ChunkOrigin origin;
  absl::StatusOr<Next> next = limited.NextChunk(&chunk, &origin);
  for (int i = 0; i < 100 && next.ok(); ++i) next = limited.NextChunk(&chunk, &origin);
  ASSERT_FALSE(next.ok());
  EXPECT_EQ(next.status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace tessera::source
