#include "common/output_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/file_util.h"
#include "common/test_compress.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

class OutputFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "output_file_test_XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string PathOf(const std::string& name) const { return (dir_ / name).string(); }
  std::vector<std::string> Files() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }
  static std::string Read(const std::string& path) { return ReadFileToString(path).value(); }

  fs::path dir_;
};

// Text that compresses but not to nothing: lines of pseudo-random numbers.
std::string SampleText(size_t bytes) {
  std::mt19937_64 rng(42);
  std::string out;
  while (out.size() < bytes) out += fmt::format("{{\"k\":{},\"v\":{}}}\n", rng() % 1000, rng());
  out.resize(bytes);
  return out;
}

struct Format {
  std::string name;
  OutputFile::Compression compression;
  std::string magic;
  std::function<std::string(std::string_view)> decode;
};

class OutputFileFormatTest : public OutputFileTest, public ::testing::WithParamInterface<Format> {};

TEST_P(OutputFileFormatTest, RoundTripsSmallAndEmptyFiles) {
  const Format& format = GetParam();
  const std::string path = PathOf(format.name);
  auto out = OutputFile::Create(path);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)->compression(), format.compression);
  EXPECT_EQ((*out)->path(), path);
  ASSERT_TRUE((*out)->Write("a,b\n").ok());
  ASSERT_TRUE((*out)->Write("").ok());
  ASSERT_TRUE((*out)->Write("1,2\n").ok());
  EXPECT_EQ((*out)->bytes_written(), 8u);
  EXPECT_FALSE(fs::exists(path));
  ASSERT_TRUE((*out)->Commit().ok());
  out->reset();
  const std::string bytes = Read(path);
  EXPECT_EQ(bytes.substr(0, format.magic.size()), format.magic);
  EXPECT_EQ(format.decode(bytes), "a,b\n1,2\n");
  EXPECT_EQ(Files(), std::vector<std::string>{format.name});

  const std::string empty_path = PathOf("empty-" + format.name);
  auto empty = OutputFile::Create(empty_path);
  ASSERT_TRUE(empty.ok()) << empty.status();
  ASSERT_TRUE((*empty)->Commit().ok());
  EXPECT_EQ(format.decode(Read(empty_path)), "");
}

TEST_P(OutputFileFormatTest, RoundTripsWritesLargerThanTheBuffer) {
  const Format& format = GetParam();
  const std::string path = PathOf(format.name);
  const std::string text = SampleText(3 * OutputFile::kBufferBytes + 12345);
  auto out = OutputFile::Create(path);
  ASSERT_TRUE(out.ok()) << out.status();
  // Small pieces that straddle buffer boundaries, then one piece larger than the buffer.
  size_t at = 0;
  for (size_t n = 1; at < OutputFile::kBufferBytes + 100; n = n * 3 % 7919 + 1) {
    ASSERT_TRUE((*out)->Write(std::string_view(text).substr(at, n)).ok());
    at += n;
  }
  ASSERT_TRUE((*out)->Write(std::string_view(text).substr(at)).ok());
  EXPECT_EQ((*out)->bytes_written(), text.size());
  ASSERT_TRUE((*out)->Commit().ok());
  const std::string bytes = Read(path);
  if (format.compression != OutputFile::Compression::kNone) {
    EXPECT_LT(bytes.size(), text.size());
  }
  EXPECT_TRUE(format.decode(bytes) == text);
}

INSTANTIATE_TEST_SUITE_P(
    Suffixes, OutputFileFormatTest,
    ::testing::Values(Format{"out.ndjson", OutputFile::Compression::kNone, "",
                             [](std::string_view b) { return std::string(b); }},
                      Format{"out.csv.gz", OutputFile::Compression::kGzip, "\x1f\x8b",
                             test_util::Gunzip},
                      Format{"out.ndjson.zst", OutputFile::Compression::kZstd, "\x28\xb5\x2f\xfd",
                             test_util::Unzstd}),
    [](const auto& info) {
      return std::string(info.index == 0 ? "Plain" : info.index == 1 ? "Gzip" : "Zstd");
    });

TEST_F(OutputFileTest, WritesToATemporaryFileThatGoesWithoutCommit) {
  const std::string path = PathOf("out.csv.gz");
  {
    auto out = OutputFile::Create(path);
    ASSERT_TRUE(out.ok()) << out.status();
    ASSERT_TRUE((*out)->Write(SampleText(2 * OutputFile::kBufferBytes)).ok());
    const std::vector<std::string> files = Files();
    ASSERT_EQ(files.size(), 1u);
    EXPECT_EQ(files[0].rfind(fmt::format("out.csv.gz.tmp-{}-", ::getpid()), 0), 0u) << files[0];
  }
  EXPECT_TRUE(Files().empty());
}

TEST_F(OutputFileTest, OverwritesAnExistingFileAtomically) {
  const std::string path = PathOf("out.csv");
  std::ofstream(path) << "old\n";
  {
    auto abandoned = OutputFile::Create(path);
    ASSERT_TRUE(abandoned.ok()) << abandoned.status();
    ASSERT_TRUE((*abandoned)->Write("never\n").ok());
  }
  EXPECT_EQ(Read(path), "old\n");

  auto out = OutputFile::Create(path);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_TRUE((*out)->Write("new\n").ok());
  EXPECT_EQ(Read(path), "old\n");
  ASSERT_TRUE((*out)->Commit().ok());
  EXPECT_EQ(Read(path), "new\n");
  EXPECT_EQ(Files(), std::vector<std::string>{"out.csv"});
}

TEST_F(OutputFileTest, ErrorsNameThePathAndTheOsError) {
  const std::string path = PathOf("missing/out.ndjson.gz");
  auto out = OutputFile::Create(path);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(StatusMessage(out.status()),
            fmt::format("cannot create '{}': No such file or directory", path));

  EXPECT_EQ(OutputFile::Create("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OutputFile::Create(dir_.string() + "/").status().code(),
            absl::StatusCode::kInvalidArgument);

  // The target is a directory: only the rename can tell, and nothing is left behind.
  fs::create_directory(PathOf("taken"));
  auto onto_dir = OutputFile::Create(PathOf("taken"));
  ASSERT_TRUE(onto_dir.ok()) << onto_dir.status();
  const absl::Status commit = (*onto_dir)->Commit();
  EXPECT_FALSE(commit.ok());
  EXPECT_NE(StatusMessage(commit).find(PathOf("taken")), std::string::npos) << commit;
  onto_dir->reset();
  EXPECT_EQ(Files(), std::vector<std::string>{"taken"});
}

TEST_F(OutputFileTest, IsDoneAfterCommit) {
  auto out = OutputFile::Create(PathOf("out.zst"));
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_TRUE((*out)->Commit().ok());
  EXPECT_EQ((*out)->Write("x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*out)->Commit().code(), absl::StatusCode::kFailedPrecondition);
  out->reset();
  EXPECT_EQ(test_util::Unzstd(Read(PathOf("out.zst"))), "");
}

TEST_F(OutputFileTest, WritesIntoTheWorkingDirectoryForABareName) {
  const fs::path cwd = fs::current_path();
  fs::current_path(dir_);
  auto out = OutputFile::Create("bare.csv");
  absl::Status status = out.ok() ? (*out)->Write("x\n") : out.status();
  if (status.ok()) status = (*out)->Commit();
  fs::current_path(cwd);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(Read(PathOf("bare.csv")), "x\n");
}

}  // namespace
}  // namespace tessera
