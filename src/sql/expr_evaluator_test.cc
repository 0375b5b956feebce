#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "common/errors.h"
#include "sql/expr.h"
#include "sql/expr_binder.h"
#include "sql/parser.h"
#include "sql/plan.h"

namespace tessera::sql {
namespace {

using ::testing::ElementsAre;

const Value N = Value();  // NULL (adopts the column's type when stored)
Value I(int64_t v) { return Value::Int64(v); }
Value D(double v) { return Value::Double(v); }
Value S(std::string v) { return Value::String(std::move(v)); }
Value B(bool v) { return Value::Bool(v); }
Value T(int64_t ms) { return Value::Timestamp(ms); }

// Evaluates row expressions over a small table with columns
// i, j BIGINT; d DOUBLE; s, t STRING; b, c BOOLEAN; ts TIMESTAMP.
class EvaluatorTest : public ::testing::Test {
 protected:
  EvaluatorTest() {
    source_.name = "tbl";
    source_.columns = {{"i", DataType::kInt64},  {"j", DataType::kInt64},
                       {"d", DataType::kDouble}, {"s", DataType::kString},
                       {"t", DataType::kString}, {"b", DataType::kBool},
                       {"c", DataType::kBool},   {"ts", DataType::kTimestamp}};
    source_.time_column = 7;
    SetRows(1, {});
  }

  // `values` maps a column name to its rows; other columns are NULL.
  void SetRows(size_t n, const std::map<std::string, std::vector<Value>>& values) {
    rows_ = n;
    columns_.assign(source_.columns.size(), Column());
    for (size_t c = 0; c < source_.columns.size(); ++c) {
      columns_[c].Reset(source_.columns[c].type, n);
      auto it = values.find(source_.columns[c].name);
      if (it == values.end()) {
        continue;
      }
      for (size_t r = 0; r < n && r < it->second.size(); ++r) {
        columns_[c].SetValue(r, it->second[r], &data_arena_);
      }
    }
  }

  std::unique_ptr<Expr> Bind(std::string_view text) {
    absl::StatusOr<std::unique_ptr<AstExpr>> ast = Parser::ParseExpression(text);
    EXPECT_TRUE(ast.ok()) << ast.status();
    if (!ast.ok()) {
      return nullptr;
    }
    ExprBinder binder(source_, &aggregates_);
    absl::StatusOr<std::unique_ptr<Expr>> e = binder.BindRow(**ast, "WHERE");
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? std::move(*e) : nullptr;
  }

  std::string BindError(std::string_view text) {
    absl::StatusOr<std::unique_ptr<AstExpr>> ast = Parser::ParseExpression(text);
    if (!ast.ok()) {
      return StatusMessage(ast.status());
    }
    ExprBinder binder(source_, &aggregates_);
    absl::StatusOr<std::unique_ptr<Expr>> e = binder.BindRow(**ast, "WHERE");
    return e.ok() ? "OK" : StatusMessage(e.status());
  }

  DataType TypeOf(std::string_view text) {
    std::unique_ptr<Expr> e = Bind(text);
    return e ? e->type : DataType::kList;
  }

  std::vector<Value> Eval(std::string_view text) {
    std::unique_ptr<Expr> e = Bind(text);
    if (!e) {
      return {};
    }
    ExprEvaluator evaluator(*e);
    const Column& out = evaluator.Evaluate(columns_, rows_, &arena_);
    EXPECT_EQ(out.type, e->type);
    std::vector<Value> values;
    for (size_t r = 0; r < rows_; ++r) {
      values.push_back(out.GetValue(r));
    }
    return values;
  }

  // The single value of `text` on the current first row.
  Value Eval1(std::string_view text) {
    std::vector<Value> v = Eval(text);
    return v.empty() ? Value::Null(DataType::kList) : v[0];
  }

  SourceDef source_;
  std::vector<AggregateCall> aggregates_;
  std::vector<Column> columns_;
  size_t rows_ = 0;
  Arena data_arena_;
  Arena arena_;
};

Value NullOf(DataType t) { return Value::Null(t); }

TEST_F(EvaluatorTest, ArithmeticTypesAndNulls) {
  SetRows(3, {{"i", {I(7), I(-7), N}}, {"j", {I(2), I(0), I(3)}}, {"d", {D(0.5), D(0), N}}});
  EXPECT_EQ(TypeOf("i + j"), DataType::kInt64);
  EXPECT_EQ(TypeOf("i * d"), DataType::kDouble);
  EXPECT_EQ(TypeOf("i / j"), DataType::kDouble);
  EXPECT_EQ(TypeOf("i % j"), DataType::kInt64);
  EXPECT_THAT(Eval("i + j"), ElementsAre(I(9), I(-7), NullOf(DataType::kInt64)));
  EXPECT_THAT(Eval("i - j * 2"), ElementsAre(I(3), I(-7), NullOf(DataType::kInt64)));
  EXPECT_THAT(Eval("i / j"),
              ElementsAre(D(3.5), NullOf(DataType::kDouble), NullOf(DataType::kDouble)));
  EXPECT_THAT(Eval("i % j"), ElementsAre(I(1), NullOf(DataType::kInt64), NullOf(DataType::kInt64)));
  EXPECT_THAT(Eval("i + d"), ElementsAre(D(7.5), D(-7), NullOf(DataType::kDouble)));
  EXPECT_THAT(Eval("i / d"),
              ElementsAre(D(14), NullOf(DataType::kDouble), NullOf(DataType::kDouble)));
  EXPECT_THAT(Eval("d % 0.25"), ElementsAre(D(0), D(0), NullOf(DataType::kDouble)));
  EXPECT_THAT(Eval("-i"), ElementsAre(I(-7), I(7), NullOf(DataType::kInt64)));
  EXPECT_THAT(Eval("i + NULL"), ElementsAre(NullOf(DataType::kInt64), NullOf(DataType::kInt64),
                                            NullOf(DataType::kInt64)));
  EXPECT_THAT(Eval("ABS(i)"), ElementsAre(I(7), I(7), NullOf(DataType::kInt64)));
  EXPECT_THAT(Eval("ABS(-d)"), ElementsAre(D(0.5), D(0), NullOf(DataType::kDouble)));
}

// BIGINT arithmetic that does not fit is NULL (like SUM over BIGINT), never a wrapped value.
TEST_F(EvaluatorTest, IntegerOverflowIsNull) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  const Value null = NullOf(DataType::kInt64);
  SetRows(1, {{"i", {I(kMax)}}, {"j", {I(kMin)}}});
  EXPECT_EQ(Eval1("i + 1"), null);
  EXPECT_EQ(Eval1("j - 1"), null);
  EXPECT_EQ(Eval1("i * 2"), null);
  EXPECT_EQ(Eval1("-j"), null);
  EXPECT_EQ(Eval1("ABS(j)"), null);
  EXPECT_EQ(Eval1("i - 1"), I(kMax - 1));
  EXPECT_EQ(Eval1("-i"), I(-kMax));
  EXPECT_EQ(Eval1("j % -1"), I(0));
  EXPECT_EQ(Eval1("j / -1"), D(9223372036854775808.0));
}

TEST_F(EvaluatorTest, ThreeValuedLogic) {
  // All nine combinations of TRUE / FALSE / NULL.
  std::vector<Value> bs = {B(true), B(true), B(true), B(false), B(false), B(false), N, N, N};
  std::vector<Value> cs = {B(true), B(false), N, B(true), B(false), N, B(true), B(false), N};
  SetRows(9, {{"b", bs}, {"c", cs}});
  Value nb = NullOf(DataType::kBool);
  EXPECT_THAT(Eval("b AND c"),
              ElementsAre(B(true), B(false), nb, B(false), B(false), B(false), nb, B(false), nb));
  EXPECT_THAT(Eval("b OR c"),
              ElementsAre(B(true), B(true), B(true), B(true), B(false), nb, B(true), nb, nb));
  EXPECT_THAT(Eval("NOT b"),
              ElementsAre(B(false), B(false), B(false), B(true), B(true), B(true), nb, nb, nb));
  EXPECT_THAT(Eval("b IS NULL"), ElementsAre(B(false), B(false), B(false), B(false), B(false),
                                             B(false), B(true), B(true), B(true)));
  EXPECT_THAT(Eval("c IS NOT NULL"), ElementsAre(B(true), B(true), B(false), B(true), B(true),
                                                 B(false), B(true), B(true), B(false)));
  EXPECT_THAT(Eval("b AND NULL"),
              ElementsAre(nb, nb, nb, B(false), B(false), B(false), nb, nb, nb));
  EXPECT_THAT(Eval("b OR NULL"), ElementsAre(B(true), B(true), B(true), nb, nb, nb, nb, nb, nb));
}

TEST_F(EvaluatorTest, Comparisons) {
  SetRows(3, {{"i", {I(1), I(2), N}},
              {"d", {D(1.0), D(1.5), D(3)}},
              {"s", {S("apple"), S("b"), S("c")}},
              {"t", {S("apple"), S("a"), N}},
              {"ts", {T(1767225600000), T(1767225599999), N}}});
  Value nb = NullOf(DataType::kBool);
  EXPECT_THAT(Eval("i = d"), ElementsAre(B(true), B(false), nb));
  EXPECT_THAT(Eval("i > d"), ElementsAre(B(false), B(true), nb));
  EXPECT_THAT(Eval("i <> 2"), ElementsAre(B(true), B(false), nb));
  EXPECT_THAT(Eval("i != 2"), ElementsAre(B(true), B(false), nb));
  EXPECT_THAT(Eval("s = t"), ElementsAre(B(true), B(false), nb));
  EXPECT_THAT(Eval("s < t"), ElementsAre(B(false), B(false), nb));
  EXPECT_THAT(Eval("s >= 'b'"), ElementsAre(B(false), B(true), B(true)));
  EXPECT_THAT(Eval("ts >= '2026-01-01T00:00:00Z'"), ElementsAre(B(true), B(false), nb));
  EXPECT_THAT(Eval("ts < TIMESTAMP '2026-01-01T01:00:00+01:00'"),
              ElementsAre(B(false), B(true), nb));
  EXPECT_THAT(Eval("i = NULL"), ElementsAre(nb, nb, nb));
  EXPECT_THAT(Eval("b = c"), ElementsAre(nb, nb, nb));
  EXPECT_THAT(Eval("FALSE < TRUE"), ElementsAre(B(true), B(true), B(true)));
}

TEST_F(EvaluatorTest, InAndBetween) {
  SetRows(4, {{"i", {I(1), I(2), I(5), N}}, {"s", {S("x"), S("y"), S("z"), S("x")}}});
  Value nb = NullOf(DataType::kBool);
  EXPECT_THAT(Eval("i IN (1, 5)"), ElementsAre(B(true), B(false), B(true), nb));
  EXPECT_THAT(Eval("i NOT IN (1, 5)"), ElementsAre(B(false), B(true), B(false), nb));
  EXPECT_THAT(Eval("i IN (1, NULL)"), ElementsAre(B(true), nb, nb, nb));
  EXPECT_THAT(Eval("i NOT IN (1, NULL)"), ElementsAre(B(false), nb, nb, nb));
  EXPECT_THAT(Eval("i IN (2.0, 7.5)"), ElementsAre(B(false), B(true), B(false), nb));
  EXPECT_THAT(Eval("s IN ('x', 'z')"), ElementsAre(B(true), B(false), B(true), B(true)));
  EXPECT_THAT(Eval("i IN (j, 2)"), ElementsAre(nb, B(true), nb, nb));
  EXPECT_THAT(Eval("i BETWEEN 2 AND 5"), ElementsAre(B(false), B(true), B(true), nb));
  EXPECT_THAT(Eval("i NOT BETWEEN 2 AND 5"), ElementsAre(B(true), B(false), B(false), nb));
  EXPECT_THAT(Eval("i BETWEEN 1 AND NULL"), ElementsAre(nb, nb, nb, nb));
  EXPECT_THAT(Eval("i NOT BETWEEN 2 AND NULL"), ElementsAre(B(true), nb, nb, nb));
}

TEST_F(EvaluatorTest, Case) {
  SetRows(4, {{"i", {I(1), I(2), I(3), N}}, {"b", {B(true), N, B(false), B(true)}}});
  EXPECT_EQ(TypeOf("CASE WHEN b THEN 1 ELSE 2.5 END"), DataType::kDouble);
  EXPECT_EQ(TypeOf("CASE WHEN b THEN NULL ELSE 'x' END"), DataType::kString);
  EXPECT_THAT(Eval("CASE WHEN b THEN 'yes' ELSE 'no' END"),
              ElementsAre(S("yes"), S("no"), S("no"), S("yes")));
  EXPECT_THAT(Eval("CASE WHEN i = 1 THEN 10 WHEN i < 3 THEN 20 END"),
              ElementsAre(I(10), I(20), NullOf(DataType::kInt64), NullOf(DataType::kInt64)));
  EXPECT_THAT(Eval("CASE WHEN b THEN i ELSE 0.5 END"),
              ElementsAre(D(1), D(0.5), D(0.5), NullOf(DataType::kDouble)));
  EXPECT_THAT(Eval("CASE i WHEN 1 THEN 'one' WHEN 3 THEN 'three' ELSE 'other' END"),
              ElementsAre(S("one"), S("other"), S("three"), S("other")));
  EXPECT_THAT(Eval("CASE WHEN i > 1 THEN i END"),
              ElementsAre(NullOf(DataType::kInt64), I(2), I(3), NullOf(DataType::kInt64)));
  // The first matching branch wins.
  EXPECT_THAT(Eval("CASE WHEN i >= 1 THEN 'a' WHEN i >= 2 THEN 'b' END"),
              ElementsAre(S("a"), S("a"), S("a"), NullOf(DataType::kString)));
}

TEST_F(EvaluatorTest, Casts) {
  SetRows(1, {{"i", {I(42)}}, {"d", {D(1.5)}}, {"b", {B(true)}}, {"ts", {T(1767225600123)}}});
  EXPECT_EQ(Eval1("CAST('42' AS BIGINT)"), I(42));
  EXPECT_EQ(Eval1("CAST(' -7 ' AS BIGINT)"), I(-7));
  EXPECT_EQ(Eval1("CAST('+7' AS INT)"), I(7));
  EXPECT_EQ(Eval1("CAST('4x' AS BIGINT)"), NullOf(DataType::kInt64));
  EXPECT_EQ(Eval1("CAST('1.5' AS BIGINT)"), NullOf(DataType::kInt64));
  EXPECT_EQ(Eval1("CAST('99999999999999999999' AS BIGINT)"), NullOf(DataType::kInt64));
  EXPECT_EQ(Eval1("CAST('1.5e2' AS DOUBLE)"), D(150));
  EXPECT_EQ(Eval1("CAST('abc' AS DOUBLE)"), NullOf(DataType::kDouble));
  EXPECT_EQ(Eval1("CAST(' 2.5 ' AS DOUBLE)"), D(2.5));
  EXPECT_EQ(Eval1("CAST('NaN' AS DOUBLE)"), NullOf(DataType::kDouble));  // finite numbers only
  EXPECT_EQ(Eval1("CAST('-inf' AS DOUBLE)"), NullOf(DataType::kDouble));
  EXPECT_EQ(Eval1("CAST('1e999' AS DOUBLE)"), NullOf(DataType::kDouble));
  EXPECT_EQ(Eval1("CAST('' AS BIGINT)"), NullOf(DataType::kInt64));
  EXPECT_EQ(Eval1("CAST(2.5 AS TIMESTAMP)"), T(2));
  EXPECT_EQ(Eval1("CAST(ts AS DOUBLE)"), D(1767225600123));
  EXPECT_EQ(Eval1("CAST(1e20 AS STRING)"), S("1e+20"));
  EXPECT_EQ(Eval1("CAST(0.1 + 0.2 AS STRING)"), S("0.30000000000000004"));
  EXPECT_EQ(Eval1("CAST('TRUE' AS BOOLEAN)"), B(true));
  EXPECT_EQ(Eval1("CAST('0' AS BOOLEAN)"), B(false));
  EXPECT_EQ(Eval1("CAST('yes' AS BOOLEAN)"), NullOf(DataType::kBool));
  EXPECT_EQ(Eval1("CAST('2026-01-01T00:00:00.123Z' AS TIMESTAMP)"), T(1767225600123));
  EXPECT_EQ(Eval1("CAST('1767225600123' AS TIMESTAMP)"), T(1767225600123));
  EXPECT_EQ(Eval1("CAST('soon' AS TIMESTAMP)"), NullOf(DataType::kTimestamp));
  EXPECT_EQ(Eval1("CAST(i AS STRING)"), S("42"));
  EXPECT_EQ(Eval1("CAST(-i AS VARCHAR)"), S("-42"));
  EXPECT_EQ(Eval1("CAST(d AS STRING)"), S("1.5"));
  EXPECT_EQ(Eval1("CAST(d * 2 AS STRING)"), S("3"));
  EXPECT_EQ(Eval1("CAST(d / 0.0 AS STRING)"), NullOf(DataType::kString));
  EXPECT_EQ(Eval1("CAST(b AS STRING)"), S("true"));
  EXPECT_EQ(Eval1("CAST(ts AS STRING)"), S("2026-01-01T00:00:00.123Z"));
  EXPECT_EQ(Eval1("CAST(ts AS BIGINT)"), I(1767225600123));
  EXPECT_EQ(Eval1("CAST(i AS TIMESTAMP)"), T(42));
  EXPECT_EQ(Eval1("CAST(d AS BIGINT)"), I(1));
  EXPECT_EQ(Eval1("CAST(-d AS BIGINT)"), I(-1));
  EXPECT_EQ(Eval1("CAST(1e30 AS BIGINT)"), NullOf(DataType::kInt64));
  EXPECT_EQ(Eval1("CAST(i AS DOUBLE)"), D(42));
  EXPECT_EQ(Eval1("CAST(b AS BIGINT)"), I(1));
  EXPECT_EQ(Eval1("CAST(i AS BOOLEAN)"), B(true));
  EXPECT_EQ(Eval1("CAST(NULL AS BIGINT)"), NullOf(DataType::kInt64));
  EXPECT_EQ(Eval1("CAST(s AS BIGINT)"), NullOf(DataType::kInt64));
}

TEST_F(EvaluatorTest, StringFunctions) {
  SetRows(3, {{"s", {S("Hello"), S("h\xc3\xa9llo"), N}}, {"t", {S("!"), N, S("x")}}});
  Value ns = NullOf(DataType::kString);
  Value ni = NullOf(DataType::kInt64);
  EXPECT_THAT(Eval("LOWER(s)"), ElementsAre(S("hello"), S("h\xc3\xa9llo"), ns));
  EXPECT_THAT(Eval("UPPER(s)"), ElementsAre(S("HELLO"), S("H\xc3\xa9LLO"), ns));
  EXPECT_THAT(Eval("LENGTH(s)"), ElementsAre(I(5), I(5), ni));
  EXPECT_THAT(Eval("CHAR_LENGTH(t)"), ElementsAre(I(1), ni, I(1)));
  EXPECT_THAT(Eval("s || t"), ElementsAre(S("Hello!"), ns, ns));
  EXPECT_THAT(Eval("s || '' || 'x'"), ElementsAre(S("Hellox"), S("h\xc3\xa9llox"), ns));
  EXPECT_THAT(Eval("COALESCE(t, s, 'none')"), ElementsAre(S("!"), S("h\xc3\xa9llo"), S("x")));
  EXPECT_THAT(Eval("COALESCE(s, t)"), ElementsAre(S("Hello"), S("h\xc3\xa9llo"), S("x")));
  EXPECT_THAT(Eval("SUBSTR(s, 2, 3)"), ElementsAre(S("ell"), S("\xc3\xa9ll"), ns));
  EXPECT_THAT(Eval("SUBSTRING(s, 4)"), ElementsAre(S("lo"), S("lo"), ns));
  EXPECT_THAT(Eval("SUBSTR(s, 0, 2)"), ElementsAre(S("H"), S("h"), ns));
  EXPECT_THAT(Eval("SUBSTR(s, -1)"), ElementsAre(S("Hello"), S("h\xc3\xa9llo"), ns));
  EXPECT_THAT(Eval("SUBSTR(s, 10)"), ElementsAre(S(""), S(""), ns));
  EXPECT_THAT(Eval("SUBSTR(s, 2, -1)"), ElementsAre(ns, ns, ns));
  EXPECT_THAT(Eval("SUBSTR(s, 2, 0)"), ElementsAre(S(""), S(""), ns));
  EXPECT_THAT(Eval("SUBSTR(s, 1, 9223372036854775807)"),
              ElementsAre(S("Hello"), S("h\xc3\xa9llo"), ns));
  EXPECT_THAT(Eval("SUBSTR(s, NULL)"), ElementsAre(ns, ns, ns));
}

TEST_F(EvaluatorTest, LogExpSqrtPower) {
  const Value nd = NullOf(DataType::kDouble);
  SetRows(5,
          {{"i", {I(100), I(1), I(0), I(-4), N}}, {"d", {D(0.25), D(1e308), D(-0.0), D(-1), N}}});
  for (const char* f : {"LN(i)", "LOG(d)", "LOG(2, i)", "LOG10(NULL)", "LOG2(i)", "EXP(i)",
                        "SQRT(d)", "POWER(i, i)", "POW(d, NULL)"}) {
    EXPECT_EQ(TypeOf(f), DataType::kDouble) << f;
  }
  EXPECT_THAT(Eval("LN(i)"), ElementsAre(D(std::log(100.0)), D(0), nd, nd, nd));
  EXPECT_THAT(Eval("LOG(i)"), ElementsAre(D(std::log(100.0)), D(0), nd, nd, nd));  // natural
  EXPECT_THAT(Eval("LOG10(i)"), ElementsAre(D(2), D(0), nd, nd, nd));
  EXPECT_THAT(Eval("LOG2(d)"), ElementsAre(D(-2), D(std::log2(1e308)), nd, nd, nd));
  EXPECT_THAT(Eval("LOG(10, i)"), ElementsAre(D(2), D(0), nd, nd, nd));
  std::vector<Value> by_base = Eval("LOG(i, 1e6)");  // bases 100, 1, 0, -4, NULL
  ASSERT_EQ(by_base.size(), 5u);
  EXPECT_NEAR(by_base[0].double_value(), 3, 1e-12);
  EXPECT_THAT(std::vector<Value>(by_base.begin() + 1, by_base.end()), ElementsAre(nd, nd, nd, nd));
  EXPECT_THAT(Eval("SQRT(i)"), ElementsAre(D(10), D(1), D(0), nd, nd));
  EXPECT_THAT(Eval("SQRT(d)"), ElementsAre(D(0.5), D(1e154), D(0), nd, nd));
  EXPECT_THAT(Eval("EXP(d)"), ElementsAre(D(std::exp(0.25)), nd, D(1), D(std::exp(-1.0)), nd));
  EXPECT_THAT(Eval("POWER(i, 2)"), ElementsAre(D(10000), D(1), D(0), D(16), nd));
  EXPECT_THAT(Eval("POW(i, 0.5)"), ElementsAre(D(10), D(1), D(0), nd, nd));         // (-4)^0.5: NaN
  EXPECT_THAT(Eval("POWER(i, -1)"), ElementsAre(D(0.01), D(1), nd, D(-0.25), nd));  // 0^-1: inf
  EXPECT_THAT(Eval("POWER(d, 2)"), ElementsAre(D(0.0625), nd, D(0), D(1), nd));     // 1e616: NULL
  EXPECT_THAT(Eval("POWER(i, NULL)"), ElementsAre(nd, nd, nd, nd, nd));

  SetRows(1, {{"d", {D(1e308)}}});
  EXPECT_EQ(Eval1("LOG(2, 1024)"), D(10));
  EXPECT_EQ(Eval1("LOG(10, 1000)"), D(3));  // not 2.9999999999999996
  EXPECT_NEAR(Eval1("LOG(0.5, 8)").double_value(), -3, 1e-12);
  EXPECT_EQ(Eval1("LOG(1, 1)"), nd);
  EXPECT_EQ(Eval1("LOG(0, 5)"), nd);
  EXPECT_EQ(Eval1("LOG(-2, 4)"), nd);
  EXPECT_EQ(Eval1("LOG(2, 0)"), nd);
  EXPECT_EQ(Eval1("LOG(NULL, 4)"), nd);
  EXPECT_EQ(Eval1("LN(0)"), nd);
  EXPECT_EQ(Eval1("LN(-1)"), nd);
  EXPECT_EQ(Eval1("EXP(709)"), D(std::exp(709.0)));
  EXPECT_EQ(Eval1("EXP(710)"), nd);      // overflow: NULL, not inf
  EXPECT_EQ(Eval1("EXP(-1000)"), D(0));  // underflow is a finite 0
  EXPECT_EQ(Eval1("POWER(0, 0)"), D(1));
  EXPECT_EQ(Eval1("POWER(-2, 3)"), D(-8));
  EXPECT_EQ(Eval1("POWER(-8, 1.0 / 3)"), nd);
  // Infinite and NaN arguments (DOUBLE arithmetic can make them) are NULL too, even where C's
  // functions would return a number (exp(-inf) = 0, pow(1, NaN) = 1).
  EXPECT_EQ(Eval1("LN(d * 10)"), nd);
  EXPECT_EQ(Eval1("EXP(-(d * 10))"), nd);
  EXPECT_EQ(Eval1("SQRT(d * 10 - d * 10)"), nd);
  EXPECT_EQ(Eval1("POWER(1, d * 10 - d * 10)"), nd);
  EXPECT_EQ(Eval1("LOG(d * 10, 5)"), nd);
  // BIGINT extremes convert to DOUBLE.
  EXPECT_EQ(Eval1("LN(9223372036854775807)"), D(std::log(9223372036854775807.0)));
  EXPECT_EQ(Eval1("POWER(9223372036854775807, 2)"), D(std::pow(9223372036854775807.0, 2)));
  EXPECT_EQ(Eval1("SQRT(-9223372036854775807 - 1)"), nd);
}

TEST_F(EvaluatorTest, Round) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  const Value ni = NullOf(DataType::kInt64);
  const Value nd = NullOf(DataType::kDouble);
  EXPECT_EQ(TypeOf("ROUND(i)"), DataType::kInt64);
  EXPECT_EQ(TypeOf("ROUND(i, -2)"), DataType::kInt64);
  EXPECT_EQ(TypeOf("ROUND(d, 2)"), DataType::kDouble);
  EXPECT_EQ(TypeOf("ROUND(NULL)"), DataType::kInt64);
  EXPECT_EQ(TypeOf("ROUND(d, NULL)"), DataType::kDouble);
  // DOUBLE: half away from zero, on the decimal digits as written.
  EXPECT_EQ(Eval1("ROUND(2.5)"), D(3));
  EXPECT_EQ(Eval1("ROUND(-2.5)"), D(-3));
  EXPECT_EQ(Eval1("ROUND(0.49999999999999994)"), D(0));
  EXPECT_EQ(Eval1("ROUND(1.4999999999999998)"), D(1));
  EXPECT_EQ(Eval1("ROUND(2.675, 2)"), D(2.68));  // binary 2.67499999…
  EXPECT_EQ(Eval1("ROUND(1.005, 2)"), D(1.01));
  EXPECT_EQ(Eval1("ROUND(-1.005, 2)"), D(-1.01));
  EXPECT_EQ(Eval1("ROUND(0.1 + 0.2, 2)"), D(0.3));
  EXPECT_EQ(Eval1("ROUND(9.995, 2)"), D(10));  // carry into a new digit
  EXPECT_EQ(Eval1("ROUND(99.5)"), D(100));
  EXPECT_EQ(Eval1("ROUND(1234.5678, -2)"), D(1200));
  EXPECT_EQ(Eval1("ROUND(1250.0, -2)"), D(1300));
  EXPECT_EQ(Eval1("ROUND(5.0, -1)"), D(10));
  EXPECT_EQ(Eval1("ROUND(4.9, -1)"), D(0));
  EXPECT_EQ(Eval1("ROUND(0.000123456, 5)"), D(0.00012));
  EXPECT_EQ(Eval1("ROUND(0.000123456, 3)"), D(0));
  EXPECT_EQ(Eval1("ROUND(1.5e-300, 300)"), D(2e-300));
  EXPECT_EQ(Eval1("ROUND(1.25, 20)"), D(1.25));
  EXPECT_EQ(Eval1("ROUND(1.25, 9223372036854775807)"), D(1.25));
  EXPECT_EQ(Eval1("ROUND(1.25e300, -9223372036854775807 - 1)"), D(0));
  EXPECT_EQ(Eval1("ROUND(-0.4)"), D(0));
  EXPECT_FALSE(std::signbit(Eval1("ROUND(-0.4)").double_value()));  // +0, not -0
  EXPECT_EQ(Eval1("ROUND(1.4e308, -308)"), D(1e308));
  EXPECT_EQ(Eval1("ROUND(1.7976931348623157e308, -308)"), nd);  // 2e308 does not fit
  EXPECT_EQ(Eval1("ROUND(1e308 * 10)"), nd);                    // inf in
  EXPECT_EQ(Eval1("ROUND(2.5, NULL)"), nd);
  EXPECT_EQ(Eval1("ROUND(NULL, 2)"), ni);
  // BIGINT: digits >= 0 keep the value; negative digits round to tens, hundreds, …
  SetRows(9, {{"i", {I(1234), I(1250), I(-1250), I(-1249), I(5), I(-5), I(4), I(kMax), I(kMin)}}});
  EXPECT_THAT(Eval("ROUND(i)"), ElementsAre(I(1234), I(1250), I(-1250), I(-1249), I(5), I(-5), I(4),
                                            I(kMax), I(kMin)));
  EXPECT_THAT(Eval("ROUND(i, 3)"), ElementsAre(I(1234), I(1250), I(-1250), I(-1249), I(5), I(-5),
                                               I(4), I(kMax), I(kMin)));
  EXPECT_THAT(Eval("ROUND(i, -1)"), ElementsAre(I(1230), I(1250), I(-1250), I(-1250), I(10), I(-10),
                                                I(0), ni, ni));  // 9223372036854775810
  EXPECT_THAT(Eval("ROUND(i, -2)"),
              ElementsAre(I(1200), I(1300), I(-1300), I(-1200), I(0), I(0), I(0),
                          I(9223372036854775800), I(-9223372036854775800)));
  EXPECT_THAT(Eval("ROUND(i, -3)"),
              ElementsAre(I(1000), I(1000), I(-1000), I(-1000), I(0), I(0), I(0), ni, ni));
  EXPECT_THAT(Eval("ROUND(i, -19)"),
              ElementsAre(I(0), I(0), I(0), I(0), I(0), I(0), I(0), ni, ni));  // 1e19
  EXPECT_THAT(Eval("ROUND(i, -20)"),
              ElementsAre(I(0), I(0), I(0), I(0), I(0), I(0), I(0), I(0), I(0)));
  EXPECT_THAT(Eval("ROUND(i, -9223372036854775807 - 1)"),
              ElementsAre(I(0), I(0), I(0), I(0), I(0), I(0), I(0), I(0), I(0)));
  SetRows(2, {{"i", {I(4000000000000000000), I(5000000000000000000)}}, {"j", {I(-19), N}}});
  EXPECT_THAT(Eval("ROUND(i, j)"), ElementsAre(I(0), ni));  // digits from a column; NULL
  EXPECT_THAT(Eval("ROUND(i, -19)"), ElementsAre(I(0), ni));
}

TEST_F(EvaluatorTest, GreatestAndLeast) {
  SetRows(3, {{"i", {I(1), I(5), N}},
              {"j", {I(3), I(2), I(4)}},
              {"d", {D(2.5), D(-9), D(1)}},
              {"s", {S("a"), S("B"), S("ab")}},
              {"t", {S("B"), S("b"), S("a")}},
              {"b", {B(true), B(false), B(false)}},
              {"c", {B(false), B(false), N}},
              {"ts", {T(1000), T(3000), T(2000)}}});
  const Value ni = NullOf(DataType::kInt64);
  EXPECT_EQ(TypeOf("GREATEST(i, j)"), DataType::kInt64);
  EXPECT_EQ(TypeOf("LEAST(i, d)"), DataType::kDouble);
  EXPECT_EQ(TypeOf("GREATEST(NULL, s)"), DataType::kString);
  EXPECT_EQ(TypeOf("LEAST(ts, NULL)"), DataType::kTimestamp);
  EXPECT_THAT(Eval("GREATEST(i, j)"), ElementsAre(I(3), I(5), ni));  // NULL if any is NULL
  EXPECT_THAT(Eval("LEAST(i, j)"), ElementsAre(I(1), I(2), ni));
  EXPECT_THAT(Eval("GREATEST(j)"), ElementsAre(I(3), I(2), I(4)));
  EXPECT_THAT(Eval("GREATEST(j, 3, 0)"), ElementsAre(I(3), I(3), I(4)));
  EXPECT_THAT(Eval("LEAST(j, NULL)"), ElementsAre(ni, ni, ni));
  EXPECT_THAT(Eval("GREATEST(i, d)"), ElementsAre(D(2.5), D(5), NullOf(DataType::kDouble)));
  EXPECT_THAT(Eval("LEAST(j, d, 2)"), ElementsAre(D(2), D(-9), D(1)));
  EXPECT_THAT(Eval("GREATEST(s, t)"), ElementsAre(S("a"), S("b"), S("ab")));  // bytewise
  EXPECT_THAT(Eval("LEAST(s, t, 'aa')"), ElementsAre(S("B"), S("B"), S("a")));
  EXPECT_THAT(Eval("GREATEST(b, c)"), ElementsAre(B(true), B(false), NullOf(DataType::kBool)));
  EXPECT_THAT(Eval("LEAST(ts, TIMESTAMP '1970-01-01T00:00:02Z')"),
              ElementsAre(T(1000), T(2000), T(2000)));
  SetRows(1, {{"d", {D(1e308)}}});
  // NaN sorts above every number (as in PostgreSQL and Spark), so the result is deterministic.
  EXPECT_TRUE(std::isnan(Eval1("GREATEST(1.0, d * 10 - d * 10, 2)").double_value()));
  EXPECT_EQ(Eval1("LEAST(d * 10 - d * 10, 1.0, 2)"), D(1));
  EXPECT_EQ(Eval1("LEAST(-(d * 10), 0.0)"), D(-std::numeric_limits<double>::infinity()));
}

TEST_F(EvaluatorTest, ScalarFunctionsRejectListAndMapArguments) {
  SourceDef source;
  source.name = "n";
  source.columns = {{"l", DataType::kList}, {"m", DataType::kMap}, {"ts", DataType::kTimestamp}};
  source.time_column = 2;
  std::vector<AggregateCall> aggregates;
  for (const char* text : {"COALESCE(l, l)", "GREATEST(m)", "LEAST(1, l)", "ABS(l)", "LN(m)",
                           "ROUND(l)", "LENGTH(m)", "POWER(2, l)"}) {
    absl::StatusOr<std::unique_ptr<AstExpr>> ast = Parser::ParseExpression(text);
    ASSERT_TRUE(ast.ok()) << ast.status();
    ExprBinder binder(source, &aggregates);
    absl::StatusOr<std::unique_ptr<Expr>> e = binder.BindRow(**ast, "WHERE");
    ASSERT_FALSE(e.ok()) << text;
    EXPECT_THAT(StatusMessage(e.status()), ::testing::HasSubstr("LIST and MAP values can only"))
        << text;
  }
}

// The scalar functions over finalized aggregates, one (key, window) at a time as a read does,
// for a window with rows and an empty one: an empty window never makes a read fail.
TEST_F(EvaluatorTest, ScalarFunctionsOverAggregates) {
  absl::StatusOr<Catalog> catalog = ParseCatalog(
      "CREATE SOURCE p (u STRING, ms BIGINT, x DOUBLE, ts TIMESTAMP);"
      "CREATE FEATURE VIEW v AS SELECT u,"
      " COALESCE(SUM(ms), 0) AS total,"  // $0 SUM(ms)
      " CAST(COUNT(*) AS DOUBLE) AS n,"  // $1 COUNT(*)
      " ROUND(AVG(x), 2) AS avg_x,"      // $2 AVG(x)
      " LN(1 + COUNT(*)) AS ln_n,"
      " LOG(10, SUM(ms)) AS log_ms,"
      " SQRT(VARIANCE(x)) AS sd,"  // $3 VARIANCE(x)
      " POWER(SUM(ms), 2) AS sq,"
      " EXP(-COUNT(*)) AS decay,"
      " GREATEST(MAX(x), 0) AS max_pos,"                                // $4 MAX(x)
      " LEAST(MIN(ts), TIMESTAMP '2026-01-01T00:00:00Z') AS first_ts,"  // $5 MIN(ts)
      " ABS(SUM(ms) - 100) AS dist,"
      " ROUND(SUM(ms), -1) AS total_10,"
      " CAST(SUM(ms) AS STRING) AS total_text,"
      " COALESCE(CAST(MAX(x) AS BIGINT), -99) AS max_int"
      " FROM p GROUP BY u");
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  const ViewDef& v = catalog->views[0];
  ASSERT_EQ(v.aggregates.size(), 6u);
  std::map<std::string, DataType> types;
  for (const FeatureColumn& f : v.features) {
    types[f.name] = f.type;
  }
  EXPECT_EQ(types["total"], DataType::kInt64);
  EXPECT_EQ(types["n"], DataType::kDouble);
  EXPECT_EQ(types["avg_x"], DataType::kDouble);
  EXPECT_EQ(types["max_pos"], DataType::kDouble);  // DOUBLE with BIGINT 0
  EXPECT_EQ(types["first_ts"], DataType::kTimestamp);
  EXPECT_EQ(types["total_10"], DataType::kInt64);
  auto eval_all = [&](const std::vector<Value>& slots) {
    std::map<std::string, Value> out;
    for (const FeatureColumn& f : v.features) {
      out[f.name] = ExprEvaluator(*f.expr).EvaluateRow(slots);
    }
    return out;
  };
  const int64_t jan1 = 1767225600000;
  std::map<std::string, Value> full =
      eval_all({I(1000), I(4), D(2.345), D(4), D(-1.5), T(jan1 - 5000)});
  EXPECT_EQ(full["total"], I(1000));
  EXPECT_EQ(full["n"], D(4));
  EXPECT_EQ(full["avg_x"], D(2.35));
  EXPECT_EQ(full["ln_n"], D(std::log(5.0)));
  EXPECT_EQ(full["log_ms"], D(3));
  EXPECT_EQ(full["sd"], D(2));
  EXPECT_EQ(full["sq"], D(1e6));
  EXPECT_EQ(full["decay"], D(std::exp(-4.0)));
  EXPECT_EQ(full["max_pos"], D(0));
  EXPECT_EQ(full["first_ts"], T(jan1 - 5000));
  EXPECT_EQ(full["dist"], I(900));
  EXPECT_EQ(full["total_10"], I(1000));
  EXPECT_EQ(full["total_text"], S("1000"));
  EXPECT_EQ(full["max_int"], I(-1));  // -1.5 truncates toward zero
  // An empty window: SUM / AVG / VARIANCE / MAX / MIN are NULL, COUNT is 0.
  std::map<std::string, Value> empty = eval_all(
      {NullOf(DataType::kInt64), I(0), NullOf(DataType::kDouble), NullOf(DataType::kDouble),
       NullOf(DataType::kDouble), NullOf(DataType::kTimestamp)});
  EXPECT_EQ(empty["total"], I(0));
  EXPECT_EQ(empty["n"], D(0));
  EXPECT_EQ(empty["avg_x"], NullOf(DataType::kDouble));
  EXPECT_EQ(empty["ln_n"], D(0));
  EXPECT_EQ(empty["log_ms"], NullOf(DataType::kDouble));
  EXPECT_EQ(empty["sd"], NullOf(DataType::kDouble));
  EXPECT_EQ(empty["sq"], NullOf(DataType::kDouble));
  EXPECT_EQ(empty["decay"], D(1));
  EXPECT_EQ(empty["max_pos"], NullOf(DataType::kDouble));
  EXPECT_EQ(empty["first_ts"], NullOf(DataType::kTimestamp));
  EXPECT_EQ(empty["dist"], NullOf(DataType::kInt64));
  EXPECT_EQ(empty["total_10"], NullOf(DataType::kInt64));
  EXPECT_EQ(empty["total_text"], NullOf(DataType::kString));
  EXPECT_EQ(empty["max_int"], I(-99));
  // A window whose values make domain errors: NULL, never a failed read.
  std::map<std::string, Value> odd = eval_all({I(-5), I(4), D(1e308), D(-1), D(1e308), N});
  EXPECT_EQ(odd["log_ms"], NullOf(DataType::kDouble));
  EXPECT_EQ(odd["sd"], NullOf(DataType::kDouble));
  EXPECT_EQ(odd["avg_x"], D(1e308));
  EXPECT_EQ(odd["max_int"], I(-99));  // CAST(1e308 AS BIGINT) does not fit: NULL, then COALESCE
}

TEST_F(EvaluatorTest, ScalarFunctionBindErrors) {
  EXPECT_EQ(BindError("LN()"), "line 1, column 1: LN takes 1 argument, got 0, expected LN(x)");
  EXPECT_EQ(BindError("EXP(1, 2)"),
            "line 1, column 1: EXP takes 1 argument, got 2, expected EXP(x)");
  EXPECT_EQ(BindError("LOG(1, 2, 3)"),
            "line 1, column 1: LOG takes 1 or 2 arguments, got 3, expected LOG(x) (natural) or "
            "LOG(base, x)");
  EXPECT_EQ(BindError("pow(2)"),
            "line 1, column 1: POW takes 2 arguments, got 1, expected POWER(x, y)");
  EXPECT_EQ(BindError("ROUND()"),
            "line 1, column 1: ROUND takes 1 or 2 arguments, got 0, expected ROUND(x) or "
            "ROUND(x, digits)");
  EXPECT_EQ(BindError("GREATEST()"),
            "line 1, column 1: GREATEST takes at least 1 argument, got 0, expected GREATEST(x, "
            "y, …)");
  EXPECT_EQ(BindError("LN(s)"),
            "line 1, column 4: LN cannot be applied to STRING, expected a BIGINT or DOUBLE");
  EXPECT_EQ(BindError("SQRT(ts)"),
            "line 1, column 6: SQRT cannot be applied to TIMESTAMP, expected a BIGINT or DOUBLE");
  EXPECT_EQ(BindError("POWER(2, b)"),
            "line 1, column 10: POWER cannot be applied to BOOLEAN, expected a BIGINT or DOUBLE");
  EXPECT_EQ(BindError("LOG(s, 2)"),
            "line 1, column 5: LOG cannot be applied to STRING, expected a BIGINT or DOUBLE");
  EXPECT_EQ(BindError("ROUND(s)"),
            "line 1, column 7: ROUND cannot be applied to STRING, expected a BIGINT or DOUBLE");
  EXPECT_EQ(BindError("ROUND(d, 1.5)"),
            "line 1, column 10: the digits of ROUND are DOUBLE, expected a BIGINT number of "
            "decimal places (negative rounds left of the decimal point), e.g. ROUND(x, 2)");
  EXPECT_EQ(BindError("GREATEST(i, s)"),
            "line 1, column 13: GREATEST arguments have incompatible types BIGINT and STRING, "
            "expected the same type (BIGINT and DOUBLE mix as DOUBLE)");
  EXPECT_EQ(BindError("LEAST(ts, 5)"),
            "line 1, column 11: LEAST arguments have incompatible types TIMESTAMP and BIGINT, "
            "expected the same type (BIGINT and DOUBLE mix as DOUBLE)");
  EXPECT_EQ(BindError("EXP(DISTINCT d)"),
            "line 1, column 1: DISTINCT is not allowed in EXP, expected EXP(x)");
  EXPECT_EQ(BindError("SQRT(*)"),
            "line 1, column 1: '*' is not an argument of SQRT, expected COUNT(*)");
  EXPECT_EQ(BindError("ln(i) + Log10(d) + log2(2) + Exp(0) + sqrt(4) + Power(2, 2)"), "OK");
}

TEST_F(EvaluatorTest, BareColumnIsTheInputItself) {
  SetRows(2, {{"i", {I(1), I(2)}}});
  std::unique_ptr<Expr> e = Bind("i");
  ExprEvaluator evaluator(*e);
  const Column& out = evaluator.Evaluate(columns_, rows_, &arena_);
  EXPECT_EQ(&out, &columns_[0]);
}

TEST_F(EvaluatorTest, ScratchIsReusedWithoutAllocation) {
  SetRows(1000, {});
  for (size_t r = 0; r < 1000; ++r) {
    columns_[0].SetValue(r, I(static_cast<int64_t>(r)), nullptr);
    columns_[3].SetValue(r, S(r % 2 ? "abc" : "ABC"), &data_arena_);
  }
  std::unique_ptr<Expr> e = Bind("i % 3 = 0 AND LOWER(s) = 'abc' AND i * 1.5 > 10");
  ExprEvaluator evaluator(*e);
  const Column* first = &evaluator.Evaluate(columns_, rows_, &arena_);
  size_t reserved = arena_.bytes_reserved();
  const int64_t* data = first->i64.data();
  for (int k = 0; k < 10; ++k) {
    arena_.Reset();
    const Column& out = evaluator.Evaluate(columns_, rows_, &arena_);
    EXPECT_EQ(&out, first);
    EXPECT_EQ(out.i64.data(), data);
  }
  EXPECT_EQ(arena_.bytes_reserved(), reserved);
  const Column& out = evaluator.Evaluate(columns_, rows_, &arena_);
  int64_t count = 0;
  for (size_t r = 0; r < rows_; ++r) {
    count += out.valid[r] && out.i64[r];
  }
  // r % 3 == 0, r > 6 (r * 1.5 > 10): 9, 12, …, 999 -> 331 rows.
  EXPECT_EQ(count, 331);
}

TEST_F(EvaluatorTest, BatchSizeChangesAndConstants) {
  std::unique_ptr<Expr> e = Bind("i + 1 > 2 OR s = 'k'");
  ExprEvaluator evaluator(*e);
  SetRows(3, {{"i", {I(1), I(2), N}}, {"s", {S("a"), S("b"), S("k")}}});
  const Column& a = evaluator.Evaluate(columns_, rows_, &arena_);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a.GetValue(0), B(false));
  EXPECT_EQ(a.GetValue(1), B(true));
  EXPECT_EQ(a.GetValue(2), B(true));
  SetRows(1, {{"i", {I(5)}}});
  const Column& b = evaluator.Evaluate(columns_, rows_, &arena_);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b.GetValue(0), B(true));
}

TEST_F(EvaluatorTest, BadInputsReadAsNull) {
  std::unique_ptr<Expr> e = Bind("i + 1");
  ExprEvaluator evaluator(*e);
  std::vector<Column> wrong(1);
  wrong[0].Reset(DataType::kString, 2);  // wrong type
  const Column& out = evaluator.Evaluate(wrong, 2, &arena_);
  EXPECT_EQ(out.GetValue(0), NullOf(DataType::kInt64));
  std::vector<Column> none;
  const Column& out2 = evaluator.Evaluate(none, 2, &arena_);
  ASSERT_EQ(out2.size(), 2u);
  EXPECT_EQ(out2.GetValue(1), NullOf(DataType::kInt64));
  std::vector<Column> short_col(1);
  short_col[0].Reset(DataType::kInt64, 1);  // fewer rows than asked for
  const Column& out3 = evaluator.Evaluate(short_col, 4, &arena_);
  ASSERT_EQ(out3.size(), 4u);
  EXPECT_EQ(out3.GetValue(3), NullOf(DataType::kInt64));
}

TEST_F(EvaluatorTest, BindErrorsNameOperatorTypesAndExpectation) {
  EXPECT_EQ(BindError("s + 1"),
            "line 1, column 3: operator '+' cannot be applied to STRING and BIGINT, expected "
            "BIGINT or DOUBLE operands");
  EXPECT_EQ(BindError("i AND b"),
            "line 1, column 3: operator AND cannot be applied to BIGINT and BOOLEAN, expected "
            "BOOLEAN operands");
  EXPECT_EQ(BindError("s = 1"),
            "line 1, column 3: operator '=' cannot compare STRING with BIGINT, expected operands "
            "of the same type (BIGINT and DOUBLE compare with each other; CAST to convert)");
  EXPECT_EQ(BindError("NOT i"),
            "line 1, column 1: operator NOT cannot be applied to BIGINT, expected a BOOLEAN "
            "operand");
  EXPECT_EQ(BindError("i || 'x'"),
            "line 1, column 3: operator '||' cannot be applied to BIGINT and STRING, expected "
            "STRING operands (use CAST(x AS STRING))");
  EXPECT_EQ(BindError("CAST(b AS TIMESTAMP)"),
            "line 1, column 1: CAST from BOOLEAN to TIMESTAMP is not supported, expected a cast "
            "to or from STRING, between BOOLEAN, BIGINT and DOUBLE, or between TIMESTAMP and "
            "BIGINT/DOUBLE");
  EXPECT_EQ(BindError("LOWER(i)"),
            "line 1, column 7: LOWER cannot be applied to BIGINT, expected a STRING");
  EXPECT_EQ(BindError("SUBSTR(s)"),
            "line 1, column 1: SUBSTR takes 2 or 3 arguments, got 1, expected SUBSTR(s, start) "
            "or SUBSTR(s, start, length)");
  EXPECT_EQ(BindError("ts = 5"),
            "line 1, column 4: operator '=' cannot compare TIMESTAMP with BIGINT, expected "
            "operands of the same type (BIGINT and DOUBLE compare with each other; CAST to "
            "convert)");
  EXPECT_EQ(BindError("i IN (1, 'a')"),
            "line 1, column 10: IN list item of type STRING cannot be compared with BIGINT, "
            "expected values of the same type (BIGINT and DOUBLE compare with each other)");
  EXPECT_EQ(BindError("CASE WHEN i THEN 1 END"),
            "line 1, column 11: CASE WHEN condition is BIGINT, expected a BOOLEAN condition");
  EXPECT_EQ(BindError("COALESCE(i, s)"),
            "line 1, column 13: COALESCE arguments have incompatible types BIGINT and STRING, "
            "expected the same type (BIGINT and DOUBLE mix as DOUBLE)");
  EXPECT_EQ(BindError("nope + 1"),
            "line 1, column 1: unknown column 'nope' in source 'tbl', expected one of: i, j, d, "
            "s, t, b, c, ts");
  EXPECT_EQ(BindError("other.i"),
            "line 1, column 1: unknown source 'other' in 'other.i', "
            "expected 'tbl'");
  EXPECT_EQ(BindError("COUNT(*) > 1"),
            "line 1, column 1: aggregate COUNT is not allowed in WHERE, expected a row expression");
  EXPECT_EQ(BindError("LOWER(*)"),
            "line 1, column 1: '*' is not an argument of LOWER, "
            "expected COUNT(*)");
  EXPECT_EQ(BindError("TBL.I + 1"), "OK");
}

TEST_F(EvaluatorTest, DesugaringCannotBlowUp) {
  // Each BETWEEN copies its operand; nesting would double the tree at every level.
  std::string nested = "b";
  for (int i = 0; i < 60; ++i) {
    nested = fmt::format("({} BETWEEN FALSE AND TRUE)", nested);
  }
  EXPECT_THAT(BindError(nested), ::testing::HasSubstr("too large"));
  std::string cases = "i";
  for (int i = 0; i < 40; ++i) {
    cases = fmt::format("CASE {} WHEN 1 THEN 1 WHEN 2 THEN 2 WHEN 3 THEN 3 END", cases);
  }
  EXPECT_THAT(BindError(cases), ::testing::HasSubstr("too large"));
  EXPECT_EQ(BindError("(i BETWEEN 1 AND 2) BETWEEN FALSE AND TRUE"), "OK");
}

// Post-aggregate expressions evaluated one row at a time, as serving does.
TEST_F(EvaluatorTest, EvaluateRowForPostAggregates) {
  absl::StatusOr<Catalog> catalog = ParseCatalog(
      "CREATE SOURCE p (u STRING, ms BIGINT, x DOUBLE, ts TIMESTAMP);"
      "CREATE FEATURE VIEW v AS SELECT u, SUM(ms) / COUNT(*) AS avg_ms, "
      "CASE WHEN COUNT(*) > 1 THEN MAX(x) END AS mx, LAST_K(u, 2) AS recent, "
      "COALESCE(MIN(x), SUM(ms)) AS m FROM p GROUP BY u");
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  const ViewDef& v = catalog->views[0];
  ASSERT_EQ(v.aggregates.size(), 5u);  // SUM(ms), COUNT(*), MAX(x), LAST_K, MIN(x)
  ExprEvaluator avg(*v.features[0].expr);
  ExprEvaluator mx(*v.features[1].expr);
  ExprEvaluator recent(*v.features[2].expr);
  ExprEvaluator m(*v.features[3].expr);
  Value list = Value::List({S("a"), S("b")});
  std::vector<Value> slots = {I(30), I(4), D(2.5), list, N};
  EXPECT_EQ(avg.EvaluateRow(slots), D(7.5));
  EXPECT_EQ(mx.EvaluateRow(slots), D(2.5));
  EXPECT_EQ(recent.EvaluateRow(slots), list);
  EXPECT_EQ(m.EvaluateRow(slots), D(30));  // BIGINT SUM unified to DOUBLE
  std::vector<Value> empty = {NullOf(DataType::kInt64), I(0), NullOf(DataType::kDouble),
                              Value::List({}), NullOf(DataType::kDouble)};
  EXPECT_EQ(avg.EvaluateRow(empty), NullOf(DataType::kDouble));
  EXPECT_EQ(mx.EvaluateRow(empty), NullOf(DataType::kDouble));
  EXPECT_EQ(recent.EvaluateRow(empty), Value::List({}));
  // Wrong types and missing slots read as NULL.
  std::vector<Value> wrong = {S("x"), I(2)};
  EXPECT_EQ(avg.EvaluateRow(wrong), NullOf(DataType::kDouble));
  EXPECT_EQ(avg.EvaluateRow(std::vector<Value>{}), NullOf(DataType::kDouble));
}

}  // namespace
}  // namespace tessera::sql
