// The KubeClient conformance suite (kube_client_conformance.h) against the in-memory
// FakeKubeClient and the real CurlKubeClient talking to tests/kube/fake_apiserver.py over TLS.
// kube_client_real_apiserver_test.cc runs the same suite against a real kube-apiserver, which is
// the reference: where a fake disagrees with it, the fake is fixed.

#include "workspaces/kube/kube_client_conformance.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>

#include "workspaces/kube/curl_kube_client.h"
#include "workspaces/kube/fake_apiserver_process.h"
#include "workspaces/kube/fake_kube_client.h"
#include "workspaces/kube/kube_config.h"

namespace tessera::workspaces::kube {
namespace {

class InMemory final : public KubeClientUnderTest {
 public:
  InMemory() : fake_(Options()) {}
  KubeClient& client() override { return fake_; }
  void CompactHistory() override { fake_.CompactHistory(); }

 private:
  static FakeKubeClient::Options Options() {
    FakeKubeClient::Options options;
    options.bookmark_interval_ms = 200;
    return options;
  }
  FakeKubeClient fake_;
};

// One fake API server for the whole binary, started by the first test that needs it (so the
// in-memory tests never start Python) and reset before every test; stopped at exit.
FakeApiServerProcess* SharedServer() {
  static const std::unique_ptr<FakeApiServerProcess> server = [] {
    auto s = std::make_unique<FakeApiServerProcess>();
    absl::Status started = s->Start(/*bookmark_interval_s=*/0.2);
    EXPECT_TRUE(started.ok()) << started;
    return started.ok() ? std::move(s) : nullptr;
  }();
  return server.get();
}

class OverHttps final : public KubeClientUnderTest {
 public:
  explicit OverHttps(std::unique_ptr<CurlKubeClient> client) : client_(std::move(client)) {}
  KubeClient& client() override { return *client_; }
  void CompactHistory() override {
    EXPECT_TRUE(SharedServer()->Control("POST", "/fake/compact").ok());
  }

 private:
  std::unique_ptr<CurlKubeClient> client_;
};

std::unique_ptr<KubeClientUnderTest> MakeInMemory() { return std::make_unique<InMemory>(); }

std::unique_ptr<KubeClientUnderTest> MakeOverHttps() {
  FakeApiServerProcess* server = SharedServer();
  if (server == nullptr) return nullptr;
  absl::StatusOr<nlohmann::json> reset = server->Control("POST", "/fake/reset");
  EXPECT_TRUE(reset.ok()) << reset.status();
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(server->KubeconfigPath(), "token");
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<CurlKubeClient>> client = CurlKubeClient::Create(*config);
  EXPECT_TRUE(client.ok()) << client.status();
  if (!client.ok()) return nullptr;
  return std::make_unique<OverHttps>(std::move(*client));
}

INSTANTIATE_TEST_SUITE_P(Kube, KubeClientConformanceTest,
                         ::testing::Values(KubeClientFactory{"FakeKubeClient", MakeInMemory},
                                           KubeClientFactory{"CurlToFakeApiServer", MakeOverHttps}),
                         KubeClientFactoryName);

}  // namespace
}  // namespace tessera::workspaces::kube
