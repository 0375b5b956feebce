#include "workspaces/local/local_template.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <string>

#include "common/errors.h"

namespace tessera::workspaces::local {
namespace {

using ::nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kTemplate[] = R"(# a team's template, exactly as applied to the cluster
apiVersion: workspaces.tessera.dev/v1alpha1
kind: WorkspaceTemplate
metadata:
  name: ml-team
  namespace: team-a
spec:
  image: ghcr.io/example/ide:1.0
  resources: {cpu: "4", memory: 16Gi}
  initCommands:
    - pip install --user pandas
    - |
      mkdir -p data
      echo ready > data/ready
  extensions: [ms-python.python, redhat.vscode-yaml@1.14.0]
  env:
    - name: FOO
      value: bar
    - name: EMPTY
      value: ""
)";

TEST(LocalTemplateTest, TheClusterFormatLoads) {
  absl::StatusOr<LocalTemplate> t = ParseLocalTemplate(kTemplate, "t.yaml");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->tmpl.metadata.name, "ml-team");
  const WorkspaceTemplateSpec& spec = t->tmpl.spec;
  EXPECT_THAT(spec.init_commands,
              ElementsAre("pip install --user pandas", "mkdir -p data\necho ready > data/ready\n"));
  EXPECT_THAT(spec.extensions, ElementsAre("ms-python.python", "redhat.vscode-yaml@1.14.0"));
  ASSERT_EQ(spec.env.size(), 2u);
  EXPECT_EQ(spec.env[0].name, "FOO");
  EXPECT_EQ(spec.env[0].value, "bar");
  EXPECT_EQ(spec.env[1].name, "EMPTY");
  EXPECT_EQ(spec.env[1].value, "");
  EXPECT_THAT(t->ignored_fields, ElementsAre("image", "resources"));
}

TEST(LocalTemplateTest, AllClusterOnlyFieldsAreReported) {
  absl::StatusOr<LocalTemplate> t = ParseLocalTemplate(R"(
apiVersion: workspaces.tessera.dev/v1alpha1
kind: WorkspaceTemplate
metadata: {name: t}
spec:
  image: ide
  rayImage: ray
  extraContainers: [{name: side, image: busybox}]
)",
                                                       "t.yaml");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(t->ignored_fields, ElementsAre("image", "rayImage", "extraContainers"));
  EXPECT_TRUE(t->tmpl.spec.init_commands.empty());
}

TEST(LocalTemplateTest, ScalarsFollowTheCoreSchemaAndQuotesKeepStrings) {
  absl::StatusOr<json> j = YamlToJson(R"(
int: 12
negative: -3
quoted_int: "12"
single_quoted: '007'
bool: true
Bool: False
yes_is_a_string: yes
float: 1.5
exp: 1e3
null1: ~
null2: null
empty:
version: 1.2.3
str_tag: !!str 42
list: [1, "1", a]
nested: {a: {b: [true]}}
)",
                                      "s.yaml");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ((*j)["int"], json(12));
  EXPECT_EQ((*j)["negative"], json(-3));
  EXPECT_EQ((*j)["quoted_int"], json("12"));
  EXPECT_EQ((*j)["single_quoted"], json("007"));
  EXPECT_EQ((*j)["bool"], json(true));
  EXPECT_EQ((*j)["Bool"], json(false));
  EXPECT_EQ((*j)["yes_is_a_string"], json("yes"));
  EXPECT_EQ((*j)["float"], json(1.5));
  EXPECT_EQ((*j)["exp"], json(1000.0));
  EXPECT_TRUE((*j)["null1"].is_null());
  EXPECT_TRUE((*j)["null2"].is_null());
  EXPECT_TRUE((*j)["empty"].is_null());
  EXPECT_EQ((*j)["version"], json("1.2.3"));
  EXPECT_EQ((*j)["str_tag"], json("42"));
  EXPECT_EQ((*j)["list"], json::parse(R"([1, "1", "a"])"));
  EXPECT_EQ((*j)["nested"], json::parse(R"({"a": {"b": [true]}})"));
}

TEST(LocalTemplateTest, BadYamlNamesTheFileLineAndColumn) {
  absl::StatusOr<LocalTemplate> t = ParseLocalTemplate(
      "apiVersion: workspaces.tessera.dev/v1alpha1\nkind: WorkspaceTemplate\nspec: [a, b\n",
      "bad.yaml");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(StatusMessage(t.status()), HasSubstr("bad.yaml:"));
  EXPECT_THAT(StatusMessage(t.status()), HasSubstr("invalid YAML"));

  t = ParseLocalTemplate("a: 1\n  b: 2\n", "indent.yaml");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(StatusMessage(t.status()), HasSubstr("indent.yaml:2:"));
}

TEST(LocalTemplateTest, DuplicateKeysAreErrors) {
  absl::StatusOr<json> j = YamlToJson("a: 1\nb: 2\na: 3\n", "dup.yaml");
  ASSERT_FALSE(j.ok());
  EXPECT_THAT(StatusMessage(j.status()), HasSubstr("dup.yaml:3:1: duplicate key 'a'"));
}

TEST(LocalTemplateTest, TheApiParsersErrorsComeThroughWithTheFileName) {
  // An unquoted number where the CRD wants a string: rejected as on the cluster.
  absl::StatusOr<LocalTemplate> t = ParseLocalTemplate(R"(
apiVersion: workspaces.tessera.dev/v1alpha1
kind: WorkspaceTemplate
metadata: {name: t}
spec:
  image: ide
  env: [{name: PORT, value: 8080}]
)",
                                                       "env.yaml");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(StatusMessage(t.status()), HasSubstr("env.yaml: "));
  EXPECT_THAT(StatusMessage(t.status()), HasSubstr("spec.env[0].value"));

  t = ParseLocalTemplate("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "cm.yaml");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(StatusMessage(t.status()), HasSubstr("expected apiVersion"));

  t = ParseLocalTemplate(R"(
apiVersion: workspaces.tessera.dev/v1alpha1
kind: WorkspaceTemplate
metadata: {name: t}
spec: {image: ide, extensions: [/tmp/local.vsix]}
)",
                         "vsix.yaml");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(StatusMessage(t.status()), HasSubstr("spec.extensions[0]"));
}

TEST(LocalTemplateTest, EmptyAndMultiDocumentFilesAreErrors) {
  EXPECT_THAT(StatusMessage(ParseLocalTemplate("", "e.yaml").status()), HasSubstr("empty"));
  EXPECT_THAT(StatusMessage(ParseLocalTemplate("# only a comment\n", "e.yaml").status()),
              HasSubstr("empty"));
  EXPECT_THAT(StatusMessage(ParseLocalTemplate("a: 1\n---\nb: 2\n", "m.yaml").status()),
              HasSubstr("2 YAML documents"));
}

TEST(LocalTemplateTest, LoadReadsAFile) {
  std::string path = ::testing::TempDir() + "/local_template_test.yaml";
  std::ofstream(path) << kTemplate;
  absl::StatusOr<LocalTemplate> t = LoadLocalTemplate(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->tmpl.spec.env.size(), 2u);
  EXPECT_EQ(LoadLocalTemplate(path + ".missing").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tessera::workspaces::local
