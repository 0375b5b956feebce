#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "workspaces/api/workspace.h"

// Small HTTP/JSON calls the operator makes to things inside a workspace (code-server, the
// activity agent, the Ray dashboard). Thread-safe (one curl handle per call).
namespace tessera::workspaces {

// `url_template` with {name} and {namespace} replaced by the workspace's.
std::string ExpandUrlTemplate(std::string_view url_template, const Workspace& ws);

// GET `url`; the parsed JSON of a 200 answer (at most `max_bytes`). Unavailable otherwise,
// naming the URL and what went wrong.
absl::StatusOr<nlohmann::json> HttpGetJson(const std::string& url,
                                           std::chrono::milliseconds timeout,
                                           size_t max_bytes = size_t{1} << 20);

// GET `url`; the body of a 200 answer (at most `max_bytes`).
absl::StatusOr<std::string> HttpGetText(const std::string& url, std::chrono::milliseconds timeout,
                                        size_t max_bytes = size_t{16} << 20);

// POST `body` as JSON to `url`; OK on a 2xx.
absl::Status HttpPostJson(const std::string& url, const nlohmann::json& body,
                          std::chrono::milliseconds timeout);

}  // namespace tessera::workspaces
