// EXP_DECAY_SUM / EXP_DECAY_COUNT against brute force over long windows, through the same tile
// ladder the engine builds (5-minute tiles, hour and day rollups, a window merged from them).

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "agg/aggregate.h"
#include "common/column.h"
#include "common/time_util.h"
#include "common/value.h"

namespace tessera::agg {
namespace {

constexpr int64_t kTile = 5 * kMillisPerMinute;
constexpr int64_t kT0 = 1'700'000'000'000 / kMillisPerDay * kMillisPerDay;  // a UTC midnight

struct Row {
  double x;
  bool null;
  int64_t ts;
};

// One aggregate's states keyed by tile start, for one resolution.
class Level {
 public:
  explicit Level(const AggregateFunction* fn) : fn_(fn) {}
  ~Level() {
    for (auto& [start, s] : states_) fn_->Destroy(s.get());
  }
  std::byte* Get(int64_t start) {
    for (auto& [st, s] : states_) {
      if (st == start) return s.get();
    }
    auto buf = std::make_unique<std::byte[]>(64);
    fn_->Init(buf.get());
    states_.emplace_back(start, std::move(buf));
    return states_.back().second.get();
  }
  const std::byte* Find(int64_t start) const {
    for (const auto& [st, s] : states_) {
      if (st == start) return s.get();
    }
    return nullptr;
  }
  const std::vector<std::pair<int64_t, std::unique_ptr<std::byte[]>>>& states() const {
    return states_;
  }

 private:
  const AggregateFunction* fn_;
  std::vector<std::pair<int64_t, std::unique_ptr<std::byte[]>>> states_;
};

// Adds rows one at a time (arrival order) to their base tile.
void AddRows(const AggregateFunction& fn, const std::vector<Row>& rows, Level* base) {
  Column col;
  col.Reset(DataType::kDouble, 1);
  for (const Row& r : rows) {
    col.valid[0] = r.null ? 0 : 1;
    col.f64[0] = r.x;
    std::byte* state = base->Get(AlignDown(r.ts, kTile));
    const uint32_t row = 0;
    fn.AddBatch(&state, &col, &r.ts, &row, 1);
  }
}

// The documented bound: within 1e-12 of Σ|x|·w, plus subnormal underflow.
void ExpectWithinBound(const AggregateFunction& fn, const Level& base, const Level& hours,
                       const Level& days, const std::vector<Row>& rows, bool count, int64_t h,
                       int64_t at, int64_t window) {
  const int64_t from = AlignDown(at - window, kTile);
  const int64_t head = AlignDown(at, kTile) + (at % kTile == 0 ? 0 : kTile);
  // The fewest tiles, as the reader covers a window: whole days, then whole hours, then base.
  auto buf = std::make_unique<std::byte[]>(64);
  fn.Init(buf.get());
  std::vector<const std::byte*> cover;
  for (int64_t t = from; t < head;) {
    int64_t step = kTile;
    const std::byte* src = nullptr;
    if (t % kMillisPerDay == 0 && t + kMillisPerDay <= head) {
      step = kMillisPerDay;
      src = days.Find(t);
    } else if (t % kMillisPerHour == 0 && t + kMillisPerHour <= head) {
      step = kMillisPerHour;
      src = hours.Find(t);
    } else {
      src = base.Find(t);
    }
    if (src != nullptr) cover.push_back(src);
    t += step;
  }
  // In any order: merges rescale whichever side is older.
  std::mt19937_64 order(static_cast<uint64_t>(at));
  std::shuffle(cover.begin(), cover.end(), order);
  for (const std::byte* src : cover) fn.Merge(buf.get(), src);
  const size_t merged = cover.size();
  const Value got = fn.FinalizeAt(buf.get(), at);
  fn.Destroy(buf.get());

  long double exact = 0, magnitude = 0;
  double max_abs = 0;
  size_t n = 0;
  for (const Row& r : rows) {
    // The window's rows: the head tile is read whole (DESIGN.md), so rows of [at, head) count,
    // with weights above 1.
    if (r.ts < from || r.ts >= head || (r.null && !count)) continue;
    const double x = count ? 1.0 : r.x;
    const long double w = std::exp2(-static_cast<long double>(at - r.ts) / h);
    exact += x * w;
    magnitude += std::fabs(x) * w;
    max_abs = std::max(max_abs, std::fabs(x));
    ++n;
  }
  SCOPED_TRACE("h=" + std::to_string(h) + " at=" + std::to_string(at) +
               " window=" + std::to_string(window) + " rows=" + std::to_string(n) +
               " tiles=" + std::to_string(merged));
  if (n == 0) {
    if (count) {
      EXPECT_EQ(got, Value::Double(0.0));
    } else {
      EXPECT_TRUE(got.is_null());
    }
    return;
  }
  ASSERT_EQ(got.type(), DataType::kDouble);
  ASSERT_FALSE(got.is_null());
  const long double err = std::fabs(static_cast<long double>(got.double_value()) - exact);
  EXPECT_LE(err, 1e-12L * magnitude + 1e-300L * max_abs)
      << "got " << got.double_value() << " exact " << static_cast<double>(exact);
}

class DecayBruteForceTest : public ::testing::TestWithParam<std::tuple<bool, int64_t>> {};

TEST_P(DecayBruteForceTest, LadderReadsWithinTheStatedBound) {
  const auto [count, h] = GetParam();
  auto made =
      MakeAggregate(count ? AggKind::kExpDecayCount : AggKind::kExpDecaySum,
                    count ? DataType::kNull : DataType::kDouble, AggParams{.half_life_ms = h});
  ASSERT_TRUE(made.ok()) << made.status();
  const AggregateFunction& fn = **made;

  // 32 days of rows in random arrival order: mixed signs and magnitudes, NULLs, bursts.
  std::mt19937_64 rng(static_cast<uint64_t>(h) * 7 + count);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<Row> rows;
  const int64_t span = 32 * kMillisPerDay;
  for (int i = 0; i < 60000; ++i) {
    Row r;
    r.ts = kT0 + static_cast<int64_t>(rng() % static_cast<uint64_t>(span));
    if (i % 10 == 0 && !rows.empty()) r.ts = rows.back().ts + static_cast<int64_t>(rng() % 1000);
    const double mag = std::pow(10.0, unit(rng) * 9 - 3);  // 1e-3 .. 1e6
    r.x = unit(rng) < 0.3 ? -mag : mag;
    r.null = unit(rng) < 0.1;
    rows.push_back(r);
  }
  Level base(&fn), hours(&fn), days(&fn);
  AddRows(fn, rows, &base);
  // Rollups as the flusher builds them: hours from base tiles, days from hours.
  std::vector<int64_t> starts;
  for (const auto& [start, s] : base.states()) starts.push_back(start);
  std::sort(starts.begin(), starts.end());
  for (int64_t s : starts) fn.Merge(hours.Get(AlignDown(s, kMillisPerHour)), base.Find(s));
  starts.clear();
  for (const auto& [start, s] : hours.states()) starts.push_back(start);
  std::sort(starts.begin(), starts.end());
  for (int64_t s : starts) fn.Merge(days.Get(AlignDown(s, kMillisPerDay)), hours.Find(s));

  const int64_t windows[] = {kTile, kMillisPerHour, kMillisPerDay, 7 * kMillisPerDay,
                             30 * kMillisPerDay};
  for (int i = 0; i < 40; ++i) {
    const int64_t at = kT0 + 2 * kMillisPerDay + static_cast<int64_t>(rng() % (30 * kMillisPerDay));
    for (int64_t w : windows) {
      ExpectWithinBound(fn, base, hours, days, rows, count, h, at, w);
    }
  }
  // The read at the end of the data, over the full 30 days.
  ExpectWithinBound(fn, base, hours, days, rows, count, h, kT0 + span, 30 * kMillisPerDay);
}

INSTANTIATE_TEST_SUITE_P(
    HalfLives, DecayBruteForceTest,
    ::testing::Combine(::testing::Bool(),
                       ::testing::Values(int64_t{1000}, kMillisPerMinute, kMillisPerHour,
                                         kMillisPerDay, 7 * kMillisPerDay, 365 * kMillisPerDay)));

TEST(DecayTest, HalvesEveryHalfLife) {
  auto fn = MakeAggregate(AggKind::kExpDecaySum, DataType::kInt64,
                          AggParams{.half_life_ms = kMillisPerHour});
  ASSERT_TRUE(fn.ok());
  auto buf = std::make_unique<std::byte[]>(64);
  (*fn)->Init(buf.get());
  Column col;
  col.Reset(DataType::kInt64, 1);
  col.valid[0] = 1;
  col.i64[0] = 8;
  const int64_t ts = kT0 + 12'345;
  const uint32_t row = 0;
  std::byte* state = buf.get();
  (*fn)->AddBatch(&state, &col, &ts, &row, 1);
  EXPECT_NEAR((*fn)->FinalizeAt(buf.get(), ts).double_value(), 8.0, 1e-14);
  EXPECT_NEAR((*fn)->FinalizeAt(buf.get(), ts + kMillisPerHour).double_value(), 4.0, 1e-14);
  EXPECT_NEAR((*fn)->FinalizeAt(buf.get(), ts + 3 * kMillisPerHour).double_value(), 1.0, 1e-14);
  // Far past every half-life: underflows to 0, never NaN or an error.
  EXPECT_EQ((*fn)->FinalizeAt(buf.get(), ts + 36500 * kMillisPerDay).double_value(), 0.0);
  (*fn)->Destroy(buf.get());
}

TEST(DecayTest, RejectsBadHalfLifeAndTypes) {
  EXPECT_FALSE(MakeAggregate(AggKind::kExpDecaySum, DataType::kDouble, AggParams{}).ok());
  EXPECT_FALSE(
      MakeAggregate(AggKind::kExpDecaySum, DataType::kString, AggParams{.half_life_ms = 1000})
          .ok());
  EXPECT_FALSE(MakeAggregate(AggKind::kExpDecayCount, DataType::kNull,
                             AggParams{.half_life_ms = 36501 * kMillisPerDay})
                   .ok());
}

}  // namespace
}  // namespace tessera::agg
