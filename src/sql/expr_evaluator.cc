// ExprEvaluator: compiles an Expr into a post-order list of column kernels. Implicit
// conversions (BIGINT -> DOUBLE operands, NULL-typed children) become explicit cast nodes at
// compile time, so every kernel sees operands of exactly the type it computes in. Literals are
// broadcast once into a scratch column and kept while the batch size stays the same; all other
// scratch columns keep their capacity, so a steady-state loop allocates nothing (strings a kernel
// creates go to the caller's Arena).

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>

#include "common/strings.h"
#include "common/time_util.h"
#include "sql/expr.h"
#include "sql/expr_binder.h"

namespace tessera::sql {
namespace {

enum class Op : uint8_t {
  kInput,  // a column of the input (kColumn / kAggRef)
  kConst,  // a literal (or an all-NULL column)
  kCast,   // from children[0]'s type to the node's type
  kNeg,
  kAbs,
  kAdd,
  kSub,
  kMul,
  kMod,
  kDiv,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kAnd,
  kOr,
  kNot,
  kIsNull,
  kIn,
  kCase,
  kCoalesce,
  kConcat,
  kLower,
  kUpper,
  kLength,
  kSubstr,
  kLn,
  kLog,  // LOG(base, x)
  kLog10,
  kLog2,
  kExp,
  kSqrt,
  kPower,
  kRound,
  kGreatest,
  kLeast,
};

bool IsIntLike(DataType t) {
  return t == DataType::kBool || t == DataType::kInt64 || t == DataType::kTimestamp;
}

// Sizes `c` to n rows of `t` without clearing (every kernel writes every row it returns).
void Prepare(Column* c, DataType t, size_t n) {
  c->type = t;
  c->valid.resize(n);
  if (IsIntLike(t)) {
    c->i64.resize(n);
  } else if (t == DataType::kDouble) {
    c->f64.resize(n);
  } else if (t == DataType::kString) {
    c->str.resize(n);
  }
}

bool HasRows(const Column& c, size_t n) {
  if (c.valid.size() < n) {
    return false;
  }
  if (IsIntLike(c.type)) {
    return c.i64.size() >= n;
  }
  if (c.type == DataType::kDouble) {
    return c.f64.size() >= n;
  }
  if (c.type == DataType::kString) {
    return c.str.size() >= n;
  }
  return true;
}

// Copies row i of `src` into row j of `dst` (same type).
inline void CopyRow(const Column& src, size_t i, Column* dst, size_t j) {
  dst->valid[j] = src.valid[i] != 0;
  switch (dst->type) {
    case DataType::kBool:
    case DataType::kInt64:
    case DataType::kTimestamp:
      dst->i64[j] = src.i64[i];
      break;
    case DataType::kDouble:
      dst->f64[j] = src.f64[i];
      break;
    case DataType::kString:
      dst->str[j] = src.valid[i] ? src.str[i] : std::string_view();
      break;
    default:
      dst->valid[j] = 0;
      break;
  }
}

// Parses a whole number (an optional '+', surrounding spaces allowed) with std::from_chars.
template <typename T>
bool ParseNumber(std::string_view s, T* out) {
  s = Trim(s);
  if (!s.empty() && s.front() == '+') {
    s.remove_prefix(1);
  }
  if (s.empty()) {
    return false;
  }
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

bool ParseInt64(std::string_view s, int64_t* out) { return ParseNumber(s, out); }

// Only finite numbers: 'NaN', 'inf' and out-of-range text ('1e999') do not parse.
bool ParseDouble(std::string_view s, double* out) {
  return ParseNumber(s, out) && std::isfinite(*out);
}

bool ParseBool(std::string_view s, int64_t* out) {
  s = Trim(s);
  if (s.size() == 1 && (s[0] == '1' || s[0] == '0')) {
    *out = s[0] == '1';
    return true;
  }
  auto eq = [](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
      return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
      char c = a[i];
      if (c >= 'A' && c <= 'Z') {
        c = static_cast<char>(c + 32);
      }
      if (c != b[i]) {
        return false;
      }
    }
    return true;
  };
  if (eq(s, "true")) {
    *out = 1;
    return true;
  }
  if (eq(s, "false")) {
    *out = 0;
    return true;
  }
  return false;
}

// Double -> BIGINT truncating toward zero; false if not representable.
inline bool DoubleToInt64(double d, int64_t* out) {
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) {
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

// log_base(x), with the exact-where-possible log10 / log2 for those bases. NaN unless base > 0,
// base != 1 and x > 0 (callers turn non-finite results into NULL).
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

inline double LogBase(double base, double x) {
  if (!(base > 0.0) || base == 1.0 || !(x > 0.0)) {
    return kNaN;
  }
  if (base == 10.0) {
    return std::log10(x);
  }
  if (base == 2.0) {
    return std::log2(x);
  }
  return std::log(x) / std::log(base);
}

constexpr uint64_t kPow10[20] = {1ULL,
                                 10ULL,
                                 100ULL,
                                 1000ULL,
                                 10000ULL,
                                 100000ULL,
                                 1000000ULL,
                                 10000000ULL,
                                 100000000ULL,
                                 1000000000ULL,
                                 10000000000ULL,
                                 100000000000ULL,
                                 1000000000000ULL,
                                 10000000000000ULL,
                                 100000000000000ULL,
                                 1000000000000000ULL,
                                 10000000000000000ULL,
                                 100000000000000000ULL,
                                 1000000000000000000ULL,
                                 10000000000000000000ULL};

// ROUND(x, digits) for BIGINT: half away from zero at 10^-digits; digits >= 0 leaves x as it is.
// False if the result does not fit BIGINT (ROUND(9e18, -19) would be 1e19).
inline bool RoundInt64(int64_t x, int64_t digits, int64_t* out) {
  if (digits >= 0) {
    *out = x;
    return true;
  }
  if (digits < -19) {  // |x| < 9.3e18 < 10^20 / 2
    *out = 0;
    return true;
  }
  const uint64_t p = kPow10[static_cast<size_t>(-digits)];
  const uint64_t m = x < 0 ? 0 - static_cast<uint64_t>(x) : static_cast<uint64_t>(x);
  uint64_t q = m / p;
  const uint64_t rem = m % p;
  if (rem >= p - rem) {  // rem >= p / 2, exactly
    ++q;
  }
  uint64_t mag = 0;
  if (__builtin_mul_overflow(q, p, &mag)) {
    return false;
  }
  constexpr auto kMaxMag = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (mag > kMaxMag + (x < 0 ? 1 : 0)) {
    return false;
  }
  *out = x < 0 ? static_cast<int64_t>(0 - mag) : static_cast<int64_t>(mag);
  return true;
}

// ROUND(x, digits) for DOUBLE: half away from zero, applied to the shortest decimal form of x
// (the digits a user sees), so ROUND(2.675, 2) is 2.68 although the binary double is
// 2.67499999…. The decimal result is then read back as the nearest DOUBLE. False if x or the
// result is not finite. A zero result is +0.0.
bool RoundDouble(double x, int64_t digits, double* out) {
  if (!std::isfinite(x)) {
    return false;
  }
  if (x == 0.0) {
    *out = 0.0;
    return true;
  }
  // Any double has at most 17 significant digits and a decimal exponent in [-324, 308].
  digits = std::clamp<int64_t>(digits, -400, 400);
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), x, std::chars_format::scientific);
  std::string_view s(buf, static_cast<size_t>(res.ptr - buf));  // [-]d[.ddd]e(+|-)dd
  const bool negative = s.front() == '-';
  if (negative) {
    s.remove_prefix(1);
  }
  const size_t e_pos = s.find('e');
  if (e_pos == std::string_view::npos) {
    return false;
  }
  std::string_view exp_text = s.substr(e_pos + 1);
  if (!exp_text.empty() && exp_text.front() == '+') {
    exp_text.remove_prefix(1);
  }
  int exp10 = 0;
  if (std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exp10).ec !=
      std::errc()) {
    return false;
  }
  // The significant digits d0 d1 …; digit i has place value 10^(exp10 - i).
  char mant[32];
  size_t nd = 0;
  for (char c : s.substr(0, e_pos)) {
    if (c != '.' && nd < sizeof(mant)) {
      mant[nd++] = c;
    }
  }
  // Keep the digits whose place value is at least 10^-digits.
  const int64_t keep = exp10 + digits + 1;
  if (keep >= static_cast<int64_t>(nd)) {
    *out = x;
    return true;
  }
  if (keep < 0 || (keep == 0 && mant[0] < '5')) {
    *out = 0.0;
    return true;
  }
  // The result is K * 10^-digits with K the kept digits, plus one if the first dropped digit is
  // 5 or more (half away from zero: the sign is applied afterwards).
  char text[48];
  size_t len = 0;
  if (negative) {
    text[len++] = '-';
  }
  const size_t k_begin = len;
  text[len++] = '0';  // room for a carry out of the leading digit
  std::memcpy(text + len, mant, static_cast<size_t>(keep));
  len += static_cast<size_t>(keep);
  if (mant[keep] >= '5') {
    size_t i = len;
    while (i-- > k_begin) {
      if (text[i] == '9') {
        text[i] = '0';
      } else {
        ++text[i];
        break;
      }
    }
  }
  auto tail = fmt::format_to_n(text + len, sizeof(text) - len, "e{}", -digits);
  len += std::min(tail.size, sizeof(text) - len);
  double value = 0.0;
  auto parsed = std::from_chars(text, text + len, value);
  if (parsed.ec != std::errc() || parsed.ptr != text + len || !std::isfinite(value)) {
    return false;
  }
  *out = value == 0.0 ? 0.0 : value;
  return true;
}

// Byte offset of the code point with 0-based index `cp` in `s` (s.size() if past the end).
size_t CodePointOffset(std::string_view s, int64_t cp) {
  if (cp <= 0) {
    return 0;
  }
  int64_t seen = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (seen == cp) {
        return i;
      }
      ++seen;
    }
  }
  return s.size();
}

}  // namespace

struct ExprEvaluator::Impl {
  struct Node {
    Op op = Op::kConst;
    DataType type = DataType::kNull;     // result type
    DataType in_type = DataType::kNull;  // operand type (casts, comparisons, IN)
    int input = -1;                      // kInput
    bool negated = false;                // kIsNull, kIn
    bool has_else = false;               // kCase
    Value constant;                      // kConst
    std::vector<int> kids;
    Column scratch;
    std::vector<uint8_t> aux;  // per-row flags (CASE: decided; IN: found / saw NULL)
    size_t const_rows = std::numeric_limits<size_t>::max();
    const Column* out = nullptr;
  };

  std::vector<Node> nodes;  // post-order: children before parents; the root is last
  const Expr* root_expr = nullptr;

  // EvaluateRow state.
  std::vector<DataType> input_types;  // expected type per input index
  std::vector<Column> row_inputs;
  Arena row_arena{4096};

  int Add(Node node) {
    nodes.push_back(std::move(node));
    return static_cast<int>(nodes.size()) - 1;
  }

  int NullConst(DataType type) {
    Node n;
    n.op = Op::kConst;
    n.type = type;
    n.constant = Value::Null(type);
    return Add(std::move(n));
  }

  // `child` converted to `to`.
  int Convert(int child, DataType to) {
    DataType from = nodes[static_cast<size_t>(child)].type;
    if (from == to) {
      return child;
    }
    if (from == DataType::kNull || !CanCast(from, to) || to == DataType::kNull) {
      return NullConst(to);
    }
    Node n;
    n.op = Op::kCast;
    n.type = to;
    n.in_type = from;
    n.kids = {child};
    return Add(std::move(n));
  }

  int Compile(const Expr& e);
  int CompileBinary(const Expr& e);
  int CompileFunction(const Expr& e);

  void Run(Node& node, std::span<const Column> input, size_t n, Arena* arena);
  void FillConstant(Node* node, size_t n);
  void RunCast(Node& node, size_t n, Arena* arena);
  void RunArith(Node& node, size_t n);
  void RunCompare(Node& node, size_t n);
  void RunLogic(Node& node, size_t n);
  void RunIn(Node& node, size_t n);
  void RunCase(Node& node, size_t n);
  void RunString(Node& node, size_t n, Arena* arena);
  void RunMath(Node& node, size_t n);
  void RunRound(Node& node, size_t n);
  void RunExtreme(Node& node, size_t n);

  const Column& Kid(const Node& node, size_t i) const {
    return *nodes[static_cast<size_t>(node.kids[i])].out;
  }
};

int ExprEvaluator::Impl::Compile(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::kLiteral: {
      Node n;
      n.op = Op::kConst;
      n.type = e.type;
      // A literal whose value does not match its declared type is treated as NULL.
      n.constant =
          (e.literal.is_null() || e.literal.type() == e.type) ? e.literal : Value::Null(e.type);
      if (IsNested(e.type)) {
        n.constant = Value::Null(e.type);
      }
      return Add(std::move(n));
    }
    case Expr::Kind::kColumn:
    case Expr::Kind::kAggRef: {
      Node n;
      n.op = Op::kInput;
      n.type = e.type;
      n.input = e.index;
      if (e.index >= 0) {
        auto idx = static_cast<size_t>(e.index);
        if (input_types.size() <= idx) {
          input_types.resize(idx + 1, DataType::kNull);
        }
        input_types[idx] = e.type;
      }
      return Add(std::move(n));
    }
    case Expr::Kind::kUnary: {
      if (e.children.size() != 1) {
        return NullConst(e.type);
      }
      int c = Compile(*e.children[0]);
      if (e.name == "NOT") {
        Node n;
        n.op = Op::kNot;
        n.type = DataType::kBool;
        n.kids = {Convert(c, DataType::kBool)};
        return Add(std::move(n));
      }
      if (!IsNumeric(e.type) || nodes[static_cast<size_t>(c)].type == DataType::kNull) {
        return NullConst(e.type);
      }
      Node n;
      n.op = Op::kNeg;
      n.type = e.type;
      n.kids = {Convert(c, e.type)};
      return Add(std::move(n));
    }
    case Expr::Kind::kBinary:
      return CompileBinary(e);
    case Expr::Kind::kIsNull: {
      if (e.children.size() != 1) {
        return NullConst(DataType::kBool);
      }
      Node n;
      n.op = Op::kIsNull;
      n.type = DataType::kBool;
      n.negated = e.negated;
      n.kids = {Compile(*e.children[0])};
      return Add(std::move(n));
    }
    case Expr::Kind::kIn: {
      if (e.children.size() < 2) {
        return NullConst(DataType::kBool);
      }
      std::vector<int> kids;
      DataType ct = DataType::kNull;
      bool ok = true;
      for (const auto& c : e.children) {
        kids.push_back(Compile(*c));
        std::optional<DataType> next = ComparisonType(ct, nodes[kids.back()].type);
        if (!next) {
          ok = false;
        }
        ct = next.value_or(ct);
      }
      if (!ok || ct == DataType::kNull) {
        return NullConst(DataType::kBool);
      }
      Node n;
      n.op = Op::kIn;
      n.type = DataType::kBool;
      n.in_type = ct;
      n.negated = e.negated;
      for (int k : kids) {
        n.kids.push_back(Convert(k, ct));
      }
      return Add(std::move(n));
    }
    case Expr::Kind::kCase: {
      size_t pairs_end = e.children.size() - (e.has_else && !e.children.empty() ? 1 : 0);
      if (e.type == DataType::kNull || IsNested(e.type) || pairs_end % 2 != 0) {
        return NullConst(e.type);
      }
      Node n;
      n.op = Op::kCase;
      n.type = e.type;
      n.has_else = e.has_else;
      for (size_t i = 0; i < e.children.size(); ++i) {
        int c = Compile(*e.children[i]);
        bool is_when = i < pairs_end && i % 2 == 0;
        n.kids.push_back(Convert(c, is_when ? DataType::kBool : e.type));
      }
      return Add(std::move(n));
    }
    case Expr::Kind::kCast: {
      if (e.children.size() != 1) {
        return NullConst(e.type);
      }
      return Convert(Compile(*e.children[0]), e.type);
    }
    case Expr::Kind::kFunction:
      return CompileFunction(e);
  }
  return NullConst(e.type);
}

int ExprEvaluator::Impl::CompileBinary(const Expr& e) {
  if (e.children.size() != 2) {
    return NullConst(e.type);
  }
  int a = Compile(*e.children[0]);
  int b = Compile(*e.children[1]);
  DataType ta = nodes[static_cast<size_t>(a)].type;
  DataType tb = nodes[static_cast<size_t>(b)].type;
  const std::string& op = e.name;
  Node n;
  n.type = e.type;
  if (op == "AND" || op == "OR") {
    n.op = op == "AND" ? Op::kAnd : Op::kOr;
    n.type = DataType::kBool;
    n.kids = {Convert(a, DataType::kBool), Convert(b, DataType::kBool)};
    return Add(std::move(n));
  }
  // Everything below propagates NULL: a NULL-typed operand makes the result NULL.
  if (ta == DataType::kNull || tb == DataType::kNull) {
    return NullConst(e.type);
  }
  if (op == "=" || op == "<>" || op == "<" || op == "<=" || op == ">" || op == ">=") {
    std::optional<DataType> ct = ComparisonType(ta, tb);
    if (!ct) {
      return NullConst(DataType::kBool);
    }
    n.op = op == "="    ? Op::kEq
           : op == "<>" ? Op::kNe
           : op == "<"  ? Op::kLt
           : op == "<=" ? Op::kLe
           : op == ">"  ? Op::kGt
                        : Op::kGe;
    n.type = DataType::kBool;
    n.in_type = *ct;
    n.kids = {Convert(a, *ct), Convert(b, *ct)};
    return Add(std::move(n));
  }
  if (op == "||") {
    if (e.type != DataType::kString) {
      return NullConst(e.type);
    }
    n.op = Op::kConcat;
    n.kids = {Convert(a, DataType::kString), Convert(b, DataType::kString)};
    return Add(std::move(n));
  }
  if (!IsNumeric(e.type)) {
    return NullConst(e.type);
  }
  n.op = op == "+"   ? Op::kAdd
         : op == "-" ? Op::kSub
         : op == "*" ? Op::kMul
         : op == "%" ? Op::kMod
                     : Op::kDiv;
  if (op != "+" && op != "-" && op != "*" && op != "%" && op != "/") {
    return NullConst(e.type);
  }
  n.kids = {Convert(a, e.type), Convert(b, e.type)};
  return Add(std::move(n));
}

int ExprEvaluator::Impl::CompileFunction(const Expr& e) {
  std::vector<int> kids;
  for (const auto& c : e.children) {
    kids.push_back(Compile(*c));
  }
  Node n;
  n.type = e.type;
  if (e.name == "COALESCE") {
    if (kids.empty() || e.type == DataType::kNull || IsNested(e.type)) {
      return NullConst(e.type);
    }
    n.op = Op::kCoalesce;
    for (int k : kids) {
      n.kids.push_back(Convert(k, e.type));
    }
    return Add(std::move(n));
  }
  for (int k : kids) {
    if (nodes[static_cast<size_t>(k)].type == DataType::kNull) {
      return NullConst(e.type);
    }
  }
  if ((e.name == "LOWER" || e.name == "UPPER" || e.name == "LENGTH") && kids.size() == 1 &&
      nodes[kids[0]].type == DataType::kString) {
    n.op = e.name == "LOWER" ? Op::kLower : e.name == "UPPER" ? Op::kUpper : Op::kLength;
    n.type = e.name == "LENGTH" ? DataType::kInt64 : DataType::kString;
    n.kids = kids;
    return Add(std::move(n));
  }
  if (e.name == "SUBSTR" && (kids.size() == 2 || kids.size() == 3) &&
      nodes[kids[0]].type == DataType::kString) {
    n.op = Op::kSubstr;
    n.type = DataType::kString;
    n.kids = {kids[0]};
    for (size_t i = 1; i < kids.size(); ++i) {
      n.kids.push_back(Convert(kids[i], DataType::kInt64));
    }
    return Add(std::move(n));
  }
  if (e.name == "ABS" && kids.size() == 1 && IsNumeric(e.type)) {
    n.op = Op::kAbs;
    n.kids = {Convert(kids[0], e.type)};
    return Add(std::move(n));
  }
  if (e.type == DataType::kDouble) {
    const size_t arity = kids.size();
    std::optional<Op> op;
    if (arity == 1) {
      op = e.name == "LN" || e.name == "LOG" ? std::optional(Op::kLn)
           : e.name == "LOG10"               ? std::optional(Op::kLog10)
           : e.name == "LOG2"                ? std::optional(Op::kLog2)
           : e.name == "EXP"                 ? std::optional(Op::kExp)
           : e.name == "SQRT"                ? std::optional(Op::kSqrt)
                                             : std::nullopt;
    } else if (arity == 2) {
      op = e.name == "LOG"     ? std::optional(Op::kLog)
           : e.name == "POWER" ? std::optional(Op::kPower)
                               : std::nullopt;
    }
    if (op) {
      n.op = *op;
      for (int k : kids) {
        n.kids.push_back(Convert(k, DataType::kDouble));
      }
      return Add(std::move(n));
    }
  }
  if (e.name == "ROUND" && IsNumeric(e.type) && (kids.size() == 1 || kids.size() == 2)) {
    n.op = Op::kRound;
    n.kids = {Convert(kids[0], e.type)};
    if (kids.size() == 2) {
      n.kids.push_back(Convert(kids[1], DataType::kInt64));
    }
    return Add(std::move(n));
  }
  if ((e.name == "GREATEST" || e.name == "LEAST") && !kids.empty() && e.type != DataType::kNull &&
      !IsNested(e.type)) {
    n.op = e.name == "GREATEST" ? Op::kGreatest : Op::kLeast;
    for (int k : kids) {
      n.kids.push_back(Convert(k, e.type));
    }
    return Add(std::move(n));
  }
  return NullConst(e.type);
}

void ExprEvaluator::Impl::RunCast(Node& node, size_t n, Arena* arena) {
  const Column& a = Kid(node, 0);
  Column& r = node.scratch;
  Prepare(&r, node.type, n);
  DataType from = node.in_type;
  DataType to = node.type;
  const uint8_t* va = a.valid.data();
  uint8_t* rv = r.valid.data();
  if (to == DataType::kString) {
    char buf[64];
    for (size_t i = 0; i < n; ++i) {
      rv[i] = va[i] != 0;
      r.str[i] = std::string_view();
      if (!rv[i]) {
        continue;
      }
      switch (from) {
        case DataType::kBool:
          r.str[i] = a.i64[i] != 0 ? std::string_view("true") : std::string_view("false");
          break;
        case DataType::kInt64: {
          auto res = std::to_chars(buf, buf + sizeof(buf), a.i64[i]);
          r.str[i] = arena->Copy(std::string_view(buf, static_cast<size_t>(res.ptr - buf)));
          break;
        }
        case DataType::kDouble: {
          double d = a.f64[i];
          if (!std::isfinite(d)) {
            rv[i] = 0;
            break;
          }
          auto res = fmt::format_to_n(buf, sizeof(buf), "{}", d);
          r.str[i] = arena->Copy(std::string_view(buf, std::min(res.size, sizeof(buf))));
          break;
        }
        case DataType::kTimestamp:
          r.str[i] = arena->Copy(FormatRfc3339Millis(a.i64[i]));
          break;
        default:
          rv[i] = 0;
      }
    }
    return;
  }
  if (from == DataType::kString) {
    for (size_t i = 0; i < n; ++i) {
      bool ok = va[i] != 0;
      std::string_view s = ok ? a.str[i] : std::string_view();
      switch (to) {
        case DataType::kInt64:
          ok = ok && ParseInt64(s, &r.i64[i]);
          break;
        case DataType::kDouble:
          ok = ok && ParseDouble(s, &r.f64[i]);
          break;
        case DataType::kBool:
          ok = ok && ParseBool(s, &r.i64[i]);
          break;
        case DataType::kTimestamp: {
          if (!ok) {
            break;
          }
          std::optional<int64_t> ms = ParseRfc3339Millis(Trim(s));
          if (ms) {
            r.i64[i] = *ms;
          } else {
            ok = ParseInt64(s, &r.i64[i]);
          }
          break;
        }
        default:
          ok = false;
      }
      rv[i] = ok;
    }
    return;
  }
  if (IsIntLike(from) && IsIntLike(to)) {
    const int64_t* x = a.i64.data();
    int64_t* out = r.i64.data();
    if (to == DataType::kBool) {
      for (size_t i = 0; i < n; ++i) {
        out[i] = x[i] != 0;
      }
    } else {
      std::memcpy(out, x, n * sizeof(int64_t));
    }
    for (size_t i = 0; i < n; ++i) {
      rv[i] = va[i] != 0;
    }
    return;
  }
  if (IsIntLike(from) && to == DataType::kDouble) {
    const int64_t* x = a.i64.data();
    double* out = r.f64.data();
    for (size_t i = 0; i < n; ++i) {
      out[i] = static_cast<double>(x[i]);
      rv[i] = va[i] != 0;
    }
    return;
  }
  if (from == DataType::kDouble && IsIntLike(to)) {
    const double* x = a.f64.data();
    int64_t* out = r.i64.data();
    for (size_t i = 0; i < n; ++i) {
      if (to == DataType::kBool) {
        out[i] = x[i] != 0.0;
        rv[i] = va[i] != 0;
      } else {
        bool ok = DoubleToInt64(x[i], &out[i]);
        if (!ok) {
          out[i] = 0;
        }
        rv[i] = (va[i] != 0) & ok;
      }
    }
    return;
  }
  std::fill(rv, rv + n, 0);
}

void ExprEvaluator::Impl::RunArith(Node& node, size_t n) {
  Column& r = node.scratch;
  Prepare(&r, node.type, n);
  uint8_t* rv = r.valid.data();
  const Column& a = Kid(node, 0);
  const uint8_t* va = a.valid.data();
  if (node.op == Op::kNeg || node.op == Op::kAbs) {
    bool neg = node.op == Op::kNeg;
    if (node.type == DataType::kInt64) {
      const int64_t* x = a.i64.data();
      int64_t* out = r.i64.data();
      // -INT64_MIN and ABS(INT64_MIN) do not fit BIGINT: NULL, like every integer overflow.
      for (size_t i = 0; i < n; ++i) {
        auto m = static_cast<int64_t>(0 - static_cast<uint64_t>(x[i]));
        out[i] = neg ? m : (x[i] < 0 ? m : x[i]);
        rv[i] = (va[i] != 0) & (x[i] != std::numeric_limits<int64_t>::min());
      }
    } else {
      const double* x = a.f64.data();
      double* out = r.f64.data();
      for (size_t i = 0; i < n; ++i) {
        out[i] = neg ? -x[i] : std::fabs(x[i]);
        rv[i] = va[i] != 0;
      }
    }
    return;
  }
  const Column& b = Kid(node, 1);
  const uint8_t* vb = b.valid.data();
  if (node.type == DataType::kInt64) {
    const int64_t* x = a.i64.data();
    const int64_t* y = b.i64.data();
    int64_t* out = r.i64.data();
    switch (node.op) {
      case Op::kAdd:
        for (size_t i = 0; i < n; ++i) {
          const bool overflow = __builtin_add_overflow(x[i], y[i], &out[i]);
          rv[i] = (va[i] != 0) & (vb[i] != 0) & !overflow;
        }
        break;
      case Op::kSub:
        for (size_t i = 0; i < n; ++i) {
          const bool overflow = __builtin_sub_overflow(x[i], y[i], &out[i]);
          rv[i] = (va[i] != 0) & (vb[i] != 0) & !overflow;
        }
        break;
      case Op::kMul:
        for (size_t i = 0; i < n; ++i) {
          const bool overflow = __builtin_mul_overflow(x[i], y[i], &out[i]);
          rv[i] = (va[i] != 0) & (vb[i] != 0) & !overflow;
        }
        break;
      case Op::kMod:
        for (size_t i = 0; i < n; ++i) {
          int64_t d = y[i];
          out[i] = (d == 0 || d == -1) ? 0 : x[i] % d;
          rv[i] = (va[i] != 0) & (vb[i] != 0) & (d != 0);
        }
        break;
      default:
        std::fill(rv, rv + n, 0);
    }
    return;
  }
  const double* x = a.f64.data();
  const double* y = b.f64.data();
  double* out = r.f64.data();
  switch (node.op) {
    case Op::kAdd:
      for (size_t i = 0; i < n; ++i) {
        out[i] = x[i] + y[i];
        rv[i] = (va[i] != 0) & (vb[i] != 0);
      }
      break;
    case Op::kSub:
      for (size_t i = 0; i < n; ++i) {
        out[i] = x[i] - y[i];
        rv[i] = (va[i] != 0) & (vb[i] != 0);
      }
      break;
    case Op::kMul:
      for (size_t i = 0; i < n; ++i) {
        out[i] = x[i] * y[i];
        rv[i] = (va[i] != 0) & (vb[i] != 0);
      }
      break;
    case Op::kDiv:
      for (size_t i = 0; i < n; ++i) {
        double d = y[i];
        bool nz = d != 0.0;
        out[i] = x[i] / (nz ? d : 1.0);
        rv[i] = (va[i] != 0) & (vb[i] != 0) & nz;
      }
      break;
    case Op::kMod:
      for (size_t i = 0; i < n; ++i) {
        double d = y[i];
        bool nz = d != 0.0;
        out[i] = nz ? std::fmod(x[i], d) : 0.0;
        rv[i] = (va[i] != 0) & (vb[i] != 0) & nz;
      }
      break;
    default:
      std::fill(rv, rv + n, 0);
  }
}

namespace {

template <typename T, typename Cmp>
void CompareLoop(const T* x, const T* y, const uint8_t* va, const uint8_t* vb, int64_t* out,
                 uint8_t* rv, size_t n, Cmp cmp) {
  for (size_t i = 0; i < n; ++i) {
    out[i] = cmp(x[i], y[i]);
    rv[i] = (va[i] != 0) & (vb[i] != 0);
  }
}

template <typename T>
void CompareDispatch(Op op, const T* x, const T* y, const uint8_t* va, const uint8_t* vb,
                     int64_t* out, uint8_t* rv, size_t n) {
  switch (op) {
    case Op::kEq:
      CompareLoop(x, y, va, vb, out, rv, n, [](const T& p, const T& q) { return p == q; });
      break;
    case Op::kNe:
      CompareLoop(x, y, va, vb, out, rv, n, [](const T& p, const T& q) { return p != q; });
      break;
    case Op::kLt:
      CompareLoop(x, y, va, vb, out, rv, n, [](const T& p, const T& q) { return p < q; });
      break;
    case Op::kLe:
      CompareLoop(x, y, va, vb, out, rv, n, [](const T& p, const T& q) { return p <= q; });
      break;
    case Op::kGt:
      CompareLoop(x, y, va, vb, out, rv, n, [](const T& p, const T& q) { return p > q; });
      break;
    default:
      CompareLoop(x, y, va, vb, out, rv, n, [](const T& p, const T& q) { return p >= q; });
      break;
  }
}

}  // namespace

void ExprEvaluator::Impl::RunCompare(Node& node, size_t n) {
  const Column& a = Kid(node, 0);
  const Column& b = Kid(node, 1);
  Column& r = node.scratch;
  Prepare(&r, DataType::kBool, n);
  const uint8_t* va = a.valid.data();
  const uint8_t* vb = b.valid.data();
  if (IsIntLike(node.in_type)) {
    CompareDispatch(node.op, a.i64.data(), b.i64.data(), va, vb, r.i64.data(), r.valid.data(), n);
  } else if (node.in_type == DataType::kDouble) {
    CompareDispatch(node.op, a.f64.data(), b.f64.data(), va, vb, r.i64.data(), r.valid.data(), n);
  } else if (node.in_type == DataType::kString) {
    // NULL rows may hold stale views; compare empty views for them instead.
    for (size_t i = 0; i < n; ++i) {
      bool valid = (va[i] != 0) & (vb[i] != 0);
      r.valid[i] = valid;
      if (!valid) {
        r.i64[i] = 0;
        continue;
      }
      int c = a.str[i].compare(b.str[i]);
      bool v = false;
      switch (node.op) {
        case Op::kEq:
          v = c == 0;
          break;
        case Op::kNe:
          v = c != 0;
          break;
        case Op::kLt:
          v = c < 0;
          break;
        case Op::kLe:
          v = c <= 0;
          break;
        case Op::kGt:
          v = c > 0;
          break;
        default:
          v = c >= 0;
      }
      r.i64[i] = v;
    }
  } else {
    std::fill(r.valid.begin(), r.valid.end(), 0);
  }
}

void ExprEvaluator::Impl::RunLogic(Node& node, size_t n) {
  Column& r = node.scratch;
  Prepare(&r, DataType::kBool, n);
  uint8_t* rv = r.valid.data();
  int64_t* out = r.i64.data();
  const Column& a = Kid(node, 0);
  const uint8_t* va = a.valid.data();
  const int64_t* x = a.i64.data();
  if (node.op == Op::kNot) {
    for (size_t i = 0; i < n; ++i) {
      out[i] = x[i] == 0;
      rv[i] = va[i] != 0;
    }
    return;
  }
  if (node.op == Op::kIsNull) {
    for (size_t i = 0; i < n; ++i) {
      out[i] = (va[i] == 0) != node.negated;
      rv[i] = 1;
    }
    return;
  }
  const Column& b = Kid(node, 1);
  const uint8_t* vb = b.valid.data();
  const int64_t* y = b.i64.data();
  if (node.op == Op::kAnd) {
    // FALSE wins over NULL; TRUE only if both are TRUE.
    for (size_t i = 0; i < n; ++i) {
      bool av = va[i] != 0, bv = vb[i] != 0;
      bool at = av & (x[i] != 0), bt = bv & (y[i] != 0);
      bool af = av & (x[i] == 0), bf = bv & (y[i] == 0);
      out[i] = at & bt;
      rv[i] = (av & bv) | af | bf;
    }
  } else {
    // TRUE wins over NULL; FALSE only if both are FALSE.
    for (size_t i = 0; i < n; ++i) {
      bool av = va[i] != 0, bv = vb[i] != 0;
      bool at = av & (x[i] != 0), bt = bv & (y[i] != 0);
      out[i] = at | bt;
      rv[i] = (av & bv) | at | bt;
    }
  }
}

void ExprEvaluator::Impl::RunIn(Node& node, size_t n) {
  Column& r = node.scratch;
  Prepare(&r, DataType::kBool, n);
  const Column& x = Kid(node, 0);
  // aux: bit 0 = found, bit 1 = saw a NULL.
  node.aux.assign(n, 0);
  uint8_t* flags = node.aux.data();
  for (size_t i = 0; i < n; ++i) {
    if (x.valid[i] == 0) {
      flags[i] = 2;
    }
  }
  DataType ct = node.in_type;
  for (size_t k = 1; k < node.kids.size(); ++k) {
    const Column& y = Kid(node, k);
    for (size_t i = 0; i < n; ++i) {
      if (y.valid[i] == 0) {
        flags[i] |= 2;
        continue;
      }
      if (x.valid[i] == 0) {
        continue;
      }
      bool eq = IsIntLike(ct)             ? x.i64[i] == y.i64[i]
                : ct == DataType::kDouble ? x.f64[i] == y.f64[i]
                : ct == DataType::kString ? x.str[i] == y.str[i]
                                          : false;
      flags[i] |= eq ? 1 : 0;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    bool found = flags[i] & 1;
    bool saw_null = (flags[i] & 2) != 0;
    r.valid[i] = found || !saw_null;
    r.i64[i] = found != node.negated;
  }
}

void ExprEvaluator::Impl::RunCase(Node& node, size_t n) {
  Column& r = node.scratch;
  Prepare(&r, node.type, n);
  std::fill(r.valid.begin(), r.valid.end(), 0);
  node.aux.assign(n, 0);
  uint8_t* decided = node.aux.data();
  size_t pairs_end = node.kids.size() - (node.has_else ? 1 : 0);
  for (size_t k = 0; k + 1 < pairs_end; k += 2) {
    const Column& when = Kid(node, k);
    const Column& then = Kid(node, k + 1);
    for (size_t i = 0; i < n; ++i) {
      if (decided[i] || when.valid[i] == 0 || when.i64[i] == 0) {
        continue;
      }
      decided[i] = 1;
      CopyRow(then, i, &r, i);
    }
  }
  if (node.has_else) {
    const Column& other = Kid(node, node.kids.size() - 1);
    for (size_t i = 0; i < n; ++i) {
      if (!decided[i]) {
        CopyRow(other, i, &r, i);
      }
    }
  }
}

void ExprEvaluator::Impl::RunString(Node& node, size_t n, Arena* arena) {
  Column& r = node.scratch;
  Prepare(&r, node.type, n);
  const Column& a = Kid(node, 0);
  switch (node.op) {
    case Op::kConcat: {
      const Column& b = Kid(node, 1);
      for (size_t i = 0; i < n; ++i) {
        bool valid = a.valid[i] != 0 && b.valid[i] != 0;
        r.valid[i] = valid;
        r.str[i] = std::string_view();
        if (!valid) {
          continue;
        }
        std::string_view x = a.str[i], y = b.str[i];
        if (y.empty()) {
          r.str[i] = x;
        } else if (x.empty()) {
          r.str[i] = y;
        } else {
          char* p = arena->Allocate(x.size() + y.size());
          std::memcpy(p, x.data(), x.size());
          std::memcpy(p + x.size(), y.data(), y.size());
          r.str[i] = std::string_view(p, x.size() + y.size());
        }
      }
      return;
    }
    case Op::kLower:
    case Op::kUpper: {
      bool lower = node.op == Op::kLower;
      char lo = lower ? 'A' : 'a';
      char hi = lower ? 'Z' : 'z';
      for (size_t i = 0; i < n; ++i) {
        r.valid[i] = a.valid[i] != 0;
        r.str[i] = std::string_view();
        if (!r.valid[i]) {
          continue;
        }
        std::string_view s = a.str[i];
        size_t first = 0;
        while (first < s.size() && !(s[first] >= lo && s[first] <= hi)) {
          ++first;
        }
        if (first == s.size()) {
          r.str[i] = s;  // unchanged: no copy
          continue;
        }
        char* p = arena->Allocate(s.size());
        for (size_t j = 0; j < s.size(); ++j) {
          char c = s[j];
          p[j] = (c >= lo && c <= hi) ? static_cast<char>(lower ? c + 32 : c - 32) : c;
        }
        r.str[i] = std::string_view(p, s.size());
      }
      return;
    }
    case Op::kLength:
      for (size_t i = 0; i < n; ++i) {
        r.valid[i] = a.valid[i] != 0;
        int64_t count = 0;
        if (r.valid[i]) {
          for (char c : a.str[i]) {
            count += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
          }
        }
        r.i64[i] = count;
      }
      return;
    case Op::kSubstr: {
      const Column& start = Kid(node, 1);
      const Column* len = node.kids.size() > 2 ? &Kid(node, 2) : nullptr;
      for (size_t i = 0; i < n; ++i) {
        bool valid =
            a.valid[i] != 0 && start.valid[i] != 0 && (len == nullptr || len->valid[i] != 0);
        r.str[i] = std::string_view();
        if (valid && len != nullptr && len->i64[i] < 0) {
          valid = false;
        }
        r.valid[i] = valid;
        if (!valid) {
          continue;
        }
        // Code points [from, to) of the 1-based range [start, start + len), clipped to the
        // string (PostgreSQL semantics for start < 1).
        int64_t s0 = start.i64[i];
        int64_t from = std::max<int64_t>(s0, 1);
        int64_t to = std::numeric_limits<int64_t>::max();
        if (len != nullptr) {
          int64_t l = len->i64[i];
          to = s0 > std::numeric_limits<int64_t>::max() - l ? to : s0 + l;
        }
        if (to <= from) {
          continue;
        }
        std::string_view s = a.str[i];
        size_t b0 = CodePointOffset(s, from - 1);
        size_t b1 =
            to == std::numeric_limits<int64_t>::max() ? s.size() : CodePointOffset(s, to - 1);
        if (b1 > b0) {
          r.str[i] = s.substr(b0, b1 - b0);
        }
      }
      return;
    }
    default:
      std::fill(r.valid.begin(), r.valid.end(), 0);
  }
}

void ExprEvaluator::Impl::RunMath(Node& node, size_t n) {
  Column& r = node.scratch;
  Prepare(&r, DataType::kDouble, n);
  uint8_t* rv = r.valid.data();
  double* out = r.f64.data();
  const Column& a = Kid(node, 0);
  const uint8_t* va = a.valid.data();
  const double* x = a.f64.data();
  // A NULL, infinite or NaN argument, and a result that is not a finite number (a domain error
  // such as LN(0) or SQRT(-1), or an overflow such as EXP(1000)), all give NULL.
  auto unary = [&](auto f) {
    for (size_t i = 0; i < n; ++i) {
      const double y = f(x[i]);
      const bool ok = va[i] != 0 && std::isfinite(x[i]) && std::isfinite(y);
      out[i] = ok ? y : 0.0;
      rv[i] = ok;
    }
  };
  switch (node.op) {
    case Op::kLn:
      unary([](double v) { return v > 0.0 ? std::log(v) : kNaN; });
      return;
    case Op::kLog10:
      unary([](double v) { return v > 0.0 ? std::log10(v) : kNaN; });
      return;
    case Op::kLog2:
      unary([](double v) { return v > 0.0 ? std::log2(v) : kNaN; });
      return;
    case Op::kExp:
      unary([](double v) { return std::exp(v); });
      return;
    case Op::kSqrt:
      unary([](double v) { return v >= 0.0 ? std::sqrt(v) : kNaN; });
      return;
    default:
      break;
  }
  const Column& b = Kid(node, 1);
  const uint8_t* vb = b.valid.data();
  const double* y = b.f64.data();
  const bool log = node.op == Op::kLog;
  for (size_t i = 0; i < n; ++i) {
    const double z = log ? LogBase(x[i], y[i]) : std::pow(x[i], y[i]);
    const bool ok =
        va[i] != 0 && vb[i] != 0 && std::isfinite(x[i]) && std::isfinite(y[i]) && std::isfinite(z);
    out[i] = ok ? z : 0.0;
    rv[i] = ok;
  }
}

void ExprEvaluator::Impl::RunRound(Node& node, size_t n) {
  Column& r = node.scratch;
  Prepare(&r, node.type, n);
  uint8_t* rv = r.valid.data();
  const Column& a = Kid(node, 0);
  const Column* d = node.kids.size() > 1 ? &Kid(node, 1) : nullptr;
  for (size_t i = 0; i < n; ++i) {
    bool ok = a.valid[i] != 0 && (d == nullptr || d->valid[i] != 0);
    const int64_t digits = d == nullptr ? 0 : d->i64[i];
    if (node.type == DataType::kInt64) {
      int64_t v = 0;
      ok = ok && RoundInt64(a.i64[i], digits, &v);
      r.i64[i] = v;
    } else {
      double v = 0.0;
      ok = ok && RoundDouble(a.f64[i], digits, &v);
      r.f64[i] = v;
    }
    rv[i] = ok;
  }
}

void ExprEvaluator::Impl::RunExtreme(Node& node, size_t n) {
  Column& r = node.scratch;
  Prepare(&r, node.type, n);
  const Column& first = Kid(node, 0);
  for (size_t i = 0; i < n; ++i) {
    CopyRow(first, i, &r, i);
  }
  const bool greatest = node.op == Op::kGreatest;
  // Any NULL argument makes the row NULL. `better(c, i)` says whether row i of `c` should replace
  // the current result; DOUBLE orders NaN above every number, strings compare bytewise.
  auto fold = [&](const Column& c, auto better) {
    for (size_t i = 0; i < n; ++i) {
      if (r.valid[i] == 0) {
        continue;
      }
      if (c.valid[i] == 0) {
        r.valid[i] = 0;
        continue;
      }
      if (better(c, i)) {
        CopyRow(c, i, &r, i);
      }
    }
  };
  for (size_t k = 1; k < node.kids.size(); ++k) {
    const Column& c = Kid(node, k);
    if (IsIntLike(node.type)) {
      fold(c, [&](const Column& col, size_t i) {
        return greatest ? r.i64[i] < col.i64[i] : col.i64[i] < r.i64[i];
      });
    } else if (node.type == DataType::kDouble) {
      auto lt = [](double p, double q) { return p < q || (std::isnan(q) && !std::isnan(p)); };
      fold(c, [&](const Column& col, size_t i) {
        return greatest ? lt(r.f64[i], col.f64[i]) : lt(col.f64[i], r.f64[i]);
      });
    } else if (node.type == DataType::kString) {
      fold(c, [&](const Column& col, size_t i) {
        return greatest ? r.str[i] < col.str[i] : col.str[i] < r.str[i];
      });
    } else {
      std::fill(r.valid.begin(), r.valid.end(), 0);
    }
  }
}

void ExprEvaluator::Impl::FillConstant(Node* node, size_t n) {
  Column& c = node->scratch;
  const Value& v = node->constant;
  c.Reset(IsNested(node->type) ? DataType::kNull : node->type, n);
  c.type = node->type;
  node->const_rows = n;
  if (v.is_null() || v.type() != node->type) {
    return;
  }
  std::fill(c.valid.begin(), c.valid.end(), 1);
  switch (v.type()) {
    case DataType::kBool:
      std::fill(c.i64.begin(), c.i64.end(), v.bool_value() ? 1 : 0);
      break;
    case DataType::kInt64:
    case DataType::kTimestamp:
      std::fill(c.i64.begin(), c.i64.end(), v.int64());
      break;
    case DataType::kDouble:
      std::fill(c.f64.begin(), c.f64.end(), v.double_value());
      break;
    case DataType::kString:
      // Points into the node's own Value, which lives as long as the evaluator.
      std::fill(c.str.begin(), c.str.end(), std::string_view(v.string()));
      break;
    default:
      std::fill(c.valid.begin(), c.valid.end(), 0);
  }
}

void ExprEvaluator::Impl::Run(Node& node, std::span<const Column> input, size_t n, Arena* arena) {
  switch (node.op) {
    case Op::kInput: {
      if (node.input >= 0 && static_cast<size_t>(node.input) < input.size()) {
        const Column& c = input[static_cast<size_t>(node.input)];
        if (c.type == node.type && HasRows(c, n)) {
          node.out = &c;
          return;
        }
      }
      Prepare(&node.scratch, node.type, n);
      std::fill(node.scratch.valid.begin(), node.scratch.valid.end(), 0);
      node.out = &node.scratch;
      return;
    }
    case Op::kConst:
      if (node.const_rows != n) {
        FillConstant(&node, n);
      }
      break;
    case Op::kCast:
      RunCast(node, n, arena);
      break;
    case Op::kNeg:
    case Op::kAbs:
    case Op::kAdd:
    case Op::kSub:
    case Op::kMul:
    case Op::kMod:
    case Op::kDiv:
      RunArith(node, n);
      break;
    case Op::kEq:
    case Op::kNe:
    case Op::kLt:
    case Op::kLe:
    case Op::kGt:
    case Op::kGe:
      RunCompare(node, n);
      break;
    case Op::kAnd:
    case Op::kOr:
    case Op::kNot:
    case Op::kIsNull:
      RunLogic(node, n);
      break;
    case Op::kIn:
      RunIn(node, n);
      break;
    case Op::kCase:
      RunCase(node, n);
      break;
    case Op::kCoalesce: {
      Column& r = node.scratch;
      Prepare(&r, node.type, n);
      const Column& first = Kid(node, 0);
      for (size_t i = 0; i < n; ++i) {
        CopyRow(first, i, &r, i);
      }
      for (size_t k = 1; k < node.kids.size(); ++k) {
        const Column& c = Kid(node, k);
        for (size_t i = 0; i < n; ++i) {
          if (r.valid[i] == 0 && c.valid[i] != 0) {
            CopyRow(c, i, &r, i);
          }
        }
      }
      break;
    }
    case Op::kConcat:
    case Op::kLower:
    case Op::kUpper:
    case Op::kLength:
    case Op::kSubstr:
      RunString(node, n, arena);
      break;
    case Op::kLn:
    case Op::kLog:
    case Op::kLog10:
    case Op::kLog2:
    case Op::kExp:
    case Op::kSqrt:
    case Op::kPower:
      RunMath(node, n);
      break;
    case Op::kRound:
      RunRound(node, n);
      break;
    case Op::kGreatest:
    case Op::kLeast:
      RunExtreme(node, n);
      break;
  }
  node.out = &node.scratch;
}

ExprEvaluator::ExprEvaluator(const Expr& expr) : impl_(std::make_unique<Impl>()) {
  impl_->root_expr = &expr;
  impl_->Compile(expr);
}

ExprEvaluator::~ExprEvaluator() = default;
ExprEvaluator::ExprEvaluator(ExprEvaluator&&) noexcept = default;
ExprEvaluator& ExprEvaluator::operator=(ExprEvaluator&&) noexcept = default;

const Column& ExprEvaluator::Evaluate(std::span<const Column> input, size_t num_rows,
                                      Arena* arena) {
  for (Impl::Node& node : impl_->nodes) {
    impl_->Run(node, input, num_rows, arena);
  }
  return *impl_->nodes.back().out;
}

Value ExprEvaluator::EvaluateRow(std::span<const Value> inputs) {
  const Expr& root = *impl_->root_expr;
  if (IsNested(root.type)) {
    if ((root.kind == Expr::Kind::kAggRef || root.kind == Expr::Kind::kColumn) && root.index >= 0 &&
        static_cast<size_t>(root.index) < inputs.size() &&
        inputs[static_cast<size_t>(root.index)].type() == root.type) {
      return inputs[static_cast<size_t>(root.index)];
    }
    return Value::Null(root.type);
  }
  impl_->row_arena.Reset();
  std::vector<Column>& cols = impl_->row_inputs;
  cols.resize(impl_->input_types.size());
  for (size_t i = 0; i < cols.size(); ++i) {
    DataType t = impl_->input_types[i];
    cols[i].Reset(t, 1);
    if (i >= inputs.size() || inputs[i].is_null()) {
      continue;
    }
    const Value& v = inputs[i];
    if (v.type() == t) {
      cols[i].SetValue(0, v, &impl_->row_arena);
    } else if (t == DataType::kDouble && v.type() == DataType::kInt64) {
      cols[i].SetValue(0, Value::Double(static_cast<double>(v.int64())), nullptr);
    }
  }
  const Column& out = Evaluate(cols, 1, &impl_->row_arena);
  return out.GetValue(0);
}

}  // namespace tessera::sql
