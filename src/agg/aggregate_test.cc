#include "agg/aggregate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "agg/agg_types.h"
#include "common/column.h"
#include "common/errors.h"
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

// Adds rows [begin, end) to `state` in one AddBatch call.
void AddRange(const AggregateFunction& fn, StateHolder* state, const Rows& rows, size_t begin,
              size_t end) {
  std::vector<std::byte*> states(end - begin, state->get());
  std::vector<uint32_t> idx(end - begin);
  for (size_t i = begin; i < end; ++i) idx[i - begin] = static_cast<uint32_t>(i);
  fn.AddBatch(states.data(), fn.kind() == AggKind::kCountStar ? nullptr : &rows.column,
              rows.event_time.data(), idx.data(), idx.size());
}

struct Case {
  AggKind kind;
  DataType type;
  AggParams params;
};

std::string CaseName(const Case& c) {
  std::string name =
      std::string(c.kind == AggKind::kCountStar ? "COUNT_STAR" : AggKindName(c.kind));
  name += "_";
  name += DataTypeName(c.type);
  if (AggParamCount(c.kind) > 0) {
    name += c.kind == AggKind::kApproxPercentile ? "_q" + std::to_string(int(c.params.q * 100))
                                                 : "_k" + std::to_string(c.params.k);
  }
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
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
                           AggKind::kTopK};
  const DataType types[] = {DataType::kBool, DataType::kInt64, DataType::kDouble, DataType::kString,
                            DataType::kTimestamp};
  for (AggKind kind : kinds) {
    std::vector<AggParams> params = {AggParams{}};
    if (kind == AggKind::kLastK || kind == AggKind::kTopK) {
      params = {AggParams{.k = 1}, AggParams{.k = 3}, AggParams{.k = 50}};
    } else if (kind == AggKind::kApproxPercentile) {
      params = {AggParams{.q = 0.0}, AggParams{.q = 0.5}, AggParams{.q = 0.9}, AggParams{.q = 1.0}};
    }
    for (DataType type : types) {
      if (kind == AggKind::kCountStar && type != DataType::kInt64) continue;
      for (const AggParams& p : params) {
        if (AggResultType(kind, type, p).ok()) cases.push_back({kind, type, p});
      }
    }
  }
  return cases;
}

// Floating-point moment aggregates are equal up to rounding, everything else exactly.
bool IsFloatingApprox(const Case& c) {
  switch (c.kind) {
    case AggKind::kSum:
    case AggKind::kAvg:
      return c.type == DataType::kDouble;
    case AggKind::kVarSamp:
    case AggKind::kVarPop:
    case AggKind::kStddevSamp:
    case AggKind::kStddevPop:
      return true;
    default:
      return false;
  }
}

void ExpectSameResult(const Case& c, const Value& expected, const Value& actual,
                      const std::string& what) {
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
    case AggKind::kCountStar:
      return Value::Int64(static_cast<int64_t>(end - begin));
    case AggKind::kCount:
      return Value::Int64(static_cast<int64_t>(items.size()));
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
    auto fn = MakeAggregate(GetParam().kind, GetParam().type, GetParam().params);
    ASSERT_TRUE(fn.ok()) << fn.status();
    fn_ = *std::move(fn);
  }
  // Rows sized so that sketches stay exact (KLL compacts above 400 items).
  Rows Make(std::mt19937_64& rng, size_t n = 300) {
    return MakeRows(GetParam().kind == AggKind::kCountStar ? DataType::kInt64 : GetParam().type, n,
                    rng);
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
      EXPECT_EQ(v, Value::List({}));
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
    if (v.type() == DataType::kList) {
      for (const Value& item : v.list()) EXPECT_EQ(item.type(), GetParam().type);
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
    fn_->AddBatch(&one, fn_->kind() == AggKind::kCountStar ? nullptr : &rows.column,
                  rows.event_time.data(), &row, 1);
  }
  fn_->AddBatch(ptrs.data(), fn_->kind() == AggKind::kCountStar ? nullptr : &rows.column,
                rows.event_time.data(), idx.data(), idx.size());
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

}  // namespace
}  // namespace tessera::agg
