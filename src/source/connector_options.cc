#include "source/connector_options.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "common/errors.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/time_util.h"

namespace tessera::source {
namespace {

struct ConnectorSpec {
  std::string_view name;
  std::vector<std::string_view> required;
  std::vector<std::string_view> optional;
  bool properties = false;  // any 'properties.X' is passed through
};

// Options every connector takes.
constexpr std::string_view kCommon[] = {"connector", "format", "max-future", "dead-letter"};

const std::vector<ConnectorSpec>& Specs() {
  static const auto* specs = new std::vector<ConnectorSpec>{
      {"http", {}, {}},
      {"file", {"path"}, {}},
      {"stdin", {}, {}},
      {"kafka",
       {"topic", "properties.bootstrap.servers", "properties.group.id"},
       {"scan.startup.mode", "scan.watermark.idle-timeout"},
       /*properties=*/true},
      {"pubsub",
       {"subscription"},
       {"project", "endpoint", "streams", "max-outstanding-messages", "max-outstanding-bytes",
        "ack-deadline", "dedup-window", "dedup-max-messages"}},
  };
  return *specs;
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string Quoted(const std::vector<std::string_view>& names) {
  std::string out;
  for (std::string_view n : names) {
    if (!out.empty()) out += ", ";
    out += fmt::format("'{}'", n);
  }
  return out;
}

bool IsSubscriptionIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~' || c == '+' || c == '%';
}

// Pub/Sub's rule for a subscription id: 3 to 255 of [A-Za-z0-9-_.~+%], starting with a letter,
// not starting with "goog".
bool IsSubscriptionId(std::string_view id) {
  if (id.size() < 3 || id.size() > 255) return false;
  if (!((id[0] >= 'a' && id[0] <= 'z') || (id[0] >= 'A' && id[0] <= 'Z'))) return false;
  if (id.starts_with("goog")) return false;
  return std::all_of(id.begin(), id.end(), IsSubscriptionIdChar);
}

// The Pub/Sub connector's own rules (the common checks ran before).
absl::Status ValidatePubSubOptions(const sql::SourceDef& source, OptionCheck check) {
  const std::optional<std::string> project = FindOption(source, "project");
  if (project.has_value() && project->find('/') != std::string::npos) {
    return InvalidArgument(
        "source '{}': option 'project' = '{}' is not a project id; expected e.g. 'my-project' "
        "(no '/')",
        source.name, *project);
  }
  if (std::optional<std::string> sub = FindOption(source, "subscription"); sub.has_value()) {
    // A definition may leave the project to be checked when `tessera run` creates the source.
    const bool project_later =
        check == OptionCheck::kDefinition && !project.has_value() && !sub->starts_with("projects/");
    TESSERA_RETURN_IF_ERROR(
        ParsePubSubSubscription(source, project_later ? "later" : project.value_or("")).status());
  }
  for (std::string_view key :
       {"streams", "max-outstanding-messages", "max-outstanding-bytes", "dedup-max-messages"}) {
    if (std::optional<std::string> v = FindOption(source, key); v.has_value()) {
      if (absl::Status s = ParsePositiveIntOption(source, key, *v).status(); !s.ok()) return s;
    }
  }
  if (std::optional<std::string> v = FindOption(source, "streams"); v.has_value()) {
    if (*ParsePositiveIntOption(source, "streams", *v) > 64) {
      return InvalidArgument(
          "source '{}': option 'streams' = '{}' is out of range; expected 1 to 64", source.name,
          *v);
    }
  }
  if (std::optional<std::string> v = FindOption(source, "ack-deadline"); v.has_value()) {
    TESSERA_ASSIGN_OR_RETURN(int64_t ms, ParseDurationOption(source, "ack-deadline", *v));
    if (ms < 10'000 || ms > 600'000 || ms % 1000 != 0) {
      return InvalidArgument(
          "source '{}': option 'ack-deadline' = '{}' is out of range; Pub/Sub takes whole seconds "
          "from '10s' to '600s'",
          source.name, *v);
    }
  }
  if (std::optional<std::string> v = FindOption(source, "endpoint"); v.has_value()) {
    std::string_view rest = *v;
    for (std::string_view scheme : {"http://", "https://"}) {
      if (rest.starts_with(scheme)) rest.remove_prefix(scheme.size());
    }
    const size_t colon = rest.rfind(':');
    if (rest.empty() || colon == std::string_view::npos || colon == 0 || colon + 1 == rest.size() ||
        rest.find('/') != std::string_view::npos) {
      return InvalidArgument(
          "source '{}': option 'endpoint' = '{}' is not valid; expected 'host:port' (TLS with "
          "Google credentials), 'https://host:port' (the same) or 'http://host:port' (plaintext, "
          "no credentials: an emulator)",
          source.name, *v);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PubSubSubscription> ParsePubSubSubscription(const sql::SourceDef& source,
                                                           std::string_view project) {
  const std::string sub = FindOption(source, "subscription").value_or("");
  PubSubSubscription out;
  constexpr std::string_view kProjects = "projects/";
  constexpr std::string_view kSubscriptions = "/subscriptions/";
  if (sub.starts_with(kProjects)) {
    const size_t mid = sub.find(kSubscriptions, kProjects.size());
    if (mid == std::string::npos) {
      return InvalidArgument(
          "source '{}': option 'subscription' = '{}' is not valid; expected a subscription id "
          "or 'projects/<project>/subscriptions/<id>'",
          source.name, sub);
    }
    out.project = sub.substr(kProjects.size(), mid - kProjects.size());
    out.id = sub.substr(mid + kSubscriptions.size());
    if (out.project.empty() || out.project.find('/') != std::string::npos) {
      return InvalidArgument(
          "source '{}': option 'subscription' = '{}' has no valid project; expected "
          "'projects/<project>/subscriptions/<id>'",
          source.name, sub);
    }
    if (!project.empty() && project != out.project) {
      return InvalidArgument(
          "source '{}': option 'subscription' = '{}' names project '{}' but option 'project' is "
          "'{}'; give one of them, or make them agree",
          source.name, sub, out.project, project);
    }
  } else {
    if (project.empty()) {
      return InvalidArgument(
          "source '{}': connector 'pubsub' needs option 'project' (or a 'subscription' of the "
          "form 'projects/<project>/subscriptions/<id>')",
          source.name);
    }
    out.project = std::string(project);
    out.id = sub;
  }
  if (!IsSubscriptionId(out.id)) {
    return InvalidArgument(
        "source '{}': option 'subscription' = '{}': '{}' is not a Pub/Sub subscription id; "
        "expected 3 to 255 letters, digits or '-_.~+%', starting with a letter and not with "
        "'goog'",
        source.name, sub, out.id);
  }
  out.path = fmt::format("projects/{}/subscriptions/{}", out.project, out.id);
  return out;
}

absl::StatusOr<int64_t> ParsePositiveIntOption(const sql::SourceDef& source, std::string_view key,
                                               std::string_view value) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || p != value.data() + value.size() || v <= 0) {
    return InvalidArgument(
        "source '{}': option '{}' = '{}' is not valid; expected a positive whole number",
        source.name, key, value);
  }
  return v;
}

std::optional<std::string> FindOption(const sql::SourceDef& source, std::string_view key) {
  for (const auto& [k, v] : source.options) {
    if (k == key) return v;
  }
  return std::nullopt;
}

std::string ConnectorOf(const sql::SourceDef& source) {
  return ToLowerAscii(FindOption(source, "connector").value_or(""));
}

absl::StatusOr<int64_t> ParseDurationOption(const sql::SourceDef& source, std::string_view key,
                                            std::string_view value) {
  if (value == "0") return 0;
  absl::StatusOr<int64_t> ms = ParseDurationMillis(value);
  if (!ms.ok()) {
    return InvalidArgument(
        "source '{}': option '{}' = '{}' is not a duration; expected e.g. '250ms', '30s', '5m' "
        "or '0'",
        source.name, key, value);
  }
  return *ms;
}

absl::Status ValidateSourceOptions(const sql::SourceDef& source, OptionCheck check) {
  const std::string connector = ConnectorOf(source);
  const ConnectorSpec* spec = nullptr;
  for (const ConnectorSpec& s : Specs()) {
    if (s.name == connector) spec = &s;
  }
  if (spec == nullptr && FindOption(source, "connector").has_value()) {
    std::vector<std::string_view> names(std::begin(kConnectors), std::end(kConnectors));
    return InvalidArgument("source '{}': unknown connector '{}'; valid connectors: {}", source.name,
                           connector, Quoted(names));
  }
  std::vector<std::string_view> valid(std::begin(kCommon), std::end(kCommon));
  if (spec != nullptr) {
    valid.insert(valid.end(), spec->required.begin(), spec->required.end());
    valid.insert(valid.end(), spec->optional.begin(), spec->optional.end());
  }
  const bool properties = spec != nullptr && spec->properties;
  for (const auto& [key, value] : source.options) {
    if (std::find(valid.begin(), valid.end(), key) != valid.end()) continue;
    if (properties && key.size() > 11 && key.substr(0, 11) == "properties.") continue;
    std::string_view closest;
    size_t best = 3;  // suggest only close matches
    for (std::string_view v : valid) {
      const size_t d = EditDistance(key, v);
      if (d < best) {
        best = d;
        closest = v;
      }
    }
    const std::string what = spec == nullptr ? std::string("a source without a connector")
                                             : fmt::format("connector '{}'", spec->name);
    return InvalidArgument(
        "source '{}': unknown option '{}' for {}{}; valid options: {}{}", source.name, key, what,
        closest.empty() ? "" : fmt::format(" (did you mean '{}'?)", closest), Quoted(valid),
        properties ? ", and 'properties.*' (passed to librdkafka)" : "");
  }
  if (spec != nullptr && check == OptionCheck::kLive) {
    for (std::string_view req : spec->required) {
      if (!FindOption(source, req).has_value()) {
        return InvalidArgument("source '{}': connector '{}' needs option '{}' (required: {})",
                               source.name, spec->name, req, Quoted(spec->required));
      }
    }
  }
  if (std::optional<std::string> format = FindOption(source, "format");
      format.has_value() && ToLowerAscii(*format) != "json") {
    return InvalidArgument("source '{}': option 'format' = '{}' is not supported; valid: 'json'",
                           source.name, *format);
  }
  if (std::optional<std::string> mode = FindOption(source, "scan.startup.mode"); mode.has_value()) {
    if (*mode != "earliest-offset" && *mode != "latest-offset" && *mode != "group-offsets") {
      return InvalidArgument(
          "source '{}': option 'scan.startup.mode' = '{}' is not valid; valid: 'earliest-offset', "
          "'latest-offset', 'group-offsets'",
          source.name, *mode);
    }
  }
  for (std::string_view key : {"scan.watermark.idle-timeout", "dedup-window"}) {
    if (std::optional<std::string> v = FindOption(source, key); v.has_value()) {
      if (absl::Status s = ParseDurationOption(source, key, *v).status(); !s.ok()) return s;
    }
  }
  for (const auto& [key, value] : source.options) {
    if (!value.empty()) continue;
    if (key == "dead-letter" || key == "path" || key == "topic" || key == "project" ||
        key == "subscription" || key == "endpoint" || key == "properties.bootstrap.servers" ||
        key == "properties.group.id") {
      return InvalidArgument("source '{}': option '{}' is empty", source.name, key);
    }
  }
  if (connector == "pubsub") TESSERA_RETURN_IF_ERROR(ValidatePubSubOptions(source, check));
  if (std::optional<std::string> dl = FindOption(source, "dead-letter"); dl.has_value()) {
    if (dl->rfind("file://", 0) != 0 && dl->rfind("kafka://", 0) != 0) {
      return InvalidArgument(
          "source '{}': option 'dead-letter' = '{}' is not valid; expected 'file:///path' or "
          "'kafka://topic'",
          source.name, *dl);
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera::source
