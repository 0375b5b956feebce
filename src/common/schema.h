#pragma once

#include <string>
#include <vector>

#include "common/types.h"

namespace tessera {

// One column of a source's schema.
struct ColumnDef {
  // As written. SQL references match it case-insensitively; JSON field names must match it
  // exactly (case-sensitive).
  std::string name;
  DataType type = DataType::kNull;
};

}  // namespace tessera
