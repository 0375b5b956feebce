#pragma once

#include <sys/types.h>

#include <map>
#include <string>

#include "absl/status/status.h"

// tests/kube/cluster.py (etcd + kube-apiserver 1.20.2 + kube-controller-manager, with our CRDs
// and the minimal Istio/KubeRay ones installed) as a child process, for the C++ tests that run
// the real CurlKubeClient against a real API server. Test-only (tessera_kube_testing). Needs
// python3 and `make kube-apiserver`.
//
// Thread-safety: Start/Stop/RestartApiServer from one thread; the accessors from any once started.
namespace tessera::workspaces::kube {

class KubeClusterProcess {
 public:
  KubeClusterProcess() = default;
  // Stops the cluster (closes its stdin, then SIGTERM, then SIGKILL); cluster.py removes its
  // directory.
  ~KubeClusterProcess();
  KubeClusterProcess(const KubeClusterProcess&) = delete;
  KubeClusterProcess& operator=(const KubeClusterProcess&) = delete;

  // Starts it and returns once the API server is ready (~10 s). FailedPrecondition when the
  // binaries are not installed (the caller skips), Unavailable when it did not come up.
  absl::Status Start();
  void Stop();
  // Stops kube-apiserver and starts it again on the same port and etcd: every watch breaks and a
  // watch from an older resourceVersion gets 410 Gone afterwards.
  absl::Status RestartApiServer();

  const std::string& url() const { return url_; }
  // A kubeconfig for "admin" (system:masters), "alice" or "bob" (group tessera:users).
  std::string KubeconfigPath(const std::string& user) const;

 private:
  absl::Status ReadLine(std::string* line, int timeout_ms);

  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  std::string pending_;
  std::string url_;
  std::map<std::string, std::string> kubeconfigs_;
};

}  // namespace tessera::workspaces::kube
