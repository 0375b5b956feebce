#pragma once

// Fixed-size aggregates: COUNT(*), COUNT(x), SUM, MIN/MAX, AVG, the variance family and
// FIRST_VALUE/LAST_VALUE. Ops for AggFunction<Op> (see agg_function.h). Internal to src/agg.
//
// Encodings (after the version byte 1):
//   COUNT            varint count
//   SUM(BIGINT)      v2: varint count, [zigzag low64, zigzag high64 excess] (128-bit exact sum;
//                    the excess is the high word minus the low word's sign extension, so a
//                    sum that fits 64 bits costs one byte more than v1)
//                    v1 (still read): varint count, [zigzag sum]
//   SUM/AVG(DOUBLE)  varint count, [double sum, double compensation]
//   AVG(BIGINT)      varint count, [fixed64 low, fixed64 high]        (128-bit exact sum)
//   MIN/MAX          byte has, [value]
//   VAR/STDDEV       varint count, [double mean, double m2]
//   FIRST/LAST       byte has, [zigzag event time, value]
//   NEWEST_EVENT_TIME  byte tag (0 no row, 1 known, 2 unknown), [zigzag event time if 1]

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "agg/aggregate.h"
#include "agg/phys_types.h"
#include "common/column.h"
#include "common/errors.h"
#include "common/time_util.h"
#include "common/value.h"
#include "common/varint.h"

namespace tessera::agg::internal {

inline absl::Status ReadFlag(ByteReader* r, bool* flag) {
  uint8_t b = 0;
  absl::Status s = r->Byte(&b, "presence flag");
  if (!s.ok()) return s;
  if (b > 1) return DataLoss("corrupt presence flag {}", b);
  *flag = b == 1;
  return absl::OkStatus();
}

// ---- COUNT -------------------------------------------------------------------------------------

struct CountState {
  uint64_t count = 0;
};

inline void SerializeCount(const CountState& s, std::string* out) { PutVarint64(out, s.count); }
inline absl::Status DeserializeCount(ByteReader* r, CountState* s) {
  return r->Varint64(&s->count, "count");
}

// COUNT(*): every row, NULL or not.
struct CountStarOp {
  using State = CountState;
  static constexpr uint8_t kVersion = 1;

  void AddBatch(std::byte* const* states, const Column*, const int64_t*, const uint32_t*,
                size_t n) const {
    for (size_t i = 0; i < n; ++i) ++reinterpret_cast<State*>(states[i])->count;
  }
  void Merge(State* dst, const State& src) const { dst->count += src.count; }
  void Serialize(const State& s, std::string* out) const { SerializeCount(s, out); }
  absl::Status Deserialize(ByteReader* r, State* s) const { return DeserializeCount(r, s); }
  Value Finalize(const State& s) const { return Value::Int64(static_cast<int64_t>(s.count)); }
  size_t HeapBytes(const State&) const { return 0; }
};

// COUNT(x): non-NULL rows. Works for any argument type (reads only the validity bytes).
struct CountOp {
  using State = CountState;
  static constexpr uint8_t kVersion = 1;

  void AddBatch(std::byte* const* states, const Column* arg, const int64_t*, const uint32_t* rows,
                size_t n) const {
    const uint8_t* valid = arg->valid.data();
    for (size_t i = 0; i < n; ++i) {
      reinterpret_cast<State*>(states[i])->count += valid[rows[i]] != 0 ? 1 : 0;
    }
  }
  void Merge(State* dst, const State& src) const { dst->count += src.count; }
  void Serialize(const State& s, std::string* out) const { SerializeCount(s, out); }
  absl::Status Deserialize(ByteReader* r, State* s) const { return DeserializeCount(r, s); }
  Value Finalize(const State& s) const { return Value::Int64(static_cast<int64_t>(s.count)); }
  size_t HeapBytes(const State&) const { return 0; }
};

// ---- SUM ---------------------------------------------------------------------------------------

// SUM(BIGINT): exact 128-bit sum, so partial sums of tiles may exceed BIGINT while the window's
// total does not (merging stays exact and order-independent). A window whose sum does not fit
// BIGINT finalizes to NULL: SQL raises "bigint out of range" there, and a feature read must not
// fail nor wrap silently.
struct SumInt64Op {
  // The 128-bit sum as two words (24 bytes with the count, where an __int128 member would align
  // the state to 32).
  struct State {
    uint64_t low = 0;
    uint64_t high = 0;
    uint64_t count = 0;

    void Add(uint64_t add_low, uint64_t add_high) {
      const uint64_t before = low;
      low += add_low;
      high += add_high + (low < before ? 1 : 0);
    }
  };
  static constexpr uint8_t kVersion = 2;
  static constexpr uint8_t kOldestVersion = 1;

  static uint64_t SignWord(int64_t v) { return v < 0 ? ~uint64_t{0} : 0; }

  void AddBatch(std::byte* const* states, const Column* arg, const int64_t*, const uint32_t* rows,
                size_t n) const {
    ForEachValue<Int64Phys, State>(states, arg, rows, n, [](State* s, int64_t v, uint32_t) {
      s->Add(static_cast<uint64_t>(v), SignWord(v));
      ++s->count;
    });
  }
  void Merge(State* dst, const State& src) const {
    dst->Add(src.low, src.high);
    dst->count += src.count;
  }
  void Serialize(const State& s, std::string* out) const {
    PutVarint64(out, s.count);
    if (s.count == 0) return;
    const auto low = static_cast<int64_t>(s.low);
    PutZigZag64(out, low);
    PutZigZag64(out, static_cast<int64_t>(s.high - SignWord(low)));
  }
  absl::Status Deserialize(ByteReader* r, State* s, uint8_t version) const {
    absl::Status st = r->Varint64(&s->count, "count");
    if (!st.ok() || s->count == 0) return st;
    int64_t low = 0;
    st = r->ZigZag64(&low, "sum");
    if (!st.ok()) return st;
    int64_t excess = 0;
    if (version >= 2) {
      st = r->ZigZag64(&excess, "sum (high word)");
      if (!st.ok()) return st;
    }
    s->low = static_cast<uint64_t>(low);
    s->high = static_cast<uint64_t>(excess) + SignWord(low);
    return absl::OkStatus();
  }
  Value Finalize(const State& s) const {
    // Fits BIGINT iff the high word is the low word's sign extension.
    if (s.count == 0 || s.high != SignWord(static_cast<int64_t>(s.low))) {
      return Value::Null(DataType::kInt64);
    }
    return Value::Int64(static_cast<int64_t>(s.low));
  }
  size_t HeapBytes(const State&) const { return 0; }
};

// Neumaier's compensated summation: the error stays O(eps) independent of the row count, so
// sums of per-tile partial states agree with the sum of all rows to ~1 ulp in practice.
struct CompensatedSum {
  double sum = 0.0;
  double comp = 0.0;

  void Add(double x) {
    double t = sum + x;
    if (std::fabs(sum) >= std::fabs(x)) {
      comp += (sum - t) + x;
    } else {
      comp += (x - t) + sum;
    }
    sum = t;
  }
  void Merge(const CompensatedSum& o) {
    Add(o.sum);
    comp += o.comp;
  }
  // Infinities make the compensation NaN; the plain sum is then the answer.
  double Result() const { return std::isfinite(sum) ? sum + comp : sum; }
};

struct DoubleSumState {
  CompensatedSum sum;
  uint64_t count = 0;
};

inline void SerializeDoubleSum(const DoubleSumState& s, std::string* out) {
  PutVarint64(out, s.count);
  if (s.count == 0) return;
  PutDouble(out, s.sum.sum);
  PutDouble(out, s.sum.comp);
}

inline absl::Status DeserializeDoubleSum(ByteReader* r, DoubleSumState* s) {
  absl::Status st = r->Varint64(&s->count, "count");
  if (!st.ok() || s->count == 0) return st;
  st = r->Double(&s->sum.sum, "sum");
  if (!st.ok()) return st;
  return r->Double(&s->sum.comp, "sum compensation");
}

// SUM(DOUBLE) (kAvg = false) and AVG(DOUBLE) (kAvg = true).
template <bool kAvg>
struct DoubleSumOp {
  using State = DoubleSumState;
  static constexpr uint8_t kVersion = 1;

  void AddBatch(std::byte* const* states, const Column* arg, const int64_t*, const uint32_t* rows,
                size_t n) const {
    ForEachValue<DoublePhys, State>(states, arg, rows, n, [](State* s, double v, uint32_t) {
      s->sum.Add(v);
      ++s->count;
    });
  }
  void Merge(State* dst, const State& src) const {
    if (src.count == 0) return;
    dst->sum.Merge(src.sum);
    dst->count += src.count;
  }
  void Serialize(const State& s, std::string* out) const { SerializeDoubleSum(s, out); }
  absl::Status Deserialize(ByteReader* r, State* s) const { return DeserializeDoubleSum(r, s); }
  Value Finalize(const State& s) const {
    if (s.count == 0) return Value::Null(DataType::kDouble);
    double total = s.sum.Result();
    if constexpr (kAvg) return Value::Double(total / static_cast<double>(s.count));
    return Value::Double(total);
  }
  size_t HeapBytes(const State&) const { return 0; }
};

// AVG(BIGINT): exact 128-bit sum, so merge order never changes the result. Kept unsigned so
// that even a corrupt (deserialized) sum wraps instead of overflowing.
struct AvgInt64Op {
  struct State {
    unsigned __int128 sum = 0;
    uint64_t count = 0;
  };
  static constexpr uint8_t kVersion = 1;

  void AddBatch(std::byte* const* states, const Column* arg, const int64_t*, const uint32_t* rows,
                size_t n) const {
    ForEachValue<Int64Phys, State>(states, arg, rows, n, [](State* s, int64_t v, uint32_t) {
      s->sum += static_cast<unsigned __int128>(static_cast<__int128>(v));
      ++s->count;
    });
  }
  void Merge(State* dst, const State& src) const {
    dst->sum += src.sum;
    dst->count += src.count;
  }
  void Serialize(const State& s, std::string* out) const {
    PutVarint64(out, s.count);
    if (s.count == 0) return;
    unsigned __int128 u = s.sum;
    PutFixed64(out, static_cast<uint64_t>(u));
    PutFixed64(out, static_cast<uint64_t>(u >> 64));
  }
  absl::Status Deserialize(ByteReader* r, State* s) const {
    absl::Status st = r->Varint64(&s->count, "count");
    if (!st.ok() || s->count == 0) return st;
    uint64_t lo = 0, hi = 0;
    st = r->Fixed64(&lo, "sum");
    if (!st.ok()) return st;
    st = r->Fixed64(&hi, "sum");
    if (!st.ok()) return st;
    s->sum = (static_cast<unsigned __int128>(hi) << 64) | lo;
    return absl::OkStatus();
  }
  Value Finalize(const State& s) const {
    if (s.count == 0) return Value::Null(DataType::kDouble);
    long double avg =
        static_cast<long double>(static_cast<__int128>(s.sum)) / static_cast<long double>(s.count);
    return Value::Double(static_cast<double>(avg));
  }
  size_t HeapBytes(const State&) const { return 0; }
};

// ---- MIN / MAX ---------------------------------------------------------------------------------

// MIN (kMax = false) / MAX (kMax = true). Ties keep the value already held. DOUBLE orders NaN
// above every number (like PostgreSQL).
template <typename Phys, bool kMax>
struct MinMaxOp {
  struct State {
    typename Phys::Slot value{};
    bool has = false;
  };
  using In = typename Phys::In;
  static constexpr uint8_t kVersion = 1;

  static bool Better(In candidate, In current) {
    return kMax ? Phys::Less(current, candidate) : Phys::Less(candidate, current);
  }

  void AddBatch(std::byte* const* states, const Column* arg, const int64_t*, const uint32_t* rows,
                size_t n) const {
    ForEachValue<Phys, State>(states, arg, rows, n, [](State* s, In v, uint32_t) {
      if (!s->has || Better(v, Phys::View(s->value))) {
        Phys::Set(&s->value, v);
        s->has = true;
      }
    });
  }
  void Merge(State* dst, const State& src) const {
    if (!src.has) return;
    In v = Phys::View(src.value);
    if (!dst->has || Better(v, Phys::View(dst->value))) {
      Phys::Set(&dst->value, v);
      dst->has = true;
    }
  }
  void Serialize(const State& s, std::string* out) const {
    out->push_back(s.has ? 1 : 0);
    if (s.has) Phys::Put(out, Phys::View(s.value));
  }
  absl::Status Deserialize(ByteReader* r, State* s) const {
    absl::Status st = ReadFlag(r, &s->has);
    if (!st.ok() || !s->has) return st;
    In v{};
    st = Phys::Read(r, &v);
    if (!st.ok()) return st;
    Phys::Set(&s->value, v);
    return absl::OkStatus();
  }
  Value Finalize(const State& s) const {
    if (!s.has) return Value::Null(Phys::kType);
    return Phys::ToValue(Phys::View(s.value));
  }
  size_t HeapBytes(const State& s) const {
    if constexpr (std::is_same_v<typename Phys::Slot, HeldString>) return s.value.capacity();
    return 0;
  }
};

// ---- VARIANCE / STDDEV -------------------------------------------------------------------------

enum class MomentResult : uint8_t { kVarSamp, kVarPop, kStddevSamp, kStddevPop };

// Count, mean and M2 (sum of squared deviations): Welford's update per row, Chan et al.'s
// pairwise combination for Merge.
template <typename Phys>
struct MomentsOp {
  struct State {
    uint64_t count = 0;
    double mean = 0.0;
    double m2 = 0.0;
  };
  using In = typename Phys::In;
  static constexpr uint8_t kVersion = 1;

  MomentResult result;

  void AddBatch(std::byte* const* states, const Column* arg, const int64_t*, const uint32_t* rows,
                size_t n) const {
    ForEachValue<Phys, State>(states, arg, rows, n, [](State* s, In v, uint32_t) {
      double x = Phys::ToDouble(v);
      ++s->count;
      double delta = x - s->mean;
      s->mean += delta / static_cast<double>(s->count);
      s->m2 += delta * (x - s->mean);
    });
  }
  void Merge(State* dst, const State& src) const {
    if (src.count == 0) return;
    if (dst->count == 0) {
      *dst = src;
      return;
    }
    double na = static_cast<double>(dst->count);
    double nb = static_cast<double>(src.count);
    double n = na + nb;
    double delta = src.mean - dst->mean;
    dst->mean += delta * (nb / n);
    dst->m2 += src.m2 + delta * delta * (na * nb / n);
    dst->count += src.count;
  }
  void Serialize(const State& s, std::string* out) const {
    PutVarint64(out, s.count);
    if (s.count == 0) return;
    PutDouble(out, s.mean);
    PutDouble(out, s.m2);
  }
  absl::Status Deserialize(ByteReader* r, State* s) const {
    absl::Status st = r->Varint64(&s->count, "count");
    if (!st.ok() || s->count == 0) return st;
    st = r->Double(&s->mean, "mean");
    if (!st.ok()) return st;
    return r->Double(&s->m2, "m2");
  }
  Value Finalize(const State& s) const {
    bool sample = result == MomentResult::kVarSamp || result == MomentResult::kStddevSamp;
    uint64_t min_rows = sample ? 2 : 1;
    if (s.count < min_rows) return Value::Null(DataType::kDouble);
    double m2 = s.m2 < 0.0 ? 0.0 : s.m2;  // rounding can leave a tiny negative
    double var = m2 / static_cast<double>(sample ? s.count - 1 : s.count);
    bool stddev = result == MomentResult::kStddevSamp || result == MomentResult::kStddevPop;
    return Value::Double(stddev ? std::sqrt(var) : var);
  }
  size_t HeapBytes(const State&) const { return 0; }
};

// ---- FIRST_VALUE / LAST_VALUE ------------------------------------------------------------------

// FIRST_VALUE (kLast = false): smallest event time, ties keep the earlier arrival.
// LAST_VALUE (kLast = true): largest event time, ties take the later arrival; in Merge, src's
// rows count as later arrivals.
template <typename Phys, bool kLast>
struct FirstLastOp {
  struct State {
    int64_t event_time = 0;
    typename Phys::Slot value{};
    bool has = false;
  };
  using In = typename Phys::In;
  static constexpr uint8_t kVersion = 1;

  static bool Replaces(int64_t candidate_ts, int64_t current_ts) {
    return kLast ? candidate_ts >= current_ts : candidate_ts < current_ts;
  }

  void AddBatch(std::byte* const* states, const Column* arg, const int64_t* event_time_ms,
                const uint32_t* rows, size_t n) const {
    ForEachValue<Phys, State>(states, arg, rows, n, [event_time_ms](State* s, In v, uint32_t row) {
      int64_t ts = event_time_ms[row];
      if (!s->has || Replaces(ts, s->event_time)) {
        Phys::Set(&s->value, v);
        s->event_time = ts;
        s->has = true;
      }
    });
  }
  void Merge(State* dst, const State& src) const {
    if (!src.has) return;
    if (!dst->has || Replaces(src.event_time, dst->event_time)) {
      Phys::Set(&dst->value, Phys::View(src.value));
      dst->event_time = src.event_time;
      dst->has = true;
    }
  }
  void Serialize(const State& s, std::string* out) const {
    out->push_back(s.has ? 1 : 0);
    if (!s.has) return;
    PutZigZag64(out, s.event_time);
    Phys::Put(out, Phys::View(s.value));
  }
  absl::Status Deserialize(ByteReader* r, State* s) const {
    absl::Status st = ReadFlag(r, &s->has);
    if (!st.ok() || !s->has) return st;
    st = r->ZigZag64(&s->event_time, "event time");
    if (!st.ok()) return st;
    In v{};
    st = Phys::Read(r, &v);
    if (!st.ok()) return st;
    Phys::Set(&s->value, v);
    return absl::OkStatus();
  }
  Value Finalize(const State& s) const {
    if (!s.has) return Value::Null(Phys::kType);
    return Phys::ToValue(Phys::View(s.value));
  }
  size_t HeapBytes(const State& s) const {
    if constexpr (std::is_same_v<typename Phys::Slot, HeldString>) return s.value.capacity();
    return 0;
  }
};

// ---- The engine's newest event time --------------------------------------------------------

// kNewestEventTime: the largest event time of the rows (no argument; every row counts, as in
// COUNT(*)). The state is one int64: kNone (no row), kUnknown (some row's time is unknown:
// NewestEventTimeUnknownEncoding was merged in) or the newest time. kNone < every time <
// kUnknown, so Add and Merge are a max and "unknown" absorbs whatever it meets.
struct NewestEventTimeOp {
  struct State {
    int64_t newest = kNone;
  };
  static constexpr int64_t kNone = std::numeric_limits<int64_t>::min();
  static constexpr int64_t kUnknown = std::numeric_limits<int64_t>::max();
  static constexpr uint8_t kVersion = 1;
  // The encoding's tag byte (after the version byte), then for kTagKnown a zigzag event time.
  static constexpr uint8_t kTagNone = 0;
  static constexpr uint8_t kTagKnown = 1;
  static constexpr uint8_t kTagUnknown = 2;

  void AddBatch(std::byte* const* states, const Column*, const int64_t* event_time_ms,
                const uint32_t* rows, size_t n) const {
    for (size_t i = 0; i < n; ++i) {
      int64_t& newest = reinterpret_cast<State*>(states[i])->newest;
      newest = std::max(newest, event_time_ms[rows[i]]);
    }
  }
  void Merge(State* dst, const State& src) const {
    dst->newest = std::max(dst->newest, src.newest);
  }
  void Serialize(const State& s, std::string* out) const {
    if (s.newest == kNone || s.newest == kUnknown) {
      out->push_back(static_cast<char>(s.newest == kNone ? kTagNone : kTagUnknown));
      return;
    }
    out->push_back(static_cast<char>(kTagKnown));
    PutZigZag64(out, s.newest);
  }
  absl::Status Deserialize(ByteReader* r, State* s) const {
    uint8_t tag = 0;
    absl::Status st = r->Byte(&tag, "tag");
    if (!st.ok()) return st;
    switch (tag) {
      case kTagNone:
        s->newest = kNone;
        return absl::OkStatus();
      case kTagUnknown:
        s->newest = kUnknown;
        return absl::OkStatus();
      case kTagKnown:
        st = r->ZigZag64(&s->newest, "event time");
        if (!st.ok()) return st;
        if (s->newest < kMinTimestampMs || s->newest > kMaxTimestampMs) {
          return DataLoss("event time {} is outside the supported range", s->newest);
        }
        return absl::OkStatus();
      default:
        return DataLoss("corrupt tag {} (expected 0 none, 1 known, 2 unknown)", tag);
    }
  }
  Value Finalize(const State& s) const {
    if (s.newest == kNone || s.newest == kUnknown) return Value::Null(DataType::kTimestamp);
    return Value::Timestamp(s.newest);
  }
  size_t HeapBytes(const State&) const { return 0; }
};

}  // namespace tessera::agg::internal
