#pragma once

#include <chrono>
#include <string>

#include "workspaces/operator/reconciler.h"

namespace tessera::workspaces {

// Reads code-server's `GET /healthz` → {"status":"alive"|"expired","lastHeartbeat":<epoch ms>}
// (code-server beats on every request except /healthz itself, so probing does not keep a
// workspace alive). The URL comes from a template with {name} and {namespace}; the default
// reaches the workspace's Service from inside the cluster. Thread-safe (one curl handle per call).
class HttpHeartbeatProbe final : public HeartbeatProbe {
 public:
  static constexpr char kDefaultUrlTemplate[] =
      "http://ws-{name}.{namespace}.svc.cluster.local/healthz";

  explicit HttpHeartbeatProbe(std::string url_template = kDefaultUrlTemplate,
                              std::chrono::milliseconds timeout = std::chrono::seconds(3));

  absl::StatusOr<int64_t> LastHeartbeatMillis(const Workspace& ws) override;

  // The probe's URL for a workspace (exposed for tests).
  std::string UrlFor(const Workspace& ws) const;

 private:
  std::string url_template_;
  std::chrono::milliseconds timeout_;
};

}  // namespace tessera::workspaces
