#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "sql/ast.h"
#include "sql/lexer.h"

namespace tessera::sql {

// Recursive-descent parser for the dialect (see docs/architecture.md, "SQL dialect"):
//
//   script    := [statement] (';' [statement])*
//   statement := CREATE SOURCE name '(' element (',' element)* ')' [WITH options]
//              | CREATE FEATURE VIEW name [WITH options] AS
//                SELECT item (',' item)* FROM name [WHERE expr] GROUP BY expr (',' expr)*
//   element   := name type | WATERMARK FOR name AS name ['-' INTERVAL 'n' unit]
//   options   := '(' key '=' 'value' (',' key '=' 'value')* ')'
//   item      := expr [[AS] name]
//
// Expression precedence, loosest first: OR, AND, NOT, comparison / IS / IN / BETWEEN, ||,
// + -, * / %, unary -. Nesting is bounded (kMaxExprHeight) so hostile input cannot exhaust the
// stack. Errors are InvalidArgument "line L, column C: unexpected X, expected Y".
class Parser {
 public:
  static constexpr int kMaxExprHeight = 200;

  // Parses a whole script.
  static absl::StatusOr<std::vector<AstStatement>> ParseScript(std::string_view script);

  // Parses one expression (tests and tools); the whole input must be the expression.
  static absl::StatusOr<std::unique_ptr<AstExpr>> ParseExpression(std::string_view text);

 private:
  Parser(std::string_view script, std::vector<Token> tokens)
      : script_(script), tokens_(std::move(tokens)) {}

  const Token& Peek(size_t ahead = 0) const;
  const Token& Advance();
  bool AcceptKeyword(std::string_view keyword);
  bool AcceptSymbol(std::string_view symbol);
  absl::Status ExpectKeyword(std::string_view keyword);
  absl::Status ExpectSymbol(std::string_view symbol);
  absl::Status Unexpected(std::string_view expected) const;

  absl::Status ParseStatement(AstStatement* stmt);
  absl::Status ParseSource(AstSource* source);
  absl::Status ParseView(AstView* view);
  absl::Status ParseWatermark(AstWatermark* wm);
  absl::Status ParseOptions(std::vector<AstOption>* options);
  absl::StatusOr<std::string> ParseName(std::string_view what, Pos* pos);
  absl::StatusOr<DataType> ParseType();

  absl::StatusOr<std::unique_ptr<AstExpr>> ParseExpr();
  // Parses `operand (op operand)*` into left-associative binary nodes, where op is one of
  // `keywords` or `symbols` (the node's name is the operator as listed).
  absl::StatusOr<std::unique_ptr<AstExpr>> ParseLeftAssociative(
      absl::StatusOr<std::unique_ptr<AstExpr>> (Parser::*operand)(),
      std::initializer_list<std::string_view> keywords,
      std::initializer_list<std::string_view> symbols);
  absl::StatusOr<std::unique_ptr<AstExpr>> ParseOr();
  absl::StatusOr<std::unique_ptr<AstExpr>> ParseAnd();
  absl::StatusOr<std::unique_ptr<AstExpr>> ParseNot();
  absl::StatusOr<std::unique_ptr<AstExpr>> ParsePredicate();
  absl::StatusOr<std::unique_ptr<AstExpr>> ParseConcat();
  absl::StatusOr<std::unique_ptr<AstExpr>> ParseAdditive();
  absl::StatusOr<std::unique_ptr<AstExpr>> ParseMultiplicative();
  absl::StatusOr<std::unique_ptr<AstExpr>> ParseUnary();
  absl::StatusOr<std::unique_ptr<AstExpr>> ParsePrimary();
  absl::StatusOr<std::unique_ptr<AstExpr>> ParseCase(Pos pos);
  absl::StatusOr<std::unique_ptr<AstExpr>> ParseCall(std::string name, Pos pos);
  absl::StatusOr<std::unique_ptr<AstExpr>> ParseNumber(const Token& token, bool negative);

  // Wraps children into a node, computing and bounding its height.
  absl::StatusOr<std::unique_ptr<AstExpr>> Finish(std::unique_ptr<AstExpr> node);

  std::string_view script_;
  std::vector<Token> tokens_;
  size_t next_ = 0;
  int depth_ = 0;  // recursion depth of ParseExpr / ParseUnary / ParseNot
};

}  // namespace tessera::sql
