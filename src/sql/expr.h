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
//
// Typing (checked by the binder; type errors name the operator, the types and what is expected):
//   * NULL literals are untyped (kNull) and adopt the type their context needs.
//   * + - * %: numeric operands; BIGINT op BIGINT -> BIGINT (two's-complement wrapping), any
//     DOUBLE -> DOUBLE. `/` always returns DOUBLE (SUM(ms) / COUNT(*) is a real average).
//     x / 0 and x % 0 are NULL. Unary - and ABS keep the type (BIGINT wraps).
//   * Comparisons (= <> < <= > >=, IN, BETWEEN): numeric with numeric (compared as DOUBLE when
//     the types differ), otherwise the same type on both sides; a TIMESTAMP compared with a
//     string literal parses the literal as RFC 3339 at bind time. Strings compare bytewise,
//     FALSE < TRUE. Result BOOLEAN.
//   * AND / OR / NOT: BOOLEAN operands, SQL three-valued logic. IS [NOT] NULL: any operand,
//     never NULL.
//   * CASE, COALESCE, GREATEST and LEAST unify their result types: equal types, BIGINT with
//     DOUBLE -> DOUBLE, NULL adopts the other type; anything else is an error. COALESCE returns
//     its first non-NULL argument; GREATEST / LEAST are NULL if any argument is NULL (like Flink
//     and BigQuery, unlike PostgreSQL), order strings bytewise and a DOUBLE NaN above all numbers.
//   * LN, LOG(x) (natural), LOG(base, x), LOG10, LOG2, EXP, SQRT, POWER (alias POW): BIGINT or
//     DOUBLE arguments, DOUBLE result. A non-finite argument, a domain error (LN(0), SQRT(-1),
//     LOG(1, x)) or a non-finite result (EXP(1000), POWER(0, -1)) is NULL, never inf or NaN.
//   * ROUND(x [, digits]): keeps x's type; half away from zero at 10^-digits (digits: a BIGINT
//     expression, default 0, negative rounds left of the point). DOUBLE rounds the shortest
//     decimal form of x (ROUND(2.675, 2) = 2.68); a result that does not fit is NULL.
//   * No function takes a LIST or MAP argument. Every function but COALESCE is NULL when an
//     argument is NULL.
//   * || concatenates STRINGs. LOWER / UPPER (ASCII), LENGTH (code points), SUBSTR(s, start
//     [, len]) (1-based, code points, PostgreSQL rules for start < 1; negative len -> NULL).
//   * CAST (see CanCast): to STRING renders like JSON (1.5, true, RFC 3339 timestamps; a
//     non-finite DOUBLE becomes NULL); STRING to BIGINT / DOUBLE / BOOLEAN / TIMESTAMP parses
//     and yields NULL on failure (DOUBLE: finite numbers only, not 'NaN' or 'inf'); DOUBLE ->
//     BIGINT truncates toward zero (NULL if out of range); BOOLEAN <-> numeric as 1/0;
//     TIMESTAMP <-> BIGINT / DOUBLE as epoch milliseconds.
//   * LIST (LAST_K / TOP_K) only ever appears as a whole feature: a bare kAggRef.
// Column names in kColumn are the source's declared spelling, so ToString() is canonical.
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
    kFunction,  // name (canonical): COALESCE, LOWER, UPPER, LENGTH, SUBSTR, ABS, ROUND, LN, …
  };

  Kind kind = Kind::kLiteral;
  DataType type = DataType::kNull;  // result type
  Value literal;                    // kLiteral
  int index = -1;                   // kColumn, kAggRef
  std::string name;                 // operator or function name (upper case); column name
  bool negated = false;
  bool has_else = false;
  std::vector<std::unique_ptr<Expr>> children;

  // SQL-like rendering used by Explain and error messages. Canonical: two expressions that
  // bind to the same tree render identically (aggregate slots are deduplicated by it).
  // Parenthesises by precedence only where needed; kAggRef renders `name` (the slot's text).
  std::string ToString() const;

  // A deep copy.
  std::unique_ptr<Expr> Clone() const;
};

// A DOUBLE as a SQL literal: shortest round-trip digits, always with a '.' or an exponent so it
// reads back as a DOUBLE ("1.0", "0.25", "1e+20").
std::string RenderDouble(double d);

// Whether CAST(x AS to) is allowed for x of type `from` (identity casts and casts from NULL are).
bool CanCast(DataType from, DataType to);

// Evaluates one expression over batches, column at a time. Owns per-node scratch columns so
// a steady-state loop allocates nothing. Never fails: SQL runtime errors (division by zero,
// failed CAST, SUBSTR out of range, LN(0)) yield NULL, per SQL's NULL rules.
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
  // An input column whose type differs from what the expression expects, or that is shorter
  // than num_rows, or that is missing, is read as all NULL.
  const Column& Evaluate(std::span<const Column> input, size_t num_rows, Arena* arena);

  // Evaluates one row given as Values (inputs[i] is column / aggregate slot i), e.g. a
  // post-aggregate feature over the finalized aggregates of one (key, window). A value whose
  // type differs from the one expected counts as NULL (BIGINT is accepted where DOUBLE is
  // expected). A LIST feature (bare kAggRef to LAST_K / TOP_K) returns its input value as is.
  // Allocates; meant for serving, not for the ingest path.
  Value EvaluateRow(std::span<const Value> inputs);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::sql
