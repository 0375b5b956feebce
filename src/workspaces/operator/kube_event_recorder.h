#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "common/clock.h"
#include "workspaces/kube/kube_client.h"
#include "workspaces/operator/reconciler.h"

namespace tessera::workspaces {

// Records core/v1 Events on the Workspace (what `kubectl describe` and `tessera ws describe`
// show). Best effort: failures are logged to stderr and counted, never returned.
class KubeEventRecorder final : public EventRecorder {
 public:
  // `instance` names this operator replica in reportingInstance (the pod name).
  KubeEventRecorder(kube::KubeClient* client, const Clock* clock, std::string instance);

  void Record(const Workspace& ws, std::string_view type, std::string_view reason,
              std::string_view message) override;

  int64_t failures() const { return failures_.load(); }

 private:
  kube::KubeClient* client_;
  const Clock* clock_;
  std::string instance_;
  std::atomic<uint64_t> counter_{0};
  std::atomic<int64_t> failures_{0};
};

}  // namespace tessera::workspaces
