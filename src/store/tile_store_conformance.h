#pragma once

// The behaviour every TileStore must show, as a value-parameterized GoogleTest suite. A backend's
// test file includes this header once and instantiates the suite with factories:
//
//   INSTANTIATE_TEST_SUITE_P(Memory, TileStoreConformanceTest,
//                            ::testing::Values(TileStoreFactory{"Default", MakeMemoryStore}),
//                            TileStoreFactoryName);
//
// Each test gets a fresh, empty store made in its own scratch directory (removed afterwards).

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "store/key_codec.h"
#include "store/testing/scoped_temp_dir.h"
#include "store/tile_store.h"

namespace tessera::store {

struct TileStoreFactory {
  std::string name;  // test-name suffix: letters, digits, underscores
  // Makes an empty store that may keep files under `scratch_dir` (an existing, empty directory
  // that outlives the store).
  std::function<std::unique_ptr<TileStore>(const std::string& scratch_dir)> make;
};

inline std::string TileStoreFactoryName(const ::testing::TestParamInfo<TileStoreFactory>& info) {
  return info.param.name;
}

// Prints the factory by name in failure messages (instead of raw bytes).
inline void PrintTo(const TileStoreFactory& f, std::ostream* os) { *os << f.name; }

namespace conformance_internal {

using Tiles = std::vector<std::pair<int64_t, std::string>>;
using Metas = std::vector<std::pair<std::string, std::string>>;

inline TileKey Key(uint32_t view, std::string_view entity, Resolution res, int64_t start) {
  return TileKey{view, std::string(entity), res, start};
}

inline std::string Describe(const TileKey& k) {
  std::string s = std::to_string(k.view_id) + "/";
  for (char c : k.entity_key) s += std::to_string(static_cast<uint8_t>(c)) + ".";
  return s + "/" + std::to_string(static_cast<int>(k.resolution)) + "/" +
         std::to_string(k.start_ms);
}

}  // namespace conformance_internal

class TileStoreConformanceTest : public ::testing::TestWithParam<TileStoreFactory> {
 protected:
  using Tiles = conformance_internal::Tiles;
  using Metas = conformance_internal::Metas;

  void SetUp() override {
    store_ = GetParam().make(dir_.path().string());
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override { store_.reset(); }

  void Put(const TileKey& key, std::string value) {
    WriteBatch b;
    b.tiles.emplace_back(key, std::move(value));
    ASSERT_TRUE(store_->Write(b).ok());
  }

  // Scanners of the snapshot tests: one without a snapshot and one pinned to a snapshot taken
  // when `entity`'s base tile at 0 holds "v1" (put here).
  struct Scanners {
    std::shared_ptr<const StoreSnapshot> snapshot;  // outlives `pinned`
    std::unique_ptr<TileScanner> latest;
    std::unique_ptr<TileScanner> pinned;
  };
  Scanners LatestAndPinned(const std::string& entity, ScanOrder order) {
    Put(conformance_internal::Key(1, entity, Resolution::kBase, 0), "v1");
    Scanners s;
    s.latest = store_->NewScanner(nullptr, order);
    s.snapshot = store_->GetSnapshot();
    s.pinned = store_->NewScanner(s.snapshot.get(), order);
    return s;
  }

  Tiles ScanAll(uint32_t view, std::string_view entity, Resolution res,
                int64_t from = std::numeric_limits<int64_t>::min(),
                int64_t to = std::numeric_limits<int64_t>::max()) {
    Tiles out;
    absl::Status s =
        store_->Scan(view, entity, res, from, to, [&](int64_t start, std::string_view bytes) {
          out.emplace_back(start, std::string(bytes));
        });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  Metas MetaWithPrefix(std::string_view prefix) {
    Metas out;
    absl::Status s = store_->ScanMeta(prefix, [&](std::string_view k, std::string_view v) {
      out.emplace_back(std::string(k), std::string(v));
    });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  std::optional<std::string> Meta(std::string_view key) {
    absl::StatusOr<std::optional<std::string>> v = store_->GetMeta(key);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : std::nullopt;
  }

  ScopedTempDir dir_;
  std::unique_ptr<TileStore> store_;
};

TEST_P(TileStoreConformanceTest, EmptyStoreHasNothing) {
  EXPECT_TRUE(ScanAll(1, "k", Resolution::kBase).empty());
  EXPECT_TRUE(MetaWithPrefix("").empty());
  EXPECT_EQ(Meta("x"), std::nullopt);
  std::vector<std::optional<std::string>> values = {std::string("stale")};
  ASSERT_TRUE(store_->MultiGet({}, &values).ok());
  EXPECT_TRUE(values.empty());
  EXPECT_TRUE(store_->Write(WriteBatch{}).ok());
  EXPECT_TRUE(store_->Sync().ok());
}

TEST_P(TileStoreConformanceTest, ScanIsHalfOpenAndOrderedIncludingNegativeTimes) {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  std::vector<int64_t> starts = {600000, -1,           kMin,         0, 300000, -300000, 1,
                                 kMax,   -86400000000, 1700000000000};
  WriteBatch b;  // written out of order, in one batch
  for (int64_t s : starts)
    b.tiles.emplace_back(TileKey{7, "user", Resolution::kBase, s}, fmt::format("v{}", s));
  ASSERT_TRUE(store_->Write(b).ok());

  std::sort(starts.begin(), starts.end());
  Tiles all = ScanAll(7, "user", Resolution::kBase);
  // to_ms is exclusive, so a tile at INT64_MAX is never returned by a Scan.
  ASSERT_EQ(all.size(), starts.size() - 1);
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].first, starts[i]);
    EXPECT_EQ(all[i].second, fmt::format("v{}", starts[i]));
  }

  Tiles mid = ScanAll(7, "user", Resolution::kBase, -300000, 300000);
  ASSERT_EQ(mid.size(), 4u);
  EXPECT_EQ(mid[0].first, -300000);
  EXPECT_EQ(mid[1].first, -1);
  EXPECT_EQ(mid[2].first, 0);
  EXPECT_EQ(mid[3].first, 1);

  Tiles one = ScanAll(7, "user", Resolution::kBase, 300000, 300001);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].first, 300000);
  EXPECT_TRUE(ScanAll(7, "user", Resolution::kBase, 2, 300000).empty());
  EXPECT_TRUE(ScanAll(7, "user", Resolution::kBase, 300000, 300000).empty());
  EXPECT_TRUE(ScanAll(7, "user", Resolution::kBase, 600000, 0).empty());  // from > to
  EXPECT_EQ(ScanAll(7, "user", Resolution::kBase, kMin, kMin + 1).size(), 1u);
}

TEST_P(TileStoreConformanceTest, ScanSeesOnlyItsViewKeyAndResolution) {
  using conformance_internal::Describe;
  const std::vector<std::string> entities = {"",
                                             "a",
                                             "ab",
                                             "abc",
                                             "b",
                                             "ab|c",
                                             std::string("a\0b", 3),
                                             std::string("\0", 1),
                                             std::string("\xff", 1),
                                             std::string("\xff\xff", 2),
                                             std::string(200, 'x'),
                                             std::string(201, 'x'),
                                             "\x80",
                                             "\x7f"};
  const std::vector<uint32_t> views = {0, 1, 2, 256, 0xffffffffu};
  const std::vector<Resolution> resolutions = {Resolution::kBase, Resolution::kHour,
                                               Resolution::kDay};
  const std::vector<int64_t> starts = {-600000, 0, 300000};
  WriteBatch b;
  for (uint32_t v : views) {
    for (const std::string& e : entities) {
      for (Resolution r : resolutions) {
        for (int64_t s : starts) {
          TileKey k{v, e, r, s};
          b.tiles.emplace_back(k, Describe(k));
        }
      }
    }
  }
  ASSERT_TRUE(store_->Write(b).ok());

  for (uint32_t v : views) {
    for (const std::string& e : entities) {
      for (Resolution r : resolutions) {
        Tiles got = ScanAll(v, e, r);
        ASSERT_EQ(got.size(), starts.size()) << Describe(TileKey{v, e, r, 0});
        for (size_t i = 0; i < starts.size(); ++i) {
          EXPECT_EQ(got[i].first, starts[i]);
          EXPECT_EQ(got[i].second, Describe(TileKey{v, e, r, starts[i]}));
        }
      }
    }
  }
  // Keys never written, including prefixes and extensions of written ones.
  EXPECT_TRUE(ScanAll(1, "abcd", Resolution::kBase).empty());
  EXPECT_TRUE(ScanAll(1, "x", Resolution::kBase).empty());
  EXPECT_TRUE(ScanAll(3, "a", Resolution::kBase).empty());
  EXPECT_TRUE(ScanAll(1, std::string("a\0", 2), Resolution::kBase).empty());
}

TEST_P(TileStoreConformanceTest, ManyViewsStaySeparate) {
  constexpr uint32_t kViews = 300;
  WriteBatch b;
  for (uint32_t v = 0; v < kViews; ++v) {
    for (int64_t i = 0; i < 3; ++i) {
      b.tiles.emplace_back(TileKey{v * 7919, "k", Resolution::kBase, i * 300000},
                           fmt::format("{}:{}", v, i));
    }
  }
  ASSERT_TRUE(store_->Write(b).ok());
  for (uint32_t v = 0; v < kViews; ++v) {
    Tiles got = ScanAll(v * 7919, "k", Resolution::kBase);
    ASSERT_EQ(got.size(), 3u) << v;
    for (int64_t i = 0; i < 3; ++i) {
      EXPECT_EQ(got[i].second, fmt::format("{}:{}", v, i));
    }
  }
}

TEST_P(TileStoreConformanceTest, MultiGetPresentAbsentAndDuplicates) {
  using conformance_internal::Key;
  Put(Key(1, "a", Resolution::kBase, 0), "a0");
  Put(Key(1, "a", Resolution::kHour, 0), "a0h");
  Put(Key(1, "ab", Resolution::kBase, -300000), "ab-");
  Put(Key(2, "", Resolution::kDay, 86400000), "");  // empty value is present, not absent

  std::vector<TileKey> keys = {
      Key(1, "a", Resolution::kBase, 0),        Key(1, "a", Resolution::kBase, 1),
      Key(1, "ab", Resolution::kBase, -300000), Key(1, "a", Resolution::kHour, 0),
      Key(2, "", Resolution::kDay, 86400000),   Key(9, "a", Resolution::kBase, 0),
      Key(1, "a", Resolution::kBase, 0),        Key(1, "ab", Resolution::kBase, 300000),
  };
  std::vector<std::optional<std::string>> values(3, std::string("garbage"));
  ASSERT_TRUE(store_->MultiGet(keys, &values).ok());
  ASSERT_EQ(values.size(), keys.size());
  EXPECT_EQ(values[0], "a0");
  EXPECT_EQ(values[1], std::nullopt);
  EXPECT_EQ(values[2], "ab-");
  EXPECT_EQ(values[3], "a0h");
  EXPECT_EQ(values[4], "");
  EXPECT_EQ(values[5], std::nullopt);
  EXPECT_EQ(values[6], "a0");
  EXPECT_EQ(values[7], std::nullopt);
}

TEST_P(TileStoreConformanceTest, OverwriteReplacesTheValue) {
  using conformance_internal::Key;
  Put(Key(1, "k", Resolution::kBase, 0), "old");
  Put(Key(1, "k", Resolution::kBase, 0), "new");
  WriteBatch b;  // within one batch the later entry wins
  b.tiles.emplace_back(Key(1, "k", Resolution::kBase, 300000), "first");
  b.tiles.emplace_back(Key(1, "k", Resolution::kBase, 300000), "second");
  ASSERT_TRUE(store_->Write(b).ok());
  Tiles got = ScanAll(1, "k", Resolution::kBase);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], (std::pair<int64_t, std::string>(0, "new")));
  EXPECT_EQ(got[1], (std::pair<int64_t, std::string>(300000, "second")));
}

TEST_P(TileStoreConformanceTest, SnapshotScansIgnoreLaterWrites) {
  using conformance_internal::Key;
  Put(Key(1, "k", Resolution::kBase, 0), "v1");
  std::shared_ptr<const StoreSnapshot> snap = store_->GetSnapshot();
  Put(Key(1, "k", Resolution::kBase, 0), "v2");
  Put(Key(1, "k", Resolution::kBase, 300000), "new");
  Tiles at_snap;
  ASSERT_TRUE(store_
                  ->ScanAt(snap.get(), 1, "k", Resolution::kBase, 0, 600000,
                           [&](int64_t start, std::string_view v) {
                             at_snap.emplace_back(start, std::string(v));
                           })
                  .ok());
  ASSERT_EQ(at_snap.size(), 1u);
  EXPECT_EQ(at_snap[0].second, "v1");
  Tiles now = ScanAll(1, "k", Resolution::kBase);
  ASSERT_EQ(now.size(), 2u);
  EXPECT_EQ(now[0].second, "v2");
}

// One scanner serves any sequence of scans (views, keys, resolutions and ranges in any order,
// backwards included), each giving exactly what a Scan of its own gives.
TEST_P(TileStoreConformanceTest, ScannerScansInAnyOrderLikeScan) {
  using conformance_internal::Key;
  const std::vector<std::string> entities = {"a", "ab", "abc", "b", std::string("a\0b", 3), ""};
  const Resolution kResolutions[] = {Resolution::kBase, Resolution::kHour, Resolution::kDay};
  WriteBatch b;
  for (uint32_t view : {1u, 2u}) {
    for (const std::string& e : entities) {
      for (Resolution r : kResolutions) {
        for (int64_t start : {-300000, 0, 300000, 600000, 3600000}) {
          b.tiles.emplace_back(Key(view, e, r, start), fmt::format("{}/{}/{}/{}", view, e.size(),
                                                                   static_cast<int>(r), start));
        }
      }
    }
  }
  ASSERT_TRUE(store_->Write(b).ok());

  struct Probe {
    uint32_t view;
    std::string entity;
    Resolution res;
    int64_t from, to;
  };
  std::vector<Probe> probes;
  for (int round = 0; round < 2; ++round) {  // every probe again, after all the others
    for (uint32_t view : {2u, 1u, 3u}) {
      for (size_t e = entities.size(); e-- > 0;) {
        for (Resolution r : {Resolution::kDay, Resolution::kBase, Resolution::kHour}) {
          probes.push_back({view, entities[e], r, 0, 600000});
          probes.push_back({view, entities[e], r, -300000, 300001});
          probes.push_back({view, entities[e], r, 600000, 600000});  // empty
          probes.push_back({view, entities[e], r, std::numeric_limits<int64_t>::min(),
                            std::numeric_limits<int64_t>::max()});
        }
      }
    }
  }
  for (ScanOrder order : {ScanOrder::kRandom, ScanOrder::kAscending}) {  // only a hint
    std::unique_ptr<TileScanner> scanner = store_->NewScanner(nullptr, order);
    ASSERT_NE(scanner, nullptr);
    for (const Probe& p : probes) {
      Tiles got;
      ASSERT_TRUE(scanner
                      ->Scan(p.view, p.entity, p.res, p.from, p.to,
                             [&](int64_t start, std::string_view v) {
                               got.emplace_back(start, std::string(v));
                             })
                      .ok());
      EXPECT_EQ(got, ScanAll(p.view, p.entity, p.res, p.from, p.to))
          << static_cast<int>(order) << ": " << p.view << " " << p.entity.size() << " "
          << static_cast<int>(p.res) << " [" << p.from << ", " << p.to << ")";
    }
  }
}

// Scans of many adjacent keys in increasing order, as rollups built from the store make them
// (a day's children after an hour's of the same key, a step back), with keys and tiles
// between them to step over or seek past: every scan gives exactly what a Scan of its own
// gives, with either ScanOrder, through Scan and ScanSpan on one scanner.
TEST_P(TileStoreConformanceTest, AscendingScansOfDenseKeysAreScans) {
  using conformance_internal::Key;
  constexpr int64_t kHourMs = 3600000;
  const Resolution kResolutions[] = {Resolution::kBase, Resolution::kHour, Resolution::kDay};
  WriteBatch b;
  std::vector<std::string> entities;
  for (int e = 0; e < 300; ++e) {
    // Names of several lengths: stored keys are ordered by length first, so scans in name
    // order also step back.
    const int n = e * 7 % 300;
    entities.push_back(n % 13 == 0   ? fmt::format("u{}", n)
                       : n % 17 == 0 ? fmt::format("{:0>200}", n)
                                     : fmt::format("user{:04}", n));
    if (e % 5 == 4) continue;  // keys with no tiles
    for (Resolution r : kResolutions) {
      const int tiles = e % 11 == 0 ? 60 : e % 3;  // a few keys with more than a step's reach
      for (int i = 0; i < tiles; ++i) {
        const int64_t start = (i * 7 + e) % 48 * kHourMs / 4 - kHourMs;
        b.tiles.emplace_back(Key(1, entities.back(), r, start),
                             fmt::format("{}/{}/{}", e, static_cast<int>(r), start));
      }
    }
    b.tiles.emplace_back(Key(2, entities.back(), Resolution::kBase, 0), "view2");
  }
  ASSERT_TRUE(store_->Write(b).ok());
  std::sort(entities.begin(), entities.end());
  using Span = std::vector<std::tuple<Resolution, int64_t, std::string>>;
  for (ScanOrder order : {ScanOrder::kAscending, ScanOrder::kRandom}) {
    std::unique_ptr<TileScanner> scanner = store_->NewScanner(nullptr, order);
    for (size_t i = 0; i < entities.size(); i += 1 + i % 3) {  // some keys skipped
      const std::string& e = entities[i];
      const int64_t hour = static_cast<int64_t>(i % 12) * kHourMs - kHourMs;
      Tiles got;
      ASSERT_TRUE(scanner
                      ->Scan(1, e, Resolution::kBase, hour, hour + kHourMs,
                             [&](int64_t start, std::string_view v) {
                               got.emplace_back(start, std::string(v));
                             })
                      .ok());
      EXPECT_EQ(got, ScanAll(1, e, Resolution::kBase, hour, hour + kHourMs)) << e;
      for (auto [from, to] : {std::pair<int64_t, int64_t>(-kHourMs, 11 * kHourMs),
                              std::pair<int64_t, int64_t>(hour, hour + 2 * kHourMs)}) {
        Span want;
        for (Resolution r : {Resolution::kBase, Resolution::kHour}) {
          for (auto& [start, v] : ScanAll(1, e, r, from, to)) want.emplace_back(r, start, v);
        }
        Span span;
        ASSERT_TRUE(scanner
                        ->ScanSpan(1, e, Resolution::kBase, Resolution::kHour, from, to,
                                   [&](Resolution r, int64_t start, std::string_view v) {
                                     span.emplace_back(r, start, std::string(v));
                                     return true;
                                   })
                        .ok());
        EXPECT_EQ(span, want) << static_cast<int>(order) << " " << e << " " << from;
      }
    }
  }
}

// A scanner made with a snapshot reads as of it; one made without sees what was written before.
// ScanSpan gives what Scan gives for each resolution of [first, last] in turn, interleaved with
// plain scans on the same scanner, and stops when fn says so.
TEST_P(TileStoreConformanceTest, ScanSpanIsScansOfEachResolution) {
  using conformance_internal::Key;
  const std::vector<std::string> entities = {"a", "ab", "b", ""};
  const Resolution kResolutions[] = {Resolution::kBase, Resolution::kHour, Resolution::kDay};
  WriteBatch b;
  for (uint32_t view : {1u, 2u}) {
    for (const std::string& e : entities) {
      for (Resolution r : kResolutions) {
        if (e == "b" && r == Resolution::kHour) continue;  // a gap between resolutions
        for (int64_t start : {-300000, 0, 300000, 600000, 3600000}) {
          b.tiles.emplace_back(Key(view, e, r, start),
                               fmt::format("{}/{}/{}/{}", view, e, static_cast<int>(r), start));
        }
      }
    }
  }
  // A key with many tiles on both sides of the ranges (a cursor steps over some, seeks past more).
  for (Resolution r : kResolutions) {
    for (int64_t i = -40; i < 50; ++i) {
      b.tiles.emplace_back(Key(1, "many", r, i * 300000),
                           fmt::format("many/{}/{}", static_cast<int>(r), i));
    }
  }
  ASSERT_TRUE(store_->Write(b).ok());
  using Span = std::vector<std::tuple<Resolution, int64_t, std::string>>;
  {
    std::unique_ptr<TileScanner> s = store_->NewScanner(nullptr, ScanOrder::kRandom);
    for (auto [from, to] : {std::pair<int64_t, int64_t>(0, 600000),             // skips 40, then 48
                            std::pair<int64_t, int64_t>(-36 * 300000, 300000),  // skips 4, then 48
                            std::pair<int64_t, int64_t>(30 * 300000, 60 * 300000)}) {
      Span want;
      for (Resolution r : kResolutions) {
        ASSERT_TRUE(s->Scan(1, "many", r, from, to, [&](int64_t start, std::string_view v) {
                       want.emplace_back(r, start, std::string(v));
                     }).ok());
      }
      Span got;
      ASSERT_TRUE(s->ScanSpan(1, "many", Resolution::kBase, Resolution::kDay, from, to,
                              [&](Resolution r, int64_t start, std::string_view v) {
                                got.emplace_back(r, start, std::string(v));
                                return true;
                              })
                      .ok());
      EXPECT_EQ(got, want) << from << ".." << to;
    }
  }
  for (ScanOrder order : {ScanOrder::kRandom, ScanOrder::kAscending}) {
    std::unique_ptr<TileScanner> scanner = store_->NewScanner(nullptr, order);
    for (uint32_t view : {2u, 1u, 3u}) {
      for (const std::string& e : entities) {
        for (auto [first, last] : {std::pair(Resolution::kBase, Resolution::kDay),
                                   std::pair(Resolution::kBase, Resolution::kBase),
                                   std::pair(Resolution::kHour, Resolution::kDay)}) {
          for (auto [from, to] : {std::pair<int64_t, int64_t>(0, 600000),
                                  std::pair<int64_t, int64_t>(-300000, 300001),
                                  std::pair<int64_t, int64_t>(3600000, 3600001),
                                  std::pair<int64_t, int64_t>(600000, 600000)}) {
            Span want;
            for (auto r = static_cast<int>(first); r <= static_cast<int>(last); ++r) {
              ASSERT_TRUE(scanner
                              ->Scan(view, e, static_cast<Resolution>(r), from, to,
                                     [&](int64_t start, std::string_view v) {
                                       want.emplace_back(static_cast<Resolution>(r), start,
                                                         std::string(v));
                                     })
                              .ok());
            }
            Span got;
            ASSERT_TRUE(scanner
                            ->ScanSpan(view, e, first, last, from, to,
                                       [&](Resolution r, int64_t start, std::string_view v) {
                                         got.emplace_back(r, start, std::string(v));
                                         return true;
                                       })
                            .ok());
            EXPECT_EQ(got, want) << view << " '" << e << "' " << from << ".." << to;
            if (want.size() < 2) continue;
            Span first_two;
            ASSERT_TRUE(scanner
                            ->ScanSpan(view, e, first, last, from, to,
                                       [&](Resolution r, int64_t start, std::string_view v) {
                                         first_two.emplace_back(r, start, std::string(v));
                                         return first_two.size() < 2;
                                       })
                            .ok());
            EXPECT_EQ(first_two, Span(want.begin(), want.begin() + 2));
          }
        }
      }
    }
  }
}

// Tile runs are applied in order, then the batch's tiles: a later entry of a key wins. Each run
// in strictly increasing key order, as a flush makes them.
TEST_P(TileStoreConformanceTest, TileRunsThenTilesLaterEntryWins) {
  using conformance_internal::Key;
  WriteBatch b;
  for (int run = 0; run < 3; ++run) {
    TileRun& r = b.tile_runs.emplace_back();
    for (const char* key : {"a", "b", "c"}) {
      for (int64_t i = 0; i < 200; i += 1 + run) {  // runs overlap on some keys
        r.BeginTile(1, key, Resolution::kBase, i * 300000)->append(fmt::format("run{}/{}", run, i));
      }
    }
  }
  b.tiles.emplace_back(Key(1, "b", Resolution::kBase, 0), "tiles/0");
  ASSERT_TRUE(store_->Write(b).ok());
  auto get = [&](const char* key, int64_t i) {
    std::vector<std::optional<std::string>> values;
    EXPECT_TRUE(store_->MultiGet({Key(1, key, Resolution::kBase, i * 300000)}, &values).ok());
    return values.at(0).value_or("<none>");
  };
  EXPECT_EQ(get("a", 0), "run2/0");
  EXPECT_EQ(get("a", 1), "run0/1");  // only run 0 has odd ones
  EXPECT_EQ(get("a", 2), "run1/2");  // runs 0 and 1
  EXPECT_EQ(get("c", 198), "run2/198");
  EXPECT_EQ(get("b", 0), "tiles/0");  // the batch's tiles come after the runs
  EXPECT_EQ(get("b", 199), "run0/199");
  Tiles all;
  ASSERT_TRUE(store_
                  ->Scan(1, "c", Resolution::kBase, 0, 200 * 300000,
                         [&](int64_t start, std::string_view v) {
                           all.emplace_back(start, std::string(v));
                         })
                  .ok());
  EXPECT_EQ(all.size(), 200u);
}

// Every tile of one view in store key order (ViewCursor), within entity bounds, and a view's
// tiles deleted together. Stores without view ranges say so and refuse both.
TEST_P(TileStoreConformanceTest, ViewCursorWalksOneViewInKeyOrder) {
  using conformance_internal::Key;
  if (!store_->supports_view_ranges()) {
    EXPECT_EQ(store_->NewViewCursor(1, EntityRange()).status().code(),
              absl::StatusCode::kUnimplemented);
    EXPECT_EQ(store_->DeleteViewTiles(1, 1).code(), absl::StatusCode::kUnimplemented);
    return;
  }
  // Entity keys of several lengths (a 200-byte one: its length needs a 2-byte varint), empty
  // and binary ones, all resolutions, negative starts; neighbouring views around view 7.
  const std::string long_key(200, 'z');
  const std::vector<std::string> entities = {"",      "a", "ab", "b", std::string("\0\xff", 2),
                                             long_key};
  WriteBatch b;
  for (uint32_t view : {6u, 7u, 8u}) {
    for (const std::string& e : entities) {
      for (Resolution res : {Resolution::kBase, Resolution::kHour, Resolution::kDay}) {
        for (int64_t start : {int64_t{-300000}, int64_t{0}, int64_t{86400000}}) {
          b.tiles.emplace_back(Key(view, e, res, start), fmt::format("{}/{}", view, start));
        }
      }
    }
  }
  b.meta.emplace_back("m", "v");
  b.bulk = true;  // RocksDB: ingested files, which DeleteViewTiles drops whole
  ASSERT_TRUE(store_->Write(b).ok());

  auto walk = [&](uint32_t view, const EntityRange& range) {
    std::vector<std::string> keys;
    absl::StatusOr<std::unique_ptr<ViewCursor>> cursor = store_->NewViewCursor(view, range);
    EXPECT_TRUE(cursor.ok()) << cursor.status();
    if (!cursor.ok()) return keys;
    for (; (*cursor)->Valid(); (*cursor)->Next()) {
      std::string_view entity;
      Resolution res;
      int64_t start = 0;
      EXPECT_TRUE(DecodeViewTileKey((*cursor)->view_key(), &entity, &res, &start).ok());
      EXPECT_EQ((*cursor)->value(), fmt::format("{}/{}", view, start));
      keys.emplace_back((*cursor)->view_key());
    }
    EXPECT_TRUE((*cursor)->status().ok()) << (*cursor)->status();
    return keys;
  };
  // The expected order: view keys as bytes.
  std::vector<std::string> expected;
  for (const std::string& e : entities) {
    for (Resolution res : {Resolution::kBase, Resolution::kHour, Resolution::kDay}) {
      for (int64_t start : {int64_t{-300000}, int64_t{0}, int64_t{86400000}}) {
        std::string k;
        AppendViewTileKey(e, res, start, &k);
        expected.push_back(k);
      }
    }
  }
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(walk(7, EntityRange()), expected);
  auto entity_of = [](const std::string& view_key) {
    std::string_view entity;
    Resolution res;
    int64_t start = 0;
    EXPECT_TRUE(DecodeViewTileKey(view_key, &entity, &res, &start).ok());
    return std::string(entity);
  };
  // Every pair of bounds, inclusive and exclusive, against a filter of `expected`.
  for (const std::string& lo : entities) {
    for (const std::string& hi : entities) {
      for (bool exclusive : {false, true}) {
        EntityRange range{EncodeEntityInView(lo), exclusive, EncodeEntityInView(hi)};
        std::vector<std::string> want;
        for (const std::string& k : expected) {
          const std::string e = EncodeEntityInView(entity_of(k));
          if (e < range.lower || (exclusive && e == range.lower) || e >= range.upper) continue;
          want.push_back(k);
        }
        EXPECT_EQ(walk(7, range), want) << "lower \"" << lo << "\" upper \"" << hi << "\"";
      }
    }
  }
  EXPECT_TRUE(walk(9, EntityRange()).empty());

  // Deleting view 7 leaves its neighbours and the metadata.
  ASSERT_TRUE(store_->DeleteViewTiles(7, 7).ok());
  EXPECT_TRUE(walk(7, EntityRange()).empty());
  EXPECT_TRUE(ScanAll(7, "a", Resolution::kBase).empty());
  EXPECT_EQ(walk(6, EntityRange()).size(), expected.size());
  EXPECT_EQ(walk(8, EntityRange()).size(), expected.size());
  EXPECT_EQ(Meta("m"), "v");
  ASSERT_TRUE(store_->DeleteViewTiles(7, 7).ok());  // nothing left: still fine
  ASSERT_TRUE(store_->DeleteViewTiles(6, 8).ok());  // a range of views
  EXPECT_TRUE(walk(6, EntityRange()).empty());
  EXPECT_TRUE(walk(8, EntityRange()).empty());
  EXPECT_EQ(Meta("m"), "v");
}

TEST_P(TileStoreConformanceTest, ScannerReadsItsSnapshot) {
  using conformance_internal::Key;
  for (ScanOrder order : {ScanOrder::kRandom, ScanOrder::kAscending}) {
    const std::string k = order == ScanOrder::kRandom ? "k" : "k2";
    Scanners scanners = LatestAndPinned(k, order);
    TileScanner* latest = scanners.latest.get();
    TileScanner* pinned = scanners.pinned.get();
    Put(Key(1, k, Resolution::kBase, 0), "v2");
    Put(Key(1, k, Resolution::kHour, 0), "h");
    auto scan = [&k](TileScanner* scanner, Resolution res) {
      Tiles out;
      EXPECT_TRUE(scanner
                      ->Scan(1, k, res, 0, 600000,
                             [&](int64_t start, std::string_view v) {
                               out.emplace_back(start, std::string(v));
                             })
                      .ok());
      return out;
    };
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(scan(pinned, Resolution::kBase), Tiles({{0, "v1"}}));
      EXPECT_TRUE(scan(pinned, Resolution::kHour).empty());
    }
    const Tiles base = scan(latest, Resolution::kBase);
    ASSERT_EQ(base.size(), 1u);
    EXPECT_TRUE(base[0].second == "v1" || base[0].second == "v2") << base[0].second;
    EXPECT_EQ(scan(store_->NewScanner(nullptr, order).get(), Resolution::kHour), Tiles({{0, "h"}}));
  }
}

// Refresh makes a scanner without a snapshot see every earlier write, through Scan and ScanSpan,
// as often as it is called; one with a snapshot keeps reading its snapshot.
TEST_P(TileStoreConformanceTest, RefreshedScannerSeesEarlierWrites) {
  using conformance_internal::Key;
  for (ScanOrder order : {ScanOrder::kRandom, ScanOrder::kAscending}) {
    const std::string k = order == ScanOrder::kRandom ? "k" : "k2";
    Scanners scanners = LatestAndPinned(k, order);
    TileScanner* latest = scanners.latest.get();
    TileScanner* pinned = scanners.pinned.get();
    auto scan = [&k](TileScanner* scanner) {
      std::vector<std::string> out;
      EXPECT_TRUE(scanner
                      ->ScanSpan(1, k, Resolution::kBase, Resolution::kDay, 0, 600000,
                                 [&](Resolution r, int64_t start, std::string_view v) {
                                   out.push_back(
                                       fmt::format("{}/{}={}", static_cast<int>(r), start, v));
                                   return true;
                                 })
                      .ok());
      EXPECT_TRUE(scanner
                      ->Scan(1, k, Resolution::kHour, 0, 600000,
                             [&](int64_t start, std::string_view v) {
                               out.push_back(fmt::format("hour {}={}", start, v));
                             })
                      .ok());
      return out;
    };
    const std::vector<std::string> first = scan(latest);
    EXPECT_EQ(first, std::vector<std::string>({"0/0=v1"}));
    Put(Key(1, k, Resolution::kBase, 0), "v2");
    Put(Key(1, k, Resolution::kHour, 0), "h");
    latest->Refresh();
    pinned->Refresh();
    EXPECT_EQ(scan(latest), std::vector<std::string>({"0/0=v2", "1/0=h", "hour 0=h"}));
    EXPECT_EQ(scan(pinned), first);
    WriteBatch b;
    b.tiles.emplace_back(Key(1, k, Resolution::kHour, 0), "h2");
    b.tiles.emplace_back(Key(1, k, Resolution::kBase, 300000), "w");
    ASSERT_TRUE(store_->Write(b).ok());
    const std::vector<std::string> want = {"0/0=v2", "0/300000=w", "1/0=h2", "hour 0=h2"};
    latest->Refresh();
    EXPECT_EQ(scan(latest), want);
    latest->Refresh();  // nothing changed
    EXPECT_EQ(scan(latest), want);
  }
}

// A scanner refreshed after a write that lands between its last scan and where its cursor
// stands sees that write, in either ScanOrder.
TEST_P(TileStoreConformanceTest, RefreshedScannerSeesWritesBehindItsCursor) {
  using conformance_internal::Key;
  for (ScanOrder order : {ScanOrder::kRandom, ScanOrder::kAscending}) {
    const uint32_t view = order == ScanOrder::kRandom ? 1 : 2;
    Put(Key(view, "a", Resolution::kBase, 0), "a0");
    Put(Key(view, "c", Resolution::kBase, 0), "c0");
    std::unique_ptr<TileScanner> scanner = store_->NewScanner(nullptr, order);
    auto scan = [&](const char* entity) {
      std::vector<std::string> out;
      EXPECT_TRUE(scanner
                      ->Scan(view, entity, Resolution::kBase, 0, 600000,
                             [&](int64_t, std::string_view v) { out.emplace_back(v); })
                      .ok());
      return out;
    };
    EXPECT_EQ(scan("a"), std::vector<std::string>({"a0"}));  // stops at c's tile
    Put(Key(view, "b", Resolution::kBase, 0), "b0");
    scanner->Refresh();
    EXPECT_EQ(scan("b"), std::vector<std::string>({"b0"})) << static_cast<int>(order);
    EXPECT_EQ(scan("c"), std::vector<std::string>({"c0"}));
  }
}

TEST_P(TileStoreConformanceTest, LargeAndBinaryValuesRoundTrip) {
  using conformance_internal::Key;
  std::string big(1 << 20, '\0');
  std::mt19937 rng(42);
  for (char& c : big) c = static_cast<char>(rng());
  Put(Key(1, "k", Resolution::kBase, 0), big);
  Tiles got = ScanAll(1, "k", Resolution::kBase);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].second, big);
}

TEST_P(TileStoreConformanceTest, WriteAppliesTilesMetaAndDeletesTogether) {
  using conformance_internal::Key;
  WriteBatch setup;
  setup.meta = {{"pos/a", "1"}, {"pos/b", "2"}, {"gone", "x"}};
  ASSERT_TRUE(store_->Write(setup).ok());

  WriteBatch b;
  b.tiles.emplace_back(Key(1, "k", Resolution::kBase, 0), "t0");
  b.tiles.emplace_back(Key(1, "k", Resolution::kBase, 300000), "t1");
  b.meta = {{"pos/a", "10"}, {"pos/c", "3"}, {"both", "set"}, {"twice", "1"}, {"twice", "2"}};
  b.meta_deletes = {"gone", "both", "never-existed"};
  ASSERT_TRUE(store_->Write(b).ok());

  EXPECT_EQ(ScanAll(1, "k", Resolution::kBase).size(), 2u);
  EXPECT_EQ(Meta("pos/a"), "10");
  EXPECT_EQ(Meta("pos/b"), "2");
  EXPECT_EQ(Meta("pos/c"), "3");
  EXPECT_EQ(Meta("twice"), "2");
  EXPECT_EQ(Meta("gone"), std::nullopt);
  EXPECT_EQ(Meta("both"), std::nullopt);  // deletes apply after sets
  EXPECT_EQ(Meta("never-existed"), std::nullopt);
}

TEST_P(TileStoreConformanceTest, MetaEmptyValueIsPresent) {
  WriteBatch b;
  b.meta = {{"empty", ""}, {"", "empty key"}};
  ASSERT_TRUE(store_->Write(b).ok());
  EXPECT_EQ(Meta("empty"), "");
  EXPECT_EQ(Meta(""), "empty key");
  EXPECT_EQ(Meta("empt"), std::nullopt);
}

TEST_P(TileStoreConformanceTest, ScanMetaByPrefixInKeyOrder) {
  WriteBatch b;
  const std::vector<std::string> keys = {"a",
                                         "ab",
                                         "abc",
                                         "b",
                                         "a\xff",
                                         "a\xff\xff",
                                         "\xff",
                                         "\xff\xff",
                                         std::string("a\0", 2),
                                         "catalog/views/2",
                                         "catalog/views/10",
                                         "catalog/sources/plays",
                                         "catalogue"};
  for (const std::string& k : keys) b.meta.emplace_back(k, fmt::format("v:{}", k));
  ASSERT_TRUE(store_->Write(b).ok());

  auto keys_of = [](const Metas& m) {
    std::vector<std::string> out;
    for (const auto& [k, v] : m) {
      EXPECT_EQ(v, fmt::format("v:{}", k));
      out.push_back(k);
    }
    return out;
  };
  std::vector<std::string> sorted = keys;
  std::sort(sorted.begin(), sorted.end());  // std::string compares as unsigned bytes
  EXPECT_EQ(keys_of(MetaWithPrefix("")), sorted);
  EXPECT_EQ(
      keys_of(MetaWithPrefix("a")),
      (std::vector<std::string>{"a", std::string("a\0", 2), "ab", "abc", "a\xff", "a\xff\xff"}));
  EXPECT_EQ(keys_of(MetaWithPrefix("ab")), (std::vector<std::string>{"ab", "abc"}));
  EXPECT_EQ(keys_of(MetaWithPrefix("a\xff")), (std::vector<std::string>{"a\xff", "a\xff\xff"}));
  EXPECT_EQ(keys_of(MetaWithPrefix("\xff")), (std::vector<std::string>{"\xff", "\xff\xff"}));
  EXPECT_EQ(
      keys_of(MetaWithPrefix("catalog/")),
      (std::vector<std::string>{"catalog/sources/plays", "catalog/views/10", "catalog/views/2"}));
  EXPECT_TRUE(MetaWithPrefix("abcd").empty());
  EXPECT_TRUE(MetaWithPrefix("c\xff").empty());
}

TEST_P(TileStoreConformanceTest, MetaAndTilesNeverMix) {
  using conformance_internal::Key;
  WriteBatch b;
  b.tiles.emplace_back(Key(0, "", Resolution::kBase, 0), "tile");
  b.tiles.emplace_back(Key(0x6d6d6d6d, "m", Resolution::kBase, 0), "tile2");  // 'mmmm'
  // Metadata keys that look like tile keys in any plausible byte layout.
  b.meta = {{"t", "m1"}, {std::string("\0\0\0\0\0", 5), "m2"}, {"m", "m3"}};
  ASSERT_TRUE(store_->Write(b).ok());

  Metas meta = MetaWithPrefix("");
  ASSERT_EQ(meta.size(), 3u);
  for (const auto& [k, v] : meta) EXPECT_EQ(v[0], 'm') << "tile leaked into ScanMeta";
  Tiles tiles = ScanAll(0, "", Resolution::kBase);
  ASSERT_EQ(tiles.size(), 1u);
  EXPECT_EQ(tiles[0].second, "tile");
  EXPECT_EQ(ScanAll(0x6d6d6d6d, "m", Resolution::kBase).size(), 1u);
  std::vector<std::optional<std::string>> values;
  ASSERT_TRUE(store_->MultiGet({Key(0, "", Resolution::kBase, 0)}, &values).ok());
  EXPECT_EQ(values[0], "tile");
}

TEST_P(TileStoreConformanceTest, CallbacksMayCallBackIntoTheStore) {
  using conformance_internal::Key;
  WriteBatch b;
  b.tiles.emplace_back(Key(1, "k", Resolution::kBase, 0), "t");
  b.meta = {{"m/1", "x"}};
  ASSERT_TRUE(store_->Write(b).ok());
  int nested = 0;
  ASSERT_TRUE(store_
                  ->Scan(1, "k", Resolution::kBase, 0, 1,
                         [&](int64_t, std::string_view) {
                           EXPECT_EQ(Meta("m/1"), "x");
                           ++nested;
                         })
                  .ok());
  ASSERT_TRUE(store_
                  ->ScanMeta("m/",
                             [&](std::string_view, std::string_view) {
                               EXPECT_EQ(ScanAll(1, "k", Resolution::kBase).size(), 1u);
                               ++nested;
                             })
                  .ok());
  EXPECT_EQ(nested, 2);
}

TEST_P(TileStoreConformanceTest, SyncKeepsEverythingReadable) {
  using conformance_internal::Key;
  for (int i = 0; i < 20; ++i) {
    Put(Key(1, "k", Resolution::kBase, i * 300000), std::to_string(i));
    if (i % 7 == 0) {
      ASSERT_TRUE(store_->Sync().ok());
    }
  }
  ASSERT_TRUE(store_->Sync().ok());
  EXPECT_EQ(ScanAll(1, "k", Resolution::kBase).size(), 20u);
}

// A reader never sees half of a Write: every batch sets two tiles and a meta entry to the same
// generation number, and readers check that what they see agrees.
TEST_P(TileStoreConformanceTest, ReadersSeeWholeWritesOnly) {
  using conformance_internal::Key;
  constexpr int kGenerations = 300;
  constexpr int kMinReads = 200;
  const TileKey a = Key(1, "a", Resolution::kBase, 0);
  const TileKey b = Key(1, "a", Resolution::kBase, 300000);
  std::atomic<bool> done{false};
  std::atomic<int> torn{0};
  std::atomic<int> reads{0};

  auto reader = [&] {
    while (!done.load()) {
      std::vector<std::optional<std::string>> values;
      if (!store_->MultiGet({a, b}, &values).ok() || values[0] != values[1]) torn.fetch_add(1);
      std::vector<std::string> scanned;
      if (!store_
               ->Scan(1, "a", Resolution::kBase, 0, 600000,
                      [&](int64_t, std::string_view v) { scanned.emplace_back(v); })
               .ok() ||
          !(scanned.empty() || (scanned.size() == 2 && scanned[0] == scanned[1]))) {
        torn.fetch_add(1);
      }
      reads.fetch_add(1);
    }
  };
  std::thread r1(reader);
  std::thread r2(reader);
  // Keep writing until the readers have overlapped with plenty of writes (bounded in time).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int generations = 0;
  absl::Status write_status;
  while (write_status.ok() && (generations < kGenerations || reads.load() < kMinReads) &&
         std::chrono::steady_clock::now() < deadline) {
    WriteBatch batch;
    batch.tiles = {{a, std::to_string(generations)}, {b, std::to_string(generations)}};
    batch.meta = {{"gen", std::to_string(generations)}};
    write_status = store_->Write(batch);
    ++generations;
  }
  done.store(true);
  r1.join();
  r2.join();
  EXPECT_EQ(torn.load(), 0);
  ASSERT_TRUE(write_status.ok()) << write_status;
  EXPECT_GE(reads.load(), kMinReads);
  EXPECT_EQ(Meta("gen"), std::to_string(generations - 1));
}

}  // namespace tessera::store
