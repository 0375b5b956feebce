#include "source/connector_options.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/errors.h"
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
       {"project", "subscription"},
       {"endpoint", "max-outstanding-messages", "max-outstanding-bytes", "dedup-window"}},
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

}  // namespace

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
        key == "subscription" || key == "properties.bootstrap.servers" ||
        key == "properties.group.id") {
      return InvalidArgument("source '{}': option '{}' is empty", source.name, key);
    }
  }
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
