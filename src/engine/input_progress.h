#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "store/tile_store.h"

namespace tessera::engine {

// A streaming 128-bit XXH3 hash of a byte stream that can be read out at any point and then
// continued (and copied, to keep the state at one point while continuing another copy).
class ContentHash {
 public:
  ContentHash();  // the hash of no bytes
  ~ContentHash();
  ContentHash(const ContentHash& other);
  ContentHash& operator=(const ContentHash& other);

  void Update(std::string_view bytes);
  // 32 lowercase hex digits of the hash of every byte given so far.
  std::string Hex() const;
  // Bytes given so far.
  uint64_t size() const { return size_; }

 private:
  struct State;
  std::unique_ptr<State> state_;
  uint64_t size_ = 0;
};

// Bytes at the start of an input whose hash a progress record keeps, so a new input is compared
// in full only with records whose first bytes match its own.
inline constexpr size_t kHeadBytes = 4096;

// What a backfill committed of one input. An input is identified by its uncompressed content,
// not by its name or its stored bytes: the record says "the lines of the uncompressed bytes
// [0, offset), whose hash is `hash`, are in the tiles". Any input whose uncompressed content
// begins with exactly those bytes (under any name, plain or compressed, grown since) continues
// after them. Written in the same atomic write as the tiles it describes.
struct InputProgress {
  std::string key;   // metadata key it is stored under
  std::string path;  // the input's path in the run that wrote it (informational)
  uint64_t offset = 0;
  int64_t lines = 0;      // lines in [0, offset); an unterminated last line counts
  std::string hash;       // ContentHash::Hex() of [0, offset)
  std::string head_hash;  // ContentHash::Hex() of [0, min(offset, kHeadBytes))
  bool done = false;      // the run that wrote it read the input to its end (informational)
  // Records of the previous format ("file/<fingerprint>", no hash): the input is the one whose
  // stored bytes have this fingerprint (FingerprintStoredBytes).
  std::string legacy_fingerprint;

  bool legacy() const { return !legacy_fingerprint.empty(); }
};

// Stored under store::meta::InputProgressKey(seq) ("backfill/input/<16 hex digits>"); records of
// the previous format under store::meta::kLegacyInputProgressPrefix ("file/"), migrated on use.
// The JSON value stored for `p` (every field but key and legacy_fingerprint).
std::string EncodeInputProgress(const InputProgress& p);

// Every progress record in `store`, both formats, and the first unused record number.
// DataLoss names a record that cannot be parsed.
struct StoredInputProgress {
  std::vector<InputProgress> records;
  uint64_t next_seq = 0;
};
absl::StatusOr<StoredInputProgress> LoadInputProgress(store::TileStore* store);

// 32 hex digits of the XXH3-128 of the bytes of `path` as stored (the previous format's key).
absl::StatusOr<std::string> FingerprintStoredBytes(const std::string& path);

// The longest committed prefix of an input (MatchCommittedPrefix).
struct PrefixMatch {
  const InputProgress* record = nullptr;  // null: no record matches, start from byte 0
  bool whole = false;  // the input has no byte after record->offset: all of it is committed
  uint64_t tail = 0;   // bytes of [0, record->offset) after its last '\n' (an unterminated line)
  ContentHash hash;    // of [0, record->offset), to be continued
  std::string head;    // the input's first min(kHeadBytes, size) uncompressed bytes
};

// Reads the uncompressed content of `path` (plain, gzip or zstd) once, as far as needed, and
// returns the candidate with the largest offset whose committed bytes are a prefix of it. A
// legacy candidate matches when `stored_fingerprint` equals its fingerprint and the content
// reaches its offset. A read error (e.g. a truncated stream) ends the comparison there: what
// was read still counts, and the caller's own read reports the error. Errors: the file cannot be
// opened. The returned match points into `candidates`.
absl::StatusOr<PrefixMatch> MatchCommittedPrefix(
    const std::string& path, const std::vector<const InputProgress*>& candidates,
    const std::string& stored_fingerprint);

}  // namespace tessera::engine
