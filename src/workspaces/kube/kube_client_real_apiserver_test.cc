// The KubeClient conformance suite (kube_client_conformance.h) with the real CurlKubeClient
// against a real kube-apiserver 1.20.2 + etcd + kube-controller-manager (tests/kube/cluster.py,
// one cluster for the whole binary), and the client's own behaviour there: client certificates,
// RBAC denials, leader election on a real Lease, an informer across an API server restart. Skipped
// when `make kube-apiserver` has not built it. One process (not one per test, as
// gtest_discover_tests would run it): a cluster takes ~10 s to start.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "common/errors.h"
#include "common/status_macros.h"
#include "workspaces/kube/curl_kube_client.h"
#include "workspaces/kube/informer.h"
#include "workspaces/kube/kube_client_conformance.h"
#include "workspaces/kube/kube_cluster_process.h"
#include "workspaces/kube/kube_config.h"
#include "workspaces/kube/leader_election.h"

namespace tessera::workspaces::kube {
namespace {

// One real cluster for the whole binary, started by the first test that needs it; stopped at
// exit. nullptr (the tests skip) when the binaries are not installed.
KubeClusterProcess* SharedCluster() {
  static absl::Status start_status;
  static const std::unique_ptr<KubeClusterProcess> cluster = [] {
    auto c = std::make_unique<KubeClusterProcess>();
    start_status = c->Start();
    return start_status.ok() ? std::move(c) : nullptr;
  }();
  if (cluster == nullptr && !absl::IsFailedPrecondition(start_status)) {
    ADD_FAILURE() << "the real API server did not start: " << start_status;
  }
  return cluster.get();
}

class RealApiServer final : public KubeClientUnderTest {
 public:
  explicit RealApiServer(std::unique_ptr<CurlKubeClient> client) : client_(std::move(client)) {}
  KubeClient& client() override { return *client_; }
  // A restarted kube-apiserver starts its watch cache at the current revision: a watch from
  // any older resourceVersion gets 410.
  void CompactHistory() override {
    absl::Status s = SharedCluster()->RestartApiServer();
    EXPECT_TRUE(s.ok()) << s;
  }
  bool SendsFrequentBookmarks() const override { return false; }

 private:
  std::unique_ptr<CurlKubeClient> client_;
};

// Deletes what the suite creates (Workspaces, Services, Leases) in its two namespaces, finalizers
// first, and waits until they are gone: each test starts from an empty cluster.
absl::Status EmptyCluster(KubeClient& kube) {
  for (const ResourceType* type : {&WorkspaceType(), &ServiceType(), &LeaseType()}) {
    for (const char* ns : {"default", "kube-system"}) {
      TESSERA_ASSIGN_OR_RETURN(ListResult list, kube.List(*type, ns));
      for (const nlohmann::json& item : list.items) {
        const std::string name = item["metadata"].value("name", "");
        if (type == &ServiceType() && name == "kubernetes") continue;
        if (type == &LeaseType() && std::string(ns) == "kube-system") continue;  // controllers'
        if (item["metadata"].contains("finalizers")) {
          absl::Status s =
              kube.MergePatch(*type, ns, name, {{"metadata", {{"finalizers", nullptr}}}}).status();
          if (!s.ok() && !absl::IsNotFound(s)) return s;
        }
        absl::Status s = kube.Delete(*type, ns, name);
        if (!s.ok() && !absl::IsNotFound(s)) return s;
      }
    }
  }
  for (int i = 0; i < 500; ++i) {
    bool empty = true;
    for (const ResourceType* type : {&WorkspaceType(), &ServiceType()}) {
      for (const char* ns : {"default", "kube-system"}) {
        TESSERA_ASSIGN_OR_RETURN(ListResult list, kube.List(*type, ns));
        for (const nlohmann::json& item : list.items) {
          if (item["metadata"].value("name", "") != "kubernetes") empty = false;
        }
      }
    }
    if (empty) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Unavailable("objects of an earlier test are still being deleted");
}

std::unique_ptr<KubeClientUnderTest> MakeReal() {
  KubeClusterProcess* cluster = SharedCluster();
  if (cluster == nullptr) return nullptr;
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(cluster->KubeconfigPath("admin"), "");
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<CurlKubeClient>> client = CurlKubeClient::Create(*config);
  EXPECT_TRUE(client.ok()) << client.status();
  if (!client.ok()) return nullptr;
  absl::Status emptied = EmptyCluster(**client);
  EXPECT_TRUE(emptied.ok()) << emptied;
  return std::make_unique<RealApiServer>(std::move(*client));
}

INSTANTIATE_TEST_SUITE_P(Kube, KubeClientConformanceTest,
                         ::testing::Values(KubeClientFactory{"CurlToKubeApiServer", MakeReal}),
                         KubeClientFactoryName);

}  // namespace
}  // namespace tessera::workspaces::kube

// The CurlKubeClient's own behaviour where a real server can show it: certificates and RBAC,
// leader election on a real Lease, an informer across an API server restart.
namespace tessera::workspaces::kube {
namespace {

std::unique_ptr<CurlKubeClient> RealClient(const std::string& user) {
  KubeClusterProcess* cluster = SharedCluster();
  if (cluster == nullptr) return nullptr;
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(cluster->KubeconfigPath(user), "");
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<CurlKubeClient>> client = CurlKubeClient::Create(*config);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? std::move(*client) : nullptr;
}

bool WaitUntil(const std::function<bool()>& pred, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

#define SKIP_WITHOUT_CLUSTER()                                                 \
  if (SharedCluster() == nullptr) {                                            \
    if (!HasFailure()) GTEST_SKIP() << "the real API server is not installed"; \
    return;                                                                    \
  }

TEST(RealApiServerTest, ClientCertificatesTokensAndRbacDenials) {
  SKIP_WITHOUT_CLUSTER();
  std::unique_ptr<CurlKubeClient> certs = RealClient("admin-certs");
  ASSERT_NE(certs, nullptr);
  EXPECT_TRUE(certs->config().token.empty());
  absl::StatusOr<ListResult> list = certs->List(WorkspaceType(), "default");
  EXPECT_TRUE(list.ok()) << list.status();
  // alice is authenticated but bound nowhere: 403, mapped, with the server's reason.
  std::unique_ptr<CurlKubeClient> alice = RealClient("alice");
  ASSERT_NE(alice, nullptr);
  absl::Status denied = alice->List(WorkspaceType(), "default").status();
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied) << denied;
  EXPECT_THAT(StatusMessage(denied), ::testing::HasSubstr("User \"alice\" cannot list"));
  // No credentials: 401.
  KubeConfig anonymous = certs->config();
  anonymous.client_cert_file.clear();
  anonymous.client_key_file.clear();
  absl::StatusOr<std::unique_ptr<CurlKubeClient>> anon = CurlKubeClient::Create(anonymous);
  ASSERT_TRUE(anon.ok());
  EXPECT_EQ((*anon)->List(WorkspaceType(), "default").status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(RealApiServerTest, TwoElectorsOneLeaderAndTakeoverAfterExpiryOnARealLease) {
  SKIP_WITHOUT_CLUSTER();
  std::unique_ptr<CurlKubeClient> client_a = RealClient("admin");
  std::unique_ptr<CurlKubeClient> client_b = RealClient("admin-certs");
  ASSERT_NE(client_a, nullptr);
  ASSERT_NE(client_b, nullptr);
  auto options = [](const std::string& identity) {
    LeaderElector::Options o;
    o.ns = "default";
    o.lease_name = "real-lease-test";
    o.identity = identity;
    o.lease_duration_ms = 2000;
    o.renew_deadline_ms = 1500;
    o.retry_period_ms = 200;
    o.release_on_cancel = false;
    return o;
  };
  LeaderElector a(*client_a, options("replica-a"));
  LeaderElector b(*client_b, options("replica-b"));
  std::atomic<bool> stop_a{false}, stop_b{false};
  std::atomic<int> started{0};
  std::thread ta([&] {
    a.Run(
         stop_a, [&] { ++started; }, nullptr)
        .IgnoreError();
  });
  std::thread tb([&] {
    b.Run(
         stop_b, [&] { ++started; }, nullptr)
        .IgnoreError();
  });
  ASSERT_TRUE(WaitUntil([&] { return a.IsLeader() || b.IsLeader(); }, 10'000));
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(3000);
  while (std::chrono::steady_clock::now() < until) {
    ASSERT_FALSE(a.IsLeader() && b.IsLeader());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(started.load(), 1);
  const bool a_led = a.IsLeader();
  LeaderElector& follower = a_led ? b : a;
  auto stopped_at = std::chrono::steady_clock::now();
  (a_led ? stop_a : stop_b) = true;  // no release: the follower waits for the lease to expire
  (a_led ? ta : tb).join();
  ASSERT_TRUE(WaitUntil([&] { return follower.IsLeader(); }, 10'000));
  const auto waited = std::chrono::steady_clock::now() - stopped_at;
  EXPECT_GE(waited, std::chrono::milliseconds(1000));
  EXPECT_LT(waited, std::chrono::milliseconds(5000));
  absl::StatusOr<nlohmann::json> lease = client_a->Get(LeaseType(), "default", "real-lease-test");
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_EQ((*lease)["spec"]["holderIdentity"], a_led ? "replica-b" : "replica-a");
  EXPECT_EQ((*lease)["spec"]["leaseTransitions"], 1);
  (a_led ? stop_b : stop_a) = true;
  (a_led ? tb : ta).join();
}

TEST(RealApiServerTest, InformerRelistsAcrossAnApiServerRestartAndConverges) {
  SKIP_WITHOUT_CLUSTER();
  std::unique_ptr<CurlKubeClient> client = RealClient("admin");
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(EmptyCluster(*client).ok());
  auto ws = [](const std::string& name) {
    return nlohmann::json{{"apiVersion", "workspaces.tessera.dev/v1alpha1"},
                          {"kind", "Workspace"},
                          {"metadata", {{"name", name}}},
                          {"spec", {{"owner", "alice@example.com"}}}};
  };
  ASSERT_TRUE(client->Create(WorkspaceType(), "default", ws("a")).ok());
  Informer::Options options;
  options.backoff_initial_ms = 50;
  options.backoff_max_ms = 500;
  Informer informer(*client, WorkspaceType(), "default", options);
  std::atomic<bool> stop{false};
  std::thread runner([&] { informer.Run(stop).IgnoreError(); });
  ASSERT_TRUE(WaitUntil([&] { return informer.HasSynced() && informer.watches() >= 1; }, 10'000));
  const int64_t lists_before = informer.lists();
  // Writes the informer has not seen reach a new watch cache: its re-watch from the old
  // resourceVersion is 410 Gone (or fails until the server is back), and it relists.
  ASSERT_TRUE(SharedCluster()->RestartApiServer().ok());
  ASSERT_TRUE(client->Create(WorkspaceType(), "default", ws("b")).ok());
  ASSERT_TRUE(client->Delete(WorkspaceType(), "default", "a").ok());
  EXPECT_TRUE(WaitUntil([&] { return informer.lists() > lists_before; }, 30'000));
  EXPECT_TRUE(WaitUntil(
      [&] { return informer.Get("default", "b").has_value() && !informer.Get("default", "a"); },
      30'000));
  ASSERT_TRUE(client->Create(WorkspaceType(), "default", ws("c")).ok());
  EXPECT_TRUE(WaitUntil([&] { return informer.Get("default", "c").has_value(); }, 10'000));
  stop = true;
  runner.join();
}

}  // namespace
}  // namespace tessera::workspaces::kube
