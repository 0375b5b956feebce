#include "sql/parser.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/errors.h"

namespace tessera::sql {
namespace {

using ::testing::HasSubstr;

// Renders an AST as an S-expression, to check structure and precedence.
std::string Sexp(const AstExpr& e) {
  std::string s;
  switch (e.kind) {
    case AstExpr::Kind::kLiteral:
      return e.literal.ToString();
    case AstExpr::Kind::kColumn:
      return e.qualifier.empty() ? e.name : fmt::format("{}.{}", e.qualifier, e.name);
    case AstExpr::Kind::kUnary:
    case AstExpr::Kind::kBinary:
      s = fmt::format("({}", e.name);
      break;
    case AstExpr::Kind::kIsNull:
      s = e.negated ? "(IS-NOT-NULL" : "(IS-NULL";
      break;
    case AstExpr::Kind::kIn:
      s = e.negated ? "(NOT-IN" : "(IN";
      break;
    case AstExpr::Kind::kBetween:
      s = e.negated ? "(NOT-BETWEEN" : "(BETWEEN";
      break;
    case AstExpr::Kind::kCase:
      s = fmt::format("(CASE{}{}", e.has_operand ? "-OP" : "", e.has_else ? "-ELSE" : "");
      break;
    case AstExpr::Kind::kCast:
      s = fmt::format("(CAST-{}", DataTypeName(e.cast_type));
      break;
    case AstExpr::Kind::kCall:
      s = fmt::format("({}{}{}", e.name, e.star ? " *" : "", e.distinct ? " DISTINCT" : "");
      break;
  }
  for (const auto& c : e.children) {
    s += ' ';
    s += Sexp(*c);
  }
  s += ')';
  return s;
}

std::string P(std::string_view text) {
  absl::StatusOr<std::unique_ptr<AstExpr>> e = Parser::ParseExpression(text);
  if (!e.ok()) {
    return fmt::format("ERROR: {}", StatusMessage(e.status()));
  }
  return Sexp(**e);
}

std::string ScriptError(std::string_view text) {
  absl::StatusOr<std::vector<AstStatement>> s = Parser::ParseScript(text);
  if (s.ok()) {
    return "OK";
  }
  return StatusMessage(s.status());
}

TEST(ParserTest, Precedence) {
  EXPECT_EQ(P("a + b * c"), "(+ a (* b c))");
  EXPECT_EQ(P("a - b - c"), "(- (- a b) c)");
  EXPECT_EQ(P("(a + b) * c"), "(* (+ a b) c)");
  EXPECT_EQ(P("a OR b AND c"), "(OR a (AND b c))");
  EXPECT_EQ(P("NOT a = b"), "(NOT (= a b))");
  EXPECT_EQ(P("NOT a AND b"), "(AND (NOT a) b)");
  EXPECT_EQ(P("a || b + c"), "(|| a (+ b c))");
  EXPECT_EQ(P("a = b || c"), "(= a (|| b c))");
  EXPECT_EQ(P("-a * b"), "(* (- a) b)");
  EXPECT_EQ(P("-2 * b"), "(* -2 b)");
  EXPECT_EQ(P("a % 3 <> 0 OR x != y"), "(OR (<> (% a 3) 0) (<> x y))");
  EXPECT_EQ(P("- -a"), "(- (- a))");
  EXPECT_EQ(P("+a"), "a");
}

TEST(ParserTest, Predicates) {
  EXPECT_EQ(P("x IS NULL"), "(IS-NULL x)");
  EXPECT_EQ(P("x IS NOT NULL AND y"), "(AND (IS-NOT-NULL x) y)");
  EXPECT_EQ(P("x IN (1, 2)"), "(IN x 1 2)");
  EXPECT_EQ(P("x NOT IN ('a')"), "(NOT-IN x 'a')");
  EXPECT_EQ(P("x BETWEEN 1 AND 2 AND y"), "(AND (BETWEEN x 1 2) y)");
  EXPECT_EQ(P("x NOT BETWEEN a + 1 AND b"), "(NOT-BETWEEN x (+ a 1) b)");
}

TEST(ParserTest, Literals) {
  EXPECT_EQ(P("1"), "1");
  EXPECT_EQ(P("1.5"), "1.5");
  EXPECT_EQ(P("'a''b'"), "'a''b'");
  EXPECT_EQ(P("TRUE"), "true");
  EXPECT_EQ(P("null"), "NULL");
  EXPECT_EQ(P("-9223372036854775808"), "-9223372036854775808");
  EXPECT_EQ(P("TIMESTAMP '2026-01-01T00:00:00Z'"), "TIMESTAMP '2026-01-01T00:00:00.000Z'");
  EXPECT_THAT(P("9223372036854775808"), HasSubstr("out of range"));
  EXPECT_THAT(P("TIMESTAMP 'nope'"), HasSubstr("invalid TIMESTAMP literal 'nope'"));
  EXPECT_THAT(P("1e999"), HasSubstr("out of range"));
}

TEST(ParserTest, CaseCastCalls) {
  EXPECT_EQ(P("CASE WHEN a THEN 1 WHEN b THEN 2 ELSE 3 END"), "(CASE-ELSE a 1 b 2 3)");
  EXPECT_EQ(P("CASE x WHEN 1 THEN 'a' END"), "(CASE-OP x 1 'a')");
  EXPECT_EQ(P("CAST(x AS varchar(10))"), "(CAST-STRING x)");
  EXPECT_EQ(P("CAST(x AS double precision)"), "(CAST-DOUBLE x)");
  EXPECT_EQ(P("count(*)"), "(count *)");
  EXPECT_EQ(P("COUNT(DISTINCT x)"), "(COUNT DISTINCT x)");
  EXPECT_EQ(P("SUBSTR(s, 1, 2)"), "(SUBSTR s 1 2)");
  EXPECT_EQ(P("f()"), "(f)");
  EXPECT_EQ(P("plays.user_id"), "plays.user_id");
  EXPECT_EQ(P("\"select\""), "select");
  EXPECT_THAT(P("CASE END"), HasSubstr("unexpected 'END', expected WHEN"));
  EXPECT_THAT(P("CASE WHEN a THEN 1"), HasSubstr("expected WHEN, ELSE or END"));
}

TEST(ParserTest, ExpressionErrorsHaveLineAndColumn) {
  EXPECT_EQ(P("a +"), "ERROR: line 1, column 4: unexpected end of input, expected an expression");
  EXPECT_EQ(P("a\n  + * b"), "ERROR: line 2, column 5: unexpected '*', expected an expression");
  EXPECT_EQ(P("(a"), "ERROR: line 1, column 3: unexpected end of input, expected ')'");
  EXPECT_EQ(P("a b"), "ERROR: line 1, column 3: unexpected 'b', expected end of expression");
  EXPECT_EQ(P("x IS 1"), "ERROR: line 1, column 6: unexpected '1', expected NULL");
  EXPECT_THAT(P("SELECT"), HasSubstr("unexpected 'SELECT', expected an expression"));
  EXPECT_THAT(P("INTERVAL '1' HOUR"), HasSubstr("only supported in a WATERMARK"));
}

TEST(ParserTest, DeepNestingIsAnErrorNotACrash) {
  std::string deep(100000, '(');
  EXPECT_THAT(P(deep + "1"), HasSubstr("nested too deeply"));
  std::string minus;
  for (int i = 0; i < 50000; ++i) {
    minus += "- ";
  }
  EXPECT_THAT(P(minus + "a"), HasSubstr("nested too deeply"));
  std::string nots;
  for (int i = 0; i < 50000; ++i) {
    nots += "NOT ";
  }
  EXPECT_THAT(P(nots + "a"), HasSubstr("nested too deeply"));
  std::string chain = "a";
  for (int i = 0; i < 50000; ++i) {
    chain += " + a";
  }
  EXPECT_THAT(P(chain), HasSubstr("nested too deeply"));
}

TEST(ParserTest, ScriptStatementsAndText) {
  absl::StatusOr<std::vector<AstStatement>> s = Parser::ParseScript(
      "-- header\nCREATE SOURCE s (a STRING, ts TIMESTAMP,\n"
      "  WATERMARK FOR ts AS ts - INTERVAL '2' MINUTES) WITH (Topic = 't', a.b = 'c');\n"
      ";; create feature view v with (tile = '1m') as select a, count(*) c from s "
      "where a <> 'x' group by a -- trailing\n");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->size(), 2u);
  const AstStatement& src = (*s)[0];
  EXPECT_EQ(src.kind, AstStatement::Kind::kSource);
  EXPECT_EQ(src.sql,
            "CREATE SOURCE s (a STRING, ts TIMESTAMP,\n"
            "  WATERMARK FOR ts AS ts - INTERVAL '2' MINUTES) WITH (Topic = 't', a.b = 'c')");
  EXPECT_EQ(src.source.columns.size(), 2u);
  EXPECT_TRUE(src.source.watermark.present);
  EXPECT_EQ(src.source.watermark.lateness_ms, 120000);
  ASSERT_EQ(src.source.options.size(), 2u);
  EXPECT_EQ(src.source.options[0].key, "topic");
  EXPECT_EQ(src.source.options[1].key, "a.b");
  const AstStatement& view = (*s)[1];
  EXPECT_EQ(view.kind, AstStatement::Kind::kView);
  EXPECT_EQ(view.sql,
            "create feature view v with (tile = '1m') as select a, count(*) c from s where a "
            "<> 'x' group by a");
  EXPECT_EQ(view.view.items.size(), 2u);
  EXPECT_EQ(view.view.items[1].alias, "c");
  EXPECT_EQ(view.view.from, "s");
  EXPECT_TRUE(view.view.where != nullptr);
  EXPECT_EQ(view.view.group_by.size(), 1u);
}

TEST(ParserTest, EmptyScriptIsEmpty) {
  absl::StatusOr<std::vector<AstStatement>> s = Parser::ParseScript("  -- nothing\n ; ;");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->empty());
}

TEST(ParserTest, ScriptErrors) {
  EXPECT_EQ(ScriptError("SELECT 1"),
            "line 1, column 1: unexpected 'SELECT', expected CREATE SOURCE or CREATE FEATURE VIEW");
  EXPECT_EQ(ScriptError("CREATE TABLE t"),
            "line 1, column 8: unexpected 'TABLE', expected SOURCE or FEATURE VIEW after CREATE");
  EXPECT_EQ(ScriptError("CREATE SOURCE s (a STRING ts TIMESTAMP)"),
            "line 1, column 27: unexpected 'ts', expected ',' or ')'");
  EXPECT_EQ(ScriptError("CREATE SOURCE s (a STRING) WITH (k = 1)"),
            "line 1, column 38: unexpected '1', expected a quoted string value for option 'k', "
            "e.g. k = '…'");
  EXPECT_EQ(ScriptError("CREATE SOURCE s (a STRING) x"),
            "line 1, column 28: unexpected 'x', expected ';' or end of input");
  EXPECT_THAT(ScriptError("CREATE SOURCE s (ts TIMESTAMP, WATERMARK FOR ts AS ts - 5)"),
              HasSubstr("expected INTERVAL"));
  EXPECT_THAT(ScriptError("CREATE SOURCE s (ts TIMESTAMP, WATERMARK FOR ts AS ts, "
                          "WATERMARK FOR ts AS ts)"),
              HasSubstr("duplicate WATERMARK"));
  EXPECT_THAT(ScriptError("CREATE FEATURE VIEW v AS SELECT * FROM s GROUP BY a"),
              HasSubstr("SELECT * is not supported"));
  EXPECT_THAT(ScriptError("CREATE FEATURE VIEW v AS SELECT a FROM s GROUP a"),
              HasSubstr("unexpected 'a', expected BY"));
  EXPECT_THAT(ScriptError("CREATE FEATURE VIEW v AS SELECT a FROM s WHERE a GROUP BY a HAVING"),
              HasSubstr("unexpected 'HAVING', expected ';' or end of input"));
  EXPECT_THAT(ScriptError("CREATE SOURCE s (a FOO)"), HasSubstr("unknown type 'FOO'"));
}

}  // namespace
}  // namespace tessera::sql
