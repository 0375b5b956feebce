#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/mutex.h"
#include "workspaces/kube/informer.h"
#include "workspaces/kube/kube_client.h"

// Gets objects from an informer's cache where one serves the type (and has synced), else from
// the API server. What a controller reads on every reconcile comes from the caches, so a
// reconcile that finds nothing to do makes no request at all.
//
// A cache lags the server by a watch event: a controller that acts on what it read must make
// that safe (server-side apply is idempotent; writes that depend on a read carry the
// resourceVersion as a precondition and retry on conflict). An informer with a label selector
// only holds matching objects: absence from it means "no object with that label", which is
// what a controller that labels everything it creates wants to know.
//
// Thread-safety: all methods may be called concurrently. Ownership: the client and the
// informers are not owned; an informer must be withdrawn (Serve(type, nullptr)) before it dies.
namespace tessera::workspaces::kube {

class CachedReader {
 public:
  explicit CachedReader(KubeClient* client) : client_(client) {}

  // Serve `type` from `informer` from now on (nullptr: from the API server again).
  void Serve(const ResourceType& type, const Informer* informer);

  // The object, or NotFound. From the cache when an informer that has synced serves the type.
  absl::StatusOr<nlohmann::json> Get(const ResourceType& type, std::string_view ns,
                                     std::string_view name);

  // Gets that went to the API server (for tests and metrics).
  int64_t live_gets() const { return live_gets_.load(); }

 private:
  static std::string TypeKey(const ResourceType& type);

  KubeClient* client_;
  Mutex mu_;
  std::map<std::string, const Informer*> informers_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> live_gets_{0};
};

}  // namespace tessera::workspaces::kube
