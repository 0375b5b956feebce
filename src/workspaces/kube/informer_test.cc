#include "workspaces/kube/informer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <thread>

#include "common/errors.h"
#include "workspaces/kube/fake_kube_client.h"

namespace tessera::workspaces::kube {
namespace {

using nlohmann::json;
using ::testing::UnorderedElementsAre;

bool WaitFor(const std::function<bool()>& pred, int timeout_ms = 5000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return pred();
}

json Ws(const std::string& name, const std::string& owner = "alice") {
  return {{"metadata", {{"name", name}, {"labels", {{"app", "ws"}}}}},
          {"spec", {{"owner", owner}}}};
}

// Records handler calls; runs the informer on a thread.
class InformerHarness {
 public:
  InformerHarness(FakeKubeClient& fake, Informer::Options options)
      : informer_(fake, WorkspaceType(), "ns", std::move(options)) {
    informer_.AddHandler([this](const std::string& ns, const std::string& name) {
      std::lock_guard<std::mutex> lock(mu_);
      keys_.push_back(ns + "/" + name);
    });
    thread_ = std::thread([this] { status_ = informer_.Run(stop_); });
  }
  ~InformerHarness() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::vector<std::string> TakeKeys() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    out.swap(keys_);
    return out;
  }
  bool Saw(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    return std::find(keys_.begin(), keys_.end(), key) != keys_.end();
  }
  Informer& informer() { return informer_; }
  const absl::Status& status() const { return status_; }

 private:
  Informer informer_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  absl::Status status_;
  std::mutex mu_;
  std::vector<std::string> keys_;
};

Informer::Options FastOptions() {
  Informer::Options options;
  options.backoff_initial_ms = 5;
  options.backoff_max_ms = 20;
  return options;
}

std::vector<std::string> CachedNames(const Informer& informer) {
  std::vector<std::string> names;
  for (const json& o : informer.List()) names.push_back(o["metadata"]["name"]);
  return names;
}

TEST(KubeInformerTest, ListsThenFollowsWatch) {
  FakeKubeClient fake;
  ASSERT_TRUE(fake.Create(WorkspaceType(), "ns", Ws("a")).ok());
  ASSERT_TRUE(fake.Create(WorkspaceType(), "other-ns", Ws("x")).ok());
  InformerHarness h(fake, FastOptions());
  ASSERT_TRUE(WaitFor([&] { return h.informer().HasSynced(); }));
  EXPECT_THAT(h.TakeKeys(), UnorderedElementsAre("ns/a"));
  EXPECT_THAT(CachedNames(h.informer()), UnorderedElementsAre("a"));
  ASSERT_TRUE(WaitFor([&] { return fake.ActiveWatches() == 1; }));

  ASSERT_TRUE(fake.Create(WorkspaceType(), "ns", Ws("b")).ok());
  ASSERT_TRUE(fake.MergePatch(WorkspaceType(), "ns", "a", {{"spec", {{"owner", "bob"}}}}).ok());
  ASSERT_TRUE(WaitFor([&] {
    auto a = h.informer().Get("ns", "a");
    return a.has_value() && (*a)["spec"]["owner"] == "bob" && h.informer().Get("ns", "b");
  }));
  ASSERT_TRUE(fake.Delete(WorkspaceType(), "ns", "b").ok());
  ASSERT_TRUE(WaitFor([&] { return !h.informer().Get("ns", "b").has_value(); }));
  EXPECT_THAT(h.TakeKeys(), UnorderedElementsAre("ns/b", "ns/a", "ns/b"));
  EXPECT_EQ(h.informer().LastResourceVersion(), std::to_string(fake.CurrentResourceVersion()));
  EXPECT_EQ(h.informer().lists(), 1);
  h.Stop();
  EXPECT_TRUE(h.status().ok());
}

TEST(KubeInformerTest, ReWatchesFromTheLastVersionWhenTheWatchEnds) {
  FakeKubeClient::Options fake_options;
  fake_options.bookmark_interval_ms = 0;
  FakeKubeClient fake(fake_options);
  InformerHarness h(fake, FastOptions());
  ASSERT_TRUE(WaitFor([&] { return fake.ActiveWatches() == 1; }));
  ASSERT_TRUE(fake.Create(WorkspaceType(), "ns", Ws("a")).ok());
  ASSERT_TRUE(WaitFor([&] { return h.informer().Get("ns", "a").has_value(); }));
  fake.CloseWatches();
  ASSERT_TRUE(WaitFor([&] { return h.informer().watches() >= 2 && fake.ActiveWatches() == 1; }));
  ASSERT_TRUE(fake.Create(WorkspaceType(), "ns", Ws("b")).ok());
  ASSERT_TRUE(WaitFor([&] { return h.informer().Get("ns", "b").has_value(); }));
  EXPECT_EQ(h.informer().lists(), 1);  // no relist needed
  EXPECT_EQ(h.informer().relists_on_gone(), 0);
}

TEST(KubeInformerTest, BookmarksAdvanceTheResourceVersion) {
  FakeKubeClient::Options fake_options;
  fake_options.bookmark_interval_ms = 10;
  FakeKubeClient fake(fake_options);
  InformerHarness h(fake, FastOptions());
  ASSERT_TRUE(WaitFor([&] { return h.informer().HasSynced(); }));
  // Writes of another type move the global version; only a bookmark tells the informer.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        fake.Create(ServiceType(), "ns", {{"metadata", {{"name", fmt::format("s{}", i)}}}}).ok());
  }
  std::string target = std::to_string(fake.CurrentResourceVersion());
  ASSERT_TRUE(WaitFor([&] { return h.informer().LastResourceVersion() == target; }))
      << h.informer().LastResourceVersion() << " vs " << target;
}

TEST(KubeInformerTest, RelistsOnGoneAndEmitsDeletesForVanishedObjects) {
  FakeKubeClient::Options fake_options;
  fake_options.bookmark_interval_ms = 0;  // so the informer's version falls behind
  FakeKubeClient fake(fake_options);
  ASSERT_TRUE(fake.Create(WorkspaceType(), "ns", Ws("a")).ok());
  ASSERT_TRUE(fake.Create(WorkspaceType(), "ns", Ws("b")).ok());
  Informer::Options options = FastOptions();
  options.relist_after_failures = 1'000'000;  // only Gone may cause the relist here
  InformerHarness h(fake, options);
  ASSERT_TRUE(WaitFor([&] { return h.informer().HasSynced() && fake.ActiveWatches() == 1; }));
  h.TakeKeys();

  // Cut the informer off, change things behind its back, compact the history.
  fake.SetErrorHook([](const std::string& call) {
    return call.rfind("WATCH", 0) == 0 ? Unavailable("injected: connection refused")
                                       : absl::OkStatus();
  });
  fake.CloseWatches();
  ASSERT_TRUE(WaitFor([&] { return fake.ActiveWatches() == 0; }));
  ASSERT_TRUE(fake.Delete(WorkspaceType(), "ns", "a").ok());
  ASSERT_TRUE(fake.Create(WorkspaceType(), "ns", Ws("c")).ok());
  fake.CompactHistory();
  ASSERT_TRUE(WaitFor([&] { return h.informer().watch_errors() >= 1; }));
  fake.SetErrorHook(nullptr);

  ASSERT_TRUE(WaitFor([&] { return h.informer().relists_on_gone() == 1; }));
  ASSERT_TRUE(WaitFor([&] { return CachedNames(h.informer()).size() == 2; }));
  EXPECT_THAT(CachedNames(h.informer()), UnorderedElementsAre("b", "c"));
  EXPECT_THAT(h.TakeKeys(), UnorderedElementsAre("ns/a", "ns/c"));  // b did not change
  EXPECT_EQ(h.informer().lists(), 2);
}

TEST(KubeInformerTest, BacksOffAndRecoversFromListErrors) {
  FakeKubeClient fake;
  std::atomic<int> failures{3};
  fake.SetErrorHook([&](const std::string& call) {
    if (call.rfind("LIST", 0) == 0 && failures.fetch_sub(1) > 0) return Unavailable("injected");
    return absl::OkStatus();
  });
  ASSERT_TRUE(fake.Create(WorkspaceType(), "ns", Ws("a")).ok());
  std::vector<int64_t> sleeps;
  std::mutex sleeps_mu;
  Informer::Options options = FastOptions();
  options.sleep = [&](int64_t ms, const std::atomic<bool>&) {
    std::lock_guard<std::mutex> lock(sleeps_mu);
    sleeps.push_back(ms);
  };
  InformerHarness h(fake, options);
  ASSERT_TRUE(WaitFor([&] { return h.informer().HasSynced(); }));
  EXPECT_EQ(h.informer().list_errors(), 3);
  h.Stop();
  std::lock_guard<std::mutex> lock(sleeps_mu);
  ASSERT_GE(sleeps.size(), 3u);
  EXPECT_EQ(sleeps[0], 5);
  EXPECT_EQ(sleeps[1], 10);
  EXPECT_EQ(sleeps[2], 20);  // capped at backoff_max_ms
}

TEST(KubeInformerTest, ResyncCallsHandlersForEveryKey) {
  FakeKubeClient fake;
  ASSERT_TRUE(fake.Create(WorkspaceType(), "ns", Ws("a")).ok());
  ASSERT_TRUE(fake.Create(WorkspaceType(), "ns", Ws("b")).ok());
  Informer::Options options = FastOptions();
  options.resync_period_ms = 20;
  InformerHarness h(fake, options);
  ASSERT_TRUE(WaitFor([&] { return h.informer().HasSynced(); }));
  h.TakeKeys();
  ASSERT_TRUE(WaitFor([&] { return h.Saw("ns/a") && h.Saw("ns/b"); }));
}

TEST(KubeInformerTest, StopsPromptlyWhileWatching) {
  FakeKubeClient fake;
  auto h = std::make_unique<InformerHarness>(fake, FastOptions());
  ASSERT_TRUE(WaitFor([&] { return fake.ActiveWatches() == 1; }));
  auto start = std::chrono::steady_clock::now();
  h->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ(fake.ActiveWatches(), 0);
}

}  // namespace
}  // namespace tessera::workspaces::kube
