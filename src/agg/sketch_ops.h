#pragma once

// Aggregates whose state grows on the heap: LAST_K, TOP_K, APPROX_COUNT_DISTINCT and
// APPROX_PERCENTILE. Ops for AggFunction<Op> (see agg_function.h). Internal to src/agg.
//
// LAST_K and TOP_K states are a single pointer, null until the first non-NULL row, so the
// millions of tiny or empty tiles pay 8 bytes and no allocation. The sketch states (24 bytes
// for APPROX_COUNT_DISTINCT, 32 for APPROX_PERCENTILE) hold their first 3 values inline (most
// tiles hold 1-3 rows), so tiny tiles allocate nothing and serialize without scratch memory.
//
// Encodings (after the version byte 1):
//   LAST_K               varint m (<= k), then m × (zigzag event time, value), oldest first
//   TOP_K                varint m, then m × (value, varint count >= 1), values strictly ascending
//   APPROX_COUNT_DISTINCT  HyperLogLog::Serialize (empty: sparse with 0 entries)
//   APPROX_PERCENTILE    KllSketch::Serialize (empty: varint 0)

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "agg/hyperloglog.h"
#include "agg/kll_sketch.h"
#include "agg/phys_types.h"
#include "common/column.h"
#include "common/errors.h"
#include "common/value.h"
#include "common/varint.h"

namespace tessera::agg::internal {

// ---- LAST_K ------------------------------------------------------------------------------------

// The k newest non-NULL values by event time, newest first; among equal event times the later
// arrival counts as newer (in Merge, src's rows arrive after dst's).
template <typename Phys>
struct LastKOp {
  using In = typename Phys::In;
  using Owned = typename Phys::Owned;
  struct Item {
    int64_t event_time;
    Owned value;
  };
  struct Data {
    // Ascending by (event time, arrival): the newest is at the back. Only the last k items
    // count; up to 2k are kept so trimming the front is amortized.
    std::vector<Item> items;
  };
  struct State {
    std::unique_ptr<Data> data;
  };
  static constexpr uint8_t kVersion = 1;

  size_t k;

  void Add(State* s, In v, int64_t ts) const {
    if (s->data == nullptr) s->data = std::make_unique<Data>();
    std::vector<Item>& items = s->data->items;
    const size_t n = items.size();
    if (n >= k && ts < items[n - k].event_time) return;  // older than the k newest
    if (n == 0 || ts >= items.back().event_time) {
      items.push_back(Item{ts, Phys::Own(v)});
    } else {
      auto pos = std::upper_bound(items.begin(), items.end(), ts,
                                  [](int64_t t, const Item& it) { return t < it.event_time; });
      items.insert(pos, Item{ts, Phys::Own(v)});
    }
    if (items.size() >= 2 * k) {
      items.erase(items.begin(), items.begin() + static_cast<ptrdiff_t>(items.size() - k));
    }
  }

  void AddBatch(std::byte* const* states, const Column* arg, const int64_t* event_time_ms,
                const uint32_t* rows, size_t n) const {
    ForEachValue<Phys, State>(
        states, arg, rows, n,
        [this, event_time_ms](State* s, In v, uint32_t row) { Add(s, v, event_time_ms[row]); });
  }

  // The retained items [first, size) of a state.
  size_t First(const std::vector<Item>& items) const {
    return items.size() > k ? items.size() - k : 0;
  }

  void Merge(State* dst, const State& src) const {
    if (src.data == nullptr || src.data->items.empty()) return;
    if (dst->data == nullptr) dst->data = std::make_unique<Data>();
    std::vector<Item>& a = dst->data->items;
    const std::vector<Item>& b = src.data->items;
    // Walk both from the newest, taking src on equal event times (src arrived later).
    std::vector<Item> merged;
    merged.reserve(std::min(k, a.size() + b.size()));
    size_t i = a.size(), j = b.size();
    const size_t a_first = First(a), b_first = First(b);
    while (merged.size() < k && (i > a_first || j > b_first)) {
      bool take_b = i == a_first || (j > b_first && b[j - 1].event_time >= a[i - 1].event_time);
      if (take_b) {
        --j;
        merged.push_back(Item{b[j].event_time, b[j].value});
      } else {
        --i;
        merged.push_back(std::move(a[i]));
      }
    }
    std::reverse(merged.begin(), merged.end());
    a = std::move(merged);
  }

  void Serialize(const State& s, std::string* out) const {
    if (s.data == nullptr) {
      PutVarint64(out, 0);
      return;
    }
    const std::vector<Item>& items = s.data->items;
    size_t first = First(items);
    PutVarint64(out, items.size() - first);
    for (size_t i = first; i < items.size(); ++i) {
      PutZigZag64(out, items[i].event_time);
      Phys::Put(out, Phys::View(items[i].value));
    }
  }

  absl::Status Deserialize(ByteReader* r, State* s) const {
    uint64_t count = 0;
    absl::Status st = r->Varint64(&count, "LAST_K item count");
    if (!st.ok()) return st;
    if (count > k) return DataLoss("LAST_K holds {} items, more than k = {}", count, k);
    if (count == 0) return absl::OkStatus();
    auto data = std::make_unique<Data>();
    data->items.reserve(std::min<uint64_t>(count, r->remaining()));
    for (uint64_t i = 0; i < count; ++i) {
      int64_t ts = 0;
      st = r->ZigZag64(&ts, "LAST_K event time");
      if (!st.ok()) return st;
      if (i > 0 && ts < data->items.back().event_time) {
        return DataLoss("LAST_K items not in event-time order");
      }
      In v{};
      st = Phys::Read(r, &v);
      if (!st.ok()) return st;
      data->items.push_back(Item{ts, Phys::Own(v)});
    }
    s->data = std::move(data);
    return absl::OkStatus();
  }

  Value Finalize(const State& s) const {
    std::vector<Value> out;
    if (s.data != nullptr) {
      const std::vector<Item>& items = s.data->items;
      size_t first = First(items);
      out.reserve(items.size() - first);
      for (size_t i = items.size(); i > first; --i) {
        out.push_back(Phys::ToValue(Phys::View(items[i - 1].value)));
      }
    }
    return Value::List(std::move(out));
  }

  size_t HeapBytes(const State& s) const {
    if (s.data == nullptr) return 0;
    size_t bytes = sizeof(Data) + s.data->items.capacity() * sizeof(Item);
    for (const Item& it : s.data->items) bytes += Phys::OwnedHeapBytes(it.value);
    return bytes;
  }
};

// ---- TOP_K -------------------------------------------------------------------------------------

// The k most frequent values, most frequent first, ties by value ascending.
//
// Counts are exact while the number of distinct values is at most 2·capacity (capacity =
// max(64, 8k)). Beyond that the summary is reduced Misra-Gries style, as in the mergeable
// summaries of Agarwal et al.: the (capacity+1)-th largest count is subtracted from every count
// and the non-positive ones are dropped, leaving at most `capacity` values. Every count is then
// an underestimate by at most n / (capacity + 1), for adds and merges alike.
template <typename Phys>
struct TopKOp {
  using In = typename Phys::In;
  using Owned = typename Phys::Owned;
  struct Hasher {
    using is_transparent = void;
    size_t operator()(In v) const { return static_cast<size_t>(Phys::Hash(v)); }
  };
  struct Eq {
    using is_transparent = void;
    bool operator()(In a, In b) const { return Phys::Same(a, b); }
  };
  using Map = absl::flat_hash_map<Owned, uint64_t, Hasher, Eq>;
  struct Data {
    Map counts;
  };
  struct State {
    std::unique_ptr<Data> data;
  };
  static constexpr uint8_t kVersion = 1;

  size_t k;
  size_t capacity;  // values kept after a reduction
  size_t MaxEntries() const { return 2 * capacity; }

  void Add(State* s, In v) const {
    if (s->data == nullptr) s->data = std::make_unique<Data>();
    Map& counts = s->data->counts;
    v = Phys::Canonical(v);
    auto it = counts.find(v);
    if (it != counts.end()) {
      ++it->second;
      return;
    }
    counts.emplace(Phys::Own(v), 1);
    if (counts.size() > MaxEntries()) Reduce(&counts);
  }

  void Reduce(Map* counts) const {
    std::vector<uint64_t> values;
    values.reserve(counts->size());
    for (const auto& [key, count] : *counts) values.push_back(count);
    auto nth = values.begin() + static_cast<ptrdiff_t>(capacity);
    std::nth_element(values.begin(), nth, values.end(), std::greater<>());
    const uint64_t cut = *nth;
    absl::erase_if(*counts, [cut](const auto& entry) { return entry.second <= cut; });
    for (auto& [key, count] : *counts) count -= cut;
  }

  void AddBatch(std::byte* const* states, const Column* arg, const int64_t*, const uint32_t* rows,
                size_t n) const {
    ForEachValue<Phys, State>(states, arg, rows, n,
                              [this](State* s, In v, uint32_t) { Add(s, v); });
  }

  void Merge(State* dst, const State& src) const {
    if (src.data == nullptr || src.data->counts.empty()) return;
    if (dst->data == nullptr) dst->data = std::make_unique<Data>();
    Map& counts = dst->data->counts;
    for (const auto& [key, count] : src.data->counts) counts[key] += count;
    if (counts.size() > MaxEntries()) Reduce(&counts);
  }

  // The counts' encoding, shared with APPROX_TOP_K: varint m, then m × (value, varint count),
  // values strictly ascending.
  using Entry = std::pair<In, uint64_t>;
  static void PutCounts(const Map& counts, std::string* out) {
    std::vector<Entry> entries;
    entries.reserve(counts.size());
    for (const auto& [key, count] : counts) entries.emplace_back(Phys::View(key), count);
    std::sort(entries.begin(), entries.end(),
              [](const Entry& a, const Entry& b) { return Phys::Less(a.first, b.first); });
    PutVarint64(out, entries.size());
    for (const auto& [value, count] : entries) {
      Phys::Put(out, value);
      PutVarint64(out, count);
    }
  }
  // Reads PutCounts' encoding into an empty `counts`: at most MaxEntries() values in canonical
  // form, strictly ascending, each count >= 1, the counts summing to at most `max_total`.
  // Errors (DataLoss) start with `name`.
  absl::Status ReadCounts(ByteReader* r, std::string_view name, uint64_t max_total,
                          Map* counts) const {
    uint64_t m = 0;
    absl::Status st = r->Varint64(&m, fmt::format("{} entry count", name));
    if (!st.ok()) return st;
    if (m > MaxEntries()) {
      return DataLoss("{} holds {} values, more than the limit {}", name, m, MaxEntries());
    }
    counts->reserve(std::min<uint64_t>(m, r->remaining()));
    uint64_t left = max_total;  // not yet claimed by a count
    Owned prev{};
    for (uint64_t i = 0; i < m; ++i) {
      In v{};
      st = Phys::Read(r, &v);
      if (!st.ok()) return st;
      if (!Phys::IsCanonical(v)) return DataLoss("{} value not in canonical form", name);
      if (i > 0 && !Phys::Less(Phys::View(prev), v)) {
        return DataLoss("{} values not strictly ascending", name);
      }
      uint64_t count = 0;
      st = r->Varint64(&count, fmt::format("{} count", name));
      if (!st.ok()) return st;
      if (count == 0) return DataLoss("{} count of zero", name);
      if (count > left) return DataLoss("{} counts exceed the row count {}", name, max_total);
      left -= count;
      prev = Phys::Own(v);
      counts->emplace(prev, count);
    }
    return absl::OkStatus();
  }
  // The min(k, size) entries with the largest counts, largest first, ties by value ascending.
  std::vector<Entry> Ranked(const Map& counts) const {
    std::vector<Entry> entries;
    entries.reserve(counts.size());
    for (const auto& [key, count] : counts) entries.emplace_back(Phys::View(key), count);
    auto by_rank = [](const Entry& a, const Entry& b) {
      if (a.second != b.second) return a.second > b.second;
      return Phys::Less(a.first, b.first);
    };
    const size_t m = std::min(k, entries.size());
    std::partial_sort(entries.begin(), entries.begin() + static_cast<ptrdiff_t>(m), entries.end(),
                      by_rank);
    entries.resize(m);
    return entries;
  }
  static size_t CountsHeapBytes(const Map& counts) {
    size_t bytes = counts.capacity() * (sizeof(typename Map::value_type) + 1);
    for (const auto& [key, count] : counts) bytes += Phys::OwnedHeapBytes(key);
    return bytes;
  }

  void Serialize(const State& s, std::string* out) const {
    static const Map kNone;
    PutCounts(s.data == nullptr ? kNone : s.data->counts, out);
  }

  absl::Status Deserialize(ByteReader* r, State* s) const {
    auto data = std::make_unique<Data>();
    absl::Status st = ReadCounts(r, "TOP_K", std::numeric_limits<uint64_t>::max(), &data->counts);
    if (!st.ok()) return st;
    if (!data->counts.empty()) s->data = std::move(data);
    return absl::OkStatus();
  }

  Value Finalize(const State& s) const {
    std::vector<Value> out;
    if (s.data == nullptr) return Value::List(std::move(out));
    const std::vector<Entry> top = Ranked(s.data->counts);
    out.reserve(top.size());
    for (const auto& [value, count] : top) out.push_back(Phys::ToValue(value));
    return Value::List(std::move(out));
  }

  size_t HeapBytes(const State& s) const {
    return s.data == nullptr ? 0 : sizeof(Data) + CountsHeapBytes(s.data->counts);
  }
};

// ---- APPROX_COUNT_DISTINCT ---------------------------------------------------------------------

// The sketch lives in the state: up to HyperLogLog::kSmallEntries distinct values need no heap.
template <typename Phys>
struct ApproxCountDistinctOp {
  using In = typename Phys::In;
  struct State {
    HyperLogLog hll;
  };
  static constexpr uint8_t kVersion = 1;

  void AddBatch(std::byte* const* states, const Column* arg, const int64_t*, const uint32_t* rows,
                size_t n) const {
    ForEachValue<Phys, State>(states, arg, rows, n,
                              [](State* s, In v, uint32_t) { s->hll.AddHash(Phys::Hash(v)); });
  }
  void Merge(State* dst, const State& src) const { dst->hll.Merge(src.hll); }
  void Serialize(const State& s, std::string* out) const { s.hll.Serialize(out); }
  absl::Status Deserialize(ByteReader* r, State* s) const { return s->hll.Deserialize(r); }
  absl::Status MergeSerialized(ByteReader* r, State* dst) const {
    return dst->hll.MergeSerialized(r);
  }
  Value Finalize(const State& s) const {
    return Value::Int64(static_cast<int64_t>(s.hll.EstimateRounded()));
  }
  size_t HeapBytes(const State& s) const { return s.hll.HeapBytes(); }
};

// ---- APPROX_PERCENTILE -------------------------------------------------------------------------

// NaN inputs are skipped (they have no rank).
//
// The first kInlineItems values stay in the state, in arrival order, with NaN (never added)
// marking the unused tail, and kll null; the next value moves them all into a heap KllSketch
// and leaves `items` all NaN. The inline form means exactly the KllSketch that Add()ing its
// items would build (see KllSketch::MergeItems), so results do not depend on the form.
template <typename Phys>
struct ApproxPercentileOp {
  using In = typename Phys::In;
  static constexpr size_t kInlineItems = 3;
  static constexpr double kNoItem = std::numeric_limits<double>::quiet_NaN();
  struct State {
    std::unique_ptr<KllSketch> kll;
    double items[kInlineItems] = {kNoItem, kNoItem, kNoItem};
  };
  static constexpr uint8_t kVersion = 1;

  double q;

  static std::span<const double> Inline(const State& s) {
    size_t m = 0;
    while (m < kInlineItems && !std::isnan(s.items[m])) ++m;
    return {s.items, m};
  }
  // Moves the inline items into a heap sketch. REQUIRES: s->kll == nullptr.
  static void Spill(State* s) {
    s->kll = std::make_unique<KllSketch>();
    for (double& x : s->items) {
      if (std::isnan(x)) break;
      s->kll->Add(x);
      x = kNoItem;
    }
  }
  static void Add(State* s, double x) {
    if (s->kll == nullptr) {
      const size_t m = Inline(*s).size();
      if (m < kInlineItems) {
        s->items[m] = x;
        return;
      }
      Spill(s);
    }
    s->kll->Add(x);
  }

  void AddBatch(std::byte* const* states, const Column* arg, const int64_t*, const uint32_t* rows,
                size_t n) const {
    ForEachValue<Phys, State>(states, arg, rows, n, [](State* s, In v, uint32_t) {
      double x = Phys::ToDouble(v);
      if (!std::isnan(x)) Add(s, x);
    });
  }
  void Merge(State* dst, const State& src) const {
    if (src.kll != nullptr) {
      if (dst->kll == nullptr) {
        if (Inline(*dst).empty()) {
          dst->kll = std::make_unique<KllSketch>(*src.kll);
          return;
        }
        Spill(dst);
      }
      dst->kll->Merge(*src.kll);
      return;
    }
    const std::span<const double> in = Inline(src);
    if (in.empty()) return;
    if (dst->kll == nullptr) {
      const size_t m = Inline(*dst).size();
      if (m + in.size() <= kInlineItems) {
        std::copy(in.begin(), in.end(), dst->items + m);
        return;
      }
      Spill(dst);
    }
    dst->kll->MergeItems(in);
  }
  void Serialize(const State& s, std::string* out) const {
    if (s.kll != nullptr) {
      s.kll->Serialize(out);
    } else {
      KllSketch::SerializeItems(Inline(s), out);
    }
  }
  absl::Status Deserialize(ByteReader* r, State* s) const {
    KllSketch kll;
    absl::Status st = kll.Deserialize(r);
    if (!st.ok()) return st;
    if (kll.empty()) return absl::OkStatus();
    if (kll.num_levels() == 1 && kll.n() <= kInlineItems) {
      // Inline only when that re-encodes to the same bytes: min and max (bitwise, for the sign
      // of zero) are what SerializeItems derives from the items in their decoded order.
      std::span<const double> items = kll.level(0);
      double lo = items[0];
      double hi = items[0];
      for (double x : items) {
        lo = std::min(lo, x);
        hi = std::max(hi, x);
      }
      const double min = kll.min();
      const double max = kll.max();
      // Bitwise on purpose (see above): a value comparison would equate -0.0 and 0.0.
      // NOLINTBEGIN(bugprone-suspicious-memory-comparison)
      const bool same = std::memcmp(&lo, &min, sizeof(double)) == 0 &&
                        std::memcmp(&hi, &max, sizeof(double)) == 0;
      // NOLINTEND(bugprone-suspicious-memory-comparison)
      if (same) {
        std::copy(items.begin(), items.end(), s->items);
        return absl::OkStatus();
      }
    }
    s->kll = std::make_unique<KllSketch>(std::move(kll));
    return absl::OkStatus();
  }
  Value Finalize(const State& s) const {
    if (s.kll != nullptr) return Value::Double(s.kll->Quantile(q));
    const std::span<const double> in = Inline(s);
    if (in.empty()) return Value::Null(DataType::kDouble);
    return Value::Double(KllSketch::QuantileOfItems(in, q));
  }
  size_t HeapBytes(const State& s) const {
    return s.kll == nullptr ? 0 : sizeof(KllSketch) + s.kll->HeapBytes();
  }
};

}  // namespace tessera::agg::internal
