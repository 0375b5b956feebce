#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera::engine {

// Tiles copied out of a scan, in the order added (increasing start when added from one scan of
// one resolution), their bytes in one buffer: no allocation per tile. Not thread-safe.
struct FetchedTiles {
  std::vector<int64_t> starts;
  std::vector<std::pair<size_t, size_t>> spans;  // (offset, size) in `bytes`
  std::string bytes;

  void Clear() {
    starts.clear();
    spans.clear();
    bytes.clear();
  }
  void Add(int64_t start, std::string_view tile) {
    starts.push_back(start);
    spans.emplace_back(bytes.size(), tile.size());
    bytes.append(tile);
  }
  size_t size() const { return starts.size(); }
  std::string_view tile(size_t i) const {
    return std::string_view(bytes).substr(spans[i].first, spans[i].second);
  }
  // fn(start, bytes) for the tiles with from <= start < to. REQUIRES: starts increasing.
  template <typename Fn>
  void ForEach(int64_t from, int64_t to, Fn&& fn) const {
    auto it = std::lower_bound(starts.begin(), starts.end(), from);
    for (size_t i = static_cast<size_t>(it - starts.begin()); i < starts.size() && starts[i] < to;
         ++i) {
      fn(starts[i], tile(i));
    }
  }
};

}  // namespace tessera::engine
