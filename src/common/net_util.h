#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tessera {

struct HostPort {
  std::string host;
  uint16_t port = 0;  // 0: any free port
};

// Which forms ParseHostPort accepts; each command keeps its own.
struct HostPortOptions {
  // false: "PORT" (host = default_host) and ":PORT" (host = any_host) are accepted besides
  // "HOST:PORT" (`tessera run --http`). true: only "HOST:PORT" with a non-empty host
  // (`tessera-operator --metrics-addr`).
  bool require_host = false;
  std::string default_host = "127.0.0.1";
  std::string any_host = "0.0.0.0";
};

// Parses a listen address. The host is everything before the last ':' (not resolved or
// checked); the port is 0-65535 in decimal digits only. InvalidArgument (naming `text`)
// otherwise. Pure, thread-safe.
absl::StatusOr<HostPort> ParseHostPort(std::string_view text, const HostPortOptions& options = {});

}  // namespace tessera
