#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "sql/sql_util.h"

namespace tessera::sql {

enum class TokenKind : uint8_t {
  kEnd,          // end of input (always the last token)
  kIdent,        // unquoted word: identifier or keyword (keywords are matched by the parser)
  kQuotedIdent,  // "name" or `name`; text is unescaped
  kInteger,      // 123
  kDecimal,      // 1.5, .5, 1e3
  kString,       // 'text'; text is unescaped ('' -> ')
  kSymbol,       // ( ) , ; . * + - / % = <> != < <= > >= ||
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::string text;  // see TokenKind; symbols and numbers as written
  Pos pos;
  size_t begin = 0;  // byte offsets of the token in the script: [begin, end)
  size_t end = 0;

  bool IsSymbol(std::string_view s) const { return kind == TokenKind::kSymbol && text == s; }
  // True for an unquoted word equal to `keyword` (upper case) ignoring case.
  bool IsKeyword(std::string_view keyword) const {
    return kind == TokenKind::kIdent && EqualsIgnoreCase(text, keyword);
  }
  // "'foo'", "string 'x'", "end of input": how error messages name the token.
  std::string Describe() const;
};

// Words that cannot be used unquoted as names (they start or continue expression syntax).
// `word` in any case.
bool IsReservedWord(std::string_view word);

// Splits a script into tokens. Skips whitespace, `-- line` and `/* block */` comments.
// Never fails on arbitrary bytes other than with an InvalidArgument naming the line and column.
class Lexer {
 public:
  explicit Lexer(std::string_view input) : input_(input) {}

  // All tokens of the input; the last one is kEnd.
  absl::StatusOr<std::vector<Token>> Tokenize();

 private:
  Pos PosAt(size_t offset) const;
  // The token of kind `kind` spanning [begin, end) with `text`; the lexer continues at `end`.
  Token Emit(TokenKind kind, std::string text, size_t begin, size_t end);
  absl::Status SkipSpaceAndComments();
  absl::StatusOr<Token> Next();
  absl::StatusOr<Token> LexNumber(size_t start);
  absl::StatusOr<Token> LexQuoted(size_t start, char quote, TokenKind kind);

  std::string_view input_;
  size_t pos_ = 0;
  // Incremental line tracking: offset_ of the last computed position and its Pos.
  mutable size_t line_offset_ = 0;
  mutable int line_ = 1;
  mutable size_t line_start_ = 0;
};

}  // namespace tessera::sql
