#pragma once

// Time-decayed aggregates: EXP_DECAY_SUM(x, half_life) and EXP_DECAY_COUNT(half_life), the sum
// of x·2^(−(at − ts)/h) (x = 1 for the count) over a window's rows, evaluated at the read time
// `at`. An op for AggFunction<Op> (agg_function.h). Internal to src/agg.
//
// Exact merging. A state holds a reference time r and S = Σ x·2^(−(r − ts)/h), the decayed sum
// as of r. Rescaling to another reference r' multiplies S by 2^(−(r' − r)/h), so two states
// merge exactly at r = max(r1, r2), and the value at `at` is S·2^(−(at − r)/h).
//
// Choice of r, and precision. r is the end of the quantum holding the newest row seen,
// r = floor(ts_max / Q)·Q + Q with Q = min(1 minute, h). So:
//   * every row's weight at r is at most 1 and a row's own weight is 2^(−(r − ts)/h) with
//     r − ts < Q + (how much older it is than the newest row): S never overflows because of
//     decay, and rows far older than the newest underflow to 0 exactly when their true
//     contribution at any later `at` is below 2^−1074 of their value;
//   * r depends only on the rows, never on the order of adds and merges, so every split of the
//     rows reaches the same r and the same value up to rounding;
//   * r changes at most once per quantum of new rows, so a tile rescales its sum a bounded
//     number of times (≤ tile/Q + 1), and a merge rescales each side once;
//   * the final factor 2^(−(at − r)/h) is at most 2 when rows are older than `at` (r ≤ at + Q);
//     rows of a read's head tile after `at` weigh up to 2^(tile/h), which the SQL binder keeps
//     at most 2 by requiring h ≥ the view's tile.
// S is a Neumaier-compensated sum (CompensatedSum), so adding many rows costs O(ε) error, not
// O(n·ε). Each weight or rescale factor is one exp2 of an exactly computed exponent (ages in ms
// are exact in a double) divided once, a relative error of a few ε; a merge adds one more
// rounding to each side. So a row's term carries a relative error of about (4 + 2k)·ε, where k
// is the number of rescales and merges on its path — a tile's few rescales, 12 and 24 children
// in hour and day rollups, up to ~70 tiles in a 30-day read, and one fold per day in a lifetime
// tile — and the result is within about (4 + 2k)·ε of Σ|x|·w, w the exact weights (ε = 2^−53):
// below 10^−12 relative to Σ|x|·w for windows (and lifetime histories) up to about 10 years
// (k ≈ 3,700), 10^−11 up to the 100-year limit. Terms whose weight underflows (rows more than
// ~1,074 half-lives older than the newest) add up to 2^−1074 each. A sum beyond the double range
// (|x| near 1.8·10^308) is ±infinity, read as null like SUM(DOUBLE). README ("Time-decayed
// aggregates") states the bound; decay_test checks 10^−12 against brute force over 30 days, in
// any merge order.
//
// Encoding (after the version byte 1): byte 0 for an empty state; else byte 1, zigzag varint
// r (a multiple of Q), then S's sum and compensation as two little-endian doubles.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "agg/basic_ops.h"
#include "agg/phys_types.h"
#include "common/column.h"
#include "common/errors.h"
#include "common/time_util.h"
#include "common/value.h"
#include "common/varint.h"

namespace tessera::agg::internal {

// kCount: EXP_DECAY_COUNT (every row counts 1, no argument); else EXP_DECAY_SUM over Phys.
template <typename Phys, bool kCount>
struct ExpDecayOp {
  static constexpr int64_t kEmpty = std::numeric_limits<int64_t>::min();
  static constexpr int64_t kMaxQuantumMs = 60'000;
  struct State {
    int64_t ref = kEmpty;  // r; kEmpty: no row yet
    CompensatedSum sum;    // S, as of r
  };
  static constexpr uint8_t kVersion = 1;

  int64_t half_life_ms;  // h > 0

  int64_t Quantum() const { return std::min(kMaxQuantumMs, half_life_ms); }
  // 2^(−d/h) for a time difference d (ms; may be negative).
  double Decay(int64_t d) const {
    return std::exp2(-static_cast<double>(d) / static_cast<double>(half_life_ms));
  }
  static void Scale(CompensatedSum* s, double factor) {
    s->sum *= factor;
    s->comp *= factor;
  }

  void Add(State* s, double x, int64_t ts) const {
    const int64_t q = Quantum();
    const int64_t ref = AlignDown(ts, q) + q;
    if (s->ref == kEmpty) {
      s->ref = ref;
    } else if (ref > s->ref) {
      Scale(&s->sum, Decay(ref - s->ref));
      s->ref = ref;
    }
    s->sum.Add(x * Decay(s->ref - ts));
  }

  void AddBatch(std::byte* const* states, const Column* arg, const int64_t* event_time_ms,
                const uint32_t* rows, size_t n) const {
    if constexpr (kCount) {
      for (size_t i = 0; i < n; ++i) {
        Add(reinterpret_cast<State*>(states[i]), 1.0, event_time_ms[rows[i]]);
      }
    } else {
      ForEachValue<Phys, State>(states, arg, rows, n,
                                [this, event_time_ms](State* s, typename Phys::In v, uint32_t row) {
                                  Add(s, Phys::ToDouble(v), event_time_ms[row]);
                                });
    }
  }

  void Merge(State* dst, const State& src) const {
    if (src.ref == kEmpty) return;
    if (dst->ref == kEmpty) {
      *dst = src;
      return;
    }
    CompensatedSum add = src.sum;
    if (src.ref < dst->ref) {
      Scale(&add, Decay(dst->ref - src.ref));
    } else if (src.ref > dst->ref) {
      Scale(&dst->sum, Decay(src.ref - dst->ref));
      dst->ref = src.ref;
    }
    dst->sum.Merge(add);
  }

  void Serialize(const State& s, std::string* out) const {
    if (s.ref == kEmpty) {
      out->push_back('\0');
      return;
    }
    out->push_back('\1');
    PutZigZag64(out, s.ref);
    PutDouble(out, s.sum.sum);
    PutDouble(out, s.sum.comp);
  }

  absl::Status Deserialize(ByteReader* r, State* s) const {
    uint8_t present = 0;
    absl::Status st = r->Byte(&present, "EXP_DECAY presence");
    if (!st.ok()) return st;
    if (present == 0) return absl::OkStatus();
    if (present != 1) return DataLoss("EXP_DECAY presence byte {} (expected 0 or 1)", present);
    int64_t ref = 0;
    st = r->ZigZag64(&ref, "EXP_DECAY reference time");
    if (!st.ok()) return st;
    const int64_t q = Quantum();
    if (ref == kEmpty || ref < kMinTimestampMs || ref > kMaxTimestampMs + q || ref % q != 0) {
      return DataLoss("EXP_DECAY reference time {} is not a multiple of {} ms in range", ref, q);
    }
    State parsed;
    parsed.ref = ref;
    st = r->Double(&parsed.sum.sum, "EXP_DECAY sum");
    if (!st.ok()) return st;
    st = r->Double(&parsed.sum.comp, "EXP_DECAY compensation");
    if (!st.ok()) return st;
    *s = parsed;
    return absl::OkStatus();
  }

  // The value at `at_ms` (a window's read time).
  Value FinalizeAt(const State& s, int64_t at_ms) const {
    if (s.ref == kEmpty) return kCount ? Value::Double(0.0) : Value::Null(DataType::kDouble);
    return Value::Double(s.sum.Result() * Decay(at_ms - s.ref));
  }
  // Without a read time: the value at the state's reference time r.
  Value Finalize(const State& s) const { return FinalizeAt(s, s.ref); }

  size_t HeapBytes(const State&) const { return 0; }
};

}  // namespace tessera::agg::internal
