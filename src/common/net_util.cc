#include "common/net_util.h"

#include <charconv>

#include "common/errors.h"

namespace tessera {

absl::StatusOr<HostPort> ParseHostPort(std::string_view text, const HostPortOptions& options) {
  HostPort out;
  std::string_view port = text;
  const size_t colon = text.rfind(':');
  if (colon != std::string_view::npos) {
    out.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
    if (out.host.empty()) {
      if (options.require_host) return InvalidArgument("'{}' has no host before the ':'", text);
      out.host = options.any_host;
    }
  } else {
    if (options.require_host) return InvalidArgument("'{}' is not HOST:PORT", text);
    out.host = options.default_host;
  }
  unsigned value = 0;
  const char* end = port.data() + port.size();
  const bool digits = !port.empty() && port.front() >= '0' && port.front() <= '9';
  auto [p, ec] = std::from_chars(port.data(), end, value);
  if (!digits || ec != std::errc() || p != end || value > 65535) {
    return InvalidArgument("'{}': the port must be a number from 0 to 65535", text);
  }
  out.port = static_cast<uint16_t>(value);
  return out;
}

}  // namespace tessera
