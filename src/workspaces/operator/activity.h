#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workspaces/api/workspace.h"

// Evidence that a workspace is in use. A workspace is idle only when every signal agrees for
// the whole idle timeout: the latest moment any of them saw use is what the culler measures
// from. A signal that cannot be read stops the culling (never cull on missing evidence).
namespace tessera::workspaces {

struct ActivityEvidence {
  std::string signal;          // "heartbeat", "terminal", "cpu", "gpu", "ray-jobs", "ray-cpu", …
  int64_t last_active_ms = 0;  // the latest moment this signal saw use; 0: never
  std::string detail;          // for people: "2 Ray jobs running", "0.01 cores"
  int64_t first_ms = 0;        // the earliest use it knows of (the first Ray job's start); 0: none
};

// One source of evidence (it may report several signals: the in-pod agent reports terminal,
// CPU and GPU). Thread-safe.
class ActivitySignal {
 public:
  virtual ~ActivitySignal() = default;
  // Evidence now, or an error when the source cannot be read (the workspace is then not
  // culled, and the error says why).
  virtual absl::StatusOr<std::vector<ActivityEvidence>> Read(const Workspace& ws,
                                                             int64_t now_ms) = 0;
};

// Tells the person in the IDE something (the culling warning). Best effort. Thread-safe.
class IdeNotifier {
 public:
  virtual ~IdeNotifier() = default;
  virtual absl::Status Notify(const Workspace& ws, std::string_view message) = 0;
};

}  // namespace tessera::workspaces
