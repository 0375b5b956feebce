#include "common/file_util.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace tessera {
namespace {

namespace fs = std::filesystem;

class FileUtilTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "file_util_test_XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string Write(const std::string& name, const std::string& bytes) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  fs::path dir_;
};

TEST_F(FileUtilTest, ReadsWholeFilesAndSuffixes) {
  std::string big(300 * 1024, 'x');
  big[12345] = '\0';  // binary-safe
  const std::string path = Write("big.bin", big);
  EXPECT_EQ(ReadFileToString(path).value(), big);
  EXPECT_EQ(ReadFileToString(path, 12345).value(), big.substr(12345));
  EXPECT_EQ(ReadFileToString(path, big.size()).value(), "");
  EXPECT_EQ(ReadFileToString(path, big.size() + 10).value(), "");
  EXPECT_EQ(ReadFileToString(Write("empty", "")).value(), "");
}

TEST_F(FileUtilTest, ErrorsSayWhichFileAndWhy) {
  const std::string missing = (dir_ / "missing.sql").string();
  absl::StatusOr<std::string> r = ReadFileToString(missing);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find(missing), std::string::npos) << r.status();
  r = ReadFileToString(dir_.string());  // a directory
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  if (::geteuid() != 0) {  // root reads anything
    const std::string secret = Write("secret", "s");
    fs::permissions(secret, fs::perms::none);
    EXPECT_EQ(ReadFileToString(secret).status().code(), absl::StatusCode::kFailedPrecondition);
  }
}

TEST_F(FileUtilTest, ReadsPipes) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], "abc", 3), 3);
  ::close(fds[1]);
  EXPECT_EQ(ReadFileToString("/dev/fd/" + std::to_string(fds[0])).value(), "abc");
  ::close(fds[0]);
}

}  // namespace
}  // namespace tessera
