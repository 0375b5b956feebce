#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

// Where a Kubernetes API server is and how to authenticate to it: read from a kubeconfig file
// (what `kubectl` uses) or from the service-account files every pod gets (in-cluster).
//
// Contract: the loaders are pure functions of their inputs (files, and the environment for
// LoadInCluster/LoadDefault); they are thread-safe as long as nobody changes the environment at
// the same time. Errors are InvalidArgument (a file that is not what it should be),
// NotFound (nothing configured, a missing file, context, cluster or user) or Unimplemented (an
// authentication method Tessera does not support). Messages are written for people who do not
// know Kubernetes: they say which file, what is wrong and what to do.
namespace tessera::workspaces::kube {

struct KubeConfig {
  std::string server;  // "https://10.0.0.1:443"; no trailing slash
  // Bearer token. When token_file is set, the client re-reads it (at most once a minute) because
  // bound service-account tokens rotate; `token` then holds the value read at load time.
  std::string token;
  std::string token_file;
  // Certificate authority for the server: a PEM file, or PEM text (at most one is set).
  std::string ca_file;
  std::string ca_data;
  // Client certificate authentication: PEM files or PEM text.
  std::string client_cert_file;
  std::string client_cert_data;
  std::string client_key_file;
  std::string client_key_data;
  bool insecure_skip_tls_verify = false;
  std::string default_namespace = "default";
  std::string context_name;  // empty for in-cluster
  // Where this came from, for messages: `kubeconfig /root/.kube/config, context "prod"` or
  // `in-cluster service account`.
  std::string source;
};

// The service-account files and environment of a pod; injectable for tests.
struct InClusterPaths {
  std::string token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token";
  std::string ca_file = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
  std::string namespace_file = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
  // Read from KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT when empty.
  std::string host;
  std::string port;
};

// The configuration of a pod's own service account. NotFound when not running in a pod
// (KUBERNETES_SERVICE_HOST unset) or when the token file is missing.
absl::StatusOr<KubeConfig> LoadInCluster(const InClusterPaths& paths = {});

// Parses the kubeconfig at `path` and resolves `context_override` (or the file's
// current-context when empty) to a cluster and a user. Relative file paths in the kubeconfig
// resolve against its directory. exec and auth-provider credential plugins and basic auth are
// not supported (Unimplemented, naming the user and the plugin).
absl::StatusOr<KubeConfig> LoadKubeconfig(const std::string& path,
                                          std::string_view context_override = "");

// The configuration `kubectl` would use: the first file of $KUBECONFIG (a ':'-separated list;
// only its first non-empty entry is read, contexts are not merged across files), else
// ~/.kube/config, else the in-cluster service account. NotFound with advice when none exists.
absl::StatusOr<KubeConfig> LoadDefault(std::string_view context_override = "");

}  // namespace tessera::workspaces::kube
