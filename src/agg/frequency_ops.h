#pragma once

// Frequency summaries: APPROX_HISTOGRAM(x, bins) and APPROX_TOP_K(x, k [, capacity]).
// Ops for AggFunction<Op> (see agg_function.h). Internal to src/agg.
//
// APPROX_HISTOGRAM counts the non-NULL, non-NaN rows per bin (HistogramBins): exactly, so its
// merge is exact, associative and commutative. It is approximate only in that a value is known
// to its bin. The result is a MAP {bin label: rows} of the non-empty bins.
//
// APPROX_TOP_K keeps a Misra-Gries summary of m = capacity counters, merged as in Agarwal et al.,
// "Mergeable summaries" (PODS 2012), with TOP_K's reduction (TopKOp::Reduce): a state holds up to
// 2m values with exact counts; one more makes it subtract the (m+1)-th largest count from every
// count and drop the values left at 0 or below, keeping at most m. With N the non-NULL rows of the
// state and S the sum of its counts, every count c of a value v then satisfies
//   c <= true count of v <= c + E,  E = floor((N − S) / (m + 1)) <= N / (m + 1),
// for adds and merges alike (each reduction by d removes at least (m+1)·d from S, and a value's
// deficit grows by at most d), and every value more frequent than E holds a counter. E is 0, and
// every count exact, while the state never held more than 2m distinct values. The result lists
// the k values with the largest counts (ties: the smaller value first) as MAPs
// {"count": c, "error": E, "value": v}.
//
// Both states are a single pointer, null until the first counted row.
//
// Encodings (after the version byte 1):
//   APPROX_HISTOGRAM  varint m, then m × (zigzag bin id, varint rows >= 1), ids strictly ascending
//                     within the bins' range
//   APPROX_TOP_K      varint N, varint m (<= 2·capacity), then m × (value, varint count >= 1),
//                     values strictly ascending, counts summing to at most N

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "agg/histogram_bins.h"
#include "agg/phys_types.h"
#include "agg/sketch_ops.h"
#include "common/column.h"
#include "common/errors.h"
#include "common/value.h"
#include "common/varint.h"

namespace tessera::agg::internal {

// ---- APPROX_HISTOGRAM --------------------------------------------------------------------------

template <typename Phys>
struct HistogramOp {
  using In = typename Phys::In;
  using Bin = std::pair<int32_t, uint64_t>;  // (bin id, rows)
  struct Data {
    std::vector<Bin> bins;  // ascending by id; a few entries for typical data
  };
  struct State {
    std::unique_ptr<Data> data;
  };
  static constexpr uint8_t kVersion = 1;

  HistogramBins bins;

  static void Add(State* s, int32_t id, uint64_t rows) {
    if (s->data == nullptr) s->data = std::make_unique<Data>();
    std::vector<Bin>& v = s->data->bins;
    auto it = std::lower_bound(v.begin(), v.end(), id,
                               [](const Bin& b, int32_t key) { return b.first < key; });
    if (it != v.end() && it->first == id) {
      it->second += rows;
    } else {
      v.insert(it, Bin{id, rows});
    }
  }

  void AddBatch(std::byte* const* states, const Column* arg, const int64_t*, const uint32_t* rows,
                size_t n) const {
    ForEachValue<Phys, State>(states, arg, rows, n, [this](State* s, In v, uint32_t) {
      const double x = Phys::ToDouble(v);
      if (!std::isnan(x)) Add(s, bins.BinOf(x), 1);
    });
  }

  void Merge(State* dst, const State& src) const {
    if (src.data == nullptr) return;
    if (dst->data == nullptr) {
      dst->data = std::make_unique<Data>(*src.data);
      return;
    }
    const std::vector<Bin>& a = dst->data->bins;
    const std::vector<Bin>& b = src.data->bins;
    std::vector<Bin> merged;
    merged.reserve(a.size() + b.size());
    size_t i = 0, j = 0;
    while (i < a.size() || j < b.size()) {
      if (j == b.size() || (i < a.size() && a[i].first < b[j].first)) {
        merged.push_back(a[i++]);
      } else if (i == a.size() || b[j].first < a[i].first) {
        merged.push_back(b[j++]);
      } else {
        merged.push_back(Bin{a[i].first, a[i].second + b[j].second});
        ++i;
        ++j;
      }
    }
    dst->data->bins = std::move(merged);
  }

  void Serialize(const State& s, std::string* out) const {
    if (s.data == nullptr) {
      PutVarint64(out, 0);
      return;
    }
    PutVarint64(out, s.data->bins.size());
    for (const auto& [id, rows] : s.data->bins) {
      PutZigZag64(out, id);
      PutVarint64(out, rows);
    }
  }

  absl::Status Deserialize(ByteReader* r, State* s) const {
    uint64_t m = 0;
    absl::Status st = r->Varint64(&m, "APPROX_HISTOGRAM bin count");
    if (!st.ok()) return st;
    const uint64_t limit =
        static_cast<uint64_t>(int64_t{bins.max_bin()} - int64_t{bins.min_bin()}) + 1;
    if (m > limit) return DataLoss("APPROX_HISTOGRAM holds {} bins, more than {}", m, limit);
    if (m == 0) return absl::OkStatus();
    auto data = std::make_unique<Data>();
    data->bins.reserve(std::min<uint64_t>(m, r->remaining()));
    for (uint64_t i = 0; i < m; ++i) {
      int64_t id = 0;
      st = r->ZigZag64(&id, "APPROX_HISTOGRAM bin id");
      if (!st.ok()) return st;
      if (id < bins.min_bin() || id > bins.max_bin()) {
        return DataLoss("APPROX_HISTOGRAM bin id {} outside [{}, {}]", id, bins.min_bin(),
                        bins.max_bin());
      }
      if (i > 0 && id <= data->bins.back().first) {
        return DataLoss("APPROX_HISTOGRAM bins not strictly ascending");
      }
      uint64_t rows = 0;
      st = r->Varint64(&rows, "APPROX_HISTOGRAM bin rows");
      if (!st.ok()) return st;
      if (rows == 0) return DataLoss("APPROX_HISTOGRAM bin with no rows");
      data->bins.emplace_back(static_cast<int32_t>(id), rows);
    }
    s->data = std::move(data);
    return absl::OkStatus();
  }

  Value Finalize(const State& s) const {
    std::vector<std::pair<std::string, Value>> out;
    if (s.data != nullptr) {
      out.reserve(s.data->bins.size());
      for (const auto& [id, rows] : s.data->bins) {
        out.emplace_back(bins.Label(id), Value::Int64(static_cast<int64_t>(rows)));
      }
      std::sort(out.begin(), out.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
    }
    return Value::Map(std::move(out));
  }

  size_t HeapBytes(const State& s) const {
    if (s.data == nullptr) return 0;
    return sizeof(Data) + s.data->bins.capacity() * sizeof(Bin);
  }
};

// ---- APPROX_TOP_K ------------------------------------------------------------------------------

template <typename Phys>
struct ApproxTopKOp {
  using In = typename Phys::In;
  using Summary = TopKOp<Phys>;  // its Map and its Misra-Gries reduction
  using Map = typename Summary::Map;
  struct Data {
    Map counts;
    uint64_t rows = 0;  // N: the non-NULL rows summarized
  };
  struct State {
    std::unique_ptr<Data> data;
  };
  static constexpr uint8_t kVersion = 1;

  Summary summary;  // k and capacity (m)

  void Add(State* s, In v) const {
    if (s->data == nullptr) s->data = std::make_unique<Data>();
    Data& d = *s->data;
    ++d.rows;
    v = Phys::Canonical(v);
    auto it = d.counts.find(v);
    if (it != d.counts.end()) {
      ++it->second;
      return;
    }
    d.counts.emplace(Phys::Own(v), 1);
    if (d.counts.size() > summary.MaxEntries()) summary.Reduce(&d.counts);
  }

  void AddBatch(std::byte* const* states, const Column* arg, const int64_t*, const uint32_t* rows,
                size_t n) const {
    ForEachValue<Phys, State>(states, arg, rows, n,
                              [this](State* s, In v, uint32_t) { Add(s, v); });
  }

  void Merge(State* dst, const State& src) const {
    if (src.data == nullptr) return;
    if (dst->data == nullptr) dst->data = std::make_unique<Data>();
    Data& d = *dst->data;
    d.rows += src.data->rows;
    for (const auto& [key, count] : src.data->counts) d.counts[key] += count;
    if (d.counts.size() > summary.MaxEntries()) summary.Reduce(&d.counts);
  }

  using Entry = typename Summary::Entry;

  void Serialize(const State& s, std::string* out) const {
    if (s.data == nullptr) {
      PutVarint64(out, 0);
      PutVarint64(out, 0);
      return;
    }
    PutVarint64(out, s.data->rows);
    Summary::PutCounts(s.data->counts, out);
  }

  absl::Status Deserialize(ByteReader* r, State* s) const {
    auto data = std::make_unique<Data>();
    absl::Status st = r->Varint64(&data->rows, "APPROX_TOP_K row count");
    if (!st.ok()) return st;
    st = summary.ReadCounts(r, "APPROX_TOP_K", data->rows, &data->counts);
    if (!st.ok()) return st;
    if (data->rows > 0) s->data = std::move(data);
    return absl::OkStatus();
  }

  // E = floor((N − S) / (m + 1)) (see the file comment); 0 if a corrupt merge wrapped N.
  uint64_t ErrorBound(const Data& d) const {
    uint64_t sum = 0;
    for (const auto& [key, count] : d.counts) sum += count;
    if (sum >= d.rows) return 0;
    return (d.rows - sum) / (static_cast<uint64_t>(summary.capacity) + 1);
  }

  Value Finalize(const State& s) const {
    std::vector<Value> out;
    if (s.data == nullptr) return Value::List(std::move(out));
    const auto error = static_cast<int64_t>(ErrorBound(*s.data));
    const std::vector<Entry> top = summary.Ranked(s.data->counts);
    out.reserve(top.size());
    for (const auto& [value, count] : top) {
      out.push_back(Value::Map({{"count", Value::Int64(static_cast<int64_t>(count))},
                                {"error", Value::Int64(error)},
                                {"value", Phys::ToValue(value)}}));
    }
    return Value::List(std::move(out));
  }

  size_t HeapBytes(const State& s) const {
    return s.data == nullptr ? 0 : sizeof(Data) + Summary::CountsHeapBytes(s.data->counts);
  }
};

}  // namespace tessera::agg::internal
