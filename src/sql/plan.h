#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "agg/aggregate.h"
#include "common/schema.h"
#include "common/types.h"
#include "sql/expr.h"

namespace tessera::sql {

inline constexpr int64_t kDefaultLatenessMs = 5 * 60 * 1000;
inline constexpr int64_t kDefaultTileMs = 5 * 60 * 1000;

using ::tessera::ColumnDef;

// CREATE SOURCE name (columns…, WATERMARK FOR ts AS ts - INTERVAL 'n' unit) WITH (k = 'v', …)
struct SourceDef {
  std::string name;
  std::vector<ColumnDef> columns;
  int time_column = -1;                      // index of the event-time TIMESTAMP column
  int64_t lateness_ms = kDefaultLatenessMs;  // from the WATERMARK clause
  std::vector<std::pair<std::string, std::string>> options;  // WITH (…), keys lower-cased
  std::string sql;  // the statement's text, exactly as given (the catalog persists this)

  int FindColumn(std::string_view name) const;  // case-insensitive; -1 if absent
};

// One aggregate call of a view, e.g. SUM(CASE WHEN skipped THEN 1 ELSE 0 END).
// Identical calls in a view are bound to one slot.
struct AggregateCall {
  agg::AggKind kind = agg::AggKind::kCountStar;
  std::unique_ptr<Expr> arg;  // row expression over the source columns; null for COUNT(*)
  agg::AggParams params;
  DataType result_type = DataType::kNull;
  std::string text;  // canonical rendering, e.g. "SUM(ms_played)"
};

// One output column of a view: an expression over the view's aggregate slots (Expr::kAggRef),
// computed after the window merge.
struct FeatureColumn {
  std::string name;
  std::unique_ptr<Expr> expr;
  DataType type = DataType::kNull;
};

// CREATE FEATURE VIEW name [WITH (tile = '5m')] AS SELECT keys…, features… FROM source
// [WHERE …] GROUP BY keys…
struct ViewDef {
  std::string name;
  std::string source;  // name of the SourceDef
  int64_t tile_ms = kDefaultTileMs;
  std::vector<std::string> key_names;        // output names of the GROUP BY items
  std::vector<std::unique_ptr<Expr>> keys;   // row expressions, one per GROUP BY item
  std::unique_ptr<Expr> where;               // row predicate (BOOLEAN) or null
  std::vector<AggregateCall> aggregates;     // the view's aggregate slots
  std::vector<FeatureColumn> features;       // SELECT items that are not GROUP BY keys
  std::vector<std::pair<std::string, std::string>> options;  // WITH (…), keys lower-cased
  std::string sql;
};

// All sources and views of a set of statements, bound and type-checked.
struct Catalog {
  std::vector<SourceDef> sources;
  std::vector<ViewDef> views;

  const SourceDef* FindSource(std::string_view name) const;  // case-insensitive
  const ViewDef* FindView(std::string_view name) const;      // case-insensitive
};

// Parses and binds a script of `;`-separated statements (CREATE SOURCE / CREATE FEATURE VIEW)
// and appends them to `catalog` (which may already hold earlier statements; a view may use a
// source defined earlier). Errors are InvalidArgument with "line L, column C: <what was wrong>,
// expected <what was expected>" and name unknown columns, functions, types and sources.
// On error `catalog` is unchanged.
absl::Status AddStatements(std::string_view script, Catalog* catalog);

// Convenience: a new catalog from one script.
absl::StatusOr<Catalog> ParseCatalog(std::string_view script);

// A stable, human-readable plan of a source or view (what `tessera explain` prints and the
// golden tests compare).
std::string Explain(const SourceDef& source);
std::string Explain(const ViewDef& view);

}  // namespace tessera::sql
