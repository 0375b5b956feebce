#include "workspaces/kube/kube_http.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/errors.h"

namespace tessera::workspaces::kube {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(KubeHttpTest, ResourcePaths) {
  EXPECT_EQ(ResourcePath(PodType(), "team-a", "p1"), "/api/v1/namespaces/team-a/pods/p1");
  EXPECT_EQ(ResourcePath(PodType(), "team-a"), "/api/v1/namespaces/team-a/pods");
  EXPECT_EQ(ResourcePath(PodType(), ""), "/api/v1/pods");  // all namespaces
  EXPECT_EQ(ResourcePath(WorkspaceType(), "team-a", "alice", "status"),
            "/apis/workspaces.tessera.dev/v1alpha1/namespaces/team-a/workspaces/alice/status");
  EXPECT_EQ(ResourcePath(LeaseType(), "kube-system", "tessera-operator"),
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/tessera-operator");
  ResourceType nodes{"", "v1", "Node", "nodes", /*namespaced=*/false};
  EXPECT_EQ(ResourcePath(nodes, "ignored", "n1"), "/api/v1/nodes/n1");
  // Names are escaped (a name with a slash must not address another path).
  EXPECT_EQ(ResourcePath(PodType(), "ns", "a/b c"), "/api/v1/namespaces/ns/pods/a%2Fb%20c");
}

TEST(KubeHttpTest, ResourceTypes) {
  EXPECT_EQ(WorkspaceType().ApiVersion(), "workspaces.tessera.dev/v1alpha1");
  EXPECT_EQ(WorkspaceTemplateType().plural, "workspacetemplates");
  EXPECT_EQ(StatefulSetType().ApiVersion(), "apps/v1");
  EXPECT_EQ(ServiceType().ApiVersion(), "v1");
  EXPECT_EQ(PersistentVolumeClaimType().plural, "persistentvolumeclaims");
  EXPECT_EQ(EventType().plural, "events");
  EXPECT_EQ(LeaseType().ApiVersion(), "coordination.k8s.io/v1");
  EXPECT_EQ(VirtualServiceType().ApiVersion(), "networking.istio.io/v1beta1");
  EXPECT_EQ(VirtualServiceType().plural, "virtualservices");
  EXPECT_EQ(AuthorizationPolicyType().ApiVersion(), "security.istio.io/v1beta1");
  EXPECT_EQ(AuthorizationPolicyType().plural, "authorizationpolicies");
  EXPECT_EQ(RayClusterType().ApiVersion(), "ray.io/v1");
  EXPECT_EQ(RayClusterType().kind, "RayCluster");
  EXPECT_TRUE(PodType().namespaced);
}

TEST(KubeHttpTest, QueryEscapesValues) {
  EXPECT_EQ(QueryBuilder().Build(), "");
  EXPECT_EQ(QueryBuilder()
                .Add("labelSelector", "app=ws,tier in (a,b)")
                .AddIfSet("fieldSelector", "")
                .Add("continue", "eyJ2+/=")
                .Build(),
            "?labelSelector=app%3Dws%2Ctier%20in%20%28a%2Cb%29&continue=eyJ2%2B%2F%3D");
}

absl::Status Mapped(long code, const std::string& reason) {
  std::string body =
      fmt::format(R"({{"kind":"Status","apiVersion":"v1","status":"Failure","message":"msg {}",)"
                  R"("reason":"{}","code":{}}})",
                  code, reason, code);
  return StatusFromResponse("GET", "/api/v1/namespaces/a/pods/b", code, body);
}

TEST(KubeHttpTest, ErrorMapping) {
  EXPECT_EQ(Mapped(404, "NotFound").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Mapped(409, "AlreadyExists").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Mapped(409, "Conflict").code(), absl::StatusCode::kAborted);
  EXPECT_EQ(Mapped(410, "Expired").code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Mapped(401, "Unauthorized").code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Mapped(403, "Forbidden").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Mapped(400, "BadRequest").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Mapped(422, "Invalid").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Mapped(500, "InternalError").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Mapped(503, "ServiceUnavailable").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Mapped(429, "TooManyRequests").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusMessage(Mapped(404, "NotFound")), "GET /api/v1/namespaces/a/pods/b: msg 404");
  // Not a Status body: the text is kept.
  absl::Status s = StatusFromResponse("PUT", "/x", 502, "Bad Gateway\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusMessage(s), "PUT /x: HTTP 502: Bad Gateway");
}

TEST(KubeHttpTest, A404WithoutAStatusNamesTheTypeThatIsNotServed) {
  // What kube-apiserver answers for a group/version or plural it does not serve.
  absl::Status s = StatusFromResponse(
      "PATCH",
      "/apis/networking.istio.io/v1beta1/namespaces/team-a/virtualservices/ws-a?fieldManager=x",
      404, "404 page not found\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(StatusMessage(s), HasSubstr("does not serve virtualservices.networking.istio.io "
                                          "v1beta1 (HTTP 404: 404 page not found)"));
  EXPECT_THAT(StatusMessage(s),
              HasSubstr("is the CustomResourceDefinition virtualservices.networking.istio.io "
                        "installed?"));
  EXPECT_EQ(ServedTypeOfPath("/apis/ray.io/v1/rayclusters"), "rayclusters.ray.io v1");
  EXPECT_EQ(ServedTypeOfPath("/apis/ray.io/v1"), "");
  EXPECT_EQ(ServedTypeOfPath("/api/v1/namespaces/a/pods/b"), "");
  EXPECT_EQ(ServedTypeOfPath("/apis/ray.io/v1/namespaces/a"), "");
  // A missing object keeps the server's own message.
  EXPECT_EQ(StatusMessage(Mapped(404, "NotFound")), "GET /api/v1/namespaces/a/pods/b: msg 404");
}

TEST(KubeHttpTest, ServerVersion) {
  EXPECT_EQ(ParseServerVersion(json{{"major", "1"}, {"minor", "20"}}).value(),
            std::make_pair(1, 20));
  EXPECT_EQ(ParseServerVersion(json{{"major", "1"}, {"minor", "27+"}}).value(),
            std::make_pair(1, 27));
  EXPECT_FALSE(ParseServerVersion(json{{"major", "1"}}).ok());
  EXPECT_FALSE(ParseServerVersion(json{{"major", "x"}, {"minor", "2"}}).ok());
  EXPECT_FALSE(ParseServerVersion(json::array()).ok());
}

TEST(KubeHttpTest, WatchEvents) {
  absl::StatusOr<WatchEvent> e = ParseWatchEvent(
      "WATCH", "/p", R"({"type":"MODIFIED","object":{"metadata":{"resourceVersion":"7"}}})");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->type, WatchEvent::Type::kModified);
  EXPECT_EQ(e->object["metadata"]["resourceVersion"], "7");

  e = ParseWatchEvent("WATCH", "/p", R"({"type":"BOOKMARK","object":{"metadata":{}}})");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->type, WatchEvent::Type::kBookmark);

  e = ParseWatchEvent(
      "WATCH", "/p",
      R"json({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired",
                          "message":"too old resource version: 5 (10)"}})json");
  ASSERT_FALSE(e.ok());
  EXPECT_TRUE(IsGone(e.status()));
  EXPECT_THAT(StatusMessage(e.status()), HasSubstr("too old resource version"));

  e = ParseWatchEvent("WATCH", "/p", R"({"type":"ERROR","object":{"kind":"Status","code":500}})");
  EXPECT_EQ(e.status().code(), absl::StatusCode::kUnavailable);

  e = ParseWatchEvent("WATCH", "/p", "not json");
  EXPECT_FALSE(e.ok());
}

TEST(KubeHttpTest, DecoderSplitsLinesAcrossChunks) {
  WatchStreamDecoder d;
  std::vector<std::string> lines;
  auto collect = [&](std::string_view line) {
    lines.emplace_back(line);
    return true;
  };
  const std::string stream = "{\"a\":1}\n{\"b\":2}\r\n\n{\"c\":3}\n{\"d\"";
  // Every split of the stream into two chunks gives the same lines.
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    lines.clear();
    WatchStreamDecoder dd;
    EXPECT_TRUE(dd.Feed(std::string_view(stream).substr(0, cut), collect));
    EXPECT_TRUE(dd.Feed(std::string_view(stream).substr(cut), collect));
    EXPECT_THAT(lines, ElementsAre("{\"a\":1}", "{\"b\":2}", "{\"c\":3}")) << "cut " << cut;
    EXPECT_EQ(dd.pending(), "{\"d\"");
  }
  // Byte by byte.
  lines.clear();
  for (char c : stream) EXPECT_TRUE(d.Feed(std::string_view(&c, 1), collect));
  EXPECT_THAT(lines, ElementsAre("{\"a\":1}", "{\"b\":2}", "{\"c\":3}"));
}

TEST(KubeHttpTest, DecoderStopsWhenAskedTo) {
  WatchStreamDecoder d;
  int calls = 0;
  EXPECT_FALSE(d.Feed("1\n2\n3\n", [&](std::string_view) { return ++calls < 2; }));
  EXPECT_EQ(calls, 2);
}

TEST(KubeHttpTest, FillTypeMetaOnlyFillsWhatIsMissing) {
  nlohmann::json item = {{"metadata", {{"name", "x"}}}};
  FillTypeMeta(StatefulSetType(), item);
  EXPECT_EQ(item["apiVersion"], "apps/v1");
  EXPECT_EQ(item["kind"], "StatefulSet");
  nlohmann::json other = {{"apiVersion", "apps/v1beta2"}, {"kind", "Other"}};
  FillTypeMeta(StatefulSetType(), other);
  EXPECT_EQ(other["apiVersion"], "apps/v1beta2");
  EXPECT_EQ(other["kind"], "Other");
}

}  // namespace
}  // namespace tessera::workspaces::kube
