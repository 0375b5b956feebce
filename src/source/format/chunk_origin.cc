#include "source/format/chunk_origin.h"

#include <fmt/format.h>

namespace tessera::source {

std::string ChunkOrigin::Position(int64_t line) const {
  const int64_t index = line - first_line;
  if (index >= 0 && static_cast<size_t>(index) < offsets.size()) {
    return fmt::format("offset {}", offsets[index]);
  }
  if (index >= 0 && static_cast<size_t>(index) < ids.size()) {
    return fmt::format("message {}", ids[index]);
  }
  return fmt::format("line {}", line);
}

std::string ChunkOrigin::Describe(int64_t line, std::string_view reason) const {
  const std::string prefix = fmt::format("line {}: ", line);
  if (reason.substr(0, prefix.size()) == prefix) reason.remove_prefix(prefix.size());
  if (input.empty()) return fmt::format("{}: {}", Position(line), reason);
  return fmt::format("{}, {}: {}", input, Position(line), reason);
}

}  // namespace tessera::source
