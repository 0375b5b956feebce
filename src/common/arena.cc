#include "common/arena.h"

#include <algorithm>

namespace tessera {

char* Arena::Allocate(size_t n) {
  while (current_ < blocks_.size()) {
    Block& b = blocks_[current_];
    if (b.size - used_ >= n) {
      char* p = b.data.get() + used_;
      used_ += n;
      return p;
    }
    ++current_;
    used_ = 0;
  }
  size_t size = std::max(block_size_, n);
  blocks_.push_back(Block{std::make_unique_for_overwrite<char[]>(size), size});
  current_ = blocks_.size() - 1;
  used_ = n;
  return blocks_.back().data.get();
}

void Arena::Reset() {
  current_ = 0;
  used_ = 0;
}

size_t Arena::bytes_reserved() const {
  size_t total = 0;
  for (const Block& b : blocks_) total += b.size;
  return total;
}

size_t Arena::bytes_used() const {
  if (blocks_.empty()) return 0;
  size_t total = used_;
  for (size_t i = 0; i < current_ && i < blocks_.size(); ++i) total += blocks_[i].size;
  return total;
}

}  // namespace tessera
