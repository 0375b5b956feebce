#pragma once

// The behaviour every SlotStore must show (store/slot_store.h, docs/scale_out.md), as a
// value-parameterized GoogleTest suite. A backend's test file includes this header once and
// instantiates the suite with factories:
//
//   INSTANTIATE_TEST_SUITE_P(Memory, SlotStoreConformanceTest,
//                            ::testing::Values(SlotStoreFactory{...}), SlotStoreFactoryName);
//
// Each test gets a fresh, empty table and a store object on it (`store_`, made in its own
// scratch directory); Peer() opens another store object on the same table, standing for another
// process. The failure hooks of the factory are optional: the tests that need one skip without
// it.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/slot_store.h"
#include "store/tile_store.h"
#include "store/tile_store_conformance.h"

namespace tessera::store {

struct SlotStoreFactory {
  std::string name;  // test-name suffix: letters, digits, underscores
  // Makes a store object on a new, empty table that may keep files under `scratch_dir` (an
  // existing, empty directory that outlives the store). Its slots() must be non-null.
  std::function<std::unique_ptr<TileStore>(const std::string& scratch_dir)> make;
  // Opens another store object on the same table as `store` (made by `make` or `make_peer`):
  // another process. Claims through either fence the other.
  std::function<std::unique_ptr<TileStore>(TileStore& store)> make_peer;

  // Optional hooks, acting on the commits (CommitSlot and Write) of one store object.
  //
  // The next commit of `store` writes all of its cells and then fails with a non-OK status
  // before its commit row, like a process killed there.
  std::function<void(TileStore& store)> crash_before_next_commit_row;
  // The next commit of `store` is applied, then reports a non-OK status (an unknown outcome).
  std::function<void(TileStore& store)> fail_next_commit_after_applying;
  // Every later commit of `store` runs `hook(slot)` after writing its cells and before its
  // commit row, with no store lock held (it may read the store and claim through a peer).
  // An empty `hook` clears it.
  std::function<void(TileStore& store, std::function<void(std::string_view slot)> hook)>
      set_before_commit_hook;
};

inline std::string SlotStoreFactoryName(const ::testing::TestParamInfo<SlotStoreFactory>& info) {
  return info.param.name;
}

inline void PrintTo(const SlotStoreFactory& f, std::ostream* os) { *os << f.name; }

class SlotStoreConformanceTest : public ::testing::TestWithParam<SlotStoreFactory> {
 protected:
  using Tiles = conformance_internal::Tiles;
  using Metas = conformance_internal::Metas;
  using Values = std::vector<std::optional<std::string>>;

  void SetUp() override {
    store_ = GetParam().make(dir_.path().string());
    ASSERT_NE(store_, nullptr);
    ASSERT_NE(store_->slots(), nullptr);
  }
  void TearDown() override {
    peers_.clear();
    store_.reset();
  }

  static TileKey Key(int64_t start, std::string_view entity = "k",
                     Resolution res = Resolution::kBase) {
    return TileKey{1, std::string(entity), res, start};
  }

  // Another store object on the table (owned by the fixture).
  TileStore& Peer() {
    std::unique_ptr<TileStore> peer = GetParam().make_peer(*store_);
    EXPECT_NE(peer, nullptr);
    EXPECT_NE(peer->slots(), nullptr);
    peers_.push_back(std::move(peer));
    return *peers_.back();
  }

  static SlotClaim Claim(TileStore& store, std::string_view slot) {
    absl::StatusOr<SlotClaim> claim = store.slots()->ClaimSlot(slot);
    EXPECT_TRUE(claim.ok()) << claim.status();
    if (!claim.ok()) return SlotClaim{};
    EXPECT_EQ(claim->slot, slot);
    return *std::move(claim);
  }

  static WriteBatch Batch(std::vector<std::pair<TileKey, std::string>> tiles,
                          std::vector<std::pair<std::string, std::string>> meta = {},
                          std::vector<std::string> meta_deletes = {}) {
    WriteBatch b;
    b.tiles = std::move(tiles);
    b.meta = std::move(meta);
    b.meta_deletes = std::move(meta_deletes);
    return b;
  }

  static absl::Status Commit(TileStore& store, std::string_view slot, const WriteBatch& batch) {
    return store.slots()->CommitSlot(slot, batch);
  }

  static void ExpectFenced(const absl::Status& s) {
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
    EXPECT_NE(s.message().find("fenced"), std::string_view::npos) << s;
  }

  // Every (start, value) Scan reports for view 1, `entity`, `res`, sorted (the order of several
  // slots' cells within one start is not promised).
  Tiles ScanAll(TileStore& store, std::string_view entity = "k", Resolution res = Resolution::kBase,
                int64_t from = std::numeric_limits<int64_t>::min(),
                int64_t to = std::numeric_limits<int64_t>::max()) {
    Tiles out;
    absl::Status s = store.Scan(1, entity, res, from, to, [&](int64_t start, std::string_view v) {
      out.emplace_back(start, std::string(v));
    });
    EXPECT_TRUE(s.ok()) << s;
    std::stable_sort(out.begin(), out.end());
    return out;
  }
  Tiles ScanAll() { return ScanAll(*store_); }

  Tiles ScanAt(const StoreSnapshot* snapshot) {
    Tiles out;
    absl::Status s = store_->ScanAt(
        snapshot, 1, "k", Resolution::kBase, std::numeric_limits<int64_t>::min(),
        std::numeric_limits<int64_t>::max(),
        [&](int64_t start, std::string_view v) { out.emplace_back(start, std::string(v)); });
    EXPECT_TRUE(s.ok()) << s;
    std::sort(out.begin(), out.end());
    return out;
  }

  static Values GetSlot(TileStore& store, std::string_view slot, const std::vector<TileKey>& keys) {
    Values values(1, std::string("garbage"));
    absl::Status s = store.slots()->MultiGetSlot(slot, keys, &values);
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(values.size(), keys.size());
    return values;
  }

  static std::optional<std::string> Meta(TileStore& store, std::string_view key) {
    absl::StatusOr<std::optional<std::string>> v = store.GetMeta(key);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : std::nullopt;
  }
  std::optional<std::string> Meta(std::string_view key) { return Meta(*store_, key); }

  Metas MetaWithPrefix(std::string_view prefix) {
    Metas out;
    absl::Status s = store_->ScanMeta(prefix, [&](std::string_view k, std::string_view v) {
      out.emplace_back(std::string(k), std::string(v));
    });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  // `tiles` sorted, to compare with ScanAll.
  static Tiles T(Tiles tiles) {
    std::sort(tiles.begin(), tiles.end());
    return tiles;
  }

  ScopedTempDir dir_;
  std::unique_ptr<TileStore> store_;
  std::vector<std::unique_ptr<TileStore>> peers_;
};

TEST_P(SlotStoreConformanceTest, ClaimOfANewSlotHasNoMetaAndGenerationsIncrease) {
  TileStore& peer = Peer();
  SlotClaim first = Claim(*store_, "plays/plays/0");
  EXPECT_TRUE(first.meta.empty());
  SlotClaim second = Claim(peer, "plays/plays/0");
  SlotClaim third = Claim(*store_, "plays/plays/0");
  SlotClaim fourth = Claim(*store_, "plays/plays/0");
  EXPECT_GT(second.generation, first.generation);
  EXPECT_GT(third.generation, second.generation);
  EXPECT_GT(fourth.generation, third.generation);
  // Claiming alone changes nothing a reader sees.
  EXPECT_TRUE(MetaWithPrefix("").empty());
  EXPECT_TRUE(ScanAll().empty());
}

TEST_P(SlotStoreConformanceTest, ClaimReturnsTheCommittedMetaInKeyOrder) {
  Claim(*store_, "s");
  ASSERT_TRUE(Commit(*store_, "s",
                     Batch({}, {{"pos/b", "2"}, {"pos/a", "1"}, {"pos/c", "3"}, {"pos/a", "1b"}},
                           {"pos/c", "never-set"}))
                  .ok());
  SlotClaim again = Claim(Peer(), "s");
  EXPECT_EQ(again.meta, (Metas{{"pos/a", "1b"}, {"pos/b", "2"}}));
  // Each slot has its own metadata.
  EXPECT_TRUE(Claim(*store_, "other").meta.empty());
}

TEST_P(SlotStoreConformanceTest, CommitWithoutAClaimFailsAndChangesNothing) {
  EXPECT_FALSE(Commit(*store_, "s", Batch({{Key(0), "x"}}, {{"m", "1"}})).ok());
  Claim(Peer(), "s");  // a claim by another object is not this object's claim
  EXPECT_FALSE(Commit(*store_, "s", Batch({{Key(0), "x"}}, {{"m", "1"}})).ok());
  EXPECT_TRUE(ScanAll().empty());
  EXPECT_EQ(Meta("m"), std::nullopt);
  EXPECT_EQ(GetSlot(*store_, "s", {Key(0)}), Values{std::nullopt});
}

TEST_P(SlotStoreConformanceTest, CommitMakesCellsAndMetaVisibleTogether) {
  Claim(*store_, "s");
  ASSERT_TRUE(Commit(*store_, "s",
                     Batch({{Key(0), "a0"},
                            {Key(300000), "a1"},
                            {Key(0, "k", Resolution::kHour), "h0"},
                            {Key(300000), "a1-later"}},
                           {{"off", "10"}}))
                  .ok());
  EXPECT_EQ(ScanAll(), T({{0, "a0"}, {300000, "a1-later"}}));  // within a batch the later wins
  EXPECT_EQ(ScanAll(*store_, "k", Resolution::kHour), T({{0, "h0"}}));
  EXPECT_EQ(ScanAll(*store_, "k", Resolution::kBase, 1, 300001), T({{300000, "a1-later"}}));
  EXPECT_EQ(Meta("off"), "10");
  EXPECT_EQ(GetSlot(*store_, "s", {Key(0), Key(600000), Key(300000)}),
            (Values{"a0", std::nullopt, "a1-later"}));
  // Another process sees the same.
  TileStore& peer = Peer();
  EXPECT_EQ(ScanAll(peer), T({{0, "a0"}, {300000, "a1-later"}}));
  EXPECT_EQ(Meta(peer, "off"), "10");

  // The next commit replaces the slot's cells it names and keeps the others.
  ASSERT_TRUE(Commit(*store_, "s", Batch({{Key(0), "b0"}}, {{"off", "11"}})).ok());
  EXPECT_EQ(ScanAll(), T({{0, "b0"}, {300000, "a1-later"}}));
  EXPECT_EQ(Meta("off"), "11");
  // An empty commit succeeds while the claim holds.
  EXPECT_TRUE(Commit(*store_, "s", WriteBatch{}).ok());
}

// A zombie: the owner keeps writing after another process claimed its slot.
TEST_P(SlotStoreConformanceTest, AFencedOwnersCommitsFailAndItsCellsStayInvisible) {
  TileStore& next = Peer();
  Claim(*store_, "s");
  ASSERT_TRUE(Commit(*store_, "s", Batch({{Key(0), "old0"}}, {{"off", "1"}})).ok());

  SlotClaim claim = Claim(next, "s");
  EXPECT_EQ(claim.meta, (Metas{{"off", "1"}}));

  ExpectFenced(
      Commit(*store_, "s", Batch({{Key(0), "zombie0"}, {Key(300000), "zombie1"}}, {{"off", "2"}})));
  EXPECT_EQ(ScanAll(), T({{0, "old0"}}));
  EXPECT_EQ(Meta("off"), "1");
  EXPECT_EQ(GetSlot(next, "s", {Key(0), Key(300000)}), (Values{"old0", std::nullopt}));

  // The new owner commits other tiles: the zombie's cells stay invalid.
  ASSERT_TRUE(Commit(next, "s", Batch({{Key(600000), "new2"}}, {{"off", "5"}})).ok());
  EXPECT_EQ(ScanAll(), T({{0, "old0"}, {600000, "new2"}}));
  EXPECT_EQ(GetSlot(*store_, "s", {Key(0), Key(300000), Key(600000)}),
            (Values{"old0", std::nullopt, "new2"}));
  EXPECT_EQ(Meta("off"), "5");

  // The fenced object lost its claim: committing again fails without a new claim.
  EXPECT_FALSE(Commit(*store_, "s", Batch({{Key(300000), "zombie1b"}}, {{"off", "3"}})).ok());
  EXPECT_EQ(ScanAll(), T({{0, "old0"}, {600000, "new2"}}));
  EXPECT_EQ(Meta("off"), "5");

  // The new owner's cell of the tile the zombie wrote replaces the old one.
  ASSERT_TRUE(Commit(next, "s", Batch({{Key(0), "new0"}})).ok());
  EXPECT_EQ(ScanAll(), T({{0, "new0"}, {600000, "new2"}}));

  // Claiming again fences the other way round.
  EXPECT_EQ(Claim(*store_, "s").meta, (Metas{{"off", "5"}}));
  ExpectFenced(Commit(next, "s", Batch({{Key(0), "fenced"}}, {{"off", "9"}})));
  ASSERT_TRUE(Commit(*store_, "s", Batch({{Key(300000), "back1"}}, {{"off", "6"}})).ok());
  EXPECT_EQ(ScanAll(), T({{0, "new0"}, {300000, "back1"}, {600000, "new2"}}));
  EXPECT_EQ(Meta("off"), "6");
}

TEST_P(SlotStoreConformanceTest, FencingIsPerSlot) {
  TileStore& peer = Peer();
  Claim(*store_, "a");
  Claim(*store_, "b");
  Claim(peer, "b");
  ExpectFenced(Commit(*store_, "b", Batch({{Key(0), "b"}})));
  ASSERT_TRUE(Commit(*store_, "a", Batch({{Key(0), "a"}})).ok());
  EXPECT_EQ(ScanAll(), T({{0, "a"}}));
}

TEST_P(SlotStoreConformanceTest, TheNewerGenerationsValidCellWins) {
  Claim(*store_, "s");
  ASSERT_TRUE(Commit(*store_, "s", Batch({{Key(0), "g1-a"}})).ok());
  ASSERT_TRUE(Commit(*store_, "s", Batch({{Key(0), "g1-b"}})).ok());
  TileStore& peer = Peer();
  Claim(peer, "s");
  EXPECT_EQ(GetSlot(peer, "s", {Key(0)}), Values{"g1-b"});
  ASSERT_TRUE(Commit(peer, "s", Batch({{Key(0), "g2"}})).ok());
  EXPECT_EQ(ScanAll(), T({{0, "g2"}}));  // one cell per slot, the newest valid
  // A restart of the first process: a new claim by the same object.
  Claim(*store_, "s");
  EXPECT_EQ(GetSlot(*store_, "s", {Key(0)}), Values{"g2"});
  ASSERT_TRUE(Commit(*store_, "s", Batch({{Key(0), "g3"}})).ok());
  EXPECT_EQ(ScanAll(), T({{0, "g3"}}));
  EXPECT_EQ(GetSlot(peer, "s", {Key(0)}), Values{"g3"});
}

TEST_P(SlotStoreConformanceTest, ScanReportsOneCellPerSlotOfATile) {
  // Slot names that are prefixes of each other, and the default slot.
  const std::vector<std::string> slots = {"p/1", "p/10", "p", "p/1/x"};
  TileStore& peer = Peer();
  for (size_t i = 0; i < slots.size(); ++i) {
    TileStore& owner = i % 2 == 0 ? *store_ : peer;
    Claim(owner, slots[i]);
    ASSERT_TRUE(
        Commit(owner, slots[i], Batch({{Key(0), slots[i] + "@0"}, {Key(300000), slots[i] + "@1"}}))
            .ok());
  }
  ASSERT_TRUE(store_->Write(Batch({{Key(0), "default@0"}})).ok());
  // A second commit of one slot still leaves one cell of that slot.
  ASSERT_TRUE(Commit(*store_, "p/1", Batch({{Key(0), "p/1@0b"}})).ok());

  EXPECT_EQ(ScanAll(), T({{0, "default@0"},
                          {0, "p/10@0"},
                          {0, "p/1/x@0"},
                          {0, "p/1@0b"},
                          {0, "p@0"},
                          {300000, "p/10@1"},
                          {300000, "p/1/x@1"},
                          {300000, "p/1@1"},
                          {300000, "p@1"}}));
  // Starts come in increasing order, all of one start before the next.
  std::vector<int64_t> starts;
  ASSERT_TRUE(store_
                  ->Scan(1, "k", Resolution::kBase, std::numeric_limits<int64_t>::min(),
                         std::numeric_limits<int64_t>::max(),
                         [&](int64_t start, std::string_view) { starts.push_back(start); })
                  .ok());
  EXPECT_TRUE(std::is_sorted(starts.begin(), starts.end()));
  EXPECT_EQ(ScanAll(*store_, "k", Resolution::kBase, 1, 300001).size(), 4u);
  EXPECT_TRUE(ScanAll(*store_, "k", Resolution::kHour).empty());
  EXPECT_TRUE(ScanAll(*store_, "k2").empty());
}

TEST_P(SlotStoreConformanceTest, MultiGetSlotSeesOnlyItsOwnCommittedCells) {
  Claim(*store_, "a");
  Claim(*store_, "ab");
  ASSERT_TRUE(Commit(*store_, "a", Batch({{Key(0), "a0"}, {Key(300000), "a1"}})).ok());
  ASSERT_TRUE(Commit(*store_, "ab", Batch({{Key(0), "ab0"}, {Key(0, "k2"), ""}})).ok());
  ASSERT_TRUE(store_->Write(Batch({{Key(600000), "d2"}})).ok());

  const std::vector<TileKey> keys = {Key(0),       Key(300000), Key(600000),
                                     Key(0, "k2"), Key(0),      Key(0, "k", Resolution::kHour)};
  EXPECT_EQ(GetSlot(*store_, "a", keys),
            (Values{"a0", "a1", std::nullopt, std::nullopt, "a0", std::nullopt}));
  EXPECT_EQ(GetSlot(*store_, "ab", keys),
            (Values{"ab0", std::nullopt, std::nullopt, "", "ab0", std::nullopt}));
  EXPECT_EQ(GetSlot(*store_, "", keys),
            (Values{std::nullopt, std::nullopt, "d2", std::nullopt, std::nullopt, std::nullopt}));
  EXPECT_EQ(GetSlot(*store_, "never-claimed", keys), Values(keys.size(), std::nullopt));
  EXPECT_TRUE(GetSlot(*store_, "a", {}).empty());
  // MultiGet is the default slot's MultiGetSlot.
  Values values;
  ASSERT_TRUE(store_->MultiGet(keys, &values).ok());
  EXPECT_EQ(values, GetSlot(*store_, "", keys));
}

TEST_P(SlotStoreConformanceTest, MetaOfEverySlotIsVisible) {
  TileStore& peer = Peer();
  Claim(*store_, "plays/plays/0");
  Claim(peer, "plays/plays/1");
  ASSERT_TRUE(
      Commit(*store_, "plays/plays/0", Batch({}, {{"pos/plays/0", "17"}, {"shared", "p0"}})).ok());
  ASSERT_TRUE(
      Commit(peer, "plays/plays/1", Batch({}, {{"pos/plays/1", "4"}, {"shared", "p1"}})).ok());
  ASSERT_TRUE(store_->Write(Batch({}, {{"catalog/views/1", "v"}})).ok());

  EXPECT_EQ(Meta("pos/plays/0"), "17");
  EXPECT_EQ(Meta(peer, "pos/plays/1"), "4");
  EXPECT_EQ(Meta("catalog/views/1"), "v");
  EXPECT_EQ(MetaWithPrefix("pos/"), (Metas{{"pos/plays/0", "17"}, {"pos/plays/1", "4"}}));

  // A key several slots hold: the default slot's value, and one entry in ScanMeta.
  ASSERT_TRUE(store_->Write(Batch({}, {{"shared", "default"}})).ok());
  EXPECT_EQ(Meta("shared"), "default");
  EXPECT_EQ(MetaWithPrefix(""), (Metas{{"catalog/views/1", "v"},
                                       {"pos/plays/0", "17"},
                                       {"pos/plays/1", "4"},
                                       {"shared", "default"}}));

  // A slot's deletes touch only its own metadata.
  ASSERT_TRUE(Commit(peer, "plays/plays/1", Batch({}, {}, {"pos/plays/1", "pos/plays/0"})).ok());
  EXPECT_EQ(Meta("pos/plays/1"), std::nullopt);
  EXPECT_EQ(Meta("pos/plays/0"), "17");
  ASSERT_TRUE(store_->Write(Batch({}, {}, {"shared"})).ok());
  EXPECT_EQ(MetaWithPrefix("pos/"), (Metas{{"pos/plays/0", "17"}}));
  EXPECT_EQ(Claim(*store_, "plays/plays/1").meta, (Metas{{"shared", "p1"}}));
}

TEST_P(SlotStoreConformanceTest, WriteOnTheDefaultSlotCoexistsWithSlotCommits) {
  TileStore& peer = Peer();
  ASSERT_TRUE(store_->Write(Batch({{Key(0), "d1"}}, {{"catalog", "1"}})).ok());
  Claim(*store_, "s");
  ASSERT_TRUE(Commit(*store_, "s", Batch({{Key(0), "s1"}}, {{"pos", "1"}})).ok());
  // Another process writes the default slot: each Write wins over the one before it, whichever
  // process made it, and no Write fails for having been fenced by the other.
  ASSERT_TRUE(peer.Write(Batch({{Key(0), "d2"}}, {{"catalog", "2"}})).ok());
  EXPECT_EQ(ScanAll(), T({{0, "d2"}, {0, "s1"}}));
  ASSERT_TRUE(store_->Write(Batch({{Key(0), "d3"}}, {{"catalog", "3"}})).ok());
  EXPECT_EQ(ScanAll(), T({{0, "d3"}, {0, "s1"}}));
  Claim(peer, "");  // an explicit claim of the default slot
  ASSERT_TRUE(store_->Write(Batch({{Key(300000), "d4"}})).ok());
  ASSERT_TRUE(peer.Write(Batch({{Key(0), "d5"}})).ok());
  EXPECT_EQ(ScanAll(), T({{0, "d5"}, {0, "s1"}, {300000, "d4"}}));
  EXPECT_EQ(Meta("catalog"), "3");
  EXPECT_EQ(Meta("pos"), "1");
  // The slot's commits are untouched by the default slot's writers.
  ASSERT_TRUE(Commit(*store_, "s", Batch({{Key(0), "s2"}})).ok());
  EXPECT_EQ(ScanAll(), T({{0, "d5"}, {0, "s2"}, {300000, "d4"}}));
}

// Readers never see half of a Write nor half of a slot commit, while both run concurrently.
TEST_P(SlotStoreConformanceTest, WritesAndCommitsAreAtomicUnderConcurrency) {
  constexpr int kRounds = 200;
  const TileKey a = Key(0);
  const TileKey b = Key(300000);
  std::atomic<bool> done{false};
  std::atomic<int> torn{0};
  std::atomic<int> reads{0};
  auto reader = [&] {
    while (!done.load()) {
      Values values;
      if (!store_->MultiGet({a, b}, &values).ok() || values[0] != values[1]) torn.fetch_add(1);
      if (!store_->slots()->MultiGetSlot("s", {a, b}, &values).ok() || values[0] != values[1]) {
        torn.fetch_add(1);
      }
      std::map<int64_t, std::vector<std::string>> by_start;
      absl::Status s =
          store_->Scan(1, "k", Resolution::kBase, 0, 600000,
                       [&](int64_t start, std::string_view v) { by_start[start].emplace_back(v); });
      for (auto& [start, vs] : by_start) std::sort(vs.begin(), vs.end());
      if (!s.ok() ||
          (!by_start.empty() &&
           (by_start.size() != 2 || by_start.begin()->second != by_start.rbegin()->second))) {
        torn.fetch_add(1);
      }
      reads.fetch_add(1);
    }
  };
  std::thread r1(reader);
  std::thread r2(reader);
  // Each writer goes on past kRounds until the readers have read a few times while it wrote (a
  // loaded machine may not schedule them before).
  auto more = [&](int i) { return i < kRounds || reads.load() < 10; };
  absl::Status commit_status;
  int last_commit = -1;
  TileStore& peer = Peer();
  std::thread committer([&] {
    absl::StatusOr<SlotClaim> claim = peer.slots()->ClaimSlot("s");
    commit_status = claim.status();
    for (int i = 0; commit_status.ok() && more(i); ++i) {
      const std::string v = fmt::format("s{}", i);
      commit_status = peer.slots()->CommitSlot("s", Batch({{a, v}, {b, v}}, {{"s", v}}));
      last_commit = i;
    }
  });
  absl::Status write_status;
  int last_write = -1;
  for (int i = 0; write_status.ok() && more(i); ++i) {
    const std::string v = fmt::format("d{}", i);
    write_status = store_->Write(Batch({{a, v}, {b, v}}, {{"d", v}}));
    last_write = i;
  }
  committer.join();
  done.store(true);
  r1.join();
  r2.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_GT(reads.load(), 0);
  ASSERT_TRUE(write_status.ok()) << write_status;
  ASSERT_TRUE(commit_status.ok()) << commit_status;
  EXPECT_EQ(ScanAll(), T({{0, fmt::format("d{}", last_write)},
                          {0, fmt::format("s{}", last_commit)},
                          {300000, fmt::format("d{}", last_write)},
                          {300000, fmt::format("s{}", last_commit)}}));
}

TEST_P(SlotStoreConformanceTest, DistinctSlotsCommitConcurrently) {
  constexpr int kSlots = 4;
  constexpr int kCommits = 50;
  std::vector<std::thread> threads;
  threads.reserve(kSlots);
  std::vector<absl::Status> results(kSlots);
  for (int s = 0; s < kSlots; ++s) {
    threads.emplace_back([&, s] {
      const std::string slot = fmt::format("src/topic/{}", s);
      absl::StatusOr<SlotClaim> claim = store_->slots()->ClaimSlot(slot);
      results[s] = claim.status();
      for (int i = 0; results[s].ok() && i < kCommits; ++i) {
        results[s] = store_->slots()->CommitSlot(slot, Batch({{Key(0), fmt::format("{}:{}", s, i)}},
                                                             {{"pos/" + slot, std::to_string(i)}}));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  Tiles expected;
  for (int s = 0; s < kSlots; ++s) {
    ASSERT_TRUE(results[s].ok()) << results[s];
    expected.emplace_back(0, fmt::format("{}:{}", s, kCommits - 1));
    EXPECT_EQ(Meta(fmt::format("pos/src/topic/{}", s)), std::to_string(kCommits - 1));
  }
  EXPECT_EQ(ScanAll(), expected);
}

TEST_P(SlotStoreConformanceTest, SnapshotReadsIgnoreLaterCommits) {
  Claim(*store_, "s");
  ASSERT_TRUE(Commit(*store_, "s", Batch({{Key(0), "s1"}})).ok());
  ASSERT_TRUE(store_->Write(Batch({{Key(0), "d1"}})).ok());
  std::shared_ptr<const StoreSnapshot> snap = store_->GetSnapshot();
  ASSERT_NE(snap, nullptr);

  ASSERT_TRUE(Commit(*store_, "s", Batch({{Key(0), "s2"}, {Key(300000), "s2"}})).ok());
  ASSERT_TRUE(store_->Write(Batch({{Key(0), "d2"}})).ok());
  TileStore& peer = Peer();
  Claim(peer, "t");
  ASSERT_TRUE(Commit(peer, "t", Batch({{Key(0), "t1"}})).ok());
  Claim(peer, "s");  // fences the snapshot's owner of "s"
  ASSERT_TRUE(Commit(peer, "s", Batch({{Key(0), "s3"}})).ok());

  EXPECT_EQ(ScanAt(snap.get()), T({{0, "d1"}, {0, "s1"}}));
  EXPECT_EQ(ScanAt(nullptr), T({{0, "d2"}, {0, "s3"}, {0, "t1"}, {300000, "s2"}}));
}

// The owner dies after writing its cells, before the commit row.
TEST_P(SlotStoreConformanceTest, ACrashBeforeTheCommitRowLeavesThePreviousCommit) {
  if (!GetParam().crash_before_next_commit_row) GTEST_SKIP() << "no crash hook";
  Claim(*store_, "s");
  ASSERT_TRUE(Commit(*store_, "s", Batch({{Key(0), "c1"}}, {{"off", "1"}})).ok());
  GetParam().crash_before_next_commit_row(*store_);
  EXPECT_FALSE(
      Commit(*store_, "s", Batch({{Key(0), "lost0"}, {Key(300000), "lost1"}}, {{"off", "2"}}))
          .ok());
  EXPECT_EQ(ScanAll(), T({{0, "c1"}}));
  EXPECT_EQ(Meta("off"), "1");
  EXPECT_EQ(GetSlot(*store_, "s", {Key(0), Key(300000)}), (Values{"c1", std::nullopt}));

  // The next owner (another process, or this one restarted) starts from the previous commit,
  // and the dead flush's cells never become valid, whatever it commits.
  TileStore& next = Peer();
  EXPECT_EQ(Claim(next, "s").meta, (Metas{{"off", "1"}}));
  ASSERT_TRUE(Commit(next, "s", Batch({{Key(600000), "n2"}}, {{"off", "2"}})).ok());
  EXPECT_EQ(ScanAll(), T({{0, "c1"}, {600000, "n2"}}));
  EXPECT_EQ(Claim(*store_, "s").meta, (Metas{{"off", "2"}}));
  ASSERT_TRUE(Commit(*store_, "s", Batch({{Key(900000), "r3"}})).ok());
  ASSERT_TRUE(Commit(*store_, "s", Batch({{Key(1200000), "r4"}})).ok());
  EXPECT_EQ(ScanAll(), T({{0, "c1"}, {600000, "n2"}, {900000, "r3"}, {1200000, "r4"}}));
}

TEST_P(SlotStoreConformanceTest, ACrashBeforeTheCommitRowOfAWriteLeavesNothing) {
  if (!GetParam().crash_before_next_commit_row) GTEST_SKIP() << "no crash hook";
  ASSERT_TRUE(store_->Write(Batch({{Key(0), "d1"}}, {{"catalog", "1"}})).ok());
  GetParam().crash_before_next_commit_row(*store_);
  EXPECT_FALSE(store_->Write(Batch({{Key(0), "lost"}, {Key(1), "lost"}}, {{"catalog", "2"}})).ok());
  EXPECT_EQ(ScanAll(), T({{0, "d1"}}));
  EXPECT_EQ(Meta("catalog"), "1");
  // The store keeps working: the next Write claims the default slot again.
  ASSERT_TRUE(store_->Write(Batch({{Key(300000), "d2"}})).ok());
  EXPECT_EQ(ScanAll(), T({{0, "d1"}, {300000, "d2"}}));
}

// The commit happened, but its caller got an error: claiming again shows what was committed.
TEST_P(SlotStoreConformanceTest, AnUnknownOutcomeIsResolvedByClaimingAgain) {
  if (!GetParam().fail_next_commit_after_applying) GTEST_SKIP() << "no fault hook";
  Claim(*store_, "s");
  GetParam().fail_next_commit_after_applying(*store_);
  EXPECT_FALSE(Commit(*store_, "s", Batch({{Key(0), "c1"}}, {{"off", "1"}})).ok());
  EXPECT_EQ(Claim(*store_, "s").meta, (Metas{{"off", "1"}}));
  EXPECT_EQ(GetSlot(*store_, "s", {Key(0)}), Values{"c1"});
  ASSERT_TRUE(Commit(*store_, "s", Batch({{Key(0), "c2"}}, {{"off", "2"}})).ok());
  EXPECT_EQ(ScanAll(), T({{0, "c2"}}));
}

TEST_P(SlotStoreConformanceTest, ReadersDuringAFlushSeeThePreviousCommit) {
  if (!GetParam().set_before_commit_hook) GTEST_SKIP() << "no before-commit hook";
  Claim(*store_, "s");
  ASSERT_TRUE(Commit(*store_, "s", Batch({{Key(0), "c1"}}, {{"off", "1"}})).ok());
  TileStore& reader = Peer();
  int calls = 0;
  GetParam().set_before_commit_hook(*store_, [&](std::string_view slot) {
    ++calls;
    EXPECT_EQ(slot, "s");
    EXPECT_EQ(ScanAll(reader), T({{0, "c1"}}));
    EXPECT_EQ(ScanAll(*store_), T({{0, "c1"}}));
    EXPECT_EQ(GetSlot(reader, "s", {Key(0), Key(300000)}), (Values{"c1", std::nullopt}));
    EXPECT_EQ(Meta(reader, "off"), "1");
  });
  ASSERT_TRUE(
      Commit(*store_, "s", Batch({{Key(0), "c2"}, {Key(300000), "c2"}}, {{"off", "2"}})).ok());
  GetParam().set_before_commit_hook(*store_, nullptr);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(ScanAll(reader), T({{0, "c2"}, {300000, "c2"}}));
  EXPECT_EQ(Meta(reader, "off"), "2");
}

// Another process claims the slot between the owner's cell writes and its commit row.
TEST_P(SlotStoreConformanceTest, AClaimBetweenCellsAndCommitFencesTheCommit) {
  if (!GetParam().set_before_commit_hook) GTEST_SKIP() << "no before-commit hook";
  Claim(*store_, "s");
  ASSERT_TRUE(Commit(*store_, "s", Batch({{Key(0), "c1"}}, {{"off", "1"}})).ok());
  TileStore& next = Peer();
  SlotClaim claim;
  GetParam().set_before_commit_hook(*store_, [&](std::string_view) { claim = Claim(next, "s"); });
  ExpectFenced(Commit(*store_, "s", Batch({{Key(0), "z"}, {Key(300000), "z"}}, {{"off", "2"}})));
  GetParam().set_before_commit_hook(*store_, nullptr);
  EXPECT_EQ(claim.meta, (Metas{{"off", "1"}}));
  EXPECT_EQ(ScanAll(), T({{0, "c1"}}));
  ASSERT_TRUE(Commit(next, "s", Batch({{Key(600000), "n"}}, {{"off", "3"}})).ok());
  EXPECT_EQ(ScanAll(), T({{0, "c1"}, {600000, "n"}}));
  EXPECT_EQ(Meta("off"), "3");
}

// A Write of the default slot that another writer fences mid-flight claims again and retries.
TEST_P(SlotStoreConformanceTest, AFencedWriteRetriesAndLandsWhole) {
  if (!GetParam().set_before_commit_hook) GTEST_SKIP() << "no before-commit hook";
  TileStore& other = Peer();
  ASSERT_TRUE(store_->Write(Batch({{Key(0), "d1"}})).ok());
  int calls = 0;
  GetParam().set_before_commit_hook(*store_, [&](std::string_view slot) {
    EXPECT_EQ(slot, "");
    if (++calls == 1) {
      EXPECT_TRUE(other.Write(Batch({{Key(0), "other"}}, {{"m", "other"}})).ok());
    }
  });
  ASSERT_TRUE(store_->Write(Batch({{Key(0), "d2"}, {Key(300000), "d2"}}, {{"m", "d2"}})).ok());
  GetParam().set_before_commit_hook(*store_, nullptr);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(ScanAll(), T({{0, "d2"}, {300000, "d2"}}));
  EXPECT_EQ(Meta("m"), "d2");
}

}  // namespace tessera::store
