// The KubeClient conformance suite (kube_client_conformance.h) with the real CurlKubeClient
// against a real kube-apiserver 1.20.2 + etcd + kube-controller-manager (tests/kube/cluster.py,
// one cluster for the whole binary). Skipped when `make kube-apiserver` has not built it. One
// process (not one per test, as gtest_discover_tests would run it): a cluster takes ~10 s to
// start.

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "common/errors.h"
#include "common/status_macros.h"
#include "workspaces/kube/curl_kube_client.h"
#include "workspaces/kube/kube_client_conformance.h"
#include "workspaces/kube/kube_cluster_process.h"
#include "workspaces/kube/kube_config.h"

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
