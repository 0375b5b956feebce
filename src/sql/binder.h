#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "sql/ast.h"
#include "sql/plan.h"

namespace tessera::sql {

// Turns parsed statements into bound, type-checked plans (SourceDef / ViewDef), enforcing the
// dialect's rules: one event-time column, tile sizes that divide an hour, SELECT items that are
// GROUP BY keys or aggregate expressions, unique output names.
//
// Output names: `AS name`; else a bare column's name; else a name derived from the item's
// canonical text (Expr::ToString): COUNT(*) is spelled count_star, the text is lower-cased and
// every run of characters other than [a-z0-9] becomes one '_' (trimmed at both ends), and a
// result that is empty or starts with a digit gets the prefix "expr_". So SUM(ms_played) ->
// sum_ms_played and SUM(a) / COUNT(*) -> sum_a_count_star. Names compare case-insensitively.
class Binder {
 public:
  // Finds a source defined earlier (case-insensitive), or nullptr.
  using SourceLookup = std::function<const SourceDef*(std::string_view)>;

  // `lookup` resolves FROM; `source_names` lists the known sources for error messages.
  Binder(SourceLookup lookup, std::vector<std::string> source_names)
      : lookup_(std::move(lookup)), source_names_(std::move(source_names)) {}

  // REQUIRES: stmt.kind == kSource.
  absl::StatusOr<SourceDef> BindSource(const AstStatement& stmt) const;
  // REQUIRES: stmt.kind == kView.
  absl::StatusOr<ViewDef> BindView(const AstStatement& stmt) const;

  // The derived output name of an unnamed item whose canonical text is `text`.
  static std::string DerivedName(std::string_view text);

 private:
  SourceLookup lookup_;
  std::vector<std::string> source_names_;
};

}  // namespace tessera::sql
