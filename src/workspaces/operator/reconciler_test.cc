#include "workspaces/operator/reconciler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/errors.h"
#include "common/metrics.h"
#include "common/time_util.h"
#include "workspaces/kube/cached_reader.h"
#include "workspaces/kube/fake_kube_client.h"
#include "workspaces/kube/informer.h"

namespace tessera::workspaces {
namespace {

using nlohmann::json;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr int64_t kT0 = 1'790'000'000'000;
constexpr char kNs[] = "team-a";
constexpr char kName[] = "alice";
constexpr char kChild[] = "ws-alice";
constexpr char kBaseUrl[] = "https://ws.example.test";
constexpr int64_t kWaitRetryMs = 7000;
constexpr int64_t kActivityCheckMs = 60'000;
constexpr int64_t kIdleTimeoutMs = kMillisPerHour;  // the workspaces below use idleTimeout 1h

// One activity signal answering with whatever the test set (a last-active time or an error);
// counts the calls.
class FakeSignal final : public ActivitySignal {
 public:
  explicit FakeSignal(std::string name) : name_(std::move(name)) {}
  absl::StatusOr<std::vector<ActivityEvidence>> Read(const Workspace& /*ws*/,
                                                     int64_t /*now_ms*/) override {
    std::lock_guard lock(mu_);
    ++calls_;
    if (!result_.ok()) return result_.status();
    return std::vector<ActivityEvidence>{{name_, *result_, "fake", first_ms_}};
  }
  void SetFirst(int64_t first_ms) {
    std::lock_guard lock(mu_);
    first_ms_ = first_ms;
  }
  void Set(absl::StatusOr<int64_t> result) {
    std::lock_guard lock(mu_);
    result_ = std::move(result);
  }
  int calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  const std::string name_;
  mutable std::mutex mu_;
  int64_t first_ms_ = 0;
  absl::StatusOr<int64_t> result_ = int64_t{0};
  int calls_ = 0;
};

// Records the notices the culler sends into the IDE.
class RecordingNotifier final : public IdeNotifier {
 public:
  absl::Status Notify(const Workspace& ws, std::string_view message) override {
    std::lock_guard lock(mu_);
    notices_.push_back(ws.metadata.name + ": " + std::string(message));
    return absl::OkStatus();
  }
  std::vector<std::string> notices() const {
    std::lock_guard lock(mu_);
    return notices_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> notices_;
};

struct RecordedEvent {
  std::string workspace;  // "ns/name"
  std::string type;
  std::string reason;
  std::string message;
};

class RecordingEventRecorder final : public EventRecorder {
 public:
  void Record(const Workspace& ws, std::string_view type, std::string_view reason,
              std::string_view message) override {
    std::lock_guard lock(mu_);
    events_.push_back(RecordedEvent{fmt::format("{}/{}", ws.metadata.namespace_, ws.metadata.name),
                                    std::string(type), std::string(reason), std::string(message)});
  }
  std::vector<RecordedEvent> events() const {
    std::lock_guard lock(mu_);
    return events_;
  }
  std::vector<std::string> Reasons() const {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const RecordedEvent& e : events_) out.push_back(e.reason);
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::vector<RecordedEvent> events_;
};

kube::FakeKubeClient::Options FakeOptions(const Clock* clock) {
  kube::FakeKubeClient::Options options;
  options.clock = clock;
  return options;
}

ReconcilerOptions DefaultOptions() {
  ReconcilerOptions options;
  options.render.base_url = kBaseUrl;
  options.wait_retry_ms = kWaitRetryMs;
  options.activity_check_interval_ms = kActivityCheckMs;
  options.idle_warning_ms = 0;  // the warning has tests of its own
  return options;
}

// The five children, by type.
const std::vector<const kube::ResourceType*>& ChildTypes() {
  static const std::vector<const kube::ResourceType*> types = {
      &kube::AuthorizationPolicyType(), &kube::ServiceType(), &kube::RayClusterType(),
      &kube::StatefulSetType(), &kube::VirtualServiceType()};
  return types;
}

// The condition of `type` in ws.status.conditions, or nullptr.
const json* FindCond(const json& ws, const std::string& type) {
  const json* conditions = ws.contains("status") && ws.at("status").contains("conditions")
                               ? &ws.at("status").at("conditions")
                               : nullptr;
  if (conditions == nullptr || !conditions->is_array()) return nullptr;
  for (const json& c : *conditions) {
    if (c.value("type", "") == type) return &c;
  }
  return nullptr;
}

// A field of that condition; null when there is no such condition or field.
json CondField(const json& ws, const std::string& type, const std::string& field) {
  const json* c = FindCond(ws, type);
  return c != nullptr && c->contains(field) ? c->at(field) : json();
}

bool HasFinalizer(const json& ws) {
  const json& meta = ws["metadata"];
  if (!meta.contains("finalizers")) return false;
  for (const json& f : meta["finalizers"]) {
    if (f == kFinalizer) return true;
  }
  return false;
}

class ReconcilerTest : public ::testing::Test {
 protected:
  explicit ReconcilerTest(ReconcilerOptions options = DefaultOptions())
      : clock_(kT0),
        fake_(FakeOptions(&clock_)),
        metrics_(&registry_, &clock_),
        reconciler_(&fake_, &clock_, &events_, {&probe_}, nullptr, &metrics_, std::move(options)) {}

  void CreateTemplate() {
    json tmpl = {{"apiVersion", kApiVersion},
                 {"kind", "WorkspaceTemplate"},
                 {"metadata", {{"name", "default"}, {"namespace", kNs}}},
                 {"spec", {{"image", "codercom/code-server:4.139.1"}}}};
    ASSERT_TRUE(fake_.Create(kube::WorkspaceTemplateType(), kNs, tmpl).ok());
  }

  // A Workspace "alice" with idleTimeout 1h; `spec` entries override the defaults.
  void CreateWorkspace(const json& spec = json::object()) {
    json object = {{"apiVersion", kApiVersion},
                   {"kind", "Workspace"},
                   {"metadata", {{"name", kName}, {"namespace", kNs}}},
                   {"spec", {{"owner", "alice@example.com"}, {"idleTimeout", "1h"}}}};
    object["spec"].merge_patch(spec);
    absl::StatusOr<json> created = fake_.Create(kube::WorkspaceType(), kNs, object);
    ASSERT_TRUE(created.ok()) << created.status();
  }

  ReconcileResult MustReconcile(const std::string& name = kName) {
    absl::StatusOr<ReconcileResult> r = reconciler_.Reconcile(kNs, name);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : ReconcileResult{.requeue_after_ms = -1};
  }

  json Get(const kube::ResourceType& type, const std::string& name) {
    absl::StatusOr<json> object = fake_.Get(type, kNs, name);
    EXPECT_TRUE(object.ok()) << object.status();
    return object.ok() ? *object : json::object();
  }
  json GetWorkspace() { return Get(kube::WorkspaceType(), kName); }
  std::string CurrentPhase() { return GetWorkspace()["status"].value("phase", ""); }
  bool Exists(const kube::ResourceType& type, const std::string& name) {
    return fake_.Get(type, kNs, name).ok();
  }

  void PatchSpec(const json& spec) {
    ASSERT_TRUE(fake_.MergePatch(kube::WorkspaceType(), kNs, kName, {{"spec", spec}}).ok());
  }
  // Writes a child's status as its controller would.
  void SetChildStatus(const kube::ResourceType& type, const json& status) {
    absl::StatusOr<json> patched =
        fake_.MergePatch(type, kNs, kChild, {{"status", status}}, /*status=*/true);
    ASSERT_TRUE(patched.ok()) << patched.status();
  }
  void MakeChildrenReady() {
    SetChildStatus(kube::StatefulSetType(), {{"replicas", 1}, {"readyReplicas", 1}});
    SetChildStatus(kube::RayClusterType(), {{"state", "ready"}});
  }
  // Create + reconcile (Starting at kT0) + children ready + reconcile at kT0 + ready_after_ms.
  void StartReady(int64_t ready_after_ms = 0) {
    CreateTemplate();
    CreateWorkspace();
    MustReconcile();
    ASSERT_EQ(CurrentPhase(), "Starting");
    clock_.AdvanceMillis(ready_after_ms);
    MakeChildrenReady();
    probe_.Set(clock_.NowMillis());
    MustReconcile();
    ASSERT_EQ(CurrentPhase(), "Ready");
  }

  // Calls that change something (everything but GET, LIST and WATCH), since ClearCalls.
  std::vector<std::string> Writes() {
    std::vector<std::string> out;
    for (const std::string& call : fake_.Calls()) {
      if (call.rfind("GET ", 0) != 0 && call.rfind("LIST ", 0) != 0 &&
          call.rfind("WATCH ", 0) != 0) {
        out.push_back(call);
      }
    }
    return out;
  }
  std::vector<std::string> CallsStartingWith(const std::string& verb) {
    std::vector<std::string> out;
    for (const std::string& call : fake_.Calls()) {
      if (call.rfind(verb + " ", 0) == 0) out.push_back(call);
    }
    return out;
  }

  Histogram* TimeToReady() {
    return registry_.GetHistogram("tessera_workspace_time_to_ready_seconds", "");
  }
  int64_t CounterValue(const char* name) { return registry_.GetCounter(name, "")->Value(); }

  FakeClock clock_;
  kube::FakeKubeClient fake_;
  MetricsRegistry registry_;
  OperatorMetrics metrics_;
  FakeSignal probe_{"heartbeat"};
  RecordingEventRecorder events_;
  Reconciler reconciler_;
};

TEST_F(ReconcilerTest, FirstReconcileAddsTheFinalizerAndAppliesEveryChild) {
  CreateTemplate();
  CreateWorkspace();
  fake_.ClearCalls();
  ReconcileResult r = MustReconcile();
  EXPECT_EQ(r.requeue_after_ms, 0);  // the children's changes wake it

  json ws = GetWorkspace();
  EXPECT_TRUE(HasFinalizer(ws)) << ws.dump();
  // In the documented order: the AuthorizationPolicy before any pod, the route last.
  EXPECT_THAT(
      CallsStartingWith("APPLY"),
      ElementsAre("APPLY authorizationpolicies team-a/ws-alice", "APPLY services team-a/ws-alice",
                  "APPLY rayclusters team-a/ws-alice", "APPLY statefulsets team-a/ws-alice",
                  "APPLY virtualservices team-a/ws-alice"));
  for (const kube::ResourceType* type : ChildTypes()) {
    SCOPED_TRACE(type->kind);
    const json child = Get(*type, kChild);
    ASSERT_TRUE(child["metadata"].contains("ownerReferences")) << child.dump();
    const json& refs = child["metadata"]["ownerReferences"];
    ASSERT_EQ(refs.size(), 1u);
    EXPECT_EQ(refs[0]["kind"], "Workspace");
    EXPECT_EQ(refs[0]["name"], kName);
    EXPECT_EQ(refs[0]["uid"], ws["metadata"]["uid"]);
    EXPECT_EQ(refs[0]["controller"], true);
  }
}

TEST_F(ReconcilerTest, FirstReconcileReportsStartingWithConditionsAndAnEvent) {
  CreateTemplate();
  CreateWorkspace();
  MustReconcile();

  json ws = GetWorkspace();
  json& status = ws["status"];
  EXPECT_EQ(status["phase"], "Starting");
  EXPECT_EQ(status["observedGeneration"], 1);
  EXPECT_EQ(status["url"], std::string(kBaseUrl) + "/ws/team-a/alice/");
  EXPECT_FALSE(status.contains("readySince"));
  struct Want {
    const char* type;
    const char* status;
    const char* reason;
  };
  for (const Want& want :
       {Want{kCondTemplateResolved, "True", "Found"}, Want{kCondChildrenApplied, "True", "Applied"},
        Want{kCondIdeReady, "False", "PodPending"}, Want{kCondRayReady, "False", "HeadNotReady"},
        Want{kCondReady, "False", "Starting"}}) {
    SCOPED_TRACE(want.type);
    const json* c = FindCond(ws, want.type);
    ASSERT_NE(c, nullptr) << status.dump();
    EXPECT_EQ(c->at("status"), want.status);
    EXPECT_EQ(c->at("reason"), want.reason);
    EXPECT_EQ(c->at("lastTransitionTime"), FormatRfc3339Millis(kT0));
  }

  ASSERT_EQ(events_.events().size(), 1u);
  const RecordedEvent e = events_.events()[0];
  EXPECT_EQ(e.workspace, "team-a/alice");
  EXPECT_EQ(e.type, "Normal");
  EXPECT_EQ(e.reason, "Starting");
  EXPECT_EQ(CounterValue("tessera_workspace_starts_total"), 1);
  EXPECT_EQ(metrics_.CountInPhase(Phase::kStarting), 1);
}

TEST_F(ReconcilerTest, RayDisabledAppliesFourChildren) {
  CreateTemplate();
  CreateWorkspace({{"ray", {{"enabled", false}}}});
  fake_.ClearCalls();
  MustReconcile();
  EXPECT_THAT(
      CallsStartingWith("APPLY"),
      ElementsAre("APPLY authorizationpolicies team-a/ws-alice", "APPLY services team-a/ws-alice",
                  "APPLY statefulsets team-a/ws-alice", "APPLY virtualservices team-a/ws-alice"));
  EXPECT_FALSE(Exists(kube::RayClusterType(), kChild));
  json ws = GetWorkspace();
  EXPECT_EQ(CondField(ws, kCondRayReady, "reason"), "Disabled");
  EXPECT_EQ(CondField(ws, kCondRayReady, "status"), "True");

  // Without Ray the IDE alone makes it Ready.
  SetChildStatus(kube::StatefulSetType(), {{"replicas", 1}, {"readyReplicas", 1}});
  MustReconcile();
  EXPECT_EQ(CurrentPhase(), "Ready");
}

TEST_F(ReconcilerTest, DisablingRayPrunesTheEarlierRayCluster) {
  CreateTemplate();
  CreateWorkspace();
  MustReconcile();
  ASSERT_TRUE(Exists(kube::RayClusterType(), kChild));

  PatchSpec({{"ray", {{"enabled", false}}}});
  MustReconcile();
  EXPECT_FALSE(Exists(kube::RayClusterType(), kChild));
  for (const kube::ResourceType* type : ChildTypes()) {
    if (type != &kube::RayClusterType()) {
      EXPECT_TRUE(Exists(*type, kChild)) << type->kind;
    }
  }
  EXPECT_EQ(GetWorkspace()["status"]["observedGeneration"], 2);
}

TEST_F(ReconcilerTest, ASecondReconcileWithNothingChangedWritesNothing) {
  CreateTemplate();
  CreateWorkspace();
  MustReconcile();
  const int64_t rv = fake_.CurrentResourceVersion();
  const size_t events = events_.events().size();
  fake_.ClearCalls();
  clock_.AdvanceMillis(5000);

  EXPECT_EQ(MustReconcile().requeue_after_ms, 0);
  EXPECT_EQ(fake_.CurrentResourceVersion(), rv);
  // Not even an apply that would change nothing: the children already hold the intent.
  EXPECT_THAT(Writes(), IsEmpty());
  EXPECT_EQ(events_.events().size(), events);
  EXPECT_EQ(CurrentPhase(), "Starting");
}

TEST_F(ReconcilerTest, AnIntentThatOnlyLosesAFieldIsStillApplied) {
  // GPUs 1 → 0 only removes fields (the GPU limit, the tolerations): a subset comparison alone
  // would find the live object "satisfying" the smaller intent. The intent's digest differs.
  CreateTemplate();
  CreateWorkspace({{"resources", {{"gpus", 1}}}});
  MustReconcile();
  fake_.ClearCalls();
  MustReconcile();
  EXPECT_THAT(Writes(), IsEmpty());
  PatchSpec({{"resources", {{"gpus", 0}}}});
  fake_.ClearCalls();
  MustReconcile();
  EXPECT_THAT(Writes(), Contains("APPLY statefulsets team-a/ws-alice"));
  const json sts = Get(kube::StatefulSetType(), kChild);
  EXPECT_EQ(sts["metadata"]["annotations"][kIntentAnnotation].get<std::string>().size(), 16u);
}

TEST_F(ReconcilerTest, AReadyWorkspaceCheckedForActivityWritesNothing) {
  StartReady();
  for (int i = 0; i < 5; ++i) {
    fake_.ClearCalls();
    clock_.AdvanceMillis(500);
    probe_.Set(clock_.NowMillis());
    MustReconcile();
    EXPECT_THAT(Writes(), IsEmpty());
  }
}

TEST_F(ReconcilerTest, ReadsComeFromTheCachedReaderWhenItServes) {
  CreateTemplate();
  CreateWorkspace({{"ray", {{"enabled", false}}}});
  MustReconcile();
  // Informers over the fake serve every read the reconciler makes.
  kube::CachedReader reader(&fake_);
  std::vector<std::unique_ptr<kube::Informer>> informers;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (const kube::ResourceType* type :
       {&kube::WorkspaceType(), &kube::WorkspaceTemplateType(), &kube::StatefulSetType(),
        &kube::ServiceType(), &kube::VirtualServiceType(), &kube::AuthorizationPolicyType(),
        &kube::RayClusterType()}) {
    informers.push_back(std::make_unique<kube::Informer>(fake_, *type, kNs));
    reader.Serve(*type, informers.back().get());
    threads.emplace_back([&, i = informers.size() - 1] { (void)informers[i]->Run(stop); });
  }
  for (const auto& informer : informers) {
    for (int i = 0; i < 500 && !informer->HasSynced(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ASSERT_TRUE(informer->HasSynced());
  }
  Reconciler cached(&fake_, &clock_, &events_, {&probe_}, nullptr, &metrics_, DefaultOptions(),
                    &reader);
  fake_.ClearCalls();
  ASSERT_TRUE(cached.Reconcile(kNs, kName).ok());
  // No GET (all from the caches), no write, and no DELETE of the RayCluster that is not there.
  EXPECT_THAT(CallsStartingWith("GET"), IsEmpty());
  EXPECT_THAT(Writes(), IsEmpty());
  EXPECT_EQ(reader.live_gets(), 0);
  stop.store(true);
  for (std::thread& t : threads) t.join();
}

TEST_F(ReconcilerTest, NoRayWorkspaceDoesNotDeleteARayClusterThatIsNotThere) {
  CreateTemplate();
  CreateWorkspace({{"ray", {{"enabled", false}}}});
  fake_.ClearCalls();
  MustReconcile();
  MustReconcile();
  EXPECT_THAT(CallsStartingWith("DELETE"), IsEmpty());
}

TEST_F(ReconcilerTest, AForeignEditThatMakesTheApplyInvalidIsRecovered) {
  StartReady();
  // Another manager renumbered the Service's port; with server-side apply the merged list has
  // two ports named "http" and the server refuses it (422). The fake cannot merge lists by
  // key, so the hook plays the server's part for the first apply.
  json svc = Get(kube::ServiceType(), kChild);
  svc["spec"]["ports"][0]["port"] = 81;
  ASSERT_TRUE(fake_.Update(kube::ServiceType(), kNs, svc).ok());
  int refused = 0;
  fake_.SetErrorHook([&](const std::string& call) {
    if (call == "APPLY services team-a/ws-alice" && refused++ == 0) {
      return absl::InvalidArgumentError(
          "Service \"ws-alice\" is invalid: spec.ports[1].name: Duplicate value: \"http\"");
    }
    return absl::OkStatus();
  });
  fake_.ClearCalls();
  MustReconcile();
  EXPECT_THAT(Writes(),
              ElementsAre("APPLY services team-a/ws-alice", "PATCH services team-a/ws-alice",
                          "APPLY services team-a/ws-alice"));
  EXPECT_EQ(Get(kube::ServiceType(), kChild)["spec"]["ports"][0]["port"], 80);
  EXPECT_EQ(CurrentPhase(), "Ready");
  EXPECT_THAT(events_.Reasons(), Contains("ChildReplaced"));
}

TEST_F(ReconcilerTest, ReconcilesThatKeepFailingAreSurfacedInTheStatusAndAnEvent) {
  CreateTemplate();
  CreateWorkspace();
  // An older API server answers 500 to every apply of the StatefulSet.
  fake_.SetErrorHook([](const std::string& call) {
    if (call == "APPLY statefulsets team-a/ws-alice") {
      return absl::UnavailableError(
          "PATCH …/statefulsets/ws-alice: .spec.persistentVolumeClaimRetentionPolicy: field not "
          "declared in schema");
    }
    return absl::OkStatus();
  });
  for (int i = 0; i < 2; ++i) {
    EXPECT_FALSE(reconciler_.Reconcile(kNs, kName).ok());
    clock_.AdvanceMillis(20'000);
  }
  // Two attempts: not yet (a blip is not reported).
  EXPECT_FALSE(GetWorkspace().contains("status") &&
               GetWorkspace()["status"].value("phase", "") == "Failed");
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(reconciler_.Reconcile(kNs, kName).ok());
    clock_.AdvanceMillis(1'000);
  }
  json ws = GetWorkspace();
  EXPECT_EQ(ws["status"]["phase"], "Failed");
  EXPECT_EQ(CondField(ws, kCondReady, "reason"), "ReconcileFailing");
  const std::string message = CondField(ws, kCondReady, "message").get<std::string>();
  EXPECT_THAT(message, HasSubstr("field not declared in schema"));
  EXPECT_THAT(message, HasSubstr("retrying"));
  int warnings = 0;
  for (const auto& reason : events_.Reasons()) warnings += reason == "ReconcileFailing";
  EXPECT_EQ(warnings, 1);  // once per streak, not per retry
  fake_.SetErrorHook(nullptr);
  MustReconcile();
  EXPECT_EQ(CurrentPhase(), "Starting");
  EXPECT_EQ(CondField(GetWorkspace(), kCondReady, "reason"), "Starting");
}

TEST_F(ReconcilerTest, ReadyChildrenMakeTheWorkspaceReady) {
  CreateTemplate();
  CreateWorkspace();
  MustReconcile();

  // The IDE alone is not enough while Ray is enabled.
  clock_.AdvanceMillis(20'000);
  SetChildStatus(kube::StatefulSetType(), {{"replicas", 1}, {"readyReplicas", 1}});
  MustReconcile();
  EXPECT_EQ(CurrentPhase(), "Starting");
  EXPECT_EQ(CondField(GetWorkspace(), kCondIdeReady, "status"), "True");

  clock_.AdvanceMillis(22'000);
  SetChildStatus(kube::RayClusterType(), {{"state", "ready"}});
  probe_.Set(clock_.NowMillis());
  ReconcileResult r = MustReconcile();

  json ws = GetWorkspace();
  json& status = ws["status"];
  EXPECT_EQ(status["phase"], "Ready");
  EXPECT_EQ(status["url"], "https://ws.example.test/ws/team-a/alice/");
  EXPECT_EQ(status["readySince"], FormatRfc3339Millis(kT0 + 42'000));
  // The IDE has been usable (so its activity tracked) since it became ready at +20 s; the
  // stored activity moves in steps of a minute at least.
  EXPECT_EQ(status["lastActivityTime"], FormatRfc3339Millis(kT0 + 20'000));
  EXPECT_EQ(CondField(ws, kCondReady, "status"), "True");
  EXPECT_EQ(CondField(ws, kCondReady, "lastTransitionTime"), FormatRfc3339Millis(kT0 + 42'000));
  EXPECT_EQ(r.requeue_after_ms, kActivityCheckMs);  // the activity check

  EXPECT_EQ(TimeToReady()->Count(), 1u);
  EXPECT_DOUBLE_EQ(TimeToReady()->Sum(), 42.0);  // from entering Starting
  const std::vector<RecordedEvent> events = events_.events();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().reason, "Ready");
  EXPECT_EQ(events.back().type, "Normal");
  EXPECT_THAT(events.back().message, HasSubstr("ws/team-a/alice/"));
  EXPECT_EQ(metrics_.CountInPhase(Phase::kReady), 1);
  EXPECT_EQ(metrics_.ActiveUsers(), 1);

  // Ready and busy, nothing else changed: the next check writes nothing.
  const int64_t rv = fake_.CurrentResourceVersion();
  clock_.AdvanceMillis(30'000);
  probe_.Set(clock_.NowMillis());
  fake_.ClearCalls();
  MustReconcile();
  EXPECT_EQ(fake_.CurrentResourceVersion(), rv);
  EXPECT_THAT(CallsStartingWith("PATCH"), IsEmpty());
  EXPECT_EQ(events_.events().size(), events.size());
  EXPECT_EQ(TimeToReady()->Count(), 1u);
}

TEST_F(ReconcilerTest, MissingTemplateIsPendingUntilItIsCreated) {
  CreateWorkspace();
  fake_.ClearCalls();
  ReconcileResult r = MustReconcile();
  EXPECT_EQ(r.requeue_after_ms, kWaitRetryMs);
  EXPECT_THAT(CallsStartingWith("APPLY"), IsEmpty());

  json ws = GetWorkspace();
  EXPECT_EQ(ws["status"]["phase"], "Pending");
  const json* t = FindCond(ws, kCondTemplateResolved);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->at("status"), "False");
  EXPECT_EQ(t->at("reason"), "TemplateNotFound");
  EXPECT_THAT(t->at("message").get<std::string>(), HasSubstr("\"default\""));
  ASSERT_EQ(events_.events().size(), 1u);
  EXPECT_EQ(events_.events()[0].type, "Warning");
  EXPECT_EQ(events_.events()[0].reason, "Pending");
  EXPECT_THAT(events_.events()[0].message, HasSubstr("WorkspaceTemplate \"default\""));

  CreateTemplate();
  r = MustReconcile();
  EXPECT_EQ(r.requeue_after_ms, 0);
  EXPECT_EQ(CurrentPhase(), "Starting");
  EXPECT_EQ(CondField(GetWorkspace(), kCondTemplateResolved, "status"), "True");
  EXPECT_TRUE(Exists(kube::StatefulSetType(), kChild));
  EXPECT_THAT(events_.Reasons(), ElementsAre("Pending", "Starting"));
}

TEST_F(ReconcilerTest, InvalidSpecFailsWithoutChildrenOrError) {
  CreateTemplate();
  // What an API server without the CRD's validation would accept.
  CreateWorkspace({{"resources", {{"gpus", 99}}}});
  fake_.ClearCalls();
  EXPECT_EQ(MustReconcile().requeue_after_ms, 0);

  json ws = GetWorkspace();
  EXPECT_EQ(ws["status"]["phase"], "Failed");
  const json* ready = FindCond(ws, kCondReady);
  ASSERT_NE(ready, nullptr);
  EXPECT_EQ(ready->at("status"), "False");
  EXPECT_EQ(ready->at("reason"), "InvalidSpec");
  EXPECT_THAT(ready->at("message").get<std::string>(), HasSubstr("spec.resources.gpus is 99"));
  EXPECT_THAT(CallsStartingWith("APPLY"), IsEmpty());
  for (const kube::ResourceType* type : ChildTypes()) EXPECT_FALSE(Exists(*type, kChild));
  ASSERT_EQ(events_.events().size(), 1u);
  EXPECT_EQ(events_.events()[0].type, "Warning");
  EXPECT_EQ(events_.events()[0].reason, "InvalidSpec");
  EXPECT_EQ(metrics_.CountInPhase(Phase::kFailed), 1);

  // Still invalid: nothing new is written or recorded.
  const int64_t rv = fake_.CurrentResourceVersion();
  MustReconcile();
  EXPECT_EQ(fake_.CurrentResourceVersion(), rv);
  EXPECT_EQ(events_.events().size(), 1u);

  // Fixed: it starts.
  PatchSpec({{"resources", {{"gpus", 1}}}});
  MustReconcile();
  EXPECT_EQ(CurrentPhase(), "Starting");
}

TEST_F(ReconcilerTest, StoppedScalesToZeroThenReportsStopped) {
  StartReady();
  PatchSpec({{"stopped", true}});
  MustReconcile();
  EXPECT_EQ(Get(kube::StatefulSetType(), kChild)["spec"]["replicas"], 0);
  EXPECT_EQ(Get(kube::RayClusterType(), kChild)["spec"]["suspend"], true);
  EXPECT_EQ(CurrentPhase(), "Stopping");  // the pod still exists
  EXPECT_EQ(CounterValue("tessera_workspace_stops_total"), 0);

  SetChildStatus(kube::StatefulSetType(), {{"replicas", 0}, {"readyReplicas", 0}});
  MustReconcile();
  json ws = GetWorkspace();
  EXPECT_EQ(ws["status"]["phase"], "Stopped");
  EXPECT_FALSE(ws["status"].contains("readySince"));
  EXPECT_EQ(CondField(ws, kCondRayReady, "reason"), "Suspended");
  EXPECT_EQ(CounterValue("tessera_workspace_stops_total"), 1);
  EXPECT_EQ(events_.events().back().reason, "Stopped");
  EXPECT_EQ(events_.events().back().type, "Normal");
  EXPECT_EQ(metrics_.CountInPhase(Phase::kStopped), 1);
  EXPECT_EQ(metrics_.CountInPhase(Phase::kReady), 0);
}

TEST_F(ReconcilerTest, TimeToReadyOfARestartCountsFromTheStartNotFromTheStop) {
  StartReady(/*ready_after_ms=*/10'000);
  PatchSpec({{"stopped", true}});
  SetChildStatus(kube::StatefulSetType(), {{"replicas", 0}, {"readyReplicas", 0}});
  MustReconcile();
  ASSERT_EQ(CurrentPhase(), "Stopped");

  clock_.AdvanceMillis(3 * kMillisPerDay);
  PatchSpec({{"stopped", false}});
  MustReconcile();
  ASSERT_EQ(CurrentPhase(), "Starting");
  clock_.AdvanceMillis(30'000);
  MakeChildrenReady();
  probe_.Set(clock_.NowMillis());
  MustReconcile();
  ASSERT_EQ(CurrentPhase(), "Ready");

  EXPECT_EQ(TimeToReady()->Count(), 2u);
  EXPECT_DOUBLE_EQ(TimeToReady()->Sum(), 10.0 + 30.0);
  EXPECT_THAT(events_.events().back().message, HasSubstr("ready after 30s"));
  EXPECT_EQ(CounterValue("tessera_workspace_starts_total"), 2);
}

TEST_F(ReconcilerTest, TimeToReadySurvivesALeaderChange) {
  CreateTemplate();
  CreateWorkspace();
  MustReconcile();
  ASSERT_EQ(CurrentPhase(), "Starting");
  EXPECT_EQ(GetWorkspace()["status"]["startingSince"], FormatRfc3339Millis(kT0));
  clock_.AdvanceMillis(5'000);
  MustReconcile();  // still starting: the start time stays
  EXPECT_EQ(GetWorkspace()["status"]["startingSince"], FormatRfc3339Millis(kT0));

  // The leader dies; a new replica (its own reconciler and metrics) finishes the start.
  clock_.AdvanceMillis(20'000);
  MetricsRegistry other_registry;
  OperatorMetrics other_metrics(&other_registry, &clock_);
  Reconciler other(&fake_, &clock_, &events_, {&probe_}, nullptr, &other_metrics, DefaultOptions());
  MakeChildrenReady();
  probe_.Set(clock_.NowMillis());
  ASSERT_TRUE(other.Reconcile(kNs, kName).ok());
  ASSERT_EQ(CurrentPhase(), "Ready");
  Histogram* h = other_registry.GetHistogram("tessera_workspace_time_to_ready_seconds", "");
  EXPECT_EQ(h->Count(), 1u);
  EXPECT_DOUBLE_EQ(h->Sum(), 25.0);
  EXPECT_THAT(events_.events().back().message, HasSubstr("ready after 25s"));
  EXPECT_FALSE(GetWorkspace()["status"].contains("startingSince"));
}

TEST_F(ReconcilerTest, IdleWorkspaceIsCulled) {
  StartReady();
  clock_.AdvanceMillis(kIdleTimeoutMs + 1000);
  probe_.Set(kT0);                                 // the last heartbeat is older than idleTimeout
  EXPECT_EQ(MustReconcile().requeue_after_ms, 0);  // the spec change wakes it

  json ws = GetWorkspace();
  EXPECT_EQ(ws["spec"]["stopped"], true);
  EXPECT_EQ(ws["metadata"]["annotations"][kCulledAtAnnotation],
            FormatRfc3339Millis(clock_.NowMillis()));
  EXPECT_EQ(CounterValue("tessera_workspace_culls_total"), 1);
  const RecordedEvent culled = events_.events().back();
  EXPECT_EQ(culled.reason, "Culled");
  EXPECT_EQ(culled.type, "Normal");
  EXPECT_THAT(culled.message, HasSubstr("idleTimeout 1h"));

  // The next reconcile scales it down.
  MustReconcile();
  EXPECT_EQ(Get(kube::StatefulSetType(), kChild)["spec"]["replicas"], 0);
  EXPECT_EQ(CurrentPhase(), "Stopping");
  EXPECT_EQ(CounterValue("tessera_workspace_culls_total"), 1);
}

TEST_F(ReconcilerTest, ProbeFailureNeverCulls) {
  StartReady();
  clock_.AdvanceMillis(5 * kIdleTimeoutMs);
  probe_.Set(absl::UnavailableError("connection refused"));
  EXPECT_EQ(MustReconcile().requeue_after_ms, kActivityCheckMs);
  EXPECT_NE(GetWorkspace()["spec"].value("stopped", false), true);
  EXPECT_EQ(CurrentPhase(), "Ready");
  EXPECT_EQ(CounterValue("tessera_workspace_culls_total"), 0);
  EXPECT_GE(probe_.calls(), 2);
}

TEST_F(ReconcilerTest, WorkspaceWithoutIdleTimeoutIsNeverCulled) {
  CreateTemplate();
  CreateWorkspace({{"idleTimeout", "0s"}});
  MustReconcile();
  MakeChildrenReady();
  probe_.Set(kT0);
  MustReconcile();
  ASSERT_EQ(CurrentPhase(), "Ready");
  clock_.AdvanceMillis(30 * kMillisPerDay);
  EXPECT_EQ(MustReconcile().requeue_after_ms, kActivityCheckMs);
  EXPECT_NE(GetWorkspace()["spec"].value("stopped", false), true);
}

// Several signals and a warning 10 minutes before the cull, as the operator runs by default.
class ReconcilerIdleTest : public ReconcilerTest {
 protected:
  static ReconcilerOptions WithWarning() {
    ReconcilerOptions options = DefaultOptions();
    options.idle_warning_ms = 10 * kMillisPerMinute;
    options.activity_check_interval_ms = kMillisPerDay;  // requeues show the next deadline
    return options;
  }
  ReconcilerIdleTest()
      : idle_(&fake_, &clock_, &events_, {&probe_, &terminal_}, &notifier_, &metrics_,
              WithWarning()) {}

  ReconcileResult MustReconcileIdle() {
    absl::StatusOr<ReconcileResult> r = idle_.Reconcile(kNs, kName);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : ReconcileResult{.requeue_after_ms = -1};
  }
  json ConditionJson(const std::string& type) {
    const json ws = GetWorkspace();
    for (const json& c : ws["status"]["conditions"]) {
      if (c["type"] == type) return c;
    }
    return json();
  }

  FakeSignal terminal_{"terminal"};
  RecordingNotifier notifier_;
  Reconciler idle_;
};

TEST_F(ReconcilerIdleTest, IdleOnlyWhenEverySignalAgrees) {
  StartReady();  // (heartbeat at kT0, through the default reconciler)
  terminal_.Set(kT0);
  // 2 h later the heartbeat is old, but someone typed in a terminal 5 minutes ago.
  clock_.AdvanceMillis(2 * kMillisPerHour);
  probe_.Set(kT0);
  terminal_.Set(clock_.NowMillis() - 5 * kMillisPerMinute);
  ReconcileResult r = MustReconcileIdle();
  EXPECT_NE(GetWorkspace()["spec"].value("stopped", false), true);
  // Next look: when the warning is due (1h - 10m after that keystroke).
  EXPECT_EQ(r.requeue_after_ms, kIdleTimeoutMs - 10 * kMillisPerMinute - 5 * kMillisPerMinute);
  EXPECT_TRUE(ConditionJson(kCondIdleWarning).is_null());  // never warned
  // A signal that cannot be read stops the culling altogether.
  clock_.AdvanceMillis(5 * kMillisPerHour);
  terminal_.Set(absl::UnavailableError("agent unreachable"));
  MustReconcileIdle();
  EXPECT_NE(GetWorkspace()["spec"].value("stopped", false), true);
}

TEST_F(ReconcilerIdleTest, WarnsOnceThenCullsWithTheEvidence) {
  StartReady();
  terminal_.Set(0);                                             // never typed
  clock_.AdvanceMillis(kIdleTimeoutMs - 9 * kMillisPerMinute);  // 9 minutes left
  probe_.Set(kT0);
  ReconcileResult r = MustReconcileIdle();
  EXPECT_EQ(r.requeue_after_ms, 9 * kMillisPerMinute);  // looked at again at the cull time
  json warning = ConditionJson(kCondIdleWarning);
  EXPECT_EQ(warning["status"], "True");
  EXPECT_EQ(warning["reason"], "IdleSoon");
  EXPECT_THAT(warning["message"].get<std::string>(), HasSubstr("will be stopped at"));
  EXPECT_EQ(events_.events().back().reason, "IdleSoon");
  EXPECT_EQ(events_.events().back().type, "Warning");
  ASSERT_EQ(notifier_.notices().size(), 1u);
  EXPECT_THAT(notifier_.notices()[0], HasSubstr("will be stopped in 9m"));
  // Checked again before the deadline: no second warning, no second notice.
  clock_.AdvanceMillis(kMillisPerMinute);
  MustReconcileIdle();
  EXPECT_EQ(notifier_.notices().size(), 1u);
  int warnings = 0;
  for (const std::string& reason : events_.Reasons()) warnings += reason == "IdleSoon";
  EXPECT_EQ(warnings, 1);

  clock_.AdvanceMillis(8 * kMillisPerMinute);
  MustReconcileIdle();
  json ws = GetWorkspace();
  EXPECT_EQ(ws["spec"]["stopped"], true);
  json culled = ConditionJson(kCondCulled);
  EXPECT_EQ(culled["status"], "True");
  EXPECT_EQ(culled["reason"], "IdleTimeout");
  const std::string message = culled["message"].get<std::string>();
  EXPECT_THAT(message, HasSubstr("heartbeat 1h0m ago"));
  EXPECT_THAT(message, HasSubstr("terminal never"));
  EXPECT_THAT(events_.events().back().message, HasSubstr("terminal never"));
  // It stays on the stopped workspace (describe shows why), and goes when it starts again.
  MustReconcileIdle();
  EXPECT_EQ(ConditionJson(kCondCulled)["status"], "True");
  PatchSpec({{"stopped", false}});
  MustReconcileIdle();
  EXPECT_TRUE(ConditionJson(kCondCulled).is_null());
}

TEST_F(ReconcilerIdleTest, UseAfterTheWarningAvoidsTheCull) {
  StartReady();
  terminal_.Set(0);
  clock_.AdvanceMillis(kIdleTimeoutMs - 5 * kMillisPerMinute);
  probe_.Set(kT0);
  MustReconcileIdle();
  ASSERT_EQ(ConditionJson(kCondIdleWarning)["status"], "True");
  // The person comes back and types.
  clock_.AdvanceMillis(kMillisPerMinute);
  terminal_.Set(clock_.NowMillis());
  MustReconcileIdle();
  EXPECT_NE(GetWorkspace()["spec"].value("stopped", false), true);
  EXPECT_EQ(ConditionJson(kCondIdleWarning)["status"], "False");
  EXPECT_EQ(ConditionJson(kCondIdleWarning)["reason"], "Active");
  EXPECT_EQ(CounterValue("tessera_workspace_culls_avoided_total"), 1);
  EXPECT_EQ(events_.events().back().reason, "ActivityResumed");
  // Not counted again while it stays in use.
  clock_.AdvanceMillis(kMillisPerMinute);
  MustReconcileIdle();
  EXPECT_EQ(CounterValue("tessera_workspace_culls_avoided_total"), 1);
}

TEST_F(ReconcilerTest, ProductivityMetricsByTeamAndUser) {
  const Labels alice = {{"team", "team-a"}, {"user", "alice@example.com"}};
  auto user_counter = [&](const char* name, Labels labels) {
    return registry_.GetCounter(name, "", labels)->Value();
  };
  Labels first = alice;
  first.emplace_back("kind", "first");
  Labels resume = alice;
  resume.emplace_back("kind", "resume");
  StartReady(/*ready_after_ms=*/42'000);  // created at kT0 by the fake, Ready 42 s later
  EXPECT_EQ(user_counter("tessera_workspace_user_starts_total", first), 1);
  Histogram* first_ready =
      registry_.GetHistogram("tessera_workspace_first_ready_seconds", "", {{"team", "team-a"}});
  EXPECT_EQ(first_ready->Count(), 1u);
  EXPECT_DOUBLE_EQ(first_ready->Sum(), 42.0);
  EXPECT_FALSE(GetWorkspace()["status"]["firstReadyTime"].is_null());
  // Used, checked every minute for 10 minutes: 10 active minutes.
  for (int i = 0; i < 10; ++i) {
    clock_.AdvanceMillis(kMillisPerMinute);
    probe_.Set(clock_.NowMillis());
    MustReconcile();
  }
  EXPECT_EQ(user_counter("tessera_workspace_user_active_seconds_total", alice), 600);
  // Then an hour unused: nothing more counts as active.
  clock_.AdvanceMillis(30 * kMillisPerMinute);
  MustReconcile();
  EXPECT_EQ(user_counter("tessera_workspace_user_active_seconds_total", alice), 600);
  // Stopped and started again: a resume; Ready again observes no second "first ready".
  PatchSpec({{"stopped", true}});
  MustReconcile();
  SetChildStatus(kube::StatefulSetType(), {{"replicas", 0}, {"readyReplicas", 0}});
  MustReconcile();
  ASSERT_EQ(CurrentPhase(), "Stopped");
  PatchSpec({{"stopped", false}});
  MustReconcile();
  EXPECT_EQ(user_counter("tessera_workspace_user_starts_total", resume), 1);
  SetChildStatus(kube::StatefulSetType(), {{"replicas", 1}, {"readyReplicas", 1}});
  probe_.Set(clock_.NowMillis());
  MustReconcile();
  ASSERT_EQ(CurrentPhase(), "Ready");
  EXPECT_EQ(first_ready->Count(), 1u);
  // The first Ray job, 20 minutes after creation: observed once, kept in the status.
  probe_.SetFirst(kT0 + 20 * kMillisPerMinute);
  clock_.AdvanceMillis(kMillisPerMinute);
  probe_.Set(clock_.NowMillis());
  MustReconcile();
  MustReconcile();
  Histogram* first_job =
      registry_.GetHistogram("tessera_workspace_first_ray_job_seconds", "", {{"team", "team-a"}});
  EXPECT_EQ(first_job->Count(), 1u);
  EXPECT_DOUBLE_EQ(first_job->Sum(), 1200.0);
  EXPECT_EQ(GetWorkspace()["status"]["firstRayJobTime"],
            FormatRfc3339Millis(kT0 + 20 * kMillisPerMinute));
}

TEST(OperatorMetricsTest, UserLabelsAreBounded) {
  MetricsRegistry registry;
  FakeClock clock(kT0);
  OperatorMetrics metrics(&registry, &clock, 15 * kMillisPerMinute, /*max_users=*/2);
  metrics.CountUserCull("team-a", "alice");
  metrics.CountUserCull("team-a", "bob");
  for (int i = 0; i < 100; ++i) metrics.CountUserCull("team-b", "user" + std::to_string(i));
  metrics.CountUserCull("team-a", "alice");  // admitted earlier: still its own series
  const std::string text = registry.RenderPrometheus();
  EXPECT_THAT(text,
              HasSubstr(R"(tessera_workspace_user_culls_total{team="team-a",user="alice"} 2)"));
  EXPECT_THAT(text, HasSubstr(R"(tessera_workspace_user_culls_total{team="team-a",user="bob"} 1)"));
  EXPECT_THAT(
      text,
      HasSubstr(R"(tessera_workspace_user_culls_total{team="__other__",user="__other__"} 100)"));
  EXPECT_EQ(text.find("user0"), std::string::npos);
}

// A long activity interval, so the requeue is bounded by the idle time left.
ReconcilerOptions SlowActivityCheck() {
  ReconcilerOptions options = DefaultOptions();
  options.activity_check_interval_ms = kMillisPerDay;
  return options;
}

class ReconcilerSlowCheckTest : public ReconcilerTest {
 protected:
  ReconcilerSlowCheckTest() : ReconcilerTest(SlowActivityCheck()) {}
};

TEST_F(ReconcilerSlowCheckTest, RecentHeartbeatIsNotCulledAndRequeuesWhenItWouldRunOut) {
  StartReady();
  clock_.AdvanceMillis(kIdleTimeoutMs + 1000);
  const int64_t heartbeat = clock_.NowMillis() - 10 * kMillisPerMinute;
  probe_.Set(heartbeat);
  ReconcileResult r = MustReconcile();

  json ws = GetWorkspace();
  EXPECT_NE(ws["spec"].value("stopped", false), true);
  EXPECT_FALSE(ws["metadata"].contains("annotations") &&
               ws["metadata"]["annotations"].contains(kCulledAtAnnotation));
  EXPECT_EQ(ws["status"]["phase"], "Ready");
  EXPECT_EQ(ws["status"]["lastActivityTime"], FormatRfc3339Millis(heartbeat));
  EXPECT_EQ(CounterValue("tessera_workspace_culls_total"), 0);
  // Looked at again exactly when the idle timeout would run out.
  EXPECT_EQ(r.requeue_after_ms, kIdleTimeoutMs - 10 * kMillisPerMinute);

  // Then, with no newer heartbeat, it is culled.
  clock_.AdvanceMillis(r.requeue_after_ms);
  MustReconcile();
  EXPECT_EQ(GetWorkspace()["spec"]["stopped"], true);
  EXPECT_EQ(CounterValue("tessera_workspace_culls_total"), 1);
}

TEST_F(ReconcilerTest, DeletionDeletesTheChildrenThenRemovesTheFinalizer) {
  StartReady();
  // Something else holds the StatefulSet for a while (as a pod's graceful shutdown would).
  ASSERT_TRUE(fake_
                  .MergePatch(kube::StatefulSetType(), kNs, kChild,
                              {{"metadata", {{"finalizers", json::array({"test/hold"})}}}})
                  .ok());
  ASSERT_TRUE(fake_.Delete(kube::WorkspaceType(), kNs, kName).ok());
  ASSERT_TRUE(GetWorkspace()["metadata"].contains("deletionTimestamp"));  // held by the finalizer
  fake_.ClearCalls();

  ReconcileResult r = MustReconcile();
  EXPECT_GT(r.requeue_after_ms, 0);
  EXPECT_LE(r.requeue_after_ms, kWaitRetryMs);
  // The AuthorizationPolicy (and the home volume) only once the IDE is gone.
  EXPECT_THAT(
      CallsStartingWith("DELETE"),
      ElementsAre("DELETE rayclusters team-a/ws-alice", "DELETE virtualservices team-a/ws-alice",
                  "DELETE services team-a/ws-alice", "DELETE statefulsets team-a/ws-alice"));
  EXPECT_THAT(CallsStartingWith("APPLY"), IsEmpty());
  for (const kube::ResourceType* type : ChildTypes()) {
    if (type != &kube::StatefulSetType() && type != &kube::AuthorizationPolicyType()) {
      EXPECT_FALSE(Exists(*type, kChild)) << type->kind;
    }
  }
  EXPECT_TRUE(Exists(kube::AuthorizationPolicyType(), kChild));
  ASSERT_TRUE(Exists(kube::StatefulSetType(), kChild));
  EXPECT_TRUE(HasFinalizer(GetWorkspace()));

  // Still there: wait, without deleting it again.
  fake_.ClearCalls();
  r = MustReconcile();
  EXPECT_GT(r.requeue_after_ms, 0);
  EXPECT_THAT(CallsStartingWith("DELETE"), IsEmpty());
  EXPECT_TRUE(HasFinalizer(GetWorkspace()));

  // Gone: the finalizer goes, and with it the workspace.
  ASSERT_TRUE(fake_
                  .MergePatch(kube::StatefulSetType(), kNs, kChild,
                              {{"metadata", {{"finalizers", nullptr}}}})
                  .ok());
  ASSERT_FALSE(Exists(kube::StatefulSetType(), kChild));
  // The IDE is gone: now the home volume (absent here: no StatefulSet controller made one) and
  // the AuthorizationPolicy; then, with nothing left, the finalizer.
  fake_.ClearCalls();
  EXPECT_GT(MustReconcile().requeue_after_ms, 0);
  EXPECT_THAT(CallsStartingWith("DELETE"),
              ElementsAre("DELETE authorizationpolicies team-a/ws-alice"));
  EXPECT_TRUE(HasFinalizer(GetWorkspace()));
  EXPECT_EQ(MustReconcile().requeue_after_ms, 0);
  EXPECT_FALSE(Exists(kube::WorkspaceType(), kName));
  EXPECT_EQ(events_.events().back().reason, "Deleted");
  EXPECT_EQ(metrics_.CountInPhase(Phase::kReady), 0);

  // The watch's DELETED event brings one more reconcile: a no-op.
  fake_.ClearCalls();
  EXPECT_EQ(MustReconcile().requeue_after_ms, 0);
  EXPECT_THAT(Writes(), IsEmpty());
}

TEST_F(ReconcilerTest, MissingWorkspaceIsOk) {
  fake_.ClearCalls();
  EXPECT_EQ(MustReconcile("nobody").requeue_after_ms, 0);
  EXPECT_THAT(fake_.Calls(), ElementsAre("GET workspaces team-a/nobody"));
  EXPECT_THAT(events_.events(), IsEmpty());
}

TEST_F(ReconcilerTest, ApplyFailureMarksTheWorkspaceFailedAndReturnsTheError) {
  CreateTemplate();
  CreateWorkspace();
  fake_.SetErrorHook([](const std::string& call) {
    if (call == "APPLY statefulsets team-a/ws-alice") {
      return absl::PermissionDeniedError("statefulsets.apps is forbidden");
    }
    return absl::OkStatus();
  });
  absl::StatusOr<ReconcileResult> r = reconciler_.Reconcile(kNs, kName);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(StatusMessage(r.status()), HasSubstr("applying StatefulSet ws-alice"));

  json ws = GetWorkspace();
  EXPECT_EQ(ws["status"]["phase"], "Failed");
  const json* applied = FindCond(ws, kCondChildrenApplied);
  ASSERT_NE(applied, nullptr);
  EXPECT_EQ(applied->at("status"), "False");
  EXPECT_EQ(applied->at("reason"), "ApplyFailed");
  EXPECT_THAT(applied->at("message").get<std::string>(), HasSubstr("forbidden"));
  EXPECT_EQ(events_.events().back().type, "Warning");
  EXPECT_EQ(events_.events().back().reason, "Failed");
  EXPECT_THAT(events_.events().back().message, HasSubstr("forbidden"));
  EXPECT_EQ(CounterValue("tessera_operator_reconcile_errors_total"), 1);

  // The retry after the permission is granted recovers.
  fake_.SetErrorHook(nullptr);
  MustReconcile();
  EXPECT_EQ(CurrentPhase(), "Starting");
  EXPECT_EQ(CondField(GetWorkspace(), kCondChildrenApplied, "status"), "True");
}

TEST_F(ReconcilerTest, TransientApplyFailureKeepsTheStatus) {
  StartReady();
  const json before = GetWorkspace()["status"];
  const size_t events_before = events_.events().size();
  clock_.AdvanceMillis(5'000);
  // Someone edits the AuthorizationPolicy, so it must be re-applied, while istiod restarts:
  // its webhook answers 500 for a while.
  json ap = Get(kube::AuthorizationPolicyType(), kChild);
  ap["spec"]["action"] = "DENY";
  ASSERT_TRUE(fake_.Update(kube::AuthorizationPolicyType(), kNs, ap).ok());
  fake_.SetErrorHook([](const std::string& call) {
    if (call == "APPLY authorizationpolicies team-a/ws-alice") {
      return absl::UnavailableError("failed calling webhook \"validation.istio.io\"");
    }
    return absl::OkStatus();
  });
  absl::StatusOr<ReconcileResult> r = reconciler_.Reconcile(kNs, kName);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);  // retried with backoff
  EXPECT_EQ(GetWorkspace()["status"], before);  // still Ready, its idle clock untouched
  EXPECT_EQ(events_.events().size(), events_before);
  fake_.SetErrorHook(nullptr);
  MustReconcile();
  EXPECT_EQ(GetWorkspace()["status"]["readySince"], before["readySince"]);
}

TEST_F(ReconcilerTest, ReapplyKeepsTheWorkersTheAutoscalerAdded) {
  CreateTemplate();
  CreateWorkspace(
      {{"ray", {{"workers", {{"replicas", 1}, {"minReplicas", 0}, {"maxReplicas", 4}}}}}});
  MustReconcile();
  auto workers = [&] {
    return Get(kube::RayClusterType(), kChild)["spec"]["workerGroupSpecs"][0]["replicas"];
  };
  EXPECT_EQ(workers(), 1);  // created with the spec's count
  // The autoscaler scales up (it writes the RayCluster as its own field manager).
  json ray = Get(kube::RayClusterType(), kChild);
  ray["spec"]["workerGroupSpecs"][0]["replicas"] = 3;
  ASSERT_TRUE(fake_.Update(kube::RayClusterType(), kNs, ray).ok());
  MustReconcile();
  EXPECT_EQ(workers(), 3);  // kept, not reset to 1
  // Above the bounds (maxReplicas lowered): clamped.
  PatchSpec({{"ray", {{"workers", {{"maxReplicas", 2}}}}}});
  MustReconcile();
  EXPECT_EQ(workers(), 2);
}

TEST_F(ReconcilerTest, IdleIdeIsCulledEvenWhileRayIsNotReady) {
  CreateTemplate();
  CreateWorkspace();
  MustReconcile();
  SetChildStatus(kube::StatefulSetType(), {{"replicas", 1}, {"readyReplicas", 1}});
  probe_.Set(kT0);
  MustReconcile();
  ASSERT_EQ(CurrentPhase(), "Starting");  // the Ray head never becomes ready
  clock_.AdvanceMillis(kIdleTimeoutMs + 1000);
  MustReconcile();
  EXPECT_EQ(GetWorkspace()["spec"]["stopped"], true);  // its GPU is not held forever
  EXPECT_EQ(CounterValue("tessera_workspace_culls_total"), 1);
}

TEST_F(ReconcilerTest, DeletionRemovesTheHomeVolumeAfterTheIde) {
  StartReady();
  json pvc = {{"apiVersion", "v1"},
              {"kind", "PersistentVolumeClaim"},
              {"metadata", {{"name", "home-ws-alice-0"}, {"namespace", kNs}}},
              {"spec", {{"accessModes", {"ReadWriteOnce"}}}}};
  ASSERT_TRUE(fake_.Create(kube::PersistentVolumeClaimType(), kNs, pvc).ok());
  ASSERT_TRUE(fake_.Delete(kube::WorkspaceType(), kNs, kName).ok());
  fake_.ClearCalls();
  MustReconcile();  // the fake deletes the StatefulSet at once
  EXPECT_TRUE(Exists(kube::PersistentVolumeClaimType(), "home-ws-alice-0"));
  fake_.ClearCalls();
  MustReconcile();
  EXPECT_THAT(CallsStartingWith("DELETE"),
              ElementsAre("DELETE persistentvolumeclaims team-a/home-ws-alice-0"));
  MustReconcile();
  MustReconcile();
  EXPECT_FALSE(Exists(kube::PersistentVolumeClaimType(), "home-ws-alice-0"));
  EXPECT_FALSE(Exists(kube::AuthorizationPolicyType(), kChild));
  EXPECT_FALSE(Exists(kube::WorkspaceType(), kName));
}

TEST_F(ReconcilerTest, DeletionKeepsTheAuthorizationPolicyUntilTheIdePodIsGone) {
  // No home volume to wait for: only the pod (still terminating, held by a finalizer here)
  // keeps the AuthorizationPolicy.
  CreateTemplate();
  CreateWorkspace({{"ray", {{"enabled", false}}}});
  MustReconcile();
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata",
               {{"name", "ws-alice-0"},
                {"namespace", kNs},
                {"labels", {{kWorkspaceLabel, "alice"}}},
                {"finalizers", {"test/terminating"}}}}};
  ASSERT_TRUE(fake_.Create(kube::PodType(), kNs, pod).ok());
  ASSERT_TRUE(fake_.Delete(kube::WorkspaceType(), kNs, kName).ok());
  for (int i = 0; i < 4; ++i) MustReconcile();
  EXPECT_FALSE(Exists(kube::StatefulSetType(), kChild));
  EXPECT_TRUE(Exists(kube::PodType(), "ws-alice-0"));  // deleting, not gone
  EXPECT_TRUE(Exists(kube::AuthorizationPolicyType(), kChild));
  EXPECT_TRUE(Exists(kube::WorkspaceType(), kName));
  // The pod terminates.
  ASSERT_TRUE(
      fake_
          .MergePatch(kube::PodType(), kNs, "ws-alice-0", {{"metadata", {{"finalizers", nullptr}}}})
          .ok());
  for (int i = 0; i < 3; ++i) MustReconcile();
  EXPECT_FALSE(Exists(kube::AuthorizationPolicyType(), kChild));
  EXPECT_FALSE(Exists(kube::WorkspaceType(), kName));
}

TEST_F(ReconcilerTest, StatusWriteFailureIsReturned) {
  CreateTemplate();
  CreateWorkspace();
  fake_.SetErrorHook([](const std::string& call) {
    if (call == "PATCH workspaces/status team-a/alice") {
      return absl::UnavailableError("connection reset");
    }
    return absl::OkStatus();
  });
  absl::StatusOr<ReconcileResult> r = reconciler_.Reconcile(kNs, kName);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(StatusMessage(r.status()), HasSubstr("writing the workspace status"));
  EXPECT_THAT(events_.events(), IsEmpty());  // the transition is recorded once it is written

  fake_.SetErrorHook(nullptr);
  MustReconcile();
  EXPECT_EQ(CurrentPhase(), "Starting");
  EXPECT_THAT(events_.Reasons(), ElementsAre("Starting"));
}

}  // namespace
}  // namespace tessera::workspaces
