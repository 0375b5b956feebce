#include "store/meta_keys.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "common/strings.h"
#include "common/time_util.h"

namespace tessera::store::meta {
namespace {

// Names a quoted SQL identifier can hold, chosen to look like other families' keys.
const std::vector<std::string>& AdversarialNames() {
  static const std::vector<std::string> names = {
      "",
      "a",
      "A",
      "plays",
      "Plays",
      "x/position",
      "x/max_event_time",
      "a/b",
      "a//b",
      "a/",
      "/",
      "//",
      "/a",
      "position",
      "log",
      "catalog/view",
      "1/has_tiles",
      "%2F",
      "a%2Fb",
      "file-follow",
      std::string("nul\0byte", 8),
      "\xC3\x89t\xC3\xA9",
  };
  return names;
}

const std::vector<std::string>& Paths() {
  static const std::vector<std::string> paths = {"/", "/a", "/a/b.ndjson", "/x/position",
                                                 "/tmp/plays/position"};
  return paths;
}

const std::vector<int64_t>& Times() {
  static const std::vector<int64_t> times = {0,
                                             -3600000,
                                             3600000,
                                             1767225600000,
                                             std::numeric_limits<int64_t>::min(),
                                             std::numeric_limits<int64_t>::max()};
  return times;
}

// Every key of every family for every adversarial argument, with what built it.
std::multimap<std::string, std::string> AllKeys() {
  std::multimap<std::string, std::string> keys;
  auto add = [&](std::string key, std::string what) { keys.emplace(std::move(key), what); };
  for (size_t i : {size_t{0}, size_t{1}, size_t{99999999}, size_t{100000000}}) {
    add(CatalogStatementKey(i), "stmt " + std::to_string(i));
  }
  add(std::string(kCatalogNextViewIdKey), "next");
  add(std::string(kFormatVersionKey), "format");
  add(std::string(kBaseRetentionKey), "base retention");
  for (uint32_t id : {0u, 1u, 12u, std::numeric_limits<uint32_t>::max()}) {
    add(ViewHasTilesKey(id), "has_tiles " + std::to_string(id));
  }
  for (uint64_t seq : {uint64_t{0}, uint64_t{255}, std::numeric_limits<uint64_t>::max()}) {
    add(InputProgressKey(seq), "progress " + std::to_string(seq));
  }
  for (const std::string& n : AdversarialNames()) {
    // Case-folded families: names equal up to case are the same object, so only one of them.
    if (n == ToLowerAscii(n) && !n.empty()) add(CatalogViewIdKey(n), "view " + n);
    if (n == ToLowerAscii(n)) add(SourceMaxEventTimeKey(n), "watermark " + n);
    add(LogPositionKey(n), "log " + n);
    if (n == ToLowerAscii(n) && !n.empty() && n.find('/') == std::string::npos) {
      add(SourceLaneMaxEventTimeKey(n, "plays/3"), "lane " + n);
      add(KafkaOffsetKey(n, "plays.v2", 3), "kafka " + n);
    }
    if (n == ToLowerAscii(n)) {
      add(PubSubClockKey(n), "pubsub clock " + n);
      add(SpillStateKey(n), "spill " + n);
      for (uint64_t seg : {uint64_t{0}, uint64_t{17}, std::numeric_limits<uint64_t>::max()}) {
        add(PubSubDedupKey(n, seg), fmt::format("pubsub dedup {} {}", n, seg));
      }
    }
    for (const std::string& p : Paths()) {
      if (p != "/") add(FollowOffsetKey(n, p), fmt::format("follow {} {}", n, p));
    }
    for (uint32_t id : {1u, 12u}) {
      for (Resolution r : {Resolution::kHour, Resolution::kDay}) {
        for (int64_t t : Times()) {
          add(OwedRollupKey(id, r, t, n), fmt::format("owed {} {} {} {}", id, int(r), t, n));
        }
      }
    }
  }
  return keys;
}

TEST(MetaKeysTest, SpellingsAreTheOnesExistingDbsHold) {
  EXPECT_EQ(CatalogStatementKey(3), "catalog/stmt/00000003");
  EXPECT_EQ(CatalogViewIdKey("ListenStats"), "catalog/view/listenstats");
  EXPECT_EQ(kCatalogNextViewIdKey, "catalog/next_view_id");
  EXPECT_EQ(kFormatVersionKey, "format_version");
  EXPECT_EQ(SourceMaxEventTimeKey("Plays"), "source/plays/max_event_time");
  EXPECT_EQ(ViewHasTilesKey(7), "view/7/has_tiles");
  EXPECT_EQ(OwedRollupKey(1, Resolution::kHour, -3600000, "u|1"), "rollup/owed/1/1/-3600000/u|1");
  EXPECT_EQ(OwedRollupViewPrefix(1), "rollup/owed/1/");
  EXPECT_EQ(SourceLaneMaxEventTimeKey("Plays", "plays/3"), "lane/plays/plays/3");
  EXPECT_EQ(KafkaOffsetKey("Plays", "plays", 3), "kafka/plays/plays/3");
  EXPECT_EQ(OwedRollupSlotPrefix(1, Resolution::kDay, 0), "rollup/owed/1/2/0/");
  EXPECT_EQ(InputProgressKey(41), "backfill/input/0000000000000029");
  EXPECT_EQ(LogPositionKey("Plays"), "log/Plays/position");  // declared spelling
  EXPECT_EQ(FollowOffsetKey("Ev", "/data/a.ndjson"), "file-follow/Ev//data/a.ndjson");
  EXPECT_EQ(FollowOffsetPrefix("Ev"), "file-follow/Ev/");
  EXPECT_EQ(PubSubDedupKey("Plays", 255), "pubsub/dedup/plays/00000000000000ff");
  EXPECT_EQ(PubSubDedupPrefix("Plays"), "pubsub/dedup/plays/");
  EXPECT_EQ(PubSubClockKey("Plays"), "pubsub/clock/plays");
  EXPECT_EQ(SpillStateKey("Plays"), "spill/plays");
  EXPECT_EQ(kBaseRetentionKey, "store/base_retention_ms");
  EXPECT_EQ(Classify(kBaseRetentionKey), Family::kBaseRetention);
}

TEST(MetaKeysTest, NoLiteralPrefixIsAPrefixOfAnother) {
  for (const FamilyInfo& a : Families()) {
    EXPECT_EQ(&Info(a.family), &a);
    for (const FamilyInfo& b : Families()) {
      if (a.family == b.family) continue;
      EXPECT_FALSE(b.literal_prefix.starts_with(a.literal_prefix))
          << a.name << " (" << a.literal_prefix << ") is a prefix of " << b.name;
    }
  }
}

TEST(MetaKeysTest, EveryKeyBelongsToExactlyOneFamilyAndNoTwoArgumentsShareAKey) {
  const std::multimap<std::string, std::string> keys = AllKeys();
  for (auto it = keys.begin(); it != keys.end(); ++it) {
    EXPECT_EQ(keys.count(it->first), 1u)
        << "'" << it->first << "' is built by " << it->second << " and by another argument";
    int families = 0;
    for (const FamilyInfo& f : Families()) families += Matches(f.family, it->first) ? 1 : 0;
    EXPECT_EQ(families, 1) << "'" << it->first << "' (" << it->second << ")";
    EXPECT_TRUE(Classify(it->first).has_value()) << it->first;
  }
}

TEST(MetaKeysTest, ParsersRoundTrip) {
  for (const std::string& n : AdversarialNames()) {
    for (const std::string& p : Paths()) {
      if (p == "/") continue;
      const std::string key = FollowOffsetKey(n, p);  // the parse is views into it
      std::optional<FollowOffset> f = ParseFollowOffsetKey(key);
      ASSERT_TRUE(f.has_value()) << key;
      EXPECT_EQ(f->source, n);
      EXPECT_EQ(f->path, p);
    }
    for (int64_t t : Times()) {
      const std::string key = OwedRollupKey(12, Resolution::kDay, t, n);
      std::optional<OwedRollupMarker> m = ParseOwedRollupKey(key);
      ASSERT_TRUE(m.has_value()) << key;
      EXPECT_EQ(m->view_id, 12u);
      EXPECT_EQ(m->resolution, Resolution::kDay);
      EXPECT_EQ(m->start_ms, t);
      EXPECT_EQ(m->entity_key, n);
      EXPECT_TRUE(key.starts_with(OwedRollupSlotPrefix(12, Resolution::kDay, t)));
      EXPECT_TRUE(key.starts_with(OwedRollupViewPrefix(12)));
    }
    if (n == ToLowerAscii(n) && !n.empty()) {
      const std::string key = CatalogViewIdKey(n);
      EXPECT_EQ(ParseCatalogViewIdKey(key), n);
    }
  }
  for (const std::string& n : AdversarialNames()) {
    if (n != ToLowerAscii(n)) continue;
    const std::string key = PubSubDedupKey(n, 0xfedcba9876543210);
    std::optional<PubSubDedupSegment> d = ParsePubSubDedupKey(key);
    ASSERT_TRUE(d.has_value()) << key;
    EXPECT_EQ(d->source, n);
    EXPECT_EQ(d->segment, 0xfedcba9876543210u);
    EXPECT_TRUE(key.starts_with(PubSubDedupPrefix(n)));
  }
  EXPECT_EQ(ParseInputProgressKey(InputProgressKey(0xabcdef)), 0xabcdefu);
  EXPECT_EQ(ParseInputProgressKey("backfill/input/29"), std::nullopt);
}

// What each reader's scan prefix returns, after the reader's own filter, is exactly its own keys.
TEST(MetaKeysTest, ScanPrefixesSeeOnlyTheirOwnKeys) {
  const std::multimap<std::string, std::string> keys = AllKeys();
  auto scan = [&](std::string_view prefix) {
    std::vector<std::string> out;
    for (const auto& [key, what] : keys) {
      if (key.starts_with(prefix)) out.push_back(key);
    }
    return out;
  };
  for (const std::string& key : scan(kCatalogStatementPrefix)) {
    EXPECT_EQ(Classify(key), Family::kCatalogStatement) << key;
  }
  for (const std::string& key : scan(kCatalogViewIdPrefix)) {
    EXPECT_EQ(Classify(key), Family::kCatalogViewId) << key;
  }
  for (const std::string& key : scan(kInputProgressPrefix)) {
    EXPECT_EQ(Classify(key), Family::kInputProgress) << key;
  }
  EXPECT_TRUE(scan(kLegacyInputProgressPrefix).empty());  // "file/" is not "file-follow/"
  for (const std::string& key : scan(kCatalogPrefix)) {
    const std::optional<Family> f = Classify(key);
    EXPECT_TRUE(f == Family::kCatalogStatement || f == Family::kCatalogViewId ||
                f == Family::kCatalogNextViewId)
        << key;
  }
  for (uint32_t id : {1u, 12u}) {
    for (const std::string& key : scan(OwedRollupViewPrefix(id))) {
      EXPECT_EQ(ParseOwedRollupKey(key)->view_id, id) << key;
    }
    for (int64_t t : Times()) {
      const std::string slot = OwedRollupSlotPrefix(id, Resolution::kHour, t);
      const std::vector<std::string> found = scan(slot);
      EXPECT_EQ(found.size(), AdversarialNames().size()) << slot;
      for (const std::string& key : found) {
        std::optional<OwedRollupMarker> m = ParseOwedRollupKey(key);
        EXPECT_EQ(m->start_ms, t) << key;
        EXPECT_EQ(m->resolution, Resolution::kHour) << key;
      }
    }
  }
  // A follow prefix also matches sources whose names continue with '/': the reader keeps the
  // keys whose parsed source is its own, and that is exactly its own keys.
  for (const std::string& n : AdversarialNames()) {
    size_t mine = 0;
    for (const std::string& key : scan(FollowOffsetPrefix(n))) {
      std::optional<FollowOffset> f = ParseFollowOffsetKey(key);
      ASSERT_TRUE(f.has_value()) << key;
      if (f->source == n) ++mine;
    }
    EXPECT_EQ(mine, Paths().size() - 1) << n;
  }
  for (const std::string& n : AdversarialNames()) {
    if (n != ToLowerAscii(n)) continue;
    size_t mine = 0;
    for (const std::string& key : scan(PubSubDedupPrefix(n))) {
      std::optional<PubSubDedupSegment> d = ParsePubSubDedupKey(key);
      ASSERT_TRUE(d.has_value()) << key;
      if (d->source == n) ++mine;
    }
    EXPECT_EQ(mine, 3u) << n;
  }
  EXPECT_FALSE(scan(FollowOffsetPrefix("a")).size() == Paths().size() - 1)
      << "expected the prefix of source 'a' to also match source 'a/b' (why the filter exists)";
}

TEST(MetaKeysTest, ClassifyRejectsWhatNothingWrites) {
  for (std::string_view key :
       {"", "catalog/", "catalog/stmt/12", "catalog/view/", "catalog/view/Upper", "format_version2",
        "source/Plays/max_event_time", "source/x", "view/x/has_tiles", "view//has_tiles",
        "rollup/owed/1/0/0/k", "rollup/owed/1/1/x/k", "rollup/owed/1/1/0", "backfill/input/1",
        "file/", "log/x", "file-follow/a/relative", "test/position"}) {
    EXPECT_EQ(Classify(key), std::nullopt) << key;
  }
  for (std::string_view key : {"store/", "store/base_retention_ms/x", "store/base_retention"}) {
    EXPECT_EQ(Classify(key), std::nullopt) << key;
  }
  for (std::string_view key :
       {"pubsub/dedup/", "pubsub/dedup/a/00000000000000FF", "pubsub/dedup/A/0000000000000000",
        "pubsub/dedup/a/000000000000000", "pubsub/dedup/a0000000000000000", "pubsub/clock/A"}) {
    EXPECT_EQ(Classify(key), std::nullopt) << key;
  }
  EXPECT_EQ(Classify("log//position"), Family::kLogPosition);
  EXPECT_EQ(Classify("file/0123abcd"), Family::kLegacyInputProgress);
}

// The retention value is canonical decimal milliseconds: one spelling per value, so a reader
// never guesses (and a value an older or foreign writer spelled otherwise is refused, not read).
TEST(MetaKeysTest, BaseRetentionValueIsCanonicalDecimal) {
  EXPECT_EQ(ParseBaseRetentionValue("0"), 0);
  EXPECT_EQ(ParseBaseRetentionValue("172800000"), 172800000);
  EXPECT_EQ(ParseBaseRetentionValue(std::to_string(kMaxDurationMs)), kMaxDurationMs);
  for (std::string_view bad : {"", "-1", "+5", "007", " 1", "1 ", "1e9", "30d", "0x10",
                               "99999999999999999999", "3153600000001"}) {
    EXPECT_EQ(ParseBaseRetentionValue(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace tessera::store::meta
