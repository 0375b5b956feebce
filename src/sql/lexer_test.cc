#include "sql/lexer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/errors.h"

namespace tessera::sql {
namespace {

using ::testing::HasSubstr;

std::vector<Token> Lex(std::string_view s) {
  absl::StatusOr<std::vector<Token>> tokens = Lexer(s).Tokenize();
  EXPECT_TRUE(tokens.ok()) << tokens.status();
  return tokens.ok() ? *tokens : std::vector<Token>{};
}

std::string LexError(std::string_view s) {
  absl::StatusOr<std::vector<Token>> tokens = Lexer(s).Tokenize();
  EXPECT_FALSE(tokens.ok());
  return tokens.ok() ? "" : StatusMessage(tokens.status());
}

TEST(LexerTest, TokenKindsAndText) {
  std::vector<Token> t = Lex("SELECT a1, \"Quoted \"\"x\"\"\" 42 1.5 .5 1e3 'it''s' `b`");
  ASSERT_EQ(t.size(), 11u);
  EXPECT_EQ(t[0].kind, TokenKind::kIdent);
  EXPECT_EQ(t[0].text, "SELECT");
  EXPECT_EQ(t[1].text, "a1");
  EXPECT_TRUE(t[2].IsSymbol(","));
  EXPECT_EQ(t[3].kind, TokenKind::kQuotedIdent);
  EXPECT_EQ(t[3].text, "Quoted \"x\"");
  EXPECT_EQ(t[4].kind, TokenKind::kInteger);
  EXPECT_EQ(t[5].kind, TokenKind::kDecimal);
  EXPECT_EQ(t[6].kind, TokenKind::kDecimal);
  EXPECT_EQ(t[6].text, ".5");
  EXPECT_EQ(t[7].kind, TokenKind::kDecimal);
  EXPECT_EQ(t[8].kind, TokenKind::kString);
  EXPECT_EQ(t[8].text, "it's");
  EXPECT_EQ(t[9].kind, TokenKind::kQuotedIdent);
  EXPECT_EQ(t.back().kind, TokenKind::kEnd);
}

TEST(LexerTest, EndTokenAndOperators) {
  std::vector<Token> t = Lex("a<>b!=c<=d>=e||f<g>h=i;");
  std::vector<std::string> symbols;
  for (const Token& tok : t) {
    if (tok.kind == TokenKind::kSymbol) {
      symbols.push_back(tok.text);
    }
  }
  EXPECT_EQ(symbols, (std::vector<std::string>{"<>", "!=", "<=", ">=", "||", "<", ">", "=", ";"}));
  EXPECT_EQ(t.back().kind, TokenKind::kEnd);
}

TEST(LexerTest, CommentsAndPositions) {
  std::vector<Token> t = Lex("-- comment\n  /* block\n comment */ x\n\ty");
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].text, "x");
  EXPECT_EQ(t[0].pos.line, 3);
  EXPECT_EQ(t[0].pos.column, 13);
  EXPECT_EQ(t[1].text, "y");
  EXPECT_EQ(t[1].pos.line, 4);
  EXPECT_EQ(t[1].pos.column, 2);
  EXPECT_EQ(t[1].begin, 37u);
  EXPECT_EQ(t[1].end, 38u);
}

TEST(LexerTest, KeywordsAreCaseInsensitive) {
  std::vector<Token> t = Lex("select SeLeCt");
  EXPECT_TRUE(t[0].IsKeyword("SELECT"));
  EXPECT_TRUE(t[1].IsKeyword("SELECT"));
  EXPECT_TRUE(IsReservedWord("from"));
  EXPECT_FALSE(IsReservedWord("timestamp"));
}

TEST(LexerTest, Errors) {
  EXPECT_EQ(LexError("a\n  'abc"),
            "line 2, column 3: unterminated string literal, expected a closing '");
  EXPECT_EQ(LexError("/* never closed"), "line 1, column 1: unterminated comment, expected */");
  EXPECT_THAT(LexError("x # y"), HasSubstr("line 1, column 3: unexpected character '#'"));
  EXPECT_THAT(LexError("x \x01"), HasSubstr("byte 0x01"));
  EXPECT_THAT(LexError("12abc"), HasSubstr("malformed number '12a'"));
  EXPECT_THAT(LexError("\"\""), HasSubstr("empty quoted identifier"));
  EXPECT_THAT(LexError("\"abc"), HasSubstr("unterminated quoted identifier"));
}

}  // namespace
}  // namespace tessera::sql
