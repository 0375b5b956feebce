#include "workspaces/kube/kube_http.h"

#include <fmt/format.h>

#include <optional>
#include <string>
#include <vector>

#include "common/errors.h"

namespace tessera::workspaces::kube {
namespace {

using nlohmann::json;

std::string JsonString(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

absl::Status MapCode(long code, std::string_view reason, const std::string& message) {
  if (code == 410 || reason == "Expired" || reason == "Gone") {
    return absl::OutOfRangeError(message);
  }
  switch (code) {
    case 404:
      return absl::NotFoundError(message);
    case 409:
      return reason == "AlreadyExists" ? absl::AlreadyExistsError(message)
                                       : absl::AbortedError(message);
    case 401:
      return absl::UnauthenticatedError(message);
    case 403:
      return absl::PermissionDeniedError(message);
    case 429:
      return absl::UnavailableError(message);
    default:
      break;
  }
  if (code >= 500 || code <= 0) return absl::UnavailableError(message);
  if (code >= 400) return absl::InvalidArgumentError(message);
  return absl::UnknownError(message);
}

}  // namespace

std::string UrlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string ResourcePath(const ResourceType& type, std::string_view ns, std::string_view name,
                         std::string_view subresource) {
  std::string path = type.group.empty() ? fmt::format("/api/{}", UrlEscape(type.version))
                                        : fmt::format("/apis/{}/{}", UrlEscape(type.group),
                                                      UrlEscape(type.version));
  if (type.namespaced && !ns.empty()) path += fmt::format("/namespaces/{}", UrlEscape(ns));
  path += fmt::format("/{}", UrlEscape(type.plural));
  if (!name.empty()) {
    path += fmt::format("/{}", UrlEscape(name));
    if (!subresource.empty()) path += fmt::format("/{}", UrlEscape(subresource));
  }
  return path;
}

QueryBuilder& QueryBuilder::Add(std::string_view key, std::string_view value) {
  query_ += query_.empty() ? '?' : '&';
  query_ += UrlEscape(key);
  query_ += '=';
  query_ += UrlEscape(value);
  return *this;
}

QueryBuilder& QueryBuilder::AddIfSet(std::string_view key, std::string_view value) {
  if (!value.empty()) Add(key, value);
  return *this;
}

std::string QueryBuilder::Build() const { return query_; }

absl::Status StatusFromStatusObject(std::string_view verb, std::string_view path,
                                    const json& status) {
  long code = 0;
  if (status.is_object() && status.contains("code") && status["code"].is_number_integer()) {
    code = status["code"].get<long>();
  }
  std::string reason = JsonString(status, "reason");
  std::string message = JsonString(status, "message");
  if (message.empty()) message = reason.empty() ? fmt::format("HTTP {}", code) : reason;
  return MapCode(code, reason, fmt::format("{} {}: {}", verb, path, message));
}

absl::Status StatusFromResponse(std::string_view verb, std::string_view path, long http_code,
                                std::string_view body) {
  json parsed = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && JsonString(parsed, "kind") == "Status") {
    // The HTTP code is authoritative; a Status body only adds reason and message.
    parsed["code"] = http_code;
    return StatusFromStatusObject(verb, path, parsed);
  }
  std::string text(body.substr(0, 300));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  std::string message = text.empty()
                            ? fmt::format("{} {}: HTTP {}", verb, path, http_code)
                            : fmt::format("{} {}: HTTP {}: {}", verb, path, http_code, text);
  if (http_code == 404) {
    // Not a Kubernetes Status: no handler for the path at all, i.e. the API server does not
    // serve this resource type (an object that is missing gets a Status with reason NotFound).
    const std::string type = ServedTypeOfPath(path);
    if (!type.empty()) {
      message = fmt::format(
          "{} {}: the API server does not serve {} (HTTP 404: {}); is the "
          "CustomResourceDefinition {} installed?",
          verb, path, type, text.empty() ? "no body" : text, type.substr(0, type.find(' ')));
    }
  }
  return MapCode(http_code, "", message);
}

absl::StatusOr<std::pair<int, int>> ParseServerVersion(const json& version) {
  auto number = [&](const char* key) -> std::optional<int> {
    const std::string text = JsonString(version, key);
    int value = 0;
    size_t i = 0;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9' && i < 6; ++i) {
      value = value * 10 + (text[i] - '0');
    }
    if (i == 0) return std::nullopt;
    return value;
  };
  std::optional<int> major = number("major");
  std::optional<int> minor = number("minor");
  if (!major || !minor) {
    return InvalidArgument("the API server's /version has no numeric major and minor: {}",
                           version.dump().substr(0, 200));
  }
  return std::make_pair(*major, *minor);
}

std::string ServedTypeOfPath(std::string_view path) {
  // /apis/{group}/{version}[/namespaces/{ns}]/{plural}[/...]
  const std::string_view query_free = path.substr(0, path.find('?'));
  std::vector<std::string_view> parts;
  for (size_t start = 0; start <= query_free.size();) {
    size_t slash = query_free.find('/', start);
    if (slash == std::string_view::npos) slash = query_free.size();
    if (slash > start) parts.push_back(query_free.substr(start, slash - start));
    start = slash + 1;
  }
  if (parts.size() < 4 || parts[0] != "apis") return "";
  size_t plural = 3;
  if (parts[3] == "namespaces") plural = 5;
  if (plural >= parts.size()) return "";
  return fmt::format("{}.{} {}", parts[plural], parts[1], parts[2]);
}

absl::StatusOr<WatchEvent> ParseWatchEvent(std::string_view verb, std::string_view path,
                                           std::string_view line) {
  json event = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (!event.is_object() || !event.contains("type") || !event["type"].is_string()) {
    return Unavailable("{} {}: the server sent a malformed watch event: {}", verb, path,
                       std::string(line.substr(0, 200)));
  }
  std::string type = event["type"].get<std::string>();
  json object = event.contains("object") ? std::move(event["object"]) : json::object();
  if (type == "ERROR") return StatusFromStatusObject(verb, path, object);
  WatchEvent out;
  if (type == "ADDED") {
    out.type = WatchEvent::Type::kAdded;
  } else if (type == "MODIFIED") {
    out.type = WatchEvent::Type::kModified;
  } else if (type == "DELETED") {
    out.type = WatchEvent::Type::kDeleted;
  } else if (type == "BOOKMARK") {
    out.type = WatchEvent::Type::kBookmark;
  } else {
    return Unavailable("{} {}: unknown watch event type \"{}\"", verb, path, type);
  }
  out.object = std::move(object);
  return out;
}

bool WatchStreamDecoder::Feed(std::string_view chunk,
                              const std::function<bool(std::string_view line)>& on_line) {
  pending_.append(chunk.data(), chunk.size());
  size_t start = 0;
  bool keep_going = true;
  while (keep_going) {
    size_t nl = pending_.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view line(pending_.data() + start, nl - start);
    start = nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    keep_going = on_line(line);
  }
  if (!keep_going) {
    pending_.clear();
    return false;
  }
  pending_.erase(0, start);
  return true;
}

void FillTypeMeta(const ResourceType& type, json& object) {
  if (!object.is_object()) return;
  if (!object.contains("apiVersion") || !object["apiVersion"].is_string() ||
      object["apiVersion"].get<std::string>().empty()) {
    object["apiVersion"] = type.ApiVersion();
  }
  if (!object.contains("kind") || !object["kind"].is_string() ||
      object["kind"].get<std::string>().empty()) {
    object["kind"] = type.kind;
  }
}

}  // namespace tessera::workspaces::kube
