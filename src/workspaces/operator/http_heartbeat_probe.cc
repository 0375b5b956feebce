#include "workspaces/operator/http_heartbeat_probe.h"

#include <curl/curl.h>
#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "common/status_macros.h"
#include "workspaces/kube/curl_kube_client.h"

namespace tessera::workspaces {
namespace {

size_t Append(char* data, size_t size, size_t n, void* out) {
  auto* body = static_cast<std::string*>(out);
  if (body->size() > (64 << 10)) return 0;  // a health answer is tiny; stop a runaway body
  body->append(data, size * n);
  return size * n;
}

void ReplaceAll(std::string* s, std::string_view from, const std::string& to) {
  for (size_t pos = s->find(from); pos != std::string::npos; pos = s->find(from, pos + to.size())) {
    s->replace(pos, from.size(), to);
  }
}

}  // namespace

HttpHeartbeatProbe::HttpHeartbeatProbe(std::string url_template, std::chrono::milliseconds timeout)
    : url_template_(std::move(url_template)), timeout_(timeout) {}

std::string HttpHeartbeatProbe::UrlFor(const Workspace& ws) const {
  std::string url = url_template_;
  ReplaceAll(&url, "{name}", ws.metadata.name);
  ReplaceAll(&url, "{namespace}", ws.metadata.namespace_);
  return url;
}

absl::StatusOr<int64_t> HttpHeartbeatProbe::LastHeartbeatMillis(const Workspace& ws) {
  TESSERA_RETURN_IF_ERROR(kube::InitCurl());
  const std::string url = UrlFor(ws);
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return Internal("curl_easy_init failed");
  std::string body;
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &body);
  const CURLcode rc = curl_easy_perform(curl.get());
  if (rc != CURLE_OK) {
    return Unavailable("heartbeat {}: {}", url, curl_easy_strerror(rc));
  }
  long code = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &code);
  if (code != 200) return Unavailable("heartbeat {}: HTTP {}", url, code);
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("lastHeartbeat") || !j["lastHeartbeat"].is_number()) {
    return Unavailable("heartbeat {}: expected {{\"lastHeartbeat\": <epoch ms>}}, got {}", url,
                       body.substr(0, 200));
  }
  return j["lastHeartbeat"].get<int64_t>();
}

}  // namespace tessera::workspaces
