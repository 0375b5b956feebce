#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

namespace tessera {

// Bump allocator for short-lived bytes (decoded strings of one batch). Memory handed out stays
// valid and never moves until Reset() or destruction. Reset() keeps the blocks for reuse, so a
// steady-state batch loop allocates nothing. Not thread-safe.
class Arena {
 public:
  explicit Arena(size_t block_size = 64 * 1024) : block_size_(block_size) {}
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  Arena(Arena&&) = default;
  Arena& operator=(Arena&&) = default;

  char* Allocate(size_t n);
  std::string_view Copy(std::string_view s) {
    if (s.empty()) return {};
    char* p = Allocate(s.size());
    std::memcpy(p, s.data(), s.size());
    return {p, s.size()};
  }
  void Reset();
  size_t bytes_reserved() const;
  // Bytes handed out since the last Reset() (including skipped block tails).
  size_t bytes_used() const;

 private:
  struct Block {
    std::unique_ptr<char[]> data;
    size_t size;
  };
  size_t block_size_;
  std::vector<Block> blocks_;
  size_t current_ = 0;  // index of the block being filled
  size_t used_ = 0;     // bytes used in blocks_[current_]
};

}  // namespace tessera
