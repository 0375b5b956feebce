#include "engine/entity_key.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/errors.h"
#include "common/time_util.h"
#include "common/varint.h"

namespace tessera::engine {
namespace {

absl::Status CheckLength(const std::string& stored) {
  if (stored.size() > kMaxEntityKeyBytes) {
    return InvalidArgument("key of {} bytes is longer than the {} bytes a key may have",
                           stored.size(), kMaxEntityKeyBytes);
  }
  return absl::OkStatus();
}

}  // namespace

void AppendKeyPart(const Column& col, size_t row, std::string* out) {
  switch (col.type) {
    case DataType::kString:
      out->append(col.str[row]);
      break;
    case DataType::kInt64:
      fmt::format_to(std::back_inserter(*out), "{}", col.i64[row]);
      break;
    case DataType::kBool:
      out->append(col.i64[row] != 0 ? "true" : "false");
      break;
    case DataType::kDouble:
      fmt::format_to(std::back_inserter(*out), "{}", col.f64[row]);
      break;
    case DataType::kTimestamp:
      out->append(FormatRfc3339Millis(col.i64[row]));
      break;
    default:
      break;
  }
}

void AppendStoredKeyPart(std::string_view part, std::string* out) { PutBytes(out, part); }

absl::StatusOr<std::string> StoredKeyFromText(std::string_view text, size_t num_parts) {
  std::string stored;
  if (num_parts <= 1) {
    stored.assign(text);
    if (absl::Status s = CheckLength(stored); !s.ok()) return s;
    return stored;
  }
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == kKeyEscape) {
      if (i + 1 == text.size() || (text[i + 1] != kKeySeparator && text[i + 1] != kKeyEscape)) {
        return InvalidArgument(
            "key '{}': '\\' at byte {} must be followed by '|' or '\\' (write a '|' inside a "
            "part as '\\|' and a '\\' as '\\\\')",
            text, i);
      }
      parts.back().push_back(text[++i]);
    } else if (c == kKeySeparator) {
      parts.emplace_back();
    } else {
      parts.back().push_back(c);
    }
  }
  if (parts.size() != num_parts) {
    return InvalidArgument(
        "key '{}' has {} part(s) but the view has {} key columns: join the parts with '|' and "
        "escape a '|' or '\\' inside a part with '\\'",
        text, parts.size(), num_parts);
  }
  for (const std::string& p : parts) AppendStoredKeyPart(p, &stored);
  if (absl::Status s = CheckLength(stored); !s.ok()) return s;
  return stored;
}

absl::StatusOr<std::string> StoredKeyFromParts(const std::vector<std::string>& parts,
                                               size_t num_parts) {
  if (parts.size() != std::max<size_t>(num_parts, 1)) {
    return InvalidArgument("key has {} part(s) but the view has {} key column(s)", parts.size(),
                           num_parts);
  }
  std::string stored;
  if (num_parts <= 1) {
    stored = parts[0];
  } else {
    for (const std::string& p : parts) AppendStoredKeyPart(p, &stored);
  }
  if (absl::Status s = CheckLength(stored); !s.ok()) return s;
  return stored;
}

std::string KeyText(std::string_view stored, size_t num_parts) {
  if (num_parts <= 1) return std::string(stored);
  std::string text;
  ByteReader in(stored);
  for (size_t i = 0; i < num_parts; ++i) {
    std::string_view part;
    if (!in.Bytes(&part, "key part").ok()) return std::string(stored);
    if (i > 0) text.push_back(kKeySeparator);
    for (char c : part) {
      if (c == kKeySeparator || c == kKeyEscape) text.push_back(kKeyEscape);
      text.push_back(c);
    }
  }
  if (!in.empty()) return std::string(stored);
  return text;
}

}  // namespace tessera::engine
