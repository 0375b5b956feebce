#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "common/strings.h"

// Small helpers shared by the lexer, parser and binder: source positions and positioned errors.
// ASCII case folding (SQL keywords and identifiers are matched case-insensitively) is
// common/strings.h, included here for them.
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

}  // namespace tessera::sql
