#pragma once

// The Bigtable schema of docs/scale_out.md as constants and pure byte helpers, shared by the
// client, the store and its tests. Internal to src/store/bigtable. Thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/varint.h"
#include "store/tile_store.h"

namespace tessera::store::bigtable_schema {

inline constexpr std::string_view kBaseFamily = "b";    // base tiles
inline constexpr std::string_view kRollupFamily = "r";  // hour and day tiles
inline constexpr std::string_view kSlotFamily = "s";    // generation and commits
inline constexpr std::string_view kMetaFamily = "m";    // slot metadata
inline constexpr std::string_view kGenerationColumn = "gen";
inline constexpr char kCommitColumnPrefix = 'c';
inline constexpr char kSlotRowPrefix = 's';  // slot rows: 's' + slot; tile rows start with 't'
inline constexpr size_t kVersionBytes = 8;
// Cell timestamps are milliseconds × 1000; this is the largest millisecond that fits.
inline constexpr int64_t kMaxTimestampMillis = INT64_MAX / 1000;

inline std::string_view FamilyOf(Resolution r) {
  return r == Resolution::kBase ? kBaseFamily : kRollupFamily;
}

inline std::string SlotRowKey(std::string_view slot) {
  std::string key(1, kSlotRowPrefix);
  key.append(slot);
  return key;
}

inline std::string BigEndian64(uint64_t v) {
  std::string out;
  PutBigEndian64(&out, v);
  return out;
}

// The value of exactly 8 big-endian bytes, or nullopt.
inline std::optional<uint64_t> ParseBigEndian64(std::string_view bytes) {
  if (bytes.size() != 8) return std::nullopt;
  uint64_t v = 0;
  for (char c : bytes) v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

// s:c<generation>
inline std::string CommitColumn(uint64_t generation) {
  std::string q(1, kCommitColumnPrefix);
  PutBigEndian64(&q, generation);
  return q;
}

// A tile cell's qualifier: slot bytes + version (8 bytes big-endian).
inline std::string TileQualifier(std::string_view slot, uint64_t version) {
  std::string q(slot);
  PutBigEndian64(&q, version);
  return q;
}

// The slot of a tile cell's qualifier (a view into it), and its version; nullopt when shorter
// than a version.
struct SlotVersion {
  std::string_view slot;
  uint64_t version = 0;
};
inline std::optional<SlotVersion> ParseTileQualifier(std::string_view q) {
  if (q.size() < kVersionBytes) return std::nullopt;
  return SlotVersion{q.substr(0, q.size() - kVersionBytes),
                     *ParseBigEndian64(q.substr(q.size() - kVersionBytes))};
}

inline constexpr uint64_t MakeVersion(uint64_t generation, uint64_t n) {
  return (generation << 32) | n;
}
inline constexpr uint64_t GenerationOf(uint64_t version) { return version >> 32; }
inline constexpr uint64_t CountOf(uint64_t version) { return version & 0xffffffffu; }

// The cell timestamp of a tile starting at start_ms: start_ms × 1000, clamped into
// [0, kMaxTimestampMillis] ms (Bigtable refuses negative timestamps).
inline int64_t TileTimestampMicros(int64_t start_ms) {
  if (start_ms < 0) return 0;
  if (start_ms > kMaxTimestampMillis) start_ms = kMaxTimestampMillis;
  return start_ms * 1000;
}

}  // namespace tessera::store::bigtable_schema

namespace tessera::store {

// Row keys and qualifiers for messages: printable ASCII as is, other bytes as \xHH, cut after
// 120 bytes.
inline std::string PrintableKey(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < 120; ++i) {
    const auto c = static_cast<uint8_t>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  if (bytes.size() > 120) out += "…";
  return out;
}

}  // namespace tessera::store
