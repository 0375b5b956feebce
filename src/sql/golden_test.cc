// SQL golden tests: every testdata/NAME.sql is parsed with ParseCatalog and the result (the
// Explain() of each source and view, or "ERROR: <message>") is compared with testdata/NAME.out.
// Set TESSERA_UPDATE_GOLDEN=1 to rewrite the .out files from the current output.
//
// Each successful case is also round-tripped: re-parsing the stored statement texts
// (SourceDef::sql / ViewDef::sql), as the persisted catalog does, must give the same plan.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/errors.h"
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
    absl::StatusOr<Catalog> catalog = ParseCatalog(ReadFile(sql_path));
    std::string actual = Render(catalog);
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
