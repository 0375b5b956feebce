#include "store/key_codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace tessera::store {
namespace {

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

TEST(KeyCodecTest, LayoutIsAsDocumented) {
  std::string k = EncodeTileKey(0x01020304, "ab", Resolution::kHour, 0);
  const std::string expected = std::string(
                                   "t\x01\x02\x03\x04\x02"
                                   "ab\x01",
                                   9) +
                               std::string("\x80\0\0\0\0\0\0\0", 8);
  EXPECT_EQ(k, expected);
  EXPECT_EQ(EncodeTileKey(0, "", Resolution::kBase, -1),
            std::string("t\0\0\0\0\0\0", 7) + std::string("\x7f\xff\xff\xff\xff\xff\xff\xff", 8));
  EXPECT_EQ(EncodeMetaKey("catalog"), "mcatalog");
  EXPECT_EQ(EncodeTilePrefix(1, "ab", Resolution::kDay),
            EncodeTileKey(1, "ab", Resolution::kDay, 5).substr(0, 9));
}

TEST(KeyCodecTest, LogLayoutIsAsDocumented) {
  EXPECT_EQ(EncodeLogSeqKey(kLogEntryNamespace, "ab", 0x0102), std::string("l\x02"
                                                                           "ab\0\0\0\0\0\0\x01\x02",
                                                                           12));
  EXPECT_EQ(EncodeLogSeqKey(kLogBatchSeqNamespace, "", 1),
            std::string("c\0\0\0\0\0\0\0\0\x01", 10));
  EXPECT_EQ(EncodeLogBatchKey("s", "req-1"), "b\x01sreq-1");
  EXPECT_EQ(EncodeLogPrefix(kLogTrimNamespace, "s"), "r\x01s");
  EXPECT_EQ(DecodeLogSeq(EncodeLogSeqKey(kLogEntryNamespace, "xyz", 0xfedcba9876543210)),
            0xfedcba9876543210u);
  // Log namespaces never collide with tiles, metadata or each other.
  const std::set<char> namespaces = {kTileNamespace,     kMetaNamespace,        kLogEntryNamespace,
                                     kLogBatchNamespace, kLogBatchSeqNamespace, kLogTrimNamespace};
  EXPECT_EQ(namespaces.size(), 6u);
}

TEST(KeyCodecTest, LogEntriesOfASourceAreContiguousAndOrderedBySeq) {
  // Sources are length-prefixed, so "a" and "ab" (or "a\0") never interleave.
  const std::vector<std::string> sources = {"", "a", "ab", std::string("a\0", 2), "b", "\xff"};
  const std::vector<uint64_t> seqs = {0, 1, 255, 256, uint64_t{1} << 40, ~uint64_t{0}};
  std::vector<std::tuple<std::string, size_t, uint64_t>> keys;  // (bytes, source index, seq)
  for (size_t s = 0; s < sources.size(); ++s) {
    for (uint64_t q : seqs)
      keys.emplace_back(EncodeLogSeqKey(kLogEntryNamespace, sources[s], q), s, q);
  }
  std::sort(keys.begin(), keys.end());
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    const auto& [a, sa, qa] = keys[i];
    const auto& [b, sb, qb] = keys[i + 1];
    if (sa == sb) {
      EXPECT_LT(qa, qb);
    }
    // Once a source's run ends it never resumes.
    for (size_t j = i + 2; j < keys.size() && sa != sb; ++j) EXPECT_NE(std::get<1>(keys[j]), sa);
    const std::string prefix = EncodeLogPrefix(kLogEntryNamespace, sources[sa]);
    EXPECT_EQ(b.starts_with(prefix), sa == sb);
  }
}

TEST(KeyCodecTest, RoundTrips) {
  std::vector<TileKey> keys = {
      {0, "", Resolution::kBase, 0},
      {0xffffffffu, std::string("\0\xff|a", 4), Resolution::kDay, kMin},
      {42, std::string(300, 'z'), Resolution::kHour, kMax},
      {7, "user|track", Resolution::kBase, -1},
      {7, std::string(128, '\x80'), Resolution::kBase, 1700000000000},
  };
  for (const TileKey& k : keys) {
    std::string bytes = EncodeTileKey(k);
    absl::StatusOr<TileKey> back = DecodeTileKey(bytes);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, k);
    EXPECT_EQ(DecodeTileStart(bytes), k.start_ms);
    EXPECT_EQ(TilePrefixLength(bytes),
              EncodeTilePrefix(k.view_id, k.entity_key, k.resolution).size());
    EXPECT_EQ(TilePrefixLength(EncodeTilePrefix(k.view_id, k.entity_key, k.resolution)),
              EncodeTilePrefix(k.view_id, k.entity_key, k.resolution).size());
  }
  absl::StatusOr<std::string_view> meta = DecodeMetaKey(EncodeMetaKey("pos/x"));
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(*meta, "pos/x");
}

TEST(KeyCodecTest, RejectsMalformedKeys) {
  const std::string good = EncodeTileKey(5, "abc", Resolution::kHour, 123);
  std::string wrong_namespace = good;
  wrong_namespace[0] = kMetaNamespace;
  std::vector<std::string> bad = {
      "",
      "t",
      wrong_namespace,                                // wrong namespace
      good.substr(0, good.size() - 1),                // truncated start
      good + "x",                                     // trailing byte
      good.substr(0, 6),                              // truncated entity key
      EncodeTilePrefix(5, "abc", Resolution::kHour),  // prefix only, no start
      std::string("t\0\0\0\x05\x80\x00", 7) + "abc\x01" + std::string(8, '\0'),  // overlong len
      std::string("t\0\0\0\x05\x03", 6) + "abc\x04" + std::string(8, '\0'),      // bad resolution
      std::string("t\0\0\0\x05\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 15),    // huge length
  };
  for (const std::string& b : bad) {
    absl::StatusOr<TileKey> k = DecodeTileKey(b);
    EXPECT_FALSE(k.ok()) << "accepted " << b.size() << " bytes";
    if (!k.ok()) {
      EXPECT_EQ(k.status().code(), absl::StatusCode::kDataLoss);
    }
  }
  EXPECT_FALSE(DecodeMetaKey("").ok());
  EXPECT_FALSE(DecodeMetaKey(good).ok());
  EXPECT_EQ(TilePrefixLength(EncodeMetaKey("x")), std::nullopt);
  EXPECT_EQ(TilePrefixLength(good + "x"), std::nullopt);
}

TEST(KeyCodecTest, RandomBytesNeverCrashDecode) {
  std::mt19937_64 rng(7);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes(rng() % 40, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    if (i % 2 == 0 && !bytes.empty()) bytes[0] = kTileNamespace;
    absl::StatusOr<TileKey> k = DecodeTileKey(bytes);
    if (k.ok()) {
      ++accepted;
      EXPECT_EQ(EncodeTileKey(*k), bytes);  // only canonical encodings are accepted
    }
    (void)TilePrefixLength(bytes);
  }
  EXPECT_GE(accepted, 0);
}

TEST(KeyCodecTest, StartOrderIsNumericOrder) {
  std::vector<int64_t> starts = {kMin, kMin + 1, -86400000, -300000,       -2,       -1,  0,
                                 1,    2,        300000,    1700000000000, kMax - 1, kMax};
  for (size_t i = 1; i < starts.size(); ++i) {
    EXPECT_LT(EncodeTileKey(1, "k", Resolution::kBase, starts[i - 1]),
              EncodeTileKey(1, "k", Resolution::kBase, starts[i]))
        << starts[i - 1] << " vs " << starts[i];
  }
}

// Encoded byte order == (view, key length, key bytes, resolution, start) order, and in
// particular == (view, resolution, start) order for one key: a Scan range is contiguous.
TEST(KeyCodecTest, ByteOrderMatchesTupleOrderForRandomKeys) {
  std::mt19937_64 rng(12345);
  const std::vector<std::string> entities = {
      "", "a", "ab", "abc", "b", std::string("a\0", 2), std::string(130, 'q'), "\xff", "\x80\x01"};
  auto random_start = [&]() -> int64_t {
    switch (rng() % 4) {
      case 0:
        return static_cast<int64_t>(rng());
      case 1:
        return static_cast<int64_t>(rng() % 2000) - 1000;
      case 2:
        return rng() % 2 ? kMin + static_cast<int64_t>(rng() % 3)
                         : kMax - static_cast<int64_t>(rng() % 3);
      default:
        return (static_cast<int64_t>(rng() % 20000) - 10000) * 300000;
    }
  };
  using Tuple = std::tuple<uint32_t, size_t, std::string, uint8_t, int64_t>;
  std::vector<std::pair<Tuple, std::string>> items;
  for (int i = 0; i < 5000; ++i) {
    TileKey k{static_cast<uint32_t>(rng() % 3 == 0 ? rng() : rng() % 4),
              entities[rng() % entities.size()], static_cast<Resolution>(rng() % 3),
              random_start()};
    items.emplace_back(Tuple(k.view_id, k.entity_key.size(), k.entity_key,
                             static_cast<uint8_t>(k.resolution), k.start_ms),
                       EncodeTileKey(k));
  }
  for (size_t i = 0; i + 1 < items.size(); ++i) {
    for (size_t j = i + 1; j < std::min(items.size(), i + 40); ++j) {
      const auto& [ta, ea] = items[i];
      const auto& [tb, eb] = items[j];
      EXPECT_EQ(ta < tb, ea < eb);
      EXPECT_EQ(ta == tb, ea == eb);
    }
  }
  // And every (view, key, res) group is a contiguous run once sorted by bytes.
  std::sort(items.begin(), items.end(),
            [](const auto& x, const auto& y) { return x.second < y.second; });
  for (size_t i = 1; i < items.size(); ++i) EXPECT_LE(items[i - 1].first, items[i].first);
}

TEST(KeyCodecTest, PrefixSuccessor) {
  EXPECT_EQ(PrefixSuccessor("ab"), "ac");
  EXPECT_EQ(PrefixSuccessor("a\xff"), "b");
  EXPECT_EQ(PrefixSuccessor("\xff\xff"), "");
  EXPECT_EQ(PrefixSuccessor(""), "");
  EXPECT_EQ(PrefixSuccessor("m"), "n");
}

// A run hands back every tile's key and value as added, across its buffers (several MiB of
// tiles, one larger than a buffer), and ExpandTileRuns decodes them ahead of the batch's tiles.
TEST(TileRunTest, KeysAndValuesRoundTrip) {
  TileRun run;
  std::vector<std::string> values;
  for (int i = 0; i < 5000; ++i) {
    values.push_back(std::string(i == 1234 ? (3 << 20) : 1 + i % 1500, static_cast<char>(i)));
    run.BeginTile(7, "user" + std::to_string(100000 + i), Resolution::kBase, i)
        ->append(values.back());
  }
  ASSERT_EQ(run.size(), values.size());
  for (int i = 0; i < 5000; ++i) {
    EXPECT_EQ(run.key(i),
              EncodeTileKey(7, "user" + std::to_string(100000 + i), Resolution::kBase, i));
    ASSERT_EQ(run.value(i), values[i]) << i;
  }

  WriteBatch batch;
  batch.tile_runs.push_back(std::move(run));
  batch.tiles.emplace_back(TileKey{7, "user100000", Resolution::kBase, 0}, "later");
  absl::StatusOr<WriteBatch> expanded = ExpandTileRuns(batch);
  ASSERT_TRUE(expanded.ok()) << expanded.status();
  ASSERT_EQ(expanded->tiles.size(), 5001u);
  EXPECT_TRUE(expanded->tile_runs.empty());
  EXPECT_EQ(expanded->tiles[3].first, (TileKey{7, "user100003", Resolution::kBase, 3}));
  EXPECT_EQ(expanded->tiles[3].second, values[3]);
  EXPECT_EQ(expanded->tiles.back().second, "later");
}

}  // namespace
}  // namespace tessera::store
