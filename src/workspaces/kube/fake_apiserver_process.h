#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"

// tests/kube/fake_apiserver.py (the strict fake Kubernetes API server) as a child process, for
// the tests that run the real CurlKubeClient against it. Test-only (tessera_kube_testing, which
// compiles in the script's location). Needs python3 on PATH.
//
// Thread-safety: Start/Stop from one thread; Control and the accessors from any once started.
namespace tessera::workspaces::kube {

class FakeApiServerProcess {
 public:
  static constexpr char kToken[] = "integration-test-token";

  FakeApiServerProcess() = default;
  // Stops the server (SIGTERM, then SIGKILL) and removes the TLS directory it made.
  ~FakeApiServerProcess();
  FakeApiServerProcess(const FakeApiServerProcess&) = delete;
  FakeApiServerProcess& operator=(const FakeApiServerProcess&) = delete;

  // Starts it over TLS, with its CA, client certificates and kubeconfig.yaml (contexts "token"
  // and "certs") in a fresh temporary directory, and bookmarks every `bookmark_interval_s`;
  // returns once it listens (url() is set). REQUIRES: not started.
  absl::Status Start(double bookmark_interval_s = 0.2);
  void Stop();

  const std::string& url() const { return url_; }
  const std::string& tls_dir() const { return tls_dir_; }
  std::string KubeconfigPath() const { return tls_dir_ + "/kubeconfig.yaml"; }

  // A raw request to one of the fake's test endpoints (/fake/reset, /fake/compact,
  // /fake/close-watches, /fake/requests); the parsed JSON body of a 200 answer.
  absl::StatusOr<nlohmann::json> Control(const std::string& method, const std::string& path) const;

 private:
  pid_t pid_ = -1;
  std::string tls_dir_;
  std::string url_;
};

}  // namespace tessera::workspaces::kube
