#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "workspaces/kube/kube_client.h"
#include "workspaces/kube/sleep.h"

// A list-then-watch cache of one resource type in one namespace (or all), as client-go's
// informer: Run() lists, replaces the cache, then watches from the list's resourceVersion,
// applying every event to the cache and calling the handlers with the object's key.
//
//   - The latest resourceVersion is taken from every event, bookmarks included, so a re-watch
//     after the server ends a watch starts where the last one stopped.
//   - OutOfRange (410 Gone: the resourceVersion was compacted away) → relist at once;
//     a relist emits deletes for keys that vanished and updates for what changed.
//   - Other errors → exponential backoff (capped), then re-watch; after
//     Options::relist_after_failures failed watches in a row, relist.
//
// Thread-safety: Get/List/HasSynced/LastResourceVersion/counters may be called from any thread
// while Run() runs on one thread. Add handlers before Run(). Handlers run on the Run() thread,
// after the cache has been updated and without holding its lock (they may call Get/List).
// Ownership: the informer does not own the client or the clock; both must outlive it.
namespace tessera::workspaces::kube {

class Informer {
 public:
  struct Options {
    std::string label_selector;
    int watch_timeout_seconds = 300;
    int64_t backoff_initial_ms = 500;
    int64_t backoff_max_ms = 30'000;
    int relist_after_failures = 3;
    // Every this many ms, call the handlers for every cached key (0: never), so a controller
    // re-checks objects that did not change (e.g. after a missed external change).
    int64_t resync_period_ms = 0;
    const Clock* clock = SystemClock::Default();
    SleepFn sleep = SleepUnlessStopped;
  };

  // Called with (namespace, name) after an object was added, updated or deleted (or resynced).
  using Handler = std::function<void(const std::string& ns, const std::string& name)>;

  Informer(KubeClient& client, ResourceType type, std::string ns);
  Informer(KubeClient& client, ResourceType type, std::string ns, Options options);
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  void AddHandler(Handler handler);

  // Lists and watches until `stop` becomes true. Returns OK then; never returns early.
  absl::Status Run(const std::atomic<bool>& stop);

  std::optional<nlohmann::json> Get(const std::string& ns, const std::string& name) const;
  std::vector<nlohmann::json> List() const;
  // True once the first list has been stored in the cache.
  bool HasSynced() const { return synced_.load(); }
  std::string LastResourceVersion() const;
  // Calls the handlers for every cached key.
  void Resync();

  int64_t lists() const { return lists_.load(); }
  int64_t watches() const { return watches_.load(); }
  int64_t relists_on_gone() const { return relists_on_gone_.load(); }
  int64_t watch_errors() const { return watch_errors_.load(); }
  int64_t list_errors() const { return list_errors_.load(); }

 private:
  struct CacheKey {
    std::string ns;
    std::string name;
  };

  // Replaces the cache with `items`; returns the keys to notify.
  std::vector<CacheKey> Replace(std::vector<nlohmann::json> items, const std::string& rv);
  // Applies one watch event; returns false for events that carry no object key.
  bool Apply(const WatchEvent& event, CacheKey* key);
  void Notify(const std::vector<CacheKey>& keys);

  KubeClient& client_;
  const ResourceType type_;
  const std::string ns_;
  const Options options_;

  mutable SharedMutex mu_;
  std::unordered_map<std::string, nlohmann::json> cache_
      ABSL_GUARDED_BY(mu_);  // "ns/name" → object
  std::string last_rv_ ABSL_GUARDED_BY(mu_);

  Mutex handlers_mu_;
  std::vector<Handler> handlers_ ABSL_GUARDED_BY(handlers_mu_);

  std::atomic<bool> synced_{false};
  std::atomic<int64_t> lists_{0};
  std::atomic<int64_t> watches_{0};
  std::atomic<int64_t> relists_on_gone_{0};
  std::atomic<int64_t> watch_errors_{0};
  std::atomic<int64_t> list_errors_{0};
};

}  // namespace tessera::workspaces::kube
