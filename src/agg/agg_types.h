#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "agg/aggregate.h"
#include "common/types.h"

namespace tessera::agg {

// The single source of truth for aggregate typing, shared by the SQL binder and MakeAggregate:
// the result type of `kind` over `arg_type` with `params`, or InvalidArgument naming the
// function, the offending type/parameter and what is accepted.
absl::StatusOr<DataType> AggResultType(AggKind kind, DataType arg_type, const AggParams& params);
// The same for calls with two row-expression arguments (AggArgCount(kind) == 2: SUM_BY(x,
// bucket)); arg2_type is the second's. For the other kinds arg2_type must be kNull.
absl::StatusOr<DataType> AggResultType(AggKind kind, DataType arg_type, DataType arg2_type,
                                       const AggParams& params);

// Looks up a function by SQL name (case-insensitive): COUNT (with star=false), SUM, MIN, MAX,
// AVG, VARIANCE, VAR_SAMP, VAR_POP, STDDEV, STDDEV_SAMP, STDDEV_POP, FIRST_VALUE, LAST_VALUE,
// LAST_K, APPROX_COUNT_DISTINCT, APPROX_PERCENTILE, TOP_K, EXP_DECAY_SUM, EXP_DECAY_COUNT,
// COUNT_BY, SUM_BY, APPROX_HISTOGRAM, APPROX_TOP_K. Returns false if `name` is not an aggregate
// function.
bool LookupAggKind(std::string_view name, bool star, AggKind* kind);

// Most constant parameters after the row-expression arguments: 1 for LAST_K, TOP_K (k),
// APPROX_PERCENTILE (q), COUNT_BY and SUM_BY (max_buckets), APPROX_HISTOGRAM (bins); 2 for
// APPROX_TOP_K (k, capacity); else 0.
int AggParamCount(AggKind kind);

// The constant parameters that must be given (the rest, up to AggParamCount, are optional
// trailing ones): 0 for COUNT_BY and SUM_BY (max_buckets is optional), 1 for APPROX_TOP_K (k; the
// capacity is optional), else AggParamCount(kind).
int AggMinParamCount(AggKind kind);

// Number of row-expression arguments before the constant parameters: 0 for COUNT(*), 2 for
// SUM_BY(x, bucket), else 1.
int AggArgCount(AggKind kind);

// COUNT_BY / SUM_BY: distinct buckets a state keeps by default and at most (AggParams::capacity).
inline constexpr int64_t kDefaultBuckets = 64;
inline constexpr int64_t kMaxBuckets = 1000;
// APPROX_TOP_K: most counters a summary may be given (AggParams::capacity).
inline constexpr int64_t kMaxCounters = 10000;
// APPROX_HISTOGRAM: most explicit bin edges.
inline constexpr size_t kMaxHistogramEdges = 100;

// The effective COUNT_BY / SUM_BY bucket cap and APPROX_TOP_K counter count of valid params.
int64_t BucketCapacity(const AggParams& params);
int64_t TopKCapacity(const AggParams& params);

// Validates an APPROX_HISTOGRAM bin spec and returns its canonical form: 'log2' or 'log10'
// (any case, surrounding blanks ignored), or 1..kMaxHistogramEdges comma-separated finite numbers,
// strictly ascending, rendered as shortest round-trip decimals ('0, 1e1,100.0' -> '0,10,100').
// InvalidArgument names the spec and what is wrong.
absl::StatusOr<std::string> NormalizeHistogramBins(std::string_view spec);

}  // namespace tessera::agg
