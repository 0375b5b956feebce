#pragma once

// The behaviour every EventLog must show, as a value-parameterized GoogleTest suite. A backend's
// test file includes this header once and instantiates the suite with factories:
//
//   INSTANTIATE_TEST_SUITE_P(Memory, EventLogConformanceTest,
//                            ::testing::Values(EventLogFactory{"Default", MakeMemoryLog}),
//                            EventLogFactoryName);
//
// Each test gets a fresh, empty store (both a TileStore and an EventLog over the same data) in
// its own scratch directory. Behaviour that needs a reopen or a crash is backend-specific and
// tested beside the backend.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "store/event_log.h"
#include "store/tile_store.h"
#include "store/tile_store_conformance.h"  // ScopedTempDir

namespace tessera::store {

// One opened store seen through both interfaces; `log` points into `store`.
struct EventLogStores {
  std::unique_ptr<TileStore> store;
  EventLog* log = nullptr;
};

struct EventLogFactory {
  std::string name;  // test-name suffix: letters, digits, underscores
  // Makes an empty store that keeps files under `scratch_dir` and remembers batch ids for
  // `batch_id_retention_entries` entries past a Trim (see RocksDbOptions).
  std::function<EventLogStores(const std::string& scratch_dir, uint64_t batch_id_retention_entries)>
      make;
};

inline std::string EventLogFactoryName(const ::testing::TestParamInfo<EventLogFactory>& info) {
  return info.param.name;
}

inline void PrintTo(const EventLogFactory& f, std::ostream* os) { *os << f.name; }

class EventLogConformanceTest : public ::testing::TestWithParam<EventLogFactory> {
 protected:
  using Entries = std::vector<std::pair<uint64_t, std::string>>;

  void SetUp() override { Open(1'000'000); }
  void TearDown() override { stores_ = {}; }

  void Open(uint64_t retention) {
    stores_ = {};
    stores_ = GetParam().make(dir_.Sub(fmt::format("store{}", opened_++)), retention);
    ASSERT_NE(stores_.store, nullptr);
    ASSERT_NE(stores_.log, nullptr);
  }

  EventLog& log() { return *stores_.log; }
  TileStore& tiles() { return *stores_.store; }

  AppendResult Append(std::string_view source, std::string_view payload,
                      std::string_view batch_id = "", int64_t accepted = 1, int64_t rejected = 0) {
    absl::StatusOr<AppendResult> r = log().Append(source, batch_id, payload, accepted, rejected);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : AppendResult{};
  }

  Entries ReadAll(std::string_view source, uint64_t after = 0,
                  size_t max_bytes = std::numeric_limits<size_t>::max()) {
    Entries out;
    absl::Status s = log().Read(source, after, max_bytes, [&](uint64_t seq, std::string_view p) {
      out.emplace_back(seq, std::string(p));
    });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  uint64_t Last(std::string_view source) {
    absl::StatusOr<uint64_t> last = log().LastSeq(source);
    EXPECT_TRUE(last.ok()) << last.status();
    return last.ok() ? *last : 0;
  }

  ScopedTempDir dir_;
  int opened_ = 0;
  EventLogStores stores_;
};

TEST_P(EventLogConformanceTest, EmptyLogHasNothing) {
  EXPECT_EQ(Last("plays"), 0u);
  EXPECT_TRUE(ReadAll("plays").empty());
  EXPECT_TRUE(log().Trim("plays", 10).ok());
  EXPECT_EQ(Last("plays"), 0u);
  EXPECT_EQ(Append("plays", "x").seq, 1u);  // a Trim past the end does not move seqs
}

TEST_P(EventLogConformanceTest, AppendsReadBackInOrder) {
  const std::vector<std::string> payloads = {"{\"a\":1}\n", "", std::string("\0\xff\n", 3),
                                             "{\"b\":2}\n{\"b\":3}\n"};
  for (size_t i = 0; i < payloads.size(); ++i) {
    AppendResult r =
        Append("plays", payloads[i], "", static_cast<int64_t>(i) * 10, static_cast<int64_t>(i));
    EXPECT_EQ(r.seq, i + 1);
    EXPECT_EQ(r.accepted, static_cast<int64_t>(i) * 10);
    EXPECT_EQ(r.rejected, static_cast<int64_t>(i));
    EXPECT_FALSE(r.duplicate);
  }
  Entries all = ReadAll("plays");
  ASSERT_EQ(all.size(), payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) {
    EXPECT_EQ(all[i].first, i + 1);
    EXPECT_EQ(all[i].second, payloads[i]);
  }
  EXPECT_EQ(Last("plays"), payloads.size());
}

TEST_P(EventLogConformanceTest, ReadsFromAPosition) {
  for (int i = 1; i <= 5; ++i) Append("s", fmt::format("p{}", i));
  Entries tail = ReadAll("s", 3);
  ASSERT_EQ(tail.size(), 2u);
  EXPECT_EQ(tail[0], (std::pair<uint64_t, std::string>(4, "p4")));
  EXPECT_EQ(tail[1], (std::pair<uint64_t, std::string>(5, "p5")));
  EXPECT_TRUE(ReadAll("s", 5).empty());
  EXPECT_TRUE(ReadAll("s", 100).empty());
  EXPECT_TRUE(ReadAll("s", std::numeric_limits<uint64_t>::max()).empty());
}

TEST_P(EventLogConformanceTest, MaxBytesPagesAndReturnsAtLeastOneEntry) {
  for (int i = 1; i <= 10; ++i) Append("s", std::string(100, static_cast<char>('a' + i)));
  // Stops as soon as max_bytes is reached: 100 + 100 < 250 <= 300.
  EXPECT_EQ(ReadAll("s", 0, 250).size(), 3u);
  EXPECT_EQ(ReadAll("s", 0, 200).size(), 2u);
  EXPECT_EQ(ReadAll("s", 0, 0).size(), 1u);
  EXPECT_EQ(ReadAll("s", 0, 1).size(), 1u);

  Entries paged;
  uint64_t pos = 0;
  for (int pages = 0; pages < 20; ++pages) {
    Entries page = ReadAll("s", pos, 250);
    if (page.empty()) break;
    EXPECT_LE(page.size(), 3u);
    pos = page.back().first;
    paged.insert(paged.end(), page.begin(), page.end());
  }
  EXPECT_EQ(paged, ReadAll("s"));
  EXPECT_EQ(paged.size(), 10u);
}

TEST_P(EventLogConformanceTest, LargeBinaryPayloadsRoundTrip) {
  std::mt19937 rng(7);
  std::vector<std::string> payloads;
  for (size_t size : {size_t{1300} << 10, size_t{1}, size_t{3} << 20}) {
    std::string p(size, '\0');
    for (char& c : p) c = static_cast<char>(rng());
    payloads.push_back(std::move(p));
    Append("big", payloads.back(), fmt::format("batch-{}", size));
  }
  Entries all = ReadAll("big");
  ASSERT_EQ(all.size(), payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) EXPECT_TRUE(all[i].second == payloads[i]) << i;
}

TEST_P(EventLogConformanceTest, SourcesAreIndependent) {
  const std::vector<std::string> sources = {
      "a", "ab", "", "b", std::string("a\0b", 3), "\xff", std::string(300, 's')};
  for (int round = 1; round <= 3; ++round) {
    for (const std::string& s : sources) {
      AppendResult r = Append(s, fmt::format("{}:{}", s.size(), round), "same-batch-id");
      EXPECT_EQ(r.seq, 1u) << s.size();  // the batch id is per source
      EXPECT_EQ(r.duplicate, round > 1);
      EXPECT_EQ(Append(s, fmt::format("{}:{}", s.size(), round)).seq,
                static_cast<uint64_t>(round + 1));
    }
  }
  for (const std::string& s : sources) {
    Entries all = ReadAll(s);
    ASSERT_EQ(all.size(), 4u) << s.size();
    EXPECT_EQ(all[0].second, fmt::format("{}:1", s.size()));
    for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].first, i + 1);
    EXPECT_EQ(Last(s), 4u);
  }
  ASSERT_TRUE(log().Trim("a", 4).ok());
  EXPECT_TRUE(ReadAll("a").empty());
  EXPECT_EQ(ReadAll("ab").size(), 4u);
  EXPECT_EQ(ReadAll(std::string("a\0b", 3)).size(), 4u);
  EXPECT_TRUE(ReadAll("abc").empty());
  EXPECT_EQ(Last("abc"), 0u);
}

TEST_P(EventLogConformanceTest, DuplicateBatchIdReturnsTheFirstResult) {
  AppendResult first = Append("s", "first", "req-1", 10, 2);
  EXPECT_EQ(first.seq, 1u);
  EXPECT_FALSE(first.duplicate);
  AppendResult again = Append("s", "second", "req-1", 99, 9);
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.seq, 1u);
  EXPECT_EQ(again.accepted, 10);
  EXPECT_EQ(again.rejected, 2);
  EXPECT_EQ(Append("s", "third", "req-2").seq, 2u);
  // An empty batch id never deduplicates.
  EXPECT_EQ(Append("s", "first").seq, 3u);
  EXPECT_EQ(Append("s", "first").seq, 4u);
  // Batch ids are arbitrary bytes; a prefix of an id is another id.
  EXPECT_EQ(Append("s", "x", "req-").seq, 5u);
  EXPECT_EQ(Append("s", "x", std::string("req-1\0", 6)).seq, 6u);
  Entries all = ReadAll("s");
  ASSERT_EQ(all.size(), 6u);
  EXPECT_EQ(all[0].second, "first");
  EXPECT_EQ(all[1].second, "third");
  EXPECT_EQ(Last("s"), 6u);
}

TEST_P(EventLogConformanceTest, TrimDeletesAPrefixAndKeepsSeqs) {
  for (int i = 1; i <= 10; ++i) Append("s", fmt::format("p{}", i));
  ASSERT_TRUE(log().Trim("s", 4).ok());
  Entries rest = ReadAll("s");
  ASSERT_EQ(rest.size(), 6u);
  EXPECT_EQ(rest.front().first, 5u);
  EXPECT_EQ(ReadAll("s", 2), rest);      // reading from a trimmed position starts at what is left
  ASSERT_TRUE(log().Trim("s", 2).ok());  // behind an earlier trim: nothing happens
  EXPECT_EQ(ReadAll("s").size(), 6u);
  EXPECT_EQ(Last("s"), 10u);
  ASSERT_TRUE(log().Trim("s", 1000).ok());  // past the end: trims everything
  EXPECT_TRUE(ReadAll("s").empty());
  EXPECT_EQ(Last("s"), 10u);
  EXPECT_EQ(Append("s", "p11").seq, 11u);
  EXPECT_EQ(ReadAll("s"), (Entries{{11, "p11"}}));
}

TEST_P(EventLogConformanceTest, TrimForgetsOnlyBatchIdsOlderThanTheRetention) {
  Open(/*retention=*/3);
  for (int i = 1; i <= 10; ++i) Append("s", fmt::format("p{}", i), fmt::format("b{}", i));
  ASSERT_TRUE(log().Trim("s", 8).ok());  // forgets the ids of seq <= 8 - 3
  for (int i = 6; i <= 10; ++i) {
    AppendResult r = Append("s", "retry", fmt::format("b{}", i));
    EXPECT_TRUE(r.duplicate) << i;
    EXPECT_EQ(r.seq, static_cast<uint64_t>(i));
  }
  AppendResult forgotten = Append("s", "retry", "b5");
  EXPECT_FALSE(forgotten.duplicate);
  EXPECT_EQ(forgotten.seq, 11u);
  EXPECT_EQ(ReadAll("s").size(), 3u);  // 9, 10, 11
}

TEST_P(EventLogConformanceTest, ReadCallbackMayCallBackIntoTheLog) {
  for (int i = 1; i <= 3; ++i) Append("s", "p");
  int calls = 0;
  ASSERT_TRUE(log()
                  .Read("s", 0, std::numeric_limits<size_t>::max(),
                        [&](uint64_t, std::string_view) {
                          ++calls;
                          EXPECT_TRUE(log().LastSeq("s").ok());
                          EXPECT_TRUE(log().LastSeq("other").ok());
                        })
                  .ok());
  EXPECT_EQ(calls, 3);
}

TEST_P(EventLogConformanceTest, LogAndTilesNeverMix) {
  WriteBatch b;
  b.tiles.emplace_back(TileKey{0, "", Resolution::kBase, 0}, "tile");
  b.tiles.emplace_back(TileKey{1, "s", Resolution::kBase, 1}, "tile2");
  b.meta = {{"", "meta"}, {"l", "meta-l"}, {"s", "meta-s"}, {"log/plays/consumed", "3"}};
  ASSERT_TRUE(tiles().Write(b).ok());
  for (const std::string& source : {std::string(""), std::string("s"), std::string("plays")}) {
    Append(source, "entry-" + source, "batch-" + source);
    Append(source, "entry2-" + source);
    ASSERT_TRUE(log().Trim(source, 1).ok());
  }
  std::vector<std::string> meta_keys;
  ASSERT_TRUE(
      tiles()
          .ScanMeta("", [&](std::string_view k, std::string_view) { meta_keys.emplace_back(k); })
          .ok());
  EXPECT_EQ(meta_keys, (std::vector<std::string>{"", "l", "log/plays/consumed", "s"}));
  for (uint32_t view : {0u, 1u}) {
    for (const std::string& entity : {std::string(""), std::string("s"), std::string("plays")}) {
      std::vector<int64_t> starts;
      ASSERT_TRUE(tiles()
                      .Scan(view, entity, Resolution::kBase, std::numeric_limits<int64_t>::min(),
                            std::numeric_limits<int64_t>::max(),
                            [&](int64_t s, std::string_view) { starts.push_back(s); })
                      .ok());
      const bool has_tile = (view == 0 && entity.empty()) || (view == 1 && entity == "s");
      EXPECT_EQ(starts.size(), has_tile ? 1u : 0u) << view << "/" << entity;
    }
  }
  for (const std::string& source : {std::string(""), std::string("s"), std::string("plays")}) {
    EXPECT_EQ(ReadAll(source), (Entries{{2, "entry2-" + source}}));
  }
  EXPECT_TRUE(ReadAll("l").empty());
  EXPECT_TRUE(ReadAll("log/plays/consumed").empty());
}

// Many threads append at once, some racing on the same batch ids, while a reader follows the
// log: every entry is readable exactly once, seqs are unique and dense, each batch id appends
// once, and the reader never sees a gap (a lower seq never becomes readable after a higher one).
TEST_P(EventLogConformanceTest, ConcurrentAppendsAreDenseUniqueAndReadInOrder) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 150;
  constexpr int kSharedIds = 40;  // every thread also appends each of these ids
  std::atomic<bool> done{false};
  std::atomic<int> gaps{0};
  std::atomic<uint64_t> followed{0};
  std::thread reader([&] {
    uint64_t pos = 0;
    while (true) {
      const bool last_round = done.load();
      const uint64_t before = pos;
      absl::Status s = log().Read("s", pos, 4096, [&](uint64_t seq, std::string_view) {
        if (seq != pos + 1) gaps.fetch_add(1);
        pos = seq;
      });
      if (!s.ok()) {
        ADD_FAILURE() << s;
        break;
      }
      followed.store(pos);
      if (pos == before) std::this_thread::yield();
      if (last_round && Last("s") == pos) break;
    }
  });
  std::mutex mu;
  std::vector<AppendResult> results;
  std::map<std::string, std::vector<AppendResult>> shared;
  std::vector<std::thread> writers;
  writers.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string payload = fmt::format("t{}-{}", t, i);
        const std::string batch_id = i % 2 == 0 ? "" : payload;
        absl::StatusOr<AppendResult> r = log().Append("s", batch_id, payload, i, 0);
        ASSERT_TRUE(r.ok()) << r.status();
        ASSERT_FALSE(r->duplicate);
        std::lock_guard lock(mu);
        results.push_back(*r);
      }
      for (int k = 0; k < kSharedIds; ++k) {
        const std::string id = fmt::format("shared-{}", (k + t) % kSharedIds);
        absl::StatusOr<AppendResult> r = log().Append("s", id, id, k, 1);
        ASSERT_TRUE(r.ok()) << r.status();
        std::lock_guard lock(mu);
        shared[id].push_back(*r);
      }
    });
  }
  for (auto& w : writers) w.join();
  done.store(true);
  reader.join();

  constexpr uint64_t kTotal = uint64_t{kThreads} * kPerThread + kSharedIds;
  std::set<uint64_t> seqs;
  for (const AppendResult& r : results) seqs.insert(r.seq);
  ASSERT_EQ(shared.size(), static_cast<size_t>(kSharedIds));
  for (const auto& [id, rs] : shared) {
    ASSERT_EQ(rs.size(), static_cast<size_t>(kThreads));
    int originals = 0;
    for (const AppendResult& r : rs) {
      originals += r.duplicate ? 0 : 1;
      EXPECT_EQ(r.seq, rs.front().seq) << id;
    }
    EXPECT_EQ(originals, 1) << id;
    seqs.insert(rs.front().seq);
  }
  EXPECT_EQ(seqs.size(), kTotal);
  EXPECT_EQ(*seqs.begin(), 1u);
  EXPECT_EQ(*seqs.rbegin(), kTotal);
  EXPECT_EQ(gaps.load(), 0);
  EXPECT_EQ(followed.load(), kTotal);
  EXPECT_EQ(Last("s"), kTotal);

  Entries all = ReadAll("s");
  ASSERT_EQ(all.size(), kTotal);
  std::set<std::string> payloads;
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].first, i + 1);
    payloads.insert(all[i].second);
  }
  EXPECT_EQ(payloads.size(), kTotal);  // each appended payload exactly once
}

}  // namespace tessera::store
