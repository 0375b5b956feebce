#include "sql/lexer.h"

#include <fmt/format.h>

#include <array>

namespace tessera::sql {
namespace {

bool IsIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9') || c == '$'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::string DescribeChar(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) {
    return fmt::format("'{}'", c);
  }
  return fmt::format("byte 0x{:02x}", u);
}

}  // namespace

bool IsReservedWord(std::string_view word) {
  static constexpr std::array<std::string_view, 27> kReserved = {
      "AND", "AS",    "BETWEEN", "BY",    "CASE",   "CAST", "CREATE", "DISTINCT", "ELSE",
      "END", "FALSE", "FROM",    "GROUP", "HAVING", "IN",   "IS",     "NOT",      "NULL",
      "OR",  "ORDER", "SELECT",  "THEN",  "TRUE",   "WHEN", "WHERE",  "WITH",     "LIMIT",
  };
  for (std::string_view r : kReserved) {
    if (EqualsIgnoreCase(word, r)) {
      return true;
    }
  }
  return false;
}

std::string Token::Describe() const {
  switch (kind) {
    case TokenKind::kEnd:
      return "end of input";
    case TokenKind::kString:
      return fmt::format("string '{}'", text);
    case TokenKind::kQuotedIdent:
      return fmt::format("\"{}\"", text);
    default:
      return fmt::format("'{}'", text);
  }
}

Pos Lexer::PosAt(size_t offset) const {
  // Offsets are requested in increasing order while lexing; restart if asked for an earlier one.
  if (offset < line_offset_) {
    line_offset_ = 0;
    line_ = 1;
    line_start_ = 0;
  }
  for (size_t i = line_offset_; i < offset && i < input_.size(); ++i) {
    if (input_[i] == '\n') {
      ++line_;
      line_start_ = i + 1;
    }
  }
  line_offset_ = offset;
  return Pos{line_, static_cast<int>(offset - line_start_) + 1};
}

absl::Status Lexer::SkipSpaceAndComments() {
  while (pos_ < input_.size()) {
    char c = input_[pos_];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      ++pos_;
    } else if (c == '-' && pos_ + 1 < input_.size() && input_[pos_ + 1] == '-') {
      while (pos_ < input_.size() && input_[pos_] != '\n') {
        ++pos_;
      }
    } else if (c == '/' && pos_ + 1 < input_.size() && input_[pos_ + 1] == '*') {
      size_t start = pos_;
      size_t close = input_.find("*/", pos_ + 2);
      if (close == std::string_view::npos) {
        return ErrorAt(PosAt(start), "unterminated comment, expected */");
      }
      pos_ = close + 2;
    } else {
      break;
    }
  }
  return absl::OkStatus();
}

Token Lexer::Emit(TokenKind kind, std::string text, size_t begin, size_t end) {
  Token t;
  t.kind = kind;
  t.text = std::move(text);
  t.pos = PosAt(begin);
  t.begin = begin;
  t.end = end;
  pos_ = end;
  return t;
}

absl::StatusOr<Token> Lexer::LexNumber(size_t start) {
  size_t p = start;
  bool decimal = false;
  while (p < input_.size() && IsDigit(input_[p])) {
    ++p;
  }
  if (p < input_.size() && input_[p] == '.') {
    decimal = true;
    ++p;
    while (p < input_.size() && IsDigit(input_[p])) {
      ++p;
    }
  }
  if (p < input_.size() && (input_[p] == 'e' || input_[p] == 'E')) {
    size_t q = p + 1;
    if (q < input_.size() && (input_[q] == '+' || input_[q] == '-')) {
      ++q;
    }
    if (q < input_.size() && IsDigit(input_[q])) {
      decimal = true;
      p = q;
      while (p < input_.size() && IsDigit(input_[p])) {
        ++p;
      }
    }
  }
  if (p < input_.size() && IsIdentChar(input_[p])) {
    return ErrorAt(PosAt(start), "malformed number '{}', expected digits",
                   input_.substr(start, p + 1 - start));
  }
  return Emit(decimal ? TokenKind::kDecimal : TokenKind::kInteger,
              std::string(input_.substr(start, p - start)), start, p);
}

absl::StatusOr<Token> Lexer::LexQuoted(size_t start, char quote, TokenKind kind) {
  std::string text;
  size_t p = start + 1;
  while (true) {
    if (p >= input_.size()) {
      return ErrorAt(PosAt(start), "unterminated {}, expected a closing {}",
                     kind == TokenKind::kString ? "string literal" : "quoted identifier", quote);
    }
    char c = input_[p];
    if (c == quote) {
      if (p + 1 < input_.size() && input_[p + 1] == quote) {
        text.push_back(quote);
        p += 2;
        continue;
      }
      ++p;
      break;
    }
    text.push_back(c);
    ++p;
  }
  if (kind == TokenKind::kQuotedIdent && text.empty()) {
    return ErrorAt(PosAt(start), "empty quoted identifier, expected a name");
  }
  return Emit(kind, std::move(text), start, p);
}

absl::StatusOr<Token> Lexer::Next() {
  if (absl::Status s = SkipSpaceAndComments(); !s.ok()) {
    return s;
  }
  size_t start = pos_;
  if (pos_ >= input_.size()) {
    Token t;
    t.kind = TokenKind::kEnd;
    t.pos = PosAt(start);
    t.begin = t.end = start;
    return t;
  }
  char c = input_[pos_];
  if (IsIdentStart(c)) {
    size_t p = pos_ + 1;
    while (p < input_.size() && IsIdentChar(input_[p])) {
      ++p;
    }
    return Emit(TokenKind::kIdent, std::string(input_.substr(start, p - start)), start, p);
  }
  if (IsDigit(c) || (c == '.' && pos_ + 1 < input_.size() && IsDigit(input_[pos_ + 1]))) {
    return LexNumber(start);
  }
  if (c == '\'') {
    return LexQuoted(start, '\'', TokenKind::kString);
  }
  if (c == '"') {
    return LexQuoted(start, '"', TokenKind::kQuotedIdent);
  }
  if (c == '`') {
    return LexQuoted(start, '`', TokenKind::kQuotedIdent);
  }

  static constexpr std::array<std::string_view, 5> kTwoChar = {"<>", "!=", "<=", ">=", "||"};
  std::string_view rest = input_.substr(pos_);
  size_t len = 0;
  for (std::string_view op : kTwoChar) {
    if (rest.substr(0, 2) == op) {
      len = 2;
    }
  }
  if (len == 0 && std::string_view("(),;.*+-/%=<>").find(c) != std::string_view::npos) {
    len = 1;
  }
  if (len == 0) {
    return ErrorAt(PosAt(start),
                   "unexpected character {}, expected an identifier, number, "
                   "string or operator",
                   DescribeChar(c));
  }
  return Emit(TokenKind::kSymbol, std::string(rest.substr(0, len)), start, start + len);
}

absl::StatusOr<std::vector<Token>> Lexer::Tokenize() {
  std::vector<Token> tokens;
  while (true) {
    absl::StatusOr<Token> t = Next();
    if (!t.ok()) {
      return t.status();
    }
    bool end = t->kind == TokenKind::kEnd;
    tokens.push_back(std::move(*t));
    if (end) {
      break;
    }
  }
  return tokens;
}

}  // namespace tessera::sql
