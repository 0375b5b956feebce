#include "sql/binder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/errors.h"
#include "sql/plan.h"

namespace tessera::sql {
namespace {

using ::testing::HasSubstr;

constexpr char kSource[] =
    "CREATE SOURCE plays (user_id STRING, track_id STRING, ms BIGINT, skipped BOOLEAN, "
    "ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' HOUR) "
    "WITH (Connector = 'kafka', topic = 'plays');";

std::string Error(std::string_view script) {
  absl::StatusOr<Catalog> c = ParseCatalog(script);
  return c.ok() ? "OK" : StatusMessage(c.status());
}

std::string ViewError(std::string_view view) {
  return Error(std::string(kSource) + std::string(view));
}

TEST(BinderTest, SourceDefinition) {
  absl::StatusOr<Catalog> c = ParseCatalog(kSource);
  ASSERT_TRUE(c.ok()) << c.status();
  const SourceDef* s = c->FindSource("PLAYS");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->name, "plays");
  EXPECT_EQ(s->columns.size(), 5u);
  EXPECT_EQ(s->time_column, 4);
  EXPECT_EQ(s->lateness_ms, 3600000);
  EXPECT_EQ(s->FindColumn("MS"), 2);
  EXPECT_EQ(s->FindColumn("nope"), -1);
  ASSERT_EQ(s->options.size(), 2u);
  EXPECT_EQ(s->options[0], (std::pair<std::string, std::string>("connector", "kafka")));
  EXPECT_EQ(s->sql, std::string(kSource, sizeof(kSource) - 2));  // without the ';'
}

TEST(BinderTest, DefaultEventTimeAndLateness) {
  absl::StatusOr<Catalog> c = ParseCatalog("CREATE SOURCE s (a BIGINT, t TIMESTAMP, b STRING)");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->sources[0].time_column, 1);
  EXPECT_EQ(c->sources[0].lateness_ms, kDefaultLatenessMs);
  c = ParseCatalog(
      "CREATE SOURCE s (a TIMESTAMP, t TIMESTAMP, WATERMARK FOR t AS t - INTERVAL '2' DAYS)");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->sources[0].time_column, 1);
  EXPECT_EQ(c->sources[0].lateness_ms, 2 * 86400000);
}

TEST(BinderTest, SourceErrors) {
  EXPECT_THAT(Error("CREATE SOURCE s (a BIGINT, A STRING, t TIMESTAMP)"),
              HasSubstr("line 1, column 28: duplicate column 'A'"));
  EXPECT_THAT(Error("CREATE SOURCE s (a BIGINT, WATERMARK FOR a AS a)"),
              HasSubstr("WATERMARK column 'a' is BIGINT, expected a TIMESTAMP column"));
  EXPECT_THAT(Error("CREATE SOURCE s (t TIMESTAMP, WATERMARK FOR x AS x)"),
              HasSubstr("unknown column 'x' in WATERMARK FOR, expected one of: t"));
  EXPECT_THAT(Error("CREATE SOURCE s (t TIMESTAMP, u TIMESTAMP, WATERMARK FOR t AS u)"),
              HasSubstr("expected the same column"));
  EXPECT_THAT(Error("CREATE SOURCE s (t TIMESTAMP) WITH (a = 'x', A = 'y')"),
              HasSubstr("duplicate option 'a'"));
  EXPECT_THAT(Error("CREATE SOURCE s (t TIMESTAMP); CREATE SOURCE S (t TIMESTAMP)"),
              HasSubstr("source 'S' already exists"));
}

TEST(BinderTest, ViewPlan) {
  absl::StatusOr<Catalog> c = ParseCatalog(
      std::string(kSource) +
      "CREATE FEATURE VIEW v WITH (tile = '15m') AS SELECT user_id AS u, COUNT(*) AS n, "
      "SUM(ms) / COUNT(*), count(*) + 1 AS n1, LAST_K(track_id, 3) AS recent "
      "FROM plays WHERE NOT skipped GROUP BY user_id");
  ASSERT_TRUE(c.ok()) << c.status();
  const ViewDef* v = c->FindView("V");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->source, "plays");
  EXPECT_EQ(v->tile_ms, 15 * 60000);
  EXPECT_EQ(v->key_names, std::vector<std::string>{"u"});
  ASSERT_EQ(v->keys.size(), 1u);
  EXPECT_EQ(v->keys[0]->kind, Expr::Kind::kColumn);
  EXPECT_EQ(v->keys[0]->index, 0);
  ASSERT_TRUE(v->where != nullptr);
  EXPECT_EQ(v->where->type, DataType::kBool);
  // COUNT(*) appears three times but has one slot.
  ASSERT_EQ(v->aggregates.size(), 3u);
  EXPECT_EQ(v->aggregates[0].kind, agg::AggKind::kCountStar);
  EXPECT_EQ(v->aggregates[0].arg, nullptr);
  EXPECT_EQ(v->aggregates[1].text, "SUM(ms)");
  EXPECT_EQ(v->aggregates[1].arg->index, 2);
  EXPECT_EQ(v->aggregates[2].kind, agg::AggKind::kLastK);
  EXPECT_EQ(v->aggregates[2].params.k, 3);
  EXPECT_EQ(v->aggregates[2].result_type, DataType::kList);
  ASSERT_EQ(v->features.size(), 4u);
  EXPECT_EQ(v->features[0].name, "n");
  EXPECT_EQ(v->features[0].expr->kind, Expr::Kind::kAggRef);
  EXPECT_EQ(v->features[0].expr->index, 0);
  EXPECT_EQ(v->features[1].name, "sum_ms_count_star");
  EXPECT_EQ(v->features[1].type, DataType::kDouble);
  EXPECT_EQ(v->features[2].type, DataType::kInt64);
  EXPECT_EQ(v->features[3].type, DataType::kList);
}

TEST(BinderTest, DerivedNames) {
  EXPECT_EQ(Binder::DerivedName("COUNT(*)"), "count_star");
  EXPECT_EQ(Binder::DerivedName("SUM(ms_played)"), "sum_ms_played");
  EXPECT_EQ(Binder::DerivedName("SUM(a) / COUNT(*)"), "sum_a_count_star");
  EXPECT_EQ(Binder::DerivedName("APPROX_PERCENTILE(x, 0.5)"), "approx_percentile_x_0_5");
  EXPECT_EQ(Binder::DerivedName("\"User Id\""), "user_id");
  EXPECT_EQ(Binder::DerivedName("1 + COUNT(*)"), "expr_1_count_star");
  EXPECT_EQ(Binder::DerivedName("'' || ''"), "expr");
}

TEST(BinderTest, Tiles) {
  for (const char* ok : {"1m", "5m", "10m", "15m", "30m", "1h", "90s", "1s"}) {
    EXPECT_EQ(ViewError(std::string("CREATE FEATURE VIEW v WITH (tile = '") + ok +
                        "') AS SELECT user_id, COUNT(*) FROM plays GROUP BY user_id"),
              "OK")
        << ok;
  }
  for (const char* bad : {"7m", "2h", "1d", "500ms", "0m", "-5m"}) {
    EXPECT_THAT(ViewError(std::string("CREATE FEATURE VIEW v WITH (tile = '") + bad +
                          "') AS SELECT user_id, COUNT(*) FROM plays GROUP BY user_id"),
                HasSubstr("tile"))
        << bad;
  }
  EXPECT_THAT(ViewError("CREATE FEATURE VIEW v WITH (ttl = '1d') AS SELECT user_id, COUNT(*) "
                        "FROM plays GROUP BY user_id"),
              HasSubstr("unknown view option 'ttl', expected tile"));
}

TEST(BinderTest, ViewErrors) {
  EXPECT_THAT(ViewError("CREATE FEATURE VIEW v AS SELECT user_id FROM plays GROUP BY user_id"),
              HasSubstr("view 'v' has no aggregates"));
  EXPECT_THAT(ViewError("CREATE FEATURE VIEW v AS SELECT user_id, user_id, COUNT(*) FROM plays "
                        "GROUP BY user_id"),
              HasSubstr("selected twice"));
  EXPECT_THAT(ViewError("CREATE FEATURE VIEW v AS SELECT COUNT(*) FROM plays "
                        "GROUP BY user_id, USER_ID"),
              HasSubstr("duplicate GROUP BY key 'user_id'"));
  EXPECT_THAT(ViewError("CREATE FEATURE VIEW v AS SELECT COUNT(*) FROM plays GROUP BY 1"),
              HasSubstr("GROUP BY 1 is a constant"));
  EXPECT_THAT(ViewError("CREATE FEATURE VIEW v AS SELECT COUNT(*) FROM plays GROUP BY COUNT(*)"),
              HasSubstr("aggregate COUNT is not allowed in GROUP BY"));
  EXPECT_THAT(ViewError("CREATE FEATURE VIEW v AS SELECT ms + 1, COUNT(*) FROM plays "
                        "GROUP BY user_id"),
              HasSubstr("'ms + 1' is neither a GROUP BY key nor an aggregate expression"));
  EXPECT_THAT(ViewError("CREATE FEATURE VIEW v AS SELECT user_id || 'x', COUNT(*) FROM plays "
                        "GROUP BY user_id"),
              HasSubstr("neither a GROUP BY key"));
  EXPECT_THAT(ViewError("CREATE FEATURE VIEW v AS SELECT COUNT(*) || user_id FROM plays "
                        "GROUP BY user_id"),
              HasSubstr("GROUP BY key 'user_id' cannot be used in an expression with aggregates"));
  EXPECT_THAT(ViewError("CREATE FEATURE VIEW v AS SELECT SUM(DISTINCT ms) FROM plays "
                        "GROUP BY user_id"),
              HasSubstr("DISTINCT is not supported in SUM"));
  EXPECT_THAT(ViewError("CREATE FEATURE VIEW v AS SELECT SUM(*) FROM plays GROUP BY user_id"),
              HasSubstr("'*' is not an argument of SUM"));
  EXPECT_THAT(ViewError("CREATE FEATURE VIEW v AS SELECT SUM(ms, 2) FROM plays GROUP BY user_id"),
              HasSubstr("SUM takes 1 argument, got 2, expected SUM(x)"));
  EXPECT_THAT(ViewError("CREATE FEATURE VIEW v AS SELECT COUNT() FROM plays GROUP BY user_id"),
              HasSubstr("expected COUNT(x) or COUNT(*)"));
  EXPECT_THAT(ViewError("CREATE FEATURE VIEW v AS SELECT TOP_K(track_id, 0) FROM plays "
                        "GROUP BY user_id"),
              HasSubstr("TOP_K k must be between 1 and 1000, got 0"));
  EXPECT_THAT(ViewError("CREATE FEATURE VIEW v AS SELECT APPROX_PERCENTILE(ms, 2) FROM plays "
                        "GROUP BY user_id"),
              HasSubstr("quantile must be between 0 and 1"));
  EXPECT_THAT(ViewError("CREATE FEATURE VIEW v AS SELECT APPROX_PERCENTILE(ms, 'x') FROM plays "
                        "GROUP BY user_id"),
              HasSubstr("the quantile of APPROX_PERCENTILE must be a numeric literal"));
  EXPECT_THAT(ViewError("CREATE FEATURE VIEW v AS SELECT TOP_K(track_id, 3) + 1 FROM plays "
                        "GROUP BY user_id"),
              HasSubstr("TOP_K returns a LIST and cannot be used inside an expression"));
  EXPECT_THAT(ViewError("CREATE FEATURE VIEW v AS SELECT SUM(NULL) FROM plays GROUP BY user_id"),
              HasSubstr("SUM needs a typed argument"));
  EXPECT_THAT(ViewError("CREATE FEATURE VIEW v AS SELECT COUNT(*) AS user_id FROM plays "
                        "GROUP BY user_id"),
              HasSubstr("duplicate output name 'user_id'"));
  EXPECT_THAT(ViewError("CREATE FEATURE VIEW v AS SELECT user_id, COUNT(*) FROM plays "
                        "GROUP BY user_id; CREATE FEATURE VIEW V AS SELECT user_id, COUNT(*) "
                        "FROM plays GROUP BY user_id"),
              HasSubstr("view 'V' already exists"));
  EXPECT_EQ(Error("CREATE FEATURE VIEW v AS SELECT k, COUNT(*) FROM s GROUP BY k"),
            "line 1, column 50: unknown source 's', expected a source defined by an earlier "
            "CREATE SOURCE");
}

TEST(BinderTest, WhereNullAndCountOfAnyType) {
  absl::StatusOr<Catalog> c = ParseCatalog(
      std::string(kSource) +
      "CREATE FEATURE VIEW v AS SELECT user_id, COUNT(skipped), MIN(ts), MAX(track_id) "
      "FROM plays WHERE NULL GROUP BY user_id");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->views[0].where->type, DataType::kBool);
  EXPECT_EQ(c->views[0].features[1].type, DataType::kTimestamp);
}

TEST(BinderTest, AddStatementsIsAtomicAndSeesEarlierSources) {
  Catalog catalog;
  ASSERT_TRUE(AddStatements(kSource, &catalog).ok());
  absl::Status s = AddStatements(
      "CREATE FEATURE VIEW ok AS SELECT user_id, COUNT(*) FROM plays GROUP BY user_id;"
      "CREATE FEATURE VIEW bad AS SELECT user_id, COUNT(*) FROM nowhere GROUP BY user_id",
      &catalog);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(catalog.views.size(), 0u);
  EXPECT_EQ(catalog.sources.size(), 1u);
  ASSERT_TRUE(AddStatements(
                  "CREATE FEATURE VIEW ok AS SELECT user_id, COUNT(*) FROM plays GROUP BY user_id",
                  &catalog)
                  .ok());
  EXPECT_EQ(catalog.views.size(), 1u);
  EXPECT_EQ(catalog.FindView("missing"), nullptr);
}

}  // namespace
}  // namespace tessera::sql
