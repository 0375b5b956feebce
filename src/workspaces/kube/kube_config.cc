#include "workspaces/kube/kube_config.h"

#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "common/errors.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/strings.h"

namespace tessera::workspaces::kube {
namespace {

namespace fs = std::filesystem;

constexpr char kLocalHint[] =
    "ask your platform team for a kubeconfig, or use \"tessera ws up --local\"";

// ReadFileToString with what the file is for in the message.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path, std::string_view what) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (absl::IsNotFound(text.status())) return NotFound("{} {} does not exist", what, path);
  if (!text.ok()) {
    return FailedPrecondition("{} {} cannot be read: {}", what, path, StatusMessage(text.status()));
  }
  return text;
}

std::string GetEnv(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

std::string HomeDir() {
  std::string home = GetEnv("HOME");
  if (!home.empty()) return home;
  if (const passwd* pw = getpwuid(getuid()); pw != nullptr && pw->pw_dir != nullptr) {
    return pw->pw_dir;
  }
  return "";
}

// "https://host:port", with brackets around an IPv6 host.
std::string ServerUrl(const std::string& host, const std::string& port) {
  std::string h = host.find(':') != std::string::npos ? fmt::format("[{}]", host) : host;
  return fmt::format("https://{}:{}", h, port.empty() ? "443" : port);
}

std::string StripTrailingSlashes(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

// Scalar child `key` of a map node, or "" when absent or not a scalar.
std::string Str(const YAML::Node& node, const char* key) {
  if (!node.IsMap()) return "";
  const YAML::Node v = node[key];
  if (!v.IsDefined() || !v.IsScalar()) return "";
  return v.as<std::string>();
}

bool Bool(const YAML::Node& node, const char* key) {
  if (!node.IsMap()) return false;
  const YAML::Node v = node[key];
  if (!v.IsDefined() || !v.IsScalar()) return false;
  std::string s = v.as<std::string>();
  return s == "true" || s == "True" || s == "TRUE" || s == "yes";
}

// The entries of a named list ("clusters", "users", "contexts"): name → the inner map under
// `inner_key` ("cluster", "user", "context").
struct NamedEntries {
  std::vector<std::string> names;
  std::vector<YAML::Node> bodies;

  const YAML::Node* Find(const std::string& name) const {
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == name) return &bodies[i];
    }
    return nullptr;
  }
  std::string NameList() const {
    if (names.empty()) return "none";
    return fmt::format("{}", fmt::join(names, ", "));
  }
};

absl::StatusOr<NamedEntries> Entries(const YAML::Node& root, const char* list_key,
                                     const char* inner_key, const std::string& path) {
  NamedEntries out;
  const YAML::Node list = root[list_key];
  if (!list.IsDefined() || list.IsNull()) return out;
  if (!list.IsSequence()) {
    return InvalidArgument("kubeconfig {}: \"{}\" should be a list", path, list_key);
  }
  for (const YAML::Node& entry : list) {
    std::string name = Str(entry, "name");
    if (name.empty()) {
      return InvalidArgument("kubeconfig {}: an entry of \"{}\" has no name", path, list_key);
    }
    out.names.push_back(name);
    YAML::Node body = entry.IsMap() ? entry[inner_key] : YAML::Node();
    out.bodies.push_back(body.IsDefined() ? body : YAML::Node(YAML::NodeType::Map));
  }
  return out;
}

// A path from the kubeconfig, relative ones against the kubeconfig's directory.
std::string Resolve(const std::string& p, const fs::path& base_dir) {
  if (p.empty()) return p;
  fs::path fp(p);
  if (fp.is_absolute()) return p;
  return (base_dir / fp).lexically_normal().string();
}

absl::StatusOr<std::string> DecodeBase64(const std::string& data, std::string_view field,
                                         std::string_view owner, const std::string& path) {
  std::string compact;
  compact.reserve(data.size());
  for (char c : data) {
    if (c != '\n' && c != '\r' && c != ' ' && c != '\t') compact.push_back(c);
  }
  std::string out;
  if (!absl::Base64Unescape(compact, &out)) {
    return InvalidArgument("kubeconfig {}: {} of {} is not valid base64", path, field, owner);
  }
  return out;
}

absl::Status CheckFileExists(const std::string& file, std::string_view field,
                             std::string_view owner, const std::string& path) {
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    return NotFound("kubeconfig {}: {} {} of {} does not exist", path, field, file, owner);
  }
  return absl::OkStatus();
}

absl::StatusOr<KubeConfig> ParseKubeconfig(const YAML::Node& root, const std::string& path,
                                           std::string_view context_override) {
  if (!root.IsMap()) {
    return InvalidArgument(
        "kubeconfig {} is not a kubeconfig (expected a YAML map with "
        "clusters, users and contexts)",
        path);
  }
  const fs::path base_dir = fs::path(path).parent_path();
  TESSERA_ASSIGN_OR_RETURN(NamedEntries clusters, Entries(root, "clusters", "cluster", path));
  TESSERA_ASSIGN_OR_RETURN(NamedEntries users, Entries(root, "users", "user", path));
  TESSERA_ASSIGN_OR_RETURN(NamedEntries contexts, Entries(root, "contexts", "context", path));

  std::string context_name(context_override);
  if (context_name.empty()) context_name = Str(root, "current-context");
  if (context_name.empty()) {
    return NotFound(
        "kubeconfig {} has no current-context; choose one with --context "
        "(contexts: {})",
        path, contexts.NameList());
  }
  const YAML::Node* context = contexts.Find(context_name);
  if (context == nullptr) {
    return NotFound("kubeconfig {}: context \"{}\" not found (contexts: {})", path, context_name,
                    contexts.NameList());
  }

  KubeConfig config;
  config.context_name = context_name;
  config.source = fmt::format("kubeconfig {}, context \"{}\"", path, context_name);
  std::string ns = Str(*context, "namespace");
  if (!ns.empty()) config.default_namespace = ns;

  // Cluster: where the server is and how to trust it.
  std::string cluster_name = Str(*context, "cluster");
  if (cluster_name.empty()) {
    return InvalidArgument("kubeconfig {}: context \"{}\" names no cluster", path, context_name);
  }
  const YAML::Node* cluster = clusters.Find(cluster_name);
  if (cluster == nullptr) {
    return NotFound(
        "kubeconfig {}: context \"{}\" uses cluster \"{}\", which is not in the file "
        "(clusters: {})",
        path, context_name, cluster_name, clusters.NameList());
  }
  std::string cluster_owner = fmt::format("cluster \"{}\"", cluster_name);
  config.server = StripTrailingSlashes(Str(*cluster, "server"));
  if (config.server.empty()) {
    return InvalidArgument("kubeconfig {}: {} has no server address", path, cluster_owner);
  }
  if (config.server.rfind("https://", 0) != 0 && config.server.rfind("http://", 0) != 0) {
    return InvalidArgument("kubeconfig {}: server \"{}\" of {} should start with https://", path,
                           config.server, cluster_owner);
  }
  config.insecure_skip_tls_verify = Bool(*cluster, "insecure-skip-tls-verify");
  if (std::string data = Str(*cluster, "certificate-authority-data"); !data.empty()) {
    TESSERA_ASSIGN_OR_RETURN(config.ca_data,
                             DecodeBase64(data, "certificate-authority-data", cluster_owner, path));
  } else if (std::string file = Str(*cluster, "certificate-authority"); !file.empty()) {
    config.ca_file = Resolve(file, base_dir);
    TESSERA_RETURN_IF_ERROR(
        CheckFileExists(config.ca_file, "certificate-authority", cluster_owner, path));
  }

  // User: how to authenticate.
  std::string user_name = Str(*context, "user");
  if (user_name.empty()) return config;  // anonymous
  const YAML::Node* user = users.Find(user_name);
  if (user == nullptr) {
    return NotFound(
        "kubeconfig {}: context \"{}\" uses user \"{}\", which is not in the file "
        "(users: {})",
        path, context_name, user_name, users.NameList());
  }
  std::string user_owner = fmt::format("user \"{}\"", user_name);
  if (const YAML::Node exec = (*user)["exec"]; exec.IsDefined() && !exec.IsNull()) {
    std::string command = Str(exec, "command");
    return Unimplemented(
        "kubeconfig {}: {} gets its credentials from an exec plugin (command \"{}\"), which "
        "tessera does not support; use a kubeconfig with a token or a client certificate "
        "(e.g. for a service account), or use \"tessera ws up --local\"",
        path, user_owner, command);
  }
  if (const YAML::Node ap = (*user)["auth-provider"]; ap.IsDefined() && !ap.IsNull()) {
    return Unimplemented(
        "kubeconfig {}: {} uses the auth-provider plugin \"{}\", which tessera does not "
        "support; use a kubeconfig with a token or a client certificate",
        path, user_owner, Str(ap, "name"));
  }
  config.token = Str(*user, "token");
  if (std::string file = Str(*user, "tokenFile"); !file.empty() && config.token.empty()) {
    config.token_file = Resolve(file, base_dir);
    absl::StatusOr<std::string> token = ReadWholeFile(config.token_file, "tokenFile");
    if (!token.ok()) {
      return Annotate(token.status(), fmt::format("kubeconfig {}, {}", path, user_owner));
    }
    config.token = std::string(Trim(*token, kSpaceTabNewline));
  }
  if (std::string data = Str(*user, "client-certificate-data"); !data.empty()) {
    TESSERA_ASSIGN_OR_RETURN(config.client_cert_data,
                             DecodeBase64(data, "client-certificate-data", user_owner, path));
  } else if (std::string file = Str(*user, "client-certificate"); !file.empty()) {
    config.client_cert_file = Resolve(file, base_dir);
    TESSERA_RETURN_IF_ERROR(
        CheckFileExists(config.client_cert_file, "client-certificate", user_owner, path));
  }
  if (std::string data = Str(*user, "client-key-data"); !data.empty()) {
    TESSERA_ASSIGN_OR_RETURN(config.client_key_data,
                             DecodeBase64(data, "client-key-data", user_owner, path));
  } else if (std::string file = Str(*user, "client-key"); !file.empty()) {
    config.client_key_file = Resolve(file, base_dir);
    TESSERA_RETURN_IF_ERROR(
        CheckFileExists(config.client_key_file, "client-key", user_owner, path));
  }
  bool has_cert = !config.client_cert_data.empty() || !config.client_cert_file.empty();
  bool has_key = !config.client_key_data.empty() || !config.client_key_file.empty();
  if (has_cert != has_key) {
    return InvalidArgument("kubeconfig {}: {} has a client {} but no client {}", path, user_owner,
                           has_cert ? "certificate" : "key", has_cert ? "key" : "certificate");
  }
  if (config.token.empty() && !has_cert &&
      (!Str(*user, "username").empty() || !Str(*user, "password").empty())) {
    return Unimplemented(
        "kubeconfig {}: {} uses a username and password (basic auth), which tessera does not "
        "support; use a kubeconfig with a token or a client certificate",
        path, user_owner);
  }
  return config;
}

}  // namespace

absl::StatusOr<KubeConfig> LoadInCluster(const InClusterPaths& paths) {
  std::string host = paths.host.empty() ? GetEnv("KUBERNETES_SERVICE_HOST") : paths.host;
  std::string port = paths.port.empty() ? GetEnv("KUBERNETES_SERVICE_PORT") : paths.port;
  if (host.empty()) {
    return NotFound("not running inside a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set)");
  }
  KubeConfig config;
  config.server = ServerUrl(host, port);
  config.source = "in-cluster service account";
  config.context_name = "";
  config.token_file = paths.token_file;
  absl::StatusOr<std::string> token = ReadWholeFile(paths.token_file, "service account token");
  if (!token.ok()) {
    return Annotate(token.status(),
                    "in-cluster configuration (is a service account token mounted in this pod?)");
  }
  config.token = std::string(Trim(*token, kSpaceTabNewline));
  if (config.token.empty()) {
    return InvalidArgument("in-cluster configuration: service account token {} is empty",
                           paths.token_file);
  }
  std::error_code ec;
  if (fs::exists(paths.ca_file, ec)) config.ca_file = paths.ca_file;
  if (absl::StatusOr<std::string> ns = ReadWholeFile(paths.namespace_file, "namespace");
      ns.ok() && !Trim(*ns, kSpaceTabNewline).empty()) {
    config.default_namespace = std::string(Trim(*ns, kSpaceTabNewline));
  }
  return config;
}

absl::StatusOr<KubeConfig> LoadKubeconfig(const std::string& path,
                                          std::string_view context_override) {
  absl::StatusOr<std::string> text = ReadWholeFile(path, "kubeconfig");
  if (!text.ok()) return text.status();
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return InvalidArgument("kubeconfig {} is not valid YAML: line {}, column {}: {}", path,
                           e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  try {
    return ParseKubeconfig(root, path, context_override);
  } catch (const YAML::Exception& e) {
    return InvalidArgument("kubeconfig {} is not a valid kubeconfig: {}", path, e.what());
  }
}

absl::StatusOr<KubeConfig> LoadDefault(std::string_view context_override) {
  std::string env = GetEnv("KUBECONFIG");
  if (!env.empty()) {
    std::string first;
    std::stringstream list(env);
    for (std::string item; std::getline(list, item, ':');) {
      if (!item.empty()) {
        first = item;
        break;
      }
    }
    if (!first.empty()) {
      std::error_code ec;
      if (!fs::exists(first, ec)) {
        return NotFound("KUBECONFIG is set to {} but {} does not exist ({})", env, first,
                        kLocalHint);
      }
      return LoadKubeconfig(first, context_override);
    }
  }
  std::string home = HomeDir();
  std::string default_path = home.empty() ? "~/.kube/config" : home + "/.kube/config";
  std::error_code ec;
  if (!home.empty() && fs::exists(default_path, ec)) {
    return LoadKubeconfig(default_path, context_override);
  }
  if (!GetEnv("KUBERNETES_SERVICE_HOST").empty()) return LoadInCluster();
  return NotFound(
      "no Kubernetes cluster configured: {} does not exist and KUBECONFIG is not set "
      "({})",
      default_path, kLocalHint);
}

}  // namespace tessera::workspaces::kube
