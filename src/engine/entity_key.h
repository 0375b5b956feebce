#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/column.h"

// Entity keys: the GROUP BY values of one row of a view, in two forms.
//
// Stored form (tile keys, open tiles, the store): a view with one key column stores that
// value's bytes as they are. A view with several key columns stores each part as
// varint(length) + bytes, so ("a|b", "c") and ("a", "b|c") are different keys whatever bytes
// the parts hold. (Storage format 1 joined the parts with '|'; see docs/storage_format.md.)
//
// Text form (`tessera get --key`, the HTTP path, the "key" of responses): one key column: the
// value as it is. Several: the parts joined by '|', with '|' and '\' inside a part escaped by
// '\' — `a\|b|c` is ("a|b", "c"). batchGet also takes the parts as a JSON array.
//
// Non-string parts are rendered as text first (AppendKeyPart). All functions are pure.
namespace tessera::engine {

inline constexpr char kKeySeparator = '|';
inline constexpr char kKeyEscape = '\\';

// Longest stored key accepted. A row whose key is longer is not aggregated (counted as
// key_too_long); a read of a longer key is an error. 4 KiB fits an HTTP request line even when
// every byte is %-encoded.
inline constexpr size_t kMaxEntityKeyBytes = 4096;

// Appends the text rendering of a non-NULL value: strings as they are, integers in decimal,
// booleans as true/false, doubles in shortest round-trip form, timestamps as RFC 3339 (ms, Z).
// REQUIRES: !col.IsNull(row).
void AppendKeyPart(const Column& col, size_t row, std::string* out);

// Appends one part of a composite key in stored form (varint length + bytes).
void AppendStoredKeyPart(std::string_view part, std::string* out);

// The stored key for the text form `text` of a view with `num_parts` key columns. Errors
// (InvalidArgument) name what is wrong: wrong number of parts, a dangling or unknown escape,
// a key longer than kMaxEntityKeyBytes.
absl::StatusOr<std::string> StoredKeyFromText(std::string_view text, size_t num_parts);

// The stored key for the parts given one by one (batchGet's JSON arrays).
absl::StatusOr<std::string> StoredKeyFromParts(const std::vector<std::string>& parts,
                                               size_t num_parts);

// The text form of a stored key. A stored key that is not a well-formed composite key (only
// possible for corrupt data) is rendered as its raw bytes.
std::string KeyText(std::string_view stored, size_t num_parts);

}  // namespace tessera::engine
