#include "workspaces/local/init_commands.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "common/errors.h"

namespace tessera::workspaces::local {
namespace {

using ::testing::HasSubstr;

class InitCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = ::testing::TempDir() + "/init_commands_test.XXXXXX";
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    options_.dir = dir_;
    options_.ledger_path = dir_ + "/ledger";
    options_.env = {"PATH=/usr/bin:/bin", "GREETING=hello"};
  }

  std::string Read(const std::string& name) {
    std::ifstream in(dir_ + "/" + name);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  std::string dir_;
  InitCommandOptions options_;
};

TEST_F(InitCommandsTest, RunInOrderInTheFolderWithTheEnvironment) {
  ASSERT_TRUE(
      RunInitCommands({"echo \"$GREETING\" > a.txt", "cat a.txt > b.txt; pwd >> b.txt"}, options_)
          .ok());
  EXPECT_EQ(Read("a.txt"), "hello\n");
  EXPECT_EQ(Read("b.txt"), "hello\n" + std::filesystem::canonical(dir_).string() + "\n");
}

TEST_F(InitCommandsTest, CommandsThatRanAreNotRunAgain) {
  const std::vector<std::string> commands = {"echo run >> count.txt", "echo two >> two.txt"};
  ASSERT_TRUE(RunInitCommands(commands, options_).ok());
  ASSERT_TRUE(RunInitCommands(commands, options_).ok());
  EXPECT_EQ(Read("count.txt"), "run\n");
  EXPECT_EQ(Read("two.txt"), "two\n");
  // An edited command is a new command; the unchanged one still does not run.
  ASSERT_TRUE(RunInitCommands({"echo run >> count.txt", "echo three >> two.txt"}, options_).ok());
  EXPECT_EQ(Read("count.txt"), "run\n");
  EXPECT_EQ(Read("two.txt"), "two\nthree\n");

  InitCommandLedger ledger(options_.ledger_path);
  ASSERT_TRUE(ledger.Load().ok());
  EXPECT_TRUE(ledger.Done("echo run >> count.txt"));
  EXPECT_TRUE(ledger.Done("echo three >> two.txt"));
  EXPECT_FALSE(ledger.Done("echo four >> two.txt"));
  EXPECT_THAT(Read("ledger"), HasSubstr(InitCommandLedger::Key("echo run >> count.txt") +
                                        " echo run >> count.txt\n"));
}

TEST_F(InitCommandsTest, AFailureStopsTheStartAndIsRetriedNextTime) {
  std::vector<std::string> commands = {"echo first >> first.txt", "test -e marker",
                                       "echo third > third.txt"};
  absl::Status s = RunInitCommands(commands, options_);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(StatusMessage(s), HasSubstr("initCommands[1] exited with code 1"));
  EXPECT_THAT(StatusMessage(s), HasSubstr("test -e marker"));
  EXPECT_EQ(Read("third.txt"), "");

  std::ofstream(dir_ + "/marker") << "";
  ASSERT_TRUE(RunInitCommands(commands, options_).ok());
  EXPECT_EQ(Read("first.txt"), "first\n");  // not run a second time
  EXPECT_EQ(Read("third.txt"), "third\n");
}

TEST_F(InitCommandsTest, CommandsRunWithSetE) {
  absl::Status s = RunInitCommands({"false\necho after > after.txt"}, options_);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(Read("after.txt"), "");
}

TEST_F(InitCommandsTest, MissingLedgerIsEmptyAndKeysAreStableHex) {
  InitCommandLedger ledger(dir_ + "/none");
  ASSERT_TRUE(ledger.Load().ok());
  EXPECT_FALSE(ledger.Done("x"));
  EXPECT_EQ(InitCommandLedger::Key("x").size(), 16u);
  EXPECT_EQ(InitCommandLedger::Key("x"), InitCommandLedger::Key("x"));
  EXPECT_NE(InitCommandLedger::Key("x"), InitCommandLedger::Key("y"));
}

}  // namespace
}  // namespace tessera::workspaces::local
