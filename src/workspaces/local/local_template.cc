#include "workspaces/local/local_template.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cstdlib>
#include <regex>

#include "common/errors.h"
#include "common/file_util.h"

namespace tessera::workspaces::local {
namespace {

using nlohmann::json;

constexpr char kStrTag[] = "tag:yaml.org,2002:str";
constexpr char kIntTag[] = "tag:yaml.org,2002:int";
constexpr char kBoolTag[] = "tag:yaml.org,2002:bool";
constexpr char kFloatTag[] = "tag:yaml.org,2002:float";
constexpr char kNullTag[] = "tag:yaml.org,2002:null";

std::string Where(std::string_view source, const YAML::Mark& mark) {
  if (mark.is_null()) return std::string(source);
  return fmt::format("{}:{}:{}", source, mark.line + 1, mark.column + 1);
}

bool IsNullWord(const std::string& s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

std::optional<bool> BoolWord(const std::string& s) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  return std::nullopt;
}

std::optional<int64_t> IntWord(const std::string& s) {
  static const std::regex kInt(R"([-+]?[0-9]+)");
  if (!std::regex_match(s, kInt)) return std::nullopt;
  int64_t v = 0;
  const char* begin = s.data() + (s[0] == '+' ? 1 : 0);
  auto [end, ec] = std::from_chars(begin, s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;  // out of range
  return v;
}

std::optional<double> FloatWord(const std::string& s) {
  static const std::regex kFloat(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (!std::regex_match(s, kFloat)) return std::nullopt;
  return std::strtod(s.c_str(), nullptr);
}

absl::StatusOr<json> ScalarToJson(const YAML::Node& node, std::string_view source) {
  const std::string& text = node.Scalar();
  const std::string& tag = node.Tag();
  if (tag == "!" || tag == kStrTag) return json(text);  // quoted, or explicitly a string
  if (tag == kNullTag && IsNullWord(text)) return json(nullptr);
  if (tag == kBoolTag) {
    if (auto b = BoolWord(text)) return json(*b);
    return InvalidArgument("{}: '{}' is tagged !!bool but is not true or false",
                           Where(source, node.Mark()), text);
  }
  if (tag == kIntTag) {
    if (auto i = IntWord(text)) return json(*i);
    return InvalidArgument("{}: '{}' is tagged !!int but is not a decimal integer",
                           Where(source, node.Mark()), text);
  }
  if (tag == kFloatTag) {
    if (auto d = FloatWord(text)) return json(*d);
    return InvalidArgument("{}: '{}' is tagged !!float but is not a number",
                           Where(source, node.Mark()), text);
  }
  // Plain (untagged) scalar: the YAML 1.2 core schema.
  if (IsNullWord(text)) return json(nullptr);
  if (auto b = BoolWord(text)) return json(*b);
  if (auto i = IntWord(text)) return json(*i);
  if (auto d = FloatWord(text)) return json(*d);
  return json(text);
}

absl::StatusOr<json> NodeToJson(const YAML::Node& node, std::string_view source, int depth) {
  if (depth > 64) return InvalidArgument("{}: nested too deeply", Where(source, node.Mark()));
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return json(nullptr);
    case YAML::NodeType::Scalar:
      return ScalarToJson(node, source);
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const YAML::Node& item : node) {
        absl::StatusOr<json> v = NodeToJson(item, source, depth + 1);
        if (!v.ok()) return v.status();
        out.push_back(*std::move(v));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) {
          return InvalidArgument("{}: mapping keys must be plain strings",
                                 Where(source, kv.first.Mark()));
        }
        const std::string& key = kv.first.Scalar();
        if (out.contains(key)) {
          return InvalidArgument("{}: duplicate key '{}'", Where(source, kv.first.Mark()), key);
        }
        absl::StatusOr<json> v = NodeToJson(kv.second, source, depth + 1);
        if (!v.ok()) return v.status();
        out[key] = *std::move(v);
      }
      return out;
    }
  }
  return InvalidArgument("{}: unsupported YAML node", Where(source, node.Mark()));
}

}  // namespace

absl::StatusOr<json> YamlToJson(std::string_view yaml, std::string_view source) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return InvalidArgument("{}: invalid YAML: {}", Where(source, e.mark), e.msg);
  }
  if (docs.empty() || (docs.size() == 1 && docs[0].IsNull())) {
    return InvalidArgument("{}: the file is empty; expected one WorkspaceTemplate", source);
  }
  if (docs.size() > 1) {
    return InvalidArgument("{}: the file holds {} YAML documents; expected one WorkspaceTemplate",
                           source, docs.size());
  }
  try {
    return NodeToJson(docs[0], source, 0);
  } catch (const YAML::Exception& e) {
    return InvalidArgument("{}: invalid YAML: {}", Where(source, e.mark), e.msg);
  }
}

absl::StatusOr<LocalTemplate> ParseLocalTemplate(std::string_view yaml, std::string_view source) {
  absl::StatusOr<json> object = YamlToJson(yaml, source);
  if (!object.ok()) return object.status();
  absl::StatusOr<WorkspaceTemplate> parsed = ParseWorkspaceTemplate(*object);
  if (!parsed.ok()) return InvalidArgument("{}: {}", source, StatusMessage(parsed.status()));
  LocalTemplate t{.tmpl = *std::move(parsed), .ignored_fields = {}};
  const json& spec = (*object)["spec"];
  for (const char* field : {"image", "resources", "rayImage", "extraContainers"}) {
    if (spec.contains(field)) t.ignored_fields.emplace_back(field);
  }
  return t;
}

absl::StatusOr<LocalTemplate> LoadLocalTemplate(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    return absl::Status(text.status().code(),
                        fmt::format("cannot read the template {}", StatusMessage(text.status())));
  }
  return ParseLocalTemplate(*text, path);
}

}  // namespace tessera::workspaces::local
