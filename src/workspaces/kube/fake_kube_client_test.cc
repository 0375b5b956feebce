#include "workspaces/kube/fake_kube_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "common/errors.h"

namespace tessera::workspaces::kube {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

json Workspace(const std::string& name, const std::string& owner = "alice") {
  return {{"apiVersion", "workspaces.tessera.dev/v1alpha1"},
          {"kind", "Workspace"},
          {"metadata", {{"name", name}, {"labels", {{"team", "a"}}}}},
          {"spec", {{"owner", owner}}},
          {"status", {{"phase", "Ready"}}}};
}

std::string Rv(const json& object) { return object["metadata"]["resourceVersion"]; }

TEST(KubeFakeClientTest, CreateGetAndAlreadyExists) {
  FakeKubeClient fake;
  absl::StatusOr<json> created = fake.Create(WorkspaceType(), "team-a", Workspace("w1"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ((*created)["metadata"]["namespace"], "team-a");
  EXPECT_EQ((*created)["metadata"]["generation"], 1);
  EXPECT_FALSE((*created)["metadata"]["uid"].get<std::string>().empty());
  EXPECT_FALSE(created->contains("status"));  // status subresource: dropped on create

  absl::StatusOr<json> got = fake.Get(WorkspaceType(), "team-a", "w1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, *created);

  absl::StatusOr<json> again = fake.Create(WorkspaceType(), "team-a", Workspace("w1"));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(fake.Get(WorkspaceType(), "team-b", "w1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(fake.Calls(), ElementsAre("CREATE workspaces team-a/w1", "GET workspaces team-a/w1",
                                        "CREATE workspaces team-a/w1", "GET workspaces team-b/w1"));
}

TEST(KubeFakeClientTest, UpdateChecksResourceVersionAndBumpsGeneration) {
  FakeKubeClient fake;
  json w = *fake.Create(WorkspaceType(), "ns", Workspace("w"));
  json stale = w;

  w["metadata"]["labels"]["x"] = "y";  // metadata only: no generation bump
  json updated = *fake.Update(WorkspaceType(), "ns", w);
  EXPECT_EQ(updated["metadata"]["generation"], 1);
  EXPECT_NE(Rv(updated), Rv(w));

  updated["spec"]["owner"] = "bob";
  json updated2 = *fake.Update(WorkspaceType(), "ns", updated);
  EXPECT_EQ(updated2["metadata"]["generation"], 2);

  stale["spec"]["owner"] = "carol";
  absl::StatusOr<json> conflict = fake.Update(WorkspaceType(), "ns", stale);
  EXPECT_TRUE(IsConflict(conflict.status())) << conflict.status();
  EXPECT_THAT(StatusMessage(conflict.status()), HasSubstr("the object has been modified"));

  // A write that changes nothing keeps the resourceVersion.
  json same = *fake.Update(WorkspaceType(), "ns", updated2);
  EXPECT_EQ(Rv(same), Rv(updated2));
}

TEST(KubeFakeClientTest, StatusSubresourceIsSeparate) {
  FakeKubeClient fake;
  json w = *fake.Create(WorkspaceType(), "ns", Workspace("w"));
  w["status"] = {{"phase", "Starting"}};
  json after_status = *fake.Update(WorkspaceType(), "ns", w, /*status=*/true);
  EXPECT_EQ(after_status["status"]["phase"], "Starting");
  EXPECT_EQ(after_status["metadata"]["generation"], 1);

  // The main resource ignores status; the status subresource ignores the rest.
  json main = after_status;
  main["status"] = {{"phase", "Failed"}};
  main["spec"]["owner"] = "bob";
  json after_main = *fake.Update(WorkspaceType(), "ns", main);
  EXPECT_EQ(after_main["status"]["phase"], "Starting");
  EXPECT_EQ(after_main["spec"]["owner"], "bob");

  json patched = *fake.MergePatch(WorkspaceType(), "ns", "w",
                                  {{"spec", {{"owner", "eve"}}}, {"status", {{"phase", "Ready"}}}},
                                  /*status=*/true);
  EXPECT_EQ(patched["status"]["phase"], "Ready");
  EXPECT_EQ(patched["spec"]["owner"], "bob");

  // Leases have no status subresource: status is part of the object.
  json lease = {{"metadata", {{"name", "l"}}}, {"spec", {{"holderIdentity", "a"}}}};
  json created = *fake.Create(LeaseType(), "ns", lease);
  EXPECT_EQ(created["apiVersion"], "coordination.k8s.io/v1");
  EXPECT_EQ(created["kind"], "Lease");
}

TEST(KubeFakeClientTest, MergePatchAndApply) {
  FakeKubeClient fake;
  fake.Create(WorkspaceType(), "ns", Workspace("w")).IgnoreError();
  json p = *fake.MergePatch(WorkspaceType(), "ns", "w",
                            {{"metadata", {{"labels", {{"team", nullptr}, {"new", "1"}}}}}});
  EXPECT_FALSE(p["metadata"]["labels"].contains("team"));
  EXPECT_EQ(p["metadata"]["labels"]["new"], "1");
  EXPECT_EQ(fake.MergePatch(WorkspaceType(), "ns", "nope", json::object()).status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<json> stale =
      fake.MergePatch(WorkspaceType(), "ns", "w",
                      {{"metadata", {{"resourceVersion", "1"}}}, {"spec", json::object()}});
  EXPECT_TRUE(IsConflict(stale.status()));

  // Apply creates, then merges the intent into the stored object.
  json svc = {{"apiVersion", "v1"},
              {"kind", "Service"},
              {"metadata", {{"name", "s"}}},
              {"spec", {{"ports", {{{"port", 80}}}}}}};
  json created = *fake.Apply(ServiceType(), "ns", svc);
  EXPECT_EQ(created["spec"]["ports"][0]["port"], 80);
  svc["spec"]["type"] = "ClusterIP";
  json applied = *fake.Apply(ServiceType(), "ns", svc);
  EXPECT_EQ(applied["spec"]["type"], "ClusterIP");
  EXPECT_EQ(applied["metadata"]["uid"], created["metadata"]["uid"]);
  EXPECT_EQ(applied["metadata"]["generation"], 2);
  EXPECT_EQ(Rv(*fake.Apply(ServiceType(), "ns", svc)), Rv(applied));  // no-op apply
}

TEST(KubeFakeClientTest, DeleteHonorsFinalizersAndPreconditions) {
  FakeKubeClient fake;
  json w = Workspace("w");
  w["metadata"]["finalizers"] = {"workspaces.tessera.dev/cleanup"};
  json created = *fake.Create(WorkspaceType(), "ns", w);

  DeleteOptions wrong_uid;
  wrong_uid.precondition_uid = "other";
  EXPECT_TRUE(IsConflict(fake.Delete(WorkspaceType(), "ns", "w", wrong_uid)));

  ASSERT_TRUE(fake.Delete(WorkspaceType(), "ns", "w").ok());
  json deleting = *fake.Get(WorkspaceType(), "ns", "w");
  EXPECT_TRUE(deleting["metadata"].contains("deletionTimestamp"));
  ASSERT_TRUE(fake.Delete(WorkspaceType(), "ns", "w").ok());  // again: still OK

  deleting["metadata"]["finalizers"] = json::array();
  ASSERT_TRUE(fake.Update(WorkspaceType(), "ns", deleting).ok());
  EXPECT_EQ(fake.Get(WorkspaceType(), "ns", "w").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(fake.Delete(WorkspaceType(), "ns", "w").code(), absl::StatusCode::kNotFound);
}

TEST(KubeFakeClientTest, DeleteCollectsDependents) {
  FakeKubeClient fake;
  json owner = *fake.Create(WorkspaceType(), "ns", Workspace("w"));
  json ref = {{"apiVersion", "workspaces.tessera.dev/v1alpha1"},
              {"kind", "Workspace"},
              {"name", "w"},
              {"uid", owner["metadata"]["uid"]},
              {"controller", true}};
  for (const char* name : {"s1", "s2"}) {
    json svc = {{"metadata", {{"name", name}, {"ownerReferences", {ref}}}}};
    ASSERT_TRUE(fake.Create(ServiceType(), "ns", svc).ok());
  }
  json other_ns = {{"metadata", {{"name", "s1"}, {"ownerReferences", {ref}}}}};
  ASSERT_TRUE(fake.Create(ServiceType(), "other", other_ns).ok());

  ASSERT_TRUE(fake.Delete(WorkspaceType(), "ns", "w").ok());
  EXPECT_TRUE(fake.List(ServiceType(), "ns")->items.empty());
  EXPECT_EQ(fake.List(ServiceType(), "other")->items.size(), 1u);  // not in the owner's namespace

  // Orphan keeps dependents and drops the reference.
  owner = *fake.Create(WorkspaceType(), "ns", Workspace("w2"));
  ref["uid"] = owner["metadata"]["uid"];
  ASSERT_TRUE(
      fake.Create(ServiceType(), "ns", {{"metadata", {{"name", "s3"}, {"ownerReferences", {ref}}}}})
          .ok());
  DeleteOptions orphan;
  orphan.propagation_policy = "Orphan";
  ASSERT_TRUE(fake.Delete(WorkspaceType(), "ns", "w2", orphan).ok());
  json s3 = *fake.Get(ServiceType(), "ns", "s3");
  EXPECT_FALSE(s3["metadata"].contains("ownerReferences"));
}

TEST(KubeFakeClientTest, ListFiltersBySelectors) {
  FakeKubeClient fake;
  for (const char* name : {"a", "b", "c"}) {
    json w = Workspace(name);
    w["metadata"]["labels"] = {{"team", name[0] == 'c' ? "z" : "a"}};
    ASSERT_TRUE(fake.Create(WorkspaceType(), name[0] == 'b' ? "ns2" : "ns1", w).ok());
  }
  EXPECT_EQ(fake.List(WorkspaceType(), "")->items.size(), 3u);
  EXPECT_EQ(fake.List(WorkspaceType(), "ns1")->items.size(), 2u);
  ListOptions team_a;
  team_a.label_selector = "team=a";
  EXPECT_EQ(fake.List(WorkspaceType(), "", team_a)->items.size(), 2u);
  team_a.label_selector = "team in (z, y),!missing";
  EXPECT_EQ(fake.List(WorkspaceType(), "", team_a)->items.size(), 1u);
  ListOptions by_name;
  by_name.field_selector = "metadata.name=b";
  ListResult r = *fake.List(WorkspaceType(), "", by_name);
  ASSERT_EQ(r.items.size(), 1u);
  EXPECT_EQ(r.items[0]["metadata"]["namespace"], "ns2");
  EXPECT_EQ(r.resource_version, std::to_string(fake.CurrentResourceVersion()));
}

TEST(KubeFakeClientTest, WatchReplaysHistoryAndFollows) {
  FakeKubeClient::Options options;
  options.bookmark_interval_ms = 0;
  FakeKubeClient fake(options);
  json a = *fake.Create(WorkspaceType(), "ns", Workspace("a"));
  fake.Create(ServiceType(), "ns", {{"metadata", {{"name", "other-type"}}}}).IgnoreError();
  json b = *fake.Create(WorkspaceType(), "ns", Workspace("b"));

  std::vector<std::pair<WatchEvent::Type, std::string>> seen;
  WatchOptions wo;
  wo.resource_version = Rv(a);  // events after a
  wo.timeout_seconds = 10;
  std::thread writer([&] {
    while (fake.ActiveWatches() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    fake.Delete(WorkspaceType(), "ns", "a").IgnoreError();
  });
  absl::Status s = fake.Watch(WorkspaceType(), "ns", wo, [&](const WatchEvent& e) {
    seen.emplace_back(e.type, e.object["metadata"]["name"].get<std::string>());
    return seen.size() < 2;
  });
  writer.join();
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_THAT(seen, ElementsAre(std::pair(WatchEvent::Type::kAdded, std::string("b")),
                                std::pair(WatchEvent::Type::kDeleted, std::string("a"))));

  // From "": synthetic ADDED for what exists.
  seen.clear();
  wo.resource_version = "";
  s = fake.Watch(WorkspaceType(), "", wo, [&](const WatchEvent& e) {
    seen.emplace_back(e.type, e.object["metadata"]["name"].get<std::string>());
    return false;
  });
  EXPECT_THAT(seen, ElementsAre(std::pair(WatchEvent::Type::kAdded, std::string("b"))));
}

TEST(KubeFakeClientTest, WatchFromCompactedVersionIsGone) {
  FakeKubeClient fake;
  json a = *fake.Create(WorkspaceType(), "ns", Workspace("a"));
  fake.Create(WorkspaceType(), "ns", Workspace("b")).IgnoreError();
  fake.CompactHistory();
  WatchOptions wo;
  wo.resource_version = Rv(a);
  absl::Status s = fake.Watch(WorkspaceType(), "ns", wo, [](const WatchEvent&) { return true; });
  EXPECT_TRUE(IsGone(s)) << s;
}

TEST(KubeFakeClientTest, WatchSendsBookmarksAndStopsOnCancelAndClose) {
  FakeKubeClient::Options options;
  options.bookmark_interval_ms = 20;
  FakeKubeClient fake(options);
  fake.Create(WorkspaceType(), "ns", Workspace("a")).IgnoreError();
  fake.Create(ServiceType(), "ns", {{"metadata", {{"name", "s"}}}}).IgnoreError();
  std::atomic<bool> cancel{false};
  WatchOptions wo;
  wo.resource_version = "1";
  wo.cancel = &cancel;
  std::string bookmark_rv;
  absl::Status s = fake.Watch(WorkspaceType(), "ns", wo, [&](const WatchEvent& e) {
    if (e.type == WatchEvent::Type::kBookmark) {
      bookmark_rv = e.object["metadata"]["resourceVersion"];
      cancel = true;
    }
    return true;
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
  // The bookmark carries the global resourceVersion, past the Service's write.
  EXPECT_EQ(bookmark_rv, std::to_string(fake.CurrentResourceVersion()));

  wo.allow_bookmarks = false;
  wo.cancel = nullptr;
  std::thread closer([&] {
    while (fake.ActiveWatches() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    fake.CloseWatches();
  });
  s = fake.Watch(WorkspaceType(), "ns", wo, [](const WatchEvent&) { return true; });
  closer.join();
  EXPECT_TRUE(s.ok()) << s;
}

TEST(KubeFakeClientTest, ErrorHookFailsCalls) {
  FakeKubeClient fake;
  fake.SetErrorHook([](const std::string& call) {
    return call.rfind("UPDATE leases", 0) == 0 ? Unavailable("injected") : absl::OkStatus();
  });
  json lease = *fake.Create(LeaseType(), "ns", {{"metadata", {{"name", "l"}}}});
  EXPECT_EQ(fake.Update(LeaseType(), "ns", lease).status().code(), absl::StatusCode::kUnavailable);
  fake.SetErrorHook(nullptr);
  EXPECT_TRUE(fake.Update(LeaseType(), "ns", lease).ok());
}

}  // namespace
}  // namespace tessera::workspaces::kube
