#include "agg/agg_types.h"

#include <string>

#include "common/errors.h"
#include "common/strings.h"

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
      return 1;
    default:
      return 0;
  }
}

namespace {

absl::Status Unsupported(AggKind kind, DataType arg, std::string_view expected) {
  return InvalidArgument("{} does not accept {}; expected {}", AggKindName(kind), DataTypeName(arg),
                         expected);
}

}  // namespace

absl::StatusOr<DataType> AggResultType(AggKind kind, DataType arg, const AggParams& params) {
  if (kind != AggKind::kCountStar && kind != AggKind::kCount &&
      (arg == DataType::kNull || arg == DataType::kList)) {
    return InvalidArgument("{} needs a typed argument, got {}; CAST it to a type",
                           AggKindName(kind), DataTypeName(arg));
  }
  switch (kind) {
    case AggKind::kCountStar:
    case AggKind::kCount:
    case AggKind::kApproxCountDistinct:
      return DataType::kInt64;
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
  }
  return InvalidArgument("unknown aggregate");
}

}  // namespace tessera::agg
