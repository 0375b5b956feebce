#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/arena.h"
#include "common/column.h"
#include "common/types.h"
#include "common/value.h"

namespace tessera::sql {

// A bound, typed expression. Row expressions reference source columns (kColumn, `index` into
// the source schema); post-aggregate expressions reference aggregate slots (kAggRef, `index`
// into ViewDef::aggregates). The two never mix.
struct Expr {
  enum class Kind : uint8_t {
    kLiteral,
    kColumn,
    kAggRef,
    kUnary,     // op: "-", "NOT"
    kBinary,    // op: "+", "-", "*", "/", "%", "=", "<>", "<", "<=", ">", ">=", "AND", "OR", "||"
    kIsNull,    // negated: IS NOT NULL
    kIn,        // children[0] IN (children[1..]); negated: NOT IN
    kCase,      // children: [when, then]… [else]; has_else tells whether the last is ELSE
    kCast,      // to `type`
    kFunction,  // name: COALESCE, LOWER, UPPER, LENGTH, SUBSTR, ABS, …
  };

  Kind kind = Kind::kLiteral;
  DataType type = DataType::kNull;  // result type
  Value literal;                    // kLiteral
  int index = -1;                   // kColumn, kAggRef
  std::string name;                 // operator or function name (upper case); column name
  bool negated = false;
  bool has_else = false;
  std::vector<std::unique_ptr<Expr>> children;

  // SQL-like rendering used by Explain and error messages.
  std::string ToString() const;
};

// Evaluates one expression over batches, column at a time. Owns per-node scratch columns so
// a steady-state loop allocates nothing. Never fails: SQL runtime errors (division by zero,
// failed CAST, SUBSTR out of range) yield NULL, per SQL's NULL rules.
// Not thread-safe; make one per thread. `expr` must outlive the evaluator.
class ExprEvaluator {
 public:
  explicit ExprEvaluator(const Expr& expr);
  ~ExprEvaluator();
  ExprEvaluator(ExprEvaluator&&) noexcept;
  ExprEvaluator& operator=(ExprEvaluator&&) noexcept;

  // Evaluates rows [0, num_rows) of `input` (the columns kColumn / kAggRef index into).
  // Returns a column of expr.type and num_rows rows: either one of `input` itself (for a bare
  // column reference) or scratch owned by the evaluator, valid until the next call. Strings
  // the evaluation creates are allocated in `arena`.
  const Column& Evaluate(std::span<const Column> input, size_t num_rows, Arena* arena);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::sql
