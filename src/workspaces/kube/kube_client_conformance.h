#pragma once

// The behaviour every KubeClient must show, as a value-parameterized GoogleTest suite: the
// in-memory FakeKubeClient and the real CurlKubeClient talking to tests/kube/fake_apiserver.py
// (the strict fake API server, which answers like a kube-apiserver and is the reference) run the
// same tests. A test file includes this header once and instantiates the suite with factories:
//
//   INSTANTIATE_TEST_SUITE_P(Fake, KubeClientConformanceTest,
//                            ::testing::Values(KubeClientFactory{"Fake", MakeFake}),
//                            KubeClientFactoryName);
//
// Each test gets a client over an empty cluster in which the namespaces "default" and
// "kube-system" exist. Only what a controller relies on is pinned here; what one implementation
// does not model (server-side apply field ownership, name validation, paging) is tested against
// the fake API server alone in kube_client_integration_test.cc.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "workspaces/kube/kube_client.h"

namespace tessera::workspaces::kube {

// A client under test plus the two server-side controls the suite needs.
class KubeClientUnderTest {
 public:
  virtual ~KubeClientUnderTest() = default;
  virtual KubeClient& client() = 0;
  // Forgets the watch history: a Watch from an older resourceVersion is then OutOfRange.
  virtual void CompactHistory() = 0;
  // Whether an idle watch gets a BOOKMARK within a second or so. The fakes send one every
  // 200 ms; kube-apiserver 1.20 sends them about once a minute (and, by its code, 2 s before a
  // watch's timeout, which was not seen within a 3 s watch).
  virtual bool SendsFrequentBookmarks() const { return true; }
};

struct KubeClientFactory {
  std::string name;  // test-name suffix: letters, digits, underscores
  // Makes a client over an empty cluster, or nullptr (skip) when the backend is not installed.
  std::function<std::unique_ptr<KubeClientUnderTest>()> make;
};

inline std::string KubeClientFactoryName(const ::testing::TestParamInfo<KubeClientFactory>& info) {
  return info.param.name;
}

inline void PrintTo(const KubeClientFactory& f, std::ostream* os) { *os << f.name; }

class KubeClientConformanceTest : public ::testing::TestWithParam<KubeClientFactory> {
 protected:
  using json = nlohmann::json;
  static constexpr char kNs[] = "default";
  static constexpr char kOtherNs[] = "kube-system";

  void SetUp() override {
    under_test_ = GetParam().make();
    // A backend that is not installed (the real API server before `make kube-apiserver`)
    // returns nullptr without a failure: skipped. Any other nullptr comes with a failure.
    if (under_test_ == nullptr && !HasFailure()) GTEST_SKIP() << GetParam().name << " unavailable";
    ASSERT_NE(under_test_, nullptr);
  }

  KubeClient& kube() { return under_test_->client(); }

  static json Ws(const std::string& name) {
    return {{"apiVersion", "workspaces.tessera.dev/v1alpha1"},
            {"kind", "Workspace"},
            {"metadata", {{"name", name}, {"labels", {{"team", "a"}}}}},
            {"spec", {{"owner", "alice@example.com"}}},
            {"status", {{"phase", "Ready"}}}};
  }
  static json Svc(const std::string& name) {
    return {{"apiVersion", "v1"},
            {"kind", "Service"},
            {"metadata", {{"name", name}}},
            // protocol: 1.20's server-side apply needs every key of the (port, protocol)
            // associative list, defaulted or not.
            {"spec", {{"ports", {{{"port", 80}, {"protocol", "TCP"}}}}}}};
  }
  static std::string Rv(const json& object) {
    return object["metadata"]["resourceVersion"].get<std::string>();
  }
  static bool WaitFor(const std::function<bool()>& pred, int timeout_ms = 10'000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return pred();
  }

  std::unique_ptr<KubeClientUnderTest> under_test_;
};

TEST_P(KubeClientConformanceTest, CreateGetAndAlreadyExists) {
  absl::StatusOr<json> created = kube().Create(WorkspaceType(), kNs, Ws("w1"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ((*created)["apiVersion"], "workspaces.tessera.dev/v1alpha1");
  EXPECT_EQ((*created)["kind"], "Workspace");
  EXPECT_EQ((*created)["metadata"]["namespace"], kNs);
  EXPECT_EQ((*created)["metadata"]["generation"], 1);
  EXPECT_FALSE((*created)["metadata"]["uid"].get<std::string>().empty());
  EXPECT_FALSE(Rv(*created).empty());
  EXPECT_TRUE((*created)["metadata"].contains("creationTimestamp"));
  EXPECT_FALSE(created->contains("status"));  // status subresource: dropped on create

  absl::StatusOr<json> got = kube().Get(WorkspaceType(), kNs, "w1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)["metadata"]["uid"], (*created)["metadata"]["uid"]);
  EXPECT_EQ(Rv(*got), Rv(*created));
  EXPECT_EQ((*got)["spec"], (*created)["spec"]);

  absl::StatusOr<json> again = kube().Create(WorkspaceType(), kNs, Ws("w1"));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();
  EXPECT_THAT(StatusMessage(again.status()), ::testing::HasSubstr("already exists"));
  absl::StatusOr<json> missing = kube().Get(WorkspaceType(), kOtherNs, "w1");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
  EXPECT_THAT(StatusMessage(missing.status()), ::testing::HasSubstr("\"w1\" not found"));

  // generateName: the server picks a unique name with that prefix.
  json generated = Ws("");
  generated["metadata"].erase("name");
  generated["metadata"]["generateName"] = "gen-";
  absl::StatusOr<json> g1 = kube().Create(WorkspaceType(), kNs, generated);
  absl::StatusOr<json> g2 = kube().Create(WorkspaceType(), kNs, generated);
  ASSERT_TRUE(g1.ok() && g2.ok()) << g1.status() << " " << g2.status();
  EXPECT_EQ((*g1)["metadata"]["name"].get<std::string>().rfind("gen-", 0), 0u);
  EXPECT_NE((*g1)["metadata"]["name"], (*g2)["metadata"]["name"]);
}

TEST_P(KubeClientConformanceTest, UpdateChecksResourceVersionAndBumpsGeneration) {
  json w = *kube().Create(WorkspaceType(), kNs, Ws("w"));
  json stale = w;

  w["metadata"]["labels"]["x"] = "y";  // metadata only: no generation bump
  absl::StatusOr<json> updated = kube().Update(WorkspaceType(), kNs, w);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ((*updated)["metadata"]["generation"], 1);
  EXPECT_NE(Rv(*updated), Rv(w));

  (*updated)["spec"]["owner"] = "bob@example.com";
  absl::StatusOr<json> updated2 = kube().Update(WorkspaceType(), kNs, *updated);
  ASSERT_TRUE(updated2.ok()) << updated2.status();
  EXPECT_EQ((*updated2)["metadata"]["generation"], 2);

  stale["spec"]["owner"] = "carol@example.com";
  absl::StatusOr<json> conflict = kube().Update(WorkspaceType(), kNs, stale);
  EXPECT_TRUE(IsConflict(conflict.status())) << conflict.status();
  EXPECT_THAT(StatusMessage(conflict.status()),
              ::testing::HasSubstr("the object has been modified"));

  // A write that changes nothing keeps the resourceVersion.
  absl::StatusOr<json> same = kube().Update(WorkspaceType(), kNs, *updated2);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(Rv(*same), Rv(*updated2));

  json ghost = Ws("ghost");
  EXPECT_EQ(kube().Update(WorkspaceType(), kNs, ghost).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(KubeClientConformanceTest, StatusSubresourceIsSeparate) {
  json w = *kube().Create(WorkspaceType(), kNs, Ws("w"));
  w["status"] = {{"phase", "Starting"}};
  w["spec"]["owner"] = "ignored@example.com";
  absl::StatusOr<json> after_status = kube().Update(WorkspaceType(), kNs, w, /*status=*/true);
  ASSERT_TRUE(after_status.ok()) << after_status.status();
  EXPECT_EQ((*after_status)["status"]["phase"], "Starting");
  EXPECT_EQ((*after_status)["spec"]["owner"], "alice@example.com");
  EXPECT_EQ((*after_status)["metadata"]["generation"], 1);

  // The main resource ignores status.
  json main = *after_status;
  main["status"] = {{"phase", "Failed"}};
  main["spec"]["owner"] = "bob@example.com";
  absl::StatusOr<json> after_main = kube().Update(WorkspaceType(), kNs, main);
  ASSERT_TRUE(after_main.ok()) << after_main.status();
  EXPECT_EQ((*after_main)["status"]["phase"], "Starting");
  EXPECT_EQ((*after_main)["spec"]["owner"], "bob@example.com");

  absl::StatusOr<json> patched = kube().MergePatch(
      WorkspaceType(), kNs, "w",
      {{"spec", {{"owner", "eve@example.com"}}}, {"status", {{"phase", "Ready"}}}},
      /*status=*/true);
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_EQ((*patched)["status"]["phase"], "Ready");
  EXPECT_EQ((*patched)["spec"]["owner"], "bob@example.com");

  ApplyOptions apply;
  apply.field_manager = "tessera-status";
  json status_intent = {{"apiVersion", "workspaces.tessera.dev/v1alpha1"},
                        {"kind", "Workspace"},
                        {"metadata", {{"name", "w"}}},
                        {"status", {{"url", "https://w.example.com"}}}};
  absl::StatusOr<json> applied =
      kube().Apply(WorkspaceType(), kNs, status_intent, apply, /*status=*/true);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ((*applied)["status"]["url"], "https://w.example.com");
  EXPECT_EQ((*applied)["spec"]["owner"], "bob@example.com");

  // Leases have no status subresource: the object is stored whole.
  json lease = {{"metadata", {{"name", "l"}}}, {"spec", {{"holderIdentity", "a"}}}};
  absl::StatusOr<json> created = kube().Create(LeaseType(), kNs, lease);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ((*created)["apiVersion"], "coordination.k8s.io/v1");
  EXPECT_EQ((*created)["kind"], "Lease");
  EXPECT_EQ((*created)["spec"]["holderIdentity"], "a");
}

TEST_P(KubeClientConformanceTest, MergePatch) {
  ASSERT_TRUE(kube().Create(WorkspaceType(), kNs, Ws("w")).ok());
  absl::StatusOr<json> p = kube().MergePatch(
      WorkspaceType(), kNs, "w", {{"metadata", {{"labels", {{"team", nullptr}, {"new", "1"}}}}}});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE((*p)["metadata"]["labels"].contains("team"));
  EXPECT_EQ((*p)["metadata"]["labels"]["new"], "1");
  EXPECT_EQ((*p)["metadata"]["generation"], 1);

  absl::StatusOr<json> spec =
      kube().MergePatch(WorkspaceType(), kNs, "w", {{"spec", {{"image", "code-server:1"}}}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ((*spec)["spec"]["image"], "code-server:1");
  EXPECT_EQ((*spec)["spec"]["owner"], "alice@example.com");
  EXPECT_EQ((*spec)["metadata"]["generation"], 2);

  EXPECT_EQ(kube().MergePatch(WorkspaceType(), kNs, "nope", json::object()).status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<json> stale =
      kube().MergePatch(WorkspaceType(), kNs, "w",
                        {{"metadata", {{"resourceVersion", Rv(*p)}}}, {"spec", {{"image", "x"}}}});
  EXPECT_TRUE(IsConflict(stale.status())) << stale.status();
}

TEST_P(KubeClientConformanceTest, ApplyCreatesThenMerges) {
  absl::StatusOr<json> created = kube().Apply(ServiceType(), kNs, Svc("s"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ((*created)["spec"]["ports"][0]["port"], 80);

  json intent = Svc("s");
  intent["spec"]["type"] = "ClusterIP";
  absl::StatusOr<json> applied = kube().Apply(ServiceType(), kNs, intent);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ((*applied)["spec"]["type"], "ClusterIP");
  EXPECT_EQ((*applied)["metadata"]["uid"], (*created)["metadata"]["uid"]);
  EXPECT_NE(Rv(*applied), Rv(*created));  // (Services have no generation on a real server)

  absl::StatusOr<json> again = kube().Apply(ServiceType(), kNs, intent);  // no-op
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(Rv(*again), Rv(*applied));

  // Fields another writer set and the intent does not mention stay.
  ASSERT_TRUE(kube()
                  .MergePatch(ServiceType(), kNs, "s",
                              {{"metadata", {{"annotations", {{"note", "kept"}}}}}})
                  .ok());
  absl::StatusOr<json> after = kube().Apply(ServiceType(), kNs, intent);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ((*after)["metadata"]["annotations"]["note"], "kept");
}

TEST_P(KubeClientConformanceTest, DeleteHonorsFinalizersAndPreconditions) {
  json w = Ws("w");
  w["metadata"]["finalizers"] = {"workspaces.tessera.dev/cleanup"};
  json created = *kube().Create(WorkspaceType(), kNs, w);

  DeleteOptions wrong_uid;
  wrong_uid.precondition_uid = "not-the-uid";
  EXPECT_TRUE(IsConflict(kube().Delete(WorkspaceType(), kNs, "w", wrong_uid)));
  ASSERT_TRUE(kube()
                  .MergePatch(WorkspaceType(), kNs, "w", {{"metadata", {{"labels", {{"x", "y"}}}}}})
                  .ok());
  DeleteOptions wrong_rv;
  wrong_rv.precondition_resource_version = Rv(created);  // moved on with the patch
  EXPECT_TRUE(IsConflict(kube().Delete(WorkspaceType(), kNs, "w", wrong_rv)));

  DeleteOptions right;
  right.precondition_uid = created["metadata"]["uid"];
  ASSERT_TRUE(kube().Delete(WorkspaceType(), kNs, "w", right).ok());
  absl::StatusOr<json> deleting = kube().Get(WorkspaceType(), kNs, "w");
  ASSERT_TRUE(deleting.ok()) << deleting.status();
  EXPECT_TRUE((*deleting)["metadata"].contains("deletionTimestamp"));
  EXPECT_TRUE(kube().Delete(WorkspaceType(), kNs, "w").ok());  // again: still OK

  (*deleting)["metadata"]["finalizers"] = json::array();
  ASSERT_TRUE(kube().Update(WorkspaceType(), kNs, *deleting).ok());
  EXPECT_EQ(kube().Get(WorkspaceType(), kNs, "w").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(kube().Delete(WorkspaceType(), kNs, "w").code(), absl::StatusCode::kNotFound);
}

TEST_P(KubeClientConformanceTest, DeleteCollectsDependents) {
  json owner = *kube().Create(WorkspaceType(), kNs, Ws("w"));
  json ref = {{"apiVersion", "workspaces.tessera.dev/v1alpha1"},
              {"kind", "Workspace"},
              {"name", "w"},
              {"uid", owner["metadata"]["uid"]},
              {"controller", true}};
  for (const char* name : {"s1", "s2"}) {
    json svc = Svc(name);
    svc["metadata"]["ownerReferences"] = {ref};
    ASSERT_TRUE(kube().Create(ServiceType(), kNs, svc).ok());
  }
  ASSERT_TRUE(kube().Create(ServiceType(), kNs, Svc("unowned")).ok());

  ASSERT_TRUE(kube().Delete(WorkspaceType(), kNs, "w").ok());
  // A real API server's garbage collector (kube-controller-manager) deletes them shortly after.
  // (Its "kubernetes" Service in default is not the suite's.)
  std::vector<std::string> left;
  EXPECT_TRUE(WaitFor([&] {
    absl::StatusOr<ListResult> list = kube().List(ServiceType(), kNs);
    left.clear();
    for (const json& item : list.ok() ? list->items : std::vector<json>{}) {
      const std::string name = item["metadata"]["name"];
      if (name != "kubernetes") left.push_back(name);
    }
    return list.ok() && left.size() == 1;
  }));
  EXPECT_THAT(left, ::testing::ElementsAre("unowned"));

  // Orphan keeps dependents and drops the reference.
  owner = *kube().Create(WorkspaceType(), kNs, Ws("w2"));
  ref["name"] = "w2";
  ref["uid"] = owner["metadata"]["uid"];
  json s3 = Svc("s3");
  s3["metadata"]["ownerReferences"] = {ref};
  ASSERT_TRUE(kube().Create(ServiceType(), kNs, s3).ok());
  DeleteOptions orphan;
  orphan.propagation_policy = "Orphan";
  ASSERT_TRUE(kube().Delete(WorkspaceType(), kNs, "w2", orphan).ok());
  absl::StatusOr<json> kept;
  EXPECT_TRUE(WaitFor([&] {
    kept = kube().Get(ServiceType(), kNs, "s3");
    return kept.ok() && !(*kept)["metadata"].contains("ownerReferences");
  }));
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_FALSE((*kept)["metadata"].contains("ownerReferences"));
}

TEST_P(KubeClientConformanceTest, ListFiltersBySelectorsAndNamespace) {
  for (const char* name : {"a", "b", "c"}) {
    json w = Ws(name);
    w["metadata"]["labels"] = {{"team", name[0] == 'c' ? "z" : "a"}};
    ASSERT_TRUE(kube().Create(WorkspaceType(), name[0] == 'b' ? kOtherNs : kNs, w).ok());
  }
  EXPECT_EQ(kube().List(WorkspaceType(), "")->items.size(), 3u);
  EXPECT_EQ(kube().List(WorkspaceType(), kNs)->items.size(), 2u);
  ListOptions options;
  options.label_selector = "team=a";
  EXPECT_EQ(kube().List(WorkspaceType(), "", options)->items.size(), 2u);
  options.label_selector = "team in (z, y),!missing";
  EXPECT_EQ(kube().List(WorkspaceType(), "", options)->items.size(), 1u);
  options.label_selector = "team!=a";
  EXPECT_EQ(kube().List(WorkspaceType(), "", options)->items.size(), 1u);

  ListOptions by_name;
  by_name.field_selector = "metadata.name=b";
  absl::StatusOr<ListResult> r = kube().List(WorkspaceType(), "", by_name);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->items.size(), 1u);
  EXPECT_EQ(r->items[0]["metadata"]["namespace"], kOtherNs);
  EXPECT_EQ(r->items[0]["kind"], "Workspace");

  // A page size smaller than the list still returns everything.
  ListOptions paged;
  paged.limit = 1;
  absl::StatusOr<ListResult> all = kube().List(WorkspaceType(), "", paged);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->items.size(), 3u);

  // The list's resourceVersion is at least the latest write's (of any type): a watch starts
  // there. (A real cluster's controllers may have written since.)
  json svc = *kube().Create(ServiceType(), kNs, Svc("s"));
  absl::StatusOr<ListResult> after = kube().List(WorkspaceType(), kNs);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_GE(std::stoll(after->resource_version), std::stoll(Rv(svc)));
}

TEST_P(KubeClientConformanceTest, WatchReplaysHistoryAndFollows) {
  json a = *kube().Create(WorkspaceType(), kNs, Ws("a"));
  ASSERT_TRUE(kube().Create(ServiceType(), kNs, Svc("other-type")).ok());
  ASSERT_TRUE(kube().Create(WorkspaceType(), kNs, Ws("b")).ok());

  std::mutex mu;
  std::vector<std::pair<WatchEvent::Type, std::string>> seen;
  std::atomic<bool> saw_b{false};
  WatchOptions wo;
  wo.resource_version = Rv(a);  // the events after a
  wo.timeout_seconds = 20;
  std::thread writer([&] {
    WaitFor([&] { return saw_b.load(); });
    EXPECT_TRUE(kube().Delete(WorkspaceType(), kNs, "a").ok());
  });
  absl::Status s = kube().Watch(WorkspaceType(), kNs, wo, [&](const WatchEvent& e) {
    if (e.type == WatchEvent::Type::kBookmark) return true;
    std::lock_guard<std::mutex> lock(mu);
    seen.emplace_back(e.type, e.object["metadata"]["name"].get<std::string>());
    EXPECT_EQ(e.object["kind"], "Workspace");
    saw_b = true;
    return seen.size() < 2;
  });
  writer.join();
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_THAT(seen,
              ::testing::ElementsAre(std::pair(WatchEvent::Type::kAdded, std::string("b")),
                                     std::pair(WatchEvent::Type::kDeleted, std::string("a"))));

  // From "": a synthetic ADDED for what exists, then changes.
  seen.clear();
  wo.resource_version = "";
  s = kube().Watch(WorkspaceType(), "", wo, [&](const WatchEvent& e) {
    if (e.type == WatchEvent::Type::kBookmark) return true;
    seen.emplace_back(e.type, e.object["metadata"]["name"].get<std::string>());
    return false;
  });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_THAT(seen, ::testing::ElementsAre(std::pair(WatchEvent::Type::kAdded, std::string("b"))));

  // A label selector filters the events.
  ListResult start = *kube().List(WorkspaceType(), kNs);
  json unlabelled = Ws("c");
  unlabelled["metadata"]["labels"] = {{"team", "z"}};
  ASSERT_TRUE(kube().Create(WorkspaceType(), kNs, unlabelled).ok());
  ASSERT_TRUE(kube().Create(WorkspaceType(), kNs, Ws("d")).ok());
  seen.clear();
  wo.resource_version = start.resource_version;
  wo.label_selector = "team=a";
  s = kube().Watch(WorkspaceType(), kNs, wo, [&](const WatchEvent& e) {
    if (e.type == WatchEvent::Type::kBookmark) return true;
    seen.emplace_back(e.type, e.object["metadata"]["name"].get<std::string>());
    return false;
  });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_THAT(seen, ::testing::ElementsAre(std::pair(WatchEvent::Type::kAdded, std::string("d"))));
}

TEST_P(KubeClientConformanceTest, WatchSelectorTransitions) {
  // An object that starts matching a watch's label selector arrives as ADDED, one that stops
  // matching as DELETED (FakeKubeClient sent neither before this suite).
  ASSERT_TRUE(kube().Create(WorkspaceType(), kNs, Ws("leaves")).ok());
  json joins = Ws("joins");
  joins["metadata"]["labels"] = {{"team", "z"}};
  ASSERT_TRUE(kube().Create(WorkspaceType(), kNs, joins).ok());
  ListResult start = *kube().List(WorkspaceType(), kNs);
  ASSERT_TRUE(
      kube()
          .MergePatch(WorkspaceType(), kNs, "leaves", {{"metadata", {{"labels", {{"team", "z"}}}}}})
          .ok());
  ASSERT_TRUE(
      kube()
          .MergePatch(WorkspaceType(), kNs, "joins", {{"metadata", {{"labels", {{"team", "a"}}}}}})
          .ok());
  ASSERT_TRUE(kube()
                  .MergePatch(WorkspaceType(), kNs, "joins",
                              {{"metadata", {{"annotations", {{"note", "x"}}}}}})
                  .ok());

  std::vector<std::pair<WatchEvent::Type, std::string>> seen;
  WatchOptions wo;
  wo.resource_version = start.resource_version;
  wo.timeout_seconds = 20;
  wo.label_selector = "team=a";
  absl::Status s = kube().Watch(WorkspaceType(), kNs, wo, [&](const WatchEvent& e) {
    if (e.type == WatchEvent::Type::kBookmark) return true;
    seen.emplace_back(e.type, e.object["metadata"]["name"].get<std::string>());
    return seen.size() < 3;
  });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_THAT(seen,
              ::testing::ElementsAre(std::pair(WatchEvent::Type::kDeleted, std::string("leaves")),
                                     std::pair(WatchEvent::Type::kAdded, std::string("joins")),
                                     std::pair(WatchEvent::Type::kModified, std::string("joins"))));
}

TEST_P(KubeClientConformanceTest, WatchFromCompactedVersionIsGone) {
  json a = *kube().Create(WorkspaceType(), kNs, Ws("a"));
  ASSERT_TRUE(kube().Create(WorkspaceType(), kNs, Ws("b")).ok());
  under_test_->CompactHistory();
  WatchOptions wo;
  wo.resource_version = Rv(a);
  wo.timeout_seconds = 20;
  absl::Status s = kube().Watch(WorkspaceType(), kNs, wo, [](const WatchEvent&) { return true; });
  EXPECT_TRUE(IsGone(s)) << s;
}

TEST_P(KubeClientConformanceTest, WatchSendsBookmarksAndEndsOnCancelAndTimeout) {
  ListResult start = *kube().List(WorkspaceType(), kNs);
  json a = *kube().Create(WorkspaceType(), kNs, Ws("a"));

  // A bookmark carries a resourceVersion at least that of the last event of the type. (The
  // fakes send one every 200 ms; kube-apiserver 1.20 sends one 2 s before the watch's timeout,
  // or every minute, so the timeout here is 3 s.)
  std::atomic<bool> cancel{false};
  WatchOptions wo;
  wo.resource_version = start.resource_version;
  wo.timeout_seconds = 3;
  wo.cancel = &cancel;
  std::string bookmark_rv;
  bool saw_a = false;
  auto begin = std::chrono::steady_clock::now();
  absl::Status s = kube().Watch(WorkspaceType(), kNs, wo, [&](const WatchEvent& e) {
    if (e.type == WatchEvent::Type::kBookmark) {
      bookmark_rv = e.object["metadata"]["resourceVersion"];
      if (std::stoll(bookmark_rv) >= std::stoll(Rv(a))) cancel = true;
    } else if (e.object["metadata"]["name"] == "a") {
      saw_a = true;
      if (!under_test_->SendsFrequentBookmarks()) cancel = true;
    }
    return true;
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  EXPECT_TRUE(saw_a);
  if (under_test_->SendsFrequentBookmarks()) {
    ASSERT_FALSE(bookmark_rv.empty());
    EXPECT_GE(std::stoll(bookmark_rv), std::stoll(Rv(a)));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(5));

  // The server ending the watch at its timeout is a normal end.
  wo.allow_bookmarks = false;
  wo.cancel = nullptr;
  wo.timeout_seconds = 1;
  wo.resource_version = Rv(a);
  begin = std::chrono::steady_clock::now();
  s = kube().Watch(WorkspaceType(), kNs, wo, [](const WatchEvent&) { return true; });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(5));
}

}  // namespace tessera::workspaces::kube
