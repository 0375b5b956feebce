#include "workspaces/cli/workspace_commands.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/errors.h"
#include "common/time_util.h"
#include "workspaces/api/workspace.h"
#include "workspaces/kube/fake_kube_client.h"

namespace tessera::workspaces::cli {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr int64_t kT0 = 1'790'000'000'000;  // whole seconds, as Kubernetes timestamps
constexpr char kNs[] = "team-a";
constexpr char kCluster[] = "test-cluster";
constexpr char kUrl[] = "https://ws.example.test/ws/team-a/alice/";

kube::FakeKubeClient::Options FakeOptions(const Clock* clock) {
  kube::FakeKubeClient::Options options;
  options.clock = clock;
  return options;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::vector<std::string> Tokens(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  for (std::string token; in >> token;) out.push_back(token);
  return out;
}

class WorkspaceCommandsTest : public ::testing::Test {
 protected:
  WorkspaceCommandsTest()
      : clock_(kT0), fake_(FakeOptions(&clock_)), cmd_(&fake_, kNs, kCluster, &clock_, &out_) {}

  void MustCreate(const CreateArgs& args) {
    absl::Status s = cmd_.Create(args);
    ASSERT_TRUE(s.ok()) << s;
  }
  static CreateArgs Args(const std::string& name) {
    CreateArgs args;
    args.name = name;
    args.owner = name + "@example.com";
    return args;
  }
  json Get(const std::string& name) {
    absl::StatusOr<json> object = fake_.Get(kube::WorkspaceType(), kNs, name);
    EXPECT_TRUE(object.ok()) << object.status();
    return object.ok() ? *object : json::object();
  }
  // Writes the status as the operator would.
  // Writes the status as the operator would after seeing the current spec (observedGeneration
  // = generation) unless `status` says otherwise.
  void SetStatus(const std::string& name, json status) {
    if (!status.contains("observedGeneration")) {
      status["observedGeneration"] = Get(name)["metadata"].value("generation", 0);
    }
    absl::StatusOr<json> patched =
        fake_.MergePatch(kube::WorkspaceType(), kNs, name, {{"status", status}}, true);
    ASSERT_TRUE(patched.ok()) << patched.status();
  }
  void AddEvent(const std::string& object_name, const std::string& involved_kind,
                const std::string& involved_name, const std::string& uid, int64_t time_ms,
                const std::string& reason, const std::string& message) {
    json event = {
        {"apiVersion", "v1"},
        {"kind", "Event"},
        {"metadata", {{"name", object_name}, {"namespace", kNs}}},
        {"involvedObject",
         {{"kind", involved_kind}, {"name", involved_name}, {"namespace", kNs}, {"uid", uid}}},
        {"type", "Normal"},
        {"reason", reason},
        {"message", message},
        {"lastTimestamp", FormatRfc3339Millis(time_ms)}};
    ASSERT_TRUE(fake_.Create(kube::EventType(), kNs, event).ok());
  }
  // Fails every call with `status`.
  void FailEverything(absl::Status status) {
    fake_.SetErrorHook([status](const std::string&) { return status; });
  }
  bool Created() {
    for (const std::string& call : fake_.Calls()) {
      if (call.rfind("CREATE ", 0) == 0) return true;
    }
    return false;
  }

  FakeClock clock_;
  kube::FakeKubeClient fake_;
  std::ostringstream out_;
  WorkspaceCommands cmd_;
};

TEST_F(WorkspaceCommandsTest, CreateWritesTheWorkspace) {
  CreateArgs args = Args("alice");
  args.template_name = "gpu";
  args.gpus = 2;
  args.ray_workers = 3;
  args.cpu = "4";
  args.memory = "16Gi";
  args.idle_timeout = "90m";
  MustCreate(args);

  json ws = Get("alice");
  EXPECT_EQ(ws["apiVersion"], kApiVersion);
  EXPECT_EQ(ws["kind"], "Workspace");
  EXPECT_EQ(ws["spec"], json::parse(R"({
    "owner": "alice@example.com",
    "template": "gpu",
    "resources": {"cpu": "4", "memory": "16Gi", "gpus": 2},
    "ray": {"workers": {"replicas": 3, "minReplicas": 0, "maxReplicas": 4}},
    "idleTimeout": "90m"
  })"));
  EXPECT_TRUE(ParseWorkspace(ws).ok());
  EXPECT_THAT(out_.str(), HasSubstr("workspace \"alice\" created in namespace team-a"));
  EXPECT_THAT(out_.str(), HasSubstr("tessera ws open alice --wait"));

  // More workers than the default maximum raise the maximum.
  args = Args("bob");
  args.ray_workers = 6;
  MustCreate(args);
  EXPECT_EQ(Get("bob")["spec"]["ray"]["workers"],
            json::parse(R"({"replicas": 6, "minReplicas": 0, "maxReplicas": 6})"));
}

TEST_F(WorkspaceCommandsTest, CreateWithoutRayOrOptions) {
  CreateArgs args = Args("carol");
  args.no_ray = true;
  MustCreate(args);
  EXPECT_EQ(Get("carol")["spec"],
            json::parse(R"({"owner": "carol@example.com", "ray": {"enabled": false}})"));

  MustCreate(Args("dave"));  // everything else from the template and the CRD defaults
  EXPECT_EQ(Get("dave")["spec"], json::parse(R"({"owner": "dave@example.com"})"));
}

TEST_F(WorkspaceCommandsTest, CreateRejectsBadInputWithoutCallingTheCluster) {
  struct Case {
    const char* what;
    CreateArgs args;
    const char* message;
  };
  std::vector<Case> cases;
  auto add = [&](const char* what, auto change, const char* message) {
    CreateArgs args = Args("alice");
    change(args);
    cases.push_back(Case{what, std::move(args), message});
  };
  add(
      "upper case and _", [](CreateArgs& a) { a.name = "Bad_Name"; }, "lower-case letters");
  add(
      "empty name", [](CreateArgs& a) { a.name = ""; }, "lower-case letters");
  add(
      "leading dash", [](CreateArgs& a) { a.name = "-x"; }, "starting and ending");
  add(
      "no owner", [](CreateArgs& a) { a.owner = ""; }, "pass --owner");
  add(
      "too many gpus", [](CreateArgs& a) { a.gpus = 99; }, "--gpus must be from 0 to 16");
  add(
      "negative gpus", [](CreateArgs& a) { a.gpus = -1; }, "--gpus must be from 0 to 16");
  add(
      "contradiction",
      [](CreateArgs& a) {
        a.no_ray = true;
        a.ray_workers = 2;
      },
      "--ray-workers and --no-ray contradict");
  add(
      "negative workers", [](CreateArgs& a) { a.ray_workers = -1; }, "must be 0 or more");
  add(
      "bad idle timeout", [](CreateArgs& a) { a.idle_timeout = "soon"; },
      "--idle-timeout \"soon\" is not a duration");
  add(
      "bad cpu", [](CreateArgs& a) { a.cpu = "lots"; }, "spec.resources.cpu");
  add(
      "bad template", [](CreateArgs& a) { a.template_name = "My_Template"; }, "spec.template");

  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    absl::Status s = cmd_.Create(c.args);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(StatusMessage(s), HasSubstr("could not create workspace"));
    EXPECT_THAT(StatusMessage(s), HasSubstr(c.message));
  }
  EXPECT_FALSE(Created());
  EXPECT_THAT(out_.str(), IsEmpty());
}

TEST_F(WorkspaceCommandsTest, CreateOfAnExistingNameSuggestsAnother) {
  MustCreate(Args("alice"));
  out_.str("");
  absl::Status s = cmd_.Create(Args("alice"));
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(StatusMessage(s), HasSubstr("a workspace named \"alice\" already exists"));
  EXPECT_THAT(StatusMessage(s), HasSubstr("pick another name"));
  EXPECT_THAT(out_.str(), IsEmpty());
}

TEST_F(WorkspaceCommandsTest, ListPrintsATable) {
  CreateArgs alice = Args("alice");
  alice.gpus = 2;
  alice.ray_workers = 3;
  MustCreate(alice);
  CreateArgs bob = Args("bob");
  bob.no_ray = true;
  MustCreate(bob);
  SetStatus("alice", {{"phase", "Ready"}, {"url", kUrl}});
  json elsewhere = Get("alice");
  elsewhere["metadata"] = {{"name", "zed"}};
  ASSERT_TRUE(fake_.Create(kube::WorkspaceType(), "team-b", elsewhere).ok());
  clock_.AdvanceMillis(3 * kMillisPerMinute);
  out_.str("");

  ASSERT_TRUE(cmd_.List().ok());
  std::vector<std::string> lines = Lines(out_.str());
  ASSERT_EQ(lines.size(), 3u) << out_.str();
  EXPECT_THAT(Tokens(lines[0]), ElementsAre("NAME", "PHASE", "GPUS", "RAY", "OWNER", "AGE", "URL"));
  EXPECT_THAT(Tokens(lines[1]),
              ElementsAre("alice", "Ready", "2", "3w", "alice@example.com", "3m", kUrl));
  // Not reconciled yet: Pending, no URL.
  EXPECT_THAT(Tokens(lines[2]),
              ElementsAre("bob", "Pending", "0", "off", "bob@example.com", "3m", "-"));
}

TEST_F(WorkspaceCommandsTest, ListOfAnEmptyNamespaceSaysHowToCreateOne) {
  ASSERT_TRUE(cmd_.List().ok());
  EXPECT_EQ(out_.str(), "no workspaces in namespace team-a (create one: tessera ws create NAME)\n");
}

TEST_F(WorkspaceCommandsTest, DescribeShowsTheSpecAndConditions) {
  CreateArgs args = Args("alice");
  args.ray_workers = 2;
  args.idle_timeout = "3h";
  MustCreate(args);
  SetStatus("alice", {{"phase", "Starting"},
                      {"url", kUrl},
                      {"conditions",
                       {{{"type", "TemplateResolved"},
                         {"status", "True"},
                         {"reason", "Found"},
                         {"message", "WorkspaceTemplate default"}},
                        {{"type", "Ready"},
                         {"status", "False"},
                         {"reason", "Starting"},
                         {"message", "phase Starting"}}}}});
  out_.str("");
  ASSERT_TRUE(cmd_.Describe("alice").ok());
  const std::string text = out_.str();
  EXPECT_THAT(text, HasSubstr("Owner:      alice@example.com\n"));
  EXPECT_THAT(text, HasSubstr("Template:   default\n"));
  EXPECT_THAT(text, HasSubstr("Phase:      Starting\n"));
  EXPECT_THAT(text, HasSubstr(std::string("URL:        ") + kUrl + "\n"));
  EXPECT_THAT(text, HasSubstr("Resources:  cpu -, memory -, gpus - (unset: from the template)"));
  EXPECT_THAT(text, HasSubstr("Ray:        2 workers (autoscaling 0..4)\n"));
  EXPECT_THAT(text, HasSubstr("Idle stop:  after 3h\n"));
  std::vector<std::string> lines = Lines(text);
  auto conditions = std::find(lines.begin(), lines.end(), "Conditions:");
  ASSERT_NE(conditions, lines.end()) << text;
  ASSERT_GE(lines.end() - conditions, 5) << text;
  EXPECT_THAT(Tokens(conditions[1]),
              ElementsAre("TemplateResolved", "True", "Found", "WorkspaceTemplate", "default"));
  EXPECT_THAT(Tokens(conditions[2]),
              ElementsAre("Ready", "False", "Starting", "phase", "Starting"));
  EXPECT_EQ(conditions[3], "Recent events:");
  EXPECT_EQ(conditions[4], "  (none)");
}

TEST_F(WorkspaceCommandsTest, DescribeShowsTheLastTenOwnEventsInTimeOrder) {
  CreateArgs args = Args("alice");
  args.gpus = 1;
  MustCreate(args);
  const std::string uid = Get("alice")["metadata"]["uid"];
  // Twelve events for alice whose names do not sort by time (the fake lists by name).
  for (int i = 0; i < 12; ++i) {
    const int t = (i * 5) % 12;  // a permutation of 0..11
    AddEvent(fmt::format("alice.{:02d}", i), "Workspace", "alice", uid, kT0 + t * 1000,
             fmt::format("Reason{:02d}", t), fmt::format("msg-{:02d}", t));
  }
  // Not alice's: another workspace, a Pod named alice, and an earlier workspace "alice" that was
  // deleted and created again (another uid).
  AddEvent("bob.1", "Workspace", "bob", "uid-bob", kT0 + 20'000, "Other", "msg-bob");
  AddEvent("alice-pod.1", "Pod", "alice", "uid-pod", kT0 + 20'000, "Other", "msg-pod");
  AddEvent("alice.old", "Workspace", "alice", "uid-before", kT0 + 30'000, "Other", "msg-old");
  out_.str("");

  ASSERT_TRUE(cmd_.Describe("alice").ok());
  const std::string text = out_.str();
  EXPECT_THAT(text, HasSubstr("gpus 1 (unset"));
  std::vector<std::string> lines = Lines(text);
  auto events = std::find(lines.begin(), lines.end(), "Recent events:");
  ASSERT_NE(events, lines.end()) << text;
  std::vector<std::string> messages;
  for (auto it = events + 1; it != lines.end(); ++it) {
    std::vector<std::string> tokens = Tokens(*it);
    ASSERT_EQ(tokens.size(), 4u) << *it;
    messages.push_back(tokens[3]);
  }
  EXPECT_THAT(messages, ElementsAre("msg-02", "msg-03", "msg-04", "msg-05", "msg-06", "msg-07",
                                    "msg-08", "msg-09", "msg-10", "msg-11"))
      << text;
  EXPECT_THAT(*(events + 1), HasSubstr(FormatRfc3339Millis(kT0 + 2000)));
  EXPECT_THAT(*(events + 1), HasSubstr("Reason02"));
}

TEST_F(WorkspaceCommandsTest, DescribeOfAMissingWorkspace) {
  absl::Status s = cmd_.Describe("nobody");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(StatusMessage(s),
              HasSubstr("there is no workspace \"nobody\" in namespace team-a (see `tessera ws "
                        "list`)"));
}

TEST_F(WorkspaceCommandsTest, OpenPrintsTheUrlOfAReadyWorkspace) {
  MustCreate(Args("alice"));
  SetStatus("alice", {{"phase", "Ready"}, {"url", kUrl}});
  out_.str("");
  ASSERT_TRUE(cmd_.Open("alice", 0).ok());
  EXPECT_EQ(out_.str(), std::string(kUrl) + "\n");
}

TEST_F(WorkspaceCommandsTest, OpenOfAStoppedOrFailedWorkspaceSaysWhatToDo) {
  MustCreate(Args("alice"));
  out_.str("");
  for (const char* phase : {"Stopped", "Stopping"}) {
    SCOPED_TRACE(phase);
    SetStatus("alice", {{"phase", phase}, {"url", kUrl}});
    absl::Status s = cmd_.Open("alice", 60'000);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(StatusMessage(s), HasSubstr("`tessera ws start alice`"));
  }
  SetStatus("alice", {{"phase", "Failed"}});
  absl::Status s = cmd_.Open("alice", 60'000);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(StatusMessage(s), HasSubstr("`tessera ws describe alice`"));
  EXPECT_THAT(out_.str(), IsEmpty());
}

TEST_F(WorkspaceCommandsTest, OpenOfANeverReconciledWorkspaceSaysPendingAsListDoes) {
  MustCreate(Args("alice"));  // no status at all: the operator has not seen it
  out_.str("");
  absl::Status s = cmd_.Open("alice", 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(StatusMessage(s), HasSubstr("phase Pending"));
  ASSERT_TRUE(cmd_.List().ok());
  EXPECT_THAT(out_.str(), HasSubstr("Pending"));
}

TEST_F(WorkspaceCommandsTest, OpenDoesNotTrustAStatusOlderThanTheSpec) {
  MustCreate(Args("alice"));
  SetStatus("alice", {{"phase", "Stopped"}, {"url", kUrl}});
  ASSERT_TRUE(cmd_.Start("alice").ok());  // spec changed; the operator has not seen it yet
  out_.str("");
  absl::Status s = cmd_.Open("alice", 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(StatusMessage(s), HasSubstr("phase Updating"));
  // And right after a stop, a Ready status from before is not an address to hand out.
  SetStatus("alice", {{"phase", "Ready"}, {"url", kUrl}});
  ASSERT_TRUE(cmd_.Stop("alice").ok());
  s = cmd_.Open("alice", 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(out_.str(), Not(HasSubstr(kUrl)));
}

TEST_F(WorkspaceCommandsTest, OpenOfAWorkspaceWithoutItsTemplateSaysSoAtOnce) {
  MustCreate(Args("alice"));
  SetStatus("alice", {{"phase", "Pending"},
                      {"conditions",
                       {{{"type", "TemplateResolved"},
                         {"status", "False"},
                         {"reason", "TemplateNotFound"},
                         {"message", "WorkspaceTemplate \"gpu\" does not exist"}}}}});
  absl::Status s = cmd_.Open("alice", 60'000);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(StatusMessage(s), HasSubstr("cannot start: WorkspaceTemplate \"gpu\""));
}

TEST_F(WorkspaceCommandsTest, OpenWithoutWaitOfAStartingWorkspaceIsUnavailable) {
  MustCreate(Args("alice"));
  SetStatus("alice", {{"phase", "Starting"}, {"url", kUrl}});
  out_.str("");
  absl::Status s = cmd_.Open("alice", 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(StatusMessage(s), HasSubstr("not ready yet (phase Starting)"));
  EXPECT_THAT(StatusMessage(s), HasSubstr("tessera ws open alice --wait"));
  EXPECT_THAT(out_.str(), IsEmpty());

  s = cmd_.Open("nobody", 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(StatusMessage(s), HasSubstr("there is no workspace \"nobody\""));
}

TEST_F(WorkspaceCommandsTest, OpenWaitsUntilTheWorkspaceIsReady) {
  MustCreate(Args("alice"));
  MustCreate(Args("bob"));
  SetStatus("alice", {{"phase", "Starting"}, {"url", kUrl}});
  // A real clock for the deadline: Open waits on the fake's watch, not on the clock.
  WorkspaceCommands cmd(&fake_, kNs, kCluster, SystemClock::Default(), &out_);
  out_.str("");

  std::atomic<bool> open_returned{false};
  std::thread operator_thread([this, &open_returned] {
    // Once Open watches: a change to another workspace (Open keeps waiting), then Ready.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (fake_.ActiveWatches() == 0 && !open_returned.load() &&
           std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    SetStatus("bob", {{"phase", "Ready"}});
    SetStatus("alice", {{"phase", "Ready"}, {"url", kUrl}});
  });
  absl::Status s = cmd.Open("alice", 30'000);
  open_returned.store(true);
  operator_thread.join();
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(out_.str(), std::string(kUrl) + "\n");
  std::vector<std::string> calls = fake_.Calls();
  EXPECT_NE(std::find(calls.begin(), calls.end(), "WATCH workspaces team-a"), calls.end());
}

TEST_F(WorkspaceCommandsTest, StopAndStartToggleStoppedAndStartClearsTheCullMark) {
  MustCreate(Args("alice"));
  out_.str("");
  ASSERT_TRUE(cmd_.Stop("alice").ok());
  EXPECT_EQ(Get("alice")["spec"]["stopped"], true);
  EXPECT_THAT(out_.str(), HasSubstr("workspace \"alice\" is stopping; its home volume is kept"));

  // As the operator's culler leaves it, next to someone else's annotation.
  ASSERT_TRUE(
      fake_
          .MergePatch(
              kube::WorkspaceType(), kNs, "alice",
              {{"metadata",
                {{"annotations",
                  {{"workspaces.tessera.dev/culled-at", "2026-01-01T00:00:00Z"}, {"team", "a"}}}}}})
          .ok());
  out_.str("");
  ASSERT_TRUE(cmd_.Start("alice").ok());
  json ws = Get("alice");
  EXPECT_EQ(ws["spec"]["stopped"], false);
  EXPECT_EQ(ws["metadata"]["annotations"], json::parse(R"({"team": "a"})"));
  EXPECT_THAT(out_.str(), HasSubstr("workspace \"alice\" is starting"));

  // Starting one that was never culled (no annotations at all) works too.
  MustCreate(Args("bob"));
  ASSERT_TRUE(cmd_.Start("bob").ok());
  EXPECT_EQ(Get("bob")["spec"]["stopped"], false);
  EXPECT_TRUE(ParseWorkspace(Get("bob")).ok());

  absl::Status s = cmd_.Stop("nobody");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(StatusMessage(s), HasSubstr("could not stop workspace \"nobody\": there is no"));
}

TEST_F(WorkspaceCommandsTest, DeleteRemovesTheWorkspace) {
  MustCreate(Args("alice"));
  out_.str("");
  ASSERT_TRUE(cmd_.Delete("alice").ok());
  EXPECT_EQ(fake_.Get(kube::WorkspaceType(), kNs, "alice").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(out_.str(), HasSubstr("workspace \"alice\" is being deleted"));

  absl::Status s = cmd_.Delete("alice");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(StatusMessage(s), HasSubstr("could not delete workspace \"alice\": there is no"));
}

TEST_F(WorkspaceCommandsTest, ApiErrorsAreExplained) {
  struct Case {
    absl::Status error;
    const char* sentence;
  };
  const std::vector<Case> cases = {
      {absl::PermissionDeniedError("workspaces is forbidden: User \"x\" cannot list"),
       "could not list workspaces: you are not allowed to do that in namespace team-a"},
      {absl::UnauthenticatedError("Unauthorized"),
       "could not list workspaces: test-cluster did not accept your credentials"},
      {absl::UnavailableError("connect: connection refused"),
       "could not list workspaces: cannot reach test-cluster"},
      {absl::NotFoundError("GET /apis/workspaces.tessera.dev/v1alpha1: the server could not "
                           "find the requested resource"),
       "could not list workspaces: the Tessera workspaces API is not installed on test-cluster"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.sentence);
    FailEverything(c.error);
    absl::Status s = cmd_.List();
    EXPECT_EQ(s.code(), c.error.code());
    EXPECT_THAT(StatusMessage(s), HasSubstr(c.sentence));
    // The raw error stays available for whoever debugs it.
    EXPECT_THAT(StatusMessage(s), HasSubstr(fmt::format("details: {}", StatusMessage(c.error))));
  }

  FailEverything(absl::UnauthenticatedError("Unauthorized"));
  absl::Status s = cmd_.Create(Args("alice"));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(StatusMessage(s), HasSubstr("could not create workspace \"alice\": test-cluster"));
  FailEverything(absl::PermissionDeniedError("forbidden"));
  s = cmd_.Open("alice", 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(StatusMessage(s), HasSubstr("could not open workspace \"alice\": you are not"));
  FailEverything(absl::UnavailableError("timeout"));
  s = cmd_.Describe("alice");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(StatusMessage(s), HasSubstr("cannot reach test-cluster"));
  EXPECT_THAT(out_.str(), Not(HasSubstr("Name:")));
}

}  // namespace
}  // namespace tessera::workspaces::cli
