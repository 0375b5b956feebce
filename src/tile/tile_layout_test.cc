#include "tile/tile_layout.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "agg/aggregate.h"
#include "common/column.h"
#include "common/errors.h"
#include "common/value.h"

namespace tessera::tile {
namespace {

using agg::AggKind;
using agg::AggParams;

// Which input column a slot reads.
enum class Arg { kNone, kInt64, kDouble, kString };

struct SlotSpec {
  AggKind kind;
  DataType type;
  AggParams params;
  Arg arg;
};

const std::vector<SlotSpec>& Specs() {
  static const auto* specs = new std::vector<SlotSpec>{
      {AggKind::kCountStar, DataType::kNull, {}, Arg::kNone},
      {AggKind::kSum, DataType::kInt64, {}, Arg::kInt64},
      {AggKind::kMax, DataType::kString, {}, Arg::kString},
      {AggKind::kAvg, DataType::kDouble, {}, Arg::kDouble},
      {AggKind::kLastValue, DataType::kString, {}, Arg::kString},
      {AggKind::kLastK, DataType::kInt64, {.k = 3}, Arg::kInt64},
      {AggKind::kApproxCountDistinct, DataType::kString, {}, Arg::kString},
      {AggKind::kApproxPercentile, DataType::kDouble, {.q = 0.9}, Arg::kDouble},
      {AggKind::kTopK, DataType::kString, {.k = 2}, Arg::kString},
  };
  return *specs;
}

std::unique_ptr<TileLayout> MakeLayout() {
  std::vector<std::unique_ptr<agg::AggregateFunction>> aggs;
  for (const SlotSpec& s : Specs()) {
    auto fn = agg::MakeAggregate(s.kind, s.type, s.params);
    EXPECT_TRUE(fn.ok()) << fn.status();
    if (fn.ok()) aggs.push_back(*std::move(fn));
  }
  return std::make_unique<TileLayout>(std::move(aggs));
}

// Random rows with NULLs and event-time ties. Values are small integers and halves so that
// floating-point sums are exact whatever the order, and few enough that every sketch is exact.
struct Rows {
  Column i64;
  Column f64;
  Column str;
  std::vector<int64_t> event_time;
  size_t size() const { return event_time.size(); }
};

const std::vector<std::string>& Vocabulary() {
  static const auto* vocab =
      new std::vector<std::string>{"",           "a",
                                   "b",          "track-0001",
                                   "track-0002", "a value longer than the small string buffer",
                                   "Z",          std::string("nul\0byte", 8)};
  return *vocab;
}

Rows MakeRows(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Rows r;
  r.i64.Reset(DataType::kInt64, n);
  r.f64.Reset(DataType::kDouble, n);
  r.str.Reset(DataType::kString, n);
  r.event_time.resize(n);
  for (size_t i = 0; i < n; ++i) {
    r.event_time[i] = 1'700'000'000'000 + static_cast<int64_t>(rng() % 16);
    if (rng() % 5 != 0) {
      r.i64.valid[i] = 1;
      r.i64.i64[i] = static_cast<int64_t>(rng() % 2001) - 1000;
    }
    if (rng() % 5 != 0) {
      r.f64.valid[i] = 1;
      r.f64.f64[i] = static_cast<double>(static_cast<int64_t>(rng() % 401) - 200) / 2.0;
    }
    if (rng() % 5 != 0) {
      r.str.valid[i] = 1;
      r.str.str[i] = Vocabulary()[rng() % Vocabulary().size()];
    }
  }
  return r;
}

const Column* ArgColumn(const Rows& rows, Arg arg) {
  switch (arg) {
    case Arg::kNone:
      return nullptr;
    case Arg::kInt64:
      return &rows.i64;
    case Arg::kDouble:
      return &rows.f64;
    case Arg::kString:
      return &rows.str;
  }
  return nullptr;
}

// Adds rows [begin, end) to every slot of `block`, in arrival order.
void AddRows(const TileLayout& layout, std::byte* block, const Rows& rows, size_t begin,
             size_t end) {
  std::vector<uint32_t> idx;
  for (size_t i = begin; i < end; ++i) idx.push_back(static_cast<uint32_t>(i));
  for (size_t s = 0; s < layout.num_slots(); ++s) {
    std::vector<std::byte*> states(idx.size(), block + layout.offset(s));
    layout.agg(s).AddBatch(states.data(), ArgColumn(rows, Specs()[s].arg), rows.event_time.data(),
                           idx.data(), idx.size());
  }
}

std::vector<Value> FinalizeAll(const TileLayout& layout, const std::byte* block) {
  std::vector<Value> out;
  for (size_t s = 0; s < layout.num_slots(); ++s) {
    out.push_back(layout.agg(s).Finalize(block + layout.offset(s)));
  }
  return out;
}

std::string SerializeBlock(const TileLayout& layout, const std::byte* block) {
  std::string out;
  layout.Serialize(block, &out);
  return out;
}

void ExpectSameValues(const std::vector<Value>& expected, const std::vector<Value>& actual,
                      const std::string& what) {
  ASSERT_EQ(expected.size(), actual.size()) << what;
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(expected[i], actual[i])
        << what << ", slot " << i << " (" << agg::AggKindName(Specs()[i].kind) << "): expected "
        << expected[i].ToString() << ", got " << actual[i].ToString();
  }
}

// Expects DataLoss whose message contains `needle`.
void ExpectDataLoss(const absl::Status& s, const std::string& needle, const std::string& what) {
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << what << ": " << s;
  EXPECT_NE(StatusMessage(s).find(needle), std::string::npos)
      << what << ": message \"" << StatusMessage(s) << "\" does not mention \"" << needle << "\"";
}

TEST(TileLayout, OffsetsAreAlignedAndDoNotOverlap) {
  auto layout = MakeLayout();
  ASSERT_EQ(layout->num_slots(), Specs().size());
  EXPECT_EQ(layout->block_size() % layout->block_align(), 0u);
  EXPECT_GE(layout->block_align(), alignof(std::max_align_t));
  size_t end = 0;
  for (size_t i = 0; i < layout->num_slots(); ++i) {
    const agg::AggregateFunction& fn = layout->agg(i);
    EXPECT_EQ(fn.kind(), Specs()[i].kind);
    EXPECT_GT(fn.state_size(), 0u);
    EXPECT_EQ(layout->offset(i) % fn.state_align(), 0u) << "slot " << i;
    EXPECT_LE(fn.state_align(), layout->block_align()) << "slot " << i;
    EXPECT_GE(layout->offset(i), end) << "slot " << i << " overlaps the previous one";
    end = layout->offset(i) + fn.state_size();
  }
  EXPECT_LE(end, layout->block_size());

  OwnedBlock block(*layout);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(block.data()) % layout->block_align(), 0u);
}

TEST(TileLayout, EmptyLayoutHasANonEmptyBlock) {
  TileLayout layout({});
  EXPECT_EQ(layout.num_slots(), 0u);
  EXPECT_GE(layout.block_size(), 1u);
  OwnedBlock a(layout), b(layout);
  std::string bytes = SerializeBlock(layout, a.data());
  EXPECT_TRUE(layout.Deserialize(bytes, b.data()).ok());
  EXPECT_EQ(SerializeBlock(layout, b.data()), bytes);
}

TEST(TileLayout, SerializeRoundTripsByteIdentically) {
  auto layout = MakeLayout();
  for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{300}}) {
    Rows rows = MakeRows(n, 100 + n);
    OwnedBlock a(*layout);
    AddRows(*layout, a.data(), rows, 0, n);
    std::string bytes = SerializeBlock(*layout, a.data());

    OwnedBlock b(*layout);
    ASSERT_TRUE(layout->Deserialize(bytes, b.data()).ok()) << "n=" << n;
    EXPECT_EQ(SerializeBlock(*layout, b.data()), bytes) << "n=" << n;
    ExpectSameValues(FinalizeAll(*layout, a.data()), FinalizeAll(*layout, b.data()),
                     "n=" + std::to_string(n));

    // Deserialize replaces whatever the block held before.
    OwnedBlock c(*layout);
    AddRows(*layout, c.data(), MakeRows(50, 7), 0, 50);
    ASSERT_TRUE(layout->Deserialize(bytes, c.data()).ok()) << "n=" << n;
    EXPECT_EQ(SerializeBlock(*layout, c.data()), bytes) << "n=" << n;
  }
}

// Merging tiles equals aggregating the raw rows, for every split point.
TEST(TileLayout, MergeEqualsAddingAllRows) {
  auto layout = MakeLayout();
  constexpr size_t kRows = 300;
  Rows rows = MakeRows(kRows, 42);
  OwnedBlock all(*layout);
  AddRows(*layout, all.data(), rows, 0, kRows);
  const std::vector<Value> expected = FinalizeAll(*layout, all.data());
  ASSERT_EQ(expected[0], Value::Int64(kRows));

  for (size_t split : {size_t{0}, size_t{1}, size_t{150}, size_t{299}, kRows}) {
    OwnedBlock first(*layout), second(*layout);
    AddRows(*layout, first.data(), rows, 0, split);
    AddRows(*layout, second.data(), rows, split, kRows);
    layout->Merge(first.data(), second.data());
    ExpectSameValues(expected, FinalizeAll(*layout, first.data()),
                     "split=" + std::to_string(split));

    // Merging decoded tiles gives the same result as merging the in-memory ones.
    OwnedBlock a(*layout), b(*layout);
    OwnedBlock x(*layout), y(*layout);
    AddRows(*layout, x.data(), rows, 0, split);
    AddRows(*layout, y.data(), rows, split, kRows);
    ASSERT_TRUE(layout->Deserialize(SerializeBlock(*layout, x.data()), a.data()).ok());
    ASSERT_TRUE(layout->Deserialize(SerializeBlock(*layout, y.data()), b.data()).ok());
    layout->Merge(a.data(), b.data());
    ExpectSameValues(expected, FinalizeAll(*layout, a.data()),
                     "decoded, split=" + std::to_string(split));
  }
}

// Merging a tile's encoding into a block equals decoding it and merging, for every slot kind.
TEST(TileLayout, MergeSerializedEqualsDecodeThenMerge) {
  auto layout = MakeLayout();
  constexpr size_t kRows = 300;
  Rows rows = MakeRows(kRows, 77);
  for (size_t split : {size_t{0}, size_t{1}, size_t{150}, kRows}) {
    OwnedBlock x(*layout), y(*layout);
    AddRows(*layout, x.data(), rows, 0, split);
    AddRows(*layout, y.data(), rows, split, kRows);
    const std::string y_bytes = SerializeBlock(*layout, y.data());
    OwnedBlock expected(*layout), decoded(*layout);
    ASSERT_TRUE(layout->Deserialize(SerializeBlock(*layout, x.data()), expected.data()).ok());
    ASSERT_TRUE(layout->Deserialize(y_bytes, decoded.data()).ok());
    layout->Merge(expected.data(), decoded.data());
    ASSERT_TRUE(layout->MergeSerialized(y_bytes, x.data()).ok());
    EXPECT_EQ(SerializeBlock(*layout, x.data()), SerializeBlock(*layout, expected.data()))
        << "split=" << split;
  }
}

class TileLayoutCorrupt : public ::testing::Test {
 protected:
  void SetUp() override {
    layout_ = MakeLayout();
    OwnedBlock block(*layout_);
    AddRows(*layout_, block.data(), MakeRows(40, 3), 0, 40);
    bytes_ = SerializeBlock(*layout_, block.data());
    // Version byte, then a one-byte varint slot count.
    ASSERT_GE(bytes_.size(), 2u);
    ASSERT_EQ(static_cast<size_t>(static_cast<uint8_t>(bytes_[1])), Specs().size());
  }

  // Deserialize's error, after checking that MergeSerialized (into a non-empty block) fails
  // with the same one.
  absl::Status Decode(const std::string& bytes) {
    OwnedBlock block(*layout_);  // its destructor must cope with a half-decoded block
    absl::Status s = layout_->Deserialize(bytes, block.data());
    OwnedBlock merged(*layout_);  // nor a half-merged one
    AddRows(*layout_, merged.data(), MakeRows(20, 4), 0, 20);
    EXPECT_EQ(layout_->MergeSerialized(bytes, merged.data()), s);
    return s;
  }

  std::unique_ptr<TileLayout> layout_;
  std::string bytes_;
};

TEST_F(TileLayoutCorrupt, RejectsWrongVersion) {
  for (uint8_t v : {uint8_t{0}, uint8_t{3}, uint8_t{255}}) {
    std::string bytes = bytes_;
    bytes[0] = static_cast<char>(v);
    ExpectDataLoss(Decode(bytes), "unknown tile encoding version " + std::to_string(v),
                   "version " + std::to_string(v));
  }
}

TEST_F(TileLayoutCorrupt, RejectsWrongSlotCount) {
  for (uint8_t n : {uint8_t{0}, uint8_t{8}, uint8_t{10}}) {
    std::string bytes = bytes_;
    bytes[1] = static_cast<char>(n);
    ExpectDataLoss(Decode(bytes), "tile has " + std::to_string(n) + " aggregate slots",
                   "slot count " + std::to_string(n));
  }
}

TEST_F(TileLayoutCorrupt, RejectsEveryTruncation) {
  for (size_t len = 0; len < bytes_.size(); ++len) {
    absl::Status s = Decode(bytes_.substr(0, len));
    const std::string what =
        "prefix of " + std::to_string(len) + "/" + std::to_string(bytes_.size()) + " bytes";
    if (len == 0) {
      ExpectDataLoss(s, "tile version", what);
    } else if (len == 1) {
      ExpectDataLoss(s, "tile slot count", what);
    } else {
      // Some slot's state is cut short: the message names the slot and what was being read.
      ExpectDataLoss(s, "tile slot ", what);
    }
  }
}

TEST_F(TileLayoutCorrupt, RejectsTrailingBytes) {
  ExpectDataLoss(Decode(bytes_ + "x"), "tile has 1 trailing bytes", "1 trailing byte");
  ExpectDataLoss(Decode(bytes_ + bytes_), "trailing bytes", "tile twice");
}

// The layout of MakeLayout() plus the engine's newest-event-time slot, as engine::MakeTileLayout
// builds it for a view.
std::unique_ptr<TileLayout> MakeLayoutWithEngineSlot() {
  std::vector<std::unique_ptr<agg::AggregateFunction>> aggs;
  for (const SlotSpec& s : Specs()) aggs.push_back(*agg::MakeAggregate(s.kind, s.type, s.params));
  std::vector<EngineSlot> engine;
  engine.push_back(EngineSlot{*agg::MakeAggregate(AggKind::kNewestEventTime, DataType::kNull, {}),
                              agg::NewestEventTimeUnknownEncoding()});
  return std::make_unique<TileLayout>(std::move(aggs), std::move(engine));
}

// Adds rows to a MakeLayoutWithEngineSlot() block: the view's slots as AddRows does, the engine
// slot from the event times alone.
void AddRowsWithEngineSlot(const TileLayout& layout, std::byte* block, const Rows& rows) {
  std::vector<uint32_t> idx;
  for (size_t i = 0; i < rows.size(); ++i) idx.push_back(static_cast<uint32_t>(i));
  for (size_t s = 0; s < layout.num_slots(); ++s) {
    std::vector<std::byte*> states(idx.size(), block + layout.offset(s));
    const Column* arg = s < Specs().size() ? ArgColumn(rows, Specs()[s].arg) : nullptr;
    layout.agg(s).AddBatch(states.data(), arg, rows.event_time.data(), idx.data(), idx.size());
  }
}

// Tiles written before the engine kept its slots (encoding version 1, the view's aggregates
// only) still read: their aggregates as they were, the engine slot as its `absent` state, which
// for the newest event time is "unknown" and stays so through merges and re-encoding.
TEST(TileLayout, Version1TilesReadWithTheirEngineSlotsAbsent) {
  auto old_layout = MakeLayout();  // what an older build had for the view
  auto layout = MakeLayoutWithEngineSlot();
  ASSERT_EQ(layout->num_slots(), Specs().size() + 1);
  ASSERT_EQ(layout->num_engine_slots(), 1u);
  const size_t newest = Specs().size();
  Rows rows = MakeRows(60, 11);

  OwnedBlock old_block(*old_layout);
  AddRows(*old_layout, old_block.data(), rows, 0, rows.size());
  std::string v1 = SerializeBlock(*old_layout, old_block.data());
  ASSERT_EQ(v1[0], 2);
  v1[0] = 1;  // the same bytes an older build wrote: no engine slot, version 1

  OwnedBlock decoded(*layout);
  ASSERT_TRUE(layout->Deserialize(v1, decoded.data()).ok());
  std::vector<Value> values = FinalizeAll(*layout, decoded.data());
  ASSERT_EQ(values.size(), Specs().size() + 1);
  EXPECT_TRUE(values[newest].is_null());  // unknown
  values.pop_back();
  ExpectSameValues(FinalizeAll(*old_layout, old_block.data()), values, "version-1 tile");

  // Merged with a tile of this build, the newest time stays unknown (not the newer tile's).
  OwnedBlock fresh(*layout);
  AddRowsWithEngineSlot(*layout, fresh.data(), MakeRows(10, 12));
  ASSERT_FALSE(FinalizeAll(*layout, fresh.data())[newest].is_null());
  OwnedBlock merged(*layout);
  ASSERT_TRUE(layout->MergeSerialized(SerializeBlock(*layout, fresh.data()), merged.data()).ok());
  ASSERT_TRUE(layout->MergeSerialized(v1, merged.data()).ok());
  EXPECT_TRUE(FinalizeAll(*layout, merged.data())[newest].is_null());
  // Re-encoded (a read-merge-write, a rollup), it is a version-2 tile that says so.
  const std::string v2 = SerializeBlock(*layout, merged.data());
  EXPECT_EQ(v2[0], 2);
  OwnedBlock again(*layout);
  ASSERT_TRUE(layout->Deserialize(v2, again.data()).ok());
  EXPECT_TRUE(FinalizeAll(*layout, again.data())[newest].is_null());
  EXPECT_EQ(SerializeBlock(*layout, again.data()), v2);

  // A version-2 tile of this build holds the exact newest event time.
  OwnedBlock exact(*layout);
  AddRowsWithEngineSlot(*layout, exact.data(), rows);
  OwnedBlock exact_decoded(*layout);
  ASSERT_TRUE(
      layout->Deserialize(SerializeBlock(*layout, exact.data()), exact_decoded.data()).ok());
  EXPECT_EQ(FinalizeAll(*layout, exact_decoded.data())[newest],
            Value::Timestamp(*std::max_element(rows.event_time.begin(), rows.event_time.end())));

  // The slot count must match the version: a version-1 tile never has the engine slot, a
  // version-2 one always has it.
  std::string v1_with_engine_slot = v2;
  v1_with_engine_slot[0] = 1;
  EXPECT_EQ(layout->Deserialize(v1_with_engine_slot, again.data()).code(),
            absl::StatusCode::kDataLoss);
  std::string v2_without = v1;
  v2_without[0] = 2;
  ExpectDataLoss(layout->Deserialize(v2_without, again.data()),
                 "version-2 tile has " + std::to_string(Specs().size()) + " aggregate slots",
                 "version 2 without the engine slot");
  // A layout without the engine slot refuses a tile that has it, rather than drop it.
  OwnedBlock old_again(*old_layout);
  ExpectDataLoss(old_layout->Deserialize(v2, old_again.data()),
                 "version-2 tile has " + std::to_string(Specs().size() + 1) + " aggregate slots",
                 "a layout without the engine slot");
}

TEST(OwnedBlock, ResetGivesEmptyValues) {
  auto layout = MakeLayout();
  OwnedBlock fresh(*layout);
  const std::vector<Value> empty = FinalizeAll(*layout, fresh.data());
  ASSERT_EQ(empty[0], Value::Int64(0));
  EXPECT_TRUE(empty[1].is_null());
  EXPECT_EQ(empty[5], Value::List({}));
  EXPECT_EQ(empty[6], Value::Int64(0));
  EXPECT_EQ(empty[8], Value::List({}));

  OwnedBlock block(*layout);
  AddRows(*layout, block.data(), MakeRows(100, 9), 0, 100);
  ASSERT_NE(FinalizeAll(*layout, block.data()), empty);
  EXPECT_GT(layout->HeapBytes(block.data()), 0u);
  block.Reset();
  ExpectSameValues(empty, FinalizeAll(*layout, block.data()), "after Reset");
  EXPECT_EQ(SerializeBlock(*layout, block.data()), SerializeBlock(*layout, fresh.data()));
  EXPECT_EQ(layout->HeapBytes(block.data()), layout->HeapBytes(fresh.data()));
}

}  // namespace
}  // namespace tessera::tile
