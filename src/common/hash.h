#pragma once

#include <cstdint>
#include <string_view>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace tessera {

// 64-bit hash used for key sharding and sketches. Stable across versions and machines: it is
// part of the persisted HyperLogLog encoding, so never change it without a new encoding version.
inline uint64_t Hash64(std::string_view s, uint64_t seed = 0) {
  return XXH3_64bits_withSeed(s.data(), s.size(), seed);
}
inline uint64_t Hash64(const void* data, size_t n, uint64_t seed = 0) {
  return XXH3_64bits_withSeed(data, n, seed);
}
// Mixes a 64-bit integer (for hashing numbers without going through bytes).
inline uint64_t HashInt(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

}  // namespace tessera
