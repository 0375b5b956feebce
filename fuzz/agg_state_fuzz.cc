// libFuzzer target: random bytes into Deserialize of every aggregate kind and argument type.
// Accepted states must survive Finalize, Merge and a byte-identical re-serialization. The bytes
// after the first accepted state are merged into it with MergeSerialized, which must reject what
// Deserialize rejects and otherwise give what Deserialize and Merge give. (A dense HyperLogLog
// encoding is 12 KiB, above libFuzzer's default -max_len of 4096: merges into dense sketches are
// covered by agg_test's MergeSerializedEqualsDecodeThenMerge.)
//
//   cmake --preset fuzz && cmake --build build/fuzz --target agg_state_fuzz
//   build/fuzz/fuzz/agg_state_fuzz -max_total_time=60

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agg/agg_types.h"
#include "agg/aggregate.h"

namespace {

using tessera::DataType;
using tessera::agg::AggKind;
using tessera::agg::AggParams;
using tessera::agg::AggregateFunction;

std::vector<std::unique_ptr<AggregateFunction>> MakeAll() {
  std::vector<std::unique_ptr<AggregateFunction>> fns;
  const DataType types[] = {DataType::kBool, DataType::kInt64, DataType::kDouble, DataType::kString,
                            DataType::kTimestamp};
  for (int k = 0; k <= static_cast<int>(AggKind::kTopK); ++k) {
    for (DataType type : types) {
      AggParams params{.k = 3, .q = 0.5};
      auto fn = tessera::agg::MakeAggregate(static_cast<AggKind>(k), type, params);
      if (fn.ok()) fns.push_back(*std::move(fn));
    }
  }
  // COUNT_BY / SUM_BY with a cap of 3 and APPROX_TOP_K with 3 counters (small, so that short
  // inputs reach the limits), and APPROX_HISTOGRAM in its three forms.
  auto add = [&fns](absl::StatusOr<std::unique_ptr<AggregateFunction>> fn) {
    if (fn.ok()) fns.push_back(*std::move(fn));
  };
  for (DataType type : types) {
    add(tessera::agg::MakeAggregate(AggKind::kCountBy, type, AggParams{.capacity = 3}));
    for (DataType x : {DataType::kInt64, DataType::kDouble}) {
      add(tessera::agg::MakeAggregate(AggKind::kSumBy, x, type, AggParams{.capacity = 3}));
    }
    add(tessera::agg::MakeAggregate(AggKind::kApproxTopK, type, AggParams{.k = 2, .capacity = 3}));
  }
  for (DataType x : {DataType::kInt64, DataType::kDouble}) {
    for (const char* bins : {"log2", "log10", "-1,0,2.5"}) {
      add(tessera::agg::MakeAggregate(AggKind::kApproxHistogram, x, AggParams{.bins = bins}));
    }
  }
  // EXP_DECAY_SUM over both numeric types and EXP_DECAY_COUNT; a 7 ms half-life makes the
  // reference time's quantum 7 ms (an encoding must hold a multiple of it).
  for (int64_t h : {int64_t{7}, int64_t{86'400'000}}) {
    for (DataType x : {DataType::kInt64, DataType::kDouble}) {
      add(tessera::agg::MakeAggregate(AggKind::kExpDecaySum, x, AggParams{.half_life_ms = h}));
    }
    add(tessera::agg::MakeAggregate(AggKind::kExpDecayCount, DataType::kNull,
                                    AggParams{.half_life_ms = h}));
  }
  // The engine's newest-event-time slot (no argument; never in SQL).
  add(tessera::agg::MakeAggregate(AggKind::kNewestEventTime, DataType::kNull, {}));
  return fns;
}

struct State {
  explicit State(const AggregateFunction* f) : fn(f), buf(f->state_size() + 64) {
    auto p = reinterpret_cast<uintptr_t>(buf.data());
    ptr = reinterpret_cast<std::byte*>((p + 63) & ~uintptr_t{63});
    fn->Init(ptr);
  }
  ~State() { fn->Destroy(ptr); }
  const AggregateFunction* fn;
  std::vector<std::byte> buf;
  std::byte* ptr;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* fns = new std::vector<std::unique_ptr<AggregateFunction>>(MakeAll());
  if (size < 1) return 0;
  // The first byte picks the function, the rest is the encoding.
  const AggregateFunction* fn = (*fns)[data[0] % fns->size()].get();
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  State s(fn);
  if (!fn->Deserialize(&in, s.ptr).ok()) return 0;
  fn->Finalize(s.ptr);
  std::string bytes;
  fn->Serialize(s.ptr, &bytes);
  State t(fn);
  std::string_view re = bytes;
  if (!fn->Deserialize(&re, t.ptr).ok() || !re.empty()) std::abort();
  std::string again;
  fn->Serialize(t.ptr, &again);
  if (again != bytes) std::abort();
  fn->Merge(t.ptr, s.ptr);
  fn->Merge(t.ptr, t.ptr);
  fn->Finalize(t.ptr);

  // The rest of the input (`in` now points after the first state) as a second encoding.
  State merged(fn);  // the first state ⊕ the rest, through MergeSerialized
  std::string_view first = bytes;
  if (!fn->Deserialize(&first, merged.ptr).ok()) std::abort();
  std::string_view rest_a = in;
  const bool merged_ok = fn->MergeSerialized(&rest_a, merged.ptr).ok();
  State other(fn);
  std::string_view rest_b = in;
  const bool decoded_ok = fn->Deserialize(&rest_b, other.ptr).ok();
  if (merged_ok != decoded_ok) std::abort();
  if (!decoded_ok) return 0;  // `merged` may hold part of the input: only destroyed
  if (rest_a.size() != rest_b.size()) std::abort();
  State expected(fn);
  first = bytes;
  if (!fn->Deserialize(&first, expected.ptr).ok()) std::abort();
  fn->Merge(expected.ptr, other.ptr);
  std::string got_bytes, expected_bytes;
  fn->Serialize(merged.ptr, &got_bytes);
  fn->Serialize(expected.ptr, &expected_bytes);
  if (got_bytes != expected_bytes) std::abort();
  if (fn->HeapBytes(merged.ptr) != fn->HeapBytes(expected.ptr)) std::abort();
  return 0;
}
