#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "store/tile_store.h"

// The registry of metadata keys: every key any component reads or writes in the TileStore's
// metadata namespace (TileStore::GetMeta / ScanMeta / WriteBatch::meta) is built and parsed
// here, and nowhere else. docs/storage_format.md describes the values; this file is the source
// of truth for the key spellings. Pure functions, thread-safe.
//
// Rules every family follows (meta_keys_test.cc checks them):
//   * A family is a fixed literal (its "literal prefix") followed by its arguments. No literal
//     prefix is a prefix of another family's, so keys of two families never collide and a scan
//     of one family's prefix never sees another family's keys, whatever the arguments.
//   * Within a family the key determines its arguments (Parse* round-trips), also for names
//     holding '/', '%', upper case or nothing at all (quoted SQL identifiers may hold any byte).
//     Numbers are decimal (or fixed-width hex where noted); free text (a name, an entity key, a
//     path) comes last or is followed by a fixed suffix, so no escaping is needed.
//   * Names: callers pass a source or view name as the catalog declares it; the family decides
//     its spelling. Catalog view ids and the watermark use ToLowerAscii(name) (SQL identifiers
//     are case-insensitive); log positions and follow offsets use the declared spelling, which
//     the catalog stores and which is unique up to case (two sources cannot differ only in
//     case). Both are kept byte-identical to what earlier releases wrote, so existing DBs read
//     the same; changing a spelling needs a read fallback for the old one (see the doc).
//   * Keys the engine writes are all registered: Classify() names the family of any key, and a
//     test runs a backfill plus a live run and classifies every key left in the store.
namespace tessera::store::meta {

// ---- Catalog (engine/catalog_store.cc). Values are decimal unless noted.

// Every catalog entry (the read-only server's catalog fingerprint scans this).
inline constexpr std::string_view kCatalogPrefix = "catalog/";
// "catalog/stmt/<index, 8+ decimal digits>" -> one CREATE statement's SQL text, index =
// registration order.
inline constexpr std::string_view kCatalogStatementPrefix = "catalog/stmt/";
std::string CatalogStatementKey(size_t index);
// "catalog/view/<lower-case view name>" -> the view's id.
inline constexpr std::string_view kCatalogViewIdPrefix = "catalog/view/";
std::string CatalogViewIdKey(std::string_view view_name);
// The view name inside a CatalogViewIdKey (what follows the prefix), or nullopt.
std::optional<std::string_view> ParseCatalogViewIdKey(std::string_view key);
// -> the next view id to hand out.
inline constexpr std::string_view kCatalogNextViewIdKey = "catalog/next_view_id";
// -> the DB's storage format (absent = 1; see docs/storage_format.md).
inline constexpr std::string_view kFormatVersionKey = "format_version";

// ---- Ingest pipeline (engine/ingest_pipeline.cc).

// "source/<lower-case source name>/max_event_time" -> newest event time seen (epoch ms).
std::string SourceMaxEventTimeKey(std::string_view source_name);
// ---- Watermark lanes (engine/watermark.h): "lane/<lower-case source name>/" + lane -> newest
// event time seen on that lane of the source (e.g. the Kafka partition "plays/3"), epoch ms.
inline constexpr std::string_view kLanePrefix = "lane/";
std::string SourceLanePrefix(std::string_view source_name);
std::string SourceLaneMaxEventTimeKey(std::string_view source_name, std::string_view lane);

// ---- Kafka connector (source/kafka): "kafka/<lower-case source name>/<topic>/<partition>" ->
// the next offset to consume (decimal): every message before it is in the tiles. Topic names
// hold no '/' (Kafka allows [a-zA-Z0-9._-]).
inline constexpr std::string_view kKafkaPrefix = "kafka/";
std::string KafkaOffsetPrefix(std::string_view source_name);
std::string KafkaOffsetKey(std::string_view source_name, std::string_view topic, int32_t partition);
// ---- Pub/Sub connector (source/pubsub): "pubsub/dedup/<lower-case source name>/<segment, 16
// lower-case hex digits>" -> one segment of the source's dedup window: the ids of the messages one
// flush committed (source/pubsub/dedup_window.h has the value's encoding).
inline constexpr std::string_view kPubSubDedupPrefix = "pubsub/dedup/";
std::string PubSubDedupPrefix(std::string_view source_name);
std::string PubSubDedupKey(std::string_view source_name, uint64_t segment);
struct PubSubDedupSegment {
  std::string_view source;  // a view into the parsed key
  uint64_t segment = 0;
};
// The source and segment a key names, or nullopt. The scan prefix of source "a" also matches the
// keys of a source "a/b": readers keep only keys whose parsed source is theirs.
std::optional<PubSubDedupSegment> ParsePubSubDedupKey(std::string_view key);
// "pubsub/clock/<lower-case source name>" -> the running time of the source's dedup window at its
// last checkpoint (milliseconds, decimal, may be negative).
inline constexpr std::string_view kPubSubClockPrefix = "pubsub/clock/";
std::string PubSubClockKey(std::string_view source_name);

// "view/<view id>/has_tiles" -> "1" once the view has flushed a tile.
std::string ViewHasTilesKey(uint32_t view_id);

// ---- Owed rollups (engine/rollups.cc): "rollup/owed/<view id>/<resolution>/<start ms>/<entity
// key>" -> "" (a marker: that rollup tile is owed). Resolution is 1 (hour) or 2 (day).
inline constexpr std::string_view kOwedRollupPrefix = "rollup/owed/";
std::string OwedRollupViewPrefix(uint32_t view_id);
std::string OwedRollupSlotPrefix(uint32_t view_id, Resolution resolution, int64_t start_ms);
std::string OwedRollupKey(uint32_t view_id, Resolution resolution, int64_t start_ms,
                          std::string_view entity_key);
struct OwedRollupMarker {
  uint32_t view_id = 0;
  Resolution resolution = Resolution::kHour;
  int64_t start_ms = 0;
  std::string_view entity_key;  // a view into the parsed key
};
// The marker a key names, or nullopt when it is not an owed-rollup key of a rollup resolution.
std::optional<OwedRollupMarker> ParseOwedRollupKey(std::string_view key);

// ---- Spill runs of a backfill under a memory budget (engine/spill.h): "spill/<lower-case
// source name>" -> the runs written and how far their merge got (engine/spill.h has the
// binary encoding).
inline constexpr std::string_view kSpillPrefix = "spill/";
std::string SpillStateKey(std::string_view source_name);

// ---- Backfill input progress (engine/input_progress.cc): a JSON record per input.

// "backfill/input/<record number, 16 lower-case hex digits>" -> {path, offset, lines, hash,
// head_hash, done}.
inline constexpr std::string_view kInputProgressPrefix = "backfill/input/";
std::string InputProgressKey(uint64_t seq);
std::optional<uint64_t> ParseInputProgressKey(std::string_view key);
// The previous format, read and migrated, never written: "file/<fingerprint of the stored
// bytes>" -> {path, offset, lines, done}.
inline constexpr std::string_view kLegacyInputProgressPrefix = "file/";

// ---- Source positions (source/).

// "log/<source name>/position" -> the event-log seq a connector = 'http' source has consumed
// into the tiles (decimal).
std::string LogPositionKey(std::string_view source_name);
// "file-follow/<source name>/<absolute path>" -> the byte offset a connector = 'file' source
// has consumed of that file (decimal). The path is absolute and lexically normal (no "//").
std::string FollowOffsetKey(std::string_view source_name, std::string_view absolute_path);
// The scan prefix of a source's follow offsets. It also matches the keys of a source whose name
// continues with '/' ("a" vs "a/b"): readers keep only keys whose ParseFollowOffsetKey source
// is theirs.
std::string FollowOffsetPrefix(std::string_view source_name);
struct FollowOffset {
  std::string_view source;  // views into the parsed key
  std::string_view path;
};
// Splits at the last "//" (the separator '/' plus the path's leading '/'); nullopt when the key
// is not a follow-offset key.
std::optional<FollowOffset> ParseFollowOffsetKey(std::string_view key);

// ---- Store settings (engine/retention.h).

// "store/base_retention_ms" -> the base-tile retention in milliseconds (decimal; absent or 0 = base
// tiles are kept forever). Read by the engine (LoadBaseRetention: readers round the tails of
// windows reaching past it) and by the RocksDB store (its compaction filter drops expired base
// tiles), so the value's syntax is defined here, beside the key.
inline constexpr std::string_view kBaseRetentionKey = "store/base_retention_ms";
// The value of kBaseRetentionKey: canonical decimal (no sign, no leading zero, no spaces),
// 0 .. kMaxDurationMs; nullopt for anything else. Policy (engine/retention.h:
// ValidateBaseRetention) is checked by the engine, not here.
std::optional<int64_t> ParseBaseRetentionValue(std::string_view value);

// ---- The registry.

enum class Family {
  kCatalogStatement,
  kCatalogViewId,
  kCatalogNextViewId,
  kFormatVersion,
  kSourceMaxEventTime,
  kViewHasTiles,
  kOwedRollup,
  kInputProgress,
  kLegacyInputProgress,
  kLogPosition,
  kFollowOffset,
  kPubSubDedup,
  kPubSubClock,
  kWatermarkLane,
  kKafkaOffset,
  kBaseRetention,
  kSpillState,
};

struct FamilyInfo {
  Family family;
  std::string_view name;            // for messages, e.g. "log position"
  std::string_view literal_prefix;  // every key of the family starts with it
  bool exact;                       // the key is the literal itself
  std::string_view pattern;         // e.g. "log/<source>/position"
};

// Every family, in the order of the enum.
std::span<const FamilyInfo> Families();
const FamilyInfo& Info(Family family);

// True when `key` is well-formed for `family` (its full grammar, not just the prefix).
bool Matches(Family family, std::string_view key);
// The family of a well-formed key, or nullopt for a key nothing in Tessera writes.
std::optional<Family> Classify(std::string_view key);

}  // namespace tessera::store::meta
