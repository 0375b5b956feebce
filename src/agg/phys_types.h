#pragma once

// Physical representations of the argument types inside aggregate states (internal to src/agg).
//
// Every aggregate that depends on its argument type is a template over one of these "Phys"
// policies, so the per-row loop reads the column's payload array directly (no Value, no virtual
// call, no allocation). A policy provides:
//   In             the type read from a Column row (int64_t, double, std::string_view)
//   Slot           how an inline state keeps one value (trivially relocatable)
//   Owned          how heap containers (LAST_K, TOP_K) keep one value
//   Data/At        raw access to the column payload
//   Canonical      the representative of values that are Same (DOUBLE: -0.0 and NaNs)
//   Less/Same      the value order (DOUBLE: NaN sorts after every number) and identity
//   Hash           the canonical 64-bit hash (persisted in HyperLogLog states: never change it)
//   Put/Read       the persisted encoding of one value
//   ToValue        the SQL Value of the argument type

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "common/column.h"
#include "common/errors.h"
#include "common/hash.h"
#include "common/types.h"
#include "common/value.h"
#include "common/varint.h"

namespace tessera::agg::internal {

// A string owned by an inline aggregate state: up to kInlineBytes in the object itself (most
// ids: no allocation, no pointer to chase), longer ones on the heap. Unlike std::string's, the
// inline buffer is found from the size, never through a pointer into the object, so a state
// holding it may be relocated with memcpy. A heap buffer is reused when a new value fits.
class HeldString {
 public:
  static constexpr size_t kInlineBytes = 16;

  HeldString() = default;
  HeldString(HeldString&& o) noexcept { Take(o); }
  HeldString& operator=(HeldString&& o) noexcept {
    if (this != &o) {
      Free();
      Take(o);
    }
    return *this;
  }
  ~HeldString() { Free(); }

  std::string_view view() const { return {capacity_ == 0 ? inline_ : heap_, size_}; }
  // Heap bytes held (0 while inline).
  size_t capacity() const { return capacity_; }

  void Assign(std::string_view s) {
    const size_t limit = capacity_ == 0 ? kInlineBytes : capacity_;
    if (s.size() > limit) {
      const size_t cap = (s.size() + 15) & ~size_t{15};
      char* fresh = new char[cap];
      Free();
      heap_ = fresh;
      capacity_ = cap;
    }
    char* dst = capacity_ == 0 ? inline_ : heap_;
    if (!s.empty()) std::memcpy(dst, s.data(), s.size());
    size_ = s.size();
  }

 private:
  void Free() {
    if (capacity_ != 0) delete[] heap_;
    capacity_ = 0;
    size_ = 0;
  }
  void Take(HeldString& o) {
    std::memcpy(inline_, o.inline_, kInlineBytes);  // the heap pointer or the inline bytes
    size_ = o.size_;
    capacity_ = o.capacity_;
    o.capacity_ = 0;
    o.size_ = 0;
  }

  union {
    char inline_[kInlineBytes];
    char* heap_;
  };
  size_t size_ = 0;
  size_t capacity_ = 0;  // heap buffer size; 0: the bytes are inline
};

// BIGINT, TIMESTAMP and BOOLEAN: Column::i64.
template <DataType kT>
struct IntPhys {
  static constexpr DataType kType = kT;
  using In = int64_t;
  using Slot = int64_t;
  using Owned = int64_t;

  static const int64_t* Data(const Column& c) { return c.i64.data(); }
  static In At(const int64_t* data, size_t row) {
    if constexpr (kT == DataType::kBool) return data[row] != 0 ? 1 : 0;
    return data[row];
  }
  static In View(int64_t v) { return v; }
  static void Set(Slot* s, In v) { *s = v; }
  static Owned Own(In v) { return v; }
  static size_t OwnedHeapBytes(const Owned&) { return 0; }

  static In Canonical(In v) { return v; }
  static bool IsCanonical(In) { return true; }
  static bool Less(In a, In b) { return a < b; }
  static bool Same(In a, In b) { return a == b; }
  static uint64_t Hash(In v) {
    if constexpr (kT == DataType::kBool) {
      uint8_t b = v != 0 ? 1 : 0;
      return Hash64(&b, 1);
    } else {
      return Hash64(&v, 8);  // little-endian bytes
    }
  }

  static void Put(std::string* out, In v) {
    if constexpr (kT == DataType::kBool) {
      out->push_back(v != 0 ? 1 : 0);
    } else {
      PutZigZag64(out, v);
    }
  }
  static absl::Status Read(ByteReader* r, In* v) {
    if constexpr (kT == DataType::kBool) {
      uint8_t b = 0;
      absl::Status s = r->Byte(&b, "BOOLEAN value");
      if (!s.ok()) return s;
      if (b > 1) return DataLoss("corrupt BOOLEAN value {}", b);
      *v = b;
      return absl::OkStatus();
    } else {
      return r->ZigZag64(v, "integer value");
    }
  }

  static double ToDouble(In v) { return static_cast<double>(v); }
  static Value ToValue(In v) {
    if constexpr (kT == DataType::kBool) return Value::Bool(v != 0);
    if constexpr (kT == DataType::kTimestamp) return Value::Timestamp(v);
    return Value::Int64(v);
  }
};

using BoolPhys = IntPhys<DataType::kBool>;
using Int64Phys = IntPhys<DataType::kInt64>;
using TimestampPhys = IntPhys<DataType::kTimestamp>;

// DOUBLE: Column::f64.
struct DoublePhys {
  static constexpr DataType kType = DataType::kDouble;
  using In = double;
  using Slot = double;
  using Owned = double;

  static const double* Data(const Column& c) { return c.f64.data(); }
  static In At(const double* data, size_t row) { return data[row]; }
  static In View(double v) { return v; }
  static void Set(Slot* s, In v) { *s = v; }
  static Owned Own(In v) { return v; }
  static size_t OwnedHeapBytes(const Owned&) { return 0; }

  // -0.0 -> 0.0 and every NaN -> the default quiet NaN, so equal values hash equally.
  static double Canonical(double d) {
    if (d == 0.0) return 0.0;
    if (std::isnan(d)) return std::numeric_limits<double>::quiet_NaN();
    return d;
  }
  static bool IsCanonical(double d) { return Bits(d) == Bits(Canonical(d)); }
  static uint64_t Bits(double d) {
    uint64_t b;
    std::memcpy(&b, &d, 8);
    return b;
  }
  // Total order on canonical values: numbers ascending, NaN after everything.
  static bool Less(In a, In b) {
    if (std::isnan(a)) return false;
    if (std::isnan(b)) return true;
    return a < b;
  }
  static bool Same(In a, In b) { return Bits(Canonical(a)) == Bits(Canonical(b)); }
  static uint64_t Hash(In v) {
    double c = Canonical(v);
    return Hash64(&c, 8);
  }

  static void Put(std::string* out, In v) { PutDouble(out, v); }
  static absl::Status Read(ByteReader* r, In* v) { return r->Double(v, "DOUBLE value"); }

  static double ToDouble(In v) { return v; }
  static Value ToValue(In v) { return Value::Double(v); }
};

// STRING: Column::str (views into the batch's arena; states copy what they keep).
struct StringPhys {
  static constexpr DataType kType = DataType::kString;
  using In = std::string_view;
  using Slot = HeldString;
  using Owned = std::string;

  static const std::string_view* Data(const Column& c) { return c.str.data(); }
  static In At(const std::string_view* data, size_t row) { return data[row]; }
  static In View(const HeldString& s) { return s.view(); }
  static In View(const std::string& s) { return s; }
  static void Set(Slot* s, In v) { s->Assign(v); }
  static Owned Own(In v) { return std::string(v); }
  static size_t OwnedHeapBytes(const Owned& s) { return s.capacity() > 15 ? s.capacity() : 0; }

  static In Canonical(In v) { return v; }
  static bool IsCanonical(In) { return true; }
  static bool Less(In a, In b) { return a < b; }  // bytewise (char_traits compares unsigned)
  static bool Same(In a, In b) { return a == b; }
  static uint64_t Hash(In v) { return Hash64(v); }

  static void Put(std::string* out, In v) { PutBytes(out, v); }
  static absl::Status Read(ByteReader* r, In* v) { return r->Bytes(v, "STRING value"); }

  static double ToDouble(In) { return std::numeric_limits<double>::quiet_NaN(); }
  static Value ToValue(In v) { return Value::String(std::string(v)); }
};

// Calls f(State*, value, row) for each non-NULL row of `arg` in the batch, in order.
// The loop is a template so `f` inlines: no virtual call and no allocation per row.
template <typename Phys, typename State, typename F>
inline void ForEachValue(std::byte* const* states, const Column* arg, const uint32_t* rows,
                         size_t n, F&& f) {
  const uint8_t* valid = arg->valid.data();
  const auto* data = Phys::Data(*arg);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t row = rows[i];
    if (valid[row] == 0) continue;
    f(reinterpret_cast<State*>(states[i]), Phys::At(data, row), row);
  }
}

}  // namespace tessera::agg::internal
