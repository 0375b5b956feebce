#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"

// Small helpers shared by the lexer, parser and binder: source positions, positioned errors and
// ASCII case folding (SQL keywords and identifiers are matched case-insensitively).
namespace tessera::sql {

// A 1-based line and byte column in the script.
struct Pos {
  int line = 1;
  int column = 1;
};

// InvalidArgument "line L, column C: <formatted message>".
template <typename... Args>
absl::Status ErrorAt(Pos pos, fmt::format_string<Args...> f, Args&&... args) {
  return absl::InvalidArgumentError(fmt::format("line {}, column {}: {}", pos.line, pos.column,
                                                fmt::format(f, std::forward<Args>(args)...)));
}

inline char AsciiUpper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }
inline char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

inline std::string ToUpperAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = AsciiUpper(c);
  }
  return out;
}

inline std::string ToLowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = AsciiLower(c);
  }
  return out;
}

inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) {
      return false;
    }
  }
  return true;
}

}  // namespace tessera::sql
