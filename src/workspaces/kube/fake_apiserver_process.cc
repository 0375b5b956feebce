#include "workspaces/kube/fake_apiserver_process.h"

#include <curl/curl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "common/errors.h"

#ifndef TESSERA_SOURCE_DIR
#error "TESSERA_SOURCE_DIR must be defined"
#endif

namespace tessera::workspaces::kube {
namespace {

size_t Append(char* data, size_t size, size_t nmemb, void* user) {
  static_cast<std::string*>(user)->append(data, size * nmemb);
  return size * nmemb;
}

}  // namespace

FakeApiServerProcess::~FakeApiServerProcess() { Stop(); }

absl::Status FakeApiServerProcess::Start(double bookmark_interval_s) {
  static std::atomic<int> counter{0};
  tls_dir_ = (std::filesystem::temp_directory_path() /
              fmt::format("kube_fake_apiserver_{}_{}", getpid(), counter.fetch_add(1)))
                 .string();
  int out[2];
  if (pipe(out) != 0) return Internal("pipe failed");
  std::string script = std::string(TESSERA_SOURCE_DIR) + "/tests/kube/fake_apiserver.py";
  std::vector<std::string> args = {"python3",
                                   script,
                                   "--port",
                                   "0",
                                   "--tls-dir",
                                   tls_dir_,
                                   "--token",
                                   kToken,
                                   "--bookmark-interval",
                                   fmt::format("{}", bookmark_interval_s)};
  pid_ = fork();
  if (pid_ < 0) return Internal("fork failed");
  if (pid_ == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp("python3", argv.data());
    _exit(127);
  }
  close(out[1]);
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (line.find('\n') == std::string::npos) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now())
                                    .count());
    if (left <= 0) break;
    pollfd pfd{out[0], POLLIN, 0};
    if (poll(&pfd, 1, left) <= 0) break;
    char buf[256];
    ssize_t n = read(out[0], buf, sizeof(buf));
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
  }
  close(out[0]);
  const std::string prefix = "listening on ";
  if (line.rfind(prefix, 0) != 0) {
    Stop();
    return Unavailable("fake_apiserver.py did not start (printed \"{}\")", line);
  }
  url_ = line.substr(prefix.size(), line.find('\n') - prefix.size());
  return absl::OkStatus();
}

void FakeApiServerProcess::Stop() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    bool exited = false;
    for (int i = 0; i < 100 && !exited; ++i) {
      exited = waitpid(pid_, nullptr, WNOHANG) == pid_;
      if (!exited) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!exited) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
  }
  if (!tls_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(tls_dir_, ec);
    tls_dir_.clear();
  }
}

absl::StatusOr<nlohmann::json> FakeApiServerProcess::Control(const std::string& method,
                                                             const std::string& path) const {
  CURL* h = curl_easy_init();
  if (h == nullptr) return Internal("curl_easy_init failed");
  std::string url = url_ + path;
  std::string body;
  std::string ca = tls_dir_ + "/ca.crt";
  std::string auth = fmt::format("Authorization: Bearer {}", kToken);
  curl_slist* headers = curl_slist_append(nullptr, auth.c_str());
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(h, CURLOPT_CAINFO, ca.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
  CURLcode rc = curl_easy_perform(h);
  long code = 0;  // NOLINT(google-runtime-int): libcurl's type
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(headers);
  curl_easy_cleanup(h);
  if (rc != CURLE_OK) return Unavailable("{} {}: {}", method, path, curl_easy_strerror(rc));
  if (code != 200) return Internal("{} {}: HTTP {}: {}", method, path, code, body);
  return nlohmann::json::parse(body);
}

}  // namespace tessera::workspaces::kube
