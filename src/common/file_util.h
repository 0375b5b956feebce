#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace tessera {

// The bytes of the file at `path` from byte `offset` to its end ("" when offset is at or past
// the end). Errors: NotFound when the file does not exist, FailedPrecondition when it cannot be
// opened or read (permissions, a directory, an I/O error); the message is "<path>: <reason>" so
// callers can wrap it with what the file is for. Thread-safe; reads to EOF, so a file growing
// meanwhile yields at least its size at the call.
absl::StatusOr<std::string> ReadFileToString(const std::string& path, uint64_t offset = 0);

}  // namespace tessera
