#include "store/key_codec.h"

#include "common/errors.h"
#include "common/varint.h"

namespace tessera::store {
namespace {

constexpr uint8_t kMaxResolution = static_cast<uint8_t>(Resolution::kLifetime);

// Parses an encoded entity key and resolution at bytes[pos...]; returns the position after them
// or nullopt. Hand-written rather than ByteReader-based so it never allocates (ByteReader builds
// an error message): it runs inside RocksDB's prefix extractor, where nothing may throw.
std::optional<size_t> ParseEntityAndResolution(std::string_view bytes, size_t pos,
                                               std::string_view* entity_key,
                                               Resolution* resolution) {
  uint64_t key_len = 0;
  for (int shift = 0;; shift += 7) {
    if (pos >= bytes.size() || shift > 63) return std::nullopt;
    auto b = static_cast<uint8_t>(bytes[pos++]);
    if (shift == 63 && b > 1) return std::nullopt;
    key_len |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      // Exactly one encoding per length (no overlong varints), so equal keys have equal bytes.
      if (b == 0 && shift > 0) return std::nullopt;
      break;
    }
  }
  if (key_len > bytes.size() - pos) return std::nullopt;
  std::string_view key = bytes.substr(pos, key_len);
  pos += key_len;
  if (pos >= bytes.size()) return std::nullopt;
  auto res = static_cast<uint8_t>(bytes[pos++]);
  if (res > kMaxResolution) return std::nullopt;
  if (entity_key != nullptr) *entity_key = key;
  if (resolution != nullptr) *resolution = static_cast<Resolution>(res);
  return pos;
}

// Parses the tile prefix at the start of `bytes`; returns its length or nullopt.
std::optional<size_t> ParseTilePrefix(std::string_view bytes, uint32_t* view_id,
                                      std::string_view* entity_key, Resolution* resolution) {
  if (bytes.size() < kViewPrefixBytes || bytes[0] != kTileNamespace) return std::nullopt;
  uint32_t view = 0;
  for (size_t i = 1; i < kViewPrefixBytes; ++i) view = (view << 8) | static_cast<uint8_t>(bytes[i]);
  std::optional<size_t> end =
      ParseEntityAndResolution(bytes, kViewPrefixBytes, entity_key, resolution);
  if (end.has_value() && view_id != nullptr) *view_id = view;
  return end;
}

}  // namespace

void AppendTilePrefix(uint32_t view_id, std::string_view entity_key, Resolution resolution,
                      std::string* out) {
  out->push_back(kTileNamespace);
  PutBigEndian32(out, view_id);
  PutBytes(out, entity_key);
  out->push_back(static_cast<char>(resolution));
}

void AppendTileStart(int64_t start_ms, std::string* out) {
  PutBigEndian64(out, OrderedFromInt64(start_ms));
}

std::string EncodeTilePrefix(uint32_t view_id, std::string_view entity_key, Resolution resolution) {
  std::string out;
  out.reserve(1 + 4 + 2 + entity_key.size() + 1 + kStartMsBytes);
  AppendTilePrefix(view_id, entity_key, resolution, &out);
  return out;
}

std::string EncodeTileKey(uint32_t view_id, std::string_view entity_key, Resolution resolution,
                          int64_t start_ms) {
  std::string out = EncodeTilePrefix(view_id, entity_key, resolution);
  AppendTileStart(start_ms, &out);
  return out;
}

absl::StatusOr<TileKey> DecodeTileKey(std::string_view bytes) {
  TileKey key;
  std::string_view entity_key;
  std::optional<size_t> prefix_len =
      ParseTilePrefix(bytes, &key.view_id, &entity_key, &key.resolution);
  if (!prefix_len.has_value()) {
    return DataLoss("malformed tile key ({} bytes): bad namespace, view, entity key or resolution",
                    bytes.size());
  }
  if (bytes.size() - *prefix_len != kStartMsBytes) {
    return DataLoss("malformed tile key: expected {} start bytes after the prefix, found {}",
                    kStartMsBytes, bytes.size() - *prefix_len);
  }
  key.entity_key.assign(entity_key.data(), entity_key.size());
  key.start_ms = DecodeTileStart(bytes);
  return key;
}

int64_t DecodeTileStart(std::string_view bytes) {
  uint64_t v = 0;
  for (size_t i = bytes.size() - kStartMsBytes; i < bytes.size(); ++i) {
    v = (v << 8) | static_cast<uint8_t>(bytes[i]);
  }
  return Int64FromOrdered(v);
}

std::optional<size_t> TilePrefixLength(std::string_view bytes) {
  std::optional<size_t> len = ParseTilePrefix(bytes, nullptr, nullptr, nullptr);
  if (!len.has_value()) return std::nullopt;
  size_t rest = bytes.size() - *len;
  if (rest != 0 && rest != kStartMsBytes) return std::nullopt;
  return len;
}

std::string EncodeViewPrefix(uint32_t view_id) {
  std::string out;
  out.push_back(kTileNamespace);
  PutBigEndian32(&out, view_id);
  return out;
}

std::string EncodeEntityInView(std::string_view entity_key) {
  std::string out;
  PutBytes(&out, entity_key);
  return out;
}

void AppendViewTileKey(std::string_view entity_key, Resolution resolution, int64_t start_ms,
                       std::string* out) {
  PutBytes(out, entity_key);
  out->push_back(static_cast<char>(resolution));
  AppendTileStart(start_ms, out);
}

absl::Status DecodeViewTileKey(std::string_view bytes, std::string_view* entity_key,
                               Resolution* resolution, int64_t* start_ms) {
  std::optional<size_t> end = ParseEntityAndResolution(bytes, 0, entity_key, resolution);
  if (!end.has_value() || bytes.size() - *end != kStartMsBytes) {
    return DataLoss("malformed tile key within a view ({} bytes)", bytes.size());
  }
  *start_ms = DecodeTileStart(bytes);
  return absl::OkStatus();
}

std::string EncodeMetaKey(std::string_view key) {
  std::string out;
  out.reserve(1 + key.size());
  out.push_back(kMetaNamespace);
  out.append(key);
  return out;
}

absl::StatusOr<std::string_view> DecodeMetaKey(std::string_view bytes) {
  if (bytes.empty() || bytes[0] != kMetaNamespace) {
    return DataLoss("malformed metadata key ({} bytes): missing the metadata namespace byte",
                    bytes.size());
  }
  return bytes.substr(1);
}

std::string EncodeLogPrefix(char ns, std::string_view source) {
  std::string out;
  out.reserve(1 + 2 + source.size() + kLogSeqBytes);
  out.push_back(ns);
  PutBytes(&out, source);
  return out;
}

std::string EncodeLogSeqKey(char ns, std::string_view source, uint64_t seq) {
  std::string out = EncodeLogPrefix(ns, source);
  PutBigEndian64(&out, seq);
  return out;
}

std::string EncodeLogBatchKey(std::string_view source, std::string_view batch_id) {
  std::string out = EncodeLogPrefix(kLogBatchNamespace, source);
  out.append(batch_id);
  return out;
}

uint64_t DecodeLogSeq(std::string_view bytes) {
  uint64_t v = 0;
  for (size_t i = bytes.size() - kLogSeqBytes; i < bytes.size(); ++i) {
    v = (v << 8) | static_cast<uint8_t>(bytes[i]);
  }
  return v;
}

std::string PrefixSuccessor(std::string_view prefix) {
  std::string out(prefix);
  while (!out.empty()) {
    auto last = static_cast<unsigned char>(out.back());
    if (last != 0xff) {
      out.back() = static_cast<char>(last + 1);
      return out;
    }
    out.pop_back();
  }
  return out;
}

}  // namespace tessera::store

namespace tessera::store {

absl::StatusOr<WriteBatch> ExpandTileRuns(const WriteBatch& batch) {
  WriteBatch out;
  out.tiles.reserve(batch.tile_count());
  for (const TileRun& run : batch.tile_runs) {
    for (size_t i = 0; i < run.size(); ++i) {
      absl::StatusOr<TileKey> key = DecodeTileKey(run.key(i));
      if (!key.ok()) return Annotate(key.status(), "a tile run's key");
      out.tiles.emplace_back(*std::move(key), std::string(run.value(i)));
    }
  }
  out.tiles.insert(out.tiles.end(), batch.tiles.begin(), batch.tiles.end());
  out.meta = batch.meta;
  out.meta_deletes = batch.meta_deletes;
  return out;
}

std::string* TileRun::BeginTile(uint32_t view_id, std::string_view entity_key,
                                Resolution resolution, int64_t start_ms) {
  if (chunks_.empty() || chunks_.back().size() >= ChunkBytes(chunks_.size() - 1)) {
    const size_t bytes = ChunkBytes(chunks_.size());
    chunks_.emplace_back().reserve(bytes + bytes / 8);
  }
  std::string& chunk = chunks_.back();
  const size_t key = chunk.size();
  AppendTilePrefix(view_id, entity_key, resolution, &chunk);
  AppendTileStart(start_ms, &chunk);
  bounds_.push_back(Bounds{static_cast<uint32_t>(chunks_.size() - 1), static_cast<uint32_t>(key),
                           static_cast<uint32_t>(chunk.size())});
  return &chunk;
}

}  // namespace tessera::store
