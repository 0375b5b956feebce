#pragma once

#include <string>
#include <string_view>

// Small ASCII string helpers shared by every layer. Locale-independent on purpose: SQL
// identifiers, HTTP tokens, connector names and metadata keys must compare and fold the same
// way whatever the process locale is (bytes >= 0x80 are never changed). Pure and thread-safe.
namespace tessera {

// What Trim strips by default: the "optional whitespace" of SQL literals and HTTP headers.
inline constexpr std::string_view kSpaceTab = " \t";
// Spaces, tabs and line ends: for text read from files (tokens, config values).
inline constexpr std::string_view kSpaceTabNewline = " \t\r\n";

inline char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
inline char AsciiUpper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }

// `s` with A-Z mapped to a-z (resp. a-z to A-Z); every other byte unchanged.
std::string ToLowerAscii(std::string_view s);
std::string ToUpperAscii(std::string_view s);

// True when `a` and `b` are equal after ToLowerAscii.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// `s` without the leading and trailing bytes that occur in `chars` (a view into `s`).
std::string_view Trim(std::string_view s, std::string_view chars = kSpaceTab);
// `s` without the trailing bytes that occur in `chars`.
std::string_view TrimRight(std::string_view s, std::string_view chars = kSpaceTab);

// Number of '\n' bytes in `s` (memchr per line: ~5x std::count on NDJSON-sized lines).
size_t CountNewlines(std::string_view s);

}  // namespace tessera
