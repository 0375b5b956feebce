#include "agg/aggregate.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "agg/agg_types.h"
#include "common/arena.h"
#include "common/column.h"
#include "common/errors.h"
#include "common/time_util.h"
#include "common/value.h"
#include "common/varint.h"

namespace tessera::agg {
namespace {

// ---- Test harness ------------------------------------------------------------------------------

// An Init()'ed state that is Destroy()'ed when it goes out of scope.
class StateHolder {
 public:
  explicit StateHolder(const AggregateFunction* fn) : fn_(fn), buf_(std::make_unique<Buf>()) {
    EXPECT_LE(fn->state_size(), sizeof(Buf::bytes));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(get()) % fn->state_align(), 0u);
    fn_->Init(get());
  }
  ~StateHolder() { fn_->Destroy(get()); }
  StateHolder(const StateHolder&) = delete;
  StateHolder& operator=(const StateHolder&) = delete;

  std::byte* get() { return buf_->bytes; }
  const std::byte* get() const { return buf_->bytes; }
  Value Finalize() const { return fn_->Finalize(get()); }
  std::string Serialize() const {
    std::string out;
    fn_->Serialize(get(), &out);
    return out;
  }
  void MergeFrom(const StateHolder& src) { fn_->Merge(get(), src.get()); }

 private:
  struct Buf {
    alignas(64) std::byte bytes[256];
  };
  const AggregateFunction* fn_;
  std::unique_ptr<Buf> buf_;
};

// Random rows of one argument type, with NULLs, event-time ties and arrival order = row order.
struct Rows {
  Column column;
  Column bucket;  // SUM_BY's second argument (the bucket); type kNull when unused
  std::vector<int64_t> event_time;
  size_t size() const { return event_time.size(); }
};

const std::vector<std::string>& Vocabulary() {
  static const auto* vocab = new std::vector<std::string>{
      "",           "a",          "b",
      "track-0001", "track-0002", "a value longer than the small string buffer",
      "Z",          "é",          std::string("nul\0byte", 8),
      "zzzz"};
  return *vocab;
}

Rows MakeRows(DataType type, size_t n, std::mt19937_64& rng, double null_rate = 0.2,
              int64_t ts_range = 10) {
  Rows r;
  r.column.Reset(type, n);
  r.event_time.resize(n);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  static const double kDoubles[] = {-1.5, 0.0, -0.0, 2.25, 1e10, 3.0, -7.0, 0.1};
  for (size_t i = 0; i < n; ++i) {
    r.event_time[i] = 1'700'000'000'000 + static_cast<int64_t>(rng() % ts_range);
    if (type == DataType::kNull || unit(rng) < null_rate) continue;
    r.column.valid[i] = 1;
    switch (type) {
      case DataType::kBool:
        r.column.i64[i] = static_cast<int64_t>(rng() & 1);
        break;
      case DataType::kInt64:
        r.column.i64[i] =
            unit(rng) < 0.7 ? static_cast<int64_t>(rng() % 7) - 3 : static_cast<int64_t>(rng());
        break;
      case DataType::kTimestamp:
        r.column.i64[i] = 1'600'000'000'000 + static_cast<int64_t>(rng() % 40) * 1000;
        break;
      case DataType::kDouble:
        r.column.f64[i] = unit(rng) < 0.6 ? kDoubles[rng() % 8] : (unit(rng) - 0.5) * 1000.0;
        break;
      case DataType::kString:
        r.column.str[i] = Vocabulary()[rng() % Vocabulary().size()];
        break;
      default:
        break;
    }
  }
  return r;
}

// Gives `rows` a bucket column of `type` (random like MakeRows'), for SUM_BY.
void AddBucketColumn(Rows* rows, DataType type, std::mt19937_64& rng) {
  rows->bucket = std::move(MakeRows(type, rows->size(), rng).column);
}

// The argument columns of `fn` over `rows`.
AggArgs ArgsOf(const AggregateFunction& fn, const Rows& rows) {
  if (fn.kind() == AggKind::kCountStar) return {};
  return {&rows.column, rows.bucket.type == DataType::kNull ? nullptr : &rows.bucket};
}

// Adds rows [begin, end) to `state` in one AddBatch call.
void AddRange(const AggregateFunction& fn, StateHolder* state, const Rows& rows, size_t begin,
              size_t end) {
  std::vector<std::byte*> states(end - begin, state->get());
  std::vector<uint32_t> idx(end - begin);
  for (size_t i = begin; i < end; ++i) idx[i - begin] = static_cast<uint32_t>(i);
  fn.AddBatch(states.data(), ArgsOf(fn, rows), rows.event_time.data(), idx.data(), idx.size());
}

struct Case {
  AggKind kind;
  DataType type;
  AggParams params;
  DataType type2 = DataType::kNull;  // SUM_BY: the bucket's type
};

bool IsBucketOrSketch(AggKind kind) {
  return kind == AggKind::kCountBy || kind == AggKind::kSumBy ||
         kind == AggKind::kApproxHistogram || kind == AggKind::kApproxTopK;
}

std::string CaseName(const Case& c) {
  std::string name =
      std::string(c.kind == AggKind::kCountStar ? "COUNT_STAR" : AggKindName(c.kind));
  name += "_";
  name += DataTypeName(c.type);
  if (IsBucketOrSketch(c.kind)) {
    if (c.type2 != DataType::kNull) name += "_by_" + std::string(DataTypeName(c.type2));
    if (c.kind == AggKind::kApproxTopK) name += "_k" + std::to_string(c.params.k);
    if (c.params.capacity) name += "_cap" + std::to_string(*c.params.capacity);
    if (!c.params.bins.empty()) name += "_" + c.params.bins;
  } else if (c.params.half_life_ms > 0) {
    name += "_h" + std::to_string(c.params.half_life_ms);
  } else if (AggParamCount(c.kind) > 0) {
    name += c.kind == AggKind::kApproxPercentile ? "_q" + std::to_string(int(c.params.q * 100))
                                                 : "_k" + std::to_string(c.params.k);
  }
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

// COUNT_BY, SUM_BY, APPROX_HISTOGRAM, APPROX_TOP_K. The rows of the suite hold at most ~110
// distinct values, so no state exceeds 2·cap buckets or 2·capacity counters: the bucket choice
// is the exact one (the default cap of 64 still folds BIGINT and DOUBLE buckets into __other__
// in Finalize), and APPROX_TOP_K's counts are exact with error 0.
void AppendBucketAndSketchCases(std::vector<Case>* cases) {
  const DataType types[] = {DataType::kBool, DataType::kInt64, DataType::kDouble, DataType::kString,
                            DataType::kTimestamp};
  const std::vector<AggParams> caps = {AggParams{}, AggParams{.capacity = 1000}};
  for (DataType bucket : types) {
    for (const AggParams& p : caps) {
      cases->push_back({AggKind::kCountBy, bucket, p});
      for (DataType x : {DataType::kInt64, DataType::kDouble}) {
        cases->push_back({AggKind::kSumBy, x, p, bucket});
      }
    }
  }
  for (DataType x : {DataType::kInt64, DataType::kDouble}) {
    for (const char* bins : {"log2", "log10", "-10,0,0.5,100"}) {
      cases->push_back({AggKind::kApproxHistogram, x, AggParams{.bins = bins}});
    }
  }
  for (DataType type : types) {
    for (int64_t k : {1, 3, 50}) cases->push_back({AggKind::kApproxTopK, type, AggParams{.k = k}});
    cases->push_back({AggKind::kApproxTopK, type, AggParams{.k = 2, .capacity = 100}});
  }
}

std::vector<Case> AllCases() {
  std::vector<Case> cases;
  const AggKind kinds[] = {AggKind::kCountStar,
                           AggKind::kCount,
                           AggKind::kSum,
                           AggKind::kMin,
                           AggKind::kMax,
                           AggKind::kAvg,
                           AggKind::kVarSamp,
                           AggKind::kVarPop,
                           AggKind::kStddevSamp,
                           AggKind::kStddevPop,
                           AggKind::kFirstValue,
                           AggKind::kLastValue,
                           AggKind::kLastK,
                           AggKind::kApproxCountDistinct,
                           AggKind::kApproxPercentile,
                           AggKind::kTopK,
                           AggKind::kNewestEventTime,
                           AggKind::kExpDecaySum,
                           AggKind::kExpDecayCount};
  const DataType types[] = {DataType::kBool, DataType::kInt64, DataType::kDouble, DataType::kString,
                            DataType::kTimestamp};
  for (AggKind kind : kinds) {
    std::vector<AggParams> params = {AggParams{}};
    if (kind == AggKind::kLastK || kind == AggKind::kTopK) {
      params = {AggParams{.k = 1}, AggParams{.k = 3}, AggParams{.k = 50}};
    } else if (kind == AggKind::kApproxPercentile) {
      params = {AggParams{.q = 0.0}, AggParams{.q = 0.5}, AggParams{.q = 0.9}, AggParams{.q = 1.0}};
    } else if (kind == AggKind::kExpDecaySum || kind == AggKind::kExpDecayCount) {
      // Rows span 10 ms: a 3 ms half-life decays them a lot (and its quantum is 3 ms); an hour's
      // barely, with one quantum for all.
      params = {AggParams{.half_life_ms = 3}, AggParams{.half_life_ms = 3'600'000}};
    }
    for (DataType type : types) {
      // No argument: one case (its rows carry an ignored BIGINT column).
      if ((kind == AggKind::kCountStar || kind == AggKind::kNewestEventTime ||
           kind == AggKind::kExpDecayCount) &&
          type != DataType::kInt64) {
        continue;
      }
      for (const AggParams& p : params) {
        if (AggResultType(kind, type, p).ok()) cases.push_back({kind, type, p});
      }
    }
  }
  AppendBucketAndSketchCases(&cases);
  return cases;
}

// Floating-point moment aggregates are equal up to rounding, everything else exactly.
bool IsFloatingApprox(const Case& c) {
  switch (c.kind) {
    case AggKind::kSum:
    case AggKind::kAvg:
    case AggKind::kSumBy:
      return c.type == DataType::kDouble;
    case AggKind::kVarSamp:
    case AggKind::kVarPop:
    case AggKind::kStddevSamp:
    case AggKind::kStddevPop:
    case AggKind::kExpDecaySum:
    case AggKind::kExpDecayCount:
      return true;
    default:
      return false;
  }
}

void ExpectSameResult(const Case& c, const Value& expected, const Value& actual,
                      const std::string& what) {
  if (IsFloatingApprox(c) && expected.type() == DataType::kMap &&
      actual.type() == DataType::kMap) {  // SUM_BY(DOUBLE): the same keys, values up to rounding
    ASSERT_EQ(expected.map().size(), actual.map().size())
        << what << ": expected " << expected.ToJson() << ", got " << actual.ToJson();
    for (size_t i = 0; i < expected.map().size(); ++i) {
      EXPECT_EQ(expected.map()[i].first, actual.map()[i].first) << what;
      ExpectSameResult(c, expected.map()[i].second, actual.map()[i].second,
                       what + " key " + expected.map()[i].first);
    }
    return;
  }
  if (IsFloatingApprox(c) && !expected.is_null() && !actual.is_null()) {
    ASSERT_EQ(expected.type(), DataType::kDouble) << what;
    ASSERT_EQ(actual.type(), DataType::kDouble) << what;
    double e = expected.double_value(), a = actual.double_value();
    double tol = 1e-9 * std::max({1.0, std::fabs(e), std::fabs(a)});
    EXPECT_NEAR(e, a, tol) << what;
    return;
  }
  EXPECT_EQ(expected, actual) << what << ": expected " << expected.ToString() << ", got "
                              << actual.ToString();
}

// ---- Reference results computed directly from the rows ----------------------------------------

bool ValueLess(const Value& a, const Value& b) {
  switch (a.type()) {
    case DataType::kBool:
      return a.bool_value() < b.bool_value();
    case DataType::kInt64:
    case DataType::kTimestamp:
      return a.int64() < b.int64();
    case DataType::kDouble:
      if (std::isnan(a.double_value())) return false;
      if (std::isnan(b.double_value())) return true;
      return a.double_value() < b.double_value();
    case DataType::kString:
      return a.string() < b.string();
    default:
      return false;
  }
}

// The text of a bucket value in COUNT_BY / SUM_BY results.
std::string BucketTextOf(const Value& v) {
  switch (v.type()) {
    case DataType::kString:
      return v.string();
    case DataType::kBool:
      return v.bool_value() ? "true" : "false";
    case DataType::kTimestamp:
      return FormatRfc3339Millis(v.int64());
    case DataType::kInt64:
      return std::to_string(v.int64());
    default:
      return fmt::format("{}", v.double_value());
  }
}

// -0.0 and 0.0 are one value.
Value CanonicalValue(Value v) {
  if (v.type() == DataType::kDouble && v.double_value() == 0.0) return Value::Double(0.0);
  return v;
}

// The doubles nearest 10^k, k in [-323, 308], as the decimal parser rounds them.
double PowerOfTen(int k) { return std::strtod(("1e" + std::to_string(k)).c_str(), nullptr); }

// APPROX_HISTOGRAM's label of x, found by scanning the bounds (the op computes a bin id).
std::string HistogramLabelOf(const std::string& bins, double x) {
  auto num = [](double v) { return fmt::format("{}", v); };
  if (bins == "log2" || bins == "log10") {
    if (x == 0.0) return "[0,0]";
    const bool log2 = bins == "log2";
    const int lo_k = log2 ? -1074 : -324;
    const int hi_k = log2 ? 1023 : 308;
    auto bound = [&](int k) {
      if (k == lo_k) return std::numeric_limits<double>::denorm_min();
      return log2 ? std::ldexp(1.0, k) : PowerOfTen(k);
    };
    const double a = std::fabs(x);
    int k = lo_k;
    while (k < hi_k && a >= bound(k + 1)) ++k;
    if (k == hi_k) {
      return x > 0 ? fmt::format("[{},inf]", num(bound(k)))
                   : fmt::format("[-inf,-{}]", num(bound(k)));
    }
    if (x > 0) return fmt::format("[{},{})", num(bound(k)), num(bound(k + 1)));
    return fmt::format("(-{},-{}]", num(bound(k + 1)), num(bound(k)));
  }
  std::vector<double> edges;
  std::stringstream ss(bins);
  for (std::string part; std::getline(ss, part, ',');) edges.push_back(std::stod(part));
  size_t i = 0;
  while (i < edges.size() && edges[i] <= x) ++i;
  const std::string lo = i == 0 ? "-inf" : num(edges[i - 1]);
  return i == edges.size() ? fmt::format("[{},inf]", lo)
                           : fmt::format("[{},{})", lo, num(edges[i]));
}

// COUNT_BY, SUM_BY, APPROX_HISTOGRAM and APPROX_TOP_K of rows [begin, end), by brute force. In
// the suite's rows no state ever reduces (see AppendBucketAndSketchCases), so this is exact: the
// buckets beyond the cap are the ones with the fewest rows (ties: the larger values), folded into
// __other__, and APPROX_TOP_K's counts are the true ones with error 0.
Value BucketOrSketchReference(const Case& c, const Rows& rows, size_t begin, size_t end) {
  struct Group {
    Value key;
    int64_t rows = 0;
    __int128 int_sum = 0;
    long double double_sum = 0;
  };
  std::vector<Group> groups;
  auto group_of = [&](const Value& key) -> Group& {
    for (Group& g : groups) {
      if (g.key == key) return g;
    }
    groups.push_back(Group{key});
    return groups.back();
  };
  for (size_t i = begin; i < end; ++i) {
    if (rows.column.IsNull(i)) continue;
    const Value x = rows.column.GetValue(i);
    switch (c.kind) {
      case AggKind::kCountBy:
        ++group_of(CanonicalValue(x)).rows;
        break;
      case AggKind::kSumBy: {
        if (rows.bucket.IsNull(i)) break;
        Group& g = group_of(CanonicalValue(rows.bucket.GetValue(i)));
        ++g.rows;
        if (x.type() == DataType::kInt64) g.int_sum += x.int64();
        if (x.type() == DataType::kDouble) g.double_sum += x.double_value();
        break;
      }
      case AggKind::kApproxHistogram:
        if (!std::isnan(x.AsDouble())) {
          ++group_of(Value::String(HistogramLabelOf(c.params.bins, x.AsDouble()))).rows;
        }
        break;
      default:
        ++group_of(CanonicalValue(x)).rows;
        break;
    }
  }
  std::sort(groups.begin(), groups.end(), [](const Group& a, const Group& b) {
    return a.rows != b.rows ? a.rows > b.rows : ValueLess(a.key, b.key);
  });
  if (c.kind == AggKind::kApproxTopK) {
    std::vector<Value> out;
    for (size_t i = 0; i < groups.size() && i < static_cast<size_t>(c.params.k); ++i) {
      out.push_back(Value::Map({{"count", Value::Int64(groups[i].rows)},
                                {"error", Value::Int64(0)},
                                {"value", groups[i].key}}));
    }
    return Value::List(std::move(out));
  }
  auto value_of = [&](const Group& g) {
    if (c.kind != AggKind::kSumBy) return Value::Int64(g.rows);
    if (c.type == DataType::kDouble) return Value::Double(static_cast<double>(g.double_sum));
    if (g.int_sum > INT64_MAX || g.int_sum < INT64_MIN) return Value::Null(DataType::kInt64);
    return Value::Int64(static_cast<int64_t>(g.int_sum));
  };
  std::vector<std::pair<std::string, Value>> out;
  const size_t cap = c.kind == AggKind::kApproxHistogram
                         ? groups.size()
                         : static_cast<size_t>(c.params.capacity.value_or(64));
  Group other{Value::String("__other__")};
  for (size_t i = 0; i < groups.size(); ++i) {
    if (i < cap) {
      out.emplace_back(c.kind == AggKind::kApproxHistogram ? groups[i].key.string()
                                                           : BucketTextOf(groups[i].key),
                       value_of(groups[i]));
    } else {
      other.rows += groups[i].rows;
      other.int_sum += groups[i].int_sum;
      other.double_sum += groups[i].double_sum;
    }
  }
  if (other.rows > 0) out.emplace_back("__other__", value_of(other));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return Value::Map(std::move(out));
}

Value Reference(const Case& c, const Rows& rows, size_t begin, size_t end) {
  struct Item {
    Value v;
    int64_t ts;
    size_t arrival;
  };
  std::vector<Item> items;
  for (size_t i = begin; i < end; ++i) {
    if (!rows.column.IsNull(i)) items.push_back({rows.column.GetValue(i), rows.event_time[i], i});
  }
  const DataType t = c.type;
  switch (c.kind) {
    case AggKind::kCountBy:
    case AggKind::kSumBy:
    case AggKind::kApproxHistogram:
    case AggKind::kApproxTopK:
      return BucketOrSketchReference(c, rows, begin, end);
    case AggKind::kCountStar:
      return Value::Int64(static_cast<int64_t>(end - begin));
    case AggKind::kNewestEventTime: {  // every row, NULL argument or not
      if (begin == end) return Value::Null(DataType::kTimestamp);
      return Value::Timestamp(
          *std::max_element(rows.event_time.begin() + static_cast<std::ptrdiff_t>(begin),
                            rows.event_time.begin() + static_cast<std::ptrdiff_t>(end)));
    }
    case AggKind::kCount:
      return Value::Int64(static_cast<int64_t>(items.size()));
    case AggKind::kExpDecaySum:
    case AggKind::kExpDecayCount: {
      // Finalize() without a read time: the value at the reference r, the end of the quantum
      // (min(1 minute, half-life)) of the newest row counted.
      const bool count = c.kind == AggKind::kExpDecayCount;
      const int64_t h = c.params.half_life_ms;
      const int64_t q = std::min<int64_t>(60'000, h);
      std::vector<std::pair<double, int64_t>> xs;  // (x, ts)
      for (size_t i = begin; i < end; ++i) {
        if (count) {
          xs.emplace_back(1.0, rows.event_time[i]);
        } else if (!rows.column.IsNull(i)) {
          xs.emplace_back(rows.column.GetValue(i).AsDouble(), rows.event_time[i]);
        }
      }
      if (xs.empty()) return count ? Value::Double(0.0) : Value::Null(DataType::kDouble);
      int64_t r = INT64_MIN;
      for (const auto& [x, ts] : xs) r = std::max(r, AlignDown(ts, q) + q);
      long double sum = 0;
      for (const auto& [x, ts] : xs) {
        sum += static_cast<long double>(x) * std::exp2(-static_cast<long double>(r - ts) / h);
      }
      return Value::Double(static_cast<double>(sum));
    }
    case AggKind::kSum: {
      if (items.empty()) return Value::Null(t);
      if (t == DataType::kInt64) {
        __int128 s = 0;
        for (const Item& it : items) s += it.v.int64();
        if (s > INT64_MAX || s < INT64_MIN) return Value::Null(t);
        return Value::Int64(static_cast<int64_t>(s));
      }
      long double s = 0;
      for (const Item& it : items) s += it.v.double_value();
      return Value::Double(static_cast<double>(s));
    }
    case AggKind::kMin:
    case AggKind::kMax: {
      if (items.empty()) return Value::Null(t);
      Value best = items[0].v;
      for (const Item& it : items) {
        if (c.kind == AggKind::kMin ? ValueLess(it.v, best) : ValueLess(best, it.v)) best = it.v;
      }
      return best;
    }
    case AggKind::kAvg:
    case AggKind::kVarSamp:
    case AggKind::kVarPop:
    case AggKind::kStddevSamp:
    case AggKind::kStddevPop: {
      size_t n = items.size();
      bool sample = c.kind == AggKind::kVarSamp || c.kind == AggKind::kStddevSamp;
      if (n == 0 || (sample && n < 2)) return Value::Null(DataType::kDouble);
      long double mean = 0;
      for (const Item& it : items) mean += it.v.AsDouble();
      mean /= n;
      if (c.kind == AggKind::kAvg) {
        if (t != DataType::kInt64) return Value::Double(static_cast<double>(mean));
        __int128 sum = 0;
        for (const Item& it : items) sum += it.v.int64();
        return Value::Double(static_cast<double>(static_cast<long double>(sum) / n));
      }
      long double m2 = 0;
      for (const Item& it : items) m2 += (it.v.AsDouble() - mean) * (it.v.AsDouble() - mean);
      double var = static_cast<double>(m2 / (sample ? n - 1 : n));
      bool stddev = c.kind == AggKind::kStddevSamp || c.kind == AggKind::kStddevPop;
      return Value::Double(stddev ? std::sqrt(var) : var);
    }
    case AggKind::kFirstValue:
    case AggKind::kLastValue: {
      if (items.empty()) return Value::Null(t);
      const Item* best = &items[0];
      for (const Item& it : items) {
        if (c.kind == AggKind::kFirstValue ? it.ts < best->ts : it.ts >= best->ts) best = &it;
      }
      return best->v;
    }
    case AggKind::kLastK: {
      std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
        return a.ts != b.ts ? a.ts > b.ts : a.arrival > b.arrival;
      });
      std::vector<Value> out;
      for (size_t i = 0; i < items.size() && i < static_cast<size_t>(c.params.k); ++i) {
        out.push_back(items[i].v);
      }
      return Value::List(std::move(out));
    }
    case AggKind::kTopK: {
      std::vector<std::pair<Value, int64_t>> counts;
      for (const Item& it : items) {
        Value v = it.v;
        if (v.type() == DataType::kDouble && v.double_value() == 0.0) v = Value::Double(0.0);
        auto found =
            std::find_if(counts.begin(), counts.end(), [&](const auto& e) { return e.first == v; });
        if (found == counts.end()) {
          counts.emplace_back(v, 1);
        } else {
          ++found->second;
        }
      }
      std::sort(counts.begin(), counts.end(), [](const auto& a, const auto& b) {
        return a.second != b.second ? a.second > b.second : ValueLess(a.first, b.first);
      });
      std::vector<Value> out;
      for (size_t i = 0; i < counts.size() && i < static_cast<size_t>(c.params.k); ++i) {
        out.push_back(counts[i].first);
      }
      return Value::List(std::move(out));
    }
    case AggKind::kApproxCountDistinct: {
      std::vector<Value> distinct;
      for (const Item& it : items) {
        Value v = it.v;
        if (v.type() == DataType::kDouble && v.double_value() == 0.0) v = Value::Double(0.0);
        if (std::find(distinct.begin(), distinct.end(), v) == distinct.end()) {
          distinct.push_back(v);
        }
      }
      return Value::Int64(static_cast<int64_t>(distinct.size()));
    }
    case AggKind::kApproxPercentile: {
      if (items.empty()) return Value::Null(DataType::kDouble);
      std::vector<double> xs;
      xs.reserve(items.size());
      for (const Item& it : items) xs.push_back(it.v.AsDouble());
      std::sort(xs.begin(), xs.end());
      double q = c.params.q;
      size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(xs.size())));
      rank = std::clamp<size_t>(rank, 1, xs.size());
      return Value::Double(xs[rank - 1]);
    }
  }
  return Value();
}

// ---- Property tests over every aggregate -------------------------------------------------------

class AggregatePropertyTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    auto fn = MakeAggregate(GetParam().kind, GetParam().type, GetParam().type2, GetParam().params);
    ASSERT_TRUE(fn.ok()) << fn.status();
    fn_ = *std::move(fn);
  }
  // Rows sized so that sketches stay exact (KLL compacts above 400 items).
  Rows Make(std::mt19937_64& rng, size_t n = 300) {
    Rows rows = MakeRows(
        GetParam().kind == AggKind::kCountStar ? DataType::kInt64 : GetParam().type, n, rng);
    if (GetParam().type2 != DataType::kNull) AddBucketColumn(&rows, GetParam().type2, rng);
    return rows;
  }
  std::unique_ptr<AggregateFunction> fn_;
};

TEST_P(AggregatePropertyTest, EmptyStateValue) {
  StateHolder s(fn_.get());
  Value v = s.Finalize();
  switch (GetParam().kind) {
    case AggKind::kCountStar:
    case AggKind::kCount:
    case AggKind::kApproxCountDistinct:
      EXPECT_EQ(v, Value::Int64(0));
      break;
    case AggKind::kLastK:
    case AggKind::kTopK:
    case AggKind::kApproxTopK:
      EXPECT_EQ(v, Value::List({}));
      break;
    case AggKind::kCountBy:
    case AggKind::kSumBy:
    case AggKind::kApproxHistogram:
      EXPECT_EQ(v, Value::Map({}));
      break;
    case AggKind::kExpDecayCount:
      EXPECT_EQ(v, Value::Double(0.0));
      break;
    default:
      EXPECT_TRUE(v.is_null());
      EXPECT_EQ(v.type(), fn_->result_type());
  }
  EXPECT_EQ(fn_->HeapBytes(s.get()), 0u);
  // Merging empty states stays empty.
  StateHolder t(fn_.get());
  t.MergeFrom(s);
  EXPECT_EQ(t.Serialize(), s.Serialize());
}

TEST_P(AggregatePropertyTest, MatchesReferenceAndResultType) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 rng(seed);
    Rows rows = Make(rng, seed % 5 == 0 ? 5 : 300);
    StateHolder s(fn_.get());
    AddRange(*fn_, &s, rows, 0, rows.size());
    Value v = s.Finalize();
    ExpectSameResult(GetParam(), Reference(GetParam(), rows, 0, rows.size()), v,
                     "seed " + std::to_string(seed));
    if (!v.is_null()) {
      EXPECT_EQ(v.type(), fn_->result_type());
    }
    if (v.type() == DataType::kList && GetParam().kind != AggKind::kApproxTopK) {
      for (const Value& item : v.list()) EXPECT_EQ(item.type(), GetParam().type);
    }
    if (GetParam().kind == AggKind::kApproxTopK) {  // {"count": …, "error": …, "value": x}
      for (const Value& item : v.list()) {
        ASSERT_EQ(item.type(), DataType::kMap);
        ASSERT_EQ(item.map().size(), 3u);
        EXPECT_EQ(item.map()[2].second.type(), GetParam().type);
      }
    }
  }
}

TEST_P(AggregatePropertyTest, MergeOfSplitsEqualsAllRows) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 rng(100 + seed);
    Rows rows = Make(rng);
    StateHolder all(fn_.get());
    AddRange(*fn_, &all, rows, 0, rows.size());
    // Random contiguous splits (arrival order), merged left to right.
    std::vector<size_t> cuts = {0, rows.size()};
    for (int i = 0; i < 1 + static_cast<int>(seed % 6); ++i) cuts.push_back(rng() % rows.size());
    std::sort(cuts.begin(), cuts.end());
    StateHolder acc(fn_.get());
    for (size_t i = 0; i + 1 < cuts.size(); ++i) {
      StateHolder part(fn_.get());
      AddRange(*fn_, &part, rows, cuts[i], cuts[i + 1]);
      acc.MergeFrom(part);
    }
    ExpectSameResult(GetParam(), all.Finalize(), acc.Finalize(), "seed " + std::to_string(seed));
    if (!IsFloatingApprox(GetParam())) {
      EXPECT_EQ(all.Serialize(), acc.Serialize()) << "seed " << seed;
    }
  }
}

TEST_P(AggregatePropertyTest, MergeIsAssociative) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 rng(200 + seed);
    Rows rows = Make(rng);
    size_t a = rng() % rows.size(), b = rng() % rows.size();
    if (a > b) std::swap(a, b);
    StateHolder x(fn_.get()), y(fn_.get()), z(fn_.get());
    AddRange(*fn_, &x, rows, 0, a);
    AddRange(*fn_, &y, rows, a, b);
    AddRange(*fn_, &z, rows, b, rows.size());
    // (x ⊕ y) ⊕ z
    StateHolder left(fn_.get());
    left.MergeFrom(x);
    left.MergeFrom(y);
    left.MergeFrom(z);
    // x ⊕ (y ⊕ z)
    StateHolder yz(fn_.get()), right(fn_.get());
    yz.MergeFrom(y);
    yz.MergeFrom(z);
    right.MergeFrom(x);
    right.MergeFrom(yz);
    ExpectSameResult(GetParam(), left.Finalize(), right.Finalize(), "seed " + std::to_string(seed));
  }
}

TEST_P(AggregatePropertyTest, MergeIsCommutative) {
  // Order-sensitive aggregates resolve event-time ties by arrival, so they commute only when
  // event times are distinct.
  const bool by_time = GetParam().kind == AggKind::kFirstValue ||
                       GetParam().kind == AggKind::kLastValue || GetParam().kind == AggKind::kLastK;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 rng(300 + seed);
    Rows rows =
        MakeRows(GetParam().kind == AggKind::kCountStar ? DataType::kInt64 : GetParam().type, 300,
                 rng, 0.2, by_time ? 1'000'000'000 : 10);
    if (GetParam().type2 != DataType::kNull) AddBucketColumn(&rows, GetParam().type2, rng);
    size_t cut = rng() % rows.size();
    StateHolder x(fn_.get()), y(fn_.get());
    AddRange(*fn_, &x, rows, 0, cut);
    AddRange(*fn_, &y, rows, cut, rows.size());
    StateHolder xy(fn_.get()), yx(fn_.get());
    xy.MergeFrom(x);
    xy.MergeFrom(y);
    yx.MergeFrom(y);
    yx.MergeFrom(x);
    ExpectSameResult(GetParam(), xy.Finalize(), yx.Finalize(), "seed " + std::to_string(seed));
    // Merge leaves src unchanged.
    StateHolder y2(fn_.get());
    AddRange(*fn_, &y2, rows, cut, rows.size());
    EXPECT_EQ(y.Serialize(), y2.Serialize());
  }
}

TEST_P(AggregatePropertyTest, SelfMerge) {
  std::mt19937_64 rng(7);
  Rows rows = Make(rng);
  StateHolder s(fn_.get()), twice(fn_.get()), copy(fn_.get());
  AddRange(*fn_, &s, rows, 0, rows.size());
  AddRange(*fn_, &copy, rows, 0, rows.size());
  twice.MergeFrom(s);
  twice.MergeFrom(copy);
  s.MergeFrom(s);
  ExpectSameResult(GetParam(), twice.Finalize(), s.Finalize(), "self merge");
}

TEST_P(AggregatePropertyTest, SerializeRoundTripsByteIdentically) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 rng(400 + seed);
    Rows rows = Make(rng, seed == 0 ? 0 : (seed < 5 ? seed : 300));
    StateHolder s(fn_.get());
    AddRange(*fn_, &s, rows, 0, rows.size());
    if (seed % 2 == 1) {  // also states built by merging
      StateHolder more(fn_.get());
      AddRange(*fn_, &more, rows, 0, rows.size() / 2);
      s.MergeFrom(more);
    }
    std::string bytes = s.Serialize();
    ASSERT_FALSE(bytes.empty());
    // SUM(BIGINT) moved to version 2 (128-bit sums); the others are at version 1.
    const bool sum_bigint = fn_->kind() == AggKind::kSum && fn_->arg_type() == DataType::kInt64;
    EXPECT_EQ(static_cast<uint8_t>(bytes[0]), sum_bigint ? 2 : 1) << "version byte";

    // Two states back to back: Deserialize consumes exactly one.
    std::string two = bytes + bytes;
    std::string_view in = two;
    StateHolder t(fn_.get()), u(fn_.get());
    ASSERT_TRUE(fn_->Deserialize(&in, t.get()).ok());
    EXPECT_EQ(in.size(), bytes.size());
    ASSERT_TRUE(fn_->Deserialize(&in, u.get()).ok());
    EXPECT_TRUE(in.empty());
    EXPECT_EQ(t.Serialize(), bytes) << "seed " << seed;
    EXPECT_EQ(u.Serialize(), bytes);
    EXPECT_EQ(t.Finalize(), s.Finalize());

    // Deserializing over a populated state replaces it, and the result keeps working.
    std::string_view again = bytes;
    ASSERT_TRUE(fn_->Deserialize(&again, s.get()).ok());
    EXPECT_EQ(s.Serialize(), bytes);
    AddRange(*fn_, &t, rows, 0, rows.size());
    AddRange(*fn_, &s, rows, 0, rows.size());
    EXPECT_EQ(s.Serialize(), t.Serialize());
  }
}

TEST_P(AggregatePropertyTest, RejectsMalformedBytes) {
  std::mt19937_64 rng(11);
  Rows rows = Make(rng);
  StateHolder s(fn_.get()), empty(fn_.get());
  AddRange(*fn_, &s, rows, 0, rows.size());
  for (const std::string& bytes : {s.Serialize(), empty.Serialize()}) {
    const std::string before = s.Serialize();
    // Every strict prefix is rejected, and a failed Deserialize leaves the state as it was.
    for (size_t len = 0; len < bytes.size(); ++len) {
      std::string_view in(bytes.data(), len);
      EXPECT_FALSE(fn_->Deserialize(&in, s.get()).ok()) << "prefix of " << len << " bytes";
      EXPECT_EQ(in.size(), len);
    }
    EXPECT_EQ(s.Serialize(), before);
    // Unknown versions are rejected.
    for (int version : {0, static_cast<uint8_t>(bytes[0]) + 1, 255}) {
      std::string bad = bytes;
      bad[0] = static_cast<char>(version);
      std::string_view in = bad;
      absl::Status st = fn_->Deserialize(&in, s.get());
      EXPECT_FALSE(st.ok());
      EXPECT_NE(StatusMessage(st).find("version"), std::string::npos) << st;
    }
  }
  // Random bytes and random corruptions never crash (and the state stays usable).
  std::string good = s.Serialize();
  for (int i = 0; i < 3000; ++i) {
    std::string bad;
    if (i % 2 == 0) {
      bad = good;
      for (int j = 0; j < 1 + i % 4; ++j) bad[rng() % bad.size()] = static_cast<char>(rng());
      bad[0] = 1;
    } else {
      bad.push_back(1);
      size_t len = rng() % 64;
      for (size_t j = 0; j < len; ++j) bad.push_back(static_cast<char>(rng()));
    }
    StateHolder t(fn_.get());
    std::string_view in = bad;
    if (fn_->Deserialize(&in, t.get()).ok()) {
      t.Finalize();
      std::string re = t.Serialize();
      StateHolder u(fn_.get());
      std::string_view re_in = re;
      EXPECT_TRUE(fn_->Deserialize(&re_in, u.get()).ok());
      EXPECT_EQ(u.Serialize(), re);
      t.MergeFrom(s);
      u.MergeFrom(t);
    }
  }
}

TEST_P(AggregatePropertyTest, BatchesSpanningManyStates) {
  std::mt19937_64 rng(21);
  Rows rows = Make(rng);
  constexpr size_t kStates = 3;
  std::vector<std::unique_ptr<StateHolder>> batched, single;
  std::vector<std::byte*> ptrs;
  std::vector<uint32_t> idx;
  for (size_t i = 0; i < kStates; ++i) {
    batched.push_back(std::make_unique<StateHolder>(fn_.get()));
    single.push_back(std::make_unique<StateHolder>(fn_.get()));
  }
  for (size_t r = 0; r < rows.size(); ++r) {
    size_t target = (r * 7 + r / 3) % kStates;
    ptrs.push_back(batched[target]->get());
    idx.push_back(static_cast<uint32_t>(r));
    std::byte* one = single[target]->get();
    uint32_t row = static_cast<uint32_t>(r);
    fn_->AddBatch(&one, ArgsOf(*fn_, rows), rows.event_time.data(), &row, 1);
  }
  fn_->AddBatch(ptrs.data(), ArgsOf(*fn_, rows), rows.event_time.data(), idx.data(), idx.size());
  for (size_t i = 0; i < kStates; ++i) {
    EXPECT_EQ(batched[i]->Serialize(), single[i]->Serialize());
  }
}

INSTANTIATE_TEST_SUITE_P(AllAggregates, AggregatePropertyTest, ::testing::ValuesIn(AllCases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return CaseName(info.param);
                         });

// ---- Specific semantics ------------------------------------------------------------------------

std::unique_ptr<AggregateFunction> Make(AggKind kind, DataType type, AggParams params = {}) {
  auto fn = MakeAggregate(kind, type, params);
  EXPECT_TRUE(fn.ok()) << fn.status();
  return fn.ok() ? *std::move(fn) : nullptr;
}

// Rows of one BIGINT column given as (value or nullopt, event time).
Rows IntRows(const std::vector<std::pair<std::optional<int64_t>, int64_t>>& data) {
  Rows r;
  r.column.Reset(DataType::kInt64, data.size());
  for (size_t i = 0; i < data.size(); ++i) {
    if (data[i].first) {
      r.column.valid[i] = 1;
      r.column.i64[i] = *data[i].first;
    }
    r.event_time.push_back(data[i].second);
  }
  return r;
}

TEST(AggregateTest, RejectsBadTypesAndParams) {
  auto sum = MakeAggregate(AggKind::kSum, DataType::kString, {});
  ASSERT_FALSE(sum.ok());
  EXPECT_EQ(StatusMessage(sum.status()), "SUM does not accept STRING; expected BIGINT or DOUBLE");
  EXPECT_FALSE(MakeAggregate(AggKind::kTopK, DataType::kString, AggParams{.k = 0}).ok());
  EXPECT_FALSE(MakeAggregate(AggKind::kLastK, DataType::kString, AggParams{.k = 1001}).ok());
  EXPECT_FALSE(
      MakeAggregate(AggKind::kApproxPercentile, DataType::kDouble, AggParams{.q = 1.5}).ok());
  EXPECT_FALSE(MakeAggregate(AggKind::kApproxPercentile, DataType::kString, {}).ok());
  EXPECT_FALSE(MakeAggregate(AggKind::kAvg, DataType::kBool, {}).ok());
  EXPECT_FALSE(MakeAggregate(AggKind::kMin, DataType::kNull, {}).ok());
  auto count_null = MakeAggregate(AggKind::kCount, DataType::kNull, {});
  ASSERT_TRUE(count_null.ok());
  EXPECT_EQ((*count_null)->result_type(), DataType::kInt64);
}

TEST(AggregateTest, FixedStatesAreSmall) {
  EXPECT_EQ(Make(AggKind::kCountStar, DataType::kNull)->state_size(), 8u);
  EXPECT_EQ(Make(AggKind::kSum, DataType::kInt64)->state_size(), 24u);
  // A string state keeps up to 16 bytes inline (HeldString): no allocation for typical ids.
  EXPECT_LE(Make(AggKind::kMin, DataType::kString)->state_size(), 40u);
  EXPECT_LE(Make(AggKind::kLastValue, DataType::kDouble)->state_size(), 24u);
  EXPECT_LE(Make(AggKind::kApproxCountDistinct, DataType::kString)->state_size(), 24u);
  EXPECT_LE(Make(AggKind::kApproxPercentile, DataType::kDouble)->state_size(), 32u);
  EXPECT_EQ(Make(AggKind::kTopK, DataType::kString, {.k = 5})->state_size(), 8u);
  EXPECT_EQ(Make(AggKind::kLastK, DataType::kString, {.k = 5})->state_size(), 8u);
}

// The engine's newest-event-time slot: a max over every row's event time, and the "unknown"
// state (tiles written before the slot existed) absorbs every other one, through the encoding
// too.
TEST(AggregateTest, NewestEventTimeIsExactOrUnknown) {
  auto fn = Make(AggKind::kNewestEventTime, DataType::kNull);
  EXPECT_EQ(fn->result_type(), DataType::kTimestamp);
  Rows rows = IntRows({{std::nullopt, 30}, {1, 50}, {2, -70}});
  StateHolder s(fn.get());
  AddRange(*fn, &s, rows, 0, rows.size());
  EXPECT_EQ(s.Finalize(), Value::Timestamp(50));  // NULL arguments count: rows, not values

  StateHolder unknown(fn.get());
  std::string bytes = NewestEventTimeUnknownEncoding();
  std::string_view in = bytes;
  ASSERT_TRUE(fn->Deserialize(&in, unknown.get()).ok());
  EXPECT_TRUE(in.empty());
  EXPECT_TRUE(unknown.Finalize().is_null());
  EXPECT_EQ(unknown.Serialize(), bytes);
  for (bool unknown_first : {true, false}) {
    StateHolder merged(fn.get());
    merged.MergeFrom(unknown_first ? unknown : s);
    merged.MergeFrom(unknown_first ? s : unknown);
    EXPECT_TRUE(merged.Finalize().is_null()) << unknown_first;
    EXPECT_EQ(merged.Serialize(), bytes) << unknown_first;
    AddRange(*fn, &merged, rows, 0, rows.size());
    EXPECT_TRUE(merged.Finalize().is_null()) << "rows added after unknown ones";
  }

  // Version 1, then tag 0 / 1 + zigzag / 2; anything else is DataLoss.
  for (const std::string& bad :
       {std::string("\x01\x03", 2), std::string("\x01\x01", 2), std::string("\x01", 1),
        std::string("\x02\x00", 2),
        std::string("\x01\x01\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12)}) {
    StateHolder t(fn.get());
    std::string_view b = bad;
    EXPECT_EQ(fn->Deserialize(&b, t.get()).code(), absl::StatusCode::kDataLoss)
        << "bytes of length " << bad.size();
  }
}

TEST(AggregateTest, SumOutOfBigIntRangeIsNull) {
  auto fn = Make(AggKind::kSum, DataType::kInt64);
  Rows rows = IntRows({{INT64_MAX, 0}, {INT64_MAX, 0}, {std::nullopt, 0}});
  StateHolder s(fn.get());
  AddRange(*fn, &s, rows, 0, rows.size());
  EXPECT_TRUE(s.Finalize().is_null());  // not the wrapped -2
  Rows neg = IntRows({{INT64_MIN, 0}, {-1, 0}});
  StateHolder n(fn.get());
  AddRange(*fn, &n, neg, 0, neg.size());
  EXPECT_TRUE(n.Finalize().is_null());
}

// Partial sums (tiles) may leave BIGINT while the window's total is back in range: the merge is
// exact, also through the encoding.
TEST(AggregateTest, SumIsExactAcrossOverflowingPartials) {
  auto fn = Make(AggKind::kSum, DataType::kInt64);
  Rows up = IntRows({{INT64_MAX, 0}, {INT64_MAX, 0}, {5, 0}});
  Rows down = IntRows({{-INT64_MAX, 0}, {-INT64_MAX, 0}});
  StateHolder a(fn.get()), b(fn.get()), decoded(fn.get());
  AddRange(*fn, &a, up, 0, up.size());
  AddRange(*fn, &b, down, 0, down.size());
  std::string bytes;
  fn->Serialize(a.get(), &bytes);
  std::string_view in = bytes;
  ASSERT_TRUE(fn->Deserialize(&in, decoded.get()).ok());
  fn->Merge(decoded.get(), b.get());
  EXPECT_EQ(decoded.Finalize(), Value::Int64(5));
}

// Tiles written by builds before the 128-bit sum (encoding version 1) still read.
TEST(AggregateTest, SumReadsVersionOneEncoding) {
  auto fn = Make(AggKind::kSum, DataType::kInt64);
  std::string v1;
  v1.push_back(1);
  PutVarint64(&v1, 2);   // count
  PutZigZag64(&v1, -7);  // sum
  std::string_view in = v1;
  StateHolder s(fn.get());
  ASSERT_TRUE(fn->Deserialize(&in, s.get()).ok());
  EXPECT_EQ(s.Finalize(), Value::Int64(-7));
}

TEST(AggregateTest, AvgOfBigIntsIsExact) {
  auto fn = Make(AggKind::kAvg, DataType::kInt64);
  Rows rows = IntRows({{INT64_MAX, 0}, {INT64_MAX, 0}, {INT64_MAX - 2, 0}});
  StateHolder s(fn.get());
  AddRange(*fn, &s, rows, 0, rows.size());
  EXPECT_EQ(s.Finalize(), Value::Double(static_cast<double>(INT64_MAX)));
}

TEST(AggregateTest, VarianceNeedsTwoRows) {
  auto samp = Make(AggKind::kVarSamp, DataType::kInt64);
  auto pop = Make(AggKind::kStddevPop, DataType::kInt64);
  Rows rows = IntRows({{4, 0}, {std::nullopt, 0}, {8, 0}});
  StateHolder a(samp.get()), b(pop.get());
  AddRange(*samp, &a, rows, 0, 1);
  AddRange(*pop, &b, rows, 0, 1);
  EXPECT_TRUE(a.Finalize().is_null());
  EXPECT_EQ(b.Finalize(), Value::Double(0.0));
  AddRange(*samp, &a, rows, 1, 3);
  AddRange(*pop, &b, rows, 1, 3);
  EXPECT_EQ(a.Finalize(), Value::Double(8.0));
  EXPECT_EQ(b.Finalize(), Value::Double(2.0));
}

TEST(AggregateTest, FirstAndLastValueTies) {
  auto first = Make(AggKind::kFirstValue, DataType::kInt64);
  auto last = Make(AggKind::kLastValue, DataType::kInt64);
  Rows rows = IntRows({{1, 5}, {2, 3}, {3, 3}, {4, 9}, {5, 9}, {std::nullopt, 10}});
  StateHolder f(first.get()), l(last.get());
  AddRange(*first, &f, rows, 0, rows.size());
  AddRange(*last, &l, rows, 0, rows.size());
  EXPECT_EQ(f.Finalize(), Value::Int64(2));  // ts 3: the earlier arrival
  EXPECT_EQ(l.Finalize(), Value::Int64(5));  // ts 9: the later arrival
  // In Merge, src arrives later.
  StateHolder f1(first.get()), f2(first.get()), l1(last.get()), l2(last.get());
  AddRange(*first, &f1, rows, 2, 3);  // 3@3
  AddRange(*first, &f2, rows, 1, 2);  // 2@3
  f1.MergeFrom(f2);
  EXPECT_EQ(f1.Finalize(), Value::Int64(3));
  AddRange(*last, &l1, rows, 4, 5);  // 5@9
  AddRange(*last, &l2, rows, 3, 4);  // 4@9
  l1.MergeFrom(l2);
  EXPECT_EQ(l1.Finalize(), Value::Int64(4));
}

TEST(AggregateTest, LastKNewestFirstWithTies) {
  auto fn = Make(AggKind::kLastK, DataType::kInt64, {.k = 3});
  Rows rows = IntRows({{1, 10}, {2, 30}, {3, 20}, {std::nullopt, 40}, {4, 30}, {5, 5}});
  StateHolder s(fn.get());
  AddRange(*fn, &s, rows, 0, rows.size());
  EXPECT_EQ(s.Finalize(), Value::List({Value::Int64(4), Value::Int64(2), Value::Int64(3)}));
}

TEST(AggregateTest, TopKOrdersByCountThenValue) {
  auto fn = Make(AggKind::kTopK, DataType::kInt64, {.k = 3});
  Rows rows = IntRows({{7, 0}, {3, 0}, {7, 0}, {5, 0}, {3, 0}, {9, 0}, {std::nullopt, 0}, {1, 0}});
  StateHolder s(fn.get());
  AddRange(*fn, &s, rows, 0, rows.size());
  EXPECT_EQ(s.Finalize(), Value::List({Value::Int64(3), Value::Int64(7), Value::Int64(1)}));
}

TEST(AggregateTest, MinMaxStringsAreOwnedByTheState) {
  auto fn = Make(AggKind::kMax, DataType::kString);
  StateHolder s(fn.get());
  {
    Rows rows;
    rows.column.Reset(DataType::kString, 2);
    std::string a = "apple", b = "banana, a value long enough to need the heap";
    rows.column.valid = {1, 1};
    rows.column.str = {a, b};
    rows.event_time = {0, 0};
    AddRange(*fn, &s, rows, 0, 2);
    a.assign(a.size(), 'x');
    b.assign(b.size(), 'x');
  }
  EXPECT_EQ(s.Finalize(), Value::String("banana, a value long enough to need the heap"));
  EXPECT_GT(fn->HeapBytes(s.get()), 0u);
}

TEST(AggregateTest, DoubleMinMaxAndTopKCanonicalise) {
  auto min = Make(AggKind::kMin, DataType::kDouble);
  auto max = Make(AggKind::kMax, DataType::kDouble);
  auto top = Make(AggKind::kTopK, DataType::kDouble, {.k = 2});
  auto acd = Make(AggKind::kApproxCountDistinct, DataType::kDouble);
  Rows rows;
  rows.column.Reset(DataType::kDouble, 5);
  rows.column.valid = {1, 1, 1, 1, 1};
  rows.column.f64 = {-0.0, 0.0, std::nan(""), 2.0, -0.0};
  rows.event_time.assign(5, 0);
  StateHolder a(min.get()), b(max.get()), c(top.get()), d(acd.get());
  AddRange(*min, &a, rows, 0, 5);
  AddRange(*max, &b, rows, 0, 5);
  AddRange(*top, &c, rows, 0, 5);
  AddRange(*acd, &d, rows, 0, 5);
  EXPECT_EQ(a.Finalize(), Value::Double(0.0));
  EXPECT_TRUE(std::isnan(b.Finalize().double_value()));  // NaN sorts above every number
  EXPECT_EQ(c.Finalize(), Value::List({Value::Double(0.0), Value::Double(2.0)}));
  EXPECT_EQ(d.Finalize(), Value::Int64(3));  // {0, NaN, 2}
}

TEST(AggregateTest, TopKFindsHeavyHittersBeyondCapacity) {
  constexpr int kK = 5;
  auto fn = Make(AggKind::kTopK, DataType::kInt64, {.k = kK});
  std::mt19937_64 rng(5);
  // 5 heavy values (5% of rows each) in 200k rows of otherwise ~all-distinct values, split over
  // 8 states that are merged.
  constexpr size_t kRows = 200'000;
  Rows rows;
  rows.column.Reset(DataType::kInt64, kRows);
  rows.event_time.assign(kRows, 0);
  for (size_t i = 0; i < kRows; ++i) {
    rows.column.valid[i] = 1;
    uint64_t r = rng() % 100;
    rows.column.i64[i] = r < 25 ? static_cast<int64_t>(r % 5) : 1000 + static_cast<int64_t>(rng());
  }
  StateHolder acc(fn.get());
  for (size_t part = 0; part < 8; ++part) {
    StateHolder s(fn.get());
    AddRange(*fn, &s, rows, part * kRows / 8, (part + 1) * kRows / 8);
    acc.MergeFrom(s);
  }
  Value v = acc.Finalize();
  ASSERT_EQ(v.list().size(), static_cast<size_t>(kK));
  std::vector<int64_t> got;
  for (const Value& x : v.list()) got.push_back(x.int64());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  // The reduced summary stays bounded.
  std::string bytes = acc.Serialize();
  EXPECT_LT(bytes.size(), 2 * 64 * 12u);
}

TEST(AggregateTest, ApproxPercentileIsAnInputValueWithinRankError) {
  auto fn = Make(AggKind::kApproxPercentile, DataType::kInt64, {.q = 0.9});
  std::mt19937_64 rng(9);
  constexpr size_t kRows = 100'000;
  Rows rows;
  rows.column.Reset(DataType::kInt64, kRows);
  rows.event_time.assign(kRows, 0);
  std::vector<int64_t> xs;
  for (size_t i = 0; i < kRows; ++i) {
    rows.column.valid[i] = 1;
    rows.column.i64[i] = static_cast<int64_t>(rng() % 1'000'000'000);
    xs.push_back(rows.column.i64[i]);
  }
  StateHolder acc(fn.get());
  for (size_t part = 0; part < 10; ++part) {
    StateHolder s(fn.get());
    AddRange(*fn, &s, rows, part * kRows / 10, (part + 1) * kRows / 10);
    acc.MergeFrom(s);
  }
  double got = acc.Finalize().double_value();
  std::sort(xs.begin(), xs.end());
  auto it = std::lower_bound(xs.begin(), xs.end(), static_cast<int64_t>(got));
  ASSERT_NE(it, xs.end());
  EXPECT_EQ(static_cast<double>(*it), got);  // a value from the input
  double rank = static_cast<double>(it - xs.begin()) / kRows;
  EXPECT_NEAR(rank, 0.9, 0.01);
}

TEST(AggregateTest, ApproxPercentileInlineAndHeapStatesAgree) {
  // Few values stay inline in the state, more spill to a heap sketch; every mix of the two in
  // merges and decoding gives the bytes and results of adding all the rows to one state.
  auto fn = Make(AggKind::kApproxPercentile, DataType::kInt64, {.q = 0.5});
  std::mt19937_64 rng(17);
  for (size_t n = 0; n <= 9; ++n) {
    Rows rows = MakeRows(DataType::kInt64, n, rng, /*null_rate=*/0.1);
    StateHolder all(fn.get());
    AddRange(*fn, &all, rows, 0, n);
    for (size_t i = 0; i <= n; ++i) {
      for (size_t j = i; j <= n; ++j) {
        StateHolder a(fn.get()), b(fn.get()), c(fn.get()), decoded(fn.get());
        AddRange(*fn, &a, rows, 0, i);
        AddRange(*fn, &b, rows, i, j);
        AddRange(*fn, &c, rows, j, n);
        std::string b_bytes = b.Serialize();
        std::string_view in = b_bytes;
        ASSERT_TRUE(fn->Deserialize(&in, decoded.get()).ok());
        EXPECT_EQ(decoded.Serialize(), b_bytes);
        a.MergeFrom(decoded);
        a.MergeFrom(c);
        EXPECT_EQ(a.Serialize(), all.Serialize()) << n << " " << i << " " << j;
        EXPECT_EQ(a.Finalize(), all.Finalize()) << n << " " << i << " " << j;
      }
    }
  }
}

TEST(AggregateTest, ApproxCountDistinctLargeMergedStrings) {
  auto fn = Make(AggKind::kApproxCountDistinct, DataType::kString);
  constexpr size_t kRows = 100'000;
  std::vector<std::string> storage(kRows);
  Rows rows;
  rows.column.Reset(DataType::kString, kRows);
  rows.event_time.assign(kRows, 0);
  for (size_t i = 0; i < kRows; ++i) {
    storage[i] = "user-" + std::to_string(i % 50'000);
    rows.column.valid[i] = 1;
    rows.column.str[i] = storage[i];
  }
  StateHolder all(fn.get()), acc(fn.get());
  AddRange(*fn, &all, rows, 0, kRows);
  for (size_t part = 0; part < 16; ++part) {
    StateHolder s(fn.get());
    AddRange(*fn, &s, rows, part * kRows / 16, (part + 1) * kRows / 16);
    acc.MergeFrom(s);
  }
  EXPECT_EQ(all.Serialize(), acc.Serialize());  // HLL merges are exact
  EXPECT_NEAR(static_cast<double>(all.Finalize().int64()), 50'000, 50'000 * 0.02);
}

// ---- COUNT_BY / SUM_BY -------------------------------------------------------------------------

// A COUNT_BY over `bucket` or SUM_BY of `x` by `bucket`.
std::unique_ptr<AggregateFunction> MakeBy(AggKind kind, DataType x, DataType bucket,
                                          AggParams params = {}) {
  auto fn = kind == AggKind::kSumBy ? MakeAggregate(kind, x, bucket, params)
                                    : MakeAggregate(kind, bucket, params);
  EXPECT_TRUE(fn.ok()) << fn.status();
  return fn.ok() ? *std::move(fn) : nullptr;
}

// Rows of (x, bucket) from Values (NULL entries are NULL rows), all at event time 0; strings are
// copied into `arena`. An empty `buckets` leaves the bucket column unused.
Rows ValueRows(DataType x_type, const std::vector<Value>& xs, DataType bucket_type,
               const std::vector<Value>& buckets, Arena* arena) {
  Rows r;
  r.column.Reset(x_type, xs.size());
  for (size_t i = 0; i < xs.size(); ++i) r.column.SetValue(i, xs[i], arena);
  if (!buckets.empty()) {
    r.bucket.Reset(bucket_type, buckets.size());
    for (size_t i = 0; i < buckets.size(); ++i) r.bucket.SetValue(i, buckets[i], arena);
  }
  r.event_time.assign(xs.size(), 0);
  return r;
}

std::vector<Value> Strings(const std::vector<const char*>& v) {
  std::vector<Value> out;
  out.reserve(v.size());
  for (const char* s : v) {
    out.push_back(s == nullptr ? Value::Null(DataType::kString) : Value::String(s));
  }
  return out;
}

TEST(BucketAggregateTest, CapFoldsTheBucketsWithFewestRowsIntoOther) {
  auto fn = MakeBy(AggKind::kCountBy, DataType::kNull, DataType::kString, {.capacity = 2});
  EXPECT_EQ(fn->result_type(), DataType::kMap);
  EXPECT_EQ(fn->state_size(), 8u);
  Arena arena;
  // a×3, b×2, c×2, d×1, a real bucket named __other__, two NULLs (skipped).
  Rows rows =
      ValueRows(DataType::kString,
                Strings({"a", "b", "c", "a", "d", nullptr, "b", "c", "a", "__other__", nullptr}),
                DataType::kNull, {}, &arena);
  StateHolder s(fn.get());
  EXPECT_EQ(s.Finalize(), Value::Map({}));
  AddRange(*fn, &s, rows, 0, rows.size());
  // c ties b on rows and loses on value; d, c and the literal __other__ fold.
  EXPECT_EQ(s.Finalize().ToJson(), R"({"__other__":4,"a":3,"b":2})");
  // Two more buckets: the fifth distinct one reduces the state to a and b.
  Rows more = ValueRows(DataType::kString, Strings({"e", "f"}), DataType::kNull, {}, &arena);
  AddRange(*fn, &s, more, 0, more.size());
  EXPECT_EQ(s.Finalize().ToJson(), R"({"__other__":6,"a":3,"b":2})");
  // A literal __other__ never occupies a bucket of its own in the encoding either.
  std::string bytes = s.Serialize();
  StateHolder t(fn.get());
  std::string_view in = bytes;
  ASSERT_TRUE(fn->Deserialize(&in, t.get()).ok());
  EXPECT_EQ(t.Finalize(), s.Finalize());
}

TEST(BucketAggregateTest, ExactWhileTheWindowHasAtMostCapBuckets) {
  // 64 buckets (the default cap) over 16 tiles merged in two orders: every count exact.
  auto fn = MakeBy(AggKind::kCountBy, DataType::kNull, DataType::kInt64);
  std::mt19937_64 rng(3);
  constexpr size_t kRows = 20'000;
  Rows rows = IntRows({});
  rows.column.Reset(DataType::kInt64, kRows);
  rows.event_time.assign(kRows, 0);
  std::map<int64_t, int64_t> truth;
  for (size_t i = 0; i < kRows; ++i) {
    rows.column.valid[i] = 1;
    rows.column.i64[i] = static_cast<int64_t>(rng() % 64) * 1000 - 7;
    ++truth[rows.column.i64[i]];
  }
  std::vector<std::pair<std::string, Value>> expected;
  expected.reserve(truth.size());
  for (const auto& [bucket, n] : truth) {
    expected.emplace_back(std::to_string(bucket), Value::Int64(n));
  }
  std::sort(expected.begin(), expected.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (bool reverse : {false, true}) {
    StateHolder acc(fn.get());
    for (size_t p = 0; p < 16; ++p) {
      const size_t part = reverse ? 15 - p : p;
      StateHolder tile(fn.get());
      AddRange(*fn, &tile, rows, part * kRows / 16, (part + 1) * kRows / 16);
      acc.MergeFrom(tile);
    }
    EXPECT_EQ(acc.Finalize(), Value::Map(expected)) << reverse;
  }
}

TEST(BucketAggregateTest, BeyondTheCapEveryRowIsCountedOnceAndMergeCommutes) {
  // 10^5 rows over ~5000 buckets with a few heavy ones, cap 16, 16 tiles.
  auto fn = MakeBy(AggKind::kCountBy, DataType::kNull, DataType::kInt64, {.capacity = 16});
  std::mt19937_64 rng(11);
  constexpr size_t kRows = 100'000;
  Rows rows = IntRows({});
  rows.column.Reset(DataType::kInt64, kRows);
  rows.event_time.assign(kRows, 0);
  std::map<int64_t, int64_t> truth;
  for (size_t i = 0; i < kRows; ++i) {
    rows.column.valid[i] = 1;
    const uint64_t r = rng() % 100;
    rows.column.i64[i] =
        r < 40 ? static_cast<int64_t>(r % 4) : 100 + static_cast<int64_t>(rng() % 5000);
    ++truth[rows.column.i64[i]];
  }
  std::vector<std::unique_ptr<StateHolder>> tiles;
  for (size_t part = 0; part < 16; ++part) {
    tiles.push_back(std::make_unique<StateHolder>(fn.get()));
    AddRange(*fn, tiles.back().get(), rows, part * kRows / 16, (part + 1) * kRows / 16);
  }
  StateHolder forward(fn.get()), backward(fn.get());
  for (size_t p = 0; p < 16; ++p) {
    forward.MergeFrom(*tiles[p]);
    backward.MergeFrom(*tiles[15 - p]);
  }
  for (const StateHolder* acc : {&forward, &backward}) {
    const Value v = acc->Finalize();
    ASSERT_EQ(v.type(), DataType::kMap);
    EXPECT_LE(v.map().size(), 17u);  // 16 buckets and __other__
    int64_t total = 0;
    std::map<std::string, int64_t> got;
    for (const auto& [key, n] : v.map()) {
      total += n.int64();
      got[key] = n.int64();
    }
    EXPECT_EQ(total, static_cast<int64_t>(kRows));  // nothing lost, nothing twice
    for (int64_t heavy = 0; heavy < 4; ++heavy) {   // ~10% of the rows each: always kept
      ASSERT_TRUE(got.count(std::to_string(heavy))) << heavy;
      EXPECT_EQ(got[std::to_string(heavy)], truth[heavy]);
    }
    for (const auto& [key, n] : got) {  // a listed bucket never holds rows of another
      if (key != "__other__") {
        EXPECT_LE(n, truth[std::stoll(key)]) << key;
      }
    }
  }
  // Merge is commutative even beyond the cap: a ⊕ b and b ⊕ a are the same state.
  StateHolder ab(fn.get()), ba(fn.get());
  ab.MergeFrom(forward);
  ab.MergeFrom(*tiles[3]);
  ba.MergeFrom(*tiles[3]);
  ba.MergeFrom(forward);
  EXPECT_EQ(ab.Serialize(), ba.Serialize());
  EXPECT_LE(fn->HeapBytes(forward.get()), 4096u);  // at most 2·cap buckets
}

TEST(BucketAggregateTest, SumByFollowsSumAndRendersBucketsAsText) {
  Arena arena;
  // BIGINT: exact 128-bit per bucket; a bucket whose sum leaves BIGINT is null; NULL x or NULL
  // bucket rows are skipped (a bucket with only NULL x never appears).
  auto sum = MakeBy(AggKind::kSumBy, DataType::kInt64, DataType::kBool);
  Rows rows = ValueRows(DataType::kInt64,
                        {Value::Int64(INT64_MAX), Value::Int64(INT64_MAX), Value::Int64(5),
                         Value::Int64(-7), Value::Null(DataType::kInt64), Value::Int64(100)},
                        DataType::kBool,
                        {Value::Bool(true), Value::Bool(true), Value::Bool(false),
                         Value::Bool(false), Value::Bool(true), Value::Null(DataType::kBool)},
                        &arena);
  StateHolder s(sum.get());
  AddRange(*sum, &s, rows, 0, rows.size());
  EXPECT_EQ(s.Finalize().ToJson(), R"({"false":-2,"true":null})");

  // DOUBLE buckets: -0 is 0, NaN is "nan", shortest round-trip text.
  auto by_double = MakeBy(AggKind::kSumBy, DataType::kDouble, DataType::kDouble);
  Rows d = ValueRows(DataType::kDouble,
                     {Value::Double(1.5), Value::Double(2.0), Value::Double(0.25),
                      Value::Double(4.0), Value::Double(8.0)},
                     DataType::kDouble,
                     {Value::Double(-0.0), Value::Double(0.0), Value::Double(std::nan("")),
                      Value::Double(0.1), Value::Double(1e21)},
                     &arena);
  StateHolder t(by_double.get());
  AddRange(*by_double, &t, d, 0, d.size());
  EXPECT_EQ(t.Finalize().ToJson(), R"({"0":3.5,"0.1":4,"1e+21":8,"nan":0.25})");

  // TIMESTAMP buckets in RFC 3339; COUNT_BY of no rows is {}.
  auto by_time = MakeBy(AggKind::kCountBy, DataType::kNull, DataType::kTimestamp);
  Rows ts = ValueRows(DataType::kTimestamp,
                      {Value::Timestamp(1'700'000'000'000), Value::Timestamp(1'700'000'000'000),
                       Value::Timestamp(-1)},
                      DataType::kNull, {}, &arena);
  StateHolder u(by_time.get());
  EXPECT_EQ(u.Finalize().ToJson(), "{}");
  AddRange(*by_time, &u, ts, 0, ts.size());
  EXPECT_EQ(u.Finalize().ToJson(),
            R"({"1969-12-31T23:59:59.999Z":1,"2023-11-14T22:13:20.000Z":2})");
  // Outside years 0000-9999 (computed or corrupt values): epoch milliseconds.
  Rows far =
      ValueRows(DataType::kTimestamp, {Value::Timestamp(INT64_MIN)}, DataType::kNull, {}, &arena);
  AddRange(*by_time, &u, far, 0, far.size());
  EXPECT_EQ(u.Finalize().map()[0].first, "-9223372036854775808");
}

TEST(BucketAggregateTest, SumByKeepsTheTotalExactBeyondTheCap) {
  // The folded sums land in __other__: the values still add up to SUM(x), exactly for BIGINT.
  auto fn = MakeBy(AggKind::kSumBy, DataType::kInt64, DataType::kString, {.capacity = 3});
  std::mt19937_64 rng(2);
  constexpr size_t kRows = 10'000;
  Arena arena;
  std::vector<Value> xs, buckets;
  __int128 total = 0;
  for (size_t i = 0; i < kRows; ++i) {
    const auto x = static_cast<int64_t>(rng() % 2'000'001) - 1'000'000;
    xs.push_back(Value::Int64(x));
    total += x;
    buckets.push_back(Value::String("device-" + std::to_string(rng() % 50)));
  }
  Rows rows = ValueRows(DataType::kInt64, xs, DataType::kString, buckets, &arena);
  StateHolder acc(fn.get());
  for (size_t part = 0; part < 10; ++part) {
    StateHolder tile(fn.get());
    AddRange(*fn, &tile, rows, part * kRows / 10, (part + 1) * kRows / 10);
    acc.MergeFrom(tile);
  }
  const Value v = acc.Finalize();
  ASSERT_EQ(v.map().size(), 4u);
  EXPECT_EQ(v.map()[0].first, "__other__");
  int64_t sum = 0;
  for (const auto& [key, value] : v.map()) sum += value.int64();
  EXPECT_EQ(sum, static_cast<int64_t>(total));
}

TEST(BucketAggregateTest, RejectsBadParamsAndTypes) {
  EXPECT_FALSE(MakeAggregate(AggKind::kCountBy, DataType::kString, {.capacity = 0}).ok());
  EXPECT_FALSE(MakeAggregate(AggKind::kCountBy, DataType::kString, {.capacity = 1001}).ok());
  EXPECT_TRUE(MakeAggregate(AggKind::kCountBy, DataType::kString, {.capacity = 1000}).ok());
  auto one_arg = MakeAggregate(AggKind::kSumBy, DataType::kInt64, {});
  ASSERT_FALSE(one_arg.ok());
  EXPECT_EQ(StatusMessage(one_arg.status()),
            "SUM_BY takes two arguments, expected SUM_BY(x, bucket)");
  auto sum_string = MakeAggregate(AggKind::kSumBy, DataType::kString, DataType::kString, {});
  ASSERT_FALSE(sum_string.ok());
  EXPECT_EQ(StatusMessage(sum_string.status()),
            "SUM_BY does not accept STRING; expected BIGINT or DOUBLE to sum");
  EXPECT_FALSE(MakeAggregate(AggKind::kSumBy, DataType::kInt64, DataType::kNull, {}).ok());
  EXPECT_FALSE(MakeAggregate(AggKind::kSumBy, DataType::kInt64, DataType::kList, {}).ok());
  EXPECT_FALSE(MakeAggregate(AggKind::kCount, DataType::kInt64, DataType::kInt64, {}).ok());
}

// ---- APPROX_HISTOGRAM --------------------------------------------------------------------------

// The label of each value's bin, through a one-row state.
std::string HistogramLabel(const AggregateFunction& fn, double x) {
  Arena arena;
  Rows rows = ValueRows(DataType::kDouble, {Value::Double(x)}, DataType::kNull, {}, &arena);
  StateHolder s(&fn);
  AddRange(fn, &s, rows, 0, 1);
  const Value v = s.Finalize();
  if (v.map().size() != 1) return fmt::format("({} bins)", v.map().size());
  EXPECT_EQ(v.map()[0].second, Value::Int64(1));
  return v.map()[0].first;
}

TEST(HistogramTest, LogBinsAndExplicitEdges) {
  auto log10 = Make(AggKind::kApproxHistogram, DataType::kDouble, {.bins = "log10"});
  EXPECT_EQ(HistogramLabel(*log10, 1.0), "[1,10)");
  EXPECT_EQ(HistogramLabel(*log10, 9.999), "[1,10)");
  EXPECT_EQ(HistogramLabel(*log10, 10.0), "[10,100)");
  EXPECT_EQ(HistogramLabel(*log10, 0.1), "[0.1,1)");
  EXPECT_EQ(HistogramLabel(*log10, 0.099), "[0.01,0.1)");
  EXPECT_EQ(HistogramLabel(*log10, 1e-5), "[1e-05,0.0001)");
  EXPECT_EQ(HistogramLabel(*log10, -1.0), "(-10,-1]");
  EXPECT_EQ(HistogramLabel(*log10, -10.0), "(-100,-10]");
  EXPECT_EQ(HistogramLabel(*log10, 0.0), "[0,0]");
  EXPECT_EQ(HistogramLabel(*log10, -0.0), "[0,0]");
  EXPECT_EQ(HistogramLabel(*log10, std::numeric_limits<double>::max()), "[1e+308,inf]");
  EXPECT_EQ(HistogramLabel(*log10, std::numeric_limits<double>::infinity()), "[1e+308,inf]");
  EXPECT_EQ(HistogramLabel(*log10, -std::numeric_limits<double>::infinity()), "[-inf,-1e+308]");
  EXPECT_EQ(HistogramLabel(*log10, std::numeric_limits<double>::denorm_min()), "[5e-324,1e-323)");
  EXPECT_EQ(HistogramLabel(*log10, std::nan("")), "(0 bins)");  // NaN is skipped

  auto log2 = Make(AggKind::kApproxHistogram, DataType::kInt64, {.bins = "log2"});
  Arena arena;
  Rows ints = ValueRows(DataType::kInt64,
                        {Value::Int64(1), Value::Int64(3), Value::Int64(4), Value::Int64(-1),
                         Value::Int64(0), Value::Int64(INT64_MIN), Value::Null(DataType::kInt64)},
                        DataType::kNull, {}, &arena);
  StateHolder s(log2.get());
  AddRange(*log2, &s, ints, 0, ints.size());
  EXPECT_EQ(s.Finalize().ToJson(),
            R"j({"(-1.8446744073709552e+19,-9.223372036854776e+18]":1,"(-2,-1]":1,"[0,0]":1,)j"
            R"j("[1,2)":1,"[2,4)":1,"[4,8)":1})j");

  auto edges = Make(AggKind::kApproxHistogram, DataType::kDouble, {.bins = "0,10,100"});
  EXPECT_EQ(HistogramLabel(*edges, -5.0), "[-inf,0)");
  EXPECT_EQ(HistogramLabel(*edges, -0.0), "[0,10)");
  EXPECT_EQ(HistogramLabel(*edges, 10.0), "[10,100)");
  EXPECT_EQ(HistogramLabel(*edges, 100.0), "[100,inf]");
  EXPECT_EQ(HistogramLabel(*edges, std::numeric_limits<double>::infinity()), "[100,inf]");
  EXPECT_EQ(HistogramLabel(*edges, -std::numeric_limits<double>::infinity()), "[-inf,0)");
}

TEST(HistogramTest, EveryPowerOfTenStartsItsBin) {
  // log10 computes floor(log10(x)), which may be off by one next to a power of ten: the bins
  // must follow the exact bounds (the doubles nearest 10^k) all the same.
  auto fn = Make(AggKind::kApproxHistogram, DataType::kDouble, {.bins = "log10"});
  for (int k = -323; k <= 308; ++k) {
    const double p = std::strtod(("1e" + std::to_string(k)).c_str(), nullptr);
    const std::string text = fmt::format("{}", p);
    const std::string at = HistogramLabel(*fn, p);
    EXPECT_EQ(at.substr(0, text.size() + 2), fmt::format("[{},", text)) << k;
    const std::string below = HistogramLabel(*fn, std::nextafter(p, 0.0));
    EXPECT_EQ(below.substr(below.size() - text.size() - 2), fmt::format(",{})", text)) << k;
  }
  auto log2 = Make(AggKind::kApproxHistogram, DataType::kDouble, {.bins = "log2"});
  for (int k = -1074; k <= 1023; ++k) {  // log2: the bounds are exact powers
    const double p = std::ldexp(1.0, k);
    const std::string text = fmt::format("{}", p);
    const std::string at = HistogramLabel(*log2, p);
    EXPECT_EQ(at.substr(0, text.size() + 2), fmt::format("[{},", text)) << k;
    if (k > -1074) {
      const std::string below = HistogramLabel(*log2, std::nextafter(p, 0.0));
      EXPECT_EQ(below.substr(below.size() - text.size() - 2), fmt::format(",{})", text)) << k;
    }
  }
}

TEST(HistogramTest, BinsStayBoundedOverTheWholeDoubleRange) {
  auto fn = Make(AggKind::kApproxHistogram, DataType::kDouble, {.bins = "log2"});
  std::mt19937_64 rng(4);
  constexpr size_t kRows = 200'000;
  Rows rows = IntRows({});
  rows.column.Reset(DataType::kDouble, kRows);
  rows.event_time.assign(kRows, 0);
  for (size_t i = 0; i < kRows; ++i) {
    uint64_t bits = rng();
    double x = 0.0;
    std::memcpy(&x, &bits, 8);  // every exponent, both signs, NaNs and infinities
    rows.column.valid[i] = 1;
    rows.column.f64[i] = x;
  }
  StateHolder acc(fn.get()), all(fn.get());
  AddRange(*fn, &all, rows, 0, kRows);
  for (size_t part = 0; part < 8; ++part) {
    StateHolder s(fn.get());
    AddRange(*fn, &s, rows, part * kRows / 8, (part + 1) * kRows / 8);
    acc.MergeFrom(s);
  }
  EXPECT_EQ(acc.Serialize(), all.Serialize());  // counts are exact: merges change nothing
  const Value v = all.Finalize();
  EXPECT_LE(v.map().size(), 4197u);
  EXPECT_GT(v.map().size(), 4000u);
  int64_t counted = 0;
  for (const auto& [label, n] : v.map()) counted += n.int64();
  size_t nans = 0;
  for (size_t i = 0; i < kRows; ++i) nans += std::isnan(rows.column.f64[i]) ? 1 : 0;
  EXPECT_EQ(counted, static_cast<int64_t>(kRows - nans));
  EXPECT_LE(fn->HeapBytes(all.get()), 2 * 4197u * 16 + 64);  // vector growth: at most 2x
}

TEST(HistogramTest, ParsesAndRejectsBinSpecs) {
  EXPECT_EQ(*NormalizeHistogramBins(" LOG10 "), "log10");
  EXPECT_EQ(*NormalizeHistogramBins("Log2"), "log2");
  EXPECT_EQ(*NormalizeHistogramBins("0, 1e1,100.0"), "0,10,100");
  EXPECT_EQ(*NormalizeHistogramBins("-0.5,-0,+3"), "-0.5,0,3");
  std::string many;
  for (int i = 0; i < 100; ++i) {
    if (i > 0) many.push_back(',');
    many += std::to_string(i);
  }
  EXPECT_TRUE(NormalizeHistogramBins(many).ok());
  EXPECT_FALSE(NormalizeHistogramBins(many + ",1000").ok());
  for (const char* bad : {"", "log3", "1,1", "2,1", "1,,2", "1,", "inf", "nan", "1,x", "0x10"}) {
    absl::StatusOr<std::string> got = NormalizeHistogramBins(bad);
    EXPECT_FALSE(got.ok()) << bad;
  }
  EXPECT_EQ(StatusMessage(NormalizeHistogramBins("1,1").status()),
            "APPROX_HISTOGRAM bins '1,1' are not strictly ascending at '1', expected 'log2', "
            "'log10' or 1 to 100 strictly ascending finite edges such as '0,10,100'");
  EXPECT_FALSE(MakeAggregate(AggKind::kApproxHistogram, DataType::kString, {.bins = "log2"}).ok());
  EXPECT_FALSE(MakeAggregate(AggKind::kApproxHistogram, DataType::kDouble, {}).ok());
}

// ---- APPROX_TOP_K ------------------------------------------------------------------------------

// Checks APPROX_TOP_K's answer against the true counts: each listed count c and error E bound the
// truth (c <= true <= c + E), E <= N / (m + 1), and every value more frequent than N / (m + 1)
// is listed (the test's k exceeds how many such values there are).
void ExpectWithinBound(const Value& v, const std::map<int64_t, int64_t>& truth, int64_t n,
                       int64_t capacity, const std::string& what) {
  ASSERT_EQ(v.type(), DataType::kList) << what;
  std::map<int64_t, int64_t> listed;
  int64_t last_count = INT64_MAX;
  for (const Value& item : v.list()) {
    ASSERT_EQ(item.type(), DataType::kMap) << what;
    const int64_t count = item.map()[0].second.int64();
    const int64_t error = item.map()[1].second.int64();
    const int64_t value = item.map()[2].second.int64();
    const int64_t t = truth.count(value) ? truth.at(value) : 0;
    EXPECT_LE(count, t) << what << " value " << value;
    EXPECT_LE(t, count + error) << what << " value " << value;
    EXPECT_LE(error, n / (capacity + 1)) << what;
    EXPECT_LE(count, last_count) << what << ": most frequent first";
    last_count = count;
    listed[value] = count;
  }
  for (const auto& [value, t] : truth) {
    if (t > n / (capacity + 1)) {
      EXPECT_TRUE(listed.count(value)) << what << " heavy " << value;
    }
  }
}

TEST(ApproxTopKTest, ErrorBoundHoldsOnSkewedStreamsOfMergedTiles) {
  constexpr int64_t kCapacity = 64;
  auto fn = Make(AggKind::kApproxTopK, DataType::kInt64, {.k = 40, .capacity = kCapacity});
  // 200k rows: a Zipf-like head over 30 values and a tail of ~all-distinct values, in three
  // orders (random, heavy values last, sorted), split into 16 tiles merged in two orders.
  constexpr size_t kRows = 200'000;
  std::mt19937_64 rng(8);
  std::vector<int64_t> xs;
  for (size_t i = 0; i < kRows; ++i) {
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    xs.push_back(u < 0.5 ? static_cast<int64_t>(1.0 / (0.02 + u * 2))
                         : 1000 + static_cast<int64_t>(rng() % 1'000'000));
  }
  for (int order = 0; order < 3; ++order) {
    if (order == 1) {
      std::stable_partition(xs.begin(), xs.end(), [](int64_t x) { return x >= 1000; });
    } else if (order == 2) {
      std::sort(xs.begin(), xs.end());
    }
    std::map<int64_t, int64_t> truth;
    Rows rows = IntRows({});
    rows.column.Reset(DataType::kInt64, kRows);
    rows.event_time.assign(kRows, 0);
    for (size_t i = 0; i < kRows; ++i) {
      rows.column.valid[i] = 1;
      rows.column.i64[i] = xs[i];
      ++truth[xs[i]];
    }
    for (bool reverse : {false, true}) {
      StateHolder acc(fn.get());
      for (size_t p = 0; p < 16; ++p) {
        const size_t part = reverse ? 15 - p : p;
        StateHolder tile(fn.get());
        AddRange(*fn, &tile, rows, part * kRows / 16, (part + 1) * kRows / 16);
        // Through the encoding, as tiles are stored.
        std::string bytes = tile.Serialize();
        std::string_view in = bytes;
        ASSERT_TRUE(fn->MergeSerialized(&in, acc.get()).ok());
      }
      const std::string what = "order " + std::to_string(order) + (reverse ? " reversed" : "");
      ExpectWithinBound(acc.Finalize(), truth, kRows, kCapacity, what);
      EXPECT_GT(acc.Finalize().list()[0].map()[1].second.int64(), 0) << what << ": reduced";
      EXPECT_LE(acc.Serialize().size(), 2u * kCapacity * 12 + 16) << what;
    }
  }
}

TEST(ApproxTopKTest, ExactCountsAndZeroErrorWhileSmall) {
  auto fn = Make(AggKind::kApproxTopK, DataType::kString, {.k = 2});
  EXPECT_EQ(fn->state_size(), 8u);
  Arena arena;
  Rows rows = ValueRows(DataType::kString, Strings({"b", "a", "b", nullptr, "c", "a", "b"}),
                        DataType::kNull, {}, &arena);
  StateHolder s(fn.get());
  AddRange(*fn, &s, rows, 0, rows.size());
  EXPECT_EQ(s.Finalize().ToJson(),
            R"([{"count":3,"error":0,"value":"b"},{"count":2,"error":0,"value":"a"}])");
}

TEST(ApproxTopKTest, RejectsBadParamsAndCorruptCounts) {
  EXPECT_FALSE(MakeAggregate(AggKind::kApproxTopK, DataType::kInt64, {.k = 0}).ok());
  EXPECT_FALSE(MakeAggregate(AggKind::kApproxTopK, DataType::kInt64, {.k = 1001}).ok());
  EXPECT_FALSE(
      MakeAggregate(AggKind::kApproxTopK, DataType::kInt64, {.k = 10, .capacity = 9}).ok());
  EXPECT_FALSE(
      MakeAggregate(AggKind::kApproxTopK, DataType::kInt64, {.k = 10, .capacity = 10001}).ok());
  EXPECT_TRUE(
      MakeAggregate(AggKind::kApproxTopK, DataType::kInt64, {.k = 10, .capacity = 10}).ok());
  EXPECT_EQ(TopKCapacity({.k = 3}), 64);
  EXPECT_EQ(TopKCapacity({.k = 100}), 800);
  // Counts summing to more than the rows are corrupt.
  auto fn = Make(AggKind::kApproxTopK, DataType::kInt64, {.k = 3});
  std::string bytes;
  bytes.push_back(1);
  PutVarint64(&bytes, 3);  // N
  PutVarint64(&bytes, 2);  // m
  PutZigZag64(&bytes, 1);
  PutVarint64(&bytes, 2);
  PutZigZag64(&bytes, 2);
  PutVarint64(&bytes, 2);
  StateHolder s(fn.get());
  std::string_view in = bytes;
  EXPECT_EQ(fn->Deserialize(&in, s.get()).code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace tessera::agg
