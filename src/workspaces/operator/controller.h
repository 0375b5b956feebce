#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "common/clock.h"
#include "workspaces/kube/cached_reader.h"
#include "workspaces/kube/kube_client.h"
#include "workspaces/operator/reconciler.h"

namespace tessera::workspaces {

struct ControllerOptions {
  std::string ns;   // namespace to watch; "" = all namespaces
  int workers = 2;  // concurrent reconciles (of different workspaces)
  // Every workspace is reconciled again this often even without a change (level-triggered
  // safety net; also how activity checks of quiet workspaces keep running).
  int64_t resync_period_ms = 5 * 60'000;
  int64_t backoff_base_ms = 50;
  int64_t backoff_max_ms = 60'000;
  const Clock* clock = SystemClock::Default();
  // When set, the informers serve their types' reads through it while Run() runs (the
  // reconciler reads through the same one).
  kube::CachedReader* reader = nullptr;
};

// Drives the Reconciler: informers (list-then-watch) on Workspaces, WorkspaceTemplates and every
// kind of child the operator manages (labelled managed-by tessera-operator) feed one
// de-duplicating work queue of "namespace/name" workspace keys;
// `workers` threads reconcile them. A failed reconcile is requeued with per-key exponential
// backoff; a successful one forgets the backoff and is requeued after what it asked for.
// A template change enqueues every workspace that uses it; a child change enqueues its owner.
//
// Run() blocks until `stop`; the operator calls it only while it leads. Thread-safety: Run()
// once, on one thread.
class Controller {
 public:
  Controller(kube::KubeClient* client, Reconciler* reconciler, ControllerOptions options);

  void Run(const std::atomic<bool>& stop);

  // Keys reconciled so far (successfully or not), for tests and logs.
  int64_t reconciles() const { return reconciles_.load(); }

 private:
  kube::KubeClient* client_;
  Reconciler* reconciler_;
  ControllerOptions options_;
  std::atomic<int64_t> reconciles_{0};
};

}  // namespace tessera::workspaces
