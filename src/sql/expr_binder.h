#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "sql/ast.h"
#include "sql/expr.h"
#include "sql/plan.h"

namespace tessera::sql {

// The type both sides of a comparison are compared as: equal types, numeric with numeric
// (DOUBLE if they differ), NULL with anything. nullopt if the types are not comparable.
std::optional<DataType> ComparisonType(DataType a, DataType b);

// Resolves names and types of parsed expressions over one source (see the typing rules in
// expr.h). Row expressions (WHERE, GROUP BY, aggregate arguments) reference the source's
// columns; post-aggregate expressions (SELECT items with aggregates) reference aggregate slots,
// which BindPostAggregate appends to `aggregates` (identical calls share one slot).
// `source` and `aggregates` must outlive the binder.
class ExprBinder {
 public:
  ExprBinder(const SourceDef& source, std::vector<AggregateCall>* aggregates)
      : source_(source), aggregates_(aggregates) {}

  // Names of the GROUP BY keys, only used to explain why a key cannot appear in a
  // post-aggregate expression.
  void set_key_texts(std::vector<std::string> keys) { key_texts_ = std::move(keys); }
  // The view's tile: EXP_DECAY half-lives must be at least one tile (0: no check).
  void set_tile_ms(int64_t tile_ms) { tile_ms_ = tile_ms; }

  // A row expression; `clause` ("WHERE", "GROUP BY", "SELECT") names the place in errors about
  // misplaced aggregates.
  absl::StatusOr<std::unique_ptr<Expr>> BindRow(const AstExpr& ast, std::string_view clause);

  // A SELECT item that contains aggregates.
  absl::StatusOr<std::unique_ptr<Expr>> BindPostAggregate(const AstExpr& ast);

  // Whether `ast` calls an aggregate function anywhere.
  static bool ContainsAggregate(const AstExpr& ast);

 private:
  enum class Mode : uint8_t { kRow, kPostAggregate };

  absl::StatusOr<std::unique_ptr<Expr>> Bind(const AstExpr& ast, bool top_level);
  absl::StatusOr<std::unique_ptr<Expr>> BindColumn(const AstExpr& ast);
  absl::StatusOr<std::unique_ptr<Expr>> BindUnary(const AstExpr& ast);
  absl::StatusOr<std::unique_ptr<Expr>> BindBinary(const AstExpr& ast);
  absl::StatusOr<std::unique_ptr<Expr>> BindIn(const AstExpr& ast);
  absl::StatusOr<std::unique_ptr<Expr>> BindBetween(const AstExpr& ast);
  absl::StatusOr<std::unique_ptr<Expr>> BindCase(const AstExpr& ast);
  absl::StatusOr<std::unique_ptr<Expr>> BindCast(const AstExpr& ast);
  absl::StatusOr<std::unique_ptr<Expr>> BindCall(const AstExpr& ast, bool top_level);
  absl::StatusOr<std::unique_ptr<Expr>> BindAggregate(const AstExpr& ast, agg::AggKind kind,
                                                      bool top_level);
  absl::StatusOr<std::unique_ptr<Expr>> BindScalarFunction(const AstExpr& ast);
  // The arguments of COUNT_BY, SUM_BY, APPROX_HISTOGRAM and APPROX_TOP_K (`written` is the name
  // as written): the row expressions into *arg (and *arg2 for SUM_BY), the constants into
  // *params.
  absl::Status BindBucketOrSketchArgs(const AstExpr& ast, agg::AggKind kind,
                                      const std::string& written, std::unique_ptr<Expr>* arg,
                                      std::unique_ptr<Expr>* arg2, agg::AggParams* params);

  // Builds `lhs op rhs` for a comparison operator, checking and coercing the operand types.
  absl::StatusOr<std::unique_ptr<Expr>> MakeComparison(const std::string& op, Pos pos,
                                                       std::unique_ptr<Expr> lhs,
                                                       std::unique_ptr<Expr> rhs);
  absl::StatusOr<std::unique_ptr<Expr>> MakeLogical(const std::string& op, Pos pos,
                                                    std::unique_ptr<Expr> lhs,
                                                    std::unique_ptr<Expr> rhs);

  // A copy of `e` for desugaring (BETWEEN, simple CASE), within a budget of copied nodes so
  // nested desugaring cannot blow up exponentially on hostile input.
  absl::StatusOr<std::unique_ptr<Expr>> CloneBounded(const Expr& e, Pos pos);

  static constexpr size_t kMaxClonedNodes = 20000;

  const SourceDef& source_;
  std::vector<AggregateCall>* aggregates_;
  std::vector<std::string> key_texts_;
  int64_t tile_ms_ = 0;
  Mode mode_ = Mode::kRow;
  std::string_view clause_;
  std::string enclosing_aggregate_;  // set while binding an aggregate's argument
  size_t cloned_nodes_ = 0;          // nodes copied by CloneBounded in this Bind* call
};

}  // namespace tessera::sql
