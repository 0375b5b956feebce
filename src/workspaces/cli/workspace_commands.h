#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "common/clock.h"
#include "workspaces/kube/kube_client.h"

// The cluster-mode `tessera ws` commands as plain functions over a KubeClient, so they are
// tested against a fake API without a terminal. Output goes to `out`; errors come back as a
// Status whose message is written for someone who has never used Kubernetes (what failed, why,
// what to do), never a raw API error alone.
namespace tessera::workspaces::cli {

struct CreateArgs {
  std::string name;
  std::string owner;  // required (the CLI fills in $TESSERA_OWNER or $USER)
  std::string template_name;
  std::optional<int> gpus;
  std::optional<int> ray_workers;
  bool no_ray = false;
  std::string cpu;
  std::string memory;
  std::string idle_timeout;
};

class WorkspaceCommands {
 public:
  // `ns`: the namespace to work in; `cluster` names the cluster in messages (kubeconfig source).
  WorkspaceCommands(kube::KubeClient* client, std::string ns, std::string cluster,
                    const Clock* clock, std::ostream* out);

  absl::Status Create(const CreateArgs& args);
  absl::Status List();
  absl::Status Describe(const std::string& name);
  // Prints the URL. With wait_ms > 0, first waits (watching) until the workspace is Ready.
  absl::Status Open(const std::string& name, int64_t wait_ms);
  absl::Status Stop(const std::string& name);
  absl::Status Start(const std::string& name);
  absl::Status Delete(const std::string& name);

 private:
  absl::Status SetStopped(const std::string& name, bool stopped);
  // Turns an API error into a sentence for users; `action` is e.g. "create workspace \"x\"".
  absl::Status Explain(const absl::Status& s, const std::string& action,
                       const std::string& name) const;

  kube::KubeClient* client_;
  std::string ns_;
  std::string cluster_;
  const Clock* clock_;
  std::ostream* out_;
};

}  // namespace tessera::workspaces::cli
