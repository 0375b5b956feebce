#include "common/varint.h"

#include <gtest/gtest.h>

#include <limits>
#include <random>

namespace tessera {
namespace {

TEST(Varint, RoundTripsEdgeValues) {
  std::string buf;
  const uint64_t us[] = {0, 1, 127, 128, 16383, 16384, std::numeric_limits<uint64_t>::max()};
  const int64_t zs[] = {0, -1, 1, std::numeric_limits<int64_t>::min(),
                        std::numeric_limits<int64_t>::max()};
  for (uint64_t u : us) PutVarint64(&buf, u);
  for (int64_t z : zs) PutZigZag64(&buf, z);
  PutDouble(&buf, -0.25);
  PutBytes(&buf, "abc");
  PutBigEndian64(&buf, 0x0102030405060708ULL);
  ByteReader r(buf);
  for (uint64_t u : us) {
    uint64_t v = 0;
    ASSERT_TRUE(r.Varint64(&v, "u").ok());
    EXPECT_EQ(v, u);
  }
  for (int64_t z : zs) {
    int64_t v = 0;
    ASSERT_TRUE(r.ZigZag64(&v, "z").ok());
    EXPECT_EQ(v, z);
  }
  double d = 0;
  ASSERT_TRUE(r.Double(&d, "d").ok());
  EXPECT_EQ(d, -0.25);
  std::string_view s;
  ASSERT_TRUE(r.Bytes(&s, "s").ok());
  EXPECT_EQ(s, "abc");
  uint64_t be = 0;
  ASSERT_TRUE(r.BigEndian64(&be, "be").ok());
  EXPECT_EQ(be, 0x0102030405060708ULL);
  EXPECT_TRUE(r.empty());
}

TEST(Varint, BigEndianOrdersLikeNumbers) {
  std::string a, b;
  PutBigEndian64(&a, 255);
  PutBigEndian64(&b, 256);
  EXPECT_LT(a, b);
}

TEST(ByteReader, RejectsTruncationAndOverlongVarints) {
  std::string buf;
  PutVarint64(&buf, 1ULL << 40);
  for (size_t n = 0; n < buf.size(); ++n) {
    ByteReader r(std::string_view(buf).substr(0, n));
    uint64_t v;
    absl::Status s = r.Varint64(&v, "length");
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(std::string(s.message()).find("length"), std::string::npos);
  }
  std::string overlong(11, '\xff');
  ByteReader r(overlong);
  uint64_t v;
  EXPECT_FALSE(r.Varint64(&v, "x").ok());
  std::string bytes;
  PutVarint64(&bytes, 100);  // claims 100 bytes, has none
  ByteReader rb(bytes);
  std::string_view s;
  EXPECT_FALSE(rb.Bytes(&s, "payload").ok());
}

TEST(ByteReader, NeverCrashesOnRandomBytes) {
  std::mt19937_64 rng(5);
  for (int i = 0; i < 20000; ++i) {
    std::string junk(rng() % 24, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    ByteReader r(junk);
    uint64_t u;
    int64_t z;
    double d;
    std::string_view s;
    (void)r.Varint64(&u, "a");
    (void)r.ZigZag64(&z, "b");
    (void)r.Double(&d, "c");
    (void)r.Bytes(&s, "d");
  }
}

}  // namespace
}  // namespace tessera
