#pragma once

#include <string>
#include <string_view>

namespace tessera {

// Appends `s` as a JSON string literal (quoted and escaped) that is always valid UTF-8 JSON,
// whatever bytes `s` holds: '"', '\\' and control characters are escaped, well-formed UTF-8
// (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF) is copied as is, and every
// byte that does not start a well-formed sequence becomes "\ufffd" (U+FFFD, the replacement
// character). This is the one JSON string escaper of the code base: use it for everything that
// may echo client or file bytes (error messages, keys, view names, file paths).
void AppendJsonString(std::string_view s, std::string* out);

// AppendJsonString into a new string.
std::string JsonString(std::string_view s);

// Length of the well-formed UTF-8 sequence at the start of `s` (1 to 4), or 0 when `s` is empty
// or does not start with one.
size_t Utf8SequenceLength(std::string_view s);

}  // namespace tessera
