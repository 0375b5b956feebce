#include "workspaces/operator/kube_event_recorder.h"

#include <fmt/format.h>

#include "common/errors.h"
#include "common/time_util.h"

namespace tessera::workspaces {

KubeEventRecorder::KubeEventRecorder(kube::KubeClient* client, const Clock* clock,
                                     std::string instance)
    : client_(client), clock_(clock), instance_(std::move(instance)) {}

void KubeEventRecorder::Record(const Workspace& ws, std::string_view type, std::string_view reason,
                               std::string_view message) {
  const int64_t now = clock_->NowMillis();
  const std::string time = FormatRfc3339Millis(now);
  // Unique per event like client-go's "<object>.<hex nanos>"; the counter separates events
  // recorded within one millisecond.
  const std::string name =
      fmt::format("{}.{:x}{:04x}", ws.metadata.name, now, counter_.fetch_add(1) & 0xffff);
  nlohmann::json event = {
      {"apiVersion", "v1"},
      {"kind", "Event"},
      {"metadata", {{"name", name}, {"namespace", ws.metadata.namespace_}}},
      {"involvedObject",
       {{"apiVersion", kApiVersion},
        {"kind", "Workspace"},
        {"name", ws.metadata.name},
        {"namespace", ws.metadata.namespace_},
        {"uid", ws.metadata.uid}}},
      {"type", std::string(type)},
      {"reason", std::string(reason)},
      {"message", std::string(message)},
      {"source", {{"component", "tessera-operator"}}},
      {"reportingComponent", "tessera-operator"},
      {"reportingInstance", instance_},
      {"firstTimestamp", time},
      {"lastTimestamp", time},
      {"count", 1},
  };
  absl::StatusOr<nlohmann::json> created =
      client_->Create(kube::EventType(), ws.metadata.namespace_, event);
  if (!created.ok()) {
    failures_.fetch_add(1);
    fmt::print(stderr, "tessera-operator: could not record event {} on {}/{}: {}\n", reason,
               ws.metadata.namespace_, ws.metadata.name, StatusMessage(created.status()));
  }
}

}  // namespace tessera::workspaces
