#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "workspaces/kube/kube_client.h"
#include "workspaces/kube/kube_config.h"

// The KubeClient that talks to a real API server over HTTPS with libcurl.
//
//   - TLS: the CA from a file or PEM text, client certificate/key from files or PEM text,
//     a bearer token (re-read from KubeConfig::token_file at most once a minute, because bound
//     service-account tokens rotate), or insecure_skip_tls_verify.
//   - Connections are kept alive: idle easy handles (each with its connection cache) are kept in
//     a small pool and reused; a request takes one, a Watch holds one for its duration.
//   - Watch streams the response and splits it into events as bytes arrive; it runs the
//     transfer with the multi interface, polling at most every 100 ms, so WatchOptions::cancel is
//     noticed promptly. A watch that receives nothing for timeout_seconds + 30 s (a dead
//     connection) fails with Unavailable.
//   - Errors are mapped as kube_client.h says (see StatusFromResponse in kube_http.h);
//     messages are "<METHOD> <path>: <server message>".
//
// Thread-safety: all methods may be called concurrently. Ownership: owns its curl handles.
namespace tessera::workspaces::kube {

// libcurl's process-wide initialization, done once; every user of libcurl in Tessera calls this
// before its first easy handle. Internal on failure (then libcurl is unusable).
absl::Status InitCurl();

inline constexpr char kDefaultUserAgent[] = "tessera/0.1";

class CurlKubeClient final : public KubeClient {
 public:
  struct Options {
    std::string user_agent = kDefaultUserAgent;
    int64_t request_timeout_ms = 30'000;  // whole request, except watches
    int64_t connect_timeout_ms = 5'000;
    size_t max_idle_handles = 8;  // handles (and their connections) kept for reuse
    int64_t token_reload_interval_ms = 60'000;
    const Clock* clock = SystemClock::Default();  // for token reloads; not owned
  };

  // InvalidArgument for a server URL that is not http(s)://, or a client certificate without a
  // key (or the reverse).
  static absl::StatusOr<std::unique_ptr<CurlKubeClient>> Create(KubeConfig config, Options options);
  static absl::StatusOr<std::unique_ptr<CurlKubeClient>> Create(KubeConfig config);
  ~CurlKubeClient() override;
  CurlKubeClient(const CurlKubeClient&) = delete;
  CurlKubeClient& operator=(const CurlKubeClient&) = delete;

  const KubeConfig& config() const { return config_; }

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

  // The server's /version: {"major": "1", "minor": "20", "gitVersion": "v1.20.2", …}.
  absl::StatusOr<nlohmann::json> ServerVersion();

 private:
  struct Response {
    long code = 0;
    std::string body;
  };

  CurlKubeClient(KubeConfig config, Options options);

  // One request. `method` is the HTTP method; `body` is sent when set. Non-2xx responses and
  // transport failures become the mapped status.
  absl::StatusOr<nlohmann::json> Call(std::string_view method, const std::string& path,
                                      const std::string& query,
                                      const std::optional<std::string>& body,
                                      std::string_view content_type);
  // Configures a reset handle for `url` (TLS, auth, timeouts, user agent); returns the header
  // list the caller must free with curl_slist_free_all.
  void* Configure(void* handle, const std::string& url, std::string_view content_type);
  std::string Token();

  void* AcquireHandle();
  void ReleaseHandle(void* handle);

  const KubeConfig config_;
  const Options options_;

  Mutex pool_mu_;
  std::vector<void*> idle_handles_ ABSL_GUARDED_BY(pool_mu_);  // CURL*

  Mutex token_mu_;
  std::string token_ ABSL_GUARDED_BY(token_mu_);
  int64_t token_read_ms_ ABSL_GUARDED_BY(token_mu_) = 0;
};

}  // namespace tessera::workspaces::kube
