#include "agg/agg_types.h"

#include <algorithm>
#include <string>

#include "agg/histogram_bins.h"
#include "common/errors.h"
#include "common/strings.h"
#include "common/time_util.h"

namespace tessera::agg {

std::string_view AggKindName(AggKind kind) {
  switch (kind) {
    case AggKind::kCountStar:
    case AggKind::kCount:
      return "COUNT";
    case AggKind::kSum:
      return "SUM";
    case AggKind::kMin:
      return "MIN";
    case AggKind::kMax:
      return "MAX";
    case AggKind::kAvg:
      return "AVG";
    case AggKind::kVarSamp:
      return "VAR_SAMP";
    case AggKind::kVarPop:
      return "VAR_POP";
    case AggKind::kStddevSamp:
      return "STDDEV_SAMP";
    case AggKind::kStddevPop:
      return "STDDEV_POP";
    case AggKind::kFirstValue:
      return "FIRST_VALUE";
    case AggKind::kLastValue:
      return "LAST_VALUE";
    case AggKind::kLastK:
      return "LAST_K";
    case AggKind::kApproxCountDistinct:
      return "APPROX_COUNT_DISTINCT";
    case AggKind::kApproxPercentile:
      return "APPROX_PERCENTILE";
    case AggKind::kTopK:
      return "TOP_K";
    case AggKind::kExpDecaySum:
      return "EXP_DECAY_SUM";
    case AggKind::kExpDecayCount:
      return "EXP_DECAY_COUNT";
    case AggKind::kCountBy:
      return "COUNT_BY";
    case AggKind::kSumBy:
      return "SUM_BY";
    case AggKind::kApproxHistogram:
      return "APPROX_HISTOGRAM";
    case AggKind::kApproxTopK:
      return "APPROX_TOP_K";
    case AggKind::kNewestEventTime:
      return "NEWEST_EVENT_TIME";
  }
  return "?";
}

bool LookupAggKind(std::string_view name, bool star, AggKind* kind) {
  const std::string n = ToUpperAscii(name);
  struct Entry {
    const char* name;
    AggKind kind;
  };
  static constexpr Entry kEntries[] = {
      {"COUNT", AggKind::kCount},
      {"SUM", AggKind::kSum},
      {"MIN", AggKind::kMin},
      {"MAX", AggKind::kMax},
      {"AVG", AggKind::kAvg},
      {"VARIANCE", AggKind::kVarSamp},
      {"VAR_SAMP", AggKind::kVarSamp},
      {"VAR_POP", AggKind::kVarPop},
      {"STDDEV", AggKind::kStddevSamp},
      {"STDDEV_SAMP", AggKind::kStddevSamp},
      {"STDDEV_POP", AggKind::kStddevPop},
      {"FIRST_VALUE", AggKind::kFirstValue},
      {"LAST_VALUE", AggKind::kLastValue},
      {"LAST_K", AggKind::kLastK},
      {"APPROX_COUNT_DISTINCT", AggKind::kApproxCountDistinct},
      {"APPROX_PERCENTILE", AggKind::kApproxPercentile},
      {"TOP_K", AggKind::kTopK},
      {"EXP_DECAY_SUM", AggKind::kExpDecaySum},
      {"EXP_DECAY_COUNT", AggKind::kExpDecayCount},
      {"COUNT_BY", AggKind::kCountBy},
      {"SUM_BY", AggKind::kSumBy},
      {"APPROX_HISTOGRAM", AggKind::kApproxHistogram},
      {"APPROX_TOP_K", AggKind::kApproxTopK},
  };
  for (const Entry& e : kEntries) {
    if (n == e.name) {
      *kind = (e.kind == AggKind::kCount && star) ? AggKind::kCountStar : e.kind;
      return true;
    }
  }
  return false;
}

int AggParamCount(AggKind kind) {
  switch (kind) {
    case AggKind::kLastK:
    case AggKind::kTopK:
    case AggKind::kApproxPercentile:
    case AggKind::kExpDecaySum:
    case AggKind::kCountBy:  // [, max_buckets]
    case AggKind::kSumBy:    // [, max_buckets]
    case AggKind::kApproxHistogram:
      return 1;
    case AggKind::kApproxTopK:  // k [, capacity]
      return 2;
    default:
      return 0;
  }
}

int AggMinParamCount(AggKind kind) {
  switch (kind) {
    case AggKind::kCountBy:
    case AggKind::kSumBy:
      return 0;
    case AggKind::kApproxTopK:
      return 1;
    default:
      return AggParamCount(kind);
  }
}

int AggArgCount(AggKind kind) {
  switch (kind) {
    case AggKind::kCountStar:
      return 0;
    case AggKind::kSumBy:
      return 2;
    default:
      return 1;
  }
}

namespace {

absl::Status Unsupported(AggKind kind, DataType arg, std::string_view expected) {
  return InvalidArgument("{} does not accept {}; expected {}", AggKindName(kind), DataTypeName(arg),
                         expected);
}

}  // namespace

absl::StatusOr<DataType> AggResultType(AggKind kind, DataType arg, const AggParams& params) {
  if (kind != AggKind::kCountStar && kind != AggKind::kCount && kind != AggKind::kNewestEventTime &&
      kind != AggKind::kExpDecayCount && (arg == DataType::kNull || IsNested(arg))) {
    return InvalidArgument("{} needs a typed argument, got {}; CAST it to a type",
                           AggKindName(kind), DataTypeName(arg));
  }
  switch (kind) {
    case AggKind::kCountStar:
    case AggKind::kCount:
    case AggKind::kApproxCountDistinct:
      return DataType::kInt64;
    case AggKind::kNewestEventTime:
      return DataType::kTimestamp;
    case AggKind::kSum:
      if (arg == DataType::kInt64 || arg == DataType::kDouble) return arg;
      return Unsupported(kind, arg, "BIGINT or DOUBLE");
    case AggKind::kMin:
    case AggKind::kMax:
    case AggKind::kFirstValue:
    case AggKind::kLastValue:
      return arg;
    case AggKind::kAvg:
    case AggKind::kVarSamp:
    case AggKind::kVarPop:
    case AggKind::kStddevSamp:
    case AggKind::kStddevPop:
      if (IsNumeric(arg)) return DataType::kDouble;
      return Unsupported(kind, arg, "BIGINT or DOUBLE");
    case AggKind::kApproxPercentile:
      if (!IsNumeric(arg)) return Unsupported(kind, arg, "BIGINT or DOUBLE");
      if (!(params.q >= 0.0 && params.q <= 1.0)) {
        return InvalidArgument("APPROX_PERCENTILE quantile must be between 0 and 1, got {}",
                               params.q);
      }
      return DataType::kDouble;
    case AggKind::kLastK:
    case AggKind::kTopK:
      if (params.k < 1 || params.k > 1000) {
        return InvalidArgument("{} k must be between 1 and 1000, got {}", AggKindName(kind),
                               params.k);
      }
      return DataType::kList;
    case AggKind::kExpDecaySum:
    case AggKind::kExpDecayCount:
      if (kind == AggKind::kExpDecaySum && !IsNumeric(arg)) {
        return Unsupported(kind, arg, "BIGINT or DOUBLE");
      }
      if (params.half_life_ms < 1 || params.half_life_ms > kMaxDurationMs) {
        return InvalidArgument("{} half-life must be between 1ms and 36500d, got {} ms",
                               AggKindName(kind), params.half_life_ms);
      }
      return DataType::kDouble;
    case AggKind::kCountBy:
      if (params.capacity && (*params.capacity < 1 || *params.capacity > kMaxBuckets)) {
        return InvalidArgument("COUNT_BY max_buckets must be between 1 and {}, got {}", kMaxBuckets,
                               *params.capacity);
      }
      return DataType::kMap;
    case AggKind::kSumBy:
      return InvalidArgument("SUM_BY takes two arguments, expected SUM_BY(x, bucket)");
    case AggKind::kApproxHistogram: {
      if (!IsNumeric(arg)) return Unsupported(kind, arg, "BIGINT or DOUBLE");
      absl::StatusOr<std::string> bins = NormalizeHistogramBins(params.bins);
      if (!bins.ok()) return bins.status();
      return DataType::kMap;
    }
    case AggKind::kApproxTopK:
      if (params.k < 1 || params.k > 1000) {
        return InvalidArgument("APPROX_TOP_K k must be between 1 and 1000, got {}", params.k);
      }
      if (params.capacity && (*params.capacity < params.k || *params.capacity > kMaxCounters)) {
        return InvalidArgument("APPROX_TOP_K capacity must be between k ({}) and {}, got {}",
                               params.k, kMaxCounters, *params.capacity);
      }
      return DataType::kList;
  }
  return InvalidArgument("unknown aggregate");
}

absl::StatusOr<DataType> AggResultType(AggKind kind, DataType arg, DataType arg2,
                                       const AggParams& params) {
  if (kind != AggKind::kSumBy) {
    if (arg2 != DataType::kNull) {
      return InvalidArgument("{} takes one row argument, got a second", AggKindName(kind));
    }
    return AggResultType(kind, arg, params);
  }
  if (arg == DataType::kNull || IsNested(arg) || arg2 == DataType::kNull || IsNested(arg2)) {
    return InvalidArgument("SUM_BY needs typed arguments, got {} and {}; CAST them to a type",
                           DataTypeName(arg), DataTypeName(arg2));
  }
  if (!IsNumeric(arg)) return Unsupported(kind, arg, "BIGINT or DOUBLE to sum");
  if (params.capacity && (*params.capacity < 1 || *params.capacity > kMaxBuckets)) {
    return InvalidArgument("SUM_BY max_buckets must be between 1 and {}, got {}", kMaxBuckets,
                           *params.capacity);
  }
  return DataType::kMap;
}

int64_t BucketCapacity(const AggParams& params) {
  return params.capacity.value_or(kDefaultBuckets);
}

int64_t TopKCapacity(const AggParams& params) {
  return params.capacity.value_or(std::max<int64_t>(64, 8 * params.k));
}

absl::StatusOr<std::string> NormalizeHistogramBins(std::string_view spec) {
  absl::StatusOr<HistogramBins> bins = HistogramBins::Parse(spec);
  if (!bins.ok()) return bins.status();
  return bins->spec();
}

}  // namespace tessera::agg
