#include "sql/expr.h"

#include <fmt/format.h>

#include <cmath>

#include "sql/lexer.h"

namespace tessera::sql {
namespace {

constexpr int kPrecOr = 1;
constexpr int kPrecAnd = 2;
constexpr int kPrecNot = 3;
constexpr int kPrecCompare = 4;
constexpr int kPrecConcat = 5;
constexpr int kPrecAdditive = 6;
constexpr int kPrecMultiplicative = 7;
constexpr int kPrecUnary = 8;
constexpr int kPrecPrimary = 9;

int BinaryPrecedence(const std::string& op) {
  if (op == "OR") {
    return kPrecOr;
  }
  if (op == "AND") {
    return kPrecAnd;
  }
  if (op == "||") {
    return kPrecConcat;
  }
  if (op == "+" || op == "-") {
    return kPrecAdditive;
  }
  if (op == "*" || op == "/" || op == "%") {
    return kPrecMultiplicative;
  }
  return kPrecCompare;
}

int Precedence(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::kUnary:
      return e.name == "NOT" ? kPrecNot : kPrecUnary;
    case Expr::Kind::kBinary:
      return BinaryPrecedence(e.name);
    case Expr::Kind::kIsNull:
    case Expr::Kind::kIn:
      return kPrecCompare;
    case Expr::Kind::kLiteral:
      if (!e.literal.is_null() &&
          ((e.literal.type() == DataType::kInt64 && e.literal.int64() < 0) ||
           (e.literal.type() == DataType::kDouble && std::signbit(e.literal.double_value())))) {
        return kPrecUnary;
      }
      return kPrecPrimary;
    default:
      return kPrecPrimary;
  }
}

bool IsPlainIdentifier(const std::string& name) {
  if (name.empty() || IsReservedWord(name)) {
    return false;
  }
  auto start = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           static_cast<unsigned char>(c) >= 0x80;
  };
  if (!start(name[0])) {
    return false;
  }
  for (char c : name) {
    if (!start(c) && !(c >= '0' && c <= '9') && c != '$') {
      return false;
    }
  }
  return true;
}

std::string QuoteName(const std::string& name) {
  if (IsPlainIdentifier(name)) {
    return name;
  }
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') {
      out.push_back('"');
    }
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string Paren(const Expr& e, bool wrap) {
  std::string s = e.ToString();
  return wrap ? "(" + s + ")" : s;
}

}  // namespace

std::string RenderDouble(double d) {
  std::string s = fmt::format("{}", d);
  if (s.find_first_of(".eEn") == std::string::npos) {
    s += ".0";
  }
  return s;
}

std::string Expr::ToString() const {
  switch (kind) {
    case Kind::kLiteral:
      if (!literal.is_null() && literal.type() == DataType::kDouble) {
        return RenderDouble(literal.double_value());
      }
      return literal.ToString();
    case Kind::kColumn:
      return QuoteName(name);
    case Kind::kAggRef:
      return name;
    case Kind::kUnary: {
      if (children.empty()) {
        return name;
      }
      if (name == "NOT") {
        return "NOT " + Paren(*children[0], Precedence(*children[0]) < kPrecNot);
      }
      std::string operand = children[0]->ToString();
      if (Precedence(*children[0]) < kPrecUnary || operand.starts_with("-")) {
        operand = "(" + operand + ")";
      }
      return "-" + operand;
    }
    case Kind::kBinary: {
      if (children.size() != 2) {
        return name;
      }
      int p = BinaryPrecedence(name);
      int lp = Precedence(*children[0]);
      int rp = Precedence(*children[1]);
      bool wrap_left = lp < p || (p == kPrecCompare && lp == kPrecCompare);
      return Paren(*children[0], wrap_left) + " " + name + " " + Paren(*children[1], rp <= p);
    }
    case Kind::kIsNull:
      if (children.empty()) {
        return "NULL";
      }
      return Paren(*children[0], Precedence(*children[0]) <= kPrecCompare) +
             (negated ? " IS NOT NULL" : " IS NULL");
    case Kind::kIn: {
      if (children.empty()) {
        return "NULL";
      }
      std::string s = Paren(*children[0], Precedence(*children[0]) <= kPrecCompare);
      s += negated ? " NOT IN (" : " IN (";
      for (size_t i = 1; i < children.size(); ++i) {
        if (i > 1) {
          s += ", ";
        }
        s += children[i]->ToString();
      }
      return s + ")";
    }
    case Kind::kCase: {
      std::string s = "CASE";
      size_t pairs_end = children.size() - (has_else && !children.empty() ? 1 : 0);
      for (size_t i = 0; i + 1 < pairs_end; i += 2) {
        s += " WHEN " + children[i]->ToString() + " THEN " + children[i + 1]->ToString();
      }
      if (has_else && !children.empty()) {
        s += " ELSE " + children.back()->ToString();
      }
      return s + " END";
    }
    case Kind::kCast:
      if (children.empty()) {
        return "NULL";
      }
      return fmt::format("CAST({} AS {})", children[0]->ToString(), DataTypeName(type));
    case Kind::kFunction: {
      std::string s = name + "(";
      for (size_t i = 0; i < children.size(); ++i) {
        if (i > 0) {
          s += ", ";
        }
        s += children[i]->ToString();
      }
      return s + ")";
    }
  }
  return "?";
}

std::unique_ptr<Expr> Expr::Clone() const {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->type = type;
  e->literal = literal;
  e->index = index;
  e->name = name;
  e->negated = negated;
  e->has_else = has_else;
  e->children.reserve(children.size());
  for (const auto& c : children) {
    e->children.push_back(c->Clone());
  }
  return e;
}

bool CanCast(DataType from, DataType to) {
  if (from == to || from == DataType::kNull) {
    return true;
  }
  if (IsNested(from) || IsNested(to) || to == DataType::kNull) {
    return false;
  }
  if (to == DataType::kString || from == DataType::kString) {
    return true;
  }
  switch (to) {
    case DataType::kBool:
      return from == DataType::kInt64 || from == DataType::kDouble;
    case DataType::kInt64:
    case DataType::kDouble:
      return true;  // from BOOLEAN, BIGINT, DOUBLE, TIMESTAMP
    case DataType::kTimestamp:
      return from == DataType::kInt64 || from == DataType::kDouble;
    default:
      return false;
  }
}

}  // namespace tessera::sql
