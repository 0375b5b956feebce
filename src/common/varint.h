#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace tessera {

// Little helpers for the persisted byte encodings (tile states, store keys). Writers append to a
// std::string; ByteReader consumes a string_view and reports truncation or corruption as
// absl::DataLossError naming `what` was being read. Decoding untrusted bytes never crashes.

inline constexpr size_t kMaxVarint64Bytes = 10;
// Writes v as a varint (7 bits a byte, low first) at dst, which has room for kMaxVarint64Bytes;
// returns the bytes written.
inline size_t EncodeVarint64(uint64_t v, char* dst) {
  size_t n = 0;
  while (v >= 0x80) {
    dst[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  dst[n++] = static_cast<char>(v);
  return n;
}
inline void PutVarint64(std::string* out, uint64_t v) {
  // Byte by byte: most varints are 1-2 bytes, where an append's memcpy call costs more.
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}
inline void PutZigZag64(std::string* out, int64_t v) {
  PutVarint64(out, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}
inline void PutFixed64(std::string* out, uint64_t v) {
  char buf[8];
  std::memcpy(buf, &v, 8);  // little-endian hosts only (x86-64, arm64)
  out->append(buf, 8);
}
inline void PutDouble(std::string* out, double d) {
  uint64_t v;
  std::memcpy(&v, &d, 8);
  PutFixed64(out, v);
}
inline void PutBytes(std::string* out, std::string_view s) {
  PutVarint64(out, s.size());
  out->append(s);
}
// Big-endian, so byte order equals numeric order (store keys).
inline void PutBigEndian64(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}
inline void PutBigEndian32(std::string* out, uint32_t v) {
  for (int i = 3; i >= 0; --i) out->push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}

class ByteReader {
 public:
  explicit ByteReader(std::string_view data) : data_(data) {}

  // Inline: sketch decoding reads one per entry.
  absl::Status Varint64(uint64_t* v, std::string_view what) {
    uint64_t result = 0;
    for (int shift = 0; shift <= 63; shift += 7) {
      if (data_.empty()) return Truncated(what);
      const auto b = static_cast<uint8_t>(data_[0]);
      data_.remove_prefix(1);
      if (shift == 63 && b > 1) return Truncated(what);
      result |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        *v = result;
        return absl::OkStatus();
      }
    }
    return Truncated(what);
  }
  absl::Status ZigZag64(int64_t* v, std::string_view what);
  absl::Status Fixed64(uint64_t* v, std::string_view what);
  absl::Status Double(double* d, std::string_view what);
  absl::Status Byte(uint8_t* b, std::string_view what);
  // A varint length followed by that many bytes; the view points into the input.
  absl::Status Bytes(std::string_view* s, std::string_view what);
  absl::Status Raw(size_t n, std::string_view* s, std::string_view what);
  absl::Status BigEndian64(uint64_t* v, std::string_view what);
  absl::Status BigEndian32(uint32_t* v, std::string_view what);

  size_t remaining() const { return data_.size(); }
  bool empty() const { return data_.empty(); }
  std::string_view rest() const { return data_; }

 private:
  absl::Status Truncated(std::string_view what) const;
  std::string_view data_;
};

}  // namespace tessera
