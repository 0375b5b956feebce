#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"

// Status constructors with fmt formatting.
//
// Debian's Abseil is built with its own absl::string_view (not std::string_view), so absl::StrCat
// and the absl::*Error(string_view) constructors do not accept std::string_view. Build messages
// with these helpers (or fmt) instead, and read a message back with StatusMessage().
namespace tessera {

#define TESSERA_DEFINE_ERROR_(Name, absl_fn)                           \
  template <typename... Args>                                          \
  absl::Status Name(fmt::format_string<Args...> f, Args&&... args) {   \
    return absl::absl_fn(fmt::format(f, std::forward<Args>(args)...)); \
  }

TESSERA_DEFINE_ERROR_(InvalidArgument, InvalidArgumentError)
TESSERA_DEFINE_ERROR_(NotFound, NotFoundError)
TESSERA_DEFINE_ERROR_(AlreadyExists, AlreadyExistsError)
TESSERA_DEFINE_ERROR_(FailedPrecondition, FailedPreconditionError)
TESSERA_DEFINE_ERROR_(DataLoss, DataLossError)
TESSERA_DEFINE_ERROR_(Internal, InternalError)
TESSERA_DEFINE_ERROR_(Unavailable, UnavailableError)
TESSERA_DEFINE_ERROR_(OutOfRange, OutOfRangeError)
TESSERA_DEFINE_ERROR_(ResourceExhausted, ResourceExhaustedError)
TESSERA_DEFINE_ERROR_(Aborted, AbortedError)
TESSERA_DEFINE_ERROR_(Unauthenticated, UnauthenticatedError)
TESSERA_DEFINE_ERROR_(PermissionDenied, PermissionDeniedError)
TESSERA_DEFINE_ERROR_(Cancelled, CancelledError)
TESSERA_DEFINE_ERROR_(Unimplemented, UnimplementedError)
TESSERA_DEFINE_ERROR_(Unknown, UnknownError)

#undef TESSERA_DEFINE_ERROR_

inline std::string StatusMessage(const absl::Status& s) {
  return std::string(s.message().data(), s.message().size());
}

// The same code with "prefix: " in front of the message (payloads are not kept); OK stays OK.
inline absl::Status Annotate(const absl::Status& s, std::string_view prefix) {
  if (s.ok()) return s;
  return absl::Status(s.code(), fmt::format("{}: {}", prefix, StatusMessage(s)));
}

}  // namespace tessera
