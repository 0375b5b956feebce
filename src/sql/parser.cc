#include "sql/parser.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <system_error>
#include <utility>

#include "common/time_util.h"

namespace tessera::sql {
namespace {

// Bounds the recursion of the parser; restores the depth on scope exit.
class DepthGuard {
 public:
  explicit DepthGuard(int* depth) : depth_(depth) { ++*depth_; }
  ~DepthGuard() { --*depth_; }
  DepthGuard(const DepthGuard&) = delete;
  DepthGuard& operator=(const DepthGuard&) = delete;
  bool exceeded() const { return *depth_ > Parser::kMaxExprHeight; }

 private:
  int* depth_;
};

std::unique_ptr<AstExpr> NewNode(AstExpr::Kind kind, Pos pos) {
  auto e = std::make_unique<AstExpr>();
  e->kind = kind;
  e->pos = pos;
  e->start = pos;
  return e;
}

bool IsComparison(const Token& t) {
  if (t.kind != TokenKind::kSymbol) {
    return false;
  }
  return t.text == "=" || t.text == "<>" || t.text == "!=" || t.text == "<" || t.text == "<=" ||
         t.text == ">" || t.text == ">=";
}

}  // namespace

const Token& Parser::Peek(size_t ahead) const {
  size_t i = next_ + ahead;
  return i < tokens_.size() ? tokens_[i] : tokens_.back();
}

const Token& Parser::Advance() {
  const Token& t = Peek();
  if (next_ + 1 < tokens_.size()) {
    ++next_;
  }
  return t;
}

bool Parser::AcceptKeyword(std::string_view keyword) {
  if (!Peek().IsKeyword(keyword)) {
    return false;
  }
  Advance();
  return true;
}

bool Parser::AcceptSymbol(std::string_view symbol) {
  if (!Peek().IsSymbol(symbol)) {
    return false;
  }
  Advance();
  return true;
}

absl::Status Parser::Unexpected(std::string_view expected) const {
  return ErrorAt(Peek().pos, "unexpected {}, expected {}", Peek().Describe(), expected);
}

absl::Status Parser::ExpectKeyword(std::string_view keyword) {
  if (AcceptKeyword(keyword)) {
    return absl::OkStatus();
  }
  return Unexpected(keyword);
}

absl::Status Parser::ExpectSymbol(std::string_view symbol) {
  if (AcceptSymbol(symbol)) {
    return absl::OkStatus();
  }
  return Unexpected(fmt::format("'{}'", symbol));
}

absl::StatusOr<std::unique_ptr<AstExpr>> Parser::Finish(std::unique_ptr<AstExpr> node) {
  int height = 1;
  for (const auto& c : node->children) {
    height = std::max(height, c->height + 1);
  }
  node->height = height;
  node->start = node->pos;
  if (!node->children.empty()) {
    Pos first = node->children[0]->start;
    if (first.line < node->pos.line ||
        (first.line == node->pos.line && first.column < node->pos.column)) {
      node->start = first;
    }
  }
  if (height > kMaxExprHeight) {
    return ErrorAt(node->pos, "expression is nested too deeply, expected at most {} levels",
                   kMaxExprHeight);
  }
  return node;
}

absl::StatusOr<std::vector<AstStatement>> Parser::ParseScript(std::string_view script) {
  Lexer lexer(script);
  absl::StatusOr<std::vector<Token>> tokens = lexer.Tokenize();
  if (!tokens.ok()) {
    return tokens.status();
  }
  Parser parser(script, std::move(*tokens));
  std::vector<AstStatement> statements;
  while (true) {
    while (parser.AcceptSymbol(";")) {
    }
    if (parser.Peek().kind == TokenKind::kEnd) {
      break;
    }
    AstStatement stmt;
    size_t first = parser.next_;
    if (absl::Status s = parser.ParseStatement(&stmt); !s.ok()) {
      return s;
    }
    const Token& last = parser.tokens_[parser.next_ - 1];
    size_t begin = parser.tokens_[first].begin;
    stmt.sql = std::string(script.substr(begin, last.end - begin));
    statements.push_back(std::move(stmt));
    if (parser.Peek().kind == TokenKind::kEnd) {
      break;
    }
    if (!parser.AcceptSymbol(";")) {
      return parser.Unexpected("';' or end of input");
    }
  }
  return statements;
}

absl::StatusOr<std::unique_ptr<AstExpr>> Parser::ParseExpression(std::string_view text) {
  Lexer lexer(text);
  absl::StatusOr<std::vector<Token>> tokens = lexer.Tokenize();
  if (!tokens.ok()) {
    return tokens.status();
  }
  Parser parser(text, std::move(*tokens));
  absl::StatusOr<std::unique_ptr<AstExpr>> e = parser.ParseExpr();
  if (!e.ok()) {
    return e.status();
  }
  if (parser.Peek().kind != TokenKind::kEnd) {
    return parser.Unexpected("end of expression");
  }
  return e;
}

absl::Status Parser::ParseStatement(AstStatement* stmt) {
  stmt->pos = Peek().pos;
  if (!AcceptKeyword("CREATE")) {
    return Unexpected("CREATE SOURCE or CREATE FEATURE VIEW");
  }
  if (AcceptKeyword("SOURCE")) {
    stmt->kind = AstStatement::Kind::kSource;
    return ParseSource(&stmt->source);
  }
  if (AcceptKeyword("FEATURE")) {
    if (absl::Status s = ExpectKeyword("VIEW"); !s.ok()) {
      return s;
    }
    stmt->kind = AstStatement::Kind::kView;
    return ParseView(&stmt->view);
  }
  return Unexpected("SOURCE or FEATURE VIEW after CREATE");
}

absl::StatusOr<std::string> Parser::ParseName(std::string_view what, Pos* pos) {
  const Token& t = Peek();
  if (pos != nullptr) {
    *pos = t.pos;
  }
  if (t.kind == TokenKind::kQuotedIdent) {
    return Advance().text;
  }
  if (t.kind == TokenKind::kIdent) {
    if (IsReservedWord(t.text)) {
      return ErrorAt(t.pos,
                     "'{}' is a reserved word, expected {} (double-quote it to use it "
                     "as a name)",
                     t.text, what);
    }
    return Advance().text;
  }
  return Unexpected(what);
}

absl::StatusOr<DataType> Parser::ParseType() {
  const Token& t = Peek();
  if (t.kind != TokenKind::kIdent) {
    return Unexpected("a type");
  }
  std::string name = ToUpperAscii(t.text);
  Pos pos = t.pos;
  DataType type = DataType::kNull;
  if (name == "STRING" || name == "VARCHAR" || name == "TEXT" || name == "CHAR") {
    type = DataType::kString;
  } else if (name == "BIGINT" || name == "INT" || name == "INTEGER" || name == "LONG") {
    type = DataType::kInt64;
  } else if (name == "DOUBLE" || name == "FLOAT" || name == "REAL") {
    type = DataType::kDouble;
  } else if (name == "BOOLEAN" || name == "BOOL") {
    type = DataType::kBool;
  } else if (name == "TIMESTAMP") {
    type = DataType::kTimestamp;
  } else {
    return ErrorAt(pos, "unknown type '{}', expected STRING, BIGINT, DOUBLE, BOOLEAN or TIMESTAMP",
                   t.text);
  }
  Advance();
  if (type == DataType::kDouble && name == "DOUBLE") {
    AcceptKeyword("PRECISION");
  }
  // Length / precision arguments such as VARCHAR(255) or TIMESTAMP(3) are accepted and ignored.
  if (AcceptSymbol("(")) {
    if (Peek().kind != TokenKind::kInteger) {
      return Unexpected("an integer length or precision");
    }
    Advance();
    if (AcceptSymbol(",")) {
      if (Peek().kind != TokenKind::kInteger) {
        return Unexpected("an integer");
      }
      Advance();
    }
    if (absl::Status s = ExpectSymbol(")"); !s.ok()) {
      return s;
    }
  }
  return type;
}

absl::Status Parser::ParseOptions(std::vector<AstOption>* options) {
  if (absl::Status s = ExpectSymbol("("); !s.ok()) {
    return s;
  }
  if (AcceptSymbol(")")) {
    return absl::OkStatus();
  }
  while (true) {
    AstOption opt;
    opt.pos = Peek().pos;
    if (Peek().kind == TokenKind::kString || Peek().kind == TokenKind::kQuotedIdent) {
      opt.key = Advance().text;
    } else if (Peek().kind == TokenKind::kIdent) {
      opt.key = Advance().text;
      // Dotted keys such as properties.bootstrap.servers.
      while (Peek().IsSymbol(".") && Peek(1).kind == TokenKind::kIdent) {
        Advance();
        opt.key += ".";
        opt.key += Advance().text;
      }
    } else {
      return Unexpected("an option name");
    }
    opt.key = ToLowerAscii(opt.key);
    if (absl::Status s = ExpectSymbol("="); !s.ok()) {
      return s;
    }
    if (Peek().kind != TokenKind::kString) {
      return Unexpected(
          fmt::format("a quoted string value for option '{}', e.g. {} = '…'", opt.key, opt.key));
    }
    opt.value = Advance().text;
    options->push_back(std::move(opt));
    if (AcceptSymbol(")")) {
      return absl::OkStatus();
    }
    if (!AcceptSymbol(",")) {
      return Unexpected("',' or ')'");
    }
  }
}

absl::Status Parser::ParseWatermark(AstWatermark* wm) {
  Advance();  // WATERMARK
  Advance();  // FOR
  wm->present = true;
  absl::StatusOr<std::string> column = ParseName("the event-time column name", &wm->pos);
  if (!column.ok()) {
    return column.status();
  }
  wm->column = std::move(*column);
  if (absl::Status s = ExpectKeyword("AS"); !s.ok()) {
    return s;
  }
  absl::StatusOr<std::string> of = ParseName("the event-time column name", &wm->of_pos);
  if (!of.ok()) {
    return of.status();
  }
  wm->of_column = std::move(*of);
  wm->lateness_ms = 0;
  if (!AcceptSymbol("-")) {
    return absl::OkStatus();
  }
  if (absl::Status s = ExpectKeyword("INTERVAL"); !s.ok()) {
    return s;
  }
  const Token& amount = Peek();
  if (amount.kind != TokenKind::kString && amount.kind != TokenKind::kInteger) {
    return Unexpected("a quoted amount, e.g. INTERVAL '5' MINUTE");
  }
  std::string_view text = amount.text;
  int64_t n = -1;
  bool ok = !text.empty() && text.size() <= 9;
  for (char c : text) {
    ok = ok && c >= '0' && c <= '9';
  }
  if (ok) {
    n = 0;
    for (char c : text) {
      n = n * 10 + (c - '0');
    }
  }
  if (!ok) {
    return ErrorAt(amount.pos,
                   "invalid interval '{}', expected a whole number of units below one billion "
                   "in quotes, e.g. INTERVAL '5' MINUTE",
                   text);
  }
  Advance();
  const Token& unit = Peek();
  std::string u = unit.kind == TokenKind::kIdent ? ToUpperAscii(unit.text) : "";
  if (!u.empty() && u.back() == 'S') {
    u.pop_back();
  }
  int64_t scale = 0;
  if (u == "SECOND") {
    scale = kMillisPerSecond;
  }
  if (u == "MINUTE") {
    scale = kMillisPerMinute;
  }
  if (u == "HOUR") {
    scale = kMillisPerHour;
  }
  if (u == "DAY") {
    scale = kMillisPerDay;
  }
  if (scale == 0) {
    if (unit.kind == TokenKind::kIdent) {
      return ErrorAt(unit.pos, "unknown interval unit '{}', expected SECOND, MINUTE, HOUR or DAY",
                     unit.text);
    }
    return Unexpected("an interval unit (SECOND, MINUTE, HOUR or DAY)");
  }
  Advance();
  wm->lateness_ms = n * scale;
  return absl::OkStatus();
}

absl::Status Parser::ParseSource(AstSource* source) {
  absl::StatusOr<std::string> name = ParseName("a source name", &source->pos);
  if (!name.ok()) {
    return name.status();
  }
  source->name = std::move(*name);
  if (absl::Status s = ExpectSymbol("("); !s.ok()) {
    return s;
  }
  while (true) {
    if (Peek().IsKeyword("WATERMARK") && Peek(1).IsKeyword("FOR")) {
      if (source->watermark.present) {
        return ErrorAt(Peek().pos, "duplicate WATERMARK clause, expected at most one");
      }
      if (absl::Status s = ParseWatermark(&source->watermark); !s.ok()) {
        return s;
      }
    } else {
      AstColumnDef col;
      absl::StatusOr<std::string> col_name = ParseName("a column name or WATERMARK", &col.pos);
      if (!col_name.ok()) {
        return col_name.status();
      }
      col.name = std::move(*col_name);
      absl::StatusOr<DataType> type = ParseType();
      if (!type.ok()) {
        return type.status();
      }
      col.type = *type;
      source->columns.push_back(std::move(col));
    }
    if (AcceptSymbol(")")) {
      break;
    }
    if (!AcceptSymbol(",")) {
      return Unexpected("',' or ')'");
    }
  }
  if (AcceptKeyword("WITH")) {
    return ParseOptions(&source->options);
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseView(AstView* view) {
  absl::StatusOr<std::string> name = ParseName("a view name", &view->pos);
  if (!name.ok()) {
    return name.status();
  }
  view->name = std::move(*name);
  if (AcceptKeyword("WITH")) {
    if (absl::Status s = ParseOptions(&view->options); !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = ExpectKeyword("AS"); !s.ok()) {
    return s;
  }
  if (absl::Status s = ExpectKeyword("SELECT"); !s.ok()) {
    return s;
  }
  if (Peek().IsKeyword("DISTINCT")) {
    return ErrorAt(Peek().pos, "SELECT DISTINCT is not supported, expected a SELECT list");
  }
  while (true) {
    AstSelectItem item;
    if (Peek().IsSymbol("*")) {
      return ErrorAt(Peek().pos,
                     "SELECT * is not supported, expected GROUP BY keys and aggregates");
    }
    absl::StatusOr<std::unique_ptr<AstExpr>> e = ParseExpr();
    if (!e.ok()) {
      return e.status();
    }
    item.expr = std::move(*e);
    if (AcceptKeyword("AS")) {
      absl::StatusOr<std::string> alias = ParseName("an output name", &item.alias_pos);
      if (!alias.ok()) {
        return alias.status();
      }
      item.alias = std::move(*alias);
    } else if (Peek().kind == TokenKind::kQuotedIdent ||
               (Peek().kind == TokenKind::kIdent && !IsReservedWord(Peek().text))) {
      item.alias_pos = Peek().pos;
      item.alias = Advance().text;
    }
    view->items.push_back(std::move(item));
    if (!AcceptSymbol(",")) {
      break;
    }
  }
  if (!Peek().IsKeyword("FROM")) {
    return Unexpected("',' or FROM");
  }
  Advance();
  absl::StatusOr<std::string> from = ParseName("a source name", &view->from_pos);
  if (!from.ok()) {
    return from.status();
  }
  view->from = std::move(*from);
  if (AcceptKeyword("WHERE")) {
    absl::StatusOr<std::unique_ptr<AstExpr>> where = ParseExpr();
    if (!where.ok()) {
      return where.status();
    }
    view->where = std::move(*where);
  }
  view->group_by_pos = Peek().pos;
  if (!Peek().IsKeyword("GROUP")) {
    return Unexpected(view->where ? "GROUP BY" : "WHERE or GROUP BY");
  }
  Advance();
  if (absl::Status s = ExpectKeyword("BY"); !s.ok()) {
    return s;
  }
  while (true) {
    absl::StatusOr<std::unique_ptr<AstExpr>> key = ParseExpr();
    if (!key.ok()) {
      return key.status();
    }
    view->group_by.push_back(std::move(*key));
    if (!AcceptSymbol(",")) {
      break;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<AstExpr>> Parser::ParseExpr() {
  DepthGuard guard(&depth_);
  if (guard.exceeded()) {
    return ErrorAt(Peek().pos, "expression is nested too deeply, expected at most {} levels",
                   kMaxExprHeight);
  }
  return ParseOr();
}

absl::StatusOr<std::unique_ptr<AstExpr>> Parser::ParseLeftAssociative(
    absl::StatusOr<std::unique_ptr<AstExpr>> (Parser::*operand)(),
    std::initializer_list<std::string_view> keywords,
    std::initializer_list<std::string_view> symbols) {
  absl::StatusOr<std::unique_ptr<AstExpr>> lhs = (this->*operand)();
  while (lhs.ok()) {
    const Token& next = Peek();
    std::string_view op;
    for (std::string_view k : keywords) {
      if (next.IsKeyword(k)) op = k;
    }
    for (std::string_view sym : symbols) {
      if (next.IsSymbol(sym)) op = sym;
    }
    if (op.empty()) break;
    Pos pos = Advance().pos;
    absl::StatusOr<std::unique_ptr<AstExpr>> rhs = (this->*operand)();
    if (!rhs.ok()) return rhs;
    auto node = NewNode(AstExpr::Kind::kBinary, pos);
    node->name = std::string(op);
    node->children.push_back(std::move(*lhs));
    node->children.push_back(std::move(*rhs));
    lhs = Finish(std::move(node));
  }
  return lhs;
}

absl::StatusOr<std::unique_ptr<AstExpr>> Parser::ParseOr() {
  return ParseLeftAssociative(&Parser::ParseAnd, {"OR"}, {});
}

absl::StatusOr<std::unique_ptr<AstExpr>> Parser::ParseAnd() {
  return ParseLeftAssociative(&Parser::ParseNot, {"AND"}, {});
}

absl::StatusOr<std::unique_ptr<AstExpr>> Parser::ParseNot() {
  if (!Peek().IsKeyword("NOT")) {
    return ParsePredicate();
  }
  DepthGuard guard(&depth_);
  if (guard.exceeded()) {
    return ErrorAt(Peek().pos, "expression is nested too deeply, expected at most {} levels",
                   kMaxExprHeight);
  }
  Pos pos = Advance().pos;
  absl::StatusOr<std::unique_ptr<AstExpr>> operand = ParseNot();
  if (!operand.ok()) {
    return operand;
  }
  auto node = NewNode(AstExpr::Kind::kUnary, pos);
  node->name = "NOT";
  node->children.push_back(std::move(*operand));
  return Finish(std::move(node));
}

absl::StatusOr<std::unique_ptr<AstExpr>> Parser::ParsePredicate() {
  absl::StatusOr<std::unique_ptr<AstExpr>> lhs = ParseConcat();
  if (!lhs.ok()) {
    return lhs;
  }
  const Token& t = Peek();
  if (IsComparison(t)) {
    Pos pos = t.pos;
    std::string op = t.text == "!=" ? "<>" : t.text;
    Advance();
    absl::StatusOr<std::unique_ptr<AstExpr>> rhs = ParseConcat();
    if (!rhs.ok()) {
      return rhs;
    }
    auto node = NewNode(AstExpr::Kind::kBinary, pos);
    node->name = std::move(op);
    node->children.push_back(std::move(*lhs));
    node->children.push_back(std::move(*rhs));
    return Finish(std::move(node));
  }
  if (t.IsKeyword("IS")) {
    Pos pos = Advance().pos;
    auto node = NewNode(AstExpr::Kind::kIsNull, pos);
    node->negated = AcceptKeyword("NOT");
    if (absl::Status s = ExpectKeyword("NULL"); !s.ok()) {
      return s;
    }
    node->children.push_back(std::move(*lhs));
    return Finish(std::move(node));
  }
  bool negated = false;
  Pos pos = t.pos;
  if (t.IsKeyword("NOT") && (Peek(1).IsKeyword("IN") || Peek(1).IsKeyword("BETWEEN"))) {
    negated = true;
    Advance();
  }
  if (AcceptKeyword("IN")) {
    auto node = NewNode(AstExpr::Kind::kIn, pos);
    node->negated = negated;
    node->children.push_back(std::move(*lhs));
    if (absl::Status s = ExpectSymbol("("); !s.ok()) {
      return s;
    }
    while (true) {
      absl::StatusOr<std::unique_ptr<AstExpr>> item = ParseExpr();
      if (!item.ok()) {
        return item;
      }
      node->children.push_back(std::move(*item));
      if (AcceptSymbol(")")) {
        break;
      }
      if (!AcceptSymbol(",")) {
        return Unexpected("',' or ')'");
      }
    }
    return Finish(std::move(node));
  }
  if (AcceptKeyword("BETWEEN")) {
    auto node = NewNode(AstExpr::Kind::kBetween, pos);
    node->negated = negated;
    node->children.push_back(std::move(*lhs));
    absl::StatusOr<std::unique_ptr<AstExpr>> lo = ParseConcat();
    if (!lo.ok()) {
      return lo;
    }
    node->children.push_back(std::move(*lo));
    if (absl::Status s = ExpectKeyword("AND"); !s.ok()) {
      return s;
    }
    absl::StatusOr<std::unique_ptr<AstExpr>> hi = ParseConcat();
    if (!hi.ok()) {
      return hi;
    }
    node->children.push_back(std::move(*hi));
    return Finish(std::move(node));
  }
  return lhs;
}

absl::StatusOr<std::unique_ptr<AstExpr>> Parser::ParseConcat() {
  return ParseLeftAssociative(&Parser::ParseAdditive, {}, {"||"});
}

absl::StatusOr<std::unique_ptr<AstExpr>> Parser::ParseAdditive() {
  return ParseLeftAssociative(&Parser::ParseMultiplicative, {}, {"+", "-"});
}

absl::StatusOr<std::unique_ptr<AstExpr>> Parser::ParseMultiplicative() {
  return ParseLeftAssociative(&Parser::ParseUnary, {}, {"*", "/", "%"});
}

absl::StatusOr<std::unique_ptr<AstExpr>> Parser::ParseUnary() {
  if (!Peek().IsSymbol("-") && !Peek().IsSymbol("+")) {
    return ParsePrimary();
  }
  DepthGuard guard(&depth_);
  if (guard.exceeded()) {
    return ErrorAt(Peek().pos, "expression is nested too deeply, expected at most {} levels",
                   kMaxExprHeight);
  }
  const Token& op = Advance();
  bool minus = op.text == "-";
  Pos pos = op.pos;
  // A minus directly before a number is part of the literal (so -9223372036854775808 works).
  if (minus && (Peek().kind == TokenKind::kInteger || Peek().kind == TokenKind::kDecimal)) {
    const Token& number = Advance();
    absl::StatusOr<std::unique_ptr<AstExpr>> lit = ParseNumber(number, /*negative=*/true);
    if (lit.ok()) {
      (*lit)->pos = (*lit)->start = pos;
    }
    return lit;
  }
  absl::StatusOr<std::unique_ptr<AstExpr>> operand = ParseUnary();
  if (!operand.ok() || !minus) {
    return operand;
  }
  auto node = NewNode(AstExpr::Kind::kUnary, pos);
  node->name.push_back('-');  // (not `= "-"`: GCC 12 -Wrestrict false positive)
  node->children.push_back(std::move(*operand));
  return Finish(std::move(node));
}

absl::StatusOr<std::unique_ptr<AstExpr>> Parser::ParseNumber(const Token& token, bool negative) {
  auto node = NewNode(AstExpr::Kind::kLiteral, token.pos);
  std::string text;
  text.reserve(token.text.size() + 1);
  if (negative) {
    text.push_back('-');
  }
  text.append(token.text);
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  if (token.kind == TokenKind::kInteger) {
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(begin, end, v);
    if (ec != std::errc() || ptr != end) {
      return ErrorAt(token.pos,
                     "integer literal {} is out of range, expected a value between "
                     "-9223372036854775808 and 9223372036854775807 (write {}.0 for a DOUBLE)",
                     text, text);
    }
    node->literal = Value::Int64(v);
  } else {
    double v = 0;
    auto [ptr, ec] = std::from_chars(begin, end, v);
    if (ec != std::errc() || ptr != end || !std::isfinite(v)) {
      return ErrorAt(token.pos, "numeric literal {} is out of range, expected a finite DOUBLE",
                     text);
    }
    node->literal = Value::Double(v);
  }
  return node;
}

absl::StatusOr<std::unique_ptr<AstExpr>> Parser::ParseCase(Pos pos) {
  auto node = NewNode(AstExpr::Kind::kCase, pos);
  if (Peek().IsKeyword("END") || Peek().IsKeyword("ELSE")) {
    return Unexpected("WHEN");
  }
  if (!Peek().IsKeyword("WHEN")) {
    absl::StatusOr<std::unique_ptr<AstExpr>> operand = ParseExpr();
    if (!operand.ok()) {
      return operand;
    }
    node->has_operand = true;
    node->children.push_back(std::move(*operand));
  }
  if (!Peek().IsKeyword("WHEN")) {
    return Unexpected("WHEN");
  }
  while (AcceptKeyword("WHEN")) {
    absl::StatusOr<std::unique_ptr<AstExpr>> when = ParseExpr();
    if (!when.ok()) {
      return when;
    }
    if (absl::Status s = ExpectKeyword("THEN"); !s.ok()) {
      return s;
    }
    absl::StatusOr<std::unique_ptr<AstExpr>> then = ParseExpr();
    if (!then.ok()) {
      return then;
    }
    node->children.push_back(std::move(*when));
    node->children.push_back(std::move(*then));
  }
  if (AcceptKeyword("ELSE")) {
    absl::StatusOr<std::unique_ptr<AstExpr>> else_expr = ParseExpr();
    if (!else_expr.ok()) {
      return else_expr;
    }
    node->has_else = true;
    node->children.push_back(std::move(*else_expr));
  }
  if (!AcceptKeyword("END")) {
    return Unexpected(node->has_else ? "END" : "WHEN, ELSE or END");
  }
  return Finish(std::move(node));
}

absl::StatusOr<std::unique_ptr<AstExpr>> Parser::ParseCall(std::string name, Pos pos) {
  Advance();  // (
  auto node = NewNode(AstExpr::Kind::kCall, pos);
  node->name = std::move(name);
  if (AcceptSymbol("*")) {
    node->star = true;
    if (absl::Status s = ExpectSymbol(")"); !s.ok()) {
      return s;
    }
    return Finish(std::move(node));
  }
  if (AcceptSymbol(")")) {
    return Finish(std::move(node));
  }
  node->distinct = AcceptKeyword("DISTINCT");
  while (true) {
    absl::StatusOr<std::unique_ptr<AstExpr>> arg = ParseExpr();
    if (!arg.ok()) {
      return arg;
    }
    node->children.push_back(std::move(*arg));
    if (AcceptSymbol(")")) {
      break;
    }
    if (!AcceptSymbol(",")) {
      return Unexpected("',' or ')'");
    }
  }
  return Finish(std::move(node));
}

absl::StatusOr<std::unique_ptr<AstExpr>> Parser::ParsePrimary() {
  const Token& t = Peek();
  switch (t.kind) {
    case TokenKind::kInteger:
    case TokenKind::kDecimal:
      return ParseNumber(Advance(), /*negative=*/false);
    case TokenKind::kString: {
      auto node = NewNode(AstExpr::Kind::kLiteral, t.pos);
      node->literal = Value::String(Advance().text);
      return node;
    }
    case TokenKind::kSymbol:
      if (t.IsSymbol("(")) {
        Advance();
        absl::StatusOr<std::unique_ptr<AstExpr>> inner = ParseExpr();
        if (!inner.ok()) {
          return inner;
        }
        if (absl::Status s = ExpectSymbol(")"); !s.ok()) {
          return s;
        }
        return inner;
      }
      return Unexpected("an expression");
    case TokenKind::kEnd:
      return Unexpected("an expression");
    case TokenKind::kQuotedIdent:
    case TokenKind::kIdent:
      break;
  }
  Pos pos = t.pos;
  bool quoted = t.kind == TokenKind::kQuotedIdent;
  if (!quoted) {
    if (t.IsKeyword("TRUE") || t.IsKeyword("FALSE")) {
      auto node = NewNode(AstExpr::Kind::kLiteral, pos);
      node->literal = Value::Bool(Advance().IsKeyword("TRUE"));
      return node;
    }
    if (t.IsKeyword("NULL")) {
      Advance();
      return NewNode(AstExpr::Kind::kLiteral, pos);
    }
    if (t.IsKeyword("CASE")) {
      Advance();
      return ParseCase(pos);
    }
    if (t.IsKeyword("CAST")) {
      Advance();
      if (absl::Status s = ExpectSymbol("("); !s.ok()) {
        return s;
      }
      absl::StatusOr<std::unique_ptr<AstExpr>> operand = ParseExpr();
      if (!operand.ok()) {
        return operand;
      }
      if (absl::Status s = ExpectKeyword("AS"); !s.ok()) {
        return s;
      }
      absl::StatusOr<DataType> type = ParseType();
      if (!type.ok()) {
        return type.status();
      }
      if (absl::Status s = ExpectSymbol(")"); !s.ok()) {
        return s;
      }
      auto node = NewNode(AstExpr::Kind::kCast, pos);
      node->cast_type = *type;
      node->children.push_back(std::move(*operand));
      return Finish(std::move(node));
    }
    if (t.IsKeyword("TIMESTAMP") && Peek(1).kind == TokenKind::kString) {
      Advance();
      const Token& text = Advance();
      std::optional<int64_t> ms = ParseRfc3339Millis(text.text);
      if (!ms) {
        return ErrorAt(text.pos,
                       "invalid TIMESTAMP literal '{}', expected RFC 3339 such as "
                       "'2026-01-01T00:00:00Z'",
                       text.text);
      }
      auto node = NewNode(AstExpr::Kind::kLiteral, pos);
      node->literal = Value::Timestamp(*ms);
      return node;
    }
    if (t.IsKeyword("INTERVAL")) {
      return ErrorAt(pos,
                     "INTERVAL is only supported in a WATERMARK clause, expected an "
                     "expression");
    }
    if (IsReservedWord(t.text)) {
      return Unexpected("an expression");
    }
  }
  std::string name = Advance().text;
  if (!quoted && Peek().IsSymbol("(")) {
    return ParseCall(std::move(name), pos);
  }
  auto node = NewNode(AstExpr::Kind::kColumn, pos);
  if (Peek().IsSymbol(".")) {
    Advance();
    absl::StatusOr<std::string> column = ParseName("a column name", nullptr);
    if (!column.ok()) {
      return column.status();
    }
    node->qualifier = std::move(name);
    node->name = std::move(*column);
  } else {
    node->name = std::move(name);
  }
  return node;
}

}  // namespace tessera::sql
