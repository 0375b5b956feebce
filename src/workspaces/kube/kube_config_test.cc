#include "workspaces/kube/kube_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/escaping.h"
#include "common/errors.h"

namespace tessera::workspaces::kube {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class KubeConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("kube_config_test_{}_{}", getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& rel, const std::string& text) {
    fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }

  fs::path dir_;
};

constexpr char kTokenKubeconfig[] = R"(
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev-cluster
  cluster:
    server: https://dev.example.com:6443/
    insecure-skip-tls-verify: true
- name: prod-cluster
  cluster:
    server: https://prod.example.com
users:
- name: alice
  user:
    token: abc.def
contexts:
- name: dev
  context: {cluster: dev-cluster, user: alice, namespace: team-a}
- name: prod
  context: {cluster: prod-cluster, user: alice}
)";

TEST_F(KubeConfigTest, TokenKubeconfigUsesCurrentContext) {
  std::string path = Write("config", kTokenKubeconfig);
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "https://dev.example.com:6443");  // trailing slash dropped
  EXPECT_EQ(config->token, "abc.def");
  EXPECT_TRUE(config->insecure_skip_tls_verify);
  EXPECT_EQ(config->default_namespace, "team-a");
  EXPECT_EQ(config->context_name, "dev");
  EXPECT_THAT(config->source, HasSubstr(path));
}

TEST_F(KubeConfigTest, ContextOverrideAndDefaultNamespace) {
  std::string path = Write("config", kTokenKubeconfig);
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(path, "prod");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "https://prod.example.com");
  EXPECT_FALSE(config->insecure_skip_tls_verify);
  EXPECT_EQ(config->default_namespace, "default");
}

TEST_F(KubeConfigTest, MissingContextListsTheContexts) {
  std::string path = Write("config", kTokenKubeconfig);
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(path, "foo");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(StatusMessage(config.status()),
            fmt::format("kubeconfig {}: context \"foo\" not found (contexts: dev, prod)", path));
}

TEST_F(KubeConfigTest, CertificateFilesResolveAgainstTheKubeconfigDirectory) {
  Write("certs/ca.crt", "CA");
  Write("certs/client.crt", "CERT");
  Write("certs/client.key", "KEY");
  std::string path = Write("sub/config", R"(
current-context: c
clusters:
- name: k
  cluster: {server: "https://k:443", certificate-authority: ../certs/ca.crt}
users:
- name: u
  user: {client-certificate: ../certs/client.crt, client-key: ../certs/client.key}
contexts:
- name: c
  context: {cluster: k, user: u}
)");
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->ca_file, (dir_ / "certs/ca.crt").string());
  EXPECT_EQ(config->client_cert_file, (dir_ / "certs/client.crt").string());
  EXPECT_EQ(config->client_key_file, (dir_ / "certs/client.key").string());
  EXPECT_TRUE(config->token.empty());
}

TEST_F(KubeConfigTest, MissingCertificateFileIsNamed) {
  std::string path = Write("config", R"(
current-context: c
clusters:
- name: k
  cluster: {server: "https://k", certificate-authority: nope/ca.crt}
contexts:
- name: c
  context: {cluster: k}
)");
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(StatusMessage(config.status()),
              HasSubstr((dir_ / "nope/ca.crt").string() + " of cluster \"k\" does not exist"));
}

TEST_F(KubeConfigTest, DataFieldsAreBase64Decoded) {
  std::string path = Write(
      "config", fmt::format(R"(
current-context: c
clusters:
- name: k
  cluster: {{server: "https://k", certificate-authority-data: {}}}
users:
- name: u
  user: {{client-certificate-data: {}, client-key-data: {}}}
contexts:
- name: c
  context: {{cluster: k, user: u}}
)",
                            absl::Base64Escape(std::string("-----BEGIN CERTIFICATE-----\nCA\n")),
                            absl::Base64Escape(std::string("CERT-PEM")),
                            absl::Base64Escape(std::string("KEY-PEM"))));
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->ca_data, "-----BEGIN CERTIFICATE-----\nCA\n");
  EXPECT_EQ(config->client_cert_data, "CERT-PEM");
  EXPECT_EQ(config->client_key_data, "KEY-PEM");
  EXPECT_TRUE(config->ca_file.empty());
}

TEST_F(KubeConfigTest, BadBase64IsAnError) {
  std::string path = Write("config", R"(
current-context: c
clusters:
- name: k
  cluster: {server: "https://k", certificate-authority-data: "not*base64"}
contexts:
- name: c
  context: {cluster: k}
)");
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(StatusMessage(config.status()),
              HasSubstr("certificate-authority-data of cluster \"k\" is not valid base64"));
}

TEST_F(KubeConfigTest, TokenFileIsReadAndRemembered) {
  Write("token", "tok-123\n");
  std::string path = Write("config", R"(
current-context: c
clusters: [{name: k, cluster: {server: "https://k"}}]
users: [{name: u, user: {tokenFile: token}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
)");
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->token, "tok-123");
  EXPECT_EQ(config->token_file, (dir_ / "token").string());
}

TEST_F(KubeConfigTest, ExecPluginsAreRefusedWithAnExplanation) {
  std::string path = Write("config", R"(
current-context: gke
clusters: [{name: k, cluster: {server: "https://k"}}]
users:
- name: gke-user
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: gke-gcloud-auth-plugin}
contexts: [{name: gke, context: {cluster: k, user: gke-user}}]
)");
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(StatusMessage(config.status()), HasSubstr("exec plugin"));
  EXPECT_THAT(StatusMessage(config.status()), HasSubstr("gke-gcloud-auth-plugin"));
  EXPECT_THAT(StatusMessage(config.status()), HasSubstr("not support"));
}

TEST_F(KubeConfigTest, InvalidYamlNamesTheFileAndLine) {
  std::string path = Write("config", "clusters: [\n  - {name: a\n");
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(StatusMessage(config.status()), HasSubstr(path + " is not valid YAML"));
}

TEST_F(KubeConfigTest, NoCurrentContext) {
  std::string path =
      Write("config", "clusters: []\ncontexts: [{name: a, context: {cluster: x}}]\n");
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(StatusMessage(config.status()), HasSubstr("no current-context"));
  EXPECT_THAT(StatusMessage(config.status()), HasSubstr("(contexts: a)"));
}

TEST_F(KubeConfigTest, InClusterFromFiles) {
  InClusterPaths paths;
  paths.token_file = Write("sa/token", "sa-token\n");
  paths.ca_file = Write("sa/ca.crt", "CA");
  paths.namespace_file = Write("sa/namespace", "tessera-system\n");
  paths.host = "10.96.0.1";
  paths.port = "443";
  absl::StatusOr<KubeConfig> config = LoadInCluster(paths);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "https://10.96.0.1:443");
  EXPECT_EQ(config->token, "sa-token");
  EXPECT_EQ(config->token_file, paths.token_file);
  EXPECT_EQ(config->ca_file, paths.ca_file);
  EXPECT_EQ(config->default_namespace, "tessera-system");

  paths.host = "fd00::1";
  config = LoadInCluster(paths);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "https://[fd00::1]:443");
}

TEST_F(KubeConfigTest, InClusterWithoutTokenOrHost) {
  InClusterPaths paths;
  paths.token_file = (dir_ / "missing-token").string();
  paths.host = "10.96.0.1";
  absl::StatusOr<KubeConfig> config = LoadInCluster(paths);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(StatusMessage(config.status()), HasSubstr("missing-token does not exist"));

  unsetenv("KUBERNETES_SERVICE_HOST");
  paths.host = "";
  config = LoadInCluster(paths);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(StatusMessage(config.status()), HasSubstr("not running inside a Kubernetes pod"));
}

TEST_F(KubeConfigTest, LoadDefaultPrefersKubeconfigEnvThenHome) {
  std::string env_path = Write("env-config", kTokenKubeconfig);
  setenv("KUBECONFIG", fmt::format("{}:/does/not/matter", env_path).c_str(), 1);
  absl::StatusOr<KubeConfig> config = LoadDefault("prod");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "https://prod.example.com");

  unsetenv("KUBECONFIG");
  unsetenv("KUBERNETES_SERVICE_HOST");
  setenv("HOME", dir_.c_str(), 1);
  config = LoadDefault();
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(StatusMessage(config.status()),
            fmt::format("no Kubernetes cluster configured: {}/.kube/config does not exist and "
                        "KUBECONFIG is not set (ask your platform team for a kubeconfig, or use "
                        "\"tessera ws up --local\")",
                        dir_.string()));

  Write(".kube/config", kTokenKubeconfig);
  config = LoadDefault();
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->context_name, "dev");
}

}  // namespace
}  // namespace tessera::workspaces::kube
