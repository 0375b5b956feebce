// CurlKubeClient, Informer and LeaderElector against tests/kube/fake_apiserver.py, a strict fake
// Kubernetes API server, over TLS with a bearer token and with client certificates.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/errors.h"
#include "workspaces/kube/curl_kube_client.h"
#include "workspaces/kube/fake_apiserver_process.h"
#include "workspaces/kube/informer.h"
#include "workspaces/kube/kube_config.h"
#include "workspaces/kube/leader_election.h"

namespace tessera::workspaces::kube {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

constexpr const char* kToken = FakeApiServerProcess::kToken;
constexpr char kNs[] = "default";

bool WaitFor(const std::function<bool()>& pred, int timeout_ms = 10'000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

class KubeIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = std::make_unique<FakeApiServerProcess>();
    absl::Status started = server_->Start(/*bookmark_interval_s=*/0.2);
    ASSERT_TRUE(started.ok()) << started;
    tls_dir_ = std::make_unique<std::string>(server_->tls_dir());
    url_ = std::make_unique<std::string>(server_->url());
  }
  static void TearDownTestSuite() { server_.reset(); }

  void SetUp() override {
    ASSERT_NE(url_, nullptr) << "the fake API server did not start";
    ASSERT_TRUE(Control("POST", "/fake/reset").ok());
    client_ = Client("token");
    ASSERT_NE(client_, nullptr);
  }

  static std::string KubeconfigPath() { return server_->KubeconfigPath(); }

  static std::unique_ptr<CurlKubeClient> Client(const std::string& context,
                                                CurlKubeClient::Options options = {}) {
    absl::StatusOr<KubeConfig> config = LoadKubeconfig(KubeconfigPath(), context);
    EXPECT_TRUE(config.ok()) << config.status();
    if (!config.ok()) return nullptr;
    absl::StatusOr<std::unique_ptr<CurlKubeClient>> client =
        CurlKubeClient::Create(*config, std::move(options));
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? std::move(*client) : nullptr;
  }

  // A raw request to the fake's test endpoints.
  static absl::StatusOr<json> Control(const std::string& method, const std::string& path) {
    return server_->Control(method, path);
  }

  static std::vector<json> Requests() {
    absl::StatusOr<json> log = Control("GET", "/fake/requests");
    EXPECT_TRUE(log.ok()) << log.status();
    std::vector<json> out;
    if (log.ok()) {
      for (const json& r : (*log)["items"]) out.push_back(r);
    }
    return out;
  }

  static json Ws(const std::string& name) {
    return {{"apiVersion", "workspaces.tessera.dev/v1alpha1"},
            {"kind", "Workspace"},
            {"metadata", {{"name", name}, {"labels", {{"app", "tessera"}}}}},
            {"spec", {{"owner", "alice@example.com"}}}};
  }

  static std::string Rv(const json& object) { return object["metadata"]["resourceVersion"]; }

  static inline std::unique_ptr<std::string> tls_dir_;
  static inline std::unique_ptr<std::string> url_;
  static inline std::unique_ptr<FakeApiServerProcess> server_;
  std::unique_ptr<CurlKubeClient> client_;
};

TEST_F(KubeIntegrationTest, CrudAndErrorMapping) {
  absl::StatusOr<json> created = client_->Create(WorkspaceType(), kNs, Ws("w1"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ((*created)["metadata"]["generation"], 1);

  absl::StatusOr<json> dup = client_->Create(WorkspaceType(), kNs, Ws("w1"));
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists) << dup.status();
  EXPECT_THAT(StatusMessage(dup.status()),
              HasSubstr("POST /apis/workspaces.tessera.dev/v1alpha1/namespaces/default/"
                        "workspaces: "));

  absl::StatusOr<json> missing = client_->Get(WorkspaceType(), kNs, "nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(StatusMessage(missing.status()), HasSubstr("\"nope\" not found"));

  json w = *client_->Get(WorkspaceType(), kNs, "w1");
  json stale = w;
  w["spec"]["owner"] = "bob@example.com";
  absl::StatusOr<json> updated = client_->Update(WorkspaceType(), kNs, w);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ((*updated)["metadata"]["generation"], 2);
  stale["spec"]["owner"] = "carol@example.com";
  absl::StatusOr<json> conflict = client_->Update(WorkspaceType(), kNs, stale);
  EXPECT_TRUE(IsConflict(conflict.status())) << conflict.status();

  absl::StatusOr<json> patched = client_->MergePatch(
      WorkspaceType(), kNs, "w1", {{"metadata", {{"labels", {{"patched", "yes"}}}}}});
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_EQ((*patched)["metadata"]["labels"]["patched"], "yes");

  absl::StatusOr<json> invalid = client_->Create(WorkspaceType(), kNs, Ws("Not_A_Name"));
  EXPECT_EQ(invalid.status().code(), absl::StatusCode::kInvalidArgument) << invalid.status();

  ASSERT_TRUE(client_->Delete(WorkspaceType(), kNs, "w1").ok());
  EXPECT_EQ(client_->Get(WorkspaceType(), kNs, "w1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->Delete(WorkspaceType(), kNs, "w1").code(), absl::StatusCode::kNotFound);
}

TEST_F(KubeIntegrationTest, ListPagesAndFillsTypeMeta) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(client_->Create(WorkspaceType(), kNs, Ws(fmt::format("w{}", i))).ok());
  }
  json other = Ws("unlabelled");
  other["metadata"].erase("labels");
  ASSERT_TRUE(client_->Create(WorkspaceType(), kNs, other).ok());
  ASSERT_TRUE(Control("DELETE", "/fake/requests").ok());

  ListOptions options;
  options.label_selector = "app=tessera";
  options.limit = 2;
  absl::StatusOr<ListResult> list = client_->List(WorkspaceType(), kNs, options);
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->items.size(), 5u);
  for (const json& item : list->items) {
    EXPECT_EQ(item["kind"], "Workspace");
    EXPECT_EQ(item["apiVersion"], "workspaces.tessera.dev/v1alpha1");
  }
  EXPECT_FALSE(list->resource_version.empty());
  std::vector<json> requests = Requests();
  ASSERT_EQ(requests.size(), 3u);  // 2 + 2 + 1
  EXPECT_THAT(requests[0]["query"].get<std::string>(), HasSubstr("labelSelector=app%3Dtessera"));
  EXPECT_THAT(requests[1]["query"].get<std::string>(), HasSubstr("continue="));
  EXPECT_EQ(requests[0]["userAgent"], kDefaultUserAgent);

  // All namespaces, no paging.
  absl::StatusOr<ListResult> all = client_->List(WorkspaceType(), "");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->items.size(), 6u);
}

TEST_F(KubeIntegrationTest, ClientCertificatesFromFilesAndFromMemory) {
  std::unique_ptr<CurlKubeClient> certs = Client("certs");
  ASSERT_NE(certs, nullptr);
  EXPECT_TRUE(certs->config().token.empty());
  absl::StatusOr<ListResult> list = certs->List(WorkspaceType(), kNs);
  EXPECT_TRUE(list.ok()) << list.status();

  KubeConfig in_memory;
  in_memory.server = *url_;
  in_memory.ca_data = ReadFile(*tls_dir_ + "/ca.crt");
  in_memory.client_cert_data = ReadFile(*tls_dir_ + "/client.crt");
  in_memory.client_key_data = ReadFile(*tls_dir_ + "/client.key");
  absl::StatusOr<std::unique_ptr<CurlKubeClient>> blob = CurlKubeClient::Create(in_memory);
  ASSERT_TRUE(blob.ok()) << blob.status();
  list = (*blob)->List(WorkspaceType(), kNs);
  EXPECT_TRUE(list.ok()) << list.status();

  // No credentials: 401.
  KubeConfig anonymous;
  anonymous.server = *url_;
  anonymous.ca_data = in_memory.ca_data;
  absl::StatusOr<std::unique_ptr<CurlKubeClient>> anon = CurlKubeClient::Create(anonymous);
  ASSERT_TRUE(anon.ok());
  EXPECT_EQ((*anon)->List(WorkspaceType(), kNs).status().code(),
            absl::StatusCode::kUnauthenticated);

  // An untrusted server certificate is a clear Unavailable.
  KubeConfig untrusted = anonymous;
  untrusted.ca_data.clear();
  untrusted.ca_file = *tls_dir_ + "/client.crt";  // not the CA
  untrusted.token = kToken;
  absl::StatusOr<std::unique_ptr<CurlKubeClient>> bad = CurlKubeClient::Create(untrusted);
  ASSERT_TRUE(bad.ok());
  absl::Status s = (*bad)->List(WorkspaceType(), kNs).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(StatusMessage(s), HasSubstr("certificate"));
}

TEST_F(KubeIntegrationTest, TokenFileIsReReadAfterAMinute) {
  std::string token_file = *tls_dir_ + "/rotating-token";
  std::ofstream(token_file) << kToken << "\n";
  KubeConfig config = *LoadKubeconfig(KubeconfigPath(), "token");
  config.token = "expired-token";  // what was read at load time
  config.token_file = token_file;
  FakeClock clock(1'000'000);
  CurlKubeClient::Options options;
  options.clock = &clock;
  std::unique_ptr<CurlKubeClient> client = *CurlKubeClient::Create(config, options);
  EXPECT_EQ(client->List(WorkspaceType(), kNs).status().code(), absl::StatusCode::kUnauthenticated);
  clock.AdvanceMillis(59'000);
  EXPECT_EQ(client->List(WorkspaceType(), kNs).status().code(), absl::StatusCode::kUnauthenticated);
  clock.AdvanceMillis(1'000);
  EXPECT_TRUE(client->List(WorkspaceType(), kNs).ok());
}

TEST_F(KubeIntegrationTest, ServerSideApply) {
  json intent = Ws("applied");
  intent["spec"]["image"] = "code-server:1";
  ASSERT_TRUE(Control("DELETE", "/fake/requests").ok());
  absl::StatusOr<json> applied = client_->Apply(WorkspaceType(), kNs, intent);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ((*applied)["spec"]["image"], "code-server:1");
  std::vector<json> requests = Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0]["method"], "PATCH");
  EXPECT_EQ(requests[0]["contentType"], "application/apply-patch+yaml");
  EXPECT_EQ(requests[0]["path"],
            "/apis/workspaces.tessera.dev/v1alpha1/namespaces/default/workspaces/applied");
  EXPECT_THAT(requests[0]["query"].get<std::string>(), HasSubstr("fieldManager=tessera-operator"));
  EXPECT_THAT(requests[0]["query"].get<std::string>(), HasSubstr("force=true"));

  // Another manager setting the same field differently conflicts unless it forces.
  json theirs = Ws("applied");
  theirs["spec"]["image"] = "code-server:2";
  ApplyOptions other;
  other.field_manager = "someone-else";
  other.force = false;
  absl::StatusOr<json> conflict = client_->Apply(WorkspaceType(), kNs, theirs, other);
  EXPECT_EQ(conflict.status().code(), absl::StatusCode::kAborted) << conflict.status();
  EXPECT_THAT(StatusMessage(conflict.status()), HasSubstr("conflict"));
  other.force = true;
  absl::StatusOr<json> forced = client_->Apply(WorkspaceType(), kNs, theirs, other);
  ASSERT_TRUE(forced.ok()) << forced.status();
  EXPECT_EQ((*forced)["spec"]["image"], "code-server:2");
}

TEST_F(KubeIntegrationTest, StatusSubresource) {
  json w = *client_->Create(WorkspaceType(), kNs, Ws("s"));
  w["status"] = {{"phase", "Starting"}};
  w["spec"]["owner"] = "ignored@example.com";
  absl::StatusOr<json> status = client_->Update(WorkspaceType(), kNs, w, /*status=*/true);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ((*status)["status"]["phase"], "Starting");
  EXPECT_EQ((*status)["spec"]["owner"], "alice@example.com");
  EXPECT_EQ((*status)["metadata"]["generation"], 1);

  json main = *status;
  main["status"]["phase"] = "Failed";
  absl::StatusOr<json> after = client_->Update(WorkspaceType(), kNs, main);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ((*after)["status"]["phase"], "Starting");

  absl::StatusOr<json> patched =
      client_->MergePatch(WorkspaceType(), kNs, "s", {{"status", {{"phase", "Ready"}}}}, true);
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_EQ((*patched)["status"]["phase"], "Ready");

  ApplyOptions apply;
  apply.field_manager = "tessera-status";
  json status_intent = {{"apiVersion", "workspaces.tessera.dev/v1alpha1"},
                        {"kind", "Workspace"},
                        {"metadata", {{"name", "s"}}},
                        {"status", {{"url", "https://s.example.com"}}}};
  absl::StatusOr<json> applied =
      client_->Apply(WorkspaceType(), kNs, status_intent, apply, /*status=*/true);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ((*applied)["status"]["url"], "https://s.example.com");
}

TEST_F(KubeIntegrationTest, DeleteWithFinalizerAndPreconditions) {
  json w = Ws("f");
  w["metadata"]["finalizers"] = {"workspaces.tessera.dev/cleanup"};
  json created = *client_->Create(WorkspaceType(), kNs, w);

  DeleteOptions wrong;
  wrong.precondition_uid = "not-the-uid";
  EXPECT_TRUE(IsConflict(client_->Delete(WorkspaceType(), kNs, "f", wrong)));

  DeleteOptions right;
  right.precondition_uid = created["metadata"]["uid"];
  right.propagation_policy = "Foreground";
  ASSERT_TRUE(client_->Delete(WorkspaceType(), kNs, "f", right).ok());
  json deleting = *client_->Get(WorkspaceType(), kNs, "f");
  EXPECT_TRUE(deleting["metadata"].contains("deletionTimestamp"));

  ASSERT_TRUE(
      client_->MergePatch(WorkspaceType(), kNs, "f", {{"metadata", {{"finalizers", nullptr}}}})
          .ok());
  EXPECT_EQ(client_->Get(WorkspaceType(), kNs, "f").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(KubeIntegrationTest, WatchStreamsEventsAndBookmarks) {
  ListResult start = *client_->List(WorkspaceType(), kNs);
  std::mutex mu;
  std::vector<std::pair<WatchEvent::Type, std::string>> events;
  std::string last_bookmark_rv;
  absl::Status watch_status;
  std::thread watcher([&] {
    WatchOptions options;
    options.resource_version = start.resource_version;
    options.timeout_seconds = 20;
    watch_status = client_->Watch(WorkspaceType(), kNs, options, [&](const WatchEvent& e) {
      std::lock_guard<std::mutex> lock(mu);
      if (e.type == WatchEvent::Type::kBookmark) {
        last_bookmark_rv = e.object["metadata"]["resourceVersion"];
        return true;
      }
      events.emplace_back(e.type, e.object["metadata"]["name"].get<std::string>());
      return e.type != WatchEvent::Type::kDeleted;
    });
  });
  ASSERT_TRUE(client_->Create(WorkspaceType(), kNs, Ws("w")).ok());
  ASSERT_TRUE(client_->MergePatch(WorkspaceType(), kNs, "w", {{"spec", {{"image", "x"}}}}).ok());
  // A write of another type moves the resourceVersion; a bookmark reports it.
  json svc =
      *client_->Create(ServiceType(), kNs,
                       {{"metadata", {{"name", "svc"}}}, {"spec", {{"ports", {{{"port", 80}}}}}}});
  int64_t svc_rv = std::stoll(Rv(svc));
  EXPECT_TRUE(WaitFor([&] {
    std::lock_guard<std::mutex> lock(mu);
    return !last_bookmark_rv.empty() && std::stoll(last_bookmark_rv) >= svc_rv;
  })) << last_bookmark_rv;
  ASSERT_TRUE(client_->Delete(WorkspaceType(), kNs, "w").ok());
  watcher.join();
  EXPECT_TRUE(watch_status.ok()) << watch_status;
  EXPECT_THAT(events,
              ::testing::ElementsAre(std::pair(WatchEvent::Type::kAdded, std::string("w")),
                                     std::pair(WatchEvent::Type::kModified, std::string("w")),
                                     std::pair(WatchEvent::Type::kDeleted, std::string("w"))));
}

TEST_F(KubeIntegrationTest, WatchCancelAndGone) {
  ListResult start = *client_->List(WorkspaceType(), kNs);
  std::atomic<bool> cancel{false};
  WatchOptions options;
  options.resource_version = start.resource_version;
  options.cancel = &cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cancel = true;
  });
  auto begin = std::chrono::steady_clock::now();
  absl::Status s =
      client_->Watch(WorkspaceType(), kNs, options, [](const WatchEvent&) { return true; });
  canceller.join();
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::milliseconds(1500));

  ASSERT_TRUE(client_->Create(WorkspaceType(), kNs, Ws("a")).ok());
  ASSERT_TRUE(Control("POST", "/fake/compact").ok());
  options.cancel = nullptr;
  s = client_->Watch(WorkspaceType(), kNs, options, [](const WatchEvent&) { return true; });
  EXPECT_TRUE(IsGone(s)) << s;
}

TEST_F(KubeIntegrationTest, InformerRelistsAfterCompactionAndConverges) {
  ASSERT_TRUE(client_->Create(WorkspaceType(), kNs, Ws("a")).ok());
  ASSERT_TRUE(client_->Create(WorkspaceType(), kNs, Ws("b")).ok());
  Informer::Options options;
  options.backoff_initial_ms = 20;
  options.backoff_max_ms = 200;
  Informer informer(*client_, WorkspaceType(), kNs, options);
  std::mutex mu;
  std::vector<std::string> keys;
  informer.AddHandler([&](const std::string& ns, const std::string& name) {
    std::lock_guard<std::mutex> lock(mu);
    keys.push_back(ns + "/" + name);
  });
  std::atomic<bool> stop{false};
  std::thread runner([&] { informer.Run(stop).IgnoreError(); });
  ASSERT_TRUE(WaitFor([&] { return informer.HasSynced() && informer.watches() >= 1; }));
  EXPECT_EQ(informer.List().size(), 2u);

  // Changes the informer sees through its watch.
  ASSERT_TRUE(client_->Create(WorkspaceType(), kNs, Ws("c")).ok());
  ASSERT_TRUE(WaitFor([&] { return informer.Get(kNs, "c").has_value(); }));

  // Move the resourceVersion past the informer's (a write of another type), compact and end
  // the watches: the informer's re-watch is Gone and it relists. A bookmark may bring the
  // informer up to date between the write and the compaction; then try again.
  ASSERT_TRUE(client_->Delete(WorkspaceType(), kNs, "a").ok());
  for (int attempt = 0; attempt < 10 && informer.relists_on_gone() == 0; ++attempt) {
    ASSERT_TRUE(client_
                    ->Create(ServiceType(), kNs,
                             {{"metadata", {{"name", fmt::format("svc{}", attempt)}}},
                              {"spec", {{"ports", {{{"port", 80}}}}}}})
                    .ok());
    ASSERT_TRUE(Control("POST", "/fake/compact").ok());
    ASSERT_TRUE(Control("POST", "/fake/close-watches").ok());
    WaitFor([&] { return informer.relists_on_gone() > 0; }, 1000);
  }
  EXPECT_GE(informer.relists_on_gone(), 1);
  EXPECT_GE(informer.lists(), 2);
  ASSERT_TRUE(WaitFor([&] { return informer.List().size() == 2; }));
  EXPECT_FALSE(informer.Get(kNs, "a").has_value());
  EXPECT_TRUE(informer.Get(kNs, "b").has_value());
  EXPECT_TRUE(informer.Get(kNs, "c").has_value());

  // And it keeps following after the relist.
  ASSERT_TRUE(client_->Create(WorkspaceType(), kNs, Ws("d")).ok());
  ASSERT_TRUE(WaitFor([&] { return informer.Get(kNs, "d").has_value(); }));
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_NE(std::find(keys.begin(), keys.end(), "default/a"), keys.end());
  }
  stop = true;
  runner.join();
}

LeaderElector::Options FastLease(const std::string& identity) {
  LeaderElector::Options options;
  options.ns = kNs;
  options.lease_name = "tessera-operator";
  options.identity = identity;
  options.lease_duration_ms = 1000;
  options.renew_deadline_ms = 700;
  options.retry_period_ms = 200;
  options.release_on_cancel = false;
  return options;
}

TEST_F(KubeIntegrationTest, TwoElectorsOneLeaderAndTakeoverAfterExpiry) {
  std::unique_ptr<CurlKubeClient> client_b = Client("certs");
  ASSERT_NE(client_b, nullptr);
  LeaderElector a(*client_, FastLease("replica-a"));
  LeaderElector b(*client_b, FastLease("replica-b"));
  std::atomic<bool> stop_a{false}, stop_b{false};
  std::atomic<int> started_a{0}, started_b{0};
  absl::Status status_a, status_b;
  std::thread ta([&] {
    status_a = a.Run(
        stop_a, [&] { ++started_a; }, nullptr);
  });
  std::thread tb([&] {
    status_b = b.Run(
        stop_b, [&] { ++started_b; }, nullptr);
  });

  ASSERT_TRUE(WaitFor([&] { return a.IsLeader() || b.IsLeader(); }));
  // For 1.5 s (several lease durations), exactly one leads.
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  while (std::chrono::steady_clock::now() < until) {
    bool la = a.IsLeader();
    bool lb = b.IsLeader();
    ASSERT_FALSE(la && lb);
    ASSERT_TRUE(la || lb);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(started_a + started_b, 1);

  bool a_led = a.IsLeader();
  LeaderElector& follower = a_led ? b : a;
  std::atomic<bool>& stop_leader = a_led ? stop_a : stop_b;
  std::thread& leader_thread = a_led ? ta : tb;
  auto stopped_at = std::chrono::steady_clock::now();
  stop_leader = true;  // no release: the follower must wait for the lease to expire
  leader_thread.join();
  ASSERT_TRUE(WaitFor([&] { return follower.IsLeader(); }, 5000));
  auto waited = std::chrono::steady_clock::now() - stopped_at;
  EXPECT_GE(waited, std::chrono::milliseconds(700));
  EXPECT_LT(waited, std::chrono::milliseconds(3000));

  json lease = *client_->Get(LeaseType(), kNs, "tessera-operator");
  EXPECT_EQ(lease["spec"]["holderIdentity"], a_led ? "replica-b" : "replica-a");
  EXPECT_EQ(lease["spec"]["leaseTransitions"], 1);
  EXPECT_EQ(lease["spec"]["leaseDurationSeconds"], 1);

  (a_led ? stop_b : stop_a) = true;
  (a_led ? tb : ta).join();
  EXPECT_TRUE(status_a.ok()) << status_a;
  EXPECT_TRUE(status_b.ok()) << status_b;
}

}  // namespace
}  // namespace tessera::workspaces::kube
