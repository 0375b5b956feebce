#include "workspaces/kube/leader_election.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <regex>
#include <thread>

#include "common/errors.h"
#include "workspaces/kube/fake_kube_client.h"

namespace tessera::workspaces::kube {
namespace {

using nlohmann::json;

LeaderElector::Options Candidate(const std::string& identity, FakeClock* clock) {
  LeaderElector::Options options;
  options.ns = "tessera-system";
  options.lease_name = "tessera-operator";
  options.identity = identity;
  options.clock = clock;
  return options;  // 15 s / 10 s / 2 s
}

json Lease(FakeKubeClient& fake) {
  absl::StatusOr<json> lease = fake.Get(LeaseType(), "tessera-system", "tessera-operator");
  EXPECT_TRUE(lease.ok()) << lease.status();
  return lease.ok() ? *lease : json();
}

bool Acquire(LeaderElector& e) {
  absl::StatusOr<bool> r = e.TryAcquireOrRenew();
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() && *r;
}

TEST(KubeLeaderElectionTest, MicroTimeFormat) {
  EXPECT_EQ(FormatMicroTime(1'795'514'400'123), "2026-11-24T10:00:00.123000Z");
}

TEST(KubeLeaderElectionTest, FirstCandidateCreatesTheLease) {
  FakeClock clock(1'795'514'400'000);
  FakeKubeClient fake;
  LeaderElector a(fake, Candidate("a", &clock));
  ASSERT_TRUE(Acquire(a));
  json spec = Lease(fake)["spec"];
  EXPECT_EQ(spec["holderIdentity"], "a");
  EXPECT_EQ(spec["leaseDurationSeconds"], 15);
  EXPECT_EQ(spec["leaseTransitions"], 0);
  EXPECT_EQ(spec["renewTime"], "2026-11-24T10:00:00.000000Z");
  EXPECT_EQ(spec["acquireTime"], "2026-11-24T10:00:00.000000Z");

  clock.AdvanceMillis(2'000);
  ASSERT_TRUE(Acquire(a));  // renew
  spec = Lease(fake)["spec"];
  EXPECT_EQ(spec["renewTime"], "2026-11-24T10:00:02.000000Z");
  EXPECT_EQ(spec["acquireTime"], "2026-11-24T10:00:00.000000Z");
  EXPECT_EQ(spec["leaseTransitions"], 0);
}

TEST(KubeLeaderElectionTest, TakeoverOnlyAfterTheLeaseExpiresByOurObservation) {
  FakeClock clock(1'000'000);
  FakeKubeClient fake;
  LeaderElector a(fake, Candidate("a", &clock));
  LeaderElector b(fake, Candidate("b", &clock));
  ASSERT_TRUE(Acquire(a));
  EXPECT_FALSE(Acquire(b));
  EXPECT_EQ(b.Holder(), "a");

  // a keeps renewing: b never gets it, however long it waits.
  for (int i = 0; i < 20; ++i) {
    clock.AdvanceMillis(2'000);
    ASSERT_TRUE(Acquire(a));
    EXPECT_FALSE(Acquire(b));
  }
  // a stops renewing: b takes over once it has seen the same record for 15 s.
  clock.AdvanceMillis(14'999);
  EXPECT_FALSE(Acquire(b));
  clock.AdvanceMillis(2);
  ASSERT_TRUE(Acquire(b));
  json spec = Lease(fake)["spec"];
  EXPECT_EQ(spec["holderIdentity"], "b");
  EXPECT_EQ(spec["leaseTransitions"], 1);
  // a notices it lost.
  EXPECT_FALSE(Acquire(a));
  EXPECT_EQ(a.Holder(), "b");
}

TEST(KubeLeaderElectionTest, AStaleRenewTimeDoesNotShortenTheWait) {
  // The record says it was renewed in 1970, but we judge expiry by when WE first saw it.
  FakeClock clock(1'795'514'400'000);
  FakeKubeClient fake;
  json lease = {{"metadata", {{"name", "tessera-operator"}}},
                {"spec",
                 {{"holderIdentity", "old"},
                  {"leaseDurationSeconds", 15},
                  {"renewTime", "1970-01-01T00:00:00.000000Z"},
                  {"leaseTransitions", 4}}}};
  ASSERT_TRUE(fake.Create(LeaseType(), "tessera-system", lease).ok());
  LeaderElector b(fake, Candidate("b", &clock));
  EXPECT_FALSE(Acquire(b));
  clock.AdvanceMillis(10'000);
  EXPECT_FALSE(Acquire(b));
  clock.AdvanceMillis(5'001);
  ASSERT_TRUE(Acquire(b));
  EXPECT_EQ(Lease(fake)["spec"]["leaseTransitions"], 5);
}

TEST(KubeLeaderElectionTest, ReleasedLeaseIsTakenAtOnce) {
  FakeClock clock(1'000'000);
  FakeKubeClient fake;
  LeaderElector a(fake, Candidate("a", &clock));
  LeaderElector b(fake, Candidate("b", &clock));
  ASSERT_TRUE(Acquire(a));
  EXPECT_FALSE(Acquire(b));
  ASSERT_TRUE(a.Release().ok());
  json spec = Lease(fake)["spec"];
  EXPECT_EQ(spec["holderIdentity"], "");
  EXPECT_EQ(spec["leaseDurationSeconds"], 1);
  ASSERT_TRUE(Acquire(b));  // no waiting
  EXPECT_TRUE(b.Release().ok());
  EXPECT_TRUE(a.Release().ok());  // not the holder: nothing to do
}

TEST(KubeLeaderElectionTest, ConcurrentTakeoverHasOneWinner) {
  FakeClock clock(1'000'000);
  FakeKubeClient fake;
  LeaderElector a(fake, Candidate("a", &clock));
  LeaderElector b(fake, Candidate("b", &clock));
  LeaderElector old(fake, Candidate("old", &clock));
  ASSERT_TRUE(Acquire(old));
  EXPECT_FALSE(Acquire(a));
  EXPECT_FALSE(Acquire(b));
  clock.AdvanceMillis(16'000);
  // Run b's whole attempt between a's read and a's write.
  bool interleaved = false;
  fake.SetErrorHook([&](const std::string& call) {
    if (call.rfind("UPDATE leases", 0) == 0 && !interleaved) {
      interleaved = true;
      EXPECT_TRUE(Acquire(b));
    }
    return absl::OkStatus();
  });
  EXPECT_FALSE(Acquire(a));  // its update conflicts: b won
  EXPECT_TRUE(interleaved);
  fake.SetErrorHook(nullptr);
  EXPECT_EQ(Lease(fake)["spec"]["holderIdentity"], "b");
  EXPECT_EQ(Lease(fake)["spec"]["leaseTransitions"], 1);
}

TEST(KubeLeaderElectionTest, ValidateRejectsBadDurations) {
  FakeClock clock;
  FakeKubeClient fake;
  LeaderElector::Options options = Candidate("a", &clock);
  options.renew_deadline_ms = options.lease_duration_ms;
  LeaderElector e(fake, options);
  EXPECT_EQ(e.Validate().code(), absl::StatusCode::kInvalidArgument);
  std::atomic<bool> stop{false};
  EXPECT_EQ(e.Run(stop, nullptr, nullptr).code(), absl::StatusCode::kInvalidArgument);
}

// Run() with real time and short durations.
LeaderElector::Options Fast(const std::string& identity) {
  LeaderElector::Options options;
  options.ns = "tessera-system";
  options.lease_name = "tessera-operator";
  options.identity = identity;
  options.lease_duration_ms = 1000;
  options.renew_deadline_ms = 700;
  options.retry_period_ms = 100;
  return options;
}

struct Runner {
  Runner(KubeClient& client, LeaderElector::Options options) : elector(client, std::move(options)) {
    thread = std::thread([this] {
      status = elector.Run(
          stop, [this] { ++started; }, [this] { ++stopped; });
    });
  }
  ~Runner() { Join(); }
  void Join() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
  LeaderElector elector;
  std::atomic<bool> stop{false};
  std::atomic<int> started{0};
  std::atomic<int> stopped{0};
  absl::Status status;
  std::thread thread;
};

bool WaitFor(const std::function<bool()>& pred, int timeout_ms = 5000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

TEST(KubeLeaderElectionTest, RunGracefulStopReleasesForAFastTakeover) {
  FakeKubeClient fake;
  Runner a(fake, Fast("a"));
  ASSERT_TRUE(WaitFor([&] { return a.elector.IsLeader(); }));
  Runner b(fake, Fast("b"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(b.elector.IsLeader());
  EXPECT_EQ(b.started.load(), 0);

  auto start = std::chrono::steady_clock::now();
  a.Join();
  EXPECT_TRUE(a.status.ok()) << a.status;
  EXPECT_EQ(a.started.load(), 1);
  EXPECT_EQ(a.stopped.load(), 1);
  EXPECT_FALSE(a.elector.IsLeader());
  ASSERT_TRUE(WaitFor([&] { return b.elector.IsLeader(); }));
  // Released: b did not have to wait for the 1 s lease to expire.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));
}

TEST(KubeLeaderElectionTest, RunLosesLeadershipWhenRenewalsFail) {
  FakeKubeClient fake;
  Runner a(fake, Fast("a"));
  ASSERT_TRUE(WaitFor([&] { return a.elector.IsLeader(); }));
  fake.SetErrorHook([](const std::string& call) {
    return call.find("leases") != std::string::npos ? Unavailable("injected: API server down")
                                                    : absl::OkStatus();
  });
  ASSERT_TRUE(WaitFor([&] { return a.stopped.load() == 1; }));
  EXPECT_FALSE(a.elector.IsLeader());
  a.thread.join();
  EXPECT_EQ(a.status.code(), absl::StatusCode::kAborted) << a.status;
  EXPECT_THAT(StatusMessage(a.status), ::testing::HasSubstr("injected: API server down"));
}

}  // namespace
}  // namespace tessera::workspaces::kube
