#include "workspaces/kube/intent.h"

#include <gtest/gtest.h>

namespace tessera::workspaces::kube {
namespace {

using nlohmann::json;

TEST(IntentTest, LiveWithDefaultsAndOtherFieldsSatisfiesTheIntent) {
  const json intent = json::parse(R"({
    "metadata": {"name": "ws-a", "labels": {"app": "ws"}},
    "spec": {"replicas": 1, "ports": [{"name": "http", "port": 80}],
             "template": {"spec": {"containers": [{"name": "ide", "resources":
                 {"limits": {"cpu": "0.5", "memory": "8Gi", "nvidia.com/gpu": 1}}}]}}}})");
  const json live = json::parse(R"({
    "metadata": {"name": "ws-a", "labels": {"app": "ws", "extra": "x"}, "resourceVersion": "9"},
    "spec": {"replicas": 1, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
             "template": {"spec": {"containers": [{"name": "ide", "imagePullPolicy": "Always",
                 "resources": {"limits": {"cpu": "500m", "memory": "8192Mi",
                                          "nvidia.com/gpu": "1"}}}]}}},
    "status": {"replicas": 1}})");
  EXPECT_TRUE(LiveSatisfiesIntent(live, intent));
}

TEST(IntentTest, AnyChangedMissingOrGrownFieldIsADifference) {
  const json intent = json::parse(R"({"spec": {"ports": [{"name": "http", "port": 80}],
                                               "suspend": false, "env": [{"value": "1.10"}]}})");
  json live = intent;
  EXPECT_TRUE(LiveSatisfiesIntent(live, intent));
  live["spec"]["ports"][0]["port"] = 81;
  EXPECT_FALSE(LiveSatisfiesIntent(live, intent));
  live = intent;
  live["spec"]["ports"].push_back({{"name", "x"}, {"port", 90}});
  EXPECT_FALSE(LiveSatisfiesIntent(live, intent));
  live = intent;
  live["spec"].erase("suspend");
  EXPECT_FALSE(LiveSatisfiesIntent(live, intent));
  live = intent;
  live["spec"]["suspend"] = "false";
  EXPECT_FALSE(LiveSatisfiesIntent(live, intent));
  // Outside limits/requests, strings are strings: "1.1" is not "1.10".
  live = intent;
  live["spec"]["env"][0]["value"] = "1.1";
  EXPECT_FALSE(LiveSatisfiesIntent(live, intent));
  EXPECT_FALSE(LiveSatisfiesIntent(json(), intent));
  EXPECT_TRUE(LiveSatisfiesIntent(json::object(), json::parse(R"({"a": null})")));
}

TEST(IntentTest, DigestIsStableAndSeesRemovals) {
  const json a = json::parse(R"({"spec": {"b": 1, "a": [1, 2], "limits": {"gpu": "1"}}})");
  const json b = json::parse(R"({"spec": {"limits": {"gpu": "1"}, "a": [1, 2], "b": 1}})");
  EXPECT_EQ(IntentDigest(a), IntentDigest(b));  // key order does not matter
  EXPECT_EQ(IntentDigest(a).size(), 16u);
  json smaller = a;
  smaller["spec"]["limits"].erase("gpu");
  EXPECT_NE(IntentDigest(a), IntentDigest(smaller));
  // With the digest in it, the smaller intent no longer matches the live object.
  json live = a;
  live["metadata"]["annotations"]["d"] = IntentDigest(a);
  smaller["metadata"]["annotations"]["d"] = IntentDigest(smaller);
  EXPECT_FALSE(LiveSatisfiesIntent(live, smaller));
}

TEST(IntentTest, Quantities) {
  EXPECT_EQ(ParseQuantity("500m"), 0.5L);
  EXPECT_EQ(ParseQuantity("2"), 2.0L);
  EXPECT_EQ(ParseQuantity("1Gi"), 1024.0L * 1024 * 1024);
  EXPECT_EQ(ParseQuantity("1.5k"), 1500.0L);
  EXPECT_EQ(ParseQuantity("1e3"), 1000.0L);
  EXPECT_EQ(ParseQuantity("+.5"), 0.5L);
  for (const char* bad : {"", "Gi", "1Xi", "1 Gi", "abc", "1e", "1ee3", "0x10", "1.2.3", "1mm"}) {
    EXPECT_FALSE(ParseQuantity(bad).has_value()) << bad;
  }
  const json a = {{"limits", {{"memory", "1Gi"}}}};
  const json b = {{"limits", {{"memory", "1024Mi"}}}};
  const json c = {{"limits", {{"memory", "1G"}}}};
  EXPECT_TRUE(LiveSatisfiesIntent(a, b));
  EXPECT_FALSE(LiveSatisfiesIntent(a, c));
}

}  // namespace
}  // namespace tessera::workspaces::kube
