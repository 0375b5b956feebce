#include "sql/binder.h"

#include <fmt/format.h>

#include <utility>

#include "common/errors.h"
#include "common/time_util.h"
#include "sql/expr_binder.h"

namespace tessera::sql {
namespace {

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) {
    if (!out.empty()) {
      out += ", ";
    }
    out += n;
  }
  return out;
}

absl::Status CheckDuplicateOptions(const std::vector<AstOption>& options) {
  for (size_t i = 0; i < options.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (options[i].key == options[j].key) {
        return ErrorAt(options[i].pos, "duplicate option '{}', expected each option once",
                       options[i].key);
      }
    }
  }
  return absl::OkStatus();
}

std::vector<std::pair<std::string, std::string>> OptionPairs(
    const std::vector<AstOption>& options) {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(options.size());
  for (const AstOption& o : options) {
    out.emplace_back(o.key, o.value);
  }
  return out;
}

}  // namespace

std::string Binder::DerivedName(std::string_view text) {
  std::string s;
  for (size_t i = 0; i < text.size();) {
    if (text.substr(i, 8) == "COUNT(*)") {
      s += " count_star ";
      i += 8;
    } else {
      s.push_back(AsciiLower(text[i]));
      ++i;
    }
  }
  std::string out;
  bool pending_sep = false;
  for (char c : s) {
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && c != '_') {
      pending_sep = true;
      continue;
    }
    if (pending_sep && !out.empty() && out.back() != '_') {
      out.push_back('_');
    }
    pending_sep = false;
    out.push_back(c);
  }
  while (!out.empty() && out.back() == '_') {
    out.pop_back();
  }
  size_t lead = 0;
  while (lead < out.size() && out[lead] == '_') {
    ++lead;
  }
  out.erase(0, lead);
  if (out.empty() || (out[0] >= '0' && out[0] <= '9')) {
    out = "expr_" + out;
  }
  if (out == "expr_") {
    out = "expr";
  }
  return out;
}

absl::StatusOr<SourceDef> Binder::BindSource(const AstStatement& stmt) const {
  const AstSource& ast = stmt.source;
  SourceDef def;
  def.name = ast.name;
  def.sql = stmt.sql;
  for (const AstColumnDef& col : ast.columns) {
    if (def.FindColumn(col.name) >= 0) {
      return ErrorAt(col.pos, "duplicate column '{}' in source '{}', expected unique column names",
                     col.name, ast.name);
    }
    def.columns.push_back(ColumnDef{col.name, col.type});
  }
  if (def.columns.empty()) {
    return ErrorAt(ast.pos, "source '{}' has no columns, expected at least a TIMESTAMP column",
                   ast.name);
  }
  if (ast.watermark.present) {
    const AstWatermark& wm = ast.watermark;
    int index = def.FindColumn(wm.column);
    if (index < 0) {
      std::vector<std::string> names;
      for (const ColumnDef& c : def.columns) {
        names.push_back(c.name);
      }
      return ErrorAt(wm.pos, "unknown column '{}' in WATERMARK FOR, expected one of: {}", wm.column,
                     JoinNames(names));
    }
    const ColumnDef& col = def.columns[static_cast<size_t>(index)];
    if (col.type != DataType::kTimestamp) {
      return ErrorAt(wm.pos, "WATERMARK column '{}' is {}, expected a TIMESTAMP column", col.name,
                     DataTypeName(col.type));
    }
    if (!EqualsIgnoreCase(wm.of_column, wm.column)) {
      return ErrorAt(wm.of_pos,
                     "WATERMARK FOR {} AS {}: expected the same column, as in {} - INTERVAL '5' "
                     "MINUTE",
                     wm.column, wm.of_column, col.name);
    }
    def.time_column = index;
    def.lateness_ms = wm.lateness_ms;
  } else {
    std::vector<std::string> timestamps;
    for (size_t i = 0; i < def.columns.size(); ++i) {
      if (def.columns[i].type == DataType::kTimestamp) {
        timestamps.push_back(def.columns[i].name);
        def.time_column = static_cast<int>(i);
      }
    }
    if (timestamps.empty()) {
      return ErrorAt(ast.pos,
                     "source '{}' has no TIMESTAMP column, expected one TIMESTAMP column for the "
                     "event time",
                     ast.name);
    }
    if (timestamps.size() > 1) {
      return ErrorAt(ast.pos,
                     "source '{}' has several TIMESTAMP columns ({}), expected a WATERMARK FOR "
                     "clause naming the event-time column",
                     ast.name, JoinNames(timestamps));
    }
    def.lateness_ms = kDefaultLatenessMs;
  }
  if (absl::Status s = CheckDuplicateOptions(ast.options); !s.ok()) {
    return s;
  }
  for (const AstOption& opt : ast.options) {
    if (opt.key != "max-future") continue;
    if (EqualsIgnoreCase(opt.value, "off")) {
      def.max_future_ms = kNoFutureBound;
      continue;
    }
    absl::StatusOr<int64_t> ms = ParseDurationMillis(opt.value);
    if (!ms.ok()) {
      return ErrorAt(opt.pos,
                     "invalid 'max-future' '{}', expected a duration such as 5m or 1d, or 'off'",
                     opt.value);
    }
    def.max_future_ms = *ms;
  }
  def.options = OptionPairs(ast.options);
  return def;
}

absl::StatusOr<ViewDef> Binder::BindView(const AstStatement& stmt) const {
  const AstView& ast = stmt.view;
  ViewDef def;
  def.name = ast.name;
  def.sql = stmt.sql;

  if (absl::Status s = CheckDuplicateOptions(ast.options); !s.ok()) {
    return s;
  }
  for (const AstOption& opt : ast.options) {
    if (opt.key != "tile") {
      return ErrorAt(opt.pos, "unknown view option '{}', expected tile", opt.key);
    }
    absl::StatusOr<int64_t> tile = ParseDurationMillis(opt.value);
    if (!tile.ok()) {
      return ErrorAt(opt.pos,
                     "invalid tile '{}', expected a duration such as 1m, 5m, 15m or 1h (a positive "
                     "integer followed by s, m or h)",
                     opt.value);
    }
    if (*tile % kMillisPerSecond != 0 || kMillisPerHour % *tile != 0) {
      return ErrorAt(opt.pos,
                     "tile '{}' does not divide 1 hour evenly, expected a whole number of seconds "
                     "dividing 1h such as 1m, 5m, 10m, 15m, 30m or 1h",
                     opt.value);
    }
    def.tile_ms = *tile;
  }
  def.options = OptionPairs(ast.options);

  const SourceDef* source = lookup_(ast.from);
  if (source == nullptr) {
    if (source_names_.empty()) {
      return ErrorAt(ast.from_pos,
                     "unknown source '{}', expected a source defined by an earlier CREATE SOURCE",
                     ast.from);
    }
    return ErrorAt(ast.from_pos, "unknown source '{}', expected one of: {}", ast.from,
                   JoinNames(source_names_));
  }
  def.source = source->name;

  ExprBinder binder(*source, &def.aggregates);
  binder.set_tile_ms(def.tile_ms);
  if (ast.where) {
    absl::StatusOr<std::unique_ptr<Expr>> where = binder.BindRow(*ast.where, "WHERE");
    if (!where.ok()) {
      return where.status();
    }
    if ((*where)->type == DataType::kNull && (*where)->kind == Expr::Kind::kLiteral) {
      (*where)->type = DataType::kBool;
      (*where)->literal = Value::Null(DataType::kBool);
    }
    if ((*where)->type != DataType::kBool) {
      return ErrorAt(ast.where->start, "WHERE condition is {}, expected a BOOLEAN condition",
                     DataTypeName((*where)->type));
    }
    def.where = std::move(*where);
  }

  std::vector<std::string> key_texts;
  for (const auto& key_ast : ast.group_by) {
    if (key_ast->kind == AstExpr::Kind::kLiteral) {
      return ErrorAt(key_ast->start,
                     "GROUP BY {} is a constant, expected a column or an expression over columns",
                     key_ast->literal.ToString());
    }
    absl::StatusOr<std::unique_ptr<Expr>> key = binder.BindRow(*key_ast, "GROUP BY");
    if (!key.ok()) {
      return key.status();
    }
    if ((*key)->type == DataType::kNull) {
      return ErrorAt(key_ast->start, "GROUP BY key has no type, expected a typed expression");
    }
    std::string text = (*key)->ToString();
    for (const std::string& t : key_texts) {
      if (t == text) {
        return ErrorAt(key_ast->start, "duplicate GROUP BY key '{}', expected each key once", text);
      }
    }
    key_texts.push_back(text);
    def.keys.push_back(std::move(*key));
  }
  binder.set_key_texts(key_texts);
  def.key_names.assign(def.keys.size(), std::string());

  // Output names with where they were given, for duplicate errors.
  struct Output {
    std::string name;
    Pos pos;
  };
  std::vector<Output> outputs;
  std::vector<bool> key_selected(def.keys.size(), false);
  for (const AstSelectItem& item : ast.items) {
    Pos pos = item.alias.empty() ? item.expr->start : item.alias_pos;
    if (ExprBinder::ContainsAggregate(*item.expr)) {
      absl::StatusOr<std::unique_ptr<Expr>> expr = binder.BindPostAggregate(*item.expr);
      if (!expr.ok()) {
        return expr.status();
      }
      FeatureColumn feature;
      feature.name = item.alias.empty() ? DerivedName((*expr)->ToString()) : item.alias;
      feature.type = (*expr)->type;
      feature.expr = std::move(*expr);
      outputs.push_back(Output{feature.name, pos});
      def.features.push_back(std::move(feature));
      continue;
    }
    absl::StatusOr<std::unique_ptr<Expr>> expr = binder.BindRow(*item.expr, "SELECT");
    if (!expr.ok()) {
      return expr.status();
    }
    std::string text = (*expr)->ToString();
    size_t k = 0;
    while (k < key_texts.size() && key_texts[k] != text) {
      ++k;
    }
    if (k == key_texts.size()) {
      if ((*expr)->kind == Expr::Kind::kColumn) {
        return ErrorAt(item.expr->start,
                       "column '{}' must appear in GROUP BY or inside an aggregate, expected a "
                       "GROUP BY key or an aggregate such as MAX({})",
                       (*expr)->name, text);
      }
      return ErrorAt(item.expr->start,
                     "'{}' is neither a GROUP BY key nor an aggregate expression, expected a "
                     "GROUP BY key or an expression with aggregates",
                     text);
    }
    if (key_selected[k]) {
      return ErrorAt(item.expr->start, "GROUP BY key '{}' is selected twice, expected it once",
                     text);
    }
    key_selected[k] = true;
    if (!item.alias.empty()) {
      def.key_names[k] = item.alias;
    } else if ((*expr)->kind == Expr::Kind::kColumn) {
      def.key_names[k] = (*expr)->name;
    } else {
      def.key_names[k] = DerivedName(text);
    }
    outputs.push_back(Output{def.key_names[k], pos});
  }
  for (size_t k = 0; k < def.keys.size(); ++k) {
    if (key_selected[k]) {
      continue;
    }
    const Expr& key = *def.keys[k];
    def.key_names[k] = key.kind == Expr::Kind::kColumn ? key.name : DerivedName(key_texts[k]);
    outputs.push_back(Output{def.key_names[k], ast.group_by[k]->start});
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (EqualsIgnoreCase(outputs[i].name, outputs[j].name)) {
        return ErrorAt(outputs[i].pos,
                       "duplicate output name '{}', expected unique names (rename with AS)",
                       outputs[i].name);
      }
    }
  }
  if (def.aggregates.empty()) {
    return ErrorAt(ast.pos,
                   "view '{}' has no aggregates, expected at least one aggregate such as "
                   "COUNT(*) in SELECT",
                   ast.name);
  }
  return def;
}

}  // namespace tessera::sql
