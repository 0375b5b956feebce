#include <fmt/format.h>

#include <string>

#include "common/time_util.h"
#include "sql/plan.h"

namespace tessera::sql {
namespace {

void AppendOptions(const std::vector<std::pair<std::string, std::string>>& options,
                   std::string* out) {
  if (options.empty()) {
    return;
  }
  out->append("  options:\n");
  for (const auto& [key, value] : options) {
    fmt::format_to(std::back_inserter(*out), "    {} = {}\n", key, Value::String(value).ToString());
  }
}

}  // namespace

// Layout (stable; golden tests compare it):
//   SOURCE name
//     columns:
//       name TYPE [event time]
//     event time: ts, lateness: 1h
//     options:
//       key = 'value'
std::string Explain(const SourceDef& source) {
  std::string out = fmt::format("SOURCE {}\n  columns:\n", source.name);
  for (size_t i = 0; i < source.columns.size(); ++i) {
    const ColumnDef& c = source.columns[i];
    fmt::format_to(std::back_inserter(out), "    {} {}{}\n", c.name, DataTypeName(c.type),
                   static_cast<int>(i) == source.time_column ? " [event time]" : "");
  }
  std::string time_name =
      source.time_column >= 0 && static_cast<size_t>(source.time_column) < source.columns.size()
          ? source.columns[static_cast<size_t>(source.time_column)].name
          : "?";
  fmt::format_to(std::back_inserter(out), "  event time: {}, lateness: {}\n", time_name,
                 source.lateness_ms == 0 ? "0s" : FormatDurationMillis(source.lateness_ms));
  AppendOptions(source.options, &out);
  return out;
}

//   FEATURE VIEW name
//     source: plays, tile: 5m
//     where: <row expression>
//     keys:
//       name TYPE = <row expression>
//     aggregates:
//       $i TEXT -> TYPE
//     features:
//       name TYPE = <post-aggregate expression>
std::string Explain(const ViewDef& view) {
  std::string out = fmt::format("FEATURE VIEW {}\n  source: {}, tile: {}\n", view.name, view.source,
                                FormatDurationMillis(view.tile_ms));
  if (view.where) {
    fmt::format_to(std::back_inserter(out), "  where: {}\n", view.where->ToString());
  }
  out.append("  keys:\n");
  for (size_t i = 0; i < view.keys.size(); ++i) {
    std::string name = i < view.key_names.size() ? view.key_names[i] : "?";
    fmt::format_to(std::back_inserter(out), "    {} {} = {}\n", name,
                   DataTypeName(view.keys[i]->type), view.keys[i]->ToString());
  }
  out.append("  aggregates:\n");
  for (size_t i = 0; i < view.aggregates.size(); ++i) {
    const AggregateCall& a = view.aggregates[i];
    fmt::format_to(std::back_inserter(out), "    ${} {} -> {}\n", i, a.text,
                   DataTypeName(a.result_type));
  }
  out.append("  features:\n");
  for (const FeatureColumn& f : view.features) {
    fmt::format_to(std::back_inserter(out), "    {} {} = {}\n", f.name, DataTypeName(f.type),
                   f.expr->ToString());
  }
  return out;
}

}  // namespace tessera::sql
