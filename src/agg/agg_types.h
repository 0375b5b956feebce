#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "agg/aggregate.h"
#include "common/types.h"

namespace tessera::agg {

// The single source of truth for aggregate typing, shared by the SQL binder and MakeAggregate:
// the result type of `kind` over `arg_type` with `params`, or InvalidArgument naming the
// function, the offending type/parameter and what is accepted.
absl::StatusOr<DataType> AggResultType(AggKind kind, DataType arg_type, const AggParams& params);

// Looks up a function by SQL name (case-insensitive): COUNT (with star=false), SUM, MIN, MAX,
// AVG, VARIANCE, VAR_SAMP, VAR_POP, STDDEV, STDDEV_SAMP, STDDEV_POP, FIRST_VALUE, LAST_VALUE,
// LAST_K, APPROX_COUNT_DISTINCT, APPROX_PERCENTILE, TOP_K. Returns false if `name` is not an
// aggregate function.
bool LookupAggKind(std::string_view name, bool star, AggKind* kind);

// Number of constant parameters after the argument: 1 for LAST_K, TOP_K (k) and
// APPROX_PERCENTILE (q), else 0.
int AggParamCount(AggKind kind);

}  // namespace tessera::agg
