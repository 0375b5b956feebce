#include "workspaces/operator/http_json.h"

#include <curl/curl.h>

#include <memory>

#include "common/errors.h"
#include "common/status_macros.h"
#include "workspaces/kube/curl_kube_client.h"

namespace tessera::workspaces {
namespace {

struct Body {
  std::string data;
  size_t max_bytes;
};

size_t Append(char* data, size_t size, size_t n, void* out) {
  auto* body = static_cast<Body*>(out);
  if (body->data.size() + size * n > body->max_bytes) return 0;  // stop a runaway answer
  body->data.append(data, size * n);
  return size * n;
}

void ReplaceAll(std::string* s, std::string_view from, const std::string& to) {
  for (size_t pos = s->find(from); pos != std::string::npos; pos = s->find(from, pos + to.size())) {
    s->replace(pos, from.size(), to);
  }
}

// One request; the body of a 2xx answer.
absl::StatusOr<std::string> Perform(const std::string& url, const std::string* post_body,
                                    std::chrono::milliseconds timeout, size_t max_bytes) {
  TESSERA_RETURN_IF_ERROR(kube::InitCurl());
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return Internal("curl_easy_init failed");
  Body body{.data = {}, .max_bytes = max_bytes};
  curl_slist* headers = nullptr;
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &body);
  if (post_body != nullptr) {
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, post_body->c_str());
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDSIZE, static_cast<long>(post_body->size()));
  }
  const CURLcode rc = curl_easy_perform(curl.get());
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) return Unavailable("{}: {}", url, curl_easy_strerror(rc));
  long code = 0;  // NOLINT(google-runtime-int): libcurl's type
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &code);
  if (code < 200 || code >= 300) return Unavailable("{}: HTTP {}", url, code);
  return std::move(body.data);
}

}  // namespace

std::string ExpandUrlTemplate(std::string_view url_template, const Workspace& ws) {
  std::string url(url_template);
  ReplaceAll(&url, "{name}", ws.metadata.name);
  ReplaceAll(&url, "{namespace}", ws.metadata.namespace_);
  return url;
}

absl::StatusOr<nlohmann::json> HttpGetJson(const std::string& url,
                                           std::chrono::milliseconds timeout, size_t max_bytes) {
  TESSERA_ASSIGN_OR_RETURN(std::string body, Perform(url, nullptr, timeout, max_bytes));
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    std::string start = body.substr(0, 100);
    for (char& c : start) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
    }
    return Unavailable("{}: expected JSON, got \"{}\"", url, start);
  }
  return j;
}

absl::StatusOr<std::string> HttpGetText(const std::string& url, std::chrono::milliseconds timeout,
                                        size_t max_bytes) {
  return Perform(url, nullptr, timeout, max_bytes);
}

absl::Status HttpPostJson(const std::string& url, const nlohmann::json& body,
                          std::chrono::milliseconds timeout) {
  const std::string text = body.dump();
  return Perform(url, &text, timeout, 64 << 10).status();
}

}  // namespace tessera::workspaces
