#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "store/tile_store.h"

// Byte layout of keys in ordered key-value stores (RocksDB now, Bigtable later). Pure functions,
// thread-safe, no allocation beyond the returned strings.
//
//   metadata key: kMetaNamespace | user meta key bytes
//   tile key:     kTileNamespace | view_id (4 bytes big-endian)
//                 | varint(entity_key.size()) | entity_key bytes
//                 | resolution (1 byte)
//                 | start_ms (8 bytes big-endian, sign bit flipped)
//
// Everything before start_ms is the "tile prefix" of (view_id, entity_key, resolution). The
// (view, key, resolution) encoding is prefix-free (the entity key is length-prefixed), so
//   * one (view, key, resolution)'s tiles are exactly the keys starting with its tile prefix, a
//     single contiguous range ordered by start_ms (negative times included): a Scan is one Seek
//     and Next until the upper bound;
//   * no tile prefix is a prefix of another, so "ab" and "abc" never interleave.
// Byte order of tile keys is (view_id, entity_key.size(), entity_key, resolution, start_ms):
// entity keys of one view are grouped by length first, which is fine because nothing scans
// across entity keys. Metadata keys sort by their raw bytes, and never mix with tile keys.
//
// The event log (store/event_log.h) lives in four more namespaces. Every log key starts with
// namespace | varint(source.size()) | source bytes (the "log prefix", prefix-free like the tile
// prefix, so sources "a" and "ab" never interleave):
//   entry:       kLogEntryNamespace    | source | seq (8 bytes big-endian)  -> payload
//   batch id:    kLogBatchNamespace    | source | batch_id bytes (to the end) -> AppendResult
//   batch index: kLogBatchSeqNamespace | source | seq (8 bytes big-endian)  -> batch_id
//   trim mark:   kLogTrimNamespace     | source                            -> seq (8 bytes BE)
// One source's entries are a single contiguous range ordered by seq (a Read is one Seek). The
// batch index orders a source's batch ids by seq, so retention can drop the oldest ones with a
// range scan. The trim mark remembers how far a source was trimmed, so the next seq stays above
// every seq ever handed out even when all entries are gone.
//
// Changing this layout changes the on-disk format: bump kKeyFormatVersion and migrate.
namespace tessera::store {

inline constexpr int kKeyFormatVersion = 1;
inline constexpr char kMetaNamespace = 'm';
inline constexpr char kTileNamespace = 't';
inline constexpr size_t kStartMsBytes = 8;
inline constexpr size_t kViewPrefixBytes = 5;  // namespace and view id
inline constexpr char kLogEntryNamespace = 'l';
inline constexpr char kLogBatchNamespace = 'b';
inline constexpr char kLogBatchSeqNamespace = 'c';
inline constexpr char kLogTrimNamespace = 'r';
inline constexpr size_t kLogSeqBytes = 8;

// Order-preserving int64 <-> uint64 mapping: flips the sign bit so that, big-endian encoded,
// INT64_MIN < -1 < 0 < INT64_MAX in byte order.
inline uint64_t OrderedFromInt64(int64_t v) {
  return static_cast<uint64_t>(v) ^ (uint64_t{1} << 63);
}
inline int64_t Int64FromOrdered(uint64_t v) {
  return static_cast<int64_t>(v ^ (uint64_t{1} << 63));
}

// Appends the tile prefix of (view_id, entity_key, resolution) to `out`.
void AppendTilePrefix(uint32_t view_id, std::string_view entity_key, Resolution resolution,
                      std::string* out);
// Appends the 8 start_ms bytes that end a tile key.
void AppendTileStart(int64_t start_ms, std::string* out);

std::string EncodeTilePrefix(uint32_t view_id, std::string_view entity_key, Resolution resolution);
std::string EncodeTileKey(uint32_t view_id, std::string_view entity_key, Resolution resolution,
                          int64_t start_ms);
inline std::string EncodeTileKey(const TileKey& key) {
  return EncodeTileKey(key.view_id, key.entity_key, key.resolution, key.start_ms);
}

// `batch` with its tile_runs decoded into tiles, placed ahead of the batch's own tiles (the order
// in which a later entry wins is kept), for stores that write tiles one by one. DataLoss when a
// run holds a key that is not a tile key.
absl::StatusOr<WriteBatch> ExpandTileRuns(const WriteBatch& batch);

// Parses a full tile key. Returns DataLoss for anything that EncodeTileKey cannot produce:
// wrong namespace, truncation, a non-canonical (overlong) length varint, an unknown resolution
// or trailing bytes.
absl::StatusOr<TileKey> DecodeTileKey(std::string_view bytes);

// Reads start_ms from the last 8 bytes of a tile key. REQUIRES: bytes.size() >= 8 (callers
// that already know the key's tile prefix use this instead of a full decode).
int64_t DecodeTileStart(std::string_view bytes);

// If `bytes` is a well-formed tile prefix or full tile key, returns the length of its tile
// prefix; otherwise nullopt. Used as RocksDB's prefix extractor.
std::optional<size_t> TilePrefixLength(std::string_view bytes);

// The first kViewPrefixBytes of every tile key of view_id.
std::string EncodeViewPrefix(uint32_t view_id);
// A tile key without its view prefix (a "view key": what orders the tiles of one view, the key
// ViewCursor reports) starts with the entity key encoded as here: varint(size) | bytes.
std::string EncodeEntityInView(std::string_view entity_key);
// Appends the view key of a tile: EncodeEntityInView(entity_key) | resolution | start_ms.
void AppendViewTileKey(std::string_view entity_key, Resolution resolution, int64_t start_ms,
                       std::string* out);
// Parses a view key; *entity_key points into `bytes`. DataLoss when malformed.
absl::Status DecodeViewTileKey(std::string_view bytes, std::string_view* entity_key,
                               Resolution* resolution, int64_t* start_ms);

std::string EncodeMetaKey(std::string_view key);
// The user meta key inside an encoded metadata key (a view into `bytes`), or DataLoss.
absl::StatusOr<std::string_view> DecodeMetaKey(std::string_view bytes);

// namespace | varint(source.size()) | source. REQUIRES: `ns` is one of the kLog*Namespace bytes.
std::string EncodeLogPrefix(char ns, std::string_view source);
// EncodeLogPrefix(ns, source) + seq (8 bytes big-endian); ns is kLogEntryNamespace or
// kLogBatchSeqNamespace.
std::string EncodeLogSeqKey(char ns, std::string_view source, uint64_t seq);
std::string EncodeLogBatchKey(std::string_view source, std::string_view batch_id);
// Reads the seq from the last 8 bytes of an entry or batch-index key. REQUIRES: size >= 8.
uint64_t DecodeLogSeq(std::string_view bytes);

// The smallest string greater than every string that starts with `prefix` (the exclusive upper
// bound of a prefix scan), or "" when there is none (prefix empty or all 0xff).
std::string PrefixSuccessor(std::string_view prefix);

}  // namespace tessera::store
