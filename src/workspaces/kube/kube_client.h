#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// The narrow interface the operator and the CLI use to talk to a Kubernetes API server.
// Objects are JSON (nlohmann::json) exactly as the API server sends them.
//
// Error mapping (every implementation): HTTP 404 → NotFound; 409 with reason AlreadyExists →
// AlreadyExists; other 409 (resourceVersion conflicts, server-side apply conflicts) → Aborted;
// 410 Gone / reason Expired (list continue or watch from a compacted resourceVersion) →
// OutOfRange; 401 → Unauthenticated; 403 → PermissionDenied; 400/422 → InvalidArgument;
// 5xx, connection failures and timeouts → Unavailable. The message carries the server's Status
// message, prefixed with the verb and the resource path.
namespace tessera::workspaces::kube {

// A resource collection: where its objects live in the API.
struct ResourceType {
  std::string group;    // "" for the core API
  std::string version;  // "v1", "v1alpha1", …
  std::string kind;     // "Workspace"
  std::string plural;   // "workspaces"
  bool namespaced = true;

  std::string ApiVersion() const { return group.empty() ? version : group + "/" + version; }
};

// The types Tessera uses.
const ResourceType& WorkspaceType();
const ResourceType& WorkspaceTemplateType();
const ResourceType& StatefulSetType();
const ResourceType& ServiceType();
const ResourceType& PersistentVolumeClaimType();
const ResourceType& PodType();
const ResourceType& EventType();  // core v1 Events
const ResourceType& LeaseType();
const ResourceType& VirtualServiceType();       // networking.istio.io/v1beta1
const ResourceType& AuthorizationPolicyType();  // security.istio.io/v1beta1
const ResourceType& RayClusterType();           // ray.io/v1

inline bool IsConflict(const absl::Status& s) { return s.code() == absl::StatusCode::kAborted; }
inline bool IsGone(const absl::Status& s) { return s.code() == absl::StatusCode::kOutOfRange; }

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  int64_t limit = 0;  // 0: no paging; otherwise List follows `continue` until done
};

struct ListResult {
  std::vector<nlohmann::json> items;
  std::string resource_version;  // the list's metadata.resourceVersion: where a watch starts
};

struct WatchEvent {
  enum class Type { kAdded, kModified, kDeleted, kBookmark };
  Type type;
  nlohmann::json object;  // for kBookmark only metadata.resourceVersion is meaningful
};

struct WatchOptions {
  std::string resource_version;  // start after this version ("" = current state, then changes)
  bool allow_bookmarks = true;
  int timeout_seconds = 300;  // the server ends the watch after this; the caller re-watches
  std::string label_selector;
  // Checked at least every 200 ms while waiting; when it becomes true, Watch returns Cancelled.
  const std::atomic<bool>* cancel = nullptr;
};

struct ApplyOptions {
  std::string field_manager = "tessera-operator";
  bool force = true;  // take ownership of fields another manager set (the operator owns children)
};

struct DeleteOptions {
  std::string propagation_policy = "Background";  // "Foreground", "Orphan"
  std::string precondition_uid;                   // non-empty: 409 unless the uid matches
  std::string precondition_resource_version;
};

// Thread-safety: implementations are safe to call from several threads at once.
class KubeClient {
 public:
  virtual ~KubeClient() = default;

  virtual absl::StatusOr<nlohmann::json> Get(const ResourceType& type, std::string_view ns,
                                             std::string_view name) = 0;
  // `ns` empty on a namespaced type: all namespaces.
  virtual absl::StatusOr<ListResult> List(const ResourceType& type, std::string_view ns,
                                          const ListOptions& options = {}) = 0;
  virtual absl::StatusOr<nlohmann::json> Create(const ResourceType& type, std::string_view ns,
                                                const nlohmann::json& object) = 0;
  // PUT; the object's metadata.resourceVersion is the precondition (Aborted if it moved on).
  // `status` = true writes the status subresource instead.
  virtual absl::StatusOr<nlohmann::json> Update(const ResourceType& type, std::string_view ns,
                                                const nlohmann::json& object,
                                                bool status = false) = 0;
  // JSON merge patch (RFC 7386).
  virtual absl::StatusOr<nlohmann::json> MergePatch(const ResourceType& type, std::string_view ns,
                                                    std::string_view name,
                                                    const nlohmann::json& patch,
                                                    bool status = false) = 0;
  // Server-side apply of `object` (a full intent: apiVersion, kind, metadata.name, …).
  virtual absl::StatusOr<nlohmann::json> Apply(const ResourceType& type, std::string_view ns,
                                               const nlohmann::json& object,
                                               const ApplyOptions& options = {},
                                               bool status = false) = 0;
  // OK also when the object is marked for deletion but still held by finalizers.
  virtual absl::Status Delete(const ResourceType& type, std::string_view ns, std::string_view name,
                              const DeleteOptions& options = {}) = 0;
  // Streams changes to `fn` until the server ends the watch (OK), fn returns false (OK),
  // options.cancel is set (Cancelled), or an error: OutOfRange when the resourceVersion is too
  // old (relist), Unavailable on a broken connection.
  virtual absl::Status Watch(const ResourceType& type, std::string_view ns,
                             const WatchOptions& options,
                             const std::function<bool(const WatchEvent&)>& fn) = 0;
};

}  // namespace tessera::workspaces::kube
