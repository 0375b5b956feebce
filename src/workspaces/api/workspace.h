#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

// The workspaces.tessera.dev/v1alpha1 API as C++ values: Workspace and WorkspaceTemplate, parsed
// from the JSON objects the Kubernetes API returns (or from a template YAML file in local mode).
// The CRDs in deploy/workspaces/crds are the schema; parsing re-checks what the operator relies
// on (an API server without the CRD's validation, or a hand-written local template, must not
// crash or mislead the operator) and applies the CRD defaults, so a parsed value is complete.
namespace tessera::workspaces {

inline constexpr char kGroup[] = "workspaces.tessera.dev";
inline constexpr char kVersion[] = "v1alpha1";
inline constexpr char kApiVersion[] = "workspaces.tessera.dev/v1alpha1";

// Compute resources. Empty strings / nullopt mean "not set here" (a template or default fills in).
struct Resources {
  std::string cpu;     // Kubernetes quantity, e.g. "2" or "500m"
  std::string memory;  // e.g. "8Gi"
  std::optional<int> gpus;
};

struct RayWorkers {
  int replicas = 0;
  int min_replicas = 0;
  int max_replicas = 4;
  Resources resources;
};

struct RaySpec {
  bool enabled = true;
  RayWorkers workers;
};

struct HomeVolume {
  std::string size = "20Gi";
  std::string storage_class_name;  // empty: the cluster's default class
};

struct WorkspaceSpec {
  std::string owner;  // the user (e-mail or login) the workspace belongs to
  std::string template_name = "default";
  std::string image;    // overrides the template's image when set
  Resources resources;  // overrides the template's resources field by field
  RaySpec ray;
  HomeVolume home;
  int64_t idle_timeout_seconds = 2 * 3600;  // 0: never culled
  bool stopped = false;
};

// The metadata fields the operator reads (the rest of metadata is left to the API server).
struct ObjectMeta {
  std::string name;
  std::string namespace_;
  std::string uid;
  std::string resource_version;
  std::string creation_timestamp;  // RFC 3339, as the API server set it
  int64_t generation = 0;
  bool deleting = false;  // metadata.deletionTimestamp is set
  std::vector<std::string> finalizers;
  std::vector<std::pair<std::string, std::string>> labels;
  std::vector<std::pair<std::string, std::string>> annotations;
};

struct Condition {
  std::string type;
  std::string status;  // "True", "False" or "Unknown"
  std::string reason;
  std::string message;
  std::string last_transition_time;  // RFC 3339
  int64_t observed_generation = 0;
};

enum class Phase { kPending, kStarting, kReady, kStopping, kStopped, kFailed };
const char* PhaseName(Phase phase);
std::optional<Phase> ParsePhase(std::string_view name);

struct WorkspaceStatus {
  std::optional<Phase> phase;
  std::string url;
  int64_t observed_generation = 0;
  std::string last_activity_time;  // RFC 3339; the last code-server heartbeat seen
  std::string ready_since;         // RFC 3339; when the phase last became Ready
  std::string starting_since;      // RFC 3339; when the phase last became Starting (while
                                   // Starting, and until Ready: the start of time-to-ready)
  std::string first_ready_time;    // RFC 3339; when it was Ready for the first time
  std::string first_ray_job_time;  // RFC 3339; when its first Ray job started
  std::vector<Condition> conditions;
};

struct Workspace {
  ObjectMeta metadata;
  WorkspaceSpec spec;
  WorkspaceStatus status;
};

struct EnvVar {
  std::string name;
  std::string value;
};

struct WorkspaceTemplateSpec {
  std::string image;
  Resources resources;  // defaults cpu "2", memory "8Gi", gpus 0
  std::string ray_image;
  std::vector<std::string> init_commands;  // run in order, in the home folder, before the IDE
  std::vector<std::string> extensions;     // "publisher.name[@version]"
  std::vector<EnvVar> env;
  std::vector<nlohmann::json> extra_containers;  // Kubernetes container objects, as given
};

struct WorkspaceTemplate {
  ObjectMeta metadata;
  WorkspaceTemplateSpec spec;
};

// Parse a Workspace / WorkspaceTemplate object (apiVersion and kind must match). Errors are
// InvalidArgument naming the field path, the value and what was expected, e.g.
// `Workspace team-a/alice: spec.resources.gpus is -1; expected an integer from 0 to 16`.
absl::StatusOr<Workspace> ParseWorkspace(const nlohmann::json& object);
absl::StatusOr<WorkspaceTemplate> ParseWorkspaceTemplate(const nlohmann::json& object);
absl::StatusOr<ObjectMeta> ParseObjectMeta(const nlohmann::json& object);

// "2h", "90m", "1h30m", "45s" (the CRD's pattern) → seconds; at most 87600h (ten years).
absl::StatusOr<int64_t> ParseDuration(std::string_view text);
// Kubernetes names for the workspace's children: DNS-1123 labels, at most 63 characters.
bool IsDnsLabel(std::string_view name);

// The template's values with the workspace's overrides applied: what the workspace will run.
struct EffectiveSpec {
  std::string image;
  std::string cpu;
  std::string memory;
  int gpus = 0;
  std::string ray_image;
};
EffectiveSpec Resolve(const WorkspaceSpec& workspace, const WorkspaceTemplateSpec& tmpl);

}  // namespace tessera::workspaces
