#pragma once

#include <string>
#include <vector>

#include "common/types.h"

namespace tessera {

// One column of a source's schema.
struct ColumnDef {
  std::string name;  // as written (matching is case-insensitive)
  DataType type = DataType::kNull;
};

}  // namespace tessera
