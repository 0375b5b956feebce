#include "workspaces/kube/curl_kube_client.h"

#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <utility>

#include "common/errors.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "workspaces/kube/kube_http.h"

namespace tessera::workspaces::kube {
namespace {

using nlohmann::json;

size_t AppendToString(char* data, size_t size, size_t nmemb, void* user) {
  static_cast<std::string*>(user)->append(data, size * nmemb);
  return size * nmemb;
}

std::string MetaString(const json& object, const char* key) {
  if (!object.is_object() || !object.contains("metadata")) return "";
  const json& meta = object["metadata"];
  if (!meta.is_object() || !meta.contains(key) || !meta[key].is_string()) return "";
  return meta[key].get<std::string>();
}

// Advice for the transport errors people hit when a kubeconfig is wrong.
std::string CurlMessage(CURLcode code, const char* errbuf) {
  std::string detail = errbuf != nullptr && errbuf[0] != '\0' ? errbuf : curl_easy_strerror(code);
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
      return fmt::format("cannot resolve the API server's host name ({})", detail);
    case CURLE_COULDNT_CONNECT:
      return fmt::format("cannot connect to the API server ({})", detail);
    case CURLE_OPERATION_TIMEDOUT:
      return fmt::format("the API server did not answer in time ({})", detail);
    case CURLE_PEER_FAILED_VERIFICATION:
      return fmt::format(
          "the API server's TLS certificate is not trusted; check certificate-authority in the "
          "kubeconfig ({})",
          detail);
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
      return fmt::format("a TLS certificate or key from the kubeconfig cannot be used ({})",
                         detail);
    default:
      return detail;
  }
}

// State of one streaming watch, shared with the write callback.
struct WatchContext {
  CURL* handle = nullptr;
  std::string verb;
  std::string path;
  const std::function<bool(const WatchEvent&)>* fn = nullptr;
  WatchStreamDecoder decoder;
  long http_code = -1;     // read at the first body byte
  std::string error_body;  // the body of a non-200 answer
  bool stopped = false;    // fn returned false, or an ERROR event arrived
  absl::Status status;     // the ERROR event's status

  // Returns false to stop the stream.
  bool OnLine(std::string_view line) {
    absl::StatusOr<WatchEvent> event = ParseWatchEvent(verb, path, line);
    if (!event.ok()) {
      status = event.status();
      stopped = true;
      return false;
    }
    if (!(*fn)(*event)) {
      stopped = true;
      return false;
    }
    return true;
  }
};

size_t WatchWrite(char* data, size_t size, size_t nmemb, void* user) {
  auto* ctx = static_cast<WatchContext*>(user);
  size_t n = size * nmemb;
  if (ctx->stopped) return 0;
  if (ctx->http_code < 0) curl_easy_getinfo(ctx->handle, CURLINFO_RESPONSE_CODE, &ctx->http_code);
  if (ctx->http_code != 200) {
    if (ctx->error_body.size() < size_t{64} * 1024) ctx->error_body.append(data, n);
    return n;
  }
  bool more = ctx->decoder.Feed(std::string_view(data, n),
                                [ctx](std::string_view line) { return ctx->OnLine(line); });
  return more ? n : 0;
}

}  // namespace

CurlKubeClient::CurlKubeClient(KubeConfig config, Options options)
    : config_(std::move(config)), options_(std::move(options)), token_(config_.token) {
  token_read_ms_ = options_.clock->NowMillis();
}

absl::Status InitCurl() {
  // A function-local static is initialized once, thread-safely: one curl_global_init per process
  // and every caller sees its result.
  static const CURLcode code = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (code != CURLE_OK) return Internal("curl_global_init failed: {}", curl_easy_strerror(code));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CurlKubeClient>> CurlKubeClient::Create(KubeConfig config) {
  return Create(std::move(config), Options{});
}

absl::StatusOr<std::unique_ptr<CurlKubeClient>> CurlKubeClient::Create(KubeConfig config,
                                                                       Options options) {
  if (config.server.rfind("https://", 0) != 0 && config.server.rfind("http://", 0) != 0) {
    return InvalidArgument("Kubernetes API server address \"{}\" should start with https:// ({})",
                           config.server, config.source);
  }
  while (!config.server.empty() && config.server.back() == '/') config.server.pop_back();
  bool has_cert = !config.client_cert_file.empty() || !config.client_cert_data.empty();
  bool has_key = !config.client_key_file.empty() || !config.client_key_data.empty();
  if (has_cert != has_key) {
    return InvalidArgument("a client certificate needs both a certificate and a key ({})",
                           config.source);
  }
  TESSERA_RETURN_IF_ERROR(InitCurl());
  return std::unique_ptr<CurlKubeClient>(new CurlKubeClient(std::move(config), std::move(options)));
}

CurlKubeClient::~CurlKubeClient() {
  for (void* h : idle_handles_) curl_easy_cleanup(static_cast<CURL*>(h));
}

void* CurlKubeClient::AcquireHandle() {
  {
    MutexLock lock(&pool_mu_);
    if (!idle_handles_.empty()) {
      void* h = idle_handles_.back();
      idle_handles_.pop_back();
      curl_easy_reset(static_cast<CURL*>(h));  // keeps the connection and TLS session caches
      return h;
    }
  }
  return curl_easy_init();
}

void CurlKubeClient::ReleaseHandle(void* handle) {
  if (handle == nullptr) return;
  {
    MutexLock lock(&pool_mu_);
    if (idle_handles_.size() < options_.max_idle_handles) {
      idle_handles_.push_back(handle);
      return;
    }
  }
  curl_easy_cleanup(static_cast<CURL*>(handle));
}

std::string CurlKubeClient::Token() {
  MutexLock lock(&token_mu_);
  if (!config_.token_file.empty()) {
    int64_t now = options_.clock->NowMillis();
    if (now - token_read_ms_ >= options_.token_reload_interval_ms) {
      token_read_ms_ = now;
      if (absl::StatusOr<std::string> text = ReadFileToString(config_.token_file); text.ok()) {
        std::string fresh(Trim(*text, kSpaceTabNewline));
        if (!fresh.empty()) token_ = fresh;  // keep the old token if the file is mid-rotation
      }
    }
  }
  return token_;
}

void* CurlKubeClient::Configure(void* handle, const std::string& url,
                                std::string_view content_type) {
  CURL* h = static_cast<CURL*>(handle);
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout_ms));
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
  if (config_.insecure_skip_tls_verify) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  } else if (!config_.ca_data.empty()) {
    curl_blob blob{const_cast<char*>(config_.ca_data.data()), config_.ca_data.size(),
                   CURL_BLOB_NOCOPY};
    curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
  } else if (!config_.ca_file.empty()) {
    curl_easy_setopt(h, CURLOPT_CAINFO, config_.ca_file.c_str());
  }
  if (!config_.client_cert_data.empty()) {
    curl_blob blob{const_cast<char*>(config_.client_cert_data.data()),
                   config_.client_cert_data.size(), CURL_BLOB_NOCOPY};
    curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &blob);
    curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
  } else if (!config_.client_cert_file.empty()) {
    curl_easy_setopt(h, CURLOPT_SSLCERT, config_.client_cert_file.c_str());
    curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
  }
  if (!config_.client_key_data.empty()) {
    curl_blob blob{const_cast<char*>(config_.client_key_data.data()),
                   config_.client_key_data.size(), CURL_BLOB_NOCOPY};
    curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &blob);
    curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
  } else if (!config_.client_key_file.empty()) {
    curl_easy_setopt(h, CURLOPT_SSLKEY, config_.client_key_file.c_str());
    curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
  }
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Accept: application/json");
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  if (!content_type.empty()) {
    headers = curl_slist_append(headers, fmt::format("Content-Type: {}", content_type).c_str());
  }
  if (std::string token = Token(); !token.empty()) {
    headers = curl_slist_append(headers, fmt::format("Authorization: Bearer {}", token).c_str());
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  return headers;
}

absl::StatusOr<json> CurlKubeClient::Call(std::string_view method, const std::string& path,
                                          const std::string& query,
                                          const std::optional<std::string>& body,
                                          std::string_view content_type) {
  const std::string url = config_.server + path + query;
  CURL* h = static_cast<CURL*>(AcquireHandle());
  if (h == nullptr) return Internal("curl_easy_init failed");
  auto* headers = static_cast<curl_slist*>(Configure(h, url, body ? content_type : ""));
  std::string method_str(method);
  std::string response;
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.request_timeout_ms));
  if (method == "GET") {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method_str.c_str());
  }
  if (body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
  }
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, AppendToString);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &response);
  CURLcode rc = curl_easy_perform(h);
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
  curl_slist_free_all(headers);
  std::string curl_message = rc == CURLE_OK ? "" : CurlMessage(rc, errbuf);
  ReleaseHandle(h);
  if (rc != CURLE_OK) {
    return Unavailable("{} {}{}: {}", method, config_.server, path, curl_message);
  }
  if (code < 200 || code >= 300) return StatusFromResponse(method, path, code, response);
  if (response.empty()) return json::object();
  json parsed = json::parse(response, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return Unavailable("{} {}: the server's answer is not JSON: {}", method, path,
                       response.substr(0, 200));
  }
  return parsed;
}

absl::StatusOr<json> CurlKubeClient::Get(const ResourceType& type, std::string_view ns,
                                         std::string_view name) {
  return Call("GET", ResourcePath(type, ns, name), "", std::nullopt, "");
}

absl::StatusOr<json> CurlKubeClient::ServerVersion() {
  return Call("GET", "/version", "", std::nullopt, "");
}

absl::StatusOr<ListResult> CurlKubeClient::List(const ResourceType& type, std::string_view ns,
                                                const ListOptions& options) {
  const std::string path = ResourcePath(type, ns);
  ListResult result;
  std::string continue_token;
  do {
    QueryBuilder query;
    query.AddIfSet("labelSelector", options.label_selector);
    query.AddIfSet("fieldSelector", options.field_selector);
    if (options.limit > 0) query.Add("limit", std::to_string(options.limit));
    query.AddIfSet("continue", continue_token);
    absl::StatusOr<json> page = Call("GET", path, query.Build(), std::nullopt, "");
    if (!page.ok()) return page.status();
    if (page->contains("items") && (*page)["items"].is_array()) {
      for (json& item : (*page)["items"]) {
        FillTypeMeta(type, item);
        result.items.push_back(std::move(item));
      }
    }
    const json meta = page->value("metadata", json::object());
    result.resource_version = meta.is_object() ? meta.value("resourceVersion", "") : "";
    continue_token = meta.is_object() ? meta.value("continue", "") : "";
  } while (options.limit > 0 && !continue_token.empty());
  return result;
}

absl::StatusOr<json> CurlKubeClient::Create(const ResourceType& type, std::string_view ns,
                                            const json& object) {
  std::string effective_ns(ns);
  if (effective_ns.empty()) effective_ns = MetaString(object, "namespace");
  json body = object;
  FillTypeMeta(type, body);
  return Call("POST", ResourcePath(type, effective_ns), "", body.dump(), "application/json");
}

absl::StatusOr<json> CurlKubeClient::Update(const ResourceType& type, std::string_view ns,
                                            const json& object, bool status) {
  std::string name = MetaString(object, "name");
  if (name.empty()) return InvalidArgument("update of a {}: metadata.name is required", type.kind);
  json body = object;
  FillTypeMeta(type, body);
  return Call("PUT", ResourcePath(type, ns, name, status ? "status" : ""), "", body.dump(),
              "application/json");
}

absl::StatusOr<json> CurlKubeClient::MergePatch(const ResourceType& type, std::string_view ns,
                                                std::string_view name, const json& patch,
                                                bool status) {
  return Call("PATCH", ResourcePath(type, ns, name, status ? "status" : ""), "", patch.dump(),
              "application/merge-patch+json");
}

absl::StatusOr<json> CurlKubeClient::Apply(const ResourceType& type, std::string_view ns,
                                           const json& object, const ApplyOptions& options,
                                           bool status) {
  std::string name = MetaString(object, "name");
  if (name.empty()) return InvalidArgument("apply of a {}: metadata.name is required", type.kind);
  json body = object;
  FillTypeMeta(type, body);
  QueryBuilder query;
  query.Add("fieldManager", options.field_manager);
  query.Add("force", options.force ? "true" : "false");
  // JSON is valid YAML, so the apply body can be the JSON text.
  return Call("PATCH", ResourcePath(type, ns, name, status ? "status" : ""), query.Build(),
              body.dump(), "application/apply-patch+yaml");
}

absl::Status CurlKubeClient::Delete(const ResourceType& type, std::string_view ns,
                                    std::string_view name, const DeleteOptions& options) {
  json body = {{"kind", "DeleteOptions"}, {"apiVersion", "v1"}};
  if (!options.propagation_policy.empty()) body["propagationPolicy"] = options.propagation_policy;
  if (!options.precondition_uid.empty()) body["preconditions"]["uid"] = options.precondition_uid;
  if (!options.precondition_resource_version.empty()) {
    body["preconditions"]["resourceVersion"] = options.precondition_resource_version;
  }
  return Call("DELETE", ResourcePath(type, ns, name), "", body.dump(), "application/json").status();
}

absl::Status CurlKubeClient::Watch(const ResourceType& type, std::string_view ns,
                                   const WatchOptions& options,
                                   const std::function<bool(const WatchEvent&)>& fn) {
  const std::string path = ResourcePath(type, ns);
  QueryBuilder query;
  query.Add("watch", "true");
  if (options.allow_bookmarks) query.Add("allowWatchBookmarks", "true");
  query.AddIfSet("resourceVersion", options.resource_version);
  if (options.timeout_seconds > 0) {
    query.Add("timeoutSeconds", std::to_string(options.timeout_seconds));
  }
  query.AddIfSet("labelSelector", options.label_selector);
  const std::string url = config_.server + path + query.Build();

  CURL* h = static_cast<CURL*>(AcquireHandle());
  if (h == nullptr) return Internal("curl_easy_init failed");
  auto* headers = static_cast<curl_slist*>(Configure(h, url, ""));
  char errbuf[CURL_ERROR_SIZE] = {0};
  WatchContext ctx;
  ctx.handle = h;
  ctx.verb = "WATCH";
  ctx.path = path;
  ctx.fn = &fn;
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, WatchWrite);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &ctx);
  // A dead connection: no byte for longer than the server could legitimately stay quiet.
  const long quiet_limit_s = std::max(options.timeout_seconds, 0) + 30;
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, quiet_limit_s);
  if (options.timeout_seconds > 0) {
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (options.timeout_seconds + 60) * 1000L);
  }

  CURLM* multi = curl_multi_init();
  curl_multi_add_handle(multi, h);
  bool cancelled = false;
  CURLcode result = CURLE_OK;
  while (true) {
    int running = 0;
    CURLMcode mc = curl_multi_perform(multi, &running);
    if (mc != CURLM_OK) {
      result = CURLE_RECV_ERROR;
      snprintf(errbuf, sizeof(errbuf), "%s", curl_multi_strerror(mc));
      break;
    }
    if (running == 0) {
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
        if (msg->msg == CURLMSG_DONE) result = msg->data.result;
      }
      break;
    }
    if (ctx.stopped) break;
    if (options.cancel != nullptr && options.cancel->load()) {
      cancelled = true;
      break;
    }
    curl_multi_poll(multi, nullptr, 0, 100, nullptr);
  }
  long code = ctx.http_code;
  if (code < 0) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_multi_remove_handle(multi, h);
  curl_multi_cleanup(multi);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
  curl_slist_free_all(headers);
  std::string curl_message = result == CURLE_OK ? "" : CurlMessage(result, errbuf);
  ReleaseHandle(h);

  if (ctx.stopped) return ctx.status;  // OK when fn asked to stop
  if (cancelled) return Cancelled("WATCH {}: cancelled", path);
  if (result == CURLE_OPERATION_TIMEDOUT) {
    return Unavailable(
        "WATCH {}: no data from the API server for {} s; the connection is "
        "presumed dead ({})",
        path, quiet_limit_s, curl_message);
  }
  if (result != CURLE_OK) return Unavailable("WATCH {}{}: {}", config_.server, path, curl_message);
  if (code != 200) return StatusFromResponse("WATCH", path, code, ctx.error_body);
  // The stream ended; a last event without a trailing newline is still an event.
  if (!ctx.decoder.pending().empty()) {
    std::string tail = ctx.decoder.pending();
    if (Trim(tail, kSpaceTabNewline).empty()) return absl::OkStatus();
    ctx.OnLine(tail);
    if (ctx.stopped) return ctx.status;
  }
  return absl::OkStatus();
}

}  // namespace tessera::workspaces::kube
