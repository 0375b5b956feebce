#include "sql/expr_binder.h"

#include <fmt/format.h>

#include <limits>
#include <string_view>
#include <utility>

#include "agg/agg_types.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "common/time_util.h"

namespace tessera::sql {
namespace {

using ExprPtr = std::unique_ptr<Expr>;

ExprPtr NewExpr(Expr::Kind kind, DataType type) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->type = type;
  return e;
}

// An untyped NULL literal takes the type its context needs (so plans show typed NULLs).
void AdoptNull(Expr* e, DataType type) {
  if (e->kind == Expr::Kind::kLiteral && e->type == DataType::kNull && type != DataType::kNull) {
    e->type = type;
    e->literal = Value::Null(type);
  }
}

bool IsBoolOrNull(DataType t) { return t == DataType::kBool || t == DataType::kNull; }
bool IsNumericOrNull(DataType t) { return IsNumeric(t) || t == DataType::kNull; }

std::string_view TypeName(DataType t) { return DataTypeName(t); }

// The unified type of CASE branches / COALESCE arguments, or nullopt.
std::optional<DataType> UnifyTypes(DataType a, DataType b) {
  if (a == b) {
    return a;
  }
  if (a == DataType::kNull) {
    return b;
  }
  if (b == DataType::kNull) {
    return a;
  }
  if (IsNumeric(a) && IsNumeric(b)) {
    return DataType::kDouble;
  }
  return std::nullopt;
}

// If `e` is a STRING literal compared with a TIMESTAMP, turns it into a TIMESTAMP literal.
absl::Status CoerceTimestampLiteral(Expr* e, DataType other, Pos pos) {
  if (other != DataType::kTimestamp || e->kind != Expr::Kind::kLiteral ||
      e->type != DataType::kString || e->literal.is_null()) {
    return absl::OkStatus();
  }
  std::optional<int64_t> ms = ParseRfc3339Millis(e->literal.string());
  if (!ms) {
    return ErrorAt(pos,
                   "cannot compare TIMESTAMP with '{}', expected an RFC 3339 timestamp such as "
                   "'2026-01-01T00:00:00Z'",
                   e->literal.string());
  }
  e->type = DataType::kTimestamp;
  e->literal = Value::Timestamp(*ms);
  return absl::OkStatus();
}

// Arity and usage of a scalar function, by canonical name (see CanonicalScalarName).
struct ScalarSignature {
  std::string_view name;
  size_t min_args;
  size_t max_args;  // kVariadic: no upper bound
  std::string_view usage;
};

constexpr size_t kVariadic = std::numeric_limits<size_t>::max();

constexpr ScalarSignature kScalarFunctions[] = {
    {"ABS", 1, 1, "ABS(x)"},
    {"COALESCE", 1, kVariadic, "COALESCE(x, y, …)"},
    {"EXP", 1, 1, "EXP(x)"},
    {"GREATEST", 1, kVariadic, "GREATEST(x, y, …)"},
    {"LEAST", 1, kVariadic, "LEAST(x, y, …)"},
    {"LENGTH", 1, 1, "LENGTH(s)"},
    {"LN", 1, 1, "LN(x)"},
    {"LOG", 1, 2, "LOG(x) (natural) or LOG(base, x)"},
    {"LOG10", 1, 1, "LOG10(x)"},
    {"LOG2", 1, 1, "LOG2(x)"},
    {"LOWER", 1, 1, "LOWER(s)"},
    {"POWER", 2, 2, "POWER(x, y)"},
    {"ROUND", 1, 2, "ROUND(x) or ROUND(x, digits)"},
    {"SQRT", 1, 1, "SQRT(x)"},
    {"SUBSTR", 2, 3, "SUBSTR(s, start) or SUBSTR(s, start, length)"},
    {"UPPER", 1, 1, "UPPER(s)"},
};

// The canonical name of a scalar function written `upper` (aliases map onto one name, so plans
// render one spelling).
std::string_view CanonicalScalarName(std::string_view upper) {
  if (upper == "SUBSTRING") {
    return "SUBSTR";
  }
  if (upper == "CHAR_LENGTH") {
    return "LENGTH";
  }
  if (upper == "POW") {
    return "POWER";
  }
  return upper;
}

// nullptr if `upper` names no scalar function.
const ScalarSignature* FindScalarFunction(std::string_view upper) {
  std::string_view name = CanonicalScalarName(upper);
  for (const ScalarSignature& s : kScalarFunctions) {
    if (s.name == name) {
      return &s;
    }
  }
  return nullptr;
}

// Functions over BIGINT / DOUBLE that compute in DOUBLE and return DOUBLE.
bool IsDoubleMathFunction(std::string_view name) {
  return name == "LN" || name == "LOG" || name == "LOG10" || name == "LOG2" || name == "EXP" ||
         name == "SQRT" || name == "POWER";
}

bool IsBucketOrSketch(agg::AggKind kind) {
  return kind == agg::AggKind::kCountBy || kind == agg::AggKind::kSumBy ||
         kind == agg::AggKind::kApproxHistogram || kind == agg::AggKind::kApproxTopK;
}

// How a call of an aggregate with a nested result is written, for error messages.
std::string BucketOrSketchUsage(agg::AggKind kind, const std::string& written) {
  switch (kind) {
    case agg::AggKind::kCountBy:
      return written + "(bucket) or " + written + "(bucket, max_buckets)";
    case agg::AggKind::kSumBy:
      return written + "(x, bucket) or " + written + "(x, bucket, max_buckets)";
    case agg::AggKind::kApproxHistogram:
      return written + "(x, 'log10') or " + written + "(x, '0,10,100')";
    case agg::AggKind::kApproxTopK:
      return written + "(x, k) or " + written + "(x, k, capacity)";
    default:
      return written + "(x, k)";
  }
}

}  // namespace

std::optional<DataType> ComparisonType(DataType a, DataType b) {
  if (IsNested(a) || IsNested(b)) {
    return std::nullopt;
  }
  return UnifyTypes(a, b);
}

bool ExprBinder::ContainsAggregate(const AstExpr& ast) {
  if (ast.kind == AstExpr::Kind::kCall) {
    agg::AggKind kind;
    if (agg::LookupAggKind(ast.name, ast.star, &kind)) {
      return true;
    }
  }
  for (const auto& c : ast.children) {
    if (ContainsAggregate(*c)) {
      return true;
    }
  }
  return false;
}

namespace {

size_t CountNodes(const Expr& e) {
  size_t n = 1;
  for (const auto& c : e.children) {
    n += CountNodes(*c);
  }
  return n;
}

}  // namespace

absl::StatusOr<ExprPtr> ExprBinder::CloneBounded(const Expr& e, Pos pos) {
  cloned_nodes_ += CountNodes(e);
  if (cloned_nodes_ > kMaxClonedNodes) {
    return ErrorAt(pos,
                   "expression is too large once BETWEEN and CASE are expanded, expected a "
                   "smaller expression");
  }
  return e.Clone();
}

absl::StatusOr<ExprPtr> ExprBinder::BindRow(const AstExpr& ast, std::string_view clause) {
  cloned_nodes_ = 0;
  mode_ = Mode::kRow;
  clause_ = clause;
  enclosing_aggregate_.clear();
  return Bind(ast, /*top_level=*/true);
}

absl::StatusOr<ExprPtr> ExprBinder::BindPostAggregate(const AstExpr& ast) {
  cloned_nodes_ = 0;
  mode_ = Mode::kPostAggregate;
  clause_ = "SELECT";
  enclosing_aggregate_.clear();
  return Bind(ast, /*top_level=*/true);
}

absl::StatusOr<ExprPtr> ExprBinder::Bind(const AstExpr& ast, bool top_level) {
  switch (ast.kind) {
    case AstExpr::Kind::kLiteral: {
      auto e = NewExpr(Expr::Kind::kLiteral, ast.literal.type());
      e->literal = ast.literal;
      return e;
    }
    case AstExpr::Kind::kColumn:
      return BindColumn(ast);
    case AstExpr::Kind::kUnary:
      return BindUnary(ast);
    case AstExpr::Kind::kBinary:
      return BindBinary(ast);
    case AstExpr::Kind::kIsNull: {
      if (ast.children.size() != 1) {
        return ErrorAt(ast.pos, "malformed IS NULL, expected x IS NULL");
      }
      absl::StatusOr<ExprPtr> operand = Bind(*ast.children[0], false);
      if (!operand.ok()) {
        return operand;
      }
      auto e = NewExpr(Expr::Kind::kIsNull, DataType::kBool);
      e->negated = ast.negated;
      e->children.push_back(std::move(*operand));
      return e;
    }
    case AstExpr::Kind::kIn:
      return BindIn(ast);
    case AstExpr::Kind::kBetween:
      return BindBetween(ast);
    case AstExpr::Kind::kCase:
      return BindCase(ast);
    case AstExpr::Kind::kCast:
      return BindCast(ast);
    case AstExpr::Kind::kCall:
      return BindCall(ast, top_level);
  }
  return ErrorAt(ast.pos, "unsupported expression, expected a row expression");
}

absl::StatusOr<ExprPtr> ExprBinder::BindColumn(const AstExpr& ast) {
  if (!ast.qualifier.empty() && !EqualsIgnoreCase(ast.qualifier, source_.name)) {
    return ErrorAt(ast.pos, "unknown source '{}' in '{}.{}', expected '{}'", ast.qualifier,
                   ast.qualifier, ast.name, source_.name);
  }
  int index = source_.FindColumn(ast.name);
  if (index < 0) {
    std::string names;
    for (const ColumnDef& c : source_.columns) {
      if (!names.empty()) {
        names += ", ";
      }
      names += c.name;
    }
    return ErrorAt(ast.pos, "unknown column '{}' in source '{}', expected one of: {}", ast.name,
                   source_.name, names);
  }
  const ColumnDef& col = source_.columns[static_cast<size_t>(index)];
  if (mode_ == Mode::kPostAggregate) {
    for (const std::string& key : key_texts_) {
      if (EqualsIgnoreCase(key, col.name)) {
        return ErrorAt(ast.pos,
                       "GROUP BY key '{}' cannot be used in an expression with aggregates, "
                       "expected it as a SELECT item of its own or inside an aggregate",
                       col.name);
      }
    }
    return ErrorAt(ast.pos,
                   "column '{}' is neither in GROUP BY nor inside an aggregate, expected a "
                   "GROUP BY key or an aggregate such as MAX({})",
                   col.name, col.name);
  }
  auto e = NewExpr(Expr::Kind::kColumn, col.type);
  e->index = index;
  e->name = col.name;
  return e;
}

absl::StatusOr<ExprPtr> ExprBinder::BindUnary(const AstExpr& ast) {
  if (ast.children.size() != 1) {
    return ErrorAt(ast.pos, "malformed unary operator, expected one operand");
  }
  absl::StatusOr<ExprPtr> operand = Bind(*ast.children[0], false);
  if (!operand.ok()) {
    return operand;
  }
  DataType t = (*operand)->type;
  auto e = NewExpr(Expr::Kind::kUnary, DataType::kBool);
  e->name = ast.name;
  if (ast.name == "NOT") {
    if (!IsBoolOrNull(t)) {
      return ErrorAt(ast.pos, "operator NOT cannot be applied to {}, expected a BOOLEAN operand",
                     TypeName(t));
    }
    AdoptNull(operand->get(), DataType::kBool);
  } else {
    if (!IsNumericOrNull(t)) {
      return ErrorAt(ast.pos,
                     "operator '-' cannot be applied to {}, expected a BIGINT or DOUBLE operand",
                     TypeName(t));
    }
    e->type = t == DataType::kNull ? DataType::kInt64 : t;
    AdoptNull(operand->get(), e->type);
  }
  e->children.push_back(std::move(*operand));
  return e;
}

absl::StatusOr<ExprPtr> ExprBinder::MakeLogical(const std::string& op, Pos pos, ExprPtr lhs,
                                                ExprPtr rhs) {
  if (!IsBoolOrNull(lhs->type) || !IsBoolOrNull(rhs->type)) {
    return ErrorAt(pos, "operator {} cannot be applied to {} and {}, expected BOOLEAN operands", op,
                   TypeName(lhs->type), TypeName(rhs->type));
  }
  AdoptNull(lhs.get(), DataType::kBool);
  AdoptNull(rhs.get(), DataType::kBool);
  auto e = NewExpr(Expr::Kind::kBinary, DataType::kBool);
  e->name = op;
  e->children.push_back(std::move(lhs));
  e->children.push_back(std::move(rhs));
  return e;
}

absl::StatusOr<ExprPtr> ExprBinder::MakeComparison(const std::string& op, Pos pos, ExprPtr lhs,
                                                   ExprPtr rhs) {
  if (absl::Status s = CoerceTimestampLiteral(rhs.get(), lhs->type, pos); !s.ok()) {
    return s;
  }
  if (absl::Status s = CoerceTimestampLiteral(lhs.get(), rhs->type, pos); !s.ok()) {
    return s;
  }
  std::optional<DataType> ct = ComparisonType(lhs->type, rhs->type);
  if (!ct) {
    return ErrorAt(pos,
                   "operator '{}' cannot compare {} with {}, expected operands of the same type "
                   "(BIGINT and DOUBLE compare with each other; CAST to convert)",
                   op, TypeName(lhs->type), TypeName(rhs->type));
  }
  AdoptNull(lhs.get(), rhs->type);
  AdoptNull(rhs.get(), lhs->type);
  auto e = NewExpr(Expr::Kind::kBinary, DataType::kBool);
  e->name = op;
  e->children.push_back(std::move(lhs));
  e->children.push_back(std::move(rhs));
  return e;
}

absl::StatusOr<ExprPtr> ExprBinder::BindBinary(const AstExpr& ast) {
  if (ast.children.size() != 2) {
    return ErrorAt(ast.pos, "malformed operator, expected two operands");
  }
  absl::StatusOr<ExprPtr> lhs = Bind(*ast.children[0], false);
  if (!lhs.ok()) {
    return lhs;
  }
  absl::StatusOr<ExprPtr> rhs = Bind(*ast.children[1], false);
  if (!rhs.ok()) {
    return rhs;
  }
  const std::string& op = ast.name;
  if (op == "AND" || op == "OR") {
    return MakeLogical(op, ast.pos, std::move(*lhs), std::move(*rhs));
  }
  if (op == "=" || op == "<>" || op == "<" || op == "<=" || op == ">" || op == ">=") {
    return MakeComparison(op, ast.pos, std::move(*lhs), std::move(*rhs));
  }
  DataType lt = (*lhs)->type;
  DataType rt = (*rhs)->type;
  auto e = NewExpr(Expr::Kind::kBinary, DataType::kNull);
  e->name = op;
  if (op == "||") {
    bool ok = (lt == DataType::kString || lt == DataType::kNull) &&
              (rt == DataType::kString || rt == DataType::kNull);
    if (!ok) {
      return ErrorAt(ast.pos,
                     "operator '||' cannot be applied to {} and {}, expected STRING operands "
                     "(use CAST(x AS STRING))",
                     TypeName(lt), TypeName(rt));
    }
    e->type = DataType::kString;
  } else {
    if (!IsNumericOrNull(lt) || !IsNumericOrNull(rt)) {
      return ErrorAt(ast.pos,
                     "operator '{}' cannot be applied to {} and {}, expected BIGINT or DOUBLE "
                     "operands",
                     op, TypeName(lt), TypeName(rt));
    }
    if (op == "/") {
      e->type = DataType::kDouble;
    } else {
      e->type = (lt == DataType::kDouble || rt == DataType::kDouble) ? DataType::kDouble
                                                                     : DataType::kInt64;
    }
  }
  AdoptNull(lhs->get(),
            rt == DataType::kNull ? (op == "||" ? DataType::kString : DataType::kInt64) : rt);
  AdoptNull(rhs->get(), (*lhs)->type);
  e->children.push_back(std::move(*lhs));
  e->children.push_back(std::move(*rhs));
  return e;
}

absl::StatusOr<ExprPtr> ExprBinder::BindIn(const AstExpr& ast) {
  if (ast.children.size() < 2) {
    return ErrorAt(ast.pos, "malformed IN, expected x IN (values)");
  }
  absl::StatusOr<ExprPtr> lhs = Bind(*ast.children[0], false);
  if (!lhs.ok()) {
    return lhs;
  }
  auto e = NewExpr(Expr::Kind::kIn, DataType::kBool);
  e->negated = ast.negated;
  DataType ct = (*lhs)->type;
  e->children.push_back(std::move(*lhs));
  for (size_t i = 1; i < ast.children.size(); ++i) {
    absl::StatusOr<ExprPtr> item = Bind(*ast.children[i], false);
    if (!item.ok()) {
      return item;
    }
    if (absl::Status s = CoerceTimestampLiteral(item->get(), ct, ast.children[i]->start); !s.ok()) {
      return s;
    }
    std::optional<DataType> next = ComparisonType(ct, (*item)->type);
    if (!next) {
      return ErrorAt(ast.children[i]->start,
                     "IN list item of type {} cannot be compared with {}, expected values of the "
                     "same type (BIGINT and DOUBLE compare with each other)",
                     TypeName((*item)->type), TypeName(ct));
    }
    ct = *next;
    e->children.push_back(std::move(*item));
  }
  for (auto& c : e->children) {
    AdoptNull(c.get(), ct);
  }
  return e;
}

absl::StatusOr<ExprPtr> ExprBinder::BindBetween(const AstExpr& ast) {
  if (ast.children.size() != 3) {
    return ErrorAt(ast.pos, "malformed BETWEEN, expected x BETWEEN a AND b");
  }
  absl::StatusOr<ExprPtr> x = Bind(*ast.children[0], false);
  if (!x.ok()) {
    return x;
  }
  absl::StatusOr<ExprPtr> lo = Bind(*ast.children[1], false);
  if (!lo.ok()) {
    return lo;
  }
  absl::StatusOr<ExprPtr> hi = Bind(*ast.children[2], false);
  if (!hi.ok()) {
    return hi;
  }
  // x BETWEEN lo AND hi == x >= lo AND x <= hi; NOT BETWEEN == x < lo OR x > hi.
  absl::StatusOr<ExprPtr> x2 = CloneBounded(**x, ast.pos);
  if (!x2.ok()) {
    return x2;
  }
  absl::StatusOr<ExprPtr> low =
      MakeComparison(ast.negated ? "<" : ">=", ast.pos, std::move(*x), std::move(*lo));
  if (!low.ok()) {
    return low;
  }
  absl::StatusOr<ExprPtr> high =
      MakeComparison(ast.negated ? ">" : "<=", ast.pos, std::move(*x2), std::move(*hi));
  if (!high.ok()) {
    return high;
  }
  return MakeLogical(ast.negated ? "OR" : "AND", ast.pos, std::move(*low), std::move(*high));
}

absl::StatusOr<ExprPtr> ExprBinder::BindCase(const AstExpr& ast) {
  size_t n = ast.children.size();
  size_t first = ast.has_operand ? 1 : 0;
  size_t pairs_end = n - (ast.has_else ? 1 : 0);
  if (n < first + 2 || pairs_end < first || (pairs_end - first) % 2 != 0) {
    return ErrorAt(ast.pos, "malformed CASE, expected CASE WHEN … THEN … END");
  }
  ExprPtr operand;
  if (ast.has_operand) {
    absl::StatusOr<ExprPtr> op = Bind(*ast.children[0], false);
    if (!op.ok()) {
      return op;
    }
    operand = std::move(*op);
  }
  auto e = NewExpr(Expr::Kind::kCase, DataType::kNull);
  e->has_else = ast.has_else;
  DataType result = DataType::kNull;
  auto unify = [&](const Expr& value, Pos pos) -> absl::Status {
    std::optional<DataType> u = UnifyTypes(result, value.type);
    if (!u || IsNested(value.type)) {
      return ErrorAt(pos,
                     "CASE branches have incompatible types {} and {}, expected the same type "
                     "(BIGINT and DOUBLE mix as DOUBLE)",
                     TypeName(result), TypeName(value.type));
    }
    result = *u;
    return absl::OkStatus();
  };
  for (size_t i = first; i + 1 < pairs_end; i += 2) {
    const AstExpr& when_ast = *ast.children[i];
    const AstExpr& then_ast = *ast.children[i + 1];
    absl::StatusOr<ExprPtr> when = Bind(when_ast, false);
    if (!when.ok()) {
      return when;
    }
    if (operand) {
      absl::StatusOr<ExprPtr> copy = CloneBounded(*operand, when_ast.start);
      if (!copy.ok()) {
        return copy;
      }
      when = MakeComparison("=", when_ast.start, std::move(*copy), std::move(*when));
      if (!when.ok()) {
        return when;
      }
    } else if (!IsBoolOrNull((*when)->type)) {
      return ErrorAt(when_ast.start, "CASE WHEN condition is {}, expected a BOOLEAN condition",
                     TypeName((*when)->type));
    }
    AdoptNull(when->get(), DataType::kBool);
    absl::StatusOr<ExprPtr> then = Bind(then_ast, false);
    if (!then.ok()) {
      return then;
    }
    if (absl::Status s = unify(**then, then_ast.start); !s.ok()) {
      return s;
    }
    e->children.push_back(std::move(*when));
    e->children.push_back(std::move(*then));
  }
  if (ast.has_else) {
    absl::StatusOr<ExprPtr> else_expr = Bind(*ast.children.back(), false);
    if (!else_expr.ok()) {
      return else_expr;
    }
    if (absl::Status s = unify(**else_expr, ast.children.back()->start); !s.ok()) {
      return s;
    }
    e->children.push_back(std::move(*else_expr));
  }
  e->type = result;
  for (size_t i = 1; i < e->children.size(); i += 2) {
    AdoptNull(e->children[i].get(), result);
  }
  if (e->has_else) {
    AdoptNull(e->children.back().get(), result);
  }
  return e;
}

absl::StatusOr<ExprPtr> ExprBinder::BindCast(const AstExpr& ast) {
  if (ast.children.size() != 1) {
    return ErrorAt(ast.pos, "malformed CAST, expected CAST(x AS type)");
  }
  absl::StatusOr<ExprPtr> operand = Bind(*ast.children[0], false);
  if (!operand.ok()) {
    return operand;
  }
  if (!CanCast((*operand)->type, ast.cast_type)) {
    return ErrorAt(ast.pos,
                   "CAST from {} to {} is not supported, expected a cast to or from STRING, "
                   "between BOOLEAN, BIGINT and DOUBLE, or between TIMESTAMP and BIGINT/DOUBLE",
                   TypeName((*operand)->type), TypeName(ast.cast_type));
  }
  auto e = NewExpr(Expr::Kind::kCast, ast.cast_type);
  e->children.push_back(std::move(*operand));
  return e;
}

absl::StatusOr<ExprPtr> ExprBinder::BindCall(const AstExpr& ast, bool top_level) {
  agg::AggKind kind;
  if (agg::LookupAggKind(ast.name, ast.star, &kind)) {
    return BindAggregate(ast, kind, top_level);
  }
  std::string upper = ToUpperAscii(ast.name);
  if (FindScalarFunction(upper) == nullptr) {
    return ErrorAt(ast.pos,
                   "unknown function '{}', expected a scalar function (ABS, CAST, COALESCE, EXP, "
                   "GREATEST, LEAST, LENGTH, LN, LOG, LOG10, LOG2, LOWER, POWER, ROUND, SQRT, "
                   "SUBSTR, UPPER) or an aggregate (COUNT, SUM, MIN, MAX, AVG, "
                   "VARIANCE, STDDEV, FIRST_VALUE, LAST_VALUE, LAST_K, APPROX_COUNT_DISTINCT, "
                   "APPROX_PERCENTILE, TOP_K, APPROX_TOP_K, APPROX_HISTOGRAM, COUNT_BY, SUM_BY, "
                   "EXP_DECAY_SUM, EXP_DECAY_COUNT)",
                   ast.name);
  }
  if (ast.star) {
    return ErrorAt(ast.pos, "'*' is not an argument of {}, expected COUNT(*)", upper);
  }
  if (ast.distinct) {
    return ErrorAt(ast.pos, "DISTINCT is not allowed in {}, expected {}(x)", upper, upper);
  }
  return BindScalarFunction(ast);
}

absl::StatusOr<ExprPtr> ExprBinder::BindScalarFunction(const AstExpr& ast) {
  const std::string written = ToUpperAscii(ast.name);
  const ScalarSignature* sig = FindScalarFunction(written);
  if (sig == nullptr) {
    return ErrorAt(ast.pos, "unknown function '{}', expected a scalar function", ast.name);
  }
  const std::string name(sig->name);
  const size_t n = ast.children.size();
  if (n < sig->min_args || n > sig->max_args) {
    auto plural = [](size_t k) { return k == 1 ? "" : "s"; };
    std::string count =
        sig->max_args == kVariadic
            ? fmt::format("at least {} argument{}", sig->min_args, plural(sig->min_args))
        : sig->min_args == sig->max_args
            ? fmt::format("{} argument{}", sig->min_args, plural(sig->min_args))
            : fmt::format("{} or {} arguments", sig->min_args, sig->max_args);
    return ErrorAt(ast.pos, "{} takes {}, got {}, expected {}", written, count, n, sig->usage);
  }
  std::vector<ExprPtr> args;
  for (const auto& c : ast.children) {
    absl::StatusOr<ExprPtr> arg = Bind(*c, false);
    if (!arg.ok()) {
      return arg;
    }
    args.push_back(std::move(*arg));
  }
  auto check = [&](size_t i, bool ok, std::string_view expected) -> absl::Status {
    if (ok) {
      return absl::OkStatus();
    }
    return ErrorAt(ast.children[i]->start, "{} cannot be applied to {}, expected {}", written,
                   TypeName(args[i]->type), expected);
  };
  // LIST and MAP values (LAST_K, TOP_K, the bucketed aggregates…) are only ever whole features.
  for (size_t i = 0; i < n; ++i) {
    if (absl::Status s = check(i, !IsNested(args[i]->type),
                               "a BIGINT, DOUBLE, STRING, BOOLEAN or TIMESTAMP (LIST and MAP "
                               "values can only be whole SELECT items)");
        !s.ok()) {
      return s;
    }
  }
  auto e = NewExpr(Expr::Kind::kFunction, DataType::kNull);
  e->name = name;
  if (name == "COALESCE" || name == "GREATEST" || name == "LEAST") {
    DataType result = DataType::kNull;
    for (size_t i = 0; i < n; ++i) {
      std::optional<DataType> u = UnifyTypes(result, args[i]->type);
      if (!u) {
        return ErrorAt(ast.children[i]->start,
                       "{} arguments have incompatible types {} and {}, expected the same "
                       "type (BIGINT and DOUBLE mix as DOUBLE)",
                       written, TypeName(result), TypeName(args[i]->type));
      }
      result = *u;
    }
    e->type = result;
    for (auto& a : args) {
      AdoptNull(a.get(), result);
    }
  } else if (name == "LOWER" || name == "UPPER" || name == "LENGTH") {
    DataType t = args[0]->type;
    if (absl::Status s = check(0, t == DataType::kString || t == DataType::kNull, "a STRING");
        !s.ok()) {
      return s;
    }
    AdoptNull(args[0].get(), DataType::kString);
    e->type = name == "LENGTH" ? DataType::kInt64 : DataType::kString;
  } else if (name == "SUBSTR") {
    DataType t = args[0]->type;
    if (absl::Status s = check(0, t == DataType::kString || t == DataType::kNull,
                               "a STRING as the first argument");
        !s.ok()) {
      return s;
    }
    for (size_t i = 1; i < n; ++i) {
      DataType ti = args[i]->type;
      if (absl::Status s = check(i, ti == DataType::kInt64 || ti == DataType::kNull,
                                 "a BIGINT position / length");
          !s.ok()) {
        return s;
      }
      AdoptNull(args[i].get(), DataType::kInt64);
    }
    AdoptNull(args[0].get(), DataType::kString);
    e->type = DataType::kString;
  } else if (IsDoubleMathFunction(name)) {
    for (size_t i = 0; i < n; ++i) {
      if (absl::Status s = check(i, IsNumericOrNull(args[i]->type), "a BIGINT or DOUBLE");
          !s.ok()) {
        return s;
      }
      AdoptNull(args[i].get(), DataType::kDouble);
    }
    e->type = DataType::kDouble;
  } else if (name == "ROUND") {
    DataType t = args[0]->type;
    if (absl::Status s = check(0, IsNumericOrNull(t), "a BIGINT or DOUBLE"); !s.ok()) {
      return s;
    }
    if (n == 2 && !(args[1]->type == DataType::kInt64 || args[1]->type == DataType::kNull)) {
      return ErrorAt(ast.children[1]->start,
                     "the digits of {} are {}, expected a BIGINT number of decimal places "
                     "(negative rounds left of the decimal point), e.g. {}(x, 2)",
                     written, TypeName(args[1]->type), written);
    }
    e->type = t == DataType::kNull ? DataType::kInt64 : t;
    AdoptNull(args[0].get(), e->type);
    if (n == 2) {
      AdoptNull(args[1].get(), DataType::kInt64);
    }
  } else {  // ABS
    DataType t = args[0]->type;
    if (absl::Status s = check(0, IsNumericOrNull(t), "a BIGINT or DOUBLE"); !s.ok()) {
      return s;
    }
    e->type = t == DataType::kNull ? DataType::kInt64 : t;
    AdoptNull(args[0].get(), e->type);
  }
  e->children = std::move(args);
  return e;
}

absl::StatusOr<ExprPtr> ExprBinder::BindAggregate(const AstExpr& ast, agg::AggKind kind,
                                                  bool top_level) {
  std::string name(agg::AggKindName(kind));
  std::string written = ToUpperAscii(ast.name);
  if (mode_ == Mode::kRow) {
    if (!enclosing_aggregate_.empty()) {
      return ErrorAt(ast.pos,
                     "aggregate {} cannot be nested inside aggregate {}, expected a row "
                     "expression as the argument of {}",
                     written, enclosing_aggregate_, enclosing_aggregate_);
    }
    return ErrorAt(ast.pos, "aggregate {} is not allowed in {}, expected a row expression", written,
                   clause_);
  }
  if (ast.distinct) {
    if (kind == agg::AggKind::kCount) {
      return ErrorAt(ast.pos,
                     "COUNT(DISTINCT …) is not supported, expected APPROX_COUNT_DISTINCT(x) "
                     "(HyperLogLog, about 2% relative error)");
    }
    return ErrorAt(ast.pos, "DISTINCT is not supported in {}, expected {}(x)", written, written);
  }
  if (ast.star && kind != agg::AggKind::kCountStar) {
    return ErrorAt(ast.pos, "'*' is not an argument of {}, expected COUNT(*) or {}(x)", written,
                   written);
  }
  if ((kind == agg::AggKind::kLastK || kind == agg::AggKind::kTopK) && !top_level) {
    return ErrorAt(ast.pos,
                   "{} returns a LIST and cannot be used inside an expression, expected {}(x, k) "
                   "as a whole SELECT item",
                   written, written);
  }
  agg::AggParams params;
  ExprPtr arg;
  ExprPtr arg2;
  // The half-life of EXP_DECAY_*: a quoted duration literal.
  auto half_life = [&](const AstExpr& p) -> absl::Status {
    const bool is_string = p.kind == AstExpr::Kind::kLiteral && !p.literal.is_null() &&
                           p.literal.type() == DataType::kString;
    absl::StatusOr<int64_t> ms = is_string ? ParseDurationMillis(p.literal.string())
                                           : absl::InvalidArgumentError("not a duration");
    if (is_string && !ms.ok()) {
      return ErrorAt(p.start, "the half-life of {}: {}", written, StatusMessage(ms.status()));
    }
    // A read covers its head tile whole, so rows up to a tile after `at` count, weighing up to
    // 2^(tile / half-life): a half-life of at least a tile keeps that at most 2.
    if (ms.ok() && *ms < tile_ms_) {
      return ErrorAt(p.start,
                     "the half-life of {} is '{}', shorter than the view's tile ({}), expected at "
                     "least {}",
                     written, p.literal.string(), FormatDurationMillis(tile_ms_),
                     FormatDurationMillis(tile_ms_));
    }
    if (!ms.ok()) {
      return ErrorAt(p.start,
                     "the half-life of {} must be a quoted duration such as '30m', '1d' or '2w', "
                     "expected e.g. {}",
                     written,
                     kind == agg::AggKind::kExpDecayCount ? "EXP_DECAY_COUNT('1d')"
                                                          : "EXP_DECAY_SUM(x, '1d')");
    }
    params.half_life_ms = *ms;
    return absl::OkStatus();
  };
  if (kind == agg::AggKind::kExpDecayCount) {
    if (ast.children.size() != 1) {
      return ErrorAt(ast.pos, "{} takes 1 argument, got {}, expected {}(half_life)", written,
                     ast.children.size(), written);
    }
    TESSERA_RETURN_IF_ERROR(half_life(*ast.children[0]));
  } else if (IsBucketOrSketch(kind)) {
    TESSERA_RETURN_IF_ERROR(BindBucketOrSketchArgs(ast, kind, written, &arg, &arg2, &params));
  } else if (kind != agg::AggKind::kCountStar) {
    size_t want = 1 + static_cast<size_t>(agg::AggParamCount(kind));
    if (ast.children.size() != want) {
      std::string expected = kind == agg::AggKind::kCount              ? "COUNT(x) or COUNT(*)"
                             : want == 1                               ? written + "(x)"
                             : kind == agg::AggKind::kApproxPercentile ? written + "(x, q)"
                             : kind == agg::AggKind::kExpDecaySum      ? written + "(x, half_life)"
                                                                       : written + "(x, k)";
      return ErrorAt(ast.pos, "{} takes {} argument{}, got {}, expected {}", written, want,
                     want == 1 ? "" : "s", ast.children.size(), expected);
    }
    enclosing_aggregate_ = written;
    mode_ = Mode::kRow;
    absl::StatusOr<ExprPtr> bound = Bind(*ast.children[0], false);
    mode_ = Mode::kPostAggregate;
    enclosing_aggregate_.clear();
    if (!bound.ok()) {
      return bound;
    }
    arg = std::move(*bound);
    if (want == 2) {
      const AstExpr& p = *ast.children[1];
      const Value& v = p.literal;
      bool is_literal = p.kind == AstExpr::Kind::kLiteral && !v.is_null();
      if (kind == agg::AggKind::kExpDecaySum) {
        TESSERA_RETURN_IF_ERROR(half_life(p));
      } else if (kind == agg::AggKind::kApproxPercentile) {
        if (!is_literal || !IsNumeric(v.type())) {
          return ErrorAt(p.start,
                         "the quantile of {} must be a numeric literal, expected e.g. {}(x, 0.95)",
                         written, written);
        }
        params.q = v.AsDouble();
      } else {
        if (!is_literal || v.type() != DataType::kInt64) {
          return ErrorAt(p.start, "the k of {} must be an integer literal, expected e.g. {}(x, 10)",
                         written, written);
        }
        params.k = v.int64();
      }
    }
  } else if (!ast.children.empty()) {
    return ErrorAt(ast.pos, "COUNT(*) takes no arguments, expected COUNT(*)");
  }
  absl::StatusOr<DataType> result = agg::AggResultType(kind, arg ? arg->type : DataType::kNull,
                                                       arg2 ? arg2->type : DataType::kNull, params);
  if (!result.ok()) {
    return ErrorAt(ast.pos, "{}", StatusMessage(result.status()));
  }
  if (IsNested(*result) && !top_level) {
    return ErrorAt(ast.pos,
                   "{} returns a {} and cannot be used inside an expression, expected {} as a "
                   "whole SELECT item",
                   written, DataTypeName(*result), BucketOrSketchUsage(kind, written));
  }

  std::string text = name + "(";
  if (kind == agg::AggKind::kCountStar) {
    text += "*";
  } else if (kind == agg::AggKind::kExpDecayCount) {
    text += fmt::format("'{}'", FormatDurationMillis(params.half_life_ms));
  } else {
    text += arg->ToString();
  }
  if (kind == agg::AggKind::kExpDecaySum) {
    text += fmt::format(", '{}'", FormatDurationMillis(params.half_life_ms));
  }
  if (kind == agg::AggKind::kApproxPercentile) {
    text += ", " + RenderDouble(params.q);
  }
  if (kind == agg::AggKind::kLastK || kind == agg::AggKind::kTopK) {
    text += fmt::format(", {}", params.k);
  }
  if (arg2) {
    text += ", " + arg2->ToString();
  }
  if (kind == agg::AggKind::kApproxHistogram) {
    text += ", " + Value::String(params.bins).ToString();
  }
  if (kind == agg::AggKind::kApproxTopK) {
    text += fmt::format(", {}", params.k);
  }
  if (params.capacity) {
    text += fmt::format(", {}", *params.capacity);
  }
  text += ")";

  int slot = -1;
  for (size_t i = 0; i < aggregates_->size(); ++i) {
    if ((*aggregates_)[i].text == text) {
      slot = static_cast<int>(i);
    }
  }
  if (slot < 0) {
    AggregateCall call;
    call.kind = kind;
    call.arg = std::move(arg);
    call.arg2 = std::move(arg2);
    call.params = params;
    call.result_type = *result;
    call.text = text;
    aggregates_->push_back(std::move(call));
    slot = static_cast<int>(aggregates_->size()) - 1;
  }
  auto e = NewExpr(Expr::Kind::kAggRef, *result);
  e->index = slot;
  e->name = text;
  return e;
}

absl::Status ExprBinder::BindBucketOrSketchArgs(const AstExpr& ast, agg::AggKind kind,
                                                const std::string& written, ExprPtr* arg,
                                                ExprPtr* arg2, agg::AggParams* params) {
  const auto nargs = static_cast<size_t>(agg::AggArgCount(kind));
  const size_t min = nargs + static_cast<size_t>(agg::AggMinParamCount(kind));
  const size_t max = nargs + static_cast<size_t>(agg::AggParamCount(kind));
  const size_t n = ast.children.size();
  if (n < min || n > max) {
    return ErrorAt(ast.pos, "{} takes {} arguments, got {}, expected {}", written,
                   min == max ? fmt::format("{}", min) : fmt::format("{} or {}", min, max), n,
                   BucketOrSketchUsage(kind, written));
  }
  for (size_t i = 0; i < nargs; ++i) {
    enclosing_aggregate_ = written;
    mode_ = Mode::kRow;
    absl::StatusOr<ExprPtr> bound = Bind(*ast.children[i], false);
    mode_ = Mode::kPostAggregate;
    enclosing_aggregate_.clear();
    if (!bound.ok()) {
      return bound.status();
    }
    (i == 0 ? *arg : *arg2) = std::move(*bound);
  }
  // Constant i (after the row arguments) as an integer literal.
  auto integer = [&](size_t i, std::string_view what, int64_t* out) -> absl::Status {
    const AstExpr& p = *ast.children[i];
    if (p.kind != AstExpr::Kind::kLiteral || p.literal.is_null() ||
        p.literal.type() != DataType::kInt64) {
      return ErrorAt(p.start, "the {} of {} must be an integer literal, expected {}", what, written,
                     BucketOrSketchUsage(kind, written));
    }
    *out = p.literal.int64();
    return absl::OkStatus();
  };
  if (kind == agg::AggKind::kApproxHistogram) {
    const AstExpr& p = *ast.children[nargs];
    if (p.kind != AstExpr::Kind::kLiteral || p.literal.is_null() ||
        p.literal.type() != DataType::kString) {
      return ErrorAt(p.start, "the bins of {} must be a quoted string, expected {}", written,
                     BucketOrSketchUsage(kind, written));
    }
    absl::StatusOr<std::string> bins = agg::NormalizeHistogramBins(p.literal.string());
    if (!bins.ok()) {
      return ErrorAt(p.start, "{}", StatusMessage(bins.status()));
    }
    params->bins = *std::move(bins);
    return absl::OkStatus();
  }
  size_t next = nargs;
  if (kind == agg::AggKind::kApproxTopK) {
    TESSERA_RETURN_IF_ERROR(integer(next++, "k", &params->k));
  }
  if (next < n) {
    int64_t capacity = 0;
    TESSERA_RETURN_IF_ERROR(
        integer(next, kind == agg::AggKind::kApproxTopK ? "capacity" : "max_buckets", &capacity));
    params->capacity = capacity;
  }
  return absl::OkStatus();
}

}  // namespace tessera::sql
