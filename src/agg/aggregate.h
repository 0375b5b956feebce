#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/column.h"
#include "common/types.h"
#include "common/value.h"

namespace tessera::agg {

// The aggregate functions of the SQL dialect.
enum class AggKind : uint8_t {
  kCountStar,  // COUNT(*)
  kCount,      // COUNT(x): non-NULL inputs
  kSum,        // BIGINT -> BIGINT (wraps on overflow), DOUBLE -> DOUBLE
  kMin,        // any orderable type -> same type
  kMax,
  kAvg,                  // numeric -> DOUBLE
  kVarSamp,              // VARIANCE / VAR_SAMP: sample variance, NULL for < 2 rows
  kVarPop,               // VAR_POP
  kStddevSamp,           // STDDEV / STDDEV_SAMP
  kStddevPop,            // STDDEV_POP
  kFirstValue,           // value with the smallest event time (ties: first to arrive)
  kLastValue,            // value with the largest event time (ties: last to arrive)
  kLastK,                // LAST_K(x, k): k newest non-NULL values, newest first -> LIST
  kApproxCountDistinct,  // HyperLogLog -> BIGINT
  kApproxPercentile,     // APPROX_PERCENTILE(x, q) -> DOUBLE (a value seen in the input)
  kTopK,                 // TOP_K(x, k): most frequent values, most frequent first -> LIST
  kExpDecaySum,      // EXP_DECAY_SUM(x, half_life): Σ x·2^(−(at − ts)/half_life) -> DOUBLE
  kExpDecayCount,    // EXP_DECAY_COUNT(half_life): Σ 2^(−(at − ts)/half_life) -> DOUBLE
  kCountBy,          // COUNT_BY(bucket): rows per bucket -> MAP
  kSumBy,            // SUM_BY(x, bucket): SUM(x) per bucket -> MAP
  kApproxHistogram,  // APPROX_HISTOGRAM(x, bins): rows per bin -> MAP
  kApproxTopK,       // APPROX_TOP_K(x, k): heavy hitters of an unbounded domain -> LIST
  // Internal, never in SQL: the largest event time of the rows -> TIMESTAMP. No argument (reads
  // AddBatch's event times, like COUNT(*) its rows); the engine's hidden slot of every tile
  // (engine/catalog_store.h: MakeTileLayout).
  kNewestEventTime,
};

// Constant parameters of an aggregate call.
struct AggParams {
  int64_t k = 0;             // LAST_K, TOP_K: 1..1000
  double q = 0.5;            // APPROX_PERCENTILE: 0..1
  int64_t half_life_ms = 0;  // EXP_DECAY_SUM, EXP_DECAY_COUNT: 1 ms .. kMaxDurationMs
  // COUNT_BY, SUM_BY: distinct buckets kept per state, 1..1000 (unset: 64).
  // APPROX_TOP_K (whose k is `k` above, 1..1000): counters of the summary, k..10000
  // (unset: max(64, 8k)).
  std::optional<int64_t> capacity{};
  // APPROX_HISTOGRAM: the bins as NormalizeHistogramBins (agg_types.h) returns them: 'log2',
  // 'log10' or strictly ascending edges such as '0,10,100'.
  std::string bins{};
};

// The argument columns of one AddBatch, in SQL order: `first` is the argument (null for COUNT(*))
// and `second` the second row-expression argument of SUM_BY(x, bucket) (null for the rest).
// Converts implicitly from one column, so one-argument call sites pass their column as before.
struct AggArgs {
  AggArgs(const Column* first_arg = nullptr,  // NOLINT(google-explicit-constructor)
          const Column* second_arg = nullptr)
      : first(first_arg), second(second_arg) {}
  const Column* first;
  const Column* second;
};

// The contract every aggregate holds (ClickHouse's IAggregateFunction, DuckDB's state structs):
//
// A *state* is a fixed-size, suitably aligned block of StateSize() bytes that the caller owns
// (usually inside a tile's arena). Init() must run before any other use and Destroy() exactly
// once after the last use (it frees whatever heap memory the state grew, e.g. sketches).
//
// Add/Merge/Serialize/Deserialize/Finalize obey:
//   * Merge(a, b) == adding b's rows to a, for every split of the rows (associative and
//     commutative up to the documented approximation of the sketches; exact for the rest).
//   * Merge(dst, src) treats src's rows as arriving after dst's (ties in event time for
//     FIRST_VALUE/LAST_VALUE/LAST_K resolve like sequential arrival).
//   * Deserialize(Serialize(s)) is equal to s; the encoding starts with a version byte and
//     Deserialize rejects unknown versions and malformed bytes with an error (never crashes:
//     it is fuzzed).
//   * Finalize on a freshly Init()'ed state gives the empty-window value: 0 for COUNT and
//     APPROX_COUNT_DISTINCT, [] for LAST_K/TOP_K/APPROX_TOP_K, {} for COUNT_BY/SUM_BY/
//     APPROX_HISTOGRAM, NULL for everything else.
//
// Instances are immutable after creation and safe to share between threads; states are not.
class AggregateFunction {
 public:
  virtual ~AggregateFunction() = default;

  virtual AggKind kind() const = 0;
  virtual DataType arg_type() const = 0;  // kNull for COUNT(*)
  virtual DataType result_type() const = 0;
  virtual size_t state_size() const = 0;
  virtual size_t state_align() const = 0;

  virtual void Init(std::byte* state) const = 0;
  virtual void Destroy(std::byte* state) const = 0;

  // For i in [0, n): adds row rows[i] of the argument columns with event time
  // event_time_ms[rows[i]] to states[i]. args.first is null for COUNT(*); args.second is set
  // only for two-argument aggregates (SUM_BY). A row with a NULL argument is skipped (except by
  // COUNT(*)). Rows are given in arrival order; several i may share one state.
  virtual void AddBatch(std::byte* const* states, AggArgs args, const int64_t* event_time_ms,
                        const uint32_t* rows, size_t n) const = 0;

  // dst ⊕= src. src is left unchanged.
  virtual void Merge(std::byte* dst, const std::byte* src) const = 0;

  // Appends the versioned encoding of `state` to `out`.
  virtual void Serialize(const std::byte* state, std::string* out) const = 0;

  // Reads one encoded state from the front of `*in` (advancing it) into an Init()'ed `state`,
  // replacing its contents.
  virtual absl::Status Deserialize(std::string_view* in, std::byte* state) const = 0;

  // dst ⊕= the encoded state at the front of `*in` (advancing it): what Deserialize into a fresh
  // state and Merge would give, without materializing that state where the function knows how
  // (HyperLogLog). On error `dst` may hold part of the input: the caller discards it.
  virtual absl::Status MergeSerialized(std::string_view* in, std::byte* dst) const = 0;

  virtual Value Finalize(const std::byte* state) const = 0;

  // The value of a window read at `at_ms` (its end): Finalize for every aggregate except the
  // time-decayed ones (EXP_DECAY_SUM / EXP_DECAY_COUNT), whose value decays with `at`.
  virtual Value FinalizeAt(const std::byte* state, int64_t at_ms) const = 0;

  // Approximate heap bytes owned by the state (for memory budgets); 0 for fixed-size states.
  virtual size_t HeapBytes(const std::byte* state) const { return 0; }
};

// Creates the function for `kind` over arguments of `arg_type` (ignored for COUNT(*)).
// Errors (InvalidArgument) name the function and the unsupported type or parameter,
// e.g. "SUM does not accept STRING; expected BIGINT or DOUBLE".
absl::StatusOr<std::unique_ptr<AggregateFunction>> MakeAggregate(AggKind kind, DataType arg_type,
                                                                 const AggParams& params);
// The same for two-argument aggregates: SUM_BY(x, bucket) has arg_type x and arg2_type bucket.
// arg2_type kNull is the one-argument form above.
absl::StatusOr<std::unique_ptr<AggregateFunction>> MakeAggregate(AggKind kind, DataType arg_type,
                                                                 DataType arg2_type,
                                                                 const AggParams& params);

// The SQL name of the function ("COUNT", "APPROX_COUNT_DISTINCT", …).
std::string_view AggKindName(AggKind kind);

// The encoded kNewestEventTime state of rows whose event times are unknown (rows of tiles
// written before tiles recorded them). Merging it into any state makes that state's newest event
// time unknown too (Finalize: NULL), so no answer that includes such rows claims a newest time.
std::string NewestEventTimeUnknownEncoding();

}  // namespace tessera::agg
