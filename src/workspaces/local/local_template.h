#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "workspaces/api/workspace.h"

// WorkspaceTemplate files for local mode: the same YAML a team applies to the cluster
// (apiVersion workspaces.tessera.dev/v1alpha1, kind WorkspaceTemplate), read with yaml-cpp,
// converted to JSON and parsed by the API's ParseWorkspaceTemplate, so both modes accept and
// reject exactly the same templates.
namespace tessera::workspaces::local {

struct LocalTemplate {
  WorkspaceTemplate tmpl;
  // Fields of spec the file sets that only mean something on a cluster (image, resources,
  // rayImage, extraContainers), in that order; local mode reports and ignores them.
  std::vector<std::string> ignored_fields;
};

// YAML → JSON. Mappings become objects (keys must be scalars), sequences arrays. Quoted scalars
// (and those tagged !!str) stay strings; plain scalars follow the YAML 1.2 core schema: null/~
// and empty → null, true/false → bool, decimal integers → int, decimals with a point or exponent
// → double, everything else a string. Errors name `source` and the line and column yaml-cpp
// reports, e.g. `t.yaml:3:7: end of map not found`. A file with several documents is an error.
absl::StatusOr<nlohmann::json> YamlToJson(std::string_view yaml, std::string_view source);

// Parses a template's YAML text (`source` names it in errors).
absl::StatusOr<LocalTemplate> ParseLocalTemplate(std::string_view yaml, std::string_view source);

// Reads and parses a template file.
absl::StatusOr<LocalTemplate> LoadLocalTemplate(const std::string& path);

}  // namespace tessera::workspaces::local
