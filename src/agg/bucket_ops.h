#pragma once

// Bucketed aggregates: COUNT_BY(bucket) and SUM_BY(x, bucket), a value per distinct bucket,
// finalized as a MAP {bucket text: value}. Ops for AggFunction<Op> (see agg_function.h).
// Internal to src/agg.
//
// A bucket accumulates the state of an existing fixed-size aggregate over its rows (COUNT for
// COUNT_BY, SUM for SUM_BY), so its value, its NULL rules and its bytes are exactly that
// aggregate's: SUM_BY over BIGINT is an exact 128-bit sum per bucket (NULL if it leaves BIGINT),
// over DOUBLE a compensated sum.
//
// Cap. A state keeps at most 2·cap buckets. When a row or a merge would make it 2·cap + 1, the
// state keeps the `cap` buckets with the most rows (ties: the smaller bucket value first, numbers
// numerically, strings bytewise) and folds the others into the reserved bucket `__other__`.
// Finalize applies the same choice to at most `cap` buckets. So:
//   * the result is exact while the window holds at most `cap` distinct buckets: no state of its
//     tiles or of their merge ever folds;
//   * every row is counted once: the values of all keys, `__other__` included, add up to
//     COUNT(bucket) of the window (for SUM_BY: SUM(x) over its rows with a bucket), however the
//     buckets were chosen;
//   * Merge is commutative (it is a function of the union of the two states), not associative
//     once folding happens (a bucket folded in one tile keeps only its rows of the tiles where it
//     was kept).
// A STRING bucket that is literally `__other__` counts into `__other__`, so the key always has
// one meaning: "rows not listed under a bucket of their own".
//
// Rows whose bucket is NULL (for SUM_BY: whose bucket or x is NULL) are skipped; a bucket appears
// once it has a row, so an empty window is {}.
//
// Bucket text (the JSON object's keys): STRING as is; BIGINT in decimal; BOOLEAN true/false;
// DOUBLE as its shortest round-trip decimal (-0 is 0; NaN is "nan", infinities "inf"/"-inf");
// TIMESTAMP in RFC 3339 with milliseconds (outside years 0000-9999, which only corrupt or computed
// values reach: epoch milliseconds in decimal).
//
// The state is a single pointer, null until the first row (tiny and empty tiles allocate
// nothing).
//
// Encoding (after the version byte 1):
//   varint m (<= 2·cap), m × (bucket value, cell), buckets strictly ascending; then the
//   __other__ cell. A cell is the bucket aggregate's encoding after its version byte (COUNT:
//   varint count; SUM(BIGINT): its version-2 form; SUM(DOUBLE): varint count, [double sum,
//   double compensation]); a bucket's count is >= 1, __other__'s may be 0. A new encoding of
//   COUNT or SUM is a new version of these too.

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "agg/agg_function.h"
#include "agg/basic_ops.h"
#include "agg/phys_types.h"
#include "common/column.h"
#include "common/errors.h"
#include "common/time_util.h"
#include "common/value.h"
#include "common/varint.h"

namespace tessera::agg::internal {

// The reserved key of the rows folded out of the kept buckets.
inline constexpr std::string_view kOtherBucket = "__other__";

// What a bucket accumulates. `Op` is the fixed-size aggregate whose State is the bucket's cell
// (its `count` is the bucket's rows); Add takes one non-NULL row.
struct CountValue {
  using Op = CountOp;
  static void Add(CountState* s) { ++s->count; }
};
struct SumInt64Value {
  using Op = SumInt64Op;
  using XPhys = Int64Phys;
  static void Add(SumInt64Op::State* s, int64_t v) {
    s->Add(static_cast<uint64_t>(v), SumInt64Op::SignWord(v));
    ++s->count;
  }
};
struct SumDoubleValue {
  using Op = DoubleSumOp<false>;
  using XPhys = DoublePhys;
  static void Add(DoubleSumState* s, double v) {
    s->sum.Add(v);
    ++s->count;
  }
};

// The text of a bucket value in the result (see the file comment).
template <typename Phys>
std::string BucketText(typename Phys::In v) {
  if constexpr (std::is_same_v<Phys, StringPhys>) {
    return std::string(v);
  } else if constexpr (std::is_same_v<Phys, BoolPhys>) {
    return v != 0 ? "true" : "false";
  } else if constexpr (std::is_same_v<Phys, TimestampPhys>) {
    if (v < kMinTimestampMs || v > kMaxTimestampMs) return fmt::format("{}", v);
    return FormatRfc3339Millis(v);
  } else {
    return fmt::format("{}", Phys::Canonical(v));
  }
}

// COUNT_BY (V = CountValue: AddBatch over the bucket column) and SUM_BY (V = SumInt64Value or
// SumDoubleValue: AddBatch over the x and bucket columns). KeyPhys is the bucket's type.
template <typename KeyPhys, typename V>
struct BucketOp {
  using Key = typename KeyPhys::In;
  using Owned = typename KeyPhys::Owned;
  using ValueOp = typename V::Op;
  using Cell = typename ValueOp::State;
  struct Hasher {
    using is_transparent = void;
    size_t operator()(Key v) const { return static_cast<size_t>(KeyPhys::Hash(v)); }
  };
  struct Eq {
    using is_transparent = void;
    bool operator()(Key a, Key b) const { return KeyPhys::Same(a, b); }
  };
  using Map = absl::flat_hash_map<Owned, Cell, Hasher, Eq>;
  struct Data {
    Map buckets;
    Cell other;
  };
  struct State {
    std::unique_ptr<Data> data;
  };
  static constexpr uint8_t kVersion = 1;

  size_t cap;  // buckets kept by a reduction and listed by Finalize
  size_t MaxEntries() const { return 2 * cap; }

  static bool IsOtherName(Key key) {
    if constexpr (std::is_same_v<KeyPhys, StringPhys>) return key == kOtherBucket;
    return false;
  }

  // The cell a row of bucket `key` goes to (a reduction may follow: the caller adds its row
  // first, then calls Settle).
  static Cell* CellFor(State* s, Key key) {
    if (s->data == nullptr) s->data = std::make_unique<Data>();
    Data& d = *s->data;
    key = KeyPhys::Canonical(key);
    if (IsOtherName(key)) return &d.other;
    auto it = d.buckets.find(key);
    if (it != d.buckets.end()) return &it->second;
    return &d.buckets.try_emplace(KeyPhys::Own(key)).first->second;
  }
  void Settle(State* s) const {
    if (s->data->buckets.size() > MaxEntries()) Reduce(s->data.get());
  }

  // The ranking of buckets: more rows first, ties by the smaller bucket value.
  struct Ranked {
    Key key;
    uint64_t rows;
  };
  static bool RanksBefore(const Ranked& a, const Ranked& b) {
    if (a.rows != b.rows) return a.rows > b.rows;
    return KeyPhys::Less(a.key, b.key);
  }
  static std::vector<Ranked> Ranking(const Map& buckets) {
    std::vector<Ranked> ranked;
    ranked.reserve(buckets.size());
    for (const auto& [key, cell] : buckets) ranked.push_back({KeyPhys::View(key), cell.count});
    return ranked;
  }

  // Keeps the `cap` best-ranked buckets and folds the rest into __other__.
  void Reduce(Data* d) const {
    std::vector<Ranked> ranked = Ranking(d->buckets);
    auto nth = ranked.begin() + static_cast<ptrdiff_t>(cap);
    std::nth_element(ranked.begin(), nth, ranked.end(), RanksBefore);
    // The best-ranked bucket that goes, copied: its key is erased below.
    const Owned cut_key = KeyPhys::Own(nth->key);
    const Ranked cut{KeyPhys::View(cut_key), nth->rows};
    const ValueOp value_op{};
    for (auto it = d->buckets.begin(); it != d->buckets.end();) {
      if (RanksBefore({KeyPhys::View(it->first), it->second.count}, cut)) {
        ++it;
        continue;
      }
      value_op.Merge(&d->other, it->second);
      d->buckets.erase(it++);
    }
  }

  void AddBatch(std::byte* const* states, const Column* bucket, const int64_t*,
                const uint32_t* rows, size_t n) const requires std::is_same_v<V, CountValue> {
    ForEachValue<KeyPhys, State>(states, bucket, rows, n, [this](State* s, Key key, uint32_t) {
      V::Add(CellFor(s, key));
      Settle(s);
    });
  }

  void AddBatch(std::byte* const* states, const Column* x, const Column* bucket, const int64_t*,
                const uint32_t* rows, size_t n) const requires(!std::is_same_v<V, CountValue>) {
    using XPhys = typename V::XPhys;
    const uint8_t* x_valid = x->valid.data();
    const uint8_t* bucket_valid = bucket->valid.data();
    const auto* x_data = XPhys::Data(*x);
    const auto* bucket_data = KeyPhys::Data(*bucket);
    for (size_t i = 0; i < n; ++i) {
      const uint32_t row = rows[i];
      if (x_valid[row] == 0 || bucket_valid[row] == 0) continue;
      auto* s = reinterpret_cast<State*>(states[i]);
      V::Add(CellFor(s, KeyPhys::At(bucket_data, row)), XPhys::At(x_data, row));
      Settle(s);
    }
  }

  void Merge(State* dst, const State& src) const {
    if (src.data == nullptr) return;
    if (dst->data == nullptr) dst->data = std::make_unique<Data>();
    Data& d = *dst->data;
    const ValueOp value_op{};
    for (const auto& [key, cell] : src.data->buckets) value_op.Merge(&d.buckets[key], cell);
    value_op.Merge(&d.other, src.data->other);
    Settle(dst);
  }

  void Serialize(const State& s, std::string* out) const {
    const ValueOp value_op{};
    if (s.data == nullptr) {
      PutVarint64(out, 0);
      value_op.Serialize(Cell{}, out);
      return;
    }
    std::vector<std::pair<Key, const Cell*>> entries;
    entries.reserve(s.data->buckets.size());
    for (const auto& [key, cell] : s.data->buckets) entries.emplace_back(KeyPhys::View(key), &cell);
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return KeyPhys::Less(a.first, b.first); });
    PutVarint64(out, entries.size());
    for (const auto& [key, cell] : entries) {
      KeyPhys::Put(out, key);
      value_op.Serialize(*cell, out);
    }
    value_op.Serialize(s.data->other, out);
  }

  static absl::Status ReadCell(ByteReader* r, Cell* cell) {
    const ValueOp value_op{};
    if constexpr (ReadsOlderVersions<ValueOp>) {
      return value_op.Deserialize(r, cell, ValueOp::kVersion);
    } else {
      return value_op.Deserialize(r, cell);
    }
  }

  absl::Status Deserialize(ByteReader* r, State* s) const {
    uint64_t m = 0;
    absl::Status st = r->Varint64(&m, "bucket count");
    if (!st.ok()) return st;
    if (m > MaxEntries()) {
      return DataLoss("{} buckets, more than the limit {}", m, MaxEntries());
    }
    auto data = std::make_unique<Data>();
    data->buckets.reserve(std::min<uint64_t>(m, r->remaining()));
    Owned prev{};
    for (uint64_t i = 0; i < m; ++i) {
      Key key{};
      st = KeyPhys::Read(r, &key);
      if (!st.ok()) return st;
      if (!KeyPhys::IsCanonical(key)) return DataLoss("bucket value not in canonical form");
      if (IsOtherName(key)) return DataLoss("bucket named {} outside its slot", kOtherBucket);
      if (i > 0 && !KeyPhys::Less(KeyPhys::View(prev), key)) {
        return DataLoss("buckets not strictly ascending");
      }
      Cell cell;
      st = ReadCell(r, &cell);
      if (!st.ok()) return st;
      if (cell.count == 0) return DataLoss("bucket with no rows");
      prev = KeyPhys::Own(key);
      data->buckets.emplace(prev, std::move(cell));
    }
    st = ReadCell(r, &data->other);
    if (!st.ok()) return st;
    if (m > 0 || data->other.count > 0) s->data = std::move(data);
    return absl::OkStatus();
  }

  Value Finalize(const State& s) const {
    std::vector<std::pair<std::string, Value>> out;
    if (s.data == nullptr) return Value::Map(std::move(out));
    const ValueOp value_op{};
    std::vector<Ranked> ranked = Ranking(s.data->buckets);
    Cell other = s.data->other;
    if (ranked.size() > cap) {
      auto nth = ranked.begin() + static_cast<ptrdiff_t>(cap);
      std::nth_element(ranked.begin(), nth, ranked.end(), RanksBefore);
      for (auto it = nth; it != ranked.end(); ++it) {
        value_op.Merge(&other, s.data->buckets.find(it->key)->second);
      }
      ranked.erase(nth, ranked.end());
    }
    out.reserve(ranked.size() + 1);
    for (const Ranked& r : ranked) {
      out.emplace_back(BucketText<KeyPhys>(r.key),
                       value_op.Finalize(s.data->buckets.find(r.key)->second));
    }
    if (other.count > 0) out.emplace_back(std::string(kOtherBucket), value_op.Finalize(other));
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    return Value::Map(std::move(out));
  }

  size_t HeapBytes(const State& s) const {
    if (s.data == nullptr) return 0;
    size_t bytes =
        sizeof(Data) + s.data->buckets.capacity() * (sizeof(typename Map::value_type) + 1);
    for (const auto& [key, cell] : s.data->buckets) bytes += KeyPhys::OwnedHeapBytes(key);
    return bytes;
  }
};

template <typename KeyPhys>
using CountByOp = BucketOp<KeyPhys, CountValue>;
template <typename KeyPhys>
using SumByInt64Op = BucketOp<KeyPhys, SumInt64Value>;
template <typename KeyPhys>
using SumByDoubleOp = BucketOp<KeyPhys, SumDoubleValue>;

}  // namespace tessera::agg::internal
