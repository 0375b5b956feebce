#include "agg/aggregate.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "agg/agg_function.h"
#include "agg/agg_types.h"
#include "agg/basic_ops.h"
#include "agg/bucket_ops.h"
#include "agg/decay_ops.h"
#include "agg/frequency_ops.h"
#include "agg/histogram_bins.h"
#include "agg/phys_types.h"
#include "agg/sketch_ops.h"
#include "common/errors.h"

namespace tessera::agg {

namespace {

using internal::AggFunction;

template <typename Op>
std::unique_ptr<AggregateFunction> Wrap(AggKind kind, DataType arg, DataType result, Op op = {}) {
  return std::make_unique<AggFunction<Op>>(kind, arg, result, std::move(op));
}

// Instantiates OpFor<Phys>::type for the physical representation of `arg`, built by `make`.
template <template <typename> class OpT, typename Make>
std::unique_ptr<AggregateFunction> ForAnyType(AggKind kind, DataType arg, DataType result,
                                              Make make) {
  switch (arg) {
    case DataType::kBool:
      return Wrap(kind, arg, result, make.template operator()<OpT<internal::BoolPhys>>());
    case DataType::kInt64:
      return Wrap(kind, arg, result, make.template operator()<OpT<internal::Int64Phys>>());
    case DataType::kTimestamp:
      return Wrap(kind, arg, result, make.template operator()<OpT<internal::TimestampPhys>>());
    case DataType::kDouble:
      return Wrap(kind, arg, result, make.template operator()<OpT<internal::DoublePhys>>());
    case DataType::kString:
      return Wrap(kind, arg, result, make.template operator()<OpT<internal::StringPhys>>());
    default:
      return nullptr;
  }
}

template <template <typename> class OpT, typename Make>
std::unique_ptr<AggregateFunction> ForNumeric(AggKind kind, DataType arg, DataType result,
                                              Make make) {
  switch (arg) {
    case DataType::kInt64:
      return Wrap(kind, arg, result, make.template operator()<OpT<internal::Int64Phys>>());
    case DataType::kDouble:
      return Wrap(kind, arg, result, make.template operator()<OpT<internal::DoublePhys>>());
    default:
      return nullptr;
  }
}

template <typename Phys>
using MinOp = internal::MinMaxOp<Phys, false>;
template <typename Phys>
using MaxOp = internal::MinMaxOp<Phys, true>;
template <typename Phys>
using DecaySumOp = internal::ExpDecayOp<Phys, false>;
template <typename Phys>
using FirstOp = internal::FirstLastOp<Phys, false>;
template <typename Phys>
using LastOp = internal::FirstLastOp<Phys, true>;

// COUNT_BY / SUM_BY: OpT<KeyPhys> for the bucket's type, keeping BucketCapacity(params) buckets.
template <template <typename> class OpT>
std::unique_ptr<AggregateFunction> ForBucketType(AggKind kind, DataType arg, DataType bucket,
                                                 DataType result, const AggParams& params) {
  const auto cap = static_cast<size_t>(BucketCapacity(params));
  switch (bucket) {
    case DataType::kBool:
      return Wrap(kind, arg, result, OpT<internal::BoolPhys>{cap});
    case DataType::kInt64:
      return Wrap(kind, arg, result, OpT<internal::Int64Phys>{cap});
    case DataType::kTimestamp:
      return Wrap(kind, arg, result, OpT<internal::TimestampPhys>{cap});
    case DataType::kDouble:
      return Wrap(kind, arg, result, OpT<internal::DoublePhys>{cap});
    case DataType::kString:
      return Wrap(kind, arg, result, OpT<internal::StringPhys>{cap});
    default:
      return nullptr;
  }
}

struct MakeDefault {
  template <typename Op>
  Op operator()() const {
    return Op{};
  }
};

std::unique_ptr<AggregateFunction> Create(AggKind kind, DataType arg, DataType result,
                                          const AggParams& params) {
  switch (kind) {
    case AggKind::kCountStar:
      return Wrap<internal::CountStarOp>(kind, DataType::kNull, result);
    case AggKind::kCount:
      return Wrap<internal::CountOp>(kind, arg, result);
    case AggKind::kNewestEventTime:
      return Wrap<internal::NewestEventTimeOp>(kind, DataType::kNull, result);
    case AggKind::kSum:
      if (arg == DataType::kInt64) return Wrap<internal::SumInt64Op>(kind, arg, result);
      return Wrap<internal::DoubleSumOp<false>>(kind, arg, result);
    case AggKind::kAvg:
      if (arg == DataType::kInt64) return Wrap<internal::AvgInt64Op>(kind, arg, result);
      return Wrap<internal::DoubleSumOp<true>>(kind, arg, result);
    case AggKind::kMin:
      return ForAnyType<MinOp>(kind, arg, result, MakeDefault{});
    case AggKind::kMax:
      return ForAnyType<MaxOp>(kind, arg, result, MakeDefault{});
    case AggKind::kFirstValue:
      return ForAnyType<FirstOp>(kind, arg, result, MakeDefault{});
    case AggKind::kLastValue:
      return ForAnyType<LastOp>(kind, arg, result, MakeDefault{});
    case AggKind::kVarSamp:
    case AggKind::kVarPop:
    case AggKind::kStddevSamp:
    case AggKind::kStddevPop: {
      internal::MomentResult r = kind == AggKind::kVarSamp  ? internal::MomentResult::kVarSamp
                                 : kind == AggKind::kVarPop ? internal::MomentResult::kVarPop
                                 : kind == AggKind::kStddevSamp
                                     ? internal::MomentResult::kStddevSamp
                                     : internal::MomentResult::kStddevPop;
      return ForNumeric<internal::MomentsOp>(kind, arg, result,
                                             [r]<typename Op>() { return Op{r}; });
    }
    case AggKind::kLastK: {
      auto k = static_cast<size_t>(params.k);
      return ForAnyType<internal::LastKOp>(kind, arg, result, [k]<typename Op>() { return Op{k}; });
    }
    case AggKind::kTopK: {
      auto k = static_cast<size_t>(params.k);
      size_t capacity = std::max<size_t>(64, 8 * k);
      return ForAnyType<internal::TopKOp>(kind, arg, result, [k, capacity]<typename Op>() {
        return Op{k, capacity};
      });
    }
    case AggKind::kApproxCountDistinct:
      return ForAnyType<internal::ApproxCountDistinctOp>(kind, arg, result, MakeDefault{});
    case AggKind::kApproxPercentile: {
      double q = params.q;
      return ForNumeric<internal::ApproxPercentileOp>(kind, arg, result,
                                                      [q]<typename Op>() { return Op{q}; });
    }
    case AggKind::kExpDecaySum: {
      const int64_t h = params.half_life_ms;
      return ForNumeric<DecaySumOp>(kind, arg, result, [h]<typename Op>() { return Op{h}; });
    }
    case AggKind::kExpDecayCount:
      return Wrap(kind, DataType::kNull, result,
                  internal::ExpDecayOp<internal::DoublePhys, true>{params.half_life_ms});
    case AggKind::kCountBy:
      return ForBucketType<internal::CountByOp>(kind, arg, arg, result, params);
    case AggKind::kSumBy:
      return nullptr;  // two arguments: CreateSumBy
    case AggKind::kApproxHistogram: {
      absl::StatusOr<HistogramBins> bins = HistogramBins::Parse(params.bins);
      if (!bins.ok()) return nullptr;  // AggResultType rejected it first
      return ForNumeric<internal::HistogramOp>(kind, arg, result,
                                               [&bins]<typename Op>() { return Op{*bins}; });
    }
    case AggKind::kApproxTopK: {
      const auto k = static_cast<size_t>(params.k);
      const auto capacity = static_cast<size_t>(TopKCapacity(params));
      return ForAnyType<internal::ApproxTopKOp>(kind, arg, result, [k, capacity]<typename Op>() {
        return Op{typename Op::Summary{k, capacity}};
      });
    }
  }
  return nullptr;
}

// SUM_BY(x, bucket): x BIGINT or DOUBLE.
std::unique_ptr<AggregateFunction> CreateSumBy(DataType x, DataType bucket, DataType result,
                                               const AggParams& params) {
  if (x == DataType::kInt64) {
    return ForBucketType<internal::SumByInt64Op>(AggKind::kSumBy, x, bucket, result, params);
  }
  if (x == DataType::kDouble) {
    return ForBucketType<internal::SumByDoubleOp>(AggKind::kSumBy, x, bucket, result, params);
  }
  return nullptr;
}

}  // namespace

std::string NewestEventTimeUnknownEncoding() {
  std::string out;
  out.push_back(static_cast<char>(internal::NewestEventTimeOp::kVersion));
  out.push_back(static_cast<char>(internal::NewestEventTimeOp::kTagUnknown));
  return out;
}

absl::StatusOr<std::unique_ptr<AggregateFunction>> MakeAggregate(AggKind kind, DataType arg_type,
                                                                 DataType arg2_type,
                                                                 const AggParams& params) {
  if (kind != AggKind::kSumBy && arg2_type == DataType::kNull) {
    return MakeAggregate(kind, arg_type, params);
  }
  absl::StatusOr<DataType> result = AggResultType(kind, arg_type, arg2_type, params);
  if (!result.ok()) return result.status();
  std::unique_ptr<AggregateFunction> fn = CreateSumBy(arg_type, arg2_type, *result, params);
  if (fn == nullptr) {
    return InvalidArgument("{} does not accept {} and {}", AggKindName(kind),
                           DataTypeName(arg_type), DataTypeName(arg2_type));
  }
  return fn;
}

absl::StatusOr<std::unique_ptr<AggregateFunction>> MakeAggregate(AggKind kind, DataType arg_type,
                                                                 const AggParams& params) {
  absl::StatusOr<DataType> result = AggResultType(kind, arg_type, params);
  if (!result.ok()) return result.status();
  std::unique_ptr<AggregateFunction> fn = Create(kind, arg_type, *result, params);
  if (fn == nullptr) {
    return InvalidArgument("{} does not accept {}", AggKindName(kind), DataTypeName(arg_type));
  }
  return fn;
}

}  // namespace tessera::agg
