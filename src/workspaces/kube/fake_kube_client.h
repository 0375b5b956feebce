#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "workspaces/kube/kube_client.h"

// An in-memory KubeClient for unit tests of the components that talk to Kubernetes (operator,
// informers, leader election). It behaves like an API server where it matters to a controller:
//
//   - one global resourceVersion counter bumped by every write (as etcd); writes that change
//     nothing keep the old resourceVersion and emit no event;
//   - Create: AlreadyExists when the name is taken; generateName; uid, creationTimestamp,
//     generation 1. Update/MergePatch/Apply: a non-empty metadata.resourceVersion is a
//     precondition (Aborted when it moved on); metadata.generation is bumped when anything but
//     metadata and status changes;
//   - the status subresource for the types in Options::status_subresource_plurals: a write to the
//     main resource keeps the stored status, a status write changes only the status;
//   - Apply is NOT server-side apply: there is no field ownership and `force` is ignored. It
//     creates the object, or JSON-merges the applied object into the stored one;
//   - Delete honors preconditions and finalizers (sets metadata.deletionTimestamp; the object
//     goes away when an update removes the last finalizer) and garbage-collects dependents by
//     metadata.ownerReferences[].uid (Orphan removes the reference instead). Foreground deletion
//     is treated as Background;
//   - Watch replays the stored event history after the given resourceVersion (OutOfRange when it
//     is older than the history, see CompactHistory), sends synthetic ADDED events for a watch
//     from "" or "0", sends BOOKMARKs while idle, and follows new writes until the timeout,
//     cancel, CloseWatches() or fn returning false. Label selectors apply per event with the
//     API server's transitions: an object that starts matching is ADDED, one that stops
//     matching is DELETED;
//   - List ignores `limit` (it returns everything at once, which the interface allows).
//
// Label selectors support `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`;
// field selectors `path=value` / `path!=value` on string fields (e.g. metadata.name).
//
// Thread-safety: all methods are safe to call concurrently; Watch calls `fn` without holding
// the fake's lock, so `fn` may call the fake.
namespace tessera::workspaces::kube {

class FakeKubeClient final : public KubeClient {
 public:
  struct Options {
    const Clock* clock = SystemClock::Default();  // for timestamps; not owned
    int64_t bookmark_interval_ms = 1000;          // idle watch → BOOKMARK this often; 0: never
    size_t max_history = 10000;                   // watch events kept
    // Kinds with a status subresource, as in Kubernetes (and tests/kube/fake_apiserver.py).
    std::set<std::string> status_subresource_plurals = {"workspaces",
                                                        "statefulsets",
                                                        "rayclusters",
                                                        "pods",
                                                        "services",
                                                        "persistentvolumeclaims",
                                                        "virtualservices",
                                                        "authorizationpolicies",
                                                        "deployments",
                                                        "namespaces",
                                                        "nodes"};
  };

  FakeKubeClient();
  explicit FakeKubeClient(Options options);

  absl::StatusOr<nlohmann::json> Get(const ResourceType& type, std::string_view ns,
                                     std::string_view name) override;
  absl::StatusOr<ListResult> List(const ResourceType& type, std::string_view ns,
                                  const ListOptions& options = {}) override;
  absl::StatusOr<nlohmann::json> Create(const ResourceType& type, std::string_view ns,
                                        const nlohmann::json& object) override;
  absl::StatusOr<nlohmann::json> Update(const ResourceType& type, std::string_view ns,
                                        const nlohmann::json& object, bool status = false) override;
  absl::StatusOr<nlohmann::json> MergePatch(const ResourceType& type, std::string_view ns,
                                            std::string_view name, const nlohmann::json& patch,
                                            bool status = false) override;
  absl::StatusOr<nlohmann::json> Apply(const ResourceType& type, std::string_view ns,
                                       const nlohmann::json& object,
                                       const ApplyOptions& options = {},
                                       bool status = false) override;
  absl::Status Delete(const ResourceType& type, std::string_view ns, std::string_view name,
                      const DeleteOptions& options = {}) override;
  absl::Status Watch(const ResourceType& type, std::string_view ns, const WatchOptions& options,
                     const std::function<bool(const WatchEvent&)>& fn) override;

  // ---- Test controls ----

  // Every call so far, in order, as "VERB plural[/status] ns/name" for objects and
  // "VERB plural ns" for collections (ns omitted when empty; a cluster-scoped object is
  // "VERB plural name"). VERB: GET LIST CREATE UPDATE PATCH APPLY DELETE WATCH.
  std::vector<std::string> Calls() const;
  void ClearCalls();
  // Called with the call string before every call; a non-OK result fails the call with it
  // (nothing is changed). Pass nullptr to remove.
  void SetErrorHook(std::function<absl::Status(const std::string& call)> hook);
  // Forgets the event history: a Watch from any resourceVersion older than the current one gets
  // OutOfRange (as after an etcd compaction).
  void CompactHistory();
  // Ends every running Watch normally (as the server does at its timeout).
  void CloseWatches();
  int ActiveWatches() const;
  int64_t CurrentResourceVersion() const;

 private:
  struct Collection {
    ResourceType type;
    std::map<std::pair<std::string, std::string>, nlohmann::json> objects;  // (ns, name)
  };
  struct HistoryEvent {
    int64_t rv;
    std::string collection;
    WatchEvent event;
    nlohmann::json previous;  // kModified: the object before the write (null otherwise)
  };

  absl::Status Begin(const std::string& call);
  Collection& CollectionFor(const ResourceType& type) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<nlohmann::json> CreateLocked(const ResourceType& type, std::string_view ns,
                                              const nlohmann::json& object, std::string_view verb)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasStatus(const ResourceType& type) const;
  // Stores `object` (or erases it for kDeleted) under a new resourceVersion and records the event.
  void CommitLocked(Collection& c, const std::pair<std::string, std::string>& key,
                    nlohmann::json object, WatchEvent::Type type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes the result of an update of `existing` into the store (no-op detection, generation,
  // finalizer-completed deletion). Returns the stored object.
  nlohmann::json FinishUpdateLocked(Collection& c, const std::pair<std::string, std::string>& key,
                                    const nlohmann::json& existing, nlohmann::json updated,
                                    bool status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DeleteLocked(Collection& c, const std::pair<std::string, std::string>& key,
                    const std::string& propagation) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveLocked(Collection& c, const std::pair<std::string, std::string>& key,
                    const std::string& propagation) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NowRfc3339() const;

  const Options options_;
  mutable Mutex mu_;
  CondVar cv_;  // a write was committed, or CloseWatches()
  // The Collections (and their objects) are reached through references handed to the *Locked
  // helpers, which the analysis cannot follow: only ever touch them with mu_ held.
  std::map<std::string, Collection> collections_ ABSL_GUARDED_BY(mu_);  // by "group/plural"
  std::deque<HistoryEvent> history_ ABSL_GUARDED_BY(mu_);
  int64_t rv_ ABSL_GUARDED_BY(mu_) = 0;
  // A Watch from an older resourceVersion is Gone.
  int64_t oldest_watchable_rv_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t close_generation_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_uid_ ABSL_GUARDED_BY(mu_) = 1;
  // Changed under mu_ where a Watch reads its starting point, so a caller that saw it grow can
  // rely on the watch seeing its later writes.
  std::atomic<int> active_watches_{0};
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
  std::function<absl::Status(const std::string&)> error_hook_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tessera::workspaces::kube
