#pragma once

#include <fmt/format.h>

#include <utility>

#include "absl/status/status.h"

// fmt-formatting constructors for the status codes src/common/errors.h has no helper for
// (Kubernetes needs Aborted, Unauthenticated, PermissionDenied, Cancelled, Unimplemented).
// Internal to the kube library and its tests.
namespace tessera::workspaces::kube {

#define TESSERA_KUBE_DEFINE_ERROR_(Name, absl_fn)                      \
  template <typename... Args>                                          \
  absl::Status Name(fmt::format_string<Args...> f, Args&&... args) {   \
    return absl::absl_fn(fmt::format(f, std::forward<Args>(args)...)); \
  }

TESSERA_KUBE_DEFINE_ERROR_(AbortedError, AbortedError)
TESSERA_KUBE_DEFINE_ERROR_(UnauthenticatedError, UnauthenticatedError)
TESSERA_KUBE_DEFINE_ERROR_(PermissionDeniedError, PermissionDeniedError)
TESSERA_KUBE_DEFINE_ERROR_(CancelledError, CancelledError)
TESSERA_KUBE_DEFINE_ERROR_(UnimplementedError, UnimplementedError)
TESSERA_KUBE_DEFINE_ERROR_(UnknownError, UnknownError)

#undef TESSERA_KUBE_DEFINE_ERROR_

// The same code with `prefix: ` in front of the message (payloads are not kept).
inline absl::Status Annotate(const absl::Status& s, const std::string& prefix) {
  if (s.ok()) return s;
  return absl::Status(s.code(), fmt::format("{}: {}", prefix, std::string(s.message())));
}

}  // namespace tessera::workspaces::kube
