#include "common/varint.h"

#include "common/errors.h"

namespace tessera {

absl::Status ByteReader::Truncated(std::string_view what) const {
  return DataLoss("truncated or corrupt encoding while reading {}", what);
}

absl::Status ByteReader::ZigZag64(int64_t* v, std::string_view what) {
  uint64_t u = 0;
  absl::Status s = Varint64(&u, what);
  if (!s.ok()) return s;
  *v = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
  return absl::OkStatus();
}

absl::Status ByteReader::Fixed64(uint64_t* v, std::string_view what) {
  if (data_.size() < 8) return Truncated(what);
  std::memcpy(v, data_.data(), 8);
  data_.remove_prefix(8);
  return absl::OkStatus();
}

absl::Status ByteReader::Double(double* d, std::string_view what) {
  uint64_t v = 0;
  absl::Status s = Fixed64(&v, what);
  if (!s.ok()) return s;
  std::memcpy(d, &v, 8);
  return absl::OkStatus();
}

absl::Status ByteReader::Byte(uint8_t* b, std::string_view what) {
  if (data_.empty()) return Truncated(what);
  *b = static_cast<uint8_t>(data_[0]);
  data_.remove_prefix(1);
  return absl::OkStatus();
}

absl::Status ByteReader::Bytes(std::string_view* s, std::string_view what) {
  uint64_t n = 0;
  absl::Status st = Varint64(&n, what);
  if (!st.ok()) return st;
  return Raw(n, s, what);
}

absl::Status ByteReader::Raw(size_t n, std::string_view* s, std::string_view what) {
  if (data_.size() < n) return Truncated(what);
  *s = data_.substr(0, n);
  data_.remove_prefix(n);
  return absl::OkStatus();
}

absl::Status ByteReader::BigEndian64(uint64_t* v, std::string_view what) {
  if (data_.size() < 8) return Truncated(what);
  uint64_t r = 0;
  for (int i = 0; i < 8; ++i) r = (r << 8) | static_cast<uint8_t>(data_[i]);
  data_.remove_prefix(8);
  *v = r;
  return absl::OkStatus();
}

absl::Status ByteReader::BigEndian32(uint32_t* v, std::string_view what) {
  if (data_.size() < 4) return Truncated(what);
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r = (r << 8) | static_cast<uint8_t>(data_[i]);
  data_.remove_prefix(4);
  *v = r;
  return absl::OkStatus();
}

}  // namespace tessera
