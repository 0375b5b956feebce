// SQL golden tests: every testdata/NAME.sql is parsed with ParseCatalog and the result (the
// Explain() of each source and view, or "ERROR: <message>") is compared with testdata/NAME.out.
// Set TESSERA_UPDATE_GOLDEN=1 to rewrite the .out files from the current output.
//
// Each successful case is also round-tripped: re-parsing the stored statement texts
// (SourceDef::sql / ViewDef::sql), as the persisted catalog does, must give the same plan.
//
// Comment lines of these forms also evaluate a view's expressions, so a golden pins values
// (NULL rules included), not only types; the results follow the plan in the .out file:
//   -- @row VIEW: v1, v2, …    one source row, a value per column in declared order: the WHERE,
//                              the GROUP BY keys and each aggregate's argument on that row
//   -- @eval VIEW: v1, v2, …   the finalized aggregates of one (key, window), a value per slot
//                              $0, $1, … in order: each feature, as a read computes it
// Values are SQL constant expressions (NULL, 7, -2.5, 'x', TIMESTAMP '…', CAST(… AS …));
// results print as the JSON a read returns (null for NULL).

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/errors.h"
#include "common/strings.h"
#include "sql/expr_binder.h"
#include "sql/parser.h"
#include "sql/plan.h"

namespace tessera::sql {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string ExplainCatalog(const Catalog& catalog) {
  std::string out;
  for (const SourceDef& s : catalog.sources) {
    out += Explain(s) + "\n";
  }
  for (const ViewDef& v : catalog.views) {
    out += Explain(v) + "\n";
  }
  return out;
}

std::string Render(const absl::StatusOr<Catalog>& catalog) {
  if (!catalog.ok()) {
    return "ERROR: " + StatusMessage(catalog.status()) + "\n";
  }
  return ExplainCatalog(*catalog);
}

std::vector<std::string> SplitLines(const std::string& s) {
  std::vector<std::string> lines;
  std::stringstream ss(s);
  std::string line;
  while (std::getline(ss, line)) {
    lines.push_back(line);
  }
  return lines;
}

// A unified-style line diff (LCS based; goldens are small).
std::string Diff(const std::string& expected, const std::string& actual) {
  std::vector<std::string> a = SplitLines(expected), b = SplitLines(actual);
  std::vector<std::vector<int>> lcs(a.size() + 1, std::vector<int>(b.size() + 1, 0));
  for (size_t i = a.size(); i-- > 0;) {
    for (size_t j = b.size(); j-- > 0;) {
      lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  std::string out;
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    if (i < a.size() && j < b.size() && a[i] == b[j]) {
      out += "  " + a[i] + "\n";
      ++i;
      ++j;
    } else if (j < b.size() && (i == a.size() || lcs[i][j + 1] >= lcs[i + 1][j])) {
      out += "+ " + b[j++] + "\n";
    } else {
      out += "- " + a[i++] + "\n";
    }
  }
  return out;
}

// The constant expressions of a directive's value list, evaluated.
absl::StatusOr<std::vector<Value>> ParseValues(std::string_view list, const SourceDef& source) {
  absl::StatusOr<std::unique_ptr<AstExpr>> call =
      Parser::ParseExpression("VALUES_(" + std::string(list) + ")");
  if (!call.ok()) {
    return call.status();
  }
  std::vector<Value> values;
  std::vector<AggregateCall> no_aggregates;
  for (const auto& item : (*call)->children) {
    ExprBinder binder(source, &no_aggregates);
    absl::StatusOr<std::unique_ptr<Expr>> e = binder.BindRow(*item, "a golden value");
    if (!e.ok()) {
      return e.status();
    }
    values.push_back(ExprEvaluator(**e).EvaluateRow({}));
  }
  return values;
}

std::string EvaluateLine(std::string_view label, const Expr& expr, std::span<const Value> in) {
  return fmt::format("  {}: {}\n", label, ExprEvaluator(expr).EvaluateRow(in).ToJson());
}

// The output of the @row / @eval directives in `script` (see the top of this file).
std::string EvaluateDirectives(const std::string& script, const Catalog& catalog) {
  std::string out;
  for (const std::string& line : SplitLines(script)) {
    const bool row = line.starts_with("-- @row ");
    if (!row && !line.starts_with("-- @eval ")) {
      continue;
    }
    std::string_view rest = std::string_view(line).substr(row ? 8 : 9);
    size_t colon = rest.find(':');
    const ViewDef* view =
        colon == std::string_view::npos ? nullptr : catalog.FindView(Trim(rest.substr(0, colon)));
    const SourceDef* source = view == nullptr ? nullptr : catalog.FindSource(view->source);
    if (source == nullptr) {
      out += "BAD DIRECTIVE (expected -- @row|@eval VIEW: values): " + line + "\n";
      continue;
    }
    std::string_view list = Trim(rest.substr(colon + 1));
    out += fmt::format("{} {} ({})\n", row ? "@row" : "@eval", view->name, list);
    absl::StatusOr<std::vector<Value>> values = ParseValues(list, *source);
    if (!values.ok()) {
      out += "  BAD VALUES: " + StatusMessage(values.status()) + "\n";
      continue;
    }
    if (!row) {
      for (const FeatureColumn& f : view->features) {
        out += EvaluateLine(f.name, *f.expr, *values);
      }
      continue;
    }
    if (view->where) {
      out += EvaluateLine("WHERE", *view->where, *values);
    }
    for (size_t i = 0; i < view->keys.size(); ++i) {
      out += EvaluateLine("key " + view->key_names[i], *view->keys[i], *values);
    }
    for (size_t i = 0; i < view->aggregates.size(); ++i) {
      const AggregateCall& a = view->aggregates[i];
      if (a.arg) {
        out += EvaluateLine(fmt::format("${} {} argument", i, a.text), *a.arg, *values);
      }
    }
  }
  return out;
}

std::vector<fs::path> Cases() {
  std::vector<fs::path> cases;
  for (const auto& entry : fs::directory_iterator(TESSERA_SQL_TESTDATA_DIR)) {
    if (entry.path().extension() == ".sql") {
      cases.push_back(entry.path());
    }
  }
  std::sort(cases.begin(), cases.end());
  return cases;
}

TEST(SqlGoldenTest, HasEnoughCases) {
  std::vector<fs::path> cases = Cases();
  size_t errors = std::count_if(cases.begin(), cases.end(), [](const fs::path& p) {
    return p.filename().string().starts_with("err_");
  });
  EXPECT_GE(cases.size(), 25u);
  EXPECT_GE(errors, 12u);
}

TEST(SqlGoldenTest, MatchesExpectedOutput) {
  const char* update_env = std::getenv("TESSERA_UPDATE_GOLDEN");
  bool update = update_env != nullptr && std::string(update_env) == "1";
  for (const fs::path& sql_path : Cases()) {
    SCOPED_TRACE(sql_path.filename().string());
    const std::string script = ReadFile(sql_path);
    absl::StatusOr<Catalog> catalog = ParseCatalog(script);
    std::string actual = Render(catalog);
    if (catalog.ok()) {
      actual += EvaluateDirectives(script, *catalog);
    }
    fs::path out_path = sql_path;
    out_path.replace_extension(".out");
    if (update) {
      std::ofstream(out_path, std::ios::binary) << actual;
      continue;
    }
    ASSERT_TRUE(fs::exists(out_path))
        << out_path << " is missing; run with TESSERA_UPDATE_GOLDEN=1 to create it. Output:\n"
        << actual;
    std::string expected = ReadFile(out_path);
    EXPECT_EQ(expected, actual) << "diff (- expected, + actual):\n" << Diff(expected, actual);
    bool expect_error = sql_path.filename().string().starts_with("err_");
    EXPECT_EQ(expect_error, !catalog.ok());
  }
}

TEST(SqlGoldenTest, StoredStatementsReparseToTheSamePlan) {
  for (const fs::path& sql_path : Cases()) {
    SCOPED_TRACE(sql_path.filename().string());
    absl::StatusOr<Catalog> catalog = ParseCatalog(ReadFile(sql_path));
    if (!catalog.ok()) {
      continue;
    }
    Catalog reparsed;
    for (const SourceDef& s : catalog->sources) {
      ASSERT_TRUE(AddStatements(s.sql, &reparsed).ok()) << s.sql;
    }
    for (const ViewDef& v : catalog->views) {
      ASSERT_TRUE(AddStatements(v.sql, &reparsed).ok()) << v.sql;
    }
    EXPECT_EQ(ExplainCatalog(*catalog), ExplainCatalog(reparsed));
  }
}

}  // namespace
}  // namespace tessera::sql
