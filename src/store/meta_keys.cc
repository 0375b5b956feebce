#include "store/meta_keys.h"

#include <fmt/format.h>

#include <array>
#include <charconv>

#include "common/strings.h"
#include "common/time_util.h"

namespace tessera::store::meta {
namespace {

constexpr std::string_view kSourcePrefix = "source/";
constexpr std::string_view kMaxEventTimeSuffix = "/max_event_time";
constexpr std::string_view kViewPrefix = "view/";
constexpr std::string_view kHasTilesSuffix = "/has_tiles";
constexpr std::string_view kLogPrefix = "log/";
constexpr std::string_view kPositionSuffix = "/position";
constexpr std::string_view kFollowPrefix = "file-follow/";

constexpr std::array<FamilyInfo, 17> kFamilies = {{
    {Family::kCatalogStatement, "catalog statement", kCatalogStatementPrefix, false,
     "catalog/stmt/<index>"},
    {Family::kCatalogViewId, "catalog view id", kCatalogViewIdPrefix, false,
     "catalog/view/<lower-case view>"},
    {Family::kCatalogNextViewId, "catalog next view id", kCatalogNextViewIdKey, true,
     "catalog/next_view_id"},
    {Family::kFormatVersion, "storage format version", kFormatVersionKey, true, "format_version"},
    {Family::kSourceMaxEventTime, "source max event time", kSourcePrefix, false,
     "source/<lower-case source>/max_event_time"},
    {Family::kViewHasTiles, "view has tiles", kViewPrefix, false, "view/<view id>/has_tiles"},
    {Family::kOwedRollup, "owed rollup", kOwedRollupPrefix, false,
     "rollup/owed/<view id>/<resolution>/<start ms>/<entity key>"},
    {Family::kInputProgress, "backfill input progress", kInputProgressPrefix, false,
     "backfill/input/<16 hex digits>"},
    {Family::kLegacyInputProgress, "backfill input progress (previous format)",
     kLegacyInputProgressPrefix, false, "file/<fingerprint>"},
    {Family::kLogPosition, "log position", kLogPrefix, false, "log/<source>/position"},
    {Family::kFollowOffset, "file follow offset", kFollowPrefix, false,
     "file-follow/<source>/<absolute path>"},
    {Family::kPubSubDedup, "Pub/Sub dedup window segment", kPubSubDedupPrefix, false,
     "pubsub/dedup/<lower-case source>/<16 hex digits>"},
    {Family::kPubSubClock, "Pub/Sub dedup window clock", kPubSubClockPrefix, false,
     "pubsub/clock/<lower-case source>"},
    {Family::kWatermarkLane, "watermark lane", kLanePrefix, false,
     "lane/<lower-case source>/<lane>"},
    {Family::kKafkaOffset, "Kafka partition offset", kKafkaPrefix, false,
     "kafka/<lower-case source>/<topic>/<partition>"},
    {Family::kBaseRetention, "base-tile retention", kBaseRetentionKey, true,
     "store/base_retention_ms"},
    {Family::kSpillState, "backfill spill runs", kSpillPrefix, false, "spill/<lower-case source>"},
}};

// Whole-string decimal parse (what from_chars accepts: no sign for unsigned, no '+').
template <typename T>
bool ParseNumber(std::string_view s, T* out, int base = 10) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, base);
  return ec == std::errc() && p == s.data() + s.size();
}

bool AllDigits(std::string_view s) {
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return !s.empty();
}

bool HasNoUpperCase(std::string_view s) { return s == ToLowerAscii(s); }

// The middle of `key` = prefix + middle + suffix, or nullopt.
std::optional<std::string_view> Between(std::string_view key, std::string_view prefix,
                                        std::string_view suffix) {
  if (key.size() < prefix.size() + suffix.size() || !key.starts_with(prefix) ||
      !key.ends_with(suffix)) {
    return std::nullopt;
  }
  return key.substr(prefix.size(), key.size() - prefix.size() - suffix.size());
}

}  // namespace

std::string CatalogStatementKey(size_t index) {
  return fmt::format("{}{:08d}", kCatalogStatementPrefix, index);
}

std::string CatalogViewIdKey(std::string_view view_name) {
  return fmt::format("{}{}", kCatalogViewIdPrefix, ToLowerAscii(view_name));
}

std::optional<std::string_view> ParseCatalogViewIdKey(std::string_view key) {
  if (!key.starts_with(kCatalogViewIdPrefix)) return std::nullopt;
  return key.substr(kCatalogViewIdPrefix.size());
}

std::string SourceMaxEventTimeKey(std::string_view source_name) {
  return fmt::format("{}{}{}", kSourcePrefix, ToLowerAscii(source_name), kMaxEventTimeSuffix);
}

std::string SourceLanePrefix(std::string_view source_name) {
  return fmt::format("{}{}/", kLanePrefix, ToLowerAscii(source_name));
}

std::string SourceLaneMaxEventTimeKey(std::string_view source_name, std::string_view lane) {
  return SourceLanePrefix(source_name) + std::string(lane);
}

std::string KafkaOffsetPrefix(std::string_view source_name) {
  return fmt::format("{}{}/", kKafkaPrefix, ToLowerAscii(source_name));
}

std::string KafkaOffsetKey(std::string_view source_name, std::string_view topic,
                           int32_t partition) {
  return fmt::format("{}{}/{}", KafkaOffsetPrefix(source_name), topic, partition);
}

std::string PubSubDedupPrefix(std::string_view source_name) {
  return fmt::format("{}{}/", kPubSubDedupPrefix, ToLowerAscii(source_name));
}

std::string PubSubDedupKey(std::string_view source_name, uint64_t segment) {
  return fmt::format("{}{:016x}", PubSubDedupPrefix(source_name), segment);
}

std::optional<PubSubDedupSegment> ParsePubSubDedupKey(std::string_view key) {
  constexpr size_t kHex = 16;
  if (!key.starts_with(kPubSubDedupPrefix) || key.size() < kPubSubDedupPrefix.size() + kHex + 1) {
    return std::nullopt;
  }
  const std::string_view hex = key.substr(key.size() - kHex);
  PubSubDedupSegment out;
  if (key[key.size() - kHex - 1] != '/' || !ParseNumber(hex, &out.segment, 16) ||
      hex != ToLowerAscii(hex)) {
    return std::nullopt;
  }
  out.source =
      key.substr(kPubSubDedupPrefix.size(), key.size() - kPubSubDedupPrefix.size() - kHex - 1);
  if (!HasNoUpperCase(out.source)) return std::nullopt;
  return out;
}

std::string PubSubClockKey(std::string_view source_name) {
  return fmt::format("{}{}", kPubSubClockPrefix, ToLowerAscii(source_name));
}

std::string SpillStateKey(std::string_view source_name) {
  return std::string(kSpillPrefix) + ToLowerAscii(source_name);
}

std::string ViewHasTilesKey(uint32_t view_id) {
  return fmt::format("{}{}{}", kViewPrefix, view_id, kHasTilesSuffix);
}

std::string OwedRollupViewPrefix(uint32_t view_id) {
  return fmt::format("{}{}/", kOwedRollupPrefix, view_id);
}

std::string OwedRollupSlotPrefix(uint32_t view_id, Resolution resolution, int64_t start_ms) {
  return fmt::format("{}{}/{}/{}/", kOwedRollupPrefix, view_id, static_cast<int>(resolution),
                     start_ms);
}

std::string OwedRollupKey(uint32_t view_id, Resolution resolution, int64_t start_ms,
                          std::string_view entity_key) {
  return OwedRollupSlotPrefix(view_id, resolution, start_ms).append(entity_key);
}

std::optional<OwedRollupMarker> ParseOwedRollupKey(std::string_view key) {
  if (!key.starts_with(kOwedRollupPrefix)) return std::nullopt;
  std::string_view rest = key.substr(kOwedRollupPrefix.size());
  // Three numbers, each ended by '/', then the entity key (any bytes, '/' included).
  std::string_view fields[3];
  for (std::string_view& field : fields) {
    const size_t slash = rest.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    field = rest.substr(0, slash);
    rest.remove_prefix(slash + 1);
  }
  OwedRollupMarker m;
  int resolution = -1;
  if (!ParseNumber(fields[0], &m.view_id) || !ParseNumber(fields[1], &resolution) ||
      !ParseNumber(fields[2], &m.start_ms)) {
    return std::nullopt;
  }
  if (resolution != static_cast<int>(Resolution::kHour) &&
      resolution != static_cast<int>(Resolution::kDay)) {
    return std::nullopt;
  }
  m.resolution = static_cast<Resolution>(resolution);
  m.entity_key = rest;
  return m;
}

std::string InputProgressKey(uint64_t seq) {
  return fmt::format("{}{:016x}", kInputProgressPrefix, seq);
}

std::optional<uint64_t> ParseInputProgressKey(std::string_view key) {
  if (!key.starts_with(kInputProgressPrefix)) return std::nullopt;
  const std::string_view hex = key.substr(kInputProgressPrefix.size());
  uint64_t seq = 0;
  if (hex.size() != 16 || !ParseNumber(hex, &seq, 16)) return std::nullopt;
  return seq;
}

std::string LogPositionKey(std::string_view source_name) {
  return fmt::format("{}{}{}", kLogPrefix, source_name, kPositionSuffix);
}

std::string FollowOffsetKey(std::string_view source_name, std::string_view absolute_path) {
  return fmt::format("{}{}/{}", kFollowPrefix, source_name, absolute_path);
}

std::string FollowOffsetPrefix(std::string_view source_name) {
  return FollowOffsetKey(source_name, "");
}

std::optional<FollowOffset> ParseFollowOffsetKey(std::string_view key) {
  if (!key.starts_with(kFollowPrefix)) return std::nullopt;
  const std::string_view rest = key.substr(kFollowPrefix.size());
  const size_t sep = rest.rfind("//");
  if (sep == std::string_view::npos) return std::nullopt;
  return FollowOffset{rest.substr(0, sep), rest.substr(sep + 1)};
}

std::optional<int64_t> ParseBaseRetentionValue(std::string_view value) {
  int64_t ms = 0;
  if (!AllDigits(value) || (value.size() > 1 && value[0] == '0') || !ParseNumber(value, &ms) ||
      ms > kMaxDurationMs) {
    return std::nullopt;
  }
  return ms;
}

std::span<const FamilyInfo> Families() { return kFamilies; }

const FamilyInfo& Info(Family family) { return kFamilies[static_cast<size_t>(family)]; }

bool Matches(Family family, std::string_view key) {
  const FamilyInfo& info = Info(family);
  if (info.exact) return key == info.literal_prefix;
  if (!key.starts_with(info.literal_prefix)) return false;
  const std::string_view rest = key.substr(info.literal_prefix.size());
  switch (family) {
    case Family::kCatalogStatement:
      return rest.size() >= 8 && AllDigits(rest);
    case Family::kCatalogViewId:
      return !rest.empty() && HasNoUpperCase(rest);
    case Family::kSourceMaxEventTime: {
      std::optional<std::string_view> name = Between(key, kSourcePrefix, kMaxEventTimeSuffix);
      return name.has_value() && HasNoUpperCase(*name);
    }
    case Family::kViewHasTiles: {
      std::optional<std::string_view> id = Between(key, kViewPrefix, kHasTilesSuffix);
      uint32_t v = 0;
      return id.has_value() && ParseNumber(*id, &v);
    }
    case Family::kOwedRollup:
      return ParseOwedRollupKey(key).has_value();
    case Family::kInputProgress:
      return ParseInputProgressKey(key).has_value();
    case Family::kLegacyInputProgress:
      return !rest.empty();
    case Family::kLogPosition:
      return Between(key, kLogPrefix, kPositionSuffix).has_value();
    case Family::kFollowOffset:
      return ParseFollowOffsetKey(key).has_value();
    case Family::kPubSubDedup:
      return ParsePubSubDedupKey(key).has_value();
    case Family::kPubSubClock:
    case Family::kSpillState:
      return HasNoUpperCase(rest);
    case Family::kWatermarkLane: {
      const size_t slash = rest.find('/');
      return slash != std::string_view::npos && slash > 0 && slash + 1 < rest.size() &&
             HasNoUpperCase(rest.substr(0, slash));
    }
    case Family::kKafkaOffset: {
      const size_t first = rest.find('/');
      const size_t last = rest.rfind('/');
      if (first == std::string_view::npos || first == 0 || last <= first + 1) return false;
      int32_t partition = 0;
      return HasNoUpperCase(rest.substr(0, first)) &&
             ParseNumber(rest.substr(last + 1), &partition) && partition >= 0;
    }
    case Family::kCatalogNextViewId:
    case Family::kFormatVersion:
    case Family::kBaseRetention:
      break;  // exact, handled above
  }
  return false;
}

std::optional<Family> Classify(std::string_view key) {
  for (const FamilyInfo& info : kFamilies) {
    if (Matches(info.family, key)) return info.family;
  }
  return std::nullopt;
}

}  // namespace tessera::store::meta
