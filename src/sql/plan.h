#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "agg/aggregate.h"
#include "common/schema.h"
#include "common/time_util.h"
#include "common/types.h"
#include "sql/expr.h"

namespace tessera::sql {

inline constexpr int64_t kDefaultLatenessMs = int64_t{5} * 60 * 1000;
// How far ahead of the engine's clock an event time may be (DESIGN "future rows"): live sources
// reject rows more than 5 minutes ahead (a fast client clock); backfills of history allow a day.
inline constexpr int64_t kDefaultLiveMaxFutureMs = int64_t{5} * 60 * 1000;
inline constexpr int64_t kDefaultBackfillMaxFutureMs = int64_t{24} * 60 * 60 * 1000;
// max-future = 'off'.
using ::tessera::kNoFutureBound;
inline constexpr int64_t kDefaultTileMs = int64_t{5} * 60 * 1000;

using ::tessera::ColumnDef;

// CREATE SOURCE name (columns…, WATERMARK FOR ts AS ts - INTERVAL 'n' unit) WITH (k = 'v', …)
struct SourceDef {
  std::string name;
  std::vector<ColumnDef> columns;
  int time_column = -1;                      // index of the event-time TIMESTAMP column
  int64_t lateness_ms = kDefaultLatenessMs;  // from the WATERMARK clause
  // WITH ('max-future' = '5m' | 'off'): rows whose event time is further ahead of the engine's
  // clock are rejected. nullopt: not given (live sources then use kDefaultLiveMaxFutureMs,
  // backfills kDefaultBackfillMaxFutureMs); kNoFutureBound: 'off'.
  std::optional<int64_t> max_future_ms;
  std::vector<std::pair<std::string, std::string>> options;  // WITH (…), keys lower-cased
  // The statement's text exactly as given, from its first token to its last (comments inside
  // kept, the terminating ';' not included). The catalog persists this; re-parsing it (after
  // the sources a view uses) reproduces the same plan.
  std::string sql;

  int FindColumn(std::string_view name) const;  // case-insensitive; -1 if absent
};

// One aggregate call of a view, e.g. SUM(CASE WHEN skipped THEN 1 ELSE 0 END).
// Identical calls in a view are bound to one slot.
struct AggregateCall {
  agg::AggKind kind = agg::AggKind::kCountStar;
  std::unique_ptr<Expr> arg;   // row expression over the source columns; null for COUNT(*)
  std::unique_ptr<Expr> arg2;  // the second row expression of SUM_BY(x, bucket); else null
  agg::AggParams params;
  DataType result_type = DataType::kNull;
  std::string text;  // canonical rendering, e.g. "SUM(ms_played)"
};

// One output column of a view: an expression over the view's aggregate slots (Expr::kAggRef),
// computed after the window merge (ExprEvaluator::EvaluateRow evaluates it over the finalized
// slot values). A LIST feature (LAST_K / TOP_K) is always a bare kAggRef.
//
// Output names (keys and features): `AS name` as written; else a bare column's declared name;
// else a name derived from the item's canonical text (Expr::ToString): COUNT(*) is spelled
// count_star, the text is lower-cased, each run of characters other than [a-z0-9_] becomes one
// '_', leading/trailing '_' are trimmed, and a result that is empty or starts with a digit gets
// the prefix "expr_". E.g. COUNT(*) -> count_star, SUM(ms_played) -> sum_ms_played,
// SUM(a) / COUNT(*) -> sum_a_count_star. Output names are unique ignoring case.
struct FeatureColumn {
  std::string name;
  std::unique_ptr<Expr> expr;
  DataType type = DataType::kNull;
};

// CREATE FEATURE VIEW name [WITH (tile = '5m')] AS SELECT keys…, features… FROM source
// [WHERE …] GROUP BY keys…
//
// The tile is a whole number of seconds that divides 1 hour (1m, 5m, 10m, 15m, 30m, 1h, …);
// `tile` is the only view option. SELECT items are GROUP BY keys (matched by canonical text)
// or expressions containing aggregates; GROUP BY keys need not be selected (they keep the name
// rule above). Identical aggregate calls share one slot in `aggregates` (by canonical text).
struct ViewDef {
  std::string name;
  std::string source;  // name of the SourceDef
  int64_t tile_ms = kDefaultTileMs;
  std::vector<std::string> key_names;       // output names of the GROUP BY items, in order
  std::vector<std::unique_ptr<Expr>> keys;  // row expressions, one per GROUP BY item
  std::unique_ptr<Expr> where;              // row predicate (BOOLEAN) or null
  std::vector<AggregateCall> aggregates;    // the view's aggregate slots
  std::vector<FeatureColumn> features;      // SELECT items that are not GROUP BY keys
  std::vector<std::pair<std::string, std::string>> options;  // WITH (…), keys lower-cased
  std::string sql;  // the statement text, as SourceDef::sql
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
// golden tests compare): for a source its columns with types, the event-time column, the
// lateness and the options; for a view its source, tile, WHERE, keys (name, type,
// expression), aggregate slots ($i, canonical text, result type) and features (name, type,
// expression). See src/sql/testdata/*.out for examples.
std::string Explain(const SourceDef& source);
std::string Explain(const ViewDef& view);

}  // namespace tessera::sql
