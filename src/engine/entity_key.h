#pragma once

#include <string>

#include "common/column.h"

namespace tessera::engine {

// Composite keys are the key values joined by this separator ("u1|web").
inline constexpr char kKeySeparator = '|';

// Appends the key rendering of a non-NULL value: strings as they are, integers in decimal,
// booleans as true/false, doubles in shortest round-trip form, timestamps as RFC 3339 (ms, Z).
// REQUIRES: !col.IsNull(row).
void AppendKeyPart(const Column& col, size_t row, std::string* out);

}  // namespace tessera::engine
