#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workspaces/kube/kube_client.h"

// The HTTP-level pieces of the Kubernetes client that need no network: request paths, query
// strings, the mapping of responses to absl::Status, and the splitting of a watch stream into
// events. Pure functions (WatchStreamDecoder is a value type, not thread-safe).
namespace tessera::workspaces::kube {

// RFC 3986 percent-encoding of everything but unreserved characters (A-Z a-z 0-9 - . _ ~).
std::string UrlEscape(std::string_view s);

// "/api/v1/namespaces/{ns}/pods/{name}/status", "/apis/{group}/{version}/{plural}", …
// `ns` is ignored for cluster-scoped types; empty `ns` on a namespaced type addresses all
// namespaces (only meaningful for collections); empty `name` addresses the collection.
std::string ResourcePath(const ResourceType& type, std::string_view ns, std::string_view name = "",
                         std::string_view subresource = "");

// Builds "?a=b&c=d" (escaped values), or "" when there are no parameters.
class QueryBuilder {
 public:
  QueryBuilder& Add(std::string_view key, std::string_view value);
  // Adds only when `value` is not empty.
  QueryBuilder& AddIfSet(std::string_view key, std::string_view value);
  std::string Build() const;

 private:
  std::string query_;
};

// The status for a non-2xx response (see the mapping in kube_client.h; additionally 429 →
// Unavailable, other 4xx → InvalidArgument). `body` is parsed as a Kubernetes Status when it
// is one; the message is "<verb> <path>: <server message>".
absl::Status StatusFromResponse(std::string_view verb, std::string_view path, long http_code,
                                std::string_view body);

// "{plural}.{group} {version}" for a path under /apis/{group}/{version}/… (the name of the
// CustomResourceDefinition that would serve it, and the version); "" for other paths. A 404 that
// is not a Kubernetes Status says the type is not served, and StatusFromResponse names it so.
std::string ServedTypeOfPath(std::string_view path);

// {major, minor} of a /version answer; "minor" may carry a suffix ("27+" on some clouds).
absl::StatusOr<std::pair<int, int>> ParseServerVersion(const nlohmann::json& version);

// The status for a Kubernetes Status object (as in a watch ERROR event).
absl::Status StatusFromStatusObject(std::string_view verb, std::string_view path,
                                    const nlohmann::json& status);

// Parses one watch event line ({"type": "ADDED", "object": {...}}). An ERROR event becomes its
// mapped status (OutOfRange for 410 / Expired / Gone).
absl::StatusOr<WatchEvent> ParseWatchEvent(std::string_view verb, std::string_view path,
                                           std::string_view line);

// Splits a newline-delimited JSON stream arriving in arbitrary chunks into complete lines.
class WatchStreamDecoder {
 public:
  // Appends `chunk` and calls `on_line` for each completed, non-blank line, in order. Stops and
  // returns false as soon as `on_line` returns false (the rest of the chunk is dropped).
  bool Feed(std::string_view chunk, const std::function<bool(std::string_view line)>& on_line);
  // The incomplete tail (bytes after the last newline).
  const std::string& pending() const { return pending_; }

 private:
  std::string pending_;
};

// Fills apiVersion and kind of a list item from the type when the server left them out.
void FillTypeMeta(const ResourceType& type, nlohmann::json& object);

}  // namespace tessera::workspaces::kube
