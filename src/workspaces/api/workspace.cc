#include "workspaces/api/workspace.h"

#include <fmt/format.h>

#include <cctype>
#include <regex>
#include <string_view>

#include "common/errors.h"
#include "common/status_macros.h"

namespace tessera::workspaces {
namespace {

using nlohmann::json;

// Reads typed fields of one JSON object and names `what: path` in every error.
class FieldReader {
 public:
  FieldReader(std::string what, std::string path)
      : what_(std::move(what)), path_(std::move(path)) {}

  absl::Status Error(std::string_view field, const json& value, std::string_view expected) const {
    return InvalidArgument("{}: {} is {}; expected {}", what_, Path(field), value.dump(), expected);
  }
  std::string Path(std::string_view field) const {
    return path_.empty() ? std::string(field) : fmt::format("{}.{}", path_, field);
  }
  FieldReader Sub(std::string_view field) const { return FieldReader(what_, Path(field)); }

  // A missing or null field leaves *out untouched.
  absl::Status String(const json& obj, std::string_view field, std::string* out) const {
    const json* v = Find(obj, field);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_string()) return Error(field, *v, "a string");
    *out = v->get<std::string>();
    return absl::OkStatus();
  }
  absl::Status Bool(const json& obj, std::string_view field, bool* out) const {
    const json* v = Find(obj, field);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_boolean()) return Error(field, *v, "true or false");
    *out = v->get<bool>();
    return absl::OkStatus();
  }
  absl::Status Int(const json& obj, std::string_view field, int64_t lo, int64_t hi,
                   int64_t* out) const {
    const json* v = Find(obj, field);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_number_integer() || v->get<int64_t>() < lo || v->get<int64_t>() > hi) {
      return Error(field, *v, fmt::format("an integer from {} to {}", lo, hi));
    }
    *out = v->get<int64_t>();
    return absl::OkStatus();
  }
  absl::Status Int32(const json& obj, std::string_view field, int lo, int hi, int* out) const {
    int64_t v = *out;
    TESSERA_RETURN_IF_ERROR(Int(obj, field, lo, hi, &v));
    *out = static_cast<int>(v);
    return absl::OkStatus();
  }
  absl::Status Object(const json& obj, std::string_view field, const json** out) const {
    *out = nullptr;
    const json* v = Find(obj, field);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_object()) return Error(field, *v, "an object");
    *out = v;
    return absl::OkStatus();
  }
  absl::Status Array(const json& obj, std::string_view field, const json** out) const {
    *out = nullptr;
    const json* v = Find(obj, field);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_array()) return Error(field, *v, "a list");
    *out = v;
    return absl::OkStatus();
  }
  absl::Status StringList(const json& obj, std::string_view field,
                          std::vector<std::string>* out) const {
    const json* list = nullptr;
    TESSERA_RETURN_IF_ERROR(Array(obj, field, &list));
    if (list == nullptr) return absl::OkStatus();
    for (size_t i = 0; i < list->size(); ++i) {
      if (!(*list)[i].is_string()) {
        return Error(fmt::format("{}[{}]", field, i), (*list)[i], "a string");
      }
      out->push_back((*list)[i].get<std::string>());
    }
    return absl::OkStatus();
  }
  absl::Status StringMap(const json& obj, std::string_view field,
                         std::vector<std::pair<std::string, std::string>>* out) const {
    const json* map = nullptr;
    TESSERA_RETURN_IF_ERROR(Object(obj, field, &map));
    if (map == nullptr) return absl::OkStatus();
    for (const auto& [k, v] : map->items()) {
      if (!v.is_string()) return Error(fmt::format("{}.{}", field, k), v, "a string");
      out->emplace_back(k, v.get<std::string>());
    }
    return absl::OkStatus();
  }

 private:
  static const json* Find(const json& obj, std::string_view field) {
    auto it = obj.find(field);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
  }

  std::string what_;
  std::string path_;
};

bool Matches(const std::string& text, const char* pattern) {
  return std::regex_match(text, std::regex(pattern));
}

constexpr char kCpuPattern[] = R"([0-9]+(\.[0-9]+)?m?)";
constexpr char kMemoryPattern[] = R"([0-9]+(Ki|Mi|Gi|Ti|K|M|G|T)?)";

absl::Status ParseResources(const FieldReader& r, const json& obj, Resources* out) {
  TESSERA_RETURN_IF_ERROR(r.String(obj, "cpu", &out->cpu));
  if (!out->cpu.empty() && !Matches(out->cpu, kCpuPattern)) {
    return r.Error("cpu", out->cpu, "a CPU quantity such as \"2\" or \"500m\"");
  }
  TESSERA_RETURN_IF_ERROR(r.String(obj, "memory", &out->memory));
  if (!out->memory.empty() && !Matches(out->memory, kMemoryPattern)) {
    return r.Error("memory", out->memory, "a memory quantity such as \"8Gi\"");
  }
  if (obj.contains("gpus") && !obj["gpus"].is_null()) {
    int gpus = 0;
    TESSERA_RETURN_IF_ERROR(r.Int32(obj, "gpus", 0, 16, &gpus));
    out->gpus = gpus;
  }
  return absl::OkStatus();
}

absl::Status CheckKind(const json& object, std::string_view kind) {
  if (!object.is_object()) {
    return InvalidArgument("a {} must be a JSON object, got {}", kind, object.type_name());
  }
  const std::string api_version = object.value("apiVersion", "");
  const std::string actual_kind = object.value("kind", "");
  if (api_version != kApiVersion || actual_kind != kind) {
    return InvalidArgument("expected apiVersion {} kind {}, got apiVersion \"{}\" kind \"{}\"",
                           kApiVersion, kind, api_version, actual_kind);
  }
  return absl::OkStatus();
}

std::string Describe(std::string_view kind, const ObjectMeta& meta) {
  return meta.namespace_.empty() ? fmt::format("{} {}", kind, meta.name)
                                 : fmt::format("{} {}/{}", kind, meta.namespace_, meta.name);
}

absl::Status ParseStatus(const FieldReader& r, const json& obj, WorkspaceStatus* out) {
  std::string phase;
  TESSERA_RETURN_IF_ERROR(r.String(obj, "phase", &phase));
  if (!phase.empty()) {
    out->phase = ParsePhase(phase);
    if (!out->phase) {
      return r.Error("phase", phase, "Pending, Starting, Ready, Stopping, Stopped or Failed");
    }
  }
  TESSERA_RETURN_IF_ERROR(r.String(obj, "url", &out->url));
  TESSERA_RETURN_IF_ERROR(
      r.Int(obj, "observedGeneration", 0, INT64_MAX, &out->observed_generation));
  TESSERA_RETURN_IF_ERROR(r.String(obj, "lastActivityTime", &out->last_activity_time));
  TESSERA_RETURN_IF_ERROR(r.String(obj, "readySince", &out->ready_since));
  TESSERA_RETURN_IF_ERROR(r.String(obj, "startingSince", &out->starting_since));
  TESSERA_RETURN_IF_ERROR(r.String(obj, "firstReadyTime", &out->first_ready_time));
  TESSERA_RETURN_IF_ERROR(r.String(obj, "firstRayJobTime", &out->first_ray_job_time));
  const json* conditions = nullptr;
  TESSERA_RETURN_IF_ERROR(r.Array(obj, "conditions", &conditions));
  if (conditions != nullptr) {
    for (size_t i = 0; i < conditions->size(); ++i) {
      const json& c = (*conditions)[i];
      FieldReader cr = r.Sub(fmt::format("conditions[{}]", i));
      if (!c.is_object()) return r.Error(fmt::format("conditions[{}]", i), c, "an object");
      Condition cond;
      TESSERA_RETURN_IF_ERROR(cr.String(c, "type", &cond.type));
      TESSERA_RETURN_IF_ERROR(cr.String(c, "status", &cond.status));
      TESSERA_RETURN_IF_ERROR(cr.String(c, "reason", &cond.reason));
      TESSERA_RETURN_IF_ERROR(cr.String(c, "message", &cond.message));
      TESSERA_RETURN_IF_ERROR(cr.String(c, "lastTransitionTime", &cond.last_transition_time));
      TESSERA_RETURN_IF_ERROR(
          cr.Int(c, "observedGeneration", 0, INT64_MAX, &cond.observed_generation));
      out->conditions.push_back(std::move(cond));
    }
  }
  return absl::OkStatus();
}

// What every object of ours starts with: apiVersion/kind, metadata, and a spec object.
// `*what` names the object in errors ("Workspace ns/name").
struct Head {
  ObjectMeta metadata;
  std::string what;
  const json* spec = nullptr;
};

absl::StatusOr<Head> ParseHead(const json& object, std::string_view kind);

}  // namespace

const char* PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kPending:
      return "Pending";
    case Phase::kStarting:
      return "Starting";
    case Phase::kReady:
      return "Ready";
    case Phase::kStopping:
      return "Stopping";
    case Phase::kStopped:
      return "Stopped";
    case Phase::kFailed:
      return "Failed";
  }
  return "Unknown";
}

std::optional<Phase> ParsePhase(std::string_view name) {
  for (Phase p : {Phase::kPending, Phase::kStarting, Phase::kReady, Phase::kStopping,
                  Phase::kStopped, Phase::kFailed}) {
    if (name == PhaseName(p)) return p;
  }
  return std::nullopt;
}

// Ten years: longer idle timeouts are a typo, and seconds * 1000 must not overflow.
constexpr int64_t kMaxDurationSeconds = int64_t{87600} * 3600;

absl::StatusOr<int64_t> ParseDuration(std::string_view text) {
  if (text.empty()) return InvalidArgument("empty duration; expected e.g. \"2h\" or \"1h30m\"");
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    int64_t n = 0;
    size_t digits = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      if (n > (INT64_MAX / 10 - 9) / 3600) {
        return InvalidArgument("duration \"{}\" is too long", text);
      }
      n = n * 10 + (text[i++] - '0');
      ++digits;
    }
    if (digits == 0 || i == text.size()) {
      return InvalidArgument("duration \"{}\": expected numbers each followed by s, m or h", text);
    }
    const char unit = text[i++];
    const int64_t scale = unit == 'h' ? 3600 : unit == 'm' ? 60 : unit == 's' ? 1 : 0;
    if (scale == 0) {
      return InvalidArgument("duration \"{}\": unit '{}' is not s, m or h", text, unit);
    }
    total += n * scale;
    if (total > kMaxDurationSeconds) {
      return InvalidArgument("duration \"{}\" is too long (at most 87600h, ten years)", text);
    }
  }
  return total;
}

bool IsDnsLabel(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  for (char c : name) {
    if (!alnum(c) && c != '-') return false;
  }
  return true;
}

absl::StatusOr<ObjectMeta> ParseObjectMeta(const json& object) {
  ObjectMeta meta;
  auto it = object.find("metadata");
  if (it == object.end() || !it->is_object()) {
    return InvalidArgument("object has no metadata; expected metadata.name at least");
  }
  const json& m = *it;
  FieldReader r("object", "metadata");
  TESSERA_RETURN_IF_ERROR(r.String(m, "name", &meta.name));
  if (meta.name.empty()) return InvalidArgument("object has no metadata.name");
  TESSERA_RETURN_IF_ERROR(r.String(m, "namespace", &meta.namespace_));
  TESSERA_RETURN_IF_ERROR(r.String(m, "uid", &meta.uid));
  TESSERA_RETURN_IF_ERROR(r.String(m, "resourceVersion", &meta.resource_version));
  TESSERA_RETURN_IF_ERROR(r.String(m, "creationTimestamp", &meta.creation_timestamp));
  TESSERA_RETURN_IF_ERROR(r.Int(m, "generation", 0, INT64_MAX, &meta.generation));
  meta.deleting = m.contains("deletionTimestamp") && !m["deletionTimestamp"].is_null();
  TESSERA_RETURN_IF_ERROR(r.StringList(m, "finalizers", &meta.finalizers));
  TESSERA_RETURN_IF_ERROR(r.StringMap(m, "labels", &meta.labels));
  TESSERA_RETURN_IF_ERROR(r.StringMap(m, "annotations", &meta.annotations));
  return meta;
}

namespace {

absl::StatusOr<Head> ParseHead(const json& object, std::string_view kind) {
  TESSERA_RETURN_IF_ERROR(CheckKind(object, kind));
  Head head;
  TESSERA_ASSIGN_OR_RETURN(head.metadata, ParseObjectMeta(object));
  head.what = Describe(kind, head.metadata);
  TESSERA_RETURN_IF_ERROR(FieldReader(head.what, "").Object(object, "spec", &head.spec));
  if (head.spec == nullptr) return InvalidArgument("{}: spec is missing", head.what);
  return head;
}

}  // namespace

absl::StatusOr<Workspace> ParseWorkspace(const json& object) {
  TESSERA_ASSIGN_OR_RETURN(Head head, ParseHead(object, "Workspace"));
  Workspace ws;
  ws.metadata = std::move(head.metadata);
  const std::string& what = head.what;
  const json* spec = head.spec;
  if (!IsDnsLabel(ws.metadata.name)) {
    return InvalidArgument(
        "{}: the name must be at most 63 lower-case letters, digits and '-', starting and "
        "ending with a letter or digit (it names the workspace's pods, services and URL)",
        what);
  }
  FieldReader root(what, "");
  FieldReader r = root.Sub("spec");
  WorkspaceSpec& s = ws.spec;
  TESSERA_RETURN_IF_ERROR(r.String(*spec, "owner", &s.owner));
  if (s.owner.empty()) return InvalidArgument("{}: spec.owner is missing or empty", what);
  TESSERA_RETURN_IF_ERROR(r.String(*spec, "template", &s.template_name));
  if (!IsDnsLabel(s.template_name)) {
    return r.Error("template", s.template_name, "the name of a WorkspaceTemplate");
  }
  TESSERA_RETURN_IF_ERROR(r.String(*spec, "image", &s.image));
  const json* resources = nullptr;
  TESSERA_RETURN_IF_ERROR(r.Object(*spec, "resources", &resources));
  if (resources != nullptr) {
    TESSERA_RETURN_IF_ERROR(ParseResources(r.Sub("resources"), *resources, &s.resources));
  }
  const json* ray = nullptr;
  TESSERA_RETURN_IF_ERROR(r.Object(*spec, "ray", &ray));
  if (ray != nullptr) {
    FieldReader rr = r.Sub("ray");
    TESSERA_RETURN_IF_ERROR(rr.Bool(*ray, "enabled", &s.ray.enabled));
    const json* workers = nullptr;
    TESSERA_RETURN_IF_ERROR(rr.Object(*ray, "workers", &workers));
    if (workers != nullptr) {
      FieldReader wr = rr.Sub("workers");
      RayWorkers& w = s.ray.workers;
      TESSERA_RETURN_IF_ERROR(wr.Int32(*workers, "replicas", 0, 1000, &w.replicas));
      TESSERA_RETURN_IF_ERROR(wr.Int32(*workers, "minReplicas", 0, 1000, &w.min_replicas));
      TESSERA_RETURN_IF_ERROR(wr.Int32(*workers, "maxReplicas", 0, 1000, &w.max_replicas));
      if (w.min_replicas > w.max_replicas) {
        return InvalidArgument("{}: spec.ray.workers.minReplicas ({}) exceeds maxReplicas ({})",
                               what, w.min_replicas, w.max_replicas);
      }
      TESSERA_RETURN_IF_ERROR(ParseResources(wr, *workers, &w.resources));
    }
  }
  const json* home = nullptr;
  TESSERA_RETURN_IF_ERROR(r.Object(*spec, "home", &home));
  if (home != nullptr) {
    FieldReader hr = r.Sub("home");
    TESSERA_RETURN_IF_ERROR(hr.String(*home, "size", &s.home.size));
    if (!Matches(s.home.size, R"([0-9]+(Ki|Mi|Gi|Ti))")) {
      return hr.Error("size", s.home.size, "a volume size such as \"20Gi\"");
    }
    TESSERA_RETURN_IF_ERROR(hr.String(*home, "storageClassName", &s.home.storage_class_name));
  }
  std::string idle = "2h";
  TESSERA_RETURN_IF_ERROR(r.String(*spec, "idleTimeout", &idle));
  absl::StatusOr<int64_t> idle_seconds = ParseDuration(idle);
  if (!idle_seconds.ok()) {
    return r.Error("idleTimeout", idle, "a duration such as \"2h\" or \"90m\" (\"0s\": never)");
  }
  s.idle_timeout_seconds = *idle_seconds;
  TESSERA_RETURN_IF_ERROR(r.Bool(*spec, "stopped", &s.stopped));

  const json* status = nullptr;
  TESSERA_RETURN_IF_ERROR(root.Object(object, "status", &status));
  if (status != nullptr)
    TESSERA_RETURN_IF_ERROR(ParseStatus(root.Sub("status"), *status, &ws.status));
  return ws;
}

absl::StatusOr<WorkspaceTemplate> ParseWorkspaceTemplate(const json& object) {
  TESSERA_ASSIGN_OR_RETURN(Head head, ParseHead(object, "WorkspaceTemplate"));
  WorkspaceTemplate t;
  t.metadata = std::move(head.metadata);
  const std::string& what = head.what;
  const json* spec = head.spec;
  FieldReader root(what, "");
  FieldReader r = root.Sub("spec");
  WorkspaceTemplateSpec& s = t.spec;
  TESSERA_RETURN_IF_ERROR(r.String(*spec, "image", &s.image));
  if (s.image.empty()) return InvalidArgument("{}: spec.image is missing or empty", what);
  s.resources = Resources{.cpu = "2", .memory = "8Gi", .gpus = 0};
  const json* resources = nullptr;
  TESSERA_RETURN_IF_ERROR(r.Object(*spec, "resources", &resources));
  if (resources != nullptr) {
    TESSERA_RETURN_IF_ERROR(ParseResources(r.Sub("resources"), *resources, &s.resources));
  }
  TESSERA_RETURN_IF_ERROR(r.String(*spec, "rayImage", &s.ray_image));
  TESSERA_RETURN_IF_ERROR(r.StringList(*spec, "initCommands", &s.init_commands));
  TESSERA_RETURN_IF_ERROR(r.StringList(*spec, "extensions", &s.extensions));
  for (size_t i = 0; i < s.extensions.size(); ++i) {
    if (!Matches(s.extensions[i], R"([A-Za-z0-9-]+\.[A-Za-z0-9-]+(@[0-9A-Za-z.+-]+)?)")) {
      return r.Error(fmt::format("extensions[{}]", i), s.extensions[i],
                     "an extension id \"publisher.name\" or \"publisher.name@version\"");
    }
  }
  const json* env = nullptr;
  TESSERA_RETURN_IF_ERROR(r.Array(*spec, "env", &env));
  if (env != nullptr) {
    for (size_t i = 0; i < env->size(); ++i) {
      const json& e = (*env)[i];
      const std::string field = fmt::format("env[{}]", i);
      if (!e.is_object()) return r.Error(field, e, "an object with name and value");
      EnvVar var;
      FieldReader er = r.Sub(field);
      TESSERA_RETURN_IF_ERROR(er.String(e, "name", &var.name));
      TESSERA_RETURN_IF_ERROR(er.String(e, "value", &var.value));
      if (!Matches(var.name, "[A-Za-z_][A-Za-z0-9_]*")) {
        return er.Error("name", var.name, "an environment variable name");
      }
      s.env.push_back(std::move(var));
    }
  }
  const json* extra = nullptr;
  TESSERA_RETURN_IF_ERROR(r.Array(*spec, "extraContainers", &extra));
  if (extra != nullptr) {
    for (size_t i = 0; i < extra->size(); ++i) {
      const json& c = (*extra)[i];
      const std::string field = fmt::format("extraContainers[{}]", i);
      if (!c.is_object() || !c.value("name", json()).is_string() ||
          !c.value("image", json()).is_string()) {
        return r.Error(field, c, "a container object with at least name and image");
      }
      s.extra_containers.push_back(c);
    }
  }
  return t;
}

EffectiveSpec Resolve(const WorkspaceSpec& workspace, const WorkspaceTemplateSpec& tmpl) {
  EffectiveSpec e;
  e.image = workspace.image.empty() ? tmpl.image : workspace.image;
  e.cpu = workspace.resources.cpu.empty() ? tmpl.resources.cpu : workspace.resources.cpu;
  e.memory =
      workspace.resources.memory.empty() ? tmpl.resources.memory : workspace.resources.memory;
  e.gpus = workspace.resources.gpus.value_or(tmpl.resources.gpus.value_or(0));
  e.ray_image = tmpl.ray_image;
  return e;
}

}  // namespace tessera::workspaces
